//! `k8sup import kubespray HOSTS [--group-vars DIR]`: an inventory.toml from a
//! Kubespray inventory, so that a Kubespray user starts from what they have.
//!
//! Kubespray's inventory is an Ansible one: a hosts file (YAML, or INI as in its
//! sample) whose groups `kube_control_plane`, `kube_node` and `etcd` give the roles,
//! with per-host variables (`ansible_host`, `ip`, `access_ip`, `ansible_user`, ...),
//! and `group_vars/<group>.yml` or `group_vars/<group>/*.yml` with the cluster's
//! settings (`kube_version`, `container_manager`, `kube_network_plugin`, ...). What
//! k8sup has an equivalent for is carried over; every other setting is listed at the
//! end of the result with the file and line it came from, so nothing is dropped
//! silently. Values of settings that look secret (passwords, tokens) are never
//! copied, not even into that list.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use k8sup_inventory::{Inventory, KubeVersion, LoadContext};
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

use crate::args::{ImportKubesprayArgs, OutputArgs};
use crate::exit;

/// A YAML or INI value, with the line it starts on.
#[derive(Debug, Clone, PartialEq)]
enum Node {
    Scalar(String, usize),
    List(Vec<Node>, usize),
    Map(Vec<(String, usize, Node)>, usize),
}

impl Node {
    fn line(&self) -> usize {
        match self {
            Node::Scalar(_, l) | Node::List(_, l) | Node::Map(_, l) => *l,
        }
    }

    fn get(&self, key: &str) -> Option<&Node> {
        match self {
            Node::Map(entries, _) => entries.iter().find(|(k, _, _)| k == key).map(|e| &e.2),
            _ => None,
        }
    }

    fn entries(&self) -> &[(String, usize, Node)] {
        match self {
            Node::Map(entries, _) => entries,
            _ => &[],
        }
    }

    fn scalar(&self) -> Option<&str> {
        match self {
            Node::Scalar(s, _) => Some(s),
            _ => None,
        }
    }

