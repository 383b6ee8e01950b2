//! `kubeadm`: `version`, `init`, `init phase upload-certs`, `join`, `token
//! create|list|delete|generate` and `reset`, against the lab's shared cluster state
//! ([`super::cluster`]).
//!
//! It is as strict as the real one where installers go wrong: configuration documents are
//! strictly decoded (unknown fields and wrong types are errors for kubeadm's own kinds,
//! warnings for the kubelet's and kube-proxy's, as kubeadm does), the apiVersion must be
//! one the installed kubeadm knows (`v1beta4` from 1.31, `v1beta3` deprecated from 1.31 and
//! gone in 1.35), preflight checks fail like the real ones (root, CPUs, memory, swap,
//! `ip_forward`, the CRI socket served by a started runtime, ports, leftovers in
//! `/etc/kubernetes`), and a join with a wrong token, secret, CA hash or certificate key
//! fails with the real message. Messages and output follow kubeadm 1.30.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::cluster::{self, BootstrapToken, ClusterState, KubeletStatus, Node, Object, Taint};
use super::kubelet;
use super::runtime;
use super::schema::{self, Field};
use super::Invocation;

mod config_images;
mod upgrade;

pub(in crate::emu) use config_images::list as control_plane_images;

const STACK_HINT: &str = "To see the stack trace of this error execute with --v=5 or higher";
const ADMIN_CONF: &str = "/etc/kubernetes/admin.conf";
const MANIFESTS: &str = "/etc/kubernetes/manifests";
const CP_TAINT: &str = "node-role.kubernetes.io/control-plane";

// ---- configuration types, for the strict decoder ----

const S: Field = Field::Str;
const STRS: Field = Field::List(&Field::Str);
const ARGS_V3: Field = Field::Map(&Field::Str);
const ARG: Field = Field::Obj(&[("name", S), ("value", S)]);
const ARGS_V4: Field = Field::List(&ARG);
const ENV: Field = Field::Obj(&[("name", S), ("value", S), ("valueFrom", Field::Any)]);
const TAINT: Field = Field::Obj(&[
    ("key", S),
    ("value", S),
    ("effect", S),
    ("timeAdded", Field::Any),
]);
const NODE_REG_V3: Field = Field::Obj(&[
    ("name", S),
    ("criSocket", S),
    ("taints", Field::List(&TAINT)),
    ("kubeletExtraArgs", ARGS_V3),
    ("ignorePreflightErrors", STRS),
    ("imagePullPolicy", S),
]);
const NODE_REG_V4: Field = Field::Obj(&[
    ("name", S),
    ("criSocket", S),
    ("taints", Field::List(&TAINT)),
    ("kubeletExtraArgs", ARGS_V4),
    ("ignorePreflightErrors", STRS),
    ("imagePullPolicy", S),
    ("imagePullSerial", Field::Bool),
]);
const API_ENDPOINT: Field = Field::Obj(&[("advertiseAddress", S), ("bindPort", Field::Int)]);
const BOOTSTRAP_TOKEN: Field = Field::Obj(&[
    ("token", S),
    ("description", S),
    ("ttl", S),
    ("expires", S),
    ("usages", STRS),
    ("groups", STRS),
]);
const PATCHES: Field = Field::Obj(&[("directory", S)]);
const TIMEOUTS: Field = Field::Obj(&[
    ("controlPlaneComponentHealthCheck", S),
    ("kubeletHealthCheck", S),
    ("kubernetesAPICall", S),
    ("etcdAPICall", S),
    ("tlsBootstrap", S),
    ("discovery", S),
    ("upgradeManifests", S),
]);
const INIT_V3: Field = Field::Obj(&[
    ("apiVersion", S),
    ("kind", S),
    ("bootstrapTokens", Field::List(&BOOTSTRAP_TOKEN)),
    ("nodeRegistration", NODE_REG_V3),
    ("localAPIEndpoint", API_ENDPOINT),
    ("certificateKey", S),
    ("skipPhases", STRS),
    ("patches", PATCHES),
]);
const INIT_V4: Field = Field::Obj(&[
    ("apiVersion", S),
    ("kind", S),
    ("bootstrapTokens", Field::List(&BOOTSTRAP_TOKEN)),
    ("nodeRegistration", NODE_REG_V4),
    ("localAPIEndpoint", API_ENDPOINT),
    ("certificateKey", S),
    ("skipPhases", STRS),
    ("patches", PATCHES),
    ("timeouts", TIMEOUTS),
    ("dryRun", Field::Bool),
]);
const VOLUME: Field = Field::Obj(&[
    ("name", S),
    ("hostPath", S),
    ("mountPath", S),
    ("readOnly", Field::Bool),
    ("pathType", S),
]);
const COMPONENT_V3: Field = Field::Obj(&[
    ("extraArgs", ARGS_V3),
    ("extraVolumes", Field::List(&VOLUME)),
]);
const APISERVER_V3: Field = Field::Obj(&[
    ("extraArgs", ARGS_V3),
    ("extraVolumes", Field::List(&VOLUME)),
    ("certSANs", STRS),
    ("timeoutForControlPlane", S),
]);
const COMPONENT_V4: Field = Field::Obj(&[
    ("extraArgs", ARGS_V4),
    ("extraVolumes", Field::List(&VOLUME)),
    ("extraEnvs", Field::List(&ENV)),
]);
const APISERVER_V4: Field = Field::Obj(&[
    ("extraArgs", ARGS_V4),
    ("extraVolumes", Field::List(&VOLUME)),
    ("extraEnvs", Field::List(&ENV)),
    ("certSANs", STRS),
]);
const LOCAL_ETCD_V3: Field = Field::Obj(&[
    ("imageRepository", S),
    ("imageTag", S),
    ("dataDir", S),
    ("extraArgs", ARGS_V3),
    ("serverCertSANs", STRS),
    ("peerCertSANs", STRS),
]);
const LOCAL_ETCD_V4: Field = Field::Obj(&[
    ("imageRepository", S),
    ("imageTag", S),
    ("dataDir", S),
    ("extraArgs", ARGS_V4),
    ("extraEnvs", Field::List(&ENV)),
    ("serverCertSANs", STRS),
    ("peerCertSANs", STRS),
]);
const EXTERNAL_ETCD: Field = Field::Obj(&[
    ("endpoints", STRS),
    ("caFile", S),
    ("certFile", S),
    ("keyFile", S),
]);
const ETCD_V3: Field = Field::Obj(&[("local", LOCAL_ETCD_V3), ("external", EXTERNAL_ETCD)]);
const ETCD_V4: Field = Field::Obj(&[("local", LOCAL_ETCD_V4), ("external", EXTERNAL_ETCD)]);
const NETWORKING: Field = Field::Obj(&[("serviceSubnet", S), ("podSubnet", S), ("dnsDomain", S)]);
const CLUSTER_V3: Field = Field::Obj(&[
    ("apiVersion", S),
    ("kind", S),
    ("etcd", ETCD_V3),
    ("networking", NETWORKING),
    ("kubernetesVersion", S),
    ("controlPlaneEndpoint", S),
    ("apiServer", APISERVER_V3),
    ("controllerManager", COMPONENT_V3),
    ("scheduler", COMPONENT_V3),
    (
        "dns",
        Field::Obj(&[("imageRepository", S), ("imageTag", S)]),
    ),
    ("certificatesDir", S),
    ("imageRepository", S),
    ("featureGates", Field::Map(&Field::Bool)),
    ("clusterName", S),
]);
const CLUSTER_V4: Field = Field::Obj(&[
    ("apiVersion", S),
    ("kind", S),
    ("etcd", ETCD_V4),
    ("networking", NETWORKING),
    ("kubernetesVersion", S),
    ("controlPlaneEndpoint", S),
    ("apiServer", APISERVER_V4),
    ("controllerManager", COMPONENT_V4),
    ("scheduler", COMPONENT_V4),
    (
        "dns",
        Field::Obj(&[
            ("imageRepository", S),
            ("imageTag", S),
            ("disabled", Field::Bool),
        ]),
    ),
    ("proxy", Field::Obj(&[("disabled", Field::Bool)])),
    ("certificatesDir", S),
    ("imageRepository", S),
    ("featureGates", Field::Map(&Field::Bool)),
    ("clusterName", S),
    ("encryptionAlgorithm", S),
    ("certificateValidityPeriod", S),
    ("caCertificateValidityPeriod", S),
]);
const DISCOVERY_TOKEN: Field = Field::Obj(&[
    ("token", S),
    ("apiServerEndpoint", S),
    ("caCertHashes", STRS),
    ("unsafeSkipCAVerification", Field::Bool),
]);
const DISCOVERY_V3: Field = Field::Obj(&[
    ("bootstrapToken", DISCOVERY_TOKEN),
    ("file", Field::Obj(&[("kubeConfigPath", S)])),
    ("tlsBootstrapToken", S),
    ("timeout", S),
]);
const DISCOVERY_V4: Field = Field::Obj(&[
    ("bootstrapToken", DISCOVERY_TOKEN),
    ("file", Field::Obj(&[("kubeConfigPath", S)])),
    ("tlsBootstrapToken", S),
]);
const JOIN_CP: Field = Field::Obj(&[("localAPIEndpoint", API_ENDPOINT), ("certificateKey", S)]);
const JOIN_V3: Field = Field::Obj(&[
    ("apiVersion", S),
    ("kind", S),
    ("nodeRegistration", NODE_REG_V3),
    ("caCertPath", S),
    ("discovery", DISCOVERY_V3),
    ("controlPlane", JOIN_CP),
    ("skipPhases", STRS),
    ("patches", PATCHES),
]);
const JOIN_V4: Field = Field::Obj(&[
    ("apiVersion", S),
    ("kind", S),
    ("nodeRegistration", NODE_REG_V4),
    ("caCertPath", S),
    ("discovery", DISCOVERY_V4),
    ("controlPlane", JOIN_CP),
    ("skipPhases", STRS),
    ("patches", PATCHES),
    ("timeouts", TIMEOUTS),
    ("dryRun", Field::Bool),
]);

/// KubeletConfiguration (kubelet.config.k8s.io/v1beta1) top-level fields.
const KUBELET_FIELDS: &[&str] = &[
    "apiVersion",
    "kind",
    "enableServer",
    "staticPodPath",
    "podLogsDir",
    "syncFrequency",
    "fileCheckFrequency",
    "httpCheckFrequency",
    "staticPodURL",
    "staticPodURLHeader",
    "address",
    "port",
    "readOnlyPort",
    "tlsCertFile",
    "tlsPrivateKeyFile",
    "tlsCipherSuites",
    "tlsMinVersion",
    "rotateCertificates",
    "serverTLSBootstrap",
    "authentication",
    "authorization",
    "registryPullQPS",
    "registryBurst",
    "eventRecordQPS",
    "eventBurst",
    "enableDebuggingHandlers",
    "enableContentionProfiling",
    "healthzPort",
    "healthzBindAddress",
    "oomScoreAdj",
    "clusterDomain",
    "clusterDNS",
    "streamingConnectionIdleTimeout",
    "nodeStatusUpdateFrequency",
    "nodeStatusReportFrequency",
    "nodeLeaseDurationSeconds",
    "imageMinimumGCAge",
    "imageMaximumGCAge",
    "imageGCHighThresholdPercent",
    "imageGCLowThresholdPercent",
    "volumeStatsAggPeriod",
    "kubeletCgroups",
    "systemCgroups",
    "cgroupRoot",
    "cgroupsPerQOS",
    "cgroupDriver",
    "cpuManagerPolicy",
    "cpuManagerPolicyOptions",
    "cpuManagerReconcilePeriod",
    "memoryManagerPolicy",
    "topologyManagerPolicy",
    "topologyManagerScope",
    "topologyManagerPolicyOptions",
    "qosReserved",
    "runtimeRequestTimeout",
    "hairpinMode",
    "maxPods",
    "podCIDR",
    "podPidsLimit",
    "resolvConf",
    "runOnce",
    "cpuCFSQuota",
    "cpuCFSQuotaPeriod",
    "nodeStatusMaxImages",
    "maxOpenFiles",
    "contentType",
    "kubeAPIQPS",
    "kubeAPIBurst",
    "serializeImagePulls",
    "maxParallelImagePulls",
    "evictionHard",
    "evictionSoft",
    "evictionSoftGracePeriod",
    "evictionPressureTransitionPeriod",
    "evictionMaxPodGracePeriod",
    "evictionMinimumReclaim",
    "podsPerCore",
    "enableControllerAttachDetach",
    "protectKernelDefaults",
    "makeIPTablesUtilChains",
    "iptablesMasqueradeBit",
    "iptablesDropBit",
    "featureGates",
    "failSwapOn",
    "memorySwap",
    "containerLogMaxSize",
    "containerLogMaxFiles",
    "containerLogMaxWorkers",
    "containerLogMonitorInterval",
    "configMapAndSecretChangeDetectionStrategy",
    "systemReserved",
    "kubeReserved",
    "reservedSystemCPUs",
    "showHiddenMetricsForVersion",
    "systemReservedCgroup",
    "kubeReservedCgroup",
    "enforceNodeAllocatable",
    "allowedUnsafeSysctls",
    "volumePluginDir",
    "providerID",
    "kernelMemcgNotification",
    "logging",
    "enableSystemLogHandler",
    "enableSystemLogQuery",
    "shutdownGracePeriod",
    "shutdownGracePeriodCriticalPods",
    "shutdownGracePeriodByPodPriority",
    "reservedMemory",
    "enableProfilingHandler",
    "enableDebugFlagsHandler",
    "seccompDefault",
    "memoryThrottlingFactor",
    "registerWithTaints",
    "registerNode",
    "tracing",
    "localStorageCapacityIsolation",
    "containerRuntimeEndpoint",
    "imageServiceEndpoint",
    "failCgroupV1",
    "crashLoopBackOff",
    "userNamespaces",
    "singleProcessOOMKill",
];

