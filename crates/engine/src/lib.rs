//! The k8sup engine: playbooks as data, exact plans with diffs, task state kept on
//! each host, and a parallel apply scheduled per host.
//!
//! The engine knows nothing of Kubernetes: that knowledge is in playbooks and
//! templates (data). The caller (the CLI) connects to hosts, gathers facts, and hands
//! the engine a [`HostSpec`] per host (a [`k8sup_ssh::Transport`], the selection data
//! and a template context). Then:
//!
//! - [`Engine::plan`] runs only read-only probes, one round trip per host, and returns
//!   a [`Plan`]: per host, per task, `ok` / `change` / `drift` / `skip`, with the reason,
//!   a unified diff for files and the command for commands;
//! - [`Engine::apply`] converges the hosts, each at its own pace, and returns a
//!   [`RunReport`]; with a plan it applies exactly that plan or refuses a drifted host.
//!
//! Modules, in the order data flows:
//! - [`playbook`]: the TOML format, parsed and checked with line:column errors;
//! - [`template`]: minijinja rendering with strict undefined;
//! - `program`: one host's tasks, selected and rendered;
//! - `script`: the shell prelude (a library each host's shell defines once) and the
//!   framing that batches many probes in a channel;
//! - `kinds`: each task kind in one module (its fields, parse, render, canonical
//!   form, probe, judgement and apply), registered in one table;
//! - [`state`]: the ledger on the host; [`fingerprint`]: what it records of each task;
//! - `engine`: planning, the per-host runners and the value board between hosts;
//! - [`plan`], [`report`], [`event`]: what comes out; [`redact`]: secrets kept out of it;
//! - `encoding`: sha256, base64 and nonces, a leaf every other module may use.

mod context;
pub mod diff;
mod encoding;
mod engine;
pub mod error;
pub mod event;
pub mod fingerprint;
mod host;
pub mod input;
mod kinds;
pub mod plan;
pub mod playbook;
mod program;
pub mod redact;
pub mod report;
mod script;
pub mod state;
pub mod template;

#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use context::{Context, ContextPool};
pub use engine::{Engine, EngineOptions};
pub use error::{Diagnostic, EngineError, Location, PlaybookError, TaskError};
pub use event::{EngineEvent, EventSink, TaskOutcome};
pub use host::{Artifact, Family, HostSpec, Platform};
pub use plan::{HostPlan, Plan, TaskPlan, TaskStatus};
pub use playbook::{Action, HostSelector, Play, Playbook, Task};
pub use redact::{Redactor, REDACTED};
pub use report::{read_history, HostOutcome, HostReport, RunReport, RunStatus, TaskReport};
pub use state::{StateEntry, StateLedger, DEFAULT_STATE_PATH};
pub use template::TemplateSet;

#[cfg(test)]
mod tests;

#[cfg(test)]
mod layering;

#[cfg(test)]
mod prelude_text;
