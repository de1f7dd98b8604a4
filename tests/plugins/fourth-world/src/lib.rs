//! `fourth-world`: a projection built against the fourth version of the
//! contract, `prism:projection@0.4.0` (`wit/0.4.0/`, events handed over one
//! record each), without the SDK, for the host's tests. It counts the events
//! of every stream under the stream's key, answers the query `total`, and
//! emits one `Echoed` event to `fourth-echo` for every `Ping`. It demonstrates that
//! components built against an older version of the WIT package keep
//! loading, and emitting, after the contract has moved on.

#[cfg(target_arch = "wasm32")]
mod component {
    wit_bindgen::generate!({
        world: "projector",
        path: "../../../wit/0.4.0",
    });

    use exports::prism::projection::projection::{
        Description, Event, Guest, HandleError, QueryError,
    };
    use prism::projection::{emit, view};

    struct FourthWorld;

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

    impl Guest for FourthWorld {
        fn describe() -> Description {
            Description {
                name: "fourth-world".into(),
                version: "0.4.0".into(),
                event_types: Vec::new(),
                queries: vec!["total".into()],
                indexes: Vec::new(),
                emits: vec!["fourth-echo".into()],
                targets: Vec::new(),
            }
        }

        fn handle(batch: Vec<Event>) -> Result<(), HandleError> {
            for event in batch {
                let count = count_of(view::get(&event.stream_id)) + 1;
                view::put(&event.stream_id, &format!("{{\"count\":{count}}}"))
                    .map_err(|e| failed(format!("{e:?}")))?;
                if event.event_type == "Ping" {
                    emit::append(event.position, "fourth-echo", "Echoed", "{}", "{}")
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

    export!(FourthWorld);
}
