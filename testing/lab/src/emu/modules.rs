//! `modprobe` and `lsmod` (kmod): loaded modules are the lines of the host's
//! `/proc/modules`. Loading a module pulls in its dependencies and makes the kernel files it
//! owns appear (`br_netfilter` adds `/proc/sys/net/bridge/*`, as the real module does);
//! a module the distro kernel does not ship fails as "not found".

use super::Invocation;
use crate::procfs::{self, LoadedModule};

/// Modules a lab kernel ships: name, size, dependencies.
const KNOWN: &[(&str, u64, &[&str])] = &[
    ("overlay", 151552, &[]),
    ("br_netfilter", 32768, &["bridge"]),
    ("bridge", 311296, &["stp", "llc"]),
    ("stp", 16384, &["llc"]),
    ("llc", 16384, &[]),
    (
        "nf_conntrack",
        172032,
        &["nf_defrag_ipv6", "nf_defrag_ipv4", "libcrc32c"],
    ),
    ("nf_defrag_ipv4", 16384, &[]),
    ("nf_defrag_ipv6", 24576, &[]),
    ("libcrc32c", 16384, &[]),
    ("nf_nat", 49152, &["nf_conntrack"]),
    ("ip_vs", 176128, &["nf_conntrack"]),
    ("ip_vs_rr", 16384, &["ip_vs"]),
    ("ip_vs_wrr", 16384, &["ip_vs"]),
    ("ip_vs_sh", 16384, &["ip_vs"]),
    ("ip_tables", 32768, &["x_tables"]),
    ("ip6_tables", 32768, &["x_tables"]),
    ("x_tables", 53248, &[]),
    ("iptable_filter", 16384, &["ip_tables"]),
    ("iptable_nat", 16384, &["ip_tables", "nf_nat"]),
    ("xt_conntrack", 16384, &["nf_conntrack", "x_tables"]),
    ("vxlan", 98304, &[]),
    ("ipip", 20480, &[]),
    ("autofs4", 49152, &[]),
    ("dm_mod", 155648, &[]),
    ("rbd", 118784, &[]),
];

fn normalize(name: &str) -> String {
    name.replace('-', "_")
}

fn loaded(inv: &Invocation) -> Vec<LoadedModule> {
    procfs::parse_modules(&inv.read("/proc/modules").unwrap_or_default())
}

/// Kernel files a module creates when loaded: (path, initial content).
fn side_files(module: &str) -> &'static [(&'static str, &'static str)] {
    match module {
        "br_netfilter" => &[
            ("/proc/sys/net/bridge/bridge-nf-call-iptables", "1\n"),
            ("/proc/sys/net/bridge/bridge-nf-call-ip6tables", "1\n"),
            ("/proc/sys/net/bridge/bridge-nf-call-arptables", "1\n"),
        ],
        "nf_conntrack" => &[
            ("/proc/sys/net/netfilter/nf_conntrack_max", "131072\n"),
            ("/proc/sys/net/nf_conntrack_max", "131072\n"),
        ],
        _ => &[],
    }
}

fn insert(
    inv: &mut Invocation,
    list: &mut Vec<LoadedModule>,
    name: &str,
    holder: Option<&str>,
) -> std::io::Result<()> {
    let Some((_, size, deps)) = KNOWN.iter().find(|(n, _, _)| *n == name) else {
        return Ok(());
    };
    for dep in deps.iter() {
        insert(inv, list, dep, Some(name))?;
    }
    if let Some(m) = list.iter_mut().find(|m| m.name == name) {
        if let Some(h) = holder {
            if !m.used_by.iter().any(|u| u == h) {
                m.used_by.push(h.to_string());
                m.refcount += 1;
            }
        }
        return Ok(());
    }
    list.insert(
        0,
        LoadedModule {
            name: name.to_string(),
            size: *size,
            refcount: u32::from(holder.is_some()),
            used_by: holder.map(|h| vec![h.to_string()]).unwrap_or_default(),
        },
    );
    inv.write(&format!("/sys/module/{name}/refcnt"), "0\n")?;
    for (path, text) in side_files(name) {
        inv.write(path, text)?;
    }
    Ok(())
}

