//! Event ids the log already holds, and what an append that carries them
//! gets: the rule of idempotent retries, in one place for both backends.
//! The embedded log's writer looks ids up in its own store (and in the
//! group it is assembling); the replicated log looks them up in this
//! node's copy of the log (`replica::LocalCopy`), because JetStream's own
//! de-duplication only says that some id of a batch is known, not which
//! nor where.

use std::collections::HashMap;

use super::{LogError, MultiOutcome, Position, StreamVersion};
use crate::storage::codec;
use crate::storage::{CF_EVENT_IDS, CF_EVENTS, StorageError, Store};

/// Where an event id lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdEntry {
    pub position: Position,
    pub stream: String,
    pub version: StreamVersion,
}

/// The entry of each id in `store`'s log, in order (`None` for an id the
/// log does not hold).
pub(crate) fn lookup(store: &Store, ids: &[[u8; 16]]) -> Result<Vec<Option<IdEntry>>, LogError> {
    let ids_cf = store.fixed(CF_EVENT_IDS);
    let events_cf = store.fixed(CF_EVENTS);
    let positions = store.get_many(&ids_cf, ids.iter().map(|id| &id[..]))?;
    positions
        .into_iter()
        .map(|stored| {
            let Some(key) = stored else {
                return Ok(None);
            };
            let position = Position(codec::decode_u64(&key)?);
            let bytes = store
                .get(&events_cf, codec::u64_key(position.0))?
                .ok_or_else(|| {
                    StorageError::Corrupt(format!("event id points at missing position {position}"))
                })?;
            let event = codec::decode_event(&bytes)?;
            Ok(Some(IdEntry {
                position,
                stream: event.stream,
                version: StreamVersion(event.stream_version),
            }))
        })
        .collect()
}

/// What an append gets whose events go to `streams` (one per event, in
/// order) when `found` holds what the log recorded under each event's id:
/// - every id recorded, each for the stream it is appended to now: the
///   original outcome, with `duplicate: true` (nothing is appended);
/// - none recorded: `None`, the append goes on;
/// - otherwise [`LogError::IdempotencyConflict`].
pub fn outcome<'a>(
    streams: impl IntoIterator<Item = &'a str>,
    found: Vec<Option<IdEntry>>,
) -> Result<Option<MultiOutcome>, LogError> {
    let known = found.iter().filter(|f| f.is_some()).count();
    if known == 0 {
        return Ok(None);
    }
    let same_streams = streams
        .into_iter()
        .zip(&found)
        .all(|(stream, f)| f.as_ref().is_some_and(|f| f.stream == stream));
    if known < found.len() || !same_streams {
        return Err(LogError::IdempotencyConflict(format!(
            "{known} of the {} event ids are already in the log (for this or another \
             stream): resend exactly the original append, or use new ids",
            found.len()
        )));
    }
    let found: Vec<IdEntry> = found.into_iter().flatten().collect();
    let mut streams: Vec<(String, StreamVersion)> = Vec::new();
    let mut places: HashMap<&str, usize> = HashMap::new();
    for entry in &found {
        match places.get(entry.stream.as_str()) {
            Some(&i) => streams[i].1 = streams[i].1.max(entry.version),
            None => {
                places.insert(&entry.stream, streams.len());
                streams.push((entry.stream.clone(), entry.version));
            }
        }
    }
    Ok(Some(MultiOutcome {
        first_position: found.iter().map(|e| e.position).min().expect("non-empty"),
        last_position: found.iter().map(|e| e.position).max().expect("non-empty"),
        streams,
        duplicate: true,
    }))
}
