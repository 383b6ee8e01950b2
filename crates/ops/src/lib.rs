//! The operations the `k8sup` command line runs, one module each; the CLI
//! parses arguments, calls one of these, and renders what it returns.
//!
//! - [`connect`]: an inventory host becomes an SSH [`k8sup_ssh::Target`]; all
//!   hosts are connected to in parallel, bounded by `parallelism`.
//! - [`facts`]: gather [`k8sup_facts::HostFacts`] from every host.
//! - [`check`]: facts plus preflight findings, for `k8sup check`.
//! - [`cluster`]: the admin kubeconfig.
//! - [`reset`]: the reset playbook on every host, for the nightly reprovision.
//! - [`certs`]: when every certificate expires; renewal one master at a time.
//! - [`etcd`]: etcd snapshots (backup) and disaster recovery (restore).
//! - [`lock`]: one run at a time, per cluster on the controller and per host.
//! - [`upgrade`]: the rolling Kubernetes upgrade plan and apply carry out when
//!   the inventory's version is newer than the cluster's.
//! - [`remove`]: nodes with `remove = true`: drained, deleted, reset; etcd quorum kept.
//! - [`converge`]: connect, gather facts, and hand every host to the engine,
//!   for `k8sup plan` and `k8sup apply`.

pub mod certs;
pub mod check;
pub mod cluster;
pub mod connect;
pub mod converge;
pub mod etcd;
pub mod facts;
mod fan_out;
pub mod lock;
pub mod remove;
pub mod reset;
pub mod upgrade;
