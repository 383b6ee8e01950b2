//! Probe, judge, plan: the one round trip that reads a host's ledger and runs every
//! probe of its program, the verdicts made of that output, and the plan entries and
//! saved-plan check made of the verdicts. Nothing here changes a host.

use std::collections::BTreeMap;

use k8sup_shell::Script;
use k8sup_ssh::{CommandOutput, Transport};

use crate::encoding::{decode_b64, sha256_hex};
use crate::error::TaskError;
use crate::host::HostSpec;
use crate::kinds::{Rendered, Verdict};
use crate::plan::{HostPlan, TaskPlan, TaskStatus};
use crate::program::{Selection, Step};
use crate::redact::Redactor;
use crate::script::{arg, guard_digest, FramedScript, Guard, Section};
use crate::state::StateLedger;

/// A step's probe output, judged.
pub(super) struct Judgement {
    /// What to do (or why the output could not be judged).
    pub(super) verdict: Result<Verdict, String>,
    /// The digest of the output kept in plans (see [`TaskPlan::probe_digest`]).
    pub(super) digest: String,
    /// How a batch checks on the host that the output is still this one.
    pub(super) guard: Guard,
}

/// Per step index, its judged probe output.
pub(super) type Judged = BTreeMap<usize, Judgement>;

/// A transport failure in words that name no command: the command is the batch
/// script, which holds many tasks.
pub(super) fn transport_message(e: &k8sup_ssh::CommandError) -> String {
    use k8sup_ssh::CommandError;
    match e {
        CommandError::Timeout { after, .. } => {
            format!(
                "it did not finish within {after:?} (ssh.command_timeout); its channel was closed"
            )
        }
        CommandError::Channel { step, source, .. } => format!("{step} failed: {source}"),
        other => other.to_string(),
    }
}

/// Lines of stderr kept in a failure message.
pub(super) const STDERR_TAIL_LINES: usize = 20;

/// A host's program and its first probe, made before its run starts.
pub(super) struct HostStart<'p> {
    pub(super) steps: Vec<Step<'p>>,
    pub(super) probed: Probed,
}

/// What the batched probe found.
pub(super) struct Probed {
    pub(super) ledger: StateLedger,
    /// Per step index: the verdict (or why it could not be judged) and the output digest.
    pub(super) judged: Judged,
}

/// Runs one channel: `script` with `stdin`, returning stdout text, or a transport
/// error naming `step`.
pub(super) async fn run(
    transport: &dyn Transport,
    script: &Script,
    stdin: Option<Vec<u8>>,
    step: &str,
    redactor: &Redactor,
) -> Result<CommandOutput, TaskError> {
    let options = crate::script::framed_options(stdin);
    transport
        .run_with(script, options)
        .await
        .map_err(|e| TaskError::Transport {
            host: transport.host().to_string(),
            step: step.to_string(),
            message: redactor.redact(&transport_message(&e)),
        })
}

