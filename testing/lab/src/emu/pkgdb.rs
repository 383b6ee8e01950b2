//! The package database of one host: which packages are installed, at which version, and
//! which are held. The emulated package managers (`apt-get`, `dpkg`, `dnf`, `rpm`) share
//! it, and the emulated tools that come with a package (kubeadm, kubelet, containerd...)
//! read their own version from it with [`installed_version`] / [`upstream_version`].
//!
//! It lives in the host at [`DB_PATH`] as JSON (`name -> {version, held, state, arch,
//! repo}`), so a test can read it from outside. A host whose database does not exist yet
//! has the distribution's preinstalled packages ([`super::repos::preinstalled`]).
//!
//! Installing places what the real package places (see [`super::payload`]); removing takes
//! it away again.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::os::unix::io::AsRawFd;

use serde::{Deserialize, Serialize};

use super::payload;
use super::repos::{self, Format};
use super::Invocation;
use crate::distro::{Distro, PackageManager};

/// The database, relative to the host's root.
pub const DB_PATH: &str = "/var/lib/lab-pkg/installed.json";
/// Held while a package manager changes the database (`flock`).
pub const LOCK_PATH: &str = "/var/lib/lab-pkg/lock";

/// dpkg's view of a package; rpm only knows `Installed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum State {
    Installed,
    /// Removed but not purged: its configuration files are still there (dpkg `rc`).
    ConfigFiles,
    /// Known only through a selection (an `apt-mark hold` on a package never installed).
    NotInstalled,
}

/// One package in the database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub version: String,
    #[serde(default)]
    pub held: bool,
    pub state: State,
    /// The package's architecture (`amd64`, `all`, `x86_64`, `noarch`).
    pub arch: String,
    /// Where it came from (`@System`, a repo id, or a repository URL).
    #[serde(default)]
    pub repo: String,
}

/// Every package the host knows, by name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PkgDb {
    pub packages: BTreeMap<String, Record>,
}

impl PkgDb {
    /// The record of an installed package.
    pub fn installed(&self, name: &str) -> Option<&Record> {
        self.packages
            .get(name)
            .filter(|r| r.state == State::Installed)
    }
}

/// The packaging format of the host the invocation runs on.
pub fn host_format(inv: &Invocation) -> Result<(Format, Distro, crate::distro::Arch), String> {
    let p = inv.profile()?;
    let format = match p.distro.package_manager() {
        PackageManager::Apt => Format::Deb,
        PackageManager::Dnf | PackageManager::Yum => Format::Rpm,
    };
    Ok((format, p.distro, p.arch))
}

/// Reads the database (the distribution's preinstalled set when there is none yet).
pub fn load(inv: &Invocation) -> Result<PkgDb, String> {
    match inv.read(DB_PATH) {
        Ok(text) => serde_json::from_str(&text).map_err(|e| format!("{DB_PATH}: {e}")),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let (format, distro, arch) = host_format(inv)?;
            let mut db = PkgDb::default();
            for (name, version) in repos::preinstalled(distro, format) {
                let arch = repos::package_arch(&name, format, arch);
                db.packages.insert(
                    name,
                    Record {
                        version,
                        held: false,
                        state: State::Installed,
                        arch,
                        repo: "@System".into(),
                    },
                );
            }
            Ok(db)
        }
        Err(e) => Err(format!("{DB_PATH}: {e}")),
    }
}

/// Writes the database atomically (write then rename).
pub fn save(inv: &Invocation, db: &PkgDb) -> Result<(), String> {
    let text = serde_json::to_string_pretty(db).map_err(|e| e.to_string())?;
    let tmp = format!("{DB_PATH}.tmp");
    inv.write(&tmp, &text)
        .and_then(|_| std::fs::rename(inv.path(&tmp), inv.path(DB_PATH)))
        .map_err(|e| format!("{DB_PATH}: {e}"))
}

/// An exclusive lock on the database, released when dropped.
pub struct DbLock {
    _file: std::fs::File,
}

/// Takes the database lock without waiting; `Err(None)` when another process holds it.
pub fn try_lock(inv: &Invocation) -> Result<DbLock, Option<String>> {
    let path = inv.path(LOCK_PATH);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| Some(format!("{LOCK_PATH}: {e}")))?;
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| Some(format!("{LOCK_PATH}: {e}")))?;
    // SAFETY: flock on a file descriptor we own.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc == 0 {
        Ok(DbLock { _file: file })
    } else {
        Err(None)
    }
}