/// KubeProxyConfiguration (kubeproxy.config.k8s.io/v1alpha1) top-level fields.
const PROXY_FIELDS: &[&str] = &[
    "apiVersion",
    "kind",
    "featureGates",
    "clientConnection",
    "logging",
    "hostnameOverride",
    "bindAddress",
    "healthzBindAddress",
    "metricsBindAddress",
    "bindAddressHardFail",
    "enableProfiling",
    "showHiddenMetricsForVersion",
    "mode",
    "iptables",
    "ipvs",
    "nftables",
    "winkernel",
    "detectLocalMode",
    "detectLocal",
    "clusterCIDR",
    "nodePortAddresses",
    "oomScoreAdj",
    "conntrack",
    "configSyncPeriod",
    "portRange",
    "windowsRunAsService",
    "linux",
    "syncPeriod",
    "minSyncPeriod",
    "udpIdleTimeout",
];

// ---- command line ----

/// Parsed flags: values by flag name (without dashes), and positional arguments.
struct Flags {
    values: BTreeMap<String, Vec<String>>,
    positional: Vec<String>,
}

impl Flags {
    /// `with_value` flags take a value (`--f v` or `--f=v`); `booleans` do not.
    fn parse(args: &[String], with_value: &[&str], booleans: &[&str]) -> Result<Flags, String> {
        let mut f = Flags {
            values: BTreeMap::new(),
            positional: Vec::new(),
        };
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let Some(stripped) = a.strip_prefix("--").or_else(|| {
                a.strip_prefix('-')
                    .filter(|s| s.len() == 1 || s.starts_with("v="))
            }) else {
                f.positional.push(a.clone());
                continue;
            };
            let (name, inline) = match stripped.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (stripped, None),
            };
            let name = match name {
                "f" => "force",
                "o" => "output",
                n => n,
            };
            if name == "v" || name == "rootfs" || name == "kubeconfig" || with_value.contains(&name)
            {
                let v = match inline {
                    Some(v) => v,
                    None => it
                        .next()
                        .cloned()
                        .ok_or_else(|| format!("flag needs an argument: --{name}"))?,
                };
                f.values.entry(name.to_string()).or_default().push(v);
            } else if booleans.contains(&name) {
                f.values
                    .entry(name.to_string())
                    .or_default()
                    .push(inline.unwrap_or_else(|| "true".into()));
            } else {
                return Err(format!("unknown flag: --{name}"));
            }
        }
        Ok(f)
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.values
            .get(name)
            .and_then(|v| v.last())
            .map(String::as_str)
    }

    fn all(&self, name: &str) -> Vec<String> {
        self.values
            .get(name)
            .map(|v| {
                v.iter()
                    .flat_map(|s| s.split(','))
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default()
    }

    fn on(&self, name: &str) -> bool {
        self.get(name).is_some_and(|v| v != "false")
    }
}

pub fn run(inv: &mut Invocation) -> i32 {
    let version = match cluster::package_version(inv, "kubeadm") {
        Ok(v) => v,
        Err(e) => {
            inv.errln(&e);
            return 127;
        }
    };
    let args = inv.args.clone();
    let rest = args.get(1..).unwrap_or(&[]).to_vec();
    let result = match args.first().map(String::as_str) {
        Some("version") => version_cmd(inv, &version, &rest),
        Some("init") if rest.first().map(String::as_str) == Some("phase") => {
            phase(inv, &version, &rest[1..])
        }
        Some("init") => init(inv, &version, &rest),
        Some("join") => join(inv, &version, &rest),
        Some("token") => token(inv, &rest),
        Some("config") => config_images::run(inv, &version, &rest),
        Some("upgrade") => upgrade::run(inv, &version, &rest),
        Some("reset") => reset(inv, &rest),
        Some("certs") => super::pki::run(inv, &rest).map_err(|(e, usage)| {
            if usage {
                Failure::Usage(e)
            } else {
                Failure::Error(e)
            }
        }),
        None | Some("-h") | Some("--help") | Some("help") => {
            inv.outln("Usage:\n  kubeadm [command]\n\nAvailable Commands:\n  certs       Commands related to handling kubernetes certificates\n  completion  Output shell completion code for the specified shell (bash or zsh)\n  config      Manage configuration for a kubeadm cluster persisted in a ConfigMap in the cluster\n  help        Help about any command\n  init        Run this command in order to set up the Kubernetes control plane\n  join        Run this on any machine you wish to join an existing cluster\n  kubeconfig  Kubeconfig file utilities\n  reset       Performs a best effort revert of changes made to this host by 'kubeadm init' or 'kubeadm join'\n  token       Manage bootstrap tokens\n  upgrade     Upgrade your cluster smoothly to a newer version with this command\n  version     Print the version of kubeadm");
            Ok(())
        }
        Some(other) => Err(Failure::Usage(format!(
            "unknown command \"{other}\" for \"kubeadm\""
        ))),
    };
    match result {
        Ok(()) => 0,
        Err(Failure::Usage(e)) => {
            inv.errln(&format!("Error: {e}"));
            inv.errln("Run 'kubeadm --help' for usage.");
            1
        }
        Err(Failure::Error(e)) => {
            inv.errln(&e);
            inv.errln(STACK_HINT);
            1
        }
    }
}

enum Failure {
    /// A command-line mistake: cobra's `Error: ...` and the usage hint.
    Usage(String),
    /// A failure while running: the message, then kubeadm's stack-trace hint.
    Error(String),
}

impl From<String> for Failure {
    fn from(s: String) -> Self {
        Failure::Error(s)
    }
}

type Outcome = Result<(), Failure>;

fn usage(e: String) -> Failure {
    Failure::Usage(e)
}

/// What `kubeadm config images list` prints for `version` from `repository`.
pub(super) fn images_list(repository: &str, version: &str) -> Vec<String> {
    config_images::list(repository, version)
}

fn version_cmd(inv: &mut Invocation, version: &str, rest: &[String]) -> Outcome {
    let f = Flags::parse(rest, &["output"], &[]).map_err(usage)?;
    let (major, minor, _) = cluster::semver(version).unwrap_or((1, 0, 0));
    let arch = inv.profile().map(|p| p.arch.as_str()).unwrap_or("amd64");
    let platform = format!("linux/{arch}");
    match f.get("output").unwrap_or("") {
        "short" => inv.outln(&format!("v{version}")),
        "" => inv.outln(&format!(
            "kubeadm version: &version.Info{{Major:\"{major}\", Minor:\"{minor}\", GitVersion:\"v{version}\", GitCommit:\"{}\", GitTreeState:\"clean\", BuildDate:\"2024-08-14T19:02:24Z\", GoVersion:\"go1.22.5\", Compiler:\"gc\", Platform:\"{platform}\"}}",
            commit_of(version)
        )),
        fmt @ ("json" | "yaml") => {
            let v = json!({"clientVersion": {
                "major": major.to_string(), "minor": minor.to_string(),
                "gitVersion": format!("v{version}"), "gitCommit": commit_of(version),
                "gitTreeState": "clean", "buildDate": "2024-08-14T19:02:24Z",
                "goVersion": "go1.22.5", "compiler": "gc", "platform": platform}});
            let text = if fmt == "json" {
                serde_json::to_string_pretty(&v).unwrap_or_default() + "\n"
            } else {
                serde_norway::to_string(&v).unwrap_or_default()
            };
            inv.out(&text);
        }
        other => {
            return Err(Failure::Error(format!(
                "error: invalid output format: {other}"
            )))
        }
    }
    Ok(())
}

/// A stable fake git commit for a version.
fn commit_of(version: &str) -> String {
    let s = cluster::name_suffix(version);
    format!("{s}{:035}", version.len()).replace(|c: char| !c.is_ascii_alphanumeric(), "0")
}

// ---- configuration files ----

/// The documents of a kubeadm configuration file, strictly decoded.
#[derive(Default)]
struct Config {
    init: Option<Value>,
    cluster: Option<Value>,
    join: Option<Value>,
    kubelet: Option<Value>,
    proxy: Option<Value>,
    /// kubeadm.k8s.io/v1beta3 or v1beta4 (the version of kubeadm's own documents).
    api: String,
    warnings: Vec<String>,
}

fn klog_warning(inv: &Invocation, file: &str, msg: &str) -> String {
    let now = cluster::now();
    let t = cluster::rfc3339(now);
    // W0901 10:00:00.000000    4242 file.go:101] message
    let (date, time) = t.trim_end_matches('Z').split_once('T').unwrap_or(("", ""));
    let md: String = date.get(5..).unwrap_or("").replace('-', "");
    let _ = inv;
    format!(
        "W{md} {time}.000000    {} {file}] {msg}",
        std::process::id()
    )
}

fn gvk(api: &str, kind: &str) -> String {
    let (group, version) = api.split_once('/').unwrap_or(("", api));
    format!("schema.GroupVersionKind{{Group:\"{group}\", Version:\"{version}\", Kind:\"{kind}\"}}")
}

fn load_config(inv: &Invocation, path: &str, kubeadm_version: &str) -> Result<Config, String> {
    let text = inv.read(path).map_err(|e| {
        format!(
            "unable to read config from \"{path}\" : open {path}: {}",
            if e.kind() == std::io::ErrorKind::NotFound {
                "no such file or directory".to_string()
            } else {
                e.to_string()
            }
        )
    })?;
    let docs = cluster::yaml_documents(&text)
        .map_err(|e| format!("error converting YAML to JSON: yaml: {e}"))?;
    let minor = cluster::semver(kubeadm_version).map_or(0, |v| v.1);
    let mut cfg = Config::default();
    for doc in docs {
        let api = cluster::str_at(&doc, &["apiVersion"]).to_string();
        let kind = cluster::str_at(&doc, &["kind"]).to_string();
        if api.is_empty() || kind.is_empty() {
            return Err(format!(
                "invalid configuration for GroupVersionKind {}: kind and apiVersion is mandatory information that must be specified",
                if api.is_empty() && kind.is_empty() { "/, Kind=".to_string() } else { format!("{api}, Kind={kind}") }
            ));
        }
        let (group, version) = api.split_once('/').unwrap_or(("", api.as_str()));
        match group {
            "kubeadm.k8s.io" => {
                let not_registered = || {
                    format!("no kind \"{kind}\" is registered for version \"{api}\" in scheme \"k8s.io/kubernetes/cmd/kubeadm/app/apis/kubeadm/scheme/scheme.go:31\"")
                };
                let v4 = match version {
                    "v1beta4" if minor >= 31 => true,
                    "v1beta3" if minor <= 34 => false,
                    "v1beta3" => {
                        return Err(format!("your configuration file uses an old API spec: \"{api}\". Please use kubeadm v1.34 instead and run 'kubeadm config migrate --old-config old.yaml --new-config new.yaml', which will write the new, similar spec using a newer API version."))
                    }
                    "v1beta2" | "v1beta1" | "v1alpha3" | "v1alpha2" | "v1alpha1" => {
                        let use_version = match version {
                            "v1beta2" => "v1.21",
                            "v1beta1" => "v1.14",
                            _ => "v1.12",
                        };
                        return Err(format!("your configuration file uses an old API spec: \"{api}\". Please use kubeadm {use_version} instead and run 'kubeadm config migrate --old-config old.yaml --new-config new.yaml', which will write the new, similar spec using a newer API version."));
                    }
                    _ => return Err(not_registered()),
                };
                let field = match (kind.as_str(), v4) {
                    ("InitConfiguration", false) => &INIT_V3,
                    ("InitConfiguration", true) => &INIT_V4,
                    ("ClusterConfiguration", false) => &CLUSTER_V3,
                    ("ClusterConfiguration", true) => &CLUSTER_V4,
                    ("JoinConfiguration", false) => &JOIN_V3,
                    ("JoinConfiguration", true) => &JOIN_V4,
                    ("ResetConfiguration" | "UpgradeConfiguration", true) => &Field::Any,
                    _ => return Err(not_registered()),
                };
                let problems = schema::check(&doc, field, &kind);
                if !problems.is_empty() {
                    return Err(format!(
                        "error unmarshaling configuration {}: {}",
                        gvk(&api, &kind),
                        problems.message()
                    ));
                }
                if !v4 && minor >= 31 {
                    cfg.warnings.push(klog_warning(inv, "common.go:101", &format!("your configuration file uses a deprecated API spec: \"{api}\" (kind: \"{kind}\"). Please use 'kubeadm config migrate --old-config old.yaml --new-config new.yaml', which will write the new, similar spec using a newer API version.")));
                }
                if !cfg.api.is_empty() && cfg.api != api {
                    return Err(format!(
                        "mixed kubeadm configuration API versions: \"{}\" and \"{api}\"",
                        cfg.api
                    ));
                }
                cfg.api = api.clone();
                let slot = match kind.as_str() {
                    "InitConfiguration" => &mut cfg.init,
                    "ClusterConfiguration" => &mut cfg.cluster,
                    "JoinConfiguration" => &mut cfg.join,
                    _ => continue,
                };
                if slot.is_some() {
                    return Err(format!("found multiple {kind} documents"));
                }
                *slot = Some(doc);
            }
            "kubelet.config.k8s.io" | "kubeproxy.config.k8s.io" => {
                let (want_version, want_kind, fields) = if group == "kubelet.config.k8s.io" {
                    ("v1beta1", "KubeletConfiguration", KUBELET_FIELDS)
                } else {
                    ("v1alpha1", "KubeProxyConfiguration", PROXY_FIELDS)
                };
                if version != want_version || kind != want_kind {
                    return Err(format!(
                        "no kind \"{kind}\" is registered for version \"{api}\" in scheme \"k8s.io/kubernetes/cmd/kubeadm/app/componentconfigs/scheme.go:28\""
                    ));
                }
                let unknown: Vec<String> = doc
                    .as_object()
                    .map(|m| {
                        m.keys()
                            .filter(|k| !fields.contains(&k.as_str()))
                            .map(|k| format!("unknown field {k:?}"))
                            .collect()
                    })
                    .unwrap_or_default();
                if !unknown.is_empty() {
                    cfg.warnings.push(klog_warning(
                        inv,
                        "strict.go:54",
                        &format!(
                            "error unmarshaling configuration {}: strict decoding error: {}",
                            gvk(&api, &kind),
                            unknown.join(", ")
                        ),
                    ));
                }
                if group == "kubelet.config.k8s.io" {
                    let driver = &doc["cgroupDriver"];
                    if !driver.is_null() && !driver.is_string() {
                        return Err(format!("error unmarshaling configuration {}: json: cannot unmarshal {} into Go struct field KubeletConfiguration.cgroupDriver of type string", gvk(&api, &kind), if driver.is_number() { "number" } else { "object" }));
                    }
                    cfg.kubelet = Some(doc);
                } else {
                    cfg.proxy = Some(doc);
                }
            }
            _ => cfg.warnings.push(format!(
                "[config] WARNING: Ignored YAML document with GroupVersionKind {api}, Kind={kind}"
            )),
        }
    }
    Ok(cfg)
}

/// `kubeletExtraArgs` value by name, for both the v1beta3 map and the v1beta4 list.
fn extra_arg(node_reg: &Value, name: &str) -> Option<String> {
    let args = node_reg.get("kubeletExtraArgs")?;
    if let Some(map) = args.as_object() {
        return map.get(name).and_then(|v| v.as_str()).map(String::from);
    }
    args.as_array()?
        .iter()
        .rev()
        .find(|a| a.get("name").and_then(|n| n.as_str()) == Some(name))
        .and_then(|a| a.get("value")?.as_str().map(String::from))
}

fn is_dns_subdomain(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

fn valid_token(t: &str) -> bool {
    let ok = |s: &str, n: usize| {
        s.len() == n
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    };
    matches!(t.split_once('.'), Some((id, secret)) if ok(id, 6) && ok(secret, 16))
}

// ---- preflight ----

struct Preflight {
    errors: Vec<(String, String)>,
    warnings: Vec<(String, String)>,
    ignored: Vec<String>,
}

impl Preflight {
    fn new(ignored: Vec<String>) -> Self {
        Preflight {
            errors: Vec::new(),
            warnings: Vec::new(),
            ignored: ignored.iter().map(|s| s.to_lowercase()).collect(),
        }
    }
    fn error(&mut self, name: &str, msg: String) {
        if self
            .ignored
            .iter()
            .any(|i| i == "all" || *i == name.to_lowercase())
        {
            self.warnings.push((name.to_string(), msg));
        } else {
            self.errors.push((name.to_string(), msg));
        }
    }
    fn warn(&mut self, name: &str, msg: String) {
        self.warnings.push((name.to_string(), msg));
    }
    /// Prints warnings; the error to fail with, if any.
    fn finish(self, inv: &mut Invocation) -> Result<(), String> {
        for (n, m) in &self.warnings {
            inv.errln(&format!("\t[WARNING {n}]: {m}"));
        }
        if self.errors.is_empty() {
            return Ok(());
        }
        let mut msg = String::from(
            "error execution phase preflight: [preflight] Some fatal errors occurred:\n",
        );
        for (n, m) in &self.errors {
            msg.push_str(&format!("\t[ERROR {n}]: {m}\n"));
        }
        msg.push_str("[preflight] If you know what you are doing, you can make a check non-fatal with `--ignore-preflight-errors=...`");
        Err(msg)
    }
}

fn dir_not_empty(inv: &Invocation, path: &str) -> bool {
    std::fs::read_dir(inv.path(path)).is_ok_and(|mut d| d.next().is_some())
}

/// Ports something listens on in this host.
fn ports_in_use(inv: &Invocation) -> Vec<u16> {
    let mut ports = inv.profile().map(|p| p.listening_ports).unwrap_or_default();
    // A kubelet without a configuration restarts in a loop and never listens.
    if runtime::unit_active(inv, "kubelet.service") && inv.path(kubelet::CONFIG).exists() {
        ports.extend([10248, 10250]);
    }
    for unit in ["etcd.service", "kube-apiserver.service"] {
        if runtime::unit_active(inv, unit) {
            ports.extend(super::systemctl::service_ports(unit));
        }
    }
    ports
}

fn common_checks(
    inv: &Invocation,
    pf: &mut Preflight,
    socket: &str,
    ports: &[u16],
    control_plane: bool,
    kubeadm_version: &str,
) {
    if inv.uid != 0 {
        pf.error("IsPrivilegedUser", "user is not running as root".into());
    }
    if control_plane {
        if let Ok(p) = inv.profile() {
            if p.cpus < 2 {
                pf.error(
                    "NumCPU",
                    format!(
                        "the number of available CPUs {} is less than the required 2",
                        p.cpus
                    ),
                );
            }
            if p.memory_mib < 1700 {
                pf.error(
                    "Mem",
                    format!(
                        "the system RAM ({} MB) is less than the minimum 1700 MB",
                        p.memory_mib
                    ),
                );
            }
        }
    }
    let swaps = inv.read("/proc/swaps").unwrap_or_default();
    if swaps.lines().skip(1).any(|l| !l.trim().is_empty()) {
        pf.error(
            "Swap",
            "running with swap on is not supported. Please disable swap".into(),
        );
    }
    if inv
        .read("/proc/sys/net/ipv4/ip_forward")
        .map(|t| t.trim() != "1")
        .unwrap_or(true)
    {
        pf.error(
            "FileContent--proc-sys-net-ipv4-ip_forward",
            "/proc/sys/net/ipv4/ip_forward contents are not set to 1".into(),
        );
    }
    if let Err(e) = runtime::check_socket(inv, socket) {
        pf.error(
            "CRI",
            format!(
                "container runtime is not running: output: time=\"{}\" level=fatal msg=\"{}\"\n, error: exit status 1",
                cluster::rfc3339(cluster::now()),
                e.replace('"', "\\\"")
            ),
        );
    }
    let used = ports_in_use(inv);
    for port in ports {
        if used.contains(port) {
            pf.error(&format!("Port-{port}"), format!("Port {port} is in use"));
        }
    }
    if dir_not_empty(inv, MANIFESTS) {
        pf.error(
            "DirAvailable--etc-kubernetes-manifests",
            "/etc/kubernetes/manifests is not empty".into(),
        );
    }
    if inv.path(kubelet::KUBECONFIG).exists() {
        pf.error(
            "FileAvailable--etc-kubernetes-kubelet.conf",
            "/etc/kubernetes/kubelet.conf already exists".into(),
        );
    }
    match super::pkgdb::upstream_version(inv, "kubelet") {
        None => pf.error(
            "KubeletVersion",
            "couldn't get kubelet version: cannot execute 'kubelet --version': exec: \"kubelet\": executable file not found in $PATH".into(),
        ),
        Some(kv) => {
            let k = cluster::semver(&kv).unwrap_or((0, 0, 0));
            let a = cluster::semver(kubeadm_version).unwrap_or((0, 0, 0));
            if (k.0, k.1) > (a.0, a.1) {
                pf.error("KubeletVersion", format!("the kubelet version is higher than the control plane version. This is not a supported version skew and may lead to a malfunctional cluster. Kubelet version: \"{kv}\" Control plane version: \"{kubeadm_version}\""));
            }
        }
    }
    let enabled = inv
        .path("/etc/systemd/system/multi-user.target.wants/kubelet.service")
        .symlink_metadata()
        .is_ok();
    if !enabled {
        pf.warn(
            "Service-Kubelet",
            "kubelet service is not enabled, please run 'systemctl enable kubelet.service'".into(),
        );
    }
}

// ---- files kubeadm writes ----

/// `text` in base64, as kubeconfigs embed data.
pub(super) fn base64_text(text: &str) -> String {
    base64(text.as_bytes())
}

fn base64(data: &[u8]) -> String {
    const T: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A PEM block that carries the CA's identity (not a usable certificate).
pub fn ca_pem(ca_id: &str) -> String {
    let body = base64(format!("k8sup-lab CA {ca_id} CN=kubernetes").as_bytes());
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .filter_map(|c| std::str::from_utf8(c).ok())
        .collect();
    format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        lines.join("\n")
    )
}

/// The `certificate-authority-data` of every kubeconfig signed by this CA.
pub fn ca_data(ca_id: &str) -> String {
    base64(ca_pem(ca_id).as_bytes())
}

fn kubeconfig(state: &ClusterState, user: &str) -> String {
    let cluster = if state.cluster_name.is_empty() {
        "kubernetes"
    } else {
        &state.cluster_name
    };
    let cert = base64(format!("k8sup-lab client certificate for {user}").as_bytes());
    let key = base64(format!("k8sup-lab client key for {user}").as_bytes());
    format!(
        "apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: {}\n    server: https://{}\n  name: {cluster}\ncontexts:\n- context:\n    cluster: {cluster}\n    user: {user}\n  name: {user}@{cluster}\ncurrent-context: {user}@{cluster}\nkind: Config\npreferences: {{}}\nusers:\n- name: {user}\n  user:\n    client-certificate-data: {cert}\n    client-key-data: {key}\n",
        ca_data(&state.ca_id),
        state.endpoint
    )
}

struct Images {
    etcd: &'static str,
    coredns: &'static str,
    pause: &'static str,
}

fn images_for(minor: u32) -> Images {
    match minor {
        0..=27 => Images {
            etcd: "3.5.7-0",
            coredns: "v1.10.1",
            pause: "3.9",
        },
        28 => Images {
            etcd: "3.5.9-0",
            coredns: "v1.10.1",
            pause: "3.9",
        },
        29 => Images {
            etcd: "3.5.10-0",
            coredns: "v1.11.1",
            pause: "3.9",
        },
        30 => Images {
            etcd: "3.5.12-0",
            coredns: "v1.11.1",
            pause: "3.9",
        },
        31 => Images {
            etcd: "3.5.15-0",
            coredns: "v1.11.3",
            pause: "3.10",
        },
        32 => Images {
            etcd: "3.5.16-0",
            coredns: "v1.11.3",
            pause: "3.10",
        },
        33 => Images {
            etcd: "3.5.21-0",
            coredns: "v1.12.0",
            pause: "3.10",
        },
        _ => Images {
            etcd: "3.6.4-0",
            coredns: "v1.12.1",
            pause: "3.10.1",
        },
    }
}

/// etcd's command line as kubeadm writes it: a member joining names the members
/// already there in `--initial-cluster` and says `existing`.
fn etcd_command(state: &ClusterState, address: &str, node: &str) -> Vec<String> {
    let mut members: Vec<String> = state
        .nodes
        .values()
        .filter(|n| n.control_plane && n.name != node)
        .map(|n| format!("{}=https://{}:2380", n.name, n.address))
        .collect();
    let joining = !members.is_empty();
    members.insert(0, format!("{node}=https://{address}:2380"));
    let mut cmd = vec![
        "etcd".to_string(),
        format!("--advertise-client-urls=https://{address}:2379"),
        "--cert-file=/etc/kubernetes/pki/etcd/server.crt".into(),
        "--client-cert-auth=true".into(),
        "--data-dir=/var/lib/etcd".into(),
        format!("--initial-advertise-peer-urls=https://{address}:2380"),
        format!("--initial-cluster={}", members.join(",")),
    ];
    if joining {
        cmd.push("--initial-cluster-state=existing".into());
    }
    cmd.extend([
        "--key-file=/etc/kubernetes/pki/etcd/server.key".into(),
        format!("--listen-client-urls=https://127.0.0.1:2379,https://{address}:2379"),
        format!("--listen-peer-urls=https://{address}:2380"),
        format!("--name={node}"),
        "--peer-cert-file=/etc/kubernetes/pki/etcd/peer.crt".into(),
        "--peer-client-cert-auth=true".into(),
        "--peer-key-file=/etc/kubernetes/pki/etcd/peer.key".into(),
        "--peer-trusted-ca-file=/etc/kubernetes/pki/etcd/ca.crt".into(),
        "--trusted-ca-file=/etc/kubernetes/pki/etcd/ca.crt".into(),
    ]);
    cmd
}

fn static_pod(name: &str, image: &str, command: &[String], address: &str) -> String {
    let cmd: String = command.iter().map(|c| format!("    - {c}\n")).collect();
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  annotations:\n    kubeadm.kubernetes.io/kube-apiserver.advertise-address.endpoint: {address}\n  labels:\n    component: {name}\n    tier: control-plane\n  name: {name}\n  namespace: kube-system\nspec:\n  containers:\n  - command:\n{cmd}    image: {image}\n    imagePullPolicy: IfNotPresent\n    name: {name}\n  hostNetwork: true\n  priority: 2000001000\n  priorityClassName: system-node-critical\n"
    )
}

/// The control plane's static pod manifests: (file, image, text).
fn control_plane_manifests(
    state: &ClusterState,
    address: &str,
    node: &str,
) -> Vec<(String, String, String)> {
    let v = format!("v{}", state.kubernetes_version);
    let minor = cluster::semver(&state.kubernetes_version).map_or(30, |x| x.1);
    let repo = &state.image_repository;
    let etcd_image = format!("{repo}/etcd:{}", images_for(minor).etcd);
    let mut pods = vec![(
        "etcd".to_string(),
        etcd_image,
        etcd_command(state, address, node),
    )];
    let mut apiserver = vec![
        "kube-apiserver".to_string(),
        format!("--advertise-address={address}"),
        "--authorization-mode=Node,RBAC".into(),
        "--client-ca-file=/etc/kubernetes/pki/ca.crt".into(),
        format!("--service-cluster-ip-range={}", state.service_subnet),
    ];
    apiserver.push("--etcd-servers=https://127.0.0.1:2379".into());
    pods.push((
        "kube-apiserver".into(),
        format!("{repo}/kube-apiserver:{v}"),
        apiserver,
    ));
    let mut cm = vec![
        "kube-controller-manager".to_string(),
        "--kubeconfig=/etc/kubernetes/controller-manager.conf".into(),
        format!("--cluster-name={}", state.cluster_name),
        format!("--service-cluster-ip-range={}", state.service_subnet),
    ];
    if let Some(pod) = &state.pod_subnet {
        cm.push("--allocate-node-cidrs=true".into());
        cm.push(format!("--cluster-cidr={pod}"));
    }
    pods.push((
        "kube-controller-manager".into(),
        format!("{repo}/kube-controller-manager:{v}"),
        cm,
    ));
    pods.push((
        "kube-scheduler".into(),
        format!("{repo}/kube-scheduler:{v}"),
        vec![
            "kube-scheduler".to_string(),
            "--kubeconfig=/etc/kubernetes/scheduler.conf".into(),
        ],
    ));
    pods.into_iter()
        .map(|(name, image, cmd)| {
            let text = static_pod(&name, &image, &cmd, address);
            (format!("{name}.yaml"), image, text)
        })
        .collect()
}

fn write(inv: &Invocation, path: &str, text: &str) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    inv.write(path, text).map_err(|e| format!("{path}: {e}"))?;
    // Kubeconfigs and keys are root's only, as kubeadm writes them.
    if path.ends_with(".conf") || path.ends_with(".key") {
        std::fs::set_permissions(inv.path(path), std::fs::Permissions::from_mode(0o600))
            .map_err(|e| format!("{path}: {e}"))?;
    }
    Ok(())
}

