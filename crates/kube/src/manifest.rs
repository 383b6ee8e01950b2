//! CNI manifests: the built-in flannel manifest, and the patching every manifest
//! (built-in, downloaded or local) goes through before it is applied.
//!
//! A manifest is multi-document YAML. [`patch`] parses each document, changes only
//! what the cluster requires, and leaves every other document byte for byte as it
//! was (a changed document is re-serialized, without its comments):
//!
//! 1. the pod network: flannel's `net-conf.json` `Network` and Calico's
//!    `CALICO_IPV4POOL_CIDR` are set to `pod_cidr`, which kubeadm also gets;
//! 2. the node address: flanneld picks its interface by the node's InternalIP
//!    (`FLANNELD_IFACE` from `status.hostIP`), calico-node by
//!    `kubernetes-internal-ip`, so neither falls back to the default route;
//! 3. architectures: a DaemonSet with an image that has an `[images.overrides]`
//!    entry, or a legacy `-amd64` name, is split into one DaemonSet per
//!    architecture of the cluster (`<name>-<arch>`, pinned with a
//!    `kubernetes.io/arch` nodeSelector, its images replaced); in a cluster of one
//!    architecture it keeps its name and is pinned to that one;
//! 4. registry mirrors: Docker Hub images are pulled through the first of the
//!    inventory's `registry_mirrors`.
//!
//! All of this is pure: text in, text out. Downloading and checksumming a
//! manifest is the CLI's job.

pub mod image;

use std::collections::BTreeMap;

use ipnet::IpNet;
use k8sup_inventory::{Arch, Cni, Inventory};
use serde_norway::{Mapping, Value};

use crate::KubeError;
use image::{is_legacy_arch_image, legacy_arch_image, mirror_prefix, ImageRef};

/// The flannel release the built-in manifest pins.
pub const FLANNEL_VERSION: &str = "v0.25.6";

/// The built-in flannel manifest: upstream's `kube-flannel.yml` of
/// [`FLANNEL_VERSION`], before patching.
pub const FLANNEL_MANIFEST: &str = include_str!("../manifests/kube-flannel.yml");

/// Where the Calico manifest k8sup is tested with comes from; the inventory (or
/// the CLI) names the manifest to use, which works offline from a local copy.
pub const CALICO_MANIFEST_URL: &str =
    "https://raw.githubusercontent.com/projectcalico/calico/v3.28.2/manifests/calico.yaml";

/// The label k8sup adds to the selector of a per-architecture DaemonSet, so that
/// the DaemonSets split from one never select each other's pods.
pub const ARCH_SELECTOR_LABEL: &str = "k8sup.io/arch";

/// What a manifest is patched with; see the module docs.
#[derive(Debug, Clone, Default)]
pub struct ManifestPatch {
    /// Flannel's Network and Calico's IPv4 pool.
    pub pod_cidr: Option<IpNet>,
    /// Exact image reference -> per-architecture replacement.
    pub overrides: BTreeMap<String, BTreeMap<Arch, String>>,
    /// The architectures the cluster's hosts have, without repeats.
    pub architectures: Vec<Arch>,
    /// Registry prefix Docker Hub images are pulled through (`mirror.example.org`).
    pub docker_hub_mirror: Option<String>,
}

impl ManifestPatch {
    /// The patch an inventory asks for. `architectures` are the hosts'
    /// architectures as declared; the CLI may replace them with the facts'.
    pub fn for_inventory(inventory: &Inventory) -> ManifestPatch {
        ManifestPatch {
            pod_cidr: Some(inventory.cluster.pod_cidr),
            overrides: inventory.images.overrides.clone(),
            architectures: inventory.architectures(),
            docker_hub_mirror: inventory
                .cluster
                .registry_mirrors
                .first()
                .map(|m| mirror_prefix(m).to_string()),
        }
    }
}

/// The patched CNI manifest of the inventory's cluster: `source` is the text of a
/// manifest the inventory names (downloaded or read by the caller); without one,
/// flannel's built-in manifest. `None` for `cni = "none"`.
pub fn cni_manifest(
    inventory: &Inventory,
    source: Option<&str>,
    patch_with: &ManifestPatch,
) -> Result<Option<String>, KubeError> {
    let (name, text) = match (inventory.cluster.cni, source) {
        (Cni::None, _) => return Ok(None),
        (Cni::Flannel, None) => ("kube-flannel.yml", FLANNEL_MANIFEST),
        (Cni::Calico, None) => {
            return Err(KubeError::CalicoManifestNeeded {
                url: CALICO_MANIFEST_URL,
            })
        }
        (Cni::Flannel, Some(text)) => ("the flannel manifest", text),
        (Cni::Calico, Some(text)) => ("the calico manifest", text),
    };
    patch(name, text, patch_with).map(Some)
}

