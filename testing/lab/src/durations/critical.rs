//! The critical path of a whole cluster: from a durations profile and the cluster's shape,
//! the least wall time any installer can take, however well it overlaps.
//!
//! The dependent steps, with every host working in parallel and everything that can be
//! fetched ahead fetched ahead:
//!
//! 1. each host prepares: package indexes, its packages one after the other (downloaded,
//!    unpacked), the runtime restarted with its configuration;
//! 2. the first master pulls the control-plane images (the mirror all to itself), then
//!    `kubeadm init`; the CNI manifest is applied the moment init is done, and the join
//!    credentials exist from then on;
//! 3. every other host, prepared and with its images pulled ahead while init runs, joins
//!    (`kubeadm join`, or with `--control-plane` for the other masters);
//! 4. each node turns Ready `kubelet_ready_after_cni_ms` after its join, the CNI and its
//!    images, whichever comes last.
//!
//! A second bound: every image byte every host needs crosses the one mirror, which cannot
//! start before the first runtime is up; the last node turns Ready after that.
//! The critical path is the larger of the two. It counts no SSH, no controller work and
//! no probe: those are what an installer adds.

use serde::Serialize;

use super::Durations;

/// What the cluster holds and what each host installs and pulls.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClusterShape {
    pub masters: usize,
    /// Hosts that are only nodes.
    pub workers: usize,
    /// Packages every host installs (from fresh: the runtime and the kube packages with
    /// their dependencies).
    pub packages: Vec<String>,
    /// The runtime's unit, restarted once with its configuration.
    pub runtime_unit: String,
    /// What `kubeadm config images list` prints for the version.
    pub control_plane_images: Vec<String>,
    /// What a node runs once it joined: pause, kube-proxy and the CNI's images.
    pub node_images: Vec<String>,
}

impl ClusterShape {
    /// containerd, the kube packages of pkgs.k8s.io with their dependencies, flannel,
    /// Kubernetes `1.<minor>.<patch>` from registry.k8s.io: what the built-in playbook
    /// installs on a fresh Ubuntu host.
    pub fn kubeadm_flannel(masters: usize, workers: usize, version: &str, pause: &str) -> Self {
        let cp = |name: &str| format!("registry.k8s.io/{name}:v{version}");
        ClusterShape {
            masters,
            workers,
            packages: [
                "containerd.io",
                "cri-tools",
                "kubernetes-cni",
                "conntrack",
                "ebtables",
                "ethtool",
                "socat",
                "kubelet",
                "kubeadm",
                "kubectl",
            ]
            .map(String::from)
            .to_vec(),
            runtime_unit: "containerd".into(),
            control_plane_images: vec![
                cp("kube-apiserver"),
                cp("kube-controller-manager"),
                cp("kube-scheduler"),
                cp("kube-proxy"),
                "registry.k8s.io/coredns/coredns:v1.11.1".into(),
                format!("registry.k8s.io/pause:{pause}"),
                "registry.k8s.io/etcd:3.5.12-0".into(),
            ],
            node_images: vec![
                format!("registry.k8s.io/pause:{pause}"),
                cp("kube-proxy"),
                "docker.io/flannel/flannel-cni-plugin:v1.5.1-flannel2".into(),
                "docker.io/flannel/flannel:v0.25.6".into(),
            ],
        }
    }
}

/// The critical path and its parts, milliseconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CriticalPath {
    /// One host's preparation (indexes, packages, runtime restart).
    pub prepare_ms: u64,
    /// The first master's control-plane images, the mirror to itself.
    pub control_plane_pull_ms: u64,
    pub init_ms: u64,
    /// The slowest join after init (a control-plane join when there are other masters).
    pub join_ms: u64,
    pub ready_after_cni_ms: u64,
    /// The chain: prepare → pull → init → join → Ready.
    pub chain_ms: u64,
    /// Every image byte through the one mirror, from the first runtime up, then Ready.
    pub mirror_bound_ms: u64,
    /// The larger of the two: the least wall time.
    pub total_ms: u64,
}

