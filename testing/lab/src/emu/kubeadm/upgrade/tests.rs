use super::*;

fn v(text: &str) -> Version {
    Version::parse(text).expect("version")
}

fn policy(cluster: &str, kubeadm: &str, new: &str, kubelets: &[&str]) -> SkewErrors {
    let kubelets: Vec<String> = kubelets.iter().map(|k| k.to_string()).collect();
    enforce_version_policies(
        &v(cluster),
        &v(kubeadm),
        new,
        &v(new),
        &kubelets,
        false,
        false,
    )
}

#[test]
fn unified_diffs_as_go_difflib_writes_them() {
    let a = "1\n2\n3\n4\n5\n6\n7\n8\n9\n";
    let b = "1\n2\n3\n4\nV\n6\n7\n8\n9\n";
    assert_eq!(
        unified_diff(a, b, "/x", "new manifest", 3),
        "--- /x\n+++ new manifest\n@@ -2,7 +2,7 @@\n 2\n 3\n 4\n-5\n+V\n 6\n 7\n 8\n"
    );
    assert_eq!(unified_diff(a, a, "/x", "y", 3), "");
    assert_eq!(
        unified_diff("a\n", "b\n", "/x", "y", 3),
        "--- /x\n+++ y\n@@ -1 +1 @@\n-a\n+b\n"
    );
}

#[test]
fn one_minor_at_a_time_and_kubeadm_at_least_the_target() {
    // The ordinary step: nothing to say.
    assert_eq!(
        policy("1.29.10", "1.30.14", "v1.30.14", &["v1.29.10"]),
        SkewErrors::default()
    );
    // Two minors at once: fatal, --force does not help.
    let e = policy("1.29.10", "1.31.2", "v1.31.2", &["v1.29.10"]);
    assert_eq!(
        e.mandatory,
        ["Specified version to upgrade to \"v1.31.2\" is too high; kubeadm can upgrade only 1 minor version at a time"]
    );
    // A kubeadm of the previous minor cannot go to the next one.
    let e = policy("1.29.10", "1.29.10", "v1.30.14", &[]);
    assert_eq!(e.mandatory, ["Specified version to upgrade to \"v1.30.14\" is at least one minor release higher than the kubeadm minor release (30 > 29). Such an upgrade is not supported"]);
    // A newer patch than kubeadm: skippable with --force.
    let e = policy("1.30.2", "1.30.4", "v1.30.14", &[]);
    assert!(e.mandatory.is_empty());
    assert_eq!(e.skippable, ["Specified version to upgrade to \"v1.30.14\" is higher than the kubeadm version \"v1.30.4\". Upgrade kubeadm first using the tool you used to install kubeadm"]);
    // A kubeadm newer than the target's minor: skippable.
    let e = policy("1.30.2", "1.31.2", "v1.30.14", &[]);
    assert_eq!(
        e.skippable,
        ["Kubeadm version v1.31.2 can only be used to upgrade to Kubernetes version 1.31"]
    );
    // Down two minors: fatal; down one is kubeadm's business (allowed).
    let e = policy("1.31.2", "1.29.10", "v1.29.10", &[]);
    assert_eq!(e.mandatory, ["Specified version to downgrade to \"v1.29.10\" is too low; kubeadm can downgrade only 1 minor version at a time"]);
    assert!(policy("1.31.2", "1.30.14", "v1.30.14", &[])
        .mandatory
        .is_empty());
    // Kubelets more than three minors behind the target.
    let e = policy("1.30.2", "1.31.2", "v1.31.2", &["v1.27.4", "v1.30.2"]);
    assert_eq!(
        e.skippable,
        ["There are kubelets in this cluster that are too old that have these versions [v1.27.4]"]
    );
    // Release candidates need their flag.
    let e = policy("1.30.2", "1.31.0", "v1.31.0-rc.1", &[]);
    assert!(e
        .skippable
        .iter()
        .any(|m| m.contains("is an unstable version")));
}

mod on_a_cluster {
    use crate::emu::cluster::ClusterState;
    use crate::emu::kubelet::tests::install;
    use crate::emu::testing::FakeHost;

    const KC: &str = "--kubeconfig=/etc/kubernetes/admin.conf";

    fn cluster() -> (std::path::PathBuf, FakeHost, FakeHost) {
        crate::emu::kubectl::tests::cluster_of_two()
    }

    fn image_of(h: &FakeHost, component: &str) -> String {
        h.read(&format!("/etc/kubernetes/manifests/{component}.yaml"))
            .lines()
            .find_map(|l| l.trim().strip_prefix("image: ").map(String::from))
            .unwrap_or_default()
    }

