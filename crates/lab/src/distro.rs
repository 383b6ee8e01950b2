//! What each emulated distribution and architecture looks like from inside a host:
//! `/etc/os-release`, release files, package manager kind, usual kernel and cgroup version.

use serde::{Deserialize, Serialize};

const ROCKY9_REPOS: &str = "[baseos]
name=Rocky Linux $releasever - BaseOS
mirrorlist=https://mirrors.rockylinux.org/mirrorlist?arch=$basearch&repo=BaseOS-$releasever$rltype
#baseurl=http://dl.rockylinux.org/$contentdir/$releasever/BaseOS/$basearch/os/
gpgcheck=1
enabled=1
countme=1
metadata_expire=6h
gpgkey=file:///etc/pki/rpm-gpg/RPM-GPG-KEY-Rocky-9

[appstream]
name=Rocky Linux $releasever - AppStream
mirrorlist=https://mirrors.rockylinux.org/mirrorlist?arch=$basearch&repo=AppStream-$releasever$rltype
#baseurl=http://dl.rockylinux.org/$contentdir/$releasever/AppStream/$basearch/os/
gpgcheck=1
enabled=1
countme=1
metadata_expire=6h
gpgkey=file:///etc/pki/rpm-gpg/RPM-GPG-KEY-Rocky-9
";

const ROCKY8_BASEOS_REPO: &str = "[baseos]
name=Rocky Linux $releasever - BaseOS
mirrorlist=https://mirrors.rockylinux.org/mirrorlist?arch=$basearch&repo=BaseOS-$releasever
#baseurl=http://dl.rockylinux.org/$contentdir/$releasever/BaseOS/$basearch/os/
gpgcheck=1
enabled=1
countme=1
gpgkey=file:///etc/pki/rpm-gpg/RPM-GPG-KEY-rockyofficial
";

const ROCKY8_APPSTREAM_REPO: &str = "[appstream]
name=Rocky Linux $releasever - AppStream
mirrorlist=https://mirrors.rockylinux.org/mirrorlist?arch=$basearch&repo=AppStream-$releasever
#baseurl=http://dl.rockylinux.org/$contentdir/$releasever/AppStream/$basearch/os/
gpgcheck=1
enabled=1
countme=1
gpgkey=file:///etc/pki/rpm-gpg/RPM-GPG-KEY-rockyofficial
";

const CENTOS7_BASE_REPO: &str = "[base]
name=CentOS-$releasever - Base
mirrorlist=http://mirrorlist.centos.org/?release=$releasever&arch=$basearch&repo=os&infra=$infra
#baseurl=http://mirror.centos.org/centos/$releasever/os/$basearch/
gpgcheck=1
gpgkey=file:///etc/pki/rpm-gpg/RPM-GPG-KEY-CentOS-7

[updates]
name=CentOS-$releasever - Updates
mirrorlist=http://mirrorlist.centos.org/?release=$releasever&arch=$basearch&repo=updates&infra=$infra
#baseurl=http://mirror.centos.org/centos/$releasever/updates/$basearch/
gpgcheck=1
gpgkey=file:///etc/pki/rpm-gpg/RPM-GPG-KEY-CentOS-7
";

/// The distributions a lab host can pretend to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Distro {
    #[default]
    Ubuntu2204,
    Ubuntu2004,
    Debian12,
    Rocky9,
    Rocky8,
    Centos7,
}

/// CPU architectures, named as Kubernetes names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    #[default]
    Amd64,
    Arm64,
}

/// The cgroup hierarchy a host reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CgroupVersion {
    V1,
    V2,
}

/// Which package manager family a distro uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PackageManager {
    Apt,
    Dnf,
    Yum,
}

impl Arch {
    /// `uname -m`.
    pub fn machine(self) -> &'static str {
        match self {
            Arch::Amd64 => "x86_64",
            Arch::Arm64 => "aarch64",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Arch::Amd64 => "amd64",
            Arch::Arm64 => "arm64",
        }
    }
}

