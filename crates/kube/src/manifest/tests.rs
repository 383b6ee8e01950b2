use super::*;
use crate::testing::inventory;

fn docs(text: &str) -> Vec<Value> {
    split_documents(text)
        .into_iter()
        .map(|d| serde_norway::from_str(d).expect("valid YAML"))
        .collect()
}

fn by_kind<'a>(docs: &'a [Value], kind_name: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| kind(d) == kind_name).collect()
}

fn name(doc: &Value) -> &str {
    doc["metadata"]["name"].as_str().unwrap_or("")
}

fn images(doc: &Value) -> Vec<String> {
    let mut doc = doc.clone();
    containers_mut(&mut doc)
        .into_iter()
        .filter_map(|c| container_image(c).map(str::to_string))
        .collect()
}

fn env<'a>(doc: &'a Value, container: &str, var: &str) -> Option<&'a Value> {
    let spec = &doc["spec"]["template"]["spec"];
    spec["containers"]
        .as_sequence()?
        .iter()
        .find(|c| c["name"].as_str() == Some(container))?["env"]
        .as_sequence()?
        .iter()
        .find(|e| e["name"].as_str() == Some(var))
}

const MIXED: &str = r#"
[cluster]
name = "mixed"
kubernetes_version = "1.31"
pod_cidr = "172.16.0.0/16"
registry_mirrors = ["https://mirror.example.org/"]

[images.overrides]
"docker.io/flannel/flannel:v0.25.6" = { arm64 = "registry.example.org/flannel:v0.25.6-arm64" }

[ssh]
user = "root"

[[hosts]]
name = "m1"
address = "10.0.0.10"
roles = ["master"]
arch = "amd64"

[[hosts]]
name = "n1"
address = "10.0.0.20"
roles = ["node"]
arch = "arm64"
"#;

/// The DaemonSet of the legacy (v0.11) kube-flannel.yml: one per architecture,
/// pinned by nodeSelector, with `-amd64` style image names.
const LEGACY_FLANNEL_PINNED: &str = r#"
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: kube-flannel-ds-amd64
  namespace: kube-system
spec:
  selector:
    matchLabels:
      app: flannel
  template:
    metadata:
      labels:
        tier: node
        app: flannel
    spec:
      hostNetwork: true
      nodeSelector:
        beta.kubernetes.io/arch: amd64
      initContainers:
      - name: install-cni
        image: quay.io/coreos/flannel:v0.11.0-amd64
        command:
        - cp
      containers:
      - name: kube-flannel
        image: quay.io/coreos/flannel:v0.11.0-amd64
        command:
        - /opt/bin/flanneld
        args:
        - --ip-masq
        - --kube-subnet-mgr
        - --iface=eth1
"#;

const CALICO_NODE: &str = r#"
# Source: calico/templates/calico-node.yaml
kind: DaemonSet
apiVersion: apps/v1
metadata:
  name: calico-node
  namespace: kube-system
  labels:
    k8s-app: calico-node
spec:
  selector:
    matchLabels:
      k8s-app: calico-node
  template:
    metadata:
      labels:
        k8s-app: calico-node
    spec:
      nodeSelector:
        kubernetes.io/os: linux
      hostNetwork: true
      initContainers:
        - name: install-cni
          image: docker.io/calico/cni:v3.28.2
          command: ["/opt/cni/bin/install"]
      containers:
        - name: calico-node
          image: docker.io/calico/node:v3.28.2
          env:
            - name: DATASTORE_TYPE
              value: "kubernetes"
            - name: CALICO_NETWORKING_BACKEND
              valueFrom:
                configMapKeyRef:
                  name: calico-config
                  key: calico_backend
            # - name: CALICO_IPV4POOL_CIDR
            #   value: "192.168.0.0/16"
            - name: FELIX_HEALTHENABLED
              value: "true"
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: calico-kube-controllers
  namespace: kube-system
spec:
  template:
    spec:
      containers:
        - name: calico-kube-controllers
          image: docker.io/calico/kube-controllers:v3.28.2
