//! `systemctl`: a unit exists when its unit file does (`/etc/systemd/system`,
//! `/run/systemd/system`, `/usr/lib/systemd/system`); enabling creates the real
//! `<target>.wants` symlink; whether a unit runs is kept under `/run/lab-systemd/`.
//! Messages and exit statuses are systemd 252's (3 = inactive, 4 = no such unit,
//! 5 = not loaded).

use super::Invocation;
use crate::profile::SYSTEMD_STATE_DIR;

const UNIT_DIRS: [&str; 4] = [
    "/etc/systemd/system",
    "/run/systemd/system",
    "/usr/lib/systemd/system",
    "/lib/systemd/system",
];

/// Ports a running emulated service listens on (what `ss` reports for it).
pub(super) fn service_ports(unit: &str) -> &'static [u16] {
    match unit {
        "kubelet.service" => &[10248, 10250],
        "etcd.service" => &[2379, 2380],
        "kube-apiserver.service" => &[6443],
        "sshd.service" | "ssh.service" => &[22],
        _ => &[],
    }
}

/// Units currently active on the host.
pub(super) fn active_units(inv: &Invocation) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(inv.path(SYSTEMD_STATE_DIR)) else {
        return Vec::new();
    };
    let mut v: Vec<String> = entries
        .flatten()
        .filter_map(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| n.strip_suffix(".active"))
                .map(String::from)
        })
        .collect();
    v.sort();
    v
}

fn unit_name(arg: &str) -> String {
    const SUFFIXES: [&str; 8] = [
        ".service", ".socket", ".target", ".timer", ".mount", ".path", ".slice", ".scope",
    ];
    if SUFFIXES.iter().any(|s| arg.ends_with(s)) {
        arg.to_string()
    } else {
        format!("{arg}.service")
    }
}

struct Unit {
    name: String,
    /// The unit file as seen inside the host, if any.
    fragment: Option<String>,
    masked: bool,
}

impl Unit {
    fn find(inv: &Invocation, name: &str) -> Unit {
        let etc_link = inv.path(&format!("/etc/systemd/system/{name}"));
        let masked = std::fs::read_link(&etc_link).is_ok_and(|t| t.as_os_str() == "/dev/null");
        let fragment = UNIT_DIRS
            .iter()
            .map(|d| format!("{d}/{name}"))
            .find(|p| inv.path(p).is_file());
        Unit {
            name: name.to_string(),
            fragment,
            masked,
        }
    }

    fn exists(&self) -> bool {
        self.fragment.is_some() || self.masked
    }

    fn text(&self, inv: &Invocation) -> String {
        self.fragment
            .as_ref()
            .and_then(|f| inv.read(f).ok())
            .unwrap_or_default()
    }

    fn install_targets(&self, inv: &Invocation) -> Vec<String> {
        let text = self.text(inv);
        let mut in_install = false;
        let mut targets = Vec::new();
        for line in text.lines() {
            let line = line.trim();
            if line.starts_with('[') {
                in_install = line == "[Install]";
            } else if in_install {
                if let Some(v) = line
                    .strip_prefix("WantedBy=")
                    .or_else(|| line.strip_prefix("RequiredBy="))
                {
                    targets.extend(v.split_whitespace().map(String::from));
                }
            }
        }
        targets
    }

    fn description(&self, inv: &Invocation) -> String {
        self.text(inv)
            .lines()
            .find_map(|l| l.trim().strip_prefix("Description=").map(String::from))
            .unwrap_or_else(|| self.name.clone())
    }

    /// Whether the unit runs one of the real programs (see `daemon`).
    fn real(&self, inv: &Invocation) -> bool {
        self.fragment.is_some() && super::daemon::is_real(inv, &self.text(inv))
    }

    fn active(&self, inv: &Invocation) -> bool {
        inv.path(&format!("{SYSTEMD_STATE_DIR}/{}.active", self.name))
            .exists()
    }

    fn wants_links(&self, inv: &Invocation) -> Vec<std::path::PathBuf> {
        let Ok(entries) = std::fs::read_dir(inv.path("/etc/systemd/system")) else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(".wants"))
            .map(|e| e.path().join(&self.name))
            .filter(|p| p.symlink_metadata().is_ok())
            .collect()
    }

    fn file_state(&self, inv: &Invocation) -> &'static str {
        if self.masked {
            "masked"
        } else if !self.wants_links(inv).is_empty() {
            "enabled"
        } else if self.install_targets(inv).is_empty() {
            "static"
        } else {
            "disabled"
        }
    }
}

