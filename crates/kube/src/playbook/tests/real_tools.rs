//! The real programs judge what the default playbook writes, for every host of
//! the test inventories and of `inventories/*.toml` on Ubuntu, Debian, Rocky and
//! CentOS: Debian's containerd parses every containerd config (and the dump says
//! what the inventory asked for), systemd-analyze verifies every unit, apt reads
//! every sources file, kubernetes-validate checks every CNI manifest against the
//! cluster's minor, Docker's daemon.json holds only keys of the dockerd
//! reference, and shellcheck finds nothing in any command the playbook runs.
//!
//! The programs come from `tests/real-tools` (which tests/run calls) under
//! `$K8SUP_REAL_TOOLS` (default `target/real-tools`). Without them a test says
//! SKIPPED, except under CI (`CI=true`) or tests/run (`K8SUP_REQUIRE_LAB=1`),
//! where a missing tool fails it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use k8sup_inventory::{CgroupDriver, Inventory, LoadContext};

use super::{playbook, render_host_with, render_playbook};
use crate::testing::{inventory, HA, HA_LOCAL, SOLO_DOCKER};

const WORKSPACE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

/// The distributions each inventory is rendered for: (family, (id, version)).
const SYSTEMS: [(&str, (&str, &str)); 4] = [
    ("debian", ("ubuntu", "22.04")),
    ("debian", ("debian", "12")),
    ("redhat", ("rocky", "9.4")),
    ("redhat", ("centos", "7")),
];

/// One file the playbook writes on one host.
struct Written {
    /// `inventory host system`, for messages.
    at: String,
    path: String,
    content: String,
    /// The host's architecture (`amd64`, `arm64`).
    arch: String,
    inventory: usize,
}

/// The inventories (with the Calico manifest text where they name one) and every file
/// the playbook writes on each of their hosts, on each system.
fn everything_written() -> (Vec<Inventory>, Vec<Written>) {
    let mut inventories = vec![
        ("HA".to_string(), inventory(HA)),
        ("SOLO_DOCKER".to_string(), inventory(SOLO_DOCKER)),
        ("HA_LOCAL".to_string(), inventory(HA_LOCAL)),
    ];
    let dir = Path::new(WORKSPACE).join("inventories");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    assert!(files.len() >= 4, "{files:?}");
    for path in files {
        let text = std::fs::read(&path).unwrap();
        let inv = Inventory::from_bytes(&path, &text, &LoadContext::for_file(&path))
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        inventories.push((path.display().to_string(), inv));
    }
    let calico = calico();
    let file_tasks: Vec<String> = playbook()
        .all_tasks()
        .filter(|(_, t)| matches!(t.action, k8sup_engine::Action::File(_)))
        .map(|(_, t)| t.id.clone())
        .collect();
    let mut written = Vec::new();
    for (n, (name, inv)) in inventories.iter().enumerate() {
        let source = (inv.cluster.cni == k8sup_inventory::Cni::Calico).then_some(calico.as_str());
        for (family, os) in SYSTEMS {
            for host in &inv.hosts {
                let rendered = render_host_with(inv, host, family, os, source);
                for (id, fields) in rendered {
                    if !file_tasks.contains(&id) {
                        continue;
                    }
                    written.push(Written {
                        at: format!("{name} {} {} {}", host.name, os.0, os.1),
                        path: fields[0].clone(),
                        content: fields[1].clone(),
                        arch: host.arch.map_or("amd64", |a| a.as_str()).to_string(),
                        inventory: n,
                    });
                }
            }
        }
    }
    (
        inventories.into_iter().map(|(_, inv)| inv).collect(),
        written,
    )
}

