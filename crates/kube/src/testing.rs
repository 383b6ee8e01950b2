//! Inventories for unit tests, parsed from TOML text by the real loader.

use std::path::Path;

use k8sup_inventory::{Inventory, LoadContext};

/// Loads `text` as an inventory, panicking with every problem when it is invalid.
pub fn inventory(text: &str) -> Inventory {
    let path = Path::new("/test/inventory.toml");
    match Inventory::from_bytes(path, text.as_bytes(), &LoadContext::for_file(path)) {
        Ok(inventory) => inventory,
        Err(e) => panic!("test inventory is invalid: {e}"),
    }
}

/// A three-host cluster: first master, second master, a worker.
pub const HA: &str = r#"
[cluster]
name = "lab"
kubernetes_version = "1.30.4"
control_plane_endpoint = "lb.example.org:8443"
apiserver_cert_sans = ["119.254.111.36", "k8s.example.org"]
image_repository = "registry.aliyuncs.com/google_containers"
service_cidr = "10.112.0.0/16"
dns_domain = "corp.local"

[cluster.extra_args]
apiserver = { "audit-log-maxage" = "30" }
kubelet = { "max-pods" = "200" }
etcd = { "quota-backend-bytes" = "8589934592" }

[ssh]
user = "root"

[[hosts]]
name = "m1"
address = "172.120.194.196"
internal_address = "10.0.0.10"
roles = ["master"]

[[hosts]]
name = "m2"
address = "172.120.194.197"
internal_address = "10.0.0.11"
roles = ["master"]

[[hosts]]
name = "w1"
address = "172.120.194.198"
internal_address = "10.0.0.20"
roles = ["node"]
taints = ["dedicated=gpu:NoSchedule"]
"#;

/// One host that is master and node, on 1.31 (v1beta4), with Docker.
pub const SOLO_DOCKER: &str = r#"
[cluster]
name = "solo"
kubernetes_version = "1.31.2"
runtime = "docker"
cgroup_driver = "cgroupfs"

[cluster.extra_args]
apiserver = { "audit-log-maxage" = "30", "enable-admission-plugins" = "NodeRestriction,PodNodeSelector" }
scheduler = { "v" = "2" }
kube-proxy = { "proxy-mode" = "ipvs", "ipvs-strict-arp" = "true" }

[packages]
cri_dockerd = "https://example.org/cri-dockerd-0.3.15.{arch}.tgz"

[ssh]
user = "root"

[[hosts]]
name = "solo"
address = "192.168.56.10"
roles = ["master", "node"]
arch = "amd64"
"#;

/// Three masters and a worker with no endpoint: the local balancer on every host.
pub const HA_LOCAL: &str = r#"
[cluster]
name = "ha"
kubernetes_version = "1.31.2"

[ssh]
user = "root"

[[hosts]]
name = "m1"
address = "172.120.194.196"
internal_address = "10.0.0.10"
roles = ["master"]

[[hosts]]
name = "m2"
address = "172.120.194.197"
internal_address = "10.0.0.11"
roles = ["master"]

[[hosts]]
name = "m3"
address = "172.120.194.199"
internal_address = "10.0.0.12"
roles = ["master"]

[[hosts]]
name = "w1"
address = "172.120.194.198"
internal_address = "10.0.0.20"
roles = ["node"]
"#;
