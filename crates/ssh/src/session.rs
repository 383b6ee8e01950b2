//! One SSH connection to one host, and the commands run on it.
//!
//! [`connect`] sets up the connection (through a bastion when the target names one),
//! retrying only failures to connect: nothing has run on the host yet, so a retry can
//! never repeat a command. A [`Session`] is then shared by the whole run; every command,
//! upload and download is one channel on it, so many can run at once, and
//! [`Session::channels_opened`] counts them.
//!
//! Commands go to the session's one shell ([`crate::shell`]) when the target says
//! `reuse_shell`: the first starts it on a channel of its own, the others are requests
//! on it. A command sent while the shell is busy gets a channel of its own.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use k8sup_shell::{Script, ShellArg};
use russh::client::{self, Handle, Msg};
use russh::{ChannelMsg, ChannelReadHalf, ChannelWriteHalf, Sig};
use tokio::sync::oneshot;

use crate::auth::authenticate;
use crate::command::{
    download_script, exec_line, remote_path, upload_script, Become, BecomeGate, CommandOutput,
    OutputStream, RunOptions,
};
use crate::error::{CommandError, ConnectError};
use crate::event::SshEvent;
use crate::host_key::{HandshakeError, HostKeyChecker};
use crate::known_hosts;
use crate::shell::{self, Mode, Start};
use crate::target::{Secret, Target};
use crate::transport::Transport;

/// Delay before the second connection attempt; doubled for each further one.
const FIRST_RETRY_DELAY: Duration = Duration::from_millis(500);
/// Longest command text quoted in an error message.
const COMMAND_SUMMARY_CHARS: usize = 300;
/// The longest public first command sent in the shell's start line (a single argument
/// may be 128 KiB on Linux, and the start line holds the server too).
const MAX_FIRST_IN_START: usize = 64 * 1024;

/// Connects to `target` (through its bastion, if any) and authenticates.
pub async fn connect(target: &Target) -> Result<Session, ConnectError> {
    let bastion = match &target.jump_host {
        Some(jump) => Some(Box::new(connect_bastion(target, jump).await?)),
        None => None,
    };
    let config = Arc::new(client_config(target));
    let attempts = target.connect_attempts.max(1);
    let mut delay = FIRST_RETRY_DELAY;
    let mut attempt = 1;
    let handle = loop {
        match connect_once(target, &config, bastion.as_deref()).await {
            Ok(handle) => break handle,
            Err(e) if e.is_transient() && attempt < attempts => {
                target.events.emit(SshEvent::ConnectRetry {
                    host: target.name.clone(),
                    attempt,
                    delay,
                    error: e.to_string(),
                });
                tokio::time::sleep(delay).await;
                delay *= 2;
                attempt += 1;
            }
            Err(e) => return Err(e.with_attempts(attempt)),
        }
    };
    Ok(Session {
        host: target.name.clone(),
        handle,
        sudo: match (target.sudo, &target.secrets.become_password) {
            (false, _) => Become::No,
            (true, None) => Become::WithoutPassword,
            (true, Some(_)) => Become::WithPassword,
        },
        become_password: target.secrets.become_password.clone(),
        command_timeout: target.command_timeout,
        held_file: target
            .held_file
            .as_deref()
            .and_then(|path| ShellArg::new(path).ok()),
        channels_opened: AtomicU64::new(0),
        round_trips: AtomicU64::new(0),
        shells_started: AtomicU64::new(0),
        relock: std::sync::Mutex::new(None),
        shell: tokio::sync::Mutex::new(if target.reuse_shell {
            ShellSlot::NotStarted
        } else {
            ShellSlot::Unavailable
        }),
        _bastion: bastion,
    })
}

async fn connect_bastion(target: &Target, jump: &Target) -> Result<Session, ConnectError> {
    Box::pin(connect(jump))
        .await
        .map_err(|source| ConnectError::Jump {
            host: target.name.clone(),
            bastion: jump.name.clone(),
            source: Box::new(source),
        })
}

