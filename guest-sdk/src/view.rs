//! [`View`]: the projection's keyspace as it sees it during one batch (or one
//! query), with a cache in front of the [`Backend`].
//!
//! Crossing the component boundary costs far more than a map lookup, so the
//! view reads a batch's keys with one `get_many` (see
//! [`Projection::keys`](crate::Projection::keys)), serves every later read and
//! write from the cache, and hands the dirty keys to one `write_many` when the
//! batch succeeds. A document is cached once per key, as JSON text, as a
//! decoded [`serde_json::Value`], or as the projection's own type after
//! [`View::upsert`], whichever it was last used as. So a document that many
//! events of a batch change with `upsert` is parsed once when first read and
//! printed once when the batch is written, not once per event.

use std::any::Any;
use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::backend::{check_json, check_key};
use crate::{Backend, Entry, Error, ViewError, Write};

/// The projection's keyspace: ordered UTF-8 keys, JSON document values.
///
/// Reads see the batch's own earlier writes. Keys must be non-empty and at
/// most [`MAX_KEY_LEN`](crate::MAX_KEY_LEN) bytes, and values JSON documents:
/// both are checked on write, so a bad write fails the event that made it.
pub struct View<'b> {
    backend: &'b mut dyn Backend,
    cache: HashMap<String, Slot, BuildHasherDefault<KeyHasher>>,
    /// Whether any cached document changed since the last flush, so a batch
    /// or query that changed nothing skips the walk over the cache.
    dirty: bool,
    /// Set for queries: the host refuses their writes, so the view refuses
    /// them first, with a clearer error.
    read_only: bool,
}

struct Slot {
    document: Document,
    dirty: bool,
}

enum Document {
    Absent,
    Text(String),
    Json(Value),
    /// Decoded by [`View::upsert`] as the projection's own type; encoded
    /// when written out or read in another form.
    Typed(Box<dyn TypedDocument>),
}

/// A document of the projection's own type, behind a trait object so the
/// cache can hold documents of any type and print them when it writes.
trait TypedDocument {
    fn encode(&self) -> Result<String, serde_json::Error>;
    fn as_any_mut(&mut self) -> &mut dyn Any;
}

