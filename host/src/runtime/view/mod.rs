//! The `prism:projection/view` import: a plugin's access to its own keyspace.
//!
//! The host side holds the keyspace of the plugin's generation and, during
//! `handle`, the batch's transaction; a plugin can name keys but never a
//! keyspace, so it cannot reach another plugin's data.

//!
//! Everything the host reads or holds for a plugin counts against one
//! budget per call (`PluginLimits::host_bytes`): the documents `get`,
//! `get-many` and `scan` hand out, and the batch's pending writes. Reads
//! are sized before they are made (by the largest document the keyspace
//! has held), so the server's own memory stays bounded whatever a plugin
//! asks for; a call that would go over traps with a message naming the
//! limit.

mod host;

use std::collections::HashMap;

use super::PluginLimits;
use crate::views::{Keyspace, MAX_KEY_BYTES, Transaction};

/// Most entries one `scan` call returns, whatever the plugin asks for.
pub const MAX_SCAN_ENTRIES: u32 = 10_000;

/// Most keys read from the store at once by `get-many`.
const READ_CHUNK: usize = 256;

/// What a plugin instance may do with its keyspace right now.
pub struct ViewAccess {
    pub(crate) keyspace: Keyspace,
    /// The batch in flight; empty outside `handle`.
    pub(crate) txn: Transaction,
    /// False during queries, which must not change the view.
    pub(crate) writable: bool,
    /// Bytes handed out by reads during the call in progress.
    read_bytes: usize,
    /// The host budget of one call: reads handed out plus pending writes.
    budget: usize,
    max_document: usize,
    /// Why the call in progress was stopped for going over a limit.
    pub(crate) exceeded: Option<String>,
}

impl ViewAccess {
    pub fn new(keyspace: Keyspace) -> Self {
        let limits = PluginLimits::default();
        ViewAccess {
            keyspace,
            txn: Transaction::new(),
            writable: false,
            read_bytes: 0,
            budget: limits.host_bytes,
            max_document: limits.max_document_bytes,
            exceeded: None,
        }
    }

    pub(crate) fn set_limits(&mut self, limits: &PluginLimits) {
        self.budget = limits.host_bytes;
        self.max_document = limits.max_document_bytes;
    }

    /// A call starts with the whole budget.
    pub(crate) fn new_call(&mut self) {
        self.read_bytes = 0;
        self.exceeded = None;
    }

    fn spent(&self) -> usize {
        self.read_bytes + self.txn.held_bytes()
    }

    /// Stop the call: `what` would take the host past the plugin's budget.
    fn over(&mut self, what: String) -> wasmtime::Error {
        let message = format!(
            "the plugin exceeded its host memory budget of {} MiB: {what}",
            self.budget >> 20
        );
        self.exceeded = Some(message.clone());
        wasmtime::Error::msg(message)
    }

    fn hand_out(&mut self, bytes: usize, what: &str) -> wasmtime::Result<()> {
        if self.spent() + bytes > self.budget {
            return Err(self.over(format!("{what} would hand out {}", mebibytes(bytes))));
        }
        self.read_bytes += bytes;
        Ok(())
    }

    pub(crate) fn read(&mut self, key: &str) -> wasmtime::Result<Option<String>> {
        let value = match self.txn.pending(key) {
            Some(pending) => pending.clone(),
            None => self.keyspace.get(key)?,
        };
        self.hand_out(value.as_ref().map_or(0, String::len), "get")?;
        Ok(value)
    }

