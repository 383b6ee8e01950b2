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
