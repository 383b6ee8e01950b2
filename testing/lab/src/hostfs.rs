//! One host's root filesystem: the per-host files (identity, fake /proc and /sys, sudo
//! policy, swap) written into the host's overlay upper layer, and the two overlay mounts
//! that make the chroot: `/` = upper over the shared skeleton, `/usr` = per-host upper over
//! the lab's emulator layer over the machine's real /usr; and the lab's cluster directory,
//! bind-mounted at the same path in every host.

use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::distro::CgroupVersion;
use crate::error::{LabError, Result};
use crate::procfs::{self, LoadedModule, SwapArea};
use crate::profile::{self, HostProfile};
use crate::spec::{HostSpec, SudoMode};
use crate::sys;

/// Everything needed to build one host, resolved from the spec.
#[derive(Debug, Clone)]
pub(crate) struct HostPlan {
    pub spec: HostSpec,
    pub address: std::net::Ipv4Addr,
    /// The host's network namespace, in a namespaced lab.
    pub netns: Option<String>,
    /// The host's position in the lab (names its veth).
    pub index: usize,
    pub sudo: SudoMode,
    pub product_uuid: String,
    pub mac: String,
}

/// The paths of one host under the lab directory.
#[derive(Debug, Clone)]
pub struct HostDirs {
    pub dir: PathBuf,
}

impl HostDirs {
    pub fn new(lab_dir: &Path, host: &str) -> Self {
        HostDirs {
            dir: lab_dir.join("hosts").join(host),
        }
    }
    pub fn upper(&self) -> PathBuf {
        self.dir.join("upper")
    }
    pub fn work(&self) -> PathBuf {
        self.dir.join("work")
    }
    pub fn usr_upper(&self) -> PathBuf {
        self.dir.join("usr-upper")
    }
    pub fn usr_work(&self) -> PathBuf {
        self.dir.join("usr-work")
    }
    /// The merged root: the chroot, and where a test reads the host's files.
    pub fn root(&self) -> PathBuf {
        self.dir.join("root")
    }
    pub fn host_key(&self) -> PathBuf {
        self.dir.join("ssh_host_ed25519_key")
    }
    pub fn sshd_config(&self) -> PathBuf {
        self.dir.join("sshd_config")
    }
    pub fn sshd_log(&self) -> PathBuf {
        self.dir.join("sshd.log")
    }
    pub fn sshd_pid(&self) -> PathBuf {
        self.dir.join("sshd.pid")
    }
}

fn mkdir(host: &str, path: &Path, mode: u32) -> Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(path)
        .map_err(LabError::host_io(host, "create directory"))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(LabError::host_io(host, "set directory mode"))
}

/// The machine's own archive list, which the skeleton copied (relative to /etc).
const MACHINE_ARCHIVE_SOURCES: &str = "apt/sources.list.d/debian.sources";

fn write(host: &str, root: &Path, rel: &str, text: &str, mode: u32) -> Result<()> {
    let path = root.join(rel);
    if let Some(parent) = path.parent() {
        mkdir(host, parent, 0o755)?;
    }
    std::fs::write(&path, text).map_err(|e| LabError::Host {
        host: host.to_string(),
        step: "write host file",
        message: format!("{}: {e}", path.display()),
    })?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
        .map_err(LabError::host_io(host, "set file mode"))
}

/// The profile the emulators read.
pub(crate) fn profile(plan: &HostPlan) -> HostProfile {
    HostProfile {
        name: plan.spec.name.clone(),
        distro: plan.spec.distro,
        arch: plan.spec.arch,
        cpus: plan.spec.cpus,
        memory_mib: plan.spec.memory_mib,
        swap_mib: plan.spec.swap_mib,
        swap_locked: plan.spec.swap_locked,
        listening_ports: plan.spec.listening_ports.clone(),
        kernel_release: plan.spec.kernel_release(),
        cgroup: plan.spec.cgroup_version(),
        address: plan.address.to_string(),
        namespaced: plan.netns.is_some(),
    }
}

