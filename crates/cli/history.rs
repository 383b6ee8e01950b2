//! `k8sup history`: past apply runs of a cluster, newest first, with their
//! durations, so that a nightly lab can see what got slower.

use k8sup_engine::{read_history, RunReport, RunStatus};
use k8sup_inventory::Inventory;

use crate::args::{HistoryArgs, OutputArgs};
use crate::converge::history_dir;
use crate::{exit, table};

pub fn run(args: &HistoryArgs, output: &OutputArgs) -> u8 {
    // Only the cluster's name is needed: nothing the inventory names is opened.
    let inventory = match Inventory::load_local_state_only(&args.inventory.inventory) {
        Ok(inv) => inv,
        Err(e) => {
            eprintln!("{e}");
            return exit::ERROR;
        }
    };
    let dir = history_dir(&inventory.cluster.name);
    let mut runs: Vec<RunReport> = match read_history(&dir) {
        Ok(runs) => runs,
        Err(e) => {
            eprintln!("error: cannot read the history in {}: {e}", dir.display());
            return exit::ERROR;
        }
    };
    // A record still `running` whose k8sup is gone was killed: the next apply
    // completes it from the hosts' journals; until then it is shown as it is known.
    for run in runs.iter_mut().filter(|r| r.is_abandoned()) {
        run.status = RunStatus::Interrupted;
        run.note = Some("k8sup stopped before the run ended; the next apply reads what the hosts' journals recorded".into());
    }
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
            match run.status {
                RunStatus::Running => "running",
                RunStatus::Interrupted => "interrupted",
                RunStatus::Finished if run.success() => "ok",
                RunStatus::Finished => "failed",
            }
            .to_string(),
        ]);
    }
    print!("{}", table::render(&rows));
    if args.verbose {
        for run in &runs {
            println!("\n{}:", run.started_at);
            if let Some(note) = &run.note {
                println!("  ({note})");
            }
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
