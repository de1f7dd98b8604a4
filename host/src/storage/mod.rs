//! The one embedded RocksDB database behind Prism, and the byte layouts in it.
//!
//! The event log and every view keyspace live in one database so that a
//! projector can commit a batch's view writes *and* its checkpoint in a single
//! atomic write. This module owns opening the database and the names of its
//! fixed column families; `store` holds the operations the log (`crate::log`),
//! the view store (`crate::views`) and the outbox (`crate::outbox`) perform on it, so that no RocksDB type
//! is named outside this module. `space` measures free disk space and
//! recognises RocksDB running out of it; `files` writes whole files atomically.

pub(crate) mod codec;
pub mod files;
pub mod space;
mod store;

pub(crate) use store::{Durability, Reading, Seek, Snapshot, Store};
pub use store::{WeakStore, WriteSet};

use std::path::Path;

use rocksdb::{ColumnFamilyDescriptor, DBWithThreadMode, MultiThreaded, Options};

/// The RocksDB handle behind a [`Store`].
type Rocks = DBWithThreadMode<MultiThreaded>;

/// Events by global position (big-endian `u64` key, `codec` value).
pub(crate) const CF_EVENTS: &str = "events";
/// Stream index: `stream 0x00 version` → position.
pub(crate) const CF_STREAMS: &str = "streams";
/// Last version of every stream: `stream` → version.
pub(crate) const CF_STREAM_HEADS: &str = "stream_heads";
/// Event ids already in the log: 16-byte UUID → position, for idempotent retries.
pub(crate) const CF_EVENT_IDS: &str = "event_ids";
/// Projector checkpoints and plugin generations (see `crate::views`).
pub(crate) const CF_META: &str = "meta";
/// Dead letters of plugins whose poison policy is `skip`.
pub(crate) const CF_DEAD_LETTERS: &str = "dead_letters";
/// Each live keyspace's recent changes, for resumable change feeds.
pub(crate) const CF_CHANGES: &str = "changes";
/// Entries of the secondary indexes projections declare (see `views::index`).
pub(crate) const CF_INDEXES: &str = "indexes";
/// Side-effect requests of every plugin and their delivery (see `crate::outbox`).
pub(crate) const CF_OUTBOX: &str = "outbox";

const FIXED_FAMILIES: [&str; 9] = [
    CF_EVENTS,
    CF_STREAMS,
    CF_STREAM_HEADS,
    CF_EVENT_IDS,
    CF_META,
    CF_DEAD_LETTERS,
    CF_CHANGES,
    CF_INDEXES,
    CF_OUTBOX,
];

/// Size of every memtable. Big write buffers make replays and imports
/// cheaper (the WAL keeps them durable); it is also the free space RocksDB
/// waits for before it writes again after running out ([`space`]).
pub(crate) const WRITE_BUFFER_BYTES: usize = 64 << 20;

/// Why the database could not be used. The server cannot start without it.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StorageError {
    #[error("RocksDB: {0}")]
    Rocks(rocksdb::Error),
    /// The disk is full: the write was refused and stored nothing. The
    /// message names no file, so it can be shown to clients.
    #[error("the disk holding the database is full")]
    Full,
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

impl From<rocksdb::Error> for StorageError {
    fn from(e: rocksdb::Error) -> Self {
        if space::is_out_of_space(&e) {
            StorageError::Full
        } else {
            StorageError::Rocks(e)
        }
    }
}

