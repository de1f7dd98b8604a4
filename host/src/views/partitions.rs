//! Positions of a keyspace replayed in partitions.
//!
//! A projection whose documents each belong to one stream can be replayed
//! by several workers at once, each taking the streams that hash to it
//! (see `projector::partitioned`). Each worker commits its view writes with
//! its own position, `partition/{family}/{count}/{index}`, in one atomic
//! write, as the projector commits with the keyspace's checkpoint. The
//! rule that makes this exact across crashes: an event of partition `i` is
//! applied if and only if its position is at most the keyspace's checkpoint
//! or partition `i`'s position. When the checkpoint has passed every
//! partition's position, the positions are removed.

use super::{Keyspace, Transaction};
use crate::log::Position;
use crate::storage::codec;
use crate::storage::{CF_META, Durability, Reading, Seek, StorageError, WriteSet};

/// One of `count` partitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Partition {
    pub index: usize,
    pub count: usize,
}

impl Partition {
    /// Whether events of `stream` belong to this partition.
    pub fn owns(&self, stream: &str) -> bool {
        of(stream, self.count) == self.index
    }
}

/// The partition of `stream` among `count`: FNV-1a of its name, stable
/// across versions and restarts (positions are kept per partition).
pub fn of(stream: &str, count: usize) -> usize {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in stream.as_bytes() {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    (hash % count.max(1) as u64) as usize
}

/// The positions a keyspace's partitions reached, and how many there are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Positions {
    pub positions: Vec<Position>,
}

impl Positions {
    pub fn count(&self) -> usize {
        self.positions.len()
    }

    /// Whether the event at `position` in `stream` is applied, given the
    /// keyspace's checkpoint `checkpoint`.
    pub fn applied(&self, checkpoint: Position, stream: &str, position: Position) -> bool {
        position <= checkpoint.max(self.positions[of(stream, self.count())])
    }

    /// The furthest any partition reached.
    pub fn furthest(&self) -> Position {
        self.positions
            .iter()
            .copied()
            .max()
            .unwrap_or(Position::ZERO)
    }
}

pub(super) fn key(family: &str, part: Partition) -> Vec<u8> {
    format!("partition/{family}/{}/{}", part.count, part.index).into_bytes()
}

/// The meta keys of a family's partitions: `[start, end)`.
pub(super) fn range(family: &str) -> (Vec<u8>, Vec<u8>) {
    (
        format!("partition/{family}/").into_bytes(),
        format!("partition/{family}0").into_bytes(),
    )
}

impl Keyspace {
    /// The positions of this keyspace's partitions, if it is being (or
    /// was, and the checkpoint has not yet passed them) replayed in
    /// partitions.
    pub fn partitions(&self) -> Result<Option<Positions>, StorageError> {
        let meta = self.store.fixed(CF_META);
        let (start, end) = range(self.family());
        let mut found: Vec<(usize, usize, Position)> = Vec::new();
        for item in self.store.scan(&meta, Seek::From(&start), Reading::Cached) {
            let (k, v) = item?;
            if k.as_ref() >= end.as_slice() {
                break;
            }
            let name = String::from_utf8_lossy(&k[start.len()..]).into_owned();
            let parsed = name
                .split_once('/')
                .and_then(|(c, i)| Some((c.parse().ok()?, i.parse().ok()?)));
            let Some((count, index)) = parsed else {
                return Err(StorageError::Corrupt(format!(
                    "a partition position named {name:?}"
                )));
            };
            found.push((count, index, Position(codec::decode_u64(&v)?)));
        }
        let Some(&(count, _, _)) = found.first() else {
            return Ok(None);
        };
        let mut positions = vec![Position::ZERO; count];
        for (c, index, position) in found {
            if c != count || index >= count {
                return Err(StorageError::Corrupt(format!(
                    "partition positions of {} for {count} and {c} partitions",
                    self.family()
                )));
            }
            positions[index] = position;
        }
        Ok(Some(Positions { positions }))
    }

    /// Record that `count` partitions start at `from` (one write): from
    /// now on the keyspace is replayed in partitions until they are ended.
    pub fn start_partitions(&self, count: usize, from: Position) -> Result<(), StorageError> {
        let meta = self.store.fixed(CF_META);
        let mut writes = WriteSet::default();
        for index in 0..count {
            writes.put(
                &meta,
                key(self.family(), Partition { index, count }),
                codec::u64_key(from.0),
            );
        }
        self.store.write(writes, Durability::Buffered)
    }

    /// Commit a partition's batch: its writes and its position `upto`,
    /// atomically. Commits of different partitions may run at once only
    /// if the caller serialises them (they share the keyspace's records).
    pub fn commit_partition(
        &self,
        txn: &Transaction,
        part: Partition,
        upto: Position,
    ) -> Result<(), StorageError> {
        let (batch, written) =
            self.prepare_batch(txn, None, &[], upto, super::ChangeLog::Off, Some(part))?;
        self.store.write(batch, Durability::Buffered)?;
        self.written(written);
        Ok(())
    }

    /// Every partition reached `checkpoint`: make it the keyspace's
    /// checkpoint and forget the partitions, in one write.
    pub fn end_partitions(&self, checkpoint: Position) -> Result<(), StorageError> {
        let meta = self.store.fixed(CF_META);
        let mut writes = WriteSet::default();
        let (start, end) = range(self.family());
        writes.delete_range(&meta, start, end);
        writes.put(
            &meta,
            super::checkpoint_key(self.family()),
            codec::u64_key(checkpoint.0),
        );
        self.store.write(writes, Durability::Buffered)
    }
}
