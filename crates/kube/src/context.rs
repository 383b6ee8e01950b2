//! The template context of the default playbook: one JSON object per host, built
//! from the inventory, the host and its facts, so that templates read simple keys
//! and never compute anything.
//!
//! Everything that needs knowledge (kubeadm documents, runtime configuration,
//! the patched CNI manifest, repository URLs, quoted command-line words) is
//! computed here, in Rust, with tests; the templates only place it. The keys are
//! listed in `docs/kubernetes.md`.
//!
//! Values that reach a command line (`cmd`, `creates`, `unless`) are given
//! pre-quoted, under keys ending in `_q`, or as whole scripts whose every value
//! was quoted by `k8sup_shell`.

use k8sup_inventory::{Arch, Host, Inventory, PackageSource};
use k8sup_shell::ShellArg;
use serde_json::{json, Value};

use crate::kubeadm::{
    self, CA_CERT_HASH_PLACEHOLDER, CERTIFICATE_KEY_PLACEHOLDER, TOKEN_PLACEHOLDER,
};
use crate::manifest::{self, ManifestPatch};
use crate::runtime;
use crate::{pins, KubeError};

/// Where the default playbook writes kubeadm's configuration for `kubeadm init`.
pub const KUBEADM_INIT_PATH: &str = "/etc/k8sup/kubeadm.yaml";
/// Where it writes the JoinConfiguration (with placeholders, never secrets).
pub const KUBEADM_JOIN_PATH: &str = "/etc/k8sup/kubeadm-join.yaml";
/// Where it writes the patched CNI manifest on the first master.
pub const CNI_MANIFEST_PATH: &str = "/etc/k8sup/cni.yaml";
/// The upstream community package repositories; the path goes on with `v1.30/deb/`.
pub const PKGS_K8S_IO: &str = "https://pkgs.k8s.io/core:/stable:";
/// Docker's repositories (containerd.io, docker-ce).
pub const DOCKER_DOWNLOAD: &str = "https://download.docker.com";