/// The cluster-wide kubelet configuration: the given KubeletConfiguration with kubeadm's
/// defaults.
fn kubelet_config(doc: Option<&Value>, state: &ClusterState) -> Value {
    let mut v = doc.cloned().unwrap_or_else(|| json!({}));
    let Some(map) = v.as_object_mut() else {
        return v;
    };
    map.insert("apiVersion".into(), json!("kubelet.config.k8s.io/v1beta1"));
    map.insert("kind".into(), json!("KubeletConfiguration"));
    map.entry("cgroupDriver").or_insert(json!("systemd"));
    map.entry("clusterDomain")
        .or_insert(json!(state.dns_domain.clone()));
    map.entry("clusterDNS")
        .or_insert(json!([dns_ip(&state.service_subnet)]));
    map.entry("staticPodPath").or_insert(json!(MANIFESTS));
    map.entry("rotateCertificates").or_insert(json!(true));
    map.entry("authentication").or_insert(json!({
        "anonymous": {"enabled": false},
        "webhook": {"cacheTTL": "0s", "enabled": true},
        "x509": {"clientCAFile": "/etc/kubernetes/pki/ca.crt"}}));
    map.entry("authorization")
        .or_insert(json!({"mode": "Webhook"}));
    v
}

/// The tenth address of the service subnet (kube-dns).
fn dns_ip(service_subnet: &str) -> String {
    let first = service_subnet.split(',').next().unwrap_or("");
    cluster::parse_cidr(first)
        .map(|(net, _)| std::net::Ipv4Addr::from(u32::from(net) + 10).to_string())
        .unwrap_or_else(|| "10.96.0.10".into())
}