pub fn run(inv: &mut Invocation) -> i32 {
    let args = inv.args.clone();
    let mut quiet = false;
    let mut now = false;
    let mut value_only = false;
    let mut props: Vec<String> = Vec::new();
    let mut words = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-q" | "--quiet" => quiet = true,
            "--now" => now = true,
            "--value" => value_only = true,
            "-p" | "--property" => {
                if let Some(p) = it.next() {
                    props.extend(p.split(',').map(String::from));
                }
            }
            s if s.starts_with("--property=") => {
                props.extend(s["--property=".len()..].split(',').map(String::from))
            }
            s if s.starts_with("-p") && s.len() > 2 => {
                props.extend(s[2..].split(',').map(String::from))
            }
            s if s.starts_with('-') => {} // --no-pager, --no-block, --system, -l, --full ...
            s => words.push(s.to_string()),
        }
    }
    let Some(verb) = words.first().cloned() else {
        return list_units(inv);
    };
    let units: Vec<String> = words[1..].iter().map(|u| unit_name(u)).collect();
    let mutating = matches!(
        verb.as_str(),
        "start"
            | "stop"
            | "restart"
            | "reload"
            | "try-restart"
            | "reload-or-restart"
            | "enable"
            | "disable"
            | "mask"
            | "unmask"
            | "daemon-reload"
            | "reset-failed"
    );
    if mutating && inv.uid != 0 {
        let what = units.first().cloned().unwrap_or_default();
        inv.errln(&format!(
            "Failed to {verb} {what}: Interactive authentication required."
        ));
        return 1;
    }
    match verb.as_str() {
        "daemon-reload" | "daemon-reexec" | "reset-failed" => {
            let _ = inv.write(&format!("{SYSTEMD_STATE_DIR}/.{verb}"), "");
            0
        }
        "is-active" => each(
            inv,
            &units,
            quiet,
            |inv, u| {
                if u.real(inv) && super::daemon::failure(inv, &u.name).is_some() {
                    ("failed".into(), false)
                } else if u.active(inv) {
                    ("active".into(), true)
                } else {
                    ("inactive".into(), false)
                }
            },
            3,
        ),
        "is-enabled" => {
            let mut any = false;
            for name in &units {
                let u = Unit::find(inv, name);
                if !u.exists() {
                    inv.errln(&format!(
                        "Failed to get unit file state for {name}: No such file or directory"
                    ));
                    return 1;
                }
                let state = u.file_state(inv);
                any |= matches!(state, "enabled" | "static");
                if !quiet {
                    inv.outln(state);
                }
            }
            if any {
                0
            } else {
                1
            }
        }
        "is-failed" => each(
            inv,
            &units,
            quiet,
            |inv, u| match u.real(inv) && super::daemon::failure(inv, &u.name).is_some() {
                true => ("failed".into(), true),
                false => (
                    if u.active(inv) { "active" } else { "inactive" }.into(),
                    false,
                ),
            },
            1,
        ),
        "start" | "restart" | "reload" | "try-restart" | "reload-or-restart" => {
            for name in &units {
                let u = Unit::find(inv, name);
                if u.masked {
                    inv.errln(&format!("Failed to {verb} {name}: Unit {name} is masked."));
                    return 1;
                }
                if !u.exists() {
                    inv.errln(&format!("Failed to {verb} {name}: Unit {name} not found."));
                    return 5;
                }
                if verb == "try-restart" && !u.active(inv) {
                    continue;
                }
                if verb == "reload" && !u.active(inv) {
                    inv.errln(&format!("Job for {name} failed.\nSee \"systemctl status {name}\" and \"journalctl -xeu {name}\" for details."));
                    return 1;
                }
                if u.real(inv) {
                    if let Err(code) = real_job(inv, &verb, &u) {
                        return code;
                    }
                    continue;
                }
                let was_active = u.active(inv);
                if let Err(e) = inv.write(&format!("{SYSTEMD_STATE_DIR}/{name}.active"), "") {
                    inv.errln(&format!("Failed to {verb} {name}: {e}"));
                    return 1;
                }
                if verb.contains("restart") || (verb == "start" && !was_active) {
                    crate::durations::hooks::service(name);
                    if name == "kubelet.service" {
                        super::kubelet::started(inv);
                    }
                }
            }
            0
        }
        "stop" => {
            for name in &units {
                let u = Unit::find(inv, name);
                if !u.exists() && !u.active(inv) {
                    inv.errln(&format!("Failed to stop {name}: Unit {name} not loaded."));
                    return 5;
                }
                if u.real(inv) {
                    super::daemon::stop(inv, name, &u.text(inv));
                }
                let _ =
                    std::fs::remove_file(inv.path(&format!("{SYSTEMD_STATE_DIR}/{name}.active")));
            }
            0
        }
        "enable" => enable(inv, &units, now),
        "disable" => disable(inv, &units, now),
        "mask" => {
            for name in &units {
                let link = inv.path(&format!("/etc/systemd/system/{name}"));
                let _ = std::fs::remove_file(&link);
                if let Err(e) = std::os::unix::fs::symlink("/dev/null", &link) {
                    inv.errln(&format!("Failed to mask unit: {e}"));
                    return 1;
                }
                inv.errln(&format!(
                    "Created symlink /etc/systemd/system/{name} → /dev/null."
                ));
            }
            0
        }
        "unmask" => {
            for name in &units {
                if Unit::find(inv, name).masked {
                    let _ = std::fs::remove_file(inv.path(&format!("/etc/systemd/system/{name}")));
                    inv.errln(&format!("Removed \"/etc/systemd/system/{name}\"."));
                }
            }
            0
        }
        "status" => status(inv, &units),
        "show" => show(inv, &units, &props, value_only),
        "list-units" => list_units(inv),
        "list-unit-files" => list_unit_files(inv, &units),
        other => {
            inv.errln(&format!("Unknown command verb {other}."));
            1
        }
    }
}

