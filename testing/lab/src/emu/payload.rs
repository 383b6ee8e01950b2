//! What installing a package places on a host, as far as an installer can notice: its
//! programs (symlinks to the emulator, so `command -v kubeadm` succeeds only once kubeadm
//! is installed), its systemd units, and the configuration files the real package ships
//! (containerd.io's `/etc/containerd/config.toml` with `disabled_plugins = ["cri"]`;
//! docker-ce ships no daemon.json). Configuration files survive `remove` and go with
//! `purge`, as dpkg does.
//!
//! Programs that the machine's own /usr already provides (curl, gpg, jq...) are not
//! replaced: the real ones keep answering.

use std::path::Path;

use super::repos::Format;
use super::Invocation;

/// Where the emulator lives inside a host: the target of every program a package places.
pub const EMULATOR: &str = "/usr/libexec/k8sup-lab/k8sup-lab-emu";

/// One thing a package places.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placed {
    /// A program: a symlink to the emulator.
    Program(&'static str),
    /// A file owned by the package and replaced on upgrade.
    File(&'static str, &'static str),
    /// A configuration file: kept on remove, deleted on purge, never overwritten.
    Conffile(&'static str, &'static str),
    /// A directory the package owns (left in place when not empty).
    Dir(&'static str),
    /// A real program or file: copied from the unpacked Debian package (path relative to
    /// its root, see [`crate::realpkg`]); replaced on upgrade.
    Real(&'static str, &'static str),
    /// A real configuration file from the unpacked package: kept on remove, deleted on
    /// purge, never overwritten.
    RealConffile(&'static str, &'static str),
    /// A symbolic link (to its second path).
    Link(&'static str, &'static str),
}

impl Placed {
    pub fn path(&self) -> &'static str {
        match self {
            Placed::Program(p)
            | Placed::File(p, _)
            | Placed::Conffile(p, _)
            | Placed::Dir(p)
            | Placed::Real(p, _)
            | Placed::RealConffile(p, _)
            | Placed::Link(p, _) => p,
        }
    }
}

const KUBELET_SERVICE: &str = "[Unit]
Description=kubelet: The Kubernetes Node Agent
Documentation=https://kubernetes.io/docs/
Wants=network-online.target
After=network-online.target

[Service]
ExecStart=/usr/bin/kubelet
Restart=always
StartLimitInterval=0
RestartSec=10

[Install]
WantedBy=multi-user.target
";

const KUBEADM_DROPIN_DEB: &str = "# Note: This dropin only works with kubeadm and kubelet v1.11+
[Service]
Environment=\"KUBELET_KUBECONFIG_ARGS=--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf --kubeconfig=/etc/kubernetes/kubelet.conf\"
Environment=\"KUBELET_CONFIG_ARGS=--config=/var/lib/kubelet/config.yaml\"
# This is a file that \"kubeadm init\" and \"kubeadm join\" generates at runtime, populating the KUBELET_KUBEADM_ARGS variable dynamically
EnvironmentFile=-/var/lib/kubelet/kubeadm-flags.env
# This is a file that the user can use for overrides of the kubelet args as a last resort. Preferably, the user should use
# the .NodeRegistration.KubeletExtraArgs object in the configuration files instead. KUBELET_EXTRA_ARGS should be sourced from this file.
EnvironmentFile=-/etc/default/kubelet
ExecStart=
ExecStart=/usr/bin/kubelet $KUBELET_KUBECONFIG_ARGS $KUBELET_CONFIG_ARGS $KUBELET_KUBEADM_ARGS $KUBELET_EXTRA_ARGS
";

const KUBEADM_DROPIN_RPM: &str = "# Note: This dropin only works with kubeadm and kubelet v1.11+
[Service]
Environment=\"KUBELET_KUBECONFIG_ARGS=--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf --kubeconfig=/etc/kubernetes/kubelet.conf\"
Environment=\"KUBELET_CONFIG_ARGS=--config=/var/lib/kubelet/config.yaml\"
# This is a file that \"kubeadm init\" and \"kubeadm join\" generates at runtime, populating the KUBELET_KUBEADM_ARGS variable dynamically
EnvironmentFile=-/var/lib/kubelet/kubeadm-flags.env
# This is a file that the user can use for overrides of the kubelet args as a last resort. Preferably, the user should use
# the .NodeRegistration.KubeletExtraArgs object in the configuration files instead. KUBELET_EXTRA_ARGS should be sourced from this file.
EnvironmentFile=-/etc/sysconfig/kubelet
ExecStart=
ExecStart=/usr/bin/kubelet $KUBELET_KUBECONFIG_ARGS $KUBELET_CONFIG_ARGS $KUBELET_KUBEADM_ARGS $KUBELET_EXTRA_ARGS
";

