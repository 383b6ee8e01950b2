//! What the black-box tests share: running the real `k8sup` binary, and
//! bringing up a lab (or saying clearly why the test is skipped).

#![allow(dead_code)]

pub mod browser;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use k8sup_lab::{Lab, LabSpec};

/// The names in the directory `dir`, sorted; none when it does not exist (yet).
pub fn sorted_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Runs `k8sup` with `args` and extra environment variables, no stdin.
pub fn k8sup(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_k8sup"));
    cmd.args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("K8SUP_BECOME_PASSWORD")
        .env_remove("K8SUP_KEY_PASSPHRASE")
        .env_remove("SSH_AUTH_SOCK")
        .stdin(std::process::Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("k8sup runs")
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Brings up `spec`, or returns `None` (printing why) where a lab cannot run:
/// not root, or no OpenSSH server. Under CI (`CI=true`) or `tests/run`
/// (`K8SUP_REQUIRE_LAB=1`) a lab that cannot run fails the test instead.
pub fn lab(spec: &LabSpec) -> Option<Lab> {
    if let Some(why) = k8sup_lab::client::unavailable() {
        k8sup_lab::client::skip(why);
        return None;
    }
    Some(Lab::up(spec).unwrap_or_else(|e| panic!("lab {} did not come up: {e}", spec.name)))
}

/// A lab spec from TOML text.
pub fn spec(toml_text: &str) -> LabSpec {
    toml::from_str(toml_text).unwrap_or_else(|e| panic!("lab spec: {e}"))
}

/// Writes `text` as an inventory file inside the lab's directory.
pub fn write_inventory(lab: &Lab, name: &str, text: &str) -> PathBuf {
    let path = lab.dir().join(name);
    std::fs::write(&path, text).expect("write inventory");
    path
}

/// Every file of every host, path -> (mode, content), but the lab's own logs.
pub fn snapshot(lab: &Lab) -> BTreeMap<String, (u32, Vec<u8>)> {
    fn walk(root: &Path, dir: &Path, host: &str, out: &mut BTreeMap<String, (u32, Vec<u8>)>) {
        use std::os::unix::fs::PermissionsExt;
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let rel = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            // The lab's logs, the shared /usr, devices, and the kernel's clock (the
            // machine's /proc/uptime, mounted in every host) are not the host's state.
            // Nor are the run's own lock (/run/k8sup.lock, whoever ran last) and its
            // shells' script directories (gone with the shells, just after the run).
            if rel.starts_with("var/log/k8sup-lab")
                || rel.starts_with("usr")
                || rel.starts_with("dev")
                || rel == "proc/uptime"
                || rel == "run/k8sup.lock"
                || rel.starts_with("tmp/k8sup-shell.")
            {
                continue;
            }
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            let key = format!("{host}:/{rel}");
            if meta.file_type().is_symlink() {
                let target = std::fs::read_link(&path).unwrap_or_default();
                out.insert(key, (0, target.to_string_lossy().as_bytes().to_vec()));
            } else if meta.is_dir() {
                out.insert(key, (meta.permissions().mode(), Vec::new()));
                walk(root, &path, host, out);
            } else {
                out.insert(
                    key,
                    (
                        meta.permissions().mode(),
                        std::fs::read(&path).unwrap_or_default(),
                    ),
                );
            }
        }
    }
    let mut out = BTreeMap::new();
    for h in lab.hosts() {
        walk(&h.root_dir(), &h.root_dir(), &h.name, &mut out);
    }
    out
}

/// A mixed lab of 1 master + 3 nodes: Ubuntu and Rocky, amd64 and arm64.
/// `{name}` is replaced by the lab's name.
pub const MIXED_LAB: &str = r#"
name = "{name}"
[[hosts]]
name = "master"
roles = ["master"]
distro = "ubuntu2204"
arch = "amd64"
[[hosts]]
name = "node-a"
distro = "ubuntu2204"
arch = "amd64"
[[hosts]]
name = "node-arm"
distro = "rocky9"
arch = "arm64"
[[hosts]]
name = "node-r"
distro = "rocky9"
arch = "amd64"
"#;

/// The spec of [`MIXED_LAB`] named `name`.
pub fn mixed_lab(name: &str) -> LabSpec {
    spec(&MIXED_LAB.replace("{name}", name))
}

/// What `command` printed on `host` (as root, over ssh).
pub fn on(lab: &Lab, host: &str, command: &str) -> String {
    let out = lab.ssh(host, command).expect("ssh runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A ledger as k8sup reads it, from the path of its file (`/var/lib/k8sup/state.json`
/// on a host, seen from outside): the file (none yet is an empty ledger) with the lines
/// of its journal (`state.json.journal`) replayed on it, in order. `None` when there is
/// neither.
pub fn ledger_at(file: &Path) -> Option<serde_json::Value> {
    let text = std::fs::read_to_string(file).ok();
    let journal = std::fs::read_to_string(format!("{}.journal", file.display())).ok();
    if text.is_none() && journal.as_deref().is_none_or(str::is_empty) {
        return None;
    }
    let mut ledger: serde_json::Value = match text {
        Some(text) => serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{}: not JSON: {e}", file.display())),
        None => serde_json::json!({"version": 1, "tasks": {}, "pending_handlers": []}),
    };
    for line in journal
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.is_empty())
    {
        let line: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("{}.journal: {line}: {e}", file.display()));
        let task = line["task"]
            .as_str()
            .expect("a journal line's task")
            .to_string();
        ledger["tasks"][task] = line["entry"].clone();
        ledger["pending_handlers"] = line["pending_handlers"].clone();
    }
    Some(ledger)
}

/// The ledger files of a host (seen from outside at `state`, its `state.json`):
/// the file and its journal, with what each holds (empty when absent).
pub fn ledger_files(state: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let journal = PathBuf::from(format!("{}.journal", state.display()));
    [state.to_path_buf(), journal]
        .into_iter()
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap_or_default();
            (p, bytes)
        })
        .collect()
}

