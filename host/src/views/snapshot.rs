//! Reads at one point of a keyspace's history, and walks that keep that
//! point across pages.
//!
//! A [`ViewSnapshot`] is a snapshot of the whole database taken
//! between two commits: its documents, its index entries and its checkpoint
//! agree, so a page read from it is the view exactly as it was at one log
//! position (its [`ViewSnapshot::position`]). A paged query pins its
//! snapshot as a [`Walk`] so that every later page reads the same point:
//! a document that moves from one page's range to another's while a client
//! pages is neither listed twice nor missed. Walks are kept for a while
//! after their last page and are bounded in number, because a held snapshot
//! keeps RocksDB from dropping the versions it sees.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{Keyspace, checkpoint_key};
use crate::log::Position;
use crate::storage::{CF_INDEXES, CF_META, Reading, Seek, Snapshot, StorageError, codec};

/// A keyspace as it was at one commit. Clones share the snapshot.
#[derive(Clone)]
pub struct ViewSnapshot {
    keyspace: Keyspace,
    pinned: Arc<Snapshot>,
}

/// How long a walk is kept after its last page.
pub const WALK_IDLE: Duration = Duration::from_secs(60);
/// How long a walk is kept at most, however busy.
pub const WALK_MAX_AGE: Duration = Duration::from_secs(600);
/// Walks open at once across the server; past this the least recently used goes.
pub const MAX_WALKS: usize = 256;

/// A paged read in progress: the snapshot every page reads.
struct Walk {
    snapshot: ViewSnapshot,
    /// What the caller wants back with it (the generation that answered).
    label: String,
    started: Instant,
    used: Instant,
}

/// The open walks of a view store, by id.
#[derive(Default)]
pub(super) struct Walks {
    open: HashMap<u64, Walk>,
}

impl Walks {
    pub(super) fn clear(&mut self) {
        self.open.clear();
    }

    fn sweep(&mut self, now: Instant) {
        self.open.retain(|_, w| {
            now.duration_since(w.used) < WALK_IDLE && now.duration_since(w.started) < WALK_MAX_AGE
        });
    }
}

pub(super) type SharedWalks = Arc<Mutex<Walks>>;

impl Keyspace {
    /// The keyspace as it is now, to read at one point.
    pub fn snapshot(&self) -> ViewSnapshot {
        ViewSnapshot {
            keyspace: self.clone(),
            pinned: Arc::new(self.store.snapshot()),
        }
    }

    /// Keep `snapshot` for later pages; the id to resume it with.
    pub fn pin_walk(&self, snapshot: &ViewSnapshot, label: &str) -> u64 {
        let now = Instant::now();
        let mut walks = self.family.walks.lock().expect("walks lock");
        walks.sweep(now);
        if walks.open.len() >= MAX_WALKS
            && let Some(oldest) = walks
                .open
                .iter()
                .min_by_key(|(_, w)| w.used)
                .map(|(id, _)| *id)
        {
            walks.open.remove(&oldest);
        }
        let mut id = fastrand::u64(..);
        while walks.open.contains_key(&id) {
            id = fastrand::u64(..);
        }
        walks.open.insert(
            id,
            Walk {
                snapshot: snapshot.clone(),
                label: label.to_string(),
                started: now,
                used: now,
            },
        );
        id
    }

    /// The snapshot of walk `id` and its label, if it is still kept.
    pub fn resume_walk(&self, id: u64) -> Option<(ViewSnapshot, String)> {
        let now = Instant::now();
        let mut walks = self.family.walks.lock().expect("walks lock");
        walks.sweep(now);
        let walk = walks.open.get_mut(&id)?;
        walk.used = now;
        Some((walk.snapshot.clone(), walk.label.clone()))
    }

