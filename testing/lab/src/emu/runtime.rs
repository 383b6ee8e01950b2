//! What the emulated tools know about a host's container runtime: which socket belongs to
//! which runtime, whether it is served (its systemd unit is active and its configuration
//! loads), and its cgroup driver (containerd's `SystemdCgroup`, docker's
//! `native.cgroupdriver`). Shared by kubeadm's preflight, the kubelet, crictl and docker.

use super::Invocation;
use crate::profile::SYSTEMD_STATE_DIR;

/// A CRI runtime behind a socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runtime {
    Containerd,
    CriDockerd,
    CriO,
}

/// The sockets kubeadm looks for when none is configured, in its order.
pub const KNOWN_SOCKETS: &[&str] = &[
    "unix:///var/run/containerd/containerd.sock",
    "unix:///var/run/crio/crio.sock",
    "unix:///var/run/cri-dockerd.sock",
];

impl Runtime {
    pub fn for_socket(socket: &str) -> Option<Runtime> {
        let path = socket.trim_start_matches("unix://");
        let path = path.strip_prefix("/var").unwrap_or(path);
        match path {
            "/run/containerd/containerd.sock" => Some(Runtime::Containerd),
            "/run/cri-dockerd.sock" => Some(Runtime::CriDockerd),
            "/run/crio/crio.sock" => Some(Runtime::CriO),
            _ => None,
        }
    }

    /// The unit whose activity makes the socket exist.
    pub fn unit(self) -> &'static str {
        match self {
            Runtime::Containerd => "containerd.service",
            Runtime::CriDockerd => "cri-docker.service",
            Runtime::CriO => "crio.service",
        }
    }

    /// The name the kubelet reports (`containerd://1.7.22`).
    pub fn scheme(self) -> &'static str {
        match self {
            Runtime::Containerd => "containerd",
            Runtime::CriDockerd => "docker",
            Runtime::CriO => "cri-o",
        }
    }
}

pub fn unit_active(inv: &Invocation, unit: &str) -> bool {
    inv.path(&format!("{SYSTEMD_STATE_DIR}/{unit}.active"))
        .exists()
}

/// What the kubelet and kubeadm care about in `/etc/containerd/config.toml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerdConfig {
    pub systemd_cgroup: bool,
    pub sandbox_image: String,
    pub cri_disabled: bool,
}

/// containerd's default pause image for its version.
pub fn containerd_default_pause(version: &str) -> &'static str {
    match super::cluster::semver(version) {
        Some((2, ..)) => "registry.k8s.io/pause:3.10",
        Some((1, 7, _)) => "registry.k8s.io/pause:3.8",
        _ => "registry.k8s.io/pause:3.6",
    }
}

/// Reads `/etc/containerd/config.toml` (containerd's built-in defaults when absent); an
/// error is what containerd would say when refusing to start.
pub fn containerd_config(inv: &Invocation) -> Result<ContainerdConfig, String> {
    let version = super::pkgdb::upstream_version(inv, "containerd.io")
        .or_else(|| super::pkgdb::upstream_version(inv, "containerd"))
        .unwrap_or_else(|| "1.7.22".into());
    let mut cfg = ContainerdConfig {
        systemd_cgroup: false,
        sandbox_image: containerd_default_pause(&version).into(),
        cri_disabled: false,
    };
    let text = match inv.read("/etc/containerd/config.toml") {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(cfg),
        Err(e) => {
            return Err(format!(
                "failed to load TOML: /etc/containerd/config.toml: {e}"
            ))
        }
    };
    let doc: toml::Table = text.parse().map_err(|e: toml::de::Error| {
        format!(
            "containerd: failed to load TOML from /etc/containerd/config.toml: {}",
            e.message()
        )
    })?;
    let config_version = doc.get("version").and_then(|v| v.as_integer()).unwrap_or(1);
    let major = super::cluster::semver(&version).map_or(1, |v| v.0);
    if config_version == 3 && major < 2 {
        return Err(format!(
            "containerd: unsupported config version `3` (containerd {version} supports 1 and 2)"
        ));
    }
    if let Some(disabled) = doc.get("disabled_plugins").and_then(|v| v.as_array()) {
        cfg.cri_disabled = disabled.iter().any(|p| {
            matches!(
                p.as_str(),
                Some("cri")
                    | Some("io.containerd.grpc.v1.cri")
                    | Some("io.containerd.cri.v1.runtime")
            )
        });
    }
    let plugins = doc.get("plugins");
    let get = |path: &[&str]| -> Option<&toml::Value> {
        let mut cur = plugins?;
        for p in path {
            cur = cur.get(p)?;
        }
        Some(cur)
    };
    let (runtime_plugin, image_path): (&str, &[&str]) = if config_version >= 3 {
        (
            "io.containerd.cri.v1.runtime",
            &["io.containerd.cri.v1.images", "pinned_images", "sandbox"],
        )
    } else {
        (
            "io.containerd.grpc.v1.cri",
            &["io.containerd.grpc.v1.cri", "sandbox_image"],
        )
    };
    if let Some(v) = get(&[
        runtime_plugin,
        "containerd",
        "runtimes",
        "runc",
        "options",
        "SystemdCgroup",
    ]) {
        cfg.systemd_cgroup = v.as_bool().ok_or_else(|| {
            "containerd: failed to decode runc options: SystemdCgroup must be a boolean".to_string()
        })?;
    }
    if let Some(v) = get(image_path).and_then(|v| v.as_str()) {
        cfg.sandbox_image = v.to_string();
    }
    Ok(cfg)
}

