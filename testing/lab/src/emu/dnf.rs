//! `dnf` and `yum` (dnf 4 on Rocky; yum 3's messages on CentOS 7): install, remove,
//! makecache, list, and the versionlock plugin, over the host's package database
//! ([`super::pkgdb`]) and `/etc/yum.repos.d` ([`super::yumrepo`]).
//!
//! As strict as dnf: a spec nothing matches is "No match for argument" (exit 1), one only
//! excluded packages match (`exclude=` without `--disableexcludes`, or a versionlock) is
//! "All matches were filtered out by exclude filtering", a repository the lab cannot reach
//! fails the metadata download, a transaction needs `-y` (stdin is not a terminal), and
//! `versionlock` exists only once its plugin package is installed.

use std::cmp::Ordering;

use super::dpkg::glob;
use super::pkgdb::{self, PkgDb};
use super::repos::{self, Format};
use super::yumrepo::{self, Available};
use super::Invocation;
use crate::distro::Distro;

#[derive(Default)]
struct Opts {
    yes: bool,
    quiet: bool,
    disable_excludes: Vec<String>,
    show_duplicates: bool,
    enable: Vec<String>,
    disable: Vec<String>,
}

struct Ctx {
    distro: Distro,
    /// yum 3 (CentOS 7) rather than dnf 4.
    yum3: bool,
    tool: String,
}

fn parse(inv: &mut Invocation, tool: &str, args: &[String]) -> Result<(Opts, Vec<String>), i32> {
    let mut o = Opts::default();
    let mut words = Vec::new();
    let mut it = args.iter();
    let value = |it: &mut std::slice::Iter<String>, a: &str| -> Option<String> {
        if let Some((_, v)) = a.split_once('=') {
            Some(v.to_string())
        } else {
            it.next().cloned()
        }
    };
    while let Some(a) = it.next() {
        let key = a.split('=').next().unwrap_or(a);
        match key {
            "-y" | "--assumeyes" => o.yes = true,
            "-q" | "--quiet" => o.quiet = true,
            "--showduplicates" => o.show_duplicates = true,
            "--disableexcludes" | "--disableexcludepkgs" => {
                if let Some(v) = value(&mut it, a) {
                    o.disable_excludes.extend(v.split(',').map(String::from));
                }
            }
            "--enablerepo" => {
                if let Some(v) = value(&mut it, a) {
                    o.enable.extend(v.split(',').map(String::from));
                }
            }
            "--disablerepo" => {
                if let Some(v) = value(&mut it, a) {
                    o.disable.extend(v.split(',').map(String::from));
                }
            }
            "--setopt" | "--releasever" | "--installroot" => {
                let _ = value(&mut it, a);
            }
            "--nogpgcheck" | "--refresh" | "-C" | "--cacheonly" | "--best" | "--nobest"
            | "--allowerasing" | "--noplugins" | "-v" | "--verbose" | "--color" | "-e"
            | "--errorlevel" | "--skip-broken" | "--nodocs" => {}
            s if s.starts_with("-y") || s == "-qy" || s == "-yq" => {
                o.yes = true;
                o.quiet |= s.contains('q');
            }
            s if s.starts_with('-') => {
                inv.errln(&format!("{tool}: error: unrecognized arguments: {a}"));
                return Err(if tool == "yum" { 1 } else { 2 });
            }
            _ => words.push(a.clone()),
        }
    }
    Ok((o, words))
}

