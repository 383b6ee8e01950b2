//! `kubectl cordon|uncordon NODE...` and `kubectl drain NODE`, with kubectl's messages
//! (staging/src/k8s.io/kubectl/pkg/drain and pkg/cmd/drain):
//!
//! - cordon sets `spec.unschedulable` (`node/x cordoned`, `node/x already cordoned`);
//!   every change is also appended to the cluster's [`cluster::CORDON_LOG`];
//! - drain cordons, then sorts the node's pods as kubectl's filters do: mirror (static)
//!   pods are skipped; DaemonSet pods are an error without `--ignore-daemonsets` (a
//!   warning with it); pods with an emptyDir without `--delete-emptydir-data`, and pods
//!   with no controller without `--force`, are errors. Errors stop the drain before any
//!   eviction: `error: unable to drain node "x" due to error: ..., continuing command...`,
//!   the pending nodes, the errors, exit 1; the node stays cordoned.
//! - the rest are evicted through the eviction API (`evicting pod ns/name`, `pod/name
//!   evicted`); one that a PodDisruptionBudget protects is refused with 429 and retried
//!   every 5 s (`error when evicting pods/"name" -n "ns" (will retry after 5s): Cannot
//!   evict pod as it would violate the pod's disruption budget.`) until `--timeout`
//!   (0, the default: forever), then `... global timeout reached: 1m0s`, exit 1.
//!   `--disable-eviction` deletes instead (no budget asked: `pod/name deleted`).
//!
//! With durations on, a drain that evicts anything takes the profile's `drain_ms` (the
//! pods' termination grace period and their deletion).

use super::workloads::{self, Refused};
use super::{pods, reconciled, Args, Conn};
use crate::emu::cluster;
use crate::emu::Invocation;

/// The nodes a command names (`NODE...` or `-l selector`), checked to exist.
fn named_nodes(inv: &Invocation, args: &Args, verb: &str) -> Result<Vec<String>, String> {
    let state = cluster::read(inv)?;
    let mut names: Vec<String> = args
        .words
        .iter()
        .skip(1)
        .map(|w| w.strip_prefix("node/").unwrap_or(w).to_string())
        .collect();
    if let Some(sel) = args.get("selector") {
        let sel = super::parse_selector(sel);
        names.extend(
            state
                .nodes
                .values()
                .filter(|n| super::selector_matches(&sel, &n.labels))
                .map(|n| n.name.clone()),
        );
    }
    if names.is_empty() {
        return Err(format!(
            "error: USAGE: {verb} NODE [flags]\nSee 'kubectl {verb} -h' for help and examples"
        ));
    }
    for n in &names {
        if !state.nodes.contains_key(n) {
            return Err(format!(
                "Error from server (NotFound): nodes \"{n}\" not found"
            ));
        }
    }
    Ok(names)
}

/// Sets `spec.unschedulable` on one node; prints what kubectl prints.
fn set_unschedulable(inv: &mut Invocation, node: &str, cordon: bool) -> Result<(), String> {
    let mut locked = cluster::lock(inv)?;
    let n = locked
        .state
        .nodes
        .get_mut(node)
        .ok_or_else(|| format!("Error from server (NotFound): nodes \"{node}\" not found"))?;
    let verb = if cordon { "cordoned" } else { "uncordoned" };
    if n.unschedulable == cordon {
        inv.outln(&format!("node/{node} already {verb}"));
        return Ok(());
    }
    n.unschedulable = cordon;
    locked.log_cordon(node, cordon, &inv.hostname());
    locked.save()?;
    inv.outln(&format!("node/{node} {verb}"));
    Ok(())
}

/// `kubectl cordon` (`cordon` true) or `uncordon`.
pub(super) fn cordon(
    inv: &mut Invocation,
    args: &Args,
    _conn: &Conn,
    cordon: bool,
) -> Result<(), String> {
    let verb = if cordon { "cordon" } else { "uncordon" };
    not_a_dry_run(args, verb)?;
    for node in named_nodes(inv, args, verb)? {
        set_unschedulable(inv, &node, cordon)?;
    }
    Ok(())
}

