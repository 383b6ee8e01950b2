//! The life of a cluster on the lab: three masters (HA), a worker added later
//! without disturbing the others, then the nightly reprovision: `reset` and
//! `apply` bring the same hosts back to Ready.

mod common;

use common::{
    endpoint_on_first_master, k8sup, lab, ledger_at, ledger_files, spec, stderr, stdout,
    write_inventory,
};
use k8sup_lab::Lab;

fn nodes(lab: &Lab) -> String {
    let out = lab
        .ssh(
            "cp1",
            "kubectl --kubeconfig /etc/kubernetes/admin.conf get nodes --no-headers",
        )
        .expect("ssh runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn ready(nodes: &str, name: &str) -> bool {
    nodes.lines().any(|l| {
        l.split_whitespace().next() == Some(name) && l.split_whitespace().nth(1) == Some("Ready")
    })
}

#[test]
fn ha_cluster_then_a_new_worker_then_reset_and_reprovision() {
    let Some(lab) = lab(&spec(
        r#"
name = "life"
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
"#,
    )) else {
        return;
    };
    let cluster = "[cluster]\nname = \"life\"\nkubernetes_version = \"1.31\"\n";
    let full = endpoint_on_first_master(&lab, &lab.inventory_toml(cluster)).replace(
        "name = \"w1\"\n",
        "name = \"w1\"\nlabels = { \"disktype\" = \"ssd\" }\ntaints = [\"dedicated=gpu:NoSchedule\"]\n",
    );
    // The first inventory leaves w2 out: it is added later.
    let cut = full
        .find("\n[[hosts]]\nname = \"w2\"")
        .expect("w2 in the inventory");
    let first = write_inventory(&lab, "first.toml", &full[..cut]);
    let later = write_inventory(&lab, "later.toml", &full);
    let state = lab.dir().join("k8sup-state");
    let env = [("K8SUP_STATE_DIR", state.to_str().unwrap())];

    // Three masters and a worker.
    let out = k8sup(&["apply", "-i", first.to_str().unwrap()], &env);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let n = nodes(&lab);
    for name in ["cp1", "cp2", "cp3", "w1"] {
        assert!(ready(&n, name), "{name} not Ready:\n{n}");
    }
    // Labels and taints from the inventory are on the node.
    let w1 = lab
        .ssh(
            "cp1",
            "kubectl --kubeconfig /etc/kubernetes/admin.conf get node w1 -o json",
        )
        .expect("ssh runs");
    let w1 = String::from_utf8_lossy(&w1.stdout);
    assert!(
        w1.contains("\"disktype\": \"ssd\"") || w1.contains("\"disktype\":\"ssd\""),
        "{w1}"
    );
    assert!(
        w1.contains("dedicated") && w1.contains("NoSchedule"),
        "{w1}"
    );
    // The certificate key that let cp2 and cp3 join is in no output or report.
    let cluster_state =
        std::fs::read_to_string(lab.cluster_dir().join("state.json")).unwrap_or_default();
    let cluster_state: serde_json::Value = serde_json::from_str(&cluster_state).unwrap_or_default();
    if let Some(key) = cluster_state["certificate_key"].as_str() {
        let said = format!("{}{}", stdout(&out), stderr(&out));
        assert!(
            !said.contains(key),
            "the certificate key leaked into the output"
        );
        for h in lab.hosts() {
            let ledger: Vec<u8> = ledger_files(&h.path("/var/lib/k8sup/state.json"))
                .into_iter()
                .flat_map(|(_, bytes)| bytes)
                .collect();
            assert!(
                !String::from_utf8_lossy(&ledger).contains(key),
                "the certificate key is in {}'s ledger",
                h.name
            );
        }
    } else {
        panic!("the lab's cluster state has no certificate key: {cluster_state}");
    }
    for cp in ["cp2", "cp3"] {
        let h = lab.host(cp).unwrap();
        assert!(
            h.path("/etc/kubernetes/manifests/kube-apiserver.yaml")
                .exists(),
            "{cp} is not a control-plane node"
        );
    }

    // w2 joins; the hosts already in the cluster change nothing.
    let report = lab.dir().join("add.json");
    let out = k8sup(
        &[
            "apply",
            "-i",
            later.to_str().unwrap(),
            "--report",
            report.to_str().unwrap(),
        ],
        &env,
    );
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let n = nodes(&lab);
    assert!(ready(&n, "w2"), "w2 not Ready:\n{n}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    for h in report["hosts"].as_array().unwrap() {
        if h["host"] == "w2" {
            continue;
        }
        // Nothing changes on the hosts already in the cluster, but the first
        // master labels and taints the nodes (now w2 too) from the inventory.
        let changed: Vec<&str> = h["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| t["changed"] == true)
            .map(|t| t["name"].as_str().unwrap_or_default())
            .collect();
        let allowed: &[&str] = if h["host"] == "cp1" {
            &["labels and taints"]
        } else {
            &[]
        };
        assert!(
            changed.iter().all(|t| allowed.contains(t)),
            "adding w2 changed {} on {}: {h:#}",
            changed.join(", "),
            h["host"]
        );
    }

    // The nightly reprovision: reset, then apply, to Ready again.
    let out = k8sup(&["reset", "-i", later.to_str().unwrap(), "--yes"], &env);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    for h in lab.hosts() {
        assert!(
            !h.path("/etc/kubernetes/kubelet.conf").exists(),
            "{} still joined",
            h.name
        );
        assert!(
            ledger_at(&h.path("/var/lib/k8sup/state.json")).is_none(),
            "{} kept k8sup state",
            h.name
        );
    }
    let out = k8sup(&["apply", "-i", later.to_str().unwrap()], &env);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let n = nodes(&lab);
    for name in ["cp1", "cp2", "cp3", "w1", "w2"] {
        assert!(ready(&n, name), "{name} not Ready after reprovision:\n{n}");
    }
}

/// CentOS 7 (yum, cgroup v1, SELinux), Rocky 8, Debian 12 on arm64 and Ubuntu
/// 20.04: the same playbook brings them all to Ready, and then has nothing to do.
#[test]
fn older_and_other_distributions_come_up_ready() {
    let Some(lab) = lab(&spec(
        r#"
name = "distros"
[[hosts]]
name = "cp1"
roles = ["master"]
distro = "centos7"
cgroup = "v1"
[[hosts]]
name = "d12"
distro = "debian12"
arch = "arm64"
[[hosts]]
name = "u20"
distro = "ubuntu2004"
[[hosts]]
name = "r8"
distro = "rocky8"
"#,
    )) else {
        return;
    };
    let inv = write_inventory(
        &lab,
        "distros.toml",
        &endpoint_on_first_master(&lab, &lab.inventory_toml("")),
    );
    let state = lab.dir().join("k8sup-state");
    let env = [("K8SUP_STATE_DIR", state.to_str().unwrap())];
    let out = k8sup(&["apply", "-i", inv.to_str().unwrap()], &env);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let n = nodes(&lab);
    for name in ["cp1", "d12", "u20", "r8"] {
        assert!(ready(&n, name), "{name} not Ready:\n{n}");
    }
    // SELinux permissive on the Red Hat family, now and at boot.
    for h in ["cp1", "r8"] {
        let config =
            std::fs::read_to_string(lab.host(h).unwrap().path("/etc/selinux/config")).unwrap();
        assert!(
            config.lines().any(|l| l == "SELINUX=permissive"),
            "{h}: {config}"
        );
    }
    let plan = k8sup(
        &["plan", "-i", inv.to_str().unwrap(), "--detailed-exitcode"],
        &env,
    );
    assert_eq!(plan.status.code(), Some(0), "{}", stdout(&plan));
}
