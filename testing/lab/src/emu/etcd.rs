//! The stacked etcd of an emulated control plane, its static pods, `etcdctl` and `etcdutl`.
//!
//! **Static pods.** After every emulated command, the kubelet of a host "runs" the control
//! plane pods whose manifests are in `/etc/kubernetes/manifests` (as the real kubelet does
//! within its file-check period). Each start and stop is one JSON line in the cluster
//! directory's `static-pods.log` ([`PodEvent`]), so a test can see which masters were down
//! at the same time. An API server answers (`/livez` over `curl`, `kubectl` through the
//! endpoint) while it runs beside a running etcd member and etcd has quorum.
//!
//! **The store.** What the emulated API server keeps in etcd (nodes, objects, bootstrap
//! tokens, the certificate key, the kubelet configuration) is the [`Store`] part of the
//! cluster state. A snapshot is that store, written as a database file with etcd's sha256
//! appended (as `etcdctl snapshot save` receives it from the server); `snapshot status`
//! reports a crc32c hash, a revision, the number of keys and the size; `snapshot restore`
//! writes a member's data directory for a new cluster (`--initial-cluster`, token), and
//! when that member's etcd starts the cluster's store becomes the snapshot's: what the API
//! held at backup time is back. A member started on data of another cluster refuses, as
//! etcd does ("request cluster ID mismatch").
//!
//! Output and exit statuses follow etcd 3.5 (`etcdctl/ctlv3/command`, `etcdutl/etcdutl`):
//! `Snapshot saved at FILE`, the simple/json/table status printers, "is healthy:
//! successfully committed proposal", `Error: unhealthy cluster`, `Error: context deadline
//! exceeded` when the TLS client files are not given, the restore refusals (non-empty
//! data dir, local name missing from the initial cluster, sha256 mismatch or missing).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::cluster::{self, BootstrapToken, ClusterState, Node, Object};
use super::Invocation;

const ETCD_FILE: &str = "etcd.json";
/// The log of static pod starts and stops, in the cluster directory.
pub const POD_LOG: &str = "static-pods.log";
const MANIFESTS: &str = "/etc/kubernetes/manifests";
const CONTROL_PLANE_PODS: [&str; 4] = [
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
];
const VERSION: &str = "3.5.12";
/// What a database file starts with (bbolt's magic stands here in the real one).
const DB_MAGIC: &[u8] = b"k8sup-lab bbolt v1\n";
const PAGE: usize = 4096;
const WAL: &str = "member/wal/0000000000000000-0000000000000000.wal";
const DB: &str = "member/snap/db";

/// The etcd cluster as the hosts share it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct EtcdState {
    /// Which cluster the members' data belongs to (changes with a restore).
    pub cluster_id: String,
    /// host -> control-plane pods running there.
    pub running: BTreeMap<String, BTreeSet<String>>,
    /// host -> why its etcd does not start.
    #[serde(default)]
    pub failed: BTreeMap<String, String>,
    /// The hosts whose etcd member has started at least once (kubeadm adds a member and
    /// then starts it: until it runs, it does not count for quorum here).
    #[serde(default)]
    pub members: BTreeSet<String>,
    pub revision: u64,
    /// The sha256 of the store at `revision`.
    pub store_hash: String,
    /// The cluster's membership (host -> member), as etcd keeps it: a member is added
    /// when its etcd first starts and leaves only by `member remove` (or `kubeadm
    /// reset`, which removes it). Empty in clusters made before the lab tracked it.
    #[serde(default)]
    pub registry: BTreeMap<String, Member>,
    /// Hosts whose member was removed: their etcd refuses to start on its old data.
    #[serde(default)]
    pub removed: BTreeSet<String>,
}

/// One etcd member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub id: u64,
    pub name: String,
    pub peer_url: String,
    pub client_url: String,
}

/// A JSON file of the cluster directory; its default when absent or unreadable.
pub(super) fn read_json<T: serde::de::DeserializeOwned + Default>(dir: &Path, file: &str) -> T {
    std::fs::read_to_string(dir.join(file))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default()
}

/// Replaces a JSON file of the cluster directory at once (readers never see half of it).
pub(super) fn write_json<T: Serialize>(dir: &Path, file: &str, value: &T) -> Result<(), String> {
    let text = serde_json::to_string_pretty(value).map_err(|e| e.to_string())?;
    let tmp = dir.join(format!("{file}.tmp"));
    std::fs::write(&tmp, text)
        .and_then(|_| std::fs::rename(&tmp, dir.join(file)))
        .map_err(|e| format!("{}/{file}: {e}", cluster::CLUSTER_DIR))
}

impl EtcdState {
    pub fn read(dir: &Path) -> EtcdState {
        read_json(dir, ETCD_FILE)
    }

    fn write(&self, dir: &Path) -> Result<(), String> {
        write_json(dir, ETCD_FILE, self)
    }

    fn runs(&self, host: &str, pod: &str) -> bool {
        self.running.get(host).is_some_and(|p| p.contains(pod))
    }

    /// Whether etcd has quorum among `members`: more than half of them run.
    fn quorum(&self, members: usize) -> bool {
        let up = self
            .running
            .iter()
            .filter(|(h, p)| {
                p.contains("etcd") && (self.registry.is_empty() || self.registry.contains_key(*h))
            })
            .count();
        up > 0 && up > members / 2
    }

    /// How many members the cluster has: its registry, or (clusters from before it) those
    /// that started and are still control planes.
    fn member_count(&self, state: &ClusterState) -> usize {
        if !self.registry.is_empty() {
            return self.registry.len();
        }
        self.members
            .iter()
            .filter(|h| {
                state
                    .nodes
                    .values()
                    .any(|n| n.control_plane && &n.host == *h)
            })
            .count()
            .max(1)
    }

    /// Whether the API server of `host` answers.
    fn apiserver_healthy(&self, host: &str, members: usize) -> bool {
        self.runs(host, "kube-apiserver") && self.runs(host, "etcd") && self.quorum(members)
    }
}

/// One start or stop of a static pod.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodEvent {
    pub at_ms: u64,
    pub host: String,
    pub pod: String,
    /// `started`, `stopped` or `failed`.
    pub event: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

/// The static pod log of a cluster directory, oldest first.
pub fn pod_log(cluster_dir: &Path) -> Vec<PodEvent> {
    std::fs::read_to_string(cluster_dir.join(POD_LOG))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// What etcd holds for the emulated API server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Store {
    pub revision: u64,
    pub nodes: BTreeMap<String, Node>,
    pub objects: Vec<Object>,
    pub tokens: Vec<BootstrapToken>,
    pub certificate_key: Option<String>,
    pub certificate_key_expires: u64,
    pub kubelet_config: String,
}

