//! `k8sup reset`: the reset playbook (`playbooks/reset.toml`) run through the
//! engine on every selected host, so that `apply` starts afresh; and its plan
//! (`reset --dry-run`), which changes nothing. The removal of a reachable node
//! ([`crate::remove`]) runs the same playbook on it.
//!
//! Every host is connected to and locked first: when another run holds any of
//! them, none is reset. The playbook's tasks are guarded by what each host says,
//! so a half-installed or already reset host is reset too, changing only what is
//! left.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use k8sup_engine::{
    Engine, EngineError, EngineEvent, EngineOptions, EventSink, Family, HostOutcome, HostPlan,
    HostSpec, Platform, Playbook, PlaybookError, TemplateSet,
};
use k8sup_inventory::{Host, Inventory};
use k8sup_kube::playbook::{RESET_PLAYBOOK, RESET_PLAYBOOK_NAME};
use k8sup_shell::Script;
use k8sup_ssh::{CommandError, ConnectError, Session, Transport};

use crate::connect::{target_for, ConnectOptions};
use crate::converge::roles;
use crate::fan_out::in_order;
use crate::lock::{HostLockError, LockOrder};

/// Where the engine keeps the reset's own ledger on a host while it runs; removed
/// when the reset is done. The engine records every task it applies in a ledger,
/// and writes it (making its directory) right after each one, so a ledger under
/// /var/lib/k8sup would bring back the directory the reset's last task removes.
/// /run is a tmpfs that no reboot keeps, beside the host lock (`/run/k8sup.lock`);
/// the reset's tasks are judged by their guards alone, so a ledger left by a
/// killed reset changes nothing of the next one, which removes it.
pub const RESET_STATE_DIR: &str = "/run/k8sup-reset";

/// The reset's ledger, in [`RESET_STATE_DIR`].
const RESET_STATE_PATH: &str = "/run/k8sup-reset/ledger.json";

/// Why a host was not reset (or its reset not planned).
#[derive(Debug, thiserror::Error)]
pub enum ResetError {
    #[error(transparent)]
    Unreachable(Box<ConnectError>),
    #[error("{host}: {source}; nothing was changed")]
    Locked {
        host: String,
        #[source]
        source: HostLockError,
    },
    #[error("{host}: {source}")]
    Lock {
        host: String,
        #[source]
        source: HostLockError,
    },
    #[error("{host} was not reset: another run holds one of the hosts; nothing was changed")]
    OtherHostLocked { host: String },
    #[error("reset failed on {host} at {step:?}{}: {said}", status.as_ref().map(|s| format!(" ({s})")).unwrap_or_default())]
    Step {
        host: String,
        /// The playbook task that failed.
        step: String,
        /// Its exit status, when it ran to an end.
        status: Option<String>,
        /// The last line it printed on stderr, or the engine's reason.
        said: String,
    },
    /// The reset playbook or the engine failed, for every host of the run.
    #[error("reset failed on {host}: {source}")]
    Run {
        host: String,
        #[source]
        source: Arc<ResetError>,
    },
    /// The reset ended without a word on this host.
    #[error("reset failed on {host}: the reset did not report on it")]
    NoReport { host: String },
    /// The reset's plan did not cover this host.
    #[error("reset failed on {host}: the plan did not cover it")]
    NotPlanned { host: String },
    /// The engine stopped on the host outside of any task: its message.
    #[error("reset failed on {host}: {message}")]
    Stopped { host: String, message: String },
    #[error("the reset playbook {RESET_PLAYBOOK_NAME}: {0}")]
    Playbook(#[from] PlaybookError),
    #[error("the reset playbook {RESET_PLAYBOOK_NAME}: {0}")]
    Engine(#[from] EngineError),
    #[error("{host} was reset, but the reset's ledger {RESET_STATE_DIR} is left: {source}")]
    LedgerLeft {
        host: String,
        #[source]
        source: Box<CommandError>,
    },
    #[error(
        "{host} was reset, but the reset's ledger {RESET_STATE_DIR} is left ({status}): {said}"
    )]
    LedgerNotRemoved {
        host: String,
        status: String,
        said: String,
    },
}

/// How one host's reset went.
#[derive(Debug)]
pub struct ResetReport {
    pub host: String,
    pub result: Result<(), ResetError>,
}

/// What a reset would do on one host.
#[derive(Debug)]
pub struct ResetPlan {
    pub host: String,
    /// The playbook's tasks as the engine plans them on the host.
    pub plan: Result<HostPlan, ResetError>,
}

/// The reset playbook, parsed.
pub fn playbook() -> Result<Playbook, PlaybookError> {
    Playbook::parse(RESET_PLAYBOOK_NAME, RESET_PLAYBOOK)
}

