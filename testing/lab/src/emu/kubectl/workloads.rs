//! The controllers and the scheduler, as far as pods that move matter: Deployments,
//! ReplicaSets and bare Pod objects get pods ([`PodRecord`]s in the state), bound to a
//! Ready, schedulable (not cordoned) node whose labels and taints admit them, spread
//! (fewest of the same owner, then fewest pods); a pod evicted or deleted is replaced by
//! its controller under a new name, on another node. The eviction API refuses, with
//! status 429, an eviction that a PodDisruptionBudget (policy/v1: `minAvailable` or
//! `maxUnavailable`, an int or a percentage, and a selector) does not allow.
//!
//! The controllers run when kubectl connects ([`reconcile`]), so pods are placed on
//! what the cluster looks like when someone looks.

use std::collections::BTreeMap;

use serde_json::Value;

use super::{expression_matches, node_ready, schedulable};
use crate::emu::cluster::{self, ClusterState, Object, PodRecord};

/// The kinds whose pods are kept as records.
const CONTROLLED: &[&str] = &["Deployment", "ReplicaSet", "Pod"];

/// The pod template's spec of an object (a Pod's own spec).
pub(super) fn pod_spec(o: &Object) -> Option<&Value> {
    if o.kind == "Pod" {
        o.body.get("spec")
    } else {
        o.body.pointer("/spec/template/spec")
    }
}

/// The labels its pods carry.
pub(super) fn pod_labels(o: &Object) -> BTreeMap<String, String> {
    let meta = if o.kind == "Pod" {
        o.body.pointer("/metadata/labels")
    } else {
        o.body.pointer("/spec/template/metadata/labels")
    };
    meta.and_then(|m| m.as_object())
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                .collect()
        })
        .unwrap_or_default()
}

fn replicas(o: &Object) -> u64 {
    if o.kind == "Pod" {
        return 1;
    }
    o.body
        .pointer("/spec/replicas")
        .and_then(|r| r.as_u64())
        .unwrap_or(1)
}

/// The owner object of a pod record.
pub(super) fn owner<'a>(state: &'a ClusterState, p: &PodRecord) -> Option<&'a Object> {
    state.object(&p.owner_kind, &p.namespace, &p.owner_name)
}

/// `web-7c5ddbdf54-x7k2p` for a Deployment, `web-x7k2p` for a ReplicaSet.
fn pod_name(o: &Object, serial: u64) -> String {
    let suffix = cluster::name_suffix(&format!("{}/{}/{serial}", o.namespace, o.name));
    match o.kind.as_str() {
        "Deployment" => {
            let rs = cluster::name_suffix(&format!("rs/{}/{}", o.namespace, o.name));
            format!("{}-{rs}{}-{suffix}", o.name, &rs[..3])
        }
        "ReplicaSet" => format!("{}-{suffix}", o.name),
        _ => o.name.clone(),
    }
}

/// Runs the controllers and the scheduler once; true when anything changed.
pub(super) fn reconcile(state: &mut ClusterState) -> bool {
    let before = state.pods.clone();
    // Pods whose node is gone are garbage-collected; pods whose owner is gone too.
    let nodes: Vec<String> = state.nodes.keys().cloned().collect();
    let mut gone_bare = Vec::new();
    let objects = &state.objects;
    state.pods.retain(|p| {
        let owner_exists = objects.iter().any(|o| {
            o.kind == p.owner_kind && o.namespace == p.namespace && o.name == p.owner_name
        });
        let node_exists = p.node.as_ref().is_none_or(|n| nodes.contains(n));
        if owner_exists && !node_exists && p.owner_kind == "Pod" {
            gone_bare.push((p.namespace.clone(), p.name.clone()));
        }
        owner_exists && node_exists
    });
    // A bare pod is gone for good once its pod is.
    state.objects.retain(|o| {
        !(o.kind == "Pod" && gone_bare.contains(&(o.namespace.clone(), o.name.clone())))
    });
    let owners: Vec<Object> = state
        .objects
        .iter()
        .filter(|o| CONTROLLED.contains(&o.kind.as_str()))
        .cloned()
        .collect();
    for o in &owners {
        let mine = |p: &PodRecord| {
            p.owner_kind == o.kind && p.owner_name == o.name && p.namespace == o.namespace
        };
        let want = replicas(o) as usize;
        let have = state.pods.iter().filter(|p| mine(p)).count();
        if have > want {
            // Scaled down: the newest go first.
            let mut extra = have - want;
            for i in (0..state.pods.len()).rev() {
                if extra > 0 && mine(&state.pods[i]) {
                    state.pods.remove(i);
                    extra -= 1;
                }
            }
        }
        for _ in have..want {
            state.pod_serial += 1;
            state.pods.push(PodRecord {
                namespace: o.namespace.clone(),
                name: pod_name(o, state.pod_serial),
                owner_kind: o.kind.clone(),
                owner_name: o.name.clone(),
                node: None,
                created: cluster::now(),
            });
        }
    }
    for i in 0..state.pods.len() {
        if state.pods[i].node.is_some() {
            continue;
        }
        let p = state.pods[i].clone();
        let Some(o) = owner(state, &p) else { continue };
        let Some(spec) = pod_spec(o) else { continue };
        let fixed = cluster::str_at(spec, &["nodeName"]);
        let node = if !fixed.is_empty() {
            state.nodes.contains_key(fixed).then(|| fixed.to_string())
        } else {
            state
                .nodes
                .values()
                .filter(|n| !n.unschedulable && n.kubelet.running && schedulable(spec, n, false))
                .filter(|n| node_ready(state, n))
                .min_by_key(|n| {
                    let on = |same: bool| {
                        state
                            .pods
                            .iter()
                            .filter(|q| q.node.as_deref() == Some(n.name.as_str()))
                            .filter(|q| {
                                !same
                                    || (q.owner_kind == p.owner_kind
                                        && q.owner_name == p.owner_name)
                            })
                            .count()
                    };
                    (on(true), on(false), n.name.clone())
                })
                .map(|n| n.name.clone())
        };
        state.pods[i].node = node;
    }
    state.pods != before
}

