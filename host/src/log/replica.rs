//! The log on a replicated backend: appends go to NATS JetStream, which
//! gives every event its position; every node copies the log, in order,
//! into its own RocksDB, from which its projectors and readers read at the
//! embedded log's speed.
//!
//! One task follows the JetStream stream from the local head on and hands
//! what it receives to a second, which stores it in batches (the event's
//! encoded record as it came, its stream-index entry, its id, its stream's
//! head) and moves the local head, waking projectors like a local append
//! does. A node that was down, or joins late, catches up the same way. The
//! local copy is not synced: after a crash it is fetched again from the
//! replicated log. An append is answered once this node's copy holds it,
//! so a client reads its own append from the node it appended through; on
//! other nodes `min_position` waits for their copy to get there.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{mpsc, watch};

use super::idempotency::{self, IdEntry};
use super::{LogError, Position, StreamVersion};
use crate::cluster::jetstream::{self, JetStreamConfig, JetStreamLog};
use crate::storage::codec;
use crate::storage::{
    CF_EVENT_IDS, CF_EVENTS, CF_STREAM_HEADS, CF_STREAMS, Durability, StorageError, Store, WriteSet,
};

/// Events stored locally in one write.
const INGEST_BATCH: usize = 2048;

/// How this node's copy of the replicated log is doing.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ReplicaState {
    /// `following` (up to date with what the backend sent), or `unavailable`
    /// (the backend cannot be reached; reads go on from the local copy).
    pub state: &'static str,
    /// Why it is unavailable.
    pub error: Option<String>,
    /// The highest position this node knows the log has.
    pub known_head: Position,
}

/// The replicated log's append side and this node's follower of it.
pub(crate) struct Replication {
    /// Set once connected: a node whose cluster is unreachable at start
    /// serves reads from its copy and keeps trying.
    js: Arc<tokio::sync::OnceCell<JetStreamLog>>,
    /// The highest position known to exist (acknowledged here or copied).
    known: AtomicU64,
    state: watch::Sender<ReplicaState>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// Most events one append may hold (the servers' atomic batch limit).
    max_batch: usize,
}

impl Drop for Replication {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Replication {
    /// Most events one append may hold.
    pub(crate) fn max_batch(&self) -> usize {
        self.max_batch
    }

    /// Connect (retrying until the cluster answers) and copy the log from
    /// after `head` into `local`, moving `head_tx`.
    pub(crate) fn start(
        config: JetStreamConfig,
        local: Store,
        head: Position,
        head_tx: watch::Sender<Position>,
    ) -> Arc<Replication> {
        let (state, _) = watch::channel(ReplicaState {
            state: "connecting",
            error: None,
            known_head: head,
        });
        let (events_tx, events_rx) = mpsc::channel::<(Position, Bytes)>(INGEST_BATCH * 4);
        let mut replication = Replication {
            js: Arc::new(tokio::sync::OnceCell::new()),
            known: AtomicU64::new(head.0),
            state,
            tasks: Vec::new(),
            max_batch: config.max_batch,
        };
        let states = replication.state.clone();
        let cell = replication.js.clone();
        replication.tasks.push(tokio::spawn(async move {
            let js = connect(config, &states).await;
            let _ = cell.set(js.clone());
            states.send_modify(|s| {
                s.state = "following";
                s.error = None;
            });
            pull(js, head.next(), events_tx, states).await;
        }));
        replication
            .tasks
            .push(tokio::spawn(store(local, events_rx, head_tx)));
        Arc::new(replication)
    }

    /// The replicated log, once connected: waits up to `patience` for a
    /// node that is still connecting.
    pub(crate) async fn log(&self, patience: Duration) -> Result<&JetStreamLog, LogError> {
        if let Some(js) = self.js.get() {
            return Ok(js);
        }
        let mut state = self.state.subscribe();
        let _ = tokio::time::timeout(patience, state.wait_for(|s| s.state == "following")).await;
        self.js.get().ok_or_else(|| {
            LogError::Unavailable(
                self.state
                    .borrow()
                    .error
                    .clone()
                    .unwrap_or_else(|| "not connected to the JetStream cluster yet".into()),
            )
        })
    }

    pub(crate) fn saw(&self, position: Position) {
        self.known.fetch_max(position.0, Ordering::Relaxed);
    }

    pub(crate) fn known_head(&self) -> Position {
        Position(self.known.load(Ordering::Relaxed))
    }

