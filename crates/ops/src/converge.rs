//! Everything `plan` and `apply` do before the engine takes over: connect to
//! every host, gather its facts on the same connection, refuse to go on when a
//! host cannot be worked on (before anything is changed anywhere), and hand
//! each host to the engine with its template context.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use futures::stream::{self, StreamExt};
use k8sup_engine::{Family, HostSpec, Platform};
use k8sup_facts::{preflight, CheckKind, DistroFamily, Finding, HostFacts};
use k8sup_inventory::{Host, Inventory};
use serde_json::json;

use crate::connect::ConnectOptions;
use crate::facts::{gather_host, Outcome};

/// Hosts ready for the engine, or the reasons they are not.
pub struct Prepared {
    /// Every selected host, in inventory order, when all of them can be worked on.
    pub hosts: Vec<HostSpec>,
    /// Problems that forbid changing anything: unreachable hosts, sudo that does
    /// not work, and preflight findings no apply can fix.
    pub blocking: Vec<Finding>,
}

/// Preflight checks that stop an apply before it starts. The others (swap on,
/// a duplicate hostname, a cgroup driver to rewrite) are what apply fixes.
pub fn is_blocking(check: CheckKind) -> bool {
    !matches!(
        check,
        CheckKind::Swap | CheckKind::DuplicateHostname | CheckKind::CgroupDriver
    )
}

/// Connects to `hosts` and gathers their facts (one connection each, kept open
/// for the engine), then runs the blocking preflight checks.
pub async fn prepare(inventory: &Inventory, hosts: &[&Host], options: &ConnectOptions) -> Prepared {
    let n = options.parallelism(inventory);
    let mut gathered: Vec<(usize, _)> = stream::iter(hosts.iter().enumerate())
        .map(|(i, host)| async move { (i, gather_host(host, options).await) })
        .buffer_unordered(n)
        .collect()
        .await;
    gathered.sort_by_key(|(i, _)| *i);

    let mut blocking = Vec::new();
    let mut ready = Vec::new();
    for ((_, g), host) in gathered.into_iter().zip(hosts) {
        let finding = |check, message| Finding {
            host: host.name.clone(),
            check,
            message,
        };
        match (g.outcome, g.session) {
            (
                Outcome::Facts {
                    sudo_problem: Some(problem),
                    ..
                },
                session,
            ) => {
                blocking.push(finding(CheckKind::Sudo, problem));
                if let Some(s) = session {
                    s.close().await;
                }
            }
            (
                Outcome::Facts {
                    facts,
                    sudo_problem: None,
                },
                Some(session),
            ) => ready.push((*host, *facts, session)),
            (Outcome::Facts { .. }, None) => blocking.push(finding(
                CheckKind::Unreachable,
                "the connection was lost after gathering facts".to_string(),
            )),
            (Outcome::Failed(error), session) => {
                blocking.push(finding(CheckKind::Unreachable, error));
                if let Some(s) = session {
                    s.close().await;
                }
            }
        }
    }
    let pairs: Vec<(&Host, &HostFacts)> = ready.iter().map(|(h, f, _)| (*h, f)).collect();
    blocking.extend(
        preflight(inventory, &pairs)
            .into_iter()
            .filter(|f| is_blocking(f.check)),
    );
    blocking.sort();
    if !blocking.is_empty() {
        for (_, _, session) in ready {
            session.close().await;
        }
        return Prepared {
            hosts: Vec::new(),
            blocking,
        };
    }
    let hosts = ready
        .into_iter()
        .map(|(host, facts, session)| host_spec(inventory, host, &facts, Arc::new(session)))
        .collect();
    Prepared {
        hosts,
        blocking: Vec::new(),
    }
}

/// The engine's view of one host: selection data, platform and template context.
fn host_spec(
    inventory: &Inventory,
    host: &Host,
    facts: &HostFacts,
    transport: Arc<k8sup_ssh::Session>,
) -> HostSpec {
    let mut roles = BTreeSet::new();
    if host.roles.master {
        roles.insert("master".to_string());
    }
    if host.roles.node {
        roles.insert("node".to_string());
    }
    let platform = Platform {
        arch: facts
            .arch
            .map_or_else(|| facts.machine.clone(), |a| a.to_string()),
        family: match facts.family {
            Some(DistroFamily::Debian) => Family::Debian,
            Some(DistroFamily::Redhat) => Family::Redhat,
            None => Family::Other,
        },
        distro: facts.os.id.clone(),
        distro_version: facts.os.version_id.clone(),
    };
    HostSpec {
        name: host.name.clone(),
        roles,
        labels: host.labels.clone(),
        first_master: inventory.first_master().name == host.name,
        platform,
        context: template_context(inventory, host, facts),
        transport,
    }
}

/// What templates and `when` expressions see: the cluster, the derived values,
/// this host, its facts, and every host (for configs that list them).
pub fn template_context(
    inventory: &Inventory,
    host: &Host,
    facts: &HostFacts,
) -> serde_json::Value {
    let c = &inventory.cluster;
    let extra_args: BTreeMap<&str, BTreeMap<&str, &str>> = c
        .extra_args
        .iter()
        .map(|(component, flags)| {
            (
                component.as_str(),
                flags
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect(),
            )
        })
        .collect();
    let host_json = |h: &Host| {
        json!({
            "name": h.name,
            "address": h.address,
            "internal_address": h.internal_address.to_string(),
            "roles": { "master": h.roles.master, "node": h.roles.node },
            "arch": h.arch.map(|a| a.as_str()),
            "labels": h.labels,
            "taints": h.taints.iter().map(|t| t.to_string()).collect::<Vec<_>>(),
        })
    };
    json!({
        "cluster": {
            "name": c.name,
            "kubernetes_version": c.kubernetes_version.to_string(),
            "kubernetes_minor": c.kubernetes_version.repo_minor(),
            "runtime": c.runtime.as_str(),
            "cgroup_driver": c.cgroup_driver.as_str(),
            "cni": c.cni.as_str(),
            "pod_cidr": c.pod_cidr.to_string(),
            "service_cidr": c.service_cidr.to_string(),
            "dns_domain": c.dns_domain,
            "control_plane_endpoint": c.control_plane_endpoint.to_string(),
            "apiserver_cert_sans": c.apiserver_cert_sans,
            "image_repository": inventory.image_repository(),
            "registry_mirrors": c.registry_mirrors,
            "extra_args": extra_args,
        },
        "packages": {
            "source": inventory.packages.source.as_str(),
            "kubernetes_repo": inventory.packages.kubernetes_repo,
            "docker_repo": inventory.packages.docker_repo,
            "cri_dockerd": inventory.packages.cri_dockerd,
        },
        "derived": {
            "cluster_dns": inventory.cluster_dns().to_string(),
            "pause_image": inventory.pause_image(),
            "kubeadm_api": c.kubernetes_version.kubeadm_api(),
            "needs_cri_dockerd": inventory.needs_cri_dockerd(),
            "first_master": inventory.first_master().name,
        },
        "host": host_json(host),
        "hosts": inventory.hosts.iter().map(host_json).collect::<Vec<_>>(),
        "facts": facts,
    })
}
