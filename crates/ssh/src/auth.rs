//! Public key authentication, in OpenSSH's order: the ssh-agent's keys, then key files.
//!
//! RSA keys sign with the best hash the server accepts (rsa-sha2-512, rsa-sha2-256,
//! then legacy ssh-rsa). Encrypted key files are opened with the passphrase from
//! [`crate::Secrets`], or by asking on the terminal when that is allowed; the
//! passphrase goes only to the key decoder. When every key is refused the error lists
//! each method tried and the user.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use russh::client::{AuthResult, Handle};
use russh::keys::agent::client::AgentClient;
use russh::keys::agent::AgentIdentity;
use russh::keys::{HashAlg, PrivateKey, PrivateKeyWithHashAlg, PublicKey};

use crate::error::ConnectError;
use crate::event::SshEvent;
use crate::host_key::HostKeyChecker;
use crate::known_hosts::fingerprint;
use crate::target::{Secret, Target};

/// Authenticates `handle` as the target's user, or says why not.
pub(crate) async fn authenticate(
    handle: &mut Handle<HostKeyChecker>,
    target: &Target,
) -> Result<(), ConnectError> {
    let mut tried = Vec::new();
    if let Some(socket) = &target.secrets.agent_socket {
        if try_agent(handle, target, socket, &mut tried).await? {
            return Ok(());
        }
    }
    let mut locked_key = None;
    for path in target.identity_files() {
        match try_key_file(handle, target, &path, &mut tried).await {
            Ok(true) => return Ok(()),
            Ok(false) => {}
            Err(ConnectError::KeyPassphraseRequired { .. }) => locked_key = Some(path),
            Err(e) => return Err(e),
        }
    }
    if let Some(path) = locked_key.filter(|_| tried.is_empty()) {
        return Err(ConnectError::KeyPassphraseRequired {
            host: target.name.clone(),
            path,
        });
    }
    Err(ConnectError::AuthRefused {
        host: target.name.clone(),
        user: target.user.clone(),
        tried,
    })
}

/// Offers every key the agent holds; `Ok(true)` once one is accepted.
async fn try_agent(
    handle: &mut Handle<HostKeyChecker>,
    target: &Target,
    socket: &Path,
    tried: &mut Vec<String>,
) -> Result<bool, ConnectError> {
    let unavailable = |reason: String| {
        target.events.emit(SshEvent::AgentUnavailable {
            host: target.name.clone(),
            reason,
        });
        Ok(false)
    };
    let mut agent = match AgentClient::connect_uds(socket).await {
        Ok(agent) => agent,
        Err(e) => return unavailable(format!("cannot connect to {}: {e}", socket.display())),
    };
    if let Some(binding) = handle.agent_session_binding() {
        // Older agents do not know session binding; they still sign.
        let _ = agent.bind_session(binding, false).await;
    }
    let identities = match agent.request_identities().await {
        Ok(identities) => identities,
        Err(e) => return unavailable(format!("cannot list its keys: {e}")),
    };
    for identity in identities {
        let AgentIdentity::PublicKey { key, .. } = identity else {
            continue;
        };
        let hash = rsa_hash(handle, target, &key).await?;
        tried.push(format!(
            "ssh-agent key {} {}",
            key.algorithm(),
            fingerprint(&key)
        ));
        match handle
            .authenticate_publickey_with(&target.user, key, hash, &mut agent)
            .await
        {
            Ok(AuthResult::Success) => return Ok(true),
            Ok(_) => {}
            Err(e) => {
                if let Some(last) = tried.last_mut() {
                    last.push_str(&format!(" (agent could not sign: {e})"));
                }
            }
        }
    }
    Ok(false)
}

/// Offers the key in `path`; `Ok(false)` when refused or when a default key file is absent.
async fn try_key_file(
    handle: &mut Handle<HostKeyChecker>,
    target: &Target,
    path: &Path,
    tried: &mut Vec<String>,
) -> Result<bool, ConnectError> {
    let Some(key) = load_key(target, path).await? else {
        return Ok(false);
    };
    let hash = rsa_hash(handle, target, key.public_key()).await?;
    let key = PrivateKeyWithHashAlg::new(Arc::new(key), hash);
    tried.push(format!("key file {} ({})", path.display(), key.algorithm()));
    let result = handle
        .authenticate_publickey(&target.user, key)
        .await
        .map_err(|source| ConnectError::Protocol {
            host: target.name.clone(),
            step: "authenticating",
            source,
        })?;
    Ok(matches!(result, AuthResult::Success))
}

/// The hash to sign with for an RSA key (`None` for other key types, or for servers
/// that only know legacy `ssh-rsa`).
async fn rsa_hash(
    handle: &Handle<HostKeyChecker>,
    target: &Target,
    key: &PublicKey,
) -> Result<Option<HashAlg>, ConnectError> {
    if !key.algorithm().is_rsa() {
        return Ok(None);
    }
    // `None` from the server means it did not say (no server-sig-algs); every OpenSSH
    // since 7.2 does, and those before it only speak SHA-1.
    let best = handle
        .best_supported_rsa_hash()
        .await
        .map_err(|source| ConnectError::Protocol {
            host: target.name.clone(),
            step: "asking which RSA signature hashes it accepts",
            source,
        })?;
    Ok(best.unwrap_or(Some(HashAlg::Sha256)))
}

/// Reads and decrypts a key file. A default key file that does not exist is `None`;
/// a configured one that does not exist is an error.
async fn load_key(target: &Target, path: &Path) -> Result<Option<PrivateKey>, ConnectError> {
    let key_error = |reason: String| ConnectError::KeyFile {
        host: target.name.clone(),
        path: path.to_path_buf(),
        reason,
    };
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && target.identity_file.is_none() => {
            return Ok(None)
        }
        Err(e) => return Err(key_error(e.to_string())),
    };
    match russh::keys::decode_secret_key(&text, None) {
        Ok(key) => return Ok(Some(key)),
        Err(russh::keys::Error::KeyIsEncrypted) => {}
        Err(e) => return Err(key_error(e.to_string())),
    }
    let passphrase = match &target.secrets.key_passphrase {
        Some(passphrase) => passphrase.clone(),
        None if target.secrets.prompt_for_passphrase => prompt_passphrase(path)
            .await
            .map_err(|e| key_error(e.to_string()))?,
        None => {
            return Err(ConnectError::KeyPassphraseRequired {
                host: target.name.clone(),
                path: path.to_path_buf(),
            })
        }
    };
    russh::keys::decode_secret_key(&text, Some(passphrase.expose()))
        .map(Some)
        .map_err(|_| {
            key_error(
                "the passphrase does not open it (wrong passphrase, or the key is damaged)"
                    .to_string(),
            )
        })
}

/// Asks for a key's passphrase on the terminal, once per key file for the whole run
/// (many hosts connect at once; only one prompt shows at a time).
async fn prompt_passphrase(path: &Path) -> std::io::Result<Secret> {
    static ANSWERS: OnceLock<tokio::sync::Mutex<HashMap<PathBuf, Secret>>> = OnceLock::new();
    let mut answers = ANSWERS.get_or_init(Default::default).lock().await;
    if let Some(known) = answers.get(path) {
        return Ok(known.clone());
    }
    let prompt = format!("Passphrase for {}: ", path.display());
    let answer = tokio::task::spawn_blocking(move || rpassword::prompt_password(prompt))
        .await
        .map_err(std::io::Error::other)??;
    let secret = Secret::new(answer);
    answers.insert(path.to_path_buf(), secret.clone());
    Ok(secret)
}
