//! A throwaway OpenSSH server for the transport's black-box tests.
//!
//! Each [`Sshd`] runs `/usr/sbin/sshd -D` on 127.0.0.1 at a free port, with its own host
//! key and authorized_keys under a root-owned directory in /var/tmp, and is killed and
//! removed on drop (also when the test panics). The tests need root (sshd only lets
//! root log in as root, and privilege separation wants it); without root or sshd they
//! print why and pass without running.

#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use k8sup_ssh::{HostKeyChecking, Target};

const SSHD: &str = "/usr/sbin/sshd";

/// Why these tests cannot run here, if they cannot.
pub fn unavailable() -> Option<String> {
    if !Path::new(SSHD).exists() {
        return Some(format!("{SSHD} is not installed"));
    }
    let uid = Command::new("id").arg("-u").output().ok()?;
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        return Some("not running as root".to_string());
    }
    None
}

/// Says why a test does not run (`SKIPPED: why`), or fails it under CI (`CI=true`)
/// or when `tests/run` runs the whole suite (`K8SUP_REQUIRE_LAB=1`), where a skip
/// would hide that it never ran.
pub fn skip(why: &str) {
    let required = ["CI", "K8SUP_REQUIRE_LAB"]
        .iter()
        .any(|name| std::env::var(name).is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true")));
    assert!(
        !required,
        "this test cannot run ({why}), and CI=true or K8SUP_REQUIRE_LAB=1 requires it"
    );
    eprintln!("SKIPPED: {why}");
}

/// Returns early from a test, saying why, when sshd tests cannot run (or fails it
/// where they must run, see [`skip`]).
#[macro_export]
macro_rules! require_sshd {
    () => {
        if let Some(why) = common::unavailable() {
            common::skip(&why);
            return;
        }
    };
}

pub struct Sshd {
    pub dir: PathBuf,
    pub port: u16,
    child: Child,
}

static NEXT: AtomicU32 = AtomicU32::new(0);

impl Sshd {
    /// Starts a server whose host key is ed25519 and which accepts `client_ed25519`.
    pub fn start() -> Sshd {
        Sshd::start_with_host_keys(&["ed25519"])
    }

    /// Starts a server whose sessions find bash as `sh` first in their PATH, as on
    /// the Red Hat family (sshd's `SetEnv`; sudo's own PATH finds the machine's `sh`).
    pub fn start_with_bash_as_sh() -> Sshd {
        Sshd::start_with(&["ed25519"], true)
    }

    /// Starts a server with a host key of each of `kinds` (`ed25519`, `ecdsa`, `rsa`),
    /// which accepts `client_ed25519`.
    pub fn start_with_host_keys(kinds: &[&str]) -> Sshd {
        Sshd::start_with(kinds, false)
    }

    fn start_with(kinds: &[&str], bash_as_sh: bool) -> Sshd {
        let dir = PathBuf::from(format!(
            "/var/tmp/k8sup-ssh-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create fixture dir");
        std::fs::create_dir_all("/run/sshd").expect("sshd privilege separation dir");
        for kind in kinds {
            keygen(&dir.join(format!("host_{kind}")), kind, "");
        }
        std::fs::write(dir.join("authorized_keys"), "").expect("authorized_keys");
        let port = free_port();
        let mut sshd_config = config(&dir, kinds);
        if bash_as_sh {
            let bin = dir.join("bash-as-sh");
            std::fs::create_dir_all(&bin).expect("bin dir");
            std::os::unix::fs::symlink("/bin/bash", bin.join("sh")).expect("sh -> bash");
            sshd_config.push_str(&format!(
                "SetEnv PATH={}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n",
                bin.display()
            ));
        }
        std::fs::write(dir.join("sshd_config"), sshd_config).expect("sshd_config");
        let child = Command::new(SSHD)
            .arg("-D")
            .arg("-e")
            .arg("-f")
            .arg(dir.join("sshd_config"))
            .arg("-p")
            .arg(port.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("sshd.log")).expect("log file"))
            .spawn()
            .expect("start sshd");
        let sshd = Sshd { dir, port, child };
        sshd.wait_until_listening();
        sshd.client_key("client_ed25519", "ed25519", "", true);
        sshd
    }

    fn wait_until_listening(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let log = std::fs::read_to_string(self.dir.join("sshd.log")).unwrap_or_default();
        panic!("sshd did not listen on {}: {log}", self.port);
    }

    /// Makes a client key `name` of `kind`, optionally encrypted, optionally authorized.
    pub fn client_key(
        &self,
        name: &str,
        kind: &str,
        passphrase: &str,
        authorized: bool,
    ) -> PathBuf {
        let path = self.dir.join(name);
        keygen(&path, kind, passphrase);
        if authorized {
            let public = std::fs::read_to_string(path.with_extension("pub")).expect("public key");
            let mut keys =
                std::fs::read_to_string(self.dir.join("authorized_keys")).expect("authorized_keys");
            keys.push_str(&public);
            std::fs::write(self.dir.join("authorized_keys"), keys).expect("authorized_keys");
        }
        path
    }

    /// The host's public key line (`ssh-ed25519 AAAA... comment`).
    pub fn host_public_key(&self) -> String {
        self.host_public_key_of("ed25519")
    }

    /// The public key line of the host key of `kind`.
    pub fn host_public_key_of(&self, kind: &str) -> String {
        std::fs::read_to_string(self.dir.join(format!("host_{kind}.pub"))).expect("host key")
    }

    /// The host key's fingerprint as `ssh-keygen -l` prints it.
    pub fn host_fingerprint(&self) -> String {
        let out = Command::new("ssh-keygen")
            .arg("-l")
            .arg("-f")
            .arg(self.dir.join("host_ed25519.pub"))
            .output()
            .expect("ssh-keygen -l");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.split_whitespace()
            .nth(1)
            .expect("fingerprint field")
            .to_string()
    }

    /// A known_hosts file holding `content`, under a fresh name.
    pub fn known_hosts(&self, name: &str, content: &str) -> PathBuf {
        let path = self.dir.join(name);
        std::fs::write(&path, content).expect("known_hosts");
        path
    }

    /// The line OpenSSH would record for this server.
    pub fn known_hosts_line(&self) -> String {
        format!("[127.0.0.1]:{} {}", self.port, self.host_public_key())
    }

    /// A strict target for root on this server, trusting its key, using `client_ed25519`.
    pub fn target(&self) -> Target {
        let mut target = Target::new("test-host", "127.0.0.1", "root");
        target.port = self.port;
        target.identity_file = Some(self.dir.join("client_ed25519"));
        target.known_hosts = self.known_hosts("known_hosts", &self.known_hosts_line());
        target.host_key_checking = HostKeyChecking::Strict;
        target.connect_timeout = Duration::from_secs(10);
        target.command_timeout = Duration::from_secs(60);
        target
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn config(dir: &Path, host_key_kinds: &[&str]) -> String {
    let d = dir.display();
    let host_keys: String = host_key_kinds
        .iter()
        .map(|kind| format!("HostKey {d}/host_{kind}\n"))
        .collect();
    format!(
        "ListenAddress 127.0.0.1\n\
         {host_keys}\
         AuthorizedKeysFile {d}/authorized_keys\n\
         PidFile {d}/sshd.pid\n\
         StrictModes no\n\
         PermitRootLogin prohibit-password\n\
         PubkeyAuthentication yes\n\
         PasswordAuthentication no\n\
         KbdInteractiveAuthentication no\n\
         UsePAM no\n\
         MaxSessions 200\n\
         MaxStartups 100\n\
         LogLevel INFO\n"
    )
}

fn keygen(path: &Path, kind: &str, passphrase: &str) {
    let mut command = Command::new("ssh-keygen");
    command
        .arg("-q")
        .arg("-t")
        .arg(kind)
        .arg("-N")
        .arg(passphrase)
        .arg("-C")
        .arg("k8sup-test")
        .arg("-f")
        .arg(path);
    if kind == "rsa" {
        command.arg("-b").arg("3072");
    }
    let status = command.status().expect("ssh-keygen runs");
    assert!(status.success(), "ssh-keygen -t {kind} failed");
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local addr").port()
}
