//! The emulated Kubernetes over real ssh: a master (amd64) and a node (arm64) install
//! kubeadm, kubelet, kubectl and containerd through the emulated apt, configure containerd
//! for the systemd cgroup driver, `kubeadm init` with a v1beta3 config, join the node with
//! a fresh join command, apply a flannel-like CNI with one DaemonSet per arch, and end with
//! both nodes Ready and the arm64 node running the arm64 image. A wrong token and an
//! unknown config field fail like the real kubeadm.
//! Needs root and openssh-server; without them the test says so and passes.

mod common;

use common::{fails, lab_available, ok};

use k8sup_lab::emu::cluster::ClusterState;
use k8sup_lab::{Arch, HostSpec, Lab, LabSpec};

const PREPARE: &str = "set -e
mkdir -p -m 755 /etc/apt/keyrings
echo 'lab key' > /etc/apt/keyrings/kubernetes-apt-keyring.gpg
echo 'deb [signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.gpg] https://pkgs.k8s.io/core:/stable:/v1.30/deb/ /' > /etc/apt/sources.list.d/kubernetes.list
apt-get update -q
apt-get install -y kubelet=1.30.4-1.1 kubeadm=1.30.4-1.1 kubectl=1.30.4-1.1 containerd
mkdir -p /etc/containerd
containerd config default | sed 's/SystemdCgroup = false/SystemdCgroup = true/' > /etc/containerd/config.toml
grep -q 'SystemdCgroup = true' /etc/containerd/config.toml
systemctl restart containerd
modprobe br_netfilter
sysctl -w net.ipv4.ip_forward=1
systemctl enable --now kubelet";

const KUBEADM_CONFIG: &str = "cat > /root/kubeadm.yaml <<'EOF'
apiVersion: kubeadm.k8s.io/v1beta3
kind: InitConfiguration
nodeRegistration:
  criSocket: unix:///var/run/containerd/containerd.sock
---
apiVersion: kubeadm.k8s.io/v1beta3
kind: ClusterConfiguration
kubernetesVersion: v1.30.4
networking:
  podSubnet: 10.244.0.0/16
---
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: systemd
EOF";

const FLANNEL: &str = "cat > /root/flannel.yaml <<'EOF'
apiVersion: v1
kind: Namespace
metadata:
  name: kube-flannel
---
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: kube-flannel-ds-amd64
  namespace: kube-flannel
spec:
  selector:
    matchLabels: {app: flannel, arch: amd64}
  template:
    metadata:
      labels: {app: flannel, arch: amd64}
    spec:
      hostNetwork: true
      nodeSelector: {kubernetes.io/arch: amd64}
      tolerations: [{operator: Exists, effect: NoSchedule}]
      containers:
      - name: kube-flannel
        image: docker.io/flannel/flannel:v0.25.6-amd64
      volumes:
      - name: cni
        hostPath: {path: /etc/cni/net.d}
---
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: kube-flannel-ds-arm64
  namespace: kube-flannel
spec:
  selector:
    matchLabels: {app: flannel, arch: arm64}
  template:
    metadata:
      labels: {app: flannel, arch: arm64}
    spec:
      hostNetwork: true
      nodeSelector: {kubernetes.io/arch: arm64}
      tolerations: [{operator: Exists, effect: NoSchedule}]
      containers:
      - name: kube-flannel
        image: docker.io/flannel/flannel:v0.25.6-arm64
      volumes:
      - name: cni
        hostPath: {path: /etc/cni/net.d}
EOF";

#[test]
fn init_join_cni_and_ready_nodes_over_ssh() {
    if !lab_available() {
        return;
    }
    let spec = LabSpec::new("cluster")
        .host(HostSpec::new("master").master())
        .host(HostSpec::new("node").arch(Arch::Arm64));
    let lab = Lab::up(&spec).expect("lab comes up");
    for host in ["master", "node"] {
        ok(&lab, host, PREPARE);
    }
    ok(&lab, "master", KUBEADM_CONFIG);

    // An unknown field is refused before anything is written.
    ok(
        &lab,
        "master",
        "sed 's/criSocket:/criSockett:/' /root/kubeadm.yaml > /root/typo.yaml",
    );
    let out = fails(&lab, "master", "kubeadm init --config /root/typo.yaml", 1);
    assert!(
        out.contains("strict decoding error: unknown field \"nodeRegistration.criSockett\""),
        "{out}"
    );
    ok(&lab, "master", "test ! -e /etc/kubernetes/admin.conf");

    let out = ok(&lab, "master", "kubeadm init --config /root/kubeadm.yaml");
    assert!(out.contains("Your Kubernetes control-plane has initialized successfully!"));
    let join = ok(&lab, "master", "kubeadm token create --print-join-command");
    assert!(join.starts_with("kubeadm join "), "{join}");

    // A wrong token fails like the real kubeadm and leaves the node out.
    let words: Vec<&str> = join.split_whitespace().collect();
    let token_at = words.iter().position(|w| *w == "--token").expect("--token") + 1;
    let mut wrong = words.clone();
    wrong[token_at] = "zzzzzz.zzzzzzzzzzzzzzzz";
    let out = fails(&lab, "node", &wrong.join(" "), 1);
    assert!(
        out.contains("error execution phase preflight: couldn't validate the identity of the API Server: token id \"zzzzzz\" is invalid"),
        "{out}"
    );

    let out = ok(&lab, "node", join.trim());
    assert!(out.contains("This node has joined the cluster"), "{out}");

    let kc = "KUBECONFIG=/etc/kubernetes/admin.conf kubectl";
    let nodes = ok(&lab, "master", &format!("{kc} get nodes --no-headers"));
    assert!(
        nodes.lines().all(|l| l.contains("NotReady")),
        "no CNI yet: {nodes}"
    );
    ok(&lab, "master", FLANNEL);
    ok(&lab, "master", &format!("{kc} apply -f /root/flannel.yaml"));
    let out = ok(
        &lab,
        "master",
        &format!("{kc} wait --for=condition=Ready node --all --timeout=30s"),
    );
    assert_eq!(out, "node/master condition met\nnode/node condition met\n");
    let pods = ok(&lab, "master", &format!("{kc} get pods -A -o wide"));
    let arm = pods
        .lines()
        .find(|l| l.contains("kube-flannel-ds-arm64-"))
        .expect("an arm64 flannel pod");
    assert!(arm.contains(" node ") && arm.contains("Running"), "{pods}");

    // The state the test can read from outside the hosts.
    let state = ClusterState::read(&lab.cluster_dir()).expect("cluster state");
    assert_eq!(state.nodes["node"].arch, "arm64");
    assert_eq!(state.pod_subnet.as_deref(), Some("10.244.0.0/16"));
    let ds = state
        .object("DaemonSet", "kube-flannel", "kube-flannel-ds-arm64")
        .expect("arm64 DaemonSet kept");
    assert_eq!(
        ds.body
            .pointer("/spec/template/spec/containers/0/image")
            .and_then(|v| v.as_str()),
        Some("docker.io/flannel/flannel:v0.25.6-arm64")
    );
    assert!(lab
        .cluster_dir()
        .join("manifests/0001-flannel.yaml")
        .exists());
}