/// The directory `tests/real-tools` fills.
fn tools_dir() -> PathBuf {
    std::env::var_os("K8SUP_REAL_TOOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(WORKSPACE).join("target/real-tools"))
}

/// `path` when it is an executable, or `None` after saying SKIPPED; fails the test
/// instead under CI or tests/run.
fn tool(path: PathBuf) -> Option<PathBuf> {
    if path.is_file() {
        return Some(path);
    }
    let required = ["CI", "K8SUP_REQUIRE_LAB"]
        .iter()
        .any(|name| std::env::var(name).is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true")));
    let why = format!("{} is missing: run tests/real-tools", path.display());
    assert!(
        !required,
        "{why} (CI=true or K8SUP_REQUIRE_LAB=1 requires it)"
    );
    eprintln!("SKIPPED: {why}");
    None
}

fn run(command: &mut Command) -> Output {
    command
        .output()
        .unwrap_or_else(|e| panic!("{command:?}: {e}"))
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn containerd_reads_every_containerd_config_as_the_inventory_says() {
    let Some(containerd) = tool(tools_dir().join("root/usr/bin/containerd")) else {
        return;
    };
    let (inventories, written) = everything_written();
    let dir = tempfile::tempdir().unwrap();
    let mut checked = 0;
    for file in written
        .iter()
        .filter(|w| w.path == "/etc/containerd/config.toml")
    {
        let path = dir.path().join("config.toml");
        std::fs::write(&path, &file.content).unwrap();
        let out = run(Command::new(&containerd)
            .arg("--config")
            .arg(&path)
            .args(["config", "dump"]));
        assert!(out.status.success(), "{}: {}", file.at, text(&out));
        let dump: toml::Table = toml::from_str(&String::from_utf8_lossy(&out.stdout))
            .unwrap_or_else(|e| panic!("{}: the dump: {e}", file.at));
        let cri = &dump["plugins"]["io.containerd.grpc.v1.cri"];
        let inv = &inventories[file.inventory];
        assert_eq!(
            cri["sandbox_image"].as_str(),
            Some(inv.pause_image().as_str()),
            "{}",
            file.at
        );
        let options = &cri["containerd"]["runtimes"]["runc"]["options"];
        assert_eq!(
            options["SystemdCgroup"].as_bool(),
            Some(inv.cluster.cgroup_driver == CgroupDriver::Systemd),
            "{}: {options}",
            file.at
        );
        checked += 1;
    }
    assert!(checked >= 8, "only {checked} containerd configs");
}

#[test]
fn systemd_analyze_verifies_every_unit() {
    // The machine's (Debian's systemd), or the one tests/real-tools unpacked.
    let machine = Path::new("/usr/bin/systemd-analyze").is_file();
    let systemd = if machine {
        PathBuf::from("/")
    } else {
        tools_dir().join("root")
    };
    let Some(analyze) = tool(systemd.join("usr/bin/systemd-analyze")) else {
        return;
    };
    let (_, written) = everything_written();
    let mut checked = 0;
    let mut hosts: BTreeMap<&str, Vec<&Written>> = BTreeMap::new();
    for file in &written {
        hosts.entry(&file.at).or_default().push(file);
    }
    for (at, files) in hosts {
        let units: Vec<&&Written> = files
            .iter()
            .filter(|f| {
                f.path.starts_with("/etc/systemd/") || f.path.starts_with("/usr/lib/systemd/")
            })
            .collect();
        if units.is_empty() {
            continue;
        }
        // A root with systemd's own units, the host's files k8sup writes (programs
        // it uploads among them), and the machine's programs the units name.
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("usr/lib/systemd")).unwrap();
        let status = Command::new("cp")
            .arg("-a")
            .arg(systemd.join("usr/lib/systemd/system"))
            .arg(root.path().join("usr/lib/systemd/"))
            .status()
            .unwrap();
        assert!(status.success());
        for file in &files {
            let path = root.path().join(file.path.trim_start_matches('/'));
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &file.content).unwrap();
            use std::os::unix::fs::PermissionsExt;
            // Programs k8sup uploads are executable; units must not be.
            let mode = if file.path.contains("/bin/") {
                0o755
            } else {
                0o644
            };
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        }
        for unit in &units {
            for line in unit.content.lines() {
                let Some((key, value)) = line.split_once('=') else {
                    continue;
                };
                if !key.starts_with("Exec") {
                    continue;
                }
                let program = value.trim_start_matches(['-', '@', '+', '!', ':']);
                let program = program.split_whitespace().next().unwrap_or("");
                let inside = root.path().join(program.trim_start_matches('/'));
                if program.starts_with('/') && !inside.exists() {
                    std::fs::create_dir_all(inside.parent().unwrap()).unwrap();
                    std::fs::copy(program, &inside)
                        .unwrap_or_else(|e| panic!("{at}: {program} named by {}: {e}", unit.path));
                }
            }
        }
        for unit in units {
            assert!(
                [".service", ".socket", ".timer", ".target", ".path", ".mount"]
                    .iter()
                    .any(|s| unit.path.ends_with(s)),
                "{at}: {} is not a unit this test knows how to verify",
                unit.path
            );
        }
        let names: Vec<&str> = files
            .iter()
            .filter(|f| f.path.starts_with("/etc/systemd/"))
            .map(|f| f.path.as_str())
            .collect();
        let out = run(Command::new(&analyze)
            .env(
                "LD_LIBRARY_PATH",
                systemd.join("usr/lib/x86_64-linux-gnu/systemd"),
            )
            .arg("verify")
            .arg("--man=no")
            .arg(format!("--root={}", root.path().display()))
            .args(&names));
        assert!(
            out.status.success() && text(&out).trim().is_empty(),
            "{at}: systemd-analyze verify {names:?}: {}",
            text(&out)
        );
        checked += names.len();
    }
    assert!(checked >= 8, "only {checked} units");
}

#[test]
fn haproxy_accepts_every_balancer_config() {
    let root = tools_dir().join("root");
    let Some(haproxy) = tool(root.join("usr/sbin/haproxy")) else {
        return;
    };
    let (_, written) = everything_written();
    let dir = tempfile::tempdir().unwrap();
    let mut checked = 0;
    for file in written
        .iter()
        .filter(|w| w.path == crate::balancer::HAPROXY_CFG_PATH)
    {
        let path = dir.path().join("haproxy.cfg");
        std::fs::write(&path, &file.content).unwrap();
        // Its libraries (lua, opentracing) were unpacked beside it.
        let out = run(Command::new(&haproxy)
            .env("LD_LIBRARY_PATH", root.join("usr/lib/x86_64-linux-gnu"))
            .arg("-c")
            .arg("-f")
            .arg(&path));
        let output = text(&out);
        assert!(
            out.status.success() && !output.contains("[WARNING]"),
            "{}: haproxy -c: {output}\n{}",
            file.at,
            file.content
        );
        checked += 1;
    }
    assert!(checked >= 4, "only {checked} balancer configs");
}

#[test]
fn apt_reads_every_sources_file() {
    let Some(apt_get) = tool(PathBuf::from("/usr/bin/apt-get")) else {
        return;
    };
    let (_, written) = everything_written();
    let mut checked = 0;
    for file in written
        .iter()
        .filter(|w| w.path.starts_with("/etc/apt/sources.list.d/"))
    {
        // A private apt: only this file as sources, its own lists and cache.
        let dir = tempfile::tempdir().unwrap();
        let parts = dir.path().join("sources.list.d");
        for sub in [
            "sources.list.d",
            "lists/partial",
            "cache/archives/partial",
            "state",
        ] {
            std::fs::create_dir_all(dir.path().join(sub)).unwrap();
        }
        let name = Path::new(&file.path).file_name().unwrap();
        std::fs::write(parts.join(name), &file.content).unwrap();
        let option = |key: &str, value: &Path| format!("{key}={}", value.display());
        let out = run(Command::new(&apt_get)
            .args(["--print-uris", "update", "-o", "Debug::NoLocking=1"])
            .args(["-o", "Dir::Etc::SourceList=/dev/null"])
            .arg("-o")
            .arg(option("Dir::Etc::SourceParts", &parts))
            .arg("-o")
            .arg(option("Dir::State", &dir.path().join("state")))
            .arg("-o")
            .arg(option("Dir::State::Lists", &dir.path().join("lists")))
            .arg("-o")
            .arg(option("Dir::Cache", &dir.path().join("cache")))
            .arg("-o")
            .arg(format!("APT::Architecture={}", file.arch))
            .env("LC_ALL", "C"));
        let output = text(&out);
        assert!(
            out.status.success()
                && !output
                    .lines()
                    .any(|l| l.starts_with("E:") || l.starts_with("W:")),
            "{} {}: {output}\n{}",
            file.at,
            file.path,
            file.content
        );
        // Every repository of the file is one apt would fetch.
        for line in file.content.lines().filter(|l| l.starts_with("deb ")) {
            let url = line
                .split_whitespace()
                .find(|w| w.starts_with("http"))
                .unwrap_or_else(|| panic!("{}: no URL in {line}", file.at));
            assert!(
                output.contains(&format!("'{}", url.trim_end_matches('/'))),
                "{}: apt would not fetch {url}: {output}",
                file.at
            );
        }
        checked += 1;
    }
    assert!(checked >= 8, "only {checked} sources files");
}

#[test]
fn kubernetes_validate_accepts_every_cni_manifest_for_the_clusters_minor() {
    let Some(validate) = tool(tools_dir().join("venv/bin/kubernetes-validate")) else {
        return;
    };
    let (inventories, written) = everything_written();
    let dir = tempfile::tempdir().unwrap();
    let mut seen = std::collections::BTreeSet::new();
    for file in written
        .iter()
        .filter(|w| w.path == crate::context::CNI_MANIFEST_PATH)
    {
        // The same manifest on many hosts is validated once.
        if !seen.insert((file.inventory, file.content.clone())) {
            continue;
        }
        let inv = &inventories[file.inventory];
        let minor = inv.cluster.kubernetes_version.minor;
        let path = dir.path().join("cni.yaml");
        std::fs::write(&path, &file.content).unwrap();
        let out = run(Command::new(&validate)
            .arg("--strict")
            .arg("--kubernetes-version")
            .arg(format!("1.{minor}.0"))
            .arg(&path));
        assert!(out.status.success(), "{}: {}", file.at, text(&out));
    }
    assert!(seen.len() >= 3, "only {} manifests", seen.len());
}

/// The top-level keys of daemon.json on Linux, as the dockerd reference lists them
/// (https://docs.docker.com/reference/cli/dockerd/#daemon-configuration-file); the
/// daemon refuses to start on a key it does not know.
const DOCKERD_KEYS: &[&str] = &[
    "authorization-plugins",
    "bip",
    "bip6",
    "bridge",
    "builder",
    "cdi-spec-dirs",
    "cgroup-parent",
    "containerd",
    "containerd-namespace",
    "containerd-plugins-namespace",
    "data-root",
    "debug",
    "default-address-pools",
    "default-cgroupns-mode",
    "default-gateway",
    "default-gateway-v6",
    "default-network-opts",
    "default-ipc-mode",
    "default-runtime",
    "default-shm-size",
    "default-ulimits",
    "dns",
    "dns-opts",
    "dns-search",
    "exec-opts",
    "exec-root",
    "experimental",
    "features",
    "fixed-cidr",
    "fixed-cidr-v6",
    "group",
    "host-gateway-ip",
    "hosts",
    "proxies",
    "icc",
    "init",
    "init-path",
    "insecure-registries",
    "ip",
    "ip-forward",
    "ip-masq",
    "iptables",
    "ip6tables",
    "ipv6",
    "labels",
    "live-restore",
    "log-driver",
    "log-format",
    "log-level",
    "log-opts",
    "max-concurrent-downloads",
    "max-concurrent-uploads",
    "max-download-attempts",
    "mtu",
    "no-new-privileges",
    "node-generic-resources",
    "oom-score-adjust",
    "pidfile",
    "raw-logs",
    "registry-mirrors",
    "runtimes",
    "seccomp-profile",
    "selinux-enabled",
    "shutdown-timeout",
    "storage-driver",
    "storage-opts",
    "swarm-default-advertise-addr",
    "tls",
    "tlscacert",
    "tlscert",
    "tlskey",
    "tlsverify",
    "userland-proxy",
    "userland-proxy-path",
    "userns-remap",
];

/// The options of the json-file log driver (docs.docker.com/engine/logging/drivers/json-file).
const JSON_FILE_LOG_OPTS: &[&str] = &[
    "max-size",
    "max-file",
    "labels",
    "labels-regex",
    "env",
    "env-regex",
    "compress",
    "tag",
];

#[test]
fn docker_daemon_json_holds_only_keys_dockerd_knows() {
    let (inventories, written) = everything_written();
    let mut checked = 0;
    for file in written
        .iter()
        .filter(|w| w.path == "/etc/docker/daemon.json")
    {
        let doc: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&file.content).unwrap_or_else(|e| panic!("{}: {e}", file.at));
        for key in doc.keys() {
            assert!(
                DOCKERD_KEYS.contains(&key.as_str()),
                "{}: unknown key {key}",
                file.at
            );
        }
        if doc.get("log-driver").and_then(|d| d.as_str()) == Some("json-file") {
            for key in doc["log-opts"].as_object().unwrap().keys() {
                assert!(
                    JSON_FILE_LOG_OPTS.contains(&key.as_str()),
                    "{}: log-opts {key}",
                    file.at
                );
            }
        }
        let driver = match inventories[file.inventory].cluster.cgroup_driver {
            CgroupDriver::Systemd => "native.cgroupdriver=systemd",
            CgroupDriver::Cgroupfs => "native.cgroupdriver=cgroupfs",
        };
        assert_eq!(doc["exec-opts"], serde_json::json!([driver]), "{}", file.at);
        checked += 1;
    }
    assert!(checked >= 4, "only {checked} daemon.json");
}

