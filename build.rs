//! Embeds the playbooks and templates in the binary: each file under
//! `playbooks/` and `templates/` (but their `test/` folders, which only the
//! tests use) becomes a `(name, text)` pair in `$OUT_DIR/embedded.rs`.

use std::fmt::Write as _;
use std::path::Path;

fn main() {
    let out = std::env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    let mut code = String::new();
    for (dir, constant) in [("playbooks", "PLAYBOOKS"), ("templates", "TEMPLATES")] {
        println!("cargo:rerun-if-changed={dir}");
        let mut files = Vec::new();
        collect(Path::new(dir), Path::new(dir), &mut files);
        files.sort();
        let _ = writeln!(code, "pub const {constant}: &[(&str, &str)] = &[");
        for (name, path) in files {
            let absolute = std::fs::canonicalize(&path).expect("embedded file exists");
            let _ = writeln!(
                code,
                "    ({name:?}, include_str!({:?})),",
                absolute.display()
            );
        }
        let _ = writeln!(code, "];");
    }
    std::fs::write(Path::new(&out).join("embedded.rs"), code).expect("write embedded.rs");
}

fn collect(root: &Path, dir: &Path, files: &mut Vec<(String, std::path::PathBuf)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        println!("cargo:rerun-if-changed={}", path.display());
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n == "test") {
                continue;
            }
            collect(root, &path, files);
        } else if let Ok(rel) = path.strip_prefix(root) {
            files.push((rel.to_string_lossy().replace('\\', "/"), path.clone()));
        }
    }
}
