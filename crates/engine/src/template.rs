//! Rendering playbook text and templates with minijinja, undefined values refused.
//!
//! A [`TemplateSet`] holds named templates (the caller embeds the built-in ones and
//! may overlay a directory of overrides). Field values of tasks are themselves small
//! templates rendered with the same context: the host's context object from the
//! caller, plus `platform` (arch, family, distro, distro_version).
//!
//! Functions available in templates and `when` expressions:
//! `version_compare(a, op, b)` compares dotted versions (`"22.04" >= "20.04"`).

use std::collections::BTreeMap;
use std::path::Path;

use minijinja::{Environment, UndefinedBehavior, Value};

use crate::input::{read_text_capped, InputError, MAX_TEMPLATES_TOTAL_BYTES, MAX_TEMPLATE_BYTES};

/// Named templates: the embedded set, possibly overlaid by files.
#[derive(Debug, Clone, Default)]
pub struct TemplateSet {
    templates: BTreeMap<String, String>,
}

impl TemplateSet {
    pub fn new() -> Self {
        TemplateSet::default()
    }

    /// Adds or replaces the template `name`.
    pub fn insert(&mut self, name: impl Into<String>, text: impl Into<String>) {
        self.templates.insert(name.into(), text.into());
    }

    /// Adds every file under `dir` (recursively) by its path relative to `dir`,
    /// replacing templates of the same name: how `--templates DIR` overrides apply.
    /// Each file is read with a cap, and so is the whole directory.
    pub fn overlay_dir(&mut self, dir: &Path) -> Result<(), InputError> {
        fn walk(
            base: &Path,
            dir: &Path,
            out: &mut TemplateSet,
            total: &mut u64,
        ) -> Result<(), InputError> {
            let io = |source| InputError::Io {
                what: "the templates directory".into(),
                path: dir.to_path_buf(),
                source,
            };
            for entry in std::fs::read_dir(dir).map_err(io)? {
                let path = entry.map_err(io)?.path();
                if path.is_dir() {
                    walk(base, &path, out, total)?;
                } else if let Ok(relative) = path.strip_prefix(base) {
                    let name = relative.to_string_lossy().replace('\\', "/");
                    let text = read_text_capped(&path, MAX_TEMPLATE_BYTES, "the template")?;
                    *total += text.len() as u64;
                    if *total > MAX_TEMPLATES_TOTAL_BYTES {
                        return Err(InputError::TooLarge {
                            what: "the templates directory".into(),
                            path: base.to_path_buf(),
                            limit: MAX_TEMPLATES_TOTAL_BYTES,
                        });
                    }
                    out.insert(name, text);
                }
            }
            Ok(())
        }
        walk(dir, dir, self, &mut 0)
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.templates.get(name).map(String::as_str)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.templates.keys().map(String::as_str)
    }
}

/// The minijinja environment shared by all renders: strict undefined, no auto-escape,
/// templates from a [`TemplateSet`], `version_compare`.
pub(crate) fn environment(templates: &TemplateSet) -> Environment<'static> {
    let mut env = base_environment();
    let owned = templates.templates.clone();
    env.set_loader(move |name| Ok(owned.get(name).cloned()));
    env
}

fn base_environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
    env.set_keep_trailing_newline(true);
    env.add_function("version_compare", version_compare);
    env
}