/// Writes the kubelet's files for this node and "starts" it, as kubeadm's kubelet-start
/// phase does; returns what the kubelet then finds.
fn start_kubelet(
    inv: &mut Invocation,
    state: &ClusterState,
    socket: &str,
    node_name: &str,
    node_reg: &Value,
) -> Result<KubeletStatus, String> {
    let mut config: Value = cluster::yaml_documents(&state.kubelet_config)?
        .into_iter()
        .next()
        .unwrap_or_else(|| json!({}));
    if let Some(m) = config.as_object_mut() {
        m.insert("containerRuntimeEndpoint".into(), json!(socket));
    }
    let text = serde_norway::to_string(&config).map_err(|e| e.to_string())?;
    inv.outln(&format!(
        "[kubelet-start] Writing kubelet environment file with flags to file \"{}\"",
        kubelet::FLAGS_ENV
    ));
    let pause = images_for(cluster::semver(&state.kubernetes_version).map_or(30, |v| v.1)).pause;
    let mut flags = format!(
        "--container-runtime-endpoint={socket} --pod-infra-container-image={}/pause:{pause}",
        state.image_repository
    );
    if let Some(labels) = extra_arg(node_reg, "node-labels") {
        flags.push_str(&format!(" --node-labels={labels}"));
    }
    if node_name != inv.hostname() {
        flags.push_str(&format!(" --hostname-override={node_name}"));
    }
    write(
        inv,
        kubelet::FLAGS_ENV,
        &format!("KUBELET_KUBEADM_ARGS=\"{flags}\"\n"),
    )?;
    inv.outln(&format!(
        "[kubelet-start] Writing kubelet configuration to file \"{}\"",
        kubelet::CONFIG
    ));
    write(inv, kubelet::CONFIG, &text)?;
    inv.outln("[kubelet-start] Starting the kubelet");
    write(
        inv,
        &format!(
            "{}/kubelet.service.active",
            crate::profile::SYSTEMD_STATE_DIR
        ),
        "",
    )?;
    kubelet::started(inv);
    let status = kubelet::evaluate(inv);
    if let Some(e) = &status.error {
        kubelet::log(inv, e);
    }
    Ok(status)
}

fn kubelet_failure(inv: &mut Invocation, phase: &str) -> Failure {
    inv.outln("[kubelet-check] Waiting for a healthy kubelet. This can take up to 4m0s");
    inv.outln("[kubelet-check] The kubelet is not healthy after 4m0.000116984s");
    inv.outln("\nUnfortunately, an error has occurred:\n\tThe HTTP call equal to 'curl -sSL http://127.0.0.1:10248/healthz' returned error: Get \"http://127.0.0.1:10248/healthz\": context deadline exceeded\n\n\nThis error is likely caused by:\n\t- The kubelet is not running\n\t- The kubelet is unhealthy due to a misconfiguration of the node in some way (required cgroups disabled)\n\nIf you are on a systemd-powered system, you can try to troubleshoot the error with the following commands:\n\t- 'systemctl status kubelet'\n\t- 'journalctl -xeu kubelet'\n");
    Failure::Error(format!("error execution phase {phase}"))
}

fn node_labels(
    arch: &str,
    name: &str,
    control_plane: bool,
    node_reg: &Value,
) -> BTreeMap<String, String> {
    let mut l = BTreeMap::new();
    for (k, v) in [
        ("beta.kubernetes.io/arch", arch),
        ("beta.kubernetes.io/os", "linux"),
        ("kubernetes.io/arch", arch),
        ("kubernetes.io/hostname", name),
        ("kubernetes.io/os", "linux"),
    ] {
        l.insert(k.to_string(), v.to_string());
    }
    if control_plane {
        l.insert(CP_TAINT.into(), String::new());
        l.insert(
            "node.kubernetes.io/exclude-from-external-load-balancers".into(),
            String::new(),
        );
    }
    if let Some(extra) = extra_arg(node_reg, "node-labels") {
        for pair in extra.split(',') {
            if let Some((k, v)) = pair.split_once('=') {
                l.insert(k.trim().to_string(), v.trim().to_string());
            }
        }
    }
    l
}

fn node_taints(node_reg: &Value, control_plane: bool) -> Vec<Taint> {
    match node_reg.get("taints").and_then(|t| t.as_array()) {
        Some(list) => list
            .iter()
            .map(|t| Taint {
                key: cluster::str_at(t, &["key"]).into(),
                value: cluster::str_at(t, &["value"]).into(),
                effect: cluster::str_at(t, &["effect"]).into(),
            })
            .collect(),
        None if control_plane => vec![Taint {
            key: CP_TAINT.into(),
            value: String::new(),
            effect: "NoSchedule".into(),
        }],
        None => Vec::new(),
    }
}

/// What `init` or `join` registers a node with.
struct Registration<'a> {
    name: &'a str,
    address: &'a str,
    control_plane: bool,
    node_reg: &'a Value,
    socket: &'a str,
}

fn new_node(
    inv: &Invocation,
    state: &ClusterState,
    reg: &Registration,
    kubelet: KubeletStatus,
) -> Node {
    let Registration {
        name,
        address,
        control_plane,
        node_reg,
        socket,
    } = *reg;
    let profile = inv.profile().ok();
    let arch = profile
        .as_ref()
        .map(|p| p.arch.as_str())
        .unwrap_or("amd64")
        .to_string();
    let os_image = inv
        .read("/etc/os-release")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|s| s.trim_matches('"').to_string())
        .unwrap_or_default();
    let rt = runtime::Runtime::for_socket(socket).unwrap_or(runtime::Runtime::Containerd);
    let existing_cidr = state.nodes.get(name).and_then(|n| n.pod_cidr.clone());
    Node {
        name: name.to_string(),
        host: inv.hostname(),
        labels: node_labels(&arch, name, control_plane, node_reg),
        arch,
        address: address.to_string(),
        control_plane,
        taints: node_taints(node_reg, control_plane),
        kubelet_version: format!(
            "v{}",
            super::pkgdb::upstream_version(inv, "kubelet").unwrap_or_default()
        ),
        container_runtime: runtime::version_string(inv, rt),
        os_image,
        kernel: profile.map(|p| p.kernel_release).unwrap_or_default(),
        pod_cidr: existing_cidr.or_else(|| state.next_pod_cidr()),
        created: cluster::now(),
        kubelet,
        control_plane_version: None,
        unschedulable: false,
    }
}

fn add_object(state: &mut ClusterState, body: Value) {
    let api_version = cluster::str_at(&body, &["apiVersion"]).to_string();
    let kind = cluster::str_at(&body, &["kind"]).to_string();
    let name = cluster::str_at(&body, &["metadata", "name"]).to_string();
    let namespace = cluster::str_at(&body, &["metadata", "namespace"]).to_string();
    state
        .objects
        .retain(|o| !(o.kind == kind && o.namespace == namespace && o.name == name));
    state.objects.push(Object {
        api_version,
        kind,
        namespace,
        name,
        body,
        created: cluster::now(),
        source: "kubeadm".into(),
    });
}

