//! Host key checking and authentication against a real OpenSSH server.

mod common;

use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::Sshd;
use k8sup_shell::Script;
use k8sup_ssh::{connect, ConnectError, EventSink, HostKeyChecking, Secret, SshEvent};

#[tokio::test]
async fn unknown_host_key_is_refused_in_strict_mode_with_its_fingerprint() {
    require_sshd!();
    let sshd = Sshd::start();
    let mut target = sshd.target();
    target.known_hosts = sshd.known_hosts("empty_known_hosts", "");
    let error = connect(&target).await.err().expect("refused");
    assert!(
        matches!(error, ConnectError::HostKeyUnknown { .. }),
        "{error}"
    );
    let message = error.to_string();
    assert!(message.contains(&sshd.host_fingerprint()), "{message}");
    assert!(
        message.contains(&format!("ssh-keyscan -p {} 127.0.0.1", sshd.port)),
        "{message}"
    );
    assert!(message.contains("accept-new"), "{message}");
}

#[tokio::test]
async fn changed_host_key_is_refused_even_with_accept_new() {
    require_sshd!();
    let sshd = Sshd::start();
    let other = sshd.client_key("impostor", "ed25519", "", false);
    let other_public = std::fs::read_to_string(other.with_extension("pub")).expect("key");
    let mut target = sshd.target();
    target.known_hosts = sshd.known_hosts(
        "changed",
        &format!("[127.0.0.1]:{} {other_public}", sshd.port),
    );
    target.host_key_checking = HostKeyChecking::AcceptNew;
    let error = connect(&target).await.err().expect("refused");
    assert!(
        matches!(&error, ConnectError::HostKeyChanged { lines, .. } if lines == &[1]),
        "{error}"
    );
    assert!(
        error.to_string().contains(&sshd.host_fingerprint()),
        "{error}"
    );
}

#[tokio::test]
async fn accept_new_records_the_key_and_strict_then_trusts_it() {
    require_sshd!();
    let sshd = Sshd::start();
    let events = Arc::new(Mutex::new(Vec::new()));
    let seen = events.clone();
    let mut target = sshd.target();
    target.known_hosts = sshd.dir.join("new").join("known_hosts");
    target.host_key_checking = HostKeyChecking::AcceptNew;
    target.events = EventSink::new(move |e| seen.lock().expect("lock").push(e.clone()));
    connect(&target).await.expect("accepts a new key");
    let recorded = std::fs::read_to_string(&target.known_hosts).expect("recorded");
    assert!(
        recorded.starts_with(&format!("[127.0.0.1]:{} ssh-ed25519 ", sshd.port)),
        "{recorded}"
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&target.known_hosts)
        .expect("stat")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert!(matches!(
        events.lock().expect("lock").as_slice(),
        [SshEvent::HostKeyLearned { .. }]
    ));
    target.host_key_checking = HostKeyChecking::Strict;
    let session = connect(&target).await.expect("now known");
    session.run(&Script::new("true")).await.expect("runs");
    assert_eq!(
        std::fs::read_to_string(&target.known_hosts).expect("file"),
        recorded,
        "not recorded twice"
    );
}

#[tokio::test]
async fn many_hosts_learning_keys_at_once_keep_the_file_whole() {
    require_sshd!();
    let servers: Vec<Sshd> = (0..4).map(|_| Sshd::start()).collect();
    let shared = servers[0].dir.join("shared_known_hosts");
    let targets: Vec<_> = servers
        .iter()
        .map(|sshd| {
            let mut target = sshd.target();
            target.known_hosts = shared.clone();
            target.host_key_checking = HostKeyChecking::AcceptNew;
            target
        })
        .collect();
    let sessions = futures::future::join_all(targets.iter().map(connect)).await;
    assert!(sessions.iter().all(Result::is_ok));
    let text = std::fs::read_to_string(&shared).expect("file");
    assert_eq!(text.lines().count(), 4, "{text}");
    for target in &targets {
        let mut strict = target.clone();
        strict.host_key_checking = HostKeyChecking::Strict;
        connect(&strict).await.expect("recorded key trusted");
    }
}

