//! `package`: packages installed at a version, optionally held, with apt (Debian
//! family) or dnf/yum (Red Hat family) as the host's facts say.
//!
//! The probe asks `dpkg-query` or `rpm` and reads the hold from dpkg's selection
//! state or the versionlock list: no package manager lock is taken.

use k8sup_shell::Script;
use toml::Spanned;

use super::{check_word, Change, Fields, Verdict};
use crate::host::{Family, Platform};
use super::{legacy_opt, Kind, RawTask, Renderer};
use crate::encoding::Form;
use crate::error::TaskError;
use crate::script::{arg, Section};

/// A `package` task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageSpec {
    pub packages: Vec<String>,
    /// A version (`1.30.1-1.1`) or a pattern with `*` (`1.30.1-*`); any when `None`.
    pub version: Option<String>,
    pub hold: bool,
}

impl Kind for PackageSpec {
    const NAME: &'static str = "package";
    const FIELDS: &'static [&'static str] = &["packages", "version", "hold"];
    type Rendered = PackageSpec;

    fn parse(raw: &mut RawTask<'_>) -> Option<PackageSpec> {
        let version = raw.text("version").map(Spanned::into_inner);
        let hold = raw.flag("hold").map(Spanned::into_inner).unwrap_or(false);
        let written = raw.has("packages");
        let Some(packages) = raw.list("packages") else {
            if !written {
                let at = raw.at();
                raw.error(at, "a `package` task needs `packages`");
            }
            return None;
        };
        let packages_at = packages.span().start;
        let packages = packages.into_inner();
        if packages.is_empty() {
            raw.error(packages_at, "`packages` is empty");
        }
        Some(PackageSpec {
            packages,
            version,
            hold,
        })
    }

    fn render(&self, r: &Renderer<'_, '_>) -> Result<PackageSpec, TaskError> {
        Ok(PackageSpec {
            packages: self
                .packages
                .iter()
                .map(|p| r.field("packages", p))
                .collect::<Result<_, _>>()?,
            version: r
                .opt("version", &self.version)?
                .filter(|v| !v.is_empty()),
            hold: self.hold,
        })
    }

    fn canonical(spec: &PackageSpec, form: &mut Form) {
        form.list("packages", &spec.packages);
        form.optional("version", spec.version.as_deref());
        if spec.hold {
            form.raw("hold", "true");
        }
    }

    fn legacy_v1_text(spec: &PackageSpec) -> Option<String> {
        Some(format!(
            "Package(PackageSpec {{ packages: {:?}, version: {}, hold: {} }})",
            spec.packages,
            legacy_opt(&spec.version),
            spec.hold
        ))
    }

    fn probe(spec: &PackageSpec, platform: &Platform) -> Result<Option<Script>, String> {
        probe(spec, platform).map(Some)
    }

    fn judge(spec: &PackageSpec, platform: &Platform, section: &Section) -> Result<Verdict, String> {
        judge(spec, platform, section)
    }
}

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
    let sep = match manager {
        Manager::Apt => "=",
        Manager::Dnf => "-",
    };
    let specs: Vec<String> = spec
        .packages
        .iter()
        .map(|name| match &spec.version {
            Some(version) => format!("{name}{sep}{version}"),
            None => name.clone(),
        })
        .collect();
    let rpm_tool = match fields.get("manager") {
        Ok("yum") => &YUM,
        _ => &DNF,
    };
    let commands = install_commands(manager, rpm_tool, spec, &specs)?;
    Ok(Verdict::Change(Change {
        reason: reasons.join("; "),
        diff: None,
        command: Some(commands.render()),
        // An install may bring units: the next service task reloads systemd again.
        apply: Script::new(UNITS_MAY_CHANGE).then(";", commands),
        stdin: None,
        writes: None,
    }))
}

/// What an apply runs before its package commands (script bookkeeping, not a command
/// on the host): systemd's units may change, so the next service task reloads them.
const UNITS_MAY_CHANGE: &str = "k8sup_reloaded=";

/// The commands of a dnf or yum host.
struct RpmTool {
    install: &'static str,
    unlock: &'static str,
    lock: &'static str,
    /// Installs the versionlock plugin, which minimal installs lack, when it is missing.
    plugin: &'static str,
}

const DNF: RpmTool = RpmTool {
    install: "dnf install -y",
    unlock: "dnf versionlock delete",
    lock: "dnf versionlock add",
    plugin: "{ dnf versionlock list >/dev/null 2>&1 || dnf install -y python3-dnf-plugin-versionlock ; }",
};

/// Red Hat 7 and its rebuilds (CentOS 7) have yum only: the probe says which the host has.
const YUM: RpmTool = RpmTool {
    install: "yum install -y",
    unlock: "yum versionlock delete",
    lock: "yum versionlock add",
    plugin: "{ yum versionlock list >/dev/null 2>&1 || yum install -y yum-plugin-versionlock ; }",
};

