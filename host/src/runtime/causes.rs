//! The batch a `handle` call is working on, seen as the causes of what the
//! projection emits (`emit`) or asks the outbox for (`outbox`): the id of
//! each effect derives from its cause and its index among that cause's
//! effects, which this counts.

use std::collections::HashMap;

use crate::projector::emit::Cause;
use crate::runtime::bindings::Event;

/// The events of the batch in flight, by position, and how many effects
/// each has had so far in this call.
#[derive(Default)]
pub struct Causes {
    causes: Vec<Cause>,
    counts: HashMap<u64, u32>,
}

impl Causes {
    /// A `handle` call starts with `batch`; `with_metadata` keeps each
    /// event's metadata (emitted events carry their cause's correlation).
    pub(crate) fn begin(&mut self, batch: &[Event], with_metadata: bool) {
        self.end();
        self.causes.extend(batch.iter().map(|e| Cause {
            position: e.position,
            id: e.id.clone(),
            metadata: if with_metadata {
                e.metadata.clone()
            } else {
                String::new()
            },
        }));
    }

    /// The call is over: no batch is in flight.
    pub(crate) fn end(&mut self) {
        self.causes.clear();
        self.counts.clear();
    }

    /// The event at `position` in the batch in flight and the index its
    /// next effect gets; `None` if no such event is in flight.
    pub(crate) fn next(&self, position: u64) -> Option<(&Cause, u32)> {
        let at = self
            .causes
            .binary_search_by_key(&position, |c| c.position)
            .ok()?;
        let index = self.counts.get(&position).copied().unwrap_or(0);
        Some((&self.causes[at], index))
    }

    /// The effect [`Causes::next`] named for `position` was taken.
    pub(crate) fn counted(&mut self, position: u64) {
        *self.counts.entry(position).or_insert(0) += 1;
    }
}
