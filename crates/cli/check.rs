//! `k8sup check`: every preflight problem on every host, at once. Exit 1 if any.

use k8sup_ops::check::check;
use serde_json::json;

use crate::args::{HostsArgs, OutputArgs};
use crate::{exit, hosts};

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
    let report = hosts::block_on(check(&inv, &selected, &options));
    let failing: Vec<&str> = report
        .hosts
        .iter()
        .map(|(name, _)| name.as_str())
        .filter(|name| report.findings.iter().any(|f| f.host == *name))
        .collect();
    if output.json {
        let hosts: Vec<serde_json::Value> = report
            .hosts
            .iter()
            .map(|(name, _)| {
                let findings: Vec<_> = report
                    .findings
                    .iter()
                    .filter(|f| f.host == *name)
                    .map(|f| json!({ "check": f.check.as_str(), "message": f.message }))
                    .collect();
                json!({ "name": name, "passed": findings.is_empty(), "findings": findings })
            })
            .collect();
        println!("{}", json!({ "passed": report.passed(), "hosts": hosts }));
    } else {
        let width = report.hosts.iter().map(|(n, _)| n.len()).max().unwrap_or(0);
        for (name, _) in &report.hosts {
            let mine: Vec<_> = report.findings.iter().filter(|f| f.host == *name).collect();
            if mine.is_empty() {
                if !output.quiet {
                    println!("{name:width$}  ok");
                }
                continue;
            }
            for (i, f) in mine.iter().enumerate() {
                let label = if i == 0 { name.as_str() } else { "" };
                println!("{label:width$}  FAIL  {}: {}", f.check.as_str(), f.message);
            }
        }
        if report.passed() {
            println!(
                "all {} hosts passed the preflight checks",
                report.hosts.len()
            );
        } else {
            println!(
                "{} of {} hosts failed the preflight checks: {}",
                failing.len(),
                report.hosts.len(),
                failing.join(", ")
            );
        }
    }
    if report.passed() {
        exit::OK
    } else {
        exit::ERROR
    }
}
