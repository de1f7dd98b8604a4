//! The projector: moves events from the log through one plugin generation
//! into its keyspace, batch by batch, exactly once.
//!
//! Each generation has its own thread. It reads from its checkpoint, drops
//! events of types the plugin did not ask for (their positions still count),
//! calls `handle` with the rest, and commits the view writes with the new
//! checkpoint in one `WriteBatch`. Batches are as large as the lag allows, up
//! to a cap: big while replaying, one or a few events when live. When caught
//! up it sleeps on the log's head notification. A failing batch is bisected
//! to find the exact poison event, so the good events around it are applied
//! exactly once; the poison policy then halts the plugin or dead-letters the
//! event and goes on.

mod status;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, watch};

pub use status::{ErrorReport, State, Status, StatusReport};

use crate::log::{EventLog, Position, RecordedEvent};
use crate::runtime::bindings::{Event, HandleError};
use crate::runtime::view::ViewAccess;
use crate::runtime::{CompiledPlugin, PluginInstance, PluginLimits, PluginLog, Runtime};
use crate::views::{Change, Keyspace, Transaction};

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
    /// Most events handed to the plugin in one call. Default 8192.
    pub max_batch_events: usize,
    /// Most payload bytes in one batch, to stay well inside the plugin's memory. Default 4 MiB.
    pub max_batch_bytes: usize,
    pub policy: PoisonPolicy,
    pub limits: PluginLimits,
}

impl Default for ProjectorConfig {
    fn default() -> Self {
        ProjectorConfig {
            max_batch_events: 8192,
            max_batch_bytes: 4 << 20,
            policy: PoisonPolicy::Halt,
            limits: PluginLimits::default(),
        }
    }
}

/// Changes committed by one batch, for the change feed.
#[derive(Debug, Clone)]
pub struct CommittedChanges {
    /// The checkpoint the batch committed.
    pub position: Position,
    pub changes: Vec<Change>,
}

/// Everything a projector thread works with.
pub struct ProjectorContext {
    pub plugin: String,
    pub runtime: Runtime,
    pub compiled: CompiledPlugin,
    pub log: EventLog,
    pub keyspace: Keyspace,
    pub config: ProjectorConfig,
    pub status: Arc<Status>,
    pub plugin_log: Arc<PluginLog>,
    /// The position the keyspace reflects, for read-your-writes waits.
    pub applied: watch::Sender<Position>,
    pub changes: broadcast::Sender<Arc<CommittedChanges>>,
    /// Set to true to stop the projector.
    pub stop: watch::Receiver<bool>,
    /// The event types the plugin consumes; `None` for all.
    pub wanted: Option<HashSet<String>>,
}

/// The outcome of applying a slice of events.
enum Applied {
    Ok,
    /// The plugin halted on this event.
    Halted,
}

pub struct Projector {
    ctx: ProjectorContext,
    instance: Option<PluginInstance>,
    rt: tokio::runtime::Handle,
}

impl Projector {
    /// Run the projector on its own thread until `stop` is set.
    pub fn spawn(
        ctx: ProjectorContext,
        rt: tokio::runtime::Handle,
    ) -> std::io::Result<std::thread::JoinHandle<()>> {
        let name = format!("prism-projector-{}", ctx.plugin);
        std::thread::Builder::new().name(name).spawn(move || {
            let mut projector = Projector {
                ctx,
                instance: None,
                rt,
            };
            projector.run();
        })
    }

    fn stopped(&self) -> bool {
        *self.ctx.stop.borrow()
    }

    fn fresh_instance(&mut self) -> Result<&mut PluginInstance, String> {
        if self.instance.is_none() {
            let view = ViewAccess::new(self.ctx.keyspace.clone());
            let instance = self
                .ctx
                .runtime
                .instantiate(
                    &self.ctx.compiled,
                    view,
                    self.ctx.plugin_log.clone(),
                    self.ctx.config.limits,
                )
                .map_err(|e| e.to_string())?;
            self.instance = Some(instance);
        }
        Ok(self.instance.as_mut().expect("just set"))
    }

