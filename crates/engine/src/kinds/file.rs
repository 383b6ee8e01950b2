//! `file`: a file with exactly this content, mode, owner and group.
//!
//! The probe sends the sha256 of the wanted content; the host answers with the
//! file's mode, owner, group and hash, and its content only when the hash differs,
//! so a converged file costs a few bytes. The apply writes a temp file in the same
//! directory, fsyncs and renames it over the target, but only if the file still has
//! the hash the probe saw (a file edited in between is not overwritten blindly).

use k8sup_shell::Script;

use super::{check_path, file_diff, sha256_hex, Change, Fields, FileState, Verdict};
use crate::playbook::{FileSource, FileSpec};
use crate::script::{arg, Section};

fn content(spec: &FileSpec) -> Result<&str, String> {
    match &spec.source {
        FileSource::Content(text) => Ok(text),
        FileSource::Template(name) => Err(format!("template {name:?} was not rendered")),
    }
}

pub(super) fn probe(spec: &FileSpec) -> Result<Script, String> {
    check_path("path", &spec.path)?;
    let wanted = content(spec)?;
    Ok(Script::new("k8sup_probe_file")
        .arg(arg(spec.path.clone())?)
        .arg(arg(sha256_hex(wanted.as_bytes()))?))
}

pub(super) fn judge(spec: &FileSpec, section: &Section) -> Result<Verdict, String> {
    let wanted = content(spec)?;
    let fields = Fields::of(section);
    let state = FileState::read(&fields, &spec.path)?;
    let mut reasons = Vec::new();
    let (owner, group) = match &state {
        FileState::Absent => {
            reasons.push(format!("{} does not exist", spec.path));
            (spec.owner.clone(), spec.group.clone())
        }
        FileState::Present {
            mode,
            owner,
            group,
            sha256,
            too_large,
            ..
        } => {
            if *sha256 != sha256_hex(wanted.as_bytes()) {
                reasons.push(if *too_large {
                    format!("{} differs (too large to show)", spec.path)
                } else {
                    format!("{} content differs", spec.path)
                });
            }
            if *mode != spec.mode {
                reasons.push(format!("mode is {mode:04o}, wanted {:04o}", spec.mode));
            }
            if let Some(want) = &spec.owner {
                if want != owner {
                    reasons.push(format!("owner is {owner}, wanted {want}"));
                }
            }
            if let Some(want) = &spec.group {
                if want != group {
                    reasons.push(format!("group is {group}, wanted {want}"));
                }
            }
            // Unspecified owner/group: keep the file's own rather than the writer's.
            (
                Some(spec.owner.clone().unwrap_or_else(|| owner.clone())),
                Some(spec.group.clone().unwrap_or_else(|| group.clone())),
            )
        }
    };
    if reasons.is_empty() {
        return Ok(Verdict::Ok {
            reason: format!("{} is as wanted", spec.path),
        });
    }
    let apply = write_call(
        &spec.path,
        spec.mode,
        owner.as_deref(),
        group.as_deref(),
        state.expected_for_write(),
    )?;
    Ok(Verdict::Change(Change {
        reason: reasons.join("; "),
        diff: file_diff(&spec.path, &state, wanted),
        command: Some(format!("write {} (mode {:04o})", spec.path, spec.mode)),
        apply,
        stdin: Some(wanted.as_bytes().to_vec()),
    }))
}

/// The `k8sup_write` call that replaces `path` with stdin, if it still has hash `expected`.
pub(super) fn write_call(
    path: &str,
    mode: u32,
    owner: Option<&str>,
    group: Option<&str>,
    expected: &str,
) -> Result<Script, String> {
    Ok(Script::new("k8sup_write")
        .arg(arg(path)?)
        .arg(arg(format!("{mode:04o}"))?)
        .arg(arg(owner.unwrap_or(""))?)
        .arg(arg(group.unwrap_or(""))?)
        .arg(arg(expected)?))
}

#[cfg(test)]
mod tests {
    use super::super::section;
    use super::*;
    use crate::script::encode_b64;

    fn spec(content: &str) -> FileSpec {
        FileSpec {
            path: "/etc/app.conf".into(),
            source: FileSource::Content(content.into()),
            mode: 0o644,
            owner: Some("root".into()),
            group: None,
        }
    }

    #[test]
    fn matching_hash_mode_and_owner_is_ok() {
        let body = format!(
            "kind=file\nstat=644 root root\nsha256={}",
            sha256_hex(b"a\n")
        );
        assert!(matches!(
            judge(&spec("a\n"), &section(&body)).unwrap(),
            Verdict::Ok { .. }
        ));
    }

    #[test]
    fn different_content_gives_a_diff_and_a_guarded_write() {
        let body = format!(
            "kind=file\nstat=600 admin staff\nsha256=abc\ncontent={}",
            encode_b64(b"a\nold\n")
        );
        let Verdict::Change(change) = judge(&spec("a\nnew\n"), &section(&body)).unwrap() else {
            panic!("expected a change")
        };
        assert_eq!(
            change.reason,
            "/etc/app.conf content differs; mode is 0600, wanted 0644; owner is admin, wanted root"
        );
        assert!(change.diff.unwrap().contains("-old\n+new\n"));
        assert_eq!(
            change.apply.render(),
            "k8sup_write /etc/app.conf 0644 root staff abc"
        );
        assert_eq!(change.stdin.unwrap(), b"a\nnew\n");
    }

    #[test]
    fn absent_files_are_created_with_a_full_diff() {
        let Verdict::Change(change) = judge(&spec("x\n"), &section("kind=absent")).unwrap() else {
            panic!("expected a change")
        };
        assert_eq!(change.reason, "/etc/app.conf does not exist");
        assert!(change.diff.unwrap().contains("+x\n"));
        assert!(change.apply.render().ends_with(" absent"));
    }

    #[test]
    fn directories_and_garbage_are_errors() {
        assert!(judge(&spec("x"), &section("kind=dir")).is_err());
        assert!(judge(&spec("x"), &section("kind=file\nstat=nonsense")).is_err());
        assert!(judge(&spec("x"), &section("")).is_err());
    }
}
