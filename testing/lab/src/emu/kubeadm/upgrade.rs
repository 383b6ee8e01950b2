//! `kubeadm upgrade plan [version]`, `upgrade apply VERSION` and `upgrade node`, as
//! cmd/kubeadm/app/cmd/upgrade and app/phases/upgrade/policy.go do them:
//!
//! - the version skew policy: one minor at a time up (and down), kubeadm itself at least
//!   the target's minor (a newer patch than kubeadm is skippable with `--force`), a
//!   kubeadm newer than the target's minor, an unstable target, or kubelets more than
//!   three minors behind the target are errors `--force` skips; the rest are fatal
//!   (`[upgrade/version] FATAL: the --version argument is invalid due to these fatal
//!   errors: ...`);
//! - the control-plane nodes must be Ready (`[ERROR ControlPlaneNodesReady]`);
//! - apply asks `[upgrade] Are you sure you want to proceed? [y/N]: ` on stdin unless
//!   `-y`, `-f` or `--dry-run`;
//! - apply changes the cluster's version, this master's static pod manifests (images
//!   with the new tag, etcd's when newer unless `--etcd-upgrade=false`; the old ones
//!   backed up under /etc/kubernetes/tmp), renews the certificates of what it replaced
//!   (unless `--certificate-renewal=false`), stores the kubeadm-config and kubelet-config
//!   ConfigMaps, writes the kubelet's /var/lib/kubelet/config.yaml and updates the
//!   CoreDNS and kube-proxy images;
//! - node, on another master, does the same for its own manifests at the cluster's
//!   version; on a worker it only writes the kubelet configuration.
//!
//! - diff prints, for each of this master's kube-apiserver, kube-controller-manager and
//!   kube-scheduler manifests that would change, a unified diff (`--- PATH`, `+++ new
//!   manifest`, `-c|--context-lines`, 3 by default) as pmezard/go-difflib writes it.
//!
//! Output follows the release: kubeadm 1.32 turned apply and node into phases
//! (`[upgrade/preflight]`, `[upgrade] SUCCESS! A control plane node of your cluster was
//! upgraded to ...`); earlier ones print `[upgrade/successful] SUCCESS! Your cluster was
//! upgraded to "v1.31.2". Enjoy!`. The kubelet is not restarted: that, as for real, is
//! the operator's (`systemctl restart kubelet`).

use serde_json::{json, Value};

use super::{
    cluster, config_images, control_plane_manifests, images_for, load_config, usage, write,
    Failure, Flags, Outcome, ADMIN_CONF, MANIFESTS,
};
use crate::emu::cluster::ClusterState;
use crate::emu::{kubelet, Invocation};

/// kubeadm's policy.go: minors the control plane may move up or down in one upgrade, and
/// how far the kubelets may lag behind the target (n-3 since Kubernetes 1.28).
const UPGRADE_SKEW: u32 = 1;
const KUBELET_SKEW: u32 = 3;

/// A version as kubeadm parses it: `v1.31.2`, `1.31.2`, `v1.32.0-rc.1`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Version {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
    pub pre: String,
}

impl Version {
    pub(super) fn parse(text: &str) -> Option<Version> {
        let t = text.trim().trim_start_matches('v');
        let (core, pre) = match t.split_once('-') {
            Some((c, p)) => (c, p.to_string()),
            None => (t, String::new()),
        };
        let mut it = core.split('.');
        let v = Version {
            major: it.next()?.parse().ok()?,
            minor: it.next()?.parse().ok()?,
            patch: it.next()?.parse().ok()?,
            pre,
        };
        it.next().is_none().then_some(v)
    }

    /// An installed package's version (`1.31.2`); 1.0.0 if it is not one (kubeadm's
    /// checks then refuse, as they would a kubeadm that cannot say its version).
    fn of_package(text: &str) -> Version {
        Version::parse(text).unwrap_or(Version {
            major: 1,
            minor: 0,
            patch: 0,
            pre: String::new(),
        })
    }

    fn triple(&self) -> (u32, u32, u32) {
        (self.major, self.minor, self.patch)
    }

    /// `LessThan` of k8s.io/apimachinery's semantic versions.
    fn less_than(&self, other: &Version) -> bool {
        match self.triple().cmp(&other.triple()) {
            std::cmp::Ordering::Less => true,
            std::cmp::Ordering::Greater => false,
            // A pre-release sorts before its release.
            std::cmp::Ordering::Equal => !self.pre.is_empty() && other.pre.is_empty(),
        }
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "v{}.{}.{}", self.major, self.minor, self.patch)?;
        if !self.pre.is_empty() {
            write!(f, "-{}", self.pre)?;
        }
        Ok(())
    }
}

/// What EnforceVersionPolicies finds: errors `--force` cannot skip, and those it can.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct SkewErrors {
    pub mandatory: Vec<String>,
    pub skippable: Vec<String>,
}

