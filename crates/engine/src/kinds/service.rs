//! `service`: a systemd unit enabled or disabled, started or stopped; in a handler,
//! restarted when notified.

use k8sup_shell::Script;
use toml::Spanned;

use super::{check_word, Change, Fields, Verdict};
use super::{Kind, RawTask, Renderer};
use crate::encoding::Form;
use crate::error::TaskError;
use crate::host::Platform;
use crate::script::{arg, Section};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceState {
    Started,
    Stopped,
    /// Only in handlers: restart when notified.
    Restarted,
}

/// A `service` task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceSpec {
    pub service: String,
    pub enabled: Option<bool>,
    pub state: Option<ServiceState>,
}

impl Kind for ServiceSpec {
    const NAME: &'static str = "service";
    const FIELDS: &'static [&'static str] = &["service", "enabled", "state"];
    const HANDLER: bool = true;
    type Rendered = ServiceSpec;

    fn parse(raw: &mut RawTask<'_>) -> Option<ServiceSpec> {
        let at = raw.at();
        let enabled = raw.flag("enabled").map(Spanned::into_inner);
        let state = match raw.text("state") {
            None => None,
            Some(state) => match state.get_ref().as_str() {
                "started" => Some(ServiceState::Started),
                "stopped" => Some(ServiceState::Stopped),
                "restarted" if raw.handler() => Some(ServiceState::Restarted),
                "restarted" => {
                    raw.error(
                        state.span().start,
                        "state = \"restarted\" is only for handlers: a task would restart on every run",
                    );
                    return None;
                }
                other => {
                    raw.error(
                        state.span().start,
                        format!("state {other:?} is not one of started, stopped, restarted"),
                    );
                    return None;
                }
            },
        };
        let service = raw.required("service", Self::NAME)?;
        if enabled.is_none() && state.is_none() {
            raw.error(at, "a `service` task needs `enabled` or `state`");
        }
        Some(ServiceSpec {
            service,
            enabled,
            state,
        })
    }

    fn render(&self, r: &Renderer<'_, '_>) -> Result<ServiceSpec, TaskError> {
        Ok(ServiceSpec {
            service: r.field("service", &self.service)?,
            ..self.clone()
        })
    }

    fn canonical(spec: &ServiceSpec, form: &mut Form) {
        form.text("service", &spec.service);
        if let Some(enabled) = spec.enabled {
            form.raw("enabled", if enabled { "true" } else { "false" });
        }
        if let Some(state) = spec.state {
            form.text(
                "state",
                match state {
                    ServiceState::Started => "started",
                    ServiceState::Stopped => "stopped",
                    ServiceState::Restarted => "restarted",
                },
            );
        }
    }

    fn legacy_v1_text(spec: &ServiceSpec) -> Option<String> {
        let enabled = match spec.enabled {
            Some(enabled) => format!("Some({enabled})"),
            None => "None".into(),
        };
        let state = match spec.state {
            Some(ServiceState::Started) => "Some(Started)",
            Some(ServiceState::Stopped) => "Some(Stopped)",
            Some(ServiceState::Restarted) => "Some(Restarted)",
            None => "None",
        };
        Some(format!(
            "Service(ServiceSpec {{ service: {:?}, enabled: {enabled}, state: {state} }})",
            spec.service
        ))
    }

    fn probe(spec: &ServiceSpec, _: &Platform) -> Result<Option<Script>, String> {
        probe(spec).map(Some)
    }

    fn judge(spec: &ServiceSpec, _: &Platform, section: &Section) -> Result<Verdict, String> {
        judge(spec, section)
    }

    fn handler_change(spec: &ServiceSpec) -> Result<Change, String> {
        let spec = ServiceSpec {
            state: Some(spec.state.unwrap_or(ServiceState::Restarted)),
            ..spec.clone()
        };
        change(&spec, "notified".into())
    }
}

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

/// What an apply runs before its systemctl commands: systemd reloads its units once
/// per script, and again only after something else was written, installed or run.
const RELOAD_UNITS: &str = "k8sup_reload_units";

