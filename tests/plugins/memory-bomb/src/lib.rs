//! `memory-bomb`: a plugin made to misbehave, for the host's tests.
//!
//! It describes itself normally (all event types) and then, in `handle`,
//! allocates one MiB after another and keeps them all. It demonstrates that
//! the host's memory limit stops it: growing linear memory past the limit
//! fails, the allocation fails, and the instance traps instead of taking the
//! host's memory with it.

use prism_guest::{Description, Error, Event, Projection, View};

const MIB: usize = 1 << 20;

#[derive(Default)]
pub struct MemoryBomb;

impl Projection for MemoryBomb {
    fn describe() -> Description {
        Description::new("memory-bomb", env!("CARGO_PKG_VERSION"))
    }

    fn handle(&mut self, _view: &mut View, _event: &Event) -> Result<(), Error> {
        let mut hoard: Vec<Vec<u8>> = Vec::new();
        loop {
            // Filled with a non-zero byte so every page is really touched, and
            // `black_box` so the optimiser cannot drop what is never read.
            hoard.push(std::hint::black_box(vec![0xA5; MIB]));
        }
    }
}

prism_guest::export_projection!(MemoryBomb);
