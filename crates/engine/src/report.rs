//! The summary of an apply: per host, per task, what happened and how long it took;
//! and the local run history, one JSON file per run in a directory the caller gives.

use std::path::{Path, PathBuf};

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::EngineError;
use crate::input::{read_text_capped, MAX_RECORD_BYTES};
use crate::state::{StateEntry, StateLedger};

/// How a host's run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HostOutcome {
    Ok,
    Failed,
    /// Not run: it depends on a host that failed, or it could not be started.
    Skipped,
    /// The run stopped (k8sup was killed) before this host finished.
    Interrupted,
}

/// Where a run's record stands. A record is written when the run starts
/// (`running`) and rewritten when it ends; one still `running` whose process is
/// gone was interrupted. Records written before k8sup kept this field are
/// `finished`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    #[default]
    Finished,
    Running,
    Interrupted,
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
    #[serde(default)]
    pub status: RunStatus,
    /// The k8sup process that ran it (what tells a live run from a killed one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// How the record was completed, when not by the run itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    pub hosts: Vec<HostReport>,
}

impl RunReport {
    /// A run that ended as it started: each host `outcome` with `error`, no task
    /// run (an apply refused before it changed anything).
    pub fn without_tasks(
        started_at: String,
        playbook: &str,
        hosts: impl IntoIterator<Item = (String, HostOutcome, String)>,
    ) -> RunReport {
        RunReport {
            started_at,
            duration_ms: 0,
            playbook: playbook.to_string(),
            status: RunStatus::Finished,
            pid: Some(std::process::id()),
            note: None,
            hosts: hosts
                .into_iter()
                .map(|(host, outcome, error)| HostReport {
                    host,
                    outcome,
                    ok: 0,
                    changed: 0,
                    failed: usize::from(outcome == HostOutcome::Failed),
                    skipped: 0,
                    duration_ms: 0,
                    round_trips: 0,
                    tasks: Vec::new(),
                    error: Some(error),
                })
                .collect(),
        }
    }

    pub fn success(&self) -> bool {
        self.status == RunStatus::Finished
            && self.hosts.iter().all(|h| h.outcome == HostOutcome::Ok)
    }

    /// A record still `running` whose process is gone: the run was killed.
    pub fn is_abandoned(&self) -> bool {
        self.status == RunStatus::Running
            && self.pid.is_none_or(|pid| {
                pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists()
            })
    }

    /// Completes an abandoned record from the hosts' ledgers as read at the start
    /// of a later run: the tasks each host recorded from this run's start until
    /// `until_ms` (ms since the epoch). `name_of` gives a task's name by id.
    pub fn complete_from_ledgers(
        &mut self,
        ledgers: &BTreeMap<String, StateLedger>,
        until_ms: u64,
        name_of: impl Fn(&str) -> Option<String>,
    ) {
        let since = humantime::parse_rfc3339(&self.started_at)
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_millis() as u64);
        let mut last_ms = since;
        for host in &mut self.hosts {
            let Some(ledger) = ledgers.get(&host.host) else {
                continue;
            };
            let mut entries: Vec<(&String, &StateEntry)> = ledger
                .tasks
                .iter()
                .filter(|(_, e)| e.started_ms >= since && e.started_ms < until_ms)
                .collect();
            entries.sort_by_key(|(_, e)| e.started_ms);
            host.tasks = entries
                .iter()
                .map(|(id, e)| TaskReport {
                    id: id.to_string(),
                    name: name_of(id).unwrap_or_else(|| id.to_string()),
                    outcome: e.result.clone(),
                    changed: e.result == "changed",
                    drift: false,
                    duration_ms: e.duration_ms,
                    error: None,
                    started_ms: Some(e.started_ms.saturating_sub(since)),
                    diff: None,
                    command: None,
                    stderr: None,
                })
                .collect();
            host.changed = host.tasks.iter().filter(|t| t.changed).count();
            host.failed = host.tasks.len() - host.changed;
            host.outcome = HostOutcome::Interrupted;
            host.error = Some(format!(
                "interrupted; its journal records {} task(s) changed and {} failed in this run",
                host.changed, host.failed
            ));
            last_ms = entries
                .iter()
                .map(|(_, e)| e.finished_ms)
                .fold(last_ms, u64::max);
        }
        self.duration_ms = last_ms.saturating_sub(since);
        self.status = RunStatus::Interrupted;
        self.note = Some(
            "k8sup stopped before the run ended; completed from the hosts' journals by a later run"
                .into(),
        );
    }

    pub fn changed(&self) -> usize {
        self.hosts.iter().map(|h| h.changed).sum()
    }

    pub fn to_json(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).unwrap_or_default();
        text.push('\n');
        text
    }

    /// Writes [`RunReport::to_json`]'s text to `out` as it is made, without holding
    /// it whole: a run's record is written at its end, while every host's connection
    /// is still open, and at 1000 hosts its text is ~8 MB.
    pub fn write_json(&self, out: impl std::io::Write) -> std::io::Result<()> {
        use std::io::Write as _;
        let mut out = std::io::BufWriter::new(out);
        serde_json::to_writer_pretty(&mut out, self)?;
        out.write_all(b"\n")?;
        out.flush()
    }

    /// Writes the report into the history directory `dir` as
    /// `<started_at>-<pid>.json` (replacing the record its run opened) and
    /// returns its path.
    pub fn save_history(&self, dir: &Path) -> Result<PathBuf, EngineError> {
        let name = format!(
            "{}-{}.json",
            self.started_at.replace([':', '.'], ""),
            self.pid.unwrap_or_else(std::process::id)
        );
        let path = dir.join(name);
        let io = |source| EngineError::History {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        let tmp = path.with_extension("json.tmp");
        std::fs::File::create(&tmp)
            .and_then(|file| self.write_json(file))
            .map_err(io)?;
        std::fs::rename(&tmp, &path).map_err(io)?;
        Ok(path)
    }
}

