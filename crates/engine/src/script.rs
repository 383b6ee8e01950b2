//! The shell side of the engine: one static prelude of functions, and the framing
//! that lets many probes (or an apply, its state write and the re-probes after it)
//! share one channel.
//!
//! Every script sent is the [`PRELUDE`] (fixed text written here) followed by calls
//! of its functions whose every variable part is a quoted [`ShellArg`]. Output is
//! framed in sections:
//!
//! ```text
//! <nonce> begin <name>
//! key=value lines
//! <nonce> end <name> <exit status>
//! ```
//!
//! The nonce is 128 random bits chosen per script. Nothing a host prints can forge a
//! section: every free-form text (file content, command output, sysctl values) is
//! base64-encoded by the prelude, commands from playbooks run with stdout sent to
//! stderr or /dev/null and fd 3 closed, so the only lines on stdout are the
//! prelude's own. The parser is strict anyway: sections must appear in the order
//! asked for, with matching names.

use std::collections::BTreeMap;

use k8sup_shell::{Script, ShellArg};

/// Shell functions used by probes and applies: `prelude.sh`, then each kind's own
/// (`kinds/<kind>.sh`), put together by the crate's build script. Probes
/// (`k8sup_probe_*`, `k8sup_read_state`) only read: no temp file, no lock, no write.
pub(crate) const PRELUDE: &str = include_str!(concat!(env!("OUT_DIR"), "/prelude.sh"));

/// How a [`FramedScript`] runs: with the prelude as its library, which a session's
/// shell defines once for all of the host's probes and batches (see
/// [`k8sup_ssh::RunOptions::library`]); `stdin` is the script's own.
pub(crate) fn framed_options(stdin: Option<Vec<u8>>) -> k8sup_ssh::RunOptions {
    k8sup_ssh::RunOptions {
        stdin,
        library: Some(PRELUDE),
        ..k8sup_ssh::RunOptions::default()
    }
}

/// Makes a [`ShellArg`] of text known to hold no NUL (checked by the caller, or
/// built here from digits and names).
pub(crate) fn arg(text: impl Into<String>) -> Result<ShellArg, String> {
    ShellArg::new(text).map_err(|e| e.to_string())
}

/// The pieces of one ledger write of an apply script, made by
/// [`crate::state::StateLedger::batch_write`] (see `k8sup_state` in the
/// prelude): the file is `head`, the entries the script recorded so far (each
/// `entry_prefix` of its task, then the result and times), and `tail`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LedgerWrite {
    /// `{"version":1,"tasks":{` and the entries of the tasks not recorded so far.
    pub head: String,
    /// Whether `head` holds an entry (the next one needs a comma).
    pub head_has_entries: bool,
    /// `"<task id>":{"fingerprint":"<fingerprint>","result":"` of the entry recorded now.
    pub entry_prefix: String,
    /// `},"pending_handlers":[...]}`.
    pub tail: String,
    /// `{"task":"<task id>","pending_handlers":[...],"entry":{"fingerprint":"...","result":"`
    /// of the journal line written now.
    pub journal_prefix: String,
}

/// What the call of an apply section writes (see `k8sup_write` in the prelude). No
/// `Debug`: the text may hold a secret.
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum ApplyInput {
    /// It writes nothing: its stdin is `/dev/null`.
    Nothing,
    /// The next this many bytes of the channel's stdin (the rest belongs to later
    /// applies), which `head -c` reads: content that cannot be shell text, or too
    /// long to be put in the script.
    Stdin(usize),
    /// This text, given in the script itself (a file on the host only its owner
    /// reads, never a process's argument) and written by the shell's own `printf`:
    /// no process reads it from stdin.
    Text(ShellArg),
}

/// The longest content put in a script as text (its quoted form counts towards the
/// batch's size, [`crate::engine`]'s `MAX_BATCH_SCRIPT`); longer content goes on stdin.
pub(crate) const MAX_INLINE_TEXT: usize = 16 * 1024;

impl ApplyInput {
    /// How an apply gets `content`: as text in the script when it is UTF-8 without a
    /// NUL and at most [`MAX_INLINE_TEXT`] bytes, else on stdin.
    pub fn for_content(content: Option<&[u8]>) -> ApplyInput {
        let Some(bytes) = content else {
            return ApplyInput::Nothing;
        };
        if bytes.len() <= MAX_INLINE_TEXT {
            if let Some(text) = std::str::from_utf8(bytes)
                .ok()
                .and_then(|t| ShellArg::new(t).ok())
            {
                return ApplyInput::Text(text);
            }
        }
        ApplyInput::Stdin(bytes.len())
    }

    /// The bytes this input adds to the script.
    pub fn script_len(&self) -> usize {
        match self {
            ApplyInput::Text(text) => text.quoted().len(),
            ApplyInput::Nothing | ApplyInput::Stdin(_) => 0,
        }
    }
}

/// A script under construction: the nonce, then sections. It calls the prelude's
/// functions and runs with [`framed_options`].
pub(crate) struct FramedScript {
    script: Script,
    nonce: String,
    expected: Vec<String>,
}

impl FramedScript {
    pub fn new() -> FramedScript {
        FramedScript::with_nonce(crate::encoding::nonce())
    }

    /// A script whose sections are framed with `nonce` (hex digits; tests fix it).
    fn with_nonce(nonce: String) -> FramedScript {
        let script =
            Script::new("k8sup_init").arg(ShellArg::new(nonce.clone()).expect("hex digits"));
        FramedScript {
            script,
            nonce,
            expected: Vec::new(),
        }
    }

    pub fn nonce(&self) -> &str {
        &self.nonce
    }