/// `dnf` and `yum`.
pub fn run(inv: &mut Invocation) -> i32 {
    let tool = inv.tool.clone();
    let args = inv.args.clone();
    let (distro, arch) = match pkgdb::host_format(inv) {
        Ok((Format::Rpm, d, a)) => (d, a),
        Ok(_) => {
            inv.errln(&format!("{tool}: not a Red Hat family host"));
            return 1;
        }
        Err(e) => {
            inv.errln(&format!("{tool}: {e}"));
            return 1;
        }
    };
    let ctx = Ctx {
        distro,
        yum3: distro == Distro::Centos7,
        tool: tool.clone(),
    };
    let (opts, words) = match parse(inv, &tool, &args) {
        Ok(x) => x,
        Err(s) => return s,
    };
    let Some(verb) = words.first().cloned() else {
        inv.errln(&format!(
            "Error: No command given. Please use /usr/bin/{tool} --help"
        ));
        return 1;
    };
    let specs = &words[1..];
    let mutating = matches!(
        verb.as_str(),
        "install"
            | "remove"
            | "erase"
            | "upgrade"
            | "update"
            | "downgrade"
            | "makecache"
            | "versionlock"
    );
    if mutating && inv.uid != 0 {
        inv.errln("Error: This command has to be run with superuser privileges (under the root user on most systems).");
        return 1;
    }
    let _lock = if mutating {
        match pkgdb::try_lock(inv) {
            Ok(l) => Some(l),
            Err(_) => {
                inv.errln("Error: Waiting for process with pid to finish: another package manager holds the lock.");
                return 1;
            }
        }
    } else {
        None
    };
    let mut db = match pkgdb::load(inv) {
        Ok(db) => db,
        Err(e) => {
            inv.errln(&format!("Error: {e}"));
            return 1;
        }
    };
    let mut sections = yumrepo::read_all(inv, distro, arch);
    for s in &mut sections {
        if opts.enable.iter().any(|g| glob(g, &s.id)) {
            s.enabled = true;
        }
        if opts.disable.iter().any(|g| glob(g, &s.id)) {
            s.enabled = false;
        }
    }
    if matches!(
        verb.as_str(),
        "install" | "upgrade" | "update" | "makecache" | "list" | "downgrade"
    ) {
        for s in sections.iter().filter(|s| s.enabled) {
            if let Some(lines) = yumrepo::metadata_error(s) {
                for l in lines {
                    inv.errln(&l);
                }
                return 1;
            }
        }
    }
    let mut avail = yumrepo::available(&sections, distro, arch, &opts.disable_excludes);
    apply_versionlock(inv, &ctx, &db, &mut avail);
    let status = match verb.as_str() {
        "install" | "upgrade" | "update" | "downgrade" => {
            install(inv, &ctx, &opts, &mut db, &avail, specs)
        }
        "remove" | "erase" => remove(inv, &ctx, &opts, &mut db, specs),
        "makecache" => {
            crate::durations::hooks::index_update();
            inv.outln("Metadata cache created.");
            return 0;
        }
        "list" => return list(inv, &opts, &db, &avail, specs),
        "versionlock" => versionlock(inv, &ctx, &mut db, &avail, specs),
        "repolist" => {
            inv.outln("repo id                           repo name");
            inv.outln(&format!(
                "{:<33} {}",
                yumrepo::archive_repo(distro),
                "distribution"
            ));
            for s in sections.iter().filter(|s| s.enabled) {
                inv.outln(&format!("{:<33} {}", s.id, s.name));
            }
            return 0;
        }
        "clean" => return 0,
        other => {
            inv.errln(&format!(
                "No such command: {other}. Please use /usr/bin/{tool} --help"
            ));
            return 1;
        }
    };
    if status == 0 {
        if let Err(e) = pkgdb::save(inv, &db) {
            inv.errln(&format!("Error: {e}"));
            return 1;
        }
    }
    status
}

/// The NEVRA forms dnf matches a spec against.
fn forms(name: &str, evr: &str, arch: &str) -> Vec<String> {
    let (epoch, v, r) = pkgdb::split_version(evr);
    let vr = if r.is_empty() {
        v.to_string()
    } else {
        format!("{v}-{r}")
    };
    vec![
        name.to_string(),
        format!("{name}.{arch}"),
        format!("{name}-{v}"),
        format!("{name}-{epoch}:{v}"),
        format!("{name}-{vr}"),
        format!("{name}-{epoch}:{vr}"),
        format!("{name}-{vr}.{arch}"),
        format!("{name}-{epoch}:{vr}.{arch}"),
    ]
}

