//! What `plan` and `apply` say and do about hosts that leave: unreachable hosts
//! the run goes on without, nodes the cluster has that the inventory does not
//! name (a warning, never a removal), and hosts with `remove = true` (shown in
//! the plan step by step; removed by apply before the others converge, after a
//! question on a terminal or with `--yes`).

use std::collections::BTreeSet;
use std::sync::Arc;

use k8sup_engine::{EngineEvent, EventSink};
use k8sup_facts::Finding;
use k8sup_inventory::Inventory;
use k8sup_ops::converge::Prepared;
use k8sup_ops::remove::{self, RemovalPlan};

/// What the cluster says about the hosts that leave, before anything changes.
pub struct Removals {
    pub plan: RemovalPlan,
    /// Nodes of the cluster that the inventory does not name.
    pub strays: Vec<String>,
    /// The master the removal steps run on.
    pub first_master: String,
}

/// Reads the cluster on the first master and plans the removals. `Ok(None)`:
/// the first master is not among the connected hosts, so nothing can be read.
/// `Err`: a removal that is refused (etcd's quorum) or a cluster that cannot be read.
pub async fn survey(
    inventory: &Inventory,
    prepared: &Prepared,
) -> Result<Option<Removals>, String> {
    let Some(master) = &prepared.first_master else {
        return Ok(None);
    };
    let masters_go = inventory.removed().any(|h| h.roles.master);
    // The read came with the first master's facts, unless it could not.
    let view = match &prepared.first_master_read {
        Some(out) => remove::cluster_view(master.host(), out),
        None => remove::read_cluster(master, masters_go).await,
    }
    .map_err(|e| e.to_string())?;
    let reachable: BTreeSet<String> = prepared.removed.iter().map(|(h, _)| h.clone()).collect();
    let installed = remove::installed(&prepared.removed).await;
    let plan = remove::plan_removals(inventory, &reachable, &installed, &view)
        .map_err(|e| format!("refused: {e}"))?;
    Ok(Some(Removals {
        plan,
        strays: remove::strays(inventory, &view),
        first_master: inventory.first_master().name.clone(),
    }))
}

/// The lines plan and apply print before the hosts' own: what was skipped and
/// why, the stray nodes, and the removal steps.
pub fn render(skipped: &[Finding], removals: Option<&Removals>, inventory: &Inventory) -> String {
    let mut out = String::new();
    for f in skipped {
        let why = match inventory.host(&f.host) {
            Some(h) if h.remove => "it is being removed",
            _ => "skipped",
        };
        out.push_str(&format!(
            "{}: unreachable, {why}: nothing runs on it ({})\n",
            f.host, f.message
        ));
    }
    if let Some(r) = removals {
        for node in &r.strays {
            out.push_str(&format!(
                "warning: node {node} is in the cluster but not in the inventory: k8sup leaves it alone; to remove it, add it with remove = true\n"
            ));
        }
        out.push_str(&r.plan.render(&r.first_master));
    }
    out
}

/// The hosts of `skipped` that apply would not go on without: unreachable
/// hosts that are not being removed, but workers under `--skip-unreachable`.
pub fn blocking_apply<'a>(
    skipped: &'a [Finding],
    inventory: &Inventory,
    skip_workers: bool,
) -> Vec<&'a str> {
    skipped
        .iter()
        .filter(|f| {
            inventory
                .host(&f.host)
                .is_some_and(|h| !h.remove && (h.roles.master || !skip_workers))
        })
        .map(|f| f.host.as_str())
        .collect()
}

/// Asks (a terminal) or requires `--yes` (none), then removes, step by step.
pub async fn run(
    removals: &Removals,
    prepared: &Prepared,
    inventory: &Inventory,
    yes: bool,
) -> Result<(), String> {
    let cluster = &inventory.cluster.name;
    if !removals.plan.has_steps() {
        return Ok(());
    }
    let hosts: Vec<&str> = removals
        .plan
        .removals
        .iter()
        .filter(|r| !r.steps.is_empty())
        .map(|r| r.host.as_str())
        .collect();
    let what = format!(
        "{}This removes {} from cluster {cluster}: drained, deleted, reset.",
        removals.plan.render(&removals.first_master),
        hosts.join(", ")
    );
    crate::confirm::confirm_destructive(&what, cluster, yes).map_err(|e| e.to_string())?;
    let master = prepared
        .first_master
        .as_ref()
        .ok_or("the first master is not connected")?;
    let report = |host: &str, step: &remove::Step| println!("{host}: remove: {}", step.what);
    // A removed host's reset: each step that changed something, as it is done.
    let events: EventSink = Arc::new(|event| {
        if let EngineEvent::TaskFinished {
            host,
            name,
            changed: true,
            ..
        } = event
        {
            println!("  {host}: {name}");
        }
    });
    remove::remove(
        inventory,
        &removals.plan,
        master,
        &prepared.removed,
        &report,
        events,
    )
    .await
    .map_err(|e| e.to_string())?;
    for host in hosts {
        println!("{host}: removed");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8sup_facts::CheckKind;

    #[test]
    fn apply_goes_on_without_removed_hosts_and_with_the_flag_without_workers() {
        let text = "[cluster]\nname = \"c\"\nkubernetes_version = \"1.31\"\n\n[[hosts]]\nname = \"m1\"\naddress = \"10.0.0.1\"\nroles = [\"master\"]\nremove = true\n\n[[hosts]]\nname = \"m2\"\naddress = \"10.0.0.2\"\nroles = [\"master\"]\n\n[[hosts]]\nname = \"m3\"\naddress = \"10.0.0.3\"\nroles = [\"master\"]\n\n[[hosts]]\nname = \"w1\"\naddress = \"10.0.0.4\"\nroles = [\"node\"]\n";
        let path = std::path::Path::new("inv.toml");
        let inv = Inventory::from_bytes(
            path,
            text.as_bytes(),
            &k8sup_inventory::LoadContext::for_file(path),
        )
        .expect("inventory");
        let skipped: Vec<Finding> = ["m1", "m3", "w1"]
            .iter()
            .map(|h| Finding {
                host: h.to_string(),
                check: CheckKind::Unreachable,
                message: "refused".into(),
            })
            .collect();
        assert_eq!(blocking_apply(&skipped, &inv, false), ["m3", "w1"]);
        assert_eq!(blocking_apply(&skipped, &inv, true), ["m3"]);
        let said = render(&skipped, None, &inv);
        assert!(
            said.starts_with("m1: unreachable, it is being removed: nothing runs on it (refused)\nm3: unreachable, skipped:"),
            "{said}"
        );
    }
}