/// A file of `host`, read from outside.
pub fn read(lab: &Lab, host: &str, path: &str) -> String {
    std::fs::read_to_string(lab.host(host).unwrap().path(path))
        .unwrap_or_else(|e| panic!("{host}:{path}: {e}"))
}

/// A second apply on a converged cluster changes nothing, and the drift check
/// (`plan --detailed-exitcode`) agrees: exit 0. Returns the second apply's output.
pub fn assert_converged(inv: &str, env: &[(&str, &str)]) -> Output {
    let second = k8sup(&["apply", "-i", inv], env);
    assert!(
        second.status.success(),
        "{}{}",
        stdout(&second),
        stderr(&second)
    );
    assert!(
        stdout(&second).contains("nothing to change"),
        "{}",
        stdout(&second)
    );
    let plan = k8sup(&["plan", "-i", inv, "--detailed-exitcode"], env);
    assert_eq!(plan.status.code(), Some(0), "{}", stdout(&plan));
    second
}

/// Runs `k8sup` with stdout a pipe whose reading end is already closed (every
/// write to it fails with EPIPE, as under `k8sup ... | head -0`), no stdin.
pub fn with_closed_stdout(args: &[&str], env: &[(&str, &str)]) -> Output {
    use std::os::fd::FromRawFd;
    let mut fds = [0; 2];
    // SAFETY: pipe(2) fills both descriptors, which are owned from here on.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0, "pipe");
    let (reader, writer) = unsafe {
        (
            std::os::fd::OwnedFd::from_raw_fd(fds[0]),
            std::os::fd::OwnedFd::from_raw_fd(fds[1]),
        )
    };
    drop(reader);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_k8sup"));
    cmd.args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("SSH_AUTH_SOCK")
        .stdin(std::process::Stdio::null())
        .stdout(writer)
        .stderr(std::process::Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("k8sup runs")
}

/// Runs `k8sup` on a pseudo-terminal (util-linux `script`), typing `answer`:
/// what a user at a terminal sees and does. Returns the exit status and all
/// the terminal showed.
pub fn on_terminal(args: &[&str], env: &[(&str, &str)], answer: &str) -> (Option<i32>, String) {
    use std::io::Write;
    let quote = |s: &str| format!("'{}'", s.replace('\'', "'\\''"));
    let mut line = quote(env!("CARGO_BIN_EXE_k8sup"));
    for a in args {
        line.push(' ');
        line.push_str(&quote(a));
    }
    let mut cmd = Command::new("script");
    cmd.args(["-qec", &line, "/dev/null"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("SSH_AUTH_SOCK")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("util-linux script runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(answer.as_bytes())
        .expect("type the answer");
    let out = child.wait_with_output().expect("script ends");
    let text = format!("{}{}", stdout(&out), stderr(&out)).replace("\r\n", "\n");
    (out.status.code(), text)
}

/// What the lab's cri-dockerd is: a script handing over to the emulator, which
/// serves the CRI socket while `cri-docker.service` runs.
pub const CRI_DOCKERD: &str =
    "#!/bin/sh\nexec /usr/libexec/k8sup-lab/k8sup-lab-emu cri-dockerd \"$@\"\n";

/// `cri-dockerd-0.3.15.<arch>.tgz` as released in `dir`: `cri-dockerd/cri-dockerd`
/// inside (made by tar(1), as the release is), [`CRI_DOCKERD`] plus `# <arch>`.
pub fn release_archive(dir: &Path, arch: &str) {
    use std::os::unix::fs::PermissionsExt;
    let tree = dir.join(format!("tree-{arch}"));
    let program = tree.join("cri-dockerd/cri-dockerd");
    std::fs::create_dir_all(program.parent().unwrap()).expect("dir");
    std::fs::write(&program, format!("{CRI_DOCKERD}# {arch}\n")).expect("program");
    std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let archive = dir.join(format!("cri-dockerd-0.3.15.{arch}.tgz"));
    let status = Command::new("tar")
        .arg("-czf")
        .arg(&archive)
        .arg("-C")
        .arg(&tree)
        .arg("cri-dockerd")
        .status()
        .expect("tar runs");
    assert!(status.success(), "tar failed");
}

/// `inventory` (a lab's inventory text) with `control_plane_endpoint` set to its
/// first master's API server: what k8sup took by default before the local
/// balancer, for the tests of several masters whose subject is not the endpoint.
pub fn endpoint_on_first_master(lab: &Lab, inventory: &str) -> String {
    let master = lab
        .hosts()
        .iter()
        .find(|h| h.spec.roles.iter().any(|r| r == "master"))
        .expect("the lab has a master");
    assert!(
        inventory.contains("[cluster]\n") && !inventory.contains("control_plane_endpoint"),
        "{inventory}"
    );
    inventory.replacen(
        "[cluster]\n",
        &format!(
            "[cluster]\ncontrol_plane_endpoint = \"{}:6443\"\n",
            master.address
        ),
        1,
    )
}

/// Every process on this machine (the lab's hosts are real processes here) with its
/// arguments and the root it runs in, read from the machine's real /proc.
pub fn processes() -> Vec<(i32, String, String)> {
    k8sup_lab::sys::processes()
        .into_iter()
        .filter_map(|(pid, _)| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let root = std::fs::read_link(format!("/proc/{pid}/root")).ok()?;
            Some((
                pid,
                String::from_utf8_lossy(&cmdline).replace('\0', " "),
                root.to_string_lossy().into_owned(),
            ))
        })
        .collect()
}

/// Kills every process running inside `host` whose arguments hold `needle`.
pub fn kill_in(lab: &Lab, host: &str, needle: &str) {
    let root = lab.host(host).unwrap().root_dir();
    for (pid, cmdline, r) in processes() {
        if std::path::Path::new(&r).starts_with(&root) && cmdline.contains(needle) {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
    }
}
