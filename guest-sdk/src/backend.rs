//! Where a [`View`](crate::View) keeps its documents. [`Backend`] is the WIT
//! `view` interface as a Rust trait, reduced to the three bulk calls the view
//! needs, so the same projection runs over the host's imports inside
//! WebAssembly, over [`MemoryBackend`] in unit tests, and natively over real
//! storage in the host's benchmark.

use std::collections::BTreeMap;
use std::ops::Bound;

use serde::Deserialize;
use serde::de::IgnoredAny;

use crate::{EmitError, Error, OutboxError, ViewError};

/// The longest key, in bytes, the host accepts.
pub const MAX_KEY_LEN: usize = 1024;

/// A projection's keyspace: ordered UTF-8 keys, JSON document values.
///
/// Every method is one boundary crossing in WebAssembly, so the view batches:
/// reads of a batch go through one `get_many`, its writes through one
/// `write_many`. Storage failures are not the projection's to handle: the
/// host traps the guest, and a native implementation should panic likewise.
pub trait Backend {
    /// The documents at `keys`, in the same order.
    fn get_many(&mut self, keys: &[String]) -> Vec<Option<String>>;

    /// Applies `writes` in order, all or none.
    fn write_many(&mut self, writes: Vec<Write>) -> Result<(), ViewError>;

    /// Entries with `start <= key < end` (no `end`: to the last key), in key
    /// order, at most `limit` of them.
    fn scan(&mut self, start: &str, end: Option<&str>, limit: u32) -> Vec<Entry>;

    /// Emits an event, appended when the batch commits. A backend that
    /// keeps no log refuses every emission.
    fn emit(&mut self, emission: Emission) -> Result<(), EmitError> {
        Err(EmitError::UndeclaredStream(format!(
            "stream {:?}: this backend takes no emitted events",
            emission.stream_id
        )))
    }

    /// Puts a side-effect request in the outbox, enqueued when the batch
    /// commits. A backend without an outbox refuses every request.
    fn enqueue(&mut self, request: OutboxRequest) -> Result<(), OutboxError> {
        Err(OutboxError::UndeclaredTarget(format!(
            "target {:?}: this backend has no outbox",
            request.target
        )))
    }
}

/// A side effect a projection asks the host to perform after the batch
/// commits: `payload` sent to the endpoint the operator configured for
/// `target`. Build one with [`OutboxRequest::new`] and hand it to
/// [`View::enqueue_request`](crate::View::enqueue_request).
///
/// ```
/// use prism_guest::OutboxRequest;
/// use serde_json::json;
///
/// let request = OutboxRequest::new("email", &json!({"to": "ann@example.com"}))
///     .unwrap()
///     .ordering_key("customer-ann")
///     .idempotency_key("welcome-ann");
/// assert_eq!(request.ordering_key.as_deref(), Some("customer-ann"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRequest {
    /// The log position of the batch's event that caused it (set by
    /// [`View::enqueue_request`](crate::View::enqueue_request)).
    pub cause: u64,
    /// A target the description declares.
    pub target: String,
    /// The body to send, a JSON document.
    pub payload: String,
    /// Sent as the `Idempotency-Key` header; `None`: the request's id, which
    /// the host derives from the projection, the cause and the request's
    /// place among the cause's requests.
    pub idempotency_key: Option<String>,
    /// Requests with the same ordering key are delivered one at a time, in
    /// order; `None`: the target's name (one queue per target).
    pub ordering_key: Option<String>,
}

impl OutboxRequest {
    /// A request to `target` with `payload` as its JSON body, default keys.
    pub fn new<T: serde::Serialize + ?Sized>(target: &str, payload: &T) -> Result<Self, Error> {
        Ok(Self {
            cause: 0,
            target: target.to_string(),
            payload: serde_json::to_string(payload)?,
            idempotency_key: None,
            ordering_key: None,
        })
    }

    /// Deliver in order with the other requests of this key (instead of the target's queue).
    pub fn ordering_key(mut self, key: impl Into<String>) -> Self {
        self.ordering_key = Some(key.into());
        self
    }

    /// Send this as the `Idempotency-Key` header (instead of the derived id).
    pub fn idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }
}

/// An event a projection emits while handling the event at position `cause`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Emission {
    /// The log position of the batch's event that caused it.
    pub cause: u64,
    pub stream_id: String,
    pub event_type: String,
    /// The payload, a JSON document.
    pub data: String,
    /// Metadata of the projection's own, a JSON object; the host adds the
    /// causation, correlation and depth.
    pub metadata: String,
}

