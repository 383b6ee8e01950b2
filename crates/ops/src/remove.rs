//! Removing nodes: hosts with `remove = true` in the inventory.
//!
//! What the cluster holds is read from the first master that stays (its nodes,
//! and its etcd members with their health when a master goes); then
//! [`plan_removals`], a pure function, says what happens to each removed host,
//! in order, or refuses the whole removal when etcd would lose its quorum; and
//! [`remove`] does it, one step at a time, stopping at the first failure:
//!
//! - a reachable host: cordon and drain it (from the first master), `kubeadm
//!   reset` and k8sup's cleanup on it (what `k8sup reset` does; on a master,
//!   `kubeadm reset` also takes its etcd member out), then delete its node;
//! - an unreachable one: a master's etcd member is removed with `etcdctl member
//!   remove` from the first master, then its node is deleted; nothing runs on it.
//!
//! Dead members go first: each step must leave etcd a quorum of healthy members.

use std::collections::BTreeSet;

use k8sup_engine::EventSink;
use k8sup_inventory::Inventory;
use k8sup_shell::{Script, ShellArg};
use k8sup_ssh::{CommandError, CommandOutput, Session};

use crate::etcd::TOOLS;
use crate::reset::{reset_over, ResetError};

const PATH: &str =
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH; export PATH;";
const KUBECTL: &str = "kubectl --kubeconfig /etc/kubernetes/admin.conf";
/// Finds etcd's client tools on the first master (its own etcdctl, or the etcd
/// container's: see `etcd_tools.sh`) or says why not.
const ETCD_FIND: &str = "etcd_find || { echo \"etcd's container does not run on this master and it has no etcdctl\" >&2; exit 1; }";
/// Files whose presence means k8sup or kubeadm installed something on a host.
const INSTALLED: &str = "for f in /etc/kubernetes/kubelet.conf /etc/kubernetes/manifests /etc/k8sup /var/lib/k8sup /var/lib/etcd/member; do if [ -e \"$f\" ]; then echo installed; break; fi; done";

/// One etcd member as `etcdctl member list` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdMember {
    /// Hex, as `member remove` takes it.
    pub id: String,
    /// kubeadm names a member after its node.
    pub name: String,
    pub client_urls: Vec<String>,
    /// Whether `etcdctl endpoint health --cluster` found it healthy.
    pub healthy: bool,
}

/// What the cluster holds, read from the first master.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterView {
    /// Whether the cluster exists (the first master has its admin kubeconfig).
    pub exists: bool,
    /// Node names.
    pub nodes: Vec<String>,
    /// etcd's members; read only when a master is being removed.
    pub members: Vec<EtcdMember>,
}

/// Why the cluster could not be read, or a removal step failed.
#[derive(Debug, thiserror::Error)]
pub enum RemoveError {
    #[error("cannot read the cluster on {host}: {source}")]
    ReadLost {
        host: String,
        #[source]
        source: Box<CommandError>,
    },
    #[error("cannot read the cluster on {host} ({status}): {said}")]
    Read {
        host: String,
        status: String,
        /// The last line the script printed on stderr.
        said: String,
    },
    #[error("{host}: no connection to reset it")]
    NotConnected { host: String },
    #[error("{host}: not in the inventory")]
    NotInInventory { host: String },
    #[error("{host}: {step} failed: {source}")]
    Reset {
        host: String,
        step: String,
        #[source]
        source: Box<ResetError>,
    },
    #[error("{host}: {step} failed: {source}")]
    StepLost {
        host: String,
        step: String,
        #[source]
        source: Box<CommandError>,
    },
    #[error("{host}: {step} failed on {on} ({status}): {said}")]
    Step {
        host: String,
        step: String,
        /// The host it ran on (the first master, or the removed host).
        on: String,
        status: String,
        said: String,
    },
    #[error("a script holds a NUL byte")]
    NulByte,
}

/// Reads the nodes (and, with `etcd`, the etcd members and the health of each
/// member's client URL) on the first master.
pub async fn read_cluster(master: &Session, etcd: bool) -> Result<ClusterView, RemoveError> {
    let out = master
        .run(&cluster_read(etcd)?)
        .await
        .map_err(|source| RemoveError::ReadLost {
            host: master.host().to_string(),
            source: Box::new(source),
        })?;
    cluster_view(master.host(), &out)
}

/// The script [`read_cluster`] runs on the first master (for
/// [`crate::connect::ConnectOptions::first_master_read`]).
pub fn cluster_read(etcd: bool) -> Result<Script, RemoveError> {
    script(cluster_script(etcd))
}

