//! Container image references: which registry an image comes from, and how its
//! name changes under a registry mirror or for another architecture.

use k8sup_inventory::Arch;

/// The registry of an image written without one (`flannel/flannel:v0.25.6`).
pub const DOCKER_HUB: &str = "docker.io";

/// An image reference split the way container runtimes read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    /// `docker.io`, `quay.io`, `registry.example.org:5000`...
    pub registry: String,
    /// `flannel/flannel`; official Docker Hub images get `library/`.
    pub path: String,
    /// `:v0.25.6`, `@sha256:...`, both, or empty.
    pub suffix: String,
}

impl ImageRef {
    /// Splits `image` as runtimes do: the first component is a registry when it
    /// holds a `.` or `:` or is `localhost`; otherwise the image is on Docker Hub.
    pub fn parse(image: &str) -> ImageRef {
        let (name, suffix) = split_suffix(image);
        let (registry, path) = match name.split_once('/') {
            Some((first, rest))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (first.to_string(), rest.to_string())
            }
            _ => (DOCKER_HUB.to_string(), name.to_string()),
        };
        let path = if registry == DOCKER_HUB && !path.contains('/') {
            format!("library/{path}")
        } else {
            path
        };
        ImageRef {
            registry,
            path,
            suffix: suffix.to_string(),
        }
    }

    pub fn is_docker_hub(&self) -> bool {
        matches!(
            self.registry.as_str(),
            "docker.io" | "index.docker.io" | "registry-1.docker.io"
        )
    }

    /// The reference with the registry replaced by `prefix` (a host, possibly with
    /// a path: `mirror.example.org/dockerhub`).
    pub fn with_registry(&self, prefix: &str) -> String {
        format!(
            "{}/{}{}",
            prefix.trim_end_matches('/'),
            self.path,
            self.suffix
        )
    }
}

/// `name:tag@digest` into `name` and `:tag@digest`. A `:` before the last `/` is
/// a registry port, not a tag.
fn split_suffix(image: &str) -> (&str, &str) {
    let digest_at = image.find('@').unwrap_or(image.len());
    let before_digest = &image[..digest_at];
    let last_slash = before_digest.rfind('/').map_or(0, |i| i + 1);
    let tag_at = before_digest[last_slash..]
        .find(':')
        .map_or(digest_at, |i| last_slash + i);
    (&image[..tag_at], &image[tag_at..])
}

/// The host (and path) part of a registry mirror URL: `https://m.example.org/x/`
/// gives `m.example.org/x`.
pub fn mirror_prefix(url: &str) -> &str {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .unwrap_or(url);
    rest.trim_end_matches('/')
}

/// Whether `image` uses the legacy per-architecture naming (`flannel:v0.11.0-amd64`,
/// `kube-proxy-amd64:v1.10`): an `-amd64` at the end of the tag or of the name.
pub fn is_legacy_arch_image(image: &str) -> bool {
    legacy_arch_position(image).is_some()
}

/// The legacy-named image for `arch`: `-amd64` replaced by `-arm64` where the
/// architecture is written; `None` when `image` is not legacy-named.
pub fn legacy_arch_image(image: &str, arch: Arch) -> Option<String> {
    let at = legacy_arch_position(image)?;
    let mut out = String::with_capacity(image.len());
    out.push_str(&image[..at]);
    out.push('-');
    out.push_str(arch.as_str());
    out.push_str(&image[at + "-amd64".len()..]);
    Some(out)
}

fn legacy_arch_position(image: &str) -> Option<usize> {
    let (name, suffix) = split_suffix(image);
    let tag = suffix.split('@').next().unwrap_or("");
    if tag.ends_with("-amd64") {
        return Some(name.len() + tag.len() - "-amd64".len());
    }
    name.ends_with("-amd64")
        .then(|| name.len() - "-amd64".len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_are_split_as_runtimes_read_them() {
        let r = ImageRef::parse("docker.io/flannel/flannel:v0.25.6");
        assert_eq!(
            (r.registry.as_str(), r.path.as_str(), r.suffix.as_str()),
            ("docker.io", "flannel/flannel", ":v0.25.6")
        );
        let r = ImageRef::parse("flannel/flannel:v0.25.6");
        assert!(r.is_docker_hub());
        assert_eq!(r.path, "flannel/flannel");
        let r = ImageRef::parse("busybox");
        assert_eq!(r.path, "library/busybox");
        assert_eq!(r.suffix, "");
        let r = ImageRef::parse("registry.example.org:5000/calico/node:v3@sha256:abc");
        assert_eq!(r.registry, "registry.example.org:5000");
        assert_eq!(r.path, "calico/node");
        assert_eq!(r.suffix, ":v3@sha256:abc");
        let r = ImageRef::parse("localhost/x");
        assert_eq!(r.registry, "localhost");
    }

    #[test]
    fn mirrors_replace_the_registry() {
        let r = ImageRef::parse("flannel/flannel:v0.25.6");
        assert_eq!(
            r.with_registry(mirror_prefix("https://mirror.example.org/hub/")),
            "mirror.example.org/hub/flannel/flannel:v0.25.6"
        );
    }

    #[test]
    fn legacy_arch_names_in_tag_or_name() {
        assert_eq!(
            legacy_arch_image("quay.io/coreos/flannel:v0.11.0-amd64", Arch::Arm64).as_deref(),
            Some("quay.io/coreos/flannel:v0.11.0-arm64")
        );
        assert_eq!(
            legacy_arch_image("k8s.gcr.io/kube-proxy-amd64:v1.10.0", Arch::Arm64).as_deref(),
            Some("k8s.gcr.io/kube-proxy-arm64:v1.10.0")
        );
        assert!(!is_legacy_arch_image("docker.io/flannel/flannel:v0.25.6"));
        assert!(!is_legacy_arch_image("registry.example.org:5000/x"));
    }
}
