//! An Ansible inventory as Kubespray writes it, read: hosts in file order, groups
//! with their hosts and children, and every variable with the file and line that set
//! it, from the hosts file (YAML or INI) and `group_vars`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::error::{at, ImportError};
use crate::yaml::{parse_yaml, Node};

/// The groups that make a host a master or a node (Kubespray's names, and the names it
/// used before 2.16).
pub(crate) const MASTER_GROUPS: [&str; 2] = ["kube_control_plane", "kube-master"];
pub(crate) const NODE_GROUPS: [&str; 2] = ["kube_node", "kube-node"];
pub(crate) const ETCD_GROUP: &str = "etcd";
/// The host SSH goes through to reach the others (Kubespray's bastion-ssh-config role).
pub(crate) const BASTION_GROUP: &str = "bastion";
/// Groups whose variables are the cluster's (`k8s_cluster` wins over `all`).
pub(crate) const CLUSTER_GROUPS: [&str; 3] = ["k8s_cluster", "k8s-cluster", "all"];
/// Groups that only gather others: being in one is not worth a note.
pub(crate) const STRUCTURAL_GROUPS: [&str; 4] = ["all", "k8s_cluster", "k8s-cluster", "ungrouped"];

/// One variable from the inventory: where it was set, and for which host or group.
#[derive(Debug, Clone)]
pub(crate) struct Var {
    pub(crate) key: String,
    pub(crate) value: Node,
    pub(crate) file: String,
    pub(crate) line: usize,
}

/// A Kubespray (Ansible) inventory, read: hosts in file order, groups, variables.
#[derive(Debug, Default)]
pub(crate) struct Kubespray {
    pub(crate) hosts: Vec<String>,
    /// Where each host is first named: `file:line`.
    pub(crate) host_at: BTreeMap<String, String>,
    pub(crate) host_vars: BTreeMap<String, Vec<Var>>,
    /// Group -> its hosts and child groups.
    pub(crate) groups: BTreeMap<String, (BTreeSet<String>, BTreeSet<String>)>,
    pub(crate) group_vars: BTreeMap<String, Vec<Var>>,
    /// What was seen but not read (an encrypted file), with where.
    pub(crate) notes: Vec<String>,
}

