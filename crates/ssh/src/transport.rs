//! The transport as the engine sees it: run a command, put a file, get a file.
//!
//! The engine holds a `dyn Transport` per host, so its tests can use a fake one and
//! the real one is an SSH [`crate::Session`].

use futures::future::BoxFuture;
use k8sup_shell::Script;

use crate::command::{CommandOutput, RunOptions};
use crate::error::CommandError;

/// A way to run commands and move files on one host.
pub trait Transport: Send + Sync {
    /// The host's name, for messages.
    fn host(&self) -> &str;

    /// How many channels have been opened so far.
    fn channels_opened(&self) -> u64;

    /// How many commands, uploads and downloads (one round trip each) have run so far.
    fn round_trips(&self) -> u64;

    /// Runs `script` with stdin, timeout and live output as `options` say. A non-zero
    /// exit is reported in the output, not as an error.
    fn run_with<'a>(
        &'a self,
        script: &'a Script,
        options: RunOptions,
    ) -> BoxFuture<'a, Result<CommandOutput, CommandError>>;

    /// Runs `script` with the default timeout and no stdin.
    fn run<'a>(&'a self, script: &'a Script) -> BoxFuture<'a, Result<CommandOutput, CommandError>> {
        self.run_with(script, RunOptions::default())
    }

    /// Replaces the file at the absolute `path` with `content` atomically: readers see
    /// the old file or the new one, never a part. `mode` is octal permissions (`0o644`);
    /// `owner` is `(user, group)`, left as the writing user when `None`.
    fn upload<'a>(
        &'a self,
        path: &'a str,
        content: &'a [u8],
        mode: u32,
        owner: Option<(&'a str, &'a str)>,
    ) -> BoxFuture<'a, Result<(), CommandError>>;

    /// Reads the file at the absolute `path`.
    fn download<'a>(&'a self, path: &'a str) -> BoxFuture<'a, Result<Vec<u8>, CommandError>>;
}
