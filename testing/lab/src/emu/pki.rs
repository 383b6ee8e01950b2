//! The control plane's certificates: `kubeadm certs check-expiration` and `kubeadm certs
//! renew`, and the kubelet's client certificate on every node.
//!
//! The dates of a master's kubeadm certificates are kept in the shared cluster directory
//! (`pki.json`, changed under the cluster lock), so a test can age one and a renewal shows
//! from every host. A master gets its certificates the first time the emulator sees its
//! control-plane manifests (`kubeadm init` or a control-plane `join` wrote them); the CAs
//! are the cluster's (ten years, as kubeadm makes them) and `renew` never touches them.
//!
//! The kubelet's client certificate (`/var/lib/kubelet/pki/kubelet-client-current.pem`) is a
//! real X.509 certificate made with the machine's `openssl`, followed by its key as the
//! real kubelet writes it, so a reader on the host must use a real X.509 parser.
//!
//! Output follows kubeadm 1.30 (`cmd/kubeadm/app/cmd/certs.go`): the two tables of
//! check-expiration with RESIDUAL TIME, CERTIFICATE AUTHORITY and EXTERNALLY MANAGED, the
//! `-o json|yaml` CertificateExpirationSummary, and renew's one line per certificate.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::cluster;
use super::Invocation;

/// The file in the cluster directory that holds every certificate's expiry.
const PKI_FILE: &str = "pki.json";
/// Where the kubelet keeps its rotating client certificate.
pub const KUBELET_CLIENT_PEM: &str = "/var/lib/kubelet/pki/kubelet-client-current.pem";
const KUBELET_CONF: &str = "/etc/kubernetes/kubelet.conf";
const APISERVER_MANIFEST: &str = "/etc/kubernetes/manifests/kube-apiserver.yaml";
const YEAR: u64 = 365 * 86_400;

/// A certificate kubeadm manages on a control-plane node.
struct Managed {
    name: &'static str,
    /// The file it lives in (a kubeconfig embeds it).
    file: &'static str,
    authority: &'static str,
    /// What `kubeadm certs renew` says it renewed.
    long_name: &'static str,
}

/// kubeadm's certificates, in the order check-expiration lists them.
const MANAGED: &[Managed] = &[
    Managed {
        name: "admin.conf",
        file: "/etc/kubernetes/admin.conf",
        authority: "ca",
        long_name: "certificate embedded in the kubeconfig file for the admin to use and for kubeadm itself",
    },
    Managed {
        name: "apiserver",
        file: "/etc/kubernetes/pki/apiserver.crt",
        authority: "ca",
        long_name: "certificate for serving the Kubernetes API",
    },
    Managed {
        name: "apiserver-etcd-client",
        file: "/etc/kubernetes/pki/apiserver-etcd-client.crt",
        authority: "etcd-ca",
        long_name: "certificate the apiserver uses to access etcd",
    },
    Managed {
        name: "apiserver-kubelet-client",
        file: "/etc/kubernetes/pki/apiserver-kubelet-client.crt",
        authority: "ca",
        long_name: "certificate for the API server to connect to kubelet",
    },
    Managed {
        name: "controller-manager.conf",
        file: "/etc/kubernetes/controller-manager.conf",
        authority: "ca",
        long_name: "certificate embedded in the kubeconfig file for the controller manager to use",
    },
    Managed {
        name: "etcd-healthcheck-client",
        file: "/etc/kubernetes/pki/etcd/healthcheck-client.crt",
        authority: "etcd-ca",
        long_name: "certificate for liveness probes to healthcheck etcd",
    },
    Managed {
        name: "etcd-peer",
        file: "/etc/kubernetes/pki/etcd/peer.crt",
        authority: "etcd-ca",
        long_name: "certificate for etcd nodes to communicate with each other",
    },
    Managed {
        name: "etcd-server",
        file: "/etc/kubernetes/pki/etcd/server.crt",
        authority: "etcd-ca",
        long_name: "certificate for serving etcd",
    },
    Managed {
        name: "front-proxy-client",
        file: "/etc/kubernetes/pki/front-proxy-client.crt",
        authority: "front-proxy-ca",
        long_name: "certificate for the front proxy client",
    },
    Managed {
        name: "scheduler.conf",
        file: "/etc/kubernetes/scheduler.conf",
        authority: "ca",
        long_name: "certificate embedded in the kubeconfig file for the scheduler manager to use",
    },
    Managed {
        name: "super-admin.conf",
        file: "/etc/kubernetes/super-admin.conf",
        authority: "ca",
        long_name: "certificate embedded in the kubeconfig file for the super-admin",
    },
];

