//! Hashes, base64, nonces and canonical JSON forms: the encodings every other module of the engine uses.
//! A leaf: it imports nothing from the crate, so that the modules using it (host,
//! playbook, fingerprint, state, script, kinds) do not import each other for it.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;

/// Lowercase hex sha256 of `data`.
pub(crate) fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(data);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Decodes a base64 field written by the prelude's `k8sup_b64` (`base64 -w 0`);
/// whitespace is ignored.
pub(crate) fn decode_b64(text: &str) -> Result<Vec<u8>, String> {
    let clean: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    BASE64.decode(clean).map_err(|e| format!("not base64: {e}"))
}

/// Encodes bytes as base64, as `base64 -w 0` does.
#[cfg(test)]
pub(crate) fn encode_b64(data: &[u8]) -> String {
    BASE64.encode(data)
}

/// A JSON object written key by key, in the order the keys are given: the canonical
/// form of a task that its fingerprint hashes (see `crate::fingerprint`).
#[derive(Default)]
pub struct Form {
    out: String,
}

impl Form {
    /// Adds `key` with `value`, already JSON.
    pub fn raw(&mut self, key: &str, value: &str) {
        self.out.push(if self.out.is_empty() { '{' } else { ',' });
        self.out.push_str(&json_string(key));
        self.out.push(':');
        self.out.push_str(value);
    }

    pub fn text(&mut self, key: &str, value: &str) {
        self.raw(key, &json_string(value));
    }

    pub fn optional(&mut self, key: &str, value: Option<&str>) {
        if let Some(value) = value {
            self.text(key, value);
        }
    }

    pub fn list(&mut self, key: &str, values: &[String]) {
        let items: Vec<String> = values.iter().map(|v| json_string(v)).collect();
        self.raw(key, &format!("[{}]", items.join(",")));
    }

    pub fn finish(mut self) -> String {
        if self.out.is_empty() {
            self.out.push('{');
        }
        self.out.push('}');
        self.out
    }
}

/// A JSON string literal: serde_json escapes as RFC 8259 says, which does not change.
fn json_string(text: &str) -> String {
    serde_json::Value::from(text).to_string()
}

/// A fresh nonce of 128 random bits from the OS, as 32 hex digits.
pub(crate) fn nonce() -> String {
    let mut bytes = [0u8; 16];
    if getrandom::fill(&mut bytes).is_err() {
        // No OS randomness: std's per-instance hasher keys, mixed with the clock.
        use std::hash::{BuildHasher, Hasher};
        for (salt, half) in bytes.chunks_mut(8).enumerate() {
            let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
            hasher.write_usize(salt);
            hasher.write_u128(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos()),
            );
            half.copy_from_slice(&hasher.finish().to_le_bytes());
        }
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips_and_refuses_what_is_not_base64() {
        for data in [&b""[..], b"a", b"ab", b"abc", b"\x00\xff\x10 binary\n"] {
            assert_eq!(decode_b64(&encode_b64(data)).unwrap(), data);
        }
        assert_eq!(encode_b64(b"hello"), "aGVsbG8=");
        assert_eq!(decode_b64("aGVs\nbG8=\n").unwrap(), b"hello");
        assert!(decode_b64("a$==").is_err());
        assert!(decode_b64("aGVsbG8").is_err(), "cut short");
    }

    #[test]
    fn nonces_are_32_hex_digits_and_differ() {
        let (a, b) = (nonce(), nonce());
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }

    #[test]
    fn sha256_is_lowercase_hex() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