impl Store {
    fn of(state: &ClusterState, revision: u64) -> Store {
        Store {
            revision,
            nodes: state.nodes.clone(),
            objects: state.objects.clone(),
            tokens: state.tokens.clone(),
            certificate_key: state.certificate_key.clone(),
            certificate_key_expires: state.certificate_key_expires,
            kubelet_config: state.kubelet_config.clone(),
        }
    }

    fn load_into(self, state: &mut ClusterState) {
        state.nodes = self.nodes;
        state.objects = self.objects;
        state.tokens = self.tokens;
        state.certificate_key = self.certificate_key;
        state.certificate_key_expires = self.certificate_key_expires;
        state.kubelet_config = self.kubelet_config;
    }

    fn keys(&self) -> usize {
        self.nodes.len()
            + self.objects.len()
            + self.tokens.len()
            + usize::from(self.certificate_key.is_some())
            + usize::from(!self.kubelet_config.is_empty())
    }
}

fn store_hash(state: &ClusterState) -> String {
    let text = serde_json::to_vec(&Store::of(state, 0)).unwrap_or_default();
    hex(&Sha256::digest(&text))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

// ---- static pods ----

fn manifest_pods(inv: &Invocation) -> BTreeSet<String> {
    CONTROL_PLANE_PODS
        .iter()
        .filter(|p| inv.path(&format!("{MANIFESTS}/{p}.yaml")).exists())
        .map(|p| p.to_string())
        .collect()
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The kubelet restarted this host's static pod `pod` after its manifest changed (as
/// `kubeadm upgrade` waits for it to): a stop and a start in the static pod log.
pub fn restarted(inv: &Invocation, pod: &str) {
    let host = inv.hostname();
    log_event(inv, &host, pod, "stopped", "manifest changed");
    log_event(inv, &host, pod, "started", "");
}

fn log_event(inv: &Invocation, host: &str, pod: &str, event: &str, message: &str) {
    use std::io::Write;
    let e = PodEvent {
        at_ms: now_ms(),
        host: host.to_string(),
        pod: pod.to_string(),
        event: event.to_string(),
        message: message.to_string(),
    };
    let Ok(mut line) = serde_json::to_string(&e) else {
        return;
    };
    line.push('\n');
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(inv.path(&format!("{}/{POD_LOG}", cluster::CLUSTER_DIR)))
    {
        let _ = f.write_all(line.as_bytes());
    }
}

/// After every emulated command: the kubelet starts and stops this host's control-plane
/// pods after its manifests, and etcd's revision follows the store.
pub fn sync(inv: &Invocation) {
    if !inv.path(cluster::CLUSTER_DIR).is_dir() {
        return;
    }
    let dir = inv.path(cluster::CLUSTER_DIR);
    let host = inv.hostname();
    let wanted = manifest_pods(inv);
    if wanted.is_empty() && {
        let etcd = EtcdState::read(&dir);
        !etcd.running.contains_key(&host) && !etcd.members.contains(&host)
    } {
        return;
    }
    let Ok(mut locked) = cluster::lock(inv) else {
        return;
    };
    let mut etcd = EtcdState::read(&dir);
    let before = etcd.running.get(&host).cloned().unwrap_or_default();
    let mut now_running = BTreeSet::new();
    let mut state_changed = false;
    for pod in wanted.iter().filter(|p| !pod_faulted(inv, p)) {
        if pod == "etcd" && !before.contains("etcd") {
            match start_etcd(inv, &mut locked.state, &mut etcd) {
                Ok(loaded) => {
                    state_changed |= loaded;
                    etcd.failed.remove(&host);
                    if !etcd.registry.contains_key(&host) {
                        register_member(inv, &mut etcd, &host);
                    }
                    etcd.members.insert(host.clone());
                }
                Err(why) => {
                    if etcd.failed.get(&host) != Some(&why) {
                        log_event(inv, &host, "etcd", "failed", &why);
                        super::kubelet::log(inv, &format!("etcd: {why}"));
                        etcd.failed.insert(host.clone(), why);
                    }
                    continue;
                }
            }
        }
        now_running.insert(pod.clone());
    }
    for pod in before.difference(&now_running) {
        log_event(inv, &host, pod, "stopped", "");
    }
    for pod in now_running.difference(&before) {
        log_event(inv, &host, pod, "started", "");
    }
    if !now_running.contains("etcd") && !inv.path(&format!("/var/lib/etcd/{WAL}")).exists() {
        // `kubeadm reset` removed this member (its data is gone): a later join is a new one.
        etcd.members.remove(&host);
    }
    if now_running.is_empty() {
        etcd.running.remove(&host);
    } else {
        etcd.running.insert(host.clone(), now_running);
    }
    let hash = store_hash(&locked.state);
    if hash != etcd.store_hash {
        etcd.revision += 1;
        etcd.store_hash = hash;
    }
    if state_changed {
        let _ = locked.save();
    }
    let _ = etcd.write(&dir);
    let members = etcd.member_count(&locked.state);
    super::apiserver::sync_listener(inv, etcd.apiserver_healthy(&host, members));
}

/// A lab fault holds a static pod down on this host (its container crashed or the
/// machine is off): `pod-down-<pod>` in the host's fault directory.
fn pod_faulted(inv: &Invocation, pod: &str) -> bool {
    inv.path(&format!("/{}/pod-down-{pod}", crate::profile::FAULTS_DIR))
        .exists()
}

/// A member's identity, kept in its data directory.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct MemberData {
    cluster_id: String,
    name: String,
    peer_url: String,
    /// Written by `snapshot restore` and not yet started.
    restored: bool,
}

fn flag_of(manifest: &str, flag: &str) -> Option<String> {
    manifest.lines().find_map(|l| {
        l.trim()
            .trim_start_matches("- ")
            .strip_prefix(&format!("--{flag}="))
            .map(|v| v.trim().to_string())
    })
}

/// Starts this host's etcd member; `Ok(true)` when it brought a restored store.
fn start_etcd(
    inv: &Invocation,
    state: &mut ClusterState,
    etcd: &mut EtcdState,
) -> Result<bool, String> {
    let manifest = inv
        .read(&format!("{MANIFESTS}/etcd.yaml"))
        .unwrap_or_default();
    let data_dir = flag_of(&manifest, "data-dir").unwrap_or_else(|| "/var/lib/etcd".into());
    let name = flag_of(&manifest, "name").unwrap_or_else(|| inv.hostname());
    let peer = flag_of(&manifest, "initial-advertise-peer-urls").unwrap_or_default();
    let marker = format!("{}/{WAL}", data_dir.trim_end_matches('/'));
    let host = inv.hostname();
    if etcd.removed.contains(&host) && inv.path(&marker).exists() {
        return Err("the member has been permanently removed from the cluster".into());
    }
    if !inv.path(&marker).exists() {
        // A new member's data: whatever was removed before, this is a new member.
        etcd.removed.remove(&host);
    }
    let member: Option<MemberData> = inv
        .read(&marker)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok());
    match member {
        None => {
            let joins = flag_of(&manifest, "initial-cluster-state").as_deref() == Some("existing");
            if etcd.cluster_id.is_empty() || !joins {
                // `--initial-cluster-state=new` (kubeadm init) on empty data: etcd
                // bootstraps a new cluster of this one member, with an ID of its own;
                // the members of any earlier cluster are not in it.
                etcd.cluster_id = cluster::random_hex(16);
                etcd.registry.clear();
                etcd.members.clear();
                etcd.removed.clear();
            }
            let m = MemberData {
                cluster_id: etcd.cluster_id.clone(),
                name,
                peer_url: peer,
                restored: false,
            };
            inv.write(&marker, &serde_json::to_string(&m).unwrap_or_default())
                .map_err(|e| format!("{marker}: {e}"))?;
            Ok(false)
        }
        Some(m) if m.cluster_id == etcd.cluster_id && !m.restored => Ok(false),
        Some(mut m) if m.restored => {
            if m.name != name || (!peer.is_empty() && m.peer_url != peer) {
                return Err(format!(
                    "--initial-cluster has {}={} but missing from --initial-advertise-peer-urls={peer} (\"{name}\" is this member)",
                    m.name, m.peer_url
                ));
            }
            let mut loaded = false;
            if m.cluster_id != etcd.cluster_id {
                // The first member of the restored cluster brings the snapshot's data.
                let db = std::fs::read(inv.path(&format!("{}/{DB}", data_dir.trim_end_matches('/'))))
                    .map_err(|e| format!("cannot open database at {data_dir}/{DB}: {e}"))?;
                let store = parse_db(&db)?;
                etcd.revision = store.revision;
                store.load_into(state);
                etcd.store_hash = store_hash(state);
                etcd.cluster_id = m.cluster_id.clone();
                loaded = true;
            }
            m.restored = false;
            inv.write(&marker, &serde_json::to_string(&m).unwrap_or_default())
                .map_err(|e| format!("{marker}: {e}"))?;
            Ok(loaded)
        }
        Some(m) => Err(format!(
            "rejected stream from remote peer: request cluster ID mismatch (this member's data belongs to cluster {}, the cluster is {})",
            &m.cluster_id[..m.cluster_id.len().min(16)],
            &etcd.cluster_id[..etcd.cluster_id.len().min(16)]
        )),
    }
}

