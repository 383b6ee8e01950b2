//! The command-line arguments: every command and flag a user can type.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Install and keep Kubernetes clusters on machines you already have, over plain SSH.
#[derive(Debug, Parser)]
#[command(name = "k8sup", version = env!("K8SUP_VERSION"), about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,

    #[command(flatten)]
    pub output: OutputArgs,
}

/// Flags every command takes that shape what is printed.
#[derive(Debug, Args)]
pub struct OutputArgs {
    /// Print machine-readable JSON on stdout instead of text
    #[arg(long, global = true)]
    pub json: bool,

    /// Never colour the output (NO_COLOR in the environment does the same)
    #[arg(long, global = true)]
    pub no_color: bool,

    /// Print less: only errors and the final result
    #[arg(short, long, global = true)]
    pub quiet: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check an inventory without connecting to anything, and summarise the cluster it describes
    Validate(InventoryArg),

    /// Connect to every host and print what k8sup learns about it (changes nothing)
    Facts(HostsArgs),

    /// Connect to every host and report every preflight problem at once (changes nothing)
    Check(HostsArgs),

    /// Show, per host and task, exactly what apply would change, and why (changes nothing)
    Plan(PlanArgs),

    /// Converge every host to the inventory
    Apply(ApplyArgs),

    /// List past apply runs of this cluster, with durations per task
    History(HistoryArgs),

    /// Fetch the admin kubeconfig from the first master, its server set to control_plane_endpoint
    Kubeconfig(KubeconfigArgs),

    /// Write one self-contained HTML page of a run: a timeline per host, changes with diffs, failures
    Report(ReportArgs),

    /// Write an inventory.toml from another tool's inventory
    #[command(subcommand)]
    Import(ImportCommand),

    /// Tear the cluster down on every host (kubeadm reset, CNI, iptables, k8sup state) for a fresh apply
    Reset(ResetArgs),

    /// When every certificate expires (exit 2 when one is within --warn); `certs renew` renews them
    Certs(CertsArgs),

    /// etcd snapshots: `etcd backup` to this machine, `etcd restore` for disaster recovery
    Etcd(EtcdArgs),

    /// Print a shell completion script (bash, zsh, fish, elvish, powershell)
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// The inventory file, which every command that works on a cluster reads.
#[derive(Debug, Args)]
pub struct InventoryArg {
    /// The inventory file (TOML)
    #[arg(short, long, value_name = "FILE")]
    pub inventory: PathBuf,
}

/// The inventory and which of its hosts to work on.
#[derive(Debug, Args)]
pub struct HostsArgs {
    #[command(flatten)]
    pub inventory: InventoryArg,

    /// Only these hosts (comma-separated names from the inventory)
    #[arg(long, value_name = "NAME[,NAME]", value_delimiter = ',')]
    pub limit: Vec<String>,

    /// How many hosts to work on at once (overrides ssh.parallelism)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub parallel: Option<u32>,
}

/// What plan and apply share: the inventory, the playbook and its templates.
#[derive(Debug, Args)]
pub struct ConvergeArgs {
    #[command(flatten)]
    pub inventory: InventoryArg,

    /// Only these hosts change (comma-separated names); the first master, when
    /// not named, is only read: the values joins need are fetched from it
    #[arg(long, value_name = "NAME[,NAME]", value_delimiter = ',')]
    pub limit: Vec<String>,

    /// Use this playbook instead of the one built into k8sup
    #[arg(long, value_name = "FILE")]
    pub playbook: Option<PathBuf>,

    /// Templates in this directory replace the built-in ones of the same name
    #[arg(long, value_name = "DIR")]
    pub templates: Option<PathBuf>,

    /// How many hosts to work on at once (overrides ssh.parallelism)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub parallel: Option<u32>,

    /// Show tasks that are already as wanted, too
    #[arg(short, long)]
    pub verbose: bool,

    /// Go on without unreachable workers (saying which); unreachable masters
    /// still stop an apply, unless they have remove = true
    #[arg(long)]
    pub skip_unreachable: bool,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub common: ConvergeArgs,

    /// Save the plan as JSON, to apply it later with `apply --plan`
    #[arg(short = 'o', long = "out", value_name = "FILE")]
    pub out: Option<PathBuf>,

    /// Exit 2 when changes are pending (0: none, 1: error)
    #[arg(long)]
    pub detailed_exitcode: bool,
}

#[derive(Debug, Args)]
pub struct ApplyArgs {
    #[command(flatten)]
    pub common: ConvergeArgs,

    /// Only show what would change, as `k8sup plan` does
    #[arg(long)]
    pub dry_run: bool,

    /// With --dry-run: exit 2 when changes are pending
    #[arg(long, requires = "dry_run")]
    pub detailed_exitcode: bool,

    /// Apply exactly this saved plan; refuse hosts that changed since it was made
    #[arg(long, value_name = "FILE", conflicts_with = "dry_run")]
    pub plan: Option<PathBuf>,

    /// Write a JSON report of the run: per host, per task, status, duration, error
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,

    /// Write the run as one self-contained HTML page (as `k8sup report` does)
    #[arg(long, value_name = "FILE", conflicts_with = "dry_run")]
    pub report_html: Option<PathBuf>,

