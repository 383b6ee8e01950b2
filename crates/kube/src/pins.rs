//! The runtime bits k8sup installs, pinned per Kubernetes minor: containerd.io
//! and docker-ce from Docker's repositories, and cri-dockerd's release archive
//! with its sha256 per architecture. A nightly reprovision gets the same bits as
//! the night before; a new k8sup that moves the table shows the upgrade in the plan.
//!
//! Every version here is published in Docker's repositories for the Debian and
//! Red Hat families (download.docker.com: `docker-ce=5:<v>-1~<distro>` on apt,
//! `docker-ce-3:<v>-1.el<n>` on dnf; `containerd.io=<v>-1`, `containerd.io-<v>-3.1.el<n>`),
//! and the cri-dockerd checksums are those of the archives Mirantis publishes on
//! GitHub (the same facts Kubespray records in its `checksums.yml`).

use k8sup_inventory::{Arch, Inventory, KubeVersion, PackageSource};

/// What one Kubernetes minor gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuntimePins {
    /// containerd.io (both runtimes: Docker runs on it too).
    pub containerd_io: &'static str,
    /// docker-ce and docker-ce-cli.
    pub docker_ce: &'static str,
    /// cri-dockerd's release.
    pub cri_dockerd: &'static str,
}

/// From this minor on (until the next row), these pins.
const PINS: &[(u32, RuntimePins)] = &[
    (24, pins("1.7.19", "26.1.4", "0.3.14")),
    (27, pins("1.7.20", "27.1.2", "0.3.15")),
    (29, pins("1.7.22", "27.2.1", "0.3.15")),
    (30, pins("1.7.23", "27.3.1", "0.3.15")),
    (31, pins("1.7.24", "27.4.1", "0.3.16")),
    (32, pins("1.7.25", "27.5.1", "0.3.16")),
    (33, pins("1.7.27", "27.5.1", "0.3.17")),
    (34, pins("1.7.27", "27.5.1", "0.3.18")),
];

const fn pins(
    containerd_io: &'static str,
    docker_ce: &'static str,
    cri_dockerd: &'static str,
) -> RuntimePins {
    RuntimePins {
        containerd_io,
        docker_ce,
        cri_dockerd,
    }
}

/// CentOS/RHEL 7: Docker's packages for it end with docker-ce 26.1 and
/// containerd.io 1.6 (it reached its end of life in June 2024), whatever the
/// Kubernetes minor.
pub const EL7: (&str, &str) = ("1.6.33", "26.1.4");

/// sha256 of `cri-dockerd-<version>.<arch>.tgz` as released.
const CRI_DOCKERD_SHA256: &[(&str, Arch, &str)] = &[
    (
        "0.3.14",
        Arch::Amd64,
        "89096dff11b60c8d4f061ee88751c895650a3ef6db5c19d63ab22a1aeb42a5b3",
    ),
    (
        "0.3.14",
        Arch::Arm64,
        "12c5538887ccea5ec363337dbb50ff52f3b020c93d65649ee1a906c4ec994bf7",
    ),
    (
        "0.3.15",
        Arch::Amd64,
        "4779b7c3663f002871e79ecf6aa8eb48d0bb74df035baecf56b816deb21d12c4",
    ),
    (
        "0.3.15",
        Arch::Arm64,
        "39e430378c9c08a1d5056426e3c772ae50416ffeadbe720fa63a853c475fd5a4",
    ),
    (
        "0.3.16",
        Arch::Amd64,
        "cc7f181ce850130dc375515c54cd8a27e1e862252abc5b7eade7b4a03ddabd8e",
    ),
    (
        "0.3.16",
        Arch::Arm64,
        "0ab930b6f7ab87697cd94c954d01e19fdd5b5d65810662effb957c5db49a55d4",
    ),
    (
        "0.3.17",
        Arch::Amd64,
        "5568d571c2cfee7a31ce0b35b7fcc65b96c85b573ee6645151c4d022ed92a626",
    ),
    (
        "0.3.17",
        Arch::Arm64,
        "761ee6db946ff2c8da04e57833dbbca8e5c38bc3f5b8e84bda689b1b7260c36f",
    ),
    (
        "0.3.18",
        Arch::Amd64,
        "937578ddcdb28c71afded3fda25d555e0c9e6d396668977ff98228d55886dc79",
    ),
    (
        "0.3.18",
        Arch::Arm64,
        "d16204a4f01685ba67319adb3acc6a6f3e62d8bcfd87bc67f5e08f7332515a9d",
    ),
];

/// Where cri-dockerd's releases are published; a files mirror serves the same
/// path under `<mirror>/github.com`.
const GITHUB: &str = "https://github.com";