fn matches(spec: &str, name: &str, evr: &str, arch: &str) -> bool {
    forms(name, evr, arch).iter().any(|f| glob(spec, f))
}

/// `name-V-R.arch` as rpm and dnf print an installed package.
pub fn nvra(name: &str, evr: &str, arch: &str) -> String {
    let (_, v, r) = pkgdb::split_version(evr);
    format!("{name}-{v}-{r}.{arch}")
}

/// Names the virtual provides installers use resolve to.
fn provides(spec: &str) -> &str {
    match spec {
        "dnf-command(versionlock)" => "python3-dnf-plugin-versionlock",
        "dnf-command(config-manager)" => "dnf-plugins-core",
        "conntrack" => "conntrack-tools",
        _ => spec,
    }
}

fn lock_paths(ctx: &Ctx) -> (&'static str, &'static str) {
    if ctx.yum3 {
        (
            "yum-plugin-versionlock",
            "/etc/yum/pluginconf.d/versionlock.list",
        )
    } else {
        (
            "python3-dnf-plugin-versionlock",
            "/etc/dnf/plugins/versionlock.list",
        )
    }
}

/// Lock entries (`name-E:V-R.*`) of the versionlock plugin, when it is installed.
fn locks(inv: &Invocation, ctx: &Ctx, db: &PkgDb) -> Option<Vec<String>> {
    let (plugin, list) = lock_paths(ctx);
    db.installed(plugin)?;
    Some(
        inv.read(list)
            .unwrap_or_default()
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(String::from)
            .collect(),
    )
}

fn lock_entry(ctx: &Ctx, name: &str, evr: &str) -> String {
    let (e, v, r) = pkgdb::split_version(evr);
    if ctx.yum3 {
        format!("{e}:{name}-{v}-{r}.*")
    } else {
        format!("{name}-{e}:{v}-{r}.*")
    }
}

fn lock_name<'a>(ctx: &Ctx, entry: &'a str) -> &'a str {
    let body = if ctx.yum3 {
        entry.split_once(':').map_or(entry, |(_, b)| b)
    } else {
        entry
    };
    // name-[E:]V-R.*: the name is what precedes the last two dashes.
    let mut cut = body.len();
    for _ in 0..2 {
        cut = body[..cut].rfind('-').unwrap_or(0);
    }
    &body[..cut]
}

/// A locked name makes every other version of it invisible, as excludes do.
fn apply_versionlock(inv: &Invocation, ctx: &Ctx, db: &PkgDb, avail: &mut [Available]) {
    let Some(entries) = locks(inv, ctx, db) else {
        return;
    };
    for a in avail.iter_mut() {
        let mine: Vec<&String> = entries
            .iter()
            .filter(|e| lock_name(ctx, e) == a.name)
            .collect();
        if !mine.is_empty() && !mine.iter().any(|e| **e == lock_entry(ctx, &a.name, &a.evr)) {
            a.excluded = true;
        }
    }
}

