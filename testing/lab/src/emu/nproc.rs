//! `nproc`: the host's CPU count (the real one would report the machine's).

use super::Invocation;

pub fn run(inv: &mut Invocation) -> i32 {
    let cpus = match inv.profile() {
        Ok(p) => p.cpus as i64,
        Err(e) => {
            inv.errln(&format!("nproc: {e}"));
            return 1;
        }
    };
    let mut ignore = 0i64;
    let args = inv.args.clone();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let value = if arg == "--all" {
            continue;
        } else if let Some(v) = arg.strip_prefix("--ignore=") {
            v.to_string()
        } else if arg == "--ignore" {
            match it.next() {
                Some(v) => v.clone(),
                None => {
                    inv.errln("nproc: option '--ignore' requires an argument");
                    inv.errln("Try 'nproc --help' for more information.");
                    return 1;
                }
            }
        } else if arg.starts_with('-') {
            inv.errln(&format!("nproc: unrecognized option '{arg}'"));
            inv.errln("Try 'nproc --help' for more information.");
            return 1;
        } else {
            inv.errln(&format!("nproc: extra operand '{arg}'"));
            inv.errln("Try 'nproc --help' for more information.");
            return 1;
        };
        match value.parse::<i64>() {
            Ok(n) if n >= 0 => ignore = n,
            _ => {
                inv.errln(&format!("nproc: invalid number: '{value}'"));
                return 1;
            }
        }
    }
    inv.outln(&(cpus - ignore).max(1).to_string());
    0
}

#[cfg(test)]
mod tests {
    use crate::distro::{Arch, Distro};
    use crate::emu::testing::FakeHost;

    #[test]
    fn reports_profile_cpus() {
        let h = FakeHost::new(Distro::Ubuntu2204, Arch::Amd64);
        assert_eq!(h.run("nproc", &[]).1, "4\n");
        assert_eq!(h.run("nproc", &["--ignore=1"]).1, "3\n");
        assert_eq!(h.run("nproc", &["--ignore", "9"]).1, "1\n");
        assert_eq!(h.run("nproc", &["--bogus"]).0, 1);
    }
}
