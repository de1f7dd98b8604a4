//! The single writer: positions in commit order, group commit, idempotency.
//!
//! Requests queue on a channel while the previous group's WAL sync is in
//! flight; the writer then takes everything queued as the next group, checks
//! each request against the stream heads (including the group's own earlier
//! requests), and commits the whole group with one synced write. So
//! many concurrent appends share one fsync, and each append is still atomic:
//! a request that fails its checks contributes nothing to the batch.
//!
//! A group that fails to commit changes nothing: its positions go to the
//! next group.
//!
//! # Appends that carry a projector's commit
//! A projection's emitted events come with the rest of its batch's commit
//! (view writes, checkpoint) as a prepared `WriteSet`. Such a request is
//! a group of its own, started from that batch: the events and the commit
//! go to RocksDB in one synced write, so they are stored together or not at
//! all. Its events have ids derived from their cause, and an event whose id
//! the log already holds is left out rather than refused: handling the
//! same cause again (a replay, a rebuild, another generation) appends
//! nothing twice, and the commit still goes through. The same request
//! carries the batch's outbox requests, which go into that write the same
//! way: those whose ids the outbox holds are left out (`outbox::store`).
//! The writer also decides whether appends are refused for lack of disk
//! space (see the `log` module).
//!
//! # Stream heads
//! The writer is the only one that moves a stream's head, so it keeps the
//! heads it has committed ([`KnownHeads`]) and looks up only the others:
//! an import touches thousands of streams in every request, and reading
//! each one's head back from RocksDB was a sixth of the writer's time.

use std::time::Duration;

use tokio::sync::{mpsc, watch};

use super::idempotency::{self, IdEntry};
use super::space::{AppendState, Shortage};
use super::{
    AppendRequest, Committed, LogError, MultiOutcome, Position, StreamEvents, StreamVersion,
    stream_head,
};
use crate::storage::codec::{self, StoredEvent};
use crate::storage::{
    CF_EVENT_IDS, CF_EVENTS, CF_STREAM_HEADS, CF_STREAMS, Durability, StorageError, Store, WriteSet,
};

/// Most requests committed in one group; bounds the latency of the first one.
const MAX_GROUP: usize = 2048;

/// Most stream heads the writer keeps in memory (about 70 bytes each);
/// past it, it forgets them all and starts over.
const MAX_KNOWN_HEADS: usize = 100_000;

/// The writer's maps, keyed by stream names and event ids it hashes several
/// times per event: foldhash, seeded per process like the standard
/// library's hasher but several times faster on short keys.
type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// The heads of streams as committed: what RocksDB's stream heads say, for
/// the streams the map holds.
#[derive(Default)]
struct KnownHeads(HashMap<String, StreamVersion>);

impl KnownHeads {
    fn get(&self, stream: &str) -> Option<StreamVersion> {
        self.0.get(stream).copied()
    }

    /// A group's heads, once it is stored.
    fn committed(&mut self, heads: HashMap<String, StreamVersion>) {
        if self.0.len() + heads.len() > MAX_KNOWN_HEADS {
            self.0.clear();
        }
        self.0.extend(heads);
    }
}

/// How often a writer that refuses appends checks whether it could store
/// them again, when no append comes to find out.
const PROBE_EVERY: Duration = Duration::from_secs(1);

/// The one key the log keeps in the default column family, which holds
/// nothing else: when the writer last found the database writable.
const WRITABLE_KEY: &[u8] = b"log/writable-at-ms";

/// Record (synced) that the database takes writes, which also leaves a
/// record in a memtable. RocksDB 7.8 resumes after running out of space by
/// flushing the memtables into a fresh write-ahead log — but if they are
/// all empty it keeps the log file whose write failed, and the next write
/// to that file trips an assertion (a failed file must not be written
/// again) that aborts the process in Debian's build. Every memtable is
/// empty after opening and after each resume, so this is written on
/// opening and is what the writer's probe writes.
pub(super) fn mark_writable(store: &Store) -> Result<(), StorageError> {
    store.put_default(
        WRITABLE_KEY,
        crate::clock::now_ms().to_be_bytes(),
        Durability::Synced,
    )
}

