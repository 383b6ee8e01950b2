//! `k8sup-lab`: bring labs of real SSH hosts up and down, list them, write inventories for
//! them, inject faults, add latency. A thin shell over the `k8sup_lab` library.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use k8sup_lab::{InventoryOptions, Lab, LabError, LabSpec};

#[derive(Parser)]
#[command(
    name = "k8sup-lab",
    version,
    about = "A lab of real SSH hosts on this machine (needs root)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Bring a lab up from a spec (testing/lab/labs/*.toml); it keeps running until `down`.
    Up {
        /// The lab spec.
        #[arg(short = 'f', long = "file")]
        file: PathBuf,
        /// Write a k8sup inventory for the lab here.
        #[arg(long)]
        inventory_out: Option<PathBuf>,
        /// A TOML file with the inventory's [cluster] (and other) tables.
        #[arg(long)]
        cluster: Option<PathBuf>,
        /// Grow the lab to this many hosts by cloning its nodes.
        #[arg(long)]
        hosts: Option<usize>,
        /// Stay in the foreground and take the lab down on Ctrl-C.
        #[arg(long)]
        wait: bool,
        /// With --wait: add this round-trip latency (ms) through a proxy on port 2223.
        #[arg(long, requires = "wait")]
        latency_ms: Option<u64>,
        /// Emulated operations take what they take on a real host: `realistic` (built in)
        /// or a durations file (TOML). Overrides the spec's `durations`.
        #[arg(long, value_name = "realistic|FILE")]
        durations: Option<String>,
    },
    /// Take a lab down (kill its sshds, unmount, remove its files).
    Down {
        /// The lab's name as `status` shows it.
        name: Option<String>,
        /// Take down every lab on this machine, including leftovers of crashed runs.
        #[arg(long, conflicts_with = "name")]
        all: bool,
    },
    /// List the labs on this machine and their hosts.
    Status { name: Option<String> },
    /// Write a k8sup inventory for a running lab.
    Inventory {
        name: String,
        #[arg(short = 'o', long)]
        out: Option<PathBuf>,
        #[arg(long)]
        cluster: Option<PathBuf>,
        /// Log in as user k8sup with become = true.
        #[arg(long)]
        as_lab_user: bool,
        /// Go through the lab's bastion.
        #[arg(long)]
        through_bastion: bool,
    },
    /// Inject a fault into one host of a running lab.
    Fault {
        name: String,
        host: String,
        #[command(subcommand)]
        fault: Fault,
    },
    /// Run a latency proxy (port 2223 of each host) in the foreground until Ctrl-C.
    Proxy {
        name: String,
        #[arg(long)]
        rtt_ms: u64,
    },
    /// The least wall time of a whole kubeadm cluster (containerd, flannel) under a
    /// durations profile: the longest chain of dependent steps, or the shared mirror.
    CriticalPath {
        #[arg(long, value_name = "realistic|FILE", default_value = "realistic")]
        durations: String,
        /// Hosts in all, masters included.
        #[arg(long)]
        hosts: usize,
        #[arg(long, default_value_t = 1)]
        masters: usize,
        /// The Kubernetes version (images' tags).
        #[arg(long, default_value = "1.30.4")]
        version: String,
        #[arg(long)]
        json: bool,
    },
    /// The ideal time of a rolling upgrade by one minor under a durations profile:
    /// masters one at a time, then batches of workers × one node's upgrade time.
    IdealUpgrade {
        #[arg(long, value_name = "realistic|FILE", default_value = "realistic")]
        durations: String,
        #[arg(long, default_value_t = 1)]
        masters: usize,
        #[arg(long)]
        workers: usize,
        /// Workers upgraded at once.
        #[arg(long, default_value_t = 1)]
        max_unavailable: usize,
        /// The target Kubernetes version (images' tags).
        #[arg(long, default_value = "1.31.2")]
        version: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum Fault {
    /// SIGKILL the host's sshd and everything running on the host.
    KillSshd,
    /// SIGTERM the host's sshd (open sessions continue).
    StopSshd,
    /// Start the host's sshd again.
    StartSshd,
    /// Freeze (SIGSTOP) the host's sshd and sessions.
    PauseSshd,
    /// Unfreeze the host's sshd and sessions.
    ResumeSshd,
    /// Close every open connection to the host.
    DropConnections,
    /// Make an emulated command exit with STATUS.
    Fail { command: String, status: i32 },
    /// Make an emulated command hang.
    Hang { command: String },
    /// Delay every emulated command by MS milliseconds.
    Slow { ms: u64 },
    /// Remove every command fault.
    Clear,
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let mut msg = format!("k8sup-lab: error: {e}");
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                msg.push_str(&format!(": {s}"));
                source = s.source();
            }
            eprintln!("{msg}");
            ExitCode::FAILURE
        }
    }
}