    /// The document keys of index entries from `start` (inclusive) to
    /// `end` (exclusive) as committed now, in order, until `visit` returns false.
    pub fn index_entries(
        &self,
        start: &[u8],
        end: &[u8],
        mut visit: impl FnMut(&str) -> bool,
    ) -> Result<(), StorageError> {
        let entries = self.store.fixed(CF_INDEXES);
        let iter = self
            .store
            .scan(&entries, Seek::From(start), Reading::Cached);
        for item in iter {
            let (k, v) = item?;
            if *k >= *end || !visit(&String::from_utf8_lossy(&v)) {
                break;
            }
        }
        Ok(())
    }

    /// About how many documents the keyspace holds (RocksDB's estimate).
    pub fn estimated_documents(&self) -> u64 {
        let Some(cf) = self.store.family(self.family()) else {
            return 0;
        };
        self.store.estimated_keys(&cf)
    }
}

impl ViewSnapshot {
    pub fn keyspace(&self) -> &Keyspace {
        &self.keyspace
    }

    /// The log position the snapshot reflects: the checkpoint committed
    /// with its documents.
    pub fn position(&self) -> Result<Position, StorageError> {
        let meta = self.pinned.fixed(CF_META);
        match self
            .pinned
            .get(&meta, checkpoint_key(self.keyspace.family()))?
        {
            Some(v) => Ok(Position(codec::decode_u64(&v)?)),
            None => Ok(Position::ZERO),
        }
    }

    /// The documents at `keys`, in order.
    pub fn get_many(&self, keys: &[String]) -> Result<Vec<Option<String>>, StorageError> {
        let Some(cf) = self.pinned.family(self.keyspace.family()) else {
            return Ok(vec![None; keys.len()]);
        };
        Ok(self
            .pinned
            .get_many(&cf, keys.iter().map(|k| k.as_bytes()))?
            .into_iter()
            .map(|v| v.map(|v| String::from_utf8_lossy(&v).into_owned()))
            .collect())
    }

    /// Documents with `start <= key < end` (`end: None`: to the last key),
    /// in key order or reversed, until `visit` returns false.
    pub fn scan_with(
        &self,
        start: &str,
        end: Option<&str>,
        descending: bool,
        mut visit: impl FnMut(&str, &str) -> bool,
    ) -> Result<(), StorageError> {
        let Some(cf) = self.pinned.family(self.keyspace.family()) else {
            return Ok(());
        };
        let seek = match (descending, end) {
            (false, _) => Seek::From(start.as_bytes()),
            (true, Some(end)) => Seek::Back(end.as_bytes()),
            (true, None) => Seek::Last,
        };
        for item in self.pinned.scan(&cf, seek) {
            let (k, v) = item?;
            if descending && end.is_some_and(|end| *k >= *end.as_bytes()) {
                continue;
            }
            if (!descending && end.is_some_and(|end| *k >= *end.as_bytes()))
                || (descending && *k < *start.as_bytes())
            {
                break;
            }
            if !visit(&String::from_utf8_lossy(&k), &String::from_utf8_lossy(&v)) {
                break;
            }
        }
        Ok(())
    }

    /// Index entries from `start` (inclusive) to `end` (exclusive), in
    /// order or reversed, until `visit` returns false; `visit` gets the
    /// entry key and the document key.
    pub fn index_range(
        &self,
        start: &[u8],
        end: &[u8],
        descending: bool,
        mut visit: impl FnMut(&[u8], &str) -> bool,
    ) -> Result<(), StorageError> {
        let entries = self.pinned.fixed(CF_INDEXES);
        let seek = if descending {
            Seek::Back(end)
        } else {
            Seek::From(start)
        };
        for item in self.pinned.scan(&entries, seek) {
            let (k, v) = item?;
            if descending && *k >= *end {
                continue;
            }
            if (!descending && *k >= *end) || (descending && *k < *start) {
                break;
            }
            if !visit(&k, &String::from_utf8_lossy(&v)) {
                break;
            }
        }
        Ok(())
    }
}
