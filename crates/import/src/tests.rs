//! Unit tests of the Kubespray import: YAML lines, INI, host patterns, the conversion.

use std::collections::BTreeSet;

use crate::ansible::{expand_hosts, strip_ini_comment, Kubespray};
use crate::convert::{convert, is_secret};
use crate::yaml::{parse_yaml, Node};

#[test]
fn yaml_nodes_keep_their_lines() {
    let root = parse_yaml(
        "all:\n  hosts:\n    node1:\n      ip: 10.0.0.1\n    node2:\n  vars:\n    list: [a, b]\n",
    )
    .expect("yaml")
    .expect("root");
    let hosts = root.get("all").and_then(|a| a.get("hosts")).expect("hosts");
    assert_eq!(hosts.entries()[0].1, 3);
    let ip = hosts.get("node1").and_then(|n| n.get("ip")).expect("ip");
    assert_eq!(ip, &Node::Scalar("10.0.0.1".into(), 4));
    // A host with no variables is named on its own line.
    assert_eq!(hosts.entries()[1].0, "node2");
    assert_eq!(hosts.entries()[1].1, 5);
    assert_eq!(hosts.get("node2").and_then(Node::scalar), Some(""));
    let vars = root.get("all").and_then(|a| a.get("vars")).expect("vars");
    assert_eq!(vars.entries()[0].1, 7);
    assert_eq!(vars.get("list").map(Node::text).as_deref(), Some("[a, b]"));
}

#[test]
fn ini_lines_lose_their_comments_not_their_values() {
    assert_eq!(
        strip_ini_comment("node1 ansible_host=95.54.0.12  # ip=10.3.0.1"),
        "node1 ansible_host=95.54.0.12  "
    );
    assert_eq!(strip_ini_comment("a=b#c"), "a=b#c");
    let mut ks = Kubespray::default();
    ks.read_ini(
        "inv.ini",
        "[kube_control_plane]\nn1 ansible_host=1.2.3.4 ip='10.0.0.1'\n# n9 ansible_host=9.9.9.9\n[etcd:children]\nkube_control_plane\n[all:vars]\nansible_user=ops\n",
    )
    .expect("ini");
    assert_eq!(ks.hosts, ["n1"]);
    assert_eq!(ks.members("etcd"), BTreeSet::from(["n1".to_string()]));
    let ip = &ks.host_vars["n1"][1];
    assert_eq!(
        (ip.key.as_str(), ip.value.text(), ip.line),
        ("ip", "10.0.0.1".into(), 2)
    );
    assert_eq!(ks.group_vars["all"][0].line, 7);
    let bad = Kubespray::default().read_ini("x.ini", "[kube_node\nn1\n");
    assert!(
        bad.unwrap_err().to_string().starts_with("x.ini:1: "),
        "names the line"
    );
}

#[test]
fn secrets_are_never_copied() {
    let mut ks = Kubespray::default();
    ks.read_ini(
        "inv.ini",
        "[kube_control_plane]\nn1 ansible_host=1.2.3.4 ansible_become_password=hunter2hunter2\n[all:vars]\nkubeadm_certificate_key=00ff00ff\n",
    )
    .expect("ini");
    let imported = convert(&ks, "c", "inv.ini").expect("converts");
    assert!(!imported.toml.contains("hunter2"), "{}", imported.toml);
    assert!(!imported.toml.contains("00ff00ff"), "{}", imported.toml);
    assert!(imported
        .not_carried
        .iter()
        .any(|l| l == "inv.ini:2: ansible_become_password: <redacted>"));
    assert!(is_secret("etcd_kubeadm_token") && !is_secret("ansible_ssh_private_key_file"));
}

