//! `apt-get`, `apt`, `apt-cache` and `apt-mark` over the host's package database
//! ([`super::pkgdb`]) and repository configuration ([`super::aptsrc`]).
//!
//! As strict as apt 2.4: a package no fetched index offers is "Unable to locate", a version
//! no index offers is "not found", a held package is not changed (nor a package
//! downgraded) under `-y` without `--allow-change-held-packages` (`--allow-downgrades`),
//! and a transaction that needs confirmation is aborted without `-y` (stdin is not a
//! terminal). Messages and exit statuses (100 on error) are apt's.

use std::cmp::Ordering;

use super::aptsrc::{self, Candidate};
use super::pkgdb::{self, PkgDb, State};
use super::repos::{self, Format, Identity, Origin};
use super::Invocation;
use crate::distro::{Arch, Distro};

#[derive(Default)]
struct Opts {
    yes: bool,
    quiet: u8,
    allow_downgrades: bool,
    allow_held: bool,
    simulate: bool,
    purge: bool,
    /// apt 3 (Debian 13, Ubuntu 26.04): "Installing:" / "Summary:" instead of apt 2's
    /// "The following NEW packages will be installed:" and its counts line.
    apt3: bool,
}

const PROGRESS: &str =
    "Reading package lists...\nBuilding dependency tree...\nReading state information...\n";

/// Parses apt-get's options; `Err` is the exit status after printing apt's message.
fn parse(inv: &mut Invocation, args: &[String]) -> Result<(Opts, Vec<String>), i32> {
    let mut o = Opts {
        apt3: pkgdb::host_format(inv).is_ok_and(|(_, distro, _)| distro.apt_major() >= 3),
        ..Opts::default()
    };
    let mut words = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-y" | "--yes" | "--assume-yes" => o.yes = true,
            "-q" | "--quiet" => o.quiet += 1,
            "-qq" => o.quiet = 2,
            "--allow-downgrades" => o.allow_downgrades = true,
            "--allow-change-held-packages" => o.allow_held = true,
            "-s" | "--simulate" | "--dry-run" | "--just-print" | "--no-act" => o.simulate = true,
            "--purge" => o.purge = true,
            "--no-install-recommends"
            | "--install-recommends"
            | "--allow-unauthenticated"
            | "--allow-remove-essential"
            | "-f"
            | "--fix-broken"
            | "-m"
            | "--fix-missing"
            | "--no-upgrade"
            | "--auto-remove"
            | "--autoremove"
            | "-V"
            | "--verbose-versions"
            | "--no-install-suggests" => {}
            "-o" | "--option" => {
                let Some(v) = it.next() else {
                    inv.errln("E: Option -o requires an argument.");
                    return Err(100);
                };
                config_option(&mut o, v);
            }
            s if s.starts_with("-o") && s.len() > 2 => config_option(&mut o, &s[2..]),
            s if s.starts_with("--option=") => config_option(&mut o, &s[9..]),
            s if s.starts_with("-q=") => o.quiet = s[3..].parse().unwrap_or(1),
            s if s.starts_with("--") => {
                inv.errln(&format!(
                    "E: Command line option {s} is not understood in combination with the other options"
                ));
                return Err(100);
            }
            s if s.starts_with('-') && s.len() > 1 => {
                for c in s[1..].chars() {
                    match c {
                        'y' => o.yes = true,
                        'q' => o.quiet += 1,
                        's' => o.simulate = true,
                        'f' | 'm' | 'V' => {}
                        other => {
                            inv.errln(&format!(
                                "E: Command line option '{other}' [from {s}] is not known."
                            ));
                            return Err(100);
                        }
                    }
                }
            }
            s => words.push(s.to_string()),
        }
    }
    // apt-get(8): "-qq ... implies -y".
    if o.quiet >= 2 {
        o.yes = true;
    }
    Ok((o, words))
}

fn config_option(o: &mut Opts, kv: &str) {
    let (k, v) = kv.split_once('=').unwrap_or((kv, "true"));
    let on = matches!(v, "true" | "1" | "yes");
    match k.to_ascii_lowercase().as_str() {
        "apt::get::assume-yes" => o.yes = on,
        "apt::get::allow-downgrades" => o.allow_downgrades = on,
        "apt::get::allow-change-held-packages" => o.allow_held = on,
        _ => {}
    }
}

fn host(inv: &mut Invocation, tool: &str) -> Option<(Distro, Arch)> {
    match pkgdb::host_format(inv) {
        Ok((Format::Deb, d, a)) => Some((d, a)),
        Ok(_) => {
            inv.errln(&format!("{tool}: not a Debian family host"));
            None
        }
        Err(e) => {
            inv.errln(&format!("{tool}: {e}"));
            None
        }
    }
}

fn progress(inv: &mut Invocation, o: &Opts) {
    if o.quiet < 2 {
        inv.out(PROGRESS);
    }
}

