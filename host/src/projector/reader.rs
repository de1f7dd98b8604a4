//! The projector's log reader: reading and decoding the next batch on a
//! thread of its own while the plugin handles the current one.
//!
//! A projector's work per batch is: read the events from the log and decode
//! them, hand them to the plugin, commit the view writes with the checkpoint.
//! Only the last two have to happen in order on the projector's thread; the
//! read of batch N+1 depends on nothing but where batch N ends. So while it
//! replays, the projector asks its [`Reader`] to read the next batch ahead
//! and applies the current one meanwhile, which puts the log read (RocksDB,
//! decompression, decoding, the copy into [`Event`]s) on a second core.
//!
//! Reading ahead changes nothing about what is applied or committed: a batch
//! read ahead is used only if it starts exactly where the projector is and
//! ends no later than where it may go now (a hold may have been set since);
//! otherwise it is dropped and the batch read again. Commits stay on the
//! projector's thread, one batch at a time with its checkpoint, so a crash
//! at any moment loses at most batches that were read and not committed,
//! which the next run reads again from the checkpoint.
//!
//! A batch's events are recycled: once applied, the projector hands the
//! batch back ([`Reader::recycle`]) and the next read overwrites its events
//! in place, reusing their strings' buffers. Replaying thus allocates and
//! frees nothing per event on the host once the buffers have grown, and
//! the thread applying batches (the one a replay waits on) no longer frees
//! what the reader's thread allocated.

use std::collections::HashSet;
use std::sync::mpsc;

use crate::log::{EventLog, EventRef, LogError, Position};
use crate::runtime::bindings::Event;
use crate::views::partitions::{Partition, Positions};

/// How much one batch may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Limits {
    /// Most events handed to the plugin.
    pub events: usize,
    /// Most payload and metadata bytes.
    pub bytes: usize,
}

/// A batch read from the log: the events after `after` up to `last`.
pub(super) struct Batch {
    /// The position the batch was read after.
    pub after: Position,
    /// The last position read (events the plugin does not want included):
    /// the checkpoint once the batch is applied. Equal to `after` when
    /// there was nothing to read.
    pub last: Position,
    /// The events the plugin wants, in log order.
    pub events: Vec<Event>,
    /// How many log positions the batch covers.
    pub scanned: usize,
    /// The limits it was read with.
    pub limits: Limits,
}

/// A set of event types, hashed for one lookup per event read.
pub(super) type EventTypes = HashSet<String, foldhash::fast::RandomState>;

/// Which events of the log a projector hands its plugin.
#[derive(Debug, Clone, Default)]
pub(super) struct Filter {
    /// The event types the projection consumes; `None` for all.
    pub types: Option<EventTypes>,
    /// Only the streams of this partition (a partitioned replay's worker).
    pub partition: Option<Partition>,
    /// Leave out the events partitions have applied already (see
    /// `views::partitions`).
    pub applied: Option<Positions>,
}

impl Filter {
    /// The projection's event types, every stream.
    pub fn types(types: Option<EventTypes>) -> Self {
        Filter {
            types,
            ..Filter::default()
        }
    }

    fn wants(&self, stream: &str, event_type: &str) -> bool {
        self.types.as_ref().is_none_or(|w| w.contains(event_type))
            && self.partition.is_none_or(|p| p.owns(stream))
    }
}

/// Read the events after `after` up to `upto` at most, within `limits`,
/// keeping those `filter` wants, into `spare` (the events of a batch done
/// with, overwritten in place; empty for none).
pub(super) fn read(
    log: &EventLog,
    filter: &Filter,
    after: Position,
    upto: Position,
    limits: Limits,
    spare: Vec<Event>,
) -> Result<Batch, LogError> {
    let mut events = if worth_reusing(&spare, limits) {
        spare
    } else {
        Vec::new()
    };
    if events.capacity() == 0 {
        events.reserve(limits.events.min(1024));
    }
    let mut batch = Batch {
        after,
        last: after,
        events,
        scanned: 0,
        limits,
    };
    // How many of `batch.events` hold this batch's events; the rest are
    // left from the spare, to be overwritten or cut off at the end.
    let mut kept = 0usize;
    let mut bytes = 0usize;
    // Filtered-out events are not decoded: let the scan run further past
    // them (a partition's worker passes over the other partitions' events).
    let max_scanned = limits.events * 8 * filter.partition.map_or(1, |p| p.count);
    log.scan_where(
        after.next(),
        |stream, event_type| filter.wants(stream, event_type),
        |at, event| {
            if at > upto {
                return false;
            }
            batch.last = at;
            batch.scanned += 1;
            if let Some(e) = event
                && !filter
                    .applied
                    .as_ref()
                    .is_some_and(|a| a.applied(after, e.stream, at))
            {
                bytes += e.data.len() + e.metadata.len();
                if batch.events.len() == kept {
                    batch.events.push(blank());
                }
                overwrite(&mut batch.events[kept], &e);
                kept += 1;
            }
            kept < limits.events && bytes < limits.bytes && batch.scanned < max_scanned
        },
    )?;
    batch.events.truncate(kept);
    Ok(batch)
}

