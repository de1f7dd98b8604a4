//! A batch's uncommitted view writes, layered over the committed keyspace.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;

use super::Keyspace;
use crate::storage::StorageError;

/// What one pending write costs the host beyond its key and value: the
/// map's node and two string headers, roughly.
const ENTRY_OVERHEAD: usize = 64;

/// Writes of the batch in flight, readable before they are committed.
#[derive(Debug, Default)]
pub struct Transaction {
    /// Key → new document (`None`: deleted). Ordered so that scans can merge it.
    writes: BTreeMap<String, Option<String>>,
    /// Memory the pending writes hold, for the plugin's host budget.
    bytes: usize,
    /// Events the batch emitted, in order, to append when it commits.
    emitted: Vec<crate::log::StreamEvents>,
    /// Memory the emitted events and outbox requests hold (they go to the
    /// log and the outbox, not the view).
    emitted_bytes: usize,
    /// Outbox requests the batch made, in order, to enqueue when it commits.
    outbox: Vec<crate::outbox::NewEntry>,
    /// Since [`Transaction::mark`]: what each key written since had pending
    /// before (`None`: nothing), and the sizes then, so that
    /// [`Transaction::undo`] can take those writes back.
    undo: Option<Undo>,
}

#[derive(Debug, Default)]
struct Undo {
    before: HashMap<String, Option<Option<String>>>,
    bytes: usize,
    /// Runs of emitted events, and events in the last of them.
    emitted_runs: usize,
    last_run_events: usize,
    emitted_bytes: usize,
    outbox: usize,
}

impl Transaction {
    pub fn new() -> Self {
        Self::default()
    }

    /// No writes (emitted events and outbox requests aside).
    pub fn is_empty(&self) -> bool {
        self.writes.is_empty()
    }

    pub fn len(&self) -> usize {
        self.writes.len()
    }

    pub fn clear(&mut self) {
        self.undo = None;
        self.writes.clear();
        self.emitted.clear();
        self.outbox.clear();
        self.emitted_bytes = 0;
        self.bytes = 0;
    }

    /// Add an event the batch emitted to `stream` (checked by `projector::emit`).
    pub fn emit(&mut self, stream: &str, event: crate::log::NewEvent) {
        self.emitted_bytes += ENTRY_OVERHEAD + event.data.len() + event.metadata.len();
        match self.emitted.last_mut() {
            Some(run) if run.stream == stream => run.events.push(event),
            _ => self.emitted.push(crate::log::StreamEvents {
                stream: stream.to_string(),
                events: vec![event],
            }),
        }
    }

    /// The events the batch emitted, as runs of one stream each, in order.
    pub fn emitted(&self) -> &[crate::log::StreamEvents] {
        &self.emitted
    }

    /// Take the emitted events out, for the commit.
    pub fn take_emitted(&mut self) -> Vec<crate::log::StreamEvents> {
        std::mem::take(&mut self.emitted)
    }

    /// Add an outbox request the batch made (checked by `outbox`).
    pub fn enqueue(&mut self, entry: crate::outbox::NewEntry) {
        self.emitted_bytes += ENTRY_OVERHEAD
            + entry.payload.len()
            + entry.ordering_key.len()
            + entry.idempotency_key.len();
        self.outbox.push(entry);
    }

    /// The outbox requests the batch made, in order.
    pub fn outbox(&self) -> &[crate::outbox::NewEntry] {
        &self.outbox
    }

    /// Take the outbox requests out, for the commit.
    pub fn take_outbox(&mut self) -> Vec<crate::outbox::NewEntry> {
        std::mem::take(&mut self.outbox)
    }

    /// Memory the batch holds in the host: its pending writes and the
    /// events it emitted, for the plugin's host budget.
    pub fn held_bytes(&self) -> usize {
        self.bytes + self.emitted_bytes
    }

