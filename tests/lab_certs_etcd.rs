//! Certificates and etcd on an HA cluster of the lab: `k8sup certs` lists every
//! certificate and warns of the aged ones, `certs renew` renews them one master at a
//! time while the API keeps answering, `etcd backup` and `etcd restore` bring a deleted
//! ConfigMap back, and a corrupted snapshot is refused before anything stops.

mod common;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use common::{
    endpoint_on_first_master, k8sup, kill_in, lab, read, spec, stderr, stdout, write_inventory,
};
use k8sup_lab::emu::etcd::{pod_log, PodEvent};
use k8sup_lab::Lab;

const KUBECTL: &str = "kubectl --kubeconfig /etc/kubernetes/admin.conf";

fn kubectl(lab: &Lab, host: &str, args: &str) -> (bool, String) {
    let out = lab
        .ssh(host, &format!("{KUBECTL} {args}"))
        .expect("ssh runs");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// Another run's lock on `host`: a process there holds /run/k8sup.lock (as an apply
/// from another controller, or the command it left running, does) until dropped.
struct ForeignLock<'a> {
    lab: &'a Lab,
    host: &'static str,
}

/// The `sleep` that marks the holder's processes (flock and its sleep).
const HOLDER: &str = "sleep 31415";

impl<'a> ForeignLock<'a> {
    fn take(lab: &'a Lab, host: &'static str) -> ForeignLock<'a> {
        let out = lab
            .ssh(
                host,
                &format!(
                    "setsid flock /run/k8sup.lock {HOLDER} </dev/null >/dev/null 2>&1 &
                     for i in $(seq 100); do flock -n /run/k8sup.lock true || exit 0; sleep 0.1; done; exit 1"
                ),
            )
            .expect("ssh runs");
        assert!(out.status.success(), "the foreign lock was not taken");
        ForeignLock { lab, host }
    }
}

impl Drop for ForeignLock<'_> {
    fn drop(&mut self) {
        kill_in(self.lab, self.host, HOLDER);
    }
}

/// The names in a host's /var/lib/etcd (etcd's data dir, where the container's tools
/// stage files and must leave nothing).
fn etcd_dir(lab: &Lab, host: &str) -> Vec<String> {
    common::sorted_names(&lab.host(host).unwrap().path("/var/lib/etcd"))
}

/// The names in a host's /var/tmp (where k8sup stages snapshots and must leave nothing).
fn var_tmp(lab: &Lab, host: &str) -> Vec<String> {
    common::sorted_names(&lab.host(host).unwrap().path("/var/tmp"))
}

/// The most masters whose API server was down at the same moment, over `events`.
fn most_masters_down_together(events: &[PodEvent]) -> usize {
    let mut down = BTreeSet::new();
    let mut most = 0;
    for e in events.iter().filter(|e| e.pod == "kube-apiserver") {
        match e.event.as_str() {
            "stopped" => {
                down.insert(e.host.clone());
            }
            "started" => {
                down.remove(&e.host);
            }
            _ => {}
        }
        most = most.max(down.len());
    }
    most
}

fn restarted_hosts(events: &[PodEvent]) -> BTreeSet<String> {
    events
        .iter()
        .filter(|e| e.pod == "kube-apiserver" && e.event == "stopped")
        .map(|e| e.host.clone())
        .collect()
}

/// Polls the API through the cluster endpoint until told to stop; counts failures.
struct ApiWatch {
    stop: Arc<AtomicBool>,
    failures: Arc<AtomicUsize>,
    polls: Arc<AtomicUsize>,
    thread: std::thread::JoinHandle<()>,
}