impl Kubespray {
    pub(crate) fn add_host(&mut self, name: &str, group: &str, at: String) {
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

    pub(crate) fn add_child(&mut self, group: &str, child: &str) {
        self.groups.entry(child.to_string()).or_default();
        self.groups
            .entry(group.to_string())
            .or_default()
            .1
            .insert(child.to_string());
    }

    /// Every host of `group`, through its children.
    pub(crate) fn members(&self, group: &str) -> BTreeSet<String> {
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
    pub(crate) fn groups_of(&self, host: &str) -> Vec<String> {
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
    pub(crate) fn vars_of(&self, host: &str, groups: &[String]) -> Vec<&Var> {
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
    pub(crate) fn read_yaml(&mut self, file: &str, root: &Node) -> Result<(), ImportError> {
        for (group, _, body) in root.entries() {
            if group != "all" {
                self.add_child("all", group);
            }
            self.read_group(file, group, body)?;
        }
        Ok(())
    }

    pub(crate) fn read_group(
        &mut self,
        file: &str,
        group: &str,
        node: &Node,
    ) -> Result<(), ImportError> {
        self.groups.entry(group.to_string()).or_default();
        for (key, line, value) in node.entries() {
            match key.as_str() {
                "hosts" => {
                    for (pattern, named_at, vars) in value.entries() {
                        for host in expand_hosts(pattern).map_err(|e| at(file, *named_at, e))? {
                            self.add_host(&host, group, format!("{file}:{named_at}"));
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
                    return Err(at(
                        file,
                        *line,
                        format!("`{other}` in group {group}: an Ansible group holds only hosts, vars and children"),
                    ))
                }
            }
        }
        Ok(())
    }

    /// Reads the INI hosts file of Kubespray's sample: `[group]` with host lines
    /// (`node1 ansible_host=95.54.0.12 ip=10.3.0.1`), `[group:children]`, `[group:vars]`.
    pub(crate) fn read_ini(&mut self, file: &str, text: &str) -> Result<(), ImportError> {
        let mut section = ("ungrouped".to_string(), "");
        for (n, raw) in text.lines().enumerate() {
            let line = n + 1;
            let body = strip_ini_comment(raw).trim();
            if body.is_empty() {
                continue;
            }
            if let Some(header) = body.strip_prefix('[') {
                let header = header.strip_suffix(']').ok_or_else(|| {
                    at(
                        file,
                        line,
                        format!("a section header must end with `]`: {body}"),
                    )
                })?;
                section = match header.split_once(':') {
                    Some((group, kind @ ("children" | "vars"))) => (group.to_string(), kind),
                    Some((_, kind)) => {
                        return Err(at(
                            file,
                            line,
                            format!(
                            "unknown section kind `:{kind}` (Ansible knows :children and :vars)"
                        ),
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
                        at(
                            file,
                            line,
                            format!("a [{group}:vars] line is key=value: {body}"),
                        )
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
                    let hosts = expand_hosts(pattern).map_err(|e| at(file, line, e))?;
                    for host in &hosts {
                        self.add_host(host, &group, format!("{file}:{line}"));
                    }
                    for word in words {
                        let (key, value) = word.split_once('=').ok_or_else(|| {
                            at(file, line, format!("host variables are key=value: {word}"))
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
    pub(crate) fn read_group_vars(&mut self, dir: &Path) -> Result<(), ImportError> {
        let mut files: Vec<(String, PathBuf)> = Vec::new();
        let entries = std::fs::read_dir(dir).map_err(|source| ImportError::Read {
            path: dir.to_path_buf(),
            source,
        })?;
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().to_string();
            if path.is_dir() {
                let mut inner: Vec<PathBuf> = std::fs::read_dir(&path)
                    .map_err(|source| ImportError::Read {
                        path: path.clone(),
                        source,
                    })?
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
            let text = std::fs::read_to_string(&path).map_err(|source| ImportError::Read {
                path: path.clone(),
                source,
            })?;
            let shown = path.display().to_string();
            if text.starts_with("$ANSIBLE_VAULT;") {
                // A whole file encrypted with ansible-vault (secrets, by custom): not read.
                self.notes.push(format!(
                    "{shown}:1: encrypted with ansible-vault: not read (k8sup takes secrets from the environment)"
                ));
                continue;
            }
            let root = parse_yaml(&text).map_err(|message| ImportError::NotYaml {
                file: shown.clone(),
                message,
            })?;
            let Some(root) = root else { continue };
            if !matches!(root, Node::Map(..)) {
                if root.text().is_empty() {
                    continue;
                }
                return Err(at(
                    &shown,
                    root.line(),
                    "group variables must be a mapping of names to values",
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
pub(crate) fn expand_hosts(pattern: &str) -> Result<Vec<String>, String> {
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
pub(crate) const VAULT: &str = "<encrypted with ansible-vault>";

fn is_yaml(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "yml" || e == "yaml")
}

/// An INI line without its comment: `#` or `;` at the start of a word.
pub(crate) fn strip_ini_comment(line: &str) -> &str {
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

/// Reads the hosts file (YAML or INI) and the group_vars directory.
pub(crate) fn read(hosts: &Path, group_vars: Option<&Path>) -> Result<Kubespray, ImportError> {
    let text = std::fs::read_to_string(hosts).map_err(|source| ImportError::Read {
        path: hosts.to_path_buf(),
        source,
    })?;
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
        let root = parse_yaml(&text).map_err(|message| ImportError::NotYaml {
            file: shown.clone(),
            message,
        })?;
        match root {
            Some(root @ Node::Map(..)) => ks.read_yaml(&shown, &root)?,
            _ => return Err(ImportError::NotInventory { file: shown }),
        }
    }
    if let Some(dir) = group_vars {
        ks.read_group_vars(dir)?;
    }
    Ok(ks)
}
