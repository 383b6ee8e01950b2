//! The engine: plan (probes only) and apply (per-host runners in parallel).
//!
//! Following one host through [`Engine::apply`]:
//! 1. its program is built ([`crate::program`]): tasks selected, rendered, fingerprinted;
//! 2. ONE channel runs every probe plus the ledger read ([`probe_all`]);
//! 3. tasks are walked in order; an `ok` task costs nothing more. The first change and
//!    every step after it, up to the next barrier, go in ONE channel (a batch): each
//!    change's apply and the atomic ledger write, stopping at the first failure; before
//!    each step after the first change, its probe runs again on the host and must
//!    print what it printed when judged (a guard), or the batch stops there; then every
//!    later step is probed again. So nothing is done on a verdict made stale by an
//!    earlier change (a service after its package, a file another task rewrote): a
//!    stale step is judged afresh and starts the next batch. Barriers: a command that
//!    `needs` a value or `waits_for` a signal, a fetch, a step that cannot be judged,
//!    and the size of the script;
//! 4. a command that `needs` a value waits (without holding a parallelism slot) until
//!    the producing host has reached its fetch task; the fetch then runs once, on the
//!    producer, only because someone needs it. One that `waits_for` a signal waits the
//!    same way until every other host that gives it is past its signaling task or
//!    stopped (an order between hosts, with several givers and no value);
//! 5. a read-only host ([`EngineOptions::read_only`], what `--limit` leaves out) is
//!    only probed: nothing is applied nor written to its ledger, and it provides its
//!    values only if every task before their fetch is settled on it.
//!
//! A no-op apply of a host is therefore one round trip, and a converge without
//! barriers two.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8sup_shell::Script;
use k8sup_ssh::{CommandOutput, RunOptions, Transport};
use minijinja::Environment;
use tokio::sync::{watch, OnceCell, Semaphore};

use crate::encoding::{decode_b64, sha256_hex};
use crate::error::{EngineError, TaskError};
use crate::event::{EngineEvent, EventSink, TaskOutcome};
use crate::host::HostSpec;
use crate::kinds::{self, Change, Verdict};
use crate::plan::{HostPlan, Plan, TaskPlan, TaskStatus};
use crate::playbook::{Action, HostSelector, Playbook};
use crate::program::{self, Selection, Step};
use crate::redact::Redactor;
use crate::report::{read_history, HostOutcome, HostReport, RunReport, RunStatus, TaskReport};
use crate::script::{arg, guard_digest, FramedScript, Section};
use crate::state::{PendingEntry, StateLedger, DEFAULT_STATE_PATH};
use crate::template::{self, TemplateSet};

/// A step's probe output, judged.
struct Judgement {
    /// What to do (or why the output could not be judged).
    verdict: Result<Verdict, String>,
    /// The digest of the output kept in plans (see [`TaskPlan::probe_digest`]).
    digest: String,
    /// The digest a guard compares on the host ([`guard_digest`]).
    guard: String,
}

/// Per step index, its judged probe output.
type Judged = BTreeMap<usize, Judgement>;

/// The most text (applies, ledger writes, guards) one batch adds to its script: the
/// whole script goes in one `exec` argument, which Linux caps at 128 KiB.
const MAX_BATCH_SCRIPT: usize = 48 * 1024;

/// What the runner does with a step, decided from fresh verdicts.
enum Decision {
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
enum Item {
    /// Nothing to do, as long as its guard (for a step after a change) still holds.
    Settled {
        step: usize,
        outcome: TaskOutcome,
        reason: String,
        guard: Option<String>,
    },
    /// A change; guarded unless it is the first of its batch.
    Apply {
        step: usize,
        change: Change,
        drift: bool,
        guard: Option<String>,
        /// Its start was already reported (it waited for values).
        announced: bool,
    },
}

impl Item {
    fn step(&self) -> usize {
        match self {
            Item::Settled { step, .. } | Item::Apply { step, .. } => *step,
        }
    }

