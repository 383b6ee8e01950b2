//! Reaching lab hosts with the system's OpenSSH client, as a person or a
//! test would (the lab's key, its known_hosts, strict host key checking),
//! and telling whether a lab can run on this machine at all.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Output};

use crate::lab::Lab;

/// `etcdctl` as a test runs it on a stock kubeadm master: the etcd container's (the
/// host has none), through `crictl exec`, with the client certificate its pod mounts;
/// the subcommand follows.
pub const KUBEADM_ETCDCTL: &str = "crictl -r unix:///run/containerd/containerd.sock exec $(crictl ps --name '^etcd$' -q 2>/dev/null) etcdctl --endpoints=https://127.0.0.1:2379 --cacert=/etc/kubernetes/pki/etcd/ca.crt --cert=/etc/kubernetes/pki/etcd/healthcheck-client.crt --key=/etc/kubernetes/pki/etcd/healthcheck-client.key";

/// Why a lab cannot run here, or `None` when it can (root, OpenSSH server and client).
pub fn unavailable() -> Option<&'static str> {
    if !crate::sys::is_root() {
        return Some("the lab needs root (mounts, chroot, sshd)");
    }
    if !Path::new("/usr/sbin/sshd").exists() || !Path::new("/usr/bin/ssh").exists() {
        return Some("the lab needs openssh-server and openssh-client");
    }
    None
}

/// Whether a test that cannot start must fail instead of skipping: under CI
/// (`CI=true`) or when `tests/run` runs the whole suite (`K8SUP_REQUIRE_LAB=1`).
pub fn required() -> bool {
    ["CI", "K8SUP_REQUIRE_LAB"]
        .iter()
        .any(|name| std::env::var(name).is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true")))
}

/// Says why a test does not run (`SKIPPED: why`), or fails it where a skip would
/// hide that it never ran ([`required`]).
pub fn skip(why: &str) {
    assert!(
        !required(),
        "this test cannot run ({why}), and CI=true or K8SUP_REQUIRE_LAB=1 requires it"
    );
    eprintln!("SKIPPED: {why}");
}

impl Lab {
    /// Runs `command` on host `host` as `user` through `ssh` to `address`
    /// (the host's own sshd, or its latency proxy).
    pub fn ssh_via(
        &self,
        address: SocketAddr,
        user: &str,
        command: &str,
    ) -> std::io::Result<Output> {
        Command::new("ssh")
            .arg("-i")
            .arg(self.private_key())
            .arg("-o")
            .arg(format!(
                "UserKnownHostsFile={}",
                self.known_hosts().display()
            ))
            .args(["-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes"])
            .args(["-o", "ConnectTimeout=10", "-o", "LogLevel=ERROR", "-p"])
            .arg(address.port().to_string())
            .arg(format!("{user}@{}", address.ip()))
            .arg(command)
            .output()
    }

    /// Runs `command` as root on host `host`.
    pub fn ssh(&self, host: &str, command: &str) -> crate::Result<Output> {
        let h = self.host(host)?;
        self.ssh_via(h.ssh_addr(), "root", command)
            .map_err(crate::LabError::host_io(host, "run ssh"))
    }

    /// Runs `kubectl` with the admin kubeconfig on `master`; its stdout, or an error
    /// with both streams.
    fn admin_kubectl(
        &self,
        master: &str,
        args: &str,
        stdin: Option<&str>,
    ) -> crate::Result<String> {
        let command = match stdin {
            // The manifest goes through a quoted here-document: no shell expansion.
            Some(text) => format!(
                "kubectl --kubeconfig=/etc/kubernetes/admin.conf {args} <<'K8SUP_LAB_EOF'\n{text}\nK8SUP_LAB_EOF"
            ),
            None => format!("kubectl --kubeconfig=/etc/kubernetes/admin.conf {args}"),
        };
        let out = self.ssh(master, &command)?;
        if out.status.success() {
            return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
        }
        Err(crate::LabError::Host {
            host: master.into(),
            step: "kubectl",
            message: format!(
                "`kubectl {args}` failed ({}): {}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        })
    }

    /// Plants, through kubectl on `master` (real YAML, validated like any apply), a
    /// Deployment `name` of `replicas` pods in `default` and a PodDisruptionBudget of
    /// the same name with `minAvailable: replicas`: every drain of a node running one of
    /// its pods is refused until [`Lab::remove_pdb`].
    pub fn plant_blocking_pdb(&self, master: &str, name: &str, replicas: u32) -> crate::Result<()> {
        let yaml = format!(
            "apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  namespace: default
spec:
  replicas: {replicas}
  selector:
    matchLabels: {{app: {name}}}
  template:
    metadata:
      labels: {{app: {name}}}
    spec:
      containers:
      - name: app
        image: registry.k8s.io/pause:3.10
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {name}
  namespace: default
spec:
  minAvailable: {replicas}
  selector:
    matchLabels: {{app: {name}}}"
        );
        self.admin_kubectl(master, "apply -f -", Some(&yaml))
            .map(|_| ())
    }

    /// Deletes the PodDisruptionBudget `name` (in `default`) planted by
    /// [`Lab::plant_blocking_pdb`]; its Deployment stays.
    pub fn remove_pdb(&self, master: &str, name: &str) -> crate::Result<()> {
        self.admin_kubectl(master, &format!("delete pdb {name} -n default"), None)
            .map(|_| ())
    }

    /// Every cordon and uncordon of the lab's cluster so far, oldest first, whichever
    /// host's kubectl made it (see [`crate::emu::cluster::most_cordoned_at_once`]).
    pub fn cordon_events(&self) -> crate::Result<Vec<crate::emu::cluster::CordonEvent>> {
        crate::emu::cluster::cordon_events(&self.cluster_dir()).map_err(|message| {
            crate::LabError::Lab {
                lab: self.name().into(),
                step: "read the cordon log",
                message,
            }
        })
    }
}