/// `apt-get`.
pub fn run_apt_get(inv: &mut Invocation) -> i32 {
    let args = inv.args.clone();
    let (opts, words) = match parse(inv, &args) {
        Ok(x) => x,
        Err(s) => return s,
    };
    let Some(verb) = words.first().cloned() else {
        inv.errln("E: No operation specified.");
        return 100;
    };
    let Some((distro, arch)) = host(inv, "apt-get") else {
        return 100;
    };
    let names = &words[1..];
    let root_lock = |inv: &mut Invocation| {
        inv.errln("E: Could not open lock file /var/lib/dpkg/lock-frontend - open (13: Permission denied)");
        inv.errln("E: Unable to acquire the dpkg frontend lock (/var/lib/dpkg/lock-frontend), are you root?");
        100
    };
    match verb.as_str() {
        "update" => {
            if inv.uid != 0 {
                inv.out("Reading package lists...\n");
                inv.errln("E: Could not open lock file /var/lib/apt/lists/lock - open (13: Permission denied)");
                inv.errln("E: Unable to lock directory /var/lib/apt/lists/");
                return 100;
            }
            update(inv, &opts, distro, arch)
        }
        "install" | "remove" | "purge" | "upgrade" | "dist-upgrade" | "full-upgrade"
        | "autoremove" | "reinstall" => {
            if inv.uid != 0 && !opts.simulate {
                return root_lock(inv);
            }
            let _lock = match pkgdb::try_lock(inv) {
                Ok(l) => l,
                Err(why) => {
                    inv.errln(&format!(
                        "E: Could not get lock /var/lib/dpkg/lock-frontend. It is held by another process{}",
                        why.map(|w| format!(" ({w})")).unwrap_or_default()
                    ));
                    inv.errln("E: Unable to acquire the dpkg frontend lock (/var/lib/dpkg/lock-frontend), is another process using it?");
                    return 100;
                }
            };
            let mut db = match pkgdb::load(inv) {
                Ok(db) => db,
                Err(e) => {
                    inv.errln(&format!("E: {e}"));
                    return 100;
                }
            };
            let cands = aptsrc::candidates(inv, distro, arch);
            let status = match verb.as_str() {
                "install" | "reinstall" => install(inv, &opts, &mut db, &cands, names, distro),
                "remove" => remove(inv, &opts, &mut db, &cands, names, opts.purge),
                "purge" => remove(inv, &opts, &mut db, &cands, names, true),
                "autoremove" => {
                    progress(inv, &opts);
                    summary(inv, &opts, 0, 0, 0, 0, 0);
                    0
                }
                _ => upgrade(inv, &opts, &mut db, &cands),
            };
            if status == 0 && !opts.simulate {
                if let Err(e) = pkgdb::save(inv, &db) {
                    inv.errln(&format!("E: {e}"));
                    return 100;
                }
            }
            status
        }
        "clean" | "autoclean" | "check" => 0,
        other => {
            inv.errln(&format!("E: Invalid operation {other}"));
            100
        }
    }
}

/// `apt`: the same as apt-get (install, remove, update...) and apt-cache (show, policy),
/// with its warning about scripts.
pub fn run_apt(inv: &mut Invocation) -> i32 {
    inv.errln("");
    inv.errln("WARNING: apt does not have a stable CLI interface. Use with caution in scripts.");
    inv.errln("");
    let verb = inv.args.iter().find(|a| !a.starts_with('-')).cloned();
    match verb.as_deref() {
        Some("show" | "policy" | "madison" | "search") => run_apt_cache(inv),
        _ => run_apt_get(inv),
    }
}

fn update(inv: &mut Invocation, opts: &Opts, distro: Distro, arch: Arch) -> i32 {
    let entries = match aptsrc::read_sources(inv) {
        Ok(e) => e,
        Err(lines) => {
            for l in lines {
                inv.errln(&l);
            }
            return 100;
        }
    };
    let previous = aptsrc::fetched(inv);
    let mut fetched = Vec::new();
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    let mut n = 0;
    let mut lines = Vec::new();
    // The archive is always there; a host whose sources name it shows it from them.
    let archive_listed = entries
        .iter()
        .any(|e| repos::identify(&e.uri, Format::Deb) == Identity::Known(Origin::DistroArchive));
    for (uri, suite) in aptsrc::archive_entries(distro, arch) {
        if archive_listed {
            break;
        }
        n += 1;
        lines.push(format!("Hit:{n} {uri} {suite} InRelease"));
    }
    for e in entries.iter().filter(|e| e.applies_to(arch)) {
        n += 1;
        let shown = e.display();
        match repos::identify(&e.uri, Format::Deb) {
            Identity::Known(Origin::DistroArchive) => {
                lines.push(format!("Hit:{n} {shown} InRelease"));
                fetched.push(e.key());
            }
            Identity::Known(origin) => {
                let suite_ok = match &origin {
                    Origin::Kubernetes { .. } => e.suite == "/",
                    Origin::Docker { distro } => repos::docker_has_suite(distro, &e.suite),
                    Origin::DistroArchive => true,
                };
                if !suite_ok {
                    lines.push(format!("Ign:{n} {shown} InRelease"));
                    lines.push(format!("Err:{n} {shown} Release\n  404  Not Found"));
                    errors.push(format!(
                        "E: The repository '{shown} Release' does not have a Release file."
                    ));
                    continue;
                }
                let keyed = e.trusted
                    || match &e.signed_by {
                        Some(path) if path.starts_with('/') => {
                            std::fs::metadata(inv.path(path)).is_ok_and(|m| m.len() > 0)
                        }
                        Some(inline) => inline.contains("BEGIN PGP PUBLIC KEY BLOCK"),
                        None => has_trusted_keys(inv),
                    };
                if !keyed {
                    let key = repos::signing_key(&origin);
                    lines.push(format!("Get:{n} {shown} InRelease [1189 B]"));
                    lines.push(format!("Err:{n} {shown} InRelease\n  The following signatures couldn't be verified because the public key is not available: NO_PUBKEY {key}"));
                    warnings.push(format!("W: GPG error: {shown} InRelease: The following signatures couldn't be verified because the public key is not available: NO_PUBKEY {key}"));
                    errors.push(format!(
                        "E: The repository '{shown} InRelease' is not signed."
                    ));
                    continue;
                }
                if previous.contains(&e.key()) {
                    lines.push(format!("Hit:{n} {shown} InRelease"));
                } else {
                    lines.push(format!("Get:{n} {shown} InRelease [1189 B]"));
                }
                fetched.push(e.key());
            }
            Identity::MissingPath { .. } => {
                lines.push(format!("Ign:{n} {shown} InRelease"));
                lines.push(format!("Err:{n} {shown} Release\n  404  Not Found"));
                errors.push(format!(
                    "E: The repository '{shown} Release' does not have a Release file."
                ));
            }
            Identity::Unreachable { host } => {
                lines.push(format!(
                    "Err:{n} {shown} InRelease\n  Could not resolve '{host}'"
                ));
                warnings.push(format!(
                    "W: Failed to fetch {}/dists/{}/InRelease  Could not resolve '{host}'",
                    e.uri.trim_end_matches('/'),
                    e.suite.trim_end_matches('/')
                ));
                if previous.contains(&e.key()) {
                    fetched.push(e.key());
                }
            }
        }
    }
    // Fetching the indexes takes its time whatever they turn out to hold.
    crate::durations::hooks::index_update();
    if opts.quiet < 2 {
        for l in &lines {
            inv.outln(l);
        }
        inv.outln("Reading package lists...");
    }
    if !errors.is_empty() {
        for w in &warnings {
            inv.errln(w);
        }
        for e in &errors {
            inv.errln(e);
        }
        inv.errln("N: Updating from such a repository can't be done securely, and is therefore disabled by default.");
        inv.errln(
            "N: See apt-secure(8) manpage for repository creation and user configuration details.",
        );
        // What was fetched before stays usable; the failed repositories are not.
        let _ = aptsrc::save_fetched(inv, &fetched);
        return 100;
    }
    for w in &warnings {
        inv.errln(w);
    }
    if !warnings.is_empty() {
        inv.errln("W: Some index files failed to download. They have been ignored, or old ones used instead.");
    }
    if let Err(e) = aptsrc::save_fetched(inv, &fetched) {
        inv.errln(&format!("E: {e}"));
        return 100;
    }
    // apt 3 suggests converting one-line sources to deb822 on every update.
    if opts.apt3 && opts.quiet < 2 && has_one_line_sources(inv) {
        inv.errln("N: Some sources can be modernized. Run 'apt modernize-sources' to do so.");
    }
    0
}