fn install(
    inv: &mut Invocation,
    ctx: &Ctx,
    o: &Opts,
    db: &mut PkgDb,
    avail: &[Available],
    specs: &[String],
) -> i32 {
    let mut plan: Vec<(Available, Option<String>)> = Vec::new();
    let mut missing = Vec::new();
    for raw in specs {
        let spec = provides(raw);
        if let Some((n, r)) = db.packages.iter().find(|(n, r)| {
            r.state == pkgdb::State::Installed && matches(spec, n, &r.version, &r.arch)
        }) {
            if !o.quiet {
                inv.outln(&format!(
                    "Package {} is already installed.",
                    nvra(n, &r.version, &r.arch)
                ));
            }
            continue;
        }
        let all: Vec<&Available> = avail
            .iter()
            .filter(|a| matches(spec, &a.name, &a.evr, &a.arch))
            .collect();
        let Some(best) = all
            .iter()
            .filter(|a| !a.excluded)
            .max_by(|a, b| pkgdb::compare_versions(&a.evr, &b.evr))
        else {
            if ctx.yum3 {
                inv.outln(&format!("No package {raw} available."));
            } else if all.is_empty() {
                inv.outln(&format!("No match for argument: {raw}"));
            } else {
                inv.outln(&format!(
                    "All matches were filtered out by exclude filtering for argument: {raw}"
                ));
            }
            missing.push(raw.clone());
            continue;
        };
        if plan.iter().any(|(p, _)| p.name == best.name) {
            continue;
        }
        let from = db.installed(&best.name).map(|r| r.version.clone());
        plan.push(((*best).clone(), from));
    }
    if !missing.is_empty() {
        if ctx.yum3 {
            inv.errln("Error: Nothing to do");
        } else {
            inv.errln(&format!(
                "Error: Unable to find a match: {}",
                missing.join(" ")
            ));
        }
        return 1;
    }
    let requested = plan.len();
    let mut i = 0;
    while i < plan.len() {
        for dep in repos::depends(&plan[i].0.name, Format::Rpm, ctx.distro) {
            if db.installed(dep).is_some() || plan.iter().any(|(p, _)| p.name == dep) {
                continue;
            }
            let Some(best) = avail
                .iter()
                .filter(|a| a.name == dep && !a.excluded)
                .max_by(|a, b| pkgdb::compare_versions(&a.evr, &b.evr))
            else {
                let who = nvra(&plan[i].0.name, &plan[i].0.evr, &plan[i].0.arch);
                inv.errln("Error: ");
                inv.errln(" Problem: conflicting requests");
                inv.errln(&format!("  - nothing provides {dep} needed by {who}"));
                return 1;
            };
            plan.push((best.clone(), None));
        }
        i += 1;
    }
    // A package built for a newer EL release needs that release's glibc symbols
    // (rpm's automatic `libc.so.6(GLIBC_2.x)` requirements), which an older system,
    // or one of another lineage, may not provide.
    for (p, _) in &plan {
        let Some(needed) = repos::el_glibc(&p.evr) else {
            continue;
        };
        if ctx.distro.glibc() < needed {
            let who = nvra(&p.name, &p.evr, &p.arch);
            inv.errln("Error: ");
            inv.errln(" Problem: conflicting requests");
            inv.errln(&format!(
                "  - nothing provides libc.so.6(GLIBC_{}.{})(64bit) needed by {who}",
                needed.0, needed.1
            ));
            return 1;
        }
    }
    if plan.is_empty() {
        if !o.quiet {
            inv.outln("Dependencies resolved.");
            inv.outln("Nothing to do.");
            inv.outln("Complete!");
        }
        return 0;
    }
    if !o.quiet {
        inv.outln("Dependencies resolved.");
        let rule = "=".repeat(80);
        inv.outln(&rule);
        inv.outln(&format!(
            " {:<28} {:<9} {:<26} {:<15}",
            "Package", "Arch", "Version", "Repository"
        ));
        inv.outln(&rule);
        // Which table section a planned package goes to: requested installs, upgrades,
        // then the dependencies that came along.
        let section = |i: usize, from: &Option<String>| match (from.is_some(), i < requested) {
            (true, _) => 1,
            (false, true) => 0,
            (false, false) => 2,
        };
        let titles = ["Installing:", "Upgrading:", "Installing dependencies:"];
        for (k, title) in titles.iter().enumerate() {
            let rows: Vec<&(Available, Option<String>)> = plan
                .iter()
                .enumerate()
                .filter(|(i, (_, f))| section(*i, f) == k)
                .map(|(_, p)| p)
                .collect();
            if rows.is_empty() {
                continue;
            }
            inv.outln(title);
            for (a, _) in rows {
                inv.outln(&format!(
                    " {:<28} {:<9} {:<26} {:<15}",
                    a.name, a.arch, a.evr, a.repo
                ));
            }
        }
        inv.outln("");
        inv.outln("Transaction Summary");
        inv.outln(&rule);
        let installs = plan.iter().filter(|(_, f)| f.is_none()).count();
        let upgrades = plan.len() - installs;
        if installs > 0 {
            inv.outln(&format!(
                "Install  {installs} Package{}",
                if installs > 1 { "s" } else { "" }
            ));
        }
        if upgrades > 0 {
            inv.outln(&format!(
                "Upgrade  {upgrades} Package{}",
                if upgrades > 1 { "s" } else { "" }
            ));
        }
        inv.outln("");
    }
    if !o.yes {
        if ctx.yum3 {
            inv.outln("Is this ok [y/d/N]: Exiting on user command");
        } else {
            inv.outln("Is this ok [y/N]: Operation aborted.");
        }
        return 1;
    }
    if !o.quiet {
        inv.outln("Downloading Packages:");
        inv.outln("Running transaction check");
        inv.outln("Transaction check succeeded.");
        inv.outln("Running transaction test");
        inv.outln("Transaction test succeeded.");
        inv.outln("Running transaction");
    }
    let total = plan.len();
    crate::durations::hooks::packages(plan.iter().map(|(a, _)| a.name.as_str()));
    for (n, (a, from)) in plan.iter().rev().enumerate() {
        if let Err(e) = pkgdb::install(inv, db, &a.name, &a.evr, &a.arch, &a.repo, Format::Rpm) {
            inv.errln(&format!("Error: Transaction failed: {e}"));
            return 1;
        }
        if !o.quiet {
            let verb = if from.is_some() {
                "Upgrading"
            } else {
                "Installing"
            };
            inv.outln(&format!(
                "  {verb:<17}: {:<50} {}/{total}",
                nvra(&a.name, &a.evr, &a.arch),
                n + 1
            ));
        }
    }
    if !o.quiet {
        inv.outln("");
        inv.outln("Installed:");
        let names: Vec<String> = plan
            .iter()
            .map(|(a, _)| nvra(&a.name, &a.evr, &a.arch))
            .collect();
        inv.outln(&format!("  {}", names.join(" ")));
        inv.outln("");
        inv.outln("Complete!");
    }
    0
}

