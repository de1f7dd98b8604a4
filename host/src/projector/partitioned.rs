//! Replay in partitions: several workers, one core each, for a projection
//! whose documents each belong to one stream.
//!
//! Such a projection gives the same view whatever the order of events of
//! different streams, so its replay can be split by stream: worker `i` of
//! `n` hands its own plugin instance the events of the streams that hash
//! to `i` (`views::partitions::of`), in log order, and commits each batch
//! with its partition's position. The operator declares that a plugin is
//! such a projection with `replay_workers` in `prism.toml`.
//!
//! # Exactly once, across crashes
//! The keyspace keeps one position per partition beside its checkpoint;
//! an event is applied if and only if its position is at most the
//! checkpoint or its partition's position (see `views::partitions`). A
//! worker's commit moves only its partition's position. When every worker
//! has reached the target, one write makes the target the checkpoint and
//! forgets the partitions. A crash in between leaves the positions, and
//! the next run resumes each partition from its own.
//!
//! # What the workers leave to the projector
//! A worker stops at the first batch its plugin fails on (an error, a
//! trap, the storage quota) and leaves that batch uncommitted. The
//! projector then goes on in order from the checkpoint, leaving out what
//! the partitions applied, and meets the failing event with its usual
//! bisection and poison policy. The same happens when a plugin has
//! partition positions but is no longer replayed in partitions (fewer
//! workers configured, a quarantine being stepped through).
//!
//! Only a projection without secondary indexes, emitted events or outbox
//! targets is replayed in partitions: a unique index is checked across
//! documents, and emitted events and requests are ordered by the log.

use std::sync::Mutex;

use tokio::sync::watch;

use crate::log::{EventLog, Position};
use crate::storage::StorageError;
use crate::views::partitions::{Partition, Positions};
use crate::views::{Keyspace, Transaction};

use super::reader::{self, Filter};
use super::{
    Interrupted, Progress, Projection, Projector, ProjectorConfig, Status, batch_limits, over_quota,
};

/// How far a partitioned replay got.
pub(super) enum Outcome {
    /// Every partition reached the target, which is now the checkpoint.
    Done(Position),
    /// Some partition stopped short (or the projector was told to stop):
    /// the positions reached.
    Short(Positions),
}

/// What every worker shares.
struct Shared {
    /// Each partition's position, for the status (the smallest is reported).
    positions: Mutex<Vec<Position>>,
    /// Commits run one at a time: they share the keyspace's records.
    commit: Mutex<()>,
}

impl Projector {
    /// Whether the replay from `start` to `head` is run in partitions,
    /// and with how many workers: resumed if the keyspace has partition
    /// positions, started if the projection may be and the lag is worth it.
    pub(super) fn partitions_for(
        &self,
        start: Position,
        head: Position,
        existing: Option<&Positions>,
    ) -> Option<usize> {
        let described = self.ctx.projection.described();
        let cfg = self.ctx.config;
        let eligible = described.indexes.is_empty()
            && described.emits.is_empty()
            && described.targets.is_empty()
            && cfg.careful_until.is_none()
            && !self.recording
            && self.ctx.hold.borrow().is_none();
        if !eligible {
            return None;
        }
        match existing {
            Some(positions) => Some(positions.count()),
            None => {
                let workers = cfg.replay_workers;
                let lag = head.0.saturating_sub(start.0) as usize;
                let batch = cfg.max_batch_events.min(super::BASE_BATCH_EVENTS);
                (workers > 1 && lag >= batch * workers).then_some(workers)
            }
        }
    }