/// The cluster as [`cluster_read`]'s output on `host` says it, or why it could not be
/// read.
pub fn cluster_view(host: &str, out: &CommandOutput) -> Result<ClusterView, RemoveError> {
    if !out.success() {
        return Err(RemoveError::Read {
            host: host.to_string(),
            status: out.status_text(),
            said: last_line(&out.stderr_text()).to_string(),
        });
    }
    Ok(parse_cluster(&out.stdout_text()))
}

/// What [`read_cluster`] runs: the nodes, then (with `etcd`) the member list and
/// the health of every member's client URL. The nodes are asked up to five times,
/// 2 s apart: through a balancer, a master that just failed is used until its
/// health checks take it out.
fn cluster_script(etcd: bool) -> String {
    let mut text = format!(
        "{PATH}\nif [ ! -e /etc/kubernetes/admin.conf ]; then echo k8sup-no-cluster; exit 0; fi\necho '--- nodes'\ni=0\nuntil nodes=$({KUBECTL} get nodes -o name); do i=$((i + 1)); [ \"$i\" -lt 5 ] || exit 1; sleep 2; done\nprintf '%s\\n' \"$nodes\"\n"
    );
    if etcd {
        text.push_str(&format!(
            "{TOOLS}\n{ETCD_FIND}\necho '--- members'\nlist=$(etcd_ctl member list) || exit 1\nprintf '%s\\n' \"$list\"\neps=$(printf '%s\\n' \"$list\" | awk -F', ' '$5 != \"\" {{ print $5 }}' | paste -sd, -)\necho '--- health'\netcd_ctl_at \"$eps\" endpoint health 2>&1 || true\n"
        ));
    }
    text
}

/// The cluster as [`read_cluster`]'s script printed it.
pub fn parse_cluster(text: &str) -> ClusterView {
    if text.lines().any(|l| l.trim() == "k8sup-no-cluster") {
        return ClusterView::default();
    }
    let mut view = ClusterView {
        exists: true,
        ..ClusterView::default()
    };
    let mut section = "";
    let mut health = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if let Some(name) = line.strip_prefix("--- ") {
            section = name;
            continue;
        }
        match section {
            "nodes" => {
                if let Some(node) = line.strip_prefix("node/") {
                    view.nodes.push(node.to_string());
                }
            }
            // `8e9e05c52164694d, started, m1, https://10.0.0.1:2380, https://10.0.0.1:2379, false`
            "members" => {
                let fields: Vec<&str> = line.split(", ").collect();
                if fields.len() >= 5 {
                    view.members.push(EtcdMember {
                        id: fields[0].to_string(),
                        name: fields[2].to_string(),
                        client_urls: fields[4].split(',').map(str::to_string).collect(),
                        healthy: false,
                    });
                }
            }
            // `https://10.0.0.1:2379 is healthy: successfully committed proposal: took = 2ms`
            "health" => {
                if let Some((endpoint, rest)) = line.split_once(' ') {
                    if rest.starts_with("is healthy") {
                        health.push(endpoint.to_string());
                    }
                }
            }
            _ => {}
        }
    }
    for member in &mut view.members {
        member.healthy = member.client_urls.iter().any(|u| health.contains(u));
    }
    view
}

/// Where a step runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum On {
    /// The first master that stays.
    FirstMaster,
    /// The host being removed.
    Removed,
}

/// One thing a removal does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub what: String,
    pub on: On,
    /// The command, as the plan shows it.
    pub command: String,
}

/// What happens to one removed host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removal {
    pub host: String,
    pub master: bool,
    pub reachable: bool,
    pub steps: Vec<Step>,
    /// What is not done, and why (an unreachable host is not reset).
    pub notes: Vec<String>,
}

/// Every removal, in the order they run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RemovalPlan {
    pub removals: Vec<Removal>,
}

impl RemovalPlan {
    /// Whether anything would change.
    pub fn has_steps(&self) -> bool {
        self.removals.iter().any(|r| !r.steps.is_empty())
    }

    /// The plan as a person reads it, after the hosts that converge.
    pub fn render(&self, first_master: &str) -> String {
        let mut out = String::new();
        for r in &self.removals {
            let role = if r.master { "master" } else { "node" };
            if r.steps.is_empty() {
                out.push_str(&format!(
                    "{}: remove ({role}): nothing left to do\n",
                    r.host
                ));
            } else {
                out.push_str(&format!(
                    "{}: remove ({role}{}): {} step(s)\n",
                    r.host,
                    if r.reachable { "" } else { ", unreachable" },
                    r.steps.len()
                ));
            }
            for step in &r.steps {
                let on = match step.on {
                    On::FirstMaster => first_master,
                    On::Removed => &r.host,
                };
                out.push_str(&format!(
                    "  - {} (on {on})\n      $ {}\n",
                    step.what, step.command
                ));
            }
            for note in &r.notes {
                out.push_str(&format!("  note: {note}\n"));
            }
        }
        out
    }
}

