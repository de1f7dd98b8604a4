//! `Host` impl of the view interface. Storage failures trap (host problem);
//! bad keys and values are WIT errors the plugin can handle.

use serde::de::IgnoredAny;

use super::{MAX_SCAN_ENTRIES, key_problem};
use crate::runtime::bindings::v0_5::prism::projection::view::Host;
use crate::runtime::bindings::{Entry, ViewError, Write, v0_1, v0_2, v0_3, v0_4};
use crate::runtime::state::PluginState;

fn json_problem(key: &str, value: &str) -> Option<ViewError> {
    serde_json::from_str::<IgnoredAny>(value)
        .err()
        .map(|e| ViewError::InvalidJson(format!("value for key {key:?} is not JSON: {e}")))
}

fn check_write(state: &PluginState, write: &Write) -> Option<ViewError> {
    if !state.view.writable {
        return Some(ViewError::ReadOnly);
    }
    let (key, value) = match write {
        Write::Put(entry) => (&entry.key, Some(&entry.value)),
        Write::Delete(key) => (key, None),
    };
    if let Some(problem) = key_problem(key) {
        return Some(ViewError::InvalidKey(problem));
    }
    value.and_then(|v| json_problem(key, v))
}

impl PluginState {
    fn write_all(&mut self, writes: Vec<Write>) -> wasmtime::Result<Result<(), ViewError>> {
        if let Some(problem) = writes.iter().find_map(|w| check_write(self, w)) {
            return Ok(Err(problem));
        }
        for write in &writes {
            if let Write::Put(entry) = write
                && let Some(e) = self.view.document_too_large(&entry.key, entry.value.len())
            {
                return Err(e);
            }
        }
        for write in writes {
            match write {
                Write::Put(Entry { key, value }) => self.view.txn.put(key, value),
                Write::Delete(key) => self.view.txn.delete(key),
            }
        }
        self.view.check_pending()?;
        Ok(Ok(()))
    }
}

// The view calls do their storage work synchronously: they are short, and
// they run on the thread that drives the plugin (a projector's own thread,
// or a blocking-pool thread for queries), never on an async worker.
impl Host for PluginState {
    async fn get(&mut self, key: String) -> wasmtime::Result<Option<String>> {
        self.view.read(&key)
    }

    async fn get_many(&mut self, keys: Vec<String>) -> wasmtime::Result<Vec<Option<String>>> {
        self.view.read_many(&keys)
    }

    async fn put(&mut self, key: String, value: String) -> wasmtime::Result<Result<(), ViewError>> {
        self.write_all(vec![Write::Put(Entry { key, value })])
    }

    async fn delete(&mut self, key: String) -> wasmtime::Result<Result<(), ViewError>> {
        self.write_all(vec![Write::Delete(key)])
    }

    async fn write_many(&mut self, writes: Vec<Write>) -> wasmtime::Result<Result<(), ViewError>> {
        self.write_all(writes)
    }

    async fn scan(
        &mut self,
        start: String,
        end: Option<String>,
        limit: u32,
    ) -> wasmtime::Result<Vec<Entry>> {
        let limit = limit.min(MAX_SCAN_ENTRIES) as usize;
        let entries = self.view.scan(&start, end.as_deref(), limit)?;
        Ok(entries
            .into_iter()
            .map(|(key, value)| Entry { key, value })
            .collect())
    }
}

/// The same calls for components of an older contract, whose view
/// interface is the same but for the package version in its types' names.
macro_rules! old_view {
    ($module:ident, $version:ident) => {
        mod $module {
            use super::*;
            use $version::prism::projection::view as old;

            fn write_of(w: old::Write) -> Write {
                match w {
                    old::Write::Put(old::Entry { key, value }) => Write::Put(Entry { key, value }),
                    old::Write::Delete(key) => Write::Delete(key),
                }
            }

            fn error_of(e: ViewError) -> old::ViewError {
                match e {
                    ViewError::InvalidJson(m) => old::ViewError::InvalidJson(m),
                    ViewError::InvalidKey(m) => old::ViewError::InvalidKey(m),
                    ViewError::ReadOnly => old::ViewError::ReadOnly,
                }
            }

            impl old::Host for PluginState {
                async fn get(&mut self, key: String) -> wasmtime::Result<Option<String>> {
                    Host::get(self, key).await
                }

                async fn get_many(
                    &mut self,
                    keys: Vec<String>,
                ) -> wasmtime::Result<Vec<Option<String>>> {
                    Host::get_many(self, keys).await
                }

                async fn put(
                    &mut self,
                    key: String,
                    value: String,
                ) -> wasmtime::Result<Result<(), old::ViewError>> {
                    Ok(Host::put(self, key, value).await?.map_err(error_of))
                }

                async fn delete(
                    &mut self,
                    key: String,
                ) -> wasmtime::Result<Result<(), old::ViewError>> {
                    Ok(Host::delete(self, key).await?.map_err(error_of))
                }

                async fn write_many(
                    &mut self,
                    writes: Vec<old::Write>,
                ) -> wasmtime::Result<Result<(), old::ViewError>> {
                    let writes = writes.into_iter().map(write_of).collect();
                    Ok(Host::write_many(self, writes).await?.map_err(error_of))
                }

                async fn scan(
                    &mut self,
                    start: String,
                    end: Option<String>,
                    limit: u32,
                ) -> wasmtime::Result<Vec<old::Entry>> {
                    Ok(Host::scan(self, start, end, limit)
                        .await?
                        .into_iter()
                        .map(|Entry { key, value }| old::Entry { key, value })
                        .collect())
                }
            }
        }
    };
}

old_view!(v0_1_view, v0_1);
old_view!(v0_2_view, v0_2);
old_view!(v0_3_view, v0_3);
old_view!(v0_4_view, v0_4);
