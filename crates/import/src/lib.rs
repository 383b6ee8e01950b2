//! Another tool's inventory as k8sup's: today Kubespray's, so that a Kubespray user
//! starts from what they have.
//!
//! Kubespray's inventory is an Ansible one: a hosts file (YAML, or INI as in its
//! sample) whose groups `kube_control_plane`, `kube_node` and `etcd` give the roles,
//! with per-host variables (`ansible_host`, `ip`, `access_ip`, `ansible_user`, ...),
//! and `group_vars/<group>.yml` or `group_vars/<group>/*.yml` with the cluster's
//! settings (`kube_version`, `container_manager`, `kube_network_plugin`, ...). What
//! k8sup has an equivalent for is carried over; every other setting is listed at the
//! end of the result with the file and line it came from, so nothing is dropped
//! silently. Values of settings that look secret (passwords, tokens, ansible-vault)
//! are never copied, not even into that list.
//!
//! Modules, in the order data flows: `yaml` (a YAML tree that keeps lines), `ansible`
//! (the inventory read: hosts, groups, variables), `convert` (the inventory.toml).

mod ansible;
mod convert;
mod error;
mod yaml;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

pub use convert::Imported;
pub use error::ImportError;

/// Imports the Kubespray inventory whose hosts file is `hosts` (YAML or INI), with the
/// variables in `group_vars`, as the inventory of a cluster named `name`.
pub fn kubespray(
    hosts: &Path,
    group_vars: Option<&Path>,
    name: &str,
) -> Result<Imported, ImportError> {
    let inventory = ansible::read(hosts, group_vars)?;
    convert::convert(&inventory, name, &hosts.display().to_string())
}

/// Where Kubespray keeps the group variables of the hosts file `hosts`: `group_vars`
/// beside it, when there is one.
pub fn default_group_vars(hosts: &Path) -> Option<PathBuf> {
    let beside = hosts.parent()?.join("group_vars");
    beside.is_dir().then_some(beside)
}

/// A cluster name for the hosts file `hosts`: the name of its directory (Kubespray
/// keeps one inventory directory per cluster), made a valid name; else "kubespray".
pub fn cluster_name(hosts: &Path) -> String {
    let dir = std::fs::canonicalize(hosts)
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
