//! A read Kubespray inventory turned into k8sup's inventory.toml: what has an
//! equivalent is carried over, every other setting is listed with where it was set.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use k8sup_inventory::KubeVersion;

use crate::ansible::{
    Kubespray, Var, BASTION_GROUP, CLUSTER_GROUPS, ETCD_GROUP, MASTER_GROUPS, NODE_GROUPS,
    STRUCTURAL_GROUPS, VAULT,
};
use crate::error::ImportError;
use crate::yaml::Node;

/// What the import made: the inventory's text, and what it left out.
#[derive(Debug)]
pub struct Imported {
    pub toml: String,
    /// `file:line: what` of each setting not carried, and why.
    pub not_carried: Vec<String>,
}

/// Settings whose value must never be copied anywhere, not even into the list.
pub(crate) fn is_secret(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    [
        "pass",
        "secret",
        "token",
        "certificate_key",
        "encryption",
        "credential",
    ]
    .iter()
    .any(|w| key.contains(w))
        || (key.contains("key") && !key.ends_with("_file") && !key.contains("keys"))
}

/// A conversion under way: what has been carried (by where it was set), and notes
/// on what could not be.
struct Converter<'k> {
    ks: &'k Kubespray,
    /// The hosts file, as the notes name it.
    source: &'k str,
    used: BTreeSet<(String, usize, String)>,
    notes: Vec<String>,
}

/// A variable's value when it is a plain, non-empty value (a Jinja template is not).
fn literal(v: &Var) -> Option<String> {
    v.value
        .scalar()
        .filter(|s| !s.contains("{{") && !s.is_empty())
        .map(str::to_string)
}

/// SSH settings of a host: field -> TOML value.
type SshFields = BTreeMap<&'static str, String>;

impl<'k> Converter<'k> {
    /// `v` was carried over: it is not listed at the end.
    fn mark(&mut self, v: &Var) {
        self.used.insert((v.file.clone(), v.line, v.key.clone()));
    }