/// kubeadm's version skew policy for moving a cluster at `cluster` to `new` with a
/// kubeadm of `kubeadm`, whose nodes run `kubelets`.
pub(super) fn enforce_version_policies(
    cluster: &Version,
    kubeadm: &Version,
    new_text: &str,
    new: &Version,
    kubelets: &[String],
    allow_experimental: bool,
    allow_rc: bool,
) -> SkewErrors {
    let mut e = SkewErrors::default();
    let stable = new.pre.is_empty();
    // constants.MinimumControlPlaneVersion: one minor below kubeadm's.
    if new.minor + 1 < kubeadm.minor {
        e.mandatory.push(format!("Specified version to upgrade to \"{new_text}\" is equal to or lower than the minimum supported version \"{cluster}\". Please specify a higher version to upgrade to"));
    }
    if new.minor > cluster.minor + UPGRADE_SKEW {
        let m = format!("Specified version to upgrade to \"{new_text}\" is too high; kubeadm can upgrade only {UPGRADE_SKEW} minor version at a time");
        if stable {
            e.mandatory.push(m)
        } else {
            e.skippable.push(m)
        }
    }
    if new.minor + UPGRADE_SKEW < cluster.minor {
        let m = format!("Specified version to downgrade to \"{new_text}\" is too low; kubeadm can downgrade only {UPGRADE_SKEW} minor version at a time");
        if stable {
            e.mandatory.push(m)
        } else {
            e.skippable.push(m)
        }
    }
    if kubeadm.less_than(new) {
        if new.minor > kubeadm.minor {
            let m = format!("Specified version to upgrade to \"{new_text}\" is at least one minor release higher than the kubeadm minor release ({} > {}). Such an upgrade is not supported", new.minor, kubeadm.minor);
            if stable {
                e.mandatory.push(m)
            } else {
                e.skippable.push(m)
            }
        } else {
            e.skippable.push(format!("Specified version to upgrade to \"{new_text}\" is higher than the kubeadm version \"{kubeadm}\". Upgrade kubeadm first using the tool you used to install kubeadm"));
        }
    }
    if kubeadm.major > new.major || kubeadm.minor > new.minor {
        e.skippable.push(format!(
            "Kubeadm version {kubeadm} can only be used to upgrade to Kubernetes version {}.{}",
            kubeadm.major, kubeadm.minor
        ));
    }
    let allowed = allow_experimental || (new.pre.starts_with("rc") && allow_rc);
    if !stable && !allowed {
        e.skippable.push(format!("Specified version to upgrade to \"{new_text}\" is an unstable version and such upgrades weren't allowed via setting the --allow-*-upgrades flags"));
    }
    let mut too_old: Vec<&str> = kubelets
        .iter()
        .filter(|k| Version::parse(k).is_some_and(|k| new.minor > k.minor + KUBELET_SKEW))
        .map(String::as_str)
        .collect();
    too_old.sort();
    too_old.dedup();
    if !too_old.is_empty() {
        e.skippable.push(format!(
            "There are kubelets in this cluster that are too old that have these versions [{}]",
            too_old.join(" ")
        ));
    }
    e
}

/// kubeadmutil.FormatErrMsg.
fn format_errors(errors: &[String]) -> String {
    errors.iter().map(|e| format!("\t- {e}\n")).collect()
}

pub(super) fn run(inv: &mut Invocation, kubeadm_version: &str, rest: &[String]) -> Outcome {
    match rest.first().map(String::as_str) {
        Some("plan") => plan(inv, kubeadm_version, &rest[1..]),
        Some("apply") => apply(inv, kubeadm_version, &rest[1..]),
        Some("node") => node(inv, kubeadm_version, &rest[1..]),
        None | Some("-h") | Some("--help") => {
            inv.outln("Upgrade your cluster smoothly to a newer version with this command\n\nUsage:\n  kubeadm upgrade [flags]\n  kubeadm upgrade [command]\n\nAvailable Commands:\n  apply       Upgrade your Kubernetes cluster to the specified version\n  diff        Show what differences would be applied to existing static pod manifests. See also: kubeadm upgrade apply --dry-run\n  node        Upgrade commands for a node in the cluster\n  plan        Check which versions are available to upgrade to and validate whether your current cluster is upgradeable.");
            Ok(())
        }
        Some("diff") => diff(inv, kubeadm_version, &rest[1..]),
        Some(other) => Err(usage(format!(
            "unknown command \"{other}\" for \"kubeadm upgrade\""
        ))),
    }
}

const PLAN_APPLY_VALUES: &[&str] = &[
    "config",
    "ignore-preflight-errors",
    "feature-gates",
    "output",
];
const PLAN_APPLY_BOOLS: &[&str] = &[
    "allow-experimental-upgrades",
    "allow-release-candidate-upgrades",
    "print-config",
    "show-managed-fields",
    "allow-missing-template-keys",
];

fn preflight_root(inv: &Invocation, ignored: &[String]) -> Result<(), Failure> {
    if inv.uid != 0
        && !ignored
            .iter()
            .any(|i| i == "IsPrivilegedUser" || i == "all")
    {
        return Err(Failure::Error("[preflight] Some fatal errors occurred:\n\t[ERROR IsPrivilegedUser]: user is not running as root\n[preflight] If you know what you are doing, you can make a check non-fatal with `--ignore-preflight-errors=...`".into()));
    }
    Ok(())
}

/// The cluster as the admin kubeconfig reaches it.
fn cluster_state(inv: &Invocation, kubeconfig: &str) -> Result<ClusterState, Failure> {
    if !inv.path(kubeconfig).exists() {
        return Err(Failure::Error(format!("couldn't create a Kubernetes client from file \"{kubeconfig}\": failed to load admin kubeconfig: open {kubeconfig}: no such file or directory")));
    }
    let state = cluster::read(inv).map_err(Failure::Error)?;
    if !state.initialized || !crate::emu::etcd::api_available(inv, &state) {
        return Err(Failure::Error(format!("unable to fetch the kubeadm-config ConfigMap: failed to get config map: Get \"https://{ep}/api/v1/namespaces/kube-system/configmaps/kubeadm-config?timeout=10s\": dial tcp {ep}: connect: connection refused", ep = state.endpoint)));
    }
    Ok(state)
}

/// `[upgrade] Running cluster health checks`: every control-plane node Ready.
fn health(state: &ClusterState, ignored: &[String]) -> Result<(), Failure> {
    if ignored
        .iter()
        .any(|i| i == "all" || i.eq_ignore_ascii_case("ControlPlaneNodesReady"))
    {
        return Ok(());
    }
    let not_ready: Vec<&str> = state
        .nodes
        .values()
        .filter(|n| n.control_plane && !n.kubelet.running)
        .map(|n| n.name.as_str())
        .collect();
    if not_ready.is_empty() {
        return Ok(());
    }
    Err(Failure::Error(format!("[upgrade/health] FATAL: [preflight] Some fatal errors occurred:\n\t[ERROR ControlPlaneNodesReady]: there are NotReady control-planes in the cluster: [{}]\n[preflight] If you know what you are doing, you can make a check non-fatal with `--ignore-preflight-errors=...`", not_ready.join(" "))))
}

fn reading_config(inv: &mut Invocation, phased: bool) {
    if phased {
        inv.outln("[upgrade] Reading configuration from the \"kubeadm-config\" ConfigMap in namespace \"kube-system\"...\n[upgrade] Use 'kubeadm init phase upload-config --config your-config.yaml' to re-upload it.");
    } else {
        inv.outln("[upgrade/config] Reading configuration from the cluster...\n[upgrade/config] FYI: You can look at this config file with 'kubectl -n kube-system get cm kubeadm-config -o yaml'");
    }
}

