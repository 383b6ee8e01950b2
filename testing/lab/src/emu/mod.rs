//! `k8sup-lab-emu`: one multi-call binary that stands in, inside each host, for the tools
//! that cannot work in a chroot on this machine (they talk to a kernel or a systemd that the
//! host does not have). It is linked into the lab's emulator layer under each real tool's
//! name and dispatches on `argv[0]`.
//!
//! Each tool is one module with `run(&mut Invocation) -> i32`: it takes the real tool's
//! arguments, prints the real output format and returns the real exit status. State lives in
//! the host's own files (`/proc/swaps`, `/proc/sys/...`, `/run/lab-systemd/...`), so that a
//! test can read it from outside. Every invocation is logged to
//! [`crate::profile::COMMANDS_LOG`] and subject to the host's injected faults.
//!
//! To add a tool (package managers, container runtimes, kubeadm...): add a module, add it to
//! [`TOOLS`] with the path the real tool has under /usr, and to [`dispatch`]. A tool that
//! comes with a package (kubeadm, containerd...) is not in [`TOOLS`]: installing the package
//! links it (see `payload`), and it reads its version with [`pkgdb::installed_version`];
//! until its module exists it answers through `pending`.

mod apiserver;
mod apt;
mod aptsrc;
mod balancers;
pub mod cluster;
mod containerd;
mod containers;
mod curl;
mod daemon;
mod dnf;
mod dpkg;
pub mod etcd;
mod hostname;
pub mod images;
mod iptables;
mod kubeadm;
mod kubectl;
mod kubelet;
mod modules;
mod nproc;
pub mod payload;
mod pending;
pub mod pkgdb;
pub mod pki;
pub mod repos;
mod rpm;
mod runtime;
mod schema;
mod selinux;
mod ss;
mod swap;
mod sysctl;
mod systemctl;
mod uname;
mod yumrepo;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::error::{LabError, Result};
use crate::profile::{self, CommandRecord, HostProfile};

/// Emulated tools and where the real ones live, relative to /usr.
pub const TOOLS: &[&str] = &[
    "bin/uname",
    "bin/curl",
    "bin/nproc",
    "bin/hostname",
    "bin/hostnamectl",
    "sbin/swapon",
    "sbin/swapoff",
    "sbin/sysctl",
    "sbin/modprobe",
    "sbin/lsmod",
    "bin/systemctl",
    "bin/ss",
    "sbin/getenforce",
    "sbin/setenforce",
    "bin/apt-get",
    "bin/apt",
    "bin/apt-cache",
    "bin/apt-mark",
    "bin/dpkg",
    "bin/dpkg-query",
    "bin/dnf",
    "bin/yum",
    "bin/rpm",
];

/// Where the emulator binary sits inside a host.
const LIBEXEC: &str = "libexec/k8sup-lab/k8sup-lab-emu";

/// One run of an emulated tool: its arguments, the host it runs on, and its output.
pub struct Invocation {
    /// The host's root (`/` inside a host; a temporary directory in unit tests).
    pub root: PathBuf,
    pub tool: String,
    pub args: Vec<String>,
    pub uid: u32,
    pub stdout: String,
    pub stderr: String,
    /// In a container (`crictl exec`): the host directories its pod mounts, the only
    /// host files the program sees. `None`: a program of the host itself.
    pub mounts: Option<Vec<String>>,
}

impl Invocation {
    pub fn new(root: impl Into<PathBuf>, tool: &str, args: &[&str], uid: u32) -> Self {
        Invocation {
            root: root.into(),
            tool: tool.to_string(),
            args: args.iter().map(|a| a.to_string()).collect(),
            uid,
            stdout: String::new(),
            stderr: String::new(),
            mounts: None,
        }
    }

    /// Where a file a program names is on the machine, or `None` when the program runs
    /// in a container and the file is not in one of its mounts (nor does a relative
    /// name reach one: a container's working directory is its own `/`).
    pub fn visible(&self, file: &str) -> Option<PathBuf> {
        match &self.mounts {
            None if file.starts_with('/') => Some(self.path(file)),
            None => Some(PathBuf::from(file)),
            Some(mounts) => mounts
                .iter()
                .any(|m| file == m || file.starts_with(&format!("{m}/")))
                .then(|| self.path(file)),
        }
    }

