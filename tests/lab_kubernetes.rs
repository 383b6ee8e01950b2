//! `k8sup apply` installs Kubernetes on a mixed lab (Ubuntu and Rocky, amd64
//! and arm64) with the built-in playbook: every node Ready, the pitfalls of
//! the manual flow handled by construction, and no secret in any output.

mod common;

use common::{
    assert_converged, k8sup, lab, ledger_files, mixed_lab, on, read, stderr, stdout,
    write_inventory,
};

/// A cluster whose settings all differ from the defaults, so that a value
/// taken from a default instead of the inventory shows.
const CLUSTER: &str = r#"
[cluster]
name = "kube"
kubernetes_version = "1.30.4"
runtime = "containerd"
cni = "flannel"
pod_cidr = "10.250.0.0/16"
service_cidr = "10.100.0.0/16"
image_repository = "registry.aliyuncs.com/google_containers"

[images.overrides]
"docker.io/flannel/flannel:v0.25.6" = { arm64 = "registry.example.org/flannel/flannel:v0.25.6-arm64" }
"#;

#[test]
fn a_mixed_cluster_comes_up_ready_and_a_second_apply_changes_nothing() {
    let Some(lab) = lab(&mixed_lab("kube")) else {
        return;
    };
    let inv = write_inventory(&lab, "kube.toml", &lab.inventory_toml(CLUSTER));
    let inv = inv.to_str().unwrap();
    let state = lab.dir().join("k8sup-state");
    let env = [("K8SUP_STATE_DIR", state.to_str().unwrap())];
    let report = lab.dir().join("report.json");

    let first = k8sup(
        &["apply", "-i", inv, "--report", report.to_str().unwrap()],
        &env,
    );
    assert!(
        first.status.success(),
        "{}{}",
        stdout(&first),
        stderr(&first)
    );

    // Every node is Ready.
    let nodes = on(&lab, "master", "kubectl get nodes --no-headers");
    for name in ["master", "node-a", "node-arm", "node-r"] {
        assert!(
            nodes
                .lines()
                .any(|l| l.starts_with(name) && l.split_whitespace().nth(1) == Some("Ready")),
            "{name} is not Ready:\n{nodes}"
        );
    }

    // The systemd cgroup driver in the runtime and in the kubelet, on every host.
    for h in lab.hosts() {
        let containerd = read(&lab, &h.name, "/etc/containerd/config.toml");
        assert!(
            containerd.contains("SystemdCgroup = true"),
            "{}: {containerd}",
            h.name
        );
        // The pause image follows image_repository, for the runtime...
        assert!(
            containerd
                .contains("sandbox_image = \"registry.aliyuncs.com/google_containers/pause:3.9\""),
            "{}: {containerd}",
            h.name
        );
        let kubelet = read(&lab, &h.name, "/var/lib/kubelet/config.yaml");
        assert!(
            kubelet.contains("cgroupDriver: systemd"),
            "{}: {kubelet}",
            h.name
        );
        // clusterDNS is the 10th address of service_cidr.
        assert!(kubelet.contains("- 10.100.0.10"), "{}: {kubelet}", h.name);
    }
    // Advertise address and node-ip come from internal_address, on the master's
    // kubeadm configuration.
    let master = lab.host("master").unwrap();
    let init = read(&lab, "master", "/etc/k8sup/kubeadm.yaml");
    assert!(
        init.contains(&format!("advertiseAddress: {}", master.address)),
        "{init}"
    );
    assert!(
        init.contains(&format!("node-ip: {}", master.address))
            || init.contains(&format!("value: {}", master.address)),
        "{init}"
    );
    assert!(
        init.contains("imageRepository: registry.aliyuncs.com/google_containers"),
        "{init}"
    );
    assert!(init.contains("podSubnet: 10.250.0.0/16"), "{init}");
    // ...and for the kubelet (the node IPs the cluster reports).
    let wide = on(&lab, "master", "kubectl get nodes -o wide --no-headers");
    for h in lab.hosts() {
        let line = wide
            .lines()
            .find(|l| l.starts_with(&h.name))
            .unwrap_or_default();
        assert!(line.contains(&h.address.to_string()), "{}: {line}", h.name);
    }

    // flannel's network is pod_cidr, and the arm64 node runs the arm64 image.
    let pods = on(
        &lab,
        "master",
        "kubectl get pods -n kube-flannel -o wide --no-headers",
    );
    let arm_pod = pods
        .lines()
        .find(|l| l.contains("node-arm"))
        .unwrap_or_default()
        .to_string();
    assert!(!arm_pod.is_empty(), "no flannel pod on node-arm:\n{pods}");
    let ds = on(&lab, "master", "kubectl get ds -n kube-flannel -o json");
    assert!(
        ds.contains("registry.example.org/flannel/flannel:v0.25.6-arm64"),
        "{ds}"
    );
    assert!(
        ds.contains("\"kubernetes.io/arch\": \"arm64\"")
            || ds.contains("\"kubernetes.io/arch\":\"arm64\""),
        "{ds}"
    );
    let cm = on(
        &lab,
        "master",
        "kubectl get cm -n kube-flannel kube-flannel-cfg -o json",
    );
    assert!(cm.contains("10.250.0.0/16"), "{cm}");

    // A second apply changes nothing, and the drift check says so.
    let second = assert_converged(inv, &env);

    // The join token, CA hash and certificate key are in no output, report,
    // history or state file.
    let tokens = on(&lab, "master", "kubeadm token list -o jsonpath='{.token}' 2>/dev/null; kubeadm token list 2>/dev/null | awk 'NR>1 {print $1}'");
    let secrets: Vec<&str> = tokens
        .split_whitespace()
        .filter(|t| t.len() >= 20)
        .collect();
    assert!(
        !secrets.is_empty(),
        "no token found to look for: {tokens:?}"
    );
    let mut texts = vec![
        format!("{}{}", stdout(&first), stderr(&first)),
        format!("{}{}", stdout(&second), stderr(&second)),
        std::fs::read_to_string(&report).unwrap(),
    ];
    for h in lab.hosts() {
        for (_, bytes) in ledger_files(&h.path("/var/lib/k8sup/state.json")) {
            texts.push(String::from_utf8_lossy(&bytes).into_owned());
        }
    }
    for entry in walk(&state) {
        texts.push(std::fs::read_to_string(entry).unwrap_or_default());
    }
    for secret in secrets {
        let token_id = secret.split('.').next().unwrap_or(secret);
        for text in &texts {
            assert!(
                !text.contains(secret) && !text.contains(&format!("{token_id}.")),
                "a join token leaked"
            );
        }
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[test]
fn calico_from_a_manifest_file_is_patched_and_applied() {
    let Some(lab) = lab(&mixed_lab("kubecal")) else {
        return;
    };
    let manifest =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/manifests/calico.yaml");
    let cluster = format!(
        r#"
[cluster]
name = "calico"
kubernetes_version = "1.31"
cni = "calico"
cni_manifest = "{}"
pod_cidr = "10.210.0.0/16"

[images.overrides]
"docker.io/calico/node:v3.28.1" = {{ arm64 = "registry.example.org/calico/node:v3.28.1-arm64" }}
"#,
        manifest.display()
    );
    let inv = write_inventory(&lab, "calico.toml", &lab.inventory_toml(&cluster));
    let inv = inv.to_str().unwrap();
    let state = lab.dir().join("k8sup-state");
    let env = [("K8SUP_STATE_DIR", state.to_str().unwrap())];
    let out = k8sup(&["apply", "-i", inv], &env);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let nodes = on(
        &lab,
        "master",
        "kubectl --kubeconfig /etc/kubernetes/admin.conf get nodes --no-headers",
    );
    for name in ["master", "node-a", "node-arm", "node-r"] {
        assert!(
            nodes
                .lines()
                .any(|l| l.starts_with(name) && l.split_whitespace().nth(1) == Some("Ready")),
            "{name} is not Ready:\n{nodes}"
        );
    }
    let ds = on(
        &lab,
        "master",
        "kubectl --kubeconfig /etc/kubernetes/admin.conf get ds -n kube-system -o json",
    );
    // Calico's IPv4 pool is pod_cidr, and the arm64 nodes get their own DaemonSet.
    assert!(
        ds.contains("CALICO_IPV4POOL_CIDR") && ds.contains("10.210.0.0/16"),
        "{ds}"
    );
    assert!(
        ds.contains("registry.example.org/calico/node:v3.28.1-arm64"),
        "{ds}"
    );

    // A manifest whose checksum differs from the inventory's is refused before any change.
    let bad = lab.inventory_toml(&cluster.replace(
        "pod_cidr",
        "cni_manifest_sha256 = \"0000000000000000000000000000000000000000000000000000000000000000\"\npod_cidr",
    ));
    let bad = write_inventory(&lab, "bad-sha.toml", &bad);
    let out = k8sup(&["plan", "-i", bad.to_str().unwrap()], &env);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("refusing to apply it"),
        "{}",
        stderr(&out)
    );
}
