//! `kubectl` against the lab's shared cluster state: `version`, `cluster-info`, `get`
//! (nodes, pods, daemonsets and the other kinds CNIs ship; table, wide, json, yaml, name
//! and jsonpath output), `apply -f`, `delete`, `label`, `taint` and `wait`.
//!
//! The kubeconfig is found like the real kubectl finds it (`--kubeconfig`, `$KUBECONFIG`,
//! `~/.kube/config`; without one the server is localhost:8080 and the connection is
//! refused), and must name the cluster's endpoint and CA. `apply` validates like the API
//! server: unknown kinds and removed APIs (PodSecurityPolicy from 1.25) have no mapping,
//! unknown fields are a strict-decoding error, a DaemonSet or Deployment needs a selector
//! matching its template's labels and containers with images, a namespaced object needs
//! its namespace. DaemonSet pods are scheduled on the nodes whose labels (per-host
//! `kubernetes.io/arch`), affinity and taints admit them; a node is Ready when its kubelet
//! runs and a CNI DaemonSet (one mounting `/etc/cni/net.d`) has a pod on it.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::cluster::{self, ClusterState, Node, Object};
use super::Invocation;

mod drain;
mod jsonpath;
mod output;
mod readiness;
mod validate;
mod workloads;

pub(super) use output::Table;

/// Parsed command line: flags by name and positional words.
struct Args {
    flags: BTreeMap<String, Vec<String>>,
    words: Vec<String>,
}

const VALUE_FLAGS: &[&str] = &[
    "kubeconfig",
    "namespace",
    "output",
    "filename",
    "for",
    "timeout",
    "selector",
    "request-timeout",
    "v",
    "context",
    "server",
    "field-manager",
    "validate",
    "grace-period",
    "pod-selector",
    "skip-wait-for-delete-timeout",
    "chunk-size",
];

impl Args {
    fn parse(args: &[String]) -> Result<Args, String> {
        let mut a = Args {
            flags: BTreeMap::new(),
            words: Vec::new(),
        };
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            let (name, inline) = if let Some(long) = arg.strip_prefix("--") {
                match long.split_once('=') {
                    Some((n, v)) => (n.to_string(), Some(v.to_string())),
                    None => (long.to_string(), None),
                }
            } else if arg.len() >= 2 && arg.starts_with('-') && arg != "-" {
                let short = &arg[1..2];
                let rest = &arg[2..];
                let long = match short {
                    "n" => "namespace",
                    "o" => "output",
                    "f" => "filename",
                    "l" => "selector",
                    "A" => "all-namespaces",
                    "v" => "v",
                    "w" => "watch",
                    other => return Err(format!("unknown shorthand flag: '{other}' in {arg}")),
                };
                let rest = rest.strip_prefix('=').unwrap_or(rest);
                (
                    long.to_string(),
                    (!rest.is_empty()).then(|| rest.to_string()),
                )
            } else {
                a.words.push(arg.clone());
                continue;
            };
            let value = if VALUE_FLAGS.contains(&name.as_str()) {
                match inline {
                    Some(v) => v,
                    None => it
                        .next()
                        .cloned()
                        .ok_or_else(|| format!("flag needs an argument: --{name}"))?,
                }
            } else {
                inline.unwrap_or_else(|| "true".into())
            };
            a.flags.entry(name).or_default().push(value);
        }
        Ok(a)
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.flags
            .get(name)
            .and_then(|v| v.last())
            .map(String::as_str)
    }

    fn on(&self, name: &str) -> bool {
        self.get(name).is_some_and(|v| v != "false")
    }
}

pub fn run(inv: &mut Invocation) -> i32 {
    let version = match cluster::package_version(inv, "kubectl") {
        Ok(v) => v,
        Err(e) => {
            inv.errln(&e);
            return 127;
        }
    };
    let args = match Args::parse(&inv.args.clone()) {
        Ok(a) => a,
        Err(e) => {
            inv.errln(&format!("error: {e}\nSee 'kubectl --help' for usage."));
            return 1;
        }
    };
    let verb = args.words.first().cloned().unwrap_or_default();
    let result = match verb.as_str() {
        "version" => version_cmd(inv, &version, &args),
        "" => {
            inv.outln("kubectl controls the Kubernetes cluster manager.\n\n Find more information at: https://kubernetes.io/docs/reference/kubectl/");
            Ok(())
        }
        _ => connect(inv, &args).and_then(|conn| match verb.as_str() {
            "get" => get(inv, &args, &conn),
            "apply" => apply(inv, &args, &conn, Mode::Apply),
            "create" => apply(inv, &args, &conn, Mode::Create),
            // Like the real one: exit 1, and the differences, when the live objects differ.
            "diff" => apply(inv, &args, &conn, Mode::Diff),
            "delete" => delete(inv, &args, &conn),
            "label" => label(inv, &args, &conn),
            "taint" => taint(inv, &args, &conn),
            "cordon" => drain::cordon(inv, &args, &conn, true),
            "uncordon" => drain::cordon(inv, &args, &conn, false),
            "drain" => drain::drain(inv, &args, &conn, &version),
            "wait" => wait(inv, &args, &conn),
            "cluster-info" => {
                inv.outln(&format!(
                    "Kubernetes control plane is running at https://{}\nCoreDNS is running at https://{}/api/v1/namespaces/kube-system/services/kube-dns:dns/proxy\n\nTo further debug and diagnose cluster problems, use 'kubectl cluster-info dump'.",
                    conn.endpoint, conn.endpoint
                ));
                Ok(())
            }
            other => Err(format!(
                "error: unknown command \"{other}\" for \"kubectl\"\n\nDid you mean this?\n\tget"
            )),
        }),
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            if !e.is_empty() {
                inv.errln(&e);
            }
            1
        }
    }
}

