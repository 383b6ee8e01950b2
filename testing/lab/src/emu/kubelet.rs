//! `kubelet`: the node agent. It cannot run here; it "runs" while `kubelet.service` is
//! active (the emulated systemctl's state) and would really work: its configuration
//! (`/var/lib/kubelet/config.yaml`) loads, swap is off (unless `failSwapOn: false`), its
//! runtime socket is served, and its `cgroupDriver` equals the runtime's. What it finds is
//! written to the node in the shared cluster state by [`sync`], which runs after every
//! emulated command on a host that joined a cluster (so `systemctl start kubelet` or a
//! containerd restart change the node at once); the error, if any, is the real kubelet's,
//! also appended to [`LOG`]. The node is Ready when its kubelet runs and a CNI DaemonSet
//! has a pod on it (see `kubectl`).

use super::cluster::{self, KubeletStatus};
use super::runtime::{self, Runtime};
use super::Invocation;

/// Where the emulated kubelet writes its errors inside a host.
pub const LOG: &str = "/var/log/k8sup-lab/kubelet.log";
pub const CONFIG: &str = "/var/lib/kubelet/config.yaml";
pub const FLAGS_ENV: &str = "/var/lib/kubelet/kubeadm-flags.env";
pub const KUBECONFIG: &str = "/etc/kubernetes/kubelet.conf";
/// The version of the kubelet binary the running process was started from: a package
/// upgrade changes `/usr/bin/kubelet`, not the process, until the kubelet is restarted.
pub const RUNNING_VERSION: &str = "/run/lab-systemd/kubelet.running-version";

/// The kubelet (re)starts: from now on it runs the installed binary's version.
pub fn started(inv: &Invocation) {
    if let Some(v) = super::pkgdb::upstream_version(inv, "kubelet") {
        let _ = inv.write(RUNNING_VERSION, &v);
    }
}

/// The version the running kubelet reports (`None` when it is not running).
pub fn running_version(inv: &Invocation) -> Option<String> {
    if !runtime::unit_active(inv, "kubelet.service") {
        return None;
    }
    match inv.read(RUNNING_VERSION) {
        Ok(v) if !v.trim().is_empty() => Some(v.trim().to_string()),
        // Started before the lab recorded versions: what is installed.
        _ => {
            started(inv);
            super::pkgdb::upstream_version(inv, "kubelet")
        }
    }
}

pub fn run(inv: &mut Invocation) -> i32 {
    let version = match cluster::package_version(inv, "kubelet") {
        Ok(v) => v,
        Err(e) => {
            inv.errln(&e);
            return 127;
        }
    };
    if inv
        .args
        .iter()
        .any(|a| a == "--version" || a == "--version=true")
    {
        inv.outln(&format!("Kubernetes v{version}"));
        return 0;
    }
    if inv.args.iter().any(|a| a == "-h" || a == "--help") {
        inv.outln("The kubelet is the primary \"node agent\" that runs on each node.\n\nUsage:\n  kubelet [flags]");
        return 0;
    }
    inv.errln("k8sup-lab: the kubelet runs only as kubelet.service here (systemctl start kubelet)");
    1
}

/// The container runtime endpoint the kubelet uses: its config, else kubeadm's flags.
pub fn runtime_endpoint(inv: &Invocation, config: &serde_json::Value) -> String {
    let from_config = cluster::str_at(config, &["containerRuntimeEndpoint"]);
    if !from_config.is_empty() {
        return from_config.to_string();
    }
    let flags = inv.read(FLAGS_ENV).unwrap_or_default();
    flags
        .split(|c: char| c.is_whitespace() || c == '"')
        .find_map(|w| w.strip_prefix("--container-runtime-endpoint="))
        .map(String::from)
        .unwrap_or_else(|| "unix:///run/containerd/containerd.sock".into())
}

fn swap_entries(inv: &Invocation) -> Vec<String> {
    inv.read("/proc/swaps")
        .unwrap_or_default()
        .lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(String::from)
        .collect()
}