/// The engine over the reset playbook; `secrets` are kept out of every output.
fn engine(parallelism: usize, secrets: &[String]) -> Result<Engine, ResetError> {
    let engine = Engine::new(
        playbook()?,
        &TemplateSet::new(),
        EngineOptions {
            parallelism: parallelism.max(1),
            state_path: RESET_STATE_PATH.to_string(),
            history_dir: None,
            read_only: BTreeSet::new(),
        },
    );
    for secret in secrets {
        engine.redactor().add(secret);
    }
    Ok(engine)
}

/// The values of `options` to keep out of outputs (the become password...).
fn secrets(options: &ConnectOptions) -> Vec<String> {
    [
        &options.secrets.become_password,
        &options.secrets.key_passphrase,
    ]
    .into_iter()
    .flatten()
    .map(|s| s.expose().to_string())
    .collect()
}

/// The engine's view of a host to reset. The reset reads no facts: each of its
/// tasks asks the host itself, so the platform is left unknown.
fn host_spec(inventory: &Inventory, host: &Host, transport: Arc<dyn Transport>) -> HostSpec {
    HostSpec {
        name: host.name.clone(),
        roles: roles(host),
        labels: host.labels.clone(),
        first_master: inventory.first_master().name == host.name,
        platform: Platform {
            arch: String::new(),
            family: Family::Other,
            distro: String::new(),
            distro_version: String::new(),
        },
        context: k8sup_engine::Context::default(),
        artifacts: BTreeMap::new(),
        transport,
    }
}

/// The hosts of a reset that answered (and were locked), as the engine sees them.
struct Connected {
    specs: Vec<HostSpec>,
    sessions: Vec<Arc<Session>>,
}

impl Connected {
    fn add(&mut self, inventory: &Inventory, host: &Host, session: Session) {
        let session = Arc::new(session);
        self.specs.push(host_spec(inventory, host, session.clone()));
        self.sessions.push(session);
    }

    /// Closes every session, once the engine is done with them.
    async fn close(self) {
        drop(self.specs);
        for session in self.sessions {
            if let Ok(session) = Arc::try_unwrap(session) {
                session.close().await;
            }
        }
    }
}

/// The same error for every host of `specs`: the playbook or the engine failed.
fn on_every_host<T>(specs: &[HostSpec], e: ResetError) -> BTreeMap<String, Result<T, ResetError>> {
    let source = Arc::new(e);
    specs
        .iter()
        .map(|spec| {
            let error = ResetError::Run {
                host: spec.name.clone(),
                source: source.clone(),
            };
            (spec.name.clone(), Err(error))
        })
        .collect()
}

/// `results` in the order of `hosts`; a host without one gets `missing(host)`.
fn in_order_of<T>(
    hosts: &[&Host],
    mut results: BTreeMap<String, Result<T, ResetError>>,
    missing: fn(String) -> ResetError,
) -> Vec<(String, Result<T, ResetError>)> {
    hosts
        .iter()
        .map(|host| {
            let result = results
                .remove(&host.name)
                .unwrap_or_else(|| Err(missing(host.name.clone())));
            (host.name.clone(), result)
        })
        .collect()
}

/// Resets every host of `hosts` in parallel, the engine's events going to `events`.
/// With `options.run`, every host is connected to and locked first: when another
/// run holds any of them, none is reset.
pub async fn reset(
    inventory: &Inventory,
    hosts: &[&Host],
    options: &ConnectOptions,
    events: EventSink,
) -> Vec<ResetReport> {
    let sessions = connect_all(inventory, hosts, options).await;
    let any_locked = sessions
        .iter()
        .any(|s| matches!(s, Err(ResetError::Locked { .. })));
    let mut results = BTreeMap::new();
    let mut connected = Connected {
        specs: Vec::new(),
        sessions: Vec::new(),
    };
    for (host, session) in hosts.iter().zip(sessions) {
        match session {
            Ok(session) if any_locked => {
                session.close().await;
                let host = host.name.clone();
                results.insert(host.clone(), Err(ResetError::OtherHostLocked { host }));
            }
            Ok(session) => connected.add(inventory, host, session),
            Err(e) => {
                results.insert(host.name.clone(), Err(e));
            }
        }
    }
    if !connected.specs.is_empty() {
        let parallelism = options.parallelism(inventory);
        let secrets = secrets(options);
        results.extend(run(&connected.specs, parallelism, &secrets, events).await);
    }
    connected.close().await;
    in_order_of(hosts, results, |host| ResetError::NoReport { host })
        .into_iter()
        .map(|(host, result)| ResetReport { host, result })
        .collect()
}

