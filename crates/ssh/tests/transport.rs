//! The transport against a real OpenSSH server: commands, concurrency, timeouts, files.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::Sshd;
use k8sup_shell::{Script, ShellArg};
use k8sup_ssh::{connect, CommandError, OutputStream, RunOptions, Transport};

fn arg(text: &str) -> ShellArg {
    ShellArg::new(text).expect("no NUL")
}

/// The server's target as is, and with `sudo` where this machine has sudo:
/// `(sudo, target)`.
fn with_and_without_sudo(sshd: &Sshd) -> Vec<(bool, k8sup_ssh::Target)> {
    let has_sudo = std::path::Path::new("/usr/bin/sudo").exists();
    [false, true]
        .into_iter()
        .filter(|sudo| !sudo || has_sudo)
        .map(|sudo| {
            let mut target = sshd.target();
            target.sudo = sudo;
            (sudo, target)
        })
        .collect()
}

#[tokio::test]
async fn run_captures_output_and_exit_status() {
    require_sshd!();
    let sshd = Sshd::start();
    for reuse_shell in [true, false] {
        let mut target = sshd.target();
        target.reuse_shell = reuse_shell;
        let session = connect(&target).await.expect("connects");
        let script = Script::new("printf out; printf err >&2; exit 3");
        let output = session.run(&script).await.expect("runs");
        assert_eq!(output.stdout, b"out");
        assert_eq!(output.stderr, b"err");
        assert_eq!(output.exit_status, Some(3));
        assert!(!output.success());
        let output = session
            // The command's own process (in the shell, `$$` is the shell's).
            .run(&Script::new("sh -c 'kill -KILL $PPID'"))
            .await
            .expect("runs");
        if reuse_shell {
            // The shell sees what any shell sees: 128 + the signal's number.
            assert_eq!((output.exit_status, output.exit_signal), (Some(137), None));
            assert_eq!(session.channels_opened(), 1, "one channel for the session");
        } else {
            assert_eq!(
                (output.exit_status, output.exit_signal.as_deref()),
                (None, Some("KILL"))
            );
            assert_eq!(session.channels_opened(), 2, "a channel per command");
        }
        assert_eq!(session.round_trips(), 2);
    }
}

/// Commands one after another go to the session's one shell, each with its own
/// environment, working directory, stdin and output, as separate channels would.
#[tokio::test]
async fn commands_share_one_shell_but_nothing_else() {
    require_sshd!();
    let sshd = Sshd::start();
    let session = connect(&sshd.target()).await.expect("connects");
    let first = session
        .run(&Script::new(
            "cd /tmp; x=set; export Y=set; pwd; echo \"[$x][$Y]\"",
        ))
        .await
        .expect("runs");
    assert_eq!(first.stdout_text(), "/tmp\n[set][set]\n");
    let second = session
        .run(&Script::new("pwd; echo \"[$x][$Y]\"; exec 1>&-; exit 5"))
        .await
        .expect("runs");
    assert_eq!(second.stdout_text(), "/root\n[][]\n");
    assert_eq!(second.exit_status, Some(5));
    // A script near the size limit of one exec argument, and stdin left unread.
    let big = "x".repeat(100_000);
    let script = Script::new("printf %s").arg(arg(&big)).code("| wc -c");
    let options = RunOptions {
        stdin: Some(vec![b'z'; 300_000]),
        ..RunOptions::default()
    };
    let output = session.run_with(&script, options).await.expect("runs");
    assert_eq!(output.stdout_text().trim(), "100000");
    let after = session.run(&Script::new("echo next")).await.expect("runs");
    assert_eq!(
        after.stdout_text(),
        "next\n",
        "unread stdin never leaks into the next command"
    );
    assert_eq!(session.channels_opened(), 1);
    assert_eq!(session.round_trips(), 4);
}

