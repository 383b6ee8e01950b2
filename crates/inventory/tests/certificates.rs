//! `[certificates] renew_before`: when `apply` renews the control plane's certificates.

use std::path::Path;
use std::time::Duration;

use k8sup_inventory::{Inventory, LoadContext};

const BASE: &str = "[cluster]\nname = \"c\"\nkubernetes_version = \"1.30\"\n\n[[hosts]]\nname = \"m1\"\naddress = \"10.0.0.5\"\nroles = [\"master\"]\n";

fn load(extra: &str) -> Result<Inventory, String> {
    let text = format!("{BASE}\n{extra}");
    let path = Path::new("inv.toml");
    Inventory::from_bytes(path, text.as_bytes(), &LoadContext::for_file(path))
        .map_err(|e| e.to_string())
}

#[test]
fn renew_before_is_a_duration_under_a_year() {
    assert_eq!(load("").unwrap().certificates.renew_before, None);
    let inv = load("[certificates]\nrenew_before = \"30d\"\n").unwrap();
    assert_eq!(
        inv.certificates.renew_before,
        Some(Duration::from_secs(30 * 86_400))
    );
    let e = load("[certificates]\nrenew_before = \"soon\"\n").unwrap_err();
    assert!(e.contains("renew_before \"soon\" is not a duration"), "{e}");
    assert!(e.contains("inv.toml:"), "{e}");
    let e = load("[certificates]\nrenew_before = \"400d\"\n").unwrap_err();
    assert!(e.contains("not between zero and a year"), "{e}");
    let e = load("[certificates]\nrenew_before = 30\n").unwrap_err();
    assert!(e.contains("renew_before"), "{e}");
    let e = load("[certificates]\nrenew_befor = \"30d\"\n").unwrap_err();
    assert!(e.contains("renew_befor"), "{e}");
}
