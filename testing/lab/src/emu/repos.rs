//! The package repositories the lab knows, and what each one offers.
//!
//! The lab has no network, so an emulated package manager "downloads" an index only for a
//! repository whose URL it recognises: pkgs.k8s.io (`core:/stable:/v1.X/deb/` or `/rpm/`),
//! download.docker.com (`linux/ubuntu`, `linux/debian`, `linux/centos`, `linux/rhel`), and
//! the distribution's own archive. A mirror is any http(s) URL whose path ends like the
//! upstream layout ([`LAYOUTS`], the one table of that mapping). The catalogue of versions
//! is data too: [`KUBE_RELEASES`], [`DOCKER_VERSIONS`], [`CONTAINERD_IO_VERSIONS`],
//! [`DEB_ARCHIVE`] and [`RPM_ARCHIVE`].

use crate::distro::{Arch, Distro};

/// Which packaging world a repository serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Deb,
    Rpm,
}

/// What a recognised repository is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// The distribution's own archive (always configured: the image ships it).
    DistroArchive,
    /// pkgs.k8s.io `core:/stable:/v1.<minor>`.
    Kubernetes { minor: u32 },
    /// download.docker.com, for the distribution named in the URL
    /// (`ubuntu`, `debian`, `centos`, `rhel`).
    Docker { distro: String },
}

/// What a URL is, as far as the lab can tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    Known(Origin),
    /// A host the lab knows (pkgs.k8s.io...) but a path it does not serve: the real
    /// server answers 403/404.
    MissingPath {
        host: String,
    },
    /// A host the lab cannot reach (the real tool cannot resolve or connect).
    Unreachable {
        host: String,
    },
}

/// Upstream hosts: a URL there with an unknown path is a 404, not an unreachable host.
const UPSTREAM_HOSTS: &[&str] = &[
    "pkgs.k8s.io",
    "prod-cdn.packages.k8s.io",
    "apt.kubernetes.io",
    "packages.cloud.google.com",
    "download.docker.com",
    "archive.ubuntu.com",
    "security.ubuntu.com",
    "ports.ubuntu.com",
    "deb.debian.org",
    "security.debian.org",
    "dl.rockylinux.org",
    "mirror.centos.org",
    "vault.centos.org",
    "repo.almalinux.org",
    "repo.openeuler.org",
    "update.cs2c.com.cn",
];

/// Mirror-list services of the Red Hat family's own repositories.
const MIRRORLIST_HOSTS: &[&str] = &[
    "mirrors.rockylinux.org",
    "mirrorlist.centos.org",
    "mirrors.almalinux.org",
    "mirrors.openeuler.org",
];

/// The releases download.docker.com builds its CentOS and RHEL rpm repositories for
/// (`linux/centos/<release>/`): any other `$releasever` is a 404.
const DOCKER_RPM_RELEASES: &[&str] = &["7", "8", "9", "10"];

/// One segment of a repository path pattern.
#[derive(Debug, Clone, Copy)]
enum Seg {
    Lit(&'static str),
    /// `v1.<minor>`: a Kubernetes minor release.
    KubeMinor,
    /// Any single segment (a release number, an architecture).
    Any,
    /// The distribution name of a docker repository.
    DockerDistro,
    /// The release of a docker rpm repository ([`DOCKER_RPM_RELEASES`]).
    DockerRelease,
}

/// The URL layouts the lab serves, matched against the end of a URL's path (with `:`
/// removed, so that `core:/stable:/v1.30/deb` and a mirror's `core/stable/v1.30/deb` are
/// the same). Order matters: the first match wins.
const LAYOUTS: &[(Format, &[Seg], Kind)] = &[
    (
        Format::Deb,
        &[
            Seg::Lit("core"),
            Seg::Lit("stable"),
            Seg::KubeMinor,
            Seg::Lit("deb"),
        ],
        Kind::Kube,
    ),
    (
        Format::Rpm,
        &[
            Seg::Lit("core"),
            Seg::Lit("stable"),
            Seg::KubeMinor,
            Seg::Lit("rpm"),
        ],
        Kind::Kube,
    ),
    (
        Format::Deb,
        &[Seg::Lit("linux"), Seg::DockerDistro],
        Kind::Docker,
    ),
    (
        Format::Rpm,
        &[
            Seg::Lit("linux"),
            Seg::DockerDistro,
            Seg::DockerRelease,
            Seg::Any,
            Seg::Lit("stable"),
        ],
        Kind::Docker,
    ),
    (Format::Deb, &[Seg::Lit("ubuntu")], Kind::Archive),
    (Format::Deb, &[Seg::Lit("ubuntu-ports")], Kind::Archive),
    (Format::Deb, &[Seg::Lit("debian")], Kind::Archive),
    (Format::Deb, &[Seg::Lit("debian-security")], Kind::Archive),
    (
        Format::Rpm,
        &[Seg::Any, Seg::Lit("BaseOS"), Seg::Any, Seg::Lit("os")],
        Kind::Archive,
    ),
    (
        Format::Rpm,
        &[Seg::Any, Seg::Lit("AppStream"), Seg::Any, Seg::Lit("os")],
        Kind::Archive,
    ),
    (
        Format::Rpm,
        &[Seg::Any, Seg::Lit("extras"), Seg::Any, Seg::Lit("os")],
        Kind::Archive,
    ),
    (
        Format::Rpm,
        &[Seg::Any, Seg::Lit("os"), Seg::Any],
        Kind::Archive,
    ),
    // openEuler: `openEuler-24.03-LTS-SP1/{OS,everything,EPOL/main,update,debuginfo}/<arch>/`
    // and `.../source/`, `.../update/source/`.
    (Format::Rpm, &[Seg::Lit("OS"), Seg::Any], Kind::Archive),
    (
        Format::Rpm,
        &[Seg::Lit("everything"), Seg::Any],
        Kind::Archive,
    ),
    (
        Format::Rpm,
        &[Seg::Lit("EPOL"), Seg::Lit("main"), Seg::Any],
        Kind::Archive,
    ),
    (Format::Rpm, &[Seg::Lit("update"), Seg::Any], Kind::Archive),
    (
        Format::Rpm,
        &[Seg::Lit("debuginfo"), Seg::Any],
        Kind::Archive,
    ),
    (Format::Rpm, &[Seg::Any, Seg::Lit("source")], Kind::Archive),
    // Kylin V10: `NS/V10/V10SP3/os/adv/lic/{base,updates,addons}/<arch>/`.
    (
        Format::Rpm,
        &[Seg::Lit("lic"), Seg::Any, Seg::Any],
        Kind::Archive,
    ),
];

#[derive(Debug, Clone, Copy)]
enum Kind {
    Kube,
    Docker,
    Archive,
}

/// Splits `scheme://host/path` into (host, path); None when it is not an http(s) URL.
pub fn split_url(url: &str) -> Option<(String, String)> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))?;
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let host = host.rsplit('@').next().unwrap_or(host);
    let host = host.split(':').next().unwrap_or(host);
    if host.is_empty() {
        return None;
    }
    Some((host.to_ascii_lowercase(), path.to_string()))
}