#[tokio::test]
async fn hashed_known_hosts_entries_match() {
    require_sshd!();
    let sshd = Sshd::start();
    let mut target = sshd.target();
    target.known_hosts = sshd.known_hosts("hashed", &sshd.known_hosts_line());
    let status = Command::new("ssh-keygen")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .arg("-q")
        .arg("-H")
        .arg("-f")
        .arg(&target.known_hosts)
        .status()
        .expect("ssh-keygen -H");
    assert!(status.success());
    let hashed = std::fs::read_to_string(&target.known_hosts).expect("file");
    assert!(hashed.starts_with("|1|"), "{hashed}");
    connect(&target).await.expect("hashed entry trusted");
}

#[tokio::test]
async fn revoked_host_key_is_refused() {
    require_sshd!();
    let sshd = Sshd::start();
    let mut target = sshd.target();
    let content = format!(
        "{}@revoked * {}",
        sshd.known_hosts_line(),
        sshd.host_public_key()
    );
    target.known_hosts = sshd.known_hosts("revoked", &content);
    let error = connect(&target).await.err().expect("refused");
    assert!(
        matches!(error, ConnectError::HostKeyRevoked { line: 2, .. }),
        "{error}"
    );
}

#[tokio::test]
async fn host_key_checking_off_accepts_with_a_warning_event() {
    require_sshd!();
    let sshd = Sshd::start();
    let events = Arc::new(Mutex::new(Vec::new()));
    let seen = events.clone();
    let mut target = sshd.target();
    target.known_hosts = sshd.known_hosts("off", "");
    target.host_key_checking = HostKeyChecking::Off;
    target.events = EventSink::new(move |e| seen.lock().expect("lock").push(e.clone()));
    connect(&target).await.expect("accepted");
    let events = events.lock().expect("lock");
    assert!(
        matches!(events.as_slice(), [SshEvent::HostKeyNotChecked { fingerprint, .. }] if *fingerprint == sshd.host_fingerprint()),
        "{events:?}"
    );
    assert_eq!(
        std::fs::read_to_string(&target.known_hosts).expect("file"),
        "",
        "off records nothing"
    );
}

#[tokio::test]
async fn encrypted_ed25519_key_opens_with_the_passphrase() {
    require_sshd!();
    let sshd = Sshd::start();
    let mut target = sshd.target();
    target.identity_file =
        Some(sshd.client_key("locked_ed25519", "ed25519", "correct horse", true));
    let error = connect(&target).await.err().expect("no passphrase");
    assert!(
        matches!(error, ConnectError::KeyPassphraseRequired { .. }),
        "{error}"
    );
    assert!(
        error.to_string().contains("K8SUP_KEY_PASSPHRASE"),
        "{error}"
    );
    target.secrets.key_passphrase = Some(Secret::new("s3cr3t-guess"));
    let error = connect(&target).await.err().expect("wrong passphrase");
    assert!(matches!(error, ConnectError::KeyFile { .. }), "{error}");
    assert!(
        !format!("{error} {error:?}").contains("s3cr3t-guess"),
        "{error}"
    );
    target.secrets.key_passphrase = Some(Secret::new("correct horse"));
    let session = connect(&target).await.expect("unlocked");
    session.run(&Script::new("true")).await.expect("runs");
}

#[tokio::test]
async fn rsa_and_ecdsa_keys_authenticate() {
    require_sshd!();
    let sshd = Sshd::start();
    for (name, kind) in [("client_rsa", "rsa"), ("client_ecdsa", "ecdsa")] {
        let mut target = sshd.target();
        target.identity_file = Some(sshd.client_key(name, kind, "", true));
        let session = connect(&target)
            .await
            .unwrap_or_else(|e| panic!("{kind}: {e}"));
        let out = session.run(&Script::new("whoami")).await.expect("runs");
        assert_eq!(out.stdout_text(), "root\n");
    }
}

