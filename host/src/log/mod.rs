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

pub mod idempotency;
pub mod json;
#[cfg(test)]
mod json_corpus;
pub mod limits;
mod model;
pub mod replica;
mod space;
mod writer;

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, watch};

use crate::mailbox::Mailbox;
use uuid::Uuid;

pub use model::{
    AppendOutcome, EventRef, ExpectedVersion, MultiOutcome, NewEvent, Position, RecordedEvent,
    StreamEvents, StreamVersion,
};
pub use space::StorageHealth;

use crate::storage::codec::{self, StoredEvent};
use crate::storage::{
    CF_EVENTS, CF_STREAM_HEADS, CF_STREAMS, Reading, Seek, StorageError, Store, WriteSet,
};
use space::AppendState;

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
    /// The replicated log cannot take appends now (no leader, unreachable);
    /// retry with the same event ids.
    #[error("the replicated log is unavailable: {0}")]
    Unavailable(String),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// Why a projection that emits events does not run on the replicated log.
pub const EMITS_NEED_EMBEDDED_LOG: &str = "this projection emits events, which needs the embedded \
     log: on the JetStream log the emitted events and the view's commit cannot be stored in one \
     atomic write, so emitting is refused there rather than risk losing or repeating events";

/// One append request on its way to the writer thread.
struct AppendRequest {
    /// Runs of events of one stream each, in the order they go in the log.
    runs: Vec<StreamEvents>,
    /// What streams must look like before the append, checked together.
    expected: Vec<(String, ExpectedVersion)>,
    /// A projector's prepared commit to store in the same write as the
    /// events (see `writer`, which takes it out of the request).
    commit: Option<WriteSet>,
    /// The request came with a commit: its events are that projector's
    /// emissions, and those already in the log (by id) are left out
    /// instead of refusing the append.
    commit_of_emitted: bool,
    /// Outbox requests the projector's batch made, to store in the same
    /// write; those whose ids the outbox holds are left out (`outbox::store`).
    outbox: Vec<crate::outbox::NewEntry>,
    reply: oneshot::Sender<Result<Committed, LogError>>,
}

/// What a projector's commit through the log stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    /// The emitted events (`duplicate` when every one was in the log already).
    pub emitted: MultiOutcome,
    /// Outbox requests that were new; the others were in the outbox already.
    pub enqueued: u64,
}

/// The writer thread's mailbox: dropping the last handle closes it and
/// waits for the thread, so that the database is released when the log is.
struct WriterHandle(Mailbox<AppendRequest>);

impl WriterHandle {
    /// Hand a request to the writer thread and wait for its answer.
    async fn request(
        &self,
        runs: Vec<StreamEvents>,
        expected: Vec<(String, ExpectedVersion)>,
        commit: Option<WriteSet>,
        outbox: Vec<crate::outbox::NewEntry>,
    ) -> Result<Committed, LogError> {
        let (reply, answer) = oneshot::channel();
        let request = AppendRequest {
            runs,
            expected,
            commit_of_emitted: commit.is_some(),
            commit,
            outbox,
            reply,
        };
        self.0
            .sender()
            .send(request)
            .await
            .map_err(|_| LogError::ShuttingDown)?;
        answer.await.map_err(|_| LogError::ShuttingDown)?
    }
}

/// A handle to the event log; clone it freely.
#[derive(Clone)]
pub struct EventLog {
    store: Store,
    /// Where appends go: the single local writer (it exits when every
    /// handle is dropped), or the replicated log this node copies.
    appender: Appender,
    /// The position of the last committed event.
    head: watch::Receiver<Position>,
    /// Whether appends are stored or refused for lack of space (the writer's finding).
    appends: watch::Receiver<AppendState>,
    /// The outbox's last sequence number, as the writer last stored it.
    outbox: watch::Receiver<u64>,
    /// Free bytes below which appends are refused (0: no check).
    min_free_bytes: u64,
}

#[derive(Clone)]
enum Appender {
    Local(Arc<WriterHandle>),
    Replicated(Arc<replica::Replication>),
}

