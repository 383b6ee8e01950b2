//! The containers of a host as `crictl ps` and `crictl exec` see them: the control-plane
//! static pods the emulated kubelet runs there (see `etcd::sync`).
//!
//! A container's id is new at each start of its pod (a sha256 of host, pod and start
//! time, as containerd makes a fresh one per container). `crictl exec` runs a program of
//! the container's image with the pod's mounts: kubeadm's etcd image holds `etcd`,
//! `etcdctl` and `etcdutl` (in /usr/local/bin, no shell: it is distroless), and its pod
//! mounts `/var/lib/etcd` and `/etc/kubernetes/pki/etcd` from the host, so those are
//! the only host files the program sees. The other control-plane images hold only their
//! own binary. Output and errors follow crictl 1.3x (`cmd/crictl/container.go`,
//! `exec.go`): `-q` prints full ids, the table truncates them to 13 characters, `--name`
//! is a regular expression, `--state` one of created/running/exited/unknown, a failed
//! exec is logrus's `level=fatal` line and exit 1, and so is a program that fails
//! ("command terminated with exit code N", after the program's own stderr).

use sha2::{Digest, Sha256};

use super::etcd::{self, EtcdState};
use super::{cluster, Invocation};

/// What each control-plane image holds besides its own binary, and what its pod mounts.
fn image_programs(pod: &str) -> (&'static [&'static str], &'static [&'static str]) {
    match pod {
        "etcd" => (
            &["etcd", "etcdctl", "etcdutl"],
            &["/var/lib/etcd", "/etc/kubernetes/pki/etcd"],
        ),
        "kube-apiserver" => (
            &["kube-apiserver"],
            &["/etc/kubernetes/pki", "/etc/ssl/certs"],
        ),
        "kube-controller-manager" => (
            &["kube-controller-manager"],
            &[
                "/etc/kubernetes/pki",
                "/etc/kubernetes/controller-manager.conf",
            ],
        ),
        "kube-scheduler" => (&["kube-scheduler"], &["/etc/kubernetes/scheduler.conf"]),
        _ => (&[], &[]),
    }
}

