//! Every runtime version k8sup pins is one the lab's emulated Docker
//! repositories serve (as Docker's real ones do, for apt and dnf alike): a pin
//! the lab lacks would fail only in the nightly lab, not here.

use k8sup_kube::pins;
use k8sup_lab::emu::repos::{CONTAINERD_IO_VERSIONS, DOCKER_VERSIONS};

#[test]
fn every_pinned_version_is_in_the_lab_s_docker_repositories() {
    for (minor, p) in pins::table() {
        assert!(
            DOCKER_VERSIONS.contains(&p.docker_ce),
            "1.{minor}: docker-ce {} is not in the lab's repositories",
            p.docker_ce
        );
        assert!(
            CONTAINERD_IO_VERSIONS.contains(&p.containerd_io),
            "1.{minor}: containerd.io {} is not in the lab's repositories",
            p.containerd_io
        );
    }
    let (containerd_io, docker_ce) = pins::EL7;
    assert!(CONTAINERD_IO_VERSIONS.contains(&containerd_io));
    assert!(DOCKER_VERSIONS.contains(&docker_ce));
}
