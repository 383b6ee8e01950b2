//! Everything `plan` and `apply` do before the engine takes over: connect to
//! every host, gather its facts on the same connection, refuse to go on when a
//! host cannot be worked on (before anything is changed anywhere), and hand
//! each host to the engine with its template context.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use k8sup_engine::input::{read_capped, InputError};
use k8sup_engine::{Artifact, Family, HostSpec, Platform};
use k8sup_facts::{preflight, CheckKind, DistroFamily, Finding, HostFacts};
use k8sup_inventory::{Host, Inventory};
use k8sup_kube::KubeError;

use crate::connect::ConnectOptions;
use crate::facts::{gather_host_then, Gathered, Outcome};
use crate::fan_out::in_order;
use crate::lock::{HostLockError, LockOrder};

/// Hosts ready for the engine, or the reasons they are not.
pub struct Prepared {
    /// Every selected host, in inventory order, when all of them can be worked on.
    pub hosts: Vec<HostSpec>,
    /// Problems that forbid changing anything: unreachable hosts, sudo that does
    /// not work, and preflight findings no apply can fix.
    pub blocking: Vec<Finding>,
    /// Every ready host's facts, by name (what an upgrade reads versions from).
    pub facts: BTreeMap<String, HostFacts>,
    /// Unreachable hosts the run goes on without (see [`Unreachable`]).
    pub skipped: Vec<Finding>,
    /// Connections to the reachable hosts with `remove = true` (never converged).
    pub removed: Vec<(String, Arc<k8sup_ssh::Session>)>,
    /// The first master's connection, when it is among the hosts: removals and
    /// the cluster's view run there.
    pub first_master: Option<Arc<k8sup_ssh::Session>>,
    /// The output of [`ConnectOptions::first_master_read`] on the first master, when
    /// it ran.
    pub first_master_read: Option<k8sup_ssh::CommandOutput>,
}

/// Which unreachable hosts a run goes on without. Hosts with `remove = true`
/// always: removing a dead host is what removal is for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Unreachable {
    /// Workers (hosts without the master role): `--skip-unreachable`.
    pub skip_workers: bool,
    /// Any host: a plan, which changes nothing, plans the others.
    pub skip_any: bool,
}

impl Unreachable {
    fn skips(&self, host: &Host) -> bool {
        host.remove || self.skip_any || (self.skip_workers && !host.roles.master)
    }
}

/// Preflight checks that stop an apply before it starts. The others (swap on,
/// a duplicate hostname, a cgroup driver to rewrite) are what apply fixes.
pub fn is_blocking(check: CheckKind) -> bool {
    !matches!(
        check,
        CheckKind::Swap | CheckKind::DuplicateHostname | CheckKind::CgroupDriver
    )
}

/// Connects to `hosts` and gathers their facts (one connection each, kept open
/// for the engine), then runs the blocking preflight checks.
pub async fn prepare(inventory: &Inventory, hosts: &[&Host], options: &ConnectOptions) -> Prepared {
    prepare_with(inventory, hosts, options, Unreachable::default()).await
}

