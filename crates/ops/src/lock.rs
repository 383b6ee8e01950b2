//! One run at a time: a lock per cluster on the controller and one per host.
//!
//! The controller's lock is a file of the cluster's state directory locked with
//! `flock` for the life of the process; the host's is [`HOST_LOCK_FILE`], which the
//! session's one shell keeps open on fd 9 from its start ([`k8sup_ssh::Target::held_file`])
//! and which a command locks with `flock -n 9`. The lock then belongs to that open file:
//! held by the shell and by every command it starts, it ends only when the last of them
//! has, so a `kubeadm join` left running by a killed controller keeps the host locked
//! until it is done, and a run that died is never waited for (the kernel drops its lock
//! with its last process). Each lock file also says who holds it (run id, controller,
//! process, start time) for the refusal message.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use k8sup_shell::{Script, ShellArg};
use k8sup_ssh::{CommandOutput, Session};

/// The host's lock file. Under /run: a lock never outlives a reboot, and `reset`
/// (which removes k8sup's state) leaves it alone.
pub const HOST_LOCK_FILE: &str = "/run/k8sup.lock";

/// Who is running: written into every lock this run takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunInfo {
    pub run_id: String,
    /// The controller's host name.
    pub controller: String,
    pub pid: u32,
    /// RFC 3339, UTC.
    pub started: String,
}

impl RunInfo {
    /// This process's run: a fresh id, this machine's name, now.
    pub fn current() -> RunInfo {
        let now = std::time::SystemTime::now();
        let nanos = now
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let controller = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .or_else(|_| std::fs::read_to_string("/etc/hostname"))
            .map(|name| name.trim().to_string())
            .ok()
            .filter(|name| !name.is_empty() && name.bytes().all(|b| b.is_ascii_graphic()))
            .unwrap_or_else(|| "unknown".to_string());
        RunInfo {
            run_id: format!("{:x}-{:x}", nanos, std::process::id()),
            controller,
            pid: std::process::id(),
            started: humantime::format_rfc3339_seconds(now).to_string(),
        }
    }

    /// The line a lock file holds.
    pub fn line(&self) -> String {
        format!(
            "run {} on controller {} (pid {}) since {}",
            self.run_id, self.controller, self.pid, self.started
        )
    }
}

/// The cluster's lock on the controller, held until dropped.
#[derive(Debug)]
pub struct ClusterLock {
    _file: File,
    pub path: PathBuf,
}

/// Why the cluster's lock on the controller was not taken.
#[derive(Debug, thiserror::Error)]
pub enum ClusterLockError {
    #[error("cannot create the state directory {}: {source}", dir.display())]
    StateDir {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot open the cluster's lock {}: {source}", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot lock {}: {source}", path.display())]
    Lock {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "cluster {cluster} is locked by {holder} ({}): nothing was changed; wait for that run to end",
        path.display()
    )]
    Held {
        cluster: String,
        /// What the holder's lock file says (`run ... on controller ...`).
        holder: String,
        path: PathBuf,
    },
    #[error("cannot write the cluster's lock {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Takes the lock of `cluster` in `dir` (created if need be), or says who holds it.
pub fn lock_cluster(
    dir: &Path,
    cluster: &str,
    run: &RunInfo,
) -> Result<ClusterLock, ClusterLockError> {
    std::fs::create_dir_all(dir).map_err(|source| ClusterLockError::StateDir {
        dir: dir.to_path_buf(),
        source,
    })?;
    let path = dir.join("lock");
    let opened = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path);
    let mut file = match opened {
        Ok(file) => file,
        Err(source) => return Err(ClusterLockError::Open { path, source }),
    };
    let locked = match try_lock(&file) {
        Ok(locked) => locked,
        Err(source) => return Err(ClusterLockError::Lock { path, source }),
    };
    if !locked {
        // The holder writes who it is right after locking: give it a moment.
        let mut holder = String::new();
        for _ in 0..25 {
            holder.clear();
            let _ = file
                .rewind()
                .and_then(|()| file.read_to_string(&mut holder));
            if !holder.trim().is_empty() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let holder = holder
            .lines()
            .next()
            .filter(|l| !l.is_empty())
            .unwrap_or("another run")
            .to_string();
        return Err(ClusterLockError::Held {
            cluster: cluster.to_string(),
            holder,
            path,
        });
    }
    let written = file
        .set_len(0)
        .and_then(|()| file.rewind())
        .and_then(|()| writeln!(file, "{}", run.line()));
    if let Err(source) = written {
        return Err(ClusterLockError::Write { path, source });
    }
    Ok(ClusterLock { _file: file, path })
}

/// `flock(LOCK_EX | LOCK_NB)` on `file`: `false` when another open file holds it.
fn try_lock(file: &File) -> std::io::Result<bool> {
    use std::os::fd::AsRawFd;
    // SAFETY: flock on a descriptor `file` owns and keeps open for the call.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
        return Ok(true);
    }
    let error = std::io::Error::last_os_error();
    if error.kind() == std::io::ErrorKind::WouldBlock {
        Ok(false)
    } else {
        Err(error)
    }
}