const CONTAINERD_SERVICE: &str = "[Unit]
Description=containerd container runtime
Documentation=https://containerd.io
After=network.target local-fs.target

[Service]
ExecStartPre=-/sbin/modprobe overlay
ExecStart=/usr/bin/containerd

Type=notify
Delegate=yes
KillMode=process
Restart=always
RestartSec=5
LimitNPROC=infinity
LimitCORE=infinity
TasksMax=infinity
OOMScoreAdjust=-999

[Install]
WantedBy=multi-user.target
";

/// What containerd.io ships: the CRI plugin disabled (Docker only needs containerd's
/// core), so a Kubernetes installer must write its own config.
const CONTAINERD_IO_CONFIG: &str = "#   Copyright 2018-2022 Docker Inc.

#   Licensed under the Apache License, Version 2.0 (the \"License\");
#   you may not use this file except in compliance with the License.
#   You may obtain a copy of the License at

#       http://www.apache.org/licenses/LICENSE-2.0

#   Unless required by applicable law or agreed to in writing, software
#   distributed under the License is distributed on an \"AS IS\" BASIS,
#   WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
#   See the License for the specific language governing permissions and
#   limitations under the License.

disabled_plugins = [\"cri\"]

#root = \"/var/lib/containerd\"
#state = \"/run/containerd\"
#subreaper = true
#oom_score = 0

#[grpc]
#  address = \"/run/containerd/containerd.sock\"
#  uid = 0
#  gid = 0

#[debug]
#  address = \"/run/containerd/debug.sock\"
#  uid = 0
#  gid = 0
#  level = \"info\"
";

const DOCKER_SERVICE: &str = "[Unit]
Description=Docker Application Container Engine
Documentation=https://docs.docker.com
After=network-online.target docker.socket firewalld.service containerd.service time-set.target
Wants=network-online.target containerd.service
Requires=docker.socket

[Service]
Type=notify
ExecStart=/usr/bin/dockerd -H fd:// --containerd=/run/containerd/containerd.sock
ExecReload=/bin/kill -s HUP $MAINPID
TimeoutStartSec=0
RestartSec=2
Restart=always
StartLimitBurst=3
StartLimitInterval=60s
LimitNPROC=infinity
LimitCORE=infinity
TasksMax=infinity
Delegate=yes
KillMode=process
OOMScoreAdjust=-500

[Install]
WantedBy=multi-user.target
";

const DOCKER_SOCKET: &str = "[Unit]
Description=Docker Socket for the API

[Socket]
ListenStream=/run/docker.sock
SocketMode=0660
SocketUser=root
SocketGroup=docker

[Install]
WantedBy=sockets.target
";

const DNF_VERSIONLOCK_CONF: &str =
    "[main]\nenabled = 1\nlocklist = /etc/dnf/plugins/versionlock.list\n";
const YUM_VERSIONLOCK_CONF: &str =
    "[main]\nenabled = 1\nlocklist = /etc/yum/pluginconf.d/versionlock.list\n";

const CNI_PLUGINS: &[Placed] = &[
    Placed::Dir("/opt/cni/bin"),
    Placed::Program("/opt/cni/bin/bandwidth"),
    Placed::Program("/opt/cni/bin/bridge"),
    Placed::Program("/opt/cni/bin/dhcp"),
    Placed::Program("/opt/cni/bin/firewall"),
    Placed::Program("/opt/cni/bin/host-device"),
    Placed::Program("/opt/cni/bin/host-local"),
    Placed::Program("/opt/cni/bin/ipvlan"),
    Placed::Program("/opt/cni/bin/loopback"),
    Placed::Program("/opt/cni/bin/macvlan"),
    Placed::Program("/opt/cni/bin/portmap"),
    Placed::Program("/opt/cni/bin/ptp"),
    Placed::Program("/opt/cni/bin/sbr"),
    Placed::Program("/opt/cni/bin/static"),
    Placed::Program("/opt/cni/bin/tuning"),
    Placed::Program("/opt/cni/bin/vlan"),
    Placed::Program("/opt/cni/bin/vrf"),
];

const IPTABLES: &[Placed] = &[
    Placed::Program("/usr/sbin/iptables"),
    Placed::Program("/usr/sbin/ip6tables"),
    Placed::Program("/usr/sbin/iptables-save"),
    Placed::Program("/usr/sbin/iptables-restore"),
    Placed::Program("/usr/sbin/ip6tables-save"),
    Placed::Program("/usr/sbin/ip6tables-restore"),
];

/// What `name` places on a host of `format`.
pub fn contents(name: &str, format: Format) -> Vec<Placed> {
    let deb = format == Format::Deb;
    match name {
        "kubelet" => {
            let mut v = vec![
                Placed::Program("/usr/bin/kubelet"),
                Placed::File("/usr/lib/systemd/system/kubelet.service", KUBELET_SERVICE),
                Placed::Dir("/etc/kubernetes/manifests"),
            ];
            if !deb {
                v.push(Placed::Conffile(
                    "/etc/sysconfig/kubelet",
                    "KUBELET_EXTRA_ARGS=\n",
                ));
            }
            v
        }
        "kubeadm" => vec![
            Placed::Program("/usr/bin/kubeadm"),
            Placed::Dir("/usr/lib/systemd/system/kubelet.service.d"),
            Placed::File(
                "/usr/lib/systemd/system/kubelet.service.d/10-kubeadm.conf",
                if deb {
                    KUBEADM_DROPIN_DEB
                } else {
                    KUBEADM_DROPIN_RPM
                },
            ),
        ],
        "kubectl" => vec![Placed::Program("/usr/bin/kubectl")],
        "cri-tools" => vec![Placed::Program("/usr/bin/crictl")],
        "kubernetes-cni" => CNI_PLUGINS.to_vec(),
        "containerd.io" => vec![
            Placed::Program("/usr/bin/containerd"),
            Placed::Program("/usr/bin/containerd-shim-runc-v2"),
            Placed::Program("/usr/bin/ctr"),
            Placed::Program("/usr/bin/runc"),
            Placed::File(
                "/usr/lib/systemd/system/containerd.service",
                CONTAINERD_SERVICE,
            ),
            Placed::Dir("/etc/containerd"),
            Placed::Conffile("/etc/containerd/config.toml", CONTAINERD_IO_CONFIG),
        ],
        // Ubuntu's and Debian's own containerd ship no config.toml: containerd's built-in
        // defaults (CRI enabled) apply.
        "containerd" => vec![
            Placed::Program("/usr/bin/containerd"),
            Placed::Program("/usr/bin/containerd-shim-runc-v2"),
            Placed::Program("/usr/bin/ctr"),
            Placed::File(
                "/usr/lib/systemd/system/containerd.service",
                CONTAINERD_SERVICE,
            ),
        ],
        "runc" => vec![Placed::Program("/usr/sbin/runc")],
        "docker-ce" => vec![
            Placed::Program("/usr/bin/dockerd"),
            Placed::Program("/usr/bin/docker-proxy"),
            Placed::File("/usr/lib/systemd/system/docker.service", DOCKER_SERVICE),
            Placed::File("/usr/lib/systemd/system/docker.socket", DOCKER_SOCKET),
        ],
        "docker-ce-cli" => vec![Placed::Program("/usr/bin/docker")],
        "docker-buildx-plugin" => vec![Placed::Program(
            "/usr/libexec/docker/cli-plugins/docker-buildx",
        )],
        "docker-compose-plugin" => {
            vec![Placed::Program(
                "/usr/libexec/docker/cli-plugins/docker-compose",
            )]
        }
        "conntrack" | "conntrack-tools" => vec![Placed::Program("/usr/sbin/conntrack")],
        "socat" => vec![Placed::Program("/usr/bin/socat")],
        "ebtables" => vec![Placed::Program("/usr/sbin/ebtables")],
        "ethtool" => vec![Placed::Program("/usr/sbin/ethtool")],
        "iptables" | "iptables-nft" => IPTABLES.to_vec(),
        "ipset" => vec![Placed::Program("/usr/sbin/ipset")],
        "ipvsadm" => vec![Placed::Program("/usr/sbin/ipvsadm")],
        "python3-dnf-plugin-versionlock" => vec![
            Placed::Conffile("/etc/dnf/plugins/versionlock.conf", DNF_VERSIONLOCK_CONF),
            Placed::Conffile("/etc/dnf/plugins/versionlock.list", ""),
        ],
        "yum-plugin-versionlock" => vec![
            Placed::Conffile(
                "/etc/yum/pluginconf.d/versionlock.conf",
                YUM_VERSIONLOCK_CONF,
            ),
            Placed::Conffile("/etc/yum/pluginconf.d/versionlock.list", ""),
        ],
        other => super::balancers::contents(other, format),
    }
}

/// Packages whose contents the lab knows.
const PACKAGES: &[&str] = &[
    "haproxy",
    "nginx",
    "nginx-common",
    "libnginx-mod-stream",
    "nginx-mod-stream",
    "kubelet",
    "kubeadm",
    "kubectl",
    "cri-tools",
    "kubernetes-cni",
    "containerd.io",
    "containerd",
    "runc",
    "docker-ce",
    "docker-ce-cli",
    "docker-buildx-plugin",
    "docker-compose-plugin",
    "conntrack",
    "conntrack-tools",
    "socat",
    "ebtables",
    "ethtool",
    "iptables",
    "iptables-nft",
    "ipset",
    "ipvsadm",
];

/// Every program path any package places (what a host must not have before).
pub fn all_programs() -> Vec<&'static str> {
    let mut v: Vec<&'static str> = PACKAGES
        .iter()
        .flat_map(|p| {
            let mut c = contents(p, Format::Deb);
            c.extend(contents(p, Format::Rpm));
            c
        })
        .filter_map(|item| match item {
            Placed::Program(path) => Some(path),
            _ => None,
        })
        .collect();
    v.sort();
    v.dedup();
    v
}

