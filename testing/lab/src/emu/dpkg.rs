//! `dpkg` and `dpkg-query` over the host's package database ([`super::pkgdb`]): `-W`
//! with `-f`/`--showformat` (`${Version}`, `${Status}`, `${db:Status-Abbrev}`...), `-s`,
//! `-l`, `-L`, `--get-selections`, `--print-architecture`, `--compare-versions`. Installing
//! a `.deb` file (`dpkg -i`) is not emulated and says so.

use std::cmp::Ordering;

use super::payload;
use super::pkgdb::{self, PkgDb, Record, State};
use super::repos::{self, Format};
use super::Invocation;

fn load(inv: &mut Invocation) -> Option<PkgDb> {
    match pkgdb::host_format(inv) {
        Ok((Format::Deb, _, _)) => {}
        Ok(_) => {
            inv.errln("dpkg: not a Debian family host");
            return None;
        }
        Err(e) => {
            inv.errln(&format!("dpkg: {e}"));
            return None;
        }
    }
    match pkgdb::load(inv) {
        Ok(db) => Some(db),
        Err(e) => {
            inv.errln(&format!("dpkg-query: error: {e}"));
            None
        }
    }
}

/// `want status err` as dpkg-query's `${Status}` spells them.
fn status_words(r: &Record) -> (&'static str, &'static str) {
    let want = match (r.held, r.state) {
        (true, _) => "hold",
        (false, State::Installed) => "install",
        (false, State::ConfigFiles) => "deinstall",
        (false, State::NotInstalled) => "unknown",
    };
    let status = match r.state {
        State::Installed => "installed",
        State::ConfigFiles => "config-files",
        State::NotInstalled => "not-installed",
    };
    (want, status)
}

fn abbrev(r: &Record) -> String {
    let (want, status) = status_words(r);
    let w = match want {
        "hold" => 'h',
        "install" => 'i',
        "deinstall" => 'r',
        _ => 'u',
    };
    let s = match status {
        "installed" => 'i',
        "config-files" => 'c',
        _ => 'n',
    };
    format!("{w}{s} ")
}

/// Expands a dpkg-query format string for one package.
pub fn render(format: &str, name: &str, r: &Record) -> String {
    let mut out = String::new();
    let mut chars = format.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some('\\') => out.push('\\'),
                Some(o) => {
                    out.push('\\');
                    out.push(o);
                }
                None => out.push('\\'),
            },
            '$' if chars.peek() == Some(&'{') => {
                chars.next();
                let mut field = String::new();
                for f in chars.by_ref() {
                    if f == '}' {
                        break;
                    }
                    field.push(f);
                }
                let (field, width) = match field.split_once(';') {
                    Some((f, w)) => (f.to_string(), w.parse::<i64>().ok()),
                    None => (field, None),
                };
                let (want, status) = status_words(r);
                let value = match field.as_str() {
                    "Package" => name.to_string(),
                    "binary:Package" => name.to_string(),
                    "Version" => r.version.clone(),
                    "Architecture" => r.arch.clone(),
                    "Status" => format!("{want} ok {status}"),
                    "db:Status-Abbrev" => abbrev(r),
                    "db:Status-Want" => want.to_string(),
                    "db:Status-Status" => status.to_string(),
                    "db:Status-Eflag" => "ok".to_string(),
                    "binary:Summary" | "Description" => repos::summary(name),
                    "Depends" => {
                        repos::depends(name, Format::Deb, crate::distro::Distro::Ubuntu2204)
                            .join(", ")
                    }
                    _ => String::new(),
                };
                match width {
                    Some(w) if w < 0 => {
                        out.push_str(&format!("{value:<width$}", width = (-w) as usize))
                    }
                    Some(w) => out.push_str(&format!("{value:>width$}", width = w as usize)),
                    None => out.push_str(&value),
                }
            }
            c => out.push(c),
        }
    }
    out
}

