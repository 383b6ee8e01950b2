//! Issue 15 on the lab: three masters and two workers with no endpoint get
//! haproxy on every host (each host in its own network namespace, so 127.0.0.1
//! is its own); the cluster keeps serving with master 1 dead; a dead master is
//! removed and a new one added; a reachable worker is removed; a removal that
//! would lose etcd's quorum is refused before anything changes.

mod common;

use common::{assert_converged, k8sup, lab, on, spec, stderr, stdout, write_inventory};
use k8sup_lab::Lab;

/// The `server` lines of a host's haproxy.cfg: its backends.
fn backends(lab: &Lab, host: &str) -> Vec<String> {
    let cfg = std::fs::read_to_string(lab.host(host).unwrap().path("/etc/haproxy/haproxy.cfg"))
        .unwrap_or_else(|e| panic!("{host}: haproxy.cfg: {e}"));
    cfg.lines()
        .filter_map(|l| l.trim().strip_prefix("server "))
        .map(|l| l.split_whitespace().next().unwrap_or("").to_string())
        .collect()
}

/// The etcd members' names, as `etcdctl member list` prints them on `master`.
fn members(lab: &Lab, master: &str) -> Vec<String> {
    let out = on(
        lab,
        master,
        &format!("{} member list", k8sup_lab::client::KUBEADM_ETCDCTL),
    );
    let mut names: Vec<String> = out
        .lines()
        .filter_map(|l| l.split(", ").nth(2).map(str::to_string))
        .collect();
    names.sort();
    names
}

/// `kubectl get nodes` on `host` with its own kubeconfig (admin.conf on a master,
/// the kubelet's on a worker), which points at the host's own balancer.
fn get_nodes(lab: &Lab, host: &str, master: bool) -> std::process::Output {
    let conf = if master {
        "/etc/kubernetes/admin.conf"
    } else {
        "/etc/kubernetes/kubelet.conf"
    };
    // Right after a fault the balancer may still pick the master that failed, until
    // two health checks 2 s apart take it out: a few tries, 1 s apart, within 10 s.
    let command = format!("kubectl --kubeconfig {conf} get nodes -o name");
    let mut out = lab.ssh(host, &command).expect("ssh runs");
    for _ in 0..10 {
        if out.status.success() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_secs(1));
        out = lab.ssh(host, &command).expect("ssh runs");
    }
    out
}

fn ok(out: &std::process::Output) -> String {
    assert!(out.status.success(), "{}{}", stdout(out), stderr(out));
    stdout(out)
}

/// The inventory with `remove = true` on each of `hosts`.
fn removing(inventory: &str, hosts: &[&str]) -> String {
    let mut text = inventory.to_string();
    for host in hosts {
        let at = format!("name = \"{host}\"\n");
        assert!(text.contains(&at), "{host}");
        text = text.replacen(&at, &format!("{at}remove = true\n"), 1);
    }
    text
}

