//! The rolling Kubernetes upgrade that `plan` shows and `apply` carries out when the
//! inventory's `kubernetes_version` is newer than what the cluster runs.
//!
//! What the cluster runs is read before anything changes: the control plane's
//! version from the first master that has one (its facts), each node's kubelet
//! version and state from the API, and the nodes an earlier, stopped upgrade left
//! cordoned (markers on that master). The rules of `k8sup_kube::upgrade` give the
//! hops; each hop is carried out step by step in the order of
//! [`k8sup_kube::upgrade::steps`] (the first master, each other master, the workers
//! in batches of `max_unavailable`, those left cordoned first). A step:
//!
//! 1. the upgrade playbook's `prepare` phase on its hosts (the repository of the
//!    minor, the version asked of the package manager, kubeadm, `kubeadm upgrade plan`);
//! 2. on the first master, while its control plane is older than the hop, an etcd
//!    snapshot streamed to the controller (`crate::etcd::backup_over`), then the
//!    `kubeadm` phase (`kubeadm upgrade apply`, or `kubeadm upgrade node` elsewhere);
//! 3. each host marked on the first master (`/var/lib/k8sup/upgrade/cordoned/NODE`),
//!    then drained (or only cordoned) from there;
//! 4. the `kubelet` phase on the hosts whose drain succeeded;
//! 5. each of them Ready at the hop's version, uncordoned and unmarked.
//!
//! A step starts only once the one before it is Ready and uncordoned, so no more
//! than one step's hosts are ever cordoned. Every playbook task is guarded by the
//! state it creates, and the markers say which nodes k8sup cordoned: a run stopped
//! anywhere (a drain a PodDisruptionBudget blocks, a killed controller) is resumed by
//! the next apply at the node where it stopped, without doing anything twice.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::join_all;
use k8sup_engine::{
    Engine, EngineError, EngineEvent, EngineOptions, EventSink, HostOutcome, HostPlan, HostSpec,
    Playbook, PlaybookError, TaskPlan, TaskStatus, TemplateSet,
};
use k8sup_facts::HostFacts;
use k8sup_inventory::{Host, Inventory, KubeVersion};
use k8sup_kube::upgrade::{self as rules, Phase, UpgradeError};
use k8sup_shell::{Script, ShellArg};
use k8sup_ssh::{RunOptions, Transport};
use serde_json::Value;

use crate::etcd::{backup_over, BackupOptions};

/// Where the upgrade playbook's ledger lives on each host, beside the converge's.
pub const UPGRADE_STATE_PATH: &str = "/var/lib/k8sup/upgrade.json";

/// Where the first master keeps the names of the nodes an upgrade cordoned.
const CORDONED_DIR: &str = "/var/lib/k8sup/upgrade/cordoned";

const KUBECTL: &str = "kubectl --kubeconfig /etc/kubernetes/admin.conf";

/// How long a node may take to be Ready at the new version after its kubelet restarted.
const READY_TIMEOUT: Duration = Duration::from_secs(600);

