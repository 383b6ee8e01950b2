//! `k8sup certs` (when every certificate expires) and `k8sup certs renew`; and the
//! renewal `apply` runs when `[certificates] renew_before` is set.

use std::time::Duration;

use k8sup_inventory::Inventory;
use k8sup_ops::certs::{self, CertKind, CertsReport, RenewPlan, RenewStep};
use k8sup_ops::connect::{hold_hosts, ConnectOptions};
use k8sup_ssh::{EventSink, Secrets};
use serde_json::json;

use crate::args::{CertsAction, CertsArgs, CertsRenewArgs, OutputArgs};
use crate::{exit, hosts, table};

/// Exit status of `certs` when a certificate expires within `--warn`.
const EXPIRING: u8 = 2;
const DEFAULT_RENEW_BEFORE: Duration = Duration::from_secs(30 * 86_400);

pub fn run(args: &CertsArgs, output: &OutputArgs) -> u8 {
    match (&args.action, &args.inventory) {
        (Some(CertsAction::Renew(renew)), _) => hosts::block_on(renew_command(renew, output)),
        (None, Some(inventory)) => hosts::block_on(list_command(inventory, args.warn, output)),
        (None, None) => {
            eprintln!(
                "error: `k8sup certs` needs -i INVENTORY (or `k8sup certs renew -i INVENTORY`)"
            );
            exit::ERROR
        }
    }
}

/// Loads the inventory, printing every problem; `None` means exit 1.
pub(crate) fn load(path: &std::path::Path) -> Option<Inventory> {
    match Inventory::load(path) {
        Ok(inv) => Some(inv),
        Err(e) => {
            eprintln!("{e}");
            None
        }
    }
}

/// Connection options from the environment, every host at `ssh.parallelism`.
pub(crate) fn connect_options() -> ConnectOptions {
    ConnectOptions {
        secrets: Secrets::from_env(),
        events: EventSink::new(hosts::print_event),
        parallel: None,
        run: None,
        first_master_read: None,
    }
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// `2026-12-12 02:03 UTC`.
fn date(unix: u64) -> String {
    let name = k8sup_ops::etcd::snapshot_name("", unix);
    // "-YYYYmmddTHHMMSSZ.db"
    let s = &name[1..];
    format!(
        "{}-{}-{} {}:{} UTC",
        &s[0..4],
        &s[4..6],
        &s[6..8],
        &s[9..11],
        &s[11..13]
    )
}

/// `30d` for whole days, else humantime's form.
fn window(d: Duration) -> String {
    if d.as_secs() % 86_400 == 0 {
        format!("{}d", d.as_secs() / 86_400)
    } else {
        humantime::format_duration(d).to_string()
    }
}

fn kind_text(kind: CertKind) -> &'static str {
    match kind {
        CertKind::Kubeadm => "kubeadm",
        CertKind::Authority => "CA",
        CertKind::KubeletClient => "kubelet",
    }
}

fn print_errors(report: &CertsReport) {
    for e in &report.errors {
        eprintln!("error: {}", e.error);
    }
}

async fn list_command(path: &std::path::Path, warn: Duration, output: &OutputArgs) -> u8 {
    let Some(inventory) = load(path) else {
        return exit::ERROR;
    };
    let report = certs::gather(&inventory, &connect_options()).await;
    let now = now();
    let expiring = report.expiring(now, warn);
    if output.json {
        let doc = json!({
            "cluster": inventory.cluster.name,
            "warn_seconds": warn.as_secs(),
            "certificates": report.certificates.iter().map(|c| json!({
                "host": c.host,
                "name": c.name,
                "kind": c.kind,
                "authority": c.authority,
                "expires": date(c.expires),
                "expires_unix": c.expires,
                "residual_seconds": c.expires as i64 - now as i64,
                "externally_managed": c.externally_managed,
                "within_warn": c.expires < now + warn.as_secs(),
            })).collect::<Vec<_>>(),
            "errors": report.errors,
        });
        println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
    } else {
        let mut rows = vec![[
            "EXPIRES",
            "RESIDUAL",
            "HOST",
            "CERTIFICATE",
            "KIND",
            "AUTHORITY",
        ]
        .map(String::from)
        .to_vec()];
        for c in &report.certificates {
            rows.push(vec![
                date(c.expires),
                certs::residual(now, c.expires),
                c.host.clone(),
                c.name.clone(),
                kind_text(c.kind).into(),
                if c.kind == CertKind::Authority {
                    "-".into()
                } else {
                    c.authority.clone()
                },
            ]);
        }
        print!("{}", table::render(&rows));
        if !expiring.is_empty() {
            println!();
            for c in &expiring {
                println!(
                    "EXPIRING: {} on {} expires {} (in {}, within {})",
                    c.name,
                    c.host,
                    date(c.expires),
                    certs::residual(now, c.expires),
                    window(warn)
                );
            }
            println!(
                "renew the control plane's with `k8sup certs renew -i {}`",
                path.display()
            );
        } else if !output.quiet {
            println!(
                "\n{} certificates on {} hosts; none expires within {}",
                report.certificates.len(),
                inventory.hosts.len() - report.errors.len(),
                window(warn)
            );
        }
    }
    print_errors(&report);
    if !report.errors.is_empty() {
        exit::ERROR
    } else if !expiring.is_empty() {
        EXPIRING
    } else {
        exit::OK
    }
}

