//! `k8sup plan` and `k8sup apply`: prepare every host (connect, facts, the
//! checks that must pass before anything changes), then hand them to the engine
//! with the playbook and its templates, and render what comes back.

use std::io::IsTerminal;
use std::path::PathBuf;

use k8sup_engine::input::{read_capped, read_text_capped, MAX_PLAN_BYTES, MAX_PLAYBOOK_BYTES};
use k8sup_engine::{
    Engine, EngineOptions, HostOutcome, Plan, Playbook, RunReport, TaskStatus, TemplateSet,
};
use k8sup_facts::Finding;
use k8sup_inventory::{Inventory, MAX_INVENTORY_BYTES};
use k8sup_ops::connect::ConnectOptions;
use k8sup_ops::converge::{prepare_with, Prepared, Unreachable};
use k8sup_ops::lock::{lock_cluster, ClusterLock, RunInfo};
use k8sup_ssh::{EventSink, Secrets};

use crate::args::{ApplyArgs, ConvergeArgs, OutputArgs, PlanArgs};
use crate::confirm::{confirm, Question, Unattended};
use crate::progress::Progress;
use crate::{exit, hosts, table};

/// What plan and apply have once the inventory, the playbook and the templates
/// are read and valid, before connecting.
pub(crate) struct Loaded {
    pub(crate) inventory: Inventory,
    /// sha256 of the inventory file, recorded in saved plans.
    inventory_sha256: String,
    engine: Engine,
    /// The playbook's templates, which the upgrade playbook shares.
    pub(crate) templates: TemplateSet,
    /// The hosts this run connects to, in inventory order: all of them, or those
    /// `--limit` names plus the first master.
    selected: Vec<String>,
    /// Hosts only read in this run (`--limit` left them out).
    pub(crate) read_only: std::collections::BTreeSet<String>,
    /// This run, as the hosts' locks record it.
    run: RunInfo,
    /// Held until the command ends: one run at a time per cluster.
    _lock: ClusterLock,
}

impl Loaded {
    /// A line per read-only host, saying what happens to it.
    fn read_only_note(&self) -> String {
        self.read_only
            .iter()
            .map(|h| format!("{h}: only read (--limit): nothing on it changes; values joins need are fetched from it\n"))
            .collect()
    }

    /// The hosts this run may change, in inventory order (those being removed
    /// are not converged).
    fn changing(&self) -> impl Iterator<Item = &String> {
        self.selected.iter().filter(|h| {
            !self.read_only.contains(*h) && self.inventory.host(h).is_some_and(|h| !h.remove)
        })
    }
}

/// What plan and apply need before the engine runs.
pub(crate) struct Setup {
    pub(crate) loaded: Loaded,
    pub(crate) prepared: Prepared,
}

pub fn plan(args: &PlanArgs, output: &OutputArgs) -> u8 {
    // One runtime for the whole command: the connections live on it.
    hosts::block_on(plan_async(args, output))
}

