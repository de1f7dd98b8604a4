//! The append-only event log: the source of truth every view is built from.
//!
//! Appends go through one writer thread (`writer`) that assigns gapless global
//! positions in commit order and group-commits concurrent requests with one
//! synced WAL write. Reads go straight to RocksDB. Subscribers learn about new
//! events through a head-position `watch` channel instead of polling.
//!
//! # A full disk
//! While the database's disk is short of space, appends are refused with
//! [`StorageError::Full`] and store nothing; reads go on; appends come back
//! by themselves, with no restart. Two layers:
//! - Before committing a group the writer measures the free space and
//!   refuses the group if less than `min_free_mb` is free. So appends never
//!   make RocksDB run out, views keep room to catch up, and appends resume
//!   with the first group that finds enough space again.
//! - If RocksDB runs out anyway (the minimum is 0, views used the room up,
//!   or another program filled the disk), it stops taking writes and
//!   resumes by itself once 64 MiB are free (`storage::space`). Meanwhile
//!   every group fails fast with the same error and stores nothing.
//!
//! Either way a failed group leaves the writer as it was: `next` stays at
//! the group's first position, so positions stay gapless, and nothing else
//! of the group is kept. While refusing, the writer wakes every second to
//! probe (free space, then a tiny synced write), so `/healthz` turns back
//! to `ok` even when no append comes to find out. That write, also made
//! on opening, leaves a record in a memtable: RocksDB 7.8 leaves the failed
//! write-ahead log behind when it resumes only if some memtable has
//! something to flush (`writer::mark_writable`), and RocksDB's info LOG is
//! kept quiet for a similar reason (`storage::open`).
//!
//! What is left to chance: if the write that finds the disk full is the
//! first one since RocksDB resumed or flushed every memtable on its own,
//! the next write after the following resume aborts the process (the
//! assertion `writer::mark_writable` explains); acknowledged events survive
//! that like any crash. And as with any failed `fsync`: if only the sync of
//! a completely written WAL record failed and the process dies before
//! RocksDB resumes, replaying the WAL brings back a group whose append was
//! answered with an error; a client that retries with the same event ids
//! gets the original outcome, not a second copy.

pub mod limits;
mod model;
mod space;
mod writer;

use std::sync::Arc;

use rocksdb::{Direction, IteratorMode, ReadOptions};
use tokio::sync::{mpsc, oneshot, watch};
use uuid::Uuid;

pub use model::{AppendOutcome, ExpectedVersion, NewEvent, Position, RecordedEvent, StreamVersion};
pub use space::StorageHealth;

use crate::storage::codec::{self, StoredEvent};
use crate::storage::{CF_EVENTS, CF_STREAM_HEADS, CF_STREAMS, Rocks, StorageError};
use space::AppendState;

