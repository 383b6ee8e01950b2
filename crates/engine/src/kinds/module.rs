//! `module`: a kernel module loaded now (`modprobe`) and at boot (a modules-load.d
//! file naming it).

use k8sup_shell::Script;
use toml::Spanned;

use super::{check_path, check_word, file_diff, Change, Fields, FileState, Verdict};
use crate::encoding::sha256_hex;
use super::{legacy_opt, Kind, RawTask, Renderer};
use crate::encoding::Form;
use crate::error::TaskError;
use crate::host::Platform;
use crate::script::{arg, Section};

/// A `module` task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleSpec {
    pub module: String,
    /// The modules-load.d file that loads it at boot; `None` to only load it now.
    pub persist_file: Option<String>,
}

impl Kind for ModuleSpec {
    const NAME: &'static str = "module";
    const FIELDS: &'static [&'static str] = &["module", "persist", "persist_file"];
    type Rendered = ModuleSpec;

    fn parse(raw: &mut RawTask<'_>) -> Option<ModuleSpec> {
        let persist = raw.flag("persist").map(Spanned::into_inner).unwrap_or(true);
        let persist_file = raw.text("persist_file");
        let module = raw.required("module", Self::NAME)?;
        let persist_file = match (persist, persist_file) {
            (false, Some(file)) => {
                raw.error(file.span().start, "`persist_file` with persist = false");
                return None;
            }
            (false, None) => None,
            (true, Some(file)) => Some(file.into_inner()),
            (true, None) => Some(format!("/etc/modules-load.d/{module}.conf")),
        };
        Some(ModuleSpec {
            module,
            persist_file,
        })
    }

    fn render(&self, r: &Renderer<'_, '_>) -> Result<ModuleSpec, TaskError> {
        Ok(ModuleSpec {
            module: r.field("module", &self.module)?,
            persist_file: r.opt("persist_file", &self.persist_file)?,
        })
    }

    fn canonical(spec: &ModuleSpec, form: &mut Form) {
        form.text("module", &spec.module);
        form.optional("persist_file", spec.persist_file.as_deref());
    }

    fn legacy_v1_text(spec: &ModuleSpec) -> Option<String> {
        Some(format!(
            "Module(ModuleSpec {{ module: {:?}, persist_file: {} }})",
            spec.module,
            legacy_opt(&spec.persist_file)
        ))
    }

    fn probe(spec: &ModuleSpec, _: &Platform) -> Result<Option<Script>, String> {
        probe(spec).map(Some)
    }

    fn probed_files(spec: &ModuleSpec) -> Vec<&str> {
        spec.persist_file.iter().map(String::as_str).collect()
    }

    fn judge(spec: &ModuleSpec, _: &Platform, section: &Section) -> Result<Verdict, String> {
        judge(spec, section)
    }
}

fn persist_content(spec: &ModuleSpec) -> String {
    format!("{}\n", spec.module)
}

pub(super) fn probe(spec: &ModuleSpec) -> Result<Script, String> {
    check_word("module", &spec.module)?;
    let script = Script::new("k8sup_probe_module").arg(arg(spec.module.clone())?);
    Ok(match &spec.persist_file {
        Some(file) => {
            check_path("persist_file", file)?;
            script
                .arg(arg(file.clone())?)
                .arg(arg(sha256_hex(persist_content(spec).as_bytes()))?)
        }
        None => script.arg(arg("")?).arg(arg("")?),
    })
}

pub(super) fn judge(spec: &ModuleSpec, section: &Section) -> Result<Verdict, String> {
    let fields = Fields::of(section);
    let mut reasons = Vec::new();
    if fields.get("loaded")? != "1" {
        reasons.push(format!("module {} is not loaded", spec.module));
    }
    let mut diff = None;
    if let Some(file) = &spec.persist_file {
        let state = FileState::read(&fields, file)?;
        let wanted = persist_content(spec);
        let same = matches!(&state, FileState::Present { sha256, .. } if *sha256 == sha256_hex(wanted.as_bytes()));
        if !same {
            reasons.push(format!("{file} does not load it at boot"));
            diff = file_diff(file, &state, &wanted);
        }
    }
    if reasons.is_empty() {
        return Ok(Verdict::Ok {
            reason: format!("module {} is loaded", spec.module),
        });
    }
    let mut command = format!("modprobe {}", spec.module);
    if let Some(file) = &spec.persist_file {
        command.push_str(&format!(" && write {file}"));
    }
    Ok(Verdict::Change(Change {
        reason: reasons.join("; "),
        diff,
        command: Some(command),
        apply: Script::new("k8sup_apply_module")
            .arg(arg(spec.module.clone())?)
            .arg(arg(spec.persist_file.clone().unwrap_or_default())?),
        stdin: None,
        // As `k8sup_apply_module` writes it.
        writes: spec.persist_file.as_ref().map(|file| {
            Box::new(super::Staged {
            path: file.clone(),
            mode: "0644".into(),
            owner: String::new(),
            group: String::new(),
            text: Some(persist_content(spec)),
            })
        }),
    }))
}

#[cfg(test)]
mod tests {
    use super::super::section;
    use super::*;

    fn spec() -> ModuleSpec {
        ModuleSpec {
            module: "br_netfilter".into(),
            persist_file: Some("/etc/modules-load.d/br_netfilter.conf".into()),
        }
    }

    #[test]
    fn loaded_and_persisted_is_ok() {
        let body = format!(
            "loaded=1\nkind=file\nstat=644 root root\nsha256={}",
            sha256_hex(b"br_netfilter\n")
        );
        assert!(matches!(
            judge(&spec(), &section(&body)).unwrap(),
            Verdict::Ok { .. }
        ));
    }

    #[test]
    fn unloaded_or_unpersisted_changes() {
        let Verdict::Change(c) = judge(&spec(), &section("loaded=0\nkind=absent")).unwrap() else {
            panic!("expected a change")
        };
        assert_eq!(
            c.reason,
            "module br_netfilter is not loaded; /etc/modules-load.d/br_netfilter.conf does not load it at boot"
        );
        assert!(c.diff.unwrap().contains("+br_netfilter\n"));
        assert_eq!(
            c.apply.render(),
            "k8sup_apply_module br_netfilter /etc/modules-load.d/br_netfilter.conf"
        );
    }
}