/// What the repository at `url` is, for a package manager of `format`.
pub fn identify(url: &str, format: Format) -> Identity {
    let Some((host, path)) = split_url(url) else {
        return Identity::Unreachable {
            host: url.to_string(),
        };
    };
    // The distributions' mirror lists (what their shipped .repo files point at).
    if format == Format::Rpm && MIRRORLIST_HOSTS.contains(&host.as_str()) {
        return Identity::Known(Origin::DistroArchive);
    }
    let cleaned = path.replace(':', "");
    let segs: Vec<&str> = cleaned.split('/').filter(|s| !s.is_empty()).collect();
    for (f, pattern, kind) in LAYOUTS {
        if *f != format || segs.len() < pattern.len() {
            continue;
        }
        let tail = &segs[segs.len() - pattern.len()..];
        let mut minor = None;
        let mut docker = None;
        let matched = pattern.iter().zip(tail).all(|(p, s)| match p {
            Seg::Lit(l) => l == s,
            Seg::Any => true,
            Seg::KubeMinor => {
                minor = s
                    .strip_prefix("v1.")
                    .and_then(|m| m.parse::<u32>().ok())
                    .filter(|m| kube_release(*m).is_some());
                minor.is_some()
            }
            Seg::DockerRelease => DOCKER_RPM_RELEASES.contains(s),
            Seg::DockerDistro => {
                let known = match format {
                    Format::Deb => ["ubuntu", "debian"].contains(s),
                    Format::Rpm => ["centos", "rhel"].contains(s),
                };
                if known {
                    docker = Some(s.to_string());
                }
                known
            }
        });
        if !matched {
            continue;
        }
        let origin = match kind {
            Kind::Kube => match minor {
                Some(minor) => Origin::Kubernetes { minor },
                None => continue,
            },
            Kind::Docker => match docker {
                Some(distro) => Origin::Docker { distro },
                None => continue,
            },
            Kind::Archive => Origin::DistroArchive,
        };
        return Identity::Known(origin);
    }
    if UPSTREAM_HOSTS.contains(&host.as_str()) {
        Identity::MissingPath { host }
    } else {
        Identity::Unreachable { host }
    }
}

/// A Kubernetes minor release on pkgs.k8s.io: its newest patch (as crates/inventory's
/// `KNOWN` table), and the cri-tools and kubernetes-cni versions its repository carries.
pub struct KubeRelease {
    pub minor: u32,
    pub newest_patch: u32,
    pub cri_tools: &'static [&'static str],
    pub cni: &'static [&'static str],
}

/// Kubernetes 1.24 to 1.34, as pkgs.k8s.io serves them.
pub const KUBE_RELEASES: &[KubeRelease] = &[
    KubeRelease {
        minor: 24,
        newest_patch: 17,
        cri_tools: &["1.24.2"],
        cni: &["1.2.0"],
    },
    KubeRelease {
        minor: 25,
        newest_patch: 16,
        cri_tools: &["1.25.0"],
        cni: &["1.2.0"],
    },
    KubeRelease {
        minor: 26,
        newest_patch: 15,
        cri_tools: &["1.26.0", "1.26.1"],
        cni: &["1.2.0"],
    },
    KubeRelease {
        minor: 27,
        newest_patch: 16,
        cri_tools: &["1.27.0", "1.27.1"],
        cni: &["1.2.0"],
    },
    KubeRelease {
        minor: 28,
        newest_patch: 15,
        cri_tools: &["1.28.0"],
        cni: &["1.2.0"],
    },
    KubeRelease {
        minor: 29,
        newest_patch: 15,
        cri_tools: &["1.29.0"],
        cni: &["1.3.0"],
    },
    KubeRelease {
        minor: 30,
        newest_patch: 14,
        cri_tools: &["1.30.0", "1.30.1"],
        cni: &["1.4.0"],
    },
    KubeRelease {
        minor: 31,
        newest_patch: 14,
        cri_tools: &["1.31.0", "1.31.1"],
        cni: &["1.5.0", "1.5.1"],
    },
    KubeRelease {
        minor: 32,
        newest_patch: 10,
        cri_tools: &["1.32.0"],
        cni: &["1.6.0"],
    },
    KubeRelease {
        minor: 33,
        newest_patch: 6,
        cri_tools: &["1.33.0"],
        cni: &["1.6.0"],
    },
    KubeRelease {
        minor: 34,
        newest_patch: 2,
        cri_tools: &["1.34.0"],
        cni: &["1.7.1"],
    },
];

pub fn kube_release(minor: u32) -> Option<&'static KubeRelease> {
    KUBE_RELEASES.iter().find(|r| r.minor == minor)
}

/// docker-ce and docker-ce-cli versions on download.docker.com.
pub const DOCKER_VERSIONS: &[&str] = &[
    "26.1.4", "27.0.3", "27.1.2", "27.2.1", "27.3.1", "27.4.1", "27.5.1",
];
/// containerd.io versions on download.docker.com.
pub const CONTAINERD_IO_VERSIONS: &[&str] = &[
    "1.6.33", "1.7.19", "1.7.20", "1.7.21", "1.7.22", "1.7.23", "1.7.24", "1.7.25", "1.7.27",
];

/// Whether Docker built `version` of `package` for EL `el`: CentOS/RHEL 7 reached
/// its end of life in June 2024, and Docker's packaging stopped there: no
/// docker-ce 27 and no containerd.io 1.7 for el7 (docker/docker-ce-packaging#1028,
/// docker/containerd-packaging#372).
fn built_for_el(package: &str, version: &str, el: &str) -> bool {
    el != "7"
        || match package {
            "docker-ce" => version.starts_with("26."),
            "containerd.io" => version.starts_with("1.6."),
            _ => true,
        }
}
const BUILDX_VERSIONS: &[&str] = &["0.16.2", "0.17.1", "0.19.3"];
const COMPOSE_VERSIONS: &[&str] = &["2.29.1", "2.29.7", "2.32.4"];