/// `--dry-run` is not emulated: refused rather than ignored (ignoring it would change
/// the cluster).
fn not_a_dry_run(args: &Args, verb: &str) -> Result<(), String> {
    match args.get("dry-run") {
        None | Some("none") | Some("false") => Ok(()),
        Some(_) => Err(format!(
            "k8sup-lab: kubectl {verb} --dry-run is not emulated"
        )),
    }
}

/// Go's rendering of a duration of whole seconds (`10s`, `1m0s`, `1h0m0s`).
fn go_duration(secs: u64) -> String {
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m{}s", s / 60, s % 60),
        s => format!("{}h{}m{}s", s / 3600, s / 60 % 60, s % 60),
    }
}

/// What kubectl's filters decided for one pod.
enum Verdict {
    Skip,
    Warn(&'static str),
    Delete,
    Error(String),
}

pub(super) fn drain(
    inv: &mut Invocation,
    args: &Args,
    _conn: &Conn,
    kubectl_version: &str,
) -> Result<(), String> {
    let minor = cluster::semver(kubectl_version).map_or(30, |v| v.1);
    let timeout = match args.get("timeout") {
        Some(t) => Some(cluster::parse_go_duration(t).ok_or_else(|| {
            format!(
                "invalid argument \"{t}\" for \"--timeout\" flag: time: invalid duration \"{t}\""
            )
        })?)
        .filter(|s| *s > 0),
        None => None,
    };
    let ignore_ds = args.on("ignore-daemonsets");
    let delete_emptydir = args.on("delete-emptydir-data") || args.on("delete-local-data");
    let force = args.on("force");
    let disable_eviction = args.on("disable-eviction");
    not_a_dry_run(args, "drain")?;
    let pod_selector = args.get("pod-selector").map(super::parse_selector);
    let nodes = named_nodes(inv, args, "drain")?;
    for (i, node) in nodes.iter().enumerate() {
        set_unschedulable(inv, node, true)?;
        let state = reconciled(inv)?;
        let mut errors: Vec<(String, Vec<String>)> = Vec::new();
        let mut warnings: Vec<(&str, Vec<String>)> = Vec::new();
        let mut doomed: Vec<(String, String)> = Vec::new();
        for p in pods(&state)
            .into_iter()
            .filter(|p| p.node.as_deref() == Some(node.as_str()))
        {
            let (kind, owner) = p.owner.split_once('/').unwrap_or(("", ""));
            let object = state.object(kind, &p.namespace, owner);
            // --pod-selector: only the pods whose labels match are drained at all.
            if let Some(sel) = &pod_selector {
                let labels = match object {
                    Some(o) => workloads::pod_labels(o),
                    // A mirror pod: kubeadm's labels.
                    None => [
                        ("component".to_string(), p.containers.join("")),
                        ("tier".to_string(), "control-plane".to_string()),
                    ]
                    .into(),
                };
                if !super::selector_matches(sel, &labels) {
                    continue;
                }
            }
            let empty_dir = object
                .and_then(workloads::pod_spec)
                .and_then(|s| s.get("volumes"))
                .and_then(|v| v.as_array())
                .is_some_and(|v| v.iter().any(|v| v.get("emptyDir").is_some()));
            let verdict = match kind {
                // A mirror pod: the kubelet's own, never deleted through the API.
                "Node" => Verdict::Skip,
                "DaemonSet" if ignore_ds => Verdict::Warn("ignoring DaemonSet-managed Pods"),
                "DaemonSet" => Verdict::Error(
                    "DaemonSet-managed Pods (use --ignore-daemonsets to ignore)".into(),
                ),
                _ if empty_dir && !delete_emptydir => Verdict::Error(
                    "Pods with local storage (use --delete-emptydir-data to override)".into(),
                ),
                "Pod" if !force => Verdict::Error(if minor >= 32 {
                    // kubectl 1.32 put "cannot delete" into the message as well.
                    "cannot delete Pods that declare no controller (use --force to override)".into()
                } else {
                    "Pods declare no controller (use --force to override)".into()
                }),
                "Pod" => Verdict::Warn("deleting Pods that declare no controller"),
                _ if empty_dir => Verdict::Warn("deleting Pods with local storage"),
                _ => Verdict::Delete,
            };
            let name = format!("{}/{}", p.namespace, p.name);
            match verdict {
                Verdict::Skip => continue,
                Verdict::Error(msg) => match errors.iter_mut().find(|(m, _)| *m == msg) {
                    Some((_, list)) => list.push(name),
                    None => errors.push((msg, vec![name])),
                },
                Verdict::Warn(msg) => {
                    match warnings.iter_mut().find(|(m, _)| *m == msg) {
                        Some((_, list)) => list.push(name),
                        None => warnings.push((msg, vec![name])),
                    }
                    if !msg.starts_with("ignoring") {
                        doomed.push((p.namespace.clone(), p.name.clone()));
                    }
                }
                Verdict::Delete => doomed.push((p.namespace.clone(), p.name.clone())),
            }
        }
        let errors: Vec<String> = errors
            .into_iter()
            .map(|(msg, pods)| format!("cannot delete {msg}: {}", pods.join(", ")))
            .collect();
        if !errors.is_empty() {
            return Err(unable(inv, &nodes[i..], node, &errors, minor));
        }
        if !warnings.is_empty() {
            let text: Vec<String> = warnings
                .iter()
                .map(|(m, p)| format!("{m}: {}", p.join(", ")))
                .collect();
            inv.errln(&format!("Warning: {}", text.join("; ")));
        }
        let failures = if disable_eviction {
            delete_all(inv, node, &doomed)?;
            Vec::new()
        } else {
            evict_all(inv, node, &doomed, timeout)?
        };
        if !failures.is_empty() {
            return Err(unable(inv, &nodes[i..], node, &failures, minor));
        }
        inv.outln(&format!("node/{node} drained"));
    }
    Ok(())
}

/// kubectl's report of a node it could not drain; the message to end with.
fn unable(
    inv: &mut Invocation,
    pending: &[String],
    node: &str,
    errors: &[String],
    minor: u32,
) -> String {
    // utilerrors.Aggregate prints one error as itself, several as "[a, b]".
    let aggregate = if errors.len() == 1 {
        errors[0].clone()
    } else {
        format!("[{}]", errors.join(", "))
    };
    let space = if minor >= 31 { " " } else { "" };
    inv.errln(&format!(
        "error: unable to drain node \"{node}\" due to error:{space}{aggregate}, continuing command..."
    ));
    inv.errln("There are pending nodes to be drained:");
    for n in pending {
        inv.errln(&format!(" {n}"));
    }
    errors.join("\n")
}

fn spend_drain(node: &str, any: bool) {
    if any {
        crate::durations::hooks::step("drain", node, |d| d.steps.drain_ms);
    }
}

/// `--disable-eviction`: plain deletes, no budget asked.
fn delete_all(inv: &mut Invocation, node: &str, doomed: &[(String, String)]) -> Result<(), String> {
    let mut locked = cluster::lock(inv)?;
    let mut deleted = Vec::new();
    for (ns, name) in doomed {
        if workloads::delete(&mut locked.state, ns, name) {
            deleted.push(name.clone());
        }
    }
    locked.save()?;
    drop(locked);
    spend_drain(node, !deleted.is_empty());
    for name in deleted {
        inv.outln(&format!("pod/{name} deleted"));
    }
    Ok(())
}

/// Evicts every pod, retrying the ones a budget protects every 5 s until `timeout`;
/// returns the errors of those that timed out.
fn evict_all(
    inv: &mut Invocation,
    node: &str,
    doomed: &[(String, String)],
    timeout: Option<u64>,
) -> Result<Vec<String>, String> {
    let start = std::time::Instant::now();
    let retry_ms = crate::durations::hooks::active().map_or(5000, |a| a.scaled(5000));
    let mut pending: Vec<(String, String)> = doomed.to_vec();
    let mut evicted_any = false;
    let mut failures = Vec::new();
    loop {
        let mut evicted = Vec::new();
        let mut blocked = Vec::new();
        for (ns, name) in &pending {
            inv.outln(&format!("evicting pod {ns}/{name}"));
        }
        if let Some(t) = timeout {
            if start.elapsed().as_secs() >= t {
                for (ns, name) in &pending {
                    failures.push(format!(
                        "error when evicting pods/\"{name}\" -n \"{ns}\": global timeout reached: {}",
                        go_duration(t)
                    ));
                }
                break;
            }
        }
        {
            let mut locked = cluster::lock(inv)?;
            for (ns, name) in &pending {
                match workloads::evict(&mut locked.state, ns, name) {
                    Ok(()) => evicted.push(name.clone()),
                    Err(Refused::NotFound) => {}
                    Err(Refused::Budget(_)) => blocked.push((ns.clone(), name.clone())),
                }
            }
            locked.save()?;
        }
        for (ns, name) in &blocked {
            inv.errln(&format!("error when evicting pods/\"{name}\" -n \"{ns}\" (will retry after 5s): Cannot evict pod as it would violate the pod's disruption budget."));
        }
        if !evicted.is_empty() && !evicted_any {
            evicted_any = true;
            spend_drain(node, true);
        }
        for name in &evicted {
            inv.outln(&format!("pod/{name} evicted"));
        }
        if blocked.is_empty() {
            break;
        }
        pending = blocked;
        // Flush what was said so far: a watcher sees the retries as they happen.
        flush(inv);
        std::thread::sleep(std::time::Duration::from_millis(retry_ms));
    }
    Ok(failures)
}

/// Writes the output gathered so far (a long drain shows its progress).
fn flush(inv: &mut Invocation) {
    use std::io::Write;
    if cfg!(test) {
        // Unit tests read the whole output from the invocation.
        return;
    }
    let _ = std::io::stdout().write_all(inv.stdout.as_bytes());
    let _ = std::io::stderr().write_all(inv.stderr.as_bytes());
    let _ = std::io::stdout().flush();
    inv.stdout.clear();
    inv.stderr.clear();
}

#[cfg(test)]
mod tests {
    use crate::distro::Arch;
    use crate::emu::cluster::{self, ClusterState};
    use crate::emu::kubeadm::tests::ready_host;
    use crate::emu::kubectl::tests::{cluster_of_two, FLANNEL};
    use crate::emu::testing::FakeHost;

