//! `directory`: a directory exists at `path` (made with its parents when missing).

use k8sup_shell::Script;

use super::{check_path, Change, Fields, Kind, RawTask, Renderer, Verdict};
use crate::encoding::Form;
use crate::error::TaskError;
use crate::host::Platform;
use crate::script::{arg, Section};

/// A `directory` task: `path` is a template, rendered per host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectorySpec {
    pub path: String,
}

impl Kind for DirectorySpec {
    const NAME: &'static str = "directory";
    const FIELDS: &'static [&'static str] = &["path"];
    type Rendered = DirectorySpec;

    fn parse(raw: &mut RawTask<'_>) -> Option<DirectorySpec> {
        Some(DirectorySpec {
            path: raw.required("path", Self::NAME)?,
        })
    }

    fn render(&self, r: &Renderer<'_, '_>) -> Result<DirectorySpec, TaskError> {
        Ok(DirectorySpec {
            path: r.field("path", &self.path)?,
        })
    }

    fn canonical(spec: &DirectorySpec, form: &mut Form) {
        form.text("path", &spec.path);
    }

    fn probe(spec: &DirectorySpec, _: &Platform) -> Result<Option<Script>, String> {
        check_path("path", &spec.path)?;
        // The prelude's file probe says `kind=dir`, `kind=absent` or `kind=file`.
        let probe = Script::new("k8sup_probe_file")
            .arg(arg(spec.path.clone())?)
            .arg(arg("")?)
            .arg(arg("nocontent")?);
        Ok(Some(probe))
    }

    fn judge(spec: &DirectorySpec, _: &Platform, section: &Section) -> Result<Verdict, String> {
        match Fields::of(section).get("kind")? {
            "dir" => Ok(Verdict::Ok {
                reason: format!("{} is a directory", spec.path),
            }),
            "absent" => {
                let apply = Script::new("mkdir")
                    .arg(arg("-p")?)
                    .arg(arg("--")?)
                    .arg(arg(spec.path.clone())?);
                Ok(Verdict::Change(Change {
                    reason: format!("{} does not exist", spec.path),
                    diff: None,
                    // The plan shows the very command the apply runs.
                    command: Some(apply.render()),
                    apply,
                    stdin: None,
                    writes: None,
                }))
            }
            other => Err(format!("{} is a {other}, not a directory", spec.path)),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::Path;
    use std::sync::Arc;

    use crate::testing::LocalTransport;
    use crate::{
        Engine, EngineOptions, Family, HostSpec, Platform, Playbook, TaskStatus, TemplateSet,
    };

    /// The example's code as docs/playbooks.md shows it: this file up to its tests.
    #[test]
    fn the_docs_show_this_kind_as_it_is() {
        let docs = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/playbooks.md"),
        )
        .expect("docs/playbooks.md");
        let code = include_str!("directory.rs");
        let code = code.split("#[cfg(test)]\nmod tests").next().expect("code");
        let block = docs
            .split("```rust\n//! `directory`")
            .nth(1)
            .and_then(|rest| rest.split("```\n").next())
            .map(|rest| format!("//! `directory`{rest}"))
            .expect("docs/playbooks.md shows kinds/directory.rs in a ```rust block");
        assert_eq!(block.trim_end(), code.trim_end());
        assert!(
            docs.contains("    directory => Directory(DirectorySpec),"),
            "the docs show its registration line"
        );
    }

    #[test]
    fn a_directory_task_is_planned_applied_and_then_ok() {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path().display().to_string();
        let playbook = Playbook::parse(
            "example.toml",
            r#"
[[play]]
name = "example"
hosts = "all"

[[play.task]]
name = "data directory"
kind = "directory"
path = "{{ root }}/var/lib/app"
"#,
        )
        .expect("the example playbook parses");
        let host = HostSpec {
            name: "h1".into(),
            roles: ["node".to_string()].into(),
            labels: BTreeMap::new(),
            first_master: false,
            platform: Platform {
                arch: "amd64".into(),
                family: Family::Debian,
                distro: "debian".into(),
                distro_version: "12".into(),
            },
            context: serde_json::json!({ "root": root }).into(),
            artifacts: BTreeMap::new(),
            transport: Arc::new(LocalTransport::new("h1").with_cwd(dir.path())),
        };
        let engine = Engine::new(
            playbook,
            &TemplateSet::new(),
            EngineOptions {
                state_path: format!("{root}/state.json"),
                ..EngineOptions::default()
            },
        );
        let hosts = [host];
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let target = dir.path().join("var/lib/app");

        let plan = runtime.block_on(engine.plan(&hosts)).expect("plan");
        let task = &plan.hosts[0].tasks[0];
        assert_eq!(task.kind, "directory");
        assert_eq!(task.status, TaskStatus::Change, "{plan:#?}");
        assert_eq!(task.reason, format!("{} does not exist", target.display()));
        assert_eq!(
            task.command.as_deref(),
            Some(format!("mkdir -p -- {}", target.display()).as_str())
        );
        assert!(!target.exists(), "a plan changed nothing");

        let report = runtime
            .block_on(engine.apply(&hosts, Some(&plan), Arc::new(|_| {})))
            .expect("apply");
        assert_eq!(report.hosts[0].changed, 1, "{report:#?}");
        assert!(target.is_dir());

        let again = runtime.block_on(engine.plan(&hosts)).expect("plan");
        let task = &again.hosts[0].tasks[0];
        assert_eq!(task.status, TaskStatus::Ok, "{again:#?}");
        assert_eq!(task.reason, format!("{} is a directory", target.display()));
        assert_eq!(task.fingerprint, plan.hosts[0].tasks[0].fingerprint);

        // A file in its place is not taken for the directory.
        std::fs::remove_dir(&target).expect("rmdir");
        std::fs::write(&target, "x").expect("file");
        let blocked = runtime.block_on(engine.plan(&hosts)).expect("plan");
        let task = &blocked.hosts[0].tasks[0];
        assert_eq!(
            task.reason,
            format!("cannot tell: {} is a file, not a directory", target.display())
        );
    }
}
