//! The engine's modules import one another without a circle: a test reads the
//! sources (`crate::x` paths, and the types the crate root re-exports) and fails
//! on any module that reaches itself.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Module -> the modules its code (tests left out) names.
fn imports() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let lib = std::fs::read_to_string(src.join("lib.rs")).unwrap();
    // `pub use host::{Artifact, ...};` -> Artifact is host's.
    let mut owner: BTreeMap<String, String> = BTreeMap::new();
    for line in lib.lines() {
        let Some(rest) = line.strip_prefix("pub use ") else {
            continue;
        };
        let Some((module, names)) = rest.split_once("::") else {
            continue;
        };
        for name in names.trim_matches(|c| "{};".contains(c)).split(',') {
            owner.insert(name.trim().to_string(), module.to_string());
        }
    }
    // A module is a file of src/ or a folder of it (kinds/, engine/): what a
    // folder's files import is its module's.
    let mut files = Vec::new();
    let mut dirs = vec![src.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            if entry.path().is_dir() {
                dirs.push(entry.path());
            } else {
                files.push(entry.path());
            }
        }
    }
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for path in files
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "rs"))
    {
        let rel = path
            .strip_prefix(&src)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let module = match rel.split_once('/') {
            Some((dir, _)) => dir.to_string(),
            None => rel.trim_end_matches(".rs").to_string(),
        };
        if ["lib", "tests", "testing", "layering"].contains(&module.as_str()) {
            continue;
        }
        let text = std::fs::read_to_string(path).unwrap();
        let code = text.split("#[cfg(test)]\nmod tests").next().unwrap_or("");
        let code: String = code
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        let uses = graph.entry(module.clone()).or_default();
        for (at, _) in code.match_indices("crate::") {
            let name: String = code[at + 7..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            let target = owner.get(&name).cloned().unwrap_or(name);
            if target != module {
                uses.insert(target);
            }
        }
    }
    graph
}

#[test]
fn no_module_imports_itself_through_others() {
    let graph = imports();
    assert!(
        graph["encoding"].is_empty(),
        "encoding is a leaf: {:?}",
        graph["encoding"]
    );
    assert!(
        graph["kinds"].contains("script") && graph["engine"].contains("program"),
        "the sources were read: {graph:?}"
    );
    for start in graph.keys() {
        let mut seen = BTreeSet::new();
        let mut todo: Vec<&String> = graph[start].iter().collect();
        while let Some(module) = todo.pop() {
            assert!(
                module != start,
                "{start} imports itself through others: {graph:#?}"
            );
            if seen.insert(module.clone()) {
                todo.extend(graph.get(module).into_iter().flatten());
            }
        }
    }
}
