//! etcd backups and disaster recovery for a stacked-etcd control plane (etcd in a static
//! pod on every master, as kubeadm sets it up).
//!
//! etcd's client tools are the host's when it has them (Debian's etcd-client, or etcd's
//! release binaries), else those of the etcd container kubeadm runs, through `crictl
//! exec` (a stock kubeadm master has no etcd client of its own): its image has etcdctl and
//! etcdutl, and its pod mounts the data dir and `/etc/kubernetes/pki/etcd`, so the files
//! they touch are staged there, and the client certificate is `etcd/healthcheck-client`
//! (see `etcd_tools.sh`).
//!
//! [`backup`] takes a snapshot on the first master whose etcd is healthy, with etcd's
//! client certificates, checks it there (`etcdutl snapshot status`, or `etcdctl snapshot
//! status` where only etcd 3.4's client is installed), and streams it to the controller in
//! the same command, which removes it from the host whatever happens; the controller
//! checks the sha256 the host computed, stores `CLUSTER-YYYYmmddTHHMMSSZ.db` (mode 0600)
//! with a `.sha256` beside it, and prunes older snapshots. The upgrade's pre-upgrade
//! snapshot calls the same function.
//!
//! [`prepare_restore`] checks a snapshot before anything stops: its sha256 against the
//! file beside it, then its status on a master; and reads each master's etcd member (name,
//! peer URL, data dir) from its static pod manifest to build `--initial-cluster`.
//! [`restore`] then uploads the snapshot to every master and restores it into a new data
//! dir beside the running member's (while etcd, and its container's etcdutl, still run),
//! stops every control plane (manifests moved aside), moves each data dir aside and the
//! restored one into its place, starts the control planes and waits for every API server.
//!
//! A snapshot holds every Secret of the cluster: its bytes go only to the file, never to
//! output, errors or logs.

use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::future::join_all;
use k8sup_inventory::{Host, Inventory};
use k8sup_shell::{Script, ShellArg};
use k8sup_ssh::{RunOptions, Session, Transport};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::connect::{target_for, ConnectOptions};

/// What can go wrong with a backup or a restore; each says where.
#[derive(Debug, thiserror::Error)]
pub enum EtcdError {
    /// What a master's etcd or etcdctl said, or why its answer could not be used.
    #[error("{host}: {message}")]
    Host { host: String, message: String },
    #[error("{host}: {source}")]
    Connect {
        host: String,
        #[source]
        source: Box<k8sup_ssh::ConnectError>,
    },
    /// A command or a file transfer on the master failed to run (not: ran and failed).
    #[error("{host}: {source}")]
    Transport {
        host: String,
        #[source]
        source: Box<k8sup_ssh::CommandError>,
    },
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("no master has a healthy etcd: {0}")]
    NoHealthyMaster(String),
    #[error("{0}")]
    Refused(String),
}

/// The last non-empty line of a tool's stderr: what it said went wrong.
/// Through `crictl exec` a failing tool's lines are followed by crictl's own, which
/// only says that it failed: that one is passed over.
pub(crate) fn last_line(text: &str) -> &str {
    let said = |l: &&str| !l.trim().is_empty();
    let crictl = |l: &&str| l.contains("msg=\"execing command in container: command terminated");
    text.lines()
        .rev()
        .find(|l| said(l) && !crictl(l))
        .or_else(|| text.lines().rev().find(said))
        .unwrap_or("")
}

fn transport_error(host: &str, source: k8sup_ssh::CommandError) -> EtcdError {
    EtcdError::Transport {
        host: host.to_string(),
        source: Box::new(source),
    }
}

fn host_error(host: &str, message: impl Into<String>) -> EtcdError {
    EtcdError::Host {
        host: host.to_string(),
        message: message.into(),
    }
}

fn file_error(path: &Path, message: impl std::fmt::Display) -> EtcdError {
    EtcdError::File {
        path: path.to_path_buf(),
        message: message.to_string(),
    }
}

/// What `snapshot status -w json` reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotStatus {
    pub hash: u64,
    pub revision: u64,
    #[serde(rename = "totalKey")]
    pub total_key: u64,
    #[serde(rename = "totalSize")]
    pub total_size: u64,
}

