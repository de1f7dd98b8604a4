//! Unit-testing projections natively, in the given/when/then style of
//! cqrs-es: [`event`] describes an event to append, [`EventLog`] numbers it as
//! the host's log would, and [`Harness`] feeds it to the projection the way the
//! host does — filtered by the declared event types, in batches, over an
//! in-memory keyspace with the host's rules — then lets the test read the view
//! and ask queries.
//!
//! ```
//! use prism_guest::testing::{event, Harness};
//! use prism_guest::{Description, Error, Event, Projection, View};
//! use serde_json::json;
//!
//! /// Counts the `Clicked` events of each stream.
//! #[derive(Default)]
//! struct Clicks;
//!
//! impl Projection for Clicks {
//!     fn describe() -> Description {
//!         Description::new("clicks", "1.0.0").event_types(["Clicked"])
//!     }
//!
//!     fn handle(&mut self, view: &mut View, event: &Event) -> Result<(), Error> {
//!         view.upsert(&event.stream_id, |clicks: &mut u64| *clicks += 1)
//!     }
//! }
//!
//! let harness = Harness::<Clicks>::new().given([
//!     event("page-1", "Clicked", json!({})),
//!     event("page-1", "Scrolled", json!({})),
//!     event("page-1", "Clicked", json!({})),
//! ]);
//! assert_eq!(harness.view_json::<u64>("page-1"), Some(2));
//! ```

use std::collections::HashMap;
use std::fmt::Debug;

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::{
    Description, Event, HandleError, MemoryBackend, Params, Projection, QueryError, handle_batch,
    run_query,
};

/// What the harness stamps as the time of the event at position 1; later
/// events are one millisecond apart, so tests are reproducible.
pub const FIRST_RECORDED_AT_MS: u64 = 1_700_000_000_000;

/// An event a test appends: the harness assigns position, stream version,
/// time and id, as the host's log does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    pub stream_id: String,
    pub event_type: String,
    pub data: String,
    pub metadata: String,
    /// `None`: derived from the position.
    pub id: Option<String>,
    /// `None`: [`FIRST_RECORDED_AT_MS`] plus the position, less one.
    pub recorded_at: Option<u64>,
}

/// An event of `event_type` on `stream_id` with payload `data` and no metadata.
pub fn event(stream_id: impl Into<String>, event_type: impl Into<String>, data: Value) -> NewEvent {
    NewEvent {
        stream_id: stream_id.into(),
        event_type: event_type.into(),
        data: data.to_string(),
        metadata: "{}".into(),
        id: None,
        recorded_at: None,
    }
}

impl NewEvent {
    /// With this metadata.
    pub fn metadata(mut self, metadata: Value) -> Self {
        self.metadata = metadata.to_string();
        self
    }

    /// With this payload text, which need not be JSON: for testing how a
    /// projection copes with a malformed event.
    pub fn raw_data(mut self, data: impl Into<String>) -> Self {
        self.data = data.into();
        self
    }

    /// With this event id.
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// Recorded at this time, in milliseconds since the Unix epoch.
    pub fn recorded_at(mut self, recorded_at: u64) -> Self {
        self.recorded_at = Some(recorded_at);
        self
    }
}

/// A log in memory that numbers events like the host's: gapless global
/// positions from 1, stream versions from 0 per stream. Also useful to
/// generate events for a native benchmark.
#[derive(Debug, Clone, Default)]
pub struct EventLog {
    events: Vec<Event>,
    next_stream_versions: HashMap<String, u64>,
}

impl EventLog {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends `event` and returns it as recorded.
    pub fn append(&mut self, event: NewEvent) -> &Event {
        let position = self.events.len() as u64 + 1;
        let next_version = self
            .next_stream_versions
            .entry(event.stream_id.clone())
            .or_default();
        let stream_version = *next_version;
        *next_version += 1;
        self.events.push(Event {
            position,
            stream_id: event.stream_id,
            stream_version,
            event_type: event.event_type,
            data: event.data,
            metadata: event.metadata,
            recorded_at: event
                .recorded_at
                .unwrap_or(FIRST_RECORDED_AT_MS + position - 1),
            id: event
                .id
                .unwrap_or_else(|| format!("00000000-0000-4000-8000-{position:012x}")),
        });
        self.events.last().expect("an event was just pushed")
    }

    /// Every event appended so far, oldest first.
    pub fn events(&self) -> &[Event] {
        &self.events
    }
}