/// What `kubeadm init` creates in the API: namespaces, kube-proxy and CoreDNS.
fn essential_objects(state: &mut ClusterState, proxy_disabled: bool, dns_disabled: bool) {
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        add_object(
            state,
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
        );
    }
    let v = format!("v{}", state.kubernetes_version);
    let repo = state.image_repository.clone();
    if !dns_disabled {
        let minor = cluster::semver(&state.kubernetes_version).map_or(30, |x| x.1);
        add_object(
            state,
            json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "coredns", "namespace": "kube-system", "labels": {"k8s-app": "kube-dns"}},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"k8s-app": "kube-dns"}},
                "template": {"metadata": {"labels": {"k8s-app": "kube-dns"}},
                    "spec": {"containers": [{"name": "coredns", "image": format!("{repo}/coredns/coredns:{}", images_for(minor).coredns)}],
                        "tolerations": [{"key": "CriticalAddonsOnly", "operator": "Exists"}, {"key": CP_TAINT, "effect": "NoSchedule"}]}}}}),
        );
    }
    if !proxy_disabled {
        add_object(
            state,
            json!({
            "apiVersion": "apps/v1", "kind": "DaemonSet",
            "metadata": {"name": "kube-proxy", "namespace": "kube-system", "labels": {"k8s-app": "kube-proxy"}},
            "spec": {"selector": {"matchLabels": {"k8s-app": "kube-proxy"}},
                "template": {"metadata": {"labels": {"k8s-app": "kube-proxy"}},
                    "spec": {"containers": [{"name": "kube-proxy", "image": format!("{repo}/kube-proxy:{v}")}],
                        "hostNetwork": true, "nodeSelector": {"kubernetes.io/os": "linux"},
                        "tolerations": [{"operator": "Exists"}]}}}}),
        );
    }
}

fn new_token(spec: Option<&Value>, now: u64) -> Result<BootstrapToken, String> {
    let empty = json!({});
    let spec = spec.unwrap_or(&empty);
    let token = match cluster::str_at(spec, &["token"]) {
        "" => format!(
            "{}.{}",
            cluster::random_token_chars(6),
            cluster::random_token_chars(16)
        ),
        t if valid_token(t) => t.to_string(),
        t => {
            return Err(format!(
                "the bootstrap token \"{t}\" was not of the form \"[a-z0-9]{{6}}.[a-z0-9]{{16}}\""
            ))
        }
    };
    let ttl = match cluster::str_at(spec, &["ttl"]) {
        "" => 86_400,
        t => cluster::parse_go_duration(t)
            .ok_or_else(|| format!("time: invalid duration \"{t}\""))?,
    };
    let list = |key: &str, default: &[&str]| -> Vec<String> {
        spec.get(key)
            .and_then(|v| v.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_else(|| default.iter().map(|s| s.to_string()).collect())
    };
    Ok(BootstrapToken {
        token,
        expires: (ttl > 0).then_some(now + ttl),
        usages: list("usages", &["signing", "authentication"]),
        groups: list(
            "groups",
            &["system:bootstrappers:kubeadm:default-node-token"],
        ),
        description: cluster::str_at(spec, &["description"]).to_string(),
    })
}

fn join_command(state: &ClusterState, token: &str, cert_key: Option<&str>) -> String {
    let mut s = format!(
        "kubeadm join {} --token {token} \\\n\t--discovery-token-ca-cert-hash {}",
        state.endpoint, state.ca_hash
    );
    if let Some(k) = cert_key {
        s.push_str(&format!(" \\\n\t--control-plane --certificate-key {k}"));
    }
    s
}

// ---- init ----

const INIT_FLAGS: &[&str] = &[
    "config",
    "ignore-preflight-errors",
    "skip-phases",
    "certificate-key",
    "pod-network-cidr",
    "service-cidr",
    "service-dns-domain",
    "apiserver-advertise-address",
    "apiserver-bind-port",
    "control-plane-endpoint",
    "kubernetes-version",
    "cri-socket",
    "node-name",
    "token",
    "token-ttl",
    "image-repository",
    "apiserver-cert-extra-sans",
    "cert-dir",
    "feature-gates",
    "patches",
];

/// Flags `--config` cannot be mixed with (kubeadm's own list, abridged).
const CONFIG_EXCLUSIVE: &[&str] = &[
    "pod-network-cidr",
    "service-cidr",
    "service-dns-domain",
    "apiserver-advertise-address",
    "apiserver-bind-port",
    "control-plane-endpoint",
    "kubernetes-version",
    "cri-socket",
    "node-name",
    "token",
    "token-ttl",
    "image-repository",
    "certificate-key",
    "discovery-token-ca-cert-hash",
    "discovery-token-unsafe-skip-ca-verification",
    "apiserver-cert-extra-sans",
];

fn check_config_mix(f: &Flags) -> Result<(), Failure> {
    if f.get("config").is_none() {
        return Ok(());
    }
    let mixed: Vec<&str> = CONFIG_EXCLUSIVE
        .iter()
        .copied()
        .filter(|n| f.values.contains_key(*n))
        .collect();
    if mixed.is_empty() {
        Ok(())
    } else {
        Err(Failure::Error(format!(
            "can not mix '--config' with arguments [{}]",
            mixed.join(" ")
        )))
    }
}

fn init(inv: &mut Invocation, kubeadm_version: &str, rest: &[String]) -> Outcome {
    let f = Flags::parse(
        rest,
        INIT_FLAGS,
        &[
            "upload-certs",
            "dry-run",
            "skip-token-print",
            "skip-certificate-key-print",
        ],
    )
    .map_err(usage)?;
    if let Some(p) = f.positional.first() {
        return Err(usage(format!(
            "unknown command \"{p}\" for \"kubeadm init\""
        )));
    }
    if f.on("dry-run") {
        return Err(Failure::Error(
            "k8sup-lab: kubeadm init --dry-run is not emulated".into(),
        ));
    }
    check_config_mix(&f)?;
    let cfg = match f.get("config") {
        Some(path) => load_config(inv, path, kubeadm_version)?,
        None => Config::default(),
    };
    for w in &cfg.warnings {
        inv.errln(w);
    }
    let empty = json!({});
    let init_doc = cfg.init.clone().unwrap_or_else(|| json!({}));
    let cluster_doc = cfg.cluster.clone().unwrap_or_else(|| json!({}));
    let node_reg = init_doc.get("nodeRegistration").unwrap_or(&empty).clone();
    let text = |doc: &Value, path: &[&str], flag: &str| -> String {
        let v = cluster::str_at(doc, path);
        if v.is_empty() {
            f.get(flag).unwrap_or("").to_string()
        } else {
            v.to_string()
        }
    };

    // Kubernetes version.
    let mut version_text = text(&cluster_doc, &["kubernetesVersion"], "kubernetes-version");
    if version_text.is_empty()
        || version_text.starts_with("stable")
        || version_text.starts_with("latest")
    {
        if !version_text.is_empty() {
            inv.errln(&klog_warning(inv, "version.go:104", &format!("could not fetch a Kubernetes version from the internet: unable to get URL \"https://dl.k8s.io/release/{version_text}.txt\": Get \"https://dl.k8s.io/release/{version_text}.txt\": dial tcp: lookup dl.k8s.io on 127.0.0.53:53: server misbehaving")));
            inv.errln(&klog_warning(
                inv,
                "version.go:105",
                &format!("falling back to the local client version: v{kubeadm_version}"),
            ));
        }
        version_text = kubeadm_version.to_string();
    }
    let Some(k8s) = cluster::semver(&version_text) else {
        return Err(Failure::Error(format!(
            "couldn't parse Kubernetes version \"{version_text}\": could not parse \"{version_text}\" as version"
        )));
    };
    let ka = cluster::semver(kubeadm_version).unwrap_or((1, 0, 0));
    if k8s.1 + 1 < ka.1 {
        return Err(Failure::Error(format!(
            "this version of kubeadm only supports deploying clusters with the control plane version >= 1.{}.0. Current version: v{version_text}",
            ka.1 - 1
        )));
    }
    let k8s_version = format!("{}.{}.{}", k8s.0, k8s.1, k8s.2);

    // Networking and endpoint.
    let pod_subnet = text(
        &cluster_doc,
        &["networking", "podSubnet"],
        "pod-network-cidr",
    );
    let service_subnet = match text(
        &cluster_doc,
        &["networking", "serviceSubnet"],
        "service-cidr",
    ) {
        s if s.is_empty() => "10.96.0.0/12".to_string(),
        s => s,
    };
    for (field, value) in [
        ("networking.podSubnet", &pod_subnet),
        ("networking.serviceSubnet", &service_subnet),
    ] {
        if !value.is_empty()
            && value
                .split(',')
                .any(|c| cluster::parse_cidr(c).is_none() && !c.contains(':'))
        {
            return Err(Failure::Error(format!(
                "{field}: Invalid value: \"{value}\": couldn't parse subnet"
            )));
        }
    }
    let profile = inv.profile().map_err(Failure::Error)?;
    let advertise = match text(
        &init_doc,
        &["localAPIEndpoint", "advertiseAddress"],
        "apiserver-advertise-address",
    ) {
        a if a.is_empty() => profile.address.clone(),
        a => a,
    };
    if advertise.parse::<std::net::IpAddr>().is_err() {
        return Err(Failure::Error(format!(
            "localAPIEndpoint.advertiseAddress: Invalid value: \"{advertise}\": couldn't use \"{advertise}\" as \"apiserver-advertise-address\", must be ipv4 or ipv6 address"
        )));
    }
    let bind_port = init_doc
        .get("localAPIEndpoint")
        .and_then(|e| e.get("bindPort"))
        .and_then(|p| p.as_u64())
        .or_else(|| f.get("apiserver-bind-port").and_then(|p| p.parse().ok()))
        .unwrap_or(6443) as u16;
    let cpe = text(
        &cluster_doc,
        &["controlPlaneEndpoint"],
        "control-plane-endpoint",
    );
    let endpoint = if cpe.is_empty() {
        format!("{advertise}:{bind_port}")
    } else if cpe
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        cpe.clone()
    } else {
        format!("{cpe}:{bind_port}")
    };
    let node_name = match text(&node_reg, &["name"], "node-name") {
        n if n.is_empty() => inv.hostname().to_lowercase(),
        n => n,
    };
    if !is_dns_subdomain(&node_name) {
        return Err(Failure::Error(format!("nodeRegistration.name: Invalid value: \"{node_name}\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")));
    }
    let socket = match text(&node_reg, &["criSocket"], "cri-socket") {
        s if s.is_empty() => runtime::detect_socket(inv).map_err(Failure::Error)?,
        s if !s.contains("://") => {
            inv.errln(&klog_warning(inv, "initconfiguration.go:125", &format!("Usage of CRI endpoints without URL scheme is deprecated and can cause kubelet errors in the future. Automatically prepending scheme \"unix\" to the \"criSocket\" with value \"{s}\". Please update your configuration!")));
            format!("unix://{s}")
        }
        s => s,
    };
    let token_spec = init_doc
        .get("bootstrapTokens")
        .and_then(|t| t.as_array())
        .and_then(|a| a.first())
        .cloned()
        .or_else(|| {
            f.get("token")
                .map(|t| json!({"token": t, "ttl": f.get("token-ttl").unwrap_or("24h0m0s")}))
        });

    inv.outln(&format!("[init] Using Kubernetes version: v{k8s_version}"));
    inv.outln("[preflight] Running pre-flight checks");
    let mut ignored = f.all("ignore-preflight-errors");
    if let Some(list) = node_reg
        .get("ignorePreflightErrors")
        .and_then(|l| l.as_array())
    {
        ignored.extend(list.iter().filter_map(|s| s.as_str().map(String::from)));
    }
    let mut pf = Preflight::new(ignored);
    common_checks(
        inv,
        &mut pf,
        &socket,
        &[bind_port, 10259, 10257, 10250, 2379, 2380],
        true,
        kubeadm_version,
    );
    if dir_not_empty(inv, "/var/lib/etcd") {
        pf.error(
            "DirAvailable--var-lib-etcd",
            "/var/lib/etcd is not empty".into(),
        );
    }
    if (k8s.0, k8s.1) > (ka.0, ka.1) {
        pf.warn("KubernetesVersion", format!("Kubernetes version is greater than kubeadm version. Please consider to upgrade kubeadm. Kubernetes version: {k8s_version}. Kubeadm version: {}.{}.x", ka.0, ka.1));
    }
    pf.finish(inv)?;

    let mut locked = cluster::lock(inv)?;
    if locked.state.initialized && locked.state.control_plane_nodes() > 0 {
        let hosts: Vec<String> = locked
            .state
            .nodes
            .values()
            .filter(|n| n.control_plane)
            .map(|n| n.host.clone())
            .collect();
        return Err(Failure::Error(format!(
            "k8sup-lab: this lab already has a cluster (control plane on {}); the lab emulates one cluster per lab",
            hosts.join(", ")
        )));
    }
    let now = cluster::now();
    let image_repository = match cluster::str_at(&cluster_doc, &["imageRepository"]) {
        "" => f
            .get("image-repository")
            .unwrap_or("registry.k8s.io")
            .to_string(),
        r => r.to_string(),
    };
    let mut state = ClusterState {
        initialized: false,
        endpoint: endpoint.clone(),
        control_plane_endpoint: cpe.clone(),
        ca_id: cluster::random_hex(16),
        ca_hash: format!("sha256:{}", cluster::random_hex(64)),
        tokens: Vec::new(),
        certificate_key: None,
        certificate_key_expires: 0,
        kubernetes_version: k8s_version.clone(),
        cluster_name: match cluster::str_at(&cluster_doc, &["clusterName"]) {
            "" => "kubernetes".into(),
            n => n.into(),
        },
        image_repository,
        pod_subnet: (!pod_subnet.is_empty()).then(|| pod_subnet.clone()),
        service_subnet: service_subnet.clone(),
        dns_domain: match text(
            &cluster_doc,
            &["networking", "dnsDomain"],
            "service-dns-domain",
        ) {
            d if d.is_empty() => "cluster.local".into(),
            d => d,
        },
        kubelet_config: String::new(),
        nodes: BTreeMap::new(),
        objects: Vec::new(),
        applied: locked.state.applied,
        pods: Vec::new(),
        pod_serial: 0,
    };
    state.kubelet_config = serde_norway::to_string(&kubelet_config(cfg.kubelet.as_ref(), &state))
        .map_err(|e| e.to_string())?;
    let token = new_token(token_spec.as_ref(), now).map_err(Failure::Error)?;

    inv.outln("[preflight] Pulling images required for setting up a Kubernetes cluster\n[preflight] This might take a minute or two, depending on the speed of your internet connection\n[preflight] You can also perform this action beforehand using 'kubeadm config images pull'");
    // Without a runtime (its preflight error ignored) nothing can be pulled; the kubelet
    // fails further on.
    if runtime::check_socket(inv, &socket).is_ok() {
        config_images::pull_all(
            inv,
            &socket,
            &config_images::list(&state.image_repository, &k8s_version),
        )
        .map_err(|e| Failure::Error(format!("error execution phase preflight: {e}")))?;
    }
    crate::durations::hooks::step("kubeadm-init", &node_name, |d| d.steps.kubeadm_init_ms);
    inv.outln("[certs] Using certificateDir folder \"/etc/kubernetes/pki\"");
    for c in [
        "ca",
        "apiserver",
        "apiserver-kubelet-client",
        "front-proxy-ca",
        "front-proxy-client",
        "etcd/ca",
        "etcd/server",
        "etcd/peer",
        "etcd/healthcheck-client",
        "apiserver-etcd-client",
    ] {
        inv.outln(&format!("[certs] Generating \"{c}\" certificate and key"));
    }
    inv.outln("[certs] Generating \"sa\" key and public key");
    write(inv, "/etc/kubernetes/pki/ca.crt", &ca_pem(&state.ca_id))?;
    write(
        inv,
        "/etc/kubernetes/pki/ca.key",
        "-----BEGIN RSA PRIVATE KEY-----\nk8sup-lab\n-----END RSA PRIVATE KEY-----\n",
    )?;
    inv.outln("[kubeconfig] Using kubeconfig folder \"/etc/kubernetes\"");
    let mut confs = vec![("admin.conf", "kubernetes-admin".to_string())];
    if k8s.1 >= 29 {
        confs.push(("super-admin.conf", "kubernetes-super-admin".into()));
    }
    confs.push(("kubelet.conf", format!("system:node:{node_name}")));
    confs.push((
        "controller-manager.conf",
        "system:kube-controller-manager".into(),
    ));
    confs.push(("scheduler.conf", "system:kube-scheduler".into()));
    for (file, user) in &confs {
        inv.outln(&format!("[kubeconfig] Writing \"{file}\" kubeconfig file"));
        write(
            inv,
            &format!("/etc/kubernetes/{file}"),
            &kubeconfig(&state, user),
        )?;
    }
    inv.outln(
        "[etcd] Creating static Pod manifest for local etcd in \"/etc/kubernetes/manifests\"",
    );
    inv.outln("[control-plane] Using manifest folder \"/etc/kubernetes/manifests\"");
    for (file, _, text) in control_plane_manifests(&state, &advertise, &node_name) {
        if file != "etcd.yaml" {
            inv.outln(&format!(
                "[control-plane] Creating static Pod manifest for \"{}\"",
                file.trim_end_matches(".yaml")
            ));
        }
        write(inv, &format!("{MANIFESTS}/{file}"), &text)?;
    }
    let status = start_kubelet(inv, &state, &socket, &node_name, &node_reg)?;
    if status.error.is_some() {
        return Err(kubelet_failure(
            inv,
            "wait-control-plane: couldn't initialize a Kubernetes cluster",
        ));
    }
    if advertise != profile.address && advertise != "127.0.0.1" {
        inv.outln("[wait-control-plane] Waiting for the kubelet to boot up the control plane as static Pods from directory \"/etc/kubernetes/manifests\". This can take up to 4m0s");
        return Err(Failure::Error(format!("error execution phase wait-control-plane: couldn't initialize a Kubernetes cluster (etcd cannot listen on {advertise}:2379: bind: cannot assign requested address)")));
    }
    inv.outln("[wait-control-plane] Waiting for the kubelet to boot up the control plane as static Pods from directory \"/etc/kubernetes/manifests\". This can take up to 4m0s\n[kubelet-check] Waiting for a healthy kubelet. This can take up to 4m0s\n[kubelet-check] The kubelet is healthy after 501.512719ms\n[api-check] Waiting for a healthy API server. This can take up to 4m0s\n[api-check] The API server is healthy after 5.501822599s");
    inv.outln("[upload-config] Storing the configuration used in ConfigMap \"kubeadm-config\" in the \"kube-system\" Namespace\n[kubelet] Creating a ConfigMap \"kubelet-config\" in namespace kube-system with the configuration for the kubelets in the cluster");
    let cert_key = if f.on("upload-certs") {
        let key = match cluster::str_at(&init_doc, &["certificateKey"]) {
            "" => f
                .get("certificate-key")
                .map(String::from)
                .unwrap_or_else(|| cluster::random_hex(64)),
            k => k.to_string(),
        };
        state.certificate_key = Some(key.clone());
        state.certificate_key_expires = now + 7200;
        inv.outln("[upload-certs] Storing the certificates in Secret \"kubeadm-certs\" in the \"kube-system\" Namespace");
        inv.outln(&format!("[upload-certs] Using certificate key:\n{key}"));
        Some(key)
    } else {
        inv.outln("[upload-certs] Skipping phase. Please see --upload-certs");
        None
    };
    let node = new_node(
        inv,
        &state,
        &Registration {
            name: &node_name,
            address: &advertise,
            control_plane: true,
            node_reg: &node_reg,
            socket: &socket,
        },
        status,
    );
    inv.outln(&format!("[mark-control-plane] Marking the node {node_name} as control-plane by adding the labels: [node-role.kubernetes.io/control-plane node.kubernetes.io/exclude-from-external-load-balancers]"));
    let taints: Vec<String> = node
        .taints
        .iter()
        .map(|t| format!("{}:{}", t.key, t.effect))
        .collect();
    inv.outln(&format!("[mark-control-plane] Marking the node {node_name} as control-plane by adding the taints [{}]", taints.join(" ")));
    inv.outln(&format!("[bootstrap-token] Using token: {}", token.token));
    inv.outln("[bootstrap-token] Configuring bootstrap tokens, cluster-info ConfigMap, RBAC Roles\n[bootstrap-token] Configured RBAC rules to allow Node Bootstrap tokens to get nodes\n[bootstrap-token] Configured RBAC rules to allow Node Bootstrap tokens to post CSRs in order for nodes to get long term certificate credentials\n[bootstrap-token] Configured RBAC rules to allow the csrapprover controller automatically approve CSRs from a Node Bootstrap Token\n[bootstrap-token] Configured RBAC rules to allow certificate rotation for all node client certificates in the cluster\n[bootstrap-token] Creating the \"cluster-info\" ConfigMap in the \"kube-public\" namespace\n[kubelet-finalize] Updating \"/etc/kubernetes/kubelet.conf\" to point to a rotatable kubelet client certificate and key");
    let proxy_disabled = cluster_doc
        .pointer("/proxy/disabled")
        .and_then(|v| v.as_bool())
        .unwrap_or(false)
        || f.all("skip-phases").iter().any(|p| p == "addon/kube-proxy")
        || init_doc
            .get("skipPhases")
            .and_then(|s| s.as_array())
            .is_some_and(|a| a.iter().any(|p| p.as_str() == Some("addon/kube-proxy")));
    let dns_disabled = cluster_doc
        .pointer("/dns/disabled")
        .and_then(|v| v.as_bool())
        .unwrap_or(false);
    if !dns_disabled {
        inv.outln("[addons] Applied essential addon: CoreDNS");
    }
    if !proxy_disabled {
        inv.outln("[addons] Applied essential addon: kube-proxy");
    }
    state.tokens.push(token.clone());
    essential_objects(&mut state, proxy_disabled, dns_disabled);
    upgrade::store_config_maps(&mut state, ka.1);
    state.nodes.insert(node_name.clone(), node);
    state.initialized = true;
    locked.state = state;
    locked.save()?;
    let st = &locked.state;
    inv.outln("\nYour Kubernetes control-plane has initialized successfully!\n\nTo start using your cluster, you need to run the following as a regular user:\n\n  mkdir -p $HOME/.kube\n  sudo cp -i /etc/kubernetes/admin.conf $HOME/.kube/config\n  sudo chown $(id -u):$(id -g) $HOME/.kube/config\n\nAlternatively, if you are the root user, you can run:\n\n  export KUBECONFIG=/etc/kubernetes/admin.conf\n\nYou should now deploy a pod network to the cluster.\nRun \"kubectl apply -f [podnetwork].yaml\" with one of the options listed at:\n  https://kubernetes.io/docs/concepts/cluster-administration/addons/\n");
    if !cpe.is_empty() {
        if let Some(k) = &cert_key {
            inv.outln(&format!("You can now join any number of control-plane nodes running the following command on each as root:\n\n  {}\n\nPlease note that the certificate-key gives access to cluster sensitive data, keep it secret!\nAs a safeguard, uploaded-certs will be deleted in two hours; If necessary, you can use\n\"kubeadm init phase upload-certs --upload-certs\" to reload certs afterward.\n", join_command(st, &token.token, Some(k)).replace('\n', "\n  ")));
        } else {
            inv.outln(&format!("You can now join any number of control-plane nodes by copying certificate authorities\nand service account keys on each node and then running the following as root:\n\n  {} \\\n\t--control-plane\n", join_command(st, &token.token, None).replace('\n', "\n  ")));
        }
    }
    inv.outln(&format!("Then you can join any number of worker nodes by running the following on each as root:\n\n{} ", join_command(st, &token.token, None)));
    Ok(())
}