/// A stdin that a stream server (`sh` is dash here) cannot hold in a request, one with
/// a NUL byte or over 1 MiB, goes on a channel of its own, byte for byte; the shell
/// stays for the commands after it. Under a head server (bash) it goes to the shell.
#[tokio::test]
async fn a_stdin_the_shell_cannot_hold_goes_on_a_channel_and_the_shell_stays() {
    require_sshd!();
    let sshd = Sshd::start();
    let session = connect(&sshd.target()).await.expect("connects");
    let streams = std::fs::canonicalize("/bin/sh")
        .map(|sh| !sh.to_string_lossy().contains("bash"))
        .unwrap_or(true);
    let first = session.run(&Script::new("echo first")).await.expect("runs");
    assert_eq!(first.stdout_text(), "first\n");
    assert_eq!(session.channels_opened(), 1);
    let binary: Vec<u8> = (0..=255u8).cycle().take(5000).collect();
    let large = vec![b'q'; 1024 * 1024 + 1];
    for (n, stdin) in [binary, large].into_iter().enumerate() {
        let options = RunOptions {
            stdin: Some(stdin.clone()),
            ..RunOptions::default()
        };
        let output = session
            .run_with(
                &Script::new("sha256sum | cut -c1-64; echo \"[$#]\""),
                options,
            )
            .await
            .expect("runs");
        let sum = std::process::Command::new("sha256sum")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut child| {
                use std::io::Write;
                child.stdin.take().expect("piped").write_all(&stdin)?;
                child.wait_with_output()
            })
            .expect("sha256sum here");
        let sum = String::from_utf8_lossy(&sum.stdout);
        assert_eq!(
            output.stdout_text(),
            format!("{}\n[0]\n", &sum[..64]),
            "stdin {n} arrives byte for byte"
        );
        let channels = if streams { 2 + n as u64 } else { 1 };
        assert_eq!(session.channels_opened(), channels, "stdin {n}");
    }
    let after = session.run(&Script::new("echo after")).await.expect("runs");
    assert_eq!(after.stdout_text(), "after\n");
    let channels = if streams { 3 } else { 1 };
    assert_eq!(
        session.channels_opened(),
        channels,
        "the shell took the next command"
    );
}

/// Where `sh` is bash (the Red Hat family), the shell reads each request with GNU
/// `head -c`: every command, a stdin with NUL bytes and over 1 MiB, a library and a
/// public first command all go to that one shell, byte for byte.
#[tokio::test]
async fn where_sh_is_bash_the_shell_reads_requests_with_head_and_takes_any_stdin() {
    require_sshd!();
    let sshd = Sshd::start_with_bash_as_sh();
    let session = connect(&sshd.target()).await.expect("connects");
    let public = RunOptions {
        public: true,
        ..RunOptions::default()
    };
    let first = session
        .run_with(&Script::new("echo \"first ${BASH_VERSION:+bash}\""), public)
        .await
        .expect("runs");
    assert_eq!(first.stdout_text(), "first bash\n", "the server is bash");
    let binary: Vec<u8> = (0..=255u8).cycle().take(1024 * 1024 + 7).collect();
    let options = RunOptions {
        stdin: Some(binary.clone()),
        ..RunOptions::default()
    };
    let output = session
        .run_with(&Script::new("cat; echo \"[$#]\""), options)
        .await
        .expect("runs");
    assert_eq!(output.stdout.len(), binary.len() + 4);
    assert!(output.stdout.starts_with(&binary), "stdin byte for byte");
    let lib = session
        .run_with(&Script::new("k8sup_lib_hi there"), with_library())
        .await
        .expect("runs");
    assert_eq!(lib.stdout_text(), "hi there 1\n");
    let next = session
        .run_with(&Script::new("k8sup_lib_hi again"), with_library())
        .await
        .expect("runs");
    assert_eq!(next.stdout_text(), "hi again 1\n", "the library went once");
    assert_eq!(session.channels_opened(), 1, "one shell took everything");
}

