//! Kubernetes upgrades on the lab: raise `kubernetes_version` and `plan` shows the
//! rolling upgrade host by host, `apply` carries it out (one minor at a time, the
//! first master with `kubeadm upgrade apply`, the others with `kubeadm upgrade node`,
//! drained and uncordoned in batches of `max_unavailable`), a second apply changes
//! nothing; downgrades are refused before any host is touched; a drain a
//! PodDisruptionBudget blocks stops with the pod named and resumes once it is gone;
//! a controller killed mid-upgrade is resumed without upgrading a host twice.

mod common;

use std::collections::BTreeMap;

use common::{assert_converged, k8sup, lab, on, read, spec, stderr, stdout, write_inventory};
use k8sup_lab::Lab;

const KUBECTL: &str = "kubectl --kubeconfig /etc/kubernetes/admin.conf";

/// Each node's kubelet version, Ready and unschedulable, as the API says.
fn nodes(lab: &Lab, master: &str) -> BTreeMap<String, (String, bool, bool)> {
    let text = on(lab, master, &format!("{KUBECTL} get nodes -o json"));
    let list: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    list["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|n| {
            let ready = n["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "Ready" && c["status"] == "True");
            (
                n["metadata"]["name"].as_str().unwrap().to_string(),
                (
                    n["status"]["nodeInfo"]["kubeletVersion"]
                        .as_str()
                        .unwrap_or("")
                        .to_string(),
                    ready,
                    n["spec"]["unschedulable"].as_bool().unwrap_or(false),
                ),
            )
        })
        .collect()
}

/// Every node Ready, schedulable, its kubelet at `version` (`v1.30.` matches any patch).
fn assert_all_at(lab: &Lab, master: &str, version: &str, count: usize) {
    let nodes = nodes(lab, master);
    assert_eq!(nodes.len(), count, "{nodes:?}");
    for (name, (kubelet, ready, unschedulable)) in &nodes {
        assert!(
            kubelet.starts_with(version),
            "{name}: kubelet {kubelet}, wanted {version}"
        );
        assert!(ready, "{name} is not Ready");
        assert!(!unschedulable, "{name} is still cordoned");
    }
}

fn ok(out: &std::process::Output) {
    assert!(out.status.success(), "{}{}", stdout(out), stderr(out));
}

/// Exit 1: returns what k8sup said on stderr.
fn refused(out: &std::process::Output) -> String {
    assert_eq!(out.status.code(), Some(1), "{}{}", stdout(out), stderr(out));
    stderr(out)
}

/// `host`'s file at `path` holds `wanted`.
fn assert_holds(lab: &Lab, host: &str, path: &str, wanted: &str) {
    let text = read(lab, host, path);
    assert!(
        text.contains(wanted),
        "{host}:{path} lacks {wanted:?}:\n{text}"
    );
}

const PAUSE_3_10_FLAG: &str = "--pod-infra-container-image=registry.k8s.io/pause:3.10";

fn inventory(lab: &Lab, version: &str, upgrade: &str) -> String {
    let cluster = format!(
        "[cluster]\nname = \"up\"\nkubernetes_version = \"{version}\"\n\n[upgrade]\n{upgrade}\n"
    );
    let path = write_inventory(
        lab,
        &format!("up-{version}.toml"),
        &lab.inventory_toml(&cluster),
    );
    path.to_str().unwrap().to_string()
}

/// A lab of `spec` (its `{name}` replaced) with Kubernetes 1.29 installed by k8sup,
/// and the state directory k8sup runs with; `None` where no lab can run.
fn installed_at_1_29(spec_text: &str, name: &str) -> Option<(Lab, String)> {
    let lab = lab(&spec(&spec_text.replace("{name}", name)))?;
    let state_dir = lab.dir().join("k8sup-state").to_str().unwrap().to_string();
    let old = inventory(&lab, "1.29", "");
    ok(&k8sup(
        &["apply", "-i", &old],
        &[("K8SUP_STATE_DIR", &state_dir)],
    ));
    Some((lab, state_dir))
}

const HA: &str = r#"
name = "{name}"
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
[[hosts]]
name = "w2"
distro = "rocky9"
arch = "arm64"
[[hosts]]
name = "w3"
arch = "arm64"
"#;

