//! The benchmark suite (`bench/run`) on a small lab, so that it cannot rot: 3 hosts, each
//! tool (k8sup, ansible-core, ansible-core + mitogen, pyinfra) converges fresh hosts once
//! and re-runs as a no-op, and the script checks that every host really converged. No time
//! is asserted. The peers are installed from PyPI by the script: if PyPI cannot be reached
//! the test fails (it does not pass silently).

use std::path::{Path, PathBuf};
use std::process::Command;

fn skip(reason: &str) {
    k8sup_lab::client::skip(reason);
}

/// `target/<profile>/k8sup-lab` next to the k8sup binary under test, built if missing.
fn lab_binary(k8sup: &Path) -> PathBuf {
    let dir = k8sup.parent().expect("k8sup has a parent directory");
    let lab = dir.join("k8sup-lab");
    if !lab.exists() || !dir.join("k8sup-lab-emu").exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "-p", "k8sup-lab", "--bins"])
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        if dir.file_name().and_then(|n| n.to_str()) == Some("release") {
            cmd.arg("--release");
        }
        let status = cmd.status().expect("cargo runs");
        assert!(status.success(), "cargo build -p k8sup-lab --bins failed");
    }
    lab
}

#[test]
fn bench_smoke_runs_every_tool_on_three_hosts() {
    if !k8sup_lab::sys::is_root() {
        return skip("the benchmark's lab needs root");
    }
    if !Path::new("/usr/sbin/sshd").exists() {
        return skip("the benchmark's lab needs openssh-server (/usr/sbin/sshd)");
    }
    if !Path::new("/usr/bin/python3").exists() {
        return skip("the benchmark needs /usr/bin/python3 (its driver and the peers)");
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let k8sup = PathBuf::from(env!("CARGO_BIN_EXE_k8sup"));
    let lab = lab_binary(&k8sup);
    let out = Command::new(root.join("bench/run"))
        .arg("--smoke")
        .current_dir(root)
        .env("BENCH_K8SUP", &k8sup)
        .env("BENCH_K8SUP_LAB", &lab)
        .output()
        .expect("bench/run starts");
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "bench/run --smoke failed ({}):\n{text}",
        out.status
    );
    for tool in ["k8sup", "ansible", "mitogen", "pyinfra"] {
        assert!(
            text.contains(&format!("\"tool\": \"{tool}\"")),
            "no result for {tool}:\n{text}"
        );
    }
}
