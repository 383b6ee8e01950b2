//! The state of the emulated Kubernetes cluster, shared by every host of a lab.
//!
//! The lab bind-mounts one per-lab directory into each host at [`CLUSTER_DIR`]; the emulated
//! kubeadm, kubectl and kubelet read and change it under an exclusive `flock`, so hosts
//! acting at the same time (two nodes joining) see each other's changes. It holds:
//!
//! - `state.json` ([`ClusterState`]): the control plane (endpoint, CA hash, bootstrap
//!   tokens, certificate key, version, CIDRs), the nodes, and every applied object;
//! - `manifests/NNNN-<name>`: each manifest exactly as `kubectl apply` received it.
//!
//! A test reads both from outside with [`ClusterState::read`] on the lab's cluster
//! directory ([`crate::Lab::cluster_dir`]).

use std::collections::BTreeMap;
use std::hash::{BuildHasher, Hasher};
use std::os::unix::io::AsRawFd;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Invocation;

/// Where the shared directory is mounted inside every host.
pub const CLUSTER_DIR: &str = "/var/lib/k8sup-lab-cluster";
const STATE_FILE: &str = "state.json";
const LOCK_FILE: &str = "lock";

/// A bootstrap token (`kubeadm token create`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BootstrapToken {
    /// `[a-z0-9]{6}.[a-z0-9]{16}`.
    pub token: String,
    /// Unix seconds; `None` never expires (`--ttl 0`).
    pub expires: Option<u64>,
    pub usages: Vec<String>,
    pub groups: Vec<String>,
    pub description: String,
}

impl BootstrapToken {
    pub fn id(&self) -> &str {
        self.token.split('.').next().unwrap_or("")
    }
    pub fn valid_at(&self, now: u64) -> bool {
        self.expires.is_none_or(|e| e > now)
    }
}

/// A node taint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Taint {
    pub key: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub value: String,
    pub effect: String,
}

/// The kubelet of a node as its host last saw it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KubeletStatus {
    /// kubelet.service active with a usable configuration and runtime.
    pub running: bool,
    /// Why it is not (the real kubelet's error), if it is not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A registered node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    pub name: String,
    /// The lab host it runs on (its hostname).
    pub host: String,
    /// `amd64` or `arm64`.
    pub arch: String,
    pub address: String,
    pub control_plane: bool,
    pub labels: BTreeMap<String, String>,
    pub taints: Vec<Taint>,
    pub kubelet_version: String,
    pub container_runtime: String,
    pub os_image: String,
    pub kernel: String,
    #[serde(default)]
    pub pod_cidr: Option<String>,
    pub created: u64,
    #[serde(default)]
    pub kubelet: KubeletStatus,
    /// The control-plane version its static pod manifests run, when it differs from the
    /// cluster's (between `kubeadm upgrade apply` on one master and `upgrade node` on this
    /// one); `None`: the cluster's version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control_plane_version: Option<String>,
    /// `spec.unschedulable`: cordoned (`kubectl cordon`, `drain`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unschedulable: bool,
}

/// One object the API server holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Object {
    pub api_version: String,
    pub kind: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    pub name: String,
    /// The object as applied (parsed YAML).
    pub body: Value,
    pub created: u64,
    /// `kubeadm` for what `kubeadm init` creates, else the manifest file that applied it.
    pub source: String,
}

/// Everything the cluster holds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClusterState {
    pub initialized: bool,
    /// `host:port` of the API server.
    pub endpoint: String,
    /// `controlPlaneEndpoint` as configured (empty: none, no control-plane joins).
    #[serde(default)]
    pub control_plane_endpoint: String,
    /// An identity of the CA, embedded in every kubeconfig kubeadm writes.
    pub ca_id: String,
    /// `sha256:<64 hex>`, what `--discovery-token-ca-cert-hash` must name.
    pub ca_hash: String,
    pub tokens: Vec<BootstrapToken>,
    /// The key of the uploaded control-plane certificates, and when they expire.
    pub certificate_key: Option<String>,
    pub certificate_key_expires: u64,
    pub kubernetes_version: String,
    pub cluster_name: String,
    pub image_repository: String,
    pub pod_subnet: Option<String>,
    pub service_subnet: String,
    pub dns_domain: String,
    /// The cluster's KubeletConfiguration (the kubelet-config ConfigMap), YAML.
    pub kubelet_config: String,
    pub nodes: BTreeMap<String, Node>,
    pub objects: Vec<Object>,
    /// How many manifests were applied (numbers the files under `manifests/`).
    pub applied: u32,
    /// The pods of Deployments, ReplicaSets and bare Pod objects, as the scheduler bound
    /// them (DaemonSet and static pods are derived from the nodes instead).
    #[serde(default)]
    pub pods: Vec<PodRecord>,
    /// Numbers the pods controllers create, so that a replacement gets a new name.
    #[serde(default)]
    pub pod_serial: u64,
}