pub(super) fn spawn(
    writer: Writer,
    rx: mpsc::Receiver<AppendRequest>,
    head: watch::Sender<Position>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    // Only a timer: waiting for requests with a timeout while appends are refused.
    let clock = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()?;
    std::thread::Builder::new()
        .name("prism-log-writer".into())
        .spawn(move || writer.run(rx, head, clock))
}

pub(super) struct Writer {
    store: Store,
    /// The position the next appended event gets.
    next: Position,
    /// Free bytes below which groups are refused before RocksDB sees them (0: never).
    min_free_bytes: u64,
    /// Whether appends are stored; published for `/healthz`.
    appends: watch::Sender<AppendState>,
    /// The outbox's last sequence number, published once stored (the
    /// delivery task reads the new requests from there).
    outbox: watch::Sender<u64>,
    known: KnownHeads,
}

/// State of the group being assembled, seen by its later requests.
#[derive(Default)]
struct Group {
    /// The events (in position order) and a carried commit.
    batch: WriteSet,
    /// The index entries, added to `batch` in key order when the group is
    /// sealed: the streams, event ids and heads of an import are scattered
    /// over their key spaces, and RocksDB inserts keys into a memtable far
    /// faster in order than at random.
    stream_keys: Vec<(Vec<u8>, codec::RunBytes)>,
    id_keys: Vec<([u8; 16], [u8; 8])>,
    head_keys: Vec<(String, [u8; 8])>,
    heads: HashMap<String, StreamVersion>,
    ids: HashMap<[u8; 16], IdEntry>,
}

impl Group {
    /// Everything the group writes, ready to store.
    fn seal(mut self, store: &Store) -> WriteSet {
        self.batch
            .put_in_order(&store.fixed(CF_STREAMS), self.stream_keys);
        self.batch
            .put_in_order(&store.fixed(CF_EVENT_IDS), self.id_keys);
        self.batch
            .put_in_order(&store.fixed(CF_STREAM_HEADS), self.head_keys);
        self.batch
    }
}

impl Writer {
    pub(super) fn new(
        store: Store,
        last: Position,
        min_free_bytes: u64,
        appends: watch::Sender<AppendState>,
        outbox: watch::Sender<u64>,
    ) -> Self {
        Writer {
            store,
            next: last.next(),
            min_free_bytes,
            appends,
            outbox,
            known: KnownHeads::default(),
        }
    }

    fn run(
        mut self,
        mut rx: mpsc::Receiver<AppendRequest>,
        head: watch::Sender<Position>,
        clock: tokio::runtime::Runtime,
    ) {
        let mut held: Option<AppendRequest> = None;
        while let Some(first) = match held.take() {
            Some(r) => Some(r),
            None => self.next_request(&mut rx, &clock),
        } {
            let mut requests = vec![first];
            // A request carrying a commit is a group of its own (see above).
            while requests[0].commit.is_none() && requests.len() < MAX_GROUP {
                match rx.try_recv() {
                    Ok(r) if r.commit.is_some() => {
                        held = Some(r);
                        break;
                    }
                    Ok(r) => requests.push(r),
                    Err(_) => break,
                }
            }
            if !self.has_room() {
                for request in requests {
                    let _ = request
                        .reply
                        .send(Err(LogError::Storage(StorageError::Full)));
                }
                continue;
            }
            let group_start = self.next;
            let mut group = Group::default();
            let carried = requests[0].commit.take();
            let carries_commit = carried.is_some();
            if let Some(batch) = carried {
                group.batch = batch;
            }
            let mut results: Vec<_> = requests
                .iter()
                .map(|r| {
                    self.plan(r, &mut group).map(|emitted| Committed {
                        emitted,
                        enqueued: 0,
                    })
                })
                .collect();
            let outbox_start = *self.outbox.borrow();
            let mut outbox_last = outbox_start;
            if carries_commit && !requests[0].outbox.is_empty() {
                let enqueued = crate::outbox::store::enqueue(
                    &self.store,
                    &requests[0].outbox,
                    &mut outbox_last,
                    crate::clock::now_ms(),
                    &mut group.batch,
                );
                match enqueued {
                    Ok(n) => {
                        if let Ok(committed) = &mut results[0] {
                            committed.enqueued = n;
                        }
                    }
                    Err(e) => {
                        // Nothing of the commit may be stored without its requests.
                        self.next = group_start;
                        let _ = requests.remove(0).reply.send(Err(e.into()));
                        continue;
                    }
                }
            }
            if carries_commit && results[0].is_err() {
                // The commit is stored with its emitted events or not at all.
                self.next = group_start;
                let _ = requests.remove(0).reply.send(results.remove(0));
                continue;
            }
            let heads = std::mem::take(&mut group.heads);
            let committed = if self.next > group_start || carries_commit {
                self.store
                    .write(group.seal(&self.store), Durability::Synced)
            } else {
                Ok(())
            };
            match committed {
                Ok(()) => {
                    self.known.committed(heads);
                    if self.next > group_start {
                        self.accepting();
                        head.send_replace(Position(self.next.0 - 1));
                    }
                    if outbox_last > outbox_start {
                        self.outbox.send_replace(outbox_last);
                    }
                    for (request, result) in requests.into_iter().zip(results) {
                        let _ = request.reply.send(result);
                    }
                }
                Err(e) => {
                    // Nothing of the group was applied: its positions go to the next one.
                    self.next = group_start;
                    if matches!(e, StorageError::Full) {
                        self.refusing(Shortage::DiskFull, &e);
                    } else {
                        tracing::error!(error = %e, "append group failed to commit");
                    }
                    for request in requests {
                        let _ = request.reply.send(Err(LogError::Storage(e.clone())));
                    }
                }
            }
        }
    }

