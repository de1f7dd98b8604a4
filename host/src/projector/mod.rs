//! The projector: moves events from the log through one plugin generation
//! into its keyspace, batch by batch, exactly once.
//!
//! Each generation has its own thread. It reads from its checkpoint, drops
//! events of types the plugin did not ask for (their positions still count),
//! calls `handle` with the rest, and commits the view writes with the new
//! checkpoint in one atomic write. Batches are as large as the lag allows, up
//! to a cap: big while replaying, one or a few events when live. When caught
//! up it sleeps on the log's head notification. A failing batch is bisected
//! to find the exact poison event, so the good events around it are applied
//! exactly once; the poison policy then halts the plugin or dead-letters the
//! event and goes on. While it is behind, the next batch is read from the
//! log on a second thread as the current one is applied ([`reader`]).
//!
//! # Batches held together while far behind
//! While more is to be read after a batch, a replay may keep the batch's
//! writes uncommitted and hand the next batch the same transaction (it reads
//! those writes there), committing up to [`MAX_HELD_BATCHES`] batches at
//! once with the last one's checkpoint ([`Held`]). A view whose batches
//! touch many documents (an imported, interleaved history) then writes each
//! document once per commit instead of once per batch. Batches are held
//! for [`ProjectorConfig::hold_batches_for`] at most (200 ms), so the
//! checkpoint keeps moving while a long replay goes on. Nothing changes for
//! exactness: what is held is not in the view, so a crash resumes from the
//! last checkpoint as before. A batch that fails while others are held is
//! taken back ([`Transaction::undo`]), the held ones are committed, and the
//! failing batch is applied again alone, down the usual path. Only
//! projections whose commit is the view's writes alone hold batches: not
//! those with indexes, emitted events or outbox targets, nor while a
//! quarantine is stepped through, a change log is recorded, or partitions
//! are ahead of the checkpoint.
//!
//! # Batches grow while they touch many documents
//! A replay's batches start at [`BASE_BATCH_EVENTS`] events. A batch's
//! documents are read, decoded, encoded and written back once per batch,
//! so where batches touch many documents (an interleaved history, every
//! event another stream's) larger batches touch each one for more events.
//! So after a full batch, held (see above), that wrote at least one
//! document per [`MANY_KEYS_PER_EVENTS`] events, the next ones may hold
//! twice as many events and payload bytes (up to [`MAX_BATCH_SCALE`]
//! times, and never past [`ProjectorConfig::max_batch_events`]) while the
//! plugin uses at most a quarter of its memory limit and a batch of the
//! next size would fit in another quarter. Batches that touch few
//! documents (a log written stream by stream) stay at the starting size,
//! where they are faster (the working set stays in the caches), and so do
//! runtimes that take much memory (Python, JavaScript). A failing batch
//! brings batches back to the starting size. Batches are what the plugin
//! is handed, so nothing changes for exactness.
//!
//! # The seam every kind of projection goes through
//! A projector does not know what a plugin is made of. It asks a
//! [`Projection`] (a compiled WebAssembly component, or a view file run
//! natively by [`crate::declarative`]; any later kind of projection
//! implements the same trait) for a [`Handler`], hands it
//! batches, and commits what the handler wrote. It tells whoever started it
//! when it has caught up with the head or failed ([`ProjectorEvent`]), and
//! can be held at a position ([`ProjectorContext::hold`]) so that two
//! generations can be compared after applying exactly the same events.

pub mod crash;
pub mod emit;
mod partitioned;
mod reader;
mod status;

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

pub use status::{EmittedCounts, EnqueuedCounts, ErrorReport, State, Status, StatusReport};

use crate::views::partitions::Positions;

use crate::log::{EventLog, LogError, Position, StreamEvents};
use crate::runtime::CallError;
use crate::runtime::PluginLimits;
use crate::runtime::bindings::{Event, HandleError};
use crate::storage::StorageError;
use crate::views::index::{IndexSpec, IndexWrites};
use crate::views::{ChangeLog, Keyspace, Transaction};

/// What a projection says about itself.
#[derive(Debug, Clone, Serialize)]
pub struct Described {
    pub name: String,
    pub version: String,
    /// What the projection is: a component and the contract version it
    /// implements (`prism:projection@0.4.0`), or another kind.
    pub kind: String,
    /// The event types it consumes; empty for all.
    pub event_types: Vec<String>,
    /// The named queries it answers.
    pub queries: Vec<String>,
    /// Secondary indexes the host maintains over its documents.
    pub indexes: Vec<IndexSpec>,
    /// The streams it may emit events to: names, or prefixes ending in `*`.
    pub emits: Vec<String>,
    /// The outbox targets it may send requests to.
    pub targets: Vec<String>,
}

/// Applies batches of events to a view. One handler serves one projector
/// thread; it may be replaced at any time (after a trap, or when worn out).
pub trait Handler: Send {
    /// Apply `batch`, collecting its writes into `txn`. `Ok(Err(_))` is an
    /// error the projection reported (the handler stays usable); `Err(_)` a
    /// trap or deadline (the handler must be replaced). On any error the
    /// writes collected are discarded.
    fn handle(
        &mut self,
        batch: &[Event],
        txn: &mut Transaction,
    ) -> Result<Result<(), HandleError>, CallError>;

    /// Whether to replace this handler before the next batch (some language
    /// runtimes never give memory back).
    fn worn_out(&self) -> bool {
        false
    }

    /// The linear memory the plugin uses and the most it may use, in
    /// bytes, if it has such a limit: batches grow only while it has room
    /// (see the module docs).
    fn memory(&self) -> Option<(usize, usize)> {
        None
    }
}

/// Why a named query did not answer.
#[derive(Debug, thiserror::Error)]
pub enum QueryFailure {
    #[error("{0}")]
    Unknown(String),
    #[error("{0}")]
    InvalidParams(String),
    #[error("{0}")]
    Failed(String),
    /// Every query slot of the generation is busy.
    #[error("{0}")]
    Busy(String),
    /// The generation's projection is not loaded yet.
    #[error("{0}")]
    Loading(String),
}

/// A loaded projection of any kind: what it is, how to run it.
pub trait Projection: Send + Sync {
    fn described(&self) -> &Described;

    /// A handler writing to `keyspace` (blocking: call off the async workers).
    fn handler(&self, keyspace: &Keyspace) -> Result<Box<dyn Handler>, String>;

    /// Answer a named query against `keyspace`'s committed view (blocking).
    fn query(&self, keyspace: &Keyspace, name: &str, params: &str) -> Result<String, QueryFailure>;
}

/// What a projector tells the generation's owner.
#[derive(Debug, Clone)]
pub enum ProjectorEvent {
    /// A batch reached the head it saw when it began: the view is current.
    /// Sent once per projector run.
    CaughtUp,
    /// The projector stopped on an error (a halted poison event, a storage failure).
    Failed(ErrorReport),
}

