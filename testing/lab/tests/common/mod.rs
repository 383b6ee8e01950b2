//! Helpers shared by the lab's tests over real ssh: commands in
//! hosts over SSH, a one-line TCP server and client inside a host, and waiting.

#![allow(dead_code)] // each test file uses its own part

use std::process::Output;
use std::time::{Duration, Instant};

use k8sup_lab::Lab;

/// Whether a lab can run here (else the test says why and passes, unless CI requires it).
pub fn lab_available() -> bool {
    match k8sup_lab::client::unavailable() {
        Some(why) => {
            k8sup_lab::client::skip(why);
            false
        }
        None => true,
    }
}

pub fn run(lab: &Lab, host: &str, command: &str) -> Output {
    lab.ssh(host, command).expect("ssh")
}

/// Runs `command` in `host`, which must succeed; its stdout.
pub fn ok(lab: &Lab, host: &str, command: &str) -> String {
    let o = run(lab, host, command);
    assert!(
        o.status.success(),
        "{host}: {command}: {}\n{}{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Runs `command` in `host`, which must fail with `status`; its stdout and stderr.
pub fn fails(lab: &Lab, host: &str, command: &str, status: i32) -> String {
    let o = run(lab, host, command);
    assert_eq!(
        o.status.code(),
        Some(status),
        "{host}: `{command}`: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

pub fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).trim().to_string()
}

/// A TCP server in `host` on `bind:port` answering every connection with `reply` and the
/// peer's address (python3 is the machine's, under every host's /usr); its pid is in
/// /tmp/serve-<port>.pid.
pub fn serve(lab: &Lab, host: &str, bind: &str, port: u16, reply: &str) {
    let script = format!(
        "import socket\ns=socket.socket()\ns.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\ns.bind(('{bind}',{port}))\ns.listen()\nwhile True:\n  c,a=s.accept()\n  c.sendall(b'{reply} '+a[0].encode()+b'\\n')\n  c.close()\n"
    );
    let file = format!("/tmp/serve-{port}.py");
    std::fs::write(lab.host(host).unwrap().path(&file), script).unwrap();
    ok(
        lab,
        host,
        &format!("setsid python3 {file} </dev/null >/dev/null 2>&1 & echo $! > /tmp/serve-{port}.pid; sleep 0.3"),
    );
}

/// The first word a client in `host` reads from `addr:port` (stdout), or its failure.
pub fn fetch(lab: &Lab, host: &str, addr: &str, port: u16) -> Output {
    run(
        lab,
        host,
        &format!("timeout 5 python3 -c \"import socket;s=socket.create_connection(('{addr}',{port}));print(s.recv(100).decode().strip())\""),
    )
}

/// What `fetch` read: the server's reply word.
pub fn reply(o: &Output) -> String {
    stdout(o)
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_string()
}

pub fn until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < timeout, "timed out: {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}