fn client_config(target: &Target) -> client::Config {
    let mut config = client::Config {
        keepalive_interval: target.keepalive_interval,
        keepalive_max: 3,
        inactivity_timeout: None,
        nodelay: true,
        ..client::Config::default()
    };
    // The types of the keys known for the host are asked for first, so that a host
    // with several keys shows one that can be checked. An unreadable file is reported
    // by the check itself.
    if target.host_key_checking != crate::target::HostKeyChecking::Off {
        if let Ok(text) = known_hosts::read(&target.known_hosts) {
            let known = known_hosts::known_algorithms(&text, &target.address, target.port);
            config.preferred.key = known_hosts::prefer_known(&config.preferred.key, &known).into();
        }
    }
    config
}

/// One attempt: transport, handshake with host key check, authentication, all within
/// the target's connect timeout.
async fn connect_once(
    target: &Target,
    config: &Arc<client::Config>,
    bastion: Option<&Session>,
) -> Result<Handle<HostKeyChecker>, ConnectError> {
    let attempt = async {
        let mut handle = match bastion {
            None => handshake_direct(target, config).await?,
            Some(bastion) => handshake_through(target, config, bastion).await?,
        };
        authenticate(&mut handle, target).await?;
        Ok(handle)
    };
    tokio::time::timeout(target.connect_timeout, attempt)
        .await
        .unwrap_or_else(|_| {
            Err(ConnectError::Timeout {
                host: target.name.clone(),
                address: target.address.clone(),
                port: target.port,
                after: target.connect_timeout,
                attempts: 1,
            })
        })
}

async fn handshake_direct(
    target: &Target,
    config: &Arc<client::Config>,
) -> Result<Handle<HostKeyChecker>, ConnectError> {
    let stream = tokio::net::TcpStream::connect((target.address.as_str(), target.port))
        .await
        .map_err(|source| ConnectError::Unreachable {
            host: target.name.clone(),
            address: target.address.clone(),
            port: target.port,
            attempts: 1,
            source,
        })?;
    // Nagle off: commands are small request/reply exchanges.
    let _ = stream.set_nodelay(true);
    client::connect_stream(config.clone(), stream, HostKeyChecker::new(target))
        .await
        .map_err(|e| handshake_error(target, e))
}

/// ProxyJump: a direct-tcpip channel on the bastion's connection carries this one.
async fn handshake_through(
    target: &Target,
    config: &Arc<client::Config>,
    bastion: &Session,
) -> Result<Handle<HostKeyChecker>, ConnectError> {
    bastion.channels_opened.fetch_add(1, Ordering::Relaxed);
    let channel = bastion
        .handle
        .channel_open_direct_tcpip(
            target.address.as_str(),
            u32::from(target.port),
            "127.0.0.1",
            0,
        )
        .await
        .map_err(|source| ConnectError::Tunnel {
            host: target.name.clone(),
            bastion: bastion.host.clone(),
            address: target.address.clone(),
            port: target.port,
            source,
        })?;
    client::connect_stream(
        config.clone(),
        channel.into_stream(),
        HostKeyChecker::new(target),
    )
    .await
    .map_err(|e| handshake_error(target, e))
}

fn handshake_error(target: &Target, error: HandshakeError) -> ConnectError {
    match error {
        HandshakeError::Refused(refusal) => *refusal,
        HandshakeError::Ssh(source) => ConnectError::Handshake {
            host: target.name.clone(),
            attempts: 1,
            source,
        },
    }
}

/// An authenticated connection to one host, shared by every command of a run.
pub struct Session {
    host: String,
    handle: Handle<HostKeyChecker>,
    sudo: Become,
    become_password: Option<Secret>,
    command_timeout: Duration,
    /// The file the shell keeps open on fd 9 (see [`Target::held_file`]).
    held_file: Option<ShellArg>,
    channels_opened: AtomicU64,
    round_trips: AtomicU64,
    /// How many times the session's shell was started (more than once after a command
    /// that timed out or broke it).
    shells_started: AtomicU64,
    /// What a restarted shell runs before anything else: taking the host's lock again
    /// on its fd 9 (see [`Session::hold_on_restart`]).
    relock: std::sync::Mutex<Option<Script>>,
    shell: tokio::sync::Mutex<ShellSlot>,
    /// Keeps the bastion's connection (which carries this one) open; dropped after `handle`.
    _bastion: Option<Box<Session>>,
}

