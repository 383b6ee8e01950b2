//! The distributions of 2026 and the domestic ones, on the lab: an Ubuntu 24.04
//! master with Debian 13, Rocky 10, openEuler 24.03 (arm64) and Kylin V10 (arm64)
//! workers reaches Ready with containerd and flannel, and with Docker and Calico;
//! each host gets its repositories in the form its distribution uses, and a second
//! apply changes nothing. `k8sup check` names an unsupported distribution (Ubuntu
//! 16.04) before anything is changed.

mod common;

use std::path::Path;

use common::{
    assert_converged, endpoint_on_first_master, k8sup, lab, on, read, release_archive, snapshot,
    spec, stderr, stdout, write_inventory,
};
use k8sup_lab::Lab;

/// The lab of the newer distributions. `{name}` is replaced by the lab's name.
const NEWER_LAB: &str = r#"
name = "{name}"
[[hosts]]
name = "master"
roles = ["master"]
distro = "ubuntu2404"
arch = "amd64"
[[hosts]]
name = "node-deb"
distro = "debian13"
arch = "amd64"
[[hosts]]
name = "node-rocky"
distro = "rocky10"
arch = "amd64"
[[hosts]]
name = "node-euler"
distro = "openeuler2403"
arch = "arm64"
[[hosts]]
name = "node-kylin"
distro = "kylinv10"
arch = "arm64"
"#;

const NODES: [&str; 5] = [
    "master",
    "node-deb",
    "node-rocky",
    "node-euler",
    "node-kylin",
];

fn newer_lab(name: &str) -> Option<Lab> {
    lab(&spec(&NEWER_LAB.replace("{name}", name)))
}

/// A first apply, which must succeed.
fn apply(inv: &str, env: &[(&str, &str)]) {
    let first = k8sup(&["apply", "-i", inv], env);
    assert!(
        first.status.success(),
        "{}{}",
        stdout(&first),
        stderr(&first)
    );
}

/// Every node of `nodes` is registered, Ready, and runs `runtime` (`containerd://`,
/// `docker://`).
fn assert_all_ready(lab: &Lab, nodes: &[&str], runtime: &str) {
    let wide = on(
        lab,
        "master",
        "kubectl --kubeconfig /etc/kubernetes/admin.conf get nodes -o wide --no-headers",
    );
    for name in nodes {
        let line = wide
            .lines()
            .find(|l| l.split_whitespace().next() == Some(*name))
            .unwrap_or_else(|| panic!("{name} is not registered:\n{wide}"));
        assert_eq!(line.split_whitespace().nth(1), Some("Ready"), "{wide}");
        assert!(
            line.contains(runtime),
            "{name} does not run {runtime}: {line}"
        );
    }
}

/// What each distribution needs differently, as the hosts show it after an apply.
fn assert_distro_differences(lab: &Lab) {
    // deb822 sources where the distribution writes its own that way; no one-line lists.
    for host in ["master", "node-deb"] {
        let k8s = read(lab, host, "/etc/apt/sources.list.d/kubernetes.sources");
        assert!(
            k8s.contains(
                "Types: deb\nURIs: https://pkgs.k8s.io/core:/stable:/v1.30/deb/\nSuites: /\n"
            ),
            "{host}: {k8s}"
        );
        let docker = read(lab, host, "/etc/apt/sources.list.d/docker.sources");
        let (distro, suite) = if host == "master" {
            ("ubuntu", "noble")
        } else {
            ("debian", "trixie")
        };
        assert!(
            docker.contains(&format!(
                "URIs: https://download.docker.com/linux/{distro}\nSuites: {suite}\nComponents: stable\n"
            )),
            "{host}: {docker}"
        );
        for list in ["kubernetes.list", "docker.list"] {
            let path = format!("/etc/apt/sources.list.d/{list}");
            assert!(
                !lab.host(host).unwrap().path(&path).exists(),
                "{host}:{path}"
            );
        }
    }
    // Docker's CentOS repository: at $releasever on Rocky 10, at the EL release
    // their glibc covers on openEuler (9) and Kylin (8).
    for (host, release) in [
        ("node-rocky", "$releasever"),
        ("node-euler", "9"),
        ("node-kylin", "8"),
    ] {
        let repo = read(lab, host, "/etc/yum.repos.d/docker-ce.repo");
        assert!(
            repo.contains(&format!(
                "baseurl=https://download.docker.com/linux/centos/{release}/$basearch/stable\n"
            )),
            "{host}: {repo}"
        );
        let installed = on(lab, host, "rpm -q containerd.io");
        let el = if release == "$releasever" {
            "10"
        } else {
            release
        };
        assert!(
            installed.contains(&format!(".el{el}.")),
            "{host}: {installed}"
        );
        // SELinux, enforcing as these images ship it, is permissive now and at boot.
        assert_eq!(on(lab, host, "getenforce").trim(), "Permissive", "{host}");
        let config = read(lab, host, "/etc/selinux/config");
        assert!(config.contains("SELINUX=permissive\n"), "{host}: {config}");
        // dnf's versionlock holds the Kubernetes packages.
        let locks = on(lab, host, "dnf versionlock list");
        assert!(locks.contains("kubelet-"), "{host}: {locks}");
    }
}