/// Whether any source is still written in the one-line form (`sources.list`, `*.list`).
fn has_one_line_sources(inv: &Invocation) -> bool {
    let mut files = vec!["/etc/apt/sources.list".to_string()];
    if let Ok(dir) = std::fs::read_dir(inv.path("/etc/apt/sources.list.d")) {
        files.extend(
            dir.flatten()
                .filter_map(|e| e.file_name().to_str().map(String::from))
                .filter(|n| n.ends_with(".list"))
                .map(|n| format!("/etc/apt/sources.list.d/{n}")),
        );
    }
    files.iter().any(|f| {
        inv.read(f)
            .ok()
            .and_then(|t| aptsrc::parse_one_line(&t, f).ok())
            .is_some_and(|entries| !entries.is_empty())
    })
}

fn has_trusted_keys(inv: &Invocation) -> bool {
    inv.path("/etc/apt/trusted.gpg").is_file()
        || std::fs::read_dir(inv.path("/etc/apt/trusted.gpg.d"))
            .is_ok_and(|mut d| d.next().is_some())
}

/// The newest version of `name` among `cands`, or the newest matching `want`
/// (exact, or a prefix when it ends with `*`).
fn pick<'a>(cands: &'a [Candidate], name: &str, want: Option<&str>) -> Option<&'a Candidate> {
    cands
        .iter()
        .filter(|c| c.name == name)
        .filter(|c| match want {
            None => true,
            Some(w) => match w.strip_suffix('*') {
                Some(prefix) => c.version.starts_with(prefix),
                None => c.version == w,
            },
        })
        .max_by(|a, b| pkgdb::compare_versions(&a.version, &b.version))
}

fn known(db: &PkgDb, cands: &[Candidate], name: &str) -> bool {
    db.packages.contains_key(name) || cands.iter().any(|c| c.name == name)
}

fn strip_arch(name: &str) -> &str {
    name.split(':').next().unwrap_or(name)
}

fn list(inv: &mut Invocation, o: &Opts, title: &str, names: &[String]) {
    if names.is_empty() {
        return;
    }
    if o.apt3 {
        let title = match title {
            "The following packages will be REMOVED:" => "REMOVING:",
            "The following held packages will be changed:" => "Changing held packages:",
            "The following packages will be upgraded:" => "Upgrading:",
            "The following packages will be DOWNGRADED:" => "DOWNGRADING:",
            "The following packages have been kept back:" => "Not upgrading:",
            other => other,
        };
        inv.outln(title);
        inv.outln(&format!("  {}\n", names.join("  ")));
        return;
    }
    inv.outln(title);
    inv.outln(&format!("  {}", names.join(" ")));
}

fn summary(
    inv: &mut Invocation,
    o: &Opts,
    up: usize,
    new: usize,
    down: usize,
    rm: usize,
    kept: usize,
) {
    if o.quiet >= 2 {
        return;
    }
    if o.apt3 {
        let down = if down > 0 {
            format!(", Downgrading: {down}")
        } else {
            String::new()
        };
        inv.outln(&format!(
            "Summary:\n  Upgrading: {up}, Installing: {new}{down}, Removing: {rm}, Not Upgrading: {kept}"
        ));
        return;
    }
    let down = if down > 0 {
        format!("{down} downgraded, ")
    } else {
        String::new()
    };
    inv.outln(&format!(
        "{up} upgraded, {new} newly installed, {down}{rm} to remove and {kept} not upgraded."
    ));
}

/// What a transaction does to one package.
struct Step {
    name: String,
    from: Option<String>,
    to: Candidate,
}

