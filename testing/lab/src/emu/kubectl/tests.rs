use crate::distro::Arch;
use crate::emu::cluster::ClusterState;
use crate::emu::kubeadm::tests::{init_master, ready_host, shared_dir};
use crate::emu::testing::FakeHost;

const KC: &str = "--kubeconfig=/etc/kubernetes/admin.conf";

pub(crate) const FLANNEL: &str = r#"apiVersion: v1
kind: Namespace
metadata:
  name: kube-flannel
  labels:
    pod-security.kubernetes.io/enforce: privileged
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: flannel
  namespace: kube-flannel
---
kind: ConfigMap
apiVersion: v1
metadata:
  name: kube-flannel-cfg
  namespace: kube-flannel
data:
  net-conf.json: |
    {
      "Network": "10.244.0.0/16",
      "Backend": {"Type": "vxlan"}
    }
---
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: kube-flannel-ds-amd64
  namespace: kube-flannel
spec:
  selector:
    matchLabels:
      app: flannel
      arch: amd64
  template:
    metadata:
      labels:
        app: flannel
        arch: amd64
    spec:
      hostNetwork: true
      nodeSelector:
        kubernetes.io/arch: amd64
      tolerations:
      - operator: Exists
        effect: NoSchedule
      containers:
      - name: kube-flannel
        image: docker.io/flannel/flannel:v0.25.6-amd64
      volumes:
      - name: cni
        hostPath:
          path: /etc/cni/net.d
---
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: kube-flannel-ds-arm64
  namespace: kube-flannel
spec:
  selector:
    matchLabels:
      app: flannel
      arch: arm64
  template:
    metadata:
      labels:
        app: flannel
        arch: arm64
    spec:
      hostNetwork: true
      affinity:
        nodeAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
            nodeSelectorTerms:
            - matchExpressions:
              - key: kubernetes.io/arch
                operator: In
                values: [arm64]
      tolerations:
      - operator: Exists
        effect: NoSchedule
      containers:
      - name: kube-flannel
        image: docker.io/flannel/flannel:v0.25.6-arm64
      volumes:
      - name: cni
        hostPath:
          path: /etc/cni/net.d
"#;

pub(crate) fn cluster_of_two() -> (std::path::PathBuf, FakeHost, FakeHost) {
    let shared = shared_dir();
    let m = init_master(&shared);
    let (_, cmd, _) = m.run("kubeadm", &["token", "create", "--print-join-command"]);
    let n = ready_host("node-1", "127.77.0.3", Arch::Arm64, &shared);
    let args: Vec<&str> = cmd.split_whitespace().skip(1).collect();
    let (s, _, err) = n.run("kubeadm", &args);
    assert_eq!(s, 0, "{err}");
    (shared, m, n)
}

#[test]
fn without_a_kubeconfig_the_connection_is_refused() {
    let shared = shared_dir();
    let m = init_master(&shared);
    let (s, _, err) = m.run("kubectl", &["get", "nodes"]);
    if std::env::var_os("KUBECONFIG").is_none() {
        assert_eq!(s, 1);
        assert_eq!(
            err,
            "The connection to the server localhost:8080 was refused - did you specify the right host or port?\n"
        );
    }
    let (s, out, _) = m.run("kubectl", &["version", "--client", "-o", "yaml"]);
    assert_eq!(s, 0);
    assert!(out.contains("gitVersion: v1.30.4"), "{out}");
    let _ = std::fs::remove_dir_all(&shared);
}

#[test]
fn nodes_are_ready_once_a_cni_runs_on_them() {
    let (shared, m, _n) = cluster_of_two();
    let (s, out, err) = m.run("kubectl", &[KC, "get", "nodes"]);
    assert_eq!(s, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
    );
    assert!(
        lines[1].starts_with("master   NotReady   control-plane   "),
        "{out}"
    );
    assert!(
        lines[2].starts_with("node-1   NotReady   <none>          "),
        "{out}"
    );
    m.write("/root/flannel.yaml", FLANNEL);
    let (s, out, err) = m.run("kubectl", &[KC, "apply", "-f", "/root/flannel.yaml"]);
    assert_eq!(s, 0, "{err}");
    assert_eq!(
        out,
        "namespace/kube-flannel created\nserviceaccount/flannel created\nconfigmap/kube-flannel-cfg created\ndaemonset.apps/kube-flannel-ds-amd64 created\ndaemonset.apps/kube-flannel-ds-arm64 created\n"
    );
    let (_, out, _) = m.run("kubectl", &[KC, "apply", "-f", "/root/flannel.yaml"]);
    assert!(out.contains("daemonset.apps/kube-flannel-ds-arm64 unchanged"));
    let (_, out, _) = m.run("kubectl", &[KC, "get", "nodes", "--no-headers"]);
    assert!(
        out.lines()
            .all(|l| l.split_whitespace().nth(1) == Some("Ready")),
        "{out}"
    );
    let (s, out, _) = m.run(
        "kubectl",
        &[
            KC,
            "wait",
            "--for=condition=Ready",
            "node",
            "--all",
            "--timeout=5s",
        ],
    );
    assert_eq!(
        (s, out.as_str()),
        (0, "node/master condition met\nnode/node-1 condition met\n")
    );
    let (_, out, _) = m.run("kubectl", &[KC, "get", "pods", "-A", "-o", "wide"]);
    let arm = out
        .lines()
        .find(|l| l.contains("kube-flannel-ds-arm64-"))
        .expect("arm64 pod");
    assert!(arm.contains(" node-1 ") && arm.contains("Running"), "{out}");
    assert!(!out
        .lines()
        .any(|l| l.contains("kube-flannel-ds-arm64-") && l.contains(" master ")));
    let (_, out, _) = m.run(
        "kubectl",
        &[KC, "get", "ds", "-n", "kube-flannel", "-o", "json"],
    );
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v["items"][1]["status"]["desiredNumberScheduled"], 1);
    let (_, out, _) = m.run(
        "kubectl",
        &[
            KC,
            "get",
            "nodes",
            "-o",
            "jsonpath={.items[*].status.nodeInfo.architecture}",
        ],
    );
    assert_eq!(out, "amd64 arm64");
    let state = ClusterState::read(&shared).expect("state");
    assert_eq!(state.applied, 2);
    assert!(shared.join("manifests/0001-flannel.yaml").exists());
    assert_eq!(
        state
            .object("DaemonSet", "kube-flannel", "kube-flannel-ds-arm64")
            .map(|o| o.source.as_str()),
        Some("0002-flannel.yaml")
    );
    let _ = std::fs::remove_dir_all(&shared);
}