/// Where a backup goes and how many to keep.
#[derive(Debug, Clone)]
pub struct BackupOptions {
    pub dir: PathBuf,
    /// Keep this many snapshots of the cluster in `dir` (the new one included).
    pub keep: usize,
}

/// A backup taken.
#[derive(Debug, Clone, Serialize)]
pub struct Backup {
    pub file: PathBuf,
    pub sha256: String,
    pub master: String,
    pub status: SnapshotStatus,
    /// Older snapshots removed to keep `keep`.
    pub pruned: Vec<PathBuf>,
}

/// The functions every etcd script starts with: etcd's tools where they are (the host's,
/// or those of kubeadm's etcd container, through `crictl exec`): `etcd_find`, then
/// `etcd_ctl` (the local member), `etcd_ctl_at URLS`, `etcd_utl`, `etcd_scratch`.
pub(crate) const TOOLS: &str = include_str!("etcd_tools.sh");

/// (A failing tool's own last line is what is reported: through `crictl exec`, crictl's
/// `level=fatal` line about the exit code follows it.)
const BACKUP_BODY: &str = r#"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH
set -u
umask 077
if ! etcd_find; then
  echo "k8sup-unhealthy: etcd's container does not run here (and the host has no etcdctl)" >&2; exit 20
fi
if ! etcd_ctl endpoint health >/dev/null 2>&1; then
  echo "k8sup-unhealthy: the local etcd member is not healthy" >&2; exit 20
fi
etcd_scratch "k8sup-etcd-backup.$$" || exit 4
tmp=$etcd_scratch_dir
trap 'rm -rf "$tmp"' EXIT
if ! etcd_ctl snapshot save "$tmp/snapshot.db" >"$tmp/log" 2>&1; then
  echo "k8sup-error: etcdctl snapshot save failed: $(grep -v level=fatal "$tmp/log" | tail -n 1)" >&2; exit 5
fi
if ! status=$(etcd_utl snapshot status "$tmp/snapshot.db" -w json 2>"$tmp/log"); then
  echo "k8sup-error: snapshot status failed: $(grep -v level=fatal "$tmp/log" | tail -n 1)" >&2; exit 6
fi
echo "k8sup-status: $status" >&2
echo "k8sup-sha256: $(sha256sum "$tmp/snapshot.db" | cut -d' ' -f1)" >&2
cat "$tmp/snapshot.db"
"#;

/// The backup script, after the tools' functions.
fn backup_script() -> &'static str {
    static SCRIPT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SCRIPT.get_or_init(|| with_tools(BACKUP_BODY))
}

/// `script` after the tools' functions.
fn with_tools(script: &str) -> String {
    format!("{TOOLS}\n{script}")
}

/// The `k8sup-<key>: value` line the scripts print on stderr.
fn marked<'a>(stderr: &'a str, key: &str) -> Option<&'a str> {
    let prefix = format!("k8sup-{key}: ");
    stderr
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map(str::trim)
}

/// The JSON object in `text` (tools may print a warning first).
fn parse_status(text: &str) -> Option<SnapshotStatus> {
    let start = text.find('{')?;
    let end = text.rfind('}')?;
    serde_json::from_str(text.get(start..=end)?).ok()
}

/// The sha256 of `bytes`, lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `CLUSTER-YYYYmmddTHHMMSSZ.db` for Unix time `now`.
pub fn snapshot_name(cluster: &str, now: u64) -> String {
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(now);
    // `2024-09-01T10:00:00Z` without its separators.
    let stamp: String = humantime::format_rfc3339_seconds(at)
        .to_string()
        .chars()
        .filter(|c| !matches!(c, '-' | ':'))
        .collect();
    format!("{cluster}-{stamp}.db")
}

/// Takes a snapshot on the first master with a healthy etcd and stores it in `options.dir`.
pub async fn backup(
    inventory: &Inventory,
    connect: &ConnectOptions,
    options: &BackupOptions,
) -> Result<Backup, EtcdError> {
    if options.keep == 0 {
        return Err(EtcdError::Refused(
            "--keep must be at least 1 (the new snapshot)".into(),
        ));
    }
    std::fs::create_dir_all(&options.dir).map_err(|e| file_error(&options.dir, e))?;
    let mut unhealthy = Vec::new();
    for master in inventory.masters() {
        match snapshot_from(master, connect).await {
            Ok((bytes, status)) => {
                return store(inventory, options, &master.name, &bytes, status);
            }
            Err(SnapshotFailure::Unhealthy(why)) => {
                unhealthy.push(format!("{}: {why}", master.name))
            }
            Err(SnapshotFailure::Failed(e)) => return Err(e),
        }
    }
    Err(EtcdError::NoHealthyMaster(unhealthy.join("; ")))
}

