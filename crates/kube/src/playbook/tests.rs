//! The default playbook parses, and every task it selects renders for every host
//! of a few inventories on each supported family, with the real context.

use std::collections::BTreeMap;

use k8sup_engine::playbook::{Action, FileSource, LineEdit};
use k8sup_engine::{HostSelector, Playbook, Task};
use k8sup_inventory::{Host, Inventory};
use minijinja::{Environment, UndefinedBehavior, Value};
use serde_json::json;

use super::*;
use crate::manifest::{cni_manifest, ManifestPatch};
use crate::testing::{inventory, HA, SOLO_DOCKER};
use crate::{kubeadm, runtime, template_context};

fn playbook() -> Playbook {
    match Playbook::parse(PLAYBOOK_NAME, PLAYBOOK) {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    }
}

fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_keep_trailing_newline(true);
    env.add_function("version_compare", |a: String, op: String, b: String| {
        let parse =
            |v: &str| -> Vec<u64> { v.split('.').map(|p| p.parse().unwrap_or(0)).collect() };
        let (a, b) = (parse(&a), parse(&b));
        Ok(match op.as_str() {
            ">=" => a >= b,
            "<" => a < b,
            "==" => a == b,
            other => panic!("operator {other} not used by the playbook"),
        })
    });
    for (name, text) in TEMPLATES {
        env.add_template(name, text).expect("template compiles");
    }
    env
}

/// What one host's run would render: task id -> rendered fields.
type Rendered = BTreeMap<String, Vec<String>>;

fn selected(selector: &HostSelector, inv: &Inventory, host: &Host) -> bool {
    match selector {
        HostSelector::All => true,
        HostSelector::Role(r) if r == "master" => host.roles.master,
        HostSelector::Role(r) if r == "node" => host.roles.node,
        HostSelector::FirstMaster => inv.first_master().name == host.name,
        HostSelector::OtherMasters => host.roles.master && inv.first_master().name != host.name,
        other => panic!("selector {other} not used by the default playbook"),
    }
}

fn fields(task: &Task) -> Vec<String> {
    match &task.action {
        Action::File(f) => {
            let mut v = vec![f.path.clone()];
            match &f.source {
                FileSource::Content(c) => v.push(c.clone()),
                FileSource::Template(t) => v.push(format!("{{% include '{t}' %}}")),
                FileSource::Artifact(a) => v.push(format!("artifact {a}")),
                FileSource::Binary { artifact, .. } => v.push(format!("artifact {artifact}")),
            }
            v
        }
        Action::Line(l) => match &l.edit {
            LineEdit::Present { line, .. } => vec![l.path.clone(), line.clone()],
            LineEdit::CommentOut { .. } => vec![l.path.clone()],
        },
        Action::Package(p) => p
            .packages
            .iter()
            .cloned()
            .chain(p.version.clone())
            .collect(),
        Action::Service(s) => vec![s.service.clone()],
        Action::Module(m) => vec![m.module.clone()],
        Action::Sysctl(s) => vec![s.file.clone()],
        Action::Command(c) => [Some(c.cmd.clone()), c.creates.clone(), c.unless.clone()]
            .into_iter()
            .flatten()
            .collect(),
        Action::Fetch(f) => vec![f.cmd.clone()],
        Action::Hostname(h) => vec![h.hostname.clone()],
    }
}

fn render_host(inv: &Inventory, host: &Host, family: &str, os: (&str, &str)) -> Rendered {
    render_host_with(inv, host, family, os, None)
}

/// [`render_host`] with the text of the inventory's `cni_manifest` (Calico's).
fn render_host_with(
    inv: &Inventory,
    host: &Host,
    family: &str,
    os: (&str, &str),
    cni_source: Option<&str>,
) -> Rendered {
    render_playbook(&playbook(), inv, host, family, os, cni_source, |_| {})
}

