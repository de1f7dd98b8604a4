//! `emitter`: a projection that emits events, for the host's tests and
//! benchmark.
//!
//! - `Ping {"n": N, "emit": K, "to": S}`: counts the pings of each stream
//!   under the stream's key and emits K (default 1) `Echoed {"n": N, "k": i}`
//!   events to `echo-{stream}`, or to stream S when given (which may be one
//!   it does not declare).
//! - `Looped`: emits another `Looped` to `loop`, which it consumes again: a
//!   projection feeding on its own emissions, which the host must stop.

use prism_guest::{Description, Error, Event, Projection, View};
use serde::Deserialize;
use serde_json::json;

#[derive(Default)]
pub struct Emitter;

#[derive(Deserialize)]
struct Ping {
    #[serde(default)]
    n: u64,
    emit: Option<u32>,
    to: Option<String>,
}

impl Projection for Emitter {
    fn describe() -> Description {
        Description::new("emitter", "1.0.0")
            .event_types(["Ping", "Looped"])
            .emits(["echo-*", "loop"])
    }

    fn keys(&self, event: &Event) -> Vec<String> {
        vec![event.stream_id.clone()]
    }

    fn handle(&mut self, view: &mut View, event: &Event) -> Result<(), Error> {
        match event.event_type.as_str() {
            "Ping" => {
                let ping: Ping = event.data()?;
                view.upsert(&event.stream_id, |pings: &mut u64| *pings += 1)?;
                let stream = ping
                    .to
                    .unwrap_or_else(|| format!("echo-{}", event.stream_id));
                for k in 0..ping.emit.unwrap_or(1) {
                    view.emit(event, &stream, "Echoed", &json!({"n": ping.n, "k": k}))?;
                }
                Ok(())
            }
            "Looped" => view.emit(event, "loop", "Looped", &json!({})),
            _ => Ok(()),
        }
    }
}

prism_guest::export_projection!(Emitter);

#[cfg(test)]
mod tests {
    use prism_guest::testing::{Harness, event};
    use serde_json::json;

    use super::Emitter;

    #[test]
    fn a_ping_is_counted_and_echoed_to_its_declared_stream() {
        let harness = Harness::<Emitter>::new().given([
            event("a", "Ping", json!({"n": 1})),
            event("a", "Ping", json!({"n": 2, "emit": 2})),
        ]);
        assert_eq!(harness.view_json::<u64>("a"), Some(2));
        let emitted: Vec<(&str, &str)> = harness
            .emitted()
            .iter()
            .map(|e| (e.stream_id.as_str(), e.data.as_str()))
            .collect();
        assert_eq!(
            emitted,
            [
                ("echo-a", r#"{"k":0,"n":1}"#),
                ("echo-a", r#"{"k":0,"n":2}"#),
                ("echo-a", r#"{"k":1,"n":2}"#)
            ]
        );
    }

    #[test]
    fn an_undeclared_stream_fails_the_event() {
        let mut harness = Harness::<Emitter>::new();
        let refused = harness.when([event("a", "Ping", json!({"to": "orders"}))]);
        assert!(refused.unwrap_err().message.contains("undeclared stream"));
        assert!(harness.emitted().is_empty());
        assert_eq!(harness.view("a"), None);
    }
}
