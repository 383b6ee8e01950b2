//! `sysctl`: kernel parameters set now (`sysctl -w`) and at boot (a sysctl.d file).

use std::collections::BTreeMap;

use k8sup_shell::Script;

use super::{check_path, file_diff, Change, Fields, FileState, Verdict};
use crate::encoding::decode_b64;
use crate::encoding::sha256_hex;
use super::{Kind, RawTask, Renderer};
use crate::encoding::Form;
use crate::error::TaskError;
use crate::host::Platform;
use crate::script::{arg, Section};

/// A `sysctl` task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SysctlSpec {
    /// Keys and values, in key order.
    pub settings: BTreeMap<String, String>,
    /// The sysctl.d file that sets them at boot.
    pub file: String,
}

impl Kind for SysctlSpec {
    const NAME: &'static str = "sysctl";
    const FIELDS: &'static [&'static str] = &["settings", "file"];
    type Rendered = SysctlSpec;

    fn parse(raw: &mut RawTask<'_>) -> Option<SysctlSpec> {
        let file = raw.required("file", Self::NAME);
        let written = raw.has("settings");
        let Some(settings) = raw.table("settings") else {
            if !written {
                let at = raw.at();
                raw.error(at, "a `sysctl` task needs `settings`");
            }
            return None;
        };
        let settings_at = settings.span().start;
        let mut out = BTreeMap::new();
        for (key, value) in settings.into_inner() {
            let value = match value {
                toml::Value::String(s) => s,
                toml::Value::Integer(i) => i.to_string(),
                other => {
                    raw.error(
                        settings_at,
                        format!("sysctl {key} = {other}: values are strings or integers"),
                    );
                    continue;
                }
            };
            if key.is_empty() || key.contains(|c: char| c.is_whitespace() || c == '=' || c == '/')
            {
                raw.error(settings_at, format!("{key:?} is not a sysctl key"));
            }
            out.insert(key, value);
        }
        Some(SysctlSpec {
            settings: out,
            file: file?,
        })
    }

    fn render(&self, r: &Renderer<'_, '_>) -> Result<SysctlSpec, TaskError> {
        Ok(SysctlSpec {
            settings: self
                .settings
                .iter()
                .map(|(k, v)| Ok((k.clone(), r.field(k, v)?)))
                .collect::<Result<_, TaskError>>()?,
            file: r.field("file", &self.file)?,
        })
    }

    fn canonical(spec: &SysctlSpec, form: &mut Form) {
        // In key order: the settings are a sorted map.
        let mut settings = Form::default();
        for (key, value) in &spec.settings {
            settings.text(key, value);
        }
        form.raw("settings", &settings.finish());
        form.text("file", &spec.file);
    }

    fn legacy_v1_text(spec: &SysctlSpec) -> Option<String> {
        let settings: Vec<String> = spec
            .settings
            .iter()
            .map(|(key, value)| format!("{key:?}: {value:?}"))
            .collect();
        Some(format!(
            "Sysctl(SysctlSpec {{ settings: {{{}}}, file: {:?} }})",
            settings.join(", "),
            spec.file
        ))
    }

    fn probe(spec: &SysctlSpec, _: &Platform) -> Result<Option<Script>, String> {
        probe(spec).map(Some)
    }

    fn probed_files(spec: &SysctlSpec) -> Vec<&str> {
        vec![spec.file.as_str()]
    }

    fn judge(spec: &SysctlSpec, _: &Platform, section: &Section) -> Result<Verdict, String> {
        judge(spec, section)
    }
}

/// The sysctl.d file for `spec`.
pub(crate) fn file_content(spec: &SysctlSpec) -> String {
    let mut out = String::from("# Managed by k8sup.\n");
    for (key, value) in &spec.settings {
        out.push_str(&format!("{key} = {value}\n"));
    }
    out
}

fn normalize(value: &str) -> String {
    value.split_whitespace().collect::<Vec<_>>().join(" ")
}