    #[test]
    fn skipping_a_minor_is_fatal_and_changes_nothing() {
        let (shared, m, _n) = cluster();
        install(&m, &[("kubeadm", "1.32.3-1.1")]);
        let before = ClusterState::read(&shared).expect("state");
        let (s, out, err) = m.run("kubeadm", &["upgrade", "apply", "v1.32.3", "-y"]);
        assert_eq!(s, 1, "{out}");
        assert!(out.contains("[upgrade/preflight] You have chosen to upgrade the cluster version to \"v1.32.3\"\n[upgrade/versions] Cluster version: v1.30.4\n[upgrade/versions] kubeadm version: v1.32.3\n"), "{out}");
        assert_eq!(err, "[upgrade/version] FATAL: the --version argument is invalid due to these fatal errors:\n\n\t- Specified version to upgrade to \"v1.32.3\" is too high; kubeadm can upgrade only 1 minor version at a time\n\nPlease fix the misalignments highlighted above and try upgrading again\nTo see the stack trace of this error execute with --v=5 or higher\n");
        assert_eq!(ClusterState::read(&shared).expect("state"), before);
        assert_eq!(
            image_of(&m, "kube-apiserver"),
            "registry.k8s.io/kube-apiserver:v1.30.4"
        );
        // A newer patch than kubeadm needs --force.
        install(&m, &[("kubeadm", "1.31.2-1.1")]);
        let (s, _, err) = m.run("kubeadm", &["upgrade", "apply", "v1.31.9", "-y"]);
        assert_eq!(s, 1);
        assert!(
            err.contains("is higher than the kubeadm version \"v1.31.2\""),
            "{err}"
        );
        assert!(
            err.contains("Can be bypassed if you pass the --force flag"),
            "{err}"
        );
    }

    #[test]
    fn a_not_ready_control_plane_stops_the_upgrade_unless_ignored() {
        let (_shared, m, _n) = cluster();
        install(&m, &[("kubeadm", "1.31.2-1.1")]);
        assert_eq!(m.run("systemctl", &["stop", "kubelet"]).0, 0);
        crate::emu::kubelet::sync(&crate::emu::Invocation::new(&m.root, "systemctl", &[], 0));
        let (s, _, err) = m.run("kubeadm", &["upgrade", "apply", "v1.31.2", "-y"]);
        assert_eq!(s, 1);
        assert!(err.starts_with("[upgrade/health] FATAL: [preflight] Some fatal errors occurred:\n\t[ERROR ControlPlaneNodesReady]: there are NotReady control-planes in the cluster: [master]\n"), "{err}");
        let (_, out, _) = m.run(
            "kubeadm",
            &[
                "upgrade",
                "plan",
                "--ignore-preflight-errors=ControlPlaneNodesReady",
            ],
        );
        assert!(
            out.contains("[upgrade/versions] Target version: v1.31.2"),
            "{out}"
        );
    }

    #[test]
    fn diff_shows_the_image_lines_that_would_change() {
        let (_shared, m, _n) = cluster();
        let (s, out, err) = m.run("kubeadm", &["upgrade", "diff", "v1.31.2"]);
        assert_eq!(s, 0, "{err}");
        assert!(
            out.starts_with(
                "--- /etc/kubernetes/manifests/kube-apiserver.yaml\n+++ new manifest\n@@ "
            ),
            "{out}"
        );
        assert!(out.contains("\n-    image: registry.k8s.io/kube-apiserver:v1.30.4\n+    image: registry.k8s.io/kube-apiserver:v1.31.2\n"), "{out}");
        assert!(
            out.contains("--- /etc/kubernetes/manifests/kube-scheduler.yaml\n"),
            "{out}"
        );
        assert!(!out.contains("etcd.yaml"), "{out}");
        let (_, same, _) = m.run("kubeadm", &["upgrade", "diff", "v1.30.4"]);
        assert_eq!(same, "");
    }

    #[test]
    fn apply_asks_unless_told_yes() {
        let (_shared, m, _n) = cluster();
        install(&m, &[("kubeadm", "1.31.2-1.1")]);
        let (s, out, err) = m.run("kubeadm", &["upgrade", "apply", "v1.31.2"]);
        assert_eq!(s, 1);
        assert!(
            out.ends_with("[upgrade] Are you sure you want to proceed? [y/N]: \n"),
            "{out}"
        );
        assert!(
            err.starts_with("won't proceed; the user didn't answer (Y|n) in order to continue\n"),
            "{err}"
        );
        assert_eq!(
            image_of(&m, "kube-apiserver"),
            "registry.k8s.io/kube-apiserver:v1.30.4"
        );
        // --dry-run changes nothing either.
        let (s, out, err) = m.run("kubeadm", &["upgrade", "apply", "v1.31.2", "--dry-run"]);
        assert_eq!(s, 0, "{err}");
        assert!(
            out.ends_with("[upgrade/successful] Finished dryrunning successfully!\n"),
            "{out}"
        );
        assert_eq!(
            image_of(&m, "kube-apiserver"),
            "registry.k8s.io/kube-apiserver:v1.30.4"
        );
    }