fn kubelet_versions(state: &ClusterState) -> Vec<String> {
    state
        .nodes
        .values()
        .map(|n| n.kubelet_version.clone())
        .collect()
}

/// The kubernetesVersion of a `--config` file (ClusterConfiguration, or v1beta4's
/// UpgradeConfiguration `apply.kubernetesVersion`).
fn config_version(inv: &Invocation, path: &str, kubeadm_version: &str) -> Result<String, Failure> {
    let cfg = load_config(inv, path, kubeadm_version).map_err(Failure::Error)?;
    let from_cluster = cfg
        .cluster
        .as_ref()
        .map(|c| cluster::str_at(c, &["kubernetesVersion"]).to_string())
        .unwrap_or_default();
    if !from_cluster.is_empty() {
        return Ok(from_cluster);
    }
    let text = inv.read(path).unwrap_or_default();
    Ok(cluster::yaml_documents(&text)
        .unwrap_or_default()
        .iter()
        .filter(|d| cluster::str_at(d, &["kind"]) == "UpgradeConfiguration")
        .map(|d| cluster::str_at(d, &["apply", "kubernetesVersion"]).to_string())
        .find(|v| !v.is_empty())
        .unwrap_or_default())
}

// ---- plan ----

fn plan(inv: &mut Invocation, kubeadm_version: &str, rest: &[String]) -> Outcome {
    let f = Flags::parse(rest, PLAN_APPLY_VALUES, PLAN_APPLY_BOOLS).map_err(usage)?;
    let ignored = f.all("ignore-preflight-errors");
    let kubeadm = Version::of_package(kubeadm_version);
    let phased = kubeadm.minor >= 32;
    inv.outln("[preflight] Running pre-flight checks.");
    preflight_root(inv, &ignored)?;
    reading_config(inv, phased);
    let state = cluster_state(inv, f.get("kubeconfig").unwrap_or(ADMIN_CONF))?;
    inv.outln("[upgrade] Running cluster health checks");
    health(&state, &ignored)?;
    inv.outln("[upgrade] Fetching available versions to upgrade to");
    inv.outln(&format!(
        "[upgrade/versions] Cluster version: {}",
        state.kubernetes_version
    ));
    inv.outln(&format!("[upgrade/versions] kubeadm version: {kubeadm}"));
    let target_text = match f.positional.first() {
        Some(v) => v.clone(),
        None => {
            // Offline, the latest stable release cannot be fetched: kubeadm falls back
            // to its own version.
            inv.errln(&super::klog_warning(inv, "version.go:104", "could not fetch a Kubernetes version from the internet: unable to get URL \"https://dl.k8s.io/release/stable.txt\": Get \"https://dl.k8s.io/release/stable.txt\": dial tcp: lookup dl.k8s.io on 127.0.0.53:53: server misbehaving"));
            inv.errln(&super::klog_warning(
                inv,
                "version.go:105",
                &format!("falling back to the local client version: {kubeadm}"),
            ));
            kubeadm.to_string()
        }
    };
    let Some(target) = Version::parse(&target_text) else {
        return Err(Failure::Error(format!(
            "unable to parse normalized version \"{target_text}\" as a semantic version"
        )));
    };
    inv.outln(&format!("[upgrade/versions] Target version: {target}"));
    let current = Version::parse(&state.kubernetes_version);
    if current.as_ref().is_none_or(|c| !c.less_than(&target)) {
        inv.outln("\nAwesome, you're up-to-date! Enjoy!");
        return Ok(());
    }
    let minor = cluster::semver(&state.kubernetes_version).map_or(30, |v| v.1);
    let old_images = images_for(minor);
    let new_images = images_for(target.minor);
    let mut manual = vec![vec![
        "COMPONENT".to_string(),
        "NODE".into(),
        "CURRENT".into(),
        "TARGET".into(),
    ]];
    for n in state.nodes.values() {
        manual.push(vec![
            "kubelet".into(),
            n.name.clone(),
            n.kubelet_version.clone(),
            target.to_string(),
        ]);
    }
    let mut auto = vec![vec![
        "COMPONENT".to_string(),
        "NODE".into(),
        "CURRENT".into(),
        "TARGET".into(),
    ]];
    let masters: Vec<_> = state.nodes.values().filter(|n| n.control_plane).collect();
    for component in [
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
    ] {
        for n in &masters {
            let current = n
                .control_plane_version
                .clone()
                .unwrap_or_else(|| state.kubernetes_version.clone());
            auto.push(vec![
                component.into(),
                n.name.clone(),
                format!("v{current}"),
                target.to_string(),
            ]);
        }
    }
    auto.push(vec![
        "kube-proxy".into(),
        String::new(),
        state.kubernetes_version.clone(),
        target.to_string(),
    ]);
    auto.push(vec![
        "CoreDNS".into(),
        String::new(),
        old_images.coredns.into(),
        new_images.coredns.into(),
    ]);
    for n in &masters {
        auto.push(vec![
            "etcd".into(),
            n.name.clone(),
            old_images.etcd.into(),
            new_images.etcd.into(),
        ]);
    }
    let rule = "_____________________________________________________________________";
    inv.outln(&format!("\n{rule}\n"));
    inv.outln("Components that must be upgraded manually after you have upgraded the control plane with 'kubeadm upgrade apply':");
    inv.out(&table(&manual));
    inv.outln("\nUpgrade to the latest stable version:\n");
    inv.out(&table(&auto));
    inv.outln(&format!("\nYou can now apply the upgrade by executing the following command:\n\n\tkubeadm upgrade apply {target}\n"));
    if target.minor > kubeadm.minor || kubeadm.less_than(&target) {
        inv.outln(&format!(
            "Note: Before you can perform this upgrade, you have to update kubeadm to {target}.\n"
        ));
    }
    inv.outln(&format!("{rule}\n\n\nThe table below shows the current state of component configs as understood by this version of kubeadm.\nConfigs that have a \"yes\" mark in the \"MANUAL UPGRADE REQUIRED\" column require manual config upgrade or\nresetting to kubeadm defaults before a successful upgrade can be performed. The version to manually\nupgrade to is denoted in the \"PREFERRED VERSION\" column.\n"));
    inv.out(&table(&[
        vec![
            "API GROUP".into(),
            "CURRENT VERSION".into(),
            "PREFERRED VERSION".into(),
            "MANUAL UPGRADE REQUIRED".into(),
        ],
        vec![
            "kubeproxy.config.k8s.io".into(),
            "v1alpha1".into(),
            "v1alpha1".into(),
            "no".into(),
        ],
        vec![
            "kubelet.config.k8s.io".into(),
            "v1beta1".into(),
            "v1beta1".into(),
            "no".into(),
        ],
    ]));
    inv.outln(rule);
    inv.outln("");
    Ok(())
}