/// How far a generation's view has got, for read-your-writes waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Progress {
    /// The log position the keyspace reflects.
    pub position: Position,
    /// The generation no longer follows the log (replaced or removed):
    /// a reader waiting on it must look for the one that serves now.
    pub ended: bool,
}

/// What to do with an event the plugin fails on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PoisonPolicy {
    /// Stop at the event; the plugin is `failed` until a new version or a rebuild.
    #[default]
    Halt,
    /// Record the event as a dead letter and go on.
    Skip,
}

/// Tuning of a projector.
#[derive(Debug, Clone, Copy)]
pub struct ProjectorConfig {
    /// Most events handed to the plugin in one call. Batches start at
    /// [`BASE_BATCH_EVENTS`] (or this, if lower) and grow towards it while
    /// replaying (see the module docs). Default 65,536.
    pub max_batch_events: usize,
    /// Most payload bytes in a batch of the starting size, to stay well
    /// inside the plugin's memory; a batch that grew may hold as many times
    /// more as it has more events. Default 4 MiB.
    pub max_batch_bytes: usize,
    pub policy: PoisonPolicy,
    pub limits: PluginLimits,
    /// Log positions of changes kept for change-feed clients to resume. Default 1,000,000.
    pub change_retention: u64,
    /// Bytes the keyspace may take; `None` for no limit. Default 4 GiB.
    pub storage_quota: Option<u64>,
    /// Until this position, hand the plugin one event at a time (after a
    /// quarantine, so that a second abort names the very event).
    pub careful_until: Option<Position>,
    /// Read the next batch on a second thread while one is applied. Default true.
    pub read_ahead: bool,
    /// Workers replaying in partitions by stream (see `partitioned`); 1
    /// replays in order. Default 1.
    pub replay_workers: usize,
    /// How long batches may be held before they are committed, so that the
    /// checkpoint (and what `/plugins` and `min_position` see) keeps moving
    /// during a replay (see the module docs). Default 200 ms.
    pub hold_batches_for: Duration,
}

impl Default for ProjectorConfig {
    fn default() -> Self {
        ProjectorConfig {
            max_batch_events: 65_536,
            max_batch_bytes: 4 << 20,
            policy: PoisonPolicy::Halt,
            limits: PluginLimits::default(),
            change_retention: 1_000_000,
            storage_quota: Some(4 << 30),
            careful_until: None,
            read_ahead: true,
            replay_workers: 1,
            hold_batches_for: Duration::from_millis(200),
        }
    }
}

/// Everything a projector thread works with.
pub struct ProjectorContext {
    /// For thread names and log lines.
    pub plugin: String,
    pub projection: Arc<dyn Projection>,
    pub log: EventLog,
    pub keyspace: Keyspace,
    pub config: ProjectorConfig,
    pub status: Arc<Status>,
    /// The position the keyspace reflects, for read-your-writes waits.
    pub applied: Arc<watch::Sender<Progress>>,
    /// Set to true to stop the projector.
    pub stop: watch::Receiver<bool>,
    /// While `Some(p)`, apply nothing past `p` (a consistent point to
    /// compare two generations at).
    pub hold: watch::Receiver<Option<Position>>,
    /// Told when the view catches up or the projector fails.
    pub notify: Box<dyn Fn(ProjectorEvent) + Send>,
}

/// Why a batch ended without being applied.
enum Interrupted {
    /// The projector cannot go on (a storage error, a handler that does not start).
    Failed(String),
    /// It was told to stop while it waited.
    Stopped,
}

impl From<String> for Interrupted {
    fn from(message: String) -> Self {
        Interrupted::Failed(message)
    }
}

/// The outcome of applying a slice of events.
enum Applied {
    Ok,
    /// The plugin halted on this event.
    Halted,
}

/// Most batches a replay handles before it commits (see the module docs).
pub const MAX_HELD_BATCHES: usize = 16;

/// Batches handled but not committed yet: their writes, and the checkpoint
/// they reach.
struct Held {
    txn: Transaction,
    upto: Position,
    batches: usize,
    /// When the first of them was handled.
    since: std::time::Instant,
}

pub struct Projector {
    ctx: ProjectorContext,
    handler: Option<Box<dyn Handler>>,
    /// Reads batches from the log, the next one ahead while one is applied.
    reader: reader::Reader,
    rt: tokio::runtime::Handle,
    /// Whether `CaughtUp` was sent in this run.
    caught_up: bool,
    /// Whether commits record their changes (see `views::changes`).
    recording: bool,
    /// Positions of partitions ahead of the checkpoint, while there are
    /// (see `partitioned`): their events are left out until the
    /// checkpoint passes them.
    partitions: Option<Positions>,
    /// Batches handled, not committed yet (see the module docs).
    held: Option<Held>,
    /// How many times [`BASE_BATCH_EVENTS`] a batch may hold now (see the
    /// module docs).
    batch_scale: usize,
    /// Documents the last batch wrote, when it was held (see the module docs).
    last_batch_keys: Option<usize>,
}

impl Projector {
    /// Run the projector on its own thread until `stop` is set.
    pub fn spawn(
        ctx: ProjectorContext,
        rt: tokio::runtime::Handle,
    ) -> std::io::Result<std::thread::JoinHandle<()>> {
        let name = format!("prism-projector-{}", ctx.plugin);
        std::thread::Builder::new().name(name).spawn(move || {
            let described = ctx.projection.described();
            let wanted = (!described.event_types.is_empty())
                .then(|| described.event_types.iter().cloned().collect());
            // One writer per keyspace: a projector replaced while its last
            // call was still running starts only once that one has let go.
            let keyspace = ctx.keyspace.clone();
            let _writer = keyspace.writer();
            let reader =
                reader::Reader::new(ctx.log.clone(), reader::Filter::types(wanted), &ctx.plugin);
            let mut projector = Projector {
                ctx,
                handler: None,
                reader,
                rt,
                caught_up: false,
                recording: false,
                partitions: None,
                held: None,
                batch_scale: 1,
                last_batch_keys: None,
            };
            projector.run();
        })
    }

    fn stopped(&self) -> bool {
        *self.ctx.stop.borrow()
    }

    fn fresh_handler(&mut self) -> Result<&mut Box<dyn Handler>, String> {
        if self.handler.is_none() {
            self.handler = Some(self.ctx.projection.handler(&self.ctx.keyspace)?);
        }
        Ok(self.handler.as_mut().expect("just set"))
    }

    /// Stop on an error: report it, tell the owner, wait to be stopped.
    fn fail(&mut self, report: ErrorReport) {
        self.ctx.status.fail(report.clone());
        (self.ctx.notify)(ProjectorEvent::Failed(report));
        let mut stop_rx = self.ctx.stop.clone();
        let _ = self.rt.block_on(stop_rx.wait_for(|s| *s));
    }