#[tokio::test]
async fn stdin_and_live_output_reach_the_caller() {
    require_sshd!();
    let sshd = Sshd::start();
    let session = connect(&sshd.target()).await.expect("connects");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink_seen = seen.clone();
    let options = RunOptions {
        stdin: Some(b"hello\n".to_vec()),
        timeout: None,
        on_output: Some(Arc::new(move |stream, data: &[u8]| {
            sink_seen
                .lock()
                .expect("lock")
                .push((stream, data.to_vec()));
        })),
        public: false,
        library: None,
    };
    let output = session
        .run_with(&Script::new("tr a-z A-Z"), options)
        .await
        .expect("runs");
    assert_eq!(output.stdout, b"HELLO\n");
    let seen = seen.lock().expect("lock");
    let streamed: Vec<u8> = seen
        .iter()
        .filter(|(s, _)| *s == OutputStream::Stdout)
        .flat_map(|(_, d)| d.clone())
        .collect();
    assert_eq!(streamed, b"HELLO\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_commands_at_once_share_one_connection() {
    require_sshd!();
    let sshd = Sshd::start();
    let session = connect(&sshd.target()).await.expect("connects");
    let transport: &dyn Transport = &session;
    // One second each: 50 s if they ran one after another. (sshd itself starts
    // sessions one at a time, at some 100 ms each on a slow box.)
    let scripts: Vec<Script> = (0..50)
        .map(|i| Script::new("sleep 1; echo").arg(arg(&i.to_string())))
        .collect();
    let started = Instant::now();
    let outputs = futures::future::join_all(scripts.iter().map(|s| transport.run(s))).await;
    for (i, output) in outputs.into_iter().enumerate() {
        let output = output.expect("runs");
        assert_eq!(output.stdout_text(), format!("{i}\n"));
    }
    assert_eq!(transport.channels_opened(), 50);
    assert!(
        started.elapsed() < Duration::from_secs(25),
        "ran concurrently: {:?}",
        started.elapsed()
    );
    let sshd_connections = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ss -tn state established '( sport = :{} )' | tail -n +2 | wc -l",
            sshd.port
        ))
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    if !sshd_connections.is_empty() {
        assert_eq!(sshd_connections, "1", "one TCP connection");
    }
}

/// A test library that counts how often it was defined in the shell that has it.
const COUNTING_LIBRARY: &str =
    "k8sup_lib_defs=$(( ${k8sup_lib_defs:-0} + 1 ))\nk8sup_lib_hi() { echo \"hi $1 $k8sup_lib_defs\"; }";

fn with_library() -> RunOptions {
    RunOptions {
        library: Some(COUNTING_LIBRARY),
        ..RunOptions::default()
    }
}

/// A library goes to the session's shell once, and every later request finds it
/// there; after a request that carried it failed, it goes again; a command on a
/// channel of its own (the shell busy) gets it in front of its script.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_library_goes_once_per_shell_and_in_front_of_a_channel_s_script() {
    require_sshd!();
    let sshd = Sshd::start();
    for (sudo, target) in with_and_without_sudo(&sshd) {
        let session = connect(&target).await.expect("connects");
        for i in 0..3 {
            let script = Script::new("k8sup_lib_hi").arg(arg(&i.to_string()));
            let output = session
                .run_with(&script, with_library())
                .await
                .expect("runs");
            assert_eq!(output.stdout_text(), format!("hi {i} 1\n"), "sudo {sudo}");
        }
        let slow = Script::new("sleep 1; k8sup_lib_hi a");
        let quick = Script::new("k8sup_lib_hi b");
        let (a, b) = futures::join!(
            session.run_with(&slow, with_library()),
            session.run_with(&quick, with_library())
        );
        assert_eq!(a.expect("runs").stdout_text(), "hi a 1\n");
        assert_eq!(
            b.expect("runs").stdout_text(),
            "hi b 1\n",
            "the channel's own shell defined it once"
        );
        assert_eq!(session.channels_opened(), 2, "sudo {sudo}");
        session.close().await;

        let session = connect(&target).await.expect("connects");
        let failed = session
            .run_with(&Script::new("exit 4"), with_library())
            .await
            .expect("runs");
        assert_eq!(failed.exit_status, Some(4));
        let again = session
            .run_with(&Script::new("k8sup_lib_hi c"), with_library())
            .await
            .expect("runs");
        assert_eq!(
            again.stdout_text(),
            "hi c 2\n",
            "sent again after the request that carried it failed"
        );
        session.close().await;
    }
}

