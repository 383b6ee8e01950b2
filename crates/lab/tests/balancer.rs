//! The real load balancers in lab hosts: `apt-get install haproxy` / `dnf install haproxy`
//! places Debian's real haproxy, and the emulated systemd really runs it inside the host's
//! network namespace: it forwards, health-checks and fails over, reloads, and fails as
//! systemd reports it when its configuration is bad or its port is taken.

use std::process::Output;
use std::time::{Duration, Instant};

use k8sup_lab::{Distro, HostSpec, Lab, LabSpec};

fn lab_available() -> bool {
    match k8sup_lab::client::unavailable() {
        Some(why) => {
            k8sup_lab::client::skip(why);
            false
        }
        None => true,
    }
}

fn run(lab: &Lab, host: &str, command: &str) -> Output {
    lab.ssh(host, command).expect("ssh")
}

fn ok(lab: &Lab, host: &str, command: &str) -> String {
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

/// A TCP server answering every connection with `reply` (python3 is the machine's).
fn serve(lab: &Lab, host: &str, port: u16, reply: &str) {
    let script = format!(
        "import socket\ns=socket.socket()\ns.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\ns.bind(('0.0.0.0',{port}))\ns.listen()\nwhile True:\n  c,a=s.accept()\n  c.sendall(b'{reply}\\n')\n  c.close()\n"
    );
    std::fs::write(lab.host(host).unwrap().path("/tmp/serve.py"), script).unwrap();
    ok(
        lab,
        host,
        "setsid python3 /tmp/serve.py </dev/null >/dev/null 2>&1 & echo $! > /tmp/serve.pid; sleep 0.3",
    );
}

fn fetch(lab: &Lab, host: &str, port: u16) -> Output {
    run(
        lab,
        host,
        &format!("timeout 5 python3 -c \"import socket;s=socket.create_connection(('127.0.0.1',{port}));print(s.recv(100).decode().strip())\""),
    )
}

fn haproxy_cfg(backends: &[(&str, std::net::Ipv4Addr)]) -> String {
    let mut cfg = String::from(
        "global\n  master-worker\n  stats socket /run/haproxy/admin.sock mode 660 level admin\n\
         defaults\n  mode tcp\n  timeout connect 2s\n  timeout client 30s\n  timeout server 30s\n\
         frontend apiserver\n  bind 127.0.0.1:6444\n  default_backend masters\n\
         backend masters\n  option tcp-check\n  default-server inter 200ms fall 1 rise 1\n",
    );
    for (name, addr) in backends {
        cfg.push_str(&format!("  server {name} {addr}:6443 check\n"));
    }
    cfg
}

fn until(what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "timed out: {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn real_haproxy_forwards_fails_over_reloads_and_reports_failures() {
    if !lab_available() {
        return;
    }
    let spec = LabSpec::new("haproxy")
        .netns()
        .host(HostSpec::new("lb").distro(Distro::Debian12))
        .host(HostSpec::new("m").count(2).master());
    let lab = Lab::up(&spec).expect("lab up");
    let m1 = lab.host("m-1").unwrap().address;
    let m2 = lab.host("m-2").unwrap().address;
    serve(&lab, "m-1", 6443, "m-1");
    serve(&lab, "m-2", 6443, "m-2");

    // Before the package: no haproxy.
    assert!(!run(&lab, "lb", "command -v haproxy").status.success());
    ok(
        &lab,
        "lb",
        "apt-get update -qq && apt-get install -y haproxy",
    );
    let version = ok(&lab, "lb", "haproxy -v");
    assert!(version.starts_with("HAProxy version 2.6.12"), "{version}");
    let unit = ok(&lab, "lb", "cat /lib/systemd/system/haproxy.service");
    assert!(unit.contains("ExecStart=/usr/sbin/haproxy -Ws -f $CONFIG -p $PIDFILE $EXTRAOPTS"));
    assert!(ok(&lab, "lb", "getent passwd haproxy").starts_with("haproxy:"));
    // Debian's postinst started it with the package's own configuration.
    assert_eq!(
        ok(&lab, "lb", "systemctl is-active haproxy").trim(),
        "active"
    );

    std::fs::write(
        lab.host("lb").unwrap().path("/etc/haproxy/haproxy.cfg"),
        haproxy_cfg(&[("m-1", m1), ("m-2", m2)]),
    )
    .unwrap();
    ok(&lab, "lb", "haproxy -c -f /etc/haproxy/haproxy.cfg");
    ok(&lab, "lb", "systemctl reload haproxy");
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..20 {
        let o = fetch(&lab, "lb", 6444);
        seen.insert(String::from_utf8_lossy(&o.stdout).trim().to_string());
    }
    assert!(seen.contains("m-1") && seen.contains("m-2"), "{seen:?}");

    // m-1's server stops: after a failed check every connection goes to m-2.
    ok(&lab, "m-1", "kill $(cat /tmp/serve.pid)");
    std::thread::sleep(Duration::from_millis(800));
    for _ in 0..10 {
        let o = fetch(&lab, "lb", 6444);
        assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "m-2");
    }
    // Both down: haproxy accepts and closes (what a client sees as EOF).
    ok(&lab, "m-2", "kill $(cat /tmp/serve.pid)");
    std::thread::sleep(Duration::from_millis(800));
    let none = fetch(&lab, "lb", 6444);
    assert_eq!(String::from_utf8_lossy(&none.stdout).trim(), "");

    // A bad configuration: the reload's check fails and the old daemon keeps running.
    let good =
        std::fs::read_to_string(lab.host("lb").unwrap().path("/etc/haproxy/haproxy.cfg")).unwrap();
    std::fs::write(
        lab.host("lb").unwrap().path("/etc/haproxy/haproxy.cfg"),
        format!("{good}  bogus-keyword here\n"),
    )
    .unwrap();
    let reload = run(&lab, "lb", "systemctl reload haproxy");
    assert_eq!(reload.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&reload.stderr).contains("Job for haproxy.service failed"));
    assert_eq!(
        ok(&lab, "lb", "systemctl is-active haproxy").trim(),
        "active"
    );
    let restart = run(&lab, "lb", "systemctl restart haproxy");
    assert_eq!(restart.status.code(), Some(1));
    let status = run(&lab, "lb", "systemctl status haproxy");
    let status_text = String::from_utf8_lossy(&status.stdout);
    assert_eq!(status.status.code(), Some(3), "{status_text}");
    assert!(status_text.contains("failed"), "{status_text}");
    assert!(status_text.contains("bogus-keyword"), "{status_text}");
    assert_eq!(
        run(&lab, "lb", "systemctl is-active haproxy").status.code(),
        Some(3)
    );

    // Port taken: the real bind error.
    std::fs::write(
        lab.host("lb").unwrap().path("/etc/haproxy/haproxy.cfg"),
        &good,
    )
    .unwrap();
    serve(&lab, "lb", 6444, "squatter");
    let start = run(&lab, "lb", "systemctl start haproxy");
    assert_eq!(start.status.code(), Some(1));
    let status = ok(&lab, "lb", "systemctl status haproxy || true");
    assert!(status.contains("Address already in use"), "{status}");
    ok(&lab, "lb", "kill $(cat /tmp/serve.pid)");
    ok(&lab, "lb", "systemctl start haproxy");
    until("haproxy listening", || {
        fetch(&lab, "lb", 6444).status.success()
    });

    // Stop: the daemon and its workers are gone, the port is free.
    ok(&lab, "lb", "systemctl stop haproxy");
    assert_eq!(
        run(&lab, "lb", "systemctl is-active haproxy").status.code(),
        Some(3)
    );
    assert!(String::from_utf8_lossy(&fetch(&lab, "lb", 6444).stderr).contains("Connection refused"));
}