/// The certificate authorities, with their files.
const AUTHORITIES: &[(&str, &str)] = &[
    ("ca", "/etc/kubernetes/pki/ca.crt"),
    ("etcd-ca", "/etc/kubernetes/pki/etcd/ca.crt"),
    ("front-proxy-ca", "/etc/kubernetes/pki/front-proxy-ca.crt"),
];

/// Every certificate's expiry (Unix seconds): the cluster's CAs, each master's certificates.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Pki {
    pub authorities: BTreeMap<String, u64>,
    /// host -> certificate name -> expiry.
    pub hosts: BTreeMap<String, BTreeMap<String, u64>>,
}

impl Pki {
    /// Reads the dates from a cluster directory (seen from inside or outside a host).
    pub fn read(dir: &Path) -> Pki {
        super::etcd::read_json(dir, PKI_FILE)
    }

    fn write(&self, dir: &Path) -> Result<(), String> {
        super::etcd::write_json(dir, PKI_FILE, self)
    }
}

/// After every emulated command: a new control plane gets its certificates (and the files
/// etcd's clients need), a node with a kubelet gets its client certificate.
pub fn sync(inv: &Invocation) {
    if !inv.path(cluster::CLUSTER_DIR).is_dir() {
        return;
    }
    let host = inv.hostname();
    if !inv.path("/etc/kubernetes/pki/ca.crt").exists() {
        // `kubeadm reset` took this host's certificates away.
        let dir = inv.path(cluster::CLUSTER_DIR);
        if Pki::read(&dir).hosts.contains_key(&host) {
            if let Ok(locked) = cluster::lock(inv) {
                let mut pki = Pki::read(&dir);
                pki.hosts.remove(&host);
                let _ = pki.write(&dir);
                drop(locked);
            }
        }
    }
    if inv.path(APISERVER_MANIFEST).exists() {
        let dir = inv.path(cluster::CLUSTER_DIR);
        if Pki::read(&dir).hosts.contains_key(&host) {
            return sync_kubelet(inv, &host);
        }
        let Ok(locked) = cluster::lock(inv) else {
            return;
        };
        let mut pki = Pki::read(&dir);
        if !pki.hosts.contains_key(&host) {
            let now = cluster::now();
            if pki.hosts.is_empty() {
                for (ca, _) in AUTHORITIES {
                    pki.authorities.insert(ca.to_string(), now + 10 * YEAR);
                }
            }
            let certs = MANAGED
                .iter()
                .map(|m| (m.name.to_string(), now + YEAR))
                .collect();
            pki.hosts.insert(host.clone(), certs);
            let _ = pki.write(&dir);
            write_pki_files(inv);
        }
        drop(locked);
    }
    sync_kubelet(inv, &host);
}

fn sync_kubelet(inv: &Invocation, host: &str) {
    if inv.path(KUBELET_CONF).exists() && !inv.path(KUBELET_CLIENT_PEM).exists() {
        if let Err(e) = write_kubelet_client(&inv.root, host, 365) {
            super::kubelet::log(inv, &format!("certificate_manager: {e}"));
        }
    }
}

/// The certificate and key files a control plane has beside ca.crt (not usable ones: the
/// emulators only check that they are there).
fn write_pki_files(inv: &Invocation) {
    let mut files: Vec<&str> = MANAGED
        .iter()
        .map(|m| m.file)
        .filter(|f| f.ends_with(".crt"))
        .collect();
    files.extend(
        AUTHORITIES
            .iter()
            .map(|(_, f)| *f)
            .filter(|f| !f.ends_with("/pki/ca.crt")),
    );
    for file in files {
        if inv.path(file).exists() {
            continue;
        }
        let name = file.rsplit('/').next().unwrap_or(file);
        let _ = inv.write(file, &super::kubeadm::ca_pem(name));
        let key = file.replace(".crt", ".key");
        let _ = inv.write(
            &key,
            "-----BEGIN RSA PRIVATE KEY-----\nk8sup-lab\n-----END RSA PRIVATE KEY-----\n",
        );
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(inv.path(&key), std::fs::Permissions::from_mode(0o600));
    }
}

