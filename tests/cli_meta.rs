//! What the binary says about itself: `--version` names the commit it was built from,
//! and the shell completions know every command and flag.

mod common;

use common::{k8sup, stdout};

#[test]
fn version_names_the_commit() {
    let head = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("git runs");
    let head = String::from_utf8_lossy(&head.stdout).trim().to_string();
    assert_eq!(head.len(), 12, "the tests run in a git checkout");
    let out = k8sup(&["--version"], &[]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        stdout(&out).trim(),
        format!("k8sup {} (commit {head})", env!("CARGO_PKG_VERSION"))
    );
}

/// Every subcommand and every long flag, read from the binary's own help.
fn commands_and_flags() -> (Vec<String>, Vec<String>) {
    let help = stdout(&k8sup(&["--help"], &[]));
    let commands: Vec<String> = help
        .split("Commands:")
        .nth(1)
        .expect("commands")
        .split("Options:")
        .next()
        .expect("commands")
        .lines()
        // A command's line is indented by two; its wrapped description by more.
        .filter(|l| l.starts_with("  ") && !l.starts_with("   "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .map(String::from)
        .collect();
    let mut flags: Vec<String> = Vec::new();
    let mut subcommands: Vec<Vec<&str>> = vec![vec![]];
    subcommands.extend(commands.iter().map(|c| vec![c.as_str()]));
    subcommands.push(vec!["import", "kubespray"]);
    for path in &subcommands {
        let mut args = path.clone();
        args.push("--help");
        let help = stdout(&k8sup(&args, &[]));
        // An option's line starts with its flags (`  -o, --out <FILE>`); descriptions
        // that mention another flag do not.
        for line in help.lines().filter(|l| l.trim_start().starts_with('-')) {
            if let Some(flag) = line
                .split_whitespace()
                .map(|w| w.trim_end_matches(','))
                .find(|w| w.starts_with("--") && w.len() > 2)
            {
                flags.push(flag.to_string());
            }
        }
    }
    flags.sort();
    flags.dedup();
    (commands, flags)
}

#[test]
fn completions_cover_every_command_and_flag() {
    let (commands, flags) = commands_and_flags();
    for new in ["report", "import", "history"] {
        assert!(commands.iter().any(|c| c == new), "{new} in {commands:?}");
    }
    for new in [
        "--report-html",
        "--tasks",
        "--group-vars",
        "--out",
        "--last",
        "--name",
    ] {
        assert!(flags.iter().any(|f| f == new), "{new} in {flags:?}");
    }
    for shell in ["bash", "zsh", "fish"] {
        let script = stdout(&k8sup(&["completions", shell], &[]));
        for command in commands.iter().chain([&"kubespray".to_string()]) {
            assert!(script.contains(command.as_str()), "{shell}: no {command}");
        }
        for flag in &flags {
            // fish names long flags without their dashes: `-l report-html`.
            let bare = flag.trim_start_matches("--");
            let found = match shell {
                "fish" => script.contains(&format!("-l {bare}")),
                _ => script.contains(flag.as_str()),
            };
            assert!(found, "{shell}: no {flag}");
        }
    }
}

#[test]
fn docs_cli_names_every_command_and_flag() {
    let (commands, flags) = commands_and_flags();
    let docs = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/cli.md"))
        .expect("docs/cli.md");
    for command in &commands {
        let heading = docs
            .lines()
            .filter(|l| l.starts_with("### "))
            .any(|l| l.contains(&format!("`k8sup {command} ")));
        assert!(heading, "docs/cli.md has no section for k8sup {command}");
    }
    for flag in &flags {
        let named = docs.contains(&format!("`{flag}`")) || docs.contains(&format!("`{flag} "));
        assert!(named, "docs/cli.md does not name {flag}");
    }
}
