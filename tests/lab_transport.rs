//! The SSH transport end to end, through `k8sup facts` on lab hosts: host key
//! checking, an encrypted key, a bastion hop, sudo with and without a password,
//! a host that is down and a command that hangs.

mod common;

use common::{k8sup, lab, spec, stderr, stdout, write_inventory};
use k8sup_lab::{InventoryOptions, K8SUP_PASSWORD, KEY_PASSPHRASE};

fn facts_json(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_str(&stdout(out))
        .unwrap_or_else(|e| panic!("no JSON ({e}):\n{}\n{}", stdout(out), stderr(out)))
}

fn host<'a>(report: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    report["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["name"] == name)
        .unwrap_or_else(|| panic!("{name} not in {report:#}"))
}

#[test]
fn host_keys_are_checked_like_openssh() {
    let Some(lab) = lab(&spec(
        "name = \"hostkeys\"\n[[hosts]]\nname = \"h1\"\nroles = [\"master\"]\n",
    )) else {
        return;
    };
    let known = lab.dir().join("my_known_hosts");
    let with = |policy: &str| {
        lab.inventory_toml("")
            .replace(
                &format!("known_hosts = \"{}\"", lab.known_hosts().display()),
                &format!("known_hosts = \"{}\"", known.display()),
            )
            .replace(
                "host_key_checking = \"strict\"",
                &format!("host_key_checking = \"{policy}\""),
            )
    };

    // Unknown key, strict: refused, with the fingerprint and what to do.
    std::fs::write(&known, "").unwrap();
    let inv = write_inventory(&lab, "strict.toml", &with("strict"));
    let out = k8sup(&["facts", "-i", inv.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("the host key of h1 is not known"), "{err}");
    assert!(err.contains("SHA256:"), "{err}");
    assert!(err.contains("accept-new"), "{err}");

    // accept-new records it; strict then accepts it.
    let inv = write_inventory(&lab, "accept.toml", &with("accept-new"));
    let out = k8sup(&["facts", "-i", inv.to_str().unwrap()], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("recorded the new host key"),
        "{}",
        stderr(&out)
    );
    let recorded = std::fs::read_to_string(&known).unwrap();
    let h1 = &lab.hosts()[0];
    assert!(
        recorded.starts_with(&format!("[{}]:2222 ssh-ed25519 ", h1.address)),
        "{recorded}"
    );
    let inv = write_inventory(&lab, "strict.toml", &with("strict"));
    assert!(k8sup(&["facts", "-i", inv.to_str().unwrap()], &[])
        .status
        .success());

    // A changed key is refused, even with accept-new, and the file is left alone.
    // Same key type, different key: flip one base64 character of the recorded key.
    let line = recorded.lines().next().unwrap().to_string();
    let (head, key) = line.rsplit_once(' ').unwrap();
    let mut key = key.to_string();
    let at = key.len() - 2;
    let flipped = if &key[at..at + 1] == "A" { "B" } else { "A" };
    key.replace_range(at..at + 1, flipped);
    let forged = format!("{head} {key}\n");
    std::fs::write(&known, &forged).unwrap();
    let inv = write_inventory(&lab, "accept.toml", &with("accept-new"));
    let out = k8sup(&["facts", "-i", inv.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("HAS CHANGED"), "{}", stderr(&out));
    assert_eq!(std::fs::read_to_string(&known).unwrap(), forged);
}

#[test]
fn an_encrypted_key_needs_its_passphrase() {
    let Some(lab) = lab(&spec(
        "name = \"enckey\"\n[[hosts]]\nname = \"h1\"\nroles = [\"master\"]\n",
    )) else {
        return;
    };
    let opts = InventoryOptions {
        encrypted_key: true,
        ..InventoryOptions::default()
    };
    let inv = write_inventory(&lab, "enc.toml", &lab.inventory_toml_with("", &opts));
    let inv = inv.to_str().unwrap();
    let out = k8sup(&["facts", "-i", inv], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("is encrypted and no passphrase is available"),
        "{}",
        stderr(&out)
    );
    let out = k8sup(
        &["facts", "-i", inv],
        &[("K8SUP_KEY_PASSPHRASE", KEY_PASSPHRASE)],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stderr(&out).contains(KEY_PASSPHRASE) && !stdout(&out).contains(KEY_PASSPHRASE));
}

#[test]
fn sudo_with_and_without_a_password_and_a_bastion_hop() {
    let Some(lab) = lab(&spec(
        r#"
name = "become"
bastion = true
[[hosts]]
name = "nopasswd"
roles = ["master"]
k8sup_user = "nopasswd"
[[hosts]]
name = "password"
k8sup_user = "password"
"#,
    )) else {
        return;
    };
    let opts = InventoryOptions {
        as_lab_user: true,
        through_bastion: true,
        ..InventoryOptions::default()
    };
    let text = lab.inventory_toml_with("", &opts);
    assert!(text.contains("jump_host"), "{text}");
    let inv = write_inventory(&lab, "become.toml", &text);
    let inv = inv.to_str().unwrap();

    // Without the password: the NOPASSWD host is root through sudo; the other
    // says that sudo wants a password.
    let out = k8sup(&["facts", "-i", inv, "--json"], &[]);
    let report = facts_json(&out);
    assert_eq!(host(&report, "nopasswd")["facts"]["uid"], 0);
    assert!(
        host(&report, "password")["sudo_problem"]
            .as_str()
            .unwrap_or_default()
            .contains("asks for a password"),
        "{report:#}"
    );

    // With it, both are root, and the password is nowhere in the output.
    let out = k8sup(
        &["facts", "-i", inv, "--json"],
        &[("K8SUP_BECOME_PASSWORD", K8SUP_PASSWORD)],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let report = facts_json(&out);
    assert_eq!(host(&report, "password")["facts"]["uid"], 0);
    assert_eq!(
        host(&report, "password")["sudo_problem"],
        serde_json::Value::Null
    );
    assert!(!stdout(&out).contains(K8SUP_PASSWORD) && !stderr(&out).contains(K8SUP_PASSWORD));

    // A wrong password is refused by name, never echoed.
    let out = k8sup(
        &["facts", "-i", inv, "--json"],
        &[("K8SUP_BECOME_PASSWORD", "not-the-password")],
    );
    let report = facts_json(&out);
    assert!(
        host(&report, "password")["sudo_problem"]
            .as_str()
            .unwrap_or_default()
            .contains("refused the password"),
        "{report:#}"
    );
    assert!(!stdout(&out).contains("not-the-password"));

    // Every connection went through the bastion: its sshd accepted one login
    // per host per run (3 runs x 2 hosts), as a ProxyJump does.
    let bastion = lab.bastion().expect("a bastion");
    let log = std::fs::read_to_string(bastion.sshd_log()).unwrap();
    let logins = log.matches("Accepted publickey for root").count();
    assert!(logins >= 6, "the bastion saw {logins} logins:\n{log}");
}

#[test]
fn a_down_host_and_a_hanging_command_fail_alone() {
    let Some(lab) = lab(&spec(
        r#"
name = "faults"
[[hosts]]
name = "fine"
roles = ["master"]
[[hosts]]
name = "down"
[[hosts]]
name = "hangs"
"#,
    )) else {
        return;
    };
    lab.faults("down").unwrap().stop_sshd().unwrap();
    lab.faults("hangs").unwrap().hang_command("uname").unwrap();
    let text = lab.inventory_toml("").replace(
        "host_key_checking = \"strict\"\n",
        "host_key_checking = \"strict\"\ncommand_timeout = \"3s\"\nconnect_timeout = \"2s\"\n",
    );
    let inv = write_inventory(&lab, "faults.toml", &text);
    let started = std::time::Instant::now();
    let out = k8sup(&["facts", "-i", inv.to_str().unwrap(), "--json"], &[]);
    let took = started.elapsed();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let report = facts_json(&out);
    assert_eq!(host(&report, "fine")["facts"]["os"]["id"], "ubuntu");
    let down = host(&report, "down")["error"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(down.contains("cannot reach down"), "{down}");
    let hangs = host(&report, "hangs")["error"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(hangs.contains("did not finish within 3s"), "{hangs}");
    // Not a timing assertion: a hang must end by the timeout, not never.
    assert!(took.as_secs() < 60, "facts took {took:?}");
}