/// A tabwriter table (three spaces between columns), as kubeadm and kubectl print them;
/// the first row is the header.
fn table(rows: &[Vec<String>]) -> String {
    let mut t = crate::emu::kubectl::Table::default();
    if let Some((header, rest)) = rows.split_first() {
        t.header(&header.iter().map(String::as_str).collect::<Vec<_>>());
        for r in rest {
            t.row(r.clone());
        }
    }
    t.render(false)
}

// ---- diff ----

fn diff(inv: &mut Invocation, kubeadm_version: &str, rest: &[String]) -> Outcome {
    let f =
        Flags::parse(rest, &["config", "context-lines", "c", "api-server"], &[]).map_err(usage)?;
    let context: usize = match f.get("context-lines").or(f.get("c")) {
        Some(n) => n.parse().map_err(|_| {
            usage(format!(
                "invalid argument \"{n}\" for \"-c, --context-lines\" flag: strconv.ParseInt: parsing \"{n}\": invalid syntax"
            ))
        })?,
        None => 3,
    };
    let state = cluster_state(inv, f.get("kubeconfig").unwrap_or(ADMIN_CONF))?;
    let target = match f.positional.first() {
        Some(v) => v.clone(),
        None => kubeadm_version.to_string(),
    };
    let Some(target) = Version::parse(&target) else {
        return Err(Failure::Error(format!(
            "unable to parse normalized version \"{target}\" as a semantic version"
        )));
    };
    let host = inv.hostname();
    let Some(me) = state.nodes.values().find(|n| n.host == host).cloned() else {
        return Err(Failure::Error(format!("nodes \"{host}\" not found")));
    };
    let mut preview = state.clone();
    preview.kubernetes_version = format!("{}.{}.{}", target.major, target.minor, target.patch);
    for (file, _, text) in control_plane_manifests(&preview, &me.address, &me.name) {
        if file == "etcd.yaml" {
            continue;
        }
        let path = format!("{MANIFESTS}/{file}");
        let old = inv.read(&path).map_err(|e| {
            Failure::Error(format!(
                "open {path}: {}",
                if e.kind() == std::io::ErrorKind::NotFound {
                    "no such file or directory".to_string()
                } else {
                    e.to_string()
                }
            ))
        })?;
        inv.out(&unified_diff(&old, &text, &path, "new manifest", context));
    }
    Ok(())
}

/// go-difflib's unified diff of two texts; empty when they are equal. Lines are compared
/// one for one (a changed line is a removal and an addition), which is exact for texts
/// of the same length; otherwise the whole text is one hunk.
fn unified_diff(a: &str, b: &str, from: &str, to: &str, context: usize) -> String {
    if a == b {
        return String::new();
    }
    let a: Vec<&str> = a.split_inclusive('\n').collect();
    let b: Vec<&str> = b.split_inclusive('\n').collect();
    // Runs of changed lines (same index in both), as [start, end).
    let mut changes: Vec<(usize, usize)> = Vec::new();
    if a.len() == b.len() {
        for i in 0..a.len() {
            if a[i] != b[i] {
                match changes.last_mut() {
                    Some((_, end)) if *end == i => *end = i + 1,
                    _ => changes.push((i, i + 1)),
                }
            }
        }
    }
    let range = |start: usize, len: usize| match len {
        1 => format!("{}", start + 1),
        0 => format!("{start},0"),
        n => format!("{},{n}", start + 1),
    };
    let mut out = format!("--- {from}\n+++ {to}\n");
    if changes.is_empty() {
        out.push_str(&format!(
            "@@ -{} +{} @@\n",
            range(0, a.len()),
            range(0, b.len())
        ));
        a.iter().for_each(|l| out.push_str(&format!("-{l}")));
        b.iter().for_each(|l| out.push_str(&format!("+{l}")));
        return out;
    }
    // Hunks: changes whose contexts touch are one hunk.
    let mut hunks: Vec<Vec<(usize, usize)>> = Vec::new();
    for c in changes {
        match hunks.last_mut() {
            Some(h) if c.0 <= h.last().map_or(0, |l| l.1) + 2 * context => h.push(c),
            _ => hunks.push(vec![c]),
        }
    }
    for h in hunks {
        let start = h[0].0.saturating_sub(context);
        let end = (h[h.len() - 1].1 + context).min(a.len());
        out.push_str(&format!(
            "@@ -{} +{} @@\n",
            range(start, end - start),
            range(start, end - start)
        ));
        let mut i = start;
        for (cs, ce) in &h {
            (i..*cs).for_each(|k| out.push_str(&format!(" {}", a[k])));
            (*cs..*ce).for_each(|k| out.push_str(&format!("-{}", a[k])));
            (*cs..*ce).for_each(|k| out.push_str(&format!("+{}", b[k])));
            i = *ce;
        }
        (i..end).for_each(|k| out.push_str(&format!(" {}", a[k])));
    }
    out
}

// ---- apply ----

/// The answer to kubeadm's question on stdin (cmdutil.InteractivelyConfirmAction).
fn confirm(inv: &mut Invocation) -> Result<(), Failure> {
    inv.out("[upgrade] Are you sure you want to proceed? [y/N]: ");
    if !cfg!(test) {
        use std::io::Write;
        let _ = std::io::stdout().write_all(inv.stdout.as_bytes());
        let _ = std::io::stdout().flush();
        inv.stdout.clear();
    }
    let mut answer = String::new();
    if !cfg!(test) {
        let _ = std::io::stdin().read_line(&mut answer);
    }
    inv.outln("");
    match answer.trim().to_lowercase().as_str() {
        "y" | "yes" => Ok(()),
        _ => Err(Failure::Error(
            "won't proceed; the user didn't answer (Y|n) in order to continue".into(),
        )),
    }
}

