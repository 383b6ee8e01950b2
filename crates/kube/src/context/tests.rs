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
fn without_a_cri_dockerd_source_the_pinned_release_and_its_checksum_are_used() {
    let inv = inventory(&SOLO_DOCKER.replace(
        "cri_dockerd = \"https://example.org/cri-dockerd-0.3.15.{arch}.tgz\"",
        "",
    ));
    let arm = json!({ "arch": "aarch64", "os": { "id": "ubuntu", "version_id": "22.04" } });
    let solo = inventory(
        &SOLO_DOCKER
            .replace(
                "cri_dockerd = \"https://example.org/cri-dockerd-0.3.15.{arch}.tgz\"",
                "",
            )
            .replace("arch = \"amd64\"\n", ""),
    );
    let c = template_context(&solo, solo.first_master(), &arm, None).unwrap();
    // 1.31 pins cri-dockerd 0.3.16; the arm64 archive's published sha256.
    assert_eq!(
        c["runtime"]["cri_dockerd_source"],
        "https://github.com/Mirantis/cri-dockerd/releases/download/v0.3.16/cri-dockerd-0.3.16.arm64.tgz"
    );
    assert_eq!(
        c["runtime"]["cri_dockerd_sha256"],
        "0ab930b6f7ab87697cd94c954d01e19fdd5b5d65810662effb957c5db49a55d4"
    );
    let c = template_context(&inv, inv.first_master(), &ubuntu(), None).unwrap();
    assert_eq!(
        c["runtime"]["cri_dockerd_sha256"],
        "cc7f181ce850130dc375515c54cd8a27e1e862252abc5b7eade7b4a03ddabd8e"
    );

    // A files mirror serves the same path under <mirror>/github.com.
    let mirrored = inventory(&SOLO_DOCKER.replace(
        "cri_dockerd = \"https://example.org/cri-dockerd-0.3.15.{arch}.tgz\"",
        "files_mirror = \"http://files.example.org/k8s/\"",
    ));
    let c = template_context(&mirrored, mirrored.first_master(), &ubuntu(), None).unwrap();
    assert_eq!(
        c["runtime"]["cri_dockerd_source"],
        "http://files.example.org/k8s/github.com/Mirantis/cri-dockerd/releases/download/v0.3.16/cri-dockerd-0.3.16.amd64.tgz"
    );

    // A source of the user's own is checked only against the user's checksum.
    let own = inventory(&SOLO_DOCKER.replace(
        "[packages]\n",
        &format!(
            "[packages]\ncri_dockerd_sha256 = {{ amd64 = \"{}\" }}\n",
            "AB".repeat(32)
        ),
    ));
    let c = template_context(&own, own.first_master(), &ubuntu(), None).unwrap();
    assert_eq!(c["runtime"]["cri_dockerd_sha256"], "ab".repeat(32));
    let unchecked =
        template_context(&inventory(SOLO_DOCKER), own.first_master(), &ubuntu(), None).unwrap();
    assert_eq!(unchecked["runtime"]["cri_dockerd_sha256"], "");
}

#[test]
fn runtime_packages_are_pinned_per_minor_with_the_family_s_version_form() {
    let inv = inventory(SOLO_DOCKER);
    let apt = template_context(&inv, inv.first_master(), &ubuntu(), None).unwrap();
    assert_eq!(apt["runtime"]["docker_version_glob"], "5:27.4.1-*");
    assert_eq!(apt["runtime"]["containerd_version_glob"], "1.7.24-*");
    let rocky = json!({ "family": "redhat", "os": { "id": "rocky", "version_id": "9.4" } });
    let dnf = template_context(&inv, inv.first_master(), &rocky, None).unwrap();
    assert_eq!(dnf["runtime"]["docker_version_glob"], "27.4.1-*");
    assert_eq!(dnf["runtime"]["containerd_version_glob"], "1.7.24-*");

    // CentOS 7: Docker's packages for it stop at docker-ce 26.1 and containerd.io 1.6.
    let centos7 = json!({ "family": "redhat", "os": { "id": "centos", "version_id": "7" } });
    let el7 = template_context(&inv, inv.first_master(), &centos7, None).unwrap();
    assert_eq!(el7["runtime"]["docker_version_glob"], "26.1.4-*");
    assert_eq!(el7["runtime"]["containerd_version_glob"], "1.6.33-*");

    let own = inventory(&SOLO_DOCKER.replace(
        "[packages]\n",
        "[packages]\ncontainerd_version = \"1.7.20\"\ndocker_version = \"27.0.3\"\n",
    ));
    let c = template_context(&own, own.first_master(), &ubuntu(), None).unwrap();
    assert_eq!(c["runtime"]["docker_version"], "27.0.3");
    assert_eq!(c["runtime"]["containerd_version_glob"], "1.7.20-*");
}
