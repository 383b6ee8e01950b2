//! `[upgrade]`: how a raised `kubernetes_version` is rolled out.

use std::path::Path;
use std::time::Duration;

use k8sup_inventory::{Inventory, LoadContext, MaxUnavailable, Upgrade};

const BASE: &str = "[cluster]\nname = \"c\"\nkubernetes_version = \"1.30\"\n\n[[hosts]]\nname = \"m1\"\naddress = \"10.0.0.5\"\nroles = [\"master\"]\n";

fn load(extra: &str) -> Result<Inventory, String> {
    let text = format!("{BASE}\n{extra}");
    let path = Path::new("inv.toml");
    Inventory::from_bytes(path, text.as_bytes(), &LoadContext::for_file(path))
        .map_err(|e| e.to_string())
}

#[test]
fn defaults_are_one_node_drained_within_ten_minutes() {
    let upgrade = load("").unwrap().upgrade;
    assert_eq!(upgrade, Upgrade::default());
    assert_eq!(upgrade.max_unavailable, MaxUnavailable::Count(1));
    assert!(upgrade.drain);
    assert_eq!(upgrade.drain_timeout, Duration::from_secs(600));
}

#[test]
fn counts_percentages_drain_and_timeout_are_read() {
    let u = load("[upgrade]\nmax_unavailable = 3\ndrain = false\ndrain_timeout = \"90s\"\n")
        .unwrap()
        .upgrade;
    assert_eq!(u.max_unavailable, MaxUnavailable::Count(3));
    assert!(!u.drain);
    assert_eq!(u.drain_timeout, Duration::from_secs(90));
    let u = load("[upgrade]\nmax_unavailable = \"10%\"\n")
        .unwrap()
        .upgrade;
    assert_eq!(u.max_unavailable, MaxUnavailable::Percent(10));
    // A percentage rounds down but never to zero nodes.
    assert_eq!(MaxUnavailable::Percent(10).of(50), 5);
    assert_eq!(MaxUnavailable::Percent(10).of(5), 1);
    assert_eq!(MaxUnavailable::Percent(100).of(3), 3);
    assert_eq!(MaxUnavailable::Count(2).of(1), 2);
}

#[test]
fn bad_values_are_named_with_their_place() {
    for (extra, wanted) in [
        (
            "max_unavailable = 0",
            "max_unavailable 0 is not a number of nodes of at least 1",
        ),
        (
            "max_unavailable = -2",
            "max_unavailable -2 is not a number of nodes of at least 1",
        ),
        (
            "max_unavailable = \"0%\"",
            "max_unavailable \"0%\" is not a percentage from 1% to 100%",
        ),
        (
            "max_unavailable = \"150%\"",
            "is not a percentage from 1% to 100%",
        ),
        (
            "max_unavailable = \"two\"",
            "max_unavailable \"two\" is not a percentage",
        ),
        (
            "max_unavailable = 1.5",
            "max_unavailable is a decimal number, not a number or a percentage",
        ),
        ("drain = \"yes\"", "drain"),
        (
            "drain_timeout = \"soon\"",
            "drain_timeout \"soon\" is not a duration",
        ),
        ("drain_timeout = \"0s\"", "drain_timeout is zero"),
        ("max_unavalable = 2", "max_unavalable"),
    ] {
        let e = load(&format!("[upgrade]\n{extra}\n")).unwrap_err();
        assert!(e.contains(wanted), "{extra}: {e}");
        assert!(e.contains("inv.toml:11:"), "{extra}: the place: {e}");
    }
}