/// One key and its JSON document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub key: String,
    /// The document as JSON text; see [`Entry::json`] for a typed view.
    pub value: String,
}

impl Entry {
    /// The document decoded as `T`.
    pub fn json<'a, T: Deserialize<'a>>(&'a self) -> Result<T, Error> {
        serde_json::from_str(&self.value)
            .map_err(|error| Error::from(error).context(format!("document at `{}`", self.key)))
    }
}

/// One change in a [`Backend::write_many`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Write {
    Put(Entry),
    Delete(String),
}

impl Write {
    /// The key the change is to.
    pub fn key(&self) -> &str {
        match self {
            Self::Put(entry) => &entry.key,
            Self::Delete(key) => key,
        }
    }
}

/// Checks `key` by the host's rules, so a bad key fails at the event that
/// wrote it rather than when the batch is flushed.
pub fn check_key(key: &str) -> Result<(), ViewError> {
    if key.is_empty() {
        Err(ViewError::InvalidKey("the key is empty".into()))
    } else if key.len() > MAX_KEY_LEN {
        Err(ViewError::InvalidKey(format!(
            "the key is {} bytes long; at most {MAX_KEY_LEN} are allowed",
            key.len()
        )))
    } else {
        Ok(())
    }
}

/// Checks that `value` is one JSON document, as the host does before storing it.
pub fn check_json(value: &str) -> Result<(), ViewError> {
    serde_json::from_str::<IgnoredAny>(value)
        .map(drop)
        .map_err(|error| ViewError::InvalidJson(error.to_string()))
}

/// A keyspace in memory, with the host's validation: the backend of the test
/// harness, and of anyone who wants to run a projection without storage.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemoryBackend {
    entries: BTreeMap<String, String>,
    /// The streams emissions may go to, as [`Description::emits`](crate::Description::emits) declares them.
    emits: Vec<String>,
    emitted: Vec<Emission>,
    /// The targets outbox requests may go to, as [`Description::targets`](crate::Description::targets) declares them.
    targets: Vec<String>,
    outbox: Vec<OutboxRequest>,
}

impl MemoryBackend {
    pub fn new() -> Self {
        Self::default()
    }

