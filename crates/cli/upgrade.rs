//! The Kubernetes upgrade inside `plan` and `apply`: when the inventory's
//! `kubernetes_version` is newer than what the cluster runs, `plan` shows the
//! rolling upgrade host by host before the playbook's plan, and `apply` carries it
//! out (k8sup-ops' `upgrade`) before converging. No command of its own.

use std::sync::Arc;

use k8sup_engine::HostPlan;
use k8sup_inventory::KubeVersion;
use k8sup_ops::upgrade::{Upgrade, Upgrader};
use k8sup_ssh::Secrets;

use crate::args::OutputArgs;
use crate::confirm::{confirm as ask, Question, Unattended};
use crate::converge::{history_dir, render_host_plan, Setup};

/// The upgrade's steps: per hop and host, in order.
pub(crate) type Steps = Vec<(KubeVersion, HostPlan)>;

fn upgrader<'a>(setup: &'a Setup, output: &OutputArgs, parallel: Option<u32>) -> Upgrader<'a> {
    let inventory = &setup.loaded.inventory;
    let secrets = Secrets::from_env();
    let json = output.json;
    let history = history_dir(&inventory.cluster.name);
    let state = history.parent().unwrap_or(&history).to_path_buf();
    Upgrader {
        inventory,
        hosts: &setup.prepared.hosts,
        facts: &setup.prepared.facts,
        templates: &setup.loaded.templates,
        secrets: [secrets.become_password, secrets.key_passphrase]
            .into_iter()
            .flatten()
            .map(|s| s.expose().to_string())
            .collect(),
        snapshots: state.join("upgrade-snapshots"),
        parallelism: parallel
            .map(|n| n as usize)
            .unwrap_or(inventory.parallelism),
        // With --json, stdout is the JSON document: progress goes to stderr.
        say: Arc::new(move |line| {
            if json {
                eprintln!("{line}");
            } else {
                println!("{line}");
            }
        }),
    }
}

/// Why a run that would both upgrade Kubernetes and remove nodes is refused.
const UPGRADE_AND_REMOVAL: &str = "this inventory both raises kubernetes_version and removes hosts; \
    nothing was changed: apply the removals first (with the version the cluster runs), then raise the version";

/// The upgrade `plan` and `apply` have to carry out, with its steps; `None` when
/// the cluster is at the inventory's version (or not installed yet).
/// With `removing` (hosts with `remove = true` to be removed in this run), a pending
/// upgrade is refused: each reads the cluster's nodes and masters before it starts,
/// so they go one run at a time.
pub(crate) async fn pending(
    setup: &Setup,
    output: &OutputArgs,
    parallel: Option<u32>,
    removing: bool,
) -> Result<Option<(Upgrade, Steps)>, String> {
    let upgrader = upgrader(setup, output, parallel);
    let Some(up) = upgrader.assess().await.map_err(|e| e.to_string())? else {
        return Ok(None);
    };
    if !up.pending() {
        return Ok(None);
    }
    if removing {
        return Err(UPGRADE_AND_REMOVAL.to_string());
    }
    if !setup.loaded.read_only.is_empty() {
        return Err(format!(
            "the cluster runs v{} and the inventory asks for v{}: an upgrade goes over the whole cluster, so it cannot be run with --limit; nothing was changed on any host",
            up.control_plane, up.to
        ));
    }
    let steps = upgrader.plan(&up).await.map_err(|e| e.to_string())?;
    Ok(Some((up, steps)))
}

/// Carries the upgrade out; the hosts it stopped at and why.
pub(crate) async fn apply(
    setup: &Setup,
    up: &Upgrade,
    output: &OutputArgs,
    parallel: Option<u32>,
) -> Result<(), (Vec<String>, String)> {
    upgrader(setup, output, parallel)
        .apply(up)
        .await
        .map_err(|e| (e.hosts(), e.to_string()))
}

/// Asks before an upgrade on a terminal.
pub(crate) fn confirm(up: &Upgrade) -> Result<(), String> {
    let prompt = format!(
        "Upgrade the cluster from v{} to v{}, node by node as shown? Only 'yes' will be accepted: ",
        up.control_plane, up.to
    );
    ask(
        &Question {
            what: "",
            prompt: &prompt,
            expected: "yes",
            unattended: Unattended::Proceed,
        },
        false,
    )
    .map_err(|e| e.to_string())
}