    fn guard(&self) -> Option<&str> {
        match self {
            Item::Settled { guard, .. } | Item::Apply { guard, .. } => guard.as_deref(),
        }
    }
}

/// What a batch did.
struct BatchRun {
    /// The first step not settled by the batch (the first stale guard, the failed
    /// step, or the step after the batch).
    from: usize,
    /// The re-probed steps, from `from` on.
    judged: Judged,
    /// How long each apply took, by the host's clock.
    durations: BTreeMap<usize, Duration>,
    /// When each apply started, from the start of the run: the controller's time the
    /// batch was sent plus the host's time since the batch's first apply started.
    starts: BTreeMap<usize, Duration>,
    /// The apply that failed.
    failed: Option<Stop>,
}

/// A line of a batch's output that tells how far the host got.
enum Marker {
    /// An apply begins: its task's id and name, to report it started.
    Begin(String, String),
    /// This step's apply exited 0.
    Applied(usize),
    /// The ledger entry of this step's apply was written.
    Recorded(usize),
}

/// What a batch's output said so far.
#[derive(Debug, Clone, Default)]
struct BatchProgress {
    applied: BTreeSet<usize>,
    recorded: BTreeSet<usize>,
}

impl BatchProgress {
    /// Whether step `i` was applied and recorded in the host's journal.
    fn done(&self, i: usize) -> bool {
        self.applied.contains(&i) && self.recorded.contains(&i)
    }
}

/// A transport failure in words that name no command: the command is the batch
/// script, whose first line is the shell prelude, not the task.
fn transport_message(e: &k8sup_ssh::CommandError) -> String {
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
const STDERR_TAIL_LINES: usize = 20;

/// How the engine runs.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// Hosts in flight at once (at least 1).
    pub parallelism: usize,
    /// Where the ledger lives on each host.
    pub state_path: String,
    /// Where to keep one JSON report per apply; `None` keeps no history.
    pub history_dir: Option<PathBuf>,
    /// Hosts that are only read (`--limit` leaves them out): never planned nor
    /// changed, but probed, and asked for the values they provide (join
    /// credentials) when a changing host needs them and they are settled.
    pub read_only: BTreeSet<String>,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            parallelism: 10,
            state_path: DEFAULT_STATE_PATH.to_string(),
            history_dir: None,
            read_only: BTreeSet::new(),
        }
    }
}

/// A playbook with its templates, ready to plan and apply on hosts.
pub struct Engine {
    playbook: Playbook,
    env: Environment<'static>,
    options: EngineOptions,
    redactor: Redactor,
}

impl Engine {
    pub fn new(playbook: Playbook, templates: &TemplateSet, options: EngineOptions) -> Engine {
        Engine {
            playbook,
            env: template::environment(templates),
            options,
            redactor: Redactor::new(),
        }
    }

    /// The redactor every output passes through; add the inventory's secrets to it.
    pub fn redactor(&self) -> &Redactor {
        &self.redactor
    }

    pub fn playbook(&self) -> &Playbook {
        &self.playbook
    }

