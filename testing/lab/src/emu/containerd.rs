//! `containerd`, `ctr`, `crictl`, `docker` and `cri-dockerd`: the container runtimes'
//! command lines, for what installers ask of them (versions, `containerd config default`,
//! `crictl info`, docker's server version and cgroup driver). A runtime "runs" while its
//! systemd unit is active and its configuration loads (see [`super::runtime`]); asked
//! while it does not, each fails with its real message. Versions come from the package
//! database.

use serde_json::json;

use super::cluster;
use super::runtime::{self, Runtime};
use super::Invocation;

fn version_of(inv: &Invocation, packages: &[&str]) -> Result<(String, String), String> {
    packages
        .iter()
        .find_map(|p| super::pkgdb::upstream_version(inv, p).map(|v| (p.to_string(), v)))
        .ok_or_else(|| {
            format!(
                "k8sup-lab: {}: package {} is not installed on this host",
                inv.tool, packages[0]
            )
        })
}

fn fatal(inv: &mut Invocation, msg: &str) -> i32 {
    inv.errln(&format!(
        "time=\"{}\" level=fatal msg=\"{}\"",
        cluster::rfc3339(cluster::now()),
        msg.replace('"', "\\\"")
    ));
    1
}

/// The configuration `containerd config default` prints for a version.
pub fn default_config(version: &str) -> String {
    let pause = runtime::containerd_default_pause(version);
    if cluster::semver(version).is_some_and(|v| v.0 >= 2) {
        return format!(
            "version = 3\nroot = '/var/lib/containerd'\nstate = '/run/containerd'\ntemp = ''\nplugin_dir = ''\ndisabled_plugins = []\nrequired_plugins = []\noom_score = 0\nimports = []\n\n[grpc]\n  address = '/run/containerd/containerd.sock'\n  tcp_address = ''\n  uid = 0\n  gid = 0\n  max_recv_message_size = 16777216\n  max_send_message_size = 16777216\n\n[plugins]\n  [plugins.'io.containerd.cri.v1.images']\n    snapshotter = 'overlayfs'\n    disable_snapshot_annotations = true\n\n    [plugins.'io.containerd.cri.v1.images'.pinned_images]\n      sandbox = '{pause}'\n\n    [plugins.'io.containerd.cri.v1.images'.registry]\n      config_path = ''\n\n  [plugins.'io.containerd.cri.v1.runtime']\n    enable_selinux = false\n    max_container_log_line_size = 16384\n\n    [plugins.'io.containerd.cri.v1.runtime'.containerd]\n      default_runtime_name = 'runc'\n\n      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes]\n        [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]\n          runtime_type = 'io.containerd.runc.v2'\n\n          [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]\n            BinaryName = ''\n            NoNewKeyring = false\n            Root = ''\n            ShimCgroup = ''\n            SystemdCgroup = false\n\n    [plugins.'io.containerd.cri.v1.runtime'.cni]\n      bin_dir = '/opt/cni/bin'\n      conf_dir = '/etc/cni/net.d'\n      max_conf_num = 1\n"
        );
    }
    format!(
        "disabled_plugins = []\nimports = []\noom_score = 0\nplugin_dir = \"\"\nrequired_plugins = []\nroot = \"/var/lib/containerd\"\nstate = \"/run/containerd\"\ntemp = \"\"\nversion = 2\n\n[cgroup]\n  path = \"\"\n\n[debug]\n  address = \"\"\n  format = \"\"\n  gid = 0\n  level = \"\"\n  uid = 0\n\n[grpc]\n  address = \"/run/containerd/containerd.sock\"\n  gid = 0\n  max_recv_message_size = 16777216\n  max_send_message_size = 16777216\n  tcp_address = \"\"\n  tcp_tls_ca = \"\"\n  tcp_tls_cert = \"\"\n  tcp_tls_key = \"\"\n  uid = 0\n\n[metrics]\n  address = \"\"\n  grpc_histogram = false\n\n[plugins]\n\n  [plugins.\"io.containerd.gc.v1.scheduler\"]\n    deletion_threshold = 0\n    mutation_threshold = 100\n    pause_threshold = 0.02\n    schedule_delay = \"0s\"\n    startup_delay = \"100ms\"\n\n  [plugins.\"io.containerd.grpc.v1.cri\"]\n    device_ownership_from_security_context = false\n    disable_apparmor = false\n    disable_cgroup = false\n    disable_hugetlb_controller = true\n    disable_proc_mount = false\n    disable_tcp_service = true\n    enable_selinux = false\n    enable_tls_streaming = false\n    enable_unprivileged_icmp = false\n    enable_unprivileged_ports = false\n    max_concurrent_downloads = 3\n    max_container_log_line_size = 16384\n    restrict_oom_score_adj = false\n    sandbox_image = \"{pause}\"\n    selinux_category_range = 1024\n    stats_collect_period = 10\n    stream_idle_timeout = \"4h0m0s\"\n    stream_server_address = \"127.0.0.1\"\n    stream_server_port = \"0\"\n    systemd_cgroup = false\n    tolerate_missing_hugetlb_controller = true\n    unset_seccomp_profile = \"\"\n\n    [plugins.\"io.containerd.grpc.v1.cri\".cni]\n      bin_dir = \"/opt/cni/bin\"\n      conf_dir = \"/etc/cni/net.d\"\n      conf_template = \"\"\n      ip_pref = \"\"\n      max_conf_num = 1\n\n    [plugins.\"io.containerd.grpc.v1.cri\".containerd]\n      default_runtime_name = \"runc\"\n      disable_snapshot_annotations = true\n      discard_unpacked_layers = false\n      ignore_blockio_not_enabled_errors = false\n      ignore_rdt_not_enabled_errors = false\n      no_pivot = false\n      snapshotter = \"overlayfs\"\n\n      [plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes]\n\n        [plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc]\n          base_runtime_spec = \"\"\n          cni_conf_dir = \"\"\n          cni_max_conf_num = 0\n          container_annotations = []\n          pod_annotations = []\n          privileged_without_host_devices = false\n          privileged_without_host_devices_all_devices_allowed = false\n          runtime_engine = \"\"\n          runtime_path = \"\"\n          runtime_root = \"\"\n          runtime_type = \"io.containerd.runc.v2\"\n          sandbox_mode = \"podsandbox\"\n          snapshotter = \"\"\n\n          [plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc.options]\n            BinaryName = \"\"\n            CriuImagePath = \"\"\n            CriuPath = \"\"\n            CriuWorkPath = \"\"\n            IoGid = 0\n            IoUid = 0\n            NoNewKeyring = false\n            NoPivotRoot = false\n            Root = \"\"\n            ShimCgroup = \"\"\n            SystemdCgroup = false\n\n    [plugins.\"io.containerd.grpc.v1.cri\".registry]\n      config_path = \"\"\n"
    )
}

