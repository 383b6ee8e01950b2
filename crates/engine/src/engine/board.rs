//! The cross-host value board: a value one host provides (a fetch task, such as the
//! join credentials) and others need. Each value has one slot, whose state says
//! whether its producer reached its fetch task; the fetch itself runs once, on the
//! producer, when the first host that needs the value asks for it.
//!
//! And signals: an order between hosts with several givers and no value (every master
//! holds its images before the nodes pull theirs). Each signal holds the hosts that have
//! still to give it; a host gives it once past its signaling task, or when it stops.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use k8sup_shell::Script;
use tokio::sync::{watch, OnceCell};

use super::apply::Shared;
use super::probe::{plan_steps, probe_all, tail, transport_message};
use crate::encoding::decode_b64;
use crate::error::TaskError;
use crate::event::EngineEvent;
use crate::host::HostSpec;
use crate::kinds::{FetchSpec, Rendered};
use crate::plan::{TaskPlan, TaskStatus};
use crate::program::{self, Selection};
use crate::script::{arg, ApplyInput, FramedScript};

/// Values flowing between hosts, and signals.
pub(super) struct Board {
    pub(super) slots: HashMap<String, Slot>,
    /// Per signal, the hosts that have still to give it.
    pub(super) signals: HashMap<String, watch::Sender<BTreeSet<String>>>,
}

pub(super) struct Slot {
    pub(super) producer_host: String,
    pub(super) producer_task: String,
    pub(super) state: watch::Sender<SlotState>,
    pub(super) value: OnceCell<Result<String, String>>,
}

#[derive(Clone)]
pub(super) enum SlotState {
    Pending,
    /// The producer reached its fetch task: the command, rendered for it, and whether secret.
    Ready {
        cmd: String,
        secret: bool,
    },
    /// The producer stopped before: the host and task that failed.
    Failed {
        host: String,
        task: String,
    },
    /// The producer is read-only in this run and cannot provide it: why.
    Unavailable {
        host: String,
        reason: String,
    },
}

impl Board {
    /// A pending slot per value, for the producer found for it: value -> (host, task).
    pub(super) fn new(producers: &BTreeMap<String, (String, String)>) -> Board {
        let slots = producers
            .iter()
            .map(|(value, (host, task))| {
                let slot = Slot {
                    producer_host: host.clone(),
                    producer_task: task.clone(),
                    state: watch::channel(SlotState::Pending).0,
                    value: OnceCell::new(),
                };
                (value.clone(), slot)
            })
            .collect();
        Board {
            slots,
            signals: HashMap::new(),
        }
    }

    /// `givers` will give `signal` in this run (each host a play with a task that
    /// signals it selects).
    pub(super) fn expect_signal(&mut self, signal: &str, givers: impl Iterator<Item = String>) {
        self.signals
            .entry(signal.to_string())
            .or_insert_with(|| watch::channel(BTreeSet::new()).0)
            .send_modify(|waiting_on| waiting_on.extend(givers));
    }

    /// `host` is past the tasks that give `signals` (or stopped).
    pub(super) fn give_signals<'a>(
        &self,
        signals: impl IntoIterator<Item = &'a String>,
        host: &str,
    ) {
        for signal in signals {
            if let Some(slot) = self.signals.get(signal) {
                slot.send_if_modified(|waiting_on| waiting_on.remove(host));
            }
        }
    }

    /// `host` reached the fetch task `fetch`: hosts that need its value may ask for it.
    pub(super) fn offer(&self, host: &str, fetch: &FetchSpec) {
        if let Some(slot) = self.slots.get(&fetch.provides) {
            if slot.producer_host == host {
                slot.state.send_replace(SlotState::Ready {
                    cmd: fetch.cmd.clone(),
                    secret: fetch.secret,
                });
            }
        }
    }

    /// `host` stopped (at `failed_task`, if a task failed): the values it has not
    /// provided yet fail, so that no one waits forever for them.
    pub(super) fn fail_unprovided(&self, host: &str, failed_task: Option<&str>) {
        for slot in self.slots.values() {
            if slot.producer_host == host && matches!(*slot.state.borrow(), SlotState::Pending) {
                let task = failed_task.unwrap_or(&slot.producer_task).to_string();
                slot.state.send_replace(SlotState::Failed {
                    host: host.to_string(),
                    task,
                });
            }
        }
    }
}

