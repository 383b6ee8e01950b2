//! Kubernetes upgrades: the rules checked before anything changes, the hops an
//! upgrade goes through, the order of the rolling upgrade, and the values the
//! upgrade playbook (`playbooks/upgrade.toml`) is rendered with.
//!
//! The rules, as kubeadm's upgrade documentation and the version skew policy
//! state them:
//! - one minor at a time: 1.29 → 1.31 goes through 1.30, each intermediate minor
//!   at the newest patch k8sup knows of it;
//! - never down: a target older than the running control plane is refused;
//! - a kubelet is never newer than the API server (the control plane goes first,
//!   and a cluster where a kubelet already is newer is refused).
//!
//! The order: the first master (`kubeadm upgrade apply`), the other masters one
//! at a time, then the workers in batches of `[upgrade] max_unavailable`.

use k8sup_inventory::{Host, Inventory, KubeVersion, PackageSource};
use serde_json::{json, Value};

use crate::KubeError;

/// Why an upgrade is refused before anything changes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpgradeError {
    #[error(
        "downgrade refused: the control plane runs v{from} and the inventory asks for v{to}; \
         kubeadm cannot go back a version (restore an etcd snapshot of the older cluster instead)"
    )]
    Downgrade { from: KubeVersion, to: KubeVersion },
    #[error(
        "{host}: its kubelet is v{kubelet}, newer than the API server (v{control_plane}); a kubelet \
         must never be newer than the API server: bring the control plane to v{kubelet} first"
    )]
    KubeletNewer {
        host: String,
        kubelet: KubeVersion,
        control_plane: KubeVersion,
    },
    #[error(
        "the cluster runs v{from}; k8sup knows no release of 1.{minor} to step through on the way to v{to}"
    )]
    UnknownMinor {
        from: KubeVersion,
        to: KubeVersion,
        minor: u32,
    },
    #[error(
        "the cluster runs v{from} and the inventory asks for v{to}: upgrades install packages, \
         so they need packages.source = \"repo\""
    )]
    BinarySource { from: KubeVersion, to: KubeVersion },
}

/// A version as a running component reports it: `v1.30.14`, `1.30.14` or a
/// package's `1.30.14-1.1`. Unlike [`KubeVersion::parse`], a patch k8sup does not
/// know is accepted: it is what runs.
pub fn running_version(text: &str) -> Option<KubeVersion> {
    let text = text.trim();
    let digits = text.strip_prefix('v').unwrap_or(text);
    let digits = digits.split(['-', '+']).next()?;
    let mut parts = digits.split('.');
    let (major, minor, patch) = (parts.next()?, parts.next()?, parts.next()?);
    if major != "1" || parts.next().is_some() {
        return None;
    }
    Some(KubeVersion {
        minor: minor.parse().ok()?,
        patch: patch.parse().ok()?,
    })
}

/// The versions an upgrade from `from` to `to` goes through, `to` last; empty
/// when there is nothing to do.
pub fn hops(from: KubeVersion, to: KubeVersion) -> Result<Vec<KubeVersion>, UpgradeError> {
    if to < from {
        return Err(UpgradeError::Downgrade { from, to });
    }
    let mut hops = Vec::new();
    for minor in from.minor + 1..to.minor {
        let newest = KubeVersion::parse(&format!("1.{minor}"))
            .map_err(|_| UpgradeError::UnknownMinor { from, to, minor })?;
        hops.push(newest);
    }
    if to != from {
        hops.push(to);
    }
    Ok(hops)
}

/// Checks the rules that need the cluster: no downgrade, no kubelet newer than the
/// control plane (`kubelets`: node name and the version its kubelet reports), and
/// packages that can be upgraded. Returns the hops.
pub fn check(
    inventory: &Inventory,
    control_plane: KubeVersion,
    kubelets: &[(String, KubeVersion)],
) -> Result<Vec<KubeVersion>, UpgradeError> {
    let to = inventory.cluster.kubernetes_version;
    let hops = hops(control_plane, to)?;
    for (host, kubelet) in kubelets {
        if *kubelet > control_plane {
            return Err(UpgradeError::KubeletNewer {
                host: host.clone(),
                kubelet: *kubelet,
                control_plane,
            });
        }
    }
    let behind = !hops.is_empty() || kubelets.iter().any(|(_, k)| *k < to);
    if behind && inventory.packages.source != PackageSource::Repo {
        return Err(UpgradeError::BinarySource {
            from: control_plane,
            to,
        });
    }
    Ok(hops)
}