/// The version of an installed package as the package manager shows it
/// (`1.30.4-1.1`, `1.30.4-150500.1.1`, `5:27.3.1-1~ubuntu.22.04~jammy`).
pub fn installed_version(inv: &Invocation, name: &str) -> Option<String> {
    load(inv).ok()?.installed(name).map(|r| r.version.clone())
}

/// The upstream version of an installed package: no epoch, no packaging revision
/// (`1.30.4`, `27.3.1`, `1.7.22`).
pub fn upstream_version(inv: &Invocation, name: &str) -> Option<String> {
    installed_version(inv, name).map(|v| upstream_of(&v).to_string())
}

/// Whether a package is installed.
pub fn is_installed(inv: &Invocation, name: &str) -> bool {
    installed_version(inv, name).is_some()
}

/// Whether a package is held (`apt-mark hold`) or version-locked (`dnf versionlock`).
pub fn is_held(inv: &Invocation, name: &str) -> bool {
    load(inv)
        .ok()
        .and_then(|db| db.packages.get(name).map(|r| r.held))
        .unwrap_or(false)
}

/// Installed packages and their versions, sorted by name.
pub fn installed_packages(inv: &Invocation) -> Vec<(String, String)> {
    load(inv)
        .map(|db| {
            db.packages
                .iter()
                .filter(|(_, r)| r.state == State::Installed)
                .map(|(n, r)| (n.clone(), r.version.clone()))
                .collect()
        })
        .unwrap_or_default()
}

/// `[epoch:]upstream[-revision]` → `upstream`.
pub fn upstream_of(version: &str) -> &str {
    let no_epoch = match version.split_once(':') {
        Some((e, rest)) if e.bytes().all(|b| b.is_ascii_digit()) => rest,
        _ => version,
    };
    match no_epoch.rfind('-') {
        Some(i) => &no_epoch[..i],
        None => no_epoch,
    }
}

/// Splits `[epoch:]upstream[-revision]`.
pub fn split_version(version: &str) -> (u64, &str, &str) {
    let (epoch, rest) = match version.split_once(':') {
        Some((e, rest)) if !e.is_empty() && e.bytes().all(|b| b.is_ascii_digit()) => {
            (e.parse().unwrap_or(0), rest)
        }
        _ => (0, version),
    };
    match rest.rfind('-') {
        Some(i) => (epoch, &rest[..i], &rest[i + 1..]),
        None => (epoch, rest, ""),
    }
}

/// dpkg's version ordering (`dpkg --compare-versions`), also right for the rpm versions
/// the lab serves.
pub fn compare_versions(a: &str, b: &str) -> Ordering {
    let (ea, ua, ra) = split_version(a);
    let (eb, ub, rb) = split_version(b);
    ea.cmp(&eb)
        .then_with(|| compare_part(ua, ub))
        .then_with(|| compare_part(ra, rb))
}

fn char_order(c: Option<u8>) -> i32 {
    match c {
        None => 0,
        Some(b'~') => -1,
        Some(c) if c.is_ascii_digit() => 0,
        Some(c) if c.is_ascii_alphabetic() => c as i32,
        Some(c) => c as i32 + 256,
    }
}

fn compare_part(a: &str, b: &str) -> Ordering {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        while (i < a.len() && !a[i].is_ascii_digit()) || (j < b.len() && !b[j].is_ascii_digit()) {
            let ca = char_order(a.get(i).copied().filter(|c| !c.is_ascii_digit()));
            let cb = char_order(b.get(j).copied().filter(|c| !c.is_ascii_digit()));
            if ca != cb {
                return ca.cmp(&cb);
            }
            if i < a.len() && !a[i].is_ascii_digit() {
                i += 1;
            }
            if j < b.len() && !b[j].is_ascii_digit() {
                j += 1;
            }
        }
        while i < a.len() && a[i] == b'0' {
            i += 1;
        }
        while j < b.len() && b[j] == b'0' {
            j += 1;
        }
        let si = i;
        while i < a.len() && a[i].is_ascii_digit() {
            i += 1;
        }
        let sj = j;
        while j < b.len() && b[j].is_ascii_digit() {
            j += 1;
        }
        let (da, db) = (&a[si..i], &b[sj..j]);
        let ord = da.len().cmp(&db.len()).then_with(|| da.cmp(db));
        if ord != Ordering::Equal {
            return ord;
        }
    }
    Ordering::Equal
}