/// The distribution archive of the Debian family: name, versions on
/// (Ubuntu 22.04, Ubuntu 20.04, Debian 12) (empty: not in that archive), preinstalled.
pub const DEB_ARCHIVE: &[(&str, [&str; 3], bool)] = &[
    // The load balancers (issue 15). Their program is always Debian 12's real build.
    (
        "haproxy",
        [
            "2.4.24-0ubuntu0.22.04.2",
            "2.0.33-0ubuntu0.1",
            "2.6.12-1+deb12u4",
        ],
        false,
    ),
    (
        "nginx",
        [
            "1.18.0-6ubuntu14.6",
            "1.18.0-0ubuntu1.7",
            "1.22.1-9+deb12u11",
        ],
        false,
    ),
    (
        "nginx-common",
        [
            "1.18.0-6ubuntu14.6",
            "1.18.0-0ubuntu1.7",
            "1.22.1-9+deb12u11",
        ],
        false,
    ),
    (
        "libnginx-mod-stream",
        [
            "1.18.0-6ubuntu14.6",
            "1.18.0-0ubuntu1.7",
            "1.22.1-9+deb12u11",
        ],
        false,
    ),
    ("apt", ["2.4.12", "2.0.10", "2.6.1"], true),
    (
        "dpkg",
        ["1.21.1ubuntu2.3", "1.19.7ubuntu3.2", "1.21.22"],
        true,
    ),
    (
        "bash",
        ["5.1-6ubuntu1.1", "5.0-6ubuntu1.2", "5.2.15-2+b7"],
        true,
    ),
    (
        "coreutils",
        ["8.32-4.1ubuntu1.2", "8.30-3ubuntu2", "9.1-1"],
        true,
    ),
    (
        "ca-certificates",
        ["20240203~22.04.1", "20240203~20.04.1", "20230311"],
        true,
    ),
    (
        "curl",
        [
            "7.81.0-1ubuntu1.18",
            "7.68.0-1ubuntu2.24",
            "7.88.1-10+deb12u8",
        ],
        true,
    ),
    (
        "gpg",
        ["2.2.27-3ubuntu2.1", "2.2.19-3ubuntu2.2", "2.2.40-1.1"],
        true,
    ),
    (
        "gnupg",
        ["2.2.27-3ubuntu2.1", "2.2.19-3ubuntu2.2", "2.2.40-1.1"],
        true,
    ),
    (
        "openssh-server",
        [
            "1:8.9p1-3ubuntu0.10",
            "1:8.2p1-4ubuntu0.11",
            "1:9.2p1-2+deb12u3",
        ],
        true,
    ),
    (
        "sudo",
        [
            "1.9.9-1ubuntu2.4",
            "1.8.31-1ubuntu1.5",
            "1.9.13p3-1+deb12u1",
        ],
        true,
    ),
    (
        "python3",
        ["3.10.6-1~22.04.1", "3.8.2-0ubuntu2", "3.11.2-1+b1"],
        true,
    ),
    (
        "systemd",
        [
            "249.11-0ubuntu3.12",
            "245.4-4ubuntu3.24",
            "252.30-1~deb12u2",
        ],
        true,
    ),
    (
        "iproute2",
        ["5.15.0-1ubuntu2", "5.5.0-1ubuntu1", "6.1.0-3"],
        true,
    ),
    (
        "util-linux",
        ["2.37.2-4ubuntu3.4", "2.34-0.1ubuntu9.6", "2.38.1-5+deb12u1"],
        true,
    ),
    (
        "mount",
        ["2.37.2-4ubuntu3.4", "2.34-0.1ubuntu9.6", "2.38.1-5+deb12u1"],
        true,
    ),
    (
        "tar",
        [
            "1.34+dfsg-1ubuntu0.1.22.04.2",
            "1.30+dfsg-7ubuntu0.20.04.4",
            "1.34+dfsg-1.2+deb12u1",
        ],
        true,
    ),
    (
        "lsb-release",
        ["11.1.0ubuntu4", "11.1.0ubuntu2", "12.0-1"],
        true,
    ),
    ("apt-transport-https", ["2.4.12", "2.0.10", "2.6.1"], false),
    (
        "gnupg2",
        ["2.2.27-3ubuntu2.1", "2.2.19-3ubuntu2.2", "2.2.40-1.1"],
        false,
    ),
    (
        "software-properties-common",
        ["0.99.22.9", "0.99.9.12", "0.99.30-4.1~deb12u1"],
        false,
    ),
    (
        "conntrack",
        ["1:1.4.6-2build2", "1:1.4.5-2", "1:1.4.7-1+b2"],
        false,
    ),
    (
        "socat",
        ["1.7.4.1-3ubuntu4", "1.7.3.3-2", "1.7.4.4-2"],
        false,
    ),
    (
        "ebtables",
        ["2.0.11-4build2", "2.0.11-3build1", "2.0.11-5"],
        false,
    ),
    (
        "ethtool",
        ["1:5.16-1ubuntu0.1", "1:5.4-1", "1:6.1-1"],
        false,
    ),
    (
        "iptables",
        ["1.8.7-1ubuntu5.2", "1.8.4-3ubuntu2.1", "1.8.9-2"],
        false,
    ),
    ("ipset", ["7.15-1build1", "7.5-1~exp1", "7.17-1"], false),
    (
        "ipvsadm",
        ["1:1.31-1build2", "1:1.31-1", "1:1.31-1+b1"],
        false,
    ),
    (
        "jq",
        ["1.6-2.1ubuntu3", "1.6-1ubuntu0.20.04.1", "1.6-2.1"],
        false,
    ),
    (
        "containerd",
        [
            "1.7.12-0ubuntu2~22.04.1",
            "1.7.12-0ubuntu2~20.04.1",
            "1.6.20~ds1-1+b1",
        ],
        false,
    ),
    (
        "runc",
        [
            "1.1.12-0ubuntu2~22.04.1",
            "1.1.12-0ubuntu2~20.04.1",
            "1.1.5+ds1-1+deb12u1",
        ],
        false,
    ),
];

/// The distribution archive of the Red Hat family: name, versions on (EL9, EL8, EL7)
/// (empty: not in that release), preinstalled.
pub const RPM_ARCHIVE: &[(&str, [&str; 3], bool)] = &[
    (
        "haproxy",
        ["2.4.22-4.el9", "1.8.27-5.el8", "1.5.18-9.el7_9.1"],
        false,
    ),
    (
        "nginx",
        [
            "1:1.20.1-22.el9",
            "1:1.14.1-9.module+el8.0.0+4108+af250afe",
            "",
        ],
        false,
    ),
    (
        "nginx-mod-stream",
        [
            "1:1.20.1-22.el9",
            "1:1.14.1-9.module+el8.0.0+4108+af250afe",
            "",
        ],
        false,
    ),
    (
        "rpm",
        ["4.16.1.3-29.el9", "4.14.3-31.el8", "4.11.3-48.el7_9"],
        true,
    ),
    ("dnf", ["4.14.0-9.el9", "4.7.0-20.el8", ""], true),
    (
        "yum",
        ["4.14.0-9.el9", "4.7.0-20.el8", "3.4.3-168.el7.centos"],
        true,
    ),
    (
        "bash",
        ["5.1.8-9.el9", "4.4.20-4.el8_6", "4.2.46-35.el7_9"],
        true,
    ),
    (
        "coreutils",
        ["8.32-35.el9", "8.30-15.el8", "8.22-24.el7_9.2"],
        true,
    ),
    (
        "ca-certificates",
        [
            "2024.2.69_v8.0.303-91.4.el9_4",
            "2023.2.60_v7.0.306-80.0.el8_8",
            "2023.2.60_v7.0.306-72.el7_9",
        ],
        true,
    ),
    (
        "curl",
        ["7.76.1-29.el9_4.1", "7.61.1-34.el8", "7.29.0-59.el7_9.2"],
        true,
    ),
    (
        "gnupg2",
        ["2.3.3-4.el9", "2.2.20-3.el8_6", "2.0.22-5.el7_5"],
        true,
    ),
    (
        "openssh-server",
        ["8.7p1-38.el9", "8.0p1-19.el8_9.2", "7.4p1-23.el7_9"],
        true,
    ),
    (
        "sudo",
        ["1.9.5p2-10.el9_3", "1.9.5p2-1.el8_9", "1.8.23-10.el7_9.3"],
        true,
    ),
    (
        "python3",
        ["3.9.18-3.el9_4.3", "3.6.8-56.el8_9.3", "3.6.8-21.el7_9"],
        true,
    ),
    (
        "systemd",
        ["252-32.el9_4.7", "239-78.el8", "219-78.el7_9.9"],
        true,
    ),
    (
        "iproute",
        ["6.2.0-6.el9_4", "6.2.0-5.el8_9", "4.11.0-30.el7"],
        true,
    ),
    (
        "util-linux",
        ["2.37.4-18.el9", "2.32.1-44.el8_9.1", "2.23.2-65.el7_9.1"],
        true,
    ),
    ("tar", ["1.34-6.el9_4.1", "1.30-9.el8", "1.26-35.el7"], true),
    (
        "dnf-plugins-core",
        ["4.3.0-13.el9", "4.0.21-25.el8", ""],
        true,
    ),
    (
        "yum-utils",
        ["4.3.0-13.el9", "4.0.21-25.el8", "1.1.31-54.el7_8"],
        false,
    ),
    (
        "python3-dnf-plugin-versionlock",
        ["4.3.0-13.el9", "4.0.21-25.el8", ""],
        false,
    ),
    ("yum-plugin-versionlock", ["", "", "1.1.31-54.el7_8"], false),
    (
        "conntrack-tools",
        ["1.4.7-2.el9", "1.4.4-11.el8", "1.4.4-7.el7"],
        false,
    ),
    (
        "socat",
        ["1.7.4.1-5.el9_4.2", "1.7.4.1-1.el8", "1.7.3.2-2.el7"],
        false,
    ),
    (
        "ethtool",
        ["2:6.2-1.el9", "2:5.13-2.el8", "2:4.8-10.el7"],
        false,
    ),
    (
        "iptables-nft",
        ["1.8.10-2.el9", "1.8.5-11.el8_9", ""],
        false,
    ),
    ("iptables", ["", "1.8.5-11.el8_9", "1.4.21-35.el7"], false),
    ("ebtables", ["", "", "2.0.10-16.el7"], false),
    ("iproute-tc", ["6.2.0-6.el9_4", "6.2.0-5.el8_9", ""], false),
    ("ipset", ["7.11-8.el9", "7.1-1.el8", "7.1-1.el7"], false),
    ("ipvsadm", ["1.31-6.el9", "1.31-1.el8", "1.27-8.el7"], false),
    ("jq", ["1.6-16.el9", "1.6-8.el8", ""], false),
    (
        "container-selinux",
        [
            "3:2.229.0-1.el9",
            "2:2.229.0-2.module+el8.10.0+1854+1b6c3226",
            "2:2.119.2-1.911c772.el7_8",
        ],
        false,
    ),
    (
        "device-mapper-persistent-data",
        ["0.9.0-13.el9", "0.9.0-7.el8", "0.8.5-3.el7_9.2"],
        false,
    ),
    (
        "lvm2",
        [
            "9:2.03.23-2.el9",
            "8:2.03.14-13.el8_9",
            "7:2.02.187-6.el7_9.5",
        ],
        false,
    ),
];

