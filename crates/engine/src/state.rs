//! The task ledger kept on each host at `/var/lib/k8sup/state.json`.
//!
//! Per task id: the fingerprint of the task's rendered inputs, the result, when it
//! finished and how long it took; plus the handlers notified but not yet run (so a
//! runtime restart owed by a failed run is not forgotten). The file is read by the
//! batched probe with its journal (`state.json.journal`: a line per entry recorded
//! since the file was last rewritten), which is replayed on it. Each apply appends its
//! entry to the journal; the end of a batch makes the journal durable (one fsync) and,
//! once the journal holds more than [`JOURNAL_FOLD_BYTES`], rewrites the file,
//! atomically, with every entry, and empties the journal: the engine sends the new JSON
//! with placeholders for the result and the times, which the host fills in once the
//! apply has run (see `k8sup_state` and `k8sup_compact` in the prelude).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::fingerprint;
use crate::kinds::Rendered;
use crate::script::LedgerWrite;

/// The default place of the ledger on a host.
pub const DEFAULT_STATE_PATH: &str = "/var/lib/k8sup/state.json";

/// The size of the journal past which a batch folds it into the ledger file; below
/// it, a batch leaves its entries in the journal.
pub const JOURNAL_FOLD_BYTES: u64 = 64 * 1024;

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

/// The whole ledger of a host. Two ledgers are equal when their entries and owed
/// handlers are (whatever their journals' sizes).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StateLedger {
    pub version: u32,
    pub tasks: BTreeMap<String, StateEntry>,
    #[serde(default)]
    pub pending_handlers: BTreeSet<String>,
    /// The journal's size on the host, as read and since grown by the entries
    /// recorded (estimated); not part of the file.
    #[serde(skip)]
    pub(crate) journal_bytes: u64,
}

/// A ledger entry an apply script records once the host knows its result and times.
#[derive(Debug, Clone)]
pub(crate) struct PendingEntry<'a> {
    pub task_id: &'a str,
    pub fingerprint: &'a str,
    pub notify: &'a [String],
    pub handler_ran: Option<&'a str>,
}

/// One line of the journal (`<ledger>.journal`): an entry recorded by an apply script
/// since the ledger was last rewritten, and the owed handlers after it.
#[derive(Debug, Clone, Deserialize)]
struct JournalLine {
    task: String,
    pending_handlers: BTreeSet<String>,
    entry: StateEntry,
}

impl PartialEq for StateLedger {
    fn eq(&self, other: &Self) -> bool {
        (self.version, &self.tasks, &self.pending_handlers)
            == (other.version, &other.tasks, &other.pending_handlers)
    }
}

impl Eq for StateLedger {}

impl StateLedger {
    /// Parses the ledger; an absent file is an empty ledger.
    pub fn parse(text: &str) -> Result<StateLedger, String> {
        serde_json::from_str(text).map_err(|e| e.to_string())
    }