/// Every command the default playbook runs (`cmd`, `unless`, a fetch's `cmd`), as
/// rendered for every host of the test inventories and of `inventories/*.toml` on each
/// system, passes Debian's shellcheck as POSIX `sh`: hosts run them with `sh`. The
/// values another host provides (shown as placeholders in a plan) are given the form
/// they have in a run.
#[test]
fn shellcheck_passes_every_rendered_command() {
    let calico = calico();
    shellcheck_rendered(&playbook(), 30, |inv, host, family, os| {
        let source = (inv.cluster.cni == k8sup_inventory::Cni::Calico).then_some(calico.as_str());
        render_host_with(inv, host, family, os, source)
    });
}

/// The same for the upgrade playbook, with every phase selected, as rendered for a hop
/// to each inventory's version.
#[test]
fn shellcheck_passes_every_rendered_upgrade_command() {
    let upgrade = k8sup_engine::Playbook::parse(
        crate::playbook::UPGRADE_PLAYBOOK_NAME,
        crate::playbook::UPGRADE_PLAYBOOK,
    )
    .unwrap();
    let calico = calico();
    shellcheck_rendered(&upgrade, 8, |inv, host, family, os| {
        let source = (inv.cluster.cni == k8sup_inventory::Cni::Calico).then_some(calico.as_str());
        render_playbook(&upgrade, inv, host, family, os, source, |context| {
            context["upgrade"] =
                crate::upgrade::context(inv, host, &crate::upgrade::Phase::ALL).unwrap();
        })
    });
}