/// A pod that a controller (or a user, for a bare Pod) created and the scheduler bound.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodRecord {
    pub namespace: String,
    pub name: String,
    /// `Deployment`, `ReplicaSet` or `Pod` (a bare pod is its own object).
    pub owner_kind: String,
    pub owner_name: String,
    /// The node it is bound to; `None` while Pending (no node fits).
    pub node: Option<String>,
    pub created: u64,
}

impl ClusterState {
    /// Reads the state from a cluster directory seen from outside the hosts.
    pub fn read(dir: &Path) -> Result<ClusterState, String> {
        match std::fs::read_to_string(dir.join(STATE_FILE)) {
            Ok(text) => serde_json::from_str(&text).map_err(|e| format!("{STATE_FILE}: {e}")),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(ClusterState::default()),
            Err(e) => Err(format!("{}: {e}", dir.join(STATE_FILE).display())),
        }
    }

    pub fn object(&self, kind: &str, namespace: &str, name: &str) -> Option<&Object> {
        self.objects
            .iter()
            .find(|o| o.kind == kind && o.namespace == namespace && o.name == name)
    }

    pub fn control_plane_nodes(&self) -> usize {
        self.nodes.values().filter(|n| n.control_plane).count()
    }

    /// A free /24 (or the subnet's own size when smaller) of the pod subnet for a new node.
    pub fn next_pod_cidr(&self) -> Option<String> {
        let subnet = self.pod_subnet.as_deref()?;
        let (base, bits) = parse_cidr(subnet)?;
        let node_bits = bits.max(24);
        let count = 1u32.checked_shl(node_bits - bits).unwrap_or(u32::MAX);
        let used: Vec<&str> = self
            .nodes
            .values()
            .filter_map(|n| n.pod_cidr.as_deref())
            .collect();
        (0..count)
            .map(|i| {
                let addr = u32::from(base) + (i << (32 - node_bits));
                format!("{}/{node_bits}", std::net::Ipv4Addr::from(addr))
            })
            .find(|c| !used.contains(&c.as_str()))
    }
}

/// `10.244.0.0/16` → (network, 16); `None` when not an IPv4 CIDR.
pub fn parse_cidr(cidr: &str) -> Option<(std::net::Ipv4Addr, u32)> {
    let (addr, bits) = cidr.trim().split_once('/')?;
    let addr: std::net::Ipv4Addr = addr.parse().ok()?;
    let bits: u32 = bits.parse().ok()?;
    if bits > 32 {
        return None;
    }
    let mask = if bits == 0 {
        0
    } else {
        u32::MAX << (32 - bits)
    };
    Some((std::net::Ipv4Addr::from(u32::from(addr) & mask), bits))
}

/// The state, locked for one change: dropped without [`Locked::save`] nothing is written.
pub struct Locked {
    _lock: std::fs::File,
    pub state: ClusterState,
    dir: std::path::PathBuf,
}

impl Locked {
    pub fn save(&self) -> Result<(), String> {
        let text = serde_json::to_string_pretty(&self.state).map_err(|e| e.to_string())?;
        let tmp = self.dir.join(format!("{STATE_FILE}.tmp"));
        std::fs::write(&tmp, text)
            .and_then(|_| std::fs::rename(&tmp, self.dir.join(STATE_FILE)))
            .map_err(|e| format!("{CLUSTER_DIR}/{STATE_FILE}: {e}"))
    }

    /// Keeps a manifest as applied; returns its file name under `manifests/`.
    pub fn keep_manifest(&mut self, name: &str, text: &str) -> Result<String, String> {
        self.state.applied += 1;
        let base = Path::new(name)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .filter(|n| n != "-")
            .unwrap_or_else(|| "stdin.yaml".into());
        let file = format!("{:04}-{base}", self.state.applied);
        let dir = self.dir.join("manifests");
        std::fs::create_dir_all(&dir)
            .and_then(|_| std::fs::write(dir.join(&file), text))
            .map_err(|e| format!("{CLUSTER_DIR}/manifests/{file}: {e}"))?;
        Ok(file)
    }
}

/// Every cordon and uncordon of the cluster, in the order they took effect: one JSON
/// line ([`CordonEvent`]) each, in the cluster directory, appended under the state's lock.
pub const CORDON_LOG: &str = "cordons.jsonl";

