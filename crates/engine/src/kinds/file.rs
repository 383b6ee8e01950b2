//! `file`: a file with exactly this content, mode, owner and group.
//!
//! The probe sends the sha256 of the wanted content; the host answers with the
//! file's mode, owner, group and hash, and its content only when the hash differs,
//! so a converged file costs a few bytes. The apply writes a temp file in the same
//! directory, fsyncs and renames it over the target, but only if the file still has
//! the hash the probe saw (a file edited in between is not overwritten blindly).

use k8sup_shell::Script;
use toml::Spanned;

use super::{check_path, file_diff, Change, Fields, FileState, Verdict};
use crate::encoding::sha256_hex;
use crate::host::Artifact;
use super::{legacy_opt, Kind, RawTask, Renderer};
use crate::encoding::Form;
use crate::error::TaskError;
use crate::host::Platform;
use crate::script::{arg, Section};

/// Where a file's content comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileSource {
    /// Literal text (itself a template).
    Content(String),
    /// The name of a template in the template set.
    Template(String),
    /// The name of an artifact the caller registered for the host
    /// ([`crate::HostSpec::artifacts`]): binary content, uploaded as is.
    Artifact(String),
    /// A rendered artifact: its name and content.
    Binary {
        artifact: String,
        data: crate::host::Artifact,
    },
}

/// A `file` task. Rendered, its source is `Content` or `Binary`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSpec {
    pub path: String,
    pub source: FileSource,
    pub mode: u32,
    pub owner: Option<String>,
    pub group: Option<String>,
}

impl Kind for FileSpec {
    const NAME: &'static str = "file";
    const FIELDS: &'static [&'static str] = &[
        "path", "content", "template", "artifact", "mode", "owner", "group",
    ];
    const FRESH_PROBE: bool = true;
    type Rendered = FileSpec;

    fn parse(raw: &mut RawTask<'_>) -> Option<FileSpec> {
        let at = raw.at();
        let content = raw.text("content");
        let template = raw.text("template");
        let artifact = raw.text("artifact");
        let given: Vec<&str> = [
            content.as_ref().map(|_| "content"),
            template.as_ref().map(|_| "template"),
            artifact.as_ref().map(|_| "artifact"),
        ]
        .into_iter()
        .flatten()
        .collect();
        if given.len() > 1 {
            let second = [&content, &template, &artifact]
                .into_iter()
                .flatten()
                .nth(1)
                .map_or(at, |f| f.span().start);
            raw.error(
                second,
                format!(
                    "give one of `content`, `template` or `artifact`, not {}",
                    given.join(" and ")
                ),
            );
            return None;
        }
        let source = match (content, template, artifact) {
            (Some(content), _, _) => FileSource::Content(content.into_inner()),
            (_, Some(template), _) => FileSource::Template(template.into_inner()),
            (_, _, Some(artifact)) => FileSource::Artifact(artifact.into_inner()),
            (None, None, None) => {
                raw.error(
                    at,
                    "a `file` task needs `content`, `template` or `artifact`",
                );
                return None;
            }
        };
        let mode = match raw.text("mode") {
            None => 0o644,
            Some(mode) => match u32::from_str_radix(mode.get_ref(), 8) {
                Ok(bits) if bits <= 0o7777 => bits,
                _ => {
                    raw.error(mode.span().start, "mode must be octal, like \"0644\"");
                    return None;
                }
            },
        };
        let path = raw.required("path", Self::NAME)?;
        Some(FileSpec {
            path,
            source,
            mode,
            owner: raw.text("owner").map(Spanned::into_inner),
            group: raw.text("group").map(Spanned::into_inner),
        })
    }

    fn render(&self, r: &Renderer<'_, '_>) -> Result<FileSpec, TaskError> {
        let source = match &self.source {
            FileSource::Content(text) => FileSource::Content(r.field("content", text)?),
            FileSource::Template(name) => {
                let name = r.field("template", name)?;
                FileSource::Content(r.template(&name)?)
            }
            FileSource::Artifact(name) => {
                let name = r.field("artifact", name)?;
                let data = r.artifact(&name)?;
                FileSource::Binary {
                    artifact: name,
                    data,
                }
            }
            FileSource::Binary { .. } => self.source.clone(),
        };
        Ok(FileSpec {
            path: r.field("path", &self.path)?,
            source,
            mode: self.mode,
            owner: r.opt("owner", &self.owner)?,
            group: r.opt("group", &self.group)?,
        })
    }

    fn canonical(spec: &FileSpec, form: &mut Form) {
        form.text("path", &spec.path);
        match &spec.source {
            FileSource::Content(text) => form.text("content", text),
            FileSource::Template(name) => form.text("template", name),
            FileSource::Artifact(name) => form.text("artifact", name),
            FileSource::Binary { artifact, data } => {
                form.text("artifact", artifact);
                form.text("artifact_sha256", data.sha256());
            }
        }
        form.text("mode", &format!("{:04o}", spec.mode));
        form.optional("owner", spec.owner.as_deref());
        form.optional("group", spec.group.as_deref());
    }

    fn legacy_v1_text(spec: &FileSpec) -> Option<String> {
        let source = match &spec.source {
            FileSource::Content(text) => format!("Content({text:?})"),
            FileSource::Template(name) => format!("Template({name:?})"),
            FileSource::Artifact(name) => format!("Artifact({name:?})"),
            FileSource::Binary { artifact, data } => format!(
                "Binary {{ artifact: {artifact:?}, data: Artifact({} bytes, sha256 {}) }}",
                data.len(),
                data.sha256()
            ),
        };
        Some(format!(
            "File(FileSpec {{ path: {:?}, source: {source}, mode: {}, owner: {}, group: {} }})",
            spec.path,
            spec.mode,
            legacy_opt(&spec.owner),
            legacy_opt(&spec.group)
        ))
    }

    fn probe(spec: &FileSpec, _: &Platform) -> Result<Option<Script>, String> {
        probe(spec).map(Some)
    }

    fn guard_check(spec: &FileSpec, section: &Section) -> Option<Script> {
        super::absent_check(&spec.path, section)
    }

    fn probed_files(spec: &FileSpec) -> Vec<&str> {
        vec![spec.path.as_str()]
    }

    fn judge(spec: &FileSpec, _: &Platform, section: &Section) -> Result<Verdict, String> {
        judge(spec, section)
    }
}