fn version_cmd(inv: &mut Invocation, version: &str, args: &Args) -> Result<(), String> {
    let (major, minor, _) = cluster::semver(version).unwrap_or((1, 0, 0));
    let arch = inv.profile().map(|p| p.arch.as_str()).unwrap_or("amd64");
    let info = |v: &str| {
        json!({"buildDate": "2024-08-14T19:04:44Z", "compiler": "gc",
            "gitCommit": "a51b3b711150f57ffc1f526a640ec058514ed596", "gitTreeState": "clean",
            "gitVersion": format!("v{v}"), "goVersion": "go1.22.5",
            "major": major.to_string(), "minor": minor.to_string(), "platform": format!("linux/{arch}")})
    };
    let kustomize = "v5.0.4-0.20230601165947-6ce0bf390ce3";
    let mut doc = json!({"clientVersion": info(version), "kustomizeVersion": kustomize});
    let server = if args.on("client") {
        None
    } else {
        let conn = connect(inv, args)?;
        let v = conn.state.kubernetes_version.clone();
        doc["serverVersion"] = info(&v);
        Some(v)
    };
    match args.get("output").unwrap_or("") {
        "yaml" => inv.out(&serde_norway::to_string(&doc).map_err(|e| e.to_string())?),
        "json" => inv.outln(&serde_json::to_string_pretty(&doc).map_err(|e| e.to_string())?),
        "" => {
            inv.outln(&format!(
                "Client Version: v{version}\nKustomize Version: {kustomize}"
            ));
            if let Some(v) = server {
                inv.outln(&format!("Server Version: v{v}"));
            }
        }
        other => {
            return Err(format!(
                "error: --output must be 'yaml' or 'json' (got {other:?})"
            ))
        }
    }
    Ok(())
}

/// The state after the controllers and the scheduler caught up with it (saved if they
/// changed anything).
fn reconciled(inv: &Invocation) -> Result<ClusterState, String> {
    let mut locked = cluster::lock(inv)?;
    if locked.state.initialized && workloads::reconcile(&mut locked.state) {
        locked.save()?;
    }
    Ok(locked.state)
}

/// A connection to the cluster through a kubeconfig.
struct Conn {
    endpoint: String,
    state: ClusterState,
}

fn kubeconfig_path(inv: &Invocation, args: &Args) -> Option<String> {
    if let Some(p) = args.get("kubeconfig") {
        return Some(p.to_string());
    }
    if let Ok(list) = std::env::var("KUBECONFIG") {
        if let Some(p) = list
            .split(':')
            .find(|p| !p.is_empty() && inv.path(p).exists())
        {
            return Some(p.to_string());
        }
    }
    let home = std::env::var("HOME").unwrap_or_else(|_| {
        if inv.uid == 0 {
            "/root".into()
        } else {
            "/home/k8sup".into()
        }
    });
    let p = format!("{}/.kube/config", home.trim_end_matches('/'));
    inv.path(&p).exists().then_some(p)
}

fn connect(inv: &Invocation, args: &Args) -> Result<Conn, String> {
    let refused = |server: &str| {
        format!("The connection to the server {server} was refused - did you specify the right host or port?")
    };
    let Some(path) = kubeconfig_path(inv, args) else {
        return Err(refused("localhost:8080"));
    };
    let text = inv.read(&path).map_err(|e| {
        let why = match e.kind() {
            std::io::ErrorKind::NotFound => "no such file or directory".to_string(),
            std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
            _ => e.to_string(),
        };
        format!("error: error loading config file \"{path}\": open {path}: {why}")
    })?;
    let config = cluster::yaml_documents(&text)
        .ok()
        .and_then(|d| d.into_iter().next())
        .ok_or_else(|| format!("error: error loading config file \"{path}\": couldn't get version/kind; json parse error"))?;
    let clusters = config.get("clusters").and_then(|c| c.as_array());
    let first = clusters.and_then(|c| c.first());
    let server = first
        .map(|c| cluster::str_at(c, &["cluster", "server"]))
        .unwrap_or("");
    if server.is_empty() {
        return Err(refused("localhost:8080"));
    }
    let host_port = server
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let state = reconciled(inv)?;
    if super::apiserver::dials_for_real(inv) {
        // A namespaced host dials its server for real, through whatever balancer is there.
        let dial = super::apiserver::dial(&host_port);
        if let Some(e) = super::apiserver::kubectl_error(&host_port, &dial) {
            return Err(e);
        }
    }
    let reaches = state.initialized
        && (super::apiserver::dials_for_real(inv)
            || host_port == state.endpoint
            || super::kubeadm::resolve(inv, &host_port).ok()
                == super::kubeadm::resolve(inv, &state.endpoint).ok());
    if !reaches || !super::etcd::api_available(inv, &state) {
        return Err(refused(&host_port));
    }
    let ca = first
        .map(|c| cluster::str_at(c, &["cluster", "certificate-authority-data"]))
        .unwrap_or("");
    if ca != super::kubeadm::ca_data(&state.ca_id) {
        return Err("Unable to connect to the server: tls: failed to verify certificate: x509: certificate signed by unknown authority".into());
    }
    Ok(Conn {
        endpoint: host_port,
        state,
    })
}

// ---- what the cluster shows ----

/// The API resource a command names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Resource {
    Nodes,
    Pods,
    Kind(&'static str),
}

fn resource(word: &str) -> Option<Resource> {
    let w = word.to_lowercase();
    let w = w.split('.').next().unwrap_or("");
    Some(match w {
        "node" | "nodes" | "no" => Resource::Nodes,
        "pod" | "pods" | "po" => Resource::Pods,
        "daemonset" | "daemonsets" | "ds" => Resource::Kind("DaemonSet"),
        "deployment" | "deployments" | "deploy" => Resource::Kind("Deployment"),
        "replicaset" | "replicasets" | "rs" => Resource::Kind("ReplicaSet"),
        "poddisruptionbudget" | "poddisruptionbudgets" | "pdb" => {
            Resource::Kind("PodDisruptionBudget")
        }
        "namespace" | "namespaces" | "ns" => Resource::Kind("Namespace"),
        "configmap" | "configmaps" | "cm" => Resource::Kind("ConfigMap"),
        "secret" | "secrets" => Resource::Kind("Secret"),
        "service" | "services" | "svc" => Resource::Kind("Service"),
        "serviceaccount" | "serviceaccounts" | "sa" => Resource::Kind("ServiceAccount"),
        "clusterrole" | "clusterroles" => Resource::Kind("ClusterRole"),
        "clusterrolebinding" | "clusterrolebindings" => Resource::Kind("ClusterRoleBinding"),
        "role" | "roles" => Resource::Kind("Role"),
        "rolebinding" | "rolebindings" => Resource::Kind("RoleBinding"),
        "customresourcedefinition" | "customresourcedefinitions" | "crd" | "crds" => {
            Resource::Kind("CustomResourceDefinition")
        }
        _ => return None,
    })
}

