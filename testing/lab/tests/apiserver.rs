//! The API server's network side is real in a namespaced lab: each running
//! kube-apiserver static pod has a real TLS listener on the master's port 6443, kubectl
//! dials the server of its kubeconfig for real (through a real haproxy when it points at
//! one), kubelets post heartbeats through theirs, and a fault stops one master's API
//! server.

use std::time::Duration;

use k8sup_lab::client::KUBEADM_ETCDCTL as ETCDCTL;
use k8sup_lab::{HostSpec, Lab, LabSpec};

mod common;
use common::{err, lab_available, ok, run, until};

const PREPARE: &str = "set -e
mkdir -p -m 755 /etc/apt/keyrings
echo 'lab key' > /etc/apt/keyrings/kubernetes-apt-keyring.gpg
echo 'deb [signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.gpg] https://pkgs.k8s.io/core:/stable:/v1.30/deb/ /' > /etc/apt/sources.list.d/kubernetes.list
apt-get update -q >/dev/null
apt-get install -y -q kubelet=1.30.4-1.1 kubeadm=1.30.4-1.1 kubectl=1.30.4-1.1 containerd >/dev/null
mkdir -p /etc/containerd
containerd config default | sed 's/SystemdCgroup = false/SystemdCgroup = true/' > /etc/containerd/config.toml
systemctl restart containerd
modprobe br_netfilter
sysctl -w net.ipv4.ip_forward=1 >/dev/null
systemctl enable --now kubelet 2>/dev/null";

fn kubeadm_config(endpoint: &str) -> String {
    format!(
        "cat > /root/kubeadm.yaml <<'EOF'
apiVersion: kubeadm.k8s.io/v1beta3
kind: InitConfiguration
nodeRegistration:
  criSocket: unix:///var/run/containerd/containerd.sock
---
apiVersion: kubeadm.k8s.io/v1beta3
kind: ClusterConfiguration
kubernetesVersion: v1.30.4
controlPlaneEndpoint: {endpoint}
networking:
  podSubnet: 10.244.0.0/16
---
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: systemd
EOF"
    )
}

/// Prepares every host, `kubeadm init` on the first master (its address the
/// controlPlaneEndpoint), joins the other masters as control planes and the workers.
fn control_plane(lab: &Lab, masters: &[&str], workers: &[&str]) {
    for h in masters.iter().chain(workers) {
        ok(lab, h, PREPARE);
    }
    let first = lab.host(masters[0]).unwrap().address;
    ok(lab, masters[0], &kubeadm_config(&format!("{first}:6443")));
    let init = ok(
        lab,
        masters[0],
        "kubeadm init --config /root/kubeadm.yaml --upload-certs",
    );
    let key = init
        .split_whitespace()
        .skip_while(|w| *w != "--certificate-key")
        .nth(1)
        .expect("certificate key")
        .to_string();
    let join = ok(lab, masters[0], "kubeadm token create --print-join-command");
    for h in &masters[1..] {
        ok(
            lab,
            h,
            &format!("{} --control-plane --certificate-key {key}", join.trim()),
        );
    }
    for h in workers {
        ok(lab, h, join.trim());
    }
}

const FLANNEL: &str = "cat > /root/cni.yaml <<'EOF'
apiVersion: v1
kind: Namespace
metadata:
  name: kube-flannel
---
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: kube-flannel-ds
  namespace: kube-flannel
spec:
  selector:
    matchLabels: {app: flannel}
  template:
    metadata:
      labels: {app: flannel}
    spec:
      hostNetwork: true
      tolerations: [{operator: Exists, effect: NoSchedule}]
      containers:
      - name: kube-flannel
        image: docker.io/flannel/flannel:v0.25.6
      volumes:
      - name: cni
        hostPath: {path: /etc/cni/net.d}
EOF";