/// Splits multi-document YAML at its `---` lines. Documents that hold nothing but
/// blanks and comments are dropped.
pub fn split_documents(text: &str) -> Vec<&str> {
    let mut docs = Vec::new();
    let mut start = 0;
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let bare = line.trim_end();
        if bare == "---" || bare.starts_with("--- ") {
            docs.push(&text[start..offset]);
            start = offset + line.len();
        }
        offset += line.len();
    }
    docs.push(&text[start..]);
    docs.into_iter()
        .filter(|d| {
            d.lines().any(|l| {
                let l = l.trim();
                !l.is_empty() && !l.starts_with('#') && l != "..."
            })
        })
        .collect()
}

/// Patches a multi-document manifest; see the module docs. `name` is used in errors.
pub fn patch(name: &str, text: &str, with: &ManifestPatch) -> Result<String, KubeError> {
    let mut out: Vec<String> = Vec::new();
    for (index, doc_text) in split_documents(text).into_iter().enumerate() {
        let original: Value =
            serde_norway::from_str(doc_text).map_err(|source| KubeError::ManifestSyntax {
                manifest: name.to_string(),
                document: index + 1,
                source,
            })?;
        let mut doc = original.clone();
        if let Some(cidr) = &with.pod_cidr {
            set_flannel_network(name, &mut doc, cidr)?;
            set_calico_pool(&mut doc, cidr);
        }
        pin_node_address(&mut doc);
        let mut docs = split_by_arch(doc, with);
        for d in &mut docs {
            if let Some(mirror) = &with.docker_hub_mirror {
                rewrite_images(d, &|image| {
                    let r = ImageRef::parse(image);
                    r.is_docker_hub().then(|| r.with_registry(mirror))
                });
            }
        }
        if docs.len() == 1 && docs[0] == original {
            let mut kept = doc_text.trim_start_matches('\n').to_string();
            if !kept.ends_with('\n') {
                kept.push('\n');
            }
            out.push(kept);
            continue;
        }
        for d in docs {
            out.push(
                serde_norway::to_string(&d).map_err(|source| KubeError::Serialize {
                    what: format!("{name}, document {}", index + 1),
                    source,
                })?,
            );
        }
    }
    Ok(format!("---\n{}", out.join("---\n")))
}

fn kind(doc: &Value) -> &str {
    doc.get("kind").and_then(Value::as_str).unwrap_or("")
}

fn get_path_mut<'a>(mut v: &'a mut Value, keys: &[&str]) -> Option<&'a mut Value> {
    for key in keys {
        v = v.get_mut(*key)?;
    }
    Some(v)
}

/// The mapping at `key` of `map`, created (or replacing a null) when absent.
fn mapping_at<'a>(map: &'a mut Mapping, key: &str) -> Option<&'a mut Mapping> {
    let entry = map
        .entry(Value::from(key))
        .or_insert_with(|| Value::Mapping(Mapping::new()));
    if entry.is_null() {
        *entry = Value::Mapping(Mapping::new());
    }
    entry.as_mapping_mut()
}

/// flannel's ConfigMap: `net-conf.json`'s `Network` becomes `cidr`.
fn set_flannel_network(name: &str, doc: &mut Value, cidr: &IpNet) -> Result<(), KubeError> {
    if kind(doc) != "ConfigMap" {
        return Ok(());
    }
    let Some(Value::String(text)) = get_path_mut(doc, &["data", "net-conf.json"]) else {
        return Ok(());
    };
    let mut conf: serde_json::Value =
        serde_json::from_str(text).map_err(|e| KubeError::ManifestShape {
            manifest: name.to_string(),
            problem: format!("net-conf.json is not JSON: {e}"),
        })?;
    let Some(object) = conf.as_object_mut() else {
        return Err(KubeError::ManifestShape {
            manifest: name.to_string(),
            problem: "net-conf.json is not a JSON object".into(),
        });
    };
    if object.get("Network").and_then(|n| n.as_str()) == Some(cidr.to_string().as_str()) {
        return Ok(());
    }
    object.insert("Network".into(), cidr.to_string().into());
    let mut pretty = serde_json::to_string_pretty(&conf).map_err(|e| KubeError::ManifestShape {
        manifest: name.to_string(),
        problem: format!("net-conf.json: {e}"),
    })?;
    pretty.push('\n');
    *text = pretty;
    Ok(())
}

