//! The facts script and the typed facts it produces.

use serde::Serialize;

use k8sup_inventory::Arch;

/// Prints every fact as `key=value`, one per line; repeated keys (mac, port)
/// list several values. Written for any POSIX sh; a missing tool leaves its
/// key out rather than failing the script.
pub const GATHER_SCRIPT: &str = include_str!("gather.sh");

/// `/etc/os-release`, the fields k8sup reads.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct OsRelease {
    pub id: String,
    pub version_id: String,
    pub id_like: String,
    pub pretty_name: String,
}

/// How a distribution installs packages and what it calls its packages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DistroFamily {
    /// Debian, Ubuntu: apt and dpkg.
    Debian,
    /// RHEL, CentOS, Rocky, Alma, and openEuler and Kylin (RPM-based, dnf): dnf or
    /// yum and rpm.
    Redhat,
}

/// Versions of what is already installed (None: not installed).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Installed {
    pub kubelet: Option<String>,
    pub kubeadm: Option<String>,
    pub kubectl: Option<String>,
    pub containerd: Option<String>,
    pub docker: Option<String>,
    pub cri_dockerd: Option<String>,
    /// On a master: the version of the control plane it runs, the tag of the
    /// kube-apiserver image in its static pod manifest (`v1.30.14`), which
    /// `kubeadm upgrade apply|node` moves.
    pub control_plane: Option<String>,
}

/// The cgroup driver each installed component is configured with.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CgroupDrivers {
    pub docker: Option<String>,
    pub containerd: Option<String>,
    pub kubelet: Option<String>,
}

/// Everything k8sup knows about one host before it changes anything.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostFacts {
    /// What `uname -m` printed, and the architecture it means.
    pub machine: String,
    pub arch: Option<Arch>,
    pub os: OsRelease,
    pub family: Option<DistroFamily>,
    pub kernel: String,
    pub hostname: String,
    pub cpus: u32,
    pub memory_mib: u64,
    /// Memory the kernel can give without swapping (`MemAvailable`).
    pub memory_available_mib: u64,
    pub swap_mib: u64,
    /// Swap in use: what `swapoff` must move back into memory.
    pub swap_used_mib: u64,
    pub cgroup_version: u8,
    pub product_uuid: Option<String>,
    /// Interface name and MAC address, loopback left out.
    pub macs: Vec<(String, String)>,
    /// The name of PID 1 (`systemd` on every supported distribution).
    pub init: String,
    pub package_manager: Option<String>,
    /// TCP ports something listens on.
    pub listening_ports: Vec<u16>,
    pub installed: Installed,
    pub cgroup_drivers: CgroupDrivers,
    /// Size in bytes of k8sup's ledger file (or of its journal, while the file is not
    /// written yet), when k8sup has run on the host before.
    pub k8sup_state_bytes: Option<u64>,
    /// On the first master: the nodes an upgrade cordoned and has not uncordoned yet
    /// (`/var/lib/k8sup/upgrade/cordoned/NODE`), that is an upgrade to resume.
    pub upgrade_cordoned: Vec<String>,
    /// The user the facts were gathered as (0: root, directly or through sudo).
    pub uid: u32,
}