/// Writes the host's own files into its (not yet mounted) upper layers.
pub(crate) fn build_layers(dirs: &HostDirs, plan: &HostPlan) -> Result<()> {
    let host = plan.spec.name.as_str();
    let spec = &plan.spec;
    mkdir(host, &dirs.dir, 0o755)?;
    for d in [
        dirs.upper(),
        dirs.work(),
        dirs.usr_upper(),
        dirs.usr_work(),
        dirs.root(),
    ] {
        mkdir(host, &d, 0o755)?;
    }
    let up = dirs.upper();

    write(host, &up, "etc/hostname", &format!("{host}\n"), 0o644)?;
    write(
        host,
        &up,
        "etc/hosts",
        &format!(
            "127.0.0.1\tlocalhost\n{}\t{host}\n::1\tlocalhost ip6-localhost ip6-loopback\n",
            plan.address
        ),
        0o644,
    )?;
    write(host, &up, "etc/os-release", spec.distro.os_release(), 0o644)?;
    write(
        host,
        &dirs.usr_upper(),
        "lib/os-release",
        spec.distro.os_release(),
        0o644,
    )?;
    for (name, text) in spec.distro.release_files() {
        write(host, &up, &format!("etc/{name}"), text, 0o644)?;
    }
    let archive = spec.distro.archive_files(spec.arch);
    // The skeleton's /etc is this machine's (Debian 12): its archive list is not the
    // host's unless the host writes its own in its place.
    if !archive
        .iter()
        .any(|(name, _)| name == MACHINE_ARCHIVE_SOURCES)
    {
        let path = up.join("etc").join(MACHINE_ARCHIVE_SOURCES);
        if let Some(parent) = path.parent() {
            mkdir(host, parent, 0o755)?;
        }
        sys::whiteout(&path).map_err(LabError::host_io(host, "hide the machine's apt sources"))?;
    }
    for (name, text) in &archive {
        write(host, &up, &format!("etc/{name}"), text, 0o644)?;
    }
    write(
        host,
        &up,
        "etc/machine-id",
        &format!("{}\n", plan.product_uuid.replace('-', "")),
        0o444,
    )?;
    let sudoers = match plan.sudo {
        SudoMode::Nopasswd => Some("k8sup ALL=(ALL:ALL) NOPASSWD:ALL\n"),
        SudoMode::Password => Some("k8sup ALL=(ALL:ALL) ALL\n"),
        SudoMode::Absent => None,
    };
    if let Some(rule) = sudoers {
        write(host, &up, "etc/sudoers.d/k8sup", rule, 0o440)?;
    }

    let swap_kib = spec.swap_mib * 1024;
    let mut fstab = String::from("# <file system> <mount point> <type> <options> <dump> <pass>\n/dev/vda1\t/\text4\terrors=remount-ro\t0\t1\n");
    let mut areas = Vec::new();
    if spec.swap_mib > 0 {
        fstab.push_str("/swap.img\tnone\tswap\tsw\t0\t0\n");
        write(host, &up, "swap.img", "", 0o600)?;
        areas.push(SwapArea {
            path: "/swap.img".into(),
            kind: "file".into(),
            size_kib: swap_kib.saturating_sub(4),
            // Swap that cannot be turned off is swap the host is living on: full,
            // with less memory available than it holds (see procfs::meminfo).
            used_kib: if spec.swap_locked {
                swap_kib.saturating_sub(4)
            } else {
                0
            },
            priority: -2,
        });
    }
    write(host, &up, "etc/fstab", &fstab, 0o644)?;

    let json = serde_json::to_string_pretty(&profile(plan)).map_err(|e| LabError::Host {
        host: host.into(),
        step: "encode host profile",
        message: e.to_string(),
    })?;
    write(host, &up, profile::PROFILE_PATH, &json, 0o644)?;
    mkdir(host, &up.join("var/log/k8sup-lab"), 0o1777)?;
    write(host, &up, profile::COMMANDS_LOG, "", 0o666)?;
    mkdir(host, &up.join(profile::FAULTS_DIR), 0o755)?;
    mkdir(host, &up.join(profile::SYSTEMD_STATE_DIR), 0o755)?;
    mkdir(
        host,
        &up.join("etc/systemd/system/multi-user.target.wants"),
        0o755,
    )?;

    write_proc(host, &up, plan, &areas)?;
    write_sys(host, &up, plan)?;

    if let Some(enforcing) = spec.distro.selinux_enforcing() {
        let mode = if enforcing { "enforcing" } else { "permissive" };
        write(
            host,
            &up,
            "etc/selinux/config",
            &format!("SELINUX={mode}\nSELINUXTYPE=targeted\n"),
            0o644,
        )?;
        write(
            host,
            &up,
            "sys/fs/selinux/enforce",
            if enforcing { "1" } else { "0" },
            0o644,
        )?;
    }
    for rel in spec.distro.hidden_usr_files() {
        let path = dirs.usr_upper().join(rel);
        if let Some(parent) = path.parent() {
            mkdir(host, parent, 0o755)?;
        }
        sys::whiteout(&path).map_err(LabError::host_io(host, "hide a tool of another distro"))?;
    }
    Ok(())
}

