//! The outbox: side effects a projection asks for while it handles a batch
//! (`prism:projection/outbox`), stored with the batch and delivered by the
//! host to HTTP endpoints the operator configures per target.
//!
//! # Enqueued exactly once, by construction
//! A request's id is a UUID (version 5) of the plugin's name, the id of the
//! event that caused it and its index among that event's requests — the
//! same derivation as emitted events' ids (`projector::emit`). The
//! projector hands the requests to the log writer together with its
//! prepared commit (view writes, checkpoint, emitted events); the writer
//! stores them in the same synced RocksDB write and leaves out every
//! request whose id the outbox already holds (`store::enqueue`). The writer
//! is one thread, so that check and the write are one step for every
//! generation of every plugin. Hence:
//! - a crash before that write loses the requests and the checkpoint
//!   together, and the replay enqueues them again, once;
//! - a crash after it keeps both, and the batch is not handled again;
//! - a replay, a rebuild, a blue/green candidate or a new version handling
//!   the same events derives the same ids and enqueues nothing: the outbox
//!   keeps every id it ever held, whatever became of the request
//!   (delivered, dead, dropped, purged).
//!
//! # Delivered at least once, in order per key
//! `delivery` sends each pending request to its target's endpoint with the
//! request's idempotency key in an `Idempotency-Key` header; a 2xx answer
//! marks it delivered. Requests of one plugin with one ordering key go one
//! at a time in enqueue order: a failing request holds back the later ones
//! of its key (only), retried with exponential backoff and jitter up to a
//! cap, until it is delivered or has failed `max_attempts` times; then it
//! is dead (kept, listed, retryable over HTTP) and its key moves on. A
//! crash between a send and the write that records it delivered sends it
//! again after the restart, with the same idempotency key: that repeat is
//! the one duplicate a receiver may see, and the key is how it drops it.
//!
//! # Keyspace
//! One host-wide column family, `outbox`, not one per generation (a
//! generation's keyspace is dropped on a hot swap; the outbox must outlive
//! it): `i{id}` → sequence number, kept for ever so that an id is never
//! enqueued twice; `e{sequence}` → the request and its delivery state. The
//! sequence number (big-endian `u64`) is the enqueue order, which is the
//! delivery order within a key.
//!
//! # Retention
//! A delivered or dropped request's record is deleted
//! `delivered_retention_hours` after it finished (default 7 days); its id
//! stays, 24 bytes, so that a rebuild still sends nothing again. Dead
//! requests are kept until an operator retries or drops them.
//!
//! # Layout
//! - this file: the rules a request must follow, its id, its record.
//! - `config`: `[outbox]` and `[targets.NAME]` in `prism.toml`.
//! - `store`: the RocksDB layout (the only part touching RocksDB types).
//! - `delivery`: the task that sends requests, and its handle for the API.

pub mod config;
pub mod delivery;
pub mod store;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::log::json;
use crate::projector::emit::Cause;

pub use config::{OutboxConfig, TargetConfig};
pub use delivery::{Outbox, OutboxError};

/// Why a projection that declares outbox targets does not run on the replicated log.
pub const OUTBOX_NEEDS_EMBEDDED_LOG: &str = "this projection declares outbox targets, which \
     needs the embedded log: on the JetStream log the outbox requests and the view's commit \
     cannot be stored in one atomic write, so the outbox is refused there rather than risk \
     losing or repeating side effects";

/// Longest idempotency key, in bytes (visible ASCII: it is sent as a header).
pub const MAX_IDEMPOTENCY_KEY_BYTES: usize = 255;
/// Longest ordering key, in bytes.
pub const MAX_ORDERING_KEY_BYTES: usize = 1024;
/// Longest target name, in bytes.
pub const MAX_TARGET_NAME_BYTES: usize = 64;

/// The namespace of outbox requests' ids (a UUID of Prism's own).
const OUTBOX_NAMESPACE: Uuid = Uuid::from_u128(0x3d6e_91a2_7c04_4b5f_a8e1_5f20_c9b7_16d4);

/// The id of the `index`-th request that `plugin` put in the outbox for the event `cause`.
pub fn request_id(plugin: &str, cause: &str, index: u32) -> Uuid {
    let name = format!("{plugin}\0{cause}\0{index}");
    Uuid::new_v5(&OUTBOX_NAMESPACE, name.as_bytes())
}

