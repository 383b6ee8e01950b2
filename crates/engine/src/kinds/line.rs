//! `line`: one line present in a file (optionally replacing the lines a regex
//! matches), or every line matching a regex commented out (swap in `/etc/fstab`).
//!
//! The probe reads the whole file; the new content is computed here by
//! [`edit_lines`], a pure function, and written like a `file` task's, guarded by the
//! hash the probe saw. The file keeps its mode, owner and group.

use k8sup_shell::Script;
use toml::Spanned;
use regex::Regex;

use super::{check_path, file_diff, Change, Fields, FileState, Verdict};
use super::{legacy_opt, Kind, RawTask, Renderer};
use crate::encoding::Form;
use crate::error::TaskError;
use crate::host::Platform;
use crate::script::{arg, Section};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineEdit {
    /// Ensure `line` is present; with `regexp`, replace the lines it matches by `line`
    /// (appending `line` when none matches).
    Present {
        line: String,
        regexp: Option<String>,
    },
    /// Prefix every uncommented line matching the regex with `# `.
    CommentOut { regexp: String },
}

/// A `line` task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineSpec {
    pub path: String,
    pub edit: LineEdit,
}

impl Kind for LineSpec {
    const NAME: &'static str = "line";
    const FIELDS: &'static [&'static str] = &["path", "line", "regexp", "comment_out"];
    const FRESH_PROBE: bool = true;
    type Rendered = LineSpec;

    fn parse(raw: &mut RawTask<'_>) -> Option<LineSpec> {
        let at = raw.at();
        let path = raw.required("path", Self::NAME);
        let line = raw.text("line");
        let regexp = raw.text("regexp");
        let comment_out = raw.text("comment_out");
        for field in [&regexp, &comment_out].into_iter().flatten() {
            raw.regex(field);
        }
        let path = path?;
        let edit = match (line, comment_out) {
            (Some(line), None) => {
                if line.get_ref().contains('\n') {
                    raw.error(line.span().start, "`line` must be a single line");
                }
                LineEdit::Present {
                    line: line.into_inner(),
                    regexp: regexp.map(Spanned::into_inner),
                }
            }
            (None, Some(comment_out)) => {
                if let Some(r) = regexp {
                    raw.error(
                        r.span().start,
                        "`regexp` goes with `line`; `comment_out` is itself the regex",
                    );
                }
                LineEdit::CommentOut {
                    regexp: comment_out.into_inner(),
                }
            }
            (Some(line), Some(_)) => {
                raw.error(line.span().start, "give `line` or `comment_out`, not both");
                return None;
            }
            (None, None) => {
                raw.error(at, "a `line` task needs `line` or `comment_out`");
                return None;
            }
        };
        Some(LineSpec { path, edit })
    }

    fn render(&self, r: &Renderer<'_, '_>) -> Result<LineSpec, TaskError> {
        Ok(LineSpec {
            path: r.field("path", &self.path)?,
            edit: match &self.edit {
                LineEdit::Present { line, regexp } => LineEdit::Present {
                    line: r.field("line", line)?,
                    regexp: r.opt("regexp", regexp)?,
                },
                LineEdit::CommentOut { regexp } => LineEdit::CommentOut {
                    regexp: r.field("comment_out", regexp)?,
                },
            },
        })
    }

    fn canonical(spec: &LineSpec, form: &mut Form) {
        form.text("path", &spec.path);
        match &spec.edit {
            LineEdit::Present { line, regexp } => {
                form.text("line", line);
                form.optional("regexp", regexp.as_deref());
            }
            LineEdit::CommentOut { regexp } => form.text("comment_out", regexp),
        }
    }

    fn legacy_v1_text(spec: &LineSpec) -> Option<String> {
        let edit = match &spec.edit {
            LineEdit::Present { line, regexp } => {
                format!(
                    "Present {{ line: {line:?}, regexp: {} }}",
                    legacy_opt(regexp)
                )
            }
            LineEdit::CommentOut { regexp } => format!("CommentOut {{ regexp: {regexp:?} }}"),
        };
        Some(format!(
            "Line(LineSpec {{ path: {:?}, edit: {edit} }})",
            spec.path
        ))
    }

    fn probe(spec: &LineSpec, _: &Platform) -> Result<Option<Script>, String> {
        probe(spec).map(Some)
    }

    fn guard_check(spec: &LineSpec, section: &Section) -> Option<Script> {
        super::absent_check(&spec.path, section)
    }

    fn read_files(spec: &LineSpec) -> Vec<&str> {
        vec![spec.path.as_str()]
    }

    fn judge(spec: &LineSpec, _: &Platform, section: &Section) -> Result<Verdict, String> {
        judge(spec, section)
    }
}

