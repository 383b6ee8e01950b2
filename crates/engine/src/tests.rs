//! Engine tests without SSH: each host is a [`LocalTransport`] and a temp directory
//! (`root` in the template context), with fake `systemctl` on `PATH`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::testing::LocalTransport;
use crate::*;

/// Relative: each LocalTransport runs in its host's root.
const STATE: &str = "var/lib/k8sup/state.json";

/// The ledger under `root` as k8sup reads it: the file (none yet is an empty ledger)
/// with its journal replayed on it.
fn ledger_under(root: &std::path::Path) -> StateLedger {
    let mut ledger = match std::fs::read_to_string(root.join(STATE)) {
        Ok(text) => StateLedger::parse(&text).expect("ledger"),
        Err(_) => StateLedger::default(),
    };
    if let Ok(journal) = std::fs::read_to_string(root.join(format!("{STATE}.journal"))) {
        ledger.replay_journal(&journal).expect("journal");
    }
    ledger
}

const SECRET_JOIN: &str = "kubeadm join 10.0.0.1:6443 --token abcdef.0123456789abcdef";

const FAKE_SYSTEMCTL: &str = r#"#!/bin/sh
d="$FAKE_ROOT/systemd"
case $1 in
  is-enabled) if [ -e "$d/$2.enabled" ]; then echo enabled; else echo disabled; exit 1; fi ;;
  is-active) if [ -e "$d/$2.active" ]; then echo active; else echo inactive; exit 3; fi ;;
  show) eval "u=\${$#}"; echo LoadState=loaded
        [ -e "$d/$u.enabled" ] && echo UnitFileState=enabled || echo UnitFileState=disabled
        [ -e "$d/$u.active" ] && echo ActiveState=active || echo ActiveState=inactive ;;
  daemon-reload) ;;
  enable) if [ "$2" = --now ]; then mkdir -p "$d" && touch "$d/$3.enabled" "$d/$3.active" && echo start >> "$d/$3.log"; else mkdir -p "$d" && touch "$d/$2.enabled"; fi ;;
  start|restart) mkdir -p "$d" && touch "$d/$2.active" && echo "$1" >> "$d/$2.log" ;;
  *) echo "fake systemctl: $*" >&2; exit 1 ;;
esac
"#;

struct Lab {
    _dir: tempfile::TempDir,
    roots: BTreeMap<String, PathBuf>,
    transports: BTreeMap<String, Arc<LocalTransport>>,
    hosts: Vec<HostSpec>,
    events: Arc<Mutex<Vec<EngineEvent>>>,
    history: PathBuf,
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Hosts `m1` (first master), then nodes; each with a root holding an fstab with swap.
fn lab(names: &[&str]) -> Lab {
    let dir = tempfile::tempdir().expect("temp dir");
    let bin = dir.path().join("bin");
    std::fs::create_dir_all(&bin).expect("bin");
    crate::testing::fake_program(&bin, "systemctl", FAKE_SYSTEMCTL);
    let mut lab = Lab {
        roots: BTreeMap::new(),
        transports: BTreeMap::new(),
        hosts: Vec::new(),
        events: Arc::new(Mutex::new(Vec::new())),
        history: dir.path().join("history"),
        _dir: dir,
    };
    for name in names {
        let root = lab._dir.path().join(name);
        std::fs::create_dir_all(root.join("etc")).expect("root");
        std::fs::write(
            root.join("etc/fstab"),
            "/dev/sda1 / ext4 defaults 0 1\n/swap.img none swap sw 0 0\n",
        )
        .expect("fstab");
        std::fs::write(root.join("join-command"), format!("{SECRET_JOIN}\n")).expect("join");
        let transport = Arc::new(
            LocalTransport::new(name)
                .with_path(&bin)
                .with_cwd(&root)
                .with_env("FAKE_ROOT", &root.display().to_string())
                // Kernel files are read from here, and the fake tools used where absent.
                .with_env("K8SUP_PROC", &root.join("proc").display().to_string()),
        );
        let master = name.starts_with('m');
        lab.hosts.push(HostSpec {
            name: name.to_string(),
            roles: if master {
                ["master".to_string()].into()
            } else {
                ["node".to_string()].into()
            },
            labels: BTreeMap::new(),
            first_master: *name == "m1",
            platform: Platform {
                arch: "amd64".into(),
                family: Family::Debian,
                distro: "ubuntu".into(),
                distro_version: "22.04".into(),
            },
            context: serde_json::json!({
                "root": root.display().to_string(),
                "host": {"name": name},
                "port": 8080,
            })
            .into(),
            artifacts: BTreeMap::new(),
            transport: transport.clone(),
        });
        lab.roots.insert(name.to_string(), root);
        lab.transports.insert(name.to_string(), transport);
    }
    lab
}

impl Lab {
    fn engine(&self, parallelism: usize) -> Engine {
        self.engine_reading(parallelism, &[])
    }

    /// [`Lab::engine`] for a run in which `read_only` hosts are only read.
    fn engine_reading(&self, parallelism: usize, read_only: &[&str]) -> Engine {
        let text =
            std::fs::read_to_string(repo().join("playbooks/test/cluster.toml")).expect("playbook");
        let playbook = Playbook::parse("playbooks/test/cluster.toml", &text).expect("parses");
        let mut templates = TemplateSet::new();
        templates
            .overlay_dir(&repo().join("templates"))
            .expect("templates");
        Engine::new(
            playbook,
            &templates,
            EngineOptions {
                parallelism,
                state_path: STATE.into(),
                history_dir: Some(self.history.clone()),
                read_only: read_only.iter().map(|h| h.to_string()).collect(),
            },
        )
    }

    fn sink(&self) -> EventSink {
        let events = self.events.clone();
        Arc::new(move |e| events.lock().expect("events").push(e))
    }

    fn root(&self, host: &str) -> &Path {
        &self.roots[host]
    }