/// The session's shell, as far as it got.
enum ShellSlot {
    NotStarted,
    Ready(ShellChannel),
    /// Not wanted, or the host cannot run it: one channel per command.
    Unavailable,
}

/// Stdout and stderr read while waiting for a shell's ready line.
type Early = (Vec<u8>, Vec<u8>);

/// How a request to the session's shell went.
enum Exchanged {
    Output(CommandOutput),
    /// The shell turned out not to run (the request ran nowhere).
    NotRunning,
    /// The shell runs, but cannot take this request (a stream server and a stdin it
    /// cannot hold): it goes on a channel of its own, and nothing ran.
    ChannelNeeded,
}

/// A shell's channel and the token that ends each output.
struct ShellChannel {
    read: ChannelReadHalf,
    write: ChannelWriteHalf<Msg>,
    token: String,
    /// `None` until its ready line was read; then the output that followed it, not
    /// yet taken.
    started: Option<Early>,
    /// Follows sudo until the shell runs (with `become`).
    gate: Option<BecomeGate>,
    /// The first request went with the shell's start line: its exchange sends nothing.
    first_sent: bool,
    /// The libraries this shell has defined (see [`RunOptions::library`]).
    libraries: Vec<&'static str>,
    /// How the shell takes requests, once its ready line said so.
    mode: Option<Mode>,
    /// A stream server's first request, which must set its token and traps, is still
    /// to be sent.
    prologue_due: bool,
}

impl Session {
    /// The host's name, as in messages.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// How many channels this session has opened so far.
    pub fn channels_opened(&self) -> u64 {
        self.channels_opened.load(Ordering::Relaxed)
    }

    /// How many commands (each one round trip) this session has run so far.
    pub fn round_trips(&self) -> u64 {
        self.round_trips.load(Ordering::Relaxed)
    }

    /// Has every later shell of this session run `script` before its first command and
    /// succeed, or that command fails with [`CommandError::LockLost`]. The host's lock
    /// belongs to the open file on the shell's fd 9: a shell started again (after a
    /// command timed out) opens the file anew and must take the lock again, or the run
    /// would go on without it.
    pub fn hold_on_restart(&self, script: Script) {
        if let Ok(mut relock) = self.relock.lock() {
            *relock = Some(script);
        }
    }

    /// Runs `script` with the target's command timeout and no stdin.
    pub async fn run(&self, script: &Script) -> Result<CommandOutput, CommandError> {
        self.run_with(script, RunOptions::default()).await
    }

