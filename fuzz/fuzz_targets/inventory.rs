//! Any bytes given to the inventory loader give an inventory or errors, never a panic,
//! and every error's place lies inside the input.
#![no_main]

use std::path::Path;

use k8sup_inventory::{Inventory, LoadContext};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let ctx = LoadContext {
        home: "/nonexistent-home".into(),
        local_user: "fuzz".into(),
        base_dir: "/nonexistent-dir".into(),
    };
    if let Err(error) = Inventory::from_bytes(Path::new("fuzz.toml"), data, &ctx) {
        assert!(!error.diagnostics().is_empty());
        for d in error.diagnostics() {
            if let Some(span) = &d.span {
                assert!(span.start <= data.len(), "a span past the input's end");
            }
            let _ = error.location(d);
        }
        let _ = error.to_string();
    }
});
