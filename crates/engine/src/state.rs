//! The task ledger kept on each host at `/var/lib/k8sup/state.json`.
//!
//! Per task id: the fingerprint of the task's rendered inputs, the result, when it
//! finished and how long it took; plus the handlers notified but not yet run (so a
//! runtime restart owed by a failed run is not forgotten). The file is read by the
//! batched probe and rewritten, atomically, in the same round trip as each apply: the
//! engine sends the new JSON with placeholders for the result and the times, which
//! the host fills in once the apply has run (see `k8sup_state` in the prelude).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// The default place of the ledger on a host.
pub const DEFAULT_STATE_PATH: &str = "/var/lib/k8sup/state.json";

/// One task's last recorded run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateEntry {
    pub fingerprint: String,
    /// `changed` or `failed`.
    pub result: String,
    /// Milliseconds since the Unix epoch, host clock.
    pub started_ms: u64,
    pub finished_ms: u64,
    pub duration_ms: u64,
}

/// The whole ledger of a host.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateLedger {
    pub version: u32,
    pub tasks: BTreeMap<String, StateEntry>,
    #[serde(default)]
    pub pending_handlers: BTreeSet<String>,
}

// Sentinels serialized in place of the values the host fills in (the n-th pending
// entry adds 10 * n), replaced by tokens carrying the entry's tag before sending.
const START_SENTINEL: u64 = 9_000_000_000_000_001;
const END_SENTINEL: u64 = 9_000_000_000_000_002;
const DURATION_SENTINEL: u64 = 9_000_000_000_000_003;
const RESULT_SENTINEL: &str = "k8sup-result-placeholder";

/// A ledger entry written by an apply script before the host knows its values.
#[derive(Debug, Clone)]
pub(crate) struct PendingEntry<'a> {
    pub task_id: &'a str,
    pub fingerprint: &'a str,
    /// Unique in its script: the placeholders are `K8SUPRESULT<tag>`, `K8SUPSTART<tag>`,
    /// `K8SUPEND<tag>` and `K8SUPDUR<tag>`.
    pub tag: String,
    pub notify: &'a [String],
    pub handler_ran: Option<&'a str>,
}

impl StateLedger {
    /// Parses the ledger; an absent file is an empty ledger.
    pub fn parse(text: &str) -> Result<StateLedger, String> {
        serde_json::from_str(text).map_err(|e| e.to_string())
    }

