//! What a command is on the wire: the line sent to `exec`, the `sudo` wrapping, the
//! upload and download scripts, and what comes back.
//!
//! Everything here is pure, so the exact lines and the `sudo` handshake are tested
//! without a host. Every value is a [`ShellArg`]; the only unquoted text is our own.
//!
//! ## How `become` keeps the password out of the command's stdin
//!
//! `sudo -S` reads the password from stdin, but only when it needs one: with a
//! `NOPASSWD` rule, a password written blindly first would become the command's input
//! (and end up inside an uploaded file). So the wrapped command has `sudo` print a
//! known prompt on stderr, and the command itself first prints a start marker on stderr.
//! The [`BecomeGate`] watches stderr: the password is sent only after the prompt, the
//! caller's stdin only after the start marker, and both markers are removed from the
//! output.

use crate::bytes::find;
use std::sync::Arc;
use std::time::Duration;

use k8sup_shell::{NulByteError, Script, ShellArg};

/// The prompt `sudo -S` is told to print; seen on stderr, it means "send the password".
const SUDO_PROMPT: &str = "[k8sup-become-password]";
/// Printed on stderr by the wrapped command once sudo has let it run.
const START_MARKER: &str = "k8sup-become-started";

/// Which stream a piece of output came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputStream {
    Stdout,
    Stderr,
}

/// A receiver of output as it arrives, for live progress (`tail -f`-like views).
pub type OutputSink = Arc<dyn Fn(OutputStream, &[u8]) + Send + Sync>;

/// How to run one command.
#[derive(Clone, Default)]
pub struct RunOptions {
    /// Bytes for the command's stdin, followed by end-of-file. `None` sends EOF at once.
    pub stdin: Option<Vec<u8>>,
    /// Overrides the target's `command_timeout`.
    pub timeout: Option<Duration>,
    /// Gets stdout and stderr as they arrive, besides capturing them.
    pub on_output: Option<OutputSink>,
    /// The script holds no secret and may be seen in the host's process list: as the
    /// session's first command (without stdin), it then travels in the line that starts
    /// the session's shell instead of after it, a round trip less. Every other script
    /// travels on stdin only, never in a process's arguments.
    pub public: bool,
    /// Shell definitions the script relies on (functions, and variables set to
    /// constants): text that runs nothing, reads nothing and holds no secret, whose
    /// names all start with `k8sup_` and are none of the session shell's own (see
    /// [`crate::shell`]). A session's shell defines a library once, with the first
    /// request that names it, in the shell itself, and every later request of that
    /// shell (a subshell of it) finds it defined; a command on a channel of its own
    /// gets it in front of its script. A library that does not parse leaves the
    /// request's script unrun, with the shell's message on stderr and its status.
    pub library: Option<&'static str>,
}

impl RunOptions {
    /// `script` as a shell that has no library defined must run it: the library, if
    /// any, in front.
    pub fn with_library(&self, script: String) -> String {
        match self.library {
            Some(library) => format!("{library}\n{script}"),
            None => script,
        }
    }

    /// Passes a piece of output to the live sink, if there is one.
    pub(crate) fn emit(&self, stream: OutputStream, data: &[u8]) {
        if let (Some(sink), false) = (&self.on_output, data.is_empty()) {
            sink(stream, data);
        }
    }
}

impl std::fmt::Debug for RunOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunOptions")
            .field("stdin_bytes", &self.stdin.as_ref().map(Vec::len))
            .field("timeout", &self.timeout)
            .field("on_output", &self.on_output.is_some())
            .field("public", &self.public)
            .field("library_bytes", &self.library.map(str::len))
            .finish()
    }
}

/// What a finished command left behind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommandOutput {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// The exit code, when the command exited normally.
    pub exit_status: Option<u32>,
    /// The signal name (`KILL`, `TERM`, ...), when a signal ended the command.
    pub exit_signal: Option<String>,
}

impl CommandOutput {
    /// Exit code 0.
    pub fn success(&self) -> bool {
        self.exit_status == Some(0)
    }

    /// Stdout as text, invalid UTF-8 replaced.
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// Stderr as text, invalid UTF-8 replaced.
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }

    /// `exit 3`, `signal KILL` or `no exit status`, for messages.
    pub fn status_text(&self) -> String {
        match (&self.exit_status, &self.exit_signal) {
            (Some(code), _) => format!("exit {code}"),
            (None, Some(signal)) => format!("signal {signal}"),
            (None, None) => "no exit status".to_string(),
        }
    }
}

/// How `sudo` is used for a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Become {
    /// Run the line as the SSH user.
    No,
    /// `sudo -n`: fail rather than ask for a password.
    WithoutPassword,
    /// `sudo -S` with the password fed after the prompt.
    WithPassword,
}

