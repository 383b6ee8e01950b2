//! How to reach one host: address, user, keys, host key policy, timeouts, secrets.
//!
//! A [`Target`] is plain data the CLI fills from the inventory; this crate does not
//! know the inventory. A bastion is just another `Target` (see [`Target::bastion`]),
//! so the same connect code reaches it and the host behind it.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::event::EventSink;

/// Environment variable holding the passphrase of encrypted private keys.
pub const KEY_PASSPHRASE_ENV: &str = "K8SUP_KEY_PASSPHRASE";
/// Environment variable holding the password `sudo` asks for when `become` is set.
pub const BECOME_PASSWORD_ENV: &str = "K8SUP_BECOME_PASSWORD";

/// What to do with a host key that `known_hosts` does not vouch for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HostKeyChecking {
    /// Unknown and changed keys are refused (the default).
    #[default]
    Strict,
    /// Unknown keys are recorded in `known_hosts`; changed keys are still refused.
    AcceptNew,
    /// Every key is accepted, with a warning event. For throwaway labs only.
    Off,
}

/// How to reach one host.
#[derive(Clone, Debug)]
pub struct Target {
    /// The host's name in the inventory, used in every message.
    pub name: String,
    /// Where to connect: an IP address or a DNS name.
    pub address: String,
    pub port: u16,
    pub user: String,
    /// The private key to offer after the agent's keys; `None` tries
    /// `~/.ssh/id_ed25519` then `~/.ssh/id_rsa`.
    pub identity_file: Option<PathBuf>,
    pub known_hosts: PathBuf,
    pub host_key_checking: HostKeyChecking,
    /// A bastion to tunnel through (OpenSSH's ProxyJump).
    pub jump_host: Option<Box<Target>>,
    /// Run every command through `sudo` (the inventory's `become`).
    pub sudo: bool,
    /// Limit for one connection attempt: TCP, key exchange and authentication.
    pub connect_timeout: Duration,
    /// Default limit for one command; [`crate::RunOptions::timeout`] overrides it.
    pub command_timeout: Duration,
    pub keepalive_interval: Option<Duration>,
    /// Connection attempts before giving up (only failures to connect are retried).
    pub connect_attempts: u32,
    pub secrets: Secrets,
    /// Send commands to one shell that stays on one channel (see the `shell` module);
    /// `false` opens a channel per command, as plain `ssh host cmd` does.
    pub reuse_shell: bool,
    /// A file the session's shell opens on fd 9 when it starts and keeps open for its
    /// whole life (`None`: no such file). A lock taken on that fd (`flock -n 9` in a
    /// command) is then held by the shell and by every command it starts, also by one
    /// left running after the connection is gone, until the last of them ends.
    pub held_file: Option<String>,
    /// Where warnings and progress notes go (host key checking off, retries).
    pub events: EventSink,
}

impl Target {
    /// A target with OpenSSH-like defaults: port 22, `~/.ssh/known_hosts`, strict
    /// host key checking, 10 s to connect, 15 min per command, keepalive every 30 s.
    pub fn new(
        name: impl Into<String>,
        address: impl Into<String>,
        user: impl Into<String>,
    ) -> Self {
        Target {
            name: name.into(),
            address: address.into(),
            port: 22,
            user: user.into(),
            identity_file: None,
            known_hosts: home_dir().join(".ssh").join("known_hosts"),
            host_key_checking: HostKeyChecking::Strict,
            jump_host: None,
            sudo: false,
            connect_timeout: Duration::from_secs(10),
            command_timeout: Duration::from_secs(15 * 60),
            keepalive_interval: Some(Duration::from_secs(30)),
            connect_attempts: 3,
            secrets: Secrets::default(),
            reuse_shell: true,
            held_file: None,
            events: EventSink::default(),
        }
    }

    /// The target for a bastion written `[user@]host[:port]`, reached with this
    /// target's keys, known_hosts, policy, timeouts and secrets (but never `sudo`).
    /// A missing user is this target's user; a missing port is 22.
    pub fn bastion(&self, spec: &str) -> Result<Target, JumpSpecError> {
        let (user, rest) = match spec.rsplit_once('@') {
            Some((user, rest)) if !user.is_empty() => (user.to_string(), rest),
            Some(_) => return Err(JumpSpecError::new(spec, "the user before '@' is empty")),
            None => (self.user.clone(), spec),
        };
        let (host, port) =
            split_host_port(rest).map_err(|reason| JumpSpecError::new(spec, reason))?;
        let mut bastion = self.clone();
        bastion.name = format!("{} (bastion for {})", host, self.name);
        bastion.address = host;
        bastion.port = port;
        bastion.user = user;
        bastion.jump_host = None;
        bastion.sudo = false;
        Ok(bastion)
    }

