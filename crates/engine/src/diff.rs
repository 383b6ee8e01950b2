//! Unified diffs of file contents for plans, and their colouring for terminals.
//!
//! The engine stores plain diffs; a consumer that writes to a terminal calls
//! [`colorize`].

use similar::TextDiff;

/// A unified diff from `old` to `new` with 3 lines of context, labelled with `path`.
/// `old` is `None` when the file does not exist yet.
pub fn unified(path: &str, old: Option<&str>, new: &str) -> String {
    let old_label = match old {
        Some(_) => format!("{path} (on host)"),
        None => "/dev/null".to_string(),
    };
    let mut text = TextDiff::from_lines(old.unwrap_or(""), new)
        .unified_diff()
        .context_radius(3)
        .header(&old_label, &format!("{path} (wanted)"))
        .to_string();
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text
}

/// `diff` with ANSI colours: removed lines red, added green, hunk headers cyan.
pub fn colorize(diff: &str) -> String {
    let mut out = String::with_capacity(diff.len() + 64);
    for line in diff.split_inclusive('\n') {
        let (body, newline) = match line.strip_suffix('\n') {
            Some(body) => (body, "\n"),
            None => (line, ""),
        };
        let color = if body.starts_with("+++") || body.starts_with("---") {
            "\x1b[1m"
        } else if body.starts_with('+') {
            "\x1b[32m"
        } else if body.starts_with('-') {
            "\x1b[31m"
        } else if body.starts_with("@@") {
            "\x1b[36m"
        } else {
            ""
        };
        if color.is_empty() {
            out.push_str(line);
        } else {
            out.push_str(color);
            out.push_str(body);
            out.push_str("\x1b[0m");
            out.push_str(newline);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diffs_show_context_and_changes() {
        let d = unified("/etc/x.conf", Some("a\nb\nc\n"), "a\nB\nc\n");
        assert_eq!(
            d,
            "--- /etc/x.conf (on host)\n+++ /etc/x.conf (wanted)\n@@ -1,3 +1,3 @@\n a\n-b\n+B\n c\n"
        );
        let new = unified("/etc/y", None, "x\n");
        assert!(
            new.starts_with("--- /dev/null\n+++ /etc/y (wanted)\n@@ -0,0 +1 @@\n+x\n"),
            "{new}"
        );
        assert_eq!(unified("/z", Some("same\n"), "same\n"), "");
    }

    #[test]
    fn colours_wrap_only_changed_lines() {
        let c = colorize("--- a\n+++ b\n@@ -1 +1 @@\n-x\n+y\n z\n");
        assert_eq!(
            c,
            "\x1b[1m--- a\x1b[0m\n\x1b[1m+++ b\x1b[0m\n\x1b[36m@@ -1 +1 @@\x1b[0m\n\x1b[31m-x\x1b[0m\n\x1b[32m+y\x1b[0m\n z\n"
        );
    }
}
