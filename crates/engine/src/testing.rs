//! A [`Transport`] that runs scripts on this machine with `sh -c`, for tests of the
//! engine and of its users, without SSH.
//!
//! Each [`LocalTransport`] stands for one host. Tests point the playbook's paths into
//! a temp directory (through the template context) and may put fake system tools
//! (`systemctl`, `dpkg-query`, ...) in a directory that is put first on `PATH`.
//! Failures can be injected: every script whose text contains a given string exits
//! 1 at once, as if the host refused.

// The transport's error type is k8sup-ssh's; its size is not ours to change.
#![allow(clippy::result_large_err)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use futures::future::BoxFuture;
use k8sup_shell::Script;
use k8sup_ssh::{CommandError, CommandOutput, RunOptions, Transport};

/// Writes `text` (a whole script, `#!` line included) as the executable `dir/name`,
/// a fake of a system tool for a test; its path. Panics when it cannot.
pub fn fake_program(dir: &Path, name: &str, text: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
    path
}

/// The names in the directory `dir`, sorted; panics when it cannot be read.
pub fn sorted_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| {
            e.expect("a directory entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    names
}

/// Runs scripts locally; see the module docs.
pub struct LocalTransport {
    name: String,
    path_prefix: Option<PathBuf>,
    cwd: Option<PathBuf>,
    env: Vec<(String, String)>,
    channels: AtomicU64,
    /// Every script run, rendered, in order.
    pub scripts: Mutex<Vec<String>>,
    /// Every stdin sent, in order.
    pub stdins: Mutex<Vec<Vec<u8>>>,
    /// Every stdout and stderr received, in order.
    pub outputs: Mutex<Vec<String>>,
    fail_when: Mutex<Option<String>>,
}

impl LocalTransport {
    pub fn new(name: &str) -> LocalTransport {
        LocalTransport {
            name: name.to_string(),
            path_prefix: None,
            cwd: None,
            env: Vec::new(),
            channels: AtomicU64::new(0),
            scripts: Mutex::new(Vec::new()),
            stdins: Mutex::new(Vec::new()),
            outputs: Mutex::new(Vec::new()),
            fail_when: Mutex::new(None),
        }
    }

    /// Puts `dir` first on `PATH` (fake tools).
    pub fn with_path(mut self, dir: &Path) -> LocalTransport {
        self.path_prefix = Some(dir.to_path_buf());
        self
    }

    /// Runs scripts in `dir` (so that relative paths, such as a test's state path,
    /// are per host).
    pub fn with_cwd(mut self, dir: &Path) -> LocalTransport {
        self.cwd = Some(dir.to_path_buf());
        self
    }

    /// Sets an environment variable for every script.
    pub fn with_env(mut self, key: &str, value: &str) -> LocalTransport {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    /// Makes every call containing `needle` fail on the host: the script runs with
    /// `false &&` put before it (the rest of the script runs as it would).
    pub fn fail_calls_containing(&self, needle: &str) {
        if let Ok(mut f) = self.fail_when.lock() {
            *f = Some(needle.to_string());
        }
    }

    fn execute(
        &self,
        script: &Script,
        options: &RunOptions,
    ) -> Result<CommandOutput, CommandError> {
        use std::io::Write;
        let text = script.render();
        if let Ok(mut s) = self.scripts.lock() {
            s.push(text.clone());
        }
        // As a host's shell that had the library defined runs the script.
        let text = options.with_library(text);
        if let Ok(mut s) = self.stdins.lock() {
            s.push(options.stdin.clone().unwrap_or_default());
        }
        let text = match self.fail_when.lock().ok().and_then(|f| f.clone()) {
            Some(needle) => text.replace(&needle, &format!("false && {needle}")),
            None => text,
        };
        let io_error = |e: std::io::Error| CommandError::Failed {
            host: self.name.clone(),
            step: "running locally",
            command: "sh -c".into(),
            status: "spawn failed".into(),
            stderr: e.to_string(),
        };
        let mut command = std::process::Command::new("sh");
        command
            .arg("-c")
            .arg(&text)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        if let Some(prefix) = &self.path_prefix {
            let path = std::env::var("PATH").unwrap_or_default();
            command.env("PATH", format!("{}:{path}", prefix.display()));
        }
        if let Some(dir) = &self.cwd {
            command.current_dir(dir);
        }
        for (k, v) in &self.env {
            command.env(k, v);
        }
        let mut child = command.spawn().map_err(io_error)?;
        let stdin = options.stdin.clone().unwrap_or_default();
        let mut pipe = child.stdin.take();
        let writer = std::thread::spawn(move || {
            if let Some(pipe) = pipe.as_mut() {
                let _ = pipe.write_all(&stdin);
            }
        });
        let output = child.wait_with_output().map_err(io_error)?;
        let _ = writer.join();
        if let Some(sink) = &options.on_output {
            sink(k8sup_ssh::OutputStream::Stdout, &output.stdout);
            sink(k8sup_ssh::OutputStream::Stderr, &output.stderr);
        }
        if let Ok(mut o) = self.outputs.lock() {
            o.push(String::from_utf8_lossy(&output.stdout).into_owned());
            o.push(String::from_utf8_lossy(&output.stderr).into_owned());
        }
        Ok(CommandOutput {
            stdout: output.stdout,
            stderr: output.stderr,
            exit_status: output.status.code().map(|c| c as u32),
            exit_signal: None,
        })
    }
}

impl Transport for LocalTransport {
    fn host(&self) -> &str {
        &self.name
    }

    fn channels_opened(&self) -> u64 {
        self.channels.load(Ordering::SeqCst)
    }

    /// One command per channel here: as many round trips as channels.
    fn round_trips(&self) -> u64 {
        self.channels.load(Ordering::SeqCst)
    }

    fn run_with<'a>(
        &'a self,
        script: &'a Script,
        options: RunOptions,
    ) -> BoxFuture<'a, Result<CommandOutput, CommandError>> {
        self.channels.fetch_add(1, Ordering::SeqCst);
        Box::pin(async move {
            // Yield first so that hosts interleave as they would over the network.
            tokio::task::yield_now().await;
            self.execute(script, &options)
        })
    }

    fn upload<'a>(
        &'a self,
        path: &'a str,
        content: &'a [u8],
        mode: u32,
        _owner: Option<(&'a str, &'a str)>,
    ) -> BoxFuture<'a, Result<(), CommandError>> {
        self.channels.fetch_add(1, Ordering::SeqCst);
        Box::pin(async move {
            use std::os::unix::fs::PermissionsExt;
            let error = |e: std::io::Error| CommandError::Failed {
                host: self.name.clone(),
                step: "upload",
                command: path.to_string(),
                status: "io error".into(),
                stderr: e.to_string(),
            };
            std::fs::write(path, content).map_err(error)?;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(error)
        })
    }

    fn download<'a>(&'a self, path: &'a str) -> BoxFuture<'a, Result<Vec<u8>, CommandError>> {
        self.channels.fetch_add(1, Ordering::SeqCst);
        Box::pin(async move {
            std::fs::read(path).map_err(|e| CommandError::Failed {
                host: self.name.clone(),
                step: "download",
                command: path.to_string(),
                status: "io error".into(),
                stderr: e.to_string(),
            })
        })
    }
}