/// Every row of the table: from which Kubernetes minor on, and its pins.
pub fn table() -> impl Iterator<Item = (u32, RuntimePins)> {
    PINS.iter().copied()
}

/// The pins of `version`'s minor (the row at or below it).
pub fn for_version(version: KubeVersion) -> RuntimePins {
    PINS.iter()
        .rev()
        .find(|(from, _)| *from <= version.minor)
        .map_or(PINS[0].1, |(_, p)| *p)
}

/// The released sha256 of cri-dockerd `version` for `arch`, when k8sup knows it.
pub fn cri_dockerd_release_sha256(version: &str, arch: Arch) -> Option<&'static str> {
    CRI_DOCKERD_SHA256
        .iter()
        .find(|(v, a, _)| *v == version && *a == arch)
        .map(|(_, _, sha)| *sha)
}

/// The versions to install, owned: the inventory's where it names them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versions {
    pub containerd_io: String,
    pub docker_ce: String,
}

/// containerd.io and docker-ce versions for `inventory` on current distributions.
pub fn versions(inventory: &Inventory) -> Versions {
    versions_for(inventory, false)
}

/// containerd.io and docker-ce versions for `inventory`, on a CentOS/RHEL 7 host
/// when `el7` (the last Docker built for it); the inventory's own win.
pub fn versions_for(inventory: &Inventory, el7: bool) -> Versions {
    let table = for_version(inventory.cluster.kubernetes_version);
    let (containerd_io, docker_ce) = if el7 {
        EL7
    } else {
        (table.containerd_io, table.docker_ce)
    };
    let packages = &inventory.packages;
    Versions {
        containerd_io: packages
            .containerd_version
            .clone()
            .unwrap_or_else(|| containerd_io.to_string()),
        docker_ce: packages
            .docker_version
            .clone()
            .unwrap_or_else(|| docker_ce.to_string()),
    }
}

/// Where the controller gets cri-dockerd for a host of `arch`, and the sha256 the
/// archive must have (`None`: a source of the user's own without a checksum).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CriDockerdSource {
    /// A URL or a file on the controller.
    pub location: String,
    pub sha256: Option<String>,
}

/// cri-dockerd's source for `arch`: `packages.cri_dockerd` (`{arch}` filled in)
/// with `cri_dockerd_sha256`, else the pinned release from GitHub (or
/// `files_mirror`) with the inventory's checksum for that arch, else the table's.
/// `None` with `packages.source = "binary"` and no `cri_dockerd`: the program comes
/// from `binary_dir`.
pub fn cri_dockerd_source(
    inventory: &Inventory,
    arch: Arch,
) -> Result<Option<CriDockerdSource>, String> {
    let packages = &inventory.packages;
    let own_sha = packages.cri_dockerd_sha256.get(&arch).cloned();
    if let Some(source) = &packages.cri_dockerd {
        return Ok(Some(CriDockerdSource {
            location: source.replace("{arch}", arch.as_str()),
            sha256: own_sha,
        }));
    }
    if packages.source == PackageSource::Binary {
        return Ok(None);
    }
    let version = for_version(inventory.cluster.kubernetes_version).cri_dockerd;
    let base = packages
        .files_mirror
        .as_deref()
        .map_or_else(|| GITHUB.to_string(), |m| format!("{m}/github.com"));
    let sha256 = match own_sha {
        Some(sha) => sha,
        None => cri_dockerd_release_sha256(version, arch)
            .ok_or_else(|| {
                format!("k8sup knows no sha256 of cri-dockerd {version} for {arch}: set packages.cri_dockerd_sha256")
            })?
            .to_string(),
    };
    Ok(Some(CriDockerdSource {
        location: format!(
            "{base}/Mirantis/cri-dockerd/releases/download/v{version}/cri-dockerd-{version}.{arch}.tgz"
        ),
        sha256: Some(sha256),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_known_minor_has_pins_and_every_pinned_cri_dockerd_its_checksums() {
        for minor in 24..=34 {
            let version = KubeVersion::parse(&format!("1.{minor}")).expect("known");
            let p = for_version(version);
            for arch in [Arch::Amd64, Arch::Arm64] {
                let sha = cri_dockerd_release_sha256(p.cri_dockerd, arch)
                    .unwrap_or_else(|| panic!("1.{minor}: no sha256 for {arch}"));
                assert_eq!(sha.len(), 64);
            }
        }
        let v130 = KubeVersion::parse("1.30.4").unwrap();
        assert_eq!(for_version(v130), pins("1.7.23", "27.3.1", "0.3.15"));
        assert_eq!(
            for_version(KubeVersion::parse("1.28").unwrap()),
            pins("1.7.20", "27.1.2", "0.3.15")
        );
    }
}