/// The Debian family's newer archives: name, versions on (Ubuntu 24.04, Ubuntu 26.04,
/// Debian 13, Ubuntu 16.04) (empty: not in that archive), preinstalled. Ubuntu 16.04 is
/// here only to be refused: k8sup does not install on it.
pub const DEB_ARCHIVE_NEWER: &[(&str, [&str; 4], bool)] = &[
    (
        "haproxy",
        [
            "2.8.16-0ubuntu0.24.04.1",
            "3.2.4-1",
            "3.0.11-1+deb13u1",
            "1.6.3-1ubuntu0.3",
        ],
        false,
    ),
    (
        "nginx",
        [
            "1.24.0-2ubuntu7.5",
            "1.28.0-2ubuntu1",
            "1.26.3-3+deb13u1",
            "1.10.3-0ubuntu0.16.04.5",
        ],
        false,
    ),
    (
        "nginx-common",
        [
            "1.24.0-2ubuntu7.5",
            "1.28.0-2ubuntu1",
            "1.26.3-3+deb13u1",
            "1.10.3-0ubuntu0.16.04.5",
        ],
        false,
    ),
    (
        "libnginx-mod-stream",
        [
            "1.24.0-2ubuntu7.5",
            "1.28.0-2ubuntu1",
            "1.26.3-3+deb13u1",
            "",
        ],
        false,
    ),
    ("apt", ["2.8.3", "3.1.6ubuntu2", "3.0.3", "1.2.35"], true),
    (
        "dpkg",
        [
            "1.22.6ubuntu6.5",
            "1.22.21ubuntu3",
            "1.22.21",
            "1.18.4ubuntu1.7",
        ],
        true,
    ),
    (
        "bash",
        [
            "5.2.21-2ubuntu4",
            "5.3-1ubuntu1",
            "5.2.37-2+b5",
            "4.3-14ubuntu1.4",
        ],
        true,
    ),
    (
        "coreutils",
        [
            "9.4-3ubuntu6.1",
            "9.5-1ubuntu2",
            "9.7-3",
            "8.25-2ubuntu3~16.04",
        ],
        true,
    ),
    (
        "ca-certificates",
        ["20240203", "20250419", "20250419", "20210119~16.04.1"],
        true,
    ),
    (
        "curl",
        [
            "8.5.0-2ubuntu10.6",
            "8.14.1-2ubuntu1",
            "8.14.1-2+deb13u2",
            "7.47.0-1ubuntu2.19",
        ],
        true,
    ),
    (
        "gpg",
        [
            "2.4.4-2ubuntu17.3",
            "2.4.8-2ubuntu2",
            "2.4.7-21+deb13u1",
            "",
        ],
        true,
    ),
    (
        "gnupg",
        [
            "2.4.4-2ubuntu17.3",
            "2.4.8-2ubuntu2",
            "2.4.7-21+deb13u1",
            "1.4.20-1ubuntu3.3",
        ],
        true,
    ),
    (
        "openssh-server",
        [
            "1:9.6p1-3ubuntu13.14",
            "1:10.0p1-5ubuntu5",
            "1:10.0p1-7",
            "1:7.2p2-4ubuntu2.10",
        ],
        true,
    ),
    (
        "sudo",
        [
            "1.9.15p5-3ubuntu5.24.04.1",
            "1.9.17p2-1ubuntu1",
            "1.9.16p2-3",
            "1.8.16-0ubuntu1.10",
        ],
        true,
    ),
    (
        "python3",
        ["3.12.3-0ubuntu2", "3.13.7-1", "3.13.5-1", "3.5.1-3"],
        true,
    ),
    (
        "systemd",
        [
            "255.4-1ubuntu8.11",
            "258.1-2ubuntu1",
            "257.9-1~deb13u1",
            "229-4ubuntu21.31",
        ],
        true,
    ),
    (
        "iproute2",
        [
            "6.1.0-1ubuntu6.2",
            "6.16.0-1ubuntu1",
            "6.15.0-1",
            "4.3.0-1ubuntu3.16.04.5",
        ],
        true,
    ),
    (
        "util-linux",
        [
            "2.39.3-9ubuntu6.3",
            "2.41-4ubuntu4",
            "2.41-5",
            "2.27.1-6ubuntu3.10",
        ],
        true,
    ),
    (
        "mount",
        [
            "2.39.3-9ubuntu6.3",
            "2.41-4ubuntu4",
            "2.41-5",
            "2.27.1-6ubuntu3.10",
        ],
        true,
    ),
    (
        "tar",
        [
            "1.35+dfsg-3build1",
            "1.35+dfsg-3.1",
            "1.35+dfsg-3.1",
            "1.28-2.1ubuntu0.2",
        ],
        true,
    ),
    (
        "lsb-release",
        ["12.0-2", "12.1-1", "12.1-1", "9.20160110ubuntu0.2"],
        true,
    ),
    (
        "apt-transport-https",
        ["2.8.3", "3.1.6ubuntu2", "3.0.3", "1.2.35"],
        false,
    ),
    (
        "gnupg2",
        [
            "2.4.4-2ubuntu17.3",
            "2.4.8-2ubuntu2",
            "2.4.7-21+deb13u1",
            "2.1.11-6ubuntu2.1",
        ],
        false,
    ),
    (
        "software-properties-common",
        ["0.99.49.3", "0.114", "0.111-1", "0.96.20.10"],
        false,
    ),
    (
        "conntrack",
        ["1:1.4.8-1ubuntu1", "1:1.4.8-2", "1:1.4.8-2", "1:1.4.3-3"],
        false,
    ),
    (
        "socat",
        ["1.8.0.0-4build3", "1.8.0.3-1", "1.8.0.3-1", "1.7.3.1-1"],
        false,
    ),
    (
        "ebtables",
        [
            "2.0.11-6build1",
            "2.0.11-6",
            "2.0.11-6",
            "2.0.10.4-3.4ubuntu2.16.04.2",
        ],
        false,
    ),
    (
        "ethtool",
        ["1:6.7-1build1", "1:6.15-3", "1:6.14.2-1", "1:4.5-1"],
        false,
    ),
    (
        "iptables",
        [
            "1.8.10-3ubuntu2",
            "1.8.11-2ubuntu1",
            "1.8.11-2",
            "1.6.0-2ubuntu3",
        ],
        false,
    ),
    (
        "ipset",
        ["7.19-1ubuntu2", "7.23-1", "7.23-1", "6.29-1"],
        false,
    ),
    (
        "ipvsadm",
        ["1:1.31-1build2", "1:1.31-1+b2", "1:1.31-1+b2", "1:1.28-3"],
        false,
    ),
    (
        "jq",
        [
            "1.7.1-3build1",
            "1.8.1-3",
            "1.7.1-6+deb13u1",
            "1.5+dfsg-1ubuntu0.1",
        ],
        false,
    ),
    (
        "containerd",
        [
            "1.7.28-0ubuntu1~24.04.1",
            "2.1.4-0ubuntu1",
            "1.7.24~ds1-6+b4",
            "1.2.6-0ubuntu1~16.04.6",
        ],
        false,
    ),
    (
        "runc",
        [
            "1.3.0-0ubuntu2~24.04.1",
            "1.3.0-0ubuntu2",
            "1.1.15+ds1-2+b4",
            "1.0.0~rc7+git20190403.029124da-0ubuntu1~16.04.4",
        ],
        false,
    ),
];