    /// The JSON to write once every entry of `pending` (applied in order, each after a
    /// successful one) has run: this ledger plus those entries, each with the
    /// placeholders of its tag for what only the host knows (`k8sup_state` fills them).
    pub(crate) fn batch_json(&self, pending: &[PendingEntry<'_>]) -> String {
        let mut next = self.clone();
        next.version = 1;
        for (n, entry) in pending.iter().enumerate() {
            let bump = 10 * n as u64;
            next.tasks.insert(
                entry.task_id.to_string(),
                StateEntry {
                    fingerprint: entry.fingerprint.to_string(),
                    result: format!("{RESULT_SENTINEL}-{n}"),
                    started_ms: START_SENTINEL + bump,
                    finished_ms: END_SENTINEL + bump,
                    duration_ms: DURATION_SENTINEL + bump,
                },
            );
            next.pending_handlers.extend(entry.notify.iter().cloned());
            if let Some(handler) = entry.handler_ran {
                next.pending_handlers.remove(handler);
            }
        }
        let mut json = serde_json::to_string(&next).unwrap_or_default();
        for (n, entry) in pending.iter().enumerate() {
            let bump = 10 * n as u64;
            let tag = &entry.tag;
            json = json
                .replacen(
                    &format!("\"result\":\"{RESULT_SENTINEL}-{n}\""),
                    &format!("\"result\":\"K8SUPRESULT{tag}\""),
                    1,
                )
                .replacen(
                    &format!("\"started_ms\":{}", START_SENTINEL + bump),
                    &format!("\"started_ms\":K8SUPSTART{tag}"),
                    1,
                )
                .replacen(
                    &format!("\"finished_ms\":{}", END_SENTINEL + bump),
                    &format!("\"finished_ms\":K8SUPEND{tag}"),
                    1,
                )
                .replacen(
                    &format!("\"duration_ms\":{}", DURATION_SENTINEL + bump),
                    &format!("\"duration_ms\":K8SUPDUR{tag}"),
                    1,
                );
        }
        json
    }

    /// Records what the host wrote for `task_id`, to stay equal to the file.
    #[allow(clippy::too_many_arguments)] // mirrors the fields of one ledger write
    pub(crate) fn record(
        &mut self,
        task_id: &str,
        fingerprint: &str,
        success: bool,
        started_ms: u64,
        finished_ms: u64,
        notify: &[String],
        handler_ran: Option<&str>,
    ) {
        self.version = 1;
        self.tasks.insert(
            task_id.to_string(),
            StateEntry {
                fingerprint: fingerprint.to_string(),
                result: if success { "changed" } else { "failed" }.to_string(),
                started_ms,
                finished_ms,
                duration_ms: finished_ms.saturating_sub(started_ms),
            },
        );
        self.pending_handlers.extend(notify.iter().cloned());
        if let Some(handler) = handler_ran {
            self.pending_handlers.remove(handler);
        }
    }

    /// Whether the last recorded successful run of `task_id` had `fingerprint`.
    pub fn matches(&self, task_id: &str, fingerprint: &str) -> bool {
        self.tasks
            .get(task_id)
            .is_some_and(|e| e.fingerprint == fingerprint && e.result == "changed")
    }
}

/// The fingerprint of a task: sha256 over its id, kind and rendered inputs. Values a
/// task needs from other hosts are not in it (they are rendered as placeholders), so
/// a secret can never be recovered from it, and a join token that changes every run
/// does not make the task look new.
pub fn fingerprint(task_id: &str, rendered: &crate::playbook::Action) -> String {
    let text = format!("{task_id}\0{}\0{rendered:?}", rendered.kind());
    crate::kinds::sha256_hex(text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::playbook::{Action, CommandSpec};

    #[test]
    fn placeholders_become_host_values_and_parse_back() {
        let notify = vec!["p/handler/h".to_string()];
        let pending = [
            PendingEntry {
                task_id: "p/t",
                fingerprint: "abc",
                tag: "N0x1y".into(),
                notify: &notify,
                handler_ran: None,
            },
            PendingEntry {
                task_id: "p/handler/h",
                fingerprint: "def",
                tag: "N0x12y".into(),
                notify: &[],
                handler_ran: Some("p/handler/h"),
            },
        ];
        let json = StateLedger::default().batch_json(&pending);
        assert!(json.contains("\"result\":\"K8SUPRESULTN0x1y\""), "{json}");
        assert!(json.contains("\"started_ms\":K8SUPSTARTN0x12y"), "{json}");
        // What k8sup_state's sed program does, entry by entry.
        let filled = json
            .replace("K8SUPRESULTN0x1y", "changed")
            .replace("K8SUPSTARTN0x1y", "1000")
            .replace("K8SUPENDN0x1y", "1500")
            .replace("K8SUPDURN0x1y", "500")
            .replace("K8SUPRESULTN0x12y", "changed")
            .replace("K8SUPSTARTN0x12y", "1600")
            .replace("K8SUPENDN0x12y", "1700")
            .replace("K8SUPDURN0x12y", "100");
        let parsed = StateLedger::parse(&filled).unwrap();
        let mut expected = StateLedger::default();
        expected.record("p/t", "abc", true, 1000, 1500, &notify, None);
        expected.record(
            "p/handler/h",
            "def",
            true,
            1600,
            1700,
            &[],
            Some("p/handler/h"),
        );
        assert_eq!(parsed, expected);
        assert!(parsed.pending_handlers.is_empty());
        assert!(parsed.matches("p/t", "abc"));
        assert!(!parsed.matches("p/t", "abd"));
    }

    #[test]
    fn fingerprints_follow_rendered_inputs() {
        let a = Action::Command(CommandSpec {
            cmd: "echo 1".into(),
            creates: None,
            unless: None,
        });
        let b = Action::Command(CommandSpec {
            cmd: "echo 2".into(),
            creates: None,
            unless: None,
        });
        assert_eq!(fingerprint("t", &a), fingerprint("t", &a));
        assert_ne!(fingerprint("t", &a), fingerprint("t", &b));
        assert_ne!(fingerprint("t", &a), fingerprint("u", &a));
        assert_eq!(fingerprint("t", &a).len(), 64);
    }
}
