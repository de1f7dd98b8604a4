//! `trap-on-event`: a plugin made to misbehave, for the host's tests.
//!
//! It counts the events of every stream (key: the stream id, value:
//! `{"count": n}`) like any well-behaved projection, and declares no event
//! types, so it sees them all — until an event of type `Poison` arrives: then
//! it panics, which traps the instance. It demonstrates that a trap is
//! contained: the batch is not applied, the plugin is reported failed at that
//! event, and other plugins and the log carry on.

use prism_guest::{Description, Error, Event, Projection, View};
use serde_json::json;

#[derive(Default)]
pub struct TrapOnEvent;

impl Projection for TrapOnEvent {
    fn describe() -> Description {
        Description::new("trap-on-event", env!("CARGO_PKG_VERSION"))
    }

    fn keys(&self, event: &Event) -> Vec<String> {
        vec![event.stream_id.clone()]
    }

    fn handle(&mut self, view: &mut View, event: &Event) -> Result<(), Error> {
        if event.event_type == "Poison" {
            panic!("trapping on purpose at position {}", event.position);
        }
        let count = view
            .get_value(&event.stream_id)?
            .and_then(|counter| counter["count"].as_u64())
            .unwrap_or(0);
        view.put_value(&event.stream_id, json!({ "count": count + 1 }))
    }
}

prism_guest::export_projection!(TrapOnEvent);