async fn plan_async(args: &PlanArgs, output: &OutputArgs) -> u8 {
    let Some(loaded) = load(&args.common) else {
        return exit::ERROR;
    };
    let setup = match connect(loaded, &args.common, true).await {
        Ok(setup) => setup,
        Err((_, blocking)) => {
            print_blocking(&blocking);
            return exit::ERROR;
        }
    };
    // Hosts that leave: skipped, stray nodes, removal steps (a refusal ends here).
    let inventory = &setup.loaded.inventory;
    let removals = match crate::remove::survey(inventory, &setup.prepared).await {
        Ok(removals) => removals,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::ERROR;
        }
    };
    let removing = removals.as_ref().is_some_and(|r| r.plan.has_steps());
    let blocked = crate::remove::blocking_apply(
        &setup.prepared.skipped,
        inventory,
        args.common.skip_unreachable,
    );
    if !output.json {
        print!(
            "{}",
            crate::remove::render(&setup.prepared.skipped, removals.as_ref(), inventory)
        );
    }
    let upgrade =
        match crate::upgrade::pending(&setup, output, args.common.parallel, removing).await {
            Ok(upgrade) => upgrade,
            Err(e) => {
                eprintln!("error: {e}");
                return exit::ERROR;
            }
        };
    if let Some((up, steps)) = &upgrade {
        let text = crate::upgrade::render(up, steps, args.common.verbose, color(output));
        if output.json {
            eprint!("{text}");
        } else {
            print!("{text}");
        }
    }
    let engine = &setup.loaded.engine;
    let mut plan = match engine.plan(&setup.prepared.hosts).await {
        Ok(plan) => plan,
        Err(e) => {
            eprintln!("error: {}", engine.redactor().redact(&e.to_string()));
            return exit::ERROR;
        }
    };
    plan.inventory_sha256 = Some(setup.loaded.inventory_sha256.clone());
    if let Some(path) = &args.out {
        if let Err(e) = std::fs::write(path, plan.to_json()) {
            eprintln!("error: cannot write the plan to {}: {e}", path.display());
            return exit::ERROR;
        }
    }
    if output.json {
        print!("{}", plan.to_json());
    } else {
        print!("{}", setup.loaded.read_only_note());
        print!("{}", render_plan(&plan, args.common.verbose, color(output)));
        if let Some(path) = &args.out {
            println!(
                "plan saved to {}; apply it with: k8sup apply -i {} --plan {}",
                path.display(),
                args.common.inventory.inventory.display(),
                path.display()
            );
        }
    }
    if !blocked.is_empty() {
        eprintln!(
            "error: unreachable: {}; apply stops until they answer, are removed (remove = true) or left out (--limit; --skip-unreachable for workers)",
            blocked.join(", ")
        );
    }
    if plan.has_errors() || !blocked.is_empty() {
        exit::ERROR
    } else if args.detailed_exitcode && (plan.has_changes() || upgrade.is_some() || removing) {
        exit::CHANGES
    } else {
        exit::OK
    }
}

pub fn apply(args: &ApplyArgs, output: &OutputArgs) -> u8 {
    if args.dry_run {
        let plan_args = PlanArgs {
            common: ConvergeArgs {
                inventory: crate::args::InventoryArg {
                    inventory: args.common.inventory.inventory.clone(),
                },
                limit: args.common.limit.clone(),
                playbook: args.common.playbook.clone(),
                templates: args.common.templates.clone(),
                parallel: args.common.parallel,
                verbose: args.common.verbose,
                skip_unreachable: args.common.skip_unreachable,
            },
            out: None,
            detailed_exitcode: args.detailed_exitcode,
        };
        return plan(&plan_args, output);
    }
    hosts::block_on(apply_async(args, output))
}

/// The `--report` file, opened before connecting so that a path that cannot be
/// written is refused before anything is done; written when the run ends,
/// however it ends.
struct ReportFile {
    path: PathBuf,
    file: std::fs::File,
}

impl ReportFile {
    fn open(path: &std::path::Path) -> std::io::Result<ReportFile> {
        // Not truncated yet: a refused run leaves an earlier report whole.
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        if !file.metadata()?.is_file() {
            return Err(std::io::Error::other("not a regular file"));
        }
        Ok(ReportFile {
            path: path.to_path_buf(),
            file,
        })
    }

    fn write(&mut self, report: &RunReport) -> std::io::Result<()> {
        use std::io::{Seek, Write};
        self.file.set_len(0)?;
        self.file.rewind()?;
        self.file.write_all(report.to_json().as_bytes())?;
        self.file.sync_all()
    }
}

/// Where an apply's outcome goes, however it ends: the `--report` file and the
/// cluster's history.
struct Outcome {
    report_file: Option<ReportFile>,
    history: PathBuf,
    started_at: String,
    playbook: String,
    hosts: Vec<String>,
}