/// Whether a kind lives in a namespace.
fn namespaced(state: &ClusterState, kind: &str) -> bool {
    match validate::builtin(kind) {
        Some(k) => k.namespaced,
        None => state
            .objects
            .iter()
            .filter(|o| o.kind == "CustomResourceDefinition")
            .find(|o| cluster::str_at(&o.body, &["spec", "names", "kind"]) == kind)
            .is_none_or(|crd| cluster::str_at(&crd.body, &["spec", "scope"]) != "Cluster"),
    }
}

/// The DaemonSets that install a CNI: they put a config into /etc/cni/net.d.
fn is_cni(ds: &Object) -> bool {
    ds.kind == "DaemonSet"
        && ds
            .body
            .pointer("/spec/template/spec/volumes")
            .and_then(|v| v.as_array())
            .is_some_and(|vols| {
                vols.iter().any(|v| {
                    let p = cluster::str_at(v, &["hostPath", "path"]);
                    p.starts_with("/etc/cni/net.d") || p.starts_with("/opt/cni/bin")
                })
            })
}

fn tolerates(tolerations: &[Value], key: &str, value: &str, effect: &str) -> bool {
    tolerations.iter().any(|t| {
        let tk = cluster::str_at(t, &["key"]);
        let op = cluster::str_at(t, &["operator"]);
        let te = cluster::str_at(t, &["effect"]);
        let key_ok = (tk.is_empty() && op == "Exists") || tk == key;
        let value_ok = op == "Exists" || cluster::str_at(t, &["value"]) == value;
        let effect_ok = te.is_empty() || te == effect;
        key_ok && value_ok && effect_ok
    })
}

fn expression_matches(labels: &BTreeMap<String, String>, e: &Value) -> bool {
    let key = cluster::str_at(e, &["key"]);
    let values: Vec<&str> = e
        .get("values")
        .and_then(|v| v.as_array())
        .map(|a| a.iter().filter_map(|s| s.as_str()).collect())
        .unwrap_or_default();
    let have = labels.get(key).map(String::as_str);
    match cluster::str_at(e, &["operator"]) {
        "In" => have.is_some_and(|h| values.contains(&h)),
        "NotIn" => have.is_none_or(|h| !values.contains(&h)),
        "Exists" => have.is_some(),
        "DoesNotExist" => have.is_none(),
        "Gt" | "Lt" => {
            let (Some(h), Some(v)) = (
                have.and_then(|h| h.parse::<i64>().ok()),
                values.first().and_then(|v| v.parse::<i64>().ok()),
            ) else {
                return false;
            };
            if cluster::str_at(e, &["operator"]) == "Gt" {
                h > v
            } else {
                h < v
            }
        }
        _ => false,
    }
}

/// Whether a pod template may run on a node (selector, required affinity, taints).
fn schedulable(pod_spec: &Value, node: &Node, daemonset: bool) -> bool {
    if let Some(sel) = pod_spec.get("nodeSelector").and_then(|s| s.as_object()) {
        if !sel
            .iter()
            .all(|(k, v)| node.labels.get(k).map(String::as_str) == v.as_str())
        {
            return false;
        }
    }
    if let Some(terms) = pod_spec
        .pointer("/affinity/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution/nodeSelectorTerms")
        .and_then(|t| t.as_array())
    {
        let any = terms.iter().any(|term| {
            term.get("matchExpressions")
                .and_then(|m| m.as_array())
                .is_none_or(|exprs| exprs.iter().all(|e| expression_matches(&node.labels, e)))
        });
        if !terms.is_empty() && !any {
            return false;
        }
    }
    let tolerations: Vec<Value> = pod_spec
        .get("tolerations")
        .and_then(|t| t.as_array())
        .cloned()
        .unwrap_or_default();
    node.taints
        .iter()
        .filter(|t| t.effect == "NoSchedule" || t.effect == "NoExecute")
        // The DaemonSet controller tolerates the node-condition taints itself.
        .filter(|t| !(daemonset && t.key.starts_with("node.kubernetes.io/")))
        .all(|t| tolerates(&tolerations, &t.key, &t.value, &t.effect))
}

/// A pod as the lab shows it.
#[derive(Debug, Clone)]
struct Pod {
    namespace: String,
    name: String,
    node: Option<String>,
    images: Vec<String>,
    containers: Vec<String>,
    host_network: bool,
    status: &'static str,
    ip: Option<String>,
    created: u64,
    owner: String,
}

fn node_ready(state: &ClusterState, node: &Node) -> bool {
    if !node.kubelet.running {
        return false;
    }
    // The node controller's view: no heartbeat within the grace period, NotReady.
    if super::apiserver::heartbeat_fresh(&node.host) == Some(false) {
        return false;
    }
    let cni = state.objects.iter().filter(|o| is_cni(o)).find(|ds| {
        ds.body
            .pointer("/spec/template/spec")
            .is_some_and(|spec| schedulable(spec, node, true))
    });
    cni.is_some_and(|ds| readiness::over(state, node, ds.created))
}

fn pod_ip(node: &Node, name: &str, host_network: bool) -> Option<String> {
    if host_network {
        return Some(node.address.clone());
    }
    let (base, _) = cluster::parse_cidr(node.pod_cidr.as_deref()?)?;
    let n = name
        .bytes()
        .fold(0u32, |a, b| a.wrapping_mul(31).wrapping_add(u32::from(b)));
    Some(std::net::Ipv4Addr::from(u32::from(base) + 2 + n % 250).to_string())
}

