//! `outboxer`: a projection that puts side effects in the outbox, for the
//! host's tests and benchmark.
//!
//! `Send {"key": K, "n": N, "requests": R, "target": T, "idempotency_key": I}`
//! counts the events of each stream under the stream's key and puts R
//! (default 1) requests `{"key": K, "n": N, "i": i}` in the outbox for
//! target T (default `hook`, the one it declares), ordered by K when given
//! (else by the target), with idempotency key I when given.

use prism_guest::{Description, Error, Event, OutboxRequest, Projection, View};
use serde::Deserialize;
use serde_json::json;

#[derive(Default)]
pub struct Outboxer;

#[derive(Deserialize)]
struct Send {
    key: Option<String>,
    #[serde(default)]
    n: u64,
    requests: Option<u32>,
    target: Option<String>,
    idempotency_key: Option<String>,
}

impl Projection for Outboxer {
    fn describe() -> Description {
        Description::new("outboxer", "1.0.0")
            .event_types(["Send"])
            .targets(["hook"])
    }

    fn keys(&self, event: &Event) -> Vec<String> {
        vec![event.stream_id.clone()]
    }

    fn handle(&mut self, view: &mut View, event: &Event) -> Result<(), Error> {
        let send: Send = event.data()?;
        view.upsert(&event.stream_id, |sent: &mut u64| *sent += 1)?;
        let target = send.target.as_deref().unwrap_or("hook");
        for i in 0..send.requests.unwrap_or(1) {
            let payload = json!({"key": send.key, "n": send.n, "i": i});
            let mut request = OutboxRequest::new(target, &payload)?;
            if let Some(key) = &send.key {
                request = request.ordering_key(key.clone());
            }
            if let Some(key) = &send.idempotency_key {
                request = request.idempotency_key(key.clone());
            }
            view.enqueue_request(event, request)?;
        }
        Ok(())
    }
}

prism_guest::export_projection!(Outboxer);

#[cfg(test)]
mod tests {
    use prism_guest::testing::{Harness, event};
    use serde_json::json;

    use super::Outboxer;

    #[test]
    fn a_send_puts_its_requests_in_the_outbox_in_order() {
        let harness = Harness::<Outboxer>::new().given([
            event("a", "Send", json!({"key": "k1", "n": 1})),
            event("a", "Send", json!({"n": 2, "requests": 2})),
        ]);
        assert_eq!(harness.view_json::<u64>("a"), Some(2));
        let requests: Vec<(&str, Option<&str>, &str)> = harness
            .outbox()
            .iter()
            .map(|r| {
                (
                    r.target.as_str(),
                    r.ordering_key.as_deref(),
                    r.payload.as_str(),
                )
            })
            .collect();
        assert_eq!(
            requests,
            [
                ("hook", Some("k1"), r#"{"i":0,"key":"k1","n":1}"#),
                ("hook", None, r#"{"i":0,"key":null,"n":2}"#),
                ("hook", None, r#"{"i":1,"key":null,"n":2}"#),
            ]
        );
    }

    #[test]
    fn an_undeclared_target_fails_the_event() {
        let mut harness = Harness::<Outboxer>::new();
        let refused = harness.when([event("a", "Send", json!({"target": "sms"}))]);
        assert!(refused.unwrap_err().message.contains("undeclared target"));
        assert!(harness.outbox().is_empty());
        assert_eq!(harness.view("a"), None);
    }
}