    fn run(&mut self) {
        if !self.ctx.projection.described().emits.is_empty() && self.ctx.log.is_replicated() {
            return self.fail(ErrorReport::new(
                crate::log::EMITS_NEED_EMBEDDED_LOG.to_string(),
                None,
            ));
        }
        if !self.ctx.projection.described().targets.is_empty() && self.ctx.log.is_replicated() {
            return self.fail(ErrorReport::new(
                crate::outbox::OUTBOX_NEEDS_EMBEDDED_LOG.to_string(),
                None,
            ));
        }
        let start = match self.ctx.keyspace.checkpoint() {
            Ok(p) => p,
            Err(e) => {
                return self.fail(ErrorReport::new(
                    format!("reading the checkpoint: {e}"),
                    None,
                ));
            }
        };
        match self.ctx.keyspace.changes_from() {
            Ok(from) => self.recording = from.is_some(),
            Err(e) => {
                return self.fail(ErrorReport::new(
                    format!("reading the change log: {e}"),
                    None,
                ));
            }
        }
        if let Err(e) = self.fresh_handler() {
            return self.fail(ErrorReport::new(e, None));
        }
        self.ctx.status.start_replay(self.ctx.log.head().max(start));
        self.ctx.applied.send_modify(|p| p.position = start);
        let mut position = match self.partitioned(start) {
            Ok(position) => position,
            Err(Interrupted::Failed(e)) => return self.fail(ErrorReport::new(e, None)),
            Err(Interrupted::Stopped) => return,
        };
        let mut head_rx = self.ctx.log.subscribe();
        let mut stop_rx = self.ctx.stop.clone();
        let mut hold_rx = self.ctx.hold.clone();
        loop {
            if self.stopped() {
                return;
            }
            let head = *head_rx.borrow_and_update();
            let hold = *hold_rx.borrow_and_update();
            let target = hold.map_or(head, |h| h.min(head));
            if position >= target {
                if position >= head {
                    self.caught_up(position);
                }
                let woke = self.rt.block_on(async {
                    tokio::select! {
                        r = head_rx.changed() => r.is_ok(),
                        r = hold_rx.changed() => r.is_ok(),
                        _ = stop_rx.changed() => false,
                    }
                });
                if !woke {
                    return;
                }
                continue;
            }
            match self.step(position, target) {
                Ok(Some(next)) => {
                    position = next;
                    if position >= head {
                        self.caught_up(position);
                    }
                }
                // Halted: wait to be stopped (a rebuild or a new version replaces us).
                Ok(None) => {
                    let report = self
                        .ctx
                        .status
                        .report(head, Duration::MAX)
                        .last_error
                        .unwrap_or_else(|| ErrorReport::new("halted", None));
                    (self.ctx.notify)(ProjectorEvent::Failed(report));
                    let _ = self.rt.block_on(stop_rx.wait_for(|s| *s));
                    return;
                }
                Err(Interrupted::Failed(e)) => return self.fail(ErrorReport::new(e, None)),
                Err(Interrupted::Stopped) => return,
            }
        }
    }

    /// The view is current at `position`: from now on its changes are
    /// recorded for change feeds, and the owner is told (once per run).
    fn caught_up(&mut self, position: Position) {
        if !self.recording {
            match self.ctx.keyspace.start_change_log(position) {
                Ok(()) => self.recording = true,
                Err(e) => {
                    tracing::error!(plugin = %self.ctx.plugin, error = %e, "could not start the change log")
                }
            }
        }
        if !self.caught_up {
            self.caught_up = true;
            (self.ctx.notify)(ProjectorEvent::CaughtUp);
        }
    }

    /// Read and apply one batch after `position`, up to `upto` at most;
    /// the new position, or `None` if the plugin halted. While more is to
    /// be read after the batch, the next one is read ahead meanwhile.
    fn step(
        &mut self,
        position: Position,
        upto: Position,
    ) -> Result<Option<Position>, Interrupted> {
        let limits = self.limits(position, upto);
        let batch = self.reader.next(position, upto, limits)?;
        if batch.last == position {
            return Ok(Some(position));
        }
        // One event at a time means a quarantine is being stepped through:
        // nothing to gain from reading ahead.
        if self.ctx.config.read_ahead && batch.last < upto && limits.events > 1 {
            let next = self.limits(batch.last, upto);
            self.reader.read_ahead(batch.last, upto, next);
        }
        let started = std::time::Instant::now();
        let applied = self.apply_step(&batch.events, batch.last, batch.last < upto)?;
        self.ctx.status.batch_applied(started.elapsed());
        match applied {
            Applied::Ok => {
                let events = batch.events.len();
                self.grow_batches(events, events >= limits.events && limits.events > 1);
                self.ctx.status.counted(batch.scanned as u64);
                if self
                    .partitions
                    .as_ref()
                    .is_some_and(|p| batch.last >= p.furthest())
                {
                    self.ctx
                        .keyspace
                        .end_partitions(batch.last)
                        .map_err(|e| format!("ending a partitioned replay: {e}"))?;
                    self.partitions = None;
                    self.reader.skip_applied(None);
                }
                let last = batch.last;
                self.reader.recycle(batch);
                Ok(Some(last))
            }
            Applied::Halted => Ok(None),
        }
    }

    /// Replay from the checkpoint `start` in partitions if the projection
    /// is replayed so (see `partitioned`); where to go on in order from.
    fn partitioned(&mut self, start: Position) -> Result<Position, Interrupted> {
        let existing = self
            .ctx
            .keyspace
            .partitions()
            .map_err(|e| format!("reading the partitions' positions: {e}"))?;
        let head = self.ctx.log.head();
        let reached = match self.partitions_for(start, head, existing.as_ref()) {
            Some(count) => {
                match self.replay_partitioned(start, head.max(start), count, existing)? {
                    partitioned::Outcome::Done(at) => {
                        self.ctx.status.applied(at);
                        self.ctx.applied.send_modify(|p| p.position = at);
                        return Ok(at);
                    }
                    partitioned::Outcome::Short(reached) => Some(reached),
                }
            }
            None => existing,
        };
        if self.stopped() {
            return Err(Interrupted::Stopped);
        }
        // Some partitions are ahead: go on in order, leaving out what they applied.
        if let Some(reached) = reached {
            self.reader.skip_applied(Some(reached.clone()));
            self.partitions = Some(reached);
        }
        Ok(start)
    }

    fn limits(&self, position: Position, upto: Position) -> reader::Limits {
        batch_limits(&self.ctx.config, position, upto, self.batch_scale)
    }

