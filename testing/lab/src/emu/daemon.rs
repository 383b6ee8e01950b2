//! Real daemons under the emulated systemd: a unit whose `ExecStart` names one of the real
//! programs the lab serves (haproxy, nginx; see [`REAL_PROGRAMS`]) is really started,
//! stopped and reloaded inside the host (its chroot and, in a namespaced lab, its network
//! namespace), as its unit file says: `Environment=`, `EnvironmentFile=`,
//! `ExecStartPre=`, `ExecStart=` by `Type=` (`notify`: the lab plays systemd's
//! `NOTIFY_SOCKET` and waits for `READY=1`; `forking`: waits for the starter and reads
//! `PIDFile=`; otherwise the process itself), `ExecReload=` with `$MAINPID`, `ExecStop=`
//! then `KillSignal=` to the main process's group.
//!
//! State beside the emulated unit state (`/run/lab-systemd/<unit>.{active,pid,failed}`)
//! and the daemon's output in a journal-like file ([`journal_path`]) that `systemctl
//! status` shows the tail of. Daemons get no inherited descriptor (as from pid 1): an
//! installer's lock on fd 9 does not leak into haproxy.

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::Invocation;
use crate::profile::SYSTEMD_STATE_DIR;

/// Programs that run for real when a unit starts them.
pub const REAL_PROGRAMS: &[&str] = &["/usr/sbin/haproxy", "/usr/sbin/nginx"];

/// How long a start may take before it is a time-out (systemd's default is 90 s).
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a stop waits before SIGKILL (`TimeoutStopSec`, 90 s by default; nginx says 5).
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// The parts of a service unit the lab acts on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Service {
    pub kind: String,
    pub environment: Vec<(String, String)>,
    /// Paths, each with whether it may be missing (`-` prefix).
    pub environment_files: Vec<(String, bool)>,
    pub exec_start_pre: Vec<String>,
    pub exec_start: Option<String>,
    pub exec_reload: Vec<String>,
    pub exec_stop: Vec<String>,
    pub pid_file: Option<String>,
    pub kill_signal: i32,
}

/// Parses a unit's `[Service]` section (an empty `ExecStart=` resets the list, as in
/// drop-ins).
pub fn parse(text: &str) -> Service {
    let mut s = Service {
        kind: "simple".into(),
        kill_signal: libc::SIGTERM,
        ..Service::default()
    };
    let mut in_service = false;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_service = line == "[Service]";
            continue;
        }
        if !in_service || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let value = value.trim().to_string();
        match key.trim() {
            "Type" => s.kind = value,
            "Environment" => s.environment.extend(assignments(&value)),
            "EnvironmentFile" => match value.strip_prefix('-') {
                Some(p) => s.environment_files.push((p.to_string(), true)),
                None => s.environment_files.push((value, false)),
            },
            "ExecStartPre" => push_or_reset(&mut s.exec_start_pre, value),
            "ExecStart" => s.exec_start = (!value.is_empty()).then_some(value),
            "ExecReload" => push_or_reset(&mut s.exec_reload, value),
            "ExecStop" => push_or_reset(&mut s.exec_stop, value),
            "PIDFile" => s.pid_file = Some(value),
            "KillSignal" => s.kill_signal = signal_number(&value).unwrap_or(libc::SIGTERM),
            _ => {}
        }
    }
    s
}

fn push_or_reset(list: &mut Vec<String>, value: String) {
    if value.is_empty() {
        list.clear();
    } else {
        list.push(value);
    }
}

fn signal_number(name: &str) -> Option<i32> {
    Some(match name.trim_start_matches("SIG") {
        "TERM" => libc::SIGTERM,
        "QUIT" => libc::SIGQUIT,
        "INT" => libc::SIGINT,
        "KILL" => libc::SIGKILL,
        "HUP" => libc::SIGHUP,
        "USR1" => libc::SIGUSR1,
        "USR2" => libc::SIGUSR2,
        _ => return None,
    })
}

/// `Environment="A=1" "B=2" C=3` → pairs.
fn assignments(value: &str) -> Vec<(String, String)> {
    words(value)
        .into_iter()
        .filter_map(|w| {
            let (k, v) = w.split_once('=')?;
            Some((k.to_string(), v.to_string()))
        })
        .collect()
}