    /// A cluster setting: from k8s_cluster's variables, else all's.
    fn cluster_var(&self, key: &str) -> Option<&'k Var> {
        let ks: &'k Kubespray = self.ks;
        CLUSTER_GROUPS.iter().find_map(|g| {
            ks.group_vars
                .get(*g)
                .and_then(|vars| vars.iter().rev().find(|v| v.key == key))
        })
    }

    /// The `[cluster]` table.
    fn cluster(&mut self, name: &str) -> String {
        let mut cluster = String::new();
        let _ = writeln!(cluster, "[cluster]\nname = {}", quote(name));
        match self.cluster_var("kube_version") {
            Some(v) => match literal(v) {
                Some(version) => {
                    self.mark(v);
                    let version = version.trim_start_matches('v').to_string();
                    if KubeVersion::parse(&version).is_err() {
                        self.notes.push(format!(
                            "{}:{}: kube_version {version} is not a version k8sup installs ({} to {})",
                            v.file,
                            v.line,
                            KubeVersion::oldest(),
                            KubeVersion::newest()
                        ));
                    }
                    let _ = writeln!(cluster, "kubernetes_version = {}", quote(&version));
                }
                None => {
                    let _ = writeln!(
                        cluster,
                        "kubernetes_version = {}   # kube_version was a template",
                        quote(KubeVersion::newest().to_string())
                    );
                }
            },
            None => {
                let _ = writeln!(
                    cluster,
                    "kubernetes_version = {}   # kube_version was not set: Kubespray's default is its own; this is k8sup's newest",
                    quote(KubeVersion::newest().to_string())
                );
            }
        }
        if let Some(v) = self.cluster_var("container_manager") {
            match literal(v).as_deref() {
                Some(runtime @ ("containerd" | "docker")) => {
                    self.mark(v);
                    let _ = writeln!(cluster, "runtime = {}", quote(runtime));
                }
                _ => self.notes.push(format!(
                    "{}:{}: container_manager: {} (k8sup runs containerd or docker; containerd is used)",
                    v.file,
                    v.line,
                    v.value.text()
                )),
            }
        }
        if let Some(v) = self.cluster_var("kube_network_plugin") {
            match literal(v).as_deref() {
                Some("flannel") => {
                    self.mark(v);
                    cluster.push_str("cni = \"flannel\"\n");
                }
                Some("calico") => {
                    self.mark(v);
                    // k8sup ships no Calico manifest: name Calico's own, of the version
                    // Kubespray was told to install (or the one k8sup's examples use).
                    let version = self
                        .cluster_var("calico_version")
                        .and_then(|c| {
                            let version = literal(c)?;
                            self.mark(c);
                            Some(version)
                        })
                        .unwrap_or_else(|| "v3.28.1".to_string());
                    let version = format!("v{}", version.trim_start_matches('v'));
                    let _ = writeln!(
                        cluster,
                        "cni = \"calico\"\ncni_manifest = {}",
                        quote(format!("https://raw.githubusercontent.com/projectcalico/calico/{version}/manifests/calico.yaml"))
                    );
                }
                Some("cni") => {
                    self.mark(v);
                    cluster
                        .push_str("cni = \"none\"   # kube_network_plugin: cni (bring your own)\n");
                }
                _ => {
                    cluster.push_str("cni = \"none\"   # see kube_network_plugin below\n");
                    self.notes.push(format!(
                        "{}:{}: kube_network_plugin: {} (k8sup installs flannel or calico; cni = \"none\" leaves the pod network to you)",
                        v.file,
                        v.line,
                        v.value.text()
                    ));
                }
            }
        }
        for (key, field) in [
            ("kube_pods_subnet", "pod_cidr"),
            ("kube_service_addresses", "service_cidr"),
        ] {
            if let Some(v) = self.cluster_var(key) {
                if let Some(value) = literal(v) {
                    self.mark(v);
                    let _ = writeln!(cluster, "{field} = {}", quote(&value));
                }
            }
        }
        if let Some(v) = self.cluster_var("cluster_name") {
            // Kubespray's cluster_name is the cluster's DNS domain (dns_domain defaults to it).
            if let Some(value) = literal(v) {
                self.mark(v);
                let _ = writeln!(cluster, "dns_domain = {}", quote(&value));
            }
        }
        if let Some(v) = self.cluster_var("supplementary_addresses_in_ssl_keys") {
            if let Node::List(items, _) = &v.value {
                let sans: Vec<String> = items
                    .iter()
                    .filter_map(Node::scalar)
                    .filter(|s| !s.contains("{{"))
                    .map(quote)
                    .collect();
                if sans.len() == items.len() {
                    self.mark(v);
                    let _ = writeln!(cluster, "apiserver_cert_sans = [{}]", sans.join(", "));
                }
            }
        }
        if let Some(v) = self.cluster_var("loadbalancer_apiserver") {
            let address = v.value.get("address").and_then(Node::scalar);
            let port = v.value.get("port").and_then(Node::scalar).unwrap_or("6443");
            if let Some(address) = address.filter(|a| !a.contains("{{")) {
                self.mark(v);
                let _ = writeln!(
                    cluster,
                    "control_plane_endpoint = {}",
                    quote(format!("{address}:{port}"))
                );
            }
        }

        cluster
    }

    /// The `[[hosts]]` tables, and the SSH settings every host shares (for `[ssh]`).
    fn hosts(&mut self) -> (String, SshFields) {
        let ks = self.ks;
        let masters: BTreeSet<String> = MASTER_GROUPS.iter().flat_map(|g| ks.members(g)).collect();
        let nodes: BTreeSet<String> = NODE_GROUPS.iter().flat_map(|g| ks.members(g)).collect();
        let etcd = ks.members(ETCD_GROUP);
        let bastion = ks.members(BASTION_GROUP);
        // Hosts, in the order the file names them.
        // Per host: its lines, its ssh overrides, and its user.
        let mut imported_hosts: Vec<(String, SshFields)> = Vec::new();
        for host in &ks.hosts {
            let mut hosts = String::new();
            let groups = ks.groups_of(host);
            let vars = ks.vars_of(host, &groups);
            let var = |key: &str| vars.iter().find(|v| v.key == key).copied();
            let mut roles = Vec::new();
            if masters.contains(host) {
                roles.push("\"master\"");
            }
            if nodes.contains(host) {
                roles.push("\"node\"");
            }
            if roles.is_empty() && bastion.contains(host) {
                continue; // carried as [ssh] jump_host
            }
            if roles.is_empty() {
                let why = if etcd.contains(host) {
                    "an etcd-only host: k8sup runs etcd on the masters (stacked)"
                } else {
                    "in none of kube_control_plane, kube_node"
                };
                let other: Vec<&str> = groups
                    .iter()
                    .map(String::as_str)
                    .filter(|g| !STRUCTURAL_GROUPS.contains(g))
                    .collect();
                self.notes.push(format!(
                    "{}: host {host} [{}] not carried: {why}",
                    ks.host_at.get(host).map_or(self.source, String::as_str),
                    other.join(", ")
                ));
                continue;
            }
            if etcd.contains(host) != masters.contains(host) {
                self.notes.push(format!(
                    "{}: host {host}: etcd membership differs from kube_control_plane; k8sup runs etcd on every master",
                    ks.host_at.get(host).map_or(self.source, String::as_str)
                ));
            }
            let ip = var("ip");
            let access_ip = var("access_ip");
            let ansible_host = var("ansible_host");
            let address = ansible_host.or(access_ip).or(ip);
            let address_text = address
                .and_then(|v| v.value.scalar())
                .unwrap_or(host.as_str())
                .to_string();
            let _ = writeln!(hosts, "\n[[hosts]]\nname = {}", quote(host));
            let _ = writeln!(hosts, "address = {}", quote(&address_text));
            if let Some(v) = address {
                self.mark(v);
            }
            // The node's own IP: `ip` (what Kubespray binds services to), else access_ip.
            if let Some(v) = ip.or(access_ip) {
                self.mark(v);
                let internal = v.value.text();
                if internal != address_text {
                    let _ = writeln!(hosts, "internal_address = {}", quote(&internal));
                }
                if let (Some(ip), Some(access)) = (ip, access_ip) {
                    if ip.value.text() == access.value.text() || access.value.text() == address_text
                    {
                        self.mark(access);
                    }
                }
            }
            let _ = writeln!(hosts, "roles = [{}]", roles.join(", "));
            // Per-host node labels and taints, as Kubespray's node_labels / node_taints.
            if let Some(v) = var("node_labels") {
                let labels: Vec<String> = v
                    .value
                    .entries()
                    .iter()
                    .filter_map(|(k, _, val)| {
                        Some(format!("{} = {}", quote(k), quote(val.scalar()?)))
                    })
                    .collect();
                if !labels.is_empty() && labels.len() == v.value.entries().len() {
                    self.mark(v);
                    let _ = writeln!(hosts, "labels = {{ {} }}", labels.join(", "));
                }
            }
            if let Some(v) = var("node_taints") {
                if let Node::List(items, _) = &v.value {
                    let taints: Vec<String> =
                        items.iter().filter_map(Node::scalar).map(quote).collect();
                    if taints.len() == items.len() {
                        self.mark(v);
                        let _ = writeln!(hosts, "taints = [{}]", taints.join(", "));
                    }
                }
            }
            let ssh = self.ssh_fields(&var);
            imported_hosts.push((hosts, ssh));
        }
        // A setting every host shares goes to [ssh]; the others stay with their hosts.
        let mut shared: BTreeMap<&str, String> = BTreeMap::new();
        if let Some((_, first)) = imported_hosts.first() {
            for (key, value) in first {
                if imported_hosts
                    .iter()
                    .all(|(_, ssh)| ssh.get(key) == Some(value))
                {
                    shared.insert(key, value.clone());
                }
            }
        }
        let mut hosts = String::new();
        for (text, ssh) in &imported_hosts {
            hosts.push_str(text);
            let own: Vec<String> = ssh
                .iter()
                .filter(|(k, _)| !shared.contains_key(*k))
                .map(|(k, v)| format!("{k} = {v}"))
                .collect();
            if !own.is_empty() {
                let _ = writeln!(hosts, "ssh = {{ {} }}", own.join(", "));
            }
        }

        (hosts, shared)
    }

    /// A host's SSH settings, from its Ansible connection variables.
    fn ssh_fields(&mut self, var: &dyn Fn(&str) -> Option<&'k Var>) -> SshFields {
        let mut ssh: BTreeMap<&str, String> = BTreeMap::new();
        if let Some(v) = var("ansible_user").or(var("ansible_ssh_user")) {
            if let Some(user) = literal(v) {
                self.mark(v);
                ssh.insert("user", quote(&user));
            }
        }
        if let Some(v) = var("ansible_port").or(var("ansible_ssh_port")) {
            if let Some(port) = v.value.scalar().filter(|p| p.parse::<u16>().is_ok()) {
                self.mark(v);
                ssh.insert("port", port.to_string());
            }
        }
        if let Some(v) = var("ansible_ssh_private_key_file") {
            if let Some(file) = literal(v) {
                self.mark(v);
                ssh.insert("identity_file", quote(&file));
            }
        }
        if let Some(v) = var("ansible_become") {
            if let Some(b) = v.value.scalar().and_then(ansible_bool) {
                self.mark(v);
                ssh.insert("become", b.to_string());
            }
        }
        ssh
    }

    /// `[user@]address:port` of the bastion, as Kubespray's bastion-ssh-config role
    /// reads it: the first host of the `bastion` group, its ansible_host (else its
    /// name), ansible_port (else 22) and ansible_user.
    fn jump_host(&mut self) -> Option<String> {
        let ks = self.ks;
        let members = ks.members(BASTION_GROUP);
        let bastion = ks.hosts.iter().find(|h| members.contains(*h))?;
        let vars = ks.vars_of(bastion, &ks.groups_of(bastion));
        let var = |key: &str| vars.iter().find(|v| v.key == key).copied();
        let address = match var("ansible_host").and_then(|v| Some((v, literal(v)?))) {
            Some((v, address)) => {
                self.mark(v);
                address
            }
            None => bastion.clone(),
        };
        let ssh = self.ssh_fields(&var);
        let port = ssh.get("port").cloned().unwrap_or_else(|| "22".into());
        // ssh_fields quoted the user for TOML; the jump host is one string.
        let user = var("ansible_user")
            .or(var("ansible_ssh_user"))
            .and_then(literal)
            .map(|u| format!("{u}@"))
            .unwrap_or_default();
        Some(format!("{user}{address}:{port}"))
    }

    /// Every variable not carried over, with where it was set, after the notes.
    fn not_carried(self) -> Vec<String> {
        let mut all_vars: Vec<&Var> = self
            .ks
            .group_vars
            .values()
            .chain(self.ks.host_vars.values())
            .flatten()
            .collect();
        all_vars.sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
        let mut not_carried = self.notes;
        for v in all_vars {
            if self.used.contains(&(v.file.clone(), v.line, v.key.clone())) {
                continue;
            }
            let value = if is_secret(&v.key) || v.value.text() == VAULT {
                "<redacted>".to_string()
            } else {
                let text = v.value.text();
                if text.chars().count() > 80 {
                    format!("{}...", text.chars().take(77).collect::<String>())
                } else {
                    text
                }
            };
            not_carried.push(format!("{}:{}: {}: {}", v.file, v.line, v.key, value));
        }
        not_carried
    }
}

