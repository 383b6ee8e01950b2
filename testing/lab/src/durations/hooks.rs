//! The emulators' side of durations: each emulator calls one function here at the point
//! where the real tool spends its time, and nothing happens unless the lab was brought
//! up with durations ([`init`] finds none: every call returns at once).
//!
//! Durations are sleeps, never CPU. Image pulls go through one registry mirror that every
//! host shares: its link is a reservation file under `flock` in the cluster directory
//! (`mirror.json`, the time at which the link is next free), so N hosts pulling at once
//! take N times as long as one, while a host's own pull never beats its NIC. Every
//! duration applied is appended to [`super::APPLIED_LOG`] (one JSON line, one `write`).

use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::{transfer_ms, Applied, Durations, APPLIED_LOG, DIR, PROFILE_FILE};

/// The link's reservation state, under the durations directory.
const MIRROR_FILE: &str = "mirror.json";
/// When each node turns Ready, once decided, under the durations directory.
const READY_FILE: &str = "ready.json";
const LOCK_FILE: &str = "lock";

static ACTIVE: OnceLock<Option<Active>> = OnceLock::new();

/// Reads the lab's durations, if any, for this process (the emulator's `main` calls it once).
pub fn init(cluster_dir: &Path, host: &str) {
    let _ = ACTIVE.set(Active::load(cluster_dir, host));
}

/// The durations in force, or `None` (the default: instant).
pub fn active() -> Option<&'static Active> {
    ACTIVE.get().and_then(Option::as_ref)
}

/// Durations in force on one host.
#[derive(Debug, Clone)]
pub struct Active {
    pub durations: Durations,
    /// The durations directory in the shared cluster directory.
    dir: PathBuf,
    /// The lab host this process runs on.
    host: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Mirror {
    /// Milliseconds since the epoch at which the link is next free.
    free_at_ms: u64,
}

/// An image a node needs, and since when it could be pulled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Need {
    pub image: String,
    /// Milliseconds since the epoch from which the kubelet pulls it.
    pub from_ms: u64,
    /// When it is (or will be) present on the node already, if it is.
    pub present_at_ms: Option<u64>,
}