fn each(
    inv: &mut Invocation,
    units: &[String],
    quiet: bool,
    check: impl Fn(&Invocation, &Unit) -> (String, bool),
    failure: i32,
) -> i32 {
    if units.is_empty() {
        inv.errln("Too few arguments.");
        return 1;
    }
    let mut any = false;
    for name in units {
        let u = Unit::find(inv, name);
        let (text, ok) = check(inv, &u);
        any |= ok;
        if !quiet {
            inv.outln(&text);
        }
    }
    if any {
        0
    } else {
        failure
    }
}

fn enable(inv: &mut Invocation, units: &[String], now: bool) -> i32 {
    for name in units {
        let u = Unit::find(inv, name);
        if u.masked {
            inv.errln(&format!(
                "Failed to enable unit: Unit file /etc/systemd/system/{name} is masked."
            ));
            return 1;
        }
        let Some(fragment) = u.fragment.clone() else {
            inv.errln(&format!(
                "Failed to enable unit: Unit file {name} does not exist."
            ));
            return 1;
        };
        let targets = u.install_targets(inv);
        if targets.is_empty() {
            inv.errln("The unit files have no installation config (WantedBy=, RequiredBy=, Also=,\nAlias= settings in the [Install] section, and DefaultInstance= for template\nunits). This means they are not meant to be enabled or disabled using systemctl.");
        }
        for t in targets {
            let dir = format!("/etc/systemd/system/{t}.wants");
            let link = format!("{dir}/{name}");
            if inv.path(&link).symlink_metadata().is_ok() {
                continue;
            }
            let r = std::fs::create_dir_all(inv.path(&dir))
                .and_then(|_| std::os::unix::fs::symlink(&fragment, inv.path(&link)));
            if let Err(e) = r {
                inv.errln(&format!("Failed to enable unit: {e}"));
                return 1;
            }
            inv.errln(&format!("Created symlink {link} → {fragment}."));
        }
        if now && u.real(inv) {
            if let Err(code) = real_job(inv, "start", &u) {
                return code;
            }
        } else if now {
            let was_active = u.active(inv);
            let _ = inv.write(&format!("{SYSTEMD_STATE_DIR}/{name}.active"), "");
            if name == "kubelet.service" && !was_active {
                super::kubelet::started(inv);
            }
        }
    }
    0
}

fn disable(inv: &mut Invocation, units: &[String], now: bool) -> i32 {
    for name in units {
        let u = Unit::find(inv, name);
        if !u.exists() {
            inv.errln(&format!(
                "Failed to disable unit: Unit file {name} does not exist."
            ));
            return 1;
        }
        for link in u.wants_links(inv) {
            let _ = std::fs::remove_file(&link);
            let shown = link
                .strip_prefix(&inv.root)
                .map(|p| format!("/{}", p.display()))
                .unwrap_or_else(|_| link.display().to_string());
            inv.errln(&format!("Removed \"{shown}\"."));
        }
        if now && u.real(inv) {
            super::daemon::stop(inv, name, &u.text(inv));
        }
        if now {
            let _ = std::fs::remove_file(inv.path(&format!("{SYSTEMD_STATE_DIR}/{name}.active")));
        }
    }
    0
}