pub(super) fn probe(spec: &SysctlSpec) -> Result<Script, String> {
    check_path("file", &spec.file)?;
    let mut script = Script::new("k8sup_probe_sysctl")
        .arg(arg(spec.file.clone())?)
        .arg(arg(sha256_hex(file_content(spec).as_bytes()))?);
    for key in spec.settings.keys() {
        super::check_word("sysctl key", key)?;
        script = script.arg(arg(key.clone())?);
    }
    Ok(script)
}

pub(super) fn judge(spec: &SysctlSpec, section: &Section) -> Result<Verdict, String> {
    let fields = Fields::of(section);
    let mut reasons = Vec::new();
    for (key, want) in &spec.settings {
        let have = match fields.opt(&format!("text.{key}")) {
            Some(text) => normalize(text),
            None => normalize(&String::from_utf8_lossy(&decode_b64(
                fields.get(&format!("value.{key}"))?,
            )?)),
        };
        if have != normalize(want) {
            if have.is_empty() {
                reasons.push(format!("{key} does not exist yet"));
            } else {
                reasons.push(format!("{key} is {have}, wanted {want}"));
            }
        }
    }
    let wanted = file_content(spec);
    let state = FileState::read(&fields, &spec.file)?;
    let same = matches!(&state, FileState::Present { sha256, .. } if *sha256 == sha256_hex(wanted.as_bytes()));
    let diff = if same {
        None
    } else {
        reasons.push(format!("{} differs", spec.file));
        file_diff(&spec.file, &state, &wanted)
    };
    if reasons.is_empty() {
        return Ok(Verdict::Ok {
            reason: "every setting is as wanted".into(),
        });
    }
    let mut apply = Script::new("k8sup_apply_sysctl").arg(arg(spec.file.clone())?);
    let mut words = vec![format!("write {}", spec.file)];
    for (key, value) in &spec.settings {
        apply = apply.arg(arg(format!("{key}={value}"))?);
        words.push(format!("sysctl -w {key}={value}"));
    }
    Ok(Verdict::Change(Change {
        reason: reasons.join("; "),
        diff,
        command: Some(words.join(" && ")),
        apply,
        stdin: Some(wanted.into_bytes()),
        // As `k8sup_apply_sysctl` writes it.
        writes: Some(Box::new(super::Staged {
            path: spec.file.clone(),
            mode: "0644".into(),
            owner: String::new(),
            group: String::new(),
            text: None,
        })),
    }))
}

#[cfg(test)]
mod tests {
    use super::super::section;
    use super::*;
    use crate::encoding::encode_b64;

    fn spec() -> SysctlSpec {
        SysctlSpec {
            settings: [
                ("net.ipv4.ip_forward".to_string(), "1".to_string()),
                (
                    "net.ipv4.ip_local_port_range".to_string(),
                    "1024 65535".to_string(),
                ),
            ]
            .into(),
            file: "/etc/sysctl.d/k8s.conf".into(),
        }
    }

    #[test]
    fn values_compare_ignoring_whitespace() {
        let body = format!(
            "value.net.ipv4.ip_forward={}\nvalue.net.ipv4.ip_local_port_range={}\nkind=file\nstat=644 root root\nsha256={}",
            encode_b64(b"1\n"),
            encode_b64(b"1024\t65535\n"),
            sha256_hex(file_content(&spec()).as_bytes())
        );
        assert!(matches!(
            judge(&spec(), &section(&body)).unwrap(),
            Verdict::Ok { .. }
        ));
    }

    #[test]
    fn differing_values_and_file_change() {
        let body = format!(
            "value.net.ipv4.ip_forward={}\nvalue.net.ipv4.ip_local_port_range=\nkind=absent",
            encode_b64(b"0\n")
        );
        let Verdict::Change(c) = judge(&spec(), &section(&body)).unwrap() else {
            panic!("expected a change")
        };
        assert_eq!(
            c.reason,
            "net.ipv4.ip_forward is 0, wanted 1; net.ipv4.ip_local_port_range does not exist yet; /etc/sysctl.d/k8s.conf differs"
        );
        assert_eq!(
            c.apply.render(),
            "k8sup_apply_sysctl /etc/sysctl.d/k8s.conf net.ipv4.ip_forward=1 'net.ipv4.ip_local_port_range=1024 65535'"
        );
    }
}