/// Writes a real client certificate valid for `days`, then its key, as the kubelet does.
pub fn write_kubelet_client(root: &Path, node: &str, days: u32) -> Result<(), String> {
    let out = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "-",
            "-out",
            "-",
            "-subj",
            &format!("/O=system:nodes/CN=system:node:{node}"),
            "-days",
            &days.to_string(),
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("openssl: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "openssl: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    // openssl prints the key first; the kubelet's file holds the certificate first.
    let cert_at = text
        .find("-----BEGIN CERTIFICATE-----")
        .ok_or("openssl wrote no certificate")?;
    let pem = format!("{}{}", &text[cert_at..], &text[..cert_at]);
    let path = root.join(KUBELET_CLIENT_PEM.trim_start_matches('/'));
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
    }
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(&path, pem).map_err(|e| format!("{KUBELET_CLIENT_PEM}: {e}"))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| format!("{KUBELET_CLIENT_PEM}: {e}"))
}

/// The lab fault "this certificate expires in `days` days" on `host`: a kubeadm
/// certificate or CA (`apiserver`, `admin.conf`, `ca`...) or `kubelet-client`.
pub fn age(
    cluster_dir: &Path,
    host_root: &Path,
    host: &str,
    certificate: &str,
    days: u32,
) -> Result<(), String> {
    if certificate == "kubelet-client" {
        return write_kubelet_client(host_root, host, days);
    }
    let mut pki = Pki::read(cluster_dir);
    let expires = cluster::now() + u64::from(days) * 86_400;
    if let Some(ca) = pki.authorities.get_mut(certificate) {
        *ca = expires;
    } else {
        let certs = pki
            .hosts
            .get_mut(host)
            .ok_or_else(|| format!("{host} has no kubeadm certificates"))?;
        let slot = certs
            .get_mut(certificate)
            .ok_or_else(|| format!("{host} has no certificate {certificate:?}"))?;
        *slot = expires;
    }
    pki.write(cluster_dir)
}

/// `kubeadm certs ...`.
pub fn run(inv: &mut Invocation, rest: &[String]) -> Result<(), (String, bool)> {
    let usage = |m: String| (m, true);
    match rest.first().map(String::as_str) {
        Some("check-expiration") => check_expiration(inv, &rest[1..]).map_err(|e| (e, false)),
        Some("renew") => renew(inv, &rest[1..]),
        Some(other) => Err(usage(format!(
            "unknown command \"{other}\" for \"kubeadm certs\""
        ))),
        None => {
            inv.outln("Commands related to handling kubernetes certificates\n\nUsage:\n  kubeadm certs [flags]\n  kubeadm certs [command]\n\nAvailable Commands:\n  certificate-key  Generate certificate keys\n  check-expiration Check certificates expiration for a Kubernetes cluster\n  generate-csr     Generate keys and certificate signing requests\n  renew            Renew certificates for a Kubernetes cluster");
            Ok(())
        }
    }
}

/// The certificates of this host that exist on it, with their expiry.
fn host_certificates(inv: &Invocation, pki: &Pki) -> Vec<(&'static Managed, u64)> {
    let host = inv.hostname();
    let Some(dates) = pki.hosts.get(&host) else {
        return Vec::new();
    };
    MANAGED
        .iter()
        .filter(|m| inv.path(m.file).exists())
        .filter_map(|m| dates.get(m.name).map(|d| (m, *d)))
        .collect()
}

