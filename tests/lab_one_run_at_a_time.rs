//! Unattended runs on the lab: no secret in any process's arguments while hosts join,
//! no secret file left behind by a run killed half way, and one run at a time (a
//! second run refuses, also while a command orphaned by a killed controller runs).

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{
    endpoint_on_first_master, k8sup, kill_in, lab, ledger_files, processes, spec, stderr, stdout,
    write_inventory,
};
use k8sup_lab::Lab;

/// Samples every process's arguments until stopped.
struct Sampler {
    seen: Arc<Mutex<BTreeSet<(String, String)>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Sampler {
    fn start() -> Sampler {
        let seen = Arc::new(Mutex::new(BTreeSet::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (seen, stop) = (seen.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let now = processes();
                    let mut seen = seen.lock().unwrap();
                    for (_, cmdline, root) in now {
                        seen.insert((root, cmdline));
                    }
                    drop(seen);
                    std::thread::sleep(Duration::from_millis(2));
                }
            })
        };
        Sampler {
            seen,
            stop,
            thread: Some(thread),
        }
    }

    /// Whether a process rooted in `root` with `needle` in its arguments was seen.
    fn saw(&self, root: &Path, needle: &str) -> bool {
        let root = root.to_string_lossy();
        self.seen
            .lock()
            .unwrap()
            .iter()
            .any(|(r, c)| r.starts_with(root.as_ref()) && c.contains(needle))
    }

    fn finish(mut self) -> BTreeSet<(String, String)> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
        std::mem::take(&mut *self.seen.lock().unwrap())
    }
}

fn spawn_apply(inv: &str, env: &[(&str, &str)], log: &Path) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_k8sup"));
    cmd.args(["apply", "-i", inv])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("K8SUP_BECOME_PASSWORD")
        .env_remove("SSH_AUTH_SOCK")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(log).unwrap())
        .stderr(std::fs::File::create(log.with_extension("err")).unwrap());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.spawn().expect("k8sup starts")
}

/// Files of `host` under `dir` whose name starts with `prefix`.
fn files_named(lab: &Lab, host: &str, dir: &str, prefix: &str) -> Vec<String> {
    common::sorted_names(&lab.host(host).unwrap().path(dir))
        .into_iter()
        .filter(|n| n.starts_with(prefix))
        .collect()
}

/// Tools a script could hand a secret to as an argument. A process that lives a
/// millisecond can slip between two samples of the process table: each of these is
/// wrapped, on the joining hosts, by a script that logs its arguments first.
const LOGGED_TOOLS: &[&str] = &[
    "sed", "awk", "gawk", "grep", "tee", "base64", "printf", "echo", "env", "xargs", "cp",
    "install", "cat", "head", "tr", "cut",
];

/// Where the wrappers log, inside each host.
const EXEC_LOG: &str = "/var/log/k8sup-test-exec.log";

