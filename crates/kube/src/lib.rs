//! k8sup's Kubernetes knowledge, as the few typed helpers its playbook needs.
//!
//! The engine knows nothing of Kubernetes; what it takes to install a cluster is
//! data (`playbooks/kubernetes.toml` and `templates/*.j2`) plus this crate:
//!
//! - [`kubeadm`]: kubeadm's configuration documents per host and per version
//!   (v1beta3 / v1beta4), with every value the field reports warn about derived
//!   from the inventory rather than guessed;
//! - [`manifest`]: CNI manifests (the built-in flannel one, or Calico's), and the
//!   patching of any multi-document manifest: the pod network, registry mirrors,
//!   per-architecture images and DaemonSets;
//! - [`runtime`]: the container runtime's configuration files (containerd's
//!   config.toml and Docker Hub mirrors, Docker's daemon.json);
//! - [`pins`]: containerd.io, docker-ce and cri-dockerd pinned per Kubernetes minor;
//! - [`balancer`]: the node-local API server balancer (haproxy) on every host;
//! - [`context`]: the one template context the playbook is rendered with;
//! - [`upgrade`]: the rules, hops and order of a Kubernetes upgrade, and the
//!   values of its playbook;
//! - [`playbook`]: the default playbook, the upgrade playbook and the templates, embedded.

pub mod balancer;
pub mod context;
mod error;
pub mod kubeadm;
pub mod manifest;
pub mod pins;
pub mod playbook;
pub mod runtime;
pub mod upgrade;

pub use context::template_context;
pub use error::KubeError;

#[cfg(test)]
pub(crate) mod testing;
