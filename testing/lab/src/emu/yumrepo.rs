//! dnf's and yum's repository configuration: the `[id]` sections of
//! `/etc/yum.repos.d/*.repo` (`baseurl`, `enabled`, `exclude`), with `$releasever` and
//! `$basearch` expanded, and the package versions the enabled repositories offer. The
//! distribution's own repositories (BaseOS, AppStream) are always there.

use super::repos::{self, Format, Identity, Origin};
use super::Invocation;
use crate::distro::{Arch, Distro};

/// One repository section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoSection {
    pub id: String,
    pub name: String,
    pub baseurl: String,
    pub enabled: bool,
    /// `exclude=` / `excludepkgs=` globs.
    pub exclude: Vec<String>,
}

/// Parses one `.repo` file.
pub fn parse(text: &str, distro: Distro, arch: Arch) -> Vec<RepoSection> {
    let mut out: Vec<RepoSection> = Vec::new();
    for raw in text.lines() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(id) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            out.push(RepoSection {
                id: id.trim().to_string(),
                name: id.trim().to_string(),
                baseurl: String::new(),
                enabled: true,
                exclude: Vec::new(),
            });
            continue;
        }
        let (Some(cur), Some((k, v))) = (out.last_mut(), line.split_once('=')) else {
            continue;
        };
        let v = v
            .trim()
            .replace("$releasever", repos::releasever(distro))
            .replace("$basearch", arch.machine());
        match k.trim() {
            "name" => cur.name = v,
            "baseurl" => cur.baseurl = v.split_whitespace().next().unwrap_or("").to_string(),
            // A mirror list stands for the repository when there is no baseurl.
            "mirrorlist" | "metalink" if cur.baseurl.is_empty() => cur.baseurl = v,
            "enabled" => cur.enabled = matches!(v.as_str(), "1" | "true" | "yes" | "True"),
            "exclude" | "excludepkgs" => cur.exclude.extend(
                v.split([' ', ','])
                    .filter(|s| !s.is_empty())
                    .map(String::from),
            ),
            _ => {}
        }
    }
    out
}

/// Every section of every `.repo` file, sorted by file name.
pub fn read_all(inv: &Invocation, distro: Distro, arch: Arch) -> Vec<RepoSection> {
    let mut names: Vec<String> = std::fs::read_dir(inv.path("/etc/yum.repos.d"))
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str().map(String::from))
                .filter(|n| n.ends_with(".repo"))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
        .iter()
        .filter_map(|n| inv.read(&format!("/etc/yum.repos.d/{n}")).ok())
        .flat_map(|t| parse(&t, distro, arch))
        .collect()
}

/// A package version dnf can see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Available {
    pub name: String,
    /// `[E:]V-R`
    pub evr: String,
    pub arch: String,
    pub repo: String,
    /// Filtered out by the repository's `exclude=`.
    pub excluded: bool,
}

/// Why a repository's metadata could not be downloaded (dnf's message lines).
pub fn metadata_error(section: &RepoSection) -> Option<Vec<String>> {
    let url = format!(
        "{}/repodata/repomd.xml",
        section.baseurl.trim_end_matches('/')
    );
    let id = &section.id;
    match repos::identify(&section.baseurl, Format::Rpm) {
        Identity::Known(_) => None,
        Identity::MissingPath { .. } => Some(vec![
            format!("Errors during downloading metadata for repository '{id}':"),
            format!("  - Status code: 404 for {url}"),
            format!("Error: Failed to download metadata for repo '{id}': Cannot download repomd.xml: Cannot download repodata/repomd.xml: All mirrors were tried"),
        ]),
        Identity::Unreachable { host } => Some(vec![
            format!("Errors during downloading metadata for repository '{id}':"),
            format!("  - Curl error (6): Couldn't resolve host name for {url} [Could not resolve host: {host}]"),
            format!("Error: Failed to download metadata for repo '{id}': Cannot download repomd.xml: Curl error (6): Couldn't resolve host name for {url} [Could not resolve host: {host}]"),
        ]),
    }
}

/// The id the distribution's own repository has.
pub fn archive_repo(distro: Distro) -> &'static str {
    match distro {
        Distro::Centos7 => "base",
        Distro::Openeuler2203 | Distro::Openeuler2403 => "OS",
        Distro::Kylinv10 => "ks10-adv-os",
        _ => "baseos",
    }
}

/// Every package version of the archive and the enabled repositories; `disable_excludes`
/// lists repo ids (or `all`) whose `exclude=` does not apply.
pub fn available(
    sections: &[RepoSection],
    distro: Distro,
    arch: Arch,
    disable_excludes: &[String],
) -> Vec<Available> {
    let mut out = Vec::new();
    for o in repos::offers(&Origin::DistroArchive, Format::Rpm, distro, arch, "") {
        out.push(Available {
            name: o.name,
            evr: o.version,
            arch: o.arch,
            repo: archive_repo(distro).into(),
            excluded: false,
        });
    }
    for s in sections.iter().filter(|s| s.enabled) {
        let Identity::Known(origin) = repos::identify(&s.baseurl, Format::Rpm) else {
            continue;
        };
        if origin == Origin::DistroArchive {
            continue;
        }
        let excludes_apply = !disable_excludes
            .iter()
            .any(|d| d == "all" || d == "*" || *d == s.id);
        let release = repos::docker_rpm_release(&s.baseurl).unwrap_or_default();
        for o in repos::offers(&origin, Format::Rpm, distro, arch, &release) {
            let excluded =
                excludes_apply && s.exclude.iter().any(|g| super::dpkg::glob(g, &o.name));
            out.push(Available {
                name: o.name,
                evr: o.version,
                arch: o.arch,
                repo: s.id.clone(),
                excluded,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubernetes_repo_file() {
        let text = "[kubernetes]\nname=Kubernetes\nbaseurl=https://pkgs.k8s.io/core:/stable:/v1.30/rpm/\nenabled=1\ngpgcheck=1\ngpgkey=https://pkgs.k8s.io/core:/stable:/v1.30/rpm/repodata/repomd.xml.key\nexclude=kubelet kubeadm kubectl cri-tools kubernetes-cni\n";
        let s = parse(text, Distro::Rocky9, Arch::Amd64);
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].exclude.len(), 5);
        let a = available(&s, Distro::Rocky9, Arch::Amd64, &[]);
        assert!(a.iter().any(|p| p.name == "kubelet" && p.excluded));
        let a = available(&s, Distro::Rocky9, Arch::Amd64, &["kubernetes".into()]);
        assert!(a.iter().any(|p| p.name == "kubelet" && !p.excluded));
    }

    #[test]
    fn variables_expand() {
        let s = parse(
            "[docker-ce-stable]\nbaseurl=https://download.docker.com/linux/centos/$releasever/$basearch/stable\n",
            Distro::Rocky8,
            Arch::Arm64,
        );
        assert_eq!(
            s[0].baseurl,
            "https://download.docker.com/linux/centos/8/aarch64/stable"
        );
        assert!(metadata_error(&s[0]).is_none());
    }
}
