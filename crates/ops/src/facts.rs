//! Gather facts from every host in parallel: one connection and one command
//! per host (two when sudo does not work, to still report the rest).

use k8sup_facts::{HostFacts, GATHER_SCRIPT};
use k8sup_inventory::{Host, Inventory};
use k8sup_shell::Script;
use k8sup_ssh::{CommandError, CommandOutput, ConnectError, Session};

use crate::connect::{target_for, ConnectOptions};
use crate::fan_out::in_order;
use crate::lock::{lock_then, HostLockError, LockOrder};

/// What one host answered.
#[derive(Debug)]
pub struct HostReport {
    pub host: String,
    pub outcome: Outcome,
}

#[derive(Debug)]
pub enum Outcome {
    /// Facts gathered; `sudo_problem` says why sudo failed when the facts were
    /// gathered as the SSH user instead.
    Facts {
        facts: Box<HostFacts>,
        sudo_problem: Option<GatherError>,
    },
    /// No connection, or the host did not answer as a host should.
    Failed(GatherError),
}

/// Gathers facts from `hosts` (in inventory order in the result).
pub async fn gather(
    inventory: &Inventory,
    hosts: &[&Host],
    options: &ConnectOptions,
) -> Vec<HostReport> {
    let n = options.parallelism(inventory);
    in_order(hosts, n, |host| async move {
        let gathered = gather_host(host, options, None).await;
        if let Some(session) = gathered.session {
            session.close().await;
        }
        HostReport {
            host: host.name.clone(),
            outcome: gathered.outcome,
        }
    })
    .await
}

/// A host's facts and the connection they came over, kept for what follows.
pub struct Gathered {
    /// The connection, when one was made. After a sudo problem it is the one
    /// without sudo, which can read but not change the host.
    pub session: Option<Session>,
    pub outcome: Outcome,
    /// With `ConnectOptions::run`: whether the host was locked for the run, taken
    /// before anything else ran on it (a host another run holds gets no facts script).
    pub lock: Option<Result<(), HostLockError>>,
}

/// Connects to `host` and gathers its facts with one command; with `options.run`,
/// locks it first, in `order`.
pub async fn gather_host(
    host: &Host,
    options: &ConnectOptions,
    order: Option<&LockOrder>,
) -> Gathered {
    let target = target_for(host, options);
    let session = match k8sup_ssh::connect(&target).await {
        Ok(session) => session,
        Err(e) => {
            if let Some(order) = order {
                order.unreachable(&host.name);
            }
            return Gathered {
                session: None,
                outcome: Outcome::Failed(GatherError::Unreachable(Box::new(e))),
                lock: None,
            };
        }
    };
    // With a run, the lock and the facts go in one request: the facts run only once the
    // host is locked. A lock that failed for another reason than another run's (no
    // root, say) is retried by nothing, but the facts are still gathered, to say why.
    let (lock, facts) = match &options.run {
        Some(run) => {
            let turn = match order {
                Some(order) => order.turn(&host.name).await,
                None => Ok(()),
            };
            let (result, facts) = match turn {
                Ok(()) => lock_then(&session, run, GATHER_SCRIPT).await,
                Err(held) => (Err(held), None),
            };
            if let Some(order) = order {
                order.settle(&host.name, &result);
            }
            (Some(result), facts)
        }
        None => (None, None),
    };
    if let Some(Err(held @ HostLockError::Held(_))) = &lock {
        let outcome = Outcome::Failed(GatherError::Locked(held.clone()));
        session.close().await;
        return Gathered {
            session: None,
            outcome,
            lock,
        };
    }
    let gathered = gather_on(session, &target, facts).await;
    Gathered { lock, ..gathered }
}