/// What a reset would do on every host of `hosts`, changing nothing. Hosts are
/// locked as by [`reset`] (a plan of a host another run is changing would be stale
/// at once); each one that cannot be planned says why.
pub async fn plan(
    inventory: &Inventory,
    hosts: &[&Host],
    options: &ConnectOptions,
) -> Vec<ResetPlan> {
    let sessions = connect_all(inventory, hosts, options).await;
    let mut plans = BTreeMap::new();
    let mut connected = Connected {
        specs: Vec::new(),
        sessions: Vec::new(),
    };
    for (host, session) in hosts.iter().zip(sessions) {
        match session {
            Ok(session) => connected.add(inventory, host, session),
            Err(e) => {
                plans.insert(host.name.clone(), Err(e));
            }
        }
    }
    if !connected.specs.is_empty() {
        let planned = match engine(options.parallelism(inventory), &secrets(options)) {
            Ok(engine) => engine
                .plan(&connected.specs)
                .await
                .map_err(ResetError::from),
            Err(e) => Err(e),
        };
        match planned {
            Ok(planned) => {
                for host_plan in planned.hosts {
                    plans.insert(host_plan.host.clone(), Ok(host_plan));
                }
            }
            Err(e) => plans.extend(on_every_host(&connected.specs, e)),
        }
    }
    connected.close().await;
    in_order_of(hosts, plans, |host| ResetError::NotPlanned { host })
        .into_iter()
        .map(|(host, plan)| ResetPlan { host, plan })
        .collect()
}

/// Resets one host over a connection the caller holds (and locked): the removal
/// of a reachable node.
pub(crate) async fn reset_over(
    inventory: &Inventory,
    host: &Host,
    session: Arc<Session>,
    events: EventSink,
) -> Result<(), ResetError> {
    let specs = [host_spec(inventory, host, session)];
    let mut results = run(&specs, 1, &[], events).await;
    results.remove(&host.name).unwrap_or_else(|| {
        Err(ResetError::NoReport {
            host: host.name.clone(),
        })
    })
}

/// Connects to every host (and, with `options.run`, locks it), first host first.
async fn connect_all(
    inventory: &Inventory,
    hosts: &[&Host],
    options: &ConnectOptions,
) -> Vec<Result<Session, ResetError>> {
    let n = options.parallelism(inventory);
    let order = hosts.first().map(|first| LockOrder::new(&first.name));
    let order = order.as_ref();
    in_order(hosts, n, |host| connect_and_lock(host, options, order)).await
}

async fn connect_and_lock(
    host: &Host,
    options: &ConnectOptions,
    order: Option<&LockOrder>,
) -> Result<Session, ResetError> {
    let session = match k8sup_ssh::connect(&target_for(host, options)).await {
        Ok(session) => session,
        Err(e) => {
            if let Some(order) = order {
                order.unreachable(&host.name);
            }
            return Err(ResetError::Unreachable(Box::new(e)));
        }
    };
    if let (Some(run), Some(order)) = (&options.run, order) {
        if let Err(e) = order.lock(&host.name, &session, run).await {
            session.close().await;
            let host = host.name.clone();
            return Err(match e {
                HostLockError::Held(_) => ResetError::Locked { host, source: e },
                HostLockError::Failed(_) => ResetError::Lock { host, source: e },
            });
        }
    }
    Ok(session)
}

/// A failed task's exit status (when it ran to an end) and the tail of its stderr.
type Failure = (Option<String>, String);

/// Runs the reset playbook on `specs` (in parallel), then removes its ledger from
/// each of them; how each host's reset went.
async fn run(
    specs: &[HostSpec],
    parallelism: usize,
    secrets: &[String],
    events: EventSink,
) -> BTreeMap<String, Result<(), ResetError>> {
    let engine = match engine(parallelism, secrets) {
        Ok(engine) => engine,
        Err(e) => return on_every_host(specs, e),
    };
    // Each host's failure as the engine told it: its exit status and stderr.
    let failures: Arc<Mutex<BTreeMap<String, Failure>>> = Arc::default();
    let seen = failures.clone();
    let sink: EventSink = Arc::new(move |event: EngineEvent| {
        if let EngineEvent::HostFailed {
            host,
            exit_status,
            stderr_tail,
            ..
        } = &event
        {
            if let Ok(mut seen) = seen.lock() {
                seen.insert(host.clone(), (exit_status.clone(), stderr_tail.clone()));
            }
        }
        events(event);
    });
    let report = match engine.apply(specs, None, sink).await {
        Ok(report) => report,
        Err(e) => return on_every_host(specs, e.into()),
    };
    let failures = failures.lock().map(|f| f.clone()).unwrap_or_default();
    let mut results = BTreeMap::new();
    for host in report.hosts {
        let result = if host.outcome == HostOutcome::Ok {
            Ok(())
        } else {
            let failed = host.tasks.iter().find(|t| t.outcome == "failed");
            let (status, stderr) = failures.get(&host.host).cloned().unwrap_or_default();
            let said = crate::etcd::last_line(&stderr).to_string();
            match failed {
                Some(task) => Err(ResetError::Step {
                    host: host.host.clone(),
                    step: task.name.clone(),
                    status,
                    said: if said.is_empty() {
                        task.error.clone().unwrap_or_else(|| "it failed".into())
                    } else {
                        said
                    },
                }),
                None => Err(ResetError::Stopped {
                    host: host.host.clone(),
                    message: host.error.clone().unwrap_or_else(|| "it stopped".into()),
                }),
            }
        };
        results.insert(host.host.clone(), result);
    }
    for spec in specs {
        let removed = remove_ledger(spec.transport.as_ref()).await;
        if let (Some(Ok(())), Err(e)) = (results.get(&spec.name), removed) {
            results.insert(spec.name.clone(), Err(e));
        }
    }
    results
}