fn apply(inv: &mut Invocation, kubeadm_version: &str, rest: &[String]) -> Outcome {
    let mut bools = PLAN_APPLY_BOOLS.to_vec();
    bools.extend([
        "yes",
        "y",
        "force",
        "dry-run",
        "etcd-upgrade",
        "certificate-renewal",
    ]);
    let mut values = PLAN_APPLY_VALUES.to_vec();
    values.push("patches");
    let f = Flags::parse(rest, &values, &bools).map_err(usage)?;
    let ignored = f.all("ignore-preflight-errors");
    let force = f.on("force");
    let dry_run = f.on("dry-run");
    let yes = f.on("yes") || f.on("y");
    let etcd_upgrade = f.get("etcd-upgrade").is_none_or(|v| v != "false");
    let renew = f.get("certificate-renewal").is_none_or(|v| v != "false");
    let kubeadm = Version::of_package(kubeadm_version);
    let phased = kubeadm.minor >= 32;
    let new_text = match (f.positional.first(), f.get("config")) {
        (Some(v), _) => v.clone(),
        (None, Some(path)) => config_version(inv, path, kubeadm_version)?,
        (None, None) => String::new(),
    };
    if new_text.is_empty() {
        return Err(Failure::Error(
            "[upgrade/version] FATAL: missing version argument; kubeadm upgrade apply needs the version to upgrade to (ex.: kubeadm upgrade apply v1.31.0)".into(),
        ));
    }
    if phased {
        reading_config(inv, phased);
        inv.outln("[upgrade/preflight] Running preflight checks");
    } else {
        inv.outln("[preflight] Running pre-flight checks.");
    }
    preflight_root(inv, &ignored)?;
    if !phased {
        reading_config(inv, phased);
    }
    let state = cluster_state(inv, f.get("kubeconfig").unwrap_or(ADMIN_CONF))?;
    inv.outln("[upgrade] Running cluster health checks");
    health(&state, &ignored)?;
    let Some(new) = Version::parse(&new_text) else {
        return Err(Failure::Error(format!(
            "unable to parse normalized version \"{new_text}\" as a semantic version"
        )));
    };
    let new_text = new.to_string();
    inv.outln(&if phased {
        format!(
            "[upgrade/preflight] You have chosen to upgrade the cluster version to \"{new_text}\""
        )
    } else {
        format!("[upgrade/version] You have chosen to change the cluster version to \"{new_text}\"")
    });
    let Some(current) = Version::parse(&state.kubernetes_version) else {
        return Err(Failure::Error(
            "[upgrade/version] FATAL: Unable to fetch cluster version: the cluster's version is not a version".into(),
        ));
    };
    inv.outln(&format!("[upgrade/versions] Cluster version: {current}"));
    inv.outln(&format!("[upgrade/versions] kubeadm version: {kubeadm}"));
    let errs = enforce_version_policies(
        &current,
        &kubeadm,
        &new_text,
        &new,
        &kubelet_versions(&state),
        f.on("allow-experimental-upgrades"),
        f.on("allow-release-candidate-upgrades"),
    );
    if !errs.mandatory.is_empty() {
        return Err(Failure::Error(format!("[upgrade/version] FATAL: the --version argument is invalid due to these fatal errors:\n\n{}\nPlease fix the misalignments highlighted above and try upgrading again", format_errors(&errs.mandatory))));
    }
    if !errs.skippable.is_empty() {
        if !force {
            return Err(Failure::Error(format!("[upgrade/version] FATAL: the --version argument is invalid due to these errors:\n\n{}\nCan be bypassed if you pass the --force flag", format_errors(&errs.skippable))));
        }
        inv.out(&format!("[upgrade/version] Found {} potential version compatibility errors but skipping since the --force flag is set: \n\n{}", errs.skippable.len(), format_errors(&errs.skippable)));
    }
    if !(yes || force || dry_run) {
        confirm(inv)?;
    }
    let host = inv.hostname();
    let Some(me) = state.nodes.values().find(|n| n.host == host).cloned() else {
        return Err(Failure::Error(format!(
            "[upgrade/apply] FATAL: couldn't find the node of this host ({host}) in the cluster"
        )));
    };
    if !me.control_plane
        || !inv
            .path(&format!("{MANIFESTS}/kube-apiserver.yaml"))
            .exists()
    {
        return Err(Failure::Error(format!("[upgrade/apply] FATAL: failed to find the static Pod manifest of the kube-apiserver on this node: open {MANIFESTS}/kube-apiserver.yaml: no such file or directory; kubeadm upgrade apply runs on a control-plane node")));
    }
    let prefix = if phased {
        "[upgrade/preflight]"
    } else {
        "[upgrade/prepull]"
    };
    prepull(inv, prefix, dry_run, &state, &new_text)?;
    let version = new_text.trim_start_matches('v').to_string();
    if phased {
        inv.outln(&format!("[upgrade/control-plane] Upgrading your static Pod-hosted control plane to version \"{new_text}\" (timeout: 5m0s)..."));
    } else {
        inv.outln(&format!("[upgrade/apply] Upgrading your Static Pod-hosted control plane to version \"{new_text}\" (timeout: 5m0s)..."));
    }
    if dry_run {
        let mut preview = state.clone();
        preview.kubernetes_version = version.clone();
        for (file, _, _) in control_plane_manifests(&preview, &me.address, &me.name) {
            inv.outln(&format!("[dryrun] Would write file \"{MANIFESTS}/{file}\""));
        }
        inv.outln(&format!(
            "[dryrun] Would write file \"{}\"",
            kubelet::CONFIG
        ));
        inv.outln(if phased {
            "[dryrun] Finished dryrunning successfully!"
        } else {
            "[upgrade/successful] Finished dryrunning successfully!"
        });
        return Ok(());
    }
    crate::durations::hooks::step("kubeadm-upgrade-apply", &me.name, |d| {
        d.steps.kubeadm_upgrade_apply_ms
    });
    // As kubeadm: this master's static pods first, then the configuration uploaded (the
    // cluster's version, its ConfigMaps) and the addons, as one change.
    let mut preview = state.clone();
    preview.kubernetes_version = version.clone();
    upgrade_static_pods(inv, &preview, &me.name, &me.address, etcd_upgrade, renew)?;
    let updated = {
        let mut locked = cluster::lock(inv).map_err(Failure::Error)?;
        let old = locked.state.kubernetes_version.clone();
        for n in locked.state.nodes.values_mut().filter(|n| n.control_plane) {
            if n.control_plane_version.is_none() {
                n.control_plane_version = Some(old.clone());
            }
        }
        locked.state.kubernetes_version = version.clone();
        if let Some(n) = locked.state.nodes.get_mut(&me.name) {
            n.control_plane_version = None;
        }
        upgrade_addons(&mut locked.state);
        store_config_maps(&mut locked.state, kubeadm.minor);
        locked.save().map_err(Failure::Error)?;
        locked.state.clone()
    };
    if phased {
        inv.outln("[upgrade/control-plane] The control plane instance for this node was successfully upgraded!");
    }
    inv.outln("[upload-config] Storing the configuration used in ConfigMap \"kubeadm-config\" in the \"kube-system\" Namespace\n[kubelet] Creating a ConfigMap \"kubelet-config\" in namespace kube-system with the configuration for the kubelets in the cluster");
    if phased {
        inv.outln(
            "[upgrad/kubeconfig] The kubeconfig files for this node were successfully upgraded!",
        );
    }
    write_kubelet_config(inv, &updated, phased)?;
    if phased {
        inv.outln(
            "[upgrade/bootstrap-token] Configuring bootstrap token and cluster-info RBAC rules",
        );
    }
    inv.outln("[bootstrap-token] Configured RBAC rules to allow Node Bootstrap tokens to get nodes\n[bootstrap-token] Configured RBAC rules to allow Node Bootstrap tokens to post CSRs in order for nodes to get long term certificate credentials\n[bootstrap-token] Configured RBAC rules to allow the csrapprover controller automatically approve CSRs from a Node Bootstrap Token\n[bootstrap-token] Configured RBAC rules to allow certificate rotation for all node client certificates in the cluster");
    if updated
        .object("Deployment", "kube-system", "coredns")
        .is_some()
    {
        inv.outln("[addons] Applied essential addon: CoreDNS");
    }
    if updated
        .object("DaemonSet", "kube-system", "kube-proxy")
        .is_some()
    {
        inv.outln("[addons] Applied essential addon: kube-proxy");
    }
    if phased {
        inv.outln(&format!("\n[upgrade] SUCCESS! A control plane node of your cluster was upgraded to \"{new_text}\".\n\n[upgrade] Now please proceed with upgrading the rest of the nodes by following the right order."));
    } else {
        inv.outln(&format!("\n[upgrade/successful] SUCCESS! Your cluster was upgraded to \"{new_text}\". Enjoy!\n\n[upgrade/kubelet] Now that your control plane is upgraded, please proceed with upgrading your kubelets if you haven't already done so."));
    }
    Ok(())
}