/// What `playbook` renders for `host`, with the context `extend` adds to.
fn render_playbook(
    playbook: &Playbook,
    inv: &Inventory,
    host: &Host,
    family: &str,
    os: (&str, &str),
    cni_source: Option<&str>,
    extend: impl Fn(&mut serde_json::Value),
) -> Rendered {
    let env = environment();
    let facts = json!({ "os": { "id": os.0, "version_id": os.1 } });
    let manifest = cni_manifest(inv, cni_source, &ManifestPatch::for_inventory(inv)).unwrap();
    let mut context = template_context(inv, host, &facts, manifest.as_deref()).unwrap();
    context["platform"] = json!({
        "arch": host.arch.map_or("amd64", |a| a.as_str()),
        "family": family,
        "distro": os.0,
        "distro_version": os.1,
    });
    // Needed values are shown as placeholders, as in a plan.
    context["join_credentials"] = json!("<join_credentials from m1>");
    context["certificate_key"] = json!("<certificate_key from m1>");
    context["control_plane_images"] = json!("<control_plane_images from m1>");
    extend(&mut context);
    let ctx = Value::from_serialize(&context);
    let mut out = Rendered::new();
    for play in &playbook.plays {
        if !selected(&play.hosts, inv, host) {
            continue;
        }
        for task in play.tasks.iter().chain(&play.handlers) {
            let mut run = true;
            for cond in &task.when {
                let expr = env.compile_expression(cond).unwrap();
                let value = expr
                    .eval(&ctx)
                    .unwrap_or_else(|e| panic!("{}: when {cond:?}: {e}", task.id));
                run &= value.is_true();
            }
            if !run {
                continue;
            }
            let rendered = fields(task)
                .iter()
                .map(|f| {
                    env.render_str(f, &ctx)
                        .unwrap_or_else(|e| panic!("{} on {}: {e:#}", task.id, host.name))
                })
                .collect();
            out.insert(task.id.clone(), rendered);
        }
    }
    out
}

#[test]
fn the_default_playbook_parses() {
    let p = playbook();
    assert!(p.plays.iter().any(|play| play.name == "init"));
    for (name, _) in TEMPLATES {
        assert!(
            PLAYBOOK.contains(name),
            "template {name} is embedded but the playbook never uses it"
        );
    }
}

#[test]
fn every_task_renders_on_ubuntu_rocky_and_debian() {
    let ha = inventory(HA);
    let solo = inventory(SOLO_DOCKER);
    for (inv, family, os) in [
        (&ha, "debian", ("ubuntu", "22.04")),
        (&ha, "redhat", ("rocky", "9.4")),
        (&ha, "redhat", ("centos", "7")),
        (&solo, "debian", ("debian", "12")),
        (&ha, "debian", ("ubuntu", "24.04")),
        (&solo, "debian", ("debian", "13")),
        (&ha, "redhat", ("almalinux", "10.0")),
        (&ha, "redhat", ("openEuler", "24.03")),
        (&solo, "redhat", ("kylin", "V10")),
    ] {
        for host in &inv.hosts {
            let r = render_host(inv, host, family, os);
            assert!(r.contains_key("prepare/hostname"));
            assert!(r.contains_key("ready/node-ready"));
        }
    }
}

#[test]
fn kubeadm_init_runs_only_on_the_first_master_with_the_rendered_config() {
    let inv = inventory(HA);
    let m1 = render_host(&inv, inv.first_master(), "debian", ("ubuntu", "22.04"));
    assert_eq!(
        m1["init/kubeadm-config"][1],
        kubeadm::init_config(&inv, inv.first_master()).unwrap()
    );
    assert_eq!(m1["init/kubeadm-init"][1], "/etc/kubernetes/admin.conf");
    assert!(m1["init/kubeadm-init"][0].contains("--skip-token-print"));
    for name in ["m2", "w1"] {
        let r = render_host(&inv, inv.host(name).unwrap(), "debian", ("ubuntu", "22.04"));
        assert!(!r.contains_key("init/kubeadm-init"), "{name}");
        assert!(!r.contains_key("pod-network/cni-applied"), "{name}");
    }
}

#[test]
fn joins_are_guarded_and_hold_no_secret() {
    let inv = inventory(HA);
    let m2 = render_host(&inv, inv.host("m2").unwrap(), "redhat", ("rocky", "9.4"));
    let join = &m2["join-control-plane/kubeadm-join"];
    assert_eq!(join[1], "/etc/kubernetes/kubelet.conf");
    assert!(
        join[0].contains("fill K8SUP_CERTIFICATE_KEY \"$3\""),
        "{}",
        join[0]
    );
    assert!(!m2.contains_key("join-workers/kubeadm-join"));
    let config = &m2["join-control-plane/kubeadm-join-config"][1];
    assert!(config.contains("certificateKey: K8SUP_CERTIFICATE_KEY"));

    let w1 = render_host(&inv, inv.host("w1").unwrap(), "redhat", ("rocky", "9.4"));
    let join = &w1["join-workers/kubeadm-join"];
    assert!(
        join[0].contains("set -- <join_credentials from m1>\n"),
        "{}",
        join[0]
    );
    assert!(join[0].contains("kubeadm join --config \"$f\""));
    assert!(!w1["join-workers/kubeadm-join-config"][1].contains("certificateKey"));
}