    /// Every file under every root, with content (for "nothing was written" checks).
    fn snapshot(&self) -> BTreeMap<PathBuf, Vec<u8>> {
        fn walk(dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
            for entry in std::fs::read_dir(dir).expect("read dir") {
                let path = entry.expect("entry").path();
                if path.is_dir() {
                    out.insert(path.clone(), Vec::new());
                    walk(&path, out);
                } else {
                    out.insert(path.clone(), std::fs::read(&path).expect("read"));
                }
            }
        }
        let mut out = BTreeMap::new();
        walk(self._dir.path(), &mut out);
        out
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

fn status_of(plan: &Plan, host: &str, id: &str) -> TaskStatus {
    plan.host(host)
        .and_then(|h| h.tasks.iter().find(|t| t.id == id))
        .map(|t| t.status)
        .unwrap_or_else(|| panic!("no task {id} on {host}"))
}

#[test]
fn plan_shows_changes_with_diffs_and_commands_and_writes_nothing() {
    let lab = lab(&["m1", "n1"]);
    let engine = lab.engine(4);
    let before = lab.snapshot();
    let plan = runtime().block_on(engine.plan(&lab.hosts)).expect("plan");
    assert_eq!(before, lab.snapshot(), "a plan wrote on a host");
    assert!(!plan.has_errors(), "{plan:#?}");
    let m1 = plan.host("m1").expect("m1");
    let ids: Vec<&str> = m1.tasks.iter().map(|t| t.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "prepare/app-config",
            "prepare/swap-off",
            "prepare/app-service",
            "prepare/arm-only",
            "prepare/handler/restart-app",
            "init/init",
            "init/join-command"
        ]
    );
    let config = &m1.tasks[0];
    assert_eq!(config.status, TaskStatus::Change);
    let diff = config.diff.as_deref().expect("diff");
    assert!(diff.contains("+name=m1\n+port=8080\n"), "{diff}");
    let swap = &m1.tasks[1];
    assert!(swap
        .diff
        .as_deref()
        .expect("diff")
        .contains("-/swap.img none swap sw 0 0\n+# /swap.img none swap sw 0 0\n"));
    assert_eq!(m1.tasks[2].reason, "app is disabled; app is inactive");
    assert_eq!(m1.tasks[3].status, TaskStatus::Skip);
    assert_eq!(
        m1.tasks[3].reason,
        "when `platform.arch == 'arm64'` is false"
    );
    assert_eq!(m1.tasks[4].status, TaskStatus::Change);
    assert_eq!(m1.tasks[4].reason, "notified by app config");
    let init = &m1.tasks[5];
    assert_eq!(
        init.command.as_deref(),
        Some(format!("echo init > {}/initialized", lab.root("m1").display()).as_str())
    );
    let join = plan.host("n1").expect("n1").tasks.last().expect("join");
    assert_eq!(join.status, TaskStatus::Change);
    assert!(join
        .command
        .as_deref()
        .expect("cmd")
        .contains("<join_command from m1>"));
    // Stable: the same plan twice, and it survives JSON.
    let again = runtime().block_on(engine.plan(&lab.hosts)).expect("plan");
    assert_eq!(plan, again);
    assert_eq!(Plan::from_json(&plan.to_json()).expect("json"), plan);
}

#[test]
fn apply_converges_then_a_second_apply_is_one_round_trip_per_host() {
    let lab = lab(&["m1", "n1", "n2"]);
    let engine = lab.engine(2);
    let rt = runtime();
    let report = rt
        .block_on(engine.apply(&lab.hosts, None, lab.sink()))
        .expect("apply");
    assert!(report.success(), "{}", report.to_json());
    let conf = std::fs::read_to_string(lab.root("n1").join("etc/app/app.conf")).expect("conf");
    assert_eq!(
        conf,
        "# n1: written by the k8sup engine tests\nname=n1\nport=8080\n"
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(lab.root("n1").join("etc/app/app.conf"))
        .expect("meta")
        .permissions()
        .mode();
    assert_eq!(mode & 0o7777, 0o640);
    assert_eq!(
        std::fs::read_to_string(lab.root("n2").join("joined")).expect("joined"),
        format!("{SECRET_JOIN}\n")
    );
    assert_eq!(
        std::fs::read_to_string(lab.root("m1").join("restarts")).expect("handler ran"),
        "restarted\n"
    );
    let state = ledger_under(lab.root("m1"));
    let entry = &state.tasks["prepare/app-config"];
    assert_eq!(entry.result, "changed");
    assert!(
        entry.finished_ms >= entry.started_ms && entry.started_ms > 1_600_000_000_000,
        "{entry:?}"
    );
    assert!(state.pending_handlers.is_empty(), "{state:?}");
    let m1 = &report.hosts[0];
    assert_eq!((m1.changed, m1.skipped), (5, 1), "{m1:?}");
    // The fetch ran once on m1 for the two nodes.
    let fetched = lab
        .events
        .lock()
        .expect("events")
        .iter()
        .filter(|e| matches!(e, EngineEvent::ValueFetched { .. }))
        .count();
    assert_eq!(fetched, 1);

    let second = rt
        .block_on(engine.apply(&lab.hosts, None, lab.sink()))
        .expect("apply");
    assert!(second.success());
    for host in &second.hosts {
        assert_eq!(host.changed, 0, "{host:?}");
        assert_eq!(host.round_trips, 1, "{host:?}");
    }
    assert_eq!(
        std::fs::read_to_string(lab.root("m1").join("restarts")).expect("restarts"),
        "restarted\n",
        "handler ran again"
    );
    let history: Vec<_> = std::fs::read_dir(&lab.history).expect("history").collect();
    assert_eq!(history.len(), 2);
    let plan = rt.block_on(engine.plan(&lab.hosts)).expect("plan");
    assert!(!plan.has_changes(), "{plan:#?}");
}

#[test]
fn out_of_band_edits_are_drift_and_are_repaired() {
    let lab = lab(&["m1"]);
    let engine = lab.engine(1);
    let rt = runtime();
    assert!(rt
        .block_on(engine.apply(&lab.hosts, None, lab.sink()))
        .expect("apply")
        .success());
    let conf = lab.root("m1").join("etc/app/app.conf");
    std::fs::write(
        &conf,
        "# m1: written by the k8sup engine tests\nname=m1\nport=9999\n",
    )
    .expect("edit");
    let plan = rt.block_on(engine.plan(&lab.hosts)).expect("plan");
    assert_eq!(
        status_of(&plan, "m1", "prepare/app-config"),
        TaskStatus::Drift
    );
    let task = &plan.hosts[0].tasks[0];
    assert!(task
        .diff
        .as_deref()
        .expect("diff")
        .contains("-port=9999\n+port=8080\n"));
    let report = rt
        .block_on(engine.apply(&lab.hosts, Some(&plan), lab.sink()))
        .expect("apply");
    assert!(report.success(), "{}", report.to_json());
    assert!(report.hosts[0].tasks[0].drift);
    assert!(std::fs::read_to_string(&conf)
        .expect("conf")
        .contains("port=8080"));
    assert_eq!(
        std::fs::read_to_string(lab.root("m1").join("restarts")).expect("restarts"),
        "restarted\nrestarted\n"
    );
}

#[test]
fn apply_with_a_plan_refuses_a_host_that_drifted_since() {
    let lab = lab(&["m1"]);
    let engine = lab.engine(1);
    let rt = runtime();
    let plan = rt.block_on(engine.plan(&lab.hosts)).expect("plan");
    std::fs::write(
        lab.root("m1").join("etc/fstab"),
        "/dev/sda1 / ext4 defaults 0 1\n",
    )
    .expect("edit");
    let report = rt
        .block_on(engine.apply(&lab.hosts, Some(&plan), lab.sink()))
        .expect("apply");
    assert!(!report.success());
    let error = report.hosts[0].error.as_deref().expect("error");
    assert!(
        error.contains("drifted since the plan: task prepare/swap-off"),
        "{error}"
    );
    assert!(
        !lab.root("m1").join("etc/app/app.conf").exists(),
        "nothing applied"
    );
}

#[test]
fn a_failed_master_stops_its_dependents_but_not_the_others() {
    let lab = lab(&["m1", "n1", "m2"]);
    lab.transports["m1"].fail_calls_containing("k8sup_apply_command 'echo init");
    let engine = lab.engine(3);
    let report = runtime()
        .block_on(engine.apply(&lab.hosts, None, lab.sink()))
        .expect("apply");
    let by_name: BTreeMap<&str, &HostReport> =
        report.hosts.iter().map(|h| (h.host.as_str(), h)).collect();
    assert_eq!(by_name["m1"].outcome, HostOutcome::Failed);
    assert!(
        by_name["m1"]
            .error
            .as_deref()
            .expect("error")
            .contains("task init/init failed"),
        "{:?}",
        by_name["m1"]
    );
    assert_eq!(by_name["n1"].outcome, HostOutcome::Skipped);
    assert_eq!(
        by_name["n1"].error.as_deref(),
        Some("skipped: depends on m1/init/init which failed")
    );
    assert_eq!(
        by_name["m2"].outcome,
        HostOutcome::Ok,
        "{:?}",
        by_name["m2"]
    );
    assert!(!lab.root("n1").join("joined").exists());
    // n1 still prepared itself: it stopped only at the join.
    assert!(lab.root("n1").join("etc/app/app.conf").exists());
    let failed = lab
        .events
        .lock()
        .expect("events")
        .iter()
        .filter(|e| matches!(e, EngineEvent::HostFailed { .. }))
        .count();
    assert_eq!(failed, 2);
}

#[test]
fn a_read_only_master_is_never_changed_but_provides_its_values_once_settled() {
    let lab = lab(&["m1", "n1", "n2"]);
    let rt = runtime();
    let (m1, n1, n2) = (&lab.hosts[0], &lab.hosts[1], &lab.hosts[2]);

    // A master that was never applied would have to change before its fetch: the
    // node is skipped with the reason, and nothing is written on the master.
    let before = lab.snapshot();
    let engine = lab.engine_reading(2, &["m1"]);
    let hosts = vec![m1.clone(), n1.clone()];
    let plan = rt.block_on(engine.plan(&hosts)).expect("plan");
    assert_eq!(
        plan.hosts
            .iter()
            .map(|h| h.host.as_str())
            .collect::<Vec<_>>(),
        ["n1"],
        "a read-only host is not planned"
    );
    let report = rt
        .block_on(engine.apply(&hosts, None, lab.sink()))
        .expect("apply");
    assert_eq!(report.hosts.len(), 1, "{}", report.to_json());
    assert_eq!(report.hosts[0].outcome, HostOutcome::Skipped);
    let error = report.hosts[0].error.as_deref().expect("error");
    assert!(
        error.starts_with("skipped: m1 is only read in this run (--limit), and its task \"app config\" would change first"),
        "{error}"
    );
    let after = lab.snapshot();
    let m1_files = |snap: &BTreeMap<PathBuf, Vec<u8>>| {
        snap.iter()
            .filter(|(p, _)| p.starts_with(lab.root("m1")))
            .map(|(p, c)| (p.clone(), c.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(m1_files(&before), m1_files(&after));

    // With the master and n1 applied, n2 is added with m1 read-only: n2 joins with
    // the value fetched from m1, and m1's files and ledger are untouched.
    let full = lab.engine(2);
    let first = rt
        .block_on(full.apply(&[m1.clone(), n1.clone()], None, lab.sink()))
        .expect("apply");
    assert!(first.success(), "{}", first.to_json());
    let before = m1_files(&lab.snapshot());
    let report = rt
        .block_on(engine.apply(&[m1.clone(), n2.clone()], None, lab.sink()))
        .expect("apply");
    assert!(report.success(), "{}", report.to_json());
    assert_eq!(report.hosts.len(), 1);
    assert_eq!(report.hosts[0].host, "n2");
    assert_eq!(
        std::fs::read_to_string(lab.root("n2").join("joined")).expect("joined"),
        format!("{SECRET_JOIN}\n")
    );
    assert_eq!(before, m1_files(&lab.snapshot()), "m1 was changed");
}

#[test]
fn a_waiting_host_gives_its_slot_back() {
    // The node comes first and parallelism is 1: it must not hold the only slot while
    // it waits for the master's join command.
    let lab = lab(&["n1", "m1"]);
    let report = run_with_timeout(&lab, &lab.engine(1));
    assert!(report.success(), "{}", report.to_json());
    let waited = lab
        .events
        .lock()
        .expect("events")
        .iter()
        .any(|e| matches!(e, EngineEvent::TaskWaiting { host, .. } if host == "n1"));
    assert!(waited);
}

#[test]
fn the_secret_appears_in_no_output() {
    let lab = lab(&["m1", "n1"]);
    lab.transports["n1"].fail_calls_containing("k8sup_apply_command 'printf");
    let engine = lab.engine(2);
    let rt = runtime();
    let plan = rt.block_on(engine.plan(&lab.hosts)).expect("plan");
    let failed = rt
        .block_on(engine.apply(&lab.hosts, None, lab.sink()))
        .expect("apply");
    assert!(!failed.success());
    assert!(
        failed.hosts[1]
            .error
            .as_deref()
            .expect("error")
            .contains(REDACTED),
        "{}",
        failed.to_json()
    );
    // The join failed on n1 above (after the secret was fetched); now let it succeed,
    // with a fresh engine that learns the secret only by fetching it.
    let lab2 = lab_with_secret_run(&lab, &lab.engine(2));
    let events = format!("{:?}", lab.events.lock().expect("events"));
    let events_json: Vec<String> = lab
        .events
        .lock()
        .expect("events")
        .iter()
        .map(|e| serde_json::to_string(e).expect("json"))
        .collect();
    let mut outputs = vec![
        plan.to_json(),
        failed.to_json(),
        lab2.to_json(),
        events,
        events_json.join("\n"),
    ];
    for host in ["m1", "n1"] {
        for file in [STATE.to_string(), format!("{STATE}.journal")] {
            if let Ok(text) = std::fs::read_to_string(lab.root(host).join(file)) {
                outputs.push(text);
            }
        }
        assert!(!ledger_under(lab.root(host)).tasks.is_empty(), "{host}");
    }
    for entry in std::fs::read_dir(&lab.history).expect("history") {
        outputs.push(std::fs::read_to_string(entry.expect("entry").path()).expect("history file"));
    }
    for (i, text) in outputs.iter().enumerate() {
        assert!(
            !text.contains("0123456789abcdef"),
            "output {i} holds the secret:\n{text}"
        );
    }
    assert!(
        outputs.iter().any(|t| t.contains(REDACTED)),
        "the secret was used and redacted somewhere"
    );
    assert_eq!(
        std::fs::read_to_string(lab.root("n1").join("joined")).expect("joined"),
        format!("{SECRET_JOIN}\n")
    );
}

fn lab_with_secret_run(lab: &Lab, engine: &Engine) -> RunReport {
    lab.transports["n1"].fail_calls_containing("\u{0}never");
    let report = runtime()
        .block_on(engine.apply(&lab.hosts, None, lab.sink()))
        .expect("apply");
    assert!(report.success(), "{}", report.to_json());
    report
}

#[test]
fn handlers_owed_by_an_interrupted_run_still_run() {
    let lab = lab(&["m1"]);
    // The app config changes, then the service start fails: the handler is owed.
    lab.transports["m1"].fail_calls_containing("systemctl enable --now app");
    let engine = lab.engine(1);
    let rt = runtime();
    let first = rt
        .block_on(engine.apply(&lab.hosts, None, lab.sink()))
        .expect("apply");
    assert!(!first.success());
    assert!(!lab.root("m1").join("restarts").exists());
    lab.transports["m1"].fail_calls_containing("\u{0}never");
    let plan = rt.block_on(engine.plan(&lab.hosts)).expect("plan");
    assert_eq!(status_of(&plan, "m1", "prepare/app-config"), TaskStatus::Ok);
    assert_eq!(
        status_of(&plan, "m1", "prepare/handler/restart-app"),
        TaskStatus::Change
    );
    let second = rt
        .block_on(engine.apply(&lab.hosts, None, lab.sink()))
        .expect("apply");
    assert!(second.success(), "{}", second.to_json());
    assert_eq!(
        std::fs::read_to_string(lab.root("m1").join("restarts")).expect("restarts"),
        "restarted\n"
    );
    let third = rt.block_on(engine.plan(&lab.hosts)).expect("plan");
    assert!(!third.has_changes(), "{third:#?}");
}

#[test]
fn unknown_host_names_are_refused() {
    let lab = lab(&["m1"]);
    let playbook =
        Playbook::parse("x", "[[play]]\nname = \"p\"\nhosts = \"nosuch\"\n").expect("parses");
    let engine = Engine::new(playbook, &TemplateSet::new(), EngineOptions::default());
    let error = runtime()
        .block_on(engine.plan(&lab.hosts))
        .expect_err("unknown host");
    assert_eq!(
        error.to_string(),
        "the playbook selects host \"nosuch\", which is not in the inventory"
    );
}

const FAKE_TOOLS: &[(&str, &str)] = &[
    (
        "sysctl",
        r#"#!/bin/sh
d="$FAKE_ROOT/proc"
case $1 in
  -n) cat "$d/$2" 2>/dev/null || exit 255 ;;
  -w) k=${2%%=*}; mkdir -p "$d" && printf '%s\n' "${2#*=}" > "$d/$k" ;;
esac
"#,
    ),
    (
        "lsmod",
        r#"#!/bin/sh
echo "Module Size Used by"; cat "$FAKE_ROOT/modules" 2>/dev/null
"#,
    ),
    (
        "modprobe",
        r#"#!/bin/sh
echo "$1 1 0" >> "$FAKE_ROOT/modules"
"#,
    ),
    (
        "dpkg-query",
        r#"#!/bin/sh
for last; do :; done
cat "$FAKE_ROOT/dpkg/$last" 2>/dev/null || exit 1
"#,
    ),
    (
        "apt-get",
        r#"#!/bin/sh
case $1 in update) exit 0 ;; esac
mkdir -p "$FAKE_ROOT/dpkg"
for a; do case $a in -*|install) ;; *=*) printf 'ii |%s' "${a#*=}" > "$FAKE_ROOT/dpkg/${a%%=*}" ;; esac; done
"#,
    ),
    (
        "apt-mark",
        r#"#!/bin/sh
f="$FAKE_ROOT/dpkg/$2"; v=$(cat "$f"); printf 'hi |%s' "${v#*|}" > "$f"
"#,
    ),
];

#[test]
fn package_module_and_sysctl_kinds_probe_and_apply_through_sh() {
    let lab = lab(&["m1"]);
    let bin = lab._dir.path().join("bin");
    for (name, text) in FAKE_TOOLS {
        crate::testing::fake_program(&bin, name, text);
    }
    let text = r#"
[[play]]
name = "kernel and packages"
hosts = "all"

[[play.task]]
name = "br_netfilter"
kind = "module"
module = "br_netfilter"
persist_file = "{{ root }}/etc/modules-load.d/k8s.conf"

[[play.task]]
name = "forwarding"
kind = "sysctl"
file = "{{ root }}/etc/sysctl.d/k8s.conf"
settings = { "net.ipv4.ip_forward" = 1 }

[[play.task]]
name = "kubelet"
kind = "package"
packages = ["kubelet"]
version = "1.30.1-*"
hold = true
"#;
    let playbook = Playbook::parse("kinds.toml", text).expect("parses");
    let options = EngineOptions {
        parallelism: 1,
        state_path: STATE.into(),
        history_dir: None,
        ..EngineOptions::default()
    };
    let engine = Engine::new(playbook, &TemplateSet::new(), options);
    let rt = runtime();
    let plan = rt.block_on(engine.plan(&lab.hosts)).expect("plan");
    let reasons: Vec<&str> = plan.hosts[0]
        .tasks
        .iter()
        .map(|t| t.reason.as_str())
        .collect();
    assert_eq!(
        reasons[0],
        format!("module br_netfilter is not loaded; {}/etc/modules-load.d/k8s.conf does not load it at boot", lab.root("m1").display())
    );
    assert!(
        reasons[1].starts_with("net.ipv4.ip_forward does not exist yet;"),
        "{}",
        reasons[1]
    );
    assert_eq!(reasons[2], "kubelet is not installed; kubelet is not held");
    assert_eq!(plan.hosts[0].pending(), 3);
    std::fs::create_dir_all(lab.root("m1").join("dpkg")).expect("dpkg");
    let report = rt
        .block_on(engine.apply(&lab.hosts, None, lab.sink()))
        .expect("apply");
    assert!(report.success(), "{}", report.to_json());
    assert_eq!(report.hosts[0].changed, 3);
    assert_eq!(
        std::fs::read_to_string(lab.root("m1").join("dpkg/kubelet")).expect("pkg"),
        "hi |1.30.1-*"
    );
    assert_eq!(
        std::fs::read_to_string(lab.root("m1").join("proc/net.ipv4.ip_forward")).expect("sysctl"),
        "1\n"
    );
    let again = rt.block_on(engine.plan(&lab.hosts)).expect("plan");
    // The fake apt-get records the pattern itself as the version, which still matches.
    assert!(!again.has_changes(), "{again:#?}");
}

#[test]
fn artifacts_are_planned_by_hash_uploaded_atomically_and_then_left_alone() {
    let mut lab = lab(&["m1", "n1"]);
    // Binary, not UTF-8, and larger than what probes send back as content.
    let bytes: Vec<u8> = (0..1_500_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let artifact = Artifact::new(bytes.clone());
    lab.hosts[0]
        .artifacts
        .insert("tool".into(), artifact.clone());
    let text = r#"
[[play]]
name = "tools"
hosts = "all"

[[play.task]]
name = "tool binary"
kind = "file"
path = "{{ root }}/usr/local/bin/tool"
artifact = "tool"
mode = "0755"
"#;
    let playbook = Playbook::parse("artifacts.toml", text).expect("parses");
    let options = EngineOptions {
        parallelism: 2,
        state_path: STATE.into(),
        history_dir: None,
        ..EngineOptions::default()
    };
    let engine = Engine::new(playbook, &TemplateSet::new(), options);
    let rt = runtime();
    let before = lab.snapshot();
    let plan = rt.block_on(engine.plan(&lab.hosts)).expect("plan");
    assert_eq!(before, lab.snapshot(), "a plan wrote on a host");
    let task = &plan.host("m1").expect("m1").tasks[0];
    assert_eq!(task.status, TaskStatus::Change, "{task:?}");
    assert!(task.diff.is_none(), "a binary has no diff: {task:?}");
    let command = task.command.as_deref().expect("command");
    assert!(
        command.contains("artifact tool")
            && command.contains("mode 0755")
            && command.contains("1500000 bytes")
            && command.contains(artifact.sha256()),
        "{command}"
    );
    // n1 was given no artifact of that name: an error there, not a guess.
    let n1 = plan.host("n1").expect("n1");
    let error = n1.error.as_deref().expect("n1 cannot be planned");
    assert!(error.contains("no artifact named \"tool\""), "{error}");

    lab.hosts.truncate(1);
    let report = rt
        .block_on(engine.apply(&lab.hosts, None, lab.sink()))
        .expect("apply");
    assert!(report.success(), "{}", report.to_json());
    let path = lab.root("m1").join("usr/local/bin/tool");
    assert_eq!(std::fs::read(&path).expect("uploaded"), bytes);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
    assert_eq!(mode & 0o7777, 0o755);
    let plan = rt.block_on(engine.plan(&lab.hosts)).expect("plan");
    assert!(!plan.has_changes(), "{plan:#?}");

    // Changed on the host: the hash differs, a change again (still no diff).
    std::fs::write(&path, b"#!/bin/sh\necho other\n").expect("edit");
    let plan = rt.block_on(engine.plan(&lab.hosts)).expect("plan");
    let task = &plan.hosts[0].tasks[0];
    assert!(
        matches!(task.status, TaskStatus::Change | TaskStatus::Drift),
        "{task:?}"
    );
    assert!(
        task.reason.contains("differs from artifact tool"),
        "{task:?}"
    );
    assert!(task.diff.is_none(), "{task:?}");
}

fn engine_for(text: &str) -> Engine {
    let playbook = Playbook::parse("batch.toml", text).expect("parses");
    let options = EngineOptions {
        parallelism: 1,
        state_path: STATE.into(),
        history_dir: None,
        ..EngineOptions::default()
    };
    Engine::new(playbook, &TemplateSet::new(), options)
}

fn task<'r>(report: &'r RunReport, id: &str) -> &'r TaskReport {
    report.hosts[0]
        .tasks
        .iter()
        .find(|t| t.id == id)
        .unwrap_or_else(|| panic!("no task {id}: {}", report.to_json()))
}

