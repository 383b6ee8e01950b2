//! Black-box tests of the lab: real sshds reached with the system `ssh` client.
//! They need root and openssh-server; without them each test says so and passes.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use k8sup_lab::{Arch, Distro, Host, HostSpec, Lab, LabSpec, SudoMode, K8SUP_PASSWORD};

fn lab_available() -> bool {
    match k8sup_lab::client::unavailable() {
        Some(why) => {
            k8sup_lab::client::skip(why);
            false
        }
        None => true,
    }
}

fn ssh_to(lab: &Lab, host: &Host, port: u16, user: &str, command: &str) -> Output {
    lab.ssh_via(
        std::net::SocketAddr::from((host.address, port)),
        user,
        command,
    )
    .expect("run ssh")
}

fn ssh(lab: &Lab, host: &str, user: &str, command: &str) -> Output {
    let h = lab.host(host).expect("host exists");
    ssh_to(lab, h, h.port, user, command)
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn ok(o: Output) -> String {
    assert!(
        o.status.success(),
        "ssh failed ({}): {}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    stdout(&o)
}

#[test]
fn mixed_lab_has_per_host_arch_distro_and_isolation() {
    if !lab_available() {
        return;
    }
    let spec = LabSpec::new("mixed")
        .host(HostSpec::new("master").master().memory_mib(8192).cpus(4))
        .host(
            HostSpec::new("rocky")
                .distro(Distro::Rocky9)
                .arch(Arch::Arm64)
                .swap_mib(1024),
        )
        .host(
            HostSpec::new("deb")
                .distro(Distro::Debian12)
                .k8sup_user(SudoMode::Password)
                .product_uuid("11111111-2222-4333-8444-555555555555"),
        )
        .host(HostSpec::new("nouser").k8sup_user(SudoMode::Absent));
    let started = Instant::now();
    let lab = Lab::up(&spec).expect("lab comes up");
    eprintln!("4 hosts up in {:?}", started.elapsed());

    let out = ok(ssh(
        &lab,
        "master",
        "root",
        "uname -m; nproc; . /etc/os-release; echo $ID $VERSION_ID; hostname",
    ));
    assert_eq!(out, "x86_64\n4\nubuntu 22.04\nmaster\n");
    let out = ok(ssh(&lab, "rocky", "root", "uname -m; . /etc/os-release; echo $ID; getenforce; swapon --show=NAME --noheadings; command -v apt-get || echo no-apt"));
    assert_eq!(out, "aarch64\nrocky\nEnforcing\n/swap.img\nno-apt\n");
    let out = ok(ssh(&lab, "deb", "root", "cat /sys/class/dmi/id/product_uuid; grep MemTotal /proc/meminfo; command -v getenforce || echo no-selinux"));
    assert_eq!(
        out,
        "11111111-2222-4333-8444-555555555555\nMemTotal:        4194304 kB\nno-selinux\n"
    );

    // What one host writes, another does not see.
    ok(ssh(
        &lab,
        "master",
        "root",
        "echo secret > /etc/only-on-master && sha256sum /etc/only-on-master",
    ));
    assert!(lab
        .host("master")
        .unwrap()
        .path("/etc/only-on-master")
        .exists());
    let out = ok(ssh(
        &lab,
        "rocky",
        "root",
        "test -e /etc/only-on-master && echo leaked || echo isolated",
    ));
    assert_eq!(out, "isolated\n");
    assert!(!Path::new("/etc/only-on-master").exists());

    // sudo for the lab user: without a password, with one, or no user at all.
    assert_eq!(
        ok(ssh(&lab, "master", "k8sup", "id -un; sudo -n id -un")),
        "k8sup\nroot\n"
    );
    let o = ssh(&lab, "deb", "k8sup", "sudo -n true");
    assert!(
        !o.status.success(),
        "sudo without password must fail on deb"
    );
    let cmd = format!("echo {K8SUP_PASSWORD} | sudo -S -p '' id -un");
    assert_eq!(ok(ssh(&lab, "deb", "k8sup", &cmd)), "root\n");
    assert!(!ssh(&lab, "nouser", "k8sup", "true").status.success());

    // Emulated commands are logged per host.
    let cmds = lab
        .host("master")
        .unwrap()
        .commands()
        .expect("commands.log");
    assert!(cmds.iter().any(|c| c.argv == ["uname", "-m"]), "{cmds:?}");
    assert!(cmds.iter().any(|c| c.argv[0] == "nproc"));
    assert!(lab
        .host("deb")
        .unwrap()
        .commands()
        .unwrap()
        .iter()
        .all(|c| c.argv[0] != "nproc"));

    let inventory =
        lab.inventory_toml("[cluster]\nname = \"lab\"\nkubernetes_version = \"1.30.4\"\n");
    let parsed: toml::Value = toml::from_str(&inventory).expect("inventory is TOML");
    assert_eq!(parsed["hosts"].as_array().map(|h| h.len()), Some(4));
    assert_eq!(parsed["hosts"][0]["roles"][0].as_str(), Some("master"));
    assert_eq!(parsed["hosts"][1]["arch"].as_str(), Some("arm64"));
    assert_eq!(parsed["ssh"]["port"].as_integer(), Some(2222));
}

#[test]
fn faults_on_demand() {
    if !lab_available() {
        return;
    }
    let spec = LabSpec::new("faults")
        .host(HostSpec::new("a").master())
        .host(HostSpec::new("b"));
    let lab = Lab::up(&spec).expect("lab comes up");
    let faults = lab.faults("a").expect("host a");

    // A hung command is killed by the caller's timeout (124), a failing one keeps its status.
    faults.hang_command("systemctl").unwrap();
    faults.fail_command("sysctl", 7).unwrap();
    let out = ok(ssh(&lab, "a", "root", "timeout 1 systemctl is-active kubelet; echo hang=$?; sysctl -n vm.swappiness; echo fail=$?"));
    assert_eq!(out, "hang=124\nfail=7\n");
    // Other hosts are unaffected.
    assert_eq!(
        ok(ssh(&lab, "b", "root", "sysctl -n vm.swappiness")),
        "60\n"
    );
    faults.clear().unwrap();
    assert_eq!(
        ok(ssh(&lab, "a", "root", "sysctl -n vm.swappiness")),
        "60\n"
    );

    // A hung subcommand: only `systemctl is-active` hangs, `systemctl is-enabled` answers.
    faults.hang_subcommand("systemctl", "is-active").unwrap();
    let out = ok(ssh(&lab, "a", "root", "timeout 1 systemctl is-active kubelet; echo hang=$?; timeout 5 systemctl is-enabled kubelet >/dev/null 2>&1; echo other=$?"));
    assert!(out.starts_with("hang=124\n"), "{out}");
    assert!(!out.contains("other=124"), "{out}");
    faults.clear().unwrap();

    // A slow host.
    faults.slow(Duration::from_millis(300)).unwrap();
    let t = Instant::now();
    ok(ssh(&lab, "a", "root", "uname -m; uname -r"));
    assert!(
        t.elapsed() >= Duration::from_millis(600),
        "{:?}",
        t.elapsed()
    );
    faults.clear().unwrap();

    // Host down, then back.
    faults.kill_sshd().unwrap();
    assert!(!ssh(&lab, "a", "root", "true").status.success());
    faults.start_sshd().unwrap();
    assert_eq!(ok(ssh(&lab, "a", "root", "echo back")), "back\n");

    // A dropped connection: a long session is cut, new ones work.
    let host = lab.host("a").unwrap().clone();
    let key = lab.private_key();
    let known = lab.known_hosts();
    let long = std::thread::spawn(move || {
        Command::new("ssh")
            .arg("-i")
            .arg(key)
            .arg("-o")
            .arg(format!("UserKnownHostsFile={}", known.display()))
            .args(["-o", "BatchMode=yes", "-p", "2222"])
            .arg(format!("root@{}", host.address))
            .arg("sleep 30; echo finished")
            .output()
            .expect("ssh")
    });
    std::thread::sleep(Duration::from_millis(1500));
    faults.drop_connections().unwrap();
    let cut = long.join().expect("thread");
    assert!(!cut.status.success());
    assert!(!stdout(&cut).contains("finished"));
    assert_eq!(ok(ssh(&lab, "a", "root", "echo again")), "again\n");
}

#[test]
fn latency_proxy_adds_round_trip_time() {
    if !lab_available() {
        return;
    }
    let mut lab = Lab::up(&LabSpec::new("latency").host(HostSpec::new("a").master())).expect("lab");
    let host = lab.host("a").unwrap().clone();
    let time = |lab: &Lab, port: u16| {
        let t = Instant::now();
        ok(ssh_to(lab, &host, port, "root", "true"));
        t.elapsed()
    };
    let direct = time(&lab, k8sup_lab::SSH_PORT);
    lab.with_latency(Duration::from_millis(100)).expect("proxy");
    assert_eq!(lab.client_port(), k8sup_lab::PROXY_PORT);
    let delayed = time(&lab, k8sup_lab::PROXY_PORT);
    eprintln!("ssh round: direct {direct:?}, with +100ms RTT {delayed:?}");
    // An SSH login takes several round trips.
    assert!(
        delayed >= direct + Duration::from_millis(300),
        "direct {direct:?} delayed {delayed:?}"
    );
    assert!(lab.inventory_toml("").contains("port = 2223"));
}

#[test]
fn teardown_leaves_no_mount_process_or_directory() {
    if !lab_available() {
        return;
    }
    let lab = Lab::up(
        &LabSpec::new("teardown")
            .with_bastion()
            .host(HostSpec::new("a").master()),
    )
    .expect("lab");
    let dir = lab.dir().to_path_buf();
    let pid_files: Vec<_> = lab
        .hosts()
        .iter()
        .chain(lab.bastion())
        .map(|h| h.dir.join("sshd.pid"))
        .collect();
    let pids: Vec<i32> = pid_files
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap().trim().parse().unwrap())
        .collect();
    // A jump through the bastion works.
    let a = lab.host("a").unwrap();
    let b = lab.bastion().expect("bastion");
    let o = Command::new("ssh")
        .arg("-i")
        .arg(lab.private_key())
        .arg("-o")
        .arg(format!(
            "UserKnownHostsFile={}",
            lab.known_hosts().display()
        ))
        .args([
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "BatchMode=yes",
            "-o",
        ])
        .arg(format!(
            "ProxyCommand=ssh -i {} -o UserKnownHostsFile={} -o StrictHostKeyChecking=yes -o BatchMode=yes -p 2222 -W %h:%p root@{}",
            lab.private_key().display(),
            lab.known_hosts().display(),
            b.address
        ))
        .args(["-p", "2222"])
        .arg(format!("root@{}", a.address))
        .arg("hostname")
        .output()
        .expect("ssh");
    assert_eq!(ok(o), "a\n");
    // Something still running inside a host must not stop the teardown.
    let _bg = ssh(&lab, "a", "root", "nohup sleep 300 >/dev/null 2>&1 &");
    // A panicking test still tears its lab down.
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
        let _lab = lab;
        panic!("test failure inside a lab");
    }));
    assert!(r.is_err());
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap();
    assert!(
        !mounts.contains(dir.to_str().unwrap()),
        "mounts left: {mounts}"
    );
    assert!(!dir.exists(), "{} left behind", dir.display());
    for pid in pids {
        assert!(
            !k8sup_lab::sys::process_alive(pid),
            "sshd {pid} still running"
        );
    }
    assert!(k8sup_lab::teardown::lab_processes(&dir).is_empty());
}

