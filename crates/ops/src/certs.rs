//! The cluster's certificates: when each one expires, and their renewal one master at a
//! time.
//!
//! [`gather`] asks every master's kubeadm (`kubeadm certs check-expiration -o json`: the
//! certificates and kubeconfigs kubeadm manages, and the CAs) and every host's kubelet
//! client certificate (`openssl x509 -enddate`, which reads only the certificate block
//! of the kubelet's cert-and-key file: no key leaves a host, nor is read). [`renew_plan`]
//! is pure: the masters with a kubeadm certificate expiring within a window. [`renew`]
//! runs it the way kubeadm's documentation says: `kubeadm certs renew all`, then the
//! control plane's static pods restarted by moving their manifests out of
//! `/etc/kubernetes/manifests` and back, waiting until the API server stopped and until
//! it answers again, before the next master is touched; the admin kubeconfig renewed on
//! that master is copied to `/root/.kube/config`.

use std::time::Duration;

use k8sup_inventory::{Host, Inventory};
use k8sup_shell::Script;
use k8sup_ssh::{CommandError, ConnectError};
use serde::Serialize;

use crate::connect::{target_for, ConnectOptions};
use crate::fan_out::in_order;

/// The kubelet's rotating client certificate (followed by its key in the same file).
pub const KUBELET_CLIENT_PEM: &str = "/var/lib/kubelet/pki/kubelet-client-current.pem";

/// What a certificate is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CertKind {
    /// A certificate or kubeconfig kubeadm manages (`kubeadm certs renew` renews it).
    Kubeadm,
    /// A certificate authority (kubeadm does not renew these).
    Authority,
    /// The kubelet's client certificate (the kubelet rotates it itself).
    KubeletClient,
}

/// One certificate on one host and when it expires.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CertificateExpiry {
    pub host: String,
    /// kubeadm's name (`apiserver`, `admin.conf`, `ca`), or `kubelet-client`.
    pub name: String,
    pub kind: CertKind,
    /// The CA that signed it (empty for a CA and the kubelet's).
    pub authority: String,
    /// Unix seconds.
    pub expires: u64,
    pub externally_managed: bool,
}

/// A host whose certificates could not be read.
#[derive(Debug, Serialize)]
pub struct HostError {
    pub host: String,
    #[serde(serialize_with = "as_text")]
    pub error: CertsError,
}

/// An error in a JSON report: its message.
fn as_text<S: serde::Serializer>(error: &CertsError, out: S) -> Result<S::Ok, S::Error> {
    out.collect_str(error)
}

/// Why a host's certificates could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CertsError {
    #[error(transparent)]
    Unreachable(Box<ConnectError>),
    #[error(transparent)]
    Lost(Box<CommandError>),
    #[error("{host}: unexpected answer from the certificate check")]
    Unexpected { host: String },
    #[error("{host}: kubeadm certs check-expiration failed (exit {status}): {said}")]
    CheckExpiration {
        host: String,
        status: String,
        /// The last line kubeadm printed.
        said: String,
    },
    #[error("{host}: cannot read {KUBELET_CLIENT_PEM}: {line}")]
    KubeletUnreadable { host: String, line: String },
    #[error("{host}: cannot read the date {date:?} of {KUBELET_CLIENT_PEM}")]
    KubeletDate { host: String, date: String },
    #[error("{host}: kubeadm printed no expiration summary")]
    NoSummary { host: String },
    #[error("{host}: kubeadm's expiration summary: {source}")]
    Summary {
        host: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("{host}: {name}: bad expirationDate {date:?}")]
    BadDate {
        host: String,
        name: String,
        date: String,
    },
}

/// Why the renewal stopped; the masters after the one named were not touched.
#[derive(Debug, thiserror::Error)]
pub enum RenewError {
    #[error("{host} is not in the inventory")]
    NotInInventory { host: String },
    #[error("the API server of {other} does not answer ({source}): restarting {host} now could take the API down; nothing was done on {host}")]
    OtherApiServerDown {
        other: String,
        host: String,
        #[source]
        source: LivezError,
    },
    #[error(transparent)]
    Unreachable(Box<ConnectError>),
    #[error(transparent)]
    Lost(Box<CommandError>),
    #[error("renewing the certificates of {host} failed ({status}): {said}; the masters after it were not touched")]
    Failed {
        host: String,
        status: String,
        said: String,
    },
}

/// Why a master's API server was not found answering.
#[derive(Debug, thiserror::Error)]
pub enum LivezError {
    #[error(transparent)]
    Unreachable(Box<ConnectError>),
    #[error(transparent)]
    Lost(Box<CommandError>),
    /// `curl` failed: what it said.
    #[error("{0}")]
    Failed(String),
}