/// Why an append or a read failed. An append that fails wrote nothing.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("{0}")]
    Invalid(String),
    #[error("stream {stream} is {}, expected {expected}", describe_version(*current))]
    WrongExpectedVersion {
        stream: String,
        expected: ExpectedVersion,
        current: Option<StreamVersion>,
    },
    #[error("{0}")]
    IdempotencyConflict(String),
    #[error("starting the log writer: {0}")]
    Io(#[from] std::io::Error),
    #[error("the log is shutting down")]
    ShuttingDown,
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl From<rocksdb::Error> for LogError {
    fn from(e: rocksdb::Error) -> Self {
        LogError::Storage(StorageError::from(e))
    }
}

/// One append request on its way to the writer thread.
struct AppendRequest {
    stream: String,
    expected: ExpectedVersion,
    events: Vec<NewEvent>,
    reply: oneshot::Sender<Result<AppendOutcome, LogError>>,
}

/// The writer thread's mailbox. Dropping the last handle closes it and
/// waits for the thread, so that the database is released when the log is.
struct WriterHandle {
    tx: Option<mpsc::Sender<AppendRequest>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for WriterHandle {
    fn drop(&mut self) {
        self.tx.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A handle to the event log; clone it freely.
#[derive(Clone)]
pub struct EventLog {
    db: Arc<Rocks>,
    /// Requests to the single writer; it exits when every handle is dropped.
    writer: Arc<WriterHandle>,
    /// The position of the last committed event.
    head: watch::Receiver<Position>,
    /// Whether appends are stored or refused for lack of space (the writer's finding).
    appends: watch::Receiver<AppendState>,
    /// Free bytes below which appends are refused (0: no check).
    min_free_bytes: u64,
}

impl EventLog {
    /// Open the log in `db` and start its writer thread. Appends are refused
    /// while less than `min_free_bytes` is free on the database's disk.
    pub(crate) fn open(db: Arc<Rocks>, min_free_bytes: u64) -> Result<Self, LogError> {
        let head = last_position(&db)?;
        let mut sync = rocksdb::WriteOptions::default();
        sync.set_sync(true);
        // On a disk too full for this, the server does not start (nor would
        // RocksDB have opened on a completely full one).
        writer::mark_writable(&db, &sync)?;
        let (head_tx, head_rx) = watch::channel(head);
        let (appends_tx, appends_rx) = watch::channel(AppendState::Accepting);
        let (tx, rx) = mpsc::channel(8192);
        let thread = writer::spawn(
            writer::Writer::new(db.clone(), head, min_free_bytes, appends_tx),
            rx,
            head_tx,
        )?;
        Ok(EventLog {
            db,
            writer: Arc::new(WriterHandle {
                tx: Some(tx),
                thread: Some(thread),
            }),
            head: head_rx,
            appends: appends_rx,
            min_free_bytes,
        })
    }

    /// Whether appends are stored, and if not why and until when.
    pub fn storage_health(&self) -> StorageHealth {
        let free = crate::storage::space::free_bytes(self.db.path()).ok();
        StorageHealth::new(*self.appends.borrow(), free, self.min_free_bytes)
    }

    /// Append `events` to `stream` atomically and durably (acknowledged only
    /// after the WAL is synced). Events whose ids are all already in the log
    /// are not appended again: the original outcome is returned.
    pub async fn append(
        &self,
        stream: String,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendOutcome, LogError> {
        limits::check_stream_name(&stream)?;
        limits::check_event_count(events.len())?;
        for event in &events {
            limits::check_event_type(&event.event_type)?;
        }
        let (reply, answer) = oneshot::channel();
        let request = AppendRequest {
            stream,
            expected,
            events,
            reply,
        };
        self.writer
            .tx
            .as_ref()
            .expect("open until dropped")
            .send(request)
            .await
            .map_err(|_| LogError::ShuttingDown)?;
        answer.await.map_err(|_| LogError::ShuttingDown)?
    }

    /// The position of the last committed event (0 for an empty log).
    pub fn head(&self) -> Position {
        *self.head.borrow()
    }

    /// A receiver that changes whenever new events are committed.
    pub fn subscribe(&self) -> watch::Receiver<Position> {
        self.head.clone()
    }

    /// Up to `limit` events starting at position `from`, oldest first.
    pub fn read(&self, from: Position, limit: usize) -> Result<Vec<RecordedEvent>, LogError> {
        let mut out = Vec::with_capacity(limit.min(4096));
        self.scan(from, |event| {
            out.push(event);
            out.len() < limit
        })?;
        Ok(out)
    }

    /// Visit events from position `from` on, oldest first, until `visit` returns false.
    pub fn scan(
        &self,
        from: Position,
        mut visit: impl FnMut(RecordedEvent) -> bool,
    ) -> Result<(), LogError> {
        self.scan_where(
            from,
            |_| true,
            |_, event| visit(event.expect("every type wanted")),
        )
    }

    /// Visit positions from `from` on, oldest first, until `visit` returns
    /// false. Events whose type `wants` refuses are passed as `None` without
    /// being decoded, so skipping them costs almost nothing.
    pub fn scan_where(
        &self,
        from: Position,
        wants: impl Fn(&str) -> bool,
        mut visit: impl FnMut(Position, Option<RecordedEvent>) -> bool,
    ) -> Result<(), LogError> {
        let cf = self.db.cf_handle(CF_EVENTS).expect("events family");
        let start = codec::u64_key(from.0.max(1));
        let mut opts = ReadOptions::default();
        opts.set_readahead_size(2 << 20);
        let iter =
            self.db
                .iterator_cf_opt(&cf, opts, IteratorMode::From(&start, Direction::Forward));
        for item in iter {
            let (key, value) = item?;
            let position = Position(codec::decode_u64(&key)?);
            let event = if wants(codec::event_type(&value)?) {
                Some(recorded(position, codec::decode_event(&value)?))
            } else {
                None
            };
            if !visit(position, event) {
                break;
            }
        }
        Ok(())
    }

    /// The last version of `stream`, or `None` if it has no events.
    pub fn stream_version(&self, stream: &str) -> Result<Option<StreamVersion>, LogError> {
        Ok(stream_head(&self.db, stream)?)
    }

    /// Up to `limit` events of `stream` from version `from`, oldest first;
    /// `None` if the stream does not exist.
    pub fn read_stream(
        &self,
        stream: &str,
        from: StreamVersion,
        limit: usize,
    ) -> Result<Option<Vec<RecordedEvent>>, LogError> {
        if self.stream_version(stream)?.is_none() {
            return Ok(None);
        }
        let streams = self.db.cf_handle(CF_STREAMS).expect("streams family");
        let start = codec::stream_key(stream, from.0);
        let prefix_len = stream.len() + 1;
        let mut positions = Vec::new();
        let iter = self
            .db
            .iterator_cf(&streams, IteratorMode::From(&start, Direction::Forward));
        for item in iter {
            let (key, value) = item?;
            if key.len() != prefix_len + 8 || key[..prefix_len] != start[..prefix_len] {
                break;
            }
            positions.push(codec::decode_u64(&value)?);
            if positions.len() >= limit {
                break;
            }
        }
        let events = self.db.cf_handle(CF_EVENTS).expect("events family");
        let keys: Vec<_> = positions
            .iter()
            .map(|p| (&events, codec::u64_key(*p)))
            .collect();
        let mut out = Vec::with_capacity(positions.len());
        for (position, value) in positions.iter().zip(self.db.multi_get_cf(keys)) {
            let value = value?.ok_or_else(|| {
                StorageError::Corrupt(format!(
                    "stream index points at missing position {position}"
                ))
            })?;
            out.push(recorded(Position(*position), codec::decode_event(&value)?));
        }
        Ok(Some(out))
    }
}

fn describe_version(current: Option<StreamVersion>) -> String {
    match current {
        Some(v) => format!("at version {v}"),
        None => "absent (no events)".to_string(),
    }
}

pub(crate) fn recorded(position: Position, e: StoredEvent) -> RecordedEvent {
    RecordedEvent {
        position,
        stream: e.stream,
        stream_version: StreamVersion(e.stream_version),
        id: Uuid::from_bytes(e.id),
        event_type: e.event_type,
        data: e.data,
        metadata: e.metadata,
        recorded_at_ms: e.recorded_at_ms,
    }
}

fn last_position(db: &Rocks) -> Result<Position, StorageError> {
    let cf = db.cf_handle(CF_EVENTS).expect("events family");
    match db.iterator_cf(&cf, IteratorMode::End).next() {
        Some(item) => Ok(Position(codec::decode_u64(&item?.0)?)),
        None => Ok(Position::ZERO),
    }
}

fn stream_head(db: &Rocks, stream: &str) -> Result<Option<StreamVersion>, StorageError> {
    let cf = db.cf_handle(CF_STREAM_HEADS).expect("stream heads family");
    match db.get_pinned_cf(&cf, stream.as_bytes())? {
        Some(v) => Ok(Some(StreamVersion(codec::decode_u64(&v)?))),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noted() -> Vec<NewEvent> {
        vec![NewEvent {
            id: Uuid::new_v4(),
            client_id: false,
            event_type: "Noted".into(),
            data: "{}".into(),
            metadata: "{}".into(),
        }]
    }

    #[tokio::test]
    async fn appends_refused_for_lack_of_space_store_nothing_and_positions_stay_gapless() {
        let dir = tempfile::tempdir().unwrap();
        let db = crate::storage::open(dir.path()).unwrap();
        let log = EventLog::open(db.clone(), 0).unwrap();
        log.append("a".into(), ExpectedVersion::Any, noted())
            .await
            .unwrap();
        drop(log);

        // No disk has this much free: every append is refused.
        let log = EventLog::open(db.clone(), u64::MAX).unwrap();
        for _ in 0..3 {
            let refused = log.append("a".into(), ExpectedVersion::Any, noted()).await;
            assert!(
                matches!(refused, Err(LogError::Storage(StorageError::Full))),
                "{refused:?}"
            );
        }
        assert_eq!(log.head(), Position(1));
        assert_eq!(log.read(Position(1), 10).unwrap().len(), 1);
        assert_eq!(log.stream_version("a").unwrap(), Some(StreamVersion(0)));
        let health = log.storage_health();
        assert!(health.is_full());
        assert_eq!(health.resumes_at_free_bytes, Some(u64::MAX));
        drop(log);

        let log = EventLog::open(db, 0).unwrap();
        let outcome = log
            .append("a".into(), ExpectedVersion::Any, noted())
            .await
            .unwrap();
        assert_eq!(outcome.first_position, Position(2));
        assert_eq!(outcome.stream_version, StreamVersion(1));
        assert!(!log.storage_health().is_full());
    }
}
