//! One apply's hosts: what their runners share, the saved-plan check made on every
//! host before any is changed, and one host's run turned into its report.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Instant;

use k8sup_ssh::Transport;
use tokio::sync::Semaphore;

use super::board::Board;
use super::millis;
use super::probe::{check_plan, probe_all, HostStart};
use super::runner::HostRunner;
use super::Engine;
use crate::error::TaskError;
use crate::event::{EngineEvent, EventSink};
use crate::host::HostSpec;
use crate::plan::{HostPlan, Plan};
use crate::program;
use crate::report::{HostOutcome, HostReport, TaskReport};
use crate::state::StateLedger;

/// What all host runners of one apply share.
pub(super) struct Shared<'e> {
    pub(super) engine: &'e Engine,
    pub(super) board: Board,
    pub(super) semaphore: Semaphore,
    pub(super) sink: EventSink,
    pub(super) producers: BTreeMap<String, String>,
    pub(super) transports: HashMap<String, Arc<dyn Transport>>,
    /// When the run started: task start times in the report count from it.
    pub(super) started: Instant,
}

/// Why a host stopped.
pub(super) struct Stop {
    pub(super) task: String,
    pub(super) command: Option<String>,
    pub(super) exit_status: Option<String>,
    pub(super) stderr_tail: String,
    pub(super) error: TaskError,
    pub(super) dependency: bool,
}

impl Stop {
    pub(super) fn from(task: &str, error: TaskError) -> Stop {
        let dependency = matches!(
            error,
            TaskError::DependencyFailed { .. } | TaskError::ReadOnlyProducer { .. }
        );
        Stop {
            task: task.to_string(),
            command: None,
            exit_status: None,
            stderr_tail: String::new(),
            error,
            dependency,
        }
    }
}

impl Shared<'_> {
    pub(super) fn emit(&self, event: EngineEvent) {
        (self.sink)(event)
    }

    /// Checks every host against the saved plan, probing them all (in parallel,
    /// within the parallelism). Every host matches: their programs and probes, to
    /// start from. Any does not: the reports of a refused run, the hosts that
    /// differ failed with the task named, the others skipped; no host was changed.
    pub(super) async fn check_saved_plan<'p>(
        &'p self,
        hosts: &[&HostSpec],
        plan: &Plan,
    ) -> Result<Vec<HostStart<'p>>, Vec<HostReport>> {
        let engine = self.engine;
        let checks = hosts.iter().map(|host| async move {
            let _permit = self.semaphore.acquire().await.ok();
            let started = Instant::now();
            let result = async {
                let steps = program::build(&engine.playbook, &engine.env, host, &self.producers)?;
                let probed =
                    probe_all(host, &steps, &engine.options.state_path, &engine.redactor).await?;
                let planned = plan
                    .host(&host.name)
                    .ok_or_else(|| TaskError::PlanMismatch {
                        host: host.name.clone(),
                        message: "it is not in the plan".into(),
                    })?;
                check_plan(host, &steps, &probed, planned)?;
                Ok::<_, TaskError>(HostStart { steps, probed })
            }
            .await;
            (result, millis(started.elapsed()))
        });
        let results = futures::future::join_all(checks).await;
        if results.iter().all(|(r, _)| r.is_ok()) {
            return Ok(results.into_iter().filter_map(|(r, _)| r.ok()).collect());
        }
        let differing: Vec<&str> = hosts
            .iter()
            .zip(&results)
            .filter(|(_, (r, _))| r.is_err())
            .map(|(h, _)| h.name.as_str())
            .collect();
        let reports = hosts
            .iter()
            .zip(results)
            .map(|(host, (result, duration_ms))| {
                let (outcome, failed, skipped, error) = match result {
                    Err(e) => {
                        let message = engine.redactor.redact(&e.to_string());
                        self.emit(EngineEvent::HostFailed {
                            host: host.name.clone(),
                            task: "(plan)".into(),
                            command: None,
                            exit_status: None,
                            stderr_tail: String::new(),
                            message: message.clone(),
                        });
                        (HostOutcome::Failed, 1, 0, message)
                    }
                    Ok(_) => (
                        HostOutcome::Skipped,
                        0,
                        1,
                        format!(
                            "not applied: the saved plan no longer holds on {}; nothing was changed on any host",
                            differing.join(", ")
                        ),
                    ),
                };
                HostReport {
                    host: host.name.clone(),
                    outcome,
                    ok: 0,
                    changed: 0,
                    failed,
                    skipped,
                    duration_ms,
                    round_trips: 1,
                    tasks: Vec::new(),
                    error: Some(error),
                }
            })
            .collect();
        Err(reports)
    }

    pub(super) async fn run_host<'p>(
        &'p self,
        host: &HostSpec,
        planned: Option<&HostPlan>,
        start: Option<HostStart<'p>>,
        round_trips_before: u64,
    ) -> (HostReport, Option<StateLedger>) {
        let mut permit = self.semaphore.acquire().await.ok();
        let started = Instant::now();
        let mut runner = HostRunner {
            shared: self,
            host,
            planned,
            tasks: Vec::new(),
            failed_task: None,
            first_ledger: None,
        };
        let result = runner.run(&mut permit, start).await;
        drop(permit);
        // Whatever happened, no one waits forever for a signal or a value of this host.
        self.board
            .give_signals(self.board.signals.keys(), &host.name);
        self.board
            .fail_unprovided(&host.name, runner.failed_task.as_deref());
        let count = |outcome: &str| runner.tasks.iter().filter(|t| t.outcome == outcome).count();
        let duration = started.elapsed();
        let mut report = HostReport {
            host: host.name.clone(),
            outcome: HostOutcome::Ok,
            ok: count("ok"),
            changed: count("changed"),
            failed: count("failed"),
            skipped: count("skipped"),
            duration_ms: millis(duration),
            round_trips: host
                .transport
                .round_trips()
                .saturating_sub(round_trips_before),
            tasks: std::mem::take(&mut runner.tasks),
            error: None,
        };
        match result {
            Ok(()) => self.emit(EngineEvent::HostFinished {
                host: host.name.clone(),
                ok: report.ok,
                changed: report.changed,
                skipped: report.skipped,
                duration,
            }),
            Err(stop) => {
                let message = self.engine.redactor.redact(&stop.error.to_string());
                report.outcome = if stop.dependency {
                    HostOutcome::Skipped
                } else {
                    HostOutcome::Failed
                };
                if !stop.dependency && report.failed == 0 {
                    // It failed before any task could (the probe, a lost
                    // connection, a stale plan): the step is the failure.
                    report.tasks.push(TaskReport {
                        id: stop.task.clone(),
                        name: stop.task.clone(),
                        outcome: "failed".into(),
                        changed: false,
                        drift: false,
                        duration_ms: report.duration_ms,
                        error: Some(message.clone()),
                        started_ms: None,
                        diff: None,
                        command: stop
                            .command
                            .as_deref()
                            .map(|c| self.engine.redactor.redact(c)),
                        stderr: (!stop.stderr_tail.is_empty()).then(|| stop.stderr_tail.clone()),
                    });
                    report.failed = 1;
                }
                report.error = Some(message.clone());
                self.emit(EngineEvent::HostFailed {
                    host: host.name.clone(),
                    task: stop.task,
                    command: stop.command.map(|c| self.engine.redactor.redact(&c)),
                    exit_status: stop.exit_status,
                    stderr_tail: self.engine.redactor.redact(&stop.stderr_tail),
                    message,
                });
            }
        }
        (report, runner.first_ledger)
    }
}