/// Every run record in the history directory `dir` (none when it does not exist),
/// each read with a cap; files that are not records are left out.
pub fn read_history(dir: &Path) -> std::io::Result<Vec<RunReport>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    Ok(entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .filter_map(|p| read_text_capped(&p, MAX_RECORD_BYTES, "the record").ok())
        .filter_map(|text| serde_json::from_str(&text).ok())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    const OLD_RECORD: &str = r#"{"started_at":"2026-11-30T01:00:00.000Z","duration_ms":1200,
        "playbook":"<embedded>/kubernetes.toml","hosts":[{"host":"m1","outcome":"ok","ok":3,
        "changed":1,"failed":0,"skipped":0,"duration_ms":1100,"round_trips":2,"tasks":[]}]}"#;

    #[test]
    fn records_written_before_the_status_read_as_finished() {
        let run: RunReport = serde_json::from_str(OLD_RECORD).expect("an old record");
        assert_eq!(run.status, RunStatus::Finished);
        assert!(run.success() && !run.is_abandoned());
    }

    fn entry(started_ms: u64, result: &str) -> StateEntry {
        StateEntry {
            fingerprint: "f".into(),
            result: result.into(),
            started_ms,
            finished_ms: started_ms + 10,
            duration_ms: 10,
        }
    }

    #[test]
    fn a_killed_run_is_completed_from_the_journals_of_its_hosts() {
        // 2026-11-30T01:00:00Z in ms since the epoch.
        let start = 1_796_000_400_000;
        let mut run = RunReport::without_tasks(
            "2026-11-30T01:00:00.000Z".into(),
            "p",
            [(
                "m1".to_string(),
                HostOutcome::Interrupted,
                "running".to_string(),
            )],
        );
        run.status = RunStatus::Running;
        // A pid that is no process: the run was killed.
        run.pid = Some(u32::MAX);
        assert!(run.is_abandoned());
        let mut ledger = StateLedger::default();
        ledger
            .tasks
            .insert("p/old".into(), entry(start - 5_000, "changed"));
        ledger
            .tasks
            .insert("p/a".into(), entry(start + 100, "changed"));
        ledger
            .tasks
            .insert("p/b".into(), entry(start + 200, "failed"));
        ledger
            .tasks
            .insert("p/later".into(), entry(start + 60_000, "changed"));
        let ledgers = BTreeMap::from([("m1".to_string(), ledger)]);
        run.complete_from_ledgers(&ledgers, start + 50_000, |id| {
            (id == "p/a").then(|| "task a".to_string())
        });
        assert_eq!(run.status, RunStatus::Interrupted);
        let host = &run.hosts[0];
        let ids: Vec<&str> = host.tasks.iter().map(|t| t.id.as_str()).collect();
        assert_eq!(ids, ["p/a", "p/b"]);
        assert_eq!(host.tasks[0].name, "task a");
        assert_eq!((host.changed, host.failed), (1, 1));
        assert_eq!(host.outcome, HostOutcome::Interrupted);
        assert!(!run.success());
        // The record stays readable by the same type.
        let text = run.to_json();
        let back: RunReport = serde_json::from_str(&text).expect("round trip");
        assert_eq!(back, run);
    }

    #[test]
    fn a_saved_record_is_the_text_of_to_json() {
        let mut run: RunReport = serde_json::from_str(OLD_RECORD).expect("an old record");
        run.hosts[0].tasks.push(TaskReport {
            id: "p/a".into(),
            name: "a \"quoted\" task".into(),
            outcome: "changed".into(),
            changed: true,
            drift: false,
            duration_ms: 12,
            error: None,
            started_ms: Some(3),
            diff: Some("-old\n+new\n".into()),
            command: None,
            stderr: None,
        });
        let dir = tempfile::tempdir().expect("tempdir");
        let path = run.save_history(dir.path()).expect("saved");
        let saved = std::fs::read_to_string(&path).expect("read back");
        assert_eq!(saved, run.to_json());
        assert!(!path.with_extension("json.tmp").exists());
    }
}
