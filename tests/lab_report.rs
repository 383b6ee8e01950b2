//! The run report of real runs on the lab: `apply --report-html` on a run where one
//! host's package install fails, rendered by headless Chromium (every host's lane, a
//! changed file with its diff, the failure with apt-get's stderr, no secret); then a
//! second run, `k8sup report` of the last one, and `history --tasks` over both.

mod common;

use common::{browser, k8sup, lab, spec, stderr, stdout, write_inventory};

const PLAYBOOK: &str = "tests/playbooks/every-kind.toml";
const TEMPLATES: &str = "tests/templates";

#[test]
fn apply_writes_a_report_a_browser_renders() {
    let Some(lab) = lab(&spec(
        "name = \"report\"\n[[hosts]]\nname = \"master\"\nroles = [\"master\"]\n[[hosts]]\nname = \"bad\"\n",
    )) else {
        return;
    };
    lab.faults("bad")
        .unwrap()
        .fail_command("apt-get", 100)
        .unwrap();
    let inv = write_inventory(&lab, "report.toml", &lab.inventory_toml(""));
    let inv = inv.to_str().unwrap();
    let state = lab.dir().join("k8sup-state");
    let env = [("K8SUP_STATE_DIR", state.to_str().unwrap())];
    let page = lab.dir().join("run.html");
    let page_arg = page.to_str().unwrap();
    let with_playbook = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["-i", inv, "--playbook", PLAYBOOK, "--templates", TEMPLATES]);
        k8sup(&all, &env)
    };

    let out = with_playbook(&["apply", "--report-html", page_arg]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(
        stdout(&out).contains(&format!("report: {page_arg}")),
        "{}",
        stdout(&out)
    );
    let dom = browser::rendered_dom(&page, lab.dir());
    for host in ["master", "bad"] {
        let lane = browser::section(
            &dom,
            &format!("<div class=\"lane\" data-host=\"{host}\">"),
            "class=\"lane\"",
        )
        .unwrap_or_else(|| panic!("no lane for {host}:\n{dom}"));
        assert!(lane.contains("class=\"bar "), "{host} has no bar: {lane}");
    }
    // A changed file with its diff.
    let change = browser::section(
        &dom,
        "data-host=\"master\" data-task=\"prepare/app-config\"",
        "</details>",
    )
    .unwrap_or_else(|| panic!("master's app config change:\n{dom}"));
    assert!(change.contains("<span class=\"add\">+"), "{change}");
    // The failure with the emulated apt-get's stderr.
    let failure = browser::section(
        &dom,
        "<div class=\"failure\" data-host=\"bad\" data-task=\"prepare/tools\"",
        "</div>",
    )
    .unwrap_or_else(|| panic!("bad's failure:\n{dom}"));
    assert!(failure.contains("<pre class=\"stderr\">"), "{failure}");
    assert!(failure.contains("apt-get"), "{failure}");
    assert!(
        dom.contains("<div class=\"bar failed\" data-task=\"prepare/tools\""),
        "{dom}"
    );
    if let Some(keep) = std::env::var_os("K8SUP_LAB_SCREENSHOT") {
        std::fs::write(keep, browser::screenshot(&page, lab.dir(), 1280, 1400)).unwrap();
    }
    // The join token fetched from the master is nowhere in the page.
    let token = std::fs::read_to_string(lab.host("master").unwrap().path("/root/token")).unwrap();
    let token = token.trim();
    assert!(token.len() >= 16, "{token}");
    assert!(!std::fs::read_to_string(&page).unwrap().contains(token));

    // The cause gone, a second run; `k8sup report` shows the last run, and the
    // trends hold both.
    lab.faults("bad").unwrap().clear().unwrap();
    let out = with_playbook(&["apply"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let out = k8sup(&["report", "-i", inv, "-o", page_arg], &env);
    assert!(out.status.success(), "{}", stderr(&out));
    let dom = browser::rendered_dom(&page, lab.dir());
    assert!(dom.contains("id=\"result\">succeeded</span>"), "{dom}");
    assert!(!dom.contains("class=\"failure\""), "{dom}");
    assert!(dom.contains("2 runs, from "), "{dom}");
    assert!(dom.contains("<svg class=\"spark\""), "{dom}");
    let out = k8sup(&["history", "-i", inv, "--tasks"], &env);
    assert!(out.status.success(), "{}", stderr(&out));
    let header = stdout(&out).lines().next().unwrap_or_default().to_string();
    assert_eq!(
        header.split_whitespace().count(),
        1 + 2 * 2 + 1,
        "TASK, 2 runs (day and time), TREND: {header}"
    );
    assert!(stdout(&out).contains("prepare/tools"), "{}", stdout(&out));
}