/// The steps of the rolling upgrade, in order: the first master alone, each
/// other master alone, then the workers (nodes that are not masters) in batches
/// of `max_unavailable`.
pub fn steps(inventory: &Inventory) -> Vec<Vec<&Host>> {
    let mut steps: Vec<Vec<&Host>> = vec![vec![inventory.first_master()]];
    let first = &inventory.first_master().name;
    steps.extend(
        inventory
            .hosts
            .iter()
            .filter(|h| h.roles.master && h.name != *first)
            .map(|h| vec![h]),
    );
    let workers: Vec<&Host> = inventory
        .hosts
        .iter()
        .filter(|h| h.roles.node && !h.roles.master)
        .collect();
    let batch = inventory.upgrade.max_unavailable.of(workers.len());
    steps.extend(workers.chunks(batch).map(<[&Host]>::to_vec));
    steps
}

/// One phase of the upgrade playbook (see `playbooks/upgrade.toml`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Repository, the version asked of the package manager, kubeadm, `kubeadm upgrade plan`.
    Prepare,
    /// `kubeadm upgrade apply` or `kubeadm upgrade node`.
    Kubeadm,
    /// Runtime pins and configuration, kubelet and kubectl, the kubelet restarted.
    Kubelet,
}

impl Phase {
    pub const ALL: [Phase; 3] = [Phase::Prepare, Phase::Kubeadm, Phase::Kubelet];

    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Prepare => "prepare",
            Phase::Kubeadm => "kubeadm",
            Phase::Kubelet => "kubelet",
        }
    }
}

/// Where a worker records that `kubeadm upgrade node` succeeded for a version.
pub const MARKER_DIR: &str = "/var/lib/k8sup/upgrade";

/// The `upgrade` values of the upgrade playbook's context for `host`, where
/// `inventory` is the inventory at the hop's version (its
/// `cluster.kubernetes_version` is the hop).
pub fn context(inventory: &Inventory, host: &Host, phases: &[Phase]) -> Result<Value, KubeError> {
    let version = inventory.cluster.kubernetes_version;
    let v = format!("v{version}");
    let escaped = version.to_string().replace('.', "[.]");
    // The API server's static pod names the version once `kubeadm upgrade apply`
    // (first master) or `upgrade node` (other masters) succeeded.
    let control_plane_check = format!(
        "grep -qsE 'kube-apiserver:v{escaped}([^0-9.]|$)' /etc/kubernetes/manifests/kube-apiserver.yaml"
    );
    let kubelet_check = format!(
        "kubectl --kubeconfig /etc/kubernetes/kubelet.conf get node {} -o jsonpath='{{.status.nodeInfo.kubeletVersion}}' | grep -qx {}",
        quote(&host.name)?,
        quote(&v)?
    );
    let repo = inventory
        .packages
        .kubernetes_repo
        .as_deref()
        .unwrap_or(crate::context::PKGS_K8S_IO)
        .trim_end_matches('/');
    let missing = quote(&format!(
        "k8sup: kubeadm {version} is not in the Kubernetes repository this host uses ({repo}/{}): \
         nothing was drained or upgraded; check packages.kubernetes_repo or the version",
        version.repo_minor()
    ))?;
    let available_check = format!(
        "if command -v apt-get >/dev/null 2>&1; then apt-get update -q >/dev/null 2>&1; apt-cache madison kubeadm | grep -qF '| {version}-'; \
         elif command -v dnf >/dev/null 2>&1; then dnf list --showduplicates kubeadm 2>/dev/null | grep -qE '[[:space:]]{escaped}-'; \
         else yum list --showduplicates kubeadm 2>/dev/null | grep -qE '[[:space:]]{escaped}-'; \
         fi || {{ echo {missing} >&2; exit 1; }}"
    );
    // The pause image in the flags kubeadm wrote at join (see `kubeadm::kubelet_args`).
    let flags = "/var/lib/kubelet/kubeadm-flags.env";
    let pause = inventory.pause_image();
    let (pause_flag_cmd, pause_flag_check) =
        if crate::kubeadm::kubelet_takes_pod_infra_flag(&version) {
            let flag = format!("--pod-infra-container-image={pause}");
            (
                format!(
                    "sed -i {} {flags}",
                    quote(&format!("s|--pod-infra-container-image=[^\" ]*|{flag}|"))?
                ),
                format!(
                    "! grep -qs -- --pod-infra-container-image= {flags} || grep -qE -- {} {flags}",
                    quote(&format!("{}([\"[:space:]]|$)", flag.replace('.', "[.]")))?
                ),
            )
        } else {
            (
                format!("sed -i 's| *--pod-infra-container-image=[^\" ]*||' {flags}"),
                format!("! grep -qs -- --pod-infra-container-image= {flags}"),
            )
        };
    let marker_dir = format!("{MARKER_DIR}/{v}");
    Ok(json!({
        "version": version.to_string(),
        "version_v": v,
        "repo_minor_q": quote(&format!("/{}/", version.repo_minor()))?,
        "phases": phases.iter().map(|p| p.as_str()).collect::<Vec<_>>(),
        "control_plane_check": control_plane_check,
        "kubelet_check": kubelet_check,
        "available_check": available_check,
        "pause_flag_cmd": pause_flag_cmd,
        "pause_flag_check": pause_flag_check,
        "node_marker": format!("{marker_dir}/kubeadm-upgrade-node"),
        "marker_dir": marker_dir,
    }))
}