    /// The write that records the last entry of `pending` (all of `pending` applied in
    /// order, each after a successful one): the entries of this ledger not in
    /// `pending`, then those of `pending` as the host writes them.
    pub(crate) fn batch_write(&self, pending: &[PendingEntry<'_>]) -> LedgerWrite {
        let recorded: BTreeSet<&str> = pending.iter().map(|p| p.task_id).collect();
        let mut head = String::from(r#"{"version":1,"tasks":{"#);
        let mut head_has_entries = false;
        for (id, entry) in &self.tasks {
            if recorded.contains(id.as_str()) {
                continue;
            }
            if head_has_entries {
                head.push(',');
            }
            head.push_str(&json(id.as_str()));
            head.push(':');
            head.push_str(&json(entry));
            head_has_entries = true;
        }
        let mut handlers = self.pending_handlers.clone();
        for entry in pending {
            handlers.extend(entry.notify.iter().cloned());
            if let Some(handler) = entry.handler_ran {
                handlers.remove(handler);
            }
        }
        let last = pending.last().expect("at least the entry recorded now");
        LedgerWrite {
            head,
            head_has_entries,
            entry_prefix: format!(
                r#"{}:{{"fingerprint":{},"result":""#,
                json(last.task_id),
                json(last.fingerprint)
            ),
            tail: format!(r#"}},"pending_handlers":{}}}"#, json(&handlers)),
            journal_prefix: format!(
                r#"{{"task":{},"pending_handlers":{},"entry":{{"fingerprint":{},"result":""#,
                json(last.task_id),
                json(&handlers),
                json(last.fingerprint)
            ),
        }
    }

    /// Applies the journal's lines, in order. A last line cut short (the host stopped
    /// while appending it) is left out; any other bad line is an error.
    pub(crate) fn replay_journal(&mut self, journal: &str) -> Result<(), String> {
        let complete = journal.ends_with('\n');
        let lines: Vec<&str> = journal.lines().filter(|l| !l.is_empty()).collect();
        for (n, line) in lines.iter().enumerate() {
            match serde_json::from_str::<JournalLine>(line) {
                Ok(line) => {
                    self.version = 1;
                    self.tasks.insert(line.task, line.entry);
                    self.pending_handlers = line.pending_handlers;
                }
                Err(_) if n + 1 == lines.len() && !complete => {}
                Err(e) => return Err(format!("line {}: {e}", n + 1)),
            }
        }
        Ok(())
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
        // The journal line: its task, fingerprint and owed handlers, and some 150
        // bytes of keys, result and times.
        self.journal_bytes += (task_id.len() + fingerprint.len() + 150) as u64
            + self
                .pending_handlers
                .iter()
                .map(|h| h.len() as u64 + 3)
                .sum::<u64>();
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

    /// Whether a batch now leaves its entries in the journal (see
    /// [`JOURNAL_FOLD_BYTES`]).
    pub(crate) fn journal_is_small(&self) -> bool {
        self.journal_bytes < JOURNAL_FOLD_BYTES
    }

    /// Whether the last recorded run of `task_id` succeeded with the task as it is
    /// rendered now: `rendered`, whose fingerprint is `current`. An entry written by an
    /// older k8sup (a version 1 fingerprint) is judged by recomputing that version.
    pub fn matches(&self, task_id: &str, rendered: &Rendered, current: &str) -> bool {
        self.tasks.get(task_id).is_some_and(|e| {
            e.result == "changed"
                && fingerprint::recorded_matches(&e.fingerprint, task_id, rendered, current)
        })
    }

    /// Replaces an older version's fingerprint of `task_id` by `current` when it is
    /// the fingerprint of `rendered`, so that the next write of the ledger records it
    /// in the current version (that write rewrites the file, see
    /// [`StateLedger::journal_is_small`]). Returns whether it did.
    pub(crate) fn upgrade(&mut self, task_id: &str, rendered: &Rendered, current: &str) -> bool {
        match self.tasks.get_mut(task_id) {
            Some(entry)
                if !entry.fingerprint.starts_with(fingerprint::PREFIX)
                    && fingerprint::recorded_matches(
                        &entry.fingerprint,
                        task_id,
                        rendered,
                        current,
                    ) =>
            {
                entry.fingerprint = current.to_string();
                // Only a rewrite of the file records it: the next batch folds the
                // journal, however small.
                self.journal_bytes = self.journal_bytes.max(JOURNAL_FOLD_BYTES);
                true
            }
            _ => false,
        }
    }
}

/// Compact JSON of any part of the ledger.
fn json<T: Serialize + ?Sized>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::playbook::CommandSpec;

    /// What `k8sup_state` writes after each apply of a script.
    fn host_writes(ledger: &StateLedger, pending: &[PendingEntry<'_>]) -> Vec<String> {
        let mut entries = String::new();
        let mut journal = String::new();
        let mut files = Vec::new();
        for (n, _) in pending.iter().enumerate() {
            let write = ledger.batch_write(&pending[..=n]);
            if !entries.is_empty() || write.head_has_entries {
                entries.push(',');
            }
            let (start, end) = (1000 + 100 * n, 1050 + 100 * n);
            entries.push_str(&format!(
                r#"{}changed","started_ms":{start},"finished_ms":{end},"duration_ms":{}}}"#,
                write.entry_prefix,
                end - start
            ));
            files.push(format!("{}{entries}{}", write.head, write.tail));
            // What the journal holds after this write, replayed on the old ledger.
            journal.push_str(&format!(
                r#"{}changed","started_ms":{start},"finished_ms":{end},"duration_ms":{}}}}}"#,
                write.journal_prefix,
                end - start
            ));
            journal.push('\n');
            let mut replayed = ledger.clone();
            replayed.replay_journal(&journal).expect(&journal);
            assert_eq!(
                replayed,
                StateLedger::parse(files.last().unwrap()).unwrap(),
                "{journal}"
            );
        }
        // A line cut short at the end is left out; elsewhere it is an error.
        let mut cut = ledger.clone();
        cut.replay_journal(&journal[..journal.len() - 5])
            .expect("cut");
        assert!(ledger
            .clone()
            .replay_journal(&format!("{{\n{journal}"))
            .is_err());
        files
    }

    #[test]
    fn each_write_of_a_batch_is_the_whole_ledger_so_far() {
        let notify = vec!["p/handler/h".to_string()];
        let pending = [
            PendingEntry {
                task_id: "p/t",
                fingerprint: "v2:abc",
                notify: &notify,
                handler_ran: None,
            },
            PendingEntry {
                task_id: "p/handler/h",
                fingerprint: "v2:def",
                notify: &[],
                handler_ran: Some("p/handler/h"),
            },
        ];
        for old in [StateLedger::default(), {
            let mut old = StateLedger::default();
            old.record("p/old", "111", true, 1, 2, &[], None);
            old.record("p/t", "000", false, 3, 4, &[], None);
            old
        }] {
            let files = host_writes(&old, &pending);
            let first = StateLedger::parse(&files[0]).expect(&files[0]);
            let mut expected = old.clone();
            expected.record("p/t", "v2:abc", true, 1000, 1050, &notify, None);
            assert_eq!(first, expected, "{}", files[0]);
            assert!(first.pending_handlers.contains("p/handler/h"));
            let second = StateLedger::parse(&files[1]).expect(&files[1]);
            expected.record(
                "p/handler/h",
                "v2:def",
                true,
                1100,
                1150,
                &[],
                Some("p/handler/h"),
            );
            assert_eq!(second, expected, "{}", files[1]);
            assert!(second.pending_handlers.is_empty());
            assert!(second.matches("p/t", &command("echo 1"), "v2:abc"));
            assert!(!second.matches("p/t", &command("echo 1"), "v2:abd"));
            // Each task once in the file: no key is written twice.
            assert_eq!(files[1].matches("\"p/t\"").count(), 1, "{}", files[1]);
        }
    }

    fn command(cmd: &str) -> Rendered {
        Rendered::Command(CommandSpec {
            cmd: cmd.into(),
            creates: None,
            unless: None,
        })
    }

    #[test]
    fn an_entry_of_an_older_k8sup_matches_and_is_upgraded_once() {
        let task = command("echo 1");
        let current = fingerprint::fingerprint("p/t", &task);
        // What k8sup 3c7da93 recorded for this task (sha256 of its Debug text).
        let old = "3a5ac6cd9eb2b0d4a9e1e7c06c2b2bc5f0e3cbf0ab2bfa0f4b1d8d6e4e0b0f3d";
        let mut ledger = StateLedger::default();
        ledger.record(
            "p/t",
            &fingerprint::legacy_v1("p/t", &task).unwrap(),
            true,
            1,
            2,
            &[],
            None,
        );
        ledger.record(
            "p/failed",
            &fingerprint::legacy_v1("p/failed", &task).unwrap(),
            false,
            1,
            2,
            &[],
            None,
        );
        ledger.record("p/other", old, true, 1, 2, &[], None);
        assert!(ledger.matches("p/t", &task, &current));
        assert!(!ledger.matches("p/t", &command("echo 2"), "v2:x"));
        assert!(!ledger.matches("p/failed", &task, &current));
        assert!(!ledger.matches("p/other", &task, &current));
        // Upgraded only where the old fingerprint is this task's.
        assert!(!ledger.upgrade("p/t", &command("echo 2"), "v2:x"));
        assert!(ledger.upgrade("p/t", &task, &current));
        assert!(!ledger.upgrade("p/other", &task, &current));
        assert_eq!(ledger.tasks["p/t"].fingerprint, current);
        assert_eq!(ledger.tasks["p/other"].fingerprint, old);
        assert!(ledger.matches("p/t", &task, &current));
        assert!(!ledger.upgrade("p/t", &task, &current), "already current");
    }
}