fn write_proc(host: &str, up: &Path, plan: &HostPlan, areas: &[SwapArea]) -> Result<()> {
    let spec = &plan.spec;
    let swap_total: u64 = areas.iter().map(|a| a.size_kib).sum();
    let swap_used: u64 = areas.iter().map(|a| a.used_kib).sum();
    write(
        host,
        up,
        "proc/meminfo",
        &procfs::meminfo(spec.memory_mib, swap_total, swap_used),
        0o444,
    )?;
    write(
        host,
        up,
        "proc/cpuinfo",
        &procfs::cpuinfo(spec.arch, spec.cpus),
        0o444,
    )?;
    write(host, up, "proc/swaps", &procfs::swaps(areas), 0o444)?;
    let base_modules: Vec<LoadedModule> = ["ip_tables", "x_tables", "autofs4"]
        .iter()
        .map(|n| LoadedModule {
            name: n.to_string(),
            size: 32768,
            refcount: 0,
            used_by: Vec::new(),
        })
        .collect();
    write(
        host,
        up,
        "proc/modules",
        &procfs::modules(&base_modules),
        0o444,
    )?;
    // The mount point of the machine's own /proc/uptime (see `mount`): a clock that
    // a shell reads without starting a program.
    write(host, up, "proc/uptime", "", 0o444)?;
    write(
        host,
        up,
        "proc/version",
        &format!(
            "Linux version {} (builder@lab) (gcc version 12.2.0) #1 SMP PREEMPT_DYNAMIC\n",
            spec.kernel_release()
        ),
        0o444,
    )?;
    write(host, up, "proc/uptime", "86400.00 170000.00\n", 0o444)?;
    write(
        host,
        up,
        "proc/loadavg",
        "0.08 0.03 0.01 1/120 4242\n",
        0o444,
    )?;
    write(host, up, "proc/1/comm", "systemd\n", 0o444)?;
    write(host, up, "proc/1/cmdline", "/sbin/init\0", 0o444)?;
    let cgroup_line = match spec.cgroup_version() {
        CgroupVersion::V2 => "0::/init.scope\n",
        CgroupVersion::V1 => "1:name=systemd:/init.scope\n",
    };
    write(host, up, "proc/1/cgroup", cgroup_line, 0o444)?;
    let sysctls: [(&str, String); 16] = [
        ("net/ipv4/ip_forward", "0".into()),
        ("net/ipv4/conf/all/forwarding", "0".into()),
        ("net/ipv4/conf/default/forwarding", "0".into()),
        ("net/ipv4/conf/all/rp_filter", "2".into()),
        ("net/ipv6/conf/all/forwarding", "0".into()),
        ("net/ipv6/conf/all/disable_ipv6", "0".into()),
        ("net/core/somaxconn", "4096".into()),
        ("vm/swappiness", "60".into()),
        ("vm/overcommit_memory", "0".into()),
        ("vm/max_map_count", "65530".into()),
        ("kernel/panic", "0".into()),
        ("kernel/panic_on_oops", "1".into()),
        ("kernel/hostname", spec.name.clone()),
        ("kernel/osrelease", spec.kernel_release()),
        ("fs/inotify/max_user_watches", "65536".into()),
        ("fs/inotify/max_user_instances", "128".into()),
    ];
    for (key, value) in sysctls {
        write(
            host,
            up,
            &format!("proc/sys/{key}"),
            &format!("{value}\n"),
            0o644,
        )?;
    }
    write(
        host,
        up,
        "proc/sys/fs/file-max",
        "9223372036854775807\n",
        0o644,
    )?;
    Ok(())
}