/// Says what preflight pulls and pulls it (or, in a dry run, says it would).
fn prepull(
    inv: &mut Invocation,
    prefix: &str,
    dry_run: bool,
    state: &ClusterState,
    version: &str,
) -> Result<(), Failure> {
    if dry_run {
        inv.outln(&format!(
            "{prefix} Would pull the required images (like 'kubeadm config images pull')"
        ));
        return Ok(());
    }
    inv.outln(&format!("{prefix} Pulling images required for setting up a Kubernetes cluster\n{prefix} This might take a minute or two, depending on the speed of your internet connection\n{prefix} You can also perform this action beforehand using 'kubeadm config images pull'"));
    pull(inv, state, version)
}

/// The images of `version` this control-plane node needs, pulled through its runtime.
fn pull(inv: &Invocation, state: &ClusterState, version: &str) -> Result<(), Failure> {
    let socket = kubelet_socket(inv);
    let images = config_images::list(&state.image_repository, version.trim_start_matches('v'));
    config_images::pull_all(inv, &socket, &images).map_err(|e| {
        Failure::Error(format!("[preflight] Some fatal errors occurred:\n\t[ERROR ImagePull]: {e}\n[preflight] If you know what you are doing, you can make a check non-fatal with `--ignore-preflight-errors=...`"))
    })
}

fn kubelet_socket(inv: &Invocation) -> String {
    let config = inv
        .read(kubelet::CONFIG)
        .ok()
        .and_then(|t| cluster::yaml_documents(&t).ok())
        .and_then(|d| d.into_iter().next())
        .unwrap_or(Value::Null);
    kubelet::runtime_endpoint(inv, &config)
}

/// CoreDNS's and kube-proxy's images follow the cluster's version.
fn upgrade_addons(state: &mut ClusterState) {
    let repo = state.image_repository.clone();
    let v = state.kubernetes_version.clone();
    let minor = cluster::semver(&v).map_or(30, |x| x.1);
    let dns = if repo == "registry.k8s.io" {
        format!("{repo}/coredns/coredns")
    } else {
        format!("{repo}/coredns")
    };
    for o in state.objects.iter_mut().filter(|o| o.source == "kubeadm") {
        let image = match (o.kind.as_str(), o.name.as_str()) {
            ("Deployment", "coredns") => format!("{dns}:{}", images_for(minor).coredns),
            ("DaemonSet", "kube-proxy") => format!("{repo}/kube-proxy:v{v}"),
            _ => continue,
        };
        if let Some(c) = o.body.pointer_mut("/spec/template/spec/containers/0/image") {
            *c = json!(image);
        }
    }
}

