//! `runtime = "docker"` on a mixed lab: Docker from its repositories, and
//! cri-dockerd from a release archive on the controller (no host downloads it:
//! k8sup reads the archive once per arch, takes the program out and uploads it).
//! Every node Ready over cri-dockerd's socket, with the same cgroup driver in
//! Docker and the kubelet, and a second apply changes nothing.

mod common;

use common::{
    assert_converged, k8sup, lab, mixed_lab, on, read, release_archive, stderr, stdout,
    write_inventory, CRI_DOCKERD,
};
use k8sup_lab::Lab;

/// stdout and stderr of `command` on `host`, for the messages of a failure.
fn on_both(lab: &Lab, host: &str, command: &str) -> String {
    let out = lab.ssh(host, command).expect("ssh runs");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn docker_with_cri_dockerd_from_the_controller_comes_up_ready() {
    let Some(lab) = lab(&mixed_lab("kdock")) else {
        return;
    };
    let archives = lab.dir().join("cri-dockerd");
    std::fs::create_dir_all(&archives).expect("dir");
    for arch in ["amd64", "arm64"] {
        release_archive(&archives, arch);
    }
    let source = archives.join("cri-dockerd-0.3.15.{arch}.tgz");
    let cluster = format!(
        r#"
[cluster]
name = "kdock"
kubernetes_version = "1.30.4"
runtime = "docker"
cni = "flannel"
pod_cidr = "10.250.0.0/16"
image_repository = "registry.aliyuncs.com/google_containers"

[packages]
cri_dockerd = "{}"
"#,
        source.display()
    );
    let inv = write_inventory(&lab, "kdock.toml", &lab.inventory_toml(&cluster));
    let inv = inv.to_str().unwrap();
    let state = lab.dir().join("k8sup-state");
    let env = [("K8SUP_STATE_DIR", state.to_str().unwrap())];

    // The plan shows the upload by size and hash, and writes nothing.
    let plan = k8sup(&["plan", "-i", inv], &env);
    let text = stdout(&plan);
    assert!(
        text.contains("upload artifact cri-dockerd to /usr/local/bin/cri-dockerd (mode 0755,"),
        "{text}{}",
        stderr(&plan)
    );
    assert!(
        !lab.host("master")
            .unwrap()
            .path("/usr/local/bin/cri-dockerd")
            .exists(),
        "plan wrote cri-dockerd"
    );

    let first = k8sup(&["apply", "-i", inv], &env);
    assert!(
        first.status.success(),
        "{}{}",
        stdout(&first),
        stderr(&first)
    );

    let nodes = on(&lab, "master", "kubectl get nodes --no-headers -o wide");
    for name in ["master", "node-a", "node-arm", "node-r"] {
        let line = nodes
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("{name} is not registered:\n{nodes}"));
        assert_eq!(line.split_whitespace().nth(1), Some("Ready"), "{nodes}");
        assert!(
            line.contains("docker://"),
            "{name} does not run Docker: {line}"
        );
    }

    for h in lab.hosts() {
        // Each host got the program of its arch, executable.
        let arch = if h.name == "node-arm" {
            "arm64"
        } else {
            "amd64"
        };
        let program = read(&lab, &h.name, "/usr/local/bin/cri-dockerd");
        assert_eq!(program, format!("{CRI_DOCKERD}# {arch}\n"), "{}", h.name);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(h.path("/usr/local/bin/cri-dockerd"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o7777, 0o755, "{}", h.name);
        // Docker and the kubelet share the systemd cgroup driver.
        let daemon = read(&lab, &h.name, "/etc/docker/daemon.json");
        assert!(
            daemon.contains("native.cgroupdriver=systemd"),
            "{}: {daemon}",
            h.name
        );
        let kubelet = read(&lab, &h.name, "/var/lib/kubelet/config.yaml");
        assert!(
            kubelet.contains("cgroupDriver: systemd"),
            "{}: {kubelet}",
            h.name
        );
        assert!(
            kubelet.contains("containerRuntimeEndpoint: unix:///run/cri-dockerd.sock")
                || kubelet.contains("containerRuntimeEndpoint: unix:///var/run/cri-dockerd.sock"),
            "{}: {kubelet}",
            h.name
        );
        // cri-dockerd's pause image follows image_repository.
        let unit = read(&lab, &h.name, "/etc/systemd/system/cri-docker.service");
        assert!(
            unit.contains(
                "--pod-infra-container-image=registry.aliyuncs.com/google_containers/pause:"
            ),
            "{}: {unit}",
            h.name
        );
        // The kubelet and kubeadm talk to cri-dockerd's socket, which answers.
        let crictl = on_both(
            &lab,
            &h.name,
            "crictl --runtime-endpoint unix:///run/cri-dockerd.sock version",
        );
        assert!(
            crictl.contains("RuntimeName:  docker"),
            "{}: {crictl}",
            h.name
        );
        let info = on_both(
            &lab,
            &h.name,
            "crictl --runtime-endpoint unix:///run/cri-dockerd.sock info",
        );
        assert!(
            info.contains("registry.aliyuncs.com/google_containers/pause:"),
            "{}: {info}",
            h.name
        );
        let version = on_both(&lab, &h.name, "/usr/local/bin/cri-dockerd --version");
        assert!(version.starts_with("cri-dockerd "), "{}: {version}", h.name);
    }
    let init = read(&lab, "master", "/etc/k8sup/kubeadm.yaml");
    assert!(
        init.contains("criSocket: unix:///run/cri-dockerd.sock")
            || init.contains("criSocket: unix:///var/run/cri-dockerd.sock"),
        "{init}"
    );

    // A second apply changes nothing, and the drift check agrees.
    assert_converged(inv, &env);

    // A program replaced on a host is drift, by hash; apply puts it back.
    let node = lab.host("node-r").unwrap();
    std::fs::write(
        node.path("/usr/local/bin/cri-dockerd"),
        "#!/bin/sh\nexit 1\n",
    )
    .unwrap();
    let plan = k8sup(&["plan", "-i", inv, "--detailed-exitcode"], &env);
    assert_eq!(plan.status.code(), Some(2), "{}", stdout(&plan));
    assert!(
        stdout(&plan).contains("/usr/local/bin/cri-dockerd differs from artifact cri-dockerd"),
        "{}",
        stdout(&plan)
    );
    let repair = k8sup(&["apply", "-i", inv], &env);
    assert!(
        repair.status.success(),
        "{}{}",
        stdout(&repair),
        stderr(&repair)
    );
    assert_eq!(
        read(&lab, "node-r", "/usr/local/bin/cri-dockerd"),
        format!("{CRI_DOCKERD}# amd64\n")
    );
    let plan = k8sup(&["plan", "-i", inv, "--detailed-exitcode"], &env);
    assert_eq!(plan.status.code(), Some(0), "{}", stdout(&plan));
}

/// The fourth combination: Docker with Calico from a manifest file.
#[test]
fn docker_with_calico_comes_up_ready() {
    let Some(lab) = lab(&mixed_lab("kdockcal")) else {
        return;
    };
    let archives = lab.dir().join("archives");
    std::fs::create_dir_all(&archives).unwrap();
    for arch in ["amd64", "arm64"] {
        release_archive(&archives, arch);
    }
    let manifest =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/manifests/calico.yaml");
    let cluster = format!(
        r#"
[cluster]
name = "kdockcal"
kubernetes_version = "1.30.4"
runtime = "docker"
cni = "calico"
cni_manifest = "{}"
pod_cidr = "10.220.0.0/16"

[packages]
cri_dockerd = "{}/cri-dockerd-0.3.15.{{arch}}.tgz"
"#,
        manifest.display(),
        archives.display()
    );
    let inv = write_inventory(&lab, "kdockcal.toml", &lab.inventory_toml(&cluster));
    let inv = inv.to_str().unwrap();
    let state = lab.dir().join("k8sup-state");
    let env = [("K8SUP_STATE_DIR", state.to_str().unwrap())];
    let out = k8sup(&["apply", "-i", inv], &env);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let nodes = on(
        &lab,
        "master",
        "kubectl --kubeconfig /etc/kubernetes/admin.conf get nodes -o wide --no-headers",
    );
    for name in ["master", "node-a", "node-arm", "node-r"] {
        let line = nodes
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_default();
        assert_eq!(
            line.split_whitespace().nth(1),
            Some("Ready"),
            "{name}:\n{nodes}"
        );
        assert!(
            line.contains("docker://"),
            "{name} does not run Docker:\n{nodes}"
        );
    }
    let ds = on(
        &lab,
        "master",
        "kubectl --kubeconfig /etc/kubernetes/admin.conf get ds -n kube-system calico-node -o json",
    );
    assert!(ds.contains("10.220.0.0/16"), "{ds}");
    let second = k8sup(&["plan", "-i", inv, "--detailed-exitcode"], &env);
    assert_eq!(second.status.code(), Some(0), "{}", stdout(&second));
}