impl HostFacts {
    /// Parses the output of [`GATHER_SCRIPT`]. An output that does not end with
    /// the script's last line was cut short, and is refused.
    pub fn parse(output: &str) -> Result<HostFacts, String> {
        let mut f = HostFacts {
            machine: String::new(),
            arch: None,
            os: OsRelease::default(),
            family: None,
            kernel: String::new(),
            hostname: String::new(),
            cpus: 0,
            memory_mib: 0,
            memory_available_mib: 0,
            swap_mib: 0,
            swap_used_mib: 0,
            cgroup_version: 1,
            product_uuid: None,
            macs: Vec::new(),
            init: String::new(),
            package_manager: None,
            listening_ports: Vec::new(),
            installed: Installed::default(),
            cgroup_drivers: CgroupDrivers::default(),
            k8sup_state_bytes: None,
            upgrade_cordoned: Vec::new(),
            uid: u32::MAX,
        };
        let mut complete = false;
        let some = |v: &str| (!v.is_empty()).then(|| v.to_string());
        for line in output.lines() {
            let Some((key, value)) = line.split_once('=') else {
                continue;
            };
            let value = value.trim();
            match key {
                "machine" => {
                    f.machine = value.to_string();
                    f.arch = Arch::from_uname_machine(value);
                }
                "kernel" => f.kernel = value.to_string(),
                "hostname" => f.hostname = value.to_string(),
                "os_id" => f.os.id = value.to_string(),
                "os_version" => f.os.version_id = value.to_string(),
                "os_like" => f.os.id_like = value.to_string(),
                "os_name" => f.os.pretty_name = value.to_string(),
                "cpus" => f.cpus = value.parse().unwrap_or(0),
                "memory_kib" => f.memory_mib = value.parse::<u64>().unwrap_or(0) / 1024,
                "memory_available_kib" => {
                    f.memory_available_mib = value.parse::<u64>().unwrap_or(0) / 1024
                }
                "swap_kib" => f.swap_mib = value.parse::<u64>().unwrap_or(0).div_ceil(1024),
                "swap_used_kib" => {
                    f.swap_used_mib = value.parse::<u64>().unwrap_or(0).div_ceil(1024)
                }
                "cgroup" => f.cgroup_version = if value == "2" { 2 } else { 1 },
                "product_uuid" => f.product_uuid = some(&value.to_ascii_lowercase()),
                "mac" => {
                    if let Some((iface, mac)) = value.split_once(' ') {
                        let mac = mac.trim().to_ascii_lowercase();
                        if !mac.is_empty() && mac != "00:00:00:00:00:00" {
                            f.macs.push((iface.to_string(), mac));
                        }
                    }
                }
                "init" => f.init = value.to_string(),
                "package_manager" => f.package_manager = some(value),
                "port" => {
                    if let Ok(p) = value.parse() {
                        if !f.listening_ports.contains(&p) {
                            f.listening_ports.push(p);
                        }
                    }
                }
                "kubelet" => f.installed.kubelet = some(value),
                "kubeadm" => f.installed.kubeadm = some(value),
                "kubectl" => f.installed.kubectl = some(value),
                "containerd" => f.installed.containerd = some(value),
                "docker" => f.installed.docker = some(value),
                "cri_dockerd" => f.installed.cri_dockerd = some(value),
                "control_plane" => f.installed.control_plane = some(value),
                "docker_cgroup" => f.cgroup_drivers.docker = some(value),
                "containerd_cgroup" => f.cgroup_drivers.containerd = some(value),
                "kubelet_cgroup" => f.cgroup_drivers.kubelet = some(value),
                "k8sup_state" => f.k8sup_state_bytes = value.parse().ok(),
                "upgrade_cordoned" => f.upgrade_cordoned.push(value.to_string()),
                "uid" => f.uid = value.parse().unwrap_or(u32::MAX),
                "end" => complete = true,
                _ => {}
            }
        }
        if !complete {
            return Err("the facts script's output was cut short".to_string());
        }
        if f.machine.is_empty() {
            return Err(
                "the host did not say its architecture (`uname -m` printed nothing)".into(),
            );
        }
        f.listening_ports.sort_unstable();
        f.family = family_of(&f.os);
        Ok(f)
    }
}