impl<T: Serialize + 'static> TypedDocument for T {
    fn encode(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string(self)
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

impl<'b> View<'b> {
    /// A view for applying events: writes are cached until the batch ends.
    pub fn new(backend: &'b mut dyn Backend) -> Self {
        Self {
            backend,
            cache: HashMap::default(),
            dirty: false,
            read_only: false,
        }
    }

    /// A view for answering queries: every write is refused.
    pub fn read_only(backend: &'b mut dyn Backend) -> Self {
        Self {
            read_only: true,
            ..Self::new(backend)
        }
    }

    /// Reads every key not yet cached with a single `get_many`. The SDK calls
    /// this with the keys [`Projection::keys`](crate::Projection::keys) names
    /// for a batch; a query may call it before reading many keys.
    pub fn prefetch<I>(&mut self, keys: I)
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        let mut missing: Vec<String> = keys
            .into_iter()
            .map(Into::into)
            .filter(|key| !self.cache.contains_key(key))
            .collect();
        if missing.is_empty() {
            return;
        }
        if missing.len() > 1 {
            missing = without_duplicates(missing);
        }
        let documents = self.backend.get_many(&missing);
        assert_eq!(
            documents.len(),
            missing.len(),
            "get_many must answer every key it is asked for"
        );
        self.cache.reserve(missing.len());
        for (key, document) in missing.into_iter().zip(documents) {
            self.cache.insert(key, Slot::loaded(document));
        }
    }

    /// The document at `key` as JSON text.
    ///
    /// # Panics
    ///
    /// If [`View::upsert`] left a value at `key` that JSON cannot encode
    /// (a map with keys that are not strings, say); [`View::get_json`]
    /// returns that as an error instead.
    pub fn get(&mut self, key: &str) -> Option<String> {
        let slot = self.encoded(key).unwrap_or_else(|error| panic!("{error}"));
        match &slot.document {
            Document::Absent => None,
            Document::Text(text) => Some(text.clone()),
            Document::Json(value) => Some(value.to_string()),
            Document::Typed(_) => unreachable!("encoded above"),
        }
    }

    /// The document at `key` as a [`Value`], decoded at most once per batch.
    pub fn get_value(&mut self, key: &str) -> Result<Option<&Value>, Error> {
        let slot = self.encoded(key)?;
        if let Document::Text(text) = &slot.document {
            let value = serde_json::from_str(text).map_err(|error| stored_json(key, error))?;
            slot.document = Document::Json(value);
        }
        match &slot.document {
            Document::Json(value) => Ok(Some(value)),
            _ => Ok(None),
        }
    }

    /// The document at `key` decoded as `T`.
    pub fn get_json<T: DeserializeOwned>(&mut self, key: &str) -> Result<Option<T>, Error> {
        let slot = self.encoded(key)?;
        decoded(key, &slot.document)
    }

    /// Stores the JSON text `json` at `key`.
    pub fn put(&mut self, key: &str, json: &str) -> Result<(), Error> {
        check_json(json).map_err(|error| Error::from(error).context(format!("put `{key}`")))?;
        self.set(key, Document::Text(json.to_owned()))
    }

    /// Stores `value` at `key`.
    pub fn put_value(&mut self, key: &str, value: Value) -> Result<(), Error> {
        self.set(key, Document::Json(value))
    }

    /// Stores `document` at `key`, encoded as JSON.
    pub fn put_json<T: Serialize + ?Sized>(
        &mut self,
        key: &str,
        document: &T,
    ) -> Result<(), Error> {
        let text = serde_json::to_string(document)
            .map_err(|error| Error::from(error).context(format!("put `{key}`")))?;
        self.set(key, Document::Text(text))
    }

    /// Removes `key`; removing an absent key is not an error.
    pub fn delete(&mut self, key: &str) -> Result<(), Error> {
        self.set(key, Document::Absent)
    }

    /// Replaces the document at `key` with what `change` makes of it:
    /// `None` in means the key is absent, `None` out deletes it.
    pub fn update<T, F>(&mut self, key: &str, change: F) -> Result<(), Error>
    where
        T: DeserializeOwned + Serialize,
        F: FnOnce(Option<T>) -> Option<T>,
    {
        let before = self.get_json::<T>(key)?;
        let existed = before.is_some();
        match change(before) {
            Some(after) => self.put_json(key, &after),
            None if existed => self.delete(key),
            None => Ok(()),
        }
    }

    /// Changes the document at `key` in place, starting from `T::default()`
    /// when the key is absent, and stores it; returns what `change` returns.
    ///
    /// The fast way to change a document many events of a batch touch: it
    /// stays decoded as `T` in the view until the batch ends, so it is
    /// parsed once when first read and printed once when written, however
    /// many events change it. Reading it in another form in between
    /// ([`View::get`], [`View::get_json`], another `T`) prints it then.
    pub fn upsert<T, R, F>(&mut self, key: &str, change: F) -> Result<R, Error>
    where
        T: DeserializeOwned + Serialize + Default + 'static,
        F: FnOnce(&mut T) -> R,
    {
        if self.read_only {
            return Err(ViewError::ReadOnly.into());
        }
        check_key(key)?;
        self.dirty = true;
        let slot = self.slot(key);
        if let Document::Typed(document) = &mut slot.document
            && let Some(document) = document.as_any_mut().downcast_mut::<T>()
        {
            slot.dirty = true;
            return Ok(change(document));
        }
        slot.document.encode_typed(key)?;
        let mut document: T = decoded(key, &slot.document)?.unwrap_or_default();
        let result = change(&mut document);
        slot.document = Document::Typed(Box::new(document));
        slot.dirty = true;
        Ok(result)
    }

    /// Entries with `start <= key < end` (no `end`: to the last key), in key
    /// order, at most `limit` of them. Pending writes are handed to the host
    /// first, so the scan sees them.
    pub fn scan(
        &mut self,
        start: &str,
        end: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Entry>, Error> {
        self.flush()?;
        Ok(self.backend.scan(start, end, limit))
    }

    /// Entries whose key starts with `prefix`, in key order, at most `limit`.
    pub fn scan_prefix(&mut self, prefix: &str, limit: u32) -> Result<Vec<Entry>, Error> {
        let end = prefix_end(prefix);
        self.scan(prefix, end.as_deref(), limit)
    }

    /// Emits an event of `event_type` with payload `data` to `stream_id`,
    /// caused by `cause` (the event being handled). It is appended to the log
    /// when the batch commits, together with the batch's view writes, and
    /// only once however often the event is handled again (a replay, a
    /// rebuild, a new version): the host derives its id from the projection,
    /// the cause and the emission's place among the cause's emissions. The
    /// stream must be one [`Description::emits`](crate::Description::emits)
    /// declares. Its metadata says `causation_id`, `correlation_id`,
    /// `emitted_by` and `emit_depth`.
    ///
    /// Pass the error on with `?`: a refused emission (an undeclared stream,
    /// a chain of emissions too deep) fails the event, like a refused write.
    pub fn emit<T: Serialize + ?Sized>(
        &mut self,
        cause: &crate::Event,
        stream_id: &str,
        event_type: &str,
        data: &T,
    ) -> Result<(), Error> {
        self.emit_with_metadata(
            cause,
            stream_id,
            event_type,
            data,
            &Value::Object(Default::default()),
        )
    }

    /// [`View::emit`] with metadata of the projection's own (a JSON object);
    /// the host's keys (`causation_id` and the rest) take precedence.
    pub fn emit_with_metadata<T: Serialize + ?Sized>(
        &mut self,
        cause: &crate::Event,
        stream_id: &str,
        event_type: &str,
        data: &T,
        metadata: &Value,
    ) -> Result<(), Error> {
        if self.read_only {
            return Err(Error::new("a query cannot emit events"));
        }
        let emission = crate::Emission {
            cause: cause.position,
            stream_id: stream_id.to_string(),
            event_type: event_type.to_string(),
            data: serde_json::to_string(data)?,
            metadata: metadata.to_string(),
        };
        Ok(self.backend.emit(emission)?)
    }

    /// Puts a side effect in the outbox: `payload` (serialized to JSON) is
    /// sent to the endpoint the operator configured for `target`, caused by
    /// `cause` (the event being handled). The request commits with the
    /// batch's view writes, and is enqueued only once however often the
    /// event is handled again (a replay, a rebuild, a new version): the host
    /// derives its id from the projection, the cause and the request's place
    /// among the cause's requests. The host then delivers it at least once,
    /// in order with the target's other requests, with that id as its
    /// `Idempotency-Key`. The target must be one
    /// [`Description::targets`](crate::Description::targets) declares.
    ///
    /// Pass the error on with `?`: a refused request (an undeclared target,
    /// a payload that is not JSON) fails the event, like a refused write.
    pub fn enqueue<T: Serialize + ?Sized>(
        &mut self,
        cause: &crate::Event,
        target: &str,
        payload: &T,
    ) -> Result<(), Error> {
        self.enqueue_request(cause, crate::OutboxRequest::new(target, payload)?)
    }

    /// [`View::enqueue`] with an idempotency key or an ordering key of the
    /// projection's own ([`OutboxRequest`](crate::OutboxRequest)).
    pub fn enqueue_request(
        &mut self,
        cause: &crate::Event,
        mut request: crate::OutboxRequest,
    ) -> Result<(), Error> {
        if self.read_only {
            return Err(Error::new("a query cannot put requests in the outbox"));
        }
        request.cause = cause.position;
        Ok(self.backend.enqueue(request)?)
    }

    /// Hands the pending writes to the backend in one `write_many`, keeping
    /// the documents cached.
    pub(crate) fn flush(&mut self) -> Result<(), Error> {
        if !self.dirty {
            return Ok(());
        }
        self.dirty = false;
        let writes = self
            .cache
            .iter_mut()
            .filter(|(_, slot)| slot.dirty)
            .map(|(key, slot)| {
                slot.dirty = false;
                let printed = slot.document.printed(key)?.map(Cow::into_owned);
                Ok(write_of(key.clone(), printed))
            })
            .collect::<Result<_, Error>>()?;
        Ok(self.backend.write_many(writes)?)
    }

    /// Hands the pending writes to the backend in one `write_many` at the end
    /// of a batch, moving the documents out of the cache instead of copying.
    pub(crate) fn commit(self) -> Result<(), Error> {
        if !self.dirty {
            return Ok(());
        }
        let writes = self
            .cache
            .into_iter()
            .filter(|(_, slot)| slot.dirty)
            .map(|(key, slot)| {
                let printed = match slot.document {
                    Document::Text(text) => Some(text),
                    other => other.printed(&key)?.map(Cow::into_owned),
                };
                Ok(write_of(key, printed))
            })
            .collect::<Result<_, Error>>()?;
        Ok(self.backend.write_many(writes)?)
    }

    /// The cached slot for `key`, read from the backend on a miss.
    fn slot(&mut self, key: &str) -> &mut Slot {
        if !self.cache.contains_key(key) {
            self.prefetch([key]);
        }
        self.cache.get_mut(key).expect("prefetch caches every key")
    }

    /// The cached slot for `key`, with a document [`View::upsert`] left
    /// decoded turned back into text, so every other read sees JSON.
    fn encoded(&mut self, key: &str) -> Result<&mut Slot, Error> {
        let slot = self.slot(key);
        slot.document.encode_typed(key)?;
        Ok(slot)
    }

    fn set(&mut self, key: &str, document: Document) -> Result<(), Error> {
        if self.read_only {
            return Err(ViewError::ReadOnly.into());
        }
        check_key(key)?;
        self.dirty = true;
        match self.cache.get_mut(key) {
            Some(slot) => {
                slot.document = document;
                slot.dirty = true;
            }
            None => {
                self.cache.insert(
                    key.to_owned(),
                    Slot {
                        document,
                        dirty: true,
                    },
                );
            }
        }
        Ok(())
    }
}

impl Document {
    /// A document [`View::upsert`] left decoded, turned back into text.
    fn encode_typed(&mut self, key: &str) -> Result<(), Error> {
        if let Document::Typed(document) = self {
            *self = Document::Text(encode(key, document.as_ref())?);
        }
        Ok(())
    }

    /// The JSON text to store, or `None` to delete the key.
    fn printed(&self, key: &str) -> Result<Option<Cow<'_, str>>, Error> {
        Ok(match self {
            Document::Absent => None,
            Document::Text(text) => Some(Cow::Borrowed(text)),
            Document::Json(value) => Some(Cow::Owned(value.to_string())),
            Document::Typed(document) => Some(Cow::Owned(encode(key, document.as_ref())?)),
        })
    }
}