/// An event record with nothing in it yet, for [`overwrite`] to fill.
fn blank() -> Event {
    Event {
        position: 0,
        stream_id: String::new(),
        stream_version: 0,
        event_type: String::new(),
        data: String::new(),
        metadata: String::new(),
        recorded_at: 0,
        id: String::new(),
    }
}

/// Make `slot` the WIT record of `e`, in the buffers it has.
fn overwrite(slot: &mut Event, e: &EventRef<'_>) {
    fn set(to: &mut String, from: &str) {
        to.clear();
        to.push_str(from);
    }
    let mut id = uuid::Uuid::encode_buffer();
    slot.position = e.position.0;
    set(&mut slot.stream_id, e.stream);
    slot.stream_version = e.stream_version.0;
    set(&mut slot.event_type, e.event_type);
    set(&mut slot.data, e.data);
    set(&mut slot.metadata, e.metadata);
    slot.recorded_at = e.recorded_at_ms;
    set(&mut slot.id, e.id.hyphenated().encode_lower(&mut id));
}

/// Whether the events of a batch done with are worth reading a batch within
/// `limits` into: not when their buffers grew far past what such a batch
/// holds (one huge event followed by small ones would otherwise pin its
/// buffer for good). Checked where the batch is read, so that the thread
/// applying batches only hands them back.
fn worth_reusing(spare: &[Event], limits: Limits) -> bool {
    let held: usize = spare
        .iter()
        .map(|e| {
            e.stream_id.capacity()
                + e.event_type.capacity()
                + e.data.capacity()
                + e.metadata.capacity()
                + e.id.capacity()
        })
        .sum();
    held <= 2 * limits.bytes + limits.events * 256
}

/// A read asked of the reader thread.
struct Request {
    after: Position,
    upto: Position,
    limits: Limits,
    /// Events to read into (see [`read`]).
    spare: Vec<Event>,
}

/// Reads batches ahead on a thread of its own, one at a time. The thread
/// starts with the first read ahead (a projector that is never behind
/// never starts it) and ends when the reader is dropped.
pub(super) struct Reader {
    log: EventLog,
    filter: Filter,
    /// For the thread's name.
    plugin: String,
    thread: Option<Thread>,
    /// Whether a read was asked for and its batch not yet taken.
    pending: bool,
    /// The events of a batch done with, for the next read.
    spare: Vec<Event>,
    /// Batches read ahead and used, for tests.
    used: u64,
}

struct Thread {
    requests: mpsc::Sender<Request>,
    batches: mpsc::Receiver<Result<Batch, String>>,
    handle: std::thread::JoinHandle<()>,
}

impl Reader {
    pub(super) fn new(log: EventLog, filter: Filter, plugin: &str) -> Self {
        Reader {
            log,
            filter,
            plugin: plugin.to_string(),
            thread: None,
            pending: false,
            spare: Vec::new(),
            used: 0,
        }
    }

    /// Read the batch after `after` up to `upto` within `limits`: the one
    /// read ahead if it is that batch, or read now.
    pub(super) fn next(
        &mut self,
        after: Position,
        upto: Position,
        limits: Limits,
    ) -> Result<Batch, String> {
        if let Some(batch) = self.take_ahead()? {
            if batch.after == after && batch.last <= upto && batch.limits == limits {
                self.used += 1;
                return Ok(batch);
            }
            self.recycle(batch);
        }
        let spare = std::mem::take(&mut self.spare);
        read(&self.log, &self.filter, after, upto, limits, spare)
            .map_err(|e| format!("reading the log: {e}"))
    }