/// openEuler (`ID="openEuler"`) and Kylin (`ID="kylin"`) say nothing of a parent
/// in os-release (no `ID_LIKE`): they are named here. IDs are compared ignoring case.
fn family_of(os: &OsRelease) -> Option<DistroFamily> {
    let words = format!("{} {}", os.id, os.id_like).to_ascii_lowercase();
    let has = |name: &str| words.split_whitespace().any(|w| w == name);
    if has("debian") || has("ubuntu") {
        Some(DistroFamily::Debian)
    } else if has("rhel")
        || has("centos")
        || has("fedora")
        || has("rocky")
        || has("almalinux")
        || has("openeuler")
        || has("kylin")
    {
        Some(DistroFamily::Redhat)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const UBUNTU: &str = "machine=aarch64\nkernel=5.15.0-105-generic\nhostname=n1\nos_id=ubuntu\nos_version=22.04\nos_like=debian\nos_name=Ubuntu 22.04.4 LTS\ncpus=4\nmemory_kib=8029000\nswap_kib=2097148\ncgroup=2\nproduct_uuid=4C4C4544-0042\nmac=eth0 52:54:00:AA:BB:01\nmac=docker0 00:00:00:00:00:00\ninit=systemd\npackage_manager=apt-get\nport=22\nport=22\nport=6443\ndocker_cgroup=cgroupfs\nuid=0\nend=1\n";

    #[test]
    fn parses_every_fact() {
        let f = HostFacts::parse(UBUNTU).unwrap();
        assert_eq!(f.arch, Some(Arch::Arm64));
        assert_eq!(f.family, Some(DistroFamily::Debian));
        assert_eq!(f.os.version_id, "22.04");
        assert_eq!(f.cpus, 4);
        assert_eq!(f.memory_mib, 7840);
        assert_eq!(f.swap_mib, 2048);
        assert_eq!(f.cgroup_version, 2);
        assert_eq!(f.product_uuid.as_deref(), Some("4c4c4544-0042"));
        assert_eq!(f.macs, vec![("eth0".into(), "52:54:00:aa:bb:01".into())]);
        assert_eq!(f.listening_ports, vec![22, 6443]);
        assert_eq!(f.cgroup_drivers.docker.as_deref(), Some("cgroupfs"));
        assert_eq!(f.uid, 0);
    }

    #[test]
    fn the_control_plane_version_is_read_from_the_api_server_manifest() {
        let dir = tempfile::tempdir().expect("temp");
        let manifest = dir.path().join("kube-apiserver.yaml");
        std::fs::write(
            &manifest,
            "spec:\n  containers:\n  - command:\n    - kube-apiserver\n    image: registry.k8s.io/kube-apiserver:v1.30.14\n    imagePullPolicy: IfNotPresent\n",
        )
        .unwrap();
        // The very line of the facts script, run by sh against that file.
        let line = GATHER_SCRIPT
            .lines()
            .find(|l| l.contains("echo \"control_plane="))
            .expect("the script reads the control plane version")
            .replace(
                "/etc/kubernetes/manifests/kube-apiserver.yaml",
                manifest.to_str().unwrap(),
            );
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(&line)
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "control_plane=v1.30.14\n"
        );
        let f =
            HostFacts::parse(&UBUNTU.replace("uid=0", "control_plane=v1.30.14\nuid=0")).unwrap();
        assert_eq!(f.installed.control_plane.as_deref(), Some("v1.30.14"));
    }

    #[test]
    fn refuses_cut_short_output() {
        let cut = UBUNTU.replace("end=1\n", "");
        assert!(HostFacts::parse(&cut).is_err());
    }

    #[test]
    fn openeuler_and_kylin_are_rpm_hosts_without_id_like() {
        for id in ["openEuler", "kylin"] {
            let text = format!("machine=aarch64\nos_id={id}\nos_like=\nend=1\n");
            assert_eq!(
                HostFacts::parse(&text).unwrap().family,
                Some(DistroFamily::Redhat),
                "{id}"
            );
        }
    }

    #[test]
    fn rhel_family_from_id_like() {
        let rocky = "machine=x86_64\nos_id=rocky\nos_like=rhel centos fedora\nend=1\n";
        assert_eq!(
            HostFacts::parse(rocky).unwrap().family,
            Some(DistroFamily::Redhat)
        );
    }

    #[test]
    fn the_script_runs_under_sh_and_parses_here() {
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(GATHER_SCRIPT)
            .output()
            .expect("sh runs");
        let facts = HostFacts::parse(&String::from_utf8_lossy(&out.stdout)).unwrap();
        assert!(!facts.machine.is_empty());
        assert!(facts.cpus >= 1);
        assert!(facts.memory_mib > 0);
    }
}
