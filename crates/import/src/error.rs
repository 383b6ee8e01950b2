//! Why a Kubespray inventory could not be imported, with the file (and line) at fault.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{file}: not YAML: {message}")]
    NotYaml { file: String, message: String },

    #[error("{file}:{line}: {message}")]
    At {
        file: String,
        line: usize,
        message: String,
    },

    #[error("{file}: not an Ansible inventory: expected `all:` with hosts and children")]
    NotInventory { file: String },

    #[error("{file}: no host in kube_control_plane: k8sup needs at least one master")]
    NoMaster { file: String },
}

/// What is wrong at `file:line`.
pub(crate) fn at(file: &str, line: usize, message: impl Into<String>) -> ImportError {
    ImportError::At {
        file: file.to_string(),
        line,
        message: message.into(),
    }
}