#[test]
fn kubectl_and_kubelets_reach_live_api_servers_through_a_real_haproxy() {
    if !lab_available() {
        return;
    }
    let spec = LabSpec::new("apiserver")
        .netns()
        .host(HostSpec::new("m").count(2).master())
        .host(HostSpec::new("w").distro(k8sup_lab::Distro::Debian12));
    let lab = Lab::up(&spec).expect("lab up");
    let m1 = lab.host("m-1").unwrap().address;
    let m2 = lab.host("m-2").unwrap().address;
    control_plane(&lab, &["m-1", "m-2"], &["w"]);

    // Each master's API server is a real TLS listener on 6443, reached over the bridge.
    let health = ok(
        &lab,
        "w",
        &format!("printf 'GET /healthz HTTP/1.0\\r\\n\\r\\n' | openssl s_client -connect {m2}:6443 -quiet 2>/dev/null"),
    );
    assert!(
        health.starts_with("HTTP/1.0 200 ok") && health.ends_with("ok"),
        "{health}"
    );

    // A real haproxy on the worker, on its own 127.0.0.1:6444, health-checking both.
    ok(&lab, "w", "apt-get install -y -q haproxy >/dev/null");
    let cfg = format!(
        "global\n  stats socket /run/haproxy/admin.sock mode 660 level admin\n\
         defaults\n  mode tcp\n  timeout connect 2s\n  timeout client 30s\n  timeout server 30s\n\
         frontend kube_api\n  bind 127.0.0.1:6444\n  default_backend masters\n\
         backend masters\n  option httpchk GET /healthz\n  default-server inter 300ms fall 1 rise 1 check check-ssl verify none\n\
         \x20 server m-1 {m1}:6443\n  server m-2 {m2}:6443\n"
    );
    std::fs::write(lab.host("w").unwrap().path("/etc/haproxy/haproxy.cfg"), cfg).unwrap();
    ok(&lab, "w", "systemctl reload haproxy");
    ok(
        &lab,
        "w",
        "sed 's#server: .*#server: https://127.0.0.1:6444#' /etc/kubernetes/kubelet.conf > /root/lb.conf \
         && cp /root/lb.conf /etc/kubernetes/kubelet.conf",
    );
    ok(&lab, "w", "mkdir -p /root/.kube");
    // The admin kubeconfig, pointed at the worker's balancer.
    let admin =
        std::fs::read_to_string(lab.host("m-1").unwrap().path("/etc/kubernetes/admin.conf"))
            .unwrap();
    let via_lb = admin
        .lines()
        .map(|l| {
            if l.trim_start().starts_with("server:") {
                "    server: https://127.0.0.1:6444".to_string()
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(
        lab.host("w").unwrap().path("/root/.kube/config"),
        via_lb + "\n",
    )
    .unwrap();
    ok(&lab, "m-1", FLANNEL);
    ok(
        &lab,
        "m-1",
        "kubectl --kubeconfig /etc/kubernetes/admin.conf apply -f /root/cni.yaml",
    );
    until("all Ready", Duration::from_secs(60), || {
        run(
            &lab,
            "w",
            "kubectl wait --for=condition=Ready node --all --timeout=1s",
        )
        .status
        .success()
    });

    // curl reaches a master's API server for real.
    assert_eq!(
        ok(&lab, "w", &format!("curl -sk https://{m1}:6443/livez")),
        "ok"
    );

    // Master 1's API server stops: its listener is gone at once, the worker's kubectl
    // and kubelet keep going through haproxy to m-2.
    lab.faults("m-1")
        .unwrap()
        .stop_static_pod("kube-apiserver")
        .unwrap();
    let curl = run(&lab, "w", &format!("curl -sk https://{m1}:6443/livez"));
    assert_eq!(curl.status.code(), Some(7), "{}", err(&curl));
    assert_eq!(
        ok(&lab, "m-2", "curl -sk https://127.0.0.1:6443/livez"),
        "ok"
    );
    let refused = run(&lab, "w", &format!("sed 's#server: .*#server: https://{m1}:6443#' /root/.kube/config > /root/m1.conf; kubectl --kubeconfig /root/m1.conf get nodes"));
    assert_eq!(
        err(&refused),
        format!("The connection to the server {m1}:6443 was refused - did you specify the right host or port?")
    );
    std::thread::sleep(Duration::from_millis(700));
    for _ in 0..5 {
        let nodes = ok(&lab, "w", "kubectl get nodes --no-headers");
        assert_eq!(nodes.lines().count(), 3, "{nodes}");
    }
    // The node-monitor grace period (4 s at the lab's instant scale) passes: the worker,
    // whose kubelet goes through haproxy, stays Ready; the masters' kubelets talk to the
    // controlPlaneEndpoint (m-1's address, as kubeadm wrote kubelet.conf) and are NotReady.
    std::thread::sleep(Duration::from_secs(5));
    let nodes = ok(&lab, "w", "kubectl get nodes --no-headers");
    let status = |name: &str| {
        nodes
            .lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .and_then(|l| l.split_whitespace().nth(1))
            .map(String::from)
    };
    assert_eq!(status("w").as_deref(), Some("Ready"), "{nodes}");
    assert_eq!(status("m-2").as_deref(), Some("NotReady"), "{nodes}");

    // A kubelet whose server is m-1 alone loses its heartbeat and its node turns NotReady.
    ok(
        &lab,
        "w",
        &format!("sed -i 's#server: .*#server: https://{m1}:6443#' /etc/kubernetes/kubelet.conf"),
    );
    until("w NotReady", Duration::from_secs(20), || {
        let nodes = ok(&lab, "w", "kubectl get node w --no-headers");
        nodes.split_whitespace().nth(1) == Some("NotReady")
    });
    ok(
        &lab,
        "w",
        "sed -i 's#server: .*#server: https://127.0.0.1:6444#' /etc/kubernetes/kubelet.conf",
    );
    until("w Ready again", Duration::from_secs(20), || {
        let nodes = ok(&lab, "w", "kubectl get node w --no-headers");
        nodes.split_whitespace().nth(1) == Some("Ready")
    });

    // Both API servers down: haproxy accepts and closes, kubectl says EOF.
    lab.faults("m-2")
        .unwrap()
        .stop_static_pod("kube-apiserver")
        .unwrap();
    std::thread::sleep(Duration::from_millis(700));
    let eof = run(&lab, "w", "kubectl get nodes");
    assert_eq!(eof.status.code(), Some(1));
    assert_eq!(err(&eof), "Unable to connect to the server: EOF");

    // No balancer at all: refused, as the real kubectl says it.
    ok(&lab, "w", "systemctl stop haproxy");
    let none = run(&lab, "w", "kubectl get nodes");
    assert_eq!(
        err(&none),
        "The connection to the server 127.0.0.1:6444 was refused - did you specify the right host or port?"
    );

    // m-1's API server back: through haproxy again.
    lab.faults("m-1")
        .unwrap()
        .start_static_pod("kube-apiserver")
        .unwrap();
    ok(&lab, "w", "systemctl start haproxy");
    until("kubectl through haproxy", Duration::from_secs(10), || {
        run(&lab, "w", "kubectl get nodes").status.success()
    });
}

/// etcdctl's own stderr through `crictl exec`, which ends, when etcdctl fails, with
/// crictl's line saying so (checked here, then left out).
fn etcd_err(o: &std::process::Output) -> String {
    let all = err(o);
    let (etcdctl, crictl) = all.rsplit_once('\n').unwrap_or(("", &all));
    assert!(
        crictl.ends_with(
            "level=fatal msg=\"execing command in container: command terminated with exit code 1\""
        ),
        "{all}"
    );
    etcdctl.trim().to_string()
}

/// The member IDs of `etcdctl member list` (simple format), by name.
fn members(lab: &Lab, host: &str) -> Vec<(String, String)> {
    ok(lab, host, &format!("{ETCDCTL} member list"))
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split(", ").collect();
            (f[2].to_string(), f[0].to_string())
        })
        .collect()
}

#[test]
fn etcd_membership_removal_follows_etcd_s_quorum_rules() {
    if !lab_available() {
        return;
    }
    let spec = LabSpec::new("etcd-members")
        .netns()
        .host(HostSpec::new("m").count(3).master());
    let lab = Lab::up(&spec).expect("lab up");
    control_plane(&lab, &["m-1", "m-2", "m-3"], &[]);

    let list = members(&lab, "m-2");
    assert_eq!(list.len(), 3, "{list:?}");
    assert!(list
        .iter()
        .all(|(_, id)| id.len() >= 13 && u64::from_str_radix(id, 16).is_ok()));
    let table = ok(&lab, "m-2", &format!("{ETCDCTL} member list -w table"));
    assert!(
        table
            .lines()
            .nth(1)
            .unwrap()
            .contains("|        ID        | STATUS  | NAME |"),
        "{table}"
    );
    let json = ok(&lab, "m-2", &format!("{ETCDCTL} member list -w json"));
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["members"].as_array().unwrap().len(), 3);
    let status = ok(&lab, "m-2", &format!("{ETCDCTL} endpoint status"));
    assert!(status.starts_with("https://127.0.0.1:2379, "), "{status}");
    let id = |name: &str| list.iter().find(|(n, _)| n == name).unwrap().1.clone();

    // Master 1 dies: 2 of 3 members run, quorum holds.
    lab.faults("m-1").unwrap().power_off().unwrap();
    ok(&lab, "m-2", &format!("{ETCDCTL} endpoint health"));
    // Removing a live member now would leave 1 of the 2 live: etcd refuses.
    let refused = run(
        &lab,
        "m-2",
        &format!("{ETCDCTL} member remove {}", id("m-3")),
    );
    assert_eq!(refused.status.code(), Some(1));
    assert_eq!(etcd_err(&refused), "Error: etcdserver: unhealthy cluster");
    // An unknown ID, a bad one.
    let unknown = run(&lab, "m-2", &format!("{ETCDCTL} member remove 1234"));
    assert_eq!(etcd_err(&unknown), "Error: etcdserver: member not found");
    let bad = run(&lab, "m-2", &format!("{ETCDCTL} member remove zz"));
    assert!(
        etcd_err(&bad).starts_with("Error: bad member ID arg"),
        "{}",
        err(&bad)
    );
    // The dead member may go.
    let removed = ok(
        &lab,
        "m-2",
        &format!("{ETCDCTL} member remove {}", id("m-1")),
    );
    assert!(
        removed.starts_with(&format!("Member {:>16} removed from cluster ", id("m-1"))),
        "{removed}"
    );
    let names: Vec<String> = members(&lab, "m-3").into_iter().map(|(n, _)| n).collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(!names.contains(&"m-1".to_string()));

    // kubeadm reset on a control plane removes its own member (2 live of 2: allowed).
    ok(&lab, "m-3", "kubeadm reset -f");
    let names: Vec<String> = members(&lab, "m-2").into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["m-2"]);
    ok(&lab, "m-2", &format!("{ETCDCTL} endpoint health"));
}
