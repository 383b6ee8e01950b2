//! A running lab: bringing its hosts up (in parallel), what tests read from it (addresses,
//! keys, known_hosts, host roots, command logs), and taking it down on `Drop`.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::emu;
use crate::error::{LabError, Result};
use crate::hostfs::{self, HostDirs, HostPlan};
use crate::keys;
use crate::layout::{self, PROXY_PORT, SSH_PORT};
use crate::netns::{self, Network};
use crate::profile::{self, CommandRecord};
use crate::proxy::LatencyProxy;
use crate::skeleton;
use crate::spec::{HostSpec, LabSpec, SudoMode};
use crate::sshd;
use crate::teardown;

/// Name of the optional jump host.
pub const BASTION_NAME: &str = "bastion";

/// How long one sshd may take to accept connections.
const SSHD_READY_TIMEOUT: Duration = Duration::from_secs(30);

/// One lab host as a test sees it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Host {
    pub name: String,
    pub address: Ipv4Addr,
    /// The sshd's own port (always [`SSH_PORT`]).
    pub port: u16,
    /// The resolved spec (count expanded).
    pub spec: HostSpec,
    pub sudo: SudoMode,
    pub product_uuid: String,
    pub mac: String,
    /// The host's directory under the lab directory.
    pub dir: PathBuf,
    /// The host's network namespace (`ip netns` name) in a namespaced lab.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netns: Option<String>,
}

impl Host {
    /// The address of the host's own sshd.
    pub fn ssh_addr(&self) -> SocketAddr {
        SocketAddr::from((self.address, self.port))
    }

    /// The address of the host's latency proxy (only listening after `Lab::with_latency`).
    pub fn proxy_addr(&self) -> SocketAddr {
        SocketAddr::from((self.address, PROXY_PORT))
    }

    /// The host's root filesystem as seen from the machine (the mounted chroot).
    pub fn root_dir(&self) -> PathBuf {
        self.dirs().root()
    }

    /// A path inside the host, e.g. `host.path("/etc/hostname")`.
    pub fn path(&self, in_host: &str) -> PathBuf {
        self.root_dir().join(in_host.trim_start_matches('/'))
    }

    /// The host's sshd log (LogLevel VERBOSE).
    pub fn sshd_log(&self) -> PathBuf {
        self.dirs().sshd_log()
    }

    /// Every emulated command run on this host so far, oldest first.
    pub fn commands(&self) -> Result<Vec<CommandRecord>> {
        let path = self.root_dir().join(profile::COMMANDS_LOG);
        let text = std::fs::read_to_string(&path)
            .map_err(LabError::host_io(&self.name, "read commands.log"))?;
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                serde_json::from_str(l).map_err(|e| LabError::Host {
                    host: self.name.clone(),
                    step: "parse commands.log",
                    message: format!("{e}: {l}"),
                })
            })
            .collect()
    }

    pub(crate) fn dirs(&self) -> HostDirs {
        HostDirs {
            dir: self.dir.clone(),
        }
    }
}

/// What `lab.json` records, so that another process (`k8sup-lab down|status|fault`) can
/// find and control a lab.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct LabRecord {
    pub name: String,
    pub hosts: Vec<Host>,
    pub bastion: Option<Host>,
    pub owner_pid: u32,
}

/// A running lab. Dropping it takes everything down (unless it was detached).
pub struct Lab {
    pub(crate) name: String,
    pub(crate) dir: PathBuf,
    pub(crate) hosts: Vec<Host>,
    pub(crate) bastion: Option<Host>,
    pub(crate) children: Mutex<Vec<Child>>,
    pub(crate) proxy: Option<LatencyProxy>,
    owned: bool,
}

impl std::fmt::Debug for Lab {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lab")
            .field("name", &self.name)
            .field("hosts", &self.hosts.len())
            .finish()
    }
}

/// The lab's cluster directory, under the lab directory.
const CLUSTER_SUBDIR: &str = "cluster";

