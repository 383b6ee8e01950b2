//! `getenforce` and `setenforce` (Red Hat family only; other distros hide them): the mode is
//! `/sys/fs/selinux/enforce`, as on a real kernel; without it SELinux is disabled.

use super::Invocation;

const ENFORCE: &str = "/sys/fs/selinux/enforce";

pub fn run_getenforce(inv: &mut Invocation) -> i32 {
    let mode = match inv.read(ENFORCE).map(|s| s.trim().to_string()) {
        Ok(v) if v == "1" => "Enforcing",
        Ok(_) => "Permissive",
        Err(_) => "Disabled",
    };
    inv.outln(mode);
    0
}

pub fn run_setenforce(inv: &mut Invocation) -> i32 {
    let usage = "usage:  setenforce [ Enforcing | Permissive | 1 | 0 ]";
    let value = match inv.args.as_slice() {
        [v] => match v.to_ascii_lowercase().as_str() {
            "1" | "enforcing" => "1",
            "0" | "permissive" => "0",
            _ => {
                inv.errln(usage);
                return 1;
            }
        },
        _ => {
            inv.errln(usage);
            return 1;
        }
    };
    if !inv.path(ENFORCE).exists() {
        inv.errln("setenforce: SELinux is disabled");
        return 1;
    }
    if inv.uid != 0 {
        inv.errln("setenforce:  security_setenforce() failed:  Permission denied");
        return 1;
    }
    if let Err(e) = inv.write(ENFORCE, value) {
        inv.errln(&format!("setenforce:  security_setenforce() failed:  {e}"));
        return 1;
    }
    0
}

#[cfg(test)]
mod tests {
    use crate::distro::{Arch, Distro};
    use crate::emu::testing::FakeHost;

    #[test]
    fn toggles_enforcing() {
        let h = FakeHost::new(Distro::Rocky9, Arch::Amd64);
        assert_eq!(h.run("getenforce", &[]).1, "Disabled\n");
        assert_eq!(h.run("setenforce", &["0"]).0, 1);
        h.write("/sys/fs/selinux/enforce", "1");
        assert_eq!(h.run("getenforce", &[]).1, "Enforcing\n");
        assert_eq!(h.run("setenforce", &["0"]).0, 0);
        assert_eq!(h.run("getenforce", &[]).1, "Permissive\n");
        assert_eq!(h.run_as(1000, "setenforce", &["1"]).0, 1);
        assert_eq!(h.run("setenforce", &["maybe"]).0, 1);
    }
}