/// The write that stores `printed` at `key`, or deletes it.
fn write_of(key: String, printed: Option<String>) -> Write {
    match printed {
        Some(value) => Write::Put(Entry { key, value }),
        None => Write::Delete(key),
    }
}

impl Slot {
    fn loaded(document: Option<String>) -> Self {
        Self {
            document: document.map_or(Document::Absent, Document::Text),
            dirty: false,
        }
    }
}

/// `keys` without repeats, in first-seen order. Hashing rather than sorting:
/// string comparisons are slow in WebAssembly, and dropping the sort made a
/// replay of `account-balance` about 6% faster there.
fn without_duplicates(keys: Vec<String>) -> Vec<String> {
    let mut seen: HashSet<&str, BuildHasherDefault<KeyHasher>> =
        HashSet::with_capacity_and_hasher(keys.len(), BuildHasherDefault::default());
    let first_sightings: Vec<bool> = keys.iter().map(|key| seen.insert(key.as_str())).collect();
    drop(seen);
    keys.into_iter()
        .zip(first_sightings)
        .filter_map(|(key, first)| first.then_some(key))
        .collect()
}

/// FxHash, the hasher of rustc. The cache lives for one batch and holds keys
/// of the projection's own making, so SipHash's resistance to crafted
/// collisions buys nothing here, while its cost showed up as a tenth of the
/// guest's time in a WebAssembly replay profile.
#[derive(Default)]
struct KeyHasher {
    hash: u64,
}

