//! Paths in an inventory are relative to the inventory's own directory.

use k8sup_inventory::{Inventory, PackageSource};

#[test]
fn a_relative_cri_dockerd_archive_is_found_next_to_the_inventory() {
    let dir = std::env::temp_dir().join(format!("k8sup-paths-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("cri-dockerd.amd64.tgz"), b"archive").unwrap();
    let inv = dir.join("inventory.toml");
    std::fs::write(
        &inv,
        r#"
[cluster]
name = "lab"
kubernetes_version = "1.30.4"
runtime = "docker"

[packages]
cri_dockerd = "cri-dockerd.{arch}.tgz"

[[hosts]]
name = "m1"
address = "10.0.0.10"
roles = ["master"]
arch = "amd64"
"#,
    )
    .unwrap();
    let loaded = Inventory::load(&inv).unwrap_or_else(|e| panic!("{e}"));
    std::fs::remove_dir_all(&dir).ok();
    assert_eq!(loaded.packages.source, PackageSource::Repo);
    assert_eq!(
        loaded.packages.cri_dockerd.as_deref(),
        Some(dir.join("cri-dockerd.{arch}.tgz").to_str().unwrap())
    );
}