    /// The documents at `keys`: each distinct key is read once, in chunks
    /// sized so that what is read stays within the budget.
    pub(crate) fn read_many(&mut self, keys: &[String]) -> wasmtime::Result<Vec<Option<String>>> {
        let mut distinct: Vec<&str> = Vec::new();
        let mut index: HashMap<&str, usize> = HashMap::new();
        let slots: Vec<usize> = keys
            .iter()
            .map(|k| {
                *index.entry(k.as_str()).or_insert_with(|| {
                    distinct.push(k);
                    distinct.len() - 1
                })
            })
            .collect();
        let mut values: Vec<Option<String>> = vec![None; distinct.len()];
        let mut missing = Vec::new();
        for (i, key) in distinct.iter().enumerate() {
            match self.txn.pending(key) {
                Some(pending) => values[i] = pending.clone(),
                None => missing.push(i),
            }
        }
        let largest = self.keyspace.largest_document().max(1);
        let mut fetched = 0usize;
        let mut done = 0;
        while done < missing.len() {
            let room = self.budget.saturating_sub(self.spent() + fetched);
            let chunk = (room / largest).clamp(1, READ_CHUNK);
            let ids = &missing[done..(done + chunk).min(missing.len())];
            let names: Vec<String> = ids.iter().map(|i| distinct[*i].to_string()).collect();
            for (i, value) in ids.iter().zip(self.keyspace.get_many(&names)?) {
                fetched += value.as_ref().map_or(0, String::len);
                values[*i] = value;
            }
            if self.spent() + fetched > self.budget {
                return Err(self.over(format!(
                    "get-many of {} keys reads more than {}",
                    keys.len(),
                    mebibytes(fetched)
                )));
            }
            done += ids.len();
        }
        // Every key gets its own copy in the answer, duplicates included.
        let total = slots
            .iter()
            .map(|i| values[*i].as_ref().map_or(0, String::len))
            .sum();
        self.hand_out(total, &format!("get-many of {} keys", keys.len()))?;
        Ok(slots.iter().map(|i| values[*i].clone()).collect())
    }

    pub(crate) fn scan(
        &mut self,
        start: &str,
        end: Option<&str>,
        limit: usize,
    ) -> wasmtime::Result<Vec<(String, String)>> {
        let room = self.budget.saturating_sub(self.spent());
        match self.txn.scan(&self.keyspace, start, end, limit, room)? {
            Some(entries) => {
                let bytes = entries.iter().map(|(k, v)| k.len() + v.len()).sum();
                self.hand_out(bytes, "scan")?;
                Ok(entries)
            }
            None => Err(self.over(format!("a scan of up to {limit} entries from {start:?}"))),
        }
    }

    /// Whether a document of `bytes` may be written.
    pub(crate) fn document_too_large(
        &mut self,
        key: &str,
        bytes: usize,
    ) -> Option<wasmtime::Error> {
        (bytes > self.max_document).then(|| {
            let message = format!(
                "the document at key {key:?} is {}; documents are at most {}",
                mebibytes(bytes),
                mebibytes(self.max_document)
            );
            self.exceeded = Some(message.clone());
            wasmtime::Error::msg(message)
        })
    }

    /// After writes joined the batch: are they within the budget?
    pub(crate) fn check_pending(&mut self) -> wasmtime::Result<()> {
        if self.spent() > self.budget {
            let pending = self.txn.held_bytes();
            return Err(self.over(format!(
                "the batch's {} pending writes, {} emitted events and {} outbox requests hold {}",
                self.txn.len(),
                self.txn
                    .emitted()
                    .iter()
                    .map(|r| r.events.len())
                    .sum::<usize>(),
                self.txn.outbox().len(),
                mebibytes(pending)
            )));
        }
        Ok(())
    }
}

fn mebibytes(bytes: usize) -> String {
    format!("{:.1} MiB", bytes as f64 / f64::from(1 << 20))
}

/// Why a key may not be written; `None` if it may.
pub fn key_problem(key: &str) -> Option<String> {
    if key.is_empty() {
        Some("a key must not be empty".into())
    } else if key.len() > MAX_KEY_BYTES {
        Some(format!(
            "key is {} bytes; the limit is {MAX_KEY_BYTES}",
            key.len()
        ))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_non_empty_key_within_the_limit_may_be_written() {
        // `_` is reserved in the HTTP API's paths, not in the view: a
        // projection keyed by stream meets whatever names clients append to.
        // The cases are shared with every SDK's tests.
        let cases: serde_json::Value =
            serde_json::from_str(include_str!("../../../../tests/data/view-keys.json")).unwrap();
        let keys = |kind: &str| -> Vec<String> {
            cases[kind]
                .as_array()
                .unwrap()
                .iter()
                .map(|case| {
                    let times = case["times"].as_u64().unwrap_or(1) as usize;
                    case["key"].as_str().unwrap().repeat(times)
                })
                .collect()
        };
        for key in keys("accepted") {
            assert_eq!(key_problem(&key), None, "{key:.20}");
        }
        for key in keys("refused") {
            assert!(key_problem(&key).is_some(), "{key:.20}");
        }
    }
}
