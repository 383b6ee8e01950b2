//! `swapon` and `swapoff` (util-linux): swap areas are the lines of the host's `/proc/swaps`
//! and `/etc/fstab`; turning swap on or off also updates SwapTotal in `/proc/meminfo`.
//! A host with `swap_locked` fails `swapoff` the way the kernel does when the swapped-out
//! pages do not fit in memory (ENOMEM).

use super::Invocation;
use crate::procfs::{self, SwapArea};

fn active(inv: &Invocation) -> Vec<SwapArea> {
    procfs::parse_swaps(&inv.read("/proc/swaps").unwrap_or_default())
}

fn fstab_swaps(inv: &Invocation) -> Vec<String> {
    inv.read("/etc/fstab")
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 3 && f[2] == "swap").then(|| f[0].to_string())
        })
        .collect()
}

fn store(inv: &mut Invocation, areas: &[SwapArea]) -> bool {
    let total: u64 = areas.iter().map(|a| a.size_kib).sum();
    let meminfo = inv.read("/proc/meminfo").unwrap_or_default();
    let r = inv
        .write("/proc/swaps", &procfs::swaps(areas))
        .and_then(|_| inv.write("/proc/meminfo", &procfs::meminfo_with_swap(&meminfo, total)));
    if let Err(e) = r {
        inv.errln(&format!("{}: {e}", inv.tool));
        return false;
    }
    true
}

/// util-linux's human sizes: 2G, 1.5G, 512M, 0B.
fn human(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "K", "M", "G", "T", "P"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 || (value - value.round()).abs() < 0.05 {
        format!("{}{}", value.round() as u64, UNITS[unit])
    } else {
        format!("{value:.1}{}", UNITS[unit])
    }
}

pub fn run_swapon(inv: &mut Invocation) -> i32 {
    let args = inv.args.clone();
    let mut show: Option<Vec<String>> = None;
    let (mut headings, mut bytes, mut raw, mut all) = (true, false, false, false);
    let mut targets = Vec::new();
    for a in &args {
        match a.as_str() {
            "--show" => show = Some(Vec::new()),
            "--noheadings" => headings = false,
            "--bytes" => bytes = true,
            "--raw" => raw = true,
            "-a" | "--all" => all = true,
            "-s" | "--summary" => {
                let text = inv.read("/proc/swaps").unwrap_or_default();
                inv.out(&text);
                return 0;
            }
            "-v" | "--verbose" | "-e" | "--ifexists" => {}
            s if s.starts_with("--show=") => {
                show = Some(
                    s["--show=".len()..]
                        .split(',')
                        .map(|c| c.to_uppercase())
                        .collect(),
                )
            }
            s if s.starts_with('-') => {
                inv.errln(&format!("swapon: unrecognized option '{s}'"));
                inv.errln("Try 'swapon --help' for more information.");
                return 1;
            }
            s => targets.push(s.to_string()),
        }
    }
    if !all && targets.is_empty() {
        let columns = show.filter(|c| !c.is_empty()).unwrap_or_else(|| {
            ["NAME", "TYPE", "SIZE", "USED", "PRIO"]
                .map(String::from)
                .to_vec()
        });
        return print_show(inv, &columns, headings, bytes, raw);
    }
    if inv.uid != 0 {
        let t = targets
            .first()
            .cloned()
            .or_else(|| fstab_swaps(inv).first().cloned())
            .unwrap_or_default();
        inv.errln(&format!(
            "swapon: {t}: swapon failed: Operation not permitted"
        ));
        return 255;
    }
    let size_kib = inv
        .profile()
        .map(|p| (p.swap_mib * 1024).saturating_sub(4))
        .unwrap_or(0);
    let mut areas = active(inv);
    if all {
        targets.extend(fstab_swaps(inv));
    }
    for t in targets {
        if areas.iter().any(|a| a.path == t) {
            if all {
                continue;
            }
            inv.errln(&format!(
                "swapon: {t}: swapon failed: Device or resource busy"
            ));
            return 255;
        }
        if !inv.path(&t).exists() {
            inv.errln(&format!(
                "swapon: cannot open {t}: No such file or directory"
            ));
            return 255;
        }
        let priority = -2 - areas.len() as i32;
        areas.push(SwapArea {
            path: t,
            kind: "file".into(),
            size_kib,
            used_kib: 0,
            priority,
        });
    }
    if store(inv, &areas) {
        0
    } else {
        255
    }
}

fn print_show(
    inv: &mut Invocation,
    columns: &[String],
    headings: bool,
    bytes: bool,
    raw: bool,
) -> i32 {
    let areas = active(inv);
    if areas.is_empty() {
        return 0;
    }
    let size = |kib: u64| {
        if bytes {
            (kib * 1024).to_string()
        } else {
            human(kib * 1024)
        }
    };
    let mut rows: Vec<Vec<String>> = Vec::new();
    for a in &areas {
        let mut row = Vec::new();
        for c in columns {
            row.push(match c.as_str() {
                "NAME" => a.path.clone(),
                "TYPE" => a.kind.clone(),
                "SIZE" => size(a.size_kib),
                "USED" => size(a.used_kib),
                "PRIO" => a.priority.to_string(),
                "UUID" | "LABEL" => String::new(),
                other => {
                    inv.errln(&format!("swapon: unknown column: {other}"));
                    return 1;
                }
            });
        }
        rows.push(row);
    }
    let right = |c: &str| matches!(c, "SIZE" | "USED" | "PRIO");
    if headings {
        rows.insert(0, columns.to_vec());
    }
    let widths: Vec<usize> = (0..columns.len())
        .map(|i| rows.iter().map(|r| r[i].len()).max().unwrap_or(0))
        .collect();
    for row in rows {
        let line: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(i, cell)| {
                if raw {
                    cell.clone()
                } else if right(&columns[i]) {
                    format!("{cell:>w$}", w = widths[i])
                } else if i + 1 == columns.len() {
                    cell.clone()
                } else {
                    format!("{cell:<w$}", w = widths[i])
                }
            })
            .collect();
        inv.outln(&line.join(" "));
    }
    0
}