#[test]
fn an_ha_cluster_is_upgraded_node_by_node_and_then_left_alone() {
    let Some((lab, state_dir)) = installed_at_1_29(HA, "upha") else {
        return;
    };
    let env = [("K8SUP_STATE_DIR", state_dir.as_str())];
    assert_all_at(&lab, "cp1", "v1.29.", 6);

    // The plan: one hop, every host in order, the exact commands; nothing changes.
    let new = inventory(&lab, "1.30", "");
    let plan = k8sup(&["plan", "-i", &new, "--detailed-exitcode"], &env);
    assert_eq!(
        plan.status.code(),
        Some(2),
        "{}{}",
        stdout(&plan),
        stderr(&plan)
    );
    let text = stdout(&plan);
    assert!(
        text.contains("Kubernetes upgrade: the control plane runs v1.29.15, the inventory asks for v1.30.14: 1 hop(s)"),
        "{text}"
    );
    let order: Vec<&str> = text
        .lines()
        .filter_map(|l| l.split_once(" -> v1.30.14: ").map(|(host, _)| host))
        .collect();
    assert_eq!(order, ["cp1", "cp2", "cp3", "w1", "w2", "w3"], "{text}");
    for wanted in [
        "kubeadm upgrade plan v1.30.14",
        "kubeadm upgrade apply v1.30.14 --yes",
        "kubeadm upgrade node",
        "etcd snapshot",
        "drain cp1 --ignore-daemonsets --delete-emptydir-data --timeout=600s",
        "uncordon w3",
        "/v1.30/",
        "kubelet=1.30.14-",
        "kubelet-1.30.14",
    ] {
        assert!(text.contains(wanted), "the plan lacks {wanted:?}:\n{text}");
    }
    assert_all_at(&lab, "cp1", "v1.29.", 6);

    let out = k8sup(&["apply", "-i", &new], &env);
    ok(&out);
    let said = stdout(&out);
    assert!(
        said.contains("etcd snapshot before kubeadm upgrade apply: "),
        "{said}"
    );
    assert!(
        std::fs::read_dir(std::path::Path::new(&state_dir).join("up/upgrade-snapshots"))
            .unwrap()
            .any(|e| e.unwrap().file_name().to_string_lossy().ends_with(".db"))
    );
    assert_all_at(&lab, "cp1", "v1.30.14", 6);
    for host in ["cp1", "cp2", "cp3"] {
        let manifest = read(&lab, host, "/etc/kubernetes/manifests/kube-apiserver.yaml");
        assert!(
            manifest.contains("kube-apiserver:v1.30.14"),
            "{host}: {manifest}"
        );
    }
    assert_converged(&new, &env);
}

/// A master and workers, Ubuntu and Rocky, amd64 and arm64.
const SMALL: &str = r#"
name = "{name}"
[[hosts]]
name = "cp1"
roles = ["master"]
[[hosts]]
name = "w1"
distro = "rocky9"
[[hosts]]
name = "w2"
arch = "arm64"
[[hosts]]
name = "w3"
distro = "rocky9"
arch = "arm64"
"#;

/// The `kubeadm upgrade apply|node` commands `host` ran, as argv strings.
fn kubeadm_upgrades(lab: &Lab, host: &str) -> Vec<String> {
    lab.host(host)
        .unwrap()
        .commands()
        .unwrap()
        .into_iter()
        .filter(|c| c.argv.len() > 2 && c.argv[0].ends_with("kubeadm") && c.argv[1] == "upgrade")
        .filter(|c| c.argv[2] == "apply" || c.argv[2] == "node")
        .map(|c| c.argv[1..].join(" "))
        .collect()
}

