//! `control_plane_lb`, `control_plane_lb_port` and a host's `remove`: what each
//! inventory gets by default, and what is refused.

use std::path::Path;

use k8sup_inventory::{ControlPlaneLb, Endpoint, Inventory, LoadContext};

fn host(name: &str, address: &str, role: &str, extra: &str) -> String {
    format!(
        "[[hosts]]\nname = \"{name}\"\naddress = \"{address}\"\nroles = [\"{role}\"]\n{extra}\n"
    )
}

fn load(cluster: &str, hosts: &[String]) -> Result<Inventory, String> {
    let text = format!(
        "[cluster]\nname = \"c\"\nkubernetes_version = \"1.30\"\n{cluster}\n\n{}",
        hosts.concat()
    );
    let path = Path::new("inv.toml");
    Inventory::from_bytes(path, text.as_bytes(), &LoadContext::for_file(path))
        .map_err(|e| e.to_string())
}

fn three_masters(extra_on_first: &str) -> Vec<String> {
    vec![
        host("m1", "10.0.0.1", "master", extra_on_first),
        host("m2", "10.0.0.2", "master", ""),
        host("m3", "10.0.0.3", "master", ""),
        host("w1", "10.0.0.4", "node", ""),
    ]
}

#[test]
fn two_or_more_masters_without_an_endpoint_get_the_local_balancer() {
    let inv = load("", &three_masters("")).unwrap();
    assert_eq!(
        inv.cluster.control_plane_lb,
        ControlPlaneLb::Local { port: 7443 }
    );
    assert_eq!(
        inv.cluster.control_plane_endpoint,
        Endpoint {
            host: "127.0.0.1".into(),
            port: 7443
        }
    );
    let inv = load("control_plane_lb_port = 8443", &three_masters("")).unwrap();
    assert_eq!(
        inv.cluster.control_plane_lb,
        ControlPlaneLb::Local { port: 8443 }
    );
    assert_eq!(
        inv.cluster.control_plane_endpoint.to_string(),
        "127.0.0.1:8443"
    );
}

#[test]
fn an_endpoint_or_a_single_master_is_external_as_before() {
    let inv = load(
        "control_plane_endpoint = \"lb.example.org:6443\"",
        &three_masters(""),
    )
    .unwrap();
    assert_eq!(inv.cluster.control_plane_lb, ControlPlaneLb::External);
    assert_eq!(
        inv.cluster.control_plane_endpoint.to_string(),
        "lb.example.org:6443"
    );
    let one = load("", &[host("m1", "10.0.0.1", "master", "")]).unwrap();
    assert_eq!(one.cluster.control_plane_lb, ControlPlaneLb::External);
    assert_eq!(
        one.cluster.control_plane_endpoint.to_string(),
        "10.0.0.1:6443"
    );
    // A single master may take the balancer, so that masters can be added later
    // without moving the endpoint.
    let grow = load(
        "control_plane_lb = \"local\"",
        &[host("m1", "10.0.0.1", "master", "")],
    )
    .unwrap();
    assert_eq!(
        grow.cluster.control_plane_endpoint.to_string(),
        "127.0.0.1:7443"
    );
}

#[test]
fn contradictions_are_refused_with_their_place() {
    let e = load(
        "control_plane_lb = \"local\"\ncontrol_plane_endpoint = \"lb:6443\"",
        &three_masters(""),
    )
    .unwrap_err();
    assert!(
        e.contains("control_plane_endpoint and control_plane_lb = \"local\" exclude each other"),
        "{e}"
    );
    assert!(e.contains("inv.toml:"), "{e}");
    let e = load("control_plane_lb = \"external\"", &three_masters("")).unwrap_err();
    assert!(
        e.contains("control_plane_lb = \"external\" needs control_plane_endpoint"),
        "{e}"
    );
    let e = load("control_plane_lb = \"kube-vip\"", &three_masters("")).unwrap_err();
    assert!(
        e.contains("control_plane_lb \"kube-vip\" is not one of \"local\" or \"external\""),
        "{e}"
    );
    let e = load("control_plane_lb_port = 6443", &three_masters("")).unwrap_err();
    assert!(e.contains("6443 is the API server's own port"), "{e}");
    let e = load("control_plane_lb_port = 70000", &three_masters("")).unwrap_err();
    assert!(e.contains("not a TCP port"), "{e}");
    let e = load(
        "control_plane_endpoint = \"lb:6443\"\ncontrol_plane_lb_port = 7000",
        &three_masters(""),
    )
    .unwrap_err();
    assert!(e.contains("which this cluster does not run"), "{e}");
}

#[test]
fn removed_hosts_leave_the_masters_and_the_first_master_moves_on() {
    let inv = load("", &three_masters("remove = true")).unwrap();
    assert_eq!(inv.first_master().name, "m2");
    let masters: Vec<&str> = inv.masters().map(|h| h.name.as_str()).collect();
    assert_eq!(masters, ["m2", "m3"]);
    let removed: Vec<&str> = inv.removed().map(|h| h.name.as_str()).collect();
    assert_eq!(removed, ["m1"]);
    // Declared masters decide the default: removing one does not switch the
    // endpoint of a running cluster.
    assert_eq!(
        inv.cluster.control_plane_lb,
        ControlPlaneLb::Local { port: 7443 }
    );
    let e = load("", &[host("m1", "10.0.0.1", "master", "remove = true")]).unwrap_err();
    assert!(e.contains("every master has remove = true"), "{e}");
    let e = load("", &three_masters("remove = \"yes\"")).unwrap_err();
    assert!(e.contains("remove"), "{e}");
}
