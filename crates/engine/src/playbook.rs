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
    /// Signals this task gives once a host is past it (done, settled, skipped or failed).
    pub signals: Vec<String>,
    /// Signals that every other host of the run giving them must have given before this
    /// task changes anything (command tasks only): an order between hosts, no value.
    pub waits_for: Vec<String>,
    pub action: Action,
    pub location: Location,
}

/// What a task does, by kind. String fields are unrendered templates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    File(FileSpec),
    Line(LineSpec),
    Package(PackageSpec),
    Service(ServiceSpec),
    Module(ModuleSpec),
    Sysctl(SysctlSpec),
    Command(CommandSpec),
    Fetch(FetchSpec),
    Hostname(HostnameSpec),
}

impl Action {
    /// The kind's name as written in a playbook.
    pub fn kind(&self) -> &'static str {
        match self {
            Action::File(_) => "file",
            Action::Line(_) => "line",
            Action::Package(_) => "package",
            Action::Service(_) => "service",
            Action::Module(_) => "module",
            Action::Sysctl(_) => "sysctl",
            Action::Command(_) => "command",
            Action::Fetch(_) => "fetch",
            Action::Hostname(_) => "hostname",
        }
    }
}

/// Where a file's content comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileSource {
    /// Literal text (itself a template).
    Content(String),
    /// The name of a template in the template set.
    Template(String),
    /// The name of an artifact the caller registered for the host
    /// ([`crate::HostSpec::artifacts`]): binary content, uploaded as is.
    Artifact(String),
    /// A rendered artifact: its name and content.
    Binary {
        artifact: String,
        data: crate::host::Artifact,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSpec {
    pub path: String,
    pub source: FileSource,
    pub mode: u32,
    pub owner: Option<String>,
    pub group: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineEdit {
    /// Ensure `line` is present; with `regexp`, replace the lines it matches by `line`
    /// (appending `line` when none matches).
    Present {
        line: String,
        regexp: Option<String>,
    },
    /// Prefix every uncommented line matching the regex with `# `.
    CommentOut { regexp: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineSpec {
    pub path: String,
    pub edit: LineEdit,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageSpec {
    pub packages: Vec<String>,
    /// A version (`1.30.1-1.1`) or a pattern with `*` (`1.30.1-*`); any when `None`.
    pub version: Option<String>,
    pub hold: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceState {
    Started,
    Stopped,
    /// Only in handlers: restart when notified.
    Restarted,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceSpec {
    pub service: String,
    pub enabled: Option<bool>,
    pub state: Option<ServiceState>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleSpec {
    pub module: String,
    /// The modules-load.d file that loads it at boot; `None` to only load it now.
    pub persist_file: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SysctlSpec {
    /// Keys and values, in key order.
    pub settings: BTreeMap<String, String>,
    /// The sysctl.d file that sets them at boot.
    pub file: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandSpec {
    pub cmd: String,
    pub creates: Option<String>,
    pub unless: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchSpec {
    pub cmd: String,
    pub provides: String,
    pub secret: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostnameSpec {
    pub hostname: String,
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

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(one) => vec![one],
            OneOrMany::Many(many) => many,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTask {
    name: Spanned<String>,
    kind: Spanned<String>,
    id: Option<Spanned<String>>,
    when: Option<Spanned<OneOrMany>>,
    notify: Option<Spanned<OneOrMany>>,
    needs: Option<Spanned<OneOrMany>>,
    signals: Option<Spanned<OneOrMany>>,
    waits_for: Option<Spanned<OneOrMany>>,
    // file and line
    path: Option<Spanned<String>>,
    content: Option<Spanned<String>>,
    template: Option<Spanned<String>>,
    artifact: Option<Spanned<String>>,
    mode: Option<Spanned<String>>,
    owner: Option<Spanned<String>>,
    group: Option<Spanned<String>>,
    line: Option<Spanned<String>>,
    regexp: Option<Spanned<String>>,
    comment_out: Option<Spanned<String>>,
    // package
    packages: Option<Spanned<OneOrMany>>,
    version: Option<Spanned<String>>,
    hold: Option<Spanned<bool>>,
    // service
    service: Option<Spanned<String>>,
    enabled: Option<Spanned<bool>>,
    state: Option<Spanned<String>>,
    // module
    module: Option<Spanned<String>>,
    persist: Option<Spanned<bool>>,
    persist_file: Option<Spanned<String>>,
    // sysctl
    settings: Option<Spanned<BTreeMap<String, toml::Value>>>,
    file: Option<Spanned<String>>,
    // command and fetch
    cmd: Option<Spanned<String>>,
    creates: Option<Spanned<String>>,
    unless: Option<Spanned<String>>,
    provides: Option<Spanned<String>>,
    secret: Option<Spanned<bool>>,
    // hostname
    hostname: Option<Spanned<String>>,
}

/// The kind-specific fields of [`RawTask`], by name, with where each was written.
fn present_fields(t: &RawTask) -> Vec<(&'static str, usize)> {
    fn at<T>(field: &Option<Spanned<T>>) -> Option<usize> {
        field.as_ref().map(|s| s.span().start)
    }
    let fields = [
        ("path", at(&t.path)),
        ("content", at(&t.content)),
        ("template", at(&t.template)),
        ("artifact", at(&t.artifact)),
        ("mode", at(&t.mode)),
        ("owner", at(&t.owner)),
        ("group", at(&t.group)),
        ("line", at(&t.line)),
        ("regexp", at(&t.regexp)),
        ("comment_out", at(&t.comment_out)),
        ("packages", at(&t.packages)),
        ("version", at(&t.version)),
        ("hold", at(&t.hold)),
        ("service", at(&t.service)),
        ("enabled", at(&t.enabled)),
        ("state", at(&t.state)),
        ("module", at(&t.module)),
        ("persist", at(&t.persist)),
        ("persist_file", at(&t.persist_file)),
        ("settings", at(&t.settings)),
        ("file", at(&t.file)),
        ("cmd", at(&t.cmd)),
        ("creates", at(&t.creates)),
        ("unless", at(&t.unless)),
        ("provides", at(&t.provides)),
        ("secret", at(&t.secret)),
        ("hostname", at(&t.hostname)),
        ("needs", at(&t.needs)),
        ("waits_for", at(&t.waits_for)),
    ];
    fields
        .into_iter()
        .filter_map(|(name, at)| at.map(|at| (name, at)))
        .collect()
}

/// Fields each kind accepts besides name, kind, id, when and notify.
fn allowed_fields(kind: &str) -> Option<&'static [&'static str]> {
    Some(match kind {
        "file" => &[
            "path", "content", "template", "artifact", "mode", "owner", "group",
        ],
        "line" => &["path", "line", "regexp", "comment_out"],
        "package" => &["packages", "version", "hold"],
        "service" => &["service", "enabled", "state"],
        "module" => &["module", "persist", "persist_file"],
        "sysctl" => &["settings", "file"],
        "command" => &["cmd", "creates", "unless", "needs", "waits_for"],
        "fetch" => &["cmd", "provides", "secret"],
        "hostname" => &["hostname"],
        _ => return None,
    })
}

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
        let mut raw = raw.into_inner();
        let kind_at = raw.kind.span().start;
        let kind = raw.kind.get_ref().clone();
        let Some(allowed) = allowed_fields(&kind) else {
            self.error(
                kind_at,
                format!(
                    "unknown task kind {kind:?}; the kinds are file, line, package, service, \
                     module, sysctl, command, fetch, hostname"
                ),
            );
            return None;
        };
        if handler && !matches!(kind.as_str(), "service" | "command") {
            self.error(
                kind_at,
                format!("a handler is a `service` or `command` task, not `{kind}`"),
            );
            return None;
        }
        let mut fields_ok = true;
        for (field, at) in present_fields(&raw) {
            if !allowed.contains(&field) {
                self.error(at, format!("`{field}` does not apply to a `{kind}` task"));
                fields_ok = false;
            }
        }
        if !fields_ok {
            return None;
        }
        let name = raw.name.get_ref().clone();
        let id = match &raw.id {
            Some(id) if id.get_ref().is_empty() || id.get_ref().contains(char::is_whitespace) => {
                self.error(
                    id.span().start,
                    "a task id must be non-empty and have no spaces",
                );
                return None;
            }
            Some(id) => id.get_ref().clone(),
            None if handler => format!("{play_slug}/handler/{}", slug(&name)),
            None => format!("{play_slug}/{}", slug(&name)),
        };
        let when = raw
            .when
            .take()
            .map(|w| w.into_inner().into_vec())
            .unwrap_or_default();
        for expr in &when {
            if let Err(e) = crate::template::check_expression(expr) {
                self.error(
                    task_at,
                    format!("`when = {expr:?}` is not an expression: {e}"),
                );
            }
        }
        let notify = raw
            .notify
            .take()
            .map(|n| n.into_inner().into_vec())
            .unwrap_or_default();
        if handler && !notify.is_empty() {
            self.error(task_at, "a handler cannot notify other handlers");
        }
        let needs = raw
            .needs
            .take()
            .map(|n| n.into_inner().into_vec())
            .unwrap_or_default();
        let mut signal_names = |field: Option<Spanned<OneOrMany>>, key: &str| {
            let names = field.map(|n| n.into_inner().into_vec()).unwrap_or_default();
            for name in &names {
                if !is_identifier(name) {
                    self.error(
                        task_at,
                        format!("{key} = {name:?} must be an identifier (letters, digits, _)"),
                    );
                }
            }
            names
        };
        let signals = signal_names(raw.signals.take(), "signals");
        let waits_for = signal_names(raw.waits_for.take(), "waits_for");
        if handler && !waits_for.is_empty() {
            self.error(task_at, "a handler cannot wait for signals");
        }
        let location = Location::of_offset(self.text, task_at);
        let action = self.action(&kind, kind_at, raw, handler)?;
        Some(Task {
            id,
            name,
            when,
            notify,
            needs,
            signals,
            waits_for,
            action,
            location,
        })
    }

    fn required(
        &mut self,
        field: Option<Spanned<String>>,
        name: &str,
        kind: &str,
        at: usize,
    ) -> Option<String> {
        match field {
            Some(value) => Some(value.into_inner()),
            None => {
                self.error(at, format!("a `{kind}` task needs `{name}`"));
                None
            }
        }
    }

    fn regex(&mut self, field: &Spanned<String>) {
        if let Err(e) = regex::Regex::new(field.get_ref()) {
            self.error(field.span().start, format!("not a regular expression: {e}"));
        }
    }

    fn action(&mut self, kind: &str, at: usize, raw: RawTask, handler: bool) -> Option<Action> {
        Some(match kind {
            "file" => {
                let given: Vec<&str> = [
                    raw.content.as_ref().map(|_| "content"),
                    raw.template.as_ref().map(|_| "template"),
                    raw.artifact.as_ref().map(|_| "artifact"),
                ]
                .into_iter()
                .flatten()
                .collect();
                if given.len() > 1 {
                    let second = [&raw.content, &raw.template, &raw.artifact]
                        .into_iter()
                        .flatten()
                        .nth(1)
                        .map_or(at, |f| f.span().start);
                    self.error(
                        second,
                        format!(
                            "give one of `content`, `template` or `artifact`, not {}",
                            given.join(" and ")
                        ),
                    );
                    return None;
                }
                let source = match (raw.content, raw.template, raw.artifact) {
                    (Some(content), _, _) => FileSource::Content(content.into_inner()),
                    (_, Some(template), _) => FileSource::Template(template.into_inner()),
                    (_, _, Some(artifact)) => FileSource::Artifact(artifact.into_inner()),
                    (None, None, None) => {
                        self.error(
                            at,
                            "a `file` task needs `content`, `template` or `artifact`",
                        );
                        return None;
                    }
                };
                let mode = match raw.mode {
                    None => 0o644,
                    Some(mode) => match u32::from_str_radix(mode.get_ref(), 8) {
                        Ok(bits) if bits <= 0o7777 => bits,
                        _ => {
                            self.error(mode.span().start, "mode must be octal, like \"0644\"");
                            return None;
                        }
                    },
                };
                let path = self.required(raw.path, "path", kind, at)?;
                Action::File(FileSpec {
                    path,
                    source,
                    mode,
                    owner: raw.owner.map(Spanned::into_inner),
                    group: raw.group.map(Spanned::into_inner),
                })
            }
            "line" => {
                let path = self.required(raw.path, "path", kind, at)?;
                for field in [&raw.regexp, &raw.comment_out].into_iter().flatten() {
                    self.regex(field);
                }
                let edit = match (raw.line, raw.comment_out) {
                    (Some(line), None) => {
                        if line.get_ref().contains('\n') {
                            self.error(line.span().start, "`line` must be a single line");
                        }
                        LineEdit::Present {
                            line: line.into_inner(),
                            regexp: raw.regexp.map(Spanned::into_inner),
                        }
                    }
                    (None, Some(regexp)) => {
                        if let Some(r) = raw.regexp {
                            self.error(
                                r.span().start,
                                "`regexp` goes with `line`; `comment_out` is itself the regex",
                            );
                        }
                        LineEdit::CommentOut {
                            regexp: regexp.into_inner(),
                        }
                    }
                    (Some(line), Some(_)) => {
                        self.error(line.span().start, "give `line` or `comment_out`, not both");
                        return None;
                    }
                    (None, None) => {
                        self.error(at, "a `line` task needs `line` or `comment_out`");
                        return None;
                    }
                };
                Action::Line(LineSpec { path, edit })
            }
            "package" => {
                let Some(packages) = raw.packages else {
                    self.error(at, "a `package` task needs `packages`");
                    return None;
                };
                let packages_at = packages.span().start;
                let packages = packages.into_inner().into_vec();
                if packages.is_empty() {
                    self.error(packages_at, "`packages` is empty");
                }
                Action::Package(PackageSpec {
                    packages,
                    version: raw.version.map(Spanned::into_inner),
                    hold: raw.hold.map(Spanned::into_inner).unwrap_or(false),
                })
            }
            "service" => {
                let state = match raw.state {
                    None => None,
                    Some(state) => match state.get_ref().as_str() {
                        "started" => Some(ServiceState::Started),
                        "stopped" => Some(ServiceState::Stopped),
                        "restarted" if handler => Some(ServiceState::Restarted),
                        "restarted" => {
                            self.error(
                                state.span().start,
                                "state = \"restarted\" is only for handlers: a task would restart on every run",
                            );
                            return None;
                        }
                        other => {
                            self.error(
                                state.span().start,
                                format!(
                                    "state {other:?} is not one of started, stopped, restarted"
                                ),
                            );
                            return None;
                        }
                    },
                };
                let service = self.required(raw.service, "service", kind, at)?;
                if raw.enabled.is_none() && state.is_none() {
                    self.error(at, "a `service` task needs `enabled` or `state`");
                }
                Action::Service(ServiceSpec {
                    service,
                    enabled: raw.enabled.map(Spanned::into_inner),
                    state,
                })
            }
            "module" => {
                let module = self.required(raw.module, "module", kind, at)?;
                let persist = raw.persist.map(Spanned::into_inner).unwrap_or(true);
                let persist_file = match (persist, raw.persist_file) {
                    (false, Some(file)) => {
                        self.error(file.span().start, "`persist_file` with persist = false");
                        return None;
                    }
                    (false, None) => None,
                    (true, Some(file)) => Some(file.into_inner()),
                    (true, None) => Some(format!("/etc/modules-load.d/{module}.conf")),
                };
                Action::Module(ModuleSpec {
                    module,
                    persist_file,
                })
            }
            "sysctl" => {
                let Some(settings) = raw.settings else {
                    self.error(at, "a `sysctl` task needs `settings`");
                    return None;
                };
                let settings_at = settings.span().start;
                let mut out = BTreeMap::new();
                for (key, value) in settings.into_inner() {
                    let value = match value {
                        toml::Value::String(s) => s,
                        toml::Value::Integer(i) => i.to_string(),
                        other => {
                            self.error(
                                settings_at,
                                format!("sysctl {key} = {other}: values are strings or integers"),
                            );
                            continue;
                        }
                    };
                    if key.is_empty()
                        || key.contains(|c: char| c.is_whitespace() || c == '=' || c == '/')
                    {
                        self.error(settings_at, format!("{key:?} is not a sysctl key"));
                    }
                    out.insert(key, value);
                }
                let file = self.required(raw.file, "file", kind, at)?;
                Action::Sysctl(SysctlSpec {
                    settings: out,
                    file,
                })
            }
            "command" => Action::Command(CommandSpec {
                cmd: self.required(raw.cmd, "cmd", kind, at)?,
                creates: raw.creates.map(Spanned::into_inner),
                unless: raw.unless.map(Spanned::into_inner),
            }),
            "fetch" => {
                if handler {
                    self.error(at, "a `fetch` task cannot be a handler");
                }
                let provides = self.required(raw.provides, "provides", kind, at)?;
                if !is_identifier(&provides) {
                    self.error(
                        at,
                        format!(
                            "provides = {provides:?} must be an identifier (letters, digits, _)"
                        ),
                    );
                }
                Action::Fetch(FetchSpec {
                    cmd: self.required(raw.cmd, "cmd", kind, at)?,
                    provides,
                    secret: raw.secret.map(Spanned::into_inner).unwrap_or(false),
                })
            }
            "hostname" => Action::Hostname(HostnameSpec {
                hostname: self.required(raw.hostname, "hostname", kind, at)?,
            }),
            _ => return None,
        })
    }

    /// Ids unique; every `needs` provided by exactly one fetch task; every `waits_for`
    /// signaled by some task; no two
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
        let signaled: BTreeSet<&str> = playbook
            .all_tasks()
            .flat_map(|(_, task)| task.signals.iter().map(String::as_str))
            .collect();
        for (_, task) in playbook.all_tasks() {
            for signal in &task.waits_for {
                if !signaled.contains(signal.as_str()) {
                    self.diagnostics.push(Diagnostic {
                        location: task.location,
                        message: format!(
                            "task {:?} waits for {signal:?}, which no task signals",
                            task.name
                        ),
                    });
                }
            }
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

fn is_identifier(text: &str) -> bool {
    !text.is_empty()
        && !text.starts_with(|c: char| c.is_ascii_digit())
        && text.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
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
    fn module_tasks_sharing_a_persist_file_are_refused() {
        let text = "[[play]]\nname = \"p\"\nhosts = \"all\"\n\n[[play.task]]\nname = \"a\"\nkind = \"module\"\nmodule = \"overlay\"\npersist_file = \"/etc/modules-load.d/k8s.conf\"\n\n[[play.task]]\nname = \"b\"\nkind = \"module\"\nmodule = \"br_netfilter\"\npersist_file = \"/etc/modules-load.d/k8s.conf\"\n";
        let e = Playbook::parse("pb.toml", text).unwrap_err().to_string();
        assert!(
            e.contains("pb.toml:11:1: persist_file \"/etc/modules-load.d/k8s.conf\" is written by the module tasks for \"overlay\" and \"br_netfilter\""),
            "{e}"
        );
    }

    #[test]
    fn signals_are_identifiers_and_every_wait_has_a_giver() {
        let text = r#"[[play]]
name = "p"
hosts = "all"

[[play.task]]
name = "a"
kind = "file"
path = "/etc/x"
content = "x"
signals = "x_written"

[[play.task]]
name = "b"
kind = "command"
cmd = "true"
signals = "not a name"
waits_for = ["x_written", "never_given"]

[[play.task]]
name = "c"
kind = "file"
path = "/etc/y"
content = "y"
waits_for = "x_written"
"#;
        let e = errors(text);
        let expected = [
            "pb.toml:12:1: signals = \"not a name\" must be an identifier",
            "pb.toml:12:1: task \"b\" waits for \"never_given\", which no task signals",
            "pb.toml:24:13: `waits_for` does not apply to a `file` task",
        ];
        for line in expected {
            assert!(e.contains(line), "missing {line:?} in:\n{e}");
        }
        assert!(!e.contains("waits for \"x_written\""), "{e}");
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
