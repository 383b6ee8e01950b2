//! What can go wrong while rendering k8sup's Kubernetes configuration.

use thiserror::Error;

/// An error from rendering kubeadm configuration, patching a manifest or building
/// a template context. Each names the thing it was working on.
#[derive(Debug, Error)]
pub enum KubeError {
    /// A kube-proxy flag that has no KubeProxyConfiguration field k8sup knows.
    #[error(
        "extra_args.kube-proxy: {flag:?} cannot be set: kube-proxy takes its settings from \
         kubeadm's KubeProxyConfiguration, and k8sup knows these flags of it: {known}"
    )]
    UnsupportedKubeProxyFlag { flag: String, known: String },

    /// A kube-proxy flag whose value does not fit the configuration field's type.
    #[error("extra_args.kube-proxy: {flag} = {value:?} is not {expected}")]
    BadKubeProxyValue {
        flag: String,
        value: String,
        expected: &'static str,
    },

    /// A YAML document could not be serialized (a bug rather than bad input).
    #[error("could not write {what} as YAML: {source}")]
    Serialize {
        what: String,
        #[source]
        source: serde_norway::Error,
    },

    /// A manifest document that is not YAML.
    #[error("{manifest}: document {document} is not valid YAML: {source}")]
    ManifestSyntax {
        manifest: String,
        document: usize,
        #[source]
        source: serde_norway::Error,
    },

    /// A manifest that lacks what k8sup must patch in it.
    #[error("{manifest}: {problem}")]
    ManifestShape { manifest: String, problem: String },

    /// Calico has no built-in manifest: the inventory must name one.
    #[error(
        "cni = \"calico\" needs the Calico manifest (calico.yaml of a release, e.g. {url}): \
         k8sup patches its IPv4 pool to pod_cidr but does not ship it"
    )]
    CalicoManifestNeeded { url: &'static str },

    /// A value that cannot be a shell word (it holds a NUL byte).
    #[error("{value:?} cannot be put on a command line: it holds a NUL byte")]
    NotAShellWord { value: String },

    /// Facts that do not have the shape k8sup's gather script produces.
    #[error("host {host}: facts lack {field}")]
    Facts { host: String, field: &'static str },

    /// The pinned runtime bits do not cover this host (no checksum for its arch).
    #[error("host {host}: {message}")]
    Pins { host: String, message: String },
}