    /// Hand back a batch done with: the next read reuses its events.
    pub(super) fn recycle(&mut self, batch: Batch) {
        self.spare = batch.events;
    }

    /// Which events it reads.
    pub(super) fn filter(&self) -> &Filter {
        &self.filter
    }

    /// From now on, leave out what `applied` says partitions applied (or
    /// nothing, with `None`). Takes effect from the next batch read.
    pub(super) fn skip_applied(&mut self, applied: Option<Positions>) {
        // A batch being read ahead with the old filter is dropped when taken.
        if self.pending {
            let _ = self.take_ahead();
        }
        self.filter.applied = applied;
        // The thread reads with a copy of the filter: the next read ahead
        // starts a new one.
        self.stop_thread();
    }

    /// End the thread, if any, and wait for it.
    fn stop_thread(&mut self) {
        if let Some(thread) = self.thread.take() {
            drop(thread.requests);
            drop(thread.batches);
            let _ = thread.handle.join();
        }
    }

    /// Start reading the batch after `after` up to `upto` while the caller
    /// applies the current one.
    pub(super) fn read_ahead(&mut self, after: Position, upto: Position, limits: Limits) {
        if self.pending {
            // Only one read at a time: the caller takes each batch first.
            return;
        }
        if self.thread.is_none() {
            match self.start() {
                Ok(thread) => self.thread = Some(thread),
                Err(e) => {
                    // Reading in turn still works; only the overlap is lost.
                    tracing::warn!(plugin = %self.plugin, error = %e, "could not start the log reader thread");
                    return;
                }
            }
        }
        let thread = self.thread.as_ref().expect("just started");
        self.pending = thread
            .requests
            .send(Request {
                after,
                upto,
                limits,
                spare: std::mem::take(&mut self.spare),
            })
            .is_ok();
    }

    /// How many batches read ahead were used.
    #[cfg(test)]
    pub(super) fn used(&self) -> u64 {
        self.used
    }

    /// The batch read ahead, waiting for it if it is still being read.
    fn take_ahead(&mut self) -> Result<Option<Batch>, String> {
        if !std::mem::take(&mut self.pending) {
            return Ok(None);
        }
        let Some(thread) = &self.thread else {
            return Ok(None);
        };
        match thread.batches.recv() {
            Ok(batch) => batch.map(Some),
            // The thread is gone (it panicked): read in turn from now on.
            Err(_) => {
                self.thread = None;
                Ok(None)
            }
        }
    }

    fn start(&self) -> std::io::Result<Thread> {
        let (requests, incoming) = mpsc::channel::<Request>();
        let (outgoing, batches) = mpsc::channel();
        let log = self.log.clone();
        let filter = self.filter.clone();
        let handle = std::thread::Builder::new()
            .name(format!("prism-reader-{}", self.plugin))
            .spawn(move || {
                for r in incoming {
                    let batch = read(&log, &filter, r.after, r.upto, r.limits, r.spare)
                        .map_err(|e| format!("reading the log: {e}"));
                    if outgoing.send(batch).is_err() {
                        return;
                    }
                }
            })?;
        Ok(Thread {
            requests,
            batches,
            handle,
        })
    }
}

