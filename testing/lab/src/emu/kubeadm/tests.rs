use super::*;
use crate::distro::{Arch, Distro};
use crate::emu::testing::FakeHost;

pub(crate) const CONTAINERD_SYSTEMD: &str = "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\"]\n  sandbox_image = \"registry.k8s.io/pause:3.9\"\n[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc.options]\n  SystemdCgroup = true\n";

pub(crate) const INIT_V1BETA3: &str = "apiVersion: kubeadm.k8s.io/v1beta3
kind: InitConfiguration
bootstrapTokens:
- token: abcdef.0123456789abcdef
  ttl: 24h0m0s
nodeRegistration:
  criSocket: unix:///var/run/containerd/containerd.sock
  kubeletExtraArgs:
    node-ip: 127.77.0.2
---
apiVersion: kubeadm.k8s.io/v1beta3
kind: ClusterConfiguration
kubernetesVersion: v1.30.4
networking:
  podSubnet: 10.244.0.0/16
  serviceSubnet: 10.96.0.0/12
---
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: systemd
";

/// A host ready for kubeadm: packages installed, containerd (SystemdCgroup) started,
/// kubelet enabled, ip_forward on; `shared` is the cluster directory all hosts share.
pub(crate) fn ready_host(
    name: &str,
    address: &str,
    arch: Arch,
    shared: &std::path::Path,
) -> FakeHost {
    let h = FakeHost::new(Distro::Ubuntu2204, arch);
    let mut p = h.profile();
    p.name = name.into();
    p.address = address.into();
    h.set_profile(&p);
    h.write("/etc/hostname", &format!("{name}\n"));
    crate::emu::kubelet::tests::install(
        &h,
        &[
            ("kubeadm", "1.30.4-1.1"),
            ("kubelet", "1.30.4-1.1"),
            ("kubectl", "1.30.4-1.1"),
            ("containerd.io", "1.7.22-1"),
        ],
    );
    h.write("/etc/containerd/config.toml", CONTAINERD_SYSTEMD);
    h.write("/run/lab-systemd/containerd.service.active", "");
    h.write("/proc/sys/net/ipv4/ip_forward", "1\n");
    h.write(
        "/proc/swaps",
        "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n",
    );
    assert_eq!(h.run("systemctl", &["enable", "kubelet"]).0, 0);
    let link = h.root.join("var/lib/k8sup-lab-cluster");
    std::fs::create_dir_all(link.parent().expect("parent")).expect("mkdir");
    std::fs::create_dir_all(shared).expect("shared");
    std::os::unix::fs::symlink(shared, &link).expect("link cluster dir");
    h
}