    pub(crate) fn state(&self, local_head: Position) -> ReplicaState {
        self.saw(local_head);
        ReplicaState {
            known_head: self.known_head(),
            ..self.state.borrow().clone()
        }
    }
}

/// This node's copy of the log, where a replicated append looks up its
/// event ids ([`jetstream::LogCopy`]).
pub(crate) struct LocalCopy {
    pub(crate) store: Store,
    /// The copy's head.
    pub(crate) head: watch::Receiver<Position>,
}

impl jetstream::LogCopy for LocalCopy {
    async fn heads(&self, streams: &[String]) -> Result<Vec<Option<jetstream::Head>>, LogError> {
        let store = self.store.clone();
        let streams = streams.to_vec();
        off_thread(move || local_heads(&store, &streams)).await
    }

    async fn find(
        &self,
        ids: Vec<uuid::Uuid>,
        head: Position,
        deadline: std::time::Instant,
    ) -> Result<Vec<Option<IdEntry>>, LogError> {
        let mut copied = self.head.clone();
        let caught_up = tokio::time::timeout_at(deadline.into(), copied.wait_for(|h| *h >= head));
        if !matches!(caught_up.await, Ok(Ok(_))) {
            return Err(jetstream::unavailable(
                format!("this node's copy of the log has not reached position {head} yet"),
                true,
            ));
        }
        let store = self.store.clone();
        let ids: Vec<[u8; 16]> = ids.iter().map(|id| *id.as_bytes()).collect();
        off_thread(move || idempotency::lookup(&store, &ids)).await
    }
}

/// Run the RocksDB reads `read` on the blocking pool.
async fn off_thread<T: Send + 'static>(
    read: impl FnOnce() -> Result<T, LogError> + Send + 'static,
) -> Result<T, LogError> {
    tokio::task::spawn_blocking(read)
        .await
        .map_err(|e| LogError::Io(std::io::Error::other(e.to_string())))?
}

/// Each stream's last event in the copy `store`: its version from the
/// stream heads, its position (the JetStream sequence) from the stream index.
fn local_heads(
    store: &Store,
    streams: &[String],
) -> Result<Vec<Option<jetstream::Head>>, LogError> {
    let heads_cf = store.fixed(CF_STREAM_HEADS);
    let streams_cf = store.fixed(CF_STREAMS);
    let versions = store.get_many(&heads_cf, streams.iter().map(|s| s.as_bytes()))?;
    let mut keys = Vec::new();
    let mut heads = Vec::with_capacity(streams.len());
    for (stream, version) in streams.iter().zip(versions) {
        let version = version.map(|v| codec::decode_u64(&v)).transpose()?;
        if let Some(v) = version {
            keys.push(codec::stream_key(stream, v));
        }
        heads.push(version);
    }
    let mut positions = store
        .get_many(&streams_cf, keys.iter().map(|k| &k[..]))?
        .into_iter();
    heads
        .into_iter()
        .map(|version| {
            let Some(version) = version else {
                return Ok(None);
            };
            let entry = positions.next().flatten().ok_or_else(|| {
                StorageError::Corrupt("a stream head without its index entry".into())
            })?;
            // The head is the last event of its stream's last run.
            Ok(Some(jetstream::Head {
                sequence: codec::StreamRun::decode(version, &entry)?.last_position,
                version: StreamVersion(version),
            }))
        })
        .collect()
}

