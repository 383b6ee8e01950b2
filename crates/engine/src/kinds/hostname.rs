//! `hostname`: the host's name, now and across reboots (`hostnamectl`, or `hostname`
//! plus `/etc/hostname` where there is no hostnamectl).

use k8sup_shell::Script;

use super::{Change, Fields, Verdict};
use crate::encoding::decode_b64;
use super::{Kind, RawTask, Renderer};
use crate::encoding::Form;
use crate::error::TaskError;
use crate::host::Platform;
use crate::script::{arg, Section};

/// A `hostname` task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostnameSpec {
    pub hostname: String,
}

impl Kind for HostnameSpec {
    const NAME: &'static str = "hostname";
    const FIELDS: &'static [&'static str] = &["hostname"];
    type Rendered = HostnameSpec;

    fn parse(raw: &mut RawTask<'_>) -> Option<HostnameSpec> {
        Some(HostnameSpec {
            hostname: raw.required("hostname", Self::NAME)?,
        })
    }

    fn render(&self, r: &Renderer<'_, '_>) -> Result<HostnameSpec, TaskError> {
        Ok(HostnameSpec {
            hostname: r.field("hostname", &self.hostname)?,
        })
    }

    fn canonical(spec: &HostnameSpec, form: &mut Form) {
        form.text("hostname", &spec.hostname);
    }

    fn legacy_v1_text(spec: &HostnameSpec) -> Option<String> {
        Some(format!(
            "Hostname(HostnameSpec {{ hostname: {:?} }})",
            spec.hostname
        ))
    }

    fn probe(_: &HostnameSpec, _: &Platform) -> Result<Option<Script>, String> {
        Ok(Some(probe()))
    }

    fn judge(spec: &HostnameSpec, _: &Platform, section: &Section) -> Result<Verdict, String> {
        judge(spec, section)
    }
}

pub(super) fn probe() -> Script {
    Script::new("k8sup_probe_hostname")
}

pub(super) fn judge(spec: &HostnameSpec, section: &Section) -> Result<Verdict, String> {
    super::check_word("hostname", &spec.hostname)?;
    let fields = Fields::of(section);
    // Plain names come as text, anything else base64-encoded.
    let current = match fields.opt("current_text") {
        Some(text) => text.to_string(),
        None => String::from_utf8_lossy(&decode_b64(fields.get("current")?)?).into_owned(),
    };
    let current = current.trim().to_string();
    if current == spec.hostname {
        return Ok(Verdict::Ok {
            reason: format!("the hostname is {current}"),
        });
    }
    Ok(Verdict::Change(Change {
        reason: format!("the hostname is {current:?}, wanted {:?}", spec.hostname),
        diff: None,
        command: Some(format!("hostnamectl set-hostname {}", spec.hostname)),
        apply: Script::new("k8sup_apply_hostname").arg(arg(spec.hostname.clone())?),
        stdin: None,
        writes: None,
    }))
}

#[cfg(test)]
mod tests {
    use super::super::section;
    use super::*;
    use crate::encoding::encode_b64;

    #[test]
    fn compares_the_current_name() {
        let spec = HostnameSpec {
            hostname: "m1".into(),
        };
        let ok = format!("current={}", encode_b64(b"m1\n"));
        assert!(matches!(
            judge(&spec, &section(&ok)).unwrap(),
            Verdict::Ok { .. }
        ));
        let other = format!("current={}", encode_b64(b"localhost\n"));
        let Verdict::Change(c) = judge(&spec, &section(&other)).unwrap() else {
            panic!("expected a change")
        };
        assert_eq!(c.reason, "the hostname is \"localhost\", wanted \"m1\"");
        assert_eq!(c.apply.render(), "k8sup_apply_hostname m1");
        let text = judge(&spec, &section("current_text=m1")).unwrap();
        assert!(matches!(text, Verdict::Ok { .. }));
    }
}