#[test]
fn changes_that_follow_each_other_share_one_channel_with_their_stdin_split() {
    let lab = lab(&["m1"]);
    std::fs::write(lab.root("m1").join("etc/kept"), "kept\n").expect("kept");
    let text = r#"
[[play]]
name = "files"
hosts = "all"

[[play.task]]
name = "one"
kind = "file"
path = "{{ root }}/etc/one"
content = "first file\n"

[[play.task]]
name = "unchanged"
kind = "file"
path = "{{ root }}/etc/kept"
content = "kept\n"

[[play.task]]
name = "two"
kind = "file"
path = "{{ root }}/etc/two"
content = "{% for i in range(5000) %}line {{ i }}\n{% endfor %}"

[[play.task]]
name = "swap"
kind = "line"
path = "{{ root }}/etc/fstab"
comment_out = '\sswap\s'

[[play.task]]
name = "mark"
kind = "command"
cmd = "printf done > {{ root }}/mark"
creates = "{{ root }}/mark"
"#;
    let engine = engine_for(text);
    let rt = runtime();
    let report = rt
        .block_on(engine.apply(&lab.hosts, None, lab.sink()))
        .expect("apply");
    assert!(report.success(), "{}", report.to_json());
    let host = &report.hosts[0];
    // The probe, then every change in one channel.
    assert_eq!((host.changed, host.round_trips), (4, 2), "{host:?}");
    let root = lab.root("m1");
    let read = |p: &str| std::fs::read_to_string(root.join(p)).expect(p);
    assert_eq!(read("etc/one"), "first file\n");
    let two = read("etc/two");
    assert_eq!(two.lines().count(), 5000);
    assert!(two.ends_with("line 4999\n"));
    assert_eq!(
        read("etc/fstab"),
        "/dev/sda1 / ext4 defaults 0 1\n# /swap.img none swap sw 0 0\n"
    );
    assert_eq!(read("mark"), "done");
    let state = ledger_under(root);
    for id in ["files/one", "files/two", "files/swap", "files/mark"] {
        let entry = &state.tasks[id];
        assert_eq!(entry.result, "changed", "{id}");
        assert!(entry.started_ms > 1_600_000_000_000, "{id}: {entry:?}");
    }
    assert!(!state.tasks.contains_key("files/unchanged"));
    let again = rt
        .block_on(engine.apply(&lab.hosts, None, lab.sink()))
        .expect("apply");
    assert_eq!((again.hosts[0].changed, again.hosts[0].round_trips), (0, 1));
}

