//! `k8sup history`: past apply runs of a cluster, newest first, with their
//! durations, so that a nightly lab can see what got slower.

use std::collections::BTreeMap;
use std::path::Path;

use k8sup_engine::RunReport;
use k8sup_inventory::Inventory;
use serde::Serialize;

use crate::args::{HistoryArgs, OutputArgs};
use crate::converge::history_dir;
use crate::{exit, table};

pub fn run(args: &HistoryArgs, output: &OutputArgs) -> u8 {
    let inventory = match Inventory::load(&args.inventory.inventory) {
        Ok(inv) => inv,
        Err(e) => {
            eprintln!("{e}");
            return exit::ERROR;
        }
    };
    let dir = history_dir(&inventory.cluster.name);
    let mut runs = match load_runs(&dir) {
        Ok(runs) => runs,
        Err(e) => {
            eprintln!("{e}");
            return exit::ERROR;
        }
    };
    runs.truncate(args.last);
    if args.tasks {
        runs.reverse();
        return print_task_trends(&runs, output);
    }
    if output.json {
        println!("{}", serde_json::to_string(&runs).unwrap_or_default());
        return exit::OK;
    }
    if runs.is_empty() {
        println!(
            "no runs recorded for cluster {} (in {})",
            inventory.cluster.name,
            dir.display()
        );
        return exit::OK;
    }
    let mut rows = vec![["STARTED", "TIME", "HOSTS", "CHANGED", "FAILED", "RESULT"]
        .map(String::from)
        .to_vec()];
    for run in &runs {
        rows.push(vec![
            run.started_at.clone(),
            format!("{:.1}s", run.duration_ms as f64 / 1000.0),
            run.hosts.len().to_string(),
            run.changed().to_string(),
            run.hosts
                .iter()
                .map(|h| h.failed)
                .sum::<usize>()
                .to_string(),
            if run.success() { "ok" } else { "failed" }.to_string(),
        ]);
    }
    print!("{}", table::render(&rows));
    if args.verbose {
        for run in &runs {
            println!("\n{}:", run.started_at);
            // The slowest tasks over all hosts of the run: where the time went.
            let mut tasks: Vec<(u64, &str, &str, &str)> = run
                .hosts
                .iter()
                .flat_map(|h| {
                    h.tasks.iter().map(move |t| {
                        (
                            t.duration_ms,
                            h.host.as_str(),
                            t.name.as_str(),
                            t.outcome.as_str(),
                        )
                    })
                })
                .collect();
            tasks.sort_by_key(|t| std::cmp::Reverse(t.0));
            let mut rows = vec![["HOST", "TASK", "OUTCOME", "TIME"]
                .map(String::from)
                .to_vec()];
            for (ms, host, task, outcome) in tasks {
                rows.push(vec![
                    host.to_string(),
                    task.to_string(),
                    outcome.to_string(),
                    format!("{:.2}s", ms as f64 / 1000.0),
                ]);
            }
            print!("{}", table::render_indented(&rows, "  "));
        }
    }
    exit::OK
}

/// Every run recorded in the history directory `dir`, newest first. A file that is
/// not a run report (another version's record, one cut short) is passed over: the
/// history is read, never judged; unknown fields in a report are ignored.
pub fn load_runs(dir: &Path) -> Result<Vec<RunReport>, String> {
    let mut runs: Vec<RunReport> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
            .filter_map(|e| std::fs::read_to_string(e.path()).ok())
            .filter_map(|text| serde_json::from_str(&text).ok())
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => {
            return Err(format!(
                "error: cannot read the history in {}: {e}",
                dir.display()
            ))
        }
    };
    runs.sort_by(|a, b| b.started_at.cmp(&a.started_at));
    Ok(runs)
}

/// One task's duration in each of a list of runs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskTrend {
    pub id: String,
    pub name: String,
    /// Per run, in the order given: the slowest host's duration, `None` when the task
    /// did not run (skipped everywhere, or not in that run's playbook).
    pub durations_ms: Vec<Option<u64>>,
}

/// Each task's duration over `runs` (oldest first), tasks in the order the runs list
/// them. A task's duration in a run is its slowest host's: that is what the run waited for.
pub fn task_trends(runs: &[RunReport]) -> Vec<TaskTrend> {
    let mut order: Vec<(String, String)> = Vec::new();
    let mut durations: BTreeMap<&str, Vec<Option<u64>>> = BTreeMap::new();
    for (n, run) in runs.iter().enumerate() {
        for task in run.hosts.iter().flat_map(|h| &h.tasks) {
            if !durations.contains_key(task.id.as_str()) {
                order.push((task.id.clone(), task.name.clone()));
                durations.insert(&task.id, vec![None; runs.len()]);
            }
            if task.outcome == "skipped" {
                continue;
            }
            if let Some(slot) = durations.get_mut(task.id.as_str()).map(|d| &mut d[n]) {
                *slot = Some(slot.map_or(task.duration_ms, |d| d.max(task.duration_ms)));
            }
        }
    }
    order
        .into_iter()
        .map(|(id, name)| TaskTrend {
            durations_ms: durations.remove(id.as_str()).unwrap_or_default(),
            id,
            name,
        })
        .collect()
}