    /// Runs `script`, through sudo when the target says `become`. A non-zero exit is
    /// not an error here: the output says how it ended, and the caller decides.
    pub async fn run_with(
        &self,
        script: &Script,
        options: RunOptions,
    ) -> Result<CommandOutput, CommandError> {
        let text = script.render();
        let command = summarize(&text);
        self.round_trips.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut slot) = self.shell.try_lock() {
            if let Some(result) = self
                .run_in_shell(&mut slot, &text, &options, &command)
                .await
            {
                return result;
            }
        }
        if text.contains('\0') {
            return Err(CommandError::InvalidValue {
                host: self.host.clone(),
                what: "command",
                value: command.clone(),
                source: k8sup_shell::NulByteError,
            });
        }
        // The script travels on stdin, ahead of the command's own (see
        // `shell::channel_script`): never in the exec line, so never in a process's
        // arguments on the host. Its library goes in front of it.
        let line = self.exec_line(&shell::channel_script());
        let text = options.with_library(text);
        let options = RunOptions {
            stdin: Some(shell::channel_stdin(
                &text,
                options.stdin.as_deref().unwrap_or_default(),
            )),
            ..options
        };
        let limit = options.timeout.unwrap_or(self.command_timeout);
        let (mut read, write) = self.open_channel(&command).await?.split();
        let exchange = self.exchange(&mut read, &write, line, options, &command);
        match tokio::time::timeout(limit, exchange).await {
            Ok(outcome) => outcome,
            Err(_) => {
                // Ask the remote side to stop the command, then drop the channel.
                let _ = write.signal(Sig::KILL).await;
                let _ = write.close().await;
                Err(CommandError::Timeout {
                    host: self.host.clone(),
                    command,
                    after: limit,
                })
            }
        }
    }

    /// Runs `script` on the session's shell, starting it first if need be; `None` when
    /// the host cannot run one (the caller opens a channel instead: nothing ran).
    async fn run_in_shell(
        &self,
        slot: &mut ShellSlot,
        text: &str,
        options: &RunOptions,
        command: &str,
    ) -> Option<Result<CommandOutput, CommandError>> {
        if matches!(slot, ShellSlot::Unavailable) {
            return None;
        }
        if text.contains('\0') {
            // The channel path names the problem.
            return None;
        }
        let limit = options.timeout.unwrap_or(self.command_timeout);
        let run = async {
            if matches!(slot, ShellSlot::NotStarted) {
                // A public first command (no stdin) of the session's first shell goes
                // with the shell's start; a restarted shell takes its lock again first.
                let first = (options.public
                    && options.library.is_none()
                    && options.stdin.as_deref().is_none_or(<[u8]>::is_empty)
                    && text.len() <= MAX_FIRST_IN_START
                    && self.shells_started.load(Ordering::Relaxed) == 0)
                    .then(|| ShellArg::new(text).ok())
                    .flatten();
                *slot = match self.start_shell(command, first.as_ref()).await? {
                    Some(channel) => ShellSlot::Ready(channel),
                    None => ShellSlot::Unavailable,
                };
                let restarted = self.shells_started.fetch_add(1, Ordering::Relaxed) > 0;
                let relock = self.relock.lock().ok().and_then(|r| r.clone());
                if let (true, Some(relock), ShellSlot::Ready(channel)) =
                    (restarted, relock, &mut *slot)
                {
                    self.relock_shell(channel, &relock, command).await?;
                }
            }
            match slot {
                ShellSlot::Ready(channel) => {
                    self.shell_exchange(channel, text, options, command).await
                }
                _ => Ok(Exchanged::NotRunning),
            }
        };
        match tokio::time::timeout(limit, run).await {
            Ok(Ok(Exchanged::Output(output))) => Some(Ok(output)),
            Ok(Ok(Exchanged::ChannelNeeded)) => None,
            Ok(Ok(Exchanged::NotRunning)) => {
                if let ShellSlot::Ready(channel) = std::mem::replace(slot, ShellSlot::Unavailable) {
                    let _ = channel.write.close().await;
                }
                None
            }
            Ok(Err(e)) => {
                // The shell is in an unknown state: start a new one next time.
                if let ShellSlot::Ready(channel) = std::mem::replace(slot, ShellSlot::NotStarted) {
                    let _ = channel.write.close().await;
                }
                Some(Err(e))
            }
            Err(_) => {
                if let ShellSlot::Ready(channel) = std::mem::replace(slot, ShellSlot::NotStarted) {
                    let _ = channel.write.signal(Sig::KILL).await;
                    let _ = channel.write.close().await;
                }
                Some(Err(CommandError::Timeout {
                    host: self.host.clone(),
                    command: command.to_string(),
                    after: limit,
                }))
            }
        }
    }

    /// Runs the lock script on a restarted shell; an error unless it succeeded.
    async fn relock_shell(
        &self,
        channel: &mut ShellChannel,
        relock: &Script,
        command: &str,
    ) -> Result<(), CommandError> {
        let lost = |reason: String| CommandError::LockLost {
            host: self.host.clone(),
            command: command.to_string(),
            reason,
        };
        match self
            .shell_exchange(channel, &relock.render(), &RunOptions::default(), command)
            .await?
        {
            Exchanged::Output(out) if out.success() => Ok(()),
            Exchanged::Output(out) => Err(lost(format!(
                "{}: {}{}",
                out.status_text(),
                out.stdout_text().trim(),
                out.stderr_text().trim()
            ))),
            Exchanged::NotRunning | Exchanged::ChannelNeeded => {
                Err(lost("the shell did not answer".into()))
            }
        }
    }

    /// Starts the shell on a channel of its own, through sudo when the target says so.
    /// Only a sudo that needs a password is waited for (it must have the password before
    /// any request); otherwise the first request follows the `exec` at once and its
    /// exchange reads the server's ready line. `None` when the host cannot run it.
    async fn start_shell(
        &self,
        command: &str,
        first: Option<&ShellArg>,
    ) -> Result<Option<ShellChannel>, CommandError> {
        let token = shell::new_token();
        let server = shell::server_script(&token, self.held_file.as_ref(), first);
        let line = self.exec_line(&server);
        let (read, write) = self.open_channel(command).await?.split();
        write
            .exec(true, line)
            .await
            .map_err(|source| self.channel_error("starting the shell", command, source))?;
        let mut channel = ShellChannel {
            read,
            write,
            token,
            started: None,
            gate: match self.sudo {
                Become::No => None,
                Become::WithoutPassword | Become::WithPassword => Some(BecomeGate::default()),
            },
            first_sent: first.is_some(),
            libraries: Vec::new(),
            mode: None,
            prologue_due: true,
        };
        if self.sudo == Become::WithPassword {
            let ShellChannel {
                read,
                write,
                token,
                gate,
                ..
            } = &mut channel;
            match self.await_ready(read, write, gate, token, command).await? {
                Some((rest, mode)) => {
                    channel.started = Some(rest);
                    channel.mode = Some(mode);
                }
                None => {
                    let _ = channel.write.close().await;
                    return Ok(None);
                }
            }
        }
        Ok(Some(channel))
    }

    /// Reads the shell's start: `Some` with the stdout that followed the ready line and
    /// the stderr after sudo's prelude (the first request's, when it went with the
    /// start), and the shell's mode; `None` when the host cannot run the shell (it ran
    /// nothing). Answers sudo's password prompt; sudo's refusals are errors.
    async fn await_ready(
        &self,
        read: &mut ChannelReadHalf,
        write: &ChannelWriteHalf<Msg>,
        gate: &mut Option<BecomeGate>,
        token: &str,
        command: &str,
    ) -> Result<Option<(Early, Mode)>, CommandError> {
        let mut stdout = Vec::new();
        let mut stderr = Vec::new();
        while let Some(message) = read.wait().await {
            match message {
                ChannelMsg::Data { data } => {
                    stdout.extend_from_slice(&data);
                    match shell::start_state(token, &stdout) {
                        Start::Pending => {}
                        Start::Ready(at, mode) => {
                            return Ok(Some(((stdout.split_off(at), stderr), mode)))
                        }
                        Start::Unavailable => return Ok(None),
                    }
                }
                ChannelMsg::ExtendedData { data, ext: 1 } => match gate.as_mut() {
                    Some(gate) => {
                        let step = gate.feed(&data);
                        if step.password_rejected {
                            return Err(CommandError::BecomePasswordRejected {
                                host: self.host.clone(),
                                command: command.to_string(),
                            });
                        }
                        if step.send_password {
                            self.send_password(write, command).await?;
                        }
                        stderr.extend_from_slice(&step.stderr);
                    }
                    None => stderr.extend_from_slice(&data),
                },
                ChannelMsg::Close => break,
                _ => {}
            }
        }
        if let Some(gate) = gate {
            self.check_become(gate, command)?;
        }
        // It ended before it ran: one channel per command will say what is wrong.
        Ok(None)
    }

    /// Sends one request to the shell and gathers its output up to both end lines.
    /// Unless the request went with the shell's start, the shell's ready line is read
    /// first: its mode decides how the request is written.
    async fn shell_exchange(
        &self,
        channel: &mut ShellChannel,
        text: &str,
        options: &RunOptions,
        command: &str,
    ) -> Result<Exchanged, CommandError> {
        let ShellChannel {
            read,
            write,
            token,
            started,
            gate,
            first_sent,
            libraries,
            mode,
            prologue_due,
        } = channel;
        let write = &*write;
        // The first request may have gone with the shell's start line.
        let already_sent = std::mem::take(first_sent);
        if !already_sent && started.is_none() {
            match self.await_ready(read, write, gate, token, command).await? {
                Some((early, ready_mode)) => {
                    *started = Some(early);
                    *mode = Some(ready_mode);
                }
                None => return Ok(Exchanged::NotRunning),
            }
        }
        // A library goes with the first request that names it (again after a request
        // that carried it failed: it may not have been defined).
        let library = options
            .library
            .filter(|library| !libraries.contains(library));
        let mut request = Vec::new();
        if !already_sent {
            let request_mode = mode.unwrap_or(Mode::Head);
            let Some(bytes) = shell::request(
                request_mode,
                library.unwrap_or_default(),
                text,
                options.stdin.as_deref().unwrap_or_default(),
            ) else {
                return Ok(Exchanged::ChannelNeeded);
            };
            request = if request_mode == Mode::Stream && std::mem::take(prologue_due) {
                let prologue = shell::stream_prologue(token);
                let mut with = Vec::with_capacity(prologue.len() + bytes.len());
                with.extend_from_slice(prologue.as_bytes());
                with.extend_from_slice(&bytes);
                with
            } else {
                bytes
            };
        }
        let send = async {
            if already_sent {
                return Ok(());
            }
            write
                .data(&request[..])
                .await
                .map_err(|source| self.channel_error("sending the command", command, source))
        };
        let gather = async {
            let (first_out, first_err) = match started.take() {
                Some(early) => early,
                None => match self.await_ready(read, write, gate, token, command).await? {
                    Some((early, ready_mode)) => {
                        *mode = Some(ready_mode);
                        early
                    }
                    None => return Ok(None),
                },
            };
            // The shell runs: from now on `started` says so (with nothing left over).
            *started = Some(Early::default());
            let mut out = shell::Stream::default();
            let mut err = shell::Stream::default();
            options.emit(OutputStream::Stdout, out.push(token, &first_out, true));
            options.emit(OutputStream::Stderr, err.push(token, &first_err, false));
            while !(out.ended() && err.ended()) {
                match read.wait().await {
                    Some(ChannelMsg::Data { data }) => {
                        options.emit(OutputStream::Stdout, out.push(token, &data, true));
                    }
                    Some(ChannelMsg::ExtendedData { data, ext: 1 }) => {
                        // The ready line (stdout) may overtake sudo's start marker
                        // (stderr): the marker is removed wherever it comes.
                        let data = match gate.as_mut().filter(|gate| !gate.started()) {
                            Some(gate) => gate.feed(&data).stderr,
                            None => data.to_vec(),
                        };
                        options.emit(OutputStream::Stderr, err.push(token, &data, false));
                    }
                    Some(ChannelMsg::Close) | None => {
                        return Err(self.channel_error(
                            "running the command",
                            command,
                            russh::Error::Disconnect,
                        ));
                    }
                    _ => {}
                }
            }
            Ok(Some(CommandOutput {
                exit_status: out.status(),
                stdout: out.into_output(),
                stderr: err.into_output(),
                exit_signal: None,
            }))
        };
        let (sent, output) = futures::join!(send, gather);
        match output? {
            Some(output) => {
                sent?;
                if let (Some(library), true) = (library, output.success()) {
                    libraries.push(library);
                }
                Ok(Exchanged::Output(output))
            }
            // The request went to a shell that never ran it: sending may have failed.
            None => Ok(Exchanged::NotRunning),
        }
    }

    /// Writes `content` to the absolute `path` atomically (see [`crate::Transport::upload`]).
    pub async fn upload(
        &self,
        path: &str,
        content: &[u8],
        mode: u32,
        owner: Option<(&str, &str)>,
    ) -> Result<(), CommandError> {
        let remote = remote_path(path).map_err(|reason| self.invalid_path(path, reason))?;
        let owner = match owner {
            Some((user, group)) => Some((
                self.shell_arg("owner", user)?,
                self.shell_arg("group", group)?,
            )),
            None => None,
        };
        let script = upload_script(&remote, content.len(), mode, owner);
        let options = RunOptions {
            stdin: Some(content.to_vec()),
            ..RunOptions::default()
        };
        let output = self.run_with(&script, options).await?;
        self.require_success("upload", &script, output).map(|_| ())
    }

    /// Reads the file at the absolute `path`.
    pub async fn download(&self, path: &str) -> Result<Vec<u8>, CommandError> {
        let remote = remote_path(path).map_err(|reason| self.invalid_path(path, reason))?;
        let script = download_script(&remote);
        let output = self.run(&script).await?;
        self.require_success("download", &script, output)
            .map(|out| out.stdout)
    }

    /// The exec line that runs `script` (ours, holding no secret) under `sh`, through
    /// sudo when the target says `become`, whatever the login shell is.
    fn exec_line(&self, script: &Script) -> String {
        match self.sudo {
            Become::No => Script::new("exec sh -c")
                .arg(ShellArg::new(script.render()).expect("our scripts hold no NUL"))
                .render(),
            Become::WithoutPassword | Become::WithPassword => {
                exec_line(script, self.sudo).expect("our scripts hold no NUL")
            }
        }
    }

    /// Ends the connection politely; dropping the session also ends it.
    pub async fn close(self) {
        let _ = self
            .handle
            .disconnect(russh::Disconnect::ByApplication, "k8sup is done", "en")
            .await;
    }

    async fn open_channel(&self, command: &str) -> Result<russh::Channel<Msg>, CommandError> {
        self.channels_opened.fetch_add(1, Ordering::Relaxed);
        self.handle
            .channel_open_session()
            .await
            .map_err(|source| self.channel_error("opening a channel", command, source))
    }

    /// Sends the command and its stdin, and gathers its output until the channel closes.
    /// Reading and writing run together so that a command producing output while its
    /// stdin is still arriving never stalls the connection.
    async fn exchange(
        &self,
        read: &mut ChannelReadHalf,
        write: &ChannelWriteHalf<Msg>,
        line: String,
        options: RunOptions,
        command: &str,
    ) -> Result<CommandOutput, CommandError> {
        write
            .exec(true, line)
            .await
            .map_err(|source| self.channel_error("starting the command", command, source))?;
        let (started_tx, started_rx) = oneshot::channel::<()>();
        let (mut gate, started_tx) = match self.sudo {
            Become::No => {
                let _ = started_tx.send(());
                (None, None)
            }
            Become::WithoutPassword | Become::WithPassword => {
                (Some(BecomeGate::default()), Some(started_tx))
            }
        };
        let stdin = options.stdin.as_deref();
        let send_stdin = async {
            if started_rx.await.is_err() {
                return Ok(());
            }
            if let Some(bytes) = stdin {
                write.data(bytes).await?;
            }
            write.eof().await
        };
        let gather = self.gather(read, write, gate.as_mut(), started_tx, &options, command);
        let (sent, gathered) = futures::join!(send_stdin, gather);
        let output = gathered?;
        if let Some(gate) = &gate {
            self.check_become(gate, command)?;
        }
        match sent {
            // A command may exit without reading all its stdin; its status tells.
            Err(source) if output.exit_status.is_none() && output.exit_signal.is_none() => {
                Err(self.channel_error("sending stdin", command, source))
            }
            _ => Ok(output),
        }
    }

    /// Collects output and the exit status until the channel closes, answering sudo's
    /// prompt and releasing stdin when a [`BecomeGate`] is in use.
    async fn gather(
        &self,
        read: &mut ChannelReadHalf,
        write: &ChannelWriteHalf<Msg>,
        mut gate: Option<&mut BecomeGate>,
        mut started_tx: Option<oneshot::Sender<()>>,
        options: &RunOptions,
        command: &str,
    ) -> Result<CommandOutput, CommandError> {
        let mut output = CommandOutput::default();
        while let Some(message) = read.wait().await {
            match message {
                ChannelMsg::Data { data } => {
                    options.emit(OutputStream::Stdout, &data);
                    output.stdout.extend_from_slice(&data);
                }
                ChannelMsg::ExtendedData { data, ext: 1 } => {
                    let stderr = match gate.as_deref_mut() {
                        Some(gate) => {
                            let step = gate.feed(&data);
                            if step.password_rejected {
                                let _ = write.close().await;
                                return Err(CommandError::BecomePasswordRejected {
                                    host: self.host.clone(),
                                    command: command.to_string(),
                                });
                            }
                            if step.send_password {
                                self.send_password(write, command).await?;
                            }
                            if step.started {
                                if let Some(tx) = started_tx.take() {
                                    let _ = tx.send(());
                                }
                            }
                            step.stderr
                        }
                        None => data.to_vec(),
                    };
                    options.emit(OutputStream::Stderr, &stderr);
                    output.stderr.extend_from_slice(&stderr);
                }
                ChannelMsg::ExitStatus { exit_status } => output.exit_status = Some(exit_status),
                ChannelMsg::ExitSignal { signal_name, .. } => {
                    output.exit_signal = Some(signal_name_text(&signal_name))
                }
                ChannelMsg::Failure => {
                    return Err(self.channel_error(
                        "starting the command",
                        command,
                        russh::Error::RequestDenied,
                    ));
                }
                ChannelMsg::Close => break,
                _ => {}
            }
        }
        if let Some(gate) = gate.filter(|gate| !gate.started()) {
            output.stderr = gate.prelude_text().into_bytes();
        }
        Ok(output)
    }

    async fn send_password(
        &self,
        write: &ChannelWriteHalf<Msg>,
        command: &str,
    ) -> Result<(), CommandError> {
        let Some(password) = &self.become_password else {
            return Ok(());
        };
        let mut line = Vec::with_capacity(password.expose().len() + 1);
        line.extend_from_slice(password.expose().as_bytes());
        line.push(b'\n');
        write.data(&line[..]).await.map_err(|source| {
            self.channel_error("answering sudo's password prompt", command, source)
        })
    }

    /// Turns sudo's refusals (seen before the command started) into clear errors.
    fn check_become(&self, gate: &BecomeGate, command: &str) -> Result<(), CommandError> {
        if gate.started() {
            return Ok(());
        }
        let command = command.to_string();
        let host = self.host.clone();
        if gate.password_rejected() {
            Err(CommandError::BecomePasswordRejected { host, command })
        } else if gate.password_required() {
            Err(CommandError::BecomePasswordRequired { host, command })
        } else {
            Ok(())
        }
    }

    fn require_success(
        &self,
        step: &'static str,
        script: &Script,
        output: CommandOutput,
    ) -> Result<CommandOutput, CommandError> {
        if output.success() {
            return Ok(output);
        }
        Err(CommandError::Failed {
            host: self.host.clone(),
            step,
            command: summarize(&script.render()),
            status: output.status_text(),
            stderr: output.stderr_text().trim_end().to_string(),
        })
    }

    fn shell_arg(&self, what: &'static str, value: &str) -> Result<ShellArg, CommandError> {
        ShellArg::new(value).map_err(|source| CommandError::InvalidValue {
            host: self.host.clone(),
            what,
            value: value.to_string(),
            source,
        })
    }

    fn invalid_path(&self, path: &str, reason: &'static str) -> CommandError {
        CommandError::InvalidPath {
            host: self.host.clone(),
            path: path.to_string(),
            reason,
        }
    }

    fn channel_error(
        &self,
        step: &'static str,
        command: &str,
        source: russh::Error,
    ) -> CommandError {
        CommandError::Channel {
            host: self.host.clone(),
            step,
            command: command.to_string(),
            source,
        }
    }
}