/// Gathers the facts on `session` (one made for `target`), or reads them from `asked`,
/// the output of a request that already ran the facts script there.
async fn gather_on(
    session: Session,
    target: &k8sup_ssh::Target,
    asked: Option<CommandOutput>,
) -> Gathered {
    let answer = match asked {
        Some(out) => facts_from(session.host(), &out),
        None => run_script(&session).await,
    };
    match answer {
        Ok(facts) => Gathered {
            session: Some(session),
            outcome: Outcome::Facts {
                facts: Box::new(facts),
                sudo_problem: None,
            },
            lock: None,
        },
        Err(problem) if problem.is_sudo() => {
            // Sudo does not work: say so, and gather what the user can see.
            session.close().await;
            let mut plain = target.clone();
            plain.sudo = false;
            match k8sup_ssh::connect(&plain).await {
                Ok(s) => {
                    let outcome = match run_script(&s).await {
                        Ok(facts) => Outcome::Facts {
                            facts: Box::new(facts),
                            sudo_problem: Some(problem),
                        },
                        Err(e) => Outcome::Failed(e),
                    };
                    Gathered {
                        session: Some(s),
                        outcome,
                        lock: None,
                    }
                }
                Err(e) => Gathered {
                    session: None,
                    outcome: Outcome::Failed(GatherError::Unreachable(Box::new(e))),
                    lock: None,
                },
            }
        }
        Err(e) => Gathered {
            session: Some(session),
            outcome: Outcome::Failed(e),
            lock: None,
        },
    }
}

/// Why a host's facts could not be gathered (or, for sudo, not as root).
#[derive(Debug, thiserror::Error)]
pub enum GatherError {
    #[error(transparent)]
    Unreachable(Box<ConnectError>),
    #[error(transparent)]
    Locked(HostLockError),
    // The transport's message quotes the whole facts script: these say it shortly.
    #[error("sudo on {host} asks for a password; set K8SUP_BECOME_PASSWORD or allow the SSH user passwordless sudo")]
    SudoPassword { host: String },
    #[error("sudo on {host} refused the password in K8SUP_BECOME_PASSWORD")]
    SudoRejected { host: String },
    #[error("sudo does not work for {host}: {said}")]
    Sudo {
        host: String,
        /// The last lines of the script's stderr, joined by ` / `.
        said: String,
    },
    #[error(transparent)]
    Lost(Box<CommandError>),
    #[error("the facts script failed on {host} ({status}): {said}")]
    Script {
        host: String,
        status: String,
        said: String,
    },
    #[error("{host}: {why}")]
    Unreadable { host: String, why: String },
}

impl GatherError {
    /// Sudo does not work: the facts can still be gathered as the SSH user.
    fn is_sudo(&self) -> bool {
        matches!(
            self,
            GatherError::SudoPassword { .. }
                | GatherError::SudoRejected { .. }
                | GatherError::Sudo { .. }
        )
    }
}

async fn run_script(session: &Session) -> Result<HostFacts, GatherError> {
    let script = Script::new(GATHER_SCRIPT);
    let out = session.run(&script).await.map_err(|e| match e {
        CommandError::BecomePasswordRequired { host, .. } => GatherError::SudoPassword { host },
        CommandError::BecomePasswordRejected { host, .. } => GatherError::SudoRejected { host },
        other => GatherError::Lost(Box::new(other)),
    })?;
    facts_from(session.host(), &out)
}

/// The facts in the output of [`GATHER_SCRIPT`] on `host`, or why there are none.
fn facts_from(host: &str, out: &CommandOutput) -> Result<HostFacts, GatherError> {
    if !out.success() {
        let stderr = out.stderr_text();
        let tail: Vec<&str> = stderr.lines().rev().take(3).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        if stderr.contains("sudo:") {
            return Err(GatherError::Sudo {
                host: host.to_string(),
                said: tail.join(" / "),
            });
        }
        return Err(GatherError::Script {
            host: host.to_string(),
            status: out.status_text(),
            said: tail.join(" / "),
        });
    }
    HostFacts::parse(&out.stdout_text()).map_err(|why| GatherError::Unreadable {
        host: host.to_string(),
        why,
    })
}
