//! The default playbook and its templates, embedded in the binary.
//!
//! The files live at the top of the repository (`playbooks/kubernetes.toml`,
//! `templates/*.j2`) so that users can read them and override them
//! (`--playbook`, a templates directory); these constants are what k8sup runs
//! when nothing is overridden. Render them with [`crate::context::template_context`].

/// The name the default playbook is reported under.
pub const PLAYBOOK_NAME: &str = "playbooks/kubernetes.toml";

/// The default playbook's text.
pub const PLAYBOOK: &str = include_str!("../../../playbooks/kubernetes.toml");

/// The name the upgrade playbook is reported under.
pub const UPGRADE_PLAYBOOK_NAME: &str = "playbooks/upgrade.toml";

/// The upgrade playbook's text: one hop of a Kubernetes upgrade, run in phases
/// by k8sup-ops (see [`crate::upgrade`]).
pub const UPGRADE_PLAYBOOK: &str = include_str!("../../../playbooks/upgrade.toml");

/// The name the reset playbook is reported under.
pub const RESET_PLAYBOOK_NAME: &str = "playbooks/reset.toml";

/// The reset playbook's text: what `k8sup reset` (and the removal of a reachable
/// node) does on each host, run by k8sup-ops.
pub const RESET_PLAYBOOK: &str = include_str!("../../../playbooks/reset.toml");

/// The templates the default playbook uses, by name.
pub const TEMPLATES: &[(&str, &str)] = &[
    (
        "cni.yaml.j2",
        include_str!("../../../templates/cni.yaml.j2"),
    ),
    (
        "containerd-config.toml.j2",
        include_str!("../../../templates/containerd-config.toml.j2"),
    ),
    (
        "containerd-docker-hub-hosts.toml.j2",
        include_str!("../../../templates/containerd-docker-hub-hosts.toml.j2"),
    ),
    (
        "cri-docker.service.j2",
        include_str!("../../../templates/cri-docker.service.j2"),
    ),
    (
        "cri-docker.socket.j2",
        include_str!("../../../templates/cri-docker.socket.j2"),
    ),
    (
        "crictl.yaml.j2",
        include_str!("../../../templates/crictl.yaml.j2"),
    ),
    (
        "docker-ce.repo.j2",
        include_str!("../../../templates/docker-ce.repo.j2"),
    ),
    (
        "docker-daemon.json.j2",
        include_str!("../../../templates/docker-daemon.json.j2"),
    ),
    (
        "docker.list.j2",
        include_str!("../../../templates/docker.list.j2"),
    ),
    (
        "docker.sources.j2",
        include_str!("../../../templates/docker.sources.j2"),
    ),
    (
        "haproxy.cfg.j2",
        include_str!("../../../templates/haproxy.cfg.j2"),
    ),
    (
        "kubeadm-init.yaml.j2",
        include_str!("../../../templates/kubeadm-init.yaml.j2"),
    ),
    (
        "kubeadm-join.yaml.j2",
        include_str!("../../../templates/kubeadm-join.yaml.j2"),
    ),
    (
        "kubernetes.list.j2",
        include_str!("../../../templates/kubernetes.list.j2"),
    ),
    (
        "kubernetes.repo.j2",
        include_str!("../../../templates/kubernetes.repo.j2"),
    ),
    (
        "kubernetes.sources.j2",
        include_str!("../../../templates/kubernetes.sources.j2"),
    ),
];

#[cfg(test)]
mod tests;