enum SnapshotFailure {
    /// Try the next master.
    Unhealthy(String),
    Failed(EtcdError),
}

async fn snapshot_from(
    master: &Host,
    connect: &ConnectOptions,
) -> Result<(Vec<u8>, SnapshotStatus), SnapshotFailure> {
    let session = k8sup_ssh::connect(&target_for(master, connect))
        .await
        .map_err(|e| SnapshotFailure::Unhealthy(e.to_string()))?;
    let taken = snapshot_over(&session, &master.name).await;
    session.close().await;
    taken
}

/// Takes, checks and reads a snapshot of `master`'s etcd over a connection that is
/// already open.
async fn snapshot_over(
    session: &dyn Transport,
    master: &str,
) -> Result<(Vec<u8>, SnapshotStatus), SnapshotFailure> {
    let out = session
        .run_with(
            &Script::new(backup_script()),
            RunOptions {
                timeout: Some(Duration::from_secs(1800)),
                ..Default::default()
            },
        )
        .await
        .map_err(|e| SnapshotFailure::Failed(transport_error(master, e)))?;
    let stderr = out.stderr_text();
    if out.exit_status == Some(20) {
        return Err(SnapshotFailure::Unhealthy(
            marked(&stderr, "unhealthy")
                .unwrap_or("etcd is not healthy")
                .to_string(),
        ));
    }
    if !out.success() {
        let why = marked(&stderr, "error")
            .map(str::to_string)
            .unwrap_or_else(|| format!("the backup failed ({})", out.status_text()));
        return Err(SnapshotFailure::Failed(host_error(master, why)));
    }
    let status = marked(&stderr, "status")
        .and_then(parse_status)
        .ok_or_else(|| {
            SnapshotFailure::Failed(host_error(
                master,
                "snapshot status printed no hash, revision and keys",
            ))
        })?;
    let host_sum = marked(&stderr, "sha256").unwrap_or("").to_string();
    let bytes = out.stdout;
    if sha256_hex(&bytes) != host_sum {
        return Err(SnapshotFailure::Failed(host_error(
            master,
            format!(
                "the snapshot received ({} bytes) does not have the sha256 the master computed: not stored",
                bytes.len()
            ),
        )));
    }
    Ok((bytes, status))
}

/// A backup over `session`, a connection to `master` the caller holds (the
/// upgrade's, before `kubeadm upgrade apply`): the same snapshot, checks and
/// file as [`backup`].
pub async fn backup_over(
    inventory: &Inventory,
    session: &dyn Transport,
    master: &str,
    options: &BackupOptions,
) -> Result<Backup, EtcdError> {
    std::fs::create_dir_all(&options.dir).map_err(|e| file_error(&options.dir, e))?;
    match snapshot_over(session, master).await {
        Ok((bytes, status)) => store(inventory, options, master, &bytes, status),
        Err(SnapshotFailure::Unhealthy(why)) => Err(host_error(master, why)),
        Err(SnapshotFailure::Failed(e)) => Err(e),
    }
}

fn store(
    inventory: &Inventory,
    options: &BackupOptions,
    master: &str,
    bytes: &[u8],
    status: SnapshotStatus,
) -> Result<Backup, EtcdError> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let name = snapshot_name(&inventory.cluster.name, now);
    let file = options.dir.join(&name);
    let sha256 = sha256_hex(bytes);
    write_private(&file, bytes)?;
    write_private(&sha_file(&file), format!("{sha256}  {name}\n").as_bytes())?;
    let pruned = prune(&options.dir, &inventory.cluster.name, options.keep)?;
    Ok(Backup {
        file,
        sha256,
        master: master.to_string(),
        status,
        pruned,
    })
}

