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

/// Whether a test that cannot start must fail instead of skipping: under CI
/// (`CI=true`) or when `tests/run` runs the whole suite (`K8SUP_REQUIRE_LAB=1`).
pub fn required() -> bool {
    ["CI", "K8SUP_REQUIRE_LAB"]
        .iter()
        .any(|name| std::env::var(name).is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true")))
}

/// Says why a test does not run (`SKIPPED: why`), or fails it where a skip would
/// hide that it never ran ([`required`]).
pub fn skip(why: &str) {
    assert!(
        !required(),
        "this test cannot run ({why}), and CI=true or K8SUP_REQUIRE_LAB=1 requires it"
    );
    eprintln!("SKIPPED: {why}");
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