impl Lab {
    /// Builds and starts every host of `spec`; on error, whatever was built is taken down.
    pub fn up(spec: &LabSpec) -> Result<Lab> {
        sshd::check_prerequisites()?;
        crate::spec::validate_name(&spec.name)?;
        let durations = spec
            .durations
            .as_deref()
            .map(crate::durations::Durations::resolve)
            .transpose()?;
        let specs = spec.expanded_hosts()?;
        let emulator = emu::emulator_binary()?;
        let skeleton = skeleton::ensure_skeleton()?;
        sshd::ensure_privsep_dir()?;

        let (name, dir) = layout::create_lab_dir(&spec.name)?;
        let mut lab = Lab {
            name: name.clone(),
            dir: dir.clone(),
            hosts: Vec::new(),
            bastion: None,
            children: Mutex::new(Vec::new()),
            proxy: None,
            owned: true,
        };
        let total = specs.len() + usize::from(spec.bastion);
        let blocks = layout::claim_blocks(&name, total.div_ceil(layout::HOSTS_PER_BLOCK))?;
        let namespaced = spec.network == Network::Namespaces;
        if namespaced {
            netns::create_bridge(&name, &dir, &blocks)?;
        }

        keys::generate(&lab.private_key(), &format!("k8sup-lab@{name}"))?;
        keys::encrypted_copy(&lab.private_key(), &lab.encrypted_private_key())?;
        let client_pub = keys::public_key(&dir.join("id_ed25519.pub"))?;
        let authorized = dir.join("authorized_keys");
        std::fs::write(&authorized, format!("{client_pub}\n"))
            .map_err(LabError::lab_io(&name, "write authorized_keys"))?;
        let emu_usr = dir.join("emu");
        emu::install_layer(&emulator, &emu_usr)?;
        crate::realpkg::install_layer(&emu_usr)?;
        layout::ensure_private_dir(&dir.join(CLUSTER_SUBDIR))?;
        if let Some(d) = &durations {
            d.install(&dir.join(CLUSTER_SUBDIR))?;
        }

        let mut plans = Vec::with_capacity(total);
        let mut all_specs = specs;
        if spec.bastion {
            all_specs.push(HostSpec::new(BASTION_NAME).roles(&[]));
        }
        let random = RandomState::new();
        for (i, host) in all_specs.into_iter().enumerate() {
            let address = if namespaced {
                netns::host_address(&blocks, i)
            } else {
                layout::host_address(&blocks, i)
            };
            let address = address.ok_or_else(|| LabError::Lab {
                lab: name.clone(),
                step: "assign addresses",
                message: format!("no address for host #{i}"),
            })?;
            let o = address.octets();
            plans.push(HostPlan {
                sudo: host.k8sup_user.unwrap_or(spec.k8sup_user),
                product_uuid: host
                    .product_uuid
                    .clone()
                    .unwrap_or_else(|| random_uuid(&random, &name, &host.name)),
                mac: host
                    .mac
                    .clone()
                    .unwrap_or_else(|| format!("52:54:00:{:02x}:{:02x}:{:02x}", o[1], o[2], o[3])),
                address,
                netns: namespaced.then(|| netns::namespace_name(&name, &host.name)),
                index: i,
                spec: host,
            });
        }
        if namespaced {
            let names = plans.iter().filter_map(|p| p.netns.clone()).collect();
            netns::record_namespaces(&name, &dir, names)?;
        }

        let built = start_hosts(&dir, &blocks, &skeleton, &emu_usr, &authorized, &plans);
        let mut hosts = Vec::new();
        let mut first_error = None;
        for (plan, result) in plans.iter().zip(built) {
            match result {
                Ok(child) => {
                    lab.lock_children().push(child);
                    hosts.push(Host {
                        name: plan.spec.name.clone(),
                        address: plan.address,
                        port: SSH_PORT,
                        spec: plan.spec.clone(),
                        sudo: plan.sudo,
                        product_uuid: plan.product_uuid.clone(),
                        mac: plan.mac.clone(),
                        dir: HostDirs::new(&dir, &plan.spec.name).dir,
                        netns: plan.netns.clone(),
                    });
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        if let Some(e) = first_error {
            return Err(e);
        }
        if spec.bastion {
            lab.bastion = hosts.pop();
        }
        lab.hosts = hosts;
        lab.wait_all_ready()?;
        lab.write_known_hosts()?;
        lab.write_record()?;
        Ok(lab)
    }

    /// Opens a lab started by another process (for `k8sup-lab fault|status`). The returned
    /// value does not take the lab down when dropped.
    pub fn open(name: &str) -> Result<Lab> {
        let dir = layout::labs_dir().join(name);
        let path = dir.join("lab.json");
        let text = std::fs::read_to_string(&path).map_err(|_| LabError::NoSuchLab(name.into()))?;
        let record: LabRecord = serde_json::from_str(&text).map_err(|e| LabError::Lab {
            lab: name.into(),
            step: "read lab.json",
            message: e.to_string(),
        })?;
        Ok(Lab {
            name: record.name,
            dir,
            hosts: record.hosts,
            bastion: record.bastion,
            children: Mutex::new(Vec::new()),
            proxy: None,
            owned: false,
        })
    }

    /// Leaves the lab running after this value is dropped (`k8sup-lab up`); take it down
    /// later with `k8sup-lab down <name>`.
    pub fn detach(mut self) -> String {
        self.owned = false;
        // The sshds outlive us; forget their handles without killing them.
        self.lock_children().clear();
        self.name.clone()
    }

    /// Takes the lab down now, reporting any failure (Drop can only print it).
    pub fn down(mut self) -> Result<()> {
        self.owned = false;
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<()> {
        if let Some(proxy) = self.proxy.take() {
            proxy.stop();
        }
        let mut children = std::mem::take(&mut *self.lock_children());
        for c in &mut children {
            let _ = c.kill();
        }
        let result = teardown::teardown(&self.name, &self.dir);
        for c in &mut children {
            let _ = c.wait();
        }
        result
    }

    pub(crate) fn lock_children(&self) -> std::sync::MutexGuard<'_, Vec<Child>> {
        self.children.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn wait_all_ready(&self) -> Result<()> {
        let mut children = self.lock_children();
        let all = self.hosts.iter().chain(self.bastion.iter());
        for (host, child) in all.zip(children.iter_mut()) {
            sshd::wait_ready(
                &host.name,
                host.ssh_addr(),
                child,
                &host.sshd_log(),
                &host.dirs().sshd_pid(),
                SSHD_READY_TIMEOUT,
            )?;
        }
        Ok(())
    }

    fn write_known_hosts(&self) -> Result<()> {
        let mut text = String::new();
        for host in self.hosts.iter().chain(self.bastion.iter()) {
            let key = keys::public_key(&host.dir.join("ssh_host_ed25519_key.pub"))?;
            text.push_str(&keys::known_hosts_line(
                &host.address.to_string(),
                &[SSH_PORT, PROXY_PORT],
                &key,
            ));
        }
        std::fs::write(self.known_hosts(), text)
            .map_err(LabError::lab_io(&self.name, "write known_hosts"))
    }

    fn write_record(&self) -> Result<()> {
        let record = LabRecord {
            name: self.name.clone(),
            hosts: self.hosts.clone(),
            bastion: self.bastion.clone(),
            owner_pid: std::process::id(),
        };
        let json = serde_json::to_string_pretty(&record).map_err(|e| LabError::Lab {
            lab: self.name.clone(),
            step: "encode lab.json",
            message: e.to_string(),
        })?;
        std::fs::write(self.dir.join("lab.json"), json)
            .map_err(LabError::lab_io(&self.name, "write lab.json"))
    }

    /// The lab's unique name (spec name plus a suffix).
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The lab's directory under /var/lib/k8sup-lab/labs.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
    /// The hosts, in spec order (the bastion is not among them).
    pub fn hosts(&self) -> &[Host] {
        &self.hosts
    }
    /// The jump host, if the spec asked for one.
    pub fn bastion(&self) -> Option<&Host> {
        self.bastion.as_ref()
    }
    /// A host (or the bastion) by name.
    pub fn host(&self, name: &str) -> Result<&Host> {
        self.hosts
            .iter()
            .chain(self.bastion.iter())
            .find(|h| h.name == name)
            .ok_or_else(|| LabError::NoSuchHost(name.into()))
    }
    /// The client's private key (ed25519, no passphrase), accepted by every host for
    /// `root` and `k8sup`.
    pub fn private_key(&self) -> PathBuf {
        self.dir.join("id_ed25519")
    }
    /// The same key encrypted with [`crate::KEY_PASSPHRASE`].
    pub fn encrypted_private_key(&self) -> PathBuf {
        self.dir.join("id_ed25519_encrypted")
    }
    /// A known_hosts file with every host's key (for the sshd port and the proxy port).
    /// The emulated cluster's shared state as seen from the machine (mounted in every host
    /// at [`emu::cluster::CLUSTER_DIR`]); read it with [`emu::cluster::ClusterState::read`].
    pub fn cluster_dir(&self) -> PathBuf {
        self.dir.join(CLUSTER_SUBDIR)
    }

    pub fn known_hosts(&self) -> PathBuf {
        self.dir.join("known_hosts")
    }
    /// The port clients should use: the latency proxy's once `with_latency` was called.
    pub fn client_port(&self) -> u16 {
        if self.proxy.is_some() {
            PROXY_PORT
        } else {
            SSH_PORT
        }
    }

    /// Puts a delaying proxy in front of every host so that a round trip takes `rtt` longer;
    /// clients then connect to [`Lab::client_port`] (inventories do so automatically).
    pub fn with_latency(&mut self, rtt: Duration) -> Result<()> {
        if let Some(old) = self.proxy.take() {
            old.stop();
        }
        let routes: Vec<crate::proxy::Route> = self
            .hosts
            .iter()
            .chain(self.bastion.iter())
            .map(|h| crate::proxy::Route {
                listen: h.proxy_addr(),
                target: h.ssh_addr(),
                netns: h.netns.clone(),
            })
            .collect();
        self.proxy = Some(
            LatencyProxy::start(&routes, rtt / 2).map_err(|e| LabError::Lab {
                lab: self.name.clone(),
                step: "start latency proxy",
                message: e.to_string(),
            })?,
        );
        Ok(())
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if self.owned {
            if let Err(e) = self.shutdown() {
                eprintln!("k8sup-lab: tearing down lab {}: {e}", self.name);
            }
        }
    }
}

fn random_uuid(random: &RandomState, lab: &str, host: &str) -> String {
    let word = |salt: u64| {
        let mut h = random.build_hasher();
        h.write(lab.as_bytes());
        h.write(host.as_bytes());
        h.write_u64(salt);
        h.finish()
    };
    let (a, b) = (word(1), word(2));
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0x0fff,
        ((b >> 48) & 0x3fff) | 0x8000,
        b & 0xffff_ffff_ffff
    )
}

/// Builds, mounts and starts every host, several at a time; results in `plans` order.
fn start_hosts(
    lab_dir: &Path,
    blocks: &[u32],
    skeleton: &Path,
    emu_usr: &Path,
    authorized: &Path,
    plans: &[HostPlan],
) -> Vec<Result<Child>> {
    let next = AtomicUsize::new(0);
    let results: Vec<Mutex<Option<Result<Child>>>> =
        plans.iter().map(|_| Mutex::new(None)).collect();
    let workers = plans.len().clamp(1, 16);
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(plan) = plans.get(i) else { break };
                let result = start_host(lab_dir, blocks, skeleton, emu_usr, authorized, plan);
                *results[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(result);
            });
        }
    });
    results
        .into_iter()
        .zip(plans)
        .map(|(slot, plan)| {
            slot.into_inner()
                .unwrap_or_else(|e| e.into_inner())
                .unwrap_or_else(|| {
                    Err(LabError::Host {
                        host: plan.spec.name.clone(),
                        step: "start host",
                        message: "worker did not run".into(),
                    })
                })
        })
        .collect()
}

fn start_host(
    lab_dir: &Path,
    blocks: &[u32],
    skeleton: &Path,
    emu_usr: &Path,
    authorized: &Path,
    plan: &HostPlan,
) -> Result<Child> {
    let host = plan.spec.name.as_str();
    let dirs = HostDirs::new(lab_dir, host);
    if let Some(ns) = &plan.netns {
        let lab = lab_dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        netns::create_host(&lab, blocks, plan.index, ns, plan.address)?;
    }
    hostfs::build_layers(&dirs, plan)?;
    keys::generate(&dirs.host_key(), &format!("root@{host}")).map_err(|e| LabError::Host {
        host: host.into(),
        step: "generate host key",
        message: e.to_string(),
    })?;
    hostfs::mount(
        &dirs,
        host,
        skeleton,
        emu_usr,
        &lab_dir.join(CLUSTER_SUBDIR),
    )?;
    let config = sshd::config(
        &dirs,
        &plan.address.to_string(),
        SSH_PORT,
        authorized,
        plan.sudo == SudoMode::Absent,
    );
    std::fs::write(dirs.sshd_config(), config)
        .map_err(LabError::host_io(host, "write sshd_config"))?;
    sshd::spawn(host, &dirs, plan.netns.as_deref())
}
