//! Hosts with their own network namespaces (`network = "namespaces"` in a lab spec): each
//! host gets a namespace with `lo` up (so 127.0.0.1 is the host's own) and an `eth0`, one
//! end of a veth pair whose other end is a port of the lab's bridge in the machine's
//! namespace. Hosts reach each other over the bridge; the machine (the controller, the
//! tests) reaches every host through the bridge's address [`CONTROLLER_ADDRESS`] and one
//! route per address block.
//!
//! Addresses come from the benchmarking range 198.18.0.0/15 (RFC 2544: never routed on a
//! real network), block `k` of the lab's claimed loopback blocks being
//! `198.(18 + k / 256).(k % 256).0/24`, so that a namespaced lab and a loopback lab never
//! hold the same block. What a lab made is recorded in its directory (`network.json`), so
//! that `k8sup-lab down` from another process removes every namespace and the bridge.

use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::{Deserialize, Serialize};

use crate::error::{LabError, Result};

/// The machine's address on every lab bridge (a /32 outside the hosts' blocks): where
/// hosts see the controller's connections come from.
pub const CONTROLLER_ADDRESS: Ipv4Addr = Ipv4Addr::new(198, 19, 255, 254);
/// Blocks 0..512 map into 198.18.0.0/15.
const MAX_NETNS_BLOCK: u32 = 512;
/// Where `ip netns` keeps its namespaces.
const NETNS_DIR: &str = "/run/netns";
/// Prefix of every namespace, bridge and veth the lab makes.
pub const NAME_PREFIX: &str = "k8l";

/// How a lab's hosts are networked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Network {
    /// Every host on its own loopback address in the machine's namespace (127.0.0.1 is
    /// shared by all hosts and the machine).
    #[default]
    Loopback,
    /// Every host in its own network namespace, bridged to the machine.
    Namespaces,
}

/// What a namespaced lab made on the machine, recorded in `network.json`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct NetworkRecord {
    pub bridge: String,
    pub namespaces: Vec<String>,
}

/// The record's file in a lab directory.
pub fn record_path(lab_dir: &Path) -> PathBuf {
    lab_dir.join("network.json")
}

/// The address of host `index` of a namespaced lab holding `blocks`.
pub fn host_address(blocks: &[u32], index: usize) -> Option<Ipv4Addr> {
    let block = *blocks.get(index / crate::layout::HOSTS_PER_BLOCK)?;
    if block >= MAX_NETNS_BLOCK {
        return None;
    }
    let fourth = (index % crate::layout::HOSTS_PER_BLOCK) + 1;
    Some(Ipv4Addr::new(
        198,
        18 + (block / 256) as u8,
        (block % 256) as u8,
        fourth as u8,
    ))
}

/// The namespace of host `host` of lab `lab` (a dot cannot appear in either name).
pub fn namespace_name(lab: &str, host: &str) -> String {
    format!("{NAME_PREFIX}.{lab}.{host}")
}

/// The lab's bridge, named after its first block (interface names hold 15 bytes).
pub fn bridge_name(blocks: &[u32]) -> String {
    format!("{NAME_PREFIX}{}", blocks.first().copied().unwrap_or(0))
}

/// The machine-side end of host `index`'s veth pair.
fn veth_name(blocks: &[u32], index: usize) -> String {
    format!(
        "{NAME_PREFIX}{}v{index}",
        blocks.first().copied().unwrap_or(0)
    )
}

/// The path `ip netns` gives a namespace (what `setns` opens).
pub fn namespace_path(name: &str) -> PathBuf {
    Path::new(NETNS_DIR).join(name)
}

