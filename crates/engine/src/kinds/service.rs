//! `service`: a systemd unit enabled or disabled, started or stopped; in a handler,
//! restarted when notified.

use k8sup_shell::Script;

use super::{check_word, Change, Fields, Verdict};
use crate::playbook::{ServiceSpec, ServiceState};
use crate::script::{arg, Section};

pub(super) fn probe(spec: &ServiceSpec) -> Result<Script, String> {
    check_word("service", &spec.service)?;
    Ok(Script::new("k8sup_probe_service").arg(arg(spec.service.clone())?))
}

fn is_enabled(state: &str) -> bool {
    matches!(
        state,
        "enabled" | "enabled-runtime" | "static" | "alias" | "indirect" | "generated"
    )
}

fn is_running(state: &str) -> bool {
    matches!(state, "active" | "activating" | "reloading")
}

pub(super) fn judge(spec: &ServiceSpec, section: &Section) -> Result<Verdict, String> {
    let fields = Fields::of(section);
    let load = fields.get("load")?;
    let enabled = fields.get("enabled")?;
    let active = fields.get("active")?;
    // A unit systemd does not have is one reason, however many of its states differ.
    let absent = if load == "not-found" {
        Some(format!("{} has no unit file", spec.service))
    } else if load.is_empty() && enabled.is_empty() && active.is_empty() {
        Some(format!("systemctl shows nothing of {}", spec.service))
    } else {
        None
    };
    let is = |state: &str| {
        absent
            .clone()
            .unwrap_or_else(|| format!("{} is {state}", spec.service))
    };
    let mut reasons = Vec::new();
    let mut want = spec.clone();
    match spec.enabled {
        Some(true) if !is_enabled(enabled) => reasons.push(is(enabled)),
        Some(false) if enabled == "enabled" => reasons.push(is(enabled)),
        _ => want.enabled = None,
    }
    match spec.state {
        Some(ServiceState::Started) if !is_running(active) => reasons.push(is(active)),
        Some(ServiceState::Stopped) if is_running(active) => reasons.push(is(active)),
        Some(ServiceState::Restarted) => reasons.push("notified".into()),
        _ => want.state = None,
    }
    reasons.dedup();
    if reasons.is_empty() {
        return Ok(Verdict::Ok {
            reason: format!("{} is {enabled} and {active}", spec.service),
        });
    }
    Ok(Verdict::Change(change(&want, reasons.join("; "))?))
}

/// The apply that brings the unit to `spec` (fields left `None` are not touched).
pub(super) fn change(spec: &ServiceSpec, reason: String) -> Result<Change, String> {
    check_word("service", &spec.service)?;
    let enable = match spec.enabled {
        Some(true) => "1",
        Some(false) => "0",
        None => "-",
    };
    let action = match spec.state {
        Some(ServiceState::Started) => "start",
        Some(ServiceState::Stopped) => "stop",
        Some(ServiceState::Restarted) => "restart",
        None => "-",
    };
    let mut words = vec!["systemctl daemon-reload".to_string()];
    match spec.enabled {
        Some(true) => words.push(format!("systemctl enable {}", spec.service)),
        Some(false) => words.push(format!("systemctl disable {}", spec.service)),
        None => {}
    }
    if action != "-" {
        words.push(format!("systemctl {action} {}", spec.service));
    }
    Ok(Change {
        reason,
        diff: None,
        command: Some(words.join(" && ")),
        apply: Script::new("k8sup_apply_service")
            .arg(arg(spec.service.clone())?)
            .arg(arg(enable)?)
            .arg(arg(action)?),
        stdin: None,
    })
}

#[cfg(test)]
mod tests {
    use super::super::section;
    use super::*;

    fn spec() -> ServiceSpec {
        ServiceSpec {
            service: "containerd".into(),
            enabled: Some(true),
            state: Some(ServiceState::Started),
        }
    }

    #[test]
    fn enabled_and_active_is_ok() {
        assert!(matches!(
            judge(
                &spec(),
                &section("load=loaded\nenabled=enabled\nactive=active")
            )
            .unwrap(),
            Verdict::Ok { .. }
        ));
        assert!(matches!(
            judge(
                &spec(),
                &section("load=loaded\nenabled=static\nactive=activating")
            )
            .unwrap(),
            Verdict::Ok { .. }
        ));
    }

    #[test]
    fn only_what_differs_is_applied() {
        let Verdict::Change(c) = judge(
            &spec(),
            &section("load=loaded\nenabled=enabled\nactive=inactive"),
        )
        .unwrap() else {
            panic!("expected a change")
        };
        assert_eq!(c.reason, "containerd is inactive");
        assert_eq!(c.apply.render(), "k8sup_apply_service containerd - start");
        let Verdict::Change(c) = judge(
            &spec(),
            &section("load=loaded\nenabled=disabled\nactive=failed"),
        )
        .unwrap() else {
            panic!("expected a change")
        };
        assert_eq!(c.reason, "containerd is disabled; containerd is failed");
        assert_eq!(c.apply.render(), "k8sup_apply_service containerd 1 start");
    }

    /// What systemctl shows for a unit it has no file of (`LoadState=not-found`,
    /// `ActiveState=inactive`, an empty `UnitFileState`), or nothing at all, is one reason.
    #[test]
    fn a_missing_unit_is_said_once() {
        for (probed, reason) in [
            (
                "load=not-found\nenabled=\nactive=inactive",
                "containerd has no unit file",
            ),
            (
                "load=\nenabled=\nactive=",
                "systemctl shows nothing of containerd",
            ),
        ] {
            let Verdict::Change(c) = judge(&spec(), &section(probed)).unwrap() else {
                panic!("expected a change")
            };
            assert_eq!(c.reason, reason);
            assert_eq!(c.apply.render(), "k8sup_apply_service containerd 1 start");
            assert_eq!(
                c.command.as_deref(),
                Some("systemctl daemon-reload && systemctl enable containerd && systemctl start containerd")
            );
        }
        // Nothing to stop or disable in a unit that is not there.
        let stopped = ServiceSpec {
            enabled: Some(false),
            state: Some(ServiceState::Stopped),
            ..spec()
        };
        assert!(matches!(
            judge(
                &stopped,
                &section("load=not-found\nenabled=\nactive=inactive")
            )
            .unwrap(),
            Verdict::Ok { .. }
        ));
    }
}
