//! Programs that installed packages place (kubeadm, kubelet, containerd, docker,
//! iptables...) whose emulation does not exist yet. Running one says so and exits 127,
//! like a missing command, rather than pretending to succeed. An emulation replaces the
//! program's arm in [`super::dispatch`]; the name then leaves [`PROGRAMS`].

use super::Invocation;

/// Programs a package places that no module emulates yet.
pub const PROGRAMS: &[&str] = &[
    "containerd-shim-runc-v2",
    "runc",
    "dockerd",
    "docker-proxy",
    "docker-buildx",
    "docker-compose",
    "conntrack",
    "socat",
    "ebtables",
    "ethtool",
    "iptables-restore",
    "ip6tables-restore",
    "ipset",
    "ipvsadm",
];

pub fn run(inv: &mut Invocation) -> i32 {
    inv.errln(&format!("k8sup-lab: {} is not emulated yet", inv.tool));
    127
}

#[cfg(test)]
mod tests {
    use crate::distro::{Arch, Distro};
    use crate::emu::testing::FakeHost;

    #[test]
    fn says_it_is_not_emulated() {
        let h = FakeHost::new(Distro::Ubuntu2204, Arch::Amd64);
        let (s, out, e) = h.run("ipvsadm", &["--version"]);
        assert_eq!((s, out.as_str()), (127, ""));
        assert_eq!(e, "k8sup-lab: ipvsadm is not emulated yet\n");
    }
}