    /// After a full batch that wrote many documents: let the next ones hold
    /// twice as much if the plugin's memory has room for it (see the module
    /// docs).
    fn grow_batches(&mut self, events: usize, full: bool) {
        let many = self
            .last_batch_keys
            .is_some_and(|keys| keys >= events / MANY_KEYS_PER_EVENTS);
        if full && many {
            let memory = self.handler.as_ref().and_then(|h| h.memory());
            let scale = grown(self.batch_scale, memory, self.ctx.config.max_batch_bytes);
            if scale != self.batch_scale {
                tracing::debug!(plugin = %self.ctx.plugin, scale, ?memory, "batches grow");
                self.batch_scale = scale;
            }
        }
    }

    /// Whether this projection's batches may be held together (see the
    /// module docs).
    fn may_hold(&self) -> bool {
        let described = self.ctx.projection.described();
        described.indexes.is_empty()
            && described.emits.is_empty()
            && described.targets.is_empty()
            && self.ctx.config.careful_until.is_none()
            && !self.recording
            && self.partitions.is_none()
    }

    /// Apply a batch the run loop read, reaching checkpoint `upto`: held
    /// with the batches before it while `more` is to be read and the
    /// projection allows it, else committed with them (see [`Held`]).
    fn apply_step(
        &mut self,
        events: &[Event],
        upto: Position,
        more: bool,
    ) -> Result<Applied, Interrupted> {
        let holding = more && self.may_hold();
        self.last_batch_keys = None;
        if !holding && self.held.is_none() {
            return self.apply(events, upto);
        }
        let mut held = self.held.take().unwrap_or_else(|| Held {
            txn: Transaction::new(),
            upto,
            batches: 0,
            since: std::time::Instant::now(),
        });
        if !events.is_empty() {
            held.txn.mark();
            let note = crash::InFlight::batch(self.ctx.keyspace.family(), events);
            let handler = self.fresh_handler()?;
            let ok = match crash::during(&note, || handler.handle(events, &mut held.txn)) {
                Ok(Ok(())) => self.over_quota(&held.txn).is_none(),
                Ok(Err(_)) => false,
                Err(_) => {
                    self.handler = None;
                    false
                }
            };
            if !ok {
                // Commit what was held before this batch, then apply the
                // batch alone, where a failure is dealt with as always.
                held.txn.undo();
                if held.batches > 0 {
                    self.commit(&held.txn, &[], held.upto)?;
                }
                return self.apply(events, upto);
            }
            self.last_batch_keys = Some(held.txn.keys_since_mark());
            held.txn.keep();
        }
        held.upto = upto;
        held.batches += 1;
        let room = held.txn.held_bytes() < self.ctx.config.limits.host_bytes / 4
            && held.batches < MAX_HELD_BATCHES
            && held.since.elapsed() < self.ctx.config.hold_batches_for;
        if holding && room {
            self.held = Some(held);
        } else {
            self.commit(&held.txn, &[], upto)?;
        }
        self.retire_worn_out();
        Ok(Applied::Ok)
    }

    /// Start afresh between batches instead of failing inside one.
    fn retire_worn_out(&mut self) {
        if self.handler.as_ref().is_some_and(|h| h.worn_out()) {
            tracing::debug!(plugin = %self.ctx.plugin, "replacing a worn-out handler");
            self.handler = None;
        }
    }

    /// Apply `events` and commit with checkpoint `upto` (≥ the last event's position).
    fn apply(&mut self, events: &[Event], upto: Position) -> Result<Applied, Interrupted> {
        let mut txn = Transaction::new();
        if events.is_empty() {
            self.commit(&txn, &[], upto)?;
            return Ok(Applied::Ok);
        }
        let note = crash::InFlight::batch(self.ctx.keyspace.family(), events);
        let handler = self.fresh_handler()?;
        let outcome = crash::during(&note, || handler.handle(events, &mut txn));
        match outcome {
            Ok(Ok(())) => {
                if let Some(problem) = self.over_quota(&txn) {
                    return self.isolate(events, upto, None, problem);
                }
                let indexes = &self.ctx.projection.described().indexes;
                let index_writes = match self.ctx.keyspace.plan_indexes(indexes, &txn) {
                    Ok(Ok(writes)) => writes,
                    Ok(Err(violation)) => {
                        return self.isolate(events, upto, None, violation.to_string());
                    }
                    Err(e) => {
                        return Err(Interrupted::Failed(format!("reading for the indexes: {e}")));
                    }
                };
                let reactions = Reactions {
                    emitted: txn.take_emitted(),
                    outbox: txn.take_outbox(),
                };
                self.commit_with(&txn, &index_writes, &[], upto, reactions)?;
                self.retire_worn_out();
                Ok(Applied::Ok)
            }
            Ok(Err(HandleError { index, message })) => {
                let index = index.map(|i| i as usize).filter(|i| *i < events.len());
                self.isolate(events, upto, index, message)
            }
            Err(trap) => {
                self.handler = None;
                self.isolate(events, upto, None, trap.0)
            }
        }
    }

    /// A slice failed: find the poison event by splitting it, applying the
    /// good parts exactly once.
    fn isolate(
        &mut self,
        events: &[Event],
        upto: Position,
        index: Option<usize>,
        message: String,
    ) -> Result<Applied, Interrupted> {
        // Batches start small again after a failure.
        self.batch_scale = 1;
        if events.len() == 1 {
            return self.poisoned(&events[0], upto, message);
        }
        let split = index.unwrap_or(events.len() / 2);
        let (before, from) = events.split_at(split);
        if !before.is_empty() {
            let before_upto = Position(before.last().expect("non-empty").position);
            if let Applied::Halted = self.apply(before, before_upto)? {
                return Ok(Applied::Halted);
            }
        }
        if index.is_some() {
            // We know `from[0]` is the culprit: deal with it alone, then the rest.
            let culprit_upto = if from.len() == 1 {
                upto
            } else {
                Position(from[0].position)
            };
            if let Applied::Halted = self.poisoned(&from[0], culprit_upto, message)? {
                return Ok(Applied::Halted);
            }
            if from.len() == 1 {
                return Ok(Applied::Ok);
            }
            return self.apply(&from[1..], upto);
        }
        self.apply(from, upto)
    }

    fn poisoned(
        &mut self,
        event: &Event,
        upto: Position,
        message: String,
    ) -> Result<Applied, Interrupted> {
        let position = Position(event.position);
        let described = format!(
            "event {} ({} in {}) failed: {message}",
            event.position, event.event_type, event.stream_id
        );
        match self.ctx.config.policy {
            PoisonPolicy::Halt => {
                self.ctx
                    .status
                    .fail(ErrorReport::new(described, Some(position)));
                Ok(Applied::Halted)
            }
            PoisonPolicy::Skip => {
                let record = serde_json::json!({
                    "position": event.position,
                    "error": message,
                    "event": {
                        "position": event.position,
                        "stream": event.stream_id,
                        "stream_version": event.stream_version,
                        "id": event.id,
                        "type": event.event_type,
                        "data": serde_json::from_str::<serde_json::Value>(&event.data).unwrap_or(serde_json::Value::Null),
                        "metadata": serde_json::from_str::<serde_json::Value>(&event.metadata).unwrap_or(serde_json::Value::Null),
                        "recorded_at_ms": event.recorded_at,
                    },
                });
                self.commit(&Transaction::new(), &[(position, record.to_string())], upto)?;
                self.ctx.status.dead_lettered();
                self.ctx
                    .status
                    .note_error(ErrorReport::new(described, Some(position)));
                Ok(Applied::Ok)
            }
        }
    }

