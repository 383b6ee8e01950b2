//! Host key checking against an OpenSSH `known_hosts` file.
//!
//! The parsing and matching are pure functions over the file's text, so every rule is
//! tested without a network: plain and hashed (`|1|salt|hash`) names, `[host]:port`
//! for ports other than 22, comma lists with `*`/`?` wildcards and `!` negations,
//! `@revoked` (a listed key is refused outright) and `@cert-authority` (a CA key, never
//! trusted as the host's own key). Lines that cannot be parsed are skipped, as OpenSSH
//! does. [`record`] appends a learned key, serialised within the process so that many
//! hosts learning keys at once never interleave their lines.

use std::fs::OpenOptions;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::Mutex;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use russh::keys::{HashAlg, PublicKey};
use sha1::Sha1;

/// What the `known_hosts` file says about the key a host presented.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// A line for this host lists exactly this key.
    Known,
    /// No line for this host lists a key of this type.
    Unknown {
        /// The host has recorded keys of other types (the server may have been reinstalled,
        /// or it simply offered a type we have not seen yet).
        other_types_known: bool,
    },
    /// Lines for this host list a different key of the same type: a possible
    /// man-in-the-middle, or a reinstalled server.
    Changed {
        /// 1-based line numbers of the recorded keys.
        lines: Vec<usize>,
    },
    /// An `@revoked` line lists this key.
    Revoked {
        /// 1-based line number of the `@revoked` line.
        line: usize,
    },
}

/// The name a host is recorded under: `host` on port 22, `[host]:port` otherwise.
pub fn host_key_name(host: &str, port: u16) -> String {
    if port == 22 {
        host.to_string()
    } else {
        format!("[{host}]:{port}")
    }
}

/// The OpenSSH fingerprint of a key, `SHA256:` followed by unpadded base64.
pub fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

/// Checks `key` for `host`:`port` against the text of a `known_hosts` file.
pub fn check(text: &str, host: &str, port: u16, key: &PublicKey) -> Verdict {
    let name = host_key_name(host, port).to_ascii_lowercase();
    let mut changed = Vec::new();
    let mut other_types_known = false;
    let mut known = false;
    for (index, line) in text.lines().enumerate() {
        let Some(entry) = Entry::parse(line) else {
            continue;
        };
        if !entry.hosts.matches(&name) {
            continue;
        }
        let same_key = entry.key.key_data() == key.key_data();
        match entry.marker {
            Some(Marker::Revoked) if same_key => return Verdict::Revoked { line: index + 1 },
            Some(_) => {}
            None if same_key => known = true,
            None if entry.key.algorithm() == key.algorithm() => changed.push(index + 1),
            None => other_types_known = true,
        }
    }
    if known {
        Verdict::Known
    } else if !changed.is_empty() {
        Verdict::Changed { lines: changed }
    } else {
        Verdict::Unknown { other_types_known }
    }
}

/// The algorithms of the keys recorded for `host`:`port` (not revoked, not CA keys), in
/// the order of the file, each once.
pub fn known_algorithms(text: &str, host: &str, port: u16) -> Vec<russh::keys::Algorithm> {
    let name = host_key_name(host, port).to_ascii_lowercase();
    let mut algorithms = Vec::new();
    for line in text.lines() {
        let Some(entry) = Entry::parse(line) else {
            continue;
        };
        if entry.marker.is_none() && entry.hosts.matches(&name) {
            let algorithm = entry.key.algorithm();
            if !algorithms.contains(&algorithm) {
                algorithms.push(algorithm);
            }
        }
    }
    algorithms
}

/// `preferred` with the host key algorithms of the `known` keys first, as OpenSSH
/// orders them: a server with several host keys then shows the one already known
/// (an RSA key known stands for every RSA signature algorithm).
pub fn prefer_known(
    preferred: &[russh::keys::Algorithm],
    known: &[russh::keys::Algorithm],
) -> Vec<russh::keys::Algorithm> {
    use russh::keys::Algorithm;
    let is_known = |a: &Algorithm| {
        known.iter().any(|k| {
            k == a || (matches!(k, Algorithm::Rsa { .. }) && matches!(a, Algorithm::Rsa { .. }))
        })
    };
    let (mut first, rest): (Vec<Algorithm>, Vec<Algorithm>) =
        preferred.iter().cloned().partition(is_known);
    first.extend(rest);
    first
}