/// The renewal plan as a person reads it.
fn plan_text(plan: &RenewPlan, before: Duration, now: u64) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let window = window(before);
    if plan.is_empty() {
        let _ = writeln!(
            out,
            "nothing to renew: no kubeadm certificate expires within {window}"
        );
    } else {
        let _ = writeln!(
            out,
            "certificate renewal, one master at a time (what expires within {window}):"
        );
        for (i, m) in plan.masters.iter().enumerate() {
            let due: Vec<String> = m
                .due
                .iter()
                .map(|c| format!("{} in {}", c.name, certs::residual(now, c.expires)))
                .collect();
            let _ = writeln!(out, "  {}. {} (due: {})", i + 1, m.host, due.join(", "));
            let _ = writeln!(out, "     kubeadm certs renew all");
            let _ = writeln!(
                out,
                "     restart {} (manifests moved out of /etc/kubernetes/manifests and back)",
                certs::CONTROL_PLANE_PODS.join(", ")
            );
            let _ = writeln!(
                out,
                "     wait until its API server answers; refresh /root/.kube/config"
            );
        }
    }
    for c in &plan.not_renewable {
        let how = match c.kind {
            CertKind::Authority => "a CA: kubeadm does not renew it",
            _ => "the kubelet rotates it itself (rotateCertificates); check its log if it does not",
        };
        let _ = writeln!(
            out,
            "note: {} on {} expires in {}: {how}",
            c.name,
            c.host,
            certs::residual(now, c.expires)
        );
    }
    out
}

/// Gathers, plans, shows the plan and (unless `dry_run`) renews.
async fn plan_and_renew(
    inventory: &Inventory,
    before: Duration,
    dry_run: bool,
    output: &OutputArgs,
) -> u8 {
    let options = connect_options();
    let report = certs::gather(inventory, &options).await;
    if !report.errors.is_empty() {
        print_errors(&report);
        eprintln!("not renewing: the certificates of every host must be known first");
        return exit::ERROR;
    }
    let now = now();
    let plan = certs::renew_plan(inventory, &report, now, before);
    if output.json {
        // `certs renew --json`: the plan; after `apply --json`: nothing that breaks its JSON.
        if dry_run {
            println!(
                "{}",
                serde_json::to_string_pretty(&plan).unwrap_or_default()
            );
        }
    } else {
        print!("{}", plan_text(&plan, before, now));
    }
    if dry_run || plan.is_empty() {
        return exit::OK;
    }
    let result = certs::renew(inventory, &options, &plan, |step| match step {
        RenewStep::Renewing(host) => {
            if !output.quiet && !output.json {
                println!("{host}: renewing and restarting the control plane");
            }
        }
        RenewStep::Renewed { host, seconds } => {
            if !output.json {
                println!("{host}: renewed; its API server answers again ({seconds:.1}s)")
            }
        }
    })
    .await;
    match result {
        Ok(()) => {
            if !output.quiet && !output.json {
                println!(
                    "{} master(s) renewed; `k8sup kubeconfig` hands out the renewed admin kubeconfig",
                    plan.masters.len()
                );
            }
            exit::OK
        }
        Err(e) => {
            eprintln!("error: {e}");
            exit::ERROR
        }
    }
}

async fn renew_command(args: &CertsRenewArgs, output: &OutputArgs) -> u8 {
    let Some(inventory) = load(&args.inventory.inventory) else {
        return exit::ERROR;
    };
    let before = args
        .before
        .or(inventory.certificates.renew_before)
        .unwrap_or(DEFAULT_RENEW_BEFORE);
    if args.dry_run {
        return plan_and_renew(&inventory, before, true, output).await;
    }
    // One run at a time: renewal restarts control planes, which an apply from here or
    // from another controller must not be in the middle of.
    let Some((_lock, run)) = crate::converge::lock_run(&inventory) else {
        return exit::ERROR;
    };
    let masters: Vec<&k8sup_inventory::Host> = inventory.masters().collect();
    let held = match hold_hosts(&masters, &connect_options(), &run).await {
        Ok(held) => held,
        Err(e) => {
            eprintln!("error: not renewing: {e}");
            return exit::ERROR;
        }
    };
    let status = plan_and_renew(&inventory, before, false, output).await;
    held.release().await;
    status
}

/// After a successful `apply`: renew what `[certificates] renew_before` says is due.
/// The apply's own locks (the controller's, and its sessions' on every host) still
/// hold, so nothing else runs meanwhile.
pub async fn renew_when_due(path: &std::path::Path, output: &OutputArgs) -> u8 {
    let Some(inventory) = load(path) else {
        return exit::ERROR;
    };
    let Some(before) = inventory.certificates.renew_before else {
        return exit::OK;
    };
    if !output.json {
        println!();
    }
    plan_and_renew(&inventory, before, false, output).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8sup_ops::certs::{CertificateExpiry, MasterRenewal};

    fn cert(host: &str, name: &str, kind: CertKind, days: u64) -> CertificateExpiry {
        CertificateExpiry {
            host: host.into(),
            name: name.into(),
            kind,
            authority: "ca".into(),
            expires: 1_800_000_000 + days * 86_400 + 60,
            externally_managed: false,
        }
    }

    #[test]
    fn the_renewal_plan_reads_in_order() {
        let plan = RenewPlan {
            masters: vec![
                MasterRenewal {
                    host: "cp2".into(),
                    due: vec![cert("cp2", "apiserver", CertKind::Kubeadm, 9)],
                },
                MasterRenewal {
                    host: "cp3".into(),
                    due: vec![
                        cert("cp3", "etcd-server", CertKind::Kubeadm, 19),
                        cert("cp3", "admin.conf", CertKind::Kubeadm, 29),
                    ],
                },
            ],
            not_renewable: vec![cert("w1", "kubelet-client", CertKind::KubeletClient, 24)],
        };
        let window = Duration::from_secs(30 * 86_400);
        insta::assert_snapshot!(plan_text(&plan, window, 1_800_000_000));
        insta::assert_snapshot!(
            "nothing_due",
            plan_text(&RenewPlan::default(), window, 1_800_000_000)
        );
    }
}