fn ip(lab: &str, args: &[&str]) -> Result<()> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| LabError::Lab {
            lab: lab.into(),
            step: "run ip",
            message: format!("ip {}: {e}", args.join(" ")),
        })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(LabError::Lab {
            lab: lab.into(),
            step: "configure the lab network",
            message: format!(
                "ip {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        })
    }
}

/// Creates the lab's bridge, with the controller's address and a route to every block.
/// The record is written first, so a failure half-way is still torn down.
pub fn create_bridge(lab: &str, lab_dir: &Path, blocks: &[u32]) -> Result<String> {
    let bridge = bridge_name(blocks);
    write_record(
        lab,
        lab_dir,
        &NetworkRecord {
            bridge: bridge.clone(),
            namespaces: Vec::new(),
        },
    )?;
    ip(lab, &["link", "add", &bridge, "type", "bridge"])?;
    ip(lab, &["link", "set", &bridge, "up"])?;
    let controller = format!("{CONTROLLER_ADDRESS}/32");
    ip(lab, &["addr", "add", &controller, "dev", &bridge])?;
    for block in blocks {
        let Some(first) = host_address(&[*block], 0) else {
            return Err(LabError::Lab {
                lab: lab.into(),
                step: "configure the lab network",
                message: format!("address block {block} is beyond 198.18.0.0/15"),
            });
        };
        let o = first.octets();
        let net = format!("{}.{}.{}.0/24", o[0], o[1], o[2]);
        ip(
            lab,
            &[
                "route",
                "add",
                &net,
                "dev",
                &bridge,
                "src",
                &CONTROLLER_ADDRESS.to_string(),
            ],
        )?;
    }
    Ok(bridge)
}

/// Records the namespaces the lab is about to make (before making them).
pub fn record_namespaces(lab: &str, lab_dir: &Path, namespaces: Vec<String>) -> Result<()> {
    let mut record = read_record(lab_dir).unwrap_or_default();
    record.namespaces = namespaces;
    write_record(lab, lab_dir, &record)
}

/// Makes host `index`'s namespace: `lo` up, `eth0` with `address`, every destination
/// on-link through the bridge.
pub fn create_host(
    lab: &str,
    blocks: &[u32],
    index: usize,
    namespace: &str,
    address: Ipv4Addr,
) -> Result<()> {
    let bridge = bridge_name(blocks);
    let veth = veth_name(blocks, index);
    ip(lab, &["netns", "add", namespace])?;
    ip(
        lab,
        &[
            "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", namespace,
        ],
    )?;
    ip(lab, &["link", "set", &veth, "master", &bridge, "up"])?;
    ip(lab, &["-n", namespace, "link", "set", "lo", "up"])?;
    ip(lab, &["-n", namespace, "link", "set", "eth0", "up"])?;
    let cidr = format!("{address}/24");
    ip(lab, &["-n", namespace, "addr", "add", &cidr, "dev", "eth0"])?;
    // Every address is on-link: hosts of other blocks and the controller's /32 answer
    // ARP on the same bridge.
    ip(
        lab,
        &["-n", namespace, "route", "add", "default", "dev", "eth0"],
    )
}

fn write_record(lab: &str, lab_dir: &Path, record: &NetworkRecord) -> Result<()> {
    let json = serde_json::to_string_pretty(record).map_err(|e| LabError::Lab {
        lab: lab.into(),
        step: "encode network.json",
        message: e.to_string(),
    })?;
    std::fs::write(record_path(lab_dir), json).map_err(LabError::lab_io(lab, "write network.json"))
}

/// The lab's record, if it made a network.
pub fn read_record(lab_dir: &Path) -> Option<NetworkRecord> {
    let text = std::fs::read_to_string(record_path(lab_dir)).ok()?;
    serde_json::from_str(&text).ok()
}

/// The inode numbers of the lab's namespaces, to find every process inside them.
pub fn namespace_inodes(record: &NetworkRecord) -> Vec<u64> {
    use std::os::unix::fs::MetadataExt;
    record
        .namespaces
        .iter()
        .filter_map(|n| std::fs::metadata(namespace_path(n)).ok())
        .map(|m| m.ino())
        .collect()
}

/// The inode of a process's network namespace.
pub fn process_namespace_inode(pid: i32) -> Option<u64> {
    let link = std::fs::read_link(format!("/proc/{pid}/ns/net")).ok()?;
    let text = link.to_str()?;
    text.strip_prefix("net:[")?.strip_suffix(']')?.parse().ok()
}

/// Removes every host's veth pair, every namespace and the bridge (its routes go with
/// it). Called once no process of the lab is left.
///
/// A veth is deleted by name first: the kernel frees a deleted namespace (and the veth
/// end inside it) only once nothing holds it, and asynchronously even then, so a veth
/// left to go with its namespace can outlive the teardown.
pub fn remove(lab: &str, lab_dir: &Path) -> Result<()> {
    let Some(record) = read_record(lab_dir) else {
        return Ok(());
    };
    let mut first_error = None;
    let veth_prefix = format!("{}v", record.bridge);
    if let Ok(links) = std::fs::read_dir("/sys/class/net") {
        let mut veths: Vec<String> = links
            .filter_map(|link| link.ok()?.file_name().into_string().ok())
            .filter(|name| {
                name.strip_prefix(&veth_prefix).is_some_and(|index| {
                    !index.is_empty() && index.bytes().all(|b| b.is_ascii_digit())
                })
            })
            .collect();
        veths.sort();
        for veth in veths {
            // Gone already when its namespace went first: only a veth still there counts.
            if let Err(e) = ip(lab, &["link", "delete", &veth]) {
                if Path::new("/sys/class/net").join(&veth).exists() {
                    first_error.get_or_insert(e);
                }
            }
        }
    }
    for ns in &record.namespaces {
        if namespace_path(ns).exists() {
            if let Err(e) = ip(lab, &["netns", "delete", ns]) {
                first_error.get_or_insert(e);
            }
        }
    }
    if Path::new("/sys/class/net").join(&record.bridge).exists() {
        if let Err(e) = ip(lab, &["link", "delete", &record.bridge]) {
            first_error.get_or_insert(e);
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// An open handle on a namespace, to enter it in a child before `exec` or in a thread.
#[derive(Debug)]
pub struct NamespaceHandle(OwnedFd);

impl NamespaceHandle {
    pub fn open(name: &str) -> std::io::Result<Self> {
        let file = std::fs::File::open(namespace_path(name))?;
        Ok(NamespaceHandle(file.into()))
    }

    /// Moves the calling thread into the namespace (async-signal-safe: one syscall, so it
    /// may run in `pre_exec`).
    pub fn enter(&self) -> std::io::Result<()> {
        // SAFETY: setns on a namespace file descriptor we own; no memory is touched.
        let rc = unsafe { libc::setns(self.0.as_raw_fd(), libc::CLONE_NEWNET) };
        if rc == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    }
}

/// Binds a TCP listener inside namespace `name` (on a short-lived thread, so the caller's
/// own namespace never changes); the socket stays in that namespace.
pub fn bind_in(name: &str, addr: std::net::SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let handle = NamespaceHandle::open(name)?;
    std::thread::scope(|s| {
        s.spawn(|| {
            handle.enter()?;
            std::net::TcpListener::bind(addr)
        })
        .join()
        .unwrap_or_else(|_| Err(std::io::Error::other("bind thread panicked")))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_map_blocks_into_the_benchmarking_range() {
        assert_eq!(host_address(&[0], 0), Some(Ipv4Addr::new(198, 18, 0, 1)));
        assert_eq!(
            host_address(&[300, 7], 254),
            Some(Ipv4Addr::new(198, 18, 7, 1))
        );
        assert_eq!(host_address(&[300], 3), Some(Ipv4Addr::new(198, 19, 44, 4)));
        assert_eq!(host_address(&[512], 0), None);
        assert_eq!(host_address(&[1], 254), None);
    }

    #[test]
    fn interface_names_fit_the_kernel_limit() {
        let blocks = [12799];
        assert!(bridge_name(&blocks).len() <= 15);
        assert!(veth_name(&blocks, 1999).len() <= 15);
        assert_eq!(namespace_name("t-1-0", "m-1"), "k8l.t-1-0.m-1");
    }
}
