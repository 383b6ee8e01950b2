//! Gather facts from every host in parallel: one connection and one command
//! per host (two when sudo does not work, to still report the rest).

use k8sup_facts::{HostFacts, GATHER_SCRIPT};
use k8sup_inventory::{Host, Inventory};
use k8sup_shell::Script;
use k8sup_ssh::bytes::{find, rfind};
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
    gather_host_then(host, options, order, None).await.0
}

/// [`gather_host`], and with `then`, a read-only script run in the same request right
/// after the facts (with `options.run`, once the host is locked): its output, when the
/// facts came, is the second value. It costs no round trip of its own. Like the facts,
/// `then` must hold no secret: the request may travel in the line that starts the
/// host's shell (see [`k8sup_ssh::RunOptions::public`]).
pub async fn gather_host_then(
    host: &Host,
    options: &ConnectOptions,
    order: Option<&LockOrder>,
    then: Option<&Script>,
) -> (Gathered, Option<CommandOutput>) {
    // Once another run was found holding the first host, the others are not even
    // connected to.
    if let (Some(order), Some(_)) = (order, &options.run) {
        if let Err(held) = order.turn(&host.name) {
            let gathered = Gathered {
                session: None,
                outcome: Outcome::Failed(GatherError::Locked(held.clone())),
                lock: Some(Err(held)),
            };
            return (gathered, None);
        }
    }
    let target = target_for(host, options);
    let session = match k8sup_ssh::connect(&target).await {
        Ok(session) => session,
        Err(e) => {
            if let Some(order) = order {
                order.unreachable(&host.name);
            }
            let gathered = Gathered {
                session: None,
                outcome: Outcome::Failed(GatherError::Unreachable(Box::new(e))),
                lock: None,
            };
            return (gathered, None);
        }
    };
    let script = request_script(then);
    // With a run, the lock and the facts go in one request: the facts run only once the
    // host is locked. A lock that failed for another reason than another run's (no
    // root, say) is retried by nothing, but the facts are still gathered, to say why.
    let (lock, asked) = match &options.run {
        Some(run) => {
            let attempt = |wait| lock_then(&session, run, &script, wait);
            let (result, asked) = match order {
                Some(order) => order.take(&host.name, attempt).await,
                None => attempt(None).await,
            };
            (Some(result), asked)
        }
        None => (None, None),
    };
    if let Some(Err(held @ HostLockError::Held(_))) = &lock {
        let outcome = Outcome::Failed(GatherError::Locked(held.clone()));
        session.close().await;
        let gathered = Gathered {
            session: None,
            outcome,
            lock,
        };
        return (gathered, None);
    }
    let asked = match asked {
        Some(out) => Some(out),
        None if then.is_some() && lock.as_ref().is_none_or(Result::is_ok) => {
            session.run(&script).await.ok()
        }
        None => None,
    };
    let (facts, then_out) = match asked {
        Some(out) => {
            let (facts, rest) = split_then(out);
            (Some(facts), rest)
        }
        None => (None, None),
    };
    let gathered = gather_on(session, &target, facts).await;
    let then_out = then_out.filter(|_| matches!(gathered.outcome, Outcome::Facts { .. }));
    (Gathered { lock, ..gathered }, then_out)
}

/// The line between the facts' output and a `then` script's, in one request.
const THEN_MARK: &str = "k8sup-facts-end";

/// The request: the facts, and `then` after them. `then` runs in a subshell of its own,
/// so that its `exit` ends it alone; its stdout follows [`THEN_MARK`] and its exit
/// status and stderr come after its stdout, as the last lines:
/// `THEN_MARK status N` then the stderr, each line as is.
fn request_script(then: Option<&Script>) -> Script {
    let facts = Script::new(GATHER_SCRIPT);
    let Some(then) = then else {
        return facts;
    };
    // The facts' exit status is the request's: the `then` part ends with it.
    Script::new("{")
        .then("", facts)
        .code(concat!(
            "\n}; k8sup_facts_rc=$?\n",
            "printf '\\nk8sup-facts-end\\n'\n",
            // stdout goes through fd 3; stderr is kept to be printed after it.
            "{ k8sup_then_err=$( { (\n",
        ))
        .then("", then.clone())
        .code(concat!(
            "\n) 3>&-; } 2>&1 1>&3 ); k8sup_then_rc=$?; } 3>&1\n",
            "printf '\\nk8sup-facts-end status %s\\n%s\\n' \"$k8sup_then_rc\" \"$k8sup_then_err\"\n",
            "exit \"$k8sup_facts_rc\"\n",
        ))
}