    /// A path inside the host.
    pub fn path(&self, in_host: &str) -> PathBuf {
        self.root.join(in_host.trim_start_matches('/'))
    }

    pub fn read(&self, in_host: &str) -> std::io::Result<String> {
        std::fs::read_to_string(self.path(in_host))
    }

    pub fn write(&self, in_host: &str, text: &str) -> std::io::Result<()> {
        let p = self.path(in_host);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(p, text)
    }

    /// The host's profile; a missing profile means the emulator runs outside a lab host.
    pub fn profile(&self) -> std::result::Result<HostProfile, String> {
        let text = self
            .read(profile::PROFILE_PATH)
            .map_err(|e| format!("not a k8sup lab host (/{}: {e})", profile::PROFILE_PATH))?;
        serde_json::from_str(&text).map_err(|e| format!("bad /{}: {e}", profile::PROFILE_PATH))
    }

    pub fn out(&mut self, text: &str) {
        self.stdout.push_str(text);
    }

    pub fn outln(&mut self, text: &str) {
        self.stdout.push_str(text);
        self.stdout.push('\n');
    }

    pub fn errln(&mut self, text: &str) {
        self.stderr.push_str(text);
        self.stderr.push('\n');
    }

    /// The host's name as the kernel would report it.
    pub fn hostname(&self) -> String {
        self.read("/etc/hostname")
            .ok()
            .and_then(|t| t.lines().next().map(|l| l.trim().to_string()))
            .filter(|h| !h.is_empty())
            .or_else(|| self.profile().ok().map(|p| p.name))
            .unwrap_or_else(|| "localhost".into())
    }
}

/// The images kubeadm pulls for Kubernetes `version` (`1.31.2`) from `repository`, as
/// `kubeadm config images list` prints them.
pub fn kubeadm_images(repository: &str, version: &str) -> Vec<String> {
    kubeadm::images_list(repository, version)
}

/// Runs `tool` with its arguments; returns its exit status.
pub fn dispatch(inv: &mut Invocation) -> i32 {
    match inv.tool.as_str() {
        "uname" => uname::run(inv),
        "curl" => curl::run(inv),
        "iptables" | "ip6tables" | "iptables-save" | "ip6tables-save" => iptables::run(inv),
        "nproc" => nproc::run(inv),
        "hostname" => hostname::run_hostname(inv),
        "hostnamectl" => hostname::run_hostnamectl(inv),
        "swapon" => swap::run_swapon(inv),
        "swapoff" => swap::run_swapoff(inv),
        "sysctl" => sysctl::run(inv),
        "modprobe" => modules::run_modprobe(inv),
        "lsmod" => modules::run_lsmod(inv),
        "systemctl" => systemctl::run(inv),
        "ss" => ss::run(inv),
        "getenforce" => selinux::run_getenforce(inv),
        "setenforce" => selinux::run_setenforce(inv),
        "apt-get" => apt::run_apt_get(inv),
        "apt" => apt::run_apt(inv),
        "apt-cache" => apt::run_apt_cache(inv),
        "apt-mark" => apt::run_apt_mark(inv),
        "dpkg" => dpkg::run_dpkg(inv),
        "dpkg-query" => dpkg::run_dpkg_query(inv),
        "dnf" | "yum" => dnf::run(inv),
        "rpm" => rpm::run(inv),
        "kubeadm" => kubeadm::run(inv),
        "etcdctl" => etcd::run_etcdctl(inv),
        "etcdutl" => etcd::run_etcdutl(inv),
        "kubelet" => kubelet::run(inv),
        "kubectl" => kubectl::run(inv),
        "containerd" => containerd::run_containerd(inv),
        "ctr" => containerd::run_ctr(inv),
        "crictl" => containerd::run_crictl(inv),
        "docker" => containerd::run_docker(inv),
        "cri-dockerd" => containerd::run_cri_dockerd(inv),
        "kubelet-heartbeat" => apiserver::run_heartbeat(inv),
        name if pending::PROGRAMS.contains(&name) => pending::run(inv),
        other => {
            inv.errln(&format!("k8sup-lab-emu: no emulator for {other:?}"));
            127
        }
    }
}

