//! A ledger written by an older k8sup (commit 3c7da93, version 1 fingerprints) is
//! judged by this one as its own: a converged host plans nothing, an out-of-band
//! edit of a task it recorded is drift (not a new change), and the next apply
//! rewrites every entry in the current fingerprint version.

mod common;

use std::path::Path;
use std::process::Output;

use common::{k8sup, lab, spec, stderr, stdout, write_inventory};
use k8sup_lab::Lab;

const FIXTURE: &str = "tests/fixtures/ledger-3c7da93";
const LEDGER: &str = "/var/lib/k8sup/state.json";

fn run(lab: &Lab, inv: &Path, command: &[&str]) -> Output {
    let mut args: Vec<&str> = command.to_vec();
    args.extend([
        "-i",
        inv.to_str().unwrap(),
        "--playbook",
        "tests/playbooks/every-kind.toml",
        "--templates",
        "tests/templates",
    ]);
    let state = lab.dir().join("k8sup-state");
    k8sup(&args, &[("K8SUP_STATE_DIR", state.to_str().unwrap())])
}

/// `k8sup plan --detailed-exitcode` says every host is as wanted.
fn nothing_to_do(lab: &Lab, inv: &Path) {
    let out = run(lab, inv, &["plan", "--detailed-exitcode"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
}

/// Task id -> status of each host, from `k8sup plan -o`.
fn plan_statuses(lab: &Lab, inv: &Path) -> Vec<(String, String, String)> {
    let path = lab.dir().join("plan.json");
    let out = run(lab, inv, &["plan", "-o", path.to_str().unwrap()]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let plan: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let mut out = Vec::new();
    for host in plan["hosts"].as_array().unwrap() {
        for task in host["tasks"].as_array().unwrap() {
            out.push((
                host["host"].as_str().unwrap().to_string(),
                task["id"].as_str().unwrap().to_string(),
                task["status"].as_str().unwrap().to_string(),
            ));
        }
    }
    out
}

#[test]
fn a_ledger_of_k8sup_3c7da93_is_judged_ok_and_upgraded() {
    let lab_toml = std::fs::read_to_string(format!("{FIXTURE}/lab.toml")).unwrap();
    let Some(lab) = lab(&spec(&lab_toml)) else {
        return;
    };
    // The inventory the fixture was written with: what renders the same on any lab.
    let inventory = lab
        .inventory_toml("[cluster]\nname = \"ledger\"\nkubernetes_version = \"1.30\"\n")
        .replace(
            &format!("address = \"{}\"\n", lab.host("master").unwrap().address),
            &format!(
                "address = \"{}\"\ninternal_address = \"10.77.0.1\"\n",
                lab.host("master").unwrap().address
            ),
        )
        .replace(
            &format!("address = \"{}\"\n", lab.host("arm").unwrap().address),
            &format!(
                "address = \"{}\"\ninternal_address = \"10.77.0.2\"\n",
                lab.host("arm").unwrap().address
            ),
        );
    assert_eq!(
        inventory.matches("internal_address").count(),
        2,
        "{inventory}"
    );
    let inv = write_inventory(&lab, "ledger.toml", &inventory);

    // The hosts as 3c7da93 left them: converged, with its ledgers.
    let out = run(&lab, &inv, &["apply"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    for name in ["master", "arm"] {
        let host = lab.host(name).unwrap();
        let old = std::fs::read_to_string(format!("{FIXTURE}/{name}.json")).unwrap();
        std::fs::write(host.path(LEDGER), &old).unwrap();
        std::fs::write(host.path(&format!("{LEDGER}.journal")), "").unwrap();
    }

    nothing_to_do(&lab, &inv);

    // An out-of-band edit of a recorded task is drift: the old entry is this task's.
    let master = lab.host("master").unwrap();
    let arm = lab.host("arm").unwrap();
    std::fs::write(master.path("/proc/sys/kernel/hostname"), "localhost\n").unwrap();
    std::fs::write(master.path("/etc/hostname"), "localhost\n").unwrap();
    for host in [master, arm] {
        std::fs::write(host.path("/etc/app/app.conf"), "edited\n").unwrap();
        std::fs::write(host.path("/etc/systemd/system/app.service"), "").unwrap();
        std::fs::write(host.path("/etc/motd"), "").unwrap();
        std::fs::write(host.path("/etc/sysctl.d/99-k8sup-test.conf"), "").unwrap();
        let fstab = std::fs::read_to_string(host.path("/etc/fstab")).unwrap();
        std::fs::write(
            host.path("/etc/fstab"),
            format!("{fstab}/swap.img none swap sw 0 0\n"),
        )
        .unwrap();
        std::fs::remove_file(host.path("/root/prepared")).unwrap();
    }
    std::fs::remove_file(master.path("/root/token")).unwrap();
    std::fs::remove_file(arm.path("/root/arm64")).unwrap();
    std::fs::remove_file(arm.path("/root/joined")).unwrap();
    let recorded = |host: &str, task: &str| {
        let text = std::fs::read_to_string(format!("{FIXTURE}/{host}.json")).unwrap();
        let ledger: serde_json::Value = serde_json::from_str(&text).unwrap();
        ledger["tasks"].get(task).is_some()
    };
    let mut drifted = 0;
    for (host, task, status) in plan_statuses(&lab, &inv) {
        let edited = match task.as_str() {
            "prepare/hostname" => host == "master",
            "prepare/app-config"
            | "prepare/app-unit"
            | "prepare/swap-off-at-boot"
            | "prepare/motd-line"
            | "prepare/kernel-settings"
            | "prepare/count-applies"
            | "init/init"
            | "join/join" => true,
            "prepare/arm-marker" => host == "arm",
            _ => false,
        };
        // Drift where 3c7da93 recorded the task (its hostname was right then on the
        // master, so that task did not run and is a plain change).
        let expected = match task.as_str() {
            "prepare/arm-marker" if host == "master" => "skip",
            // Notified by the app config's change.
            "prepare/handler/restart-app" => "change",
            _ if edited && recorded(&host, &task) => "drift",
            _ if edited => "change",
            _ => "ok",
        };
        assert_eq!(status, expected, "{host} {task}");
        drifted += usize::from(status == "drift");
    }
    assert_eq!(drifted, 13);

    // The apply repairs it and records every entry in the current version, also
    // those of tasks it did not run.
    let out = run(&lab, &inv, &["apply"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains("repaired drift"), "{}", stdout(&out));
    for name in ["master", "arm"] {
        let text = std::fs::read_to_string(lab.host(name).unwrap().path(LEDGER)).unwrap();
        let ledger: serde_json::Value = serde_json::from_str(&text).unwrap();
        let tasks = ledger["tasks"].as_object().unwrap();
        assert!(tasks.len() >= 10, "{text}");
        for (id, entry) in tasks {
            let fingerprint = entry["fingerprint"].as_str().unwrap();
            assert!(fingerprint.starts_with("v2:"), "{name} {id}: {fingerprint}");
        }
    }
    nothing_to_do(&lab, &inv);
}
