//! The contract between the lab and the emulators running inside a host: where the host's
//! profile, fault switches and command log live in the host's root, and what they hold.
//!
//! The lab writes these files when it builds a host (and when a test injects a fault);
//! `k8sup-lab-emu` reads them on every invocation.

use serde::{Deserialize, Serialize};

use crate::distro::{Arch, CgroupVersion, Distro};

/// The host's profile, relative to the host's root.
pub const PROFILE_PATH: &str = "etc/k8sup-lab/host.json";
/// One line of JSON per emulated command run, relative to the host's root.
pub const COMMANDS_LOG: &str = "var/log/k8sup-lab/commands.log";
/// Fault switches, relative to the host's root: `fail-<tool>` (holds the exit status),
/// `hang-<tool>` (exists), `delay-ms` (holds milliseconds added to every emulated command).
pub const FAULTS_DIR: &str = "run/k8sup-lab/faults";
/// Where emulated systemd keeps unit state, relative to the host's root.
pub const SYSTEMD_STATE_DIR: &str = "run/lab-systemd";

/// What the emulators need to know about the host they run on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostProfile {
    pub name: String,
    pub distro: Distro,
    pub arch: Arch,
    pub cpus: u32,
    pub memory_mib: u64,
    /// Size of the swap file in /etc/fstab (0: none).
    pub swap_mib: u64,
    pub swap_locked: bool,
    pub listening_ports: Vec<u16>,
    pub kernel_release: String,
    pub cgroup: CgroupVersion,
    /// The address sshd listens on (what `ss` shows for port 22 and services).
    pub address: String,
    /// The host has its own network namespace (its 127.0.0.1 is its own).
    #[serde(default)]
    pub namespaced: bool,
}

/// One emulated command run, as recorded in [`COMMANDS_LOG`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandRecord {
    /// Milliseconds since the Unix epoch.
    pub at_ms: u64,
    pub uid: u32,
    pub argv: Vec<String>,
}
