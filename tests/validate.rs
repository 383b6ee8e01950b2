//! `k8sup validate` against the example inventories (each must pass) and a
//! corpus of broken ones (each must fail with the expected message at the
//! expected place). The messages are snapshotted so that a change of wording
//! is a reviewed change.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn k8sup(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_k8sup"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("HOME", "/nonexistent-home")
        .env("USER", "tester")
        .output()
        .expect("k8sup runs")
}

fn toml_files(dir: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    files
}

fn relative(path: &Path) -> String {
    path.strip_prefix(env!("CARGO_MANIFEST_DIR"))
        .expect("inside the repo")
        .display()
        .to_string()
}

#[test]
fn every_example_inventory_is_valid() {
    let examples = toml_files("inventories");
    assert!(examples.len() >= 3, "the examples are in inventories/");
    for path in examples {
        let rel = relative(&path);
        let out = k8sup(&["validate", "-i", &rel]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{rel} is not valid:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains("cluster "), "{rel}: no summary:\n{stdout}");
        assert!(stdout.contains("derived "), "{rel}: no derived values");
    }
}

#[test]
fn every_broken_inventory_is_refused_with_its_message_and_place() {
    let corpus = toml_files("tests/inventories/broken");
    assert!(corpus.len() >= 40, "the corpus has {} files", corpus.len());
    for path in corpus {
        let rel = relative(&path);
        let out = k8sup(&["validate", "-i", &rel]);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(1), "{rel} was accepted:\n{stderr}");
        assert!(
            out.stdout.is_empty(),
            "{rel}: nothing on stdout without --json"
        );
        let text = String::from_utf8_lossy(&std::fs::read(&path).expect("readable")).into_owned();
        for expected in text.lines().filter_map(|l| l.strip_prefix("# expect: ")) {
            assert!(
                stderr.contains(expected),
                "{rel}: expected {expected:?} in:\n{stderr}"
            );
        }
        let name = path
            .file_stem()
            .expect("a name")
            .to_string_lossy()
            .into_owned();
        insta::assert_snapshot!(name, stderr);
    }
}

/// The place of an error is the place of the offending value, not of its table.
#[test]
fn errors_point_at_the_offending_value() {
    let cases = [
        ("tests/inventories/broken/unknown-field-cluster.toml", "6:1"),
        ("tests/inventories/broken/label-injection.toml", "10:19"),
        (
            "tests/inventories/broken/duplicate-internal-address.toml",
            "14:20",
        ),
        ("tests/inventories/broken/not-utf8.toml", "2:12"),
    ];
    for (file, place) in cases {
        let out = k8sup(&["validate", "-i", file]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(&format!("{file}:{place}: error:")),
            "{file}: expected the error at {place}:\n{stderr}"
        );
    }
}

#[test]
fn a_huge_inventory_is_refused_without_parsing() {
    let dir = std::env::temp_dir().join(format!("k8sup-huge-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("huge.toml");
    let mut text = String::from("[cluster]\nname = \"lab\"\n");
    while text.len() <= 5 * 1024 * 1024 {
        text.push_str("# padding padding padding padding padding padding padding padding\n");
    }
    std::fs::write(&path, text).expect("write");
    let out = k8sup(&["validate", "-i", path.to_str().expect("utf-8 path")]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    std::fs::remove_dir_all(&dir).ok();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.contains("k8sup reads inventories of at most 4 MiB"),
        "{stderr}"
    );
}

#[test]
fn a_missing_inventory_is_named() {
    let out = k8sup(&["validate", "-i", "tests/inventories/no-such-file.toml"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.contains("tests/inventories/no-such-file.toml: error: cannot read the inventory")
    );
}

#[test]
fn json_output_lists_every_error_with_its_place() {
    let out = k8sup(&[
        "validate",
        "--json",
        "-i",
        "tests/inventories/broken/many-problems.toml",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    assert_eq!(report["valid"], false);
    let errors = report["errors"].as_array().expect("errors");
    assert_eq!(errors.len(), 5, "{report:#}");
    assert_eq!(errors[0]["line"], 9);
    assert_eq!(errors[0]["column"], 1);
    assert_eq!(errors[0]["help"], "did you mean `pod_cidr`?");
}

#[test]
fn completions_are_generated_for_each_shell() {
    for shell in ["bash", "zsh", "fish"] {
        let out = k8sup(&["completions", shell]);
        assert!(out.status.success(), "{shell}");
        let script = String::from_utf8_lossy(&out.stdout);
        assert!(
            script.contains("validate"),
            "{shell} completion names the commands"
        );
    }
}

#[test]
fn the_seed_style_docker_inventory_names_its_pinned_runtime() {
    let out = k8sup(&[
        "validate",
        "-i",
        "inventories/arm64-docker-flannel.toml",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let derived = &doc["derived"];
    assert_eq!(derived["cri_dockerd_version"], "0.3.15");
    assert_eq!(derived["containerd_version"], "1.7.23");
    assert_eq!(derived["docker_version"], "27.3.1");
}
