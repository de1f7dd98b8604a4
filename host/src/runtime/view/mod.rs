//! The `prism:projection/view` import: a plugin's access to its own keyspace.
//!
//! The host side holds the keyspace of the plugin's generation and, during
//! `handle`, the batch's transaction; a plugin can name keys but never a
//! keyspace, so it cannot reach another plugin's data.

mod host;

use crate::views::{Keyspace, MAX_KEY_BYTES, Transaction};

/// Most entries one `scan` call returns, whatever the plugin asks for.
pub const MAX_SCAN_ENTRIES: u32 = 10_000;

/// What a plugin instance may do with its keyspace right now.
pub struct ViewAccess {
    pub(crate) keyspace: Keyspace,
    /// The batch in flight; empty outside `handle`.
    pub(crate) txn: Transaction,
    /// False during queries, which must not change the view.
    pub(crate) writable: bool,
}

impl ViewAccess {
    pub fn new(keyspace: Keyspace) -> Self {
        ViewAccess {
            keyspace,
            txn: Transaction::new(),
            writable: false,
        }
    }
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
        for key in ["account-1", "_under", "_", "é", "a/b"] {
            assert_eq!(key_problem(key), None, "{key}");
        }
        assert!(key_problem("").is_some());
        assert!(key_problem(&"k".repeat(MAX_KEY_BYTES + 1)).is_some());
    }
}