/// A node turned unschedulable (`cordon`, also by `drain`) or schedulable again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CordonEvent {
    /// Milliseconds since the Unix epoch.
    pub at_ms: u64,
    pub node: String,
    /// `cordon` or `uncordon`.
    pub action: String,
    /// The host whose kubectl did it.
    pub by: String,
}

impl Locked {
    /// Records a cordon or uncordon that this change makes (call before [`Locked::save`]).
    pub fn log_cordon(&self, node: &str, cordon: bool, by: &str) {
        let event = CordonEvent {
            at_ms: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0),
            node: node.to_string(),
            action: if cordon { "cordon" } else { "uncordon" }.into(),
            by: by.to_string(),
        };
        super::append_json_line(&self.dir.join(CORDON_LOG), &event);
    }
}

/// The cordons and uncordons of a lab's cluster so far, oldest first (from outside the
/// hosts: the lab's cluster directory).
pub fn cordon_events(dir: &Path) -> Result<Vec<CordonEvent>, String> {
    let path = dir.join(CORDON_LOG);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).map_err(|e| format!("{}: {l:?}: {e}", path.display())))
        .collect()
}

/// The most nodes that were cordoned at the same time in `events`, and one moment's set
/// of them (nodes cordoned before the log began are not known to it).
pub fn most_cordoned_at_once(events: &[CordonEvent]) -> (usize, Vec<String>) {
    let mut now = std::collections::BTreeSet::new();
    let mut most = (0, Vec::new());
    for e in events {
        if e.action == "cordon" {
            now.insert(e.node.clone());
        } else {
            now.remove(&e.node);
        }
        if now.len() > most.0 {
            most = (now.len(), now.iter().cloned().collect());
        }
    }
    most
}

/// Locks and reads the shared state.
pub fn lock(inv: &Invocation) -> Result<Locked, String> {
    let dir = inv.path(CLUSTER_DIR);
    std::fs::create_dir_all(&dir).map_err(|e| format!("{CLUSTER_DIR}: {e}"))?;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(LOCK_FILE))
        .map_err(|e| format!("{CLUSTER_DIR}/{LOCK_FILE}: {e}"))?;
    // SAFETY: flock on a file descriptor we own; blocks until the other host is done.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
        return Err(format!(
            "{CLUSTER_DIR}/{LOCK_FILE}: {}",
            std::io::Error::last_os_error()
        ));
    }
    let state = ClusterState::read(&dir)?;
    Ok(Locked {
        _lock: file,
        state,
        dir,
    })
}

/// Reads the shared state without changing it.
pub fn read(inv: &Invocation) -> Result<ClusterState, String> {
    lock(inv).map(|l| l.state)
}

/// Seconds since the Unix epoch.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Random lowercase letters and digits (token ids and secrets), `n` of them.
pub fn random_token_chars(n: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut s = String::with_capacity(n);
    while s.len() < n {
        let mut v = random_u64();
        for _ in 0..8 {
            if s.len() == n {
                break;
            }
            s.push(ALPHABET[(v % ALPHABET.len() as u64) as usize] as char);
            v /= ALPHABET.len() as u64;
        }
    }
    s
}

/// Random lowercase hex, `n` digits.
pub fn random_hex(n: usize) -> String {
    let mut s = String::with_capacity(n + 16);
    while s.len() < n {
        s.push_str(&format!("{:016x}", random_u64()));
    }
    s.truncate(n);
    s
}

fn random_u64() -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.write_u32(std::process::id());
    h.finish()
}

/// A stable 5-character suffix for a generated name (`kube-proxy-x7k2p`).
pub fn name_suffix(seed: &str) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    // FNV-1a: stable across runs, unlike std's hasher.
    let mut v: u64 = 0xcbf2_9ce4_8422_2325;
    for b in seed.bytes() {
        v ^= u64::from(b);
        v = v.wrapping_mul(0x0100_0000_01b3);
    }
    (0..5)
        .map(|i| ALPHABET[((v >> (i * 8)) % ALPHABET.len() as u64) as usize] as char)
        .collect()
}

/// RFC 3339 in UTC (`2024-09-01T10:00:00Z`).
pub fn rfc3339(unix: u64) -> String {
    let days = (unix / 86_400) as i64;
    let secs = unix % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// A Go duration as kubeadm takes it (`24h0m0s`, `2h`, `30m`, `0`); seconds.
pub fn parse_go_duration(text: &str) -> Option<u64> {
    let t = text.trim();
    if t == "0" {
        return Some(0);
    }
    let mut total = 0f64;
    let mut num = String::new();
    let mut chars = t.chars().peekable();
    let mut any = false;
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() || c == '.' {
            num.push(c);
            continue;
        }
        let mut unit = c.to_string();
        if c == 'm' && chars.peek() == Some(&'s') {
            unit.push('s');
            chars.next();
        }
        let n: f64 = num.parse().ok()?;
        num.clear();
        total += n * match unit.as_str() {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 0.001,
            _ => return None,
        };
        any = true;
    }
    if !num.is_empty() || !any {
        return None;
    }
    Some(total as u64)
}

