//! A batch on the host: ONE channel that runs each step's guard, each change's apply
//! and its atomic ledger write (stopping at the first failure), then the re-probe of
//! every later step; and what its output (or its lost connection) says was done.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use k8sup_shell::Script;
use k8sup_ssh::{CommandOutput, RunOptions};

use super::apply::Stop;
use super::probe::{judge_sections, probe_all, tail, transport_message, Judged};
use super::runner::{HostRunner, Item};
use super::Engine;
use crate::error::TaskError;
use crate::event::EngineEvent;
use crate::program::Step;
use crate::script::{arg, ApplyInput, FramedScript, Framing, Section};
use crate::state::{PendingEntry, StateLedger};

impl HostRunner<'_, '_> {
    /// ONE channel for a batch: each step's guard, then each change's apply and the
    /// atomic ledger write (stopping at the first failure), then the re-probe of every
    /// later step, from the first stale guard (or the end of the batch) on.
    pub(super) async fn run_batch(
        &mut self,
        steps: &[Step<'_>],
        batch: &[Item],
        end: usize,
        ledger: &mut StateLedger,
    ) -> Result<BatchRun, Stop> {
        let host = self.host;
        let first = &steps[batch[0].step()].task;
        let stop = |error: TaskError| Stop::from(&first.id, error);
        let composed = self.compose(steps, batch, end, ledger).map_err(|message| {
            stop(TaskError::State {
                host: host.name.clone(),
                path: self.shared.engine.options.state_path.clone(),
                message,
            })
        })?;
        let progress = Arc::new(std::sync::Mutex::new(BatchProgress::default()));
        let options = RunOptions {
            on_output: Some(self.watch_markers(composed.markers, progress.clone())),
            ..crate::script::framed_options((!composed.stdin.is_empty()).then_some(composed.stdin))
        };
        let sent = self.shared.started.elapsed();
        let output = match host.transport.run_with(&composed.script, options).await {
            Ok(output) => output,
            Err(e) => {
                let progress = progress.lock().map(|p| p.clone()).unwrap_or_default();
                return Ok(self.lost(steps, batch, end, ledger, progress, &e).await);
            }
        };
        let output = BatchOutput::read(&output, &composed.framing, self.shared.engine).map_err(
            |message| {
                stop(TaskError::ProbeOutput {
                    host: host.name.clone(),
                    task: first.id.clone(),
                    message,
                })
            },
        )?;
        let mut ran = self.record_applies(steps, batch, end, &output, sent, ledger);
        if composed.folds {
            // The batch's end rewrote the ledger file and emptied the journal.
            ledger.journal_bytes = 0;
        }
        if ran.failed.is_some() {
            return Ok(ran);
        }
        let from = output
            .section("from")
            .and_then(|s| s.fields().get("from").and_then(|v| v.parse::<usize>().ok()))
            .ok_or_else(|| {
                stop(TaskError::ProbeOutput {
                    host: host.name.clone(),
                    task: first.id.clone(),
                    message: format!(
                        "the output stopped before the re-probe ({}): {}",
                        output.status, output.stderr_tail
                    ),
                })
            })?;
        let reprobed: Vec<usize> = composed
            .reprobed
            .into_iter()
            .filter(|i| *i >= from)
            .collect();
        ran.judged = judge_sections(host, steps, &reprobed, &output.sections).map_err(stop)?;
        ran.from = from;
        Ok(ran)
    }

    /// The batch's script: each step's guard, each change's apply and ledger write
    /// while nothing failed, the compaction of the ledger, and the re-probe of every
    /// step after the first. Err: the state path cannot be written in a script.
    fn compose(
        &self,
        steps: &[Step<'_>],
        batch: &[Item],
        end: usize,
        ledger: &StateLedger,
    ) -> Result<BatchScript, String> {
        let path_arg = arg(self.shared.engine.options.state_path.clone())?;
        let mut script = FramedScript::new().begin_batch(end, super::epoch_ms());
        let folds = !ledger.journal_is_small();
        if !folds {
            script = script.lazy_compaction();
        }
        // The files the applies write, staged first: one sync makes them durable.
        for item in batch {
            if let Item::Apply { change, .. } = item {
                if let Some(call) = change.stage_call() {
                    script = script.stage(call);
                }
            }
        }
        let nonce = script.nonce().to_string();
        let mut pending = Vec::new();
        let mut stdin = Vec::new();
        let mut markers = HashMap::new();
        for item in batch {
            let i = item.step();
            let step = &steps[i];
            if let (Some(guard), Some(probe)) = (item.guard(), step.probe()) {
                script = script.guard(i, probe.clone(), guard);
            }
            let Item::Apply {
                change, announced, ..
            } = item
            else {
                continue;
            };
            pending.push(PendingEntry {
                task_id: &step.task.id,
                fingerprint: step.fingerprint(),
                notify: &step.task.notify,
                handler_ran: step.handler.then_some(step.task.id.as_str()),
            });
            let write = ledger.batch_write(&pending);
            let input = ApplyInput::for_content(change.stdin.as_deref());
            if let (ApplyInput::Stdin(_), Some(bytes)) = (&input, &change.stdin) {
                stdin.extend_from_slice(bytes);
            }
            script = script.while_going(|script| {
                Ok::<_, String>(
                    script
                        .apply_section(&format!("a{i}"), change.apply.clone(), input)
                        .state_section(&format!("s{i}"), path_arg.clone(), &write)?
                        .stop_unless_applied(path_arg.clone()),
                )
            })?;
            if !announced {
                markers.insert(
                    format!("{nonce} begin a{i}"),
                    Marker::Begin(step.task.id.clone(), step.task.name.clone()),
                );
            }
            markers.insert(format!("{nonce} end a{i} 0"), Marker::Applied(i));
            markers.insert(format!("{nonce} end s{i} 0"), Marker::Recorded(i));
        }
        let mut script = script.compact_state(path_arg).restart_section();
        let mut reprobed = Vec::new();
        for (i, step) in steps.iter().enumerate().skip(batch[0].step() + 1) {
            if let Some(probe) = step.probe() {
                script = script.reprobe_section(i, probe.clone());
                reprobed.push(i);
            }
        }
        let (script, framing) = script.finish();
        Ok(BatchScript {
            script,
            framing,
            stdin,
            markers,
            reprobed,
            folds,
        })
    }

    /// The connection died (or timed out) mid-batch. What the host got through is
    /// what its journal says: read again when the connection still answers (a
    /// timeout), else what its output said before the end (the applies that
    /// succeeded and whose entry was written). The first apply not recorded is the
    /// task in flight, which failed.
    async fn lost(
        &self,
        steps: &[Step<'_>],
        batch: &[Item],
        end: usize,
        ledger: &StateLedger,
        progress: BatchProgress,
        error: &k8sup_ssh::CommandError,
    ) -> BatchRun {
        let engine = self.shared.engine;
        let host = self.host;
        let journal = probe_all(host, &[], &engine.options.state_path, &engine.redactor)
            .await
            .ok()
            .map(|probed| probed.ledger);
        let recorded = |i: usize| match &journal {
            Some(now) => {
                let id = &steps[i].task.id;
                steps[i].recorded_in(now) && now.tasks.get(id) != ledger.tasks.get(id)
            }
            None => progress.done(i),
        };
        let in_flight = batch
            .iter()
            .filter(|item| matches!(item, Item::Apply { .. }))
            .map(Item::step)
            .find(|i| !recorded(*i));
        // Every apply recorded: it was lost in the re-probe after them, which judges
        // the next step.
        let from = in_flight.unwrap_or(end);
        let (id, step) = match steps.get(from) {
            Some(step) if in_flight.is_some() => {
                (step.task.id.clone(), format!("task {}", step.task.id))
            }
            Some(step) => (
                step.task.id.clone(),
                format!("the probe of task {}", step.task.id),
            ),
            None => ("(re-probe)".into(), "the end of the last batch".into()),
        };
        let error = TaskError::Transport {
            host: host.name.clone(),
            step,
            message: engine.redactor.redact(&transport_message(error)),
        };
        BatchRun {
            failed: Some(Stop::from(&id, error)),
            ..BatchRun::until(from)
        }
    }

    /// Records each apply the output reports in `ledger`, with its time by the host's
    /// clock (anchored at `sent`, the controller's time the batch was sent), up to the
    /// first that failed, which stops the batch.
    fn record_applies(
        &self,
        steps: &[Step<'_>],
        batch: &[Item],
        end: usize,
        output: &BatchOutput,
        sent: Duration,
        ledger: &mut StateLedger,
    ) -> BatchRun {
        let engine = self.shared.engine;
        let host = self.host;
        let stderr_tail = &output.stderr_tail;
        let mut ran = BatchRun::until(end);
        let mut first_start: Option<u64> = None;
        for item in batch {
            let Item::Apply {
                step: i, change, ..
            } = item
            else {
                continue;
            };
            let task = steps[*i].task;
            let apply = output.section(&format!("a{i}"));
            if apply.is_none() && output.section("from").is_some() {
                // A guard stopped the batch before this apply.
                continue;
            }
            let state = output.section(&format!("s{i}"));
            let times = state.map(|s| s.fields()).unwrap_or_default();
            let time = |key: &str| {
                times
                    .get(key)
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(0)
            };
            let success = apply.is_some_and(|s| s.status == 0);
            if state.is_some() {
                ledger.record(
                    &task.id,
                    steps[*i].fingerprint(),
                    success,
                    time("start"),
                    time("end"),
                    &task.notify,
                    steps[*i].handler.then_some(task.id.as_str()),
                );
            }
            ran.durations.insert(
                *i,
                Duration::from_millis(time("end").saturating_sub(time("start"))),
            );
            if state.is_some() {
                let first = *first_start.get_or_insert(time("start"));
                ran.starts.insert(
                    *i,
                    sent + Duration::from_millis(time("start").saturating_sub(first)),
                );
            }
            if !success {
                let command = change
                    .command
                    .clone()
                    .unwrap_or_else(|| change.apply.render());
                // No section: the script died before or during this apply.
                let status = apply
                    .map(|s| format!("exit {}", s.status))
                    .unwrap_or_else(|| output.status.clone());
                ran.failed = Some(Stop {
                    task: task.id.clone(),
                    command: Some(command.clone()),
                    exit_status: Some(status.clone()),
                    stderr_tail: stderr_tail.clone(),
                    error: TaskError::Failed {
                        host: host.name.clone(),
                        task: task.id.clone(),
                        command: engine.redactor.redact(&command),
                        status,
                        stderr_tail: stderr_tail.clone(),
                    },
                    dependency: false,
                });
                ran.from = *i;
                return ran;
            }
            if state.is_none_or(|s| s.status != 0) {
                self.emit(EngineEvent::Warning {
                    host: host.name.clone(),
                    message: format!(
                        "task {} was applied but could not be recorded in {}: {stderr_tail}",
                        task.id, engine.options.state_path
                    ),
                });
            }
        }
        ran
    }

    /// An output sink that reports a task as started when its apply section begins.
    /// It also keeps in `progress` which applies succeeded and were recorded.
    pub(super) fn watch_markers(
        &self,
        markers: HashMap<String, Marker>,
        progress: Arc<std::sync::Mutex<BatchProgress>>,
    ) -> k8sup_ssh::OutputSink {
        let sink = self.shared.sink.clone();
        let host = self.host.name.clone();
        let line = std::sync::Mutex::new(Vec::<u8>::new());
        Arc::new(move |stream, data: &[u8]| {
            if stream != k8sup_ssh::OutputStream::Stdout {
                return;
            }
            let Ok(mut line) = line.lock() else {
                return;
            };
            for byte in data {
                if *byte != b'\n' {
                    // Only short lines can be markers: keep no more than one's length.
                    if line.len() < 200 {
                        line.push(*byte);
                    }
                    continue;
                }
                match markers.get(String::from_utf8_lossy(&line).as_ref()) {
                    Some(Marker::Begin(task, name)) => sink(EngineEvent::TaskStarted {
                        host: host.clone(),
                        task: task.clone(),
                        name: name.clone(),
                    }),
                    Some(Marker::Applied(step)) => {
                        if let Ok(mut progress) = progress.lock() {
                            progress.applied.insert(*step);
                        }
                    }
                    Some(Marker::Recorded(step)) => {
                        if let Ok(mut progress) = progress.lock() {
                            progress.recorded.insert(*step);
                        }
                    }
                    None => {}
                }
                line.clear();
            }
        })
    }
}

/// What a batch did.
pub(super) struct BatchRun {
    /// The first step not settled by the batch (the first stale guard, the failed
    /// step, or the step after the batch).
    pub(super) from: usize,
    /// The re-probed steps, from `from` on.
    pub(super) judged: Judged,
    /// How long each apply took, by the host's clock.
    pub(super) durations: BTreeMap<usize, Duration>,
    /// When each apply started, from the start of the run: the controller's time the
    /// batch was sent plus the host's time since the batch's first apply started.
    pub(super) starts: BTreeMap<usize, Duration>,
    /// The apply that failed.
    pub(super) failed: Option<Stop>,
}

impl BatchRun {
    /// Nothing settled past `from` yet.
    fn until(from: usize) -> BatchRun {
        BatchRun {
            from,
            judged: Judged::new(),
            durations: BTreeMap::new(),
            starts: BTreeMap::new(),
            failed: None,
        }
    }
}

/// A batch's script, ready to send, and what reading its output needs.
struct BatchScript {
    script: Script,
    framing: Framing,
    /// Every apply's stdin, in the order the applies read it.
    stdin: Vec<u8>,
    /// The output lines that tell how far the host got.
    markers: HashMap<String, Marker>,
    /// The steps probed again at the end of the batch.
    reprobed: Vec<usize>,
    /// Whether its end rewrites the ledger file and empties the journal (else the
    /// entries stay in the journal).
    folds: bool,
}

/// A batch's output, parsed into its sections.
struct BatchOutput {
    sections: Vec<Section>,
    /// How the script ended (`exit 1`, `killed by signal 9`).
    status: String,
    /// The last lines of its stderr, redacted.
    stderr_tail: String,
}

impl BatchOutput {
    /// Err: the output cannot be parsed, in words naming how the script ended.
    fn read(output: &CommandOutput, framing: &Framing, engine: &Engine) -> Result<Self, String> {
        let stderr_tail = engine.redactor.redact(&tail(&output.stderr_text()));
        let status = output.status_text();
        let sections = framing
            .parse(&output.stdout_text())
            .map_err(|message| format!("{message}; {status}: {stderr_tail}"))?;
        Ok(BatchOutput {
            sections,
            status,
            stderr_tail,
        })
    }

    fn section(&self, name: &str) -> Option<&Section> {
        self.sections.iter().find(|s| s.name == name)
    }
}

/// A line of a batch's output that tells how far the host got.
pub(super) enum Marker {
    /// An apply begins: its task's id and name, to report it started.
    Begin(String, String),
    /// This step's apply exited 0.
    Applied(usize),
    /// The ledger entry of this step's apply was written.
    Recorded(usize),
}

/// What a batch's output said so far.
#[derive(Debug, Clone, Default)]
pub(super) struct BatchProgress {
    pub(super) applied: BTreeSet<usize>,
    pub(super) recorded: BTreeSet<usize>,
}

impl BatchProgress {
    /// Whether step `i` was applied and recorded in the host's journal.
    pub(super) fn done(&self, i: usize) -> bool {
        self.applied.contains(&i) && self.recorded.contains(&i)
    }
}