/// The Calico manifest the inventories that name one are given.
fn calico() -> String {
    std::fs::read_to_string(Path::new(WORKSPACE).join("tests/manifests/calico.yaml"))
        .expect("tests/manifests/calico.yaml")
}

/// Runs shellcheck on every command of `playbook` as `render` renders it for every host
/// of the inventories on every system (each distinct text once; at least `least`).
fn shellcheck_rendered(
    playbook: &k8sup_engine::Playbook,
    least: usize,
    render: impl Fn(
        &Inventory,
        &k8sup_inventory::Host,
        &str,
        (&str, &str),
    ) -> BTreeMap<String, Vec<String>>,
) {
    let Some(shellcheck) = tool(tools_dir().join("root/usr/bin/shellcheck")) else {
        return;
    };
    let (inventories, _) = everything_written();
    // task id -> which of its rendered fields are shell (see `fields`).
    let shell_fields: BTreeMap<String, Vec<usize>> = playbook
        .all_tasks()
        .filter_map(|(_, t)| match &t.action {
            k8sup_engine::Action::Command(c) => Some((
                t.id.clone(),
                if c.unless.is_some() {
                    vec![0, 1 + usize::from(c.creates.is_some())]
                } else {
                    vec![0]
                },
            )),
            k8sup_engine::Action::Fetch(_) => Some((t.id.clone(), vec![0])),
            _ => None,
        })
        .collect();
    let provided = [
        (
            "<join_credentials from m1>",
            "abcdef.0123456789abcdef sha256:0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0",
        ),
        (
            "<certificate_key from m1>",
            "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0",
        ),
        (
            "<control_plane_images from m1>",
            "registry.k8s.io/kube-apiserver:v1.30.4 registry.k8s.io/pause:3.9",
        ),
    ];
    let dir = tempfile::tempdir().unwrap();
    let mut seen = std::collections::BTreeSet::new();
    let mut files = Vec::new();
    for inv in &inventories {
        for (family, os) in SYSTEMS {
            for host in &inv.hosts {
                for (id, fields) in render(inv, host, family, os) {
                    let Some(which) = shell_fields.get(&id) else {
                        continue;
                    };
                    for &i in which {
                        let mut code = fields[i].clone();
                        for (placeholder, value) in provided {
                            code = code.replace(placeholder, value);
                        }
                        // The same text once, whichever host rendered it.
                        if !seen.insert(code.clone()) {
                            continue;
                        }
                        let name = format!("{}-{}.sh", id.replace('/', "_"), files.len());
                        let path = dir.path().join(name);
                        std::fs::write(&path, format!("{code}\n")).unwrap();
                        files.push(path);
                    }
                }
            }
        }
    }
    assert!(files.len() >= least, "{} commands", files.len());
    let out = run(Command::new(&shellcheck)
        .args(["--shell=sh", "--severity=style", "--format=gcc"])
        .args(&files));
    let findings = String::from_utf8_lossy(&out.stdout);
    let shown: Vec<String> = findings
        .lines()
        .map(|line| {
            let file = line.split(':').next().unwrap_or_default();
            let code = std::fs::read_to_string(file).unwrap_or_default();
            format!(
                "{line}\n    in: {}",
                code.lines().take(3).collect::<Vec<_>>().join(" / ")
            )
        })
        .collect();
    assert!(
        out.status.success() && findings.trim().is_empty(),
        "shellcheck on {} rendered commands:\n{}\n{}",
        files.len(),
        shown.join("\n"),
        String::from_utf8_lossy(&out.stderr)
    );
}
