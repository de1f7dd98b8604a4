//! The outbox's keys in RocksDB (column family `outbox`):
//! - `i` + id (16 bytes) → sequence number (big-endian `u64`): every id the
//!   outbox ever held, kept for ever, so that none is enqueued twice;
//! - `e` + sequence number → the [`Entry`] as JSON, until retention purges
//!   a finished one;
//! - `s` → the last sequence number handed out.
//!
//! Only the log writer enqueues ([`enqueue`], inside a projector's commit),
//! so the check for a known id and the write that adds a new one are one
//! step. Only the delivery task changes an entry afterwards.

use uuid::Uuid;

use super::{Entry, NewEntry};
use crate::storage::{CF_OUTBOX, Durability, Reading, Seek, StorageError, Store, WriteSet};

const ID_PREFIX: u8 = b'i';
const ENTRY_PREFIX: u8 = b'e';
const LAST_SEQUENCE_KEY: &[u8] = b"s";

fn id_key(id: &Uuid) -> [u8; 17] {
    let mut key = [ID_PREFIX; 17];
    key[1..].copy_from_slice(id.as_bytes());
    key
}

fn entry_key(sequence: u64) -> [u8; 9] {
    let mut key = [ENTRY_PREFIX; 9];
    key[1..].copy_from_slice(&sequence.to_be_bytes());
    key
}

fn sequence_of(bytes: &[u8]) -> Result<u64, StorageError> {
    bytes
        .try_into()
        .map(u64::from_be_bytes)
        .map_err(|_| StorageError::Corrupt("an outbox sequence number is not 8 bytes".into()))
}

fn decode(bytes: &[u8]) -> Result<Entry, StorageError> {
    serde_json::from_slice(bytes)
        .map_err(|e| StorageError::Corrupt(format!("an outbox entry does not decode: {e}")))
}

/// The last sequence number the outbox handed out (0: none yet).
pub(crate) fn last_sequence(db: &Store) -> Result<u64, StorageError> {
    let cf = db.fixed(CF_OUTBOX);
    db.get(&cf, LAST_SEQUENCE_KEY)?
        .map_or(Ok(0), |bytes| sequence_of(&bytes))
}

/// Add to `batch` the entries whose ids the outbox does not hold yet, with
/// sequence numbers from `last` on (which it advances); the ones it holds
/// are left out. Returns how many were added. Called by the log writer
/// only, whose single thread makes check and write one step.
pub(crate) fn enqueue(
    db: &Store,
    entries: &[NewEntry],
    last: &mut u64,
    now_ms: u64,
    batch: &mut WriteSet,
) -> Result<u64, StorageError> {
    let cf = db.fixed(CF_OUTBOX);
    let keys: Vec<[u8; 17]> = entries.iter().map(|e| id_key(&e.id)).collect();
    let known = db.get_many(&cf, keys.iter().map(|k| &k[..]))?;
    let mut added = 0;
    let mut seen = std::collections::HashSet::new();
    for ((entry, key), known) in entries.iter().zip(&keys).zip(known) {
        if known.is_some() || !seen.insert(entry.id) {
            continue;
        }
        *last += 1;
        let record = serde_json::to_vec(&Entry::new(entry, *last, now_ms))
            .map_err(|e| StorageError::Corrupt(format!("encoding an outbox entry: {e}")))?;
        batch.put(&cf, key, last.to_be_bytes());
        batch.put(&cf, entry_key(*last), record);
        added += 1;
    }
    if added > 0 {
        batch.put(&cf, LAST_SEQUENCE_KEY, last.to_be_bytes());
    }
    Ok(added)
}

/// What the outbox knows of an id.
#[derive(Debug)]
pub enum Found {
    Entry(Box<Entry>),
    /// It was delivered or dropped, and its record purged.
    Purged,
}

/// Reads and delivery updates of the outbox.
#[derive(Clone)]
pub struct OutboxStore {
    db: Store,
}

impl OutboxStore {
    pub(crate) fn new(db: Store) -> Self {
        OutboxStore { db }
    }

    pub fn get(&self, sequence: u64) -> Result<Option<Entry>, StorageError> {
        let cf = self.db.fixed(CF_OUTBOX);
        self.db
            .get(&cf, entry_key(sequence))?
            .map(|bytes| decode(&bytes))
            .transpose()
    }

