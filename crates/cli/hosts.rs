//! What the commands that connect to hosts share: loading the inventory,
//! choosing hosts (`--limit`), the async runtime, and transport events.

use std::io::IsTerminal;

use k8sup_inventory::{Host, Inventory};
use k8sup_ops::connect::ConnectOptions;
use k8sup_ssh::{EventSink, Secrets, SshEvent};

use crate::args::HostsArgs;

/// Loads the inventory, printing every problem; `None` means exit 1.
pub fn load(args: &HostsArgs) -> Option<Inventory> {
    match Inventory::load(&args.inventory.inventory) {
        Ok(inv) => Some(inv),
        Err(e) => {
            eprintln!("{e}");
            None
        }
    }
}

/// The hosts `--limit` names (all without it), in inventory order; an unknown
/// name is an error that names it.
pub fn selected<'a>(inv: &'a Inventory, args: &HostsArgs) -> Result<Vec<&'a Host>, String> {
    limited(inv, &args.limit)
}

/// The hosts `limit` names (all when it is empty), in inventory order; an
/// unknown name is an error that names it.
pub fn limited<'a>(inv: &'a Inventory, limit: &[String]) -> Result<Vec<&'a Host>, String> {
    if limit.is_empty() {
        return Ok(inv.hosts.iter().collect());
    }
    let unknown: Vec<&str> = limit
        .iter()
        .map(String::as_str)
        .filter(|n| inv.host(n).is_none())
        .collect();
    if !unknown.is_empty() {
        return Err(format!(
            "--limit names hosts that are not in the inventory: {}",
            unknown.join(", ")
        ));
    }
    Ok(inv
        .hosts
        .iter()
        .filter(|h| limit.contains(&h.name))
        .collect())
}

/// Connection options from the flags and the environment.
pub fn connect_options(args: &HostsArgs) -> ConnectOptions {
    ConnectOptions {
        secrets: Secrets::from_env(),
        events: EventSink::new(print_event),
        parallel: args.parallel.map(|n| n as usize),
        run: None,
        first_master_read: None,
    }
}

/// Transport events are printed on stderr as they happen: a loud warning when
/// host keys are not checked, a note when a key is learned or a connection retried.
pub fn print_event(event: &SshEvent) {
    match event {
        SshEvent::HostKeyNotChecked { host, fingerprint } => eprintln!(
            "WARNING: host key checking is off: accepted {fingerprint} from {host} without any check"
        ),
        SshEvent::HostKeyLearned {
            host,
            fingerprint,
            known_hosts,
        } => eprintln!(
            "note: recorded the new host key {fingerprint} of {host} in {}",
            known_hosts.display()
        ),
        SshEvent::ConnectRetry {
            host,
            attempt,
            delay,
            error,
        } => eprintln!("note: {host}: attempt {attempt} failed ({error}); retrying in {delay:?}"),
        SshEvent::AgentUnavailable { host, reason } => {
            if std::io::stderr().is_terminal() {
                eprintln!("note: {host}: ssh-agent not used ({reason})")
            }
        }
    }
}

/// Runs an async operation on a runtime sized for many connections.
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("the async runtime starts");
    runtime.block_on(future)
}