// ---- init phase upload-certs ----

fn phase(inv: &mut Invocation, kubeadm_version: &str, rest: &[String]) -> Outcome {
    match rest.first().map(String::as_str) {
        Some("upload-certs") => {}
        Some(other) => {
            return Err(Failure::Error(format!(
                "k8sup-lab: kubeadm init phase {other} is not emulated"
            )))
        }
        None => return Err(usage("kubeadm init phase needs a phase name".into())),
    }
    let f = Flags::parse(
        &rest[1..],
        &["config", "certificate-key"],
        &["upload-certs", "skip-certificate-key-print"],
    )
    .map_err(usage)?;
    if !f.on("upload-certs") {
        inv.outln("[upload-certs] Skipping phase. Please see --upload-certs");
        return Ok(());
    }
    let cfg = match f.get("config") {
        Some(path) => load_config(inv, path, kubeadm_version)?,
        None => Config::default(),
    };
    let mut locked = admin_cluster(inv, &f)?;
    let key = cfg
        .init
        .as_ref()
        .map(|d| cluster::str_at(d, &["certificateKey"]).to_string())
        .filter(|k| !k.is_empty())
        .or_else(|| f.get("certificate-key").map(String::from))
        .unwrap_or_else(|| cluster::random_hex(64));
    if key.len() != 64 || !key.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Failure::Error(format!(
            "error execution phase upload-certs: error uploading certs: error decoding certificate key: encoding/hex: invalid byte: U+{:04X}",
            key.bytes().find(|b| !b.is_ascii_hexdigit()).unwrap_or(b'?')
        )));
    }
    locked.state.certificate_key = Some(key.clone());
    locked.state.certificate_key_expires = cluster::now() + 7200;
    locked.save()?;
    inv.outln("[upload-certs] Storing the certificates in Secret \"kubeadm-certs\" in the \"kube-system\" Namespace");
    inv.outln(&format!("[upload-certs] Using certificate key:\n{key}"));
    Ok(())
}