/// Why an upgrade did not happen or stopped; each names where.
#[derive(Debug, thiserror::Error)]
pub enum UpgradeFailure {
    #[error("{0}; nothing was changed on any host")]
    Refused(#[from] UpgradeError),
    #[error("{host}: not connected")]
    NotConnected { host: String },
    #[error("{host}: not in the inventory")]
    NotInInventory { host: String },
    #[error("{host}: no facts")]
    NoFacts { host: String },
    /// The host's template context for the hop could not be made.
    #[error("{host}: {source}")]
    Context {
        host: String,
        #[source]
        source: k8sup_kube::KubeError,
    },
    #[error("{host}: {source}")]
    FactsJson {
        host: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("{host}: cannot read the cluster's nodes: {why}")]
    ClusterRead { host: String, why: String },
    #[error("{host}: the etcd snapshot before `kubeadm upgrade apply` failed: {source}")]
    Snapshot {
        host: String,
        #[source]
        source: crate::etcd::EtcdError,
    },
    /// The check whether the control plane is already at the hop could not run.
    #[error("{host}: {source}")]
    Check {
        host: String,
        #[source]
        source: Box<k8sup_ssh::CommandError>,
    },
    /// A task of the upgrade playbook failed: the engine's message (it names the task,
    /// the command and what it printed), redacted.
    #[error("{host}: {message}")]
    Task { host: String, message: String },
    #[error(
        "{}: not Ready at v{hop} {} after its kubelet restarted; left cordoned: run apply again once it is",
        hosts.join(", "),
        humantime::format_duration(*after)
    )]
    NotReady {
        hosts: Vec<String>,
        hop: KubeVersion,
        after: Duration,
    },
    #[error("{host}: uncordon failed: {why}")]
    Uncordon { host: String, why: String },
    #[error(
        "the drain is blocked: {why}; {} left cordoned. Remove what blocks it \
         (or raise [upgrade] drain_timeout) and run apply again: the upgrade resumes there",
        hosts.join(", ")
    )]
    Drain {
        /// The nodes whose drain failed, each left cordoned.
        hosts: Vec<String>,
        /// Per node, what kept it from draining.
        why: String,
    },
    #[error("{host}: {source}")]
    Nodes {
        host: String,
        #[source]
        source: NodeListError,
    },
    #[error("the upgrade playbook: {0}")]
    Playbook(#[from] PlaybookError),
    #[error("the upgrade playbook: {0}")]
    Engine(#[source] EngineError),
    /// The engine could not run the playbook: its message, redacted.
    #[error("the upgrade playbook: {0}")]
    Apply(String),
    #[error("the upgrade playbook: {0:?} holds a NUL byte")]
    NulByte(String),
}

impl UpgradeFailure {
    /// The hosts the upgrade stopped at, as this failure names them (none when it is
    /// about the whole run).
    pub fn hosts(&self) -> Vec<String> {
        use UpgradeFailure as F;
        match self {
            F::NotConnected { host }
            | F::NotInInventory { host }
            | F::NoFacts { host }
            | F::Context { host, .. }
            | F::FactsJson { host, .. }
            | F::ClusterRead { host, .. }
            | F::Snapshot { host, .. }
            | F::Check { host, .. }
            | F::Task { host, .. }
            | F::Uncordon { host, .. }
            | F::Nodes { host, .. } => vec![host.clone()],
            F::NotReady { hosts, .. } | F::Drain { hosts, .. } => hosts.clone(),
            F::Refused(_) | F::Playbook(_) | F::Engine(_) | F::Apply(_) | F::NulByte(_) => {
                Vec::new()
            }
        }
    }
}

/// Why a node was not drained (or cordoned): it is left cordoned.
#[derive(Debug, thiserror::Error)]
enum DrainError {
    #[error(transparent)]
    Upgrade(#[from] UpgradeFailure),
    #[error("cannot record on {master} that it is cordoned: {why}")]
    Mark { master: String, why: String },
    #[error("`kubectl drain` failed: {0}")]
    Failed(String),
    #[error(
        "a PodDisruptionBudget (or the pods' own shutdown) kept {} from being evicted within drain_timeout {}",
        pods.join(", "),
        humantime::format_duration(*timeout)
    )]
    Blocked {
        pods: Vec<String>,
        timeout: Duration,
    },
}

/// A node as the API reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeStatus {
    /// The version its kubelet reports (`status.nodeInfo.kubeletVersion`).
    pub kubelet: Option<KubeVersion>,
    pub ready: bool,
    pub unschedulable: bool,
}

/// What the cluster runs and what the inventory asks for.
#[derive(Debug, Clone)]
pub struct Upgrade {
    /// The master the cluster was read from.
    pub master: String,
    pub control_plane: KubeVersion,
    pub to: KubeVersion,
    /// The versions to go through, from the oldest the cluster runs (control plane
    /// or kubelet); empty when every node is at `to`.
    pub hops: Vec<KubeVersion>,
    pub nodes: BTreeMap<String, NodeStatus>,
    /// Nodes an earlier upgrade run cordoned and did not uncordon.
    pub cordoned: BTreeSet<String>,
}

impl Upgrade {
    /// Whether apply has anything of the upgrade to do.
    pub fn pending(&self) -> bool {
        !self.hops.is_empty() || !self.cordoned.is_empty()
    }

    /// The hosts of `step` that still need `hop`: registered nodes whose kubelet is
    /// older, those k8sup left cordoned, and the first master while its control
    /// plane is older.
    fn needing<'h>(&self, step: &[&'h Host], hop: KubeVersion, first: &str) -> Vec<&'h Host> {
        step.iter()
            .copied()
            .filter(|h| {
                let Some(node) = self.nodes.get(&h.name) else {
                    // Not a node yet: the converge joins it at the new version.
                    return false;
                };
                node.kubelet.is_none_or(|k| k < hop)
                    || self.cordoned.contains(&h.name)
                    || (h.name == first && self.control_plane < hop)
            })
            .collect()
    }
}