fn template_pod(state: &ClusterState, owner: &Object, name: String, node: Option<&Node>) -> Pod {
    let spec = workloads::pod_spec(owner).cloned().unwrap_or(Value::Null);
    let containers = spec
        .get("containers")
        .and_then(|c| c.as_array())
        .cloned()
        .unwrap_or_default();
    let host_network = spec
        .get("hostNetwork")
        .and_then(|h| h.as_bool())
        .unwrap_or(false);
    let status = match node {
        None => "Pending",
        Some(n) if !n.kubelet.running => "Pending",
        Some(n) if !host_network && !node_ready(state, n) => "ContainerCreating",
        Some(_) => "Running",
    };
    Pod {
        namespace: owner.namespace.clone(),
        ip: node.and_then(|n| pod_ip(n, &name, host_network)),
        name,
        node: node.map(|n| n.name.clone()),
        images: containers
            .iter()
            .map(|c| cluster::str_at(c, &["image"]).to_string())
            .collect(),
        containers: containers
            .iter()
            .map(|c| cluster::str_at(c, &["name"]).to_string())
            .collect(),
        host_network,
        status,
        created: owner.created,
        owner: format!("{}/{}", owner.kind, owner.name),
    }
}

/// Every pod: control-plane static pods, DaemonSet pods per admitted node, and the pods
/// of Deployments, ReplicaSets and bare Pods where the scheduler bound them.
fn pods(state: &ClusterState) -> Vec<Pod> {
    let mut out = Vec::new();
    for node in state.nodes.values().filter(|n| n.control_plane) {
        for component in [
            "etcd",
            "kube-apiserver",
            "kube-controller-manager",
            "kube-scheduler",
        ] {
            let image = if component == "etcd" {
                format!("{}/etcd", state.image_repository)
            } else {
                format!(
                    "{}/{component}:v{}",
                    state.image_repository,
                    node.control_plane_version
                        .as_deref()
                        .unwrap_or(&state.kubernetes_version)
                )
            };
            out.push(Pod {
                namespace: "kube-system".into(),
                name: format!("{component}-{}", node.name),
                node: Some(node.name.clone()),
                images: vec![image],
                containers: vec![component.into()],
                host_network: true,
                status: if node.kubelet.running {
                    "Running"
                } else {
                    "Pending"
                },
                ip: Some(node.address.clone()),
                created: node.created,
                owner: format!("Node/{}", node.name),
            });
        }
    }
    for p in &state.pods {
        let Some(o) = workloads::owner(state, p) else {
            continue;
        };
        let node = p.node.as_ref().and_then(|n| state.nodes.get(n));
        let mut pod = template_pod(state, o, p.name.clone(), node);
        pod.created = p.created;
        out.push(pod);
    }
    for o in state.objects.iter().filter(|o| o.kind == "DaemonSet") {
        let Some(spec) = o.body.pointer("/spec/template/spec") else {
            continue;
        };
        for node in state.nodes.values().filter(|n| schedulable(spec, n, true)) {
            let name = format!(
                "{}-{}",
                o.name,
                cluster::name_suffix(&format!("{}/{}/{}", o.namespace, o.name, node.name))
            );
            out.push(template_pod(state, o, name, Some(node)));
        }
    }
    out
}

// ---- get ----

fn namespace_of(args: &Args) -> String {
    args.get("namespace").unwrap_or("default").to_string()
}