impl KeyHasher {
    const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(Self::SEED);
    }
}

impl Hasher for KeyHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut words = bytes.chunks_exact(8);
        for word in &mut words {
            self.add(u64::from_le_bytes(word.try_into().expect("8 bytes")));
        }
        let rest = words.remainder();
        if !rest.is_empty() {
            let mut word = [0; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(word));
        }
    }

    fn write_u8(&mut self, byte: u8) {
        self.add(u64::from(byte));
    }

    fn finish(&self) -> u64 {
        // The product's high bits are the well-mixed ones, and the table
        // picks buckets by the low bits: bring them down (as rustc-hash 2 does).
        self.hash.rotate_left(26)
    }
}

/// `document` (never [`Document::Typed`]) decoded as `T`.
fn decoded<T: DeserializeOwned>(key: &str, document: &Document) -> Result<Option<T>, Error> {
    match document {
        Document::Absent => Ok(None),
        Document::Text(text) => serde_json::from_str(text)
            .map(Some)
            .map_err(|error| stored_json(key, error)),
        Document::Json(value) => T::deserialize(value)
            .map(Some)
            .map_err(|error| stored_json(key, error)),
        Document::Typed(_) => unreachable!("typed documents are encoded before they are decoded"),
    }
}

fn encode(key: &str, document: &dyn TypedDocument) -> Result<String, Error> {
    document
        .encode()
        .map_err(|error| Error::from(error).context(format!("put `{key}`")))
}