#[test]
fn newer_and_domestic_distributions_come_up_ready_with_containerd_and_flannel() {
    let Some(lab) = newer_lab("dist") else {
        return;
    };
    let cluster = r#"
[cluster]
name = "dist"
kubernetes_version = "1.30.4"
runtime = "containerd"
cni = "flannel"
pod_cidr = "10.250.0.0/16"
image_repository = "registry.aliyuncs.com/google_containers"
"#;
    let inv = write_inventory(
        &lab,
        "dist.toml",
        &endpoint_on_first_master(&lab, &lab.inventory_toml(cluster)),
    );
    let inv = inv.to_str().unwrap();
    let state = lab.dir().join("k8sup-state");
    let env = [("K8SUP_STATE_DIR", state.to_str().unwrap())];

    // Facts name each distribution as its os-release does.
    let facts = k8sup(&["facts", "-i", inv, "--json"], &env);
    let text = stdout(&facts);
    assert!(facts.status.success(), "{text}{}", stderr(&facts));
    for pretty in [
        "Ubuntu 24.04.3 LTS",
        "Debian GNU/Linux 13 (trixie)",
        "Rocky Linux 10.0 (Red Quartz)",
        "openEuler 24.03 (LTS-SP1)",
        "Kylin Linux Advanced Server V10 (Lance)",
    ] {
        assert!(text.contains(pretty), "{pretty} missing:\n{text}");
    }
    let check = k8sup(&["check", "-i", inv], &env);
    assert!(
        check.status.success(),
        "{}{}",
        stdout(&check),
        stderr(&check)
    );

    apply(inv, &env);
    assert_all_ready(&lab, &NODES, "containerd://");
    assert_distro_differences(&lab);
    for h in lab.hosts() {
        let containerd = read(&lab, &h.name, "/etc/containerd/config.toml");
        assert!(
            containerd.contains("SystemdCgroup = true"),
            "{}: {containerd}",
            h.name
        );
    }
    let pods = on(
        &lab,
        "master",
        "kubectl --kubeconfig /etc/kubernetes/admin.conf get pods -n kube-flannel -o wide --no-headers",
    );
    for name in NODES {
        assert!(pods.contains(name), "no flannel pod on {name}:\n{pods}");
    }

    assert_converged(inv, &env);
}