    /// Whether writing `txn` would take the keyspace past its storage quota.
    fn over_quota(&self, txn: &Transaction) -> Option<String> {
        over_quota(&self.ctx.keyspace, self.ctx.config.storage_quota, txn)
    }

    /// Commit the batch. While the disk is short of space (the room left is
    /// the event log's) the commit waits and tries again: that is no fault
    /// of the plugin.
    fn commit(
        &mut self,
        txn: &Transaction,
        dead_letters: &[(Position, String)],
        upto: Position,
    ) -> Result<(), Interrupted> {
        self.commit_with(
            txn,
            &IndexWrites::default(),
            dead_letters,
            upto,
            Reactions::default(),
        )
    }

    fn commit_with(
        &mut self,
        txn: &Transaction,
        index_writes: &IndexWrites,
        dead_letters: &[(Position, String)],
        upto: Position,
        reactions: Reactions,
    ) -> Result<(), Interrupted> {
        let change_log = if self.recording {
            ChangeLog::Record {
                retention: self.ctx.config.change_retention,
            }
        } else {
            ChangeLog::Off
        };
        loop {
            let committed = if reactions.is_empty() {
                self.ctx
                    .keyspace
                    .commit_indexed(txn, index_writes, dead_letters, upto, change_log)
            } else {
                self.commit_reacting(
                    txn,
                    index_writes,
                    dead_letters,
                    upto,
                    change_log,
                    &reactions,
                )?
            };
            match committed {
                Ok(()) => break,
                Err(crate::storage::StorageError::Full) => {
                    self.ctx.status.waiting(Some(
                        "the disk is short of space; the view waits for room (the rest is kept for appends)",
                    ));
                    let mut stop = self.ctx.stop.clone();
                    let stopped = self.rt.block_on(async {
                        tokio::time::timeout(Duration::from_secs(1), stop.wait_for(|s| *s))
                            .await
                            .is_ok()
                    });
                    if stopped {
                        return Err(Interrupted::Stopped);
                    }
                }
                Err(e) => return Err(Interrupted::Failed(format!("committing the batch: {e}"))),
            }
        }
        self.ctx.status.waiting(None);
        self.ctx.status.applied(upto);
        self.ctx.applied.send_modify(|p| p.position = upto);
        Ok(())
    }
}

/// What a batch asked for beyond its view writes: events to append and
/// side effects to enqueue, committed with it.
#[derive(Default)]
struct Reactions {
    emitted: Vec<StreamEvents>,
    outbox: Vec<crate::outbox::NewEntry>,
}

impl Reactions {
    fn is_empty(&self) -> bool {
        self.emitted.is_empty() && self.outbox.is_empty()
    }
}

impl Projector {
    /// Commit the batch, the events it emitted and its outbox requests in
    /// one write through the log (see `emit` and `crate::outbox`). The
    /// outer error stops the projector; the inner one is a storage error
    /// the caller may wait out.
    fn commit_reacting(
        &mut self,
        txn: &Transaction,
        index_writes: &IndexWrites,
        dead_letters: &[(Position, String)],
        upto: Position,
        change_log: ChangeLog,
        reactions: &Reactions,
    ) -> Result<Result<(), StorageError>, Interrupted> {
        let (batch, written) = match self.ctx.keyspace.prepare_commit(
            txn,
            index_writes,
            dead_letters,
            upto,
            change_log,
        ) {
            Ok(prepared) => prepared,
            Err(e) => return Ok(Err(e)),
        };
        let emitted = &reactions.emitted;
        let total: u64 = emitted.iter().map(|r| r.events.len() as u64).sum();
        let requests = reactions.outbox.len() as u64;
        let outcome = self.rt.block_on(self.ctx.log.commit_with_reactions(
            batch,
            emitted.to_vec(),
            reactions.outbox.clone(),
        ));
        match outcome {
            Ok(committed) => {
                self.ctx.keyspace.written(written);
                let outcome = committed.emitted;
                let appended = if outcome.duplicate || total == 0 {
                    0
                } else {
                    outcome.last_position.0 + 1 - outcome.first_position.0
                };
                self.ctx.status.emitted(appended, total - appended);
                self.ctx
                    .status
                    .enqueued(committed.enqueued, requests - committed.enqueued);
                Ok(Ok(()))
            }
            Err(LogError::Storage(e)) => Ok(Err(e)),
            Err(e) => Err(Interrupted::Failed(format!(
                "committing the batch with its emitted events and outbox requests: {e}"
            ))),
        }
    }
}

/// Whether writing `txn` would take `keyspace` past `quota`: why, if so.
fn over_quota(keyspace: &Keyspace, quota: Option<u64>, txn: &Transaction) -> Option<String> {
    let quota = quota?;
    if txn.bytes() == 0 {
        return None;
    }
    let stored = keyspace.stored_bytes();
    (stored + txn.bytes() as u64 > quota).then(|| {
        format!(
            "the view's storage quota of {} MiB is exceeded: it holds {:.1} MiB and the batch would write {:.1} MiB more",
            quota >> 20,
            stored as f64 / f64::from(1 << 20),
            txn.bytes() as f64 / f64::from(1 << 20),
        )
    })
}

/// How much the batch after `position` may hold: as much as the lag up to
/// `upto` allows, within the configured caps; one event while stepping
/// carefully through a quarantine.
fn batch_limits(
    cfg: &ProjectorConfig,
    position: Position,
    upto: Position,
    scale: usize,
) -> reader::Limits {
    let careful = cfg.careful_until.is_some_and(|until| position < until);
    let events = if careful {
        1
    } else {
        (BASE_BATCH_EVENTS * scale)
            .min(cfg.max_batch_events)
            .min((upto.0 - position.0) as usize)
            .max(1)
    };
    reader::Limits {
        events,
        bytes: cfg.max_batch_bytes * scale,
    }
}

/// Most events in a batch before batches grow (see the module docs).
pub const BASE_BATCH_EVENTS: usize = 8192;

/// How many times [`BASE_BATCH_EVENTS`] a batch may grow to.
const MAX_BATCH_SCALE: usize = 8;

/// Batches grow only after one that wrote at least one document per this
/// many events (see the module docs).
const MANY_KEYS_PER_EVENTS: usize = 8;

