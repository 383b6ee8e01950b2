//! The engine's errors: a playbook that cannot be read, a task that cannot be
//! rendered, a host that answered something the engine cannot read.
//!
//! Every message names the host and task it is about. Messages that may hold text
//! from a host pass through the [`crate::Redactor`] before they reach a report.

use std::fmt;

/// Where in a playbook or template a problem is: 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Location {
    pub line: usize,
    pub column: usize,
}

impl Location {
    /// The line and column of byte `offset` in `text`.
    pub fn of_offset(text: &str, offset: usize) -> Location {
        let offset = offset.min(text.len());
        let before = text.get(..offset).unwrap_or(text);
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map(|at| at + 1).unwrap_or(0);
        let column = before
            .get(line_start..)
            .map(|s| s.chars().count())
            .unwrap_or(0)
            + 1;
        Location { line, column }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// One problem found in a playbook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub location: Location,
    pub message: String,
}

/// Everything wrong with a playbook, each problem with its line and column.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", render_diagnostics(.source_name, .diagnostics))]
pub struct PlaybookError {
    /// The file name, or `<embedded>/name` for a built-in playbook.
    pub source_name: String,
    pub diagnostics: Vec<Diagnostic>,
}

fn render_diagnostics(source: &str, diagnostics: &[Diagnostic]) -> String {
    diagnostics
        .iter()
        .map(|d| format!("{source}:{}: {}", d.location, d.message))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Why a plan or an apply could not be made at all (as opposed to one host failing,
/// which is reported per host in the plan or the run report).
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("the playbook selects host {name:?}, which is not in the inventory")]
    UnknownHost { name: String },

    #[error("task {task} needs {value:?}, but no fetch task provides it")]
    ValueNotProvided { task: String, value: String },

    #[error("the plan was made for hosts {planned:?}, but this run has hosts {now:?}")]
    PlanHostsDiffer {
        planned: Vec<String>,
        now: Vec<String>,
    },

    #[error("cannot write the run history to {path}: {source}")]
    History {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
}

/// Why one task could not be planned or applied on one host.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TaskError {
    #[error("cannot render {field} of task {task}: {message}")]
    Render {
        task: String,
        field: String,
        message: String,
    },

    #[error("cannot evaluate `when` of task {task}: {message}")]
    When { task: String, message: String },

    #[error("on {host}, cannot read the probe output of task {task}: {message}")]
    ProbeOutput {
        host: String,
        task: String,
        message: String,
    },

    #[error("on {host}, {step} failed: {message}")]
    Transport {
        host: String,
        step: String,
        message: String,
    },

    #[error("on {host}, task {task} failed ({status}) running `{command}`: {stderr_tail}")]
    Failed {
        host: String,
        task: String,
        command: String,
        status: String,
        stderr_tail: String,
    },

    #[error("on {host}, the state file {path} cannot be read: {message}")]
    State {
        host: String,
        path: String,
        message: String,
    },

    #[error("skipped: depends on {host}/{task} which failed")]
    DependencyFailed { host: String, task: String },

    /// A value's producer is read-only in this run and not ready to provide it.
    #[error("skipped: {host} is only read in this run (--limit), and {reason}")]
    ReadOnlyProducer { host: String, reason: String },

    #[error("on {host}, {message}")]
    PlanMismatch { host: String, message: String },
}
