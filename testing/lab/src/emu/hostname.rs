//! `hostname` and `hostnamectl`: the kernel host name is `/proc/sys/kernel/hostname`, the
//! static one is `/etc/hostname` (what `hostnamectl set-hostname` changes, as systemd does).

use super::uname::kernel_hostname;
use super::Invocation;

fn valid_hostname(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.split('.').all(|label| {
            !label.is_empty()
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

pub fn run_hostname(inv: &mut Invocation) -> i32 {
    let args = inv.args.clone();
    let name = kernel_hostname(inv);
    let address = inv.profile().map(|p| p.address).unwrap_or_default();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        [] | ["-f"] | ["--fqdn"] | ["--long"] | ["-A"] | ["--all-fqdns"] => inv.outln(&name),
        ["-s"] | ["--short"] => inv.outln(name.split('.').next().unwrap_or(&name)),
        ["-i"] | ["--ip-address"] => inv.outln(&address),
        ["-I"] | ["--all-ip-addresses"] => inv.outln(&format!("{address} ")),
        ["-d"] | ["--domain"] => inv.outln(name.split_once('.').map(|x| x.1).unwrap_or("")),
        [new] if !new.starts_with('-') => {
            if inv.uid != 0 {
                inv.errln("hostname: you must be root to change the host name");
                return 1;
            }
            if !valid_hostname(new) {
                inv.errln("hostname: the specified hostname is invalid");
                return 1;
            }
            if let Err(e) = inv.write("/proc/sys/kernel/hostname", &format!("{new}\n")) {
                inv.errln(&format!("hostname: {e}"));
                return 1;
            }
        }
        [opt, ..] => {
            inv.errln(&format!(
                "hostname: invalid option -- '{}'",
                opt.trim_start_matches('-')
            ));
            inv.errln("Usage: hostname [-b] {hostname|-F file}         set host name (from file)");
            return 1;
        }
    }
    0
}

pub fn run_hostnamectl(inv: &mut Invocation) -> i32 {
    let args: Vec<String> = inv.args.clone();
    let positional: Vec<&str> = args
        .iter()
        .map(String::as_str)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let flag = |f: &str| args.iter().any(|a| a == f);
    let static_name = inv.hostname();
    match positional.as_slice() {
        ["set-hostname", name] | ["hostname", name] => {
            if inv.uid != 0 {
                inv.errln("Could not set static hostname: Access denied");
                return 1;
            }
            if !valid_hostname(name) {
                inv.errln(&format!("Invalid hostname '{name}'"));
                return 1;
            }
            let r = inv
                .write("/etc/hostname", &format!("{name}\n"))
                .and_then(|_| inv.write("/proc/sys/kernel/hostname", &format!("{name}\n")));
            if let Err(e) = r {
                inv.errln(&format!("Could not set static hostname: {e}"));
                return 1;
            }
            0
        }
        ["hostname"] => {
            inv.outln(&kernel_hostname(inv));
            0
        }
        [] | ["status"] => {
            if flag("--static") || flag("--transient") || flag("--pretty") {
                let name = if flag("--transient") {
                    kernel_hostname(inv)
                } else {
                    static_name
                };
                inv.outln(&name);
                return 0;
            }
            let profile = match inv.profile() {
                Ok(p) => p,
                Err(e) => {
                    inv.errln(&format!("hostnamectl: {e}"));
                    return 1;
                }
            };
            let pretty = profile
                .distro
                .os_release()
                .lines()
                .find_map(|l| l.strip_prefix("PRETTY_NAME="))
                .unwrap_or("Linux")
                .trim_matches('"')
                .to_string();
            let arch = match profile.arch {
                crate::distro::Arch::Amd64 => "x86-64",
                crate::distro::Arch::Arm64 => "arm64",
            };
            let machine_id = inv.read("/etc/machine-id").unwrap_or_default();
            inv.out(&format!(
                " Static hostname: {static_name}\n       Icon name: computer-vm\n         Chassis: vm\n      Machine ID: {}\n  Virtualization: kvm\nOperating System: {pretty}\n          Kernel: Linux {}\n    Architecture: {arch}\n",
                machine_id.trim(),
                profile.kernel_release
            ));
            0
        }
        [verb, ..] => {
            inv.errln(&format!("Unknown command verb {verb}."));
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::distro::{Arch, Distro};
    use crate::emu::testing::FakeHost;

    #[test]
    fn set_hostname_changes_static_and_kernel_names() {
        let h = FakeHost::new(Distro::Ubuntu2204, Arch::Amd64);
        assert_eq!(h.run("hostname", &[]).1, "node-1\n");
        assert_eq!(h.run("hostnamectl", &["set-hostname", "k8s-master"]).0, 0);
        assert_eq!(h.read("/etc/hostname"), "k8s-master\n");
        assert_eq!(h.run("hostname", &[]).1, "k8s-master\n");
        assert_eq!(h.run("uname", &["-n"]).1, "k8s-master\n");
        assert_eq!(h.run("hostnamectl", &["--static"]).1, "k8s-master\n");
        assert!(h
            .run("hostnamectl", &[])
            .1
            .contains("Operating System: Ubuntu 22.04.4 LTS"));
    }

    #[test]
    fn only_root_may_rename() {
        let h = FakeHost::new(Distro::Ubuntu2204, Arch::Amd64);
        let (status, _, err) = h.run_as(1000, "hostname", &["x"]);
        assert_eq!(status, 1);
        assert_eq!(err, "hostname: you must be root to change the host name\n");
        assert_eq!(h.run_as(1000, "hostnamectl", &["set-hostname", "x"]).0, 1);
        assert_eq!(h.run("hostnamectl", &["set-hostname", "bad_name"]).0, 1);
    }
}