pub(super) fn probe(spec: &LineSpec) -> Result<Script, String> {
    check_path("path", &spec.path)?;
    // The whole content always comes back, and k8sup hashes it: no sha256sum.
    Ok(Script::new("k8sup_probe_file")
        .arg(arg(spec.path.clone())?)
        .arg(arg("")?)
        .arg(arg("content")?))
}

/// The content after `edit`, or `None` when `current` needs no change.
pub(crate) fn edit_lines(current: &str, edit: &LineEdit) -> Result<Option<String>, String> {
    let compile = |re: &str| Regex::new(re).map_err(|e| format!("bad regex {re:?}: {e}"));
    let lines: Vec<&str> = current.lines().collect();
    let new_lines: Vec<String> = match edit {
        LineEdit::Present { line, regexp: None } => {
            if lines.iter().any(|l| l == line) {
                return Ok(None);
            }
            lines
                .iter()
                .map(|l| l.to_string())
                .chain([line.clone()])
                .collect()
        }
        LineEdit::Present {
            line,
            regexp: Some(re),
        } => {
            let re = compile(re)?;
            if lines.iter().any(|l| re.is_match(l)) {
                lines
                    .iter()
                    .map(|l| {
                        if re.is_match(l) {
                            line.clone()
                        } else {
                            l.to_string()
                        }
                    })
                    .collect()
            } else {
                lines
                    .iter()
                    .map(|l| l.to_string())
                    .chain([line.clone()])
                    .collect()
            }
        }
        LineEdit::CommentOut { regexp } => {
            let re = compile(regexp)?;
            lines
                .iter()
                .map(|l| {
                    if !l.trim_start().starts_with('#') && re.is_match(l) {
                        format!("# {l}")
                    } else {
                        l.to_string()
                    }
                })
                .collect()
        }
    };
    let mut out = new_lines.join("\n");
    if !out.is_empty() {
        out.push('\n');
    }
    Ok((out != current).then_some(out))
}

pub(super) fn judge(spec: &LineSpec, section: &Section) -> Result<Verdict, String> {
    let fields = Fields::of(section);
    let state = FileState::read(&fields, &spec.path)?;
    let (current, mode, owner, group) = match &state {
        FileState::Absent => {
            if let LineEdit::CommentOut { .. } = spec.edit {
                return Ok(Verdict::Ok {
                    reason: format!("{} does not exist: nothing to comment out", spec.path),
                });
            }
            (String::new(), 0o644, None, None)
        }
        FileState::Present {
            too_large: true, ..
        } => return Err(format!("{} is too large to edit line by line", spec.path)),
        FileState::Present {
            content,
            mode,
            owner,
            group,
            ..
        } => {
            let content = content.as_deref().ok_or("the probe sent no content")?;
            let text = String::from_utf8(content.to_vec())
                .map_err(|_| format!("{} is not UTF-8 text", spec.path))?;
            (text, *mode, Some(owner.as_str()), Some(group.as_str()))
        }
    };
    let Some(wanted) = edit_lines(&current, &spec.edit)? else {
        return Ok(Verdict::Ok {
            reason: match &spec.edit {
                LineEdit::Present { .. } => format!("the line is in {}", spec.path),
                LineEdit::CommentOut { .. } => {
                    format!("no uncommented line of {} matches", spec.path)
                }
            },
        });
    };
    let reason = match (&spec.edit, &state) {
        (_, FileState::Absent) => format!("{} does not exist", spec.path),
        (LineEdit::Present { .. }, _) => format!("the line is missing from {}", spec.path),
        (LineEdit::CommentOut { regexp }, _) => format!("lines of {} match {regexp:?}", spec.path),
    };
    Ok(Verdict::Change(Change {
        reason,
        diff: file_diff(&spec.path, &state, &wanted),
        command: Some(format!("edit {}", spec.path)),
        apply: super::file::write_call(&spec.path, mode, owner, group, state.expected_for_write())?,
        stdin: Some(wanted.into_bytes()),
        writes: Some(super::file::staged_write(&spec.path, mode, owner, group)),
    }))
}

