//! Cordon, drain and kubeadm upgrade over real ssh: a master and two workers at 1.30.4
//! with a CNI; a planted PodDisruptionBudget blocks a drain until its timeout (the pod
//! named, the node left cordoned, exit 1), then the drain goes through once it is
//! removed; the cordon log holds every cordon in order; `kubeadm upgrade apply` moves
//! the control plane to 1.31.14 and `upgrade node` the worker's kubelet configuration,
//! while `kubectl get nodes` keeps showing the kubelet each node runs until it is
//! restarted with the new package. With durations on (the built-in profile at 1/100),
//! the drain and the upgrades record the profile's figures in the applied log.
//! Needs root and openssh-server; without them the test says so and passes.

mod common;

use common::{lab_available, ok, run};

use k8sup_lab::durations::{self, Durations};
use k8sup_lab::emu::cluster::{self, ClusterState};
use k8sup_lab::{HostSpec, Lab, LabSpec};

const PREPARE: &str = "set -e
mkdir -p -m 755 /etc/apt/keyrings
echo 'lab key' > /etc/apt/keyrings/kubernetes-apt-keyring.gpg
echo 'deb [signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.gpg] https://pkgs.k8s.io/core:/stable:/v1.30/deb/ /' > /etc/apt/sources.list.d/kubernetes.list
apt-get update -q
apt-get install -y kubelet=1.30.4-1.1 kubeadm=1.30.4-1.1 kubectl=1.30.4-1.1 containerd
mkdir -p /etc/containerd
containerd config default | sed 's/SystemdCgroup = false/SystemdCgroup = true/' > /etc/containerd/config.toml
systemctl restart containerd
modprobe br_netfilter
sysctl -w net.ipv4.ip_forward=1
systemctl enable --now kubelet";

const INIT: &str = "cat > /root/kubeadm.yaml <<'END'
apiVersion: kubeadm.k8s.io/v1beta3
kind: ClusterConfiguration
kubernetesVersion: v1.30.4
networking:
  podSubnet: 10.244.0.0/16
---
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: systemd
END
kubeadm init --config /root/kubeadm.yaml >/dev/null
cat > /root/cni.yaml <<'END'
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: cni
  namespace: kube-system
spec:
  selector:
    matchLabels: {app: cni}
  template:
    metadata:
      labels: {app: cni}
    spec:
      hostNetwork: true
      tolerations: [{operator: Exists}]
      containers:
      - name: cni
        image: docker.io/flannel/flannel:v0.25.6
      volumes:
      - name: cni
        hostPath: {path: /etc/cni/net.d}
END
kubectl --kubeconfig=/etc/kubernetes/admin.conf apply -f /root/cni.yaml";

/// Switches the host to the 1.31 repository and installs `packages` at 1.31.14.
fn to_131(packages: &str) -> String {
    let pins: Vec<String> = packages
        .split_whitespace()
        .map(|p| format!("{p}=1.31.14-1.1"))
        .collect();
    format!(
        "set -e
sed -i 's/v1.30/v1.31/' /etc/apt/sources.list.d/kubernetes.list
apt-get update -q >/dev/null
apt-get install -y {} >/dev/null",
        pins.join(" ")
    )
}

fn version_of(lab: &Lab, node: &str) -> String {
    ClusterState::read(&lab.cluster_dir()).expect("state").nodes[node]
        .kubelet_version
        .clone()
}