    const KC: &str = "--kubeconfig=/etc/kubernetes/admin.conf";

    const WEB: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: default
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: nginx:1.27
";

    const PDB: &str = "apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: web
  namespace: default
spec:
  minAvailable: 2
  selector:
    matchLabels: {app: web}
";

    /// A master and two Ready workers (amd64 node-2 beside arm64 node-1), flannel on.
    fn cluster() -> (std::path::PathBuf, FakeHost, FakeHost, FakeHost) {
        let (shared, m, n1) = cluster_of_two();
        let (_, cmd, _) = m.run("kubeadm", &["token", "create", "--print-join-command"]);
        let n2 = ready_host("node-2", "127.77.0.4", Arch::Amd64, &shared);
        let args: Vec<&str> = cmd.split_whitespace().skip(1).collect();
        let (s, _, err) = n2.run("kubeadm", &args);
        assert_eq!(s, 0, "{err}");
        m.write("/root/flannel.yaml", FLANNEL);
        let (s, _, err) = m.run("kubectl", &[KC, "apply", "-f", "/root/flannel.yaml"]);
        assert_eq!(s, 0, "{err}");
        (shared, m, n1, n2)
    }

    fn kubectl(m: &FakeHost, args: &[&str]) -> (i32, String, String) {
        let mut all = vec![KC];
        all.extend_from_slice(args);
        m.run("kubectl", &all)
    }

