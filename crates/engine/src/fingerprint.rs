//! Task fingerprints: what the ledger records of the task that ran, so that a later
//! run can tell whether the task it is about to judge is the one that ran.
//!
//! A fingerprint is `v2:` and the sha256 of the task's *canonical form*: a JSON
//! object, written here field by field in a fixed order, of the task id, its kind and
//! its rendered fields, named as a playbook names them (`path`, `content`, `mode`,
//! ...). It depends on what the task does, not on how the engine's types are spelled:
//! renaming a Rust field or changing the compiler changes no fingerprint, and a field
//! at its default (an unset `owner`, `hold = false`) is left out, so adding an
//! optional field to a kind keeps every existing fingerprint. The pinned fingerprints
//! in the tests below fail when the form changes; a change of the form must come with
//! a new version prefix and a way to accept the old one, as for version 1.
//!
//! Version 1 (k8sup up to commit 3c7da93) was the bare sha256 of the task's Rust
//! `Debug` text. Ledgers written then are still judged: [`recorded_matches`]
//! recomputes such a fingerprint with [`legacy_v1_text`], a frozen copy of that text,
//! and the engine upgrades the entry to version 2 in the next ledger write.

use crate::encoding::Form;
use crate::kinds::Rendered;

/// The prefix of a current fingerprint.
pub const PREFIX: &str = "v2:";

/// The fingerprint of a rendered task. Values a task needs from other hosts are not in
/// it (they are rendered as placeholders), so a secret can never be recovered from it,
/// and a join token that changes every run does not make the task look new.
pub fn fingerprint(task_id: &str, rendered: &Rendered) -> String {
    format!(
        "{PREFIX}{}",
        crate::encoding::sha256_hex(canonical(task_id, rendered).as_bytes())
    )
}

/// Whether `recorded` (a ledger entry's fingerprint, of any version) is the
/// fingerprint of `rendered` as task `task_id`; `current` is [`fingerprint`]'s.
pub fn recorded_matches(recorded: &str, task_id: &str, rendered: &Rendered, current: &str) -> bool {
    if recorded.starts_with(PREFIX) {
        recorded == current
    } else if is_v1(recorded) {
        legacy_v1(task_id, rendered).is_some_and(|v1| recorded == v1)
    } else {
        false
    }
}

