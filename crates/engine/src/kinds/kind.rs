//! What a task kind is: the [`Kind`] trait its module implements, and the two things
//! it is handed: a [`RawTask`] to parse (the fields as a playbook writes them) and a
//! [`Renderer`] to render its fields for one host.

use std::collections::BTreeMap;
use std::fmt::Debug;

use k8sup_shell::Script;
use minijinja::{Environment, Value};
use toml::Spanned;

use super::{Change, Verdict};
use crate::encoding::Form;
use crate::error::{Diagnostic, Location, TaskError};
use crate::host::{Artifact, HostSpec, Platform};
use crate::script::Section;
use crate::template;

/// A task kind: the type a playbook task of this kind parses into (its fields as
/// unrendered templates), and everything the engine does with it. Registered with
/// one line in the table of [`super`].
pub trait Kind: Sized + Debug + Clone + PartialEq + Eq {
    /// Its name in a playbook (`kind = "file"`).
    const NAME: &'static str;
    /// The fields it takes besides `name`, `kind`, `id`, `when` and `notify`.
    const FIELDS: &'static [&'static str];
    /// Whether it may be a handler (it then has a [`Kind::handler_change`]).
    const HANDLER: bool = false;
    /// Whether its apply is right only for the state its probe saw, so that it must be
    /// judged again when an earlier change of the same batch altered that state (a
    /// file replaced only if still as probed); kinds that set their state whatever it
    /// was (`sysctl -w`, `modprobe`, a package install) leave it false.
    const FRESH_PROBE: bool = false;

    /// The task rendered for one host: what is probed, judged, applied, fingerprinted.
    type Rendered: Debug + Clone + PartialEq + Eq;

    /// Reads the kind's fields from `raw`; `None` after reporting what is wrong.
    fn parse(raw: &mut RawTask<'_>) -> Option<Self>;

    /// Renders every field for one host.
    fn render(&self, r: &Renderer<'_, '_>) -> Result<Self::Rendered, TaskError>;

    /// Writes the rendered fields into the task's canonical form, named as a playbook
    /// names them, defaults left out (see [`crate::fingerprint`]). Changing what is
    /// written changes the fingerprints of every existing ledger: don't.
    fn canonical(rendered: &Self::Rendered, form: &mut Form);

    /// The text version 1 fingerprints hashed (k8sup up to commit 3c7da93); `None`
    /// for a kind that came later, which no version 1 ledger can hold.
    fn legacy_v1_text(_rendered: &Self::Rendered) -> Option<String> {
        None
    }

    /// The read-only probe call (a prelude function with quoted arguments), or `None`
    /// when the kind has no probe.
    fn probe(rendered: &Self::Rendered, platform: &Platform) -> Result<Option<Script>, String>;

    /// The files its probe reads with `k8sup_probe_file`, which a read-only script can
    /// read ahead for all its probes at once.
    fn probed_files(_rendered: &Self::Rendered) -> Vec<&str> {
        Vec::new()
    }

    /// A check that holds, without a subshell, exactly when its probe would print
    /// `section` again (see [`crate::script::Guard`]); `None`: the guard runs the
    /// probe again and compares its output.
    fn guard_check(_rendered: &Self::Rendered, _section: &Section) -> Option<Script> {
        None
    }

    /// The files its probe reads whole with `k8sup_probe_file PATH "" content`: a
    /// read-only script stats them ahead with the others, and hashes none of them.
    fn read_files(_rendered: &Self::Rendered) -> Vec<&str> {
        Vec::new()
    }

    /// Judges its probe's output section (which exited 0).
    fn judge(
        rendered: &Self::Rendered,
        platform: &Platform,
        section: &Section,
    ) -> Result<Verdict, String>;

    /// The change a handler of this kind makes when notified (it has no probe).
    fn handler_change(_rendered: &Self::Rendered) -> Result<Change, String> {
        Err(format!("a `{}` task cannot be a handler", Self::NAME))
    }
}

/// What the table of kinds knows of one, without its type.
pub(crate) struct KindInfo {
    pub name: &'static str,
    pub fields: &'static [&'static str],
    pub handler: bool,
}

impl KindInfo {
    pub(crate) const fn of<K: Kind>() -> KindInfo {
        KindInfo {
            name: K::NAME,
            fields: K::FIELDS,
            handler: K::HANDLER,
        }
    }
}

/// A task's fields as a playbook writes them, for its kind to take one by one. A
/// field of the wrong type is reported with its line and column and reads as absent.
pub struct RawTask<'t> {
    text: &'t str,
    /// Where the task's `kind` is written: errors about the task as a whole point there.
    at: usize,
    handler: bool,
    fields: BTreeMap<Spanned<String>, Spanned<toml::Value>>,
    diagnostics: &'t mut Vec<Diagnostic>,
}

