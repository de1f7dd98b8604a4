//! `endless-loop`: a plugin made to misbehave, for the host's tests.
//!
//! It describes itself normally (all event types) and then never returns from
//! `handle`. It demonstrates that the host's CPU deadline (epoch interruption
//! or fuel) stops a runaway plugin, and that the plugin's endless batch holds
//! up neither other plugins nor appends to the log.

use prism_guest::{Description, Error, Event, Projection, View};

#[derive(Default)]
pub struct EndlessLoop;

impl Projection for EndlessLoop {
    fn describe() -> Description {
        Description::new("endless-loop", env!("CARGO_PKG_VERSION"))
    }

    fn handle(&mut self, _view: &mut View, _event: &Event) -> Result<(), Error> {
        // `black_box` keeps the optimiser from proving the loop useless.
        let mut spins: u64 = 0;
        loop {
            spins = std::hint::black_box(spins.wrapping_add(1));
        }
    }
}

prism_guest::export_projection!(EndlessLoop);
