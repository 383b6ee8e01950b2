//! `k8sup check`: facts from every host, then every preflight problem at once.

use k8sup_facts::{preflight, CheckKind, Finding, HostFacts};
use k8sup_inventory::{Host, Inventory};

use crate::connect::ConnectOptions;
use crate::facts::{gather, Outcome};

/// The findings of a check run, and the facts they came from.
#[derive(Debug)]
pub struct CheckReport {
    /// Hosts in inventory order, with their facts when they answered.
    pub hosts: Vec<(String, Option<HostFacts>)>,
    /// Every problem, sorted by host and check.
    pub findings: Vec<Finding>,
}

impl CheckReport {
    /// Whether every host passed every check.
    pub fn passed(&self) -> bool {
        self.findings.is_empty()
    }
}

/// Connects to `hosts`, gathers facts and runs the preflight checks. Changes nothing.
pub async fn check(
    inventory: &Inventory,
    hosts: &[&Host],
    options: &ConnectOptions,
) -> CheckReport {
    let reports = gather(inventory, hosts, options).await;
    let mut findings = Vec::new();
    let mut answered: Vec<(&Host, HostFacts)> = Vec::new();
    let mut table = Vec::new();
    for (host, report) in hosts.iter().zip(reports) {
        match report.outcome {
            Outcome::Facts {
                facts,
                sudo_problem,
            } => {
                if let Some(problem) = sudo_problem {
                    findings.push(Finding {
                        host: host.name.clone(),
                        check: CheckKind::Sudo,
                        message: problem.to_string(),
                    });
                }
                table.push((host.name.clone(), Some((*facts).clone())));
                answered.push((host, *facts));
            }
            Outcome::Failed(error) => {
                findings.push(Finding {
                    host: host.name.clone(),
                    check: CheckKind::Unreachable,
                    message: error.to_string(),
                });
                table.push((host.name.clone(), None));
            }
        }
    }
    let pairs: Vec<(&Host, &HostFacts)> = answered.iter().map(|(h, f)| (*h, f)).collect();
    findings.extend(preflight(inventory, &pairs));
    findings.sort();
    CheckReport {
        hosts: table,
        findings,
    }
}