fn containerd_ident(package: &str) -> &'static str {
    if package == "containerd.io" {
        "containerd.io"
    } else {
        "github.com/containerd/containerd"
    }
}

pub fn run_containerd(inv: &mut Invocation) -> i32 {
    let (package, version) = match version_of(inv, &["containerd.io", "containerd"]) {
        Ok(v) => v,
        Err(e) => {
            inv.errln(&e);
            return 127;
        }
    };
    let args: Vec<&str> = inv.args.iter().map(String::as_str).collect::<Vec<_>>();
    match args.as_slice() {
        ["--version"] | ["-v"] => {
            inv.outln(&format!(
                "containerd {} {version} 7f7fdf5fed64eb6a7caf99b3e12efcf9d60e311c",
                containerd_ident(&package)
            ));
            0
        }
        ["config", "default"] => {
            inv.out(&default_config(&version));
            0
        }
        ["config", "dump"] => match runtime::containerd_config(inv) {
            Ok(_) => {
                inv.out(
                    &inv.read("/etc/containerd/config.toml")
                        .unwrap_or_else(|_| default_config(&version)),
                );
                0
            }
            Err(e) => {
                inv.errln(&e);
                1
            }
        },
        _ => {
            inv.errln("k8sup-lab: containerd runs only as containerd.service here (systemctl start containerd)");
            1
        }
    }
}

pub fn run_ctr(inv: &mut Invocation) -> i32 {
    let (package, version) = match version_of(inv, &["containerd.io", "containerd"]) {
        Ok(v) => v,
        Err(e) => {
            inv.errln(&e);
            return 127;
        }
    };
    let ident = containerd_ident(&package);
    match inv.args.first().map(String::as_str) {
        Some("--version") | Some("-v") => {
            inv.outln(&format!("ctr {ident} {version}"));
            0
        }
        Some("version") => {
            inv.outln(&format!("Client:\n  Version:  {version}\n  Revision: 7f7fdf5fed64eb6a7caf99b3e12efcf9d60e311c\n  Go version: go1.22.7\n"));
            if runtime::unit_active(inv, "containerd.service") {
                inv.outln(&format!("Server:\n  Version:  {version}\n  Revision: 7f7fdf5fed64eb6a7caf99b3e12efcf9d60e311c\n  UUID: 3f1e0c1a-7c6e-4b8e-9b7a-1b2c3d4e5f60"));
                0
            } else {
                inv.errln("ctr: failed to dial \"/run/containerd/containerd.sock\": context deadline exceeded: connection error: desc = \"transport: error while dialing: dial unix:///run/containerd/containerd.sock: timeout\"");
                1
            }
        }
        _ => {
            inv.errln(&format!(
                "k8sup-lab: ctr {} is not emulated",
                inv.args.join(" ")
            ));
            1
        }
    }
}