/// Every certificate of the cluster, soonest expiry first, and the hosts that failed.
#[derive(Debug, Default, Serialize)]
pub struct CertsReport {
    pub certificates: Vec<CertificateExpiry>,
    pub errors: Vec<HostError>,
}

impl CertsReport {
    /// The certificates that expire before `now + within`.
    pub fn expiring(&self, now: u64, within: Duration) -> Vec<&CertificateExpiry> {
        self.certificates
            .iter()
            .filter(|c| c.expires < now.saturating_add(within.as_secs()))
            .collect()
    }
}

/// The kubelet's certificate date, on every host; `missing` where there is none.
macro_rules! kubelet_check {
    () => {
        r#"echo '--- kubelet'
if [ -e /var/lib/kubelet/pki/kubelet-client-current.pem ]; then
  openssl x509 -noout -enddate -in /var/lib/kubelet/pki/kubelet-client-current.pem 2>&1
else
  echo missing
fi
"#
    };
}

/// A master answers kubeadm's summary, then the kubelet's date.
const MASTER_SCRIPT: &str = concat!(
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH\n",
    "echo '--- kubeadm'\n",
    "kubeadm certs check-expiration -o json 2>&1 || echo \"--- kubeadm-failed $?\"\n",
    kubelet_check!()
);

const NODE_SCRIPT: &str = concat!(
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH\n",
    kubelet_check!()
);

/// Reads every host's certificates in parallel.
pub async fn gather(inventory: &Inventory, options: &ConnectOptions) -> CertsReport {
    let n = options.parallelism(inventory);
    let results = in_order(&inventory.hosts, n, |host| host_certificates(host, options)).await;
    let mut report = CertsReport::default();
    for (i, r) in results.into_iter().enumerate() {
        match r {
            Ok(certs) => report.certificates.extend(certs),
            Err(error) => report.errors.push(HostError {
                host: inventory.hosts[i].name.clone(),
                error,
            }),
        }
    }
    report
        .certificates
        .sort_by(|a, b| (a.expires, &a.host, &a.name).cmp(&(b.expires, &b.host, &b.name)));
    report
}

async fn host_certificates(
    host: &Host,
    options: &ConnectOptions,
) -> Result<Vec<CertificateExpiry>, CertsError> {
    let session = k8sup_ssh::connect(&target_for(host, options))
        .await
        .map_err(|e| CertsError::Unreachable(Box::new(e)))?;
    let script = if host.roles.master {
        MASTER_SCRIPT
    } else {
        NODE_SCRIPT
    };
    let out = session
        .run(&Script::new(script))
        .await
        .map_err(|e| CertsError::Lost(Box::new(e)))?;
    session.close().await;
    parse_host_output(&host.name, &out.stdout_text())
}

/// The certificates in one host's answer to [`MASTER_SCRIPT`] or [`NODE_SCRIPT`].
fn parse_host_output(host: &str, text: &str) -> Result<Vec<CertificateExpiry>, CertsError> {
    let mut certs = Vec::new();
    let (kubeadm, kubelet) = match text.split_once("--- kubelet\n") {
        Some((a, b)) => (a, b),
        None => {
            return Err(CertsError::Unexpected {
                host: host.to_string(),
            })
        }
    };
    if let Some(kubeadm) = kubeadm.split_once("--- kubeadm\n").map(|(_, k)| k) {
        if let Some((said, status)) = kubeadm.split_once("--- kubeadm-failed ") {
            return Err(CertsError::CheckExpiration {
                host: host.to_string(),
                status: status.trim().to_string(),
                said: crate::etcd::last_line(said).to_string(),
            });
        }
        certs.extend(parse_check_expiration(host, kubeadm)?);
    }
    let line = kubelet.lines().next().unwrap_or("").trim();
    if line != "missing" {
        let date = line
            .strip_prefix("notAfter=")
            .ok_or_else(|| CertsError::KubeletUnreadable {
                host: host.to_string(),
                line: line.to_string(),
            })?;
        let expires = parse_openssl_date(date).ok_or_else(|| CertsError::KubeletDate {
            host: host.to_string(),
            date: date.to_string(),
        })?;
        certs.push(CertificateExpiry {
            host: host.to_string(),
            name: "kubelet-client".into(),
            kind: CertKind::KubeletClient,
            authority: "ca".into(),
            expires,
            externally_managed: false,
        });
    }
    Ok(certs)
}

