//! Rendering the engine's events while it works: one progress line per host and
//! an overall bar on a terminal, plain log lines otherwise, JSON lines with
//! `--json`. A failure is printed at once, whatever the mode.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use k8sup_engine::{EngineEvent, EventSink, TaskOutcome};

use crate::args::OutputArgs;

enum Mode {
    Json,
    Plain {
        verbose: bool,
    },
    Bars {
        multi: MultiProgress,
        hosts: HashMap<String, ProgressBar>,
        overall: ProgressBar,
        verbose: bool,
    },
}

/// The renderer of one run.
pub struct Progress {
    mode: Arc<Mutex<Mode>>,
}

impl Progress {
    /// The renderer of a run on the hosts named `hosts`.
    pub fn new(output: &OutputArgs, hosts: &[&str], verbose: bool) -> Progress {
        let mode = if output.json {
            Mode::Json
        } else if std::io::stdout().is_terminal() && !output.quiet {
            let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stdout());
            let width = hosts.iter().map(|h| h.len()).max().unwrap_or(4);
            let style = ProgressStyle::with_template(&format!(
                "{{spinner}} {{prefix:{width}}}  {{wide_msg}}"
            ))
            .unwrap_or_else(|_| ProgressStyle::default_spinner());
            let hosts: HashMap<String, ProgressBar> = hosts
                .iter()
                .map(|h| {
                    let bar = multi.add(ProgressBar::new_spinner());
                    bar.set_style(style.clone());
                    bar.set_prefix(h.to_string());
                    bar.set_message("connected");
                    bar.enable_steady_tick(Duration::from_millis(120));
                    (h.to_string(), bar)
                })
                .collect();
            let overall = multi.add(ProgressBar::new(hosts.len() as u64));
            overall.set_style(
                ProgressStyle::with_template("[{bar:40}] {pos}/{len} hosts done  {elapsed}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            Mode::Bars {
                multi,
                hosts,
                overall,
                verbose,
            }
        } else {
            Mode::Plain { verbose }
        };
        Progress {
            mode: Arc::new(Mutex::new(mode)),
        }
    }

    /// The sink to give the engine.
    pub fn sink(&self) -> EventSink {
        let mode = Arc::clone(&self.mode);
        Arc::new(move |event: EngineEvent| {
            if let Ok(mut mode) = mode.lock() {
                render(&mut mode, &event);
            }
        })
    }

    /// Clears the bars before the summary is printed.
    pub fn finish(&self) {
        if let Ok(mode) = self.mode.lock() {
            if let Mode::Bars { hosts, overall, .. } = &*mode {
                for bar in hosts.values() {
                    bar.finish();
                }
                overall.finish();
            }
        }
    }
}

fn render(mode: &mut Mode, event: &EngineEvent) {
    if let EngineEvent::HostFailed {
        host,
        task,
        command,
        exit_status,
        stderr_tail,
        message,
    } = event
    {
        let mut text = format!("FAILED {host}: task {task:?}: {message}");
        if let Some(command) = command {
            text.push_str(&format!("\n  command: {command}"));
        }
        if let Some(status) = exit_status {
            text.push_str(&format!("\n  status: {status}"));
        }
        for line in stderr_tail.lines() {
            text.push_str(&format!("\n  | {line}"));
        }
        match mode {
            Mode::Json => {}
            Mode::Bars {
                multi,
                hosts,
                overall,
                ..
            } => {
                let _ = multi.println(&text);
                if let Some(bar) = hosts.get(host) {
                    bar.finish_with_message(format!("FAILED at {task}"));
                }
                overall.inc(1);
            }
            Mode::Plain { .. } => eprintln!("{text}"),
        }
    }
    match mode {
        Mode::Json => {
            if let Ok(line) = serde_json::to_string(event) {
                println!("{line}");
            }
        }
        Mode::Plain { verbose } => plain(*verbose, event),
        Mode::Bars {
            multi,
            hosts,
            overall,
            verbose,
        } => match event {
            EngineEvent::TaskStarted { host, name, .. } => {
                if let Some(bar) = hosts.get(host) {
                    bar.set_message(name.clone());
                }
            }
            EngineEvent::TaskWaiting {
                host, value, from, ..
            } => {
                if let Some(bar) = hosts.get(host) {
                    bar.set_message(format!("waiting for {value} from {from}"));
                }
            }
            EngineEvent::TaskFinished {
                host,
                name,
                outcome,
                drift,
                ..
            } if *verbose || matches!(outcome, TaskOutcome::Changed) => {
                let what = if *drift {
                    "repaired drift"
                } else {
                    outcome_word(*outcome)
                };
                let _ = multi.println(format!("{host}: {what}: {name}"));
            }
            EngineEvent::HostFinished {
                host,
                ok,
                changed,
                duration,
                ..
            } => {
                if let Some(bar) = hosts.get(host) {
                    bar.finish_with_message(format!(
                        "done: {changed} changed, {ok} ok in {:.1}s",
                        duration.as_secs_f64()
                    ));
                }
                overall.inc(1);
            }
            EngineEvent::Warning { host, message } => {
                let _ = multi.println(format!("warning: {host}: {message}"));
            }
            _ => {}
        },
    }
}

fn plain(verbose: bool, event: &EngineEvent) {
    match event {
        EngineEvent::HostStarted { host, tasks } => println!("{host}: started ({tasks} tasks)"),
        EngineEvent::TaskFinished {
            host,
            name,
            outcome,
            drift,
            duration,
            ..
        } if verbose || !matches!(outcome, TaskOutcome::Ok | TaskOutcome::Skipped) => {
            let what = if *drift {
                "repaired drift"
            } else {
                outcome_word(*outcome)
            };
            println!("{host}: {what}: {name} ({:.2}s)", duration.as_secs_f64());
        }
        EngineEvent::TaskWaiting {
            host, value, from, ..
        } => {
            println!("{host}: waiting for {value} from {from}")
        }
        EngineEvent::HostFinished {
            host,
            ok,
            changed,
            skipped,
            duration,
        } => println!(
            "{host}: done: {changed} changed, {ok} ok, {skipped} skipped in {:.1}s",
            duration.as_secs_f64()
        ),
        EngineEvent::Warning { host, message } => eprintln!("warning: {host}: {message}"),
        _ => {}
    }
}

fn outcome_word(outcome: TaskOutcome) -> &'static str {
    match outcome {
        TaskOutcome::Ok => "ok",
        TaskOutcome::Changed => "changed",
        TaskOutcome::Failed => "failed",
        TaskOutcome::Skipped => "skipped",
    }
}