#[test]
fn no_task_acts_on_a_verdict_an_earlier_change_made_stale() {
    let lab = lab(&["m1"]);
    // `clobber` rewrites the file `config` manages (ok at first), and creates the
    // files `made` and `notes` would have created: every verdict is stale once it
    // ran. `made`'s guard is the shell's check that the file is still absent.
    let root = lab.root("m1").to_path_buf();
    std::fs::write(root.join("config"), "wanted\n").expect("config");
    let text = r#"
[[play]]
name = "p"
hosts = "all"

[[play.task]]
name = "clobber"
kind = "command"
cmd = "printf 'clobbered\n' > {{ root }}/config; printf 'by clobber\n' > {{ root }}/notes; printf 'by clobber\n' > {{ root }}/made"
creates = "{{ root }}/clobbered-once"

[[play.task]]
name = "made"
kind = "file"
path = "{{ root }}/made"
content = "made\n"

[[play.task]]
name = "config"
kind = "file"
path = "{{ root }}/config"
content = "wanted\n"

[[play.task]]
name = "notes"
kind = "command"
cmd = "printf 'by notes\n' > {{ root }}/notes"
creates = "{{ root }}/notes"

[[play.task]]
name = "once"
kind = "command"
cmd = "touch {{ root }}/clobbered-once"
creates = "{{ root }}/clobbered-once"
"#;
    let engine = engine_for(text);
    let rt = runtime();
    let plan = rt.block_on(engine.plan(&lab.hosts)).expect("plan");
    let statuses: Vec<TaskStatus> = plan.hosts[0].tasks.iter().map(|t| t.status).collect();
    assert_eq!(
        statuses,
        [
            TaskStatus::Change,
            TaskStatus::Change,
            TaskStatus::Ok,
            TaskStatus::Change,
            TaskStatus::Change
        ]
    );
    let report = rt
        .block_on(engine.apply(&lab.hosts, None, lab.sink()))
        .expect("apply");
    assert!(report.success(), "{}", report.to_json());
    // `made` was absent when probed; its guard saw the file `clobber` made, so it was
    // judged again (a replace of what is there, not a write refused as stale).
    assert_eq!(task(&report, "p/made").outcome, "changed");
    assert_eq!(
        std::fs::read_to_string(lab.root("m1").join("made")).expect("made"),
        "made\n"
    );
    // `config` was ok when probed; its guard saw the clobbered file, so it was judged
    // again and repaired. `notes` was a change when probed; its guard saw the file
    // it creates, so it did not run.
    assert_eq!(task(&report, "p/config").outcome, "changed");
    assert_eq!(task(&report, "p/notes").outcome, "ok");
    assert_eq!(task(&report, "p/once").outcome, "changed");
    let root = lab.root("m1");
    assert_eq!(
        std::fs::read_to_string(root.join("config")).expect("config"),
        "wanted\n"
    );
    assert_eq!(
        std::fs::read_to_string(root.join("notes")).expect("notes"),
        "by clobber\n"
    );
    // The probe; the batch that stopped at the stale guard and re-probed; the rest.
    assert_eq!(report.hosts[0].round_trips, 3, "{}", report.to_json());
    let again = rt.block_on(engine.plan(&lab.hosts)).expect("plan");
    assert!(!again.has_changes(), "{again:#?}");
}

