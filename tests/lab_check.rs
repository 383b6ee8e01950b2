//! `k8sup facts` and `k8sup check` against a lab that mixes Ubuntu/Debian and
//! Rocky/CentOS, amd64 and arm64, with one host for each kind of preflight
//! problem. The findings are asserted exactly.

mod common;

use std::collections::BTreeSet;

use common::{k8sup, lab, spec, stderr, stdout, write_inventory};

const LAB: &str = r#"
name = "check"
k8sup_user = "nopasswd"

[[hosts]]
name = "good-master"
roles = ["master"]
distro = "ubuntu2204"
arch = "amd64"

[[hosts]]
name = "small-master"
roles = ["master"]
distro = "rocky9"
arch = "amd64"
memory_mib = 1024
cpus = 1

[[hosts]]
name = "arm-declared-amd"
distro = "debian12"
arch = "arm64"

[[hosts]]
name = "swappy"
distro = "rocky8"
arch = "arm64"
swap_mib = 1024

[[hosts]]
name = "too-old"
distro = "ubuntu2004"

[[hosts]]
name = "clone-a"
distro = "centos7"
product_uuid = "4c4c4544-0042-3910-8033-b4c04f4e4e31"

[[hosts]]
name = "clone-b"
distro = "centos7"
product_uuid = "4c4c4544-0042-3910-8033-b4c04f4e4e31"

[[hosts]]
name = "twin-a"
mac = "52:54:00:12:34:56"

[[hosts]]
name = "twin-b"
mac = "52:54:00:12:34:56"

[[hosts]]
name = "port-taken"
listening_ports = [22, 10250]

[[hosts]]
name = "cgroupfs-runtime"
distro = "debian12"

[[hosts]]
name = "no-sudo"
k8sup_user = "password"
"#;

