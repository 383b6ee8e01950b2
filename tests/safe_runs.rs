//! What keeps an unattended run safe, checked without any host: a closed stdout
//! never aborts k8sup, inputs are read with a cap, destructive commands need a
//! yes, and refusals come before any connection. The lab tests of the same
//! guarantees are in `lab_safe_runs.rs`.

mod common;

use std::process::Output;

use common::{stderr, stdout, with_closed_stdout};

#[test]
fn a_closed_stdout_never_panics() {
    let state = tempfile::tempdir().expect("temp");
    let state_env = [("K8SUP_STATE_DIR", state.path().to_str().unwrap())];
    for args in [
        &["validate", "-i", "inventories/minimal.toml"][..],
        &["validate", "-i", "inventories/minimal.toml", "--json"],
        &["history", "-i", "inventories/minimal.toml"],
        &["completions", "bash"],
    ] {
        let out = with_closed_stdout(args, &state_env);
        let err = stderr(&out);
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert_eq!(out.status.code(), Some(0), "{args:?}: {err}");
    }
    // An invalid inventory still says why on stderr and exits 1.
    let out = with_closed_stdout(
        &["validate", "-i", "tests/inventories/broken/empty.toml"],
        &[],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
    let _ = stdout(&out);
}

/// `k8sup` with no stdin and its state kept in `state`.
fn run_in(state: &std::path::Path, args: &[&str]) -> Output {
    common::k8sup(args, &[("K8SUP_STATE_DIR", state.to_str().unwrap())])
}

#[test]
fn inputs_from_devices_are_read_with_a_cap() {
    let dir = tempfile::tempdir().expect("temp");
    let templates = dir.path().join("templates");
    std::fs::create_dir_all(&templates).unwrap();
    std::os::unix::fs::symlink("/dev/zero", templates.join("kubeadm.yaml.j2")).unwrap();
    let templates = templates.to_str().unwrap();
    let inv = "inventories/minimal.toml";
    for (args, said) in [
        (
            &["validate", "-i", "/dev/zero"][..],
            "/dev/zero: error: the inventory is larger than 4 MiB",
        ),
        (
            &["plan", "-i", inv, "--playbook", "/dev/zero"],
            "error: the playbook /dev/zero is larger than 4 MiB",
        ),
        (
            &["apply", "-i", inv, "--plan", "/dev/zero"],
            "error: the plan /dev/zero is larger than 256 MiB",
        ),
        (
            &["plan", "-i", inv, "--templates", templates],
            "kubeadm.yaml.j2 is larger than 4 MiB",
        ),
    ] {
        let out = run_in(dir.path(), args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(said), "{args:?}: {}", stderr(&out));
    }
}

#[test]
fn a_huge_value_is_quoted_by_its_start() {
    let dir = tempfile::tempdir().expect("temp");
    let path = dir.path().join("huge-value.toml");
    let huge = format!("{}$(reboot)", "a".repeat(100_000));
    std::fs::write(
        &path,
        format!(
            "[cluster]\nname = \"lab\"\nkubernetes_version = \"1.30\"\nregistry_mirrors = [\"https://m.example.org/{huge}\"]\n\n[[hosts]]\nname = \"m1\"\naddress = \"10.0.0.1\"\nroles = [\"master\"]\n"
        ),
    )
    .unwrap();
    let out = run_in(dir.path(), &["validate", "-i", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("a registry mirror \"https://m.example.org/aaaa"),
        "{err}"
    );
    assert!(
        err.contains("... (100031 bytes) has the character '$'"),
        "{err}"
    );
    assert!(
        err.len() < 1000,
        "the message echoes the value: {} bytes",
        err.len()
    );
}

#[test]
fn history_needs_no_identity_file() {
    let dir = tempfile::tempdir().expect("temp");
    let inv = dir.path().join("inv.toml");
    std::fs::write(
        &inv,
        "[cluster]\nname = \"hist\"\nkubernetes_version = \"1.30\"\n[ssh]\nidentity_file = \"/nonexistent/id_ed25519\"\n[[hosts]]\nname = \"m1\"\naddress = \"10.0.0.1\"\nroles = [\"master\"]\n",
    )
    .unwrap();
    let out = run_in(dir.path(), &["history", "-i", inv.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("no runs recorded for cluster hist"),
        "{}",
        stdout(&out)
    );
    // Commands that connect still refuse it.
    let out = run_in(dir.path(), &["validate", "-i", inv.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("cannot read identity_file"),
        "{}",
        stderr(&out)
    );
}
