//! Task kinds, one module each, registered in one table ([`kinds!`] below).
//!
//! A kind's module declares the type a playbook task of that kind parses into and
//! implements [`Kind`] for it: the fields it takes, how it parses and renders them,
//! its canonical form (what its fingerprint hashes), its read-only probe (a prelude
//! function with quoted arguments, see [`crate::script`]), the judgement of the
//! probe's output (a [`Verdict`]: nothing to do, or a [`Change`] that carries the
//! exact apply call, its stdin, and what a person sees in a plan: reason, diff,
//! command) and, for a handler, its change. Adding a kind is its module plus one
//! line in the table; docs/playbooks.md walks through one.

mod kind;

use k8sup_shell::{Script, ShellArg};

pub(crate) use self::kind::KindInfo;
pub use self::kind::{Kind, RawTask, Renderer};
use crate::encoding::Form;
use crate::error::TaskError;
use crate::host::Platform;
use crate::script::{ApplyInput, Section};

/// What a probe found.
#[derive(Debug, Clone)]
pub enum Verdict {
    Ok { reason: String },
    Change(Change),
}

/// A change a task would make, and how.
#[derive(Debug, Clone)]
pub struct Change {
    /// Which fact or state differs.
    pub reason: String,
    /// A unified diff, for file content.
    pub diff: Option<String>,
    /// What the apply runs, in words a person reads (the exact `cmd` of a command).
    pub command: Option<String>,
    pub apply: Script,
    pub stdin: Option<Vec<u8>>,
    /// The file the apply writes with `k8sup_write`, when a batch may stage it.
    pub writes: Option<Box<Staged>>,
}

/// A file an apply writes with `k8sup_write PATH MODE OWNER GROUP` (the words exactly
/// as the call gives them) and its text: a batch makes its temp file at its start,
/// so that one `sync` makes all of them durable (see `k8sup_stage` in the prelude).
/// Staging is an optimisation only: a write that finds nothing staged for it, or
/// something else, makes its own temp file as before.
#[derive(Debug, Clone)]
pub struct Staged {
    pub path: String,
    pub mode: String,
    pub owner: String,
    pub group: String,
    /// The text written; `None`: the change's stdin.
    pub text: Option<String>,
}

impl Change {
    /// The `k8sup_stage` call for the file this change writes: `None` when it writes
    /// none, or content that is not text for the script (see [`ApplyInput`]).
    pub(crate) fn stage_call(&self) -> Option<Script> {
        let staged = self.writes.as_ref()?;
        let bytes = match &staged.text {
            Some(text) => text.as_bytes(),
            None => self.stdin.as_deref()?,
        };
        let ApplyInput::Text(text) = ApplyInput::for_content(Some(bytes)) else {
            return None;
        };
        Some(
            Script::new("k8sup_stage")
                .arg(ShellArg::new(staged.path.clone()).ok()?)
                .arg(ShellArg::new(staged.mode.clone()).ok()?)
                .arg(ShellArg::new(staged.owner.clone()).ok()?)
                .arg(ShellArg::new(staged.group.clone()).ok()?)
                .arg(text),
        )
    }
}