fn get(inv: &mut Invocation, args: &Args, conn: &Conn) -> Result<(), String> {
    let Some(what) = args.words.get(1) else {
        return Err("You must specify the type of resource to get. Use \"kubectl api-resources\" for a complete list of supported resources.\n\nerror: Required resource not specified.\nUse \"kubectl explain <resource>\" for a detailed description of that resource (e.g. kubectl explain pods).\nSee 'kubectl get -h' for help and examples".into());
    };
    let (what, name) = match what.split_once('/') {
        Some((w, n)) => (w.to_string(), Some(n.to_string())),
        None => (what.clone(), args.words.get(2).cloned()),
    };
    let res = resource(&what)
        .ok_or_else(|| format!("error: the server doesn't have a resource type \"{what}\""))?;
    let all_ns = args.on("all-namespaces");
    let ns = namespace_of(args);
    let state = &conn.state;
    let output = args.get("output").unwrap_or("").to_string();
    let now = cluster::now();
    let selector = args.get("selector").map(parse_selector);

    // Objects as JSON, and their table rows.
    let mut items: Vec<Value> = Vec::new();
    let mut table = Table::default();
    let show_ns = all_ns && res != Resource::Nodes;
    match res {
        Resource::Nodes => {
            table.header(if output == "wide" {
                &[
                    "NAME",
                    "STATUS",
                    "ROLES",
                    "AGE",
                    "VERSION",
                    "INTERNAL-IP",
                    "EXTERNAL-IP",
                    "OS-IMAGE",
                    "KERNEL-VERSION",
                    "CONTAINER-RUNTIME",
                ][..]
            } else {
                &["NAME", "STATUS", "ROLES", "AGE", "VERSION"][..]
            });
            for n in state.nodes.values() {
                if name.as_deref().is_some_and(|x| x != n.name) {
                    continue;
                }
                if selector
                    .as_ref()
                    .is_some_and(|s| !selector_matches(s, &n.labels))
                {
                    continue;
                }
                let ready = node_ready(state, n);
                let mut status = if ready { "Ready" } else { "NotReady" }.to_string();
                if n.unschedulable {
                    status.push_str(",SchedulingDisabled");
                }
                let mut roles: Vec<&str> = n
                    .labels
                    .keys()
                    .filter_map(|k| k.strip_prefix("node-role.kubernetes.io/"))
                    .collect();
                roles.sort();
                let mut row = vec![
                    n.name.clone(),
                    status,
                    if roles.is_empty() {
                        "<none>".into()
                    } else {
                        roles.join(",")
                    },
                    cluster::human_age(now.saturating_sub(n.created)),
                    n.kubelet_version.clone(),
                ];
                if output == "wide" {
                    row.extend([
                        n.address.clone(),
                        "<none>".into(),
                        n.os_image.clone(),
                        n.kernel.clone(),
                        n.container_runtime.clone(),
                    ]);
                }
                table.row(row);
                items.push(output::node_json(state, n, ready));
            }
        }
        Resource::Pods => {
            let mut header = vec!["NAME", "READY", "STATUS", "RESTARTS", "AGE"];
            if show_ns {
                header.insert(0, "NAMESPACE");
            }
            if output == "wide" {
                header.extend(["IP", "NODE", "NOMINATED NODE", "READINESS GATES"]);
            }
            table.header(&header);
            for p in pods(state) {
                if !all_ns && p.namespace != ns {
                    continue;
                }
                if name.as_deref().is_some_and(|x| x != p.name) {
                    continue;
                }
                let running = p.status == "Running";
                let total = p.containers.len();
                let mut row = vec![
                    p.name.clone(),
                    format!("{}/{total}", if running { total } else { 0 }),
                    p.status.to_string(),
                    "0".into(),
                    cluster::human_age(now.saturating_sub(p.created)),
                ];
                if show_ns {
                    row.insert(0, p.namespace.clone());
                }
                if output == "wide" {
                    row.extend([
                        p.ip.clone().unwrap_or_else(|| "<none>".into()),
                        p.node.clone().unwrap_or_else(|| "<none>".into()),
                        "<none>".into(),
                        "<none>".into(),
                    ]);
                }
                table.row(row);
                items.push(output::pod_json(&p));
            }
        }
        Resource::Kind(kind) => {
            let is_ns = namespaced(state, kind);
            let ds = kind == "DaemonSet";
            let mut header: Vec<&str> = if ds {
                vec![
                    "NAME",
                    "DESIRED",
                    "CURRENT",
                    "READY",
                    "UP-TO-DATE",
                    "AVAILABLE",
                    "NODE SELECTOR",
                    "AGE",
                ]
            } else if kind == "Deployment" {
                vec!["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
            } else if kind == "Namespace" {
                vec!["NAME", "STATUS", "AGE"]
            } else if kind == "PodDisruptionBudget" {
                vec![
                    "NAME",
                    "MIN AVAILABLE",
                    "MAX UNAVAILABLE",
                    "ALLOWED DISRUPTIONS",
                    "AGE",
                ]
            } else {
                vec!["NAME", "AGE"]
            };
            if show_ns && is_ns {
                header.insert(0, "NAMESPACE");
            }
            table.header(&header);
            let all_pods = pods(state);
            for o in state.objects.iter().filter(|o| o.kind == kind) {
                if is_ns && !all_ns && o.namespace != ns {
                    continue;
                }
                if name.as_deref().is_some_and(|x| x != o.name) {
                    continue;
                }
                let owned: Vec<&Pod> = all_pods
                    .iter()
                    .filter(|p| {
                        p.owner == format!("{}/{}", o.kind, o.name) && p.namespace == o.namespace
                    })
                    .collect();
                let running = owned.iter().filter(|p| p.status == "Running").count();
                let age = cluster::human_age(now.saturating_sub(o.created));
                let mut row = if ds {
                    let sel = o
                        .body
                        .pointer("/spec/template/spec/nodeSelector")
                        .and_then(|s| s.as_object())
                        .map(|m| {
                            m.iter()
                                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                                .collect::<Vec<_>>()
                                .join(",")
                        })
                        .filter(|s| !s.is_empty())
                        .unwrap_or_else(|| "<none>".into());
                    let n = owned.len().to_string();
                    vec![
                        o.name.clone(),
                        n.clone(),
                        n.clone(),
                        running.to_string(),
                        n,
                        running.to_string(),
                        sel,
                        age,
                    ]
                } else if kind == "Deployment" {
                    vec![
                        o.name.clone(),
                        format!("{running}/{}", owned.len()),
                        owned.len().to_string(),
                        running.to_string(),
                        age,
                    ]
                } else if kind == "Namespace" {
                    vec![o.name.clone(), "Active".into(), age]
                } else if kind == "PodDisruptionBudget" {
                    let field = |f: &str| match o.body.pointer(&format!("/spec/{f}")) {
                        Some(Value::Number(n)) => n.to_string(),
                        Some(Value::String(s)) => s.clone(),
                        _ => "N/A".into(),
                    };
                    vec![
                        o.name.clone(),
                        field("minAvailable"),
                        field("maxUnavailable"),
                        workloads::disruptions_allowed(state, o).max(0).to_string(),
                        age,
                    ]
                } else {
                    vec![o.name.clone(), age]
                };
                if show_ns && is_ns {
                    row.insert(0, o.namespace.clone());
                }
                table.row(row);
                let mut item =
                    output::object_json(o, &owned.iter().map(|p| p.status).collect::<Vec<_>>());
                if kind == "PodDisruptionBudget" {
                    item["status"] = json!({"disruptionsAllowed":
                        workloads::disruptions_allowed(state, o).max(0)});
                }
                items.push(item);
            }
        }
    }
    let plural = match res {
        Resource::Nodes => "nodes".to_string(),
        Resource::Pods => "pods".to_string(),
        Resource::Kind(k) => format!("{}s", k.to_lowercase()),
    };
    if let Some(n) = &name {
        if items.is_empty() {
            return Err(format!(
                "Error from server (NotFound): {plural} \"{n}\" not found"
            ));
        }
    }
    let single = name.is_some();
    match output.as_str() {
        "" | "wide" => {
            if items.is_empty() {
                let scoped = match res {
                    Resource::Nodes => false,
                    Resource::Pods => true,
                    Resource::Kind(k) => namespaced(state, k),
                };
                if scoped && !all_ns {
                    inv.errln(&format!("No resources found in {ns} namespace."));
                } else {
                    inv.errln("No resources found");
                }
                return Ok(());
            }
            inv.out(&table.render(args.on("no-headers")));
        }
        "name" => {
            let prefix = match res {
                Resource::Nodes => "node".to_string(),
                Resource::Pods => "pod".to_string(),
                Resource::Kind(k) => output::resource_name(k, ""),
            };
            for i in &items {
                inv.outln(&format!(
                    "{prefix}/{}",
                    cluster::str_at(i, &["metadata", "name"])
                ));
            }
        }
        fmt => {
            let doc = if single {
                items.first().cloned().unwrap_or(Value::Null)
            } else {
                json!({"apiVersion": "v1", "items": items.clone(), "kind": "List", "metadata": {"resourceVersion": ""}})
            };
            if fmt == "json" {
                inv.outln(&serde_json::to_string_pretty(&doc).map_err(|e| e.to_string())?);
            } else if fmt == "yaml" {
                inv.out(&serde_norway::to_string(&doc).map_err(|e| e.to_string())?);
            } else if let Some(tpl) = fmt
                .strip_prefix("jsonpath=")
                .or_else(|| fmt.strip_prefix("jsonpath-as-json="))
            {
                let tpl = tpl.trim_matches('\'');
                inv.out(
                    &jsonpath::render(tpl, &doc)
                        .map_err(|e| format!("error: error parsing jsonpath {tpl}, {e}"))?,
                );
            } else if let Some(cols) = fmt.strip_prefix("custom-columns=") {
                inv.out(&output::custom_columns(
                    cols,
                    &items,
                    args.on("no-headers"),
                )?);
            } else {
                return Err(format!("error: unable to match a printer suitable for the output format \"{fmt}\", allowed formats are: custom-columns,custom-columns-file,go-template,go-template-file,json,jsonpath,jsonpath-as-json,jsonpath-file,name,template,templatefile,wide,yaml"));
            }
        }
    }
    Ok(())
}

type Selector = Vec<(String, Option<String>, bool)>;

/// `a=b,c!=d,e` → (key, value, negated).
fn parse_selector(s: &str) -> Selector {
    s.split(',')
        .filter(|p| !p.is_empty())
        .map(|p| {
            if let Some((k, v)) = p.split_once("!=") {
                (k.to_string(), Some(v.to_string()), true)
            } else if let Some((k, v)) = p.split_once('=') {
                (
                    k.to_string(),
                    Some(v.trim_start_matches('=').to_string()),
                    false,
                )
            } else if let Some(k) = p.strip_prefix('!') {
                (k.to_string(), None, true)
            } else {
                (p.to_string(), None, false)
            }
        })
        .collect()
}

fn selector_matches(sel: &Selector, labels: &BTreeMap<String, String>) -> bool {
    sel.iter().all(|(k, v, neg)| {
        let have = labels.get(k);
        let m = match v {
            Some(v) => have == Some(v),
            None => have.is_some(),
        };
        m != *neg
    })
}

// ---- apply ----

fn read_manifest(inv: &Invocation, file: &str) -> Result<Vec<(String, String)>, String> {
    if file == "-" {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
            .map_err(|e| format!("error: reading stdin: {e}"))?;
        return Ok(vec![("-".into(), text)]);
    }
    if file.starts_with("http://") || file.starts_with("https://") {
        let host = file.split('/').nth(2).unwrap_or("");
        return Err(format!("error: unable to read URL \"{file}\", server reported Get \"{file}\": dial tcp: lookup {host} on 127.0.0.53:53: server misbehaving, status code=0"));
    }
    let path = inv.path(file);
    if path.is_dir() {
        let mut files: Vec<_> = std::fs::read_dir(&path)
            .map_err(|e| format!("error: {file}: {e}"))?
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".yaml") || n.ends_with(".yml") || n.ends_with(".json"))
            .collect();
        files.sort();
        return files
            .into_iter()
            .map(|n| {
                let f = format!("{}/{n}", file.trim_end_matches('/'));
                inv.read(&f)
                    .map(|t| (f.clone(), t))
                    .map_err(|e| format!("error: {f}: {e}"))
            })
            .collect();
    }
    match inv.read(file) {
        Ok(t) => Ok(vec![(file.to_string(), t)]),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(format!("error: the path \"{file}\" does not exist"))
        }
        Err(e) => Err(format!("error: open {file}: {e}")),
    }
}

