//! The view store: one keyspace (a RocksDB column family) per plugin
//! generation, with its checkpoint stored beside it.
//!
//! A projector applies a batch through a [`Transaction`]: reads see the
//! batch's own earlier writes, and [`Keyspace::commit`] writes the batch's
//! changes and the new checkpoint in one atomic write, so a view never
//! holds half a batch and never misses or repeats one (exactly-once effect).
//!
//! A [`Keyspace`] is a shared handle: every clone of it (a projector, a
//! reader in the middle of a scan, a query instance) keeps the column
//! family alive. Retiring a keyspace only marks it; the last handle to go
//! away hands it to the janitor thread, which drops it. So a read that
//! started just before a swap finishes on the old keyspace instead of
//! finding it gone, and nobody polls for readers to finish.

mod changes;
pub mod find;
pub mod index;
pub mod partitions;
mod snapshot;
mod transaction;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

pub use changes::{ChangeId, StoredChange};
pub use snapshot::{MAX_WALKS, ViewSnapshot, WALK_IDLE, WALK_MAX_AGE};
pub use transaction::Transaction;

use crate::log::Position;
use crate::storage::{
    CF_CHANGES, CF_DEAD_LETTERS, CF_INDEXES, CF_META, Durability, Reading, Seek, StorageError,
    Store, WriteSet, codec,
};

/// Longest view key, in bytes.
pub const MAX_KEY_BYTES: usize = 1024;

/// The name of a plugin generation's column family.
pub fn family_name(plugin: &str, generation: &str) -> String {
    format!("view.{plugin}.{generation}")
}

/// Access to every keyspace in the database.
#[derive(Clone)]
pub struct ViewStore {
    store: Store,
    /// Keyspaces with live handles, so that opening one twice shares its
    /// guard (and its writer lock) instead of making a second one.
    open: Arc<Mutex<HashMap<String, Weak<Family>>>>,
    /// Retired keyspaces whose last handle is gone, to be dropped.
    janitor: std::sync::mpsc::Sender<String>,
    /// Free disk below which view commits wait, leaving the room that is
    /// left to the event log.
    reserve: Arc<AtomicU64>,
    /// Paged reads in progress, each reading one snapshot.
    walks: snapshot::SharedWalks,
}

impl ViewStore {
    pub(crate) fn new(store: Store) -> Self {
        let (janitor, retired) = std::sync::mpsc::channel::<String>();
        let weak = store.downgrade();
        // Dropping a column family writes the manifest: keep it off the
        // threads that happen to release the last handle. The thread ends
        // when the store and every keyspace handle are gone; it does not
        // keep the database open.
        std::thread::Builder::new()
            .name("prism-janitor".into())
            .spawn(move || {
                for family in retired {
                    let Some(store) = weak.upgrade() else { return };
                    match drop_family(&store, &family) {
                        Ok(()) => tracing::info!(keyspace = %family, "dropped a retired keyspace"),
                        Err(e) => {
                            tracing::error!(keyspace = %family, error = %e, "could not drop a retired keyspace")
                        }
                    }
                }
            })
            .expect("janitor thread");
        ViewStore {
            store,
            open: Arc::default(),
            janitor,
            reserve: Arc::new(AtomicU64::new(0)),
            walks: Arc::default(),
        }
    }

    /// End every paged read in progress (at shutdown: a walk holds a
    /// snapshot, which keeps the database open).
    pub fn end_walks(&self) {
        self.walks.lock().expect("walks lock").clear();
    }

    /// Make view commits wait while the disk has less than `bytes` free,
    /// so that projections never take the space appends need.
    pub fn reserve_for_the_log(&self, bytes: u64) {
        self.reserve.store(bytes, Ordering::Relaxed);
    }

    /// The keyspace of a plugin generation, created empty if it is new.
    pub fn keyspace(&self, plugin: &str, generation: &str) -> Result<Keyspace, StorageError> {
        let name = family_name(plugin, generation);
        let mut open = self.open.lock().expect("open keyspaces");
        if let Some(family) = open.get(&name).and_then(Weak::upgrade) {
            return Ok(Keyspace {
                store: self.store.clone(),
                family,
            });
        }
        self.store.ensure_family(&name)?;
        let meta = self.store.fixed(CF_META);
        let largest = match self.store.get(&meta, largest_key(&name))? {
            Some(v) => codec::decode_u64(&v)? as usize,
            None => 0,
        };
        let family = Arc::new(Family {
            name: name.clone(),
            retired: AtomicBool::new(false),
            writer: Mutex::new(()),
            janitor: Some(self.janitor.clone()),
            largest: AtomicUsize::new(largest),
            size: Mutex::new(None),
            reserve: self.reserve.clone(),
            walks: self.walks.clone(),
        });
        open.retain(|_, f| f.strong_count() > 0);
        open.insert(name, Arc::downgrade(&family));
        Ok(Keyspace {
            store: self.store.clone(),
            family,
        })
    }

