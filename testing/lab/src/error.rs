//! The lab's error type: every failure names the lab or host and the step that failed.

use std::path::PathBuf;

/// What went wrong while building, running or tearing down a lab.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error("the lab needs root (mounts, chroots and sshd); run it as root")]
    NotRoot,

    #[error("{what} is missing: {hint}")]
    Missing { what: String, hint: String },

    #[error("lab spec {path}: {message}")]
    Spec { path: PathBuf, message: String },

    #[error("lab spec is invalid: {0}")]
    InvalidSpec(String),

    #[error("host {host}: {step}: {source}")]
    HostIo {
        host: String,
        step: &'static str,
        #[source]
        source: std::io::Error,
    },

    #[error("host {host}: {step}: {message}")]
    Host {
        host: String,
        step: &'static str,
        message: String,
    },

    #[error("lab {lab}: {step}: {source}")]
    LabIo {
        lab: String,
        step: &'static str,
        #[source]
        source: std::io::Error,
    },

    #[error("lab {lab}: {step}: {message}")]
    Lab {
        lab: String,
        step: &'static str,
        message: String,
    },

    #[error("{path}: {step}: {source}")]
    Path {
        path: PathBuf,
        step: &'static str,
        #[source]
        source: std::io::Error,
    },

    #[error("command `{command}` failed ({status}): {stderr}")]
    Command {
        command: String,
        status: String,
        stderr: String,
    },

    #[error("no host named {0} in this lab")]
    NoSuchHost(String),

    #[error("no lab named {0} (see `k8sup-lab status`)")]
    NoSuchLab(String),

    #[error("no free address block left under {0}")]
    NoFreeBlock(PathBuf),
}

/// The lab's result type.
pub type Result<T, E = LabError> = std::result::Result<T, E>;

impl LabError {
    pub(crate) fn host_io(host: &str, step: &'static str) -> impl FnOnce(std::io::Error) -> Self {
        let host = host.to_string();
        move |source| LabError::HostIo { host, step, source }
    }

    pub(crate) fn lab_io(lab: &str, step: &'static str) -> impl FnOnce(std::io::Error) -> Self {
        let lab = lab.to_string();
        move |source| LabError::LabIo { lab, step, source }
    }

    pub(crate) fn path(
        path: impl Into<PathBuf>,
        step: &'static str,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| LabError::Path { path, step, source }
    }
}