/// The least wall time of a whole cluster of `shape` under `d` (real time: `time_scale`
/// is not applied).
pub fn critical_path(d: &Durations, shape: &ClusterShape) -> CriticalPath {
    let link = |image: &str| super::transfer_ms(d.image_bytes(image) as f64, d.network.mirror_mbps);
    let nic = |image: &str| super::transfer_ms(d.image_bytes(image) as f64, d.network.host_mbps);
    let unpack = |image: &str| d.unpack_ms(d.image_bytes(image));
    let alone =
        |images: &[String]| -> u64 { images.iter().map(|i| link(i).max(nic(i)) + unpack(i)).sum() };
    let prepare_ms = d.packages.index_update_ms
        + shape.packages.iter().map(|p| d.package_ms(p)).sum::<u64>()
        + d.service_ms(&shape.runtime_unit);
    let control_plane_pull_ms = alone(&shape.control_plane_images);
    let init_ms = d.steps.kubeadm_init_ms;
    let init_done = prepare_ms + control_plane_pull_ms + init_ms;
    // Another host's images are pulled while init runs; if they take longer, the join waits.
    let other_pulls = |images: &[String]| prepare_ms + alone(images);
    let mut join_ms = 0;
    let mut joined = init_done;
    if shape.masters > 1 {
        let start = init_done.max(other_pulls(&shape.control_plane_images));
        join_ms = d.steps.kubeadm_join_control_plane_ms;
        joined = joined.max(start + join_ms);
    }
    if shape.workers > 0 {
        let start = init_done.max(other_pulls(&shape.node_images));
        join_ms = join_ms.max(d.steps.kubeadm_join_ms);
        joined = joined.max(start + d.steps.kubeadm_join_ms);
    }
    let ready_after_cni_ms = d.steps.kubelet_ready_after_cni_ms;
    let chain_ms = joined + ready_after_cni_ms;

    let total_bytes_ms = |images: &[String], hosts: usize| -> u64 {
        images.iter().map(|i| link(i)).sum::<u64>() * hosts as u64
    };
    let mut master_images = shape.control_plane_images.clone();
    for i in &shape.node_images {
        if !master_images.contains(i) {
            master_images.push(i.clone());
        }
    }
    let mirror_bound_ms = prepare_ms
        + total_bytes_ms(&master_images, shape.masters)
        + total_bytes_ms(&shape.node_images, shape.workers)
        + ready_after_cni_ms;
    CriticalPath {
        prepare_ms,
        control_plane_pull_ms,
        init_ms,
        join_ms,
        ready_after_cni_ms,
        chain_ms,
        mirror_bound_ms,
        total_ms: chain_ms.max(mirror_bound_ms),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(masters: usize, workers: usize) -> ClusterShape {
        ClusterShape::kubeadm_flannel(masters, workers, "1.30.4", "3.9")
    }

    #[test]
    fn one_master_is_prepare_pull_init_then_ready() {
        let d = Durations::realistic();
        let c = critical_path(&d, &shape(1, 0));
        assert_eq!(c.join_ms, 0);
        assert_eq!(
            c.chain_ms,
            c.prepare_ms + c.control_plane_pull_ms + c.init_ms + c.ready_after_cni_ms
        );
        // Preparation is indexes, ten packages and one restart.
        let packages: u64 = shape(1, 0).packages.iter().map(|p| d.package_ms(p)).sum();
        assert_eq!(
            c.prepare_ms,
            d.packages.index_update_ms + packages + d.steps.service_restart_ms["containerd"]
        );
    }

    #[test]
    fn other_masters_make_the_chain_a_control_plane_join() {
        let d = Durations::realistic();
        let one = critical_path(&d, &shape(1, 3));
        let three = critical_path(&d, &shape(3, 1));
        assert_eq!(one.join_ms, d.steps.kubeadm_join_ms);
        assert_eq!(three.join_ms, d.steps.kubeadm_join_control_plane_ms);
        assert_eq!(
            three.chain_ms - one.chain_ms,
            d.steps.kubeadm_join_control_plane_ms - d.steps.kubeadm_join_ms
        );
    }

    #[test]
    fn many_hosts_are_bound_by_the_shared_mirror() {
        let mut d = Durations::realistic();
        let small = critical_path(&d, &shape(3, 47));
        let large = critical_path(&d, &shape(3, 197));
        // The chain does not grow with hosts; the mirror's bound does.
        assert_eq!(small.chain_ms, large.chain_ms);
        assert!(large.mirror_bound_ms > small.mirror_bound_ms);
        d.network.mirror_mbps = 100.0;
        let slow = critical_path(&d, &shape(3, 197));
        assert_eq!(slow.total_ms, slow.mirror_bound_ms);
        assert!(slow.total_ms > slow.chain_ms);
    }
}