/// The hosts of each step, in order ([`rules::steps`]), with the workers an earlier
/// run left cordoned first: they are out already, and taking others before them
/// would put more than `max_unavailable` out at once.
pub fn order<'i>(inventory: &'i Inventory, cordoned: &BTreeSet<String>) -> Vec<Vec<&'i Host>> {
    let mut steps = rules::steps(inventory);
    let masters = inventory.masters().count();
    let workers: Vec<&Host> = steps.split_off(masters.min(steps.len())).concat();
    let (mut first, rest): (Vec<&Host>, Vec<&Host>) = workers
        .into_iter()
        .partition(|h| cordoned.contains(&h.name));
    first.extend(rest);
    let batch = inventory.upgrade.max_unavailable.of(first.len());
    steps.extend(first.chunks(batch.max(1)).map(<[&Host]>::to_vec));
    steps
}

/// Why `kubectl get nodes -o json` could not be read.
#[derive(Debug, thiserror::Error)]
pub enum NodeListError {
    #[error("kubectl get nodes printed no node list: {0}")]
    NotJson(#[from] serde_json::Error),
    #[error("kubectl get nodes printed no items")]
    NoItems,
}

/// Parses `kubectl get nodes -o json`.
pub fn parse_nodes(text: &str) -> Result<BTreeMap<String, NodeStatus>, NodeListError> {
    let list: Value = serde_json::from_str(text)?;
    let items = list["items"].as_array().ok_or(NodeListError::NoItems)?;
    let mut nodes = BTreeMap::new();
    for item in items {
        let Some(name) = item["metadata"]["name"].as_str() else {
            continue;
        };
        let ready = item["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["type"] == "Ready" && c["status"] == "True");
        nodes.insert(
            name.to_string(),
            NodeStatus {
                kubelet: item["status"]["nodeInfo"]["kubeletVersion"]
                    .as_str()
                    .and_then(rules::running_version),
                ready,
                unschedulable: item["spec"]["unschedulable"].as_bool().unwrap_or(false),
            },
        );
    }
    Ok(nodes)
}

/// The pods a blocked `kubectl drain` names (`pods/"web-0" -n "default"`), as
/// `namespace/name`, each once.
pub fn blocked_pods(stderr: &str) -> Vec<String> {
    let mut pods = Vec::new();
    for line in stderr.lines() {
        let mut rest = line;
        while let Some(at) = rest.find("pods/\"") {
            rest = &rest[at + 6..];
            let Some(end) = rest.find('"') else { break };
            let name = &rest[..end];
            rest = &rest[end..];
            let namespace = rest
                .strip_prefix("\" -n \"")
                .and_then(|r| r.split('"').next())
                .unwrap_or("default");
            let pod = format!("{namespace}/{name}");
            if !pods.contains(&pod) {
                pods.push(pod);
            }
        }
    }
    pods
}

fn word(text: &str) -> Result<ShellArg, UpgradeFailure> {
    ShellArg::new(text).map_err(|_| UpgradeFailure::NulByte(text.to_string()))
}

/// Runs `script` on `host`; its stdout when it succeeds, else what it said.
async fn run(
    transport: &dyn Transport,
    script: &Script,
    timeout: Duration,
) -> Result<String, (String, String)> {
    let out = transport
        .run_with(
            script,
            RunOptions {
                timeout: Some(timeout),
                ..Default::default()
            },
        )
        .await
        .map_err(|e| (e.to_string(), String::new()))?;
    if out.success() {
        Ok(out.stdout_text())
    } else {
        let stderr = out.stderr_text();
        let last = crate::etcd::last_line(&stderr).to_string();
        Err((
            if last.is_empty() {
                out.status_text()
            } else {
                last
            },
            stderr,
        ))
    }
}

/// Everything an upgrade works with.
pub struct Upgrader<'a> {
    pub inventory: &'a Inventory,
    /// Every host, connected, as prepared for the converge (context at the target).
    pub hosts: &'a [HostSpec],
    pub facts: &'a BTreeMap<String, HostFacts>,
    pub templates: &'a TemplateSet,
    /// Values to keep out of every output (the become password...).
    pub secrets: Vec<String>,
    /// Where the pre-upgrade etcd snapshots go on this machine.
    pub snapshots: PathBuf,
    pub parallelism: usize,
    /// One line of progress.
    pub say: Arc<dyn Fn(String) + Send + Sync>,
}

impl Upgrader<'_> {
    fn transport(&self, host: &str) -> Result<&dyn Transport, UpgradeFailure> {
        self.hosts
            .iter()
            .find(|h| h.name == host)
            .map(|h| &*h.transport as &dyn Transport)
            .ok_or_else(|| UpgradeFailure::NotConnected {
                host: host.to_string(),
            })
    }

