//! The validated inventory: typed values, and what is derived from them.
//!
//! Every value here has passed the checks in `load`; code that receives an
//! [`Inventory`] never re-validates. Values that may reach a remote command
//! line are [`ShellArg`]s, which can only be emitted quoted.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;
use k8sup_shell::ShellArg;

use crate::versions::KubeVersion;

/// A whole validated inventory.
#[derive(Debug, Clone)]
pub struct Inventory {
    pub cluster: Cluster,
    pub packages: Packages,
    pub images: Images,
    /// Hosts in the order of the file; the first master is the one `kubeadm init` runs on.
    pub hosts: Vec<Host>,
    /// How many hosts are worked on at once (`ssh.parallelism`).
    pub parallelism: usize,
    pub certificates: Certificates,
    pub upgrade: Upgrade,
}

/// `[upgrade]`: how a raised `kubernetes_version` is rolled out over the nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upgrade {
    /// How many workers may be cordoned at once.
    pub max_unavailable: MaxUnavailable,
    /// Drain a node (`--ignore-daemonsets --delete-emptydir-data`) before its
    /// kubelet changes; false: only cordon it.
    pub drain: bool,
    /// How long one drain may wait for its pods to go (`kubectl drain --timeout`).
    pub drain_timeout: Duration,
}

impl Default for Upgrade {
    fn default() -> Self {
        Upgrade {
            max_unavailable: MaxUnavailable::Count(1),
            drain: true,
            drain_timeout: Duration::from_secs(600),
        }
    }
}

/// `max_unavailable`: a count of nodes, or a percentage of the workers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaxUnavailable {
    /// At least 1.
    Count(u32),
    /// 1 to 100.
    Percent(u32),
}

impl MaxUnavailable {
    /// How many of `workers` nodes may be out at once: a percentage rounds down
    /// (as a Deployment's maxUnavailable does), but never below one node, or the
    /// upgrade could not move.
    pub fn of(self, workers: usize) -> usize {
        let n = match self {
            MaxUnavailable::Count(n) => n as usize,
            MaxUnavailable::Percent(p) => workers * p as usize / 100,
        };
        n.max(1)
    }
}

impl fmt::Display for MaxUnavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MaxUnavailable::Count(n) => write!(f, "{n}"),
            MaxUnavailable::Percent(p) => write!(f, "{p}%"),
        }
    }
}

/// `[certificates]`: when `apply` renews the control plane's certificates.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Certificates {
    /// Renew when one expires within this long; `None`: apply never renews.
    pub renew_before: Option<Duration>,
}

#[derive(Debug, Clone)]
pub struct Cluster {
    pub name: String,
    pub kubernetes_version: KubeVersion,
    pub runtime: Runtime,
    pub cgroup_driver: CgroupDriver,
    pub cni: Cni,
    pub pod_cidr: IpNet,
    pub service_cidr: IpNet,
    pub dns_domain: String,
    /// Where kubeadm, the kubelets, kube-proxy and the admin kubeconfigs reach the
    /// API server: the user's balancer, the one master, or (with a local balancer)
    /// `127.0.0.1:<control_plane_lb_port>` on every host.
    pub control_plane_endpoint: Endpoint,
    /// What stands behind `control_plane_endpoint` (`control_plane_lb`).
    pub control_plane_lb: ControlPlaneLb,
    pub apiserver_cert_sans: Vec<String>,
    /// Where control-plane and pause images come from; `None` is registry.k8s.io.
    pub image_repository: Option<String>,
    pub registry_mirrors: Vec<String>,
    /// Component (apiserver, controller-manager, scheduler, etcd, kubelet, kube-proxy)
    /// to flag name to value.
    pub extra_args: BTreeMap<Component, BTreeMap<String, ShellArg>>,
    /// The CNI manifest to apply instead of the built-in one (Calico needs one).
    pub cni_manifest: Option<ManifestSource>,
}

/// Where a CNI manifest comes from: fetched once on the controller, checked
/// against its sha256 when the inventory gives one, patched, then uploaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ManifestSource {
    Url {
        url: String,
        sha256: Option<String>,
    },
    File {
        path: PathBuf,
        sha256: Option<String>,
    },
}

