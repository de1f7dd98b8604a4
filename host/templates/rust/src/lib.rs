//! `{{name}}`: a Prism projection. Under each stream's id, how many events
//! the stream holds and the type of the last one:
//!
//! ```json
//! {"events": 2, "last_type": "OrderShipped"}
//! ```

use prism_guest::{Description, Error, Event, Projection, Queries, View};
use serde::{Deserialize, Serialize};

/// The projection; it keeps nothing outside the view.
#[derive(Default)]
pub struct {{type_name}};

/// The document under each stream id.
#[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StreamStats {
    pub events: u64,
    pub last_type: String,
}

impl Projection for {{type_name}} {
    fn describe() -> Description {
        // No event types: every event. List some to receive only those.
        Description::new("{{name}}", env!("CARGO_PKG_VERSION"))
    }

    // The keys `handle` reads, fetched for a whole batch at once.
    fn keys(&self, event: &Event) -> Vec<String> {
        vec![event.stream_id.clone()]
    }

    fn handle(&mut self, view: &mut View, event: &Event) -> Result<(), Error> {
        view.upsert(&event.stream_id, |stats: &mut StreamStats| {
            stats.events += 1;
            stats.last_type = event.event_type.clone();
        })
    }

    // GET /views/{{name}}/_query/events?stream=order-1
    fn queries() -> Queries<Self> {
        Queries::new().query("events", |_, view, params| {
            let stream: String = params.get("stream")?;
            Ok(view
                .get_json::<StreamStats>(&stream)?
                .map_or(0, |stats| stats.events))
        })
    }
}

prism_guest::export_projection!({{type_name}});

#[cfg(test)]
mod tests {
    use prism_guest::Params;
    use prism_guest::testing::{Harness, event};
    use serde_json::json;

    use super::*;

    #[test]
    fn counts_the_events_of_each_stream() {
        let mut harness = Harness::<{{type_name}}>::new().given([
            event("order-1", "OrderPlaced", json!({"total": 30})),
            event("order-1", "OrderShipped", json!({})),
            event("order-2", "OrderPlaced", json!({"total": 5})),
        ]);
        assert_eq!(
            harness.view("order-1"),
            Some(json!({"events": 2, "last_type": "OrderShipped"}))
        );
        assert_eq!(
            harness.query("events", Params::new().with("stream", "order-2")),
            Ok(json!(1))
        );
    }
}