/// The kubeadm-config and kubelet-config ConfigMaps, as `upload-config` stores them.
pub(super) fn store_config_maps(state: &mut ClusterState, kubeadm_minor: u32) {
    let api = if kubeadm_minor >= 31 {
        "kubeadm.k8s.io/v1beta4"
    } else {
        "kubeadm.k8s.io/v1beta3"
    };
    let mut networking =
        json!({"dnsDomain": state.dns_domain, "serviceSubnet": state.service_subnet});
    if let Some(p) = &state.pod_subnet {
        networking["podSubnet"] = json!(p);
    }
    let mut cluster_cfg = json!({
        "apiVersion": api, "kind": "ClusterConfiguration",
        "clusterName": state.cluster_name,
        "certificatesDir": "/etc/kubernetes/pki",
        "imageRepository": state.image_repository,
        "kubernetesVersion": format!("v{}", state.kubernetes_version),
        "networking": networking,
        "etcd": {"local": {"dataDir": "/var/lib/etcd"}},
    });
    if !state.control_plane_endpoint.is_empty() {
        cluster_cfg["controlPlaneEndpoint"] = json!(state.control_plane_endpoint);
    }
    let text = serde_norway::to_string(&cluster_cfg).unwrap_or_default();
    super::add_object(
        state,
        json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "kubeadm-config", "namespace": "kube-system"},
            "data": {"ClusterConfiguration": text}}),
    );
    let kubelet = state.kubelet_config.clone();
    super::add_object(
        state,
        json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "kubelet-config", "namespace": "kube-system"},
            "data": {"kubelet": kubelet}}),
    );
}

/// A timestamp for kubeadm's backup directories (`2025-08-05-16-44-22`).
fn stamp() -> String {
    cluster::rfc3339(cluster::now())
        .trim_end_matches('Z')
        .replace(['T', ':'], "-")
}

/// Replaces this master's static pod manifests with `state`'s version (the old ones
/// backed up), and renews the certificates of what it replaced.
fn upgrade_static_pods(
    inv: &mut Invocation,
    state: &ClusterState,
    node: &str,
    address: &str,
    etcd_upgrade: bool,
    renew: bool,
) -> Result<(), Failure> {
    let tmp = format!(
        "/etc/kubernetes/tmp/kubeadm-upgraded-manifests{}",
        cluster::now() % 1_000_000_000
    );
    let backup = format!("/etc/kubernetes/tmp/kubeadm-backup-manifests-{}", stamp());
    inv.outln(&format!(
        "[upgrade/staticpods] Writing new Static Pod manifests to \"{tmp}\""
    ));
    let mut renewed: Vec<&str> = Vec::new();
    for (file, image, mut text) in control_plane_manifests(state, address, node) {
        let component = file.trim_end_matches(".yaml").to_string();
        let path = format!("{MANIFESTS}/{file}");
        let old = inv.read(&path).unwrap_or_default();
        if component == "etcd" {
            // The member keeps its flags (its cluster, its data): only the image moves.
            if let Some(old_image) = old.lines().find_map(|l| l.trim().strip_prefix("image: ")) {
                text = old.replace(&format!("image: {old_image}"), &format!("image: {image}"));
            }
            let old_tag = old
                .lines()
                .find_map(|l| l.trim().strip_prefix("image: "))
                .and_then(|i| i.rsplit_once(':'))
                .map(|(_, t)| t.to_string())
                .unwrap_or_default();
            let new_tag = image.rsplit_once(':').map(|(_, t)| t).unwrap_or("");
            if !etcd_upgrade {
                continue;
            }
            if etcd_older_or_same(new_tag, &old_tag) {
                if new_tag != old_tag {
                    inv.outln(&format!("[upgrade/etcd] Non fatal issue encountered during upgrade: the desired etcd version \"{new_tag}\" is older than the currently installed \"{old_tag}\". Skipping etcd upgrade"));
                }
                continue;
            }
        }
        if old == text {
            inv.outln(&format!("[upgrade/staticpods] Current and new manifests of {component} are equal, skipping upgrade"));
            continue;
        }
        inv.outln(&format!(
            "[upgrade/staticpods] Preparing for \"{component}\" upgrade"
        ));
        let certs: &[&str] = match component.as_str() {
            "kube-apiserver" => &[
                "apiserver",
                "apiserver-kubelet-client",
                "front-proxy-client",
                "apiserver-etcd-client",
            ],
            "kube-controller-manager" => &["controller-manager.conf"],
            "kube-scheduler" => &["scheduler.conf"],
            "etcd" => &["etcd-server", "etcd-peer", "etcd-healthcheck-client"],
            _ => &[],
        };
        if renew {
            for c in certs {
                inv.outln(&format!("[upgrade/staticpods] Renewing {c} certificate"));
            }
            renewed.extend(certs);
        }
        write(inv, &format!("{backup}/{file}"), &old).map_err(Failure::Error)?;
        write(inv, &path, &text).map_err(Failure::Error)?;
        crate::emu::etcd::restarted(inv, &component);
        inv.outln(&format!("[upgrade/staticpods] Moving new manifest to \"{path}\" and backing up old manifest to \"{backup}/{file}\"\n[upgrade/staticpods] Waiting for the kubelet to restart the component\n[upgrade/staticpods] This can take up to 5m0s\n[apiclient] Found 1 Pods for label selector component={component}\n[upgrade/staticpods] Component \"{component}\" upgraded successfully!"));
    }
    if renew {
        crate::emu::pki::renew_for_upgrade(inv, &renewed).map_err(Failure::Error)?;
    }
    Ok(())
}

/// Whether etcd image tag `new` (`3.5.15-0`) is not newer than `old`.
fn etcd_older_or_same(new: &str, old: &str) -> bool {
    let parse = |t: &str| {
        let (v, rev) = t.split_once('-').unwrap_or((t, "0"));
        cluster::semver(v).map(|s| (s, rev.parse::<u32>().unwrap_or(0)))
    };
    match (parse(new), parse(old)) {
        (Some(n), Some(o)) => n <= o,
        _ => false,
    }
}

