//! The plan: per host, per task, what apply would do and why. Serializable with a
//! stable order (hosts as given, tasks in playbook order) and no secrets, so that
//! `k8sup plan -o plan.json` can be reviewed and `k8sup apply --plan plan.json` can
//! apply exactly it.

use serde::{Deserialize, Serialize};

/// What a task would do on a host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskStatus {
    /// Already as wanted; apply does nothing.
    Ok,
    /// Apply changes something.
    Change,
    /// The ledger says this task was applied with these very inputs, but the host
    /// no longer matches: something changed it out of band. Apply restores it.
    Drift,
    /// Not for this host (`when` is false) or nothing to do by construction.
    Skip,
}

/// One task on one host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskPlan {
    pub id: String,
    pub name: String,
    pub kind: String,
    pub status: TaskStatus,
    /// Which fact or state differs (or why nothing does).
    pub reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diff: Option<String>,
    /// The command apply would run, as a person reads it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// sha256 of the task's rendered inputs.
    pub fingerprint: String,
    /// sha256 of the probe's output: apply refuses when it differs at apply time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe_digest: Option<String>,
    /// Whether this is a handler (runs at the end of its play when notified).
    #[serde(default)]
    pub handler: bool,
}

/// One host's part of the plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostPlan {
    pub host: String,
    pub tasks: Vec<TaskPlan>,
    /// Why the host could not be planned (unreachable, a template error...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl HostPlan {
    pub fn pending(&self) -> usize {
        self.tasks
            .iter()
            .filter(|t| matches!(t.status, TaskStatus::Change | TaskStatus::Drift))
            .count()
    }
}

/// The whole plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub format: u32,
    pub playbook: String,
    /// sha256 of the inventory file the plan was made from (set by the caller):
    /// a plan is applied only with that very inventory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inventory_sha256: Option<String>,
    pub hosts: Vec<HostPlan>,
}

impl Plan {
    /// 2: the inventory's sha256 is recorded.
    pub const FORMAT: u32 = 2;

    /// The sha256 of an input (the inventory file's bytes), as plans record it.
    pub fn input_digest(bytes: &[u8]) -> String {
        crate::encoding::sha256_hex(bytes)
    }

    /// Whether apply would change anything (for `--detailed-exitcode`).
    pub fn has_changes(&self) -> bool {
        self.hosts.iter().any(|h| h.pending() > 0)
    }

    /// Whether any host could not be planned.
    pub fn has_errors(&self) -> bool {
        self.hosts.iter().any(|h| h.error.is_some())
    }

    pub fn to_json(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).unwrap_or_default();
        text.push('\n');
        text
    }

    pub fn from_json(text: &str) -> Result<Plan, serde_json::Error> {
        serde_json::from_str(text)
    }

    pub fn host(&self, name: &str) -> Option<&HostPlan> {
        self.hosts.iter().find(|h| h.host == name)
    }
}