    /// The hosts this run may change: all but the read-only ones.
    fn changing<'a>(&'a self, hosts: &'a [HostSpec]) -> impl Iterator<Item = &'a HostSpec> + 'a {
        let read_only = &self.options.read_only;
        hosts.iter().filter(move |h| !read_only.contains(&h.name))
    }

    /// Checks that named selectors name hosts, and finds each value's producer: the
    /// first host (in the order given) that runs the fetch task providing it.
    fn producers(
        &self,
        hosts: &[HostSpec],
    ) -> Result<BTreeMap<String, (String, String)>, EngineError> {
        for play in &self.playbook.plays {
            if let HostSelector::Name(name) = &play.hosts {
                if !hosts.iter().any(|h| h.name == *name) {
                    return Err(EngineError::UnknownHost { name: name.clone() });
                }
            }
        }
        let mut producers = BTreeMap::new();
        for play in &self.playbook.plays {
            for task in &play.tasks {
                let Action::Fetch(fetch) = &task.action else {
                    continue;
                };
                let producer = hosts.iter().filter(|h| play.hosts.selects(h)).find(|h| {
                    let context = minijinja::Value::from_serialize(program::host_context(h));
                    task.when
                        .iter()
                        .all(|expr| template::evaluate(&self.env, expr, &context).unwrap_or(false))
                });
                if let Some(host) = producer {
                    producers.insert(fetch.provides.clone(), (host.name.clone(), task.id.clone()));
                }
            }
        }
        Ok(producers)
    }

    /// Probes every host (read-only) and returns what apply would do.
    pub async fn plan(&self, hosts: &[HostSpec]) -> Result<Plan, EngineError> {
        let producers = self.producers(hosts)?;
        let producer_names = producers
            .iter()
            .map(|(k, (h, _))| (k.clone(), h.clone()))
            .collect();
        let semaphore = Semaphore::new(self.options.parallelism.max(1));
        let futures = self.changing(hosts).map(|host| {
            let semaphore = &semaphore;
            let producer_names = &producer_names;
            async move {
                let _permit = semaphore.acquire().await.ok();
                self.plan_host(host, producer_names).await
            }
        });
        let hosts = futures::future::join_all(futures).await;
        Ok(Plan {
            format: Plan::FORMAT,
            playbook: self.playbook.source_name.clone(),
            inventory_sha256: None,
            hosts,
        })
    }

    async fn plan_host(&self, host: &HostSpec, producers: &BTreeMap<String, String>) -> HostPlan {
        let result = async {
            let steps = program::build(&self.playbook, &self.env, host, producers)?;
            let probed = probe_all(host, &steps, &self.options.state_path, &self.redactor).await?;
            Ok::<_, TaskError>(plan_steps(&steps, &probed, &self.redactor))
        }
        .await;
        match result {
            Ok(tasks) => HostPlan {
                host: host.name.clone(),
                tasks,
                error: None,
            },
            Err(e) => HostPlan {
                host: host.name.clone(),
                tasks: Vec::new(),
                error: Some(self.redactor.redact(&e.to_string())),
            },
        }
    }

    /// Applies the playbook to every host; with `plan`, applies exactly that plan and
    /// refuses hosts that drifted since it was made.
    pub async fn apply(
        &self,
        hosts: &[HostSpec],
        plan: Option<&Plan>,
        sink: EventSink,
    ) -> Result<RunReport, EngineError> {
        let started_at = humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string();
        let started = Instant::now();
        if let Some(plan) = plan {
            self.check_plan_header(plan, hosts)?;
        }
        let producers = self.producers(hosts)?;
        // The run's record is opened before any host is touched and closed when it
        // ends: a run killed in between stays `running`, and shows as interrupted.
        let mut record = RunReport::without_tasks(
            started_at.clone(),
            &self.playbook.source_name,
            self.changing(hosts).map(|h| {
                (
                    h.name.clone(),
                    HostOutcome::Interrupted,
                    "the run has not finished".to_string(),
                )
            }),
        );
        record.status = RunStatus::Running;
        let abandoned = match &self.options.history_dir {
            Some(dir) => {
                record.save_history(dir)?;
                read_history(dir)
                    .unwrap_or_default()
                    .into_iter()
                    .filter(RunReport::is_abandoned)
                    .collect()
            }
            None => Vec::new(),
        };
        let mut board = Board::default();
        for (play, task) in self.playbook.all_tasks() {
            for signal in &task.signals {
                let givers: BTreeSet<String> = self
                    .changing(hosts)
                    .filter(|h| play.hosts.selects(h))
                    .map(|h| h.name.clone())
                    .collect();
                let slot = board
                    .signals
                    .entry(signal.clone())
                    .or_insert_with(|| watch::channel(BTreeSet::new()).0);
                slot.send_modify(|waiting_on| waiting_on.extend(givers));
            }
        }
        for (value, (host_name, task_id)) in &producers {
            board.slots.insert(
                value.clone(),
                Slot {
                    producer_host: host_name.clone(),
                    producer_task: task_id.clone(),
                    state: watch::channel(SlotState::Pending).0,
                    value: OnceCell::new(),
                },
            );
        }
        let producer_names = producers
            .iter()
            .map(|(k, (h, _))| (k.clone(), h.clone()))
            .collect();
        let shared = Shared {
            engine: self,
            board,
            semaphore: Semaphore::new(self.options.parallelism.max(1)),
            sink,
            producers: producer_names,
            transports: hosts
                .iter()
                .map(|h| (h.name.clone(), h.transport.clone()))
                .collect(),
            started,
        };
        let changing: Vec<HostSpec> = self.changing(hosts).cloned().collect();
        let round_trips_before: Vec<u64> =
            changing.iter().map(|h| h.transport.round_trips()).collect();
        // A saved plan is applied whole or not at all: every host is probed and
        // checked against it before any host is changed.
        let mut checked: Vec<Option<HostStart<'_>>> = changing.iter().map(|_| None).collect();
        if let Some(plan) = plan {
            match shared.check_saved_plan(&changing, plan).await {
                Ok(starts) => checked = starts.into_iter().map(Some).collect(),
                Err(refused) => return self.close_record(record, refused, started, None),
            }
        }
        let futures =
            changing
                .iter()
                .zip(checked)
                .zip(round_trips_before)
                .map(|((host, start), before)| {
                    let shared = &shared;
                    let planned = plan.and_then(|p| p.host(&host.name));
                    async move { shared.run_host(host, planned, start, before).await }
                });
        // Read-only hosts (`--limit` left them out) provide their values only.
        let readers = hosts
            .iter()
            .filter(|h| self.options.read_only.contains(&h.name))
            .map(|host| shared.read_host(host));
        let (ran, _) = futures::future::join(
            futures::future::join_all(futures),
            futures::future::join_all(readers),
        )
        .await;
        let mut ledgers = BTreeMap::new();
        let mut reports = Vec::new();
        for (report, ledger) in ran {
            if let Some(ledger) = ledger {
                ledgers.insert(report.host.clone(), ledger);
            }
            reports.push(report);
        }
        self.close_record(record, reports, started, Some((abandoned, &ledgers)))
    }
}