impl EventLog {
    /// Open the log kept in a replicated backend (NATS JetStream): appends
    /// go there, and this node copies the log into `store` from where its copy
    /// ends, for ever (see `replica`).
    pub(crate) fn open_replicated(
        store: Store,
        config: crate::cluster::jetstream::JetStreamConfig,
    ) -> Result<Self, LogError> {
        let head = last_position(&store)?;
        let (head_tx, head_rx) = watch::channel(head);
        let (_, appends_rx) = watch::channel(AppendState::Accepting);
        let (_, outbox_rx) = watch::channel(0);
        let replication = replica::Replication::start(config, store.clone(), head, head_tx);
        Ok(EventLog {
            store,
            appender: Appender::Replicated(replication),
            head: head_rx,
            appends: appends_rx,
            outbox: outbox_rx,
            min_free_bytes: 0,
        })
    }

    /// Most events one append may hold: 10,000 on the embedded log; on
    /// JetStream the servers' atomic batch limit.
    pub fn max_events_per_append(&self) -> usize {
        match &self.appender {
            Appender::Replicated(r) => r.max_batch(),
            Appender::Local(_) => limits::MAX_EVENTS_PER_APPEND,
        }
    }

    /// How this node's copy of a replicated log is doing; `None` for the
    /// embedded log.
    pub fn replica_state(&self) -> Option<replica::ReplicaState> {
        match &self.appender {
            Appender::Replicated(r) => Some(r.state(self.head())),
            Appender::Local(_) => None,
        }
    }

    /// The highest position this node knows the log to have: its head, or
    /// on a replicated log, what any append acknowledged here reached.
    pub fn known_head(&self) -> Position {
        match &self.appender {
            Appender::Replicated(r) => r.known_head().max(self.head()),
            Appender::Local(_) => self.head(),
        }
    }

    /// Wait up to `patience` for a replicated log to be connected (at start,
    /// so that the first appends need not wait); true once it is.
    pub async fn connected(&self, patience: std::time::Duration) -> bool {
        match &self.appender {
            Appender::Replicated(r) => r.log(patience).await.is_ok(),
            Appender::Local(_) => true,
        }
    }

    /// Whether this log's head may lag what other nodes appended.
    pub fn is_replicated(&self) -> bool {
        matches!(self.appender, Appender::Replicated(_))
    }

    /// Open the log in `store` and start its writer thread. Appends are refused
    /// while less than `min_free_bytes` is free on the database's disk.
    pub(crate) fn open(store: Store, min_free_bytes: u64) -> Result<Self, LogError> {
        let head = last_position(&store)?;
        // On a disk too full for this, the server does not start (nor would
        // RocksDB have opened on a completely full one).
        writer::mark_writable(&store)?;
        let (head_tx, head_rx) = watch::channel(head);
        let (appends_tx, appends_rx) = watch::channel(AppendState::Accepting);
        let (tx, rx) = mpsc::channel(8192);
        let (outbox_tx, outbox_rx) = watch::channel(crate::outbox::store::last_sequence(&store)?);
        let thread = writer::spawn(
            writer::Writer::new(store.clone(), head, min_free_bytes, appends_tx, outbox_tx),
            rx,
            head_tx,
        )?;
        Ok(EventLog {
            store,
            appender: Appender::Local(Arc::new(WriterHandle(Mailbox::new(tx, thread)))),
            head: head_rx,
            appends: appends_rx,
            outbox: outbox_rx,
            min_free_bytes,
        })
    }

    /// The last sequence number of the outbox's requests, which changes
    /// whenever a commit enqueues new ones (for the delivery task).
    pub fn outbox_enqueued(&self) -> watch::Receiver<u64> {
        self.outbox.clone()
    }

    /// Whether appends are stored, and if not why and until when.
    pub fn storage_health(&self) -> StorageHealth {
        let free = self.store.free_bytes().ok();
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
        let expected = vec![(stream.clone(), expected)];
        self.append_runs(vec![StreamEvents { stream, events }], expected)
            .await
            .map(MultiOutcome::into_single)
    }

    /// Append events of several streams atomically and durably, in the
    /// order given (so a history of interleaved streams keeps its order),
    /// with an expectation per stream checked before anything is written.
    /// Idempotent by client event ids like [`EventLog::append`].
    pub async fn append_runs(
        &self,
        runs: Vec<StreamEvents>,
        expected: Vec<(String, ExpectedVersion)>,
    ) -> Result<MultiOutcome, LogError> {
        limits::check_event_count(runs.iter().map(|r| r.events.len()).sum())?;
        let mut index = 0;
        for run in &runs {
            limits::check_stream_name(&run.stream)?;
            if run.events.is_empty() {
                return Err(LogError::Invalid(format!(
                    "no events for stream {:?}",
                    run.stream
                )));
            }
            for event in &run.events {
                limits::check_event_type(&event.event_type)?;
                limits::check_payload(index, event)?;
                index += 1;
            }
        }
        let streams: std::collections::HashSet<&str> =
            runs.iter().map(|r| r.stream.as_str()).collect();
        for (stream, _) in &expected {
            if !streams.contains(stream.as_str()) {
                return Err(LogError::Invalid(format!(
                    "an expected version for {stream:?}, which has no events in this append"
                )));
            }
        }
        let writer = match &self.appender {
            Appender::Local(writer) => writer,
            Appender::Replicated(replication) => {
                return self.append_replicated(replication, runs, expected).await;
            }
        };
        Ok(writer
            .request(runs, expected, None, Vec::new())
            .await?
            .emitted)
    }

