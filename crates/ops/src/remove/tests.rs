use std::collections::BTreeSet;

use k8sup_inventory::{Inventory, LoadContext};

use super::*;

/// Three masters and two workers; `remove` marks the named hosts.
fn inventory(remove: &[&str]) -> Inventory {
    let mut text = "[cluster]\nname = \"c\"\nkubernetes_version = \"1.31\"\n".to_string();
    for (i, (name, role)) in [
        ("m1", "master"),
        ("m2", "master"),
        ("m3", "master"),
        ("w1", "node"),
        ("w2", "node"),
    ]
    .iter()
    .enumerate()
    {
        text.push_str(&format!(
            "\n[[hosts]]\nname = \"{name}\"\naddress = \"10.0.0.{}\"\nroles = [\"{role}\"]\nremove = {}\n",
            i + 1,
            remove.contains(name)
        ));
    }
    let path = std::path::Path::new("inv.toml");
    Inventory::from_bytes(path, text.as_bytes(), &LoadContext::for_file(path)).expect("inventory")
}

const LISTED: &str = "--- nodes
node/m1
node/m2
node/m3
node/w1
node/w2
node/old7
--- members
8e9e05c52164694d, started, m1, https://10.0.0.1:2380, https://10.0.0.1:2379, false
91bc3c398fb3c146, started, m2, https://10.0.0.2:2380, https://10.0.0.2:2379, false
fd422379fda50e48, started, m3, https://10.0.0.3:2380, https://10.0.0.3:2379, false
--- health
https://10.0.0.2:2379 is healthy: successfully committed proposal: took = 2.1ms
https://10.0.0.3:2379 is healthy: successfully committed proposal: took = 2.4ms
https://10.0.0.1:2379 is unhealthy: failed to commit proposal: context deadline exceeded
Error: unhealthy cluster
";

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

#[test]
fn nodes_members_and_health_are_read_from_etcdctl_and_kubectl() {
    let view = parse_cluster(LISTED);
    assert!(view.exists);
    assert_eq!(view.nodes, ["m1", "m2", "m3", "w1", "w2", "old7"]);
    let members: Vec<(&str, &str, bool)> = view
        .members
        .iter()
        .map(|m| (m.id.as_str(), m.name.as_str(), m.healthy))
        .collect();
    assert_eq!(
        members,
        [
            ("8e9e05c52164694d", "m1", false),
            ("91bc3c398fb3c146", "m2", true),
            ("fd422379fda50e48", "m3", true)
        ]
    );
    assert_eq!(parse_cluster("k8sup-no-cluster\n"), ClusterView::default());
}

#[test]
fn a_dead_master_leaves_etcd_then_the_cluster_and_nothing_runs_on_it() {
    let inv = inventory(&["m1"]);
    let view = parse_cluster(LISTED);
    let plan = plan_removals(&inv, &set(&[]), &set(&[]), &view).unwrap();
    insta::assert_snapshot!("dead_master", plan.render("m2"));
    let steps: Vec<&str> = plan.removals[0]
        .steps
        .iter()
        .map(|s| s.what.as_str())
        .collect();
    assert_eq!(steps, ["etcd member remove", "delete node"]);
    assert_eq!(strays(&inv, &view), ["old7"]);
}

#[test]
fn a_reachable_worker_is_cordoned_drained_reset_then_deleted() {
    let inv = inventory(&["w1"]);
    let view = parse_cluster(LISTED);
    let plan = plan_removals(&inv, &set(&["w1"]), &set(&["w1"]), &view).unwrap();
    insta::assert_snapshot!("reachable_worker", plan.render("m1"));
    let steps: Vec<(&str, &On)> = plan.removals[0]
        .steps
        .iter()
        .map(|s| (s.what.as_str(), &s.on))
        .collect();
    assert_eq!(
        steps,
        [
            ("cordon", &On::FirstMaster),
            ("drain", &On::FirstMaster),
            ("kubeadm reset and k8sup's cleanup", &On::Removed),
            ("delete node", &On::FirstMaster)
        ]
    );
}