/// Shell-style matching with `*` and `?`, as dpkg-query matches package names.
pub fn glob(pattern: &str, text: &str) -> bool {
    fn m(p: &[u8], t: &[u8]) -> bool {
        match (p.first(), t.first()) {
            (None, None) => true,
            (Some(b'*'), _) => m(&p[1..], t) || (!t.is_empty() && m(p, &t[1..])),
            (Some(b'?'), Some(_)) => m(&p[1..], &t[1..]),
            (Some(a), Some(b)) if a == b => m(&p[1..], &t[1..]),
            _ => false,
        }
    }
    m(pattern.as_bytes(), text.as_bytes())
}

/// `dpkg-query`.
pub fn run_dpkg_query(inv: &mut Invocation) -> i32 {
    let args = inv.args.clone();
    query(inv, "dpkg-query", &args)
}

fn query(inv: &mut Invocation, tool: &str, args: &[String]) -> i32 {
    let mut action: Option<&str> = None;
    let mut format = "${binary:Package}\t${Version}\n".to_string();
    let mut names = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-W" | "--show" => action = Some("show"),
            "-s" | "--status" => action = Some("status"),
            "-l" | "--list" => action = Some("list"),
            "-L" | "--listfiles" => action = Some("files"),
            "-f" | "--showformat" => {
                if let Some(f) = it.next() {
                    format = f.clone();
                }
            }
            s if s.starts_with("--showformat=") => format = s["--showformat=".len()..].to_string(),
            s if s.starts_with("-f") && s.len() > 2 => {
                format = s[2..].trim_start_matches('=').to_string()
            }
            "--no-pager" => {}
            s if s.starts_with('-') => {
                inv.errln(&format!("{tool}: error: unknown option {s}"));
                inv.errln("");
                inv.errln("Use --help for help about querying packages.");
                return 2;
            }
            s => names.push(s.to_string()),
        }
    }
    let Some(action) = action else {
        inv.errln(&format!("{tool}: error: need an action option"));
        inv.errln("");
        inv.errln("Use --help for help about querying packages.");
        return 2;
    };
    let Some(db) = load(inv) else {
        return 2;
    };
    match action {
        "show" => {
            let mut status = 0;
            let patterns = if names.is_empty() {
                vec!["*".to_string()]
            } else {
                names
            };
            for p in patterns {
                let hits: Vec<(&String, &Record)> = db
                    .packages
                    .iter()
                    .filter(|(n, r)| glob(&p, n) && (r.state != State::NotInstalled || p == **n))
                    .collect();
                if hits.is_empty() {
                    inv.errln(&format!("dpkg-query: no packages found matching {p}"));
                    status = 1;
                }
                for (n, r) in hits {
                    let text = render(&format, n, r);
                    inv.out(&text);
                }
            }
            status
        }
        "status" => {
            if names.is_empty() {
                inv.errln(&format!(
                    "{tool}: error: --status needs at least one package name argument"
                ));
                return 2;
            }
            let mut status = 0;
            for n in names {
                match db
                    .packages
                    .get(&n)
                    .filter(|r| r.state != State::NotInstalled)
                {
                    Some(r) => {
                        let (want, st) = status_words(r);
                        let mut s = format!(
                            "Package: {n}\nStatus: {want} ok {st}\nPriority: optional\nSection: admin\nMaintainer: {}\nArchitecture: {}\nVersion: {}\n",
                            maintainer(&n),
                            r.arch,
                            r.version
                        );
                        let deps =
                            repos::depends(&n, Format::Deb, crate::distro::Distro::Ubuntu2204);
                        if !deps.is_empty() {
                            s.push_str(&format!("Depends: {}\n", deps.join(", ")));
                        }
                        s.push_str(&format!("Description: {}\n\n", repos::summary(&n)));
                        inv.out(&s);
                    }
                    None => {
                        inv.errln(&format!(
                            "dpkg-query: package '{n}' is not installed and no information is available"
                        ));
                        status = 1;
                    }
                }
            }
            if status != 0 {
                inv.errln("Use dpkg --info (= dpkg-deb --info) to examine archive files.");
            }
            status
        }
        "list" => {
            let patterns = if names.is_empty() {
                vec!["*".to_string()]
            } else {
                names
            };
            let mut rows = Vec::new();
            let mut status = 0;
            for p in &patterns {
                let hits: Vec<(&String, &Record)> = db
                    .packages
                    .iter()
                    .filter(|(n, r)| glob(p, n) && (r.state != State::NotInstalled || p == *n))
                    .collect();
                if hits.is_empty() {
                    inv.errln(&format!("dpkg-query: no packages found matching {p}"));
                    status = 1;
                }
                rows.extend(hits);
            }
            if !rows.is_empty() {
                inv.outln("Desired=Unknown/Install/Remove/Purge/Hold");
                inv.outln("| Status=Not/Inst/Conf-files/Unpacked/halF-conf/Half-inst/trig-aWait/Trig-pend");
                inv.outln("|/ Err?=(none)/Reinst-required (Uppercase=bad)");
                inv.outln("||/ Name           Version      Architecture Description");
                inv.outln("+++-==============-============-============-=================================");
                for (n, r) in rows {
                    inv.outln(&format!(
                        "{} {:<14} {:<12} {:<12} {}",
                        abbrev(r),
                        n,
                        r.version,
                        r.arch,
                        repos::summary(n)
                    ));
                }
            }
            status
        }
        _ => {
            let mut status = 0;
            for n in names {
                if db.installed(&n).is_none() {
                    inv.errln(&format!("dpkg-query: package '{n}' is not installed"));
                    status = 1;
                    continue;
                }
                for item in payload::contents(&n, Format::Deb) {
                    inv.outln(item.path());
                }
            }
            status
        }
    }
}