#[test]
fn a_skipped_minor_is_stepped_through_and_a_downgrade_is_refused_untouched() {
    let Some((lab, state_dir)) = installed_at_1_29(SMALL, "upskip") else {
        return;
    };
    let env = [("K8SUP_STATE_DIR", state_dir.as_str())];
    assert!(read(&lab, "w1", "/etc/containerd/config.toml").contains("pause:3.9\""));

    let new = inventory(&lab, "1.31", "");
    let plan = k8sup(&["plan", "-i", &new], &env);
    ok(&plan);
    assert!(
        stdout(&plan).contains("2 hop(s), one minor at a time: v1.30.14 -> v1.31.14"),
        "{}",
        stdout(&plan)
    );
    // Asked on a terminal, and only "yes" goes on; neither --limit nor a saved plan
    // can carry an upgrade. Nothing is upgraded by any of these.
    let (code, said) = common::on_terminal(&["apply", "-i", &new], &env, "no\n");
    assert_eq!(code, Some(1), "{said}");
    assert!(
        said.contains("Upgrade the cluster from v1.29.15 to v1.31.14"),
        "{said}"
    );
    let limited = refused(&k8sup(&["apply", "-i", &new, "--limit", "w1"], &env));
    assert!(limited.contains("cannot be run with --limit"), "{limited}");
    let saved = lab.dir().join("upgrade-plan.json");
    ok(&k8sup(
        &["plan", "-i", &new, "-o", saved.to_str().unwrap()],
        &env,
    ));
    let from_plan = refused(&k8sup(
        &["apply", "-i", &new, "--plan", saved.to_str().unwrap()],
        &env,
    ));
    assert!(
        from_plan.contains("a saved plan cannot carry a Kubernetes upgrade"),
        "{from_plan}"
    );
    assert!(kubeadm_upgrades(&lab, "cp1").is_empty());

    ok(&k8sup(&["apply", "-i", &new], &env));
    assert_all_at(&lab, "cp1", "v1.31.14", 4);
    // Through 1.30: kubeadm would have refused to skip it.
    assert_eq!(
        kubeadm_upgrades(&lab, "cp1"),
        [
            "upgrade apply v1.30.14 --yes",
            "upgrade apply v1.31.14 --yes"
        ]
    );
    assert_eq!(
        kubeadm_upgrades(&lab, "w2"),
        ["upgrade node", "upgrade node"]
    );
    // The configuration that moves with the version.
    let config = read(&lab, "cp1", "/etc/k8sup/kubeadm.yaml");
    assert!(
        config.contains("apiVersion: kubeadm.k8s.io/v1beta4"),
        "{config}"
    );
    assert!(!config.contains("v1beta3"), "{config}");
    let join = read(&lab, "w3", "/etc/k8sup/kubeadm-join.yaml");
    assert!(
        join.contains("apiVersion: kubeadm.k8s.io/v1beta4"),
        "{join}"
    );
    for host in ["cp1", "w1", "w2", "w3"] {
        let sandbox = "sandbox_image = \"registry.k8s.io/pause:3.10\"";
        assert_holds(&lab, host, "/etc/containerd/config.toml", sandbox);
        assert_holds(
            &lab,
            host,
            "/var/lib/kubelet/kubeadm-flags.env",
            PAUSE_3_10_FLAG,
        );
    }
    assert_converged(&new, &env);

    // Back to 1.30: refused before any host is touched, by plan and by apply.
    let before = common::snapshot(&lab);
    let old = inventory(&lab, "1.30", "");
    for command in ["plan", "apply"] {
        let said = refused(&k8sup(&[command, "-i", &old], &env));
        assert!(
            said.contains("downgrade refused: the control plane runs v1.31.14 and the inventory asks for v1.30.14"),
            "{command}: {said}"
        );
    }
    assert!(
        before == common::snapshot(&lab),
        "a refused downgrade changed a host"
    );
    assert_all_at(&lab, "cp1", "v1.31.14", 4);
}

