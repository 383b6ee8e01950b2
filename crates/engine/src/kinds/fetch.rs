//! `fetch`: a value one host provides to others (the join credentials), by a
//! read-only command run on demand: only when a task that `needs` the value is about
//! to change, once, on the first host that runs this task. It has no probe; the
//! engine's value board (see `crate::engine`) runs it.

use k8sup_shell::Script;
use toml::Spanned;

use super::{Kind, RawTask, Renderer, Verdict};
use crate::encoding::Form;
use crate::error::TaskError;
use crate::host::Platform;
use crate::script::Section;

/// A `fetch` task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchSpec {
    pub cmd: String,
    pub provides: String,
    pub secret: bool,
}

impl Kind for FetchSpec {
    const NAME: &'static str = "fetch";
    const FIELDS: &'static [&'static str] = &["cmd", "provides", "secret"];
    type Rendered = FetchSpec;

    fn parse(raw: &mut RawTask<'_>) -> Option<FetchSpec> {
        let at = raw.at();
        let secret = raw.flag("secret").map(Spanned::into_inner).unwrap_or(false);
        let provides = raw.required("provides", Self::NAME)?;
        if !is_identifier(&provides) {
            raw.error(
                at,
                format!("provides = {provides:?} must be an identifier (letters, digits, _)"),
            );
        }
        Some(FetchSpec {
            cmd: raw.required("cmd", Self::NAME)?,
            provides,
            secret,
        })
    }

    fn render(&self, r: &Renderer<'_, '_>) -> Result<FetchSpec, TaskError> {
        Ok(FetchSpec {
            cmd: r.field("cmd", &self.cmd)?,
            ..self.clone()
        })
    }

    fn canonical(spec: &FetchSpec, form: &mut Form) {
        form.text("cmd", &spec.cmd);
        form.text("provides", &spec.provides);
        if spec.secret {
            form.raw("secret", "true");
        }
    }

    fn legacy_v1_text(spec: &FetchSpec) -> Option<String> {
        Some(format!(
            "Fetch(FetchSpec {{ cmd: {:?}, provides: {:?}, secret: {} }})",
            spec.cmd, spec.provides, spec.secret
        ))
    }

    fn probe(_: &FetchSpec, _: &Platform) -> Result<Option<Script>, String> {
        Ok(None)
    }

    fn judge(_: &FetchSpec, _: &Platform, _: &Section) -> Result<Verdict, String> {
        Err("fetch tasks are not probed".into())
    }
}

fn is_identifier(text: &str) -> bool {
    !text.is_empty()
        && !text.starts_with(|c: char| c.is_ascii_digit())
        && text.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}
