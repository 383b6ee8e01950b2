//! `k8sup import kubespray` against Kubespray-shaped inventories (a YAML hosts file
//! with group_vars, and the INI shape of Kubespray's sample): the result passes
//! `k8sup validate`, carries hosts, roles, addresses and the cluster settings, lists
//! everything else with the line it came from, and never copies a secret.

mod common;

use std::path::Path;

use common::{k8sup, stderr, stdout};

/// Imports `hosts` into a fresh directory; returns the output, the inventory's path and text.
fn import(hosts: &str, extra: &[&str]) -> (std::process::Output, tempfile::TempDir, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let out_path = dir.path().join("inventory.toml");
    let out_str = out_path.to_str().expect("utf-8").to_string();
    let mut args = vec!["import", "kubespray", hosts, "-o", &out_str];
    args.extend(extra);
    let out = k8sup(&args, &[]);
    let text = std::fs::read_to_string(&out_path).unwrap_or_default();
    (out, dir, text)
}

fn validate(dir: &Path) -> std::process::Output {
    k8sup(
        &[
            "validate",
            "-i",
            dir.join("inventory.toml").to_str().expect("utf-8"),
        ],
        &[],
    )
}

#[test]
fn a_yaml_inventory_with_group_vars_becomes_a_valid_inventory() {
    let (out, dir, text) = import("tests/kubespray/prod/hosts.yaml", &[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let checked = validate(dir.path());
    assert_eq!(
        checked.status.code(),
        Some(0),
        "{text}\n{}{}",
        stdout(&checked),
        stderr(&checked)
    );
    // The summary validate prints: 3 masters, 2 workers, calico, the networks.
    let summary = stdout(&checked);
    for expected in [
        "prod",
        "1.30.4",
        "calico",
        "10.233.64.0/18",
        "10.233.0.0/18",
    ] {
        assert!(summary.contains(expected), "{expected} not in:\n{summary}");
    }
    insta::assert_snapshot!("kubespray_prod_inventory", text);
    // The route reflector is not a Kubernetes host of k8sup's: listed, with its line.
    assert!(
        stdout(&out)
            .contains("tests/kubespray/prod/hosts.yaml:26: host rr-1 [calico_rr] not carried"),
        "{}",
        stdout(&out)
    );
    assert!(
        !text.contains("0123456789abcdef0123"),
        "the certificate key was copied"
    );
}

#[test]
fn an_ini_inventory_becomes_a_valid_inventory() {
    let (out, dir, text) = import(
        "tests/kubespray/edge/inventory.ini",
        &["--name", "edge-lab"],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let checked = validate(dir.path());
    assert_eq!(
        checked.status.code(),
        Some(0),
        "{text}\n{}",
        stderr(&checked)
    );
    insta::assert_snapshot!("kubespray_edge_inventory", text);
    assert!(
        !text.contains("correct-horse"),
        "a password was copied:\n{text}"
    );
    assert!(!stdout(&out).contains("correct-horse"));
    assert!(
        stdout(&out)
            .contains("tests/kubespray/edge/inventory.ini:21: ansible_become_password: <redacted>"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn bad_input_is_refused_with_its_place_and_nothing_is_written() {
    let dir = tempfile::tempdir().expect("temp dir");
    let bad = dir.path().join("hosts.yaml");
    std::fs::write(&bad, "all:\n  hosts:\n    node1: {ansible_host: [\n").expect("write");
    let (out, outdir, text) = import(bad.to_str().expect("utf-8"), &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("hosts.yaml: not YAML"),
        "{}",
        stderr(&out)
    );
    assert!(text.is_empty() && !outdir.path().join("inventory.toml").exists());

    std::fs::write(
        &bad,
        "all:\n  children:\n    kube_node:\n      hosts:\n        n1:\n",
    )
    .expect("write");
    let (out, _, text) = import(bad.to_str().expect("utf-8"), &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("no host in kube_control_plane"),
        "{}",
        stderr(&out)
    );
    assert!(text.is_empty());

    // An existing file is not overwritten.
    let existing = dir.path().join("inventory.toml");
    std::fs::write(&existing, "mine").expect("write");
    let out = k8sup(
        &[
            "import",
            "kubespray",
            "tests/kubespray/edge/inventory.ini",
            "-o",
            existing.to_str().expect("utf-8"),
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(std::fs::read_to_string(&existing).expect("read"), "mine");
}
