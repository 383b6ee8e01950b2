//! One shell per session that runs every command sent to it, so that a host costs one
//! SSH channel for the whole run instead of one per command.
//!
//! Opening a channel makes sshd fork, set up a session and start a login shell: on a
//! small host that is several milliseconds of its CPU for every command, and a round
//! trip of its own. Instead, the first command of a session starts a small POSIX shell
//! loop (the *server*, through `sudo` like any command when the target says `become`)
//! and every command after that is a request on its stdin.
//!
//! How a request travels depends on the host's `sh` (the server says which in its
//! ready line):
//!
//! - **Stream** (`dash`, BusyBox `ash` and every `sh` but bash): once ready, the server
//!   `exec`s `sh -s`, which reads its commands from stdin itself, in blocks, as a
//!   script from a pipe. A request is shell text: the script (then its stdin, and its
//!   library, when it has them) assigned to the server's variables in single quotes,
//!   then one constant line that runs it ([`STREAM_RUN`]). No program reads a request:
//!   no `head`, whatever `head` the host has (uutils' on Ubuntu 25.10, BusyBox's).
//!   Nothing else may read that stdin, so a script's stdin is never the server's: it
//!   is `/dev/null`, or the request's stdin piped in by the shell's own `printf`. A
//!   stdin the shell cannot hold (a NUL byte, or more than [`MAX_STREAM_STDIN`]) goes
//!   on a channel of its own instead (below). The shell that is `exec`ed has none of
//!   the first one's traps or variables: the first request sent to it starts with
//!   them ([`stream_prologue`]).
//! - **Head** (bash, `sh` on the Red Hat family, which reads a script from a pipe one
//!   byte per `read` so that a command may share it: a request of 20 KB would cost
//!   20,000 system calls): the server loops, reading each request's header with `read`
//!   and its bytes with GNU `head -c`:
//!
//! ```text
//! <script length> <stdin length> 0\n<script bytes><stdin bytes>
//! 0 <stdin length> <block length>\n<block bytes><stdin bytes>
//! ```
//!
//! The server reads the header with `read`, the script and the stdin with `head -c`
//! (GNU head never reads past the count it is given, so nothing of the next request is
//! taken), the script into a shell variable (so that it, and any secret in it, is never
//! in a process's arguments, which every local user can read in `/proc/PID/cmdline`,
//! nor in any file), `eval`s it in a subshell of its own (a fork of the server, no new
//! program: traps and `exit` are the script's, as on a channel of its own, and none of
//! the server's variables is left in it) with exactly those stdin bytes, drains
//! whatever stdin the script left unread, and ends each stream with a line holding a
//! per-session random token: stdout's also carries the exit status. The token cannot
//! appear in a command's output by chance, and everything before it is the command's
//! output, byte for byte. A stream server runs a script the same way and ends its
//! output with the same lines.
//!
//! A request may carry a library ([`crate::RunOptions::library`]: shell functions and
//! constants that the script relies on, sent once per shell). In head mode its script
//! then comes in a block with it (the second form above): the assignment of the script
//! to the server's variable, in single quotes, then the library. The server reads the
//! block with one `head` and `eval`s it in its own shell, with `command` so that a
//! syntax error ends that `eval`, not the server: every later request, a subshell,
//! inherits what the library defined. A stream server `command eval`s the library from
//! its variable in the same way. A library that does not parse leaves the request's
//! script unrun (its stdin is drained), with the shell's message on stderr and its
//! status.
//! A library must not set the server's variables ([`SERVER_VARIABLES`]) nor define a
//! function named as a command the server runs ([`SERVER_COMMANDS`]).
//!
//! A command on a channel of its own (below) gets its script the same way, on stdin,
//! into a 0600 file of a private 0700 directory, which goes with the command; one left
//! by a shell killed outright is removed by the next shell started on the host as the
//! same user (as are those of servers before 2026-12-02, which kept the script in a
//! file too).
//!
//! The server and every script run under `sh`, with `become` or without: the same
//! shell whatever the SSH user's login shell is (`dash` on Debian and Ubuntu, which
//! starts and forks faster than `bash`; `bash` on the Red Hat family).
//!
//! The first request is sent right after the channel's `exec`, without waiting for the
//! server's ready line; only a `sudo` that wants a password is answered first. OpenSSH's
//! sshd opens a session channel's window only once the `exec` succeeded, so that request
//! still waits a round trip for the window; a first request that holds no secret
//! ([`crate::RunOptions::public`]: the lock and the facts) goes instead in the `exec`
//! line itself, as the server's first script, and costs no round trip of its own.
//!
//! A session falls back to one channel per command when the shell is busy (commands run
//! at once), when a bash server finds that the host's `head` is not GNU's, and for every
//! command after one that timed out (the shell is then killed with its channel and
//! started afresh next time); a command whose stdin a stream server cannot hold goes on
//! a channel of its own, and the shell stays for the next.
//!
//! What a channel reports and the shell cannot: a command killed by a signal shows as
//! exit status 128 + the signal's number, as in any shell, not as an exit signal.
//!
//! What an `eval` in a subshell is not (until 2026-12-02 each request ran from a file
//! in a `sh -c` of its own): `$$` is the server's process id, not the request's (as in
//! any subshell): unique among the host's processes while the request runs, as temp
//! file names need, and the same for every request of the session (the requests run
//! one after another); a script must not signal `$$` (that ends the server and the
//! session's shell). `$0` is the server's (`sh`), and the shell's own error messages
//! read `sh: LINE: eval: ...`; a `return` outside a function is refused by bash
//! (allowed in a sourced file). On a channel of its own (the fallback above) a command
//! still runs in a `sh` of its own.