/// The context for `host`. `facts` is the host's gathered facts as JSON (the
/// serialized `k8sup_facts::HostFacts`: `os.id`, `os.version_id` are read);
/// `cni_manifest` the patched CNI manifest (see [`crate::manifest::cni_manifest`];
/// `None`: the built-in one, patched for this inventory, which Calico has not),
/// placed only in the first master's context, which is the one that applies it.
pub fn template_context(
    inventory: &Inventory,
    host: &Host,
    facts: &Value,
    cni_manifest: Option<&str>,
) -> Result<Value, KubeError> {
    let c = &inventory.cluster;
    let version = c.kubernetes_version;
    let first_master = inventory.first_master();
    let is_first_master = first_master.name == host.name;
    let os = OsInfo::from_facts(host, facts)?;

    let kubernetes_base = inventory
        .packages
        .kubernetes_repo
        .as_deref()
        .unwrap_or(PKGS_K8S_IO)
        .trim_end_matches('/');
    let kubernetes_minor = format!("{kubernetes_base}/{}", version.repo_minor());
    let docker_base = inventory
        .packages
        .docker_repo
        .as_deref()
        .unwrap_or(DOCKER_DOWNLOAD)
        .trim_end_matches('/');
    let docker_distro = os.docker_distro();

    // The declared architecture, else the one the facts found (`uname -m`).
    let arch: Option<&str> = host
        .arch
        .map(|a| a.as_str())
        .or_else(|| facts.get("arch").and_then(Value::as_str));
    let cri_dockerd = if inventory.needs_cri_dockerd() {
        let missing_arch = || KubeError::Facts {
            host: host.name.clone(),
            field: "arch",
        };
        let arch = arch
            .and_then(|a| Arch::from_name(a).or_else(|| Arch::from_uname_machine(a)))
            .ok_or_else(missing_arch)?;
        pins::cri_dockerd_source(inventory, arch).map_err(|message| KubeError::Pins {
            host: host.name.clone(),
            message,
        })?
    } else {
        None
    };
    // Docker's apt packages carry an epoch (`5:27.3.1-1~ubuntu.22.04~jammy`) that
    // apt matches versions with; dnf matches `docker-ce-27.3.1-*` without it.
    let apt = match facts.get("family").and_then(Value::as_str) {
        Some(family) => family == "debian",
        None => os.docker_distro() != "centos",
    };
    let el7 = !apt && os.version_id.split('.').next() == Some("7");
    let versions = pins::versions_for(inventory, el7);
    let docker_epoch = if apt { "5:" } else { "" };

    let init_config = if is_first_master {
        kubeadm::init_config(inventory, host)?
    } else {
        String::new()
    };
    let join_config = if is_first_master {
        String::new()
    } else {
        kubeadm::join_config(inventory, host)?
    };
    // Only the first master applies the manifest.
    let manifest = match (is_first_master, cni_manifest) {
        (false, _) => String::new(),
        (true, Some(text)) => text.to_string(),
        (true, None) => {
            manifest::cni_manifest(inventory, None, &ManifestPatch::for_inventory(inventory))?
                .unwrap_or_default()
        }
    };
    // The CNI images this host's kubelet will pull, to pull them ahead while init runs.
    let cni_images = match cni_manifest {
        Some(text) => Some(text.to_string()),
        None => manifest::cni_manifest(inventory, None, &ManifestPatch::for_inventory(inventory))
            .ok()
            .flatten(),
    }
    .map(|text| manifest::daemonset_images(&text, arch.unwrap_or("amd64")))
    .unwrap_or_default();
    let cni_images_q = cni_images
        .iter()
        .map(|i| quote(i))
        .collect::<Result<Vec<_>, _>>()?
        .join(" ");
    let balancer = crate::balancer::local_balancer(inventory);
    let runtime_packages: Vec<&str> = match c.runtime {
        k8sup_inventory::Runtime::Containerd => vec!["containerd.io"],
        k8sup_inventory::Runtime::Docker => vec!["docker-ce", "docker-ce-cli", "containerd.io"],
    };

    Ok(json!({
        "cluster": {
            "name": c.name,
            "kubernetes_version": version.to_string(),
            "runtime": c.runtime.as_str(),
            "cgroup_driver": c.cgroup_driver.as_str(),
            "cni": c.cni.as_str(),
            "pod_cidr": c.pod_cidr.to_string(),
            "service_cidr": c.service_cidr.to_string(),
            "dns_domain": c.dns_domain,
            "control_plane_endpoint": c.control_plane_endpoint.to_string(),
            "image_repository": inventory.image_repository(),
            "image_repository_q": quote(inventory.image_repository())?,
            "registry_mirrors": c.registry_mirrors,
        },
        "derived": {
            "cluster_dns": inventory.cluster_dns().to_string(),
            "pause_image": inventory.pause_image(),
            "kubeadm_api": version.kubeadm_api(),
            "needs_cri_dockerd": inventory.needs_cri_dockerd(),
            "package_version": version.to_string(),
            // "1.30.4-1.1" on apt, "1.30.4-150500.1.1" on dnf: the release part varies.
            "package_version_glob": format!("{version}-*"),
            "repo_minor": version.repo_minor(),
            "first_master": first_master.name,
            "first_master_address": first_master.internal_address.to_string(),
        },
        "host": {
            "name": host.name,
            "name_q": quote(&host.name)?,
            "address": host.address,
            "internal_address": host.internal_address.to_string(),
            "arch": arch,
            "is_master": host.roles.master,
            "is_node": host.roles.node,
            "is_first_master": is_first_master,
            "labels": host.labels,
            "taints": host.taints.iter().map(|t| t.to_string()).collect::<Vec<_>>(),
        },
        "os": {
            "id": os.id,
            "version_id": os.version_id,
            "codename": os.codename(),
            "apt_deb822": os.apt_deb822(),
            "yum3": os.yum3(),
        },
        "runtime": {
            "name": c.runtime.as_str(),
            "service": runtime::service(inventory),
            "socket": kubeadm::cri_socket(inventory),
            "cgroup_driver": c.cgroup_driver.as_str(),
            "systemd_cgroup": c.cgroup_driver == k8sup_inventory::CgroupDriver::Systemd,
            "sandbox_image": inventory.pause_image(),
            "packages": runtime_packages,
            "containerd_config": runtime::containerd_config(inventory),
            "containerd_hosts_toml": runtime::containerd_docker_hub_hosts(inventory).unwrap_or_default(),
            "docker_daemon_json": runtime::docker_daemon_json(inventory),
            "needs_cri_dockerd": inventory.needs_cri_dockerd(),
            // Where the controller reads cri-dockerd's release archive for this
            // host's arch (k8sup-ops uploads the program as the `cri-dockerd` artifact),
            // and the sha256 it must have (empty: a source of the user's own, unchecked).
            "cri_dockerd_source": cri_dockerd.as_ref().map(|c| c.location.clone()).unwrap_or_default(),
            "cri_dockerd_sha256": cri_dockerd.as_ref().and_then(|c| c.sha256.clone()).unwrap_or_default(),
            // Pinned (k8sup's table per Kubernetes minor, or the inventory's) and held.
            "containerd_version": versions.containerd_io,
            "containerd_version_glob": format!("{}-*", versions.containerd_io),
            "docker_version": versions.docker_ce,
            "docker_version_glob": format!("{docker_epoch}{}-*", versions.docker_ce),
        },
        "packages": {
            "source": inventory.packages.source.as_str(),
            "from_repo": inventory.packages.source == PackageSource::Repo,
            "kubernetes": ["kubelet", "kubeadm", "kubectl"],
            "kubernetes_apt_url": format!("{kubernetes_minor}/deb/"),
            "kubernetes_apt_key_url_q": quote(&format!("{kubernetes_minor}/deb/Release.key"))?,
            "kubernetes_rpm_url": format!("{kubernetes_minor}/rpm/"),
            "kubernetes_rpm_key_url": format!("{kubernetes_minor}/rpm/repodata/repomd.xml.key"),
            "docker_apt_url": format!("{docker_base}/linux/{docker_distro}"),
            "docker_apt_key_url_q": quote(&format!("{docker_base}/linux/{docker_distro}/gpg"))?,
            "docker_rpm_url": format!("{docker_base}/linux/centos/{}/$basearch/stable", os.docker_rpm_release()),
            "docker_rpm_key_url": format!("{docker_base}/linux/centos/gpg"),
        },
        "kubeadm": {
            "init_config": init_config,
            "join_config": join_config,
            "init_path": KUBEADM_INIT_PATH,
            "join_path": KUBEADM_JOIN_PATH,
            "token_placeholder": TOKEN_PLACEHOLDER,
            "ca_cert_hash_placeholder": CA_CERT_HASH_PLACEHOLDER,
            "certificate_key_placeholder": CERTIFICATE_KEY_PLACEHOLDER,
        },
        "cni": {
            "name": c.cni.as_str(),
            "manifest": manifest,
            "manifest_path": CNI_MANIFEST_PATH,
            "images_q": cni_images_q,
        },
        // The node-local API server balancer (`control_plane_lb = "local"`).
        "balancer": {
            "local": balancer.is_some(),
            "listen": balancer.as_ref().map(|b| b.listen.clone()).unwrap_or_default(),
            "port": balancer.as_ref().map_or(0, |b| b.port),
            "backends": balancer.as_ref().map(|b| b.backends.clone()).unwrap_or_default(),
            "config_path": crate::balancer::HAPROXY_CFG_PATH,
        },
        "nodes": {
            "labels_script": if is_first_master { labels_script(inventory)? } else { String::new() },
            "labels_check": if is_first_master { labels_check(inventory)? } else { String::new() },
        },
    }))
}