fn status(inv: &mut Invocation, units: &[String]) -> i32 {
    let mut rc = 0;
    for name in units {
        let u = Unit::find(inv, name);
        if !u.exists() {
            inv.errln(&format!("Unit {name} could not be found."));
            return 4;
        }
        if u.real(inv) {
            rc = rc.max(real_status(inv, &u));
            continue;
        }
        let active = u.active(inv);
        let dot = if active { "●" } else { "○" };
        let state = u.file_state(inv);
        let loaded = match &u.fragment {
            Some(f) if !u.masked => format!("loaded ({f}; {state}; preset: enabled)"),
            _ => "masked (Reason: Unit {name} is masked.)".replace("{name}", name),
        };
        let active_line = if active {
            "active (running) since Mon 2024-04-15 10:00:00 UTC; 1min ago".to_string()
        } else {
            rc = 3;
            "inactive (dead)".to_string()
        };
        inv.outln(&format!(
            "{dot} {name} - {}\n     Loaded: {loaded}\n     Active: {active_line}",
            u.description(inv)
        ));
    }
    rc
}

fn show(inv: &mut Invocation, units: &[String], props: &[String], value_only: bool) -> i32 {
    for name in units {
        let u = Unit::find(inv, name);
        let active = u.active(inv);
        let all = [
            ("Id", name.clone()),
            ("Names", name.clone()),
            ("Description", u.description(inv)),
            (
                "LoadState",
                if u.masked {
                    "masked"
                } else if u.fragment.is_some() {
                    "loaded"
                } else {
                    "not-found"
                }
                .into(),
            ),
            (
                "ActiveState",
                if active { "active" } else { "inactive" }.into(),
            ),
            ("SubState", if active { "running" } else { "dead" }.into()),
            (
                "UnitFileState",
                if u.exists() { u.file_state(inv) } else { "" }.into(),
            ),
            ("FragmentPath", u.fragment.clone().unwrap_or_default()),
            ("MainPID", if active { "4242" } else { "0" }.into()),
            ("Result", "success".into()),
        ];
        for (key, value) in all.iter() {
            if !props.is_empty() && !props.iter().any(|p| p == key) {
                continue;
            }
            if value_only {
                inv.outln(value);
            } else {
                inv.outln(&format!("{key}={value}"));
            }
        }
    }
    0
}

fn list_units(inv: &mut Invocation) -> i32 {
    let active = active_units(inv);
    inv.outln("  UNIT LOAD ACTIVE SUB DESCRIPTION");
    for name in &active {
        let u = Unit::find(inv, name);
        inv.outln(&format!(
            "  {name} loaded active running {}",
            u.description(inv)
        ));
    }
    inv.outln(&format!("\n{} loaded units listed.", active.len()));
    0
}

fn list_unit_files(inv: &mut Invocation, patterns: &[String]) -> i32 {
    let mut names = std::collections::BTreeSet::new();
    for d in UNIT_DIRS {
        if let Ok(entries) = std::fs::read_dir(inv.path(d)) {
            for e in entries.flatten() {
                if e.path().is_file() {
                    names.insert(e.file_name().to_string_lossy().into_owned());
                }
            }
        }
    }
    let wanted = |n: &str| {
        patterns.is_empty()
            || patterns.iter().any(|p| {
                n == p || n.strip_suffix(".service") == Some(p.trim_end_matches(".service"))
            })
    };
    inv.outln("UNIT FILE STATE PRESET");
    let mut count = 0;
    for n in names.iter().filter(|n| wanted(n)) {
        let state = Unit::find(inv, n).file_state(inv);
        inv.outln(&format!("{n} {state} enabled"));
        count += 1;
    }
    inv.outln(&format!("\n{count} unit files listed."));
    0
}

/// A start, restart or reload of a unit that runs a real daemon; the error is the exit
/// status, with systemd's message printed.
fn real_job(inv: &mut Invocation, verb: &str, u: &Unit) -> Result<(), i32> {
    use super::daemon;
    let text = u.text(inv);
    let name = &u.name;
    let result = match verb {
        "start" => daemon::start(inv, name, &text),
        "restart" | "reload-or-restart" => {
            daemon::stop(inv, name, &text);
            daemon::start(inv, name, &text)
        }
        "try-restart" if daemon::main_pid(inv, name).is_some() => {
            daemon::stop(inv, name, &text);
            daemon::start(inv, name, &text)
        }
        "try-restart" => Ok(()),
        "reload" => match daemon::main_pid(inv, name) {
            Some(_) => daemon::reload(inv, name, &text),
            None => {
                inv.errln(&format!("{name} is not active, cannot reload."));
                return Err(1);
            }
        },
        _ => Ok(()),
    };
    result.map_err(|_| {
        inv.errln(&format!("Job for {name} failed because the control process exited with error code.\nSee \"systemctl status {name}\" and \"journalctl -xeu {name}\" for details."));
        1
    })
}