/// What the kubelet would do on this host now; `running` with no error when it works.
pub fn evaluate(inv: &Invocation) -> KubeletStatus {
    let fail = |e: String| KubeletStatus {
        running: false,
        error: Some(e),
    };
    if super::pkgdb::upstream_version(inv, "kubelet").is_none() {
        return fail("kubelet is not installed".into());
    }
    if !runtime::unit_active(inv, "kubelet.service") {
        return KubeletStatus {
            running: false,
            error: Some("kubelet.service is not active".into()),
        };
    }
    let text = match inv.read(CONFIG) {
        Ok(t) => t,
        Err(e) => {
            return fail(format!(
                "failed to load kubelet config file, path: {CONFIG}, error: failed to load Kubelet config file {CONFIG}, error failed to read kubelet config file \"{CONFIG}\", error: open {CONFIG}: {e}"
            ))
        }
    };
    let config = match cluster::yaml_documents(&text) {
        Ok(mut docs) if !docs.is_empty() => docs.remove(0),
        Ok(_) => serde_json::Value::Null,
        Err(e) => {
            return fail(format!(
                "failed to load kubelet config file, path: {CONFIG}, error: {e}"
            ))
        }
    };
    if !inv.path(KUBECONFIG).exists()
        && !inv.path("/etc/kubernetes/bootstrap-kubelet.conf").exists()
    {
        return fail("failed to run Kubelet: unable to load bootstrap kubeconfig: stat /etc/kubernetes/bootstrap-kubelet.conf: no such file or directory".into());
    }
    let fail_swap_on = config
        .get("failSwapOn")
        .and_then(|v| v.as_bool())
        .unwrap_or(true);
    let swaps = swap_entries(inv);
    if fail_swap_on && !swaps.is_empty() {
        return fail(format!(
            "failed to run Kubelet: running with swap on is not supported, please disable swap! or set --fail-swap-on flag to false. /proc/swaps contained: {swaps:?}"
        ));
    }
    let endpoint = runtime_endpoint(inv, &config);
    let rt = match runtime::check_socket(inv, &endpoint) {
        Ok(r) => r,
        Err(e) => return fail(format!("failed to run Kubelet: {e}")),
    };
    let kubelet_driver = match cluster::str_at(&config, &["cgroupDriver"]) {
        "" => "cgroupfs",
        d => d,
    };
    if kubelet_driver != "systemd" && kubelet_driver != "cgroupfs" {
        return fail(format!(
            "failed to run Kubelet: invalid configuration: cgroupDriver {kubelet_driver:?} is not supported"
        ));
    }
    match runtime::cgroup_driver(inv, rt) {
        Ok(d) if d == kubelet_driver => KubeletStatus {
            running: true,
            error: None,
        },
        Ok(d) => {
            let name = match rt {
                Runtime::CriDockerd => "docker",
                Runtime::Containerd => "containerd",
                Runtime::CriO => "cri-o",
            };
            fail(format!(
                "failed to run Kubelet: misconfiguration: kubelet cgroup driver: \"{kubelet_driver}\" is different from {name} cgroup driver: \"{d}\""
            ))
        }
        Err(e) => fail(format!("failed to run Kubelet: {e}")),
    }
}

/// Writes what the kubelet finds to this host's node, if the host is in a cluster.
pub fn sync(inv: &Invocation) {
    if !inv.path(KUBECONFIG).exists() || !inv.path(cluster::CLUSTER_DIR).is_dir() {
        return;
    }
    let status = evaluate(inv);
    super::apiserver::sync_heartbeat(inv, status.running);
    // A running kubelet reports its own version in the node's status.
    let version = status
        .running
        .then(|| running_version(inv))
        .flatten()
        .map(|v| format!("v{v}"));
    let host = inv.hostname();
    let Ok(mut locked) = cluster::lock(inv) else {
        return;
    };
    let mut changed = false;
    for node in locked.state.nodes.values_mut() {
        if node.host == host && node.kubelet != status {
            node.kubelet = status.clone();
            changed = true;
        }
        if let Some(v) = version.as_ref().filter(|_| node.host == host) {
            if node.kubelet_version != *v {
                node.kubelet_version = v.clone();
                changed = true;
            }
        }
    }
    if changed {
        let _ = locked.save();
        if let Some(e) = &status.error {
            log(inv, e);
        }
    }
}