    fn pods_on(shared: &std::path::Path, node: &str, owner: &str) -> Vec<String> {
        ClusterState::read(shared)
            .expect("state")
            .pods
            .iter()
            .filter(|p| p.node.as_deref() == Some(node) && p.owner_name == owner)
            .map(|p| p.name.clone())
            .collect()
    }

    #[test]
    fn cordon_shows_scheduling_disabled_and_is_logged_in_order() {
        let (shared, m, _n1, _n2) = cluster();
        assert_eq!(
            kubectl(&m, &["cordon", "node-1"]),
            (0, "node/node-1 cordoned\n".into(), String::new())
        );
        assert_eq!(
            kubectl(&m, &["cordon", "node-1"]).1,
            "node/node-1 already cordoned\n"
        );
        let (_, out, _) = kubectl(&m, &["get", "nodes", "--no-headers"]);
        let row = out.lines().find(|l| l.starts_with("node-1 ")).expect("row");
        assert_eq!(
            row.split_whitespace().nth(1),
            Some("Ready,SchedulingDisabled")
        );
        let (_, json, _) = kubectl(
            &m,
            &[
                "get",
                "node",
                "node-1",
                "-o",
                "jsonpath={.spec.unschedulable}",
            ],
        );
        assert_eq!(json, "true");
        kubectl(&m, &["cordon", "node-2"]);
        assert_eq!(
            kubectl(&m, &["uncordon", "node-1"]).1,
            "node/node-1 uncordoned\n"
        );
        assert_eq!(
            kubectl(&m, &["uncordon", "node-1"]).1,
            "node/node-1 already uncordoned\n"
        );
        let (s, _, err) = kubectl(&m, &["cordon", "nope"]);
        assert_eq!(
            (s, err.as_str()),
            (
                1,
                "Error from server (NotFound): nodes \"nope\" not found\n"
            )
        );
        let events = cluster::cordon_events(&shared).expect("log");
        let seen: Vec<(&str, &str)> = events
            .iter()
            .map(|e| (e.node.as_str(), e.action.as_str()))
            .collect();
        assert_eq!(
            seen,
            [
                ("node-1", "cordon"),
                ("node-2", "cordon"),
                ("node-1", "uncordon")
            ]
        );
        assert!(events.windows(2).all(|w| w[0].at_ms <= w[1].at_ms));
        assert_eq!(cluster::most_cordoned_at_once(&events).0, 2);
    }