    /// Memory the pending writes hold, in bytes (keys, values, bookkeeping).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    fn cost(key: &str, value: Option<&String>) -> usize {
        ENTRY_OVERHEAD + key.len() + value.map_or(0, String::len)
    }

    /// From now on, remember what each write replaces, until [`undo`]
    /// takes the writes back or [`keep`] forgets what they replaced.
    ///
    /// [`undo`]: Transaction::undo
    /// [`keep`]: Transaction::keep
    pub fn mark(&mut self) {
        self.undo = Some(Undo {
            before: HashMap::new(),
            bytes: self.bytes,
            emitted_runs: self.emitted.len(),
            last_run_events: self.emitted.last().map_or(0, |run| run.events.len()),
            emitted_bytes: self.emitted_bytes,
            outbox: self.outbox.len(),
        });
    }

    /// How many keys were written since [`Transaction::mark`].
    pub fn keys_since_mark(&self) -> usize {
        self.undo.as_ref().map_or(0, |undo| undo.before.len())
    }

    /// Keep the writes made since [`Transaction::mark`].
    pub fn keep(&mut self) {
        self.undo = None;
    }

    /// Take back every write, emitted event and outbox request since
    /// [`Transaction::mark`]: the transaction is as it was then.
    pub fn undo(&mut self) {
        let Some(undo) = self.undo.take() else {
            return;
        };
        for (key, before) in undo.before {
            match before {
                Some(value) => {
                    self.writes.insert(key, value);
                }
                None => {
                    self.writes.remove(&key);
                }
            }
        }
        self.bytes = undo.bytes;
        // An event emitted since the mark may have joined the last run.
        self.emitted.truncate(undo.emitted_runs);
        if let Some(run) = self.emitted.last_mut() {
            run.events.truncate(undo.last_run_events);
        }
        self.emitted_bytes = undo.emitted_bytes;
        self.outbox.truncate(undo.outbox);
    }

    fn set(&mut self, key: String, value: Option<String>) {
        if let Some(undo) = &mut self.undo
            && !undo.before.contains_key(&key)
        {
            undo.before
                .insert(key.clone(), self.writes.get(&key).cloned());
        }
        self.bytes += Self::cost(&key, value.as_ref());
        if let Some(old) = self.writes.get(&key) {
            self.bytes -= Self::cost(&key, old.as_ref());
        }
        self.writes.insert(key, value);
    }

    pub fn put(&mut self, key: String, value: String) {
        self.set(key, Some(value));
    }

    pub fn delete(&mut self, key: String) {
        self.set(key, None);
    }

    /// The pending write of `key`: `Some(None)` if the batch deleted it,
    /// `None` if the batch has not touched it.
    pub fn pending(&self, key: &str) -> Option<&Option<String>> {
        self.writes.get(key)
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

    /// An ordered scan of the keyspace as this batch sees it, of at most
    /// `limit` entries; `None` if the entries would hold more than
    /// `max_bytes` (the scan stops there, holding no more than that).
    pub fn scan(
        &self,
        base: &Keyspace,
        start: &str,
        end: Option<&str>,
        limit: usize,
        max_bytes: usize,
    ) -> Result<Option<Vec<(String, String)>>, StorageError> {
        let upper = match end {
            Some(e) => Bound::Excluded(e.to_string()),
            None => Bound::Unbounded,
        };
        let mut pending = self
            .writes
            .range((Bound::Included(start.to_string()), upper))
            .peekable();
        let mut out = Vec::new();
        let mut bytes = 0usize;
        let mut emit = |out: &mut Vec<(String, String)>, k: &str, v: Option<&str>| {
            if let Some(v) = v {
                bytes += k.len() + v.len();
                out.push((k.to_string(), v.to_string()));
            }
            bytes <= max_bytes
        };
        let mut within = true;
        base.scan_with(start, end, |key, value| {
            while let Some((pk, pv)) = pending.peek() {
                if pk.as_str() < key {
                    within &= emit(&mut out, pk, pv.as_deref());
                    pending.next();
                } else {
                    break;
                }
            }
            match pending.peek() {
                Some((pk, pv)) if pk.as_str() == key => {
                    within &= emit(&mut out, pk, pv.as_deref());
                    pending.next();
                }
                _ => within &= emit(&mut out, key, Some(value)),
            }
            within && out.len() < limit
        })?;
        for (k, v) in pending {
            if !within || out.len() >= limit {
                break;
            }
            within &= emit(&mut out, k, v.as_deref());
        }
        if !within {
            return Ok(None);
        }
        out.truncate(limit);
        Ok(Some(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::Position;
    use crate::views::ChangeLog;

    /// A committed keyspace holding `a`, `c`, `e`, `g`.
    fn committed() -> (tempfile::TempDir, Keyspace) {
        let dir = tempfile::tempdir().unwrap();
        let (_, views) = crate::server::open_stores(dir.path()).unwrap();
        let keyspace = views.keyspace("p", "g").unwrap();
        let mut base = Transaction::new();
        for k in ["a", "c", "e", "g"] {
            base.put(k.into(), format!("\"{k}0\""));
        }
        keyspace
            .commit(&base, &[], Position(1), ChangeLog::Off)
            .unwrap();
        (dir, keyspace)
    }

    fn keys(entries: &[(String, String)]) -> Vec<String> {
        entries.iter().map(|(k, v)| format!("{k}={v}")).collect()
    }

    #[test]
    fn a_scan_merges_pending_writes_with_the_committed_keys_in_order() {
        let (_dir, keyspace) = committed();
        let mut txn = Transaction::new();
        txn.put("b".into(), "\"b1\"".into()); // new, between committed keys
        txn.put("c".into(), "\"c1\"".into()); // overwrites a committed key
        txn.delete("e".into()); // hides a committed key
        txn.put("h".into(), "\"h1\"".into()); // new, after the last committed key
        let all = txn
            .scan(&keyspace, "", None, 100, usize::MAX)
            .unwrap()
            .unwrap();
        assert_eq!(
            keys(&all),
            ["a=\"a0\"", "b=\"b1\"", "c=\"c1\"", "g=\"g0\"", "h=\"h1\""]
        );
        // Bounds and limits apply to the merged view.
        let some = txn
            .scan(&keyspace, "b", Some("g"), 100, usize::MAX)
            .unwrap()
            .unwrap();
        assert_eq!(keys(&some), ["b=\"b1\"", "c=\"c1\""]);
        let first_two = txn
            .scan(&keyspace, "", None, 2, usize::MAX)
            .unwrap()
            .unwrap();
        assert_eq!(keys(&first_two), ["a=\"a0\"", "b=\"b1\""]);
        // Past the byte bound the scan says so instead of answering.
        assert!(txn.scan(&keyspace, "", None, 100, 10).unwrap().is_none());
    }

    #[test]
    fn pending_bytes_follow_puts_overwrites_and_clears() {
        let mut txn = Transaction::new();
        txn.put("k".into(), "x".repeat(100));
        let one = txn.bytes();
        txn.put("k".into(), "x".repeat(10));
        assert_eq!(txn.bytes(), one - 90);
        txn.delete("k".into());
        assert_eq!(txn.bytes(), one - 100);
        txn.clear();
        assert_eq!(txn.bytes(), 0);
    }

    #[test]
    fn undo_takes_back_exactly_the_writes_since_the_mark() {
        let event = || crate::log::NewEvent {
            id: uuid::Uuid::new_v4(),
            client_id: false,
            event_type: "T".into(),
            data: "{}".into(),
            metadata: "{}".into(),
        };
        let mut txn = Transaction::new();
        txn.put("kept".into(), "1".into());
        txn.put("changed".into(), "1".into());
        txn.delete("gone".into());
        txn.emit("s", event());
        let (bytes, held) = (txn.bytes(), txn.held_bytes());
        let before: Vec<_> = txn.writes().map(|(k, v)| (k.clone(), v.clone())).collect();

        txn.mark();
        txn.put("changed".into(), "2".into());
        txn.put("changed".into(), "3".into());
        txn.put("gone".into(), "back".into());
        txn.put("new".into(), "x".repeat(50));
        txn.delete("kept".into());
        txn.emit("s", event());
        txn.emit("t", event());
        txn.undo();

        let after: Vec<_> = txn.writes().map(|(k, v)| (k.clone(), v.clone())).collect();
        assert_eq!(after, before);
        assert_eq!((txn.bytes(), txn.held_bytes()), (bytes, held));
        assert_eq!(txn.emitted().len(), 1);
        assert_eq!(txn.emitted()[0].events.len(), 1);

        // Kept writes stay, and a later undo goes back only to its own mark.
        txn.mark();
        txn.put("new".into(), "1".into());
        txn.keep();
        txn.mark();
        txn.put("new".into(), "2".into());
        txn.undo();
        assert_eq!(txn.pending("new"), Some(&Some("1".to_string())));
    }
}