/// `systemctl status` of a unit running a real daemon: its state, main pid and the tail
/// of its journal.
fn real_status(inv: &mut Invocation, u: &Unit) -> i32 {
    use super::daemon;
    let name = &u.name;
    let state = u.file_state(inv);
    let fragment = u.fragment.clone().unwrap_or_default();
    let (dot, active, rc) = match (daemon::main_pid(inv, name), daemon::failure(inv, name)) {
        (Some(pid), _) => (
            "●",
            format!(
                "active (running)\n   Main PID: {pid} ({})",
                name.trim_end_matches(".service")
            ),
            0,
        ),
        (None, Some(_)) => ("×", "failed (Result: exit-code)".to_string(), 3),
        (None, None) => ("○", "inactive (dead)".to_string(), 3),
    };
    inv.outln(&format!(
        "{dot} {name} - {}\n     Loaded: loaded ({fragment}; {state}; preset: enabled)\n     Active: {active}\n",
        u.description(inv)
    ));
    for line in daemon::journal_tail(inv, name, 10) {
        inv.outln(&line);
    }
    rc
}

#[cfg(test)]
mod tests {
    use crate::distro::{Arch, Distro};
    use crate::emu::testing::FakeHost;

    const UNIT: &str = "[Unit]\nDescription=kubelet: The Kubernetes Node Agent\n[Service]\nExecStart=/usr/bin/kubelet\n[Install]\nWantedBy=multi-user.target\n";

    #[test]
    fn enable_now_then_status() {
        let h = FakeHost::new(Distro::Ubuntu2204, Arch::Amd64);
        h.write("/usr/lib/systemd/system/kubelet.service", UNIT);
        assert_eq!(
            h.run("systemctl", &["is-active", "kubelet"]),
            (3, "inactive\n".into(), String::new())
        );
        assert_eq!(
            h.run("systemctl", &["is-enabled", "kubelet"]),
            (1, "disabled\n".into(), String::new())
        );
        let (status, _, err) = h.run("systemctl", &["enable", "--now", "kubelet"]);
        assert_eq!(status, 0);
        assert_eq!(
            err,
            "Created symlink /etc/systemd/system/multi-user.target.wants/kubelet.service → /usr/lib/systemd/system/kubelet.service.\n"
        );
        assert_eq!(h.run("systemctl", &["is-active", "kubelet"]).1, "active\n");
        assert_eq!(
            h.run("systemctl", &["is-enabled", "kubelet.service"]).1,
            "enabled\n"
        );
        assert_eq!(
            h.run(
                "systemctl",
                &["show", "-p", "ActiveState", "--value", "kubelet"]
            )
            .1,
            "active\n"
        );
        let (status, out, _) = h.run("systemctl", &["status", "kubelet"]);
        assert_eq!(status, 0);
        assert!(
            out.starts_with("● kubelet.service - kubelet: The Kubernetes Node Agent\n"),
            "{out}"
        );
        assert_eq!(h.run("systemctl", &["disable", "--now", "kubelet"]).0, 0);
        assert_eq!(h.run("systemctl", &["is-active", "kubelet"]).0, 3);
    }

    #[test]
    fn missing_units_fail_like_systemd() {
        let h = FakeHost::new(Distro::Ubuntu2204, Arch::Amd64);
        assert_eq!(
            h.run("systemctl", &["start", "nope"]),
            (
                5,
                String::new(),
                "Failed to start nope.service: Unit nope.service not found.\n".into()
            )
        );
        assert_eq!(h.run("systemctl", &["status", "nope"]).0, 4);
        assert_eq!(h.run("systemctl", &["enable", "nope"]).0, 1);
        assert_eq!(h.run("systemctl", &["is-enabled", "nope"]).0, 1);
        assert_eq!(h.run_as(1000, "systemctl", &["daemon-reload"]).0, 1);
        assert_eq!(h.run("systemctl", &["daemon-reload"]).0, 0);
    }
}