/// What the file must hold: text (rendered) or an artifact's bytes.
enum Wanted<'a> {
    Text(&'a str),
    Binary {
        artifact: &'a str,
        data: &'a Artifact,
    },
}

impl Wanted<'_> {
    fn bytes(&self) -> &[u8] {
        match self {
            Wanted::Text(text) => text.as_bytes(),
            Wanted::Binary { data, .. } => data.bytes(),
        }
    }

    fn sha256(&self) -> String {
        match self {
            Wanted::Text(text) => sha256_hex(text.as_bytes()),
            Wanted::Binary { data, .. } => data.sha256().to_string(),
        }
    }
}

fn wanted(spec: &FileSpec) -> Result<Wanted<'_>, String> {
    match &spec.source {
        FileSource::Content(text) => Ok(Wanted::Text(text)),
        FileSource::Binary { artifact, data } => Ok(Wanted::Binary { artifact, data }),
        FileSource::Template(name) => Err(format!("template {name:?} was not rendered")),
        FileSource::Artifact(name) => Err(format!("artifact {name:?} was not resolved")),
    }
}

pub(super) fn probe(spec: &FileSpec) -> Result<Script, String> {
    check_path("path", &spec.path)?;
    let wanted = wanted(spec)?;
    let call = Script::new("k8sup_probe_file")
        .arg(arg(spec.path.clone())?)
        .arg(arg(wanted.sha256())?);
    // A binary is never shown as a diff: the host sends its hash, not its content.
    Ok(match wanted {
        Wanted::Text(_) => call,
        Wanted::Binary { .. } => call.arg(arg("nocontent")?),
    })
}