/// The newer RPM distributions' archives: name, versions on (EL10: Rocky and Alma 10,
/// openEuler 22.03 LTS SP4, openEuler 24.03 LTS SP1, Kylin V10 SP3) (empty: not there),
/// preinstalled. openEuler and Kylin have no `iptables-nft` split, EL10 no legacy
/// `iptables`; openEuler and Kylin carry their own `containerd` (not `containerd.io`).
pub const RPM_ARCHIVE_NEWER: &[(&str, [&str; 4], bool)] = &[
    (
        "haproxy",
        [
            "3.0.5-4.el10",
            "2.4.8-6.oe2203sp4",
            "2.9.5-2.oe2403sp1",
            "2.0.14-3.ky10",
        ],
        false,
    ),
    (
        "nginx",
        [
            "2:1.26.3-1.el10",
            "1:1.21.5-9.oe2203sp4",
            "1:1.24.0-5.oe2403sp1",
            "1:1.16.1-10.ky10",
        ],
        false,
    ),
    (
        "nginx-mod-stream",
        [
            "2:1.26.3-1.el10",
            "1:1.21.5-9.oe2203sp4",
            "1:1.24.0-5.oe2403sp1",
            "1:1.16.1-10.ky10",
        ],
        false,
    ),
    (
        "rpm",
        [
            "4.19.1.1-13.el10",
            "4.17.0-44.oe2203sp4",
            "4.18.2-23.oe2403sp1",
            "4.15.1-45.p22.ky10",
        ],
        true,
    ),
    (
        "dnf",
        [
            "4.20.0-12.el10",
            "4.14.0-27.oe2203sp4",
            "4.16.2-14.oe2403sp1",
            "4.2.23-18.ky10",
        ],
        true,
    ),
    (
        "yum",
        [
            "4.20.0-12.el10",
            "4.14.0-27.oe2203sp4",
            "4.16.2-14.oe2403sp1",
            "4.2.23-18.ky10",
        ],
        true,
    ),
    (
        "bash",
        [
            "5.2.26-6.el10",
            "5.1.8-10.oe2203sp4",
            "5.2.15-13.oe2403sp1",
            "5.0.17-3.ky10",
        ],
        true,
    ),
    (
        "coreutils",
        [
            "9.5-6.el10",
            "9.0-11.oe2203sp4",
            "9.4-10.oe2403sp1",
            "8.32-5.ky10",
        ],
        true,
    ),
    (
        "ca-certificates",
        [
            "2024.2.69_v8.0.303-102.3.el10",
            "2024.2.69-1.oe2203sp4",
            "2024.2.69-1.oe2403sp1",
            "2020.2.41-8.p04.ky10",
        ],
        true,
    ),
    (
        "curl",
        [
            "8.9.1-5.el10",
            "7.79.1-37.oe2203sp4",
            "8.4.0-13.oe2403sp1",
            "7.71.1-29.p40.ky10",
        ],
        true,
    ),
    (
        "gnupg2",
        [
            "2.4.5-2.el10",
            "2.3.4-7.oe2203sp4",
            "2.4.3-6.oe2403sp1",
            "2.2.20-8.ky10",
        ],
        true,
    ),
    (
        "openssh-server",
        [
            "9.9p1-7.el10",
            "8.8p1-34.oe2203sp4",
            "9.6p1-3.oe2403sp1",
            "8.2p1-9.p22.ky10",
        ],
        true,
    ),
    (
        "sudo",
        [
            "1.9.15-8.p5.el10_0",
            "1.9.8p2-16.oe2203sp4",
            "1.9.15p5-6.oe2403sp1",
            "1.9.2-11.p09.ky10",
        ],
        true,
    ),
    (
        "python3",
        [
            "3.12.9-1.el10",
            "3.9.9-35.oe2203sp4",
            "3.11.6-10.oe2403sp1",
            "3.7.9-23.p05.ky10",
        ],
        true,
    ),
    (
        "systemd",
        [
            "257-9.el10_0.1",
            "249-93.oe2203sp4",
            "255-29.oe2403sp1",
            "245-5.p48.ky10",
        ],
        true,
    ),
    (
        "iproute",
        [
            "6.11.0-1.el10",
            "5.15.0-20.oe2203sp4",
            "6.6.0-4.oe2403sp1",
            "5.5.0-15.p07.ky10",
        ],
        true,
    ),
    (
        "util-linux",
        [
            "2.40.2-10.el10",
            "2.37.2-37.oe2203sp4",
            "2.39.1-16.oe2403sp1",
            "2.35.2-8.p09.ky10",
        ],
        true,
    ),
    (
        "tar",
        [
            "1.35-7.el10",
            "1.34-6.oe2203sp4",
            "1.35-2.oe2403sp1",
            "1.32-3.ky10",
        ],
        true,
    ),
    (
        "dnf-plugins-core",
        [
            "4.7.0-8.el10",
            "4.3.1-4.oe2203sp4",
            "4.4.4-4.oe2403sp1",
            "4.0.17-8.ky10",
        ],
        true,
    ),
    ("yum-utils", ["4.7.0-8.el10", "", "", ""], false),
    (
        "python3-dnf-plugin-versionlock",
        [
            "4.7.0-8.el10",
            "4.3.1-4.oe2203sp4",
            "4.4.4-4.oe2403sp1",
            "4.0.17-8.ky10",
        ],
        false,
    ),
    (
        "conntrack-tools",
        [
            "1.4.8-3.el10",
            "1.4.6-7.oe2203sp4",
            "1.4.7-2.oe2403sp1",
            "1.4.6-2.ky10",
        ],
        false,
    ),
    (
        "socat",
        [
            "1.7.4.4-8.el10",
            "1.7.4.1-2.oe2203sp4",
            "1.7.4.4-2.oe2403sp1",
            "1.7.3.2-8.ky10",
        ],
        false,
    ),
    (
        "ethtool",
        [
            "2:6.11-1.el10",
            "2:5.15-4.oe2203sp4",
            "2:6.6-2.oe2403sp1",
            "2:5.6-1.ky10",
        ],
        false,
    ),
    ("iptables-nft", ["1.8.11-9.el10", "", "", ""], false),
    (
        "iptables",
        [
            "",
            "1.8.7-19.oe2203sp4",
            "1.8.10-4.oe2403sp1",
            "1.8.4-15.p04.ky10",
        ],
        false,
    ),
    (
        "ebtables",
        [
            "",
            "2.0.11-11.oe2203sp4",
            "2.0.11-12.oe2403sp1",
            "2.0.10-33.ky10",
        ],
        false,
    ),
    ("iproute-tc", ["6.11.0-1.el10", "", "", ""], false),
    (
        "ipset",
        [
            "7.21-4.el10",
            "7.15-2.oe2203sp4",
            "7.19-2.oe2403sp1",
            "7.3-8.ky10",
        ],
        false,
    ),
    (
        "ipvsadm",
        [
            "1.31-15.el10",
            "1.31-5.oe2203sp4",
            "1.31-6.oe2403sp1",
            "1.31-2.ky10",
        ],
        false,
    ),
    (
        "jq",
        [
            "1.7.1-8.el10",
            "1.6-4.oe2203sp4",
            "1.7.1-3.oe2403sp1",
            "1.6-2.ky10",
        ],
        false,
    ),
    (
        "container-selinux",
        [
            "4:2.235.0-2.el10_0",
            "2:2.138.0-8.oe2203sp4",
            "2:2.138.0-10.oe2403sp1",
            "2:2.138.0-2.p01.ky10",
        ],
        false,
    ),
    (
        "device-mapper-persistent-data",
        [
            "1.1.0-2.el10",
            "0.10.0-2.oe2203sp4",
            "1.0.12-1.oe2403sp1",
            "0.8.5-4.ky10",
        ],
        false,
    ),
    (
        "lvm2",
        [
            "9:2.03.28-6.el10",
            "8:2.03.14-19.oe2203sp4",
            "8:2.03.21-8.oe2403sp1",
            "8:2.03.09-2.ky10",
        ],
        false,
    ),
    (
        "containerd",
        [
            "",
            "1.6.22-15.oe2203sp4",
            "1.6.22-20.oe2403sp1",
            "1.2.0-301.0.ky10",
        ],
        false,
    ),
    (
        "runc",
        [
            "",
            "1.1.8-21.oe2203sp4",
            "1.1.8-22.oe2403sp1",
            "1.0.0.rc3-311.ky10",
        ],
        false,
    ),
];

