//! `k8sup report` and `history --tasks` on a recorded history, and the HTML page in
//! a real browser: Debian's headless Chromium loads the file, runs its script, and
//! the rendered DOM must hold every host's lane of the timeline (drawn by the
//! script, so absent from the file itself), a changed task with its diff, a failure
//! with its stderr, and the trend plots. A screenshot is kept: with
//! `K8SUP_SCREENSHOT=docs/report.png` it is written where the README shows it.

mod common;

use std::path::PathBuf;

use common::{browser, k8sup, stderr, stdout};
use k8sup_engine::{HostOutcome, HostReport, RunReport, TaskReport};

const INVENTORY: &str = r#"
[cluster]
name = "nightly"
kubernetes_version = "1.30"

[[hosts]]
name = "cp-1"
address = "10.0.0.1"
roles = ["master"]

[[hosts]]
name = "wk-1"
address = "10.0.0.2"
roles = ["node"]

[[hosts]]
name = "wk-2"
address = "10.0.0.3"
roles = ["node"]
"#;

fn task(id: &str, outcome: &str, start: u64, ms: u64) -> TaskReport {
    let failed = outcome == "failed";
    TaskReport {
        id: format!("kubernetes/{id}"),
        name: id.replace('-', " "),
        outcome: outcome.into(),
        changed: outcome == "changed",
        drift: false,
        duration_ms: ms,
        error: failed.then(|| format!("task kubernetes/{id} failed (exit 1)")),
        started_ms: Some(start),
        diff: (id == "containerd-config").then(|| {
            "--- /etc/containerd/config.toml (on host)\n+++ /etc/containerd/config.toml (wanted)\n@@ -1,2 +1,2 @@\n [plugins]\n-SystemdCgroup = false\n+SystemdCgroup = true\n".into()
        }),
        command: (id == "join" || failed).then(|| "kubeadm join 10.0.0.1:6443 --token <redacted>".into()),
        stderr: failed.then(|| "error execution phase preflight: couldn't validate the identity of the API Server: connection refused\n".into()),
    }
}

fn host(name: &str, outcome: HostOutcome, tasks: Vec<TaskReport>) -> HostReport {
    let count = |o: &str| tasks.iter().filter(|t| t.outcome == o).count();
    HostReport {
        host: name.into(),
        outcome,
        ok: count("ok"),
        changed: count("changed"),
        failed: count("failed"),
        skipped: count("skipped"),
        duration_ms: tasks
            .iter()
            .map(|t| t.started_ms.unwrap_or(0) + t.duration_ms)
            .max()
            .unwrap_or(0),
        round_trips: 3,
        error: (outcome != HostOutcome::Ok).then(|| "task kubernetes/join failed".into()),
        tasks,
    }
}

/// A nightly run: cp-1 and wk-1 converge, wk-2's join fails; `slower` stretches the
/// package install, as a creeping mirror would.
fn nightly(started_at: &str, slower: u64) -> RunReport {
    let install = 4000 + slower;
    RunReport {
        started_at: started_at.into(),
        duration_ms: 15_000 + slower,
        playbook: "playbooks/kubernetes.toml".into(),
        hosts: vec![
            host(
                "cp-1",
                HostOutcome::Ok,
                vec![
                    task("swap-off", "ok", 100, 20),
                    task("containerd-config", "changed", 200, 800),
                    task("install-packages", "changed", 1000, install),
                    task("kubeadm-init", "changed", 1000 + install, 9000),
                ],
            ),
            host(
                "wk-1",
                HostOutcome::Ok,
                vec![
                    task("swap-off", "changed", 120, 300),
                    task("containerd-config", "changed", 420, 700),
                    task("install-packages", "changed", 1200, install - 500),
                    task("join", "changed", 11_000 + slower, 3500),
                ],
            ),
            host(
                "wk-2",
                HostOutcome::Failed,
                vec![
                    task("swap-off", "ok", 110, 15),
                    task("containerd-config", "changed", 300, 650),
                    task("install-packages", "changed", 1100, install - 200),
                    task("join", "failed", 11_200 + slower, 2100),
                ],
            ),
        ],
    }
}

struct Setup {
    dir: tempfile::TempDir,
    inventory: PathBuf,
    state: PathBuf,
}

impl Setup {
    fn new() -> Setup {
        let dir = tempfile::tempdir().expect("temp dir");
        let inventory = dir.path().join("nightly.toml");
        std::fs::write(&inventory, INVENTORY).expect("inventory");
        let state = dir.path().join("state");
        let history = state.join("nightly/history");
        for (n, day) in ["2026-11-28", "2026-11-29", "2026-11-30", "2026-12-01"]
            .iter()
            .enumerate()
        {
            nightly(&format!("{day}T02:00:00.000Z"), 900 * n as u64)
                .save_history(&history)
                .expect("history");
        }
        Setup {
            dir,
            inventory,
            state,
        }
    }

    fn k8sup(&self, args: &[&str]) -> std::process::Output {
        let mut all = args.to_vec();
        all.extend(["-i", self.inventory.to_str().expect("utf-8")]);
        k8sup(
            &all,
            &[("K8SUP_STATE_DIR", self.state.to_str().expect("utf-8"))],
        )
    }
}