    /// The key files to try, in order, when the agent's keys were refused.
    pub(crate) fn identity_files(&self) -> Vec<PathBuf> {
        match &self.identity_file {
            Some(path) => vec![path.clone()],
            None => {
                let ssh = home_dir().join(".ssh");
                vec![ssh.join("id_ed25519"), ssh.join("id_rsa")]
            }
        }
    }
}

/// Splits `host`, `host:port`, `[v6]` or `[v6]:port`.
fn split_host_port(text: &str) -> Result<(String, u16), &'static str> {
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or("'[' without ']'")?;
        (host, after.strip_prefix(':'))
    } else {
        match text.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (text, None),
        }
    };
    if host.is_empty() {
        return Err("the host is empty");
    }
    let port = match port {
        Some(port) => port
            .parse()
            .map_err(|_| "the port is not a number from 1 to 65535")?,
        None => 22,
    };
    if port == 0 {
        return Err("the port is not a number from 1 to 65535");
    }
    Ok((host.to_string(), port))
}

fn home_dir() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/"))
}

/// A jump host written in a form we cannot read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("jump host {spec:?} is not [user@]host[:port]: {reason}")]
pub struct JumpSpecError {
    pub spec: String,
    pub reason: &'static str,
}

impl JumpSpecError {
    fn new(spec: &str, reason: &'static str) -> Self {
        JumpSpecError {
            spec: spec.to_string(),
            reason,
        }
    }
}

/// A secret string that never shows in `Debug` output or messages.
#[derive(Clone)]
pub struct Secret(Arc<str>);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(Arc::from(value.into()))
    }

    /// The secret itself; only for feeding it to the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Passphrases and passwords the connection may need.
///
/// The library never reads the environment by itself: the CLI
/// builds this with [`Secrets::from_env`], tests pass values directly.
#[derive(Clone, Debug, Default)]
pub struct Secrets {
    /// Passphrase for encrypted private key files.
    pub key_passphrase: Option<Secret>,
    /// Password fed to `sudo -S` when `become` is set.
    pub become_password: Option<Secret>,
    /// The ssh-agent socket (`SSH_AUTH_SOCK`) whose keys are offered first.
    pub agent_socket: Option<PathBuf>,
    /// Whether an encrypted key without a passphrase may be unlocked by asking on the
    /// terminal. [`Secrets::from_env`] sets it only when stdin is a terminal.
    pub prompt_for_passphrase: bool,
}

impl Secrets {
    /// Reads [`KEY_PASSPHRASE_ENV`], [`BECOME_PASSWORD_ENV`] and `SSH_AUTH_SOCK`; allows a passphrase
    /// prompt when stdin is a terminal.
    pub fn from_env() -> Self {
        use std::io::IsTerminal;
        let mut secrets = Secrets::from_lookup(|name| std::env::var(name).ok());
        secrets.prompt_for_passphrase = std::io::stdin().is_terminal();
        secrets
    }

    /// Builds secrets from any variable lookup (the environment, a test map).
    /// Empty values count as unset.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Self {
        let get = |name| lookup(name).filter(|v| !v.is_empty()).map(Secret::new);
        Secrets {
            key_passphrase: get(KEY_PASSPHRASE_ENV),
            become_password: get(BECOME_PASSWORD_ENV),
            agent_socket: lookup("SSH_AUTH_SOCK")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from),
            prompt_for_passphrase: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_come_from_the_named_variables() {
        let secrets = Secrets::from_lookup(|name| match name {
            KEY_PASSPHRASE_ENV => Some("key pass".into()),
            BECOME_PASSWORD_ENV => Some(String::new()),
            _ => None,
        });
        assert_eq!(
            secrets.key_passphrase.as_ref().map(Secret::expose),
            Some("key pass")
        );
        assert!(secrets.become_password.is_none());
        assert!(!format!("{secrets:?}").contains("key pass"));
    }

    #[test]
    fn bastion_inherits_auth_but_not_sudo() {
        let mut target = Target::new("n1", "10.0.0.5", "ubuntu");
        target.sudo = true;
        target.identity_file = Some("/keys/id".into());
        let bastion = target
            .bastion("admin@bastion.example.org:2222")
            .expect("parses");
        assert_eq!(
            (
                bastion.user.as_str(),
                bastion.address.as_str(),
                bastion.port
            ),
            ("admin", "bastion.example.org", 2222)
        );
        assert!(!bastion.sudo);
        assert_eq!(bastion.identity_file, target.identity_file);
        let bare = target.bastion("[fd00::1]").expect("parses");
        assert_eq!(
            (bare.user.as_str(), bare.address.as_str(), bare.port),
            ("ubuntu", "fd00::1", 22)
        );
    }

    #[test]
    fn bad_jump_specs_are_refused() {
        let target = Target::new("n1", "10.0.0.5", "root");
        for spec in ["@host", "host:x", "host:0", ":22", "[::1"] {
            assert!(target.bastion(spec).is_err(), "{spec}");
        }
    }
}