/// Packages built for every architecture at once.
const ARCH_INDEPENDENT: &[&str] = &[
    "ca-certificates",
    "apt-transport-https",
    "gnupg",
    "gnupg2",
    "lsb-release",
    "software-properties-common",
    "dnf-plugins-core",
    "yum-utils",
    "python3-dnf-plugin-versionlock",
    "yum-plugin-versionlock",
    "container-selinux",
];

/// A package version one repository offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    pub name: String,
    /// The full version as the package manager shows it (with epoch when it has one).
    pub version: String,
    /// `amd64`/`all` (deb) or `x86_64`/`noarch` (rpm).
    pub arch: String,
}

/// The package architecture of `name` on a host of `arch`.
pub fn package_arch(name: &str, format: Format, arch: Arch) -> String {
    match (format, ARCH_INDEPENDENT.contains(&name)) {
        (Format::Deb, true) => "all".into(),
        (Format::Rpm, true) => "noarch".into(),
        (Format::Deb, false) => arch.as_str().into(),
        (Format::Rpm, false) => arch.machine().into(),
    }
}

/// Where a distro's archive is: the table of its release generation and its column.
enum ArchiveColumn {
    /// [`DEB_ARCHIVE`] / [`RPM_ARCHIVE`].
    Older(usize),
    /// [`DEB_ARCHIVE_NEWER`] / [`RPM_ARCHIVE_NEWER`].
    Newer(usize),
}

fn archive_column(distro: Distro) -> ArchiveColumn {
    use ArchiveColumn::{Newer, Older};
    match distro {
        Distro::Ubuntu2204 | Distro::Rocky9 => Older(0),
        Distro::Ubuntu2004 | Distro::Rocky8 => Older(1),
        Distro::Debian12 | Distro::Centos7 => Older(2),
        Distro::Ubuntu2404 | Distro::Rocky10 | Distro::Alma10 => Newer(0),
        Distro::Ubuntu2604 | Distro::Openeuler2203 => Newer(1),
        Distro::Debian13 | Distro::Openeuler2403 => Newer(2),
        Distro::Ubuntu1604 | Distro::Kylinv10 => Newer(3),
    }
}

/// Every package of the distribution archive of `distro`: (name, version, preinstalled).
fn archive(distro: Distro, format: Format) -> Vec<(&'static str, &'static str, bool)> {
    fn pick<const N: usize>(
        table: &'static [(&'static str, [&'static str; N], bool)],
        col: usize,
    ) -> Vec<(&'static str, &'static str, bool)> {
        table
            .iter()
            .filter(|(_, v, _)| !v[col].is_empty())
            .map(|(n, v, pre)| (*n, v[col], *pre))
            .collect()
    }
    match (archive_column(distro), format) {
        (ArchiveColumn::Older(c), Format::Deb) => pick(DEB_ARCHIVE, c),
        (ArchiveColumn::Older(c), Format::Rpm) => pick(RPM_ARCHIVE, c),
        (ArchiveColumn::Newer(c), Format::Deb) => pick(DEB_ARCHIVE_NEWER, c),
        (ArchiveColumn::Newer(c), Format::Rpm) => pick(RPM_ARCHIVE_NEWER, c),
    }
}

/// Packages a fresh host of `distro` has installed, with their versions.
pub fn preinstalled(distro: Distro, format: Format) -> Vec<(String, String)> {
    archive(distro, format)
        .into_iter()
        .filter(|(_, _, pre)| *pre)
        .map(|(n, v, _)| (n.to_string(), v.to_string()))
        .collect()
}

/// The el release of a Red Hat family distro (`$releasever`).
pub fn releasever(distro: Distro) -> &'static str {
    match distro {
        Distro::Rocky9 => "9",
        Distro::Rocky8 => "8",
        Distro::Centos7 => "7",
        Distro::Rocky10 | Distro::Alma10 => "10",
        // openEuler's $releasever is its own release name, not a CentOS number.
        Distro::Openeuler2203 => "22.03LTS_SP4",
        Distro::Openeuler2403 => "24.03LTS_SP1",
        Distro::Kylinv10 => "10",
        Distro::Ubuntu2204 => "22.04",
        Distro::Ubuntu2004 => "20.04",
        Distro::Debian12 => "12",
        Distro::Ubuntu2404 => "24.04",
        Distro::Ubuntu2604 => "26.04",
        Distro::Debian13 => "13",
        Distro::Ubuntu1604 => "16.04",
    }
}

/// The codename of a Debian family distro.
pub fn codename(distro: Distro) -> &'static str {
    match distro {
        Distro::Ubuntu2204 => "jammy",
        Distro::Ubuntu2004 => "focal",
        Distro::Debian12 => "bookworm",
        Distro::Ubuntu2404 => "noble",
        Distro::Ubuntu2604 => "resolute",
        Distro::Debian13 => "trixie",
        Distro::Ubuntu1604 => "xenial",
        _ => "",
    }
}

/// Suites download.docker.com publishes for a distribution: (suite, version id).
fn docker_suite(docker_distro: &str, suite: &str) -> Option<&'static str> {
    let table: &[(&str, &str, &'static str)] = &[
        ("ubuntu", "focal", "ubuntu.20.04~focal"),
        ("ubuntu", "jammy", "ubuntu.22.04~jammy"),
        ("ubuntu", "noble", "ubuntu.24.04~noble"),
        ("debian", "bullseye", "debian.11~bullseye"),
        ("debian", "bookworm", "debian.12~bookworm"),
        ("debian", "trixie", "debian.13~trixie"),
        ("ubuntu", "resolute", "ubuntu.26.04~resolute"),
    ];
    table
        .iter()
        .find(|(d, s, _)| *d == docker_distro && *s == suite)
        .map(|(_, _, tag)| *tag)
}

/// The release directory of a docker rpm repository URL (`.../linux/centos/8/x86_64/stable`
/// gives `8`): what its packages are built for (`el8`), whatever the host's own release.
pub fn docker_rpm_release(url: &str) -> Option<String> {
    let (_, path) = split_url(url)?;
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let at = segs
        .windows(2)
        .position(|w| w[0] == "linux" && ["centos", "rhel"].contains(&w[1]))?;
    segs.get(at + 2)
        .filter(|r| DOCKER_RPM_RELEASES.contains(r))
        .map(|r| r.to_string())
}

