//! Things the transport wants the user to know that are not errors.
//!
//! The transport never prints: it hands [`SshEvent`]s to the [`EventSink`] in the
//! [`crate::Target`], and the CLI renders them (a loud line for host key checking off,
//! a quiet one for a retry).

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Something worth telling the user about a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SshEvent {
    /// `host_key_checking = "off"`: the key was accepted without any check.
    HostKeyNotChecked { host: String, fingerprint: String },
    /// `accept-new`: a host key seen for the first time was recorded.
    HostKeyLearned {
        host: String,
        fingerprint: String,
        known_hosts: PathBuf,
    },
    /// A connection attempt failed and another one follows after `delay`.
    ConnectRetry {
        host: String,
        attempt: u32,
        delay: Duration,
        error: String,
    },
    /// The ssh-agent could not be used; key files are tried instead.
    AgentUnavailable { host: String, reason: String },
}

/// A caller-supplied receiver of [`SshEvent`]s; the default drops them.
#[derive(Clone, Default)]
pub struct EventSink(Option<Arc<EventReceiver>>);

type EventReceiver = dyn Fn(&SshEvent) + Send + Sync;

impl EventSink {
    pub fn new(receiver: impl Fn(&SshEvent) + Send + Sync + 'static) -> Self {
        EventSink(Some(Arc::new(receiver)))
    }

    pub(crate) fn emit(&self, event: SshEvent) {
        if let Some(receiver) = &self.0 {
            receiver(&event);
        }
    }
}

impl fmt::Debug for EventSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() {
            "EventSink(set)"
        } else {
            "EventSink(none)"
        })
    }
}
