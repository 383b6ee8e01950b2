//! The life of a cluster on the lab: three masters (HA), a worker added later
//! without disturbing the others, then the nightly reprovision: `reset` and
//! `apply` bring the same hosts back to Ready.

mod common;

use common::{k8sup, lab, spec, stderr, stdout, write_inventory};
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
    let full = lab.inventory_toml(cluster);
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
        if h["host"] != "w2" {
            assert_eq!(h["changed"], 0, "adding w2 changed {}: {h:#}", h["host"]);
        }
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
            !h.path("/var/lib/k8sup/state.json").exists(),
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