impl Distro {
    pub fn package_manager(self) -> PackageManager {
        match self {
            Distro::Ubuntu2204 | Distro::Ubuntu2004 | Distro::Debian12 => PackageManager::Apt,
            Distro::Rocky9 | Distro::Rocky8 => PackageManager::Dnf,
            Distro::Centos7 => PackageManager::Yum,
        }
    }

    /// Red Hat family: SELinux tools, /etc/redhat-release, rpm-based.
    pub fn is_rhel_family(self) -> bool {
        self.package_manager() != PackageManager::Apt
    }

    pub fn default_cgroup(self) -> CgroupVersion {
        match self {
            Distro::Ubuntu2204 | Distro::Debian12 | Distro::Rocky9 => CgroupVersion::V2,
            Distro::Ubuntu2004 | Distro::Rocky8 | Distro::Centos7 => CgroupVersion::V1,
        }
    }

    pub fn default_kernel(self, arch: Arch) -> String {
        let m = arch.machine();
        match self {
            Distro::Ubuntu2204 => "5.15.0-105-generic".into(),
            Distro::Ubuntu2004 => "5.4.0-182-generic".into(),
            Distro::Debian12 => format!("6.1.0-21-{}", arch.as_str()),
            Distro::Rocky9 => format!("5.14.0-427.13.1.el9_4.{m}"),
            Distro::Rocky8 => format!("4.18.0-513.24.1.el8_9.{m}"),
            Distro::Centos7 => format!("3.10.0-1160.119.1.el7.{m}"),
        }
    }

