//! Black-box tests of namespaced labs (`network = "namespaces"`): every host's 127.0.0.1 is
//! its own, hosts reach each other and the machine reaches them over the lab's bridge,
//! faults and the latency proxy work there, and teardown leaves no namespace, link or
//! process behind.

use std::process::{Command, Output};
use std::time::Duration;

use k8sup_lab::{HostSpec, Lab, LabSpec};

mod common;
use common::{err, fetch, lab_available, serve};

/// The output of a command that must have succeeded.
fn succeeded(o: Output) -> String {
    assert!(
        o.status.success(),
        "ssh failed ({}): {}{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn machine(command: &str, args: &[&str]) -> String {
    let out = Command::new(command).args(args).output().expect("run");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn each_host_has_its_own_loopback_and_reaches_the_others_over_the_bridge() {
    if !lab_available() {
        return;
    }
    let spec = LabSpec::new("netns")
        .netns()
        .host(HostSpec::new("a").master())
        .host(HostSpec::new("b"));
    let mut lab = Lab::up(&spec).expect("lab up");
    let (a, b) = (
        lab.host("a").unwrap().clone(),
        lab.host("b").unwrap().clone(),
    );
    assert_eq!(a.address.octets()[0], 198, "{}", a.address);
    let (ns_a, ns_b) = (a.netns.clone().unwrap(), b.netns.clone().unwrap());
    assert!(machine("ip", &["netns", "list"]).contains(&ns_a));

    // Both bind 127.0.0.1:6444: in one network namespace the second would fail.
    serve(&lab, "a", "127.0.0.1", 6444, "from-a");
    serve(&lab, "b", "127.0.0.1", 6444, "from-b");
    assert_eq!(
        succeeded(fetch(&lab, "a", "127.0.0.1", 6444)).trim(),
        "from-a 127.0.0.1"
    );
    assert_eq!(
        succeeded(fetch(&lab, "b", "127.0.0.1", 6444)).trim(),
        "from-b 127.0.0.1"
    );
    // The machine's own 127.0.0.1:6444 is neither.
    assert!(std::net::TcpStream::connect("127.0.0.1:6444").is_err());

    // A listener on all addresses is reached by the other host at its address.
    serve(&lab, "a", "0.0.0.0", 6445, "a-all");
    assert_eq!(
        succeeded(fetch(&lab, "b", &a.address.to_string(), 6445)).trim(),
        format!("a-all {}", b.address)
    );
    // Refused where nothing listens, as on a real network.
    let refused = fetch(&lab, "b", &a.address.to_string(), 6446);
    assert!(!refused.status.success());
    assert!(err(&refused).contains("Connection refused"));

    // The controller reaches the host from the bridge's address.
    let mut stream =
        std::net::TcpStream::connect((a.address, 6445)).expect("machine reaches host a");
    let mut text = String::new();
    std::io::Read::read_to_string(&mut stream, &mut text).unwrap();
    assert_eq!(
        text.trim(),
        format!("a-all {}", k8sup_lab::netns::CONTROLLER_ADDRESS)
    );

    // Faults: a killed sshd refuses, a restarted one (in its namespace again) answers.
    lab.faults("b").unwrap().kill_sshd().unwrap();
    assert!(lab.ssh("b", "true").unwrap().status.code() == Some(255));
    lab.faults("b").unwrap().start_sshd().unwrap();
    // Everything running in the host went down with it.
    let gone = fetch(&lab, "b", "127.0.0.1", 6444);
    assert!(err(&gone).contains("Connection refused"));

    // The latency proxy listens inside each host's namespace.
    lab.with_latency(Duration::from_millis(20)).expect("proxy");
    let via_proxy = lab
        .ssh_via(
            std::net::SocketAddr::from((a.address, k8sup_lab::PROXY_PORT)),
            "root",
            "cat /etc/hostname",
        )
        .unwrap();
    assert_eq!(succeeded(via_proxy).trim(), "a");

    let name = lab.name().to_string();
    let bridge = k8sup_lab::netns::read_record(lab.dir()).unwrap().bridge;
    lab.down().expect("teardown");
    let namespaces = machine("ip", &["netns", "list"]);
    assert!(!namespaces.contains(&name), "left: {namespaces}");
    let links = machine("ip", &["-o", "link"]);
    assert!(!links.contains(&format!("{bridge}:")), "left: {links}");
    assert!(!links.contains(&format!("{bridge}v")), "left: {links}");
    let left = k8sup_lab::teardown::lab_processes(&k8sup_lab::layout::labs_dir().join(&name));
    assert!(left.is_empty(), "{left:?}");
    assert!(!namespaces.contains(&ns_a) && !namespaces.contains(&ns_b));
}