pub fn run_swapoff(inv: &mut Invocation) -> i32 {
    let args = inv.args.clone();
    let all = args.iter().any(|a| a == "-a" || a == "--all");
    let targets: Vec<String> = args
        .iter()
        .filter(|a| !a.starts_with('-'))
        .cloned()
        .collect();
    if let Some(bad) = args
        .iter()
        .find(|a| a.starts_with('-') && !["-a", "--all", "-v", "--verbose"].contains(&a.as_str()))
    {
        inv.errln(&format!("swapoff: unrecognized option '{bad}'"));
        inv.errln("Try 'swapoff --help' for more information.");
        return 16;
    }
    if !all && targets.is_empty() {
        inv.errln("swapoff: bad usage");
        inv.errln("Try 'swapoff --help' for more information.");
        return 16;
    }
    let mut areas = active(inv);
    if (all && !areas.is_empty() || !targets.is_empty()) && inv.uid != 0 {
        inv.errln("swapoff: Not superuser.");
        return 16;
    }
    let locked = inv.profile().map(|p| p.swap_locked).unwrap_or(false);
    let mut status = 0;
    for t in &targets {
        if !areas.iter().any(|a| &a.path == t) {
            inv.errln(&format!("swapoff: {t}: swapoff failed: Invalid argument"));
            status |= 4;
        } else if locked {
            inv.errln(&format!(
                "swapoff: {t}: swapoff failed: Cannot allocate memory"
            ));
            status |= 2;
        } else {
            areas.retain(|a| &a.path != t);
        }
    }
    if all {
        let (mut ok, mut failed) = (0, 0);
        let paths: Vec<String> = areas.iter().map(|a| a.path.clone()).collect();
        for p in paths {
            if locked {
                inv.errln(&format!(
                    "swapoff: {p}: swapoff failed: Cannot allocate memory"
                ));
                failed += 1;
            } else {
                areas.retain(|a| a.path != p);
                ok += 1;
            }
        }
        status |= match (ok, failed) {
            (_, 0) => 0,
            (0, _) => 32,
            _ => 64,
        };
    }
    if !store(inv, &areas) {
        status |= 8;
    }
    status
}

#[cfg(test)]
mod tests {
    use crate::distro::{Arch, Distro};
    use crate::emu::testing::FakeHost;
    use crate::procfs;

    fn host_with_swap(locked: bool) -> FakeHost {
        let h = FakeHost::new(Distro::Ubuntu2204, Arch::Amd64);
        let mut p = h.profile();
        p.swap_mib = 2048;
        p.swap_locked = locked;
        h.set_profile(&p);
        h.write("/etc/fstab", "/swap.img\tnone\tswap\tsw\t0\t0\n");
        h.write("/swap.img", "");
        h.write("/proc/swaps", &procfs::swaps(&[]));
        h.write("/proc/meminfo", &procfs::meminfo(2048, 0, 0));
        h
    }

    #[test]
    fn swapon_all_then_show_then_off() {
        let h = host_with_swap(false);
        assert_eq!(h.run("swapon", &["--show"]).1, "");
        assert_eq!(h.run("swapon", &["-a"]).0, 0);
        assert_eq!(
            h.run("swapon", &["--show"]).1,
            "NAME      TYPE SIZE USED PRIO\n/swap.img file   2G   0B   -2\n"
        );
        assert_eq!(
            h.run("swapon", &["--show=NAME", "--noheadings"]).1,
            "/swap.img\n"
        );
        assert!(h
            .read("/proc/meminfo")
            .contains("SwapTotal:       2097148 kB"));
        assert_eq!(h.run("swapoff", &["-a"]).0, 0);
        assert_eq!(h.run("swapon", &["--show", "--noheadings"]).1, "");
        assert!(h
            .read("/proc/meminfo")
            .contains("SwapTotal:             0 kB"));
        // Twice is fine, as with util-linux.
        assert_eq!(h.run("swapoff", &["-a"]).0, 0);
    }

    #[test]
    fn locked_swap_cannot_be_disabled() {
        let h = host_with_swap(true);
        assert_eq!(h.run("swapon", &["-a"]).0, 0);
        let (status, _, err) = h.run("swapoff", &["-a"]);
        assert_eq!(status, 32);
        assert_eq!(
            err,
            "swapoff: /swap.img: swapoff failed: Cannot allocate memory\n"
        );
        assert_eq!(
            h.run("swapon", &["--show=NAME", "--noheadings"]).1,
            "/swap.img\n"
        );
    }

    #[test]
    fn swapoff_needs_root_and_an_argument() {
        let h = host_with_swap(false);
        h.run("swapon", &["-a"]);
        assert_eq!(
            h.run_as(1000, "swapoff", &["-a"]),
            (16, String::new(), "swapoff: Not superuser.\n".into())
        );
        assert_eq!(h.run("swapoff", &[]).0, 16);
    }
}
