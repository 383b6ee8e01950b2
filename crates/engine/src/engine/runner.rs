//! One host's walk through its program during an apply: each step decided from
//! fresh verdicts, settled steps reported, and the steps that can go together
//! gathered into a batch (run by [`super::batch`]).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use super::apply::{Shared, Stop};
use super::millis;
use super::probe::{probe_all, HostStart, Judged};
use crate::error::TaskError;
use crate::event::{EngineEvent, TaskOutcome};
use crate::host::HostSpec;
use crate::kinds::{self, Change, Rendered, Verdict};
use crate::plan::{HostPlan, TaskStatus};
use crate::program::{self, Selection, Step};
use crate::report::TaskReport;
use crate::script::ApplyInput;
use crate::script::Guard;
use crate::state::StateLedger;

/// The most text (applies with the content they write in the script, ledger writes,
/// guards) one batch adds to its script.
pub(super) const MAX_BATCH_SCRIPT: usize = 48 * 1024;

/// What the runner does with a step, decided from fresh verdicts.
pub(super) enum Decision {
    /// Nothing to do on the host.
    Settled {
        outcome: TaskOutcome,
        reason: String,
    },
    Apply {
        change: Change,
        drift: bool,
    },
    /// A fetch task: other hosts may now ask this one for its value.
    Fetch,
    /// A command that needs values from other hosts first.
    Needs {
        change: Change,
        drift: bool,
    },
    /// The host cannot go on at this step.
    Fail(TaskError),
}

/// A step in a batch.
pub(super) enum Item {
    /// Nothing to do, as long as its guard (for a step after a change) still holds.
    Settled {
        step: usize,
        outcome: TaskOutcome,
        reason: String,
        guard: Option<Guard>,
    },
    /// A change; guarded unless it is the first of its batch.
    Apply {
        step: usize,
        change: Change,
        drift: bool,
        guard: Option<Guard>,
        /// Its start was already reported (it waited for values).
        announced: bool,
    },
}

impl Item {
    pub(super) fn step(&self) -> usize {
        match self {
            Item::Settled { step, .. } | Item::Apply { step, .. } => *step,
        }
    }

    pub(super) fn guard(&self) -> Option<&Guard> {
        match self {
            Item::Settled { guard, .. } | Item::Apply { guard, .. } => guard.as_ref(),
        }
    }
}

/// What the run report keeps of a finished task besides its outcome (each text is
/// redacted on its way into the report).
#[derive(Debug, Default)]
pub(super) struct TaskDetail {
    /// When it started, from the start of the run; `None`: its end minus its duration.
    pub(super) started: Option<Duration>,
    pub(super) diff: Option<String>,
    pub(super) command: Option<String>,
    pub(super) stderr: Option<String>,
}

/// One host's walk through its program during an apply.
pub(super) struct HostRunner<'s, 'e> {
    pub(super) shared: &'s Shared<'e>,
    pub(super) host: &'s HostSpec,
    pub(super) planned: Option<&'s HostPlan>,
    pub(super) tasks: Vec<TaskReport>,
    pub(super) failed_task: Option<String>,
    /// The ledger as the first probe read it, before this run changed anything.
    pub(super) first_ledger: Option<StateLedger>,
}

