//! `third-world`: a projection built against the third version of the
//! contract, `prism:projection@0.3.0` (`wit/0.3.0/`, before the outbox),
//! without the SDK, for the host's tests. It counts the events of every
//! stream under the stream's key, answers the query `total`, and emits one
//! `Echoed` event to `third-echo` for every `Ping`. It demonstrates that
//! components built against an older version of the WIT package keep
//! loading, and emitting, after the contract has moved on.

#[cfg(target_arch = "wasm32")]
mod component {
    wit_bindgen::generate!({
        world: "projector",
        path: "../../../wit/0.3.0",
    });

    use exports::prism::projection::projection::{
        Description, Event, Guest, HandleError, QueryError,
    };
    use prism::projection::{emit, view};

    struct ThirdWorld;

    fn count_of(value: Option<String>) -> u64 {
        value
            .and_then(|v| {
                v.strip_prefix("{\"count\":")?
                    .strip_suffix('}')?
                    .parse()
                    .ok()
            })
            .unwrap_or(0)
    }

    fn failed(message: String) -> HandleError {
        HandleError {
            index: None,
            message,
        }
    }

    impl Guest for ThirdWorld {
        fn describe() -> Description {
            Description {
                name: "third-world".into(),
                version: "0.3.0".into(),
                event_types: Vec::new(),
                queries: vec!["total".into()],
                indexes: Vec::new(),
                emits: vec!["third-echo".into()],
            }
        }

        fn handle(batch: Vec<Event>) -> Result<(), HandleError> {
            for event in batch {
                let count = count_of(view::get(&event.stream_id)) + 1;
                view::put(&event.stream_id, &format!("{{\"count\":{count}}}"))
                    .map_err(|e| failed(format!("{e:?}")))?;
                if event.event_type == "Ping" {
                    emit::append(event.position, "third-echo", "Echoed", "{}", "{}")
                        .map_err(|e| failed(format!("{e:?}")))?;
                }
            }
            Ok(())
        }

        fn query(name: String, _params: String) -> Result<String, QueryError> {
            if name != "total" {
                return Err(QueryError::UnknownQuery(name));
            }
            let total: u64 = view::scan("", None, 10_000)
                .into_iter()
                .map(|e| count_of(Some(e.value)))
                .sum();
            Ok(format!("{{\"total\":{total}}}"))
        }
    }

    export!(ThirdWorld);
}