/// What an apply runs after a `systemctl enable` or `disable`: those reload systemd's
/// units themselves once their symlinks are made (systemctl's enable and disable
/// verbs, unless given `--no-reload`; `--now` starts or stops the units after that
/// reload), so the script knows its units are fresh, as after [`RELOAD_UNITS`].
const UNITS_RELOADED: &str = "k8sup_reloaded=1";

/// The apply that brings the unit to `spec` (fields left `None` are not touched):
/// the systemctl commands the plan shows, after the reload of the units; when the
/// first is an `enable` or a `disable`, that command is the reload.
pub(super) fn change(spec: &ServiceSpec, reason: String) -> Result<Change, String> {
    check_word("service", &spec.service)?;
    let unit = || arg(spec.service.clone());
    let mut commands: Vec<Script> = Vec::new();
    match (spec.enabled, spec.state) {
        (Some(true), Some(ServiceState::Started)) => {
            commands.push(Script::new("systemctl enable --now").arg(unit()?))
        }
        (enabled, state) => {
            match enabled {
                Some(true) => commands.push(Script::new("systemctl enable").arg(unit()?)),
                Some(false) => commands.push(Script::new("systemctl disable").arg(unit()?)),
                None => {}
            }
            let action = match state {
                Some(ServiceState::Started) => Some("systemctl start"),
                Some(ServiceState::Stopped) => Some("systemctl stop"),
                Some(ServiceState::Restarted) => Some("systemctl restart"),
                None => None,
            };
            if let Some(action) = action {
                commands.push(Script::new(action).arg(unit()?));
            }
        }
    }
    // Both arms above put the `enable` or `disable` first when `spec.enabled` is set.
    let reloads_itself = spec.enabled.is_some();
    let mut apply = (!reloads_itself).then(|| Script::new(RELOAD_UNITS));
    let mut shown: Option<Script> = None;
    for (i, command) in commands.into_iter().enumerate() {
        let step = if i == 0 && reloads_itself {
            command.clone().then("&&", Script::new(UNITS_RELOADED))
        } else {
            command.clone()
        };
        apply = Some(match apply {
            None => step,
            Some(apply) => apply.then("&&", step),
        });
        shown = Some(match shown {
            None => command,
            Some(shown) => shown.then("&&", command),
        });
    }
    let (Some(command), Some(apply)) = (shown, apply) else {
        return Err("a service task that changes nothing".into());
    };
    Ok(Change {
        reason,
        diff: None,
        command: Some(command.render()),
        apply,
        stdin: None,
        writes: None,
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
        assert_eq!(c.command.as_deref(), Some("systemctl start containerd"));
        assert_eq!(
            c.apply.render(),
            format!("{RELOAD_UNITS} && systemctl start containerd")
        );
        let Verdict::Change(c) = judge(
            &spec(),
            &section("load=loaded\nenabled=disabled\nactive=failed"),
        )
        .unwrap() else {
            panic!("expected a change")
        };
        assert_eq!(c.reason, "containerd is disabled; containerd is failed");
        assert_eq!(
            c.command.as_deref(),
            Some("systemctl enable --now containerd")
        );
        // The apply runs the very commands the plan shows.
        assert_eq!(
            c.apply.render(),
            format!("systemctl enable --now containerd && {UNITS_RELOADED}")
        );
        let stop = ServiceSpec {
            enabled: Some(false),
            state: Some(ServiceState::Stopped),
            ..spec()
        };
        let Verdict::Change(c) = judge(
            &stop,
            &section("load=loaded\nenabled=enabled\nactive=active"),
        )
        .unwrap() else {
            panic!("expected a change")
        };
        assert_eq!(
            c.apply.render(),
            format!("systemctl disable containerd && {UNITS_RELOADED} && systemctl stop containerd")
        );
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
            assert_eq!(
                c.command.as_deref(),
                Some("systemctl enable --now containerd")
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