/// Whether `recorded` is a version 1 fingerprint: 64 lowercase hex digits, no prefix.
pub fn is_v1(recorded: &str) -> bool {
    recorded.len() == 64
        && recorded
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The canonical form of a rendered task: compact JSON, keys in the order written
/// here, fields at their default left out.
pub fn canonical(task_id: &str, rendered: &Rendered) -> String {
    let mut form = Form::default();
    form.text("task", task_id);
    form.text("kind", rendered.kind());
    rendered.canonical(&mut form);
    form.finish()
}

/// The version 1 fingerprint: sha256 of `<task id>\0<kind>\0<legacy_v1_text>`;
/// `None` for a kind that came after version 1.
pub(crate) fn legacy_v1(task_id: &str, rendered: &Rendered) -> Option<String> {
    let text = format!(
        "{task_id}\0{}\0{}",
        rendered.kind(),
        legacy_v1_text(rendered)?
    );
    Some(crate::encoding::sha256_hex(text.as_bytes()))
}

/// The text version 1 hashed: what `format!("{rendered:?}")` printed with the types
/// of commit 3c7da93, written out by each kind (`Kind::legacy_v1_text`) so that it
/// no longer follows the types. Only the escaping of strings is still the standard
/// library's `Debug` of `str`.
pub(crate) fn legacy_v1_text(rendered: &Rendered) -> Option<String> {
    rendered.legacy_v1_text()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::host::Artifact;
    use crate::playbook::{
        CommandSpec, FetchSpec, FileSource, FileSpec, HostnameSpec, LineEdit, LineSpec, ModuleSpec,
        PackageSpec, ServiceSpec, ServiceState, SysctlSpec,
    };

    /// One rendered task of each kind and variant, with odd text in it.
    fn tasks() -> Vec<(&'static str, Rendered)> {
        vec![
            (
                "p/file",
                Rendered::File(FileSpec {
                    path: "/etc/app/app.conf".into(),
                    source: FileSource::Content("a = \"b\"\n\tc\u{e9}\n".into()),
                    mode: 0o640,
                    owner: Some("root".into()),
                    group: None,
                }),
            ),
            (
                "p/binary",
                Rendered::File(FileSpec {
                    path: "/usr/local/bin/tool".into(),
                    source: FileSource::Binary {
                        artifact: "tool".into(),
                        data: Artifact::new(b"\x7fELF\0".to_vec()),
                    },
                    mode: 0o755,
                    owner: None,
                    group: Some("root".into()),
                }),
            ),
            (
                "p/line",
                Rendered::Line(LineSpec {
                    path: "/etc/motd".into(),
                    edit: LineEdit::Present {
                        line: "managed by k8sup".into(),
                        regexp: Some("^managed".into()),
                    },
                }),
            ),
            (
                "p/comment",
                Rendered::Line(LineSpec {
                    path: "/etc/fstab".into(),
                    edit: LineEdit::CommentOut {
                        regexp: r"\sswap\s".into(),
                    },
                }),
            ),
            (
                "p/package",
                Rendered::Package(PackageSpec {
                    packages: vec!["kubelet".into(), "kubeadm".into()],
                    version: Some("1.30.4-*".into()),
                    hold: true,
                }),
            ),
            (
                "p/service",
                Rendered::Service(ServiceSpec {
                    service: "containerd".into(),
                    enabled: Some(true),
                    state: Some(ServiceState::Started),
                }),
            ),
            (
                "p/handler",
                Rendered::Service(ServiceSpec {
                    service: "containerd".into(),
                    enabled: None,
                    state: Some(ServiceState::Restarted),
                }),
            ),
            (
                "p/module",
                Rendered::Module(ModuleSpec {
                    module: "br_netfilter".into(),
                    persist_file: Some("/etc/modules-load.d/k8s.conf".into()),
                }),
            ),
            (
                "p/sysctl",
                Rendered::Sysctl(SysctlSpec {
                    settings: BTreeMap::from([
                        ("net.ipv4.ip_forward".into(), "1".into()),
                        ("net.bridge.bridge-nf-call-iptables".into(), "1".into()),
                    ]),
                    file: "/etc/sysctl.d/k8s.conf".into(),
                }),
            ),
            (
                "p/command",
                Rendered::Command(CommandSpec {
                    cmd: "kubeadm join --token '<token from master>'".into(),
                    creates: Some("/etc/kubernetes/kubelet.conf".into()),
                    unless: None,
                }),
            ),
            (
                "p/fetch",
                Rendered::Fetch(FetchSpec {
                    cmd: "cat /root/token".into(),
                    provides: "token".into(),
                    secret: true,
                }),
            ),
            (
                "p/hostname",
                Rendered::Hostname(HostnameSpec {
                    hostname: "master".into(),
                }),
            ),
        ]
    }

    /// The fingerprints of [`tasks`], pinned: a change here changes every ledger's.
    const PINNED_V2: [&str; 12] = [
        "v2:7b28e9adc76920d9372fd9327069a0458effc69a5f9b95ad621c5e5e38b7e360",
        "v2:9692f649b89cfe326b89f2f3f8aefbc7382fb2bc28453f95628a8c50604f520d",
        "v2:7ecf0764a716c21e02d8b6b2c5ab6f1357cd8d86682d756c4f69717dd9d4c6d9",
        "v2:987bac0fa7e584f2a24a6b334e9d9d8718c63eec1687453d510f1021a1492ca5",
        "v2:883f72ba5bfbdaae93c211fd529bcb45dfd4a223c6730487751dc97efc37df70",
        "v2:96e2af0db32b0b9a8721909f70dcc83fcecc446eb1d75f27d082871cad322186",
        "v2:daf7b4408405b8e1388632e1bb43aafacacbcaa9df0b8fc6007ad21f66e2957a",
        "v2:d0f99b6587a4f5a7deb58c2428b69d596811f5e67758fa391992af2cc9f817a1",
        "v2:22f96767d84bb3f300550ce16b0565633ec614f7ff3719a80e0a36c49b9680ec",
        "v2:fd62f450aee77db2d79ddb3737fa3bd6dc63728fcded02028fe918b5bdfb9484",
        "v2:49ea9ba357fb56fdb6c2bb0363166188effe1064aeb360263d37dc6b610d0788",
        "v2:b555d7d8f7856847ba4f6e24e056a2e0c14f1706ef9767c74be4d5f2ca781128",
    ];

    /// The fingerprints k8sup 3c7da93 computed for [`tasks`] (sha256 of the derived
    /// `Debug` text of that commit's types), which [`legacy_v1`] reproduces.
    const PINNED_V1: [&str; 12] = [
        "b72dbda87f7a77683261de3e5a808b5ceb103d387d17d41816fde96e18a3f93e",
        "34e4bd92a0a9b4f254d6483834d7546c6473cc53432f34d4791c21036a2a5829",
        "2f96066c5c6544dd7fcf733cade6785a9309fe6aebafb911ee034ae851040549",
        "f5fec04e98c3170329b70de5c4a2e02ea751b34ed6af8f02e7c4c6429050d738",
        "dc424c41493014a69351308507801ba7db43eba68f0c26048862ad14e1a8ebb8",
        "3eec40767300f56890ca3502d9e5eafdb276e83d10bd91db6a1b253fd31acb7d",
        "62e8733c52b9efc0a3c2e30834e9d7d6b1a485ba162eabaffd4a9b26a6149e8c",
        "114cfdf8a885a4aeb8db280b083d9b67fea1a244198b5d2c4dd4339e61af7aa5",
        "4d04a51c9cddd472b96a539dd76c164040cc3808e8bc088e50d49731af835028",
        "c144405fa49e45892c9d91d9cc0f3683fe3235ff8db081044d9d14b42a20d634",
        "2ac2c856f3993e73e9a0080e189cdf1c17fdbf0ab750b11b9a5576b0555616bf",
        "4b1f333b2b84cae8765768018018b90db83fc5ca594b83ce63c2e668923fc397",
    ];

    #[test]
    fn fingerprints_are_pinned() {
        for ((id, action), pinned) in tasks().iter().zip(PINNED_V2) {
            assert_eq!(fingerprint(id, action), pinned, "{}", canonical(id, action));
        }
    }

    #[test]
    fn the_canonical_form_names_fields_as_a_playbook_does() {
        let (id, action) = &tasks()[0];
        assert_eq!(
            canonical(id, action),
            r#"{"task":"p/file","kind":"file","path":"/etc/app/app.conf","content":"a = \"b\"\n\tcé\n","mode":"0640","owner":"root"}"#
        );
    }

    #[test]
    fn version_1_fingerprints_of_3c7da93_are_reproduced() {
        for ((id, action), pinned) in tasks().iter().zip(PINNED_V1) {
            assert_eq!(
                legacy_v1(id, action).as_deref(),
                Some(pinned),
                "{:?}",
                legacy_v1_text(action)
            );
        }
    }

    #[test]
    fn a_recorded_fingerprint_of_either_version_matches_its_task_only() {
        let all = tasks();
        for (n, (id, action)) in all.iter().enumerate() {
            let current = fingerprint(id, action);
            assert!(recorded_matches(PINNED_V1[n], id, action, &current));
            assert!(recorded_matches(PINNED_V2[n], id, action, &current));
            let other = (n + 1) % all.len();
            assert!(!recorded_matches(PINNED_V1[other], id, action, &current));
            assert!(!recorded_matches(PINNED_V2[other], id, action, &current));
            // The same task under another id is another task.
            let elsewhere = fingerprint("q/other", action);
            assert!(!recorded_matches(
                PINNED_V1[n],
                "q/other",
                action,
                &elsewhere
            ));
            let upper = PINNED_V1[n].to_uppercase();
            assert!(!recorded_matches(&upper, id, action, &current));
            assert!(!recorded_matches("", id, action, &current));
            let v3 = format!("v3:{}", &current[3..]);
            assert!(!recorded_matches(&v3, id, action, &current));
        }
    }
}