/// `FILE.sha256`, in sha256sum's format.
pub fn sha_file(file: &Path) -> PathBuf {
    let mut s = file.as_os_str().to_owned();
    s.push(".sha256");
    PathBuf::from(s)
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), EtcdError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("part");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| file_error(&tmp, e))?;
    f.write_all(bytes)
        .and_then(|_| f.sync_all())
        .and_then(|_| std::fs::rename(&tmp, path))
        .map_err(|e| file_error(path, e))
}

/// Removes the oldest `CLUSTER-*.db` (and their `.sha256`) beyond `keep`.
fn prune(dir: &Path, cluster: &str, keep: usize) -> Result<Vec<PathBuf>, EtcdError> {
    let mut snapshots: Vec<String> = std::fs::read_dir(dir)
        .map_err(|e| file_error(dir, e))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| is_snapshot_name(cluster, n))
        .collect();
    // The names sort by time.
    snapshots.sort();
    let excess = snapshots.len().saturating_sub(keep);
    let mut pruned = Vec::new();
    for name in snapshots.into_iter().take(excess) {
        let file = dir.join(&name);
        std::fs::remove_file(&file).map_err(|e| file_error(&file, e))?;
        let _ = std::fs::remove_file(sha_file(&file));
        pruned.push(file);
    }
    Ok(pruned)
}

fn is_snapshot_name(cluster: &str, name: &str) -> bool {
    let Some(stamp) = name
        .strip_prefix(cluster)
        .and_then(|r| r.strip_prefix('-'))
        .and_then(|r| r.strip_suffix(".db"))
    else {
        return false;
    };
    stamp.len() == 16
        && stamp.as_bytes()[8] == b'T'
        && stamp.ends_with('Z')
        && stamp[..8]
            .bytes()
            .chain(stamp[9..15].bytes())
            .all(|b| b.is_ascii_digit())
}

// ---- restore ----

/// One master's etcd member, as its static pod manifest names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Member {
    pub host: String,
    pub name: String,
    pub peer_url: String,
    pub data_dir: String,
}

/// A checked snapshot and the members it will be restored into.
#[derive(Debug, Clone, Serialize)]
pub struct RestorePlan {
    pub file: PathBuf,
    pub sha256: String,
    pub status: SnapshotStatus,
    pub members: Vec<Member>,
    pub initial_cluster: String,
    /// A new cluster token: the restored members form a new etcd cluster.
    pub token: String,
    /// Where each data dir is moved before the restore (kept, never deleted).
    pub old_data_suffix: String,
    #[serde(skip)]
    bytes: Vec<u8>,
}

const ETCD_MANIFEST: &str = "/etc/kubernetes/manifests/etcd.yaml";
/// Where the manifests wait while the control plane is stopped.
const HELD: &str = "/etc/kubernetes/k8sup-restore-held";

/// A flag of etcd's command line in its manifest (`- --name=m1`).
fn manifest_flag(manifest: &str, flag: &str) -> Option<String> {
    manifest.lines().find_map(|l| {
        l.trim()
            .trim_start_matches('-')
            .trim()
            .strip_prefix(&format!("--{flag}="))
            .map(|v| v.trim().trim_matches('"').to_string())
    })
}

/// The member a manifest describes.
pub fn member_of(host: &str, manifest: &str) -> Result<Member, EtcdError> {
    let get = |flag: &str| {
        manifest_flag(manifest, flag).ok_or_else(|| {
            host_error(
                host,
                format!("{ETCD_MANIFEST} has no --{flag}: is etcd stacked on this master?"),
            )
        })
    };
    Ok(Member {
        host: host.to_string(),
        name: get("name")?,
        peer_url: get("initial-advertise-peer-urls")?
            .split(',')
            .next()
            .unwrap_or("")
            .to_string(),
        data_dir: manifest_flag(manifest, "data-dir").unwrap_or_else(|| "/var/lib/etcd".into()),
    })
}