pub(crate) fn shared_dir() -> std::path::PathBuf {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let d = std::env::temp_dir().join(format!(
        "k8sup-lab-cluster-test-{}-{}",
        std::process::id(),
        N.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&d);
    d
}

pub(crate) fn init_master(shared: &std::path::Path) -> FakeHost {
    let m = ready_host("master", "127.77.0.2", Arch::Amd64, shared);
    m.write("/root/kubeadm.yaml", INIT_V1BETA3);
    let (s, out, err) = m.run("kubeadm", &["init", "--config", "/root/kubeadm.yaml"]);
    assert_eq!(s, 0, "{out}{err}");
    m
}

#[test]
fn version_short_comes_from_the_package() {
    let shared = shared_dir();
    let h = ready_host("master", "127.77.0.2", Arch::Amd64, &shared);
    assert_eq!(h.run("kubeadm", &["version", "-o", "short"]).1, "v1.30.4\n");
    let (s, _, e) = h.run("kubeadm", &["versionx"]);
    assert_eq!(s, 1);
    assert!(e.starts_with("Error: unknown command \"versionx\" for \"kubeadm\""));
}

#[test]
fn init_writes_the_control_plane_and_prints_the_join_command() {
    let shared = shared_dir();
    let m = ready_host("master", "127.77.0.2", Arch::Amd64, &shared);
    m.write("/root/kubeadm.yaml", INIT_V1BETA3);
    let (s, out, err) = m.run("kubeadm", &["init", "--config", "/root/kubeadm.yaml"]);
    assert_eq!(s, 0, "{out}{err}");
    assert!(out.starts_with("[init] Using Kubernetes version: v1.30.4\n"));
    assert!(out.contains("Your Kubernetes control-plane has initialized successfully!"));
    let state = ClusterState::read(&shared).expect("state");
    let tail = format!(
        "kubeadm join 127.77.0.2:6443 --token abcdef.0123456789abcdef \\\n\t--discovery-token-ca-cert-hash {} \n",
        state.ca_hash
    );
    assert!(out.ends_with(&tail), "{out}");
    assert!(m
        .read(ADMIN_CONF)
        .contains("server: https://127.77.0.2:6443"));
    assert!(m
        .read("/etc/kubernetes/manifests/kube-apiserver.yaml")
        .contains("image: registry.k8s.io/kube-apiserver:v1.30.4"));
    assert!(m
        .read("/etc/kubernetes/manifests/etcd.yaml")
        .contains("registry.k8s.io/etcd:3.5.12-0"));
    let kubelet = m.read("/var/lib/kubelet/config.yaml");
    assert!(kubelet.contains("cgroupDriver: systemd"), "{kubelet}");
    assert!(kubelet.contains("- 10.96.0.10"), "{kubelet}");
    assert_eq!(state.pod_subnet.as_deref(), Some("10.244.0.0/16"));
    let node = &state.nodes["master"];
    assert!(node.control_plane && node.kubelet.running);
    assert_eq!(node.pod_cidr.as_deref(), Some("10.244.0.0/24"));
    assert_eq!(node.taints[0].key, CP_TAINT);
    // A second init finds the leftovers, as the real preflight does.
    let (s, _, err) = m.run("kubeadm", &["init", "--config", "/root/kubeadm.yaml"]);
    assert_eq!(s, 1);
    assert!(err.contains("[ERROR DirAvailable--etc-kubernetes-manifests]: /etc/kubernetes/manifests is not empty"), "{err}");
    assert!(
        err.contains("[ERROR Port-10250]: Port 10250 is in use"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&shared);
}

#[test]
fn join_with_a_fresh_token_registers_the_node() {
    let shared = shared_dir();
    let m = init_master(&shared);
    let (s, cmd, err) = m.run("kubeadm", &["token", "create", "--print-join-command"]);
    assert_eq!(s, 0, "{err}");
    assert!(cmd.starts_with("kubeadm join 127.77.0.2:6443 --token "));
    assert!(cmd.ends_with(" \n"));
    let n = ready_host("node-1", "127.77.0.3", Arch::Arm64, &shared);
    let args: Vec<&str> = cmd.split_whitespace().skip(1).collect();
    let (s, out, err) = n.run("kubeadm", &args);
    assert_eq!(s, 0, "{out}{err}");
    assert!(out.contains("This node has joined the cluster:"));
    assert!(n
        .read("/etc/kubernetes/kubelet.conf")
        .contains("server: https://127.77.0.2:6443"));
    assert!(n
        .read("/var/lib/kubelet/config.yaml")
        .contains("cgroupDriver: systemd"));
    let state = ClusterState::read(&shared).expect("state");
    let node = &state.nodes["node-1"];
    assert_eq!(node.arch, "arm64");
    assert_eq!(node.labels["kubernetes.io/arch"], "arm64");
    assert!(!node.control_plane && node.kubelet.running);
    assert_eq!(node.pod_cidr.as_deref(), Some("10.244.1.0/24"));
    let (s, list, _) = m.run("kubeadm", &["token", "list"]);
    assert_eq!(s, 0);
    assert_eq!(list.lines().count(), 3, "{list}");
    let _ = std::fs::remove_dir_all(&shared);
}

#[test]
fn join_with_a_wrong_token_or_hash_fails_like_kubeadm() {
    let shared = shared_dir();
    let _m = init_master(&shared);
    let state = ClusterState::read(&shared).expect("state");
    let n = ready_host("node-1", "127.77.0.3", Arch::Amd64, &shared);
    let (s, _, err) = n.run(
        "kubeadm",
        &[
            "join",
            "127.77.0.2:6443",
            "--token",
            "zzzzzz.0123456789abcdef",
            "--discovery-token-ca-cert-hash",
            &state.ca_hash,
        ],
    );
    assert_eq!(s, 1);
    assert!(err.starts_with("error execution phase preflight: couldn't validate the identity of the API Server: token id \"zzzzzz\" is invalid for this cluster or it has expired."), "{err}");
    let wrong = format!("sha256:{}", "0".repeat(64));
    let (s, _, err) = n.run(
        "kubeadm",
        &[
            "join",
            "127.77.0.2:6443",
            "--token",
            "abcdef.0123456789abcdef",
            "--discovery-token-ca-cert-hash",
            &wrong,
        ],
    );
    assert_eq!(s, 1);
    assert!(err.contains("none of the public keys"), "{err}");
    let (s, _, err) = n.run(
        "kubeadm",
        &[
            "join",
            "127.77.0.2:6443",
            "--token",
            "abcdef.0123456789abcdex",
            "--discovery-token-ca-cert-hash",
            &state.ca_hash,
        ],
    );
    assert_eq!(s, 1);
    assert!(err.contains("failed to verify JWS signature"), "{err}");
    let (s, _, err) = n.run(
        "kubeadm",
        &[
            "join",
            "127.77.0.9:6443",
            "--token",
            "abcdef.0123456789abcdef",
            "--discovery-token-ca-cert-hash",
            &state.ca_hash,
        ],
    );
    assert_eq!(s, 1);
    assert!(err.contains("connect: connection refused"), "{err}");
    assert!(!ClusterState::read(&shared)
        .expect("state")
        .nodes
        .contains_key("node-1"));
    let _ = std::fs::remove_dir_all(&shared);
}

#[test]
fn config_is_strictly_decoded() {
    let shared = shared_dir();
    let m = ready_host("master", "127.77.0.2", Arch::Amd64, &shared);
    m.write(
        "/root/bad.yaml",
        &INIT_V1BETA3.replace("  criSocket:", "  criSockett:"),
    );
    let (s, out, err) = m.run("kubeadm", &["init", "--config", "/root/bad.yaml"]);
    assert_eq!((s, out.as_str()), (1, ""));
    assert_eq!(
        err,
        "error unmarshaling configuration schema.GroupVersionKind{Group:\"kubeadm.k8s.io\", Version:\"v1beta3\", Kind:\"InitConfiguration\"}: strict decoding error: unknown field \"nodeRegistration.criSockett\"\nTo see the stack trace of this error execute with --v=5 or higher\n"
    );
    m.write("/root/v4.yaml", &INIT_V1BETA3.replace("v1beta3", "v1beta4"));
    let (s, _, err) = m.run("kubeadm", &["init", "--config", "/root/v4.yaml"]);
    assert_eq!(s, 1);
    assert!(
        err.starts_with(
            "no kind \"InitConfiguration\" is registered for version \"kubeadm.k8s.io/v1beta4\""
        ),
        "{err}"
    );
    m.write("/root/v2.yaml", &INIT_V1BETA3.replace("v1beta3", "v1beta2"));
    let (s, _, err) = m.run("kubeadm", &["init", "--config", "/root/v2.yaml"]);
    assert_eq!(s, 1);
    assert!(
        err.starts_with("your configuration file uses an old API spec: \"kubeadm.k8s.io/v1beta2\""),
        "{err}"
    );
    let (s, _, err) = m.run(
        "kubeadm",
        &[
            "init",
            "--config",
            "/root/kubeadm.yaml",
            "--pod-network-cidr",
            "10.0.0.0/16",
        ],
    );
    assert_eq!(s, 1);
    assert!(err.starts_with("can not mix '--config' with arguments [pod-network-cidr]"));
    let _ = std::fs::remove_dir_all(&shared);
}

#[test]
fn preflight_fails_on_swap_and_a_stopped_runtime() {
    let shared = shared_dir();
    let m = ready_host("master", "127.77.0.2", Arch::Amd64, &shared);
    m.write("/root/kubeadm.yaml", INIT_V1BETA3);
    m.write(
        "/proc/swaps",
        "Filename\tType\tSize\tUsed\tPriority\n/swap.img file 1048572 0 -2\n",
    );
    std::fs::remove_file(m.root.join("run/lab-systemd/containerd.service.active")).expect("stop");
    let (s, out, err) = m.run("kubeadm", &["init", "--config", "/root/kubeadm.yaml"]);
    assert_eq!(s, 1);
    assert!(out.ends_with("[preflight] Running pre-flight checks\n"));
    assert!(
        err.contains(
            "\t[ERROR Swap]: running with swap on is not supported. Please disable swap\n"
        ),
        "{err}"
    );
    assert!(
        err.contains("[ERROR CRI]: container runtime is not running"),
        "{err}"
    );
    let (s, _, err) = m.run(
        "kubeadm",
        &[
            "init",
            "--config",
            "/root/kubeadm.yaml",
            "--ignore-preflight-errors=Swap,CRI",
        ],
    );
    // Past preflight, the kubelet itself cannot run with swap on and no runtime.
    assert_eq!(s, 1);
    assert!(
        err.contains("error execution phase wait-control-plane"),
        "{err}"
    );
    assert!(m.read("/var/log/k8sup-lab/kubelet.log").contains("swap"));
    let _ = std::fs::remove_dir_all(&shared);
}

#[test]
fn a_kubelet_cgroup_mismatch_fails_init() {
    let shared = shared_dir();
    let m = ready_host("master", "127.77.0.2", Arch::Amd64, &shared);
    m.write("/etc/containerd/config.toml", "version = 2\n");
    m.write("/root/kubeadm.yaml", INIT_V1BETA3);
    let (s, _, err) = m.run("kubeadm", &["init", "--config", "/root/kubeadm.yaml"]);
    assert_eq!(s, 1);
    assert!(err.contains("wait-control-plane"));
    assert!(m.read("/var/log/k8sup-lab/kubelet.log").contains(
        "misconfiguration: kubelet cgroup driver: \"systemd\" is different from containerd cgroup driver: \"cgroupfs\""
    ));
    let _ = std::fs::remove_dir_all(&shared);
}

/// A first master with a controlPlaneEndpoint and uploaded certificates (others can
/// join as control planes); returns it and `init`'s output.
pub(crate) fn init_ha_master(shared: &std::path::Path) -> (FakeHost, String) {
    let m = ready_host("master", "127.77.0.2", Arch::Amd64, shared);
    m.write(
        "/root/kubeadm.yaml",
        &INIT_V1BETA3.replace(
            "kubernetesVersion:",
            "controlPlaneEndpoint: 127.77.0.2:6443\nkubernetesVersion:",
        ),
    );
    let (s, out, err) = m.run(
        "kubeadm",
        &["init", "--config", "/root/kubeadm.yaml", "--upload-certs"],
    );
    assert_eq!(s, 0, "{err}");
    (m, out)
}

#[test]
fn control_plane_join_needs_the_uploaded_certificate_key() {
    let shared = shared_dir();
    let (m, out) = init_ha_master(&shared);
    assert!(out.contains("--control-plane --certificate-key"));
    let state = ClusterState::read(&shared).expect("state");
    let key = state.certificate_key.clone().expect("key");
    let m2 = ready_host("master-2", "127.77.0.4", Arch::Amd64, &shared);
    let base = [
        "join",
        "127.77.0.2:6443",
        "--token",
        "abcdef.0123456789abcdef",
        "--discovery-token-ca-cert-hash",
        &state.ca_hash,
        "--control-plane",
        "--certificate-key",
    ];
    let wrong = "1".repeat(64);
    let mut args = base.to_vec();
    args.push(&wrong);
    let (s, _, err) = m2.run("kubeadm", &args);
    assert_eq!(s, 1);
    assert!(
        err.contains("cipher: message authentication failed"),
        "{err}"
    );
    let mut args = base.to_vec();
    args.push(&key);
    let (s, out, err) = m2.run("kubeadm", &args);
    assert_eq!(s, 0, "{out}{err}");
    assert!(ClusterState::read(&shared).expect("state").nodes["master-2"].control_plane);
    let (s, out, _) = m.run(
        "kubeadm",
        &["init", "phase", "upload-certs", "--upload-certs"],
    );
    assert_eq!(s, 0);
    assert!(out.starts_with("[upload-certs] Storing the certificates in Secret \"kubeadm-certs\""));
    let _ = std::fs::remove_dir_all(&shared);
}

#[test]
fn reset_cleans_the_host_and_the_last_control_plane_takes_the_cluster_along() {
    let shared = shared_dir();
    let m = init_master(&shared);
    let (s, _, err) = m.run("kubeadm", &["reset", "-f"]);
    assert_eq!(s, 0, "{err}");
    assert!(!m.root.join("etc/kubernetes/admin.conf").exists());
    assert!(!m.root.join("var/lib/kubelet/config.yaml").exists());
    assert!(!ClusterState::read(&shared).expect("state").initialized);
    let (s, out, err) = m.run("kubeadm", &["init", "--config", "/root/kubeadm.yaml"]);
    assert_eq!(s, 0, "{out}{err}");
    let _ = std::fs::remove_dir_all(&shared);
}
