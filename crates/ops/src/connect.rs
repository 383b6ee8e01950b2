//! From inventory hosts to SSH sessions, all hosts at once.

use std::time::Duration;

use k8sup_inventory::{Host, HostKeyChecking, Inventory};
use k8sup_ssh::{EventSink, Secrets, Target};

use crate::lock::{HostLockError, RunInfo, HOST_LOCK_FILE};

/// What the command line adds to the inventory for connecting.
#[derive(Clone, Default)]
pub struct ConnectOptions {
    /// Secrets from the environment (become password, key passphrase).
    pub secrets: Secrets,
    /// Where transport warnings go (host key checking off, retries).
    pub events: EventSink,
    /// Overrides `ssh.parallelism` (`--parallel`).
    pub parallel: Option<usize>,
    /// The run that locks every host it connects to (`plan`, `apply`, `reset`);
    /// `None` for what only reads (`facts`, `check`).
    pub run: Option<RunInfo>,
    /// A read-only script the inventory's first master runs in the request of its
    /// facts (after them, once it is locked), so that what the run reads of the
    /// cluster costs no round trip of its own: its output is
    /// [`crate::converge::Prepared::first_master_read`]. It must hold no secret (see
    /// [`crate::facts::gather_host_then`]).
    pub first_master_read: Option<k8sup_shell::Script>,
}

impl ConnectOptions {
    /// How many hosts are worked on at once.
    pub fn parallelism(&self, inventory: &Inventory) -> usize {
        self.parallel.unwrap_or(inventory.parallelism).max(1)
    }
}

/// How to reach `host`: its merged `[ssh]` settings as a transport target.
pub fn target_for(host: &Host, options: &ConnectOptions) -> Target {
    let ssh = &host.ssh;
    let mut target = Target::new(&host.name, &host.address, &ssh.user);
    target.port = ssh.port;
    target.identity_file = ssh.identity_file.clone();
    target.known_hosts = ssh.known_hosts.clone();
    target.host_key_checking = match ssh.host_key_checking {
        HostKeyChecking::Strict => k8sup_ssh::HostKeyChecking::Strict,
        HostKeyChecking::AcceptNew => k8sup_ssh::HostKeyChecking::AcceptNew,
        HostKeyChecking::Off => k8sup_ssh::HostKeyChecking::Off,
    };
    target.sudo = ssh.become_root;
    target.connect_timeout = ssh.connect_timeout;
    target.command_timeout = ssh.command_timeout;
    target.keepalive_interval = Some(Duration::from_secs(30));
    target.secrets = options.secrets.clone();
    target.events = options.events.clone();
    if options.run.is_some() {
        target.held_file = Some(HOST_LOCK_FILE.to_string());
    }
    if let Some(jump) = &ssh.jump_host {
        // The inventory already checked the form; the bastion is reached with
        // this host's keys, known_hosts and policy, never through sudo.
        let mut bastion = target.clone();
        bastion.name = format!("{} (bastion for {})", jump.host, host.name);
        bastion.address = jump.host.clone();
        bastion.port = jump.port;
        bastion.user = jump.user.clone().unwrap_or_else(|| ssh.user.clone());
        bastion.sudo = false;
        bastion.jump_host = None;
        target.jump_host = Some(Box::new(bastion));
    }
    target
}

/// Hosts locked for one run, each by a session kept open for that only: the
/// work itself may use other sessions (without `run`). The locks end when the
/// sessions close ([`HeldHosts::release`], or the process ending).
pub struct HeldHosts {
    sessions: Vec<k8sup_ssh::Session>,
}

impl HeldHosts {
    /// Closes the lock sessions: the hosts are free for the next run.
    pub async fn release(self) {
        for session in self.sessions {
            session.close().await;
        }
    }
}

/// Why one host could not be held for a run.
#[derive(Debug, thiserror::Error)]
pub enum HostHoldError {
    #[error("{host}: {source}")]
    Unreachable {
        host: String,
        #[source]
        source: Box<k8sup_ssh::ConnectError>,
    },
    #[error("{host}: {source}")]
    Lock {
        host: String,
        #[source]
        source: HostLockError,
    },
}

/// The hosts [`hold_hosts`] could not hold, each with why; none of them stays
/// locked.
#[derive(Debug, thiserror::Error)]
#[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
pub struct HoldError(pub Vec<HostHoldError>);

/// Locks `hosts` for `run` before a command that changes them outside `apply`
/// (`certs renew`, `etcd restore`), first host first as `apply` does, so that of
/// such a command and an apply from another controller only one goes on. Every host
/// must be reached and locked, or none stays locked and the error says which one
/// and why.
pub async fn hold_hosts(
    hosts: &[&Host],
    options: &ConnectOptions,
    run: &RunInfo,
) -> Result<HeldHosts, HoldError> {
    let options = ConnectOptions {
        run: Some(run.clone()),
        ..options.clone()
    };
    let order = hosts
        .first()
        .map(|first| crate::lock::LockOrder::new(&first.name));
    let results = futures::future::join_all(hosts.iter().map(|host| {
        let options = &options;
        let order = order.as_ref();
        async move {
            let session = match k8sup_ssh::connect(&target_for(host, options)).await {
                Ok(session) => session,
                Err(e) => {
                    if let Some(order) = order {
                        order.unreachable(&host.name);
                    }
                    return Err(HostHoldError::Unreachable {
                        host: host.name.clone(),
                        source: Box::new(e),
                    });
                }
            };
            let locked = match order {
                Some(order) => order.lock(&host.name, &session, run).await,
                None => crate::lock::lock_host(&session, run, None).await,
            };
            match locked {
                Ok(()) => Ok(session),
                Err(source) => {
                    session.close().await;
                    Err(HostHoldError::Lock {
                        host: host.name.clone(),
                        source,
                    })
                }
            }
        }
    }))
    .await;
    let mut sessions = Vec::new();
    let mut errors = Vec::new();
    for result in results {
        match result {
            Ok(session) => sessions.push(session),
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        Ok(HeldHosts { sessions })
    } else {
        HeldHosts { sessions }.release().await;
        Err(HoldError(errors))
    }
}
