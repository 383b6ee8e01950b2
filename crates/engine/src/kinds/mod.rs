//! Task kinds: for each, a read-only probe, the judgement of its output, and the apply.
//!
//! A kind turns its rendered spec into a probe call (a prelude function with quoted
//! arguments, see [`crate::script`]); [`judge`] reads that call's output section and
//! returns a [`Verdict`]: nothing to do, or a [`Change`] that carries the exact apply
//! call, its stdin, and what a person sees in a plan (reason, diff, command).

mod command;
mod file;
mod hostname;
mod line;
mod module;
mod package;
mod service;
mod sysctl;

use k8sup_shell::Script;

use crate::host::Platform;
use crate::playbook::{Action, ServiceState};
use crate::script::Section;

/// What a probe found.
#[derive(Debug, Clone)]
pub(crate) enum Verdict {
    Ok { reason: String },
    Change(Change),
}

/// A change a task would make, and how.
#[derive(Debug, Clone)]
pub(crate) struct Change {
    /// Which fact or state differs.
    pub reason: String,
    /// A unified diff, for file content.
    pub diff: Option<String>,
    /// What the apply runs, in words a person reads (the exact `cmd` of a command).
    pub command: Option<String>,
    pub apply: Script,
    pub stdin: Option<Vec<u8>>,
}

/// The probe call for a rendered action, or `None` when the kind has no probe
/// (fetch: it runs on demand).
pub(crate) fn probe(action: &Action, platform: &Platform) -> Result<Option<Script>, String> {
    Ok(Some(match action {
        Action::File(spec) => file::probe(spec)?,
        Action::Line(spec) => line::probe(spec)?,
        Action::Package(spec) => package::probe(spec, platform)?,
        Action::Service(spec) => service::probe(spec)?,
        Action::Module(spec) => module::probe(spec)?,
        Action::Sysctl(spec) => sysctl::probe(spec)?,
        Action::Command(spec) => command::probe(spec)?,
        Action::Hostname(_) => hostname::probe(),
        Action::Fetch(_) => return Ok(None),
    }))
}

/// The files a kind's probe reads with `k8sup_probe_file`, which a read-only script
/// can read ahead for all its probes at once.
pub(crate) fn probed_files(action: &Action) -> Vec<&str> {
    match action {
        Action::File(spec) => vec![spec.path.as_str()],
        Action::Line(spec) => vec![spec.path.as_str()],
        Action::Module(spec) => spec.persist_file.iter().map(String::as_str).collect(),
        Action::Sysctl(spec) => vec![spec.file.as_str()],
        Action::Package(_)
        | Action::Service(_)
        | Action::Command(_)
        | Action::Hostname(_)
        | Action::Fetch(_) => Vec::new(),
    }
}

/// Judges a probe's output section.
pub(crate) fn judge(
    action: &Action,
    platform: &Platform,
    section: &Section,
) -> Result<Verdict, String> {
    if section.status != 0 {
        return Err(format!("the probe exited with status {}", section.status));
    }
    match action {
        Action::File(spec) => file::judge(spec, section),
        Action::Line(spec) => line::judge(spec, section),
        Action::Package(spec) => package::judge(spec, platform, section),
        Action::Service(spec) => service::judge(spec, section),
        Action::Module(spec) => module::judge(spec, section),
        Action::Sysctl(spec) => sysctl::judge(spec, section),
        Action::Command(spec) => command::judge(spec, section),
        Action::Hostname(spec) => hostname::judge(spec, section),
        Action::Fetch(_) => Err("fetch tasks are not probed".into()),
    }
}

/// Whether a change's apply is right only for the state its probe saw, and so must be
/// judged again when an earlier change of the same batch altered that state: a file
/// is replaced only if still as probed, a command is guarded by `creates`/`unless`.
/// The other kinds set their state whatever it was (`sysctl -w`, `modprobe`,
/// `systemctl enable/start`, a package install, the hostname).
pub(crate) fn apply_needs_fresh_probe(action: &Action) -> bool {
    matches!(
        action,
        Action::File(_) | Action::Line(_) | Action::Command(_)
    )
}