/// The table of kinds: `module => Variant(Type)` declares the kind's module, and
/// the variant of [`Action`] (as the playbook says it) and of [`Rendered`] (rendered
/// for one host) that holds it; every dispatch on a kind is made here.
macro_rules! kinds {
    ($($(#[$attr:meta])* $module:ident => $variant:ident($kind:ident),)*) => {
        $(
            $(#[$attr])*
            mod $module;
            $(#[$attr])*
            pub use self::$module::$kind;
        )*

        /// What a task does, by kind, as the playbook says it: string fields are
        /// unrendered templates.
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub enum Action {
            $($(#[$attr])* $variant($kind),)*
        }

        /// A task's action rendered for one host: what is probed, judged, applied and
        /// fingerprinted.
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub enum Rendered {
            $($(#[$attr])* $variant(<$kind as Kind>::Rendered),)*
        }

        /// Every kind, in the table's order.
        // One push per kind: an entry of the table may be under `#[cfg]`.
        #[allow(clippy::vec_init_then_push)]
        pub(crate) fn kinds() -> Vec<KindInfo> {
            let mut kinds = Vec::new();
            $(
                $(#[$attr])*
                kinds.push(KindInfo::of::<$kind>());
            )*
            kinds
        }

        impl Action {
            /// The kind's name as written in a playbook.
            pub fn kind(&self) -> &'static str {
                match self {
                    $($(#[$attr])* Action::$variant(_) => <$kind as Kind>::NAME,)*
                }
            }

            /// Parses a task of kind `kind` from `raw`; `None` after reporting what is
            /// wrong, or for a kind not in the table.
            pub(crate) fn parse(kind: &str, raw: &mut RawTask<'_>) -> Option<Action> {
                match kind {
                    $(
                        $(#[$attr])*
                        name if name == <$kind as Kind>::NAME => {
                            <$kind as Kind>::parse(raw).map(Action::$variant)
                        }
                    )*
                    _ => None,
                }
            }

            /// Renders every field for one host.
            pub(crate) fn render(&self, r: &Renderer<'_, '_>) -> Result<Rendered, TaskError> {
                Ok(match self {
                    $($(#[$attr])* Action::$variant(spec) => Rendered::$variant(spec.render(r)?),)*
                })
            }
        }

        impl Rendered {
            /// The kind's name as written in a playbook.
            pub fn kind(&self) -> &'static str {
                match self {
                    $($(#[$attr])* Rendered::$variant(_) => <$kind as Kind>::NAME,)*
                }
            }

            /// Writes its fields into the task's canonical form.
            pub(crate) fn canonical(&self, form: &mut Form) {
                match self {
                    $($(#[$attr])* Rendered::$variant(r) => <$kind as Kind>::canonical(r, form),)*
                }
            }

            /// The text a version 1 fingerprint hashed, if the kind had one.
            pub(crate) fn legacy_v1_text(&self) -> Option<String> {
                match self {
                    $($(#[$attr])* Rendered::$variant(r) => <$kind as Kind>::legacy_v1_text(r),)*
                }
            }

            /// The probe call, or `None` when the kind has no probe (fetch: it runs
            /// on demand).
            pub(crate) fn probe(&self, platform: &Platform) -> Result<Option<Script>, String> {
                match self {
                    $($(#[$attr])* Rendered::$variant(r) => <$kind as Kind>::probe(r, platform),)*
                }
            }

            /// The files its probe reads with `k8sup_probe_file`.
            pub(crate) fn probed_files(&self) -> Vec<&str> {
                match self {
                    $($(#[$attr])* Rendered::$variant(r) => <$kind as Kind>::probed_files(r),)*
                }
            }

            /// A guard's check without a subshell (see [`Kind::guard_check`]).
            pub(crate) fn guard_check(&self, section: &Section) -> Option<Script> {
                match self {
                    $($(#[$attr])* Rendered::$variant(r) => <$kind as Kind>::guard_check(r, section),)*
                }
            }

            /// The files its probe reads whole (see [`Kind::read_files`]).
            pub(crate) fn read_files(&self) -> Vec<&str> {
                match self {
                    $($(#[$attr])* Rendered::$variant(r) => <$kind as Kind>::read_files(r),)*
                }
            }

            /// Judges a probe's output section.
            pub(crate) fn judge(
                &self,
                platform: &Platform,
                section: &Section,
            ) -> Result<Verdict, String> {
                if section.status != 0 {
                    return Err(format!("the probe exited with status {}", section.status));
                }
                match self {
                    $($(#[$attr])* Rendered::$variant(r) => <$kind as Kind>::judge(r, platform, section),)*
                }
            }

            /// Whether its apply must be judged again after an earlier change of the
            /// same batch (see [`Kind::FRESH_PROBE`]).
            pub(crate) fn apply_needs_fresh_probe(&self) -> bool {
                match self {
                    $($(#[$attr])* Rendered::$variant(_) => <$kind as Kind>::FRESH_PROBE,)*
                }
            }

            /// The change a handler makes when notified (it has no probe).
            pub(crate) fn handler_change(&self) -> Result<Change, String> {
                match self {
                    $($(#[$attr])* Rendered::$variant(r) => <$kind as Kind>::handler_change(r),)*
                }
            }
        }
    };
}

kinds! {
    file => File(FileSpec),
    line => Line(LineSpec),
    package => Package(PackageSpec),
    service => Service(ServiceSpec),
    module => Module(ModuleSpec),
    sysctl => Sysctl(SysctlSpec),
    command => Command(CommandSpec),
    fetch => Fetch(FetchSpec),
    hostname => Hostname(HostnameSpec),
    // The worked example of docs/playbooks.md, compiled and run by its tests only.
    #[cfg(test)]
    directory => Directory(DirectorySpec),
}

pub(crate) use self::fetch::is_identifier;
pub use self::file::FileSource;
pub use self::line::LineEdit;
pub use self::service::ServiceState;

/// The apply of a command task whose `cmd` was rendered again with the values it needs.
pub(crate) fn command_change(spec: &CommandSpec, reason: String) -> Result<Change, String> {
    command::change(spec, reason)
}

/// `Some("text")` or `None`, as version 1 fingerprints printed an optional text.
pub(crate) fn legacy_opt(value: &Option<String>) -> String {
    match value {
        Some(text) => format!("Some({text:?})"),
        None => "None".into(),
    }
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
                // A file read whole comes without its hash: it is the content's.
                let sha256 = match (fields.opt("sha256"), &content) {
                    (Some(sha256), _) => sha256.to_string(),
                    (None, Some(content)) => crate::encoding::sha256_hex(content),
                    (None, None) => fields.get("sha256")?.to_string(),
                };
                Ok(FileState::Present {
                    mode,
                    owner: owner.to_string(),
                    group: group.to_string(),
                    sha256,
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

/// The guard check of a `k8sup_probe_file` of `path` that printed `section`: when the
/// file was absent, that it still is (the probe's own tests, without a subshell).
pub(crate) fn absent_check(path: &str, section: &Section) -> Option<Script> {
    if section.status != 0 || section.body.trim_end_matches('\n') != "kind=absent" {
        return None;
    }
    let path = crate::script::arg(path.to_string()).ok()?;
    Some(Script::new("k8sup_absent").arg(path))
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
