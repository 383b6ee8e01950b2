//! The SSH transport of k8sup: one connection per host, its commands sent to one shell
//! on one channel (more channels only for commands that run at once).
//!
//! The CLI turns each inventory host into a [`Target`] and calls [`connect`]; the
//! engine then talks to the resulting [`Session`] through the [`Transport`] trait:
//! [`Transport::run_with`] for commands (each a [`k8sup_shell::Script`], so every value
//! is quoted), [`Transport::upload`] and [`Transport::download`] for files.
//!
//! - [`target`]: how to reach a host, and the secrets that may be needed.
//! - [`known_hosts`]: OpenSSH `known_hosts` parsing, matching and recording.
//! - `host_key`: the handshake-time host key decision.
//! - `auth`: agent and key file authentication.
//! - `command`: exec lines, sudo wrapping, upload/download scripts.
//! - `session`: connecting, with retries, and running commands.
//! - `shell`: the one shell per session that runs every command sent to it.
//! - [`event`]: warnings and notes for the user, delivered to a sink, never printed.

// Errors carry the host, step, command and advice the user needs; they are built once
// per failure, so their size does not matter.
#![allow(clippy::result_large_err)]

mod auth;
pub mod bytes;
mod command;
mod error;
pub mod event;
mod host_key;
pub mod known_hosts;
mod session;
mod shell;
pub mod target;
mod transport;

pub use command::{CommandOutput, OutputSink, OutputStream, RunOptions};
pub use error::{CommandError, ConnectError};
pub use event::{EventSink, SshEvent};
pub use session::{connect, Session};
pub use shell::{SERVER_COMMANDS, SERVER_VARIABLES};
pub use target::{
    HostKeyChecking, JumpSpecError, Secret, Secrets, Target, BECOME_PASSWORD_ENV,
    KEY_PASSPHRASE_ENV,
};
pub use transport::Transport;