/// The change a handler makes when notified (it has no probe).
pub(crate) fn handler_change(action: &Action) -> Result<Change, String> {
    match action {
        Action::Service(spec) => {
            let spec = crate::playbook::ServiceSpec {
                state: Some(spec.state.unwrap_or(ServiceState::Restarted)),
                ..spec.clone()
            };
            service::change(&spec, "notified".into())
        }
        Action::Command(spec) => command::change(spec, "notified".into()),
        other => Err(format!("a `{}` task cannot be a handler", other.kind())),
    }
}

/// The apply of a command task whose `cmd` was rendered again with the values it needs.
pub(crate) fn command_change(
    spec: &crate::playbook::CommandSpec,
    reason: String,
) -> Result<Change, String> {
    command::change(spec, reason)
}

/// Fields of a section, with a clear error for a missing one.
pub(crate) struct Fields(std::collections::BTreeMap<String, String>);

impl Fields {
    pub fn of(section: &Section) -> Fields {
        Fields(section.fields())
    }

    pub fn get(&self, key: &str) -> Result<&str, String> {
        self.0
            .get(key)
            .map(String::as_str)
            .ok_or_else(|| format!("the probe output has no {key:?}"))
    }

    pub fn opt(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }
}

/// Checks a name that goes to a tool as one argument: no leading `-` (it would be
/// an option), no whitespace, no `=` or `|` (our separators), not empty.
pub(crate) fn check_word(what: &str, value: &str) -> Result<(), String> {
    if value.is_empty()
        || value.starts_with('-')
        || value.contains(|c: char| c.is_whitespace() || c == '=' || c == '|' || c == '\0')
    {
        return Err(format!("{what} {value:?} is not a valid name"));
    }
    Ok(())
}

/// Checks an absolute path.
pub(crate) fn check_path(what: &str, value: &str) -> Result<(), String> {
    if !value.starts_with('/') || value.contains('\0') || value.ends_with('/') {
        return Err(format!("{what} {value:?} must be an absolute file path"));
    }
    Ok(())
}

/// The state of a file as `k8sup_probe_file` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FileState {
    Absent,
    Present {
        mode: u32,
        owner: String,
        group: String,
        sha256: String,
        /// Present unless the hash matched the expected one (or the file is too large).
        content: Option<Vec<u8>>,
        too_large: bool,
    },
}

impl FileState {
    pub fn read(fields: &Fields, path: &str) -> Result<FileState, String> {
        match fields.get("kind")? {
            "absent" => Ok(FileState::Absent),
            "dir" => Err(format!("{path} is a directory")),
            "file" => {
                let stat = fields.get("stat")?;
                let mut parts = stat.split(' ');
                let (Some(mode), Some(owner), Some(group)) =
                    (parts.next(), parts.next(), parts.next())
                else {
                    return Err(format!("cannot read stat output {stat:?}"));
                };
                let mode =
                    u32::from_str_radix(mode, 8).map_err(|_| format!("bad mode {mode:?}"))?;
                let content = match fields.opt("content") {
                    Some(b64) => Some(crate::encoding::decode_b64(b64)?),
                    None => None,
                };
                Ok(FileState::Present {
                    mode,
                    owner: owner.to_string(),
                    group: group.to_string(),
                    sha256: fields.get("sha256")?.to_string(),
                    content,
                    too_large: fields.opt("content_too_large").is_some(),
                })
            }
            other => Err(format!("unknown file kind {other:?}")),
        }
    }

    /// The value `k8sup_write` checks before replacing the file.
    pub fn expected_for_write(&self) -> &str {
        match self {
            FileState::Absent => "absent",
            FileState::Present { sha256, .. } => sha256,
        }
    }
}

/// What a person reads for a diff of `path` from `state` to `wanted`, or a reason
/// when no diff can be shown.
pub(crate) fn file_diff(path: &str, state: &FileState, wanted: &str) -> Option<String> {
    match state {
        FileState::Absent => Some(crate::diff::unified(path, None, wanted)),
        FileState::Present {
            content: Some(old), ..
        } => {
            let old = String::from_utf8_lossy(old);
            let diff = crate::diff::unified(path, Some(&old), wanted);
            (!diff.is_empty()).then_some(diff)
        }
        FileState::Present { content: None, .. } => None,
    }
}

#[cfg(test)]
pub(crate) fn section(body: &str) -> Section {
    Section {
        name: "0".into(),
        status: 0,
        body: body.into(),
    }
}