/// [`prepare`], going on without the unreachable hosts `unreachable` allows.
pub async fn prepare_with(
    inventory: &Inventory,
    hosts: &[&Host],
    options: &ConnectOptions,
    unreachable: Unreachable,
) -> Prepared {
    let n = options.parallelism(inventory);
    let order = hosts.first().map(|first| LockOrder::new(&first.name));
    let order = order.as_ref();
    let first_name = &inventory.first_master().name;
    let gathered = in_order(hosts, n, |host| {
        let then = options
            .first_master_read
            .as_ref()
            .filter(|_| &host.name == first_name);
        gather_host_then(host, options, order, then)
    })
    .await;
    let (gathered, reads): (Vec<Gathered>, Vec<_>) = gathered.into_iter().unzip();
    let first_master_read = reads.into_iter().flatten().next();

    let mut blocking = Vec::new();
    let mut skipped = Vec::new();
    let mut removed = Vec::new();
    let mut ready = Vec::new();
    for (g, host) in gathered.into_iter().zip(hosts) {
        let finding = |check, message| Finding {
            host: host.name.clone(),
            check,
            message,
        };
        // A host another run holds, or one that could not be locked although sudo
        // works, stops the run like an unreachable one.
        let sudo_problem = matches!(
            &g.outcome,
            Outcome::Facts {
                sudo_problem: Some(_),
                ..
            }
        );
        if let Some(Err(e)) = &g.lock {
            if matches!(e, HostLockError::Held(_)) || !sudo_problem {
                blocking.push(finding(CheckKind::Locked, e.to_string()));
                if let Some(s) = g.session {
                    s.close().await;
                }
                continue;
            }
        }
        match (g.outcome, g.session) {
            (
                Outcome::Facts {
                    sudo_problem: Some(problem),
                    ..
                },
                session,
            ) => {
                blocking.push(finding(CheckKind::Sudo, problem.to_string()));
                if let Some(s) = session {
                    s.close().await;
                }
            }
            (
                Outcome::Facts {
                    facts: _,
                    sudo_problem: None,
                },
                Some(session),
            ) if host.remove => removed.push((host.name.clone(), Arc::new(session))),
            (
                Outcome::Facts {
                    facts,
                    sudo_problem: None,
                },
                Some(session),
            ) => ready.push((*host, *facts, session)),
            (Outcome::Facts { .. }, None) => blocking.push(finding(
                CheckKind::Unreachable,
                "the connection was lost after gathering facts".to_string(),
            )),
            (Outcome::Failed(error), None) if unreachable.skips(host) => {
                skipped.push(finding(CheckKind::Unreachable, error.to_string()));
            }
            (Outcome::Failed(error), session) => {
                blocking.push(finding(CheckKind::Unreachable, error.to_string()));
                if let Some(s) = session {
                    s.close().await;
                }
            }
        }
    }
    let pairs: Vec<(&Host, &HostFacts)> = ready.iter().map(|(h, f, _)| (*h, f)).collect();
    blocking.extend(
        preflight(inventory, &pairs)
            .into_iter()
            .filter(|f| is_blocking(f.check)),
    );
    blocking.sort();
    if !blocking.is_empty() {
        for (_, _, session) in ready {
            session.close().await;
        }
        return Prepared {
            hosts: Vec::new(),
            blocking,
            facts: BTreeMap::new(),
            skipped,
            removed: Vec::new(),
            first_master: None,
            first_master_read: None,
        };
    }
    // The CNI manifest is fetched, checked and patched once, for every host: a file
    // read or a download, so on a blocking thread, not on the runtime's workers (which
    // keep every host's connection alive meanwhile).
    let owned = inventory.clone();
    let manifest = match tokio::task::spawn_blocking(move || cni_manifest(&owned))
        .await
        .map_err(|e| format!("reading the CNI manifest: {e}"))
        .and_then(|read| read.map_err(|e| e.to_string()))
    {
        Ok(m) => m,
        Err(message) => {
            blocking.push(Finding {
                host: inventory.first_master().name.clone(),
                check: CheckKind::Config,
                message,
            });
            None
        }
    };
    let mut specs = Vec::new();
    let mut all_facts = BTreeMap::new();
    let mut first_master = None;
    // The hosts' contexts hold what they have alike once.
    let mut contexts = k8sup_engine::ContextPool::new();
    for (host, facts, session) in ready {
        let session = Arc::new(session);
        if host.name == inventory.first_master().name {
            first_master = Some(session.clone());
        }
        match host_spec(
            inventory,
            host,
            &facts,
            manifest.as_deref(),
            session,
            &mut contexts,
        ) {
            Ok(spec) => specs.push(spec),
            Err(e) => blocking.push(Finding {
                host: host.name.clone(),
                check: CheckKind::Config,
                message: e.to_string(),
            }),
        }
        all_facts.insert(host.name.clone(), facts);
    }
    // Binaries for the hosts, read (or downloaded) once per source, so once per arch:
    // blocking I/O too, on a blocking thread.
    let owned = inventory.clone();
    let loaded = tokio::task::spawn_blocking(move || {
        let mut artifacts = Artifacts::with_cache(download_cache_dir());
        specs
            .into_iter()
            .map(|mut spec| {
                let added = artifacts.add_to(&owned, &mut spec);
                (spec, added)
            })
            .collect::<Vec<_>>()
    })
    .await;
    let mut specs = Vec::new();
    match loaded {
        Ok(loaded) => {
            for (spec, added) in loaded {
                match added {
                    Ok(()) => specs.push(spec),
                    Err(e) => blocking.push(Finding {
                        host: spec.name.clone(),
                        check: CheckKind::Config,
                        message: e.to_string(),
                    }),
                }
            }
        }
        Err(e) => blocking.push(Finding {
            host: inventory.first_master().name.clone(),
            check: CheckKind::Config,
            message: format!("reading the hosts' binaries: {e}"),
        }),
    }
    if !blocking.is_empty() {
        specs.clear();
    }
    Prepared {
        hosts: specs,
        blocking,
        facts: all_facts,
        skipped,
        removed,
        first_master,
        first_master_read,
    }
}