/// What `apply` does with the objects it reads.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Apply,
    Create,
    /// Compare with the live objects; change nothing.
    Diff,
}

fn apply(inv: &mut Invocation, args: &Args, conn: &Conn, mode: Mode) -> Result<(), String> {
    let create = mode == Mode::Create;
    let mut differences = Vec::new();
    let files: Vec<String> = args.flags.get("filename").cloned().unwrap_or_default();
    if files.is_empty() {
        return Err("error: must specify one of -f and -k".into());
    }
    let default_ns = namespace_of(args);
    let mut locked = cluster::lock(inv)?;
    if !locked.state.initialized || locked.state.endpoint != conn.state.endpoint {
        return Err(format!(
            "The connection to the server {} was refused - did you specify the right host or port?",
            conn.endpoint
        ));
    }
    let mut errors = Vec::new();
    let minor = cluster::semver(&locked.state.kubernetes_version).map_or(30, |v| v.1);
    for file in files {
        let manifests = match read_manifest(inv, &file) {
            Ok(m) => m,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        for (source, text) in manifests {
            let docs = match cluster::yaml_documents(&text) {
                Ok(d) => d,
                Err(e) => {
                    errors.push(format!(
                        "error: error parsing {source}: error converting YAML to JSON: yaml: {e}"
                    ));
                    continue;
                }
            };
            let docs: Vec<Value> = docs
                .into_iter()
                .flat_map(|d| {
                    if cluster::str_at(&d, &["kind"]) == "List" {
                        d.get("items")
                            .and_then(|i| i.as_array())
                            .cloned()
                            .unwrap_or_default()
                    } else {
                        vec![d]
                    }
                })
                .collect();
            let kept = if mode == Mode::Diff {
                String::new()
            } else {
                locked.keep_manifest(&source, &text)?
            };
            // Mapping happens before anything is sent: a CRD in this file does not yet
            // map its own custom resources.
            let known_crds: Vec<Object> = locked
                .state
                .objects
                .iter()
                .filter(|o| o.kind == "CustomResourceDefinition")
                .cloned()
                .collect();
            for mut doc in docs {
                match validate::object(
                    &mut doc,
                    &source,
                    &default_ns,
                    minor,
                    &known_crds,
                    &locked.state,
                ) {
                    Err(e) => errors.push(e),
                    Ok(key) => {
                        let existing = locked
                            .state
                            .object(&key.kind, &key.namespace, &key.name)
                            .cloned();
                        let res = output::resource_name(&key.kind, &key.api_version);
                        let verb = match &existing {
                            Some(_) if create => {
                                errors.push(format!("Error from server (AlreadyExists): error when creating \"{source}\": {} \"{}\" already exists", output::plural(&key.kind), key.name));
                                continue;
                            }
                            Some(o) if o.body == doc => "unchanged",
                            Some(_) => "configured",
                            None => "created",
                        };
                        if mode == Mode::Diff {
                            if verb != "unchanged" {
                                differences.push(format!(
                                    "diff -u -N /tmp/LIVE/{res}.{name} /tmp/MERGED/{res}.{name}\n--- live {state}\n+++ merged",
                                    name = key.name,
                                    state = if existing.is_some() { "object" } else { "(none)" },
                                ));
                            }
                            continue;
                        }
                        let created = existing.as_ref().map_or_else(cluster::now, |o| o.created);
                        locked.state.objects.retain(|o| {
                            !(o.kind == key.kind
                                && o.namespace == key.namespace
                                && o.name == key.name)
                        });
                        locked.state.objects.push(Object {
                            api_version: key.api_version.clone(),
                            kind: key.kind.clone(),
                            namespace: key.namespace.clone(),
                            name: key.name.clone(),
                            body: doc,
                            created,
                            source: kept.clone(),
                        });
                        inv.outln(&format!("{res}/{} {verb}", key.name));
                    }
                }
            }
        }
    }
    if mode == Mode::Diff {
        if !errors.is_empty() {
            return Err(errors.join("\n"));
        }
        if differences.is_empty() {
            return Ok(());
        }
        inv.outln(&differences.join("\n"));
        return Err(String::new());
    }
    locked.save()?;
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("\n"))
    }
}