use k8sup_shell::{Script, ShellArg};

use crate::bytes::{find, rfind};

/// The shell variables of the server, which no request sees (they are unset in front
/// of its script) and no library may set.
pub const SERVER_VARIABLES: &[&str] = &[
    "k8sup_end",
    "k8sup_t",
    "k8sup_x",
    "k8sup_p",
    "k8sup_n",
    "k8sup_m",
    "k8sup_l",
    "k8sup_rc",
    "k8sup_s",
    "k8sup_i",
    "k8sup_md",
];

/// The commands the server runs between requests (besides the special builtins, which
/// no function can replace): a library's function by one of these names would.
pub const SERVER_COMMANDS: &[&str] = &[
    "head", "cat", "printf", "read", "echo", "kill", "rm", "command", "[",
];

/// What the server prints first on stdout, once it runs (after `sudo` let it), in
/// head mode...
const READY: &str = "ready";
/// ...and in stream mode (see the module docs).
const READY_STREAM: &str = "stream";
/// What the server prints instead when the host's `head` cannot be trusted to stop at
/// a byte count.
const UNAVAILABLE: &str = "unavailable";
/// Bytes held back from live output: the longest end line ("\n" token " " status "\n").
pub(crate) const HOLD_BACK: usize = TOKEN_LEN + 16;
/// `k8sup-` and 32 hex digits.
const TOKEN_LEN: usize = 6 + 32;

/// A fresh random token for one shell.
pub(crate) fn new_token() -> String {
    let mut bytes = [0u8; 16];
    if getrandom::fill(&mut bytes).is_err() {
        // No OS randomness: uniqueness is all the token needs, not secrecy.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        bytes = (nanos ^ u128::from(std::process::id()) << 64).to_le_bytes();
    }
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("k8sup-{hex}")
}

/// The lines that end a request's output (see the module docs): stdout's with the
/// exit status `$k8sup_rc`, then stderr's; what [`Stream`] looks for.
macro_rules! end_lines {
    () => {
        r#"printf '\n%s %s\n' "$k8sup_end" "$k8sup_rc"; printf '\n%s\n' "$k8sup_end" >&2"#
    };
}

/// [`RUN_SCRIPT_SUBSHELL`]'s text, for the `concat!`s that hold it.
macro_rules! run_script_subshell {
    () => {
        concat!(
            r#"( set --; eval "unset k8sup_end k8sup_t k8sup_x k8sup_p k8sup_n k8sup_m k8sup_l k8sup_rc k8sup_s k8sup_i k8sup_md; "#,
            r#"$k8sup_s" )"#,
        )
    };
}

/// The sweep of [`SCRIPT_DIR`], also run when the shell exits: a shell killed while
/// this one ran (a timed-out command's, or one whose process was still being reaped
/// when this one started) is gone by then. Only builtins, and `rm` when something is
/// to be removed; no single quote, so that it fits in a trap.
macro_rules! sweep {
    () => {
        concat!(
            r#"for k8sup_x in "$k8sup_t"/k8sup-shell.*; do k8sup_p=${k8sup_x##*/k8sup-shell.}; k8sup_p=${k8sup_p%%.*}; "#,
            r#"case $k8sup_p in ""|*[!0-9]*) continue;; esac; "#,
            r#"kill -0 "$k8sup_p" 2>/dev/null || rm -rf -- "$k8sup_x" 2>/dev/null; done; "#,
        )
    };
}

/// Shell text that sweeps away the script directories of shells that are gone (killed
/// before their exit trap ran: a script there may hold a secret), then makes this
/// shell's own in `k8sup_d`: `k8sup-shell.<pid>.<random>` under `$TMPDIR` or `/tmp`,
/// 0700 by `mktemp -d`. Only builtins run unless something is to be removed. Fails
/// when no directory can be made.
const SCRIPT_DIR: &str = concat!(
    r#"k8sup_t=${TMPDIR:-/tmp}; "#,
    sweep!(),
    r#"k8sup_um=$(umask); k8sup_d=$(mktemp -d "$k8sup_t/k8sup-shell.$$.XXXXXXXXXX")"#,
);

/// Shell text that sweeps [`SCRIPT_DIR`] now and when the shell ends (also when its
/// connection is cut): the directories that shells killed outright left may hold a
/// script. Signals end the server with the shell's usual status.
const TRAPS: &str = concat!(
    r#"k8sup_t=${TMPDIR:-/tmp}; "#,
    sweep!(),
    r#"trap '"#,
    sweep!(),
    r#"' EXIT; trap 'exit 129' HUP; trap 'exit 141' PIPE; trap 'exit 143' TERM; "#,
);

/// The most stdin a request to a stream server carries in its text (in the server's
/// memory until the script ran); a larger one goes on a channel of its own.
pub(crate) const MAX_STREAM_STDIN: usize = 1024 * 1024;