    /// Do not show the plan and ask first on a terminal (without one, apply never asks)
    #[arg(long, short = 'y')]
    pub yes: bool,
}

#[derive(Debug, Args)]
pub struct HistoryArgs {
    #[command(flatten)]
    pub inventory: InventoryArg,

    /// How many of the latest runs to show
    #[arg(long, default_value_t = 10)]
    pub last: usize,

    /// Show every task's duration in each run
    #[arg(short, long)]
    pub verbose: bool,

    /// Show each task's duration over the runs, oldest to newest, as a table
    #[arg(long)]
    pub tasks: bool,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The run: its start time as `k8sup history` shows it (or a unique prefix), or a
    /// JSON report written by `apply --report`; default: the last run in the history
    #[arg(value_name = "RUN")]
    pub run: Option<String>,

    /// The inventory whose history holds the run (needed unless RUN is a file)
    #[arg(short, long, value_name = "FILE")]
    pub inventory: Option<PathBuf>,

    /// Where to write the HTML page
    #[arg(short = 'o', long = "out", value_name = "FILE")]
    pub out: PathBuf,

    /// How many of the runs before it the task trends show
    #[arg(long, default_value_t = 10)]
    pub last: usize,
}

#[derive(Debug, Subcommand)]
pub enum ImportCommand {
    /// A Kubespray inventory (hosts.yaml or inventory.ini, with its group_vars)
    Kubespray(ImportKubesprayArgs),
}

#[derive(Debug, Args)]
pub struct ImportKubesprayArgs {
    /// Kubespray's hosts file: YAML (hosts.yaml) or INI (inventory.ini)
    #[arg(value_name = "HOSTS")]
    pub hosts: PathBuf,

    /// Kubespray's group_vars directory (default: group_vars beside the hosts file, if any)
    #[arg(long, value_name = "DIR")]
    pub group_vars: Option<PathBuf>,

    /// The cluster's name in k8sup (default: the name of the directory holding the hosts file)
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,

    /// Write the inventory to FILE instead of printing it (refuses to overwrite)
    #[arg(short = 'o', long = "out", value_name = "FILE")]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct KubeconfigArgs {
    #[command(flatten)]
    pub inventory: InventoryArg,

    /// Write it to FILE (mode 0600) instead of printing it
    #[arg(short = 'o', long = "out", value_name = "FILE")]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ResetArgs {
    #[command(flatten)]
    pub hosts: HostsArgs,

    /// Do not ask for confirmation; required when stdin is not a terminal
    #[arg(long)]
    pub yes: bool,

    /// Show, per host, each step reset would take and why, changing nothing
    #[arg(long)]
    pub dry_run: bool,
}

/// A duration as people write it: `30d`, `2w`, `12h`.
fn duration(text: &str) -> Result<std::time::Duration, String> {
    humantime::parse_duration(text)
        .map_err(|e| format!("{text:?} is not a duration ({e}); write e.g. 30d"))
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct CertsArgs {
    #[command(subcommand)]
    pub action: Option<CertsAction>,

    /// The inventory file (TOML)
    #[arg(short, long, value_name = "FILE")]
    pub inventory: Option<PathBuf>,

    /// Exit 2 when a certificate expires within this long
    #[arg(long, value_name = "DURATION", default_value = "30d", value_parser = duration)]
    pub warn: std::time::Duration,
}

#[derive(Debug, Subcommand)]
pub enum CertsAction {
    /// Renew the control plane's certificates that are due, one master at a time (shows the plan first)
    Renew(CertsRenewArgs),
}

#[derive(Debug, Args)]
pub struct CertsRenewArgs {
    #[command(flatten)]
    pub inventory: InventoryArg,

    /// Renew what expires within this long (default: [certificates] renew_before, else 30d)
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    pub before: Option<std::time::Duration>,

    /// Only show the plan
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct EtcdArgs {
    #[command(subcommand)]
    pub action: EtcdAction,
}

#[derive(Debug, Subcommand)]
pub enum EtcdAction {
    /// Snapshot etcd on a healthy master and store it here as CLUSTER-YYYYmmddTHHMMSSZ.db with its sha256
    Backup(EtcdBackupArgs),
    /// Restore every master's etcd from a snapshot (stops the whole control plane; asks first)
    Restore(EtcdRestoreArgs),
}

#[derive(Debug, Args)]
pub struct EtcdBackupArgs {
    #[command(flatten)]
    pub inventory: InventoryArg,

    /// The directory the snapshot goes to
    #[arg(short = 'o', long = "out", value_name = "DIR", default_value = ".")]
    pub out: PathBuf,

    /// Keep this many snapshots of the cluster in DIR, the new one included
    #[arg(long, value_name = "N", default_value_t = 7, value_parser = clap::value_parser!(u32).range(1..))]
    pub keep: u32,
}

#[derive(Debug, Args)]
pub struct EtcdRestoreArgs {
    #[command(flatten)]
    pub inventory: InventoryArg,

    /// The snapshot (its FILE.sha256 must be beside it)
    #[arg(long, value_name = "FILE")]
    pub from: PathBuf,

    /// Do not ask for confirmation (required when stdin is not a terminal)
    #[arg(long)]
    pub yes: bool,
}
