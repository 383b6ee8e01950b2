//! Playbooks as data: plays that select hosts, ordered tasks of typed kinds, handlers.
//!
//! [`Playbook::parse`] reads the TOML format documented in `docs/playbooks.md` and
//! either returns a checked [`Playbook`] or a [`PlaybookError`] listing every problem
//! with its line and column. Field values stay unrendered templates here; they are
//! rendered per host by [`crate::template`] when a plan is made.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;
use toml::Spanned;

use crate::error::{Diagnostic, Location, PlaybookError};
use crate::kinds::{self, kinds};
pub use crate::kinds::{
    Action, CommandSpec, FetchSpec, FileSource, FileSpec, HostnameSpec, LineEdit, LineSpec,
    ModuleSpec, PackageSpec, Rendered, ServiceSpec, ServiceState, SysctlSpec,
};

/// A checked playbook.
#[derive(Debug, Clone)]
pub struct Playbook {
    pub source_name: String,
    pub plays: Vec<Play>,
}

/// A group of tasks run, in order, on the hosts a selector picks.
#[derive(Debug, Clone)]
pub struct Play {
    pub name: String,
    pub hosts: HostSelector,
    pub tasks: Vec<Task>,
    pub handlers: Vec<Task>,
}

/// Which hosts a play runs on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostSelector {
    All,
    /// Hosts having this role (`masters` is `Role("master")`, `nodes` is `Role("node")`).
    Role(String),
    FirstMaster,
    OtherMasters,
    Label {
        key: String,
        value: String,
    },
    Name(String),
}

impl HostSelector {
    fn parse(text: &str) -> Result<HostSelector, String> {
        Ok(match text {
            "all" => HostSelector::All,
            "masters" => HostSelector::Role("master".into()),
            "nodes" => HostSelector::Role("node".into()),
            "first-master" => HostSelector::FirstMaster,
            "other-masters" => HostSelector::OtherMasters,
            _ => {
                if let Some(rest) = text.strip_prefix("label:") {
                    let (key, value) = rest.split_once('=').ok_or_else(|| {
                        format!("label selector {text:?} must be label:KEY=VALUE")
                    })?;
                    if key.is_empty() {
                        return Err(format!("label selector {text:?} has an empty key"));
                    }
                    HostSelector::Label {
                        key: key.into(),
                        value: value.into(),
                    }
                } else if let Some(role) = text.strip_prefix("role:") {
                    HostSelector::Role(role.into())
                } else if text.is_empty() || text.contains(char::is_whitespace) {
                    return Err(format!(
                        "hosts = {text:?} is not a selector: use all, masters, nodes, first-master, \
                         other-masters, role:NAME, label:KEY=VALUE or a host name"
                    ));
                } else {
                    HostSelector::Name(text.into())
                }
            }
        })
    }
}

impl HostSelector {
    /// Whether a play with this selector runs on `host`.
    pub fn selects(&self, host: &crate::host::HostSpec) -> bool {
        match self {
            HostSelector::All => true,
            HostSelector::Role(role) => host.roles.contains(role),
            HostSelector::FirstMaster => host.first_master,
            HostSelector::OtherMasters => host.roles.contains("master") && !host.first_master,
            HostSelector::Label { key, value } => host.labels.get(key) == Some(value),
            HostSelector::Name(name) => host.name == *name,
        }
    }
}

impl std::fmt::Display for HostSelector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HostSelector::All => f.write_str("all"),
            HostSelector::Role(role) if role == "master" => f.write_str("masters"),
            HostSelector::Role(role) if role == "node" => f.write_str("nodes"),
            HostSelector::Role(role) => write!(f, "role:{role}"),
            HostSelector::FirstMaster => f.write_str("first-master"),
            HostSelector::OtherMasters => f.write_str("other-masters"),
            HostSelector::Label { key, value } => write!(f, "label:{key}={value}"),
            HostSelector::Name(name) => f.write_str(name),
        }
    }
}

/// One task of a play (or a handler).
#[derive(Debug, Clone)]
pub struct Task {
    /// Stable id: given, or `play-slug/task-slug`. The key of the task's state entry.
    pub id: String,
    pub name: String,
    /// Expressions that must all be true for the task to run on a host.
    pub when: Vec<String>,
    /// Handler ids to run at the end of the play when this task changes something.
    pub notify: Vec<String>,
    /// Values from other hosts' fetch tasks this task waits for (command tasks only).
    pub needs: Vec<String>,
    pub action: Action,
    pub location: Location,
}