fn log_tool_arguments(lab: &Lab, host: &str) {
    use std::os::unix::fs::PermissionsExt;
    let bin = lab.host(host).unwrap().path("/usr/local/bin");
    std::fs::create_dir_all(&bin).unwrap();
    for tool in LOGGED_TOOLS {
        if !Path::new("/usr/bin").join(tool).exists() {
            continue;
        }
        let wrapper = bin.join(tool);
        std::fs::write(
            &wrapper,
            format!(
                "#!/bin/sh\nprintf '%s\\n' \"{tool} $*\" >> {EXEC_LOG}\nexec /usr/bin/{tool} \"$@\"\n"
            ),
        )
        .unwrap();
        std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
}

fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn joins_show_no_secret_and_a_killed_run_leaves_none_behind_nor_runs_beside_its_orphan() {
    let Some(lab) = lab(&spec(
        r#"
name = "argv"
[[hosts]]
name = "cp1"
roles = ["master"]
[[hosts]]
name = "cp2"
roles = ["master"]
[[hosts]]
name = "w1"
"#,
    )) else {
        return;
    };
    let cluster = "[cluster]\nname = \"argv\"\nkubernetes_version = \"1.31\"\n";
    let inv = write_inventory(
        &lab,
        "inventory.toml",
        &endpoint_on_first_master(&lab, &lab.inventory_toml(cluster)),
    );
    let inv = inv.to_str().unwrap();
    let state = lab.dir().join("k8sup-state");
    let env = [("K8SUP_STATE_DIR", state.to_str().unwrap())];
    let root = |h: &str| lab.host(h).unwrap().root_dir();

    for h in ["cp2", "w1"] {
        log_tool_arguments(&lab, h);
    }
    // `kubeadm join` hangs on the joining hosts once their apply started (facts,
    // gathered before, ask kubeadm its version; images are pulled ahead with kubeadm
    // too): the join stays in the process table.
    let sampler = Sampler::start();
    let log = lab.dir().join("first-apply.out");
    let mut first = spawn_apply(inv, &env, &log);
    let mut faulted = BTreeSet::new();
    wait_until(
        "both hosts run kubeadm join",
        Duration::from_secs(600),
        || {
            if let Ok(Some(status)) = first.try_wait() {
                panic!(
                    "the apply ended ({status}) before the joins:\n{}{}",
                    std::fs::read_to_string(&log).unwrap_or_default(),
                    std::fs::read_to_string(log.with_extension("err")).unwrap_or_default()
                );
            }
            let said = std::fs::read_to_string(&log).unwrap_or_default();
            for h in ["cp2", "w1"] {
                if !faulted.contains(h) && said.contains(&format!("{h}: changed: ")) {
                    lab.faults(h)
                        .unwrap()
                        .hang_subcommand("kubeadm", "join")
                        .unwrap();
                    faulted.insert(h);
                }
            }
            sampler.saw(&root("cp2"), "kubeadm join") && sampler.saw(&root("w1"), "kubeadm join")
        },
    );
    std::thread::sleep(Duration::from_secs(1));

    // The controller dies half way; w1 goes down hard with everything on it, and
    // cp2's join goes on, orphaned.
    first.kill().unwrap();
    first.wait().unwrap();
    lab.faults("w1").unwrap().kill_sshd().unwrap();
    assert!(
        !files_named(&lab, "w1", "/etc/k8sup", "join.").is_empty(),
        "the killed join left its credentials file (the case the next run must clean up)"
    );
    lab.faults("w1").unwrap().clear().unwrap();
    lab.faults("w1").unwrap().start_sshd().unwrap();

    // While cp2's orphaned kubeadm runs, a second run (from another controller: its
    // own state directory) refuses, naming the host, and changes nothing.
    let other_state = lab.dir().join("other-controller");
    let cp1_ledger = ledger_files(&lab.host("cp1").unwrap().path("/var/lib/k8sup/state.json"));
    let refused = k8sup(
        &["apply", "-i", inv],
        &[("K8SUP_STATE_DIR", other_state.to_str().unwrap())],
    );
    assert_eq!(
        refused.status.code(),
        Some(1),
        "{}{}",
        stdout(&refused),
        stderr(&refused)
    );
    let said = stderr(&refused);
    assert!(
        said.lines()
            .any(|l| l.starts_with("cp2") && l.contains("locked by run")),
        "{said}"
    );
    assert!(said.contains("nothing was changed"), "{said}");
    assert_eq!(
        ledger_files(&lab.host("cp1").unwrap().path("/var/lib/k8sup/state.json")),
        cp1_ledger,
        "the refused run changed cp1's ledger"
    );
    assert!(
        !files_named(&lab, "w1", "/etc/k8sup", "join.").is_empty(),
        "the refused run changed w1"
    );
    // Reset refuses as well, and touches no host.
    let reset = k8sup(&["reset", "-i", inv, "--yes"], &env);
    assert_eq!(
        reset.status.code(),
        Some(1),
        "{}{}",
        stdout(&reset),
        stderr(&reset)
    );
    assert!(
        stderr(&reset).contains("locked by run"),
        "{}",
        stderr(&reset)
    );
    assert!(lab
        .host("cp1")
        .unwrap()
        .path("/etc/kubernetes/admin.conf")
        .exists());

    // The orphan ends (its join removes its own file); then the next run converges,
    // removing what the killed join left on w1.
    lab.faults("cp2").unwrap().clear().unwrap();
    kill_in(&lab, "cp2", "kubeadm join");
    let out = k8sup(&["apply", "-i", inv], &env);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    common::assert_converged(inv, &env);
    for h in ["cp1", "cp2", "w1"] {
        assert_eq!(
            files_named(&lab, h, "/etc/k8sup", "join."),
            Vec::<String>::new(),
            "{h} keeps join credentials"
        );
        let left = || files_named(&lab, h, "/tmp", "k8sup-shell.");
        // Shells end just after the run; a loaded machine may take a while.
        let deadline = Instant::now() + Duration::from_secs(30);
        while !left().is_empty() {
            if Instant::now() > deadline {
                let owners: Vec<String> = left()
                    .iter()
                    .map(|d| {
                        let pid = d.split('.').nth(1).unwrap_or_default();
                        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
                            .unwrap_or_default();
                        let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                        format!(
                            "{d}: {stat} {}",
                            String::from_utf8_lossy(&cmd)
                                .chars()
                                .take(80)
                                .collect::<String>()
                        )
                    })
                    .collect();
                panic!("{h} keeps script directories: {owners:#?}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    // No token, CA hash or certificate key was ever in a process's arguments.
    let seen = sampler.finish();
    let cluster_state: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(lab.cluster_dir().join("state.json")).unwrap(),
    )
    .unwrap();
    let mut secrets: Vec<String> = cluster_state["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["token"].as_str())
        .flat_map(|t| [t.to_string(), t.split('.').nth(1).unwrap_or(t).to_string()])
        .collect();
    let hash = cluster_state["ca_hash"].as_str().unwrap();
    secrets.push(hash.trim_start_matches("sha256:").to_string());
    secrets.push(
        cluster_state["certificate_key"]
            .as_str()
            .expect("a certificate key was uploaded")
            .to_string(),
    );
    assert!(secrets.len() >= 4, "{secrets:?}");
    let mut logged = String::new();
    for h in ["cp2", "w1"] {
        logged.push_str(
            &std::fs::read_to_string(lab.host(h).unwrap().path(EXEC_LOG)).unwrap_or_default(),
        );
    }
    assert!(!logged.is_empty(), "the wrappers logged nothing: {logged}");
    for secret in &secrets {
        if let Some(line) = logged.lines().find(|l| l.contains(secret.as_str())) {
            panic!("a secret was in a program's arguments: {line}");
        }
    }
    for secret in &secrets {
        let leaks: Vec<&String> = seen
            .iter()
            .filter(|(_, c)| c.contains(secret.as_str()))
            .map(|(_, c)| c)
            .collect();
        assert!(
            leaks.is_empty(),
            "a secret was in a process's arguments ({} processes), e.g.: {}",
            leaks.len(),
            leaks[0].chars().take(400).collect::<String>()
        );
    }
}

/// Two applies started at once, six times over a fresh cluster, from one controller
/// (odd trials: the cluster's lock decides) or from two (even trials, each with its
/// own state directory: the hosts' locks decide): one converges, the other says who
/// holds what and exits 1; kubeadm init and join ran once per trial, and the ledgers
/// are complete (the next apply changes nothing).
#[test]
fn two_applies_at_once_one_converges_the_other_refuses() {
    let Some(lab) = lab(&spec(
        r#"
name = "twice"
[[hosts]]
name = "m1"
roles = ["master"]
[[hosts]]
name = "n1"
"#,
    )) else {
        return;
    };
    let cluster = "[cluster]\nname = \"twice\"\nkubernetes_version = \"1.31\"\n";
    let inv = write_inventory(
        &lab,
        "inventory.toml",
        &endpoint_on_first_master(&lab, &lab.inventory_toml(cluster)),
    );
    let inv = inv.to_str().unwrap();
    let state = lab.dir().join("k8sup-state");
    let env = [("K8SUP_STATE_DIR", state.to_str().unwrap())];
    let count = |host: &str, sub: &str| {
        lab.host(host)
            .unwrap()
            .commands()
            .unwrap()
            .iter()
            .filter(|c| c.argv.first().is_some_and(|a| a.ends_with("kubeadm")))
            .filter(|c| c.argv.get(1).map(String::as_str) == Some(sub))
            .count()
    };
    for trial in 1..=6 {
        if trial > 1 {
            let reset = k8sup(&["reset", "-i", inv, "--yes"], &env);
            assert!(
                reset.status.success(),
                "{}{}",
                stdout(&reset),
                stderr(&reset)
            );
        }
        let (inits, joins) = (count("m1", "init"), count("n1", "join"));
        let dir = lab.dir().join(format!("trial-{trial}"));
        std::fs::create_dir_all(&dir).unwrap();
        let mut a = spawn_apply(inv, &env, &dir.join("a.out"));
        let other = lab.dir().join("other-controller");
        let other_env = [("K8SUP_STATE_DIR", other.to_str().unwrap())];
        let b_env = if trial % 2 == 0 { &other_env } else { &env };
        let mut b = spawn_apply(inv, b_env, &dir.join("b.out"));
        let statuses = [a.wait().unwrap().code(), b.wait().unwrap().code()];
        let said = |name: &str| {
            format!(
                "{}{}",
                std::fs::read_to_string(dir.join(format!("{name}.out"))).unwrap_or_default(),
                std::fs::read_to_string(dir.join(format!("{name}.err"))).unwrap_or_default()
            )
        };
        let (winner, loser) = match statuses {
            [Some(0), Some(1)] => ("a", "b"),
            [Some(1), Some(0)] => ("b", "a"),
            other => panic!(
                "trial {trial}: exits {other:?}\na: {}\nb: {}",
                said("a"),
                said("b")
            ),
        };
        let refusal = if trial % 2 == 0 {
            "m1  FAIL  locked: locked by run"
        } else {
            "cluster twice is locked by run"
        };
        assert!(
            said(loser).contains(refusal),
            "trial {trial}: {}",
            said(loser)
        );
        assert!(
            said(winner).contains("changed on"),
            "trial {trial}: {}",
            said(winner)
        );
        assert_eq!(
            count("m1", "init"),
            inits + 1,
            "trial {trial}: kubeadm init runs"
        );
        assert_eq!(
            count("n1", "join"),
            joins + 1,
            "trial {trial}: kubeadm join runs"
        );
        common::assert_converged(inv, &env);
    }
}