/// Removes the reset's ledger ([`RESET_STATE_DIR`]) from the host, whatever the
/// reset's outcome: it is of no use once the reset is over.
async fn remove_ledger(transport: &dyn Transport) -> Result<(), ResetError> {
    let host = transport.host().to_string();
    let out = transport
        .run(&Script::new("rm -rf --").code(RESET_STATE_DIR))
        .await
        .map_err(|source| ResetError::LedgerLeft {
            host: host.clone(),
            source: Box::new(source),
        })?;
    if out.success() {
        Ok(())
    } else {
        Err(ResetError::LedgerNotRemoved {
            host,
            status: out.status_text(),
            said: crate::etcd::last_line(&out.stderr_text()).to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A run that failed as a whole fails every host with the one error, as its cause;
    /// a host the run said nothing of is named, in the hosts' order.
    #[test]
    fn every_host_gets_the_run_s_error_and_a_silent_host_is_named() {
        let text = "[cluster]\nname = \"c\"\nkubernetes_version = \"1.30.4\"\n\n[[hosts]]\nname = \"m1\"\naddress = \"10.0.0.1\"\nroles = [\"master\"]\n\n[[hosts]]\nname = \"w1\"\naddress = \"10.0.0.2\"\nroles = [\"node\"]\n";
        let path = std::path::Path::new("inv.toml");
        let inventory = k8sup_inventory::Inventory::from_bytes(
            path,
            text.as_bytes(),
            &k8sup_inventory::LoadContext::for_file(path),
        )
        .expect("the test inventory parses");
        let specs: Vec<HostSpec> = inventory
            .hosts
            .iter()
            .map(|h| {
                host_spec(
                    &inventory,
                    h,
                    Arc::new(k8sup_engine::testing::LocalTransport::new(&h.name)),
                )
            })
            .collect();
        let results: BTreeMap<String, Result<(), ResetError>> =
            on_every_host(&specs, ResetError::OtherHostLocked { host: "x".into() });
        for (host, result) in &results {
            let error = result.as_ref().unwrap_err();
            assert_eq!(
                error.to_string(),
                format!("reset failed on {host}: x was not reset: another run holds one of the hosts; nothing was changed")
            );
            assert!(std::error::Error::source(error).is_some());
        }
        let hosts: Vec<&Host> = inventory.hosts.iter().collect();
        let mut one = BTreeMap::new();
        one.insert("w1".to_string(), Ok::<(), ResetError>(()));
        let ordered = in_order_of(&hosts, one, |host| ResetError::NoReport { host });
        assert_eq!(ordered[0].0, "m1");
        assert_eq!(
            ordered[0].1.as_ref().unwrap_err().to_string(),
            "reset failed on m1: the reset did not report on it"
        );
        assert!(ordered[1].1.is_ok());
    }

    /// One task per step, in the order a reset must take them: kubeadm first (it
    /// needs what the later steps remove), k8sup's state last (a reset stopped
    /// before it still leaves the host marked as k8sup's).
    #[test]
    fn the_reset_playbook_parses_with_its_steps_in_order() {
        let playbook = playbook().expect("playbooks/reset.toml parses");
        let names: Vec<&str> = playbook
            .plays
            .iter()
            .flat_map(|p| &p.tasks)
            .map(|t| t.name.as_str())
            .collect();
        assert_eq!(
            names,
            [
                "kubeadm reset",
                "kubelet stopped",
                "kubernetes directories removed",
                "CNI links deleted",
                "iptables flushed",
                "ipvs cleared",
                "haproxy balancer removed",
                "k8sup state removed",
            ]
        );
        for play in &playbook.plays {
            assert!(play.handlers.is_empty(), "a reset notifies nothing");
        }
    }
}