fn check_expiration(inv: &mut Invocation, rest: &[String]) -> Result<(), String> {
    let mut output = "text".to_string();
    let mut i = 0;
    while i < rest.len() {
        let a = rest[i].as_str();
        if let Some(v) = a
            .strip_prefix("--output=")
            .or_else(|| a.strip_prefix("-o="))
        {
            output = v.to_string();
        } else if a == "-o" || a == "--output" {
            i += 1;
            output = rest.get(i).cloned().unwrap_or_default();
        } else if a.starts_with("--config")
            || a.starts_with("--cert-dir")
            || a.starts_with("--kubeconfig")
        {
            if !a.contains('=') {
                i += 1;
            }
        } else {
            return Err(format!(
                "Error: unknown flag: {a}\nRun 'kubeadm certs check-expiration --help' for usage."
            ));
        }
        i += 1;
    }
    let pki = Pki::read(&inv.path(cluster::CLUSTER_DIR));
    let now = cluster::now();
    let certs = host_certificates(inv, &pki);
    let cas: Vec<(&str, u64)> = AUTHORITIES
        .iter()
        .filter(|(_, f)| inv.path(f).exists())
        .filter_map(|(n, _)| pki.authorities.get(*n).map(|d| (*n, *d)))
        .collect();
    let residual_ns = |t: u64| (t as i128 - now as i128) * 1_000_000_000;
    match output.as_str() {
        "json" | "yaml" => {
            let doc = json!({
                "kind": "CertificateExpirationSummary",
                "apiVersion": "output.kubeadm.k8s.io/v1alpha3",
                "certificates": certs.iter().map(|(m, t)| json!({
                    "name": m.name,
                    "expirationDate": cluster::rfc3339(*t),
                    "residualTime": residual_ns(*t) as i64,
                    "certificateAuthority": m.authority,
                    "externallyManaged": false,
                })).collect::<Vec<_>>(),
                "certificateAuthorities": cas.iter().map(|(n, t)| json!({
                    "name": n,
                    "expirationDate": cluster::rfc3339(*t),
                    "residualTime": residual_ns(*t) as i64,
                    "externallyManaged": false,
                })).collect::<Vec<_>>(),
            });
            let text = if output == "json" {
                serde_json::to_string_pretty(&doc).map_err(|e| e.to_string())?
            } else {
                serde_norway::to_string(&doc).map_err(|e| e.to_string())?
            };
            inv.outln(&text);
        }
        "text" | "" => {
            inv.outln("[check-expiration] Reading configuration from the cluster...\n[check-expiration] FYI: You can look at this config file with 'kubectl -n kube-system get cm kubeadm-config -o yaml'\n");
            let mut rows = vec![vec![
                "CERTIFICATE".to_string(),
                "EXPIRES".into(),
                "RESIDUAL TIME".into(),
                "CERTIFICATE AUTHORITY".into(),
                "EXTERNALLY MANAGED".into(),
            ]];
            for (m, t) in &certs {
                rows.push(vec![
                    m.name.to_string(),
                    expires_text(*t),
                    short_human_duration(*t as i64 - now as i64),
                    m.authority.to_string(),
                    "no".into(),
                ]);
            }
            inv.out(&tabulate(&rows));
            inv.outln("");
            let mut rows = vec![vec![
                "CERTIFICATE AUTHORITY".to_string(),
                "EXPIRES".into(),
                "RESIDUAL TIME".into(),
                "EXTERNALLY MANAGED".into(),
            ]];
            for (n, t) in &cas {
                rows.push(vec![
                    n.to_string(),
                    expires_text(*t),
                    short_human_duration(*t as i64 - now as i64),
                    "no".into(),
                ]);
            }
            inv.out(&tabulate(&rows));
        }
        other => {
            return Err(format!(
                "error: unable to match a printer suitable for the output format \"{other}\", allowed formats are: json,text,yaml"
            ))
        }
    }
    Ok(())
}

fn renew(inv: &mut Invocation, rest: &[String]) -> Result<(), (String, bool)> {
    let names: Vec<&str> = rest
        .iter()
        .map(String::as_str)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let Some(which) = names.first().copied() else {
        inv.outln(
            "This command is not meant to be run on its own. See list of available subcommands.",
        );
        return Ok(());
    };
    let known = which == "all" || MANAGED.iter().any(|m| m.name == which);
    if !known {
        return Err((
            format!("unknown command \"{which}\" for \"kubeadm certs renew\""),
            true,
        ));
    }
    if inv.uid != 0 {
        return Err((
            "open /etc/kubernetes/pki/ca.key: permission denied".into(),
            false,
        ));
    }
    let dir = inv.path(cluster::CLUSTER_DIR);
    let locked = cluster::lock(inv).map_err(|e| (e, false))?;
    let mut pki = Pki::read(&dir);
    let host = inv.hostname();
    let now = cluster::now();
    let present: Vec<&Managed> = MANAGED
        .iter()
        .filter(|m| inv.path(m.file).exists())
        .filter(|m| which == "all" || m.name == which)
        .collect();
    if present.is_empty() || !pki.hosts.contains_key(&host) {
        return Err((
            format!(
                "[renew] certificate {which} not found on this node: is this a control-plane node?"
            ),
            false,
        ));
    }
    inv.outln("[renew] Reading configuration from the cluster...\n[renew] FYI: You can look at this config file with 'kubectl -n kube-system get cm kubeadm-config -o yaml'\n");
    for m in present {
        if let Some(slot) = pki.hosts.get_mut(&host).and_then(|c| c.get_mut(m.name)) {
            *slot = now + YEAR;
        }
        if m.file.ends_with(".conf") {
            renew_kubeconfig(inv, m.file, now);
        }
        inv.outln(&format!("{} renewed", m.long_name));
    }
    pki.write(&dir).map_err(|e| (e, false))?;
    drop(locked);
    if which == "all" {
        inv.outln("\nDone renewing certificates. You must restart the kube-apiserver, kube-controller-manager, kube-scheduler and etcd, so that they can use the new certificates.");
    }
    Ok(())
}