#[test]
fn the_control_plane_survives_its_first_master_and_nodes_come_and_go() {
    let Some(lab) = lab(&spec(
        r#"
name = "ha"
network = "namespaces"
[[hosts]]
name = "m1"
roles = ["master"]
[[hosts]]
name = "m2"
roles = ["master"]
[[hosts]]
name = "m3"
roles = ["master"]
[[hosts]]
name = "w1"
[[hosts]]
name = "w2"
[[hosts]]
name = "m4"
roles = ["master"]
"#,
    )) else {
        return;
    };
    let cluster = "[cluster]\nname = \"ha\"\nkubernetes_version = \"1.31\"\n";
    let full = lab.inventory_toml(cluster);
    // m4 comes later, to replace m1.
    let cut = full.find("\n[[hosts]]\nname = \"m4\"").expect("m4");
    let first = full[..cut].to_string();
    let inv = write_inventory(&lab, "ha.toml", &first);
    let inv = inv.to_str().unwrap();
    let state = lab.dir().join("k8sup-state");
    let env = [("K8SUP_STATE_DIR", state.to_str().unwrap())];

    // ---- no endpoint: every host runs the balancer, in front of every master ----
    let out = k8sup(&["apply", "-i", inv], &env);
    ok(&out);
    for host in ["m1", "m2", "m3", "w1", "w2"] {
        assert_eq!(backends(&lab, host), ["m1", "m2", "m3"], "{host}");
        assert_eq!(
            on(&lab, host, "systemctl is-active haproxy").trim(),
            "active",
            "{host}"
        );
        let kubelet = on(&lab, host, "cat /etc/kubernetes/kubelet.conf");
        assert!(
            kubelet.contains("server: https://127.0.0.1:7443"),
            "{host}: {kubelet}"
        );
    }
    assert_eq!(members(&lab, "m2"), ["m1", "m2", "m3"]);
    assert_converged(inv, &env);

    // ---- a removal and an upgrade in one inventory: refused before anything runs ----
    let both = removing(&first, &["w2"]).replace(
        "kubernetes_version = \"1.31\"",
        "kubernetes_version = \"1.32\"",
    );
    let both = write_inventory(&lab, "both.toml", &both);
    let both = both.to_str().unwrap();
    let refusal =
        "this inventory both raises kubernetes_version and removes hosts; nothing was changed";
    let plan = k8sup(&["plan", "-i", both], &env);
    assert_eq!(plan.status.code(), Some(1), "{}", stdout(&plan));
    assert!(stderr(&plan).contains(refusal), "{}", stderr(&plan));
    let out = k8sup(&["apply", "-i", both, "--yes"], &env);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(stderr(&out).contains(refusal), "{}", stderr(&out));
    assert!(ok(&get_nodes(&lab, "m2", true)).contains("node/w2"));
    assert_converged(inv, &env);

    // ---- with m3's etcd down, removing m2 would lose etcd's quorum: refused ----
    lab.faults("m3").unwrap().stop_static_pod("etcd").unwrap();
    let quorum = write_inventory(&lab, "quorum.toml", &removing(&first, &["m2"]));
    let quorum = quorum.to_str().unwrap();
    let refusal = "removing m2 would leave etcd 1 healthy of 2 member(s), short of a quorum of 2";
    let plan = k8sup(&["plan", "-i", quorum], &env);
    assert_eq!(plan.status.code(), Some(1), "{}", stdout(&plan));
    assert!(stderr(&plan).contains(refusal), "{}", stderr(&plan));
    let out = k8sup(&["apply", "-i", quorum, "--yes"], &env);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(stderr(&out).contains(refusal), "{}", stderr(&out));
    assert!(!stdout(&out).contains("m2: remove:"), "{}", stdout(&out));
    lab.faults("m3").unwrap().start_static_pod("etcd").unwrap();
    assert_eq!(members(&lab, "m2"), ["m1", "m2", "m3"]);
    assert!(ok(&get_nodes(&lab, "m3", true)).contains("node/m2"));
    let ready = |node: &str| {
        on(
            &lab,
            "m2",
            &format!("kubectl --kubeconfig /etc/kubernetes/admin.conf get node {node} -o jsonpath='{{.status.conditions[?(@.type==\"Ready\")].status}}'"),
        )
        .trim()
        .to_string()
    };
    // m3's kubelet lost its own API server while its etcd was down: every node is
    // Ready again before master 1 goes, so what follows is about master 1 only.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
    for node in ["m1", "m2", "m3", "w1", "w2"] {
        while ready(node) != "True" {
            assert!(
                std::time::Instant::now() < deadline,
                "{node} is not Ready again"
            );
            std::thread::sleep(std::time::Duration::from_secs(1));
        }
    }

    // ---- master 1 goes off (sshd, API server, etcd): the rest keeps serving ----
    lab.faults("m1").unwrap().power_off().unwrap();
    for (host, master) in [("m2", true), ("m3", true), ("w1", false), ("w2", false)] {
        let nodes = ok(&get_nodes(&lab, host, master));
        assert!(nodes.contains("node/w1"), "{host}: {nodes}");
    }
    // Once the node controller's grace period has passed, m1 (its kubelet gone) is
    // NotReady; the workers, whose kubelets post through their own balancers to the
    // masters that are up, stay Ready.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while ready("m1") == "True" {
        assert!(
            std::time::Instant::now() < deadline,
            "m1 stays Ready while off"
        );
        std::thread::sleep(std::time::Duration::from_secs(2));
    }
    for node in ["w1", "w2", "m2", "m3"] {
        assert_eq!(ready(node), "True", "{node}");
    }
    let plan = k8sup(&["plan", "-i", inv], &env);
    let said = stdout(&plan);
    assert!(said.contains("m1: unreachable, skipped:"), "{said}");
    for host in ["m2", "m3", "w1", "w2"] {
        assert!(
            said.contains(&format!("{host}: up to date")),
            "{host}: {said}"
        );
    }
    // apply would stop on a master that stays: plan says so, exit 1.
    assert_eq!(plan.status.code(), Some(1), "{said}{}", stderr(&plan));
    assert!(
        stderr(&plan).contains("unreachable: m1"),
        "{}",
        stderr(&plan)
    );

    // ---- remove the dead m1: needs --yes without a terminal ----
    let without_m1 = removing(&first, &["m1"]);
    let inv2 = write_inventory(&lab, "without-m1.toml", &without_m1);
    let inv2 = inv2.to_str().unwrap();
    let plan = k8sup(&["plan", "-i", inv2], &env);
    let said = ok(&plan);
    assert!(said.contains("m1: remove (master, unreachable)"), "{said}");
    assert!(said.contains("member remove"), "{said}");
    let refused = k8sup(&["apply", "-i", inv2], &env);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        stderr(&refused).contains("pass --yes"),
        "{}",
        stderr(&refused)
    );
    assert_eq!(members(&lab, "m2"), ["m1", "m2", "m3"]);
    ok(&k8sup(&["apply", "-i", inv2, "--yes"], &env));
    assert_eq!(members(&lab, "m2"), ["m2", "m3"]);
    assert!(!ok(&get_nodes(&lab, "m2", true)).contains("node/m1"));
    for host in ["m2", "m3", "w1", "w2"] {
        assert_eq!(backends(&lab, host), ["m2", "m3"], "{host}");
    }
    assert_converged(inv2, &env);

    // ---- add m4: three members, three backends ----
    let with_m4 = format!("{without_m1}{}", &full[cut..]);
    let inv3 = write_inventory(&lab, "with-m4.toml", &with_m4);
    let inv3 = inv3.to_str().unwrap();
    ok(&k8sup(&["apply", "-i", inv3, "--yes"], &env));
    assert_eq!(members(&lab, "m2"), ["m2", "m3", "m4"]);
    for host in ["m2", "m3", "m4", "w1", "w2"] {
        assert_eq!(backends(&lab, host), ["m2", "m3", "m4"], "{host}");
    }
    assert_converged(inv3, &env);

    // ---- remove a reachable worker: drained, deleted, reset, k8sup's files gone ----
    let without_w2 = removing(&with_m4, &["w2"]);
    let inv4 = write_inventory(&lab, "without-w2.toml", &without_w2);
    let inv4 = inv4.to_str().unwrap();
    let out = k8sup(&["apply", "-i", inv4, "--yes"], &env);
    let said = ok(&out);
    for step in [
        "w2: remove: cordon",
        "w2: remove: drain",
        "w2: remove: kubeadm reset",
        "w2: remove: delete node",
        "w2: removed",
    ] {
        assert!(said.contains(step), "{step}: {said}");
    }
    assert!(!ok(&get_nodes(&lab, "m2", true)).contains("node/w2"));
    for path in [
        "/etc/kubernetes/kubelet.conf",
        "/var/lib/k8sup",
        "/etc/k8sup",
        "/etc/haproxy/haproxy.cfg",
    ] {
        assert!(!lab.host("w2").unwrap().path(path).exists(), "w2:{path}");
    }
    assert_ne!(
        on(&lab, "w2", "systemctl is-active haproxy").trim(),
        "active"
    );
    let second = assert_converged(inv4, &env);
    assert!(stdout(&second).contains("w2: remove (node): nothing left to do"));

    // ---- an unreachable worker stops apply, unless --skip-unreachable ----
    lab.faults("w1").unwrap().power_off().unwrap();
    let out = k8sup(&["apply", "-i", inv4, "--yes"], &env);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("w1  FAIL  unreachable"),
        "{}",
        stderr(&out)
    );
    let out = k8sup(&["apply", "-i", inv4, "--yes", "--skip-unreachable"], &env);
    let said = ok(&out);
    assert!(
        said.contains("w1: unreachable, skipped: nothing runs on it"),
        "{said}"
    );
    assert!(said.contains("nothing to change"), "{said}");

    // ---- a node deleted from the inventory is warned of, never removed ----
    let start = without_w2.find("\n[[hosts]]\nname = \"w1\"").expect("w1");
    let end = without_w2[start + 1..]
        .find("\n[[hosts]]")
        .map_or(without_w2.len(), |e| start + 1 + e);
    let w1_gone = format!("{}{}", &without_w2[..start], &without_w2[end..]);
    let inv5 = write_inventory(&lab, "w1-gone.toml", &w1_gone);
    let inv5 = inv5.to_str().unwrap();
    let warning = "warning: node w1 is in the cluster but not in the inventory";
    let plan = k8sup(&["plan", "-i", inv5], &env);
    assert!(ok(&plan).contains(warning), "{}", stdout(&plan));
    let apply = k8sup(&["apply", "-i", inv5, "--yes"], &env);
    assert!(ok(&apply).contains(warning), "{}", stdout(&apply));
    assert!(ok(&get_nodes(&lab, "m2", true)).contains("node/w1"));
}