/// How the last run's duration compares with the first run's that has one: `+40%`.
pub fn trend_text(durations: &[Option<u64>]) -> String {
    let known: Vec<u64> = durations.iter().flatten().copied().collect();
    match (known.first(), known.last()) {
        (Some(&first), Some(&last)) if known.len() > 1 && first > 0 => {
            let change = (last as f64 - first as f64) / first as f64 * 100.0;
            format!("{change:+.0}%")
        }
        _ => String::new(),
    }
}

/// `history --tasks`: a row per task, a column per run (oldest to newest).
fn print_task_trends(runs: &[RunReport], output: &OutputArgs) -> u8 {
    let trends = task_trends(runs);
    if output.json {
        #[derive(Serialize)]
        struct Json<'a> {
            runs: Vec<&'a str>,
            tasks: &'a [TaskTrend],
        }
        let json = Json {
            runs: runs.iter().map(|r| r.started_at.as_str()).collect(),
            tasks: &trends,
        };
        println!("{}", serde_json::to_string(&json).unwrap_or_default());
        return exit::OK;
    }
    if runs.is_empty() {
        println!("no runs recorded");
        return exit::OK;
    }
    let mut header = vec!["TASK".to_string()];
    // "2026-12-02T03:04:05.678Z" -> "12-02 03:04": the runs of a nightly job differ by day.
    header.extend(runs.iter().map(|r| {
        let t = &r.started_at;
        match (t.get(5..10), t.get(11..16)) {
            (Some(day), Some(time)) => format!("{day} {time}"),
            _ => t.clone(),
        }
    }));
    header.push("TREND".to_string());
    let mut rows = vec![header];
    for trend in &trends {
        let mut row = vec![trend.id.clone()];
        row.extend(trend.durations_ms.iter().map(|d| match d {
            Some(ms) => format!("{:.2}s", *ms as f64 / 1000.0),
            None => "-".to_string(),
        }));
        row.push(trend_text(&trend.durations_ms));
        rows.push(row);
    }
    print!("{}", table::render(&rows));
    exit::OK
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8sup_engine::{HostOutcome, HostReport, TaskReport};

    fn run(started_at: &str, tasks: &[(&str, &str, &str, u64)]) -> RunReport {
        let mut hosts: Vec<HostReport> = Vec::new();
        for (host, id, outcome, ms) in tasks {
            if !hosts.iter().any(|h| h.host == *host) {
                hosts.push(HostReport {
                    host: host.to_string(),
                    outcome: HostOutcome::Ok,
                    ok: 0,
                    changed: 0,
                    failed: 0,
                    skipped: 0,
                    duration_ms: 0,
                    round_trips: 1,
                    tasks: Vec::new(),
                    error: None,
                });
            }
            let h = hosts.iter_mut().find(|h| h.host == *host).expect("host");
            h.tasks.push(TaskReport {
                id: id.to_string(),
                name: id.to_string(),
                outcome: outcome.to_string(),
                changed: *outcome == "changed",
                drift: false,
                duration_ms: *ms,
                error: None,
                started_ms: None,
                diff: None,
                command: None,
                stderr: None,
            });
        }
        RunReport {
            started_at: started_at.into(),
            duration_ms: 1,
            playbook: "p".into(),
            hosts,
        }
    }

    #[test]
    fn a_task_takes_its_slowest_host_and_skips_are_gaps() {
        let runs = [
            run(
                "1",
                &[("a", "p/x", "changed", 100), ("b", "p/x", "changed", 300)],
            ),
            run("2", &[("a", "p/x", "ok", 5), ("a", "p/y", "skipped", 0)]),
            run("3", &[("a", "p/y", "changed", 50), ("a", "p/x", "ok", 420)]),
        ];
        let trends = task_trends(&runs);
        assert_eq!(trends.len(), 2);
        assert_eq!(trends[0].id, "p/x");
        assert_eq!(trends[0].durations_ms, [Some(300), Some(5), Some(420)]);
        assert_eq!(trends[1].durations_ms, [None, None, Some(50)]);
        assert_eq!(trend_text(&trends[0].durations_ms), "+40%");
        assert_eq!(trend_text(&trends[1].durations_ms), "");
    }

    #[test]
    fn unreadable_and_foreign_files_are_passed_over() {
        let dir = tempfile::tempdir().expect("dir");
        let mut newer = run("2026-12-02T01:00:00.000Z", &[("a", "p/x", "ok", 1)]);
        let older = run("2026-12-01T01:00:00.000Z", &[("a", "p/x", "ok", 1)]);
        // A field this version does not know (a later one's run record) is ignored.
        let mut value = serde_json::to_value(&newer).expect("json");
        value["interrupted"] = serde_json::json!(false);
        std::fs::write(dir.path().join("b.json"), value.to_string()).expect("write");
        std::fs::write(dir.path().join("a.json"), older.to_json()).expect("write");
        std::fs::write(dir.path().join("c.json"), "{\"started_at\": ").expect("write");
        std::fs::write(dir.path().join("d.txt"), "not a run").expect("write");
        let runs = load_runs(dir.path()).expect("loads");
        newer.hosts[0].tasks[0].name = "p/x".into();
        assert_eq!(runs, [newer, older]);
        assert_eq!(load_runs(&dir.path().join("none")).expect("empty"), []);
    }
}