/// Splits a command line as systemd does: whitespace separates words; double or single
/// quotes group (and are removed).
fn words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut any = false;
    for c in text.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => cur.push(c),
            None if c == '"' || c == '\'' => {
                quote = Some(c);
                any = true;
            }
            None if c.is_whitespace() => {
                if any || !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            None => cur.push(c),
        }
    }
    if any || !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// The command of an `Exec*=` line with its variables expanded: `$VAR` alone as a word
/// becomes its value split on whitespace (and nothing when empty), `${VAR}` one word;
/// returns the prefix flags too (`-`: failure ignored).
fn command_line(line: &str, env: &[(String, String)]) -> (bool, Vec<String>) {
    let mut line = line;
    let mut ignore_failure = false;
    while let Some(c) = line.chars().next().filter(|c| "-@+!:".contains(*c)) {
        ignore_failure |= c == '-';
        line = &line[1..];
    }
    let lookup = |name: &str| {
        env.iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let mut argv = Vec::new();
    for w in words(line) {
        if let Some(name) = w.strip_prefix('$').filter(|n| !n.starts_with('{')) {
            argv.extend(lookup(name).split_whitespace().map(String::from));
        } else {
            let mut out = w.clone();
            while let Some(start) = out.find("${") {
                let Some(end) = out[start..].find('}') else {
                    break;
                };
                let name = out[start + 2..start + end].to_string();
                out.replace_range(start..start + end + 1, &lookup(&name));
            }
            argv.push(out);
        }
    }
    (ignore_failure, argv)
}

/// Whether `unit` (its text) starts one of the real programs in this host.
pub fn is_real(inv: &Invocation, text: &str) -> bool {
    let service = parse(text);
    let Some(start) = service.exec_start else {
        return false;
    };
    let (_, argv) = command_line(&start, &[]);
    argv.first().is_some_and(|p| {
        REAL_PROGRAMS.contains(&p.as_str())
            && std::fs::symlink_metadata(inv.path(p)).is_ok_and(|m| m.file_type().is_file())
    })
}

/// The journal-like log of a unit inside the host.
pub fn journal_path(unit: &str) -> String {
    format!("/var/log/k8sup-lab/journal/{unit}.log")
}

fn state(unit: &str, what: &str) -> String {
    format!("{SYSTEMD_STATE_DIR}/{unit}.{what}")
}

fn journal(inv: &Invocation, unit: &str, line: &str) {
    let path = inv.path(&journal_path(unit));
    if let Some(p) = path.parent() {
        let _ = std::fs::create_dir_all(p);
    }
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
    {
        let _ = writeln!(f, "{} systemd[1]: {line}", inv.hostname());
    }
}

fn journal_file(inv: &Invocation, unit: &str) -> std::io::Result<std::fs::File> {
    let path = inv.path(&journal_path(unit));
    if let Some(p) = path.parent() {
        std::fs::create_dir_all(p)?;
    }
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
}

/// The environment a unit's commands get: systemd's base plus the unit's.
fn environment(inv: &Invocation, service: &Service) -> Result<Vec<(String, String)>, String> {
    let mut env = vec![
        (
            "PATH".to_string(),
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_string(),
        ),
        ("LANG".to_string(), "C.UTF-8".to_string()),
    ];
    // systemd applies Environment= first and EnvironmentFile= over it.
    env.extend(service.environment.iter().cloned());
    for (path, optional) in &service.environment_files {
        match inv.read(path) {
            Ok(text) => {
                for line in text.lines() {
                    let line = line.trim();
                    if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
                        continue;
                    }
                    if let Some((k, v)) = line.split_once('=') {
                        let v = v.trim().trim_matches('"').trim_matches('\'');
                        env.push((k.trim().to_string(), v.to_string()));
                    }
                }
            }
            Err(_) if *optional => {}
            Err(e) => return Err(format!("Failed to load environment files: {path}: {e}")),
        }
    }
    Ok(env)
}

/// A command of the unit, ready to spawn: its environment, no inherited descriptor, its
/// output into the journal, in its own session.
fn command(
    inv: &Invocation,
    unit: &str,
    argv: &[String],
    env: &[(String, String)],
) -> std::io::Result<Command> {
    let Some(program) = argv.first() else {
        return Err(std::io::Error::other("empty command line"));
    };
    let log = journal_file(inv, unit)?;
    let mut cmd = Command::new(program);
    cmd.args(&argv[1..])
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .current_dir(inv.path("/"))
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    // SAFETY: setsid and close_range are async-signal-safe system calls.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            // Every descriptor past stderr closes at exec (an installer's fd 9 lock).
            libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 4u32);
            Ok(())
        });
    }
    Ok(cmd)
}