impl Engine {
    /// What a saved plan must say before any host is probed: its format, this
    /// playbook, these hosts.
    fn check_plan_header(&self, plan: &Plan, hosts: &[HostSpec]) -> Result<(), EngineError> {
        if plan.format != Plan::FORMAT {
            return Err(EngineError::PlanFormat {
                found: plan.format,
                wanted: Plan::FORMAT,
            });
        }
        if plan.playbook != self.playbook.source_name {
            return Err(EngineError::PlanPlaybook {
                planned: plan.playbook.clone(),
                now: self.playbook.source_name.clone(),
            });
        }
        let planned: Vec<String> = plan.hosts.iter().map(|h| h.host.clone()).collect();
        let now: Vec<String> = self.changing(hosts).map(|h| h.name.clone()).collect();
        if planned != now {
            return Err(EngineError::PlanHostsDiffer { planned, now });
        }
        Ok(())
    }
}

impl Engine {
    /// The run's record, finished with `hosts` and written over the one opened at
    /// its start; `abandoned` records of killed runs are completed from `ledgers`.
    fn close_record(
        &self,
        record: RunReport,
        hosts: Vec<HostReport>,
        started: Instant,
        abandoned: Option<(Vec<RunReport>, &BTreeMap<String, StateLedger>)>,
    ) -> Result<RunReport, EngineError> {
        let report = RunReport {
            duration_ms: millis(started.elapsed()),
            status: RunStatus::Finished,
            hosts,
            ..record
        };
        if let Some(dir) = &self.options.history_dir {
            if let Some((abandoned, ledgers)) = abandoned {
                self.complete_abandoned(dir, abandoned, ledgers, &report.started_at);
            }
            report.save_history(dir)?;
        }
        Ok(report)
    }

    /// Completes the records of killed runs from the hosts' ledgers as this run
    /// first read them (before it changed anything): what each host recorded
    /// between the killed run's start and this run's.
    fn complete_abandoned(
        &self,
        dir: &std::path::Path,
        abandoned: Vec<RunReport>,
        ledgers: &BTreeMap<String, StateLedger>,
        now: &str,
    ) {
        let until_ms = humantime::parse_rfc3339(now)
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(u64::MAX, millis);
        let name_of = |id: &str| {
            self.playbook
                .plays
                .iter()
                .flat_map(|p| p.tasks.iter().chain(&p.handlers))
                .find(|t| t.id == id)
                .map(|t| t.name.clone())
        };
        for mut record in abandoned {
            record.complete_from_ledgers(ledgers, until_ms, name_of);
            // A record that cannot be rewritten stays `running`, shown as interrupted.
            let _ = record.save_history(dir);
        }
    }
}