pub(super) fn judge(spec: &FileSpec, section: &Section) -> Result<Verdict, String> {
    let wanted = wanted(spec)?;
    let wanted_sha256 = wanted.sha256();
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
            if *sha256 != wanted_sha256 {
                reasons.push(if let Wanted::Binary { artifact, .. } = wanted {
                    format!("{} differs from artifact {artifact}", spec.path)
                } else if *too_large {
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
    let (diff, command) = match wanted {
        Wanted::Text(text) => (
            file_diff(&spec.path, &state, text),
            format!("write {} (mode {:04o})", spec.path, spec.mode),
        ),
        Wanted::Binary { artifact, data } => (
            None,
            format!(
                "upload artifact {artifact} to {} (mode {:04o}, {} bytes, sha256 {})",
                spec.path,
                spec.mode,
                data.len(),
                data.sha256()
            ),
        ),
    };
    Ok(Verdict::Change(Change {
        reason: reasons.join("; "),
        diff,
        command: Some(command),
        apply,
        stdin: Some(wanted.bytes().to_vec()),
        writes: Some(staged_write(
            &spec.path,
            spec.mode,
            owner.as_deref(),
            group.as_deref(),
        )),
    }))
}

/// What [`write_call`] writes, for a batch to stage (the change's stdin as its text).
pub(super) fn staged_write(
    path: &str,
    mode: u32,
    owner: Option<&str>,
    group: Option<&str>,
) -> Box<super::Staged> {
    Box::new(super::Staged {
        path: path.to_string(),
        mode: format!("{mode:04o}"),
        owner: owner.unwrap_or("").to_string(),
        group: group.unwrap_or("").to_string(),
        text: None,
    })
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
    use crate::encoding::encode_b64;

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

    fn binary(bytes: &[u8]) -> FileSpec {
        FileSpec {
            path: "/usr/local/bin/tool".into(),
            source: FileSource::Binary {
                artifact: "tool".into(),
                data: Artifact::new(bytes.to_vec()),
            },
            mode: 0o755,
            owner: None,
            group: None,
        }
    }

    #[test]
    fn artifacts_probe_by_hash_without_content() {
        let spec = binary(b"\x7fELF\0\xff");
        let hash = sha256_hex(b"\x7fELF\0\xff");
        assert_eq!(
            probe(&spec).unwrap().render(),
            format!("k8sup_probe_file /usr/local/bin/tool {hash} nocontent")
        );
        let body = format!("kind=file\nstat=755 root root\nsha256={hash}");
        assert!(matches!(
            judge(&spec, &section(&body)).unwrap(),
            Verdict::Ok { .. }
        ));
    }

    #[test]
    fn artifacts_change_with_size_and_hash_but_no_diff() {
        let bytes = b"\x7fELF\0\xff";
        let spec = binary(bytes);
        let Verdict::Change(change) = judge(&spec, &section("kind=absent")).unwrap() else {
            panic!("expected a change")
        };
        assert_eq!(change.reason, "/usr/local/bin/tool does not exist");
        assert!(change.diff.is_none());
        assert_eq!(
            change.command.as_deref(),
            Some(
                format!(
                    "upload artifact tool to /usr/local/bin/tool (mode 0755, 6 bytes, sha256 {})",
                    sha256_hex(bytes)
                )
                .as_str()
            )
        );
        assert_eq!(
            change.apply.render(),
            "k8sup_write /usr/local/bin/tool 0755 '' '' absent"
        );
        assert_eq!(change.stdin.as_deref(), Some(&bytes[..]));

        let body = "kind=file\nstat=644 root root\nsha256=abc";
        let Verdict::Change(change) = judge(&spec, &section(body)).unwrap() else {
            panic!("expected a change")
        };
        assert_eq!(
            change.reason,
            "/usr/local/bin/tool differs from artifact tool; mode is 0644, wanted 0755"
        );
        assert!(change.diff.is_none());
        assert!(change.apply.render().ends_with(" abc"));
    }

    #[test]
    fn unresolved_artifacts_are_errors() {
        let mut spec = binary(b"x");
        spec.source = FileSource::Artifact("tool".into());
        assert!(probe(&spec).is_err());
    }
}
