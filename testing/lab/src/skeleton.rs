//! The shared skeleton every host's root is an overlay of: the top-level symlinks into /usr,
//! a copy of the machine's /etc without its SSH host keys and secrets, device nodes, and
//! the usual empty directories. Built once per machine and reused by every lab.
//!
//! Also makes sure the lab user `k8sup` exists on the machine: sshd looks users up in the
//! machine's /etc/passwd before it chroots.

use std::os::unix::fs::{symlink, DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use crate::error::{LabError, Result};
use crate::layout;
use crate::sys;

/// Bump when the skeleton's content changes, so that an old skeleton is not reused.
const SKELETON_VERSION: &str = "skel-v2";

/// The non-root lab user.
pub const LAB_USER: &str = "k8sup";
/// The password of user `k8sup` inside every host (for hosts where sudo asks for one).
pub const K8SUP_PASSWORD: &str = "k8sup-lab";
/// SHA-512 crypt of [`K8SUP_PASSWORD`].
const K8SUP_PASSWORD_HASH: &str = "$6$k8suplabsalt$jUPJoxLfrReGwB.2owOcfzbb4j.gOpBZl0BehUNzFfRo.r4E/LYEvyIaXazGeTy2wfYNwXrfAAXqQSB9mm8hh1";

static USER_LOCK: Mutex<()> = Mutex::new(());

/// uid and gid of a user in a passwd file's text.
pub fn passwd_ids(passwd: &str, user: &str) -> Option<(u32, u32)> {
    passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        if f.len() >= 4 && f[0] == user {
            Some((f[2].parse().ok()?, f[3].parse().ok()?))
        } else {
            None
        }
    })
}