/// The cluster as reached with this host's admin kubeconfig (`--kubeconfig`, default
/// /etc/kubernetes/admin.conf), locked.
fn admin_cluster(inv: &Invocation, f: &Flags) -> Result<cluster::Locked, Failure> {
    let path = f.get("kubeconfig").unwrap_or(ADMIN_CONF).to_string();
    let text = inv.read(&path).map_err(|_| {
        Failure::Error(format!(
            "failed to load admin kubeconfig: open {path}: no such file or directory"
        ))
    })?;
    let locked = cluster::lock(inv)?;
    let server = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("server: https://"))
        .unwrap_or("")
        .to_string();
    if !locked.state.initialized || server != locked.state.endpoint {
        return Err(Failure::Error(format!(
            "failed to create API client: Get \"https://{server}/api?timeout=32s\": dial tcp {server}: connect: connection refused"
        )));
    }
    if !text.contains(&ca_data(&locked.state.ca_id)) {
        return Err(Failure::Error(format!("Get \"https://{server}/api?timeout=32s\": tls: failed to verify certificate: x509: certificate signed by unknown authority (possibly because of \"crypto/rsa: verification error\" while trying to verify candidate authority certificate \"kubernetes\")")));
    }
    Ok(locked)
}

// ---- token ----

fn token(inv: &mut Invocation, rest: &[String]) -> Outcome {
    let sub = rest.first().map(String::as_str).unwrap_or("");
    let f = Flags::parse(
        rest.get(1..).unwrap_or(&[]),
        &[
            "ttl",
            "description",
            "usages",
            "groups",
            "certificate-key",
            "config",
            "output",
        ],
        &["print-join-command", "dry-run"],
    )
    .map_err(usage)?;
    match sub {
        "generate" => {
            inv.outln(&format!(
                "{}.{}",
                cluster::random_token_chars(6),
                cluster::random_token_chars(16)
            ));
            Ok(())
        }
        "create" => {
            let mut locked = admin_cluster(inv, &f)?;
            let mut spec = json!({});
            if let Some(t) = f.positional.first() {
                spec["token"] = json!(t);
            }
            if let Some(ttl) = f.get("ttl") {
                spec["ttl"] = json!(ttl);
            }
            if let Some(d) = f.get("description") {
                spec["description"] = json!(d);
            }
            if f.values.contains_key("usages") {
                spec["usages"] = json!(f.all("usages"));
            }
            if f.values.contains_key("groups") {
                spec["groups"] = json!(f.all("groups"));
            }
            let t = new_token(Some(&spec), cluster::now()).map_err(Failure::Error)?;
            if locked.state.tokens.iter().any(|x| x.id() == t.id()) {
                return Err(Failure::Error(format!(
                    "failed to create or update bootstrap token with name bootstrap-token-{}: secrets \"bootstrap-token-{}\" already exists",
                    t.id(),
                    t.id()
                )));
            }
            locked.state.tokens.push(t.clone());
            locked.save()?;
            if f.on("print-join-command") {
                let mut cmd = format!(
                    "kubeadm join {} --token {} --discovery-token-ca-cert-hash {} ",
                    locked.state.endpoint, t.token, locked.state.ca_hash
                );
                if let Some(k) = f.get("certificate-key") {
                    cmd.push_str(&format!("--control-plane --certificate-key {k} "));
                }
                inv.outln(&cmd);
            } else {
                inv.outln(&t.token);
            }
            Ok(())
        }
        "list" => {
            let locked = admin_cluster(inv, &f)?;
            let now = cluster::now();
            let tokens: Vec<&BootstrapToken> = locked
                .state
                .tokens
                .iter()
                .filter(|t| t.valid_at(now))
                .collect();
            if tokens.is_empty() {
                return Ok(());
            }
            inv.outln(&format!(
                "{:<25} {:<11} {:<22} {:<24} {:<58} {}",
                "TOKEN", "TTL", "EXPIRES", "USAGES", "DESCRIPTION", "EXTRA GROUPS"
            ));
            for t in tokens {
                let (ttl, expires) = match t.expires {
                    Some(e) => (
                        format!("{}h", e.saturating_sub(now) / 3600),
                        cluster::rfc3339(e),
                    ),
                    None => ("<forever>".into(), "<never>".into()),
                };
                let desc = if t.description.is_empty() {
                    "<none>".to_string()
                } else {
                    t.description.clone()
                };
                let mut usages = t.usages.clone();
                usages.sort();
                inv.outln(&format!(
                    "{:<25} {:<11} {:<22} {:<24} {:<58} {}",
                    t.token,
                    ttl,
                    expires,
                    usages.join(","),
                    desc,
                    t.groups.join(",")
                ));
            }
            Ok(())
        }
        "delete" => {
            if f.positional.is_empty() {
                return Err(Failure::Error("missing subcommand; 'token delete' is missing token of form \"[a-z0-9]{6}.[a-z0-9]{16}\" or \"[a-z0-9]{6}\"".into()));
            }
            let mut locked = admin_cluster(inv, &f)?;
            for arg in &f.positional {
                let id = arg.split('.').next().unwrap_or("").to_string();
                let before = locked.state.tokens.len();
                locked.state.tokens.retain(|t| t.id() != id);
                if locked.state.tokens.len() == before {
                    locked.save()?;
                    return Err(Failure::Error(format!("failed to delete bootstrap token \"{id}\": secrets \"bootstrap-token-{id}\" not found")));
                }
                inv.outln(&format!("bootstrap token \"{id}\" deleted"));
            }
            locked.save()?;
            Ok(())
        }
        "" => Err(usage(
            "missing subcommand; \"token\" is not meant to be run on its own".into(),
        )),
        other => Err(usage(format!(
            "unknown command \"{other}\" for \"kubeadm token\""
        ))),
    }
}

// ---- join ----

const JOIN_FLAGS: &[&str] = &[
    "config",
    "token",
    "discovery-token",
    "tls-bootstrap-token",
    "discovery-file",
    "discovery-token-ca-cert-hash",
    "certificate-key",
    "node-name",
    "cri-socket",
    "ignore-preflight-errors",
    "apiserver-advertise-address",
    "apiserver-bind-port",
    "skip-phases",
    "patches",
];

/// `host:port` → the IP it resolves to in this host (an address, or /etc/hosts).
pub(super) fn resolve(inv: &Invocation, endpoint: &str) -> Result<String, String> {
    let (host, port) = endpoint
        .rsplit_once(':')
        .ok_or_else(|| format!("address {endpoint}: missing port in address"))?;
    if host.parse::<std::net::IpAddr>().is_ok() {
        return Ok(format!("{host}:{port}"));
    }
    let hosts = inv.read("/etc/hosts").unwrap_or_default();
    for line in hosts.lines() {
        let mut words = line.split('#').next().unwrap_or("").split_whitespace();
        if let Some(ip) = words.next() {
            if words.any(|w| w == host) {
                return Ok(format!("{ip}:{port}"));
            }
        }
    }
    Err(format!(
        "Get \"https://{endpoint}/api/v1/namespaces/kube-public/configmaps/cluster-info?timeout=10s\": dial tcp: lookup {host} on 127.0.0.53:53: no such host"
    ))
}