"#;

#[test]
fn documents_split_at_marker_lines_only() {
    let text = "# comment only\n---\na: 1\n---\n# c\n---\nb: '---'\n...\n";
    assert_eq!(split_documents(text), ["a: 1\n", "b: '---'\n...\n"]);
}

#[test]
fn flannel_network_is_the_pod_cidr() {
    let inv = inventory(MIXED);
    let text = cni_manifest(&inv, None, &ManifestPatch::for_inventory(&inv))
        .unwrap()
        .unwrap();
    let d = docs(&text);
    let cm = by_kind(&d, "ConfigMap")[0];
    let conf: serde_json::Value =
        serde_json::from_str(cm["data"]["net-conf.json"].as_str().unwrap()).unwrap();
    assert_eq!(conf["Network"], "172.16.0.0/16");
    assert_eq!(conf["Backend"]["Type"], "vxlan");
    // Untouched documents are kept as written.
    assert!(text.contains("kind: Namespace\napiVersion: v1\n"), "{text}");
}

#[test]
fn flanneld_takes_the_node_ip_not_the_default_route() {
    let p = ManifestPatch::default();
    let d = docs(&patch("flannel", FLANNEL_MANIFEST, &p).unwrap());
    let ds = by_kind(&d, "DaemonSet")[0];
    let iface = env(ds, "kube-flannel", "FLANNELD_IFACE").expect("FLANNELD_IFACE");
    assert_eq!(
        iface["valueFrom"]["fieldRef"]["fieldPath"].as_str(),
        Some("status.hostIP")
    );
    // A manifest that already chooses the interface keeps its choice.
    let d = docs(&patch("legacy", LEGACY_FLANNEL_PINNED, &p).unwrap());
    assert!(env(&d[0], "kube-flannel", "FLANNELD_IFACE").is_none());
}

#[test]
fn a_daemonset_with_an_override_is_split_per_architecture() {
    let inv = inventory(MIXED);
    let mut p = ManifestPatch::for_inventory(&inv);
    p.docker_hub_mirror = None;
    let d = docs(&patch("flannel", FLANNEL_MANIFEST, &p).unwrap());
    let ds = by_kind(&d, "DaemonSet");
    assert_eq!(ds.len(), 2);
    assert_eq!(name(ds[0]), "kube-flannel-ds-amd64");
    assert_eq!(name(ds[1]), "kube-flannel-ds-arm64");
    for (doc, arch) in [(ds[0], "amd64"), (ds[1], "arm64")] {
        let spec = &doc["spec"]["template"]["spec"];
        assert_eq!(
            spec["nodeSelector"]["kubernetes.io/arch"].as_str(),
            Some(arch)
        );
        assert_eq!(
            doc["spec"]["selector"]["matchLabels"][ARCH_SELECTOR_LABEL].as_str(),
            Some(arch)
        );
        assert_eq!(
            doc["spec"]["template"]["metadata"]["labels"][ARCH_SELECTOR_LABEL].as_str(),
            Some(arch)
        );
    }
    assert_eq!(
        images(ds[0]),
        [
            "docker.io/flannel/flannel-cni-plugin:v1.5.1-flannel2",
            "docker.io/flannel/flannel:v0.25.6",
            "docker.io/flannel/flannel:v0.25.6"
        ]
    );
    // Only the image with an arm64 override changes; the CNI plugin has none.
    assert_eq!(
        images(ds[1]),
        [
            "docker.io/flannel/flannel-cni-plugin:v1.5.1-flannel2",
            "registry.example.org/flannel:v0.25.6-arm64",
            "registry.example.org/flannel:v0.25.6-arm64"
        ]
    );
}