/// Runs a projection over events the way the host does, without WebAssembly.
///
/// Events are appended to an [`EventLog`]; those whose type the projection
/// does not declare never reach it (their positions still count, as in the
/// host). The rest go to [`Projection::handle`] in batches through the same
/// driver the plugin uses, over a [`MemoryBackend`]. When an event fails, the
/// view is left as the events before it made it and the call's later events
/// are not applied — what the host does with a failing batch.
pub struct Harness<P: Projection> {
    projection: P,
    description: Description,
    backend: MemoryBackend,
    log: EventLog,
    /// At most this many events per batch; `None`: each call is one batch.
    batch_size: Option<usize>,
}

impl<P: Projection> Default for Harness<P> {
    fn default() -> Self {
        Self::new()
    }
}

impl<P: Projection> Harness<P> {
    /// A fresh projection over an empty view.
    pub fn new() -> Self {
        let description = P::describe();
        Self {
            projection: P::default(),
            backend: MemoryBackend::new()
                .emitting_to(&description.emits)
                .sending_to(&description.targets),
            description,
            log: EventLog::new(),
            batch_size: None,
        }
    }

    /// Splits the events of each call into batches of at most `batch_size`,
    /// to test that a projection carries nothing between batches that it
    /// should have kept in the view. The default is one batch per call.
    ///
    /// # Panics
    /// If `batch_size` is 0.
    pub fn batch_size(mut self, batch_size: usize) -> Self {
        assert!(batch_size > 0, "a batch holds at least one event");
        self.batch_size = Some(batch_size);
        self
    }

    /// Given these events happened.
    ///
    /// # Panics
    /// If the projection refuses one: the history of a test should apply.
    #[track_caller]
    pub fn given(mut self, events: impl IntoIterator<Item = NewEvent>) -> Self {
        if let Err(error) = self.when(events) {
            panic!("the projection refused a given event: {error}");
        }
        self
    }

    /// When these events happen: applies them and tells whether the
    /// projection accepted them all.
    pub fn when(&mut self, events: impl IntoIterator<Item = NewEvent>) -> Result<(), HandleError> {
        let wanted: Vec<Event> = events
            .into_iter()
            .map(|event| self.log.append(event).clone())
            .filter(|event| self.description.wants(&event.event_type))
            .collect();
        let batch_size = self.batch_size.unwrap_or(wanted.len()).max(1);
        for batch in wanted.chunks(batch_size) {
            self.apply_like_the_host(batch)?;
        }
        Ok(())
    }

    /// The document at `key`, if any.
    pub fn view(&self, key: &str) -> Option<Value> {
        self.backend
            .get(key)
            .map(|text| serde_json::from_str(text).expect("the backend holds only JSON documents"))
    }

    /// The document at `key` decoded as `T`.
    ///
    /// # Panics
    /// If the document does not decode as `T`.
    #[track_caller]
    pub fn view_json<T: DeserializeOwned>(&self, key: &str) -> Option<T> {
        self.backend.get(key).map(|text| {
            serde_json::from_str(text).unwrap_or_else(|error| {
                panic!("the document at `{key}` is not what the test expects: {error}: {text}")
            })
        })
    }

    /// Every key of the view, in order.
    pub fn keys(&self) -> Vec<&str> {
        self.backend.entries().map(|(key, _)| key).collect()
    }

    /// Every key of the view that starts with `prefix`, in order.
    pub fn keys_with_prefix(&self, prefix: &str) -> Vec<&str> {
        self.backend
            .entries()
            .map(|(key, _)| key)
            .filter(|key| key.starts_with(prefix))
            .collect()
    }

    /// Asks the named query, e.g. `query("low-stock", Params::new().with("below", "5"))`.
    pub fn query(&mut self, name: &str, params: Params) -> Result<Value, QueryError> {
        run_query(&self.projection, &mut self.backend, name, &params)
    }

    /// The events the projection emitted, in order (the host would append
    /// them to the log; the harness only keeps them).
    pub fn emitted(&self) -> &[crate::Emission] {
        self.backend.emitted()
    }

    /// The outbox requests the projection made, in order (the host would
    /// enqueue and deliver them; the harness only keeps them).
    pub fn outbox(&self) -> &[crate::OutboxRequest] {
        self.backend.outbox()
    }

    /// The projection itself.
    pub fn projection(&self) -> &P {
        &self.projection
    }

    /// The keyspace, for assertions the other methods do not cover.
    pub fn backend(&self) -> &MemoryBackend {
        &self.backend
    }

    /// Every event appended so far, including those the projection never saw.
    pub fn events(&self) -> &[Event] {
        self.log.events()
    }

