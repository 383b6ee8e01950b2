//! `--limit` for plan and apply: only the named hosts change. A worker added
//! with `--limit` joins with credentials fetched from the first master, which is
//! only read: its ledger and files stay as they were, and so do the other hosts.

mod common;

use std::collections::BTreeMap;

use common::{k8sup, lab, ledger_files, on, snapshot, spec, stderr, stdout, write_inventory};

/// The files of `hosts` in a lab snapshot, without the emulated cluster's shared
/// state (the API server's data, mounted in every host: a node that registers
/// changes it, as it changes etcd on a real cluster).
fn files_of(
    all: &BTreeMap<String, (u32, Vec<u8>)>,
    hosts: &[&str],
) -> BTreeMap<String, (u32, Vec<u8>)> {
    all.iter()
        .filter(|(path, _)| hosts.iter().any(|h| path.starts_with(&format!("{h}:"))))
        .filter(|(path, _)| !path.contains(":/var/lib/k8sup-lab-cluster"))
        .map(|(p, v)| (p.clone(), v.clone()))
        .collect()
}

/// The paths that differ between two snapshots (added, removed or changed).
fn changed_paths(
    before: &BTreeMap<String, (u32, Vec<u8>)>,
    after: &BTreeMap<String, (u32, Vec<u8>)>,
) -> Vec<String> {
    let mut paths: Vec<String> = after
        .iter()
        .filter(|(p, v)| before.get(*p) != Some(*v))
        .map(|(p, _)| p.clone())
        .chain(before.keys().filter(|p| !after.contains_key(*p)).cloned())
        .collect();
    paths.sort();
    paths
}

/// The `host` of every entry of a plan's or a report's `hosts`.
fn host_names(doc: &serde_json::Value) -> Vec<&str> {
    doc["hosts"]
        .as_array()
        .map(|hosts| hosts.iter().filter_map(|h| h["host"].as_str()).collect())
        .unwrap_or_default()
}

#[test]
fn a_worker_added_with_limit_is_the_only_host_that_changes() {
    let Some(lab) = lab(&spec(
        r#"
name = "limit"
[[hosts]]
name = "cp1"
roles = ["master"]
[[hosts]]
name = "w1"
[[hosts]]
name = "w2"
"#,
    )) else {
        return;
    };
    let cluster = "[cluster]\nname = \"limit\"\nkubernetes_version = \"1.31\"\n";
    let inv = write_inventory(&lab, "limit.toml", &lab.inventory_toml(cluster));
    let inv = inv.to_str().unwrap();
    let state = lab.dir().join("k8sup-state");
    let env = [("K8SUP_STATE_DIR", state.to_str().unwrap())];

    // An unknown name is refused, naming it, before anything is done.
    let bad = k8sup(&["plan", "-i", inv, "--limit", "w1,nope"], &env);
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        stderr(&bad).contains("--limit names hosts that are not in the inventory: nope"),
        "{}",
        stderr(&bad)
    );

    // The master and w1 only: w2 is not touched.
    let w2_before = files_of(&snapshot(&lab), &["w2"]);
    let out = k8sup(&["apply", "-i", inv, "--limit", "cp1,w1"], &env);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let changed = changed_paths(&w2_before, &files_of(&snapshot(&lab), &["w2"]));
    assert!(changed.is_empty(), "w2 changed: {changed:?}");
    let nodes = on(&lab, "cp1", "kubectl get nodes --no-headers");
    assert!(!nodes.contains("w2"), "{nodes}");

    // The plan for w2 alone: the master is named as only read, not planned.
    let plan = k8sup(&["plan", "-i", inv, "--limit", "w2", "--json"], &env);
    assert!(plan.status.success(), "{}", stderr(&plan));
    let plan: serde_json::Value = serde_json::from_slice(&plan.stdout).expect("plan JSON");
    assert_eq!(host_names(&plan), ["w2"]);
    let text = k8sup(&["plan", "-i", inv, "--limit", "w2"], &env);
    assert!(
        stdout(&text).contains("cp1: only read (--limit): nothing on it changes"),
        "{}",
        stdout(&text)
    );

    // w2 joins; the master's ledger and files, and w1's, are as they were.
    let before = files_of(&snapshot(&lab), &["cp1", "w1"]);
    let ledger = ledger_files(&lab.host("cp1").unwrap().path("/var/lib/k8sup/state.json"));
    assert!(
        ledger.iter().any(|(_, bytes)| !bytes.is_empty()),
        "cp1's ledger"
    );
    let report = lab.dir().join("add.json");
    let out = k8sup(
        &[
            "apply",
            "-i",
            inv,
            "--limit",
            "w2",
            "--report",
            report.to_str().unwrap(),
        ],
        &env,
    );
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let nodes = on(&lab, "cp1", "kubectl get nodes --no-headers");
    let w2 = nodes
        .lines()
        .find(|l| l.starts_with("w2 "))
        .unwrap_or_default();
    assert_eq!(w2.split_whitespace().nth(1), Some("Ready"), "{nodes}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(host_names(&report), ["w2"]);
    assert_eq!(
        ledger,
        ledger_files(&lab.host("cp1").unwrap().path("/var/lib/k8sup/state.json")),
        "cp1's ledger changed"
    );
    let changed = changed_paths(&before, &files_of(&snapshot(&lab), &["cp1", "w1"]));
    assert!(changed.is_empty(), "changed on cp1/w1: {changed:?}");

    // Without --limit, everything is converged.
    common::assert_converged(inv, &env);
}
