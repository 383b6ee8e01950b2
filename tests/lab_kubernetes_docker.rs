//! `runtime = "docker"` on a mixed lab: Docker from its repositories, and
//! cri-dockerd from a release archive on the controller (no host downloads it:
//! k8sup reads the archive once per arch, takes the program out and uploads it).
//! Every node Ready over cri-dockerd's socket, with the same cgroup driver in
//! Docker and the kubelet, and a second apply changes nothing.

mod common;

use std::path::Path;

use common::{assert_converged, k8sup, lab, mixed_lab, on, read, stderr, stdout, write_inventory};
use k8sup_lab::Lab;

/// What the lab's cri-dockerd is: a script handing over to the emulator, which
/// serves the CRI socket while `cri-docker.service` runs.
const CRI_DOCKERD: &str =
    "#!/bin/sh\nexec /usr/libexec/k8sup-lab/k8sup-lab-emu cri-dockerd \"$@\"\n";

/// `cri-dockerd-0.3.15.<arch>.tgz` as released: `cri-dockerd/cri-dockerd` inside
/// (made by tar(1), as the release is).
fn release_archive(dir: &Path, arch: &str) {
    use std::os::unix::fs::PermissionsExt;
    let tree = dir.join(format!("tree-{arch}"));
    let program = tree.join("cri-dockerd/cri-dockerd");
    std::fs::create_dir_all(program.parent().unwrap()).expect("dir");
    std::fs::write(&program, format!("{CRI_DOCKERD}# {arch}\n")).expect("program");
    std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let archive = dir.join(format!("cri-dockerd-0.3.15.{arch}.tgz"));
    let status = std::process::Command::new("tar")
        .arg("-czf")
        .arg(&archive)
        .arg("-C")
        .arg(&tree)
        .arg("cri-dockerd")
        .status()
        .expect("tar runs");
    assert!(status.success(), "tar failed");
}

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

/// A files mirror on the loopback, laid out like the upstream hosts
/// (`/github.com/Mirantis/...`), as an air-gapped site serves one: each request's
/// path and status are kept.
struct FilesMirror {
    url: String,
    log: std::sync::Arc<std::sync::Mutex<Vec<(String, u16)>>>,
}

impl FilesMirror {
    fn serve(root: std::path::PathBuf) -> FilesMirror {
        use std::io::{BufRead, BufReader, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}", listener.local_addr().unwrap());
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let kept = log.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let mut line = String::new();
                let mut reader = BufReader::new(stream.try_clone().expect("clone"));
                let _ = reader.read_line(&mut line);
                // The headers, up to the empty line.
                let mut header = String::new();
                while reader.read_line(&mut header).is_ok_and(|n| n > 2) {
                    header.clear();
                }
                let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
                let file = root.join(path.trim_start_matches('/'));
                let body = (!path.contains(".."))
                    .then(|| std::fs::read(&file).ok())
                    .flatten();
                let status = if body.is_some() { 200 } else { 404 };
                kept.lock().unwrap().push((path, status));
                let body = body.unwrap_or_default();
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status} {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    if status == 200 { "OK" } else { "Not Found" },
                    body.len()
                );
                let _ = stream.write_all(&body);
            }
        });
        FilesMirror { url, log }
    }

    fn requests(&self) -> Vec<(String, u16)> {
        self.log.lock().unwrap().clone()
    }
}