/// Checks that `expr` compiles as an expression (at playbook parse time).
pub(crate) fn check_expression(expr: &str) -> Result<(), String> {
    let env = base_environment();
    env.compile_expression(expr)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Renders `source` (a field's text) with `context`.
pub(crate) fn render_str(
    env: &Environment<'_>,
    source: &str,
    context: &Value,
) -> Result<String, String> {
    if !source.contains("{{") && !source.contains("{%") && !source.contains("{#") {
        return Ok(source.to_string());
    }
    env.render_str(source, context).map_err(describe)
}

/// Renders the named template with `context`.
pub(crate) fn render_template(
    env: &Environment<'_>,
    name: &str,
    context: &Value,
) -> Result<String, String> {
    let template = env.get_template(name).map_err(describe)?;
    template.render(context).map_err(describe)
}

/// Evaluates a `when` expression; it must yield a boolean-ish value.
pub(crate) fn evaluate(env: &Environment<'_>, expr: &str, context: &Value) -> Result<bool, String> {
    let compiled = env.compile_expression(expr).map_err(describe)?;
    let value = compiled.eval(context).map_err(describe)?;
    Ok(value.is_true())
}

/// A minijinja error with its cause chain, on one line.
fn describe(error: minijinja::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// `version_compare("1.30.2", ">=", "1.30")`: numeric per dot-separated part, missing
/// parts are 0, a non-numeric part compares as text.
fn version_compare(a: String, op: String, b: String) -> Result<bool, minijinja::Error> {
    let ordering = compare_versions(&a, &b);
    use std::cmp::Ordering::*;
    Ok(match op.as_str() {
        "==" | "=" => ordering == Equal,
        "!=" => ordering != Equal,
        "<" => ordering == Less,
        "<=" => ordering != Greater,
        ">" => ordering == Greater,
        ">=" => ordering != Less,
        _ => {
            return Err(minijinja::Error::new(
                minijinja::ErrorKind::InvalidOperation,
                format!("version_compare: unknown operator {op:?}"),
            ))
        }
    })
}

pub(crate) fn compare_versions(a: &str, b: &str) -> std::cmp::Ordering {
    let parts = |v: &str| -> Vec<String> {
        v.trim_start_matches('v')
            .split(['.', '-', '+'])
            .map(str::to_string)
            .collect()
    };
    let (pa, pb) = (parts(a), parts(b));
    for i in 0..pa.len().max(pb.len()) {
        let x = pa.get(i).map(String::as_str).unwrap_or("0");
        let y = pb.get(i).map(String::as_str).unwrap_or("0");
        let ord = match (x.parse::<u64>(), y.parse::<u64>()) {
            (Ok(x), Ok(y)) => x.cmp(&y),
            _ => x.cmp(y),
        };
        if ord != std::cmp::Ordering::Equal {
            return ord;
        }
    }
    std::cmp::Ordering::Equal
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> Value {
        Value::from_serialize(serde_json::json!({
            "platform": {"arch": "amd64", "family": "debian", "distro": "ubuntu", "distro_version": "22.04"},
            "host": {"name": "m1"}
        }))
    }

    #[test]
    fn strict_undefined_is_an_error() {
        let env = environment(&TemplateSet::new());
        assert_eq!(render_str(&env, "{{ host.name }}", &ctx()).unwrap(), "m1");
        let e = render_str(&env, "{{ host.nope }}", &ctx()).unwrap_err();
        assert!(e.contains("undefined"), "{e}");
    }

    #[test]
    fn when_conditions_use_platform_and_versions() {
        let env = environment(&TemplateSet::new());
        assert!(evaluate(&env, "platform.arch == 'amd64'", &ctx()).unwrap());
        assert!(!evaluate(&env, "platform.family == 'redhat'", &ctx()).unwrap());
        assert!(evaluate(
            &env,
            "version_compare(platform.distro_version, '>=', '20.04')",
            &ctx()
        )
        .unwrap());
        assert!(!evaluate(
            &env,
            "version_compare(platform.distro_version, '<', '22.4')",
            &ctx()
        )
        .unwrap());
        assert!(evaluate(&env, "missing == 1", &ctx()).is_err());
    }

    #[test]
    fn templates_come_from_the_set_and_keep_newlines() {
        let mut set = TemplateSet::new();
        set.insert("a.j2", "name={{ host.name }}\n");
        let env = environment(&set);
        assert_eq!(render_template(&env, "a.j2", &ctx()).unwrap(), "name=m1\n");
        assert!(render_template(&env, "b.j2", &ctx()).is_err());
    }

    #[test]
    fn versions_compare_numerically() {
        use std::cmp::Ordering::*;
        assert_eq!(compare_versions("1.10", "1.9"), Greater);
        assert_eq!(compare_versions("v1.30", "1.30.0"), Equal);
        assert_eq!(compare_versions("9", "22.04"), Less);
    }
}