/// Where a request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryState {
    /// Waiting to be sent, or to be sent again after a failure.
    Pending,
    /// A 2xx answer came back.
    Delivered,
    /// It failed `max_attempts` times; its key moved on without it.
    Dead,
    /// An operator dropped it before it was delivered.
    Dropped,
}

impl EntryState {
    pub const ALL: [EntryState; 4] = [
        EntryState::Pending,
        EntryState::Delivered,
        EntryState::Dead,
        EntryState::Dropped,
    ];

    pub fn name(self) -> &'static str {
        match self {
            EntryState::Pending => "pending",
            EntryState::Delivered => "delivered",
            EntryState::Dead => "dead",
            EntryState::Dropped => "dropped",
        }
    }

    pub fn parse(name: &str) -> Option<EntryState> {
        EntryState::ALL.into_iter().find(|s| s.name() == name)
    }
}

/// A request a batch put in the outbox, checked, with its derived id: what
/// the commit enqueues unless the outbox holds the id already.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEntry {
    pub id: Uuid,
    pub plugin: String,
    pub target: String,
    pub ordering_key: String,
    pub idempotency_key: String,
    /// JSON text.
    pub payload: String,
    /// The log position and id of the event that caused it.
    pub cause_position: u64,
    pub cause_id: String,
}

/// A request in the outbox and how its delivery goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub id: Uuid,
    /// Enqueue order across the whole outbox.
    pub sequence: u64,
    pub plugin: String,
    pub target: String,
    pub ordering_key: String,
    pub idempotency_key: String,
    /// JSON text.
    pub payload: String,
    pub cause_position: u64,
    pub cause_id: String,
    pub enqueued_at_ms: u64,
    pub state: EntryState,
    /// Sends tried so far.
    pub attempts: u32,
    /// Why the last attempt failed (a status and the start of the body, or
    /// the connection error), if it did.
    pub last_error: Option<String>,
    /// When a pending request is due, in ms since the Unix epoch.
    pub next_attempt_at_ms: Option<u64>,
    /// When it was delivered, went dead or was dropped.
    pub finished_at_ms: Option<u64>,
}

impl Entry {
    pub(crate) fn new(entry: &NewEntry, sequence: u64, now_ms: u64) -> Entry {
        Entry {
            id: entry.id,
            sequence,
            plugin: entry.plugin.clone(),
            target: entry.target.clone(),
            ordering_key: entry.ordering_key.clone(),
            idempotency_key: entry.idempotency_key.clone(),
            payload: entry.payload.clone(),
            cause_position: entry.cause_position,
            cause_id: entry.cause_id.clone(),
            enqueued_at_ms: now_ms,
            state: EntryState::Pending,
            attempts: 0,
            last_error: None,
            next_attempt_at_ms: Some(now_ms),
            finished_at_ms: None,
        }
    }
}

/// Why a request was refused; it enqueues nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    UndeclaredTarget(String),
    Invalid(String),
}

/// What a plugin may put in the outbox, and under which name.
#[derive(Debug, Clone)]
pub struct OutboxRules {
    plugin: String,
    /// Target names, exactly.
    targets: Vec<String>,
}

/// One request as the projection hands it over.
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub target: String,
    pub payload: String,
    pub idempotency_key: Option<String>,
    pub ordering_key: Option<String>,
}

impl OutboxRules {
    pub fn new(plugin: &str, targets: &[String]) -> Self {
        OutboxRules {
            plugin: plugin.to_string(),
            targets: targets.to_vec(),
        }
    }

    /// The `index`-th request caused by `cause`, as the entry to enqueue,
    /// or why it is refused.
    pub fn entry(&self, cause: &Cause, index: u32, request: Request) -> Result<NewEntry, Refusal> {
        if !self.targets.contains(&request.target) {
            return Err(Refusal::UndeclaredTarget(format!(
                "target {:?} is not among the targets this projection declares ({})",
                request.target,
                self.targets.join(", ")
            )));
        }
        json::check(&request.payload)
            .map_err(|problem| Refusal::Invalid(format!("payload {problem}")))?;
        let id = request_id(&self.plugin, &cause.id, index);
        let idempotency_key = match request.idempotency_key {
            Some(key) => {
                if let Some(problem) = idempotency_key_problem(&key) {
                    return Err(Refusal::Invalid(problem));
                }
                key
            }
            None => id.hyphenated().to_string(),
        };
        let ordering_key = match request.ordering_key {
            Some(key) if key.is_empty() || key.len() > MAX_ORDERING_KEY_BYTES => {
                return Err(Refusal::Invalid(format!(
                    "the ordering key must be 1 to {MAX_ORDERING_KEY_BYTES} bytes long (it is {})",
                    key.len()
                )));
            }
            Some(key) => key,
            None => request.target.clone(),
        };
        Ok(NewEntry {
            id,
            plugin: self.plugin.clone(),
            target: request.target,
            ordering_key,
            idempotency_key,
            payload: request.payload,
            cause_position: cause.position,
            cause_id: cause.id.clone(),
        })
    }
}

