//! The operations the log and the view store perform on the database.
//!
//! Nothing outside `storage` names a RocksDB type. The log (`crate::log`)
//! and the view store (`crate::views`) hold a [`Store`], name column
//! families by name (the fixed ones in [`super`], a keyspace's own), and
//! read and write bytes through these operations:
//! - point reads ([`Store::get`], [`Store::get_many`]) and ordered scans
//!   ([`Store::scan`], or a [`Cursor`] when the caller borrows each entry
//!   instead of owning it), each with a [`Reading`] that says how it uses
//!   the block cache;
//! - a [`WriteSet`] gathers puts and deletes across families, and
//!   [`Store::write`] stores it atomically, [`Durability::Synced`] or not;
//! - a [`Snapshot`] reads the whole database as it was at one commit.
//!
//! A [`Family`] is looked up once for a run of operations (a lookup takes
//! a lock and hashes the name; a group of appends makes millions of puts).

use std::ops::Deref;
use std::sync::Arc;

use rocksdb::{
    BoundColumnFamily, DBIteratorWithThreadMode, DBPinnableSlice, DBRawIteratorWithThreadMode,
    Direction, IteratorMode, ReadOptions, SnapshotWithThreadMode, WriteBatch, WriteOptions,
};
use self_cell::self_cell;

use super::{Rocks, StorageError, space};

/// The database. Clones share it; it closes when the last clone (or
/// snapshot) goes.
#[derive(Clone)]
pub(crate) struct Store {
    db: Arc<Open>,
}

/// The open database, and the signal that it closed: fields drop in order,
/// so the sender goes (waking [`WeakStore::closed`]) once RocksDB has
/// closed and released its lock.
struct Open {
    rocks: Rocks,
    closed: tokio::sync::watch::Sender<()>,
}

impl Deref for Open {
    type Target = Rocks;
    fn deref(&self) -> &Rocks {
        &self.rocks
    }
}

/// A column family of the store, for a run of operations.
pub(crate) struct Family<'s>(Arc<BoundColumnFamily<'s>>);

/// Whether a write is on disk before it returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Durability {
    /// Synced: survives a power cut.
    Synced,
    /// In the write-ahead log, not synced: survives a crash of the process,
    /// not of the machine.
    Buffered,
}

/// How a read uses RocksDB's caches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reading {
    /// Blocks read are cached, as for any lookup.
    Cached,
    /// A long sequential read: large readahead, blocks cached.
    Sequential,
    /// A read passing through (a client paging through the log): blocks
    /// read do not enter the cache, so it evicts nothing others keep hot.
    PassingThrough,
}

/// Where a scan starts and which way it goes.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Seek<'k> {
    /// From the first key on.
    First,
    /// From the last key back.
    Last,
    /// From the first key `>=` this one on.
    From(&'k [u8]),
    /// From the last key `<=` this one back.
    Back(&'k [u8]),
}

/// A value read in place, without a copy.
pub(crate) struct Value<'s>(DBPinnableSlice<'s>);

impl Deref for Value<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

/// An owned entry of a scan.
pub(crate) type Entry = (Box<[u8]>, Box<[u8]>);

/// Writes to store together ([`Store::write`]); opaque outside `storage`.
#[derive(Default)]
pub struct WriteSet(WriteBatch);

impl WriteSet {
    pub(crate) fn put(
        &mut self,
        family: &Family<'_>,
        key: impl AsRef<[u8]>,
        value: impl AsRef<[u8]>,
    ) {
        self.0.put_cf(&family.0, key, value);
    }

    pub(crate) fn delete(&mut self, family: &Family<'_>, key: impl AsRef<[u8]>) {
        self.0.delete_cf(&family.0, key);
    }

    /// Put `entries` in key order (for equal keys, the later one wins as
    /// with [`WriteSet::put`]): RocksDB inserts ordered keys into a memtable
    /// much faster than scattered ones.
    pub(crate) fn put_in_order<K: AsRef<[u8]>, V: AsRef<[u8]>>(
        &mut self,
        family: &Family<'_>,
        mut entries: Vec<(K, V)>,
    ) {
        entries.sort_by(|a, b| a.0.as_ref().cmp(b.0.as_ref()));
        for (key, value) in entries {
            self.put(family, key, value);
        }
    }

    /// Delete every key from `start` (inclusive) to `end` (exclusive).
    pub(crate) fn delete_range(
        &mut self,
        family: &Family<'_>,
        start: impl AsRef<[u8]>,
        end: impl AsRef<[u8]>,
    ) {
        self.0
            .delete_range_cf(&family.0, start.as_ref(), end.as_ref());
    }
}

fn write_options(durability: Durability) -> WriteOptions {
    let mut opts = WriteOptions::default();
    opts.set_sync(durability == Durability::Synced);
    opts
}

fn read_options(reading: Reading) -> ReadOptions {
    let mut opts = ReadOptions::default();
    match reading {
        Reading::Cached => {}
        Reading::Sequential => opts.set_readahead_size(2 << 20),
        Reading::PassingThrough => opts.fill_cache(false),
    }
    opts
}