#[test]
fn hosts_named_before_their_groups_take_roles_from_them() {
    // The shape of Kubespray's inventory docs: every host with its variables
    // first, then the groups naming them.
    let mut ks = Kubespray::default();
    ks.read_ini(
        "inv.ini",
        "a1 ansible_host=192.0.2.1 ip=10.1.0.1\na2 ansible_host=192.0.2.2 ip=10.1.0.2\na3 ansible_host=192.0.2.3\n\n[kube_control_plane]\na1\n\n[etcd]\na1\na3\n\n[kube_node]\na1\na2\na3\n",
    )
    .expect("ini");
    let imported = convert(&ks, "c", "inv.ini").expect("converts");
    let toml = &imported.toml;
    assert!(
        toml.contains("name = \"a1\"\naddress = \"192.0.2.1\"\ninternal_address = \"10.1.0.1\"\nroles = [\"master\", \"node\"]"),
        "{toml}"
    );
    assert!(
        toml.contains("name = \"a3\"\naddress = \"192.0.2.3\"\nroles = [\"node\"]"),
        "{toml}"
    );
    assert!(
        imported
            .not_carried
            .iter()
            .any(|l| l.starts_with("inv.ini:3: host a3: etcd membership differs")),
        "{:?}",
        imported.not_carried
    );
}

#[test]
fn host_patterns_expand_as_ansible_expands_them() {
    assert_eq!(expand_hosts("node1").unwrap(), ["node1"]);
    assert_eq!(expand_hosts("wk[08:10]").unwrap(), ["wk08", "wk09", "wk10"]);
    assert_eq!(
        expand_hosts("n[1:5:2].lan").unwrap(),
        ["n1.lan", "n3.lan", "n5.lan"]
    );
    assert_eq!(expand_hosts("db-[a:c]").unwrap(), ["db-a", "db-b", "db-c"]);
    assert_eq!(
        expand_hosts("r[1:2]n[1:2]").unwrap(),
        ["r1n1", "r1n2", "r2n1", "r2n2"]
    );
    for bad in ["n[1:", "n[3:1]", "n[1:2:0]", "n[a:1]", "n[1]"] {
        assert!(expand_hosts(bad).is_err(), "{bad}");
    }
    let mut ks = Kubespray::default();
    ks.read_ini(
        "inv.ini",
        "[kube_control_plane]\ncp[1:2] ansible_user=ops\n",
    )
    .expect("ini");
    assert_eq!(ks.hosts, ["cp1", "cp2"]);
    assert_eq!(ks.host_vars["cp2"][0].value.text(), "ops");
    let mut ks = Kubespray::default();
    let root = parse_yaml("kube_control_plane:\n  hosts:\n    cp[1:2]:\n      ip: 10.0.0.1\n")
        .expect("yaml")
        .expect("root");
    ks.read_yaml("h.yaml", &root)
        .expect("top-level groups are children of all");
    assert_eq!(ks.members("all").len(), 2);
}

#[test]
fn vault_encrypted_values_and_files_are_not_read() {
    let dir = tempfile::tempdir().expect("dir");
    let all = dir.path().join("all");
    std::fs::create_dir_all(&all).expect("mkdir");
    std::fs::write(
        all.join("vars.yml"),
        "kube_version: v1.30.2\nregistry_login: !vault |\n  $ANSIBLE_VAULT;1.1;AES256\n  6162636465\n",
    )
    .expect("write");
    std::fs::write(
        all.join("vault.yml"),
        "$ANSIBLE_VAULT;1.1;AES256\n3132333435\n",
    )
    .expect("write");
    let mut ks = Kubespray::default();
    ks.read_ini("inv.ini", "[kube_control_plane]\ncp1\n")
        .expect("ini");
    ks.read_group_vars(dir.path()).expect("group_vars");
    let imported = convert(&ks, "c", "inv.ini").expect("converts");
    assert!(
        imported.toml.contains("kubernetes_version = \"1.30.2\""),
        "{}",
        imported.toml
    );
    assert!(!imported.toml.contains("6162636465"), "{}", imported.toml);
    let listed = imported.not_carried.join("\n");
    assert!(
        listed.contains("vars.yml:2: registry_login: <redacted>"),
        "{listed}"
    );
    assert!(
        listed.contains("vault.yml:1: encrypted with ansible-vault"),
        "{listed}"
    );
}

#[test]
fn no_master_is_an_error() {
    let mut ks = Kubespray::default();
    ks.read_ini("inv.ini", "[kube_node]\nn1\n").expect("ini");
    let e = convert(&ks, "c", "inv.ini").unwrap_err();
    assert!(matches!(e, crate::ImportError::NoMaster { .. }), "{e}");
}