/// Why a host could not be locked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostLockError {
    /// Another run holds it; what its lock file says.
    #[error(
        "locked by {0} ({HOST_LOCK_FILE}): wait for that run (or the command it left running) to end"
    )]
    Held(String),
    /// The lock could not be taken at all.
    #[error("cannot lock the host: {0}")]
    Failed(String),
}

/// Exit status of the lock script when another run holds the lock.
const HELD: u32 = 3;

/// How long a host's second try at its lock waits for another run to let it go: the
/// other run, which did not get the first host, drops every lock it took as soon as it
/// learns that (see [`LockOrder`]).
pub const CONTENDED_WAIT_SECS: u32 = 30;

/// The script that takes the host's lock on fd 9 of the session's shell and records
/// `run` in it, or prints the holder and exits [`HELD`]. With `wait`, it waits up to
/// that many seconds for the lock (`flock -w`); else it gives up at once.
fn host_lock_script(run: &RunInfo, wait: Option<u32>) -> Script {
    let file = ShellArg::new(HOST_LOCK_FILE).expect("a constant path");
    let line = ShellArg::new(run.line()).expect("built from NUL-free parts");
    let script = Script::new(concat!(
        r#"{ : >&9; } 2>/dev/null || { echo "the session's shell does not hold the lock file open (no shell on this host, or no root)" >&2; exit 2; }; "#,
        "if flock"
    ));
    let script = match wait {
        None => script.code("-n"),
        Some(secs) => script
            .code("-w")
            .arg(ShellArg::new(secs.to_string()).expect("digits")),
    };
    script
        .code("9; then printf '%s\\n'")
        .arg(line)
        .code(">")
        .arg(file.clone())
        // The holder empties the file before it writes its line: a loser that looks in
        // between finds it empty, and looks once more a moment later.
        .code("; else [ -s")
        .arg(file.clone())
        .code("] || sleep 1; cat")
        .arg(file)
        .code("; exit 3; fi")
}

/// The script a restarted shell of this run takes the lock with again: at once when it
/// is free; when this run's own timed-out command still holds it (the file names this
/// run), the host stays locked by that command meanwhile, so the shell goes on at once
/// and a waiter in the background takes the lock on the shell's fd 9 (the same open
/// file, so the lock stays with the shell after the waiter exits) once that command
/// ends; never when another run holds it.
fn relock_script(run: &RunInfo) -> Script {
    let file = ShellArg::new(HOST_LOCK_FILE).expect("a constant path");
    let line = ShellArg::new(run.line()).expect("built from NUL-free parts");
    let id = ShellArg::new(format!("run {} ", run.run_id)).expect("built from NUL-free parts");
    Script::new(concat!(
        r#"{ : >&9; } 2>/dev/null || { echo "the restarted shell does not hold the lock file open" >&2; exit 2; }; "#,
        "if flock -n 9; then printf '%s\\n'"
    ))
    .arg(line.clone())
    .code(">")
    .arg(file.clone())
    .code("; elif grep -qF")
    .arg(id)
    .arg(file.clone())
    .code("; then (flock 9 && printf '%s\\n'")
    .arg(line)
    .code(">")
    .arg(file.clone())
    .code(") </dev/null >/dev/null 2>&1 & else cat")
    .arg(file)
    .code("; exit 3; fi")
}