/// The endpoint crictl uses: `-r`/`--runtime-endpoint`, else /etc/crictl.yaml.
fn crictl_endpoint(inv: &Invocation) -> Option<String> {
    let mut it = inv.args.iter();
    while let Some(a) = it.next() {
        if a == "-r" || a == "--runtime-endpoint" {
            return it.next().cloned();
        }
        if let Some(v) = a.strip_prefix("--runtime-endpoint=") {
            return Some(v.to_string());
        }
    }
    inv.read("/etc/crictl.yaml").ok().and_then(|t| {
        t.lines().find_map(|l| {
            l.trim()
                .strip_prefix("runtime-endpoint:")
                .map(|v| v.trim().trim_matches('"').to_string())
        })
    })
}

pub fn run_crictl(inv: &mut Invocation) -> i32 {
    let version = match version_of(inv, &["cri-tools"]) {
        Ok((_, v)) => v,
        Err(e) => {
            inv.errln(&e);
            return 127;
        }
    };
    let words: Vec<String> = {
        let mut w = Vec::new();
        let mut it = inv.args.iter();
        while let Some(a) = it.next() {
            if a == "-r"
                || a == "--runtime-endpoint"
                || a == "-i"
                || a == "--image-endpoint"
                || a == "-t"
                || a == "--timeout"
                || a == "--creds"
                || a == "--auth"
                || a == "--username"
                || a == "-u"
                || a == "-p"
                || a == "--pod-config"
                || a == "--annotation"
                || a == "-a"
                || a == "-o"
                || a == "--output"
            {
                it.next();
            } else if !a.starts_with('-') || a == "--version" {
                w.push(a.clone());
            }
        }
        w
    };
    if words.first().map(String::as_str) == Some("--version") {
        inv.outln(&format!("crictl version v{version}"));
        return 0;
    }
    let endpoint = match crictl_endpoint(inv) {
        Some(e) => e,
        None => {
            inv.errln(&format!("time=\"{}\" level=warning msg=\"runtime connect using default endpoints: [unix:///run/containerd/containerd.sock unix:///run/crio/crio.sock unix:///var/run/cri-dockerd.sock]. As the default settings are now deprecated, you should set the endpoint instead.\"", cluster::rfc3339(cluster::now())));
            runtime::KNOWN_SOCKETS
                .iter()
                .find(|s| runtime::check_socket(inv, s).is_ok())
                .unwrap_or(&runtime::KNOWN_SOCKETS[0])
                .to_string()
        }
    };
    let rt = match runtime::check_socket(inv, &endpoint) {
        Ok(r) => r,
        Err(e) => return fatal(inv, &e),
    };
    if let Some(i) = super::containers::subcommand(&inv.args) {
        let rest = inv.args[i + 1..].to_vec();
        match inv.args[i].as_str() {
            "ps" => return super::containers::ps(inv, &rest),
            "exec" => return super::containers::exec(inv, &rest),
            _ => {}
        }
    }
    match words.first().map(String::as_str) {
        Some("version") => {
            let rv = runtime::version_string(inv, rt);
            let (name, v) = rv.split_once("://").unwrap_or(("", ""));
            inv.outln(&format!("Version:  0.1.0\nRuntimeName:  {name}\nRuntimeVersion:  {}\nRuntimeApiVersion:  v1", if rt == Runtime::Containerd { format!("v{v}") } else { v.to_string() }));
            0
        }
        Some("info") => {
            let network_ready = inv
                .path("/etc/cni/net.d")
                .read_dir()
                .is_ok_and(|mut d| d.next().is_some());
            let (systemd, sandbox) = match rt {
                Runtime::Containerd => runtime::containerd_config(inv)
                    .map(|c| (c.systemd_cgroup, c.sandbox_image))
                    .unwrap_or((false, String::new())),
                Runtime::CriDockerd => (
                    runtime::cgroup_driver(inv, rt).is_ok_and(|d| d == "systemd"),
                    runtime::cri_dockerd_pause_image(inv),
                ),
                Runtime::CriO => (
                    runtime::cgroup_driver(inv, rt).is_ok_and(|d| d == "systemd"),
                    "registry.k8s.io/pause:3.9".into(),
                ),
            };
            let mut network = json!({"type": "NetworkReady", "status": network_ready, "reason": "", "message": ""});
            if !network_ready {
                network["reason"] = json!("NetworkPluginNotReady");
                network["message"] =
                    json!("Network plugin returns error: cni plugin not initialized");
            }
            let doc = json!({
                "status": {"conditions": [
                    {"type": "RuntimeReady", "status": true, "reason": "", "message": ""},
                    network]},
                "cniconfig": {"PluginDirs": ["/opt/cni/bin"], "PluginConfDir": "/etc/cni/net.d"},
                "config": {"containerd": {"defaultRuntimeName": "runc",
                    "runtimes": {"runc": {"runtimeType": "io.containerd.runc.v2", "options": {"SystemdCgroup": systemd}}}},
                    "sandboxImage": sandbox},
            });
            inv.outln(&serde_json::to_string_pretty(&doc).unwrap_or_default());
            0
        }
        Some("images") | Some("image") | Some("img") => {
            super::images::crictl_images(inv, words.get(1).map(String::as_str))
        }
        Some("pull") => super::images::crictl_pull(inv, &words),
        Some("inspecti") => super::images::crictl_inspecti(inv, &words),
        other => {
            inv.errln(&format!(
                "k8sup-lab: crictl {} is not emulated",
                other.unwrap_or("")
            ));
            1
        }
    }
}