/// The service a package's maintainer scripts manage, if any.
pub fn main_unit(name: &str) -> Option<&'static str> {
    match name {
        "kubelet" => Some("kubelet.service"),
        "containerd.io" | "containerd" => Some("containerd.service"),
        "docker-ce" => Some("docker.service"),
        "haproxy" => Some("haproxy.service"),
        "nginx" => Some("nginx.service"),
        _ => None,
    }
}

fn is_link(p: &Path) -> bool {
    std::fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_symlink())
}

/// Places a package's files. Programs the machine already has as real files are left
/// alone; a configuration file already there is kept (the admin's version wins).
pub fn place(inv: &Invocation, name: &str, format: Format) -> std::io::Result<()> {
    for item in contents(name, format) {
        let path = inv.path(item.path());
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        match item {
            Placed::Program(_) => {
                if path.exists() && !is_link(&path) {
                    continue;
                }
                if is_link(&path) {
                    std::fs::remove_file(&path)?;
                }
                std::os::unix::fs::symlink(EMULATOR, &path)?;
            }
            Placed::File(_, text) => std::fs::write(&path, text)?,
            Placed::Conffile(_, text) => {
                if !path.exists() {
                    std::fs::write(&path, text)?;
                }
            }
            Placed::Dir(_) => std::fs::create_dir_all(&path)?,
            Placed::Real(_, source) => copy_real(inv, source, &path)?,
            Placed::RealConffile(_, source) => {
                if !path.exists() {
                    copy_real(inv, source, &path)?;
                }
            }
            Placed::Link(_, target) => {
                if path.symlink_metadata().is_ok() {
                    std::fs::remove_file(&path)?;
                }
                std::os::unix::fs::symlink(target, &path)?;
            }
        }
    }
    Ok(())
}

