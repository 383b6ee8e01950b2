//! The `[packages]` fields that pin the runtime: versions, the files mirror and
//! cri-dockerd's checksums.

use std::path::Path;

use k8sup_inventory::{Arch, Inventory, LoadContext};

fn load(packages: &str) -> Result<Inventory, String> {
    let text = format!(
        "[cluster]\nname = \"lab\"\nkubernetes_version = \"1.30.4\"\nruntime = \"docker\"\n\
         [packages]\n{packages}\n\
         [[hosts]]\nname = \"m1\"\naddress = \"10.0.0.10\"\nroles = [\"master\"]\n"
    );
    let path = Path::new("/test/inventory.toml");
    Inventory::from_bytes(path, text.as_bytes(), &LoadContext::for_file(path))
        .map_err(|e| e.to_string())
}

#[test]
fn docker_needs_nothing_about_cri_dockerd() {
    let inv = load("").expect("valid");
    assert!(inv.needs_cri_dockerd());
    assert!(inv.packages.cri_dockerd.is_none());
    assert!(inv.packages.cri_dockerd_sha256.is_empty());
    assert_eq!(inv.packages.docker_version, None);
}

#[test]
fn runtime_fields_are_read_and_normalised() {
    let sha = "AB".repeat(32);
    let inv = load(&format!(
        "containerd_version = \"1.7.22\"\ndocker_version = \"27.2.1\"\n\
         files_mirror = \"http://files.example.org/k8s/\"\ncri_dockerd_sha256 = \"{sha}\""
    ))
    .expect("valid");
    let p = &inv.packages;
    assert_eq!(p.containerd_version.as_deref(), Some("1.7.22"));
    assert_eq!(p.docker_version.as_deref(), Some("27.2.1"));
    assert_eq!(
        p.files_mirror.as_deref(),
        Some("http://files.example.org/k8s")
    );
    // One value is every arch's, in lower case.
    for arch in [Arch::Amd64, Arch::Arm64] {
        assert_eq!(p.cri_dockerd_sha256[&arch], "ab".repeat(32));
    }
    let per_arch = load(&format!(
        "cri_dockerd_sha256 = {{ arm64 = \"{}\" }}",
        "c".repeat(64)
    ))
    .expect("valid");
    assert_eq!(per_arch.packages.cri_dockerd_sha256.len(), 1);
}

#[test]
fn bad_runtime_fields_are_refused_with_their_names() {
    for (field, message) in [
        (
            "docker_version = \"latest\"",
            "packages.docker_version \"latest\" is not a release version",
        ),
        (
            "files_mirror = \"ftp://x\"",
            "files_mirror \"ftp://x\" must start with https:// or http://",
        ),
        ("cri_dockerd_sha256 = { riscv64 = \"x\" }", "riscv64"),
        ("cri_dockerd_sha256 = 5", "cri_dockerd_sha256"),
    ] {
        let e = load(field).expect_err(field);
        assert!(e.contains(message), "{field}: {e}");
    }
}