/// Reads and checks the snapshot against its `.sha256`: nothing is contacted before this
/// passes.
pub fn check_file(file: &Path) -> Result<(Vec<u8>, String), EtcdError> {
    let bytes = std::fs::read(file).map_err(|e| file_error(file, e))?;
    let sums = sha_file(file);
    let text = std::fs::read_to_string(&sums).map_err(|e| {
        file_error(
            &sums,
            format!(
                "{e}: the sha256 of the snapshot must be beside it (k8sup etcd backup writes it)"
            ),
        )
    })?;
    let expected = text.split_whitespace().next().unwrap_or("").to_lowercase();
    let actual = sha256_hex(&bytes);
    if expected != actual {
        return Err(file_error(
            file,
            format!(
                "sha256 mismatch: {} says {expected}, the file has {actual}; the snapshot is corrupted or not the one backed up: refused, nothing was stopped",
                sums.display()
            ),
        ));
    }
    Ok((bytes, actual))
}

async fn connect_all<'a>(
    masters: &[&'a Host],
    options: &ConnectOptions,
) -> Result<Vec<(&'a Host, Session)>, EtcdError> {
    let sessions = join_all(
        masters
            .iter()
            .map(|m| async move { (m, k8sup_ssh::connect(&target_for(m, options)).await) }),
    )
    .await;
    sessions
        .into_iter()
        .map(|(m, s)| {
            s.map(|s| (*m, s)).map_err(|e| EtcdError::Connect {
                host: m.name.clone(),
                source: Box::new(e),
            })
        })
        .collect()
}

/// A path under /var/tmp for the uploaded snapshot, unique to this restore.
fn upload_path(token: &str) -> String {
    format!("/var/tmp/{token}.db")
}

/// Checks the uploaded snapshot `$1` with `snapshot status`, then removes it.
const STATUS_SCRIPT: &str = r#"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH
set -u
snap="$1"
if ! etcd_find; then
  rm -f "$snap"
  echo "etcd's container does not run on this master and it has no etcdutl or etcdctl to check the snapshot with" >&2; exit 20
fi
etcd_scratch "k8sup-etcd-status.$$" || { rm -f "$snap"; exit 4; }
mv "$snap" "$etcd_scratch_dir/snapshot.db"
etcd_utl snapshot status "$etcd_scratch_dir/snapshot.db" -w json; rc=$?
rm -rf "$etcd_scratch_dir"
exit $rc
"#;