    /// The nodes of the inventory the first master records as cordoned by an upgrade
    /// (its facts read `/var/lib/k8sup/upgrade/cordoned`).
    fn cordon_markers(&self) -> Vec<String> {
        self.facts
            .get(&self.inventory.first_master().name)
            .map(|f| f.upgrade_cordoned.clone())
            .unwrap_or_default()
            .into_iter()
            .filter(|n| self.inventory.host(n).is_some())
            .collect()
    }

    /// Reads what the cluster runs and checks the rules. `None`: no control plane
    /// yet (an install, not an upgrade).
    pub async fn assess(&self) -> Result<Option<Upgrade>, UpgradeFailure> {
        let found = self.inventory.masters().find_map(|m| {
            let facts = self.facts.get(&m.name)?;
            let version = facts.installed.control_plane.as_deref()?;
            Some((m, rules::running_version(version)?))
        });
        let Some((master, control_plane)) = found else {
            return Ok(None);
        };
        let to = self.inventory.cluster.kubernetes_version;
        // The nightly no-op costs no extra round trip: when the control plane, every
        // installed kubelet and no upgrade left to resume say the cluster is at the
        // version, the API is not asked.
        let settled = control_plane == to
            && self.cordon_markers().is_empty()
            && self.facts.values().all(|f| {
                f.installed
                    .kubelet
                    .as_deref()
                    .is_none_or(|k| rules::running_version(k) == Some(to))
            });
        if settled {
            return Ok(Some(Upgrade {
                master: master.name.clone(),
                control_plane,
                to,
                hops: Vec::new(),
                nodes: BTreeMap::new(),
                cordoned: BTreeSet::new(),
            }));
        }
        let transport = self.transport(&master.name)?;
        let script =
            Script::new("kubectl --kubeconfig /etc/kubernetes/admin.conf get nodes -o json");
        let text = run(transport, &script, Duration::from_secs(60))
            .await
            .map_err(|(why, _)| UpgradeFailure::ClusterRead {
                host: master.name.clone(),
                why,
            })?;
        let nodes = parse_nodes(&text).map_err(|source| UpgradeFailure::Nodes {
            host: master.name.clone(),
            source,
        })?;
        let cordoned = self.cordon_markers().into_iter().collect();
        let kubelets: Vec<(String, KubeVersion)> = self
            .inventory
            .hosts
            .iter()
            .filter_map(|h| Some((h.name.clone(), nodes.get(&h.name)?.kubelet?)))
            .collect();
        rules::check(self.inventory, control_plane, &kubelets)?;
        let oldest = kubelets
            .iter()
            .map(|(_, k)| *k)
            .chain([control_plane])
            .min()
            .unwrap_or(control_plane);
        let hops = rules::hops(oldest, to)?;
        Ok(Some(Upgrade {
            master: master.name.clone(),
            control_plane,
            to,
            hops,
            nodes,
            cordoned,
        }))
    }

