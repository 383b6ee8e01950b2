//! Reading an inventory file into an [`Inventory`], or into every problem it has.
//!
//! The file is parsed into a spanned TOML tree (all syntax errors at once), then
//! walked table by table: unknown fields, wrong types and bad values are all
//! collected with their places. Checks that relate several values (duplicates,
//! overlapping networks, what the package source can install) run last, over
//! what was read.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;
use k8sup_shell::ShellArg;
use toml::de::{DeTable, DeValue};

use crate::diagnostic::{did_you_mean, quoted, Diagnostic, InventoryError};
use crate::model::*;
use crate::reader::{Located, Reader, Table};
use crate::syntax;
use crate::versions::{KubeVersion, VersionError};

/// An inventory larger than this is refused before parsing: no real cluster
/// description comes near it, and parsing megabytes of TOML helps no one.
pub const MAX_INVENTORY_BYTES: usize = 4 * 1024 * 1024;

/// What the loader needs from the controller: where `~` is, who the local user
/// is, and where relative paths start. Tests pass fixed values.
#[derive(Debug, Clone)]
pub struct LoadContext {
    pub home: PathBuf,
    pub local_user: String,
    /// Relative paths in the inventory are relative to this directory (the file's own).
    pub base_dir: PathBuf,
}

/// Whether loading an inventory opens the files it names on this machine.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LocalFiles {
    /// Refuse an identity file or manifest that cannot be read (what connecting needs).
    #[default]
    Open,
    /// Take their paths as written (for commands that never connect).
    Skip,
}

impl LoadContext {
    /// The context of this process, for an inventory at `path`.
    pub fn for_file(path: &Path) -> LoadContext {
        let home = std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/root"));
        let local_user = std::env::var("USER")
            .ok()
            .filter(|u| syntax::user_name(u).is_ok())
            .unwrap_or_else(|| "root".to_string());
        let base_dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        LoadContext {
            home,
            local_user,
            base_dir,
        }
    }

    /// Expands `~/` and makes a relative path relative to the inventory's directory.
    pub fn resolve(&self, path: &str) -> PathBuf {
        if path == "~" {
            return self.home.clone();
        }
        if let Some(rest) = path.strip_prefix("~/") {
            return self.home.join(rest);
        }
        let p = Path::new(path);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base_dir.join(p)
        }
    }
}

impl Inventory {
    /// Reads and validates the inventory at `path`.
    pub fn load(path: &Path) -> Result<Inventory, InventoryError> {
        Inventory::load_with(path, LocalFiles::Open)
    }

    /// Reads and validates the inventory at `path` without opening the files it
    /// names (identity files, a CNI manifest), for the commands that read only
    /// k8sup's own state on this machine (`history`).
    pub fn load_local_state_only(path: &Path) -> Result<Inventory, InventoryError> {
        Inventory::load_with(path, LocalFiles::Skip)
    }

    fn load_with(path: &Path, files: LocalFiles) -> Result<Inventory, InventoryError> {
        let ctx = LoadContext::for_file(path);
        // One byte past the cap is enough to refuse it: a pipe or a device
        // (`-i /dev/zero`) is never read to its end.
        let read = std::fs::File::open(path).and_then(|file| {
            use std::io::Read;
            let mut bytes = Vec::new();
            file.take(MAX_INVENTORY_BYTES as u64 + 1)
                .read_to_end(&mut bytes)
                .map(|_| bytes)
        });
        match read {
            Ok(bytes) => Inventory::from_bytes_with(path, &bytes, &ctx, files),
            Err(e) => Err(InventoryError::new(
                path,
                "",
                vec![Diagnostic::new(
                    format!("cannot read the inventory: {e}"),
                    None,
                )],
            )),
        }
    }

    /// Validates inventory text; `path` only names the file in messages.
    pub fn from_bytes(
        path: &Path,
        bytes: &[u8],
        ctx: &LoadContext,
    ) -> Result<Inventory, InventoryError> {
        Inventory::from_bytes_with(path, bytes, ctx, LocalFiles::Open)
    }

    /// [`Inventory::from_bytes`], opening the files it names or not.
    pub fn from_bytes_with(
        path: &Path,
        bytes: &[u8],
        ctx: &LoadContext,
        files: LocalFiles,
    ) -> Result<Inventory, InventoryError> {
        if bytes.len() > MAX_INVENTORY_BYTES {
            let message = format!(
                "the inventory is larger than {0} MiB: k8sup reads inventories of at most {0} MiB",
                MAX_INVENTORY_BYTES / (1024 * 1024)
            );
            return Err(InventoryError::new(
                path,
                "",
                vec![Diagnostic::new(message, None)],
            ));
        }
        let text = match std::str::from_utf8(bytes) {
            Ok(text) => text,
            Err(e) => {
                let good = &bytes[..e.valid_up_to()];
                let text = String::from_utf8_lossy(good).into_owned();
                let at = text.len();
                return Err(InventoryError::new(
                    path,
                    &text,
                    vec![
                        Diagnostic::new("the inventory is not valid UTF-8 text", Some(at..at))
                            .with_help("save the file as UTF-8"),
                    ],
                ));
            }
        };
        let (doc, syntax_errors) = DeTable::parse_recoverable(text);
        if !syntax_errors.is_empty() {
            let diagnostics = syntax_errors
                .iter()
                .map(|e| {
                    Diagnostic::new(
                        format!("not valid TOML: {}", e.message().trim_end()),
                        e.span(),
                    )
                })
                .collect();
            return Err(InventoryError::new(path, text, diagnostics));
        }
        let mut loader = Loader {
            r: Reader::default(),
            ctx,
            files,
        };
        let inventory = loader.inventory(&doc);
        let mut diagnostics = loader.r.diagnostics;
        match inventory {
            Some(inventory) if diagnostics.is_empty() => Ok(inventory),
            _ => {
                diagnostics.sort_by_key(|d| d.span.as_ref().map_or(usize::MAX, |s| s.start));
                if diagnostics.is_empty() {
                    // A value was refused without a message: never leave the user guessing.
                    diagnostics.push(Diagnostic::new("the inventory is not valid", None));
                }
                Err(InventoryError::new(path, text, diagnostics))
            }
        }
    }
}

const ROOT_KEYS: &[&str] = &[
    "cluster",
    "packages",
    "images",
    "ssh",
    "hosts",
    "certificates",
    "upgrade",
];
const UPGRADE_KEYS: &[&str] = &["max_unavailable", "drain", "drain_timeout"];
const CLUSTER_KEYS: &[&str] = &[
    "name",
    "kubernetes_version",
    "runtime",
    "cgroup_driver",
    "cni",
    "pod_cidr",
    "service_cidr",
    "dns_domain",
    "control_plane_endpoint",
    "control_plane_lb",
    "control_plane_lb_port",
    "apiserver_cert_sans",
    "image_repository",
    "registry_mirrors",
    "extra_args",
    "cni_manifest",
    "cni_manifest_sha256",
];
const PACKAGES_KEYS: &[&str] = &[
    "source",
    "kubernetes_repo",
    "docker_repo",
    "cri_dockerd",
    "cri_dockerd_sha256",
    "containerd_version",
    "docker_version",
    "files_mirror",
    "binary_dir",
];
const SSH_KEYS: &[&str] = &[
    "user",
    "port",
    "identity_file",
    "known_hosts",
    "host_key_checking",
    "become",
    "jump_host",
    "connect_timeout",
    "command_timeout",
    "parallelism",
];
const HOST_SSH_KEYS: &[&str] = &[
    "user",
    "port",
    "identity_file",
    "known_hosts",
    "host_key_checking",
    "become",
    "jump_host",
    "connect_timeout",
    "command_timeout",
];
const HOST_KEYS: &[&str] = &[
    "name",
    "address",
    "internal_address",
    "roles",
    "arch",
    "labels",
    "taints",
    "ssh",
    "remove",
];
const ROLE_NAMES: &[&str] = &["master", "control-plane", "node", "worker"];