impl Outcome {
    /// Records a run that stopped before the engine ran: each host skipped with
    /// `why`, but those in `failed` (host, message), and exits 1.
    fn refused(mut self, why: &str, failed: &[(String, String)], history: bool) -> u8 {
        let hosts = self.hosts.iter().map(|host| {
            let messages: Vec<&str> = failed
                .iter()
                .filter(|(h, _)| h == host)
                .map(|(_, m)| m.as_str())
                .collect();
            if messages.is_empty() {
                (host.clone(), HostOutcome::Skipped, why.to_string())
            } else {
                (host.clone(), HostOutcome::Failed, messages.join("; "))
            }
        });
        let report = RunReport::without_tasks(self.started_at.clone(), &self.playbook, hosts);
        if history {
            if let Err(e) = report.save_history(&self.history) {
                eprintln!("error: {e}");
            }
        }
        self.write(&report);
        exit::ERROR
    }

    /// Writes the report file; false when it could not be.
    fn write(&mut self, report: &RunReport) -> bool {
        let Some(file) = &mut self.report_file else {
            return true;
        };
        match file.write(report) {
            Ok(()) => true,
            Err(e) => {
                eprintln!(
                    "error: cannot write the report to {}: {e}",
                    file.path.display()
                );
                false
            }
        }
    }
}

