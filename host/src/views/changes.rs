//! A keyspace's change log: every key change a live view applies, in the
//! order applied, kept for a window of log positions, so that a change-feed
//! client can resume where it left off (after a disconnect, a slow spell or
//! a server restart) instead of re-reading the whole view.
//!
//! Changes are written in the same atomic write as the view writes and the
//! checkpoint, so the log and the view never disagree. A generation starts
//! recording when it first catches up with the head (a replay's millions of
//! intermediate writes are no one's changes) and, once it has, records every
//! commit from then on, restarts included: the log is complete from its
//! start marker on, and older entries are trimmed past the retention window.

use std::fmt;

use crate::log::Position;
use crate::storage::codec;

/// Where a change stands: the checkpoint of the commit that applied it,
/// and its place in that commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct ChangeId {
    pub position: Position,
    pub index: u32,
}

impl ChangeId {
    /// The id before every change of commits after `position`.
    pub fn after_position(position: Position) -> ChangeId {
        ChangeId {
            position,
            index: u32::MAX,
        }
    }
}

impl fmt::Display for ChangeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.position, self.index)
    }
}

/// One change as the log keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredChange {
    pub id: ChangeId,
    pub key: String,
    /// The new document, or `None` if the key was deleted.
    pub value: Option<String>,
}

pub(super) fn start_key(family: &str) -> Vec<u8> {
    let mut key = family.as_bytes().to_vec();
    key.push(0);
    key
}

pub(super) fn end_key(family: &str) -> Vec<u8> {
    let mut key = family.as_bytes().to_vec();
    key.push(1);
    key
}

pub(super) fn change_key(family: &str, id: ChangeId) -> Vec<u8> {
    let mut key = start_key(family);
    key.extend_from_slice(&codec::u64_key(id.position.0));
    key.extend_from_slice(&id.index.to_be_bytes());
    key
}

pub(super) fn id_of(family: &str, key: &[u8]) -> Option<ChangeId> {
    let rest = key.get(family.len() + 1..)?;
    let position = u64::from_be_bytes(rest.get(..8)?.try_into().ok()?);
    let index = u32::from_be_bytes(rest.get(8..12)?.try_into().ok()?);
    Some(ChangeId {
        position: Position(position),
        index,
    })
}

pub(super) fn encode(key: &str, value: Option<&str>) -> Vec<u8> {
    let mut out = Vec::with_capacity(5 + key.len() + value.map_or(0, str::len));
    out.extend_from_slice(&(key.len() as u32).to_le_bytes());
    out.extend_from_slice(key.as_bytes());
    if let Some(v) = value {
        out.push(1);
        out.extend_from_slice(v.as_bytes());
    } else {
        out.push(0);
    }
    out
}

pub(super) fn decode(id: ChangeId, bytes: &[u8]) -> Option<StoredChange> {
    let len = u32::from_le_bytes(bytes.get(..4)?.try_into().ok()?) as usize;
    let key = std::str::from_utf8(bytes.get(4..4 + len)?)
        .ok()?
        .to_string();
    let value = match bytes.get(4 + len)? {
        1 => Some(std::str::from_utf8(bytes.get(5 + len..)?).ok()?.to_string()),
        _ => None,
    };
    Some(StoredChange { id, key, value })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn change_keys_sort_by_position_then_index_and_round_trip() {
        let a = change_key(
            "f",
            ChangeId {
                position: Position(9),
                index: 7,
            },
        );
        let b = change_key(
            "f",
            ChangeId {
                position: Position(10),
                index: 0,
            },
        );
        assert!(a < b);
        assert!(b < end_key("f"));
        assert_eq!(
            id_of("f", &b),
            Some(ChangeId {
                position: Position(10),
                index: 0
            })
        );
        let id = ChangeId {
            position: Position(3),
            index: 1,
        };
        assert_eq!(
            decode(id, &encode("k", Some("{}"))),
            Some(StoredChange {
                id,
                key: "k".into(),
                value: Some("{}".into())
            })
        );
        assert_eq!(decode(id, &encode("k", None)).unwrap().value, None);
    }

    /// A batch's changes are keyed by the batch's position, so a log that
    /// starts recording after position 1 and whose first commit covers
    /// positions 2 to 4 is still complete after 1; only trimming moves the
    /// start, and it moves it exactly past what it removed.
    #[test]
    fn the_change_log_starts_where_recording_began_until_trimming_moves_it() {
        use crate::views::{ChangeLog, Transaction};
        let dir = tempfile::tempdir().unwrap();
        let (_, views) = crate::server::open_stores(dir.path()).unwrap();
        let keyspace = views.keyspace("p", "g").unwrap();
        let commit = |at: u64, retention: u64| {
            let mut txn = Transaction::new();
            txn.put(format!("k{at}"), "{}".to_string());
            keyspace
                .commit(&txn, &[], Position(at), ChangeLog::Record { retention })
                .unwrap();
        };
        assert_eq!(keyspace.change_log_start().unwrap(), None);
        keyspace.start_change_log(Position(1)).unwrap();
        commit(4, 1_000_000);
        let start = keyspace.change_log_start().unwrap().unwrap();
        assert_eq!(start, ChangeId::after_position(Position(1)));
        assert!(ChangeId::after_position(Position(1)) >= start);

        // Crossing a trim boundary with a short retention drops every
        // change before `checkpoint - retention` and says so.
        commit(super::super::TRIM_EVERY + 10, 5);
        let start = keyspace.change_log_start().unwrap().unwrap();
        assert_eq!(
            start,
            ChangeId::after_position(Position(super::super::TRIM_EVERY + 4))
        );
        let kept = keyspace.changes_after(start, 10).unwrap();
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].key, format!("k{}", super::super::TRIM_EVERY + 10));
    }
}