#[test]
fn images_are_pulled_ahead_on_every_host_before_it_waits_for_init() {
    let inv = inventory(HA);
    let m1 = render_host(&inv, inv.first_master(), "debian", ("ubuntu", "22.04"));
    let pull = &m1["init/images-pulled-ahead"][0];
    assert!(
        pull.starts_with("kubeadm config images pull --config /etc/k8sup/kubeadm.yaml"),
        "{pull}"
    );
    assert!(pull.contains("flannel"), "the CNI's images too: {pull}");
    assert!(m1.contains_key("init/image-list"));
    // The other masters do not wait for the first master's list (the nodes do): they
    // queue before the nodes at the registry; the same version and repository as init.
    let m2 = render_host(&inv, inv.host("m2").unwrap(), "redhat", ("rocky", "9.4"));
    let pull = &m2["join-control-plane/images-pulled-ahead"][0];
    assert!(
        pull.starts_with("kubeadm config images pull --kubernetes-version v1.30.4 --image-repository registry.aliyuncs.com/google_containers --cri-socket unix:///run/containerd/containerd.sock"),
        "{pull}"
    );
    assert!(m1["init/kubeadm-config"][1].contains("kubernetesVersion: v1.30.4"));
    assert!(m1["init/kubeadm-config"][1]
        .contains("imageRepository: registry.aliyuncs.com/google_containers"));
    assert!(pull.contains("flannel"), "{pull}");
    let w1 = render_host(&inv, inv.host("w1").unwrap(), "redhat", ("rocky", "9.4"));
    let pull = &w1["join-workers/images-pulled-ahead"][0];
    assert!(
        pull.contains("*/kube-proxy:*|*/pause:*) set -- \"$@\" \"$i\";;"),
        "{pull}"
    );
    assert!(pull.contains("flannel"), "{pull}");
    // In the background, holding none of the shell's descriptors (fd 9: the host lock).
    assert!(
        pull.contains("setsid sh -c ") && pull.trim_end().ends_with("9>&- &"),
        "{pull}"
    );
    // Guarded like the join: a joined host does not pull again.
    assert_eq!(
        w1["join-workers/images-pulled-ahead"][1],
        "/etc/kubernetes/kubelet.conf"
    );
    // Waited for after the join, only when pulls were started.
    let ids: Vec<String> = playbook().all_tasks().map(|(_, t)| t.id.clone()).collect();
    let at = |id: &str| {
        ids.iter()
            .position(|i| i == id)
            .unwrap_or_else(|| panic!("{id}"))
    };
    assert!(at("join-workers/kubeadm-join") < at("join-workers/images-pulled"));
    assert!(at("join-workers/images-pulled") < at("ready/node-ready"));
    assert_eq!(
        w1["join-workers/images-pulled"][1],
        "test ! -e /var/lib/k8sup/pull-ahead"
    );
}

#[test]
fn nodes_pull_only_once_every_master_holds_its_images() {
    let pb = playbook();
    let task = |id: &str| {
        pb.all_tasks()
            .map(|(_, t)| t)
            .find(|t| t.id == id)
            .unwrap_or_else(|| panic!("no task {id}"))
    };
    for id in [
        "init/images-pulled-ahead",
        "join-control-plane/images-pulled-ahead",
    ] {
        assert_eq!(task(id).signals, ["masters_hold_images"], "{id}");
    }
    assert_eq!(
        task("join-workers/images-pulled-ahead").waits_for,
        ["masters_hold_images"]
    );
    // Nothing else gives or waits for it: the joins and init do not wait on the nodes.
    let others = pb
        .all_tasks()
        .map(|(_, t)| t)
        .filter(|t| !t.id.ends_with("/images-pulled-ahead"))
        .filter(|t| !t.signals.is_empty() || !t.waits_for.is_empty())
        .map(|t| t.id.as_str())
        .collect::<Vec<_>>();
    assert!(others.is_empty(), "{others:?}");
}

#[test]
fn the_runtime_and_the_kubelet_get_the_same_pause_image() {
    let inv = inventory(HA);
    let m1 = render_host(&inv, inv.first_master(), "debian", ("ubuntu", "22.04"));
    let pause = "registry.aliyuncs.com/google_containers/pause:3.9";
    assert!(m1["prepare/containerd-config"][1].contains(&format!("sandbox_image = \"{pause}\"")));
    assert!(m1["init/kubeadm-config"][1].contains(&format!("pod-infra-container-image: {pause}")));

    let solo = inventory(SOLO_DOCKER);
    let s = render_host(&solo, solo.first_master(), "debian", ("debian", "12"));
    let unit = &s["prepare/cri-dockerd-service-unit"][1];
    assert!(
        unit.contains("--pod-infra-container-image=registry.k8s.io/pause:3.10"),
        "{unit}"
    );
    assert_eq!(
        s["prepare/docker-daemon-json"][1],
        runtime::docker_daemon_json(&solo)
    );
    // The program is uploaded from the controller, never fetched by the host.
    assert_eq!(
        s["prepare/cri-dockerd-binary"],
        ["/usr/local/bin/cri-dockerd", "artifact cri-dockerd"]
    );
    assert!(!s.contains_key("prepare/containerd-config"));
}

