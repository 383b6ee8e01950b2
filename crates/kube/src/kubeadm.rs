//! kubeadm's configuration documents, rendered from the inventory per host and
//! per Kubernetes version.
//!
//! kubeadm reads its whole configuration from one YAML file; k8sup writes it with
//! `kubeadm init --config` and `kubeadm join --config` rather than flags, because
//! the file is the only reliable way to reach component arguments (`extraArgs`) and
//! the kubelet's configuration. The API version follows the Kubernetes version:
//! `kubeadm.k8s.io/v1beta3` before 1.31, `v1beta4` from 1.31, whose `extraArgs`
//! are a list of `{name, value}` instead of a map.
//!
//! What is derived here, so that no user has to know it:
//! - the advertise address and the kubelet's `node-ip` are the host's
//!   `internal_address` (kubeadm would otherwise take the default-route NIC);
//! - `clusterDNS` is the 10th address of the service CIDR;
//! - the kubelet's `cgroupDriver` is the inventory's, which the runtime also gets;
//! - the kubelet's pause image follows `image_repository`;
//! - the API server certificate lists the extra SANs, the endpoint's host and
//!   every master's internal address.
//!
//! Joins: kubeadm refuses `--config` mixed with `--token` or
//! `--discovery-token-ca-cert-hash` (only `--node-name`, `--dry-run`,
//! `--ignore-preflight-errors`, `--skip-*` and a few others may accompany it), so
//! the join token, CA hash and certificate key must be inside the file. They are
//! secrets: the JoinConfiguration rendered here holds [`TOKEN_PLACEHOLDER`],
//! [`CA_CERT_HASH_PLACEHOLDER`] and [`CERTIFICATE_KEY_PLACEHOLDER`]; the playbook's
//! join command fills them on the host into a short-lived 0600 file, from values
//! the engine fetched as secrets, so plans and diffs never contain them.

use std::collections::BTreeMap;

use k8sup_inventory::{
    CgroupDriver, Component, Host, Inventory, KubeProxyValue, KubeVersion, Runtime,
    KUBE_PROXY_FLAGS,
};
use serde::Serialize;
use serde_json::Value as Json;

use crate::KubeError;

/// Where the join token goes in a rendered JoinConfiguration.
pub const TOKEN_PLACEHOLDER: &str = "K8SUP_JOIN_TOKEN";
/// Where the discovery CA certificate hash goes.
pub const CA_CERT_HASH_PLACEHOLDER: &str = "K8SUP_CA_CERT_HASH";
/// Where the certificate key of a control-plane join goes.
pub const CERTIFICATE_KEY_PLACEHOLDER: &str = "K8SUP_CERTIFICATE_KEY";

/// The API server's port on every master (the endpoint may be a load balancer on
/// another port).
pub const API_SERVER_PORT: u16 = 6443;

/// The taint kubeadm puts on a control-plane node that does not also run workloads.
pub const CONTROL_PLANE_TAINT: &str = "node-role.kubernetes.io/control-plane";

/// The CRI socket of the runtime.
pub fn cri_socket(inventory: &Inventory) -> &'static str {
    match inventory.cluster.runtime {
        Runtime::Containerd => "unix:///run/containerd/containerd.sock",
        Runtime::Docker => "unix:///run/cri-dockerd.sock",
    }
}

/// Whether this version's kubelet still takes `--pod-infra-container-image`
/// (removed in 1.35; until then it keeps the pause image from garbage collection).
pub fn kubelet_takes_pod_infra_flag(version: &KubeVersion) -> bool {
    version.minor < 35
}

/// kubeadm's configuration API generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KubeadmApi {
    /// `kubeadm.k8s.io/v1beta3`: extraArgs are maps.
    V1Beta3,
    /// `kubeadm.k8s.io/v1beta4` (1.31+): extraArgs are lists of `{name, value}`.
    V1Beta4,
}