/// kubeadm's `CertificateExpirationSummary` (`-o json`).
fn parse_check_expiration(host: &str, text: &str) -> Result<Vec<CertificateExpiry>, CertsError> {
    let start = text.find('{').ok_or_else(|| CertsError::NoSummary {
        host: host.to_string(),
    })?;
    let doc: serde_json::Value =
        serde_json::from_str(&text[start..]).map_err(|source| CertsError::Summary {
            host: host.to_string(),
            source,
        })?;
    let mut out = Vec::new();
    for (key, kind) in [
        ("certificates", CertKind::Kubeadm),
        ("certificateAuthorities", CertKind::Authority),
    ] {
        for c in doc[key].as_array().into_iter().flatten() {
            if c["missing"].as_bool() == Some(true) {
                continue;
            }
            let name = c["name"].as_str().unwrap_or("").to_string();
            let date = c["expirationDate"].as_str().unwrap_or("");
            let expires = parse_rfc3339(date).ok_or_else(|| CertsError::BadDate {
                host: host.to_string(),
                name: name.clone(),
                date: date.to_string(),
            })?;
            out.push(CertificateExpiry {
                host: host.to_string(),
                name,
                kind,
                authority: c["certificateAuthority"].as_str().unwrap_or("").to_string(),
                expires,
                externally_managed: c["externallyManaged"].as_bool().unwrap_or(false),
            });
        }
    }
    Ok(out)
}

/// Days since 1970-01-01 of a civil date (Howard Hinnant's days_from_civil).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn unix(y: i64, mo: u32, d: u32, h: u64, mi: u64, s: u64) -> Option<u64> {
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    let days = days_from_civil(y, mo, d);
    u64::try_from(days * 86_400)
        .ok()
        .map(|t| t + h * 3600 + mi * 60 + s)
}

/// `2027-12-02T02:03:04Z` (fractions and offsets of UTC dates tolerated).
pub fn parse_rfc3339(text: &str) -> Option<u64> {
    let t = text.trim();
    let (date, time) = t.split_once('T')?;
    let mut d = date.split('-');
    let y = d.next()?.parse().ok()?;
    let mo = d.next()?.parse().ok()?;
    let day = d.next()?.parse().ok()?;
    let time = time.trim_end_matches('Z');
    let time = time.split(['+', '.']).next()?;
    let mut hms = time.split(':');
    let h = hms.next()?.parse().ok()?;
    let mi = hms.next()?.parse().ok()?;
    let s = hms.next().unwrap_or("0").parse().ok()?;
    unix(y, mo, day, h, mi, s)
}

/// openssl's `Dec  2 02:03:04 2027 GMT`.
pub fn parse_openssl_date(text: &str) -> Option<u64> {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let words: Vec<&str> = text.split_whitespace().collect();
    let [mon, day, time, year, ..] = words.as_slice() else {
        return None;
    };
    let mo = MONTHS.iter().position(|m| m == mon)? as u32 + 1;
    let mut hms = time.split(':');
    unix(
        year.parse().ok()?,
        mo,
        day.parse().ok()?,
        hms.next()?.parse().ok()?,
        hms.next()?.parse().ok()?,
        hms.next()?.parse().ok()?,
    )
}

/// How long until `expires`, as kubeadm's RESIDUAL TIME says it (`364d`, `9y`, `5h`).
pub fn residual(now: u64, expires: u64) -> String {
    if expires <= now {
        return "expired".into();
    }
    match expires - now {
        s if s < 3600 => format!("{}m", s / 60),
        s if s < 48 * 3600 => format!("{}h", s / 3600),
        s if s < 365 * 86_400 => format!("{}d", s / 86_400),
        s => format!("{}y", s / (365 * 86_400)),
    }
}

/// The masters whose kubeadm certificates are due, and what cannot be renewed this way.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RenewPlan {
    /// In inventory order: renewed and restarted one after the other.
    pub masters: Vec<MasterRenewal>,
    /// CAs and kubelet client certificates within the window: `kubeadm certs renew`
    /// does not renew them.
    pub not_renewable: Vec<CertificateExpiry>,
}

/// One master of a [`RenewPlan`].
#[derive(Debug, Clone, Serialize)]
pub struct MasterRenewal {
    pub host: String,
    /// The certificates that made it due.
    pub due: Vec<CertificateExpiry>,
}

impl RenewPlan {
    pub fn is_empty(&self) -> bool {
        self.masters.is_empty()
    }
}