/// Starts a detached process in the host (own session, no inherited descriptor, output to
/// the journal file of `log_as`, working directory `cwd`); its pid.
pub fn spawn_detached(
    inv: &Invocation,
    argv: &[String],
    log_as: &str,
    cwd: &str,
) -> std::io::Result<i32> {
    let env = vec![(
        "PATH".to_string(),
        "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_string(),
    )];
    let mut cmd = command(inv, log_as, argv, &env)?;
    cmd.current_dir(inv.path(cwd));
    Ok(cmd.spawn()?.id() as i32)
}

/// Runs a control command (ExecStartPre, a forking ExecStart, ExecReload, ExecStop) to its
/// end; its status, or why it could not run.
fn run_control(
    inv: &Invocation,
    unit: &str,
    line: &str,
    env: &[(String, String)],
) -> Result<(), String> {
    let (ignore, argv) = command_line(line, env);
    let result = command(inv, unit, &argv, env)
        .and_then(|mut c| c.status())
        .map_err(|e| format!("Failed to execute {}: {e}", argv.join(" ")));
    match result {
        Ok(st) if st.success() => Ok(()),
        _ if ignore => Ok(()),
        Ok(st) => Err(format!(
            "Control process exited, code=exited, status={}/FAILURE",
            st.code().unwrap_or(-1)
        )),
        Err(e) => Err(e),
    }
}

/// Whether process `pid` is alive (not a zombie): a pidfd becomes readable when it ends.
pub fn alive(pid: i32) -> bool {
    // SAFETY: plain system calls on integers; the descriptor is closed here.
    unsafe {
        let fd = libc::syscall(libc::SYS_pidfd_open, pid, 0) as i32;
        if fd < 0 {
            return false;
        }
        let mut p = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        let ready = libc::poll(&mut p, 1, 0);
        libc::close(fd);
        ready == 0
    }
}

/// The main pid of a running unit.
pub fn main_pid(inv: &Invocation, unit: &str) -> Option<i32> {
    inv.read(&state(unit, "pid"))
        .ok()?
        .trim()
        .parse()
        .ok()
        .filter(|p| alive(*p))
}

/// Why the unit failed, if its last start or its main process failed.
pub fn failure(inv: &Invocation, unit: &str) -> Option<String> {
    if inv.path(&state(unit, "active")).exists() && main_pid(inv, unit).is_none() {
        return Some("main process exited".into());
    }
    inv.read(&state(unit, "failed")).ok()
}

fn fail(inv: &Invocation, unit: &str, why: &str) -> String {
    journal(inv, unit, &format!("{unit}: {why}"));
    journal(
        inv,
        unit,
        &format!("{unit}: Failed with result 'exit-code'."),
    );
    let _ = std::fs::remove_file(inv.path(&state(unit, "active")));
    let _ = std::fs::remove_file(inv.path(&state(unit, "pid")));
    let _ = inv.write(&state(unit, "failed"), why);
    why.to_string()
}

/// Starts the unit's daemon; on failure returns the reason (the journal has the details).
pub fn start(inv: &Invocation, unit: &str, text: &str) -> Result<(), String> {
    if main_pid(inv, unit).is_some() {
        return Ok(());
    }
    let service = parse(text);
    let env = environment(inv, &service).map_err(|e| fail(inv, unit, &e))?;
    let _ = std::fs::remove_file(inv.path(&state(unit, "failed")));
    journal(inv, unit, &format!("Starting {unit}..."));
    for line in &service.exec_start_pre {
        run_control(inv, unit, line, &env).map_err(|e| fail(inv, unit, &e))?;
    }
    let Some(start) = &service.exec_start else {
        return Err(fail(inv, unit, "Service has no ExecStart= setting."));
    };
    let pid = match service.kind.as_str() {
        "forking" => {
            run_control(inv, unit, start, &env).map_err(|e| fail(inv, unit, &e))?;
            let pid_file = service.pid_file.clone().unwrap_or_default();
            wait_for(Duration::from_secs(5), || {
                inv.read(&pid_file).ok()?.trim().parse::<i32>().ok()
            })
            .ok_or_else(|| fail(inv, unit, &format!("Can't open PID file {pid_file}")))?
        }
        "notify" => start_notify(inv, unit, start, &env)?,
        _ => {
            let (_, argv) = command_line(start, &env);
            let child = command(inv, unit, &argv, &env)
                .and_then(|mut c| c.spawn())
                .map_err(|e| fail(inv, unit, &format!("Failed to execute: {e}")))?;
            child.id() as i32
        }
    };
    inv.write(&state(unit, "pid"), &pid.to_string())
        .map_err(|e| e.to_string())?;
    inv.write(&state(unit, "active"), "")
        .map_err(|e| e.to_string())?;
    journal(inv, unit, &format!("Started {unit}."));
    Ok(())
}