    /// The value as YAML-ish text, for the list of what was not carried.
    fn text(&self) -> String {
        match self {
            Node::Scalar(s, _) => s.clone(),
            Node::List(items, _) => format!(
                "[{}]",
                items.iter().map(Node::text).collect::<Vec<_>>().join(", ")
            ),
            Node::Map(entries, _) => format!(
                "{{{}}}",
                entries
                    .iter()
                    .map(|(k, _, v)| format!("{k}: {}", v.text()))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }
}

/// Builds [`Node`]s from the parser's events.
#[derive(Default)]
struct TreeBuilder {
    /// Open collections: a list's items, or a map's entries and its pending key.
    stack: Vec<Open>,
    root: Option<Node>,
}

enum Open {
    List(Vec<Node>, usize),
    Map(Vec<(String, usize, Node)>, Option<(String, usize)>, usize),
}

impl TreeBuilder {
    fn push(&mut self, node: Node) {
        match self.stack.last_mut() {
            None => {
                if self.root.is_none() {
                    self.root = Some(node)
                }
            }
            Some(Open::List(items, _)) => items.push(node),
            Some(Open::Map(entries, key, _)) => match key.take() {
                None => {
                    // A key: only scalar keys mean anything in an Ansible inventory.
                    let line = node.line();
                    *key = Some((node.text(), line));
                }
                Some((k, line)) => entries.push((k, line, node)),
            },
        }
    }
}

impl MarkedEventReceiver for TreeBuilder {
    fn on_event(&mut self, event: Event, mark: Marker) {
        let line = mark.line();
        match event {
            Event::Scalar(value, _, _, tag) => {
                // `~` and `null` are YAML's null: Ansible reads `node1:` as a host with no vars.
                let value = if matches!(value.as_str(), "~" | "null" | "Null" | "NULL") {
                    String::new()
                } else if tag.is_some_and(|t| t.suffix == "vault") {
                    // `!vault |` holds a secret encrypted with ansible-vault: never shown.
                    VAULT.to_string()
                } else {
                    value
                };
                self.push(Node::Scalar(value, line))
            }
            Event::Alias(_) => self.push(Node::Scalar(String::new(), line)),
            Event::SequenceStart(..) => self.stack.push(Open::List(Vec::new(), line)),
            Event::MappingStart(..) => self.stack.push(Open::Map(Vec::new(), None, line)),
            Event::SequenceEnd => {
                if let Some(Open::List(items, l)) = self.stack.pop() {
                    self.push(Node::List(items, l));
                }
            }
            Event::MappingEnd => {
                if let Some(Open::Map(entries, _, l)) = self.stack.pop() {
                    self.push(Node::Map(entries, l));
                }
            }
            _ => {}
        }
    }
}

fn parse_yaml(text: &str) -> Result<Option<Node>, String> {
    let mut builder = TreeBuilder::default();
    Parser::new_from_str(text)
        .load(&mut builder, false)
        .map_err(|e| e.to_string())?;
    Ok(builder.root)
}

/// One variable from the inventory: where it was set, and for which host or group.
#[derive(Debug, Clone)]
struct Var {
    key: String,
    value: Node,
    file: String,
    line: usize,
}

/// A Kubespray (Ansible) inventory, read: hosts in file order, groups, variables.
#[derive(Debug, Default)]
struct Kubespray {
    hosts: Vec<String>,
    /// Where each host is first named: `file:line`.
    host_at: BTreeMap<String, String>,
    host_vars: BTreeMap<String, Vec<Var>>,
    /// Group -> its hosts and child groups.
    groups: BTreeMap<String, (BTreeSet<String>, BTreeSet<String>)>,
    group_vars: BTreeMap<String, Vec<Var>>,
    /// What was seen but not read (an encrypted file), with where.
    notes: Vec<String>,
}

impl Kubespray {
    fn add_host(&mut self, name: &str, group: &str, at: String) {
        if !self.hosts.iter().any(|h| h == name) {
            self.hosts.push(name.to_string());
            self.host_at.insert(name.to_string(), at);
        }
        self.groups
            .entry(group.to_string())
            .or_default()
            .0
            .insert(name.to_string());
    }

    fn add_child(&mut self, group: &str, child: &str) {
        self.groups.entry(child.to_string()).or_default();
        self.groups
            .entry(group.to_string())
            .or_default()
            .1
            .insert(child.to_string());
    }

    /// Every host of `group`, through its children.
    fn members(&self, group: &str) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        let mut todo = vec![group.to_string()];
        let mut seen = BTreeSet::new();
        while let Some(g) = todo.pop() {
            if !seen.insert(g.clone()) {
                continue;
            }
            if let Some((hosts, children)) = self.groups.get(&g) {
                out.extend(hosts.iter().cloned());
                todo.extend(children.iter().cloned());
            }
        }
        out
    }

    /// The groups `host` is in (`all` included).
    fn groups_of(&self, host: &str) -> Vec<String> {
        let mut groups: Vec<String> = self
            .groups
            .keys()
            .filter(|g| self.members(g).contains(host))
            .cloned()
            .collect();
        if !groups.iter().any(|g| g == "all") {
            groups.push("all".into());
        }
        groups
    }

    /// A host's variables, in the order Ansible looks for them: its own, then its
    /// groups', k8s_cluster's and all's last.
    fn vars_of(&self, host: &str, groups: &[String]) -> Vec<&Var> {
        let mut vars: Vec<&Var> = self
            .host_vars
            .get(host)
            .map_or(Vec::new(), |v| v.iter().collect());
        let (broad, narrow): (Vec<&String>, Vec<&String>) = groups
            .iter()
            .partition(|g| CLUSTER_GROUPS.contains(&g.as_str()));
        for group in narrow {
            vars.extend(self.group_vars.get(group).into_iter().flatten());
        }
        for group in CLUSTER_GROUPS
            .iter()
            .filter(|g| broad.iter().any(|b| b == *g))
        {
            vars.extend(self.group_vars.get(*group).into_iter().flatten());
        }
        vars
    }

    /// Reads the YAML hosts file: `all: {hosts: {...}, vars: {...}, children: {...}}`;
    /// other top-level groups are children of `all`, as Ansible reads them.
    fn read_yaml(&mut self, file: &str, root: &Node) -> Result<(), String> {
        for (group, _, body) in root.entries() {
            if group != "all" {
                self.add_child("all", group);
            }
            self.read_group(file, group, body)?;
        }
        Ok(())
    }

    fn read_group(&mut self, file: &str, group: &str, node: &Node) -> Result<(), String> {
        self.groups.entry(group.to_string()).or_default();
        for (key, line, value) in node.entries() {
            match key.as_str() {
                "hosts" => {
                    for (pattern, at, vars) in value.entries() {
                        for host in expand_hosts(pattern)
                            .map_err(|e| format!("{file}:{at}: {e}"))?
                        {
                            self.add_host(&host, group, format!("{file}:{at}"));
                            for (k, l, v) in vars.entries() {
                                self.host_vars.entry(host.clone()).or_default().push(Var {
                                    key: k.clone(),
                                    value: v.clone(),
                                    file: file.to_string(),
                                    line: *l,
                                });
                            }
                        }
                    }
                }
                "vars" => {
                    for (k, l, v) in value.entries() {
                        self.group_vars
                            .entry(group.to_string())
                            .or_default()
                            .push(Var {
                                key: k.clone(),
                                value: v.clone(),
                                file: file.to_string(),
                                line: *l,
                            });
                    }
                }
                "children" => {
                    for (child, _, body) in value.entries() {
                        self.add_child(group, child);
                        self.read_group(file, child, body)?;
                    }
                }
                other => {
                    return Err(format!(
                        "{file}:{line}: `{other}` in group {group}: an Ansible group holds only hosts, vars and children"
                    ))
                }
            }
        }
        Ok(())
    }

    /// Reads the INI hosts file of Kubespray's sample: `[group]` with host lines
    /// (`node1 ansible_host=95.54.0.12 ip=10.3.0.1`), `[group:children]`, `[group:vars]`.
    fn read_ini(&mut self, file: &str, text: &str) -> Result<(), String> {
        let mut section = ("ungrouped".to_string(), "");
        for (n, raw) in text.lines().enumerate() {
            let line = n + 1;
            let body = strip_ini_comment(raw).trim();
            if body.is_empty() {
                continue;
            }
            if let Some(header) = body.strip_prefix('[') {
                let header = header.strip_suffix(']').ok_or_else(|| {
                    format!("{file}:{line}: a section header must end with `]`: {body}")
                })?;
                section = match header.split_once(':') {
                    Some((group, kind @ ("children" | "vars"))) => (group.to_string(), kind),
                    Some((_, kind)) => {
                        return Err(format!(
                            "{file}:{line}: unknown section kind `:{kind}` (Ansible knows :children and :vars)"
                        ))
                    }
                    None => (header.to_string(), ""),
                };
                self.groups.entry(section.0.clone()).or_default();
                continue;
            }
            let group = section.0.clone();
            match section.1 {
                "children" => self.add_child(&group, body),
                "vars" => {
                    let (key, value) = body.split_once('=').ok_or_else(|| {
                        format!("{file}:{line}: a [{group}:vars] line is key=value: {body}")
                    })?;
                    self.group_vars.entry(group).or_default().push(Var {
                        key: key.trim().to_string(),
                        value: Node::Scalar(unquote(value.trim()), line),
                        file: file.to_string(),
                        line,
                    });
                }
                _ => {
                    let mut words = body.split_whitespace();
                    let Some(pattern) = words.next() else {
                        continue;
                    };
                    let hosts = expand_hosts(pattern).map_err(|e| format!("{file}:{line}: {e}"))?;
                    for host in &hosts {
                        self.add_host(host, &group, format!("{file}:{line}"));
                    }
                    for word in words {
                        let (key, value) = word.split_once('=').ok_or_else(|| {
                            format!("{file}:{line}: host variables are key=value: {word}")
                        })?;
                        for host in &hosts {
                            self.host_vars.entry(host.clone()).or_default().push(Var {
                                key: key.to_string(),
                                value: Node::Scalar(unquote(value), line),
                                file: file.to_string(),
                                line,
                            });
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Reads `group_vars/<group>.yml` and `group_vars/<group>/*.yml`.
    fn read_group_vars(&mut self, dir: &Path) -> Result<(), String> {
        let mut files: Vec<(String, PathBuf)> = Vec::new();
        let entries =
            std::fs::read_dir(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().to_string();
            if path.is_dir() {
                let mut inner: Vec<PathBuf> = std::fs::read_dir(&path)
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))?
                    .flatten()
                    .map(|e| e.path())
                    .filter(|p| is_yaml(p))
                    .collect();
                inner.sort();
                files.extend(inner.into_iter().map(|p| (name.clone(), p)));
            } else if is_yaml(&path) {
                let group = name
                    .trim_end_matches(".yml")
                    .trim_end_matches(".yaml")
                    .to_string();
                files.push((group, path));
            }
        }
        files.sort();
        for (group, path) in files {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            let shown = path.display().to_string();
            if text.starts_with("$ANSIBLE_VAULT;") {
                // A whole file encrypted with ansible-vault (secrets, by custom): not read.
                self.notes.push(format!(
                    "{shown}:1: encrypted with ansible-vault: not read (k8sup takes secrets from the environment)"
                ));
                continue;
            }
            let root = parse_yaml(&text).map_err(|e| format!("{shown}: not YAML: {e}"))?;
            let Some(root) = root else { continue };
            if !matches!(root, Node::Map(..)) {
                if root.text().is_empty() {
                    continue;
                }
                return Err(format!(
                    "{shown}:{}: group variables must be a mapping of names to values",
                    root.line()
                ));
            }
            for (key, line, value) in root.entries() {
                self.group_vars.entry(group.clone()).or_default().push(Var {
                    key: key.clone(),
                    value: value.clone(),
                    file: shown.clone(),
                    line: *line,
                });
            }
        }
        Ok(())
    }
}

/// The hosts an Ansible host pattern names: `node[01:03]` is node01, node02, node03;
/// `db-[a:c]` is db-a, db-b, db-c; `[start:end:stride]` steps; a name without `[` is itself.
fn expand_hosts(pattern: &str) -> Result<Vec<String>, String> {
    let Some((head, rest)) = pattern.split_once('[') else {
        return Ok(vec![pattern.to_string()]);
    };
    let (range, tail) = rest
        .split_once(']')
        .ok_or_else(|| format!("host pattern {pattern}: `[` without `]`"))?;
    let bad = || format!("host pattern {pattern}: a range is [start:end] or [start:end:stride]");
    let parts: Vec<&str> = range.split(':').collect();
    let (start, end, stride) = match parts.as_slice() {
        [start, end] => (*start, *end, 1),
        [start, end, stride] => (*start, *end, stride.parse::<usize>().map_err(|_| bad())?),
        _ => return Err(bad()),
    };
    if stride == 0 {
        return Err(bad());
    }
    let names: Vec<String> = match (start.parse::<u64>(), end.parse::<u64>()) {
        (Ok(a), Ok(b)) if a <= b => {
            // A leading zero pads every number to the start's width (01, 02, ...).
            let width = if start.starts_with('0') {
                start.len()
            } else {
                0
            };
            (a..=b)
                .step_by(stride)
                .map(|n| format!("{n:0width$}"))
                .collect()
        }
        _ => match (start.as_bytes(), end.as_bytes()) {
            ([a], [b]) if a.is_ascii_lowercase() && b.is_ascii_lowercase() && a <= b => (*a..=*b)
                .step_by(stride)
                .map(|c| (c as char).to_string())
                .collect(),
            _ => return Err(bad()),
        },
    };
    if names.len() > 10_000 {
        return Err(format!(
            "host pattern {pattern} names more than 10000 hosts"
        ));
    }
    let mut hosts = Vec::new();
    for name in names {
        for rest in expand_hosts(tail)? {
            hosts.push(format!("{head}{name}{rest}"));
        }
    }
    Ok(hosts)
}

/// What an ansible-vault encrypted value reads as.
const VAULT: &str = "<encrypted with ansible-vault>";

fn is_yaml(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "yml" || e == "yaml")
}

/// An INI line without its comment: `#` or `;` at the start of a word.
fn strip_ini_comment(line: &str) -> &str {
    let mut previous = ' ';
    for (i, c) in line.char_indices() {
        if (c == '#' || c == ';') && previous.is_whitespace() {
            return &line[..i];
        }
        previous = c;
    }
    line
}

fn unquote(value: &str) -> String {
    for q in ['"', '\''] {
        if let Some(inner) = value.strip_prefix(q).and_then(|v| v.strip_suffix(q)) {
            return inner.to_string();
        }
    }
    value.to_string()
}

/// The groups that make a host a master or a node (Kubespray's names, and the names it
/// used before 2.16).
const MASTER_GROUPS: [&str; 2] = ["kube_control_plane", "kube-master"];
const NODE_GROUPS: [&str; 2] = ["kube_node", "kube-node"];
const ETCD_GROUP: &str = "etcd";
/// The host SSH goes through to reach the others (Kubespray's bastion-ssh-config role).
const BASTION_GROUP: &str = "bastion";
/// Groups whose variables are the cluster's (`k8s_cluster` wins over `all`).
const CLUSTER_GROUPS: [&str; 3] = ["k8s_cluster", "k8s-cluster", "all"];
/// Groups that only gather others: being in one is not worth a note.
const STRUCTURAL_GROUPS: [&str; 4] = ["all", "k8s_cluster", "k8s-cluster", "ungrouped"];

/// What the import made: the inventory's text, and what it left out.
#[derive(Debug)]
pub struct Imported {
    pub toml: String,
    /// `file:line: what` of each setting not carried, and why.
    pub not_carried: Vec<String>,
}

/// Settings whose value must never be copied anywhere, not even into the list.
fn is_secret(key: &str) -> bool {
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
fn convert(ks: &Kubespray, name: &str, source: &str) -> Result<Imported, String> {
    if MASTER_GROUPS.iter().all(|g| ks.members(g).is_empty()) {
        return Err(format!(
            "{source}: no host in kube_control_plane: k8sup needs at least one master"
        ));
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

/// Reads the hosts file (YAML or INI) and the group_vars directory.
fn read(hosts: &Path, group_vars: Option<&Path>) -> Result<Kubespray, String> {
    let text = std::fs::read_to_string(hosts)
        .map_err(|e| format!("cannot read {}: {e}", hosts.display()))?;
    let shown = hosts.display().to_string();
    let mut ks = Kubespray::default();
    let ini = hosts.extension().is_some_and(|e| e == "ini" || e == "cfg")
        || text
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with(';'))
            .is_some_and(|l| l.starts_with('['));
    if ini {
        ks.read_ini(&shown, &text)?;
    } else {
        let root = parse_yaml(&text).map_err(|e| format!("{shown}: not YAML: {e}"))?;
        match root {
            Some(root @ Node::Map(..)) => ks.read_yaml(&shown, &root)?,
            _ => {
                return Err(format!(
                    "{shown}: not an Ansible inventory: expected `all:` with hosts and children"
                ))
            }
        }
    }
    if let Some(dir) = group_vars {
        ks.read_group_vars(dir)?;
    }
    Ok(ks)
}

/// The cluster's name: given, or the directory of the hosts file (Kubespray keeps one
/// inventory directory per cluster), made a valid name.
fn cluster_name(args: &ImportKubesprayArgs) -> String {
    if let Some(name) = &args.name {
        return name.clone();
    }
    let dir = std::fs::canonicalize(&args.hosts)
        .ok()
        .and_then(|p| {
            p.parent()
                .and_then(|d| d.file_name())
                .map(|n| n.to_string_lossy().to_string())
        })
        .unwrap_or_default();
    let name: String = dir
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let name = name.trim_matches('-').to_string();
    if name.is_empty() || name.len() > 63 {
        "kubespray".into()
    } else {
        name
    }
}

pub fn kubespray(args: &ImportKubesprayArgs, output: &OutputArgs) -> u8 {
    let group_vars = args.group_vars.clone().or_else(|| {
        let beside = args.hosts.parent()?.join("group_vars");
        beside.is_dir().then_some(beside)
    });
    let imported = read(&args.hosts, group_vars.as_deref())
        .and_then(|ks| convert(&ks, &cluster_name(args), &args.hosts.display().to_string()));
    let imported = match imported {
        Ok(imported) => imported,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::ERROR;
        }
    };
    // The result is checked as `k8sup validate` would, before anyone relies on it.
    let out_path = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("inventory.toml"));
    let checked = Inventory::from_bytes(
        &out_path,
        imported.toml.as_bytes(),
        &LoadContext::for_file(&out_path),
    );
    match &args.out {
        None => print!("{}", imported.toml),
        Some(path) => {
            let written = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(path)
                .and_then(|mut f| std::io::Write::write_all(&mut f, imported.toml.as_bytes()));
            if let Err(e) = written {
                eprintln!("error: cannot write {}: {e}", path.display());
                return exit::ERROR;
            }
            if !output.quiet {
                println!(
                    "{} written; {} setting(s) not carried over (listed at its end):",
                    path.display(),
                    imported.not_carried.len()
                );
                for line in &imported.not_carried {
                    println!("  {line}");
                }
            }
        }
    }
    if let Err(e) = checked {
        eprintln!("{e}");
        eprintln!("error: the imported inventory needs the changes above before k8sup can use it");
        return exit::ERROR;
    }
    exit::OK
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_nodes_keep_their_lines() {
        let root = parse_yaml("all:\n  hosts:\n    node1:\n      ip: 10.0.0.1\n    node2:\n  vars:\n    list: [a, b]\n")
            .expect("yaml")
            .expect("root");
        let hosts = root.get("all").and_then(|a| a.get("hosts")).expect("hosts");
        assert_eq!(hosts.entries()[0].1, 3);
        let ip = hosts.get("node1").and_then(|n| n.get("ip")).expect("ip");
        assert_eq!(ip, &Node::Scalar("10.0.0.1".into(), 4));
        // A host with no variables is named on its own line.
        assert_eq!(hosts.entries()[1].0, "node2");
        assert_eq!(hosts.entries()[1].1, 5);
        assert_eq!(hosts.get("node2").and_then(Node::scalar), Some(""));
        let vars = root.get("all").and_then(|a| a.get("vars")).expect("vars");
        assert_eq!(vars.entries()[0].1, 7);
        assert_eq!(vars.get("list").map(Node::text).as_deref(), Some("[a, b]"));
    }

    #[test]
    fn ini_lines_lose_their_comments_not_their_values() {
        assert_eq!(
            strip_ini_comment("node1 ansible_host=95.54.0.12  # ip=10.3.0.1"),
            "node1 ansible_host=95.54.0.12  "
        );
        assert_eq!(strip_ini_comment("a=b#c"), "a=b#c");
        let mut ks = Kubespray::default();
        ks.read_ini(
            "inv.ini",
            "[kube_control_plane]\nn1 ansible_host=1.2.3.4 ip='10.0.0.1'\n# n9 ansible_host=9.9.9.9\n[etcd:children]\nkube_control_plane\n[all:vars]\nansible_user=ops\n",
        )
        .expect("ini");
        assert_eq!(ks.hosts, ["n1"]);
        assert_eq!(ks.members("etcd"), BTreeSet::from(["n1".to_string()]));
        let ip = &ks.host_vars["n1"][1];
        assert_eq!(
            (ip.key.as_str(), ip.value.text(), ip.line),
            ("ip", "10.0.0.1".into(), 2)
        );
        assert_eq!(ks.group_vars["all"][0].line, 7);
        let bad = Kubespray::default().read_ini("x.ini", "[kube_node\nn1\n");
        assert!(bad.unwrap_err().contains("x.ini:1:"), "names the line");
    }

    #[test]
    fn secrets_are_never_copied() {
        let mut ks = Kubespray::default();
        ks.read_ini(
            "inv.ini",
            "[kube_control_plane]\nn1 ansible_host=1.2.3.4 ansible_become_password=hunter2hunter2\n[all:vars]\nkubeadm_certificate_key=00ff00ff\n",
        )
        .expect("ini");
        let imported = convert(&ks, "c", "inv.ini").expect("converts");
        assert!(!imported.toml.contains("hunter2"), "{}", imported.toml);
        assert!(!imported.toml.contains("00ff00ff"), "{}", imported.toml);
        assert!(imported
            .not_carried
            .iter()
            .any(|l| l == "inv.ini:2: ansible_become_password: <redacted>"));
        assert!(is_secret("etcd_kubeadm_token") && !is_secret("ansible_ssh_private_key_file"));
    }

    #[test]
    fn hosts_named_before_their_groups_take_roles_from_them() {
        // The shape of Kubespray's inventory docs: every host with its variables
        // first, then the groups naming them.
        let mut ks = Kubespray::default();
        ks.read_ini(
            "inv.ini",
            "a1 ansible_host=192.0.2.1 ip=10.1.0.1\na2 ansible_host=192.0.2.2 ip=10.1.0.2\na3 ansible_host=192.0.2.3\n\n[kube_control_plane]\na1\n\n[etcd]\na1\na3\n\n[kube_node]\na1\na2\na3\n",
        )
        .expect("ini");
        let imported = convert(&ks, "c", "inv.ini").expect("converts");
        let toml = &imported.toml;
        assert!(
            toml.contains("name = \"a1\"\naddress = \"192.0.2.1\"\ninternal_address = \"10.1.0.1\"\nroles = [\"master\", \"node\"]"),
            "{toml}"
        );
        assert!(
            toml.contains("name = \"a3\"\naddress = \"192.0.2.3\"\nroles = [\"node\"]"),
            "{toml}"
        );
        assert!(
            imported
                .not_carried
                .iter()
                .any(|l| l.starts_with("inv.ini:3: host a3: etcd membership differs")),
            "{:?}",
            imported.not_carried
        );
    }

    #[test]
    fn host_patterns_expand_as_ansible_expands_them() {
        assert_eq!(expand_hosts("node1").unwrap(), ["node1"]);
        assert_eq!(expand_hosts("wk[08:10]").unwrap(), ["wk08", "wk09", "wk10"]);
        assert_eq!(
            expand_hosts("n[1:5:2].lan").unwrap(),
            ["n1.lan", "n3.lan", "n5.lan"]
        );
        assert_eq!(expand_hosts("db-[a:c]").unwrap(), ["db-a", "db-b", "db-c"]);
        assert_eq!(
            expand_hosts("r[1:2]n[1:2]").unwrap(),
            ["r1n1", "r1n2", "r2n1", "r2n2"]
        );
        for bad in ["n[1:", "n[3:1]", "n[1:2:0]", "n[a:1]", "n[1]"] {
            assert!(expand_hosts(bad).is_err(), "{bad}");
        }
        let mut ks = Kubespray::default();
        ks.read_ini(
            "inv.ini",
            "[kube_control_plane]\ncp[1:2] ansible_user=ops\n",
        )
        .expect("ini");
        assert_eq!(ks.hosts, ["cp1", "cp2"]);
        assert_eq!(ks.host_vars["cp2"][0].value.text(), "ops");
        let mut ks = Kubespray::default();
        let root = parse_yaml("kube_control_plane:\n  hosts:\n    cp[1:2]:\n      ip: 10.0.0.1\n")
            .expect("yaml")
            .expect("root");
        ks.read_yaml("h.yaml", &root)
            .expect("top-level groups are children of all");
        assert_eq!(ks.members("all").len(), 2);
    }

    #[test]
    fn vault_encrypted_values_and_files_are_not_read() {
        let dir = tempfile::tempdir().expect("dir");
        let all = dir.path().join("all");
        std::fs::create_dir_all(&all).expect("mkdir");
        std::fs::write(
            all.join("vars.yml"),
            "kube_version: v1.30.2\nregistry_login: !vault |\n  $ANSIBLE_VAULT;1.1;AES256\n  6162636465\n",
        )
        .expect("write");
        std::fs::write(
            all.join("vault.yml"),
            "$ANSIBLE_VAULT;1.1;AES256\n3132333435\n",
        )
        .expect("write");
        let mut ks = Kubespray::default();
        ks.read_ini("inv.ini", "[kube_control_plane]\ncp1\n")
            .expect("ini");
        ks.read_group_vars(dir.path()).expect("group_vars");
        let imported = convert(&ks, "c", "inv.ini").expect("converts");
        assert!(
            imported.toml.contains("kubernetes_version = \"1.30.2\""),
            "{}",
            imported.toml
        );
        assert!(!imported.toml.contains("6162636465"), "{}", imported.toml);
        let listed = imported.not_carried.join("\n");
        assert!(
            listed.contains("vars.yml:2: registry_login: <redacted>"),
            "{listed}"
        );
        assert!(
            listed.contains("vault.yml:1: encrypted with ansible-vault"),
            "{listed}"
        );
    }

    #[test]
    fn no_master_is_an_error() {
        let mut ks = Kubespray::default();
        ks.read_ini("inv.ini", "[kube_node]\nn1\n").expect("ini");
        let e = convert(&ks, "c", "inv.ini").unwrap_err();
        assert!(e.contains("no host in kube_control_plane"), "{e}");
    }
}