/// Appends one line to the kubelet's log, as journald would show it.
pub fn log(inv: &Invocation, message: &str) {
    use std::io::Write;
    let line = format!(
        "{} {} kubelet[4242]: E {message}\n",
        cluster::rfc3339(cluster::now()),
        inv.hostname()
    );
    if let Some(parent) = inv.path(LOG).parent() {
        let _ = std::fs::create_dir_all(parent);
    }
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(inv.path(LOG))
    {
        let _ = f.write_all(line.as_bytes());
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::distro::{Arch, Distro};
    use crate::emu::testing::FakeHost;

    pub(crate) fn install(h: &FakeHost, pkgs: &[(&str, &str)]) {
        let inv = Invocation::new(&h.root, "apt-get", &[], 0);
        let mut db = crate::emu::pkgdb::load(&inv).expect("db");
        for (name, version) in pkgs {
            crate::emu::pkgdb::install(
                &inv,
                &mut db,
                name,
                version,
                "amd64",
                "test",
                crate::emu::repos::Format::Deb,
            )
            .expect("install");
        }
        crate::emu::pkgdb::save(&inv, &db).expect("save");
    }

    #[test]
    fn a_cgroup_driver_mismatch_is_the_real_error() {
        let h = FakeHost::new(Distro::Ubuntu2204, Arch::Amd64);
        install(
            &h,
            &[("kubelet", "1.30.4-1.1"), ("containerd.io", "1.7.22-1")],
        );
        assert_eq!(h.run("kubelet", &["--version"]).1, "Kubernetes v1.30.4\n");
        h.write("/run/lab-systemd/kubelet.service.active", "");
        h.write("/run/lab-systemd/containerd.service.active", "");
        h.write(KUBECONFIG, "apiVersion: v1\nkind: Config\n");
        h.write(CONFIG, "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\ncgroupDriver: systemd\n");
        h.write("/etc/containerd/config.toml", "version = 2\n");
        let inv = Invocation::new(&h.root, "systemctl", &[], 0);
        let s = evaluate(&inv);
        assert!(!s.running);
        assert_eq!(
            s.error.as_deref(),
            Some("failed to run Kubelet: misconfiguration: kubelet cgroup driver: \"systemd\" is different from containerd cgroup driver: \"cgroupfs\"")
        );
        h.write(
            "/etc/containerd/config.toml",
            "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc.options]\nSystemdCgroup = true\n",
        );
        assert_eq!(
            evaluate(&inv),
            KubeletStatus {
                running: true,
                error: None
            }
        );
    }

    #[test]
    fn swap_stops_the_kubelet() {
        let h = FakeHost::new(Distro::Ubuntu2204, Arch::Amd64);
        install(&h, &[("kubelet", "1.30.4-1.1")]);
        h.write("/run/lab-systemd/kubelet.service.active", "");
        h.write(KUBECONFIG, "x");
        h.write(CONFIG, "cgroupDriver: systemd\n");
        h.write(
            "/proc/swaps",
            "Filename\tType\tSize\tUsed\tPriority\n/swap.img file 1024 0 -2\n",
        );
        let inv = Invocation::new(&h.root, "systemctl", &[], 0);
        assert!(evaluate(&inv)
            .error
            .expect("error")
            .contains("running with swap on is not supported"));
    }

    #[test]
    fn over_cri_dockerd_the_kubelet_compares_its_driver_with_dockers() {
        let h = FakeHost::new(Distro::Ubuntu2204, Arch::Amd64);
        install(
            &h,
            &[
                ("kubelet", "1.30.4-1.1"),
                ("docker-ce", "5:27.3.1-1~ubuntu.22.04~jammy"),
            ],
        );
        for unit in ["kubelet", "docker", "cri-docker"] {
            h.write(&format!("/run/lab-systemd/{unit}.service.active"), "");
        }
        h.write(
            "/etc/systemd/system/cri-docker.service",
            "[Service]\nExecStart=/usr/local/bin/cri-dockerd --container-runtime-endpoint fd://\n",
        );
        h.write("/usr/local/bin/cri-dockerd", "#!/bin/sh\n");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            h.root.join("usr/local/bin/cri-dockerd"),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        h.write(KUBECONFIG, "apiVersion: v1\nkind: Config\n");
        h.write(CONFIG, "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\ncgroupDriver: systemd\ncontainerRuntimeEndpoint: unix:///run/cri-dockerd.sock\n");
        h.write(
            "/etc/docker/daemon.json",
            "{\"exec-opts\": [\"native.cgroupdriver=cgroupfs\"]}",
        );
        let inv = Invocation::new(&h.root, "systemctl", &[], 0);
        assert_eq!(
            evaluate(&inv).error.as_deref(),
            Some("failed to run Kubelet: misconfiguration: kubelet cgroup driver: \"systemd\" is different from docker cgroup driver: \"cgroupfs\"")
        );
        h.write(
            "/etc/docker/daemon.json",
            "{\"exec-opts\": [\"native.cgroupdriver=systemd\"]}",
        );
        assert_eq!(
            evaluate(&inv),
            KubeletStatus {
                running: true,
                error: None
            }
        );
        // Without its program, cri-dockerd never started: no socket for the kubelet.
        std::fs::remove_file(h.root.join("usr/local/bin/cri-dockerd")).unwrap();
        assert!(evaluate(&inv)
            .error
            .expect("error")
            .contains("dial unix /run/cri-dockerd.sock: connect: no such file or directory"));
    }
}
