//! The lab spec: which hosts a lab holds and what each one looks like (distro, arch, memory,
//! swap, identity, ports, kernel, cgroup, sudo). Loaded from TOML (`testing/lab/labs/*.toml`)
//! or built in code by tests.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::distro::{Arch, CgroupVersion, Distro};
use crate::error::{LabError, Result};

/// How the non-root lab user `k8sup` may use sudo on a host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum SudoMode {
    /// `k8sup ALL=(ALL) NOPASSWD:ALL`.
    #[default]
    Nopasswd,
    /// sudo asks for [`crate::K8SUP_PASSWORD`] (use `sudo -S`).
    Password,
    /// The user cannot log in to this host at all.
    Absent,
}

/// A whole lab: its name, lab-wide settings and its hosts.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabSpec {
    /// Names the lab; a unique suffix is added so that labs of the same spec can coexist.
    pub name: String,
    /// Default sudo mode of user `k8sup`; each host may override it.
    #[serde(default)]
    pub k8sup_user: SudoMode,
    /// Add one extra host, `bastion`, to be used as an SSH jump host.
    #[serde(default)]
    pub bastion: bool,
    /// Realistic durations: `realistic` (built in) or a durations file (TOML, relative to
    /// the spec's directory); none: every emulated operation is instant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub durations: Option<String>,
    /// `loopback` (default: every host on its own 127.77.x.y in the machine's network
    /// namespace) or `namespaces` (every host in its own network namespace, so 127.0.0.1
    /// is its own; see [`crate::netns`]).
    #[serde(default)]
    pub network: crate::netns::Network,
    #[serde(default)]
    pub hosts: Vec<HostSpec>,
}

/// One host (or, with `count`, a group of identical hosts named `<name>-1`..`<name>-N`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostSpec {
    pub name: String,
    /// Expands into this many hosts named `<name>-<i>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u32>,
    /// Roles written into the generated inventory ("master", "node").
    #[serde(default = "default_roles")]
    pub roles: Vec<String>,
    #[serde(default)]
    pub distro: Distro,
    #[serde(default)]
    pub arch: Arch,
    #[serde(default = "default_cpus")]
    pub cpus: u32,
    #[serde(default = "default_memory")]
    pub memory_mib: u64,
    /// 0 means no swap.
    #[serde(default)]
    pub swap_mib: u64,
    /// Swap that cannot be disabled: `swapoff` fails like the kernel's ENOMEM.
    #[serde(default)]
    pub swap_locked: bool,
    /// Default: unique per host. Give two hosts the same value to model cloned VMs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product_uuid: Option<String>,
    /// MAC address of eth0. Default: unique per host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    /// TCP ports reported as listening by `ss` (before any emulated service starts).
    #[serde(default = "default_ports")]
    pub listening_ports: Vec<u16>,
    /// `uname -r`. Default: the distro's usual kernel for the arch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel: Option<String>,
    /// Default: the distro's usual cgroup version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroup: Option<CgroupVersion>,
    /// Overrides the lab-wide `k8sup_user`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub k8sup_user: Option<SudoMode>,
}

fn default_roles() -> Vec<String> {
    vec!["node".to_string()]
}
fn default_cpus() -> u32 {
    2
}
fn default_memory() -> u64 {
    4096
}
fn default_ports() -> Vec<u16> {
    vec![22]
}

impl HostSpec {
    /// A host with the defaults: Ubuntu 22.04, amd64, 2 CPUs, 4 GiB, no swap, role node.
    pub fn new(name: impl Into<String>) -> Self {
        HostSpec {
            name: name.into(),
            count: None,
            roles: default_roles(),
            distro: Distro::default(),
            arch: Arch::default(),
            cpus: default_cpus(),
            memory_mib: default_memory(),
            swap_mib: 0,
            swap_locked: false,
            product_uuid: None,
            mac: None,
            listening_ports: default_ports(),
            kernel: None,
            cgroup: None,
            k8sup_user: None,
        }
    }