/// The text of [`LOCKED_MARK`], for the script that prints it.
macro_rules! locked_mark {
    () => {
        "k8sup-host-locked"
    };
}

/// What [`lock_then`]'s script prints on stdout once the lock is taken, before the
/// script that follows.
const LOCKED_MARK: &str = concat!(locked_mark!(), "\n");

/// One request that takes the host's lock for `run` (as [`lock_host`]) and, once it
/// holds it, runs `then` (a read-only script, such as the facts'): a round trip less
/// per host than the lock and `then` apart. Returns the lock's result and, when the lock
/// was taken, `then`'s output (its stdout without the lock's mark); when the lock was not
/// taken, `then` did not run. With `wait`, the lock is waited for up to that many seconds.
pub async fn lock_then(
    session: &Session,
    run: &RunInfo,
    then: &Script,
    wait: Option<u32>,
) -> (Result<(), HostLockError>, Option<CommandOutput>) {
    let script = host_lock_script(run, wait)
        .code(concat!("\nprintf '", locked_mark!(), "\\n'\n"))
        .then("", then.clone());
    // Nothing secret in the lock's and the facts' text: as the session's first command
    // it goes with the start of the host's shell.
    let options = k8sup_ssh::RunOptions {
        public: true,
        ..k8sup_ssh::RunOptions::default()
    };
    let mut out = match session.run_with(&script, options).await {
        Ok(out) => out,
        Err(e) => return (Err(HostLockError::Failed(e.to_string())), None),
    };
    if let Some(rest) = out.stdout.strip_prefix(LOCKED_MARK.as_bytes()) {
        out.stdout = rest.to_vec();
        session.hold_on_restart(relock_script(run));
        return (Ok(()), Some(out));
    }
    (Err(lock_failure(&out)), None)
}

/// Why the lock script did not take the lock, from its output.
fn lock_failure(out: &CommandOutput) -> HostLockError {
    match out.exit_status {
        Some(HELD) => HostLockError::Held(
            out.stdout_text()
                .lines()
                .next()
                .filter(|l| !l.is_empty())
                .unwrap_or("another run")
                .to_string(),
        ),
        _ => HostLockError::Failed(format!(
            "{}: {}",
            out.status_text(),
            out.stderr_text().trim()
        )),
    }
}

/// Takes the host's lock for `run` on `session`, whose target had
/// `held_file = Some(HOST_LOCK_FILE)`; a shell the session starts again later takes it
/// again before anything else. With `wait`, the lock is waited for up to that many
/// seconds.
pub async fn lock_host(
    session: &Session,
    run: &RunInfo,
    wait: Option<u32>,
) -> Result<(), HostLockError> {
    let out = session
        .run(&host_lock_script(run, wait))
        .await
        .map_err(|e| HostLockError::Failed(e.to_string()))?;
    if out.exit_status == Some(0) {
        session.hold_on_restart(relock_script(run));
        return Ok(());
    }
    Err(lock_failure(&out))
}

/// How the first host's lock went, as the other hosts see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum First {
    /// Not known yet.
    Pending,
    /// This run holds it.
    Locked,
    /// Another run holds it.
    Held,
    /// It could not be reached or locked for another reason: nothing waits for it.
    Gone,
}

/// The first host decides between two runs: of two runs started at once from two
/// controllers, the one that got the first host gets them all and the other refuses,
/// instead of each holding some and both refusing. Every host tries its lock at once
/// (no host waits for the first's answer: no round trip is spent on the order when
/// nobody contends). A host that finds another run holding it waits for the first
/// host's answer: when this run holds the first host, the other run is the one that
/// gives up (it drops every lock it took once it learns that its first host is held),
/// so the host tries again, waiting up to [`CONTENDED_WAIT_SECS`] for the lock; else
/// it is refused. A host whose turn comes after another run was found holding the
/// first host is not tried at all.
pub struct LockOrder {
    first: String,
    first_state: tokio::sync::watch::Sender<First>,
}