#[tokio::test]
async fn refused_authentication_names_methods_and_user() {
    require_sshd!();
    let sshd = Sshd::start();
    let mut target = sshd.target();
    let stranger = sshd.client_key("stranger", "ed25519", "", false);
    target.identity_file = Some(stranger.clone());
    target.connect_attempts = 3;
    let started = Instant::now();
    let error = connect(&target).await.err().expect("refused");
    assert!(started.elapsed() < Duration::from_secs(5), "not retried");
    let message = error.to_string();
    assert!(
        matches!(error, ConnectError::AuthRefused { .. }),
        "{message}"
    );
    assert!(message.contains("\"root\""), "{message}");
    assert!(
        message.contains(&format!("key file {}", stranger.display())),
        "{message}"
    );
}

#[tokio::test]
async fn a_host_that_is_down_fails_quickly() {
    require_sshd!();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let mut target = k8sup_ssh::Target::new("down-host", "127.0.0.1", "root");
    target.port = port;
    target.connect_attempts = 3;
    let events = Arc::new(Mutex::new(0));
    let retries = events.clone();
    target.events = EventSink::new(move |e| {
        if matches!(e, SshEvent::ConnectRetry { .. }) {
            *retries.lock().expect("lock") += 1;
        }
    });
    let started = Instant::now();
    let error = connect(&target).await.err().expect("refused");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(
        matches!(error, ConnectError::Unreachable { attempts: 3, .. }),
        "{error}"
    );
    assert!(error.to_string().contains("down-host"), "{error}");
    assert_eq!(*events.lock().expect("lock"), 2);
}

/// As OpenSSH does: a host known only by its ECDSA key is asked for that type first,
/// so strict checking connects although the server would show ed25519 first.
#[tokio::test]
async fn a_host_known_only_by_its_ecdsa_key_connects_under_strict_checking() {
    require_sshd!();
    let sshd = Sshd::start_with_host_keys(&["ed25519", "ecdsa"]);
    let mut target = sshd.target();
    target.known_hosts = sshd.known_hosts(
        "ecdsa_only",
        &format!(
            "[127.0.0.1]:{} {}",
            sshd.port,
            sshd.host_public_key_of("ecdsa")
        ),
    );
    let before = std::fs::read_to_string(&target.known_hosts).expect("file");
    let session = connect(&target)
        .await
        .expect("the known ECDSA key is checked");
    session.run(&Script::new("true")).await.expect("runs");
    target.host_key_checking = HostKeyChecking::AcceptNew;
    connect(&target).await.expect("accept-new too");
    assert_eq!(
        std::fs::read_to_string(&target.known_hosts).expect("file"),
        before,
        "nothing is added for a host whose known key was shown"
    );
}

/// accept-new records the keys of new hosts only: a host already known by a key of
/// another type that shows only an unknown key is refused, and nothing is recorded.
#[tokio::test]
async fn accept_new_never_adds_an_unverified_key_for_a_known_host() {
    require_sshd!();
    let sshd = Sshd::start();
    let other = sshd.client_key("old_ecdsa", "ecdsa", "", false);
    let other_public = std::fs::read_to_string(other.with_extension("pub")).expect("key");
    let mut target = sshd.target();
    let content = format!("[127.0.0.1]:{} {other_public}", sshd.port);
    target.known_hosts = sshd.known_hosts("known_by_ecdsa", &content);
    target.host_key_checking = HostKeyChecking::AcceptNew;
    let error = connect(&target).await.err().expect("refused");
    assert!(
        matches!(error, ConnectError::HostKeyUnknown { .. }),
        "{error}"
    );
    assert!(error.to_string().contains("keys of other types"), "{error}");
    assert_eq!(
        std::fs::read_to_string(&target.known_hosts).expect("file"),
        content,
        "no key was added"
    );
}