#[test]
fn thirty_hosts() {
    if !lab_available() {
        return;
    }
    let spec = LabSpec::new("thirty")
        .host(HostSpec::new("master").master())
        .host(HostSpec::new("node").count(14))
        .host(
            HostSpec::new("arm")
                .count(15)
                .arch(Arch::Arm64)
                .distro(Distro::Rocky8),
        );
    let t = Instant::now();
    let lab = Lab::up(&spec).expect("30 hosts come up");
    eprintln!("30 hosts up in {:?}", t.elapsed());
    assert_eq!(lab.hosts().len(), 30);
    let t = Instant::now();
    let handles: Vec<_> = lab
        .hosts()
        .iter()
        .map(|h| {
            let (key, known, addr, name) = (
                lab.private_key(),
                lab.known_hosts(),
                h.address,
                h.name.clone(),
            );
            std::thread::spawn(move || {
                let o = Command::new("ssh")
                    .arg("-i")
                    .arg(key)
                    .arg("-o")
                    .arg(format!("UserKnownHostsFile={}", known.display()))
                    .args([
                        "-o",
                        "StrictHostKeyChecking=yes",
                        "-o",
                        "BatchMode=yes",
                        "-p",
                        "2222",
                    ])
                    .arg(format!("root@{addr}"))
                    .arg("hostname; uname -m")
                    .output()
                    .expect("ssh");
                (name, ok(o))
            })
        })
        .collect();
    for h in handles {
        let (name, out) = h.join().expect("thread");
        let arch = if name.starts_with("arm") {
            "aarch64"
        } else {
            "x86_64"
        };
        assert_eq!(out, format!("{name}\n{arch}\n"));
    }
    eprintln!("30 parallel ssh commands in {:?}", t.elapsed());
    let uuids: std::collections::HashSet<_> =
        lab.hosts().iter().map(|h| h.product_uuid.clone()).collect();
    assert_eq!(uuids.len(), 30);
}
