//! The images a host's container runtime holds: `crictl pull`, `crictl images`, the pulls
//! of `kubeadm config images pull`, `kubeadm init` and a control-plane join, and those a
//! kubelet makes for its pods.
//!
//! Each host's store is one JSON file in the shared cluster directory
//! (`images/<host>.json`), because a kubelet's pulls are decided where Readiness is asked
//! (a master's kubectl), not on the node itself. Pulls take time only with durations on
//! ([`crate::durations::hooks`]); sizes are the durations profile's (the built-in one when
//! durations are off), as `crictl images` shows them.

use std::collections::BTreeMap;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::cluster::CLUSTER_DIR;
use super::Invocation;
use crate::durations::{hooks, Durations};

/// One image in a host's store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stored {
    pub bytes: u64,
    /// When it is (or, being pulled, will be) present, ms since epoch.
    pub at_ms: u64,
    /// Being pulled by a client (a `crictl pull`, or kubeadm's) that holds the pull's
    /// lock file ([`pull_lock`]) until it marks the image pulled: a pull whose client
    /// died first is cancelled, as the runtime cancels a CRI pull whose caller went
    /// away. `false` once pulled, and for the kubelet's pulls, which last as long as
    /// the node.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pulling: bool,
}

/// The lock file a client holds while it pulls `image` on `host`. A lock, not a pid: it
/// is released the moment the client dies, zombie or not, and a lab host's `/proc` is
/// not the kernel's.
fn pull_lock(cluster_dir: &Path, host: &str, image: &str) -> PathBuf {
    cluster_dir
        .join("images")
        .join(format!("{host}.{}.pull", &digest(image)[..16]))
}

/// `flock` on `file` with `operation`: whether it was taken.
fn flock(file: &std::fs::File, operation: libc::c_int) -> bool {
    // SAFETY: flock on a descriptor `file` owns and keeps open for the call.
    unsafe { libc::flock(file.as_raw_fd(), operation) == 0 }
}

/// Opens (or makes) the lock file at `path`, to `flock` it.
fn lock_file(path: &Path) -> Result<std::fs::File, String> {
    std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// Whether a client still pulls `image` on `host` (holds its lock).
fn still_pulling(cluster_dir: &Path, host: &str, image: &str) -> bool {
    match std::fs::File::open(pull_lock(cluster_dir, host, image)) {
        Ok(file) => !flock(&file, libc::LOCK_SH | libc::LOCK_NB),
        Err(_) => false,
    }
}

/// The store of the host `host` under a cluster directory.
fn store_file(cluster_dir: &Path, host: &str) -> PathBuf {
    cluster_dir.join("images").join(format!("{host}.json"))
}

fn host_name(inv: &Invocation) -> String {
    inv.profile()
        .map(|p| p.name)
        .unwrap_or_else(|_| inv.hostname())
}

/// The images `host` holds or is pulling (by reference, as pulled); a pull whose client
/// died is not among them.
pub fn held(cluster_dir: &Path, host: &str) -> BTreeMap<String, Stored> {
    let mut store = stored(cluster_dir, host);
    // A pull counts while its client holds its lock; once done, the client marks it
    // pulled. An entry still marked as pulling whose client is gone was cancelled, even
    // if its time has passed since.
    store.retain(|image, s| !s.pulling || still_pulling(cluster_dir, host, image));
    store
}

fn stored(cluster_dir: &Path, host: &str) -> BTreeMap<String, Stored> {
    std::fs::read_to_string(store_file(cluster_dir, host))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default()
}

/// Runs `f` on `host`'s store under its lock (pulls run in parallel) and writes it back.
fn update<T>(
    cluster_dir: &Path,
    host: &str,
    f: impl FnOnce(&mut BTreeMap<String, Stored>) -> T,
) -> Result<T, String> {
    let path = store_file(cluster_dir, host);
    let dir = path.parent().unwrap_or(cluster_dir);
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    // Released when `lock` is dropped.
    let lock = lock_file(&dir.join(format!("{host}.lock")))?;
    if !flock(&lock, libc::LOCK_EX) {
        return Err(format!(
            "{}: {}",
            dir.display(),
            std::io::Error::last_os_error()
        ));
    }
    let mut store = held(cluster_dir, host);
    let out = f(&mut store);
    let text = serde_json::to_string_pretty(&store).map_err(|e| e.to_string())?;
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text)
        .and_then(|_| std::fs::rename(&tmp, &path))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(out)
}

