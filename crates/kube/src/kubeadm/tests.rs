use super::*;
use crate::testing::{inventory, HA, SOLO_DOCKER};

fn docs(text: &str) -> Vec<serde_norway::Value> {
    text.split("---\n")
        .map(|d| serde_norway::from_str(d).expect("valid YAML"))
        .collect()
}

fn get<'a>(doc: &'a serde_norway::Value, path: &str) -> &'a serde_norway::Value {
    path.split('.')
        .fold(doc, |v, key| match key.parse::<usize>() {
            Ok(i) => &v[i],
            Err(_) => &v[key],
        })
}

fn str_at<'a>(doc: &'a serde_norway::Value, path: &str) -> &'a str {
    get(doc, path)
        .as_str()
        .unwrap_or_else(|| panic!("{path} is not a string in {doc:?}"))
}

#[test]
fn init_config_of_an_ha_cluster_on_v1beta3() {
    let inv = inventory(HA);
    let text = init_config(&inv, inv.first_master()).unwrap();
    insta::assert_snapshot!("init_ha_v1beta3", text);
}

#[test]
fn init_config_of_a_docker_single_host_on_v1beta4() {
    let inv = inventory(SOLO_DOCKER);
    let text = init_config(&inv, inv.first_master()).unwrap();
    insta::assert_snapshot!("init_solo_docker_v1beta4", text);
}

#[test]
fn join_configs_carry_placeholders_never_secrets() {
    let inv = inventory(HA);
    let worker = join_config(&inv, inv.host("w1").unwrap()).unwrap();
    insta::assert_snapshot!("join_worker_v1beta3", worker);
    let master = join_config(&inv, inv.host("m2").unwrap()).unwrap();
    insta::assert_snapshot!("join_control_plane_v1beta3", master);
    let w = &docs(&worker)[0];
    assert_eq!(
        str_at(w, "discovery.bootstrapToken.token"),
        TOKEN_PLACEHOLDER
    );
    assert_eq!(
        str_at(w, "discovery.bootstrapToken.caCertHashes.0"),
        CA_CERT_HASH_PLACEHOLDER
    );
    assert!(get(w, "controlPlane").is_null());
    let m = &docs(&master)[0];
    assert_eq!(
        str_at(m, "controlPlane.certificateKey"),
        CERTIFICATE_KEY_PLACEHOLDER
    );
    assert_eq!(
        str_at(m, "controlPlane.localAPIEndpoint.advertiseAddress"),
        "10.0.0.11"
    );
    assert_eq!(
        str_at(m, "discovery.bootstrapToken.apiServerEndpoint"),
        "lb.example.org:8443"
    );
}

#[test]
fn advertise_address_and_node_ip_are_the_internal_address() {
    // address is the public NIC; internal_address the private one: only the
    // latter may appear as the API server's or the kubelet's address.
    let inv = inventory(HA);
    let init = docs(&init_config(&inv, inv.first_master()).unwrap());
    assert_eq!(
        str_at(&init[0], "localAPIEndpoint.advertiseAddress"),
        "10.0.0.10"
    );
    assert_eq!(
        str_at(&init[0], "nodeRegistration.kubeletExtraArgs.node-ip"),
        "10.0.0.10"
    );
    let join = docs(&join_config(&inv, inv.host("w1").unwrap()).unwrap());
    assert_eq!(
        str_at(&join[0], "nodeRegistration.kubeletExtraArgs.node-ip"),
        "10.0.0.20"
    );
    for text in [
        init_config(&inv, inv.first_master()).unwrap(),
        join_config(&inv, inv.host("w1").unwrap()).unwrap(),
    ] {
        assert!(!text.contains("172.120.194"), "{text}");
    }
}

