//! `package`: packages installed at a version, optionally held, with apt (Debian
//! family) or dnf/yum (Red Hat family) as the host's facts say.
//!
//! The probe asks `dpkg-query` or `rpm` and reads the hold from dpkg's selection
//! state or the versionlock list: no package manager lock is taken.

use k8sup_shell::Script;

use super::{check_word, Change, Fields, Verdict};
use crate::host::{Family, Platform};
use crate::playbook::PackageSpec;
use crate::script::{arg, Section};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Manager {
    Apt,
    Dnf,
}

fn manager(platform: &Platform) -> Result<Manager, String> {
    match platform.family {
        Family::Debian => Ok(Manager::Apt),
        Family::Redhat => Ok(Manager::Dnf),
        Family::Other => Err(format!(
            "no package manager known for distro {:?}",
            platform.distro
        )),
    }
}

fn check(spec: &PackageSpec) -> Result<(), String> {
    for name in &spec.packages {
        check_word("package", name)?;
    }
    if let Some(version) = &spec.version {
        check_word("version", version)?;
    }
    Ok(())
}

pub(super) fn probe(spec: &PackageSpec, platform: &Platform) -> Result<Script, String> {
    check(spec)?;
    let call = match manager(platform)? {
        Manager::Apt => "k8sup_probe_apt",
        Manager::Dnf => "k8sup_probe_rpm",
    };
    let mut script = Script::new(call);
    for name in &spec.packages {
        script = script.arg(arg(name.clone())?);
    }
    Ok(script)
}

/// Whether `installed` satisfies the wanted `pattern` (`*` matches any text); the
/// epoch (`1:`) is ignored unless the pattern names one (as apt needs for
/// Docker's `5:27.3.1-*`), and a pattern without release matches any release.
pub(crate) fn version_matches(pattern: &str, installed: &str) -> bool {
    let has_epoch = |v: &str| {
        v.split_once(':').is_some_and(|(epoch, _)| {
            !epoch.is_empty() && epoch.chars().all(|c| c.is_ascii_digit())
        })
    };
    let installed = match installed.split_once(':') {
        Some((_, rest)) if has_epoch(installed) && !has_epoch(pattern) => rest,
        _ => installed,
    };
    glob(pattern, installed) || glob(&format!("{pattern}-*"), installed)
}

fn glob(pattern: &str, text: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == text,
        Some((head, tail)) => {
            let Some(rest) = text.strip_prefix(head) else {
                return false;
            };
            (0..=rest.len())
                .filter(|i| rest.is_char_boundary(*i))
                .any(|i| glob(tail, &rest[i..]))
        }
    }
}

pub(super) fn judge(
    spec: &PackageSpec,
    platform: &Platform,
    section: &Section,
) -> Result<Verdict, String> {
    let manager = manager(platform)?;
    let fields = Fields::of(section);
    let mut reasons = Vec::new();
    for name in &spec.packages {
        let installed = fields.get(&format!("installed.{name}"))?;
        let held = fields.get(&format!("held.{name}"))? == "1";
        match (&spec.version, installed) {
            (_, "") => reasons.push(format!("{name} is not installed")),
            (Some(want), have) if !version_matches(want, have) => {
                reasons.push(format!("{name} is {have}, wanted {want}"))
            }
            _ => {}
        }
        if spec.hold && !held {
            reasons.push(format!("{name} is not held"));
        }
    }
    if reasons.is_empty() {
        return Ok(Verdict::Ok {
            reason: format!("{} installed as wanted", spec.packages.join(", ")),
        });
    }
    let (tool, sep) = match manager {
        Manager::Apt => ("apt", "="),
        Manager::Dnf => ("dnf", "-"),
    };
    let specs: Vec<String> = spec
        .packages
        .iter()
        .map(|name| match &spec.version {
            Some(version) => format!("{name}{sep}{version}"),
            None => name.clone(),
        })
        .collect();
    let mut apply = Script::new("k8sup_apply_pkg")
        .arg(arg(tool)?)
        .arg(arg(if spec.hold { "1" } else { "0" })?);
    for (name, install) in spec.packages.iter().zip(&specs) {
        apply = apply.arg(arg(format!("{name}|{install}"))?);
    }
    let mut command = match manager {
        Manager::Apt => format!(
            "apt-get install -y {0} || (apt-get update && apt-get install -y {0})",
            specs.join(" ")
        ),
        Manager::Dnf => format!("dnf install -y {}", specs.join(" ")),
    };
    if spec.hold {
        command.push_str(&match manager {
            Manager::Apt => format!(" && apt-mark hold {}", spec.packages.join(" ")),
            Manager::Dnf => format!(
                " && (the versionlock plugin, when missing) && dnf versionlock add {}",
                spec.packages.join(" ")
            ),
        });
    }
    Ok(Verdict::Change(Change {
        reason: reasons.join("; "),
        diff: None,
        command: Some(command),
        apply,
        stdin: None,
    }))
}