/// Creates the machine user `k8sup` if it is missing (never deletes it), with a password
/// field sshd does not treat as locked.
pub fn ensure_lab_user() -> Result<(u32, u32)> {
    let _guard = USER_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    for attempt in 0..20 {
        let passwd = std::fs::read_to_string("/etc/passwd")
            .map_err(LabError::path("/etc/passwd", "read"))?;
        if let Some(ids) = passwd_ids(&passwd, LAB_USER) {
            let shadow = std::fs::read_to_string("/etc/shadow").unwrap_or_default();
            let locked = shadow
                .lines()
                .find(|l| l.starts_with(&format!("{LAB_USER}:")))
                .and_then(|l| l.split(':').nth(1))
                .is_some_and(|p| p.starts_with('!'));
            if locked {
                run(Command::new("usermod").args(["-p", "*", LAB_USER]))?;
            }
            return Ok(ids);
        }
        let out = Command::new("useradd")
            .args([
                "-M",
                "-d",
                "/home/k8sup",
                "-s",
                "/bin/bash",
                "-p",
                "*",
                LAB_USER,
            ])
            .output()
            .map_err(|e| LabError::Missing {
                what: "useradd".into(),
                hint: format!("cannot run it ({e}); install the `passwd` package"),
            })?;
        // 9: the user appeared meanwhile; 10: /etc/passwd was locked by another useradd.
        if !out.status.success() && ![9, 10].contains(&out.status.code().unwrap_or(0)) {
            return Err(LabError::Command {
                command: "useradd k8sup".into(),
                status: out.status.to_string(),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        std::thread::sleep(Duration::from_millis(50 * (attempt + 1)));
    }
    Err(LabError::Lab {
        lab: "machine".into(),
        step: "create user k8sup",
        message: "user still missing after useradd".into(),
    })
}

/// Runs a command, turning failure into an error with its stderr.
pub(crate) fn run(cmd: &mut Command) -> Result<()> {
    let out = cmd.output().map_err(|e| LabError::Command {
        command: format!("{cmd:?}"),
        status: "could not start".into(),
        stderr: e.to_string(),
    })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(LabError::Command {
            command: format!("{cmd:?}"),
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

/// The skeleton's directory, building it first if this machine has none yet.
pub fn ensure_skeleton() -> Result<PathBuf> {
    let (uid, gid) = ensure_lab_user()?;
    let target = layout::base_dir().join(SKELETON_VERSION);
    if target.join(".complete").exists() {
        return Ok(target);
    }
    layout::ensure_private_dir(&layout::base_dir())?;
    let tmp = layout::base_dir().join(format!(
        ".{SKELETON_VERSION}.tmp-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    let _ = std::fs::remove_dir_all(&tmp);
    build(&tmp, uid, gid)?;
    std::fs::write(tmp.join(".complete"), "").map_err(LabError::path(&tmp, "mark complete"))?;
    match std::fs::rename(&tmp, &target) {
        Ok(()) => Ok(target),
        Err(_) if target.join(".complete").exists() => {
            // Another lab built it first; ours is redundant.
            let _ = std::fs::remove_dir_all(&tmp);
            Ok(target)
        }
        Err(e) => Err(LabError::path(&target, "install skeleton")(e)),
    }
}

fn dir(root: &Path, rel: &str, mode: u32) -> Result<()> {
    let p = root.join(rel);
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(&p)
        .map_err(LabError::path(&p, "create skeleton directory"))?;
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode))
        .map_err(LabError::path(&p, "set mode"))
}

fn build(root: &Path, uid: u32, gid: u32) -> Result<()> {
    dir(root, "", 0o755)?;
    for (link, to) in [
        ("bin", "usr/bin"),
        ("lib", "usr/lib"),
        ("lib64", "usr/lib64"),
        ("sbin", "usr/sbin"),
    ] {
        symlink(to, root.join(link)).map_err(LabError::path(root.join(link), "symlink"))?;
    }
    for d in [
        "usr",
        "proc",
        "sys",
        "dev",
        "home",
        "var/lib",
        "var/log",
        "var/cache",
        "var/spool",
        "run/systemd/system",
        "mnt",
        "opt",
        "srv",
        "boot",
        "media",
    ] {
        dir(root, d, 0o755)?;
    }
    for d in ["tmp", "var/tmp", "run/lock"] {
        dir(root, d, 0o1777)?;
    }
    dir(root, "root", 0o700)?;
    dir(root, "home/k8sup", 0o755)?;
    std::os::unix::fs::chown(root.join("home/k8sup"), Some(uid), Some(gid))
        .map_err(LabError::path(root.join("home/k8sup"), "chown"))?;
    symlink("/run", root.join("var/run"))
        .map_err(LabError::path(root.join("var/run"), "symlink"))?;

    run(Command::new("cp")
        .arg("-a")
        .arg("/etc")
        .arg(root.join("etc")))?;
    scrub_etc(&root.join("etc"))?;

    let dev = root.join("dev");
    for (name, major, minor) in [
        ("null", 1, 3),
        ("zero", 1, 5),
        ("full", 1, 7),
        ("random", 1, 8),
        ("urandom", 1, 9),
        ("tty", 5, 0),
    ] {
        let p = dev.join(name);
        sys::mknod_char(&p, 0o666, major, minor).map_err(LabError::path(&p, "mknod"))?;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o666))
            .map_err(LabError::path(&p, "chmod"))?;
    }
    for (name, to) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
        ("ptmx", "pts/ptmx"),
    ] {
        symlink(to, dev.join(name)).map_err(LabError::path(dev.join(name), "symlink"))?;
    }
    dir(root, "dev/shm", 0o1777)?;
    // The mount point of the machine's /dev/pts, so that sessions with a terminal work.
    dir(root, "dev/pts", 0o755)?;
    Ok(())
}

/// Removes what must not leak into hosts (the machine's SSH host keys and password hashes)
/// and writes a shadow file in which only `k8sup` has a password.
fn scrub_etc(etc: &Path) -> Result<()> {
    if let Ok(entries) = std::fs::read_dir(etc.join("ssh")) {
        for e in entries.flatten() {
            if e.file_name().to_string_lossy().starts_with("ssh_host_") {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    for f in [
        "shadow-",
        "gshadow-",
        "passwd-",
        "group-",
        "machine-id",
        "subuid-",
        "subgid-",
    ] {
        let _ = std::fs::remove_file(etc.join(f));
    }
    let passwd = std::fs::read_to_string(etc.join("passwd"))
        .map_err(LabError::path(etc.join("passwd"), "read"))?;
    let mut shadow = String::new();
    for line in passwd.lines() {
        if let Some(name) = line.split(':').next() {
            let hash = if name == LAB_USER {
                K8SUP_PASSWORD_HASH
            } else {
                "*"
            };
            shadow.push_str(&format!("{name}:{hash}:19800:0:99999:7:::\n"));
        }
    }
    let path = etc.join("shadow");
    std::fs::write(&path, shadow).map_err(LabError::path(&path, "write"))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640))
        .map_err(LabError::path(&path, "chmod"))?;
    let group = std::fs::read_to_string(etc.join("group"))
        .map_err(LabError::path(etc.join("group"), "read"))?;
    let gshadow: String = group
        .lines()
        .filter_map(|l| l.split(':').next())
        .map(|g| format!("{g}:*::\n"))
        .collect();
    let path = etc.join("gshadow");
    std::fs::write(&path, gshadow).map_err(LabError::path(&path, "write"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_ids_in_passwd() {
        let text = "root:x:0:0:root:/root:/bin/bash\nk8sup:x:1001:1002::/home/k8sup:/bin/bash\n";
        assert_eq!(passwd_ids(text, "k8sup"), Some((1001, 1002)));
        assert_eq!(passwd_ids(text, "nobody"), None);
    }
}
