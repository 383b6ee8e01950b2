//! `rpm` over the host's package database ([`super::pkgdb`]): `-q`, `-qa`, `-qi`, `-ql`
//! with `--qf`/`--queryformat` (`%{NAME}`, `%{VERSION}`, `%{RELEASE}`, `%{ARCH}`,
//! `%{EPOCH}`...), `-e`, `--import`, `--version`. Installing `.rpm` files (`-i`, `-U`) is
//! not emulated and says so.

use super::dnf::nvra;
use super::dpkg::glob;
use super::payload;
use super::pkgdb::{self, Record, State};
use super::repos::{self, Format};
use super::Invocation;

/// Expands an rpm query format for one package.
pub fn render(format: &str, name: &str, r: &Record) -> String {
    let (epoch, version, release) = pkgdb::split_version(&r.version);
    let has_epoch = r.version.contains(':');
    let mut out = String::new();
    let chars: Vec<char> = format.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '\\' if i + 1 < chars.len() => {
                match chars[i + 1] {
                    'n' => out.push('\n'),
                    't' => out.push('\t'),
                    c => out.push(c),
                }
                i += 2;
            }
            '%' if i + 1 < chars.len() => {
                let rest: String = chars[i + 1..].iter().collect();
                let Some(open) = rest.find('{') else {
                    out.push('%');
                    i += 1;
                    continue;
                };
                let width = &rest[..open];
                let Some(close) = rest.find('}') else {
                    out.push('%');
                    i += 1;
                    continue;
                };
                if !width.chars().all(|c| c == '-' || c.is_ascii_digit()) {
                    out.push('%');
                    i += 1;
                    continue;
                }
                let tag = rest[open + 1..close].to_ascii_uppercase();
                let value = match tag.as_str() {
                    "NAME" => name.to_string(),
                    "VERSION" => version.to_string(),
                    "RELEASE" => release.to_string(),
                    "ARCH" => r.arch.clone(),
                    "EPOCH" if has_epoch => epoch.to_string(),
                    "EPOCH" => "(none)".to_string(),
                    "EPOCHNUM" => epoch.to_string(),
                    "NVRA" => nvra(name, &r.version, &r.arch),
                    "NEVRA" => format!("{name}-{epoch}:{version}-{release}.{}", r.arch),
                    "NVR" => format!("{name}-{version}-{release}"),
                    "SUMMARY" => repos::summary(name),
                    other => format!("(unknown tag {other})"),
                };
                match width.parse::<i64>() {
                    Ok(w) if w < 0 => {
                        out.push_str(&format!("{value:<width$}", width = (-w) as usize))
                    }
                    Ok(w) => out.push_str(&format!("{value:>width$}", width = w as usize)),
                    Err(_) => out.push_str(&value),
                }
                i += 1 + close + 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

/// `rpm`.
pub fn run(inv: &mut Invocation) -> i32 {
    let args = inv.args.clone();
    let mut query = false;
    let mut all = false;
    let mut info = false;
    let mut files = false;
    let mut erase = false;
    let mut import = false;
    let mut format: Option<String> = None;
    let mut names = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--version" => {
                inv.outln("RPM version 4.16.1.3");
                return 0;
            }
            "--qf" | "--queryformat" => format = it.next().cloned(),
            s if s.starts_with("--qf=") => format = Some(s[5..].to_string()),
            s if s.starts_with("--queryformat=") => format = Some(s[14..].to_string()),
            "--query" => query = true,
            "--all" => all = true,
            "--info" => info = true,
            "--list" => files = true,
            "--erase" => erase = true,
            "--import" => import = true,
            "--nodeps" | "--quiet" | "--nosignature" | "--nodigest" => {}
            s if s.starts_with("--") => {
                inv.errln(&format!("rpm: {s}: unknown option"));
                return 1;
            }
            s if s.starts_with('-') && s.len() > 1 => {
                for c in s[1..].chars() {
                    match c {
                        'q' => query = true,
                        'a' => all = true,
                        'i' if query => info = true,
                        'l' => files = true,
                        'e' => erase = true,
                        'v' | 'h' => {}
                        'i' | 'U' | 'F' => {
                            inv.errln("k8sup-lab: rpm -i/-U is not emulated (use dnf install)");
                            return 1;
                        }
                        other => {
                            inv.errln(&format!("rpm: -{other}: unknown option"));
                            return 1;
                        }
                    }
                }
            }
            s => names.push(s.to_string()),
        }
    }
    match pkgdb::host_format(inv) {
        Ok((Format::Rpm, _, _)) => {}
        Ok(_) => {
            inv.errln("rpm: not a Red Hat family host");
            return 1;
        }
        Err(e) => {
            inv.errln(&format!("rpm: {e}"));
            return 1;
        }
    }
    if import {
        return import_keys(inv, &names);
    }
    let mut db = match pkgdb::load(inv) {
        Ok(db) => db,
        Err(e) => {
            inv.errln(&format!("error: {e}"));
            return 1;
        }
    };
    if erase {
        if inv.uid != 0 {
            inv.errln("error: can't create transaction lock on /var/lib/rpm/.rpm.lock (Permission denied)");
            return 1;
        }
        let mut failed = 0;
        for n in &names {
            if db.installed(n).is_none() {
                inv.errln(&format!("error: package {n} is not installed"));
                failed += 1;
                continue;
            }
            if let Err(e) = pkgdb::remove(inv, &mut db, n, false, Format::Rpm) {
                inv.errln(&format!("error: {e}"));
                return 1;
            }
        }
        if let Err(e) = pkgdb::save(inv, &db) {
            inv.errln(&format!("error: {e}"));
            return 1;
        }
        return failed;
    }
    if !query {
        inv.errln("rpm: no operation specified");
        return 1;
    }
    let show = |inv: &mut Invocation, n: &str, r: &Record| {
        if files {
            for item in payload::contents(n, Format::Rpm) {
                inv.outln(item.path());
            }
        } else if info {
            let (_, v, rel) = pkgdb::split_version(&r.version);
            inv.out(&format!(
                "Name        : {n}\nVersion     : {v}\nRelease     : {rel}\nArchitecture: {}\nSummary     : {}\n",
                r.arch,
                repos::summary(n)
            ));
        } else {
            let f = format.clone().unwrap_or_else(|| "%{NVRA}\\n".to_string());
            inv.out(&render(&f, n, r));
        }
    };
    let installed: Vec<(String, Record)> = db
        .packages
        .iter()
        .filter(|(_, r)| r.state == State::Installed)
        .map(|(n, r)| (n.clone(), r.clone()))
        .collect();
    if all {
        for (n, r) in &installed {
            if names.is_empty() || names.iter().any(|p| glob(p, n)) {
                show(inv, n, r);
            }
        }
        return 0;
    }
    if names.is_empty() {
        inv.errln("rpm: no arguments given for query");
        return 1;
    }
    let mut failed = 0;
    for n in &names {
        let hit = installed.iter().find(|(name, r)| {
            name == n
                || nvra(name, &r.version, &r.arch) == *n
                || nvra(name, &r.version, &r.arch).starts_with(&format!("{n}."))
        });
        match hit {
            Some((name, r)) => show(inv, name, r),
            None => {
                inv.outln(&format!("package {n} is not installed"));
                failed += 1;
            }
        }
    }
    failed
}