/// Checks the snapshot (sha256, then its status on the first master) and reads the members.
pub async fn prepare_restore(
    inventory: &Inventory,
    options: &ConnectOptions,
    file: &Path,
) -> Result<RestorePlan, EtcdError> {
    let (bytes, sha256) = check_file(file)?;
    let masters: Vec<&Host> = inventory.masters().collect();
    let sessions = connect_all(&masters, options).await?;
    let mut members = Vec::new();
    for (host, session) in &sessions {
        let manifest = session.download(ETCD_MANIFEST).await.map_err(|e| {
            host_error(
                &host.name,
                format!("{e}: a restore needs each master's etcd manifest"),
            )
        })?;
        members.push(member_of(&host.name, &String::from_utf8_lossy(&manifest))?);
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let token = format!("k8sup-restore-{now}");
    let (first, session) = &sessions[0];
    let path = upload_path(&token);
    session
        .upload(&path, &bytes, 0o600, None)
        .await
        .map_err(|e| transport_error(&first.name, e))?;
    let out = session
        .run(
            &Script::new("sh -c")
                .arg(shell_arg(&with_tools(STATUS_SCRIPT))?)
                .code("sh")
                .arg(shell_arg(&path)?),
        )
        .await
        .map_err(|e| transport_error(&first.name, e))?;
    let status = parse_status(&out.stdout_text())
        .filter(|_| out.success())
        .ok_or_else(|| {
            let why = out.stderr_text();
            host_error(
                &first.name,
                format!(
                    "snapshot status refused {}: {}; nothing was stopped",
                    file.display(),
                    Some(last_line(&why))
                        .filter(|l| !l.is_empty())
                        .unwrap_or("no answer")
                ),
            )
        })?;
    for (_, s) in sessions {
        s.close().await;
    }
    let initial_cluster = members
        .iter()
        .map(|m| format!("{}={}", m.name, m.peer_url))
        .collect::<Vec<_>>()
        .join(",");
    Ok(RestorePlan {
        file: file.to_path_buf(),
        sha256,
        status,
        members,
        initial_cluster,
        old_data_suffix: format!(".k8sup-before-restore-{now}"),
        token,
        bytes,
    })
}

fn shell_arg(text: &str) -> Result<ShellArg, EtcdError> {
    ShellArg::new(text).map_err(|e| EtcdError::Refused(e.to_string()))
}

/// Stops this master's control plane: manifests aside, then wait until its API server
/// stopped answering.
const STOP_SCRIPT: &str = r#"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH
set -u
held="$1"
mkdir -p "$held"
for pod in etcd kube-apiserver kube-controller-manager kube-scheduler; do
  if [ -e "/etc/kubernetes/manifests/$pod.yaml" ]; then mv "/etc/kubernetes/manifests/$pod.yaml" "$held/"; fi
done
i=0
while curl -ksf https://127.0.0.1:6443/livez >/dev/null 2>&1; do
  i=$((i + 1))
  if [ "$i" -ge 90 ]; then echo "the API server still answers 90s after its manifest was moved" >&2; exit 11; fi
  sleep 1
done
echo k8sup-stopped
"#;

/// Restores the uploaded snapshot `$1` into a new data dir beside the member's, while
/// etcd still runs (its container's etcdutl is only there while it runs): nothing of the
/// running member changes yet.
const STAGE_SCRIPT: &str = r#"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH
set -u
snap="$1" name="$2" cluster="$3" peer="$4" token="$5"
if ! etcd_find; then
  rm -f "$snap"
  echo "etcd's container does not run on this master and it has no etcdutl or etcdctl: install etcd's client tools on it to restore" >&2; exit 20
fi
etcd_scratch "$token" || { rm -f "$snap"; echo "cannot make $etcd_scratch_dir" >&2; exit 4; }
staged=$etcd_scratch_dir
mv "$snap" "$staged/snapshot.db" || exit 4
if ! etcd_utl snapshot restore "$staged/snapshot.db" --name "$name" --initial-cluster "$cluster" --initial-advertise-peer-urls "$peer" --initial-cluster-token "$token" --data-dir "$staged/data" >/dev/null 2>"$staged/log"; then
  tail -n 2 "$staged/log" >&2; rm -rf "$staged"; exit 13
fi
rm -f "$staged/snapshot.db" "$staged/log"
echo k8sup-staged
"#;

/// With the control plane stopped: the member's data dir `$2` moved aside to `$3`, and
/// the restored one (staged by [`STAGE_SCRIPT`] for restore `$1`) put in its place.
const SWAP_SCRIPT: &str = r#"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH
set -u
token="$1" data="$2" old="$3"
if [ -d "/var/tmp/$token/data" ]; then staged="/var/tmp/$token"; else staged="$data/$token"; fi
if [ ! -d "$staged/data/member" ]; then echo "the restored data staged at $staged is gone" >&2; exit 12; fi
if [ -e "$data" ]; then mv "$data" "$old" || exit 12; fi
case $staged in "$data"/*) staged="$old${staged#"$data"}" ;; esac
mv "$staged/data" "$data" || exit 12
rm -rf "$staged"
echo k8sup-restored
"#;

/// Removes what [`STAGE_SCRIPT`] left, after a restore that stops before the swap.
const CLEAN_SCRIPT: &str = r#"token="$1" data="$2" snap="$3"
rm -rf "/var/tmp/$token" "${data:?}/$token" "$snap"
echo k8sup-cleaned
"#;

/// Starts the control plane again and waits until its API server answers.
const START_SCRIPT: &str = r#"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH
set -u
held="$1"
for f in "$held"/*.yaml; do [ -e "$f" ] && mv "$f" /etc/kubernetes/manifests/; done
rmdir "$held" 2>/dev/null
i=0
until curl -ksf https://127.0.0.1:6443/livez >/dev/null 2>&1; do
  i=$((i + 1))
  if [ "$i" -ge 300 ]; then echo "the API server did not answer within 300s" >&2; exit 14; fi
  sleep 1
done
echo k8sup-started
"#;

/// A step of [`restore`], for the progress lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RestoreStep {
    Uploaded,
    Stopped,
    Restored,
    Started,
}

async fn run_on_all(
    sessions: &[(&Host, Session)],
    script: &str,
    args: impl Fn(&Host) -> Vec<String>,
    done_marker: &str,
) -> Result<(), EtcdError> {
    let runs = sessions.iter().map(|(host, session)| {
        let argv = args(host);
        async move {
            let mut s = Script::new("sh -c").arg(shell_arg(script)?).code("sh");
            for a in argv {
                s = s.arg(shell_arg(&a)?);
            }
            let out = session
                .run_with(
                    &s,
                    RunOptions {
                        timeout: Some(Duration::from_secs(900)),
                        ..Default::default()
                    },
                )
                .await
                .map_err(|e| transport_error(&host.name, e))?;
            if out.success() && out.stdout_text().contains(done_marker) {
                Ok(())
            } else {
                let why = out.stderr_text();
                Err(host_error(
                    &host.name,
                    format!(
                        "{} ({})",
                        Some(last_line(&why))
                            .filter(|l| !l.is_empty())
                            .unwrap_or("failed"),
                        out.status_text()
                    ),
                ))
            }
        }
    });
    join_all(runs).await.into_iter().collect()
}

/// Runs a checked [`RestorePlan`]: upload, stop every control plane, restore every member,
/// start them all and wait for every API server.
pub async fn restore(
    inventory: &Inventory,
    options: &ConnectOptions,
    plan: &RestorePlan,
    on_step: impl Fn(RestoreStep),
) -> Result<(), EtcdError> {
    let masters: Vec<&Host> = plan
        .members
        .iter()
        .filter_map(|m| inventory.host(&m.host))
        .collect();
    let sessions = connect_all(&masters, options).await?;
    let path = upload_path(&plan.token);
    // Everything that can fail without harm happens before the first stop.
    for (host, session) in &sessions {
        session
            .upload(&path, &plan.bytes, 0o600, None)
            .await
            .map_err(|e| transport_error(&host.name, e))?;
    }
    let member = |host: &Host| {
        plan.members
            .iter()
            .find(|m| m.host == host.name)
            .cloned()
            .unwrap_or_else(|| Member {
                host: host.name.clone(),
                name: host.name.clone(),
                peer_url: String::new(),
                data_dir: "/var/lib/etcd".into(),
            })
    };
    let clean = || {
        run_on_all(
            &sessions,
            CLEAN_SCRIPT,
            |host| vec![plan.token.clone(), member(host).data_dir, path.clone()],
            "k8sup-cleaned",
        )
    };
    // Each member's new data is restored beside the running one while etcd (and the
    // etcdutl of its container) still runs; a failure here stops nothing.
    let staged = run_on_all(
        &sessions,
        &with_tools(STAGE_SCRIPT),
        |host| {
            let m = member(host);
            vec![
                path.clone(),
                m.name,
                plan.initial_cluster.clone(),
                m.peer_url,
                plan.token.clone(),
            ]
        },
        "k8sup-staged",
    )
    .await;
    if let Err(e) = staged {
        let _ = clean().await;
        return Err(e);
    }
    on_step(RestoreStep::Uploaded);
    let stopped = run_on_all(
        &sessions,
        STOP_SCRIPT,
        |_| vec![HELD.into()],
        "k8sup-stopped",
    )
    .await;
    if let Err(e) = stopped {
        // Nothing was swapped: the control planes go back as they were.
        let _ = run_on_all(
            &sessions,
            START_SCRIPT,
            |_| vec![HELD.into()],
            "k8sup-started",
        )
        .await;
        let _ = clean().await;
        return Err(e);
    }
    on_step(RestoreStep::Stopped);
    let restored = run_on_all(
        &sessions,
        SWAP_SCRIPT,
        |host| {
            let m = member(host);
            vec![
                plan.token.clone(),
                m.data_dir.clone(),
                format!("{}{}", m.data_dir, plan.old_data_suffix),
            ]
        },
        "k8sup-restored",
    )
    .await;
    if restored.is_ok() {
        on_step(RestoreStep::Restored);
    }
    // Start the control planes even when a member failed: its manifests must not stay aside.
    let started = run_on_all(
        &sessions,
        START_SCRIPT,
        |_| vec![HELD.into()],
        "k8sup-started",
    )
    .await;
    for (_, s) in sessions {
        s.close().await;
    }
    restored?;
    started?;
    on_step(RestoreStep::Started);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_line_is_the_tool_s_own_not_crictl_s() {
        let through_crictl = "Error: etcdserver: unhealthy cluster\ntime=\"2026-12-02T07:00:00Z\" level=fatal msg=\"execing command in container: command terminated with exit code 1\"\n";
        assert_eq!(
            last_line(through_crictl),
            "Error: etcdserver: unhealthy cluster"
        );
        assert_eq!(last_line("a\nb\n\n"), "b");
        let only_crictl = "time=\"x\" level=fatal msg=\"execing command in container: command terminated with exit code 2\"";
        assert_eq!(last_line(only_crictl), only_crictl);
    }

    #[test]
    fn names_sort_by_time_and_are_recognised() {
        let a = snapshot_name("prod", 1_725_184_800);
        assert_eq!(a, "prod-20240901T100000Z.db");
        assert!(is_snapshot_name("prod", &a));
        assert!(!is_snapshot_name("prod", "prod-20240901T100000Z.db.sha256"));
        assert!(!is_snapshot_name("prod", "production-20240901T100000Z.db"));
        assert!(snapshot_name("prod", 1_725_184_801) > a);
    }

    #[test]
    fn pruning_keeps_the_newest() {
        let dir = std::env::temp_dir().join(format!("k8sup-prune-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for t in 0..4 {
            let f = dir.join(snapshot_name("c", 1_725_184_800 + t));
            std::fs::write(&f, b"x").unwrap();
            std::fs::write(sha_file(&f), b"y").unwrap();
        }
        std::fs::write(dir.join("other.db"), b"z").unwrap();
        let pruned = prune(&dir, "c", 2).unwrap();
        assert_eq!(pruned.len(), 2);
        let left = k8sup_engine::testing::sorted_names(&dir);
        assert_eq!(
            left,
            [
                "c-20240901T100002Z.db",
                "c-20240901T100002Z.db.sha256",
                "c-20240901T100003Z.db",
                "c-20240901T100003Z.db.sha256",
                "other.db"
            ]
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_corrupted_snapshot_is_refused_by_its_sha256() {
        let dir = std::env::temp_dir().join(format!("k8sup-sha-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("c-20240901T100000Z.db");
        std::fs::write(&f, b"snapshot").unwrap();
        std::fs::write(sha_file(&f), format!("{}  x\n", sha256_hex(b"snapshot"))).unwrap();
        assert!(check_file(&f).is_ok());
        std::fs::write(&f, b"snapshoT").unwrap();
        let e = check_file(&f).unwrap_err().to_string();
        assert!(e.contains("sha256 mismatch"), "{e}");
        std::fs::remove_file(sha_file(&f)).unwrap();
        assert!(check_file(&f)
            .unwrap_err()
            .to_string()
            .contains("must be beside it"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_status_of_real_etcd_is_read() {
        // What Debian's etcd-client 3.4.23 printed for a real snapshot
        // (`ETCDCTL_API=3 etcdctl snapshot status snap.db -w json`), and etcdutl 3.5's form.
        let v34 = "{\"hash\":3889990354,\"revision\":2,\"totalKey\":5,\"totalSize\":20480}\n";
        assert_eq!(
            parse_status(v34),
            Some(SnapshotStatus {
                hash: 3_889_990_354,
                revision: 2,
                total_key: 5,
                total_size: 20_480
            })
        );
        assert!(parse_status("Error: file size too small\n").is_none());
    }

    #[test]
    fn members_come_from_the_manifest() {
        let manifest = "spec:\n  containers:\n  - command:\n    - etcd\n    - --data-dir=/var/lib/etcd\n    - --initial-advertise-peer-urls=https://10.0.0.1:2380\n    - --name=m1\n";
        let m = member_of("m1", manifest).unwrap();
        assert_eq!(
            (m.name.as_str(), m.peer_url.as_str(), m.data_dir.as_str()),
            ("m1", "https://10.0.0.1:2380", "/var/lib/etcd")
        );
        assert!(member_of("m1", "kind: Pod\n").is_err());
        assert_eq!(
            parse_status("Deprecated: x\n{\"hash\":1,\"revision\":2,\"totalKey\":3,\"totalSize\":4,\"version\":\"3.5.12\"}\n"),
            Some(SnapshotStatus { hash: 1, revision: 2, total_key: 3, total_size: 4 })
        );
    }
}
