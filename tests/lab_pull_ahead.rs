//! A node's images are pulled ahead in the background while the first master inits, and
//! its join does not wait for them: on a lab with durations (scaled down) and a slow
//! registry mirror, the node's join starts while its pulls are still running, no image is
//! fetched twice (the kubelet's own pulls wait for the ones in flight, as containerd's
//! do), and the node turns Ready. When a pull fails, the apply names it and exits 1.

mod common;

use common::{k8sup, lab, on, spec, stderr, stdout, write_inventory};
use k8sup_lab::durations::{self, Applied};

/// The built-in profile at 1/20 of real time, with a mirror slow enough (8 Mbit/s) that
/// a node's ~65 MB of images take longer than `kubeadm init`.
fn slow_mirror_profile(dir: &std::path::Path) -> std::path::PathBuf {
    let text = durations::REALISTIC
        .1
        .replace("time_scale = 1.0", "time_scale = 0.05")
        .replace("mirror_mbps = 1000", "mirror_mbps = 8");
    assert!(
        text.contains("mirror_mbps = 8"),
        "the profile changed shape"
    );
    let path = dir.join("slow-mirror.toml");
    std::fs::write(&path, text).expect("write profile");
    path
}

/// A lab named `name` of a master m1 and a node w1 behind the slow mirror of
/// [`slow_mirror_profile`] (written in `tmp`).
fn slow_mirror_lab(name: &str, tmp: &std::path::Path) -> Option<k8sup_lab::Lab> {
    std::fs::create_dir_all(tmp).expect("tmp");
    let profile = slow_mirror_profile(tmp);
    lab(&spec(&format!(
        "name = \"{name}\"\ndurations = {:?}\n[[hosts]]\nname = \"m1\"\nroles = [\"master\"]\n[[hosts]]\nname = \"w1\"\n",
        profile.to_string_lossy()
    )))
}

/// The image an applied-log entry pulled for `node`: its own pulls, or its kubelet's
/// (recorded by whichever host asked for the node's Ready).
fn pulled_for<'a>(entry: &'a Applied, node: &str) -> Option<&'a str> {
    if entry.op != "image-pull" {
        return None;
    }
    match entry.what.strip_suffix(&format!(" (kubelet of {node})")) {
        Some(image) => Some(image),
        None if entry.host == node && !entry.what.contains(" (kubelet of ") => {
            Some(entry.what.as_str())
        }
        None => None,
    }
}

#[test]
fn a_node_joins_while_its_images_arrive_and_each_is_fetched_once() {
    let tmp = std::env::temp_dir().join(format!("k8sup-pull-ahead-{}", std::process::id()));
    let Some(lab) = slow_mirror_lab("pullahead", &tmp) else {
        return;
    };
    let inv = write_inventory(&lab, "pull-ahead.toml", &lab.inventory_toml(""));
    apply_succeeds(inv.to_str().unwrap());
    let scale = 0.05;
    let log = durations::applied(&lab.cluster_dir()).expect("applied log");
    let join = log
        .iter()
        .find(|a| a.host == "w1" && a.op == "kubeadm-join")
        .unwrap_or_else(|| panic!("w1 never joined: {log:#?}"));
    let pulls: Vec<(&str, u64)> = log
        .iter()
        .filter_map(|a| {
            pulled_for(a, "w1").map(|image| (image, a.at_ms + (a.ms as f64 * scale) as u64))
        })
        .collect();
    let last_pull_done = pulls.iter().map(|(_, done)| *done).max().unwrap_or(0);
    assert!(
        join.at_ms < last_pull_done,
        "the join waited for the pulls: join at {}, last pull done at {last_pull_done}: {pulls:?}",
        join.at_ms
    );
    let mut images: Vec<&str> = pulls.iter().map(|(image, _)| *image).collect();
    images.sort();
    let count = images.len();
    images.dedup();
    assert_eq!(count, images.len(), "an image fetched twice: {pulls:?}");
    assert!(
        images.iter().any(|i| i.contains("/kube-proxy:"))
            && images.iter().any(|i| i.contains("flannel")),
        "{images:?}"
    );
    // Ready, with nothing of the pulls left behind.
    let nodes = on(
        &lab,
        "m1",
        "kubectl --kubeconfig /etc/kubernetes/admin.conf get nodes --no-headers",
    );
    assert!(
        nodes
            .lines()
            .any(|l| l.starts_with("w1 ") && l.contains(" Ready ")),
        "{nodes}"
    );
    assert_nothing_left(&lab, "w1");
    let _ = std::fs::remove_dir_all(&tmp);
}

