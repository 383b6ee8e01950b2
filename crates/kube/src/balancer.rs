//! The node-local API server balancer (`cluster.control_plane_lb = "local"`):
//! haproxy on every host, listening on `127.0.0.1:<control_plane_lb_port>` and
//! passing TCP (TLS untouched, so client certificates still reach the API
//! server) to every master's API server that answers `/healthz`.
//!
//! kubeadm's `controlPlaneEndpoint` is that address, so the kubelet, kube-proxy
//! (its kubeconfig in the kube-proxy ConfigMap) and the admin kubeconfig on
//! every host reach the control plane through their own host's balancer, and
//! survive any one master. The backends are the masters that stay in the
//! inventory: adding or removing one changes this file (a diff in the plan) and
//! reloads haproxy, which keeps open connections. docs/ha.md says why haproxy,
//! and why as the distribution's systemd service.

use k8sup_inventory::Inventory;
use serde::Serialize;

use crate::kubeadm::API_SERVER_PORT;

/// Where the distributions' haproxy package reads its configuration, and so
/// where k8sup writes it.
pub const HAPROXY_CFG_PATH: &str = "/etc/haproxy/haproxy.cfg";

/// One master's API server behind the balancer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Backend {
    /// The master's node name: haproxy's server name, in its logs and stats.
    pub name: String,
    /// `address:port` of its API server (brackets around an IPv6 address).
    pub address: String,
}

/// What the playbook needs to run the balancer: `None` unless the cluster has
/// a local balancer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LocalBalancer {
    /// The address every host listens on.
    pub listen: String,
    pub port: u16,
    /// Every master that stays, in inventory order.
    pub backends: Vec<Backend>,
}

/// The balancer of `inventory`'s cluster, if k8sup runs one.
pub fn local_balancer(inventory: &Inventory) -> Option<LocalBalancer> {
    let port = inventory.cluster.control_plane_lb.local_port()?;
    let backends = inventory
        .masters()
        .map(|m| Backend {
            name: m.name.clone(),
            address: match m.internal_address {
                std::net::IpAddr::V6(a) => format!("[{a}]:{API_SERVER_PORT}"),
                a => format!("{a}:{API_SERVER_PORT}"),
            },
        })
        .collect();
    Some(LocalBalancer {
        listen: "127.0.0.1".into(),
        port,
        backends,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{inventory, HA, HA_LOCAL};

    #[test]
    fn every_master_that_stays_is_a_backend_on_its_api_server_port() {
        let inv = inventory(HA_LOCAL);
        let lb = local_balancer(&inv).expect("a local balancer");
        assert_eq!((lb.listen.as_str(), lb.port), ("127.0.0.1", 7443));
        let backends: Vec<(&str, &str)> = lb
            .backends
            .iter()
            .map(|b| (b.name.as_str(), b.address.as_str()))
            .collect();
        assert_eq!(
            backends,
            [
                ("m1", "10.0.0.10:6443"),
                ("m2", "10.0.0.11:6443"),
                ("m3", "10.0.0.12:6443")
            ]
        );
        let without_m1 = inventory(&HA_LOCAL.replacen(
            "roles = [\"master\"]\n",
            "roles = [\"master\"]\nremove = true\n",
            1,
        ));
        let lb = local_balancer(&without_m1).expect("a local balancer");
        let names: Vec<&str> = lb.backends.iter().map(|b| b.name.as_str()).collect();
        assert_eq!(names, ["m2", "m3"]);
    }

    #[test]
    fn an_external_endpoint_has_no_local_balancer() {
        assert_eq!(local_balancer(&inventory(HA)), None);
    }
}