fn wait_for<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if start.elapsed() > timeout {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `Type=notify`: the daemon is ready when it says `READY=1` on `$NOTIFY_SOCKET`; it
/// failed if it exits first.
fn start_notify(
    inv: &Invocation,
    unit: &str,
    start: &str,
    env: &[(String, String)],
) -> Result<i32, String> {
    let socket_path = state(unit, "notify");
    let _ = std::fs::remove_file(inv.path(&socket_path));
    let socket = std::os::unix::net::UnixDatagram::bind(inv.path(&socket_path))
        .map_err(|e| fail(inv, unit, &format!("notify socket: {e}")))?;
    socket
        .set_read_timeout(Some(Duration::from_millis(50)))
        .map_err(|e| e.to_string())?;
    let mut env = env.to_vec();
    // The daemon needs the path as the host sees it (the state dir is host-relative).
    env.push(("NOTIFY_SOCKET".into(), format!("/{socket_path}")));
    let (_, argv) = command_line(start, &env);
    let mut child = command(inv, unit, &argv, &env)
        .and_then(|mut c| c.spawn())
        .map_err(|e| fail(inv, unit, &format!("Failed to execute: {e}")))?;
    let started = Instant::now();
    let mut main = child.id() as i32;
    let mut buf = [0u8; 4096];
    let outcome = loop {
        if let Ok(n) = socket.recv(&mut buf) {
            let msg = String::from_utf8_lossy(&buf[..n]);
            for l in msg.lines() {
                if let Some(p) = l.strip_prefix("MAINPID=").and_then(|p| p.parse().ok()) {
                    main = p;
                }
            }
            if msg.lines().any(|l| l == "READY=1") {
                break Ok(main);
            }
        }
        if let Ok(Some(status)) = child.try_wait() {
            break Err(format!(
                "Main process exited, code=exited, status={}/FAILURE",
                status.code().unwrap_or(-1)
            ));
        }
        if started.elapsed() > START_TIMEOUT {
            let _ = crate::sys::signal(main, libc::SIGKILL);
            let _ = child.wait();
            break Err("start operation timed out. Terminating.".into());
        }
    };
    let _ = std::fs::remove_file(inv.path(&socket_path));
    outcome.map_err(|e| fail(inv, unit, &e))
}

/// Stops the unit's daemon: `ExecStop=`, then its kill signal to the main process's
/// group, SIGKILL after the stop timeout.
pub fn stop(inv: &Invocation, unit: &str, text: &str) {
    let service = parse(text);
    let _ = std::fs::remove_file(inv.path(&state(unit, "failed")));
    let Some(pid) = main_pid(inv, unit) else {
        let _ = std::fs::remove_file(inv.path(&state(unit, "pid")));
        return;
    };
    journal(inv, unit, &format!("Stopping {unit}..."));
    let mut env = environment(inv, &service).unwrap_or_default();
    env.push(("MAINPID".into(), pid.to_string()));
    for line in &service.exec_stop {
        let _ = run_control(inv, unit, line, &env);
    }
    // The main process was started in its own session: its group is the unit's
    // processes (a forking daemon's workers are in the group of its PIDFile's pid).
    let _ = crate::sys::signal(-pid, service.kill_signal);
    let _ = crate::sys::signal(pid, service.kill_signal);
    if wait_for(STOP_TIMEOUT, || (!alive(pid)).then_some(())).is_none() {
        let _ = crate::sys::signal(-pid, libc::SIGKILL);
        let _ = crate::sys::signal(pid, libc::SIGKILL);
        wait_for(STOP_TIMEOUT, || (!alive(pid)).then_some(()));
    }
    let _ = crate::sys::signal(-pid, libc::SIGKILL);
    let _ = std::fs::remove_file(inv.path(&state(unit, "pid")));
    let _ = std::fs::remove_file(inv.path(&state(unit, "active")));
    journal(inv, unit, &format!("Stopped {unit}."));
}

/// Stops `unit` if it runs a real daemon (a package's removal).
pub fn stop_if_real(inv: &Invocation, unit: &str) {
    let text = [
        "/etc/systemd/system",
        "/usr/lib/systemd/system",
        "/lib/systemd/system",
    ]
    .iter()
    .find_map(|d| inv.read(&format!("{d}/{unit}")).ok());
    if let Some(text) = text.filter(|t| is_real(inv, t)) {
        stop(inv, unit, &text);
    }
}

/// Runs the unit's `ExecReload=` lines with `$MAINPID`.
pub fn reload(inv: &Invocation, unit: &str, text: &str) -> Result<(), String> {
    let service = parse(text);
    let Some(pid) = main_pid(inv, unit) else {
        return Err("not active".into());
    };
    let mut env = environment(inv, &service)?;
    env.push(("MAINPID".into(), pid.to_string()));
    journal(inv, unit, &format!("Reloading {unit}..."));
    for line in &service.exec_reload {
        if let Err(e) = run_control(inv, unit, line, &env) {
            journal(inv, unit, &format!("{unit}: {e}"));
            journal(inv, unit, &format!("Reload failed for {unit}."));
            return Err(e);
        }
    }
    // A reload by signal (haproxy's USR2) is asynchronous; give the new workers a
    // moment, as `systemctl reload` of a notify service waits for RELOADING/READY.
    std::thread::sleep(Duration::from_millis(200));
    journal(inv, unit, &format!("Reloaded {unit}."));
    Ok(())
}

/// The last lines of the unit's journal (what `systemctl status` shows).
pub fn journal_tail(inv: &Invocation, unit: &str, lines: usize) -> Vec<String> {
    let text = inv.read(&journal_path(unit)).unwrap_or_default();
    let all: Vec<String> = text.lines().map(String::from).collect();
    all[all.len().saturating_sub(lines)..].to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEBIAN_HAPROXY: &str = "[Service]
EnvironmentFile=-/etc/default/haproxy
Environment=\"CONFIG=/etc/haproxy/haproxy.cfg\" \"PIDFILE=/run/haproxy.pid\" \"EXTRAOPTS=-S /run/haproxy-master.sock\"
ExecStart=/usr/sbin/haproxy -Ws -f $CONFIG -p $PIDFILE $EXTRAOPTS
ExecReload=/usr/sbin/haproxy -Ws -f $CONFIG -c -q $EXTRAOPTS
ExecReload=/bin/kill -USR2 $MAINPID
Type=notify
";

    #[test]
    fn parses_debian_haproxy_unit_and_expands_variables() {
        let s = parse(DEBIAN_HAPROXY);
        assert_eq!(s.kind, "notify");
        assert_eq!(s.environment_files, [("/etc/default/haproxy".into(), true)]);
        let (_, argv) = command_line(s.exec_start.as_deref().unwrap(), &s.environment);
        assert_eq!(
            argv,
            [
                "/usr/sbin/haproxy",
                "-Ws",
                "-f",
                "/etc/haproxy/haproxy.cfg",
                "-p",
                "/run/haproxy.pid",
                "-S",
                "/run/haproxy-master.sock"
            ]
        );
        let mut env = s.environment.clone();
        env.push(("MAINPID".into(), "42".into()));
        assert_eq!(
            command_line(&s.exec_reload[1], &env).1,
            ["/bin/kill", "-USR2", "42"]
        );
    }

    #[test]
    fn quotes_group_and_prefixes_mark_ignored_failures() {
        let (ignore, argv) = command_line(
            "-/usr/sbin/nginx -g 'daemon on; master_process on;' -s ${SIG}",
            &[("SIG".into(), "reload".into())],
        );
        assert!(ignore);
        assert_eq!(
            argv,
            [
                "/usr/sbin/nginx",
                "-g",
                "daemon on; master_process on;",
                "-s",
                "reload"
            ]
        );
        // An empty variable alone is no word at all.
        assert_eq!(command_line("/bin/x $OPTIONS", &[]).1, ["/bin/x"]);
    }

    #[test]
    fn a_process_that_ended_is_not_alive() {
        let mut child = Command::new("true").spawn().unwrap();
        let pid = child.id() as i32;
        std::thread::sleep(Duration::from_millis(100));
        // A zombie (not yet reaped) is not alive either.
        assert!(!alive(pid));
        child.wait().unwrap();
        assert!(alive(std::process::id() as i32));
    }
}