/// Splits a request's output into the facts' and the `then` script's (its stdout,
/// exit status and stderr, as a [`CommandOutput`]); `None` for the second when the
/// request did not get that far.
fn split_then(mut out: CommandOutput) -> (CommandOutput, Option<CommandOutput>) {
    let mark = format!("\n{THEN_MARK}\n");
    let Some(at) = find(&out.stdout, mark.as_bytes()) else {
        return (out, None);
    };
    let rest = out.stdout.split_off(at);
    let rest = &rest[mark.len()..];
    let status_mark = format!("\n{THEN_MARK} status ");
    let Some(end) = rfind(rest, status_mark.as_bytes()) else {
        return (out, None);
    };
    let stdout = rest[..end].to_vec();
    let tail = String::from_utf8_lossy(&rest[end + status_mark.len()..]).to_string();
    let (status, stderr) = tail.split_once('\n').unwrap_or((tail.as_str(), ""));
    let then = CommandOutput {
        stdout,
        stderr: stderr
            .strip_suffix('\n')
            .unwrap_or(stderr)
            .as_bytes()
            .to_vec(),
        exit_status: status.trim().parse().ok(),
        exit_signal: None,
    };
    (out, Some(then))
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `script` with a local `sh`, as the host's shell would.
    fn run_locally(script: &Script) -> CommandOutput {
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(script.render())
            .output()
            .expect("sh runs");
        CommandOutput {
            stdout: out.stdout,
            stderr: out.stderr,
            exit_status: out.status.code().map(|c| c as u32),
            exit_signal: None,
        }
    }

    #[test]
    fn a_script_sent_with_the_facts_keeps_its_own_output_status_and_stderr() {
        let then = Script::new("printf 'a\\nb'; echo oops >&2; echo second >&2; exit 3");
        let out = run_locally(&request_script(Some(&then)));
        assert_eq!(out.exit_status, Some(0), "the facts' status: {out:?}");
        let (facts, then_out) = split_then(out);
        let facts = facts_from("h", &facts).expect("the facts parse as without a script after");
        assert!(!facts.machine.is_empty() && !facts.hostname.is_empty());
        let then_out = then_out.expect("the script ran");
        assert_eq!(then_out.stdout_text(), "a\nb");
        assert_eq!(then_out.exit_status, Some(3));
        assert_eq!(then_out.stderr_text(), "oops\nsecond");
    }

    #[test]
    fn a_script_that_exits_at_once_ends_alone_and_the_facts_stand() {
        let then = Script::new("exit 0");
        let (facts, then_out) = split_then(run_locally(&request_script(Some(&then))));
        assert!(facts_from("h", &facts).is_ok());
        let then_out = then_out.expect("the script ran");
        assert!(then_out.stdout.is_empty() && then_out.stderr.is_empty());
        assert!(then_out.success());
        // Without a script, the request is the facts script alone.
        assert_eq!(request_script(None).render(), GATHER_SCRIPT);
    }

    #[test]
    fn output_cut_before_the_script_s_status_gives_no_script_output() {
        let out = CommandOutput {
            stdout: b"facts\nk8sup-facts-end\npartial".to_vec(),
            stderr: Vec::new(),
            exit_status: None,
            exit_signal: Some("KILL".into()),
        };
        let (facts, then_out) = split_then(out);
        assert_eq!(facts.stdout, b"facts");
        assert!(then_out.is_none());
    }
}
