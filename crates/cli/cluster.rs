//! `k8sup kubeconfig` and `k8sup reset`.

use std::io::Write;

use std::sync::Arc;

use k8sup_engine::EventSink as EngineEvents;
use k8sup_inventory::Inventory;
use k8sup_ops::connect::ConnectOptions;
use k8sup_ops::{cluster, reset};
use k8sup_ssh::{EventSink, Secrets};

use crate::args::{KubeconfigArgs, OutputArgs, ResetArgs};
use crate::confirm::confirm_destructive;
use crate::converge::{color, render_host_plan};
use crate::progress::Progress;
use crate::{exit, hosts};

pub fn kubeconfig(args: &KubeconfigArgs, output: &OutputArgs) -> u8 {
    let inventory = match Inventory::load(&args.inventory.inventory) {
        Ok(inv) => inv,
        Err(e) => {
            eprintln!("{e}");
            return exit::ERROR;
        }
    };
    let options = ConnectOptions {
        secrets: Secrets::from_env(),
        events: EventSink::new(hosts::print_event),
        parallel: None,
        run: None,
        first_master_read: None,
    };
    let text = match hosts::block_on(cluster::kubeconfig(&inventory, &options)) {
        Ok(text) => text,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::ERROR;
        }
    };
    match &args.out {
        None => print!("{text}"),
        Some(path) => {
            if let Err(e) = write_private(path, &text) {
                eprintln!("error: cannot write {}: {e}", path.display());
                return exit::ERROR;
            }
            if !output.quiet {
                println!(
                    "kubeconfig for cluster {} written to {} (server https://{})",
                    inventory.cluster.name,
                    path.display(),
                    inventory.cluster.control_plane_endpoint
                );
            }
        }
    }
    exit::OK
}

/// Writes `text` to `path` with mode 0600 from the start: a kubeconfig holds
/// the cluster admin's key and must never be readable by others, not even briefly.
fn write_private(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    // An existing file keeps its mode on open: set it.
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}

pub fn reset(args: &ResetArgs, output: &OutputArgs) -> u8 {
    let Some(inventory) = hosts::load(&args.hosts) else {
        return exit::ERROR;
    };
    let selected = match hosts::selected(&inventory, &args.hosts) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::ERROR;
        }
    };
    let names: Vec<&str> = selected.iter().map(|h| h.name.as_str()).collect();
    if !args.dry_run {
        let what = format!(
            "This tears down Kubernetes on {} host(s) of cluster {}: {}.",
            names.len(),
            inventory.cluster.name,
            names.join(", ")
        );
        if let Err(refusal) = confirm_destructive(&what, &inventory.cluster.name, args.yes) {
            eprintln!("error: {refusal}");
            return exit::ERROR;
        }
    }
    let mut options = hosts::connect_options(&args.hosts);
    let Some((_lock, run)) = crate::converge::lock_run(&inventory) else {
        return exit::ERROR;
    };
    options.run = Some(run);
    if args.dry_run {
        let plans = hosts::block_on(reset::plan(&inventory, &selected, &options));
        return print_reset_plan(&plans, output);
    }
    // Reset prints text, whatever --json says (docs/cli.md): the engine's events as
    // apply shows them on a terminal or as plain lines, then one line per host. With
    // --quiet, only the errors (each names the failed step) and the result.
    let text_output = OutputArgs {
        json: false,
        no_color: output.no_color,
        quiet: output.quiet,
    };
    let progress = (!output.quiet).then(|| Progress::new(&text_output, &names, false));
    let events: EngineEvents = match &progress {
        Some(progress) => progress.sink(),
        None => Arc::new(|_| {}),
    };
    let reports = hosts::block_on(reset::reset(&inventory, &selected, &options, events));
    if let Some(progress) = progress {
        progress.finish();
    }
    let mut failed = 0;
    for r in &reports {
        match &r.result {
            Ok(()) => {
                if !output.quiet {
                    println!("{}: reset", r.host)
                }
            }
            Err(e) => {
                failed += 1;
                eprintln!("error: {e}");
            }
        }
    }
    if failed > 0 {
        eprintln!("{failed} of {} hosts were not reset", reports.len());
        exit::ERROR
    } else {
        if !output.quiet {
            println!(
                "{} hosts reset: `k8sup apply` installs the cluster afresh",
                reports.len()
            );
        }
        exit::OK
    }
}

/// `reset --dry-run`: every step of the reset playbook on every host, with why it
/// would run or not. Exit 1 when a host cannot be planned.
fn print_reset_plan(plans: &[reset::ResetPlan], output: &OutputArgs) -> u8 {
    let mut out = String::new();
    let mut total = 0;
    let mut changing = 0;
    let mut failed = 0;
    for plan in plans {
        match &plan.plan {
            Ok(host_plan) => {
                let pending =
                    render_host_plan(&mut out, &plan.host, host_plan, true, color(output));
                total += pending;
                if pending > 0 {
                    changing += 1;
                }
                if host_plan.error.is_some() {
                    failed += 1;
                }
            }
            Err(e) => {
                failed += 1;
                out.push_str(&format!("{}: cannot be planned: {e}\n", plan.host));
            }
        }
    }
    if total == 0 {
        out.push_str("Nothing to reset: no host holds anything a reset removes.\n");
    } else {
        out.push_str(&format!(
            "Reset would take {total} step(s) on {changing} of {} host(s); nothing was changed.\n",
            plans.len()
        ));
    }
    print!("{out}");
    if failed > 0 {
        exit::ERROR
    } else {
        exit::OK
    }
}
