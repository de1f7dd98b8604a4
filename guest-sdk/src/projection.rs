//! The [`Projection`] trait a plugin implements, and the two drivers that run
//! one: [`handle_batch`] (prefetch, apply event by event, write once) and
//! [`run_query`] (the name looked up in [`Projection::queries`]). The export
//! macro calls them inside WebAssembly; the test harness and the host's
//! native benchmark call them directly.

use serde_json::Value;

use crate::{Backend, Description, Error, Event, HandleError, Params, Queries, QueryError, View};

/// A read model built from events.
///
/// The SDK keeps one value of the type per plugin instance, made with
/// `Default`. Keep the read model itself in the [`View`]: the host may replay
/// part of a batch after a failure, or start a fresh instance at any time, so
/// fields of the projection should only hold what can be rebuilt at will
/// (configuration, scratch buffers), never state derived from events.
pub trait Projection: Default {
    /// Name, version, consumed event types and indexes. The host is told the
    /// query names as well: those of [`Projection::queries`].
    fn describe() -> Description;

    /// The keys applying `event` will read: a prefetch hint. The SDK reads the
    /// keys of a whole batch with one crossing before handling it; keys left
    /// out still work, at the cost of a crossing each.
    fn keys(&self, event: &Event) -> Vec<String> {
        let _ = event;
        Vec::new()
    }

    /// Applies one event to the view. An error stops the batch at this event
    /// and none of the batch's writes are applied.
    fn handle(&mut self, view: &mut View, event: &Event) -> Result<(), Error>;

    /// The named queries and what answers each, over a read-only view. The
    /// one list serves both `describe` and `query`, so a query is declared
    /// exactly when it is answered.
    fn queries() -> Queries<Self> {
        Queries::new()
    }
}

/// Applies `batch` to the keyspace behind `backend`: one `get_many` for the
/// keys the projection names, [`Projection::handle`] per event, one
/// `write_many` at the end. On error nothing is written and the error carries
/// the index of the failing event.
///
/// The host has already dropped the event types the projection does not want
/// (see [`Description::wants`]); a native caller must do the same.
pub fn handle_batch<P: Projection>(
    projection: &mut P,
    backend: &mut dyn Backend,
    batch: &[Event],
) -> Result<(), HandleError> {
    let mut view = View::new(backend);
    view.prefetch(batch.iter().flat_map(|event| projection.keys(event)));
    for (index, event) in batch.iter().enumerate() {
        projection
            .handle(&mut view, event)
            .map_err(|error| HandleError {
                index: u32::try_from(index).ok(),
                message: error.to_string(),
            })?;
    }
    view.commit().map_err(|error| HandleError {
        index: None,
        message: error.to_string(),
    })
}

/// Answers the named query over a read-only view of `backend`.
pub fn run_query<P: Projection>(
    projection: &P,
    backend: &mut dyn Backend,
    name: &str,
    params: &Params,
) -> Result<Value, QueryError> {
    let mut view = View::read_only(backend);
    P::queries().answer(projection, &mut view, name, params)
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;
    use serde_json::json;

    use super::*;
    use crate::MemoryBackend;

    /// Counts events per stream, and refuses events of type `Bad`.
    #[derive(Default)]
    struct Counts;

    #[derive(Deserialize)]
    struct Counted {
        count: u64,
    }

    impl Projection for Counts {
        fn describe() -> Description {
            Description::new("counts", "1")
        }

        fn keys(&self, event: &Event) -> Vec<String> {
            vec![event.stream_id.clone()]
        }

        fn handle(&mut self, view: &mut View, event: &Event) -> Result<(), Error> {
            if event.event_type == "Bad" {
                return Err(Error::new("bad event"));
            }
            let count = view
                .get_json::<Counted>(&event.stream_id)?
                .map_or(0, |counted| counted.count);
            view.put_json(&event.stream_id, &json!({ "count": count + 1 }))
        }
    }

    fn event(position: u64, stream_id: &str, event_type: &str) -> Event {
        Event {
            position,
            stream_id: stream_id.into(),
            stream_version: 0,
            event_type: event_type.into(),
            data: "{}".into(),
            metadata: "{}".into(),
            recorded_at: 0,
            id: String::new(),
        }
    }

    #[test]
    fn a_batch_is_applied_event_by_event_and_written_once() {
        let mut backend = MemoryBackend::new();
        let batch = [event(1, "a", "X"), event(2, "b", "X"), event(3, "a", "X")];
        handle_batch(&mut Counts, &mut backend, &batch).unwrap();
        assert_eq!(backend.get("a"), Some(r#"{"count":2}"#));
        assert_eq!(backend.get("b"), Some(r#"{"count":1}"#));
    }

    #[test]
    fn a_failing_event_is_reported_by_index_and_nothing_is_written() {
        let mut backend = MemoryBackend::new();
        let batch = [event(1, "a", "X"), event(2, "a", "Bad")];
        let error = handle_batch(&mut Counts, &mut backend, &batch).unwrap_err();
        assert_eq!(
            error,
            HandleError {
                index: Some(1),
                message: "bad event".into()
            }
        );
        assert!(backend.is_empty());
    }

    #[test]
    fn queries_are_unknown_unless_the_projection_answers_them() {
        let error = run_query(&Counts, &mut MemoryBackend::new(), "top", &Params::new());
        assert_eq!(error, Err(QueryError::UnknownQuery("top".into())));
        assert_eq!(Counts::queries().names().count(), 0);
    }
}