    /// The document at `key`, if any.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries.get(key).map(String::as_str)
    }

    /// Every entry, in key order.
    pub fn entries(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries
            .iter()
            .map(|(key, value)| (key.as_str(), value.as_str()))
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Takes emissions to these streams (names, or prefixes ending in `*`),
    /// as the host does for a projection that declares them; by default
    /// every emission is refused.
    pub fn emitting_to(mut self, streams: &[String]) -> Self {
        self.emits = streams.to_vec();
        self
    }

    /// Takes outbox requests to these targets, as the host does for a
    /// projection that declares them; by default every request is refused.
    pub fn sending_to(mut self, targets: &[String]) -> Self {
        self.targets = targets.to_vec();
        self
    }

    /// The outbox requests made so far, in order.
    pub fn outbox(&self) -> &[OutboxRequest] {
        &self.outbox
    }

    /// The events emitted so far, in order.
    pub fn emitted(&self) -> &[Emission] {
        &self.emitted
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl Backend for MemoryBackend {
    fn get_many(&mut self, keys: &[String]) -> Vec<Option<String>> {
        keys.iter()
            .map(|key| self.entries.get(key).cloned())
            .collect()
    }

    fn write_many(&mut self, writes: Vec<Write>) -> Result<(), ViewError> {
        // Validate everything first: like the host, a refused batch changes nothing.
        for write in &writes {
            match write {
                Write::Put(entry) => {
                    check_key(&entry.key)?;
                    check_json(&entry.value)?;
                }
                Write::Delete(key) => check_key(key)?,
            }
        }
        for write in writes {
            match write {
                Write::Put(Entry { key, value }) => {
                    self.entries.insert(key, value);
                }
                Write::Delete(key) => {
                    self.entries.remove(&key);
                }
            }
        }
        Ok(())
    }

    fn scan(&mut self, start: &str, end: Option<&str>, limit: u32) -> Vec<Entry> {
        let upper = end.map_or(Bound::Unbounded, Bound::Excluded);
        if end.is_some_and(|end| end <= start) {
            return Vec::new();
        }
        self.entries
            .range::<str, _>((Bound::Included(start), upper))
            .take(limit as usize)
            .map(|(key, value)| Entry {
                key: key.clone(),
                value: value.clone(),
            })
            .collect()
    }

    /// Keeps the emission, after checking it as the host does.
    fn emit(&mut self, emission: Emission) -> Result<(), EmitError> {
        if !crate::event::matches_any(&self.emits, &emission.stream_id) {
            return Err(EmitError::UndeclaredStream(format!(
                "stream {:?} is not among the streams this projection declares it emits to",
                emission.stream_id
            )));
        }
        check_json(&emission.data).map_err(|e| EmitError::Invalid(format!("data: {e}")))?;
        if !emission.metadata.is_empty()
            && !serde_json::from_str::<serde_json::Value>(&emission.metadata)
                .is_ok_and(|m| m.is_object())
        {
            return Err(EmitError::Invalid("metadata must be a JSON object".into()));
        }
        self.emitted.push(emission);
        Ok(())
    }

    /// Keeps the request, after checking it as the host does.
    fn enqueue(&mut self, request: OutboxRequest) -> Result<(), OutboxError> {
        if !self.targets.contains(&request.target) {
            return Err(OutboxError::UndeclaredTarget(format!(
                "target {:?} is not among the targets this projection declares",
                request.target
            )));
        }
        check_json(&request.payload).map_err(|e| OutboxError::Invalid(format!("payload: {e}")))?;
        if let Some(key) = &request.idempotency_key
            && (key.is_empty() || key.len() > 255 || !key.bytes().all(|b| b.is_ascii_graphic()))
        {
            return Err(OutboxError::Invalid(
                "the idempotency key must be 1 to 255 visible ASCII characters".into(),
            ));
        }
        if let Some(key) = &request.ordering_key
            && (key.is_empty() || key.len() > 1024)
        {
            return Err(OutboxError::Invalid(
                "the ordering key must be 1 to 1024 bytes long".into(),
            ));
        }
        self.outbox.push(request);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(key: &str, value: &str) -> Write {
        Write::Put(Entry {
            key: key.into(),
            value: value.into(),
        })
    }

    /// The accepted and the refused keys of `tests/data/view-keys.json`,
    /// the cases the host and every SDK test alike.
    fn view_key_cases() -> (Vec<String>, Vec<String>) {
        let cases: serde_json::Value =
            serde_json::from_str(include_str!("../../tests/data/view-keys.json")).unwrap();
        let keys = |kind: &str| -> Vec<String> {
            cases[kind]
                .as_array()
                .unwrap()
                .iter()
                .map(|case| {
                    let times = case["times"].as_u64().unwrap_or(1) as usize;
                    case["key"].as_str().unwrap().repeat(times)
                })
                .collect()
        };
        (keys("accepted"), keys("refused"))
    }

    #[test]
    fn view_keys_follow_the_shared_rule() {
        let (accepted, refused) = view_key_cases();
        for key in &accepted {
            assert_eq!(check_key(key), Ok(()), "{key:.20}");
            assert_eq!(MemoryBackend::new().write_many(vec![put(key, "1")]), Ok(()));
        }
        for key in &refused {
            assert!(
                matches!(check_key(key), Err(ViewError::InvalidKey(_))),
                "{key:.20}"
            );
            assert!(
                MemoryBackend::new()
                    .write_many(vec![put(key, "1")])
                    .is_err()
            );
        }
    }

    #[test]
    fn a_refused_write_many_changes_nothing() {
        let mut backend = MemoryBackend::new();
        let result = backend.write_many(vec![put("a", "1"), put("b", "{not json")]);
        assert!(matches!(result, Err(ViewError::InvalidJson(_))));
        assert!(backend.is_empty());
    }

    #[test]
    fn scan_is_ordered_half_open_and_limited() {
        let mut backend = MemoryBackend::new();
        backend
            .write_many(vec![
                put("b", "2"),
                put("a", "1"),
                put("c", "3"),
                put("d", "4"),
            ])
            .unwrap();
        let keys = |entries: Vec<Entry>| -> Vec<String> {
            entries.into_iter().map(|entry| entry.key).collect()
        };
        assert_eq!(keys(backend.scan("b", Some("d"), 10)), ["b", "c"]);
        assert_eq!(keys(backend.scan("a", None, 3)), ["a", "b", "c"]);
        assert!(backend.scan("c", Some("a"), 10).is_empty());
    }
}