/// What the facts say about the distribution.
struct OsInfo {
    id: String,
    version_id: String,
}

impl OsInfo {
    fn from_facts(host: &Host, facts: &Value) -> Result<OsInfo, KubeError> {
        let field = |name: &'static str| -> Result<String, KubeError> {
            facts
                .get("os")
                .and_then(|os| os.get(name))
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or(KubeError::Facts {
                    host: host.name.clone(),
                    field: name,
                })
        };
        Ok(OsInfo {
            id: field("id")?,
            version_id: field("version_id")?,
        })
    }

    /// The release's code name, which apt repositories are laid out by; empty
    /// where no apt repository needs it.
    fn codename(&self) -> &'static str {
        let major = self.version_id.split('.').next().unwrap_or("");
        match (self.id.as_str(), self.version_id.as_str(), major) {
            ("ubuntu", "18.04", _) => "bionic",
            ("ubuntu", "20.04", _) => "focal",
            ("ubuntu", "22.04", _) => "jammy",
            ("ubuntu", "24.04", _) => "noble",
            ("ubuntu", "26.04", _) => "resolute",
            ("debian", _, "10") => "buster",
            ("debian", _, "11") => "bullseye",
            ("debian", _, "12") => "bookworm",
            ("debian", _, "13") => "trixie",
            _ => "",
        }
    }

    /// Whether the release writes its apt sources in deb822 `.sources` files by
    /// default (Ubuntu from 24.04, Debian from 13): k8sup's go in the same form.
    fn apt_deb822(&self) -> bool {
        let major: u32 = self
            .version_id
            .split('.')
            .next()
            .and_then(|m| m.parse().ok())
            .unwrap_or(0);
        match self.id.as_str() {
            "ubuntu" => major >= 24,
            "debian" => major >= 13,
            _ => false,
        }
    }

    /// Whether the host has yum 3 rather than dnf (CentOS 7): its plugins are named
    /// differently. Kylin's "V10" and openEuler's "24.03" are dnf systems whatever
    /// their numbers say.
    fn yum3(&self) -> bool {
        self.id == "centos" && self.version_id.split('.').next() == Some("7")
    }

    /// The release directory of Docker's CentOS rpm repository for this host. The
    /// EL family's `$releasever` (7 to 10) names one; openEuler's (`24.03LTS_SP1`) and
    /// Kylin's (`10`, though V10 is an EL8-era system) do not, or name the wrong one:
    /// they get the CentOS release whose glibc theirs covers: openEuler 22.03/24.03
    /// (glibc 2.34/2.38) the EL9 builds, Kylin V10 (glibc 2.28) the EL8 ones.
    fn docker_rpm_release(&self) -> &'static str {
        match self.id.to_ascii_lowercase().as_str() {
            "openeuler" => "9",
            "kylin" => "8",
            _ => "$releasever",
        }
    }

    /// The directory of Docker's repositories for this distribution.
    fn docker_distro(&self) -> &'static str {
        match self.id.as_str() {
            "ubuntu" => "ubuntu",
            "debian" => "debian",
            _ => "centos",
        }
    }
}

