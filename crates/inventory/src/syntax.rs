//! What a name, label, taint, address or flag may look like.
//!
//! Each check returns `Err(reason)` in plain words; the loader adds the place.
//! These checks are what keeps a value that will reach a remote command line,
//! a kubeadm config or a manifest meaningful there: quoting makes any value
//! inert on a shell line, and these rules make sure it is also the value the
//! user meant (a label `a;reboot` is not a label at all).

use std::net::IpAddr;

/// An RFC 1123 label in lower case: what a node name and hostname must be.
pub fn rfc1123_label(text: &str) -> Result<(), String> {
    if text.is_empty() {
        return Err("is empty".into());
    }
    if text.len() > 63 {
        return Err(format!("is {} characters long; at most 63", text.len()));
    }
    if let Some(c) = text
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        return Err(if c.is_ascii_uppercase() {
            "has upper-case letters; only a-z, 0-9 and '-' are allowed".into()
        } else {
            format!("has the character {c:?}; only a-z, 0-9 and '-' are allowed")
        });
    }
    if text.starts_with('-') || text.ends_with('-') {
        return Err("must start and end with a letter or digit".into());
    }
    Ok(())
}

/// An RFC 1123 DNS name (dot-separated labels, at most 253 characters).
pub fn dns_name(text: &str) -> Result<(), String> {
    let name = text.strip_suffix('.').unwrap_or(text);
    if name.is_empty() {
        return Err("is empty".into());
    }
    if name.len() > 253 {
        return Err("is longer than 253 characters".into());
    }
    for label in name.split('.') {
        rfc1123_label(&label.to_ascii_lowercase())
            .map_err(|why| format!("has a part {label:?} that {why}"))?;
    }
    if name
        .split('.')
        .all(|l| l.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err("looks like an IP address but is not a valid one".into());
    }
    Ok(())
}

/// An IP address or a DNS name, as `address` and `apiserver_cert_sans` take.
pub fn ip_or_dns_name(text: &str) -> Result<(), String> {
    if text.parse::<IpAddr>().is_ok() {
        return Ok(());
    }
    dns_name(text).map_err(|why| format!("is neither an IP address nor a DNS name: it {why}"))
}

/// A Kubernetes label key: an optional DNS-subdomain prefix and `/`, then a name.
pub fn label_key(text: &str) -> Result<(), String> {
    let (prefix, name) = match text.rsplit_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, text),
    };
    if let Some(prefix) = prefix {
        dns_name(prefix).map_err(|why| format!("has a prefix that {why}"))?;
    }
    label_name(name, false)
}

/// A Kubernetes label value: empty, or a name of at most 63 characters.
pub fn label_value(text: &str) -> Result<(), String> {
    label_name(text, true)
}

fn label_name(text: &str, empty_ok: bool) -> Result<(), String> {
    if text.is_empty() {
        return if empty_ok {
            Ok(())
        } else {
            Err("is empty".into())
        };
    }
    if text.len() > 63 {
        return Err("is longer than 63 characters".into());
    }
    if let Some(c) = text
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Err(format!(
            "has the character {c:?}; only letters, digits, '-', '_' and '.' are allowed"
        ));
    }
    let first = text.chars().next().unwrap_or('a');
    let last = text.chars().last().unwrap_or('a');
    if !first.is_ascii_alphanumeric() || !last.is_ascii_alphanumeric() {
        return Err("must start and end with a letter or digit".into());
    }
    Ok(())
}

/// The effects a taint may have.
pub const TAINT_EFFECTS: [&str; 3] = ["NoSchedule", "PreferNoSchedule", "NoExecute"];

/// A taint as kubectl writes it: `key[=value]:Effect`.
pub fn taint(text: &str) -> Result<(), String> {
    let Some((key_value, effect)) = text.rsplit_once(':') else {
        return Err("has no effect: write `key=value:NoSchedule`".into());
    };
    if !TAINT_EFFECTS.contains(&effect) {
        return Err(format!(
            "has the effect {effect:?}; it must be one of {}",
            TAINT_EFFECTS.join(", ")
        ));
    }
    let (key, value) = key_value.split_once('=').unwrap_or((key_value, ""));
    label_key(key).map_err(|why| format!("has a key that {why}"))?;
    label_value(value).map_err(|why| format!("has a value that {why}"))
}

/// A component flag name, as kubeadm's extraArgs keys (`audit-log-maxage`).
pub fn flag_name(text: &str) -> Result<(), String> {
    if text.starts_with('-') {
        return Err("starts with '-': write the flag name without dashes".into());
    }
    if text.is_empty()
        || !text
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        return Err("is not a flag name: only a-z, 0-9 and '-' are allowed".into());
    }
    Ok(())
}