    fn steps<'i>(&'i self, up: &Upgrade) -> Vec<Vec<&'i Host>> {
        order(self.inventory, &up.cordoned)
    }

    /// The engine over the upgrade playbook.
    fn engine(&self) -> Result<Engine, UpgradeFailure> {
        let playbook = Playbook::parse(
            k8sup_kube::playbook::UPGRADE_PLAYBOOK_NAME,
            k8sup_kube::playbook::UPGRADE_PLAYBOOK,
        )?;
        let engine = Engine::new(
            playbook,
            self.templates,
            EngineOptions {
                parallelism: self.parallelism.max(1),
                state_path: UPGRADE_STATE_PATH.to_string(),
                history_dir: None,
                read_only: BTreeSet::new(),
            },
        );
        for secret in &self.secrets {
            engine.redactor().add(secret);
        }
        Ok(engine)
    }

    /// `hosts` as the engine sees them at `hop`, running `phases`.
    fn specs(
        &self,
        hosts: &[&Host],
        hop: KubeVersion,
        phases: &[Phase],
    ) -> Result<Vec<HostSpec>, UpgradeFailure> {
        let mut at_hop = self.inventory.clone();
        at_hop.cluster.kubernetes_version = hop;
        hosts
            .iter()
            .map(|host| {
                let name = || host.name.clone();
                let context_error = |source| UpgradeFailure::Context {
                    host: name(),
                    source,
                };
                let mut spec = self
                    .hosts
                    .iter()
                    .find(|s| s.name == host.name)
                    .cloned()
                    .ok_or_else(|| UpgradeFailure::NotConnected { host: name() })?;
                let facts = self
                    .facts
                    .get(&host.name)
                    .ok_or_else(|| UpgradeFailure::NoFacts { host: name() })?;
                let facts =
                    serde_json::to_value(facts).map_err(|source| UpgradeFailure::FactsJson {
                        host: name(),
                        source,
                    })?;
                let mut context = k8sup_kube::template_context(&at_hop, host, &facts, None)
                    .map_err(context_error)?;
                context["upgrade"] =
                    rules::context(&at_hop, host, phases).map_err(context_error)?;
                spec.context = context.into();
                Ok(spec)
            })
            .collect()
    }

    /// What apply would do, per hop and host in order: the playbook's tasks as the
    /// engine plans them, with the steps k8sup takes between its phases.
    pub async fn plan(&self, up: &Upgrade) -> Result<Vec<(KubeVersion, HostPlan)>, UpgradeFailure> {
        let engine = self.engine()?;
        let first = self.inventory.first_master().name.clone();
        let mut out = Vec::new();
        for &hop in &up.hops {
            for step in self.steps(up) {
                let hosts = up.needing(&step, hop, &first);
                if hosts.is_empty() {
                    continue;
                }
                let mut plans: Vec<HostPlan> = hosts
                    .iter()
                    .map(|h| HostPlan {
                        host: h.name.clone(),
                        tasks: Vec::new(),
                        error: None,
                    })
                    .collect();
                for phase in Phase::ALL {
                    let specs = self.specs(&hosts, hop, &[phase])?;
                    let planned = engine.plan(&specs).await.map_err(UpgradeFailure::Engine)?;
                    for (plan, host_plan) in plans.iter_mut().zip(planned.hosts) {
                        if plan.error.is_none() {
                            plan.error = host_plan.error;
                        }
                        let phase_tasks = host_plan
                            .tasks
                            .into_iter()
                            .filter(|t| t.status != TaskStatus::Skip);
                        plan.tasks.extend(phase_tasks);
                        plan.tasks.extend(self.between(phase, &plan.host, hop, up));
                    }
                }
                out.extend(plans.into_iter().map(|p| (hop, p)));
            }
        }
        Ok(out)
    }

    /// The steps k8sup itself takes on `host` after `phase`, as plan entries.
    fn between(&self, phase: Phase, host: &str, hop: KubeVersion, up: &Upgrade) -> Vec<TaskPlan> {
        let first = &self.inventory.first_master().name;
        let entry = |name: &str, reason: String, command: String| TaskPlan {
            id: format!("upgrade/{name}"),
            name: name.to_string(),
            kind: "upgrade".to_string(),
            status: TaskStatus::Change,
            reason,
            diff: None,
            command: Some(command),
            fingerprint: String::new(),
            probe_digest: None,
            handler: false,
        };
        let quoted = ShellArg::new(host).map(|a| a.quoted()).unwrap_or_default();
        match phase {
            Phase::Prepare if host == first && up.control_plane < hop => vec![entry(
                "etcd snapshot",
                format!(
                    "before `kubeadm upgrade apply`: streamed to {}",
                    self.snapshots.display()
                ),
                "etcdctl snapshot save (see `k8sup etcd backup`)".to_string(),
            )],
            Phase::Kubeadm => {
                let command = self.drain_command(host);
                let what = if self.inventory.upgrade.drain {
                    "drain"
                } else {
                    "cordon"
                };
                vec![entry(
                    what,
                    format!("on {first}, before the kubelet changes"),
                    command.map(|c| c.render()).unwrap_or_default(),
                )]
            }
            Phase::Kubelet => vec![entry(
                "ready and uncordon",
                format!("on {first}: once {host} is Ready at v{hop}; the next step starts after"),
                format!("{KUBECTL} uncordon {quoted}"),
            )],
            Phase::Prepare => Vec::new(),
        }
    }

    fn drain_command(&self, host: &str) -> Result<Script, UpgradeFailure> {
        let upgrade = &self.inventory.upgrade;
        Ok(if upgrade.drain {
            Script::new(KUBECTL)
                .code("drain")
                .arg(word(host)?)
                .code("--ignore-daemonsets --delete-emptydir-data")
                .arg(word(&format!(
                    "--timeout={}s",
                    upgrade.drain_timeout.as_secs()
                ))?)
        } else {
            Script::new(KUBECTL).code("cordon").arg(word(host)?)
        })
    }

    /// Carries the upgrade out. Every host is at `up.to`, Ready and uncordoned when
    /// it returns `Ok`.
    pub async fn apply(&self, up: &Upgrade) -> Result<(), UpgradeFailure> {
        let engine = self.engine()?;
        let first = self.inventory.first_master().name.clone();
        let mut up = up.clone();
        for &hop in &up.hops.clone() {
            (self.say)(format!("upgrade to v{hop}"));
            for step in self.steps(&up) {
                let hosts = up.needing(&step, hop, &first);
                if hosts.is_empty() {
                    continue;
                }
                self.step(&engine, &mut up, &hosts, hop).await?;
            }
        }
        Ok(())
    }

    async fn step(
        &self,
        engine: &Engine,
        up: &mut Upgrade,
        hosts: &[&Host],
        hop: KubeVersion,
    ) -> Result<(), UpgradeFailure> {
        let first = self.inventory.first_master().name.clone();
        let names: Vec<&str> = hosts.iter().map(|h| h.name.as_str()).collect();
        (self.say)(format!("  {}: v{hop}", names.join(", ")));
        self.phase(engine, hosts, hop, Phase::Prepare).await?;
        if names.contains(&first.as_str()) && !self.control_plane_at(&first, hop).await? {
            let backup = backup_over(
                self.inventory,
                self.transport(&first)?,
                &first,
                &BackupOptions {
                    dir: self.snapshots.clone(),
                    keep: 5,
                },
            )
            .await
            .map_err(|source| UpgradeFailure::Snapshot {
                host: first.clone(),
                source,
            })?;
            (self.say)(format!(
                "  {first}: etcd snapshot before kubeadm upgrade apply: {}",
                backup.file.display()
            ));
        }
        self.phase(engine, hosts, hop, Phase::Kubeadm).await?;
        if names.contains(&first.as_str()) {
            up.control_plane = up.control_plane.max(hop);
        }
        // Drained together: the step is the batch max_unavailable allows.
        let drains = join_all(hosts.iter().map(|h| self.drain(&h.name))).await;
        let mut blocked = Vec::new();
        let mut drained = Vec::new();
        for (host, result) in hosts.iter().zip(drains) {
            match result {
                Ok(()) => drained.push(*host),
                Err(why) => {
                    up.cordoned.insert(host.name.clone());
                    blocked.push((host.name.clone(), why));
                }
            }
        }
        if !drained.is_empty() {
            self.phase(engine, &drained, hop, Phase::Kubelet).await?;
            self.ready_and_uncordon(&drained, hop).await?;
            for h in &drained {
                up.cordoned.remove(&h.name);
                if let Some(node) = up.nodes.get_mut(&h.name) {
                    node.kubelet = Some(hop);
                    node.unschedulable = false;
                }
            }
        }
        if blocked.is_empty() {
            return Ok(());
        }
        let why: Vec<String> = blocked
            .iter()
            .map(|(h, why)| format!("{h}: {why}"))
            .collect();
        Err(UpgradeFailure::Drain {
            hosts: blocked.into_iter().map(|(h, _)| h).collect(),
            why: why.join("; "),
        })
    }

    /// Whether `master`'s API server static pod already names `hop`.
    async fn control_plane_at(
        &self,
        master: &str,
        hop: KubeVersion,
    ) -> Result<bool, UpgradeFailure> {
        let host = self
            .inventory
            .host(master)
            .ok_or_else(|| UpgradeFailure::NotInInventory {
                host: master.to_string(),
            })?;
        let mut at_hop = self.inventory.clone();
        at_hop.cluster.kubernetes_version = hop;
        let context =
            rules::context(&at_hop, host, &[]).map_err(|source| UpgradeFailure::Context {
                host: master.to_string(),
                source,
            })?;
        let check = context["control_plane_check"]
            .as_str()
            .unwrap_or("false")
            .to_string();
        let out = self
            .transport(master)?
            .run_with(
                &Script::new("sh -c").arg(word(&check)?),
                RunOptions::default(),
            )
            .await
            .map_err(|source| UpgradeFailure::Check {
                host: master.to_string(),
                source: Box::new(source),
            })?;
        Ok(out.success())
    }

    /// Runs one phase of the upgrade playbook on `hosts` (in parallel); the first
    /// failure, with the task and what it said.
    async fn phase(
        &self,
        engine: &Engine,
        hosts: &[&Host],
        hop: KubeVersion,
        phase: Phase,
    ) -> Result<(), UpgradeFailure> {
        let specs = self.specs(hosts, hop, &[phase])?;
        let say = self.say.clone();
        let sink: EventSink = Arc::new(move |event| {
            if let EngineEvent::TaskFinished {
                host,
                name,
                changed: true,
                ..
            } = event
            {
                say(format!("    {host}: {name}"));
            }
        });
        let report = engine
            .apply(&specs, None, sink)
            .await
            .map_err(|e| UpgradeFailure::Apply(engine.redactor().redact(&e.to_string())))?;
        for host in &report.hosts {
            if host.outcome == HostOutcome::Ok {
                continue;
            }
            let failed = host.tasks.iter().find(|t| t.outcome == "failed");
            // The engine's error names the task, the command and what it printed.
            let message = match failed {
                Some(task) => task
                    .error
                    .clone()
                    .unwrap_or_else(|| format!("{} failed", task.name)),
                None => host
                    .error
                    .clone()
                    .unwrap_or_else(|| "the upgrade stopped".into()),
            };
            return Err(UpgradeFailure::Task {
                host: host.host.clone(),
                message,
            });
        }
        Ok(())
    }

    /// Marks `node` on the first master, then drains it (or cordons it) from there;
    /// why it could not be.
    async fn drain(&self, node: &str) -> Result<(), DrainError> {
        let first = &self.inventory.first_master().name;
        let transport = self.transport(first)?;
        let mark = Script::new("install -d -m 0700")
            .code(CORDONED_DIR)
            .code("&& touch")
            .arg(word(&format!("{CORDONED_DIR}/{node}"))?);
        run(transport, &mark, Duration::from_secs(60))
            .await
            .map_err(|(why, _)| DrainError::Mark {
                master: first.clone(),
                why,
            })?;
        let upgrade = &self.inventory.upgrade;
        let what = if upgrade.drain { "drained" } else { "cordoned" };
        // kubectl gives up at --timeout; a little more for it to say so.
        let timeout = upgrade.drain_timeout + Duration::from_secs(60);
        let command = self.drain_command(node)?;
        match run(transport, &command, timeout).await {
            Ok(_) => {
                (self.say)(format!("    {node}: {what}"));
                Ok(())
            }
            Err((why, stderr)) => {
                let pods = blocked_pods(&stderr);
                Err(if pods.is_empty() {
                    DrainError::Failed(why)
                } else {
                    DrainError::Blocked {
                        pods,
                        timeout: upgrade.drain_timeout,
                    }
                })
            }
        }
    }

    /// Waits until every host is Ready at `hop`, then uncordons and unmarks each.
    async fn ready_and_uncordon(
        &self,
        hosts: &[&Host],
        hop: KubeVersion,
    ) -> Result<(), UpgradeFailure> {
        let first = &self.inventory.first_master().name;
        let transport = self.transport(first)?;
        let started = Instant::now();
        let get = Script::new(KUBECTL).code("get nodes -o json");
        loop {
            // The API server restarts with the first master's kubelet: not answering
            // for a while is expected.
            let waiting: Vec<&str> = match run(transport, &get, Duration::from_secs(60)).await {
                Ok(text) => match parse_nodes(&text) {
                    Ok(nodes) => hosts
                        .iter()
                        .filter(|h| {
                            nodes
                                .get(&h.name)
                                .is_none_or(|n| !n.ready || n.kubelet != Some(hop))
                        })
                        .map(|h| h.name.as_str())
                        .collect(),
                    Err(_) => hosts.iter().map(|h| h.name.as_str()).collect(),
                },
                Err(_) => hosts.iter().map(|h| h.name.as_str()).collect(),
            };
            if waiting.is_empty() {
                break;
            }
            if started.elapsed() > READY_TIMEOUT {
                return Err(UpgradeFailure::NotReady {
                    hosts: waiting.into_iter().map(str::to_string).collect(),
                    hop,
                    after: READY_TIMEOUT,
                });
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
        for host in hosts {
            let uncordon = Script::new(KUBECTL)
                .code("uncordon")
                .arg(word(&host.name)?)
                .code(">/dev/null && rm -f")
                .arg(word(&format!("{CORDONED_DIR}/{}", host.name))?);
            run(transport, &uncordon, Duration::from_secs(120))
                .await
                .map_err(|(why, _)| UpgradeFailure::Uncordon {
                    host: host.name.clone(),
                    why,
                })?;
            (self.say)(format!("    {}: Ready at v{hop}, uncordoned", host.name));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_are_read_from_kubectl_json() {
        let text = r#"{"apiVersion":"v1","kind":"List","items":[
          {"metadata":{"name":"m1"},"spec":{},"status":{"nodeInfo":{"kubeletVersion":"v1.30.14"},
           "conditions":[{"type":"MemoryPressure","status":"False"},{"type":"Ready","status":"True"}]}},
          {"metadata":{"name":"w1"},"spec":{"unschedulable":true},"status":{"nodeInfo":{"kubeletVersion":"v1.29.10"},
           "conditions":[{"type":"Ready","status":"False"}]}}]}"#;
        let nodes = parse_nodes(text).unwrap();
        assert_eq!(
            nodes["m1"],
            NodeStatus {
                kubelet: rules::running_version("v1.30.14"),
                ready: true,
                unschedulable: false
            }
        );
        assert!(nodes["w1"].unschedulable && !nodes["w1"].ready);
        assert!(parse_nodes("error: the server doesn't have a resource type").is_err());
    }

    #[test]
    fn the_pods_a_blocked_drain_names_are_listed_once() {
        // kubectl drain's messages (k8s.io/kubectl/pkg/drain and cmd/drain).
        let stderr = "evicting pod default/web-0\n\
            error when evicting pods/\"web-0\" -n \"default\" (will retry after 5s): Cannot evict pod as it would violate the pod's disruption budget.\n\
            error when evicting pods/\"web-0\" -n \"default\" (will retry after 5s): Cannot evict pod as it would violate the pod's disruption budget.\n\
            error when evicting pods/\"db-1\" -n \"shop\" (will retry after 5s): Cannot evict pod as it would violate the pod's disruption budget.\n\
            error: unable to drain node \"w1\" due to error: context deadline exceeded, continuing command...\n";
        assert_eq!(blocked_pods(stderr), ["default/web-0", "shop/db-1"]);
        assert!(blocked_pods("error: node \"w9\" not found").is_empty());
    }

    #[test]
    fn workers_left_cordoned_go_first_in_batches_of_max_unavailable() {
        let mut text = String::from(
            "[cluster]\nname = \"c\"\nkubernetes_version = \"1.30\"\n\n[upgrade]\nmax_unavailable = 2\n",
        );
        for (i, (name, role)) in [
            ("m1", "master"),
            ("m2", "master"),
            ("w1", "node"),
            ("w2", "node"),
            ("w3", "node"),
            ("w4", "node"),
        ]
        .iter()
        .enumerate()
        {
            text += &format!(
                "\n[[hosts]]\nname = \"{name}\"\naddress = \"10.0.0.{}\"\nroles = [\"{role}\"]\n",
                i + 1
            );
        }
        let path = std::path::Path::new("inv.toml");
        let inventory = Inventory::from_bytes(
            path,
            text.as_bytes(),
            &k8sup_inventory::LoadContext::for_file(path),
        )
        .unwrap();
        let names = |steps: Vec<Vec<&Host>>| -> Vec<Vec<String>> {
            steps
                .iter()
                .map(|s| s.iter().map(|h| h.name.clone()).collect())
                .collect()
        };
        assert_eq!(
            names(order(&inventory, &BTreeSet::new())),
            [vec!["m1"], vec!["m2"], vec!["w1", "w2"], vec!["w3", "w4"]]
        );
        let cordoned = BTreeSet::from(["w3".to_string()]);
        assert_eq!(
            names(order(&inventory, &cordoned)),
            [vec!["m1"], vec!["m2"], vec!["w3", "w1"], vec!["w2", "w4"]]
        );
    }

    /// A failure names the hosts it stopped at: every one of several, none for the run.
    #[test]
    fn a_failure_names_its_hosts_and_says_what_happened_to_them() {
        let not_ready = UpgradeFailure::NotReady {
            hosts: vec!["w1".into(), "w2".into()],
            hop: KubeVersion::parse("1.31.2").unwrap(),
            after: Duration::from_secs(600),
        };
        assert_eq!(not_ready.hosts(), ["w1", "w2"]);
        assert_eq!(
            not_ready.to_string(),
            "w1, w2: not Ready at v1.31.2 10m after its kubelet restarted; left cordoned: run apply again once it is"
        );
        let uncordon = UpgradeFailure::Uncordon {
            host: "w3".into(),
            why: "exit 1".into(),
        };
        assert_eq!(uncordon.hosts(), ["w3"]);
        assert_eq!(uncordon.to_string(), "w3: uncordon failed: exit 1");
        assert!(UpgradeFailure::Apply("x".into()).hosts().is_empty());
    }

    #[test]
    fn the_upgrade_playbook_parses() {
        Playbook::parse(
            k8sup_kube::playbook::UPGRADE_PLAYBOOK_NAME,
            k8sup_kube::playbook::UPGRADE_PLAYBOOK,
        )
        .unwrap();
    }
}
