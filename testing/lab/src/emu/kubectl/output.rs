//! How kubectl prints: aligned tables (three spaces between columns), and objects as the
//! API server returns them (JSON with metadata and status).

use serde_json::{json, Value};

use super::{jsonpath, validate, Pod};
use crate::emu::cluster::{self, ClusterState, Node, Object};

/// A table printed like kubectl's tabwriter.
#[derive(Default)]
pub(in crate::emu) struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn header(&mut self, cols: &[&str]) {
        self.header = cols.iter().map(|c| c.to_string()).collect();
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn render(&self, no_headers: bool) -> String {
        let mut lines: Vec<&Vec<String>> = Vec::new();
        if !no_headers {
            lines.push(&self.header);
        }
        lines.extend(self.rows.iter());
        let cols = self.header.len();
        let widths: Vec<usize> = (0..cols)
            .map(|i| {
                lines
                    .iter()
                    .map(|l| l.get(i).map_or(0, |c| c.chars().count()))
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut out = String::new();
        for l in lines {
            let mut line = String::new();
            for (i, cell) in l.iter().enumerate() {
                if i + 1 == l.len() {
                    line.push_str(cell);
                } else {
                    line.push_str(&format!("{cell:<w$}   ", w = widths[i]));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// `DaemonSet` → `daemonsets`.
pub(super) fn plural(kind: &str) -> String {
    let k = kind.to_lowercase();
    if k.ends_with('s') {
        format!("{k}es")
    } else if let Some(stem) = k.strip_suffix('y') {
        format!("{stem}ies")
    } else {
        format!("{k}s")
    }
}

/// How apply and delete name a resource: `daemonset.apps`, `configmap`,
/// `clusterrole.rbac.authorization.k8s.io`.
pub(super) fn resource_name(kind: &str, api_version: &str) -> String {
    let api = if api_version.is_empty() {
        validate::builtin(kind)
            .and_then(|b| b.versions.first())
            .map(|v| v.0)
            .unwrap_or("v1")
    } else {
        api_version
    };
    match api.split_once('/') {
        Some((group, _)) => format!("{}.{group}", kind.to_lowercase()),
        None => kind.to_lowercase(),
    }
}

fn uid(seed: &str) -> String {
    let h = cluster::name_suffix(seed) + &cluster::name_suffix(&format!("{seed}#"));
    let hex: String = h
        .bytes()
        .map(|b| format!("{:02x}", b))
        .collect::<String>()
        .chars()
        .chain(std::iter::repeat('0'))
        .take(32)
        .collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

pub(super) fn node_json(state: &ClusterState, n: &Node, ready: bool) -> Value {
    let taints: Vec<Value> = n
        .taints
        .iter()
        .map(|t| {
            let mut v = json!({"key": t.key, "effect": t.effect});
            if !t.value.is_empty() {
                v["value"] = json!(t.value);
            }
            v
        })
        .collect();
    let (status, reason, message) = if ready {
        (
            "True",
            "KubeletReady",
            "kubelet is posting ready status".to_string(),
        )
    } else if !n.kubelet.running {
        (
            "Unknown",
            "NodeStatusUnknown",
            "Kubelet stopped posting node status.".to_string(),
        )
    } else {
        (
            "False",
            "KubeletNotReady",
            "container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady message:Network plugin returns error: cni plugin not initialized".to_string(),
        )
    };
    let mut spec = json!({});
    if let Some(c) = &n.pod_cidr {
        spec["podCIDR"] = json!(c);
        spec["podCIDRs"] = json!([c]);
    }
    let mut taints = taints;
    if n.unschedulable {
        spec["unschedulable"] = json!(true);
        // The node lifecycle controller's taint for a cordoned node.
        taints.push(
            json!({"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule",
            "timeAdded": cluster::rfc3339(n.created)}),
        );
    }
    if !taints.is_empty() {
        spec["taints"] = json!(taints);
    }
    let _ = state;
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": n.name,
            "labels": n.labels,
            "annotations": {"kubeadm.alpha.kubernetes.io/cri-socket": "unix:///var/run/containerd/containerd.sock",
                "node.alpha.kubernetes.io/ttl": "0",
                "volumes.kubernetes.io/controller-managed-attach-detach": "true"},
            "creationTimestamp": cluster::rfc3339(n.created),
            "uid": uid(&n.name),
        },
        "spec": spec,
        "status": {
            "addresses": [{"address": n.address, "type": "InternalIP"}, {"address": n.name, "type": "Hostname"}],
            "conditions": [{"type": "Ready", "status": status, "reason": reason, "message": message,
                "lastHeartbeatTime": cluster::rfc3339(cluster::now()),
                "lastTransitionTime": cluster::rfc3339(n.created)}],
            "nodeInfo": {"architecture": n.arch, "containerRuntimeVersion": n.container_runtime,
                "kernelVersion": n.kernel, "kubeProxyVersion": n.kubelet_version,
                "kubeletVersion": n.kubelet_version, "operatingSystem": "linux", "osImage": n.os_image},
        },
    })
}

pub(super) fn pod_json(p: &Pod) -> Value {
    let containers: Vec<Value> = p
        .containers
        .iter()
        .zip(&p.images)
        .map(|(n, i)| json!({"name": n, "image": i}))
        .collect();
    let running = p.status == "Running";
    let statuses: Vec<Value> = p
        .containers
        .iter()
        .zip(&p.images)
        .map(|(n, i)| json!({"name": n, "image": i, "ready": running, "restartCount": 0,
            "started": running, "state": if running { json!({"running": {"startedAt": cluster::rfc3339(p.created)}}) } else { json!({"waiting": {"reason": "ContainerCreating"}}) }}))
        .collect();
    let (kind, owner) = p.owner.split_once('/').unwrap_or(("", ""));
    let mut spec = json!({"containers": containers, "hostNetwork": p.host_network});
    if let Some(n) = &p.node {
        spec["nodeName"] = json!(n);
    }
    let phase = if running { "Running" } else { "Pending" };
    let mut status = json!({"phase": phase, "containerStatuses": statuses,
        "conditions": [{"type": "Ready", "status": if running { "True" } else { "False" }}]});
    if let Some(ip) = &p.ip {
        status["podIP"] = json!(ip);
    }
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": p.name, "namespace": p.namespace,
            "creationTimestamp": cluster::rfc3339(p.created), "uid": uid(&p.name),
            "ownerReferences": if kind == "Pod" { json!([]) } else { json!([{"kind": kind, "name": owner, "controller": true}]) }},
        "spec": spec,
        "status": status,
    })
}

pub(super) fn object_json(o: &Object, pod_statuses: &[&str]) -> Value {
    let mut v = o.body.clone();
    if let Some(meta) = v.get_mut("metadata").and_then(|m| m.as_object_mut()) {
        if !o.namespace.is_empty() {
            meta.insert("namespace".into(), json!(o.namespace));
        }
        meta.insert(
            "creationTimestamp".into(),
            json!(cluster::rfc3339(o.created)),
        );
        meta.insert(
            "uid".into(),
            json!(uid(&format!("{}/{}/{}", o.kind, o.namespace, o.name))),
        );
        meta.insert("resourceVersion".into(), json!("1"));
        meta.insert("generation".into(), json!(1));
    }
    let n = pod_statuses.len();
    let running = pod_statuses.iter().filter(|s| **s == "Running").count();
    match o.kind.as_str() {
        "DaemonSet" => {
            v["status"] = json!({"currentNumberScheduled": n, "desiredNumberScheduled": n,
                "numberAvailable": running, "numberMisscheduled": 0, "numberReady": running,
                "observedGeneration": 1, "updatedNumberScheduled": n});
        }
        "Deployment" | "ReplicaSet" => {
            v["status"] = json!({"availableReplicas": running, "readyReplicas": running,
                "replicas": n, "updatedReplicas": n, "observedGeneration": 1});
        }
        "Namespace" => {
            v["status"] = json!({"phase": "Active"});
        }
        _ => {}
    }
    v
}

/// `-o custom-columns=NAME:.metadata.name,ARCH:.status.nodeInfo.architecture`.
pub(super) fn custom_columns(
    spec: &str,
    items: &[Value],
    no_headers: bool,
) -> Result<String, String> {
    let mut table = Table::default();
    let mut cols = Vec::new();
    for c in spec.split(',') {
        let (name, path) = c
            .split_once(':')
            .ok_or_else(|| format!("error: expected <header>:<json-path-expr>, got {c:?}"))?;
        cols.push((name.to_string(), path.to_string()));
    }
    table.header(&cols.iter().map(|c| c.0.as_str()).collect::<Vec<_>>());
    for item in items {
        let mut row = Vec::new();
        for (_, path) in &cols {
            let p = if path.starts_with('{') {
                path.clone()
            } else {
                format!("{{{path}}}")
            };
            let v = jsonpath::render(&p, item).unwrap_or_default();
            row.push(if v.is_empty() { "<none>".into() } else { v });
        }
        table.row(row);
    }
    Ok(table.render(no_headers))
}