    /// A handle on a keyspace that is not created: reads find nothing. For
    /// validating a plugin before it gets a keyspace of its own.
    pub fn detached(&self, name: &str) -> Keyspace {
        Keyspace {
            store: self.store.clone(),
            family: Arc::new(Family {
                name: name.to_string(),
                retired: AtomicBool::new(false),
                writer: Mutex::new(()),
                janitor: None,
                largest: AtomicUsize::new(0),
                size: Mutex::new(None),
                reserve: self.reserve.clone(),
                walks: self.walks.clone(),
            }),
        }
    }

    /// Drop a keyspace nobody has open (at start: keyspaces no plugin owns).
    pub fn drop_unowned(&self, name: &str) -> Result<(), StorageError> {
        drop_family(&self.store, name)
    }

    /// Names of every view keyspace in the database.
    pub fn families(&self) -> Vec<String> {
        self.store
            .family_names()
            .into_iter()
            .filter(|n| n.starts_with("view."))
            .collect()
    }

    /// The checkpoint of a keyspace, without opening it.
    pub fn checkpoint_of(&self, family: &str) -> Result<Position, StorageError> {
        let meta = self.store.fixed(CF_META);
        match self.store.get(&meta, checkpoint_key(family))? {
            Some(v) => Ok(Position(codec::decode_u64(&v)?)),
            None => Ok(Position::ZERO),
        }
    }

