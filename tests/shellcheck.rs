//! Every shell file k8sup sends to hosts (`*.sh` under crates/, included in the
//! binaries at build time) passes Debian's shellcheck as POSIX `sh` with no
//! finding at all. shellcheck comes from `tests/real-tools` (tests/run calls it);
//! without it the test says SKIPPED, but fails under CI or tests/run.

use std::path::{Path, PathBuf};
use std::process::Command;

fn shell_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            shell_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "sh") {
            out.push(path);
        }
    }
}

/// Debian's shellcheck from `tests/real-tools`; `None` (after saying SKIPPED, or
/// failing under CI) when it is not there.
fn shellcheck() -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let tools = std::env::var_os("K8SUP_REAL_TOOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target/real-tools"));
    let shellcheck = tools.join("root/usr/bin/shellcheck");
    if !shellcheck.is_file() {
        let why = format!("{} is missing: run tests/real-tools", shellcheck.display());
        k8sup_lab::client::skip(&why);
        return None;
    }
    Some(shellcheck)
}

#[test]
fn every_shell_file_passes_shellcheck_as_sh() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let Some(shellcheck) = shellcheck() else {
        return;
    };
    let mut files = Vec::new();
    shell_files(&root.join("crates"), &mut files);
    files.sort();
    for expected in ["crates/engine/src/prelude.sh", "crates/facts/src/gather.sh"] {
        assert!(
            files.contains(&root.join(expected)),
            "{expected}: {files:?}"
        );
    }
    assert_clean(&shellcheck, &files);
}

/// shellcheck finds nothing in `files`, as POSIX `sh`, down to style notes.
fn assert_clean(shellcheck: &Path, files: &[PathBuf]) {
    let out = Command::new(shellcheck)
        .args(["--shell=sh", "--severity=style", "--format=gcc"])
        .args(files)
        .output()
        .expect("shellcheck runs");
    let findings = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && findings.trim().is_empty(),
        "shellcheck on {} files:\n{findings}{}",
        files.len(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The reset playbook's commands use no template value, so they are shell as
/// written: each `cmd` and `unless` passes shellcheck as `sh` like the files above.
#[test]
fn the_reset_playbook_s_commands_pass_shellcheck_as_sh() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let Some(shellcheck) = shellcheck() else {
        return;
    };
    let text = std::fs::read_to_string(root.join("playbooks/reset.toml")).unwrap();
    let playbook: toml::Table = toml::from_str(&text).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for play in playbook["play"].as_array().unwrap() {
        for task in play["task"].as_array().unwrap() {
            for field in ["cmd", "unless"] {
                let Some(code) = task.get(field).and_then(|v| v.as_str()) else {
                    continue;
                };
                assert!(!code.contains("{{"), "{code}: a template value");
                let name = task["name"].as_str().unwrap().replace(' ', "-");
                let path = dir.path().join(format!("{name}.{field}.sh"));
                std::fs::write(&path, format!("{code}\n")).unwrap();
                files.push(path);
            }
        }
    }
    assert!(files.len() >= 16, "{files:?}");
    assert_clean(&shellcheck, &files);
}