/// The containers (and init containers) of a workload's pod template, or of a Pod.
fn pod_spec_mut(doc: &mut Value) -> Option<&mut Value> {
    match kind(doc) {
        "Pod" => doc.get_mut("spec"),
        "CronJob" => get_path_mut(doc, &["spec", "jobTemplate", "spec", "template", "spec"]),
        "DaemonSet" | "Deployment" | "StatefulSet" | "ReplicaSet" | "Job" => {
            get_path_mut(doc, &["spec", "template", "spec"])
        }
        _ => None,
    }
}

fn containers_mut(doc: &mut Value) -> Vec<&mut Mapping> {
    let Some(Value::Mapping(spec)) = pod_spec_mut(doc) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (key, list) in spec.iter_mut() {
        if !matches!(key.as_str(), Some("initContainers" | "containers")) {
            continue;
        }
        if let Value::Sequence(items) = list {
            out.extend(items.iter_mut().filter_map(Value::as_mapping_mut));
        }
    }
    out
}

/// The images the DaemonSets of a (patched) manifest run on a node of `arch`: those
/// without a `kubernetes.io/arch` nodeSelector, or with this one. What a node's kubelet
/// pulls for the CNI, so what can be pulled ahead. Text that does not parse has none.
pub fn daemonset_images(manifest: &str, arch: &str) -> Vec<String> {
    let mut images = Vec::new();
    for doc in split_documents(manifest) {
        let Ok(mut doc) = serde_norway::from_str::<Value>(doc) else {
            continue;
        };
        if doc.get("kind").and_then(Value::as_str) != Some("DaemonSet") {
            continue;
        }
        let pinned = doc
            .get("spec")
            .and_then(|s| s.get("template"))
            .and_then(|t| t.get("spec"))
            .and_then(|s| s.get("nodeSelector"))
            .and_then(|n| n.get("kubernetes.io/arch"))
            .and_then(Value::as_str)
            .map(str::to_string);
        if pinned.is_some_and(|p| p != arch) {
            continue;
        }
        for c in containers_mut(&mut doc) {
            if let Some(image) = container_image(c) {
                if !images.iter().any(|i| i == image) {
                    images.push(image.to_string());
                }
            }
        }
    }
    images
}

fn container_name(c: &Mapping) -> &str {
    c.get("name").and_then(Value::as_str).unwrap_or("")
}

fn container_image(c: &Mapping) -> Option<&str> {
    c.get("image").and_then(Value::as_str)
}

/// Sets an environment variable of a container unless it is set already
/// (`overwrite` false) or always.
fn set_env(container: &mut Mapping, name: &str, value: Value, overwrite: bool) {
    let entry = container
        .entry(Value::from("env"))
        .or_insert_with(|| Value::Sequence(Vec::new()));
    if entry.is_null() {
        *entry = Value::Sequence(Vec::new());
    }
    let Some(env) = entry.as_sequence_mut() else {
        return;
    };
    let mut var = Mapping::new();
    var.insert("name".into(), name.into());
    match value {
        Value::Mapping(from) => var.insert("valueFrom".into(), Value::Mapping(from)),
        other => var.insert("value".into(), other),
    };
    let existing = env
        .iter_mut()
        .find(|e| e.get("name").and_then(Value::as_str) == Some(name));
    match existing {
        Some(e) if overwrite => *e = Value::Mapping(var),
        Some(_) => {}
        None => env.push(Value::Mapping(var)),
    }
}

/// calico-node's IPv4 pool: `CALICO_IPV4POOL_CIDR` (commented out upstream, which
/// would leave Calico's own 192.168.0.0/16 default).
fn set_calico_pool(doc: &mut Value, cidr: &IpNet) {
    if kind(doc) != "DaemonSet" {
        return;
    }
    for c in containers_mut(doc) {
        if container_name(c) == "calico-node" {
            set_env(c, "CALICO_IPV4POOL_CIDR", cidr.to_string().into(), true);
        }
    }
}

