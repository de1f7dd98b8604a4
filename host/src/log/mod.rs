//! The append-only event log: the source of truth every view is built from.
//!
//! Appends go through one writer thread (`writer`) that assigns gapless global
//! positions in commit order and group-commits concurrent requests with one
//! synced WAL write. Reads go straight to RocksDB. Subscribers learn about new
//! events through a head-position `watch` channel instead of polling.

pub mod json;
#[cfg(test)]
mod json_corpus;
pub mod limits;
mod model;
mod writer;

use std::sync::Arc;

use rocksdb::{Direction, IteratorMode, ReadOptions};
use tokio::sync::{mpsc, oneshot, watch};
use uuid::Uuid;

pub use model::{
    AppendOutcome, EventRef, ExpectedVersion, NewEvent, Position, RecordedEvent, StreamVersion,
};

use crate::storage::codec::{self, StoredEvent};
use crate::storage::{CF_EVENTS, CF_STREAM_HEADS, CF_STREAMS, Rocks, StorageError};

/// Why an append or a read failed. An append that fails wrote nothing.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("{0}")]
    Invalid(String),
    /// An event's `data` or `metadata` is JSON the log does not take (see `json`).
    #[error("event {index}: {field} {problem}")]
    InvalidJson {
        /// The event's place in the append, from 0.
        index: usize,
        /// `data` or `metadata`.
        field: &'static str,
        problem: json::JsonProblem,
    },
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
        LogError::Storage(StorageError::Rocks(e))
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
}