async fn apply_async(args: &ApplyArgs, output: &OutputArgs) -> u8 {
    let started_at = humantime_now();
    let Some(loaded) = load(&args.common) else {
        return exit::ERROR;
    };
    let report_file = match &args.report {
        None => None,
        Some(path) => match ReportFile::open(path) {
            Ok(file) => Some(file),
            Err(e) => {
                eprintln!(
                    "error: cannot write the report to {}: {e}; nothing was done",
                    path.display()
                );
                return exit::ERROR;
            }
        },
    };
    // From here on, every way out writes the report.
    let mut outcome = Outcome {
        report_file,
        history: history_dir(&loaded.inventory.cluster.name),
        started_at,
        playbook: loaded.engine.playbook().source_name.clone(),
        hosts: loaded.changing().cloned().collect(),
    };
    let mut saved = None;
    if let Some(path) = &args.plan {
        match read_saved_plan(path).and_then(|plan| check_saved_plan(plan, &loaded)) {
            Ok(plan) => saved = Some(plan),
            Err(e) => {
                eprintln!("error: {e}; nothing was changed on any host");
                return outcome.refused(&format!("not applied: {e}"), &[], true);
            }
        }
    }
    let setup = match connect(loaded, &args.common, false).await {
        Ok(setup) => setup,
        Err((_, blocking)) => {
            print_blocking(&blocking);
            let failed: Vec<(String, String)> = blocking
                .iter()
                .map(|f| {
                    (
                        f.host.clone(),
                        format!("{}: {}", f.check.as_str(), f.message),
                    )
                })
                .collect();
            return outcome.refused(
                "not applied: other hosts cannot be worked on; nothing was changed on any host",
                &failed,
                true,
            );
        }
    };
    // Hosts that leave go first: removed (asked on a terminal, --yes without one),
    // so that the others' balancers and certificates follow the masters that stay.
    let inventory = &setup.loaded.inventory;
    let removals = match crate::remove::survey(inventory, &setup.prepared).await {
        Ok(removals) => removals,
        Err(e) => {
            eprintln!("error: {e}");
            return outcome.refused(&format!("not applied: {e}"), &[], true);
        }
    };
    let removing = removals.as_ref().is_some_and(|r| r.plan.has_steps());
    let upgrade =
        match crate::upgrade::pending(&setup, output, args.common.parallel, removing).await {
            Ok(upgrade) => upgrade,
            Err(e) => {
                eprintln!("error: {e}");
                return outcome.refused(&format!("not applied: {e}"), &[], true);
            }
        };
    if !output.json {
        print!(
            "{}",
            crate::remove::render(&setup.prepared.skipped, removals.as_ref(), inventory)
        );
    }
    if let Some(removals) = &removals {
        if saved.is_some() && removals.plan.has_steps() {
            let why = "a saved plan does not cover removals: apply without --plan";
            eprintln!("error: {why}; nothing was changed");
            return outcome.refused(&format!("not applied: {why}"), &[], true);
        }
        if let Err(e) = crate::remove::run(removals, &setup.prepared, inventory, args.yes).await {
            eprintln!("error: {e}");
            return outcome.refused(&format!("not applied: {e}"), &[], true);
        }
    }
    let mut asked = false;
    if let Some((up, steps)) = &upgrade {
        if saved.is_some() {
            let why = "a saved plan cannot carry a Kubernetes upgrade: run apply without --plan (or plan again after the upgrade)";
            eprintln!("error: {why}; nothing was changed on any host");
            return outcome.refused(&format!("not applied: {why}"), &[], true);
        }
        if !args.yes && std::io::stdin().is_terminal() {
            print!(
                "{}",
                crate::upgrade::render(up, steps, args.common.verbose, color(output))
            );
            if let Err(why) = crate::upgrade::confirm(up) {
                eprintln!("error: {why}");
                return outcome.refused(&format!("not applied: {why}"), &[], false);
            }
            asked = true;
        }
        if let Err((host, e)) =
            crate::upgrade::apply(&setup, up, output, args.common.parallel).await
        {
            eprintln!("error: {e}");
            let failed: Vec<(String, String)> = host.into_iter().map(|h| (h, e.clone())).collect();
            return outcome.refused(&format!("the upgrade stopped: {e}"), &failed, true);
        }
    }
    let engine = &setup.loaded.engine;
    if saved.is_none() && !asked && !args.yes && std::io::stdin().is_terminal() {
        // On a terminal, apply shows what it would do and asks first; what is
        // applied then is exactly that plan.
        match confirm_plan(&setup, output, args.common.verbose).await {
            Ok(plan) => saved = plan,
            Err(why) => {
                eprintln!("error: {why}");
                return outcome.refused(&format!("not applied: {why}"), &[], false);
            }
        }
    }
    if !output.json {
        print!("{}", setup.loaded.read_only_note());
    }
    let names: Vec<&str> = setup
        .prepared
        .hosts
        .iter()
        .filter(|h| !setup.loaded.read_only.contains(&h.name))
        .map(|h| h.name.as_str())
        .collect();
    let progress = Progress::new(output, &names, args.common.verbose);
    let result = engine
        .apply(&setup.prepared.hosts, saved.as_ref(), progress.sink())
        .await;
    progress.finish();
    let report = match result {
        Ok(report) => report,
        Err(e) => {
            let message = engine.redactor().redact(&e.to_string());
            eprintln!("error: {message}");
            let all: Vec<(String, String)> = outcome
                .hosts
                .iter()
                .map(|h| (h.clone(), message.clone()))
                .collect();
            return outcome.refused(&message, &all, false);
        }
    };
    let mut written = outcome.write(&report);
    if let Some(path) = &args.report_html {
        // The history holds this run too: the trends are of the runs before it.
        let runs = crate::history::load_runs(&outcome.history).unwrap_or_default();
        let earlier = crate::report::earlier_runs(runs, &report, crate::report::TREND_RUNS);
        if let Err(e) = crate::report::write(path, &report, &earlier) {
            eprintln!("error: {e}");
            written = false;
        }
    }
    if !output.json {
        let mut rows = vec![["HOST", "OK", "CHANGED", "FAILED", "SKIPPED", "TIME"]
            .map(String::from)
            .to_vec()];
        for h in &report.hosts {
            rows.push(vec![
                h.host.clone(),
                h.ok.to_string(),
                h.changed.to_string(),
                h.failed.to_string(),
                h.skipped.to_string(),
                format!("{:.1}s", h.duration_ms as f64 / 1000.0),
            ]);
        }
        println!();
        print!("{}", table::render(&rows));
        let changed = report.changed();
        if report.success() && changed == 0 {
            println!("nothing to change: every task on every host is ok");
        } else if report.success() {
            println!(
                "{changed} task(s) changed on {} host(s) in {:.1}s",
                report.hosts.iter().filter(|h| h.changed > 0).count(),
                report.duration_ms as f64 / 1000.0
            );
        } else {
            let failed: Vec<&str> = report
                .hosts
                .iter()
                .filter(|h| h.outcome != HostOutcome::Ok)
                .map(|h| h.host.as_str())
                .collect();
            println!("FAILED on {}: see the errors above", failed.join(", "));
        }
        if written {
            for path in args.report.iter().chain(&args.report_html) {
                println!("report: {}", path.display());
            }
        }
    }
    if report.success() && written {
        // `[certificates] renew_before`: a converged cluster also renews what is due.
        crate::certs::renew_when_due(&args.common.inventory.inventory, output).await
    } else {
        exit::ERROR
    }
}