/// When a node turns Ready, and the images its kubelet pulled on the way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Readiness {
    pub ready_at_ms: u64,
    /// (image, when it is present) for each image the kubelet pulled.
    pub pulled: Vec<(String, u64)>,
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Active {
    fn load(cluster_dir: &Path, host: &str) -> Option<Active> {
        let dir = cluster_dir.join(DIR);
        let text = std::fs::read_to_string(dir.join(PROFILE_FILE)).ok()?;
        let durations = serde_json::from_str(&text).ok()?;
        Some(Active::new(dir, host, durations))
    }

    /// Durations kept under `dir` (a lab's `cluster/durations`) for `host`.
    pub fn new(dir: PathBuf, host: &str, durations: Durations) -> Active {
        Active {
            durations,
            dir,
            host: host.to_string(),
        }
    }

    /// The lab's cluster directory (the durations directory's parent).
    pub fn cluster_dir(&self) -> Option<PathBuf> {
        self.dir.parent().map(Path::to_path_buf)
    }

    /// A profile duration in real milliseconds (after `time_scale`).
    pub fn scaled(&self, ms: u64) -> u64 {
        (ms as f64 * self.durations.time_scale).round() as u64
    }

    fn unscaled(&self, real_ms: u64) -> u64 {
        (real_ms as f64 / self.durations.time_scale).round() as u64
    }

    /// Records `ms` (a profile figure) of `op` on `what`, then sleeps it.
    pub fn spend(&self, op: &str, what: &str, ms: u64) {
        self.record(now_ms(), op, what, ms);
        std::thread::sleep(Duration::from_millis(self.scaled(ms)));
    }

    /// Downloads and unpacks of packages, one after the other as apt and dnf do.
    pub fn packages<'a>(&self, names: impl IntoIterator<Item = &'a str>) {
        for name in names {
            self.spend("package", name, self.durations.package_ms(name));
        }
    }

    /// `systemctl start|restart UNIT`.
    pub fn service(&self, unit: &str) {
        self.spend("service-restart", unit, self.durations.service_ms(unit));
    }

    /// Starts a pull of one image through the shared mirror now: reserves the mirror and
    /// returns when the image will be present (the caller waits for it).
    pub fn start_pull(&self, image: &str) -> u64 {
        let start = now_ms();
        let done = self.transfer(image, start);
        self.record(start, "image-pull", image, self.unscaled(done - start));
        done
    }

    /// Reserves the mirror for `image` from `not_before_ms`; returns when it is unpacked.
    fn transfer(&self, image: &str, not_before_ms: u64) -> u64 {
        let d = &self.durations;
        let bytes = d.image_bytes(image);
        let on_link = self.scaled(transfer_ms(bytes as f64, d.network.mirror_mbps));
        let on_nic = self.scaled(transfer_ms(bytes as f64, d.network.host_mbps));
        let unpack = self.scaled(d.unpack_ms(bytes));
        let link_done = self
            .locked(|dir| {
                let path = dir.join(MIRROR_FILE);
                let mut m: Mirror = std::fs::read_to_string(&path)
                    .ok()
                    .and_then(|t| serde_json::from_str(&t).ok())
                    .unwrap_or_default();
                let end = m.free_at_ms.max(not_before_ms) + on_link;
                m.free_at_ms = end;
                write_atomic(&path, &serde_json::to_string(&m).unwrap_or_default());
                end
            })
            // Without the shared directory the link cannot be shared: the host's NIC alone.
            .unwrap_or(not_before_ms + on_link);
        link_done.max(not_before_ms + on_nic) + unpack
    }

    /// When `node` turns Ready: its images pulled one after the other (the kubelet
    /// serializes pulls by default), each from when its pod could start, then
    /// `kubelet_ready_after_cni_ms` after `since_ms` or the last pull. Decided once,
    /// the first time anyone asks, and kept: later calls return the same answer.
    pub fn node_ready(&self, node: &str, since_ms: u64, needs: &[Need]) -> Readiness {
        let decided = self
            .locked(|dir| read_ready(dir).get(node).copied())
            .flatten();
        if let Some(at) = decided {
            return Readiness {
                ready_at_ms: at,
                pulled: Vec::new(),
            };
        }
        let mut needs = needs.to_vec();
        needs.sort_by_key(|n| n.from_ms);
        let mut t = since_ms;
        let mut kubelet_free = 0;
        let mut pulled = Vec::new();
        for n in &needs {
            let at = match n.present_at_ms {
                Some(at) => at,
                None => {
                    let done = self.transfer(&n.image, n.from_ms.max(kubelet_free));
                    kubelet_free = done;
                    pulled.push((n.image.clone(), done));
                    done
                }
            };
            t = t.max(at);
        }
        let ready_at = t + self.scaled(self.durations.steps.kubelet_ready_after_cni_ms);
        for (image, done) in &pulled {
            self.record(
                since_ms.min(*done),
                "image-pull",
                &format!("{image} (kubelet of {node})"),
                self.unscaled(done.saturating_sub(since_ms)),
            );
        }
        self.record(
            since_ms,
            "kubelet-ready",
            node,
            self.unscaled(ready_at.saturating_sub(since_ms)),
        );
        let kept = self.locked(|dir| {
            let mut table = read_ready(dir);
            // Another host may have decided in between: the first decision stands.
            let at = *table.entry(node.to_string()).or_insert(ready_at);
            write_atomic(
                &dir.join(READY_FILE),
                &serde_json::to_string(&table).unwrap_or_default(),
            );
            at
        });
        Readiness {
            ready_at_ms: kept.unwrap_or(ready_at),
            pulled,
        }
    }

    /// Forgets a node's readiness (it was reset or deleted).
    pub fn forget_node(&self, node: &str) {
        self.locked(|dir| {
            let mut table = read_ready(dir);
            if table.remove(node).is_some() {
                write_atomic(
                    &dir.join(READY_FILE),
                    &serde_json::to_string(&table).unwrap_or_default(),
                );
            }
        });
    }

    fn record(&self, at_ms: u64, op: &str, what: &str, ms: u64) {
        let entry = Applied {
            at_ms,
            host: self.host.clone(),
            op: op.to_string(),
            what: what.to_string(),
            ms,
        };
        crate::emu::append_json_line(&self.dir.join(APPLIED_LOG), &entry);
    }

    /// Runs `f` under the durations directory's lock; `None` if it cannot be taken.
    fn locked<T>(&self, f: impl FnOnce(&Path) -> T) -> Option<T> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.dir.join(LOCK_FILE))
            .ok()?;
        // SAFETY: flock on a descriptor we own; released when `file` is closed.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return None;
        }
        Some(f(&self.dir))
    }
}

fn read_ready(dir: &Path) -> std::collections::BTreeMap<String, u64> {
    std::fs::read_to_string(dir.join(READY_FILE))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default()
}

fn write_atomic(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    if std::fs::write(&tmp, text).is_ok() {
        let _ = std::fs::rename(&tmp, path);
    }
}

/// `apt-get update` / `dnf makecache`.
pub fn index_update() {
    if let Some(a) = active() {
        a.spend(
            "index-update",
            "package indexes",
            a.durations.packages.index_update_ms,
        );
    }
}

