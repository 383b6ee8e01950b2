//! Debian's headless Chromium, to check what a page looks like once a real browser has
//! loaded it and run its scripts.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn chromium() -> PathBuf {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .expect("Debian's chromium is needed for this test: tests/run installs it (apt-get install chromium)")
}

/// Runs headless Chromium on `page` with a fresh profile in `profile` and nothing
/// fetched in the background.
fn browse(page: &Path, profile: &Path, extra: &[&str]) -> Output {
    let url = format!("file://{}", page.display());
    let profile = format!("--user-data-dir={}", profile.display());
    Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            profile.as_str(),
        ])
        .args(extra)
        .arg(url)
        .output()
        .expect("chromium runs")
}

/// The DOM of `page` after Chromium loaded it and ran its scripts.
pub fn rendered_dom(page: &Path, scratch: &Path) -> String {
    let out = browse(page, &scratch.join("profile-dom"), &["--dump-dom"]);
    let dom = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && dom.contains("</html>"),
        "chromium did not render {}: {}",
        page.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    dom
}

/// A PNG screenshot of `page`, `width` x `height`.
pub fn screenshot(page: &Path, scratch: &Path, width: u32, height: u32) -> Vec<u8> {
    let shot = scratch.join("screenshot.png");
    let out = browse(
        page,
        &scratch.join("profile-shot"),
        &[
            &format!("--window-size={width},{height}"),
            &format!("--screenshot={}", shot.display()),
        ],
    );
    let png = std::fs::read(&shot).unwrap_or_else(|e| {
        panic!(
            "no screenshot ({e}): {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert!(png.starts_with(b"\x89PNG"), "not a PNG");
    png
}

/// The part of `dom` from `start` to the next `end` (or the end of the DOM).
pub fn section<'a>(dom: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let rest = dom.split_once(start)?.1;
    Some(rest.split(end).next().unwrap_or(rest))
}
