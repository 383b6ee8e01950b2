//! `k8sup import kubespray HOSTS [--group-vars DIR] [-o FILE]`: an inventory.toml from
//! a Kubespray inventory (the work is in the k8sup-import crate), checked as
//! `k8sup validate` checks an inventory, written without overwriting anything.

use std::path::PathBuf;

use k8sup_inventory::{Inventory, LoadContext};

use crate::args::{ImportKubesprayArgs, OutputArgs};
use crate::exit;

pub fn kubespray(args: &ImportKubesprayArgs, output: &OutputArgs) -> u8 {
    let group_vars = args
        .group_vars
        .clone()
        .or_else(|| k8sup_import::default_group_vars(&args.hosts));
    let name = args
        .name
        .clone()
        .unwrap_or_else(|| k8sup_import::cluster_name(&args.hosts));
    let imported = match k8sup_import::kubespray(&args.hosts, group_vars.as_deref(), &name) {
        Ok(imported) => imported,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::ERROR;
        }
    };
    // The result is checked as `k8sup validate` would, before anyone relies on it.
    let out_path = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("inventory.toml"));
    let checked = Inventory::from_bytes(
        &out_path,
        imported.toml.as_bytes(),
        &LoadContext::for_file(&out_path),
    );
    match &args.out {
        None => print!("{}", imported.toml),
        Some(path) => {
            let written = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(path)
                .and_then(|mut f| std::io::Write::write_all(&mut f, imported.toml.as_bytes()));
            if let Err(e) = written {
                eprintln!("error: cannot write {}: {e}", path.display());
                return exit::ERROR;
            }
            if !output.quiet {
                println!(
                    "{} written; {} setting(s) not carried over (listed at its end):",
                    path.display(),
                    imported.not_carried.len()
                );
                for line in &imported.not_carried {
                    println!("  {line}");
                }
            }
        }
    }
    if let Err(e) = checked {
        eprintln!("{e}");
        eprintln!("error: the imported inventory needs the changes above before k8sup can use it");
        return exit::ERROR;
    }
    exit::OK
}