/// Adds images the kubelet pulled, or will have pulled by their time, to `host`'s store.
pub fn add(cluster_dir: &Path, host: &str, images: &[(String, u64)]) -> Result<(), String> {
    let sizes = sizes();
    update(cluster_dir, host, |store| {
        for (image, at_ms) in images {
            let bytes = sizes.image_bytes(image);
            let entry = store.entry(image.clone()).or_insert(Stored {
                bytes,
                at_ms: *at_ms,
                pulling: false,
            });
            entry.at_ms = entry.at_ms.min(*at_ms);
            entry.pulling = false;
        }
    })
}

/// The profile whose sizes `crictl images` shows.
fn sizes() -> Durations {
    hooks::active()
        .map(|a| a.durations.clone())
        .unwrap_or_else(Durations::realistic)
}

/// Pulls `image` on this host unless it holds it; with durations on, the pull takes its
/// time through the shared mirror. An image another pull is fetching (a kubelet's, or a
/// `crictl pull` running beside this one) is waited for, not fetched again: containerd
/// keeps one ingest per blob, and a second pull of content being written waits for the
/// first (its content store answers "unavailable" until the writer commits).
pub fn pull(inv: &Invocation, image: &str) -> Result<(), String> {
    let cluster_dir = inv.path(CLUSTER_DIR);
    let host = host_name(inv);
    let sizes = sizes();
    let lock_path = pull_lock(&cluster_dir, &host, image);
    let (at, lock) = update(&cluster_dir, &host, |store| {
        if let Some(s) = store.get(image) {
            return Ok((s.at_ms, None));
        }
        // Taken before the pull is announced, under the store's lock: no reader sees
        // the entry without its holder.
        let lock = lock_file(&lock_path)?;
        if !flock(&lock, libc::LOCK_EX | libc::LOCK_NB) {
            return Err(format!(
                "{}: held by a pull the store does not know",
                lock_path.display()
            ));
        }
        let at = match hooks::active() {
            Some(a) => a.start_pull(image),
            None => hooks::now_ms(),
        };
        store.insert(
            image.to_string(),
            Stored {
                bytes: sizes.image_bytes(image),
                at_ms: at,
                pulling: true,
            },
        );
        Ok((at, Some(lock)))
    })??;
    let now = hooks::now_ms();
    if at > now {
        std::thread::sleep(std::time::Duration::from_millis(at - now));
    }
    if lock.is_some() {
        // Pulled: present from now on, whether or not this client lives.
        update(&cluster_dir, &host, |store| {
            if let Some(s) = store.get_mut(image) {
                s.pulling = false;
            }
        })?;
    }
    Ok(())
}

/// A stable stand-in for an image's digest: 64 hex digits derived from its reference.
pub fn digest(image: &str) -> String {
    let mut out = String::with_capacity(64);
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for round in 0u8..4 {
        for b in image.bytes().chain([round]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        out.push_str(&format!("{h:016x}"));
    }
    out
}

/// Go's `units.HumanSizeWithPrecision(size, 3)`, as crictl prints sizes.
fn human_size(bytes: u64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB"];
    let mut v = bytes as f64;
    let mut i = 0;
    while v >= 1000.0 && i + 1 < units.len() {
        v /= 1000.0;
        i += 1;
    }
    let digits = if v >= 100.0 {
        0
    } else if v >= 10.0 {
        1
    } else {
        2
    };
    let text = format!("{v:.digits$}");
    let text = if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    };
    format!("{text}{}", units[i])
}

/// `crictl pull IMAGE`: the runtime's socket was checked by the caller.
pub fn crictl_pull(inv: &mut Invocation, words: &[String]) -> i32 {
    let Some(image) = words.get(1) else {
        inv.errln("NAME:\n   crictl pull - Pull an image from a registry\n\nUSAGE:\n   crictl pull command [command options] NAME[:TAG|@DIGEST]");
        inv.errln("time=\"\" level=fatal msg=\"Pull requires an argument: NAME[:TAG|@DIGEST]\"");
        return 1;
    };
    let image = normalize(image);
    if let Err(e) = pull(inv, &image) {
        inv.errln(&format!("E: pulling image: {e}"));
        return 1;
    }
    inv.outln(&format!(
        "Image is up to date for sha256:{}",
        digest(&image)
    ));
    0
}