#[test]
fn a_journal_left_by_a_batch_that_never_finished_is_the_ledger() {
    let lab = lab(&["m1"]);
    let text = r#"
[[play]]
name = "p"
hosts = "all"

[[play.task]]
name = "one"
kind = "file"
path = "{{ root }}/one"
content = "one\n"

[[play.task]]
name = "two"
kind = "file"
path = "{{ root }}/two"
content = "two\n"
"#;
    let engine = engine_for(text);
    let rt = runtime();
    // The batch stops before rewriting the ledger: only its journal holds the entries.
    lab.transports["m1"].fail_calls_containing("k8sup_compact");
    let report = rt
        .block_on(engine.apply(&lab.hosts, None, lab.sink()))
        .expect("apply");
    assert!(report.success(), "{}", report.to_json());
    let root = lab.root("m1");
    assert!(!root.join(STATE).exists());
    let journal = root.join(format!("{STATE}.journal"));
    assert_eq!(
        std::fs::read_to_string(&journal)
            .expect("journal")
            .lines()
            .count(),
        2
    );
    lab.transports["m1"].fail_calls_containing("\u{0}never");
    // The journal is read like the ledger: an edit out of band is drift.
    std::fs::write(root.join("two"), "edited\n").expect("edit");
    let plan = rt.block_on(engine.plan(&lab.hosts)).expect("plan");
    assert_eq!(status_of(&plan, "m1", "p/one"), TaskStatus::Ok);
    assert_eq!(status_of(&plan, "m1", "p/two"), TaskStatus::Drift);
    let again = rt
        .block_on(engine.apply(&lab.hosts, None, lab.sink()))
        .expect("apply");
    assert!(again.success(), "{}", again.to_json());
    assert!(task(&again, "p/two").drift);
    // The journal, still small, stays the record: the ledger as read holds both, the
    // file is still not written.
    let state = ledger_under(root);
    assert!(state.tasks.contains_key("p/one") && state.tasks.contains_key("p/two"));
    assert!(!root.join(STATE).exists());
    assert_eq!(
        std::fs::read_to_string(&journal)
            .expect("journal")
            .lines()
            .count(),
        3
    );
}