#[cfg(test)]
mod tests {
    use super::super::section;
    use super::*;
    use crate::encoding::encode_b64;

    fn present(line: &str, regexp: Option<&str>) -> LineEdit {
        LineEdit::Present {
            line: line.into(),
            regexp: regexp.map(str::to_string),
        }
    }

    #[test]
    fn lines_are_added_replaced_and_commented_out() {
        assert_eq!(edit_lines("a\nb\n", &present("b", None)).unwrap(), None);
        assert_eq!(
            edit_lines("a\n", &present("b", None)).unwrap().as_deref(),
            Some("a\nb\n")
        );
        assert_eq!(
            edit_lines("a", &present("b", None)).unwrap().as_deref(),
            Some("a\nb\n")
        );
        assert_eq!(
            edit_lines("", &present("b", None)).unwrap().as_deref(),
            Some("b\n")
        );
        assert_eq!(
            edit_lines("x=1\ny=2\n", &present("x=3", Some("^x=")))
                .unwrap()
                .as_deref(),
            Some("x=3\ny=2\n")
        );
        assert_eq!(
            edit_lines("x=3\n", &present("x=3", Some("^x="))).unwrap(),
            None
        );
        let fstab =
            "UUID=1 / ext4 defaults 0 1\n/swap.img none swap sw 0 0\n# /old none swap sw 0 0\n";
        let swap = LineEdit::CommentOut {
            regexp: r"\sswap\s".into(),
        };
        assert_eq!(
            edit_lines(fstab, &swap).unwrap().as_deref(),
            Some("UUID=1 / ext4 defaults 0 1\n# /swap.img none swap sw 0 0\n# /old none swap sw 0 0\n")
        );
        assert_eq!(
            edit_lines("# /swap.img none swap sw 0 0\n", &swap).unwrap(),
            None
        );
    }

    #[test]
    fn judging_keeps_the_file_owner_and_mode() {
        let spec = LineSpec {
            path: "/etc/fstab".into(),
            edit: LineEdit::CommentOut {
                regexp: r"\sswap\s".into(),
            },
        };
        let body = format!(
            "kind=file\nstat=664 root disk\nsha256=f00\ncontent={}",
            encode_b64(b"/swap.img none swap sw 0 0\n")
        );
        let Verdict::Change(change) = judge(&spec, &section(&body)).unwrap() else {
            panic!("expected a change")
        };
        assert_eq!(
            change.apply.render(),
            "k8sup_write /etc/fstab 0664 root disk f00"
        );
        assert_eq!(change.stdin.unwrap(), b"# /swap.img none swap sw 0 0\n");
        assert!(matches!(
            judge(&spec, &section("kind=absent")).unwrap(),
            Verdict::Ok { .. }
        ));
    }

    /// The probe reads the file whole and sends no hash: the write's check of what
    /// it replaces is the hash of the content it sent.
    #[test]
    fn the_probe_reads_the_file_whole_and_k8sup_hashes_it() {
        let spec = LineSpec {
            path: "/etc/fstab".into(),
            edit: LineEdit::CommentOut {
                regexp: r"\sswap\s".into(),
            },
        };
        assert_eq!(
            probe(&spec).unwrap().render(),
            "k8sup_probe_file /etc/fstab '' content"
        );
        let old = b"/swap.img none swap sw 0 0\n";
        let body = format!("kind=file\nstat=644 root root\ncontent={}", encode_b64(old));
        let Verdict::Change(change) = judge(&spec, &section(&body)).unwrap() else {
            panic!("expected a change")
        };
        assert_eq!(
            change.apply.render(),
            format!(
                "k8sup_write /etc/fstab 0644 root root {}",
                crate::encoding::sha256_hex(old)
            )
        );
        // Neither hash nor content: the probe's output is not understood.
        assert!(judge(&spec, &section("kind=file\nstat=644 root root")).is_err());
    }
}