/// How kubectl shows an age (`45s`, `3m20s`, `15m`, `5h`, `3d`).
pub fn human_age(secs: u64) -> String {
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 600 => {
            if s % 60 == 0 {
                format!("{}m", s / 60)
            } else {
                format!("{}m{}s", s / 60, s % 60)
            }
        }
        s if s < 3 * 3600 => format!("{}m", s / 60),
        s if s < 8 * 3600 => {
            if s / 60 % 60 == 0 {
                format!("{}h", s / 3600)
            } else {
                format!("{}h{}m", s / 3600, s / 60 % 60)
            }
        }
        s if s < 48 * 3600 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

/// The YAML documents of a file, as JSON values; empty documents are skipped.
pub fn yaml_documents(text: &str) -> Result<Vec<Value>, String> {
    use serde::Deserialize as _;
    let mut docs = Vec::new();
    for doc in serde_norway::Deserializer::from_str(text) {
        let v = Value::deserialize(doc).map_err(|e| e.to_string())?;
        if !v.is_null() {
            docs.push(v);
        }
    }
    Ok(docs)
}

/// A string field of a JSON object, `""` when absent.
pub fn str_at<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    let mut cur = v;
    for p in path {
        match cur.get(p) {
            Some(next) => cur = next,
            None => return "",
        }
    }
    cur.as_str().unwrap_or("")
}

/// A package's upstream version, or the message a missing package deserves.
pub fn package_version(inv: &Invocation, package: &str) -> Result<String, String> {
    super::pkgdb::upstream_version(inv, package).ok_or_else(|| {
        format!(
            "k8sup-lab: {}: package {package} is not installed on this host",
            inv.tool
        )
    })
}

/// `1.30.4` → (1, 30, 4), tolerating a leading `v`.
pub fn semver(v: &str) -> Option<(u32, u32, u32)> {
    let v = v.trim().trim_start_matches('v');
    let core = v.split(['-', '+']).next()?;
    let mut it = core.split('.');
    let major = it.next()?.parse().ok()?;
    let minor = it.next()?.parse().ok()?;
    let patch = it.next().unwrap_or("0").parse().ok()?;
    Some((major, minor, patch))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_durations() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_725_184_800), "2024-09-01T10:00:00Z");
        assert_eq!(parse_go_duration("24h0m0s"), Some(86_400));
        assert_eq!(parse_go_duration("1h30m"), Some(5400));
        assert_eq!(parse_go_duration("0"), Some(0));
        assert_eq!(parse_go_duration("12x"), None);
        assert_eq!(human_age(45), "45s");
        assert_eq!(human_age(200), "3m20s");
        assert_eq!(human_age(3 * 86_400), "3d");
    }

    #[test]
    fn pod_cidrs_are_handed_out_per_node() {
        let mut s = ClusterState {
            pod_subnet: Some("10.244.0.0/16".into()),
            ..Default::default()
        };
        assert_eq!(s.next_pod_cidr().as_deref(), Some("10.244.0.0/24"));
        s.nodes.insert(
            "a".into(),
            Node {
                name: "a".into(),
                host: "a".into(),
                arch: "amd64".into(),
                address: String::new(),
                control_plane: true,
                labels: BTreeMap::new(),
                taints: vec![],
                kubelet_version: "v1.30.4".into(),
                container_runtime: String::new(),
                os_image: String::new(),
                kernel: String::new(),
                pod_cidr: Some("10.244.0.0/24".into()),
                created: 0,
                kubelet: KubeletStatus::default(),
                control_plane_version: None,
                unschedulable: false,
            },
        );
        assert_eq!(s.next_pod_cidr().as_deref(), Some("10.244.1.0/24"));
    }

    #[test]
    fn tokens_and_yaml() {
        let t = random_token_chars(16);
        assert_eq!(t.len(), 16);
        assert!(t
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()));
        assert_eq!(random_hex(64).len(), 64);
        let docs = yaml_documents("a: 1\n---\n---\nb: [x]\n").expect("yaml");
        assert_eq!(docs.len(), 2);
        assert_eq!(semver("v1.30.4"), Some((1, 30, 4)));
    }
}
