//! Realistic durations over real ssh: a lab brought up with a durations profile (the
//! built-in one, scaled down) makes apt, systemctl, crictl and kubeadm take their time,
//! and records in the lab's applied log exactly the figures the profile gives; the same
//! commands in a lab without durations record nothing.
//! Needs root and openssh-server; without them the test says so and passes.

use k8sup_lab::durations::{self, Durations};
use k8sup_lab::{HostSpec, Lab, LabSpec};

fn lab_available() -> bool {
    match k8sup_lab::client::unavailable() {
        Some(why) => {
            eprintln!("SKIPPED: {why}");
            false
        }
        None => true,
    }
}

fn ok(lab: &Lab, host: &str, command: &str) -> String {
    let o = lab.ssh(host, command).expect("run ssh");
    assert!(
        o.status.success(),
        "{host}: `{command}` failed ({}): {}{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

const PREPARE: &str = "set -e
mkdir -p -m 755 /etc/apt/keyrings
echo 'lab key' > /etc/apt/keyrings/kubernetes-apt-keyring.gpg
echo 'deb [signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.gpg] https://pkgs.k8s.io/core:/stable:/v1.30/deb/ /' > /etc/apt/sources.list.d/kubernetes.list
apt-get update -q
apt-get install -y kubeadm=1.30.4-1.1 containerd
mkdir -p /etc/containerd
containerd config default > /etc/containerd/config.toml
systemctl restart containerd";

/// The built-in profile at 1/100 of real time, with `changes` made to its lines, as a
/// file the spec names.
fn scaled_profile(dir: &std::path::Path, changes: &[(&str, &str)]) -> std::path::PathBuf {
    let mut text = durations::REALISTIC
        .1
        .replace("time_scale = 1.0", "time_scale = 0.01");
    for (line, to) in changes {
        assert!(
            text.contains(&format!("{line}\n")),
            "no line {line:?} in the profile"
        );
        text = text.replace(&format!("{line}\n"), &format!("{to}\n"));
    }
    let path = dir.join("durations.toml");
    std::fs::write(&path, text).expect("write profile");
    path
}

#[test]
fn emulated_operations_take_and_record_the_profiles_durations() {
    if !lab_available() {
        return;
    }
    let tmp = std::env::temp_dir().join(format!("k8sup-lab-durations-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).expect("tmp");
    let profile = scaled_profile(&tmp, &[]);
    let lab = Lab::up(
        &LabSpec::new("durations")
            .durations(profile.to_string_lossy())
            .host(HostSpec::new("host")),
    )
    .expect("lab up");
    let d = Durations::resolve(&profile.to_string_lossy()).expect("profile");
    ok(&lab, "host", PREPARE);
    let pulled = ok(
        &lab,
        "host",
        "kubeadm config images pull --kubernetes-version v1.30.4",
    );
    assert!(
        pulled.contains("[config/images] Pulled registry.k8s.io/kube-apiserver:v1.30.4\n"),
        "{pulled}"
    );
    let listed = ok(&lab, "host", "crictl images");
    assert!(listed.contains("registry.k8s.io/etcd"), "{listed}");

    let log = durations::applied(&lab.cluster_dir()).expect("applied log");
    let find = |op: &str, what: &str| {
        log.iter()
            .find(|a| a.op == op && a.what == what && a.host == "host")
            .unwrap_or_else(|| panic!("no {op} of {what} in {log:#?}"))
            .ms
    };
    assert_eq!(
        find("index-update", "package indexes"),
        d.packages.index_update_ms
    );
    assert_eq!(find("package", "kubeadm"), d.package_ms("kubeadm"));
    assert_eq!(find("package", "containerd"), d.package_ms("containerd"));
    assert_eq!(find("package", "cri-tools"), d.package_ms("cri-tools"));
    assert_eq!(
        find("service-restart", "containerd.service"),
        d.steps.service_restart_ms["containerd"]
    );
    // One pull with the mirror to itself: the link's time and the unpack, never less
    // (within the scale's rounding: a real millisecond is 100 profile ones at 1/100).
    let etcd = "registry.k8s.io/etcd:3.5.12-0";
    let alone = durations::transfer_ms(d.image_bytes(etcd) as f64, d.network.mirror_mbps)
        + d.unpack_ms(d.image_bytes(etcd));
    assert!(find("image-pull", etcd) + 200 >= alone, "{log:#?}");
    // A second pull of what the host holds takes nothing and records nothing.
    let before = log.len();
    ok(&lab, "host", "crictl pull registry.k8s.io/etcd:3.5.12-0");
    assert_eq!(
        durations::applied(&lab.cluster_dir()).expect("log").len(),
        before
    );
    drop(lab);

    // Without durations: the same work, nothing applied.
    let lab = Lab::up(&LabSpec::new("instant").host(HostSpec::new("host"))).expect("lab up");
    ok(&lab, "host", PREPARE);
    assert!(durations::applied(&lab.cluster_dir())
        .expect("log")
        .is_empty());
    let _ = std::fs::remove_dir_all(&tmp);
}

/// Waits (up to 10 s) until the host's image store names the image that follows: a pull
/// of it has started.
const ANNOUNCED: &str = "w() { i=0; until grep -qsF \"\\\"$1\\\"\" /var/lib/k8sup-lab-cluster/images/host.json; do i=$((i + 1)); [ $i -lt 200 ] || exit 9; sleep 0.05; done; }; w";

/// Two pulls of one image on a host at once fetch it once: the second waits for the
/// first (containerd keeps one ingest per blob); a pull whose client is killed is
/// cancelled, and the next pull fetches the image anew.
#[test]
fn a_pull_of_an_image_in_flight_waits_for_it_and_a_killed_one_is_cancelled() {
    if !lab_available() {
        return;
    }
    let tmp = std::env::temp_dir().join(format!("k8sup-lab-inflight-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).expect("tmp");
    // 1/100 of real time with a 1 Mbit/s mirror: kube-proxy's ~30 MiB take ~250 s of
    // profile time, 2.5 s here.
    let profile = scaled_profile(&tmp, &[("mirror_mbps = 1000", "mirror_mbps = 1")]);
    let lab = Lab::up(
        &LabSpec::new("inflight")
            .durations(profile.to_string_lossy())
            .host(HostSpec::new("host")),
    )
    .expect("lab up");
    ok(&lab, "host", PREPARE);
    let proxy = "registry.k8s.io/kube-proxy:v1.30.4";
    ok(
        &lab,
        "host",
        &format!("crictl pull {proxy} >/dev/null & {ANNOUNCED} {proxy}; crictl pull {proxy}; wait"),
    );
    let pulls = |image: &str| {
        durations::applied(&lab.cluster_dir())
            .expect("log")
            .iter()
            .filter(|a| a.op == "image-pull" && a.what == image)
            .count()
    };
    assert_eq!(pulls(proxy), 1, "fetched twice");

    let flannel = "docker.io/flannel/flannel:v0.25.6";
    ok(
        &lab,
        "host",
        &format!("crictl pull {flannel} & p=$!; {ANNOUNCED} {flannel}; kill -9 $p; wait $p; crictl pull {flannel}"),
    );
    assert_eq!(pulls(flannel), 2, "a cancelled pull was waited for");
    let listed = ok(&lab, "host", "crictl images");
    assert!(listed.contains("docker.io/flannel/flannel"), "{listed}");
    let _ = std::fs::remove_dir_all(&tmp);
}