#[test]
fn newer_and_domestic_distributions_come_up_ready_with_docker_and_calico() {
    let Some(lab) = newer_lab("distdock") else {
        return;
    };
    let archives = lab.dir().join("archives");
    std::fs::create_dir_all(&archives).unwrap();
    for arch in ["amd64", "arm64"] {
        release_archive(&archives, arch);
    }
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/manifests/calico.yaml");
    let cluster = format!(
        r#"
[cluster]
name = "distdock"
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
    let inv = write_inventory(
        &lab,
        "distdock.toml",
        &endpoint_on_first_master(&lab, &lab.inventory_toml(&cluster)),
    );
    let inv = inv.to_str().unwrap();
    let state = lab.dir().join("k8sup-state");
    let env = [("K8SUP_STATE_DIR", state.to_str().unwrap())];

    apply(inv, &env);
    assert_all_ready(&lab, &NODES, "docker://");
    assert_distro_differences(&lab);
    for host in ["node-rocky", "node-euler", "node-kylin"] {
        let installed = on(&lab, host, "rpm -q docker-ce");
        assert!(installed.starts_with("docker-ce-"), "{host}: {installed}");
    }
    for h in lab.hosts() {
        let daemon = read(&lab, &h.name, "/etc/docker/daemon.json");
        assert!(
            daemon.contains("native.cgroupdriver=systemd"),
            "{}: {daemon}",
            h.name
        );
    }
    let ds = on(
        &lab,
        "master",
        "kubectl --kubeconfig /etc/kubernetes/admin.conf get ds -n kube-system calico-node -o json",
    );
    assert!(ds.contains("10.220.0.0/16"), "{ds}");

    assert_converged(inv, &env);
}

#[test]
fn check_names_an_unsupported_distribution_before_any_change() {
    let Some(lab) = lab(&spec(
        r#"
name = "distold"
[[hosts]]
name = "master"
roles = ["master"]
distro = "ubuntu2404"
[[hosts]]
name = "xenial"
distro = "ubuntu1604"
"#,
    )) else {
        return;
    };
    let cluster = "[cluster]\nname = \"distold\"\nkubernetes_version = \"1.30.4\"\n";
    let inv = write_inventory(
        &lab,
        "distold.toml",
        &endpoint_on_first_master(&lab, &lab.inventory_toml(cluster)),
    );
    let inv = inv.to_str().unwrap();
    let state = lab.dir().join("k8sup-state");
    let env = [("K8SUP_STATE_DIR", state.to_str().unwrap())];
    let before = snapshot(&lab);

    let check = k8sup(&["check", "-i", inv], &env);
    assert_eq!(check.status.code(), Some(1), "{}", stderr(&check));
    let text = format!("{}{}", stdout(&check), stderr(&check));
    assert!(
        text.contains("Ubuntu 16.04.7 LTS is not supported; k8sup installs on Ubuntu 18.04+"),
        "{text}"
    );
    assert!(!text.contains("master: distro"), "{text}");

    // apply refuses it too, before changing anything on any host.
    let apply = k8sup(&["apply", "-i", inv], &env);
    assert_eq!(apply.status.code(), Some(1), "{}", stdout(&apply));
    let text = format!("{}{}", stdout(&apply), stderr(&apply));
    assert!(
        text.contains("Ubuntu 16.04.7 LTS is not supported"),
        "{text}"
    );
    assert!(snapshot(&lab) == before, "a host changed:\n{text}");
}

/// The other new releases (Ubuntu 26.04 with apt 3, AlmaLinux 10, openEuler 22.03)
/// and the domestic ones on amd64: a cluster too.
#[test]
fn the_other_new_releases_and_amd64_domestic_hosts_come_up_ready() {
    let Some(lab) = lab(&spec(
        r#"
name = "distmore"
[[hosts]]
name = "master"
roles = ["master"]
distro = "ubuntu2604"
[[hosts]]
name = "node-alma"
distro = "alma10"
[[hosts]]
name = "node-euler"
distro = "openeuler2203"
[[hosts]]
name = "node-kylin"
distro = "kylinv10"
"#,
    )) else {
        return;
    };
    let cluster = "[cluster]\nname = \"distmore\"\nkubernetes_version = \"1.30.4\"\nruntime = \"containerd\"\ncni = \"flannel\"\n";
    let inv = write_inventory(
        &lab,
        "distmore.toml",
        &endpoint_on_first_master(&lab, &lab.inventory_toml(cluster)),
    );
    let inv = inv.to_str().unwrap();
    let state = lab.dir().join("k8sup-state");
    let env = [("K8SUP_STATE_DIR", state.to_str().unwrap())];
    apply(inv, &env);
    assert_all_ready(
        &lab,
        &["master", "node-alma", "node-euler", "node-kylin"],
        "containerd://",
    );
    let docker = read(&lab, "master", "/etc/apt/sources.list.d/docker.sources");
    assert!(docker.contains("Suites: resolute\n"), "{docker}");
    for (host, el) in [
        ("node-alma", "el10"),
        ("node-euler", "el9"),
        ("node-kylin", "el8"),
    ] {
        let installed = on(&lab, host, "rpm -q containerd.io");
        assert!(
            installed.contains(&format!(".{el}.x86_64")),
            "{host}: {installed}"
        );
    }
    assert_converged(inv, &env);
}
