//! The API server's network side, for real: while the kube-apiserver static pod runs on a
//! master and is healthy (beside a running etcd member, with quorum), a real TLS listener
//! serves the host's port 6443 (the machine's `openssl s_server -WWW`, answering `GET
//! /healthz|/livez|/readyz` with `HTTP/1.0 200 ok` and "ok"), so a real load balancer can
//! health-check it and forward to it. An unhealthy API server's port is closed (the real
//! one would listen and answer 500: a balancer's HTTP check marks both down, a bare TCP
//! check only the closed one); health is re-evaluated whenever the host's kubelet syncs
//! (after each emulated command on it) and by the lab's faults. Clients dial for real ([`dial`]): a TCP connection to the server of
//! their kubeconfig, then a TLS ClientHello, and the first byte back must be a TLS
//! handshake record. So `kubectl` through haproxy reaches a live master or fails as the
//! real one does (refused, EOF, reset, time-out), and each kubelet posts heartbeats
//! through its own kubeconfig server ([`run_heartbeat`]): a node whose kubelet cannot
//! reach an API server for the node-monitor grace period is NotReady.
//!
//! The listener binds all addresses of a namespaced host (`*:6443`), and only the host's
//! own address in a loopback lab (where 0.0.0.0 is the machine's). Heartbeats run in
//! namespaced labs only.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::Invocation;

/// The listener's files inside a host: certificate, key, served files, pid.
const DIR: &str = "/run/k8sup-lab/apiserver";
/// The kubelet heartbeat's pid file inside a host.
const HEARTBEAT_PID: &str = "/run/k8sup-lab/kubelet-heartbeat.pid";
/// Heartbeats in the cluster directory: one file per host, holding the last success.
const HEARTBEATS: &str = "heartbeats";
/// The controller manager's `--node-monitor-grace-period` (40 s), scaled like every lab
/// duration; without realistic durations the lab runs at a tenth of real time.
const NODE_MONITOR_GRACE_MS: u64 = 40_000;
const INSTANT_SCALE: f64 = 0.1;
/// The kubelet's `nodeStatusUpdateFrequency` (10 s), scaled the same way.
const HEARTBEAT_EVERY_MS: u64 = 10_000;

/// A TLS 1.2 ClientHello (SNI "kubernetes", the usual ECDHE suites), as `openssl s_client`
/// sends it: enough for any TLS server to answer with its ServerHello.
const CLIENT_HELLO: &str = "16030100ca010000c60303e84efb249f1e7b45acb27b7481031bb0382d087a45fecd8e2a5782243432dc58000038c02cc030009fcca9cca8ccaac02bc02f009ec024c028006bc023c0270067c00ac0140039c009c0130033009d009c003d003c0035002f00ff010000650000000f000d00000a6b756265726e65746573000b000403000102000a000c000a001d0017001e00190018002300000016000000170000000d002a0028040305030603080708080809080a080b080408050806040105010601030303010302040205020602";

static CLUSTER_ROOT: OnceLock<PathBuf> = OnceLock::new();

/// Where this process finds the cluster directory (set once by the emulator's main).
pub fn init(cluster_dir: &Path) {
    let _ = CLUSTER_ROOT.set(cluster_dir.to_path_buf());
}

/// Whether this process runs inside a host (the only place daemons may be started: its
/// chroot and network namespace), not in the lab's own process acting on a host's files.
fn in_host(inv: &Invocation) -> bool {
    inv.root == Path::new("/")
}

fn namespaced(inv: &Invocation) -> bool {
    inv.profile().is_ok_and(|p| p.namespaced)
}