struct Loader<'c> {
    r: Reader,
    ctx: &'c LoadContext,
    files: LocalFiles,
}

/// A host as read, with the places later cross-checks point at.
struct ReadHost {
    host: Host,
    name_span: Range<usize>,
    address_span: Range<usize>,
    internal_span: Range<usize>,
}

impl Loader<'_> {
    fn inventory(&mut self, doc: &toml::Spanned<DeTable<'_>>) -> Option<Inventory> {
        let root = self.r.root(doc, ROOT_KEYS);
        let cluster_value = root.get("cluster");
        if cluster_value.is_none() {
            self.r.error_help(
                "the inventory has no [cluster] table",
                Some(0..0),
                "add [cluster] with at least `name` and `kubernetes_version`",
            );
        }
        let cluster_table = cluster_value.and_then(|v| self.r.table(v, "[cluster]", CLUSTER_KEYS));
        let ssh_table = root
            .get("ssh")
            .and_then(|v| self.r.table(v, "[ssh]", SSH_KEYS));
        let defaults = self.ssh_settings(ssh_table.as_ref(), None);
        let parallelism = self.parallelism(ssh_table.as_ref());
        let hosts = self.hosts(&root, defaults.as_ref());
        let packages = self.packages(&root);
        let images = self.images(&root);
        let certificates = self.certificates(&root);
        let upgrade = self.upgrade(&root);
        let cluster = cluster_table
            .as_ref()
            .and_then(|t| self.cluster_fields(t, &hosts));

        let (cluster, packages, images, defaults, parallelism, certificates, upgrade) = (
            cluster?,
            packages?,
            images?,
            defaults?,
            parallelism?,
            certificates?,
            upgrade?,
        );
        self.cross_checks(&cluster, &packages, &hosts, cluster_table.as_ref());
        let _ = defaults;
        Some(Inventory {
            cluster,
            packages,
            images,
            hosts: hosts.into_iter().map(|h| h.host).collect(),
            parallelism,
            certificates,
            upgrade,
        })
    }

    // ----- [cluster] -----

    /// Reads [cluster].
    fn cluster_fields(&mut self, t: &Table<'_, '_>, hosts: &[ReadHost]) -> Option<Cluster> {
        let name = self.r.required_str(t, "name").and_then(|n| {
            self.check(&n, syntax::rfc1123_label, "the cluster name")
                .then_some(n.value)
        });
        let version = self.r.required_str(t, "kubernetes_version").and_then(|v| {
            match KubeVersion::parse(&v.value) {
                Ok(version) => Some(version),
                Err(VersionError::Malformed) => {
                    self.r.error_help(
                        format!("kubernetes_version {} is not a version", quoted(&v.value)),
                        Some(v.span),
                        "write it as \"1.30.4\", or \"1.30\" for the newest 1.30 release",
                    );
                    None
                }
                Err(VersionError::Unknown { oldest, newest }) => {
                    self.r.error_help(
                        format!(
                            "k8sup does not know how to install Kubernetes {}",
                            quoted(&v.value)
                        ),
                        Some(v.span),
                        format!("k8sup installs Kubernetes {oldest} to {newest}"),
                    );
                    None
                }
            }
        });
        let runtime = self.keyword(t, "runtime", "runtime", Runtime::from_name, Runtime::NAMES);
        let cgroup_driver = self.keyword(
            t,
            "cgroup_driver",
            "cgroup_driver",
            CgroupDriver::from_name,
            CgroupDriver::NAMES,
        );
        let cni = self.keyword(t, "cni", "cni", Cni::from_name, Cni::NAMES);
        let pod_cidr = self.cidr(t, "pod_cidr", "10.244.0.0/16");
        let service_cidr = self.cidr(t, "service_cidr", "10.96.0.0/12");
        let dns_domain = self.optional(t, "dns_domain", syntax::dns_name, "dns_domain");
        let endpoint = self.endpoint(t, hosts);
        let lb = self.control_plane_lb(t, hosts);
        let sans = self.list(
            t,
            "apiserver_cert_sans",
            san,
            "an apiserver_cert_sans entry",
        );
        let image_repository = self.optional(
            t,
            "image_repository",
            syntax::image_reference,
            "image_repository",
        );
        let mirrors = self.list(
            t,
            "registry_mirrors",
            syntax::registry_mirror,
            "a registry mirror",
        );
        let extra_args = self.extra_args(t);
        let cni_manifest = self.cni_manifest(t);

        if let Some(service) = &service_cidr {
            let too_small = match service {
                IpNet::V4(n) => n.prefix_len() > 28,
                IpNet::V6(n) => n.prefix_len() > 124,
            };
            if too_small {
                let span = self.r.str(t, "service_cidr").map(|s| s.span);
                self.r.error(
                    format!("service_cidr {service} is too small: the cluster DNS service takes its 10th address"),
                    span,
                );
            }
        }
        let cluster = Cluster {
            name: name?,
            kubernetes_version: version?,
            runtime: runtime.unwrap_or(Some(Runtime::Containerd))?,
            cgroup_driver: cgroup_driver.unwrap_or(Some(CgroupDriver::Systemd))?,
            cni: cni.unwrap_or(Some(Cni::Flannel))?,
            pod_cidr: pod_cidr?,
            service_cidr: service_cidr?,
            dns_domain: dns_domain?.unwrap_or_else(|| "cluster.local".to_string()),
            control_plane_endpoint: match lb? {
                ControlPlaneLb::Local { port } => Endpoint {
                    host: "127.0.0.1".into(),
                    port,
                },
                ControlPlaneLb::External => endpoint?,
            },
            control_plane_lb: lb?,
            apiserver_cert_sans: sans?,
            image_repository: image_repository?,
            registry_mirrors: mirrors?,
            extra_args: extra_args?,
            cni_manifest: cni_manifest?,
        };
        if cluster.cni == Cni::Calico && cluster.cni_manifest.is_none() {
            self.r.error_help(
                "cni \"calico\" needs cni_manifest: k8sup ships no Calico manifest",
                t.get("cni").map(|v| v.span()),
                "set cni_manifest to the manifest's URL (e.g. https://raw.githubusercontent.com/projectcalico/calico/v3.28.1/manifests/calico.yaml) or a file on this machine",
            );
        }
        Some(cluster)
    }

    /// A keyword field: `None` when absent, `Some(None)` when refused.
    fn keyword<T>(
        &mut self,
        t: &Table<'_, '_>,
        key: &str,
        field: &str,
        parse: fn(&str) -> Option<T>,
        names: &[&str],
    ) -> Option<Option<T>> {
        let Some(value) = self.r.str(t, key) else {
            // Absent, or of the wrong type (already reported).
            return t.get(key).map(|_| None);
        };
        if let Some(k) = parse(&value.value) {
            return Some(Some(k));
        }
        let message = format!(
            "{field} {} is not one of {}",
            quoted(&value.value),
            quoted_list(names)
        );
        match did_you_mean(&value.value, names.iter().copied()) {
            Some(help) => self.r.error_help(message, Some(value.span), help),
            None => self.r.error(message, Some(value.span)),
        }
        Some(None)
    }

    fn cidr(&mut self, t: &Table<'_, '_>, key: &str, default: &str) -> Option<IpNet> {
        let Some(value) = self.r.str(t, key) else {
            return if t.get(key).is_some() {
                None
            } else {
                default.parse().ok()
            };
        };
        let net: IpNet = match value.value.parse() {
            Ok(net) => net,
            Err(_) => {
                self.r.error_help(
                    format!("{key} {} is not a CIDR", quoted(&value.value)),
                    Some(value.span),
                    format!("write an address and prefix length, like \"{default}\""),
                );
                return None;
            }
        };
        if !matches!(net, IpNet::V4(_)) {
            self.r.error(
                format!("{key} {net} is IPv6; k8sup builds IPv4 clusters"),
                Some(value.span),
            );
            return None;
        }
        if net.trunc() != net {
            self.r.error_help(
                format!("{key} {net} has bits set after its prefix length"),
                Some(value.span),
                format!("did you mean \"{}\"?", net.trunc()),
            );
            return None;
        }
        Some(net)
    }

    fn endpoint(&mut self, t: &Table<'_, '_>, hosts: &[ReadHost]) -> Option<Endpoint> {
        let Some(value) = self.r.str(t, "control_plane_endpoint") else {
            if t.get("control_plane_endpoint").is_some() {
                return None;
            }
            // Default: the first master's internal address. Without a master the
            // "no master" error is already reported; any placeholder will do.
            let host = hosts
                .iter()
                .find(|h| h.host.roles.master)
                .map(|h| h.host.internal_address.to_string())
                .unwrap_or_default();
            return Some(Endpoint { host, port: 6443 });
        };
        match parse_host_port(&value.value, 6443) {
            Ok((host, port)) => Some(Endpoint { host, port }),
            Err(why) => {
                self.r.error_help(
                    format!("control_plane_endpoint {} {why}", quoted(&value.value)),
                    Some(value.span),
                    "write host:port, like \"10.0.0.10:6443\" or \"k8s.example.org:6443\"",
                );
                None
            }
        }
    }

    /// `control_plane_lb` and `control_plane_lb_port`: "local" by default with two or
    /// more masters and no endpoint; "external" is the endpoint the user gives.
    fn control_plane_lb(
        &mut self,
        t: &Table<'_, '_>,
        hosts: &[ReadHost],
    ) -> Option<ControlPlaneLb> {
        let endpoint_given = t.get("control_plane_endpoint").is_some();
        let lb_span = t.get("control_plane_lb").map(|v| v.span());
        let chosen = match self.r.str(t, "control_plane_lb") {
            None if t.get("control_plane_lb").is_some() => return None,
            None => None,
            Some(v) => match v.value.as_str() {
                "local" | "external" => Some(v.value),
                other => {
                    let message = format!(
                        "control_plane_lb {} is not one of {}",
                        quoted(other),
                        quoted_list(ControlPlaneLb::NAMES)
                    );
                    self.r.error_help(
                        message,
                        Some(v.span),
                        "\"local\": haproxy on every host; \"external\": your own balancer at control_plane_endpoint",
                    );
                    return None;
                }
            },
        };
        let masters = hosts.iter().filter(|h| h.host.roles.master).count();
        let local = match chosen.as_deref() {
            Some("local") => true,
            Some(_) => false,
            None => masters >= 2 && !endpoint_given,
        };
        let port_value = self.r.int(t, "control_plane_lb_port");
        if t.get("control_plane_lb_port").is_some() && port_value.is_none() {
            return None;
        }
        if local && endpoint_given {
            self.r.error_help(
                "control_plane_endpoint and control_plane_lb = \"local\" exclude each other",
                lb_span.or_else(|| t.get("control_plane_endpoint").map(|v| v.span())),
                "with a local balancer every host reaches the API server at 127.0.0.1; remove control_plane_endpoint, or set control_plane_lb = \"external\" to use yours",
            );
            return None;
        }
        if chosen.as_deref() == Some("external") && !endpoint_given {
            self.r.error_help(
                "control_plane_lb = \"external\" needs control_plane_endpoint",
                lb_span,
                "set control_plane_endpoint to your load balancer's host:port",
            );
            return None;
        }
        if !local {
            if let Some(port) = port_value {
                self.r.error_help(
                    "control_plane_lb_port is the port of k8sup's local balancer, which this cluster does not run",
                    Some(port.span),
                    "remove it, or set control_plane_lb = \"local\"",
                );
                return None;
            }
            return Some(ControlPlaneLb::External);
        }
        let port = match port_value {
            None => ControlPlaneLb::DEFAULT_LOCAL_PORT,
            Some(p) => {
                match u16::try_from(p.value) {
                    Ok(6443) => {
                        self.r.error_help(
                        "control_plane_lb_port 6443 is the API server's own port on the masters",
                        Some(p.span),
                        format!("pick another, like the default {}", ControlPlaneLb::DEFAULT_LOCAL_PORT),
                    );
                        return None;
                    }
                    Ok(port) if port > 0 => port,
                    _ => {
                        self.r.error(
                            format!(
                                "control_plane_lb_port {} is not a TCP port (1 to 65535)",
                                p.value
                            ),
                            Some(p.span),
                        );
                        return None;
                    }
                }
            }
        };
        Some(ControlPlaneLb::Local { port })
    }

    fn extra_args(
        &mut self,
        t: &Table<'_, '_>,
    ) -> Option<BTreeMap<Component, BTreeMap<String, ShellArg>>> {
        let mut out = BTreeMap::new();
        let Some(value) = t.get("extra_args") else {
            return Some(out);
        };
        let table = self
            .r
            .table(value, "[cluster.extra_args]", Component::NAMES)?;
        let mut ok = true;
        for component in Component::NAMES {
            let Some(args) = self.r.str_map(&table, component) else {
                ok &= table.get(component).is_none();
                continue;
            };
            let mut flags = BTreeMap::new();
            for (flag, value) in args {
                let flag_ok =
                    self.check(&flag, syntax::flag_name, &format!("the {component} flag"));
                let value_ok = self.check(
                    &value,
                    syntax::printable,
                    &format!("the value of {component} flag `{}`", flag.value),
                );
                let kind_ok = flag_ok && value_ok && self.component_value(component, &flag, &value);
                match ShellArg::new(value.value) {
                    Ok(arg) if kind_ok => {
                        flags.insert(flag.value, arg);
                    }
                    _ => ok = false,
                }
            }
            if let Some(c) = Component::from_name(component) {
                out.insert(c, flags);
            }
        }
        ok.then_some(out)
    }

    /// Opens a file the inventory names, to refuse one that cannot be read; with
    /// [`LocalFiles::Skip`], does nothing.
    fn open(&self, path: &Path) -> std::io::Result<()> {
        match self.files {
            LocalFiles::Open => std::fs::File::open(path).map(drop),
            LocalFiles::Skip => Ok(()),
        }
    }

    /// What one component can carry. kube-proxy's flags are fields of kubeadm's
    /// KubeProxyConfiguration: only those k8sup maps, with values of their type. A
    /// kubelet value reaches `kubeadm-flags.env`, whose values systemd splits at
    /// white space into separate flags: a value with white space cannot be carried.
    fn component_value(
        &mut self,
        component: &str,
        flag: &Located<String>,
        value: &Located<String>,
    ) -> bool {
        if component == Component::KubeProxy.as_str() {
            let Some(&(_, _, kind)) = KUBE_PROXY_FLAGS.iter().find(|(f, _, _)| *f == flag.value)
            else {
                let known: Vec<&str> = KUBE_PROXY_FLAGS.iter().map(|(f, _, _)| *f).collect();
                let message = format!(
                    "the kube-proxy flag {} cannot be set: kubeadm configures kube-proxy \
                     through KubeProxyConfiguration, and k8sup knows these of its flags: {}",
                    quoted(&flag.value),
                    known.join(", ")
                );
                match did_you_mean(&flag.value, known.iter().copied()) {
                    Some(help) => self.r.error_help(message, Some(flag.span.clone()), help),
                    None => self.r.error(message, Some(flag.span.clone())),
                }
                return false;
            };
            if let Err(expected) = kind.check(&value.value) {
                self.r.error(
                    format!(
                        "the value of kube-proxy flag `{}` {} is not {expected}",
                        flag.value,
                        quoted(&value.value)
                    ),
                    Some(value.span.clone()),
                );
                return false;
            }
        }
        if component == Component::Kubelet.as_str() && value.value.contains(char::is_whitespace) {
            self.r.error_help(
                format!(
                    "the value of kubelet flag `{}` {} holds white space, which systemd \
                     splits into separate kubelet flags (kubeadm-flags.env)",
                    flag.value,
                    quoted(&value.value)
                ),
                Some(value.span.clone()),
                "write the value without spaces (lists are comma-separated)",
            );
            return false;
        }
        true
    }

    /// `cni_manifest` (a URL or a file here) and its optional `cni_manifest_sha256`.
    fn cni_manifest(&mut self, t: &Table<'_, '_>) -> Option<Option<ManifestSource>> {
        let location = self.r.str(t, "cni_manifest");
        let sha = self.r.str(t, "cni_manifest_sha256");
        if location.is_none() {
            if let Some(sha) = sha {
                self.r.error(
                    "cni_manifest_sha256 is set but cni_manifest is not",
                    Some(sha.span),
                );
                return None;
            }
            return t.get("cni_manifest").is_none().then_some(None);
        }
        let location = location?;
        let sha256 = match sha {
            Some(s) if s.value.len() == 64 && s.value.bytes().all(|b| b.is_ascii_hexdigit()) => {
                Some(s.value.to_ascii_lowercase())
            }
            Some(s) => {
                self.r.error(
                    format!(
                        "cni_manifest_sha256 {} is not a sha256 (64 hex digits)",
                        quoted(&s.value)
                    ),
                    Some(s.span),
                );
                return None;
            }
            None => None,
        };
        if location.value.contains("://") {
            if !self.check(&location, syntax::http_url, "cni_manifest") {
                return None;
            }
            return Some(Some(ManifestSource::Url {
                url: location.value,
                sha256,
            }));
        }
        let path = self.ctx.resolve(&location.value);
        if let Err(e) = self.open(&path) {
            self.r.error(
                format!("cannot read cni_manifest {}: {e}", quoted(&location.value)),
                Some(location.span),
            );
            return None;
        }
        Some(Some(ManifestSource::File { path, sha256 }))
    }

    // ----- [packages] and [images] -----

    fn packages(&mut self, root: &Table<'_, '_>) -> Option<Packages> {
        let table = match root.get("packages") {
            Some(v) => Some(self.r.table(v, "[packages]", PACKAGES_KEYS)?),
            None => None,
        };
        let Some(t) = table else {
            return Some(Packages {
                source: PackageSource::Repo,
                kubernetes_repo: None,
                docker_repo: None,
                cri_dockerd: None,
                cri_dockerd_sha256: BTreeMap::new(),
                containerd_version: None,
                docker_version: None,
                files_mirror: None,
                binary_dir: None,
            });
        };
        let source = self.keyword(
            &t,
            "source",
            "packages.source",
            PackageSource::from_name,
            PackageSource::NAMES,
        );
        let kubernetes_repo =
            self.optional(&t, "kubernetes_repo", syntax::http_url, "kubernetes_repo");
        let docker_repo = self.optional(&t, "docker_repo", syntax::http_url, "docker_repo");
        let cri_dockerd = self.optional(&t, "cri_dockerd", syntax::printable, "cri_dockerd");
        let binary_dir = self.optional(&t, "binary_dir", syntax::printable, "binary_dir");
        let cri_dockerd_sha256 = self.per_arch_sha256(&t, "cri_dockerd_sha256");
        let containerd_version = self.optional(
            &t,
            "containerd_version",
            syntax::release_version,
            "packages.containerd_version",
        );
        let docker_version = self.optional(
            &t,
            "docker_version",
            syntax::release_version,
            "packages.docker_version",
        );
        let files_mirror = self.optional(&t, "files_mirror", syntax::http_url, "files_mirror");
        Some(Packages {
            source: source.unwrap_or(Some(PackageSource::Repo))?,
            kubernetes_repo: kubernetes_repo?,
            docker_repo: docker_repo?,
            // A file on the controller is relative to the inventory, like every path.
            cri_dockerd: cri_dockerd?.map(|c| {
                if c.contains("://") {
                    c
                } else {
                    self.ctx.resolve(&c).to_string_lossy().into_owned()
                }
            }),
            cri_dockerd_sha256: cri_dockerd_sha256?,
            containerd_version: containerd_version?,
            docker_version: docker_version?,
            files_mirror: files_mirror?.map(|m| m.trim_end_matches('/').to_string()),
            binary_dir: binary_dir?.map(|d| self.ctx.resolve(&d)),
        })
    }

    /// A sha256 for every architecture (a string) or per architecture (a table
    /// `{ amd64 = "...", arm64 = "..." }`); empty when absent, `None` when refused.
    fn per_arch_sha256(&mut self, t: &Table<'_, '_>, key: &str) -> Option<BTreeMap<Arch, String>> {
        let Some(value) = t.get(key) else {
            return Some(BTreeMap::new());
        };
        let mut out = BTreeMap::new();
        if let toml::de::DeValue::String(_) = value.get_ref() {
            let sha = self.r.str(t, key)?;
            if !self.check(&sha, syntax::sha256_hex, key) {
                return None;
            }
            for arch in Arch::NAMES.iter().filter_map(|n| Arch::from_name(n)) {
                out.insert(arch, sha.value.to_ascii_lowercase());
            }
            return Some(out);
        }
        let what = format!("packages.{key}");
        let table = self.r.table(value, what, Arch::NAMES)?;
        let mut ok = true;
        for arch_name in Arch::NAMES {
            if let Some(sha) = self.r.str(&table, arch_name) {
                ok &= self.check(&sha, syntax::sha256_hex, key);
                if let Some(arch) = Arch::from_name(arch_name) {
                    out.insert(arch, sha.value.to_ascii_lowercase());
                }
            } else if table.get(arch_name).is_some() {
                ok = false;
            }
        }
        ok.then_some(out)
    }

    // ----- [upgrade] -----

    fn upgrade(&mut self, root: &Table<'_, '_>) -> Option<Upgrade> {
        let mut upgrade = Upgrade::default();
        let Some(value) = root.get("upgrade") else {
            return Some(upgrade);
        };
        let table = self.r.table(value, "[upgrade]", UPGRADE_KEYS)?;
        let mut ok = true;
        if let Some(value) = table.get("max_unavailable") {
            match self.max_unavailable(value) {
                Some(m) => upgrade.max_unavailable = m,
                None => ok = false,
            }
        }
        match self.r.bool(&table, "drain") {
            Some(drain) => upgrade.drain = drain.value,
            None => ok &= table.get("drain").is_none(),
        }
        match self.r.str(&table, "drain_timeout") {
            Some(text) => match humantime::parse_duration(&text.value) {
                Ok(d) if !d.is_zero() => upgrade.drain_timeout = d,
                Ok(_) => {
                    self.r.error_help(
                        "drain_timeout is zero: a drain would give up at once",
                        Some(text.span),
                        "write how long a drain may wait for its pods, like \"10m\"",
                    );
                    ok = false;
                }
                Err(_) => {
                    self.r.error_help(
                        format!("drain_timeout {:?} is not a duration", text.value),
                        Some(text.span),
                        "write a number and a unit, like \"90s\" or \"10m\"",
                    );
                    ok = false;
                }
            },
            None => ok &= table.get("drain_timeout").is_none(),
        }
        ok.then_some(upgrade)
    }

    /// `max_unavailable`: a whole number of nodes (at least 1) or a percentage
    /// string ("1%" to "100%").
    fn max_unavailable(&mut self, value: &toml::Spanned<DeValue<'_>>) -> Option<MaxUnavailable> {
        let help = "write a number of nodes (max_unavailable = 2) or a percentage of the workers (max_unavailable = \"10%\")";
        match value.get_ref() {
            DeValue::Integer(i) => {
                let n = i64::from_str_radix(&i.as_str().replace('_', ""), i.radix()).ok();
                match n.and_then(|n| u32::try_from(n).ok()).filter(|n| *n >= 1) {
                    Some(n) => Some(MaxUnavailable::Count(n)),
                    None => {
                        self.r.error_help(
                            format!(
                                "max_unavailable {} is not a number of nodes of at least 1",
                                i.as_str()
                            ),
                            Some(value.span()),
                            help,
                        );
                        None
                    }
                }
            }
            DeValue::String(s) => {
                let percent = s
                    .strip_suffix('%')
                    .filter(|d| {
                        !d.is_empty() && d.len() <= 3 && d.bytes().all(|b| b.is_ascii_digit())
                    })
                    .and_then(|d| d.parse::<u32>().ok())
                    .filter(|p| (1..=100).contains(p));
                match percent {
                    Some(p) => Some(MaxUnavailable::Percent(p)),
                    None => {
                        self.r.error_help(
                            format!("max_unavailable {s:?} is not a percentage from 1% to 100%"),
                            Some(value.span()),
                            help,
                        );
                        None
                    }
                }
            }
            other => {
                self.r.error_help(
                    format!(
                        "max_unavailable is {}, not a number or a percentage",
                        crate::reader::type_name(other)
                    ),
                    Some(value.span()),
                    help,
                );
                None
            }
        }
    }

    // ----- [certificates] -----

    fn certificates(&mut self, root: &Table<'_, '_>) -> Option<Certificates> {
        let Some(value) = root.get("certificates") else {
            return Some(Certificates::default());
        };
        let table = self.r.table(value, "[certificates]", &["renew_before"])?;
        let Some(text) = self.r.str(&table, "renew_before") else {
            return table
                .get("renew_before")
                .is_none()
                .then(Certificates::default);
        };
        match humantime::parse_duration(&text.value) {
            // kubeadm's certificates live a year: renewing earlier than that renews every time.
            Ok(d) if d.is_zero() || d >= Duration::from_secs(365 * 86_400) => {
                self.r.error_help(
                    format!(
                        "renew_before {:?} is not between zero and a year",
                        text.value
                    ),
                    Some(text.span),
                    "kubeadm's certificates are valid for a year; write e.g. \"30d\"",
                );
                None
            }
            Ok(d) => Some(Certificates {
                renew_before: Some(d),
            }),
            Err(_) => {
                self.r.error_help(
                    format!("renew_before {:?} is not a duration", text.value),
                    Some(text.span),
                    "write a number and a unit, like \"30d\" or \"2w\"",
                );
                None
            }
        }
    }

    fn images(&mut self, root: &Table<'_, '_>) -> Option<Images> {
        let mut images = Images::default();
        let Some(value) = root.get("images") else {
            return Some(images);
        };
        let table = self.r.table(value, "[images]", &["overrides"])?;
        let Some(overrides) = table.get("overrides") else {
            return Some(images);
        };
        let DeTableRef(entries) = self.table_entries(overrides, "[images.overrides]")?;
        let mut ok = true;
        for (image_key, per_arch) in entries {
            let image = Located {
                value: image_key.get_ref().to_string(),
                span: image_key.span(),
            };
            ok &= self.check(&image, syntax::image_reference, "the overridden image");
            let what = format!("the override of {}", quoted(&image.value));
            let Some(arch_table) = self.r.table(per_arch, what.clone(), Arch::NAMES) else {
                ok = false;
                continue;
            };
            let mut replacements = BTreeMap::new();
            for arch_name in Arch::NAMES {
                if let Some(replacement) = self.r.str(&arch_table, arch_name) {
                    ok &= self.check(&replacement, syntax::image_reference, "a replacement image");
                    if let Some(arch) = Arch::from_name(arch_name) {
                        replacements.insert(arch, replacement.value);
                    }
                } else if arch_table.get(arch_name).is_some() {
                    ok = false;
                }
            }
            images.overrides.insert(image.value, replacements);
        }
        ok.then_some(images)
    }

    fn table_entries<'t, 'i>(
        &mut self,
        value: &'t toml::Spanned<toml::de::DeValue<'i>>,
        what: &str,
    ) -> Option<DeTableRef<'t, 'i>> {
        match value.get_ref() {
            toml::de::DeValue::Table(t) => Some(DeTableRef(t)),
            other => {
                self.r.error(
                    format!(
                        "{what} must be a table, found {}",
                        crate::reader::type_name(other)
                    ),
                    Some(value.span()),
                );
                None
            }
        }
    }

    // ----- [ssh] and hosts -----

    fn parallelism(&mut self, t: Option<&Table<'_, '_>>) -> Option<usize> {
        let Some(p) = t.and_then(|t| self.r.int(t, "parallelism")) else {
            let refused = t.is_some_and(|t| t.get("parallelism").is_some());
            return (!refused).then_some(64);
        };
        if p.value < 1 {
            self.r.error(
                format!("parallelism is {}; it must be at least 1", p.value),
                Some(p.span),
            );
            return None;
        }
        Some(usize::try_from(p.value).unwrap_or(usize::MAX))
    }

    /// Reads an `ssh` table over `base` (the [ssh] defaults, or built-in defaults).
    fn ssh_settings(
        &mut self,
        t: Option<&Table<'_, '_>>,
        base: Option<&SshSettings>,
    ) -> Option<SshSettings> {
        let builtin = SshSettings {
            user: self.ctx.local_user.clone(),
            port: 22,
            identity_file: None,
            known_hosts: self.ctx.resolve("~/.ssh/known_hosts"),
            host_key_checking: HostKeyChecking::Strict,
            become_root: false,
            jump_host: None,
            connect_timeout: Duration::from_secs(10),
            command_timeout: Duration::from_secs(15 * 60),
        };
        let mut s = base.cloned().unwrap_or(builtin);
        let Some(t) = t else {
            return Some(s);
        };
        let mut ok = true;
        if let Some(user) = self.r.str(t, "user") {
            ok &= self.check(&user, syntax::user_name, "ssh user");
            s.user = user.value;
        }
        if let Some(port) = self.r.int(t, "port") {
            match u16::try_from(port.value) {
                Ok(p) if p > 0 => s.port = p,
                _ => {
                    self.r.error(
                        format!("port {} is not a TCP port (1 to 65535)", port.value),
                        Some(port.span),
                    );
                    ok = false;
                }
            }
        }
        if let Some(file) = self.r.str(t, "identity_file") {
            let path = self.ctx.resolve(&file.value);
            if let Err(e) = self.open(&path) {
                self.r.error_help(
                    format!("cannot read identity_file {}: {e}", quoted(&file.value)),
                    Some(file.span),
                    "point identity_file at a private key the user running k8sup can read, or remove it to use ssh-agent",
                );
                ok = false;
            }
            s.identity_file = Some(path);
        }
        if let Some(file) = self.r.str(t, "known_hosts") {
            ok &= self.check(&file, syntax::printable, "known_hosts");
            s.known_hosts = self.ctx.resolve(&file.value);
        }
        match self.keyword(
            t,
            "host_key_checking",
            "host_key_checking",
            HostKeyChecking::from_name,
            HostKeyChecking::NAMES,
        ) {
            Some(Some(k)) => s.host_key_checking = k,
            Some(None) => ok = false,
            None => {}
        }
        if let Some(b) = self.r.bool(t, "become") {
            s.become_root = b.value;
        }
        if let Some(jump) = self.r.str(t, "jump_host") {
            match parse_jump_host(&jump.value) {
                Ok(j) => s.jump_host = Some(j),
                Err(why) => {
                    self.r.error_help(
                        format!("jump_host {} {why}", quoted(&jump.value)),
                        Some(jump.span),
                        "write [user@]host[:port], like \"admin@bastion.example.org:22\"",
                    );
                    ok = false;
                }
            }
        }
        for (key, slot) in [
            ("connect_timeout", &mut s.connect_timeout),
            ("command_timeout", &mut s.command_timeout),
        ] {
            if let Some(d) = self.r.str(t, key) {
                match humantime::parse_duration(&d.value) {
                    Ok(parsed) if !parsed.is_zero() => *slot = parsed,
                    Ok(_) => {
                        self.r
                            .error(format!("{key} must be longer than zero"), Some(d.span));
                        ok = false;
                    }
                    Err(_) => {
                        self.r.error_help(
                            format!("{key} {} is not a duration", quoted(&d.value)),
                            Some(d.span),
                            "write a number and a unit, like \"10s\", \"15m\" or \"1h 30m\"",
                        );
                        ok = false;
                    }
                }
            }
        }
        // A value of the wrong type was reported by the reader; the settings are refused.
        for key in [
            "user",
            "port",
            "identity_file",
            "known_hosts",
            "become",
            "jump_host",
            "connect_timeout",
            "command_timeout",
        ] {
            if t.get(key).is_some()
                && self
                    .r
                    .diagnostics
                    .iter()
                    .any(|d| d.message.starts_with(&format!("`{key}` in {}", t.what)))
            {
                ok = false;
            }
        }
        ok.then_some(s)
    }

    fn hosts(&mut self, root: &Table<'_, '_>, defaults: Option<&SshSettings>) -> Vec<ReadHost> {
        let Some(value) = root.get("hosts") else {
            self.r.error_help(
                "the inventory has no [[hosts]]",
                Some(0..0),
                "add a [[hosts]] entry with `name`, `address` and `roles = [\"master\"]`",
            );
            return Vec::new();
        };
        let toml::de::DeValue::Array(items) = value.get_ref() else {
            self.r.error(
                format!(
                    "`hosts` must be a list of tables ([[hosts]]), found {}",
                    crate::reader::type_name(value.get_ref())
                ),
                Some(value.span()),
            );
            return Vec::new();
        };
        let mut hosts = Vec::new();
        for (i, item) in items.iter().enumerate() {
            if let Some(h) = self.host(i, item, defaults) {
                hosts.push(h);
            }
        }
        if items.iter().len() > 0
            && hosts.len() == items.iter().len()
            && !hosts.iter().any(|h| h.host.roles.master)
        {
            self.r.error_help(
                "no host has the role master",
                Some(value.span().start..value.span().start),
                "give the host that runs the control plane `roles = [\"master\"]`",
            );
        }
        if hosts.iter().any(|h| h.host.roles.master)
            && hosts.len() == items.iter().len()
            && !hosts.iter().any(|h| h.host.roles.master && !h.host.remove)
        {
            self.r.error_help(
                "every master has remove = true: the cluster would have no control plane",
                Some(value.span().start..value.span().start),
                "keep at least one master; to tear the whole cluster down use `k8sup reset`",
            );
        }
        if items.iter().len() == 0 {
            self.r.error(
                "`hosts` is empty: the inventory needs at least one master",
                Some(value.span()),
            );
        }
        hosts
    }

    fn host(
        &mut self,
        index: usize,
        item: &toml::Spanned<toml::de::DeValue<'_>>,
        defaults: Option<&SshSettings>,
    ) -> Option<ReadHost> {
        let what = format!("host #{}", index + 1);
        let mut t = self.r.open_table(item, what)?;
        let name = self.r.required_str(&t, "name");
        if let Some(n) = &name {
            t.what = format!("host {}", quoted(&n.value));
        }
        self.r.unknown_keys(&t, HOST_KEYS);
        let name_ok = name
            .as_ref()
            .is_some_and(|n| self.check(n, syntax::rfc1123_label, "the host name"));
        let address = self.r.required_str(&t, "address");
        let address_ok = address
            .as_ref()
            .is_some_and(|a| self.check(a, syntax::ip_or_dns_name, "address"));
        let internal = self.internal_address(&t, address.as_ref().filter(|_| address_ok));
        let roles = self.roles(&t);
        let arch = match self.keyword(&t, "arch", "arch", Arch::from_name, Arch::NAMES) {
            None => Some(None),
            Some(Some(a)) => Some(Some(a)),
            Some(None) => {
                self.arch_hint(&t);
                None
            }
        };
        let labels = self.labels(&t);
        let taints = self.taints(&t);
        let remove = match self.r.bool(&t, "remove") {
            Some(v) => Some(v.value),
            None => t.get("remove").is_none().then_some(false),
        };
        let ssh_table = t.get("ssh").map(|v| {
            self.r
                .table(v, format!("the ssh settings of {}", t.what), HOST_SSH_KEYS)
        });
        let ssh = match (ssh_table, defaults) {
            (Some(Some(st)), Some(d)) => self.ssh_settings(Some(&st), Some(d)),
            (Some(None), _) | (_, None) => None,
            (None, Some(d)) => Some(d.clone()),
        };
        let (name, address, (internal_address, internal_span)) = (name?, address?, internal?);
        let host = Host {
            name: name.value,
            address: address.value,
            internal_address,
            roles: roles?,
            arch: arch?,
            labels: labels?,
            taints: taints?,
            ssh: ssh?,
            remove: remove?,
        };
        (name_ok && address_ok).then_some(ReadHost {
            host,
            name_span: name.span,
            address_span: address.span,
            internal_span,
        })
    }

    /// `arch = "x86_64"` is a common slip: say what Kubernetes calls it.
    fn arch_hint(&mut self, t: &Table<'_, '_>) {
        let Some(value) = t.get("arch").and_then(|v| v.get_ref().as_str()) else {
            return;
        };
        if let Some(arch) = Arch::from_uname_machine(value) {
            if let Some(d) = self.r.diagnostics.last_mut() {
                d.help = Some(format!("Kubernetes calls {} \"{arch}\"", quoted(value)));
            }
        }
    }

    fn internal_address(
        &mut self,
        t: &Table<'_, '_>,
        address: Option<&Located<String>>,
    ) -> Option<(IpAddr, Range<usize>)> {
        if let Some(internal) = self.r.str(t, "internal_address") {
            return match internal.value.parse::<IpAddr>() {
                Ok(ip) => Some((ip, internal.span)),
                Err(_) => {
                    self.r.error(
                        format!(
                            "internal_address {} of {} is not an IP address",
                            quoted(&internal.value),
                            t.what
                        ),
                        Some(internal.span),
                    );
                    None
                }
            };
        }
        if t.get("internal_address").is_some() {
            return None;
        }
        let address = address?;
        match address.value.parse::<IpAddr>() {
            Ok(ip) => Some((ip, address.span.clone())),
            Err(_) => {
                self.r.error_help(
                    format!(
                        "{} is reached by the name {} and has no internal_address",
                        t.what, quoted(&address.value)
                    ),
                    Some(address.span.clone()),
                    "set internal_address to the host's node IP: k8sup never guesses it from a route",
                );
                None
            }
        }
    }

    fn roles(&mut self, t: &Table<'_, '_>) -> Option<Roles> {
        if t.get("roles").is_none() {
            self.r.error_help(
                format!("{} has no role", t.what),
                Some(t.header_span()),
                "add roles = [\"master\"] or roles = [\"node\"]",
            );
            return None;
        }
        let list = self.r.str_list(t, "roles")?;
        if list.value.is_empty() {
            self.r.error_help(
                format!("{} has no role", t.what),
                Some(list.span),
                "add \"master\" or \"node\" to roles",
            );
            return None;
        }
        let mut roles = Roles::default();
        let mut ok = true;
        for role in &list.value {
            match role.value.as_str() {
                "master" | "control-plane" => roles.master = true,
                "node" | "worker" => roles.node = true,
                other => {
                    let message = format!(
                        "{} has the unknown role {}; roles are {}",
                        t.what,
                        quoted(other),
                        quoted_list(ROLE_NAMES)
                    );
                    match did_you_mean(other, ROLE_NAMES.iter().copied()) {
                        Some(help) => self.r.error_help(message, Some(role.span.clone()), help),
                        None => self.r.error(message, Some(role.span.clone())),
                    }
                    ok = false;
                }
            }
        }
        ok.then_some(roles)
    }

    fn labels(&mut self, t: &Table<'_, '_>) -> Option<BTreeMap<String, String>> {
        let Some(pairs) = self.r.str_map(t, "labels") else {
            return t.get("labels").is_none().then(BTreeMap::new);
        };
        let mut ok = true;
        let mut labels = BTreeMap::new();
        for (key, value) in pairs {
            ok &= self.check(&key, syntax::label_key, "the label key");
            ok &= self.check(
                &value,
                syntax::label_value,
                &format!("the value of label `{}`", key.value),
            );
            labels.insert(key.value, value.value);
        }
        ok.then_some(labels)
    }

    fn taints(&mut self, t: &Table<'_, '_>) -> Option<Vec<Taint>> {
        let Some(list) = self.r.str_list(t, "taints") else {
            return t.get("taints").is_none().then(Vec::new);
        };
        let mut ok = true;
        let mut taints = Vec::new();
        for item in list.value {
            if !self.check(&item, syntax::taint, "the taint") {
                ok = false;
                continue;
            }
            let (key_value, effect) = item.value.rsplit_once(':').unwrap_or((&item.value, ""));
            let (key, value) = key_value.split_once('=').unwrap_or((key_value, ""));
            taints.push(Taint {
                key: key.to_string(),
                value: value.to_string(),
                effect: effect.to_string(),
            });
        }
        ok.then_some(taints)
    }

    // ----- checks over several values -----

    fn cross_checks(
        &mut self,
        cluster: &Cluster,
        packages: &Packages,
        hosts: &[ReadHost],
        cluster_table: Option<&Table<'_, '_>>,
    ) {
        let pod_span = cluster_table
            .and_then(|t| t.get("pod_cidr"))
            .map(|v| v.span());
        let service_span = cluster_table
            .and_then(|t| t.get("service_cidr"))
            .map(|v| v.span());
        let (pod, service) = (cluster.pod_cidr, cluster.service_cidr);
        if pod.contains(&service.network()) || service.contains(&pod.network()) {
            self.r.error_help(
                format!("pod_cidr {pod} and service_cidr {service} overlap"),
                pod_span.clone().or(service_span.clone()),
                "pick two networks that share no address, like 10.244.0.0/16 and 10.96.0.0/12",
            );
        }
        for h in hosts {
            for (net, what) in [(pod, "pod_cidr"), (service, "service_cidr")] {
                if net.contains(&h.host.internal_address) {
                    self.r.error_help(
                        format!(
                            "host {:?} has the address {} inside {what} {net}",
                            h.host.name, h.host.internal_address
                        ),
                        Some(h.internal_span.clone()),
                        format!("move {what} to a network that no host is on"),
                    );
                }
            }
        }
        self.duplicates(
            hosts,
            |h| h.host.name.clone(),
            |h| h.name_span.clone(),
            "name",
        );
        self.duplicates(
            hosts,
            |h| format!("{}:{}", h.host.address, h.host.ssh.port),
            |h| h.address_span.clone(),
            "address and port",
        );
        self.duplicates(
            hosts,
            |h| h.host.internal_address.to_string(),
            |h| h.internal_span.clone(),
            "internal_address",
        );
        self.package_source(cluster, packages, hosts);
    }

    fn duplicates(
        &mut self,
        hosts: &[ReadHost],
        key: impl Fn(&ReadHost) -> String,
        span: impl Fn(&ReadHost) -> Range<usize>,
        what: &str,
    ) {
        let mut seen: HashMap<String, &ReadHost> = HashMap::new();
        for h in hosts {
            match seen.get(&key(h)) {
                Some(first) if first.host.name == h.host.name => self.r.error(
                    format!("two hosts are named {:?}", h.host.name),
                    Some(span(h)),
                ),
                Some(first) => self.r.error(
                    format!(
                        "hosts {:?} and {:?} have the same {what} ({})",
                        first.host.name,
                        h.host.name,
                        key(h)
                    ),
                    Some(span(h)),
                ),
                None => {
                    seen.insert(key(h), h);
                }
            }
        }
    }

    /// Refuses, before any host is touched, what the package source cannot install.
    fn package_source(&mut self, cluster: &Cluster, packages: &Packages, hosts: &[ReadHost]) {
        let needs_cri_dockerd =
            cluster.runtime == Runtime::Docker && cluster.kubernetes_version.needs_cri_dockerd();
        match packages.source {
            PackageSource::Repo => {
                // Without packages.cri_dockerd, k8sup downloads the release it pins
                // for this Kubernetes minor (k8sup-kube's table) and checks its sha256.
                if let Some(local) = packages
                    .cri_dockerd
                    .as_deref()
                    .filter(|c| !c.contains("://"))
                {
                    let sample = local.replace("{arch}", "amd64");
                    if self.files == LocalFiles::Open && !self.ctx.resolve(&sample).is_file() {
                        self.r.error(
                            format!(
                                "packages.cri_dockerd {} is neither a URL nor a file on this machine",
                                quoted(local)
                            ),
                            None,
                        );
                    }
                }
            }
            PackageSource::Binary => {
                let Some(dir) = &packages.binary_dir else {
                    self.r.error_help(
                        "packages.source is \"binary\" but packages.binary_dir is not set",
                        None,
                        "set binary_dir to a directory holding <arch>/kubeadm, <arch>/kubelet and <arch>/kubectl",
                    );
                    return;
                };
                let mut wanted = vec!["kubeadm", "kubelet", "kubectl"];
                if needs_cri_dockerd {
                    wanted.push("cri-dockerd");
                }
                let mut archs: Vec<Arch> = hosts.iter().filter_map(|h| h.host.arch).collect();
                if archs.is_empty() {
                    archs.push(Arch::Amd64);
                }
                archs.sort();
                archs.dedup();
                let missing: Vec<String> = archs
                    .iter()
                    .flat_map(|a| wanted.iter().map(move |w| format!("{a}/{w}")))
                    .filter(|rel| self.files == LocalFiles::Open && !dir.join(rel).is_file())
                    .collect();
                if !missing.is_empty() {
                    self.r.error(
                        format!(
                            "packages.binary_dir {} lacks {}",
                            dir.display(),
                            missing.join(", ")
                        ),
                        None,
                    );
                }
            }
        }
    }

    // ----- small helpers -----

    /// Runs a syntax check on a located value; reports and returns false on failure.
    fn check(
        &mut self,
        value: &Located<String>,
        rule: fn(&str) -> Result<(), String>,
        what: &str,
    ) -> bool {
        match rule(&value.value) {
            Ok(()) => true,
            Err(why) => {
                self.r.error(
                    format!("{what} {} {why}", quoted(&value.value)),
                    Some(value.span.clone()),
                );
                false
            }
        }
    }

    /// An optional checked string: `Some(None)` when absent, `None` when refused.
    fn optional(
        &mut self,
        t: &Table<'_, '_>,
        key: &str,
        rule: fn(&str) -> Result<(), String>,
        what: &str,
    ) -> Option<Option<String>> {
        match self.r.str(t, key) {
            Some(v) => self.check(&v, rule, what).then_some(Some(v.value)),
            None => t.get(key).is_none().then_some(None),
        }
    }

    /// An optional checked list of strings: empty when absent, `None` when refused.
    fn list(
        &mut self,
        t: &Table<'_, '_>,
        key: &str,
        rule: fn(&str) -> Result<(), String>,
        what: &str,
    ) -> Option<Vec<String>> {
        let Some(list) = self.r.str_list(t, key) else {
            return t.get(key).is_none().then(Vec::new);
        };
        let total = list.value.len();
        let good: Vec<String> = list
            .value
            .into_iter()
            .filter(|v| self.check(v, rule, what))
            .map(|v| v.value)
            .collect();
        (good.len() == total).then_some(good)
    }
}