/// Adds a probe section for every step in `indices` that has a probe.
pub(super) fn add_probes(
    mut script: FramedScript,
    steps: &[Step<'_>],
    indices: impl Iterator<Item = usize>,
) -> (FramedScript, Vec<usize>) {
    let mut probed = Vec::new();
    for i in indices {
        if let Some(probe) = steps[i].probe() {
            script = script.section(&i.to_string(), probe.clone());
            probed.push(i);
        }
    }
    (script, probed)
}

/// Judges the probe sections of `probed` steps.
pub(super) fn judge_sections(
    host: &HostSpec,
    steps: &[Step<'_>],
    probed: &[usize],
    sections: &[Section],
) -> Result<Judged, TaskError> {
    let mut judged = BTreeMap::new();
    for i in probed {
        let name = i.to_string();
        let section =
            sections
                .iter()
                .find(|s| s.name == name)
                .ok_or_else(|| TaskError::ProbeOutput {
                    host: host.name.clone(),
                    task: steps[*i].task.id.clone(),
                    message: "the probe output is missing (cut off?)".into(),
                })?;
        let Selection::Run { rendered, .. } = &steps[*i].selection else {
            continue;
        };
        let digest = sha256_hex(format!("{}\n{}", section.status, section.body).as_bytes());
        judged.insert(
            *i,
            Judgement {
                verdict: rendered.judge(&host.platform, section),
                digest,
                guard: Guard {
                    digest: guard_digest(section),
                    check: rendered.guard_check(section),
                },
            },
        );
    }
    Ok(judged)
}

/// The one round trip that reads the ledger and runs every probe of a host.
pub(super) async fn probe_all(
    host: &HostSpec,
    steps: &[Step<'_>],
    state_path: &str,
    redactor: &Redactor,
) -> Result<Probed, TaskError> {
    let state_arg = arg(state_path).map_err(|message| TaskError::State {
        host: host.name.clone(),
        path: state_path.to_string(),
        message,
    })?;
    let script = FramedScript::new()
        .prefetch(
            steps.iter().flat_map(Step::probed_files),
            steps.iter().flat_map(Step::read_files),
        )
        .section("state", Script::new("k8sup_read_state").arg(state_arg));
    let (script, probed) = add_probes(script, steps, 0..steps.len());
    let (script, framing) = script.finish();
    let output = run(
        host.transport.as_ref(),
        &script,
        None,
        "the probe",
        redactor,
    )
    .await?;
    let bad_output = |message: String| TaskError::ProbeOutput {
        host: host.name.clone(),
        task: "(all)".into(),
        message: redactor.redact(&message),
    };
    let sections = framing.parse(&output.stdout_text()).map_err(|m| {
        bad_output(format!(
            "{m}; {}: {}",
            output.status_text(),
            tail(&output.stderr_text())
        ))
    })?;
    let state_section = sections.iter().find(|s| s.name == "state").ok_or_else(|| {
        bad_output(format!(
            "no output ({}): {}",
            output.status_text(),
            tail(&output.stderr_text())
        ))
    })?;
    let ledger = read_ledger(host, state_path, state_section)?;
    let judged = judge_sections(host, steps, &probed, &sections)?;
    Ok(Probed { ledger, judged })
}

pub(super) fn read_ledger(
    host: &HostSpec,
    path: &str,
    section: &Section,
) -> Result<StateLedger, TaskError> {
    let error = |message: String| TaskError::State {
        host: host.name.clone(),
        path: path.to_string(),
        message,
    };
    if section.status != 0 {
        return Err(error(format!("reading it exited {}", section.status)));
    }
    let fields = section.fields();
    let mut ledger = match fields.get("state").map(String::as_str) {
        Some("absent") => StateLedger::default(),
        Some(b64) => {
            let bytes = decode_b64(b64).map_err(error)?;
            StateLedger::parse(&String::from_utf8_lossy(&bytes)).map_err(error)?
        }
        None => return Err(error("the probe sent nothing for it".into())),
    };
    if let Some(b64) = fields.get("journal") {
        let bytes = decode_b64(b64).map_err(error)?;
        ledger
            .replay_journal(&String::from_utf8_lossy(&bytes))
            .map_err(|m| error(format!("its journal: {m}")))?;
        ledger.journal_bytes = bytes.len() as u64;
    }
    Ok(ledger)
}

/// The last lines of `text`.
pub(super) fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.trim_end().lines().collect();
    let start = lines.len().saturating_sub(STDERR_TAIL_LINES);
    lines[start..].join("\n")
}

/// Turns probe results into plan entries (statuses, reasons, diffs), handlers last
/// in each play, all text redacted.
pub(super) fn plan_steps(
    steps: &[Step<'_>],
    probed: &Probed,
    redactor: &Redactor,
) -> Vec<TaskPlan> {
    let mut out: Vec<TaskPlan> = Vec::new();
    let mut notified: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (i, step) in steps.iter().enumerate() {
        let task = step.task;
        let mut entry = TaskPlan {
            id: task.id.clone(),
            name: task.name.clone(),
            kind: task.action.kind().to_string(),
            status: TaskStatus::Ok,
            reason: String::new(),
            diff: None,
            command: None,
            fingerprint: step.fingerprint().to_string(),
            probe_digest: None,
            handler: step.handler,
        };
        match &step.selection {
            Selection::Skip(reason) => {
                entry.status = TaskStatus::Skip;
                entry.reason = reason.clone();
            }
            Selection::Run { rendered, .. } if step.handler => {
                let by = notified.get(&task.id);
                if let Some(by) = by {
                    entry.status = TaskStatus::Change;
                    entry.reason = format!("notified by {}", by.join(", "));
                } else if probed.ledger.pending_handlers.contains(&task.id) {
                    entry.status = TaskStatus::Change;
                    entry.reason = "notified by an earlier run that did not finish".into();
                } else {
                    entry.reason = "not notified".into();
                }
                if entry.status == TaskStatus::Change {
                    entry.command = rendered.handler_change().ok().and_then(|c| c.command);
                }
            }
            Selection::Run {
                rendered: Rendered::Fetch(fetch),
                ..
            } => {
                entry.reason = format!(
                    "provides {} when a task that needs it changes",
                    fetch.provides
                );
                entry.command = Some(fetch.cmd.clone());
            }
            Selection::Run { .. } => match probed.judged.get(&i) {
                None => {
                    entry.status = TaskStatus::Skip;
                    entry.reason = "no probe".into();
                }
                Some(judgement) => {
                    entry.probe_digest = Some(judgement.digest.clone());
                    match &judgement.verdict {
                        Ok(Verdict::Ok { reason }) => entry.reason = reason.clone(),
                        Ok(Verdict::Change(change)) => {
                            entry.status = if step.recorded_in(&probed.ledger) {
                                TaskStatus::Drift
                            } else {
                                TaskStatus::Change
                            };
                            entry.reason = change.reason.clone();
                            entry.diff = change.diff.clone();
                            entry.command = change.command.clone();
                            for handler in &task.notify {
                                notified
                                    .entry(handler.clone())
                                    .or_default()
                                    .push(task.name.clone());
                            }
                        }
                        Err(message) => {
                            entry.status = TaskStatus::Change;
                            entry.reason = format!("cannot tell: {message}");
                        }
                    }
                }
            },
        }
        entry.reason = redactor.redact(&entry.reason);
        entry.diff = entry.diff.map(|d| redactor.redact(&d));
        entry.command = entry.command.map(|c| redactor.redact(&c));
        out.push(entry);
    }
    out
}

/// The host must be exactly as it was when the plan was made.
pub(super) fn check_plan(
    host: &HostSpec,
    steps: &[Step<'_>],
    probed: &Probed,
    planned: &HostPlan,
) -> Result<(), TaskError> {
    let mismatch = |message: String| TaskError::PlanMismatch {
        host: host.name.clone(),
        message,
    };
    if let Some(error) = &planned.error {
        return Err(mismatch(format!("the plan has no tasks for it ({error})")));
    }
    let ids: Vec<&str> = steps.iter().map(|s| s.task.id.as_str()).collect();
    let planned_ids: Vec<&str> = planned.tasks.iter().map(|t| t.id.as_str()).collect();
    if ids != planned_ids {
        return Err(mismatch(
            "the playbook's tasks for it differ from the plan's; make a new plan".into(),
        ));
    }
    for (i, (step, plan)) in steps.iter().zip(&planned.tasks).enumerate() {
        if step.fingerprint() != plan.fingerprint {
            return Err(mismatch(format!(
                "the inputs of task {} changed since the plan; make a new plan",
                plan.id
            )));
        }
        let digest = probed.judged.get(&i).map(|j| j.digest.as_str());
        if digest != plan.probe_digest.as_deref() {
            return Err(mismatch(format!(
                "it drifted since the plan: task {} now probes differently; make a new plan",
                plan.id
            )));
        }
    }
    Ok(())
}
