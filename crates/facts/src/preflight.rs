//! Preflight checks: everything that would make a host fail to become a good
//! node, found from facts alone, all at once, before anything is changed.

use std::collections::BTreeMap;

use serde::Serialize;

use k8sup_inventory::{Host, Inventory, Runtime};

use crate::gather::HostFacts;

/// Which check a finding comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CheckKind {
    Unreachable,
    /// Another run holds the host (or the cluster).
    Locked,
    Sudo,
    Arch,
    Distro,
    Swap,
    /// Swap in use beyond the memory available: `swapoff` would fail.
    SwapStuck,
    Resources,
    DuplicateHostname,
    DuplicateMac,
    DuplicateProductUuid,
    PortInUse,
    CgroupDriver,
    /// The host's configuration cannot be rendered from the inventory and its facts.
    Config,
}

impl CheckKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            CheckKind::Unreachable => "unreachable",
            CheckKind::Locked => "locked",
            CheckKind::Sudo => "sudo",
            CheckKind::Arch => "arch",
            CheckKind::Distro => "distro",
            CheckKind::Swap => "swap",
            CheckKind::SwapStuck => "swap-stuck",
            CheckKind::Resources => "resources",
            CheckKind::DuplicateHostname => "duplicate-hostname",
            CheckKind::DuplicateMac => "duplicate-mac",
            CheckKind::DuplicateProductUuid => "duplicate-product-uuid",
            CheckKind::PortInUse => "port-in-use",
            CheckKind::CgroupDriver => "cgroup-driver",
            CheckKind::Config => "config",
        }
    }
}

/// One problem on one host.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Finding {
    pub host: String,
    pub check: CheckKind,
    pub message: String,
}

/// The least a control-plane host needs, as kubeadm's own preflight says.
const MASTER_MIN_CPUS: u32 = 2;
const MASTER_MIN_MEMORY_MIB: u64 = 1700;

/// Ports the control plane listens on.
const MASTER_PORTS: &[(u16, &str)] = &[
    (6443, "kube-apiserver"),
    (2379, "etcd"),
    (2380, "etcd peers"),
    (10250, "kubelet"),
    (10257, "kube-controller-manager"),
    (10259, "kube-scheduler"),
];
const NODE_PORTS: &[(u16, &str)] = &[(10250, "kubelet")];
const NODE_PORT_RANGE: std::ops::RangeInclusive<u16> = 30000..=32767;

/// Every finding over the hosts whose facts were gathered, sorted by host and check.
pub fn preflight(inventory: &Inventory, hosts: &[(&Host, &HostFacts)]) -> Vec<Finding> {
    let mut findings = Vec::new();
    for (host, facts) in hosts {
        let mut add = |check, message: String| {
            findings.push(Finding {
                host: host.name.clone(),
                check,
                message,
            })
        };
        host_checks(inventory, host, facts, &mut add);
    }
    duplicates(hosts, &mut findings);
    findings.sort();
    findings
}

fn host_checks(
    inventory: &Inventory,
    host: &Host,
    facts: &HostFacts,
    add: &mut impl FnMut(CheckKind, String),
) {
    match (host.arch, facts.arch) {
        (Some(declared), Some(actual)) if declared != actual => add(
            CheckKind::Arch,
            format!(
                "the inventory says arch = \"{declared}\" but the host is {actual} (`uname -m` prints {})",
                facts.machine
            ),
        ),
        (_, None) => add(
            CheckKind::Arch,
            format!("k8sup cannot install on a {} host", facts.machine),
        ),
        _ => {}
    }
    if let Err(why) = supported(facts) {
        add(CheckKind::Distro, why);
    }
    if facts.swap_mib > 0 {
        add(
            CheckKind::Swap,
            format!(
                "swap is on ({} MiB); the kubelet refuses to run with swap: apply turns it off (swapoff -a) and comments it out of /etc/fstab",
                facts.swap_mib
            ),
        );
    }
    if facts.swap_used_mib > 0 && facts.swap_used_mib >= facts.memory_available_mib {
        add(
            CheckKind::SwapStuck,
            format!(
                "swap cannot be turned off: {} MiB of it are in use and only {} MiB of memory are available to take them back; free memory or add RAM first",
                facts.swap_used_mib, facts.memory_available_mib
            ),
        );
    }
    if host.roles.master {
        if facts.cpus < MASTER_MIN_CPUS {
            add(
                CheckKind::Resources,
                format!(
                    "a master needs at least {MASTER_MIN_CPUS} CPUs; this host has {}",
                    facts.cpus
                ),
            );
        }
        if facts.memory_mib < MASTER_MIN_MEMORY_MIB {
            add(
                CheckKind::Resources,
                format!(
                    "a master needs at least {MASTER_MIN_MEMORY_MIB} MiB of memory; this host has {} MiB",
                    facts.memory_mib
                ),
            );
        }
    }
    ports(host, facts, add);
    cgroup_drivers(inventory, facts, add);
}