fn scale() -> f64 {
    crate::durations::hooks::active()
        .map(|a| a.scaled(1_000_000) as f64 / 1_000_000.0)
        .unwrap_or(INSTANT_SCALE)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn read_pid(inv: &Invocation, file: &str) -> Option<i32> {
    inv.read(file)
        .ok()?
        .trim()
        .parse()
        .ok()
        .filter(|p| super::daemon::alive(*p))
}

fn kill(pid: i32) {
    let _ = crate::sys::signal(pid, libc::SIGTERM);
    for _ in 0..50 {
        if !super::daemon::alive(pid) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = crate::sys::signal(pid, libc::SIGKILL);
}

/// Starts or stops this host's listener after whether its API server serves.
pub fn sync_listener(inv: &Invocation, serving: bool) {
    let pid_file = format!("{DIR}/pid");
    let pid = read_pid(inv, &pid_file);
    if !serving {
        if let Some(p) = pid {
            kill(p);
        }
        let _ = std::fs::remove_file(inv.path(&pid_file));
        return;
    }
    if pid.is_some() || !in_host(inv) {
        return;
    }
    if let Err(e) = start_listener(inv, &pid_file) {
        super::kubelet::log(inv, &format!("kube-apiserver: {e}"));
    }
}

fn start_listener(inv: &Invocation, pid_file: &str) -> Result<(), String> {
    let www = format!("{DIR}/www");
    std::fs::create_dir_all(inv.path(&www)).map_err(|e| e.to_string())?;
    for endpoint in ["healthz", "livez", "readyz"] {
        std::fs::write(inv.path(&format!("{www}/{endpoint}")), "ok").map_err(|e| e.to_string())?;
    }
    let (cert, key) = (format!("{DIR}/tls.crt"), format!("{DIR}/tls.key"));
    if !inv.path(&cert).exists() {
        let out = std::process::Command::new("openssl")
            .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
            .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "3650"])
            .args([
                "-subj",
                "/CN=kube-apiserver",
                "-keyout",
                &key,
                "-out",
                &cert,
            ])
            .output()
            .map_err(|e| format!("openssl: {e}"))?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
    }
    let accept = if namespaced(inv) {
        "6443".to_string()
    } else {
        let address = inv.profile().map(|p| p.address).unwrap_or_default();
        format!("{address}:6443")
    };
    let argv: Vec<String> = [
        "/usr/bin/openssl",
        "s_server",
        "-accept",
        &accept,
        "-cert",
        &cert,
        "-key",
        &key,
        "-WWW",
        "-quiet",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let child = super::daemon::spawn_detached(inv, &argv, "kube-apiserver", &www)
        .map_err(|e| format!("start the listener: {e}"))?;
    inv.write(pid_file, &child.to_string())
        .map_err(|e| e.to_string())
}

/// What dialling an API server found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dial {
    /// A TLS server answered.
    Answered,
    Refused,
    /// The connection was accepted and closed without an answer (a balancer with no
    /// live backend).
    Eof,
    Reset {
        local: String,
        remote: String,
    },
    ConnectTimeout,
    HandshakeTimeout,
    Other(String),
}

/// Dials `host_port` for real from this process's network namespace.
pub fn dial(host_port: &str) -> Dial {
    let target = host_port.replace("localhost:", "127.0.0.1:");
    let addr: Option<SocketAddr> = target.to_socket_addrs().ok().and_then(|mut a| a.next());
    let Some(addr) = addr else {
        return Dial::Other(format!("dial tcp: lookup {host_port}: no such host"));
    };
    let mut stream = match TcpStream::connect_timeout(&addr, Duration::from_secs(5)) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => return Dial::Refused,
        Err(e) if e.kind() == std::io::ErrorKind::TimedOut => return Dial::ConnectTimeout,
        Err(e) => return Dial::Other(format!("dial tcp {host_port}: {e}")),
    };
    let hello: Vec<u8> = (0..CLIENT_HELLO.len() / 2)
        .filter_map(|i| u8::from_str_radix(&CLIENT_HELLO[2 * i..2 * i + 2], 16).ok())
        .collect();
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let local = stream
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let reset = || Dial::Reset {
        local: local.clone(),
        remote: addr.to_string(),
    };
    if stream.write_all(&hello).is_err() {
        return reset();
    }
    let mut first = [0u8; 1];
    match stream.read(&mut first) {
        Ok(0) => Dial::Eof,
        Ok(_) if first[0] == 0x16 => Dial::Answered,
        Ok(_) => Dial::Other("http: server gave HTTP response to HTTPS client".into()),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => reset(),
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) =>
        {
            Dial::HandshakeTimeout
        }
        Err(e) => Dial::Other(e.to_string()),
    }
}

/// What kubectl prints when dialling its server failed (client-go's wording), or `None`.
pub fn kubectl_error(host_port: &str, dial: &Dial) -> Option<String> {
    let unable = |why: String| Some(format!("Unable to connect to the server: {why}"));
    match dial {
        Dial::Answered => None,
        Dial::Refused => Some(format!(
            "The connection to the server {host_port} was refused - did you specify the right host or port?"
        )),
        Dial::Eof => unable("EOF".into()),
        Dial::Reset { local, remote } => unable(format!(
            "read tcp {local}->{remote}: read: connection reset by peer"
        )),
        Dial::ConnectTimeout => unable(format!("dial tcp {host_port}: i/o timeout")),
        Dial::HandshakeTimeout => unable("net/http: TLS handshake timeout".into()),
        Dial::Other(why) => unable(why.clone()),
    }
}

