//! Realistic durations: how long each emulated operation takes on a real host.
//!
//! By default the lab is instant, so that tests stay fast. With durations on
//! (`k8sup-lab up --durations realistic|FILE`, or `durations = "..."` in a lab spec), the
//! emulators sleep for what the real operation takes: package installs per package size
//! over the host's bandwidth, image pulls per image size over a registry mirror that every
//! host of the lab shares, `kubeadm init` and `join`, the kubelet turning Ready after the
//! CNI, service restarts, drain and `kubeadm upgrade`. The figures live in a TOML file;
//! [`REALISTIC`] is the built-in profile, and where each figure comes from is written next
//! to it (`realistic.toml`) and in the lab's README.
//!
//! The lab writes the resolved profile into the cluster directory every host shares
//! ([`install`]); the emulators read it through [`hooks`], which also records every
//! duration it applies in [`APPLIED_LOG`], so that a test can assert what was applied
//! rather than time anything. [`critical`] computes, from a profile and an inventory,
//! the least wall time a whole cluster can take, and [`upgrade`] the ideal time of a
//! rolling upgrade (batches × one node's upgrade time).

pub mod critical;
pub mod hooks;
pub mod upgrade;

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{LabError, Result};

/// The built-in profile's name and text.
pub const REALISTIC: (&str, &str) = ("realistic", include_str!("realistic.toml"));

/// Where the profile sits in the cluster directory (shared by every host).
pub const DIR: &str = "durations";
/// The resolved profile, JSON, under [`DIR`].
pub const PROFILE_FILE: &str = "profile.json";
/// One JSON line per applied duration ([`Applied`]), under [`DIR`].
pub const APPLIED_LOG: &str = "applied.jsonl";

/// A durations profile: bandwidths, sizes and step times. Every field is required in a
/// file (a missing figure is a mistake, not a zero), except `time_scale`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Durations {
    /// Multiplies every duration: 1.0 is real time, 0.1 runs ten times faster (the
    /// applied log keeps the unscaled figures).
    #[serde(default = "one")]
    pub time_scale: f64,
    pub network: Network,
    pub packages: Packages,
    pub images: Images,
    pub steps: Steps,
}

fn one() -> f64 {
    1.0
}

/// Bandwidths in megabits per second.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Network {
    /// One host's download rate from the package repositories (a CDN: not shared).
    pub package_mbps: f64,
    /// One host's network interface: no image pull on it goes faster.
    pub host_mbps: f64,
    /// The registry mirror every host of the lab pulls images from, shared by all.
    pub mirror_mbps: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Packages {
    /// `apt-get update` / `dnf makecache`: fetching the repositories' indexes.
    pub index_update_ms: u64,
    /// Unpacking and configuring one package, after its download.
    pub unpack_ms: u64,
    /// The download size of a package not listed in `kib`.
    pub default_kib: u64,
    /// Download sizes by package name.
    pub kib: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Images {
    /// Unpacking the layers of a pulled image, per MiB.
    pub unpack_ms_per_mib: f64,
    /// The size of an image not listed in `mib`.
    pub default_mib: f64,
    /// Compressed (pull) sizes in MiB by repository path suffix, tag ignored:
    /// `kube-apiserver` matches `registry.k8s.io/kube-apiserver:v1.30.4` and any mirror's.
    pub mib: BTreeMap<String, f64>,
}

/// Times of whole steps, in milliseconds, without the image pulls they need (those are
/// counted per image).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Steps {
    pub kubeadm_init_ms: u64,
    pub kubeadm_join_ms: u64,
    pub kubeadm_join_control_plane_ms: u64,
    /// From the moment a node's kubelet runs and a CNI pod can start on it, to Ready.
    pub kubelet_ready_after_cni_ms: u64,
    pub drain_ms: u64,
    pub kubeadm_upgrade_apply_ms: u64,
    pub kubeadm_upgrade_node_ms: u64,
    /// `systemctl start|restart` by unit name; `default` for the others.
    pub service_restart_ms: BTreeMap<String, u64>,
}

/// One duration an emulator applied, as recorded in [`APPLIED_LOG`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    /// When it started, milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// The lab host it was applied on.
    pub host: String,
    /// What kind of operation: `package`, `index-update`, `image-pull`, `kubeadm-init`,
    /// `kubeadm-join`, `kubeadm-join-control-plane`, `kubelet-ready`, `service-restart`...
    pub op: String,
    /// What it was applied to (a package, an image, a unit, a node).
    pub what: String,
    /// The duration the profile gives, unscaled, in milliseconds.
    pub ms: u64,
}

impl Durations {
    /// Parses and checks a profile; `origin` names it in errors.
    pub fn from_toml(text: &str, origin: &str) -> Result<Durations> {
        let d: Durations = toml::from_str(text)
            .map_err(|e| LabError::InvalidSpec(format!("durations {origin}: {e}")))?;
        d.check()
            .map_err(|e| LabError::InvalidSpec(format!("durations {origin}: {e}")))?;
        Ok(d)
    }

