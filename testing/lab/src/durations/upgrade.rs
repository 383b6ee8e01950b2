//! The ideal time of a rolling upgrade by one minor: batches × one node's upgrade time.
//!
//! What one node's upgrade takes, with nothing overlapped inside the node (each step
//! needs the one before) and no controller overhead:
//!
//! - every node: the package indexes of the new minor's repository, the kubeadm package,
//!   the node drained, the kubelet and kubectl packages, the kubelet restarted and the
//!   node Ready again (`kubelet_ready_after_cni_ms`: the next batch waits for it);
//! - the first master: the new control-plane images pulled (the mirror to itself) and
//!   `kubeadm upgrade apply`;
//! - another master: the same images and `kubeadm upgrade node`, which replaces its
//!   static pods as apply does (the profile's `kubeadm_upgrade_apply_ms`);
//! - a worker: `kubeadm upgrade node` (its kubelet configuration only).
//!
//! Masters go one at a time; workers in batches of `max_unavailable`, each batch taking
//! one worker's time (its nodes in parallel). The ideal is the sum: first master, the
//! other masters, then the batches.

use serde::Serialize;

use super::Durations;

/// The cluster being upgraded and how many workers may be down at once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UpgradeShape {
    pub masters: usize,
    pub workers: usize,
    /// Workers upgraded at once (`[upgrade] max_unavailable` resolved to a count, >= 1).
    pub max_unavailable: usize,
    /// What `kubeadm config images list` prints for the target version.
    pub control_plane_images: Vec<String>,
}

impl UpgradeShape {
    /// The images of Kubernetes `version` (`1.31.2`) from registry.k8s.io, with the etcd,
    /// CoreDNS and pause tags of that minor as kubeadm names them.
    pub fn kubeadm(masters: usize, workers: usize, max_unavailable: usize, version: &str) -> Self {
        UpgradeShape {
            masters,
            workers,
            max_unavailable: max_unavailable.max(1),
            control_plane_images: crate::emu::kubeadm_images("registry.k8s.io", version),
        }
    }

    /// Worker batches: `ceil(workers / max_unavailable)`.
    pub fn batches(&self) -> usize {
        self.workers.div_ceil(self.max_unavailable.max(1))
    }
}

/// The ideal upgrade time and its parts, milliseconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IdealUpgrade {
    /// Index update, package swaps, drain, kubelet restart and Ready: every node does these.
    pub node_common_ms: u64,
    pub control_plane_pull_ms: u64,
    pub first_master_ms: u64,
    pub other_master_ms: u64,
    pub worker_ms: u64,
    pub batches: usize,
    /// first master + (masters - 1) × other master + batches × worker.
    pub total_ms: u64,
}

/// The least time a rolling upgrade of `shape` can take under `d` (real time:
/// `time_scale` is not applied).
pub fn ideal_upgrade(d: &Durations, shape: &UpgradeShape) -> IdealUpgrade {
    let node_common_ms = d.packages.index_update_ms
        + d.package_ms("kubeadm")
        + d.steps.drain_ms
        + d.package_ms("kubelet")
        + d.package_ms("kubectl")
        + d.service_ms("kubelet")
        + d.steps.kubelet_ready_after_cni_ms;
    let control_plane_pull_ms = shape
        .control_plane_images
        .iter()
        .map(|i| {
            let bytes = d.image_bytes(i) as f64;
            super::transfer_ms(bytes, d.network.mirror_mbps)
                .max(super::transfer_ms(bytes, d.network.host_mbps))
                + d.unpack_ms(d.image_bytes(i))
        })
        .sum();
    let master = node_common_ms + control_plane_pull_ms + d.steps.kubeadm_upgrade_apply_ms;
    let worker_ms = node_common_ms + d.steps.kubeadm_upgrade_node_ms;
    let batches = shape.batches();
    let first_master_ms = if shape.masters > 0 { master } else { 0 };
    let others = shape.masters.saturating_sub(1) as u64;
    IdealUpgrade {
        node_common_ms,
        control_plane_pull_ms,
        first_master_ms,
        other_master_ms: master,
        worker_ms,
        batches,
        total_ms: first_master_ms + others * master + batches as u64 * worker_ms,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_times_one_node() {
        let d = Durations::realistic();
        let one = ideal_upgrade(&d, &UpgradeShape::kubeadm(1, 50, 5, "1.31.2"));
        assert_eq!(one.batches, 10);
        assert_eq!(one.total_ms, one.first_master_ms + 10 * one.worker_ms);
        // A worker: indexes, three packages, drain, upgrade node, restart, Ready.
        assert_eq!(
            one.worker_ms,
            d.packages.index_update_ms
                + d.package_ms("kubeadm")
                + d.package_ms("kubelet")
                + d.package_ms("kubectl")
                + d.steps.drain_ms
                + d.steps.kubeadm_upgrade_node_ms
                + d.steps.service_restart_ms["kubelet"]
                + d.steps.kubelet_ready_after_cni_ms
        );
        // A master also pulls the new images and runs apply.
        assert_eq!(
            one.first_master_ms - one.worker_ms,
            one.control_plane_pull_ms + d.steps.kubeadm_upgrade_apply_ms
                - d.steps.kubeadm_upgrade_node_ms
        );
        assert!(one.control_plane_pull_ms > 0);
        // 10% of 50 (5), of 51 (ceil: 6 batches of up to 10 with max 10)...
        let three = ideal_upgrade(&d, &UpgradeShape::kubeadm(3, 51, 10, "1.31.2"));
        assert_eq!(three.batches, 6);
        assert_eq!(
            three.total_ms,
            3 * three.other_master_ms + 6 * three.worker_ms
        );
        // max_unavailable 0 is read as 1.
        assert_eq!(UpgradeShape::kubeadm(1, 3, 0, "1.31.2").batches(), 3);
    }
}