fn install(
    inv: &mut Invocation,
    o: &Opts,
    db: &mut PkgDb,
    cands: &[Candidate],
    requests: &[String],
    distro: Distro,
) -> i32 {
    progress(inv, o);
    if requests.is_empty() {
        summary(inv, o, 0, 0, 0, 0, 0);
        return 0;
    }
    let mut errors = Vec::new();
    let mut steps: Vec<Step> = Vec::new();
    let mut requested = Vec::new();
    for r in requests {
        let (name, want) = match r.split_once('=') {
            Some((n, v)) => (strip_arch(n), Some(v)),
            None => (strip_arch(r), None),
        };
        requested.push(name.to_string());
        let installed = db.installed(name).map(|r| r.version.clone());
        if !cands.iter().any(|c| c.name == name) {
            if installed.is_some() && want.is_none() {
                if o.quiet < 2 {
                    inv.outln(&format!(
                        "{name} is already the newest version ({}).",
                        installed.unwrap_or_default()
                    ));
                }
                continue;
            }
            errors.push(format!("E: Unable to locate package {name}"));
            continue;
        }
        let Some(c) = pick(cands, name, want) else {
            errors.push(format!(
                "E: Version '{}' for '{name}' was not found",
                want.unwrap_or_default()
            ));
            continue;
        };
        if installed.as_deref() == Some(c.version.as_str()) {
            if o.quiet < 2 {
                inv.outln(&format!(
                    "{name} is already the newest version ({}).",
                    c.version
                ));
            }
            continue;
        }
        steps.push(Step {
            name: name.to_string(),
            from: installed,
            to: c.clone(),
        });
    }
    if !errors.is_empty() {
        for e in errors {
            inv.errln(&e);
        }
        return 100;
    }
    // Dependencies that are not installed yet come along at their newest version.
    let mut extra = Vec::new();
    let mut i = 0;
    while i < steps.len() {
        for dep in repos::depends(&steps[i].name, Format::Deb, distro) {
            if db.installed(dep).is_some() || steps.iter().any(|s| s.name == dep) {
                continue;
            }
            match pick(cands, dep, None) {
                Some(c) => {
                    extra.push(dep.to_string());
                    steps.push(Step {
                        name: dep.to_string(),
                        from: None,
                        to: c.clone(),
                    });
                }
                None => {
                    let who = steps[i].name.clone();
                    inv.outln("Some packages could not be installed. This may mean that you have");
                    inv.outln("requested an impossible situation or if you are using the unstable");
                    inv.outln("distribution that some required packages have not yet been created");
                    inv.outln("or been moved out of Incoming.");
                    inv.outln("The following information may help to resolve the situation:");
                    inv.outln("");
                    inv.outln("The following packages have unmet dependencies:");
                    inv.outln(&format!(
                        " {who} : Depends: {dep} but it is not installable"
                    ));
                    inv.errln("E: Unable to correct problems, you have held broken packages.");
                    return 100;
                }
            }
        }
        i += 1;
    }
    let mut removals: Vec<String> = Vec::new();
    for s in &steps {
        for c in repos::conflicts(&s.name) {
            if db.installed(c).is_some() && !removals.iter().any(|r| r == c) {
                removals.push(c.to_string());
            }
        }
    }
    let held: Vec<String> = steps
        .iter()
        .filter(|s| s.from.is_some())
        .map(|s| s.name.clone())
        .chain(removals.iter().cloned())
        .filter(|n| db.packages.get(n).is_some_and(|r| r.held))
        .collect();
    let newer = |s: &&Step| {
        s.from
            .as_deref()
            .is_some_and(|f| pkgdb::compare_versions(&s.to.version, f) == Ordering::Greater)
    };
    let upgraded: Vec<String> = steps.iter().filter(newer).map(|s| s.name.clone()).collect();
    let downgraded: Vec<String> = steps
        .iter()
        .filter(|s| s.from.is_some() && !newer(s))
        .map(|s| s.name.clone())
        .collect();
    let new: Vec<String> = steps
        .iter()
        .filter(|s| s.from.is_none())
        .map(|s| s.name.clone())
        .collect();
    if o.quiet < 2 {
        let mut extra_sorted = extra.clone();
        extra_sorted.sort();
        let mut new_sorted = new.clone();
        new_sorted.sort();
        if o.apt3 {
            let requested: Vec<String> = new_sorted
                .iter()
                .filter(|n| !extra.contains(n))
                .cloned()
                .collect();
            list(inv, o, "Installing:", &requested);
            list(inv, o, "Installing dependencies:", &extra_sorted);
            list(inv, o, "The following packages will be REMOVED:", &removals);
        } else {
            list(
                inv,
                o,
                "The following additional packages will be installed:",
                &extra_sorted,
            );
            list(inv, o, "The following packages will be REMOVED:", &removals);
            list(
                inv,
                o,
                "The following NEW packages will be installed:",
                &new_sorted,
            );
        }
        list(
            inv,
            o,
            "The following held packages will be changed:",
            &held,
        );
        list(
            inv,
            o,
            "The following packages will be upgraded:",
            &upgraded,
        );
        list(
            inv,
            o,
            "The following packages will be DOWNGRADED:",
            &downgraded,
        );
    }
    summary(
        inv,
        o,
        upgraded.len(),
        new.len(),
        downgraded.len(),
        removals.len(),
        0,
    );
    if steps.is_empty() {
        return 0;
    }
    if !held.is_empty() && !o.allow_held && o.yes {
        inv.errln(
            "E: Held packages were changed and -y was used without --allow-change-held-packages.",
        );
        return 100;
    }
    if !downgraded.is_empty() && !o.allow_downgrades && o.yes {
        inv.errln("E: Packages were downgraded and -y was used without --allow-downgrades.");
        return 100;
    }
    let needs_confirmation =
        !extra.is_empty() || !removals.is_empty() || !held.is_empty() || !downgraded.is_empty();
    if o.simulate {
        for r in &removals {
            inv.outln(&format!("Remv {r}"));
        }
        for s in &steps {
            inv.outln(&format!(
                "Inst {} ({} [{}])",
                s.name, s.to.version, s.to.arch
            ));
        }
        return 0;
    }
    if needs_confirmation && !o.yes {
        inv.outln("Do you want to continue? [Y/n] Abort.");
        return 1;
    }
    let quiet = o.quiet >= 2;
    for (n, s) in steps.iter().enumerate() {
        if !quiet {
            inv.outln(&format!(
                "Get:{} {} {} {} {}",
                n + 1,
                s.to.uri,
                s.name,
                s.to.arch,
                s.to.version
            ));
        }
    }
    crate::durations::hooks::packages(steps.iter().map(|s| s.name.as_str()));
    for r in &removals {
        if let Some(v) = db.installed(r).map(|x| x.version.clone()) {
            if let Err(e) = pkgdb::remove(inv, db, r, false, Format::Deb) {
                inv.errln(&format!("E: {e}"));
                return 100;
            }
            if !quiet {
                inv.outln(&format!("Removing {r} ({v}) ..."));
            }
        }
    }
    // Dependencies are unpacked and configured first.
    let order: Vec<&Step> = steps.iter().rev().collect();
    for s in &order {
        let file = format!(
            ".../{}_{}_{}.deb",
            s.name,
            s.to.version.replace(':', "%3a"),
            s.to.arch
        );
        if !quiet {
            match &s.from {
                None => {
                    inv.outln(&format!(
                        "Selecting previously unselected package {}.",
                        s.name
                    ));
                    inv.outln(&format!("Preparing to unpack {file} ..."));
                    inv.outln(&format!("Unpacking {} ({}) ...", s.name, s.to.version));
                }
                Some(f) => {
                    inv.outln(&format!("Preparing to unpack {file} ..."));
                    inv.outln(&format!(
                        "Unpacking {} ({}) over ({f}) ...",
                        s.name, s.to.version
                    ));
                }
            }
        }
    }
    for s in &order {
        match pkgdb::install(
            inv,
            db,
            &s.name,
            &s.to.version,
            &s.to.arch,
            &s.to.label,
            Format::Deb,
        ) {
            Ok(script_output) => {
                if !quiet {
                    inv.outln(&format!("Setting up {} ({}) ...", s.name, s.to.version));
                    inv.out(&script_output);
                }
            }
            Err(e) => {
                inv.errln(&format!(
                    "dpkg: error processing package {} (--configure):\n {e}",
                    s.name
                ));
                inv.errln("E: Sub-process /usr/bin/dpkg returned an error code (1)");
                return 100;
            }
        }
    }
    0
}