fn remove(inv: &mut Invocation, ctx: &Ctx, o: &Opts, db: &mut PkgDb, specs: &[String]) -> i32 {
    let mut targets: Vec<String> = Vec::new();
    for spec in specs {
        let hits: Vec<String> = db
            .packages
            .iter()
            .filter(|(n, r)| {
                r.state == pkgdb::State::Installed && matches(spec, n, &r.version, &r.arch)
            })
            .map(|(n, _)| n.clone())
            .collect();
        if hits.is_empty() {
            inv.outln(&format!("No match for argument: {spec}"));
        }
        targets.extend(hits);
    }
    let mut i = 0;
    while i < targets.len() {
        let gone = targets[i].clone();
        let dependents: Vec<String> = db
            .packages
            .keys()
            .filter(|n| {
                db.installed(n).is_some()
                    && !targets.contains(n)
                    && repos::depends(n, Format::Rpm, ctx.distro).contains(&gone.as_str())
            })
            .cloned()
            .collect();
        targets.extend(dependents);
        i += 1;
    }
    if targets.is_empty() {
        inv.errln("No packages marked for removal.");
        inv.outln("Dependencies resolved.");
        inv.outln("Nothing to do.");
        inv.outln("Complete!");
        return 0;
    }
    if !o.yes {
        inv.outln("Dependencies resolved.");
        inv.outln("Is this ok [y/N]: Operation aborted.");
        return 1;
    }
    let mut removed = Vec::new();
    for t in &targets {
        if let Some(r) = db.installed(t).cloned() {
            if let Err(e) = pkgdb::remove(inv, db, t, false, Format::Rpm) {
                inv.errln(&format!("Error: Transaction failed: {e}"));
                return 1;
            }
            removed.push(nvra(t, &r.version, &r.arch));
        }
    }
    if !o.quiet {
        inv.outln("Dependencies resolved.");
        inv.outln("Removed:");
        inv.outln(&format!("  {}", removed.join(" ")));
        inv.outln("");
        inv.outln("Complete!");
    }
    0
}

