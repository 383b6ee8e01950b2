//! SSH keys of a lab: the client key (plain and passphrase-protected copies), each host's
//! own ed25519 host key, and the known_hosts file that lists them all.

use std::path::Path;
use std::process::Command;

use crate::error::{LabError, Result};
use crate::skeleton::run;

/// The passphrase of the lab's encrypted client key copy.
pub const KEY_PASSPHRASE: &str = "k8sup-lab-passphrase";

/// Generates an unencrypted ed25519 key pair at `path` and `path.pub`.
pub fn generate(path: &Path, comment: &str) -> Result<()> {
    run(Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
        .arg(path))
}

/// Copies the key at `from` to `to` and encrypts the copy with [`KEY_PASSPHRASE`].
pub fn encrypted_copy(from: &Path, to: &Path) -> Result<()> {
    std::fs::copy(from, to).map_err(LabError::path(to, "copy client key"))?;
    run(Command::new("ssh-keygen")
        .args(["-q", "-p", "-P", "", "-N", KEY_PASSPHRASE, "-f"])
        .arg(to))
}

/// The `type base64` part of a public key file.
pub fn public_key(pub_path: &Path) -> Result<String> {
    let text =
        std::fs::read_to_string(pub_path).map_err(LabError::path(pub_path, "read public key"))?;
    let mut parts = text.split_whitespace();
    match (parts.next(), parts.next()) {
        (Some(kind), Some(b64)) => Ok(format!("{kind} {b64}")),
        _ => Err(LabError::Path {
            path: pub_path.to_path_buf(),
            step: "parse public key",
            source: std::io::Error::other("not an OpenSSH public key"),
        }),
    }
}

/// A known_hosts line for a host reachable on several ports of one address.
pub fn known_hosts_line(address: &str, ports: &[u16], key: &str) -> String {
    let names: Vec<String> = ports
        .iter()
        .map(|p| {
            if *p == 22 {
                address.to_string()
            } else {
                format!("[{address}]:{p}")
            }
        })
        .collect();
    format!("{} {key}\n", names.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_hosts_lists_every_port() {
        assert_eq!(
            known_hosts_line("127.77.0.1", &[2222, 2223], "ssh-ed25519 AAAA"),
            "[127.77.0.1]:2222,[127.77.0.1]:2223 ssh-ed25519 AAAA\n"
        );
    }
}