/// A journal past `JOURNAL_FOLD_BYTES` is folded into the ledger file at the end of
/// the next batch that records something: the file then holds every entry (those of
/// the journal and the batch's), and the journal is empty.
#[test]
fn a_large_journal_is_folded_into_the_ledger_file() {
    let lab = lab(&["m1"]);
    let text = r#"
[[play]]
name = "p"
hosts = "all"

[[play.task]]
name = "one"
kind = "file"
path = "{{ root }}/one"
content = "one\n"
"#;
    let engine = engine_for(text);
    let rt = runtime();
    let root = lab.root("m1");
    let journal = root.join(format!("{STATE}.journal"));
    std::fs::create_dir_all(journal.parent().expect("dir")).expect("state dir");
    let line = |n: usize| {
        format!(
            r#"{{"task":"old/t{n}","pending_handlers":[],"entry":{{"fingerprint":"v2:{n:0>200}","result":"changed","started_ms":1,"finished_ms":2,"duration_ms":1}}}}"#
        )
    };
    let lines: Vec<String> = (0..300).map(line).collect();
    let old = lines.join("\n") + "\n";
    assert!(old.len() as u64 > crate::state::JOURNAL_FOLD_BYTES);
    std::fs::write(&journal, &old).expect("journal");
    let report = rt
        .block_on(engine.apply(&lab.hosts, None, lab.sink()))
        .expect("apply");
    assert!(report.success(), "{}", report.to_json());
    assert_eq!(std::fs::read_to_string(&journal).expect("journal"), "");
    let file = StateLedger::parse(&std::fs::read_to_string(root.join(STATE)).expect("state"))
        .expect("ledger");
    assert_eq!(
        file.tasks.len(),
        301,
        "every entry of the journal and the batch's"
    );
    assert!(file.tasks.contains_key("old/t299") && file.tasks.contains_key("p/one"));
}