/// Connect to the cluster, trying again until it answers.
async fn connect(config: JetStreamConfig, state: &watch::Sender<ReplicaState>) -> JetStreamLog {
    let mut pause = Duration::from_millis(200);
    loop {
        match JetStreamLog::connect(config.clone()).await {
            Ok(js) => {
                tracing::info!(servers = %config.servers, "connected to the JetStream cluster");
                return js;
            }
            Err(e) => {
                let error = format!("connecting to {}: {e}", config.servers);
                if state.borrow().error.as_deref() != Some(&error) {
                    tracing::warn!(error = %error, "the JetStream cluster is unreachable; reads go on from this node's copy");
                }
                state.send_modify(|s| {
                    s.state = "unavailable";
                    s.error = Some(error);
                });
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// Follow the replicated log from `from` on, for ever, handing each event on.
async fn pull(
    js: JetStreamLog,
    from: Position,
    events: mpsc::Sender<(Position, Bytes)>,
    state: watch::Sender<ReplicaState>,
) {
    let mut next = from;
    let mut pause = Duration::from_millis(100);
    loop {
        let mut follower = match js.follow(next).await {
            Ok(f) => f,
            Err(e) => {
                unavailable(&state, &e);
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        loop {
            match follower.next().await {
                Ok(event) => {
                    if state.borrow().state != "following" {
                        state.send_modify(|s| {
                            s.state = "following";
                            s.error = None;
                        });
                    }
                    pause = Duration::from_millis(100);
                    next = event.position.next();
                    if events.send((event.position, event.bytes)).await.is_err() {
                        return;
                    }
                }
                Err(e) => {
                    unavailable(&state, &e);
                    if !jetstream::is_unavailable(&e) {
                        tracing::error!(error = %e, "the replicated log cannot be followed");
                    }
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(5));
                    break;
                }
            }
        }
    }
}

fn unavailable(state: &watch::Sender<ReplicaState>, e: &LogError) {
    let error = e.to_string();
    if state.borrow().error.as_deref() != Some(&error) {
        tracing::warn!(error = %error, "the replicated log is unavailable; reads go on from this node's copy");
    }
    state.send_modify(|s| {
        s.state = "unavailable";
        s.error = Some(error);
    });
}

/// Store what the follower receives, in batches, and move the head.
async fn store(
    db: Store,
    mut events: mpsc::Receiver<(Position, Bytes)>,
    head: watch::Sender<Position>,
) {
    while let Some(first) = events.recv().await {
        let mut batch = vec![first];
        while batch.len() < INGEST_BATCH {
            match events.try_recv() {
                Ok(e) => batch.push(e),
                Err(_) => break,
            }
        }
        let db = db.clone();
        let stored = tokio::task::spawn_blocking(move || store_batch(&db, &batch)).await;
        match stored {
            Ok(Ok(Some(last))) => {
                head.send_replace(last);
            }
            Ok(Ok(None)) => {}
            Ok(Err(e)) => {
                // Stopping here keeps the copy gapless; the next start
                // fetches the rest again.
                tracing::error!(error = %e, "storing the replicated log locally failed; this node's copy stops here");
                return;
            }
            Err(e) => {
                tracing::error!(error = %e, "storing the replicated log locally failed");
                return;
            }
        }
    }
}

/// Store `events` (contiguous, after the local head) in one write; the new
/// head, or `None` if every one was there already.
fn store_batch(db: &Store, events: &[(Position, Bytes)]) -> Result<Option<Position>, LogError> {
    let events_cf = db.fixed(CF_EVENTS);
    let streams_cf = db.fixed(CF_STREAMS);
    let ids_cf = db.fixed(CF_EVENT_IDS);
    let heads_cf = db.fixed(CF_STREAM_HEADS);
    let local = super::last_position(db)?;
    let mut batch = WriteSet::default();
    let mut heads: std::collections::HashMap<String, u64> = std::collections::HashMap::new();
    let mut last = None;
    let mut expected = local.next();
    // The stream-index entry being extended: its stream, last version and run.
    let mut open: Option<(String, u64, codec::StreamRun)> = None;
    let close = |batch: &mut WriteSet, open: Option<(String, u64, codec::StreamRun)>| {
        if let Some((stream, last_version, run)) = open {
            batch.put(
                &streams_cf,
                codec::stream_key(&stream, last_version),
                run.encode(),
            );
        }
    };
    for (position, bytes) in events {
        if *position < expected {
            continue;
        }
        if *position != expected {
            return Err(LogError::Storage(StorageError::Corrupt(format!(
                "the replicated log skipped from {} to {position}",
                expected.0 - 1
            ))));
        }
        let event = codec::decode_event(bytes)?;
        let key = codec::u64_key(position.0);
        batch.put(&events_cf, key, bytes);
        // Consecutive events of one stream share an entry (`codec::StreamRun`).
        match &mut open {
            Some((stream, last_version, run))
                if *stream == event.stream && *last_version + 1 == event.stream_version =>
            {
                *last_version = event.stream_version;
                run.last_position = position.0;
                run.len += 1;
            }
            _ => {
                let run = codec::StreamRun {
                    last_position: position.0,
                    len: 1,
                };
                close(
                    &mut batch,
                    open.replace((event.stream.clone(), event.stream_version, run)),
                );
            }
        }
        // Every id is kept: a retry from any client, on any node, after the
        // replicated log's own de-duplication window, is still recognised.
        batch.put(&ids_cf, event.id, key);
        heads.insert(event.stream, event.stream_version);
        last = Some(*position);
        expected = position.next();
    }
    close(&mut batch, open);
    for (stream, version) in &heads {
        batch.put(&heads_cf, stream.as_bytes(), codec::u64_key(*version));
    }
    if last.is_some() {
        db.write(batch, Durability::Buffered)?;
    }
    Ok(last)
}