    /// Reads the state of `hashed` and `read` for the probes that follow, all at once
    /// (see `k8sup_prefetch`): the files of `read` are read whole by their probes,
    /// so their hashes are not taken (but for one in both lists). Only for scripts
    /// that change nothing.
    pub fn prefetch<'a>(
        mut self,
        hashed: impl IntoIterator<Item = &'a str>,
        read: impl IntoIterator<Item = &'a str>,
    ) -> Self {
        let mut hashed: Vec<&str> = hashed.into_iter().collect();
        hashed.sort_unstable();
        hashed.dedup();
        let mut read: Vec<&str> = read
            .into_iter()
            .filter(|p| hashed.binary_search(p).is_err())
            .collect();
        read.sort_unstable();
        read.dedup();
        let args = |paths: Vec<&str>| -> Vec<ShellArg> {
            paths
                .into_iter()
                .filter_map(|p| ShellArg::new(p).ok())
                .collect()
        };
        let (hashed, read) = (args(hashed), args(read));
        if !hashed.is_empty() || !read.is_empty() {
            self.script = self
                .script
                .code("; k8sup_prefetch")
                .args(read)
                .code("--")
                .args(hashed)
                .code("</dev/null >/dev/null 2>&1");
        }
        self
    }

    /// Adds a section `name` whose body is the output of `call` (a prelude function
    /// invocation, its status the section's status).
    pub fn section(mut self, name: &str, call: Script) -> Self {
        let name_arg = ShellArg::new(name).expect("section names are ours");
        self.script = self
            .script
            .code("; k8sup_begin")
            .arg(name_arg.clone())
            .then(";", call)
            .code("; k8sup_end")
            .arg(name_arg)
            .code("$?");
        self.expected.push(name.to_string());
        self
    }

    /// Adds the apply of a task as section `name`: `call`'s stdout goes to stderr, its
    /// fd 3 becomes the section body; the start and end times are kept for the state
    /// write. `input` is the content the call writes (see [`ApplyInput`]).
    pub fn apply_section(mut self, name: &str, call: Script, input: ApplyInput) -> Self {
        let name_arg = ShellArg::new(name).expect("section names are ours");
        self.script = self
            .script
            .code("; k8sup_now; k8sup_apply_t0=$k8sup_now; k8sup_begin")
            .arg(name_arg.clone());
        let text = matches!(input, ApplyInput::Text(_));
        self.script = match input {
            ApplyInput::Stdin(len) => self
                .script
                .code("; k8sup_len")
                .arg(ShellArg::new(len.to_string()).expect("digits"))
                .code("; {")
                .then("", call)
                .code("; } 3>&1 >&2"),
            ApplyInput::Text(content) => self
                .script
                .code("; k8sup_input")
                .arg(content)
                .code("; {")
                .then("", call)
                .code("; } </dev/null 3>&1 >&2"),
            ApplyInput::Nothing => self
                .script
                .code("; {")
                .then("", call)
                .code("; } </dev/null 3>&1 >&2"),
        };
        self.script = self.script.code("; k8sup_apply_rc=$?;");
        if text {
            // Not left for a later write, whatever the call did with it.
            self.script = self.script.code("k8sup_has_text=;");
        }
        self.script = self
            .script
            .code("K8SUP_LEN=; k8sup_now; k8sup_apply_t1=$k8sup_now; k8sup_end")
            .arg(name_arg)
            .code("$k8sup_apply_rc");
        self.expected.push(name.to_string());
        self
    }

    /// Adds the atomic state write `name` after an apply section: the whole ledger,
    /// with the entries this script recorded so far (see
    /// [`crate::state::StateLedger::batch_write`]).
    pub fn state_section(
        mut self,
        name: &str,
        state_path: ShellArg,
        write: &LedgerWrite,
    ) -> Result<Self, String> {
        let name_arg = ShellArg::new(name).expect("section names are ours");
        let flag = if write.head_has_entries { "1" } else { "0" };
        self.script = self
            .script
            .code("; k8sup_begin")
            .arg(name_arg.clone())
            .code("; k8sup_state")
            .arg(state_path)
            .arg(arg(write.head.clone())?)
            .arg(arg(write.tail.clone())?)
            .arg(arg(write.entry_prefix.clone())?)
            .arg(ShellArg::new(flag).expect("a digit"))
            .arg(arg(write.journal_prefix.clone())?)
            .code(r#""$k8sup_apply_rc" "$k8sup_apply_t0" "$k8sup_apply_t1"; k8sup_end"#)
            .arg(name_arg)
            .code("$?");
        self.expected.push(name.to_string());
        Ok(self)
    }

    /// Stops the script here, the ledger rewritten, unless the apply succeeded.
    pub fn stop_unless_applied(mut self, state_path: ShellArg) -> Self {
        self.script = self
            .script
            .code(r#"; [ "$k8sup_apply_rc" = 0 ] || { k8sup_compact"#)
            .arg(state_path)
            .code("; exit 0; }");
        self
    }

    /// Starts a batch of steps. Its parts run while every guard holds; the first guard
    /// that fails stops them and moves the re-probe's start (`from`, by default the
    /// step after the batch) to its step.
    ///
    /// `clock_ms` is the controller's clock (ms since the epoch) as it sends the
    /// batch: the host times its tasks from it and its own uptime since (see
    /// `k8sup_clock`), without a `date`, and every host's times are on one clock.
    pub fn begin_batch(mut self, from: usize, clock_ms: u64) -> Self {
        self.script = self
            .script
            .code("; k8sup_clock")
            .arg(ShellArg::new(clock_ms.to_string()).expect("digits"))
            .code("; k8sup_batch")
            .arg(ShellArg::new(from.to_string()).expect("digits"));
        self
    }

    /// Stages a write of the batch (`call` is a `k8sup_stage`, see
    /// [`crate::kinds::Change::stage_call`]): nothing is printed, nothing fails.
    pub fn stage(mut self, call: Script) -> Self {
        self.script = self
            .script
            .then(";", call)
            .code("</dev/null >/dev/null 2>&1");
        self
    }

    /// Section `g<step>`, status 0 when the probe of step `step` would still print
    /// what was judged: `guard`'s check when it has one, else the probe run again (in
    /// a subshell) and its output compared with `guard`'s digest.
    pub fn guard(mut self, step: usize, probe: Script, guard: &Guard) -> Self {
        let name = format!("g{step}");
        let name_arg = ShellArg::new(name.clone()).expect("section names are ours");
        let step_arg = ShellArg::new(step.to_string()).expect("digits");
        self.script = self
            .script
            .code("; if k8sup_going; then k8sup_begin")
            .arg(name_arg.clone());
        self.script = match &guard.check {
            Some(check) => self
                .script
                .code(";")
                .then("", check.clone())
                .code("</dev/null; k8sup_held $?")
                .arg(step_arg),
            None => self
                .script
                .code("; k8sup_o=$(")
                .then("", probe)
                .code("</dev/null); k8sup_guard")
                .arg(ShellArg::new(guard.digest.clone()).expect("guard_digest has no NUL"))
                .code(r#""$k8sup_o" "$?""#)
                .arg(step_arg),
        };
        self.script = self.script.code("; k8sup_end").arg(name_arg).code("$?; fi");
        self.expected.push(name);
        self
    }

    /// Adds what `body` adds, run only while every guard of the batch held so far.
    /// The condition opens and closes here, around `body`: it cannot be left open.
    pub fn while_going<E>(
        mut self,
        body: impl FnOnce(FramedScript) -> Result<FramedScript, E>,
    ) -> Result<Self, E> {
        self.script = self.script.code("; if k8sup_going; then :");
        let mut inner = body(self)?;
        inner.script = inner.script.code("; fi");
        Ok(inner)
    }

    /// Leaves what this script records in the ledger's journal, made durable, instead
    /// of rewriting the ledger at each compaction (see `k8sup_compact`): for a
    /// journal still small, one `sync` instead of a temp file, a `sync` and a rename.
    pub fn lazy_compaction(mut self) -> Self {
        self.script = self.script.code("; k8sup_cp_lazy=1");
        self
    }

    /// Rewrites the ledger at `state_path` with what this script recorded in its journal
    /// (unless [`FramedScript::lazy_compaction`]).
    pub fn compact_state(mut self, state_path: ShellArg) -> Self {
        self.script = self.script.code("; k8sup_compact").arg(state_path);
        self
    }

    /// Adds section `from`: where the re-probe starts (field `from`).
    pub fn restart_section(mut self) -> Self {
        self.script = self
            .script
            .code(r#"; k8sup_begin from; echo "from=$k8sup_from"; k8sup_end from 0"#);
        self.expected.push("from".into());
        self
    }

    /// Adds the probe of step `step` (section `<step>`), run only when the re-probe
    /// starts at or before it.
    pub fn reprobe_section(mut self, step: usize, probe: Script) -> Self {
        let name_arg = ShellArg::new(step.to_string()).expect("digits");
        self.script = self
            .script
            .code("; if k8sup_reach")
            .arg(name_arg.clone())
            .code("; then k8sup_begin")
            .arg(name_arg.clone())
            .then(";", probe)
            .code("; k8sup_end")
            .arg(name_arg)
            .code("$?; fi");
        self.expected.push(step.to_string());
        self
    }

    pub fn finish(self) -> (Script, Framing) {
        (
            self.script,
            Framing {
                nonce: self.nonce,
                expected: self.expected,
            },
        )
    }
}

/// What a [`FramedScript`]'s output must look like.
#[derive(Debug, Clone)]
pub(crate) struct Framing {
    nonce: String,
    expected: Vec<String>,
}

/// One section of output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    pub name: String,
    pub status: i32,
    pub body: String,
}

impl Section {
    /// The `key=value` lines of the body.
    pub fn fields(&self) -> BTreeMap<String, String> {
        self.body
            .lines()
            .filter_map(|line| line.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }
}

impl Framing {
    /// Splits `stdout` into the sections asked for, in order. Sections skipped (a
    /// guard failed) or missing at the end (the script stopped early) are simply
    /// absent; a section out of order or twice, or anything out of frame, is an error.
    pub fn parse(&self, stdout: &str) -> Result<Vec<Section>, String> {
        let begin_prefix = format!("{} begin ", self.nonce);
        let end_prefix = format!("{} end ", self.nonce);
        let mut sections = Vec::new();
        let mut next = 0;
        let mut current: Option<(String, Vec<&str>)> = None;
        for line in stdout.split('\n') {
            if let Some(name) = line.strip_prefix(&begin_prefix) {
                if let Some((open, _)) = &current {
                    return Err(format!("section {name:?} began inside section {open:?}"));
                }
                // Sections come in the order asked for; a guard that fails skips some.
                let Some(offset) = self.expected[next..].iter().position(|e| e == name) else {
                    return Err(format!(
                        "unexpected section {name:?} (expected one of {:?})",
                        &self.expected[next..]
                    ));
                };
                next += offset + 1;
                current = Some((name.to_string(), Vec::new()));
            } else if let Some(rest) = line.strip_prefix(&end_prefix) {
                let Some((open, mut body)) = current.take() else {
                    return Err(format!("section end {rest:?} outside any section"));
                };
                let (name, status) = rest
                    .rsplit_once(' ')
                    .ok_or_else(|| format!("malformed section end {rest:?}"))?;
                if name != open {
                    return Err(format!("section {open:?} ended as {name:?}"));
                }
                let status = status
                    .parse::<i32>()
                    .map_err(|_| format!("section {name:?} has status {status:?}"))?;
                // k8sup_end prints a newline first: the last body line is always empty.
                if body.last() == Some(&"") {
                    body.pop();
                }
                sections.push(Section {
                    name: open,
                    status,
                    body: body.join("\n"),
                });
            } else if let Some((_, body)) = &mut current {
                body.push(line);
            } else if !line.is_empty() {
                return Err(format!(
                    "output outside any section: {:?}",
                    truncate(line, 80)
                ));
            }
        }
        if let Some((open, _)) = current {
            return Err(format!("section {open:?} never ended (output cut off)"));
        }
        Ok(sections)
    }
}

fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_string(),
    }
}

/// How a batch checks, just before a step, that the step's probe would still print
/// what was judged.
#[derive(Debug, Clone)]
pub(crate) struct Guard {
    /// What `k8sup_guard` compares the probe's output with ([`guard_digest`]).
    pub digest: String,
    /// A check that holds exactly when the probe would print the same, run in the
    /// script's shell (no subshell to capture an output); see
    /// [`crate::kinds::Kind::guard_check`].
    pub check: Option<Script>,
}

/// What `k8sup_guard` compares a step's probe output with: the output without its
/// trailing newlines (as `$(...)` keeps it), `|`, and the probe's exit status; as
/// text (`t:`) when short, which the shell compares without a process, else as its
/// sha256 (`d:`).
pub(crate) fn guard_digest(section: &Section) -> String {
    let text = format!("{}|{}", section.body.trim_end_matches('\n'), section.status);
    if text.len() <= 1024 && !text.contains('\0') {
        format!("t:{text}")
    } else {
        format!("d:{}", crate::encoding::sha256_hex(text.as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encoding::decode_b64;

    /// A batch as the engine builds one (a guard, an apply with its ledger write, the
    /// re-probe), with a fixed nonce: what the host is sent after the prelude, one
    /// statement per line for reading.
    #[test]
    fn a_batch_script_is_as_pinned() {
        let pending = [crate::state::PendingEntry {
            task_id: "prepare/app-config",
            fingerprint: "v2:0123",
            notify: &[],
            handler_ran: None,
        }];
        let write = crate::state::StateLedger::default().batch_write(&pending);
        let path = arg("/var/lib/k8sup/state.json").unwrap();
        let probe = Script::new("k8sup_probe_file").arg(arg("/etc/app.conf").unwrap());
        let (script, framing) = FramedScript::with_nonce("00112233445566778899aabbccddeeff".into())
            .begin_batch(3, 1_764_000_000_000)
            .guard(
                1,
                probe.clone(),
                &Guard {
                    digest: "t:kind=absent|0".into(),
                    check: None,
                },
            )
            .while_going(|script| {
                Ok::<_, String>(
                    script
                        .apply_section(
                            "a1",
                            Script::new("k8sup_write")
                                .arg(arg("/etc/app.conf").unwrap())
                                .arg(arg("0644").unwrap()),
                            ApplyInput::Text(arg("new content\n").unwrap()),
                        )
                        .state_section("s1", path.clone(), &write)?
                        .stop_unless_applied(path.clone()),
                )
            })
            .unwrap()
            .compact_state(path)
            .restart_section()
            .reprobe_section(2, probe)
            .finish();
        insta::assert_snapshot!(script.render().replace("; ", ";\n"));
        assert_eq!(framing.expected, ["g1", "a1", "s1", "from", "2"]);
    }

    /// A framed script as a shell that has the prelude runs it.
    fn with_prelude(script: &Script) -> String {
        format!("{PRELUDE}\n{}", script.render())
    }

    fn framing(nonce: &str, expected: &[&str]) -> Framing {
        Framing {
            nonce: nonce.into(),
            expected: expected.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn sections_parse_in_order_with_status() {
        let f = framing("N1", &["0", "1"]);
        let out = "N1 begin 0\nkind=absent\n\nN1 end 0 0\nN1 begin 1\n\nN1 end 1 3\n";
        let s = f.parse(out).unwrap();
        assert_eq!(s[0].body, "kind=absent");
        assert_eq!(s[0].fields()["kind"], "absent");
        assert_eq!((s[1].status, s[1].body.as_str()), (3, ""));
    }

    #[test]
    fn marker_like_text_from_a_host_is_data_or_an_error() {
        // A line with another nonce is body text.
        let f = framing("REAL", &["0"]);
        let out = "REAL begin 0\nFAKE end 0 0\nFAKE begin 1\n\nREAL end 0 0\n";
        let s = f.parse(out).unwrap();
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].body, "FAKE end 0 0\nFAKE begin 1");
        // Even a forged marker with the real nonce cannot add or reorder sections.
        let forged = "REAL begin 0\nREAL end 0 0\nREAL begin 0\n\nREAL end 0 0\n";
        assert!(f.parse(forged).is_err());
        // A section skipped by a failed guard is absent; the order still holds.
        let f3 = framing("REAL", &["g1", "a1", "from", "1"]);
        let skipped =
            "REAL begin g1\n\nREAL end g1 1\nREAL begin from\nfrom=1\n\nREAL end from 0\n";
        let s = f3.parse(skipped).unwrap();
        assert_eq!(s.len(), 2);
        assert!(f3
            .parse("REAL begin from\n\nREAL end from 0\nREAL begin a1\n\nREAL end a1 0\n")
            .is_err());
        let out_of_frame = "hello\nREAL begin 0\n\nREAL end 0 0\n";
        assert!(f.parse(out_of_frame).is_err());
        assert!(f.parse("REAL begin 0\npartial").is_err());
    }

    #[test]
    fn a_framed_script_runs_in_sh_and_parses_back() {
        let (script, framing) = FramedScript::new()
            .section(
                "0",
                Script::new("printf 'x=%s\\n'").arg(arg("a b").unwrap()),
            )
            .section(
                "1",
                Script::new("k8sup_probe_file")
                    .arg(arg("/nonexistent/k8sup").unwrap())
                    .arg(arg("").unwrap()),
            )
            .section("2", Script::new("printf '%s\\n' 'NONCE end 2 0'; false"))
            .finish();
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(with_prelude(&script))
            .output()
            .unwrap();
        let sections = framing
            .parse(&String::from_utf8_lossy(&out.stdout))
            .unwrap();
        assert_eq!(sections.len(), 3);
        assert_eq!(sections[0].fields()["x"], "a b");
        assert_eq!(sections[1].fields()["kind"], "absent");
        assert_eq!(sections[2].status, 1);
        assert_eq!(sections[2].body, "NONCE end 2 0");
    }

    /// Runs a framed script under `shell` with `env` and parses its sections.
    fn run_framed(
        shell: &str,
        script: &Script,
        framing: &Framing,
        env: &[(&str, &std::path::Path)],
    ) -> Vec<Section> {
        let out = std::process::Command::new(shell)
            .arg("-c")
            .arg(with_prelude(script))
            .envs(env.iter().copied())
            .output()
            .unwrap();
        framing
            .parse(&String::from_utf8_lossy(&out.stdout))
            .unwrap()
    }

    /// Modules, sysctls and the hostname are read from the kernel's files by the shell
    /// itself, under sh and bash alike, with the tools only where a file is missing.
    #[test]
    fn kernel_state_is_read_from_proc_without_processes() {
        let dir = tempfile::tempdir().unwrap();
        let proc = dir.path().join("proc");
        std::fs::create_dir_all(proc.join("sys/net/ipv4")).unwrap();
        std::fs::create_dir_all(proc.join("sys/kernel")).unwrap();
        std::fs::create_dir_all(proc.join("sys/net/ipv4/conf/eth0.5")).unwrap();
        std::fs::write(proc.join("sys/net/ipv4/ip_forward"), "1\n").unwrap();
        std::fs::write(
            proc.join("sys/net/ipv4/ip_local_port_range"),
            "32768\t60999\n",
        )
        .unwrap();
        std::fs::write(proc.join("sys/net/ipv4/conf/eth0.5/forwarding"), "0\n").unwrap();
        std::fs::write(proc.join("sys/kernel/hostname"), "node-1\n").unwrap();
        std::fs::write(
            proc.join("modules"),
            "overlay 151552 0 - Live 0x0\nbr_netfilter 32768 0 - Live 0x0\n",
        )
        .unwrap();
        let (script, framing) = FramedScript::new()
            .section("0", Script::new("k8sup_probe_module br_netfilter"))
            .section("1", Script::new("k8sup_probe_module br_netfilte"))
            .section(
                "2",
                Script::new(
                    "k8sup_probe_sysctl /nonexistent/k8sup '' net.ipv4.ip_forward \
                     net.ipv4.ip_local_port_range net/ipv4/conf/eth0.5/forwarding \
                     net.bridge.bridge-nf-call-iptables",
                ),
            )
            .section("3", Script::new("k8sup_probe_hostname"))
            .finish();
        // Only base64 and tr (for values that are not plain text) can be found: no
        // lsmod or hostname, and a sysctl that must not be asked (it answers 9).
        let bin = dir.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        for tool in ["base64", "tr"] {
            std::os::unix::fs::symlink(format!("/usr/bin/{tool}"), bin.join(tool)).unwrap();
        }
        crate::testing::fake_program(&bin, "sysctl", "#!/bin/sh\necho 9\n");
        for shell in ["/bin/sh", "/bin/bash"] {
            let sections = run_framed(
                shell,
                &script,
                &framing,
                &[("K8SUP_PROC", proc.as_path()), ("PATH", bin.as_path())],
            );
            assert_eq!(sections[0].fields()["loaded"], "1", "{shell}");
            assert_eq!(sections[1].fields()["loaded"], "0", "{shell}");
            let sysctl = sections[2].fields();
            assert_eq!(sysctl["text.net.ipv4.ip_forward"], "1", "{shell}");
            assert_eq!(
                decode_b64(&sysctl["value.net.ipv4.ip_local_port_range"]).unwrap(),
                b"32768\t60999",
                "{shell}"
            );
            assert_eq!(
                sysctl["text.net/ipv4/conf/eth0.5/forwarding"], "0",
                "{shell}"
            );
            // No file under /proc/sys: no value, as sysctl would say.
            assert_eq!(
                sysctl["text.net.bridge.bridge-nf-call-iptables"], "",
                "{shell}"
            );
            assert_eq!(sections[3].fields()["current_text"], "node-1", "{shell}");
        }
    }

    /// A read-only script reads all its files with one stat and one sha256sum, and
    /// each probe reports exactly what it reports on its own.
    #[test]
    fn prefetched_files_probe_as_they_do_alone() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("a.conf"), "a\n").unwrap();
        std::fs::write(d.join("b conf"), "b").unwrap();
        std::fs::write(d.join("c.conf"), "c'\n").unwrap();
        std::fs::write(d.join("new\nline"), "n").unwrap();
        std::fs::create_dir(d.join("sub")).unwrap();
        let log = d.join("calls");
        let bin = d.join("bin");
        std::fs::create_dir(&bin).unwrap();
        for tool in ["stat", "sha256sum", "base64", "tr", "wc"] {
            let wrapper = format!(
                "#!/bin/sh\necho {tool} >> '{}'\nexec /usr/bin/{tool} \"$@\"\n",
                log.display()
            );
            crate::testing::fake_program(&bin, tool, &wrapper);
        }
        // Each file with its probe's third word: read whole ("content") or hashed.
        let paths: Vec<(String, &str)> = [
            ("a.conf", ""),
            ("b conf", "content"),
            ("c.conf", "content"),
            ("new\nline", ""),
            ("sub", ""),
            ("absent", ""),
        ]
        .iter()
        .map(|(n, mode)| (d.join(n).display().to_string(), *mode))
        .collect();
        let probes = |prefetch: bool| {
            let mut framed = FramedScript::new();
            if prefetch {
                let of = |read: bool| {
                    paths
                        .iter()
                        .filter(move |(_, mode)| (*mode == "content") == read)
                        .map(|(p, _)| p.as_str())
                };
                framed = framed.prefetch(of(false), of(true));
            }
            for (i, (path, mode)) in paths.iter().enumerate() {
                framed = framed.section(
                    &i.to_string(),
                    Script::new("k8sup_probe_file")
                        .arg(arg(path.as_str()).unwrap())
                        .arg(arg("").unwrap())
                        .arg(arg(*mode).unwrap()),
                );
            }
            framed.finish()
        };
        for shell in ["/bin/sh", "/bin/bash"] {
            let mut bodies = Vec::new();
            for prefetch in [false, true] {
                let _ = std::fs::remove_file(&log);
                let (script, framing) = probes(prefetch);
                let sections = run_framed(shell, &script, &framing, &[("PATH", bin.as_path())]);
                bodies.push(
                    sections
                        .iter()
                        .map(|s| (s.status, s.body.clone()))
                        .collect::<Vec<_>>(),
                );
                let calls = std::fs::read_to_string(&log).unwrap_or_default();
                let count = |tool: &str| calls.lines().filter(|l| *l == tool).count();
                if prefetch {
                    // One stat for the three plain files and one sha256sum for the
                    // one hashed; the name with a newline on its own.
                    assert_eq!((count("stat"), count("sha256sum")), (2, 2), "{shell}");
                } else {
                    // The files read whole are never hashed on the host.
                    assert_eq!((count("stat"), count("sha256sum")), (4, 2), "{shell}");
                }
                // The size that decides whether the content is sent comes with the stat.
                assert_eq!(count("wc"), 0, "{shell}");
            }
            assert_eq!(bodies[0], bodies[1], "{shell}");
            assert!(bodies[0][0].1.contains("sha256="), "{:?}", bodies[0]);
            for read in [1, 2] {
                let body = &bodies[0][read].1;
                assert!(!body.contains("sha256="), "{body}");
                assert!(body.contains("stat="), "{body}");
            }
            let content = bodies[0][2].1.split("content=").nth(1).unwrap().trim();
            assert_eq!(decode_b64(content).unwrap(), b"c'\n");
            assert!(bodies[0][4].1.contains("kind=dir"), "{:?}", bodies[0]);
            assert!(bodies[0][5].1.contains("kind=absent"), "{:?}", bodies[0]);
        }
    }

    /// A file over 1 MiB is reported by its size (from the stat) and its hash, not
    /// sent, with or without the prefetch, hashed or read whole.
    #[test]
    fn large_files_are_reported_by_size() {
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big");
        let bytes = vec![b'x'; 1024 * 1024 + 1];
        std::fs::write(&big, &bytes).unwrap();
        let path = big.display().to_string();
        for (prefetch, mode) in [
            (false, ""),
            (true, ""),
            (false, "content"),
            (true, "content"),
        ] {
            let mut framed = FramedScript::new();
            if prefetch {
                let (hashed, read) = if mode.is_empty() {
                    (vec![path.as_str()], vec![])
                } else {
                    (vec![], vec![path.as_str()])
                };
                framed = framed.prefetch(hashed, read);
            }
            let (script, framing) = framed
                .section(
                    "0",
                    Script::new("k8sup_probe_file")
                        .arg(arg(path.as_str()).unwrap())
                        .arg(arg("").unwrap())
                        .arg(arg(mode).unwrap()),
                )
                .finish();
            let sections = run_framed("/bin/sh", &script, &framing, &[]);
            let fields = sections[0].fields();
            let case = format!("prefetch {prefetch}, mode {mode:?}");
            assert_eq!(fields["content_too_large"], "1048577", "{case}");
            assert!(!fields.contains_key("content"), "{case}");
            assert_eq!(
                fields["sha256"],
                crate::encoding::sha256_hex(&bytes),
                "{case}"
            );
            assert_eq!(fields["stat"].split(' ').count(), 3, "{:?}", fields["stat"]);
        }
    }

    /// Writes replace the file atomically with exactly the mode asked for, whatever
    /// the shell's umask, and leave no temporary file behind.
    #[test]
    fn writes_set_the_mode_asked_for() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        for (mode, name) in [
            ("0644", "a"),
            ("0640", "b"),
            ("0600", "c"),
            ("0755", "d"),
            ("0444", "e"),
        ] {
            let path = dir.path().join(name);
            std::fs::write(&path, "old").unwrap();
            let script = format!(
                "{PRELUDE}\numask 0002; printf new | k8sup_write {} {mode} '' '' ''",
                arg(path.display().to_string()).unwrap().quoted()
            );
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(script)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert_eq!(std::fs::read_to_string(&path).unwrap(), "new");
            let got = std::fs::metadata(&path).unwrap().permissions().mode() & 0o7777;
            assert_eq!(format!("{got:04o}"), mode, "{name}");
        }
        let names = crate::testing::sorted_names(dir.path());
        assert_eq!(names.len(), 5, "no temporary file left: {names:?}");
    }

    /// A write makes its temp file in the shell itself, and leaves the shell's umask
    /// and noclobber as they were; a temp file's name already taken (by a staged
    /// write, or left by someone) is passed over. Under sh and bash.
    #[test]
    fn writes_leave_the_shells_umask_and_noclobber_as_they_were() {
        for shell in ["/bin/sh", "bash"] {
            for noclobber in ["", "set -C; "] {
                let dir = tempfile::tempdir().unwrap();
                let (a, b) = (dir.path().join("a"), dir.path().join("b"));
                let q = |p: &std::path::Path| arg(p.display().to_string()).unwrap().quoted();
                let script = format!(
                    "{PRELUDE}\numask 0027; {noclobber}k8sup_init x; \
                     : > {taken}/.k8sup.$$.1; \
                     printf one | k8sup_write {a} 0644 '' '' '' && \
                     printf two | k8sup_write {b} 0600 '' '' '' && \
                     umask && case $- in *C*) echo C;; *) echo no-C;; esac",
                    taken = q(dir.path()),
                    a = q(&a),
                    b = q(&b),
                );
                let out = std::process::Command::new(shell)
                    .arg("-c")
                    .arg(&script)
                    .output()
                    .unwrap();
                let case = format!("{shell} {noclobber:?}");
                assert!(
                    out.status.success(),
                    "{case}: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                let want = if noclobber.is_empty() {
                    "0027\nno-C\n"
                } else {
                    "0027\nC\n"
                };
                assert_eq!(String::from_utf8_lossy(&out.stdout), want, "{case}");
                assert_eq!(std::fs::read_to_string(&a).unwrap(), "one", "{case}");
                assert_eq!(std::fs::read_to_string(&b).unwrap(), "two", "{case}");
                use std::os::unix::fs::PermissionsExt;
                let mode = |p: &std::path::Path| {
                    std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
                };
                assert_eq!((mode(&a), mode(&b)), (0o644, 0o600), "{case}");
                let names = crate::testing::sorted_names(dir.path());
                assert_eq!(names.len(), 3, "{case}: the taken name and a, b: {names:?}");
            }
        }
    }

    /// A batch's writes of text are staged at its start and made durable by ONE sync,
    /// at the first of them; each rename stays in its task's place. A write whose
    /// directory is not there yet (not made early) is staged in the directory above
    /// it, but under SELinux, where it syncs on its own; the temp files of staged
    /// writes that did not run go at the end. Under sh and bash.
    #[test]
    fn staged_writes_share_one_sync_and_keep_their_order() {
        use std::os::unix::fs::PermissionsExt;
        for (shell, selinux) in [("/bin/sh", false), ("bash", false), ("/bin/sh", true)] {
            let dir = tempfile::tempdir().unwrap();
            let bin = dir.path().join("bin");
            std::fs::create_dir(&bin).unwrap();
            let log = dir.path().join("sync.log");
            crate::testing::fake_program(
                &bin,
                "sync",
                &format!("#!/bin/sh\necho \"$*\" >> '{}'\n", log.display()),
            );
            let etc = dir.path().join("etc");
            std::fs::create_dir(&etc).unwrap();
            std::fs::write(etc.join("b"), "old").unwrap();
            let sys = tempfile::tempdir().unwrap();
            if selinux {
                std::fs::create_dir_all(sys.path().join("fs/selinux")).unwrap();
                std::fs::write(sys.path().join("fs/selinux/enforce"), "1").unwrap();
            }
            let path = |p: std::path::PathBuf| arg(p.display().to_string()).unwrap();
            let (a, b, c, d) = (
                path(etc.join("a")),
                path(etc.join("b")),
                path(dir.path().join("new/c")),
                path(etc.join("d")),
            );
            let stage = |p: &ShellArg, mode: &str, text: &str| {
                Script::new("k8sup_stage")
                    .arg(p.clone())
                    .arg(arg(mode).unwrap())
                    .arg(arg("").unwrap())
                    .arg(arg("").unwrap())
                    .arg(arg(text).unwrap())
            };
            let write = |p: &ShellArg, mode: &str| {
                Script::new("k8sup_write")
                    .arg(p.clone())
                    .arg(arg(mode).unwrap())
                    .arg(arg("").unwrap())
                    .arg(arg("").unwrap())
                    .arg(arg("").unwrap())
            };
            let text = |t: &str| ApplyInput::Text(arg(t).unwrap());
            let (script, framing) = FramedScript::new()
                .stage(stage(&a, "0644", "A\n"))
                .stage(stage(&b, "0600", "B"))
                .stage(stage(&c, "0644", "C"))
                .stage(stage(&d, "0644", "D"))
                .apply_section("a1", write(&a, "0644"), text("A\n"))
                .apply_section(
                    "a2",
                    Script::new("[ -f")
                        .arg(a.clone())
                        .code("] && [ \"$(cat")
                        .arg(b.clone())
                        .code(")\" = old ] && echo in-order >&3"),
                    ApplyInput::Nothing,
                )
                .apply_section("a3", write(&b, "0600"), text("B"))
                .apply_section("a4", write(&c, "0644"), text("C"))
                .compact_state(path(dir.path().join("state.json")))
                .finish();
            let path_env = format!(
                "{}:{}",
                bin.display(),
                std::env::var("PATH").unwrap_or_default()
            );
            let sections = run_framed(
                shell,
                &script,
                &framing,
                &[
                    ("PATH", std::path::Path::new(&path_env)),
                    ("K8SUP_SYS", sys.path()),
                ],
            );
            let statuses: Vec<i32> = sections.iter().map(|s| s.status).collect();
            assert_eq!(statuses, [0, 0, 0, 0], "{shell}: {sections:?}");
            assert_eq!(sections[1].body, "in-order", "{shell}");
            assert_eq!(std::fs::read_to_string(etc.join("a")).unwrap(), "A\n");
            assert_eq!(std::fs::read_to_string(etc.join("b")).unwrap(), "B");
            let mode = std::fs::metadata(etc.join("b"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o7777, 0o600, "{shell}");
            assert_eq!(
                std::fs::read_to_string(dir.path().join("new/c")).unwrap(),
                "C"
            );
            let syncs: Vec<usize> = std::fs::read_to_string(&log)
                .unwrap()
                .lines()
                .map(|l| l.split(' ').filter(|w| w.contains("/.k8sup.")).count())
                .collect();
            if selinux {
                assert_eq!(syncs, [3, 1], "{shell}: one sync for a, b and d, one for c");
            } else {
                assert_eq!(syncs, [4], "{shell}: one sync for a, b, c and d");
            }
            let left = crate::testing::sorted_names(&etc);
            assert_eq!(
                left,
                ["a", "b"],
                "{shell}: no temp file left, d not written"
            );
            assert_eq!(
                crate::testing::sorted_names(dir.path()),
                ["bin", "etc", "new", "sync.log"],
                "{shell}: no temp file left above new/"
            );
        }
    }

    /// Text content is put in the script and written by the shell's printf; content
    /// that cannot be shell text (a NUL, not UTF-8) or is too long is read from stdin.
    /// Either way the file gets exactly the bytes, and an apply reads only its own.
    #[test]
    fn content_is_written_from_the_script_or_from_stdin_exactly() {
        let text = "it's \"quoted\" $HOME `x` \\ é\n\n\n".to_string();
        let long = "x".repeat(MAX_INLINE_TEXT + 1);
        let binary = b"\0\x01bin\n\xff".to_vec();
        let not_utf8 = b"caf\xe9\n".to_vec();
        assert!(matches!(
            ApplyInput::for_content(Some(text.as_bytes())),
            ApplyInput::Text(_)
        ));
        for bytes in [long.as_bytes(), &binary, &not_utf8] {
            assert!(matches!(
                ApplyInput::for_content(Some(bytes)),
                ApplyInput::Stdin(n) if n == bytes.len()
            ));
        }
        assert!(ApplyInput::for_content(None) == ApplyInput::Nothing);

        let dir = tempfile::tempdir().unwrap();
        let contents: [&[u8]; 4] = [text.as_bytes(), long.as_bytes(), &binary, &not_utf8];
        let mut framed = FramedScript::new();
        let mut stdin = Vec::new();
        for (i, content) in contents.iter().enumerate() {
            let path = dir.path().join(format!("f{i}"));
            let input = ApplyInput::for_content(Some(content));
            if let ApplyInput::Stdin(_) = input {
                stdin.extend_from_slice(content);
            }
            let call = Script::new("k8sup_write")
                .arg(arg(path.display().to_string()).unwrap())
                .arg(arg("0644").unwrap());
            framed = framed.apply_section(&format!("a{i}"), call, input);
        }
        let (script, framing) = framed.finish();
        let rendered = script.render();
        assert!(
            rendered.contains("k8sup_input 'it'"),
            "the text is in the script"
        );
        assert!(!rendered.contains(&long), "long content is not");
        let mut child = std::process::Command::new("sh")
            .arg("-c")
            .arg(with_prelude(&script))
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child.stdin.take().unwrap().write_all(&stdin).unwrap();
        let out = child.wait_with_output().unwrap();
        let sections = framing
            .parse(&String::from_utf8_lossy(&out.stdout))
            .unwrap();
        assert_eq!(sections.len(), 4);
        for (i, content) in contents.iter().enumerate() {
            assert_eq!(sections[i].status, 0, "a{i}");
            assert_eq!(
                std::fs::read(dir.path().join(format!("f{i}"))).unwrap(),
                *content,
                "f{i}"
            );
        }
    }

    /// A batch's clock is the controller's time it was sent with, moved on by the
    /// host's /proc/uptime: in dash and in bash (whose EPOCHREALTIME it is preferred
    /// to, so that every host's times are on one clock), and without a `date`.
    #[test]
    fn a_batch_clock_starts_at_the_controllers_time() {
        let dir = tempfile::tempdir().unwrap();
        let proc = dir.path().join("proc");
        let bin = dir.path().join("bin");
        std::fs::create_dir_all(&proc).unwrap();
        std::fs::create_dir_all(&bin).unwrap();
        let marker = dir.path().join("date-ran");
        crate::testing::fake_program(
            &bin,
            "date",
            &format!("#!/bin/sh\ntouch '{}'\nexit 1\n", marker.display()),
        );
        let uptime = proc.join("uptime");
        let script = format!(
            "{PRELUDE}\nk8sup_init x; k8sup_clock 1764000000000; k8sup_now; a=$k8sup_now; printf '1012.34 4000.00\\n' > \"$K8SUP_PROC/uptime\"; k8sup_now; echo \"$a $k8sup_now\""
        );
        for shell in ["/bin/sh", "/bin/bash"] {
            std::fs::write(&uptime, "1000.05 3999.00\n").unwrap();
            let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
            let out = std::process::Command::new(shell)
                .arg("-c")
                .arg(&script)
                .env("K8SUP_PROC", &proc)
                .env("PATH", path)
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout);
            assert_eq!(
                text.trim(),
                "1764000000000 1764000012290",
                "{shell}: {text} {}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(!marker.exists(), "{shell} ran date");
        }
        // Without /proc/uptime the host's own clock is used.
        std::fs::remove_file(&uptime).unwrap();
        let out = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(format!(
                "{PRELUDE}\nk8sup_init x; k8sup_clock 1764000000000; k8sup_now; echo \"$k8sup_now\""
            ))
            .env("K8SUP_PROC", &proc)
            .output()
            .unwrap();
        let now: u64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
        assert!(now.abs_diff(crate::engine::epoch_ms()) < 60_000, "{now}");
    }

    /// Without bash's EPOCHREALTIME, task times come from one `date` and /proc/uptime.
    #[test]
    fn the_clock_follows_uptime_in_any_shell() {
        let dir = tempfile::tempdir().unwrap();
        let proc = dir.path().join("proc");
        std::fs::create_dir_all(&proc).unwrap();
        let uptime = proc.join("uptime");
        std::fs::write(&uptime, "1000.05 3999.00\n").unwrap();
        let script = format!(
            "unset EPOCHREALTIME\n{PRELUDE}\nk8sup_init x; k8sup_now; a=$k8sup_now; printf '1012.34 4000.00\\n' > \"$K8SUP_PROC/uptime\"; k8sup_now; echo \"$a $k8sup_now\""
        );
        for shell in ["/bin/sh", "/bin/bash"] {
            std::fs::write(&uptime, "1000.05 3999.00\n").unwrap();
            let out = std::process::Command::new(shell)
                .arg("-c")
                .arg(&script)
                .env("K8SUP_PROC", &proc)
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout);
            let times: Vec<u64> = text
                .split_whitespace()
                .map(|t| t.parse().unwrap())
                .collect();
            let now_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis() as u64;
            assert!(times[0].abs_diff(now_ms) < 60_000, "{shell}: {text}");
            assert_eq!(
                times[1] - times[0],
                12_290,
                "{shell}: uptime moved 12.29 s: {text}"
            );
        }
    }
}
