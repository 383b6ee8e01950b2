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
    let Some(lab) = lab(&spec(&HA.replace("{name}", "upha"))) else {
        return;
    };
    let state_dir = lab.dir().join("k8sup-state");
    let env = [("K8SUP_STATE_DIR", state_dir.to_str().unwrap())];
    let old = inventory(&lab, "1.29", "");
    ok(&k8sup(&["apply", "-i", &old], &env));
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
    assert!(std::fs::read_dir(state_dir.join("up/upgrade-snapshots"))
        .unwrap()
        .any(|e| e.unwrap().file_name().to_string_lossy().ends_with(".db")));
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
