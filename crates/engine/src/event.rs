//! What the engine tells its caller while it works. The engine never prints: it
//! sends [`EngineEvent`]s to an [`EventSink`], and the CLI renders them as progress
//! bars, log lines or JSON. Every text in an event has been redacted.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

/// How a task ended, as reported in events and the run report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskOutcome {
    Ok,
    Changed,
    Failed,
    Skipped,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum EngineEvent {
    HostStarted {
        host: String,
        tasks: usize,
    },
    /// The batched probe of a host's tasks came back.
    HostProbed {
        host: String,
        pending: usize,
    },
    TaskStarted {
        host: String,
        task: String,
        name: String,
    },
    /// A task waits for a value another host provides.
    TaskWaiting {
        host: String,
        task: String,
        value: String,
        from: String,
    },
    TaskFinished {
        host: String,
        task: String,
        name: String,
        outcome: TaskOutcome,
        changed: bool,
        /// Drift was found and repaired.
        drift: bool,
        #[serde(with = "millis")]
        duration: Duration,
        reason: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        diff: Option<String>,
    },
    /// A fetch task ran on its host because another host needed its value.
    ValueFetched {
        host: String,
        task: String,
        value: String,
        for_host: String,
    },
    HostFinished {
        host: String,
        ok: usize,
        changed: usize,
        skipped: usize,
        #[serde(with = "millis")]
        duration: Duration,
    },
    HostFailed {
        host: String,
        task: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        command: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        exit_status: Option<String>,
        stderr_tail: String,
        message: String,
    },
    Warning {
        host: String,
        message: String,
    },
}

/// Where events go: a callback, called from the engine's tasks.
pub type EventSink = Arc<dyn Fn(EngineEvent) + Send + Sync>;

/// A sink that drops every event.
pub fn discard() -> EventSink {
    Arc::new(|_| {})
}

mod millis {
    use serde::Serializer;
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis().try_into().unwrap_or(u64::MAX))
    }
}
