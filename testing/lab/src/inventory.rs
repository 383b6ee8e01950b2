//! Writes a k8sup inventory (`inventory.toml`, see the inventory spec) that points at a
//! lab's hosts: their addresses, roles and arch, and an `[ssh]` table with the lab's key,
//! known_hosts and port (the latency proxy's port when latency is on).

use std::path::{Path, PathBuf};

use crate::error::{LabError, Result};
use crate::lab::Lab;
use crate::skeleton::LAB_USER;

/// How the generated inventory logs in.
#[derive(Debug, Clone, Default)]
pub struct InventoryOptions {
    /// Log in as `k8sup` with `become = true` instead of as root.
    pub as_lab_user: bool,
    /// Reach the hosts through the lab's bastion (`jump_host`).
    pub through_bastion: bool,
    /// Use the passphrase-protected copy of the key.
    pub encrypted_key: bool,
}

fn quoted(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

impl Lab {
    /// The cluster table used when a caller gives none.
    pub fn default_cluster_fragment(&self) -> String {
        format!(
            "[cluster]\nname = {}\nkubernetes_version = \"1.30\"\n",
            quoted(&self.name)
        )
    }

    /// An inventory for this lab, logging in as root: `cluster_fragment` (the `[cluster]`
    /// and other tables, without `[ssh]` or `[[hosts]]`; empty for a default) followed by
    /// `[ssh]` and one `[[hosts]]` per host.
    pub fn inventory_toml(&self, cluster_fragment: &str) -> String {
        self.inventory_toml_with(cluster_fragment, &InventoryOptions::default())
    }

    /// An inventory for this lab with the given login options.
    pub fn inventory_toml_with(&self, cluster_fragment: &str, opts: &InventoryOptions) -> String {
        let mut out = if cluster_fragment.trim().is_empty() {
            self.default_cluster_fragment()
        } else {
            cluster_fragment.trim_end().to_string() + "\n"
        };
        let key = if opts.encrypted_key {
            self.encrypted_private_key()
        } else {
            self.private_key()
        };
        out.push_str("\n[ssh]\n");
        let user = if opts.as_lab_user { LAB_USER } else { "root" };
        out.push_str(&format!("user = {}\n", quoted(user)));
        out.push_str(&format!("port = {}\n", self.client_port()));
        out.push_str(&format!(
            "identity_file = {}\n",
            quoted(&key.to_string_lossy())
        ));
        out.push_str(&format!(
            "known_hosts = {}\n",
            quoted(&self.known_hosts().to_string_lossy())
        ));
        out.push_str("host_key_checking = \"strict\"\n");
        if opts.as_lab_user {
            out.push_str("become = true\n");
        }
        if let (true, Some(b)) = (opts.through_bastion, self.bastion()) {
            out.push_str(&format!(
                "jump_host = {}\n",
                quoted(&format!("root@{}:{}", b.address, self.client_port()))
            ));
        }
        for h in self.hosts() {
            out.push_str("\n[[hosts]]\n");
            out.push_str(&format!("name = {}\n", quoted(&h.name)));
            out.push_str(&format!("address = {}\n", quoted(&h.address.to_string())));
            let roles: Vec<String> = h.spec.roles.iter().map(|r| quoted(r)).collect();
            out.push_str(&format!("roles = [{}]\n", roles.join(", ")));
            out.push_str(&format!("arch = {}\n", quoted(h.spec.arch.as_str())));
        }
        out
    }

    /// Writes [`Lab::inventory_toml`] to `path`.
    pub fn write_inventory(&self, path: &Path, cluster_fragment: &str) -> Result<PathBuf> {
        std::fs::write(path, self.inventory_toml(cluster_fragment))
            .map_err(LabError::path(path, "write inventory"))?;
        Ok(path.to_path_buf())
    }
}
