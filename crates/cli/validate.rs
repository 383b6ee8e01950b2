//! `k8sup validate`: read and check an inventory, print a summary of the
//! cluster it describes or every problem found. Connects to nothing.

use std::fmt::Write as _;

use k8sup_inventory::{Arch, Inventory, InventoryError};
use k8sup_kube::pins;
use serde_json::json;

use crate::args::{InventoryArg, OutputArgs};
use crate::exit;

pub fn run(cmd: &InventoryArg, output: &OutputArgs) -> u8 {
    match Inventory::load(&cmd.inventory) {
        Ok(inventory) => {
            if output.json {
                println!("{}", summary_json(&inventory));
            } else if !output.quiet {
                println!("{}: valid", cmd.inventory.display());
                print!("{}", summary_text(&inventory));
            }
            exit::OK
        }
        Err(error) => {
            if output.json {
                println!("{}", errors_json(&error));
            }
            eprintln!("{error}");
            let n = error.diagnostics().len();
            eprintln!(
                "{} problem{} found in {}",
                n,
                if n == 1 { "" } else { "s" },
                error.path().display()
            );
            exit::ERROR
        }
    }
}

/// The summary a person reads: the cluster, its networks, derived values, hosts.
pub fn summary_text(inv: &Inventory) -> String {
    let c = &inv.cluster;
    let mut out = String::new();
    let masters = inv.masters().count();
    let nodes = inv.hosts.iter().filter(|h| h.roles.node).count();
    let _ = writeln!(
        out,
        "cluster     {} (Kubernetes {})",
        c.name, c.kubernetes_version
    );
    let mut runtime = format!("{}, cgroup driver {}", c.runtime, c.cgroup_driver);
    if inv.needs_cri_dockerd() {
        runtime.push_str(", with cri-dockerd");
        if inv.packages.cri_dockerd.is_none()
            && inv.packages.source == k8sup_inventory::PackageSource::Repo
        {
            let pinned = pins::for_version(c.kubernetes_version);
            let _ = write!(runtime, " {} (pinned, sha256 checked)", pinned.cri_dockerd);
        }
    }
    let versions = pins::versions(inv);
    let _ = write!(runtime, "; containerd.io {}", versions.containerd_io);
    if c.runtime == k8sup_inventory::Runtime::Docker {
        let _ = write!(runtime, ", docker-ce {}", versions.docker_ce);
    }
    runtime.push_str(" (held)");
    let _ = writeln!(out, "runtime     {runtime}");
    let _ = writeln!(out, "cni         {}", c.cni);
    let _ = writeln!(
        out,
        "networks    pods {}, services {}, DNS domain {}",
        c.pod_cidr, c.service_cidr, c.dns_domain
    );
    let _ = writeln!(
        out,
        "endpoint    {}{}",
        c.control_plane_endpoint,
        if c.apiserver_cert_sans.is_empty() {
            String::new()
        } else {
            format!(" (extra SANs: {})", c.apiserver_cert_sans.join(", "))
        }
    );
    let _ = writeln!(
        out,
        "derived     cluster DNS {}, pause image {}, kubeadm config {}",
        inv.cluster_dns(),
        inv.pause_image(),
        c.kubernetes_version.kubeadm_api()
    );
    if !c.registry_mirrors.is_empty() {
        let _ = writeln!(out, "mirrors     {}", c.registry_mirrors.join(", "));
    }
    let _ = writeln!(
        out,
        "packages    {}{}",
        inv.packages.source,
        inv.packages
            .kubernetes_repo
            .as_deref()
            .map(|r| format!(", Kubernetes repository {r}"))
            .unwrap_or_default()
    );
    let _ = writeln!(
        out,
        "hosts       {} ({} master{}, {} node{}){}",
        inv.hosts.len(),
        masters,
        if masters == 1 { "" } else { "s" },
        nodes,
        if nodes == 1 { "" } else { "s" },
        arch_counts(inv)
    );
    let rows: Vec<[String; 6]> = inv
        .hosts
        .iter()
        .map(|h| {
            let via = h
                .ssh
                .jump_host
                .as_ref()
                .map(|j| format!(" via {j}"))
                .unwrap_or_default();
            [
                h.name.clone(),
                h.roles.to_string(),
                h.arch.map_or("-".to_string(), |a| a.to_string()),
                h.address.clone(),
                h.internal_address.to_string(),
                format!(
                    "{}@{}:{}{}{via}",
                    h.ssh.user,
                    h.address,
                    h.ssh.port,
                    if h.ssh.become_root { " (sudo)" } else { "" }
                ),
            ]
        })
        .collect();
    let header = ["NAME", "ROLES", "ARCH", "ADDRESS", "INTERNAL", "SSH"].map(String::from);
    let rows: Vec<Vec<String>> = std::iter::once(header.to_vec())
        .chain(rows.into_iter().map(|r| r.to_vec()))
        .collect();
    out.push_str(&crate::table::render_indented(&rows, "  "));
    out
}

