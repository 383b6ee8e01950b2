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

/// Rocky 10 adds a CRB repository, disabled, to what Rocky 9 ships (see [`ROCKY9_REPOS`]).
const ROCKY10_CRB_REPO: &str = "
[crb]
name=Rocky Linux $releasever - CRB
mirrorlist=https://mirrors.rockylinux.org/mirrorlist?arch=$basearch&repo=CRB-$releasever$rltype
#baseurl=http://dl.rockylinux.org/$contentdir/$releasever/CRB/$basearch/os/
gpgcheck=1
enabled=0
countme=1
metadata_expire=6h
gpgkey=file:///etc/pki/rpm-gpg/RPM-GPG-KEY-Rocky-10
";

/// AlmaLinux 10's `almalinux-<repo>.repo` for `baseos` (`BaseOS`) or `appstream`.
fn alma10_repo(id: &str, name: &str) -> String {
    format!(
        "[{id}]\nname=AlmaLinux $releasever - {name}\n\
         mirrorlist=https://mirrors.almalinux.org/mirrorlist/$releasever/{id}\n\
         # baseurl=https://repo.almalinux.org/almalinux/$releasever/{name}/$basearch/os/\n\
         enabled=1\ngpgcheck=1\ncountme=1\n\
         gpgkey=file:///etc/pki/rpm-gpg/RPM-GPG-KEY-AlmaLinux-10\n\
         metadata_expire=86400\nenabled_metadata=1\n"
    )
}

/// Kylin V10 SP3's repositories (the file is named after the architecture).
const KYLIN_V10_REPO: &str = "###Kylin Linux Advanced Server 10 - os repo###

[ks10-adv-os]
name = Kylin Linux Advanced Server 10 - Os
baseurl = https://update.cs2c.com.cn/NS/V10/V10SP3/os/adv/lic/base/$basearch/
gpgcheck = 1
gpgkey=file:///etc/pki/rpm-gpg/RPM-GPG-KEY-kylin
enabled = 1

[ks10-adv-updates]
name = Kylin Linux Advanced Server 10 - Updates
baseurl = https://update.cs2c.com.cn/NS/V10/V10SP3/os/adv/lic/updates/$basearch/
gpgcheck = 1
gpgkey=file:///etc/pki/rpm-gpg/RPM-GPG-KEY-kylin
enabled = 1

[ks10-adv-addons]
name = Kylin Linux Advanced Server 10 - Addons
baseurl = https://update.cs2c.com.cn/NS/V10/V10SP3/os/adv/lic/addons/$basearch/
gpgcheck = 1
gpgkey=file:///etc/pki/rpm-gpg/RPM-GPG-KEY-kylin
enabled = 0
";