#[tokio::test]
async fn a_hanging_command_times_out_and_the_session_survives() {
    require_sshd!();
    let sshd = Sshd::start();
    let session = connect(&sshd.target()).await.expect("connects");
    let options = RunOptions {
        timeout: Some(Duration::from_secs(1)),
        ..RunOptions::default()
    };
    let started = Instant::now();
    let error = session
        .run_with(&Script::new("sleep 600"), options)
        .await
        .expect_err("times out");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(
        matches!(&error, CommandError::Timeout { command, .. } if command == "sleep 600"),
        "{error}"
    );
    assert!(error.to_string().contains("test-host"), "{error}");
    let output = session
        .run(&Script::new("echo still here"))
        .await
        .expect("session still works");
    assert_eq!(output.stdout_text(), "still here\n");
    assert_eq!(
        session.channels_opened(),
        2,
        "the timed-out shell is replaced by a new one"
    );
}

#[tokio::test]
async fn upload_then_download_round_trips_binary_content_and_mode() {
    require_sshd!();
    let sshd = Sshd::start();
    let session = connect(&sshd.target()).await.expect("connects");
    let path = format!("{}/data.bin", sshd.dir.display());
    let content: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 256) as u8).collect();
    session
        .upload(&path, &content, 0o640, Some(("root", "root")))
        .await
        .expect("uploads");
    assert_eq!(session.download(&path).await.expect("downloads"), content);
    let stat = session
        .run(&Script::new("stat -c %a:%U:%G").arg(arg(&path)))
        .await
        .expect("stat");
    assert_eq!(stat.stdout_text(), "640:root:root\n");
    session
        .upload(&path, b"second", 0o600, None)
        .await
        .expect("replaces");
    assert_eq!(session.download(&path).await.expect("downloads"), b"second");
    let leftovers = std::fs::read_dir(&sshd.dir)
        .expect("list")
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with(".k8sup-upload"))
        .count();
    assert_eq!(leftovers, 0, "no temp files left");
    let missing = session
        .download("/nonexistent/file")
        .await
        .expect_err("missing file");
    assert!(
        matches!(
            missing,
            CommandError::Failed {
                step: "download",
                ..
            }
        ),
        "{missing}"
    );
    let relative = session
        .upload("relative/path", b"x", 0o644, None)
        .await
        .expect_err("relative path");
    assert!(
        matches!(relative, CommandError::InvalidPath { .. }),
        "{relative}"
    );
}

#[tokio::test]
async fn hostile_paths_and_content_stay_inert() {
    require_sshd!();
    let sshd = Sshd::start();
    let session = connect(&sshd.target()).await.expect("connects");
    // The remote shell starts in root's home, so a relative canary lands there.
    let canary_name = format!("k8sup-pwned-{}", std::process::id());
    let canary = std::path::Path::new("/root").join(&canary_name);
    let hostile_name = format!(
        "it's $(touch {c}); `touch {c}` \"x\" \n;touch {c}",
        c = canary_name
    );
    let path = format!("{}/{}", sshd.dir.display(), hostile_name);
    let content = format!("$(touch {c})\n'; touch {c}; '", c = canary.display());
    session
        .upload(&path, content.as_bytes(), 0o644, None)
        .await
        .expect("uploads");
    assert_eq!(
        std::fs::read(&path).expect("file with the literal name"),
        content.as_bytes()
    );
    assert_eq!(
        session.download(&path).await.expect("downloads"),
        content.as_bytes()
    );
    let error = session
        .upload(
            &format!("{}/f", sshd.dir.display()),
            b"x",
            0o644,
            Some(("root';touch /x;'", "root")),
        )
        .await
        .expect_err("no such user");
    assert!(
        matches!(error, CommandError::Failed { step: "upload", .. }),
        "{error}"
    );
    assert!(!canary.exists(), "nothing hostile ran");
}