impl<'s> HostRunner<'s, '_> {
    pub(super) fn emit(&self, event: EngineEvent) {
        self.shared.emit(event)
    }

    pub(super) fn redact(&self, text: &str) -> String {
        self.shared.engine.redactor.redact(text)
    }

    pub(super) fn finish_task(
        &mut self,
        step: &Step<'_>,
        outcome: TaskOutcome,
        drift: bool,
        duration: Duration,
        reason: &str,
        detail: TaskDetail,
    ) {
        let name = match outcome {
            TaskOutcome::Ok => "ok",
            TaskOutcome::Changed => "changed",
            TaskOutcome::Failed => "failed",
            TaskOutcome::Skipped => "skipped",
        };
        self.tasks.push(TaskReport {
            id: step.task.id.clone(),
            name: step.task.name.clone(),
            outcome: name.into(),
            changed: outcome == TaskOutcome::Changed,
            drift,
            duration_ms: millis(duration),
            error: (outcome == TaskOutcome::Failed).then(|| self.redact(reason)),
            started_ms: Some(millis(detail.started.unwrap_or_else(|| {
                self.shared.started.elapsed().saturating_sub(duration)
            }))),
            diff: detail.diff.as_deref().map(|d| self.redact(d)),
            command: detail.command.as_deref().map(|c| self.redact(c)),
            stderr: detail.stderr.as_deref().map(|e| self.redact(e)),
        });
        self.shared
            .board
            .give_signals(&step.task.signals, &self.host.name);
        self.emit(EngineEvent::TaskFinished {
            host: self.host.name.clone(),
            task: step.task.id.clone(),
            name: step.task.name.clone(),
            outcome,
            changed: outcome == TaskOutcome::Changed,
            drift,
            duration,
            reason: self.redact(reason),
            diff: detail.diff.map(|d| self.redact(&d)),
        });
    }

    /// Walks the host's program; `start`: its program and probe, already made
    /// (and checked against a saved plan).
    pub(super) async fn run(
        &mut self,
        permit: &mut Option<tokio::sync::SemaphorePermit<'s>>,
        start: Option<HostStart<'s>>,
    ) -> Result<(), Stop> {
        let engine = self.shared.engine;
        let host = self.host;
        let (steps, probed) = match start {
            Some(start) => {
                self.emit(EngineEvent::HostStarted {
                    host: host.name.clone(),
                    tasks: start.steps.len(),
                });
                (start.steps, start.probed)
            }
            None => {
                let steps =
                    program::build(&engine.playbook, &engine.env, host, &self.shared.producers)
                        .map_err(|e| self.stop_at("(render)", e))?;
                self.emit(EngineEvent::HostStarted {
                    host: host.name.clone(),
                    tasks: steps.len(),
                });
                let probed = probe_all(host, &steps, &engine.options.state_path, &engine.redactor)
                    .await
                    .map_err(|e| self.stop_at("(probe)", e))?;
                (steps, probed)
            }
        };
        self.first_ledger = Some(probed.ledger.clone());
        let mut ledger = probed.ledger;
        // Entries an older k8sup wrote are rewritten in the current fingerprint version
        // with the next write of the ledger.
        for step in &steps {
            step.upgrade_in(&mut ledger);
        }
        let mut judged = probed.judged;
        let pending = judged
            .values()
            .filter(|j| !matches!(j.verdict, Ok(Verdict::Ok { .. })))
            .count();
        self.emit(EngineEvent::HostProbed {
            host: host.name.clone(),
            pending,
        });
        let mut notified: BTreeSet<String> = BTreeSet::new();
        // Invariant: the verdicts of steps `i..` were judged after the last change made
        // on this host.
        let mut i = 0;
        while i < steps.len() {
            let (batch, end) = self
                .next_batch(&steps, i, &judged, &notified, &ledger, permit)
                .await?;
            if batch.is_empty() {
                i = end;
                continue;
            }
            let ran = self.run_batch(&steps, &batch, end, &mut ledger).await?;
            judged.extend(ran.judged);
            // A step settled inside the batch was judged on the host where the apply
            // before it ended: that is its place in the run's timeline.
            let mut last_end: Option<Duration> = None;
            for item in batch.iter().take_while(|item| item.step() < ran.from) {
                let step = &steps[item.step()];
                match item {
                    Item::Settled {
                        outcome, reason, ..
                    } => self.finish_task(
                        step,
                        *outcome,
                        false,
                        Duration::ZERO,
                        reason,
                        TaskDetail {
                            started: last_end,
                            ..TaskDetail::default()
                        },
                    ),
                    Item::Apply { change, drift, .. } => {
                        notified.extend(step.task.notify.iter().cloned());
                        if step.handler {
                            notified.remove(&step.task.id);
                        }
                        let reason = if *drift {
                            format!("drift repaired: {}", change.reason)
                        } else {
                            change.reason.clone()
                        };
                        let duration = ran.durations.get(&item.step()).copied();
                        let started = ran.starts.get(&item.step()).copied();
                        if let Some(start) = started {
                            last_end = Some(start + duration.unwrap_or_default());
                        }
                        self.finish_task(
                            step,
                            TaskOutcome::Changed,
                            *drift,
                            duration.unwrap_or_default(),
                            &reason,
                            TaskDetail {
                                started,
                                diff: change.diff.clone(),
                                command: change.command.clone(),
                                stderr: None,
                            },
                        );
                    }
                }
            }
            if let Some(stop) = ran.failed {
                // The batch stopped at the failed apply: `from` is its step.
                let drift = batch.iter().any(
                    |item| matches!(item, Item::Apply { step, drift: true, .. } if *step == ran.from),
                );
                let duration = ran.durations.get(&ran.from).copied();
                // Past the last step: the connection was lost after every apply.
                if let Some(step) = steps.get(ran.from) {
                    self.finish_task(
                        step,
                        TaskOutcome::Failed,
                        drift,
                        duration.unwrap_or_default(),
                        &stop.error.to_string(),
                        TaskDetail {
                            started: ran.starts.get(&ran.from).copied(),
                            diff: None,
                            command: stop.command.clone(),
                            stderr: Some(stop.stderr_tail.clone()),
                        },
                    );
                }
                self.failed_task = Some(stop.task.clone());
                return Err(stop);
            }
            i = ran.from;
        }
        Ok(())
    }

    /// What to do with step `i`, from fresh verdicts; `notified` holds the handlers
    /// notified by changes made (or about to be made, earlier in the same batch).
    pub(super) fn decide(
        &self,
        steps: &[Step<'_>],
        i: usize,
        judged: &Judged,
        notified: &BTreeSet<String>,
        ledger: &StateLedger,
    ) -> Decision {
        let step = &steps[i];
        let task = step.task;
        let settled = |outcome, reason: &str| Decision::Settled {
            outcome,
            reason: reason.to_string(),
        };
        let (rendered, fingerprint) = match &step.selection {
            Selection::Skip(reason) => return settled(TaskOutcome::Skipped, reason),
            Selection::Run {
                rendered,
                fingerprint,
                ..
            } => (rendered, fingerprint),
        };
        if step.handler {
            if !notified.contains(&task.id) && !ledger.pending_handlers.contains(&task.id) {
                return settled(TaskOutcome::Skipped, "not notified");
            }
            return match rendered.handler_change() {
                Ok(change) => Decision::Apply {
                    change,
                    drift: false,
                },
                Err(message) => Decision::Fail(TaskError::Render {
                    task: task.id.clone(),
                    field: "handler".into(),
                    message,
                }),
            };
        }
        if let Rendered::Fetch(_) = rendered {
            return Decision::Fetch;
        }
        let Some(judgement) = judged.get(&i) else {
            return settled(TaskOutcome::Skipped, "no probe");
        };
        match &judgement.verdict {
            Ok(Verdict::Ok { reason }) => settled(TaskOutcome::Ok, reason),
            Ok(Verdict::Change(change)) => {
                if let Some(planned) = self.planned {
                    let in_plan = planned.tasks.iter().any(|t| {
                        t.id == task.id
                            && matches!(t.status, TaskStatus::Change | TaskStatus::Drift)
                    });
                    if !in_plan {
                        return Decision::Fail(TaskError::PlanMismatch {
                            host: self.host.name.clone(),
                            message: format!(
                                "task {} needs a change that is not in the plan ({}); make a new plan",
                                task.id, change.reason
                            ),
                        });
                    }
                }
                let drift = ledger.matches(&task.id, rendered, fingerprint);
                if task.needs.is_empty() && task.waits_for.is_empty() {
                    Decision::Apply {
                        change: change.clone(),
                        drift,
                    }
                } else {
                    Decision::Needs {
                        change: change.clone(),
                        drift,
                    }
                }
            }
            Err(message) => Decision::Fail(TaskError::ProbeOutput {
                host: self.host.name.clone(),
                task: task.id.clone(),
                message: message.clone(),
            }),
        }
    }

    /// Settles the steps from `start` that need nothing on the host, up to the first
    /// change, then gathers the steps that can go with that change in one channel: every
    /// later step is guarded by its probe, re-run on the host just before, so nothing is
    /// done on a verdict an earlier change of the batch made stale. The batch ends
    /// before a step that waits for another host or that others wait for, a step that
    /// cannot be judged, or when the script would grow too large. Returns the batch and
    /// the step after it.
    pub(super) async fn next_batch(
        &mut self,
        steps: &[Step<'_>],
        start: usize,
        judged: &Judged,
        notified: &BTreeSet<String>,
        ledger: &StateLedger,
        permit: &mut Option<tokio::sync::SemaphorePermit<'s>>,
    ) -> Result<(Vec<Item>, usize), Stop> {
        let engine = self.shared.engine;
        let host = self.host;
        let mut batch: Vec<Item> = Vec::new();
        let mut notified = notified.clone();
        let ledger_size = serde_json::to_string(ledger).map_or(0, |s| s.len());
        let mut size = 0;
        for (i, step) in steps.iter().enumerate().skip(start) {
            let started = Instant::now();
            let task = step.task;
            let decision = self.decide(steps, i, judged, &notified, ledger);
            let guard = || judged.get(&i).map(|j| j.guard.clone());
            let (change, drift) = match decision {
                Decision::Settled { outcome, reason } if batch.is_empty() => {
                    self.finish_task(
                        step,
                        outcome,
                        false,
                        started.elapsed(),
                        &reason,
                        TaskDetail::default(),
                    );
                    continue;
                }
                Decision::Settled { outcome, reason } => {
                    let guard = if outcome == TaskOutcome::Ok {
                        guard()
                    } else {
                        None
                    };
                    size += step.probe().map_or(0, |p| p.render().len());
                    batch.push(Item::Settled {
                        step: i,
                        outcome,
                        reason,
                        guard,
                    });
                    continue;
                }
                Decision::Fetch if batch.is_empty() => {
                    let Selection::Run {
                        rendered: Rendered::Fetch(fetch),
                        ..
                    } = &step.selection
                    else {
                        unreachable!("decide returns Fetch for fetch tasks only");
                    };
                    self.shared.board.offer(&host.name, fetch);
                    self.finish_task(
                        step,
                        TaskOutcome::Ok,
                        false,
                        started.elapsed(),
                        &format!("{} available on demand", fetch.provides),
                        TaskDetail::default(),
                    );
                    continue;
                }
                Decision::Fail(error) if batch.is_empty() => {
                    return Err(self.fail(step, started, error));
                }
                Decision::Needs { change, drift } if batch.is_empty() => {
                    // A command needing values from other hosts is rendered again with them.
                    self.emit(EngineEvent::TaskStarted {
                        host: host.name.clone(),
                        task: task.id.clone(),
                        name: task.name.clone(),
                    });
                    for signal in &task.waits_for {
                        self.shared
                            .signal(signal, &host.name, &task.id, permit)
                            .await;
                    }
                    let mut values = BTreeMap::new();
                    for need in &task.needs {
                        let value = self
                            .shared
                            .value(need, &host.name, &task.id, permit)
                            .await
                            .map_err(|e| self.fail(step, started, e))?;
                        values.insert(need.clone(), value);
                    }
                    let spec = program::render_with_values(&engine.env, host, task, &values)
                        .map_err(|e| self.fail(step, started, e))?;
                    let change =
                        kinds::command_change(&spec, change.reason.clone()).map_err(|message| {
                            let error = TaskError::Render {
                                task: task.id.clone(),
                                field: "cmd".into(),
                                message,
                            };
                            self.fail(step, started, error)
                        })?;
                    (change, drift)
                }
                Decision::Apply { change, drift } => {
                    let grows = change.apply.render().len()
                        + ApplyInput::for_content(change.stdin.as_deref()).script_len()
                        + change.stage_call().map_or(0, |c| c.render().len())
                        + ledger_size
                        + 300 * (batch.len() + 1)
                        + step.probe().map_or(0, |p| p.render().len());
                    if !batch.is_empty() && size + grows > MAX_BATCH_SCRIPT {
                        return Ok((batch, i));
                    }
                    size += grows;
                    (change, drift)
                }
                // Fetch, Needs and Fail after a change: they start the next batch.
                _ => return Ok((batch, i)),
            };
            let needs_fresh = match &step.selection {
                Selection::Run { rendered, .. } => rendered.apply_needs_fresh_probe(),
                Selection::Skip(_) => false,
            };
            let guard = if batch.is_empty() || !needs_fresh {
                None
            } else {
                guard()
            };
            notified.extend(task.notify.iter().cloned());
            batch.push(Item::Apply {
                step: i,
                announced: (!task.needs.is_empty() || !task.waits_for.is_empty()) && !step.handler,
                change,
                drift,
                guard,
            });
        }
        Ok((batch, steps.len()))
    }

    pub(super) fn stop_at(&mut self, task: &str, error: TaskError) -> Stop {
        self.failed_task = Some(task.to_string());
        Stop::from(task, error)
    }

    pub(super) fn fail(&mut self, step: &Step<'_>, started: Instant, error: TaskError) -> Stop {
        self.finish_task(
            step,
            TaskOutcome::Failed,
            false,
            started.elapsed(),
            &error.to_string(),
            TaskDetail::default(),
        );
        self.stop_at(&step.task.id, error)
    }
}