/// One running container of this host.
struct Container {
    id: String,
    pod_id: String,
    name: String,
    pod: String,
    image: String,
    started_ms: u64,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// This host's running control-plane containers, oldest first.
fn running(inv: &Invocation) -> Vec<Container> {
    let dir = inv.path(cluster::CLUSTER_DIR);
    let host = inv.hostname();
    let state = EtcdState::read(&dir);
    let Some(pods) = state.running.get(&host) else {
        return Vec::new();
    };
    let log = etcd::pod_log(&dir);
    let mut out: Vec<Container> = pods
        .iter()
        .map(|pod| {
            let started_ms = log
                .iter()
                .rev()
                .find(|e| e.host == host && &e.pod == pod && e.event == "started")
                .map_or(0, |e| e.at_ms);
            let seed = format!("{host}/{pod}/{started_ms}");
            let image = inv
                .read(&format!("/etc/kubernetes/manifests/{pod}.yaml"))
                .ok()
                .and_then(|m| {
                    m.lines().find_map(|l| {
                        l.trim()
                            .strip_prefix("image:")
                            .map(|i| i.trim().to_string())
                    })
                })
                .unwrap_or_default();
            Container {
                id: hex(&Sha256::digest(format!("container/{seed}"))),
                pod_id: hex(&Sha256::digest(format!("sandbox/{seed}"))),
                name: pod.clone(),
                pod: format!("{pod}-{host}"),
                image,
                started_ms,
            }
        })
        .collect();
    out.sort_by_key(|c| c.started_ms);
    out
}

/// Where crictl's subcommand is in `args`, past its global flags.
pub fn subcommand(args: &[String]) -> Option<usize> {
    let mut i = 0;
    while i < args.len() {
        let a = args[i].as_str();
        if matches!(
            a,
            "-r" | "--runtime-endpoint"
                | "-i"
                | "--image-endpoint"
                | "-t"
                | "--timeout"
                | "-c"
                | "--config"
        ) {
            i += 2;
        } else if a.starts_with('-') {
            i += 1;
        } else {
            return Some(i);
        }
    }
    None
}

fn fatal(inv: &mut Invocation, message: &str) -> i32 {
    inv.errln(&format!(
        "time=\"{}\" level=fatal msg=\"{}\"",
        cluster::rfc3339(cluster::now()),
        message.replace('"', "\\\"")
    ));
    1
}

/// A `--name` filter: crictl matches it as a regular expression; the anchors and plain
/// text that filters use are what this understands.
fn name_matches(pattern: &str, name: &str) -> bool {
    let starts = pattern.starts_with('^');
    let ends = pattern.ends_with('$');
    let core = pattern.trim_start_matches('^').trim_end_matches('$');
    match (starts, ends) {
        (true, true) => name == core,
        (true, false) => name.starts_with(core),
        (false, true) => name.ends_with(core),
        (false, false) => name.contains(core),
    }
}

fn ago(started_ms: u64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let s = now.saturating_sub(started_ms) / 1000;
    match s {
        0..=59 => format!("{s} seconds ago"),
        60..=119 => "About a minute ago".into(),
        _ if s < 3600 => format!("{} minutes ago", s / 60),
        _ => format!("{} hours ago", s / 3600),
    }
}

/// `crictl ps [-a] [-q] [--name RE] [--state S] [--pod ID] [--no-trunc]`.
pub fn ps(inv: &mut Invocation, args: &[String]) -> i32 {
    let mut quiet = false;
    let mut no_trunc = false;
    let mut name = None;
    let mut state = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let (flag, inline) = match a.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v.to_string())),
            _ => (a.as_str(), None),
        };
        let mut value = || inline.clone().or_else(|| it.next().cloned());
        match flag {
            "-q" | "--quiet" => quiet = true,
            "-a" | "--all" | "-v" | "--verbose" | "-l" | "--latest" => {}
            "--no-trunc" => no_trunc = true,
            "--name" => name = value(),
            "--state" | "-s" => state = value(),
            "--pod" | "-p" | "--id" | "--label" | "--image" | "-o" | "--output" | "-n"
            | "--last" | "--namespace" => {
                value();
            }
            other => {
                return fatal(
                    inv,
                    &format!(
                        "flag provided but not defined: -{}",
                        other.trim_start_matches('-')
                    ),
                )
            }
        }
    }
    if let Some(s) = &state {
        let s = s.to_lowercase();
        if !matches!(s.as_str(), "created" | "running" | "exited" | "unknown") {
            return fatal(
                inv,
                &format!("listing containers: unsupported state: {s:?}"),
            );
        }
    }
    // Only running containers exist here: a stopped static pod's container is removed.
    let wanted_running = state
        .as_deref()
        .is_none_or(|s| s.eq_ignore_ascii_case("running"));
    let containers: Vec<Container> = running(inv)
        .into_iter()
        .filter(|c| wanted_running && name.as_deref().is_none_or(|n| name_matches(n, &c.name)))
        .collect();
    if quiet {
        for c in &containers {
            inv.outln(&c.id);
        }
        return 0;
    }
    let cut = |id: &str| {
        if no_trunc {
            id.to_string()
        } else {
            id[..13].to_string()
        }
    };
    inv.outln("CONTAINER           IMAGE               CREATED             STATE               NAME                ATTEMPT             POD ID              POD");
    for c in &containers {
        let image_id = hex(&Sha256::digest(c.image.as_bytes()));
        inv.outln(&format!(
            "{:<19} {:<19} {:<19} {:<19} {:<19} {:<19} {:<19} {}",
            cut(&c.id),
            cut(&image_id),
            ago(c.started_ms),
            "Running",
            c.name,
            0,
            cut(&c.pod_id),
            c.pod
        ));
    }
    0
}