impl Shared<'_> {
    /// A read-only host: probed (one round trip, nothing written), and each value it
    /// provides made available when every task before its fetch is settled on it,
    /// so that a value is never taken from a host that this run would have had to
    /// change first. The fetch itself runs when a changing host needs the value.
    pub(super) async fn read_host(&self, host: &HostSpec) {
        let engine = self.engine;
        let result = async {
            let steps = program::build(&engine.playbook, &engine.env, host, &self.producers)?;
            let probed =
                probe_all(host, &steps, &engine.options.state_path, &engine.redactor).await?;
            Ok::<_, TaskError>((plan_steps(&steps, &probed, &engine.redactor), steps))
        }
        .await;
        let unavailable = |reason: String| SlotState::Unavailable {
            host: host.name.clone(),
            reason,
        };
        let mine = || {
            self.board
                .slots
                .values()
                .filter(|slot| slot.producer_host == host.name)
        };
        let (planned, steps) = match result {
            Ok(found) => found,
            Err(e) => {
                let reason = format!(
                    "it could not be probed: {}",
                    engine.redactor.redact(&e.to_string())
                );
                for slot in mine() {
                    slot.state.send_replace(unavailable(reason.clone()));
                }
                return;
            }
        };
        let mut pending: Option<&TaskPlan> = None;
        for (entry, step) in planned.iter().zip(&steps) {
            if let Selection::Run {
                rendered: Rendered::Fetch(fetch),
                ..
            } = &step.selection
            {
                let Some(slot) = self.board.slots.get(&fetch.provides) else {
                    continue;
                };
                if slot.producer_host != host.name {
                    continue;
                }
                slot.state.send_replace(match pending {
                    None => SlotState::Ready {
                        cmd: fetch.cmd.clone(),
                        secret: fetch.secret,
                    },
                    Some(task) => unavailable(format!(
                        "its task {:?} would change first ({}): apply without --limit, or include it",
                        task.name, task.reason
                    )),
                });
            } else if pending.is_none()
                && matches!(entry.status, TaskStatus::Change | TaskStatus::Drift)
            {
                pending = Some(entry);
            }
        }
        for slot in mine() {
            if matches!(*slot.state.borrow(), SlotState::Pending) {
                slot.state.send_replace(unavailable(
                    "it does not reach the task that provides the value".into(),
                ));
            }
        }
    }

    /// Waits (the permit is given back meanwhile) until every host but `for_host` that
    /// gives `signal` in this run has given it: an order, so a giver that stopped
    /// counts as given.
    pub(super) async fn signal<'a>(
        &'a self,
        signal: &str,
        for_host: &str,
        for_task: &str,
        permit: &mut Option<tokio::sync::SemaphorePermit<'a>>,
    ) {
        let Some(slot) = self.board.signals.get(signal) else {
            return;
        };
        let others = |waiting_on: &BTreeSet<String>| {
            waiting_on
                .iter()
                .filter(|h| *h != for_host)
                .cloned()
                .collect::<Vec<_>>()
        };
        let mut receiver = slot.subscribe();
        let waiting_on = others(&receiver.borrow());
        if waiting_on.is_empty() {
            return;
        }
        self.emit(EngineEvent::TaskWaiting {
            host: for_host.to_string(),
            task: for_task.to_string(),
            value: signal.to_string(),
            from: waiting_on.join(", "),
        });
        *permit = None;
        let _ = receiver.wait_for(|w| others(w).is_empty()).await;
        *permit = self.semaphore.acquire().await.ok();
    }

    /// Waits for `value` (the permit is given back meanwhile) and fetches it once.
    pub(super) async fn value<'a>(
        &'a self,
        value: &str,
        for_host: &str,
        for_task: &str,
        permit: &mut Option<tokio::sync::SemaphorePermit<'a>>,
    ) -> Result<String, TaskError> {
        let slot = self
            .board
            .slots
            .get(value)
            .ok_or_else(|| TaskError::Render {
                task: for_task.to_string(),
                field: "needs".into(),
                message: format!("no host provides {value:?}"),
            })?;
        let mut receiver = slot.state.subscribe();
        if matches!(*receiver.borrow(), SlotState::Pending) {
            self.emit(EngineEvent::TaskWaiting {
                host: for_host.to_string(),
                task: for_task.to_string(),
                value: value.to_string(),
                from: slot.producer_host.clone(),
            });
            *permit = None;
            let _ = receiver
                .wait_for(|s| !matches!(s, SlotState::Pending))
                .await;
            *permit = self.semaphore.acquire().await.ok();
        }
        let state = receiver.borrow().clone();
        let (cmd, secret) = match state {
            SlotState::Ready { cmd, secret } => (cmd, secret),
            SlotState::Failed { host, task } => {
                return Err(TaskError::DependencyFailed { host, task })
            }
            SlotState::Unavailable { host, reason } => {
                return Err(TaskError::ReadOnlyProducer { host, reason })
            }
            SlotState::Pending => {
                return Err(TaskError::DependencyFailed {
                    host: slot.producer_host.clone(),
                    task: slot.producer_task.clone(),
                })
            }
        };
        let result = slot
            .value
            .get_or_init(|| async {
                let fetched = self.fetch(slot, &cmd).await;
                if let Ok(v) = &fetched {
                    if secret {
                        self.engine.redactor.add(v);
                    }
                    self.emit(EngineEvent::ValueFetched {
                        host: slot.producer_host.clone(),
                        task: slot.producer_task.clone(),
                        value: value.to_string(),
                        for_host: for_host.to_string(),
                    });
                }
                fetched
            })
            .await;
        result.clone().map_err(|message| TaskError::Failed {
            host: slot.producer_host.clone(),
            task: slot.producer_task.clone(),
            command: self.engine.redactor.redact(&cmd),
            status: "fetch failed".into(),
            stderr_tail: self.engine.redactor.redact(&message),
        })
    }

    pub(super) async fn fetch(&self, slot: &Slot, cmd: &str) -> Result<String, String> {
        let transport = self
            .transports
            .get(&slot.producer_host)
            .ok_or_else(|| format!("no connection to {}", slot.producer_host))?;
        let call = Script::new("k8sup_fetch").arg(arg(cmd)?);
        let (script, framing) = FramedScript::new()
            .apply_section("apply", call, ApplyInput::Nothing)
            .finish();
        let output = transport
            .run_with(&script, crate::script::framed_options(None))
            .await
            .map_err(|e| transport_message(&e))?;
        let sections = framing.parse(&output.stdout_text())?;
        let section = sections
            .first()
            .ok_or_else(|| tail(&output.stderr_text()))?;
        if section.status != 0 {
            return Err(format!(
                "exit {}: {}",
                section.status,
                tail(&output.stderr_text())
            ));
        }
        let b64 = section.fields().get("value").cloned().unwrap_or_default();
        let bytes = decode_b64(&b64)?;
        Ok(String::from_utf8_lossy(&bytes)
            .trim_end_matches('\n')
            .to_string())
    }
}