#[test]
fn drain_blocked_by_a_budget_then_a_kubeadm_upgrade_over_ssh() {
    if !lab_available() {
        return;
    }
    let tmp = std::env::temp_dir().join(format!("k8sup-lab-upgrade-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).expect("tmp");
    let profile = tmp.join("durations.toml");
    let text = durations::REALISTIC
        .1
        .replace("time_scale = 1.0", "time_scale = 0.01");
    std::fs::write(&profile, text).expect("write profile");
    let d = Durations::resolve(&profile.to_string_lossy()).expect("profile");
    let spec = LabSpec::new("upgrade")
        .durations(profile.to_string_lossy())
        .host(HostSpec::new("master").master())
        .host(HostSpec::new("node").count(2));
    let lab = Lab::up(&spec).expect("lab comes up");
    for host in ["master", "node-1", "node-2"] {
        ok(&lab, host, PREPARE);
    }
    ok(&lab, "master", INIT);
    let join = ok(&lab, "master", "kubeadm token create --print-join-command");
    for node in ["node-1", "node-2"] {
        ok(&lab, node, join.trim());
    }
    let kc = "kubectl --kubeconfig=/etc/kubernetes/admin.conf";
    ok(
        &lab,
        "master",
        &format!("{kc} wait --for=condition=Ready node --all --timeout=30s"),
    );

    // A budget that allows no disruption: the drain names the pod and gives up.
    lab.plant_blocking_pdb("master", "web", 2).expect("plant");
    let pods = ok(
        &lab,
        "master",
        &format!("{kc} get pods -o wide --no-headers"),
    );
    let pod = pods
        .lines()
        .find(|l| l.starts_with("web-") && l.split_whitespace().nth(6) == Some("node-1"))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("a web pod on node-1: {pods}"))
        .to_string();
    let o = run(
        &lab,
        "master",
        &format!("{kc} drain node-1 --ignore-daemonsets --delete-emptydir-data --timeout=2s"),
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains(&format!("error when evicting pods/\"{pod}\" -n \"default\" (will retry after 5s): Cannot evict pod as it would violate the pod's disruption budget.")), "{err}");
    assert!(
        err.ends_with(&format!(
            "error when evicting pods/\"{pod}\" -n \"default\": global timeout reached: 2s\n"
        )),
        "{err}"
    );
    let nodes = ok(&lab, "master", &format!("{kc} get nodes --no-headers"));
    assert!(
        nodes
            .lines()
            .any(|l| l.starts_with("node-1 ") && l.contains("Ready,SchedulingDisabled")),
        "{nodes}"
    );

    lab.remove_pdb("master", "web").expect("remove");
    let out = ok(
        &lab,
        "master",
        &format!("{kc} drain node-1 --ignore-daemonsets --delete-emptydir-data"),
    );
    assert!(out.starts_with("node/node-1 already cordoned\n"), "{out}");
    assert!(
        out.contains(&format!("pod/{pod} evicted\n")) && out.ends_with("node/node-1 drained\n"),
        "{out}"
    );
    ok(&lab, "master", &format!("{kc} uncordon node-1"));
    let events = lab.cordon_events().expect("cordon log");
    let seen: Vec<(&str, &str)> = events
        .iter()
        .map(|e| (e.node.as_str(), e.action.as_str()))
        .collect();
    assert_eq!(seen, [("node-1", "cordon"), ("node-1", "uncordon")]);
    assert_eq!(events[0].by, "master");
    assert_eq!(cluster::most_cordoned_at_once(&events).0, 1);

    // The control plane to 1.31, by kubeadm; the kubelet only once restarted.
    ok(&lab, "master", &to_131("kubeadm"));
    let plan = ok(&lab, "master", "kubeadm upgrade plan v1.31.14");
    assert!(
        plan.contains("\tkubeadm upgrade apply v1.31.14\n"),
        "{plan}"
    );
    let out = ok(&lab, "master", "kubeadm upgrade apply v1.31.14 -y");
    assert!(
        out.contains(
            "[upgrade/successful] SUCCESS! Your cluster was upgraded to \"v1.31.14\". Enjoy!"
        ),
        "{out}"
    );
    let manifest = ok(
        &lab,
        "master",
        "cat /etc/kubernetes/manifests/kube-apiserver.yaml",
    );
    assert!(
        manifest.contains("image: registry.k8s.io/kube-apiserver:v1.31.14"),
        "{manifest}"
    );
    assert_eq!(version_of(&lab, "master"), "v1.30.4");
    ok(&lab, "master", &to_131("kubelet kubectl"));
    assert_eq!(
        version_of(&lab, "master"),
        "v1.30.4",
        "installed, not restarted"
    );
    ok(
        &lab,
        "master",
        "systemctl daemon-reload && systemctl restart kubelet",
    );
    assert_eq!(version_of(&lab, "master"), "v1.31.14");

    ok(&lab, "node-1", &to_131("kubeadm"));
    let out = ok(&lab, "node-1", "kubeadm upgrade node");
    assert!(out.ends_with("[upgrade] Now you should go ahead and upgrade the kubelet package using your package manager.\n"), "{out}");
    ok(&lab, "node-1", &to_131("kubelet"));
    ok(&lab, "node-1", "systemctl restart kubelet");
    let nodes = ok(&lab, "master", &format!("{kc} get nodes --no-headers"));
    let version = |n: &str| {
        nodes
            .lines()
            .find(|l| l.starts_with(&format!("{n} ")))
            .and_then(|l| l.split_whitespace().nth(4))
            .unwrap_or_default()
            .to_string()
    };
    assert_eq!(
        (version("master"), version("node-1"), version("node-2")),
        ("v1.31.14".into(), "v1.31.14".into(), "v1.30.4".into()),
        "{nodes}"
    );
    // Every call is in the host's command log, in order.
    let log = ok(&lab, "master", "cat /var/log/k8sup-lab/commands.log");
    let apply_at = log.find("\"upgrade\",\"apply\"").expect("apply logged");
    let drain_at = log.find("\"drain\",\"node-1\"").expect("drain logged");
    assert!(drain_at < apply_at);

    // What the durations hooks applied: the profile's figures, on the right hosts.
    let applied = durations::applied(&lab.cluster_dir()).expect("applied log");
    let of = |op: &str| -> Vec<(String, String, u64)> {
        applied
            .iter()
            .filter(|a| a.op == op)
            .map(|a| (a.host.clone(), a.what.clone(), a.ms))
            .collect()
    };
    let drains = of("drain");
    assert!(!drains.is_empty(), "{applied:?}");
    assert!(drains
        .iter()
        .all(|(host, what, ms)| host == "master" && what == "node-1" && *ms == d.steps.drain_ms));
    assert_eq!(
        of("kubeadm-upgrade-apply"),
        [(
            "master".into(),
            "master".into(),
            d.steps.kubeadm_upgrade_apply_ms
        )]
    );
    assert_eq!(
        of("kubeadm-upgrade-node"),
        [(
            "node-1".into(),
            "node-1".into(),
            d.steps.kubeadm_upgrade_node_ms
        )]
    );
    assert!(applied.iter().any(|a| a.op == "image-pull"
        && a.host == "master"
        && a.what.ends_with("kube-apiserver:v1.31.14")));
    let _ = std::fs::remove_dir_all(&tmp);
}
