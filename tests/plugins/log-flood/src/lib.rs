//! `log-flood`: a plugin made to misbehave, for the host's tests.
//!
//! For every event it writes thousands of lines through the `logging` import
//! and as many to stdout, then counts the event like a well-behaved projection
//! (key: the stream id, value: `{"count": n}`; all event types). It
//! demonstrates that the plugin's log stays bounded, that stdout cannot flood
//! the host, and that the projection still makes progress.

use prism_guest::{Description, Error, Event, Projection, View};
use serde_json::json;

/// Lines per event through each channel.
const LINES_PER_EVENT: u32 = 5_000;

#[derive(Default)]
pub struct LogFlood;

impl Projection for LogFlood {
    fn describe() -> Description {
        Description::new("log-flood", env!("CARGO_PKG_VERSION"))
    }

    fn keys(&self, event: &Event) -> Vec<String> {
        vec![event.stream_id.clone()]
    }

    fn handle(&mut self, view: &mut View, event: &Event) -> Result<(), Error> {
        for line in 0..LINES_PER_EVENT {
            prism_guest::info!(
                "flood line {line} of {LINES_PER_EVENT} for the event at position {}",
                event.position
            );
            println!(
                "stdout flood line {line} of {LINES_PER_EVENT} for the event at position {}",
                event.position
            );
        }
        let count = view
            .get_value(&event.stream_id)?
            .and_then(|counter| counter["count"].as_u64())
            .unwrap_or(0);
        view.put_value(&event.stream_id, json!({ "count": count + 1 }))
    }
}

prism_guest::export_projection!(LogFlood);