// ---- delete, label, taint ----

fn delete(inv: &mut Invocation, args: &Args, _conn: &Conn) -> Result<(), String> {
    let mut locked = cluster::lock(inv)?;
    if let Some(files) = args.flags.get("filename") {
        let ns = namespace_of(args);
        for file in files {
            for (_, text) in read_manifest(inv, file)? {
                for doc in cluster::yaml_documents(&text)? {
                    let kind = cluster::str_at(&doc, &["kind"]).to_string();
                    let name = cluster::str_at(&doc, &["metadata", "name"]).to_string();
                    let mut namespace =
                        cluster::str_at(&doc, &["metadata", "namespace"]).to_string();
                    if namespace.is_empty() && namespaced(&locked.state, &kind) {
                        namespace = ns.clone();
                    }
                    let before = locked.state.objects.len();
                    locked.state.objects.retain(|o| {
                        !(o.kind == kind && o.name == name && o.namespace == namespace)
                    });
                    let res = output::resource_name(&kind, cluster::str_at(&doc, &["apiVersion"]));
                    if locked.state.objects.len() < before {
                        inv.outln(&format!("{res} \"{name}\" deleted"));
                    } else {
                        locked.save()?;
                        return Err(format!("Error from server (NotFound): error when deleting \"{file}\": {} \"{name}\" not found", output::plural(&kind)));
                    }
                }
            }
        }
        return locked.save();
    }
    let what = args.words.get(1).cloned().unwrap_or_default();
    let (what, names) = match what.split_once('/') {
        Some((w, n)) => (w.to_string(), vec![n.to_string()]),
        None => (what, args.words.get(2..).unwrap_or(&[]).to_vec()),
    };
    let res = resource(&what)
        .ok_or_else(|| format!("error: the server doesn't have a resource type \"{what}\""))?;
    if names.is_empty() {
        return Err("error: resource(s) were provided, but no name was specified".into());
    }
    let ns = namespace_of(args);
    for name in names {
        match res {
            Resource::Nodes => {
                if locked.state.nodes.remove(&name).is_none() {
                    locked.save()?;
                    return Err(format!(
                        "Error from server (NotFound): nodes \"{name}\" not found"
                    ));
                }
                inv.outln(&format!("node \"{name}\" deleted"));
            }
            Resource::Pods => {
                let exists = pods(&locked.state)
                    .iter()
                    .any(|p| p.name == name && p.namespace == ns);
                if !exists {
                    return Err(format!(
                        "Error from server (NotFound): pods \"{name}\" not found"
                    ));
                }
                // A controller's pod is replaced at once; DaemonSet and static pods
                // come back under the same name.
                workloads::delete(&mut locked.state, &ns, &name);
                inv.outln(&format!("pod \"{name}\" deleted"));
            }
            Resource::Kind(kind) => {
                let scoped = namespaced(&locked.state, kind);
                let before = locked.state.objects.len();
                locked.state.objects.retain(|o| {
                    !(o.kind == kind && o.name == name && (!scoped || o.namespace == ns))
                });
                if locked.state.objects.len() == before {
                    locked.save()?;
                    return Err(format!(
                        "Error from server (NotFound): {} \"{name}\" not found",
                        output::plural(kind)
                    ));
                }
                inv.outln(&format!(
                    "{} \"{name}\" deleted",
                    output::resource_name(kind, "")
                ));
            }
        }
    }
    locked.save()
}

/// The nodes a `label`/`taint` command names (`node NAME...`, `node/NAME`, `--all`).
fn target_nodes(args: &Args, state: &ClusterState) -> Result<(Vec<String>, Vec<String>), String> {
    let mut words = args.words.iter().skip(1).cloned().collect::<Vec<_>>();
    if words.is_empty() {
        return Err(
            "error: You must provide one or more resources by argument or filename.".into(),
        );
    }
    let first = words.remove(0);
    let mut names = Vec::new();
    if let Some((kind, name)) = first.split_once('/') {
        if resource(kind) != Some(Resource::Nodes) {
            return Err(format!(
                "k8sup-lab: kubectl {} is emulated for nodes only",
                args.words[0]
            ));
        }
        names.push(name.to_string());
    } else if resource(&first) == Some(Resource::Nodes) {
        if args.on("all") {
            names.extend(state.nodes.keys().cloned());
        } else if !words.is_empty() {
            names.push(words.remove(0));
        }
    } else {
        return Err(format!(
            "k8sup-lab: kubectl {} is emulated for nodes only",
            args.words[0]
        ));
    }
    for n in &names {
        if !state.nodes.contains_key(n) {
            return Err(format!(
                "Error from server (NotFound): nodes \"{n}\" not found"
            ));
        }
    }
    Ok((names, words))
}

