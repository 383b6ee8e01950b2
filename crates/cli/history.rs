//! `k8sup history`: past apply runs of a cluster, newest first, with their
//! durations, so that a nightly lab can see what got slower.

use k8sup_engine::RunReport;
use k8sup_inventory::Inventory;

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
    let mut runs: Vec<RunReport> = match std::fs::read_dir(&dir) {
        Ok(entries) => entries
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
            .filter_map(|e| std::fs::read_to_string(e.path()).ok())
            .filter_map(|text| serde_json::from_str(&text).ok())
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => {
            eprintln!("error: cannot read the history in {}: {e}", dir.display());
            return exit::ERROR;
        }
    };
    runs.sort_by(|a, b| b.started_at.cmp(&a.started_at));
    runs.truncate(args.last);
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