    /// One batch as the host applies it: all or nothing, and on a failing
    /// event the events before it once more, on their own.
    fn apply_like_the_host(&mut self, batch: &[Event]) -> Result<(), HandleError> {
        let before = self.backend.clone();
        let Err(error) = handle_batch(&mut self.projection, &mut self.backend, batch) else {
            return Ok(());
        };
        self.backend = before;
        if let Some(index) = error.index {
            let good_prefix = &batch[..index as usize];
            if !good_prefix.is_empty() {
                handle_batch(&mut self.projection, &mut self.backend, good_prefix).unwrap_or_else(
                    |again| panic!("the events before a failing one failed on their own: {again}"),
                );
            }
        }
        Err(error)
    }
}

impl<P: Projection> Debug for Harness<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Harness")
            .field("description", &self.description)
            .field("backend", &self.backend)
            .field("events", &self.log.events().len())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;
    use serde_json::json;

    use super::*;
    use crate::{Error, Queries, View};

    /// Sums the `amount` of `Added` events per stream, refuses negative
    /// amounts, and answers `total?stream=`.
    #[derive(Default)]
    struct Sums;

    #[derive(Deserialize)]
    struct Added {
        amount: i64,
    }

    impl Projection for Sums {
        fn describe() -> Description {
            Description::new("sums", "1").event_types(["Added"])
        }

        fn queries() -> Queries<Self> {
            Queries::new().query("total", |_, view, params| {
                let stream: String = params.get("stream")?;
                Ok(view.get_json::<i64>(&stream)?.unwrap_or(0))
            })
        }

        fn keys(&self, event: &Event) -> Vec<String> {
            vec![event.stream_id.clone()]
        }

        fn handle(&mut self, view: &mut View, event: &Event) -> Result<(), Error> {
            let Added { amount } = event.data()?;
            if amount < 0 {
                return Err(Error::new(format!("negative amount {amount}")));
            }
            view.upsert(&event.stream_id, |sum: &mut i64| *sum += amount)
        }
    }

    fn added(stream: &str, amount: i64) -> NewEvent {
        event(stream, "Added", json!({ "amount": amount }))
    }

    #[test]
    fn the_log_numbers_events_like_the_host() {
        let mut log = EventLog::new();
        log.append(added("a", 1));
        log.append(added("b", 1));
        let third = log.append(added("a", 1)).clone();
        assert_eq!(third.position, 3);
        assert_eq!(third.stream_version, 1);
        assert_eq!(third.recorded_at, FIRST_RECORDED_AT_MS + 2);
        assert_eq!(third.id, "00000000-0000-4000-8000-000000000003");
        assert_eq!(third.metadata, "{}");
    }

    #[test]
    fn undeclared_event_types_never_reach_the_projection() {
        let harness = Harness::<Sums>::new().given([
            added("a", 2),
            event("a", "Removed", json!({ "amount": -100 })),
            added("a", 3),
        ]);
        assert_eq!(harness.view_json::<i64>("a"), Some(5));
        assert_eq!(harness.events().len(), 3);
    }

    #[test]
    fn a_failing_event_leaves_the_events_before_it_applied() {
        let mut harness = Harness::<Sums>::new().given([added("a", 1)]);
        let error = harness
            .when([added("a", 10), added("b", -1), added("a", 100)])
            .unwrap_err();
        assert_eq!(error.index, Some(1));
        assert_eq!(error.message, "negative amount -1");
        assert_eq!(harness.view_json::<i64>("a"), Some(11));
        assert_eq!(harness.view("b"), None);
    }

    #[test]
    fn a_malformed_payload_fails_with_the_event_named() {
        let mut harness = Harness::<Sums>::new();
        let error = harness.when([added("a", 1).raw_data("{")]).unwrap_err();
        assert!(error.message.starts_with("Added at position 1"), "{error}");
    }

    #[test]
    fn small_batches_give_the_same_view_as_one_big_batch() {
        let events =
            || (0..10).map(|amount| added(if amount % 3 == 0 { "a" } else { "b" }, amount));
        let whole = Harness::<Sums>::new().given(events());
        let in_batches = Harness::<Sums>::new().batch_size(3).given(events());
        assert_eq!(whole.backend(), in_batches.backend());
        assert_eq!(whole.keys(), ["a", "b"]);
    }

    #[test]
    fn queries_read_the_view_and_check_their_params() {
        let mut harness = Harness::<Sums>::new().given([added("a", 4)]);
        assert_eq!(
            harness.query("total", Params::new().with("stream", "a")),
            Ok(json!(4))
        );
        assert!(matches!(
            harness.query("total", Params::new()),
            Err(QueryError::InvalidParams(_))
        ));
        assert_eq!(
            harness.query("average", Params::new()),
            Err(QueryError::UnknownQuery("average".into()))
        );
    }

    #[test]
    #[should_panic(expected = "the projection refused a given event")]
    fn given_events_must_apply() {
        Harness::<Sums>::new().given([added("a", -1)]);
    }
}
