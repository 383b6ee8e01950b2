//! The engine on the lab, through `k8sup plan` and `k8sup apply`, with a
//! playbook that touches every task kind: a plan changes nothing, apply
//! converges, a second apply is a no-op of one round trip per host, drift is
//! shown and repaired, a saved plan is applied as approved or refused after
//! drift, secrets never leave the hosts, a failing host fails alone, and a
//! controller killed mid-run is resumed.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::{k8sup, lab, ledger_at, snapshot, spec, stderr, stdout, write_inventory};
use k8sup_lab::Lab;

const PLAYBOOK: &str = "tests/playbooks/every-kind.toml";
const TEMPLATES: &str = "tests/templates";

/// Runs `k8sup <command> -i inv` with the test playbook, keeping history in the lab.
fn run(lab: &Lab, inv: &Path, command: &[&str]) -> Output {
    let mut args: Vec<&str> = command.to_vec();
    let inv = inv.to_str().unwrap();
    args.extend(["-i", inv, "--playbook", PLAYBOOK, "--templates", TEMPLATES]);
    let state = lab.dir().join("k8sup-state");
    k8sup(&args, &[("K8SUP_STATE_DIR", state.to_str().unwrap())])
}

fn report(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn all_files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(all_files_under(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[test]
fn plan_apply_noop_drift_and_saved_plans() {
    let Some(lab) = lab(&spec(
        r#"
name = "engine"
[[hosts]]
name = "master"
roles = ["master"]
distro = "ubuntu2204"
[[hosts]]
name = "arm"
distro = "rocky9"
arch = "arm64"
[[hosts]]
name = "swappy"
distro = "debian12"
swap_mib = 512
"#,
    )) else {
        return;
    };
    // One host comes up with a hostname that is not its inventory name.
    let master = lab.host("master").unwrap();
    std::fs::write(master.path("/proc/sys/kernel/hostname"), "localhost\n").unwrap();
    std::fs::write(master.path("/etc/hostname"), "localhost\n").unwrap();
    let inv = write_inventory(&lab, "engine.toml", &lab.inventory_toml(""));
    let mut outputs: Vec<Output> = Vec::new();

    // A plan shows every change and writes nothing, not even a temp file.
    let before = snapshot(&lab);
    let out = run(&lab, &inv, &["plan", "--detailed-exitcode"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let text = stdout(&out);
    for needle in [
        "~ hostname [hostname]",
        "~ app config [file]: /etc/app/app.conf does not exist",
        "+cluster = engine",
        "~ swap off at boot [line]",
        "~ motd line [line]",
        "~ br_netfilter [module]",
        "~ kernel settings [sysctl]",
        "~ app service [service]",
        "~ count applies [command]: /root/prepared does not exist",
        "$ echo 'joined with <token from master>' > /root/joined",
        "~ restart app [service]: notified by app config",
    ] {
        assert!(text.contains(needle), "plan lacks {needle:?}:\n{text}");
    }
    assert!(
        text.contains("~ arm marker [command]"),
        "the arm64 host runs the arm task"
    );
    assert_eq!(
        text.matches("~ arm marker").count(),
        1,
        "only the arm64 host runs it"
    );
    outputs.push(out);
    assert!(before == snapshot(&lab), "plan changed a host");

    // Apply converges every host.
    let r1 = lab.dir().join("apply1.json");
    let out = run(&lab, &inv, &["apply", "--report", r1.to_str().unwrap()]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    outputs.push(out);
    let arm = lab.host("arm").unwrap();
    let swappy = lab.host("swappy").unwrap();
    let conf = std::fs::read_to_string(arm.path("/etc/app/app.conf")).unwrap();
    assert!(conf.contains("for arm (arm64, rocky 9"), "{conf}");
    assert!(
        conf.contains(&format!("node_ip = {}", arm.address)),
        "{conf}"
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(arm.path("/etc/app/app.conf"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o640);
    let fstab = std::fs::read_to_string(swappy.path("/etc/fstab")).unwrap();
    assert!(
        fstab
            .lines()
            .any(|l| l.starts_with('#') && l.contains("swap")),
        "{fstab}"
    );
    assert!(
        !fstab
            .lines()
            .any(|l| !l.starts_with('#') && l.contains(" swap ") || l.starts_with("/swap")),
        "{fstab}"
    );
    assert_eq!(
        std::fs::read_to_string(master.path("/etc/hostname"))
            .unwrap()
            .trim(),
        "master"
    );
    assert_eq!(
        std::fs::read_to_string(arm.path("/etc/modules-load.d/br_netfilter.conf"))
            .unwrap()
            .trim(),
        "br_netfilter"
    );
    assert_eq!(
        std::fs::read_to_string(arm.path("/proc/sys/net/ipv4/ip_forward"))
            .unwrap()
            .trim(),
        "1"
    );
    // The unit's symlink points inside the host: read the link, do not follow it.
    let wants = arm.path("/etc/systemd/system/multi-user.target.wants/app.service");
    assert_eq!(
        std::fs::read_link(&wants).unwrap(),
        Path::new("/etc/systemd/system/app.service")
    );
    assert!(arm.path("/root/arm64").exists() && !swappy.path("/root/arm64").exists());
    let token = std::fs::read_to_string(master.path("/root/token")).unwrap();
    assert_eq!(token.len(), 32, "{token:?}");
    for node in [arm, swappy] {
        let joined = std::fs::read_to_string(node.path("/root/joined")).unwrap();
        assert_eq!(joined.trim(), format!("joined with {token}"));
    }
    let first = report(&r1);
    assert!(first["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .all(|h| h["changed"].as_u64().unwrap() > 0));

    // A second apply changes nothing and runs no apply step: one round trip per host.
    let logs_before: Vec<usize> = lab
        .hosts()
        .iter()
        .map(|h| h.commands().unwrap().len())
        .collect();
    let r2 = lab.dir().join("apply2.json");
    let out = run(&lab, &inv, &["apply", "--report", r2.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("nothing to change"),
        "{}",
        stdout(&out)
    );
    outputs.push(out);
    let second = report(&r2);
    for h in second["hosts"].as_array().unwrap() {
        assert_eq!(h["changed"], 0, "{h:#}");
        assert_eq!(h["round_trips"], 1, "{h:#}");
    }
    for (h, before) in lab.hosts().iter().zip(logs_before) {
        let commands = h.commands().unwrap();
        for c in &commands[before..] {
            let line = format!("{c:?}");
            for mutating in ["-w", "enable", "start", "set-hostname", "swapoff"] {
                assert!(
                    !line.contains(&format!("\"{mutating}\"")),
                    "{}: a no-op apply ran {line}",
                    h.name
                );
            }
        }
    }
    let out = run(&lab, &inv, &["plan", "--detailed-exitcode"]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    outputs.push(out);

    // An out-of-band edit shows as drift with its diff, and apply repairs it.
    let conf_path = arm.path("/etc/app/app.conf");
    std::fs::write(
        &conf_path,
        conf.replace("dns = 10.96.0.10", "dns = 8.8.8.8"),
    )
    .unwrap();
    let out = run(&lab, &inv, &["plan"]);
    let text = stdout(&out);
    assert!(text.contains("! app config [file] (drift"), "{text}");
    assert!(
        text.contains("-dns = 8.8.8.8") && text.contains("+dns = 10.96.0.10"),
        "{text}"
    );
    outputs.push(out);
    let out = run(&lab, &inv, &["apply"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("arm: repaired drift: app config"),
        "{}",
        stdout(&out)
    );
    outputs.push(out);
    assert_eq!(std::fs::read_to_string(&conf_path).unwrap(), conf);

    // A saved plan is applied as approved...
    std::fs::write(&conf_path, "edited\n").unwrap();
    let saved = lab.dir().join("plan.json");
    let out = run(&lab, &inv, &["plan", "-o", saved.to_str().unwrap()]);
    outputs.push(out);
    let out = run(&lab, &inv, &["apply", "--plan", saved.to_str().unwrap()]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    outputs.push(out);
    assert_eq!(std::fs::read_to_string(&conf_path).unwrap(), conf);
    // ...and refused when the host changed after the plan was made.
    std::fs::write(&conf_path, "edited again\n").unwrap();
    let out = run(&lab, &inv, &["plan", "-o", saved.to_str().unwrap()]);
    outputs.push(out);
    std::fs::write(&conf_path, "edited a third time\n").unwrap();
    let out = run(&lab, &inv, &["apply", "--plan", saved.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let said = format!("{}{}", stdout(&out), stderr(&out));
    assert!(said.contains("arm"), "the refusal names the host: {said}");
    outputs.push(out);
    assert_eq!(
        std::fs::read_to_string(&conf_path).unwrap(),
        "edited a third time\n"
    );

    // The secret (the token) is in no output, report, plan, history or state file.
    let mut places: Vec<(String, String)> = outputs
        .iter()
        .map(|o| ("output".to_string(), format!("{}{}", stdout(o), stderr(o))))
        .collect();
    let mut files = all_files_under(&lab.dir().join("k8sup-state"));
    files.extend([r1, r2, saved]);
    for h in lab.hosts() {
        files.push(h.path("/var/lib/k8sup/state.json"));
        files.push(h.path("/var/lib/k8sup/state.json.journal"));
    }
    assert!(files.len() > 5);
    for f in files {
        places.push((
            f.display().to_string(),
            std::fs::read_to_string(&f).unwrap_or_default(),
        ));
    }
    for (place, text) in places {
        assert!(!text.contains(&token), "the secret leaked into {place}");
    }

    // The history lists the runs.
    let state = lab.dir().join("k8sup-state");
    let out = k8sup(
        &["history", "-i", inv.to_str().unwrap(), "-v"],
        &[("K8SUP_STATE_DIR", state.to_str().unwrap())],
    );
    let text = stdout(&out);
    assert!(
        text.contains("app config"),
        "the slowest tasks are listed: {text}"
    );
    assert!(
        text.lines().filter(|l| l.contains(" ok")).count() >= 4,
        "{text}"
    );
}

#[test]
fn a_failing_host_fails_alone() {
    let Some(lab) = lab(&spec(
        "name = \"failing\"\n[[hosts]]\nname = \"master\"\nroles = [\"master\"]\n[[hosts]]\nname = \"bad\"\n[[hosts]]\nname = \"good\"\n",
    )) else {
        return;
    };
    // apt-get fails on "bad": its package task fails after the task before it changed.
    lab.faults("bad")
        .unwrap()
        .fail_command("apt-get", 100)
        .unwrap();
    let inv = write_inventory(&lab, "failing.toml", &lab.inventory_toml(""));
    let out = run(&lab, &inv, &["apply"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let said = format!("{}{}", stdout(&out), stderr(&out));
    assert!(
        said.contains("FAILED bad: task \"prepare/tools\""),
        "{said}"
    );
    assert!(said.contains("  | "), "the stderr tail is shown: {said}");
    assert!(said.contains("FAILED on bad"), "{said}");
    assert!(
        lab.host("good").unwrap().path("/root/joined").exists(),
        "{said}"
    );
    assert!(lab.host("master").unwrap().path("/root/token").exists());
    assert!(!lab.host("bad").unwrap().path("/root/joined").exists());

    // The failure is in the host's ledger as valid JSON, and once the cause is
    // gone the next apply finishes the host.
    let bad = lab.host("bad").unwrap();
    let ledger = ledger_at(&bad.path("/var/lib/k8sup/state.json"))
        .expect("the ledger is valid JSON after a failed task");
    assert_eq!(
        ledger["tasks"]["prepare/tools"]["result"], "failed",
        "{ledger:#}"
    );
    lab.faults("bad").unwrap().clear().unwrap();
    let out = run(&lab, &inv, &["apply"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(bad.path("/root/joined").exists());
}

#[test]
fn a_killed_controller_is_resumed_without_redoing_work() {
    let Some(lab) = lab(&spec(
        "name = \"killed\"\n[[hosts]]\nname = \"master\"\nroles = [\"master\"]\n[[hosts]]\nname = \"node\"\ncount = 9\n",
    )) else {
        return;
    };
    let inv = write_inventory(&lab, "killed.toml", &lab.inventory_toml(""));
    // Every emulated command takes 150 ms, so the run is long enough to be cut.
    for h in lab.hosts() {
        lab.faults(&h.name)
            .unwrap()
            .slow(std::time::Duration::from_millis(150))
            .unwrap();
    }
    let state = lab.dir().join("k8sup-state");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_k8sup"))
        .args([
            "apply",
            "-i",
            inv.to_str().unwrap(),
            "--playbook",
            PLAYBOOK,
            "--templates",
            TEMPLATES,
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("K8SUP_STATE_DIR", &state)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait until some host has recorded a change (in the ledger's journal, until its
    // batch ends), then SIGKILL the controller.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !lab
        .hosts()
        .iter()
        .any(|h| h.path("/var/lib/k8sup/state.json.journal").exists())
    {
        assert!(std::time::Instant::now() < deadline, "apply never started");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    std::thread::sleep(std::time::Duration::from_millis(700));
    child.kill().unwrap();
    let _ = child.wait();
    let cut_short = lab
        .hosts()
        .iter()
        .filter(|h| !h.path("/root/joined").exists() && h.name != "master")
        .count();
    assert!(cut_short > 0, "the kill came too late to test anything");
    for h in lab.hosts() {
        lab.faults(&h.name).unwrap().clear().unwrap();
    }

    let out = run(&lab, &inv, &["apply"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    for h in lab.hosts() {
        // The guarded command ran exactly once over both runs.
        let applies = std::fs::read_to_string(h.path("/root/applies")).unwrap();
        assert_eq!(applies.lines().count(), 1, "{}: {applies:?}", h.name);
        // Files are whole and no temp file is left beside them.
        let conf = std::fs::read_to_string(h.path("/etc/app/app.conf")).unwrap();
        assert!(
            conf.ends_with(&format!("node_ip = {}\n", h.address)),
            "{}: {conf:?}",
            h.name
        );
        let left: Vec<_> = std::fs::read_dir(h.path("/etc/app"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(left.len(), 1, "{}: {left:?}", h.name);
        let state = ledger_at(&h.path("/var/lib/k8sup/state.json")).expect("a ledger");
        assert!(state["tasks"].as_object().is_some_and(|t| !t.is_empty()));
    }
    let out = run(&lab, &inv, &["plan", "--detailed-exitcode"]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
}