/// The upgrade as `plan` shows it: the hops, the order, then per hop and host the
/// steps, in the order apply takes them.
pub(crate) fn render(up: &Upgrade, steps: &Steps, verbose: bool, color: bool) -> String {
    let hops: Vec<String> = up.hops.iter().map(|v| format!("v{v}")).collect();
    let mut out = format!(
        "Kubernetes upgrade: the control plane runs v{}, the inventory asks for v{}: {} hop(s), one minor at a time: {}\n",
        up.control_plane,
        up.to,
        up.hops.len(),
        hops.join(" -> ")
    );
    if !up.cordoned.is_empty() {
        let names: Vec<&str> = up.cordoned.iter().map(String::as_str).collect();
        out.push_str(&format!(
            "  resumes an upgrade that stopped: {} left cordoned by it, upgraded first\n",
            names.join(", ")
        ));
    }
    out.push_str(
        "  order: the first master (kubeadm upgrade apply), the other masters one at a time, then the workers in batches of [upgrade] max_unavailable; each batch starts once the one before is Ready and uncordoned\n",
    );
    let mut total = 0;
    for (hop, plan) in steps {
        total += render_host_plan(
            &mut out,
            &format!("{} -> v{hop}", plan.host),
            plan,
            verbose,
            color,
        );
    }
    out.push_str(&format!(
        "Upgrade: {total} step(s) on {} host(s); then the playbook converges every host at v{}:\n",
        steps
            .iter()
            .map(|(_, p)| p.host.as_str())
            .collect::<std::collections::BTreeSet<_>>()
            .len(),
        up.to
    ));
    out
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use k8sup_engine::{TaskPlan, TaskStatus};

    use super::*;

    fn v(minor: u32, patch: u32) -> KubeVersion {
        KubeVersion { minor, patch }
    }

    fn task(name: &str, kind: &str, status: TaskStatus, reason: &str, command: &str) -> TaskPlan {
        TaskPlan {
            id: format!("upgrade/{name}"),
            name: name.into(),
            kind: kind.into(),
            status,
            reason: reason.into(),
            diff: None,
            command: Some(command.into()),
            fingerprint: String::new(),
            probe_digest: None,
            handler: false,
        }
    }

    #[test]
    fn the_upgrade_reads_hop_by_hop_and_host_by_host() {
        let up = Upgrade {
            master: "cp1".into(),
            control_plane: v(29, 15),
            to: v(31, 14),
            hops: vec![v(30, 14), v(31, 14)],
            nodes: BTreeMap::new(),
            cordoned: BTreeSet::from(["w2".to_string()]),
        };
        let host = |name: &str, tasks: Vec<TaskPlan>| HostPlan {
            host: name.into(),
            tasks,
            error: None,
        };
        let steps = vec![
            (
                v(30, 14),
                host(
                    "cp1",
                    vec![
                        task("kubeadm package", "package", TaskStatus::Change, "kubeadm is 1.29.15-1.1, wanted 1.30.14-*", "apt-get install -y kubeadm=1.30.14-*"),
                        task("kubeadm upgrade apply", "command", TaskStatus::Change, "the API server runs an older version", "kubeadm upgrade apply v1.30.14 --yes"),
                        task("drain", "upgrade", TaskStatus::Change, "on cp1, before the kubelet changes", "kubectl drain cp1 --ignore-daemonsets --delete-emptydir-data --timeout=600s"),
                        task("containerd config", "file", TaskStatus::Ok, "as wanted", "write /etc/containerd/config.toml"),
                    ],
                ),
            ),
            (
                v(30, 14),
                host("w2", vec![task("kubeadm upgrade node", "command", TaskStatus::Change, "not yet", "kubeadm upgrade node")]),
            ),
            (
                v(31, 14),
                host("cp1", vec![task("kubeadm upgrade apply", "command", TaskStatus::Change, "the API server runs an older version", "kubeadm upgrade apply v1.31.14 --yes")]),
            ),
        ];
        insta::assert_snapshot!(render(&up, &steps, false, false));
    }
}