/// Distributions and versions k8sup has playbooks for (see docs/kubernetes.md).
pub const SUPPORTED_DISTROS: &str = "Ubuntu 18.04+, Debian 11+, CentOS 7, Rocky/Alma/RHEL 8-10, openEuler 22.03/24.03 LTS, Kylin V10";

/// Whether k8sup installs on this distribution and release.
fn supported(facts: &HostFacts) -> Result<(), String> {
    let version = parse_version(&facts.os.version_id);
    let name = if facts.os.pretty_name.is_empty() {
        format!("{} {}", facts.os.id, facts.os.version_id)
    } else {
        facts.os.pretty_name.clone()
    };
    let ok = match facts.os.id.to_ascii_lowercase().as_str() {
        "ubuntu" => version >= (18, 4),
        "debian" => version >= (11, 0),
        "centos" => version.0 == 7,
        "rocky" | "almalinux" | "rhel" => (8..=10).contains(&version.0),
        "openeuler" => [(22, 3), (24, 3)].contains(&version),
        // Kylin's VERSION_ID is "V10", whatever the service pack.
        "kylin" => facts.os.version_id.eq_ignore_ascii_case("v10"),
        _ => false,
    };
    if ok && facts.family.is_some() {
        Ok(())
    } else {
        Err(format!(
            "{name} is not supported; k8sup installs on {SUPPORTED_DISTROS}"
        ))
    }
}

fn parse_version(text: &str) -> (u32, u32) {
    let mut parts = text.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
}

/// Ports a Kubernetes component needs that something else already holds. A
/// host that already runs a kubelet holds them itself, and is not checked.
fn ports(host: &Host, facts: &HostFacts, add: &mut impl FnMut(CheckKind, String)) {
    if facts.installed.kubelet.is_some() {
        return;
    }
    let mut wanted: BTreeMap<u16, &str> = BTreeMap::new();
    if host.roles.master {
        wanted.extend(MASTER_PORTS.iter().copied());
    }
    wanted.extend(NODE_PORTS.iter().copied());
    for port in &facts.listening_ports {
        if let Some(component) = wanted.get(port) {
            add(
                CheckKind::PortInUse,
                format!("port {port} ({component}) is already in use"),
            );
        } else if NODE_PORT_RANGE.contains(port) {
            add(
                CheckKind::PortInUse,
                format!("port {port} is in use, inside the NodePort range 30000-32767"),
            );
        }
    }
}

/// The runtime and the kubelet must use the same cgroup driver, the inventory's.
fn cgroup_drivers(
    inventory: &Inventory,
    facts: &HostFacts,
    add: &mut impl FnMut(CheckKind, String),
) {
    let wanted = inventory.cluster.cgroup_driver.as_str();
    let runtime = match inventory.cluster.runtime {
        Runtime::Docker => ("Docker", facts.cgroup_drivers.docker.as_deref()),
        Runtime::Containerd => ("containerd", facts.cgroup_drivers.containerd.as_deref()),
    };
    let configured = [
        runtime,
        ("the kubelet", facts.cgroup_drivers.kubelet.as_deref()),
    ];
    for (component, driver) in configured {
        if let Some(driver) = driver.filter(|d| *d != wanted) {
            add(
                CheckKind::CgroupDriver,
                format!(
                    "{component} is configured with the {driver} cgroup driver, the inventory says {wanted}: two cgroup managers make nodes unstable"
                ),
            );
        }
    }
}