/// The line sent in the `exec` request for `script`.
pub(crate) fn exec_line(script: &Script, sudo: Become) -> Result<String, NulByteError> {
    let sudo = match sudo {
        Become::No => return Ok(script.render()),
        Become::WithoutPassword => Script::new("sudo -n"),
        Become::WithPassword => Script::new("sudo -S -p").arg(ShellArg::new(SUDO_PROMPT)?),
    };
    let announce_then_run = ShellArg::new(format!(
        "printf '%s\\n' {START_MARKER} >&2 && exec sh -c \"$1\""
    ))?;
    Ok(sudo
        .code("-- sh -c")
        .arg(announce_then_run)
        .code("k8sup")
        .arg(ShellArg::new(script.render())?)
        .render())
}

/// An absolute remote path split into its directory and file name.
pub(crate) struct RemotePath {
    pub dir: ShellArg,
    pub file: ShellArg,
}

/// Checks that `path` is absolute, names a file and holds no NUL.
pub(crate) fn remote_path(path: &str) -> Result<RemotePath, &'static str> {
    if !path.starts_with('/') {
        return Err("it is not absolute");
    }
    let (dir, name) = path.rsplit_once('/').ok_or("it has no directory")?;
    if name.is_empty() || name == "." || name == ".." {
        return Err("it does not name a file");
    }
    let dir = if dir.is_empty() { "/" } else { dir };
    Ok(RemotePath {
        dir: ShellArg::new(dir).map_err(|_| "it contains a NUL byte")?,
        file: ShellArg::new(path).map_err(|_| "it contains a NUL byte")?,
    })
}