/// Which masters to renew: those with a kubeadm certificate expiring before `now + before`.
pub fn renew_plan(
    inventory: &Inventory,
    report: &CertsReport,
    now: u64,
    before: Duration,
) -> RenewPlan {
    let due = report.expiring(now, before);
    let masters = inventory
        .masters()
        .filter_map(|m| {
            let mine: Vec<CertificateExpiry> = due
                .iter()
                .filter(|c| c.host == m.name && c.kind == CertKind::Kubeadm)
                .map(|c| (*c).clone())
                .collect();
            (!mine.is_empty()).then(|| MasterRenewal {
                host: m.name.clone(),
                due: mine,
            })
        })
        .collect();
    let not_renewable = due
        .into_iter()
        .filter(|c| c.kind != CertKind::Kubeadm)
        .cloned()
        .collect();
    RenewPlan {
        masters,
        not_renewable,
    }
}

/// The control plane's static pods, restarted as kubeadm's documentation says.
pub const CONTROL_PLANE_PODS: [&str; 4] = [
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
];

/// Renews one master's certificates and restarts its control plane, waiting for its API
/// server to go away (the kubelet looks every 20 s) and to answer again. Exit statuses:
/// 10 renew failed, 11 the API server did not stop (manifests are back), 12 it did not
/// come back.
const RENEW_SCRIPT: &str = r#"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH
set -u
kubeadm certs renew all >/dev/null 2>/tmp/k8sup-renew.err || { tail -n 3 /tmp/k8sup-renew.err >&2; rm -f /tmp/k8sup-renew.err; exit 10; }
rm -f /tmp/k8sup-renew.err
held=/etc/kubernetes/k8sup-restart
mkdir -p "$held"
for pod in etcd kube-apiserver kube-controller-manager kube-scheduler; do
  if [ -e "/etc/kubernetes/manifests/$pod.yaml" ]; then mv "/etc/kubernetes/manifests/$pod.yaml" "$held/"; fi
done
stopped=0
i=0
while [ "$i" -lt 90 ]; do
  if ! curl -ksf https://127.0.0.1:6443/livez >/dev/null 2>&1; then stopped=1; break; fi
  i=$((i + 1)); sleep 1
