//! Real programs served to lab hosts as their distribution packages: Debian's haproxy
//! and nginx (with the libraries this machine lacks), fetched once per machine with
//! `apt-get download` and unpacked with `dpkg -x` into a private directory (never
//! installed machine-wide: the lab overlays the machine's /usr, so an installed haproxy
//! would be in every host), then hard-linked into each lab's emulator layer at
//! [`IN_HOST_DIR`]. Installing `haproxy` or `nginx` in a host copies the real files from
//! there to where the package puts them (see `emu::payload`).
//!
//! When they cannot be fetched (no archive reachable), the lab still comes up; the reason
//! is left in [`UNAVAILABLE_FILE`] and installing those packages fails with it.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{LabError, Result};

/// Where the unpacked packages are, inside a host.
pub const IN_HOST_DIR: &str = "/usr/lib/k8sup-lab/real";
/// Inside a host: why the real packages are missing, if they are.
pub const UNAVAILABLE_FILE: &str = "/usr/lib/k8sup-lab/real/UNAVAILABLE";

/// Debian 12's packages unpacked (the balancers and the libraries the machine lacks).
pub const DEBS: &[&str] = &[
    "haproxy",
    "liblua5.3-0",
    "libopentracing-c-wrapper0",
    "libopentracing1",
    "nginx",
    "nginx-common",
    "libnginx-mod-stream",
];

/// The machine's copy: `<dir>/root` holds every package unpacked.
fn machine_dir() -> PathBuf {
    crate::layout::base_dir().join("real-v2")
}

fn step_error(step: &'static str, message: String) -> LabError {
    LabError::Lab {
        lab: "-".into(),
        step,
        message,
    }
}

fn run(cmd: &mut Command, what: &str) -> Result<()> {
    let out = cmd
        .output()
        .map_err(|e| step_error("fetch real packages", format!("{what}: {e}")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(step_error(
            "fetch real packages",
            format!("{what}: {}", String::from_utf8_lossy(&out.stderr).trim()),
        ))
    }
}

/// Makes sure the machine's copy exists (once; under a lock, as labs start in parallel)
/// and returns its root.
pub fn ensure() -> Result<PathBuf> {
    let dir = machine_dir();
    let root = dir.join("root");
    let done = dir.join(".complete");
    if done.exists() {
        return Ok(root);
    }
    crate::layout::ensure_private_dir(&dir)?;
    let lock = std::fs::File::create(dir.join(".lock"))
        .map_err(|e| step_error("fetch real packages", format!("lock: {e}")))?;
    // SAFETY: flock on a file we own; released when `lock` is dropped.
    unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&lock), libc::LOCK_EX) };
    if done.exists() {
        return Ok(root);
    }
    let download = dir.join("debs");
    let _ = std::fs::remove_dir_all(&download);
    std::fs::create_dir_all(&download)
        .map_err(|e| step_error("fetch real packages", e.to_string()))?;
    let fetch = |download: &Path| {
        run(
            Command::new("apt-get")
                .arg("download")
                .arg("-q")
                .args(DEBS)
                .current_dir(download),
            "apt-get download",
        )
    };
    if fetch(&download).is_err() {
        run(
            Command::new("apt-get").args(["update", "-qq"]),
            "apt-get update",
        )?;
        fetch(&download)?;
    }
    let _ = std::fs::remove_dir_all(&root);
    for entry in std::fs::read_dir(&download)
        .map_err(|e| step_error("fetch real packages", e.to_string()))?
        .flatten()
    {
        run(
            Command::new("dpkg").arg("-x").arg(entry.path()).arg(&root),
            "dpkg -x",
        )?;
    }
    let _ = std::fs::remove_dir_all(&download);
    std::fs::write(&done, "").map_err(|e| step_error("fetch real packages", e.to_string()))?;
    Ok(root)
}

/// Puts the real packages into a lab's emulator layer (hard links: no copy), or the
/// reason they are missing.
pub fn install_layer(emu_usr: &Path) -> Result<()> {
    let target = emu_usr.join(IN_HOST_DIR.trim_start_matches("/usr/"));
    crate::layout::ensure_private_dir(&target)?;
    match ensure() {
        Ok(root) => run(
            Command::new("cp")
                .arg("-al")
                .arg(&root)
                .arg(target.join("root")),
            "link the real packages into the lab",
        ),
        Err(e) => std::fs::write(target.join("UNAVAILABLE"), format!("{e}\n"))
            .map_err(LabError::path(&target, "write UNAVAILABLE")),
    }
}