/// Copies one file of the unpacked real packages to `dest` in the host (a symbolic link
/// stays a link, a program keeps its mode); fails with the reason when the lab could not
/// fetch them.
fn copy_real(inv: &Invocation, source: &str, dest: &Path) -> std::io::Result<()> {
    let from = inv.path(&format!("{}/root/{source}", crate::realpkg::IN_HOST_DIR));
    if from.symlink_metadata().is_err() {
        let why = inv
            .read(crate::realpkg::UNAVAILABLE_FILE)
            .unwrap_or_else(|_| format!("{} is missing", from.display()));
        return Err(std::io::Error::other(format!(
            "the lab has no real {source}: {}",
            why.trim()
        )));
    }
    if dest.symlink_metadata().is_ok() {
        std::fs::remove_file(dest)?;
    }
    match std::fs::read_link(&from) {
        Ok(target) => std::os::unix::fs::symlink(target, dest),
        Err(_) => std::fs::copy(&from, dest).map(|_| ()),
    }
}

/// Removes a package's files; returns whether configuration files were kept.
pub fn unplace(inv: &Invocation, name: &str, format: Format, purge: bool) -> std::io::Result<bool> {
    let mut kept = false;
    let items = contents(name, format);
    for item in &items {
        let path = inv.path(item.path());
        match item {
            Placed::Program(_) => {
                if is_link(&path) {
                    std::fs::remove_file(&path)?;
                }
            }
            Placed::File(..) | Placed::Real(..) | Placed::Link(..) => {
                if path.symlink_metadata().is_ok() {
                    std::fs::remove_file(&path)?;
                }
            }
            Placed::Conffile(..) | Placed::RealConffile(..) => {
                // rpm removes an unmodified config file and keeps a modified one as
                // .rpmsave; dpkg keeps them until purge.
                if path.exists() {
                    if purge {
                        std::fs::remove_file(&path)?;
                    } else if format == Format::Deb {
                        kept = true;
                    } else {
                        std::fs::remove_file(&path)?;
                    }
                }
            }
            Placed::Dir(_) => {}
        }
    }
    for item in items.iter().rev() {
        if let Placed::Dir(d) = item {
            // Only an empty directory goes, as with dpkg and rpm.
            let _ = std::fs::remove_dir(inv.path(d));
        }
    }
    Ok(kept)
}

