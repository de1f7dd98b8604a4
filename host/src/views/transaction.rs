//! A batch's uncommitted view writes, layered over the committed keyspace.

use std::collections::BTreeMap;
use std::ops::Bound;

use super::Keyspace;
use crate::storage::StorageError;

/// Writes of the batch in flight, readable before they are committed.
#[derive(Debug, Default)]
pub struct Transaction {
    /// Key → new document (`None`: deleted). Ordered so that scans can merge it.
    writes: BTreeMap<String, Option<String>>,
}

impl Transaction {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn is_empty(&self) -> bool {
        self.writes.is_empty()
    }

    pub fn len(&self) -> usize {
        self.writes.len()
    }

    pub fn clear(&mut self) {
        self.writes.clear();
    }

    pub fn put(&mut self, key: String, value: String) {
        self.writes.insert(key, Some(value));
    }

    pub fn delete(&mut self, key: String) {
        self.writes.insert(key, None);
    }

    pub(super) fn writes(&self) -> impl Iterator<Item = (&String, &Option<String>)> {
        self.writes.iter()
    }

    /// `key` as this batch sees it.
    pub fn get(&self, base: &Keyspace, key: &str) -> Result<Option<String>, StorageError> {
        match self.writes.get(key) {
            Some(pending) => Ok(pending.clone()),
            None => base.get(key),
        }
    }

    /// `keys` as this batch sees them, reading the committed ones in one multi-get.
    pub fn get_many(
        &self,
        base: &Keyspace,
        keys: &[String],
    ) -> Result<Vec<Option<String>>, StorageError> {
        let missing: Vec<String> = keys
            .iter()
            .filter(|k| !self.writes.contains_key(*k))
            .cloned()
            .collect();
        let mut committed = base.get_many(&missing)?.into_iter();
        Ok(keys
            .iter()
            .map(|k| match self.writes.get(k) {
                Some(pending) => pending.clone(),
                None => committed.next().flatten(),
            })
            .collect())
    }

    /// An ordered scan of the keyspace as this batch sees it.
    pub fn scan(
        &self,
        base: &Keyspace,
        start: &str,
        end: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, String)>, StorageError> {
        let upper = match end {
            Some(e) => Bound::Excluded(e.to_string()),
            None => Bound::Unbounded,
        };
        let mut pending = self
            .writes
            .range((Bound::Included(start.to_string()), upper))
            .peekable();
        let mut out = Vec::new();
        let emit = |out: &mut Vec<(String, String)>, k: &str, v: &Option<String>| {
            if let Some(v) = v {
                out.push((k.to_string(), v.clone()));
            }
        };
        base.scan_with(start, end, |key, value| {
            while let Some((pk, pv)) = pending.peek() {
                if pk.as_str() < key {
                    emit(&mut out, pk, pv);
                    pending.next();
                } else {
                    break;
                }
            }
            match pending.peek() {
                Some((pk, pv)) if pk.as_str() == key => {
                    emit(&mut out, pk, pv);
                    pending.next();
                }
                _ => out.push((key.to_string(), value.to_string())),
            }
            out.len() < limit
        })?;
        for (k, v) in pending {
            if out.len() >= limit {
                break;
            }
            emit(&mut out, k, v);
        }
        out.truncate(limit);
        Ok(out)
    }
}