/// openEuler's `openEuler.repo` for one release directory (`openEuler-24.03-LTS-SP1`):
/// OS, everything, EPOL, debuginfo, source, update, update-source on repo.openeuler.org.
fn openeuler_repo(release: &str) -> String {
    let mut text = String::from(
        "#generic-repos is licensed under the Mulan PSL v2.\n\
         #You can use this software according to the terms and conditions of the Mulan PSL v2.\n\
         #You may obtain a copy of Mulan PSL v2 at:\n\
         #    http://license.coscl.org.cn/MulanPSL2\n\
         #THIS SOFTWARE IS PROVIDED ON AN \"AS IS\" BASIS, WITHOUT WARRANTIES OF ANY KIND, EITHER EXPRESS OR\n\
         #IMPLIED, INCLUDING BUT NOT LIMITED TO NON-INFRINGEMENT, MERCHANTABILITY OR FIT FOR A PARTICULAR\n\
         #PURPOSE.\n\
         #See the Mulan PSL v2 for more details.\n",
    );
    for (id, dir) in [
        ("OS", "OS/$basearch"),
        ("everything", "everything/$basearch"),
        ("EPOL", "EPOL/main/$basearch"),
        ("debuginfo", "debuginfo/$basearch"),
        ("source", "source"),
        ("update", "update/$basearch"),
        ("update-source", "update/source"),
    ] {
        text.push_str(&format!(
            "\n[{id}]\nname={id}\nbaseurl=http://repo.openeuler.org/{release}/{dir}/\n\
             metalink=https://mirrors.openeuler.org/metalink?repo=$releasever/{id}&arch=$basearch\n\
             metadata_expire=1h\nenabled=1\ngpgcheck=1\n\
             gpgkey=http://repo.openeuler.org/{release}/OS/$basearch/RPM-GPG-KEY-openEuler\n"
        ));
    }
    text
}

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
    /// Ubuntu 24.04 LTS (noble): the archive in deb822 `ubuntu.sources`.
    Ubuntu2404,
    /// Ubuntu 26.04 LTS (resolute): apt 3.
    Ubuntu2604,
    /// Debian 13 (trixie): apt 3, deb822 `debian.sources`.
    Debian13,
    /// Rocky Linux 10: x86-64-v3 on amd64.
    Rocky10,
    /// AlmaLinux 10.
    Alma10,
    /// openEuler 22.03 LTS: `ID="openEuler"`, no `ID_LIKE`, dnf with its own repositories.
    Openeuler2203,
    /// openEuler 24.03 LTS.
    Openeuler2403,
    /// Kylin Linux Advanced Server V10 (SP3, Lance): `ID="kylin"`, `VERSION_ID="V10"`.
    Kylinv10,
    /// Ubuntu 16.04 LTS (xenial): a distribution k8sup does not support.
    Ubuntu1604,
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
            Distro::Ubuntu2204
            | Distro::Ubuntu2004
            | Distro::Debian12
            | Distro::Ubuntu2404
            | Distro::Ubuntu2604
            | Distro::Debian13
            | Distro::Ubuntu1604 => PackageManager::Apt,
            Distro::Rocky9
            | Distro::Rocky8
            | Distro::Rocky10
            | Distro::Alma10
            | Distro::Openeuler2203
            | Distro::Openeuler2403
            | Distro::Kylinv10 => PackageManager::Dnf,
            Distro::Centos7 => PackageManager::Yum,
        }
    }

    /// Red Hat family: SELinux tools, /etc/redhat-release, rpm-based.
    pub fn is_rhel_family(self) -> bool {
        self.package_manager() != PackageManager::Apt
    }

    /// apt's major version (0: not an apt distro). apt 3 prints its transactions
    /// differently and no longer ships `apt-key`.
    pub fn apt_major(self) -> u32 {
        match self {
            Distro::Debian13 | Distro::Ubuntu2604 => 3,
            Distro::Ubuntu1604 => 1,
            _ if self.package_manager() == PackageManager::Apt => 2,
            _ => 0,
        }
    }

    /// openEuler and Kylin (openEuler's descendant) default to cgroup v1; so do the
    /// older releases.
    pub fn default_cgroup(self) -> CgroupVersion {
        match self {
            Distro::Ubuntu2204
            | Distro::Debian12
            | Distro::Rocky9
            | Distro::Ubuntu2404
            | Distro::Ubuntu2604
            | Distro::Debian13
            | Distro::Rocky10
            | Distro::Alma10 => CgroupVersion::V2,
            Distro::Ubuntu2004
            | Distro::Rocky8
            | Distro::Centos7
            | Distro::Openeuler2203
            | Distro::Openeuler2403
            | Distro::Kylinv10
            | Distro::Ubuntu1604 => CgroupVersion::V1,
        }
    }

    /// The glibc version the release ships: what binaries built elsewhere may need.
    pub fn glibc(self) -> (u32, u32) {
        match self {
            Distro::Centos7 => (2, 17),
            Distro::Ubuntu1604 => (2, 23),
            Distro::Rocky8 | Distro::Kylinv10 => (2, 28),
            Distro::Ubuntu2004 => (2, 31),
            Distro::Rocky9 | Distro::Openeuler2203 => (2, 34),
            Distro::Ubuntu2204 => (2, 35),
            Distro::Debian12 => (2, 36),
            Distro::Openeuler2403 => (2, 38),
            Distro::Rocky10 | Distro::Alma10 | Distro::Ubuntu2404 => (2, 39),
            Distro::Debian13 => (2, 41),
            Distro::Ubuntu2604 => (2, 42),
        }
    }

    /// Whether the distribution needs an x86-64-v3 CPU (AVX2, BMI1/2, FMA, MOVBE...)
    /// on amd64: the EL10 family is built for it and does not boot on less.
    pub fn needs_x86_64_v3(self) -> bool {
        matches!(self, Distro::Rocky10 | Distro::Alma10)
    }

    /// SELinux as the image ships it: Some(enforcing?) where the distro has SELinux.
    pub fn selinux_enforcing(self) -> Option<bool> {
        self.is_rhel_family().then_some(true)
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
            Distro::Ubuntu2404 => "6.8.0-88-generic".into(),
            Distro::Ubuntu2604 => "7.0.0-15-generic".into(),
            // trixie names its kernels `<upstream>+deb13-<arch>`.
            Distro::Debian13 => format!("6.12.57+deb13-{}", arch.as_str()),
            Distro::Rocky10 => format!("6.12.0-55.41.1.el10_0.{m}"),
            Distro::Alma10 => format!("6.12.0-55.39.1.el10_0.{m}"),
            Distro::Openeuler2203 => format!("5.10.0-216.0.0.115.oe2203sp4.{m}"),
            Distro::Openeuler2403 => format!("6.6.0-72.0.0.76.oe2403sp1.{m}"),
            Distro::Kylinv10 => format!("4.19.90-89.11.v2401.ky10.{m}"),
            Distro::Ubuntu1604 => "4.4.0-210-generic".into(),
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
            Distro::Ubuntu2404 => concat!(
                "PRETTY_NAME=\"Ubuntu 24.04.3 LTS\"\n",
                "NAME=\"Ubuntu\"\n",
                "VERSION_ID=\"24.04\"\n",
                "VERSION=\"24.04.3 LTS (Noble Numbat)\"\n",
                "VERSION_CODENAME=noble\n",
                "ID=ubuntu\n",
                "ID_LIKE=debian\n",
                "HOME_URL=\"https://www.ubuntu.com/\"\n",
                "SUPPORT_URL=\"https://help.ubuntu.com/\"\n",
                "BUG_REPORT_URL=\"https://bugs.launchpad.net/ubuntu/\"\n",
                "PRIVACY_POLICY_URL=\"https://www.ubuntu.com/legal/terms-and-policies/privacy-policy\"\n",
                "UBUNTU_CODENAME=noble\n",
                "LOGO=ubuntu-logo\n",
            ),
            Distro::Ubuntu2604 => concat!(
                "PRETTY_NAME=\"Ubuntu 26.04 LTS\"\n",
                "NAME=\"Ubuntu\"\n",
                "VERSION_ID=\"26.04\"\n",
                "VERSION=\"26.04 LTS (Resolute Raccoon)\"\n",
                "VERSION_CODENAME=resolute\n",
                "ID=ubuntu\n",
                "ID_LIKE=debian\n",
                "HOME_URL=\"https://www.ubuntu.com/\"\n",
                "SUPPORT_URL=\"https://help.ubuntu.com/\"\n",
                "BUG_REPORT_URL=\"https://bugs.launchpad.net/ubuntu/\"\n",
                "PRIVACY_POLICY_URL=\"https://www.ubuntu.com/legal/terms-and-policies/privacy-policy\"\n",
                "UBUNTU_CODENAME=resolute\n",
                "LOGO=ubuntu-logo\n",
            ),
            Distro::Debian13 => concat!(
                "PRETTY_NAME=\"Debian GNU/Linux 13 (trixie)\"\n",
                "NAME=\"Debian GNU/Linux\"\n",
                "VERSION_ID=\"13\"\n",
                "VERSION=\"13 (trixie)\"\n",
                "VERSION_CODENAME=trixie\n",
                "DEBIAN_VERSION_FULL=13.2\n",
                "ID=debian\n",
                "HOME_URL=\"https://www.debian.org/\"\n",
                "SUPPORT_URL=\"https://www.debian.org/support\"\n",
                "BUG_REPORT_URL=\"https://bugs.debian.org/\"\n",
            ),
            Distro::Rocky10 => concat!(
                "NAME=\"Rocky Linux\"\n",
                "VERSION=\"10.0 (Red Quartz)\"\n",
                "ID=\"rocky\"\n",
                "ID_LIKE=\"rhel centos fedora\"\n",
                "VERSION_ID=\"10.0\"\n",
                "PLATFORM_ID=\"platform:el10\"\n",
                "PRETTY_NAME=\"Rocky Linux 10.0 (Red Quartz)\"\n",
                "ANSI_COLOR=\"0;32\"\n",
                "LOGO=\"fedora-logo-icon\"\n",
                "CPE_NAME=\"cpe:/o:rocky:rocky:10::baseos\"\n",
                "HOME_URL=\"https://rockylinux.org/\"\n",
                "VENDOR_NAME=\"RESF\"\n",
                "VENDOR_URL=\"https://resf.org/\"\n",
                "BUG_REPORT_URL=\"https://bugs.rockylinux.org/\"\n",
                "SUPPORT_END=\"2035-05-31\"\n",
                "ROCKY_SUPPORT_PRODUCT=\"Rocky-Linux-10\"\n",
                "ROCKY_SUPPORT_PRODUCT_VERSION=\"10.0\"\n",
                "REDHAT_SUPPORT_PRODUCT=\"Rocky Linux\"\n",
                "REDHAT_SUPPORT_PRODUCT_VERSION=\"10.0\"\n",
            ),
            Distro::Alma10 => concat!(
                "NAME=\"AlmaLinux\"\n",
                "VERSION=\"10.0 (Purple Lion)\"\n",
                "ID=\"almalinux\"\n",
                "ID_LIKE=\"rhel centos fedora\"\n",
                "VERSION_ID=\"10.0\"\n",
                "PLATFORM_ID=\"platform:el10\"\n",
                "PRETTY_NAME=\"AlmaLinux 10.0 (Purple Lion)\"\n",
                "ANSI_COLOR=\"0;34\"\n",
                "LOGO=\"fedora-logo-icon\"\n",
                "CPE_NAME=\"cpe:/o:almalinux:almalinux:10::baseos\"\n",
                "HOME_URL=\"https://almalinux.org/\"\n",
                "DOCUMENTATION_URL=\"https://wiki.almalinux.org/\"\n",
                "VENDOR_NAME=\"AlmaLinux\"\n",
                "VENDOR_URL=\"https://almalinux.org/\"\n",
                "BUG_REPORT_URL=\"https://bugs.almalinux.org/\"\n",
                "\n",
                "ALMALINUX_MANTISBT_PROJECT=\"AlmaLinux-10\"\n",
                "ALMALINUX_MANTISBT_PROJECT_VERSION=\"10.0\"\n",
                "REDHAT_SUPPORT_PRODUCT=\"AlmaLinux\"\n",
                "REDHAT_SUPPORT_PRODUCT_VERSION=\"10.0\"\n",
                "SUPPORT_END=2035-06-01\n",
            ),
            // openEuler names itself with a capital E and no ID_LIKE: nothing in
            // os-release says "Red Hat family".
            Distro::Openeuler2203 => concat!(
                "NAME=\"openEuler\"\n",
                "VERSION=\"22.03 (LTS-SP4)\"\n",
                "ID=\"openEuler\"\n",
                "VERSION_ID=\"22.03\"\n",
                "PRETTY_NAME=\"openEuler 22.03 (LTS-SP4)\"\n",
                "ANSI_COLOR=\"0;31\"\n",
                "\n",
            ),
            Distro::Openeuler2403 => concat!(
                "NAME=\"openEuler\"\n",
                "VERSION=\"24.03 (LTS-SP1)\"\n",
                "ID=\"openEuler\"\n",
                "VERSION_ID=\"24.03\"\n",
                "PRETTY_NAME=\"openEuler 24.03 (LTS-SP1)\"\n",
                "ANSI_COLOR=\"0;31\"\n",
                "\n",
            ),
            // Kylin's VERSION_ID is not a number.
            Distro::Kylinv10 => concat!(
                "NAME=\"Kylin Linux Advanced Server\"\n",
                "VERSION=\"V10 (Lance)\"\n",
                "ID=\"kylin\"\n",
                "VERSION_ID=\"V10\"\n",
                "PRETTY_NAME=\"Kylin Linux Advanced Server V10 (Lance)\"\n",
                "ANSI_COLOR=\"0;31\"\n",
                "\n",
            ),
            Distro::Ubuntu1604 => concat!(
                "NAME=\"Ubuntu\"\n",
                "VERSION=\"16.04.7 LTS (Xenial Xerus)\"\n",
                "ID=ubuntu\n",
                "ID_LIKE=debian\n",
                "PRETTY_NAME=\"Ubuntu 16.04.7 LTS\"\n",
                "VERSION_ID=\"16.04\"\n",
                "HOME_URL=\"http://www.ubuntu.com/\"\n",
                "SUPPORT_URL=\"http://help.ubuntu.com/\"\n",
                "BUG_REPORT_URL=\"http://bugs.launchpad.net/ubuntu/\"\n",
                "VERSION_CODENAME=xenial\n",
                "UBUNTU_CODENAME=xenial\n",
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
            Distro::Ubuntu2404 => vec![(
                "lsb-release",
                "DISTRIB_ID=Ubuntu\nDISTRIB_RELEASE=24.04\nDISTRIB_CODENAME=noble\nDISTRIB_DESCRIPTION=\"Ubuntu 24.04.3 LTS\"\n",
            )],
            Distro::Ubuntu2604 => vec![(
                "lsb-release",
                "DISTRIB_ID=Ubuntu\nDISTRIB_RELEASE=26.04\nDISTRIB_CODENAME=resolute\nDISTRIB_DESCRIPTION=\"Ubuntu 26.04 LTS\"\n",
            )],
            Distro::Ubuntu1604 => vec![(
                "lsb-release",
                "DISTRIB_ID=Ubuntu\nDISTRIB_RELEASE=16.04\nDISTRIB_CODENAME=xenial\nDISTRIB_DESCRIPTION=\"Ubuntu 16.04.7 LTS\"\n",
            )],
            Distro::Debian13 => vec![("debian_version", "13.2\n")],
            Distro::Rocky10 => vec![
                ("redhat-release", "Rocky Linux release 10.0 (Red Quartz)\n"),
                ("rocky-release", "Rocky Linux release 10.0 (Red Quartz)\n"),
                ("system-release", "Rocky Linux release 10.0 (Red Quartz)\n"),
            ],
            Distro::Alma10 => vec![
                ("redhat-release", "AlmaLinux release 10.0 (Purple Lion)\n"),
                ("almalinux-release", "AlmaLinux release 10.0 (Purple Lion)\n"),
                ("system-release", "AlmaLinux release 10.0 (Purple Lion)\n"),
            ],
            // No redhat-release: openEuler and Kylin are not RHEL rebuilds.
            Distro::Openeuler2203 => vec![
                ("openEuler-release", "openEuler release 22.03 (LTS-SP4)\n"),
                ("system-release", "openEuler release 22.03 (LTS-SP4)\n"),
            ],
            Distro::Openeuler2403 => vec![
                ("openEuler-release", "openEuler release 24.03 (LTS-SP1)\n"),
                ("system-release", "openEuler release 24.03 (LTS-SP1)\n"),
            ],
            Distro::Kylinv10 => vec![
                ("kylin-release", "Kylin Linux Advanced Server release V10 (Lance)\n"),
                ("system-release", "Kylin Linux Advanced Server release V10 (Lance)\n"),
            ],
        }
    }

    /// The distribution's own package sources as its image ships them, in the form it
    /// uses: (path in /etc, contents). Ubuntu from 24.04 writes its archive in deb822
    /// `ubuntu.sources` (and leaves a pointer in `sources.list`), Debian 12 and 13
    /// `debian.sources`; the older Ubuntus one-line `sources.list`. The Red Hat family's
    /// `.repo` files: the newer releases' here (arch-dependent on Kylin).
    pub fn archive_files(self, arch: Arch) -> Vec<(String, String)> {
        let ubuntu_mirror = |security: bool| match (arch, security) {
            (Arch::Arm64, _) => "http://ports.ubuntu.com/ubuntu-ports/",
            (Arch::Amd64, false) => "http://archive.ubuntu.com/ubuntu/",
            (Arch::Amd64, true) => "http://security.ubuntu.com/ubuntu/",
        };
        let one_line = |code: &str| {
            let mut text = String::new();
            for (suite, security) in [
                (code.to_string(), false),
                (format!("{code}-updates"), false),
                (format!("{code}-security"), true),
            ] {
                text.push_str(&format!(
                    "deb {} {suite} main restricted universe multiverse\n",
                    ubuntu_mirror(security)
                ));
            }
            vec![("apt/sources.list".to_string(), text)]
        };
        let deb822_ubuntu = |code: &str| {
            vec![
                (
                    "apt/sources.list".to_string(),
                    "# Ubuntu sources have moved to /etc/apt/sources.list.d/ubuntu.sources\n"
                        .to_string(),
                ),
                (
                    "apt/sources.list.d/ubuntu.sources".to_string(),
                    format!(
                        "Types: deb\nURIs: {}\nSuites: {code} {code}-updates {code}-backports\n\
                         Components: main restricted universe multiverse\n\
                         Signed-By: /usr/share/keyrings/ubuntu-archive-keyring.gpg\n\n\
                         Types: deb\nURIs: {}\nSuites: {code}-security\n\
                         Components: main restricted universe multiverse\n\
                         Signed-By: /usr/share/keyrings/ubuntu-archive-keyring.gpg\n",
                        ubuntu_mirror(false),
                        ubuntu_mirror(true)
                    ),
                ),
            ]
        };
        let debian = |code: &str, keyring: &str| {
            vec![(
                "apt/sources.list.d/debian.sources".to_string(),
                format!(
                    "Types: deb\nURIs: http://deb.debian.org/debian\nSuites: {code} {code}-updates\n\
                     Components: main\nSigned-By: /usr/share/keyrings/{keyring}\n\n\
                     Types: deb\nURIs: http://deb.debian.org/debian-security\n\
                     Suites: {code}-security\nComponents: main\n\
                     Signed-By: /usr/share/keyrings/{keyring}\n"
                ),
            )]
        };
        match self {
            Distro::Ubuntu1604 => one_line("xenial"),
            Distro::Ubuntu2004 => one_line("focal"),
            Distro::Ubuntu2204 => one_line("jammy"),
            Distro::Ubuntu2404 => deb822_ubuntu("noble"),
            Distro::Ubuntu2604 => deb822_ubuntu("resolute"),
            Distro::Debian12 => debian("bookworm", "debian-archive-keyring.gpg"),
            // trixie's keyring is an OpenPGP certificate file, `.pgp`.
            Distro::Debian13 => debian("trixie", "debian-archive-keyring.pgp"),
            Distro::Rocky10 => vec![(
                "yum.repos.d/rocky.repo".into(),
                ROCKY9_REPOS.replace("RPM-GPG-KEY-Rocky-9", "RPM-GPG-KEY-Rocky-10")
                    + ROCKY10_CRB_REPO,
            )],
            Distro::Alma10 => vec![
                (
                    "yum.repos.d/almalinux-baseos.repo".into(),
                    alma10_repo("baseos", "BaseOS"),
                ),
                (
                    "yum.repos.d/almalinux-appstream.repo".into(),
                    alma10_repo("appstream", "AppStream"),
                ),
            ],
            Distro::Openeuler2203 => vec![(
                "yum.repos.d/openEuler.repo".into(),
                openeuler_repo("openEuler-22.03-LTS-SP4"),
            )],
            Distro::Openeuler2403 => vec![(
                "yum.repos.d/openEuler.repo".into(),
                openeuler_repo("openEuler-24.03-LTS-SP1"),
            )],
            Distro::Kylinv10 => vec![(
                format!("yum.repos.d/kylin_{}.repo", arch.machine()),
                KYLIN_V10_REPO.into(),
            )],
            Distro::Rocky9 | Distro::Rocky8 | Distro::Centos7 => Vec::new(),
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
        if self.apt_major() >= 3 {
            // apt 3 no longer ships apt-key.
            hidden.push("bin/apt-key".into());
        }
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

    #[test]
    fn the_newer_distributions_are_named_as_their_images_name_them() {
        let field = |d: Distro, key: &str| -> String {
            d.os_release()
                .lines()
                .find_map(|l| l.strip_prefix(&format!("{key}=")))
                .unwrap_or_default()
                .trim_matches('"')
                .to_string()
        };
        for (d, id, version, like) in [
            (Distro::Ubuntu2404, "ubuntu", "24.04", "debian"),
            (Distro::Ubuntu2604, "ubuntu", "26.04", "debian"),
            (Distro::Debian13, "debian", "13", ""),
            (Distro::Rocky10, "rocky", "10.0", "rhel centos fedora"),
            (Distro::Alma10, "almalinux", "10.0", "rhel centos fedora"),
            (Distro::Openeuler2203, "openEuler", "22.03", ""),
            (Distro::Openeuler2403, "openEuler", "24.03", ""),
            (Distro::Kylinv10, "kylin", "V10", ""),
            (Distro::Ubuntu1604, "ubuntu", "16.04", "debian"),
        ] {
            assert_eq!(field(d, "ID"), id, "{d:?}");
            assert_eq!(field(d, "VERSION_ID"), version, "{d:?}");
            assert_eq!(field(d, "ID_LIKE"), like, "{d:?}");
        }
        assert_eq!(
            Distro::Debian13.default_kernel(Arch::Arm64),
            "6.12.57+deb13-arm64"
        );
        assert!(Distro::Kylinv10
            .default_kernel(Arch::Arm64)
            .ends_with(".ky10.aarch64"));
        assert_eq!(Distro::Openeuler2403.package_manager(), PackageManager::Dnf);
        assert_eq!(Distro::Debian13.apt_major(), 3);
        assert!(Distro::Debian13
            .hidden_usr_files()
            .contains(&"bin/apt-key".to_string()));
        assert!(!Distro::Debian12
            .hidden_usr_files()
            .contains(&"bin/apt-key".to_string()));
    }

    #[test]
    fn archives_are_in_the_form_each_release_writes_them() {
        let files = |d: Distro, arch| -> Vec<String> {
            d.archive_files(arch).into_iter().map(|(p, _)| p).collect()
        };
        assert_eq!(
            files(Distro::Ubuntu2404, Arch::Amd64),
            ["apt/sources.list", "apt/sources.list.d/ubuntu.sources"]
        );
        let noble = Distro::Ubuntu2404.archive_files(Arch::Arm64);
        assert!(noble[1]
            .1
            .contains("URIs: http://ports.ubuntu.com/ubuntu-ports/\nSuites: noble noble-updates noble-backports\n"));
        assert_eq!(files(Distro::Ubuntu2204, Arch::Amd64), ["apt/sources.list"]);
        assert_eq!(
            files(Distro::Debian13, Arch::Amd64),
            ["apt/sources.list.d/debian.sources"]
        );
        assert_eq!(
            files(Distro::Kylinv10, Arch::Arm64),
            ["yum.repos.d/kylin_aarch64.repo"]
        );
        let euler = &Distro::Openeuler2403.archive_files(Arch::Amd64)[0].1;
        assert!(euler.contains(
            "[OS]\nname=OS\nbaseurl=http://repo.openeuler.org/openEuler-24.03-LTS-SP1/OS/$basearch/\n"
        ));
    }

    #[test]
    fn el10_needs_x86_64_v3_and_the_lab_cpu_has_it() {
        assert!(Distro::Rocky10.needs_x86_64_v3() && Distro::Alma10.needs_x86_64_v3());
        assert!(!Distro::Openeuler2403.needs_x86_64_v3());
        let cpu = crate::procfs::cpuinfo(Arch::Amd64, 1);
        let flags = cpu
            .lines()
            .find_map(|l| l.strip_prefix("flags\t\t: "))
            .unwrap();
        for v3 in [
            "avx", "avx2", "bmi1", "bmi2", "f16c", "fma", "abm", "movbe", "xsave",
        ] {
            assert!(flags.split(' ').any(|f| f == v3), "{v3} missing: {flags}");
        }
    }
}