fn remove(
    inv: &mut Invocation,
    o: &Opts,
    db: &mut PkgDb,
    cands: &[Candidate],
    names: &[String],
    purge: bool,
) -> i32 {
    progress(inv, o);
    let mut targets: Vec<String> = Vec::new();
    for raw in names {
        let name = strip_arch(raw);
        if !known(db, cands, name) {
            inv.errln(&format!("E: Unable to locate package {name}"));
            return 100;
        }
        match db.packages.get(name).map(|r| r.state) {
            Some(State::Installed) => targets.push(name.to_string()),
            Some(State::ConfigFiles) if purge => targets.push(name.to_string()),
            _ => {
                if o.quiet < 2 {
                    inv.outln(&format!(
                        "Package '{name}' is not installed, so not removed"
                    ));
                }
            }
        }
    }
    // Whatever depends on a removed package goes too.
    let mut i = 0;
    while i < targets.len() {
        let gone = targets[i].clone();
        let installed: Vec<String> = db
            .packages
            .iter()
            .filter(|(_, r)| r.state == State::Installed)
            .map(|(n, _)| n.clone())
            .collect();
        for n in installed {
            if !targets.contains(&n)
                && repos::depends(&n, Format::Deb, Distro::Ubuntu2204).contains(&gone.as_str())
            {
                targets.push(n);
            }
        }
        i += 1;
    }
    let held: Vec<String> = targets
        .iter()
        .filter(|n| {
            db.packages
                .get(*n)
                .is_some_and(|r| r.held && r.state == State::Installed)
        })
        .cloned()
        .collect();
    if o.quiet < 2 && !targets.is_empty() {
        let shown: Vec<String> = targets
            .iter()
            .map(|t| if purge { format!("{t}*") } else { t.clone() })
            .collect();
        list(inv, o, "The following packages will be REMOVED:", &shown);
        list(
            inv,
            o,
            "The following held packages will be changed:",
            &held,
        );
    }
    let removing = targets.iter().filter(|n| db.installed(n).is_some()).count();
    summary(inv, o, 0, 0, 0, removing, 0);
    if targets.is_empty() {
        return 0;
    }
    if !held.is_empty() && !o.allow_held && o.yes {
        inv.errln(
            "E: Held packages were changed and -y was used without --allow-change-held-packages.",
        );
        return 100;
    }
    if o.simulate {
        for t in &targets {
            inv.outln(&format!("{} {t}", if purge { "Purg" } else { "Remv" }));
        }
        return 0;
    }
    if !o.yes {
        inv.outln("Do you want to continue? [Y/n] Abort.");
        return 1;
    }
    for t in &targets {
        let Some(v) = db.packages.get(t).map(|r| r.version.clone()) else {
            continue;
        };
        let was_installed = db.installed(t).is_some();
        if let Err(e) = pkgdb::remove(inv, db, t, purge, Format::Deb) {
            inv.errln(&format!("E: {e}"));
            return 100;
        }
        if o.quiet < 2 {
            if was_installed {
                inv.outln(&format!("Removing {t} ({v}) ..."));
            }
            if purge {
                inv.outln(&format!("Purging configuration files for {t} ({v}) ..."));
            }
        }
    }
    0
}

fn upgrade(inv: &mut Invocation, o: &Opts, db: &mut PkgDb, cands: &[Candidate]) -> i32 {
    progress(inv, o);
    inv.outln("Calculating upgrade...");
    let mut steps = Vec::new();
    let mut kept = Vec::new();
    for (name, r) in db
        .packages
        .iter()
        .filter(|(_, r)| r.state == State::Installed)
    {
        if let Some(c) = pick(cands, name, None) {
            if pkgdb::compare_versions(&c.version, &r.version) == Ordering::Greater {
                if r.held {
                    kept.push(name.clone());
                } else {
                    steps.push(c.clone());
                }
            }
        }
    }
    if o.quiet < 2 {
        list(inv, o, "The following packages have been kept back:", &kept);
        let names: Vec<String> = steps.iter().map(|c| c.name.clone()).collect();
        list(inv, o, "The following packages will be upgraded:", &names);
    }
    summary(inv, o, steps.len(), 0, 0, 0, kept.len());
    if steps.is_empty() || o.simulate {
        return 0;
    }
    if !o.yes {
        inv.outln("Do you want to continue? [Y/n] Abort.");
        return 1;
    }
    for c in steps {
        if let Err(e) = pkgdb::install(inv, db, &c.name, &c.version, &c.arch, &c.label, Format::Deb)
        {
            inv.errln(&format!("E: {e}"));
            return 100;
        }
        if o.quiet < 2 {
            inv.outln(&format!("Setting up {} ({}) ...", c.name, c.version));
        }
    }
    0
}

