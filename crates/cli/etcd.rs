//! `k8sup etcd backup` and `k8sup etcd restore`.

use k8sup_ops::connect::hold_hosts;
use k8sup_ops::etcd::{self, BackupOptions, RestoreStep};

use crate::args::{EtcdAction, EtcdArgs, EtcdBackupArgs, EtcdRestoreArgs, OutputArgs};
use crate::certs::{connect_options, load};
use crate::confirm::confirm_destructive;
use crate::{exit, hosts};

pub fn run(args: &EtcdArgs, output: &OutputArgs) -> u8 {
    match &args.action {
        EtcdAction::Backup(b) => backup(b, output),
        EtcdAction::Restore(r) => restore(r, output),
    }
}

fn backup(args: &EtcdBackupArgs, output: &OutputArgs) -> u8 {
    let Some(inventory) = load(&args.inventory.inventory) else {
        return exit::ERROR;
    };
    let options = BackupOptions {
        dir: args.out.clone(),
        keep: args.keep as usize,
    };
    match hosts::block_on(etcd::backup(&inventory, &connect_options(), &options)) {
        Ok(b) => {
            if output.json {
                println!("{}", serde_json::to_string_pretty(&b).unwrap_or_default());
            } else {
                println!(
                    "etcd snapshot of cluster {} from {}: {}",
                    inventory.cluster.name,
                    b.master,
                    b.file.display()
                );
                println!(
                    "  sha256 {}  revision {}  keys {}  size {} bytes  hash {:x}",
                    b.sha256,
                    b.status.revision,
                    b.status.total_key,
                    b.status.total_size,
                    b.status.hash
                );
                for p in &b.pruned {
                    println!("  pruned {}", p.display());
                }
            }
            exit::OK
        }
        Err(e) => {
            eprintln!("error: {e}");
            exit::ERROR
        }
    }
}

fn restore(args: &EtcdRestoreArgs, output: &OutputArgs) -> u8 {
    let Some(inventory) = load(&args.inventory.inventory) else {
        return exit::ERROR;
    };
    let options = connect_options();
    // One run at a time: no apply or renewal may touch the control plane while it is
    // stopped and its data replaced. The hosts are locked once the user has agreed.
    let Some((_lock, run)) = crate::converge::lock_run(&inventory) else {
        return exit::ERROR;
    };
    let plan = match hosts::block_on(etcd::prepare_restore(&inventory, &options, &args.from)) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::ERROR;
        }
    };
    let names: Vec<&str> = plan.members.iter().map(|m| m.host.as_str()).collect();
    println!(
        "restore of cluster {} from {}",
        inventory.cluster.name,
        plan.file.display()
    );
    println!(
        "  checked: sha256 {} matches; snapshot revision {}, {} keys, hash {:x}",
        plan.sha256, plan.status.revision, plan.status.total_key, plan.status.hash
    );
    println!(
        "  1. stop the control plane on every master ({}): the API is down until step 3",
        names.join(", ")
    );
    println!("  2. on each master, move its etcd data dir aside and restore the snapshot into it:");
    for m in &plan.members {
        println!(
            "       {}: {} -> {}{}; --name {} --initial-advertise-peer-urls {}",
            m.host, m.data_dir, m.data_dir, plan.old_data_suffix, m.name, m.peer_url
        );
    }
    println!(
        "     --initial-cluster {} --initial-cluster-token {}",
        plan.initial_cluster, plan.token
    );
    println!("  3. start every control plane and wait until each API server answers");
    let what = format!(
        "This replaces all of cluster {}'s data with the snapshot.",
        inventory.cluster.name
    );
    if let Err(refusal) = confirm_destructive(&what, &inventory.cluster.name, args.yes) {
        eprintln!("error: {refusal}");
        return exit::ERROR;
    }
    let masters: Vec<&k8sup_inventory::Host> = inventory.masters().collect();
    let quiet = output.quiet;
    let report = |step| {
        if quiet {
            return;
        }
        match step {
            RestoreStep::Uploaded => {
                println!("snapshot uploaded to every master and restored beside its etcd data")
            }
            RestoreStep::Stopped => println!("control plane stopped on every master"),
            RestoreStep::Restored => println!("etcd restored on every master"),
            RestoreStep::Started => println!("control plane started; every API server answers"),
        }
    };
    // The lock sessions live in the same runtime as the restore: each `block_on` has its
    // own, and a session does not outlive the runtime it was made in.
    let result = hosts::block_on(async {
        let held = hold_hosts(&masters, &options, &run)
            .await
            .map_err(|e| format!("not restoring: {e}"))?;
        let result = etcd::restore(&inventory, &options, &plan, report)
            .await
            .map_err(|e| e.to_string());
        held.release().await;
        result
    });
    match result {
        Ok(()) => {
            println!(
                "cluster {} restored from {}",
                inventory.cluster.name,
                plan.file.display()
            );
            exit::OK
        }
        Err(e) => {
            eprintln!("error: {e}");
            exit::ERROR
        }
    }
}
