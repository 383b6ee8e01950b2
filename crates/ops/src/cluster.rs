//! Operations on the cluster as a whole: fetch the admin kubeconfig from the
//! first master, and tear every host down for a fresh apply (`reset`).

use k8sup_inventory::{Host, Inventory};
use k8sup_shell::Script;

use k8sup_ssh::Session;

use crate::connect::{target_for, ConnectOptions};
use crate::fan_out::in_order;
use crate::lock::{HostLockError, LockOrder};

/// Where kubeadm writes the cluster admin's kubeconfig on a master.
pub const ADMIN_CONF: &str = "/etc/kubernetes/admin.conf";

/// Downloads the admin kubeconfig from the first master and points its
/// `server:` at the inventory's control-plane endpoint. With a local balancer
/// (whose 127.0.0.1 means nothing on this machine) the kubeconfig comes from the
/// first master that answers, and points at that master's API server.
pub async fn kubeconfig(inventory: &Inventory, options: &ConnectOptions) -> Result<String, String> {
    let (master, session) = if inventory.cluster.control_plane_lb.local_port().is_some() {
        let mut failures = Vec::new();
        let mut found = None;
        for master in inventory.masters() {
            match k8sup_ssh::connect(&target_for(master, options)).await {
                Ok(session) => {
                    found = Some((master, session));
                    break;
                }
                Err(e) => failures.push(e.to_string()),
            }
        }
        found.ok_or_else(|| format!("no master answers: {}", failures.join("; ")))?
    } else {
        let master = inventory.first_master();
        let session = k8sup_ssh::connect(&target_for(master, options))
            .await
            .map_err(|e| e.to_string())?;
        (master, session)
    };
    let bytes = session.download(ADMIN_CONF).await.map_err(|e| {
        format!(
            "{e}\n(has the cluster been installed? `k8sup apply` writes {ADMIN_CONF} on {})",
            master.name
        )
    })?;
    session.close().await;
    let text = String::from_utf8(bytes)
        .map_err(|_| format!("{ADMIN_CONF} on {} is not text", master.name))?;
    let server = match inventory.cluster.control_plane_lb.local_port() {
        Some(_) => k8sup_inventory::Endpoint {
            host: master.address.clone(),
            port: k8sup_kube::kubeadm::API_SERVER_PORT,
        },
        None => inventory.cluster.control_plane_endpoint.clone(),
    };
    rewrite_server(&text, &format!("https://{server}"))
}

/// Replaces every cluster's `server:` URL in a kubeconfig.
pub fn rewrite_server(kubeconfig: &str, server: &str) -> Result<String, String> {
    let mut found = false;
    let mut out = String::with_capacity(kubeconfig.len());
    for line in kubeconfig.lines() {
        let trimmed = line.trim_start();
        if let Some(rest) = trimmed.strip_prefix("server:") {
            if !rest.trim().is_empty() {
                found = true;
                let indent = &line[..line.len() - trimmed.len()];
                out.push_str(&format!("{indent}server: {server}\n"));
                continue;
            }
        }
        out.push_str(line);
        out.push('\n');
    }
    if found {
        Ok(out)
    } else {
        Err("the kubeconfig has no cluster server to point at the control-plane endpoint".into())
    }
}

/// What `reset` does on each host, in order. Every step tolerates what is
/// already gone, so a reset of a half-installed or reset host succeeds.
pub(crate) const RESET_SCRIPT: &str = include_str!("reset.sh");

/// How one host's reset went.
#[derive(Debug)]
pub struct ResetReport {
    pub host: String,
    pub result: Result<(), String>,
}

/// Resets every host of `hosts` in parallel. With `options.run`, every host is
/// connected to and locked first: when another run holds any of them, none is reset.
pub async fn reset(
    inventory: &Inventory,
    hosts: &[&Host],
    options: &ConnectOptions,
) -> Vec<ResetReport> {
    let n = options.parallelism(inventory);
    let order = hosts.first().map(|first| LockOrder::new(&first.name));
    let order = order.as_ref();
    let sessions: Vec<Result<Session, LockedOr>> =
        in_order(hosts, n, |host| connect_and_lock(host, options, order)).await;
    let any_locked = sessions
        .iter()
        .any(|s| matches!(s, Err(LockedOr::Locked(_))));
    in_order(
        hosts.iter().zip(sessions),
        n,
        |(host, session)| async move {
            let result = match session {
                Ok(session) if any_locked => {
                    session.close().await;
                    Err(format!(
                        "{} was not reset: another run holds one of the hosts; nothing was changed",
                        host.name
                    ))
                }
                Ok(session) => reset_host(host, session).await,
                Err(LockedOr::Locked(why)) => {
                    Err(format!("{}: {why}; nothing was changed", host.name))
                }
                Err(LockedOr::Failed(why)) => Err(why),
            };
            ResetReport {
                host: host.name.clone(),
                result,
            }
        },
    )
    .await
}

/// Why a host cannot be reset.
enum LockedOr {
    /// Another run holds it.
    Locked(String),
    /// Unreachable, or the lock could not be taken.
    Failed(String),
}

async fn connect_and_lock(
    host: &Host,
    options: &ConnectOptions,
    order: Option<&LockOrder>,
) -> Result<Session, LockedOr> {
    let session = match k8sup_ssh::connect(&target_for(host, options)).await {
        Ok(session) => session,
        Err(e) => {
            if let Some(order) = order {
                order.unreachable(&host.name);
            }
            return Err(LockedOr::Failed(e.to_string()));
        }
    };
    if let (Some(run), Some(order)) = (&options.run, order) {
        if let Err(e) = order.lock(&host.name, &session, run).await {
            session.close().await;
            return Err(match e {
                HostLockError::Held(_) => LockedOr::Locked(e.to_string()),
                HostLockError::Failed(_) => LockedOr::Failed(format!("{}: {e}", host.name)),
            });
        }
    }
    Ok(session)
}

async fn reset_host(host: &Host, session: Session) -> Result<(), String> {
    let out = session
        .run(&Script::new(RESET_SCRIPT))
        .await
        .map_err(|e| e.to_string())?;
    session.close().await;
    if out.success() && out.stdout_text().contains("reset-done") {
        Ok(())
    } else {
        let stderr = out.stderr_text();
        let tail: Vec<&str> = stderr
            .lines()
            .rev()
            .take(5)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        Err(format!(
            "reset failed on {} ({}): {}",
            host.name,
            out.status_text(),
            tail.join(" / ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_server_is_pointed_at_the_endpoint() {
        let conf = "apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: AAA\n    server: https://10.0.0.10:6443\n  name: kubernetes\n";
        let out = rewrite_server(conf, "https://k8s.example.org:6443").unwrap();
        assert!(
            out.contains("    server: https://k8s.example.org:6443\n"),
            "{out}"
        );
        assert!(!out.contains("10.0.0.10"));
        assert!(out.contains("certificate-authority-data: AAA"));
        assert!(rewrite_server("apiVersion: v1\n", "https://x:6443").is_err());
    }
}