fn join(inv: &mut Invocation, kubeadm_version: &str, rest: &[String]) -> Outcome {
    let f = Flags::parse(
        rest,
        JOIN_FLAGS,
        &[
            "control-plane",
            "discovery-token-unsafe-skip-ca-verification",
            "dry-run",
        ],
    )
    .map_err(usage)?;
    check_config_mix(&f)?;
    let cfg = match f.get("config") {
        Some(path) => load_config(inv, path, kubeadm_version)?,
        None => Config::default(),
    };
    for w in &cfg.warnings {
        inv.errln(w);
    }
    if f.get("config").is_some() && !f.positional.is_empty() {
        return Err(Failure::Error(format!(
            "can not mix '--config' with arguments [{}]",
            f.positional.join(" ")
        )));
    }
    let empty = json!({});
    let doc = cfg.join.clone().unwrap_or_else(|| json!({}));
    if f.get("config").is_some() && cfg.join.is_none() {
        return Err(Failure::Error(
            "no JoinConfiguration kind was found in the YAML file".into(),
        ));
    }
    let node_reg = doc.get("nodeRegistration").unwrap_or(&empty).clone();
    let bt = doc
        .pointer("/discovery/bootstrapToken")
        .cloned()
        .unwrap_or_else(|| json!({}));
    let endpoint = match cluster::str_at(&bt, &["apiServerEndpoint"]) {
        "" => f.positional.first().cloned().unwrap_or_default(),
        e => e.to_string(),
    };
    let token = [
        cluster::str_at(&bt, &["token"]),
        f.get("discovery-token").unwrap_or(""),
        f.get("token").unwrap_or(""),
    ]
    .into_iter()
    .find(|t| !t.is_empty())
    .unwrap_or("")
    .to_string();
    let mut hashes: Vec<String> = bt
        .get("caCertHashes")
        .and_then(|h| h.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    hashes.extend(f.all("discovery-token-ca-cert-hash"));
    let unsafe_skip = bt
        .get("unsafeSkipCAVerification")
        .and_then(|v| v.as_bool())
        .unwrap_or(false)
        || f.on("discovery-token-unsafe-skip-ca-verification");
    let control_plane =
        f.on("control-plane") || doc.get("controlPlane").is_some_and(|c| !c.is_null());
    let cert_key = match doc
        .pointer("/controlPlane/certificateKey")
        .and_then(|v| v.as_str())
    {
        Some(k) if !k.is_empty() => Some(k.to_string()),
        _ => f.get("certificate-key").map(String::from),
    };
    if token.is_empty() && f.get("discovery-file").is_none() {
        return Err(Failure::Error(
            "discovery: Invalid value: \"\": bootstrapToken or file must be set".into(),
        ));
    }
    if endpoint.is_empty() {
        return Err(Failure::Error("discovery.bootstrapToken.apiServerEndpoint: Invalid value: \"\": bootstrapToken.APIServerEndpoint or file must be set".into()));
    }
    if !valid_token(&token) {
        return Err(Failure::Error(format!(
            "discovery.bootstrapToken.token: Invalid value: \"{token}\": the bootstrap token is invalid"
        )));
    }
    if hashes.is_empty() && !unsafe_skip {
        return Err(Failure::Error("discovery.bootstrapToken: Invalid value: \"\": using token-based discovery without caCertHashes can be unsafe. Set unsafeSkipCAVerification as true in your kubeadm config file or pass --discovery-token-unsafe-skip-ca-verification flag to continue".into()));
    }
    for h in &hashes {
        let ok = h
            .strip_prefix("sha256:")
            .is_some_and(|x| x.len() == 64 && x.bytes().all(|b| b.is_ascii_hexdigit()));
        if !ok {
            return Err(Failure::Error(format!(
                "discovery.bootstrapToken.caCertHashes: Invalid value: \"{h}\": invalid hash \"{h}\", expected a \"sha256\" hash"
            )));
        }
    }
    let node_name = match cluster::str_at(&node_reg, &["name"]) {
        "" => f
            .get("node-name")
            .map(String::from)
            .unwrap_or_else(|| inv.hostname().to_lowercase()),
        n => n.to_string(),
    };
    let socket = match cluster::str_at(&node_reg, &["criSocket"]) {
        "" => match f.get("cri-socket") {
            Some(s) => s.to_string(),
            None => runtime::detect_socket(inv).map_err(Failure::Error)?,
        },
        s => s.to_string(),
    };
    let socket = if socket.contains("://") {
        socket
    } else {
        format!("unix://{socket}")
    };
    let profile = inv.profile().map_err(Failure::Error)?;
    let advertise = match doc
        .pointer("/controlPlane/localAPIEndpoint/advertiseAddress")
        .and_then(|v| v.as_str())
    {
        Some(a) if !a.is_empty() => a.to_string(),
        _ => f
            .get("apiserver-advertise-address")
            .unwrap_or(&profile.address)
            .to_string(),
    };

    inv.outln("[preflight] Running pre-flight checks");
    let mut ignored = f.all("ignore-preflight-errors");
    if let Some(list) = node_reg
        .get("ignorePreflightErrors")
        .and_then(|l| l.as_array())
    {
        ignored.extend(list.iter().filter_map(|s| s.as_str().map(String::from)));
    }
    let mut pf = Preflight::new(ignored);
    let ports: &[u16] = if control_plane {
        &[6443, 10259, 10257, 10250, 2379, 2380]
    } else {
        &[10250]
    };
    common_checks(inv, &mut pf, &socket, ports, control_plane, kubeadm_version);
    if inv.path("/etc/kubernetes/pki/ca.crt").exists() {
        pf.error(
            "FileAvailable--etc-kubernetes-pki-ca.crt",
            "/etc/kubernetes/pki/ca.crt already exists".into(),
        );
    }
    pf.finish(inv)?;

    let api_error = |e: String| {
        Failure::Error(format!("error execution phase preflight: couldn't validate the identity of the API Server: {e}"))
    };
    let resolved = resolve(inv, &endpoint).map_err(api_error)?;
    // The join's own time (and a control plane's image pulls), outside the cluster's lock
    // so that joins overlap as they do for real.
    if control_plane {
        let state = cluster::read(inv)?;
        let repository = match state.image_repository.as_str() {
            "" => "registry.k8s.io",
            r => r,
        };
        let wanted = config_images::list(repository, &state.kubernetes_version);
        config_images::pull_all(inv, &socket, &wanted)
            .map_err(|e| Failure::Error(format!("error execution phase preflight: {e}")))?;
        crate::durations::hooks::step("kubeadm-join-control-plane", &node_name, |d| {
            d.steps.kubeadm_join_control_plane_ms
        });
    } else {
        crate::durations::hooks::step("kubeadm-join", &node_name, |d| d.steps.kubeadm_join_ms);
    }
    let mut locked = cluster::lock(inv)?;
    let state = &locked.state;
    let serves = state.initialized
        && (resolve(inv, &state.endpoint).ok().as_deref() == Some(resolved.as_str())
            || state.nodes.values().any(|n| {
                n.control_plane
                    && Some(format!(
                        "{}:{}",
                        n.address,
                        state.endpoint.rsplit(':').next().unwrap_or("6443")
                    )) == Some(resolved.clone())
            }));
    if !serves {
        return Err(api_error(format!("Get \"https://{endpoint}/api/v1/namespaces/kube-public/configmaps/cluster-info?timeout=10s\": dial tcp {resolved}: connect: connection refused")));
    }
    let now = cluster::now();
    let (id, secret) = token.split_once('.').unwrap_or(("", ""));
    match state.tokens.iter().find(|t| t.id() == id && t.valid_at(now)) {
        None => {
            return Err(api_error(format!("token id \"{id}\" is invalid for this cluster or it has expired. Use \"kubeadm token create\" on the control-plane node to create a new valid token")))
        }
        Some(t) if t.token.split_once('.').map(|x| x.1) != Some(secret) => {
            return Err(api_error("failed to verify JWS signature of received cluster info object, can't trust this API Server".into()))
        }
        Some(_) => {}
    }
    if !unsafe_skip
        && !hashes
            .iter()
            .any(|h| h.eq_ignore_ascii_case(&state.ca_hash))
    {
        return Err(api_error(format!(
            "cluster CA found in cluster-info ConfigMap is invalid: none of the public keys \"{}\" are pinned",
            state.ca_hash
        )));
    }
    inv.outln("[preflight] Reading configuration from the cluster...\n[preflight] FYI: You can look at this config file with 'kubectl -n kube-system get cm kubeadm-config -o yaml'");
    if control_plane {
        if state.control_plane_endpoint.is_empty() {
            return Err(Failure::Error("error execution phase preflight: \nOne or more conditions for hosting a new control plane instance is not satisfied.\n\nunable to add a new control plane instance to a cluster that doesn't have a stable controlPlaneEndpoint address\n\nPlease ensure that:\n* The cluster has a stable controlPlaneEndpoint address.\n* The certificates that must be shared among control plane instances are provided.\n".into()));
        }
        let uploaded = state
            .certificate_key
            .as_deref()
            .filter(|_| state.certificate_key_expires > now);
        match (uploaded, cert_key.as_deref()) {
            (_, None) => {
                return Err(Failure::Error("error execution phase preflight: \nOne or more conditions for hosting a new control plane instance is not satisfied.\n\n[failure loading certificate for CA: couldn't load the certificate file /etc/kubernetes/pki/ca.crt: open /etc/kubernetes/pki/ca.crt: no such file or directory]\n\nPlease ensure that:\n* The cluster has a stable controlPlaneEndpoint address.\n* The certificates that must be shared among control plane instances are provided.\n".into()))
            }
            (None, Some(_)) => {
                return Err(Failure::Error("error execution phase control-plane-prepare/download-certs: error downloading certs: error downloading the secret: Secret \"kubeadm-certs\" was not found in the \"kube-system\" Namespace. This Secret might have expired. Please, run `kubeadm init phase upload-certs --upload-certs` on a control plane to generate a new one".into()))
            }
            (Some(k), Some(given)) if k != given => {
                return Err(Failure::Error("error execution phase control-plane-prepare/download-certs: error downloading certs: error decoding secret data with provided key: cipher: message authentication failed".into()))
            }
            _ => {}
        }
    }
    if let Some(n) = state.nodes.get(&node_name) {
        if n.kubelet.running && n.host != inv.hostname() {
            return Err(Failure::Error(format!("error execution phase kubelet-start: a Node with name \"{node_name}\" and status \"Ready\" already exists in the cluster. You must delete the existing Node or change the name of this new joining Node")));
        }
    }
    let kv = super::pkgdb::upstream_version(inv, "kubelet").unwrap_or_default();
    let kvs = cluster::semver(&kv).unwrap_or((0, 0, 0));
    let cvs = cluster::semver(&state.kubernetes_version).unwrap_or((0, 0, 0));
    if (kvs.0, kvs.1) > (cvs.0, cvs.1) {
        return Err(Failure::Error(format!("error execution phase preflight: [preflight] Some fatal errors occurred:\n\t[ERROR KubeletVersion]: the kubelet version is higher than the control plane version. This is not a supported version skew and may lead to a malfunctional cluster. Kubelet version: \"{kv}\" Control plane version: \"{}\"\n[preflight] If you know what you are doing, you can make a check non-fatal with `--ignore-preflight-errors=...`", state.kubernetes_version)));
    }

    let snapshot = locked.state.clone();
    write(inv, "/etc/kubernetes/pki/ca.crt", &ca_pem(&snapshot.ca_id))?;
    if control_plane {
        inv.outln("[control-plane-prepare] Downloading the certificates in Secret \"kubeadm-certs\" in the \"kube-system\" Namespace");
        for (file, user) in [
            ("admin.conf", "kubernetes-admin"),
            ("controller-manager.conf", "system:kube-controller-manager"),
            ("scheduler.conf", "system:kube-scheduler"),
        ] {
            inv.outln(&format!("[kubeconfig] Writing \"{file}\" kubeconfig file"));
            write(
                inv,
                &format!("/etc/kubernetes/{file}"),
                &kubeconfig(&snapshot, user),
            )?;
        }
        for (file, _, text) in control_plane_manifests(&snapshot, &advertise, &node_name) {
            write(inv, &format!("{MANIFESTS}/{file}"), &text)?;
        }
    }
    write(
        inv,
        kubelet::KUBECONFIG,
        &kubeconfig(&snapshot, &format!("system:node:{node_name}")),
    )?;
    let status = start_kubelet(inv, &snapshot, &socket, &node_name, &node_reg)?;
    if status.error.is_some() {
        return Err(kubelet_failure(
            inv,
            "kubelet-start: error uploading crisocket: timed out waiting for the condition",
        ));
    }
    inv.outln("[kubelet-check] Waiting for a healthy kubelet. This can take up to 4m0s\n[kubelet-check] The kubelet is healthy after 1.001195599s\n[kubelet-start] Waiting for the kubelet to perform the TLS Bootstrap");
    let node = new_node(
        inv,
        &snapshot,
        &Registration {
            name: &node_name,
            address: &advertise,
            control_plane,
            node_reg: &node_reg,
            socket: &socket,
        },
        status,
    );
    locked.state.nodes.insert(node_name.clone(), node);
    locked.save()?;
    if control_plane {
        inv.outln(&format!("[mark-control-plane] Marking the node {node_name} as control-plane by adding the labels: [node-role.kubernetes.io/control-plane node.kubernetes.io/exclude-from-external-load-balancers]\n\nThis node has joined the cluster and a new control plane instance was created:\n\n* Certificate signing request was sent to apiserver and approval was received.\n* The Kubelet was informed of the new secure connection details.\n* Control plane label and taint were applied to the new node.\n* The Kubernetes control plane instances scaled up.\n* A new etcd member was added to the local/stacked etcd cluster.\n\nTo start administering your cluster from this node, you need to run the following as a regular user:\n\n\tmkdir -p $HOME/.kube\n\tsudo cp -i /etc/kubernetes/admin.conf $HOME/.kube/config\n\tsudo chown $(id -u):$(id -g) $HOME/.kube/config\n\nRun 'kubectl get nodes' to see this node join the cluster.\n"));
    } else {
        inv.outln("\nThis node has joined the cluster:\n* Certificate signing request was sent to apiserver and a response was received.\n* The Kubelet was informed of the new secure connection details.\n\nRun 'kubectl get nodes' on the control-plane to see this node join the cluster.\n");
    }
    Ok(())
}

// ---- reset ----

fn clear_dir(inv: &Invocation, dir: &str) {
    if let Ok(entries) = std::fs::read_dir(inv.path(dir)) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() && !p.is_symlink() {
                let _ = std::fs::remove_dir_all(&p);
            } else {
                let _ = std::fs::remove_file(&p);
            }
        }
    }
}

fn reset(inv: &mut Invocation, rest: &[String]) -> Outcome {
    let f = Flags::parse(
        rest,
        &[
            "cri-socket",
            "ignore-preflight-errors",
            "cert-dir",
            "config",
            "skip-phases",
        ],
        &["force", "cleanup-tmp-dir", "dry-run"],
    )
    .map_err(usage)?;
    if inv.uid != 0 {
        return Err(Failure::Error("error execution phase preflight: [preflight] Some fatal errors occurred:\n\t[ERROR IsPrivilegedUser]: user is not running as root\n[preflight] If you know what you are doing, you can make a check non-fatal with `--ignore-preflight-errors=...`".into()));
    }
    if !f.on("force") {
        inv.outln("[reset] Reading configuration from the cluster...\n[reset] WARNING: Changes made to this host by 'kubeadm init' or 'kubeadm join' will be reverted.\n[reset] Are you sure you want to proceed? [y/N]: ");
        let mut answer = String::new();
        let _ = std::io::stdin().read_line(&mut answer);
        if !matches!(answer.trim(), "y" | "Y") {
            return Err(Failure::Error("error execution phase preflight: won't proceed; the user didn't answer (Y|y) in order to continue".into()));
        }
    }
    inv.outln("[preflight] Running pre-flight checks");
    // The remove-etcd-member phase: a stacked member leaves the cluster first; when etcd
    // refuses, kubeadm warns and goes on.
    if inv.path(&format!("{MANIFESTS}/etcd.yaml")).exists() {
        if let Err(e) = super::etcd::reset_remove_member(inv) {
            inv.errln(&klog_warning(inv, "removeetcdmember.go:106", &format!("[reset] Failed to remove etcd member: {e}, please manually remove this etcd member using etcdctl")));
        }
    }
    let host = inv.hostname();
    if inv.path(cluster::CLUSTER_DIR).is_dir() {
        let mut locked = cluster::lock(inv)?;
        let was_cp = locked
            .state
            .nodes
            .values()
            .any(|n| n.host == host && n.control_plane);
        for n in locked.state.nodes.values_mut().filter(|n| n.host == host) {
            n.kubelet = KubeletStatus {
                running: false,
                error: Some("kubelet.service is not active".into()),
            };
        }
        if was_cp {
            let others = locked
                .state
                .nodes
                .values()
                .filter(|n| n.control_plane && n.host != host)
                .count();
            if others == 0 {
                // The last etcd member's data is deleted: the cluster is gone.
                let applied = locked.state.applied;
                locked.state = ClusterState {
                    applied,
                    ..Default::default()
                };
            } else {
                locked
                    .state
                    .nodes
                    .retain(|_, n| !(n.host == host && n.control_plane));
            }
        }
        locked.save()?;
    }
    if dir_not_empty(inv, "/var/lib/etcd") {
        clear_dir(inv, "/var/lib/etcd");
        inv.outln("[reset] Deleted contents of the etcd data directory: /var/lib/etcd");
    }
    inv.outln("[reset] Stopping the kubelet service");
    let _ = std::fs::remove_file(inv.path(&format!(
        "{}/kubelet.service.active",
        crate::profile::SYSTEMD_STATE_DIR
    )));
    inv.outln("[reset] Unmounting mounted directories in \"/var/lib/kubelet\"");
    for d in [MANIFESTS, "/var/lib/kubelet", "/etc/kubernetes/pki"] {
        clear_dir(inv, d);
    }
    inv.outln("[reset] Deleting contents of directories: [/etc/kubernetes/manifests /var/lib/kubelet /etc/kubernetes/pki]");
    let files = [
        "admin.conf",
        "super-admin.conf",
        "kubelet.conf",
        "bootstrap-kubelet.conf",
        "controller-manager.conf",
        "scheduler.conf",
    ];
    for file in files {
        let _ = std::fs::remove_file(inv.path(&format!("/etc/kubernetes/{file}")));
    }
    let list: Vec<String> = files
        .iter()
        .map(|f| format!("/etc/kubernetes/{f}"))
        .collect();
    inv.outln(&format!("[reset] Deleting files: [{}]", list.join(" ")));
    inv.outln("\nThe reset process does not clean CNI configuration. To do so, you must remove /etc/cni/net.d\n\nThe reset process does not reset or clean up iptables rules or IPVS tables.\nIf you wish to reset iptables, you must do so manually by using the \"iptables\" command.\n\nIf your cluster was setup to utilize IPVS, run ipvsadm --clear (or similar)\nto reset your system's IPVS tables.\n\nThe reset process does not clean your kubeconfig files and you must remove them manually.\nPlease, check the contents of the $HOME/.kube/config file.");
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests;