/// The answers of a multi-get, as values or the first error.
fn values(
    answers: Vec<Result<Option<DBPinnableSlice<'_>>, rocksdb::Error>>,
) -> Result<Vec<Option<Value<'_>>>, StorageError> {
    answers.into_iter().map(|r| Ok(r?.map(Value))).collect()
}

fn iterator_mode(seek: Seek<'_>) -> IteratorMode<'_> {
    match seek {
        Seek::First => IteratorMode::Start,
        Seek::Last => IteratorMode::End,
        Seek::From(key) => IteratorMode::From(key, Direction::Forward),
        Seek::Back(key) => IteratorMode::From(key, Direction::Reverse),
    }
}

/// A handle that does not keep the database open ([`Store::downgrade`]).
#[derive(Clone)]
pub struct WeakStore {
    db: std::sync::Weak<Open>,
    closed: tokio::sync::watch::Receiver<()>,
}

impl WeakStore {
    /// The store, if it is still open.
    pub(crate) fn upgrade(&self) -> Option<Store> {
        self.db.upgrade().map(|db| Store { db })
    }

    /// Wait until the database has closed (its last handle dropped, its
    /// lock released), so that it can be opened again.
    pub async fn closed(mut self) {
        while self.closed.changed().await.is_ok() {}
    }
}

impl Store {
    pub(super) fn new(rocks: Rocks) -> Self {
        let (closed, _) = tokio::sync::watch::channel(());
        Store {
            db: Arc::new(Open { rocks, closed }),
        }
    }

    /// A handle for what must not keep the database open.
    pub(crate) fn downgrade(&self) -> WeakStore {
        WeakStore {
            db: Arc::downgrade(&self.db),
            closed: self.db.closed.subscribe(),
        }
    }

    /// The family `name`, if it exists.
    pub(crate) fn family(&self, name: &str) -> Option<Family<'_>> {
        self.db.cf_handle(name).map(Family)
    }

    /// One of the fixed families, which [`super::open`] always creates.
    pub(crate) fn fixed(&self, name: &'static str) -> Family<'_> {
        self.family(name)
            .unwrap_or_else(|| panic!("the fixed family {name} exists"))
    }

    /// Create the family `name` if it does not exist yet (see
    /// [`super::ensure_family`] for when that is refused).
    pub(crate) fn ensure_family(&self, name: &str) -> Result<(), StorageError> {
        super::ensure_family(&self.db, name)
    }

    /// Drop the family `name` and everything in it, if it exists.
    pub(crate) fn drop_family(&self, name: &str) -> Result<(), StorageError> {
        if self.db.cf_handle(name).is_some() {
            self.db.drop_cf(name)?;
        }
        Ok(())
    }

    /// The names of every family.
    pub(crate) fn family_names(&self) -> Vec<String> {
        super::family_names(&self.db)
    }

    /// About how many keys `family` holds (RocksDB's estimate).
    pub(crate) fn estimated_keys(&self, family: &Family<'_>) -> u64 {
        self.property(family, "rocksdb.estimate-num-keys")
    }

    /// About how many bytes `family` takes, on disk and in memtables.
    pub(crate) fn stored_bytes(&self, family: &Family<'_>) -> u64 {
        self.property(family, "rocksdb.total-sst-files-size")
            + self.property(family, "rocksdb.size-all-mem-tables")
    }

    /// An integer property of a family; 0 when RocksDB does not know it.
    fn property(&self, family: &Family<'_>, name: &str) -> u64 {
        self.db
            .property_int_value_cf(&family.0, name)
            .ok()
            .flatten()
            .unwrap_or(0)
    }

    pub(crate) fn get(
        &self,
        family: &Family<'_>,
        key: impl AsRef<[u8]>,
    ) -> Result<Option<Value<'_>>, StorageError> {
        self.get_reading(family, key, Reading::Cached)
    }

    pub(crate) fn get_reading(
        &self,
        family: &Family<'_>,
        key: impl AsRef<[u8]>,
        reading: Reading,
    ) -> Result<Option<Value<'_>>, StorageError> {
        Ok(self
            .db
            .get_pinned_cf_opt(&family.0, key, &read_options(reading))?
            .map(Value))
    }

    /// Write `family`'s memtable to a table file (so tests read through both).
    #[cfg(test)]
    pub(crate) fn flush(&self, family: &Family<'_>) -> Result<(), StorageError> {
        Ok(self.db.flush_cf(&family.0)?)
    }

    /// The values at `keys`, in order, in one batched lookup.
    pub(crate) fn get_many<'k>(
        &self,
        family: &Family<'_>,
        keys: impl IntoIterator<Item = &'k [u8]>,
    ) -> Result<Vec<Option<Value<'_>>>, StorageError> {
        values(self.db.batched_multi_get_cf(&family.0, keys, false))
    }

    /// Owned entries from `seek` on, in its direction.
    pub(crate) fn scan(&self, family: &Family<'_>, seek: Seek<'_>, reading: Reading) -> Scan<'_> {
        Scan(
            self.db
                .iterator_cf_opt(&family.0, read_options(reading), iterator_mode(seek)),
        )
    }

    /// A cursor over `family`, to borrow each entry in turn.
    pub(crate) fn cursor(&self, family: &Family<'_>, reading: Reading) -> Cursor<'_> {
        Cursor(
            self.db
                .raw_iterator_cf_opt(&family.0, read_options(reading)),
        )
    }

    /// Store `writes` atomically.
    pub(crate) fn write(
        &self,
        writes: WriteSet,
        durability: Durability,
    ) -> Result<(), StorageError> {
        Ok(self.db.write_opt(writes.0, &write_options(durability))?)
    }

    pub(crate) fn put(
        &self,
        family: &Family<'_>,
        key: impl AsRef<[u8]>,
        value: impl AsRef<[u8]>,
        durability: Durability,
    ) -> Result<(), StorageError> {
        Ok(self
            .db
            .put_cf_opt(&family.0, key, value, &write_options(durability))?)
    }

    pub(crate) fn delete(
        &self,
        family: &Family<'_>,
        key: impl AsRef<[u8]>,
        durability: Durability,
    ) -> Result<(), StorageError> {
        Ok(self
            .db
            .delete_cf_opt(&family.0, key, &write_options(durability))?)
    }

    /// Write one record to the default family, which holds nothing else.
    pub(crate) fn put_default(
        &self,
        key: impl AsRef<[u8]>,
        value: impl AsRef<[u8]>,
        durability: Durability,
    ) -> Result<(), StorageError> {
        Ok(self.db.put_opt(key, value, &write_options(durability))?)
    }

    /// Free bytes on the database's filesystem (see [`space::free_bytes`]).
    pub(crate) fn free_bytes(&self) -> std::io::Result<u64> {
        space::free_bytes(self.db.path())
    }

    /// The whole database as it is now, to read at one point.
    pub(crate) fn snapshot(&self) -> Snapshot {
        Snapshot(Pinned::new(self.db.clone(), |db| db.snapshot()))
    }
}