/// Reads a `known_hosts` file; a missing file is an empty one.
pub fn read(path: &Path) -> io::Result<String> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(String::from_utf8_lossy(&bytes).into_owned()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(String::new()),
        Err(e) => Err(e),
    }
}

/// Serialises appends from the many host connections of one run.
static RECORD_LOCK: Mutex<()> = Mutex::new(());

/// Appends `key` for `host`:`port` to the file at `path`, creating it with mode 0600
/// (and its directory) when missing.
///
/// Under the lock the file is read again, so a key another connection recorded in the
/// meantime is not written twice. The line goes out in one `write` on a file opened
/// for appending, which keeps it whole even against another process appending.
pub fn record(path: &Path, host: &str, port: u16, key: &PublicKey) -> io::Result<()> {
    let _guard = RECORD_LOCK
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if check(&read(path)?, host, port, key) == Verdict::Known {
        return Ok(());
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut file = open_for_append(path)?;
    let mut line = String::new();
    if !ends_with_newline(&mut file)? {
        line.push('\n');
    }
    line.push_str(&entry_line(host, port, key)?);
    file.write_all(line.as_bytes())?;
    file.sync_all()
}

/// The line recording `key` for `host`:`port`, without the key's comment.
pub fn entry_line(host: &str, port: u16, key: &PublicKey) -> io::Result<String> {
    let bare = PublicKey::from(key.key_data().clone());
    let encoded = bare.to_openssh().map_err(io::Error::other)?;
    Ok(format!(
        "{} {}\n",
        host_key_name(host, port),
        encoded.trim_end()
    ))
}

fn open_for_append(path: &Path) -> io::Result<std::fs::File> {
    let mut options = OpenOptions::new();
    options.read(true).append(true).create(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)
}

fn ends_with_newline(file: &mut std::fs::File) -> io::Result<bool> {
    if file.seek(SeekFrom::End(0))? == 0 {
        return Ok(true);
    }
    file.seek(SeekFrom::End(-1))?;
    let mut last = [0u8; 1];
    file.read_exact(&mut last)?;
    Ok(last[0] == b'\n')
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Marker {
    Revoked,
    CertAuthority,
}

/// One parsed line: optional marker, host patterns, key.
struct Entry {
    marker: Option<Marker>,
    hosts: HostPatterns,
    key: PublicKey,
}

impl Entry {
    /// Parses one line; `None` for comments, blank lines and lines OpenSSH would skip.
    fn parse(line: &str) -> Option<Entry> {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            return None;
        }
        let mut fields = line.split_whitespace();
        let mut first = fields.next()?;
        let marker = match first {
            "@revoked" => Some(Marker::Revoked),
            "@cert-authority" => Some(Marker::CertAuthority),
            other if other.starts_with('@') => return None,
            _ => None,
        };
        if marker.is_some() {
            first = fields.next()?;
        }
        let hosts = HostPatterns::parse(first)?;
        let key_type = fields.next()?;
        let key_base64 = fields.next()?;
        let key = PublicKey::from_openssh(&format!("{key_type} {key_base64}")).ok()?;
        Some(Entry { marker, hosts, key })
    }
}

/// The host field of a line.
enum HostPatterns {
    /// `|1|salt|hash`: HMAC-SHA1 of the lower-case host name, keyed with the salt.
    Hashed { salt: Vec<u8>, hash: Vec<u8> },
    /// A comma list of patterns, each possibly negated with `!`.
    List(Vec<String>),
}

impl HostPatterns {
    fn parse(field: &str) -> Option<HostPatterns> {
        if let Some(rest) = field.strip_prefix("|1|") {
            let (salt, hash) = rest.split_once('|')?;
            return Some(HostPatterns::Hashed {
                salt: BASE64.decode(salt).ok()?,
                hash: BASE64.decode(hash).ok()?,
            });
        }
        let list = field
            .split(',')
            .filter(|p| !p.is_empty())
            .map(str::to_ascii_lowercase)
            .collect();
        Some(HostPatterns::List(list))
    }

    /// Whether `name` (already lower-case, `[host]:port` form for non-22 ports) matches.
    /// As in OpenSSH, a matching negated pattern rules the line out whatever else matches.
    fn matches(&self, name: &str) -> bool {
        match self {
            HostPatterns::Hashed { salt, hash } => hashed_name_matches(salt, hash, name),
            HostPatterns::List(patterns) => {
                let mut positive = false;
                for pattern in patterns {
                    match pattern.strip_prefix('!') {
                        Some(negated) if wildcard_match(negated, name) => return false,
                        Some(_) => {}
                        None => positive |= wildcard_match(pattern, name),
                    }
                }
                positive
            }
        }
    }
}

fn hashed_name_matches(salt: &[u8], hash: &[u8], name: &str) -> bool {
    let Ok(mac) = Hmac::<Sha1>::new_from_slice(salt) else {
        return false;
    };
    mac.chain_update(name.as_bytes()).verify_slice(hash).is_ok()
}

/// Glob match with `*` (any run of characters) and `?` (one character).
fn wildcard_match(pattern: &str, text: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().collect();
    let text: Vec<char> = text.chars().collect();
    let (mut p, mut t) = (0, 0);
    let mut backtrack: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && (pattern[p] == '?' || pattern[p] == text[t]) {
            p += 1;
            t += 1;
        } else if p < pattern.len() && pattern[p] == '*' {
            backtrack = Some((p, t));
            p += 1;
        } else if let Some((star, matched)) = backtrack {
            p = star + 1;
            t = matched + 1;
            backtrack = Some((star, matched + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_A: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJdD7y3aLq454yWBdwLWbieU1ebz9/cu7/QEXn9OIeZJ";
    const KEY_B: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA6rWI3G1sz07DnfFlrouTcysQlj2P+jpNSOEWD9OJ3X";
    const KEY_ECDSA: &str = "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBJLdXacLeeOXEyG52a5LTx8CzKqj02Cl8FeS92o5ZStbHfN7q/zeIQ5q5hepYPRFkuoDkzgYmC7JNjf7nd5bGgg=";

    fn key(text: &str) -> PublicKey {
        PublicKey::from_openssh(text).expect("test key parses")
    }

    fn hashed(name: &str, salt: &[u8]) -> String {
        let mac = Hmac::<Sha1>::new_from_slice(salt)
            .expect("any salt length")
            .chain_update(name.as_bytes())
            .finalize()
            .into_bytes();
        format!("|1|{}|{}", BASE64.encode(salt), BASE64.encode(mac))
    }

    #[test]
    fn plain_entry_on_port_22() {
        let file = format!("example.org {KEY_A}\n");
        assert_eq!(check(&file, "example.org", 22, &key(KEY_A)), Verdict::Known);
        assert_eq!(
            check(&file, "other.org", 22, &key(KEY_A)),
            Verdict::Unknown {
                other_types_known: false
            }
        );
    }

    #[test]
    fn non_standard_port_needs_brackets() {
        let file = format!("[10.0.0.1]:2222 {KEY_A}\n10.0.0.1 {KEY_B}\n");
        assert_eq!(check(&file, "10.0.0.1", 2222, &key(KEY_A)), Verdict::Known);
        assert_eq!(
            check(&file, "10.0.0.1", 2222, &key(KEY_B)),
            Verdict::Changed { lines: vec![1] }
        );
        assert_eq!(check(&file, "10.0.0.1", 22, &key(KEY_B)), Verdict::Known);
    }

    #[test]
    fn comma_lists_wildcards_and_negation() {
        let file = format!("a.example.org,b.example.org {KEY_A}\n*.lab,!evil.lab {KEY_B}\n");
        assert_eq!(
            check(&file, "b.example.org", 22, &key(KEY_A)),
            Verdict::Known
        );
        assert_eq!(check(&file, "node1.lab", 22, &key(KEY_B)), Verdict::Known);
        assert!(matches!(
            check(&file, "evil.lab", 22, &key(KEY_B)),
            Verdict::Unknown { .. }
        ));
        assert!(wildcard_match("node?.lab", "node7.lab"));
        assert!(!wildcard_match("node?.lab", "node17.lab"));
        assert!(wildcard_match("*", ""));
    }

    #[test]
    fn hashed_entries_match_plain_and_bracketed_names() {
        let file = format!(
            "{} {KEY_A}\n{} {KEY_B}\n",
            hashed("example.org", b"0123456789abcdefghij"),
            hashed("[127.0.0.1]:2200", b"salt-salt-salt-salt!")
        );
        assert_eq!(check(&file, "example.org", 22, &key(KEY_A)), Verdict::Known);
        assert_eq!(check(&file, "127.0.0.1", 2200, &key(KEY_B)), Verdict::Known);
        assert!(matches!(
            check(&file, "127.0.0.1", 22, &key(KEY_B)),
            Verdict::Unknown { .. }
        ));
    }

    #[test]
    fn host_names_match_case_insensitively() {
        let file = format!("Example.ORG {KEY_A}\n");
        assert_eq!(check(&file, "example.org", 22, &key(KEY_A)), Verdict::Known);
    }

    #[test]
    fn changed_key_of_same_type_is_reported_with_its_line() {
        let file = format!("# comment\n\nexample.org {KEY_B}\n");
        assert_eq!(
            check(&file, "example.org", 22, &key(KEY_A)),
            Verdict::Changed { lines: vec![3] }
        );
    }

    #[test]
    fn other_key_types_do_not_count_as_changed() {
        let file = format!("example.org {KEY_ECDSA}\n");
        assert_eq!(
            check(&file, "example.org", 22, &key(KEY_A)),
            Verdict::Unknown {
                other_types_known: true
            }
        );
    }

    #[test]
    fn revoked_key_is_refused_even_when_also_listed() {
        let file = format!("example.org {KEY_A}\n@revoked * {KEY_A}\n");
        assert_eq!(
            check(&file, "example.org", 22, &key(KEY_A)),
            Verdict::Revoked { line: 2 }
        );
    }

    #[test]
    fn cert_authority_lines_are_not_host_keys() {
        let file = format!("@cert-authority *.example.org {KEY_A}\n");
        assert!(matches!(
            check(&file, "a.example.org", 22, &key(KEY_A)),
            Verdict::Unknown { .. }
        ));
    }

    #[test]
    fn the_known_key_types_are_offered_first() {
        use russh::keys::{Algorithm, EcdsaCurve};
        let text = format!(
            "other {KEY_A}\n[h]:2222 {KEY_ECDSA}\n@revoked [h]:2222 {KEY_A}\n@cert-authority [h]:2222 {KEY_B}\n"
        );
        let known = known_algorithms(&text, "h", 2222);
        let p256 = Algorithm::Ecdsa {
            curve: EcdsaCurve::NistP256,
        };
        assert_eq!(known, vec![p256.clone()]);
        let order = prefer_known(&russh::Preferred::DEFAULT.key, &known);
        assert_eq!(order[0], p256);
        assert_eq!(order[1], Algorithm::Ed25519);
        assert_eq!(order.len(), russh::Preferred::DEFAULT.key.len());
        assert_eq!(
            prefer_known(&russh::Preferred::DEFAULT.key, &[]),
            russh::Preferred::DEFAULT.key.to_vec()
        );
    }

    #[test]
    fn malformed_lines_are_skipped() {
        let file = format!("garbage\n@weird host {KEY_B}\nexample.org ssh-ed25519 !!!\nexample.org\t{KEY_A} comment here\n");
        assert_eq!(check(&file, "example.org", 22, &key(KEY_A)), Verdict::Known);
    }

    #[test]
    fn fingerprint_is_openssh_format() {
        let fp = fingerprint(&key(KEY_A));
        assert!(fp.starts_with("SHA256:"), "{fp}");
        assert!(!fp.ends_with('='), "{fp}");
        assert_eq!(fp.len(), "SHA256:".len() + 43);
    }

    #[test]
    fn record_creates_file_0600_and_does_not_duplicate() {
        let dir = std::env::temp_dir().join(format!("k8sup-kh-test-{}", std::process::id()));
        let path = dir.join("sub").join("known_hosts");
        let _ = std::fs::remove_dir_all(&dir);
        record(&path, "127.0.0.1", 2200, &key(KEY_A)).expect("record");
        record(&path, "127.0.0.1", 2200, &key(KEY_A)).expect("record again");
        record(&path, "example.org", 22, &key(KEY_B)).expect("record other");
        let text = read(&path).expect("read");
        assert_eq!(text.lines().count(), 2, "{text}");
        assert!(text.starts_with("[127.0.0.1]:2200 ssh-ed25519 "), "{text}");
        assert_eq!(check(&text, "example.org", 22, &key(KEY_B)), Verdict::Known);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).expect("stat").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn record_adds_missing_newline() {
        let dir = std::env::temp_dir().join(format!("k8sup-kh-nl-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("mkdir");
        let path = dir.join("known_hosts");
        std::fs::write(&path, format!("example.org {KEY_B}")).expect("write");
        record(&path, "other.org", 22, &key(KEY_A)).expect("record");
        let text = read(&path).expect("read");
        assert_eq!(check(&text, "example.org", 22, &key(KEY_B)), Verdict::Known);
        assert_eq!(check(&text, "other.org", 22, &key(KEY_A)), Verdict::Known);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