fn write_sys(host: &str, up: &Path, plan: &HostPlan) -> Result<()> {
    write(
        host,
        up,
        "sys/class/dmi/id/product_uuid",
        &format!("{}\n", plan.product_uuid),
        0o400,
    )?;
    write(
        host,
        up,
        "sys/class/dmi/id/product_name",
        "KVM Virtual Machine\n",
        0o444,
    )?;
    write(
        host,
        up,
        "sys/class/net/eth0/address",
        &format!("{}\n", plan.mac),
        0o444,
    )?;
    write(host, up, "sys/class/net/eth0/operstate", "up\n", 0o444)?;
    write(
        host,
        up,
        "sys/devices/system/cpu/online",
        &procfs::cpus_online(plan.spec.cpus),
        0o444,
    )?;
    write(
        host,
        up,
        "sys/class/net/lo/address",
        "00:00:00:00:00:00\n",
        0o444,
    )?;
    match plan.spec.cgroup_version() {
        CgroupVersion::V2 => {
            write(
                host,
                up,
                "sys/fs/cgroup/cgroup.controllers",
                "cpuset cpu io memory hugetlb pids rdma misc\n",
                0o444,
            )?;
            write(
                host,
                up,
                "sys/fs/cgroup/cgroup.subtree_control",
                "cpuset cpu io memory pids\n",
                0o644,
            )?;
        }
        CgroupVersion::V1 => {
            for c in [
                "cpu,cpuacct",
                "cpuset",
                "memory",
                "pids",
                "blkio",
                "devices",
                "freezer",
                "hugetlb",
                "net_cls,net_prio",
                "perf_event",
                "systemd",
            ] {
                mkdir(host, &up.join("sys/fs/cgroup").join(c), 0o755)?;
            }
        }
    }
    Ok(())
}

/// Mounts the host's root and /usr overlays, the machine's /dev/pts (sshd opens a
/// session's terminal by name after it has chrooted) and its /proc/uptime.
pub(crate) fn mount(
    dirs: &HostDirs,
    host: &str,
    skeleton: &Path,
    emu_usr: &Path,
    cluster: &Path,
) -> Result<()> {
    let root_opts = format!(
        "lowerdir={},upperdir={},workdir={},volatile",
        skeleton.display(),
        dirs.upper().display(),
        dirs.work().display()
    );
    sys::mount_overlay(&root_opts, &dirs.root()).map_err(|e| LabError::Host {
        host: host.into(),
        step: "mount root overlay",
        message: format!("{e} (options {root_opts})"),
    })?;
    let usr_opts = format!(
        "lowerdir={}:/usr,upperdir={},workdir={},volatile",
        emu_usr.display(),
        dirs.usr_upper().display(),
        dirs.usr_work().display()
    );
    sys::mount_overlay(&usr_opts, &dirs.root().join("usr")).map_err(|e| LabError::Host {
        host: host.into(),
        step: "mount /usr overlay",
        message: format!("{e} (options {usr_opts})"),
    })?;
    sys::bind_mount(Path::new("/dev/pts"), &dirs.root().join("dev/pts"))
        .map_err(LabError::host_io(host, "bind-mount /dev/pts"))?;
    // The kernel's real uptime: it moves, as a host's does (the other /proc files are
    // the lab's own).
    sys::bind_mount(Path::new("/proc/uptime"), &dirs.root().join("proc/uptime"))
        .map_err(LabError::host_io(host, "bind-mount /proc/uptime"))?;
    // The emulated cluster's state, shared by every host of the lab (see emu::cluster).
    let shared = dirs
        .root()
        .join(crate::emu::cluster::CLUSTER_DIR.trim_start_matches('/'));
    mkdir(host, &shared, 0o755)?;
    sys::bind_mount(cluster, &shared)
        .map_err(LabError::host_io(host, "bind-mount the cluster directory"))
}