pub fn run_modprobe(inv: &mut Invocation) -> i32 {
    let args = inv.args.clone();
    let mut remove = false;
    let mut quiet = false;
    let mut dry_run = false;
    let mut all = false;
    let mut names = Vec::new();
    for a in &args {
        match a.as_str() {
            "-r" | "--remove" => remove = true,
            "-q" | "--quiet" => quiet = true,
            "-n" | "--dry-run" | "--show" => dry_run = true,
            "-a" | "--all" => all = true,
            "-v" | "--verbose" | "-b" | "--use-blacklist" => {}
            s if s.starts_with('-') => {
                inv.errln(&format!("modprobe: unrecognized option '{s}'"));
                return 1;
            }
            s => names.push(normalize(s)),
        }
    }
    if names.is_empty() {
        inv.errln("modprobe: ERROR: missing parameters. See -h.");
        return 1;
    }
    // Without -a, only the first name is a module; the rest are its parameters.
    if !all && !remove {
        names.truncate(1);
    }
    let release = inv.profile().map(|p| p.kernel_release).unwrap_or_default();
    let mut list = loaded(inv);
    for name in &names {
        if !KNOWN.iter().any(|(n, _, _)| n == name) {
            if remove && !list.iter().any(|m| &m.name == name) {
                inv.errln(&format!("modprobe: FATAL: Module {name} not found."));
                return 1;
            }
            if !quiet {
                inv.errln(&format!(
                    "modprobe: FATAL: Module {name} not found in directory /lib/modules/{release}"
                ));
            }
            return 1;
        }
        if dry_run {
            continue;
        }
        if inv.uid != 0 {
            let verb = if remove { "remove" } else { "insert" };
            inv.errln(&format!(
                "modprobe: ERROR: could not {verb} '{name}': Operation not permitted"
            ));
            return 1;
        }
        if remove {
            if let Some(m) = list.iter().find(|m| &m.name == name) {
                if m.refcount > 0 {
                    inv.errln(&format!("modprobe: FATAL: Module {name} is in use."));
                    return 1;
                }
            }
            list.retain(|m| &m.name != name);
            for m in list.iter_mut() {
                if m.used_by.iter().any(|u| u == name) {
                    m.used_by.retain(|u| u != name);
                    m.refcount = m.refcount.saturating_sub(1);
                }
            }
            let _ = std::fs::remove_dir_all(inv.path(&format!("/sys/module/{name}")));
            for (path, _) in side_files(name) {
                let _ = std::fs::remove_file(inv.path(path));
            }
        } else if let Err(e) = insert(inv, &mut list, name, None) {
            inv.errln(&format!("modprobe: ERROR: could not insert '{name}': {e}"));
            return 1;
        }
    }
    if let Err(e) = inv.write("/proc/modules", &procfs::modules(&list)) {
        inv.errln(&format!("modprobe: ERROR: {e}"));
        return 1;
    }
    0
}

pub fn run_lsmod(inv: &mut Invocation) -> i32 {
    if let Some(a) = inv.args.first() {
        inv.errln(&format!("Usage: lsmod\n(unexpected argument '{a}')"));
        return 1;
    }
    inv.outln("Module                  Size  Used by");
    for m in loaded(inv) {
        let mut line = format!("{:<19} {:>8}  {}", m.name, m.size, m.refcount);
        if !m.used_by.is_empty() {
            line.push(' ');
            line.push_str(&m.used_by.join(","));
        }
        inv.outln(&line);
    }
    0
}

#[cfg(test)]
mod tests {
    use crate::distro::{Arch, Distro};
    use crate::emu::testing::FakeHost;

    #[test]
    fn br_netfilter_brings_bridge_sysctls() {
        let h = FakeHost::new(Distro::Ubuntu2204, Arch::Amd64);
        h.write("/proc/modules", "");
        assert_eq!(
            h.run("sysctl", &["-n", "net.bridge.bridge-nf-call-iptables"])
                .0,
            255
        );
        assert_eq!(h.run("modprobe", &["br_netfilter"]).0, 0);
        assert_eq!(
            h.run("sysctl", &["-n", "net.bridge.bridge-nf-call-iptables"])
                .1,
            "1\n"
        );
        let lsmod = h.run("lsmod", &[]).1;
        assert!(
            lsmod.starts_with("Module                  Size  Used by\n"),
            "{lsmod}"
        );
        assert!(
            lsmod.contains("br_netfilter           32768  0\n"),
            "{lsmod}"
        );
        assert!(
            lsmod.contains("bridge                311296  1 br_netfilter\n"),
            "{lsmod}"
        );
        let (status, _, err) = h.run("modprobe", &["-r", "bridge"]);
        assert_eq!(
            (status, err.as_str()),
            (1, "modprobe: FATAL: Module bridge is in use.\n")
        );
        assert_eq!(h.run("modprobe", &["-r", "br_netfilter"]).0, 0);
        assert!(!h.run("lsmod", &[]).1.contains("br_netfilter"));
    }

    #[test]
    fn unknown_module_and_non_root_fail() {
        let h = FakeHost::new(Distro::Rocky9, Arch::Amd64);
        let (status, _, err) = h.run("modprobe", &["nosuchmod"]);
        assert_eq!(status, 1);
        assert_eq!(
            err,
            "modprobe: FATAL: Module nosuchmod not found in directory /lib/modules/5.14.0-427.13.1.el9_4.x86_64\n"
        );
        assert_eq!(h.run_as(1000, "modprobe", &["overlay"]).0, 1);
    }
}
