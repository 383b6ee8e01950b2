//! `k8sup plan` and `k8sup apply`: prepare every host (connect, facts, the
//! checks that must pass before anything changes), then hand them to the engine
//! with the playbook and its templates, and render what comes back.

use std::io::IsTerminal;
use std::path::PathBuf;

use k8sup_engine::{Engine, EngineOptions, Plan, Playbook, TaskStatus, TemplateSet};
use k8sup_inventory::Inventory;
use k8sup_ops::connect::ConnectOptions;
use k8sup_ops::converge::{prepare, Prepared};
use k8sup_ops::lock::{lock_cluster, ClusterLock, RunInfo};
use k8sup_ssh::{EventSink, Secrets};

use crate::args::{ApplyArgs, ConvergeArgs, OutputArgs, PlanArgs};
use crate::progress::Progress;
use crate::{exit, hosts, table};

/// What plan and apply need before the engine runs.
struct Setup {
    engine: Engine,
    prepared: Prepared,
    /// Held until the command ends: one run at a time per cluster.
    _lock: ClusterLock,
}

pub fn plan(args: &PlanArgs, output: &OutputArgs) -> u8 {
    // One runtime for the whole command: the connections live on it.
    hosts::block_on(plan_async(args, output))
}

async fn plan_async(args: &PlanArgs, output: &OutputArgs) -> u8 {
    let Some(setup) = setup(&args.common).await else {
        return exit::ERROR;
    };
    let plan = match setup.engine.plan(&setup.prepared.hosts).await {
        Ok(plan) => plan,
        Err(e) => {
            eprintln!("error: {}", setup.engine.redactor().redact(&e.to_string()));
            return exit::ERROR;
        }
    };
    if let Some(path) = &args.out {
        if let Err(e) = std::fs::write(path, plan.to_json()) {
            eprintln!("error: cannot write the plan to {}: {e}", path.display());
            return exit::ERROR;
        }
    }
    if output.json {
        print!("{}", plan.to_json());
    } else {
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
    if plan.has_errors() {
        exit::ERROR
    } else if args.detailed_exitcode && plan.has_changes() {
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
                playbook: args.common.playbook.clone(),
                templates: args.common.templates.clone(),
                parallel: args.common.parallel,
                verbose: args.common.verbose,
            },
            out: None,
            detailed_exitcode: args.detailed_exitcode,
        };
        return plan(&plan_args, output);
    }
    let saved = match &args.plan {
        Some(path) => match std::fs::read_to_string(path)
            .map_err(|e| e.to_string())
            .and_then(|t| Plan::from_json(&t).map_err(|e| e.to_string()))
        {
            Ok(plan) => Some(plan),
            Err(e) => {
                eprintln!("error: cannot read the plan {}: {e}", path.display());
                return exit::ERROR;
            }
        },
        None => None,
    };
    hosts::block_on(apply_async(args, output, saved))
}

async fn apply_async(args: &ApplyArgs, output: &OutputArgs, saved: Option<Plan>) -> u8 {
    let Some(setup) = setup(&args.common).await else {
        return exit::ERROR;
    };
    let progress = Progress::new(output, &setup.prepared.hosts, args.common.verbose);
    let result = setup
        .engine
        .apply(&setup.prepared.hosts, saved.as_ref(), progress.sink())
        .await;
    progress.finish();
    let report = match result {
        Ok(report) => report,
        Err(e) => {
            eprintln!("error: {}", setup.engine.redactor().redact(&e.to_string()));
            return exit::ERROR;
        }
    };
    if let Some(path) = &args.report {
        if let Err(e) = std::fs::write(path, report.to_json()) {
            eprintln!("error: cannot write the report to {}: {e}", path.display());
            return exit::ERROR;
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
                .filter(|h| h.outcome != k8sup_engine::HostOutcome::Ok)
                .map(|h| h.host.as_str())
                .collect();
            println!("FAILED on {}: see the errors above", failed.join(", "));
        }
        if let Some(path) = &args.report {
            println!("report: {}", path.display());
        }
    }
    if report.success() {
        exit::OK
    } else {
        exit::ERROR
    }
}

/// Loads everything, connects and gathers facts; prints why and returns `None`
/// when the run must not start. Nothing has been changed on any host then.
async fn setup(args: &ConvergeArgs) -> Option<Setup> {
    let inventory = match Inventory::load(&args.inventory.inventory) {
        Ok(inv) => inv,
        Err(e) => {
            eprintln!("{e}");
            return None;
        }
    };
    let playbook = load_playbook(args)?;
    let (lock, run) = lock_run(&inventory)?;
    let mut templates = TemplateSet::new();
    for (name, text) in k8sup_kube::playbook::TEMPLATES {
        templates.insert(*name, *text);
    }
    if let Some(dir) = &args.templates {
        if let Err(e) = templates.overlay_dir(dir) {
            eprintln!("error: cannot read templates from {}: {e}", dir.display());
            return None;
        }
    }
    let options = EngineOptions {
        parallelism: args
            .parallel
            .map(|n| n as usize)
            .unwrap_or(inventory.parallelism),
        history_dir: Some(history_dir(&inventory.cluster.name)),
        ..EngineOptions::default()
    };
    let engine = Engine::new(playbook, &templates, options);
    let secrets = Secrets::from_env();
    for secret in [&secrets.become_password, &secrets.key_passphrase]
        .into_iter()
        .flatten()
    {
        engine.redactor().add(secret.expose());
    }
    let connect = ConnectOptions {
        secrets,
        events: EventSink::new(hosts::print_event),
        parallel: args.parallel.map(|n| n as usize),
        run: Some(run),
    };
    let selected: Vec<_> = inventory.hosts.iter().collect();
    let prepared = prepare(&inventory, &selected, &connect).await;
    if !prepared.blocking.is_empty() {
        let width = prepared
            .blocking
            .iter()
            .map(|f| f.host.len())
            .max()
            .unwrap_or(0);
        for f in &prepared.blocking {
            eprintln!(
                "{:width$}  FAIL  {}: {}",
                f.host,
                f.check.as_str(),
                f.message
            );
        }
        eprintln!("error: nothing was changed on any host: fix the problems above first");
        return None;
    }
    Some(Setup {
        engine,
        prepared,
        _lock: lock,
    })
}

fn load_playbook(args: &ConvergeArgs) -> Option<Playbook> {
    let (name, text) = match &args.playbook {
        Some(path) => match std::fs::read_to_string(path) {
            Ok(text) => (path.display().to_string(), text),
            Err(e) => {
                eprintln!("error: cannot read the playbook {}: {e}", path.display());
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

fn color(output: &OutputArgs) -> bool {
    !output.no_color && std::env::var_os("NO_COLOR").is_none() && std::io::stdout().is_terminal()
}

/// The plan as a person reads it: per host, what changes and why.
fn render_plan(plan: &Plan, verbose: bool, color: bool) -> String {
    let mut out = String::new();
    let mut total = 0;
    let mut changing_hosts = 0;
    for host in &plan.hosts {
        if let Some(error) = &host.error {
            out.push_str(&format!("{}: cannot be planned: {error}\n", host.host));
            continue;
        }
        let pending = host.pending();
        let ok = host
            .tasks
            .iter()
            .filter(|t| t.status == TaskStatus::Ok)
            .count();
        total += pending;
        if pending == 0 {
            out.push_str(&format!("{}: up to date ({ok} ok)\n", host.host));
        } else {
            changing_hosts += 1;
            out.push_str(&format!("{}: {pending} to change, {ok} ok\n", host.host));
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