#[test]
fn check_reports_every_preflight_problem_exactly() {
    let Some(lab) = lab(&spec(LAB)) else { return };

    // Field conditions the lab spec does not cover are made on the hosts themselves.
    std::fs::write(
        lab.hosts()[4].path("/etc/os-release"),
        "NAME=\"Ubuntu\"\nVERSION_ID=\"16.04\"\nID=ubuntu\nID_LIKE=debian\nPRETTY_NAME=\"Ubuntu 16.04.7 LTS\"\n",
    )
    .unwrap();
    // A cloned VM: twin-b came up with twin-a's hostname.
    let twin_b = lab.host("twin-b").unwrap();
    std::fs::write(twin_b.path("/proc/sys/kernel/hostname"), "twin-a\n").unwrap();
    std::fs::write(twin_b.path("/etc/hostname"), "twin-a\n").unwrap();
    let containerd = lab
        .host("cgroupfs-runtime")
        .unwrap()
        .path("/etc/containerd");
    std::fs::create_dir_all(&containerd).unwrap();
    std::fs::write(
        containerd.join("config.toml"),
        "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc.options]\n  SystemdCgroup = false\n",
    )
    .unwrap();

    // The inventory: arm-declared-amd is declared amd64; no-sudo logs in as the
    // unprivileged lab user, whose sudo asks for a password nobody gives.
    let mut text = lab.inventory_toml("");
    text = text.replace(
        "name = \"arm-declared-amd\"\naddress",
        "name = \"arm-declared-amd\"\nssh = { port = 2222 }\naddress",
    );
    text = text.replacen(
        "arch = \"arm64\"\n",
        "arch = \"amd64\"\n",
        1, // the first arm64 host in file order is arm-declared-amd
    );
    text = text.replace(
        "name = \"no-sudo\"\n",
        "name = \"no-sudo\"\nssh = { user = \"k8sup\", become = true }\n",
    );
    let inv = write_inventory(&lab, "check.toml", &text);
    let inv = inv.to_str().unwrap();

    let out = k8sup(&["check", "-i", inv, "--json"], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("JSON");
    let mut found = BTreeSet::new();
    for host in report["hosts"].as_array().unwrap() {
        for f in host["findings"].as_array().unwrap() {
            found.insert((
                host["name"].as_str().unwrap().to_string(),
                f["check"].as_str().unwrap().to_string(),
            ));
        }
    }
    let expected: BTreeSet<(String, String)> = [
        ("small-master", "resources"),
        ("arm-declared-amd", "arch"),
        ("swappy", "swap"),
        ("too-old", "distro"),
        ("clone-a", "duplicate-product-uuid"),
        ("clone-b", "duplicate-product-uuid"),
        ("twin-a", "duplicate-mac"),
        ("twin-b", "duplicate-mac"),
        ("twin-a", "duplicate-hostname"),
        ("twin-b", "duplicate-hostname"),
        ("port-taken", "port-in-use"),
        ("cgroupfs-runtime", "cgroup-driver"),
        ("no-sudo", "sudo"),
    ]
    .into_iter()
    .map(|(h, c)| (h.to_string(), c.to_string()))
    .collect();
    assert_eq!(found, expected, "{report:#}");

    // Messages name the problem in plain words.
    let text_out = k8sup(&["check", "-i", inv], &[]);
    let text = stdout(&text_out);
    for needle in [
        "FAIL  resources: a master needs at least 2 CPUs; this host has 1",
        "a master needs at least 1700 MiB of memory; this host has 1024 MiB",
        "the inventory says arch = \"amd64\" but the host is arm64 (`uname -m` prints aarch64)",
        "swap is on (1024 MiB)",
        "Ubuntu 16.04.7 LTS is not supported",
        "port 10250 (kubelet) is already in use",
        "containerd is configured with the cgroupfs cgroup driver, the inventory says systemd",
        "good-master       ok",
        "no-sudo           FAIL  sudo: sudo on no-sudo asks for a password; set K8SUP_BECOME_PASSWORD",
        "11 of 12 hosts failed the preflight checks",
    ] {
        assert!(text.contains(needle), "expected {needle:?} in:\n{text}");
    }
    assert_eq!(text_out.status.code(), Some(1));
}

#[test]
fn facts_reports_each_host_as_it_is() {
    let Some(lab) = lab(&spec(
        r#"
name = "facts"
[[hosts]]
name = "u-amd"
roles = ["master"]
distro = "ubuntu2204"
arch = "amd64"
cpus = 4
memory_mib = 8192
[[hosts]]
name = "r-arm"
distro = "rocky9"
arch = "arm64"
swap_mib = 512
[[hosts]]
name = "d-arm"
distro = "debian12"
arch = "arm64"
[[hosts]]
name = "c-amd"
distro = "centos7"
cgroup = "v1"
"#,
    )) else {
        return;
    };
    let inv = write_inventory(&lab, "facts.toml", &lab.inventory_toml(""));
    let out = k8sup(&["facts", "-i", inv.to_str().unwrap(), "--json"], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("JSON");
    let hosts = report["hosts"].as_array().unwrap();
    let get = |name: &str| {
        hosts
            .iter()
            .find(|h| h["name"] == name)
            .unwrap_or_else(|| panic!("{name} missing"))["facts"]
            .clone()
    };
    let u = get("u-amd");
    assert_eq!(u["arch"], "amd64");
    assert_eq!(u["os"]["id"], "ubuntu");
    assert_eq!(u["family"], "debian");
    assert_eq!(u["cpus"], 4);
    assert_eq!(u["memory_mib"], 8192);
    assert_eq!(u["init"], "systemd");
    assert_eq!(u["package_manager"], "apt-get");
    assert_eq!(
        u["product_uuid"],
        lab.host("u-amd").unwrap().product_uuid.to_lowercase()
    );
    assert_eq!(
        u["macs"][0][1],
        lab.host("u-amd").unwrap().mac.to_lowercase()
    );
    assert_eq!(u["uid"], 0);
    let r = get("r-arm");
    assert_eq!(r["arch"], "arm64");
    assert_eq!(r["machine"], "aarch64");
    assert_eq!(r["family"], "redhat");
    assert_eq!(r["swap_mib"], 512);
    assert_eq!(get("d-arm")["os"]["id"], "debian");
    let c = get("c-amd");
    assert_eq!(c["os"]["version_id"], "7");
    assert_eq!(c["cgroup_version"], 1);

    // The table for people names every host once.
    let table = k8sup(&["facts", "-i", inv.to_str().unwrap()], &[]);
    let text = stdout(&table);
    for name in ["u-amd", "r-arm", "d-arm", "c-amd"] {
        assert_eq!(
            text.lines().filter(|l| l.starts_with(name)).count(),
            1,
            "{text}"
        );
    }
    // Gathering facts changed nothing: the emulated tools log only reads.
    for host in lab.hosts() {
        for record in host.commands().unwrap() {
            let line = format!("{record:?}");
            assert!(
                !line.contains("swapoff") && !line.contains("set-hostname"),
                "facts changed {}: {line}",
                host.name
            );
        }
    }
}