/// The entry point of `k8sup-lab-emu`: logs the call, applies injected faults, runs the tool.
pub fn main() -> i32 {
    let mut argv: Vec<String> = std::env::args().collect();
    let argv0 = argv.first().cloned().unwrap_or_default();
    let mut tool = Path::new(&argv0)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if tool == "k8sup-lab-emu" {
        // Called by its own name (tests, debugging): the tool is the first argument.
        if argv.len() < 2 {
            eprintln!(
                "usage: k8sup-lab-emu TOOL [ARGS...]  (tools: {})",
                tool_names().join(" ")
            );
            return 2;
        }
        argv.remove(0);
        tool = argv[0].clone();
    }
    let root = std::env::var_os("K8SUP_LAB_EMU_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/"));
    // SAFETY: getuid cannot fail.
    let uid = unsafe { libc::getuid() };
    let mut inv = Invocation {
        root,
        tool,
        args: argv[1..].to_vec(),
        uid,
        stdout: String::new(),
        stderr: String::new(),
        mounts: None,
    };
    log_invocation(&inv, &argv);
    apiserver::init(&inv.path(cluster::CLUSTER_DIR));
    if let Ok(profile) = inv.profile() {
        crate::durations::hooks::init(&inv.path(cluster::CLUSTER_DIR), &profile.name);
    }
    if let Some(status) = apply_faults(&inv) {
        return status;
    }
    let status = dispatch(&mut inv);
    // A command may have started or reconfigured what the kubelet depends on.
    kubelet::sync(&inv);
    // ...and the kubelet's certificates and static pods.
    pki::sync(&inv);
    etcd::sync(&inv);
    let _ = std::io::stdout().write_all(inv.stdout.as_bytes());
    let _ = std::io::stderr().write_all(inv.stderr.as_bytes());
    status
}

fn tool_names() -> Vec<&'static str> {
    TOOLS.iter().filter_map(|t| t.rsplit('/').next()).collect()
}

fn log_invocation(inv: &Invocation, argv: &[String]) {
    let at_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let mut argv = argv.to_vec();
    if let Some(first) = argv.first_mut() {
        *first = inv.tool.clone();
    }
    let record = CommandRecord {
        at_ms,
        uid: inv.uid,
        argv,
    };
    append_json_line(&inv.path(profile::COMMANDS_LOG), &record);
}

/// Appends `value` as one line of JSON: one write(2) of one line to an O_APPEND file, so
/// that processes (and hosts, for a shared file) do not interleave. Best effort: a log
/// that cannot be written does not fail the command.
pub(crate) fn append_json_line(path: &Path, value: &impl serde::Serialize) {
    let Ok(mut line) = serde_json::to_string(value) else {
        return;
    };
    line.push('\n');
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
    {
        let _ = f.write_all(line.as_bytes());
    }
}

/// Applies the host's injected faults: a delay for every command, a hang for one tool
/// or one of its subcommands, or a failure for one tool. Returns the exit status when the tool must not run.
fn apply_faults(inv: &Invocation) -> Option<i32> {
    let faults = inv.path(profile::FAULTS_DIR);
    if let Ok(ms) = std::fs::read_to_string(faults.join("delay-ms")) {
        if let Ok(ms) = ms.trim().parse::<u64>() {
            std::thread::sleep(Duration::from_millis(ms));
        }
    }
    let subcommand = inv
        .args
        .first()
        .map(|a| faults.join(format!("hang-{}-{a}", inv.tool)));
    if faults.join(format!("hang-{}", inv.tool)).exists() || subcommand.is_some_and(|f| f.exists())
    {
        loop {
            std::thread::sleep(Duration::from_secs(3600));
        }
    }
    if let Ok(status) = std::fs::read_to_string(faults.join(format!("fail-{}", inv.tool))) {
        let status = status.trim().parse::<i32>().unwrap_or(1);
        eprintln!("{}: failed (fault injected by k8sup-lab)", inv.tool);
        return Some(status);
    }
    None
}

