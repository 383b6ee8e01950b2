//! Assembles the shell prelude that every probe and batch calls (a host's shell defines
//! it once per session, see `script::framed_options`): `src/prelude.sh`
//! (the framing, the ledger and the helpers kinds share), then each kind's own
//! functions, `src/kinds/<kind>.sh` beside its `.rs`, in name order. A new kind's
//! shell is picked up by being there.

use std::path::Path;

fn main() {
    let src = Path::new("src");
    println!("cargo:rerun-if-changed=src/prelude.sh");
    println!("cargo:rerun-if-changed=src/kinds");
    let mut prelude = std::fs::read_to_string(src.join("prelude.sh")).expect("src/prelude.sh");
    let mut kinds: Vec<_> = std::fs::read_dir(src.join("kinds"))
        .expect("src/kinds")
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|e| e == "sh"))
        .collect();
    kinds.sort();
    for path in kinds {
        println!("cargo:rerun-if-changed={}", path.display());
        let text = std::fs::read_to_string(&path).expect("a kind's shell");
        if !prelude.ends_with('\n') {
            prelude.push('\n');
        }
        // Directives are for shellcheck, not for hosts: every script carries the prelude.
        for line in text.lines().filter(|l| !l.starts_with("# shellcheck ")) {
            prelude.push_str(line);
            prelude.push('\n');
        }
    }
    let out = std::env::var("OUT_DIR").expect("OUT_DIR");
    std::fs::write(Path::new(&out).join("prelude.sh"), for_hosts(&prelude))
        .expect("write the prelude");
    // The joined sources with their comments: what the unit test of src/prelude_text.rs
    // holds the hosts' text against.
    std::fs::write(Path::new(&out).join("prelude-sources.sh"), &prelude)
        .expect("write the prelude's sources");
}

/// The prelude as hosts get it: without its comment lines and blank lines (a third
/// of the text). A session's first probe carries the prelude, and the SSH library
/// keeps each connection's send buffer at the size of the largest request it sent,
/// for every host of a run at once; the shell has less to read, too. No line dropped is data: the
/// prelude has no here-documents, and a unit test (src/prelude_text.rs) checks that
/// the shell defines the same functions and variables from both texts.
fn for_hosts(prelude: &str) -> String {
    let mut text = String::with_capacity(prelude.len());
    for line in prelude.lines() {
        let code = line.trim_start();
        if code.is_empty() || code.starts_with('#') {
            continue;
        }
        text.push_str(line);
        text.push('\n');
    }
    text
}
