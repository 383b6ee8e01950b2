use serde_json::json;

use super::*;
use crate::testing::{inventory, HA, SOLO_DOCKER};

fn ubuntu() -> Value {
    json!({ "os": { "id": "ubuntu", "version_id": "22.04" } })
}

#[test]
fn derived_values_are_in_the_context() {
    let inv = inventory(HA);
    let w1 = inv.host("w1").unwrap();
    let c = template_context(&inv, w1, &ubuntu(), Some("manifest")).unwrap();
    assert_eq!(c["derived"]["cluster_dns"], "10.112.0.10");
    assert_eq!(
        c["derived"]["pause_image"],
        "registry.aliyuncs.com/google_containers/pause:3.9"
    );
    assert_eq!(c["host"]["internal_address"], "10.0.0.20");
    assert_eq!(c["host"]["is_first_master"], false);
    assert_eq!(
        c["runtime"]["socket"],
        "unix:///run/containerd/containerd.sock"
    );
    assert_eq!(c["os"]["codename"], "jammy");
    // Only the first master applies the manifest and runs init.
    assert_eq!(c["cni"]["manifest"], "");
    assert_eq!(c["kubeadm"]["init_config"], "");
    assert!(c["kubeadm"]["join_config"]
        .as_str()
        .unwrap()
        .contains(TOKEN_PLACEHOLDER));
    let m1 = template_context(&inv, inv.first_master(), &ubuntu(), Some("manifest")).unwrap();
    assert_eq!(m1["cni"]["manifest"], "manifest");
    assert_eq!(m1["kubeadm"]["join_config"], "");
    // Without a manifest given: the built-in flannel one, patched.
    let m1 = template_context(&inv, inv.first_master(), &ubuntu(), None).unwrap();
    assert!(m1["cni"]["manifest"]
        .as_str()
        .unwrap()
        .contains("\"Network\": \"10.244.0.0/16\""));
    let calico = inventory(&HA.replace(
        "[cluster]\n",
        "[cluster]\ncni = \"calico\"\ncni_manifest = \"https://example.org/calico.yaml\"\n",
    ));
    assert!(matches!(
        template_context(&calico, calico.first_master(), &ubuntu(), None),
        Err(KubeError::CalicoManifestNeeded { .. })
    ));
    assert!(template_context(&calico, calico.host("w1").unwrap(), &ubuntu(), None).is_ok());
}

#[test]
fn facts_without_os_release_are_refused() {
    let inv = inventory(HA);
    let e = template_context(&inv, inv.first_master(), &json!({}), None).unwrap_err();
    assert_eq!(e.to_string(), "host m1: facts lack id");
}

#[test]
fn docker_hosts_get_cri_dockerd_for_their_arch() {
    let inv = inventory(SOLO_DOCKER);
    let c = template_context(
        &inv,
        inv.first_master(),
        &json!({ "os": { "id": "debian", "version_id": "12" } }),
        None,
    )
    .unwrap();
    assert_eq!(c["runtime"]["socket"], "unix:///run/cri-dockerd.sock");
    assert_eq!(c["runtime"]["needs_cri_dockerd"], true);
    assert_eq!(
        c["runtime"]["cri_dockerd_source"],
        "https://example.org/cri-dockerd-0.3.15.amd64.tgz"
    );
    assert_eq!(c["os"]["codename"], "bookworm");
    assert_eq!(
        c["packages"]["docker_apt_url"],
        "https://download.docker.com/linux/debian"
    );
}

#[test]
fn labels_and_taints_are_quoted_words_on_the_command_line() {
    let inv = inventory(&HA.replace(
        "taints = [\"dedicated=gpu:NoSchedule\"]",
        "taints = [\"dedicated=gpu:NoSchedule\", \"spot:NoExecute\"]\n\
         labels = { \"node-role.kubernetes.io/worker\" = \"\", disktype = \"ssd\" }",
    ));
    let c = template_context(&inv, inv.first_master(), &ubuntu(), None).unwrap();
    let script = c["nodes"]["labels_script"].as_str().unwrap();
    insta::assert_snapshot!("labels_script", script);
    let check = c["nodes"]["labels_check"].as_str().unwrap();
    insta::assert_snapshot!("labels_check", check);
}

#[test]
fn no_labels_no_script() {
    let inv = inventory(&HA.replace("taints = [\"dedicated=gpu:NoSchedule\"]", ""));
    let c = template_context(&inv, inv.first_master(), &ubuntu(), None).unwrap();
    assert_eq!(c["nodes"]["labels_check"], "true");
}

#[test]
fn cri_dockerd_takes_the_arch_from_the_facts_when_undeclared() {
    let inv = inventory(&SOLO_DOCKER.replace("arch = \"amd64\"\n", ""));
    let facts = json!({ "arch": "arm64", "os": { "id": "ubuntu", "version_id": "24.04" } });
    let c = template_context(&inv, inv.first_master(), &facts, None).unwrap();
    assert_eq!(
        c["runtime"]["cri_dockerd_source"],
        "https://example.org/cri-dockerd-0.3.15.arm64.tgz"
    );
    assert_eq!(c["host"]["arch"], "arm64");
    let no_arch = json!({ "os": { "id": "ubuntu", "version_id": "24.04" } });
    let e = template_context(&inv, inv.first_master(), &no_arch, None).unwrap_err();
    assert_eq!(e.to_string(), "host solo: facts lack arch");
}

#[test]
fn each_distribution_gets_its_repository_form_and_docker_release() {
    let inv = inventory(HA);
    let w1 = inv.host("w1").unwrap();
    let os = |id: &str, version: &str| {
        let facts = json!({ "os": { "id": id, "version_id": version } });
        let c = template_context(&inv, w1, &facts, Some("m")).unwrap();
        (
            c["os"]["codename"].as_str().unwrap().to_string(),
            c["os"]["apt_deb822"].as_bool().unwrap(),
            c["packages"]["docker_rpm_url"]
                .as_str()
                .unwrap()
                .to_string(),
        )
    };
    // deb822 where the release writes its own sources that way.
    assert_eq!(os("ubuntu", "22.04").0, "jammy");
    assert!(!os("ubuntu", "22.04").1);
    assert_eq!(os("ubuntu", "24.04").0, "noble");
    assert!(os("ubuntu", "24.04").1);
    assert_eq!(os("ubuntu", "26.04").0, "resolute");
    assert!(os("ubuntu", "26.04").1);
    assert!(!os("debian", "12").1);
    assert_eq!(os("debian", "13").0, "trixie");
    assert!(os("debian", "13").1);
    // The EL family's $releasever names Docker's release; openEuler's and Kylin's do not.
    let docker = "https://download.docker.com/linux/centos";
    assert_eq!(
        os("rocky", "10.0").2,
        format!("{docker}/$releasever/$basearch/stable")
    );
    assert_eq!(
        os("openEuler", "24.03").2,
        format!("{docker}/9/$basearch/stable")
    );
    assert_eq!(
        os("openEuler", "22.03").2,
        format!("{docker}/9/$basearch/stable")
    );
    assert_eq!(os("kylin", "V10").2, format!("{docker}/8/$basearch/stable"));
}
