//! One host's program: the tasks of the plays that select it, in playbook order
//! (each play's handlers after its tasks), with `when` decided and every field
//! rendered for that host. Planning and applying both start here, so the plan shows
//! exactly what apply will run.

use std::collections::BTreeMap;

use k8sup_shell::Script;
use minijinja::{Environment, Value};

use crate::error::TaskError;
use crate::host::HostSpec;
use crate::playbook::{
    Action, CommandSpec, FileSource, FileSpec, LineEdit, LineSpec, Playbook, Task,
};
use crate::state::StateLedger;
use crate::{fingerprint, kinds, template};

/// A task as it applies to one host.
pub(crate) struct Step<'p> {
    pub task: &'p Task,
    pub handler: bool,
    pub selection: Selection,
}

pub(crate) enum Selection {
    /// `when` is false: the reason.
    Skip(String),
    Run {
        rendered: Action,
        fingerprint: String,
        /// The probe call, `None` for kinds without one (fetch) and handlers.
        probe: Option<Script>,
    },
}

impl Step<'_> {
    pub fn probe(&self) -> Option<&Script> {
        match &self.selection {
            Selection::Run { probe, .. } => probe.as_ref(),
            Selection::Skip(_) => None,
        }
    }

    /// The files its probe reads (none when it has no probe).
    pub fn probed_files(&self) -> Vec<&str> {
        match &self.selection {
            Selection::Run {
                rendered,
                probe: Some(_),
                ..
            } => crate::kinds::probed_files(rendered),
            _ => Vec::new(),
        }
    }

    pub fn fingerprint(&self) -> &str {
        match &self.selection {
            Selection::Run { fingerprint, .. } => fingerprint,
            Selection::Skip(_) => "",
        }
    }

    /// Whether `ledger` records a successful run of this step as it is rendered now.
    pub fn recorded_in(&self, ledger: &StateLedger) -> bool {
        match &self.selection {
            Selection::Run {
                rendered,
                fingerprint,
                ..
            } => ledger.matches(&self.task.id, rendered, fingerprint),
            Selection::Skip(_) => false,
        }
    }

    /// Upgrades this step's ledger entry to the current fingerprint version when an
    /// older k8sup recorded this very task (see [`StateLedger::upgrade`]).
    pub fn upgrade_in(&self, ledger: &mut StateLedger) {
        if let Selection::Run {
            rendered,
            fingerprint,
            ..
        } = &self.selection
        {
            ledger.upgrade(&self.task.id, rendered, fingerprint);
        }
    }
}

/// The context object for a host: the caller's context plus `platform`.
pub(crate) fn host_context(host: &HostSpec) -> serde_json::Map<String, serde_json::Value> {
    let mut map = match &host.context {
        serde_json::Value::Object(map) => map.clone(),
        _ => serde_json::Map::new(),
    };
    if let Ok(platform) = serde_json::to_value(&host.platform) {
        map.insert("platform".into(), platform);
    }
    map
}

/// The text a needed value is rendered as where the value itself is not known (or
/// must not be shown): in plans and fingerprints.
pub(crate) fn placeholder(value: &str, producer: &str) -> String {
    format!("<{value} from {producer}>")
}

/// Builds the program of `host`. `producers` maps each fetched value to the host that
/// provides it. `values` holds needed values already fetched (only at apply).
pub(crate) fn build<'p>(
    playbook: &'p Playbook,
    env: &Environment<'_>,
    host: &HostSpec,
    producers: &BTreeMap<String, String>,
) -> Result<Vec<Step<'p>>, TaskError> {
    let base = host_context(host);
    let base_value = Value::from_serialize(&base);
    let mut steps = Vec::new();
    for play in &playbook.plays {
        if !play.hosts.selects(host) {
            continue;
        }
        let tasks = play.tasks.iter().map(|t| (t, false));
        let handlers = play.handlers.iter().map(|t| (t, true));
        for (task, handler) in tasks.chain(handlers) {
            let selection = select(env, host, task, handler, &base, &base_value, producers)?;
            steps.push(Step {
                task,
                handler,
                selection,
            });
        }
    }
    Ok(steps)
}

fn select(
    env: &Environment<'_>,
    host: &HostSpec,
    task: &Task,
    handler: bool,
    base: &serde_json::Map<String, serde_json::Value>,
    base_value: &Value,
    producers: &BTreeMap<String, String>,
) -> Result<Selection, TaskError> {
    for expr in &task.when {
        let holds =
            template::evaluate(env, expr, base_value).map_err(|message| TaskError::When {
                task: task.id.clone(),
                message,
            })?;
        if !holds {
            return Ok(Selection::Skip(format!("when `{expr}` is false")));
        }
    }
    let mut with_placeholders = base.clone();
    for need in &task.needs {
        let producer = producers.get(need).map(String::as_str).unwrap_or("?");
        with_placeholders.insert(need.clone(), placeholder(need, producer).into());
    }
    let rendered = render(
        env,
        host,
        task,
        base_value,
        &Value::from_serialize(&with_placeholders),
    )?;
    let fingerprint = fingerprint::fingerprint(&task.id, &rendered);
    let probe = if handler {
        None
    } else {
        kinds::probe(&rendered, &host.platform).map_err(|message| TaskError::Render {
            task: task.id.clone(),
            field: "probe".into(),
            message,
        })?
    };
    Ok(Selection::Run {
        rendered,
        fingerprint,
        probe,
    })
}