    /// The entry of this id, if the outbox ever held it.
    pub fn find(&self, id: &Uuid) -> Result<Option<Found>, StorageError> {
        let cf = self.db.fixed(CF_OUTBOX);
        let Some(sequence) = self.db.get(&cf, id_key(id))? else {
            return Ok(None);
        };
        let sequence = sequence_of(&sequence)?;
        Ok(Some(match self.get(sequence)? {
            Some(entry) => Found::Entry(Box::new(entry)),
            None => Found::Purged,
        }))
    }

    /// Store a changed entry (its delivery state).
    pub fn update(&self, entry: &Entry) -> Result<(), StorageError> {
        let cf = self.db.fixed(CF_OUTBOX);
        let record = serde_json::to_vec(entry)
            .map_err(|e| StorageError::Corrupt(format!("encoding an outbox entry: {e}")))?;
        self.db
            .put(&cf, entry_key(entry.sequence), record, Durability::Buffered)
    }

    /// Delete finished entries' records (their ids stay).
    pub fn purge(&self, sequences: &[u64]) -> Result<(), StorageError> {
        let cf = self.db.fixed(CF_OUTBOX);
        let mut batch = WriteSet::default();
        for sequence in sequences {
            batch.delete(&cf, entry_key(*sequence));
        }
        self.db.write(batch, Durability::Buffered)
    }

    /// Entries with sequence numbers above `after`, in order, while `each` says go on.
    pub fn scan_after(
        &self,
        after: u64,
        mut each: impl FnMut(Entry) -> bool,
    ) -> Result<(), StorageError> {
        let Some(from) = after.checked_add(1) else {
            return Ok(());
        };
        let cf = self.db.fixed(CF_OUTBOX);
        let start = entry_key(from);
        let iter = self.db.scan(&cf, Seek::From(&start), Reading::Cached);
        for item in iter {
            let (key, value) = item?;
            if key.first() != Some(&ENTRY_PREFIX) {
                break;
            }
            if !each(decode(&value)?) {
                break;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_entry(n: u128) -> NewEntry {
        NewEntry {
            id: Uuid::from_u128(n),
            plugin: "p".into(),
            target: "t".into(),
            ordering_key: "t".into(),
            idempotency_key: format!("k{n}"),
            payload: "{}".into(),
            cause_position: n as u64,
            cause_id: format!("c{n}"),
        }
    }

    #[test]
    fn known_ids_are_left_out_and_sequences_survive_a_reopen_and_a_purge() {
        let dir = tempfile::tempdir().unwrap();
        let db = crate::storage::open(dir.path()).unwrap();
        let mut last = last_sequence(&db).unwrap();
        assert_eq!(last, 0);
        let mut batch = WriteSet::default();
        let added = enqueue(&db, &[new_entry(1), new_entry(2)], &mut last, 5, &mut batch).unwrap();
        db.write(batch, Durability::Buffered).unwrap();
        assert_eq!((added, last), (2, 2));
        let mut batch = WriteSet::default();
        let added = enqueue(
            &db,
            &[new_entry(2), new_entry(3), new_entry(3)],
            &mut last,
            6,
            &mut batch,
        )
        .unwrap();
        db.write(batch, Durability::Buffered).unwrap();
        assert_eq!((added, last), (1, 3));
        let store = OutboxStore::new(db.clone());
        let mut seen = Vec::new();
        store
            .scan_after(0, |e| {
                seen.push((e.sequence, e.id.as_u128()));
                true
            })
            .unwrap();
        assert_eq!(seen, [(1, 1), (2, 2), (3, 3)]);
        store.purge(&[3]).unwrap();
        assert!(matches!(
            store.find(&Uuid::from_u128(3)).unwrap(),
            Some(Found::Purged)
        ));
        drop(store);
        drop(db);
        let db = crate::storage::open(dir.path()).unwrap();
        assert_eq!(last_sequence(&db).unwrap(), 3);
        let mut last = 3;
        let mut batch = WriteSet::default();
        assert_eq!(
            enqueue(&db, &[new_entry(3)], &mut last, 7, &mut batch).unwrap(),
            0
        );
    }
}