impl ApiWatch {
    /// Polls from `host` with the system's ssh, as [`Lab::ssh`] does (a `Lab` stays in
    /// the test's thread: dropping one tears the lab down).
    fn start(lab: &Lab, host: &str) -> ApiWatch {
        let stop = Arc::new(AtomicBool::new(false));
        let failures = Arc::new(AtomicUsize::new(0));
        let polls = Arc::new(AtomicUsize::new(0));
        let (s, f, p) = (stop.clone(), failures.clone(), polls.clone());
        let key = lab.private_key();
        let known = lab.known_hosts();
        let addr = lab.host(host).unwrap().ssh_addr();
        let thread =
            std::thread::spawn(move || {
                while !s.load(Ordering::SeqCst) {
                    let out = std::process::Command::new("ssh")
                    .arg("-i")
                    .arg(&key)
                    .arg("-o")
                    .arg(format!("UserKnownHostsFile={}", known.display()))
                    .args(["-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-p"])
                    .arg(addr.port().to_string())
                    .arg(format!("root@{}", addr.ip()))
                    .arg("kubectl --kubeconfig /etc/kubernetes/kubelet.conf get nodes --no-headers")
                    .output()
                    .expect("ssh runs");
                    p.fetch_add(1, Ordering::SeqCst);
                    if !out.status.success() {
                        f.fetch_add(1, Ordering::SeqCst);
                    }
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
            });
        ApiWatch {
            stop,
            failures,
            polls,
            thread,
        }
    }

    /// (polls, failures)
    fn finish(self) -> (usize, usize) {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.join().expect("the watch ends");
        (
            self.polls.load(Ordering::SeqCst),
            self.failures.load(Ordering::SeqCst),
        )
    }
}

#[test]
fn ha_cluster_certificates_renewal_backup_and_restore() {
    let Some(lab) = lab(&spec(
        r#"
name = "certetcd"
[[hosts]]
name = "cp1"
roles = ["master"]
[[hosts]]
name = "cp2"
roles = ["master"]
distro = "rocky9"
[[hosts]]
name = "cp3"
roles = ["master"]
arch = "arm64"
[[hosts]]
name = "w1"
"#,
    )) else {
        return;
    };
    let inv = write_inventory(
        &lab,
        "ce.toml",
        &endpoint_on_first_master(
            &lab,
            &lab.inventory_toml("[cluster]\nname = \"ce\"\nkubernetes_version = \"1.30\"\n"),
        ),
    );
    let inv = inv.to_str().unwrap();
    let state_dir = lab.dir().join("k8sup-state");
    let env = [("K8SUP_STATE_DIR", state_dir.to_str().unwrap())];
    let out = k8sup(&["apply", "-i", inv], &env);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let mut said = String::new();

    // ---- certs on a fresh cluster: every certificate, exit 0 ----
    let out = k8sup(&["certs", "-i", inv, "--json"], &env);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    said += &stdout(&out);
    let doc: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let listed: BTreeSet<(String, String)> = doc["certificates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["host"].as_str().unwrap().to_string(),
                c["name"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    for master in ["cp1", "cp2", "cp3"] {
        for name in [
            "admin.conf",
            "apiserver",
            "apiserver-etcd-client",
            "apiserver-kubelet-client",
            "controller-manager.conf",
            "etcd-healthcheck-client",
            "etcd-peer",
            "etcd-server",
            "front-proxy-client",
            "scheduler.conf",
            "ca",
            "etcd-ca",
            "front-proxy-ca",
            "kubelet-client",
        ] {
            assert!(
                listed.contains(&(master.to_string(), name.to_string())),
                "{name} of {master} is not listed: {listed:?}"
            );
        }
    }
    // super-admin.conf exists only where kubeadm init ran.
    assert!(listed.contains(&("cp1".into(), "super-admin.conf".into())));
    assert!(listed.contains(&("w1".into(), "kubelet-client".into())));
    assert_eq!(listed.len(), 15 + 14 + 14 + 1, "{listed:?}");
    let expiries: Vec<u64> = doc["certificates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["expires_unix"].as_u64().unwrap())
        .collect();
    assert!(
        expiries.windows(2).all(|w| w[0] <= w[1]),
        "not sorted by expiry"
    );

    // A host that cannot be read is an error that names it, not a silent gap.
    lab.faults("w1").unwrap().stop_sshd().unwrap();
    let out = k8sup(&["certs", "-i", inv], &env);
    lab.faults("w1").unwrap().start_sshd().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(stderr(&out).contains("w1"), "{}", stderr(&out));
    assert!(stdout(&out).contains("cp1"), "the others are still listed");

    // ---- the ageing fault: exit 2, the certificate and host named ----
    lab.faults("cp2")
        .unwrap()
        .age_certificate("apiserver", 10)
        .unwrap();
    lab.faults("cp3")
        .unwrap()
        .age_certificate("etcd-server", 20)
        .unwrap();
    lab.faults("w1")
        .unwrap()
        .age_certificate("kubelet-client", 25)
        .unwrap();
    let out = k8sup(&["certs", "-i", inv, "--warn", "30d"], &env);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let text = stdout(&out);
    said += &text;
    assert!(
        text.contains("EXPIRING: apiserver on cp2 expires"),
        "{text}"
    );
    assert!(text.contains("EXPIRING: etcd-server on cp3"), "{text}");
    assert!(text.contains("EXPIRING: kubelet-client on w1"), "{text}");
    let first_row = text.lines().nth(1).unwrap_or("");
    assert!(
        first_row.contains("cp2") && first_row.contains("apiserver"),
        "the soonest first: {text}"
    );
    // A shorter window sees only the apiserver's.
    let out = k8sup(&["certs", "-i", inv, "--warn", "15d"], &env);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        !stdout(&out).contains("EXPIRING: etcd-server"),
        "{}",
        stdout(&out)
    );

    // ---- renew: plan first, then one master at a time while the API answers ----
    let out = k8sup(&["certs", "renew", "-i", inv, "--dry-run"], &env);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let plan = stdout(&out);
    assert!(plan.contains("1. cp2 (due: apiserver in "), "{plan}");
    assert!(plan.contains("2. cp3 (due: etcd-server in"), "{plan}");
    assert!(!plan.contains("cp1 (due"), "{plan}");
    assert!(plan.contains("note: kubelet-client on w1"), "{plan}");
    // Another run holds a master: renewal is refused before anything restarts.
    let log_before = pod_log(&lab.cluster_dir()).len();
    let foreign = ForeignLock::take(&lab, "cp2");
    let out = k8sup(&["certs", "renew", "-i", inv], &env);
    drop(foreign);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("error: not renewing: cp2: locked by"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        pod_log(&lab.cluster_dir()).len(),
        log_before,
        "a master was restarted"
    );
    // A master whose API server is already down: renewing another one is refused.
    lab.ssh(
        "cp1",
        "mv /etc/kubernetes/manifests/kube-apiserver.yaml /root/ && curl -ksf https://127.0.0.1:6443/livez; true",
    )
    .unwrap();
    let log_down = pod_log(&lab.cluster_dir()).len();
    let out = k8sup(&["certs", "renew", "-i", inv], &env);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("the API server of cp1 does not answer (curl: (7) Failed to connect"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        pod_log(&lab.cluster_dir()).len(),
        log_down,
        "a master was restarted"
    );
    lab.ssh(
        "cp1",
        "mv /root/kube-apiserver.yaml /etc/kubernetes/manifests/ && curl -ksf https://127.0.0.1:6443/livez",
    )
    .unwrap();
    let admin_before = read(&lab, "cp2", "/etc/kubernetes/admin.conf");
    let log_before = pod_log(&lab.cluster_dir()).len();
    let watch = ApiWatch::start(&lab, "w1");
    let out = k8sup(&["certs", "renew", "-i", inv], &env);
    let (polls, failures) = watch.finish();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    said += &stdout(&out);
    said += &stderr(&out);
    assert!(stdout(&out).contains("cp2: renewed"), "{}", stdout(&out));
    assert!(stdout(&out).contains("cp3: renewed"), "{}", stdout(&out));
    let events = pod_log(&lab.cluster_dir())[log_before..].to_vec();
    assert_eq!(
        restarted_hosts(&events),
        ["cp2".to_string(), "cp3".to_string()].into_iter().collect(),
        "{events:?}"
    );
    for host in ["cp2", "cp3"] {
        for pod in [
            "etcd",
            "kube-apiserver",
            "kube-controller-manager",
            "kube-scheduler",
        ] {
            for what in ["stopped", "started"] {
                assert!(
                    events
                        .iter()
                        .any(|e| e.host == host && e.pod == pod && e.event == what),
                    "{pod} on {host} not {what}: {events:?}"
                );
            }
        }
    }
    assert_eq!(most_masters_down_together(&events), 1, "{events:?}");
    assert!(polls > 0);
    assert_eq!(
        failures, 0,
        "the API failed {failures} of {polls} polls during the renewal"
    );
    // The renewed admin kubeconfig is root's kubeconfig on that master.
    let admin_after = read(&lab, "cp2", "/etc/kubernetes/admin.conf");
    assert_ne!(admin_before, admin_after);
    assert_eq!(read(&lab, "cp2", "/root/.kube/config"), admin_after);
    let out = k8sup(&["certs", "-i", inv, "--warn", "15d"], &env);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let out = k8sup(&["certs", "renew", "-i", inv, "--dry-run"], &env);
    assert!(out.status.success());
    assert!(
        stdout(&out).contains("nothing to renew: no kubeadm certificate expires within 30d"),
        "{}",
        stdout(&out)
    );

    // ---- apply renews what `[certificates] renew_before` says is due ----
    lab.faults("cp1")
        .unwrap()
        .age_certificate("front-proxy-client", 5)
        .unwrap();
    let renewing = write_inventory(
        &lab,
        "renewing.toml",
        &format!(
            "{}\n[certificates]\nrenew_before = \"30d\"\n",
            endpoint_on_first_master(
                &lab,
                &lab.inventory_toml("[cluster]\nname = \"ce\"\nkubernetes_version = \"1.30\"\n")
            )
        ),
    );
    let out = k8sup(&["apply", "-i", renewing.to_str().unwrap()], &env);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    said += &stdout(&out);
    assert!(
        stdout(&out).contains("1. cp1 (due: front-proxy-client in"),
        "{}",
        stdout(&out)
    );
    assert!(stdout(&out).contains("cp1: renewed"), "{}", stdout(&out));
    let out = k8sup(&["certs", "-i", inv, "--warn", "15d"], &env);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    // Nothing due: a second apply renews nothing.
    let out = k8sup(&["apply", "-i", renewing.to_str().unwrap()], &env);
    assert!(out.status.success());
    assert!(
        stdout(&out).contains("nothing to renew"),
        "{}",
        stdout(&out)
    );

    // ---- backup, delete, restore: the ConfigMap is back ----
    let (ok, text) = kubectl(
        &lab,
        "cp1",
        "apply -f - <<'EOF'\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: keepme\n  namespace: default\ndata:\n  colour: teal\nEOF",
    );
    assert!(ok, "{text}");
    let backups = lab.dir().join("backups");
    let backups_s = backups.to_str().unwrap();
    let mut files = Vec::new();
    for _ in 0..3 {
        let out = k8sup(
            &[
                "etcd", "backup", "-i", inv, "-o", backups_s, "--keep", "2", "--json",
            ],
            &env,
        );
        assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
        said += &stdout(&out);
        said += &stderr(&out);
        let b: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
        assert!(b["status"]["revision"].as_u64().unwrap() > 0, "{b}");
        assert!(b["status"]["totalKey"].as_u64().unwrap() > 10, "{b}");
        files.push(b["file"].as_str().unwrap().to_string());
        std::thread::sleep(std::time::Duration::from_millis(1100));
    }
    let left = common::sorted_names(&backups);
    assert_eq!(
        left.len(),
        4,
        "two snapshots and their sha256 kept: {left:?}"
    );
    assert!(
        left[0].starts_with("ce-") && left[0].ends_with("Z.db"),
        "{left:?}"
    );
    let snapshot = std::path::PathBuf::from(files.last().unwrap());
    let bytes = std::fs::read(&snapshot).unwrap();
    let sums = std::fs::read_to_string(format!("{}.sha256", snapshot.display())).unwrap();
    assert!(
        sums.starts_with(&k8sup_ops::etcd::sha256_hex(&bytes)),
        "{sums}"
    );
    // Nothing left on the master.
    for h in ["cp1", "cp2", "cp3"] {
        let leftovers = var_tmp(&lab, h);
        assert!(leftovers.is_empty(), "{h}:/var/tmp has {leftovers:?}");
        assert_eq!(etcd_dir(&lab, h), ["member"], "{h}:/var/lib/etcd");
    }
    // A kubeadm master has no etcd client of its own: the etcd container's was used.
    let snapshot_saves: Vec<Vec<String>> = lab
        .host("cp1")
        .unwrap()
        .commands()
        .unwrap()
        .into_iter()
        .map(|c| c.argv)
        .filter(|argv| argv.iter().any(|a| a == "save"))
        .collect();
    assert_eq!(snapshot_saves.len(), 3, "{snapshot_saves:?}");
    for argv in &snapshot_saves {
        assert_eq!(argv[..2], ["crictl", "exec"], "{argv:?}");
        assert!(
            argv.contains(&"--cert=/etc/kubernetes/pki/etcd/healthcheck-client.crt".to_string()),
            "{argv:?}"
        );
    }

    let (ok, text) = kubectl(&lab, "cp1", "delete configmap keepme");
    assert!(ok, "{text}");
    let (ok, _) = kubectl(&lab, "cp1", "get configmap keepme");
    assert!(!ok, "the ConfigMap is deleted");

    // A corrupted snapshot is refused before anything stops.
    let bad_dir = lab.dir().join("bad");
    std::fs::create_dir_all(&bad_dir).unwrap();
    let bad = bad_dir.join(snapshot.file_name().unwrap());
    let mut corrupted = bytes.clone();
    corrupted[100] ^= 0x20;
    std::fs::write(&bad, &corrupted).unwrap();
    std::fs::copy(
        format!("{}.sha256", snapshot.display()),
        format!("{}.sha256", bad.display()),
    )
    .unwrap();
    let log_before = pod_log(&lab.cluster_dir()).len();
    let out = k8sup(
        &[
            "etcd",
            "restore",
            "-i",
            inv,
            "--from",
            bad.to_str().unwrap(),
            "--yes",
        ],
        &env,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("sha256 mismatch"), "{}", stderr(&out));
    // Without --yes and without a terminal: refused after the plan.
    let out = k8sup(
        &[
            "etcd",
            "restore",
            "-i",
            inv,
            "--from",
            snapshot.to_str().unwrap(),
        ],
        &env,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains(
            "stdin is not a terminal, so no one can confirm: nothing was changed; pass --yes"
        ),
        "{}",
        stderr(&out)
    );
    assert!(
        stdout(&out).contains("--initial-cluster cp1=https://"),
        "{}",
        stdout(&out)
    );
    said += &stdout(&out);
    assert_eq!(
        pod_log(&lab.cluster_dir()).len(),
        log_before,
        "something stopped"
    );

    let restore = [
        "etcd",
        "restore",
        "-i",
        inv,
        "--from",
        snapshot.to_str().unwrap(),
        "--yes",
    ];
    // Another run holds a master: the restore is refused before anything stops.
    let foreign = ForeignLock::take(&lab, "cp3");
    let out = k8sup(&restore, &env);
    drop(foreign);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("error: not restoring: cp3: locked by"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        pod_log(&lab.cluster_dir()).len(),
        log_before,
        "something stopped"
    );

    let out = k8sup(&restore, &env);
    said += &stdout(&out);
    said += &stderr(&out);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let (ok, text) = kubectl(
        &lab,
        "cp1",
        "get configmap keepme -o jsonpath={.data.colour}",
    );
    assert!(ok, "{text}");
    assert_eq!(text.trim(), "teal");
    let events = pod_log(&lab.cluster_dir())[log_before..].to_vec();
    assert_eq!(restarted_hosts(&events).len(), 3, "{events:?}");
    let (ok, nodes) = kubectl(&lab, "cp1", "get nodes --no-headers");
    assert!(ok, "{nodes}");
    assert_eq!(
        nodes.lines().filter(|l| l.contains(" Ready")).count(),
        4,
        "{nodes}"
    );
    // The old data dirs are kept aside, the snapshot upload is gone.
    for h in ["cp1", "cp2", "cp3"] {
        let aside = std::fs::read_dir(lab.host(h).unwrap().path("/var/lib"))
            .unwrap()
            .filter_map(|e| e.ok())
            .any(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with("etcd.k8sup-before-restore-")
            });
        assert!(aside, "{h} kept no old data dir");
        let tmp = var_tmp(&lab, h);
        assert!(tmp.is_empty(), "{h}:/var/tmp has {tmp:?}");
        // The restored data dir is just etcd's: nothing staged is left in it.
        assert_eq!(etcd_dir(&lab, h), ["member"], "{h}:/var/lib/etcd");
    }

    // ---- nothing secret in any output ----
    let state: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(lab.cluster_dir().join("state.json")).unwrap(),
    )
    .unwrap();
    let key = state["certificate_key"]
        .as_str()
        .unwrap_or("no certificate key");
    assert!(!said.contains(key), "the certificate key leaked");
    for token in state["tokens"].as_array().into_iter().flatten() {
        let t = token["token"].as_str().unwrap();
        assert!(!said.contains(t), "a bootstrap token leaked");
    }
    for secret in ["PRIVATE KEY", "colour", "teal", "k8sup-lab bbolt"] {
        assert!(
            !said.contains(secret),
            "{secret:?} leaked into the output:\n{said}"
        );
    }
}
