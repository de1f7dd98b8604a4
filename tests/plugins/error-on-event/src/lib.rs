//! `error-on-event`: a plugin made to misbehave politely, for the host's tests.
//!
//! It counts the events of every stream (key: the stream id, value:
//! `{"count": n}`) and declares no event types, so it sees them all. On an
//! event of type `Poison` it returns an error from `handle` instead of
//! trapping. It demonstrates the `handle-error` path: the SDK reports the
//! failing event's index, nothing of its batch is applied, and the host can
//! apply the events before it and report the error message.

use prism_guest::{Description, Error, Event, Projection, View};
use serde_json::json;

#[derive(Default)]
pub struct ErrorOnEvent;

impl Projection for ErrorOnEvent {
    fn describe() -> Description {
        Description::new("error-on-event", env!("CARGO_PKG_VERSION"))
    }

    fn keys(&self, event: &Event) -> Vec<String> {
        vec![event.stream_id.clone()]
    }

    fn handle(&mut self, view: &mut View, event: &Event) -> Result<(), Error> {
        if event.event_type == "Poison" {
            return Err(Error::new(format!(
                "refusing the Poison event at position {}",
                event.position
            )));
        }
        let count = view
            .get_value(&event.stream_id)?
            .and_then(|counter| counter["count"].as_u64())
            .unwrap_or(0);
        view.put_value(&event.stream_id, json!({ "count": count + 1 }))
    }
}

prism_guest::export_projection!(ErrorOnEvent);