/// The glibc a package built for an EL release (`3:27.5.1-1.el9`: EL9) needs: the
/// version that release ships. None: not an `.elN` build.
pub fn el_glibc(evr: &str) -> Option<(u32, u32)> {
    let el = evr.rsplit(".el").next().filter(|_| evr.contains(".el"))?;
    let major: String = el.chars().take_while(|c| c.is_ascii_digit()).collect();
    match major.as_str() {
        "7" => Some((2, 17)),
        "8" => Some((2, 28)),
        "9" => Some((2, 34)),
        "10" => Some((2, 39)),
        _ => None,
    }
}

/// Whether a docker deb repository publishes `suite` (a codename).
pub fn docker_has_suite(docker_distro: &str, suite: &str) -> bool {
    docker_suite(docker_distro, suite).is_some()
}

/// Every package version a repository offers to a host. `suite` is the apt suite (the
/// codename for docker's deb repository); for rpm, docker's release directory (empty:
/// the host's `$releasever`) and otherwise ignored.
pub fn offers(
    origin: &Origin,
    format: Format,
    distro: Distro,
    arch: Arch,
    suite: &str,
) -> Vec<Offer> {
    let mut out = Vec::new();
    let mut add = |name: &str, version: String| {
        out.push(Offer {
            name: name.to_string(),
            version,
            arch: package_arch(name, format, arch),
        })
    };
    match origin {
        Origin::DistroArchive => {
            for (name, version, _) in archive(distro, format) {
                add(name, version.to_string());
            }
        }
        Origin::Kubernetes { minor } => {
            let Some(rel) = kube_release(*minor) else {
                return out;
            };
            let rev = |v: &str| match format {
                Format::Deb => format!("{v}-1.1"),
                Format::Rpm => format!("{v}-150500.1.1"),
            };
            for patch in 0..=rel.newest_patch {
                let v = rev(&format!("1.{minor}.{patch}"));
                for name in ["kubelet", "kubeadm", "kubectl"] {
                    add(name, v.clone());
                }
            }
            for v in rel.cri_tools {
                add("cri-tools", rev(v));
            }
            for v in rel.cni {
                add("kubernetes-cni", rev(v));
            }
        }
        Origin::Docker {
            distro: docker_distro,
        } => {
            // For rpm, `suite` is the repository's release directory when known.
            let el = if format == Format::Rpm && !suite.is_empty() {
                suite
            } else {
                releasever(distro)
            };
            match format {
                Format::Deb => {
                    let Some(tag) = docker_suite(docker_distro, suite) else {
                        return out;
                    };
                    for v in DOCKER_VERSIONS {
                        add("docker-ce", format!("5:{v}-1~{tag}"));
                        add("docker-ce-cli", format!("5:{v}-1~{tag}"));
                    }
                    for v in CONTAINERD_IO_VERSIONS {
                        add("containerd.io", format!("{v}-1"));
                    }
                    for v in BUILDX_VERSIONS {
                        add("docker-buildx-plugin", format!("{v}-1~{tag}"));
                    }
                    for v in COMPOSE_VERSIONS {
                        add("docker-compose-plugin", format!("{v}-1~{tag}"));
                    }
                }
                Format::Rpm => {
                    for v in DOCKER_VERSIONS
                        .iter()
                        .filter(|v| built_for_el("docker-ce", v, el))
                    {
                        add("docker-ce", format!("3:{v}-1.el{el}"));
                        add("docker-ce-cli", format!("1:{v}-1.el{el}"));
                    }
                    let containerd = CONTAINERD_IO_VERSIONS
                        .iter()
                        .filter(|v| built_for_el("containerd.io", v, el));
                    for v in containerd {
                        add("containerd.io", format!("{v}-3.1.el{el}"));
                    }
                    for v in BUILDX_VERSIONS {
                        add("docker-buildx-plugin", format!("{v}-1.el{el}"));
                    }
                    for v in COMPOSE_VERSIONS {
                        add("docker-compose-plugin", format!("{v}-1.el{el}"));
                    }
                }
            }
        }
    }
    out
}

/// What a package needs installed with it (the real packages' Depends/Requires, as far
/// as an installer can notice them).
pub fn depends(name: &str, format: Format, distro: Distro) -> Vec<&'static str> {
    match (name, format) {
        ("kubelet", Format::Deb) => vec![
            "conntrack",
            "ebtables",
            "ethtool",
            "iptables",
            "socat",
            "kubernetes-cni",
        ],
        ("kubelet", Format::Rpm) => {
            let mut v = vec!["conntrack-tools", "ethtool", "socat", "kubernetes-cni"];
            v.push(
                if matches!(distro, Distro::Rocky9 | Distro::Rocky10 | Distro::Alma10) {
                    "iptables-nft"
                } else {
                    "iptables"
                },
            );
            v
        }
        ("kubeadm", _) => vec!["cri-tools"],
        ("docker-ce", _) => vec!["containerd.io", "docker-ce-cli"],
        ("containerd", Format::Deb) => vec!["runc"],
        ("nginx", Format::Deb) => vec!["nginx-common"],
        ("libnginx-mod-stream", Format::Deb) | ("nginx-mod-stream", Format::Rpm) => {
            vec!["nginx"]
        }
        ("python3-dnf-plugin-versionlock", _) | ("yum-utils", _) => vec![],
        _ => vec![],
    }
}

/// Packages that cannot be installed together with `name` (installing it removes them).
pub fn conflicts(name: &str) -> &'static [&'static str] {
    match name {
        "containerd.io" => &["containerd", "runc"],
        "containerd" | "runc" => &["containerd.io"],
        _ => &[],
    }
}

/// The one-line description `dpkg -l`, `apt-cache show` and `dnf info` print.
pub fn summary(name: &str) -> String {
    let known = match name {
        "kubelet" => "Node agent for Kubernetes clusters",
        "kubeadm" => "Command-line utility for administering a Kubernetes cluster",
        "kubectl" => "Command-line utility for interacting with a Kubernetes cluster",
        "cri-tools" => "Command-line utility for interacting with a container runtime",
        "kubernetes-cni" => "Binaries required to provision kubernetes container networking",
        "containerd.io" => "An open and reliable container runtime",
        "containerd" => "daemon to control runC",
        "haproxy" => "fast and reliable load balancing reverse proxy",
        "nginx" => "small, powerful, scalable web/proxy server",
        "nginx-common" => "small, powerful, scalable web/proxy server - common files",
        "libnginx-mod-stream" | "nginx-mod-stream" => "Stream module for Nginx",
        "runc" => "Open Container Project - runtime",
        "docker-ce" => "Docker: the open-source application container engine",
        "docker-ce-cli" => "Docker CLI: the open-source application container engine",
        "docker-buildx-plugin" => "Docker Buildx cli plugin.",
        "docker-compose-plugin" => "Docker Compose (V2) plugin for the Docker CLI.",
        "conntrack" | "conntrack-tools" => "Program to modify the conntrack tables",
        "socat" => "multipurpose relay for bidirectional data transfer",
        "ebtables" => "Ethernet bridge frame table administration",
        "ethtool" => "display or change Ethernet device settings",
        "iptables" | "iptables-nft" => "administration tools for packet filtering and NAT",
        "apt-transport-https" => "transitional package for https support",
        "ca-certificates" => "Common CA certificates",
        "curl" => "command line tool for transferring data with URL syntax",
        "gpg" | "gnupg" | "gnupg2" => "GNU Privacy Guard -- minimalist public key operations",
        "python3-dnf-plugin-versionlock" | "yum-plugin-versionlock" => "Package versionlock plugin",
        _ => "",
    };
    if known.is_empty() {
        format!("{name} package")
    } else {
        known.to_string()
    }
}

