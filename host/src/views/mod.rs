//! The view store: one keyspace (a RocksDB column family) per plugin
//! generation, with its checkpoint stored beside it.
//!
//! A projector applies a batch through a [`Transaction`]: reads see the
//! batch's own earlier writes, and [`Keyspace::commit`] writes the batch's
//! changes and the new checkpoint in one atomic `WriteBatch`, so a view never
//! holds half a batch and never misses or repeats one (exactly-once effect).

mod transaction;

use std::sync::Arc;

use rocksdb::{Direction, IteratorMode, WriteBatch, WriteOptions};

pub use transaction::{Change, Transaction};

use crate::log::Position;
use crate::storage::{self, CF_DEAD_LETTERS, CF_META, Rocks, StorageError, codec};

/// Longest view key, in bytes.
pub const MAX_KEY_BYTES: usize = 1024;

/// The name of a plugin generation's column family.
pub fn family_name(plugin: &str, generation: &str) -> String {
    format!("view.{plugin}.{generation}")
}

/// Access to every keyspace in the database.
#[derive(Clone)]
pub struct ViewStore {
    db: Arc<Rocks>,
}

impl ViewStore {
    pub(crate) fn new(db: Arc<Rocks>) -> Self {
        ViewStore { db }
    }

    /// The keyspace of a plugin generation, created empty if it is new.
    pub fn keyspace(&self, plugin: &str, generation: &str) -> Result<Keyspace, StorageError> {
        let family = family_name(plugin, generation);
        storage::ensure_family(&self.db, &family)?;
        Ok(Keyspace {
            db: self.db.clone(),
            family,
        })
    }

    /// A handle on a keyspace that is not created: reads find nothing. For
    /// validating a plugin before it gets a keyspace of its own.
    pub fn detached(&self, family: &str) -> Keyspace {
        Keyspace {
            db: self.db.clone(),
            family: family.to_string(),
        }
    }

    /// Drop a keyspace with its checkpoint and dead letters.
    pub fn drop_keyspace(&self, family: &str) -> Result<(), StorageError> {
        let meta = self.db.cf_handle(CF_META).expect("meta family");
        self.db.delete_cf(&meta, checkpoint_key(family))?;
        let dead = self
            .db
            .cf_handle(CF_DEAD_LETTERS)
            .expect("dead letters family");
        let (start, end) = dead_letter_range(family);
        self.db.delete_range_cf(&dead, start, end)?;
        if self.db.cf_handle(family).is_some() {
            self.db.drop_cf(family)?;
        }
        Ok(())
    }

    /// Names of every view keyspace in the database.
    pub fn families(&self, dir: &std::path::Path) -> Vec<String> {
        storage::family_names(dir)
            .into_iter()
            .filter(|n| n.starts_with("view."))
            .collect()
    }