/// Plans, shows the plan and asks. `Ok(None)`: nothing to change, nothing asked;
/// `Ok(Some(plan))`: confirmed.
async fn confirm_plan(
    setup: &Setup,
    output: &OutputArgs,
    verbose: bool,
) -> Result<Option<Plan>, String> {
    let engine = &setup.loaded.engine;
    let mut plan = engine
        .plan(&setup.prepared.hosts)
        .await
        .map_err(|e| engine.redactor().redact(&e.to_string()))?;
    plan.inventory_sha256 = Some(setup.loaded.inventory_sha256.clone());
    if output.json {
        print!("{}", plan.to_json());
    } else {
        print!("{}", render_plan(&plan, verbose, color(output)));
    }
    if plan.has_errors() {
        return Err("some hosts cannot be planned (above); nothing was changed".into());
    }
    if !plan.has_changes() {
        return Ok(None);
    }
    let changing = plan.hosts.iter().filter(|h| h.pending() > 0).count();
    let prompt = format!("Apply these changes to {changing} hosts? Only 'yes' will be accepted: ");
    let question = Question {
        what: "",
        prompt: &prompt,
        expected: "yes",
        unattended: Unattended::Proceed,
    };
    confirm(&question, false).map_err(|e| e.to_string())?;
    Ok(Some(plan))
}

/// Reads a plan saved by `plan -o`, with a cap.
fn read_saved_plan(path: &std::path::Path) -> Result<Plan, String> {
    let text = read_text_capped(path, MAX_PLAN_BYTES, "the plan").map_err(|e| e.to_string())?;
    Plan::from_json(&text)
        .map_err(|e| format!("the plan {} is not a k8sup plan: {e}", path.display()))
}

/// What a saved plan must match before any host is contacted: its format, the
/// very inventory file it was made from, the playbook and the hosts.
fn check_saved_plan(plan: Plan, loaded: &Loaded) -> Result<Plan, String> {
    if plan.format != Plan::FORMAT {
        return Err(format!(
            "the plan is of format {}; this k8sup applies plans of format {}: make a new plan",
            plan.format,
            Plan::FORMAT
        ));
    }
    if plan.inventory_sha256.as_deref() != Some(loaded.inventory_sha256.as_str()) {
        return Err(
            "the inventory changed since the plan was made (its sha256 differs): make a new plan"
                .into(),
        );
    }
    let playbook = &loaded.engine.playbook().source_name;
    if &plan.playbook != playbook {
        return Err(format!(
            "the plan was made with the playbook {:?}, but this run has {playbook:?}: make a new plan",
            plan.playbook
        ));
    }
    let planned: Vec<&str> = plan.hosts.iter().map(|h| h.host.as_str()).collect();
    let now: Vec<&str> = loaded.changing().map(String::as_str).collect();
    if planned != now {
        return Err(format!(
            "the plan was made for hosts {planned:?}, but the inventory has {now:?}: make a new plan"
        ));
    }
    Ok(plan)
}

/// Now, as RFC 3339 (UTC), as run records name their start.
fn humantime_now() -> String {
    humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string()
}