    /// Replay from the checkpoint `start` to `target` in `count`
    /// partitions, each on a thread of its own, resuming from `existing`
    /// positions if there are.
    pub(super) fn replay_partitioned(
        &mut self,
        start: Position,
        target: Position,
        count: usize,
        existing: Option<Positions>,
    ) -> Result<Outcome, Interrupted> {
        let keyspace = self.ctx.keyspace.clone();
        let from = match existing {
            Some(p) => p.positions,
            None => {
                keyspace
                    .start_partitions(count, start)
                    .map_err(|e| format!("starting a partitioned replay: {e}"))?;
                vec![start; count]
            }
        };
        tracing::info!(plugin = %self.ctx.plugin, workers = count, from = start.0, to = target.0, "replaying in partitions");
        let shared = Shared {
            positions: Mutex::new(from.clone()),
            commit: Mutex::new(()),
        };
        let ctx = &self.ctx;
        let types = self.reader.filter().types.clone();
        let reached: Vec<Position> = std::thread::scope(|scope| {
            let workers: Vec<_> = from
                .iter()
                .enumerate()
                .map(|(index, at)| {
                    let part = Partition { index, count };
                    let worker = Worker {
                        part,
                        from: (*at).max(start),
                        target,
                        plugin: &ctx.plugin,
                        projection: &*ctx.projection,
                        log: &ctx.log,
                        keyspace: &keyspace,
                        config: ctx.config,
                        filter: Filter {
                            types: types.clone(),
                            partition: Some(part),
                            applied: None,
                        },
                        status: &ctx.status,
                        applied: &ctx.applied,
                        stop: &ctx.stop,
                        shared: &shared,
                    };
                    std::thread::Builder::new()
                        .name(format!("prism-part-{index}-{}", ctx.plugin))
                        .spawn_scoped(scope, move || worker.run())
                })
                .collect();
            workers
                .into_iter()
                .zip(&from)
                .map(|(worker, at)| match worker {
                    Ok(handle) => handle.join().unwrap_or(*at),
                    Err(e) => {
                        tracing::warn!(plugin = %ctx.plugin, error = %e, "could not start a partition worker");
                        *at
                    }
                })
                .collect()
        });
        if reached.iter().all(|p| *p >= target) {
            keyspace
                .end_partitions(target)
                .map_err(|e| format!("ending a partitioned replay: {e}"))?;
            return Ok(Outcome::Done(target));
        }
        Ok(Outcome::Short(Positions { positions: reached }))
    }
}

/// One partition's replay, with what it needs of the projector.
struct Worker<'a> {
    part: Partition,
    from: Position,
    target: Position,
    plugin: &'a str,
    projection: &'a dyn Projection,
    log: &'a EventLog,
    keyspace: &'a Keyspace,
    config: ProjectorConfig,
    filter: Filter,
    status: &'a Status,
    applied: &'a watch::Sender<Progress>,
    stop: &'a watch::Receiver<bool>,
    shared: &'a Shared,
}

impl Worker<'_> {
    /// Apply the partition's events up to the target; the position reached.
    fn run(self) -> Position {
        let plugin = self.plugin;
        let mut position = self.from;
        let mut handler = match self.projection.handler(self.keyspace) {
            Ok(handler) => handler,
            Err(e) => {
                tracing::warn!(plugin, error = %e, "a partition worker could not start its plugin");
                return position;
            }
        };
        let mut spare = Vec::new();
        while position < self.target && !*self.stop.borrow() {
            let limits = batch_limits(&self.config, position, self.target, 1);
            let read = reader::read(
                self.log,
                &self.filter,
                position,
                self.target,
                limits,
                std::mem::take(&mut spare),
            );
            let batch = match read {
                Ok(batch) => batch,
                Err(e) => {
                    tracing::warn!(plugin, error = %e, "a partition worker could not read the log");
                    return position;
                }
            };
            let mut txn = Transaction::new();
            if !batch.events.is_empty() {
                let note = super::crash::InFlight::batch(self.keyspace.family(), &batch.events);
                let handled =
                    super::crash::during(&note, || handler.handle(&batch.events, &mut txn));
                // A failing batch is left to the projector, which finds
                // the event and applies the poison policy.
                if !matches!(handled, Ok(Ok(()))) {
                    return position;
                }
                if over_quota(self.keyspace, self.config.storage_quota, &txn).is_some() {
                    return position;
                }
            }
            if let Err(e) = self.commit(&txn, batch.last) {
                tracing::warn!(plugin, error = %e, "a partition worker could not commit");
                return position;
            }
            position = batch.last;
            self.status.counted(batch.events.len() as u64);
            spare = batch.events;
            if handler.worn_out() {
                match self.projection.handler(self.keyspace) {
                    Ok(fresh) => handler = fresh,
                    Err(_) => return position,
                }
            }
        }
        position
    }

    fn commit(&self, txn: &Transaction, upto: Position) -> Result<(), StorageError> {
        let _one_at_a_time = self.shared.commit.lock().expect("commit lock");
        self.keyspace.commit_partition(txn, self.part, upto)?;
        let mut positions = self.shared.positions.lock().expect("positions lock");
        positions[self.part.index] = upto;
        let slowest = positions.iter().copied().min().unwrap_or(upto);
        self.status.applied(slowest);
        self.applied
            .send_modify(|p| p.position = p.position.max(slowest));
        Ok(())
    }
}