/// `close` says goodbye with SSH's disconnect message (sshd logs the reason it was
/// given), and the server's side of the connection ends.
#[tokio::test]
async fn session_close_ends_the_connection() {
    require_sshd!();
    let sshd = Sshd::start();
    let session = connect(&sshd.target()).await.expect("connects");
    session.run(&Script::new("true")).await.expect("runs");
    let log = || std::fs::read_to_string(sshd.dir.join("sshd.log")).unwrap_or_default();
    assert!(!log().contains("Received disconnect"), "{}", log());
    session.close().await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !log().contains("Disconnected from user root") && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let log = log();
    assert!(
        log.lines()
            .any(|l| l.contains("Received disconnect") && l.contains("k8sup is done")),
        "{log}"
    );
    assert!(log.contains("Disconnected from user root"), "{log}");
}

/// As root, sudo runs without asking: this checks the wrapping, the marker handling
/// and that a configured password never leaks into a command that was not prompted.
#[tokio::test]
async fn become_runs_through_sudo_and_never_leaks_the_password() {
    require_sshd!();
    if !std::path::Path::new("/usr/bin/sudo").exists() {
        common::skip("sudo is not installed");
        return;
    }
    let sshd = Sshd::start();
    for password in [None, Some("pa55-w0rd-not-for-stdin")] {
        let mut target = sshd.target();
        target.sudo = true;
        target.secrets.become_password = password.map(k8sup_ssh::Secret::new);
        let session = connect(&target).await.expect("connects");
        let output = session
            .run(&Script::new("echo \"$SUDO_USER\"; echo err >&2; exit 4"))
            .await
            .expect("runs");
        assert_eq!(
            (output.stdout_text().as_str(), output.stderr_text().as_str()),
            ("root\n", "err\n")
        );
        assert_eq!(output.exit_status, Some(4));
        let options = RunOptions {
            stdin: Some(b"only this\n".to_vec()),
            ..RunOptions::default()
        };
        let echoed = session
            .run_with(&Script::new("cat"), options)
            .await
            .expect("runs");
        assert_eq!(echoed.stdout, b"only this\n");
        let path = format!("{}/via-sudo", sshd.dir.display());
        session
            .upload(&path, b"content", 0o600, None)
            .await
            .expect("uploads");
        assert_eq!(
            session.download(&path).await.expect("downloads"),
            b"content"
        );
    }
}

/// ProxyJump through the same server: the bastion is just another target, and the
/// host's connection rides a direct-tcpip channel on the bastion's.
#[tokio::test]
async fn jump_host_carries_the_connection() {
    require_sshd!();
    let sshd = Sshd::start();
    let mut target = sshd.target();
    let bastion = target
        .bastion(&format!("root@127.0.0.1:{}", sshd.port))
        .expect("spec parses");
    target.jump_host = Some(Box::new(bastion));
    let session = connect(&target)
        .await
        .expect("connects through the bastion");
    let output = session
        .run(&Script::new("echo via bastion"))
        .await
        .expect("runs");
    assert_eq!(output.stdout_text(), "via bastion\n");

    let mut unreachable = sshd.target();
    unreachable.address = "127.0.0.2".to_string();
    unreachable.port = 1;
    unreachable.jump_host = Some(Box::new(sshd.target()));
    let error = connect(&unreachable).await.err().expect("tunnel refused");
    assert!(
        matches!(error, k8sup_ssh::ConnectError::Tunnel { .. }),
        "{error}"
    );
}