#[cfg(test)]
mod tests {
    use super::super::section;
    use super::*;

    fn platform(family: Family) -> Platform {
        Platform {
            arch: "amd64".into(),
            family,
            distro: "x".into(),
            distro_version: "1".into(),
        }
    }

    fn spec() -> PackageSpec {
        PackageSpec {
            packages: vec!["kubelet".into(), "kubeadm".into()],
            version: Some("1.30.1".into()),
            hold: true,
        }
    }

    #[test]
    fn versions_match_with_globs_epochs_and_releases() {
        assert!(version_matches("1.30.1-1.1", "1.30.1-1.1"));
        assert!(version_matches("1.30.1", "1.30.1-1.1"));
        assert!(version_matches("1.30.1-*", "1.30.1-150500.1.1"));
        assert!(version_matches("1.30.*", "1:1.30.9-1"));
        assert!(!version_matches("1.30.1", "1.30.10-1.1"));
        assert!(!version_matches("1.30.1-*", "1.29.1-1.1"));
        assert!(version_matches(
            "5:27.3.1-*",
            "5:27.3.1-1~ubuntu.22.04~jammy"
        ));
        assert!(!version_matches(
            "5:27.3.1-*",
            "5:27.2.1-1~ubuntu.22.04~jammy"
        ));
        assert!(!version_matches("5:27.3.1-*", "27.3.1-1"));
    }

    #[test]
    fn installed_and_held_is_ok() {
        let body = "installed.kubelet=1.30.1-1.1\nheld.kubelet=1\ninstalled.kubeadm=1.30.1-1.1\nheld.kubeadm=1";
        let verdict = judge(&spec(), &platform(Family::Debian), &section(body)).unwrap();
        assert!(matches!(verdict, Verdict::Ok { .. }), "{verdict:?}");
    }

    #[test]
    fn missing_wrong_version_and_unheld_are_reasons() {
        let body =
            "installed.kubelet=1.29.0-1.1\nheld.kubelet=1\ninstalled.kubeadm=\nheld.kubeadm=0";
        let Verdict::Change(change) =
            judge(&spec(), &platform(Family::Debian), &section(body)).unwrap()
        else {
            panic!("expected a change")
        };
        assert_eq!(
            change.reason,
            "kubelet is 1.29.0-1.1, wanted 1.30.1; kubeadm is not installed; kubeadm is not held"
        );
        assert_eq!(
            change.command.as_deref(),
            Some("apt-get install -y kubelet=1.30.1 kubeadm=1.30.1 || (apt-get update && apt-get install -y kubelet=1.30.1 kubeadm=1.30.1) && apt-mark hold kubelet kubeadm")
        );
        assert_eq!(
            change.apply.render(),
            "k8sup_apply_pkg apt 1 'kubelet|kubelet=1.30.1' 'kubeadm|kubeadm=1.30.1'"
        );
        let Verdict::Change(rpm) =
            judge(&spec(), &platform(Family::Redhat), &section(body)).unwrap()
        else {
            panic!("expected a change")
        };
        assert!(rpm.apply.render().contains("'kubelet|kubelet-1.30.1'"));
    }

    #[test]
    fn odd_names_and_unknown_families_are_refused() {
        let mut bad = spec();
        bad.packages = vec!["-oAPT::x".into()];
        assert!(probe(&bad, &platform(Family::Debian)).is_err());
        assert!(probe(&spec(), &platform(Family::Other)).is_err());
    }
}
