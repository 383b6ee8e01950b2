//! The prelude hosts get is its sources without comment lines and blank lines
//! (build.rs): the same functions and variables, checked with the shell itself.

use std::process::Command;

use crate::script::PRELUDE;

/// `src/prelude.sh` and the kinds' `.sh` files as build.rs joins them, with their
/// comments.
const SOURCES: &str = include_str!(concat!(env!("OUT_DIR"), "/prelude-sources.sh"));

/// What bash defines from `text`: every function, as bash prints it (without
/// comments), and every k8sup variable with its value.
fn defined(text: &str) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("prelude.sh");
    std::fs::write(&path, text).expect("write");
    let out = Command::new("bash")
        .args([
            "-c",
            r#". "$1" >/dev/null 2>&1 || exit 3
declare -f
for v in $(compgen -v | grep -i '^k8sup'); do declare -p "$v"; done"#,
            "bash",
        ])
        .arg(&path)
        .output()
        .expect("bash runs");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).expect("text")
}

#[test]
fn the_prelude_sent_defines_what_its_sources_define() {
    let sources = SOURCES;
    assert!(
        PRELUDE.len() * 4 < sources.len() * 3,
        "{} of {} bytes",
        PRELUDE.len(),
        sources.len()
    );
    assert!(!PRELUDE
        .lines()
        .any(|l| l.trim().is_empty() || l.trim_start().starts_with('#')));
    let from_sources = defined(sources);
    assert!(from_sources.contains("k8sup_init ()"), "{from_sources}");
    assert_eq!(defined(PRELUDE), from_sources);
}

/// The prelude is the library of every probe and batch, defined once in a session's
/// shell (see `k8sup_ssh::RunOptions::library`): it must leave the shell's own
/// variables alone and name no function after a command the shell runs.
#[test]
fn the_prelude_as_a_library_leaves_the_session_shell_alone() {
    let defined = defined(PRELUDE);
    for variable in k8sup_ssh::SERVER_VARIABLES {
        // Function bodies set variables when they run, in a request's subshell.
        let set = defined
            .lines()
            .any(|l| l.starts_with("declare ") && l.contains(&format!(" {variable}=")));
        assert!(!set, "the prelude sets the shell's {variable}");
    }
    for command in k8sup_ssh::SERVER_COMMANDS {
        assert!(
            !defined.contains(&format!("\n{command} ()"))
                && !defined.starts_with(&format!("{command} ()")),
            "the prelude defines a function {command}"
        );
    }
    // What `defined` prints is what this test reads: a variable as `declare -- NAME=`,
    // a function as `NAME ()`.
    assert!(defined.contains("declare -- k8sup_proc="), "{defined}");
    assert!(defined.contains("\nk8sup_end ()"), "{defined}");
}