/// Converts a read Kubespray inventory.
pub(crate) fn convert(ks: &Kubespray, name: &str, source: &str) -> Result<Imported, ImportError> {
    if MASTER_GROUPS.iter().all(|g| ks.members(g).is_empty()) {
        return Err(ImportError::NoMaster {
            file: source.to_string(),
        });
    }
    let mut converter = Converter {
        ks,
        source,
        used: BTreeSet::new(),
        notes: ks.notes.clone(),
    };
    let cluster = converter.cluster(name);
    let (hosts, mut shared) = converter.hosts();
    if let Some(jump_host) = converter.jump_host() {
        shared.insert("jump_host", quote(jump_host));
    }
    let not_carried = converter.not_carried();
    let mut out = format!(
        "# Imported by `k8sup import kubespray` from {source}.\n# Check it with `k8sup validate -i FILE`; the settings that were not carried over\n# are listed at the end.\n\n"
    );
    out.push_str(&cluster);
    if !shared.is_empty() {
        out.push_str("\n[ssh]\n");
        for (key, value) in &shared {
            let _ = writeln!(out, "{key} = {value}");
        }
    }
    out.push_str(&hosts);

    if !not_carried.is_empty() {
        let _ = write!(
            out,
            "\n# Not carried over ({}): k8sup has no such setting, or takes it from elsewhere.\n",
            not_carried.len()
        );
        for line in &not_carried {
            let _ = writeln!(out, "#   {}", line.replace('\n', " "));
        }
    }
    Ok(Imported {
        toml: out,
        not_carried,
    })
}

fn ansible_bool(text: &str) -> Option<bool> {
    match text.to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "1" => Some(true),
        "false" | "no" | "off" | "0" => Some(false),
        _ => None,
    }
}

/// A TOML basic string.
fn quote(text: impl AsRef<str>) -> String {
    let mut out = String::from("\"");
    for c in text.as_ref().chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
