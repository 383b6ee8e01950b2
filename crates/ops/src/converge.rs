//! Everything `plan` and `apply` do before the engine takes over: connect to
//! every host, gather its facts on the same connection, refuse to go on when a
//! host cannot be worked on (before anything is changed anywhere), and hand
//! each host to the engine with its template context.

use std::collections::BTreeSet;
use std::sync::Arc;

use futures::stream::{self, StreamExt};
use k8sup_engine::{Family, HostSpec, Platform};
use k8sup_facts::{preflight, CheckKind, DistroFamily, Finding, HostFacts};
use k8sup_inventory::{Host, Inventory};

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
    // The CNI manifest is fetched, checked and patched once, for every host.
    let manifest = match cni_manifest(inventory) {
        Ok(m) => m,
        Err(message) => {
            blocking.push(Finding {
                host: inventory.first_master().name.clone(),
                check: CheckKind::Config,
                message,
            });
            None
        }
    };
    let mut specs = Vec::new();
    for (host, facts, session) in ready {
        match host_spec(
            inventory,
            host,
            &facts,
            manifest.as_deref(),
            Arc::new(session),
        ) {
            Ok(spec) => specs.push(spec),
            Err(message) => blocking.push(Finding {
                host: host.name.clone(),
                check: CheckKind::Config,
                message,
            }),
        }
    }
    if !blocking.is_empty() {
        specs.clear();
    }
    Prepared {
        hosts: specs,
        blocking,
    }
}

/// The engine's view of one host: selection data, platform and template context.
fn host_spec(
    inventory: &Inventory,
    host: &Host,
    facts: &HostFacts,
    manifest: Option<&str>,
    transport: Arc<k8sup_ssh::Session>,
) -> Result<HostSpec, String> {
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
    let facts_json = serde_json::to_value(facts).map_err(|e| e.to_string())?;
    // `manifest` is the inventory's patched CNI manifest; None: the built-in one.
    let context = k8sup_kube::context::template_context(inventory, host, &facts_json, manifest)
        .map_err(|e| e.to_string())?;
    Ok(HostSpec {
        name: host.name.clone(),
        roles,
        labels: host.labels.clone(),
        first_master: inventory.first_master().name == host.name,
        platform,
        context,
        transport,
    })
}

/// Fetches the inventory's `cni_manifest` (a file here, or a URL, downloaded
/// once), checks its sha256 when the inventory gives one, and patches it for
/// this cluster. `None` when the inventory names none.
pub fn cni_manifest(inventory: &Inventory) -> Result<Option<String>, String> {
    use k8sup_inventory::ManifestSource;
    use sha2::{Digest, Sha256};
    let Some(source) = &inventory.cluster.cni_manifest else {
        return Ok(None);
    };
    let (what, bytes, wanted) = match source {
        ManifestSource::File { path, sha256 } => (
            path.display().to_string(),
            std::fs::read(path)
                .map_err(|e| format!("cannot read cni_manifest {}: {e}", path.display()))?,
            sha256,
        ),
        ManifestSource::Url { url, sha256 } => (url.clone(), download(url)?, sha256),
    };
    let digest: String = Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    if let Some(wanted) = wanted {
        if *wanted != digest {
            return Err(format!(
                "cni_manifest {what} has sha256 {digest}, but the inventory says {wanted}: refusing to apply it"
            ));
        }
    }
    let text = String::from_utf8(bytes).map_err(|_| format!("cni_manifest {what} is not text"))?;
    let patch = k8sup_kube::manifest::ManifestPatch::for_inventory(inventory);
    k8sup_kube::manifest::cni_manifest(inventory, Some(&text), &patch).map_err(|e| e.to_string())
}

/// Downloads `url` on the controller (at most 16 MiB).
fn download(url: &str) -> Result<Vec<u8>, String> {
    let fail = |e: &dyn std::fmt::Display| format!("cannot download cni_manifest {url}: {e}");
    let response = ureq::get(url).call().map_err(|e| fail(&e))?;
    response
        .into_body()
        .with_config()
        .limit(16 * 1024 * 1024)
        .read_to_vec()
        .map_err(|e| fail(&e))
}