#[test]
fn a_daemonset_without_override_stays_as_it_is() {
    let inv = inventory(&MIXED.replace(
        "\"docker.io/flannel/flannel:v0.25.6\"",
        "\"docker.io/other/image:v1\"",
    ));
    let mut p = ManifestPatch::for_inventory(&inv);
    p.docker_hub_mirror = None;
    let d = docs(&patch("flannel", FLANNEL_MANIFEST, &p).unwrap());
    let ds = by_kind(&d, "DaemonSet");
    assert_eq!(ds.len(), 1);
    assert_eq!(name(ds[0]), "kube-flannel-ds");
    assert!(ds[0]["spec"]["template"]["spec"]["nodeSelector"].is_null());
}

#[test]
fn a_legacy_amd64_daemonset_is_split_and_renamed() {
    let legacy = LEGACY_FLANNEL_PINNED
        .replace(
            "      nodeSelector:\n        beta.kubernetes.io/arch: amd64\n",
            "",
        )
        .replace("name: kube-flannel-ds-amd64", "name: kube-flannel-ds");
    let p = ManifestPatch {
        architectures: vec![Arch::Amd64, Arch::Arm64],
        ..ManifestPatch::default()
    };
    let d = docs(&patch("legacy", &legacy, &p).unwrap());
    assert_eq!(d.len(), 2);
    assert_eq!(name(&d[1]), "kube-flannel-ds-arm64");
    assert_eq!(images(&d[0]), ["quay.io/coreos/flannel:v0.11.0-amd64"; 2]);
    assert_eq!(images(&d[1]), ["quay.io/coreos/flannel:v0.11.0-arm64"; 2]);
}

#[test]
fn a_daemonset_pinned_to_an_arch_only_gets_that_archs_images() {
    let text = LEGACY_FLANNEL_PINNED.replace(
        "beta.kubernetes.io/arch: amd64",
        "beta.kubernetes.io/arch: arm64",
    );
    let p = ManifestPatch {
        architectures: vec![Arch::Amd64, Arch::Arm64],
        ..ManifestPatch::default()
    };
    let d = docs(&patch("legacy", &text, &p).unwrap());
    assert_eq!(d.len(), 1);
    assert_eq!(name(&d[0]), "kube-flannel-ds-amd64");
    assert_eq!(images(&d[0]), ["quay.io/coreos/flannel:v0.11.0-arm64"; 2]);
}

#[test]
fn one_architecture_pins_in_place() {
    let inv = inventory(&MIXED.replace("arch = \"amd64\"", "arch = \"arm64\""));
    let mut p = ManifestPatch::for_inventory(&inv);
    p.docker_hub_mirror = None;
    let d = docs(&patch("flannel", FLANNEL_MANIFEST, &p).unwrap());
    let ds = by_kind(&d, "DaemonSet");
    assert_eq!(ds.len(), 1);
    assert_eq!(name(ds[0]), "kube-flannel-ds");
    assert_eq!(
        ds[0]["spec"]["template"]["spec"]["nodeSelector"]["kubernetes.io/arch"].as_str(),
        Some("arm64")
    );
    assert_eq!(
        images(ds[0])[2],
        "registry.example.org/flannel:v0.25.6-arm64"
    );
}

#[test]
fn docker_hub_images_go_through_the_registry_mirror() {
    let inv = inventory(MIXED);
    let p = ManifestPatch::for_inventory(&inv);
    assert_eq!(p.docker_hub_mirror.as_deref(), Some("mirror.example.org"));
    let d = docs(&patch("flannel", FLANNEL_MANIFEST, &p).unwrap());
    let ds = by_kind(&d, "DaemonSet");
    assert_eq!(
        images(ds[0]),
        [
            "mirror.example.org/flannel/flannel-cni-plugin:v1.5.1-flannel2",
            "mirror.example.org/flannel/flannel:v0.25.6",
            "mirror.example.org/flannel/flannel:v0.25.6"
        ]
    );
    // The override points at another registry: it is not a Docker Hub image.
    assert_eq!(
        images(ds[1])[2],
        "registry.example.org/flannel:v0.25.6-arm64"
    );
    // Images elsewhere than Docker Hub are left alone.
    let d = docs(&patch("legacy", LEGACY_FLANNEL_PINNED, &p).unwrap());
    assert_eq!(images(&d[0])[0], "quay.io/coreos/flannel:v0.11.0-amd64");
}