/// The scale of batches after a full one at `scale`, given the plugin's
/// memory (used, limit) and the bytes a batch of scale 1 may hold.
fn grown(scale: usize, memory: Option<(usize, usize)>, base_bytes: usize) -> usize {
    let next = scale * 2;
    let room = memory.is_some_and(|(used, limit)| {
        used <= limit / 4 && base_bytes.saturating_mul(next) <= limit / 4
    });
    if room && next <= MAX_BATCH_SCALE {
        next
    } else {
        scale
    }
}

/// How long a projector may keep lag without moving before it counts as stalled.
pub const DEFAULT_STALL_AFTER: Duration = Duration::from_secs(30);

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::log::{EventLog, ExpectedVersion, NewEvent};

    /// A projection that counts events per stream and fails at `Poison`:
    /// with an index (a reported error) or without (a trap).
    struct Counter {
        described: Described,
        with_index: bool,
        calls: Arc<AtomicUsize>,
    }

    struct CounterHandler {
        keyspace: Keyspace,
        with_index: bool,
        calls: Arc<AtomicUsize>,
    }

    impl Handler for CounterHandler {
        fn handle(
            &mut self,
            batch: &[Event],
            txn: &mut Transaction,
        ) -> Result<Result<(), HandleError>, CallError> {
            self.calls.fetch_add(1, Ordering::Relaxed);
            for (i, e) in batch.iter().enumerate() {
                if e.event_type == "Poison" {
                    return if self.with_index {
                        Ok(Err(HandleError {
                            index: Some(i as u32),
                            message: "poison".into(),
                        }))
                    } else {
                        Err(CallError("trapped on poison".into()))
                    };
                }
                let n: u64 = txn
                    .get(&self.keyspace, &e.stream_id)
                    .unwrap()
                    .map_or(0, |v| v.parse().unwrap());
                txn.put(e.stream_id.clone(), (n + 1).to_string());
            }
            Ok(Ok(()))
        }
    }

    impl Projection for Counter {
        fn described(&self) -> &Described {
            &self.described
        }

        fn handler(&self, keyspace: &Keyspace) -> Result<Box<dyn Handler>, String> {
            Ok(Box::new(CounterHandler {
                keyspace: keyspace.clone(),
                with_index: self.with_index,
                calls: self.calls.clone(),
            }))
        }

        fn query(&self, _: &Keyspace, name: &str, _: &str) -> Result<String, QueryFailure> {
            Err(QueryFailure::Unknown(name.into()))
        }
    }

    #[test]
    fn batches_grow_while_the_plugin_has_memory_to_spare() {
        const MIB: usize = 1 << 20;
        let base = ProjectorConfig::default().max_batch_bytes;
        let roomy = Some((5 * MIB, 64 * MIB));
        // 4 MiB at scale 1: a quarter of 64 MiB holds a batch of scale 4.
        let mut scale = 1;
        let mut scales = vec![];
        for _ in 0..5 {
            scale = grown(scale, roomy, base);
            scales.push(scale);
        }
        assert_eq!(scales, [2, 4, 4, 4, 4]);
        // A plugin using more than a quarter of its memory (Python, say),
        // or one without a limit, keeps the size it has.
        assert_eq!(grown(1, Some((17 * MIB, 64 * MIB)), base), 1);
        assert_eq!(grown(2, None, base), 2);
        // Never past the largest scale, however much memory there is.
        assert_eq!(
            grown(MAX_BATCH_SCALE, Some((MIB, 1 << 40)), base),
            MAX_BATCH_SCALE
        );
        // The events follow the scale, within the configured cap and the lag.
        let cfg = ProjectorConfig::default();
        let limits = |scale, lag: u64| batch_limits(&cfg, Position(10), Position(10 + lag), scale);
        assert_eq!(limits(4, 1 << 20).events, 4 * BASE_BATCH_EVENTS);
        assert_eq!(limits(4, 1 << 20).bytes, 4 * base);
        assert_eq!(limits(8, 1 << 20).events, cfg.max_batch_events);
        assert_eq!(limits(4, 100).events, 100);
        let capped = ProjectorConfig {
            max_batch_events: 1000,
            ..ProjectorConfig::default()
        };
        assert_eq!(
            batch_limits(&capped, Position(0), Position(1 << 20), 4).events,
            1000
        );
    }

    /// The counting projection, consuming every event type.
    fn counter(with_index: bool, calls: Arc<AtomicUsize>) -> Arc<Counter> {
        Arc::new(Counter {
            described: Described {
                name: "counter".into(),
                version: "1".into(),
                kind: "test".into(),
                event_types: vec![],
                queries: vec![],
                indexes: vec![],
                emits: vec![],
                targets: vec![],
            },
            with_index,
            calls,
        })
    }

    /// 300 events over 3 streams with one `Poison` at `poison`; run to the
    /// end (or the halt) and return the keyspace, status, dead letters and
    /// the number of `handle` calls.
    async fn run(
        poison: u64,
        policy: PoisonPolicy,
        with_index: bool,
    ) -> (tempfile::TempDir, Keyspace, Arc<Status>, Vec<String>, usize) {
        let dir = tempfile::tempdir().unwrap();
        let (log, views) = crate::server::open_stores(dir.path()).unwrap();
        for p in 1..=300u64 {
            let event_type = if p == poison { "Poison" } else { "Counted" };
            let event = NewEvent {
                id: uuid::Uuid::new_v4(),
                client_id: false,
                event_type: event_type.into(),
                data: "{}".into(),
                metadata: "{}".into(),
            };
            log.append(format!("s{}", p % 3), ExpectedVersion::Any, vec![event])
                .await
                .unwrap();
        }
        let keyspace = views.keyspace("counter", "g").unwrap();
        let calls = Arc::new(AtomicUsize::new(0));
        let status = Arc::new(Status::new(Position::ZERO));
        let events = Arc::new(Mutex::new(Vec::new()));
        let (stop_tx, stop) = watch::channel(false);
        let (_hold_tx, hold) = watch::channel(None);
        let seen = events.clone();
        let ctx = ProjectorContext {
            plugin: "counter".into(),
            projection: counter(with_index, calls.clone()),
            log,
            keyspace: keyspace.clone(),
            config: ProjectorConfig {
                max_batch_events: 128,
                policy,
                ..ProjectorConfig::default()
            },
            status: status.clone(),
            applied: Arc::new(watch::Sender::new(Progress::default())),
            stop,
            hold,
            notify: Box::new(move |e| seen.lock().unwrap().push(format!("{e:?}"))),
        };
        let thread = Projector::spawn(ctx, tokio::runtime::Handle::current()).unwrap();
        let done = |s: &Status| s.state() == State::Failed || s.position() == Position(300);
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while !done(&status) {
            assert!(
                std::time::Instant::now() < deadline,
                "{:?}",
                status.report(Position(300), Duration::MAX)
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        stop_tx.send_replace(true);
        tokio::task::spawn_blocking(move || thread.join().unwrap())
            .await
            .unwrap();
        let letters = keyspace.dead_letters(100).unwrap();
        (
            dir,
            keyspace,
            status,
            letters,
            calls.load(Ordering::Relaxed),
        )
    }

    /// 3,000 events over 7 streams (one `Poison` at `poison`), appended a
    /// few per stream in turn; the store and how many events each stream got.
    async fn seven_streams(
        poison: Option<u64>,
    ) -> (
        tempfile::TempDir,
        EventLog,
        crate::views::ViewStore,
        Vec<u64>,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let (log, views) = crate::server::open_stores(dir.path()).unwrap();
        let mut expected = vec![0u64; 7];
        let mut position = 0;
        while position < 3000 {
            let s = (position * 5 / 7) as usize % 7;
            let n = (1 + position % 23).min(3000 - position);
            let events = (0..n)
                .map(|k| {
                    let at = position + k + 1;
                    let poisoned = poison == Some(at);
                    if !poisoned {
                        expected[s] += 1;
                    }
                    NewEvent {
                        id: uuid::Uuid::new_v4(),
                        client_id: false,
                        event_type: if poisoned { "Poison" } else { "Counted" }.into(),
                        data: format!("{{\"at\":{at}}}"),
                        metadata: "{}".into(),
                    }
                })
                .collect();
            log.append(format!("s{s}"), ExpectedVersion::Any, events)
                .await
                .unwrap();
            position += n;
        }
        assert_eq!(log.head(), Position(3000));
        (dir, log, views, expected)
    }

    /// Run a counting projector over `log` into `keyspace` once per entry
    /// of `runs` (its config, and the position to stop it at: `None` for the
    /// head), starting each from where the last one stopped.
    async fn run_until(
        log: &EventLog,
        keyspace: &Keyspace,
        runs: &[(ProjectorConfig, Option<Position>)],
    ) {
        for (config, stop_at) in runs {
            let projection = counter(false, Arc::new(AtomicUsize::new(0)));
            replay_until(projection, log, keyspace, *config, *stop_at).await;
        }
    }

    /// Run a projector of `projection` over `log` into `keyspace` until it
    /// reaches `stop_at` (`None`: the head), then stop it.
    async fn replay_until(
        projection: Arc<dyn Projection>,
        log: &EventLog,
        keyspace: &Keyspace,
        config: ProjectorConfig,
        stop_at: Option<Position>,
    ) {
        let status = Arc::new(Status::new(Position::ZERO));
        let (stop_tx, stop) = watch::channel(false);
        let (_hold_tx, hold) = watch::channel(None);
        let ctx = ProjectorContext {
            plugin: "counter".into(),
            projection,
            log: log.clone(),
            keyspace: keyspace.clone(),
            config,
            status: status.clone(),
            applied: Arc::new(watch::Sender::new(Progress::default())),
            stop,
            hold,
            notify: Box::new(|_| {}),
        };
        let thread = Projector::spawn(ctx, tokio::runtime::Handle::current()).unwrap();
        let goal = stop_at.unwrap_or(log.head());
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while status.position() < goal {
            assert!(
                std::time::Instant::now() < deadline,
                "{:?}",
                status.report(log.head(), Duration::MAX)
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        stop_tx.send_replace(true);
        tokio::task::spawn_blocking(move || thread.join().unwrap())
            .await
            .unwrap();
    }

    fn counts_of(keyspace: &Keyspace, streams: usize) -> Vec<u64> {
        (0..streams)
            .map(|s| {
                keyspace
                    .get(&format!("s{s}"))
                    .unwrap()
                    .map_or(0, |v| v.parse().unwrap())
            })
            .collect()
    }

    fn small_batches(replay_workers: usize) -> ProjectorConfig {
        ProjectorConfig {
            max_batch_events: 16,
            replay_workers,
            policy: PoisonPolicy::Skip,
            ..ProjectorConfig::default()
        }
    }

    /// A projector stopped in the middle of a replay, with a batch read
    /// ahead and not applied, and started again from its checkpoint, ends
    /// with every event applied exactly once.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_replay_stopped_with_a_batch_read_ahead_resumes_exactly() {
        let (_dir, log, views, expected) = seven_streams(None).await;
        let keyspace = views.keyspace("counter", "g").unwrap();
        run_until(&log, &keyspace, &[(small_batches(1), Some(Position(1500)))]).await;
        let stopped_at = keyspace.checkpoint().unwrap();
        assert!(stopped_at < log.head(), "{stopped_at:?}");
        run_until(&log, &keyspace, &[(small_batches(1), None)]).await;
        assert_eq!(keyspace.checkpoint().unwrap(), log.head());
        assert_eq!(counts_of(&keyspace, 7), expected);
    }

    /// Far behind, batches are committed 16 at a time: every checkpoint seen
    /// during the replay is such a boundary, and the view is exact.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_replay_far_behind_commits_its_batches_together_and_exactly() {
        let (_dir, log, views, expected) = seven_streams(None).await;
        let keyspace = views.keyspace("counter", "g").unwrap();
        let watched = keyspace.clone();
        let head = log.head();
        let watcher = std::thread::spawn(move || {
            let mut seen = std::collections::BTreeSet::new();
            let deadline = std::time::Instant::now() + Duration::from_secs(30);
            while std::time::Instant::now() < deadline {
                let at = watched.checkpoint().unwrap();
                seen.insert(at.0);
                if at == head {
                    break;
                }
                std::thread::yield_now();
            }
            seen
        });
        let config = ProjectorConfig {
            hold_batches_for: Duration::from_secs(60),
            ..small_batches(1)
        };
        run_until(&log, &keyspace, &[(config, None)]).await;
        let seen = watcher.join().unwrap();
        let boundary = (MAX_HELD_BATCHES * 16) as u64;
        assert!(
            seen.iter().all(|p| p % boundary == 0 || *p == head.0),
            "{seen:?}"
        );
        assert!(seen.len() > 2, "commits seen during the replay: {seen:?}");
        assert_eq!(counts_of(&keyspace, 7), expected);
    }

    /// Counts like [`Counter`], with room in its memory, noting how many
    /// events each batch it is handed holds.
    struct Sizing {
        described: Described,
        sizes: Arc<Mutex<Vec<usize>>>,
    }

    struct SizingHandler {
        counter: CounterHandler,
        sizes: Arc<Mutex<Vec<usize>>>,
    }

    impl Handler for SizingHandler {
        fn handle(
            &mut self,
            batch: &[Event],
            txn: &mut Transaction,
        ) -> Result<Result<(), HandleError>, CallError> {
            self.sizes.lock().unwrap().push(batch.len());
            self.counter.handle(batch, txn)
        }

        fn memory(&self) -> Option<(usize, usize)> {
            Some((2 << 20, 64 << 20))
        }
    }

    impl Projection for Sizing {
        fn described(&self) -> &Described {
            &self.described
        }

        fn handler(&self, keyspace: &Keyspace) -> Result<Box<dyn Handler>, String> {
            let counter = CounterHandler {
                keyspace: keyspace.clone(),
                with_index: false,
                calls: Arc::new(AtomicUsize::new(0)),
            };
            let sizes = self.sizes.clone();
            Ok(Box::new(SizingHandler { counter, sizes }))
        }

        fn query(&self, _: &Keyspace, name: &str, _: &str) -> Result<String, QueryFailure> {
            Err(QueryFailure::Unknown(name.into()))
        }
    }

    /// Replay 70,000 events, event `i` on stream `i % streams`: the sizes
    /// of the batches handed to the plugin, and whether the view counts
    /// every event.
    async fn batch_sizes(streams: u64) -> (Vec<usize>, bool) {
        let dir = tempfile::tempdir().unwrap();
        let (log, views) = crate::server::open_stores(dir.path()).unwrap();
        let total = 70_000u64;
        for start in (0..total).step_by(1000) {
            let runs = (start..start + 1000)
                .map(|i| StreamEvents {
                    stream: format!("s{}", i % streams),
                    events: vec![NewEvent {
                        id: uuid::Uuid::new_v4(),
                        client_id: false,
                        event_type: "Counted".into(),
                        data: "{}".into(),
                        metadata: "{}".into(),
                    }],
                })
                .collect();
            log.append_runs(runs, vec![]).await.unwrap();
        }
        let keyspace = views.keyspace("sizing", "g").unwrap();
        let sizes = Arc::new(Mutex::new(Vec::new()));
        let projection = Arc::new(Sizing {
            described: counter(false, Arc::new(AtomicUsize::new(0)))
                .described
                .clone(),
            sizes: sizes.clone(),
        });
        replay_until(
            projection,
            &log,
            &keyspace,
            ProjectorConfig::default(),
            None,
        )
        .await;
        let counted: u64 = counts_of(&keyspace, streams as usize).iter().sum();
        let sizes = sizes.lock().unwrap().clone();
        (sizes, counted == total)
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn batches_grow_on_a_history_whose_batches_touch_many_documents() {
        let base = BASE_BATCH_EVENTS;
        // Every event another stream's: each batch writes a document per
        // event, so batches double while the plugin's memory has room
        // (4 MiB of payload per 8,192 events: a quarter of 64 MiB holds 4x).
        let (sizes, exact) = batch_sizes(50_000).await;
        assert!(exact);
        assert_eq!(sizes[..3], [base, 2 * base, 4 * base], "{sizes:?}");
        assert_eq!(sizes.iter().sum::<usize>(), 70_000);
        // A few streams: few documents per batch, the starting size throughout.
        let (sizes, exact) = batch_sizes(4).await;
        assert!(exact);
        assert!(sizes.iter().all(|n| *n <= base), "{sizes:?}");
        assert_eq!(sizes.iter().sum::<usize>(), 70_000);
    }

    /// Replayed by workers in partitions, stopped in the middle (some
    /// partitions ahead of others) and resumed, in partitions or in order,
    /// the view is the one a replay in order builds.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_partitioned_replay_builds_the_view_a_replay_in_order_builds() {
        let (_dir, log, views, expected) = seven_streams(None).await;
        let streams: Vec<usize> = (0..7)
            .map(|s| crate::views::partitions::of(&format!("s{s}"), 3))
            .collect();
        assert!(
            (0..3).all(|p| streams.contains(&p)),
            "every partition has streams: {streams:?}"
        );
        // Resumed in partitions; or in order, as when a quarantine is
        // stepped through (one event at a time up to 700).
        let in_order = ProjectorConfig {
            careful_until: Some(Position(700)),
            ..small_batches(3)
        };
        for (g, resume) in [("in-parts", small_batches(3)), ("then-in-order", in_order)] {
            let keyspace = views.keyspace("counter", g).unwrap();
            run_until(&log, &keyspace, &[(small_batches(3), Some(Position(600)))]).await;
            let parts = keyspace.partitions().unwrap().expect("stopped mid-way");
            assert_eq!(parts.count(), 3);
            assert!(
                keyspace.checkpoint().unwrap() < log.head(),
                "{parts:?} {:?}",
                keyspace.checkpoint()
            );
            run_until(&log, &keyspace, &[(resume, None)]).await;
            assert_eq!(keyspace.partitions().unwrap(), None, "{g}");
            assert_eq!(keyspace.checkpoint().unwrap(), log.head(), "{g}");
            assert_eq!(counts_of(&keyspace, 7), expected, "{g}");
        }
    }

    /// A partition worker leaves the batch its plugin fails on to the
    /// projector, which applies the poison policy to the very event.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_poison_event_in_a_partitioned_replay_is_dead_lettered_alone() {
        let (_dir, log, views, expected) = seven_streams(Some(1234)).await;
        let keyspace = views.keyspace("counter", "g").unwrap();
        run_until(&log, &keyspace, &[(small_batches(2), None)]).await;
        assert_eq!(counts_of(&keyspace, 7), expected);
        let letters = keyspace.dead_letters(10).unwrap();
        assert_eq!(letters.len(), 1);
        assert!(letters[0].contains("\"position\":1234"), "{}", letters[0]);
        assert_eq!(keyspace.partitions().unwrap(), None);
    }

    fn counts(keyspace: &Keyspace) -> Vec<u64> {
        counts_of(keyspace, 3)
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_trapping_batch_is_bisected_and_the_good_events_apply_exactly_once() {
        let (_dir, keyspace, status, letters, calls) = run(150, PoisonPolicy::Skip, false).await;
        assert_eq!(status.position(), Position(300));
        // 299 good events, 100 per stream but one missing from stream 150 % 3 = 0.
        assert_eq!(counts(&keyspace), [99, 100, 100]);
        assert_eq!(letters.len(), 1);
        assert!(letters[0].contains("\"position\":150"), "{}", letters[0]);
        // Bisection, not one call per event.
        assert!(calls < 40, "{calls} calls");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_reported_index_splits_the_batch_exactly_there() {
        let (_dir, keyspace, status, letters, calls) = run(150, PoisonPolicy::Skip, true).await;
        assert_eq!(status.position(), Position(300));
        assert_eq!(counts(&keyspace), [99, 100, 100]);
        assert_eq!(letters.len(), 1);
        assert!(calls <= 6, "{calls} calls");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn halt_stops_right_before_the_poison_with_everything_before_it_applied() {
        let (_dir, keyspace, status, letters, _) = run(150, PoisonPolicy::Halt, false).await;
        assert_eq!(status.state(), State::Failed);
        assert_eq!(status.position(), Position(149));
        assert_eq!(counts(&keyspace).iter().sum::<u64>(), 149);
        assert!(letters.is_empty());
        let error = status
            .report(Position(300), Duration::MAX)
            .last_error
            .unwrap();
        assert_eq!(error.position, Some(Position(150)));
    }
}
