//! Where a lab lives on the machine, and how labs share the machine safely:
//! each lab gets its own directory and claims /24 address blocks on loopback atomically
//! (one `mkdir` per block), so that many labs (parallel tests) can run at once.
//!
//! ```text
//! /var/lib/k8sup-lab/
//!   skel-v2/            shared skeleton root (built once)
//!   blocks/<k>/owner    address block 127.(77+k/256).(k%256).0/24 claimed by a lab
//!   labs/<lab>/         one lab: keys, lab.json, emu layer, hosts/<host>/...
//! ```
//! Every component is root-owned and not group/world-writable, as sshd's
//! `ChrootDirectory` requires.

use std::net::Ipv4Addr;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use crate::error::{LabError, Result};

/// The lab's root directory on the machine.
/// Makes claim and tomb names unique within this process.
static CLAIM_COUNTER: AtomicU64 = AtomicU64::new(0);

pub const BASE_DIR: &str = "/var/lib/k8sup-lab";
/// Hosts per address block (.1 to .254).
pub const HOSTS_PER_BLOCK: usize = 254;
/// Blocks 127.77.0.0/24 to 127.126.255.0/24.
const MAX_BLOCKS: u32 = 256 * 50;
/// The port every lab sshd listens on (22 may be held by a wildcard sshd).
pub const SSH_PORT: u16 = 2222;
/// The port of a host's latency proxy, on the host's own address.
pub const PROXY_PORT: u16 = 2223;

pub fn base_dir() -> PathBuf {
    PathBuf::from(BASE_DIR)
}
pub fn labs_dir() -> PathBuf {
    base_dir().join("labs")
}
pub fn blocks_dir() -> PathBuf {
    base_dir().join("blocks")
}

/// Creates `dir` (and parents) as root-owned 0755, fixing the mode of existing ones.
pub fn ensure_private_dir(dir: &Path) -> Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(dir)
        .map_err(LabError::path(dir, "create directory"))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))
        .map_err(LabError::path(dir, "set directory mode 0755"))
}

/// The address of host `index` of a lab holding `blocks`.
pub fn host_address(blocks: &[u32], index: usize) -> Option<Ipv4Addr> {
    let block = *blocks.get(index / HOSTS_PER_BLOCK)?;
    let second = 77 + (block / 256);
    let third = block % 256;
    let fourth = (index % HOSTS_PER_BLOCK) + 1;
    Some(Ipv4Addr::new(127, second as u8, third as u8, fourth as u8))
}

static LAB_COUNTER: AtomicU32 = AtomicU32::new(0);

