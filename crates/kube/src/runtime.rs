//! The container runtime's configuration, derived from the inventory.
//!
//! Both runtimes get the inventory's cgroup driver, the one the kubelet gets in
//! its KubeletConfiguration (two cgroup managers on one host make nodes unstable),
//! and the pause image of `image_repository` (the control-plane image setting alone
//! does not move it): containerd as `sandbox_image`, Docker through cri-dockerd's
//! `--pod-infra-container-image` (see `templates/cri-docker.service.j2`).

use k8sup_inventory::{CgroupDriver, Inventory, Runtime};
use serde_json::json;

use crate::kubeadm::cgroup_driver_name;
use crate::manifest::image::mirror_prefix;

/// containerd's `/etc/containerd/config.toml` (config version 2, which containerd
/// 1.5+ reads and 2.x migrates). It replaces the packaged file, which disables
/// the CRI plugin.
pub fn containerd_config(inventory: &Inventory) -> String {
    let systemd = inventory.cluster.cgroup_driver == CgroupDriver::Systemd;
    format!(
        r#"# Written by k8sup from the inventory: edits are replaced on the next apply.
version = 2

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = {sandbox}

[plugins."io.containerd.grpc.v1.cri".containerd]
  default_runtime_name = "runc"

[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"

[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
  SystemdCgroup = {systemd}

[plugins."io.containerd.grpc.v1.cri".registry]
  config_path = "/etc/containerd/certs.d"
"#,
        sandbox = toml_string(&inventory.pause_image()),
    )
}

/// `/etc/containerd/certs.d/docker.io/hosts.toml`: Docker Hub pulled through the
/// inventory's registry mirrors, in order, then Docker Hub itself. `None` without
/// mirrors.
pub fn containerd_docker_hub_hosts(inventory: &Inventory) -> Option<String> {
    let mirrors = &inventory.cluster.registry_mirrors;
    if mirrors.is_empty() {
        return None;
    }
    let mut text = String::from(
        "# Written by k8sup from the inventory's registry_mirrors.\n\
         server = \"https://registry-1.docker.io\"\n",
    );
    for mirror in mirrors {
        text.push_str(&format!(
            "\n[host.{}]\n  capabilities = [\"pull\", \"resolve\"]\n",
            toml_string(mirror.trim_end_matches('/'))
        ));
    }
    Some(text)
}

/// Docker's `/etc/docker/daemon.json`: the cgroup driver, json-file logs with a
/// size limit, overlay2, and the registry mirrors.
pub fn docker_daemon_json(inventory: &Inventory) -> String {
    let mut doc = json!({
        "exec-opts": [format!(
            "native.cgroupdriver={}",
            cgroup_driver_name(inventory.cluster.cgroup_driver)
        )],
        "log-driver": "json-file",
        "log-opts": { "max-size": "100m" },
        "storage-driver": "overlay2",
    });
    if !inventory.cluster.registry_mirrors.is_empty() {
        doc["registry-mirrors"] = json!(inventory.cluster.registry_mirrors);
    }
    // A json! value of strings always serializes.
    let mut text = serde_json::to_string_pretty(&doc).unwrap_or_default();
    text.push('\n');
    text
}

/// The systemd unit of the runtime the kubelet talks to.
pub fn service(inventory: &Inventory) -> &'static str {
    match inventory.cluster.runtime {
        Runtime::Containerd => "containerd",
        Runtime::Docker => "docker",
    }
}

/// The registry host of the first mirror, for messages and manifests.
pub fn first_mirror_host(inventory: &Inventory) -> Option<&str> {
    inventory
        .cluster
        .registry_mirrors
        .first()
        .map(|m| mirror_prefix(m))
}

/// A TOML basic string. JSON's string escapes are TOML's for every character a
/// validated inventory value can hold.
fn toml_string(text: &str) -> String {
    serde_json::Value::from(text).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kubeadm;
    use crate::testing::{inventory, HA, SOLO_DOCKER};

    fn cluster(runtime: &str, driver: &str) -> String {
        format!(
            "[cluster]\nname = \"c\"\nkubernetes_version = \"1.30\"\n\
             runtime = \"{runtime}\"\ncgroup_driver = \"{driver}\"\n\
             [packages]\ncri_dockerd = \"https://example.org/cri-dockerd.{{arch}}.tgz\"\n\
             [ssh]\nuser = \"root\"\n\
             [[hosts]]\nname = \"m1\"\naddress = \"10.0.0.10\"\nroles = [\"master\"]\n"
        )
    }

    #[test]
    fn containerd_uses_the_systemd_cgroup_and_the_mirrored_pause_image() {
        let inv = inventory(HA);
        let text = containerd_config(&inv);
        let doc: toml::Table = toml::from_str(&text).expect("valid TOML");
        let cri = &doc["plugins"]["io.containerd.grpc.v1.cri"];
        assert_eq!(
            cri["sandbox_image"].as_str(),
            Some("registry.aliyuncs.com/google_containers/pause:3.9")
        );
        assert_eq!(
            cri["containerd"]["runtimes"]["runc"]["options"]["SystemdCgroup"].as_bool(),
            Some(true)
        );
    }

    #[test]
    fn cgroup_driver_is_identical_in_runtime_and_kubelet() {
        for runtime in ["containerd", "docker"] {
            for driver in ["systemd", "cgroupfs"] {
                let inv = inventory(&cluster(runtime, driver));
                let kubelet = kubeadm::init_config(&inv, inv.first_master()).unwrap();
                assert!(
                    kubelet.contains(&format!("cgroupDriver: {driver}\n")),
                    "{kubelet}"
                );
                let containerd: toml::Table = toml::from_str(&containerd_config(&inv)).unwrap();
                assert_eq!(
                    containerd["plugins"]["io.containerd.grpc.v1.cri"]["containerd"]["runtimes"]
                        ["runc"]["options"]["SystemdCgroup"]
                        .as_bool(),
                    Some(driver == "systemd")
                );
                let docker: serde_json::Value =
                    serde_json::from_str(&docker_daemon_json(&inv)).unwrap();
                assert_eq!(
                    docker["exec-opts"][0],
                    format!("native.cgroupdriver={driver}")
                );
            }
        }
    }

    #[test]
    fn docker_daemon_json_has_logs_storage_and_mirrors() {
        let inv = inventory(&SOLO_DOCKER.replace(
            "cgroup_driver = \"cgroupfs\"",
            "registry_mirrors = [\"https://mirror.example.org\"]",
        ));
        let doc: serde_json::Value = serde_json::from_str(&docker_daemon_json(&inv)).unwrap();
        assert_eq!(doc["exec-opts"][0], "native.cgroupdriver=systemd");
        assert_eq!(doc["log-driver"], "json-file");
        assert_eq!(doc["log-opts"]["max-size"], "100m");
        assert_eq!(doc["storage-driver"], "overlay2");
        assert_eq!(doc["registry-mirrors"][0], "https://mirror.example.org");
        let hosts = containerd_docker_hub_hosts(&inv).unwrap();
        assert!(
            hosts.contains("[host.\"https://mirror.example.org\"]"),
            "{hosts}"
        );
        assert_eq!(first_mirror_host(&inv), Some("mirror.example.org"));
        assert!(containerd_docker_hub_hosts(&inventory(HA)).is_none());
    }
}