const NO_DAEMON: &str = "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?";

pub fn run_docker(inv: &mut Invocation) -> i32 {
    let client = match version_of(inv, &["docker-ce-cli", "docker.io"]) {
        Ok((_, v)) => v,
        Err(e) => {
            inv.errln(&e);
            return 127;
        }
    };
    let args: Vec<String> = inv.args.clone();
    let format = args
        .iter()
        .position(|a| a == "--format" || a == "-f")
        .and_then(|i| args.get(i + 1).cloned())
        .or_else(|| {
            args.iter()
                .find_map(|a| a.strip_prefix("--format=").map(String::from))
        });
    let server = super::pkgdb::upstream_version(inv, "docker-ce")
        .or_else(|| super::pkgdb::upstream_version(inv, "docker.io"));
    let running = server.is_some() && runtime::docker_running(inv);
    match args.first().map(String::as_str) {
        Some("--version") | Some("-v") => {
            inv.outln(&format!("Docker version {client}, build ce12230"));
            0
        }
        Some("version") => {
            let f = format.unwrap_or_default();
            if f.contains(".Client.Version") && !f.contains(".Server") {
                inv.outln(&f.replace("{{.Client.Version}}", &client));
                return 0;
            }
            if !running {
                if f.is_empty() {
                    inv.outln(&format!("Client: Docker Engine - Community\n Version:           {client}\n API version:       1.47\n Go version:        go1.22.7\n Git commit:        ce12230\n OS/Arch:           linux/{}", inv.profile().map(|p| p.arch.as_str()).unwrap_or("amd64")));
                }
                inv.errln(NO_DAEMON);
                return 1;
            }
            let server = server.unwrap_or_default();
            if f.is_empty() {
                inv.outln(&format!("Client: Docker Engine - Community\n Version:           {client}\n\nServer: Docker Engine - Community\n Engine:\n  Version:          {server}"));
            } else {
                inv.outln(
                    &f.replace("{{.Server.Version}}", &server)
                        .replace("{{.Client.Version}}", &client),
                );
            }
            0
        }
        Some("info") => {
            if !running {
                inv.errln(&format!("ERROR: {NO_DAEMON}\nerrors pretty printing info"));
                return 1;
            }
            let driver = runtime::docker_cgroup_driver(inv).unwrap_or_else(|_| "cgroupfs".into());
            match format {
                Some(f) => inv.outln(&f.replace("{{.CgroupDriver}}", &driver).replace("{{.ServerVersion}}", &server.unwrap_or_default())),
                None => inv.outln(&format!("Server:\n Server Version: {}\n Storage Driver: overlay2\n Cgroup Driver: {driver}\n Cgroup Version: 2", server.unwrap_or_default())),
            }
            0
        }
        _ => {
            inv.errln(&format!(
                "k8sup-lab: docker {} is not emulated",
                args.join(" ")
            ));
            1
        }
    }
}

/// The version the lab's cri-dockerd reports when it is no package's but the
/// program of a release archive (a script that execs the emulator).
pub const CRI_DOCKERD_RELEASE: &str = "0.3.15";

