//! `uname`: the host's kernel name, node name, release and machine (x86_64 or aarch64).

use super::Invocation;

const ALL: [char; 8] = ['s', 'n', 'r', 'v', 'm', 'p', 'i', 'o'];

pub fn run(inv: &mut Invocation) -> i32 {
    let profile = match inv.profile() {
        Ok(p) => p,
        Err(e) => {
            inv.errln(&format!("uname: {e}"));
            return 1;
        }
    };
    let mut wanted: Vec<char> = Vec::new();
    let mut all = false;
    for arg in inv.args.clone() {
        let long = match arg.as_str() {
            "--all" => Some('a'),
            "--kernel-name" => Some('s'),
            "--nodename" => Some('n'),
            "--kernel-release" => Some('r'),
            "--kernel-version" => Some('v'),
            "--machine" => Some('m'),
            "--processor" => Some('p'),
            "--hardware-platform" => Some('i'),
            "--operating-system" => Some('o'),
            "--help" => {
                inv.outln("Usage: uname [OPTION]...\nPrint certain system information.  With no OPTION, same as -s.");
                return 0;
            }
            "--version" => {
                inv.outln("uname (GNU coreutils) 8.32");
                return 0;
            }
            _ => None,
        };
        let flags: Vec<char> = if let Some(c) = long {
            vec![c]
        } else if let Some(short) = arg
            .strip_prefix('-')
            .filter(|s| !s.is_empty() && !s.starts_with('-'))
        {
            short.chars().collect()
        } else if arg.starts_with("--") {
            inv.errln(&format!("uname: unrecognized option '{arg}'"));
            inv.errln("Try 'uname --help' for more information.");
            return 1;
        } else {
            inv.errln(&format!("uname: extra operand '{arg}'"));
            inv.errln("Try 'uname --help' for more information.");
            return 1;
        };
        for c in flags {
            if c == 'a' {
                all = true;
            } else if ALL.contains(&c) {
                wanted.push(c);
            } else {
                inv.errln(&format!("uname: invalid option -- '{c}'"));
                inv.errln("Try 'uname --help' for more information.");
                return 1;
            }
        }
    }
    if all {
        wanted = ALL.to_vec();
    } else if wanted.is_empty() {
        wanted.push('s');
    }
    let machine = profile.arch.machine().to_string();
    let hostname = kernel_hostname(inv);
    let fields: Vec<String> = ALL
        .iter()
        .filter(|c| wanted.contains(c))
        .map(|c| match c {
            's' => "Linux".to_string(),
            'n' => hostname.clone(),
            'r' => profile.kernel_release.clone(),
            'v' => "#1 SMP PREEMPT_DYNAMIC Mon Apr 15 09:52:04 UTC 2024".to_string(),
            'o' => "GNU/Linux".to_string(),
            _ => machine.clone(),
        })
        .collect();
    inv.outln(&fields.join(" "));
    0
}

/// The kernel's idea of the host name (what `hostname NAME` changes).
pub(super) fn kernel_hostname(inv: &Invocation) -> String {
    inv.read("/proc/sys/kernel/hostname")
        .ok()
        .map(|t| t.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| inv.hostname())
}

#[cfg(test)]
mod tests {
    use crate::distro::{Arch, Distro};
    use crate::emu::testing::FakeHost;

    #[test]
    fn reports_arch_and_release() {
        let h = FakeHost::new(Distro::Rocky9, Arch::Arm64);
        assert_eq!(h.run("uname", &["-m"]).1, "aarch64\n");
        assert_eq!(h.run("uname", &[]).1, "Linux\n");
        assert_eq!(
            h.run("uname", &["-sr"]).1,
            "Linux 5.14.0-427.13.1.el9_4.aarch64\n"
        );
        let all = h.run("uname", &["-a"]).1;
        assert!(all.starts_with("Linux node-1 5.14.0"), "{all}");
        assert!(
            all.ends_with("aarch64 aarch64 aarch64 GNU/Linux\n"),
            "{all}"
        );
        let h = FakeHost::new(Distro::Ubuntu2204, Arch::Amd64);
        assert_eq!(h.run("uname", &["--machine"]).1, "x86_64\n");
    }

    #[test]
    fn rejects_bad_options_like_coreutils() {
        let h = FakeHost::new(Distro::Ubuntu2204, Arch::Amd64);
        let (status, _, err) = h.run("uname", &["-z"]);
        assert_eq!(status, 1);
        assert!(err.starts_with("uname: invalid option -- 'z'"));
        assert_eq!(h.run("uname", &["x"]).0, 1);
    }
}
