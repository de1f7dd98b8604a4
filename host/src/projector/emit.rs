//! Events a projection emits while it handles a batch: which streams it may
//! emit to, the ids and metadata the host gives them, and the bound on
//! chains of emissions.
//!
//! # Exactly once, by construction
//! An emitted event's id is a UUID (version 5) of the plugin's name, the id
//! of the event that caused it and its index among that event's emissions.
//! Handling the same event again — a replay after a crash, a rebuild, a
//! blue/green candidate replaying beside the serving generation, a new
//! version — derives the same ids. The projector hands the emitted events
//! to the log together with its prepared commit (view writes, checkpoint):
//! on the embedded log, which shares its RocksDB database with the views,
//! both go into one synced write, and the log leaves out every event whose
//! id it already holds (`log::writer`). So:
//! - a crash before that write loses both the events and the checkpoint,
//!   and the replay emits them again, once;
//! - a crash after it keeps both, and nothing is handled twice;
//! - any other generation handling the same events later (or at the same
//!   time) emits the same ids, which the log finds and leaves out.
//!
//! Every generation emits, candidates included: their emissions are the
//! serving generation's own (same ids), so a candidate replaying history
//! appends nothing, and whichever generation handles a new event first
//! appends its emissions once. (A candidate of a version that emits
//! differently, and is discarded, may have emitted for the newest events
//! before it was; what a serving generation emitted is never changed.)
//!
//! The replicated (JetStream) log cannot store events and a node's view
//! commit in one write, so a projection that declares emitted streams does
//! not run there: it fails at once with a message saying so.
//!
//! # Causation and loops
//! The host sets in every emitted event's metadata `causation_id` (the
//! cause's id), `correlation_id` (the cause's `correlation_id`, or its id
//! when it has none), `emitted_by` (the plugin) and `emit_depth` (the
//! cause's `emit_depth` plus one; 0 for events a client appended). An
//! emission deeper than [`MAX_EMIT_DEPTH`] is refused: a projection that
//! feeds on its own emissions, directly or through others, fails at that
//! event (and is halted or dead-letters it, by its poison policy) with a
//! message that says why, instead of filling the log for ever.

use serde_json::{Map, Value};
use uuid::Uuid;

use crate::log::{NewEvent, json, limits};

/// The longest chain of emissions from an event a client appended.
pub const MAX_EMIT_DEPTH: u64 = 8;

/// The namespace of emitted events' ids (a UUID of Prism's own).
const EMITTED_NAMESPACE: Uuid = Uuid::from_u128(0x7a1c_4f0e_52b3_4d8e_9c61_0b2f_d3e4_a5c7);

/// The id of the `index`-th event that `plugin` emitted for the event `cause`.
pub fn emitted_id(plugin: &str, cause: &str, index: u32) -> Uuid {
    let name = format!("{plugin}\0{cause}\0{index}");
    Uuid::new_v5(&EMITTED_NAMESPACE, name.as_bytes())
}

/// Why an emission was refused; it appends nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    UndeclaredStream(String),
    UnknownCause(u64),
    Invalid(String),
    TooDeep(String),
}

/// What a plugin may emit to, and under which name its events are emitted.
#[derive(Debug, Clone)]
pub struct EmitRules {
    plugin: String,
    /// Stream names, or prefixes ending in `*`.
    streams: Vec<String>,
}

/// The event an emission was caused by: what its emissions need of it.
#[derive(Debug, Clone)]
pub struct Cause {
    pub position: u64,
    pub id: String,
    pub metadata: String,
}

impl EmitRules {
    pub fn new(plugin: &str, streams: &[String]) -> Self {
        EmitRules {
            plugin: plugin.to_string(),
            streams: streams.to_vec(),
        }
    }

    /// Whether `stream` is among the declared ones.
    pub fn allows(&self, stream: &str) -> bool {
        self.streams
            .iter()
            .any(|pattern| match pattern.strip_suffix('*') {
                Some(prefix) => stream.starts_with(prefix),
                None => stream == pattern,
            })
    }