    /// `realistic` (built in) or the path of a durations file.
    pub fn resolve(name_or_path: &str) -> Result<Durations> {
        if name_or_path == REALISTIC.0 {
            return Durations::from_toml(REALISTIC.1, "realistic (built in)");
        }
        let path = Path::new(name_or_path);
        let text = std::fs::read_to_string(path).map_err(|e| {
            LabError::InvalidSpec(format!(
                "durations {name_or_path:?}: neither a built-in profile (realistic) nor a readable file: {e}"
            ))
        })?;
        Durations::from_toml(&text, &path.display().to_string())
    }

    /// The built-in realistic profile.
    pub fn realistic() -> Durations {
        // The built-in text is checked by a unit test; a failure here is a build defect.
        Durations::from_toml(REALISTIC.1, "realistic (built in)")
            .unwrap_or_else(|e| panic!("built-in durations profile: {e}"))
    }

    fn check(&self) -> std::result::Result<(), String> {
        let positive = |name: &str, v: f64| {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err(format!("{name} must be a positive number, not {v}"))
            }
        };
        positive("time_scale", self.time_scale)?;
        positive("network.package_mbps", self.network.package_mbps)?;
        positive("network.host_mbps", self.network.host_mbps)?;
        positive("network.mirror_mbps", self.network.mirror_mbps)?;
        positive("images.default_mib", self.images.default_mib)?;
        if !(self.images.unpack_ms_per_mib.is_finite() && self.images.unpack_ms_per_mib >= 0.0) {
            return Err("images.unpack_ms_per_mib must be a number >= 0".into());
        }
        for (name, mib) in &self.images.mib {
            positive(&format!("images.mib.{name:?}"), *mib)?;
        }
        if !self.steps.service_restart_ms.contains_key("default") {
            return Err("steps.service_restart_ms needs a \"default\" entry".into());
        }
        Ok(())
    }

    /// Download and unpack of one package, milliseconds.
    pub fn package_ms(&self, name: &str) -> u64 {
        let kib = self
            .packages
            .kib
            .get(name)
            .copied()
            .unwrap_or(self.packages.default_kib);
        transfer_ms(kib as f64 * 1024.0, self.network.package_mbps) + self.packages.unpack_ms
    }

    /// An image's pull size in bytes, from its reference (`repo/path:tag` or `@digest`).
    pub fn image_bytes(&self, image: &str) -> u64 {
        let path = image_path(image);
        let mib = self
            .images
            .mib
            .iter()
            .filter(|(suffix, _)| path == suffix.as_str() || path.ends_with(&format!("/{suffix}")))
            // The longest suffix is the most specific (`calico/node` over `node`).
            .max_by_key(|(suffix, _)| suffix.len())
            .map_or(self.images.default_mib, |(_, mib)| *mib);
        (mib * 1024.0 * 1024.0) as u64
    }

    /// Unpacking an image of `bytes`, milliseconds.
    pub fn unpack_ms(&self, bytes: u64) -> u64 {
        (bytes as f64 / (1024.0 * 1024.0) * self.images.unpack_ms_per_mib).round() as u64
    }

    /// A `systemctl start|restart` of `unit` (with or without `.service`).
    pub fn service_ms(&self, unit: &str) -> u64 {
        let name = unit.strip_suffix(".service").unwrap_or(unit);
        let table = &self.steps.service_restart_ms;
        table
            .get(name)
            .or_else(|| table.get("default"))
            .copied()
            .unwrap_or(0)
    }

    /// Writes the profile into a lab's cluster directory, where every host reads it.
    pub fn install(&self, cluster_dir: &Path) -> Result<()> {
        let dir = cluster_dir.join(DIR);
        crate::layout::ensure_private_dir(&dir)?;
        let text = serde_json::to_string_pretty(self)
            .map_err(|e| LabError::InvalidSpec(format!("durations: {e}")))?;
        let path = dir.join(PROFILE_FILE);
        std::fs::write(&path, text).map_err(LabError::path(&path, "write durations profile"))
    }
}

/// Milliseconds to move `bytes` at `mbps` megabits per second.
pub fn transfer_ms(bytes: f64, mbps: f64) -> u64 {
    (bytes * 8.0 / (mbps * 1_000_000.0) * 1000.0).round() as u64
}

/// An image reference without its tag or digest: `registry.k8s.io/kube-apiserver`.
pub fn image_path(image: &str) -> &str {
    let no_digest = image.split('@').next().unwrap_or(image);
    // A tag follows the last ':' after the last '/' (a registry may carry a port).
    match no_digest.rfind(':') {
        Some(i) if !no_digest[i..].contains('/') => &no_digest[..i],
        _ => no_digest,
    }
}