#[test]
fn calico_pool_is_the_pod_cidr_and_autodetection_the_internal_ip() {
    let inv = inventory(
        &MIXED
            .replace(
                "[images.overrides]\n\"docker.io/flannel/flannel:v0.25.6\"",
                "[images.overrides]\n\"docker.io/calico/node:v3.28.2\"",
            )
            .replace(
                "[cluster]\n",
                "[cluster]\ncni = \"calico\"\ncni_manifest = \"https://example.org/calico.yaml\"\n",
            ),
    );
    let p = ManifestPatch::for_inventory(&inv);
    assert!(matches!(
        cni_manifest(&inv, None, &p),
        Err(KubeError::CalicoManifestNeeded { .. })
    ));
    let text = cni_manifest(&inv, Some(CALICO_NODE), &p).unwrap().unwrap();
    let d = docs(&text);
    let ds = by_kind(&d, "DaemonSet");
    assert_eq!(ds.len(), 2, "calico-node has an override: split");
    for doc in &ds {
        assert_eq!(
            env(doc, "calico-node", "CALICO_IPV4POOL_CIDR").unwrap()["value"].as_str(),
            Some("172.16.0.0/16")
        );
        assert_eq!(
            env(doc, "calico-node", "IP_AUTODETECTION_METHOD").unwrap()["value"].as_str(),
            Some("kubernetes-internal-ip")
        );
    }
    assert_eq!(
        images(ds[1])[1],
        "registry.example.org/flannel:v0.25.6-arm64"
    );
    let deploy = by_kind(&d, "Deployment")[0];
    assert_eq!(
        images(deploy),
        ["mirror.example.org/calico/kube-controllers:v3.28.2"]
    );
}

#[test]
fn broken_manifests_are_refused_with_their_place() {
    let e = patch("x.yaml", "a: 1\n---\nb: [\n", &ManifestPatch::default()).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("x.yaml: document 2 is not valid YAML"),
        "{e}"
    );
    let bad = "kind: ConfigMap\ndata:\n  net-conf.json: '{nope'\n";
    let p = ManifestPatch {
        pod_cidr: "10.0.0.0/8".parse().ok(),
        ..ManifestPatch::default()
    };
    assert!(matches!(
        patch("x.yaml", bad, &p),
        Err(KubeError::ManifestShape { .. })
    ));
}

#[test]
fn none_has_no_manifest() {
    let inv = inventory(&MIXED.replace("[cluster]\n", "[cluster]\ncni = \"none\"\n"));
    assert!(
        cni_manifest(&inv, None, &ManifestPatch::for_inventory(&inv))
            .unwrap()
            .is_none()
    );
}

#[test]
fn flannel_for_a_mixed_cluster() {
    let inv = inventory(MIXED);
    let text = cni_manifest(&inv, None, &ManifestPatch::for_inventory(&inv))
        .unwrap()
        .unwrap();
    insta::assert_snapshot!("flannel_mixed", text);
}

#[test]
fn the_images_a_node_pulls_follow_its_architecture() {
    let inv = inventory(MIXED);
    let text = cni_manifest(&inv, None, &ManifestPatch::for_inventory(&inv))
        .unwrap()
        .unwrap();
    // Mirrored through registry_mirrors: the arm64 flannel comes from its override.
    let amd64 = daemonset_images(&text, "amd64");
    let arm64 = daemonset_images(&text, "arm64");
    assert!(
        amd64.iter().any(|i| i.ends_with("flannel/flannel:v0.25.6")),
        "{amd64:?}"
    );
    assert!(!amd64.iter().any(|i| i.contains("arm64")), "{amd64:?}");
    assert!(
        arm64.contains(&"registry.example.org/flannel:v0.25.6-arm64".to_string()),
        "{arm64:?}"
    );
    // Each image once, the CNI plugin's included.
    assert_eq!(arm64.len(), 2, "{arm64:?}");
    assert!(daemonset_images("not yaml: [", "amd64").is_empty());
}