struct DeTableRef<'t, 'i>(&'t DeTable<'i>);

impl<'t, 'i> IntoIterator for DeTableRef<'t, 'i> {
    type Item = (
        &'t toml::Spanned<toml::de::DeString<'i>>,
        &'t toml::Spanned<toml::de::DeValue<'i>>,
    );
    type IntoIter = Box<dyn Iterator<Item = Self::Item> + 't>;
    fn into_iter(self) -> Self::IntoIter {
        Box::new(self.0.iter())
    }
}

/// A certificate SAN: an IP, a DNS name, or a wildcard DNS name.
fn san(text: &str) -> Result<(), String> {
    syntax::ip_or_dns_name(text.strip_prefix("*.").unwrap_or(text))
}

fn quoted_list(names: &[&str]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("\"{n}\"")).collect();
    match quoted.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
        _ => quoted.join(""),
    }
}

/// Splits `host[:port]` (IPv6 as `[addr]:port`), checking the host.
fn parse_host_port(text: &str, default_port: u16) -> Result<(String, u16), String> {
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or("has an unclosed '['")?;
        match after.strip_prefix(':') {
            Some(p) => (host, Some(p)),
            None if after.is_empty() => (host, None),
            None => return Err("has text after ']'".into()),
        }
    } else if text.matches(':').count() == 1 {
        let (h, p) = text.split_once(':').unwrap_or((text, ""));
        (h, Some(p))
    } else {
        (text, None)
    };
    syntax::ip_or_dns_name(host)?;
    let port = match port {
        None => default_port,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 => n,
            _ => return Err(format!("has the port {p:?}, which is not a TCP port")),
        },
    };
    Ok((host.to_string(), port))
}

fn parse_jump_host(text: &str) -> Result<JumpHost, String> {
    let (user, rest) = match text.split_once('@') {
        Some((u, rest)) => {
            syntax::user_name(u).map_err(|why| format!("has a user that {why}"))?;
            (Some(u.to_string()), rest)
        }
        None => (None, text),
    };
    let (host, port) = parse_host_port(rest, 22)?;
    Ok(JumpHost { user, host, port })
}