/// Options for a column family: views and the log are both read by
/// ordered scans and point lookups, so one tuning serves both, except for
/// the log's indexes, whose keys an import writes scattered over their key
/// spaces (each event of an interleaved history is another stream), where
/// RocksDB's skiplist memtable spends most of an append's time finding
/// where each key goes:
/// - the event ids and the stream heads are only ever looked up by whole
///   key, so their memtables are hash tables (a bucket per key) with a
///   whole-key bloom filter that answers the usual miss (every new
///   event's id, every new stream) without searching;
/// - the stream index is read one stream at a time, so its memtable is a
///   hash of small skiplists, one per stream (the prefix extractor cuts a
///   key at the stream name's end), and a stream's next entries go at the
///   end of its own list. A seek in it only sees its stream: readers stop
///   at the end of the stream's keys (`EventLog::visit_stream`).
///
/// Hash memtables take no concurrent inserts, so the database inserts each
/// write group's batches one after the other
/// (`allow_concurrent_memtable_write` off).
fn family_options(name: &str) -> Options {
    let mut opts = Options::default();
    if name == CF_EVENT_IDS || name == CF_STREAM_HEADS {
        opts.set_memtable_prefix_bloom_ratio(0.1);
        opts.set_memtable_whole_key_filtering(true);
        opts.set_prefix_extractor(rocksdb::SliceTransform::create_noop());
        opts.set_memtable_factory(rocksdb::MemtableFactory::HashLinkList {
            bucket_count: 1 << 18,
        });
    }
    if name == CF_STREAMS {
        opts.set_prefix_extractor(rocksdb::SliceTransform::create(
            "prism.stream",
            stream_of_key,
            Some(|key: &[u8]| key.contains(&0)),
        ));
        opts.set_memtable_factory(rocksdb::MemtableFactory::HashSkipList {
            bucket_count: 1 << 18,
            height: 12,
            branching_factor: 4,
        });
    }
    opts.set_write_buffer_size(WRITE_BUFFER_BYTES);
    opts.set_compression_type(rocksdb::DBCompressionType::Lz4);
    // Point lookups (event ids, stream heads, view keys) mostly miss or hit
    // one file: bloom filters spare them reading the others.
    let mut table = rocksdb::BlockBasedOptions::default();
    table.set_bloom_filter(10.0, false);
    table.set_cache_index_and_filter_blocks(true);
    opts.set_block_based_table_factory(&table);
    opts
}

/// The stream part of a stream index key (`stream 0x00 version`).
fn stream_of_key(key: &[u8]) -> &[u8] {
    match key.iter().position(|b| *b == 0) {
        Some(end) => &key[..=end],
        None => key,
    }
}

/// Open (creating if needed) the database in `dir`, with every column family
/// that exists on disk — view keyspaces included — so that none is lost.
pub(crate) fn open(dir: &Path) -> Result<Store, StorageError> {
    let mut opts = family_options("default");
    opts.create_if_missing(true);
    opts.create_missing_column_families(true);
    opts.increase_parallelism(2);
    opts.set_allow_concurrent_memtable_write(false);
    // RocksDB's info LOG sits on the database's disk and keeps writing to it
    // after a write failed (one line every 5 s while the disk is full).
    // Debian's librocksdb is built with assertions, and the LOG writer
    // asserts that a file which failed is never written again: the next
    // line after a failed one aborts the process. At this level only header
    // lines are written, at open and when a column family is created
    // (which `ensure_family` refuses on a nearly full disk).
    opts.set_log_level(rocksdb::LogLevel::Fatal);
    let mut names: Vec<String> = Rocks::list_cf(&opts, dir).unwrap_or_default();
    for fixed in FIXED_FAMILIES {
        if !names.iter().any(|n| n == fixed) {
            names.push(fixed.to_string());
        }
    }
    let descriptors = names.into_iter().map(|name| {
        let opts = family_options(&name);
        ColumnFamilyDescriptor::new(name, opts)
    });
    let db = Rocks::open_cf_descriptors(&opts, dir, descriptors)?;
    Ok(Store::new(db))
}

/// Create a column family if it does not exist yet. Refused while less
/// than [`space::RESUME_FREE_BYTES`] is free: creating one writes the
/// MANIFEST (whose failure would stop every write) and header lines to
/// RocksDB's info LOG (see `open`), and a new keyspace is about to be filled.
fn ensure_family(db: &Rocks, name: &str) -> Result<(), StorageError> {
    if db.cf_handle(name).is_none() {
        if space::free_bytes(db.path()).is_ok_and(|free| free < space::RESUME_FREE_BYTES) {
            return Err(StorageError::Full);
        }
        db.create_cf(name, &family_options(name))?;
    }
    Ok(())
}

/// The names of every column family of the database.
fn family_names(db: &Rocks) -> Vec<String> {
    Rocks::list_cf(&Options::default(), db.path()).unwrap_or_default()
}