    pub fn distro(mut self, distro: Distro) -> Self {
        self.distro = distro;
        self
    }
    pub fn arch(mut self, arch: Arch) -> Self {
        self.arch = arch;
        self
    }
    pub fn roles(mut self, roles: &[&str]) -> Self {
        self.roles = roles.iter().map(|r| r.to_string()).collect();
        self
    }
    pub fn master(self) -> Self {
        self.roles(&["master"])
    }
    pub fn cpus(mut self, cpus: u32) -> Self {
        self.cpus = cpus;
        self
    }
    pub fn memory_mib(mut self, mib: u64) -> Self {
        self.memory_mib = mib;
        self
    }
    pub fn swap_mib(mut self, mib: u64) -> Self {
        self.swap_mib = mib;
        self
    }
    pub fn swap_locked(mut self, locked: bool) -> Self {
        self.swap_locked = locked;
        self
    }
    pub fn product_uuid(mut self, uuid: impl Into<String>) -> Self {
        self.product_uuid = Some(uuid.into());
        self
    }
    pub fn mac(mut self, mac: impl Into<String>) -> Self {
        self.mac = Some(mac.into());
        self
    }
    pub fn listening_ports(mut self, ports: &[u16]) -> Self {
        self.listening_ports = ports.to_vec();
        self
    }
    pub fn kernel(mut self, release: impl Into<String>) -> Self {
        self.kernel = Some(release.into());
        self
    }
    pub fn cgroup(mut self, cgroup: CgroupVersion) -> Self {
        self.cgroup = Some(cgroup);
        self
    }
    pub fn k8sup_user(mut self, mode: SudoMode) -> Self {
        self.k8sup_user = Some(mode);
        self
    }
    pub fn count(mut self, n: u32) -> Self {
        self.count = Some(n);
        self
    }

    /// The kernel release this host reports.
    pub fn kernel_release(&self) -> String {
        self.kernel
            .clone()
            .unwrap_or_else(|| self.distro.default_kernel(self.arch))
    }

    /// The cgroup version this host reports.
    pub fn cgroup_version(&self) -> CgroupVersion {
        self.cgroup.unwrap_or(self.distro.default_cgroup())
    }
}

impl LabSpec {
    pub fn new(name: impl Into<String>) -> Self {
        LabSpec {
            name: name.into(),
            k8sup_user: SudoMode::default(),
            bastion: false,
            durations: None,
            network: crate::netns::Network::default(),
            hosts: Vec::new(),
        }
    }

    /// Every host in its own network namespace (see [`crate::netns`]).
    pub fn netns(mut self) -> Self {
        self.network = crate::netns::Network::Namespaces;
        self
    }

    /// Durations for the emulated operations: `realistic` or a durations file's path.
    pub fn durations(mut self, name_or_path: impl Into<String>) -> Self {
        self.durations = Some(name_or_path.into());
        self
    }

    pub fn host(mut self, host: HostSpec) -> Self {
        self.hosts.push(host);
        self
    }

    pub fn with_bastion(mut self) -> Self {
        self.bastion = true;
        self
    }

    /// Parses a spec from TOML text.
    pub fn from_toml(text: &str) -> Result<Self> {
        toml::from_str(text).map_err(|e| LabError::InvalidSpec(e.to_string()))
    }

    /// Reads a spec from a TOML file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| LabError::Spec {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let mut spec: LabSpec = toml::from_str(&text).map_err(|e| LabError::Spec {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        // A durations file is named relative to the spec that names it.
        if let (Some(d), Some(dir)) = (&spec.durations, path.parent()) {
            if d != crate::durations::REALISTIC.0 && Path::new(d).is_relative() {
                spec.durations = Some(dir.join(d).to_string_lossy().into_owned());
            }
        }
        Ok(spec)
    }

    /// Grows (never shrinks) the lab to `n` hosts by cloning the non-master hosts in turn,
    /// named `node-<i>`; used for benchmarks (`k8sup-lab up --hosts 200`).
    pub fn scaled(mut self, n: usize) -> Result<Self> {
        let mut hosts = self.expanded_hosts()?;
        let templates: Vec<HostSpec> = hosts
            .iter()
            .filter(|h| {
                !h.roles
                    .iter()
                    .any(|r| r == "master" || r == "control-plane")
            })
            .cloned()
            .collect();
        let templates = if templates.is_empty() {
            vec![HostSpec::new("node")]
        } else {
            templates
        };
        let mut i = 0;
        while hosts.len() < n {
            let mut h = templates[i % templates.len()].clone();
            let mut suffix = hosts.len() + 1;
            while hosts.iter().any(|x| x.name == format!("node-{suffix}")) {
                suffix += 1;
            }
            h.name = format!("node-{suffix}");
            h.product_uuid = None;
            h.mac = None;
            hosts.push(h);
            i += 1;
        }
        self.hosts = hosts;
        Ok(self)
    }

    /// The hosts with every `count` expanded, checked for unique valid names.
    pub fn expanded_hosts(&self) -> Result<Vec<HostSpec>> {
        let mut out = Vec::new();
        for h in &self.hosts {
            match h.count {
                None => out.push(h.clone()),
                Some(n) => {
                    for i in 1..=n {
                        let mut c = h.clone();
                        c.count = None;
                        c.name = format!("{}-{i}", h.name);
                        out.push(c);
                    }
                }
            }
        }
        let mut seen = std::collections::HashSet::new();
        for h in &out {
            validate_name(&h.name)?;
            if h.name == crate::BASTION_NAME && self.bastion {
                return Err(LabError::InvalidSpec(format!(
                    "host name {:?} is reserved for the bastion",
                    h.name
                )));
            }
            if !seen.insert(h.name.clone()) {
                return Err(LabError::InvalidSpec(format!(
                    "two hosts are named {:?}",
                    h.name
                )));
            }
            if h.swap_locked && h.swap_mib == 0 {
                return Err(LabError::InvalidSpec(format!(
                    "host {}: swap_locked needs swap_mib > 0",
                    h.name
                )));
            }
            if h.cpus == 0 || h.memory_mib == 0 {
                return Err(LabError::InvalidSpec(format!(
                    "host {}: cpus and memory_mib must be > 0",
                    h.name
                )));
            }
        }
        if out.is_empty() {
            return Err(LabError::InvalidSpec("the lab has no hosts".into()));
        }
        Ok(out)
    }
}

