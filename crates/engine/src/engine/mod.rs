//! The engine: plan (probes only) and apply (per-host runners in parallel).
//!
//! Following one host through [`Engine::apply`]:
//! 1. its program is built ([`crate::program`]): tasks selected, rendered, fingerprinted;
//! 2. ONE channel runs every probe plus the ledger read ([`probe::probe_all`]);
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
//!
//! Submodules: [`probe`] (probe, judge, plan), [`board`] (values between hosts),
//! [`apply`] (what one apply's hosts share, and a host's report), [`runner`] (one
//! host's walk, step by step) and [`batch`] (one batch on the host).

mod apply;
mod batch;
mod board;
mod probe;
mod runner;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use minijinja::Environment;
use tokio::sync::Semaphore;

use self::apply::Shared;
use self::board::Board;
use self::probe::{plan_steps, probe_all, HostStart};
use crate::error::{EngineError, TaskError};
use crate::event::EventSink;
use crate::host::HostSpec;
use crate::plan::{HostPlan, Plan};
use crate::playbook::{Action, HostSelector, Playbook};
use crate::program;
use crate::redact::Redactor;
use crate::report::{read_history, HostOutcome, HostReport, RunReport, RunStatus};
use crate::state::{StateLedger, DEFAULT_STATE_PATH};
use crate::template::{self, TemplateSet};

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
        let mut board = Board::new(&producers);
        for (play, task) in self.playbook.all_tasks() {
            for signal in &task.signals {
                let givers = self.changing(hosts).filter(|h| play.hosts.selects(h));
                board.expect_signal(signal, givers.map(|h| h.name.clone()));
            }
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
        // The hosts themselves, not copies: a host's spec holds its whole template
        // context (~15 KB), and every host of a run is held until the run ends.
        let changing: Vec<&HostSpec> = self.changing(hosts).collect();
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

fn millis(d: Duration) -> u64 {
    d.as_millis().try_into().unwrap_or(u64::MAX)
}

/// The controller's clock in ms since the epoch (0 before it).
pub(crate) fn epoch_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, millis)
}