/// The command as shown in messages: the script as written (without the sudo
/// wrapping), cut to a readable length.
fn summarize(text: &str) -> String {
    match text.char_indices().nth(COMMAND_SUMMARY_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

fn signal_name_text(signal: &Sig) -> String {
    match signal {
        Sig::Custom(name) => name.clone(),
        other => format!("{other:?}"),
    }
}

impl Transport for Session {
    fn host(&self) -> &str {
        Session::host(self)
    }

    fn channels_opened(&self) -> u64 {
        Session::channels_opened(self)
    }

    fn round_trips(&self) -> u64 {
        Session::round_trips(self)
    }

    fn run_with<'a>(
        &'a self,
        script: &'a Script,
        options: RunOptions,
    ) -> BoxFuture<'a, Result<CommandOutput, CommandError>> {
        Box::pin(Session::run_with(self, script, options))
    }

    fn upload<'a>(
        &'a self,
        path: &'a str,
        content: &'a [u8],
        mode: u32,
        owner: Option<(&'a str, &'a str)>,
    ) -> BoxFuture<'a, Result<(), CommandError>> {
        Box::pin(Session::upload(self, path, content, mode, owner))
    }

    fn download<'a>(&'a self, path: &'a str) -> BoxFuture<'a, Result<Vec<u8>, CommandError>> {
        Box::pin(Session::download(self, path))
    }
}
