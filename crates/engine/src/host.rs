//! What the engine needs to know about a host: how to reach it, what it is, and the
//! context its templates are rendered with. The caller (the CLI) builds these from
//! the inventory and the gathered facts; the engine knows nothing of Kubernetes.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use k8sup_ssh::Transport;

/// The package family of a distribution: decides apt or dnf/yum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    Debian,
    Redhat,
    Other,
}

/// Facts used by `when` conditions and by task kinds (the package manager).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Platform {
    /// `amd64`, `arm64`, ...
    pub arch: String,
    pub family: Family,
    /// `ubuntu`, `debian`, `rocky`, ...
    pub distro: String,
    pub distro_version: String,
}

/// Binary content the caller hands the engine under a name, for the `file` tasks
/// that say `artifact = "<name>"` (a program built or downloaded on the controller,
/// say). It is never rendered nor shown as a diff: plans show its size and sha256,
/// probes compare hashes, and the apply uploads it.
#[derive(Clone)]
pub struct Artifact {
    bytes: Arc<[u8]>,
    sha256: String,
}

impl Artifact {
    pub fn new(bytes: impl Into<Arc<[u8]>>) -> Artifact {
        let bytes = bytes.into();
        let sha256 = crate::encoding::sha256_hex(&bytes);
        Artifact { bytes, sha256 }
    }

    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The sha256 of the bytes, lowercase hex.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
}

impl PartialEq for Artifact {
    fn eq(&self, other: &Artifact) -> bool {
        self.sha256 == other.sha256
    }
}

impl Eq for Artifact {}

/// Size and hash only: task fingerprints and plans never carry the bytes.
impl std::fmt::Debug for Artifact {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Artifact({} bytes, sha256 {})", self.len(), self.sha256)
    }
}

/// One host of a run.
#[derive(Clone)]
pub struct HostSpec {
    pub name: String,
    /// Role names (`master`, `node`) for `hosts = "masters"`, `"nodes"`, `"role:X"`.
    pub roles: BTreeSet<String>,
    pub labels: BTreeMap<String, String>,
    /// Whether `hosts = "first-master"` selects this host.
    pub first_master: bool,
    pub platform: Platform,
    /// The template context: an object (inventory, host, facts, derived values),
    /// whose members may be shared with other hosts' (see [`crate::ContextPool`]).
    /// The engine adds `platform` and, at apply, the values a task needs.
    pub context: crate::Context,
    /// Binary content by name, for `file` tasks with `artifact = "<name>"`; a
    /// task naming an artifact the host lacks fails to render.
    pub artifacts: BTreeMap<String, Artifact>,
    pub transport: Arc<dyn Transport>,
}

impl std::fmt::Debug for HostSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostSpec")
            .field("name", &self.name)
            .field("roles", &self.roles)
            .field("labels", &self.labels)
            .field("first_master", &self.first_master)
            .field("platform", &self.platform)
            .field("artifacts", &self.artifacts)
            .finish_non_exhaustive()
    }
}