    /// A small persistent record (plugin records), by key.
    pub fn meta_get(&self, key: &str) -> Result<Option<String>, StorageError> {
        let meta = self.store.fixed(CF_META);
        Ok(self
            .store
            .get(&meta, key.as_bytes())?
            .map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    /// Every meta record whose key starts with `prefix`, in key order.
    pub fn meta_scan(&self, prefix: &str) -> Result<Vec<(String, String)>, StorageError> {
        let meta = self.store.fixed(CF_META);
        let mut out = Vec::new();
        let iter = self
            .store
            .scan(&meta, Seek::From(prefix.as_bytes()), Reading::Cached);
        for item in iter {
            let (k, v) = item?;
            if !k.starts_with(prefix.as_bytes()) {
                break;
            }
            out.push((
                String::from_utf8_lossy(&k).into_owned(),
                String::from_utf8_lossy(&v).into_owned(),
            ));
        }
        Ok(out)
    }

    /// Store a record durably (synced): lifecycle records are few and must
    /// survive a power cut as well as a crash.
    pub fn meta_put(&self, key: &str, value: &str) -> Result<(), StorageError> {
        let meta = self.store.fixed(CF_META);
        self.store
            .put(&meta, key.as_bytes(), value.as_bytes(), Durability::Synced)
    }

    pub fn meta_delete(&self, key: &str) -> Result<(), StorageError> {
        let meta = self.store.fixed(CF_META);
        self.store.delete(&meta, key.as_bytes(), Durability::Synced)
    }
}

/// Drop a keyspace with its checkpoint, dead letters and change log.
fn drop_family(store: &Store, family: &str) -> Result<(), StorageError> {
    let mut writes = WriteSet::default();
    let meta = store.fixed(CF_META);
    writes.delete(&meta, checkpoint_key(family));
    writes.delete(&meta, changes_from_key(family));
    writes.delete(&meta, largest_key(family));
    let (start, end) = partitions::range(family);
    writes.delete_range(&meta, start, end);
    let (start, end) = (changes::start_key(family), changes::end_key(family));
    writes.delete_range(&store.fixed(CF_CHANGES), &start, &end);
    writes.delete_range(&store.fixed(CF_INDEXES), &start, &end);
    let (start, end) = dead_letter_range(family);
    writes.delete_range(&store.fixed(CF_DEAD_LETTERS), start, end);
    store.write(writes, Durability::Buffered)?;
    store.drop_family(family)
}

/// One column family and the guard that drops it once retired and unused.
struct Family {
    name: String,
    retired: AtomicBool,
    /// Held by the one projector that writes to this keyspace.
    writer: Mutex<()>,
    /// `None` for detached keyspaces, which have nothing to drop.
    janitor: Option<std::sync::mpsc::Sender<String>>,
    /// The largest document ever written, so that a reader can size its
    /// reads to a memory budget before it reads.
    largest: AtomicUsize,
    /// The last measurement of the bytes the keyspace takes, and when.
    size: Mutex<Option<(Instant, u64)>>,
    /// Free disk below which commits wait (the store's setting).
    reserve: Arc<AtomicU64>,
    /// The store's paged reads in progress. A walk holds a handle on its
    /// keyspace, so a retired keyspace is dropped once its walks expire.
    walks: snapshot::SharedWalks,
}

impl Drop for Family {
    fn drop(&mut self) {
        if self.retired.load(Ordering::Acquire)
            && let Some(janitor) = &self.janitor
        {
            let _ = janitor.send(std::mem::take(&mut self.name));
        }
    }
}

fn checkpoint_key(family: &str) -> Vec<u8> {
    format!("checkpoint/{family}").into_bytes()
}

/// The size of the largest document a keyspace has held.
fn largest_key(family: &str) -> Vec<u8> {
    format!("largest/{family}").into_bytes()
}

/// The position from which a keyspace's change log is complete.
fn changes_from_key(family: &str) -> Vec<u8> {
    format!("changes-from/{family}").into_bytes()
}

/// How often (in log positions) a recording keyspace trims its change log.
const TRIM_EVERY: u64 = 4096;

/// What a commit does with its changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeLog {
    /// Not recorded (the generation has not caught up yet).
    Off,
    /// Recorded, keeping those of the last `retention` log positions.
    Record { retention: u64 },
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

/// What storing a prepared commit changes in a keyspace's bookkeeping.
#[derive(Debug)]
pub struct Written {
    /// The largest document written, if larger than any before.
    largest: Option<usize>,
    /// Bytes written.
    bytes: u64,
}

/// One plugin generation's keys and checkpoint. Clones share one guard:
/// the keyspace lives as long as any of them.
#[derive(Clone)]

pub struct Keyspace {
    store: Store,
    /// The column family (looked up per operation because a RocksDB handle
    /// borrows the database) and its drop guard.
    family: Arc<Family>,
}

impl Keyspace {
    pub fn family(&self) -> &str {
        &self.family.name
    }

    /// Drop this keyspace once its last handle is gone.
    pub fn retire(&self) {
        self.family.retired.store(true, Ordering::Release);
    }

    /// The size of the largest document this keyspace has held (an upper
    /// bound of any document's size).
    pub fn largest_document(&self) -> usize {
        self.family.largest.load(Ordering::Relaxed)
    }

    /// About how many bytes the keyspace takes (on disk and in memory
    /// tables), measured at most once a second.
    pub fn stored_bytes(&self) -> u64 {
        const FRESH: Duration = Duration::from_secs(1);
        let mut size = self.family.size.lock().expect("size lock");
        if let Some((at, bytes)) = *size
            && at.elapsed() < FRESH
        {
            return bytes;
        }
        let Some(cf) = self.store.family(self.family()) else {
            return 0;
        };
        let bytes = self.store.stored_bytes(&cf);
        *size = Some((Instant::now(), bytes));
        bytes
    }

    /// The right to write to this keyspace: one projector at a time.
    pub fn writer(&self) -> MutexGuard<'_, ()> {
        self.family
            .writer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The document stored at `key`.
    pub fn get(&self, key: &str) -> Result<Option<String>, StorageError> {
        let Some(cf) = self.store.family(self.family()) else {
            return Ok(None);
        };
        Ok(self
            .store
            .get(&cf, key.as_bytes())?
            .map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    /// The documents at `keys`, in order, with one RocksDB multi-get.
    pub fn get_many(&self, keys: &[String]) -> Result<Vec<Option<String>>, StorageError> {
        let Some(cf) = self.store.family(self.family()) else {
            return Ok(vec![None; keys.len()]);
        };
        Ok(self
            .store
            .get_many(&cf, keys.iter().map(|k| k.as_bytes()))?
            .into_iter()
            .map(|v| v.map(|v| String::from_utf8_lossy(&v).into_owned()))
            .collect())
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
        let Some(cf) = self.store.family(self.family()) else {
            return Ok(());
        };
        let iter = self
            .store
            .scan(&cf, Seek::From(start.as_bytes()), Reading::Cached);
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

    /// Walk this keyspace and `other` side by side in key order, calling
    /// `visit(key, ours, theirs)` for every key either holds, until it
    /// returns false.
    pub fn compare(
        &self,
        other: &Keyspace,
        mut visit: impl FnMut(&str, Option<&str>, Option<&str>) -> bool,
    ) -> Result<(), StorageError> {
        let (Some(ours), Some(theirs)) = (
            self.store.family(self.family()),
            other.store.family(other.family()),
        ) else {
            return Ok(());
        };
        let mut a = self.store.scan(&ours, Seek::First, Reading::Cached);
        let mut b = other.store.scan(&theirs, Seek::First, Reading::Cached);
        let mut next_a = a.next().transpose()?;
        let mut next_b = b.next().transpose()?;
        loop {
            let go_on = match (&next_a, &next_b) {
                (None, None) => return Ok(()),
                (Some((ka, va)), Some((kb, vb))) if ka == kb => {
                    let go_on = visit(
                        &String::from_utf8_lossy(ka),
                        Some(&String::from_utf8_lossy(va)),
                        Some(&String::from_utf8_lossy(vb)),
                    );
                    next_a = a.next().transpose()?;
                    next_b = b.next().transpose()?;
                    go_on
                }
                (Some((ka, va)), Some((kb, _))) if ka < kb => {
                    let go_on = visit(
                        &String::from_utf8_lossy(ka),
                        Some(&String::from_utf8_lossy(va)),
                        None,
                    );
                    next_a = a.next().transpose()?;
                    go_on
                }
                (Some((ka, va)), None) => {
                    let go_on = visit(
                        &String::from_utf8_lossy(ka),
                        Some(&String::from_utf8_lossy(va)),
                        None,
                    );
                    next_a = a.next().transpose()?;
                    go_on
                }
                (_, Some((kb, vb))) => {
                    let go_on = visit(
                        &String::from_utf8_lossy(kb),
                        None,
                        Some(&String::from_utf8_lossy(vb)),
                    );
                    next_b = b.next().transpose()?;
                    go_on
                }
            };
            if !go_on {
                return Ok(());
            }
        }
    }

    /// The last log position whose effects this keyspace holds.
    pub fn checkpoint(&self) -> Result<Position, StorageError> {
        let meta = self.store.fixed(CF_META);
        match self.store.get(&meta, checkpoint_key(self.family()))? {
            Some(v) => Ok(Position(codec::decode_u64(&v)?)),
            None => Ok(Position::ZERO),
        }
    }

    /// The index writes `txn` makes to `indexes` (reading the documents it
    /// replaces), or the unique index it would break.
    pub fn plan_indexes(
        &self,
        indexes: &[index::IndexSpec],
        txn: &Transaction,
    ) -> Result<Result<index::IndexWrites, index::UniqueViolation>, StorageError> {
        if indexes.is_empty() || txn.is_empty() {
            return Ok(Ok(index::IndexWrites::default()));
        }
        let writes: Vec<(&String, &Option<String>)> = txn.writes().collect();
        let keys: Vec<String> = writes.iter().map(|(k, _)| (*k).clone()).collect();
        let old: std::collections::HashMap<String, String> = keys
            .iter()
            .zip(self.get_many(&keys)?)
            .filter_map(|(k, v)| Some((k.clone(), v?)))
            .collect();
        let entries = self.store.fixed(CF_INDEXES);
        let owner = |entry: &[u8]| {
            self.store
                .get(&entries, entry)
                .ok()
                .flatten()
                .map(|v| String::from_utf8_lossy(&v).into_owned())
        };
        Ok(index::plan(self.family(), indexes, &writes, &old, owner))
    }

    /// Commit a batch's writes, the dead letters it produced, its changes
    /// (when recording), its index entries and the new checkpoint atomically.
    pub fn commit_indexed(
        &self,
        txn: &Transaction,
        index_writes: &index::IndexWrites,
        dead_letters: &[(Position, String)],
        checkpoint: Position,
        change_log: ChangeLog,
    ) -> Result<(), StorageError> {
        self.write_batch(
            txn,
            Some(index_writes),
            dead_letters,
            checkpoint,
            change_log,
        )
    }

    /// Commit a batch's writes, the dead letters it produced, its changes
    /// (when recording) and the new checkpoint atomically. Not synced: a
    /// crash may lose the last commits, which the projector then replays
    /// from the log — the views stay exact.
    pub fn commit(
        &self,
        txn: &Transaction,
        dead_letters: &[(Position, String)],
        checkpoint: Position,
        change_log: ChangeLog,
    ) -> Result<(), StorageError> {
        self.write_batch(txn, None, dead_letters, checkpoint, change_log)
    }

    fn write_batch(
        &self,
        txn: &Transaction,
        index_writes: Option<&index::IndexWrites>,
        dead_letters: &[(Position, String)],
        checkpoint: Position,
        change_log: ChangeLog,
    ) -> Result<(), StorageError> {
        let (batch, written) = self.prepare_batch(
            txn,
            index_writes,
            dead_letters,
            checkpoint,
            change_log,
            None,
        )?;
        self.store.write(batch, Durability::Buffered)?;
        self.written(written);
        Ok(())
    }

    /// Everything [`Keyspace::commit_indexed`] writes, as a [`WriteSet`] for
    /// the log to store together with the events the batch emitted
    /// ([`crate::log::EventLog::commit_with_emitted`]); once it is stored,
    /// pass the [`Written`] to [`Keyspace::written`].
    pub fn prepare_commit(
        &self,
        txn: &Transaction,
        index_writes: &index::IndexWrites,
        dead_letters: &[(Position, String)],
        checkpoint: Position,
        change_log: ChangeLog,
    ) -> Result<(WriteSet, Written), StorageError> {
        self.prepare_batch(
            txn,
            Some(index_writes),
            dead_letters,
            checkpoint,
            change_log,
            None,
        )
    }

    /// A prepared commit was stored: update what is known of the keyspace.
    pub fn written(&self, written: Written) {
        if let Some(largest) = written.largest {
            self.family.largest.fetch_max(largest, Ordering::Relaxed);
        }
        // Until the next measurement, count what was just written (an
        // overwrite or delete may in fact free space: this errs high).
        if let Some((_, bytes)) = self.family.size.lock().expect("size lock").as_mut() {
            *bytes += written.bytes;
        }
    }

    /// Everything a commit writes. `checkpoint` is the keyspace's
    /// checkpoint, or with `partition` that partition's position.
    fn prepare_batch(
        &self,
        txn: &Transaction,
        index_writes: Option<&index::IndexWrites>,
        dead_letters: &[(Position, String)],
        checkpoint: Position,
        change_log: ChangeLog,
        partition: Option<partitions::Partition>,
    ) -> Result<(WriteSet, Written), StorageError> {
        let cf = self.store.family(self.family()).ok_or_else(|| {
            StorageError::Corrupt(format!("keyspace {} was dropped", self.family()))
        })?;
        let reserve = self.family.reserve.load(Ordering::Relaxed);
        if reserve > 0 && self.store.free_bytes().is_ok_and(|free| free < reserve) {
            return Err(StorageError::Full);
        }
        let meta = self.store.fixed(CF_META);
        let mut batch = WriteSet::default();
        let mut largest = 0;
        for (key, value) in txn.writes() {
            match value {
                Some(v) => {
                    largest = largest.max(v.len());
                    batch.put(&cf, key.as_bytes(), v.as_bytes())
                }
                None => batch.delete(&cf, key.as_bytes()),
            }
        }
        let grew = largest > self.largest_document();
        if grew {
            batch.put(
                &meta,
                largest_key(self.family()),
                codec::u64_key(largest as u64),
            );
        }
        if !dead_letters.is_empty() {
            let dead = self.store.fixed(CF_DEAD_LETTERS);
            for (position, record) in dead_letters {
                batch.put(
                    &dead,
                    dead_letter_key(self.family(), *position),
                    record.as_bytes(),
                );
            }
        }
        if let Some(index_writes) = index_writes.filter(|w| !w.entries.is_empty()) {
            let entries = self.store.fixed(CF_INDEXES);
            for (entry, doc) in &index_writes.entries {
                match doc {
                    Some(doc) => batch.put(&entries, entry, doc.as_bytes()),
                    None => batch.delete(&entries, entry),
                }
            }
        }
        if let ChangeLog::Record { retention } = change_log {
            let log = self.store.fixed(CF_CHANGES);
            for (index, (key, value)) in txn.writes().enumerate() {
                let id = ChangeId {
                    position: checkpoint,
                    index: index as u32,
                };
                batch.put(
                    &log,
                    changes::change_key(self.family(), id),
                    changes::encode(key, value.as_deref()),
                );
            }
            let previous = self.checkpoint()?;
            if checkpoint.0 / TRIM_EVERY > previous.0 / TRIM_EVERY && checkpoint.0 > retention {
                let keep_from = ChangeId {
                    position: Position(checkpoint.0 - retention),
                    index: 0,
                };
                batch.delete_range(
                    &log,
                    changes::start_key(self.family()),
                    changes::change_key(self.family(), keep_from),
                );
                // The log is now complete only after the last trimmed position.
                let complete_after = Position(keep_from.position.0 - 1);
                if self
                    .changes_from()?
                    .is_some_and(|from| from < complete_after)
                {
                    batch.put(
                        &meta,
                        changes_from_key(self.family()),
                        codec::u64_key(complete_after.0),
                    );
                }
            }
        }
        match partition {
            None => batch.put(
                &meta,
                checkpoint_key(self.family()),
                codec::u64_key(checkpoint.0),
            ),
            Some(part) => batch.put(
                &meta,
                partitions::key(self.family(), part),
                codec::u64_key(checkpoint.0),
            ),
        }
        let written = Written {
            largest: grew.then_some(largest),
            bytes: txn.bytes() as u64,
        };
        Ok((batch, written))
    }

    /// The position from which this keyspace's change log is complete;
    /// `None` while it does not record.
    pub fn changes_from(&self) -> Result<Option<Position>, StorageError> {
        let meta = self.store.fixed(CF_META);
        match self.store.get(&meta, changes_from_key(self.family()))? {
            Some(v) => Ok(Some(Position(codec::decode_u64(&v)?))),
            None => Ok(None),
        }
    }

    /// Record every change from the commit after `position` on.
    pub fn start_change_log(&self, position: Position) -> Result<(), StorageError> {
        let meta = self.store.fixed(CF_META);
        self.store.put(
            &meta,
            changes_from_key(self.family()),
            codec::u64_key(position.0),
            Durability::Buffered,
        )
    }

    /// The oldest change still kept: changes after this id can be replayed.
    /// `None` when the log does not record; `Some(after_position(p))` when
    /// it records but holds no change from before `p`.
    pub fn change_log_start(&self) -> Result<Option<ChangeId>, StorageError> {
        // Trimming moves the start marker with it (see `commit`): changes
        // are keyed by the position of the batch that made them, so a gap
        // before the first kept change says nothing about what is missing.
        Ok(self.changes_from()?.map(ChangeId::after_position))
    }

    /// Up to `limit` changes after `after`, oldest first.
    pub fn changes_after(
        &self,
        after: ChangeId,
        limit: usize,
    ) -> Result<Vec<StoredChange>, StorageError> {
        let log = self.store.fixed(CF_CHANGES);
        let start = match after.index.checked_add(1) {
            Some(index) => changes::change_key(self.family(), ChangeId { index, ..after }),
            None => changes::change_key(
                self.family(),
                ChangeId {
                    position: after.position.next(),
                    index: 0,
                },
            ),
        };
        let end = changes::end_key(self.family());
        let mut out = Vec::new();
        for item in self.store.scan(&log, Seek::From(&start), Reading::Cached) {
            let (k, v) = item?;
            if *k >= *end || out.len() >= limit {
                break;
            }
            let id = changes::id_of(self.family(), &k)
                .ok_or_else(|| StorageError::Corrupt("change log key".into()))?;
            out.push(
                changes::decode(id, &v)
                    .ok_or_else(|| StorageError::Corrupt("change log entry".into()))?,
            );
        }
        Ok(out)
    }

    /// Dead letters recorded for this keyspace, oldest first, as JSON texts.
    pub fn dead_letters(&self, limit: usize) -> Result<Vec<String>, StorageError> {
        let dead = self.store.fixed(CF_DEAD_LETTERS);
        let (start, end) = dead_letter_range(self.family());
        let mut out = Vec::new();
        let iter = self.store.scan(&dead, Seek::From(&start), Reading::Cached);
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