/// `crictl inspecti IMAGE...`: the status of each as JSON, or crictl's fatal error for
/// the first one the runtime does not hold.
pub fn crictl_inspecti(inv: &mut Invocation, words: &[String]) -> i32 {
    if words.len() < 2 {
        inv.errln(&format!(
            "time=\"{}\" level=fatal msg=\"no image specified\"",
            super::cluster::rfc3339(super::cluster::now())
        ));
        return 1;
    }
    let now = hooks::now_ms();
    let store = held(&inv.path(CLUSTER_DIR), &host_name(inv));
    for image in &words[1..] {
        let name = normalize(image);
        let Some(s) = store.get(&name).filter(|s| s.at_ms <= now) else {
            inv.errln(&format!(
                "time=\"{}\" level=fatal msg=\"no such image \\\"{image}\\\" present\"",
                super::cluster::rfc3339(super::cluster::now())
            ));
            return 1;
        };
        let doc = serde_json::json!({
            "status": {
                "id": format!("sha256:{}", digest(&name)),
                "repoTags": [name],
                "repoDigests": [],
                "size": s.bytes.to_string(),
                "username": "",
                "spec": null,
                "pinned": false,
            },
            "info": {},
        });
        inv.outln(&serde_json::to_string_pretty(&doc).unwrap_or_default());
    }
    0
}

/// `crictl images [REPOSITORY]`: IMAGE, TAG, IMAGE ID, SIZE in tab-aligned columns.
pub fn crictl_images(inv: &mut Invocation, filter: Option<&str>) -> i32 {
    let now = hooks::now_ms();
    let store = held(&inv.path(CLUSTER_DIR), &host_name(inv));
    let mut rows = vec![[
        "IMAGE".to_string(),
        "TAG".into(),
        "IMAGE ID".into(),
        "SIZE".into(),
    ]];
    for (image, s) in store.iter().filter(|(_, s)| s.at_ms <= now) {
        let path = crate::durations::image_path(image);
        if filter.is_some_and(|f| {
            normalize(f) != *image && crate::durations::image_path(&normalize(f)) != path
        }) {
            continue;
        }
        let tag = image[path.len()..].trim_start_matches(':');
        rows.push([
            path.to_string(),
            if tag.is_empty() {
                "<none>".into()
            } else {
                tag.to_string()
            },
            digest(image)[..13].to_string(),
            human_size(s.bytes),
        ]);
    }
    // crictl's tabwriter: minimum width 20, padding 3.
    let widths: Vec<usize> = (0..4)
        .map(|c| {
            rows.iter()
                .map(|r| r[c].len() + 3)
                .max()
                .unwrap_or(0)
                .max(20)
        })
        .collect();
    for r in rows {
        let line: String = r
            .iter()
            .enumerate()
            .map(|(c, cell)| {
                if c == 3 {
                    cell.clone()
                } else {
                    format!("{cell:<w$}", w = widths[c])
                }
            })
            .collect();
        inv.outln(&line);
    }
    0
}