/// The GPG key id a repository signs with (what apt names in NO_PUBKEY).
pub fn signing_key(origin: &Origin) -> &'static str {
    match origin {
        Origin::Kubernetes { .. } => "234654DA9A296436",
        Origin::Docker { .. } => "7EA0A9C3F273FCD8",
        Origin::DistroArchive => "871920D1991BC93C",
    }
}

/// How the real repository is usually written, for output lines.
pub fn describe(origin: &Origin, format: Format) -> String {
    match (origin, format) {
        (Origin::Kubernetes { minor }, Format::Deb) => {
            format!("https://pkgs.k8s.io/core:/stable:/v1.{minor}/deb")
        }
        (Origin::Kubernetes { minor }, Format::Rpm) => {
            format!("https://pkgs.k8s.io/core:/stable:/v1.{minor}/rpm")
        }
        (Origin::Docker { distro }, _) => format!("https://download.docker.com/linux/{distro}"),
        (Origin::DistroArchive, _) => "distribution archive".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_and_mirror_layouts_are_recognised() {
        let k = Identity::Known(Origin::Kubernetes { minor: 30 });
        assert_eq!(
            identify("https://pkgs.k8s.io/core:/stable:/v1.30/deb/", Format::Deb),
            k
        );
        assert_eq!(
            identify(
                "https://prod-cdn.packages.k8s.io/repositories/isv:/kubernetes:/core:/stable:/v1.30/deb/",
                Format::Deb
            ),
            k
        );
        assert_eq!(
            identify(
                "https://mirrors.example.cn/kubernetes-new/core/stable/v1.30/deb/",
                Format::Deb
            ),
            k
        );
        assert_eq!(
            identify("https://pkgs.k8s.io/core:/stable:/v1.30/rpm/", Format::Rpm),
            Identity::Known(Origin::Kubernetes { minor: 30 })
        );
        assert_eq!(
            identify("https://download.docker.com/linux/ubuntu", Format::Deb),
            Identity::Known(Origin::Docker {
                distro: "ubuntu".into()
            })
        );
        assert_eq!(
            identify(
                "https://download.docker.com/linux/centos/9/x86_64/stable",
                Format::Rpm
            ),
            Identity::Known(Origin::Docker {
                distro: "centos".into()
            })
        );
        assert_eq!(
            identify("http://archive.ubuntu.com/ubuntu", Format::Deb),
            Identity::Known(Origin::DistroArchive)
        );
    }

    #[test]
    fn unknown_minor_is_a_404_and_unknown_host_unreachable() {
        assert_eq!(
            identify("https://pkgs.k8s.io/core:/stable:/v1.99/deb/", Format::Deb),
            Identity::MissingPath {
                host: "pkgs.k8s.io".into()
            }
        );
        assert_eq!(
            identify("https://apt.kubernetes.io/", Format::Deb),
            Identity::MissingPath {
                host: "apt.kubernetes.io".into()
            }
        );
        assert_eq!(
            identify("https://example.com/repo", Format::Deb),
            Identity::Unreachable {
                host: "example.com".into()
            }
        );
    }

    #[test]
    fn kubernetes_repository_offers_one_minor_only() {
        let o = offers(
            &Origin::Kubernetes { minor: 30 },
            Format::Deb,
            Distro::Ubuntu2204,
            Arch::Amd64,
            "/",
        );
        assert!(o
            .iter()
            .any(|o| o.name == "kubelet" && o.version == "1.30.4-1.1"));
        assert!(o
            .iter()
            .any(|o| o.name == "kubelet" && o.version == "1.30.14-1.1"));
        assert!(!o.iter().any(|o| o.version.starts_with("1.31")));
        let r = offers(
            &Origin::Kubernetes { minor: 30 },
            Format::Rpm,
            Distro::Rocky9,
            Arch::Arm64,
            "",
        );
        assert!(r.iter().any(|o| o.name == "kubeadm"
            && o.version == "1.30.4-150500.1.1"
            && o.arch == "aarch64"));
    }

    #[test]
    fn docker_versions_name_the_suite() {
        let o = offers(
            &Origin::Docker {
                distro: "ubuntu".into(),
            },
            Format::Deb,
            Distro::Ubuntu2204,
            Arch::Amd64,
            "jammy",
        );
        assert!(o
            .iter()
            .any(|o| o.name == "docker-ce" && o.version == "5:27.3.1-1~ubuntu.22.04~jammy"));
        assert!(o
            .iter()
            .any(|o| o.name == "containerd.io" && o.version == "1.7.22-1"));
        assert!(offers(
            &Origin::Docker {
                distro: "ubuntu".into()
            },
            Format::Deb,
            Distro::Ubuntu2204,
            Arch::Amd64,
            "bookworm"
        )
        .is_empty());
    }

    #[test]
    fn docker_rpm_repositories_exist_for_el_7_to_10_only() {
        let docker = |release: &str| {
            identify(
                &format!("https://download.docker.com/linux/centos/{release}/aarch64/stable"),
                Format::Rpm,
            )
        };
        for release in ["7", "8", "9", "10"] {
            assert!(matches!(docker(release), Identity::Known(_)), "{release}");
        }
        // openEuler's $releasever.
        assert_eq!(
            docker("24.03LTS_SP1"),
            Identity::MissingPath {
                host: "download.docker.com".into()
            }
        );
        assert_eq!(
            docker_rpm_release("https://mirrors.example.cn/docker-ce/linux/centos/8/x86_64/stable"),
            Some("8".into())
        );
        let el8 = offers(
            &Origin::Docker {
                distro: "centos".into(),
            },
            Format::Rpm,
            Distro::Kylinv10,
            Arch::Arm64,
            "8",
        );
        assert!(el8.iter().all(|o| o.version.contains(".el8")), "{el8:?}");
        assert_eq!(el_glibc("3:27.5.1-1.el10"), Some((2, 39)));
        assert_eq!(el_glibc("1.7.27-3.1.el9"), Some((2, 34)));
        assert_eq!(el_glibc("1.30.4-150500.1.1"), None);
    }

    #[test]
    fn domestic_archives_are_recognised() {
        for url in [
            "http://repo.openeuler.org/openEuler-24.03-LTS-SP1/OS/aarch64/",
            "http://repo.openeuler.org/openEuler-24.03-LTS-SP1/EPOL/main/aarch64/",
            "http://repo.openeuler.org/openEuler-24.03-LTS-SP1/source/",
            "https://mirrors.huaweicloud.com/openeuler/openEuler-22.03-LTS-SP4/everything/x86_64/",
            "https://update.cs2c.com.cn/NS/V10/V10SP3/os/adv/lic/base/aarch64/",
            "https://mirrors.almalinux.org/mirrorlist/10/baseos",
        ] {
            assert_eq!(
                identify(url, Format::Rpm),
                Identity::Known(Origin::DistroArchive),
                "{url}"
            );
        }
        let pre: Vec<String> = preinstalled(Distro::Openeuler2403, Format::Rpm)
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert!(pre.contains(&"dnf".to_string()) && !pre.contains(&"containerd".to_string()));
    }

    #[test]
    fn el7_gets_only_what_docker_built_for_it() {
        let docker = Origin::Docker {
            distro: "centos".into(),
        };
        let el7 = offers(&docker, Format::Rpm, Distro::Centos7, Arch::Amd64, "");
        let versions = |name: &str| -> Vec<String> {
            el7.iter()
                .filter(|o| o.name == name)
                .map(|o| o.version.clone())
                .collect()
        };
        assert_eq!(versions("docker-ce"), ["3:26.1.4-1.el7"]);
        assert_eq!(versions("containerd.io"), ["1.6.33-3.1.el7"]);
        let el9 = offers(&docker, Format::Rpm, Distro::Rocky9, Arch::Amd64, "");
        assert!(el9
            .iter()
            .any(|o| o.name == "containerd.io" && o.version == "1.7.23-3.1.el9"));
    }
}
