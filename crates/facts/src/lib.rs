//! What k8sup learns about a host before it changes anything, and the
//! preflight checks that run over it.
//!
//! [`GATHER_SCRIPT`] is one POSIX shell script that prints every fact as
//! `key=value` lines, so that gathering costs one command on one channel.
//! [`HostFacts::parse`] turns its output into typed facts; [`preflight`] is a
//! pure function from the inventory and everyone's facts to findings. Nothing
//! here touches the network: the caller runs the script over SSH.

mod gather;
mod preflight;

pub use gather::{CgroupDrivers, DistroFamily, HostFacts, Installed, OsRelease, GATHER_SCRIPT};
pub use preflight::{preflight, CheckKind, Finding};