/// Docker Hub's short names as the runtime resolves them (`flannel/flannel:v1` is
/// `docker.io/flannel/flannel:v1`, `busybox` is `docker.io/library/busybox:latest`).
pub fn normalize(image: &str) -> String {
    let (name, has_tag) = {
        let path = crate::durations::image_path(image);
        (image, path.len() != image.len())
    };
    let first = name.split('/').next().unwrap_or("");
    let qualified = if name.contains('/')
        && (first.contains('.') || first.contains(':') || first == "localhost")
    {
        name.to_string()
    } else if name.contains('/') {
        format!("docker.io/{name}")
    } else {
        format!("docker.io/library/{name}")
    };
    if has_tag {
        qualified
    } else {
        format!("{qualified}:latest")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::distro::{Arch, Distro};
    use crate::emu::testing::FakeHost;

    #[test]
    fn a_pulled_image_is_listed_like_crictl_lists_it() {
        let h = FakeHost::new(Distro::Ubuntu2204, Arch::Amd64);
        let mut inv = Invocation::new(&h.root, "crictl", &[], 0);
        let words: Vec<String> = ["pull", "flannel/flannel:v0.25.6"]
            .map(String::from)
            .to_vec();
        assert_eq!(crictl_pull(&mut inv, &words), 0);
        assert_eq!(
            inv.stdout,
            format!(
                "Image is up to date for sha256:{}\n",
                digest("docker.io/flannel/flannel:v0.25.6")
            )
        );
        let mut inv = Invocation::new(&h.root, "crictl", &[], 0);
        crictl_images(&mut inv, None);
        let lines: Vec<&str> = inv.stdout.lines().collect();
        assert_eq!(lines.len(), 2, "{}", inv.stdout);
        // Columns as crictl's tabwriter pads them: the widest cell + 3, at least 20.
        let image = "docker.io/flannel/flannel";
        assert!(
            lines[0].starts_with(&format!(
                "{:<28}{:<20}{:<20}SIZE",
                "IMAGE", "TAG", "IMAGE ID"
            )),
            "{}",
            lines[0]
        );
        assert!(
            lines[1].starts_with(&format!("{image:<28}{:<20}", "v0.25.6")),
            "{}",
            lines[1]
        );
        assert!(lines[1].ends_with("31.5MB"), "{}", lines[1]);
    }

    #[test]
    fn inspecti_answers_for_held_images_and_fails_for_others() {
        let h = FakeHost::new(Distro::Ubuntu2204, Arch::Amd64);
        let mut inv = Invocation::new(&h.root, "crictl", &[], 0);
        let words = |w: &[&str]| w.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            crictl_inspecti(&mut inv, &words(&["inspecti", "registry.k8s.io/pause:3.9"])),
            1
        );
        assert!(
            inv.stderr.contains(
                "level=fatal msg=\"no such image \\\"registry.k8s.io/pause:3.9\\\" present\""
            ),
            "{}",
            inv.stderr
        );
        let mut inv = Invocation::new(&h.root, "crictl", &[], 0);
        assert_eq!(
            crictl_pull(&mut inv, &words(&["pull", "registry.k8s.io/pause:3.9"])),
            0
        );
        let mut inv = Invocation::new(&h.root, "crictl", &[], 0);
        assert_eq!(
            crictl_inspecti(&mut inv, &words(&["inspecti", "registry.k8s.io/pause:3.9"])),
            0
        );
        assert!(
            inv.stdout
                .contains("\"repoTags\": [\n      \"registry.k8s.io/pause:3.9\""),
            "{}",
            inv.stdout
        );
    }

    #[test]
    fn an_image_being_pulled_is_waited_for_and_a_cancelled_pull_is_not() {
        let h = FakeHost::new(Distro::Ubuntu2204, Arch::Amd64);
        let inv = Invocation::new(&h.root, "crictl", &[], 0);
        let cluster_dir = inv.path(CLUSTER_DIR);
        let host = host_name(&inv);
        let image = "registry.k8s.io/kube-proxy:v1.30.4";
        let in_flight = || {
            let at = hooks::now_ms() + 300;
            update(&cluster_dir, &host, |store| {
                store.insert(
                    image.to_string(),
                    Stored {
                        bytes: 1,
                        at_ms: at,
                        pulling: true,
                    },
                );
            })
            .expect("store");
            at
        };
        let lock_path = pull_lock(&cluster_dir, &host, image);
        // Another client is fetching it (this test holds its lock): not listed yet, and
        // a second pull waits for that one instead of fetching it again.
        std::fs::create_dir_all(lock_path.parent().expect("dir")).expect("images dir");
        let holder = std::fs::File::create(&lock_path).expect("lock file");
        assert!(flock(&holder, libc::LOCK_EX));
        let at = in_flight();
        let mut listing = Invocation::new(&h.root, "crictl", &[], 0);
        crictl_images(&mut listing, None);
        assert!(!listing.stdout.contains("kube-proxy"), "{}", listing.stdout);
        pull(&inv, image).expect("pull");
        assert!(hooks::now_ms() >= at);
        assert_eq!(held(&cluster_dir, &host)[image].at_ms, at);
        // The client died (its lock went with it): the pull was cancelled, so the image
        // is fetched anew.
        drop(holder);
        let cancelled = in_flight();
        assert!(!held(&cluster_dir, &host).contains_key(image));
        pull(&inv, image).expect("pull");
        let now = held(&cluster_dir, &host)[image].clone();
        assert!(now.at_ms < cancelled, "{now:?}");
        assert!(!now.pulling, "pulled: no longer in flight");
    }

    #[test]
    fn sizes_print_like_go_units() {
        assert_eq!(human_size(320_000), "320kB");
        assert_eq!(human_size(29_100_000), "29.1MB");
        assert_eq!(human_size(744), "744B");
        assert_eq!(human_size(1_500_000_000), "1.5GB");
    }

    #[test]
    fn short_names_resolve_to_docker_hub() {
        assert_eq!(normalize("busybox"), "docker.io/library/busybox:latest");
        assert_eq!(
            normalize("flannel/flannel:v1"),
            "docker.io/flannel/flannel:v1"
        );
        assert_eq!(
            normalize("registry.k8s.io/pause:3.9"),
            "registry.k8s.io/pause:3.9"
        );
        assert_eq!(normalize("localhost:5000/x"), "localhost:5000/x:latest");
    }
}