    #[test]
    fn apply_then_node_move_the_cluster_one_minor_at_a_time() {
        let (shared, m, n) = cluster();
        install(&m, &[("kubeadm", "1.31.2-1.1")]);
        let (s, out, err) = m.run("kubeadm", &["upgrade", "plan"]);
        assert_eq!(s, 0, "{err}");
        assert!(
            out.contains("[upgrade/versions] Target version: v1.31.2\n"),
            "{out}"
        );
        assert!(out.contains("\n\tkubeadm upgrade apply v1.31.2\n"), "{out}");
        let row = out
            .lines()
            .find(|l| l.starts_with("kube-apiserver "))
            .expect("row");
        assert_eq!(
            row.split_whitespace().collect::<Vec<_>>(),
            ["kube-apiserver", "master", "v1.30.4", "v1.31.2"]
        );

        let (s, out, err) = m.run("kubeadm", &["upgrade", "apply", "v1.31.2", "--yes"]);
        assert_eq!(s, 0, "{out}{err}");
        assert!(out.ends_with("[upgrade/successful] SUCCESS! Your cluster was upgraded to \"v1.31.2\". Enjoy!\n\n[upgrade/kubelet] Now that your control plane is upgraded, please proceed with upgrading your kubelets if you haven't already done so.\n"), "{out}");
        assert_eq!(
            image_of(&m, "kube-apiserver"),
            "registry.k8s.io/kube-apiserver:v1.31.2"
        );
        assert_eq!(
            image_of(&m, "kube-scheduler"),
            "registry.k8s.io/kube-scheduler:v1.31.2"
        );
        assert_eq!(image_of(&m, "etcd"), "registry.k8s.io/etcd:3.5.15-0");
        let state = ClusterState::read(&shared).expect("state");
        assert_eq!(state.kubernetes_version, "1.31.2");
        let cm = state
            .object("ConfigMap", "kube-system", "kubeadm-config")
            .expect("cm");
        let text = crate::emu::cluster::str_at(&cm.body, &["data", "ClusterConfiguration"]);
        assert!(
            text.contains("kubernetesVersion: v1.31.2") && text.contains("kubeadm.k8s.io/v1beta4"),
            "{text}"
        );
        let image = |kind: &str, name: &str| {
            state.object(kind, "kube-system", name).expect("addon").body["spec"]["template"]["spec"]
                ["containers"][0]["image"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        };
        assert_eq!(
            image("DaemonSet", "kube-proxy"),
            "registry.k8s.io/kube-proxy:v1.31.2"
        );
        assert_eq!(
            image("Deployment", "coredns"),
            "registry.k8s.io/coredns/coredns:v1.11.3"
        );
        assert!(m
            .read("/var/lib/kubelet/config.yaml")
            .contains("containerRuntimeEndpoint"));
        let (_, out, _) = m.run("kubectl", &[KC, "version"]);
        assert!(out.contains("Server Version: v1.31.2"), "{out}");
        // Nodes keep reporting the kubelet they run until it is upgraded and restarted.
        assert_eq!(state.nodes["node-1"].kubelet_version, "v1.30.4");

        // The worker: only its kubelet configuration.
        n.write(
            "/var/lib/kubelet/config.yaml",
            "staleField: 1\ncontainerRuntimeEndpoint: unix:///run/containerd/containerd.sock\n",
        );
        install(&n, &[("kubeadm", "1.31.2-1.1")]);
        let (s, out, err) = n.run("kubeadm", &["upgrade", "node"]);
        assert_eq!(s, 0, "{out}{err}");
        assert!(
            out.contains("[preflight] Skipping prepull. Not a control plane node.\n"),
            "{out}"
        );
        assert!(out.ends_with("[upgrade] The configuration for this node was successfully updated!\n[upgrade] Now you should go ahead and upgrade the kubelet package using your package manager.\n"), "{out}");
        let config = n.read("/var/lib/kubelet/config.yaml");
        assert!(
            !config.contains("staleField") && config.contains("kind: KubeletConfiguration"),
            "{config}"
        );
        // On the master again: nothing left to replace.
        let (s, out, err) = m.run("kubeadm", &["upgrade", "node"]);
        assert_eq!(s, 0, "{out}{err}");
        assert!(
            out.contains("Current and new manifests of kube-apiserver are equal, skipping upgrade"),
            "{out}"
        );

        // The next minor with kubeadm 1.32 speaks in phases.
        install(&m, &[("kubeadm", "1.32.3-1.1")]);
        let (s, out, err) = m.run("kubeadm", &["upgrade", "apply", "v1.32.3", "-y"]);
        assert_eq!(s, 0, "{out}{err}");
        assert!(out.ends_with("[upgrade] SUCCESS! A control plane node of your cluster was upgraded to \"v1.32.3\".\n\n[upgrade] Now please proceed with upgrading the rest of the nodes by following the right order.\n"), "{out}");
        assert_eq!(
            image_of(&m, "kube-apiserver"),
            "registry.k8s.io/kube-apiserver:v1.32.3"
        );
        // Up to date: plan says so.
        let (s, out, _) = m.run("kubeadm", &["upgrade", "plan"]);
        assert_eq!(s, 0);
        assert!(
            out.ends_with("Awesome, you're up-to-date! Enjoy!\n"),
            "{out}"
        );
    }
}

mod high_availability {
    use crate::distro::Arch;
    use crate::emu::cluster::ClusterState;
    use crate::emu::kubeadm::tests::{init_ha_master, ready_host, shared_dir};
    use crate::emu::kubelet::tests::install;