#[test]
fn the_report_renders_in_headless_chromium() {
    let setup = Setup::new();
    let page = setup.dir.path().join("run.html");
    let out = setup.k8sup(&["report", "-o", page.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("2026-12-01T02:00:00.000Z"),
        "the last run: {}",
        stdout(&out)
    );
    let file = std::fs::read_to_string(&page).expect("page");
    assert!(
        !file.contains("class=\"lane\""),
        "the timeline is drawn by the page's script"
    );

    let dom = browser::rendered_dom(&page, setup.dir.path());
    // Every host has its lane, with a bar per task that took time.
    for host in ["cp-1", "wk-1", "wk-2"] {
        let lane = dom
            .split(&format!("<div class=\"lane\" data-host=\"{host}\">"))
            .nth(1)
            .unwrap_or_else(|| panic!("no lane for {host} in the rendered page:\n{dom}"));
        let lane = lane.split("class=\"lane\"").next().unwrap_or(lane);
        assert_eq!(lane.matches("class=\"bar ").count(), 4, "{host}: {lane}");
    }
    assert!(
        dom.contains("<div class=\"bar failed\" data-task=\"kubernetes/join\""),
        "{dom}"
    );
    // A changed task with its diff; the failure with its stderr; the totals; a trend plot.
    assert!(
        dom.contains("data-host=\"cp-1\" data-task=\"kubernetes/containerd-config\""),
        "{dom}"
    );
    assert!(
        dom.contains("<span class=\"add\">+SystemdCgroup = true</span>"),
        "{dom}"
    );
    let failure = dom
        .split("<div class=\"failure\" data-host=\"wk-2\"")
        .nth(1)
        .expect("wk-2's failure");
    assert!(
        failure.contains("couldn't validate the identity of the API Server"),
        "{failure}"
    );
    assert!(failure.contains("--token &lt;redacted&gt;"), "{failure}");
    assert!(dom.contains("data-total=\"failed\"><b>1</b>"), "{dom}");
    assert!(dom.contains("<svg class=\"spark\""), "{dom}");
    assert!(dom.contains("id=\"result\">failed</span>"));

    let png = browser::screenshot(&page, setup.dir.path(), 1280, 1500);
    assert!(png.len() > 10_000, "{} bytes", png.len());
    if let Some(keep) = std::env::var_os("K8SUP_SCREENSHOT") {
        std::fs::write(&keep, &png).expect("keep the screenshot");
    }
}

#[test]
fn report_picks_a_run_by_its_start_or_file_and_says_what_is_wrong() {
    let setup = Setup::new();
    let page = setup.dir.path().join("old.html");
    let page_arg = page.to_str().expect("utf-8");
    let out = setup.k8sup(&["report", "2026-11-29", "-o", page_arg]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let html = std::fs::read_to_string(&page).expect("page");
    assert!(html.contains("started 2026-11-29T02:00:00.000Z"));
    // Its trends hold only the run before it.
    assert!(
        html.contains("2 runs, from 2026-11-28T02:00:00.000Z"),
        "{html}"
    );

    let out = setup.k8sup(&["report", "2026-11", "-o", page_arg]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("names 3 runs"), "{}", stderr(&out));
    let out = setup.k8sup(&["report", "2025", "-o", page_arg]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("no run started at 2025"),
        "{}",
        stderr(&out)
    );

    // A report written by `apply --report` is a run too, without an inventory.
    let json = setup.dir.path().join("run.json");
    std::fs::write(&json, nightly("2026-12-05T02:00:00.000Z", 0).to_json()).expect("json");
    let out = k8sup(
        &["report", json.to_str().expect("utf-8"), "-o", page_arg],
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(std::fs::read_to_string(&page)
        .expect("page")
        .contains("2026-12-05T02:00:00.000Z"));
    let out = k8sup(&["report", "-o", page_arg], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("give the inventory"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn history_tasks_shows_each_task_over_the_runs() {
    let setup = Setup::new();
    let out = setup.k8sup(&["history", "--tasks"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    insta::assert_snapshot!("history_tasks", text);
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with("TASK")
            && lines[0].contains("11-28 02:00")
            && lines[0].ends_with("TREND"),
        "{text}"
    );
    // The slowest host's install, oldest run first: 4.00s, 4.90s, 5.80s, 6.70s.
    let install = lines
        .iter()
        .find(|l| l.starts_with("kubernetes/install-packages"))
        .expect("install row");
    let cells: Vec<&str> = install.split_whitespace().collect();
    assert_eq!(
        cells[1..],
        ["4.00s", "4.90s", "5.80s", "6.70s", "+68%"],
        "{text}"
    );
    let json = setup.k8sup(&["history", "--tasks", "--json", "--last", "2"]);
    let value: serde_json::Value = serde_json::from_slice(&json.stdout).expect("json");
    assert_eq!(value["runs"][0], "2026-11-30T02:00:00.000Z");
    assert_eq!(
        value["tasks"][2]["durations_ms"],
        serde_json::json!([5800, 6700])
    );
}