fn list(inv: &mut Invocation, o: &Opts, db: &PkgDb, avail: &[Available], words: &[String]) -> i32 {
    let (which, patterns) = match words.first().map(String::as_str) {
        Some(w @ ("installed" | "available" | "all")) => (w, &words[1..]),
        _ => ("all", words),
    };
    let wanted = |n: &str| patterns.is_empty() || patterns.iter().any(|p| glob(p, n));
    let mut printed = false;
    if which != "available" {
        let rows: Vec<String> = db
            .packages
            .iter()
            .filter(|(n, r)| r.state == pkgdb::State::Installed && wanted(n))
            .map(|(n, r)| {
                format!(
                    "{:<40} {:<26} @{}",
                    format!("{n}.{}", r.arch),
                    r.version,
                    r.repo.trim_start_matches('@')
                )
            })
            .collect();
        if !rows.is_empty() {
            inv.outln("Installed Packages");
            for r in rows {
                inv.outln(&r);
            }
            printed = true;
        }
    }
    if which != "installed" {
        let mut rows: Vec<&Available> = avail
            .iter()
            .filter(|a| !a.excluded && wanted(&a.name))
            .filter(|a| db.installed(&a.name).is_none_or(|r| r.version != a.evr))
            .collect();
        rows.sort_by(|a, b| {
            a.name
                .cmp(&b.name)
                .then_with(|| pkgdb::compare_versions(&a.evr, &b.evr))
        });
        if !o.show_duplicates {
            let mut newest: Vec<&Available> = Vec::new();
            for a in rows {
                match newest.last_mut() {
                    Some(last) if last.name == a.name => *last = a,
                    _ => newest.push(a),
                }
            }
            rows = newest
                .into_iter()
                .filter(|a| {
                    db.installed(&a.name).is_none_or(|r| {
                        pkgdb::compare_versions(&a.evr, &r.version) == Ordering::Greater
                    })
                })
                .collect();
        }
        if !rows.is_empty() {
            inv.outln("Available Packages");
            for a in rows {
                inv.outln(&format!(
                    "{:<40} {:<26} {}",
                    format!("{}.{}", a.name, a.arch),
                    a.evr,
                    a.repo
                ));
            }
            printed = true;
        }
    }
    if printed {
        0
    } else {
        inv.errln("Error: No matching Packages to list");
        1
    }
}

fn versionlock(
    inv: &mut Invocation,
    ctx: &Ctx,
    db: &mut PkgDb,
    avail: &[Available],
    words: &[String],
) -> i32 {
    let (plugin, list_path) = lock_paths(ctx);
    if db.installed(plugin).is_none() {
        inv.errln(&format!(
            "No such command: versionlock. Please use /usr/bin/{} --help",
            ctx.tool
        ));
        if !ctx.yum3 {
            inv.errln(&format!(
                "It could be a DNF plugin command, try: \"{} install 'dnf-command(versionlock)'\"",
                ctx.tool
            ));
        }
        return 1;
    }
    let mut entries: Vec<String> = inv
        .read(list_path)
        .unwrap_or_default()
        .lines()
        .map(String::from)
        .collect();
    let sub = words.first().map(String::as_str).unwrap_or("list");
    let specs = words.get(1..).unwrap_or(&[]);
    match sub {
        "list" | "ls" => {
            for e in entries
                .iter()
                .filter(|e| !e.trim().is_empty() && !e.starts_with('#'))
            {
                inv.outln(e);
            }
            0
        }
        "add" | "exclude" => {
            for spec in specs {
                let installed: Vec<(String, String)> = db
                    .packages
                    .iter()
                    .filter(|(n, r)| {
                        r.state == pkgdb::State::Installed && matches(spec, n, &r.version, &r.arch)
                    })
                    .map(|(n, r)| (n.clone(), r.version.clone()))
                    .collect();
                let found = if installed.is_empty() {
                    avail
                        .iter()
                        .filter(|a| matches(spec, &a.name, &a.evr, &a.arch))
                        .map(|a| (a.name.clone(), a.evr.clone()))
                        .collect()
                } else {
                    installed
                };
                if found.is_empty() {
                    inv.errln(&format!("Error: No package found for: {spec}"));
                    return 1;
                }
                for (name, evr) in found {
                    let entry = lock_entry(ctx, &name, &evr);
                    if entries.contains(&entry) {
                        inv.outln(&format!(
                            "Package already locked in equivalent form: {entry}"
                        ));
                        continue;
                    }
                    inv.outln(&format!("Adding versionlock on: {entry}"));
                    entries.push(entry);
                    if let Some(r) = db.packages.get_mut(&name) {
                        r.held = true;
                    }
                }
            }
            write_locks(inv, list_path, &entries)
        }
        "delete" | "del" => {
            for spec in specs {
                let before = entries.len();
                entries.retain(|e| {
                    let name = lock_name(ctx, e);
                    let hit = !e.starts_with('#')
                        && (glob(spec, name) || glob(spec, e.trim_end_matches(".*")));
                    if hit {
                        inv.outln(&format!("Deleting versionlock for: {e}"));
                    }
                    !hit
                });
                if entries.len() == before {
                    inv.errln(&format!("Error: No package found for: {spec}"));
                    return 1;
                }
                for (n, r) in db.packages.iter_mut() {
                    if glob(spec, n) {
                        r.held = false;
                    }
                }
            }
            write_locks(inv, list_path, &entries)
        }
        "clear" => {
            for r in db.packages.values_mut() {
                r.held = false;
            }
            write_locks(inv, list_path, &[])
        }
        other => {
            inv.errln(&format!("Error: Unknown versionlock subcommand: {other}"));
            1
        }
    }
}

