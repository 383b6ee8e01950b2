//! When a node turns Ready with durations on: its kubelet pulls the images of the pods it
//! runs (the sandbox image, kube-proxy, the CNI's) unless they are present, one after the
//! other, each from when its pod could start, and the node is Ready
//! `kubelet_ready_after_cni_ms` after its CNI pod could start, or after the last pull.
//! Decided the first time anyone asks (see [`crate::durations::hooks::Active::node_ready`]).
//! Without durations every node is Ready as soon as its kubelet runs with a CNI.

use super::{schedulable, ClusterState, Node};
use crate::durations::hooks::{self, Need};
use crate::emu::images;

/// Whether the wait for `node`'s Ready (its kubelet runs, a CNI pod fits) is over.
pub(super) fn over(state: &ClusterState, node: &Node, cni_created: u64) -> bool {
    let Some(active) = hooks::active() else {
        return true;
    };
    let Some(cluster_dir) = active.cluster_dir() else {
        return true;
    };
    // Creation times are whole seconds: take the middle of the second.
    let ms = |secs: u64| secs * 1000 + 500;
    let since = ms(node.created.max(cni_created));
    let held = images::held(&cluster_dir, &node.host);
    let mut needs = Vec::new();
    let mut need = |image: String, from_ms: u64| {
        let image = images::normalize(&image);
        if needs.iter().any(|n: &Need| n.image == image) {
            return;
        }
        let present_at_ms = held.get(&image).map(|s| s.at_ms);
        needs.push(Need {
            image,
            from_ms,
            present_at_ms,
        });
    };
    let repository = match state.image_repository.as_str() {
        "" => "registry.k8s.io",
        r => r,
    };
    if let Some(pause) =
        super::super::kubeadm::control_plane_images(repository, &state.kubernetes_version).get(5)
    {
        need(pause.clone(), ms(node.created));
    }
    for ds in state.objects.iter().filter(|o| o.kind == "DaemonSet") {
        let Some(spec) = ds.body.pointer("/spec/template/spec") else {
            continue;
        };
        if !schedulable(spec, node, true) {
            continue;
        }
        for list in ["initContainers", "containers"] {
            for c in spec
                .get(list)
                .and_then(|l| l.as_array())
                .into_iter()
                .flatten()
            {
                if let Some(image) = c.get("image").and_then(|i| i.as_str()) {
                    need(image.to_string(), ms(node.created.max(ds.created)));
                }
            }
        }
    }
    let readiness = active.node_ready(&node.name, since, &needs);
    if !readiness.pulled.is_empty() {
        // What the kubelet pulled is in the node's store from then on.
        let _ = images::add(&cluster_dir, &node.host, &readiness.pulled);
    }
    hooks::now_ms() >= readiness.ready_at_ms
}
