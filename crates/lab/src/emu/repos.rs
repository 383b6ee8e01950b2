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
];

/// Mirror-list services of the Red Hat family's own repositories.
const MIRRORLIST_HOSTS: &[&str] = &["mirrors.rockylinux.org", "mirrorlist.centos.org"];

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
            Seg::Any,
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

/// The column of a distro in [`DEB_ARCHIVE`] / [`RPM_ARCHIVE`].
fn archive_column(distro: Distro) -> usize {
    match distro {
        Distro::Ubuntu2204 | Distro::Rocky9 => 0,
        Distro::Ubuntu2004 | Distro::Rocky8 => 1,
        Distro::Debian12 | Distro::Centos7 => 2,
    }
}

fn archive(format: Format) -> &'static [(&'static str, [&'static str; 3], bool)] {
    match format {
        Format::Deb => DEB_ARCHIVE,
        Format::Rpm => RPM_ARCHIVE,
    }
}

/// Packages a fresh host of `distro` has installed, with their versions.
pub fn preinstalled(distro: Distro, format: Format) -> Vec<(String, String)> {
    let col = archive_column(distro);
    archive(format)
        .iter()
        .filter(|(_, v, pre)| *pre && !v[col].is_empty())
        .map(|(n, v, _)| (n.to_string(), v[col].to_string()))
        .collect()
}

/// The el release of a Red Hat family distro (`$releasever`).
pub fn releasever(distro: Distro) -> &'static str {
    match distro {
        Distro::Rocky9 => "9",
        Distro::Rocky8 => "8",
        Distro::Centos7 => "7",
        Distro::Ubuntu2204 => "22.04",
        Distro::Ubuntu2004 => "20.04",
        Distro::Debian12 => "12",
    }
}

/// The codename of a Debian family distro.
pub fn codename(distro: Distro) -> &'static str {
    match distro {
        Distro::Ubuntu2204 => "jammy",
        Distro::Ubuntu2004 => "focal",
        Distro::Debian12 => "bookworm",
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
    ];
    table
        .iter()
        .find(|(d, s, _)| *d == docker_distro && *s == suite)
        .map(|(_, _, tag)| *tag)
}

/// Whether a docker deb repository publishes `suite` (a codename).
pub fn docker_has_suite(docker_distro: &str, suite: &str) -> bool {
    docker_suite(docker_distro, suite).is_some()
}

/// Every package version a repository offers to a host. `suite` is the apt suite (the
/// codename for docker's deb repository) and ignored for rpm.
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
            let col = archive_column(distro);
            for (name, versions, _) in archive(format) {
                if !versions[col].is_empty() {
                    add(name, versions[col].to_string());
                }
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
            let el = releasever(distro);
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
            v.push(if distro == Distro::Rocky9 {
                "iptables-nft"
            } else {
                "iptables"
            });
            v
        }
        ("kubeadm", _) => vec!["cri-tools"],
        ("docker-ce", _) => vec!["containerd.io", "docker-ce-cli"],
        ("containerd", Format::Deb) => vec!["runc"],
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