macro_rules! keyword_enum {
    ($(#[$doc:meta])* $name:ident { $($variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum $name { $($variant),+ }

        impl $name {
            /// Every accepted spelling, for messages and suggestions.
            pub const NAMES: &'static [&'static str] = &[$($text),+];

            pub fn as_str(&self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            pub fn from_name(text: &str) -> Option<Self> {
                match text { $($text => Some($name::$variant),)+ _ => None }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }
    };
}

keyword_enum!(
    /// The container runtime every host runs.
    Runtime { Containerd = "containerd", Docker = "docker" }
);
keyword_enum!(
    /// The cgroup driver, set identically in the runtime and the kubelet.
    CgroupDriver { Systemd = "systemd", Cgroupfs = "cgroupfs" }
);
keyword_enum!(
    /// The pod network.
    Cni { Flannel = "flannel", Calico = "calico", None = "none" }
);
keyword_enum!(
    /// A CPU architecture, as Kubernetes names it.
    Arch { Amd64 = "amd64", Arm64 = "arm64" }
);
keyword_enum!(
    /// Where kubelet, kubeadm and kubectl come from.
    PackageSource { Repo = "repo", Binary = "binary" }
);
keyword_enum!(
    /// How unknown and changed SSH host keys are treated.
    HostKeyChecking { Strict = "strict", AcceptNew = "accept-new", Off = "off" }
);
keyword_enum!(
    /// A component that takes extra arguments through kubeadm's configuration.
    Component {
        Apiserver = "apiserver",
        ControllerManager = "controller-manager",
        Scheduler = "scheduler",
        Etcd = "etcd",
        Kubelet = "kubelet",
        KubeProxy = "kube-proxy",
    }
);

/// The type of the KubeProxyConfiguration field a kube-proxy flag sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KubeProxyValue {
    Text,
    Bool,
    Int,
    /// Comma-separated.
    List,
}

impl KubeProxyValue {
    /// `Err(what it must be)` when `value` does not fit the field.
    pub fn check(self, value: &str) -> Result<(), &'static str> {
        match self {
            KubeProxyValue::Bool if value != "true" && value != "false" => Err("true or false"),
            KubeProxyValue::Int if value.parse::<i64>().is_err() => Err("an integer"),
            _ => Ok(()),
        }
    }
}

/// kube-proxy has no command-line arguments in kubeadm's configuration: its flags
/// are fields of KubeProxyConfiguration. These are the flags k8sup maps, with the
/// field each sets and its type. The inventory refuses any other (so `validate`
/// knows what `plan` would refuse); the kubeadm configuration writes them.
pub const KUBE_PROXY_FLAGS: &[(&str, &str, KubeProxyValue)] = &[
    ("proxy-mode", "mode", KubeProxyValue::Text),
    ("cluster-cidr", "clusterCIDR", KubeProxyValue::Text),
    (
        "metrics-bind-address",
        "metricsBindAddress",
        KubeProxyValue::Text,
    ),
    (
        "healthz-bind-address",
        "healthzBindAddress",
        KubeProxyValue::Text,
    ),
    ("ipvs-scheduler", "ipvs.scheduler", KubeProxyValue::Text),
    ("ipvs-strict-arp", "ipvs.strictARP", KubeProxyValue::Bool),
    (
        "masquerade-all",
        "iptables.masqueradeAll",
        KubeProxyValue::Bool,
    ),
    (
        "conntrack-max-per-core",
        "conntrack.maxPerCore",
        KubeProxyValue::Int,
    ),
    (
        "nodeport-addresses",
        "nodePortAddresses",
        KubeProxyValue::List,
    ),
];

impl Arch {
    /// What `uname -m` prints on a host of this architecture.
    pub fn uname_machine(&self) -> &'static str {
        match self {
            Arch::Amd64 => "x86_64",
            Arch::Arm64 => "aarch64",
        }
    }

    /// The architecture of a `uname -m` answer.
    pub fn from_uname_machine(machine: &str) -> Option<Arch> {
        match machine.trim() {
            "x86_64" | "amd64" => Some(Arch::Amd64),
            "aarch64" | "arm64" | "armv8l" => Some(Arch::Arm64),
            _ => None,
        }
    }
}