fn read_cluster(path: &Option<PathBuf>) -> Result<String, LabError> {
    match path {
        None => Ok(String::new()),
        Some(p) => std::fs::read_to_string(p).map_err(|source| LabError::Path {
            path: p.clone(),
            step: "read cluster fragment",
            source,
        }),
    }
}

fn run(cli: Cli) -> Result<(), LabError> {
    match cli.command {
        Command::Up {
            file,
            inventory_out,
            cluster,
            hosts,
            wait,
            latency_ms,
            durations,
        } => {
            let mut spec = LabSpec::load(&file)?;
            if let Some(d) = durations {
                spec = spec.durations(d);
            }
            if let Some(n) = hosts {
                spec = spec.scaled(n)?;
            }
            let cluster = read_cluster(&cluster)?;
            let started = Instant::now();
            let mut lab = Lab::up(&spec)?;
            println!(
                "lab {} up: {} hosts in {:.1}s",
                lab.name(),
                lab.hosts().len(),
                started.elapsed().as_secs_f64()
            );
            if let Some(ms) = latency_ms {
                lab.with_latency(Duration::from_millis(ms))?;
                println!("latency proxy: +{ms} ms RTT on port {}", lab.client_port());
            }
            print_hosts(&lab);
            if let Some(out) = inventory_out {
                lab.write_inventory(&out, &cluster)?;
                println!("inventory: {}", out.display());
            }
            if wait {
                println!("press Ctrl-C to take the lab down");
                wait_for_signal();
                lab.down()?;
                println!("lab down");
            } else {
                let name = lab.detach();
                println!("take it down with: k8sup-lab down {name}");
            }
            Ok(())
        }
        Command::Down { name, all } => {
            if all {
                let done = k8sup_lab::teardown::teardown_all()?;
                println!("took down {} lab(s)", done.len());
                return Ok(());
            }
            let Some(name) = name else {
                return Err(LabError::InvalidSpec("give a lab name or --all".into()));
            };
            let dir = k8sup_lab::layout::labs_dir().join(&name);
            if !dir.exists() {
                return Err(LabError::NoSuchLab(name));
            }
            k8sup_lab::teardown::teardown(&name, &dir)?;
            println!("lab {name} down");
            Ok(())
        }
        Command::Status { name } => {
            let names = match name {
                Some(n) => vec![n],
                None => k8sup_lab::teardown::lab_names(),
            };
            if names.is_empty() {
                println!("no labs");
            }
            for n in names {
                match Lab::open(&n) {
                    Ok(lab) => {
                        let alive = lab
                            .hosts()
                            .iter()
                            .filter(|h| {
                                std::net::TcpStream::connect_timeout(
                                    &h.ssh_addr(),
                                    Duration::from_millis(300),
                                )
                                .is_ok()
                            })
                            .count();
                        println!(
                            "{n}: {} hosts, {alive} accepting SSH, dir {}",
                            lab.hosts().len(),
                            lab.dir().display()
                        );
                        print_hosts(&lab);
                    }
                    Err(e) => println!("{n}: incomplete ({e}); `k8sup-lab down {n}` removes it"),
                }
            }
            Ok(())
        }
        Command::Inventory {
            name,
            out,
            cluster,
            as_lab_user,
            through_bastion,
        } => {
            let lab = Lab::open(&name)?;
            let text = lab.inventory_toml_with(
                &read_cluster(&cluster)?,
                &InventoryOptions {
                    as_lab_user,
                    through_bastion,
                    encrypted_key: false,
                },
            );
            match out {
                Some(path) => std::fs::write(&path, text).map_err(|source| LabError::Path {
                    path,
                    step: "write inventory",
                    source,
                })?,
                None => print!("{text}"),
            }
            Ok(())
        }
        Command::Fault { name, host, fault } => {
            let lab = Lab::open(&name)?;
            let f = lab.faults(&host)?;
            match fault {
                Fault::KillSshd => f.kill_sshd()?,
                Fault::StopSshd => f.stop_sshd()?,
                Fault::StartSshd => f.start_sshd()?,
                Fault::PauseSshd => f.pause_sshd()?,
                Fault::ResumeSshd => f.resume_sshd()?,
                Fault::DropConnections => f.drop_connections()?,
                Fault::Fail { command, status } => f.fail_command(&command, status)?,
                Fault::Hang { command } => f.hang_command(&command)?,
                Fault::Slow { ms } => f.slow(Duration::from_millis(ms))?,
                Fault::Clear => f.clear()?,
            }
            // The value opened from lab.json does not own the sshds: a restarted one keeps
            // running after we exit.
            lab.detach();
            Ok(())
        }
        Command::CriticalPath {
            durations,
            hosts,
            masters,
            version,
            json,
        } => {
            use k8sup_lab::durations::critical::{critical_path, ClusterShape};
            if masters == 0 || masters > hosts {
                return Err(LabError::InvalidSpec(format!(
                    "--masters {masters} with --hosts {hosts}: need 1 <= masters <= hosts"
                )));
            }
            let d = k8sup_lab::Durations::resolve(&durations)?;
            let minor = version
                .split('.')
                .nth(1)
                .and_then(|m| m.parse::<u32>().ok());
            let pause = if minor.is_some_and(|m| m >= 31) {
                "3.10"
            } else {
                "3.9"
            };
            let shape = ClusterShape::kubeadm_flannel(masters, hosts - masters, &version, pause);
            let c = critical_path(&d, &shape);
            if json {
                println!("{}", serde_json::to_string_pretty(&c).unwrap_or_default());
            } else {
                let s = |ms: u64| ms as f64 / 1000.0;
                println!("prepare (packages, runtime)  {:>8.1} s", s(c.prepare_ms));
                println!(
                    "control-plane images         {:>8.1} s",
                    s(c.control_plane_pull_ms)
                );
                println!("kubeadm init                 {:>8.1} s", s(c.init_ms));
                println!("slowest join                 {:>8.1} s", s(c.join_ms));
                println!(
                    "Ready after the CNI          {:>8.1} s",
                    s(c.ready_after_cni_ms)
                );
                println!("chain                        {:>8.1} s", s(c.chain_ms));
                println!(
                    "shared mirror bound          {:>8.1} s",
                    s(c.mirror_bound_ms)
                );
                println!("critical path                {:>8.1} s", s(c.total_ms));
            }
            Ok(())
        }
        Command::IdealUpgrade {
            durations,
            masters,
            workers,
            max_unavailable,
            version,
            json,
        } => {
            use k8sup_lab::durations::upgrade::{ideal_upgrade, UpgradeShape};
            if max_unavailable == 0 {
                return Err(LabError::InvalidSpec(
                    "--max-unavailable 0: at least one worker must be upgradable at a time".into(),
                ));
            }
            let d = k8sup_lab::Durations::resolve(&durations)?;
            let u = ideal_upgrade(
                &d,
                &UpgradeShape::kubeadm(masters, workers, max_unavailable, &version),
            );
            if json {
                println!("{}", serde_json::to_string_pretty(&u).unwrap_or_default());
            } else {
                let s = |ms: u64| ms as f64 / 1000.0;
                println!(
                    "first master                 {:>8.1} s",
                    s(u.first_master_ms)
                );
                println!(
                    "each other master            {:>8.1} s",
                    s(u.other_master_ms)
                );
                println!("one worker                   {:>8.1} s", s(u.worker_ms));
                println!("worker batches               {:>8}", u.batches);
                println!("ideal upgrade                {:>8.1} s", s(u.total_ms));
            }
            Ok(())
        }
        Command::Proxy { name, rtt_ms } => {
            let mut lab = Lab::open(&name)?;
            lab.with_latency(Duration::from_millis(rtt_ms))?;
            println!(
                "latency proxy: +{rtt_ms} ms RTT on port {} of each host; Ctrl-C stops it",
                lab.client_port()
            );
            wait_for_signal();
            lab.detach();
            Ok(())
        }
    }
}

fn print_hosts(lab: &Lab) {
    for h in lab.hosts().iter().chain(lab.bastion()) {
        println!(
            "  {:<16} {}:{}  {:?} {}  root {}",
            h.name,
            h.address,
            h.port,
            h.spec.distro,
            h.spec.arch.as_str(),
            h.root_dir().display()
        );
    }
    println!(
        "  key {}  known_hosts {}",
        lab.private_key().display(),
        lab.known_hosts().display()
    );
}

/// Blocks until SIGINT or SIGTERM.
fn wait_for_signal() {
    // SAFETY: plain libc signal-set manipulation on a local sigset_t.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        let mut sig = 0;
        libc::sigwait(&set, &mut sig);
    }
}
