//! apt's repository configuration and index state: the entries of
//! `/etc/apt/sources.list`, `/etc/apt/sources.list.d/*.list` (one-line style) and
//! `*.sources` (deb822 style), which of them `apt-get update` fetched, and the package
//! versions the fetched indexes offer.
//!
//! The distribution's own archive is always there (the image ships it, already fetched):
//! a fresh host can install conntrack or socat, but a package from a repository added
//! later is unknown until `apt-get update` ran after adding it, as on a real host.

use super::repos::{self, Format, Identity, Origin};
use super::Invocation;
use crate::distro::{Arch, Distro};

/// The URLs of the repositories `apt-get update` fetched (`uri suite`), in the host.
pub const FETCHED_PATH: &str = "/var/lib/lab-pkg/apt-lists.json";

/// One `deb` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceEntry {
    pub uri: String,
    pub suite: String,
    pub components: Vec<String>,
    pub signed_by: Option<String>,
    pub trusted: bool,
    pub archs: Option<Vec<String>>,
}

impl SourceEntry {
    /// How apt names this entry in `apt-get update` lines: `URI SUITE` (a flat repository
    /// `URI /` shows as `URI ` and a double space).
    pub fn display(&self) -> String {
        let uri = self.uri.trim_end_matches('/');
        if self.suite == "/" {
            format!("{uri} ")
        } else {
            format!("{uri} {}", self.suite)
        }
    }

    pub fn key(&self) -> String {
        format!("{} {}", self.uri.trim_end_matches('/'), self.suite)
    }

    /// The label apt-cache policy and madison print for the index.
    pub fn packages_label(&self, arch: &str) -> String {
        let uri = self.uri.trim_end_matches('/');
        if self.suite == "/" {
            format!("{uri}  Packages")
        } else {
            let comp = self
                .components
                .first()
                .map(String::as_str)
                .unwrap_or("main");
            format!("{uri} {}/{comp} {arch} Packages", self.suite)
        }
    }

    pub fn applies_to(&self, arch: Arch) -> bool {
        self.archs
            .as_ref()
            .is_none_or(|a| a.iter().any(|x| x == arch.as_str()))
    }
}

/// Reads every sources file; `Err` holds apt's error lines for a malformed file.
pub fn read_sources(inv: &Invocation) -> Result<Vec<SourceEntry>, Vec<String>> {
    let mut files = vec!["/etc/apt/sources.list".to_string()];
    if let Ok(dir) = std::fs::read_dir(inv.path("/etc/apt/sources.list.d")) {
        let mut names: Vec<String> = dir
            .flatten()
            .filter_map(|e| e.file_name().to_str().map(String::from))
            .filter(|n| n.ends_with(".list") || n.ends_with(".sources"))
            .collect();
        names.sort();
        files.extend(
            names
                .into_iter()
                .map(|n| format!("/etc/apt/sources.list.d/{n}")),
        );
    }
    let mut entries = Vec::new();
    for file in files {
        let Ok(text) = inv.read(&file) else {
            continue;
        };
        let parsed = if file.ends_with(".sources") {
            parse_deb822(&text, &file)
        } else {
            parse_one_line(&text, &file)
        };
        match parsed {
            Ok(mut e) => entries.append(&mut e),
            Err(why) => {
                return Err(vec![
                    why,
                    "E: The list of sources could not be read.".into(),
                ]);
            }
        }
    }
    Ok(entries)
}

/// One-line style: `deb [opt=val ...] URI SUITE [COMPONENT...]`.
pub fn parse_one_line(text: &str, file: &str) -> Result<Vec<SourceEntry>, String> {
    let mut out = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let malformed =
            |what: &str| format!("E: Malformed entry {} in list file {file} ({what})", n + 1);
        let (kind, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        match kind {
            "deb" => {}
            "deb-src" => continue,
            _ => {
                return Err(format!(
                    "E: Type '{kind}' is not known on line {} in source list {file}",
                    n + 1
                ))
            }
        }
        let mut rest = rest.trim();
        let mut opts = Vec::new();
        if let Some(after) = rest.strip_prefix('[') {
            let Some(end) = after.find(']') else {
                return Err(malformed("Options"));
            };
            opts = after[..end].split_whitespace().map(String::from).collect();
            rest = after[end + 1..].trim();
        }
        let words: Vec<&str> = rest.split_whitespace().collect();
        let (Some(uri), Some(suite)) = (words.first(), words.get(1)) else {
            return Err(malformed(if words.is_empty() { "URI" } else { "Suite" }));
        };
        let components: Vec<String> = words[2..].iter().map(|s| s.to_string()).collect();
        if suite.ends_with('/') && !components.is_empty() {
            return Err(malformed("absolute Suite Component"));
        }
        if !suite.ends_with('/') && components.is_empty() {
            return Err(malformed("Component"));
        }
        let mut entry = SourceEntry {
            uri: uri.to_string(),
            suite: suite.to_string(),
            components,
            signed_by: None,
            trusted: false,
            archs: None,
        };
        for o in opts {
            let Some((k, v)) = o.split_once('=') else {
                return Err(malformed("Options"));
            };
            match k {
                "signed-by" => entry.signed_by = Some(v.to_string()),
                "trusted" => entry.trusted = v == "yes",
                "arch" => entry.archs = Some(v.split(',').map(String::from).collect()),
                _ => {}
            }
        }
        out.push(entry);
    }
    Ok(out)
}