/// What makes the API server reachable when a master is down
/// (`cluster.control_plane_lb`). An enum with data, so that a balancer with
/// settings of its own (a kube-vip VIP and interface) fits beside these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlPlaneLb {
    /// `control_plane_endpoint` is the user's own (a balancer, a DNS name), or,
    /// with a single master and no endpoint given, that master's address.
    External,
    /// haproxy on every host, listening on `127.0.0.1:port`, balancing over every
    /// master's API server (the default with two or more masters and no endpoint).
    Local { port: u16 },
}

impl ControlPlaneLb {
    /// Every accepted spelling of `control_plane_lb`.
    pub const NAMES: &'static [&'static str] = &["local", "external"];
    /// The local balancer's port unless `control_plane_lb_port` says otherwise: the
    /// apiserver has 6443 on the masters, k3s takes 6444; 7443 is k0s's choice.
    pub const DEFAULT_LOCAL_PORT: u16 = 7443;

    pub fn as_str(&self) -> &'static str {
        match self {
            ControlPlaneLb::External => "external",
            ControlPlaneLb::Local { .. } => "local",
        }
    }

    /// The port of a balancer k8sup runs on every host, if it runs one.
    pub fn local_port(&self) -> Option<u16> {
        match self {
            ControlPlaneLb::Local { port } => Some(*port),
            ControlPlaneLb::External => None,
        }
    }
}

/// Where the API server is reached: a host (IP or DNS name) and a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

#[derive(Debug, Clone)]
pub struct Packages {
    pub source: PackageSource,
    pub kubernetes_repo: Option<String>,
    pub docker_repo: Option<String>,
    /// Where the cri-dockerd release archive comes from (a URL or a controller
    /// path; `{arch}` is replaced). Needed for Docker with Kubernetes >= 1.24.
    pub cri_dockerd: Option<String>,
    /// The sha256 the cri-dockerd archive must have, per architecture (a single
    /// value in the inventory applies to every one). Empty: k8sup's table for the
    /// pinned release; a `cri_dockerd` of the user's own is then not verified.
    pub cri_dockerd_sha256: BTreeMap<Arch, String>,
    /// containerd.io's version (`1.7.22`); `None`: k8sup's table per Kubernetes minor.
    pub containerd_version: Option<String>,
    /// docker-ce and docker-ce-cli's version (`27.3.1`); `None`: k8sup's table.
    pub docker_version: Option<String>,
    /// A files mirror laid out like the upstream hosts (`<mirror>/github.com/...`),
    /// from which the controller downloads release archives instead.
    pub files_mirror: Option<String>,
    /// With `source = "binary"`: the controller directory holding `<arch>/kubelet`,
    /// `<arch>/kubeadm`, `<arch>/kubectl`.
    pub binary_dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Default)]
pub struct Images {
    /// Exact image reference -> per-architecture replacement.
    pub overrides: BTreeMap<String, BTreeMap<Arch, String>>,
}

/// How k8sup reaches one host over SSH (the `[ssh]` defaults merged with the host's own).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshSettings {
    pub user: String,
    pub port: u16,
    /// `None`: ssh-agent, then ~/.ssh/id_ed25519, ~/.ssh/id_rsa.
    pub identity_file: Option<PathBuf>,
    pub known_hosts: PathBuf,
    pub host_key_checking: HostKeyChecking,
    /// Run remote commands through sudo.
    pub become_root: bool,
    pub jump_host: Option<JumpHost>,
    pub connect_timeout: Duration,
    pub command_timeout: Duration,
}

/// A bastion: `user@host:port`, user and port optional.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JumpHost {
    pub user: Option<String>,
    pub host: String,
    pub port: u16,
}

impl fmt::Display for JumpHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(user) = &self.user {
            write!(f, "{user}@")?;
        }
        write!(f, "{}:{}", self.host, self.port)
    }
}

/// The roles of a host; both may be set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Roles {
    pub master: bool,
    pub node: bool,
}