    /// The `index`-th emission caused by `cause`, as the event to append to
    /// `stream`, or why it is refused.
    pub fn emission(
        &self,
        cause: &Cause,
        index: u32,
        stream: &str,
        event_type: &str,
        data: &str,
        metadata: &str,
    ) -> Result<NewEvent, Refusal> {
        limits::check_stream_name(stream).map_err(|e| Refusal::Invalid(e.to_string()))?;
        if !self.allows(stream) {
            return Err(Refusal::UndeclaredStream(format!(
                "stream {stream:?} is not among the streams this projection declares it emits to ({})",
                self.streams.join(", ")
            )));
        }
        limits::check_event_type(event_type).map_err(|e| Refusal::Invalid(e.to_string()))?;
        json::check(data).map_err(|problem| Refusal::Invalid(format!("data {problem}")))?;
        let mut meta = match serde_json::from_str::<Value>(if metadata.is_empty() {
            "{}"
        } else {
            metadata
        }) {
            Ok(Value::Object(map)) => map,
            _ => {
                return Err(Refusal::Invalid(
                    "metadata must be a JSON object".to_string(),
                ));
            }
        };
        let cause_meta: Map<String, Value> = serde_json::from_str(&cause.metadata)
            .ok()
            .and_then(|v: Value| v.as_object().cloned())
            .unwrap_or_default();
        let depth = cause_meta
            .get("emit_depth")
            .and_then(Value::as_u64)
            .unwrap_or(0)
            + 1;
        if depth > MAX_EMIT_DEPTH {
            return Err(Refusal::TooDeep(format!(
                "emitting {event_type} to {stream:?} would make a chain of {depth} emissions from \
                 the event a client appended (correlation {}); at most {MAX_EMIT_DEPTH} are \
                 allowed: does the projection react to its own emissions?",
                correlation(&cause_meta, cause)
            )));
        }
        meta.insert("causation_id".into(), Value::String(cause.id.clone()));
        meta.insert(
            "correlation_id".into(),
            Value::String(correlation(&cause_meta, cause)),
        );
        meta.insert("emitted_by".into(), Value::String(self.plugin.clone()));
        meta.insert("emit_depth".into(), Value::from(depth));
        let metadata = Value::Object(meta).to_string();
        json::check(&metadata)
            .map_err(|problem| Refusal::Invalid(format!("metadata {problem}")))?;
        Ok(NewEvent {
            id: emitted_id(&self.plugin, &cause.id, index),
            // Indexed by id, so that the log finds it when it is emitted again.
            client_id: true,
            event_type: event_type.to_string(),
            data: data.to_string(),
            metadata,
        })
    }
}

fn correlation(cause_meta: &Map<String, Value>, cause: &Cause) -> String {
    cause_meta
        .get("correlation_id")
        .and_then(Value::as_str)
        .map_or_else(|| cause.id.clone(), str::to_string)
}

/// What is wrong with a description's declared streams, if anything.
pub fn streams_problem(streams: &[String]) -> Option<String> {
    streams.iter().find_map(|pattern| {
        let name = pattern.strip_suffix('*').unwrap_or(pattern);
        if name.is_empty() {
            return Some(format!(
                "emits: {pattern:?} would allow every stream; name the streams or a prefix"
            ));
        }
        limits::check_stream_name(name)
            .err()
            .map(|e| format!("emits: {pattern:?}: {e}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cause(metadata: &str) -> Cause {
        Cause {
            position: 7,
            id: "3f2c8a4e-0000-4000-8000-000000000001".into(),
            metadata: metadata.into(),
        }
    }

    #[test]
    fn ids_are_derived_from_plugin_cause_and_index() {
        let a = emitted_id("rating", "e1", 0);
        assert_eq!(a, emitted_id("rating", "e1", 0));
        assert_ne!(a, emitted_id("rating", "e1", 1));
        assert_ne!(a, emitted_id("rating", "e2", 0));
        assert_ne!(a, emitted_id("other", "e1", 0));
    }

    #[test]
    fn declared_streams_are_names_or_prefixes() {
        let rules = EmitRules::new("p", &["audit".into(), "customer-*".into()]);
        assert!(rules.allows("audit"));
        assert!(rules.allows("customer-42"));
        assert!(!rules.allows("audit-2"));
        assert!(!rules.allows("orders"));
        assert!(streams_problem(&["*".into()]).is_some());
        assert!(streams_problem(&["customer-*".into()]).is_none());
    }

    #[test]
    fn emissions_carry_causation_correlation_and_depth() {
        let rules = EmitRules::new("p", &["out".into()]);
        let first = rules
            .emission(&cause("{}"), 0, "out", "Done", "{}", r#"{"note":1}"#)
            .unwrap();
        let meta: Value = serde_json::from_str(&first.metadata).unwrap();
        assert_eq!(meta["causation_id"], cause("{}").id);
        assert_eq!(meta["correlation_id"], cause("{}").id);
        assert_eq!(meta["emit_depth"], 1);
        assert_eq!(meta["note"], 1);
        assert_eq!(meta["emitted_by"], "p");
        let deeper = rules
            .emission(
                &cause(r#"{"correlation_id":"c-1","emit_depth":3}"#),
                0,
                "out",
                "Done",
                "{}",
                "",
            )
            .unwrap();
        let meta: Value = serde_json::from_str(&deeper.metadata).unwrap();
        assert_eq!(meta["correlation_id"], "c-1");
        assert_eq!(meta["emit_depth"], 4);
    }

    #[test]
    fn refusals() {
        let rules = EmitRules::new("p", &["out".into()]);
        let refused = |stream: &str, data: &str, meta: &str, cause_meta: &str| {
            rules
                .emission(&cause(cause_meta), 0, stream, "T", data, meta)
                .unwrap_err()
        };
        assert!(matches!(
            refused("elsewhere", "{}", "{}", "{}"),
            Refusal::UndeclaredStream(_)
        ));
        assert!(matches!(
            refused("out", "{nope", "{}", "{}"),
            Refusal::Invalid(_)
        ));
        assert!(matches!(
            refused("out", "{}", "[1]", "{}"),
            Refusal::Invalid(_)
        ));
        let deep = format!(r#"{{"emit_depth":{MAX_EMIT_DEPTH}}}"#);
        assert!(matches!(
            refused("out", "{}", "{}", &deep),
            Refusal::TooDeep(_)
        ));
    }
}