    /// The next request, or `None` once every handle is dropped. While
    /// appends are refused, probe every [`PROBE_EVERY`] in between.
    fn next_request(
        &mut self,
        rx: &mut mpsc::Receiver<AppendRequest>,
        clock: &tokio::runtime::Runtime,
    ) -> Option<AppendRequest> {
        loop {
            let state = *self.appends.borrow();
            if state == AppendState::Accepting {
                return rx.blocking_recv();
            }
            let waited =
                clock.block_on(async { tokio::time::timeout(PROBE_EVERY, rx.recv()).await });
            match waited {
                Ok(request) => return request,
                Err(_) => self.probe(),
            }
        }
    }

    /// Whether a write could be stored now: enough free space, and RocksDB
    /// taking writes again (which a write of the marker tells).
    fn probe(&mut self) {
        if !self.has_room() {
            return;
        }
        match mark_writable(&self.store) {
            Ok(()) => self.accepting(),
            Err(e @ StorageError::Full) => self.refusing(Shortage::DiskFull, &e),
            Err(e) => tracing::warn!(error = %e, "probing whether the database takes writes"),
        }
    }

    /// False (and appends refused) if less than the minimum is free. If the
    /// free space cannot be measured, RocksDB will tell.
    fn has_room(&mut self) -> bool {
        if self.min_free_bytes == 0 {
            return true;
        }
        match self.store.free_bytes() {
            Ok(free) if free < self.min_free_bytes => {
                self.refusing(Shortage::BelowMinimum, &format!("{free} bytes free"));
                false
            }
            Ok(_) => true,
            Err(e) => {
                tracing::debug!(error = %e, "measuring free disk space");
                true
            }
        }
    }

    fn refusing(&mut self, why: Shortage, cause: &dyn std::fmt::Display) {
        let before = *self.appends.borrow();
        let after = before.refusing(why, crate::clock::now_ms());
        if after == before {
            return;
        }
        match why {
            Shortage::DiskFull => tracing::error!(
                error = %cause,
                "the disk is full: RocksDB stopped writing; appends are refused until it resumes"
            ),
            Shortage::BelowMinimum => tracing::warn!(
                free = %cause,
                min_free_bytes = self.min_free_bytes,
                "disk space below min_free_mb: appends are refused until space is freed"
            ),
        }
        self.appends.send_replace(after);
    }

    fn accepting(&mut self) {
        let AppendState::Refusing { since_ms, .. } = *self.appends.borrow() else {
            return;
        };
        let refused_ms = crate::clock::now_ms().saturating_sub(since_ms);
        tracing::info!(refused_ms, "appends are stored again");
        self.appends.send_replace(AppendState::Accepting);
    }

    /// The version `stream` is at as this group sees it, if that is known
    /// without asking RocksDB: from the group itself, else from the heads
    /// already committed.
    fn head_in_memory(&self, stream: &str, group: &Group) -> Option<StreamVersion> {
        group
            .heads
            .get(stream)
            .copied()
            .or_else(|| self.known.get(stream))
    }