/// A pull loop that a killed run left running on a node must not decide the next run's
/// wait: here one (started by hand, as the playbook starts its loop) writes a failed
/// status, in the old form and under its own pid, the moment the new run's loop has
/// started. The next apply waits for its own loop and succeeds.
#[test]
fn a_pull_loop_left_by_an_earlier_run_does_not_decide_the_next_run_s_wait() {
    let tmp = std::env::temp_dir().join(format!("k8sup-pull-stale-{}", std::process::id()));
    let Some(lab) = slow_mirror_lab("pullstale", &tmp) else {
        return;
    };
    on(
        &lab,
        "w1",
        r#"mkdir -p /var/lib/k8sup/pull-ahead
setsid sh -c 'd=/var/lib/k8sup/pull-ahead; echo $$ > "$d/pid"; n=0
until [ -s "$d/pid" ] && [ "$(cat "$d/pid")" != "$$" ]; do n=$((n + 1)); [ "$n" -lt 1500 ] || exit 0; sleep 0.2; done
echo 1 > "$d/status"; echo 1 > "$d/status.$$"; echo "k8sup: crictl pull stale failed" > "$d/log.$$"
echo wrote > /tmp/stale-loop-wrote' k8sup-pull-ahead </dev/null >/dev/null 2>&1 &"#,
    );
    let inv = write_inventory(&lab, "pull-stale.toml", &lab.inventory_toml(""));
    apply_succeeds(inv.to_str().unwrap());
    assert_eq!(
        on(
            &lab,
            "w1",
            "cat /tmp/stale-loop-wrote 2>/dev/null || echo never"
        )
        .trim(),
        "wrote",
        "the stale loop wrote its status while this run's loop ran"
    );
    assert_nothing_left(&lab, "w1");
    let _ = std::fs::remove_dir_all(&tmp);
}

#[test]
fn a_failed_pull_ahead_is_named_after_the_join() {
    let Some(lab) = lab(&spec(
        "name = \"pullfail\"\n[[hosts]]\nname = \"m1\"\nroles = [\"master\"]\n[[hosts]]\nname = \"w1\"\n",
    )) else {
        return;
    };
    lab.faults("w1").unwrap().fail_command("crictl", 1).unwrap();
    let inv = write_inventory(&lab, "pull-fail.toml", &lab.inventory_toml(""));
    let out = k8sup(&["apply", "-i", inv.to_str().unwrap()], &[]);
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert_eq!(out.status.code(), Some(1), "{text}");
    let failure = text
        .lines()
        .find(|l| l.contains("w1") && l.contains("images pulled") && l.contains("fail"))
        .unwrap_or_else(|| panic!("no failure of w1's 'images pulled': {text}"));
    assert!(
        text.contains("k8sup: crictl pull ") && text.contains(" failed"),
        "the failing pull is not named ({failure}): {text}"
    );
    // The join did not wait for the pulls: the node joined before they were judged.
    assert_eq!(
        on(
            &lab,
            "w1",
            "test -s /etc/kubernetes/kubelet.conf && echo joined"
        )
        .trim(),
        "joined"
    );
    // Once the registry answers, the kubelet pulls what is missing and the next apply
    // finishes.
    lab.faults("w1").unwrap().clear().unwrap();
    apply_succeeds(inv.to_str().unwrap());
}

/// Nothing of the pulls ahead is left on `host`.
fn assert_nothing_left(lab: &k8sup_lab::Lab, host: &str) {
    assert_eq!(
        on(lab, host, "ls -A /var/lib/k8sup/ | grep -c pull-ahead || :").trim(),
        "0"
    );
}

fn apply_succeeds(inv: &str) {
    let out = k8sup(&["apply", "-i", inv], &[]);
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert_eq!(out.status.code(), Some(0), "{text}");
}