/// Records `name` as installed at `version` and places its files. Returns what the
/// package's maintainer scripts would print (deb: units enabled and started).
pub fn install(
    inv: &Invocation,
    db: &mut PkgDb,
    name: &str,
    version: &str,
    arch: &str,
    repo: &str,
    format: Format,
) -> Result<String, String> {
    let held = db.packages.get(name).is_some_and(|r| r.held);
    let fresh = db.installed(name).is_none();
    payload::place(inv, name, format).map_err(|e| format!("{name}: {e}"))?;
    if fresh {
        // The package's maintainer script (deb postinst, rpm %pre) adds its system user.
        if let Some((user, home)) = super::balancers::system_user(name, format) {
            super::balancers::add_system_user(inv, user, home)
                .map_err(|e| format!("{name}: adding user {user}: {e}"))?;
        }
    }
    db.packages.insert(
        name.to_string(),
        Record {
            version: version.to_string(),
            held,
            state: State::Installed,
            arch: arch.to_string(),
            repo: repo.to_string(),
        },
    );
    Ok(if fresh && format == Format::Deb {
        payload::postinst(inv, name)
    } else {
        String::new()
    })
}

/// Removes `name` (purge: with its configuration files). A removed package with
/// configuration files left stays in the database as [`State::ConfigFiles`] (deb only).
pub fn remove(
    inv: &Invocation,
    db: &mut PkgDb,
    name: &str,
    purge: bool,
    format: Format,
) -> Result<(), String> {
    // The prerm stops the package's daemon (a real one runs until then).
    if let Some(unit) = payload::main_unit(name) {
        super::daemon::stop_if_real(inv, unit);
    }
    let kept_conffiles =
        payload::unplace(inv, name, format, purge).map_err(|e| format!("{name}: {e}"))?;
    if let Some(unit) = payload::main_unit(name) {
        let _ = std::fs::remove_file(inv.path(&format!(
            "{}/{unit}.active",
            crate::profile::SYSTEMD_STATE_DIR
        )));
    }
    let held = db.packages.get(name).is_some_and(|r| r.held);
    match db.packages.get_mut(name) {
        Some(r) if format == Format::Deb && (kept_conffiles || held) => {
            r.state = if kept_conffiles {
                State::ConfigFiles
            } else {
                State::NotInstalled
            };
        }
        _ => {
            db.packages.remove(name);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::distro::{Arch, Distro};
    use crate::emu::testing::FakeHost;

    #[test]
    fn versions_order_like_dpkg() {
        assert_eq!(
            compare_versions("1.30.4-1.1", "1.30.14-1.1"),
            Ordering::Less
        );
        assert_eq!(compare_versions("1:1.0", "2.0"), Ordering::Greater);
        assert_eq!(compare_versions("1.0~rc1", "1.0"), Ordering::Less);
        assert_eq!(
            compare_versions("1.30.4-1.1", "1.30.4-1.1"),
            Ordering::Equal
        );
        assert_eq!(
            compare_versions(
                "5:27.3.1-1~ubuntu.22.04~jammy",
                "5:27.10.0-1~ubuntu.22.04~jammy"
            ),
            Ordering::Less
        );
    }

    #[test]
    fn upstream_strips_epoch_and_revision() {
        assert_eq!(upstream_of("1.30.4-1.1"), "1.30.4");
        assert_eq!(upstream_of("5:27.3.1-1~ubuntu.22.04~jammy"), "27.3.1");
        assert_eq!(upstream_of("1.30.4-150500.1.1"), "1.30.4");
        assert_eq!(upstream_of("20230311"), "20230311");
    }

    #[test]
    fn fresh_host_has_preinstalled_packages_only() {
        let h = FakeHost::new(Distro::Ubuntu2204, Arch::Amd64);
        let inv = Invocation::new(&h.root, "apt-get", &[], 0);
        assert!(is_installed(&inv, "curl"));
        assert!(!is_installed(&inv, "kubelet"));
        assert_eq!(installed_version(&inv, "kubeadm"), None);
    }

    #[test]
    fn install_places_files_and_remove_takes_them_away() {
        let h = FakeHost::new(Distro::Rocky9, Arch::Amd64);
        let inv = Invocation::new(&h.root, "dnf", &[], 0);
        let mut db = load(&inv).expect("db");
        install(
            &inv,
            &mut db,
            "kubeadm",
            "1.30.4-150500.1.1",
            "x86_64",
            "kubernetes",
            Format::Rpm,
        )
        .expect("install");
        save(&inv, &db).expect("save");
        assert_eq!(upstream_version(&inv, "kubeadm").as_deref(), Some("1.30.4"));
        let link = h.root.join("usr/bin/kubeadm");
        assert_eq!(
            std::fs::read_link(&link).expect("link").to_str(),
            Some(payload::EMULATOR)
        );
        remove(&inv, &mut db, "kubeadm", false, Format::Rpm).expect("remove");
        assert!(std::fs::symlink_metadata(&link).is_err());
        assert!(db.installed("kubeadm").is_none());
    }
}