impl Playbook {
    /// Parses and checks a playbook; `source_name` is used in messages.
    pub fn parse(source_name: &str, text: &str) -> Result<Playbook, PlaybookError> {
        let fail = |diagnostics| PlaybookError {
            source_name: source_name.to_string(),
            diagnostics,
        };
        let raw: RawPlaybook = toml::from_str(text).map_err(|e| {
            let location = Location::of_offset(text, e.span().map(|s| s.start).unwrap_or(0));
            fail(vec![Diagnostic {
                location,
                message: e.message().trim().to_string(),
            }])
        })?;
        let mut checker = Checker {
            text,
            diagnostics: Vec::new(),
        };
        let playbook = checker.playbook(source_name, raw);
        if checker.diagnostics.is_empty() {
            Ok(playbook)
        } else {
            checker
                .diagnostics
                .sort_by_key(|d| (d.location.line, d.location.column));
            Err(fail(checker.diagnostics))
        }
    }

    /// Every task and handler, with the play it belongs to.
    pub fn all_tasks(&self) -> impl Iterator<Item = (&Play, &Task)> {
        self.plays.iter().flat_map(|play| {
            play.tasks
                .iter()
                .chain(&play.handlers)
                .map(move |t| (play, t))
        })
    }
}

/// Lower-case words joined by `-`: the default id part for a name.
pub fn slug(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    out.trim_end_matches('-').to_string()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPlaybook {
    #[serde(default)]
    play: Vec<RawPlay>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPlay {
    name: Spanned<String>,
    hosts: Spanned<String>,
    #[serde(default)]
    task: Vec<Spanned<RawTask>>,
    #[serde(default)]
    handler: Vec<Spanned<RawTask>>,
}

/// A task's fields as written, each with where it is written: its kind takes its
/// own (see [`crate::kinds::Kind::parse`]).
type RawTask = BTreeMap<Spanned<String>, Spanned<toml::Value>>;

struct Checker<'t> {
    text: &'t str,
    diagnostics: Vec<Diagnostic>,
}

impl Checker<'_> {
    fn error(&mut self, offset: usize, message: impl Into<String>) {
        self.diagnostics.push(Diagnostic {
            location: Location::of_offset(self.text, offset),
            message: message.into(),
        });
    }

    fn playbook(&mut self, source_name: &str, raw: RawPlaybook) -> Playbook {
        let mut plays = Vec::new();
        for raw_play in raw.play {
            plays.push(self.play(raw_play));
        }
        let playbook = Playbook {
            source_name: source_name.to_string(),
            plays,
        };
        self.cross_checks(&playbook);
        playbook
    }

    fn play(&mut self, raw: RawPlay) -> Play {
        let hosts = match HostSelector::parse(raw.hosts.get_ref()) {
            Ok(selector) => selector,
            Err(message) => {
                self.error(raw.hosts.span().start, message);
                HostSelector::All
            }
        };
        let play_name = raw.name.into_inner();
        let play_slug = slug(&play_name);
        let mut handlers = Vec::new();
        for raw_task in raw.handler {
            if let Some(task) = self.task(&play_slug, raw_task, true) {
                handlers.push(task);
            }
        }
        let mut tasks = Vec::new();
        for raw_task in raw.task {
            if let Some(task) = self.task(&play_slug, raw_task, false) {
                tasks.push(task);
            }
        }
        // notify names a handler by id or by name; store ids.
        for task in &mut tasks {
            for target in &mut task.notify {
                match handlers
                    .iter()
                    .find(|h| h.id == *target || h.name == *target)
                {
                    Some(handler) => *target = handler.id.clone(),
                    None => self.diagnostics.push(Diagnostic {
                        location: task.location,
                        message: format!(
                            "task {:?} notifies {target:?}, which is not a handler of play {play_name:?}",
                            task.name
                        ),
                    }),
                }
            }
        }
        Play {
            name: play_name,
            hosts,
            tasks,
            handlers,
        }
    }

    fn task(&mut self, play_slug: &str, raw: Spanned<RawTask>, handler: bool) -> Option<Task> {
        let task_at = raw.span().start;
        let mut raw = kinds::RawTask::new(
            self.text,
            task_at,
            handler,
            raw.into_inner(),
            &mut self.diagnostics,
        );
        let name = raw.common("name");
        let kind = raw.common("kind");
        let id = raw.text("id");
        let when = raw.list("when");
        let notify = raw.list("notify");
        let (Some(name), Some(kind)) = (name, kind) else {
            return None;
        };
        let kind_at = kind.span().start;
        let kind = kind.into_inner();
        let kinds = kinds();
        let Some(info) = kinds.iter().find(|k| k.name == kind) else {
            let names: Vec<&str> = kinds.iter().map(|k| k.name).collect();
            raw.error(
                kind_at,
                format!(
                    "unknown task kind {kind:?}; the kinds are {}",
                    names.join(", ")
                ),
            );
            return None;
        };
        if handler && !info.handler {
            let kinds: Vec<String> = kinds
                .iter()
                .filter(|k| k.handler)
                .map(|k| format!("`{}`", k.name))
                .collect();
            raw.error(
                kind_at,
                format!("a handler is a {} task, not `{kind}`", kinds.join(" or ")),
            );
            return None;
        }
        let mut fields_ok = true;
        for (field, key_at, value_at) in raw.remaining() {
            if info.fields.contains(&field.as_str()) {
                continue;
            }
            fields_ok = false;
            if kinds.iter().any(|k| k.fields.contains(&field.as_str())) {
                raw.error(
                    value_at,
                    format!("`{field}` does not apply to a `{kind}` task"),
                );
            } else {
                let mut known = vec!["name", "kind", "id", "when", "notify"];
                known.extend(info.fields);
                raw.error(
                    key_at,
                    format!(
                        "unknown field `{field}`; a `{kind}` task takes {}",
                        known.join(", ")
                    ),
                );
            }
        }
        if !fields_ok {
            return None;
        }
        let needs = raw
            .list("needs")
            .map(Spanned::into_inner)
            .unwrap_or_default();
        let action = Action::parse(&kind, &mut raw);
        let name = name.into_inner();
        let id = match id {
            Some(id) if id.get_ref().is_empty() || id.get_ref().contains(char::is_whitespace) => {
                self.error(
                    id.span().start,
                    "a task id must be non-empty and have no spaces",
                );
                return None;
            }
            Some(id) => id.into_inner(),
            None if handler => format!("{play_slug}/handler/{}", slug(&name)),
            None => format!("{play_slug}/{}", slug(&name)),
        };
        let when = when.map(Spanned::into_inner).unwrap_or_default();
        for expr in &when {
            if let Err(e) = crate::template::check_expression(expr) {
                self.error(
                    task_at,
                    format!("`when = {expr:?}` is not an expression: {e}"),
                );
            }
        }
        let notify = notify.map(Spanned::into_inner).unwrap_or_default();
        if handler && !notify.is_empty() {
            self.error(task_at, "a handler cannot notify other handlers");
        }
        let location = Location::of_offset(self.text, task_at);
        Some(Task {
            id,
            name,
            when,
            notify,
            needs,
            action: action?,
            location,
        })
    }

    /// Ids unique; every `needs` provided by exactly one fetch task; no two
    /// module tasks for different modules sharing one persist_file (each module
    /// task writes its file whole: two would undo each other on every run).
    fn cross_checks(&mut self, playbook: &Playbook) {
        let mut ids = BTreeSet::new();
        let mut provided = BTreeMap::new();
        let mut persist_files: BTreeMap<&str, &str> = BTreeMap::new();
        for (_, task) in playbook.all_tasks() {
            if let Action::Module(ModuleSpec {
                module,
                persist_file: Some(file),
            }) = &task.action
            {
                match persist_files.get(file.as_str()) {
                    Some(other) if *other != module.as_str() => {
                        self.diagnostics.push(Diagnostic {
                            location: task.location,
                            message: format!(
                                "persist_file {file:?} is written by the module tasks for {other:?} and {module:?}: each writes the whole file, so they would undo each other; give each module its own file (the default)"
                            ),
                        })
                    }
                    _ => {
                        persist_files.insert(file.as_str(), module.as_str());
                    }
                }
            }
            if !ids.insert(task.id.as_str()) {
                self.diagnostics.push(Diagnostic {
                    location: task.location,
                    message: format!("task id {:?} is used twice; give one an `id`", task.id),
                });
            }
            if let Action::Fetch(fetch) = &task.action {
                if provided
                    .insert(fetch.provides.as_str(), task.id.as_str())
                    .is_some()
                {
                    self.diagnostics.push(Diagnostic {
                        location: task.location,
                        message: format!("{:?} is provided by two fetch tasks", fetch.provides),
                    });
                }
            }
        }
        for (_, task) in playbook.all_tasks() {
            for need in &task.needs {
                if !provided.contains_key(need.as_str()) {
                    self.diagnostics.push(Diagnostic {
                        location: task.location,
                        message: format!(
                            "task {:?} needs {need:?}, which no fetch task provides",
                            task.name
                        ),
                    });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(text: &str) -> String {
        match Playbook::parse("pb.toml", text) {
            Ok(_) => panic!("expected errors for:\n{text}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn parses_every_kind_with_defaults() {
        let text = r#"
[[play]]
name = "Prepare hosts"
hosts = "all"

[[play.task]]
name = "Containerd config"
kind = "file"
path = "/etc/containerd/config.toml"
template = "containerd.toml.j2"
notify = "restart containerd"

[[play.task]]
name = "swap off in fstab"
kind = "line"
path = "/etc/fstab"
comment_out = '\sswap\s'

[[play.task]]
name = "kube packages"
kind = "package"
packages = ["kubelet", "kubeadm"]
version = "1.30.1-*"
hold = true

[[play.task]]
kind = "module"
name = "br_netfilter"
module = "br_netfilter"

[[play.task]]
kind = "sysctl"
name = "forwarding"
settings = { "net.ipv4.ip_forward" = 1 }
file = "/etc/sysctl.d/k8s.conf"
when = ["platform.family == 'debian'"]

[[play.task]]
kind = "hostname"
name = "hostname"
hostname = "{{ host.name }}"

[[play.handler]]
name = "restart containerd"
kind = "service"
service = "containerd"
state = "restarted"

[[play]]
name = "Init"
hosts = "first-master"

[[play.task]]
kind = "fetch"
name = "join command"
cmd = "kubeadm token create --print-join-command"
provides = "join_command"
secret = true

[[play]]
name = "Join"
hosts = "label:zone=a"

[[play.task]]
kind = "command"
name = "join"
cmd = "{{ join_command }}"
creates = "/etc/kubernetes/kubelet.conf"
needs = "join_command"
"#;
        let pb = Playbook::parse("pb.toml", text).expect("parses");
        assert_eq!(pb.plays.len(), 3);
        let prep = &pb.plays[0];
        assert_eq!(prep.tasks[0].id, "prepare-hosts/containerd-config");
        assert_eq!(
            prep.tasks[0].notify,
            vec!["prepare-hosts/handler/restart-containerd"]
        );
        assert_eq!(
            prep.tasks[3].action,
            Action::Module(ModuleSpec {
                module: "br_netfilter".into(),
                persist_file: Some("/etc/modules-load.d/br_netfilter.conf".into()),
            })
        );
        match &prep.tasks[4].action {
            Action::Sysctl(s) => assert_eq!(s.settings["net.ipv4.ip_forward"], "1"),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            prep.tasks[4].location,
            Location {
                line: 31,
                column: 1
            }
        );
        assert_eq!(
            pb.plays[2].hosts,
            HostSelector::Label {
                key: "zone".into(),
                value: "a".into()
            }
        );
        assert_eq!(pb.plays[2].tasks[0].needs, vec!["join_command"]);
    }

    #[test]
    fn syntax_errors_and_unknown_fields_have_line_and_column() {
        let e = errors("[[play]]\nname = \"p\"\nhosts = \"all\"\nbogus = 1\n");
        assert!(e.starts_with("pb.toml:4:1: unknown field `bogus`"), "{e}");
        let e = errors("[[play]]\nname = \"p\"\nhosts = \"all\"\n[[play.task]]\nname = \"t\"\nkind = \"file\"\npath = \"/x\"\ncontent = \"a\"\nmodee = \"0644\"\n");
        assert!(e.starts_with("pb.toml:9:1: unknown field `modee`"), "{e}");
        let e = errors("[[play]]\nname = \"p\"\nhosts = \n");
        assert!(e.starts_with("pb.toml:3:"), "{e}");
    }

    #[test]
    fn semantic_errors_are_all_reported_with_positions() {
        let text = r#"[[play]]
name = "p"
hosts = "label:nokey"

[[play.task]]
name = "a"
kind = "command"
cmd = "true"
mode = "0644"

[[play.task]]
name = "b"
kind = "file"
path = "/etc/x"
content = "x"
mode = "999"

[[play.task]]
name = "c"
kind = "service"
service = "x"
state = "restarted"

[[play.task]]
name = "d"
kind = "line"
path = "/etc/fstab"
comment_out = "(unclosed"

[[play.task]]
name = "e"
kind = "command"
cmd = "true"
needs = "nothing"
notify = "nobody"

[[play.task]]
name = "e"
kind = "frobnicate"
"#;
        let e = errors(text);
        let expected = [
            "pb.toml:3:9: label selector \"label:nokey\" must be label:KEY=VALUE",
            "pb.toml:9:8: `mode` does not apply to a `command` task",
            "pb.toml:16:8: mode must be octal",
            "pb.toml:22:9: state = \"restarted\" is only for handlers",
            "pb.toml:28:15: not a regular expression",
            "pb.toml:30:1: task \"e\" notifies \"nobody\"",
            "pb.toml:30:1: task \"e\" needs \"nothing\", which no fetch task provides",
            "pb.toml:39:8: unknown task kind \"frobnicate\"",
        ];
        for line in expected {
            assert!(e.contains(line), "missing {line:?} in:\n{e}");
        }
    }

    #[test]
    fn field_types_and_missing_fields_are_reported_where_written() {
        let task = |body: &str| {
            errors(&format!(
                "[[play]]\nname = \"p\"\nhosts = \"all\"\n[[play.task]]\n{body}"
            ))
        };
        let e = task("name = \"t\"\nkind = \"package\"\npackages = \"a\"\nhold = \"yes\"\n");
        assert_eq!(
            e, "pb.toml:8:8: `hold` must be true or false, not a string",
            "{e}"
        );
        let e = task("name = \"t\"\nkind = \"file\"\npath = 1\ncontent = \"x\"\n");
        assert_eq!(
            e, "pb.toml:7:8: `path` must be a string, not an integer",
            "{e}"
        );
        let e = task("kind = \"hostname\"\nhostname = \"h\"\n");
        assert_eq!(e, "pb.toml:4:1: missing field `name`", "{e}");
        let e = task(
            "name = \"t\"\nkind = \"file\"\npath = \"/x\"\ncontent = \"a\"\nmodee = \"0644\"\n",
        );
        assert_eq!(
            e,
            "pb.toml:9:1: unknown field `modee`; a `file` task takes name, kind, id, when, notify, path, content, template, artifact, mode, owner, group",
        );
        let e = task("name = \"t\"\nkind = \"package\"\npackages = [\"a\", 1]\n");
        assert_eq!(
            e,
            "pb.toml:7:12: `packages` must be a string or a list of strings, not an array"
        );
    }

    #[test]
    fn module_tasks_sharing_a_persist_file_are_refused() {
        let text = "[[play]]\nname = \"p\"\nhosts = \"all\"\n\n[[play.task]]\nname = \"a\"\nkind = \"module\"\nmodule = \"overlay\"\npersist_file = \"/etc/modules-load.d/k8s.conf\"\n\n[[play.task]]\nname = \"b\"\nkind = \"module\"\nmodule = \"br_netfilter\"\npersist_file = \"/etc/modules-load.d/k8s.conf\"\n";
        let e = Playbook::parse("pb.toml", text).unwrap_err().to_string();
        assert!(
            e.contains("pb.toml:11:1: persist_file \"/etc/modules-load.d/k8s.conf\" is written by the module tasks for \"overlay\" and \"br_netfilter\""),
            "{e}"
        );
    }

    #[test]
    fn duplicate_ids_are_refused() {
        let e = errors("[[play]]\nname = \"p\"\nhosts = \"all\"\n[[play.task]]\nname = \"t\"\nkind = \"command\"\ncmd = \"a\"\n[[play.task]]\nname = \"T\"\nkind = \"command\"\ncmd = \"b\"\n");
        assert!(
            e.contains("pb.toml:8:1: task id \"p/t\" is used twice"),
            "{e}"
        );
    }

    #[test]
    fn slugs_are_stable() {
        assert_eq!(
            slug("Install kube packages (1.30)"),
            "install-kube-packages-1-30"
        );
        assert_eq!(slug("--x--"), "x");
    }

    #[test]
    fn file_sources_are_content_template_or_artifact_exactly_one() {
        let task = |fields: &str| {
            format!(
                "[[play]]\nname = \"p\"\nhosts = \"all\"\n\n[[play.task]]\nname = \"f\"\nkind = \"file\"\npath = \"/usr/local/bin/tool\"\n{fields}"
            )
        };
        let pb = Playbook::parse("pb.toml", &task("artifact = \"tool\"\nmode = \"0755\"\n"))
            .expect("parses");
        let Action::File(spec) = &pb.plays[0].tasks[0].action else {
            panic!("a file task")
        };
        assert_eq!(spec.source, FileSource::Artifact("tool".into()));
        assert_eq!(spec.mode, 0o755);
        let e = errors(&task("content = \"x\"\nartifact = \"tool\"\n"));
        assert!(
            e.contains("give one of `content`, `template` or `artifact`, not content and artifact"),
            "{e}"
        );
        let e = errors(&task(""));
        assert!(
            e.contains("a `file` task needs `content`, `template` or `artifact`"),
            "{e}"
        );
        let e = errors(
            "[[play]]\nname = \"p\"\nhosts = \"all\"\n\n[[play.task]]\nname = \"c\"\nkind = \"command\"\ncmd = \"true\"\nartifact = \"tool\"\n",
        );
        assert!(e.contains("artifact"), "{e}");
    }
}