/// Whether the cluster's API answers through its endpoint: true until the emulator has
/// seen a control plane (clusters made before it tracked static pods keep working).
pub fn api_available(inv: &Invocation, state: &ClusterState) -> bool {
    let etcd = EtcdState::read(&inv.path(cluster::CLUSTER_DIR));
    if etcd.running.is_empty() && etcd.cluster_id.is_empty() {
        return true;
    }
    let members = etcd.member_count(state);
    etcd.running
        .keys()
        .any(|h| etcd.apiserver_healthy(h, members))
}

/// `curl` of this host's API server health endpoints (`https://127.0.0.1:6443/livez`,
/// `/readyz`, `/healthz`): `None` when the URL is not one; else the body or curl's
/// connection error.
pub fn apiserver_health(inv: &Invocation, url: &str) -> Option<Result<String, String>> {
    let rest = url.strip_prefix("https://")?;
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let (host_part, port) = authority.rsplit_once(':')?;
    if port != "6443" || !matches!(path.split('?').next(), Some("livez" | "readyz" | "healthz")) {
        return None;
    }
    let address = inv.profile().map(|p| p.address).unwrap_or_default();
    if super::apiserver::dials_for_real(inv) {
        // A namespaced host's curl reaches whatever listens there (this host's API
        // server, or another master's by its address), for real.
        sync(inv);
        return Some(match super::apiserver::dial(authority) {
            super::apiserver::Dial::Answered => Ok("ok".into()),
            super::apiserver::Dial::Refused => Err(format!(
                "curl: (7) Failed to connect to {host_part} port 6443 after 0 ms: Couldn't connect to server"
            )),
            _ => Err("curl: (35) OpenSSL SSL_connect: SSL_ERROR_SYSCALL in connection to {host_part}:6443".replace("{host_part}", host_part)),
        });
    }
    if !matches!(host_part, "127.0.0.1" | "localhost") && host_part != address {
        return None;
    }
    sync(inv);
    let etcd = EtcdState::read(&inv.path(cluster::CLUSTER_DIR));
    let members = cluster::read(inv)
        .map(|s| etcd.member_count(&s))
        .unwrap_or(1);
    let host = inv.hostname();
    if etcd.apiserver_healthy(&host, members) {
        Some(Ok("ok".into()))
    } else if etcd.runs(&host, "kube-apiserver") {
        Some(Err(
            "curl: (22) The requested URL returned error: 500".into()
        ))
    } else {
        Some(Err(format!(
            "curl: (7) Failed to connect to {host_part} port 6443 after 0 ms: Couldn't connect to server"
        )))
    }
}

// ---- snapshots ----

/// A database file of `store`, padded to whole pages, with its sha256 appended.
fn snapshot_bytes(store: &Store) -> Vec<u8> {
    let mut db = DB_MAGIC.to_vec();
    db.extend(serde_json::to_vec(store).unwrap_or_default());
    // A bbolt file has two meta pages at least.
    let pages = db.len().div_ceil(PAGE).max(2);
    db.resize(pages * PAGE, 0);
    let sum = Sha256::digest(&db);
    db.extend_from_slice(&sum);
    db
}

/// The store of a database file (without an appended hash).
fn parse_db(db: &[u8]) -> Result<Store, String> {
    let body = db.strip_prefix(DB_MAGIC).ok_or("invalid database")?;
    let end = body.iter().position(|b| *b == 0).unwrap_or(body.len());
    serde_json::from_slice(&body[..end]).map_err(|_| "invalid database".to_string())
}

