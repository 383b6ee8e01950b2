//! Reaching lab hosts with the system's OpenSSH client, as a person or a
//! test would (the lab's key, its known_hosts, strict host key checking),
//! and telling whether a lab can run on this machine at all.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Output};

use crate::lab::Lab;

/// Why a lab cannot run here, or `None` when it can (root, OpenSSH server and client).
pub fn unavailable() -> Option<&'static str> {
    if !crate::sys::is_root() {
        return Some("the lab needs root (mounts, chroot, sshd)");
    }
    if !Path::new("/usr/sbin/sshd").exists() || !Path::new("/usr/bin/ssh").exists() {
        return Some("the lab needs openssh-server and openssh-client");
    }
    None
}

impl Lab {
    /// Runs `command` on host `host` as `user` through `ssh` to `address`
    /// (the host's own sshd, or its latency proxy).
    pub fn ssh_via(
        &self,
        address: SocketAddr,
        user: &str,
        command: &str,
    ) -> std::io::Result<Output> {
        Command::new("ssh")
            .arg("-i")
            .arg(self.private_key())
            .arg("-o")
            .arg(format!(
                "UserKnownHostsFile={}",
                self.known_hosts().display()
            ))
            .args(["-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes"])
            .args(["-o", "ConnectTimeout=10", "-o", "LogLevel=ERROR", "-p"])
            .arg(address.port().to_string())
            .arg(format!("{user}@{}", address.ip()))
            .arg(command)
            .output()
    }

    /// Runs `command` as root on host `host`.
    pub fn ssh(&self, host: &str, command: &str) -> crate::Result<Output> {
        let h = self.host(host)?;
        self.ssh_via(h.ssh_addr(), "root", command)
            .map_err(crate::LabError::host_io(host, "run ssh"))
    }
}
