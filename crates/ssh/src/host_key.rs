//! The russh handler that decides, during the handshake, whether to trust a host key.
//!
//! It applies the target's [`HostKeyChecking`] policy to the verdict of
//! [`crate::known_hosts::check`] and turns a refusal into a [`ConnectError`] that says
//! what was offered and what to do about it.

use std::path::PathBuf;

use russh::client;
use russh::keys::{PublicKey, PublicKeyOrCertificate};

use crate::error::ConnectError;
use crate::event::{EventSink, SshEvent};
use crate::known_hosts::{self, Verdict};
use crate::target::{HostKeyChecking, Target};

/// Why the handshake stopped: the protocol failed, or we refused the host.
#[derive(Debug)]
pub(crate) enum HandshakeError {
    Ssh(russh::Error),
    Refused(Box<ConnectError>),
}

impl From<russh::Error> for HandshakeError {
    fn from(e: russh::Error) -> Self {
        HandshakeError::Ssh(e)
    }
}

/// Checks the server's key against known_hosts for one target.
pub(crate) struct HostKeyChecker {
    host: String,
    address: String,
    port: u16,
    known_hosts: PathBuf,
    policy: HostKeyChecking,
    events: EventSink,
}

impl HostKeyChecker {
    pub fn new(target: &Target) -> Self {
        HostKeyChecker {
            host: target.name.clone(),
            address: target.address.clone(),
            port: target.port,
            known_hosts: target.known_hosts.clone(),
            policy: target.host_key_checking,
            events: target.events.clone(),
        }
    }

    fn decide(&self, key: &PublicKey) -> Result<(), ConnectError> {
        let fingerprint = known_hosts::fingerprint(key);
        if self.policy == HostKeyChecking::Off {
            self.events.emit(SshEvent::HostKeyNotChecked {
                host: self.host.clone(),
                fingerprint,
            });
            return Ok(());
        }
        let text =
            known_hosts::read(&self.known_hosts).map_err(|source| self.file_error(source))?;
        match known_hosts::check(&text, &self.address, self.port, key) {
            Verdict::Known => Ok(()),
            Verdict::Revoked { line } => Err(ConnectError::HostKeyRevoked {
                host: self.host.clone(),
                fingerprint,
                known_hosts: self.known_hosts.clone(),
                line,
            }),
            Verdict::Changed { lines } => Err(ConnectError::HostKeyChanged {
                host: self.host.clone(),
                name: known_hosts::host_key_name(&self.address, self.port),
                key_type: key.algorithm().to_string(),
                fingerprint,
                known_hosts: self.known_hosts.clone(),
                lines,
            }),
            // accept-new learns the keys of new hosts only: a host already known by a
            // key of another type must show that key (asked for first), not a new one.
            Verdict::Unknown {
                other_types_known: false,
            } if self.policy == HostKeyChecking::AcceptNew => self.learn(key, fingerprint),
            Verdict::Unknown { other_types_known } => {
                Err(self.unknown(key, fingerprint, other_types_known))
            }
        }
    }

    fn learn(&self, key: &PublicKey, fingerprint: String) -> Result<(), ConnectError> {
        known_hosts::record(&self.known_hosts, &self.address, self.port, key)
            .map_err(|source| self.file_error(source))?;
        self.events.emit(SshEvent::HostKeyLearned {
            host: self.host.clone(),
            fingerprint,
            known_hosts: self.known_hosts.clone(),
        });
        Ok(())
    }

    fn unknown(
        &self,
        key: &PublicKey,
        fingerprint: String,
        other_types_known: bool,
    ) -> ConnectError {
        ConnectError::HostKeyUnknown {
            host: self.host.clone(),
            address: self.address.clone(),
            port: self.port,
            name: known_hosts::host_key_name(&self.address, self.port),
            key_type: key.algorithm().to_string(),
            fingerprint,
            known_hosts: self.known_hosts.clone(),
            other_types: if other_types_known {
                " (It has keys of other types for this host; the server may have been reinstalled or reconfigured.)"
            } else {
                ""
            },
        }
    }

    fn file_error(&self, source: std::io::Error) -> ConnectError {
        ConnectError::KnownHosts {
            host: self.host.clone(),
            path: self.known_hosts.clone(),
            source,
        }
    }
}

impl client::Handler for HostKeyChecker {
    type Error = HandshakeError;

    async fn check_server_key(
        &mut self,
        offered: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        // Host certificates are not checked against @cert-authority lines; the key inside
        // is held to the same rules as a plain key, as OpenSSH does without a CA line.
        let key = match offered {
            PublicKeyOrCertificate::PublicKey { key, .. } => key.clone(),
            PublicKeyOrCertificate::Certificate(cert) => PublicKey::from(cert.public_key().clone()),
        };
        self.decide(&key)
            .map(|()| true)
            .map_err(|refusal| HandshakeError::Refused(Box::new(refusal)))
    }
}