/// The command lines that install `specs` (and hold the packages when asked): the
/// apply runs exactly these and the plan shows exactly these.
fn install_commands(
    manager: Manager,
    tool: &RpmTool,
    spec: &PackageSpec,
    specs: &[String],
) -> Result<Script, String> {
    let specs: Vec<_> = specs
        .iter()
        .map(|s| arg(s.clone()))
        .collect::<Result<_, _>>()?;
    let names: Vec<_> = spec
        .packages
        .iter()
        .map(|n| arg(n.clone()))
        .collect::<Result<_, _>>()?;
    Ok(match manager {
        Manager::Apt => {
            let install = || {
                Script::new("DEBIAN_FRONTEND=noninteractive apt-get install -y -q")
                    .code("--allow-downgrades --allow-change-held-packages")
                    .args(specs.iter().cloned())
            };
            // From the package lists the host has; only when they lack the package or
            // the version (a repository added since, a pinned version newer than the
            // lists) are they refreshed and the install tried again.
            let mut script = install().code("2>/dev/null").then(
                "||",
                Script::new("{ apt-get update -q")
                    .then("&&", install())
                    .code("; }"),
            );
            if spec.hold {
                for name in &names {
                    script = script.then("&&", Script::new("apt-mark hold").arg(name.clone()));
                }
            }
            script
        }
        Manager::Dnf => {
            // A package held before is released first, or the install could not
            // change its version (failures ignored: it may not be locked).
            let mut script = Script::new("{");
            for name in &names {
                script = script
                    .code(tool.unlock)
                    .arg(name.clone())
                    .code(">/dev/null 2>&1 ;");
            }
            let mut script = script
                .code("true ; }")
                .then(";", Script::new(tool.install).args(specs.iter().cloned()));
            if spec.hold {
                script = script.then("&&", Script::new(tool.plugin));
                for name in &names {
                    script = script.then("&&", Script::new(tool.lock).arg(name.clone()));
                }
            }
            script
        }
    })
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
            distro_version: "9".into(),
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
        let command = "DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
             --allow-downgrades --allow-change-held-packages kubelet=1.30.1 kubeadm=1.30.1 \
             2>/dev/null || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get \
             install -y -q --allow-downgrades --allow-change-held-packages kubelet=1.30.1 \
             kubeadm=1.30.1 ; } && apt-mark hold kubelet && apt-mark hold kubeadm";
        assert_eq!(change.command.as_deref(), Some(command));
        // The apply runs the very command the plan shows.
        assert_eq!(
            change.apply.render(),
            format!("{UNITS_MAY_CHANGE} ; {command}")
        );
        let Verdict::Change(rpm) =
            judge(&spec(), &platform(Family::Redhat), &section(body)).unwrap()
        else {
            panic!("expected a change")
        };
        let command = "{ dnf versionlock delete kubelet >/dev/null 2>&1 ; \
             dnf versionlock delete kubeadm >/dev/null 2>&1 ; true ; } ; \
             dnf install -y kubelet-1.30.1 kubeadm-1.30.1 && { dnf versionlock list >/dev/null 2>&1 \
             || dnf install -y python3-dnf-plugin-versionlock ; } && dnf versionlock add kubelet \
             && dnf versionlock add kubeadm";
        assert_eq!(rpm.command.as_deref(), Some(command));
        assert_eq!(
            rpm.apply.render(),
            format!("{UNITS_MAY_CHANGE} ; {command}")
        );
        let yum_host = format!("manager=yum\n{body}");
        let Verdict::Change(yum) =
            judge(&spec(), &platform(Family::Redhat), &section(&yum_host)).unwrap()
        else {
            panic!("expected a change")
        };
        let command = yum.command.unwrap();
        assert!(
            command.contains("yum install -y kubelet-1.30.1"),
            "{command}"
        );
        assert!(!command.contains("dnf"), "{command}");
    }

    /// The commands a package change runs, run by a real sh against stand-ins that
    /// log their arguments: what the plan shows is what the host is asked to do.
    #[test]
    fn the_commands_run_as_shown() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        for tool in ["apt-get", "apt-mark"] {
            let path = dir.path().join(tool);
            std::fs::write(
                &path,
                format!(
                    "#!/bin/sh\necho \"{tool} $*\" >> {}\n[ \"$1 $6\" != 'install kubelet=1.30.1' ] || [ -e {}.updated ] || exit 100\n[ \"$1\" != update ] || touch {}.updated\n",
                    log.display(),
                    log.display(),
                    log.display()
                ),
            )
            .unwrap();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let body = "installed.kubelet=\nheld.kubelet=0\ninstalled.kubeadm=\nheld.kubeadm=0";
        let Verdict::Change(change) =
            judge(&spec(), &platform(Family::Debian), &section(body)).unwrap()
        else {
            panic!("expected a change")
        };
        let status = std::process::Command::new("sh")
            .arg("-c")
            .arg(change.apply.render())
            .env("PATH", format!("{}:/usr/bin:/bin", dir.path().display()))
            .status()
            .unwrap();
        assert!(status.success());
        let flags =
            "-y -q --allow-downgrades --allow-change-held-packages kubelet=1.30.1 kubeadm=1.30.1";
        assert_eq!(
            std::fs::read_to_string(&log).unwrap(),
            format!(
                "apt-get install {flags}\napt-get update -q\napt-get install {flags}\n\
                 apt-mark hold kubelet\napt-mark hold kubeadm\n"
            )
        );
    }

    #[test]
    fn odd_names_and_unknown_families_are_refused() {
        let mut bad = spec();
        bad.packages = vec!["-oAPT::x".into()];
        assert!(probe(&bad, &platform(Family::Debian)).is_err());
        assert!(probe(&spec(), &platform(Family::Other)).is_err());
    }
}