/// `apt-cache`: policy, madison, show.
pub fn run_apt_cache(inv: &mut Invocation) -> i32 {
    let words: Vec<String> = inv
        .args
        .iter()
        .filter(|a| !a.starts_with('-'))
        .cloned()
        .collect();
    let Some(verb) = words.first().cloned() else {
        inv.errln("E: No operation specified.");
        return 100;
    };
    let Some((distro, arch)) = host(inv, "apt-cache") else {
        return 100;
    };
    let db = match pkgdb::load(inv) {
        Ok(db) => db,
        Err(e) => {
            inv.errln(&format!("E: {e}"));
            return 100;
        }
    };
    let cands = aptsrc::candidates(inv, distro, arch);
    let names: Vec<String> = words[1..]
        .iter()
        .map(|n| strip_arch(n).to_string())
        .collect();
    match verb.as_str() {
        "policy" => {
            if names.is_empty() {
                inv.outln("Package files:");
                inv.outln(" 100 /var/lib/dpkg/status");
                inv.outln("     release a=now");
                let mut labels: Vec<String> = cands.iter().map(|c| c.label.clone()).collect();
                labels.dedup();
                for l in labels {
                    inv.outln(&format!(" 500 {l}"));
                }
                inv.outln("Pinned packages:");
                return 0;
            }
            for name in &names {
                if !known(&db, &cands, name) {
                    continue;
                }
                policy(inv, &db, &cands, name);
            }
            0
        }
        "madison" => {
            for name in &names {
                let mut vs: Vec<&Candidate> = cands.iter().filter(|c| &c.name == name).collect();
                if vs.is_empty() {
                    inv.errln(&format!("N: Unable to locate package {name}"));
                    continue;
                }
                vs.sort_by(|a, b| pkgdb::compare_versions(&b.version, &a.version));
                for c in vs {
                    inv.outln(&format!("{:>10} | {:>10} | {}", c.name, c.version, c.label));
                }
            }
            0
        }
        "show" => {
            let mut found = false;
            for name in &names {
                let mut vs: Vec<&Candidate> = cands.iter().filter(|c| &c.name == name).collect();
                if vs.is_empty() {
                    if let Some(r) = db.installed(name) {
                        inv.out(&record(name, &r.version, &r.arch));
                        found = true;
                    } else {
                        inv.errln(&format!("N: Unable to locate package {name}"));
                    }
                    continue;
                }
                found = true;
                vs.sort_by(|a, b| pkgdb::compare_versions(&b.version, &a.version));
                for c in vs {
                    inv.out(&record(name, &c.version, &c.arch));
                }
            }
            if found {
                0
            } else {
                inv.errln("E: No packages found");
                100
            }
        }
        "search" => {
            let pattern = names.first().cloned().unwrap_or_default();
            let mut seen: Vec<&str> = Vec::new();
            for c in &cands {
                if c.name.contains(&pattern) && !seen.contains(&c.name.as_str()) {
                    seen.push(&c.name);
                }
            }
            seen.sort();
            for n in seen {
                inv.outln(&format!("{n} - {}", repos::summary(n)));
            }
            0
        }
        other => {
            inv.errln(&format!("E: Invalid operation {other}"));
            100
        }
    }
}

fn record(name: &str, version: &str, arch: &str) -> String {
    let depends = repos::depends(name, Format::Deb, Distro::Ubuntu2204);
    let mut s = format!("Package: {name}\nVersion: {version}\nArchitecture: {arch}\n");
    if !depends.is_empty() {
        s.push_str(&format!("Depends: {}\n", depends.join(", ")));
    }
    s.push_str(&format!("Description: {}\n\n", repos::summary(name)));
    s
}

fn policy(inv: &mut Invocation, db: &PkgDb, cands: &[Candidate], name: &str) {
    let installed = db.installed(name).map(|r| r.version.clone());
    let best = pick(cands, name, None).map(|c| c.version.clone());
    inv.outln(&format!("{name}:"));
    inv.outln(&format!(
        "  Installed: {}",
        installed.clone().unwrap_or_else(|| "(none)".into())
    ));
    inv.outln(&format!(
        "  Candidate: {}",
        best.or_else(|| installed.clone())
            .unwrap_or_else(|| "(none)".into())
    ));
    inv.outln("  Version table:");
    let mut vs: Vec<&Candidate> = cands.iter().filter(|c| c.name == name).collect();
    vs.sort_by(|a, b| pkgdb::compare_versions(&b.version, &a.version));
    let mut shown_installed = false;
    for c in vs {
        let mark = if installed.as_deref() == Some(c.version.as_str()) {
            shown_installed = true;
            "***"
        } else {
            "   "
        };
        inv.outln(&format!(" {mark} {} 500", c.version));
        inv.outln(&format!("        500 {}", c.label));
        if mark == "***" {
            inv.outln("        100 /var/lib/dpkg/status");
        }
    }
    if let (Some(v), false) = (installed, shown_installed) {
        inv.outln(&format!(" *** {v} 100"));
        inv.outln("        100 /var/lib/dpkg/status");
    }
}