/// Free text that goes into configs and command lines: any printable text.
/// Control characters (a newline above all) would change the meaning of the
/// YAML or unit file the value lands in, so they are refused.
pub fn printable(text: &str) -> Result<(), String> {
    match text.chars().find(|c| c.is_control()) {
        Some(c) => Err(format!("holds the control character {c:?}")),
        None => Ok(()),
    }
}

/// A POSIX user name, as ssh.user takes.
pub fn user_name(text: &str) -> Result<(), String> {
    let ok = !text.is_empty()
        && text.len() <= 32
        && !text.starts_with('-')
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if ok {
        Ok(())
    } else {
        Err("is not a user name: letters, digits, '_', '-' and '.', at most 32".into())
    }
}

/// A package release version as Docker's repositories name it: `27.3.1`
/// (digits and dots, three numbers); the packaging release is found by k8sup.
pub fn release_version(text: &str) -> Result<(), String> {
    let parts: Vec<&str> = text.split('.').collect();
    let ok = parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.len() <= 6 && p.bytes().all(|b| b.is_ascii_digit()));
    if ok {
        Ok(())
    } else {
        Err("is not a release version like 27.3.1 (three numbers)".into())
    }
}

/// A sha256 digest: 64 hexadecimal digits.
pub fn sha256_hex(text: &str) -> Result<(), String> {
    if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err("is not a sha256 (64 hex digits)".into())
    }
}

/// An http(s) URL, as repositories and registry mirrors take.
pub fn http_url(text: &str) -> Result<(), String> {
    let rest = text
        .strip_prefix("https://")
        .or_else(|| text.strip_prefix("http://"))
        .ok_or("must start with https:// or http://")?;
    let host_port = rest.split('/').next().unwrap_or("");
    let host = match host_port.rsplit_once(':') {
        Some((host, port)) if port.parse::<u16>().is_ok() => host,
        _ => host_port,
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    ip_or_dns_name(host).map_err(|why| format!("has a host that {why}"))?;
    printable(text)?;
    if text.contains(char::is_whitespace) {
        return Err("contains white space".into());
    }
    Ok(())
}

/// A container image reference or registry prefix (`registry.example.org/ns/name:tag`).
pub fn image_reference(text: &str) -> Result<(), String> {
    if text.is_empty() {
        return Err("is empty".into());
    }
    if let Some(c) = text.chars().find(|c| {
        !(c.is_ascii_lowercase()
            || c.is_ascii_uppercase()
            || c.is_ascii_digit()
            || matches!(c, '.' | '-' | '_' | '/' | ':' | '@'))
    }) {
        return Err(format!(
            "has the character {c:?}, which no image reference holds"
        ));
    }
    if text.starts_with(['/', ':', '@', '.', '-']) || text.ends_with(['/', ':', '@']) {
        return Err("is not an image reference".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_names() {
        assert!(rfc1123_label("k8s-master-1").is_ok());
        assert!(rfc1123_label("Master").is_err());
        assert!(rfc1123_label("-a").is_err());
        assert!(rfc1123_label("a_b").is_err());
        assert!(rfc1123_label(&"a".repeat(64)).is_err());
    }

    #[test]
    fn addresses() {
        assert!(ip_or_dns_name("10.0.0.1").is_ok());
        assert!(ip_or_dns_name("fd00::1").is_ok());
        assert!(ip_or_dns_name("k8s.example.org").is_ok());
        assert!(ip_or_dns_name("300.1.1.1").is_err());
        assert!(ip_or_dns_name("a b").is_err());
        assert!(ip_or_dns_name("host;reboot").is_err());
    }

    #[test]
    fn labels_and_taints() {
        assert!(label_key("node-role.kubernetes.io/gpu").is_ok());
        assert!(label_key("disktype").is_ok());
        assert!(label_value("").is_ok());
        assert!(label_value("a;reboot").is_err());
        assert!(taint("dedicated=gpu:NoSchedule").is_ok());
        assert!(taint("dedicated:NoExecute").is_ok());
        assert!(taint("dedicated=gpu").is_err());
        assert!(taint("dedicated=gpu:Never").is_err());
        assert!(taint("a;reboot=x:NoSchedule").is_err());
    }

    #[test]
    fn urls_images_flags_users() {
        assert!(http_url("https://mirrors.aliyun.com/kubernetes-new/core/stable").is_ok());
        assert!(http_url("https://[fd00::1]:5000").is_ok());
        assert!(http_url("ftp://x").is_err());
        assert!(http_url("https://x y").is_err());
        assert!(image_reference("registry.aliyuncs.com/google_containers").is_ok());
        assert!(image_reference("docker.io/flannel/flannel:v0.25.6").is_ok());
        assert!(image_reference("a;b").is_err());
        assert!(flag_name("audit-log-maxage").is_ok());
        assert!(flag_name("--max-pods").is_err());
        assert!(user_name("ubuntu").is_ok());
        assert!(user_name("root;id").is_err());
        assert!(printable("a';reboot;'").is_ok());
        assert!(printable("a\nb").is_err());
    }
}