impl LockOrder {
    /// The order for a run whose first host is `first`.
    pub fn new(first: &str) -> LockOrder {
        LockOrder {
            first: first.to_string(),
            first_state: tokio::sync::watch::channel(First::Pending).0,
        }
    }

    /// Says that `host` could not even be connected to, so nothing waits for it.
    pub fn unreachable(&self, host: &str) {
        if host == self.first {
            self.first_state.send_replace(First::Gone);
        }
    }

    /// Locks `host` on `session` in this order (see [`lock_host`]).
    pub async fn lock(
        &self,
        host: &str,
        session: &Session,
        run: &RunInfo,
    ) -> Result<(), HostLockError> {
        self.take(host, |wait| async move {
            (lock_host(session, run, wait).await, None::<()>)
        })
        .await
        .0
    }

    /// Takes `host`'s lock in this order with `attempt`, which tries it once, waiting
    /// up to the seconds it is given (`None`: not at all), and returns how that went
    /// with what else it got: not tried when its turn is refused, tried again with
    /// [`CONTENDED_WAIT_SECS`] when [`LockOrder::try_again`] says so, then settled.
    pub async fn take<T, F, Fut>(
        &self,
        host: &str,
        mut attempt: F,
    ) -> (Result<(), HostLockError>, Option<T>)
    where
        F: FnMut(Option<u32>) -> Fut,
        Fut: std::future::Future<Output = (Result<(), HostLockError>, Option<T>)>,
    {
        if let Err(held) = self.turn(host) {
            return (Err(held), None);
        }
        let mut taken = attempt(None).await;
        if self.try_again(host, &taken.0).await {
            taken = attempt(Some(CONTENDED_WAIT_SECS)).await;
        }
        self.settle(host, &taken.0);
        taken
    }

    /// Whether `host` may try its lock: not once another run was found holding the
    /// first host (`Held` then, without trying).
    pub fn turn(&self, host: &str) -> Result<(), HostLockError> {
        if host != self.first && *self.first_state.borrow() == First::Held {
            return Err(self.not_tried());
        }
        Ok(())
    }

    fn not_tried(&self) -> HostLockError {
        HostLockError::Held(format!("the run that holds {} (not tried)", self.first))
    }

    /// After `host`'s first try gave `result`: whether to try again, waiting for the
    /// lock. Only when another run held `host` (not the first host) and this run holds
    /// the first host, which it waits to know.
    pub async fn try_again(&self, host: &str, result: &Result<(), HostLockError>) -> bool {
        if host == self.first || !matches!(result, Err(HostLockError::Held(_))) {
            return false;
        }
        let mut state = self.first_state.subscribe();
        let decided = state
            .wait_for(|s| *s != First::Pending)
            .await
            .map(|s| *s)
            .unwrap_or(First::Gone);
        decided == First::Locked
    }

