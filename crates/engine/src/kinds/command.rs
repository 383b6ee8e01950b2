//! `command`: a command line from the playbook, guarded by `creates` (a path whose
//! existence means done) and/or `unless` (a read-only check command; exit 0 means
//! done). Without a guard it runs on every apply, and the plan says so.
//!
//! The command is playbook code: it runs in a subshell of its own exactly as rendered,
//! the text held in a shell variable, never in an argument or the environment (it may
//! hold a fetched secret; see `k8sup_sh` in `command.sh`).

use k8sup_shell::Script;
use toml::Spanned;

use super::{check_path, Change, Fields, Verdict};
use super::{legacy_opt, Kind, RawTask, Renderer};
use crate::encoding::Form;
use crate::error::TaskError;
use crate::host::Platform;
use crate::script::{arg, Section};

/// A `command` task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandSpec {
    pub cmd: String,
    pub creates: Option<String>,
    pub unless: Option<String>,
}

impl Kind for CommandSpec {
    const NAME: &'static str = "command";
    const FIELDS: &'static [&'static str] = &["cmd", "creates", "unless", "needs", "waits_for"];
    const HANDLER: bool = true;
    const FRESH_PROBE: bool = true;
    type Rendered = CommandSpec;

    fn parse(raw: &mut RawTask<'_>) -> Option<CommandSpec> {
        let creates = raw.text("creates").map(Spanned::into_inner);
        let unless = raw.text("unless").map(Spanned::into_inner);
        Some(CommandSpec {
            cmd: raw.required("cmd", Self::NAME)?,
            creates,
            unless,
        })
    }

    fn render(&self, r: &Renderer<'_, '_>) -> Result<CommandSpec, TaskError> {
        Ok(CommandSpec {
            // The only field that may use values from other hosts.
            cmd: r.with_values("cmd", &self.cmd)?,
            creates: r.opt("creates", &self.creates)?,
            unless: r.opt("unless", &self.unless)?,
        })
    }

    fn canonical(spec: &CommandSpec, form: &mut Form) {
        form.text("cmd", &spec.cmd);
        form.optional("creates", spec.creates.as_deref());
        form.optional("unless", spec.unless.as_deref());
    }

    fn legacy_v1_text(spec: &CommandSpec) -> Option<String> {
        Some(format!(
            "Command(CommandSpec {{ cmd: {:?}, creates: {}, unless: {} }})",
            spec.cmd,
            legacy_opt(&spec.creates),
            legacy_opt(&spec.unless)
        ))
    }

    fn probe(spec: &CommandSpec, _: &Platform) -> Result<Option<Script>, String> {
        probe(spec).map(Some)
    }

    fn judge(spec: &CommandSpec, _: &Platform, section: &Section) -> Result<Verdict, String> {
        judge(spec, section)
    }

    fn handler_change(spec: &CommandSpec) -> Result<Change, String> {
        change(spec, "notified".into())
    }
}

pub(super) fn probe(spec: &CommandSpec) -> Result<Script, String> {
    if let Some(creates) = &spec.creates {
        check_path("creates", creates)?;
    }
    if spec.unless.as_deref() == Some("") {
        return Err("`unless` is empty".into());
    }
    Ok(Script::new("k8sup_probe_command")
        .arg(arg(spec.creates.clone().unwrap_or_default())?)
        .arg(arg(spec.unless.clone().unwrap_or_default())?))
}

pub(super) fn judge(spec: &CommandSpec, section: &Section) -> Result<Verdict, String> {
    let fields = Fields::of(section);
    let mut reasons = Vec::new();
    if let Some(creates) = &spec.creates {
        if fields.get("creates")? == "1" {
            return Ok(Verdict::Ok {
                reason: format!("{creates} exists"),
            });
        }
        reasons.push(format!("{creates} does not exist"));
    }
    if let Some(unless) = &spec.unless {
        let status = fields.get("unless")?;
        if status == "0" {
            return Ok(Verdict::Ok {
                reason: format!("`{unless}` succeeded"),
            });
        }
        reasons.push(format!("`{unless}` exited {status}"));
    }
    if reasons.is_empty() {
        reasons.push("no creates/unless guard: runs on every apply".into());
    }
    Ok(Verdict::Change(change(spec, reasons.join("; "))?))
}