#[test]
fn a_blocked_drain_stops_at_its_node_and_batches_respect_max_unavailable() {
    let Some((lab, state_dir)) = installed_at_1_29(SMALL, "uppdb") else {
        return;
    };
    let env = [("K8SUP_STATE_DIR", state_dir.as_str())];
    // Three pods, one per worker, and a budget no eviction satisfies.
    lab.plant_blocking_pdb("cp1", "web", 3).unwrap();
    let cordons_before = lab.cordon_events().unwrap().len();

    // Two of the three workers at once.
    let new = inventory(&lab, "1.30", "max_unavailable = 2\ndrain_timeout = \"6s\"");

    // A repository that does not offer the version (its package manager cannot find
    // it): stopped on the first master before any node is drained or upgraded.
    lab.faults("cp1")
        .unwrap()
        .fail_command("apt-cache", 100)
        .unwrap();
    let said = refused(&k8sup(&["apply", "-i", &new], &env));
    assert!(
        said.contains("k8sup: kubeadm 1.30.14 is not in the Kubernetes repository this host uses"),
        "{said}"
    );
    lab.faults("cp1").unwrap().clear().unwrap();
    let cordons = lab.cordon_events().unwrap();
    assert_eq!(
        cordons.len(),
        cordons_before,
        "nothing was drained: {cordons:?}"
    );
    assert!(kubeadm_upgrades(&lab, "cp1").is_empty());
    assert_all_at(&lab, "cp1", "v1.29.15", 4);
    let said = refused(&k8sup(&["apply", "-i", &new], &env));
    assert!(said.contains("the drain is blocked"), "{said}");
    assert!(said.contains("default/web-"), "the pod is named: {said}");
    assert!(said.contains("left cordoned"), "{said}");
    let after = nodes(&lab, "cp1");
    let cordoned: Vec<&String> = after.iter().filter(|(_, n)| n.2).map(|(h, _)| h).collect();
    assert!(
        !cordoned.is_empty(),
        "the blocked node stays cordoned: {after:?}"
    );
    for host in &cordoned {
        assert!(
            said.contains(&format!("{host}: a PodDisruptionBudget")),
            "{host} is named with its pods: {said}"
        );
    }
    // The control plane went first.
    assert_eq!(
        kubeadm_upgrades(&lab, "cp1"),
        ["upgrade apply v1.30.14 --yes"]
    );

    // The budget gone, the next apply resumes there and finishes.
    lab.remove_pdb("cp1", "web").unwrap();
    let out = k8sup(&["apply", "-i", &new], &env);
    ok(&out);
    let resumed = stdout(&out);
    assert!(
        resumed.contains("resumes") || resumed.contains(cordoned[0].as_str()),
        "{resumed}"
    );
    assert_all_at(&lab, "cp1", "v1.30.14", 4);
    for host in ["cp1", "w1", "w2", "w3"] {
        assert_eq!(
            kubeadm_upgrades(&lab, host).len(),
            1,
            "{host} upgraded once: {:?}",
            kubeadm_upgrades(&lab, host)
        );
    }
    assert_converged(&new, &env);

    // From the lab's log of cordons: never more than two workers at once (the
    // master alone before them), and two at once did happen.
    let events = lab.cordon_events().unwrap();
    let events = &events[cordons_before..];
    let workers: Vec<_> = events.iter().filter(|e| e.node != "cp1").cloned().collect();
    let (most, at) = k8sup_lab::emu::cluster::most_cordoned_at_once(&workers);
    assert_eq!(most, 2, "{at:?}: {events:?}");
    let (most, at) = k8sup_lab::emu::cluster::most_cordoned_at_once(events);
    assert_eq!(most, 2, "the master is never out with the workers: {at:?}");
}

/// Whether the moment to kill the controller has come.
type KillPoint<'a> = Box<dyn Fn() -> bool + 'a>;