#[test]
fn repositories_follow_the_minor_version_and_the_mirror() {
    let inv = inventory(HA);
    let ubuntu = render_host(&inv, inv.first_master(), "debian", ("ubuntu", "22.04"));
    assert!(ubuntu["prepare/kubernetes-apt-repository"][1].contains(
        "deb [signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.gpg] \
         https://pkgs.k8s.io/core:/stable:/v1.30/deb/ /"
    ));
    assert!(ubuntu["prepare/docker-apt-repository"][1]
        .contains("https://download.docker.com/linux/ubuntu jammy stable"));
    assert_eq!(ubuntu["prepare/kubernetes-packages"][3], "1.30.4-*");

    let mirrored = inventory(&HA.replace(
        "[ssh]",
        "[packages]\nkubernetes_repo = \"https://mirrors.aliyun.com/kubernetes-new/core/stable/\"\n\
         docker_repo = \"https://mirrors.aliyun.com/docker-ce\"\n[ssh]",
    ));
    let rocky = render_host(
        &mirrored,
        mirrored.first_master(),
        "redhat",
        ("rocky", "9.4"),
    );
    let repo = &rocky["prepare/kubernetes-yum-repository"][1];
    assert!(
        repo.contains("baseurl=https://mirrors.aliyun.com/kubernetes-new/core/stable/v1.30/rpm/\n"),
        "{repo}"
    );
    assert!(rocky["prepare/docker-yum-repository"][1].contains(
        "baseurl=https://mirrors.aliyun.com/docker-ce/linux/centos/$releasever/$basearch/stable"
    ));
    assert!(rocky.contains_key("prepare/selinux-permissive-now"));
    assert!(rocky.contains_key("prepare/versionlock-plugin"));
    assert!(!rocky.contains_key("prepare/versionlock-plugin-yum"));
    assert!(!ubuntu.contains_key("prepare/selinux-permissive-now"));
}

#[test]
fn deb822_releases_get_sources_files_and_domestic_ones_a_named_docker_release() {
    let inv = inventory(HA);
    let noble = render_host(&inv, inv.first_master(), "debian", ("ubuntu", "24.04"));
    assert!(!noble.contains_key("prepare/kubernetes-apt-repository"));
    assert!(!noble.contains_key("prepare/docker-apt-repository"));
    assert_eq!(
        noble["prepare/kubernetes-apt-sources"][0],
        "/etc/apt/sources.list.d/kubernetes.sources"
    );
    let k8s = &noble["prepare/kubernetes-apt-sources"][1];
    assert!(
        k8s.contains(
            "Types: deb\nURIs: https://pkgs.k8s.io/core:/stable:/v1.30/deb/\nSuites: /\n\
             Signed-By: /etc/apt/keyrings/kubernetes-apt-keyring.gpg\n"
        ),
        "{k8s}"
    );
    let docker = &noble["prepare/docker-apt-sources"][1];
    assert!(
        docker.contains(
            "URIs: https://download.docker.com/linux/ubuntu\nSuites: noble\nComponents: stable\n"
        ),
        "{docker}"
    );
    assert!(noble.contains_key("prepare/one-line-apt-lists-replaced"));
    let jammy = render_host(&inv, inv.first_master(), "debian", ("ubuntu", "22.04"));
    assert!(!jammy.contains_key("prepare/kubernetes-apt-sources"));
    assert!(!jammy.contains_key("prepare/one-line-apt-lists-replaced"));
    let trixie = render_host(&inv, inv.first_master(), "debian", ("debian", "13"));
    assert!(trixie["prepare/docker-apt-sources"][1].contains("Suites: trixie\n"));

    for (id, version, release) in [("openEuler", "22.03", "9"), ("kylin", "V10", "8")] {
        let r = render_host(&inv, inv.first_master(), "redhat", (id, version));
        assert!(
            r["prepare/docker-yum-repository"][1].contains(&format!(
                "baseurl=https://download.docker.com/linux/centos/{release}/$basearch/stable\n"
            )),
            "{id}"
        );
        // SELinux as the Red Hat family, and dnf's versionlock plugin.
        assert!(r.contains_key("prepare/selinux-permissive-now"), "{id}");
        assert!(r.contains_key("prepare/versionlock-plugin"), "{id}");
        assert!(!r.contains_key("prepare/versionlock-plugin-yum"), "{id}");
    }
}