/// A host's program and its first probe, made before its run starts.
struct HostStart<'p> {
    steps: Vec<Step<'p>>,
    probed: Probed,
}

fn millis(d: Duration) -> u64 {
    d.as_millis().try_into().unwrap_or(u64::MAX)
}

/// What the batched probe found.
struct Probed {
    ledger: StateLedger,
    /// Per step index: the verdict (or why it could not be judged) and the output digest.
    judged: Judged,
}

/// Runs one channel: `script` with `stdin`, returning stdout text, or a transport
/// error naming `step`.
async fn run(
    transport: &dyn Transport,
    script: &Script,
    stdin: Option<Vec<u8>>,
    step: &str,
    redactor: &Redactor,
) -> Result<CommandOutput, TaskError> {
    let options = RunOptions {
        stdin,
        ..RunOptions::default()
    };
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
fn add_probes(
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
fn judge_sections(
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
                verdict: kinds::judge(rendered, &host.platform, section),
                digest,
                guard: guard_digest(section),
            },
        );
    }
    Ok(judged)
}

/// The one round trip that reads the ledger and runs every probe of a host.
async fn probe_all(
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
        .prefetch(steps.iter().flat_map(Step::probed_files))
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

fn read_ledger(host: &HostSpec, path: &str, section: &Section) -> Result<StateLedger, TaskError> {
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
    }
    Ok(ledger)
}

/// The last lines of `text`.
fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.trim_end().lines().collect();
    let start = lines.len().saturating_sub(STDERR_TAIL_LINES);
    lines[start..].join("\n")
}