fn idempotency_key_problem(key: &str) -> Option<String> {
    if key.is_empty() || key.len() > MAX_IDEMPOTENCY_KEY_BYTES {
        return Some(format!(
            "the idempotency key must be 1 to {MAX_IDEMPOTENCY_KEY_BYTES} bytes long (it is {})",
            key.len()
        ));
    }
    (!key.bytes().all(|b| b.is_ascii_graphic()))
        .then(|| "the idempotency key must be visible ASCII (it is sent as a header)".to_string())
}

/// Whether `name` may name a target: letters, digits, `-` and `_`.
pub fn target_name_problem(name: &str) -> Option<String> {
    let fine = !name.is_empty()
        && name.len() <= MAX_TARGET_NAME_BYTES
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    (!fine).then(|| {
        format!(
            "target {name:?}: a target's name is 1 to {MAX_TARGET_NAME_BYTES} letters, digits, \
             `-` or `_`"
        )
    })
}

/// What is wrong with a description's declared targets, if anything.
pub fn targets_problem(targets: &[String]) -> Option<String> {
    targets
        .iter()
        .find_map(|t| target_name_problem(t).map(|p| format!("targets: {p}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cause() -> Cause {
        Cause {
            position: 7,
            id: "3f2c8a4e-0000-4000-8000-000000000001".into(),
            metadata: "{}".into(),
        }
    }

    fn request(target: &str) -> Request {
        Request {
            target: target.into(),
            payload: r#"{"to":"ann"}"#.into(),
            ..Request::default()
        }
    }

    #[test]
    fn ids_are_derived_from_plugin_cause_and_index_and_differ_from_emitted_ids() {
        let a = request_id("p", "e1", 0);
        assert_eq!(a, request_id("p", "e1", 0));
        assert_ne!(a, request_id("p", "e1", 1));
        assert_ne!(a, request_id("p", "e2", 0));
        assert_ne!(a, request_id("q", "e1", 0));
        assert_ne!(a, crate::projector::emit::emitted_id("p", "e1", 0));
    }

    #[test]
    fn defaults_are_the_id_for_the_idempotency_key_and_the_target_for_the_order() {
        let rules = OutboxRules::new("p", &["email".into()]);
        let entry = rules.entry(&cause(), 2, request("email")).unwrap();
        assert_eq!(entry.id, request_id("p", &cause().id, 2));
        assert_eq!(entry.idempotency_key, entry.id.hyphenated().to_string());
        assert_eq!(entry.ordering_key, "email");
        assert_eq!(entry.cause_position, 7);
        let given = rules
            .entry(
                &cause(),
                0,
                Request {
                    idempotency_key: Some("mail-ann-1".into()),
                    ordering_key: Some("ann".into()),
                    ..request("email")
                },
            )
            .unwrap();
        assert_eq!(given.idempotency_key, "mail-ann-1");
        assert_eq!(given.ordering_key, "ann");
    }

    #[test]
    fn refusals() {
        let rules = OutboxRules::new("p", &["email".into()]);
        assert!(matches!(
            rules.entry(&cause(), 0, request("sms")),
            Err(Refusal::UndeclaredTarget(_))
        ));
        let bad = |request: Request| rules.entry(&cause(), 0, request).unwrap_err();
        assert!(matches!(
            bad(Request {
                payload: "{nope".into(),
                ..request("email")
            }),
            Refusal::Invalid(_)
        ));
        assert!(matches!(
            bad(Request {
                idempotency_key: Some("has space".into()),
                ..request("email")
            }),
            Refusal::Invalid(_)
        ));
        assert!(matches!(
            bad(Request {
                ordering_key: Some(String::new()),
                ..request("email")
            }),
            Refusal::Invalid(_)
        ));
        assert!(targets_problem(&["email".into(), "crm_sync-2".into()]).is_none());
        assert!(targets_problem(&["e mail".into()]).is_some());
    }
}
