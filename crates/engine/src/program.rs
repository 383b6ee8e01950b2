//! One host's program: the tasks of the plays that select it, in playbook order
//! (each play's handlers after its tasks), with `when` decided and every field
//! rendered for that host. Planning and applying both start here, so the plan shows
//! exactly what apply will run.

use std::collections::BTreeMap;

use k8sup_shell::Script;
use minijinja::{Environment, Value};

use crate::error::TaskError;
use crate::host::HostSpec;
use crate::kinds::{CommandSpec, Rendered, Renderer};
use crate::playbook::{Playbook, Task};
use crate::state::StateLedger;
use crate::{fingerprint, template};

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
        rendered: Rendered,
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
            } => rendered.probed_files(),
            _ => Vec::new(),
        }
    }

    pub fn fingerprint(&self) -> &str {
        match &self.selection {
            Selection::Run { fingerprint, .. } => fingerprint,
            Selection::Skip(_) => "",
        }
    }

    /// The files its probe reads whole (none when it has no probe).
    pub fn read_files(&self) -> Vec<&str> {
        match &self.selection {
            Selection::Run {
                rendered,
                probe: Some(_),
                ..
            } => rendered.read_files(),
            _ => Vec::new(),
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
    let mut map = host.context.to_map();
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
        rendered
            .probe(&host.platform)
            .map_err(|message| TaskError::Render {
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
        Rendered::Command(spec) => Ok(spec),
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

/// Renders every field of `task` (see [`crate::kinds::Kind::render`]). `values` is the
/// context of the fields that may use values from other hosts (a command's `cmd`);
/// the rest use `context`.
fn render(
    env: &Environment<'_>,
    host: &HostSpec,
    task: &Task,
    context: &Value,
    values: &Value,
) -> Result<Rendered, TaskError> {
    task.action.render(&Renderer {
        env,
        host,
        task_id: &task.id,
        context,
        values,
    })
}