    /// A small persistent record (plugin registry entries), by key.
    pub fn meta_get(&self, key: &str) -> Result<Option<String>, StorageError> {
        let meta = self.db.cf_handle(CF_META).expect("meta family");
        Ok(self
            .db
            .get_cf(&meta, key.as_bytes())?
            .map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    pub fn meta_put(&self, key: &str, value: &str) -> Result<(), StorageError> {
        let meta = self.db.cf_handle(CF_META).expect("meta family");
        Ok(self.db.put_cf(&meta, key.as_bytes(), value.as_bytes())?)
    }

    pub fn meta_delete(&self, key: &str) -> Result<(), StorageError> {
        let meta = self.db.cf_handle(CF_META).expect("meta family");
        Ok(self.db.delete_cf(&meta, key.as_bytes())?)
    }
}

fn checkpoint_key(family: &str) -> Vec<u8> {
    format!("checkpoint/{family}").into_bytes()
}

fn dead_letter_range(family: &str) -> (Vec<u8>, Vec<u8>) {
    let mut start = family.as_bytes().to_vec();
    start.push(0);
    let mut end = family.as_bytes().to_vec();
    end.push(1);
    (start, end)
}

fn dead_letter_key(family: &str, position: Position) -> Vec<u8> {
    let mut key = family.as_bytes().to_vec();
    key.push(0);
    key.extend_from_slice(&codec::u64_key(position.0));
    key
}

/// One plugin generation's keys and checkpoint.
#[derive(Clone)]
pub struct Keyspace {
    db: Arc<Rocks>,
    /// The column family; looked up per operation because a handle borrows the database.
    family: String,
}

impl Keyspace {
    pub fn family(&self) -> &str {
        &self.family
    }

    /// The document stored at `key`.
    pub fn get(&self, key: &str) -> Result<Option<String>, StorageError> {
        let Some(cf) = self.db.cf_handle(&self.family) else {
            return Ok(None);
        };
        Ok(self
            .db
            .get_pinned_cf(&cf, key.as_bytes())?
            .map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    /// The documents at `keys`, in order, with one RocksDB multi-get.
    pub fn get_many(&self, keys: &[String]) -> Result<Vec<Option<String>>, StorageError> {
        let Some(cf) = self.db.cf_handle(&self.family) else {
            return Ok(vec![None; keys.len()]);
        };
        self.db
            .batched_multi_get_cf(&cf, keys.iter().map(|k| k.as_bytes()), false)
            .into_iter()
            .map(|r| Ok(r?.map(|v| String::from_utf8_lossy(&v).into_owned())))
            .collect()
    }

    /// Entries with `start <= key < end` (`end: None` means to the last key),
    /// in key order, at most `limit`.
    pub fn scan(
        &self,
        start: &str,
        end: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, String)>, StorageError> {
        let mut out = Vec::new();
        self.scan_with(start, end, |k, v| {
            out.push((k.to_string(), v.to_string()));
            out.len() < limit
        })?;
        Ok(out)
    }

    /// Visit entries from `start` (inclusive) to `end` (exclusive) in order
    /// until `visit` returns false.
    pub fn scan_with(
        &self,
        start: &str,
        end: Option<&str>,
        mut visit: impl FnMut(&str, &str) -> bool,
    ) -> Result<(), StorageError> {
        let Some(cf) = self.db.cf_handle(&self.family) else {
            return Ok(());
        };
        let iter = self.db.iterator_cf(
            &cf,
            IteratorMode::From(start.as_bytes(), Direction::Forward),
        );
        for item in iter {
            let (k, v) = item?;
            if end.is_some_and(|end| &*k >= end.as_bytes()) {
                break;
            }
            let key = String::from_utf8_lossy(&k);
            let value = String::from_utf8_lossy(&v);
            if !visit(&key, &value) {
                break;
            }
        }
        Ok(())
    }

    /// The last log position whose effects this keyspace holds.
    pub fn checkpoint(&self) -> Result<Position, StorageError> {
        let meta = self.db.cf_handle(CF_META).expect("meta family");
        match self.db.get_pinned_cf(&meta, checkpoint_key(&self.family))? {
            Some(v) => Ok(Position(codec::decode_u64(&v)?)),
            None => Ok(Position::ZERO),
        }
    }

    /// Commit a batch's writes, the dead letters it produced and the new
    /// checkpoint atomically. Not synced: a crash may lose the last commits,
    /// which the projector then replays from the log — the views stay exact.
    pub fn commit(
        &self,
        txn: &Transaction,
        dead_letters: &[(Position, String)],
        checkpoint: Position,
    ) -> Result<(), StorageError> {
        let cf = self.db.cf_handle(&self.family).ok_or_else(|| {
            StorageError::Corrupt(format!("keyspace {} was dropped", self.family))
        })?;
        let meta = self.db.cf_handle(CF_META).expect("meta family");
        let mut batch = WriteBatch::default();
        for (key, value) in txn.writes() {
            match value {
                Some(v) => batch.put_cf(&cf, key.as_bytes(), v.as_bytes()),
                None => batch.delete_cf(&cf, key.as_bytes()),
            }
        }
        if !dead_letters.is_empty() {
            let dead = self
                .db
                .cf_handle(CF_DEAD_LETTERS)
                .expect("dead letters family");
            for (position, record) in dead_letters {
                batch.put_cf(
                    &dead,
                    dead_letter_key(&self.family, *position),
                    record.as_bytes(),
                );
            }
        }
        batch.put_cf(
            &meta,
            checkpoint_key(&self.family),
            codec::u64_key(checkpoint.0),
        );
        let mut opts = WriteOptions::default();
        opts.set_sync(false);
        Ok(self.db.write_opt(batch, &opts)?)
    }

    /// Dead letters recorded for this keyspace, oldest first, as JSON texts.
    pub fn dead_letters(&self, limit: usize) -> Result<Vec<String>, StorageError> {
        let dead = self
            .db
            .cf_handle(CF_DEAD_LETTERS)
            .expect("dead letters family");
        let (start, end) = dead_letter_range(&self.family);
        let mut out = Vec::new();
        let iter = self
            .db
            .iterator_cf(&dead, IteratorMode::From(&start, Direction::Forward));
        for item in iter {
            let (k, v) = item?;
            if *k >= *end || out.len() >= limit {
                break;
            }
            out.push(String::from_utf8_lossy(&v).into_owned());
        }
        Ok(out)
    }
}
