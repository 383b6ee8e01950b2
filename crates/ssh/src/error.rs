//! Errors of the transport, each naming the host and what was being done.
//!
//! Secrets never reach these types: the become password travels only on a channel's
//! stdin and the key passphrase only into the key decoder, so no message can hold them.

use std::path::PathBuf;
use std::time::Duration;

use k8sup_shell::NulByteError;

/// Why a connection to a host could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("cannot reach {host} at {address}:{port} (tried {attempts} times): {source}")]
    Unreachable {
        host: String,
        address: String,
        port: u16,
        attempts: u32,
        source: std::io::Error,
    },

    #[error("connecting to {host} at {address}:{port} took longer than {after:?} (tried {attempts} times)")]
    Timeout {
        host: String,
        address: String,
        port: u16,
        after: Duration,
        attempts: u32,
    },

    #[error("SSH handshake with {host} failed (tried {attempts} times): {source}")]
    Handshake {
        host: String,
        attempts: u32,
        source: russh::Error,
    },

    #[error(
        "the host key of {host} is not known: {known_hosts} has no {key_type} key for {name}; \
         it offered {fingerprint}.{other_types}\n\
         If that fingerprint is the host's (check on the host with `ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub`), \
         record it with `ssh-keyscan -p {port} {address} >> {known_hosts}`, \
         or set host_key_checking = \"accept-new\" to record new hosts' keys on first contact"
    )]
    HostKeyUnknown {
        host: String,
        address: String,
        port: u16,
        /// The name looked up in known_hosts (`[address]:port` when port != 22).
        name: String,
        key_type: String,
        fingerprint: String,
        known_hosts: PathBuf,
        /// A note when known_hosts holds keys of other types for this host.
        other_types: &'static str,
    },

    #[error(
        "THE HOST KEY OF {host} HAS CHANGED: it offered {key_type} {fingerprint}, but {known_hosts} \
         line(s) {lines:?} record a different {key_type} key for {name}. Someone may be \
         intercepting the connection, or the host was reinstalled. If the new key is legitimate, \
         remove the old one with `ssh-keygen -f {known_hosts} -R '{name}'` and record the new one"
    )]
    HostKeyChanged {
        host: String,
        name: String,
        key_type: String,
        fingerprint: String,
        known_hosts: PathBuf,
        lines: Vec<usize>,
    },

    #[error("the host key of {host} ({fingerprint}) is marked @revoked in {known_hosts} line {line}; refusing to connect")]
    HostKeyRevoked {
        host: String,
        fingerprint: String,
        known_hosts: PathBuf,
        line: usize,
    },

    #[error("cannot use known_hosts file {path} for {host}: {source}")]
    KnownHosts {
        host: String,
        path: PathBuf,
        source: std::io::Error,
    },

    #[error("{host} refused authentication as user {user:?}; tried: {}", tried.join(", "))]
    AuthRefused {
        host: String,
        user: String,
        /// Each method offered, e.g. `ssh-agent key SHA256:...`, `key file /root/.ssh/id_rsa`.
        tried: Vec<String>,
    },

    #[error(
        "the private key {path} for {host} is encrypted and no passphrase is available; \
         set K8SUP_KEY_PASSPHRASE, run from a terminal to be asked, or load the key into ssh-agent"
    )]
    KeyPassphraseRequired { host: String, path: PathBuf },

    #[error("cannot use the private key {path} for {host}: {reason}")]
    KeyFile {
        host: String,
        path: PathBuf,
        reason: String,
    },

    #[error("cannot reach {host} through bastion {bastion}: {source}")]
    Jump {
        host: String,
        bastion: String,
        source: Box<ConnectError>,
    },

    #[error("bastion {bastion} could not open a tunnel to {host} at {address}:{port}: {source}")]
    Tunnel {
        host: String,
        bastion: String,
        address: String,
        port: u16,
        source: russh::Error,
    },

    #[error("SSH connection to {host} failed while {step}: {source}")]
    Protocol {
        host: String,
        step: &'static str,
        source: russh::Error,
    },
}

impl ConnectError {
    /// Whether a fresh attempt may succeed: the network or the handshake failed, not
    /// a decision (host key, authentication) that would be the same next time.
    pub(crate) fn is_transient(&self) -> bool {
        matches!(
            self,
            ConnectError::Unreachable { .. }
                | ConnectError::Timeout { .. }
                | ConnectError::Handshake { .. }
        )
    }

    /// Records how many attempts were made, for the message.
    pub(crate) fn with_attempts(mut self, made: u32) -> Self {
        match &mut self {
            ConnectError::Unreachable { attempts, .. }
            | ConnectError::Timeout { attempts, .. }
            | ConnectError::Handshake { attempts, .. } => *attempts = made,
            _ => {}
        }
        self
    }
}

/// Why a command, upload or download did not complete.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("on {host}, {step} failed for `{command}`: {source}")]
    Channel {
        host: String,
        step: &'static str,
        command: String,
        source: russh::Error,
    },

    #[error("on {host}, `{command}` did not finish within {after:?}; its channel was closed")]
    Timeout {
        host: String,
        command: String,
        after: Duration,
    },

    #[error(
        "on {host}, sudo asks for a password to run `{command}`; set K8SUP_BECOME_PASSWORD \
         or allow the SSH user passwordless sudo"
    )]
    BecomePasswordRequired { host: String, command: String },

    #[error("on {host}, sudo refused the password in K8SUP_BECOME_PASSWORD for `{command}`")]
    BecomePasswordRejected { host: String, command: String },

    #[error("on {host}, {step} failed ({status}) for `{command}`: {stderr}")]
    Failed {
        host: String,
        step: &'static str,
        command: String,
        status: String,
        stderr: String,
    },

    #[error(
        "on {host}, the shell was restarted and could not hold the host's lock again \
         before `{command}`: {reason}"
    )]
    LockLost {
        host: String,
        command: String,
        reason: String,
    },

    #[error("on {host}, the remote path {path:?} cannot be used: {reason}")]
    InvalidPath {
        host: String,
        path: String,
        reason: &'static str,
    },

    #[error("on {host}, the {what} {value:?} cannot be put on a command line: {source}")]
    InvalidValue {
        host: String,
        what: &'static str,
        value: String,
        source: NulByteError,
    },
}