/// Why a host cannot be handed to the engine.
#[derive(Debug, thiserror::Error)]
pub enum HostSpecError {
    #[error(transparent)]
    Facts(#[from] serde_json::Error),
    #[error(transparent)]
    Context(#[from] KubeError),
}

/// Why something k8sup hands the hosts (the CNI manifest, the cri-dockerd program)
/// could not be read, downloaded or used on this machine.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("cannot download {what} {url}: {source}")]
    Download {
        what: String,
        url: String,
        #[source]
        source: Box<ureq::Error>,
    },
    #[error(transparent)]
    Read(#[from] InputError),
    #[error("{what} {from} has sha256 {digest}, but {wanted} was expected: refusing it")]
    Digest {
        what: String,
        /// The file or URL.
        from: String,
        digest: String,
        wanted: String,
    },
    #[error("cni_manifest {from} has sha256 {digest}, but the inventory says {wanted}: refusing to apply it")]
    ManifestDigest {
        from: String,
        digest: String,
        wanted: String,
    },
    #[error("cni_manifest {from} is not text")]
    ManifestNotText { from: String },
    #[error(transparent)]
    Manifest(#[from] KubeError),
    #[error("packages.cri_dockerd {from}: {source}")]
    Archive {
        from: String,
        #[source]
        source: ArchiveError,
    },
    #[error("cri-dockerd is needed (runtime \"docker\") but packages.cri_dockerd is not set")]
    NoCriDockerd,
    /// The error of a source that failed for an earlier host: each source is read
    /// once per run.
    #[error(transparent)]
    Shared(Arc<SourceError>),
}

/// Why a cri-dockerd release archive holds no usable program.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("not a gzip-compressed tar archive: {0}")]
    NotTar(#[source] std::io::Error),
    #[error("bad path in the archive: {0}")]
    BadPath(#[source] std::io::Error),
    #[error("cri-dockerd/cri-dockerd in the archive is not a regular file")]
    NotAFile,
    #[error("cannot read cri-dockerd/cri-dockerd from the archive: {0}")]
    Read(#[source] std::io::Error),
    #[error("cri-dockerd/cri-dockerd in the archive is too large")]
    TooLarge,
    #[error("the archive holds no cri-dockerd/cri-dockerd")]
    Missing,
}

/// A host's role names, as playbooks select hosts by them (`master`, `node`).
pub(crate) fn roles(host: &Host) -> BTreeSet<String> {
    let mut roles = BTreeSet::new();
    if host.roles.master {
        roles.insert("master".to_string());
    }
    if host.roles.node {
        roles.insert("node".to_string());
    }
    roles
}

/// The engine's view of one host: selection data, platform and template context.
fn host_spec(
    inventory: &Inventory,
    host: &Host,
    facts: &HostFacts,
    manifest: Option<&str>,
    transport: Arc<k8sup_ssh::Session>,
    contexts: &mut k8sup_engine::ContextPool,
) -> Result<HostSpec, HostSpecError> {
    let platform = Platform {
        arch: facts
            .arch
            .map_or_else(|| facts.machine.clone(), |a| a.to_string()),
        family: match facts.family {
            Some(DistroFamily::Debian) => Family::Debian,
            Some(DistroFamily::Redhat) => Family::Redhat,
            None => Family::Other,
        },
        distro: facts.os.id.clone(),
        distro_version: facts.os.version_id.clone(),
    };
    let facts_json = serde_json::to_value(facts)?;
    // `manifest` is the inventory's patched CNI manifest; None: the built-in one.
    let context = k8sup_kube::context::template_context(inventory, host, &facts_json, manifest)?;
    Ok(HostSpec {
        name: host.name.clone(),
        roles: roles(host),
        labels: host.labels.clone(),
        first_master: inventory.first_master().name == host.name,
        platform,
        context: contexts.context(context),
        artifacts: BTreeMap::new(),
        transport,
    })
}

/// Fetches the inventory's `cni_manifest` (a file here, or a URL, downloaded
/// once), checks its sha256 when the inventory gives one, and patches it for
/// this cluster. `None` when the inventory names none.
pub fn cni_manifest(inventory: &Inventory) -> Result<Option<String>, SourceError> {
    use k8sup_inventory::ManifestSource;
    let Some(source) = &inventory.cluster.cni_manifest else {
        return Ok(None);
    };
    let (what, bytes, wanted) = match source {
        ManifestSource::File { path, sha256 } => (
            path.display().to_string(),
            read_capped(path, MAX_MANIFEST_BYTES, "cni_manifest")?,
            sha256,
        ),
        ManifestSource::Url { url, sha256 } => (url.clone(), download(url)?, sha256),
    };
    let digest = sha256_hex(&bytes);
    if let Some(wanted) = wanted {
        if *wanted != digest {
            return Err(SourceError::ManifestDigest {
                from: what,
                digest,
                wanted: wanted.clone(),
            });
        }
    }
    let text = String::from_utf8(bytes).map_err(|_| SourceError::ManifestNotText { from: what })?;
    let patch = k8sup_kube::manifest::ManifestPatch::for_inventory(inventory);
    Ok(k8sup_kube::manifest::cni_manifest(
        inventory,
        Some(&text),
        &patch,
    )?)
}

/// The largest CNI manifest k8sup reads or downloads (Calico's is ~300 KiB).
const MAX_MANIFEST_BYTES: u64 = 16 * 1024 * 1024;

/// Downloads `url` on the controller (at most [`MAX_MANIFEST_BYTES`]).
fn download(url: &str) -> Result<Vec<u8>, SourceError> {
    download_limited(url, "cni_manifest", MAX_MANIFEST_BYTES)
}

/// Downloads `url` on the controller, at most `limit` bytes; `what` names it in errors.
fn download_limited(url: &str, what: &str, limit: u64) -> Result<Vec<u8>, SourceError> {
    let fail = |source| SourceError::Download {
        what: what.to_string(),
        url: url.to_string(),
        source: Box::new(source),
    };
    let response = ureq::get(url).call().map_err(fail)?;
    response
        .into_body()
        .with_config()
        .limit(limit)
        .read_to_vec()
        .map_err(fail)
}

/// The name the default playbook uploads cri-dockerd under (`artifact = "cri-dockerd"`).
pub const CRI_DOCKERD_ARTIFACT: &str = "cri-dockerd";

/// The largest cri-dockerd archive or program k8sup reads (releases are ~20 MiB).
const CRI_DOCKERD_LIMIT: u64 = 256 * 1024 * 1024;

/// Where downloads with a known sha256 are kept on the controller, by digest:
/// `$K8SUP_CACHE_DIR`, else `$XDG_CACHE_HOME/k8sup`, else `~/.cache/k8sup`, then
/// `downloads/`. `None` without any of these variables.
pub fn download_cache_dir() -> Option<std::path::PathBuf> {
    use std::path::PathBuf;
    let base = std::env::var_os("K8SUP_CACHE_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("XDG_CACHE_HOME").map(|d| PathBuf::from(d).join("k8sup")))
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/k8sup")))?;
    Some(base.join("downloads"))
}

/// The binaries hosts get from the controller, each read once per source (the
/// source names the arch: `{arch}` is filled in per host).
#[derive(Default)]
struct Artifacts {
    by_source: BTreeMap<String, Result<Artifact, Arc<SourceError>>>,
    /// Downloads whose sha256 is known are kept here by digest, across runs.
    cache: Option<std::path::PathBuf>,
}

impl Artifacts {
    fn with_cache(cache: Option<std::path::PathBuf>) -> Artifacts {
        Artifacts {
            by_source: BTreeMap::new(),
            cache,
        }
    }

    /// Registers the artifacts `spec`'s host needs: cri-dockerd when Docker needs
    /// it, from `packages.cri_dockerd` (a release archive, a URL or a file here)
    /// or, with `packages.source = "binary"`, `binary_dir/<arch>/cri-dockerd`.
    fn add_to(&mut self, inventory: &Inventory, spec: &mut HostSpec) -> Result<(), SourceError> {
        if !inventory.needs_cri_dockerd() {
            return Ok(());
        }
        let runtime = &spec.context["runtime"];
        let source = runtime["cri_dockerd_source"].as_str().unwrap_or_default();
        let sha256 = runtime["cri_dockerd_sha256"]
            .as_str()
            .filter(|s| !s.is_empty());
        let artifact = if !source.is_empty() {
            let cache = self.cache.clone();
            let key = format!("archive:{source} sha256:{}", sha256.unwrap_or("-"));
            self.once(key, || {
                let archive = match sha256 {
                    Some(sha) => read_verified(cache.as_deref(), source, sha, "cri-dockerd")?,
                    None => read_source(source, "packages.cri_dockerd")?,
                };
                cri_dockerd_from_archive(&archive).map_err(|e| SourceError::Archive {
                    from: source.to_string(),
                    source: e,
                })
            })?
        } else if let Some(dir) = &inventory.packages.binary_dir {
            // The declared arch, else the facts' (as the template context says).
            let arch = spec.context["host"]["arch"]
                .as_str()
                .unwrap_or(&spec.platform.arch);
            let path = dir.join(arch).join("cri-dockerd");
            self.once(format!("binary:{}", path.display()), || {
                Ok(read_capped(&path, CRI_DOCKERD_LIMIT, "cri-dockerd")?)
            })?
        } else {
            return Err(SourceError::NoCriDockerd);
        };
        spec.artifacts
            .insert(CRI_DOCKERD_ARTIFACT.to_string(), artifact);
        Ok(())
    }
}

impl Artifacts {
    /// The artifact under `key`, loaded the first time only: a source that failed
    /// fails again for the next host without being read again.
    fn once(
        &mut self,
        key: String,
        load: impl FnOnce() -> Result<Vec<u8>, SourceError>,
    ) -> Result<Artifact, SourceError> {
        self.by_source
            .entry(key)
            .or_insert_with(|| load().map(Artifact::new).map_err(Arc::new))
            .clone()
            .map_err(SourceError::Shared)
    }
}

/// The bytes of `source`, which must have sha256 `wanted`: from the cache (a
/// directory of files named by their sha256) when it holds them, else read or
/// downloaded, checked, and then cached. A file that does not match is refused,
/// naming both digests; nothing is cached then.
fn read_verified(
    cache: Option<&std::path::Path>,
    source: &str,
    wanted: &str,
    what: &str,
) -> Result<Vec<u8>, SourceError> {
    let cached = cache.map(|dir| dir.join(wanted));
    if let Some(bytes) = cached.as_ref().and_then(|path| std::fs::read(path).ok()) {
        // A damaged cache entry is downloaded again, not trusted.
        if sha256_hex(&bytes) == wanted {
            return Ok(bytes);
        }
    }
    let bytes = read_source(source, what)?;
    let digest = sha256_hex(&bytes);
    if digest != wanted {
        return Err(SourceError::Digest {
            what: what.to_string(),
            from: source.to_string(),
            digest,
            wanted: wanted.to_string(),
        });
    }
    if let Some(path) = cached {
        // The cache only saves a download: a cache that cannot be written
        // (read-only home, full disk) does not stop the run.
        let _ = store_atomically(&path, &bytes);
    }
    Ok(bytes)
}

/// Lowercase hex sha256 of `bytes`.
fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Writes `bytes` to `path` through a temporary file and a rename, so that a
/// reader never sees half a file.
fn store_atomically(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(std::path::Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(".partial-{}", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

/// The bytes of `source`: downloaded when it is an http(s) URL, else read from
/// this machine.
fn read_source(source: &str, what: &str) -> Result<Vec<u8>, SourceError> {
    if source.starts_with("https://") || source.starts_with("http://") {
        return download_limited(source, what, CRI_DOCKERD_LIMIT);
    }
    let path = source.strip_prefix("file://").unwrap_or(source);
    Ok(read_capped(
        std::path::Path::new(path),
        CRI_DOCKERD_LIMIT,
        what,
    )?)
}

/// The program `cri-dockerd/cri-dockerd` in a cri-dockerd release archive
/// (`cri-dockerd-<version>.<arch>.tgz`: a gzip-compressed tar).
pub fn cri_dockerd_from_archive(archive: &[u8]) -> Result<Vec<u8>, ArchiveError> {
    use std::io::Read;
    let gz = flate2::read::GzDecoder::new(archive);
    let mut tar = tar::Archive::new(gz);
    let entries = tar.entries().map_err(ArchiveError::NotTar)?;
    for entry in entries {
        let entry = entry.map_err(ArchiveError::NotTar)?;
        let path = entry.path().map_err(ArchiveError::BadPath)?.into_owned();
        let wanted = path
            .components()
            .filter(|c| !matches!(c, std::path::Component::CurDir))
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            == ["cri-dockerd", "cri-dockerd"];
        if !wanted {
            continue;
        }
        if !entry.header().entry_type().is_file() {
            return Err(ArchiveError::NotAFile);
        }
        let mut program = Vec::new();
        entry
            .take(CRI_DOCKERD_LIMIT + 1)
            .read_to_end(&mut program)
            .map_err(ArchiveError::Read)?;
        if program.len() as u64 > CRI_DOCKERD_LIMIT {
            return Err(ArchiveError::TooLarge);
        }
        return Ok(program);
    }
    Err(ArchiveError::Missing)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tgz(files: &[(&str, &[u8])]) -> Vec<u8> {
        let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let mut builder = tar::Builder::new(gz);
        for (path, data) in files {
            let mut header = tar::Header::new_gnu();
            header.set_size(data.len() as u64);
            header.set_mode(0o755);
            header.set_cksum();
            builder
                .append_data(&mut header, path, *data)
                .expect("append");
        }
        builder.into_inner().expect("tar").finish().expect("gzip")
    }

    #[test]
    fn the_program_is_taken_from_a_release_archive() {
        let archive = tgz(&[
            ("cri-dockerd/LICENSE", b"Apache"),
            ("cri-dockerd/cri-dockerd", b"\x7fELF binary"),
        ]);
        assert_eq!(
            cri_dockerd_from_archive(&archive).unwrap(),
            b"\x7fELF binary"
        );
        let dotted = tgz(&[("./cri-dockerd/cri-dockerd", b"#!/bin/sh\n")]);
        assert_eq!(cri_dockerd_from_archive(&dotted).unwrap(), b"#!/bin/sh\n");
    }

    #[test]
    fn archives_without_the_program_or_not_archives_are_refused() {
        let other = tgz(&[("cri-dockerd/README.md", b"hi"), ("cri-dockerd", b"x")]);
        assert_eq!(
            cri_dockerd_from_archive(&other).unwrap_err().to_string(),
            "the archive holds no cri-dockerd/cri-dockerd"
        );
        let err = cri_dockerd_from_archive(b"plain text, not gzip")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("not a gzip-compressed tar archive"),
            "{err}"
        );
    }

    #[test]
    fn local_sources_are_read_and_missing_ones_named() {
        let dir = tempfile::tempdir().expect("temp");
        let path = dir.path().join("cri-dockerd-0.3.15.amd64.tgz");
        std::fs::write(&path, tgz(&[("cri-dockerd/cri-dockerd", b"prog")])).expect("write");
        let bytes = read_source(path.to_str().unwrap(), "packages.cri_dockerd").unwrap();
        assert_eq!(cri_dockerd_from_archive(&bytes).unwrap(), b"prog");
        let missing = dir.path().join("nope.tgz");
        let err = read_source(missing.to_str().unwrap(), "packages.cri_dockerd")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("cannot read packages.cri_dockerd "),
            "{err}"
        );
    }

    /// Serves `body` over HTTP on 127.0.0.1 for every request; counts them.
    fn serve(body: Vec<u8>) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
        let (url, hits, _) = serve_logged(body);
        (url, hits)
    }

    /// Requested paths, in order.
    type Paths = std::sync::Arc<std::sync::Mutex<Vec<String>>>;

    /// [`serve`], keeping the path of every request.
    fn serve_logged(
        body: Vec<u8>,
    ) -> (
        String,
        std::sync::Arc<std::sync::atomic::AtomicUsize>,
        Paths,
    ) {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!(
            "http://{}/cri-dockerd-0.3.15.amd64.tgz",
            listener.local_addr().unwrap()
        );
        let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = hits.clone();
        let paths = Paths::default();
        let log = paths.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let mut request = [0u8; 4096];
                let n = stream.read(&mut request).unwrap_or(0);
                let line = String::from_utf8_lossy(&request[..n]).into_owned();
                let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
                log.lock().expect("log").push(path);
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(&body);
            }
        });
        (url, hits, paths)
    }

    #[test]
    fn urls_are_downloaded_on_the_controller() {
        let (url, hits) = serve(tgz(&[("cri-dockerd/cri-dockerd", b"from the web")]));
        let bytes = read_source(&url, "packages.cri_dockerd").unwrap();
        assert_eq!(cri_dockerd_from_archive(&bytes).unwrap(), b"from the web");
        assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    fn docker_inventory(cri_dockerd: &str) -> Inventory {
        docker_inventory_with(&format!("cri_dockerd = \"{cri_dockerd}\""))
    }

    /// A Docker inventory of three hosts (amd64, amd64, arm64) with `packages`.
    fn docker_inventory_with(packages: &str) -> Inventory {
        let text = format!(
            r#"
[cluster]
name = "d"
kubernetes_version = "1.30.4"
runtime = "docker"

[packages]
{packages}

[[hosts]]
name = "m1"
address = "192.168.56.10"
roles = ["master", "node"]
arch = "amd64"

[[hosts]]
name = "w1"
address = "192.168.56.11"
roles = ["node"]
arch = "amd64"

[[hosts]]
name = "w2"
address = "192.168.56.12"
roles = ["node"]
arch = "arm64"
"#
        );
        let path = std::path::Path::new("/test/inventory.toml");
        Inventory::from_bytes(
            path,
            text.as_bytes(),
            &k8sup_inventory::LoadContext::for_file(path),
        )
        .expect("inventory")
    }

    #[test]
    fn a_manifest_from_a_device_is_read_with_a_cap() {
        let text = "[cluster]\nname = \"c\"\nkubernetes_version = \"1.30\"\ncni = \"calico\"\ncni_manifest = \"/dev/zero\"\n\n[[hosts]]\nname = \"m1\"\naddress = \"10.0.0.1\"\nroles = [\"master\"]\n";
        let path = std::path::Path::new("/test/inventory.toml");
        let inventory = Inventory::from_bytes(
            path,
            text.as_bytes(),
            &k8sup_inventory::LoadContext::for_file(path),
        )
        .expect("inventory");
        assert_eq!(
            cni_manifest(&inventory).unwrap_err().to_string(),
            "cni_manifest /dev/zero is larger than 16 MiB: k8sup reads no more of it"
        );
    }

    fn spec_for(inventory: &Inventory, host: &Host) -> HostSpec {
        let facts = serde_json::json!({ "os": { "id": "ubuntu", "version_id": "22.04" } });
        HostSpec {
            name: host.name.clone(),
            roles: BTreeSet::new(),
            labels: BTreeMap::new(),
            first_master: false,
            platform: Platform {
                arch: "amd64".into(),
                family: Family::Debian,
                distro: "ubuntu".into(),
                distro_version: "22.04".into(),
            },
            context: k8sup_kube::context::template_context(inventory, host, &facts, None)
                .expect("context")
                .into(),
            artifacts: BTreeMap::new(),
            transport: Arc::new(k8sup_engine::testing::LocalTransport::new(&host.name)),
        }
    }

    #[test]
    fn each_arch_gets_its_program_read_once() {
        use std::sync::atomic::Ordering;
        let (amd_url, amd_hits) = serve(tgz(&[("cri-dockerd/cri-dockerd", b"amd64 program")]));
        let (arm_url, arm_hits) = serve(tgz(&[("cri-dockerd/cri-dockerd", b"arm64 program")]));
        // One URL pattern; {arch} picks the server.
        let amd_base = amd_url.trim_end_matches("/cri-dockerd-0.3.15.amd64.tgz");
        let inventory = docker_inventory(&format!("{amd_base}/cri-dockerd-0.3.15.{{arch}}.tgz"));
        let mut artifacts = Artifacts::default();
        let mut programs = Vec::new();
        for host in inventory.hosts.iter().filter(|h| h.name != "w2") {
            let mut spec = spec_for(&inventory, host);
            artifacts.add_to(&inventory, &mut spec).expect("artifact");
            programs.push(spec.artifacts[CRI_DOCKERD_ARTIFACT].bytes().to_vec());
        }
        assert_eq!(
            programs,
            [b"amd64 program".to_vec(), b"amd64 program".to_vec()]
        );
        assert_eq!(
            amd_hits.load(Ordering::SeqCst),
            1,
            "downloaded once for amd64"
        );

        let arm = docker_inventory(&arm_url.replace("amd64", "{arch}"));
        let w2 = arm.host("w2").expect("w2");
        let mut spec = spec_for(&arm, w2);
        artifacts.add_to(&arm, &mut spec).expect("artifact");
        assert_eq!(
            spec.artifacts[CRI_DOCKERD_ARTIFACT].bytes(),
            b"arm64 program"
        );
        assert_eq!(arm_hits.load(Ordering::SeqCst), 1);

        // An archive without the program stops the run, naming the source.
        let (bad_url, _) = serve(tgz(&[("README.md", b"hi")]));
        let bad = docker_inventory(&bad_url);
        let mut spec = spec_for(&bad, bad.first_master());
        let e = artifacts.add_to(&bad, &mut spec).unwrap_err().to_string();
        assert_eq!(
            e,
            format!("packages.cri_dockerd {bad_url}: the archive holds no cri-dockerd/cri-dockerd")
        );
    }

    #[test]
    fn the_pinned_release_is_fetched_from_the_files_mirror_checked_and_cached() {
        use std::sync::atomic::Ordering;
        let archive = tgz(&[("cri-dockerd/cri-dockerd", b"pinned program")]);
        let digest = sha256_hex(&archive);
        let (url, hits, paths) = serve_logged(archive);
        let mirror = url.trim_end_matches("/cri-dockerd-0.3.15.amd64.tgz");
        let cache = tempfile::tempdir().expect("temp");

        // Nothing about cri-dockerd: the release pinned for 1.30, whose real sha256
        // the served archive does not have. Refused, naming both digests.
        let plain = docker_inventory_with(&format!("files_mirror = \"{mirror}\""));
        let mut artifacts = Artifacts::with_cache(Some(cache.path().to_path_buf()));
        let mut spec = spec_for(&plain, plain.first_master());
        let e = artifacts.add_to(&plain, &mut spec).unwrap_err().to_string();
        let pinned = "4779b7c3663f002871e79ecf6aa8eb48d0bb74df035baecf56b816deb21d12c4";
        assert!(
            e.contains(&format!("has sha256 {digest}, but {pinned} was expected")),
            "{e}"
        );
        assert_eq!(
            paths.lock().unwrap().as_slice(),
            ["/github.com/Mirantis/cri-dockerd/releases/download/v0.3.15/cri-dockerd-0.3.15.amd64.tgz"]
        );
        assert!(spec.artifacts.is_empty());
        assert_eq!(std::fs::read_dir(cache.path()).map_or(0, |d| d.count()), 0);

        // The inventory's checksum for the pinned release: accepted, and kept by digest.
        let own = docker_inventory_with(&format!(
            "files_mirror = \"{mirror}\"\ncri_dockerd_sha256 = {{ amd64 = \"{digest}\" }}"
        ));
        let mut spec = spec_for(&own, own.first_master());
        artifacts.add_to(&own, &mut spec).expect("verified");
        assert_eq!(
            spec.artifacts[CRI_DOCKERD_ARTIFACT].bytes(),
            b"pinned program"
        );
        assert!(cache.path().join(&digest).is_file());
        assert_eq!(hits.load(Ordering::SeqCst), 2);

        // A later run takes it from the cache: no download.
        let mut next_run = Artifacts::with_cache(Some(cache.path().to_path_buf()));
        let mut spec = spec_for(&own, own.first_master());
        next_run.add_to(&own, &mut spec).expect("cached");
        assert_eq!(hits.load(Ordering::SeqCst), 2);

        // A damaged cache entry is not trusted: downloaded again.
        std::fs::write(cache.path().join(&digest), b"rotten").unwrap();
        let mut spec = spec_for(&own, own.first_master());
        Artifacts::with_cache(Some(cache.path().to_path_buf()))
            .add_to(&own, &mut spec)
            .expect("downloaded again");
        assert_eq!(hits.load(Ordering::SeqCst), 3);
    }
}