#[test]
fn cluster_dns_is_the_tenth_address_of_the_service_cidr() {
    let inv = inventory(HA);
    let init = docs(&init_config(&inv, inv.first_master()).unwrap());
    assert_eq!(str_at(&init[2], "kind"), "KubeletConfiguration");
    assert_eq!(str_at(&init[2], "clusterDNS.0"), "10.112.0.10");
    assert_eq!(str_at(&init[2], "clusterDomain"), "corp.local");
    assert_eq!(
        str_at(&init[1], "networking.serviceSubnet"),
        "10.112.0.0/16"
    );
    assert_eq!(str_at(&init[1], "networking.dnsDomain"), "corp.local");
}

#[test]
fn cert_sans_hold_extra_sans_the_endpoint_and_the_masters() {
    let inv = inventory(HA);
    assert_eq!(
        cert_sans(&inv),
        [
            "119.254.111.36",
            "k8s.example.org",
            "lb.example.org",
            "10.0.0.10",
            "10.0.0.11"
        ]
    );
    let init = docs(&init_config(&inv, inv.first_master()).unwrap());
    assert_eq!(str_at(&init[1], "apiServer.certSANs.0"), "119.254.111.36");
    assert_eq!(
        str_at(&init[1], "controlPlaneEndpoint"),
        "lb.example.org:8443"
    );
}

#[test]
fn the_pause_image_follows_the_image_repository_in_the_kubelet() {
    let inv = inventory(HA);
    let init = docs(&init_config(&inv, inv.first_master()).unwrap());
    assert_eq!(
        str_at(
            &init[0],
            "nodeRegistration.kubeletExtraArgs.pod-infra-container-image"
        ),
        "registry.aliyuncs.com/google_containers/pause:3.9"
    );
    assert_eq!(
        str_at(&init[1], "imageRepository"),
        "registry.aliyuncs.com/google_containers"
    );
}

#[test]
fn kubelet_cgroup_driver_is_the_inventorys() {
    let solo = inventory(SOLO_DOCKER);
    let init = docs(&init_config(&solo, solo.first_master()).unwrap());
    assert_eq!(str_at(&init[2], "cgroupDriver"), "cgroupfs");
    let ha = inventory(HA);
    let init = docs(&init_config(&ha, ha.first_master()).unwrap());
    assert_eq!(str_at(&init[2], "cgroupDriver"), "systemd");
}

#[test]
fn extra_args_are_a_map_in_v1beta3_and_a_list_in_v1beta4() {
    let ha = inventory(HA);
    let v3 = docs(&init_config(&ha, ha.first_master()).unwrap());
    assert_eq!(str_at(&v3[0], "apiVersion"), "kubeadm.k8s.io/v1beta3");
    assert_eq!(str_at(&v3[1], "apiServer.extraArgs.audit-log-maxage"), "30");
    assert_eq!(
        str_at(&v3[1], "etcd.local.extraArgs.quota-backend-bytes"),
        "8589934592"
    );
    assert_eq!(
        str_at(&v3[0], "nodeRegistration.kubeletExtraArgs.max-pods"),
        "200"
    );

    let solo = inventory(SOLO_DOCKER);
    let v4 = docs(&init_config(&solo, solo.first_master()).unwrap());
    assert_eq!(str_at(&v4[0], "apiVersion"), "kubeadm.k8s.io/v1beta4");
    let args = get(&v4[1], "apiServer.extraArgs")
        .as_sequence()
        .expect("a list");
    assert_eq!(str_at(&args[0], "name"), "audit-log-maxage");
    assert_eq!(str_at(&args[0], "value"), "30");
    assert_eq!(str_at(&args[1], "value"), "NodeRestriction,PodNodeSelector");
    assert!(get(&v4[0], "nodeRegistration.kubeletExtraArgs").is_sequence());
}

#[test]
fn cri_socket_follows_the_runtime() {
    let solo = inventory(SOLO_DOCKER);
    let init = docs(&init_config(&solo, solo.first_master()).unwrap());
    assert_eq!(
        str_at(&init[0], "nodeRegistration.criSocket"),
        "unix:///run/cri-dockerd.sock"
    );
    let ha = inventory(HA);
    let join = docs(&join_config(&ha, ha.host("w1").unwrap()).unwrap());
    assert_eq!(
        str_at(&join[0], "nodeRegistration.criSocket"),
        "unix:///run/containerd/containerd.sock"
    );
}