#[test]
fn a_removed_node_already_gone_and_clean_has_nothing_left_to_do() {
    let inv = inventory(&["w1"]);
    let mut view = parse_cluster(LISTED);
    view.nodes.retain(|n| n != "w1");
    let plan = plan_removals(&inv, &set(&["w1"]), &set(&[]), &view).unwrap();
    assert!(!plan.has_steps());
    // Still holding kubeadm's files (a reset that failed half way): reset again.
    let plan = plan_removals(&inv, &set(&["w1"]), &set(&["w1"]), &view).unwrap();
    assert_eq!(plan.removals[0].steps.len(), 1);
}

#[test]
fn a_removal_that_would_lose_quorum_is_refused() {
    let view = parse_cluster(LISTED);
    // m1 is dead: removing the healthy m2 leaves m1 (dead) and m3: 1 healthy of 2.
    let e = plan_removals(&inventory(&["m2"]), &set(&["m2"]), &set(&["m2"]), &view).unwrap_err();
    assert_eq!(
        e.to_string(),
        "removing m2 would leave etcd 1 healthy of 2 member(s), short of a quorum of 2: the control plane would stop; nothing was changed"
    );
    // Removing the dead m1 first keeps a quorum: 2 healthy of 2.
    assert!(plan_removals(&inventory(&["m1"]), &set(&[]), &set(&[]), &view).is_ok());
    // Both the dead one and a live one: 1 healthy of 1 is a quorum.
    assert!(plan_removals(
        &inventory(&["m1", "m2"]),
        &set(&["m2"]),
        &set(&["m2"]),
        &view
    )
    .is_ok());
    // Two of three dead: no quorum to remove anything with.
    let mut two_dead = view.clone();
    two_dead.members[1].healthy = false;
    let e = plan_removals(&inventory(&["m1"]), &set(&[]), &set(&[]), &two_dead).unwrap_err();
    assert!(
        e.to_string().starts_with(
            "removing m1 needs etcd's quorum, but only 1 of its 3 members are healthy"
        ),
        "{e}"
    );
}

/// The script that reads the cluster, run by a real `sh` against stand-ins for
/// kubectl and etcdctl: the health is asked of every member's client URL.
#[test]
fn the_cluster_script_asks_every_member_s_url_for_its_health() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let admin = dir.path().join("admin.conf");
    std::fs::write(&admin, "").unwrap();
    let log = dir.path().join("etcdctl.log");
    let tools = [
        ("kubectl", "#!/bin/sh\nprintf 'node/m1\\nnode/m2\\nnode/w1\\n'\n".to_string()),
        (
            "etcdctl",
            format!(
                "#!/bin/sh\necho \"$*\" >> {}\ncase \"$*\" in\n*'member list'*) printf '8e9e05c52164694d, started, m1, https://10.0.0.1:2380, https://10.0.0.1:2379, false\\n91bc3c398fb3c146, started, m2, https://10.0.0.2:2380, https://10.0.0.2:2379, false\\n';;\n*'endpoint health'*) echo 'https://10.0.0.2:2379 is healthy: successfully committed proposal: took = 2ms'; echo 'https://10.0.0.1:2379 is unhealthy: failed to commit proposal: context deadline exceeded' >&2; echo 'Error: unhealthy cluster' >&2; exit 1;;\nesac\n",
                log.display()
            ),
        ),
    ];
    for (name, text) in tools {
        let path = bin.join(name);
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    // The stand-ins first: this machine may have a kubectl of its own.
    let text = cluster_script(true)
        .replace(PATH, "")
        .replace("/etc/kubernetes/admin.conf", admin.to_str().unwrap());
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(&text)
        .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let view = parse_cluster(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(view.nodes, ["m1", "m2", "w1"]);
    let health: Vec<(&str, bool)> = view
        .members
        .iter()
        .map(|m| (m.name.as_str(), m.healthy))
        .collect();
    assert_eq!(health, [("m1", false), ("m2", true)]);
    let calls = std::fs::read_to_string(&log).unwrap();
    let health = calls
        .lines()
        .find(|l| l.ends_with(" endpoint health"))
        .unwrap_or_else(|| panic!("no endpoint health in {calls}"));
    assert!(
        health.starts_with("--endpoints=https://10.0.0.1:2379,https://10.0.0.2:2379 "),
        "{calls}"
    );
}