/// `/var/lib/kubelet/config.yaml` from the cluster's kubelet-config, keeping this node's
/// runtime endpoint (kubeadm's instance-specific part).
fn write_kubelet_config(
    inv: &mut Invocation,
    state: &ClusterState,
    phased: bool,
) -> Result<(), Failure> {
    let mut config: Value = cluster::yaml_documents(&state.kubelet_config)
        .map_err(Failure::Error)?
        .into_iter()
        .next()
        .unwrap_or_else(|| json!({}));
    let socket = kubelet_socket(inv);
    if let Some(m) = config.as_object_mut() {
        m.insert("containerRuntimeEndpoint".into(), json!(socket));
    }
    let dir = format!(
        "/etc/kubernetes/tmp/kubeadm-kubelet-config{}",
        cluster::now() % 10_000_000_000
    );
    if phased {
        inv.errln(&super::klog_warning(inv, "postupgrade.go:117", &format!("Using temporary directory {dir} for kubelet config. To override it set the environment variable KUBEADM_UPGRADE_DRYRUN_DIR")));
    }
    let old = inv.read(kubelet::CONFIG).unwrap_or_default();
    write(inv, &format!("{dir}/config.yaml"), &old).map_err(Failure::Error)?;
    inv.outln(&format!(
        "[upgrade] Backing up kubelet config file to {dir}/config.yaml"
    ));
    let text = serde_norway::to_string(&config).map_err(|e| Failure::Error(e.to_string()))?;
    write(inv, kubelet::CONFIG, &text).map_err(Failure::Error)?;
    inv.outln(&format!(
        "[kubelet-start] Writing kubelet configuration to file \"{}\"",
        kubelet::CONFIG
    ));
    if phased {
        inv.outln("[upgrade/kubelet-config] The kubelet configuration for this node was successfully upgraded!");
    }
    Ok(())
}

// ---- node ----

fn node(inv: &mut Invocation, kubeadm_version: &str, rest: &[String]) -> Outcome {
    let f = Flags::parse(
        rest,
        &["ignore-preflight-errors", "patches", "config"],
        &[
            "dry-run",
            "etcd-upgrade",
            "certificate-renewal",
            "skip-phases",
        ],
    )
    .map_err(usage)?;
    let ignored = f.all("ignore-preflight-errors");
    let dry_run = f.on("dry-run");
    let etcd_upgrade = f.get("etcd-upgrade").is_none_or(|v| v != "false");
    let renew = f.get("certificate-renewal").is_none_or(|v| v != "false");
    let phased = cluster::semver(kubeadm_version).is_some_and(|v| v.1 >= 32);
    let control_plane = inv
        .path(&format!("{MANIFESTS}/kube-apiserver.yaml"))
        .exists();
    let kubeconfig = if control_plane {
        ADMIN_CONF
    } else {
        kubelet::KUBECONFIG
    };
    if phased {
        reading_config(inv, phased);
        inv.outln("[upgrade/preflight] Running pre-flight checks");
    } else {
        inv.outln("[upgrade] Reading configuration from the cluster...\n[upgrade] FYI: You can look at this config file with 'kubectl -n kube-system get cm kubeadm-config -o yaml'\n[preflight] Running pre-flight checks");
    }
    preflight_root(inv, &ignored)?;
    let state = cluster_state(inv, kubeconfig)?;
    let host = inv.hostname();
    let Some(me) = state.nodes.values().find(|n| n.host == host).cloned() else {
        return Err(Failure::Error(format!("nodes \"{host}\" not found")));
    };
    let pre = if phased {
        "[upgrade/preflight]"
    } else {
        "[preflight]"
    };
    if control_plane {
        prepull(inv, pre, dry_run, &state, &state.kubernetes_version)?;
        let v = format!("v{}", state.kubernetes_version);
        if phased {
            inv.outln(&format!("[upgrade/control-plane] Upgrading your static Pod-hosted control plane instance to version \"{v}\"..."));
        } else {
            inv.outln(&format!("[upgrade] Upgrading your Static Pod-hosted control plane instance to version \"{v}\"..."));
        }
        if dry_run {
            for (file, _, _) in control_plane_manifests(&state, &me.address, &me.name) {
                inv.outln(&format!("[dryrun] Would write file \"{MANIFESTS}/{file}\""));
            }
        } else {
            crate::durations::hooks::step("kubeadm-upgrade-node-control-plane", &me.name, |d| {
                d.steps.kubeadm_upgrade_apply_ms
            });
            upgrade_static_pods(inv, &state, &me.name, &me.address, etcd_upgrade, renew)?;
            let mut locked = cluster::lock(inv).map_err(Failure::Error)?;
            if let Some(n) = locked.state.nodes.get_mut(&me.name) {
                n.control_plane_version = None;
            }
            locked.save().map_err(Failure::Error)?;
            inv.outln(if phased {
                "[upgrade/control-plane] The control plane instance for this node was successfully upgraded!"
            } else {
                "[upgrade] The control plane instance for this node was successfully updated!"
            });
        }
        if phased {
            inv.outln("[upgrad/kubeconfig] The kubeconfig files for this node were successfully upgraded!");
        }
    } else {
        inv.outln(&format!(
            "{pre} Skipping prepull. Not a control plane node."
        ));
        if phased {
            inv.outln("[upgrade/control-plane] Skipping phase. Not a control plane node.\n[upgrade/kubeconfig] Skipping phase. Not a control plane node.");
        } else {
            inv.outln("[upgrade] Skipping phase. Not a control plane node.\n[upgrade] Skipping phase. Not a control plane node.");
        }
    }
    if dry_run {
        inv.outln(&format!(
            "[dryrun] Would write file \"{}\"",
            kubelet::CONFIG
        ));
        inv.outln("[dryrun] Finished dryrunning successfully!");
        return Ok(());
    }
    if !control_plane {
        crate::durations::hooks::step("kubeadm-upgrade-node", &me.name, |d| {
            d.steps.kubeadm_upgrade_node_ms
        });
    }
    write_kubelet_config(inv, &state, phased)?;
    if phased {
        if control_plane {
            inv.outln("[addons] Applied essential addon: CoreDNS\n[addons] Applied essential addon: kube-proxy");
        } else {
            inv.outln("[upgrade/addon] Skipping the addon/coredns phase. Not a control plane node.\n[upgrade/addon] Skipping the addon/kube-proxy phase. Not a control plane node.");
        }
    } else {
        inv.outln("[upgrade] The configuration for this node was successfully updated!\n[upgrade] Now you should go ahead and upgrade the kubelet package using your package manager.");
    }
    Ok(())
}

#[cfg(test)]
mod tests;