impl EventLog {
    /// Open the log in `db` and start its writer thread.
    pub(crate) fn open(db: Arc<Rocks>) -> Result<Self, LogError> {
        let head = last_position(&db)?;
        let (head_tx, head_rx) = watch::channel(head);
        let (tx, rx) = mpsc::channel(8192);
        let thread = writer::spawn(db.clone(), rx, head_tx, head)?;
        Ok(EventLog {
            db,
            writer: Arc::new(WriterHandle {
                tx: Some(tx),
                thread: Some(thread),
            }),
            head: head_rx,
        })
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
        for (index, event) in events.iter().enumerate() {
            limits::check_event_type(&event.event_type)?;
            limits::check_payload(index, event)?;
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
        let mut out = Vec::new();
        let exists = self.visit_stream(stream, from, |event| {
            out.push(event.to_recorded());
            out.len() < limit
        })?;
        Ok(exists.then_some(out))
    }

    /// Visit events from position `from` on, oldest first, until `visit`
    /// returns false: [`EventLog::scan`] for readers that pass events on
    /// rather than keep them (the HTTP API). Each event is borrowed from the
    /// store, so its payload is never copied, and the blocks read do not
    /// enter the block cache, so a client reading through the log neither
    /// holds a copy of what it read nor evicts what the projectors keep hot.
    pub fn visit(
        &self,
        from: Position,
        mut visit: impl FnMut(EventRef<'_>) -> bool,
    ) -> Result<(), LogError> {
        let cf = self.db.cf_handle(CF_EVENTS).expect("events family");
        // No fixed readahead (unlike `scan_where`): its buffer would hold up
        // to a page's worth of events beside the response. RocksDB's own
        // readahead still grows on sequential reads.
        let mut opts = ReadOptions::default();
        opts.fill_cache(false);
        let mut iter = self.db.raw_iterator_cf_opt(&cf, opts);
        iter.seek(codec::u64_key(from.0.max(1)));
        while let (Some(key), Some(value)) = (iter.key(), iter.value()) {
            let position = Position(codec::decode_u64(key)?);
            if !visit(borrowed(position, codec::decode_event_ref(value)?)) {
                return Ok(());
            }
            iter.next();
        }
        iter.status()?;
        Ok(())
    }

    /// Visit the events of `stream` from version `from` on, oldest first,
    /// until `visit` returns false, borrowed as in [`EventLog::visit`];
    /// false if the stream does not exist.
    pub fn visit_stream(
        &self,
        stream: &str,
        from: StreamVersion,
        mut visit: impl FnMut(EventRef<'_>) -> bool,
    ) -> Result<bool, LogError> {
        if self.stream_version(stream)?.is_none() {
            return Ok(false);
        }
        let streams = self.db.cf_handle(CF_STREAMS).expect("streams family");
        let events = self.db.cf_handle(CF_EVENTS).expect("events family");
        let start = codec::stream_key(stream, from.0);
        let prefix_len = stream.len() + 1;
        let mut uncached = ReadOptions::default();
        uncached.fill_cache(false);
        let mut index = self.db.raw_iterator_cf(&streams);
        index.seek(&start);
        while let (Some(key), Some(value)) = (index.key(), index.value()) {
            if key.len() != prefix_len + 8 || key[..prefix_len] != start[..prefix_len] {
                break;
            }
            let position = codec::decode_u64(value)?;
            // One event at a time: a page of big events is never in memory
            // all at once.
            let bytes = self
                .db
                .get_pinned_cf_opt(&events, codec::u64_key(position), &uncached)?
                .ok_or_else(|| {
                    StorageError::Corrupt(format!(
                        "stream index points at missing position {position}"
                    ))
                })?;
            if !visit(borrowed(
                Position(position),
                codec::decode_event_ref(&bytes)?,
            )) {
                return Ok(true);
            }
            index.next();
        }
        index.status()?;
        Ok(true)
    }
}

fn describe_version(current: Option<StreamVersion>) -> String {
    match current {
        Some(v) => format!("at version {v}"),
        None => "absent (no events)".to_string(),
    }
}

fn recorded(position: Position, e: StoredEvent) -> RecordedEvent {
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

fn borrowed(position: Position, e: StoredEvent<&str>) -> EventRef<'_> {
    EventRef {
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

    fn new_event(data: &str) -> NewEvent {
        NewEvent {
            id: Uuid::new_v4(),
            client_id: false,
            event_type: "T".into(),
            data: data.into(),
            metadata: "{}".into(),
        }
    }

    #[tokio::test]
    async fn visits_borrow_events_in_order_and_stop_when_asked() {
        let dir = tempfile::tempdir().unwrap();
        let log = EventLog::open(crate::storage::open(dir.path()).unwrap()).unwrap();
        for (stream, data) in [("a", "1"), ("b", "2"), ("a", " [3] "), ("a", "4")] {
            log.append(stream.into(), ExpectedVersion::Any, vec![new_event(data)])
                .await
                .unwrap();
        }
        let mut seen = Vec::new();
        log.visit(Position(2), |e| {
            seen.push((e.position.0, e.stream.to_string(), e.data.to_string()));
            seen.len() < 2
        })
        .unwrap();
        assert_eq!(
            seen,
            [(2, "b".into(), "2".into()), (3, "a".into(), " [3] ".into())]
        );

        let mut versions = Vec::new();
        let exists = log
            .visit_stream("a", StreamVersion(1), |e| {
                versions.push((e.stream_version.0, e.position.0));
                true
            })
            .unwrap();
        assert!(exists);
        assert_eq!(versions, [(1, 3), (2, 4)]);
        assert!(!log.visit_stream("c", StreamVersion(0), |_| true).unwrap());
        let read = log.read_stream("a", StreamVersion(0), 2).unwrap().unwrap();
        assert_eq!(read.len(), 2);
        assert_eq!(read[1].data, " [3] ");
    }

    #[tokio::test]
    async fn an_append_with_json_no_reader_agrees_on_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let log = EventLog::open(crate::storage::open(dir.path()).unwrap()).unwrap();
        let error = log
            .append(
                "a".into(),
                ExpectedVersion::Any,
                vec![new_event("{}"), new_event(r#"{"x":1,"x":2}"#)],
            )
            .await
            .unwrap_err();
        assert!(
            matches!(&error, LogError::InvalidJson { index: 1, field: "data", problem } if problem.path == "$.x"),
            "{error}"
        );
        assert_eq!(log.head(), Position::ZERO);
    }
}
