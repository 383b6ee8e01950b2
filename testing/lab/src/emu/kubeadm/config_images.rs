//! `kubeadm config images list|pull`, and the image pulls of `kubeadm init` and of a
//! control-plane join (their preflight pulls what `config images list` prints).
//!
//! As the real kubeadm: without `--kubernetes-version` or a ClusterConfiguration naming
//! one, the version is `stable-1`, which cannot be fetched offline, so kubeadm warns and
//! falls back to its own version; coredns sits under `coredns/` only in the default
//! repository (kubeadm's `GetDNSImage`).

use super::{cluster, klog_warning, load_config, usage, Failure, Flags, Outcome};
use crate::emu::{images, runtime, Invocation};

const DEFAULT_REPOSITORY: &str = "registry.k8s.io";

/// What `kubeadm config images list` prints for `version` (`1.30.4`) from `repository`.
pub(in crate::emu) fn list(repository: &str, version: &str) -> Vec<String> {
    let minor = cluster::semver(version).map_or(30, |v| v.1);
    let tags = super::images_for(minor);
    let dns = if repository == DEFAULT_REPOSITORY {
        format!("{repository}/coredns/coredns")
    } else {
        format!("{repository}/coredns")
    };
    vec![
        format!("{repository}/kube-apiserver:v{version}"),
        format!("{repository}/kube-controller-manager:v{version}"),
        format!("{repository}/kube-scheduler:v{version}"),
        format!("{repository}/kube-proxy:v{version}"),
        format!("{dns}:{}", tags.coredns),
        format!("{repository}/pause:{}", tags.pause),
        format!("{repository}/etcd:{}", tags.etcd),
    ]
}

/// Pulls what is missing of `images` through the runtime on `socket` (preflight's pull).
pub(super) fn pull_all(inv: &Invocation, socket: &str, images: &[String]) -> Result<(), String> {
    runtime::check_socket(inv, socket)?;
    for image in images {
        images::pull(inv, image)
            .map_err(|e| format!("failed to pull image {image}: output: , error: {e}"))?;
    }
    Ok(())
}

pub(super) fn run(inv: &mut Invocation, kubeadm_version: &str, rest: &[String]) -> Outcome {
    match (
        rest.first().map(String::as_str),
        rest.get(1).map(String::as_str),
    ) {
        (Some("images"), Some(verb @ ("list" | "pull"))) => {
            images_cmd(inv, kubeadm_version, verb, &rest[2..])
        }
        (Some("images"), Some(other)) => Err(usage(format!(
            "unknown command \"{other}\" for \"kubeadm config images\""
        ))),
        (Some("images"), None) => Err(usage(
            "missing subcommand; \"images\" is not meant to be run on its own".into(),
        )),
        (Some(other), _) if !other.starts_with('-') => Err(Failure::Error(format!(
            "k8sup-lab: kubeadm config {other} is not emulated"
        ))),
        _ => Err(usage(
            "missing subcommand; \"config\" is not meant to be run on its own".into(),
        )),
    }
}

fn images_cmd(inv: &mut Invocation, kubeadm_version: &str, verb: &str, args: &[String]) -> Outcome {
    let f = Flags::parse(
        args,
        &[
            "config",
            "kubernetes-version",
            "image-repository",
            "cri-socket",
            "feature-gates",
            "output",
        ],
        &["allow-missing-template-keys"],
    )
    .map_err(usage)?;
    if let Some(p) = f.positional.first() {
        return Err(usage(format!(
            "unknown command \"{p}\" for \"kubeadm config images {verb}\""
        )));
    }
    if f.get("config").is_some()
        && (f.get("kubernetes-version").is_some() || f.get("image-repository").is_some())
    {
        return Err(Failure::Error(
            "can not mix '--config' with arguments [image-repository kubernetes-version]".into(),
        ));
    }
    let cfg = match f.get("config") {
        Some(path) => Some(load_config(inv, path, kubeadm_version).map_err(Failure::Error)?),
        None => None,
    };
    let cluster_doc = cfg
        .as_ref()
        .and_then(|c| c.cluster.clone())
        .unwrap_or_default();
    let from_config = |key: &str| cluster::str_at(&cluster_doc, &[key]).to_string();
    let mut version = f
        .get("kubernetes-version")
        .map(String::from)
        .unwrap_or_else(|| from_config("kubernetesVersion"));
    if version.is_empty() {
        version = "stable-1".into();
    }
    if version.starts_with("stable") || version.starts_with("latest") {
        inv.errln(&klog_warning(inv, "version.go:104", &format!("could not fetch a Kubernetes version from the internet: unable to get URL \"https://dl.k8s.io/release/{version}.txt\": Get \"https://dl.k8s.io/release/{version}.txt\": dial tcp: lookup dl.k8s.io on 127.0.0.53:53: server misbehaving")));
        inv.errln(&klog_warning(
            inv,
            "version.go:105",
            &format!("falling back to the local client version: v{kubeadm_version}"),
        ));
        version = kubeadm_version.to_string();
    }
    let Some(v) = cluster::semver(version.trim_start_matches('v')) else {
        return Err(Failure::Error(format!(
            "couldn't parse Kubernetes version \"{version}\": could not parse \"{version}\" as version"
        )));
    };
    let version = format!("{}.{}.{}", v.0, v.1, v.2);
    let repository = match f
        .get("image-repository")
        .map(String::from)
        .unwrap_or_else(|| from_config("imageRepository"))
    {
        r if r.is_empty() => DEFAULT_REPOSITORY.to_string(),
        r => r,
    };
    let wanted = list(&repository, &version);
    if verb == "list" {
        match f.get("output").unwrap_or("text") {
            "text" => {
                for i in &wanted {
                    inv.outln(i);
                }
            }
            other => {
                return Err(Failure::Error(format!(
                    "k8sup-lab: kubeadm config images list -o {other} is not emulated"
                )))
            }
        }
        return Ok(());
    }
    let socket = match f.get("cri-socket").map(String::from).or_else(|| {
        cfg.as_ref()
            .and_then(|c| c.init.as_ref())
            .map(|d| cluster::str_at(d, &["nodeRegistration", "criSocket"]).to_string())
            .filter(|s| !s.is_empty())
    }) {
        Some(s) => s,
        None => runtime::detect_socket(inv).map_err(Failure::Error)?,
    };
    if let Err(e) = runtime::check_socket(inv, &socket) {
        return Err(Failure::Error(format!(
            "failed to create new CRI runtime service: {e}"
        )));
    }
    for image in &wanted {
        images::pull(inv, image).map_err(|e| {
            Failure::Error(format!(
                "failed to pull image \"{image}\": output: , error: {e}"
            ))
        })?;
        inv.outln(&format!("[config/images] Pulled {image}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_follows_the_version_and_the_repository() {
        assert_eq!(
            list("registry.k8s.io", "1.30.4"),
            [
                "registry.k8s.io/kube-apiserver:v1.30.4",
                "registry.k8s.io/kube-controller-manager:v1.30.4",
                "registry.k8s.io/kube-scheduler:v1.30.4",
                "registry.k8s.io/kube-proxy:v1.30.4",
                "registry.k8s.io/coredns/coredns:v1.11.1",
                "registry.k8s.io/pause:3.9",
                "registry.k8s.io/etcd:3.5.12-0",
            ]
        );
        let mirror = list("mirror.example/k8s", "1.31.0");
        assert_eq!(mirror[4], "mirror.example/k8s/coredns:v1.11.3");
        assert_eq!(mirror[5], "mirror.example/k8s/pause:3.10");
    }
}