pub fn run_cri_dockerd(inv: &mut Invocation) -> i32 {
    // Mirantis' deb/rpm, else a release archive's program: only those reach here.
    let version = version_of(inv, &["cri-dockerd"]).or_else(|_| -> Result<_, String> {
        Ok(("cri-dockerd".to_string(), CRI_DOCKERD_RELEASE.to_string()))
    });
    match version {
        Ok((_, v)) if inv.args.iter().any(|a| a == "--version") => {
            inv.outln(&format!("cri-dockerd {v} (c1c566e)"));
            0
        }
        Ok(_) => {
            inv.errln("k8sup-lab: cri-dockerd runs only as cri-docker.service here");
            1
        }
        Err(e) => {
            inv.errln(&e);
            127
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::distro::{Arch, Distro};
    use crate::emu::testing::FakeHost;

    #[test]
    fn containerd_default_config_round_trips_through_the_parser() {
        let h = FakeHost::new(Distro::Ubuntu2204, Arch::Amd64);
        crate::emu::kubelet::tests::install(
            &h,
            &[("containerd.io", "1.7.22-1"), ("cri-tools", "1.30.1-1.1")],
        );
        let (s, out, _) = h.run("containerd", &["--version"]);
        assert_eq!(
            (s, out.as_str()),
            (
                0,
                "containerd containerd.io 1.7.22 7f7fdf5fed64eb6a7caf99b3e12efcf9d60e311c\n"
            )
        );
        let (_, cfg, _) = h.run("containerd", &["config", "default"]);
        assert!(
            cfg.contains("SystemdCgroup = false")
                && cfg.contains("sandbox_image = \"registry.k8s.io/pause:3.8\"")
        );
        h.write(
            "/etc/containerd/config.toml",
            &cfg.replace("SystemdCgroup = false", "SystemdCgroup = true"),
        );
        let inv = Invocation::new(&h.root, "crictl", &[], 0);
        assert!(
            runtime::containerd_config(&inv)
                .expect("parses")
                .systemd_cgroup
        );
        // The deb's postinst started it; stopped, its socket is gone.
        assert_eq!(h.run("systemctl", &["stop", "containerd"]).0, 0);
        let (s, _, err) = h.run(
            "crictl",
            &[
                "--runtime-endpoint",
                "unix:///run/containerd/containerd.sock",
                "info",
            ],
        );
        assert_eq!(s, 1);
        assert!(
            err.contains("level=fatal") && err.contains("no such file or directory"),
            "{err}"
        );
        h.write("/run/lab-systemd/containerd.service.active", "");
        let (s, out, _) = h.run(
            "crictl",
            &[
                "--runtime-endpoint",
                "unix:///run/containerd/containerd.sock",
                "info",
            ],
        );
        assert_eq!(s, 0);
        let v: serde_json::Value = serde_json::from_str(&out).expect("json");
        assert_eq!(
            v["config"]["containerd"]["runtimes"]["runc"]["options"]["SystemdCgroup"],
            true
        );
    }

    #[test]
    fn docker_needs_its_daemon() {
        let h = FakeHost::new(Distro::Ubuntu2204, Arch::Amd64);
        crate::emu::kubelet::tests::install(
            &h,
            &[
                ("docker-ce", "5:27.3.1-1~ubuntu.22.04~jammy"),
                ("docker-ce-cli", "5:27.3.1-1~ubuntu.22.04~jammy"),
            ],
        );
        assert_eq!(h.run("systemctl", &["stop", "docker"]).0, 0);
        let (s, _, err) = h.run("docker", &["version", "--format", "{{.Server.Version}}"]);
        assert_eq!((s, err.as_str()), (1, "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?\n"));
        h.write("/run/lab-systemd/docker.service.active", "");
        h.write(
            "/etc/docker/daemon.json",
            "{\"exec-opts\": [\"native.cgroupdriver=systemd\"]}",
        );
        assert_eq!(
            h.run("docker", &["version", "--format", "{{.Server.Version}}"])
                .1,
            "27.3.1\n"
        );
        assert_eq!(
            h.run("docker", &["info", "--format", "{{.CgroupDriver}}"])
                .1,
            "systemd\n"
        );
    }

    #[test]
    fn a_release_cri_dockerd_reports_its_version() {
        let h = FakeHost::new(Distro::Ubuntu2204, Arch::Amd64);
        let (s, out, _) = h.run("cri-dockerd", &["--version"]);
        assert_eq!((s, out.as_str()), (0, "cri-dockerd 0.3.15 (c1c566e)\n"));
        let (s, _, err) = h.run("cri-dockerd", &["--container-runtime-endpoint", "fd://"]);
        assert_eq!(
            (s, err.as_str()),
            (
                1,
                "k8sup-lab: cri-dockerd runs only as cri-docker.service here\n"
            )
        );
    }
}
