//! Taking a lab down completely, from nothing but its directory: kill its sshds and every
//! process running inside its hosts, unmount its overlays, remove its files, release its
//! address blocks. Used by `Lab`'s `Drop`, by `k8sup-lab down`, and to clean up after
//! crashed runs (`down --all`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::{LabError, Result};
use crate::layout;
use crate::sys;

/// Pids of the sshd listeners of a lab (from their pid files, checked against cmdline so
/// that a recycled pid is never killed).
fn sshd_listeners(lab_dir: &Path) -> Vec<i32> {
    let Ok(hosts) = std::fs::read_dir(lab_dir.join("hosts")) else {
        return Vec::new();
    };
    hosts
        .flatten()
        .filter_map(|h| {
            let pid: i32 = std::fs::read_to_string(h.path().join("sshd.pid"))
                .ok()?
                .trim()
                .parse()
                .ok()?;
            owned_by_lab(pid, lab_dir).then_some(pid)
        })
        .collect()
}

fn owned_by_lab(pid: i32, lab_dir: &Path) -> bool {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let needle = lab_dir.as_os_str().as_encoded_bytes();
    cmdline.windows(needle.len()).any(|w| w == needle)
}

/// Processes that belong to the lab: those chrooted into it, those whose command line
/// names it, those inside its hosts' network namespaces, and every descendant of those.
pub fn lab_processes(lab_dir: &Path) -> Vec<i32> {
    let procs = sys::processes();
    let namespaces = crate::netns::read_record(lab_dir)
        .map(|r| crate::netns::namespace_inodes(&r))
        .unwrap_or_default();
    let mut found: Vec<i32> = procs
        .iter()
        .filter(|(pid, _)| {
            std::fs::read_link(format!("/proc/{pid}/root")).is_ok_and(|r| r.starts_with(lab_dir))
                || owned_by_lab(*pid, lab_dir)
                || (!namespaces.is_empty()
                    && crate::netns::process_namespace_inode(*pid)
                        .is_some_and(|i| namespaces.contains(&i)))
        })
        .map(|(pid, _)| *pid)
        .collect();
    let me = std::process::id() as i32;
    found.retain(|p| *p != me);
    loop {
        let more: Vec<i32> = procs
            .iter()
            .filter(|(pid, ppid)| found.contains(ppid) && !found.contains(pid))
            .map(|(pid, _)| *pid)
            .collect();
        if more.is_empty() {
            break;
        }
        found.extend(more);
    }
    found.retain(|p| *p != me);
    found
}

/// Mount points at or below `dir`, deepest first.
pub fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let mut m: Vec<PathBuf> = sys::mount_points()
        .into_iter()
        .filter(|p| p.starts_with(dir))
        .collect();
    m.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    m
}

/// Takes down the lab in `lab_dir`; `name` is the lab's unique name (owner of its blocks).
pub fn teardown(name: &str, lab_dir: &Path) -> Result<()> {
    for pid in sshd_listeners(lab_dir) {
        let _ = sys::signal(pid, libc::SIGKILL);
    }
    // Wait until every process is gone: a block released while one of its sshds
    // still listens would make the next lab's sshd fail to bind its address.
    let mut left = Vec::new();
    for _ in 0..1500 {
        left = lab_processes(lab_dir);
        if left.is_empty() {
            break;
        }
        for pid in &left {
            let _ = sys::signal(*pid, libc::SIGKILL);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    if !left.is_empty() {
        return Err(LabError::Lab {
            lab: name.into(),
            step: "stop processes",
            message: format!(
                "still running after SIGKILL: {left:?}; the lab's addresses stay claimed"
            ),
        });
    }
    for mount in mounts_under(lab_dir) {
        if sys::unmount(&mount, false).is_err() {
            sys::unmount(&mount, true).map_err(|e| LabError::Lab {
                lab: name.into(),
                step: "unmount",
                message: format!("{}: {e}", mount.display()),
            })?;
        }
    }
    crate::netns::remove(name, lab_dir)?;
    let left = mounts_under(lab_dir);
    if !left.is_empty() {
        return Err(LabError::Lab {
            lab: name.into(),
            step: "unmount",
            message: format!("still mounted: {left:?}"),
        });
    }
    if lab_dir.exists() {
        std::fs::remove_dir_all(lab_dir).map_err(LabError::lab_io(name, "remove lab directory"))?;
    }
    layout::release_blocks(name);
    Ok(())
}

/// The unique names of every lab on this machine.
pub fn lab_names() -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(layout::labs_dir()) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .flatten()
        .filter(|e| e.path().is_dir())
        .filter_map(|e| e.file_name().to_str().map(String::from))
        .collect();
    names.sort();
    names
}

/// Takes down every lab on the machine and releases orphaned address blocks.
pub fn teardown_all() -> Result<Vec<String>> {
    let mut done = Vec::new();
    let mut first_error = None;
    for name in lab_names() {
        match teardown(&name, &layout::labs_dir().join(&name)) {
            Ok(()) => done.push(name),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    layout::release_orphan_blocks();
    match first_error {
        Some(e) => Err(e),
        None => Ok(done),
    }
}