    #[test]
    fn daemonset_pods_stop_a_drain_unless_ignored_and_the_node_stays_cordoned() {
        let (shared, m, _n1, _n2) = cluster();
        let (s, out, err) = kubectl(&m, &["drain", "node-1"]);
        assert_eq!(s, 1);
        assert_eq!(out, "node/node-1 cordoned\n");
        let ds: Vec<String> = err
            .lines()
            .last()
            .expect("last")
            .trim_start_matches(
                "cannot delete DaemonSet-managed Pods (use --ignore-daemonsets to ignore): ",
            )
            .split(", ")
            .map(String::from)
            .collect();
        assert!(
            ds.iter().any(|p| p.starts_with("kube-system/kube-proxy-")),
            "{err}"
        );
        assert!(
            ds.iter()
                .any(|p| p.starts_with("kube-flannel/kube-flannel-ds-arm64-")),
            "{err}"
        );
        assert!(err.starts_with("error: unable to drain node \"node-1\" due to error:cannot delete DaemonSet-managed Pods (use --ignore-daemonsets to ignore): "), "{err}");
        assert!(err.contains(", continuing command...\nThere are pending nodes to be drained:\n node-1\ncannot delete DaemonSet-managed Pods"), "{err}");
        assert!(ClusterState::read(&shared).expect("state").nodes["node-1"].unschedulable);
        let (s, out, err) = kubectl(&m, &["drain", "node-1", "--ignore-daemonsets"]);
        assert_eq!(s, 0, "{err}");
        assert!(out.starts_with("node/node-1 already cordoned\n"), "{out}");
        assert!(out.ends_with("node/node-1 drained\n"), "{out}");
        assert!(
            err.starts_with("Warning: ignoring DaemonSet-managed Pods: "),
            "{err}"
        );
    }