    /// The full text of `/etc/os-release`.
    pub fn os_release(self) -> &'static str {
        match self {
            Distro::Ubuntu2204 => concat!(
                "PRETTY_NAME=\"Ubuntu 22.04.4 LTS\"\n",
                "NAME=\"Ubuntu\"\n",
                "VERSION_ID=\"22.04\"\n",
                "VERSION=\"22.04.4 LTS (Jammy Jellyfish)\"\n",
                "VERSION_CODENAME=jammy\n",
                "ID=ubuntu\n",
                "ID_LIKE=debian\n",
                "HOME_URL=\"https://www.ubuntu.com/\"\n",
                "SUPPORT_URL=\"https://help.ubuntu.com/\"\n",
                "BUG_REPORT_URL=\"https://bugs.launchpad.net/ubuntu/\"\n",
                "PRIVACY_POLICY_URL=\"https://www.ubuntu.com/legal/terms-and-policies/privacy-policy\"\n",
                "UBUNTU_CODENAME=jammy\n",
            ),
            Distro::Ubuntu2004 => concat!(
                "NAME=\"Ubuntu\"\n",
                "VERSION=\"20.04.6 LTS (Focal Fossa)\"\n",
                "ID=ubuntu\n",
                "ID_LIKE=debian\n",
                "PRETTY_NAME=\"Ubuntu 20.04.6 LTS\"\n",
                "VERSION_ID=\"20.04\"\n",
                "HOME_URL=\"https://www.ubuntu.com/\"\n",
                "SUPPORT_URL=\"https://help.ubuntu.com/\"\n",
                "BUG_REPORT_URL=\"https://bugs.launchpad.net/ubuntu/\"\n",
                "PRIVACY_POLICY_URL=\"https://www.ubuntu.com/legal/terms-and-policies/privacy-policy\"\n",
                "VERSION_CODENAME=focal\n",
                "UBUNTU_CODENAME=focal\n",
            ),
            Distro::Debian12 => concat!(
                "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n",
                "NAME=\"Debian GNU/Linux\"\n",
                "VERSION_ID=\"12\"\n",
                "VERSION=\"12 (bookworm)\"\n",
                "VERSION_CODENAME=bookworm\n",
                "ID=debian\n",
                "HOME_URL=\"https://www.debian.org/\"\n",
                "SUPPORT_URL=\"https://www.debian.org/support\"\n",
                "BUG_REPORT_URL=\"https://bugs.debian.org/\"\n",
            ),
            Distro::Rocky9 => concat!(
                "NAME=\"Rocky Linux\"\n",
                "VERSION=\"9.4 (Blue Onyx)\"\n",
                "ID=\"rocky\"\n",
                "ID_LIKE=\"rhel centos fedora\"\n",
                "VERSION_ID=\"9.4\"\n",
                "PLATFORM_ID=\"platform:el9\"\n",
                "PRETTY_NAME=\"Rocky Linux 9.4 (Blue Onyx)\"\n",
                "ANSI_COLOR=\"0;32\"\n",
                "LOGO=\"fedora-logo-icon\"\n",
                "CPE_NAME=\"cpe:/o:rocky:rocky:9::baseos\"\n",
                "HOME_URL=\"https://rockylinux.org/\"\n",
                "BUG_REPORT_URL=\"https://bugs.rockylinux.org/\"\n",
                "SUPPORT_END=\"2032-05-31\"\n",
                "ROCKY_SUPPORT_PRODUCT=\"Rocky-Linux-9\"\n",
                "ROCKY_SUPPORT_PRODUCT_VERSION=\"9.4\"\n",
                "REDHAT_SUPPORT_PRODUCT=\"Rocky Linux\"\n",
                "REDHAT_SUPPORT_PRODUCT_VERSION=\"9.4\"\n",
            ),
            Distro::Rocky8 => concat!(
                "NAME=\"Rocky Linux\"\n",
                "VERSION=\"8.9 (Green Obsidian)\"\n",
                "ID=\"rocky\"\n",
                "ID_LIKE=\"rhel centos fedora\"\n",
                "VERSION_ID=\"8.9\"\n",
                "PLATFORM_ID=\"platform:el8\"\n",
                "PRETTY_NAME=\"Rocky Linux 8.9 (Green Obsidian)\"\n",
                "ANSI_COLOR=\"0;32\"\n",
                "LOGO=\"fedora-logo-icon\"\n",
                "CPE_NAME=\"cpe:/o:rocky:rocky:8:GA\"\n",
                "HOME_URL=\"https://rockylinux.org/\"\n",
                "BUG_REPORT_URL=\"https://bugs.rockylinux.org/\"\n",
                "SUPPORT_END=\"2029-05-31\"\n",
                "ROCKY_SUPPORT_PRODUCT=\"Rocky-Linux-8\"\n",
                "ROCKY_SUPPORT_PRODUCT_VERSION=\"8.9\"\n",
                "REDHAT_SUPPORT_PRODUCT=\"Rocky Linux\"\n",
                "REDHAT_SUPPORT_PRODUCT_VERSION=\"8.9\"\n",
            ),
            Distro::Centos7 => concat!(
                "NAME=\"CentOS Linux\"\n",
                "VERSION=\"7 (Core)\"\n",
                "ID=\"centos\"\n",
                "ID_LIKE=\"rhel fedora\"\n",
                "VERSION_ID=\"7\"\n",
                "PRETTY_NAME=\"CentOS Linux 7 (Core)\"\n",
                "ANSI_COLOR=\"0;31\"\n",
                "CPE_NAME=\"cpe:/o:centos:centos:7\"\n",
                "HOME_URL=\"https://www.centos.org/\"\n",
                "BUG_REPORT_URL=\"https://bugs.centos.org/\"\n",
                "\n",
                "CENTOS_MANTISBT_PROJECT=\"CentOS-7\"\n",
                "CENTOS_MANTISBT_PROJECT_VERSION=\"7\"\n",
                "REDHAT_SUPPORT_PRODUCT=\"centos\"\n",
                "REDHAT_SUPPORT_PRODUCT_VERSION=\"7\"\n",
            ),
        }
    }

    /// Extra files the distro ships in /etc besides os-release: release files, and the
    /// Red Hat family's own repository definitions (so /etc/yum.repos.d exists, as
    /// installers expect): (path in /etc, contents).
    pub fn release_files(self) -> Vec<(&'static str, &'static str)> {
        match self {
            Distro::Ubuntu2204 => vec![(
                "lsb-release",
                "DISTRIB_ID=Ubuntu\nDISTRIB_RELEASE=22.04\nDISTRIB_CODENAME=jammy\nDISTRIB_DESCRIPTION=\"Ubuntu 22.04.4 LTS\"\n",
            )],
            Distro::Ubuntu2004 => vec![(
                "lsb-release",
                "DISTRIB_ID=Ubuntu\nDISTRIB_RELEASE=20.04\nDISTRIB_CODENAME=focal\nDISTRIB_DESCRIPTION=\"Ubuntu 20.04.6 LTS\"\n",
            )],
            Distro::Debian12 => vec![("debian_version", "12.5\n")],
            Distro::Rocky9 => vec![
                ("redhat-release", "Rocky Linux release 9.4 (Blue Onyx)\n"),
                ("rocky-release", "Rocky Linux release 9.4 (Blue Onyx)\n"),
                ("system-release", "Rocky Linux release 9.4 (Blue Onyx)\n"),
                ("yum.repos.d/rocky.repo", ROCKY9_REPOS),
            ],
            Distro::Rocky8 => vec![
                ("redhat-release", "Rocky Linux release 8.9 (Green Obsidian)\n"),
                ("rocky-release", "Rocky Linux release 8.9 (Green Obsidian)\n"),
                ("system-release", "Rocky Linux release 8.9 (Green Obsidian)\n"),
                ("yum.repos.d/Rocky-BaseOS.repo", ROCKY8_BASEOS_REPO),
                ("yum.repos.d/Rocky-AppStream.repo", ROCKY8_APPSTREAM_REPO),
            ],
            Distro::Centos7 => vec![
                ("redhat-release", "CentOS Linux release 7.9.2009 (Core)\n"),
                ("centos-release", "CentOS Linux release 7.9.2009 (Core)\n"),
                ("system-release", "CentOS Linux release 7.9.2009 (Core)\n"),
                ("yum.repos.d/CentOS-Base.repo", CENTOS7_BASE_REPO),
            ],
        }
    }

    /// Files of /usr (the machine's, or the lab's emulator layer) that this distro must not
    /// have, relative to /usr. They are hidden with overlay whiteouts in the host's /usr:
    /// the other family's package tools, and every program a package places (kubeadm,
    /// containerd, docker...), so that it exists only once its package is installed even
    /// when the machine itself has one (this machine has /usr/bin/kubectl and
    /// /usr/local/bin/docker).
    pub fn hidden_usr_files(self) -> Vec<String> {
        let mut hidden: Vec<String> = if self.is_rhel_family() {
            [
                "bin/apt",
                "bin/apt-get",
                "bin/apt-cache",
                "bin/apt-key",
                "bin/apt-mark",
                "bin/apt-config",
                "bin/dpkg",
                "bin/dpkg-query",
                "bin/dpkg-deb",
                "bin/dpkg-divert",
                "bin/dpkg-split",
                "bin/dpkg-statoverride",
                "bin/dpkg-trigger",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect()
        } else {
            [
                "sbin/getenforce",
                "sbin/setenforce",
                "bin/dnf",
                "bin/yum",
                "bin/rpm",
                "bin/rpmquery",
                "bin/yum-config-manager",
                "bin/dnf-3",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect()
        };
        for program in crate::emu::payload::all_programs() {
            if let Some(rel) = program.strip_prefix("/usr/") {
                hidden.push(rel.to_string());
            }
            if let Some(name) = program.rsplit('/').next() {
                hidden.push(format!("local/bin/{name}"));
            }
        }
        hidden.sort();
        hidden.dedup();
        hidden
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_release_names_the_distro() {
        assert!(Distro::Rocky9.os_release().contains("ID=\"rocky\""));
        assert!(Distro::Ubuntu2204
            .os_release()
            .contains("VERSION_ID=\"22.04\""));
        assert!(Distro::Centos7.is_rhel_family());
        assert_eq!(Distro::Centos7.package_manager(), PackageManager::Yum);
        assert_eq!(
            Distro::Rocky9.default_kernel(Arch::Arm64),
            "5.14.0-427.13.1.el9_4.aarch64"
        );
    }
}