/// What a deb's postinst does to its service: Debian policy enables the unit and starts
/// a daemon at once. The kubelet is only enabled: without a configuration the real one
/// restarts in a loop and never listens.
pub fn postinst(inv: &Invocation, name: &str) -> String {
    let steps: &[(&str, &[&str])] = match name {
        "kubelet" => &[("enable", &["kubelet.service"])],
        "containerd.io" | "containerd" => &[
            ("enable", &["containerd.service"]),
            ("start", &["containerd.service"]),
        ],
        "docker-ce" => &[
            ("enable", &["docker.service", "docker.socket"]),
            ("start", &["docker.socket", "docker.service"]),
        ],
        "haproxy" => &[
            ("enable", &["haproxy.service"]),
            ("start", &["haproxy.service"]),
        ],
        "nginx" => &[
            ("enable", &["nginx.service"]),
            ("start", &["nginx.service"]),
        ],
        _ => &[],
    };
    let mut out = String::new();
    for (verb, units) in steps {
        let mut args = vec![*verb];
        args.extend_from_slice(units);
        let mut sub = Invocation::new(&inv.root, "systemctl", &args, 0);
        super::dispatch(&mut sub);
        out.push_str(&sub.stdout);
        out.push_str(&sub.stderr);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::distro::{Arch, Distro};
    use crate::emu::testing::FakeHost;

    #[test]
    fn containerd_io_ships_cri_disabled_and_keeps_it_until_purge() {
        let h = FakeHost::new(Distro::Ubuntu2204, Arch::Amd64);
        let inv = Invocation::new(&h.root, "apt-get", &[], 0);
        place(&inv, "containerd.io", Format::Deb).expect("place");
        assert!(h
            .read("/etc/containerd/config.toml")
            .contains("disabled_plugins = [\"cri\"]"));
        assert!(h
            .read("/usr/lib/systemd/system/containerd.service")
            .contains("ExecStart=/usr/bin/containerd"));
        assert!(unplace(&inv, "containerd.io", Format::Deb, false).expect("remove"));
        assert!(h.root.join("etc/containerd/config.toml").exists());
        assert!(!h.root.join("usr/bin/containerd").exists());
        assert!(!unplace(&inv, "containerd.io", Format::Deb, true).expect("purge"));
        assert!(!h.root.join("etc/containerd/config.toml").exists());
    }

    #[test]
    fn docker_ce_ships_no_daemon_json() {
        assert!(!contents("docker-ce", Format::Deb)
            .iter()
            .any(|p| p.path().contains("daemon.json")));
    }

    #[test]
    fn deb_postinst_enables_the_kubelet_without_starting_it() {
        let h = FakeHost::new(Distro::Ubuntu2204, Arch::Amd64);
        let inv = Invocation::new(&h.root, "apt-get", &[], 0);
        place(&inv, "kubelet", Format::Deb).expect("place");
        postinst(&inv, "kubelet");
        assert_eq!(
            h.run("systemctl", &["is-enabled", "kubelet"]).1,
            "enabled\n"
        );
        assert_eq!(h.run("systemctl", &["is-active", "kubelet"]).0, 3);
    }
}