/// The line that ends every request to a stream server: the library (`k8sup_l`, when
/// the request set it) is defined in the server with `command eval` (a syntax error
/// ends that `eval`, not the server), then the script runs as in head mode, with the
/// request's stdin (`k8sup_i`, when set) from the shell's own `printf`, else none.
/// The end lines follow, as in head mode.
const STREAM_RUN: &str = concat!(
    r#"k8sup_rc=0; if [ -n "${k8sup_l+x}" ]; then command eval "$k8sup_l" </dev/null || k8sup_rc=$?; unset k8sup_l; fi; "#,
    r#"if [ "$k8sup_rc" -gt 0 ]; then :; elif [ -n "${k8sup_i+x}" ]; then "#,
    r#"printf %s "$k8sup_i" | "#,
    run_script_subshell!(),
    r#"; k8sup_rc=$?; else "#,
    run_script_subshell!(),
    r#" </dev/null; k8sup_rc=$?; fi; unset k8sup_i; k8sup_s=; "#,
    end_lines!(),
    "\n",
);

/// What the first request to a stream server starts with: the token and the traps of
/// the shell it replaced (an `exec` keeps neither).
pub(crate) fn stream_prologue(token: &str) -> String {
    debug_assert!(token
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-'));
    format!("k8sup_end={token}; {TRAPS}\n")
}

/// Shell text that runs the script in the file `"$k8sup_d/s"` (on a channel of its own,
/// [`channel_script`]) as `sh -c` would run it as an argument (`$0` is `k8sup`, no
/// positional parameters, a process of its own), without the script in any process's
/// arguments.
const RUN_SCRIPT_FILE: &str = r#"sh -c 'k8sup_f=$1; shift; . "$k8sup_f"' k8sup "$k8sup_d/s""#;

/// Shell text that reads a request's script, the next `$k8sup_n` bytes of stdin, into
/// `k8sup_s`, byte for byte (the `.` after it keeps the trailing newlines that a
/// command substitution drops).
const READ_SCRIPT: &str = r#"k8sup_s=$(head -c "$k8sup_n"; echo .); k8sup_s=${k8sup_s%.}; "#;

/// Shell text that runs the request's script `k8sup_s` in a subshell of the server (a
/// fork, no new program): no positional parameters, none of the server's variables
/// (unset in front of the script, on its first line: its line numbers stay), the
/// traps and `exit` the script's own (a subshell starts with no traps of the server's
/// and default signal dispositions, and its end is the request's).
const RUN_SCRIPT_SUBSHELL: &str = run_script_subshell!();

/// The server loop (see the module docs). With `held_file`, the server opens that file
/// on fd 9 first (see [`crate::Target::held_file`]); a file it cannot open is left out.
/// With `first`, the server runs that script as its first request, with no stdin,
/// before it reads any (see [`crate::RunOptions::public`]): the script is then in the
/// server's arguments, which any local user can read, so it must hold no secret.
pub(crate) fn server_script(
    token: &str,
    held_file: Option<&ShellArg>,
    first: Option<&ShellArg>,
) -> Script {
    let token = ShellArg::new(token).expect("a token is hex digits");
    // `set --` because a Script puts a space between its pieces.
    let mut script = Script::new("set --")
        .arg(token)
        .code("; k8sup_end=$1;")
        .code(concat!(
            // bash reads a script from a pipe a byte at a time: it serves in head mode,
            // with GNU head or not at all. Any other sh streams (see the module docs).
            r#"if [ -n "${BASH_VERSION-}" ]; then k8sup_md=ready; "#,
            r#"case "$(head --version 2>/dev/null)" in *GNU*) ;; "#,
            r#"*) printf '%s-unavailable\n' "$k8sup_end"; exit 0;; esac; "#,
            r#"else k8sup_md=stream; fi; "#,
        ))
        .code(TRAPS);
    if let Some(file) = held_file {
        script = script
            .code("{ command exec 9>>")
            .arg(file.clone())
            .code("; } 2>/dev/null;");
    }
    script = script.code(r#"printf '%s-%s\n' "$k8sup_end" "$k8sup_md"; "#);
    if let Some(first) = first {
        // The same steps as a request's without stdin (the loop below).
        script = script
            .code("set --")
            .arg(first.clone())
            .code(r#"; k8sup_s=$1; set --; "#)
            .code(RUN_SCRIPT_SUBSHELL)
            .code(concat!(
                r#" </dev/null; k8sup_rc=$?; k8sup_s=; "#,
                end_lines!(),
                "; ",
            ));
    }
    script
        // A stream server's next shell reads the requests itself (its traps and the
        // token come with the first one, see [`stream_prologue`]); the held file's fd
        // 9 stays open across the exec.
        .code(r#"[ "$k8sup_md" = ready ] || exec sh -s; "#)
        .code(r#"while IFS=' ' read -r k8sup_n k8sup_m k8sup_l; do k8sup_rc=0; k8sup_s=; "#)
        // A request with a library: one block that sets the script's variable, then
        // defines the library in the server itself (see the module docs and
        // [`request`]); the script is run only when the whole block was.
        .code(concat!(
            r#"if [ "${k8sup_l:-0}" -gt 0 ]; then k8sup_s=$(head -c "$k8sup_l"; echo .); "#,
            r#"set -- "${k8sup_s%.}"; k8sup_s=; command eval "$1" </dev/null || k8sup_rc=$?; set --; "#,
            r#"else "#,
        ))
        // The script goes to a variable, never into a process's arguments.
        .code(READ_SCRIPT)
        .code("fi; ")
        .code(concat!(
            r#"if [ "$k8sup_rc" -gt 0 ]; then "#,
            r#"[ "$k8sup_m" -eq 0 ] || head -c "$k8sup_m" >/dev/null; "#,
            r#"elif [ "$k8sup_m" -gt 0 ]; then "#,
            r#"head -c "$k8sup_m" | { "#,
        ))
        .code(RUN_SCRIPT_SUBSHELL)
        .code(concat!(
            r#"; k8sup_rc=$?; cat >/dev/null; exit "$k8sup_rc"; }; k8sup_rc=$?; "#,
            r#"else "#,
        ))
        .code(RUN_SCRIPT_SUBSHELL)
        .code(concat!(
            r#" </dev/null; k8sup_rc=$?; fi; "#,
            r#"k8sup_s=; "#,
            end_lines!(),
            "; ",
            r#"done"#
        ))
}

/// The script a channel of its own runs for one command: it reads `<script length>\n`
/// and the script from stdin into a 0600 file of a private directory, runs it with the
/// rest of stdin, removes the directory, and ends as the script ended (by the same
/// signal, when one killed it), so the script is never in a process's arguments.
pub(crate) fn channel_script() -> Script {
    Script::new(SCRIPT_DIR).code(concat!(
        r#" || exit 125; IFS= read -r k8sup_n || { rm -rf -- "$k8sup_d"; exit 125; }; umask 077; "#,
        r#"case "$(head --version 2>/dev/null)" in *GNU*) head -c "$k8sup_n";; "#,
        r#"*) dd bs=1 count="$k8sup_n" 2>/dev/null;; esac > "$k8sup_d/s"; umask "$k8sup_um"; "#,
    ))
    .code(RUN_SCRIPT_FILE)
    .code(concat!(
        r#"; k8sup_rc=$?; rm -rf -- "$k8sup_d"; "#,
        r#"if [ "$k8sup_rc" -gt 128 ] && k8sup_s=$(kill -l "$k8sup_rc" 2>/dev/null); then "#,
        r#"kill -s "$k8sup_s" $$; fi; exit "$k8sup_rc""#,
    ))
}

/// The stdin of a channel running [`channel_script`]: header, script, the command's stdin.
pub(crate) fn channel_stdin(script: &str, stdin: &[u8]) -> Vec<u8> {
    let mut bytes = format!("{}\n", script.len()).into_bytes();
    bytes.reserve(script.len() + stdin.len());
    bytes.extend_from_slice(script.as_bytes());
    bytes.extend_from_slice(stdin);
    bytes
}

/// How a server takes its requests (see the module docs), as its ready line says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// A loop that reads each request with `read` and `head -c` (bash).
    Head,
    /// A shell that reads its requests as shell text (every other sh).
    Stream,
}

/// The bytes of one request in `mode`; `None` when a stream server cannot hold its
/// stdin (a NUL byte, or more than [`MAX_STREAM_STDIN`]): it goes on a channel of its
/// own then. The script holds no NUL (the session sends such a one on a channel).
pub(crate) fn request(mode: Mode, library: &str, script: &str, stdin: &[u8]) -> Option<Vec<u8>> {
    match mode {
        Mode::Head => Some(head_request(library, script, stdin)),
        Mode::Stream => stream_request(library, script, stdin),
    }
}

/// `'text'`, the single quotes in it written as `'\''`, appended to `into`.
fn push_quoted(into: &mut Vec<u8>, text: &[u8]) {
    into.push(b'\'');
    for (n, part) in text.split(|&b| b == b'\'').enumerate() {
        if n > 0 {
            into.extend_from_slice(br"'\''");
        }
        into.extend_from_slice(part);
    }
    into.push(b'\'');
}

/// The length of `text` as [`push_quoted`] writes it.
fn quoted_len(text: &[u8]) -> usize {
    text.len() + 2 + 3 * text.iter().filter(|&&b| b == b'\'').count()
}

/// A request to a stream server: the script, its stdin and its library assigned in
/// single quotes (nothing in them can end the assignment early or run in the
/// server), then [`STREAM_RUN`]; written in one buffer of the right size (a host's
/// request may carry a library of some 20 KB, and a thousand hosts send theirs at
/// once).
fn stream_request(library: &str, script: &str, stdin: &[u8]) -> Option<Vec<u8>> {
    if stdin.len() > MAX_STREAM_STDIN || stdin.contains(&0) {
        return None;
    }
    // Any other byte goes in single quotes as it is; the shell hands back bytes,
    // whatever their encoding.
    let parts: [(&[u8], &[u8]); 3] = [
        (b"k8sup_s=", script.as_bytes()),
        (b"k8sup_i=", stdin),
        (b"k8sup_l=", library.as_bytes()),
    ];
    let wanted = |(name, text): &(&[u8], &[u8])| name == b"k8sup_s=" || !text.is_empty();
    let size = parts
        .iter()
        .filter(|p| wanted(p))
        .map(|(name, text)| name.len() + quoted_len(text) + 1)
        .sum::<usize>()
        + STREAM_RUN.len();
    let mut bytes = Vec::with_capacity(size);
    for (name, text) in parts.iter().filter(|p| wanted(p)) {
        bytes.extend_from_slice(name);
        push_quoted(&mut bytes, text);
        bytes.push(b'\n');
    }
    bytes.extend_from_slice(STREAM_RUN.as_bytes());
    debug_assert_eq!(bytes.len(), size);
    Some(bytes)
}

/// The bytes of one request to a head server: header, script, stdin; with a library
/// (`""` when the shell has it already), the script and the library as one block the
/// server reads with one `head` and `eval`s: the script's variable set first, in
/// single quotes, so that nothing in the library (which must be complete shell text)
/// can end that assignment early or run a part of the script in the server.
fn head_request(library: &str, script: &str, stdin: &[u8]) -> Vec<u8> {
    if library.is_empty() {
        let mut bytes = format!("{} {} 0\n", script.len(), stdin.len()).into_bytes();
        bytes.reserve(script.len() + stdin.len());
        bytes.extend_from_slice(script.as_bytes());
        bytes.extend_from_slice(stdin);
        return bytes;
    }
    let mut block = Vec::with_capacity(quoted_len(script.as_bytes()) + library.len() + 16);
    block.extend_from_slice(b"k8sup_s=");
    push_quoted(&mut block, script.as_bytes());
    block.push(b'\n');
    block.extend_from_slice(library.as_bytes());
    let mut bytes = format!("0 {} {}\n", stdin.len(), block.len()).into_bytes();
    bytes.reserve(block.len() + stdin.len());
    bytes.extend_from_slice(&block);
    bytes.extend_from_slice(stdin);
    bytes
}

/// How the server's start went, read from its first stdout line.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Start {
    /// Not yet known: more output is needed.
    Pending,
    /// The server runs and takes requests in this mode; what follows its ready line
    /// (the first request's output, when the request went with its start) starts at
    /// this offset.
    Ready(usize, Mode),
    /// The host cannot run the server (it ran nothing): use one channel per command.
    Unavailable,
}

/// Reads the server's first line from what stdout has said so far (anything a login
/// script printed before it is passed over).
pub(crate) fn start_state(token: &str, stdout: &[u8]) -> Start {
    let unavailable = format!("{token}-{UNAVAILABLE}\n");
    for (word, mode) in [(READY, Mode::Head), (READY_STREAM, Mode::Stream)] {
        let ready = format!("{token}-{word}\n");
        if let Some(at) = find(stdout, ready.as_bytes()) {
            return Start::Ready(at + ready.len(), mode);
        }
    }
    if find(stdout, unavailable.as_bytes()).is_some() {
        Start::Unavailable
    } else {
        Start::Pending
    }
}

/// One stream of one request's output, up to its end line.
#[derive(Debug, Default)]
pub(crate) struct Stream {
    buf: Vec<u8>,
    /// How much of `buf` has been passed on as live output.
    emitted: usize,
    /// Where the end line starts, once seen.
    end: Option<usize>,
    /// The exit status on stdout's end line.
    status: Option<u32>,
}

impl Stream {
    /// Adds `data`; returns the part that is surely output (not the end line) and not
    /// yet passed on. `stdout` says whether the end line carries a status.
    pub fn push(&mut self, token: &str, data: &[u8], stdout: bool) -> &[u8] {
        let from = self.emitted;
        if self.end.is_some() {
            // Nothing may follow the end line of a request: ignore it.
            return &[];
        }
        self.buf.extend_from_slice(data);
        if self.buf.ends_with(b"\n") {
            self.find_end(token, stdout);
        }
        let upto = match self.end {
            Some(end) => end,
            None => self.buf.len().saturating_sub(HOLD_BACK),
        };
        if upto > from {
            self.emitted = upto;
            &self.buf[from..upto]
        } else {
            &[]
        }
    }

    fn find_end(&mut self, token: &str, stdout: bool) {
        let marker = format!("\n{token}");
        let tail_from = self.buf.len().saturating_sub(HOLD_BACK + 1);
        let Some(at) = rfind(&self.buf[tail_from..], marker.as_bytes()) else {
            return;
        };
        let at = tail_from + at;
        let rest = &self.buf[at + marker.len()..self.buf.len() - 1];
        if stdout {
            let Some(digits) = rest.strip_prefix(b" ") else {
                return;
            };
            let Some(status) = std::str::from_utf8(digits)
                .ok()
                .and_then(|d| d.parse::<u32>().ok())
            else {
                return;
            };
            self.status = Some(status);
        } else if !rest.is_empty() {
            return;
        }
        self.end = Some(at);
    }

    pub fn ended(&self) -> bool {
        self.end.is_some()
    }

    pub fn status(&self) -> Option<u32> {
        self.status
    }

    /// The output before the end line (all of it, when the end never came).
    pub fn into_output(mut self) -> Vec<u8> {
        if let Some(end) = self.end {
            self.buf.truncate(end);
        }
        self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::process::{Command, Stdio};

    /// The server under the machine's sh, fed `requests`, its stdout and stderr split
    /// into per-request outputs by the same parser the session uses.
    fn serve(requests: &[(&str, &[u8])]) -> Vec<(Vec<u8>, Vec<u8>, u32)> {
        serve_after(None, requests)
    }

    /// [`serve`] with `first` given in the server's start line: its output comes first.
    fn serve_after(
        first: Option<&str>,
        requests: &[(&str, &[u8])],
    ) -> Vec<(Vec<u8>, Vec<u8>, u32)> {
        let requests: Vec<(&str, &str, &[u8])> =
            requests.iter().map(|(s, i)| ("", *s, *i)).collect();
        serve_libraries(first, &requests)
    }

    /// [`serve_after`] with requests that carry a library: (library, script, stdin).
    /// The server runs under `sh` (dash on Debian) and under bash (`sh` on the Red Hat
    /// family), which must answer alike (but for the wording of the shells' own
    /// messages on stderr); what `sh` answered is returned.
    fn serve_libraries(
        first: Option<&str>,
        requests: &[(&str, &str, &[u8])],
    ) -> Vec<(Vec<u8>, Vec<u8>, u32)> {
        let dash = serve_under("sh", first, requests);
        let bash = serve_under("bash", first, requests);
        let without_stderr = |results: &[(Vec<u8>, Vec<u8>, u32)]| {
            results
                .iter()
                .map(|(out, _, status)| (out.clone(), *status))
                .collect::<Vec<_>>()
        };
        assert_eq!(without_stderr(&dash), without_stderr(&bash), "sh and bash");
        dash
    }

    /// The mode a server under `shell` takes requests in: bash reads a script from a
    /// pipe a byte at a time, so it loops with `head`; dash streams.
    fn mode_of(shell: &str) -> Mode {
        if shell == "bash" {
            Mode::Head
        } else {
            Mode::Stream
        }
    }

    fn serve_under(
        shell: &str,
        first: Option<&str>,
        requests: &[(&str, &str, &[u8])],
    ) -> Vec<(Vec<u8>, Vec<u8>, u32)> {
        let mode = mode_of(shell);
        let token = new_token();
        let first_arg = first.map(|f| ShellArg::new(f).expect("no NUL"));
        let mut child = Command::new(shell)
            .arg("-c")
            .arg(server_script(&token, None, first_arg.as_ref()).render())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("sh runs");
        let mut input = Vec::new();
        if mode == Mode::Stream {
            input.extend(stream_prologue(&token).into_bytes());
        }
        for (library, script, stdin) in requests {
            input.extend(request(mode, library, script, stdin).expect("a request it can hold"));
        }
        let mut stdin = child.stdin.take().expect("piped");
        let writer = std::thread::spawn(move || {
            stdin.write_all(&input).expect("requests written");
        });
        let mut out = Vec::new();
        child
            .stdout
            .take()
            .expect("piped")
            .read_to_end(&mut out)
            .expect("stdout");
        let mut err = Vec::new();
        child
            .stderr
            .take()
            .expect("piped")
            .read_to_end(&mut err)
            .expect("stderr");
        writer.join().expect("writer");
        child.wait().expect("exits");
        let Start::Ready(ready, ready_mode) = start_state(&token, &out) else {
            panic!(
                "no ready line: {}",
                String::from_utf8_lossy(&out[..out.len().min(300)])
            );
        };
        assert_eq!(ready_mode, mode, "{shell}'s server says its mode");
        let split = |mut bytes: &[u8], stdout: bool| {
            let mut outputs = Vec::new();
            while !bytes.is_empty() {
                let mut stream = Stream::default();
                // Feed byte by byte: the end line must be found however data arrives.
                let mut used = 0;
                for b in bytes {
                    stream.push(&token, std::slice::from_ref(b), stdout);
                    used += 1;
                    if stream.ended() {
                        break;
                    }
                }
                assert!(stream.ended(), "a request's output ends with its end line");
                let status = stream.status();
                outputs.push((stream.into_output(), status));
                bytes = &bytes[used..];
            }
            outputs
        };
        let outs = split(&out[ready..], true);
        let errs = split(&err, false);
        let expected = requests.len() + usize::from(first_arg.is_some());
        assert_eq!(outs.len(), expected);
        assert_eq!(errs.len(), expected);
        outs.into_iter()
            .zip(errs)
            .map(|((o, status), (e, _))| (o, e, status.expect("a status")))
            .collect()
    }

    #[test]
    fn requests_run_in_order_with_their_own_stdin_output_and_status() {
        // Every byte but NUL, which a stream server's request cannot hold (see
        // `a_stream_server_takes_a_stdin_it_can_hold_and_refuses_the_rest`).
        let binary: Vec<u8> = (1..=255u8).cycle().take(70_000).collect();
        let results = serve(&[
            ("printf out; printf err >&2; exit 3", b""),
            ("cat", &binary),
            // Reads only part of its stdin: the rest must not become the next header.
            ("head -c 2", b"abcdef 1 1\nxx"),
            ("printf 'a\\n\\n'", b""),
            ("read x; echo \"[$x]\"; cat", b"line one\nrest"),
            // The request's own process: `$$` is the server's.
            ("sh -c 'kill -KILL $PPID'", b""),
            ("k8sup_end=x; set -e; false; echo not here", b""),
            (
                "echo \"[$#][$k8sup_end][$k8sup_d][$k8sup_n][$k8sup_rc]\"; trap 'echo trapped' EXIT; exit 0",
                b"",
            ),
            // The server's traps are not the script's, nor is its exit.
            ("sh -c 'kill -TERM $PPID'; echo survived", b""),
            ("echo \"[$#][$1]\"", b""),
            // No file holds the script: the server made no directory.
            (
                "for d in \"${TMPDIR:-/tmp}\"/k8sup-shell.$$.*; do [ ! -e \"$d\" ] || echo \"$d\"; done",
                b"",
            ),
        ]);
        assert_eq!(results[0], (b"out".to_vec(), b"err".to_vec(), 3));
        assert_eq!(results[1].0, binary);
        assert_eq!(results[2], (b"ab".to_vec(), Vec::new(), 0));
        assert_eq!(
            results[3].0, b"a\n\n",
            "trailing newlines are the command's"
        );
        assert_eq!(results[4].0, b"[line one]\nrest");
        assert_eq!(results[5].2, 128 + 9, "a signal shows as 128 + its number");
        assert_eq!(
            results[6].2, 1,
            "set -e and exit end the request, not the shell"
        );
        assert_eq!(
            results[7],
            (b"[0][][][][]\ntrapped\n".to_vec(), Vec::new(), 0),
            "the script runs in a shell of its own, as on a channel"
        );
        // (The server's shell may say on stderr what killed it, as for any command.)
        assert_eq!(
            (&results[8].0, results[8].2),
            (&Vec::new(), 128 + 15),
            "a signal ends the request, not the server"
        );
        assert_eq!(results[9].0, b"[0][]\n", "no positional parameters");
        assert_eq!(results[10], (Vec::new(), Vec::new(), 0), "no script file");
    }

    #[test]
    fn a_first_script_in_the_start_line_runs_before_the_requests_as_one_of_them() {
        let results = serve_after(
            Some("printf 'a\\n\\n'; echo e >&2; read x && echo read; echo \"[$#][$k8sup_end]\"; exit 4"),
            &[("cat", b"zz"), ("echo \"[$#]\"", b"")],
        );
        assert_eq!(
            results[0],
            (b"a\n\n[0][]\n".to_vec(), b"e\n".to_vec(), 4),
            "its own output and status, no stdin, no positional parameters, none of the server's variables"
        );
        assert_eq!(
            results[1],
            (b"zz".to_vec(), Vec::new(), 0),
            "the requests' stdin is theirs"
        );
        assert_eq!(results[2].0, b"[0]\n");
    }

    #[test]
    fn a_library_is_defined_once_in_the_server_and_every_later_request_has_it() {
        let library = "k8sup_nl='\n'\nk8sup_lib_f() { printf '[%s]' \"$1\"; }\n";
        let broken = "k8sup_lib_g() { echo g; }\nif then\n";
        let results = serve_libraries(
            None,
            &[
                ("", "k8sup_lib_f x || echo missing", b""),
                (
                    library,
                    "k8sup_lib_f a; printf %s \"$k8sup_nl\"; cat",
                    b"in",
                ),
                ("", "k8sup_lib_f b; exit 3", b""),
                // A library that does not parse: the script does not run, its stdin
                // is drained, the server goes on.
                (broken, "echo ran", b"stdin left unread"),
                ("", "k8sup_lib_f c; echo \"[$k8sup_l]\"", b""),
                // Defining again is harmless.
                (library, "k8sup_lib_f d", b""),
            ],
        );
        assert_eq!(results[0].0, b"missing\n", "not defined before it was sent");
        assert_eq!(results[1], (b"[a]\nin".to_vec(), Vec::new(), 0));
        assert_eq!(results[2], (b"[b]".to_vec(), Vec::new(), 3));
        assert_eq!(
            results[3].0, b"",
            "the script of a broken library's request"
        );
        assert_ne!(results[3].2, 0);
        assert!(
            String::from_utf8_lossy(&results[3].1).contains("rror"),
            "the shell's message: {:?}",
            String::from_utf8_lossy(&results[3].1)
        );
        assert_eq!(
            results[4],
            (b"[c][]\n".to_vec(), Vec::new(), 0),
            "the server survived, the library is still defined, the header's fields are not the script's"
        );
        assert_eq!(results[5].0, b"[d]");
    }

    /// A script that comes in a library's block runs exactly as written: its quotes,
    /// backslashes, `$`, and trailing newlines are its own, and a library that ends
    /// in a comment or without a newline changes nothing of it.
    #[test]
    fn a_script_in_a_library_block_is_the_script_byte_for_byte() {
        let script =
            "printf '%s|' 'it'\\''s' \"a\\\\b\" '$HOME' \"$k8sup_lib_v\"; echo \"${#k8sup_s}\"\n\n";
        let results = serve_libraries(
            None,
            &[
                ("k8sup_lib_v=lib # a comment, no newline", script, b""),
                ("", "cat", b"stdin after"),
                (
                    "k8sup_lib_w=\"'\"\n",
                    "printf %s \"$k8sup_lib_w\"; cat",
                    b"x'y",
                ),
            ],
        );
        assert_eq!(
            String::from_utf8_lossy(&results[0].0),
            "it's|a\\b|$HOME|lib|0\n",
            "{:?}",
            String::from_utf8_lossy(&results[0].1)
        );
        assert_eq!(results[0].2, 0);
        assert_eq!(results[1].0, b"stdin after");
        assert_eq!(results[2].0, b"'x'y");
    }

    /// Every `k8sup_` variable the server uses is listed, and unset for the requests.
    #[test]
    fn the_server_s_variables_are_listed_and_unset_for_requests() {
        let token = new_token();
        let server = format!(
            "{}{STREAM_RUN}{}",
            server_script(&token, None, None).render(),
            stream_prologue(&token)
        );
        let mut used: Vec<&str> = server
            .match_indices("k8sup_")
            .map(|(at, _)| {
                let rest = &server[at..];
                let len = rest
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(rest.len());
                &rest[..len]
            })
            .collect();
        used.sort_unstable();
        used.dedup();
        let mut listed = SERVER_VARIABLES.to_vec();
        listed.sort_unstable();
        assert_eq!(used, listed);
        let unset = RUN_SCRIPT_SUBSHELL
            .split("unset ")
            .nth(1)
            .and_then(|rest| rest.split(';').next())
            .expect("an unset in front of the script");
        let mut unset: Vec<&str> = unset.split_whitespace().collect();
        unset.sort_unstable();
        assert_eq!(unset, listed);
    }

    #[test]
    fn a_stream_server_takes_a_stdin_it_can_hold_and_refuses_the_rest() {
        let held = request(Mode::Stream, "", "cat", b"it's \xff\n'").expect("holds it");
        assert!(
            held.starts_with(b"k8sup_s='cat'\nk8sup_i='it'\\''s \xff\n'\\'''\n"),
            "{:?}",
            String::from_utf8_lossy(&held)
        );
        assert_eq!(
            request(Mode::Stream, "", "cat", b"a\0b"),
            None,
            "a NUL byte"
        );
        let big = vec![b'x'; MAX_STREAM_STDIN + 1];
        assert_eq!(request(Mode::Stream, "", "cat", &big), None, "too large");
        assert!(request(Mode::Stream, "", "cat", &big[1..]).is_some());
        // A head server takes any stdin after the script.
        assert!(request(Mode::Head, "", "cat", b"a\0b")
            .expect("head")
            .ends_with(b"cata\0b"));
    }

    /// Under dash the server reads no request with a program: a `head` first in its
    /// PATH that fails (and leaves a mark) is never run, and the requests still run.
    /// The file the server holds on fd 9 is still open in the shell that streams.
    #[test]
    fn a_stream_server_runs_no_head_and_keeps_its_held_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("k8sup-stream-test-{}", std::process::id()));
        let bin = dir.join("bin");
        std::fs::create_dir_all(&bin).expect("temp dir");
        let mark = dir.join("head-ran");
        let head = bin.join("head");
        std::fs::write(
            &head,
            format!("#!/bin/sh\necho \"$@\" >> '{}'\nexit 1\n", mark.display()),
        )
        .expect("fake head");
        std::fs::set_permissions(&head, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let held = dir.join("held");
        let token = new_token();
        let held_arg = ShellArg::new(held.to_str().expect("utf-8")).expect("no NUL");
        let path = format!(
            "{}:{}",
            bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut child = Command::new("dash")
            .arg("-c")
            .arg(server_script(&token, Some(&held_arg), None).render())
            .env("PATH", path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("dash runs");
        let mut input = stream_prologue(&token).into_bytes();
        for (script, stdin) in [
            ("echo one; cat", &b"in"[..]),
            ("echo held >&9; echo two", b""),
        ] {
            input.extend(request(Mode::Stream, "", script, stdin).expect("holds it"));
        }
        child
            .stdin
            .take()
            .expect("piped")
            .write_all(&input)
            .expect("requests written");
        let output = child.wait_with_output().expect("exits");
        let out = String::from_utf8_lossy(&output.stdout);
        assert!(out.starts_with(&format!("{token}-stream\n")), "{out}");
        assert_eq!(
            out.matches(&token).count(),
            3,
            "the ready line and two end lines: {out}"
        );
        assert!(out.contains("one\nin\n") && out.contains("two\n"), "{out}");
        assert_eq!(std::fs::read_to_string(&held).expect("held file"), "held\n");
        assert!(
            !mark.exists(),
            "head ran: {:?}",
            std::fs::read_to_string(&mark)
        );
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }

    #[test]
    fn a_script_with_trailing_newlines_and_quotes_runs_as_written() {
        let script = "x='it'\\''s'\nprintf '%s\\n' \"$x\"\n\n\n";
        let results = serve(&[(script, b"")]);
        assert_eq!(results[0].0, b"it's\n");
    }

    #[test]
    fn live_output_never_shows_the_end_line() {
        let token = "k8sup-00112233445566778899aabbccddeeff";
        let mut stream = Stream::default();
        let mut shown = Vec::new();
        let data = format!("{}\n{token} 7\n", "x".repeat(100));
        for chunk in data.as_bytes().chunks(7) {
            shown.extend_from_slice(stream.push(token, chunk, true));
        }
        assert!(stream.ended());
        assert_eq!(stream.status(), Some(7));
        assert_eq!(shown, "x".repeat(100).as_bytes());
        assert_eq!(stream.into_output(), "x".repeat(100).as_bytes());
    }

    #[test]
    fn start_lines_are_recognised() {
        let token = "k8sup-abc";
        assert_eq!(start_state(token, b"k8sup-abc-rea"), Start::Pending);
        assert_eq!(
            start_state(token, b"k8sup-abc-ready\n"),
            Start::Ready(16, Mode::Head)
        );
        assert_eq!(
            start_state(token, b"k8sup-abc-ready\nfirst output"),
            Start::Ready(16, Mode::Head)
        );
        assert_eq!(
            start_state(token, b"k8sup-abc-stream\nfirst output"),
            Start::Ready(17, Mode::Stream)
        );
        assert_eq!(start_state(token, b"k8sup-abc-strea"), Start::Pending);
        assert_eq!(
            start_state(token, b"k8sup-abc-unavailable\n"),
            Start::Unavailable
        );
        assert_eq!(
            start_state(token, b"welcome\nk8sup-abc-ready\n"),
            Start::Ready(24, Mode::Head)
        );
    }

    #[test]
    fn tokens_differ() {
        let a = new_token();
        assert_eq!(a.len(), TOKEN_LEN);
        assert_ne!(a, new_token());
    }
}