fn quote(text: &str) -> Result<String, KubeError> {
    ShellArg::new(text)
        .map(|a| a.quoted())
        .map_err(|_| KubeError::NotAShellWord {
            value: text.replace('\0', "\\0"),
        })
}

const KUBECTL: &str = "kubectl --kubeconfig /etc/kubernetes/admin.conf";

/// A script for the first master that sets every host's labels and taints on its
/// node, for the nodes registered so far (a node not yet joined is left for the
/// next apply; it registered with the labels a kubelet may set and its taints).
fn labels_script(inventory: &Inventory) -> Result<String, KubeError> {
    let mut lines = vec!["set -e".to_string()];
    for host in inventory.kept() {
        if host.labels.is_empty() && host.taints.is_empty() {
            continue;
        }
        let node = quote(&host.name)?;
        let mut steps = Vec::new();
        if !host.labels.is_empty() {
            let labels = host
                .labels
                .iter()
                .map(|(k, v)| quote(&format!("{k}={v}")))
                .collect::<Result<Vec<_>, _>>()?;
            steps.push(format!(
                "{KUBECTL} label node {node} --overwrite {}",
                labels.join(" ")
            ));
        }
        if !host.taints.is_empty() {
            let taints = host
                .taints
                .iter()
                .map(|t| quote(&t.to_string()))
                .collect::<Result<Vec<_>, _>>()?;
            steps.push(format!(
                "{KUBECTL} taint node {node} --overwrite {}",
                taints.join(" ")
            ));
        }
        lines.push(format!(
            "if {KUBECTL} get node {node} >/dev/null 2>&1; then {}; fi",
            steps.join("; ")
        ));
    }
    Ok(lines.join("\n"))
}

/// A read-only check that every registered node has its labels and taints: the
/// `unless` of the labels task.
fn labels_check(inventory: &Inventory) -> Result<String, KubeError> {
    let mut checks = vec!["true".to_string()];
    for host in inventory.kept() {
        if host.labels.is_empty() && host.taints.is_empty() {
            continue;
        }
        let node = quote(&host.name)?;
        let mut conds = Vec::new();
        if !host.labels.is_empty() {
            // A label selector tells "present with an empty value" from "absent".
            let selector = host
                .labels
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(",");
            conds.push(format!(
                "{KUBECTL} get nodes -l {} --field-selector {} -o name | grep -q .",
                quote(&selector)?,
                quote(&format!("metadata.name={}", host.name))?
            ));
        }
        if !host.taints.is_empty() {
            let listing = quote("{range .spec.taints[*]}{.key}={.value}:{.effect}{\"\\n\"}{end}")?;
            for t in &host.taints {
                let line = format!("{}={}:{}", t.key, t.value, t.effect);
                conds.push(format!(
                    "{KUBECTL} get node {node} -o jsonpath={listing} | grep -qxF -- {}",
                    quote(&line)?
                ));
            }
        }
        checks.push(format!(
            "{{ ! {KUBECTL} get node {node} >/dev/null 2>&1 || {{ {}; }}; }}",
            conds.join(" && ")
        ));
    }
    Ok(checks.join(" && "))
}

#[cfg(test)]
mod tests;