fn label(inv: &mut Invocation, args: &Args, _conn: &Conn) -> Result<(), String> {
    let mut locked = cluster::lock(inv)?;
    let (names, changes) = target_nodes(args, &locked.state)?;
    if changes.is_empty() {
        return Err("error: at least one label update is required".into());
    }
    let overwrite = args.on("overwrite");
    for name in &names {
        let node = locked.state.nodes.get_mut(name).ok_or("node vanished")?;
        let mut removed_only = true;
        for c in &changes {
            if let Some(key) = c.strip_suffix('-') {
                node.labels.remove(key);
            } else if let Some((k, v)) = c.split_once('=') {
                removed_only = false;
                if let Some(old) = node.labels.get(k) {
                    if old != v && !overwrite {
                        return Err(format!(
                            "error: '{k}' already has a value ({old}), and --overwrite is false"
                        ));
                    }
                }
                node.labels.insert(k.to_string(), v.to_string());
            } else {
                return Err(format!("error: invalid label spec: {c}"));
            }
        }
        inv.outln(&format!(
            "node/{name} {}",
            if removed_only { "unlabeled" } else { "labeled" }
        ));
    }
    locked.save()
}

fn taint(inv: &mut Invocation, args: &Args, _conn: &Conn) -> Result<(), String> {
    let mut locked = cluster::lock(inv)?;
    let (names, changes) = target_nodes(args, &locked.state)?;
    if changes.is_empty() {
        return Err("error: at least one taint update is required".into());
    }
    let overwrite = args.on("overwrite");
    for name in &names {
        let node = locked.state.nodes.get_mut(name).ok_or("node vanished")?;
        let mut any_added = false;
        for c in &changes {
            let (spec, remove) = match c.strip_suffix('-') {
                Some(s) => (s, true),
                None => (c.as_str(), false),
            };
            let (kv, effect) = match spec.rsplit_once(':') {
                Some((kv, e)) => (kv, e),
                None if remove => (spec, ""),
                None => {
                    return Err(format!(
                        "error: invalid taint spec: {spec}, unknown taint spec"
                    ))
                }
            };
            if !effect.is_empty()
                && !["NoSchedule", "PreferNoSchedule", "NoExecute"].contains(&effect)
            {
                return Err(format!("error: invalid taint spec: {spec}, invalid taint effect: {effect}, unsupported taint effect"));
            }
            let (key, value) = kv.split_once('=').unwrap_or((kv, ""));
            if remove {
                let before = node.taints.len();
                node.taints
                    .retain(|t| !(t.key == key && (effect.is_empty() || t.effect == effect)));
                if node.taints.len() == before {
                    return Err(format!("error: taint {spec:?} not found"));
                }
            } else {
                any_added = true;
                if let Some(t) = node
                    .taints
                    .iter_mut()
                    .find(|t| t.key == key && t.effect == effect)
                {
                    if !overwrite {
                        return Err(format!("error: node {name} already has {key} taint(s) with same effect(s) and --overwrite is false"));
                    }
                    t.value = value.to_string();
                } else {
                    node.taints.push(cluster::Taint {
                        key: key.into(),
                        value: value.into(),
                        effect: effect.into(),
                    });
                }
            }
        }
        inv.outln(&format!(
            "node/{name} {}",
            if any_added { "tainted" } else { "untainted" }
        ));
    }
    locked.save()
}

// ---- wait ----

fn wait(inv: &mut Invocation, args: &Args, _conn: &Conn) -> Result<(), String> {
    let cond = args
        .get("for")
        .ok_or("error: --for must be specified")?
        .to_string();
    let Some(condition) = cond.strip_prefix("condition=") else {
        return Err(format!("error: unrecognized condition: {cond:?}"));
    };
    let (condition, want) = match condition.split_once('=') {
        Some((c, v)) => (c.to_string(), v.eq_ignore_ascii_case("true")),
        None => (condition.to_string(), true),
    };
    let timeout = match args.get("timeout") {
        Some(t) => cluster::parse_go_duration(t).ok_or_else(|| format!("error: invalid argument \"{t}\" for \"--timeout\" flag: time: missing unit in duration \"{t}\""))?,
        None => 30,
    };
    let what = args.words.get(1).cloned().unwrap_or_default();
    let (what, named) = match what.split_once('/') {
        Some((w, n)) => (w.to_string(), Some(n.to_string())),
        None => (what, args.words.get(2).cloned()),
    };
    let res = resource(&what)
        .ok_or_else(|| format!("error: the server doesn't have a resource type \"{what}\""))?;
    if named.is_none() && !args.on("all") && args.get("selector").is_none() {
        return Err("error: resource(s) were provided, but no name was specified".into());
    }
    let ns = namespace_of(args);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(timeout);
    loop {
        let state = cluster::read(inv)?;
        // (kind/name, condition met)
        let targets: Vec<(String, bool)> = match res {
            Resource::Nodes => state
                .nodes
                .values()
                .filter(|n| named.as_deref().is_none_or(|x| x == n.name))
                .map(|n| {
                    let v = match condition.as_str() {
                        "Ready" => node_ready(&state, n),
                        _ => false,
                    };
                    (format!("node/{}", n.name), v == want)
                })
                .collect(),
            Resource::Pods => pods(&state)
                .into_iter()
                .filter(|p| p.namespace == ns && named.as_deref().is_none_or(|x| x == p.name))
                .map(|p| {
                    let ready = p.status == "Running";
                    let v = matches!(
                        condition.as_str(),
                        "Ready" | "ContainersReady" | "Initialized" | "PodScheduled"
                    ) && ready;
                    (format!("pod/{}", p.name), v == want)
                })
                .collect(),
            Resource::Kind(k) => {
                return Err(format!(
                    "k8sup-lab: kubectl wait is emulated for nodes and pods, not {k}"
                ))
            }
        };
        if targets.is_empty() {
            if let Some(n) = &named {
                return Err(format!(
                    "Error from server (NotFound): {what} \"{n}\" not found"
                ));
            }
            return Err("error: no matching resources found".into());
        }
        if targets.iter().all(|(_, ok)| *ok) {
            for (t, _) in targets {
                inv.outln(&format!("{t} condition met"));
            }
            return Ok(());
        }
        if std::time::Instant::now() >= deadline {
            let plural = if res == Resource::Nodes {
                "nodes"
            } else {
                "pods"
            };
            let mut msgs = Vec::new();
            for (t, ok) in &targets {
                if *ok {
                    inv.outln(&format!("{t} condition met"));
                } else {
                    let n = t.split_once('/').map_or(t.as_str(), |x| x.1);
                    msgs.push(format!(
                        "error: timed out waiting for the condition on {plural}/{n}"
                    ));
                }
            }
            return Err(msgs.join("\n"));
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
}

#[cfg(test)]
pub(crate) mod tests;
