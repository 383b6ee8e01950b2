//! `k8sup kubeconfig` and `k8sup reset` on lab hosts.

mod common;

use std::os::unix::fs::PermissionsExt;

use common::{k8sup, lab, spec, stderr, stdout, write_inventory};

const ADMIN_CONF: &str = "apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: LS0tLS1CRUdJTi
    server: https://10.0.0.10:6443
  name: kubernetes
contexts:
- context:
    cluster: kubernetes
    user: kubernetes-admin
  name: kubernetes-admin@kubernetes
current-context: kubernetes-admin@kubernetes
kind: Config
users:
- name: kubernetes-admin
  user:
    client-certificate-data: LS0tLS1CRUdJTi
    client-key-data: LS0tLS1CRUdJTi
";

#[test]
fn kubeconfig_points_at_the_endpoint_and_is_private() {
    let Some(lab) = lab(&spec("name = \"kubeconfig\"\n[[hosts]]\nname = \"m1\"\nroles = [\"master\"]\n[[hosts]]\nname = \"n1\"\n")) else {
        return;
    };
    let fragment = "[cluster]\nname = \"kc\"\nkubernetes_version = \"1.30\"\ncontrol_plane_endpoint = \"k8s.example.org:6443\"\n";
    let inv = write_inventory(&lab, "kc.toml", &lab.inventory_toml(fragment));
    let inv = inv.to_str().unwrap();
    let out_file = lab.dir().join("admin.kubeconfig");

    // Before the cluster exists: a clear error.
    let out = k8sup(
        &["kubeconfig", "-i", inv, "-o", out_file.to_str().unwrap()],
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("has the cluster been installed?"),
        "{}",
        stderr(&out)
    );
    assert!(!out_file.exists());

    let master = lab.host("m1").unwrap();
    std::fs::create_dir_all(master.path("/etc/kubernetes")).unwrap();
    std::fs::write(master.path("/etc/kubernetes/admin.conf"), ADMIN_CONF).unwrap();
    let out = k8sup(
        &["kubeconfig", "-i", inv, "-o", out_file.to_str().unwrap()],
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = std::fs::read_to_string(&out_file).unwrap();
    assert!(
        text.contains("    server: https://k8s.example.org:6443\n"),
        "{text}"
    );
    assert!(!text.contains("10.0.0.10"));
    assert_eq!(
        text.replace("https://k8s.example.org:6443", "https://10.0.0.10:6443"),
        ADMIN_CONF
    );
    let mode = std::fs::metadata(&out_file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);

    // Without -o it goes to stdout.
    let out = k8sup(&["kubeconfig", "-i", inv], &[]);
    assert!(stdout(&out).contains("server: https://k8s.example.org:6443"));
}

/// `text` holds every one of `lines`.
fn says(text: &str, lines: &[&str]) {
    for line in lines {
        assert!(text.contains(line), "{line}: {text}");
    }
}

#[test]
fn reset_clears_every_host_and_can_run_twice() {
    let Some(lab) = lab(&spec("name = \"reset\"\n[[hosts]]\nname = \"m1\"\nroles = [\"master\"]\n[[hosts]]\nname = \"n1\"\ndistro = \"rocky9\"\narch = \"arm64\"\n")) else {
        return;
    };
    let inv = write_inventory(&lab, "reset.toml", &lab.inventory_toml(""));
    let inv = inv.to_str().unwrap();
    let leftovers = [
        "/var/lib/k8sup/state.json",
        "/etc/cni/net.d/10-flannel.conflist",
        "/var/lib/cni/networks/cbr0/last_reserved_ip.0",
        "/etc/kubernetes/manifests/kube-apiserver.yaml",
        "/etc/k8sup/kubeadm.yaml",
    ];
    for h in lab.hosts() {
        for f in leftovers {
            let p = h.path(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, "x").unwrap();
        }
    }
    // Not on a terminal: no one can confirm, so it needs --yes.
    let out = k8sup(&["reset", "-i", inv], &[]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    for h in lab.hosts() {
        assert!(
            h.path(leftovers[0]).exists(),
            "{}: reset without --yes",
            h.name
        );
    }
    // The dry run shows every step per host and changes nothing.
    let out = k8sup(&["reset", "-i", inv, "--dry-run"], &[]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let plan = stdout(&out);
    for h in lab.hosts() {
        assert!(plan.contains(&format!("{}: ", h.name)), "{plan}");
    }
    says(
        &plan,
        &[
            "  ~ kubernetes directories removed [command]: `for d in",
            "      $ rm -rf /etc/cni/net.d /var/lib/cni",
            "  ~ k8sup state removed [command]: `test ! -e /var/lib/k8sup` exited 1",
            "      $ rm -rf /var/lib/k8sup",
            "  = kubeadm reset [command]: `! command -v kubeadm >/dev/null 2>&1` succeeded",
            "  = haproxy balancer removed [command]: ",
            "on 2 of 2 host(s); nothing was changed.",
        ],
    );
    for h in lab.hosts() {
        for f in leftovers {
            assert!(
                h.path(f).exists(),
                "{}: {f} is gone after a dry run",
                h.name
            );
        }
    }
    let out = k8sup(&["reset", "-i", inv, "--yes"], &[]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let said = stdout(&out);
    assert!(said.contains("2 hosts reset"), "{said}");
    // The engine's progress, as apply shows it when stdout is not a terminal.
    says(
        &said,
        &[
            "m1: changed: kubernetes directories removed",
            "n1: changed: k8sup state removed",
            "m1: reset\n",
        ],
    );
    for h in lab.hosts() {
        for f in leftovers {
            assert!(!h.path(f).exists(), "{}: {f} is left", h.name);
        }
        // No ledger of the reset's own outlives it, nor k8sup's directory.
        for dir in ["/var/lib/k8sup", "/etc/k8sup", "/run/k8sup-reset"] {
            assert!(!h.path(dir).exists(), "{}: {dir} is left", h.name);
        }
    }
    let out = k8sup(&["reset", "-i", inv, "--yes"], &[]);
    assert!(
        out.status.success(),
        "a second reset works too: {}",
        stderr(&out)
    );
    assert!(
        !stdout(&out).contains("changed: k8sup state removed"),
        "nothing left to remove: {}",
        stdout(&out)
    );
}

#[test]
fn a_reset_step_that_fails_is_named_and_stops_that_host() {
    let Some(lab) = lab(&spec(
        "name = \"reset-fails\"\n[[hosts]]\nname = \"m1\"\nroles = [\"master\"]\n",
    )) else {
        return;
    };
    let inv = write_inventory(&lab, "reset.toml", &lab.inventory_toml(""));
    let inv = inv.to_str().unwrap();
    let m1 = lab.host("m1").unwrap();
    for f in ["/var/lib/k8sup/state.json", "/etc/k8sup/kubeadm.yaml"] {
        std::fs::create_dir_all(m1.path(f).parent().unwrap()).unwrap();
        std::fs::write(m1.path(f), "x").unwrap();
    }
    // iptables as its package puts it, then made to fail (status 4: iptables's
    // "resource problem"; the step stops at it with 1).
    let installed = lab.ssh("m1", "apt-get install -y iptables").unwrap();
    assert!(
        installed.status.success(),
        "{}",
        String::from_utf8_lossy(&installed.stderr)
    );
    lab.faults("m1")
        .unwrap()
        .fail_command("iptables", 4)
        .unwrap();
    let out = k8sup(&["reset", "-i", inv, "--yes"], &[]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let err = stderr(&out);
    assert!(
        err.contains(
            "error: reset failed on m1 at \"iptables flushed\" (exit 1): iptables: failed"
        ),
        "{err}"
    );
    assert!(err.contains("1 of 1 hosts were not reset"), "{err}");
    assert!(!stdout(&out).contains("m1: reset\n"), "{}", stdout(&out));
    // The steps before it were taken, the ones after it were not: k8sup's state
    // stays, so the host still reads as k8sup's; the reset's own ledger does not.
    assert!(!m1.path("/etc/k8sup").exists());
    assert!(m1.path("/var/lib/k8sup/state.json").exists());
    assert!(!m1.path("/run/k8sup-reset").exists());

    // Fixed, it goes on where it stopped; --quiet prints nothing when all is well.
    lab.faults("m1").unwrap().clear().unwrap();
    let out = k8sup(&["reset", "-i", inv, "--yes", "-q"], &[]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert_eq!(stdout(&out), "");
    assert!(!m1.path("/var/lib/k8sup").exists());
}
