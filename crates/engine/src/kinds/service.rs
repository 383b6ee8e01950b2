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
    let enabled = fields.get("enabled")?;
    let active = fields.get("active")?;
    let mut reasons = Vec::new();
    let mut want = spec.clone();
    match spec.enabled {
        Some(true) if !is_enabled(enabled) => {
            reasons.push(format!("{} is {}", spec.service, or_unknown(enabled)))
        }
        Some(false) if enabled == "enabled" => reasons.push(format!("{} is enabled", spec.service)),
        _ => want.enabled = None,
    }
    match spec.state {
        Some(ServiceState::Started) if !is_running(active) => {
            reasons.push(format!("{} is {}", spec.service, or_unknown(active)))
        }
        Some(ServiceState::Stopped) if is_running(active) => {
            reasons.push(format!("{} is {active}", spec.service))
        }
        Some(ServiceState::Restarted) => reasons.push("notified".into()),
        _ => want.state = None,
    }
    if reasons.is_empty() {
        return Ok(Verdict::Ok {
            reason: format!("{} is {enabled} and {active}", spec.service),
        });
    }
    Ok(Verdict::Change(change(&want, reasons.join("; "))?))
}

fn or_unknown(state: &str) -> &str {
    if state.is_empty() {
        "not found"
    } else {
        state
    }
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
            judge(&spec(), &section("enabled=enabled\nactive=active")).unwrap(),
            Verdict::Ok { .. }
        ));
        assert!(matches!(
            judge(&spec(), &section("enabled=static\nactive=activating")).unwrap(),
            Verdict::Ok { .. }
        ));
    }

    #[test]
    fn only_what_differs_is_applied() {
        let Verdict::Change(c) =
            judge(&spec(), &section("enabled=enabled\nactive=inactive")).unwrap()
        else {
            panic!("expected a change")
        };
        assert_eq!(c.reason, "containerd is inactive");
        assert_eq!(c.apply.render(), "k8sup_apply_service containerd - start");
        let Verdict::Change(c) = judge(&spec(), &section("enabled=\nactive=")).unwrap() else {
            panic!("expected a change")
        };
        assert_eq!(c.reason, "containerd is not found; containerd is not found");
        assert_eq!(c.apply.render(), "k8sup_apply_service containerd 1 start");
        assert_eq!(
            c.command.as_deref(),
            Some("systemctl daemon-reload && systemctl enable containerd && systemctl start containerd")
        );
    }
}
