use super::*;

fn v(text: &str) -> Version {
    Version::parse(text).expect("version")
}

fn policy(cluster: &str, kubeadm: &str, new: &str, kubelets: &[&str]) -> SkewErrors {
    let kubelets: Vec<String> = kubelets.iter().map(|k| k.to_string()).collect();
    enforce_version_policies(
        &v(cluster),
        &v(kubeadm),
        new,
        &v(new),
        &kubelets,
        false,
        false,
    )
}

#[test]
fn one_minor_at_a_time_and_kubeadm_at_least_the_target() {
    // The ordinary step: nothing to say.
    assert_eq!(
        policy("1.29.10", "1.30.14", "v1.30.14", &["v1.29.10"]),
        SkewErrors::default()
    );
    // Two minors at once: fatal, --force does not help.
    let e = policy("1.29.10", "1.31.2", "v1.31.2", &["v1.29.10"]);
    assert_eq!(
        e.mandatory,
        ["Specified version to upgrade to \"v1.31.2\" is too high; kubeadm can upgrade only 1 minor version at a time"]
    );
    // A kubeadm of the previous minor cannot go to the next one.
    let e = policy("1.29.10", "1.29.10", "v1.30.14", &[]);
    assert_eq!(e.mandatory, ["Specified version to upgrade to \"v1.30.14\" is at least one minor release higher than the kubeadm minor release (30 > 29). Such an upgrade is not supported"]);
    // A newer patch than kubeadm: skippable with --force.
    let e = policy("1.30.2", "1.30.4", "v1.30.14", &[]);
    assert!(e.mandatory.is_empty());
    assert_eq!(e.skippable, ["Specified version to upgrade to \"v1.30.14\" is higher than the kubeadm version \"v1.30.4\". Upgrade kubeadm first using the tool you used to install kubeadm"]);
    // A kubeadm newer than the target's minor: skippable.
    let e = policy("1.30.2", "1.31.2", "v1.30.14", &[]);
    assert_eq!(
        e.skippable,
        ["Kubeadm version v1.31.2 can only be used to upgrade to Kubernetes version 1.31"]
    );
    // Down two minors: fatal; down one is kubeadm's business (allowed).
    let e = policy("1.31.2", "1.29.10", "v1.29.10", &[]);
    assert_eq!(e.mandatory, ["Specified version to downgrade to \"v1.29.10\" is too low; kubeadm can downgrade only 1 minor version at a time"]);
    assert!(policy("1.31.2", "1.30.14", "v1.30.14", &[])
        .mandatory
        .is_empty());
    // Kubelets more than three minors behind the target.
    let e = policy("1.30.2", "1.31.2", "v1.31.2", &["v1.27.4", "v1.30.2"]);
    assert_eq!(
        e.skippable,
        ["There are kubelets in this cluster that are too old that have these versions [v1.27.4]"]
    );
    // Release candidates need their flag.
    let e = policy("1.30.2", "1.31.0", "v1.31.0-rc.1", &[]);
    assert!(e
        .skippable
        .iter()
        .any(|m| m.contains("is an unstable version")));
}