/// Waits until no process on `host` holds the run lock (a killed run's orphans).
fn wait_unlocked(lab: &Lab, host: &str) {
    let started = std::time::Instant::now();
    while !lab
        .ssh(host, "flock -n /run/k8sup.lock true")
        .unwrap()
        .status
        .success()
    {
        assert!(started.elapsed().as_secs() < 300, "{host} stays locked");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

#[test]
fn a_controller_killed_mid_upgrade_is_resumed_without_upgrading_a_host_twice() {
    let Some((lab, state_dir)) = installed_at_1_29(SMALL, "upkill") else {
        return;
    };
    let env = [("K8SUP_STATE_DIR", state_dir.as_str())];
    let new = inventory(&lab, "1.30", "");
    // Every emulated command takes a while longer: the upgrade is long enough to be cut.
    for host in ["cp1", "w1", "w2", "w3"] {
        lab.faults(host)
            .unwrap()
            .slow(std::time::Duration::from_millis(150))
            .unwrap();
    }
    let ran = |host: &str, words: &[&str]| {
        lab.host(host).unwrap().commands().unwrap().iter().any(|c| {
            c.argv.len() >= words.len()
                && c.argv[0].ends_with(words[0])
                && c.argv[1..words.len()] == words[1..]
        })
    };
    let cordoned = |node: &str| {
        lab.cordon_events()
            .unwrap()
            .iter()
            .any(|e| e.node == node && e.action == "cordon")
    };
    // Kill points: kubeadm upgrade apply under way, w1 drained, w2's kubeadm upgrade node.
    let points: [(&str, KillPoint); 3] = [
        (
            "kubeadm upgrade apply on cp1",
            Box::new(|| ran("cp1", &["kubeadm", "upgrade", "apply"])),
        ),
        ("w1 cordoned", Box::new(|| cordoned("w1"))),
        (
            "kubeadm upgrade node on w2",
            Box::new(|| ran("w2", &["kubeadm", "upgrade", "node"])),
        ),
    ];
    let mut killed = Vec::new();
    for (what, reached) in &points {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_k8sup"))
            .args(["apply", "-i", &new, "--yes"])
            .env("K8SUP_STATE_DIR", &state_dir)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let started = std::time::Instant::now();
        while !reached() && child.try_wait().unwrap().is_none() {
            assert!(started.elapsed().as_secs() < 600, "{what} never came");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap(); // SIGKILL
            killed.push(*what);
        }
        let _ = child.wait();
        for host in ["cp1", "w1", "w2", "w3"] {
            wait_unlocked(&lab, host);
        }
    }
    assert!(
        killed.len() >= 2,
        "the controller was killed mid-upgrade only at {killed:?}"
    );
    for host in ["cp1", "w1", "w2", "w3"] {
        lab.faults(host).unwrap().clear().unwrap();
    }
    ok(&k8sup(&["apply", "-i", &new], &env));
    assert_all_at(&lab, "cp1", "v1.30.14", 4);
    assert_eq!(
        kubeadm_upgrades(&lab, "cp1"),
        ["upgrade apply v1.30.14 --yes"]
    );
    for host in ["w1", "w2", "w3"] {
        assert_eq!(kubeadm_upgrades(&lab, host), ["upgrade node"], "{host}");
    }
    assert_converged(&new, &env);
}

#[test]
fn docker_nodes_get_the_new_pause_image_in_cri_dockerd_and_the_kubelet() {
    let Some(lab) = lab(&spec(
        "name = \"updock\"\n[[hosts]]\nname = \"cp1\"\nroles = [\"master\"]\n[[hosts]]\nname = \"w1\"\ndistro = \"rocky9\"\narch = \"arm64\"\n",
    )) else {
        return;
    };
    let archives = lab.dir().join("cri-dockerd");
    std::fs::create_dir_all(&archives).unwrap();
    for arch in ["amd64", "arm64"] {
        common::release_archive(&archives, arch);
    }
    let source = archives.join("cri-dockerd-0.3.15.{arch}.tgz");
    let at = |version: &str| {
        let cluster = format!(
            "[cluster]\nname = \"updock\"\nkubernetes_version = \"{version}\"\nruntime = \"docker\"\n\n[packages]\ncri_dockerd = \"{}\"\n",
            source.display()
        );
        let path = write_inventory(
            &lab,
            &format!("docker-{version}.toml"),
            &lab.inventory_toml(&cluster),
        );
        path.to_str().unwrap().to_string()
    };
    let state_dir = lab.dir().join("k8sup-state");
    let env = [("K8SUP_STATE_DIR", state_dir.to_str().unwrap())];
    ok(&k8sup(&["apply", "-i", &at("1.30")], &env));
    let unit = read(&lab, "w1", "/etc/systemd/system/cri-docker.service");
    assert!(
        unit.contains("--pod-infra-container-image=registry.k8s.io/pause:3.9"),
        "{unit}"
    );

    let new = at("1.31");
    ok(&k8sup(&["apply", "-i", &new], &env));
    assert_all_at(&lab, "cp1", "v1.31.14", 2);
    for host in ["cp1", "w1"] {
        assert_holds(
            &lab,
            host,
            "/etc/systemd/system/cri-docker.service",
            PAUSE_3_10_FLAG,
        );
        assert_holds(
            &lab,
            host,
            "/var/lib/kubelet/kubeadm-flags.env",
            PAUSE_3_10_FLAG,
        );
    }
    assert_converged(&new, &env);
}
