//! `k8sup import kubespray` against Kubespray-shaped inventories (a YAML hosts file
//! with group_vars, and the INI shape of Kubespray's sample): the result passes
//! `k8sup validate`, carries hosts, roles, addresses and the cluster settings, lists
//! everything else with the line it came from, and never copies a secret.

mod common;

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

/// Imports `hosts` and checks that it succeeded and that `k8sup validate` accepts the
/// result; returns what import printed, and what validate printed.
fn import_valid(hosts: &str, extra: &[&str]) -> (String, String, String) {
    let (out, dir, text) = import(hosts, extra);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let inventory = dir.path().join("inventory.toml");
    let checked = k8sup(&["validate", "-i", inventory.to_str().expect("utf-8")], &[]);
    assert_eq!(
        checked.status.code(),
        Some(0),
        "{text}\n{}{}",
        stdout(&checked),
        stderr(&checked)
    );
    (stdout(&out), text, stdout(&checked))
}

#[test]
fn a_yaml_inventory_with_group_vars_becomes_a_valid_inventory() {
    let (said, text, summary) = import_valid("tests/kubespray/prod/hosts.yaml", &[]);
    // The summary validate prints: 3 masters, 2 workers, calico, the networks.
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
        said.contains("tests/kubespray/prod/hosts.yaml:26: host rr-1 [calico_rr] not carried"),
        "{}",
        said
    );
    assert!(
        !text.contains("0123456789abcdef0123"),
        "the certificate key was copied"
    );
}

#[test]
fn an_ini_inventory_becomes_a_valid_inventory() {
    let (said, text, _) = import_valid(
        "tests/kubespray/edge/inventory.ini",
        &["--name", "edge-lab"],
    );
    insta::assert_snapshot!("kubespray_edge_inventory", text);
    assert!(
        !text.contains("correct-horse"),
        "a password was copied:\n{text}"
    );
    assert!(!said.contains("correct-horse"));
    assert!(
        said.contains("tests/kubespray/edge/inventory.ini:21: ansible_become_password: <redacted>"),
        "{}",
        said
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