    /// Store a projector's prepared commit (`batch`: its view writes and
    /// checkpoint), the events its batch emitted and the outbox requests it
    /// made in one synced write. Emitted events and outbox requests carry
    /// ids derived from their cause; those the log (or the outbox) already
    /// holds are left out, so committing the same batch again appends and
    /// enqueues nothing (`duplicate` when no event was new). Both are
    /// assumed checked when they were made (`projector::emit`, `outbox`).
    ///
    /// The replicated log cannot store events and a node's view commit in
    /// one write: there this is refused with [`LogError::Invalid`].
    pub async fn commit_with_reactions(
        &self,
        batch: WriteSet,
        runs: Vec<StreamEvents>,
        outbox: Vec<crate::outbox::NewEntry>,
    ) -> Result<Committed, LogError> {
        let writer = match &self.appender {
            Appender::Local(writer) => writer,
            Appender::Replicated(_) => {
                let refusal = if runs.is_empty() {
                    crate::outbox::OUTBOX_NEEDS_EMBEDDED_LOG
                } else {
                    EMITS_NEED_EMBEDDED_LOG
                };
                return Err(LogError::Invalid(refusal.into()));
            }
        };
        writer.request(runs, Vec::new(), Some(batch), outbox).await
    }

    /// An append through the replicated log, answered once this node's copy
    /// holds it (so a reader of this node sees it at once).
    async fn append_replicated(
        &self,
        replication: &replica::Replication,
        runs: Vec<StreamEvents>,
        expected: Vec<(String, ExpectedVersion)>,
    ) -> Result<MultiOutcome, LogError> {
        let outcome = replication
            .log(std::time::Duration::from_secs(5))
            .await?
            .append_runs(
                runs,
                expected,
                &replica::LocalCopy {
                    store: self.store.clone(),
                    head: self.head.clone(),
                },
            )
            .await
            .map_err(replicated_error)?;
        replication.saw(outcome.last_position);
        let mut head = self.head.clone();
        let copied = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            head.wait_for(|h| *h >= outcome.last_position),
        )
        .await;
        if copied.is_err() {
            tracing::warn!(
                position = %outcome.last_position,
                "an append is acknowledged by the replicated log but not yet in this node's copy"
            );
        }
        Ok(outcome)
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
            |_, _| true,
            |_, event| visit(event.expect("every type wanted").to_recorded()),
        )
    }

    /// Visit positions from `from` on, oldest first, until `visit` returns
    /// false. Events `wants` refuses (given their stream and type) are
    /// passed as `None` without being decoded, so skipping them costs almost
    /// nothing; the others are borrowed from the store, for the visitor to
    /// copy where it wants them.
    pub fn scan_where(
        &self,
        from: Position,
        wants: impl Fn(&str, &str) -> bool,
        mut visit: impl FnMut(Position, Option<EventRef<'_>>) -> bool,
    ) -> Result<(), LogError> {
        let events = self.store.fixed(CF_EVENTS);
        let mut iter = self.store.cursor(&events, Reading::Sequential);
        iter.seek(codec::u64_key(from.0.max(1)));
        while let Some((key, value)) = iter.entry() {
            let position = Position(codec::decode_u64(key)?);
            let (stream, event_type) = codec::stream_and_type(value)?;
            let event = if wants(stream, event_type) {
                Some(borrowed(position, codec::decode_event_ref(value)?))
            } else {
                None
            };
            if !visit(position, event) {
                return Ok(());
            }
            iter.next();
        }
        iter.status()?;
        Ok(())
    }

    /// The last version of `stream`, or `None` if it has no events.
    pub fn stream_version(&self, stream: &str) -> Result<Option<StreamVersion>, LogError> {
        Ok(stream_head(&self.store, stream)?)
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
        let events = self.store.fixed(CF_EVENTS);
        // No fixed readahead (unlike `scan_where`): its buffer would hold up
        // to a page's worth of events beside the response. RocksDB's own
        // readahead still grows on sequential reads.
        let mut iter = self.store.cursor(&events, Reading::PassingThrough);
        iter.seek(codec::u64_key(from.0.max(1)));
        while let Some((key, value)) = iter.entry() {
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
        let streams = self.store.fixed(CF_STREAMS);
        let events = self.store.fixed(CF_EVENTS);
        // Entries are runs keyed by their last version: the first one at or
        // after `from` holds `from` (see `codec::StreamRun`).
        let start = codec::stream_key(stream, from.0);
        let prefix_len = stream.len() + 1;
        let mut index = self.store.cursor(&streams, Reading::Cached);
        index.seek(&start);
        while let Some((key, value)) = index.entry() {
            if key.len() != prefix_len + 8 || key[..prefix_len] != start[..prefix_len] {
                break;
            }
            let last_version = codec::decode_u64(&key[prefix_len..])?;
            let run = codec::StreamRun::decode(last_version, value)?;
            for (_, position) in run.versions_from(last_version, from.0) {
                // One event at a time: a page of big events is never in
                // memory all at once.
                let bytes = self
                    .store
                    .get_reading(&events, codec::u64_key(position), Reading::PassingThrough)?
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
            }
            index.next();
        }
        index.status()?;
        Ok(true)
    }
}

/// A replicated log's "unavailable" as its own error, so that the API can
/// answer it as a retryable 503.
fn replicated_error(e: LogError) -> LogError {
    match crate::cluster::jetstream::as_unavailable(&e) {
        Some(why) => LogError::Unavailable(why.to_string()),
        None => e,
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

fn last_position(store: &Store) -> Result<Position, StorageError> {
    let events = store.fixed(CF_EVENTS);
    match store.scan(&events, Seek::Last, Reading::Cached).next() {
        Some(item) => Ok(Position(codec::decode_u64(&item?.0)?)),
        None => Ok(Position::ZERO),
    }
}

fn stream_head(store: &Store, stream: &str) -> Result<Option<StreamVersion>, StorageError> {
    let heads = store.fixed(CF_STREAM_HEADS);
    match store.get(&heads, stream.as_bytes())? {
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

    /// The stream index is hashed by stream name in memory: a stream is
    /// read whole and alone, also beside streams whose names it begins,
    /// with its entries partly in table files and partly in the memtable.
    #[tokio::test]
    async fn streams_read_alone_from_any_version_across_memtable_and_files() {
        let dir = tempfile::tempdir().unwrap();
        let db = crate::storage::open(dir.path()).unwrap();
        let log = EventLog::open(db.clone(), 0).unwrap();
        let names = ["a", "ab", "a-b", "b", "é", "a b"];
        for round in 0..3 {
            let runs = names
                .iter()
                .map(|name| StreamEvents {
                    stream: name.to_string(),
                    events: vec![noted()[0].clone(), noted()[0].clone()],
                })
                .collect();
            log.append_runs(runs, vec![]).await.unwrap();
            if round == 0 {
                db.flush(&db.fixed(CF_STREAMS)).unwrap();
            }
        }
        for name in names {
            for from in 0..7 {
                let events = log
                    .read_stream(name, StreamVersion(from), 100)
                    .unwrap()
                    .unwrap();
                let versions: Vec<u64> = events.iter().map(|e| e.stream_version.0).collect();
                assert_eq!(
                    versions,
                    (from..6).collect::<Vec<_>>(),
                    "{name} from {from}"
                );
                assert!(events.iter().all(|e| e.stream == name));
            }
        }
        assert_eq!(log.read_stream("a-", StreamVersion(0), 100).unwrap(), None);
    }

    /// A log written before the stream index kept runs has one entry per
    /// event (its position alone): it reads the same, beside runs appended
    /// since, from every version.
    #[tokio::test]
    async fn a_stream_indexed_event_by_event_reads_the_same_beside_runs() {
        let dir = tempfile::tempdir().unwrap();
        let db = crate::storage::open(dir.path()).unwrap();
        let log = EventLog::open(db.clone(), 0).unwrap();
        let three = || StreamEvents {
            stream: "s".into(),
            events: vec![noted()[0].clone(); 3],
        };
        log.append_runs(vec![three()], vec![]).await.unwrap();
        let streams = db.fixed(CF_STREAMS);
        let mut older = WriteSet::default();
        older.delete(&streams, codec::stream_key("s", 2));
        for version in 0..3 {
            older.put(
                &streams,
                codec::stream_key("s", version),
                codec::u64_key(version + 1),
            );
        }
        db.write(older, crate::storage::Durability::Synced).unwrap();
        drop(streams);
        log.append_runs(vec![three()], vec![]).await.unwrap();
        for from in 0..7 {
            let events = log
                .read_stream("s", StreamVersion(from), 100)
                .unwrap()
                .unwrap();
            let read: Vec<(u64, u64)> = events
                .iter()
                .map(|e| (e.stream_version.0, e.position.0))
                .collect();
            let expected: Vec<(u64, u64)> = (from..6).map(|v| (v, v + 1)).collect();
            assert_eq!(read, expected, "from {from}");
        }
        // A page that ends inside a run.
        let page = log.read_stream("s", StreamVersion(1), 3).unwrap().unwrap();
        let versions: Vec<u64> = page.iter().map(|e| e.stream_version.0).collect();
        assert_eq!(versions, [1, 2, 3]);
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

    fn with_ids(ids: &[Uuid]) -> Vec<NewEvent> {
        ids.iter()
            .map(|id| NewEvent {
                id: *id,
                client_id: true,
                event_type: "Noted".into(),
                data: "{}".into(),
                metadata: "{}".into(),
            })
            .collect()
    }

    #[tokio::test]
    async fn retries_inside_one_write_group_are_appended_once() {
        let dir = tempfile::tempdir().unwrap();
        let db = crate::storage::open(dir.path()).unwrap();
        let log = EventLog::open(db, 0).unwrap();
        let ids = [Uuid::new_v4(), Uuid::new_v4()];
        // Sent together, the writer takes them as one group: the first is
        // appended, every retry finds its ids earlier in the same group.
        let retries = (0..16).map(|_| log.append("s".into(), ExpectedVersion::Any, with_ids(&ids)));
        let outcomes = futures::future::join_all(retries).await;
        let outcomes: Vec<AppendOutcome> = outcomes.into_iter().map(Result::unwrap).collect();
        assert_eq!(outcomes.iter().filter(|o| !o.duplicate).count(), 1);
        for o in &outcomes {
            assert_eq!(
                (o.first_position, o.last_position),
                (Position(1), Position(2))
            );
            assert_eq!(o.stream_version, StreamVersion(1));
        }
        assert_eq!(log.head(), Position(2));
        // A partial overlap in the same group is refused, and appends nothing.
        let other = Uuid::new_v4();
        let mixed = log
            .append("s".into(), ExpectedVersion::Any, with_ids(&[ids[0], other]))
            .await;
        assert!(
            matches!(mixed, Err(LogError::IdempotencyConflict(_))),
            "{mixed:?}"
        );
        assert_eq!(log.head(), Position(2));
    }

    fn run(stream: &str, ids: &[Uuid]) -> StreamEvents {
        StreamEvents {
            stream: stream.into(),
            events: with_ids(ids),
        }
    }

    #[tokio::test]
    async fn an_append_across_streams_keeps_its_order_and_is_all_or_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let db = crate::storage::open(dir.path()).unwrap();
        let log = EventLog::open(db, 0).unwrap();
        let ids: Vec<Uuid> = (0..5).map(|_| Uuid::new_v4()).collect();
        // a, b, a, c: interleaved as they happened.
        let runs = vec![
            run("a", &ids[0..1]),
            run("b", &ids[1..2]),
            run("a", &ids[2..4]),
            run("c", &ids[4..5]),
        ];
        let outcome = log
            .append_runs(runs.clone(), vec![("a".into(), ExpectedVersion::NoStream)])
            .await
            .unwrap();
        assert_eq!(
            (outcome.first_position, outcome.last_position),
            (Position(1), Position(5))
        );
        assert_eq!(
            outcome.streams,
            vec![
                ("a".to_string(), StreamVersion(2)),
                ("b".to_string(), StreamVersion(0)),
                ("c".to_string(), StreamVersion(0)),
            ]
        );
        let order: Vec<(String, u64)> = log
            .read(Position(1), 10)
            .unwrap()
            .iter()
            .map(|e| (e.stream.clone(), e.stream_version.0))
            .collect();
        assert_eq!(
            order,
            [("a", 0), ("b", 0), ("a", 1), ("a", 2), ("c", 0)].map(|(s, v)| (s.to_string(), v))
        );
        // The same append again: the original outcome, nothing appended.
        let again = log.append_runs(runs, vec![]).await.unwrap();
        assert!(again.duplicate);
        assert_eq!(
            (again.first_position, again.last_position),
            (Position(1), Position(5))
        );
        assert_eq!(again.streams, outcome.streams);
        // One failed expectation refuses the whole append.
        let refused = log
            .append_runs(
                vec![run("d", &[Uuid::new_v4()]), run("a", &[Uuid::new_v4()])],
                vec![("a".into(), ExpectedVersion::Exact(StreamVersion(0)))],
            )
            .await;
        assert!(
            matches!(refused, Err(LogError::WrongExpectedVersion { .. })),
            "{refused:?}"
        );
        assert_eq!(log.head(), Position(5));
        assert_eq!(log.stream_version("d").unwrap(), None);
    }

    #[tokio::test]
    async fn emitted_events_commit_with_their_batch_and_are_appended_once() {
        let dir = tempfile::tempdir().unwrap();
        let db = crate::storage::open(dir.path()).unwrap();
        let log = EventLog::open(db.clone(), 0).unwrap();
        let ids: Vec<Uuid> = (0..3).map(|_| Uuid::new_v4()).collect();
        let commit = |marker: &str| {
            let mut batch = WriteSet::default();
            batch.put(
                &db.fixed(crate::storage::CF_META),
                format!("test/{marker}"),
                b"1",
            );
            batch
        };
        let first = log
            .commit_with_reactions(commit("a"), vec![run("out", &ids[..2])], Vec::new())
            .await
            .unwrap()
            .emitted;
        assert!(!first.duplicate);
        assert_eq!(
            (first.first_position, first.last_position),
            (Position(1), Position(2))
        );
        // Again, with one more: only the new one is appended, and the
        // carried commit is stored all the same.
        let again = log
            .commit_with_reactions(commit("b"), vec![run("out", &ids)], Vec::new())
            .await
            .unwrap()
            .emitted;
        assert_eq!(
            (again.first_position, again.last_position),
            (Position(3), Position(3))
        );
        let none = log
            .commit_with_reactions(commit("c"), vec![run("out", &ids)], Vec::new())
            .await
            .unwrap()
            .emitted;
        assert!(none.duplicate);
        assert_eq!(log.head(), Position(3));
        let stored: Vec<Uuid> = log
            .read(Position(1), 10)
            .unwrap()
            .iter()
            .map(|e| e.id)
            .collect();
        assert_eq!(stored, ids);
        for marker in ["a", "b", "c"] {
            assert!(
                db.get(&db.fixed(crate::storage::CF_META), format!("test/{marker}"))
                    .unwrap()
                    .is_some(),
                "{marker}"
            );
        }
    }

    #[tokio::test]
    async fn outbox_requests_commit_with_their_batch_and_are_enqueued_once() {
        let dir = tempfile::tempdir().unwrap();
        let db = crate::storage::open(dir.path()).unwrap();
        let log = EventLog::open(db.clone(), 0).unwrap();
        let mut enqueued = log.outbox_enqueued();
        let rules = crate::outbox::OutboxRules::new("p", &["t".into()]);
        let entry = |cause: &str, index| {
            let cause = crate::projector::emit::Cause {
                position: 1,
                id: cause.into(),
                metadata: "{}".into(),
            };
            let request = crate::outbox::Request {
                target: "t".into(),
                payload: "{}".into(),
                ..Default::default()
            };
            rules.entry(&cause, index, request).unwrap()
        };
        let first = log
            .commit_with_reactions(
                crate::storage::WriteSet::default(),
                Vec::new(),
                vec![entry("a", 0), entry("a", 1)],
            )
            .await
            .unwrap();
        assert_eq!(first.enqueued, 2);
        assert!(enqueued.has_changed().unwrap());
        assert_eq!(*enqueued.borrow_and_update(), 2);
        let again = log
            .commit_with_reactions(
                crate::storage::WriteSet::default(),
                Vec::new(),
                vec![entry("a", 1), entry("b", 0)],
            )
            .await
            .unwrap();
        assert_eq!(again.enqueued, 1);
        assert_eq!(*enqueued.borrow_and_update(), 3);
        let store = crate::outbox::store::OutboxStore::new(db.clone());
        let mut keys = Vec::new();
        store
            .scan_after(0, |e| {
                keys.push(e.cause_id);
                true
            })
            .unwrap();
        assert_eq!(keys, ["a", "a", "b"]);
    }
}