#[test]
fn the_report_keeps_each_change_diff_start_and_each_failure_stderr() {
    let lab = lab(&["m1"]);
    // Already as wanted: settled in the middle of the batch of changes.
    std::fs::write(lab.root("m1").join("etc/kept"), "kept\n").expect("kept");
    let text = r#"
[[play]]
name = "r"
hosts = "all"

[[play.task]]
name = "conf"
kind = "file"
path = "{{ root }}/etc/conf"
content = "a=1\n"

[[play.task]]
name = "kept"
kind = "file"
path = "{{ root }}/etc/kept"
content = "kept\n"

[[play.task]]
name = "mark"
kind = "command"
cmd = "printf done > {{ root }}/mark"
creates = "{{ root }}/mark"

[[play.task]]
name = "broken"
kind = "command"
cmd = "echo 'cannot open the frobnicator' >&2; exit 3"
"#;
    let engine = engine_for(text);
    let report = runtime()
        .block_on(engine.apply(&lab.hosts, None, lab.sink()))
        .expect("apply");
    assert!(!report.success());
    let conf = task(&report, "r/conf");
    assert_eq!(conf.outcome, "changed");
    let diff = conf.diff.as_deref().expect("a changed file keeps its diff");
    assert!(diff.contains("+a=1"), "{diff}");
    let mark = task(&report, "r/mark");
    assert!(
        mark.command
            .as_deref()
            .is_some_and(|c| c.contains("printf done")),
        "{mark:?}"
    );
    let broken = task(&report, "r/broken");
    assert_eq!(broken.outcome, "failed");
    let stderr = broken
        .stderr
        .as_deref()
        .expect("a failure keeps its stderr");
    assert!(stderr.contains("cannot open the frobnicator"), "{stderr}");
    assert!(
        broken
            .command
            .as_deref()
            .is_some_and(|c| c.contains("exit 3")),
        "{broken:?}"
    );
    // Each task has a start within the run, and the host ran them in order.
    let starts: Vec<u64> = ["r/conf", "r/kept", "r/mark", "r/broken"]
        .iter()
        .map(|id| task(&report, id).started_ms.expect("a start"))
        .collect();
    assert!(starts.windows(2).all(|w| w[0] <= w[1]), "{starts:?}");
    assert!(
        starts.iter().all(|s| *s <= report.duration_ms),
        "{starts:?} in {}ms",
        report.duration_ms
    );
    // What is recorded reads back from JSON the same.
    let back: RunReport = serde_json::from_str(&report.to_json()).expect("parses");
    assert_eq!(back, report);
}

/// Masters give `masters_hold_images` after a slow step; the node's task needs both
/// masters' files, so it can only succeed if it waited for every giver.
const SIGNALS: &str = r#"
[[play]]
name = "pull"
hosts = "masters"

[[play.task]]
name = "images"
kind = "command"
cmd = "sleep 0.3; echo pulled > held"
creates = "{{ root }}/held"
signals = "masters_hold_images"

[[play]]
name = "nodes"
hosts = "nodes"

[[play.task]]
name = "after the masters"
kind = "command"
cmd = "cat ../m1/held ../m2/held > seen"
creates = "{{ root }}/seen"
waits_for = "masters_hold_images"
"#;

/// Applies, failing the test on a deadlock instead of hanging.
fn run_with_timeout(lab: &Lab, engine: &Engine) -> RunReport {
    runtime()
        .block_on(async {
            tokio::time::timeout(
                std::time::Duration::from_secs(60),
                engine.apply(&lab.hosts, None, lab.sink()),
            )
            .await
        })
        .expect("no deadlock")
        .expect("apply")
}