/// Cloned machines: the same hostname, MAC address or product_uuid on two hosts.
fn duplicates(hosts: &[(&Host, &HostFacts)], findings: &mut Vec<Finding>) {
    let mut by_hostname: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    let mut by_mac: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    let mut by_uuid: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (host, facts) in hosts {
        if !facts.hostname.is_empty() {
            by_hostname
                .entry(&facts.hostname)
                .or_default()
                .push(&host.name);
        }
        for (_, mac) in &facts.macs {
            by_mac.entry(mac).or_default().push(&host.name);
        }
        if let Some(uuid) = &facts.product_uuid {
            by_uuid.entry(uuid).or_default().push(&host.name);
        }
    }
    let groups = [
        (by_hostname, CheckKind::DuplicateHostname, "hostname"),
        (by_mac, CheckKind::DuplicateMac, "MAC address"),
        (by_uuid, CheckKind::DuplicateProductUuid, "product_uuid"),
    ];
    for (map, check, what) in groups {
        for (value, mut names) in map {
            names.dedup();
            if names.len() < 2 {
                continue;
            }
            for name in &names {
                let others: Vec<&str> = names.iter().copied().filter(|n| n != name).collect();
                findings.push(Finding {
                    host: name.to_string(),
                    check,
                    message: format!(
                        "has the same {what} ({value}) as {}: cloned machines break node identity",
                        others.join(", ")
                    ),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8sup_inventory::LoadContext;
    use std::path::Path;

    fn inventory() -> Inventory {
        let text = r#"
[cluster]
name = "t"
kubernetes_version = "1.30.4"
runtime = "containerd"
[[hosts]]
name = "m1"
address = "10.0.0.10"
roles = ["master"]
arch = "amd64"
[[hosts]]
name = "n1"
address = "10.0.0.11"
roles = ["node"]
arch = "arm64"
"#;
        let ctx = LoadContext {
            home: "/h".into(),
            local_user: "u".into(),
            base_dir: ".".into(),
        };
        Inventory::from_bytes(Path::new("t.toml"), text.as_bytes(), &ctx).unwrap()
    }

    fn facts(extra: &str) -> HostFacts {
        let base = "machine=x86_64\nos_id=ubuntu\nos_version=22.04\nos_like=debian\nos_name=Ubuntu 22.04\ncpus=2\nmemory_kib=4000000\nswap_kib=0\nhostname=h\n";
        HostFacts::parse(&format!("{base}{extra}end=1\n")).unwrap()
    }

    #[test]
    fn a_good_pair_of_hosts_has_no_findings() {
        let inv = inventory();
        let m = facts("hostname=m1\nproduct_uuid=a\nmac=eth0 52:54:00:00:00:01\n");
        let n = facts("machine=aarch64\nhostname=n1\nproduct_uuid=b\nmac=eth0 52:54:00:00:00:02\n");
        let found = preflight(&inv, &[(&inv.hosts[0], &m), (&inv.hosts[1], &n)]);
        assert_eq!(found, vec![]);
    }

    #[test]
    fn swap_that_memory_cannot_take_back_is_stuck() {
        let inv = inventory();
        let stuck = facts(
            "swap_kib=1048576\nswap_used_kib=1048576\nmemory_available_kib=409600\nhostname=m1\n",
        );
        let found = preflight(&inv, &[(&inv.hosts[0], &stuck)]);
        let kinds: Vec<CheckKind> = found.iter().map(|f| f.check).collect();
        assert_eq!(kinds, vec![CheckKind::Swap, CheckKind::SwapStuck]);
        assert!(
            found[1]
                .message
                .contains("1024 MiB of it are in use and only 400 MiB"),
            "{found:?}"
        );
        // The same swap, unused, can be turned off.
        let free =
            facts("swap_kib=1048576\nswap_used_kib=0\nmemory_available_kib=409600\nhostname=m1\n");
        let kinds: Vec<CheckKind> = preflight(&inv, &[(&inv.hosts[0], &free)])
            .iter()
            .map(|f| f.check)
            .collect();
        assert_eq!(kinds, vec![CheckKind::Swap]);
    }

    #[test]
    fn every_kind_of_problem_is_found_at_once() {
        let inv = inventory();
        let m = facts(
            "cpus=1\nmemory_kib=1000000\nswap_kib=1048576\nport=6443\nport=31000\nproduct_uuid=same\ncontainerd_cgroup=cgroupfs\n",
        );
        let n = facts("os_id=arch\nos_version=\nproduct_uuid=same\n");
        let found = preflight(&inv, &[(&inv.hosts[0], &m), (&inv.hosts[1], &n)]);
        let kinds: Vec<(&str, CheckKind)> =
            found.iter().map(|f| (f.host.as_str(), f.check)).collect();
        assert_eq!(
            kinds,
            vec![
                ("m1", CheckKind::Swap),
                ("m1", CheckKind::Resources),
                ("m1", CheckKind::Resources),
                ("m1", CheckKind::DuplicateHostname),
                ("m1", CheckKind::DuplicateProductUuid),
                ("m1", CheckKind::PortInUse),
                ("m1", CheckKind::PortInUse),
                ("m1", CheckKind::CgroupDriver),
                ("n1", CheckKind::Arch),
                ("n1", CheckKind::Distro),
                ("n1", CheckKind::DuplicateHostname),
                ("n1", CheckKind::DuplicateProductUuid),
            ]
        );
    }

    #[test]
    fn the_distributions_of_2026_and_the_domestic_ones_are_supported() {
        let os = |id: &str, like: &str, version: &str| {
            facts(&format!(
                "os_id={id}\nos_like={like}\nos_version={version}\nos_name=\n"
            ))
        };
        for ok in [
            os("ubuntu", "debian", "24.04"),
            os("ubuntu", "debian", "26.04"),
            os("debian", "", "13"),
            os("rocky", "rhel centos fedora", "10.0"),
            os("almalinux", "rhel centos fedora", "10.0"),
            os("openEuler", "", "22.03"),
            os("openEuler", "", "24.03"),
            os("kylin", "", "V10"),
        ] {
            assert_eq!(supported(&ok), Ok(()), "{:?}", ok.os);
        }
        for (bad, name) in [
            (os("ubuntu", "debian", "16.04"), "ubuntu 16.04"),
            (os("openEuler", "", "20.03"), "openEuler 20.03"),
            (os("rocky", "rhel centos fedora", "11.0"), "rocky 11.0"),
            (os("kylin", "", "V11"), "kylin V11"),
        ] {
            let why = supported(&bad).unwrap_err();
            assert!(
                why.starts_with(&format!(
                    "{name} is not supported; k8sup installs on Ubuntu 18.04+"
                )),
                "{why}"
            );
        }
    }
}
