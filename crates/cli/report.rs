//! `k8sup report` and `apply --report-html`: one self-contained HTML page of a run,
//! to look at rather than read: a timeline per host, the slowest tasks, every change
//! with its diff, every failure with its stderr, the totals, and how each task's
//! duration moved over the runs before it.
//!
//! The page is rendered here from the run report alone (what the history keeps, which
//! the engine redacted before it was written); it loads nothing from anywhere: the
//! styles and the script that draws the timeline are inline, the trend plots are SVG.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use k8sup_engine::{HostOutcome, RunReport};
use k8sup_inventory::Inventory;

use crate::args::{OutputArgs, ReportArgs};
use crate::converge::history_dir;
use crate::exit;
use crate::history::{load_runs, task_trends, trend_text};

/// The page around the run: styles, and the script that draws the timeline.
const TEMPLATE: &str = include_str!("report.html");

/// How many tasks the "slowest tasks" table and the trend plots show.
const TOP: usize = 12;

/// Up to how many changes the page shows opened.
const OPEN_CHANGES: usize = 30;

/// How many runs before it `apply --report-html` plots (`report --last` for `report`).
pub const TREND_RUNS: usize = 10;

pub fn run(args: &ReportArgs, output: &OutputArgs) -> u8 {
    let (run, earlier) = match find_run(args) {
        Ok(found) => found,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::ERROR;
        }
    };
    if let Err(e) = write(&args.out, &run, &earlier) {
        eprintln!("error: {e}");
        return exit::ERROR;
    }
    if !output.quiet {
        println!(
            "report of the run of {} written to {}",
            run.started_at,
            args.out.display()
        );
    }
    exit::OK
}

