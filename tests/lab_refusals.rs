//! What apply refuses before it changes anything on any host: a wrong arch in
//! the inventory, swap that cannot be turned off, a master with too little
//! memory. The hosts' files are compared byte for byte around the refusal.

mod common;

use common::{k8sup, lab, ledger_at, snapshot, spec, stderr, stdout, write_inventory};

#[test]
fn apply_refuses_before_touching_any_host() {
    let Some(lab) = lab(&spec(
        r#"
name = "refusals"
[[hosts]]
name = "small-master"
roles = ["master"]
memory_mib = 1024
[[hosts]]
name = "really-arm"
arch = "arm64"
[[hosts]]
name = "stuck-swap"
swap_mib = 2048
swap_locked = true
[[hosts]]
name = "fine"
"#,
    )) else {
        return;
    };
    // The inventory says amd64 for the arm64 host.
    let text = lab
        .inventory_toml("")
        .replacen("arch = \"arm64\"", "arch = \"amd64\"", 1);
    let inv = write_inventory(&lab, "refusals.toml", &text);
    let state = lab.dir().join("k8sup-state");
    let before = snapshot(&lab);
    let out = k8sup(
        &["apply", "-i", inv.to_str().unwrap()],
        &[("K8SUP_STATE_DIR", state.to_str().unwrap())],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let err = stderr(&out);
    for needle in [
        "small-master  FAIL  resources: a master needs at least 1700 MiB of memory; this host has 1024 MiB",
        "really-arm    FAIL  arch: the inventory says arch = \"amd64\" but the host is arm64",
        "stuck-swap    FAIL  swap-stuck: swap cannot be turned off: 2048 MiB of it are in use",
        "error: nothing was changed on any host",
    ] {
        assert!(err.contains(needle), "expected {needle:?} in:\n{err}");
    }
    assert!(
        !err.contains("fine "),
        "the good host has no finding:\n{err}"
    );
    assert!(before == snapshot(&lab), "a refused apply changed a host");
    for h in lab.hosts() {
        assert!(
            ledger_at(&h.path("/var/lib/k8sup/state.json")).is_none(),
            "{}",
            h.name
        );
    }
}