/// Reads the inventory, the playbook and the templates; prints why and returns
/// `None` when one is not valid.
fn load(args: &ConvergeArgs) -> Option<Loaded> {
    let path = &args.inventory.inventory;
    let inventory = match Inventory::load(path) {
        Ok(inv) => inv,
        Err(e) => {
            eprintln!("{e}");
            return None;
        }
    };
    let inventory_sha256 = match read_capped(path, MAX_INVENTORY_BYTES as u64, "the inventory") {
        Ok(bytes) => Plan::input_digest(&bytes),
        Err(e) => {
            eprintln!("error: {e}");
            return None;
        }
    };
    let mut selected = match hosts::limited(&inventory, &args.limit) {
        Ok(hosts) => hosts,
        Err(e) => {
            eprintln!("error: {e}");
            return None;
        }
    };
    // The hosts left out are not touched; the first master, which provides what
    // joins need (join credentials, the certificate key), is read.
    let mut read_only = std::collections::BTreeSet::new();
    let first_master = inventory.first_master();
    if !selected.iter().any(|h| h.name == first_master.name) {
        read_only.insert(first_master.name.clone());
        selected.push(first_master);
    }
    let selected: Vec<String> = selected.iter().map(|h| h.name.clone()).collect();
    let playbook = load_playbook(args)?;
    let (lock, run) = lock_run(&inventory)?;
    let mut templates = TemplateSet::new();
    for (name, text) in k8sup_kube::playbook::TEMPLATES {
        templates.insert(*name, *text);
    }
    if let Some(dir) = &args.templates {
        if let Err(e) = templates.overlay_dir(dir) {
            eprintln!("error: --templates {}: {e}", dir.display());
            return None;
        }
    }
    let options = EngineOptions {
        parallelism: args
            .parallel
            .map(|n| n as usize)
            .unwrap_or(inventory.parallelism),
        history_dir: Some(history_dir(&inventory.cluster.name)),
        read_only: read_only.clone(),
        ..EngineOptions::default()
    };
    let engine = Engine::new(playbook, &templates, options);
    Some(Loaded {
        inventory,
        inventory_sha256,
        engine,
        templates,
        selected,
        read_only,
        run,
        _lock: lock,
    })
}

/// Connects and gathers facts. Nothing has been changed on any host when it
/// returns the problems that forbid going on.
async fn connect(
    loaded: Loaded,
    args: &ConvergeArgs,
    planning: bool,
) -> Result<Setup, (Loaded, Vec<Finding>)> {
    let secrets = Secrets::from_env();
    for secret in [&secrets.become_password, &secrets.key_passphrase]
        .into_iter()
        .flatten()
    {
        loaded.engine.redactor().add(secret.expose());
    }
    let connect = ConnectOptions {
        secrets,
        events: EventSink::new(hosts::print_event),
        parallel: args.parallel.map(|n| n as usize),
        run: Some(loaded.run.clone()),
        // What `survey` reads of the cluster, read with the first master's facts.
        first_master_read: k8sup_ops::remove::cluster_read(
            loaded.inventory.removed().any(|h| h.roles.master),
        )
        .ok(),
    };
    let selected: Vec<_> = loaded
        .selected
        .iter()
        .filter_map(|name| loaded.inventory.host(name))
        .collect();
    let unreachable = Unreachable {
        skip_workers: args.skip_unreachable,
        skip_any: planning,
    };
    let prepared = prepare_with(&loaded.inventory, &selected, &connect, unreachable).await;
    if !prepared.blocking.is_empty() {
        let blocking = prepared.blocking;
        return Err((loaded, blocking));
    }
    Ok(Setup { loaded, prepared })
}

/// The problems that stop a run before it starts, one line each.
fn print_blocking(blocking: &[Finding]) {
    let width = blocking.iter().map(|f| f.host.len()).max().unwrap_or(0);
    for f in blocking {
        eprintln!(
            "{:width$}  FAIL  {}: {}",
            f.host,
            f.check.as_str(),
            f.message
        );
    }
    eprintln!("error: nothing was changed on any host: fix the problems above first");
}

