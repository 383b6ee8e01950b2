//! Remote shell command lines in which every value is quoted by construction.
//!
//! Everything k8sup runs on a host is a POSIX `sh` command line. The only way to
//! put text that came from an inventory, a fact or a template into such a line is
//! as a [`ShellArg`], which is always emitted single-quoted; the only unquoted text
//! a [`Script`] can hold is `&'static str`, written by us in the source code.
//! A value such as `a';reboot;'` therefore reaches the remote shell as one inert
//! word, whatever it contains.

use std::fmt;

/// A value bound for a remote command line. It is never emitted unquoted.
///
/// The only text a shell word cannot carry is the NUL byte; [`ShellArg::new`]
/// refuses it so that an argument always means exactly what it holds.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ShellArg(String);

/// A value that cannot be a shell word: it holds a NUL byte.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NulByteError;

impl fmt::Display for NulByteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("contains a NUL byte, which no shell argument can carry")
    }
}

impl std::error::Error for NulByteError {}

impl ShellArg {
    /// Wraps `value`, refusing a NUL byte.
    pub fn new(value: impl Into<String>) -> Result<Self, NulByteError> {
        let value = value.into();
        if value.contains('\0') {
            return Err(NulByteError);
        }
        Ok(ShellArg(value))
    }

    /// The value itself, unquoted (for display and comparison, never for a command line).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The value as one shell word.
    pub fn quoted(&self) -> String {
        quote(&self.0)
    }
}

impl fmt::Debug for ShellArg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for ShellArg {
    /// Displays the quoted form, so that formatting an argument into a string can
    /// never produce an unquoted value.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.quoted())
    }
}

impl TryFrom<&str> for ShellArg {
    type Error = NulByteError;
    fn try_from(value: &str) -> Result<Self, Self::Error> {
        ShellArg::new(value)
    }
}

impl TryFrom<String> for ShellArg {
    type Error = NulByteError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        ShellArg::new(value)
    }
}

/// Quotes `text` as a single POSIX shell word.
///
/// Text made only of characters that no shell treats specially is left as it is
/// (so command lines stay readable in plans and logs); anything else is wrapped in
/// single quotes, inside which every byte is literal, with each `'` written as `'\''`.
fn quote(text: &str) -> String {
    let plain = !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b));
    if plain {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len() + 2);
    out.push('\'');
    for c in text.chars() {
        if c == '\'' {
            out.push_str("'\\''");
        } else {
            out.push(c);
        }
    }
    out.push('\'');
    out
}

/// One piece of a [`Script`].
#[derive(Clone, Debug, PartialEq, Eq)]
enum Piece {
    /// Program text written in k8sup's source: a program name, a flag, an operator.
    Code(&'static str),
    /// A value, always quoted.
    Arg(ShellArg),
}

/// A shell command line assembled from trusted code and quoted values.
///
/// ```
/// use k8sup_shell::{Script, ShellArg};
/// let label = ShellArg::new("a';reboot;'").unwrap();
/// let line = Script::new("kubectl label node").arg(ShellArg::new("n1").unwrap()).arg(label);
/// assert_eq!(line.render(), r#"kubectl label node n1 'a'\'';reboot;'\'''"#);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Script {
    pieces: Vec<Piece>,
}

impl Script {
    /// Starts a command line with trusted program text (`"systemctl restart"`).
    pub fn new(code: &'static str) -> Self {
        Script {
            pieces: vec![Piece::Code(code)],
        }
    }

    /// Appends trusted program text: a flag, a redirection, `&&`, `|`.
    pub fn code(mut self, code: &'static str) -> Self {
        self.pieces.push(Piece::Code(code));
        self
    }

    /// Appends a value as one quoted word.
    pub fn arg(mut self, arg: ShellArg) -> Self {
        self.pieces.push(Piece::Arg(arg));
        self
    }

    /// Appends several values, each as one quoted word.
    pub fn args(mut self, args: impl IntoIterator<Item = ShellArg>) -> Self {
        self.pieces.extend(args.into_iter().map(Piece::Arg));
        self
    }

    /// Appends another script after `joiner` (`"&&"`, `";"`, `"|"`).
    pub fn then(mut self, joiner: &'static str, next: Script) -> Self {
        self.pieces.push(Piece::Code(joiner));
        self.pieces.extend(next.pieces);
        self
    }

    /// The command line, every value quoted, pieces separated by one space.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for piece in &self.pieces {
            if !out.is_empty() {
                out.push(' ');
            }
            match piece {
                Piece::Code(code) => out.push_str(code),
                Piece::Arg(arg) => out.push_str(&arg.quoted()),
            }
        }
        out
    }
}

impl fmt::Display for Script {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    /// Runs `printf %s <word>` through a real `sh` and returns what it printed.
    fn through_sh(value: &str) -> String {
        let line = Script::new("printf %s").arg(ShellArg::new(value).unwrap());
        let out = Command::new("sh")
            .arg("-c")
            .arg(line.render())
            .output()
            .expect("sh runs");
        assert!(out.status.success(), "sh failed for {line}");
        String::from_utf8(out.stdout).unwrap()
    }

    #[test]
    fn hostile_values_reach_the_shell_as_inert_data() {
        for value in [
            "a';reboot;'",
            "a;reboot",
            "$(touch /tmp/k8sup-pwned)",
            "`id`",
            "x\ny",
            "'",
            "''",
            "\\'",
            "*",
            "~root",
            "-n",
            "a b\tc",
            "$HOME",
            "!!",
            "é ünïcödé",
            "",
        ] {
            assert_eq!(through_sh(value), value, "value {value:?}");
        }
        assert!(!std::path::Path::new("/tmp/k8sup-pwned").exists());
    }

    #[test]
    fn plain_words_stay_readable() {
        assert_eq!(ShellArg::new("10.96.0.10").unwrap().quoted(), "10.96.0.10");
        assert_eq!(ShellArg::new("/etc/fstab").unwrap().quoted(), "/etc/fstab");
        assert_eq!(ShellArg::new("").unwrap().quoted(), "''");
        assert_eq!(ShellArg::new("a b").unwrap().quoted(), "'a b'");
    }

    #[test]
    fn nul_is_refused() {
        assert_eq!(ShellArg::new("a\0b"), Err(NulByteError));
    }

    #[test]
    fn scripts_join_code_and_quoted_values() {
        let s = Script::new("swapoff -a").then(
            "&&",
            Script::new("sed -i").arg(ShellArg::new("s/x/y/").unwrap()),
        );
        assert_eq!(s.render(), "swapoff -a && sed -i s/x/y/");
    }
}