/// Owned entries of a scan, in order.
pub(crate) struct Scan<'s>(DBIteratorWithThreadMode<'s, Rocks>);

impl Iterator for Scan<'_> {
    type Item = Result<Entry, StorageError>;
    fn next(&mut self) -> Option<Self::Item> {
        self.0.next().map(|r| r.map_err(StorageError::from))
    }
}

/// A position in a family, moved by hand; its entry is borrowed in place.
pub(crate) struct Cursor<'s>(DBRawIteratorWithThreadMode<'s, Rocks>);

impl Cursor<'_> {
    /// Move to the first key `>= key`.
    pub(crate) fn seek(&mut self, key: impl AsRef<[u8]>) {
        self.0.seek(key);
    }

    /// The entry here; `None` past the end (or after an error, which
    /// [`Cursor::status`] tells).
    pub(crate) fn entry(&self) -> Option<(&[u8], &[u8])> {
        self.0.key().zip(self.0.value())
    }

    pub(crate) fn next(&mut self) {
        self.0.next();
    }

    /// Whether the walk ended because of an error.
    pub(crate) fn status(&self) -> Result<(), StorageError> {
        Ok(self.0.status()?)
    }
}

type Snap<'db> = SnapshotWithThreadMode<'db, Rocks>;

self_cell!(
    /// A RocksDB snapshot and the database handle it borrows.
    struct Pinned {
        owner: Arc<Open>,
        #[covariant]
        dependent: Snap,
    }
);

/// The database as it was at one commit.
pub(crate) struct Snapshot(Pinned);

impl Snapshot {
    fn options(&self) -> ReadOptions {
        let mut opts = ReadOptions::default();
        opts.set_snapshot(self.0.borrow_dependent());
        opts
    }

    fn db(&self) -> &Rocks {
        self.0.borrow_owner()
    }

    /// The family `name`, if it exists.
    pub(crate) fn family(&self, name: &str) -> Option<Family<'_>> {
        self.db().cf_handle(name).map(Family)
    }

    pub(crate) fn fixed(&self, name: &'static str) -> Family<'_> {
        self.family(name)
            .unwrap_or_else(|| panic!("the fixed family {name} exists"))
    }

    pub(crate) fn get(
        &self,
        family: &Family<'_>,
        key: impl AsRef<[u8]>,
    ) -> Result<Option<Value<'_>>, StorageError> {
        Ok(self
            .db()
            .get_pinned_cf_opt(&family.0, key, &self.options())?
            .map(Value))
    }

    pub(crate) fn get_many<'k>(
        &self,
        family: &Family<'_>,
        keys: impl IntoIterator<Item = &'k [u8]>,
    ) -> Result<Vec<Option<Value<'_>>>, StorageError> {
        values(
            self.db()
                .batched_multi_get_cf_opt(&family.0, keys, false, &self.options()),
        )
    }

    pub(crate) fn scan(&self, family: &Family<'_>, seek: Seek<'_>) -> Scan<'_> {
        Scan(
            self.db()
                .iterator_cf_opt(&family.0, self.options(), iterator_mode(seek)),
        )
    }
}