/// docker's cgroup driver: `exec-opts` in daemon.json, else its default (systemd on a
/// cgroup v2 host, cgroupfs on v1). An error is dockerd refusing to start.
pub fn docker_cgroup_driver(inv: &Invocation) -> Result<String, String> {
    let default = match inv.profile().map(|p| p.cgroup) {
        Ok(crate::distro::CgroupVersion::V1) => "cgroupfs",
        _ => "systemd",
    };
    let text = match inv.read("/etc/docker/daemon.json") {
        Ok(t) => t,
        Err(_) => return Ok(default.into()),
    };
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
        format!("unable to configure the Docker daemon with file /etc/docker/daemon.json: {e}")
    })?;
    let mut driver = default.to_string();
    if let Some(opts) = v.get("exec-opts").and_then(|o| o.as_array()) {
        for o in opts.iter().filter_map(|o| o.as_str()) {
            if let Some(d) = o.strip_prefix("native.cgroupdriver=") {
                if d != "systemd" && d != "cgroupfs" {
                    return Err(format!(
                        "failed to start daemon: native.cgroupdriver option {d} not supported"
                    ));
                }
                driver = d.to_string();
            }
        }
    }
    Ok(driver)
}

/// Whether dockerd runs: its unit is active and daemon.json loads.
pub fn docker_running(inv: &Invocation) -> bool {
    unit_active(inv, "docker.service") && docker_cgroup_driver(inv).is_ok()
}

/// Where systemd looks for units, in its order.
const UNIT_DIRS: [&str; 4] = [
    "/etc/systemd/system",
    "/run/systemd/system",
    "/usr/lib/systemd/system",
    "/lib/systemd/system",
];

