//! `k8sup`: the command line. A thin shell over the crates in `crates/`:
//! it parses arguments, calls one operation, prints what it returns and
//! turns errors into an exit status.

// First: its print macros replace the standard ones in every module below.
#[macro_use]
mod out;

mod args;
mod certs;
mod check;
mod cluster;
mod confirm;
mod converge;
mod etcd;
mod facts;
mod history;
mod hosts;
mod import;
mod progress;
mod remove;
mod report;
mod table;
mod upgrade;
mod validate;

use std::process::ExitCode;

use clap::{CommandFactory, Parser};

use args::{Cli, Command};

/// Exit statuses, as `spec/cli.md` defines them.
pub mod exit {
    pub const OK: u8 = 0;
    pub const ERROR: u8 = 1;
    /// `--detailed-exitcode`: changes are pending.
    pub const CHANGES: u8 = 2;
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let status = match &cli.command {
        Command::Validate(cmd) => validate::run(cmd, &cli.output),
        Command::Facts(cmd) => facts::run(cmd, &cli.output),
        Command::Check(cmd) => check::run(cmd, &cli.output),
        Command::Plan(cmd) => converge::plan(cmd, &cli.output),
        Command::Apply(cmd) => converge::apply(cmd, &cli.output),
        Command::History(cmd) => history::run(cmd, &cli.output),
        Command::Kubeconfig(cmd) => cluster::kubeconfig(cmd, &cli.output),
        Command::Report(cmd) => report::run(cmd, &cli.output),
        Command::Import(args::ImportCommand::Kubespray(cmd)) => import::kubespray(cmd, &cli.output),
        Command::Reset(cmd) => cluster::reset(cmd, &cli.output),
        Command::Certs(cmd) => certs::run(cmd, &cli.output),
        Command::Etcd(cmd) => etcd::run(cmd, &cli.output),
        Command::Completions { shell } => {
            let mut script = Vec::new();
            clap_complete::generate(*shell, &mut Cli::command(), "k8sup", &mut script);
            print!("{}", String::from_utf8_lossy(&script));
            exit::OK
        }
    };
    ExitCode::from(status)
}