fn quote(text: &str) -> Result<String, KubeError> {
    k8sup_shell::ShellArg::new(text)
        .map(|a| a.quoted())
        .map_err(|_| KubeError::NotAShellWord {
            value: text.replace('\0', "\\0"),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing;

    fn v(text: &str) -> KubeVersion {
        running_version(text).expect(text)
    }

    #[test]
    fn running_versions_are_read_as_components_print_them() {
        assert_eq!(
            v("v1.30.14"),
            KubeVersion {
                minor: 30,
                patch: 14
            }
        );
        assert_eq!(
            v("1.29.10-1.1"),
            KubeVersion {
                minor: 29,
                patch: 10
            }
        );
        assert_eq!(
            v("1.29.10-150500.1.1"),
            KubeVersion {
                minor: 29,
                patch: 10
            }
        );
        // A patch k8sup does not know still runs.
        assert_eq!(
            v("v1.30.99"),
            KubeVersion {
                minor: 30,
                patch: 99
            }
        );
        for bad in ["", "v2.0.0", "1.30", "latest", "v1.x.3", "1.30.1.2"] {
            assert_eq!(running_version(bad), None, "{bad}");
        }
    }

    #[test]
    fn one_minor_at_a_time_each_at_its_newest_known_patch() {
        assert_eq!(hops(v("1.29.10"), v("1.30.14")).unwrap(), [v("1.30.14")]);
        assert_eq!(
            hops(v("1.29.10"), v("1.31.2")).unwrap(),
            [v("1.30.14"), v("1.31.2")]
        );
        assert_eq!(
            hops(v("1.28.1"), v("1.31.14")).unwrap(),
            [v("1.29.15"), v("1.30.14"), v("1.31.14")]
        );
        // A patch within the minor is one hop; nothing to do is none.
        assert_eq!(hops(v("1.30.4"), v("1.30.14")).unwrap(), [v("1.30.14")]);
        assert!(hops(v("1.30.14"), v("1.30.14")).unwrap().is_empty());
        // Older than k8sup's table: no release known to step through.
        assert_eq!(
            hops(v("1.22.3"), v("1.24.17")).unwrap_err(),
            UpgradeError::UnknownMinor {
                from: v("1.22.3"),
                to: v("1.24.17"),
                minor: 23
            }
        );
    }

    #[test]
    fn downgrades_and_kubelets_newer_than_the_api_server_are_refused() {
        let inventory = testing::inventory(testing::HA);
        let e = check(&inventory, v("1.31.2"), &[]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "downgrade refused: the control plane runs v1.31.2 and the inventory asks for v1.30.4; \
             kubeadm cannot go back a version (restore an etcd snapshot of the older cluster instead)"
        );
        let e = check(
            &inventory,
            v("1.29.10"),
            &[("m1".into(), v("1.29.10")), ("w1".into(), v("1.30.1"))],
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("w1: its kubelet is v1.30.1, newer than the API server (v1.29.10)"),
            "{e}"
        );
        let ok = check(
            &inventory,
            v("1.29.10"),
            &[("m1".into(), v("1.29.10")), ("w1".into(), v("1.28.3"))],
        )
        .unwrap();
        assert_eq!(ok, [v("1.30.4")]);
    }

    #[test]
    fn masters_go_one_at_a_time_then_workers_in_batches() {
        let text = format!(
            "{}\n[upgrade]\nmax_unavailable = \"50%\"\n{}",
            testing::HA.replace("[ssh]", "[ssh]\n"),
            (1..=5)
                .map(|i| format!(
                    "\n[[hosts]]\nname = \"x{i}\"\naddress = \"10.0.9.{i}\"\nroles = [\"node\"]\n"
                ))
                .collect::<String>()
        );
        let inventory = testing::inventory(&text);
        let names: Vec<Vec<&str>> = steps(&inventory)
            .iter()
            .map(|s| s.iter().map(|h| h.name.as_str()).collect())
            .collect();
        let masters: Vec<&str> = inventory.masters().map(|h| h.name.as_str()).collect();
        assert_eq!(names[0], [masters[0]]);
        assert!(names[1..masters.len()].iter().all(|s| s.len() == 1));
        // Six workers (w1 of the HA inventory and x1..x5) at 50%: batches of 3.
        let batches = &names[masters.len()..];
        assert_eq!(batches.iter().map(Vec::len).collect::<Vec<_>>(), [3, 3]);
    }

    /// Runs `script` with sh in `dir`, `flags` standing for the kubelet's flags file.
    fn sh(script: &str, flags: &std::path::Path) -> bool {
        let script = script.replace(
            "/var/lib/kubelet/kubeadm-flags.env",
            flags.to_str().unwrap(),
        );
        std::process::Command::new("sh")
            .arg("-c")
            .arg(script)
            .status()
            .unwrap()
            .success()
    }

    #[test]
    fn the_kubelet_flag_follows_the_pause_image_of_the_version() {
        let dir = tempfile::tempdir().unwrap();
        let flags = dir.path().join("kubeadm-flags.env");
        let joined = "KUBELET_KUBEADM_ARGS=\"--container-runtime-endpoint=unix:///run/containerd/containerd.sock --pod-infra-container-image=registry.k8s.io/pause:3.9\"\n";
        std::fs::write(&flags, joined).unwrap();
        let mut inventory = testing::inventory(&testing::HA.replace(
            "image_repository = \"registry.aliyuncs.com/google_containers\"\n",
            "",
        ));
        let host = inventory.first_master().clone();
        inventory.cluster.kubernetes_version = v("1.31.14");
        let c = context(&inventory, &host, &Phase::ALL).unwrap();
        let (cmd, check) = (
            c["pause_flag_cmd"].as_str().unwrap(),
            c["pause_flag_check"].as_str().unwrap(),
        );
        assert!(!sh(check, &flags), "3.9 is not 3.10");
        assert!(sh(cmd, &flags));
        assert_eq!(
            std::fs::read_to_string(&flags).unwrap(),
            joined.replace("pause:3.9", "pause:3.10")
        );
        assert!(sh(check, &flags));
        // From 1.35 the kubelet has no such flag: it goes.
        inventory.cluster.kubernetes_version = KubeVersion {
            minor: 35,
            patch: 0,
        };
        let c = context(&inventory, &host, &Phase::ALL).unwrap();
        assert!(!sh(c["pause_flag_check"].as_str().unwrap(), &flags));
        assert!(sh(c["pause_flag_cmd"].as_str().unwrap(), &flags));
        assert_eq!(
            std::fs::read_to_string(&flags).unwrap(),
            "KUBELET_KUBEADM_ARGS=\"--container-runtime-endpoint=unix:///run/containerd/containerd.sock\"\n"
        );
        assert!(sh(c["pause_flag_check"].as_str().unwrap(), &flags));
    }

    #[test]
    fn the_guards_name_the_exact_version() {
        let mut inventory = testing::inventory(testing::HA);
        inventory.cluster.kubernetes_version = v("1.31.14");
        let host = inventory.first_master().clone();
        let c = context(&inventory, &host, &Phase::ALL).unwrap();
        assert_eq!(c["version_v"], "v1.31.14");
        assert_eq!(c["phases"], json!(["prepare", "kubeadm", "kubelet"]));
        assert_eq!(
            c["control_plane_check"],
            "grep -qsE 'kube-apiserver:v1[.]31[.]14([^0-9.]|$)' /etc/kubernetes/manifests/kube-apiserver.yaml"
        );
        assert_eq!(
            c["node_marker"],
            "/var/lib/k8sup/upgrade/v1.31.14/kubeadm-upgrade-node"
        );
        assert!(c["available_check"]
            .as_str()
            .unwrap()
            .contains("apt-cache madison kubeadm | grep -qF '| 1.31.14-'"));
    }
}