/// Every process's arguments on this machine (the test's sshd runs here), read from
/// the real /proc.
fn all_cmdlines() -> Vec<String> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|bytes| String::from_utf8_lossy(&bytes).replace('\0', " "))
        .collect()
}

/// A script (which may hold a secret) reaches the host on stdin: it is in no
/// process's arguments, on the shell and on a channel of its own, with sudo and
/// without. On the shell it is in no file; on a channel it sits in a 0600 file of a
/// 0700 directory while it runs, gone when the command ends; one left by a killed
/// shell is swept away by the next shell.
#[tokio::test]
async fn scripts_never_appear_in_a_process_s_arguments() {
    require_sshd!();
    let sshd = Sshd::start();
    let targets = with_and_without_sudo(&sshd);
    for ((sudo, target), reuse_shell) in targets
        .iter()
        .flat_map(|t| [(t.clone(), true), (t.clone(), false)])
    {
        let mut target = target.clone();
        target.reuse_shell = reuse_shell;
        let session = connect(&target).await.expect("connects");
        let secret = format!("s3cret-{}-{reuse_shell}-{sudo}", std::process::id());
        let script = Script::new("x=")
            .arg(arg(&secret))
            // The directory is the shell's (`$$` in a request on the shell) or, on a
            // channel of its own, that of the command's parent.
            .code(concat!(
                "; sleep 3; for d in \"${TMPDIR:-/tmp}\"/k8sup-shell.$$.* ",
                "\"${TMPDIR:-/tmp}\"/k8sup-shell.$PPID.*; do ",
                "[ ! -d \"$d\" ] || stat -c %a \"$d/s\" \"$d\"; done"
            ));
        let run = session.run(&script);
        let watch = async {
            let mut seen = Vec::new();
            for _ in 0..20 {
                tokio::time::sleep(Duration::from_millis(100)).await;
                seen.extend(all_cmdlines().into_iter().filter(|c| c.contains(&secret)));
            }
            seen
        };
        let (output, seen) = futures::join!(run, watch);
        let output = output.expect("runs");
        assert!(
            seen.is_empty(),
            "reuse_shell {reuse_shell}, sudo {sudo}: the script is in a process's arguments: {:?}",
            seen.first()
        );
        // On the shell the script is in no file at all (a variable of the shell's);
        // on a channel of its own, in a 0600 file of a 0700 directory.
        let files = if reuse_shell { "" } else { "600\n700\n" };
        assert_eq!(
            output.stdout_text(),
            files,
            "reuse_shell {reuse_shell}: {}",
            output.stderr_text()
        );
        session.close().await;
    }
    // A shell killed before its exit trap ran leaves its directory; the next one
    // started removes it (its pid is gone), and leaves those of live shells.
    let stale = std::path::PathBuf::from("/tmp/k8sup-shell.999999999.testleftover");
    std::fs::create_dir_all(&stale).expect("stale dir");
    std::fs::write(stale.join("s"), "secret").expect("stale script");
    let live =
        std::path::PathBuf::from(format!("/tmp/k8sup-shell.{}.testlive", std::process::id()));
    std::fs::create_dir_all(&live).expect("live dir");
    let session = connect(&sshd.target()).await.expect("connects");
    session.run(&Script::new("true")).await.expect("runs");
    assert!(!stale.exists(), "the stale script directory was swept away");
    assert!(live.exists(), "a live shell's directory is kept");
    let _ = std::fs::remove_dir_all(&live);
}

/// Runs a public command that echoes `text`, and says whether `text` was seen in a
/// process's arguments meanwhile.
async fn run_public(session: &k8sup_ssh::Session, text: &str) -> (k8sup_ssh::CommandOutput, bool) {
    let options = RunOptions {
        public: true,
        ..RunOptions::default()
    };
    let script = Script::new("echo")
        .arg(arg(text))
        .code("; id -u; sleep 1; exit 5");
    let watch = async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        all_cmdlines().into_iter().any(|c| c.contains(text))
    };
    let (out, seen) = futures::join!(session.run_with(&script, options), watch);
    (out.expect("runs"), seen)
}

