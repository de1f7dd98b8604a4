//! The one embedded RocksDB database behind Prism, and the byte layouts in it.
//!
//! The event log and every view keyspace live in one database so that a
//! projector can commit a batch's view writes *and* its checkpoint in a single
//! atomic `WriteBatch`. This module owns opening the database and the names of
//! its fixed column families; the log (`crate::log`), the view store
//! (`crate::views`) and the outbox's store (`crate::outbox::store`) are the
//! only other modules that touch RocksDB types.
//! `space` measures free disk space and recognises RocksDB running out of it;
//! `files` writes whole files atomically.

pub(crate) mod codec;
pub mod files;
pub mod space;

use std::path::Path;
use std::sync::Arc;

use rocksdb::{ColumnFamilyDescriptor, DBWithThreadMode, MultiThreaded, Options};

/// The RocksDB handle shared by the log and the view store.
pub(crate) type Rocks = DBWithThreadMode<MultiThreaded>;

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
#[derive(Debug, thiserror::Error)]
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

/// Options for every column family: views and the log are both read by
/// ordered scans and point lookups, so one tuning serves both.
fn family_options() -> Options {
    let mut opts = Options::default();
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

/// Open (creating if needed) the database in `dir`, with every column family
/// that exists on disk — view keyspaces included — so that none is lost.
pub(crate) fn open(dir: &Path) -> Result<Arc<Rocks>, StorageError> {
    let mut opts = family_options();
    opts.create_if_missing(true);
    opts.create_missing_column_families(true);
    opts.increase_parallelism(2);
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
    let descriptors = names
        .into_iter()
        .map(|name| ColumnFamilyDescriptor::new(name, family_options()));
    let db = Rocks::open_cf_descriptors(&opts, dir, descriptors)?;
    Ok(Arc::new(db))
}

/// Create a column family if it does not exist yet. Refused while less
/// than [`space::RESUME_FREE_BYTES`] is free: creating one writes the
/// MANIFEST (whose failure would stop every write) and header lines to
/// RocksDB's info LOG (see `open`), and a new keyspace is about to be filled.
pub(crate) fn ensure_family(db: &Rocks, name: &str) -> Result<(), StorageError> {
    if db.cf_handle(name).is_none() {
        if space::free_bytes(db.path()).is_ok_and(|free| free < space::RESUME_FREE_BYTES) {
            return Err(StorageError::Full);
        }
        db.create_cf(name, &family_options())?;
    }
    Ok(())
}

/// The names of every column family of the database.
pub(crate) fn family_names(db: &Rocks) -> Vec<String> {
    Rocks::list_cf(&Options::default(), db.path()).unwrap_or_default()
}