#[test]
fn a_task_waits_until_every_host_that_signals_has_given_the_signal() {
    // The node comes first and parallelism is 1: it gives its slot back while it waits.
    let lab = lab(&["n1", "m1", "m2"]);
    let report = run_with_timeout(&lab, &engine_for(SIGNALS));
    assert!(report.success(), "{}", report.to_json());
    assert_eq!(
        std::fs::read_to_string(lab.root("n1").join("seen")).expect("seen"),
        "pulled\npulled\n"
    );
    let waited: Vec<String> = lab
        .events
        .lock()
        .expect("events")
        .iter()
        .filter_map(|e| match e {
            EngineEvent::TaskWaiting {
                host, value, from, ..
            } if host == "n1" => Some(format!("{value} from {from}")),
            _ => None,
        })
        .collect();
    assert_eq!(waited, ["masters_hold_images from m1, m2"]);
    // Settled hosts give their signals too: a second run waits for nothing and changes nothing.
    let again = run_with_timeout(&lab, &engine_for(SIGNALS));
    assert!(again.success(), "{}", again.to_json());
    assert!(
        again.hosts.iter().all(|h| h.changed == 0),
        "{}",
        again.to_json()
    );
}

#[test]
fn a_giver_that_fails_does_not_hold_back_the_hosts_waiting_for_its_signal() {
    let lab = lab(&["n1", "m1", "m2"]);
    lab.transports["m2"].fail_calls_containing("k8sup_apply_command 'sleep");
    let text = SIGNALS.replace("cat ../m1/held ../m2/held", "cat ../m1/held");
    let report = run_with_timeout(&lab, &engine_for(&text));
    let outcome = |name: &str| {
        report
            .hosts
            .iter()
            .find(|h| h.host == name)
            .map(|h| h.outcome)
            .expect("host")
    };
    assert_eq!(outcome("m2"), HostOutcome::Failed, "{}", report.to_json());
    assert_eq!(outcome("n1"), HostOutcome::Ok, "{}", report.to_json());
    assert!(lab.root("n1").join("seen").exists());
}

#[test]
fn hosts_that_give_and_wait_for_one_signal_wait_only_for_each_other() {
    let text = r#"
[[play]]
name = "masters"
hosts = "masters"

[[play.task]]
name = "mine"
kind = "command"
cmd = "echo {{ host.name }} > mine"
creates = "{{ root }}/mine"
signals = "every_master_ready"

[[play.task]]
name = "theirs"
kind = "command"
cmd = "cat ../m1/mine ../m2/mine > theirs"
creates = "{{ root }}/theirs"
waits_for = "every_master_ready"
"#;
    let lab = lab(&["m1", "m2"]);
    let report = run_with_timeout(&lab, &engine_for(text));
    assert!(report.success(), "{}", report.to_json());
    for host in ["m1", "m2"] {
        assert_eq!(
            std::fs::read_to_string(lab.root(host).join("theirs")).expect("theirs"),
            "m1\nm2\n"
        );
    }
}

/// A systemctl that keeps, as systemd does, the units it loaded apart from the files:
/// `start` and `restart` run the loaded unit, and only a reload (`daemon-reload`, or
/// the one `enable` and `disable` make after their symlinks, unless `--no-reload`)
/// loads the files again. Every call is logged in `systemd/calls`.
const RELOADING_SYSTEMCTL: &str = r#"#!/bin/sh
d="$FAKE_ROOT/systemd"; mkdir -p "$d/loaded"
echo "$*" >> "$d/calls"
reload() { for f in "$FAKE_ROOT"/etc/systemd/system/*.service; do [ ! -e "$f" ] || cp "$f" "$d/loaded/"; done; }
case $1 in
  show) eval "u=\${$#}"
        if [ -e "$FAKE_ROOT/etc/systemd/system/$u.service" ]; then echo LoadState=loaded; else echo LoadState=not-found; fi
        [ -e "$d/$u.enabled" ] && echo UnitFileState=enabled || echo UnitFileState=disabled
        [ -e "$d/$u.active" ] && echo ActiveState=active || echo ActiveState=inactive ;;
  daemon-reload) reload ;;
  enable) if [ "$2" = --now ]; then u=$3; else u=$2; fi
          touch "$d/$u.enabled"; reload
          if [ "$2" = --now ]; then cp "$d/loaded/$u.service" "$d/$u.running" && touch "$d/$u.active"; fi ;;
  start|restart) cp "$d/loaded/$2.service" "$d/$2.running" && touch "$d/$2.active" ;;
  *) echo "fake systemctl: $*" >&2; exit 1 ;;
esac
"#;

/// A unit written, then enabled and started, then restarted by its handler: the
/// service runs the unit as written, with the one reload that `systemctl enable`
/// makes. Written again while enabled and running: the restart follows a reload.
#[test]
fn a_service_runs_its_unit_as_written_with_one_reload() {
    let lab = lab(&["m1"]);
    crate::testing::fake_program(
        &lab._dir.path().join("bin"),
        "systemctl",
        RELOADING_SYSTEMCTL,
    );
    let playbook = |version: &str| {
        format!(
            r#"
[[play]]
name = "p"
hosts = "all"

[[play.task]]
name = "unit"
kind = "file"
path = "{{{{ root }}}}/etc/systemd/system/app.service"
content = "[Service]\nExecStart=/bin/app {version}\n"
notify = "restart app"

[[play.task]]
name = "app"
kind = "service"
service = "app"
enabled = true
state = "started"

[[play.handler]]
name = "restart app"
kind = "service"
service = "app"
state = "restarted"
"#
        )
    };
    let root = lab.root("m1").to_path_buf();
    let calls = || std::fs::read_to_string(root.join("systemd/calls")).unwrap_or_default();
    let running = || std::fs::read_to_string(root.join("systemd/app.running")).unwrap_or_default();
    for (version, reloads) in [("v1", ["enable --now app"]), ("v2", ["daemon-reload"])] {
        let engine = engine_for(&playbook(version));
        let _ = std::fs::remove_file(root.join("systemd/calls"));
        let report = runtime()
            .block_on(engine.apply(&lab.hosts, None, lab.sink()))
            .expect("apply");
        assert_eq!(report.hosts[0].outcome, HostOutcome::Ok, "{report:#?}");
        assert_eq!(
            running(),
            format!("[Service]\nExecStart=/bin/app {version}\n"),
            "the unit as written runs; calls: {}",
            calls()
        );
        let changing: Vec<String> = calls()
            .lines()
            .filter(|c| !c.starts_with("show"))
            .map(str::to_string)
            .collect();
        assert_eq!(
            changing,
            [reloads[0], "restart app"],
            "one reload, by {}",
            reloads[0]
        );
    }
}