/// `rpm --import`: a key file in the host, or the URL of a repository the lab knows.
fn import_keys(inv: &mut Invocation, keys: &[String]) -> i32 {
    if inv.uid != 0 {
        inv.errln(
            "error: can't create transaction lock on /var/lib/rpm/.rpm.lock (Permission denied)",
        );
        return 1;
    }
    for k in keys {
        let ok = if k.starts_with("http://") || k.starts_with("https://") {
            matches!(
                repos::identify(
                    k.rsplit_once('/').map_or(k.as_str(), |(d, _)| d),
                    Format::Rpm
                ),
                repos::Identity::Known(_)
            ) || repos::split_url(k)
                .is_some_and(|(h, _)| h == "download.docker.com" || h == "pkgs.k8s.io")
        } else {
            inv.path(k).is_file()
        };
        if !ok {
            inv.errln(&format!("error: {k}: import read failed(2)."));
            return 1;
        }
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::distro::{Arch, Distro};
    use crate::emu::testing::FakeHost;

    fn with(name: &str, evr: &str) -> FakeHost {
        let h = FakeHost::new(Distro::Rocky9, Arch::Amd64);
        let inv = Invocation::new(&h.root, "rpm", &[], 0);
        let mut db = pkgdb::load(&inv).expect("db");
        pkgdb::install(
            &inv,
            &mut db,
            name,
            evr,
            "x86_64",
            "kubernetes",
            Format::Rpm,
        )
        .expect("install");
        pkgdb::save(&inv, &db).expect("save");
        h
    }

    #[test]
    fn query_formats() {
        let h = with("docker-ce", "3:27.3.1-1.el9");
        assert_eq!(
            h.run("rpm", &["-q", "docker-ce"]).1,
            "docker-ce-27.3.1-1.el9.x86_64\n"
        );
        assert_eq!(
            h.run("rpm", &["-q", "--qf", "%{VERSION}-%{RELEASE}", "docker-ce"])
                .1,
            "27.3.1-1.el9"
        );
        assert_eq!(
            h.run("rpm", &["-q", "--queryformat=%{EPOCH}\\n", "docker-ce"])
                .1,
            "3\n"
        );
        assert_eq!(
            h.run("rpm", &["-q", "--qf", "%{EPOCH}", "curl"]).1,
            "(none)"
        );
        let (s, out, _) = h.run("rpm", &["-q", "kubelet", "docker-ce"]);
        assert_eq!(s, 1);
        assert_eq!(
            out,
            "package kubelet is not installed\ndocker-ce-27.3.1-1.el9.x86_64\n"
        );
        assert!(h
            .run("rpm", &["-qa"])
            .1
            .contains("docker-ce-27.3.1-1.el9.x86_64\n"));
        assert!(h
            .run("rpm", &["-ql", "docker-ce"])
            .1
            .contains("/usr/bin/dockerd\n"));
    }

    #[test]
    fn erase_and_import() {
        let h = with("kubectl", "1.30.4-150500.1.1");
        assert_eq!(h.run("rpm", &["-e", "kubectl"]).0, 0);
        assert_eq!(h.run("rpm", &["-q", "kubectl"]).0, 1);
        assert_eq!(
            h.run(
                "rpm",
                &[
                    "--import",
                    "https://pkgs.k8s.io/core:/stable:/v1.30/rpm/repodata/repomd.xml.key"
                ]
            )
            .0,
            0
        );
        assert_eq!(h.run("rpm", &["--import", "/etc/pki/nokey"]).0, 1);
        assert_eq!(h.run("rpm", &["-ivh", "x.rpm"]).0, 1);
    }
}
