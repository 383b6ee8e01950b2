//! Keeping secrets out of everything the engine emits.
//!
//! Values fetched by `secret = true` tasks (and any the caller adds, such as passwords
//! from the inventory) are registered here; every event, plan, report, state entry,
//! history record and error message passes through [`Redactor::redact`] on its way out.

use std::sync::{Arc, RwLock};

/// What a secret is replaced by.
pub const REDACTED: &str = "<redacted>";

/// Words of a secret at least this long are redacted on their own too, so that a token
/// cut out of a join command line is still hidden.
const MIN_WORD: usize = 16;

/// A shared, growing set of secret strings.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    secrets: Arc<RwLock<Vec<String>>>,
}

impl Redactor {
    pub fn new() -> Self {
        Redactor::default()
    }

    /// Registers `secret`, and each of its long words (`--token abcdef.0123456789abcdef`
    /// hides the token alone as well).
    pub fn add(&self, secret: &str) {
        let secret = secret.trim();
        if secret.is_empty() {
            return;
        }
        let mut list = match self.secrets.write() {
            Ok(list) => list,
            Err(poisoned) => poisoned.into_inner(),
        };
        let words = secret
            .split_whitespace()
            .filter(|w| w.len() >= MIN_WORD && !w.starts_with('-'));
        for item in std::iter::once(secret).chain(words) {
            if !list.iter().any(|s| s == item) {
                list.push(item.to_string());
            }
        }
        // Longest first, so that a whole secret is replaced before its parts.
        list.sort_by_key(|s| std::cmp::Reverse(s.len()));
    }

    /// `text` with every registered secret replaced by [`REDACTED`].
    pub fn redact(&self, text: &str) -> String {
        let list = match self.secrets.read() {
            Ok(list) => list,
            Err(poisoned) => poisoned.into_inner(),
        };
        let mut out = text.to_string();
        for secret in list.iter() {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), REDACTED);
            }
        }
        out
    }

    /// Whether any secret is registered.
    pub fn is_empty(&self) -> bool {
        self.secrets.read().map(|l| l.is_empty()).unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_values_and_long_words_are_hidden() {
        let r = Redactor::new();
        r.add("kubeadm join 10.0.0.1:6443 --token abcdef.0123456789abcdef --discovery-token-ca-cert-hash sha256:00112233\n");
        assert_eq!(
            r.redact("ran kubeadm join 10.0.0.1:6443 --token abcdef.0123456789abcdef --discovery-token-ca-cert-hash sha256:00112233 ok"),
            "ran <redacted> ok"
        );
        assert_eq!(
            r.redact("token=abcdef.0123456789abcdef"),
            "token=<redacted>"
        );
        assert_eq!(
            r.redact("sha256:00112233"),
            "sha256:00112233",
            "short words stay"
        );
        assert_eq!(
            r.redact("--discovery-token-ca-cert-hash"),
            "--discovery-token-ca-cert-hash"
        );
    }

    #[test]
    fn empty_secrets_redact_nothing() {
        let r = Redactor::new();
        r.add("  ");
        assert!(r.is_empty());
        assert_eq!(r.redact("abc"), "abc");
    }
}