/// Renders a command task's `cmd` with the values it needs (at apply).
pub(crate) fn render_with_values(
    env: &Environment<'_>,
    host: &HostSpec,
    task: &Task,
    values: &BTreeMap<String, String>,
) -> Result<CommandSpec, TaskError> {
    let mut context = host_context(host);
    for (name, value) in values {
        context.insert(name.clone(), value.clone().into());
    }
    let context = Value::from_serialize(&context);
    match render(env, host, task, &context, &context)? {
        Action::Command(spec) => Ok(spec),
        other => Err(TaskError::Render {
            task: task.id.clone(),
            field: "needs".into(),
            message: format!(
                "only command tasks take values from other hosts, not {}",
                other.kind()
            ),
        }),
    }
}

/// Renders every field of `task`. `cmd_context` is used for a command's `cmd` (the
/// only field that may use values from other hosts); the rest use `context`.
fn render(
    env: &Environment<'_>,
    host: &HostSpec,
    task: &Task,
    context: &Value,
    cmd_context: &Value,
) -> Result<Action, TaskError> {
    let field = |name: &str, text: &str| -> Result<String, TaskError> {
        template::render_str(env, text, context).map_err(|message| TaskError::Render {
            task: task.id.clone(),
            field: name.to_string(),
            message,
        })
    };
    let opt = |name: &str, text: &Option<String>| -> Result<Option<String>, TaskError> {
        text.as_deref().map(|t| field(name, t)).transpose()
    };
    Ok(match &task.action {
        Action::File(spec) => {
            let source = match &spec.source {
                FileSource::Content(text) => FileSource::Content(field("content", text)?),
                FileSource::Template(name) => {
                    let name = field("template", name)?;
                    FileSource::Content(template::render_template(env, &name, context).map_err(
                        |message| TaskError::Render {
                            task: task.id.clone(),
                            field: format!("template {name}"),
                            message,
                        },
                    )?)
                }
                FileSource::Artifact(name) => {
                    let name = field("artifact", name)?;
                    let data =
                        host.artifacts
                            .get(&name)
                            .cloned()
                            .ok_or_else(|| TaskError::Render {
                                task: task.id.clone(),
                                field: "artifact".into(),
                                message: format!(
                                    "no artifact named {name:?} was given for this host"
                                ),
                            })?;
                    FileSource::Binary {
                        artifact: name,
                        data,
                    }
                }
                FileSource::Binary { .. } => spec.source.clone(),
            };
            Action::File(FileSpec {
                path: field("path", &spec.path)?,
                source,
                mode: spec.mode,
                owner: opt("owner", &spec.owner)?,
                group: opt("group", &spec.group)?,
            })
        }
        Action::Line(spec) => Action::Line(LineSpec {
            path: field("path", &spec.path)?,
            edit: match &spec.edit {
                LineEdit::Present { line, regexp } => LineEdit::Present {
                    line: field("line", line)?,
                    regexp: opt("regexp", regexp)?,
                },
                LineEdit::CommentOut { regexp } => LineEdit::CommentOut {
                    regexp: field("comment_out", regexp)?,
                },
            },
        }),
        Action::Package(spec) => {
            let mut out = spec.clone();
            out.packages = spec
                .packages
                .iter()
                .map(|p| field("packages", p))
                .collect::<Result<_, _>>()?;
            out.version = opt("version", &spec.version)?.filter(|v| !v.is_empty());
            Action::Package(out)
        }
        Action::Service(spec) => {
            let mut out = spec.clone();
            out.service = field("service", &spec.service)?;
            Action::Service(out)
        }
        Action::Module(spec) => Action::Module(crate::playbook::ModuleSpec {
            module: field("module", &spec.module)?,
            persist_file: opt("persist_file", &spec.persist_file)?,
        }),
        Action::Sysctl(spec) => Action::Sysctl(crate::playbook::SysctlSpec {
            settings: spec
                .settings
                .iter()
                .map(|(k, v)| Ok((k.clone(), field(k, v)?)))
                .collect::<Result<_, TaskError>>()?,
            file: field("file", &spec.file)?,
        }),
        Action::Command(spec) => Action::Command(CommandSpec {
            cmd: template::render_str(env, &spec.cmd, cmd_context).map_err(|message| {
                TaskError::Render {
                    task: task.id.clone(),
                    field: "cmd".into(),
                    message,
                }
            })?,
            creates: opt("creates", &spec.creates)?,
            unless: opt("unless", &spec.unless)?,
        }),
        Action::Fetch(spec) => {
            let mut out = spec.clone();
            out.cmd = field("cmd", &spec.cmd)?;
            Action::Fetch(out)
        }
        Action::Hostname(spec) => Action::Hostname(crate::playbook::HostnameSpec {
            hostname: field("hostname", &spec.hostname)?,
        }),
    })
}
