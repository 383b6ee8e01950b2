//! `module`: a kernel module loaded now (`modprobe`) and at boot (a modules-load.d
//! file naming it).

use k8sup_shell::Script;

use super::{check_path, check_word, file_diff, Change, Fields, FileState, Verdict};
use crate::encoding::sha256_hex;
use crate::playbook::ModuleSpec;
use crate::script::{arg, Section};

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