/// deb822 style: stanzas of `Types:`, `URIs:`, `Suites:`, `Components:`, `Signed-By:`.
pub fn parse_deb822(text: &str, file: &str) -> Result<Vec<SourceEntry>, String> {
    let mut out = Vec::new();
    let mut stanzas: Vec<Vec<(String, String)>> = vec![Vec::new()];
    for raw in text.lines() {
        if raw.starts_with('#') {
            continue;
        }
        if raw.trim().is_empty() {
            if stanzas.last().is_some_and(|s| !s.is_empty()) {
                stanzas.push(Vec::new());
            }
            continue;
        }
        let Some(cur) = stanzas.last_mut() else {
            continue;
        };
        if raw.starts_with(' ') || raw.starts_with('\t') {
            // A continuation line (an inline Signed-By key block).
            if let Some(last) = cur.last_mut() {
                last.1.push('\n');
                last.1.push_str(raw.trim());
            }
            continue;
        }
        let Some((k, v)) = raw.split_once(':') else {
            return Err(format!(
                "E: Malformed stanza {} in source list {file} (type)",
                stanzas.len()
            ));
        };
        cur.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
    }
    for (i, stanza) in stanzas.iter().enumerate().filter(|(_, s)| !s.is_empty()) {
        let get = |k: &str| {
            stanza
                .iter()
                .find(|(kk, _)| kk == k)
                .map(|(_, v)| v.as_str())
        };
        if get("enabled").is_some_and(|v| v.eq_ignore_ascii_case("no")) {
            continue;
        }
        let malformed = |what: &str| {
            format!(
                "E: Malformed stanza {} in source list {file} ({what})",
                i + 1
            )
        };
        let types = get("types").ok_or_else(|| malformed("type"))?;
        if !types.split_whitespace().any(|t| t == "deb") {
            continue;
        }
        let uris = get("uris").ok_or_else(|| malformed("URI"))?;
        let suites = get("suites").ok_or_else(|| malformed("Suite"))?;
        let components: Vec<String> = get("components")
            .map(|c| c.split_whitespace().map(String::from).collect())
            .unwrap_or_default();
        for uri in uris.split_whitespace() {
            for suite in suites.split_whitespace() {
                if suite.ends_with('/') && !components.is_empty() {
                    return Err(malformed("absolute Suite Component"));
                }
                if !suite.ends_with('/') && components.is_empty() {
                    return Err(malformed("Component"));
                }
                out.push(SourceEntry {
                    uri: uri.to_string(),
                    suite: suite.to_string(),
                    components: components.clone(),
                    signed_by: get("signed-by").map(String::from),
                    trusted: get("trusted").is_some_and(|v| v == "yes"),
                    archs: get("architectures")
                        .map(|a| a.split_whitespace().map(String::from).collect()),
                });
            }
        }
    }
    Ok(out)
}

/// Keys of the repositories fetched by `apt-get update`.
pub fn fetched(inv: &Invocation) -> Vec<String> {
    inv.read(FETCHED_PATH)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default()
}

pub fn save_fetched(inv: &Invocation, keys: &[String]) -> Result<(), String> {
    let text = serde_json::to_string(keys).map_err(|e| e.to_string())?;
    inv.write(FETCHED_PATH, &text)
        .map_err(|e| format!("{FETCHED_PATH}: {e}"))
}