#[test]
fn apply_rejects_what_the_api_server_rejects() {
    let shared = shared_dir();
    let m = init_master(&shared);
    m.write(
        "/root/psp.yaml",
        "apiVersion: policy/v1beta1\nkind: PodSecurityPolicy\nmetadata:\n  name: psp\nspec: {}\n",
    );
    let (s, _, err) = m.run("kubectl", &[KC, "apply", "-f", "/root/psp.yaml"]);
    assert_eq!(s, 1);
    assert_eq!(err, "error: resource mapping not found for name: \"psp\" namespace: \"\" from \"/root/psp.yaml\": no matches for kind \"PodSecurityPolicy\" in version \"policy/v1beta1\"\nensure CRDs are installed first\n");
    let bad_selector = crate::emu::kubectl::tests::FLANNEL.replace(
        "      arch: amd64\n  template",
        "      arch: arm64\n  template",
    );
    m.write("/root/bad.yaml", &bad_selector);
    let (s, out, err) = m.run("kubectl", &[KC, "apply", "-f", "/root/bad.yaml"]);
    assert_eq!(s, 1);
    assert!(out.contains("daemonset.apps/kube-flannel-ds-arm64 created"));
    assert!(err.contains("The DaemonSet \"kube-flannel-ds-amd64\" is invalid: spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"flannel\", \"arch\":\"amd64\"}: `selector` does not match template `labels`"), "{err}");
    m.write("/root/typo.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n  namespace: nowhere\ndata:\n  a: b\n");
    let (s, _, err) = m.run("kubectl", &[KC, "apply", "-f", "/root/typo.yaml"]);
    assert_eq!(s, 1);
    assert!(err.contains("namespaces \"nowhere\" not found"), "{err}");
    m.write("/root/unknown.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n  namespace: default\ndatta:\n  a: b\n");
    let (s, _, err) = m.run("kubectl", &[KC, "apply", "-f", "/root/unknown.yaml"]);
    assert_eq!(s, 1);
    assert!(err.contains("ConfigMap in version \"v1\" cannot be handled as a ConfigMap: strict decoding error: unknown field \"datta\""), "{err}");
    let _ = std::fs::remove_dir_all(&shared);
}

#[test]
fn label_taint_and_delete_nodes() {
    let (shared, m, _n) = cluster_of_two();
    let (s, out, _) = m.run(
        "kubectl",
        &[
            KC,
            "label",
            "node",
            "node-1",
            "node-role.kubernetes.io/worker=",
        ],
    );
    assert_eq!((s, out.as_str()), (0, "node/node-1 labeled\n"));
    let (s, out, _) = m.run(
        "kubectl",
        &[
            KC,
            "taint",
            "node",
            "master",
            "node-role.kubernetes.io/control-plane:NoSchedule-",
        ],
    );
    assert_eq!((s, out.as_str()), (0, "node/master untainted\n"));
    let (s, _, err) = m.run(
        "kubectl",
        &[
            KC,
            "taint",
            "node",
            "master",
            "node-role.kubernetes.io/control-plane:NoSchedule-",
        ],
    );
    assert_eq!(s, 1, "{err}");
    let (_, out, _) = m.run("kubectl", &[KC, "get", "nodes", "node-1", "--no-headers"]);
    assert!(out.contains(" worker "), "{out}");
    let (s, out, _) = m.run("kubectl", &[KC, "delete", "node", "node-1"]);
    assert_eq!((s, out.as_str()), (0, "node \"node-1\" deleted\n"));
    let (s, _, err) = m.run("kubectl", &[KC, "get", "node", "node-1"]);
    assert_eq!(
        (s, err.as_str()),
        (
            1,
            "Error from server (NotFound): nodes \"node-1\" not found\n"
        )
    );
    let (s, _, err) = m.run(
        "kubectl",
        &[
            KC,
            "wait",
            "--for=condition=Ready",
            "node",
            "--all",
            "--timeout=1s",
        ],
    );
    assert_eq!(s, 1);
    assert_eq!(
        err,
        "error: timed out waiting for the condition on nodes/master\n"
    );
    let _ = std::fs::remove_dir_all(&shared);
}