/// What `kubeadm upgrade apply|node` renews on this host (`--certificate-renewal`, on by
/// default): the certificates of the components it replaced, each for a year from now.
pub fn renew_for_upgrade(inv: &Invocation, names: &[&str]) -> Result<(), String> {
    let dir = inv.path(cluster::CLUSTER_DIR);
    let locked = cluster::lock(inv)?;
    let mut pki = Pki::read(&dir);
    let host = inv.hostname();
    let now = cluster::now();
    let Some(mine) = pki.hosts.get_mut(&host) else {
        return Ok(());
    };
    for m in MANAGED.iter().filter(|m| names.contains(&m.name)) {
        if let Some(slot) = mine.get_mut(m.name) {
            *slot = now + YEAR;
            if m.file.ends_with(".conf") {
                renew_kubeconfig(inv, m.file, now);
            }
        }
    }
    pki.write(&dir)?;
    drop(locked);
    Ok(())
}

/// A renewed kubeconfig embeds a new client certificate.
fn renew_kubeconfig(inv: &Invocation, file: &str, now: u64) {
    let Ok(text) = inv.read(file) else {
        return;
    };
    let fresh = super::kubeadm::base64_text(&format!(
        "k8sup-lab client certificate renewed at {now} ({})",
        cluster::random_hex(8)
    ));
    let out: String = text
        .lines()
        .map(|l| match l.split_once("client-certificate-data:") {
            Some((indent, _)) => format!("{indent}client-certificate-data: {fresh}\n"),
            None => format!("{l}\n"),
        })
        .collect();
    let _ = inv.write(file, &out);
}

/// `Jan 02, 2006 15:04 UTC`, kubeadm's EXPIRES column.
fn expires_text(unix: u64) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let r = cluster::rfc3339(unix);
    let month: usize = r[5..7].parse().unwrap_or(1);
    format!(
        "{} {}, {} {} UTC",
        MONTHS[month.saturating_sub(1).min(11)],
        &r[8..10],
        &r[0..4],
        &r[11..16]
    )
}

/// apimachinery's `duration.ShortHumanDuration`.
fn short_human_duration(secs: i64) -> String {
    match secs {
        s if s < -1 => "<invalid>".into(),
        s if s < 0 => "0s".into(),
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m", s / 60),
        s if s < 48 * 3600 => format!("{}h", s / 3600),
        s if s < 365 * 86_400 => format!("{}d", s / 86_400),
        s => format!("{}y", s / (365 * 86_400)),
    }
}

/// Columns padded as Go's tabwriter with padding 3 lays them out.
fn tabulate(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(String::len)
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        for (c, cell) in row.iter().enumerate() {
            if c + 1 == row.len() {
                out.push_str(&format!("{cell:<8}"));
            } else {
                out.push_str(&format!("{cell:<w$}", w = widths[c] + 3));
            }
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubeadm_formats() {
        assert_eq!(short_human_duration(364 * 86_400 + 5), "364d");
        assert_eq!(short_human_duration(10 * 365 * 86_400 - 5), "9y");
        assert_eq!(short_human_duration(30 * 3600), "30h");
        assert_eq!(expires_text(1_725_184_800), "Sep 01, 2024 10:00 UTC");
        let t = tabulate(&[
            vec!["A".into(), "BB".into()],
            vec!["CCC".into(), "D".into()],
        ]);
        assert_eq!(t, "A     BB      \nCCC   D       \n");
    }
}
