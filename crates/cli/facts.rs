//! `k8sup facts`: what k8sup learns about every host, as a table or JSON.

use k8sup_facts::HostFacts;
use k8sup_ops::facts::{gather, Outcome};
use serde_json::json;

use crate::args::{HostsArgs, OutputArgs};
use crate::{exit, hosts, table};

pub fn run(args: &HostsArgs, output: &OutputArgs) -> u8 {
    let Some(inv) = hosts::load(args) else {
        return exit::ERROR;
    };
    let selected = match hosts::selected(&inv, args) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::ERROR;
        }
    };
    let options = hosts::connect_options(args);
    let reports = hosts::block_on(gather(&inv, &selected, &options));
    let failed = reports
        .iter()
        .filter(|r| matches!(r.outcome, Outcome::Failed(_)))
        .count();
    if output.json {
        let hosts: Vec<serde_json::Value> = reports
            .iter()
            .map(|r| match &r.outcome {
                Outcome::Facts {
                    facts,
                    sudo_problem,
                } => json!({
                    "name": r.host, "facts": facts,
                    "sudo_problem": sudo_problem.as_ref().map(ToString::to_string),
                }),
                Outcome::Failed(e) => json!({ "name": r.host, "error": e.to_string() }),
            })
            .collect();
        println!("{}", json!({ "hosts": hosts }));
    } else {
        let mut rows = vec![[
            "HOST", "ARCH", "OS", "KERNEL", "CPUS", "MEMORY", "SWAP", "CGROUP", "PKG", "RUNTIME",
            "KUBELET", "STATE",
        ]
        .map(String::from)
        .to_vec()];
        for r in &reports {
            if let Outcome::Facts { facts, .. } = &r.outcome {
                rows.push(row(&r.host, facts));
            }
        }
        print!("{}", table::render(&rows));
        for r in &reports {
            match &r.outcome {
                Outcome::Failed(e) => eprintln!("error: {e}"),
                Outcome::Facts {
                    sudo_problem: Some(p),
                    ..
                } => eprintln!("warning: {p} (facts gathered without sudo)"),
                _ => {}
            }
        }
    }
    if failed > 0 {
        eprintln!("{failed} of {} hosts did not answer", reports.len());
        exit::ERROR
    } else {
        exit::OK
    }
}

fn row(host: &str, f: &HostFacts) -> Vec<String> {
    let runtime = match (&f.installed.containerd, &f.installed.docker) {
        (Some(c), Some(d)) => format!("containerd {c}, docker {d}"),
        (Some(c), None) => format!("containerd {c}"),
        (None, Some(d)) => format!("docker {d}"),
        (None, None) => "-".into(),
    };
    vec![
        host.to_string(),
        f.arch.map_or(f.machine.clone(), |a| a.to_string()),
        format!("{} {}", f.os.id, f.os.version_id),
        f.kernel.clone(),
        f.cpus.to_string(),
        format!("{} MiB", f.memory_mib),
        if f.swap_mib == 0 {
            "off".into()
        } else {
            format!("{} MiB", f.swap_mib)
        },
        format!("v{}", f.cgroup_version),
        f.package_manager.clone().unwrap_or_else(|| "-".into()),
        runtime,
        f.installed.kubelet.clone().unwrap_or_else(|| "-".into()),
        if f.k8sup_state_bytes.is_some() {
            "yes".into()
        } else {
            "-".into()
        },
    ]
}