/// The script that writes stdin to `path` atomically: a temp file made by `mktemp` in
/// the same directory, a byte count check (a cut-off transfer never replaces the file),
/// fsync, mode and owner, then `mv -f` over the target. The temp file is removed if any
/// step fails.
pub(crate) fn upload_script(
    path: &RemotePath,
    size: usize,
    mode: u32,
    owner: Option<(ShellArg, ShellArg)>,
) -> Script {
    let template = ShellArg::new(format!(
        "{}/.k8sup-upload.XXXXXXXXXX",
        path.dir.as_str().trim_end_matches('/')
    ))
    .expect("built from NUL-free parts");
    let mut script = Script::new("set -e; umask 077; tmp=$(mktemp")
        .arg(template)
        .code(r#"); trap 'rm -f "$tmp"' EXIT; cat > "$tmp"; test "$(wc -c < "$tmp")" -eq"#)
        .arg(ShellArg::new(size.to_string()).expect("digits"))
        .code(r#"|| { echo "short upload: got $(wc -c < "$tmp") bytes" >&2; exit 1; }; sync "$tmp" 2>/dev/null || sync; chmod"#)
        .arg(ShellArg::new(format!("{:04o}", mode & 0o7777)).expect("digits"))
        .code(r#""$tmp";"#);
    if let Some((user, group)) = owner {
        let owner = ShellArg::new(format!("{}:{}", user.as_str(), group.as_str()))
            .expect("built from NUL-free parts");
        script = script.code("chown").arg(owner).code(r#""$tmp";"#);
    }
    script
        .code(r#"mv -f "$tmp""#)
        .arg(path.file.clone())
        .code("; trap - EXIT")
}

/// The script that prints the file at `path`.
pub(crate) fn download_script(path: &RemotePath) -> Script {
    Script::new("cat --").arg(path.file.clone())
}

/// What the [`BecomeGate`] wants done after some stderr arrived.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct GateStep {
    /// Stderr that belongs to the command (markers and sudo's prelude removed).
    pub stderr: Vec<u8>,
    /// sudo printed its prompt: send the password now.
    pub send_password: bool,
    /// sudo prompted again: the password was wrong.
    pub password_rejected: bool,
    /// The command started: send the caller's stdin now.
    pub started: bool,
}

/// Follows sudo's stderr until the command starts (see the module docs).
#[derive(Debug, Default)]
pub(crate) struct BecomeGate {
    prelude: Vec<u8>,
    prompts_answered: usize,
    started: bool,
}

impl BecomeGate {
    pub fn feed(&mut self, data: &[u8]) -> GateStep {
        if self.started {
            return GateStep {
                stderr: data.to_vec(),
                ..GateStep::default()
            };
        }
        self.prelude.extend_from_slice(data);
        let mut step = GateStep::default();
        let prompts = count(&self.prelude, SUDO_PROMPT.as_bytes());
        if prompts > self.prompts_answered {
            self.prompts_answered = prompts;
            step.send_password = prompts == 1;
            step.password_rejected = prompts > 1;
        }
        let marker = format!("{START_MARKER}\n");
        if let Some(at) = find(&self.prelude, marker.as_bytes()) {
            self.started = true;
            step.started = true;
            step.stderr = self.prelude.split_off(at + marker.len());
            self.prelude.clear();
        }
        step
    }

    pub fn started(&self) -> bool {
        self.started
    }

    /// What sudo printed before the command would have started, prompts removed.
    pub fn prelude_text(&self) -> String {
        String::from_utf8_lossy(&self.prelude).replace(SUDO_PROMPT, "")
    }

    /// Whether the prelude is sudo saying it needs a password it was not given.
    pub fn password_required(&self) -> bool {
        let text = self.prelude_text();
        text.contains("a password is required") || text.contains("no password was provided")
    }

    /// Whether the prelude is sudo refusing the password.
    pub fn password_rejected(&self) -> bool {
        let text = self.prelude_text();
        self.prompts_answered > 1 || text.contains("incorrect password")
    }
}

fn count(haystack: &[u8], needle: &[u8]) -> usize {
    haystack
        .windows(needle.len())
        .filter(|w| *w == needle)
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn arg(text: &str) -> ShellArg {
        ShellArg::new(text).expect("no NUL")
    }

    fn sh(line: &str, stdin: &[u8]) -> std::process::Output {
        use std::io::Write;
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(line)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("sh runs");
        child
            .stdin
            .take()
            .expect("piped")
            .write_all(stdin)
            .expect("stdin");
        child.wait_with_output().expect("sh finishes")
    }

    #[test]
    fn plain_sessions_send_the_script_as_is() {
        let script = Script::new("echo").arg(arg("a b"));
        assert_eq!(
            exec_line(&script, Become::No).expect("renders"),
            "echo 'a b'"
        );
    }

    #[test]
    fn become_wraps_the_script_as_one_quoted_word() {
        let script = Script::new("echo").arg(arg("it's"));
        let line = exec_line(&script, Become::WithoutPassword).expect("renders");
        assert!(line.starts_with("sudo -n -- sh -c "), "{line}");
        // Run the wrapped line with sudo replaced by a pass-through, to see the
        // quoting survive and the marker come first on stderr.
        let fake = line.replacen("sudo -n --", "env --", 1);
        let out = sh(&fake, b"");
        assert_eq!(String::from_utf8_lossy(&out.stdout), "it's\n");
        assert_eq!(
            String::from_utf8_lossy(&out.stderr),
            format!("{START_MARKER}\n")
        );
        let with_password = exec_line(&script, Become::WithPassword).expect("renders");
        assert!(
            with_password.starts_with("sudo -S -p '[k8sup-become-password]' -- sh -c "),
            "{with_password}"
        );
    }

    #[test]
    fn gate_sends_password_on_prompt_and_stdin_on_start() {
        let mut gate = BecomeGate::default();
        let step = gate.feed(SUDO_PROMPT.as_bytes());
        assert!(step.send_password && !step.started && step.stderr.is_empty());
        let step = gate.feed(format!("{START_MARKER}\nreal err").as_bytes());
        assert!(step.started && !step.send_password);
        assert_eq!(step.stderr, b"real err");
        assert_eq!(gate.feed(b" more").stderr, b" more");
    }

    #[test]
    fn gate_handles_markers_split_across_packets_and_no_prompt() {
        let mut gate = BecomeGate::default();
        assert_eq!(gate.feed(b"k8sup-become-sta"), GateStep::default());
        let step = gate.feed(b"rted\n");
        assert!(step.started && !step.send_password && step.stderr.is_empty());
    }

    #[test]
    fn gate_reports_a_second_prompt_as_rejection() {
        let mut gate = BecomeGate::default();
        assert!(gate.feed(SUDO_PROMPT.as_bytes()).send_password);
        let step = gate.feed(format!("Sorry, try again.\n{SUDO_PROMPT}").as_bytes());
        assert!(step.password_rejected && !step.send_password);
        assert!(gate.password_rejected());
    }

    #[test]
    fn gate_recognises_sudo_wanting_a_password() {
        let mut gate = BecomeGate::default();
        gate.feed(b"sudo: a password is required\n");
        assert!(!gate.started());
        assert!(gate.password_required());
    }

    #[test]
    fn paths_must_be_absolute_files() {
        assert!(remote_path("etc/x").is_err());
        assert!(remote_path("/etc/").is_err());
        assert!(remote_path("/etc/..").is_err());
        let p = remote_path("/x").expect("root file");
        assert_eq!((p.dir.as_str(), p.file.as_str()), ("/", "/x"));
    }

    #[test]
    fn upload_script_writes_atomically_with_mode() {
        let dir = std::env::temp_dir().join(format!("k8sup-upload-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let target = dir.join("it's a $(file)");
        let path = remote_path(target.to_str().expect("utf-8")).expect("absolute");
        let content = b"\x00\x01binary\xff\n";
        let script = upload_script(&path, content.len(), 0o640, None);
        let out = sh(&script.render(), content);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(std::fs::read(&target).expect("written"), content);
        let short = sh(&upload_script(&path, 99, 0o640, None).render(), b"abc");
        assert!(!short.status.success());
        assert_eq!(
            std::fs::read(&target).expect("kept"),
            content,
            "a short upload leaves the file"
        );
        let leftovers = std::fs::read_dir(&dir).expect("list").count();
        assert_eq!(leftovers, 1, "temp files are cleaned up");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
