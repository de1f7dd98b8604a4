//! `Host` impl of the view interface. Storage failures trap (host problem);
//! bad keys and values are WIT errors the plugin can handle.

use serde::de::IgnoredAny;

use super::{MAX_SCAN_ENTRIES, key_problem};
use crate::runtime::bindings::prism::projection::view::Host;
use crate::runtime::bindings::{Entry, ViewError, Write};
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

impl Host for PluginState {
    fn get(&mut self, key: String) -> wasmtime::Result<Option<String>> {
        Ok(self.view.txn.get(&self.view.keyspace, &key)?)
    }

    fn get_many(&mut self, keys: Vec<String>) -> wasmtime::Result<Vec<Option<String>>> {
        Ok(self.view.txn.get_many(&self.view.keyspace, &keys)?)
    }

    fn put(&mut self, key: String, value: String) -> wasmtime::Result<Result<(), ViewError>> {
        let write = Write::Put(Entry { key, value });
        self.write_many(vec![write])
    }

    fn delete(&mut self, key: String) -> wasmtime::Result<Result<(), ViewError>> {
        self.write_many(vec![Write::Delete(key)])
    }

    fn write_many(&mut self, writes: Vec<Write>) -> wasmtime::Result<Result<(), ViewError>> {
        if let Some(problem) = writes.iter().find_map(|w| check_write(self, w)) {
            return Ok(Err(problem));
        }
        for write in writes {
            match write {
                Write::Put(Entry { key, value }) => self.view.txn.put(key, value),
                Write::Delete(key) => self.view.txn.delete(key),
            }
        }
        Ok(Ok(()))
    }

    fn scan(
        &mut self,
        start: String,
        end: Option<String>,
        limit: u32,
    ) -> wasmtime::Result<Vec<Entry>> {
        let limit = limit.min(MAX_SCAN_ENTRIES) as usize;
        let entries = self
            .view
            .txn
            .scan(&self.view.keyspace, &start, end.as_deref(), limit)?;
        Ok(entries
            .into_iter()
            .map(|(key, value)| Entry { key, value })
            .collect())
    }
}