/// The distribution archive as apt names it: (URI, suite, component).
pub fn archive_entries(distro: Distro, arch: Arch) -> Vec<(String, String)> {
    let code = repos::codename(distro);
    match distro {
        Distro::Debian12 | Distro::Debian13 => vec![
            ("http://deb.debian.org/debian".into(), code.into()),
            (
                "http://deb.debian.org/debian".into(),
                format!("{code}-updates"),
            ),
            (
                "http://deb.debian.org/debian-security".into(),
                format!("{code}-security"),
            ),
        ],
        _ => {
            let main = if arch == Arch::Arm64 {
                "http://ports.ubuntu.com/ubuntu-ports"
            } else {
                "http://archive.ubuntu.com/ubuntu"
            };
            let security = if arch == Arch::Arm64 {
                "http://ports.ubuntu.com/ubuntu-ports"
            } else {
                "http://security.ubuntu.com/ubuntu"
            };
            vec![
                (main.into(), code.into()),
                (main.into(), format!("{code}-updates")),
                (security.into(), format!("{code}-security")),
            ]
        }
    }
}

/// A package version apt can install, with the index it comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub name: String,
    pub version: String,
    pub arch: String,
    /// `https://pkgs.k8s.io/core:/stable:/v1.30/deb  Packages`
    pub label: String,
    /// The URI, for `Get:` lines.
    pub uri: String,
}

/// Every version apt can see: the archive, plus the configured and fetched repositories.
pub fn candidates(inv: &Invocation, distro: Distro, arch: Arch) -> Vec<Candidate> {
    let mut out = Vec::new();
    let archive = archive_entries(distro, arch);
    let (uri, suite) = archive
        .first()
        .cloned()
        .unwrap_or_else(|| ("http://archive.ubuntu.com/ubuntu".into(), "jammy".into()));
    for o in repos::offers(&Origin::DistroArchive, Format::Deb, distro, arch, &suite) {
        out.push(Candidate {
            label: format!("{uri} {suite}/main {} Packages", arch.as_str()),
            uri: uri.clone(),
            name: o.name,
            version: o.version,
            arch: o.arch,
        });
    }
    let fetched = fetched(inv);
    let Ok(entries) = read_sources(inv) else {
        return out;
    };
    for e in entries {
        if !e.applies_to(arch) || !fetched.contains(&e.key()) {
            continue;
        }
        let Identity::Known(origin) = repos::identify(&e.uri, Format::Deb) else {
            continue;
        };
        if origin == Origin::DistroArchive {
            continue;
        }
        for o in repos::offers(&origin, Format::Deb, distro, arch, &e.suite) {
            if out
                .iter()
                .any(|c| c.name == o.name && c.version == o.version)
            {
                continue;
            }
            out.push(Candidate {
                label: e.packages_label(arch.as_str()),
                uri: e.uri.trim_end_matches('/').to_string(),
                name: o.name,
                version: o.version,
                arch: o.arch,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_entries_with_options() {
        let e = parse_one_line(
            "# k8s\ndeb [signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.gpg] https://pkgs.k8s.io/core:/stable:/v1.30/deb/ /\n",
            "k.list",
        )
        .expect("parse");
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].suite, "/");
        assert_eq!(
            e[0].signed_by.as_deref(),
            Some("/etc/apt/keyrings/kubernetes-apt-keyring.gpg")
        );
        assert_eq!(
            e[0].display(),
            "https://pkgs.k8s.io/core:/stable:/v1.30/deb "
        );
    }

    #[test]
    fn malformed_entries_are_refused() {
        let err = parse_one_line(
            "deb https://download.docker.com/linux/ubuntu jammy\n",
            "/etc/apt/sources.list.d/d.list",
        )
        .expect_err("no component");
        assert_eq!(
            err,
            "E: Malformed entry 1 in list file /etc/apt/sources.list.d/d.list (Component)"
        );
        assert!(parse_one_line("deb https://x/ / main\n", "f").is_err());
    }

    #[test]
    fn deb822_stanzas() {
        let e = parse_deb822(
            "Types: deb\nURIs: https://download.docker.com/linux/ubuntu\nSuites: jammy\nComponents: stable\nSigned-By: /etc/apt/keyrings/docker.asc\n\nTypes: deb\nURIs: http://x/\nSuites: a\nComponents: main\nEnabled: no\n",
            "d.sources",
        )
        .expect("parse");
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].components, vec!["stable"]);
        assert_eq!(
            e[0].packages_label("amd64"),
            "https://download.docker.com/linux/ubuntu jammy/stable amd64 Packages"
        );
    }
}