    fn run(&mut self) {
        let start = match self.ctx.keyspace.checkpoint() {
            Ok(p) => p,
            Err(e) => {
                self.ctx.status.fail(ErrorReport::new(
                    format!("reading the checkpoint: {e}"),
                    None,
                ));
                return;
            }
        };
        if let Err(e) = self.fresh_instance() {
            self.ctx.status.fail(ErrorReport::new(e, None));
            return;
        }
        self.ctx.status.start_replay(self.ctx.log.head().max(start));
        self.ctx.applied.send_replace(start);
        let mut position = start;
        let mut head_rx = self.ctx.log.subscribe();
        let mut stop_rx = self.ctx.stop.clone();
        loop {
            if self.stopped() {
                return;
            }
            let head = *head_rx.borrow_and_update();
            if position >= head {
                let woke = self.rt.block_on(async {
                    tokio::select! {
                        r = head_rx.changed() => r.is_ok(),
                        _ = stop_rx.changed() => false,
                    }
                });
                if !woke {
                    return;
                }
                continue;
            }
            match self.step(position, head) {
                Ok(Some(next)) => position = next,
                Ok(None) => {
                    // Halted: wait to be stopped (a rebuild or a new version replaces us).
                    let _ = self.rt.block_on(stop_rx.wait_for(|s| *s));
                    return;
                }
                Err(e) => {
                    self.ctx.status.fail(ErrorReport::new(e, None));
                    let _ = self.rt.block_on(stop_rx.wait_for(|s| *s));
                    return;
                }
            }
        }
    }

    /// Read and apply one batch after `position`; the new position, or
    /// `None` if the plugin halted.
    fn step(&mut self, position: Position, head: Position) -> Result<Option<Position>, String> {
        let cfg = self.ctx.config;
        let mut last = position;
        let mut bytes = 0usize;
        let mut batch: Vec<Event> = Vec::new();
        let max_events = cfg
            .max_batch_events
            .min((head.0 - position.0) as usize)
            .max(1);
        let wanted = self.ctx.wanted.as_ref();
        let mut scanned = 0usize;
        self.ctx
            .log
            .scan_where(
                position.next(),
                |event_type| wanted.is_none_or(|w| w.contains(event_type)),
                |at, event| {
                    last = at;
                    scanned += 1;
                    if let Some(e) = event {
                        bytes += e.data.len() + e.metadata.len();
                        batch.push(to_wit(e));
                    }
                    // Filtered-out events are not decoded: let the scan run further past them.
                    batch.len() < max_events
                        && bytes < cfg.max_batch_bytes
                        && scanned < max_events * 8
                },
            )
            .map_err(|e| format!("reading the log: {e}"))?;
        if last == position {
            return Ok(Some(position));
        }
        let started = std::time::Instant::now();
        let applied = self.apply(&batch, last)?;
        self.ctx.status.batch_applied(started.elapsed());
        match applied {
            Applied::Ok => {
                self.ctx.status.counted(scanned as u64);
                Ok(Some(last))
            }
            Applied::Halted => Ok(None),
        }
    }

    /// Apply `events` and commit with checkpoint `upto` (≥ the last event's position).
    fn apply(&mut self, events: &[Event], upto: Position) -> Result<Applied, String> {
        let mut txn = Transaction::new();
        if events.is_empty() {
            self.commit(&txn, &[], upto)?;
            return Ok(Applied::Ok);
        }
        let outcome = self.fresh_instance()?.handle(events, &mut txn);
        match outcome {
            Ok(Ok(())) => {
                self.commit(&txn, &[], upto)?;
                if self
                    .instance
                    .as_ref()
                    .is_some_and(PluginInstance::nearly_full)
                {
                    // Some language runtimes never return memory; start afresh
                    // between batches instead of failing inside one.
                    tracing::debug!(plugin = %self.ctx.plugin, "replacing an instance near its memory limit");
                    self.instance = None;
                }
                Ok(Applied::Ok)
            }
            Ok(Err(HandleError { index, message })) => {
                let index = index.map(|i| i as usize).filter(|i| *i < events.len());
                self.isolate(events, upto, index, message)
            }
            Err(trap) => {
                self.instance = None;
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
    ) -> Result<Applied, String> {
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
    ) -> Result<Applied, String> {
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

    fn commit(
        &self,
        txn: &Transaction,
        dead_letters: &[(Position, String)],
        upto: Position,
    ) -> Result<(), String> {
        self.ctx
            .keyspace
            .commit(txn, dead_letters, upto)
            .map_err(|e| format!("committing the batch: {e}"))?;
        self.ctx.status.applied(upto);
        if !txn.is_empty() && self.ctx.changes.receiver_count() > 0 {
            let _ = self.ctx.changes.send(Arc::new(CommittedChanges {
                position: upto,
                changes: txn.changes(),
            }));
        }
        self.ctx.applied.send_replace(upto);
        Ok(())
    }
}

/// A log event as the WIT `event` record.
pub fn to_wit(e: RecordedEvent) -> Event {
    Event {
        position: e.position.0,
        stream_id: e.stream,
        stream_version: e.stream_version.0,
        event_type: e.event_type,
        data: e.data,
        metadata: e.metadata,
        recorded_at: e.recorded_at_ms,
        id: e.id.hyphenated().to_string(),
    }
}

/// How long a projector may keep lag without moving before it counts as stalled.
pub const DEFAULT_STALL_AFTER: Duration = Duration::from_secs(30);