/// Why the eviction API refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Refused {
    NotFound,
    /// 429: the named budget allows no disruption now.
    Budget(String),
}

/// How many more of its pods a PodDisruptionBudget lets go now.
pub(super) fn disruptions_allowed(state: &ClusterState, pdb: &Object) -> i64 {
    let matching: Vec<(&PodRecord, &Object)> = state
        .pods
        .iter()
        .filter(|p| p.namespace == pdb.namespace)
        .filter_map(|p| owner(state, p).map(|o| (p, o)))
        .filter(|(_, o)| selects(pdb, &pod_labels(o)))
        .collect();
    let healthy = matching
        .iter()
        .filter(|(p, _)| {
            p.node
                .as_ref()
                .and_then(|n| state.nodes.get(n))
                .is_some_and(|n| node_ready(state, n))
        })
        .count() as i64;
    // The controllers' scale: what the budget's percentages are of.
    let mut owners: Vec<&Object> = matching.iter().map(|(_, o)| *o).collect();
    owners.sort_by(|a, b| (&a.kind, &a.name).cmp(&(&b.kind, &b.name)));
    owners.dedup_by(|a, b| a.kind == b.kind && a.name == b.name);
    let expected: i64 = owners.iter().map(|o| replicas(o) as i64).sum();
    let scaled = |v: &Value| -> i64 {
        match v {
            Value::Number(n) => n.as_i64().unwrap_or(0),
            // IntOrString percentages round up, as the disruption controller does.
            Value::String(s) => s
                .trim_end_matches('%')
                .parse::<i64>()
                .map(|pct| (pct * expected + 99) / 100)
                .unwrap_or(0),
            _ => 0,
        }
    };
    let desired = if let Some(min) = pdb.body.pointer("/spec/minAvailable") {
        scaled(min)
    } else if let Some(max) = pdb.body.pointer("/spec/maxUnavailable") {
        (expected - scaled(max)).max(0)
    } else {
        // Neither: the API defaults minAvailable to 1.
        1
    };
    healthy - desired
}

/// Whether a PodDisruptionBudget's selector selects these labels (an empty selector
/// selects nothing in policy/v1... and everything in v1beta1; the lab has v1 only).
fn selects(pdb: &Object, labels: &BTreeMap<String, String>) -> bool {
    let Some(sel) = pdb.body.pointer("/spec/selector") else {
        return false;
    };
    let by_label = sel
        .get("matchLabels")
        .and_then(|m| m.as_object())
        .map(|m| {
            m.iter()
                .all(|(k, v)| labels.get(k).map(String::as_str) == v.as_str())
        })
        .unwrap_or(true);
    let exprs = sel
        .get("matchExpressions")
        .and_then(|e| e.as_array())
        .map(|e| e.iter().all(|e| expression_matches(labels, e)))
        .unwrap_or(true);
    by_label && exprs
}

/// The eviction API (`POST .../pods/NAME/eviction`): the budgets that select the pod
/// must allow a disruption; then the pod is deleted and its controller replaces it.
pub(super) fn evict(state: &mut ClusterState, namespace: &str, name: &str) -> Result<(), Refused> {
    let Some(pod) = state
        .pods
        .iter()
        .find(|p| p.namespace == namespace && p.name == name)
        .cloned()
    else {
        return Err(Refused::NotFound);
    };
    let labels = owner(state, &pod).map(pod_labels).unwrap_or_default();
    for pdb in state
        .objects
        .iter()
        .filter(|o| o.kind == "PodDisruptionBudget" && o.namespace == namespace)
    {
        if selects(pdb, &labels) && disruptions_allowed(state, pdb) <= 0 {
            return Err(Refused::Budget(pdb.name.clone()));
        }
    }
    delete(state, namespace, name);
    Ok(())
}

/// Deletes a pod (no budget asked): a controller's pod is replaced, a bare one is gone.
pub(super) fn delete(state: &mut ClusterState, namespace: &str, name: &str) -> bool {
    let Some(i) = state
        .pods
        .iter()
        .position(|p| p.namespace == namespace && p.name == name)
    else {
        return false;
    };
    let p = state.pods.remove(i);
    if p.owner_kind == "Pod" {
        state
            .objects
            .retain(|o| !(o.kind == "Pod" && o.namespace == namespace && o.name == p.owner_name));
    }
    reconcile(state);
    true
}