    #[test]
    fn evicted_pods_come_back_on_other_nodes() {
        let (shared, m, _n1, _n2) = cluster();
        m.write("/root/web.yaml", WEB);
        assert_eq!(kubectl(&m, &["apply", "-f", "/root/web.yaml"]).0, 0);
        let (_, out, _) = kubectl(&m, &["get", "pods", "-o", "wide", "--no-headers"]);
        // Spread: one replica on each worker (the master is tainted).
        let nodes: Vec<&str> = out
            .lines()
            .filter(|l| l.starts_with("web-"))
            .map(|l| l.split_whitespace().nth(6).unwrap_or(""))
            .collect();
        assert_eq!(nodes.len(), 2, "{out}");
        assert!(
            nodes.contains(&"node-1") && nodes.contains(&"node-2"),
            "{out}"
        );
        let before = pods_on(&shared, "node-1", "web");
        let (s, out, err) = kubectl(
            &m,
            &[
                "drain",
                "node-1",
                "--ignore-daemonsets",
                "--delete-emptydir-data",
            ],
        );
        assert_eq!(s, 0, "{err}");
        assert!(
            out.contains(&format!("evicting pod default/{}\n", before[0])),
            "{out}"
        );
        assert!(
            out.contains(&format!("pod/{} evicted\n", before[0])),
            "{out}"
        );
        assert!(pods_on(&shared, "node-1", "web").is_empty());
        let on_2 = pods_on(&shared, "node-2", "web");
        assert_eq!(on_2.len(), 2);
        assert!(!on_2.contains(&before[0]), "the replacement has a new name");
        // Uncordoned, nothing moves back by itself, but new pods may land there again.
        assert_eq!(kubectl(&m, &["uncordon", "node-1"]).0, 0);
        assert_eq!(pods_on(&shared, "node-2", "web").len(), 2);
    }

