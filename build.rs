//! Names the commit k8sup is built from in `k8sup --version`, read from git at build
//! time; a build outside a git checkout (a source tarball) says so instead.

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!text.is_empty()).then_some(text)
}

fn main() {
    let package = env!("CARGO_PKG_VERSION");
    let version = match git(&["rev-parse", "--short=12", "HEAD"]) {
        Some(commit) => format!("{package} (commit {commit})"),
        None => format!("{package} (commit unknown: built outside a git checkout)"),
    };
    println!("cargo:rustc-env=K8SUP_VERSION={version}");
    // Build again when HEAD moves: HEAD itself (a checkout), the branch it points to
    // (a commit), and packed refs. In a worktree, branches live in the common dir.
    println!("cargo:rerun-if-changed=build.rs");
    if let (Some(dir), Some(common)) = (
        git(&["rev-parse", "--git-dir"]),
        git(&["rev-parse", "--git-common-dir"]),
    ) {
        println!("cargo:rerun-if-changed={dir}/HEAD");
        println!("cargo:rerun-if-changed={common}/packed-refs");
        if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
            println!("cargo:rerun-if-changed={common}/{branch}");
        }
    }
}