fn maintainer(name: &str) -> &'static str {
    match name {
        "kubelet" | "kubeadm" | "kubectl" | "cri-tools" | "kubernetes-cni" => {
            "Kubernetes Authors <dev@kubernetes.io>"
        }
        "containerd.io"
        | "docker-ce"
        | "docker-ce-cli"
        | "docker-buildx-plugin"
        | "docker-compose-plugin" => "Docker <support@docker.com>",
        _ => "Ubuntu Developers <ubuntu-devel-discuss@lists.ubuntu.com>",
    }
}

/// `dpkg`.
pub fn run_dpkg(inv: &mut Invocation) -> i32 {
    let args = inv.args.clone();
    let Some(first) = args.first().cloned() else {
        inv.errln("dpkg: error: need an action option");
        inv.errln("");
        inv.errln("Type dpkg --help for help about installing and deinstalling packages [*];");
        inv.errln("Use 'apt' or 'aptitude' for user-friendly package management;");
        inv.errln("Type dpkg -Dhelp for a list of dpkg debug flag values;");
        inv.errln("Type dpkg --force-help for a list of forcing options;");
        inv.errln("Type dpkg-deb --help for help about manipulating *.deb files;");
        inv.errln("");
        inv.errln(
            "Options marked [*] produce a lot of output - pipe it through 'less' or 'more' !",
        );
        return 2;
    };
    match first.as_str() {
        "-l" | "--list" | "-s" | "--status" | "-L" | "--listfiles" | "-W" | "--show" => {
            query(inv, "dpkg-query", &args)
        }
        "--print-architecture" => match inv.profile() {
            Ok(p) => {
                inv.outln(p.arch.as_str());
                0
            }
            Err(e) => {
                inv.errln(&format!("dpkg: {e}"));
                2
            }
        },
        "--compare-versions" => {
            let (Some(a), Some(op), Some(b)) = (args.get(1), args.get(2), args.get(3)) else {
                inv.errln("dpkg: error: --compare-versions takes three arguments: <version> <relation> <version>");
                return 2;
            };
            let ord = pkgdb::compare_versions(a, b);
            let holds = match op.as_str() {
                "lt" | "<<" => ord == Ordering::Less,
                "le" | "<=" => ord != Ordering::Greater,
                "eq" | "=" => ord == Ordering::Equal,
                "ne" => ord != Ordering::Equal,
                "ge" | ">=" => ord != Ordering::Less,
                "gt" | ">>" => ord == Ordering::Greater,
                other => {
                    inv.errln(&format!("dpkg: error: unknown relation '{other}'"));
                    return 2;
                }
            };
            i32::from(!holds)
        }
        "--get-selections" => {
            let Some(db) = load(inv) else {
                return 2;
            };
            for (n, r) in &db.packages {
                let want = match (r.held, r.state) {
                    (true, _) => "hold",
                    (false, State::Installed) => "install",
                    _ => "deinstall",
                };
                let mut line = n.clone();
                let mut col = n.len();
                while col < 48 {
                    line.push('\t');
                    col = (col + 8) & !7;
                }
                inv.outln(&format!("{line}{want}"));
            }
            0
        }
        "--configure" | "--audit" | "-C" => {
            if inv.uid != 0 {
                inv.errln("dpkg: error: requested operation requires superuser privilege");
                return 2;
            }
            // Every emulated transaction completes, so nothing is ever left half-configured.
            0
        }
        other => {
            inv.errln(&format!(
                "k8sup-lab: dpkg {other} is not emulated (use apt-get install; dpkg -l, -s, -L, --print-architecture work)"
            ));
            2
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::distro::{Arch, Distro};
    use crate::emu::testing::FakeHost;

    fn with_kubelet(held: bool) -> FakeHost {
        let h = FakeHost::new(Distro::Ubuntu2204, Arch::Arm64);
        let inv = Invocation::new(&h.root, "dpkg", &[], 0);
        let mut db = pkgdb::load(&inv).expect("db");
        pkgdb::install(
            &inv,
            &mut db,
            "kubelet",
            "1.30.4-1.1",
            "arm64",
            "test",
            Format::Deb,
        )
        .expect("install");
        if let Some(r) = db.packages.get_mut("kubelet") {
            r.held = held;
        }
        pkgdb::save(&inv, &db).expect("save");
        h
    }

    #[test]
    fn show_formats() {
        let h = with_kubelet(true);
        assert_eq!(
            h.run("dpkg-query", &["-W", "-f=${Version}", "kubelet"]).1,
            "1.30.4-1.1"
        );
        assert_eq!(
            h.run("dpkg-query", &["-W", "-f", "${Status}\\n", "kubelet"])
                .1,
            "hold ok installed\n"
        );
        assert_eq!(
            h.run(
                "dpkg-query",
                &["-W", "--showformat=${db:Status-Abbrev}", "kubelet"]
            )
            .1,
            "hi "
        );
        assert_eq!(
            h.run("dpkg-query", &["-W", "kubelet"]).1,
            "kubelet\t1.30.4-1.1\n"
        );
        let (s, _, e) = h.run("dpkg-query", &["-W", "kubeadm"]);
        assert_eq!(
            (s, e.as_str()),
            (1, "dpkg-query: no packages found matching kubeadm\n")
        );
    }

    #[test]
    fn status_and_list() {
        let h = with_kubelet(false);
        let s = h.run("dpkg", &["-s", "kubelet"]).1;
        assert!(
            s.starts_with("Package: kubelet\nStatus: install ok installed\n"),
            "{s}"
        );
        assert!(s.contains("Version: 1.30.4-1.1\n"));
        let (code, _, e) = h.run("dpkg", &["-s", "kubeadm"]);
        assert_eq!(code, 1);
        assert!(e.starts_with(
            "dpkg-query: package 'kubeadm' is not installed and no information is available\n"
        ));
        let l = h.run("dpkg", &["-l", "kubelet"]).1;
        assert!(
            l.lines()
                .last()
                .unwrap_or("")
                .starts_with("ii  kubelet        1.30.4-1.1   arm64"),
            "{l}"
        );
        assert_eq!(h.run("dpkg", &["--print-architecture"]).1, "arm64\n");
        assert!(h
            .run("dpkg", &["-L", "kubelet"])
            .1
            .contains("/usr/bin/kubelet\n"));
    }

    #[test]
    fn compare_versions_and_selections() {
        let h = with_kubelet(true);
        assert_eq!(
            h.run(
                "dpkg",
                &["--compare-versions", "1.30.4-1.1", "lt", "1.30.10-1.1"]
            )
            .0,
            0
        );
        assert_eq!(
            h.run(
                "dpkg",
                &["--compare-versions", "1.30.4-1.1", "gt", "1.30.10-1.1"]
            )
            .0,
            1
        );
        assert!(h
            .run("dpkg", &["--get-selections"])
            .1
            .contains("kubelet\t\t\t\t\t\thold\n"));
        assert_eq!(h.run("dpkg", &["-i", "x.deb"]).0, 2);
    }
}