/// `apt-mark`: hold, unhold, showhold.
pub fn run_apt_mark(inv: &mut Invocation) -> i32 {
    let words: Vec<String> = inv
        .args
        .iter()
        .filter(|a| !a.starts_with('-'))
        .cloned()
        .collect();
    let Some(verb) = words.first().cloned() else {
        inv.errln("E: No operation specified.");
        return 100;
    };
    let Some((distro, arch)) = host(inv, "apt-mark") else {
        return 100;
    };
    let mut db = match pkgdb::load(inv) {
        Ok(db) => db,
        Err(e) => {
            inv.errln(&format!("E: {e}"));
            return 100;
        }
    };
    let names: Vec<String> = words[1..]
        .iter()
        .map(|n| strip_arch(n).to_string())
        .collect();
    match verb.as_str() {
        "showhold" | "showholds" => {
            for (n, _) in db.packages.iter().filter(|(_, r)| r.held) {
                inv.outln(n);
            }
            0
        }
        "hold" | "unhold" => {
            let hold = verb == "hold";
            if names.is_empty() {
                inv.errln("E: No packages found");
                return 100;
            }
            let cands = aptsrc::candidates(inv, distro, arch);
            let mut found = Vec::new();
            for n in &names {
                if known(&db, &cands, n) {
                    found.push(n.clone());
                } else {
                    inv.errln(&format!("E: Unable to locate package {n}"));
                }
            }
            if found.is_empty() {
                inv.errln("E: No packages found");
                return 100;
            }
            if inv.uid != 0 {
                inv.errln("dpkg: error: requested operation requires superuser privilege");
                inv.errln("E: Executing dpkg failed. Are you root?");
                return 100;
            }
            for n in found {
                let already = db.packages.get(&n).is_some_and(|r| r.held) == hold;
                let msg = match (hold, already) {
                    (true, true) => format!("{n} was already set on hold."),
                    (true, false) => format!("{n} set on hold."),
                    (false, true) => format!("{n} was already not on hold."),
                    (false, false) => format!("Canceled hold on {n}."),
                };
                inv.outln(&msg);
                match db.packages.get_mut(&n) {
                    Some(r) => r.held = hold,
                    None if hold => {
                        db.packages.insert(
                            n.clone(),
                            pkgdb::Record {
                                version: String::new(),
                                held: true,
                                state: State::NotInstalled,
                                arch: repos::package_arch(&n, Format::Deb, arch),
                                repo: String::new(),
                            },
                        );
                    }
                    None => {}
                }
            }
            // A selection on a package that is not installed disappears with the hold.
            db.packages
                .retain(|_, r| r.state != State::NotInstalled || r.held);
            if let Err(e) = pkgdb::save(inv, &db) {
                inv.errln(&format!("E: {e}"));
                return 100;
            }
            0
        }
        "showmanual" | "showauto" => 0,
        "manual" | "auto" => {
            for n in names {
                inv.outln(&format!("{n} set to {}ly installed.", verb));
            }
            0
        }
        other => {
            inv.errln(&format!("E: Invalid operation {other}"));
            100
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::distro::{Arch, Distro};
    use crate::emu::testing::FakeHost;

    const K8S_LIST: &str = "deb [signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.gpg] https://pkgs.k8s.io/core:/stable:/v1.30/deb/ /\n";

    fn ubuntu_with_k8s_repo() -> FakeHost {
        let h = FakeHost::new(Distro::Ubuntu2204, Arch::Amd64);
        h.write("/etc/apt/sources.list.d/kubernetes.list", K8S_LIST);
        h.write("/etc/apt/keyrings/kubernetes-apt-keyring.gpg", "key");
        h
    }

    #[test]
    fn apt_3_prints_installing_and_a_summary() {
        let h = FakeHost::new(Distro::Debian13, Arch::Amd64);
        h.write("/etc/apt/sources.list.d/kubernetes.sources", "Types: deb\nURIs: https://pkgs.k8s.io/core:/stable:/v1.30/deb/\nSuites: /\nSigned-By: /etc/apt/keyrings/kubernetes-apt-keyring.gpg\n");
        h.write("/etc/apt/keyrings/kubernetes-apt-keyring.gpg", "key");
        let (s, _, e) = h.run("apt-get", &["update"]);
        assert_eq!(s, 0, "{e}");
        let (s, out, e) = h.run("apt-get", &["install", "-y", "kubelet=1.30.4-1.1"]);
        assert_eq!(s, 0, "{e}");
        assert!(out.contains("Installing:\n  kubelet\n\nInstalling dependencies:\n  conntrack  ebtables  ethtool  iptables  kubernetes-cni  socat\n\nSummary:\n  Upgrading: 0, Installing: 7, Removing: 0, Not Upgrading: 0\n"), "{out}");
        assert!(!out.contains("newly installed"), "{out}");
        assert!(out.contains("Setting up kubelet (1.30.4-1.1) ..."), "{out}");
    }

    #[test]
    fn apt_3_suggests_modernizing_one_line_sources() {
        let h = FakeHost::new(Distro::Debian13, Arch::Amd64);
        let (s, _, e) = h.run("apt-get", &["update"]);
        assert_eq!((s, e.as_str()), (0, ""));
        h.write("/etc/apt/sources.list.d/kubernetes.list", K8S_LIST);
        h.write("/etc/apt/keyrings/kubernetes-apt-keyring.gpg", "key");
        let (s, _, e) = h.run("apt-get", &["update"]);
        assert_eq!(s, 0, "{e}");
        assert_eq!(
            e,
            "N: Some sources can be modernized. Run 'apt modernize-sources' to do so.\n"
        );
        // apt 2 says nothing of it.
        let (_, _, e) = ubuntu_with_k8s_repo().run("apt-get", &["update"]);
        assert_eq!(e, "");
    }

    #[test]
    fn a_new_repository_needs_update_first() {
        let h = ubuntu_with_k8s_repo();
        let (s, _, e) = h.run("apt-get", &["install", "-y", "kubelet"]);
        assert_eq!(
            (s, e.as_str()),
            (100, "E: Unable to locate package kubelet\n")
        );
        let (s, out, _) = h.run("apt-get", &["update"]);
        assert_eq!(s, 0);
        assert!(
            out.contains("Get:4 https://pkgs.k8s.io/core:/stable:/v1.30/deb  InRelease"),
            "{out}"
        );
        let (s, out, e) = h.run("apt-get", &["install", "-y", "kubelet=1.30.4-1.1"]);
        assert_eq!(s, 0, "{e}");
        assert!(out.contains("Setting up kubelet (1.30.4-1.1) ..."));
        assert!(out.contains("The following additional packages will be installed:\n  conntrack ebtables ethtool iptables kubernetes-cni socat\n"), "{out}");
        assert!(h
            .root
            .join("usr/lib/systemd/system/kubelet.service")
            .exists());
        let again = h.run("apt-get", &["install", "-y", "kubelet=1.30.4-1.1"]);
        assert!(again
            .1
            .contains("kubelet is already the newest version (1.30.4-1.1)."));
    }

    #[test]
    fn wrong_versions_and_unknown_packages_fail_like_apt() {
        let h = ubuntu_with_k8s_repo();
        h.run("apt-get", &["update"]);
        let (s, _, e) = h.run("apt-get", &["install", "-y", "kubelet=1.31.0-1.1"]);
        assert_eq!(
            (s, e.as_str()),
            (100, "E: Version '1.31.0-1.1' for 'kubelet' was not found\n")
        );
        let (s, _, e) = h.run("apt-get", &["install", "-y", "docker-ce"]);
        assert_eq!(
            (s, e.as_str()),
            (100, "E: Unable to locate package docker-ce\n")
        );
        let (s, _, _) = h.run("apt-get", &["install", "-y", "kubelet=1.30.*"]);
        assert_eq!(s, 0);
        assert_eq!(
            h.run("dpkg-query", &["-W", "-f=${Version}", "kubelet"]).1,
            "1.30.14-1.1"
        );
    }

    #[test]
    fn holds_block_changes_without_the_flag() {
        let h = ubuntu_with_k8s_repo();
        h.run("apt-get", &["update"]);
        h.run("apt-get", &["install", "-y", "kubelet=1.30.4-1.1"]);
        assert_eq!(
            h.run("apt-mark", &["hold", "kubelet"]).1,
            "kubelet set on hold.\n"
        );
        assert_eq!(h.run("apt-mark", &["showhold"]).1, "kubelet\n");
        let (s, _, e) = h.run("apt-get", &["install", "-y", "kubelet=1.30.5-1.1"]);
        assert_eq!(s, 100);
        assert_eq!(
            e,
            "E: Held packages were changed and -y was used without --allow-change-held-packages.\n"
        );
        let (s, _, _) = h.run(
            "apt-get",
            &[
                "install",
                "-y",
                "--allow-change-held-packages",
                "kubelet=1.30.5-1.1",
            ],
        );
        assert_eq!(s, 0);
        let (s, _, e) = h.run(
            "apt-get",
            &[
                "install",
                "-y",
                "--allow-change-held-packages",
                "kubelet=1.30.4-1.1",
            ],
        );
        assert_eq!(
            (s, e.as_str()),
            (
                100,
                "E: Packages were downgraded and -y was used without --allow-downgrades.\n"
            )
        );
        assert!(h
            .run("apt-get", &["upgrade", "-y"])
            .1
            .contains("kept back:\n  kubelet"));
    }

    #[test]
    fn unsigned_and_unknown_repositories() {
        let h = FakeHost::new(Distro::Ubuntu2204, Arch::Amd64);
        h.write("/etc/apt/sources.list.d/kubernetes.list", K8S_LIST);
        let (s, _, e) = h.run("apt-get", &["update"]);
        assert_eq!(s, 100);
        assert!(e.contains("NO_PUBKEY 234654DA9A296436"), "{e}");
        h.write(
            "/etc/apt/sources.list.d/kubernetes.list",
            "deb [trusted=yes] https://pkgs.k8s.io/core:/stable:/v1.99/deb/ /\n",
        );
        let (s, _, e) = h.run("apt-get", &["update"]);
        assert_eq!(s, 100);
        assert!(e.contains("does not have a Release file"));
        h.write(
            "/etc/apt/sources.list.d/kubernetes.list",
            "deb [trusted=yes] https://repo.example.org/k8s/ /\n",
        );
        let (s, _, e) = h.run("apt-get", &["update"]);
        assert_eq!(s, 0);
        assert!(e.contains("Could not resolve 'repo.example.org'"));
    }

    #[test]
    fn non_root_and_no_yes() {
        let h = ubuntu_with_k8s_repo();
        assert_eq!(
            h.run_as(1000, "apt-get", &["install", "-y", "socat"]).0,
            100
        );
        let (s, out, _) = h.run("apt-get", &["install", "conntrack"]);
        assert_eq!(s, 0, "no extra packages, no question: {out}");
        h.run("apt-get", &["update"]);
        let (s, out, _) = h.run("apt-get", &["install", "kubeadm"]);
        assert_eq!(s, 1);
        assert!(out.ends_with("Do you want to continue? [Y/n] Abort.\n"));
    }

    #[test]
    fn cache_policy_and_madison() {
        let h = ubuntu_with_k8s_repo();
        h.run("apt-get", &["update"]);
        h.run("apt-get", &["install", "-y", "kubectl=1.30.4-1.1"]);
        let out = h.run("apt-cache", &["policy", "kubectl"]).1;
        assert!(
            out.starts_with("kubectl:\n  Installed: 1.30.4-1.1\n  Candidate: 1.30.14-1.1\n"),
            "{out}"
        );
        assert!(out.contains(" *** 1.30.4-1.1 500\n        500 https://pkgs.k8s.io/core:/stable:/v1.30/deb  Packages\n"));
        let m = h.run("apt-cache", &["madison", "kubectl"]).1;
        assert!(m.starts_with("   kubectl | 1.30.14-1.1 | https://pkgs.k8s.io/core:/stable:/v1.30/deb  Packages\n"), "{m}");
    }

    #[test]
    fn remove_keeps_conffiles_until_purge() {
        let h = FakeHost::new(Distro::Ubuntu2204, Arch::Amd64);
        h.write(
            "/etc/apt/sources.list.d/docker.list",
            "deb [arch=amd64 signed-by=/etc/apt/keyrings/docker.asc] https://download.docker.com/linux/ubuntu jammy stable\n",
        );
        h.write("/etc/apt/keyrings/docker.asc", "key");
        h.run("apt-get", &["update"]);
        let (s, _, e) = h.run("apt-get", &["install", "-y", "containerd.io"]);
        assert_eq!(s, 0, "{e}");
        assert_eq!(
            h.run("systemctl", &["is-active", "containerd"]).1,
            "active\n"
        );
        h.run("apt-get", &["remove", "-y", "containerd.io"]);
        assert_eq!(
            h.run(
                "dpkg-query",
                &["-W", "-f=${db:Status-Abbrev}", "containerd.io"]
            )
            .1,
            "rc "
        );
        assert!(h.root.join("etc/containerd/config.toml").exists());
        h.run("apt-get", &["purge", "-y", "containerd.io"]);
        assert!(!h.root.join("etc/containerd/config.toml").exists());
        assert_eq!(h.run("dpkg-query", &["-W", "containerd.io"]).0, 1);
    }
}