    /// Says how `host`'s lock went; the first host's decides for the others.
    pub fn settle(&self, host: &str, result: &Result<(), HostLockError>) {
        if host == self.first {
            self.first_state.send_replace(match result {
                Ok(()) => First::Locked,
                Err(HostLockError::Held(_)) => First::Held,
                Err(HostLockError::Failed(_)) => First::Gone,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Waits (up to 5 s) until a holder has written its line into the lock file `lock`.
    fn wait_until_held(lock: &Path) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while std::fs::read_to_string(lock).unwrap_or_default().is_empty() {
            assert!(
                std::time::Instant::now() < deadline,
                "the lock was never taken"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    fn run(id: &str) -> RunInfo {
        RunInfo {
            run_id: id.into(),
            controller: "ctl".into(),
            pid: 7,
            started: "2026-12-02T03:00:00Z".into(),
        }
    }

    #[test]
    fn a_second_cluster_lock_names_the_holder_and_a_dropped_one_is_taken_over() {
        let dir = tempfile::tempdir().expect("temp dir");
        let first = lock_cluster(dir.path(), "prod", &run("one")).expect("free");
        let refused = lock_cluster(dir.path(), "prod", &run("two"))
            .expect_err("held")
            .to_string();
        assert!(
            refused.contains("cluster prod is locked by run one on controller ctl (pid 7)"),
            "{refused}"
        );
        drop(first);
        // Another test of this process may be forking: its child holds a copy of the
        // descriptor until its exec, so the lock may take a moment to be free.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let second = loop {
            match lock_cluster(dir.path(), "prod", &run("two")) {
                Ok(lock) => break lock,
                Err(e) if std::time::Instant::now() > deadline => panic!("not taken over: {e}"),
                Err(_) => std::thread::sleep(std::time::Duration::from_millis(20)),
            }
        };
        let text = std::fs::read_to_string(&second.path).expect("lock file");
        assert_eq!(text, format!("{}\n", run("two").line()));
    }

    #[test]
    fn a_restarted_shell_relocks_after_its_own_run_s_command_but_not_after_another_run() {
        let dir = tempfile::tempdir().expect("temp dir");
        let lock = dir.path().join("k8sup.lock");
        let path = lock.to_str().expect("utf-8").to_string();
        let relock = |id: &str| {
            relock_script(&run(id))
                .render()
                .replace(HOST_LOCK_FILE, &path)
        };
        // A command of a run holds the lock (as one that timed out, left running, does).
        let hold = |id: &str, seconds: &str| {
            std::process::Command::new("sh")
                .arg("-c")
                .arg(format!(
                    "exec 9>>'{path}'; flock 9; printf '%s\\n' \"$1\" > '{path}'; sleep {seconds}"
                ))
                .arg("k8sup")
                .arg(run(id).line())
                .spawn()
                .expect("sh runs")
        };
        let wait_held = || wait_until_held(&lock);
        // The restarted shell: fd 9 open, the relock script, then (still open) whether
        // someone else could take the lock, right away and once the command has ended.
        let shell = |id: &str| {
            std::process::Command::new("sh")
                .arg("-c")
                .arg(format!(
                    "exec 9>>'{path}'; sh -c \"$1\" || exit $?; echo started; \
                     flock -n '{path}' true && echo free-at-once; sleep 3; \
                     flock -n '{path}' true && echo free-later; exit 0"
                ))
                .arg("k8sup")
                .arg(relock(id))
                .output()
                .expect("sh runs")
        };
        let mut own = hold("one", "1");
        wait_held();
        let started = std::time::Instant::now();
        let again = shell("one");
        let said = String::from_utf8_lossy(&again.stdout).to_string();
        assert!(again.status.success(), "{again:?}");
        // The shell went on at once, the lock never free: the command, then the shell.
        assert!(said.starts_with("started"), "{said}");
        assert!(!said.contains("free"), "{said}");
        assert!(started.elapsed() < std::time::Duration::from_secs(10));
        assert_eq!(
            std::fs::read_to_string(&lock).expect("lock file"),
            format!("{}\n", run("one").line())
        );
        let _ = own.wait();

        std::fs::write(&lock, "").expect("reset");
        let mut other = hold("two", "30");
        wait_held();
        let refused = shell("one");
        assert_eq!(refused.status.code(), Some(HELD as i32), "{refused:?}");
        assert!(String::from_utf8_lossy(&refused.stdout).starts_with("run two on controller ctl"));
        let _ = other.kill();
        let _ = other.wait();
    }

    #[test]
    fn the_host_lock_script_locks_the_inherited_fd_and_names_the_holder() {
        // The shell's role played by a local sh holding fd 9 open on a temp file,
        // with the script's lock path pointed at it.
        let dir = tempfile::tempdir().expect("temp dir");
        let lock = dir.path().join("k8sup.lock");
        let script = |id: &str| {
            host_lock_script(&run(id), None)
                .render()
                .replace(HOST_LOCK_FILE, lock.to_str().expect("utf-8"))
        };
        let holder = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!(
                "exec 9>>'{}'; sh -c \"$1\" && sleep 5",
                lock.display()
            ))
            .arg("k8sup")
            .arg(script("one"))
            .spawn()
            .expect("sh runs");
        let mut holder = holder;
        wait_until_held(&lock);
        let second = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("exec 9>>'{}'; sh -c \"$1\"", lock.display()))
            .arg("k8sup")
            .arg(script("two"))
            .output()
            .expect("sh runs");
        assert_eq!(second.status.code(), Some(HELD as i32));
        assert!(String::from_utf8_lossy(&second.stdout).starts_with("run one on controller ctl"));
        let _ = holder.kill();
        let _ = holder.wait();
        let no_fd = std::process::Command::new("sh")
            .arg("-c")
            .arg(script("three"))
            .output()
            .expect("sh runs");
        assert_eq!(
            no_fd.status.code(),
            Some(2),
            "without fd 9 there is no lock"
        );
    }

    #[test]
    fn a_waiting_lock_script_gets_the_lock_once_the_holder_lets_it_go() {
        let dir = tempfile::tempdir().expect("temp dir");
        let lock = dir.path().join("k8sup.lock");
        let script = |id: &str, wait: Option<u32>| {
            host_lock_script(&run(id), wait)
                .render()
                .replace(HOST_LOCK_FILE, lock.to_str().expect("utf-8"))
        };
        let mut holder = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!(
                "exec 9>>'{}'; sh -c \"$1\" && sleep 2",
                lock.display()
            ))
            .arg("k8sup")
            .arg(script("one", None))
            .spawn()
            .expect("sh runs");
        wait_until_held(&lock);
        let second = |wait| {
            std::process::Command::new("sh")
                .arg("-c")
                .arg(format!("exec 9>>'{}'; sh -c \"$1\"", lock.display()))
                .arg("k8sup")
                .arg(script("two", wait))
                .output()
                .expect("sh runs")
        };
        // At once: refused, naming the holder.
        let refused = second(None);
        assert_eq!(refused.status.code(), Some(HELD as i32));
        assert!(String::from_utf8_lossy(&refused.stdout).starts_with("run one on controller ctl"));
        // Waiting: taken once the holder is gone.
        let taken = second(Some(20));
        assert!(taken.status.success(), "{taken:?}");
        assert_eq!(
            std::fs::read_to_string(&lock).expect("lock file"),
            format!("{}\n", run("two").line())
        );
        let _ = holder.wait();
    }

    #[tokio::test]
    async fn a_host_held_by_another_run_is_tried_again_only_when_this_run_holds_the_first() {
        let held = Err(HostLockError::Held("run x".into()));
        let order = LockOrder::new("m1");
        // Nobody waits to try: every host may try at once.
        assert!(order.turn("n1").is_ok());
        // The first host is never tried again, nor a host that got its lock.
        assert!(!order.try_again("m1", &held).await);
        assert!(!order.try_again("n1", &Ok(())).await);
        // A held host waits for the first host's answer: this run holds it, so again.
        let waiting = order.try_again("n1", &held);
        tokio::pin!(waiting);
        assert!(
            tokio::time::timeout(std::time::Duration::from_millis(50), &mut waiting)
                .await
                .is_err(),
            "decided before the first host's answer"
        );
        order.settle("m1", &Ok(()));
        assert!(waiting.await);

        // Another run holds the first host: no second try, and no first try after.
        let order = LockOrder::new("m1");
        order.settle("m1", &held);
        assert!(!order.try_again("n1", &held).await);
        let refused = order.turn("n2").expect_err("not tried");
        assert!(refused
            .to_string()
            .contains("the run that holds m1 (not tried)"));
        assert!(order.turn("m1").is_ok());

        // The first host unreachable: nobody waits for it, and a held host is refused.
        let order = LockOrder::new("m1");
        order.unreachable("m1");
        assert!(!order.try_again("n1", &held).await);
    }
}