/// `crictl exec [-i] [-t] [-s] [--timeout D] CONTAINER COMMAND [ARG...]`.
pub fn exec(inv: &mut Invocation, args: &[String]) -> i32 {
    let mut rest = args.iter().peekable();
    while let Some(a) = rest.peek() {
        match a.as_str() {
            "-i" | "--interactive" | "-t" | "--tty" | "-s" | "--sync" | "-q" => {
                rest.next();
            }
            "--timeout" => {
                rest.next();
                rest.next();
            }
            a if a.starts_with("--timeout=") => {
                rest.next();
            }
            _ => break,
        }
    }
    let Some(id) = rest.next() else {
        return fatal(inv, "ID cannot be empty");
    };
    let Some(program) = rest.next() else {
        return fatal(inv, "command is required");
    };
    let argv: Vec<String> = rest.cloned().collect();
    let matching: Vec<Container> = running(inv)
        .into_iter()
        .filter(|c| !id.is_empty() && c.id.starts_with(id.as_str()))
        .collect();
    let container = match matching.as_slice() {
        [one] => one,
        [] => {
            return fatal(
                inv,
                &format!("execing command in container: rpc error: code = NotFound desc = an error occurred when try to find container {id:?}: not found"),
            )
        }
        _ => {
            return fatal(
                inv,
                &format!("execing command in container: rpc error: code = NotFound desc = an error occurred when try to find container {id:?}: ambiguous ID"),
            )
        }
    };
    let (programs, mounts) = image_programs(&container.name);
    let tool = program.rsplit('/').next().unwrap_or(program);
    let on_path = !program.contains('/') || program == &format!("/usr/local/bin/{tool}");
    if on_path && programs.contains(&tool) && !matches!(tool, "etcdctl" | "etcdutl") {
        inv.errln(&format!(
            "k8sup-lab: {tool} run by crictl exec is not emulated"
        ));
        return 127;
    }
    if !on_path || !programs.contains(&tool) {
        return fatal(
            inv,
            &format!(
                "execing command in container: rpc error: code = Unknown desc = failed to exec in container: failed to start exec {:?}: OCI runtime exec failed: exec failed: unable to start container process: exec: {program:?}: executable file not found in $PATH: unknown",
                container.id
            ),
        );
    }
    let mut inner = Invocation {
        root: inv.root.clone(),
        tool: tool.to_string(),
        args: argv,
        uid: 0,
        stdout: String::new(),
        stderr: String::new(),
        mounts: Some(mounts.iter().map(|m| m.to_string()).collect()),
    };
    let status = match tool {
        "etcdctl" => etcd::run_etcdctl(&mut inner),
        _ => etcd::run_etcdutl(&mut inner),
    };
    inv.stdout.push_str(&inner.stdout);
    inv.stderr.push_str(&inner.stderr);
    if status == 0 {
        return 0;
    }
    // crictl does not pass the program's status on: it fails itself, saying which.
    fatal(
        inv,
        &format!("execing command in container: command terminated with exit code {status}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::distro::{Arch, Distro};
    use crate::emu::testing::FakeHost;

    /// A host whose kubelet runs etcd and the API server (as `etcd::sync` records it),
    /// with kubeadm's manifests and etcd's client files.
    fn master() -> FakeHost {
        let h = FakeHost::new(Distro::Ubuntu2204, Arch::Amd64);
        let dir = cluster::CLUSTER_DIR;
        h.write(
            &format!("{dir}/etcd.json"),
            r#"{"cluster_id":"c","running":{"node-1":["etcd","kube-apiserver"]},"members":["node-1"],"revision":3,"store_hash":""}"#,
        );
        h.write(
            &format!("{dir}/static-pods.log"),
            "{\"at_ms\":1000,\"host\":\"node-1\",\"pod\":\"etcd\",\"event\":\"started\"}\n",
        );
        h.write(
            "/etc/kubernetes/manifests/etcd.yaml",
            "spec:\n  containers:\n  - image: registry.k8s.io/etcd:3.5.12-0\n",
        );
        for f in ["ca.crt", "healthcheck-client.crt", "healthcheck-client.key"] {
            h.write(&format!("/etc/kubernetes/pki/etcd/{f}"), "pem\n");
        }
        h.write("/etc/kubernetes/pki/apiserver-etcd-client.crt", "pem\n");
        h
    }

    fn inv(h: &FakeHost) -> Invocation {
        Invocation::new(&h.root, "crictl", &[], 0)
    }

    fn ps(h: &FakeHost, args: &[&str]) -> (i32, String, String) {
        let mut i = inv(h);
        let status = super::ps(
            &mut i,
            &args.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
        );
        (status, i.stdout, i.stderr)
    }

    fn exec(h: &FakeHost, args: &[&str]) -> (i32, String, String) {
        let mut i = inv(h);
        let status = super::exec(
            &mut i,
            &args.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
        );
        (status, i.stdout, i.stderr)
    }

    #[test]
    fn ps_lists_running_containers_filtered_by_name_with_full_ids_when_quiet() {
        let h = master();
        let (status, out, _) = ps(&h, &["--name", "^etcd$", "--state", "Running", "-q"]);
        assert_eq!(status, 0);
        let ids: Vec<&str> = out.lines().collect();
        assert_eq!(ids.len(), 1, "{out}");
        assert_eq!(ids[0].len(), 64);
        let (_, table, _) = ps(&h, &[]);
        assert!(table.starts_with("CONTAINER "), "{table}");
        assert!(
            table.contains(&ids[0][..13]) && !table.contains(ids[0]),
            "{table}"
        );
        assert!(table.contains("kube-apiserver-node-1"), "{table}");
        let (_, exited, _) = ps(&h, &["--state", "exited", "-q"]);
        assert!(exited.is_empty());
        let (status, _, err) = ps(&h, &["--state", "sleeping"]);
        assert_eq!(status, 1);
        assert!(err.contains("level=fatal"), "{err}");
    }

    #[test]
    fn exec_runs_the_image_s_etcdctl_seeing_only_the_pod_s_mounts() {
        let h = master();
        let (_, id, _) = ps(&h, &["--name", "^etcd$", "-q"]);
        let id = id.trim();
        let (status, out, _) = exec(&h, &[id, "etcdctl", "version"]);
        assert_eq!(status, 0);
        assert!(out.contains("etcdctl version: 3.5"), "{out}");
        // The API server's etcd client certificate is not mounted into etcd's pod.
        let (status, _, err) = exec(
            &h,
            &[
                id,
                "etcdctl",
                "--endpoints=https://127.0.0.1:2379",
                "--cacert=/etc/kubernetes/pki/etcd/ca.crt",
                "--cert=/etc/kubernetes/pki/apiserver-etcd-client.crt",
                "--key=/etc/kubernetes/pki/etcd/healthcheck-client.key",
                "endpoint",
                "health",
            ],
        );
        assert_eq!(status, 1);
        assert!(
            err.contains(
                "open /etc/kubernetes/pki/apiserver-etcd-client.crt: no such file or directory"
            ),
            "{err}"
        );
        assert!(
            err.trim_end().ends_with(
                "level=fatal msg=\"execing command in container: command terminated with exit code 1\""
            ),
            "{err}"
        );
        // A snapshot file outside the mounts is not the host's.
        let (status, _, err) = exec(&h, &[id, "etcdutl", "snapshot", "status", "/var/tmp/x.db"]);
        assert_eq!(status, 1);
        assert!(err.contains("no such file or directory"), "{err}");
        // The image is distroless: no shell.
        let (status, _, err) = exec(&h, &[id, "sh", "-c", "true"]);
        assert_eq!(status, 1);
        assert!(
            err.contains("exec: \\\"sh\\\": executable file not found in $PATH"),
            "{err}"
        );
        let (status, _, err) = exec(&h, &["0123456789ab", "etcdctl", "version"]);
        assert_eq!(status, 1);
        assert!(err.contains("code = NotFound"), "{err}");
    }
}