    #[test]
    fn a_disruption_budget_blocks_the_drain_until_its_timeout() {
        let (shared, m, _n1, _n2) = cluster();
        m.write("/root/web.yaml", WEB);
        m.write("/root/pdb.yaml", PDB);
        assert_eq!(kubectl(&m, &["apply", "-f", "/root/web.yaml"]).0, 0);
        assert_eq!(kubectl(&m, &["apply", "-f", "/root/pdb.yaml"]).0, 0);
        let (_, out, _) = kubectl(&m, &["get", "pdb", "--no-headers"]);
        let cols: Vec<&str> = out.split_whitespace().collect();
        assert_eq!(&cols[..4], ["web", "2", "N/A", "0"], "{out}");
        let blocked = pods_on(&shared, "node-1", "web");
        assert_eq!(blocked.len(), 1);
        let pod = &blocked[0];
        let (s, out, err) = kubectl(
            &m,
            &[
                "drain",
                "node-1",
                "--ignore-daemonsets",
                "--delete-emptydir-data",
                "--timeout=1s",
            ],
        );
        assert_eq!(s, 1, "{out}{err}");
        assert!(err.contains(&format!("error when evicting pods/\"{pod}\" -n \"default\" (will retry after 5s): Cannot evict pod as it would violate the pod's disruption budget.\n")), "{err}");
        assert!(err.ends_with(&format!("There are pending nodes to be drained:\n node-1\nerror when evicting pods/\"{pod}\" -n \"default\": global timeout reached: 1s\n")), "{err}");
        assert!(!out.contains("drained"), "{out}");
        let state = ClusterState::read(&shared).expect("state");
        assert!(state.nodes["node-1"].unschedulable);
        assert_eq!(pods_on(&shared, "node-1", "web"), blocked);
        // minAvailable 1 lets one go: the drain finishes.
        m.write(
            "/root/pdb.yaml",
            &PDB.replace("minAvailable: 2", "minAvailable: 1"),
        );
        assert_eq!(kubectl(&m, &["apply", "-f", "/root/pdb.yaml"]).0, 0);
        let (s, out, err) = kubectl(&m, &["drain", "node-1", "--ignore-daemonsets"]);
        assert_eq!(s, 0, "{err}");
        assert!(
            out.ends_with(&format!("pod/{pod} evicted\nnode/node-1 drained\n")),
            "{out}"
        );
        // maxUnavailable 0 blocks again; --disable-eviction deletes through it.
        kubectl(&m, &["uncordon", "node-1"]);
        m.write(
            "/root/pdb.yaml",
            &PDB.replace("minAvailable: 2", "maxUnavailable: 0"),
        );
        assert_eq!(kubectl(&m, &["apply", "-f", "/root/pdb.yaml"]).0, 0);
        let on_2 = pods_on(&shared, "node-2", "web");
        let (s, out, err) = kubectl(
            &m,
            &[
                "drain",
                "node-2",
                "--ignore-daemonsets",
                "--disable-eviction",
            ],
        );
        assert_eq!(s, 0, "{err}");
        for p in on_2 {
            assert!(out.contains(&format!("pod/{p} deleted\n")), "{out}");
        }
    }

    #[test]
    fn bare_pods_need_force_and_emptydir_pods_need_delete_emptydir_data() {
        let (shared, m, _n1, _n2) = cluster();
        m.write(
            "/root/bare.yaml",
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: lonely\n  namespace: default\nspec:\n  nodeName: node-1\n  containers:\n  - name: c\n    image: busybox\n",
        );
        m.write(
            "/root/cache.yaml",
            &WEB.replace("name: web\n  namespace", "name: cache\n  namespace")
                .replace("app: web", "app: cache")
                .replace("    spec:\n      containers:", "    spec:\n      volumes:\n      - name: tmp\n        emptyDir: {}\n      containers:"),
        );
        assert_eq!(kubectl(&m, &["apply", "-f", "/root/bare.yaml"]).0, 0);
        assert_eq!(kubectl(&m, &["apply", "-f", "/root/cache.yaml"]).0, 0);
        let (s, _, err) = kubectl(&m, &["drain", "node-1", "--ignore-daemonsets"]);
        assert_eq!(s, 1);
        assert!(err.contains("cannot delete Pods declare no controller (use --force to override): default/lonely"), "{err}");
        let cache = pods_on(&shared, "node-1", "cache");
        assert!(err.contains(&format!("cannot delete Pods with local storage (use --delete-emptydir-data to override): default/{}", cache[0])), "{err}");
        assert!(
            err.contains("due to error:[cannot delete "),
            "two errors aggregate: {err}"
        );
        let (s, out, err) = kubectl(
            &m,
            &[
                "drain",
                "node-1",
                "--ignore-daemonsets",
                "--delete-emptydir-data",
                "--force",
            ],
        );
        assert_eq!(s, 0, "{err}");
        assert!(
            err.contains("deleting Pods that declare no controller: default/lonely"),
            "{err}"
        );
        assert!(out.contains("pod/lonely evicted\n"), "{out}");
        // A bare pod is gone for good.
        let state = ClusterState::read(&shared).expect("state");
        assert!(state.object("Pod", "default", "lonely").is_none());
        assert!(state.pods.iter().all(|p| p.name != "lonely"));
    }