/// Package downloads and unpacks, in the order the package manager does them.
pub fn packages<'a>(names: impl IntoIterator<Item = &'a str>) {
    if let Some(a) = active() {
        a.packages(names);
    }
}

/// `systemctl start|restart UNIT` of a unit that exists.
pub fn service(unit: &str) {
    if let Some(a) = active() {
        a.service(unit);
    }
}

/// A whole step with its own figure (`kubeadm-init`, `kubeadm-join`...).
pub fn step(op: &str, what: &str, ms: impl FnOnce(&Durations) -> u64) {
    if let Some(a) = active() {
        a.spend(op, what, ms(&a.durations));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A durations directory inside a throwaway cluster directory.
    fn lab_dir(tag: &str) -> PathBuf {
        let cluster =
            std::env::temp_dir().join(format!("k8sup-durations-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&cluster);
        let d = cluster.join(DIR);
        std::fs::create_dir_all(&d).expect("tmp");
        d
    }

    fn fast() -> Durations {
        let mut d = Durations::realistic();
        d.time_scale = 0.001;
        d
    }

    #[test]
    fn a_spent_duration_is_slept_and_logged_unscaled() {
        let dir = lab_dir("spend");
        let a = Active::new(dir.clone(), "node-1", fast());
        let t = std::time::Instant::now();
        a.service("containerd.service");
        // The sleep happened (a lower bound only, never a performance assertion).
        assert!(t.elapsed() >= Duration::from_millis(1));
        let cluster = dir.parent().expect("cluster dir");
        let log = super::super::applied(cluster).expect("log");
        assert_eq!(log.len(), 1);
        let entry = &log[0];
        assert_eq!(
            (
                entry.host.as_str(),
                entry.op.as_str(),
                entry.what.as_str(),
                entry.ms
            ),
            ("node-1", "service-restart", "containerd.service", 1000)
        );
        let _ = std::fs::remove_dir_all(dir.parent().expect("cluster dir"));
    }

    #[test]
    fn hosts_behind_one_mirror_share_its_bandwidth() {
        let dir = lab_dir("mirror");
        let mut d = Durations::realistic();
        d.images.unpack_ms_per_mib = 0.0;
        d.network.mirror_mbps = 100.0;
        d.network.host_mbps = 1000.0;
        let one = transfer_ms(
            d.image_bytes("registry.k8s.io/kube-proxy:v1.30.4") as f64,
            100.0,
        );
        let a = Active::new(dir.clone(), "node-1", d.clone());
        let b = Active::new(dir.clone(), "node-2", d);
        let t0 = now_ms() + 60_000;
        let first = a.transfer("registry.k8s.io/kube-proxy:v1.30.4", t0);
        let second = b.transfer("registry.k8s.io/kube-proxy:v1.30.4", t0);
        // The second host waits for the first: the link is shared, not per host.
        assert_eq!(first, t0 + one);
        assert_eq!(second, t0 + 2 * one);
        let _ = std::fs::remove_dir_all(dir.parent().expect("cluster dir"));
    }

    #[test]
    fn a_node_is_ready_after_its_pulls_and_the_cni_delay_decided_once() {
        let dir = lab_dir("ready");
        let mut d = Durations::realistic();
        d.images.unpack_ms_per_mib = 0.0;
        let a = Active::new(dir.clone(), "master", d.clone());
        let since = now_ms() + 10_000;
        let flannel = "docker.io/flannel/flannel:v0.25.6";
        let needs = vec![
            Need {
                image: "registry.k8s.io/pause:3.9".into(),
                from_ms: since - 5000,
                present_at_ms: Some(since - 6000),
            },
            Need {
                image: flannel.into(),
                from_ms: since,
                present_at_ms: None,
            },
        ];
        let r = a.node_ready("node-1", since, &needs);
        let pull = transfer_ms(d.image_bytes(flannel) as f64, d.network.mirror_mbps);
        assert_eq!(
            r.ready_at_ms,
            since + pull + d.steps.kubelet_ready_after_cni_ms
        );
        assert_eq!(r.pulled, vec![(flannel.to_string(), since + pull)]);
        // Asked again (by another host's kubectl), the same answer, nothing pulled twice.
        let again = a.node_ready("node-1", since + 99, &needs);
        assert_eq!((again.ready_at_ms, again.pulled.len()), (r.ready_at_ms, 0));
        // Prefetched: only the CNI delay remains.
        let prefetched: Vec<Need> = needs
            .iter()
            .map(|n| Need {
                present_at_ms: Some(since - 1),
                ..n.clone()
            })
            .collect();
        let r2 = a.node_ready("node-2", since, &prefetched);
        assert_eq!(r2.ready_at_ms, since + d.steps.kubelet_ready_after_cni_ms);
        let _ = std::fs::remove_dir_all(dir.parent().expect("cluster dir"));
    }
}
