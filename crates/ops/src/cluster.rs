//! Operations on the cluster as a whole: fetch the admin kubeconfig from the
//! first master (`reset`, which tears every host down, is [`crate::reset`]).

use k8sup_inventory::Inventory;
use k8sup_ssh::{CommandError, ConnectError};

use crate::connect::{target_for, ConnectOptions};

/// Where kubeadm writes the cluster admin's kubeconfig on a master.
pub const ADMIN_CONF: &str = "/etc/kubernetes/admin.conf";

/// Why the admin kubeconfig could not be fetched.
#[derive(Debug, thiserror::Error)]
pub enum KubeconfigError {
    #[error("no master answers: {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    NoMasterAnswers(Vec<ConnectError>),
    #[error(transparent)]
    Unreachable(Box<ConnectError>),
    #[error(
        "{source}\n(has the cluster been installed? `k8sup apply` writes {ADMIN_CONF} on {host})"
    )]
    Download {
        host: String,
        #[source]
        source: Box<CommandError>,
    },
    #[error("{ADMIN_CONF} on {host} is not text")]
    NotText { host: String },
    #[error("the kubeconfig has no cluster server to point at the control-plane endpoint")]
    NoServer,
}

/// Downloads the admin kubeconfig from the first master and points its
/// `server:` at the inventory's control-plane endpoint. With a local balancer
/// (whose 127.0.0.1 means nothing on this machine) the kubeconfig comes from the
/// first master that answers, and points at that master's API server.
pub async fn kubeconfig(
    inventory: &Inventory,
    options: &ConnectOptions,
) -> Result<String, KubeconfigError> {
    let (master, session) = if inventory.cluster.control_plane_lb.local_port().is_some() {
        let mut failures = Vec::new();
        let mut found = None;
        for master in inventory.masters() {
            match k8sup_ssh::connect(&target_for(master, options)).await {
                Ok(session) => {
                    found = Some((master, session));
                    break;
                }
                Err(e) => failures.push(e),
            }
        }
        found.ok_or(KubeconfigError::NoMasterAnswers(failures))?
    } else {
        let master = inventory.first_master();
        let session = k8sup_ssh::connect(&target_for(master, options))
            .await
            .map_err(|e| KubeconfigError::Unreachable(Box::new(e)))?;
        (master, session)
    };
    let bytes = session
        .download(ADMIN_CONF)
        .await
        .map_err(|source| KubeconfigError::Download {
            host: master.name.clone(),
            source: Box::new(source),
        })?;
    session.close().await;
    let text = String::from_utf8(bytes).map_err(|_| KubeconfigError::NotText {
        host: master.name.clone(),
    })?;
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
pub fn rewrite_server(kubeconfig: &str, server: &str) -> Result<String, KubeconfigError> {
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
        Err(KubeconfigError::NoServer)
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