fn write_locks(inv: &mut Invocation, path: &str, entries: &[String]) -> i32 {
    let mut text = entries.join("\n");
    if !text.is_empty() {
        text.push('\n');
    }
    match inv.write(path, &text) {
        Ok(()) => 0,
        Err(e) => {
            inv.errln(&format!("Error: {path}: {e}"));
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::distro::{Arch, Distro};
    use crate::emu::testing::FakeHost;

    const REPO: &str = "[kubernetes]\nname=Kubernetes\nbaseurl=https://pkgs.k8s.io/core:/stable:/v1.30/rpm/\nenabled=1\ngpgcheck=1\ngpgkey=https://pkgs.k8s.io/core:/stable:/v1.30/rpm/repodata/repomd.xml.key\nexclude=kubelet kubeadm kubectl cri-tools kubernetes-cni\n";

    fn rocky() -> FakeHost {
        let h = FakeHost::new(Distro::Rocky9, Arch::Amd64);
        h.write("/etc/yum.repos.d/kubernetes.repo", REPO);
        h
    }

    #[test]
    fn excludes_need_disableexcludes() {
        let h = rocky();
        let (s, out, e) = h.run("dnf", &["install", "-y", "kubelet-1.30.4"]);
        assert_eq!(s, 1);
        assert_eq!(
            out,
            "All matches were filtered out by exclude filtering for argument: kubelet-1.30.4\n"
        );
        assert_eq!(e, "Error: Unable to find a match: kubelet-1.30.4\n");
        let (s, out, e) = h.run(
            "dnf",
            &[
                "install",
                "-y",
                "kubelet-1.30.4",
                "--disableexcludes=kubernetes",
            ],
        );
        assert_eq!(s, 0, "{out}{e}");
        assert!(out.contains("kubelet-1.30.4-150500.1.1.x86_64"));
        assert!(out.contains("Installing dependencies:"));
        assert_eq!(
            h.run("rpm", &["-q", "kubelet"]).1,
            "kubelet-1.30.4-150500.1.1.x86_64\n"
        );
        let again = h.run(
            "dnf",
            &[
                "install",
                "-y",
                "kubelet-1.30.4",
                "--disableexcludes=kubernetes",
            ],
        );
        assert!(again
            .1
            .starts_with("Package kubelet-1.30.4-150500.1.1.x86_64 is already installed."));
    }

    #[test]
    fn unknown_packages_and_versions() {
        let h = rocky();
        let (s, out, e) = h.run("dnf", &["install", "-y", "nosuchpkg"]);
        assert_eq!(
            (s, out.as_str(), e.as_str()),
            (
                1,
                "No match for argument: nosuchpkg\n",
                "Error: Unable to find a match: nosuchpkg\n"
            )
        );
        let (s, _, _) = h.run(
            "dnf",
            &[
                "install",
                "-y",
                "--disableexcludes=kubernetes",
                "kubelet-1.31.0",
            ],
        );
        assert_eq!(s, 1);
        let (s, out, _) = h.run(
            "yum",
            &[
                "install",
                "kubectl-1.30.4",
                "--disableexcludes",
                "kubernetes",
            ],
        );
        assert_eq!(s, 1);
        assert!(out.ends_with("Is this ok [y/N]: Operation aborted.\n"));
        assert_eq!(h.run_as(1000, "dnf", &["install", "-y", "socat"]).0, 1);
    }

    #[test]
    fn versionlock_needs_its_plugin_and_pins_versions() {
        let h = rocky();
        h.run(
            "dnf",
            &[
                "install",
                "-y",
                "--disableexcludes=kubernetes",
                "kubelet-1.30.4",
            ],
        );
        let (s, _, e) = h.run("dnf", &["versionlock", "add", "kubelet"]);
        assert_eq!(s, 1);
        assert!(e.starts_with("No such command: versionlock."));
        assert_eq!(
            h.run("dnf", &["install", "-y", "dnf-command(versionlock)"])
                .0,
            0
        );
        let (s, out, _) = h.run("dnf", &["versionlock", "add", "kubelet"]);
        assert_eq!(
            (s, out.as_str()),
            (0, "Adding versionlock on: kubelet-0:1.30.4-150500.1.1.*\n")
        );
        assert_eq!(
            h.run("dnf", &["versionlock", "list"]).1,
            "kubelet-0:1.30.4-150500.1.1.*\n"
        );
        let (s, out, _) = h.run(
            "dnf",
            &[
                "install",
                "-y",
                "--disableexcludes=kubernetes",
                "kubelet-1.30.5",
            ],
        );
        assert_eq!(s, 1);
        assert!(out.starts_with("All matches were filtered out"));
        assert_eq!(h.run("dnf", &["versionlock", "delete", "kubelet"]).0, 0);
        assert_eq!(
            h.run(
                "dnf",
                &[
                    "install",
                    "-y",
                    "--disableexcludes=kubernetes",
                    "kubelet-1.30.5"
                ]
            )
            .0,
            0
        );
        assert_eq!(
            h.run("rpm", &["-q", "--qf", "%{VERSION}-%{RELEASE}", "kubelet"])
                .1,
            "1.30.5-150500.1.1"
        );
    }

    #[test]
    fn unreachable_repository_fails_metadata() {
        let h = FakeHost::new(Distro::Rocky9, Arch::Amd64);
        h.write(
            "/etc/yum.repos.d/x.repo",
            "[x]\nbaseurl=https://repo.example.org/x/\n",
        );
        let (s, _, e) = h.run("dnf", &["makecache"]);
        assert_eq!(s, 1);
        assert!(e.contains("Failed to download metadata for repo 'x'"));
    }

    #[test]
    fn list_installed_and_remove() {
        let h = rocky();
        h.run(
            "dnf",
            &[
                "install",
                "-y",
                "--disableexcludes=kubernetes",
                "kubectl-1.30.4",
            ],
        );
        let out = h.run("dnf", &["list", "installed", "kubectl"]).1;
        assert!(
            out.starts_with("Installed Packages\nkubectl.x86_64"),
            "{out}"
        );
        assert_eq!(h.run("dnf", &["remove", "-y", "kubectl"]).0, 0);
        assert_eq!(h.run("rpm", &["-q", "kubectl"]).0, 1);
        assert!(!h.root.join("usr/bin/kubectl").exists());
    }
}
