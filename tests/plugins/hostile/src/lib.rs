//! `hostile`: a plugin written to take the server down, for the host's
//! tests. Each event type is one attack on the resources the host spends
//! on a plugin's behalf; a well-behaved event (`Count`) keeps a counter so
//! that a test can see the plugin still work between attacks.
//!
//! - `Store {key, mib}`: store a document of `mib` MiB.
//! - `GetMany {key, times}`: ask for the same key `times` times in one call.
//! - `ScanAll {}`: scan as many entries as the host allows.
//! - `PutFlood {count, bytes}`: put `count` documents of `bytes` bytes in one batch.
//! - `Sleep {ms}`: sleep (a WASI wait, not computation) inside `handle`.
//! - `Grow {mib}`: store a new 1 MiB document under a fresh key for every MiB asked.
//! - `Abort {}`: ask the host to abort the process (only honoured when the
//!   server runs with fault injection on).
//! - `Count {}`: count, under the key of the event's stream.
//!
//! Queries: `sleep?ms=N` sleeps; `get_many?key=K&times=N` amplifies reads.

#[cfg(target_arch = "wasm32")]
use prism_guest::bindings::prism::projection::view as host;
use prism_guest::{Description, Error, Event, Projection, Queries, View};
use serde::Deserialize;
use serde_json::json;

#[derive(Default)]
pub struct Hostile;

#[derive(Deserialize)]
struct Attack {
    #[serde(default)]
    key: String,
    #[serde(default)]
    mib: usize,
    #[serde(default)]
    times: usize,
    #[serde(default)]
    count: usize,
    #[serde(default)]
    bytes: usize,
    #[serde(default)]
    ms: u64,
}

fn document(bytes: usize) -> String {
    format!("\"{}\"", "x".repeat(bytes.saturating_sub(2)))
}

#[cfg(target_arch = "wasm32")]
fn get_many(keys: &[String]) -> usize {
    host::get_many(keys).len()
}

#[cfg(not(target_arch = "wasm32"))]
fn get_many(keys: &[String]) -> usize {
    keys.len()
}

#[cfg(target_arch = "wasm32")]
fn put(key: &str, value: &str) -> Result<(), Error> {
    host::put(key, value).map_err(|e| Error::new(format!("{e:?}")))
}

#[cfg(not(target_arch = "wasm32"))]
fn put(_key: &str, _value: &str) -> Result<(), Error> {
    Ok(())
}

impl Projection for Hostile {
    fn describe() -> Description {
        Description::new("hostile", env!("CARGO_PKG_VERSION"))
    }

    fn queries() -> Queries<Self> {
        Queries::new()
            .query("sleep", |_, _, params| {
                let ms: u64 = params.get("ms")?;
                std::thread::sleep(std::time::Duration::from_millis(ms));
                Ok(json!({ "slept_ms": ms }))
            })
            .query("get_many", |_, _, params| {
                let key: String = params.get("key")?;
                let times: usize = params.get("times")?;
                Ok(json!({ "read": get_many(&vec![key; times]) }))
            })
    }

    fn handle(&mut self, view: &mut View, event: &Event) -> Result<(), Error> {
        let attack: Attack = event.data()?;
        match event.event_type.as_str() {
            "Store" => view.put(&attack.key, &document(attack.mib << 20)),
            "GetMany" => {
                get_many(&vec![attack.key.clone(); attack.times]);
                Ok(())
            }
            "ScanAll" => view.scan("", None, u32::MAX).map(|_| ()),
            "PutFlood" => {
                // Straight to the host, one put at a time, reusing one buffer:
                // what piles up is the host's, not this plugin's memory.
                let value = document(attack.bytes);
                for i in 0..attack.count {
                    put(&format!("flood-{i}"), &value)?;
                }
                Ok(())
            }
            "Sleep" => {
                std::thread::sleep(std::time::Duration::from_millis(attack.ms));
                Ok(())
            }
            "Grow" => {
                for i in 0..attack.mib {
                    view.put(&format!("grow-{}-{i}", event.position), &document(1 << 20))?;
                }
                Ok(())
            }
            "Abort" => {
                prism_guest::log(
                    prism_guest::Level::Error,
                    "prism-fault-injection: abort the process",
                );
                Ok(())
            }
            _ => {
                let count = view
                    .get_value(&event.stream_id)?
                    .and_then(|v| v["count"].as_u64())
                    .unwrap_or(0);
                view.put_value(&event.stream_id, json!({ "count": count + 1 }))
            }
        }
    }
}

prism_guest::export_projection!(Hostile);