/// The sha256 of a file, as `sha256sum` prints it.
fn sha256_of(path: &Path) -> String {
    let out = std::process::Command::new("sha256sum")
        .arg(path)
        .output()
        .expect("sha256sum runs");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

/// A two-host arm64 Ubuntu lab, as the seed inventory describes its cluster.
const ARM_LAB: &str = r#"
name = "{name}"
[[hosts]]
name = "master"
roles = ["master"]
distro = "ubuntu2204"
arch = "arm64"
[[hosts]]
name = "node1"
distro = "ubuntu2204"
arch = "arm64"
"#;

/// The seed-style inventory (arm64, `runtime = "docker"`, flannel) names nothing
/// about cri-dockerd: k8sup takes the release it pins for 1.30 (0.3.15) from the
/// files mirror under its GitHub path, and checks it against the sha256 in its
/// table. The lab's archive is not the real release (the machine cannot download
/// it), so that check must refuse it before any host is touched; with the
/// inventory's own `cri_dockerd_sha256` (the documented way to vouch for another
/// build) the cluster comes up, with containerd.io and docker-ce at the pinned
/// versions, held, and the archive downloaded once across runs (the cache).
/// Moving a pin (here: from the inventory's older versions to the table's) is an
/// upgrade the plan shows and apply makes.
#[test]
fn seed_style_docker_inventory_gets_pinned_runtime_bits() {
    let Some(lab) = lab(&common::spec(&ARM_LAB.replace("{name}", "kseed"))) else {
        return;
    };
    let mirror_root = lab.dir().join("files-mirror");
    let release_dir = mirror_root.join("github.com/Mirantis/cri-dockerd/releases/download/v0.3.15");
    std::fs::create_dir_all(&release_dir).expect("dir");
    release_archive(&release_dir, "arm64");
    let lab_digest = sha256_of(&release_dir.join("cri-dockerd-0.3.15.arm64.tgz"));
    let mirror = FilesMirror::serve(mirror_root);
    let cluster = |extra: &str| {
        format!(
            r#"
[cluster]
name = "kseed"
kubernetes_version = "1.30.4"
runtime = "docker"
cgroup_driver = "systemd"
cni = "flannel"
pod_cidr = "10.244.0.0/16"

[packages]
source = "repo"
files_mirror = "{}"
{extra}
"#,
            mirror.url
        )
    };
    let seed = write_inventory(&lab, "seed.toml", &lab.inventory_toml(&cluster("")));
    let seed = seed.to_str().unwrap();
    let state = lab.dir().join("k8sup-state");
    let cache = lab.dir().join("k8sup-cache");
    let env = [
        ("K8SUP_STATE_DIR", state.to_str().unwrap()),
        ("K8SUP_CACHE_DIR", cache.to_str().unwrap()),
    ];

    let valid = k8sup(&["validate", "-i", seed], &env);
    assert!(valid.status.success(), "{}", stderr(&valid));
    assert!(
        stdout(&valid).contains("with cri-dockerd 0.3.15 (pinned, sha256 checked)"),
        "{}",
        stdout(&valid)
    );

    // The pinned release's real sha256 (arm64) is not the lab archive's: refused.
    let before = common::snapshot(&lab);
    let refused = k8sup(&["apply", "-i", seed], &env);
    assert_eq!(refused.status.code(), Some(1), "{}", stdout(&refused));
    let pinned = "39e430378c9c08a1d5056426e3c772ae50416ffeadbe720fa63a853c475fd5a4";
    assert!(
        stderr(&refused).contains(&format!(
            "has sha256 {lab_digest}, but {pinned} was expected"
        )),
        "{}",
        stderr(&refused)
    );
    let path =
        "/github.com/Mirantis/cri-dockerd/releases/download/v0.3.15/cri-dockerd-0.3.15.arm64.tgz";
    assert_eq!(mirror.requests(), [(path.to_string(), 200)]);
    assert!(
        before == common::snapshot(&lab),
        "a refused apply changed a host"
    );

    // Vouched for by the inventory, at older runtime versions than the table's.
    let vouched = format!("cri_dockerd_sha256 = {{ arm64 = \"{lab_digest}\" }}");
    let older = write_inventory(
        &lab,
        "older.toml",
        &lab.inventory_toml(&cluster(&format!(
            "{vouched}\ncontainerd_version = \"1.7.22\"\ndocker_version = \"27.2.1\""
        ))),
    );
    let older = older.to_str().unwrap();
    let first = k8sup(&["apply", "-i", older], &env);
    assert!(
        first.status.success(),
        "{}{}",
        stdout(&first),
        stderr(&first)
    );
    let nodes = on(&lab, "master", "kubectl get nodes --no-headers");
    for name in ["master", "node1"] {
        let line = nodes
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_default();
        assert_eq!(line.split_whitespace().nth(1), Some("Ready"), "{nodes}");
    }
    let versions = |host: &str| {
        on(
            &lab,
            host,
            "dpkg-query -W -f '${Package}=${Version}\\n' containerd.io docker-ce docker-ce-cli; apt-mark showhold",
        )
    };
    let installed = versions("node1");
    for wanted in [
        "containerd.io=1.7.22-1\n",
        "docker-ce=5:27.2.1-1~ubuntu.22.04~jammy\n",
        "docker-ce-cli=5:27.2.1-1~ubuntu.22.04~jammy\n",
    ] {
        assert!(installed.contains(wanted), "{wanted}: {installed}");
    }
    for held in ["containerd.io\n", "docker-ce\n", "docker-ce-cli\n"] {
        assert!(installed.contains(held), "{held} not held: {installed}");
    }

    // The table's pins (1.30: containerd.io 1.7.23, docker-ce 27.3.1) are an upgrade.
    let table = write_inventory(&lab, "table.toml", &lab.inventory_toml(&cluster(&vouched)));
    let table = table.to_str().unwrap();
    let plan = k8sup(&["plan", "-i", table, "--detailed-exitcode"], &env);
    assert_eq!(
        plan.status.code(),
        Some(2),
        "{}{}",
        stdout(&plan),
        stderr(&plan)
    );
    let text = stdout(&plan);
    assert!(
        text.contains("containerd.io is 1.7.22-1, wanted 1.7.23-*"),
        "{text}"
    );
    assert!(
        text.contains("docker-ce is 5:27.2.1-1~ubuntu.22.04~jammy, wanted 5:27.3.1-*"),
        "{text}"
    );
    let upgrade = k8sup(&["apply", "-i", table], &env);
    assert!(
        upgrade.status.success(),
        "{}{}",
        stdout(&upgrade),
        stderr(&upgrade)
    );
    let installed = versions("master");
    assert!(
        installed.contains("containerd.io=1.7.23-1\n"),
        "{installed}"
    );
    assert!(
        installed.contains("docker-ce=5:27.3.1-1~ubuntu.22.04~jammy\n"),
        "{installed}"
    );
    assert!(installed.contains("docker-ce\n"), "not held: {installed}");
    assert_converged(table, &env);

    // The archive was downloaded once; every later run took it from the cache.
    assert_eq!(
        mirror.requests(),
        [(path.to_string(), 200), (path.to_string(), 200)],
        "one refused download, then one verified download for every run after"
    );
    assert!(cache.join("downloads").join(&lab_digest).is_file());
}
