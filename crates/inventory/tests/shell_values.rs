//! A value from the inventory that will be put on a remote command line can only
//! be emitted quoted: `a';reboot;'` reaches the shell as inert data.

use std::path::Path;
use std::process::Command;

use k8sup_inventory::{Component, Inventory, LoadContext};
use k8sup_shell::Script;

const HOSTILE: &str = "a';reboot;'";

fn load(text: &str) -> Inventory {
    let ctx = LoadContext {
        home: "/home/tester".into(),
        local_user: "tester".into(),
        base_dir: ".".into(),
    };
    Inventory::from_bytes(Path::new("test.toml"), text.as_bytes(), &ctx)
        .unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn a_hostile_extra_arg_round_trips_through_sh_as_inert_data() {
    let inv = load(&format!(
        r#"
[cluster]
name = "lab"
kubernetes_version = "1.30.4"
[cluster.extra_args]
apiserver = {{ "audit-policy-file" = "{}" }}
[[hosts]]
name = "m1"
address = "10.0.0.10"
roles = ["master"]
"#,
        HOSTILE.replace('\\', "\\\\").replace('"', "\\\"")
    ));
    let arg = inv.cluster.extra_args[&Component::Apiserver]["audit-policy-file"].clone();
    assert_eq!(arg.as_str(), HOSTILE);

    // The only way to put the value on a command line is quoted.
    let line = Script::new("printf %s").arg(arg.clone()).render();
    assert_eq!(line, r#"printf %s 'a'\'';reboot;'\'''"#);
    assert_eq!(format!("{arg}"), r#"'a'\'';reboot;'\'''"#);

    let out = Command::new("sh")
        .arg("-c")
        .arg(&line)
        .output()
        .expect("sh runs");
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), HOSTILE);
}