/// Turns probe results into plan entries (statuses, reasons, diffs), handlers last
/// in each play, all text redacted.
fn plan_steps(steps: &[Step<'_>], probed: &Probed, redactor: &Redactor) -> Vec<TaskPlan> {
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
                    entry.command = kinds::handler_change(rendered).ok().and_then(|c| c.command);
                }
            }
            Selection::Run {
                rendered: Action::Fetch(fetch),
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

/// Values flowing between hosts, and signals.
#[derive(Default)]
struct Board {
    slots: HashMap<String, Slot>,
    /// Per signal, the hosts that have still to give it: each host selected by a play
    /// with a task that signals it, until that host is past the task or stopped.
    signals: HashMap<String, watch::Sender<BTreeSet<String>>>,
}

struct Slot {
    producer_host: String,
    producer_task: String,
    state: watch::Sender<SlotState>,
    value: OnceCell<Result<String, String>>,
}

#[derive(Clone)]
enum SlotState {
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

/// What all host runners of one apply share.
struct Shared<'e> {
    engine: &'e Engine,
    board: Board,
    semaphore: Semaphore,
    sink: EventSink,
    producers: BTreeMap<String, String>,
    transports: HashMap<String, Arc<dyn Transport>>,
    /// When the run started: task start times in the report count from it.
    started: Instant,
}

/// Why a host stopped.
struct Stop {
    task: String,
    command: Option<String>,
    exit_status: Option<String>,
    stderr_tail: String,
    error: TaskError,
    dependency: bool,
}

impl Stop {
    fn from(task: &str, error: TaskError) -> Stop {
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
    fn emit(&self, event: EngineEvent) {
        (self.sink)(event)
    }

    /// Checks every host against the saved plan, probing them all (in parallel,
    /// within the parallelism). Every host matches: their programs and probes, to
    /// start from. Any does not: the reports of a refused run, the hosts that
    /// differ failed with the task named, the others skipped; no host was changed.
    async fn check_saved_plan<'p>(
        &'p self,
        hosts: &[HostSpec],
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

    async fn run_host<'p>(
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
        self.give_signals(self.board.signals.keys(), &host.name);
        for slot in self.board.slots.values() {
            if slot.producer_host == host.name && matches!(*slot.state.borrow(), SlotState::Pending)
            {
                let task = runner
                    .failed_task
                    .clone()
                    .unwrap_or_else(|| slot.producer_task.clone());
                slot.state.send_replace(SlotState::Failed {
                    host: host.name.clone(),
                    task,
                });
            }
        }
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

    /// A read-only host: probed (one round trip, nothing written), and each value it
    /// provides made available when every task before its fetch is settled on it,
    /// so that a value is never taken from a host that this run would have had to
    /// change first. The fetch itself runs when a changing host needs the value.
    async fn read_host(&self, host: &HostSpec) {
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
                rendered: Action::Fetch(fetch),
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

    /// `host` is past the tasks that give `signals`.
    fn give_signals<'a>(&self, signals: impl IntoIterator<Item = &'a String>, host: &str) {
        for signal in signals {
            if let Some(slot) = self.board.signals.get(signal) {
                slot.send_if_modified(|waiting_on| waiting_on.remove(host));
            }
        }
    }

    /// Waits (the permit is given back meanwhile) until every host but `for_host` that
    /// gives `signal` in this run has given it: an order, so a giver that stopped
    /// counts as given.
    async fn signal<'a>(
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
    async fn value<'a>(
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

    async fn fetch(&self, slot: &Slot, cmd: &str) -> Result<String, String> {
        let transport = self
            .transports
            .get(&slot.producer_host)
            .ok_or_else(|| format!("no connection to {}", slot.producer_host))?;
        let call = Script::new("k8sup_fetch").arg(arg(cmd)?);
        let (script, framing) = FramedScript::new()
            .apply_section("apply", call, None)
            .finish();
        let output = transport
            .run_with(&script, RunOptions::default())
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

/// What the run report keeps of a finished task besides its outcome (each text is
/// redacted on its way into the report).
#[derive(Debug, Default)]
struct TaskDetail {
    /// When it started, from the start of the run; `None`: its end minus its duration.
    started: Option<Duration>,
    diff: Option<String>,
    command: Option<String>,
    stderr: Option<String>,
}

/// One host's walk through its program during an apply.
struct HostRunner<'s, 'e> {
    shared: &'s Shared<'e>,
    host: &'s HostSpec,
    planned: Option<&'s HostPlan>,
    tasks: Vec<TaskReport>,
    failed_task: Option<String>,
    /// The ledger as the first probe read it, before this run changed anything.
    first_ledger: Option<StateLedger>,
}

impl<'s> HostRunner<'s, '_> {
    fn emit(&self, event: EngineEvent) {
        self.shared.emit(event)
    }

    fn redact(&self, text: &str) -> String {
        self.shared.engine.redactor.redact(text)
    }

    fn finish_task(
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
    async fn run(
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
    fn decide(
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
            return match kinds::handler_change(rendered) {
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
        if let Action::Fetch(_) = rendered {
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
    async fn next_batch(
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
                        rendered: Action::Fetch(fetch),
                        ..
                    } = &step.selection
                    else {
                        unreachable!("decide returns Fetch for fetch tasks only");
                    };
                    if let Some(slot) = self.shared.board.slots.get(&fetch.provides) {
                        if slot.producer_host == host.name {
                            slot.state.send_replace(SlotState::Ready {
                                cmd: fetch.cmd.clone(),
                                secret: fetch.secret,
                            });
                        }
                    }
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
                Selection::Run { rendered, .. } => kinds::apply_needs_fresh_probe(rendered),
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

    /// ONE channel for a batch: each step's guard, then each change's apply and the
    /// atomic ledger write (stopping at the first failure), then the re-probe of every
    /// later step, from the first stale guard (or the end of the batch) on.
    async fn run_batch(
        &mut self,
        steps: &[Step<'_>],
        batch: &[Item],
        end: usize,
        ledger: &mut StateLedger,
    ) -> Result<BatchRun, Stop> {
        let engine = self.shared.engine;
        let host = self.host;
        let first = &steps[batch[0].step()].task;
        let stop = |error: TaskError| Stop::from(&first.id, error);
        let state_error = |message: String| {
            stop(TaskError::State {
                host: host.name.clone(),
                path: engine.options.state_path.clone(),
                message,
            })
        };
        let path_arg = arg(engine.options.state_path.clone()).map_err(state_error)?;
        let mut script = FramedScript::new().begin_batch(end);
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
            script = script
                .while_going(|script| {
                    Ok(script
                        .apply_section(
                            &format!("a{i}"),
                            change.apply.clone(),
                            change.stdin.as_ref().map(Vec::len),
                        )
                        .state_section(&format!("s{i}"), path_arg.clone(), &write)?
                        .stop_unless_applied(path_arg.clone()))
                })
                .map_err(state_error)?;
            if let Some(bytes) = &change.stdin {
                stdin.extend_from_slice(bytes);
            }
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
        let progress = Arc::new(std::sync::Mutex::new(BatchProgress::default()));
        let options = RunOptions {
            stdin: (!stdin.is_empty()).then_some(stdin),
            on_output: Some(self.watch_markers(markers, progress.clone())),
            ..RunOptions::default()
        };
        let sent = self.shared.started.elapsed();
        let output = match host.transport.run_with(&script, options).await {
            Ok(output) => output,
            Err(e) => {
                // The connection died (or timed out) mid-batch. What the host got
                // through is what its journal says: read again when the connection
                // still answers (a timeout), else what its output said before the
                // end (the applies that succeeded and whose entry was written). The
                // first apply not recorded is the task in flight, which failed.
                let progress = progress.lock().map(|p| p.clone()).unwrap_or_default();
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
                // Every apply recorded: it was lost in the re-probe after them,
                // which judges the next step.
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
                    message: engine.redactor.redact(&transport_message(&e)),
                };
                return Ok(BatchRun {
                    from,
                    judged: Judged::new(),
                    durations: BTreeMap::new(),
                    starts: BTreeMap::new(),
                    failed: Some(Stop::from(&id, error)),
                });
            }
        };
        let stderr_tail = engine.redactor.redact(&tail(&output.stderr_text()));
        let sections = framing.parse(&output.stdout_text()).map_err(|message| {
            stop(TaskError::ProbeOutput {
                host: host.name.clone(),
                task: first.id.clone(),
                message: format!("{message}; {}: {stderr_tail}", output.status_text()),
            })
        })?;
        let section = |name: &str| sections.iter().find(|s| s.name == name);
        let mut ran = BatchRun {
            from: end,
            judged: Judged::new(),
            durations: BTreeMap::new(),
            starts: BTreeMap::new(),
            failed: None,
        };
        // The host's clock, anchored at the controller's time the batch was sent.
        let mut first_start: Option<u64> = None;
        for item in batch {
            let Item::Apply {
                step: i, change, ..
            } = item
            else {
                continue;
            };
            let task = steps[*i].task;
            let apply = section(&format!("a{i}"));
            if apply.is_none() && section("from").is_some() {
                // A guard stopped the batch before this apply.
                continue;
            }
            let state = section(&format!("s{i}"));
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
                    .unwrap_or_else(|| output.status_text());
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
                return Ok(ran);
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
        let from = section("from")
            .and_then(|s| s.fields().get("from").and_then(|v| v.parse::<usize>().ok()))
            .ok_or_else(|| {
                stop(TaskError::ProbeOutput {
                    host: host.name.clone(),
                    task: first.id.clone(),
                    message: format!(
                        "the output stopped before the re-probe ({}): {stderr_tail}",
                        output.status_text()
                    ),
                })
            })?;
        let reprobed: Vec<usize> = reprobed.into_iter().filter(|i| *i >= from).collect();
        ran.judged = judge_sections(host, steps, &reprobed, &sections).map_err(stop)?;
        ran.from = from;
        Ok(ran)
    }

    /// An output sink that reports a task as started when its apply section begins.
    /// It also keeps in `progress` which applies succeeded and were recorded.
    fn watch_markers(
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

    fn stop_at(&mut self, task: &str, error: TaskError) -> Stop {
        self.failed_task = Some(task.to_string());
        Stop::from(task, error)
    }

    fn fail(&mut self, step: &Step<'_>, started: Instant, error: TaskError) -> Stop {
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

/// The host must be exactly as it was when the plan was made.
fn check_plan(
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