/// Why a removal is refused before anything changes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RemovalRefused {
    #[error("removing {member} needs etcd's quorum, but only {healthy} of its {members} members are healthy (a quorum is {quorum}); nothing was changed")]
    NoQuorum {
        member: String,
        healthy: usize,
        members: usize,
        quorum: usize,
    },
    #[error("removing {member} would leave etcd {healthy} healthy of {members} member(s), short of a quorum of {quorum}: the control plane would stop; nothing was changed")]
    WouldLoseQuorum {
        member: String,
        healthy: usize,
        members: usize,
        quorum: usize,
    },
    #[error("{0:?} holds a NUL byte")]
    NulByte(String),
}

/// The steps for every host with `remove = true`. `reachable`: the removed hosts
/// k8sup is connected to; `installed`: those of them that still hold what k8sup
/// or kubeadm put there; `view`: the cluster as the first master sees it.
pub fn plan_removals(
    inventory: &Inventory,
    reachable: &BTreeSet<String>,
    installed: &BTreeSet<String>,
    view: &ClusterView,
) -> Result<RemovalPlan, RemovalRefused> {
    check_quorum(inventory, reachable, view)?;
    let mut removals = Vec::new();
    // Dead members first: removing them needs fewer healthy members than a live one.
    let mut hosts: Vec<_> = inventory.removed().collect();
    hosts.sort_by_key(|h| reachable.contains(&h.name));
    for host in hosts {
        let name = arg(&host.name)?;
        let is_reachable = reachable.contains(&host.name);
        let in_cluster = view.nodes.contains(&host.name);
        let member = view.members.iter().find(|m| m.name == host.name);
        let mut steps = Vec::new();
        let mut notes = Vec::new();
        let first = |what: &str, command: Script| Step {
            what: what.to_string(),
            on: On::FirstMaster,
            command: command.render(),
        };
        if is_reachable {
            if in_cluster {
                steps.push(first(
                    "cordon",
                    Script::new(KUBECTL).code("cordon").arg(name.clone()),
                ));
                steps.push(first(
                    "drain",
                    Script::new(KUBECTL)
                        .code("drain")
                        .arg(name.clone())
                        .code("--ignore-daemonsets --delete-emptydir-data --force --timeout=300s"),
                ));
            }
            if in_cluster || member.is_some() || installed.contains(&host.name) {
                steps.push(Step {
                    what: if host.roles.master {
                        "kubeadm reset (it removes the etcd member) and k8sup's cleanup".into()
                    } else {
                        "kubeadm reset and k8sup's cleanup".into()
                    },
                    on: On::Removed,
                    command: reset_steps(),
                });
            }
        } else {
            if let Some(m) = member {
                steps.push(first(
                    "etcd member remove",
                    Script::new("etcd_find && etcd_ctl member remove").arg(arg(&m.id)?),
                ));
            }
            if in_cluster || member.is_some() {
                notes.push(format!(
                    "{} is unreachable: not drained (its pods are rescheduled once its node is deleted) and not reset; reset it with `k8sup reset` if it comes back",
                    host.name
                ));
            }
        }
        if in_cluster {
            steps.push(first(
                "delete node",
                Script::new(KUBECTL)
                    .code("delete node")
                    .arg(name.clone())
                    .code("--ignore-not-found"),
            ));
        }
        removals.push(Removal {
            host: host.name.clone(),
            master: host.roles.master,
            reachable: is_reachable,
            steps,
            notes,
        });
    }
    Ok(RemovalPlan { removals })
}