#[test]
fn runtime_packages_are_installed_at_their_pins() {
    let inv = inventory(SOLO_DOCKER);
    let solo = inv.first_master();
    let ubuntu = render_host(&inv, solo, "debian", ("ubuntu", "22.04"));
    assert_eq!(
        ubuntu["prepare/containerd-package"],
        ["containerd.io", "1.7.24-*"]
    );
    assert_eq!(
        ubuntu["prepare/docker-packages"],
        ["docker-ce", "docker-ce-cli", "5:27.4.1-*"]
    );
    let rocky = render_host(&inv, solo, "redhat", ("rocky", "9.4"));
    assert_eq!(
        rocky["prepare/docker-packages"],
        ["docker-ce", "docker-ce-cli", "27.4.1-*"]
    );
    // containerd alone: containerd.io, pinned; no Docker.
    let ha = inventory(HA);
    let m1 = render_host(&ha, ha.first_master(), "debian", ("ubuntu", "22.04"));
    assert_eq!(
        m1["prepare/containerd-package"],
        ["containerd.io", "1.7.23-*"]
    );
    assert!(!m1.contains_key("prepare/docker-packages"));
    let held = playbook()
        .plays
        .iter()
        .flat_map(|p| &p.tasks)
        .filter(|t| matches!(&t.action, Action::Package(p) if p.packages.iter().any(|n| n.starts_with("docker-ce") || n == "containerd.io")))
        .all(|t| matches!(&t.action, Action::Package(p) if p.hold));
    assert!(held, "the runtime packages are held");
}

mod real_tools;

#[test]
fn the_local_balancer_runs_on_every_host_before_kubeadm_with_every_master_behind_it() {
    use crate::testing::HA_LOCAL;
    let inv = inventory(HA_LOCAL);
    let mut configs = Vec::new();
    for host in &inv.hosts {
        let r = render_host(&inv, host, "debian", ("ubuntu", "22.04"));
        assert_eq!(r["prepare/apiserver-balancer-package"], ["haproxy"]);
        assert_eq!(r["services/apiserver-balancer-running"], ["haproxy"]);
        let config = &r["prepare/apiserver-balancer-config"];
        assert_eq!(config[0], "/etc/haproxy/haproxy.cfg");
        configs.push(config[1].clone());
    }
    // One file for every host: each reaches the same masters on 127.0.0.1.
    assert!(configs.windows(2).all(|w| w[0] == w[1]));
    insta::assert_snapshot!("haproxy_cfg_three_masters", configs[0]);
    // Installed and running before kubeadm, in the playbook's order.
    let order: Vec<String> = playbook().all_tasks().map(|(_, t)| t.id.clone()).collect();
    let at = |id: &str| {
        order
            .iter()
            .position(|t| t == id)
            .unwrap_or_else(|| panic!("{id}"))
    };
    for before in [
        "prepare/apiserver-balancer-config",
        "services/apiserver-balancer-running",
    ] {
        for kubeadm in [
            "init/kubeadm-init",
            "join-control-plane/kubeadm-join",
            "join-workers/kubeadm-join",
        ] {
            assert!(at(before) < at(kubeadm), "{before} after {kubeadm}");
        }
    }
    // A removed master leaves every balancer: the file changes, which reloads it.
    let removed = inventory(&HA_LOCAL.replacen(
        "roles = [\"master\"]\n",
        "roles = [\"master\"]\nremove = true\n",
        1,
    ));
    let w1 = render_host(
        &removed,
        removed.host("w1").unwrap(),
        "debian",
        ("ubuntu", "22.04"),
    );
    let config = &w1["prepare/apiserver-balancer-config"][1];
    assert!(!config.contains("server m1 "), "{config}");
    assert!(config.contains("server m2 10.0.0.11:6443\n"), "{config}");
    assert!(config.contains("server m3 10.0.0.12:6443"), "{config}");
}

#[test]
fn an_external_endpoint_gets_no_balancer() {
    let inv = inventory(HA);
    for host in &inv.hosts {
        let r = render_host(&inv, host, "debian", ("ubuntu", "22.04"));
        assert!(
            !r.keys()
                .any(|id| id.contains("balancer") && !id.contains("/handler/")),
            "{}: {:?}",
            host.name,
            r.keys().collect::<Vec<_>>()
        );
    }
}