/// The durations applied in a lab so far, oldest first, read from its cluster directory.
pub fn applied(cluster_dir: &Path) -> Result<Vec<Applied>> {
    let path = cluster_dir.join(DIR).join(APPLIED_LOG);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(LabError::path(&path, "read applied durations")(e)),
    };
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str(l).map_err(|e| {
                LabError::InvalidSpec(format!("{}: bad line {l:?}: {e}", path.display()))
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_profile_parses_and_prices_what_the_cluster_needs() {
        let d = Durations::realistic();
        assert_eq!(d.time_scale, 1.0);
        // Every package and image the kube playbook brings has its own figure.
        for p in [
            "kubelet",
            "kubeadm",
            "kubectl",
            "cri-tools",
            "kubernetes-cni",
            "containerd.io",
        ] {
            assert!(d.packages.kib.contains_key(p), "{p} has no size");
        }
        for i in [
            "registry.k8s.io/kube-apiserver:v1.30.4",
            "registry.k8s.io/kube-proxy:v1.30.4",
            "registry.k8s.io/etcd:3.5.12-0",
            "registry.k8s.io/coredns/coredns:v1.11.1",
            "registry.k8s.io/pause:3.9",
            "docker.io/flannel/flannel:v0.25.6",
        ] {
            assert_ne!(
                d.image_bytes(i),
                (d.images.default_mib * 1048576.0) as u64,
                "{i} falls back to the default size"
            );
        }
    }

    #[test]
    fn sizes_become_times_over_the_bandwidth() {
        let d = Durations::realistic();
        // 1 MiB at 8 Mbit/s: 1.048576 s.
        assert_eq!(transfer_ms(1048576.0, 8.0), 1049);
        let kib = d.packages.kib["kubelet"];
        assert_eq!(
            d.package_ms("kubelet"),
            transfer_ms(kib as f64 * 1024.0, d.network.package_mbps) + d.packages.unpack_ms
        );
        assert_eq!(
            d.package_ms("no-such-package"),
            transfer_ms(
                d.packages.default_kib as f64 * 1024.0,
                d.network.package_mbps
            ) + d.packages.unpack_ms
        );
        assert_eq!(
            d.service_ms("containerd.service"),
            d.steps.service_restart_ms["containerd"]
        );
        assert_eq!(d.service_ms("cron"), d.steps.service_restart_ms["default"]);
    }

    #[test]
    fn images_match_by_path_suffix_whatever_the_registry_or_tag() {
        let d = Durations::realistic();
        let upstream = d.image_bytes("registry.k8s.io/kube-proxy:v1.30.4");
        assert_eq!(
            d.image_bytes("mirror.example:5000/k8s/kube-proxy:v1.31.0"),
            upstream
        );
        assert_eq!(
            d.image_bytes("registry.k8s.io/kube-proxy@sha256:abcd"),
            upstream
        );
        assert_eq!(image_path("localhost:5000/pause"), "localhost:5000/pause");
        assert_eq!(
            image_path("localhost:5000/pause:3.9"),
            "localhost:5000/pause"
        );
        // A longer suffix wins: calico/node is not flannel's or anyone's "node".
        let mut d = d;
        d.images.mib.insert("node".into(), 1.0);
        d.images.mib.insert("calico/node".into(), 100.0);
        assert_eq!(
            d.image_bytes("docker.io/calico/node:v3.28.0"),
            100 * 1048576
        );
    }

    #[test]
    fn a_lab_spec_names_a_durations_file_relative_to_itself() {
        let dir = std::env::temp_dir().join(format!("k8sup-durations-spec-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("tmp");
        let spec = dir.join("lab.toml");
        std::fs::write(&spec, "name = \"x\"\ndurations = \"slow.toml\"\n").expect("write");
        let loaded = crate::LabSpec::load(&spec).expect("spec");
        assert_eq!(
            loaded.durations.as_deref(),
            Some(dir.join("slow.toml").to_str().expect("utf-8"))
        );
        std::fs::write(&spec, "name = \"x\"\ndurations = \"realistic\"\n").expect("write");
        let loaded = crate::LabSpec::load(&spec).expect("spec");
        assert_eq!(loaded.durations.as_deref(), Some("realistic"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn bad_profiles_are_refused_with_the_field_named() {
        let text = REALISTIC.1.replace("mirror_mbps = 1000", "mirror_mbps = 0");
        let e = Durations::from_toml(&text, "x.toml")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("x.toml") && e.contains("network.mirror_mbps"),
            "{e}"
        );
        let text = REALISTIC.1.replace("kubeadm_init_ms", "kubeadm_inti_ms");
        let e = Durations::from_toml(&text, "y.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("y.toml") && e.contains("kubeadm_inti_ms"), "{e}");
        let e = Durations::resolve("/nonexistent/d.toml")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("realistic") && e.contains("/nonexistent/d.toml"),
            "{e}"
        );
    }
}
