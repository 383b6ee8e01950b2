//! The summary of an apply: per host, per task, what happened and how long it took;
//! and the local run history, one JSON file per run in a directory the caller gives.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::EngineError;

/// How a host's run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HostOutcome {
    Ok,
    Failed,
    /// Not run: it depends on a host that failed, or it could not be started.
    Skipped,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskReport {
    pub id: String,
    pub name: String,
    /// `ok`, `changed`, `failed` or `skipped`.
    pub outcome: String,
    pub changed: bool,
    /// The ledger matched but the host did not: repaired.
    #[serde(default)]
    pub drift: bool,
    pub duration_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// When the task started, in milliseconds from the start of the run (absent in
    /// runs recorded before it was kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_ms: Option<u64>,
    /// The unified diff of a changed file, redacted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diff: Option<String>,
    /// What a changed or failed task ran, redacted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// The last lines of a failed task's stderr, redacted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stderr: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostReport {
    pub host: String,
    pub outcome: HostOutcome,
    pub ok: usize,
    pub changed: usize,
    pub failed: usize,
    pub skipped: usize,
    pub duration_ms: u64,
    /// Channels opened on the host's connection during this run.
    pub round_trips: u64,
    pub tasks: Vec<TaskReport>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunReport {
    /// RFC 3339, UTC.
    pub started_at: String,
    pub duration_ms: u64,
    pub playbook: String,
    pub hosts: Vec<HostReport>,
}

impl RunReport {
    pub fn success(&self) -> bool {
        self.hosts.iter().all(|h| h.outcome == HostOutcome::Ok)
    }

    pub fn changed(&self) -> usize {
        self.hosts.iter().map(|h| h.changed).sum()
    }

    pub fn to_json(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).unwrap_or_default();
        text.push('\n');
        text
    }

    /// Writes the report into the history directory `dir` as
    /// `<started_at>-<pid>.json` and returns its path.
    pub fn save_history(&self, dir: &Path) -> Result<PathBuf, EngineError> {
        let name = format!(
            "{}-{}.json",
            self.started_at.replace([':', '.'], ""),
            std::process::id()
        );
        let path = dir.join(name);
        let io = |source| EngineError::History {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, self.to_json()).map_err(io)?;
        std::fs::rename(&tmp, &path).map_err(io)?;
        Ok(path)
    }
}