done
for f in "$held"/*.yaml; do [ -e "$f" ] && mv "$f" /etc/kubernetes/manifests/; done
rmdir "$held" 2>/dev/null
if [ "$stopped" != 1 ]; then echo "the API server did not stop within 90s: the kubelet did not restart the control plane" >&2; exit 11; fi
i=0
until curl -ksf https://127.0.0.1:6443/livez >/dev/null 2>&1; do
  i=$((i + 1))
  if [ "$i" -ge 300 ]; then echo "the API server did not answer within 300s of its restart" >&2; exit 12; fi
  sleep 1
done
if [ -d /root/.kube ]; then install -m 0600 /etc/kubernetes/admin.conf /root/.kube/config; fi
echo k8sup-renewed
"#;

const LIVEZ: &str = "curl -ksf --max-time 10 https://127.0.0.1:6443/livez";

/// Whether `master`'s own API server answers `/livez`.
async fn apiserver_answers(master: &Host, options: &ConnectOptions) -> Result<(), LivezError> {
    let session = k8sup_ssh::connect(&target_for(master, options))
        .await
        .map_err(|e| LivezError::Unreachable(Box::new(e)))?;
    let out = session
        .run(&Script::new(LIVEZ))
        .await
        .map_err(|e| LivezError::Lost(Box::new(e)))?;
    session.close().await;
    if out.success() {
        Ok(())
    } else {
        Err(LivezError::Failed(
            crate::etcd::last_line(&out.stderr_text()).to_string(),
        ))
    }
}

/// What happened to one master during [`renew`].
#[derive(Debug, Clone, PartialEq)]
pub enum RenewStep {
    Renewing(String),
    Renewed { host: String, seconds: f64 },
}

/// Runs `plan`, one master at a time; stops at the first master that fails, so that a
/// problem never takes a second control plane down.
pub async fn renew(
    inventory: &Inventory,
    options: &ConnectOptions,
    plan: &RenewPlan,
    on_step: impl Fn(RenewStep),
) -> Result<(), RenewError> {
    for m in &plan.masters {
        let host = inventory
            .host(&m.host)
            .ok_or_else(|| RenewError::NotInInventory {
                host: m.host.clone(),
            })?;
        // Restarting this master is safe only while every other API server answers.
        for other in inventory.masters().filter(|o| o.name != m.host) {
            if let Err(source) = apiserver_answers(other, options).await {
                return Err(RenewError::OtherApiServerDown {
                    other: other.name.clone(),
                    host: m.host.clone(),
                    source,
                });
            }
        }
        on_step(RenewStep::Renewing(m.host.clone()));
        let started = std::time::Instant::now();
        let session = k8sup_ssh::connect(&target_for(host, options))
            .await
            .map_err(|e| RenewError::Unreachable(Box::new(e)))?;
        let out = session
            .run_with(
                &Script::new(RENEW_SCRIPT),
                k8sup_ssh::RunOptions {
                    timeout: Some(Duration::from_secs(600)),
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| RenewError::Lost(Box::new(e)))?;
        session.close().await;
        if !out.success() || !out.stdout_text().contains("k8sup-renewed") {
            return Err(RenewError::Failed {
                host: m.host.clone(),
                status: out.status_text(),
                said: crate::etcd::last_line(&out.stderr_text()).to_string(),
            });
        }
        on_step(RenewStep::Renewed {
            host: m.host.clone(),
            seconds: started.elapsed().as_secs_f64(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SUMMARY: &str = r#"{
  "kind": "CertificateExpirationSummary",
  "apiVersion": "output.kubeadm.k8s.io/v1alpha3",
  "certificates": [
    {"name": "admin.conf", "expirationDate": "2027-12-02T02:03:04Z", "residualTime": 1, "certificateAuthority": "ca", "externallyManaged": false},
    {"name": "apiserver", "expirationDate": "2026-12-12T02:03:04Z", "residualTime": 1, "certificateAuthority": "ca", "externallyManaged": false}
  ],
  "certificateAuthorities": [
    {"name": "ca", "expirationDate": "2036-11-30T02:03:04Z", "residualTime": 1, "externallyManaged": false}
  ]
}"#;

    #[test]
    fn dates() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339("2024-09-01T10:00:00Z"), Some(1_725_184_800));
        assert_eq!(
            parse_openssl_date("Sep  1 10:00:00 2024 GMT"),
            Some(1_725_184_800)
        );
        assert_eq!(parse_openssl_date("Foo 1 10:00:00 2024 GMT"), None);
        assert_eq!(residual(0, 9 * 86_400 + 5), "9d");
        assert_eq!(residual(10, 5), "expired");
    }

    #[test]
    fn a_master_answer_lists_kubeadm_certificates_cas_and_the_kubelet() {
        let text =
            format!("--- kubeadm\n{SUMMARY}\n--- kubelet\nnotAfter=Dec  2 02:03:04 2027 GMT\n");
        let certs = parse_host_output("m1", &text).unwrap();
        let names: Vec<(&str, CertKind)> =
            certs.iter().map(|c| (c.name.as_str(), c.kind)).collect();
        assert_eq!(
            names,
            [
                ("admin.conf", CertKind::Kubeadm),
                ("apiserver", CertKind::Kubeadm),
                ("ca", CertKind::Authority),
                ("kubelet-client", CertKind::KubeletClient)
            ]
        );
        let failed = parse_host_output(
            "m1",
            "--- kubeadm\nerror: something\n--- kubeadm-failed 1\n--- kubelet\nmissing\n",
        )
        .unwrap_err()
        .to_string();
        assert!(failed.contains("exit 1): error: something"), "{failed}");
        assert!(parse_host_output("n1", "--- kubelet\nmissing\n")
            .unwrap()
            .is_empty());
    }

    #[test]
    fn only_masters_with_a_kubeadm_certificate_in_the_window_are_planned() {
        let text = format!("--- kubeadm\n{SUMMARY}\n--- kubelet\nmissing\n");
        let report = CertsReport {
            certificates: parse_host_output("m1", &text).unwrap(),
            errors: vec![],
        };
        let inv = k8sup_inventory::Inventory::from_bytes(
            std::path::Path::new("i.toml"),
            b"[cluster]\nname = \"c\"\nkubernetes_version = \"1.30\"\n[[hosts]]\nname = \"m1\"\naddress = \"10.0.0.1\"\nroles = [\"master\"]\n[[hosts]]\nname = \"m2\"\naddress = \"10.0.0.2\"\nroles = [\"master\"]\n",
            &k8sup_inventory::LoadContext::for_file(std::path::Path::new("i.toml")),
        )
        .unwrap();
        let now = parse_rfc3339("2026-12-02T00:00:00Z").unwrap();
        let plan = renew_plan(&inv, &report, now, Duration::from_secs(30 * 86_400));
        assert_eq!(plan.masters.len(), 1);
        assert_eq!(plan.masters[0].host, "m1");
        assert_eq!(plan.masters[0].due[0].name, "apiserver");
        assert!(renew_plan(&inv, &report, now, Duration::from_secs(86_400)).is_empty());
    }
}