    #[test]
    fn other_masters_keep_their_version_until_upgrade_node() {
        let shared = shared_dir();
        let (m, _) = init_ha_master(&shared);
        let state = ClusterState::read(&shared).expect("state");
        let key = state.certificate_key.clone().expect("key");
        let m2 = ready_host("master-2", "127.77.0.4", Arch::Amd64, &shared);
        let (s, out, err) = m2.run(
            "kubeadm",
            &[
                "join",
                "127.77.0.2:6443",
                "--token",
                "abcdef.0123456789abcdef",
                "--discovery-token-ca-cert-hash",
                &state.ca_hash,
                "--control-plane",
                "--certificate-key",
                &key,
            ],
        );
        assert_eq!(s, 0, "{out}{err}");
        let etcd_before = m2.read("/etc/kubernetes/manifests/etcd.yaml");
        install(&m, &[("kubeadm", "1.31.2-1.1")]);
        let (s, out, err) = m.run("kubeadm", &["upgrade", "apply", "v1.31.2", "-y"]);
        assert_eq!(s, 0, "{out}{err}");
        let state = ClusterState::read(&shared).expect("state");
        assert_eq!(state.kubernetes_version, "1.31.2");
        assert_eq!(state.nodes["master"].control_plane_version, None);
        assert_eq!(
            state.nodes["master-2"].control_plane_version.as_deref(),
            Some("1.30.4")
        );
        assert!(m2
            .read("/etc/kubernetes/manifests/kube-apiserver.yaml")
            .contains("kube-apiserver:v1.30.4"));

        install(&m2, &[("kubeadm", "1.31.2-1.1")]);
        let (s, out, err) = m2.run("kubeadm", &["upgrade", "node"]);
        assert_eq!(s, 0, "{out}{err}");
        assert!(out.contains("[upgrade] Upgrading your Static Pod-hosted control plane instance to version \"v1.31.2\"..."), "{out}");
        assert!(
            out.contains(
                "[upgrade] The control plane instance for this node was successfully updated!"
            ),
            "{out}"
        );
        assert!(m2
            .read("/etc/kubernetes/manifests/kube-apiserver.yaml")
            .contains("kube-apiserver:v1.31.2"));
        // The member keeps its cluster flags; only etcd's image moved.
        let etcd_after = m2.read("/etc/kubernetes/manifests/etcd.yaml");
        assert_eq!(
            etcd_after.replace("etcd:3.5.15-0", "etcd:3.5.12-0"),
            etcd_before
        );
        let state = ClusterState::read(&shared).expect("state");
        assert_eq!(state.nodes["master-2"].control_plane_version, None);
        // The kubelet restarted each replaced component, one master after the other.
        let restarts: Vec<(String, String)> = crate::emu::etcd::pod_log(&shared)
            .into_iter()
            .filter(|e| e.event == "stopped" && e.pod == "kube-apiserver")
            .map(|e| (e.host, e.pod))
            .collect();
        assert_eq!(
            restarts,
            [
                ("master".to_string(), "kube-apiserver".to_string()),
                ("master-2".to_string(), "kube-apiserver".to_string())
            ]
        );
        let _ = std::fs::remove_dir_all(&shared);
    }
}
