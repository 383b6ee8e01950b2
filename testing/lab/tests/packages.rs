//! The emulated package managers over real ssh: an Ubuntu and a Rocky host add the
//! Kubernetes v1.30 repository the way the upstream install guide does, install and pin
//! kubelet, and are refused an unknown package and a wrong version.
//! Needs root and openssh-server; without them the test says so and passes.

mod common;

use common::{fails, lab_available, ok};

use k8sup_lab::{Distro, HostSpec, Lab, LabSpec};

const UBUNTU_REPO: &str = "set -e
mkdir -p -m 755 /etc/apt/keyrings
echo 'lab key' > /etc/apt/keyrings/kubernetes-apt-keyring.gpg
echo 'deb [signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.gpg] https://pkgs.k8s.io/core:/stable:/v1.30/deb/ /' > /etc/apt/sources.list.d/kubernetes.list
apt-get update -q";

const ROCKY_REPO: &str = "cat > /etc/yum.repos.d/kubernetes.repo <<'EOF'
[kubernetes]
name=Kubernetes
baseurl=https://pkgs.k8s.io/core:/stable:/v1.30/rpm/
enabled=1
gpgcheck=1
gpgkey=https://pkgs.k8s.io/core:/stable:/v1.30/rpm/repodata/repomd.xml.key
exclude=kubelet kubeadm kubectl cri-tools kubernetes-cni
EOF";

#[test]
fn kubernetes_packages_on_ubuntu_and_rocky() {
    if !lab_available() {
        return;
    }
    let spec = LabSpec::new("pkgs")
        .host(HostSpec::new("ubuntu"))
        .host(HostSpec::new("rocky").distro(Distro::Rocky9));
    let lab = Lab::up(&spec).expect("lab comes up");

    // Ubuntu: the real apt is gone, kubeadm is not there before its package.
    ok(
        &lab,
        "ubuntu",
        "cmp \"$(command -v apt-get)\" /usr/libexec/k8sup-lab/k8sup-lab-emu",
    );
    fails(&lab, "ubuntu", "command -v kubeadm", 1);
    let out = fails(&lab, "ubuntu", "apt-get install -y kubelet", 100);
    assert!(out.contains("E: Unable to locate package kubelet"), "{out}");
    ok(&lab, "ubuntu", UBUNTU_REPO);
    ok(
        &lab,
        "ubuntu",
        "apt-get install -y kubelet=1.30.4-1.1 kubeadm=1.30.4-1.1 kubectl=1.30.4-1.1",
    );
    assert_eq!(
        ok(&lab, "ubuntu", "apt-mark hold kubelet kubeadm kubectl"),
        "kubelet set on hold.\nkubeadm set on hold.\nkubectl set on hold.\n"
    );
    assert_eq!(
        ok(
            &lab,
            "ubuntu",
            "dpkg-query -W -f='${Version} ${db:Status-Abbrev}' kubelet"
        ),
        "1.30.4-1.1 hi "
    );
    assert_eq!(
        ok(&lab, "ubuntu", "command -v kubeadm"),
        "/usr/bin/kubeadm\n"
    );
    // The installed package's own version answers.
    assert_eq!(ok(&lab, "ubuntu", "kubeadm version -o short"), "v1.30.4\n");
    let out = fails(
        &lab,
        "ubuntu",
        "apt-get install -y kubelet=1.30.99-1.1",
        100,
    );
    assert!(
        out.contains("E: Version '1.30.99-1.1' for 'kubelet' was not found"),
        "{out}"
    );
    let out = fails(&lab, "ubuntu", "apt-get install -y no-such-package", 100);
    assert!(out.contains("E: Unable to locate package no-such-package"));
    let out = fails(&lab, "ubuntu", "apt-get install -y kubelet=1.30.5-1.1", 100);
    assert!(out.contains("--allow-change-held-packages"), "{out}");
    assert!(ok(&lab, "ubuntu", "systemctl is-enabled kubelet").starts_with("enabled"));

    // Rocky: dnf with the repository's excludes, versionlock behind its plugin.
    fails(&lab, "rocky", "command -v kubeadm", 1);
    fails(&lab, "rocky", "command -v apt-get", 1);
    ok(&lab, "rocky", ROCKY_REPO);
    let out = fails(&lab, "rocky", "dnf install -y kubelet-1.30.4", 1);
    assert!(out.contains("Error: Unable to find a match: kubelet-1.30.4"));
    ok(
        &lab,
        "rocky",
        "dnf install -y kubelet-1.30.4 kubeadm-1.30.4 kubectl-1.30.4 --disableexcludes=kubernetes",
    );
    assert_eq!(
        ok(&lab, "rocky", "rpm -q --qf '%{VERSION}-%{RELEASE}' kubelet"),
        "1.30.4-150500.1.1"
    );
    fails(&lab, "rocky", "dnf versionlock add kubelet", 1);
    ok(
        &lab,
        "rocky",
        "dnf install -y python3-dnf-plugin-versionlock",
    );
    assert_eq!(
        ok(&lab, "rocky", "dnf versionlock add kubelet"),
        "Adding versionlock on: kubelet-0:1.30.4-150500.1.1.*\n"
    );
    let out = fails(
        &lab,
        "rocky",
        "dnf install -y kubelet-1.30.5 --disableexcludes=kubernetes",
        1,
    );
    assert!(out.contains("filtered out by exclude filtering"), "{out}");
    let out = fails(&lab, "rocky", "dnf install -y no-such-package", 1);
    assert!(out.contains("No match for argument: no-such-package"));
    let out = fails(
        &lab,
        "rocky",
        "dnf install -y kubeadm-1.31.0 --disableexcludes=kubernetes",
        1,
    );
    assert!(
        out.contains("No match for argument: kubeadm-1.31.0"),
        "{out}"
    );
    assert_eq!(
        ok(&lab, "rocky", "command -v kubeadm"),
        "/usr/bin/kubeadm\n"
    );
    assert!(lab
        .host("rocky")
        .expect("rocky")
        .path("/usr/lib/systemd/system/kubelet.service.d/10-kubeadm.conf")
        .exists());

    // Every call went through the emulator and was logged.
    let logged = lab
        .host("rocky")
        .expect("rocky")
        .commands()
        .expect("commands log");
    assert!(logged
        .iter()
        .any(|c| c.argv.first().map(String::as_str) == Some("dnf")));
}