impl fmt::Display for Roles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.master, self.node) {
            (true, true) => f.write_str("master,node"),
            (true, false) => f.write_str("master"),
            (false, true) => f.write_str("node"),
            (false, false) => f.write_str("none"),
        }
    }
}

/// A taint, `key[=value]:Effect`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Taint {
    pub key: String,
    pub value: String,
    pub effect: String,
}

impl fmt::Display for Taint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.value.is_empty() {
            write!(f, "{}:{}", self.key, self.effect)
        } else {
            write!(f, "{}={}:{}", self.key, self.value, self.effect)
        }
    }
}

#[derive(Debug, Clone)]
pub struct Host {
    /// The node name and hostname (an RFC 1123 label).
    pub name: String,
    /// Where SSH connects: an IP address or a DNS name.
    pub address: String,
    /// The node IP for the kubelet and the API server.
    pub internal_address: IpAddr,
    pub roles: Roles,
    /// As declared; checked against `uname -m` when facts are gathered.
    pub arch: Option<Arch>,
    pub labels: BTreeMap<String, String>,
    pub taints: Vec<Taint>,
    pub ssh: SshSettings,
    /// `remove = true`: drain, delete and reset this node (a master: its etcd
    /// member too); it gets nothing else.
    pub remove: bool,
}

impl Inventory {
    /// The masters that stay (not `remove = true`), in file order.
    pub fn masters(&self) -> impl Iterator<Item = &Host> {
        self.hosts.iter().filter(|h| h.roles.master && !h.remove)
    }

    /// The hosts that stay in the cluster, in file order.
    pub fn kept(&self) -> impl Iterator<Item = &Host> {
        self.hosts.iter().filter(|h| !h.remove)
    }

    /// The hosts marked `remove = true`, in file order.
    pub fn removed(&self) -> impl Iterator<Item = &Host> {
        self.hosts.iter().filter(|h| h.remove)
    }

    /// The master `kubeadm init` runs on (and that joins are fetched from): the
    /// first one in the file that stays.
    pub fn first_master(&self) -> &Host {
        self.masters()
            .next()
            .expect("a validated inventory keeps a master")
    }

    pub fn host(&self, name: &str) -> Option<&Host> {
        self.hosts.iter().find(|h| h.name == name)
    }

    /// The kubelet's clusterDNS: the 10th address of the service CIDR.
    pub fn cluster_dns(&self) -> IpAddr {
        nth_address(&self.cluster.service_cidr, 10)
    }

    /// The first address of the service CIDR: the `kubernetes` service's IP,
    /// which kubeadm puts in the API server certificate.
    pub fn kubernetes_service_ip(&self) -> IpAddr {
        nth_address(&self.cluster.service_cidr, 1)
    }

    /// Where control-plane images are pulled from.
    pub fn image_repository(&self) -> &str {
        self.cluster
            .image_repository
            .as_deref()
            .unwrap_or("registry.k8s.io")
    }

    /// The pause (sandbox) image, for the kubelet and for the runtime alike.
    pub fn pause_image(&self) -> String {
        format!(
            "{}/pause:{}",
            self.image_repository(),
            self.cluster.kubernetes_version.pause_tag()
        )
    }

    /// Whether the cluster needs cri-dockerd (Docker with Kubernetes >= 1.24).
    pub fn needs_cri_dockerd(&self) -> bool {
        self.cluster.runtime == Runtime::Docker
            && self.cluster.kubernetes_version.needs_cri_dockerd()
    }

    /// The architectures the hosts declare, in order, without repeats.
    pub fn architectures(&self) -> Vec<Arch> {
        let mut archs: Vec<Arch> = self.hosts.iter().filter_map(|h| h.arch).collect();
        archs.sort();
        archs.dedup();
        archs
    }
}

/// The `n`th address after a network's own address (wrapping inside the network
/// is impossible here: the loader checks that the network is large enough).
fn nth_address(net: &IpNet, n: u32) -> IpAddr {
    match net.network() {
        IpAddr::V4(a) => IpAddr::V4((u32::from(a).wrapping_add(n)).into()),
        IpAddr::V6(a) => IpAddr::V6((u128::from(a).wrapping_add(u128::from(n))).into()),
    }
}