/// Whether clients on this host dial for real (a namespaced lab).
pub fn dials_for_real(inv: &Invocation) -> bool {
    namespaced(inv)
}

/// Starts this host's kubelet heartbeat when its kubelet runs (namespaced labs only).
pub fn sync_heartbeat(inv: &Invocation, kubelet_running: bool) {
    if !in_host(inv) || !namespaced(inv) {
        return;
    }
    let pid = read_pid(inv, HEARTBEAT_PID);
    match (kubelet_running, pid) {
        (true, None) => {
            let argv = vec![
                super::payload::EMULATOR.to_string(),
                "kubelet-heartbeat".to_string(),
            ];
            if let Ok(p) = super::daemon::spawn_detached(inv, &argv, "kubelet", "/") {
                let _ = inv.write(HEARTBEAT_PID, &p.to_string());
            }
        }
        (false, Some(p)) => kill(p),
        _ => {}
    }
}

/// The heartbeat loop (`k8sup-lab-emu kubelet-heartbeat`, started by [`sync_heartbeat`]):
/// while the kubelet runs, dial the server of its kubeconfig and record each answer.
pub fn run_heartbeat(inv: &mut Invocation) -> i32 {
    let host = inv.hostname();
    let dir = inv.path(&format!("{}/{HEARTBEATS}", super::cluster::CLUSTER_DIR));
    let _ = std::fs::create_dir_all(&dir);
    let every = Duration::from_millis((HEARTBEAT_EVERY_MS as f64 * scale()) as u64);
    loop {
        if !super::runtime::unit_active(inv, "kubelet.service") {
            return 0;
        }
        let server = inv
            .read("/etc/kubernetes/kubelet.conf")
            .ok()
            .and_then(|t| {
                t.lines().find_map(|l| {
                    l.trim()
                        .strip_prefix("server:")
                        .map(|s| s.trim().to_string())
                })
            })
            .unwrap_or_default();
        let host_port = server
            .trim_start_matches("https://")
            .trim_end_matches('/')
            .to_string();
        if !host_port.is_empty() && dial(&host_port) == Dial::Answered {
            let _ = std::fs::write(dir.join(&host), now_ms().to_string());
        }
        std::thread::sleep(every);
    }
}

/// Whether the node on `host` has posted a heartbeat within the grace period; `None`
/// when its kubelet posts none (loopback labs).
pub fn heartbeat_fresh(host: &str) -> Option<bool> {
    let dir = CLUSTER_ROOT.get()?;
    let text = std::fs::read_to_string(dir.join(HEARTBEATS).join(host)).ok()?;
    let last: u64 = text.trim().parse().ok()?;
    let grace = (NODE_MONITOR_GRACE_MS as f64 * scale()) as u64;
    Some(now_ms().saturating_sub(last) <= grace)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dialling_nothing_is_refused_and_a_silent_close_is_eof() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let closer = std::thread::spawn(move || {
            // Reads the whole hello, then closes: a clean EOF (unread data would be a
            // reset).
            let (mut c, _) = l.accept().unwrap();
            let mut buf = vec![0u8; CLIENT_HELLO.len() / 2];
            c.read_exact(&mut buf).unwrap();
        });
        assert_eq!(dial(&format!("127.0.0.1:{port}")), Dial::Eof);
        closer.join().unwrap();
        let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = free.local_addr().unwrap().port();
        drop(free);
        let d = dial(&format!("127.0.0.1:{port}"));
        assert_eq!(d, Dial::Refused);
        assert_eq!(
            kubectl_error(&format!("127.0.0.1:{port}"), &d).unwrap(),
            format!("The connection to the server 127.0.0.1:{port} was refused - did you specify the right host or port?")
        );
        assert_eq!(
            kubectl_error("x:1", &Dial::Eof).unwrap(),
            "Unable to connect to the server: EOF"
        );
    }

    #[test]
    fn the_client_hello_is_one_tls_handshake_record() {
        assert!(CLIENT_HELLO.starts_with("160301"));
        let len = u16::from_str_radix(&CLIENT_HELLO[6..10], 16).unwrap() as usize;
        assert_eq!(CLIENT_HELLO.len() / 2, 5 + len);
    }
}