/// A public first command goes with the shell's start line (so it is in the shell's
/// arguments) and answers as any command; what follows on the same shell still comes
/// on stdin, and a public command that is not the first is never in an argument.
#[tokio::test]
async fn a_public_first_command_goes_with_the_shell_s_start_and_answers_as_any() {
    require_sshd!();
    let sshd = Sshd::start();
    for (sudo, target) in with_and_without_sudo(&sshd) {
        let session = connect(&target).await.expect("connects");
        let marker = format!("first-{}-{sudo}", std::process::id());
        let (first, seen) = run_public(&session, &marker).await;
        assert!(
            seen,
            "sudo {sudo}: the first public command is in the start line"
        );
        assert_eq!(first.exit_status, Some(5));
        let uid = if sudo {
            "0"
        } else {
            &String::from_utf8_lossy(
                &std::process::Command::new("id")
                    .arg("-u")
                    .output()
                    .expect("id")
                    .stdout,
            )
            .trim()
            .to_string()
        };
        assert_eq!(first.stdout_text(), format!("{marker}\n{uid}\n"));
        let later = format!("later-{}-{sudo}", std::process::id());
        let (second, seen) = run_public(&session, &later).await;
        assert!(!seen, "sudo {sudo}: a later command travels on stdin");
        assert_eq!(second.stdout_text(), format!("{later}\n{uid}\n"));
        assert_eq!(session.channels_opened(), 1, "one shell for both");
        session.close().await;
    }
}

#[tokio::test]
async fn a_restarted_shell_takes_the_host_lock_again_before_anything_else() {
    require_sshd!();
    let sshd = Sshd::start();
    let lock = std::env::temp_dir().join(format!("k8sup-relock-{}.lock", std::process::id()));
    let lock_s = lock.to_str().expect("utf-8").to_string();
    let mut target = sshd.target();
    target.held_file = Some(lock_s.clone());
    let session = connect(&target).await.expect("connects");
    let taken = session.run(&Script::new("flock -n 9")).await.expect("runs");
    assert!(taken.success(), "{taken:?}");
    // What a restarted shell must run first (the real one is k8sup-ops' lock script).
    session.hold_on_restart(Script::new("flock -w 10 9"));
    let held_elsewhere = || {
        !std::process::Command::new("flock")
            .args(["-n", &lock_s, "true"])
            .status()
            .expect("flock runs")
            .success()
    };
    // A command that times out leaves its process running, holding the lock a while.
    let options = RunOptions {
        timeout: Some(Duration::from_secs(1)),
        ..RunOptions::default()
    };
    let error = session
        .run_with(&Script::new("sleep 3"), options)
        .await
        .expect_err("times out");
    assert!(matches!(error, CommandError::Timeout { .. }), "{error}");
    let next = session
        .run(&Script::new("echo after"))
        .await
        .expect("runs once the new shell holds the lock");
    assert_eq!(next.stdout_text(), "after\n");
    // The timed-out command has ended by now; the new shell holds the lock.
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        held_elsewhere(),
        "the host's lock was lost with the first shell"
    );

    // A second session whose restarted shell finds another holder fails, naming it.
    let other = connect(&target).await.expect("connects");
    other.hold_on_restart(Script::new(
        "flock -n 9 || { echo held by someone; exit 3; }",
    ));
    let error = other
        .run_with(
            &Script::new("sleep 4"),
            RunOptions {
                timeout: Some(Duration::from_secs(1)),
                ..RunOptions::default()
            },
        )
        .await
        .expect_err("times out");
    assert!(matches!(error, CommandError::Timeout { .. }), "{error}");
    let error = other
        .run(&Script::new("echo never"))
        .await
        .expect_err("the lock is another's");
    assert!(
        matches!(&error, CommandError::LockLost { reason, .. } if reason.contains("held by someone")),
        "{error}"
    );
    session.close().await;
    let _ = std::fs::remove_file(&lock);
}
