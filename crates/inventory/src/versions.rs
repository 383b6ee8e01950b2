//! The Kubernetes versions k8sup knows how to install, and what follows from one.
//!
//! Packages come from the community repositories (pkgs.k8s.io, one repository
//! per minor version), which start at 1.24; the legacy Google repositories are
//! gone, so older versions cannot be installed by any means k8sup has.

use std::fmt;

/// Minor versions k8sup installs, each with the newest patch release it knows
/// and the pause image tag kubeadm of that minor version expects.
const KNOWN: &[(u32, u32, &str)] = &[
    (24, 17, "3.7"),
    (25, 16, "3.8"),
    (26, 15, "3.9"),
    (27, 16, "3.9"),
    (28, 15, "3.9"),
    (29, 15, "3.9"),
    (30, 14, "3.9"),
    (31, 14, "3.10"),
    (32, 10, "3.10"),
    (33, 6, "3.10"),
    (34, 2, "3.10"),
];

/// A Kubernetes release k8sup can install: 1.MINOR.PATCH.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KubeVersion {
    pub minor: u32,
    pub patch: u32,
}

/// Why a version string was not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VersionError {
    /// Not of the form 1.MINOR or 1.MINOR.PATCH.
    Malformed,
    /// A version k8sup has no way to install.
    Unknown { oldest: String, newest: String },
}

impl KubeVersion {
    /// Parses "1.30.4", "v1.30.4" or "1.30" (the newest 1.30.x known).
    pub fn parse(text: &str) -> Result<KubeVersion, VersionError> {
        let text = text.trim();
        let digits = text.strip_prefix('v').unwrap_or(text);
        let parts: Vec<&str> = digits.split('.').collect();
        let number = |s: &str| -> Result<u32, VersionError> {
            if s.is_empty() || s.len() > 6 || !s.bytes().all(|b| b.is_ascii_digit()) {
                return Err(VersionError::Malformed);
            }
            s.parse().map_err(|_| VersionError::Malformed)
        };
        let (major, minor, patch) = match parts.as_slice() {
            [major, minor] => (number(major)?, number(minor)?, None),
            [major, minor, patch] => (number(major)?, number(minor)?, Some(number(patch)?)),
            _ => return Err(VersionError::Malformed),
        };
        let unknown = || VersionError::Unknown {
            oldest: Self::oldest().to_string(),
            newest: Self::newest().to_string(),
        };
        if major != 1 {
            return Err(unknown());
        }
        let &(_, newest_patch, _) = KNOWN
            .iter()
            .find(|(m, _, _)| *m == minor)
            .ok_or_else(unknown)?;
        match patch {
            None => Ok(KubeVersion {
                minor,
                patch: newest_patch,
            }),
            Some(p) if p <= newest_patch => Ok(KubeVersion { minor, patch: p }),
            Some(_) => Err(unknown()),
        }
    }

    pub fn oldest() -> KubeVersion {
        let (minor, patch, _) = KNOWN[0];
        KubeVersion { minor, patch }
    }

    pub fn newest() -> KubeVersion {
        let (minor, patch, _) = KNOWN[KNOWN.len() - 1];
        KubeVersion { minor, patch }
    }

    /// The pause (sandbox) image tag this version's kubeadm expects.
    pub fn pause_tag(&self) -> &'static str {
        KNOWN
            .iter()
            .find(|(m, _, _)| *m == self.minor)
            .map_or("3.10", |(_, _, tag)| tag)
    }

    /// Since 1.24 the kubelet has no dockershim: Docker needs cri-dockerd.
    pub fn needs_cri_dockerd(&self) -> bool {
        self.minor >= 24
    }

    /// The kubeadm configuration API this version reads best: v1beta4 from 1.31.
    pub fn kubeadm_api(&self) -> &'static str {
        if self.minor >= 31 {
            "kubeadm.k8s.io/v1beta4"
        } else {
            "kubeadm.k8s.io/v1beta3"
        }
    }

    /// "v1.30" as used in the pkgs.k8s.io repository path.
    pub fn repo_minor(&self) -> String {
        format!("v1.{}", self.minor)
    }
}

impl fmt::Display for KubeVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "1.{}.{}", self.minor, self.patch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_full_partial_and_prefixed_versions() {
        assert_eq!(
            KubeVersion::parse("1.30.4"),
            Ok(KubeVersion {
                minor: 30,
                patch: 4
            })
        );
        assert_eq!(KubeVersion::parse("v1.30.4"), KubeVersion::parse("1.30.4"));
        assert_eq!(KubeVersion::parse("1.30").unwrap().patch, 14);
    }

    #[test]
    fn refuses_what_cannot_be_installed() {
        assert!(matches!(
            KubeVersion::parse("1.20.1"),
            Err(VersionError::Unknown { .. })
        ));
        assert!(matches!(
            KubeVersion::parse("1.30.99"),
            Err(VersionError::Unknown { .. })
        ));
        assert!(matches!(
            KubeVersion::parse("2.0.0"),
            Err(VersionError::Unknown { .. })
        ));
        for bad in ["", "1", "1.x", "1.30.4.1", "latest", "1.-3", "1.30 .1"] {
            assert_eq!(
                KubeVersion::parse(bad),
                Err(VersionError::Malformed),
                "{bad}"
            );
        }
    }

    #[test]
    fn derived_settings_follow_the_version() {
        let v = |s| KubeVersion::parse(s).unwrap();
        assert_eq!(v("1.30.4").kubeadm_api(), "kubeadm.k8s.io/v1beta3");
        assert_eq!(v("1.31.0").kubeadm_api(), "kubeadm.k8s.io/v1beta4");
        assert_eq!(v("1.30.4").pause_tag(), "3.9");
        assert!(v("1.24.0").needs_cri_dockerd());
        assert_eq!(v("1.30.4").repo_minor(), "v1.30");
    }
}