pub(super) fn change(spec: &CommandSpec, reason: String) -> Result<Change, String> {
    Ok(Change {
        reason,
        diff: None,
        command: Some(spec.cmd.clone()),
        apply: Script::new("k8sup_apply_command").arg(arg(spec.cmd.clone())?),
        stdin: None,
        writes: None,
    })
}

#[cfg(test)]
mod tests {
    use super::super::section;
    use super::*;

    fn spec(creates: Option<&str>, unless: Option<&str>) -> CommandSpec {
        CommandSpec {
            cmd: "kubeadm init --config /etc/k8sup/kubeadm.yaml".into(),
            creates: creates.map(str::to_string),
            unless: unless.map(str::to_string),
        }
    }

    #[test]
    fn guards_decide() {
        let s = spec(Some("/etc/kubernetes/admin.conf"), Some("test -e /x"));
        assert!(matches!(
            judge(&s, &section("creates=1\nunless=1")).unwrap(),
            Verdict::Ok { .. }
        ));
        assert!(matches!(
            judge(&s, &section("creates=0\nunless=0")).unwrap(),
            Verdict::Ok { .. }
        ));
        let Verdict::Change(c) = judge(&s, &section("creates=0\nunless=1")).unwrap() else {
            panic!("expected a change")
        };
        assert_eq!(
            c.reason,
            "/etc/kubernetes/admin.conf does not exist; `test -e /x` exited 1"
        );
        assert_eq!(
            c.command.as_deref(),
            Some("kubeadm init --config /etc/k8sup/kubeadm.yaml")
        );
        assert_eq!(
            c.apply.render(),
            "k8sup_apply_command 'kubeadm init --config /etc/k8sup/kubeadm.yaml'"
        );
    }

    /// Playbook code runs as `sh -c` would run it, in a fork of the script's shell: its
    /// `exit`, variables, `cd` and `set -e` end with it, it sees no positional
    /// parameters, and the commands it starts do not get its text in their environment.
    #[test]
    fn playbook_code_runs_apart_from_the_script() {
        let dir = tempfile::tempdir().unwrap();
        let env_file = dir.path().join("env");
        let code = format!(
            "token=s3cr3t; cd /; set -e; echo \"n=$#\"; env > {}; exit 7",
            arg(env_file.display().to_string()).unwrap().quoted()
        );
        let script = format!(
            "{}\nset -- a b; k8sup_apply_command {}; echo \"rc=$? pwd=$PWD token=${{token:-}} args=$#\"; false; echo after",
            crate::script::PRELUDE,
            arg(code).unwrap().quoted()
        );
        for shell in ["/bin/sh", "/bin/bash"] {
            let out = std::process::Command::new(shell)
                .arg("-c")
                .arg(&script)
                .current_dir(dir.path())
                .output()
                .unwrap();
            let dir_text = dir.path().display().to_string();
            assert_eq!(
                String::from_utf8_lossy(&out.stdout),
                format!("n=0\nrc=7 pwd={dir_text} token= args=2\nafter\n"),
                "{shell}"
            );
            let env = std::fs::read_to_string(&env_file).unwrap();
            assert!(!env.contains("s3cr3t"), "{shell}: {env}");
        }
    }

    #[test]
    fn unguarded_commands_always_run() {
        let Verdict::Change(c) = judge(&spec(None, None), &section("")).unwrap() else {
            panic!("expected a change")
        };
        assert!(c.reason.contains("runs on every apply"));
    }
}