    /// The version `stream` is at, as this group sees it.
    fn head_of(&self, stream: &str, group: &Group) -> Result<Option<StreamVersion>, LogError> {
        match self.head_in_memory(stream, group) {
            Some(v) => Ok(Some(v)),
            None => Ok(stream_head(&self.store, stream)?),
        }
    }

    /// The version each stream of `runs` is at, as this group sees it,
    /// looked up together.
    fn heads_of<'r>(
        &self,
        runs: &'r [StreamEvents],
        group: &Group,
    ) -> Result<HashMap<&'r str, Option<StreamVersion>>, LogError> {
        let mut heads: HashMap<&str, Option<StreamVersion>> = HashMap::default();
        let mut unknown: Vec<&str> = Vec::new();
        for run in runs {
            let stream = run.stream.as_str();
            if heads.contains_key(stream) {
                continue;
            }
            match self.head_in_memory(stream, group) {
                Some(v) => {
                    heads.insert(stream, Some(v));
                }
                None => {
                    heads.insert(stream, None);
                    unknown.push(stream);
                }
            }
        }
        let family = self.store.fixed(CF_STREAM_HEADS);
        let stored = self
            .store
            .get_many(&family, unknown.iter().map(|s| s.as_bytes()))?;
        for (stream, stored) in unknown.into_iter().zip(stored) {
            if let Some(v) = stored {
                heads.insert(stream, Some(StreamVersion(codec::decode_u64(&v)?)));
            }
        }
        Ok(heads)
    }

    /// Check one request and add its writes to the group, or refuse it.
    /// Every expectation is checked before anything is added, so a refused
    /// request contributes nothing.
    fn plan(&mut self, r: &AppendRequest, group: &mut Group) -> Result<MultiOutcome, LogError> {
        if r.commit_of_emitted {
            return self.plan_emitted(r, group);
        }
        if let Some(outcome) = self.already_appended(r, group)? {
            return Ok(outcome);
        }
        self.plan_runs(r, &r.runs, group)
    }

    /// Plan a projector's emitted events: those whose ids are new, in order;
    /// the others are in the log already. `duplicate` when none is new.
    fn plan_emitted(
        &mut self,
        r: &AppendRequest,
        group: &mut Group,
    ) -> Result<MultiOutcome, LogError> {
        let store = self.store.clone();
        let ids_family = store.fixed(CF_EVENT_IDS);
        let mut fresh: Vec<StreamEvents> = Vec::new();
        for run in &r.runs {
            let keys: Vec<[u8; 16]> = run.events.iter().map(|e| *e.id.as_bytes()).collect();
            let stored = store.get_many(&ids_family, keys.iter().map(|id| &id[..]))?;
            for ((event, id), stored) in run.events.iter().zip(&keys).zip(stored) {
                if group.ids.contains_key(id) || stored.is_some() {
                    continue;
                }
                match fresh.last_mut() {
                    Some(last) if last.stream == run.stream => last.events.push(event.clone()),
                    _ => fresh.push(StreamEvents {
                        stream: run.stream.clone(),
                        events: vec![event.clone()],
                    }),
                }
            }
        }
        drop(ids_family);
        if fresh.is_empty() {
            return Ok(MultiOutcome {
                first_position: self.next,
                last_position: Position(self.next.0 - 1),
                streams: Vec::new(),
                duplicate: true,
            });
        }
        self.plan_runs(r, &fresh, group)
    }

    fn plan_runs(
        &mut self,
        r: &AppendRequest,
        runs: &[StreamEvents],
        group: &mut Group,
    ) -> Result<MultiOutcome, LogError> {
        for (stream, expected) in &r.expected {
            let current = self.head_of(stream, group)?;
            if !expected.admits(current) {
                return Err(LogError::WrongExpectedVersion {
                    stream: stream.clone(),
                    expected: *expected,
                    current,
                });
            }
        }
        let recorded_at_ms = crate::clock::now_ms();
        let store = self.store.clone();
        let events_cf = store.fixed(CF_EVENTS);
        let first_position = self.next;
        let mut heads = self.heads_of(runs, group)?;
        // Each touched stream's last version, in order of first appearance,
        // and where each stream is in it (an import interleaves thousands
        // of streams in one request).
        let mut versions: Vec<(String, StreamVersion)> = Vec::new();
        let mut places: HashMap<&str, usize> = HashMap::default();
        for run in runs {
            let at = places.get(run.stream.as_str()).copied();
            let current = match at {
                Some(i) => Some(versions[i].1),
                None => heads.remove(run.stream.as_str()).flatten(),
            };
            let mut version = current.map_or(0, |v| v.0 + 1);
            for event in &run.events {
                let position = self.next;
                let stored = StoredEvent {
                    id: *event.id.as_bytes(),
                    recorded_at_ms,
                    stream_version: version,
                    stream: run.stream.as_str(),
                    event_type: event.event_type.as_str(),
                    data: event.data.as_str(),
                    metadata: event.metadata.as_str(),
                };
                let pos_key = codec::u64_key(position.0);
                group
                    .batch
                    .put(&events_cf, pos_key, codec::encode_event(&stored));
                // Only ids a client chose can come back in a retry; a server
                // generated id has no one to resend it, so it is not indexed.
                if event.client_id {
                    group.id_keys.push((stored.id, pos_key));
                    group.ids.insert(
                        stored.id,
                        IdEntry {
                            position,
                            stream: run.stream.clone(),
                            version: StreamVersion(version),
                        },
                    );
                }
                self.next = position.next();
                version += 1;
            }
            let last = StreamVersion(version - 1);
            // One stream-index entry for the run (see `codec::StreamRun`).
            let entry = codec::StreamRun {
                last_position: self.next.0 - 1,
                len: run.events.len() as u64,
            };
            group
                .stream_keys
                .push((codec::stream_key(&run.stream, last.0), entry.encode()));
            match at {
                Some(i) => versions[i].1 = last,
                None => {
                    places.insert(&run.stream, versions.len());
                    versions.push((run.stream.clone(), last));
                }
            }
        }
        for (stream, last) in &versions {
            group
                .head_keys
                .push((stream.clone(), codec::u64_key(last.0)));
            group.heads.insert(stream.clone(), *last);
        }
        Ok(MultiOutcome {
            first_position,
            last_position: Position(self.next.0 - 1),
            streams: versions,
            duplicate: false,
        })
    }

    /// The original outcome if every event id of `r` is already recorded
    /// (in the log or earlier in this group), each for the stream it is
    /// appended to now; an error if only some are.
    fn already_appended(
        &self,
        r: &AppendRequest,
        group: &Group,
    ) -> Result<Option<MultiOutcome>, LogError> {
        // Ids the server generated are fresh UUIDs: only ids a client chose
        // can belong to a retry.
        let events = || {
            r.runs
                .iter()
                .flat_map(|run| run.events.iter().map(move |e| (run, e)))
        };
        if !events().any(|(_, e)| e.client_id) {
            return Ok(None);
        }
        let ids: Vec<[u8; 16]> = events().map(|(_, e)| *e.id.as_bytes()).collect();
        let mut found = idempotency::lookup(&self.store, &ids)?;
        for (id, found) in ids.iter().zip(&mut found) {
            if let Some(entry) = group.ids.get(id) {
                *found = Some(entry.clone());
            }
        }
        idempotency::outcome(events().map(|(run, _)| run.stream.as_str()), found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn heads(streams: impl IntoIterator<Item = (String, u64)>) -> HashMap<String, StreamVersion> {
        streams
            .into_iter()
            .map(|(s, v)| (s, StreamVersion(v)))
            .collect()
    }

    #[test]
    fn known_heads_follow_commits_and_start_over_past_their_bound() {
        let mut known = KnownHeads::default();
        known.committed(heads([("a".to_string(), 0), ("b".to_string(), 4)]));
        known.committed(heads([("a".to_string(), 3)]));
        assert_eq!(known.get("a"), Some(StreamVersion(3)));
        assert_eq!(known.get("b"), Some(StreamVersion(4)));
        assert_eq!(known.get("c"), None);
        let many = (0..MAX_KNOWN_HEADS - 2).map(|i| (format!("s{i}"), i as u64));
        known.committed(heads(many));
        assert_eq!(known.0.len(), MAX_KNOWN_HEADS);
        // One more is past the bound: only the newest group's heads are kept.
        known.committed(heads([("c".to_string(), 1)]));
        assert_eq!(known.0.len(), 1);
        assert_eq!(known.get("c"), Some(StreamVersion(1)));
        assert_eq!(known.get("a"), None);
    }
}