fn load_playbook(args: &ConvergeArgs) -> Option<Playbook> {
    let (name, text) = match &args.playbook {
        Some(path) => match read_text_capped(path, MAX_PLAYBOOK_BYTES, "the playbook") {
            Ok(text) => (path.display().to_string(), text),
            Err(e) => {
                eprintln!("error: {e}");
                return None;
            }
        },
        None => (
            k8sup_kube::playbook::PLAYBOOK_NAME.to_string(),
            k8sup_kube::playbook::PLAYBOOK.to_string(),
        ),
    };
    match Playbook::parse(&name, &text) {
        Ok(p) => Some(p),
        Err(e) => {
            eprintln!("{e}");
            None
        }
    }
}

/// Takes the cluster's lock on this controller for this run (the hosts' are taken
/// once connected); prints who holds it and returns `None` when another run does.
pub fn lock_run(inventory: &Inventory) -> Option<(ClusterLock, RunInfo)> {
    let run = RunInfo::current();
    let history = history_dir(&inventory.cluster.name);
    let dir = history.parent().unwrap_or(&history);
    match lock_cluster(dir, &inventory.cluster.name, &run) {
        Ok(lock) => Some((lock, run)),
        Err(e) => {
            eprintln!("error: {e}");
            None
        }
    }
}

/// Where the run history of a cluster is kept on this machine.
pub fn history_dir(cluster: &str) -> PathBuf {
    let base = std::env::var_os("K8SUP_STATE_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("XDG_STATE_HOME").map(|d| PathBuf::from(d).join("k8sup")))
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("/root"));
            home.join(".local/state/k8sup")
        });
    base.join(cluster).join("history")
}

pub(crate) fn color(output: &OutputArgs) -> bool {
    !output.no_color && std::env::var_os("NO_COLOR").is_none() && std::io::stdout().is_terminal()
}

/// The plan as a person reads it: per host, what changes and why.
pub(crate) fn render_plan(plan: &Plan, verbose: bool, color: bool) -> String {
    let mut out = String::new();
    let mut total = 0;
    let mut changing_hosts = 0;
    for host in &plan.hosts {
        let pending = render_host_plan(&mut out, &host.host, host, verbose, color);
        total += pending;
        if pending > 0 {
            changing_hosts += 1;
        }
    }
    if total == 0 {
        out.push_str("No changes: every host is as the inventory says.\n");
    } else {
        out.push_str(&format!(
            "Plan: {total} change(s) on {changing_hosts} of {} host(s).\n",
            plan.hosts.len()
        ));
    }
    out
}

/// One host's part of a plan, under the heading `title`; returns how many of its
/// tasks are pending.
pub(crate) fn render_host_plan(
    out: &mut String,
    title: &str,
    host: &k8sup_engine::HostPlan,
    verbose: bool,
    color: bool,
) -> usize {
    if let Some(error) = &host.error {
        out.push_str(&format!("{title}: cannot be planned: {error}\n"));
        return 0;
    }
    let pending = host.pending();
    let ok = host
        .tasks
        .iter()
        .filter(|t| t.status == TaskStatus::Ok)
        .count();
    if pending == 0 {
        out.push_str(&format!("{title}: up to date ({ok} ok)\n"));
    } else {
        out.push_str(&format!("{title}: {pending} to change, {ok} ok\n"));
    }
    for task in &host.tasks {
        let mark = match task.status {
            TaskStatus::Change => "~",
            TaskStatus::Drift => "!",
            TaskStatus::Ok | TaskStatus::Skip if !verbose => continue,
            TaskStatus::Ok => "=",
            TaskStatus::Skip => "-",
        };
        let what = match task.status {
            TaskStatus::Drift => " (drift: changed on the host since k8sup applied it)",
            _ => "",
        };
        out.push_str(&format!(
            "  {mark} {} [{}]{what}: {}\n",
            task.name, task.kind, task.reason
        ));
        if let Some(command) = &task.command {
            out.push_str(&format!("      $ {command}\n"));
        }
        if let Some(diff) = &task.diff {
            let diff = if color {
                k8sup_engine::diff::colorize(diff)
            } else {
                diff.clone()
            };
            for line in diff.lines() {
                out.push_str(&format!("      {line}\n"));
            }
        }
    }
    pending
}
