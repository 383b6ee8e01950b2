//! Faults on demand, for one host: stop, kill, freeze or restart its sshd, drop its
//! connections, make an emulated command fail or hang, or make every emulated command slow.
//!
//! Command faults are files in the host's [`FAULTS_DIR`] that the emulators read on each
//! call, so they work the same from a test (through [`Lab::faults`]) and from another
//! process (`k8sup-lab fault`).

use std::path::PathBuf;
use std::time::Duration;

use crate::error::{LabError, Result};
use crate::lab::{Host, Lab};
use crate::profile::FAULTS_DIR;
use crate::sshd;
use crate::sys;

/// Fault controls of one host of a lab.
pub struct HostFaults<'a> {
    lab: &'a Lab,
    host: &'a Host,
}

impl Lab {
    /// The fault controls of host `name`.
    pub fn faults(&self, name: &str) -> Result<HostFaults<'_>> {
        Ok(HostFaults {
            lab: self,
            host: self.host(name)?,
        })
    }

    /// Cuts every connection relayed by the latency proxy (all hosts).
    pub fn drop_proxy_connections(&self) {
        if let Some(p) = &self.proxy {
            p.drop_connections();
        }
    }
}

impl HostFaults<'_> {
    fn dir(&self) -> PathBuf {
        self.host.root_dir().join(FAULTS_DIR)
    }

    fn set(&self, file: &str, content: &str) -> Result<()> {
        let dir = self.dir();
        std::fs::create_dir_all(&dir).map_err(LabError::host_io(
            &self.host.name,
            "create faults directory",
        ))?;
        std::fs::write(dir.join(file), content)
            .map_err(LabError::host_io(&self.host.name, "write fault"))
    }

    fn check_tool(&self, tool: &str) -> Result<()> {
        if tool.is_empty() || tool.contains('/') {
            return Err(LabError::Host {
                host: self.host.name.clone(),
                step: "inject fault",
                message: format!("{tool:?} is not a command name"),
            });
        }
        Ok(())
    }

    /// Every later run of emulated `tool` exits with `status` (and a message on stderr).
    pub fn fail_command(&self, tool: &str, status: i32) -> Result<()> {
        self.check_tool(tool)?;
        self.set(&format!("fail-{tool}"), &status.to_string())
    }

    /// Every later run of emulated `tool` hangs until killed.
    pub fn hang_command(&self, tool: &str) -> Result<()> {
        self.check_tool(tool)?;
        self.set(&format!("hang-{tool}"), "")
    }

    /// Every later run of emulated `tool` whose first argument is `subcommand` (as
    /// `kubeadm join`) hangs until killed; its other subcommands run as usual.
    pub fn hang_subcommand(&self, tool: &str, subcommand: &str) -> Result<()> {
        self.check_tool(tool)?;
        self.check_tool(subcommand)?;
        self.set(&format!("hang-{tool}-{subcommand}"), "")
    }

    /// Every emulated command on the host takes `delay` longer.
    pub fn slow(&self, delay: Duration) -> Result<()> {
        self.set("delay-ms", &delay.as_millis().to_string())
    }

    /// Makes one of the host's certificates expire in `days` days: a kubeadm certificate
    /// or CA by its check-expiration name (`apiserver`, `admin.conf`, `ca`...), or
    /// `kubelet-client` (the kubelet's client certificate, rewritten for real).
    pub fn age_certificate(&self, certificate: &str, days: u32) -> Result<()> {
        crate::emu::pki::age(
            &self.lab.cluster_dir(),
            &self.host.root_dir(),
            &self.host.name,
            certificate,
            days,
        )
        .map_err(|message| LabError::Host {
            host: self.host.name.clone(),
            step: "age a certificate",
            message,
        })
    }

    /// Holds one of the host's control-plane static pods down (`kube-apiserver`, `etcd`,
    /// `kube-controller-manager`, `kube-scheduler`), as a crashed container: the pod log
    /// says it stopped, and a stopped API server's real listener is gone at once.
    pub fn stop_static_pod(&self, pod: &str) -> Result<()> {
        self.check_tool(pod)?;
        self.set(&format!("pod-down-{pod}"), "")?;
        self.resync()
    }

    /// Lets a pod held down by [`HostFaults::stop_static_pod`] run again: the host's
    /// kubelet starts it on its next sync (run inside the host, over SSH).
    pub fn start_static_pod(&self, pod: &str) -> Result<()> {
        self.check_tool(pod)?;
        let _ = std::fs::remove_file(self.dir().join(format!("pod-down-{pod}")));
        let out = self.lab.ssh(
            &self.host.name,
            "systemctl is-active kubelet >/dev/null; true",
        )?;
        if out.status.success() {
            Ok(())
        } else {
            Err(LabError::Host {
                host: self.host.name.clone(),
                step: "start a static pod",
                message: String::from_utf8_lossy(&out.stderr).into_owned(),
            })
        }
    }

    /// The machine goes off: its sshd, sessions and daemons are killed (as
    /// [`HostFaults::kill_sshd`]) and its control-plane pods stop (their real listeners
    /// with them).
    pub fn power_off(&self) -> Result<()> {
        for pod in [
            "kube-apiserver",
            "etcd",
            "kube-controller-manager",
            "kube-scheduler",
        ] {
            self.set(&format!("pod-down-{pod}"), "")?;
        }
        self.kill_sshd()?;
        self.resync()
    }

    /// Re-evaluates the host's static pods from the lab's side (its sshd may be down).
    fn resync(&self) -> Result<()> {
        let inv = crate::emu::Invocation::new(self.host.root_dir(), "k8sup-lab", &[], 0);
        crate::emu::etcd::sync(&inv);
        Ok(())
    }

    /// Removes every command fault of the host.
    pub fn clear(&self) -> Result<()> {
        let Ok(entries) = std::fs::read_dir(self.dir()) else {
            return Ok(());
        };
        for e in entries.flatten() {
            std::fs::remove_file(e.path())
                .map_err(LabError::host_io(&self.host.name, "clear fault"))?;
        }
        Ok(())
    }

    fn listener_pid(&self) -> Option<i32> {
        let pid: i32 = std::fs::read_to_string(self.host.dirs().sshd_pid())
            .ok()?
            .trim()
            .parse()
            .ok()?;
        sys::process_alive(pid).then_some(pid)
    }

    /// Processes serving this host's connections: descendants of its sshd and anything
    /// running inside its root.
    fn session_processes(&self, listener: Option<i32>) -> Vec<i32> {
        let root = self.host.root_dir();
        let procs = sys::processes();
        let mut found: Vec<i32> = procs
            .iter()
            .filter(|(pid, _)| {
                std::fs::read_link(format!("/proc/{pid}/root")).is_ok_and(|r| r.starts_with(&root))
            })
            .map(|(pid, _)| *pid)
            .collect();
        let mut parents: Vec<i32> = listener.into_iter().chain(found.iter().copied()).collect();
        loop {
            let more: Vec<i32> = procs
                .iter()
                .filter(|(pid, ppid)| {
                    parents.contains(ppid) && !found.contains(pid) && Some(*pid) != listener
                })
                .map(|(pid, _)| *pid)
                .collect();
            if more.is_empty() {
                break;
            }
            parents.extend(more.iter().copied());
            found.extend(more);
        }
        found
    }

    /// Stops the host's sshd gracefully (SIGTERM): no new connections, open ones continue.
    pub fn stop_sshd(&self) -> Result<()> {
        if let Some(pid) = self.listener_pid() {
            sys::signal(pid, libc::SIGTERM)
                .map_err(LabError::host_io(&self.host.name, "stop sshd"))?;
        }
        self.reap();
        Ok(())
    }

    /// The host goes down hard: its sshd and every session and command on it are killed.
    pub fn kill_sshd(&self) -> Result<()> {
        let listener = self.listener_pid();
        if let Some(pid) = listener {
            sys::signal(pid, libc::SIGKILL)
                .map_err(LabError::host_io(&self.host.name, "kill sshd"))?;
        }
        for pid in self.session_processes(listener) {
            let _ = sys::signal(pid, libc::SIGKILL);
        }
        self.reap();
        Ok(())
    }

    /// Freezes the host's sshd and sessions (SIGSTOP): connections hang, nothing is refused.
    pub fn pause_sshd(&self) -> Result<()> {
        let listener = self.listener_pid();
        for pid in listener.into_iter().chain(self.session_processes(listener)) {
            sys::signal(pid, libc::SIGSTOP)
                .map_err(LabError::host_io(&self.host.name, "pause sshd"))?;
        }
        Ok(())
    }

    /// Undoes [`HostFaults::pause_sshd`].
    pub fn resume_sshd(&self) -> Result<()> {
        let listener = self.listener_pid();
        for pid in listener.into_iter().chain(self.session_processes(listener)) {
            sys::signal(pid, libc::SIGCONT)
                .map_err(LabError::host_io(&self.host.name, "resume sshd"))?;
        }
        Ok(())
    }

    /// Closes every open connection to the host (its sshd keeps accepting new ones).
    pub fn drop_connections(&self) -> Result<()> {
        let listener = self.listener_pid();
        for pid in self.session_processes(listener) {
            let _ = sys::signal(pid, libc::SIGKILL);
        }
        self.reap();
        Ok(())
    }

    /// Starts the host's sshd again after a stop or kill, and waits until it accepts.
    pub fn start_sshd(&self) -> Result<()> {
        if self.listener_pid().is_some() {
            return Ok(());
        }
        let dirs = self.host.dirs();
        let mut child = sshd::spawn(&self.host.name, &dirs, self.host.netns.as_deref())?;
        sshd::wait_ready(
            &self.host.name,
            self.host.ssh_addr(),
            &mut child,
            &dirs.sshd_log(),
            &dirs.sshd_pid(),
            Duration::from_secs(30),
        )?;
        self.lab.lock_children().push(child);
        Ok(())
    }

    /// Collects exit statuses of the lab's sshds that died, so no zombie lingers.
    fn reap(&self) {
        std::thread::sleep(Duration::from_millis(20));
        self.lab
            .lock_children()
            .retain_mut(|c| !matches!(c.try_wait(), Ok(Some(_))));
    }
}