impl Drop for Reader {
    /// Ends the thread and waits for it, so that nothing holds the log
    /// once the projector has returned (shutdown waits for the store to close).
    fn drop(&mut self) {
        self.stop_thread();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::{ExpectedVersion, NewEvent};

    async fn log_of(n: u64) -> (tempfile::TempDir, EventLog) {
        let dir = tempfile::tempdir().unwrap();
        let (log, _views) = crate::server::open_stores(dir.path()).unwrap();
        for p in 1..=n {
            let event = NewEvent {
                id: uuid::Uuid::new_v4(),
                client_id: false,
                event_type: if p % 3 == 0 { "Skipped" } else { "Kept" }.into(),
                data: format!("{{\"n\":{p}}}"),
                metadata: "{}".into(),
            };
            log.append(format!("s{}", p % 5), ExpectedVersion::Any, vec![event])
                .await
                .unwrap();
        }
        (dir, log)
    }

    fn positions(batch: &Batch) -> Vec<u64> {
        batch.events.iter().map(|e| e.position).collect()
    }

    const LIMITS: Limits = Limits {
        events: 10,
        bytes: 1 << 20,
    };

    #[tokio::test(flavor = "multi_thread")]
    async fn a_batch_read_ahead_is_the_batch_read_in_turn() {
        let (_dir, log) = log_of(100).await;
        let wanted: EventTypes = ["Kept".to_string()].into_iter().collect();
        let filter = Filter::types(Some(wanted));
        let mut reader = Reader::new(log.clone(), filter.clone(), "t");
        let first = reader.next(Position(0), Position(100), LIMITS).unwrap();
        assert_eq!(first.events.len(), 10);
        reader.read_ahead(first.last, Position(100), LIMITS);
        let ahead = reader.next(first.last, Position(100), LIMITS).unwrap();
        assert_eq!(reader.used(), 1);
        let in_turn = read(&log, &filter, first.last, Position(100), LIMITS, Vec::new()).unwrap();
        assert_eq!(positions(&ahead), positions(&in_turn));
        assert_eq!((ahead.last, ahead.scanned), (in_turn.last, in_turn.scanned));
        assert!(positions(&ahead).iter().all(|p| p % 3 != 0));
        assert_eq!(
            ahead.events[0].data,
            format!("{{\"n\":{}}}", ahead.events[0].position)
        );
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_batch_read_into_a_recycled_one_is_the_batch_read_afresh() {
        let (_dir, log) = log_of(100).await;
        let filter = Filter::default();
        let afresh = |after: u64, upto: u64| {
            let batch = read(
                &log,
                &filter,
                Position(after),
                Position(upto),
                LIMITS,
                Vec::new(),
            );
            format!("{:?}", batch.unwrap().events)
        };
        let mut reader = Reader::new(log.clone(), filter.clone(), "t");
        // Later events have longer payloads than the earlier ones read into
        // their buffers, and a shorter batch leaves spare events over.
        let first = reader.next(Position(0), Position(100), LIMITS).unwrap();
        reader.recycle(first);
        let second = reader.next(Position(90), Position(100), LIMITS).unwrap();
        assert_eq!(format!("{:?}", second.events), afresh(90, 100));
        reader.recycle(second);
        let shorter = reader.next(Position(3), Position(7), LIMITS).unwrap();
        assert_eq!(shorter.events.len(), 4);
        assert_eq!(format!("{:?}", shorter.events), afresh(3, 7));
        // The same through the thread reading ahead.
        reader.recycle(shorter);
        reader.read_ahead(Position(40), Position(100), LIMITS);
        let ahead = reader.next(Position(40), Position(100), LIMITS).unwrap();
        assert_eq!(reader.used(), 1);
        assert_eq!(format!("{:?}", ahead.events), afresh(40, 50));
        // Buffers grown far past what a batch may hold are not kept.
        let mut big = ahead;
        big.events[0].data = "x".repeat(3 * LIMITS.bytes);
        assert!(!worth_reusing(&big.events, LIMITS));
        reader.recycle(big);
        let after_big = reader.next(Position(60), Position(70), LIMITS).unwrap();
        assert!(after_big.events[0].data.capacity() < LIMITS.bytes);
        assert_eq!(format!("{:?}", after_big.events), afresh(60, 70));
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_batch_read_ahead_that_no_longer_fits_is_read_again() {
        let (_dir, log) = log_of(100).await;
        let mut reader = Reader::new(log.clone(), Filter::default(), "t");
        // Not where the projector is (it stopped elsewhere).
        reader.read_ahead(Position(20), Position(100), LIMITS);
        let batch = reader.next(Position(30), Position(100), LIMITS).unwrap();
        assert_eq!(positions(&batch), (31..=40).collect::<Vec<_>>());
        // Past where the projector may go now (a hold was set meanwhile).
        reader.read_ahead(Position(40), Position(100), LIMITS);
        let batch = reader.next(Position(40), Position(45), LIMITS).unwrap();
        assert_eq!(positions(&batch), (41..=45).collect::<Vec<_>>());
        // Read with other limits (stepping one event at a time).
        let one = Limits {
            events: 1,
            ..LIMITS
        };
        reader.read_ahead(Position(45), Position(100), LIMITS);
        let batch = reader.next(Position(45), Position(100), one).unwrap();
        assert_eq!(positions(&batch), [46]);
        assert_eq!(reader.used(), 0);
        // Dropping the reader ends its thread.
        drop(reader);
    }
}