/// Refuses a removal after which etcd would have no quorum, checking each member
/// removal in the order they run (dead ones first).
fn check_quorum(
    inventory: &Inventory,
    reachable: &BTreeSet<String>,
    view: &ClusterView,
) -> Result<(), RemovalRefused> {
    let going: Vec<&str> = inventory
        .removed()
        .filter(|h| h.roles.master)
        .map(|h| h.name.as_str())
        .collect();
    if going.is_empty() || view.members.is_empty() {
        return Ok(());
    }
    let mut members = view.members.len();
    let mut healthy = view.members.iter().filter(|m| m.healthy).count();
    let mut order: Vec<&EtcdMember> = view
        .members
        .iter()
        .filter(|m| going.contains(&m.name.as_str()))
        .collect();
    order.sort_by_key(|m| m.healthy && reachable.contains(&m.name));
    for m in order {
        let quorum = members / 2 + 1;
        if healthy < quorum {
            return Err(RemovalRefused::NoQuorum {
                member: m.name.clone(),
                healthy,
                members,
                quorum,
            });
        }
        members -= 1;
        if m.healthy {
            healthy -= 1;
        }
        let quorum_after = members / 2 + 1;
        if members == 0 || healthy < quorum_after {
            return Err(RemovalRefused::WouldLoseQuorum {
                member: m.name.clone(),
                healthy,
                members,
                quorum: quorum_after,
            });
        }
    }
    Ok(())
}

/// Nodes the cluster has that the inventory does not name at all: never removed
/// silently, only warned of.
pub fn strays(inventory: &Inventory, view: &ClusterView) -> Vec<String> {
    view.nodes
        .iter()
        .filter(|n| inventory.host(n).is_none())
        .cloned()
        .collect()
}

/// The removed hosts among `sessions` that still hold an installation.
pub async fn installed(sessions: &[(String, std::sync::Arc<Session>)]) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for (host, session) in sessions {
        let out = session.run(&Script::new(INSTALLED)).await;
        if out.is_ok_and(|o| o.stdout_text().contains("installed")) {
            found.insert(host.clone());
        }
    }
    found
}

/// What the plan shows of a removed host's reset: the reset playbook's steps.
fn reset_steps() -> String {
    let steps: Vec<String> = crate::reset::playbook()
        .map(|p| {
            p.plays
                .into_iter()
                .flat_map(|p| p.tasks)
                .map(|t| t.name)
                .collect()
        })
        .unwrap_or_default();
    format!(
        "{} (as `k8sup reset`): {}",
        k8sup_kube::playbook::RESET_PLAYBOOK_NAME,
        steps.join("; ")
    )
}

/// Runs `plan`, step by step; `report` is told each step as it starts, `events`
/// gets the engine's events of a removed host's reset. Stops at the first failure.
pub async fn remove(
    inventory: &Inventory,
    plan: &RemovalPlan,
    first_master: &Session,
    removed: &[(String, std::sync::Arc<Session>)],
    report: &dyn Fn(&str, &Step),
    events: EventSink,
) -> Result<(), RemoveError> {
    for r in &plan.removals {
        for step in &r.steps {
            report(&r.host, step);
            let (session, text): (&Session, String) = match step.on {
                // The etcd tools' functions (for a member's removal) come first.
                On::FirstMaster => (first_master, format!("{PATH}\n{TOOLS}\n{}", step.command)),
                On::Removed => {
                    let session = removed
                        .iter()
                        .find(|(h, _)| *h == r.host)
                        .map(|(_, s)| s.clone())
                        .ok_or_else(|| RemoveError::NotConnected {
                            host: r.host.clone(),
                        })?;
                    let host =
                        inventory
                            .host(&r.host)
                            .ok_or_else(|| RemoveError::NotInInventory {
                                host: r.host.clone(),
                            })?;
                    reset_over(inventory, host, session, events.clone())
                        .await
                        .map_err(|source| RemoveError::Reset {
                            host: r.host.clone(),
                            step: step.what.clone(),
                            source: Box::new(source),
                        })?;
                    continue;
                }
            };
            let out =
                session
                    .run(&script(text)?)
                    .await
                    .map_err(|source| RemoveError::StepLost {
                        host: r.host.clone(),
                        step: step.what.clone(),
                        source: Box::new(source),
                    })?;
            if !out.success() {
                return Err(RemoveError::Step {
                    host: r.host.clone(),
                    step: step.what.clone(),
                    on: session.host().to_string(),
                    status: out.status_text(),
                    said: last_line(&out.stderr_text()).to_string(),
                });
            }
        }
    }
    Ok(())
}

/// A script of text k8sup wrote (every value in it quoted by [`Script`]), run by
/// `sh -c`. It holds no secret, so it may be an argument.
fn script(text: String) -> Result<Script, RemoveError> {
    let text = ShellArg::new(text).map_err(|_| RemoveError::NulByte)?;
    Ok(Script::new("sh -c").arg(text).code("sh"))
}

fn arg(value: &str) -> Result<ShellArg, RemovalRefused> {
    ShellArg::new(value).map_err(|_| RemovalRefused::NulByte(value.to_string()))
}

fn last_line(text: &str) -> &str {
    text.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
}

#[cfg(test)]
mod tests;
