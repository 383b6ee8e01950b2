//! Errors found in an inventory, each with the place it was found.
//!
//! A [`Diagnostic`] carries a byte span into the source text; [`InventoryError`]
//! turns spans into `file:line:column` when it is displayed, so that every
//! message points where the user has to look.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// One problem in an inventory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// What is wrong, in plain words.
    pub message: String,
    /// Where, as a byte range of the source text, when the problem has a place.
    pub span: Option<Range<usize>>,
    /// The likely fix ("did you mean `pod_cidr`?").
    pub help: Option<String>,
}

impl Diagnostic {
    pub(crate) fn new(message: impl Into<String>, span: Option<Range<usize>>) -> Self {
        Diagnostic {
            message: message.into(),
            span,
            help: None,
        }
    }

    pub(crate) fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
}

/// A line and column, both counted from 1; the column counts characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    pub line: usize,
    pub column: usize,
}

impl Location {
    /// The location of byte `offset` in `source` (clamped to the text's end).
    pub fn of(source: &str, offset: usize) -> Location {
        let mut offset = offset.min(source.len());
        while !source.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &source[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before[line_start..].chars().count() + 1;
        Location { line, column }
    }
}

/// Everything wrong with one inventory file. Displays one block per problem.
#[derive(Debug, Clone)]
pub struct InventoryError {
    path: PathBuf,
    source_text: String,
    diagnostics: Vec<Diagnostic>,
}

impl InventoryError {
    pub(crate) fn new(path: &Path, source_text: &str, diagnostics: Vec<Diagnostic>) -> Self {
        InventoryError {
            path: path.to_path_buf(),
            source_text: source_text.to_string(),
            diagnostics,
        }
    }

    /// The inventory file the problems are in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every problem found, in the order of the file where they have a place.
    pub fn diagnostics(&self) -> &[Diagnostic] {
        &self.diagnostics
    }

    /// The line and column of a diagnostic, when it has a place.
    pub fn location(&self, diagnostic: &Diagnostic) -> Option<Location> {
        diagnostic
            .span
            .as_ref()
            .map(|span| Location::of(&self.source_text, span.start))
    }
}

impl fmt::Display for InventoryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.diagnostics.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            match self.location(d) {
                Some(at) => write!(
                    f,
                    "{}:{}:{}: error: {}",
                    self.path.display(),
                    at.line,
                    at.column,
                    d.message
                )?,
                None => write!(f, "{}: error: {}", self.path.display(), d.message)?,
            }
            if let Some(help) = &d.help {
                write!(f, "\n  help: {help}")?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for InventoryError {}

/// The most characters of a value a message quotes: a 100 KB value is named by
/// its start and its size, never echoed whole.
const QUOTED_CHARS: usize = 80;

/// `value` quoted for a message (as `{:?}` does), cut to its first
/// [`QUOTED_CHARS`] characters when longer, with its full size.
pub fn quoted(value: &str) -> String {
    match value.char_indices().nth(QUOTED_CHARS) {
        None => format!("{value:?}"),
        Some((cut, _)) => format!("{:?}... ({} bytes)", &value[..cut], value.len()),
    }
}

/// "did you mean `x`?" for the closest of `candidates`, when one is close enough.
pub(crate) fn did_you_mean<'a>(
    input: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    let lower = input.to_ascii_lowercase();
    candidates
        .into_iter()
        .map(|c| (strsim::damerau_levenshtein(&lower, c), c))
        .filter(|(distance, c)| {
            *distance <= (c.len() / 3).max(1) + usize::from(c.len() > 6)
                || (lower.len() >= 3 && c.starts_with(lower.as_str()))
        })
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, c)| format!("did you mean `{c}`?"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_count_lines_and_characters() {
        let src = "a = 1\nbé = 2\n";
        assert_eq!(Location::of(src, 0), Location { line: 1, column: 1 });
        assert_eq!(Location::of(src, 6), Location { line: 2, column: 1 });
        // 'é' is two bytes: the '=' after "bé " is the 4th character.
        assert_eq!(Location::of(src, 10), Location { line: 2, column: 4 });
        assert_eq!(Location::of(src, 999).line, 3);
    }

    #[test]
    fn huge_values_are_quoted_by_their_start() {
        assert_eq!(quoted("a\"b"), r#""a\"b""#);
        let huge = "x".repeat(100_000);
        let q = quoted(&huge);
        assert_eq!(q, format!("{:?}... (100000 bytes)", "x".repeat(80)));
        // Cut on a character boundary.
        assert!(quoted(&"é".repeat(100)).starts_with(&format!("\"{}\"", "é".repeat(80))));
    }

    #[test]
    fn suggestions_only_when_close() {
        let keys = ["pod_cidr", "service_cidr", "name"];
        assert_eq!(
            did_you_mean("pod_cdir", keys).as_deref(),
            Some("did you mean `pod_cidr`?")
        );
        assert_eq!(did_you_mean("zzzzzzzz", keys), None);
    }
}