/// What `snapshot status` reports.
struct Status {
    hash: u32,
    revision: u64,
    total_key: usize,
    total_size: usize,
}

fn status_of(file_bytes: &[u8]) -> Result<Status, String> {
    let db = if file_bytes.len() % 512 == 32 {
        &file_bytes[..file_bytes.len() - 32]
    } else {
        file_bytes
    };
    if db.len() < 2 * PAGE {
        return Err("file size too small".into());
    }
    let store = parse_db(db)?;
    let end = DB_MAGIC.len()
        + db[DB_MAGIC.len()..]
            .iter()
            .position(|b| *b == 0)
            .unwrap_or(db.len() - DB_MAGIC.len());
    Ok(Status {
        hash: crc32c(&db[DB_MAGIC.len()..end]),
        revision: store.revision,
        total_key: store.keys(),
        total_size: db.len(),
    })
}

fn crc32c(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for b in data {
        crc ^= u32::from(*b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// go-humanize's `Bytes`: SI units, one decimal below 10.
fn human_bytes(n: usize) -> String {
    let units = ["B", "kB", "MB", "GB", "TB"];
    if n < 10 {
        return format!("{n} B");
    }
    let e = ((n as f64).ln() / 1000f64.ln()).floor() as usize;
    let e = e.min(units.len() - 1);
    let val = n as f64 / 1000f64.powi(e as i32);
    if val < 10.0 {
        format!("{:.1} {}", val, units[e])
    } else {
        format!("{:.0} {}", val, units[e])
    }
}

fn print_status(inv: &mut Invocation, s: &Status, format: &str) -> Result<(), String> {
    let size = human_bytes(s.total_size);
    match format {
        "simple" => inv.outln(&format!(
            "{:x}, {}, {}, {size}, {VERSION}",
            s.hash, s.revision, s.total_key
        )),
        "json" => inv.outln(
            &json!({"hash": s.hash, "revision": s.revision, "totalKey": s.total_key,
                    "totalSize": s.total_size, "version": VERSION})
            .to_string(),
        ),
        "fields" => inv.outln(&format!(
            "\"Hash\" : {}\n\"Revision\" : {}\n\"Keys\" : {}\n\"Size\" : {}\n\"Version\" : {VERSION}",
            s.hash, s.revision, s.total_key, s.total_size
        )),
        "table" => {
            let cells = [
                format!("{:x}", s.hash),
                s.revision.to_string(),
                s.total_key.to_string(),
                size,
                VERSION.to_string(),
            ];
            let heads = ["HASH", "REVISION", "TOTAL KEYS", "TOTAL SIZE", "VERSION"];
            let widths: Vec<usize> = heads
                .iter()
                .zip(&cells)
                .map(|(h, c)| h.len().max(c.len()) + 2)
                .collect();
            let line: String = widths.iter().map(|w| format!("+{}", "-".repeat(*w))).collect::<String>() + "+";
            // Headers centred, values right-aligned, as etcdctl's tablewriter prints them.
            let row = |cols: Vec<String>, centre: bool| -> String {
                cols.iter()
                    .zip(&widths)
                    .map(|(c, w)| {
                        if centre {
                            format!("|{:^w$}", c, w = *w)
                        } else {
                            format!("|{:>w$} ", c, w = *w - 1)
                        }
                    })
                    .collect::<String>()
                    + "|"
            };
            inv.outln(&line);
            inv.outln(&row(heads.iter().map(|s| s.to_string()).collect(), true));
            inv.outln(&line);
            inv.outln(&row(cells.to_vec(), false));
            inv.outln(&line);
        }
        other => return Err(format!("unknown output format {other:?}")),
    }
    Ok(())
}

// ---- command lines ----

/// Flags as cobra parses them: `--name=value`, `--name value`, `-w value`; the rest.
struct Args {
    flags: BTreeMap<String, String>,
    bools: BTreeSet<String>,
    words: Vec<String>,
}

const BOOL_FLAGS: &[&str] = &[
    "skip-hash-check",
    "cluster",
    "insecure-skip-tls-verify",
    "insecure-transport",
    "hex",
    "debug",
    "mark-compacted",
    "bump-revision",
];

fn parse(args: &[String]) -> Args {
    let mut a = Args {
        flags: BTreeMap::new(),
        bools: BTreeSet::new(),
        words: Vec::new(),
    };
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        if let Some(name) = arg
            .strip_prefix("--")
            .or_else(|| arg.strip_prefix('-').filter(|_| arg.len() == 2))
        {
            let name = if name == "w" { "write-out" } else { name };
            if let Some((k, v)) = name.split_once('=') {
                a.flags.insert(k.to_string(), v.to_string());
            } else if BOOL_FLAGS.contains(&name) {
                a.bools.insert(name.to_string());
            } else {
                i += 1;
                a.flags
                    .insert(name.to_string(), args.get(i).cloned().unwrap_or_default());
            }
        } else {
            a.words.push(arg.clone());
        }
        i += 1;
    }
    a
}

impl Args {
    /// A flag, or etcdctl's `ETCDCTL_<NAME>` environment variable.
    fn get(&self, name: &str) -> Option<String> {
        self.flags.get(name).cloned().or_else(|| {
            std::env::var(format!("ETCDCTL_{}", name.to_uppercase().replace('-', "_"))).ok()
        })
    }
    fn format(&self) -> String {
        self.flags
            .get("write-out")
            .cloned()
            .unwrap_or_else(|| "simple".into())
    }
}

fn exit_error(inv: &mut Invocation, message: &str) -> i32 {
    inv.errln(&format!("Error: {message}"));
    1
}

fn deadline(inv: &mut Invocation, endpoint: &str, why: &str) -> i32 {
    inv.errln(&format!(
        "{{\"level\":\"warn\",\"ts\":\"{}\",\"logger\":\"etcd-client\",\"caller\":\"v3@v3.5.12/retry_interceptor.go:62\",\"msg\":\"retrying of unary invoker failed\",\"target\":\"etcd-endpoints://0xc0003a8000/{endpoint}\",\"attempt\":0,\"error\":\"rpc error: code = DeadlineExceeded desc = latest balancer error: last connection error: connection error: desc = \\\"{why}\\\"\"}}",
        cluster::rfc3339(cluster::now())
    ));
    exit_error(inv, "context deadline exceeded")
}

/// The host an endpoint reaches: this one for loopback, else the node with that address.
fn endpoint_host(inv: &Invocation, state: &ClusterState, endpoint: &str) -> Option<String> {
    let rest = endpoint
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    let (addr, port) = rest.rsplit_once(':')?;
    if port.trim_end_matches('/') != "2379" {
        return None;
    }
    if matches!(addr, "127.0.0.1" | "localhost")
        || inv.profile().map(|p| p.address).ok().as_deref() == Some(addr)
    {
        return Some(inv.hostname());
    }
    state
        .nodes
        .values()
        .find(|n| n.address == addr)
        .map(|n| n.host.clone())
}

/// Checks the client's TLS files for an https endpoint: `Err(status)` after printing.
fn client_tls(inv: &mut Invocation, a: &Args, endpoint: &str) -> Result<(), i32> {
    if !endpoint.starts_with("https://") {
        return Err(deadline(inv, endpoint, "error reading server preface: EOF"));
    }
    let files = [a.get("cacert"), a.get("cert"), a.get("key")];
    if files.iter().any(Option::is_none) {
        return Err(deadline(
            inv,
            endpoint,
            "transport: authentication handshake failed: remote error: tls: bad certificate",
        ));
    }
    for f in files.into_iter().flatten() {
        if !inv.visible(&f).is_some_and(|p| p.exists()) {
            return Err(exit_error(
                inv,
                &format!("open {f}: no such file or directory"),
            ));
        }
    }
    Ok(())
}

/// `etcdctl` (API v3).
pub fn run_etcdctl(inv: &mut Invocation) -> i32 {
    let a = parse(&inv.args.clone());
    let words: Vec<&str> = a.words.iter().map(String::as_str).collect();
    let endpoints: Vec<String> = a
        .get("endpoints")
        .unwrap_or_else(|| "127.0.0.1:2379".into())
        .split(',')
        .map(str::to_string)
        .collect();
    match words.as_slice() {
        ["version"] => {
            inv.outln(&format!("etcdctl version: {VERSION}\nAPI version: 3.5"));
            0
        }
        ["snapshot", "status", file] => {
            inv.errln("Deprecated: Use `etcdutl snapshot status` instead.\n");
            snapshot_status(inv, file, &a.format())
        }
        ["snapshot", "restore", file] => {
            inv.errln("Deprecated: Use `etcdutl snapshot restore` instead.\n");
            snapshot_restore(inv, file, &a)
        }
        ["snapshot", "save", file] => {
            if endpoints.len() != 1 {
                return exit_error(
                    inv,
                    &format!(
                        "snapshot must be requested to one selected node, not multiple [{}]",
                        endpoints.join(" ")
                    ),
                );
            }
            snapshot_save(inv, &endpoints[0], file, &a)
        }
        ["endpoint", "health"] => endpoint_health(inv, &endpoints, &a),
        ["member", "list"] => member_list(inv, &endpoints[0], &a),
        ["member", "remove", id] => member_remove(inv, &endpoints[0], id, &a),
        ["member", "remove"] => exit_error(inv, "member ID is not provided"),
        ["endpoint", "status"] => endpoint_status(inv, &endpoints, &a),
        [] => {
            inv.outln("NAME:\n\tetcdctl - A simple command line client for etcd3.\n\nUSAGE:\n\tetcdctl [flags]\n\nVERSION:\n\t3.5.12\n\nAPI VERSION:\n\t3.5\n\nCOMMANDS:\n\tendpoint health\tChecks the healthiness of endpoints specified in `--endpoints` flag\n\tmember list\tLists all members in the cluster\n\tsnapshot save\tStores an etcd node backend snapshot to a given file\n\tversion\t\tPrints the version of etcdctl");
            0
        }
        other => exit_error(
            inv,
            &format!("unknown command \"{}\" for \"etcdctl\"", other.join(" ")),
        ),
    }
}

/// `etcdutl`.
pub fn run_etcdutl(inv: &mut Invocation) -> i32 {
    let a = parse(&inv.args.clone());
    let words: Vec<&str> = a.words.iter().map(String::as_str).collect();
    match words.as_slice() {
        ["version"] => {
            inv.outln(&format!("etcdutl version: {VERSION}\nAPI version: 3.5"));
            0
        }
        ["snapshot", "status", file] => snapshot_status(inv, file, &a.format()),
        ["snapshot", "restore", file] => snapshot_restore(inv, file, &a),
        ["snapshot", sub] if *sub == "status" || *sub == "restore" => {
            exit_error(inv, &format!("snapshot {sub} expects one argument"))
        }
        other => exit_error(
            inv,
            &format!("unknown command \"{}\" for \"etcdutl\"", other.join(" ")),
        ),
    }
}

/// The member an endpoint reaches, when it serves: `Err(status)` after printing.
fn reach(
    inv: &mut Invocation,
    endpoint: &str,
    a: &Args,
) -> Result<(ClusterState, EtcdState, String), i32> {
    client_tls(inv, a, endpoint)?;
    let state = cluster::read(inv).map_err(|e| exit_error(inv, &e))?;
    let etcd = EtcdState::read(&inv.path(cluster::CLUSTER_DIR));
    match endpoint_host(inv, &state, endpoint) {
        Some(h) if etcd.runs(&h, "etcd") => Ok((state, etcd, h)),
        _ => Err(deadline(
            inv,
            endpoint,
            &format!(
                "transport: Error while dialing: dial tcp {}: connect: connection refused",
                endpoint.trim_start_matches("https://")
            ),
        )),
    }
}

fn snapshot_save(inv: &mut Invocation, endpoint: &str, file: &str, a: &Args) -> i32 {
    let (state, etcd, _) = match reach(inv, endpoint, a) {
        Ok(x) => x,
        Err(status) => return status,
    };
    let ts = cluster::rfc3339(cluster::now());
    let part = format!("{file}.part");
    inv.errln(&format!("{{\"level\":\"info\",\"ts\":\"{ts}\",\"caller\":\"snapshot/v3_snapshot.go:65\",\"msg\":\"created temporary db file\",\"path\":\"{part}\"}}"));
    let bytes = snapshot_bytes(&Store::of(&state, etcd.revision));
    let (Some(path), Some(final_path)) = (inv.visible(&part), inv.visible(file)) else {
        // In a container, outside its mounts: no such directory in its image.
        return exit_error(
            inv,
            &format!("could not open {part} (open {part}: no such file or directory)"),
        );
    };
    if let Err(e) = std::fs::write(&path, &bytes).and_then(|_| std::fs::rename(&path, &final_path))
    {
        return exit_error(inv, &format!("could not open {part} ({e})"));
    }
    inv.errln(&format!("{{\"level\":\"info\",\"ts\":\"{ts}\",\"caller\":\"snapshot/v3_snapshot.go:91\",\"msg\":\"fetched snapshot\",\"endpoint\":\"{endpoint}\",\"size\":\"{}\",\"took\":\"now\"}}", human_bytes(bytes.len())));
    inv.errln(&format!("{{\"level\":\"info\",\"ts\":\"{ts}\",\"caller\":\"snapshot/v3_snapshot.go:100\",\"msg\":\"saved\",\"path\":\"{file}\"}}"));
    inv.outln(&format!("Snapshot saved at {file}"));
    0
}

fn read_file(inv: &Invocation, file: &str) -> std::io::Result<Vec<u8>> {
    match inv.visible(file) {
        Some(path) => std::fs::read(path),
        None => Err(std::io::ErrorKind::NotFound.into()),
    }
}

fn snapshot_status(inv: &mut Invocation, file: &str, format: &str) -> i32 {
    let bytes = match read_file(inv, file) {
        Ok(b) => b,
        Err(_) => return exit_error(inv, &format!("stat {file}: no such file or directory")),
    };
    match status_of(&bytes).and_then(|s| print_status(inv, &s, format)) {
        Ok(()) => 0,
        Err(e) => exit_error(inv, &e),
    }
}

fn snapshot_restore(inv: &mut Invocation, file: &str, a: &Args) -> i32 {
    let name = a
        .flags
        .get("name")
        .cloned()
        .unwrap_or_else(|| "default".into());
    let data_dir = a
        .flags
        .get("data-dir")
        .cloned()
        .unwrap_or_else(|| format!("{name}.etcd"));
    let peer = a
        .flags
        .get("initial-advertise-peer-urls")
        .cloned()
        .unwrap_or_else(|| "http://localhost:2380".into());
    let initial = a
        .flags
        .get("initial-cluster")
        .cloned()
        .unwrap_or_else(|| format!("default={peer}"));
    let token = a
        .flags
        .get("initial-cluster-token")
        .cloned()
        .unwrap_or_else(|| "etcd-cluster".into());
    let members: Vec<(&str, &str)> = initial
        .split(',')
        .filter_map(|m| m.split_once('='))
        .collect();
    if !members.iter().any(|(n, u)| *n == name && *u == peer) {
        return exit_error(
            inv,
            &format!("couldn't find local name \"{name}\" in the initial cluster configuration"),
        );
    }
    let bytes = match read_file(inv, file) {
        Ok(b) => b,
        Err(_) => return exit_error(inv, &format!("stat {file}: no such file or directory")),
    };
    let has_hash = bytes.len() % 512 == 32;
    let db = if has_hash {
        &bytes[..bytes.len() - 32]
    } else {
        &bytes[..]
    };
    if !a.bools.contains("skip-hash-check") {
        if !has_hash {
            return exit_error(inv, "snapshot missing hash but --skip-hash-check=false");
        }
        let sum = Sha256::digest(db);
        if sum.as_slice() != &bytes[bytes.len() - 32..] {
            return exit_error(
                inv,
                &format!(
                    "expected sha256 {:?}, got {:?}",
                    sum.as_slice(),
                    &bytes[bytes.len() - 32..]
                ),
            );
        }
    }
    if parse_db(db).is_err() {
        return exit_error(inv, "invalid database");
    }
    // In a container, a data dir outside its mounts is made in the container's own
    // filesystem: it succeeds, and the host never sees it.
    let scratch = std::env::temp_dir().join(format!("k8sup-lab-container-{}", std::process::id()));
    let dir = inv.visible(&data_dir).unwrap_or_else(|| scratch.clone());
    if std::fs::read_dir(&dir).is_ok_and(|mut d| d.next().is_some()) {
        return exit_error(
            inv,
            &format!("data-dir \"{data_dir}\" not empty or could not be read"),
        );
    }
    let ts = cluster::rfc3339(cluster::now());
    inv.errln(&format!("{{\"level\":\"info\",\"ts\":\"{ts}\",\"caller\":\"snapshot/v3_snapshot.go:248\",\"msg\":\"restoring snapshot\",\"path\":\"{file}\",\"wal-dir\":\"{data_dir}/member/wal\",\"data-dir\":\"{data_dir}\",\"snap-dir\":\"{data_dir}/member/snap\"}}"));
    let mut id = Sha256::new();
    id.update(token.as_bytes());
    id.update(initial.as_bytes());
    id.update(db);
    let member = MemberData {
        cluster_id: hex(&id.finalize())[..16].to_string(),
        name: name.clone(),
        peer_url: peer,
        restored: true,
    };
    let written = std::fs::create_dir_all(dir.join("member/snap"))
        .and_then(|_| std::fs::create_dir_all(dir.join("member/wal")))
        .and_then(|_| std::fs::write(dir.join(DB), db))
        .and_then(|_| {
            std::fs::write(
                dir.join(WAL),
                serde_json::to_string(&member).unwrap_or_default(),
            )
        });
    let _ = std::fs::remove_dir_all(&scratch);
    if let Err(e) = written {
        return exit_error(inv, &format!("{data_dir}: {e}"));
    }
    inv.errln(&format!("{{\"level\":\"info\",\"ts\":\"{ts}\",\"caller\":\"snapshot/v3_snapshot.go:269\",\"msg\":\"restored snapshot\",\"path\":\"{file}\",\"wal-dir\":\"{data_dir}/member/wal\",\"data-dir\":\"{data_dir}\",\"snap-dir\":\"{data_dir}/member/snap\"}}"));
    0
}

/// A member's ID as etcd computes it (`membership.computeMemberID`): the first 8 bytes of
/// the sha1 of its peer URLs, the cluster token (kubeadm sets none: "etcd-cluster") and,
/// for a member added to a running cluster, the time it was added.
fn member_id(peer_url: &str, added_at: Option<u64>) -> u64 {
    use sha1::Digest as _;
    let mut b = peer_url.as_bytes().to_vec();
    b.extend_from_slice(b"etcd-cluster");
    if let Some(t) = added_at {
        b.extend_from_slice(t.to_string().as_bytes());
    }
    let hash = sha1::Sha1::digest(&b);
    let mut first = [0u8; 8];
    first.copy_from_slice(&hash[..8]);
    u64::from_be_bytes(first)
}

/// Adds this host's member to the registry when its etcd first starts (the first member
/// of a cluster is an initial member; the others were added to a running cluster).
fn register_member(inv: &Invocation, etcd: &mut EtcdState, host: &str) {
    let manifest = inv
        .read(&format!("{MANIFESTS}/etcd.yaml"))
        .unwrap_or_default();
    let address = inv.profile().map(|p| p.address).unwrap_or_default();
    let peer_url = flag_of(&manifest, "initial-advertise-peer-urls")
        .unwrap_or_else(|| format!("https://{address}:2380"));
    let client_url = flag_of(&manifest, "advertise-client-urls")
        .unwrap_or_else(|| format!("https://{address}:2379"));
    let added_at = (!etcd.registry.is_empty()).then(|| now_ms() / 1000);
    let name = flag_of(&manifest, "name").unwrap_or_else(|| host.to_string());
    etcd.registry.insert(
        host.to_string(),
        Member {
            id: member_id(&peer_url, added_at),
            name,
            peer_url,
            client_url,
        },
    );
}

/// The cluster ID as a number (the lab keeps it as hex text).
fn cluster_id(etcd: &EtcdState) -> u64 {
    u64::from_str_radix(&etcd.cluster_id[..etcd.cluster_id.len().min(16)], 16).unwrap_or(0)
}

/// The members as etcd lists them (sorted by ID), with the host of each.
fn members_by_id(etcd: &EtcdState) -> Vec<(&String, &Member)> {
    let mut v: Vec<(&String, &Member)> = etcd.registry.iter().collect();
    v.sort_by_key(|(_, m)| m.id);
    v
}

/// A table as etcdctl's tablewriter renders it: upper-case centred headers, cells
/// right-aligned, one space of padding.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let widths: Vec<usize> = header
        .iter()
        .enumerate()
        .map(|(i, h)| {
            rows.iter()
                .map(|r| r[i].chars().count())
                .chain([h.len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = format!(
        "+{}+",
        widths
            .iter()
            .map(|w| "-".repeat(w + 2))
            .collect::<Vec<_>>()
            .join("+")
    );
    let mut out = format!("{line}\n|");
    for (h, w) in header.iter().zip(&widths) {
        let h = h.to_uppercase();
        let left = (w - h.len()) / 2;
        out.push_str(&format!(
            " {}{h}{} |",
            " ".repeat(left),
            " ".repeat(w - h.len() - left)
        ));
    }
    out.push_str(&format!("\n{line}\n"));
    for r in rows {
        out.push('|');
        for (c, w) in r.iter().zip(&widths) {
            out.push_str(&format!(" {c:>w$} |"));
        }
        out.push('\n');
    }
    out.push_str(&line);
    out
}

fn member_list(inv: &mut Invocation, endpoint: &str, a: &Args) -> i32 {
    let (_, etcd, host) = match reach(inv, endpoint, a) {
        Ok(x) => x,
        Err(status) => return status,
    };
    let members = members_by_id(&etcd);
    let rows: Vec<Vec<String>> = members
        .iter()
        .map(|(_, m)| {
            vec![
                format!("{:x}", m.id),
                "started".to_string(),
                m.name.clone(),
                m.peer_url.clone(),
                m.client_url.clone(),
                "false".to_string(),
            ]
        })
        .collect();
    match a.format().as_str() {
        "json" => {
            let list: Vec<Value> = members
                .iter()
                .map(|(_, m)| {
                    json!({"ID": m.id, "name": m.name, "peerURLs": [m.peer_url],
                           "clientURLs": [m.client_url]})
                })
                .collect();
            let member_id = etcd.registry.get(&host).map_or(0, |m| m.id);
            inv.outln(
                &json!({"header": {"cluster_id": cluster_id(&etcd), "member_id": member_id,
                                   "raft_term": 2 + etcd.registry.len() as u64},
                        "members": list})
                .to_string(),
            );
        }
        "table" => inv.outln(&table(
            &[
                "ID",
                "Status",
                "Name",
                "Peer Addrs",
                "Client Addrs",
                "Is Learner",
            ],
            &rows,
        )),
        _ => {
            for r in rows {
                inv.outln(&r.join(", "));
            }
        }
    }
    0
}

/// `member remove ID`: what etcd's server allows (`mayRemoveMember` with the default
/// strict reconfiguration check): the remaining started members must be a quorum of the
/// remaining membership, and removing a live member must not break the active quorum; a
/// member that is down may go. The request itself needs quorum.
fn member_remove(inv: &mut Invocation, endpoint: &str, id: &str, a: &Args) -> i32 {
    let Ok(id) = u64::from_str_radix(id, 16) else {
        return exit_error(
            inv,
            &format!(
                "bad member ID arg (strconv.ParseUint: parsing {id:?}: invalid syntax), expecting ID in Hex"
            ),
        );
    };
    let (state, _, _) = match reach(inv, endpoint, a) {
        Ok(x) => x,
        Err(status) => return status,
    };
    let dir = inv.path(cluster::CLUSTER_DIR);
    let Ok(_locked) = cluster::lock(inv) else {
        return exit_error(inv, "context deadline exceeded");
    };
    let mut etcd = EtcdState::read(&dir);
    if !etcd.quorum(etcd.member_count(&state)) {
        return deadline(inv, endpoint, "context deadline exceeded");
    }
    let Some(host) = etcd
        .registry
        .iter()
        .find(|(_, m)| m.id == id)
        .map(|(h, _)| h.clone())
    else {
        return exit_error(inv, "etcdserver: member not found");
    };
    if let Err(why) = may_remove(&etcd, &host) {
        return exit_error(inv, why);
    }
    remove_member(inv, &mut etcd, &host);
    if let Err(e) = etcd.write(&dir) {
        return exit_error(inv, &e);
    }
    inv.outln(&format!(
        "Member {id:16x} removed from cluster {:16x}",
        cluster_id(&etcd)
    ));
    0
}

/// etcd's `mayRemoveMember` for `host`'s member.
fn may_remove(etcd: &EtcdState, host: &str) -> Result<(), &'static str> {
    let live = |h: &String| etcd.runs(h, "etcd");
    // IsReadyToRemoveVotingMember: "started" = has ever published its name.
    let others: Vec<&String> = etcd.registry.keys().filter(|h| *h != host).collect();
    let started = others.iter().filter(|h| etcd.members.contains(**h)).count();
    if started < others.len() / 2 + 1 {
        return Err("etcdserver: re-configuration failed due to not enough started members");
    }
    if !live(&host.to_string()) {
        // A member that is down is not part of the active quorum.
        return Ok(());
    }
    let active = etcd.registry.keys().filter(|h| live(h)).count();
    let all = etcd.registry.len();
    if active.saturating_sub(1) < 1 + (all - 1) / 2 {
        return Err("etcdserver: unhealthy cluster");
    }
    Ok(())
}

/// Takes `host`'s member out of the cluster; its etcd, if it runs, stops ("the member has
/// been permanently removed from the cluster").
fn remove_member(inv: &Invocation, etcd: &mut EtcdState, host: &str) {
    etcd.registry.remove(host);
    etcd.removed.insert(host.to_string());
    let stopped = etcd
        .running
        .get_mut(host)
        .is_some_and(|pods| pods.remove("etcd"));
    if stopped {
        log_event(
            inv,
            host,
            "etcd",
            "failed",
            "the member has been permanently removed from the cluster",
        );
    }
}

/// `kubeadm reset` on a control plane: removes this host's member as kubeadm's
/// `remove-etcd-member` phase does; the error text when etcd refuses.
pub fn reset_remove_member(inv: &Invocation) -> Result<(), String> {
    let dir = inv.path(cluster::CLUSTER_DIR);
    if !dir.is_dir() {
        return Ok(());
    }
    let host = inv.hostname();
    let locked = cluster::lock(inv)?;
    let mut etcd = EtcdState::read(&dir);
    if !etcd.registry.contains_key(&host) {
        return Ok(());
    }
    if !etcd.quorum(etcd.member_count(&locked.state)) {
        return Err("context deadline exceeded".into());
    }
    may_remove(&etcd, &host).map_err(String::from)?;
    remove_member(inv, &mut etcd, &host);
    etcd.write(&dir)?;
    drop(locked);
    Ok(())
}

/// `endpoint status`: per endpoint its member, version, size, leadership and raft
/// figures (the leader: the lowest live member ID).
fn endpoint_status(inv: &mut Invocation, endpoints: &[String], a: &Args) -> i32 {
    let mut rows = Vec::new();
    let mut json_rows = Vec::new();
    for ep in endpoints {
        let (state, etcd, host) = match reach(inv, ep, a) {
            Ok(x) => x,
            Err(status) => return status,
        };
        let Some(me) = etcd.registry.get(&host) else {
            return deadline(inv, ep, "etcdserver: member not found");
        };
        let leader = members_by_id(&etcd)
            .into_iter()
            .find(|(h, _)| etcd.runs(h, "etcd"))
            .map_or(0, |(_, m)| m.id);
        let size = snapshot_bytes(&Store::of(&state, etcd.revision)).len();
        let term = 2 + etcd.registry.len() as u64;
        let index = etcd.revision + 3;
        rows.push(vec![
            ep.clone(),
            format!("{:x}", me.id),
            VERSION.to_string(),
            human_bytes(size),
            (leader == me.id).to_string(),
            "false".to_string(),
            term.to_string(),
            index.to_string(),
            index.to_string(),
            String::new(),
        ]);
        json_rows.push(
            json!({"Endpoint": ep, "Status": {"header": {"cluster_id": cluster_id(&etcd),
            "member_id": me.id, "revision": etcd.revision, "raft_term": term},
            "version": VERSION, "dbSize": size, "leader": leader, "raftIndex": index,
            "raftTerm": term, "raftAppliedIndex": index, "dbSizeInUse": size}}),
        );
    }
    match a.format().as_str() {
        "json" => inv.outln(&Value::Array(json_rows).to_string()),
        "table" => inv.outln(&table(
            &[
                "Endpoint",
                "ID",
                "Version",
                "DB Size",
                "Is Leader",
                "Is Learner",
                "Raft Term",
                "Raft Index",
                "Raft Applied Index",
                "Errors",
            ],
            &rows,
        )),
        _ => {
            for r in rows {
                inv.outln(&r.join(", "));
            }
        }
    }
    0
}

fn endpoint_health(inv: &mut Invocation, endpoints: &[String], a: &Args) -> i32 {
    let mut unhealthy = false;
    for ep in endpoints {
        if let Err(status) = client_tls(inv, a, ep) {
            return status;
        }
        let state = cluster::read(inv).unwrap_or_default();
        let etcd = EtcdState::read(&inv.path(cluster::CLUSTER_DIR));
        let members = etcd.member_count(&state);
        let up = endpoint_host(inv, &state, ep).is_some_and(|h| etcd.runs(&h, "etcd"));
        if up && etcd.quorum(members) {
            inv.outln(&format!(
                "{ep} is healthy: successfully committed proposal: took = 9.846ms"
            ));
        } else {
            unhealthy = true;
            inv.errln(&format!(
                "{ep} is unhealthy: failed to commit proposal: context deadline exceeded"
            ));
        }
    }
    if unhealthy {
        exit_error(inv, "unhealthy cluster")
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> Store {
        Store {
            revision: 42,
            nodes: BTreeMap::new(),
            objects: vec![],
            tokens: vec![],
            certificate_key: Some("secret".into()),
            certificate_key_expires: 0,
            kubelet_config: "kind: KubeletConfiguration\n".into(),
        }
    }

    #[test]
    fn a_snapshot_carries_its_hash_and_status() {
        let bytes = snapshot_bytes(&store());
        assert_eq!(bytes.len() % 512, 32, "sha256 appended to whole pages");
        let s = status_of(&bytes).expect("status");
        assert_eq!((s.revision, s.total_key, s.total_size), (42, 2, 8192));
        assert_eq!(
            status_of(&[0u8; 5000]).err().as_deref(),
            Some("file size too small")
        );
        let mut broken = bytes.clone();
        broken[3] ^= 0xff;
        assert_eq!(
            status_of(&broken).err().as_deref(),
            Some("invalid database")
        );
    }

    #[test]
    fn formats() {
        assert_eq!(human_bytes(4096), "4.1 kB");
        assert_eq!(human_bytes(20480), "20 kB");
        assert_eq!(crc32c(b"123456789"), 0xe306_9283);
        let a = parse(&[
            "--endpoints=https://127.0.0.1:2379".into(),
            "-w".into(),
            "json".into(),
            "snapshot".into(),
            "save".into(),
            "/x".into(),
        ]);
        assert_eq!(a.words, ["snapshot", "save", "/x"]);
        assert_eq!(a.format(), "json");
    }
}