/// Host and lab names become file names and hostnames: RFC 1123 labels only.
pub(crate) fn validate_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(LabError::InvalidSpec(format!(
            "{name:?} is not a valid name (lower-case letters, digits and '-', at most 63)"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_toml_with_defaults_and_counts() {
        let spec = LabSpec::from_toml(
            r#"
            name = "t"
            bastion = true
            [[hosts]]
            name = "m"
            roles = ["master"]
            [[hosts]]
            name = "n"
            count = 3
            distro = "rocky9"
            arch = "arm64"
            swap_mib = 512
            "#,
        )
        .expect("spec parses");
        let hosts = spec.expanded_hosts().expect("valid");
        assert_eq!(hosts.len(), 4);
        assert_eq!(hosts[3].name, "n-3");
        assert_eq!(hosts[3].distro, Distro::Rocky9);
        assert_eq!(hosts[3].arch, Arch::Arm64);
        assert_eq!(hosts[0].listening_ports, vec![22]);
        assert!(hosts[3].kernel_release().ends_with(".aarch64"));
    }

    #[test]
    fn rejects_unknown_fields_and_duplicates() {
        assert!(LabSpec::from_toml("name = \"t\"\nfoo = 1").is_err());
        let spec = LabSpec::new("t")
            .host(HostSpec::new("a"))
            .host(HostSpec::new("a"));
        assert!(spec.expanded_hosts().is_err());
        let spec = LabSpec::new("t").host(HostSpec::new("Bad_Name"));
        assert!(spec.expanded_hosts().is_err());
    }

    #[test]
    fn example_specs_parse() {
        for text in [
            include_str!("../labs/demo.toml"),
            include_str!("../labs/preflight.toml"),
            include_str!("../labs/bench.toml"),
            include_str!("../labs/ha.toml"),
        ] {
            let spec = LabSpec::from_toml(text).expect("example parses");
            spec.expanded_hosts().expect("example is valid");
        }
    }

    #[test]
    fn network_defaults_to_loopback_and_takes_namespaces() {
        let spec = LabSpec::from_toml("name = \"t\"").expect("parses");
        assert_eq!(spec.network, crate::netns::Network::Loopback);
        let spec = LabSpec::from_toml(include_str!("../labs/ha.toml")).expect("parses");
        assert_eq!(spec.network, crate::netns::Network::Namespaces);
        assert!(LabSpec::from_toml("name = \"t\"\nnetwork = \"bridge\"").is_err());
        assert_eq!(
            LabSpec::new("t").netns().network,
            crate::netns::Network::Namespaces
        );
    }

    #[test]
    fn scaling_clones_nodes() {
        let spec = LabSpec::new("t")
            .host(HostSpec::new("m").master())
            .host(HostSpec::new("n").arch(Arch::Arm64))
            .scaled(5)
            .expect("scales");
        assert_eq!(spec.hosts.len(), 5);
        assert!(spec.hosts[4].name.starts_with("node-"));
        assert_eq!(spec.hosts[4].arch, Arch::Arm64);
    }
}
