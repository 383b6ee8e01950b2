//! An unattended run on the lab, as a careful operator tries it: a saved plan
//! is applied whole or not at all; apply on a terminal shows the plan and asks,
//! reset asks and needs `--yes` without a terminal; a closed stdout never stops
//! a run; history and reports stay true when k8sup is killed, a connection dies
//! mid-batch or a host is unreachable.

mod common;

use std::path::Path;
use std::process::Output;

use common::{
    k8sup, lab, ledger_at, on_terminal, snapshot, spec, stderr, stdout, with_closed_stdout,
    write_inventory,
};
use k8sup_lab::Lab;

const PLAYBOOK: &str = "tests/playbooks/every-kind.toml";
const TEMPLATES: &str = "tests/templates";

const THREE_HOSTS: &str = r#"
name = "{name}"
[[hosts]]
name = "master"
roles = ["master"]
[[hosts]]
name = "node-a"
[[hosts]]
name = "node-r"
distro = "rocky9"
"#;

fn three_hosts(name: &str) -> Option<Lab> {
    lab(&spec(&THREE_HOSTS.replace("{name}", name)))
}

/// `k8sup <command> -i inv` with the test playbook, history kept in the lab.
fn args<'a>(inv: &'a str, command: &[&'a str]) -> Vec<&'a str> {
    let mut args = command.to_vec();
    args.extend(["-i", inv, "--playbook", PLAYBOOK, "--templates", TEMPLATES]);
    args
}

fn state_env(lab: &Lab) -> [(&'static str, String); 1] {
    [(
        "K8SUP_STATE_DIR",
        lab.dir().join("k8sup-state").display().to_string(),
    )]
}

fn run(lab: &Lab, inv: &str, command: &[&str]) -> Output {
    let [(k, v)] = state_env(lab);
    k8sup(&args(inv, command), &[(k, &v)])
}

fn said(out: &Output) -> String {
    format!("{}{}", stdout(out), stderr(out))
}

/// The history as `k8sup history --json` gives it, newest first.
fn history(lab: &Lab, inv: &str) -> Vec<serde_json::Value> {
    let [(k, v)] = state_env(lab);
    let out = k8sup(
        &["history", "-i", inv, "--json", "--last", "100"],
        &[(k, &v)],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_slice::<serde_json::Value>(&out.stdout)
        .expect("history JSON")
        .as_array()
        .expect("a list")
        .clone()
}

fn json_file(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("report")).expect("JSON")
}

/// Every emulated command each host ran so far: connecting alone runs some.
fn command_counts(lab: &Lab) -> Vec<usize> {
    lab.hosts()
        .iter()
        .map(|h| h.commands().map(|c| c.len()).unwrap_or(0))
        .collect()
}

/// One way to make a saved plan stale.
type Tamper<'a> = Box<dyn Fn() + 'a>;

#[test]
fn a_saved_plan_is_applied_whole_or_not_at_all() {
    let Some(lab) = three_hosts("plans") else {
        return;
    };
    let inv_path = write_inventory(&lab, "plans.toml", &lab.inventory_toml(""));
    let inv = inv_path.to_str().unwrap();
    let saved = lab.dir().join("plan.json");
    let saved_str = saved.to_str().unwrap();
    let out = run(&lab, inv, &["plan", "-o", saved_str]);
    assert!(out.status.success(), "{}", said(&out));
    let pristine = std::fs::read_to_string(&saved).unwrap();

    // Each way a saved plan can be stale refuses the whole apply: no host changed.
    let before = snapshot(&lab);
    let motd = lab.host("node-r").unwrap().path("/etc/motd");
    let tampered: [(&str, Tamper, &str); 5] = [
        (
            "a host changed since",
            Box::new(|| std::fs::write(&motd, "changed by hand\n").unwrap()),
            "node-r",
        ),
        (
            "an edited fingerprint",
            Box::new(|| {
                let mut plan: serde_json::Value = serde_json::from_str(&pristine).unwrap();
                plan["hosts"][1]["tasks"][4]["fingerprint"] = "0".repeat(64).into();
                std::fs::write(&saved, plan.to_string()).unwrap();
            }),
            "node-a, on node-a, the inputs of task prepare/motd-line changed since the plan",
        ),
        (
            "format 99",
            Box::new(|| {
                std::fs::write(&saved, pristine.replace("\"format\": 2", "\"format\": 99")).unwrap()
            }),
            "the plan is of format 99",
        ),
        (
            "another playbook",
            Box::new(|| {
                std::fs::write(
                    &saved,
                    pristine.replace("tests/playbooks/every-kind.toml", "other.toml"),
                )
                .unwrap()
            }),
            "the plan was made with the playbook \"other.toml\"",
        ),
        (
            "an inventory edited after the plan",
            Box::new(|| {
                let text = std::fs::read_to_string(&inv_path).unwrap();
                std::fs::write(&inv_path, format!("{text}# edited\n")).unwrap();
            }),
            "the inventory changed since the plan was made",
        ),
    ];
    for (what, tamper, named) in tampered {
        std::fs::write(&saved, &pristine).unwrap();
        let inventory = std::fs::read_to_string(&inv_path).unwrap();
        let motd_text = std::fs::read(&motd).ok();
        tamper();
        let before_this = snapshot(&lab);
        let report = lab.dir().join("refused.json");
        let out = run(
            &lab,
            inv,
            &[
                "apply",
                "--plan",
                saved_str,
                "--report",
                report.to_str().unwrap(),
            ],
        );
        assert_eq!(out.status.code(), Some(1), "{what}: {}", said(&out));
        let text = said(&out);
        let named = named.split(", ").collect::<Vec<_>>();
        for n in named {
            assert!(text.contains(n), "{what}: {n:?} not in:\n{text}");
        }
        assert!(
            before_this == snapshot(&lab),
            "{what}: a refused apply changed a host:\n{text}"
        );
        // The report says so, host by host.
        let report = json_file(&report);
        assert!(
            report["hosts"]
                .as_array()
                .unwrap()
                .iter()
                .all(|h| h["outcome"] != "ok" && h["changed"] == 0),
            "{what}: {report:#}"
        );
        std::fs::write(&inv_path, inventory).unwrap();
        match motd_text {
            Some(text) => std::fs::write(&motd, text).unwrap(),
            None => std::fs::remove_file(&motd).unwrap(),
        }
    }
    assert!(before == snapshot(&lab));

    // The stale host named its task.
    std::fs::write(&saved, &pristine).unwrap();
    std::fs::write(&motd, "changed by hand\n").unwrap();
    let out = run(&lab, inv, &["apply", "--plan", saved_str]);
    assert!(
        said(&out).contains("on node-r, it drifted since the plan: task prepare/motd-line"),
        "{}",
        said(&out)
    );

    // A fresh plan is applied as made.
    let out = run(&lab, inv, &["plan", "-o", saved_str]);
    assert!(out.status.success(), "{}", said(&out));
    let out = run(&lab, inv, &["apply", "--plan", saved_str]);
    assert!(out.status.success(), "{}", said(&out));
    let out = run(&lab, inv, &["plan", "--detailed-exitcode"]);
    assert_eq!(out.status.code(), Some(0), "{}", said(&out));
}

#[test]
fn apply_and_reset_ask_on_a_terminal_and_reset_needs_yes_without_one() {
    let Some(lab) = three_hosts("asking") else {
        return;
    };
    let inv_path = write_inventory(&lab, "asking.toml", &lab.inventory_toml(""));
    let inv = inv_path.to_str().unwrap();
    let [(k, v)] = state_env(&lab);
    let env = [(k, v.as_str())];
    let before = snapshot(&lab);

    // apply on a terminal shows the plan, then asks; anything but "yes" stops it.
    for answer in ["no\n", "y\n", ""] {
        let (status, text) = on_terminal(&args(inv, &["apply"]), &env, answer);
        assert_eq!(status, Some(1), "{answer:?}: {text}");
        assert!(
            text.contains("~ motd line [line]"),
            "the plan is shown: {text}"
        );
        assert!(
            text.contains("Apply these changes to 3 hosts? Only 'yes' will be accepted"),
            "{text}"
        );
        assert!(text.contains("not confirmed"), "{text}");
        assert!(before == snapshot(&lab), "{answer:?}: a host changed");
    }

    // reset: on a terminal it asks for the cluster name; without one it needs --yes.
    let (status, text) = on_terminal(&["reset", "-i", inv], &env, "asking-not\n");
    assert_eq!(status, Some(1), "{text}");
    assert!(text.contains("Type the cluster name to go on"), "{text}");
    let out = k8sup(&["reset", "-i", inv], &env);
    assert_eq!(out.status.code(), Some(1), "{}", said(&out));
    assert!(
        stderr(&out).contains("stdin is not a terminal") && stderr(&out).contains("--yes"),
        "{}",
        stderr(&out)
    );
    assert!(
        before == snapshot(&lab),
        "an unconfirmed reset changed a host"
    );

    // "yes" applies exactly what was shown.
    let (status, text) = on_terminal(&args(inv, &["apply"]), &env, "yes\n");
    assert_eq!(status, Some(0), "{text}");
    let out = run(&lab, inv, &["plan", "--detailed-exitcode"]);
    assert_eq!(out.status.code(), Some(0), "{}", said(&out));

    // --yes (or -y) on a terminal: no question. Not on a terminal: as before.
    let motd = lab.host("node-a").unwrap().path("/etc/motd");
    std::fs::write(&motd, "edited\n").unwrap();
    let (status, text) = on_terminal(&args(inv, &["apply", "--yes"]), &env, "");
    assert_eq!(status, Some(0), "{text}");
    assert!(!text.contains("Apply these changes"), "{text}");
    assert!(std::fs::read_to_string(&motd)
        .unwrap()
        .contains("managed by k8sup"));
    std::fs::write(&motd, "edited again\n").unwrap();
    let out = run(&lab, inv, &["apply"]);
    assert!(out.status.success(), "{}", said(&out));
    assert!(!said(&out).contains("Apply these changes"));

    // The right name on a terminal resets; so does --yes without one.
    let name = format!("{}\n", lab.name());
    let (status, text) = on_terminal(&["reset", "-i", inv], &env, &name);
    assert_eq!(status, Some(0), "{text}");
    for h in lab.hosts() {
        assert!(
            ledger_at(&h.path("/var/lib/k8sup/state.json")).is_none(),
            "{}",
            h.name
        );
    }
    let out = k8sup(&["reset", "-i", inv, "--yes"], &env);
    assert!(out.status.success(), "{}", said(&out));
}

/// An inventory of the lab's `hosts` only, for cluster `cluster` (its own history).
fn inventory_of(lab: &Lab, cluster: &str, hosts: &[&str]) -> String {
    let text = lab.inventory_toml(&format!(
        "[cluster]\nname = \"{cluster}\"\nkubernetes_version = \"1.30\"\n"
    ));
    let mut blocks = text.split("\n[[hosts]]\n");
    let mut out = blocks.next().unwrap_or_default().to_string();
    for block in blocks {
        if hosts
            .iter()
            .any(|h| block.starts_with(&format!("name = \"{h}\"\n")))
        {
            out.push_str("\n[[hosts]]\n");
            out.push_str(block);
        }
    }
    out
}

/// Starts `k8sup apply` in the background, its stderr kept in `log`.
fn spawn_apply(lab: &Lab, inv: &str, extra: &[&str], log: &Path) -> std::process::Child {
    let [(k, v)] = state_env(lab);
    let mut command = args(inv, &["apply"]);
    command.extend(extra);
    std::process::Command::new(env!("CARGO_BIN_EXE_k8sup"))
        .args(command)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env(k, v)
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap()
}

/// Waits until `host`'s journal holds `lines` entries (a batch under way).
fn wait_for_journal(lab: &Lab, host: &str, lines: usize, log: &Path) {
    let journal = lab
        .host(host)
        .unwrap()
        .path("/var/lib/k8sup/state.json.journal");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
    while std::fs::read_to_string(&journal)
        .map(|j| j.lines().count())
        .unwrap_or(0)
        < lines
    {
        assert!(
            std::time::Instant::now() < deadline,
            "no batch on {host}: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn runs_are_accounted_for_however_they_end() {
    // Two more hosts, fresh for the killed run and the lost connection.
    let five = THREE_HOSTS.replace("{name}", "accounts")
        + "[[hosts]]\nname = \"node-k\"\n[[hosts]]\nname = \"node-d\"\n";
    let Some(lab) = lab(&spec(&five)) else {
        return;
    };
    let inv_path = write_inventory(
        &lab,
        "accounts.toml",
        &inventory_of(&lab, "accounts", &["master", "node-a", "node-r"]),
    );
    let inv = inv_path.to_str().unwrap();
    let [(k, v)] = state_env(&lab);
    let env = [(k, v.as_str())];

    // An unwritable --report is refused before connecting to anything.
    let counts = command_counts(&lab);
    for bad in ["/nonexistent-dir/r.json", "/proc"] {
        let out = k8sup(&args(inv, &["apply", "--report", bad]), &env);
        assert_eq!(out.status.code(), Some(1), "{}", said(&out));
        assert!(
            stderr(&out).contains(&format!("cannot write the report to {bad}")),
            "{}",
            stderr(&out)
        );
    }
    assert_eq!(counts, command_counts(&lab), "a host was contacted");
    assert!(history(&lab, inv).is_empty());

    // An unreachable host: the run is refused, and the report and history say why.
    lab.faults("node-r").unwrap().stop_sshd().unwrap();
    let report = lab.dir().join("unreachable.json");
    let out = k8sup(
        &args(inv, &["apply", "--report", report.to_str().unwrap()]),
        &env,
    );
    assert_eq!(out.status.code(), Some(1), "{}", said(&out));
    let r = json_file(&report);
    assert_eq!(r["hosts"][2]["host"], "node-r");
    assert_eq!(r["hosts"][2]["outcome"], "failed", "{r:#}");
    assert_eq!(r["hosts"][2]["failed"], 1, "{r:#}");
    assert!(
        r["hosts"][2]["error"]
            .as_str()
            .unwrap()
            .contains("unreachable"),
        "{r:#}"
    );
    assert_eq!(r["hosts"][0]["outcome"], "skipped", "{r:#}");
    assert_eq!(history(&lab, inv).len(), 1);
    lab.faults("node-r").unwrap().start_sshd().unwrap();

    // A closed stdout: the run goes on to the end and is recorded; plan does not
    // panic either.
    let out = with_closed_stdout(&args(inv, &["plan"]), &env);
    assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report = lab.dir().join("closed.json");
    let out = with_closed_stdout(
        &args(inv, &["apply", "--report", report.to_str().unwrap()]),
        &env,
    );
    assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(json_file(&report)["hosts"][0]["changed"].as_u64().unwrap() > 0);
    let runs = history(&lab, inv);
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[0]["status"], "finished");
    let out = run(&lab, inv, &["plan", "--detailed-exitcode"]);
    assert_eq!(out.status.code(), Some(0), "converged: {}", said(&out));

    // A killed k8sup: its record is open and shows as interrupted; the next run
    // completes it from what the hosts' journals recorded.
    let killed_path = write_inventory(
        &lab,
        "killed.toml",
        &inventory_of(&lab, "killed", &["master", "node-k"]),
    );
    let killed_inv = killed_path.to_str().unwrap();
    for h in ["master", "node-k"] {
        lab.faults(h)
            .unwrap()
            .slow(std::time::Duration::from_millis(150))
            .unwrap();
    }
    let log = lab.dir().join("killed.log");
    let mut child = spawn_apply(&lab, killed_inv, &[], &log);
    wait_for_journal(&lab, "node-k", 1, &log);
    std::thread::sleep(std::time::Duration::from_millis(300));
    child.kill().unwrap();
    let _ = child.wait();
    let shown = k8sup(&["history", "-i", killed_inv], &env);
    let table = stdout(&shown);
    assert!(
        table
            .lines()
            .nth(1)
            .is_some_and(|l| l.ends_with("interrupted")),
        "{table}"
    );
    for h in ["master", "node-k"] {
        lab.faults(h).unwrap().clear().unwrap();
    }
    // What the killed run had sent goes on, orphaned, and keeps its host locked
    // until it ends (one run at a time): the next run starts after that.
    for h in ["master", "node-k"] {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        while !lab
            .ssh(h, "flock -n /run/k8sup.lock true")
            .expect("ssh runs")
            .status
            .success()
        {
            assert!(
                std::time::Instant::now() < deadline,
                "{h} is still locked 120 s after its run was killed"
            );
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    }
    let out = run(&lab, killed_inv, &["apply"]);
    assert!(out.status.success(), "{}", said(&out));
    let runs = history(&lab, killed_inv);
    assert_eq!(runs.len(), 2, "{runs:#?}");
    let killed = &runs[1];
    assert_eq!(killed["status"], "interrupted", "{killed:#}");
    let node_k = &killed["hosts"][1];
    assert_eq!(node_k["host"], "node-k");
    assert_eq!(node_k["outcome"], "interrupted");
    assert!(
        node_k["changed"].as_u64().unwrap() > 0,
        "the journal's tasks are counted: {killed:#}"
    );
    // Tasks are named as the playbook names them.
    assert_eq!(node_k["tasks"][0]["name"], "app config", "{killed:#}");

    // A connection that dies mid-batch: the tasks the host said it applied and
    // recorded before are counted as changed, the task in flight as failed, and
    // the message names it.
    let dropped_path = write_inventory(
        &lab,
        "dropped.toml",
        &inventory_of(&lab, "dropped", &["master", "node-d"]),
    );
    let dropped_inv = dropped_path.to_str().unwrap();
    lab.faults("node-d")
        .unwrap()
        .slow(std::time::Duration::from_millis(300))
        .unwrap();
    let report = lab.dir().join("dropped.json");
    let log = lab.dir().join("dropped.log");
    let mut child = spawn_apply(
        &lab,
        dropped_inv,
        &["--report", report.to_str().unwrap()],
        &log,
    );
    wait_for_journal(&lab, "node-d", 2, &log);
    lab.faults("node-d").unwrap().drop_connections().unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(1));
    let r = json_file(&report);
    let node_d = &r["hosts"][1];
    assert_eq!(node_d["host"], "node-d");
    assert_eq!(node_d["outcome"], "failed", "{node_d:#}");
    assert_eq!(node_d["failed"], 1, "{node_d:#}");
    assert!(node_d["changed"].as_u64().unwrap() >= 1, "{node_d:#}");
    let tasks = node_d["tasks"].as_array().unwrap();
    let failed = tasks.iter().find(|t| t["outcome"] == "failed").unwrap();
    let error = failed["error"].as_str().unwrap();
    assert!(
        error.contains(&format!("task {}", failed["id"].as_str().unwrap())),
        "{error}"
    );
    assert!(!error.contains("k8sup_nl"), "the prelude is shown: {error}");
    // What the report counts as changed is what the host recorded.
    lab.faults("node-d").unwrap().clear().unwrap();
    let recorded = recorded_changes(&lab, "node-d");
    for t in tasks.iter().filter(|t| t["outcome"] == "changed") {
        let id = t["id"].as_str().unwrap();
        assert!(
            recorded.iter().any(|r| r == id),
            "{id} is counted as changed but the host did not record it: {recorded:?}"
        );
    }

    // A task that outlives ssh.command_timeout: a failure of that very task, and
    // what the batch did before it is read from the host's journal.
    let timeout_path = write_inventory(
        &lab,
        "timeout.toml",
        &inventory_of(&lab, "dropped", &["master", "node-d"])
            .replace("[ssh]\n", "[ssh]\ncommand_timeout = \"4s\"\n"),
    );
    // A change before it in the same batch: motd edited by hand.
    std::fs::write(lab.host("node-d").unwrap().path("/etc/motd"), "by hand\n").unwrap();
    lab.faults("node-d")
        .unwrap()
        .hang_command("apt-get")
        .unwrap();
    let report = lab.dir().join("timeout.json");
    let out = k8sup(
        &args(
            timeout_path.to_str().unwrap(),
            &["apply", "--report", report.to_str().unwrap()],
        ),
        &env,
    );
    assert_eq!(out.status.code(), Some(1), "{}", said(&out));
    lab.faults("node-d").unwrap().clear().unwrap();
    let r = json_file(&report);
    let node_d = &r["hosts"][1];
    assert_eq!(node_d["failed"], 1, "{node_d:#}");
    let tasks = node_d["tasks"].as_array().unwrap();
    let failed = tasks.iter().find(|t| t["outcome"] == "failed").unwrap();
    assert_eq!(failed["id"], "prepare/tools", "{node_d:#}");
    let error = failed["error"].as_str().unwrap();
    assert!(
        error.contains("task prepare/tools failed: it did not finish within 4s"),
        "{error}"
    );
    let changed: Vec<&str> = tasks
        .iter()
        .filter(|t| t["outcome"] == "changed")
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert!(changed.contains(&"prepare/motd-line"), "{node_d:#}");
    let recorded = recorded_changes(&lab, "node-d");
    for id in changed {
        assert!(recorded.iter().any(|r| r == id), "{id}: {recorded:?}");
    }
}

/// The tasks a host's ledger and its journal record as changed.
fn recorded_changes(lab: &Lab, host: &str) -> Vec<String> {
    let h = lab.host(host).unwrap();
    let mut out = Vec::new();
    if let Ok(text) = std::fs::read_to_string(h.path("/var/lib/k8sup/state.json")) {
        let ledger: serde_json::Value = serde_json::from_str(&text).unwrap();
        for (id, entry) in ledger["tasks"].as_object().unwrap() {
            if entry["result"] == "changed" {
                out.push(id.clone());
            }
        }
    }
    let journal =
        std::fs::read_to_string(h.path("/var/lib/k8sup/state.json.journal")).unwrap_or_default();
    for line in journal.lines() {
        if let Ok(line) = serde_json::from_str::<serde_json::Value>(line) {
            if line["entry"]["result"] == "changed" {
                out.push(line["task"].as_str().unwrap().to_string());
            }
        }
    }
    out
}
