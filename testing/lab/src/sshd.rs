//! One real OpenSSH server per host: its configuration (chroot, key-only auth, limits high
//! enough for parallel orchestration) and starting it and waiting until it accepts.

use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::{LabError, Result};
use crate::hostfs::HostDirs;

pub const SSHD: &str = "/usr/sbin/sshd";

/// Renders the sshd_config of one host.
pub fn config(
    dirs: &HostDirs,
    address: &str,
    port: u16,
    authorized_keys: &Path,
    deny_lab_user: bool,
) -> String {
    let mut c = format!(
        "# Written by k8sup-lab for one lab host.\n\
         ListenAddress {address}:{port}\n\
         HostKey {key}\n\
         PidFile {pid}\n\
         AuthorizedKeysFile {authorized}\n\
         ChrootDirectory {root}\n\
         PubkeyAuthentication yes\n\
         PasswordAuthentication no\n\
         KbdInteractiveAuthentication no\n\
         PermitRootLogin prohibit-password\n\
         UsePAM no\n\
         StrictModes yes\n\
         MaxSessions 100\n\
         MaxStartups 1000\n\
         MaxAuthTries 10\n\
         LoginGraceTime 30\n\
         AllowTcpForwarding yes\n\
         AllowAgentForwarding yes\n\
         X11Forwarding no\n\
         PrintMotd no\n\
         PrintLastLog no\n\
         UseDNS no\n\
         AcceptEnv LANG LC_*\n\
         Subsystem sftp internal-sftp\n\
         LogLevel VERBOSE\n",
        key = dirs.host_key().display(),
        pid = dirs.sshd_pid().display(),
        authorized = authorized_keys.display(),
        root = dirs.root().display(),
    );
    if deny_lab_user {
        c.push_str("DenyUsers k8sup\n");
    }
    c
}

/// Starts `sshd -D` for a host; it runs in its own process group so that a terminal's ^C
/// aimed at the caller does not take the lab down with it, and in the host's network
/// namespace when it has one (so does everything it spawns).
pub fn spawn(host: &str, dirs: &HostDirs, netns: Option<&str>) -> Result<Child> {
    let _ = std::fs::remove_file(dirs.sshd_pid());
    let mut command = Command::new(SSHD);
    if let Some(name) = netns {
        let handle = crate::netns::NamespaceHandle::open(name)
            .map_err(LabError::host_io(host, "open the host's network namespace"))?;
        // SAFETY: the closure only calls setns(2), which is async-signal-safe.
        unsafe {
            command.pre_exec(move || handle.enter());
        }
    }
    command
        .arg("-D")
        .arg("-f")
        .arg(dirs.sshd_config())
        .arg("-E")
        .arg(dirs.sshd_log())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .map_err(LabError::host_io(host, "start sshd"))
}

/// Waits until the host's sshd accepts TCP connections.
pub fn wait_ready(
    host: &str,
    addr: SocketAddr,
    child: &mut Child,
    log: &Path,
    pid_file: &Path,
    timeout: Duration,
) -> Result<()> {
    let start = Instant::now();
    loop {
        // sshd writes its pid file just after it starts listening; faults and teardown
        // from other processes find it through that file, so wait for both.
        if pid_file_written(pid_file)
            && TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
        {
            return Ok(());
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(LabError::Host {
                host: host.into(),
                step: "start sshd",
                message: format!("sshd exited with {status}: {}", log_tail(log)),
            });
        }
        if start.elapsed() > timeout {
            return Err(LabError::Host {
                host: host.into(),
                step: "start sshd",
                message: format!(
                    "not accepting on {addr} after {timeout:?}: {}",
                    log_tail(log)
                ),
            });
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn pid_file_written(path: &Path) -> bool {
    std::fs::read_to_string(path).is_ok_and(|p| p.trim().parse::<i32>().is_ok())
}

/// The last lines of a host's sshd log, for error messages.
pub fn log_tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let tail = &lines[lines.len().saturating_sub(5)..];
    if tail.is_empty() {
        format!("(no log in {})", log.display())
    } else {
        tail.join(" | ")
    }
}

/// Ensures sshd's privilege separation directory exists.
pub fn ensure_privsep_dir() -> Result<()> {
    crate::layout::ensure_private_dir(Path::new("/run/sshd"))
}

/// Checks that the machine has what a lab needs.
pub fn check_prerequisites() -> Result<()> {
    if !crate::sys::is_root() {
        return Err(LabError::NotRoot);
    }
    for (path, package) in [
        (SSHD, "openssh-server"),
        ("/usr/bin/ssh-keygen", "openssh-client"),
        ("/usr/bin/sudo", "sudo"),
    ] {
        if !Path::new(path).exists() {
            return Err(LabError::Missing {
                what: path.into(),
                hint: format!("install it with `apt-get install -y {package}`"),
            });
        }
    }
    if !std::fs::read_to_string("/proc/filesystems")
        .unwrap_or_default()
        .contains("overlay")
    {
        return Err(LabError::Missing {
            what: "overlay filesystem".into(),
            hint: "the kernel must support overlayfs (`modprobe overlay`)".into(),
        });
    }
    Ok(())
}