/// The run `args` names, and up to `args.last` runs of the same history before it
/// (oldest first).
fn find_run(args: &ReportArgs) -> Result<(RunReport, Vec<RunReport>), String> {
    let runs = match &args.inventory {
        Some(path) => {
            let inventory = Inventory::load(path).map_err(|e| e.to_string())?;
            load_runs(&history_dir(&inventory.cluster.name))?
        }
        None => Vec::new(),
    };
    let from_file = args
        .run
        .as_deref()
        .map(PathBuf::from)
        .filter(|p| p.is_file());
    let run = match (&args.run, from_file) {
        (_, Some(path)) => {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            serde_json::from_str::<RunReport>(&text).map_err(|e| {
                format!("{} is not a run report of k8sup: {e}", path.display())
            })?
        }
        (_, None) if args.inventory.is_none() => {
            return Err(match &args.run {
                Some(run) => format!("no file {run}; to pick a run from the history, give the inventory (-i FILE)"),
                None => "which run? give the inventory (-i FILE) for its last run, or a report file written by `apply --report`".into(),
            })
        }
        (None, None) => runs
            .first()
            .cloned()
            .ok_or("no runs recorded for this cluster yet: run `k8sup apply` first")?,
        (Some(wanted), None) => {
            let matching: Vec<&RunReport> = runs
                .iter()
                .filter(|r| r.started_at.starts_with(wanted.as_str()))
                .collect();
            match matching.as_slice() {
                [one] => (*one).clone(),
                [] => {
                    return Err(format!(
                        "no run started at {wanted} in the history ({} runs; `k8sup history` lists them)",
                        runs.len()
                    ))
                }
                more => {
                    return Err(format!(
                        "{wanted} names {} runs ({}); give more of the start time",
                        more.len(),
                        more.iter()
                            .map(|r| r.started_at.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                }
            }
        }
    };
    let earlier = earlier_runs(runs, &run, args.last);
    Ok((run, earlier))
}

/// Of `runs` (newest first), the `last` that started before `run`, oldest first.
pub fn earlier_runs(runs: Vec<RunReport>, run: &RunReport, last: usize) -> Vec<RunReport> {
    let mut earlier: Vec<RunReport> = runs
        .into_iter()
        .filter(|r| r.started_at < run.started_at)
        .take(last)
        .collect();
    earlier.reverse();
    earlier
}

/// Writes the page of `run` (with `earlier` runs, oldest first, for the trends) to `path`.
pub fn write(path: &Path, run: &RunReport, earlier: &[RunReport]) -> Result<(), String> {
    std::fs::write(path, render(run, earlier))
        .map_err(|e| format!("cannot write the report to {}: {e}", path.display()))
}

/// The whole page.
pub fn render(run: &RunReport, earlier: &[RunReport]) -> String {
    let mut body = String::new();
    header(&mut body, run);
    let _ = write!(
        body,
        "<h2>Timeline</h2>\n<div id=\"timeline\" aria-label=\"a bar per task, a lane per host\"></div>\n\
         <noscript><p class=\"muted\">The timeline is drawn by this page's script.</p></noscript>\n"
    );
    slowest(&mut body, run);
    failures(&mut body, run);
    changes(&mut body, run);
    trends(&mut body, run, earlier);
    TEMPLATE
        .replace(
            "{{TITLE}}",
            &escape(&format!("k8sup run {}", run.started_at)),
        )
        .replace("{{DATA}}", &script_json(run))
        .replace("{{BODY}}", &body)
}

fn header(out: &mut String, run: &RunReport) {
    let count = |outcome: &str| {
        run.hosts
            .iter()
            .flat_map(|h| &h.tasks)
            .filter(|t| t.outcome == outcome)
            .count()
    };
    let (class, result) = if run.success() {
        ("result-ok", "succeeded")
    } else {
        ("result-failed", "failed")
    };
    let _ = writeln!(
        out,
        "<h1>k8sup run <span class=\"{class}\" id=\"result\">{result}</span></h1>\n\
         <p class=\"sub\">started {} · playbook {} · {}</p>",
        escape(&run.started_at),
        escape(&run.playbook),
        seconds(run.duration_ms)
    );
    let round_trips: u64 = run.hosts.iter().map(|h| h.round_trips).sum();
    let totals = [
        ("hosts", run.hosts.len().to_string()),
        ("time", seconds(run.duration_ms)),
        ("ok", count("ok").to_string()),
        ("changed", count("changed").to_string()),
        ("failed", count("failed").to_string()),
        ("skipped", count("skipped").to_string()),
        ("round trips", round_trips.to_string()),
    ];
    out.push_str("<div class=\"totals\" id=\"totals\">\n");
    for (label, value) in totals {
        let _ = writeln!(
            out,
            "<div class=\"total\" data-total=\"{label}\"><b>{value}</b><span>{label}</span></div>"
        );
    }
    out.push_str("</div>\n<table id=\"hosts\">\n<tr><th>host</th><th>result</th><th class=\"num\">ok</th><th class=\"num\">changed</th><th class=\"num\">failed</th><th class=\"num\">skipped</th><th class=\"num\">time</th></tr>\n");
    for h in &run.hosts {
        let outcome = match h.outcome {
            HostOutcome::Ok => "ok",
            HostOutcome::Failed => "failed",
            HostOutcome::Skipped => "skipped",
        };
        let _ = writeln!(
            out,
            "<tr data-host=\"{host}\"><td>{host}</td><td><span class=\"tag {outcome}\">{outcome}</span></td>\
             <td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            h.ok,
            h.changed,
            h.failed,
            h.skipped,
            seconds(h.duration_ms),
            host = escape(&h.host),
        );
    }
    out.push_str("</table>\n");
}

fn slowest(out: &mut String, run: &RunReport) {
    let mut tasks: Vec<(&str, &k8sup_engine::TaskReport)> = run
        .hosts
        .iter()
        .flat_map(|h| h.tasks.iter().map(move |t| (h.host.as_str(), t)))
        .filter(|(_, t)| t.duration_ms > 0)
        .collect();
    tasks.sort_by_key(|(_, t)| std::cmp::Reverse(t.duration_ms));
    out.push_str("<h2>Slowest tasks</h2>\n");
    if tasks.is_empty() {
        out.push_str("<p class=\"muted\">No task took measurable time.</p>\n");
        return;
    }
    out.push_str("<table id=\"slowest\">\n<tr><th>host</th><th>task</th><th>outcome</th><th class=\"num\">time</th></tr>\n");
    for (host, t) in tasks.into_iter().take(TOP) {
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{}</td><td><span class=\"tag {o}\">{o}</span></td><td class=\"num\">{}</td></tr>",
            escape(host),
            escape(&t.name),
            seconds(t.duration_ms),
            o = escape(&t.outcome),
        );
    }
    out.push_str("</table>\n");
}

fn failures(out: &mut String, run: &RunReport) {
    let failed_hosts: Vec<_> = run
        .hosts
        .iter()
        .filter(|h| h.outcome != HostOutcome::Ok)
        .collect();
    if failed_hosts.is_empty() {
        return;
    }
    out.push_str("<h2>Failures</h2>\n<div id=\"failures\">\n");
    for h in failed_hosts {
        let host = escape(&h.host);
        let failed: Vec<_> = h.tasks.iter().filter(|t| t.outcome == "failed").collect();
        for t in &failed {
            let _ = writeln!(
                out,
                "<div class=\"failure\" data-host=\"{host}\" data-task=\"{}\"><h3>{host}: {}</h3>",
                escape(&t.id),
                escape(&t.name)
            );
            if let Some(error) = &t.error {
                let _ = writeln!(out, "<p>{}</p>", escape(error));
            }
            if let Some(command) = &t.command {
                let _ = writeln!(out, "<pre class=\"command\">$ {}</pre>", escape(command));
            }
            if let Some(stderr) = t.stderr.as_deref().filter(|s| !s.trim().is_empty()) {
                let _ = writeln!(out, "<pre class=\"stderr\">{}</pre>", escape(stderr));
            }
            out.push_str("</div>\n");
        }
        if failed.is_empty() {
            // Skipped, or stopped before any task (connection, render): say why.
            let _ = writeln!(
                out,
                "<div class=\"failure\" data-host=\"{host}\"><h3>{host}: {}</h3><p>{}</p></div>",
                if h.outcome == HostOutcome::Skipped {
                    "skipped"
                } else {
                    "failed"
                },
                escape(h.error.as_deref().unwrap_or("no task failed; see the log"))
            );
        }
    }
    out.push_str("</div>\n");
}

fn changes(out: &mut String, run: &RunReport) {
    let changed: Vec<_> = run
        .hosts
        .iter()
        .flat_map(|h| h.tasks.iter().map(move |t| (h.host.as_str(), t)))
        .filter(|(_, t)| t.changed)
        .collect();
    let _ = writeln!(out, "<h2>Changes ({})</h2>", changed.len());
    if changed.is_empty() {
        out.push_str(
            "<p class=\"muted\">Nothing was changed: every task was already as wanted.</p>\n",
        );
        return;
    }
    // A few changes are shown open; many (a first install) are listed to be opened.
    let open = if changed.len() <= OPEN_CHANGES {
        " open"
    } else {
        ""
    };
    out.push_str("<div id=\"changes\">\n");
    for (host, t) in changed {
        let _ = writeln!(
            out,
            "<details class=\"change\" data-host=\"{h}\" data-task=\"{}\"{open}><summary><b>{h}</b> · {}{} <span class=\"muted\">{}</span></summary>",
            escape(&t.id),
            escape(&t.name),
            if t.drift { " <span class=\"tag failed\">drift repaired</span>" } else { "" },
            seconds(t.duration_ms),
            h = escape(host),
        );
        if let Some(diff) = &t.diff {
            out.push_str("<pre class=\"diff\">");
            out.push_str(&diff_html(diff));
            out.push_str("</pre>\n");
        }
        if let Some(command) = &t.command {
            let _ = writeln!(out, "<pre class=\"command\">$ {}</pre>", escape(command));
        }
        if t.diff.is_none() && t.command.is_none() {
            out.push_str("<p class=\"muted\">(what changed was not recorded in this run)</p>\n");
        }
        out.push_str("</details>\n");
    }
    out.push_str("</div>\n");
}

/// Each of the slowest tasks' duration over the earlier runs and this one, as a table
/// with a small SVG plot per task.
fn trends(out: &mut String, run: &RunReport, earlier: &[RunReport]) {
    out.push_str("<h2>Task durations over the runs</h2>\n");
    if earlier.is_empty() {
        out.push_str("<p class=\"muted\">No earlier runs in the history to compare with.</p>\n");
        return;
    }
    let mut runs: Vec<RunReport> = earlier.to_vec();
    runs.push(run.clone());
    let mut trends = task_trends(&runs);
    // The tasks this run spent most on.
    trends.sort_by_key(|t| std::cmp::Reverse(t.durations_ms.last().copied().flatten()));
    trends.truncate(TOP);
    let _ = writeln!(
        out,
        "<p class=\"muted\">{} runs, from {} to this one; each task's slowest host.</p>\n\
         <table id=\"trends\">\n<tr><th>task</th><th>runs</th><th class=\"num\">first</th><th class=\"num\">this run</th><th class=\"num\">change</th></tr>",
        runs.len(),
        escape(&runs[0].started_at)
    );
    for trend in &trends {
        let known: Vec<u64> = trend.durations_ms.iter().flatten().copied().collect();
        let first = known.first().map_or("-".to_string(), |ms| seconds(*ms));
        let last = trend.durations_ms.last().copied().flatten();
        let _ = writeln!(
            out,
            "<tr data-task=\"{}\"><td>{}</td><td>{}</td><td class=\"num\">{first}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            escape(&trend.id),
            escape(&trend.name),
            sparkline(&trend.durations_ms),
            last.map_or("-".to_string(), seconds),
            trend_text(&trend.durations_ms),
        );
    }
    out.push_str("</table>\n");
}

/// A small inline SVG: the durations as a line, one point per run that ran the task.
fn sparkline(durations: &[Option<u64>]) -> String {
    const W: f64 = 160.0;
    const H: f64 = 28.0;
    let max = durations
        .iter()
        .flatten()
        .copied()
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let step = if durations.len() > 1 {
        (W - 6.0) / (durations.len() - 1) as f64
    } else {
        0.0
    };
    let points: Vec<(f64, f64)> = durations
        .iter()
        .enumerate()
        .filter_map(|(i, d)| {
            d.map(|ms| (3.0 + step * i as f64, H - 3.0 - (H - 6.0) * ms as f64 / max))
        })
        .collect();
    let mut svg = format!(
        "<svg class=\"spark\" width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\" role=\"img\"><title>{}</title>",
        durations
            .iter()
            .map(|d| d.map_or("-".to_string(), seconds))
            .collect::<Vec<_>>()
            .join(" → ")
    );
    let line: Vec<String> = points
        .iter()
        .map(|(x, y)| format!("{x:.1},{y:.1}"))
        .collect();
    let _ = write!(svg, "<polyline points=\"{}\"/>", line.join(" "));
    if let Some((x, y)) = points.last() {
        let _ = write!(svg, "<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"2.5\"/>");
    }
    svg.push_str("</svg>");
    svg
}

/// A unified diff with its added, removed and hunk lines marked for colour.
fn diff_html(diff: &str) -> String {
    let mut out = String::new();
    for line in diff.lines() {
        let class = if line.starts_with("+++") || line.starts_with("---") {
            None
        } else if line.starts_with('+') {
            Some("add")
        } else if line.starts_with('-') {
            Some("del")
        } else if line.starts_with("@@") {
            Some("hunk")
        } else {
            None
        };
        match class {
            Some(class) => {
                let _ = write!(out, "<span class=\"{class}\">{}</span>", escape(line));
            }
            None => {
                out.push_str(&escape(line));
                out.push('\n');
            }
        }
    }
    out
}

/// The run as JSON that can sit in a `<script>` element: no `<` (so no `</script>`
/// or `<!--` can end it early); `\u003c` reads back as the same string.
fn script_json(run: &RunReport) -> String {
    serde_json::to_string(run)
        .unwrap_or_else(|_| "{\"hosts\":[],\"duration_ms\":0}".into())
        .replace('<', "\\u003c")
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn seconds(ms: u64) -> String {
    if ms < 10_000 {
        format!("{:.2}s", ms as f64 / 1000.0)
    } else {
        format!("{:.1}s", ms as f64 / 1000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8sup_engine::{HostReport, TaskReport};

    fn task(id: &str, outcome: &str, start: u64, ms: u64) -> TaskReport {
        TaskReport {
            id: id.into(),
            name: format!("task {id}"),
            outcome: outcome.into(),
            changed: outcome == "changed",
            drift: false,
            duration_ms: ms,
            error: (outcome == "failed").then(|| "exit 3".to_string()),
            started_ms: Some(start),
            diff: (outcome == "changed")
                .then(|| "--- a\n+++ b\n@@ -1 +1 @@\n-old\n+new </script><b>\n".to_string()),
            command: None,
            stderr: (outcome == "failed").then(|| "no <such> file\n".to_string()),
        }
    }

    fn sample() -> RunReport {
        RunReport {
            started_at: "2026-12-02T03:00:00.000Z".into(),
            duration_ms: 5000,
            playbook: "p.toml".into(),
            hosts: vec![
                HostReport {
                    host: "m1".into(),
                    outcome: HostOutcome::Ok,
                    ok: 1,
                    changed: 1,
                    failed: 0,
                    skipped: 0,
                    duration_ms: 4000,
                    round_trips: 2,
                    tasks: vec![task("p/a", "ok", 0, 10), task("p/b", "changed", 10, 3000)],
                    error: None,
                },
                HostReport {
                    host: "n1".into(),
                    outcome: HostOutcome::Failed,
                    ok: 0,
                    changed: 0,
                    failed: 1,
                    skipped: 0,
                    duration_ms: 1000,
                    round_trips: 2,
                    tasks: vec![task("p/c", "failed", 0, 900)],
                    error: Some("task p/c failed".into()),
                },
            ],
        }
    }

    #[test]
    fn text_from_the_run_is_escaped_everywhere() {
        let html = render(&sample(), &[]);
        // The diff's text is shown as text, and cannot close the data script early.
        assert!(html.contains("+new &lt;/script&gt;&lt;b&gt;"), "{html}");
        assert_eq!(html.matches("</script>").count(), 2, "{html}");
        assert!(html.contains("no &lt;such&gt; file"));
        assert!(
            html.contains("data-task=\"p/b\" open><summary>"),
            "one change: open"
        );
        let data = html
            .split("id=\"run-data\">")
            .nth(1)
            .and_then(|s| s.split("</script>").next())
            .expect("data");
        let back: RunReport = serde_json::from_str(data).expect("the data reads back");
        assert_eq!(back, sample());
    }

    #[test]
    fn many_changes_are_listed_closed() {
        let mut many = sample();
        let changed = many.hosts[0].tasks[1].clone();
        many.hosts[0].tasks = vec![changed; OPEN_CHANGES + 1];
        let html = render(&many, &[]);
        assert!(html.contains("data-task=\"p/b\"><summary>"), "{html}");
        assert!(!html.contains(" open><summary>"), "{html}");
    }

    #[test]
    fn the_page_loads_nothing_from_elsewhere() {
        let html = render(&sample(), &[sample()]);
        for needle in [
            "src=", "href=", "<link", "@import", "url(", "http://", "https://",
        ] {
            assert!(!html.contains(needle), "{needle} in the page");
        }
    }

    #[test]
    fn trends_plot_each_task_over_the_runs() {
        let mut older = sample();
        older.started_at = "2026-12-01T03:00:00.000Z".into();
        older.hosts[0].tasks[1].duration_ms = 1500;
        let html = render(&sample(), &[older]);
        let row = html
            .split("<tr data-task=\"p/b\">")
            .nth(1)
            .and_then(|s| s.split("</tr>").next())
            .expect("a trend row for p/b");
        assert!(row.contains("<svg class=\"spark\""), "{row}");
        assert!(row.contains("<polyline points=\"3.0,"), "{row}");
        assert!(row.contains("+100%"), "{row}");
        assert!(render(&sample(), &[]).contains("No earlier runs"));
    }

    #[test]
    fn a_run_without_the_task_has_no_point_in_its_sparkline() {
        let svg = sparkline(&[Some(100), None, Some(200)]);
        assert!(
            svg.contains("<polyline points=\"3.0,14.0 157.0,3.0\"/>"),
            "{svg}"
        );
        assert!(svg.contains("0.10s → - → 0.20s"), "{svg}");
    }
}