impl<'t> RawTask<'t> {
    pub(crate) fn new(
        text: &'t str,
        at: usize,
        handler: bool,
        fields: BTreeMap<Spanned<String>, Spanned<toml::Value>>,
        diagnostics: &'t mut Vec<Diagnostic>,
    ) -> RawTask<'t> {
        RawTask {
            text,
            at,
            handler,
            fields,
            diagnostics,
        }
    }

    /// Where errors about the task as a whole point.
    pub fn at(&self) -> usize {
        self.at
    }

    /// Whether the task is a handler.
    pub fn handler(&self) -> bool {
        self.handler
    }

    /// Reports a problem at `at` (an offset in the playbook's text).
    pub fn error(&mut self, at: usize, message: impl Into<String>) {
        self.diagnostics.push(Diagnostic {
            location: Location::of_offset(self.text, at),
            message: message.into(),
        });
    }

    /// The fields not taken yet, with where each name and value is written.
    pub(crate) fn remaining(&self) -> Vec<(String, usize, usize)> {
        self.fields
            .iter()
            .map(|(k, v)| (k.get_ref().clone(), k.span().start, v.span().start))
            .collect()
    }

    fn take(&mut self, name: &str) -> Option<Spanned<toml::Value>> {
        self.fields.remove(name)
    }

    fn wrong_type(&mut self, name: &str, value: &Spanned<toml::Value>, wanted: &str) {
        let found = value.get_ref().type_str();
        let article = if found.starts_with(['a', 'e', 'i', 'o', 'u']) {
            "an"
        } else {
            "a"
        };
        self.error(
            value.span().start,
            format!("`{name}` must be {wanted}, not {article} {found}"),
        );
    }

    /// Whether the task has the field `name` (not taken yet), of whatever type.
    pub fn has(&self, name: &str) -> bool {
        self.fields.contains_key(name)
    }

    /// The field `name` as `get` reads its value; a value `get` cannot read is
    /// reported as not being `wanted`.
    fn typed<T>(
        &mut self,
        name: &str,
        wanted: &str,
        get: impl FnOnce(&toml::Value) -> Option<T>,
    ) -> Option<Spanned<T>> {
        let value = self.take(name)?;
        match get(value.get_ref()) {
            Some(read) => Some(Spanned::new(value.span(), read)),
            None => {
                self.wrong_type(name, &value, wanted);
                None
            }
        }
    }

    /// A string field.
    pub fn text(&mut self, name: &str) -> Option<Spanned<String>> {
        self.typed(name, "a string", |v| v.as_str().map(str::to_string))
    }

    /// A boolean field.
    pub fn flag(&mut self, name: &str) -> Option<Spanned<bool>> {
        self.typed(name, "true or false", toml::Value::as_bool)
    }

    /// A field written as one string or a list of strings.
    pub fn list(&mut self, name: &str) -> Option<Spanned<Vec<String>>> {
        self.typed(name, "a string or a list of strings", |v| match v {
            toml::Value::String(one) => Some(vec![one.clone()]),
            toml::Value::Array(many) => many
                .iter()
                .map(|v| v.as_str().map(str::to_string))
                .collect(),
            _ => None,
        })
    }

    /// A table field.
    pub fn table(&mut self, name: &str) -> Option<Spanned<toml::Table>> {
        self.typed(name, "a table", |v| v.as_table().cloned())
    }

    /// A string field the kind cannot do without.
    pub fn required(&mut self, name: &str, kind: &str) -> Option<String> {
        let written = self.has(name);
        let value = self.text(name).map(Spanned::into_inner);
        if !written {
            let at = self.at;
            self.error(at, format!("a `{kind}` task needs `{name}`"));
        }
        value
    }

    /// A string field every task has (`name`, `kind`): reported at the task when absent.
    pub(crate) fn common(&mut self, name: &str) -> Option<Spanned<String>> {
        let written = self.has(name);
        let value = self.text(name);
        if !written {
            let at = self.at;
            self.error(at, format!("missing field `{name}`"));
        }
        value
    }

    /// Reports `field` unless it is a regular expression.
    pub fn regex(&mut self, field: &Spanned<String>) {
        if let Err(e) = regex::Regex::new(field.get_ref()) {
            self.error(field.span().start, format!("not a regular expression: {e}"));
        }
    }
}

/// Renders a task's fields for one host.
pub struct Renderer<'r, 'e> {
    pub(crate) env: &'r Environment<'e>,
    pub(crate) host: &'r HostSpec,
    pub(crate) task_id: &'r str,
    /// The host's context.
    pub(crate) context: &'r Value,
    /// The host's context plus the values the task needs from other hosts
    /// ([`Renderer::with_values`]).
    pub(crate) values: &'r Value,
}

impl Renderer<'_, '_> {
    /// An error rendering `field`.
    pub fn error(&self, field: &str, message: String) -> TaskError {
        TaskError::Render {
            task: self.task_id.to_string(),
            field: field.to_string(),
            message,
        }
    }

    /// The field `name`, a template, rendered.
    pub fn field(&self, name: &str, text: &str) -> Result<String, TaskError> {
        template::render_str(self.env, text, self.context).map_err(|m| self.error(name, m))
    }

    /// An optional field, rendered.
    pub fn opt(&self, name: &str, text: &Option<String>) -> Result<Option<String>, TaskError> {
        text.as_deref().map(|t| self.field(name, t)).transpose()
    }

    /// A field that may use the values the task needs from other hosts (a command's
    /// `cmd`): placeholders in a plan, the values themselves at apply.
    pub fn with_values(&self, name: &str, text: &str) -> Result<String, TaskError> {
        template::render_str(self.env, text, self.values).map_err(|m| self.error(name, m))
    }

    /// The template named `name` in the template set, rendered.
    pub fn template(&self, name: &str) -> Result<String, TaskError> {
        template::render_template(self.env, name, self.context)
            .map_err(|m| self.error(&format!("template {name}"), m))
    }

    /// The artifact named `name` the caller registered for the host.
    pub fn artifact(&self, name: &str) -> Result<Artifact, TaskError> {
        self.host.artifacts.get(name).cloned().ok_or_else(|| {
            self.error(
                "artifact",
                format!("no artifact named {name:?} was given for this host"),
            )
        })
    }
}
