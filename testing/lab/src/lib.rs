//! The k8sup lab: real SSH hosts on one machine, for k8sup's tests, demo and benchmarks.
//!
//! Each host is a real OpenSSH server (its own host key, key-only auth) on its own loopback
//! address (`127.77.x.y:2222`), chrooted into its own root filesystem: an overlay of a
//! per-host layer over a shared skeleton, with the machine's real `/usr` (bash, coreutils,
//! python3, sudo) under a layer of emulators for what cannot run here (`uname -m`, swap,
//! sysctl, modules, systemd, ss, SELinux; see [`emu`]). Distro, arch, memory, swap,
//! product_uuid and MAC are per host, so one lab can mix Ubuntu and Rocky, amd64 and arm64.
//!
//! ```no_run
//! use k8sup_lab::{Arch, Distro, HostSpec, Lab, LabSpec};
//!
//! let spec = LabSpec::new("demo")
//!     .host(HostSpec::new("master").master())
//!     .host(HostSpec::new("node").count(2).distro(Distro::Rocky9).arch(Arch::Arm64));
//! let lab = Lab::up(&spec)?;                       // taken down when `lab` is dropped
//! let inventory = lab.inventory_toml("");           // or your own [cluster] table
//! lab.faults("node-1")?.hang_command("systemctl")?; // faults on demand
//! # Ok::<(), k8sup_lab::LabError>(())
//! ```
//!
//! Requires root and `openssh-server`. Module map: [`spec`] (what a lab holds), [`lab`]
//! (bring-up and the running lab), [`hostfs`] and [`skeleton`] (root filesystems),
//! [`sshd`], [`keys`], [`layout`] (directories and address blocks), [`netns`] (hosts in
//! their own network namespaces, opt-in), [`realpkg`] (Debian's real haproxy and nginx
//! served as packages), [`faults`], [`proxy`] (latency), [`inventory`], [`teardown`],
//! [`emu`] (the emulators).

pub mod client;
pub mod distro;
pub mod durations;
pub mod emu;
pub mod error;
pub mod faults;
pub mod hostfs;
pub mod inventory;
pub mod keys;
pub mod lab;
pub mod layout;
pub mod netns;
pub mod procfs;
pub mod profile;
pub mod proxy;
pub mod realpkg;
pub mod skeleton;
pub mod spec;
pub mod sshd;
pub mod sys;
pub mod teardown;

pub use distro::{Arch, CgroupVersion, Distro, PackageManager};
pub use durations::Durations;
pub use error::{LabError, Result};
pub use faults::HostFaults;
pub use inventory::InventoryOptions;
pub use keys::KEY_PASSPHRASE;
pub use lab::{Host, Lab, BASTION_NAME};
pub use layout::{PROXY_PORT, SSH_PORT};
pub use netns::Network;
pub use profile::CommandRecord;
pub use proxy::{LatencyProxy, Route};
pub use skeleton::{K8SUP_PASSWORD, LAB_USER};
pub use spec::{HostSpec, LabSpec, SudoMode};