/// The words of `cri-docker.service`'s `ExecStart`, once its program is found
/// executable, as systemd needs it to start cri-dockerd; the error is systemd's.
pub fn cri_dockerd_exec(inv: &Invocation) -> Result<Vec<String>, String> {
    let unit = UNIT_DIRS
        .iter()
        .find_map(|d| inv.read(&format!("{d}/cri-docker.service")).ok())
        .ok_or("Unit cri-docker.service not found.")?;
    let words: Vec<String> = unit
        .lines()
        .filter_map(|l| l.trim().strip_prefix("ExecStart="))
        .next_back()
        .map(|cmd| cmd.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default();
    let program = words
        .first()
        .map(|p| p.trim_start_matches(['-', '@', '!', '+', ':']))
        .ok_or("cri-docker.service: Service has no ExecStart=, ExecStop=, or SuccessAction=. Refusing.")?;
    use std::os::unix::fs::PermissionsExt;
    let located = std::fs::symlink_metadata(inv.path(program)).map_err(|_| {
        format!(
            "cri-docker.service: Failed to locate executable {program}: No such file or directory"
        )
    })?;
    if !located.file_type().is_symlink() && located.permissions().mode() & 0o111 == 0 {
        return Err(format!(
            "cri-docker.service: Failed to locate executable {program}: Permission denied"
        ));
    }
    Ok(words)
}

/// The pause image cri-dockerd gives pods: its `--pod-infra-container-image`, else
/// its built-in default.
pub fn cri_dockerd_pause_image(inv: &Invocation) -> String {
    let words = cri_dockerd_exec(inv).unwrap_or_default();
    let mut it = words.iter();
    while let Some(w) = it.next() {
        if let Some(v) = w.strip_prefix("--pod-infra-container-image=") {
            return v.to_string();
        }
        if w == "--pod-infra-container-image" {
            if let Some(v) = it.next() {
                return v.clone();
            }
        }
    }
    CRI_DOCKERD_DEFAULT_PAUSE.to_string()
}

/// cri-dockerd 0.3's default pause image.
pub const CRI_DOCKERD_DEFAULT_PAUSE: &str = "registry.k8s.io/pause:3.9";

/// Checks that a CRI socket is served, as `crictl info` would; the error is crictl's.
pub fn check_socket(inv: &Invocation, socket: &str) -> Result<Runtime, String> {
    let endpoint = if socket.contains("://") {
        socket.to_string()
    } else {
        format!("unix://{socket}")
    };
    let path = endpoint.trim_start_matches("unix://").to_string();
    let unavailable = || {
        format!(
            "validate service connection: validate CRI v1 runtime API for endpoint \"{endpoint}\": rpc error: code = Unavailable desc = connection error: desc = \"transport: Error while dialing: dial unix {path}: connect: no such file or directory\""
        )
    };
    let runtime = Runtime::for_socket(&endpoint).ok_or_else(unavailable)?;
    if !unit_active(inv, runtime.unit()) {
        return Err(unavailable());
    }
    match runtime {
        Runtime::Containerd => {
            let cfg = containerd_config(inv).map_err(|_| unavailable())?;
            if cfg.cri_disabled {
                return Err(format!(
                    "validate service connection: validate CRI v1 runtime API for endpoint \"{endpoint}\": rpc error: code = Unimplemented desc = unknown service runtime.v1.RuntimeService"
                ));
            }
        }
        Runtime::CriDockerd => {
            // systemd marks a unit whose program cannot run as failed (203/EXEC):
            // nothing listens behind the socket then.
            cri_dockerd_exec(inv).map_err(|_| unavailable())?;
            if !docker_running(inv) {
                return Err(format!(
                    "validate service connection: validate CRI v1 runtime API for endpoint \"{endpoint}\": rpc error: code = Unknown desc = Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?"
                ));
            }
        }
        Runtime::CriO => {}
    }
    Ok(runtime)
}

/// The runtime's cgroup driver (`systemd` or `cgroupfs`).
pub fn cgroup_driver(inv: &Invocation, runtime: Runtime) -> Result<String, String> {
    match runtime {
        Runtime::Containerd => containerd_config(inv).map(|c| {
            if c.systemd_cgroup {
                "systemd".into()
            } else {
                "cgroupfs".into()
            }
        }),
        Runtime::CriDockerd => docker_cgroup_driver(inv),
        Runtime::CriO => Ok("systemd".into()),
    }
}

/// The runtime's version as the kubelet reports it (`containerd://1.7.22`).
pub fn version_string(inv: &Invocation, runtime: Runtime) -> String {
    let v = match runtime {
        Runtime::Containerd => super::pkgdb::upstream_version(inv, "containerd.io")
            .or_else(|| super::pkgdb::upstream_version(inv, "containerd")),
        Runtime::CriDockerd => super::pkgdb::upstream_version(inv, "docker-ce"),
        Runtime::CriO => super::pkgdb::upstream_version(inv, "cri-o"),
    };
    format!(
        "{}://{}",
        runtime.scheme(),
        v.unwrap_or_else(|| "unknown".into())
    )
}

/// The socket kubeadm picks when none is configured: the only one served, else an error
/// naming them all (kubeadm's own message), else containerd's.
pub fn detect_socket(inv: &Invocation) -> Result<String, String> {
    let found: Vec<&str> = KNOWN_SOCKETS
        .iter()
        .copied()
        .filter(|s| Runtime::for_socket(s).is_some_and(|r| unit_active(inv, r.unit())))
        .collect();
    match found.as_slice() {
        [] => Ok(KNOWN_SOCKETS[0].into()),
        [one] => Ok(one.to_string()),
        many => Err(format!(
            "found multiple CRI endpoints on the host. Please define which one do you wish to use by setting the 'criSocket' field in the kubeadm configuration file: {}",
            many.join(", ")
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::distro::{Arch, Distro};
    use crate::emu::testing::FakeHost;

    #[test]
    fn containerd_config_is_read_like_containerd() {
        let h = FakeHost::new(Distro::Ubuntu2204, Arch::Amd64);
        let inv = Invocation::new(&h.root, "crictl", &[], 0);
        assert!(!containerd_config(&inv).expect("defaults").systemd_cgroup);
        h.write(
            "/etc/containerd/config.toml",
            "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\"]\n  sandbox_image = \"registry.k8s.io/pause:3.9\"\n[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc.options]\n  SystemdCgroup = true\n",
        );
        let c = containerd_config(&inv).expect("config");
        assert!(c.systemd_cgroup && !c.cri_disabled);
        assert_eq!(c.sandbox_image, "registry.k8s.io/pause:3.9");
        h.write(
            "/etc/containerd/config.toml",
            "disabled_plugins = [\"cri\"]\n",
        );
        assert!(containerd_config(&inv).expect("config").cri_disabled);
        h.write("/etc/containerd/config.toml", "version = = 2\n");
        assert!(containerd_config(&inv).is_err());
    }

    #[test]
    fn a_socket_is_served_only_by_a_started_runtime() {
        let h = FakeHost::new(Distro::Ubuntu2204, Arch::Amd64);
        let inv = Invocation::new(&h.root, "crictl", &[], 0);
        let sock = "unix:///var/run/containerd/containerd.sock";
        assert!(check_socket(&inv, sock)
            .expect_err("stopped")
            .contains("no such file or directory"));
        h.write("/run/lab-systemd/containerd.service.active", "");
        assert_eq!(check_socket(&inv, sock), Ok(Runtime::Containerd));
        h.write(
            "/etc/containerd/config.toml",
            "disabled_plugins = [\"cri\"]\n",
        );
        assert!(check_socket(&inv, sock)
            .expect_err("cri off")
            .contains("unknown service runtime.v1.RuntimeService"));
    }

    #[test]
    fn docker_driver_comes_from_daemon_json() {
        let h = FakeHost::new(Distro::Ubuntu2204, Arch::Amd64);
        let inv = Invocation::new(&h.root, "docker", &[], 0);
        h.write(
            "/etc/docker/daemon.json",
            "{\"exec-opts\": [\"native.cgroupdriver=cgroupfs\"]}",
        );
        assert_eq!(docker_cgroup_driver(&inv).as_deref(), Ok("cgroupfs"));
        h.write("/etc/docker/daemon.json", "{");
        assert!(docker_cgroup_driver(&inv).is_err());
    }

    #[test]
    fn cri_dockerd_serves_its_socket_only_with_its_program_and_docker() {
        let h = FakeHost::new(Distro::Ubuntu2204, Arch::Amd64);
        let inv = Invocation::new(&h.root, "crictl", &[], 0);
        let sock = "unix:///run/cri-dockerd.sock";
        h.write(
            "/etc/systemd/system/cri-docker.service",
            "[Service]\nExecStart=/usr/local/bin/cri-dockerd --container-runtime-endpoint fd:// --pod-infra-container-image=mirror.example/pause:3.9\n",
        );
        h.write("/run/lab-systemd/cri-docker.service.active", "");
        h.write("/run/lab-systemd/docker.service.active", "");
        // Started, but its program was never installed: 203/EXEC, nothing listens.
        assert!(cri_dockerd_exec(&inv)
            .expect_err("no program")
            .contains("Failed to locate executable /usr/local/bin/cri-dockerd"));
        assert!(check_socket(&inv, sock)
            .expect_err("no program")
            .contains("no such file or directory"));
        h.write("/usr/local/bin/cri-dockerd", "#!/bin/sh\n");
        use std::os::unix::fs::PermissionsExt;
        let program = h.root.join("usr/local/bin/cri-dockerd");
        std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(check_socket(&inv, sock).is_err(), "not executable");
        std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(
            check_socket(&inv, "unix:///var/run/cri-dockerd.sock"),
            Ok(Runtime::CriDockerd)
        );
        assert_eq!(cri_dockerd_pause_image(&inv), "mirror.example/pause:3.9");
        // Docker stopped: cri-dockerd answers, but with Docker's error.
        std::fs::remove_file(h.root.join("run/lab-systemd/docker.service.active")).unwrap();
        assert!(check_socket(&inv, sock)
            .expect_err("docker stopped")
            .contains("Cannot connect to the Docker daemon"));
    }
}