fn stored_json(key: &str, error: serde_json::Error) -> Error {
    Error::from(error).context(format!("document at `{key}`"))
}

/// The smallest string above every string that starts with `prefix`, or
/// `None` when there is none (an empty prefix, or one of only `char::MAX`).
/// UTF-8 orders bytes as it orders code points, so bumping the last code point
/// bounds the range in the host's byte order too.
fn prefix_end(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let next = match last {
            char::MAX => None,
            // The surrogates are not chars: the next one after them is U+E000.
            '\u{D7FF}' => Some('\u{E000}'),
            _ => char::from_u32(u32::from(last) + 1),
        };
        if let Some(next) = next {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;
    use serde_json::json;

    use super::*;
    use crate::MemoryBackend;

    /// A backend that counts its crossings, to hold the view to its promise
    /// of one read and one write per batch.
    #[derive(Default)]
    struct Counting {
        inner: MemoryBackend,
        get_many_calls: usize,
        write_many_calls: usize,
    }

    impl Backend for Counting {
        fn get_many(&mut self, keys: &[String]) -> Vec<Option<String>> {
            self.get_many_calls += 1;
            self.inner.get_many(keys)
        }

        fn write_many(&mut self, writes: Vec<Write>) -> Result<(), ViewError> {
            self.write_many_calls += 1;
            self.inner.write_many(writes)
        }

        fn scan(&mut self, start: &str, end: Option<&str>, limit: u32) -> Vec<Entry> {
            self.inner.scan(start, end, limit)
        }
    }

    #[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
    struct Counter {
        count: u32,
    }

    fn backend_with(entries: &[(&str, &str)]) -> Counting {
        let mut backend = Counting::default();
        let writes = entries
            .iter()
            .map(|(key, value)| {
                Write::Put(Entry {
                    key: (*key).into(),
                    value: (*value).into(),
                })
            })
            .collect();
        backend.inner.write_many(writes).unwrap();
        backend
    }

    #[test]
    fn prefetched_keys_cost_one_read_and_changes_one_write() {
        let mut backend = backend_with(&[("a", r#"{"count":1}"#)]);
        let mut view = View::new(&mut backend);
        view.prefetch(["a", "b", "a"]);
        for key in ["a", "b", "a", "b", "a"] {
            view.upsert(key, |counter: &mut Counter| counter.count += 1)
                .unwrap();
        }
        view.commit().unwrap();
        assert_eq!(backend.get_many_calls, 1);
        assert_eq!(backend.write_many_calls, 1);
        assert_eq!(backend.inner.get("a"), Some(r#"{"count":4}"#));
        assert_eq!(backend.inner.get("b"), Some(r#"{"count":2}"#));
    }

    #[test]
    fn upsert_keeps_the_document_decoded_and_every_read_sees_it() {
        let mut backend = backend_with(&[("a", r#"{"count":1}"#)]);
        let mut view = View::new(&mut backend);
        for _ in 0..3 {
            view.upsert("a", |counter: &mut Counter| counter.count += 1)
                .unwrap();
        }
        assert_eq!(view.get("a").as_deref(), Some(r#"{"count":4}"#));
        assert_eq!(
            view.get_json::<Counter>("a").unwrap(),
            Some(Counter { count: 4 })
        );
        view.upsert("a", |counter: &mut Counter| counter.count += 1)
            .unwrap();
        assert_eq!(view.get_value("a").unwrap(), Some(&json!({"count": 5})));
        // The same document as another type: printed, then read as that type.
        let seen = view
            .upsert("a", |value: &mut Value| {
                value["seen"] = json!(true);
                value["count"].clone()
            })
            .unwrap();
        assert_eq!(seen, json!(5));
        view.upsert("a", |counter: &mut Counter| counter.count += 1)
            .unwrap();
        // A scan writes pending documents out and keeps them decoded.
        let scanned = view.scan("", None, 10).unwrap();
        assert_eq!(scanned[0].value, r#"{"count":6}"#);
        view.upsert("a", |counter: &mut Counter| counter.count += 1)
            .unwrap();
        view.commit().unwrap();
        assert_eq!(backend.inner.get("a"), Some(r#"{"count":7}"#));
    }

    #[test]
    fn upsert_refuses_what_put_refuses_and_reports_what_json_cannot_say() {
        let mut backend = backend_with(&[("bad", r#"{"count":"many"}"#)]);
        let mut view = View::new(&mut backend);
        let empty = view.upsert("", |_: &mut Counter| ()).unwrap_err();
        assert!(empty.message().contains("empty"), "{empty}");
        let shape = view.upsert("bad", |_: &mut Counter| ()).unwrap_err();
        assert!(shape.message().starts_with("document at `bad`"), "{shape}");
        // Keys JSON objects cannot have: the batch fails when it is written.
        view.upsert("map", |map: &mut HashMap<Vec<u8>, u8>| {
            map.insert(vec![1], 1);
        })
        .unwrap();
        let unprintable = view.get_json::<Value>("map").unwrap_err();
        assert!(
            unprintable.message().starts_with("put `map`"),
            "{unprintable}"
        );
        view.upsert("map", |map: &mut HashMap<Vec<u8>, u8>| map.clear())
            .unwrap();
        view.upsert("map", |map: &mut HashMap<Vec<u8>, u8>| {
            map.insert(vec![2], 2);
        })
        .unwrap();
        let at_commit = view.commit().unwrap_err();
        assert!(at_commit.message().starts_with("put `map`"), "{at_commit}");
        assert_eq!(backend.write_many_calls, 0);

        let mut backend = backend_with(&[]);
        let mut view = View::read_only(&mut backend);
        assert_eq!(
            view.upsert("k", |counter: &mut Counter| counter.count += 1)
                .unwrap_err(),
            Error::from(ViewError::ReadOnly)
        );
    }

    #[test]
    fn reads_see_the_batchs_own_writes_and_deletes() {
        let mut backend = backend_with(&[("gone", "1")]);
        let mut view = View::new(&mut backend);
        view.put_json("doc", &json!({"n": 1})).unwrap();
        view.delete("gone").unwrap();
        assert_eq!(view.get("doc").as_deref(), Some(r#"{"n":1}"#));
        assert_eq!(view.get_value("gone").unwrap(), None);
        assert_eq!(
            view.get_json::<Value>("doc").unwrap(),
            Some(json!({"n": 1}))
        );
    }

    #[test]
    fn a_batch_writes_each_changed_key_once_and_nothing_else() {
        #[derive(Default)]
        struct Recording(Vec<String>);

        impl Backend for Recording {
            fn get_many(&mut self, keys: &[String]) -> Vec<Option<String>> {
                vec![None; keys.len()]
            }

            fn write_many(&mut self, writes: Vec<Write>) -> Result<(), ViewError> {
                self.0
                    .extend(writes.iter().map(|write| write.key().to_owned()));
                Ok(())
            }

            fn scan(&mut self, _: &str, _: Option<&str>, _: u32) -> Vec<Entry> {
                Vec::new()
            }
        }

        let mut backend = Recording::default();
        let mut view = View::new(&mut backend);
        for key in ["c", "a", "c", "b", "a"] {
            view.put(key, "0").unwrap();
        }
        view.delete("d").unwrap();
        view.get("untouched");
        view.commit().unwrap();
        backend.0.sort();
        assert_eq!(backend.0, ["a", "b", "c", "d"]);
    }

    #[test]
    fn nothing_reaches_the_backend_until_the_batch_commits() {
        let mut backend = backend_with(&[]);
        let mut view = View::new(&mut backend);
        view.put("k", "true").unwrap();
        drop(view);
        assert!(backend.inner.is_empty());
        assert_eq!(backend.write_many_calls, 0);
    }

    #[test]
    fn a_scan_sees_pending_writes() {
        let mut backend = backend_with(&[("item-1", "1"), ("item-3", "3")]);
        let mut view = View::new(&mut backend);
        view.put("item-2", "2").unwrap();
        view.delete("item-3").unwrap();
        let keys: Vec<String> = view
            .scan_prefix("item-", 10)
            .unwrap()
            .into_iter()
            .map(|entry| entry.key)
            .collect();
        assert_eq!(keys, ["item-1", "item-2"]);
    }

    #[test]
    fn update_to_none_deletes_and_absent_to_none_writes_nothing() {
        let mut backend = backend_with(&[("a", r#"{"count":1}"#)]);
        let mut view = View::new(&mut backend);
        view.update("a", |_: Option<Counter>| None).unwrap();
        view.update("b", |_: Option<Counter>| None).unwrap();
        view.commit().unwrap();
        assert!(backend.inner.is_empty());
        assert_eq!(backend.write_many_calls, 1);
    }

    #[test]
    fn bad_keys_and_bad_json_fail_at_the_write_that_made_them() {
        let mut backend = backend_with(&[]);
        let mut view = View::new(&mut backend);
        let empty = view.put("", "1").unwrap_err();
        assert!(empty.message().contains("empty"), "{empty}");
        view.put("_checkpoint", "1").unwrap();
        let bad_json = view.put("k", "{oops").unwrap_err();
        assert!(bad_json.message().contains("invalid JSON"), "{bad_json}");
    }

    #[test]
    fn a_read_only_view_refuses_writes() {
        let mut backend = backend_with(&[]);
        let mut view = View::read_only(&mut backend);
        assert_eq!(
            view.put("k", "1").unwrap_err(),
            Error::from(ViewError::ReadOnly)
        );
    }

    #[test]
    fn a_stored_document_of_the_wrong_shape_names_its_key() {
        let mut backend = backend_with(&[("a", r#"{"count":"many"}"#)]);
        let mut view = View::new(&mut backend);
        let error = view.get_json::<Counter>("a").unwrap_err();
        assert!(error.message().starts_with("document at `a`"), "{error}");
    }

    #[test]
    fn the_cache_hasher_spreads_keys_that_differ_only_at_the_end() {
        use std::hash::BuildHasher;
        let hasher = BuildHasherDefault::<KeyHasher>::default();
        let buckets: HashSet<u64> = (0..1000)
            .map(|n| hasher.hash_one(format!("account-{n}")) & 2047)
            .collect();
        // 1000 random keys in 2048 buckets fill about 800 of them.
        assert!(buckets.len() > 700, "only {} buckets used", buckets.len());
    }

    #[test]
    fn prefix_end_bounds_exactly_the_keys_with_the_prefix() {
        assert_eq!(prefix_end("by-stock/").as_deref(), Some("by-stock0"));
        assert_eq!(prefix_end("a\u{D7FF}").as_deref(), Some("a\u{E000}"));
        assert_eq!(prefix_end("a\u{10FFFF}").as_deref(), Some("b"));
        assert_eq!(prefix_end(""), None);
        assert_eq!(prefix_end("\u{10FFFF}"), None);
    }
}
