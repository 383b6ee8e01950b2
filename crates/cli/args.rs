//! The command-line arguments: every command and flag a user can type.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Install and keep Kubernetes clusters on machines you already have, over plain SSH.
#[derive(Debug, Parser)]
#[command(name = "k8sup", version, about, long_about = None)]
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

    /// Tear the cluster down on every host (kubeadm reset, CNI, iptables, k8sup state) for a fresh apply
    Reset(ResetArgs),

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

    /// Do not ask for confirmation (the default when stdin is not a terminal)
    #[arg(long)]
    pub yes: bool,
}
