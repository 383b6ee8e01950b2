//! The real load balancers in lab hosts: `apt-get install haproxy` / `dnf install haproxy`
//! places Debian's real haproxy, and the emulated systemd really runs it inside the host's
//! network namespace: it forwards, health-checks and fails over, reloads, and fails as
//! systemd reports it when its configuration is bad or its port is taken.

use std::time::Duration;

use k8sup_lab::{Distro, HostSpec, Lab, LabSpec};

mod common;
use common::{err, fetch, lab_available, ok, reply, run, serve, until};

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
    serve(&lab, "m-1", "0.0.0.0", 6443, "m-1");
    serve(&lab, "m-2", "0.0.0.0", 6443, "m-2");

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
        let o = fetch(&lab, "lb", "127.0.0.1", 6444);
        seen.insert(reply(&o));
    }
    assert!(seen.contains("m-1") && seen.contains("m-2"), "{seen:?}");

    // m-1's server stops: after a failed check every connection goes to m-2.
    ok(&lab, "m-1", "kill $(cat /tmp/serve-6443.pid)");
    std::thread::sleep(Duration::from_millis(800));
    for _ in 0..10 {
        let o = fetch(&lab, "lb", "127.0.0.1", 6444);
        assert_eq!(reply(&o), "m-2");
    }
    // Both down: haproxy accepts and closes (what a client sees as EOF).
    ok(&lab, "m-2", "kill $(cat /tmp/serve-6443.pid)");
    std::thread::sleep(Duration::from_millis(800));
    let none = fetch(&lab, "lb", "127.0.0.1", 6444);
    assert_eq!(reply(&none), "");

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
    assert!(err(&reload).contains("Job for haproxy.service failed"));
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
    serve(&lab, "lb", "0.0.0.0", 6444, "squatter");
    let start = run(&lab, "lb", "systemctl start haproxy");
    assert_eq!(start.status.code(), Some(1));
    let status = ok(&lab, "lb", "systemctl status haproxy || true");
    assert!(status.contains("Address already in use"), "{status}");
    ok(&lab, "lb", "kill $(cat /tmp/serve-6444.pid)");
    ok(&lab, "lb", "systemctl start haproxy");
    until("haproxy listening", Duration::from_secs(20), || {
        fetch(&lab, "lb", "127.0.0.1", 6444).status.success()
    });

    // Stop: the daemon and its workers are gone, the port is free.
    ok(&lab, "lb", "systemctl stop haproxy");
    assert_eq!(
        run(&lab, "lb", "systemctl is-active haproxy").status.code(),
        Some(3)
    );
    assert!(err(&fetch(&lab, "lb", "127.0.0.1", 6444)).contains("Connection refused"));
}

#[test]
fn real_nginx_streams_and_el_packages_follow_their_units() {
    if !lab_available() {
        return;
    }
    let spec = LabSpec::new("nginx")
        .netns()
        .host(HostSpec::new("deb").distro(Distro::Debian12))
        .host(HostSpec::new("el").distro(Distro::Rocky9))
        .host(HostSpec::new("m").master());
    let lab = Lab::up(&spec).expect("lab up");
    let m = lab.host("m").unwrap().address;
    serve(&lab, "m", "0.0.0.0", 6443, "m");

    // Debian: nginx and its stream module, started by the postinst.
    ok(
        &lab,
        "deb",
        "apt-get update -qq && apt-get install -y nginx libnginx-mod-stream",
    );
    assert!(ok(&lab, "deb", "nginx -v 2>&1").contains("nginx/1.22.1"));
    assert_eq!(
        ok(&lab, "deb", "systemctl is-active nginx").trim(),
        "active"
    );
    std::fs::write(
        lab.host("deb").unwrap().path("/etc/nginx/stream.conf"),
        format!("stream {{\n  upstream kube {{ server {m}:6443; }}\n  server {{ listen 127.0.0.1:6444; proxy_pass kube; }}\n}}\n"),
    )
    .unwrap();
    ok(
        &lab,
        "deb",
        "echo 'include /etc/nginx/stream.conf;' >> /etc/nginx/nginx.conf && systemctl reload nginx",
    );
    until("nginx streams", Duration::from_secs(20), || {
        reply(&fetch(&lab, "deb", "127.0.0.1", 6444)) == "m"
    });
    // A bad configuration: `nginx -t` in ExecStartPre fails the restart, with nginx's words.
    ok(&lab, "deb", "echo 'bogus;' >> /etc/nginx/nginx.conf");
    let restart = run(&lab, "deb", "systemctl restart nginx");
    assert_eq!(restart.status.code(), Some(1));
    let status = ok(&lab, "deb", "systemctl status nginx || true");
    assert!(
        status.contains("[emerg]") && status.contains("bogus"),
        "{status}"
    );

    // EL: the rpm starts nothing; its unit checks the configuration before the start.
    ok(&lab, "el", "dnf install -y haproxy");
    assert_eq!(
        run(&lab, "el", "systemctl is-active haproxy").status.code(),
        Some(3)
    );
    assert!(
        ok(&lab, "el", "cat /usr/lib/systemd/system/haproxy.service")
            .contains("ExecStartPre=/usr/sbin/haproxy -f $CONFIG -f $CFGDIR -c -q $OPTIONS")
    );
    ok(&lab, "el", "systemctl enable --now haproxy");
    assert_eq!(
        ok(&lab, "el", "systemctl is-active haproxy").trim(),
        "active"
    );
    ok(&lab, "el", "systemctl stop haproxy");
    ok(
        &lab,
        "el",
        "echo '  bogus-keyword' >> /etc/haproxy/haproxy.cfg",
    );
    let start = run(&lab, "el", "systemctl start haproxy");
    assert_eq!(start.status.code(), Some(1));
    // `haproxy -c -q` says nothing; systemd reports the control process.
    let status = ok(&lab, "el", "systemctl status haproxy || true");
    assert!(
        status.contains("haproxy.service: Control process exited, code=exited, status=1/FAILURE"),
        "{status}"
    );
    let check = ok(
        &lab,
        "el",
        "haproxy -c -f /etc/haproxy/haproxy.cfg 2>&1 || true",
    );
    assert!(check.contains("bogus-keyword"), "{check}");
}