/// Creates a fresh, uniquely named lab directory `labs/<name>-<pid>-<n>`.
pub fn create_lab_dir(name: &str) -> Result<(String, PathBuf)> {
    let labs = labs_dir();
    ensure_private_dir(&labs)?;
    loop {
        let n = LAB_COUNTER.fetch_add(1, Ordering::SeqCst);
        let unique = format!("{name}-{}-{n}", std::process::id());
        let dir = labs.join(&unique);
        match std::fs::DirBuilder::new().mode(0o755).create(&dir) {
            Ok(()) => return Ok((unique, dir)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(LabError::path(dir, "create lab directory")(e)),
        }
    }
}

/// Claims `count` free address blocks for lab `owner`.
pub fn claim_blocks(owner: &str, count: usize) -> Result<Vec<u32>> {
    let dir = blocks_dir();
    ensure_private_dir(&dir)?;
    let mut claimed = Vec::new();
    for k in 0..MAX_BLOCKS {
        if claimed.len() == count {
            break;
        }
        let block = dir.join(k.to_string());
        if try_claim(&block, owner)? || (reclaim_stale(&block) && try_claim(&block, owner)?) {
            claimed.push(k);
        }
    }
    if claimed.len() < count {
        release_blocks(owner);
        return Err(LabError::NoFreeBlock(dir));
    }
    Ok(claimed)
}

/// Claims `block` for `owner` in one atomic step: the block directory is built
/// aside with its owner file, then renamed into place. A block therefore never
/// exists without its owner, so no other lab can mistake a claim in progress
/// for an abandoned one.
fn try_claim(block: &Path, owner: &str) -> Result<bool> {
    let staging = block.with_file_name(format!(
        ".claim-{}-{}",
        std::process::id(),
        CLAIM_COUNTER.fetch_add(1, Ordering::SeqCst)
    ));
    std::fs::DirBuilder::new()
        .mode(0o755)
        .create(&staging)
        .map_err(LabError::path(&staging, "prepare address block claim"))?;
    if let Err(e) = std::fs::write(staging.join("owner"), owner) {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(LabError::path(&staging, "write block owner")(e));
    }
    match std::fs::rename(&staging, block) {
        Ok(()) => Ok(true),
        Err(e) => {
            let _ = std::fs::remove_dir_all(&staging);
            // The block exists and holds an owner: someone else's.
            if e.kind() == std::io::ErrorKind::AlreadyExists
                || e.kind() == std::io::ErrorKind::DirectoryNotEmpty
            {
                Ok(false)
            } else {
                Err(LabError::path(block, "claim address block")(e))
            }
        }
    }
}

/// A block whose owning lab directory is gone (a crashed run) is taken back. The rename
/// makes the take-back atomic when two labs race for it.
fn reclaim_stale(block: &Path) -> bool {
    let owner = match std::fs::read_to_string(block.join("owner")) {
        Ok(o) => o,
        Err(_) => {
            // Claims are made whole (see try_claim); an unlabelled block comes from an
            // older k8sup-lab or a claim being staged: taken back only when old.
            let old = std::fs::metadata(block)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| SystemTime::now().duration_since(t).ok())
                .is_some_and(|age| age > Duration::from_secs(60));
            if !old {
                return false;
            }
            String::new()
        }
    };
    if !owner.is_empty() && labs_dir().join(owner.trim()).exists() {
        return false;
    }
    let tomb = block.with_file_name(format!(
        ".stale-{}-{}-{}",
        block
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        std::process::id(),
        CLAIM_COUNTER.fetch_add(1, Ordering::SeqCst)
    ));
    if std::fs::rename(block, &tomb).is_err() {
        return false;
    }
    // Another lab may have taken the block back and claimed it anew between our
    // look and our rename: then what we moved is a live claim, and goes back.
    let moved = std::fs::read_to_string(tomb.join("owner")).unwrap_or_default();
    if moved != owner {
        let _ = std::fs::rename(&tomb, block);
        return false;
    }
    std::fs::remove_dir_all(&tomb).is_ok()
}

/// Releases every block owned by lab `owner`.
pub fn release_blocks(owner: &str) {
    let Ok(entries) = std::fs::read_dir(blocks_dir()) else {
        return;
    };
    for e in entries.flatten() {
        let path = e.path();
        if std::fs::read_to_string(path.join("owner")).is_ok_and(|o| o.trim() == owner) {
            let _ = std::fs::remove_dir_all(&path);
        }
    }
}

/// Releases blocks whose lab directory no longer exists.
pub fn release_orphan_blocks() {
    let Ok(entries) = std::fs::read_dir(blocks_dir()) else {
        return;
    };
    for e in entries.flatten() {
        reclaim_stale(&e.path());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_fill_blocks_in_order() {
        let blocks = [3, 300];
        assert_eq!(host_address(&blocks, 0), Some(Ipv4Addr::new(127, 77, 3, 1)));
        assert_eq!(
            host_address(&blocks, 253),
            Some(Ipv4Addr::new(127, 77, 3, 254))
        );
        assert_eq!(
            host_address(&blocks, 254),
            Some(Ipv4Addr::new(127, 78, 44, 1))
        );
        assert_eq!(host_address(&blocks, 508), None);
    }
}