/// flanneld and calico-node take the node's address from the node's InternalIP
/// (the kubelet's node-ip), never from the default route.
fn pin_node_address(doc: &mut Value) {
    if kind(doc) != "DaemonSet" {
        return;
    }
    for c in containers_mut(doc) {
        let is_flanneld = container_name(c) == "kube-flannel"
            || c.get("command")
                .and_then(Value::as_sequence)
                .is_some_and(|cmd| {
                    cmd.iter()
                        .any(|a| a.as_str().is_some_and(|s| s.ends_with("flanneld")))
                });
        let chooses_iface = c.get("args").and_then(Value::as_sequence).is_some_and(|a| {
            a.iter()
                .any(|x| x.as_str().is_some_and(|s| s.starts_with("--iface")))
        });
        if is_flanneld && !chooses_iface {
            let mut field = Mapping::new();
            field.insert("fieldPath".into(), "status.hostIP".into());
            let mut from = Mapping::new();
            from.insert("fieldRef".into(), Value::Mapping(field));
            set_env(c, "FLANNELD_IFACE", Value::Mapping(from), false);
        } else if container_name(c) == "calico-node" {
            set_env(
                c,
                "IP_AUTODETECTION_METHOD",
                "kubernetes-internal-ip".into(),
                false,
            );
        }
    }
}

/// Replaces every container image for which `replace` has an answer.
fn rewrite_images(doc: &mut Value, replace: &dyn Fn(&str) -> Option<String>) {
    for c in containers_mut(doc) {
        let new = container_image(c).and_then(replace);
        if let Some(new) = new {
            c.insert("image".into(), new.into());
        }
    }
}

/// The image `image` should be on `arch`, when it differs.
fn image_for_arch(with: &ManifestPatch, image: &str, arch: Arch) -> Option<String> {
    if let Some(per_arch) = with.overrides.get(image) {
        return per_arch.get(&arch).cloned();
    }
    legacy_arch_image(image, arch).filter(|new| new != image)
}

fn pinned_arch(doc: &Value) -> Option<Arch> {
    let selector = doc
        .get("spec")?
        .get("template")?
        .get("spec")?
        .get("nodeSelector")?;
    ["kubernetes.io/arch", "beta.kubernetes.io/arch"]
        .iter()
        .find_map(|k| selector.get(*k).and_then(Value::as_str))
        .and_then(Arch::from_name)
}

/// One DaemonSet becomes one per architecture; see the module docs.
fn split_by_arch(mut doc: Value, with: &ManifestPatch) -> Vec<Value> {
    if kind(&doc) != "DaemonSet" {
        return vec![doc];
    }
    let images: Vec<String> = containers_mut(&mut doc)
        .into_iter()
        .filter_map(|c| container_image(c).map(str::to_string))
        .collect();
    let affected = images
        .iter()
        .any(|i| with.overrides.contains_key(i) || is_legacy_arch_image(i));
    if !affected {
        return vec![doc];
    }
    if let Some(arch) = pinned_arch(&doc) {
        rewrite_images(&mut doc, &|i| image_for_arch(with, i, arch));
        return vec![doc];
    }
    match with.architectures.as_slice() {
        [] => vec![doc],
        [arch] => {
            let arch = *arch;
            pin_to_arch(&mut doc, arch, false);
            rewrite_images(&mut doc, &|i| image_for_arch(with, i, arch));
            vec![doc]
        }
        archs => archs
            .iter()
            .map(|&arch| {
                let mut copy = doc.clone();
                pin_to_arch(&mut copy, arch, true);
                rewrite_images(&mut copy, &|i| image_for_arch(with, i, arch));
                copy
            })
            .collect(),
    }
}

/// Adds the `kubernetes.io/arch` nodeSelector; with `rename`, also the
/// `-<arch>` name suffix and a selector label of its own.
fn pin_to_arch(doc: &mut Value, arch: Arch, rename: bool) {
    let Some(root) = doc.as_mapping_mut() else {
        return;
    };
    if rename {
        if let Some(meta) = mapping_at(root, "metadata") {
            let name = meta
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or("daemonset")
                .to_string();
            meta.insert("name".into(), format!("{name}-{arch}").into());
        }
    }
    let Some(spec) = mapping_at(root, "spec") else {
        return;
    };
    if rename {
        if let Some(labels) =
            mapping_at(spec, "selector").and_then(|s| mapping_at(s, "matchLabels"))
        {
            labels.insert(ARCH_SELECTOR_LABEL.into(), arch.as_str().into());
        }
    }
    let Some(template) = mapping_at(spec, "template") else {
        return;
    };
    if rename {
        if let Some(labels) = mapping_at(template, "metadata").and_then(|m| mapping_at(m, "labels"))
        {
            labels.insert(ARCH_SELECTOR_LABEL.into(), arch.as_str().into());
        }
    }
    if let Some(selector) = mapping_at(template, "spec").and_then(|s| mapping_at(s, "nodeSelector"))
    {
        selector.insert("kubernetes.io/arch".into(), arch.as_str().into());
    }
}

#[cfg(test)]
mod tests;