    #[test]
    fn a_deleted_pod_is_replaced_under_a_new_name_and_a_scaled_down_one_goes() {
        let (shared, m, _n1, _n2) = cluster();
        m.write("/root/web.yaml", WEB);
        assert_eq!(kubectl(&m, &["apply", "-f", "/root/web.yaml"]).0, 0);
        kubectl(&m, &["get", "pods"]);
        let names = |shared: &std::path::Path| -> Vec<String> {
            ClusterState::read(shared)
                .expect("state")
                .pods
                .iter()
                .filter(|p| p.owner_name == "web")
                .map(|p| p.name.clone())
                .collect()
        };
        let before = names(&shared);
        assert_eq!(before.len(), 2);
        let (s, out, err) = kubectl(&m, &["delete", "pod", &before[0]]);
        assert_eq!(s, 0, "{err}");
        assert_eq!(out, format!("pod \"{}\" deleted\n", before[0]));
        let after = names(&shared);
        assert_eq!(after.len(), 2);
        assert!(!after.contains(&before[0]) && after.contains(&before[1]));
        m.write("/root/web.yaml", &WEB.replace("replicas: 2", "replicas: 1"));
        assert_eq!(kubectl(&m, &["apply", "-f", "/root/web.yaml"]).0, 0);
        kubectl(&m, &["get", "pods"]);
        assert_eq!(names(&shared), [before[1].clone()], "the newest goes first");
    }

    #[test]
    fn a_pod_selector_drains_only_the_matching_pods_and_dry_runs_are_refused() {
        let (shared, m, _n1, _n2) = cluster();
        m.write("/root/web.yaml", WEB);
        assert_eq!(kubectl(&m, &["apply", "-f", "/root/web.yaml"]).0, 0);
        kubectl(&m, &["get", "pods"]);
        let web = pods_on(&shared, "node-1", "web");
        // Only the web pods: the DaemonSet pods are not even considered.
        let (s, out, err) = kubectl(&m, &["drain", "node-1", "--pod-selector", "app=web"]);
        assert_eq!(s, 0, "{err}");
        assert!(out.contains(&format!("pod/{} evicted\n", web[0])), "{out}");
        assert!(!out.contains("coredns"), "{out}");
        let (s, _, err) = kubectl(&m, &["drain", "node-2", "--dry-run=client"]);
        assert_eq!(
            (s, err.as_str()),
            (1, "k8sup-lab: kubectl drain --dry-run is not emulated\n")
        );
        assert!(!ClusterState::read(&shared).expect("state").nodes["node-2"].unschedulable);
    }

    #[test]
    fn the_node_reports_the_kubelet_it_runs_not_the_one_installed() {
        let (shared, m, n1, _n2) = cluster();
        let version = |n: &str| {
            ClusterState::read(&shared).expect("state").nodes[n]
                .kubelet_version
                .clone()
        };
        assert_eq!(version("node-1"), "v1.30.4");
        crate::emu::kubelet::tests::install(&n1, &[("kubelet", "1.31.2-1.1")]);
        crate::emu::kubelet::sync(&crate::emu::Invocation::new(&n1.root, "apt-get", &[], 0));
        assert_eq!(version("node-1"), "v1.30.4", "not restarted yet");
        assert_eq!(n1.run("systemctl", &["restart", "kubelet"]).0, 0);
        crate::emu::kubelet::sync(&crate::emu::Invocation::new(&n1.root, "systemctl", &[], 0));
        assert_eq!(version("node-1"), "v1.31.2");
        let (_, out, _) = kubectl(&m, &["get", "nodes", "--no-headers"]);
        let row = out.lines().find(|l| l.starts_with("node-1 ")).expect("row");
        assert_eq!(row.split_whitespace().nth(4), Some("v1.31.2"));
    }
}