#[test]
fn taints_keep_the_control_plane_taint_only_on_dedicated_masters() {
    let ha = inventory(HA);
    let m1 = docs(&init_config(&ha, ha.first_master()).unwrap());
    assert_eq!(
        str_at(&m1[0], "nodeRegistration.taints.0.key"),
        CONTROL_PLANE_TAINT
    );
    let w1 = docs(&join_config(&ha, ha.host("w1").unwrap()).unwrap());
    assert_eq!(str_at(&w1[0], "nodeRegistration.taints.0.key"), "dedicated");
    assert_eq!(str_at(&w1[0], "nodeRegistration.taints.0.value"), "gpu");
    // master + node: an explicit empty list, so that kubeadm does not taint it.
    let solo = inventory(SOLO_DOCKER);
    let s = docs(&init_config(&solo, solo.first_master()).unwrap());
    assert_eq!(
        get(&s[0], "nodeRegistration.taints")
            .as_sequence()
            .map(Vec::len),
        Some(0)
    );
}

#[test]
fn kube_proxy_flags_become_configuration_fields() {
    let solo = inventory(SOLO_DOCKER);
    let d = docs(&init_config(&solo, solo.first_master()).unwrap());
    assert_eq!(str_at(&d[3], "kind"), "KubeProxyConfiguration");
    assert_eq!(str_at(&d[3], "mode"), "ipvs");
    assert_eq!(get(&d[3], "ipvs.strictARP").as_bool(), Some(true));
    assert_eq!(str_at(&d[3], "clusterCIDR"), "10.244.0.0/16");

    // Other flags and ill-typed values never get here: the inventory refuses them
    // (its tests), so that `validate` knows them.
}

#[test]
fn the_pod_infra_flag_stops_where_the_kubelet_dropped_it() {
    let v = |s| KubeVersion::parse(s).unwrap();
    assert!(kubelet_takes_pod_infra_flag(&v("1.34")));
    assert!(kubelet_takes_pod_infra_flag(&v("1.24")));
}

#[test]
fn labels_a_kubelet_may_set_are_registration_labels() {
    assert!(kubelet_may_set_label("disktype"));
    assert!(kubelet_may_set_label("example.org/gpu"));
    assert!(kubelet_may_set_label("node.kubernetes.io/instance-type"));
    assert!(!kubelet_may_set_label("node-role.kubernetes.io/worker"));
    assert!(!kubelet_may_set_label("k8s.io/x"));
    let inv = inventory(&HA.replace(
        "taints = [\"dedicated=gpu:NoSchedule\"]",
        "labels = { disktype = \"ssd\", \"node-role.kubernetes.io/worker\" = \"\" }",
    ));
    let args = kubelet_args(&inv, inv.host("w1").unwrap());
    assert_eq!(args["node-labels"], "disktype=ssd");
}

#[test]
fn a_local_balancer_is_the_endpoint_of_every_host_and_in_the_certificate() {
    let inv = crate::testing::inventory(crate::testing::HA_LOCAL);
    let text = init_config(&inv, inv.first_master()).unwrap();
    insta::assert_snapshot!("init_ha_local_balancer_v1beta4", text);
    let cluster = &docs(&text)[1];
    assert_eq!(str_at(cluster, "controlPlaneEndpoint"), "127.0.0.1:7443");
    assert_eq!(
        cert_sans(&inv),
        [
            "127.0.0.1",
            "localhost",
            "10.0.0.10",
            "10.0.0.11",
            "10.0.0.12",
            "172.120.194.196",
            "172.120.194.197",
            "172.120.194.199"
        ]
    );
    for name in ["m2", "w1"] {
        let join = join_config(&inv, inv.host(name).unwrap()).unwrap();
        assert_eq!(
            str_at(
                &docs(&join)[0],
                "discovery.bootstrapToken.apiServerEndpoint"
            ),
            "127.0.0.1:7443",
            "{name}"
        );
    }
}