impl KubeadmApi {
    pub fn for_version(version: &KubeVersion) -> KubeadmApi {
        if version.kubeadm_api().ends_with("v1beta4") {
            KubeadmApi::V1Beta4
        } else {
            KubeadmApi::V1Beta3
        }
    }

    pub fn api_version(&self) -> &'static str {
        match self {
            KubeadmApi::V1Beta3 => "kubeadm.k8s.io/v1beta3",
            KubeadmApi::V1Beta4 => "kubeadm.k8s.io/v1beta4",
        }
    }

    fn args(&self, args: BTreeMap<String, String>) -> Option<ExtraArgs> {
        if args.is_empty() {
            return None;
        }
        Some(match self {
            KubeadmApi::V1Beta3 => ExtraArgs::Map(args),
            KubeadmApi::V1Beta4 => ExtraArgs::List(
                args.into_iter()
                    .map(|(name, value)| Arg { name, value })
                    .collect(),
            ),
        })
    }
}

/// Component arguments in either API generation's shape.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
enum ExtraArgs {
    Map(BTreeMap<String, String>),
    List(Vec<Arg>),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
struct Arg {
    name: String,
    value: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct InitConfiguration {
    api_version: &'static str,
    kind: &'static str,
    #[serde(rename = "localAPIEndpoint")]
    local_api_endpoint: ApiEndpoint,
    node_registration: NodeRegistration,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ApiEndpoint {
    advertise_address: String,
    bind_port: u16,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct NodeRegistration {
    name: String,
    cri_socket: &'static str,
    /// Always written: an absent list would let kubeadm pick its own defaults.
    taints: Vec<TaintDoc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    kubelet_extra_args: Option<ExtraArgs>,
}

#[derive(Debug, Serialize)]
struct TaintDoc {
    key: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    value: String,
    effect: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ClusterConfiguration {
    api_version: &'static str,
    kind: &'static str,
    cluster_name: String,
    kubernetes_version: String,
    control_plane_endpoint: String,
    image_repository: String,
    networking: Networking,
    api_server: ApiServer,
    #[serde(skip_serializing_if = "ControlPlaneComponent::is_empty")]
    controller_manager: ControlPlaneComponent,
    #[serde(skip_serializing_if = "ControlPlaneComponent::is_empty")]
    scheduler: ControlPlaneComponent,
    #[serde(skip_serializing_if = "Option::is_none")]
    etcd: Option<Etcd>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Networking {
    pod_subnet: String,
    service_subnet: String,
    dns_domain: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ApiServer {
    #[serde(rename = "certSANs")]
    cert_sans: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    extra_args: Option<ExtraArgs>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ControlPlaneComponent {
    #[serde(skip_serializing_if = "Option::is_none")]
    extra_args: Option<ExtraArgs>,
}

impl ControlPlaneComponent {
    fn is_empty(&self) -> bool {
        self.extra_args.is_none()
    }
}

#[derive(Debug, Serialize)]
struct Etcd {
    local: ControlPlaneComponent,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct KubeletConfiguration {
    api_version: &'static str,
    kind: &'static str,
    cgroup_driver: &'static str,
    #[serde(rename = "clusterDNS")]
    cluster_dns: Vec<String>,
    cluster_domain: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct JoinConfiguration {
    api_version: &'static str,
    kind: &'static str,
    discovery: Discovery,
    node_registration: NodeRegistration,
    #[serde(skip_serializing_if = "Option::is_none")]
    control_plane: Option<JoinControlPlane>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Discovery {
    bootstrap_token: BootstrapTokenDiscovery,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct BootstrapTokenDiscovery {
    api_server_endpoint: String,
    token: &'static str,
    ca_cert_hashes: Vec<&'static str>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct JoinControlPlane {
    #[serde(rename = "localAPIEndpoint")]
    local_api_endpoint: ApiEndpoint,
    certificate_key: &'static str,
}

/// Renders `kubeadm init`'s configuration for the first master: InitConfiguration,
/// ClusterConfiguration, KubeletConfiguration and KubeProxyConfiguration, as one
/// multi-document YAML text.
pub fn init_config(inventory: &Inventory, host: &Host) -> Result<String, KubeError> {
    let api = KubeadmApi::for_version(&inventory.cluster.kubernetes_version);
    let init = InitConfiguration {
        api_version: api.api_version(),
        kind: "InitConfiguration",
        local_api_endpoint: api_endpoint(host),
        node_registration: node_registration(inventory, host, api),
    };
    let docs = [
        yaml("InitConfiguration", &init)?,
        cluster_config(inventory, api)?,
        kubelet_config(inventory)?,
        kube_proxy_config(inventory)?,
    ];
    Ok(docs.join("---\n"))
}

/// Renders the JoinConfiguration of a host joining an existing cluster: a worker,
/// or (for a master other than the first) a control-plane member. The discovery
/// token, CA hash and certificate key are placeholders (see the module docs).
pub fn join_config(inventory: &Inventory, host: &Host) -> Result<String, KubeError> {
    let api = KubeadmApi::for_version(&inventory.cluster.kubernetes_version);
    let control_plane = host.roles.master.then(|| JoinControlPlane {
        local_api_endpoint: api_endpoint(host),
        certificate_key: CERTIFICATE_KEY_PLACEHOLDER,
    });
    let join = JoinConfiguration {
        api_version: api.api_version(),
        kind: "JoinConfiguration",
        discovery: Discovery {
            bootstrap_token: BootstrapTokenDiscovery {
                api_server_endpoint: inventory.cluster.control_plane_endpoint.to_string(),
                token: TOKEN_PLACEHOLDER,
                ca_cert_hashes: vec![CA_CERT_HASH_PLACEHOLDER],
            },
        },
        node_registration: node_registration(inventory, host, api),
        control_plane,
    };
    yaml("JoinConfiguration", &join)
}

/// The names the API server certificate is valid for, beyond kubeadm's own
/// (service IP, `kubernetes.default...`, the host's name and advertise address):
/// the inventory's extra SANs, the control-plane endpoint's host (127.0.0.1 with a
/// local balancer, and then `localhost` too) and every master's internal address,
/// without repeats, in that order.
pub fn cert_sans(inventory: &Inventory) -> Vec<String> {
    let mut sans: Vec<String> = Vec::new();
    let candidates = inventory
        .cluster
        .apiserver_cert_sans
        .iter()
        .cloned()
        .chain([inventory.cluster.control_plane_endpoint.host.clone()])
        // Through a local balancer, clients reach any master as 127.0.0.1 (the
        // endpoint above) or localhost.
        .chain(
            inventory
                .cluster
                .control_plane_lb
                .local_port()
                .map(|_| "localhost".to_string()),
        )
        .chain(inventory.masters().map(|m| m.internal_address.to_string()))
        // `k8sup kubeconfig` points at a master's SSH address when the endpoint is
        // a local balancer's 127.0.0.1.
        .chain(
            inventory
                .masters()
                .filter(|_| inventory.cluster.control_plane_lb.local_port().is_some())
                .map(|m| m.address.clone()),
        );
    for san in candidates {
        if !sans.contains(&san) {
            sans.push(san);
        }
    }
    sans
}

/// The kubelet's command-line arguments for `host`: the inventory's
/// `extra_args.kubelet`, then what k8sup derives (which wins): `node-ip`, the
/// host's labels that a kubelet may set on its own node (`node-labels`, so that a
/// node has them from its first moment) and, where the kubelet still takes it,
/// the pause image.
pub fn kubelet_args(inventory: &Inventory, host: &Host) -> BTreeMap<String, String> {
    let mut args = component_args(inventory, Component::Kubelet);
    args.insert("node-ip".into(), host.internal_address.to_string());
    let labels: Vec<String> = host
        .labels
        .iter()
        .filter(|(key, _)| kubelet_may_set_label(key))
        .map(|(key, value)| format!("{key}={value}"))
        .collect();
    if !labels.is_empty() {
        args.insert("node-labels".into(), labels.join(","));
    }
    if kubelet_takes_pod_infra_flag(&inventory.cluster.kubernetes_version) {
        args.insert("pod-infra-container-image".into(), inventory.pause_image());
    }
    args
}

/// Whether the NodeRestriction admission plugin lets a kubelet set `key` on its
/// own node: any label outside the `kubernetes.io` and `k8s.io` namespaces, and
/// within them only those reserved for kubelets. The others are set from the
/// first master (see the playbook's labels task).
pub fn kubelet_may_set_label(key: &str) -> bool {
    const KUBELET_LABELS: &[&str] = &[
        "kubernetes.io/hostname",
        "kubernetes.io/arch",
        "kubernetes.io/os",
        "beta.kubernetes.io/arch",
        "beta.kubernetes.io/os",
        "beta.kubernetes.io/instance-type",
        "node.kubernetes.io/instance-type",
        "topology.kubernetes.io/region",
        "topology.kubernetes.io/zone",
        "failure-domain.beta.kubernetes.io/region",
        "failure-domain.beta.kubernetes.io/zone",
    ];
    let Some((namespace, _)) = key.split_once('/') else {
        return true;
    };
    let within = |domain: &str| namespace == domain || namespace.ends_with(&format!(".{domain}"));
    if !within("kubernetes.io") && !within("k8s.io") {
        return true;
    }
    KUBELET_LABELS.contains(&key) || within("kubelet.kubernetes.io") || within("node.kubernetes.io")
}

fn component_args(inventory: &Inventory, component: Component) -> BTreeMap<String, String> {
    inventory
        .cluster
        .extra_args
        .get(&component)
        .map(|args| {
            args.iter()
                .map(|(k, v)| (k.clone(), v.as_str().to_string()))
                .collect()
        })
        .unwrap_or_default()
}

fn api_endpoint(host: &Host) -> ApiEndpoint {
    ApiEndpoint {
        advertise_address: host.internal_address.to_string(),
        bind_port: API_SERVER_PORT,
    }
}

/// The taints a host registers with: a master that is not also a node keeps
/// kubeadm's control-plane taint; then the host's own.
pub fn registration_taints(host: &Host) -> Vec<(String, String, String)> {
    let mut taints = Vec::new();
    if host.roles.master && !host.roles.node {
        taints.push((
            CONTROL_PLANE_TAINT.to_string(),
            String::new(),
            "NoSchedule".to_string(),
        ));
    }
    for t in &host.taints {
        taints.push((t.key.clone(), t.value.clone(), t.effect.clone()));
    }
    taints
}

fn node_registration(inventory: &Inventory, host: &Host, api: KubeadmApi) -> NodeRegistration {
    NodeRegistration {
        name: host.name.clone(),
        cri_socket: cri_socket(inventory),
        taints: registration_taints(host)
            .into_iter()
            .map(|(key, value, effect)| TaintDoc { key, value, effect })
            .collect(),
        kubelet_extra_args: api.args(kubelet_args(inventory, host)),
    }
}

fn cluster_config(inventory: &Inventory, api: KubeadmApi) -> Result<String, KubeError> {
    let c = &inventory.cluster;
    let etcd_args = api.args(component_args(inventory, Component::Etcd));
    let doc = ClusterConfiguration {
        api_version: api.api_version(),
        kind: "ClusterConfiguration",
        cluster_name: c.name.clone(),
        kubernetes_version: format!("v{}", c.kubernetes_version),
        control_plane_endpoint: c.control_plane_endpoint.to_string(),
        image_repository: inventory.image_repository().to_string(),
        networking: Networking {
            pod_subnet: c.pod_cidr.to_string(),
            service_subnet: c.service_cidr.to_string(),
            dns_domain: c.dns_domain.clone(),
        },
        api_server: ApiServer {
            cert_sans: cert_sans(inventory),
            extra_args: api.args(component_args(inventory, Component::Apiserver)),
        },
        controller_manager: ControlPlaneComponent {
            extra_args: api.args(component_args(inventory, Component::ControllerManager)),
        },
        scheduler: ControlPlaneComponent {
            extra_args: api.args(component_args(inventory, Component::Scheduler)),
        },
        etcd: etcd_args.map(|extra_args| Etcd {
            local: ControlPlaneComponent {
                extra_args: Some(extra_args),
            },
        }),
    };
    yaml("ClusterConfiguration", &doc)
}

fn kubelet_config(inventory: &Inventory) -> Result<String, KubeError> {
    let doc = KubeletConfiguration {
        api_version: "kubelet.config.k8s.io/v1beta1",
        kind: "KubeletConfiguration",
        cgroup_driver: cgroup_driver_name(inventory.cluster.cgroup_driver),
        cluster_dns: vec![inventory.cluster_dns().to_string()],
        cluster_domain: inventory.cluster.dns_domain.clone(),
    };
    yaml("KubeletConfiguration", &doc)
}

/// The cgroup driver's name as the kubelet and Docker spell it.
pub fn cgroup_driver_name(driver: CgroupDriver) -> &'static str {
    match driver {
        CgroupDriver::Systemd => "systemd",
        CgroupDriver::Cgroupfs => "cgroupfs",
    }
}

fn kube_proxy_config(inventory: &Inventory) -> Result<String, KubeError> {
    let mut doc = serde_json::Map::new();
    doc.insert(
        "clusterCIDR".into(),
        inventory.cluster.pod_cidr.to_string().into(),
    );
    for (flag, value) in component_args(inventory, Component::KubeProxy) {
        let Some(&(_, path, ty)) = KUBE_PROXY_FLAGS.iter().find(|(f, _, _)| *f == flag) else {
            return Err(KubeError::UnsupportedKubeProxyFlag {
                flag,
                known: KUBE_PROXY_FLAGS
                    .iter()
                    .map(|(f, _, _)| *f)
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        };
        let bad = |expected| KubeError::BadKubeProxyValue {
            flag: flag.clone(),
            value: value.clone(),
            expected,
        };
        let typed: Json = match ty {
            KubeProxyValue::Text => value.clone().into(),
            KubeProxyValue::Bool => match value.as_str() {
                "true" => true.into(),
                "false" => false.into(),
                _ => return Err(bad("true or false")),
            },
            KubeProxyValue::Int => value.parse::<i64>().map_err(|_| bad("an integer"))?.into(),
            KubeProxyValue::List => value
                .split(',')
                .map(|s| Json::from(s.trim()))
                .collect::<Vec<_>>()
                .into(),
        };
        insert_path(&mut doc, path, typed);
    }
    let doc = KubeProxyConfiguration {
        api_version: "kubeproxy.config.k8s.io/v1alpha1",
        kind: "KubeProxyConfiguration",
        fields: doc,
    };
    yaml("KubeProxyConfiguration", &doc)
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct KubeProxyConfiguration {
    api_version: &'static str,
    kind: &'static str,
    #[serde(flatten)]
    fields: serde_json::Map<String, Json>,
}

/// Sets `a.b` in a JSON object, creating the intermediate objects.
fn insert_path(doc: &mut serde_json::Map<String, Json>, path: &str, value: Json) {
    match path.split_once('.') {
        None => {
            doc.insert(path.to_string(), value);
        }
        Some((head, rest)) => {
            let entry = doc
                .entry(head.to_string())
                .or_insert_with(|| Json::Object(serde_json::Map::new()));
            if !entry.is_object() {
                *entry = Json::Object(serde_json::Map::new());
            }
            if let Json::Object(inner) = entry {
                insert_path(inner, rest, value);
            }
        }
    }
}

fn yaml<T: Serialize>(what: &str, doc: &T) -> Result<String, KubeError> {
    serde_norway::to_string(doc).map_err(|source| KubeError::Serialize {
        what: what.to_string(),
        source,
    })
}

#[cfg(test)]
mod tests;