/// Finds the `k8sup-lab-emu` binary: `$K8SUP_LAB_EMU`, else next to the running
/// executable (or one directory up, where cargo puts binaries next to test executables).
pub fn emulator_binary() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("K8SUP_LAB_EMU") {
        let p = PathBuf::from(p);
        if p.is_file() {
            return Ok(p);
        }
        return Err(LabError::Missing {
            what: format!("K8SUP_LAB_EMU={}", p.display()),
            hint: "it does not name a file".into(),
        });
    }
    let exe =
        std::env::current_exe().map_err(LabError::path("/proc/self/exe", "find own binary"))?;
    let mut candidates = Vec::new();
    if let Some(dir) = exe.parent() {
        candidates.push(dir.join("k8sup-lab-emu"));
        if let Some(up) = dir.parent() {
            candidates.push(up.join("k8sup-lab-emu"));
        }
    }
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .ok_or_else(|| LabError::Missing {
            what: "the k8sup-lab-emu binary".into(),
            hint: format!(
                "build it with `cargo build -p k8sup-lab --bins` or set K8SUP_LAB_EMU (looked in {candidates:?})"
            ),
        })
}

/// Installs the emulator layer of a lab: one copy of the binary, hard-linked under each
/// tool's name at the path the real tool has under /usr.
pub fn install_layer(binary: &Path, layer: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let target = layer.join(LIBEXEC);
    for dir in [
        target.parent(),
        Some(&layer.join("bin")),
        Some(&layer.join("sbin")),
    ]
    .into_iter()
    .flatten()
    {
        crate::layout::ensure_private_dir(dir)?;
    }
    std::fs::copy(binary, &target).map_err(LabError::path(&target, "copy emulator"))?;
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o755))
        .map_err(LabError::path(&target, "chmod emulator"))?;
    for tool in TOOLS {
        let link = layer.join(tool);
        std::fs::hard_link(&target, &link).map_err(LabError::path(&link, "link emulator"))?;
    }
    Ok(())
}

/// Test helpers shared by the tool modules.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;
    use crate::distro::{Arch, CgroupVersion, Distro};

    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

    /// A throwaway host root with a profile.
    pub struct FakeHost {
        pub root: PathBuf,
    }

    impl FakeHost {
        pub fn new(distro: Distro, arch: Arch) -> Self {
            let root = std::env::temp_dir().join(format!(
                "k8sup-lab-emu-test-{}-{}",
                std::process::id(),
                N.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
            ));
            let _ = std::fs::remove_dir_all(&root);
            std::fs::create_dir_all(&root).expect("temp root");
            let host = FakeHost { root };
            let profile = HostProfile {
                name: "node-1".into(),
                distro,
                arch,
                cpus: 4,
                memory_mib: 2048,
                swap_mib: 0,
                swap_locked: false,
                listening_ports: vec![22],
                kernel_release: distro.default_kernel(arch),
                cgroup: CgroupVersion::V2,
                address: "127.77.0.2".into(),
                namespaced: false,
            };
            host.set_profile(&profile);
            host.write("/etc/hostname", "node-1\n");
            host
        }

        pub fn set_profile(&self, p: &HostProfile) {
            self.write(
                &format!("/{}", profile::PROFILE_PATH),
                &serde_json::to_string(p).expect("json"),
            );
        }

        pub fn profile(&self) -> HostProfile {
            serde_json::from_str(&self.read(&format!("/{}", profile::PROFILE_PATH)))
                .expect("profile")
        }

        pub fn write(&self, path: &str, text: &str) {
            let p = self.root.join(path.trim_start_matches('/'));
            std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            std::fs::write(p, text).expect("write");
        }

        pub fn read(&self, path: &str) -> String {
            std::fs::read_to_string(self.root.join(path.trim_start_matches('/')))
                .unwrap_or_default()
        }

        /// Runs a tool as root; returns (status, stdout, stderr).
        pub fn run(&self, tool: &str, args: &[&str]) -> (i32, String, String) {
            self.run_as(0, tool, args)
        }

        pub fn run_as(&self, uid: u32, tool: &str, args: &[&str]) -> (i32, String, String) {
            let mut inv = Invocation::new(&self.root, tool, args, uid);
            let status = dispatch(&mut inv);
            (status, inv.stdout, inv.stderr)
        }
    }

    impl Drop for FakeHost {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.root);
        }
    }
}