fn arch_counts(inv: &Inventory) -> String {
    let parts: Vec<String> = Arch::NAMES
        .iter()
        .filter_map(|name| {
            let n = inv
                .hosts
                .iter()
                .filter(|h| h.arch.is_some_and(|a| a.as_str() == *name))
                .count();
            (n > 0).then(|| format!("{name} {n}"))
        })
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!("; {}", parts.join(", "))
    }
}

fn summary_json(inv: &Inventory) -> serde_json::Value {
    let c = &inv.cluster;
    json!({
        "valid": true,
        "cluster": {
            "name": c.name,
            "kubernetes_version": c.kubernetes_version.to_string(),
            "runtime": c.runtime.as_str(),
            "cgroup_driver": c.cgroup_driver.as_str(),
            "cni": c.cni.as_str(),
            "pod_cidr": c.pod_cidr.to_string(),
            "service_cidr": c.service_cidr.to_string(),
            "dns_domain": c.dns_domain,
            "control_plane_endpoint": c.control_plane_endpoint.to_string(),
            "apiserver_cert_sans": c.apiserver_cert_sans,
            "image_repository": inv.image_repository(),
            "registry_mirrors": c.registry_mirrors,
        },
        "derived": {
            "cluster_dns": inv.cluster_dns().to_string(),
            "pause_image": inv.pause_image(),
            "kubeadm_api": c.kubernetes_version.kubeadm_api(),
            "needs_cri_dockerd": inv.needs_cri_dockerd(),
            // Pinned per Kubernetes minor unless the inventory names its own
            // (CentOS/RHEL 7 hosts get containerd.io 1.6 and docker-ce 26.1).
            "containerd_version": pins::versions(inv).containerd_io,
            "docker_version": (c.runtime == k8sup_inventory::Runtime::Docker)
                .then(|| pins::versions(inv).docker_ce),
            "cri_dockerd_version": (inv.needs_cri_dockerd()
                && inv.packages.cri_dockerd.is_none()
                && inv.packages.source == k8sup_inventory::PackageSource::Repo)
                .then(|| pins::for_version(c.kubernetes_version).cri_dockerd),
        },
        "hosts": inv.hosts.iter().map(|h| json!({
            "name": h.name,
            "address": h.address,
            "internal_address": h.internal_address.to_string(),
            "roles": { "master": h.roles.master, "node": h.roles.node },
            "arch": h.arch.map(|a| a.as_str()),
            "labels": h.labels,
            "taints": h.taints.iter().map(|t| t.to_string()).collect::<Vec<_>>(),
            "ssh": {
                "user": h.ssh.user,
                "port": h.ssh.port,
                "become": h.ssh.become_root,
                "jump_host": h.ssh.jump_host.as_ref().map(|j| j.to_string()),
                "host_key_checking": h.ssh.host_key_checking.as_str(),
            },
        })).collect::<Vec<_>>(),
    })
}

fn errors_json(error: &InventoryError) -> serde_json::Value {
    json!({
        "valid": false,
        "file": error.path().display().to_string(),
        "errors": error.diagnostics().iter().map(|d| {
            let at = error.location(d);
            json!({
                "message": d.message,
                "line": at.map(|l| l.line),
                "column": at.map(|l| l.column),
                "help": d.help,
            })
        }).collect::<Vec<_>>(),
    })
}
