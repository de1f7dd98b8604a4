//! Applying a compiled view file to a batch of events.
//!
//! The documents a batch touches are read once (those whose keys the events
//! alone determine, with one multi-get before the first event), kept parsed
//! while the batch is applied event by event, and written once at its end,
//! so a document changed by a thousand events of a batch is parsed and
//! serialized once. Any event the view cannot apply (a value missing, a
//! type that does not fit, a `require` not met, a document grown past its
//! limit) fails the batch naming that event; the projector then applies the
//! events around it and halts or dead-letters it, as for any plugin.
//!
//! An event's data is parsed into the members the view file reads of it
//! for that event type, no more: the others are checked to be JSON and
//! skipped, not built (most events carry more than a view uses).

use std::collections::{BTreeSet, HashMap as StdHashMap};
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

use super::expr::{self, Expr, PathRef, Root, Scope};
use super::spec::{Check, Op, OpKind, Target, Test, Update, ViewSpec};
use crate::projector::Handler;
use crate::runtime::CallError;
use crate::runtime::bindings::{Event, HandleError};
use crate::views::index::{FieldKind, after_prefix, encode_value, index_prefix, lookup};
use crate::views::{Keyspace, MAX_KEY_BYTES, Transaction};

/// Most documents one `each` may change for one event.
pub const MAX_EACH: usize = 10_000;

/// The batch's documents by key, hashed many times per event: foldhash,
/// seeded per process.
type HashMap<K, V> = StdHashMap<K, V, foldhash::fast::RandomState>;

/// A document as the batch sees it.
struct Slot {
    doc: Option<Value>,
    dirty: bool,
    /// The event (its place in the batch) that last changed it.
    by: usize,
}

pub struct ViewHandler {
    spec: std::sync::Arc<ViewSpec>,
    keyspace: Keyspace,
    max_document: usize,
    /// By event type, the top-level members of the data its updates read;
    /// `None` when one reads the data whole.
    data_members: HashMap<String, Option<Vec<String>>>,
}

impl ViewHandler {
    pub(super) fn new(
        spec: std::sync::Arc<ViewSpec>,
        keyspace: Keyspace,
        max_document: usize,
    ) -> Self {
        let data_members = spec
            .handlers
            .iter()
            .map(|(event_type, updates)| (event_type.clone(), data_members(updates)))
            .collect();
        ViewHandler {
            spec,
            keyspace,
            max_document,
            data_members,
        }
    }

    /// The updates for `event`'s type, and its values to evaluate them
    /// with; `None` if the view does nothing with events of that type.
    fn on<'e>(&'e self, event: &'e Event) -> Option<(&'e [Update], EventValues<'e>)> {
        let updates = self.spec.handlers.get(&event.event_type)?;
        let members = self
            .data_members
            .get(&event.event_type)
            .and_then(Option::as_deref);
        let values = EventValues {
            event,
            members,
            data: None,
            metadata: None,
        };
        Some((updates, values))
    }
}

/// The top-level members of the event's data that `updates` read, or `None`
/// if one of them reads the data whole.
fn data_members(updates: &[Update]) -> Option<Vec<String>> {
    let mut members = BTreeSet::new();
    for update in updates {
        let mut exprs: Vec<&Expr> = update.joins.iter().map(|(_, e)| e).collect();
        match &update.target {
            Target::Key(e) => exprs.push(e),
            Target::Each { values, .. } => exprs.extend(values.iter().map(|(_, e)| e)),
        }
        exprs.extend(update.defaults.iter().map(|(_, e)| e));
        exprs.extend(update.ops.iter().map(|op| &op.value));
        let mut paths: Vec<&PathRef> = Vec::new();
        for check in update.when.iter().chain(&update.require) {
            paths.push(&check.path);
            for test in &check.tests {
                match test {
                    Test::Eq(e)
                    | Test::Ne(e)
                    | Test::Gt(e)
                    | Test::Gte(e)
                    | Test::Lt(e)
                    | Test::Lte(e)
                    | Test::Prefix(e) => exprs.push(e),
                    Test::In(list) => exprs.extend(list),
                    Test::Exists(_) => {}
                }
            }
        }
        paths.extend(exprs.into_iter().flat_map(Expr::paths));
        for path in paths.into_iter().filter(|p| p.root == Root::Data) {
            let first = path.steps.split('.').next().unwrap_or_default();
            if first.is_empty() {
                return None;
            }
            members.insert(first.to_string());
        }
    }
    Some(members.into_iter().collect())
}

/// The event being applied, its data parsed on first use.
struct EventValues<'e> {
    event: &'e Event,
    /// The members of the data to parse (`None`: all of it).
    members: Option<&'e [String]>,
    data: Option<Value>,
    metadata: Option<Value>,
}

impl EventValues<'_> {
    fn data(&mut self) -> Result<&Value, String> {
        if self.data.is_none() {
            let parsed = match self.members {
                None => serde_json::from_str(&self.event.data),
                Some(members) => {
                    let mut reader = serde_json::Deserializer::from_str(&self.event.data);
                    Members(members)
                        .deserialize(&mut reader)
                        .and_then(|value| reader.end().map(|()| value))
                }
            };
            self.data = Some(parsed.map_err(|e| format!("the event's data is not JSON: {e}"))?);
        }
        Ok(self.data.as_ref().expect("just set"))
    }

    fn metadata(&mut self) -> Result<&Value, String> {
        if self.metadata.is_none() {
            self.metadata = Some(serde_json::from_str(&self.event.metadata).unwrap_or(Value::Null));
        }
        Ok(self.metadata.as_ref().expect("just set"))
    }
}

/// A JSON value, of which an object keeps only the members named here.
struct Members<'m>(&'m [String]);

impl<'de> DeserializeSeed<'de> for Members<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Members<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut kept = Map::new();
        while let Some(wanted) = map.next_key_seed(MemberName(self.0))? {
            match wanted {
                Some(i) => {
                    kept.insert(self.0[i].clone(), map.next_value()?);
                }
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Value::Object(kept))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Value, A::Error> {
        serde::Deserialize::deserialize(serde::de::value::SeqAccessDeserializer::new(seq))
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
}

/// A member's name: its place among the wanted ones, if it is one.
struct MemberName<'m>(&'m [String]);

impl<'de> DeserializeSeed<'de> for MemberName<'_> {
    type Value = Option<usize>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Option<usize>, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for MemberName<'_> {
    type Value = Option<usize>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a member name")
    }

    fn visit_str<E>(self, name: &str) -> Result<Option<usize>, E> {
        Ok(self.0.iter().position(|wanted| wanted == name))
    }
}

/// What the values of one update see.
struct UpdateScope<'a, 'e> {
    event: &'a mut EventValues<'e>,
    key: Option<&'a str>,
    doc: Option<&'a Value>,
    joins: &'a [Option<Value>],
}

impl Scope for UpdateScope<'_, '_> {
    fn resolve(&mut self, path: &PathRef) -> Result<Option<Value>, String> {
        let e = self.event.event;
        let stream = |part: Root| {
            let split = e.stream_id.split_once('-');
            match part {
                Root::StreamCategory => Some(split.map_or(e.stream_id.as_str(), |(c, _)| c)),
                _ => split.map(|(_, id)| id),
            }
            .map(|s| Value::String(s.to_string()))
        };
        Ok(match path.root {
            Root::Data => expr::step_into(self.event.data()?, &path.steps),
            Root::Metadata => expr::step_into(self.event.metadata()?, &path.steps),
            Root::Stream => Some(Value::String(e.stream_id.clone())),
            Root::StreamCategory | Root::StreamId => stream(path.root.clone()),
            Root::Type => Some(Value::String(e.event_type.clone())),
            Root::Position => Some(Value::from(e.position)),
            Root::Version => Some(Value::from(e.stream_version)),
            Root::Time => Some(Value::from(e.recorded_at)),
            Root::EventId => Some(Value::String(e.id.clone())),
            Root::Key => self.key.map(|k| Value::String(k.to_string())),
            Root::Doc => self.doc.and_then(|d| expr::step_into(d, &path.steps)),
            Root::Join(i) => self
                .joins
                .get(i)
                .and_then(Option::as_ref)
                .and_then(|d| expr::step_into(d, &path.steps)),
        })
    }
}

fn key_of(value: Value, what: &str) -> Result<String, String> {
    let key = match value {
        Value::String(s) => s,
        Value::Number(n) => n.to_string(),
        other => return Err(format!("{what} is {other}, not a key")),
    };
    if key.is_empty() || key.len() > MAX_KEY_BYTES {
        return Err(format!(
            "{what} {key:?} is not a key (1 to {MAX_KEY_BYTES} bytes)"
        ));
    }
    Ok(key)
}

fn encoded(value: Option<&Value>) -> Vec<u8> {
    let mut out = Vec::new();
    encode_value(FieldKind::Any, value, &mut out);
    out
}

fn passes(check: &Check, scope: &mut dyn Scope) -> Result<bool, String> {
    let value = scope.resolve(&check.path)?;
    let have = encoded(value.as_ref());
    for test in &check.tests {
        let cmp = |e: &Expr, scope: &mut dyn Scope| -> Result<Vec<u8>, String> {
            Ok(encoded(Some(&expr::eval(e, scope)?)))
        };
        let ok = match test {
            Test::Exists(want) => value.is_some() == *want,
            Test::Eq(e) => have == cmp(e, scope)?,
            Test::Ne(e) => have != cmp(e, scope)?,
            Test::In(items) => {
                let mut any = false;
                for e in items {
                    any |= have == cmp(e, scope)?;
                }
                any
            }
            Test::Prefix(e) => match (&value, expr::eval(e, scope)?) {
                (Some(Value::String(s)), Value::String(p)) => s.starts_with(&p),
                _ => false,
            },
            Test::Gt(e) | Test::Gte(e) | Test::Lt(e) | Test::Lte(e) => {
                let want = cmp(e, scope)?;
                value.is_some()
                    && have.first() == want.first()
                    && match test {
                        Test::Gt(_) => have > want,
                        Test::Gte(_) => have >= want,
                        Test::Lt(_) => have < want,
                        _ => have <= want,
                    }
            }
        };
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Whether a number is a whole one (kept exact).
fn whole(n: &Number) -> Option<i128> {
    n.as_i64()
        .map(i128::from)
        .or_else(|| n.as_u64().map(i128::from))
}

fn from_i128(n: i128, field: &str) -> Result<Value, String> {
    if let Ok(v) = i64::try_from(n) {
        Ok(Value::from(v))
    } else if let Ok(v) = u64::try_from(n) {
        Ok(Value::from(v))
    } else {
        Err(format!("{field} overflows"))
    }
}

fn from_f64(f: f64, field: &str) -> Result<Value, String> {
    Number::from_f64(f)
        .map(Value::Number)
        .ok_or_else(|| format!("{field} is no longer a finite number"))
}

/// `current + operand` (or minus), keeping whole numbers whole.
fn arith(
    current: Option<&Value>,
    operand: &Value,
    subtract: bool,
    field: &str,
) -> Result<Value, String> {
    let Value::Number(b) = operand else {
        return Err(format!("{field}: {operand} is not a number"));
    };
    let a = match current {
        None | Some(Value::Null) => None,
        Some(Value::Number(a)) => Some(a),
        Some(other) => return Err(format!("{field} holds {other}, not a number")),
    };
    match (a.map(whole), whole(b)) {
        (None, Some(b)) | (Some(Some(_)), Some(b)) if a.is_none_or(|a| whole(a).is_some()) => {
            let a = a.and_then(whole).unwrap_or(0);
            let r = if subtract {
                a.checked_sub(b)
            } else {
                a.checked_add(b)
            };
            from_i128(r.ok_or_else(|| format!("{field} overflows"))?, field)
        }
        (Some(Some(_)), None) => Err(format!(
            "{field} holds a whole number and {operand} is not one"
        )),
        _ => {
            let a = a.and_then(Number::as_f64).unwrap_or(0.0);
            let b = b.as_f64().unwrap_or(0.0);
            from_f64(if subtract { a - b } else { a + b }, field)
        }
    }
}

/// The field at a dotted path of `doc`, made if absent.
fn slot_of<'d>(doc: &'d mut Value, field: &str) -> Result<&'d mut Value, String> {
    let mut at = doc;
    for step in field.split('.') {
        if at.is_null() {
            *at = Value::Object(Map::new());
        }
        let Value::Object(map) = at else {
            return Err(format!("{field}: a part of the path is not an object"));
        };
        if !map.contains_key(step) {
            map.insert(step.to_string(), Value::Null);
        }
        at = map.get_mut(step).expect("just made");
    }
    Ok(at)
}

fn apply_op(doc: &mut Value, op: &Op, operand: Value) -> Result<(), String> {
    let field = op.field.as_str();
    let current = lookup(doc, field).cloned();
    let new = match &op.kind {
        OpKind::Set => operand,
        OpKind::Add => arith(current.as_ref(), &operand, false, field)?,
        OpKind::Subtract => arith(current.as_ref(), &operand, true, field)?,
        OpKind::Min | OpKind::Max => match current {
            None | Some(Value::Null) => operand,
            Some(c) => {
                let (a, b) = (encoded(Some(&c)), encoded(Some(&operand)));
                if a.first() != b.first() || !(c.is_number() || c.is_string()) {
                    return Err(format!("{field}: cannot compare {c} with {operand}"));
                }
                let take = if op.kind == OpKind::Min { b < a } else { b > a };
                if take { operand } else { c }
            }
        },
        OpKind::Append { cap } => {
            let mut items = match current {
                None | Some(Value::Null) => Vec::new(),
                Some(Value::Array(items)) => items,
                Some(other) => return Err(format!("{field} holds {other}, not a list")),
            };
            items.push(operand);
            if let Some(cap) = cap
                && items.len() > *cap
            {
                items.drain(..items.len() - cap);
            }
            Value::Array(items)
        }
        OpKind::Remove { by } => {
            let mut items = match current {
                None | Some(Value::Null) => return Ok(()),
                Some(Value::Array(items)) => items,
                Some(other) => return Err(format!("{field} holds {other}, not a list")),
            };
            let gone = encoded(Some(&operand));
            items.retain(|item| {
                let v = match by {
                    Some(by) => lookup(item, by),
                    None => Some(item),
                };
                encoded(v) != gone
            });
            Value::Array(items)
        }
        OpKind::Average => {
            let (count, sum) = match &current {
                Some(Value::Object(m)) => (m.get("count").cloned(), m.get("sum").cloned()),
                None | Some(Value::Null) => (None, None),
                Some(other) => return Err(format!("{field} holds {other}, not an average")),
            };
            let count = arith(count.as_ref(), &Value::from(1), false, field)?;
            let sum = arith(sum.as_ref(), &operand, false, field)?;
            let mean = sum.as_f64().unwrap_or(0.0) / count.as_f64().unwrap_or(1.0);
            let mut m = Map::new();
            m.insert("count".into(), count);
            m.insert("sum".into(), sum);
            m.insert("mean".into(), from_f64(mean, field)?);
            Value::Object(m)
        }
    };
    *slot_of(doc, field)? = new;
    Ok(())
}

impl ViewHandler {
    fn load<'s>(
        &self,
        docs: &'s mut HashMap<String, Slot>,
        txn: &Transaction,
        key: &str,
    ) -> Result<&'s mut Slot, String> {
        if !docs.contains_key(key) {
            let text = txn
                .get(&self.keyspace, key)
                .map_err(|e| format!("reading {key:?}: {e}"))?;
            let doc = match text {
                Some(t) => Some(
                    serde_json::from_str(&t)
                        .map_err(|e| format!("the document {key:?} is not JSON: {e}"))?,
                ),
                None => None,
            };
            docs.insert(
                key.to_string(),
                Slot {
                    doc,
                    dirty: false,
                    by: 0,
                },
            );
        }
        Ok(docs.get_mut(key).expect("just inserted"))
    }

    /// The keys of every document `each` selects: the committed index
    /// entries with those values, and the documents this batch changed;
    /// then only those whose values (as the batch sees them) match.
    fn each_keys(
        &self,
        docs: &mut HashMap<String, Slot>,
        txn: &Transaction,
        index: &crate::views::index::IndexSpec,
        values: &[(crate::views::index::IndexField, Value)],
    ) -> Result<Vec<String>, String> {
        let mut wanted = Vec::new();
        for (field, value) in values {
            encode_value(field.kind, Some(value), &mut wanted);
        }
        let mut start = index_prefix(self.keyspace.family(), &index.name);
        start.extend_from_slice(&wanted);
        let end = after_prefix(&start);
        let mut candidates: BTreeSet<String> = BTreeSet::new();
        let mut too_many = false;
        self.keyspace
            .index_entries(&start, &end, |doc| {
                candidates.insert(doc.to_string());
                too_many = candidates.len() > MAX_EACH;
                !too_many
            })
            .map_err(|e| format!("reading index {:?}: {e}", index.name))?;
        candidates.extend(docs.iter().filter(|(_, s)| s.dirty).map(|(k, _)| k.clone()));
        let mut out = Vec::new();
        for key in candidates {
            if !index.prefix.as_deref().is_none_or(|p| key.starts_with(p)) {
                continue;
            }
            let slot = self.load(docs, txn, &key)?;
            let Some(doc) = &slot.doc else { continue };
            let mut have = Vec::new();
            for (field, _) in values {
                encode_value(field.kind, lookup(doc, &field.path), &mut have);
            }
            if have == wanted {
                out.push(key);
            }
        }
        if out.len() > MAX_EACH || too_many {
            return Err(format!(
                "each over index {:?} selects more than {MAX_EACH} documents",
                index.name
            ));
        }
        Ok(out)
    }

    fn apply_update(
        &self,
        update: &Update,
        event: &mut EventValues,
        at: usize,
        docs: &mut HashMap<String, Slot>,
        txn: &Transaction,
    ) -> Result<(), String> {
        let mut joined: Vec<Option<Value>> = Vec::with_capacity(update.joins.len());
        for (name, key) in &update.joins {
            let mut scope = UpdateScope {
                event,
                key: None,
                doc: None,
                joins: &joined,
            };
            let key = key_of(
                expr::eval(key, &mut scope)?,
                &format!("the key of join {name}"),
            )?;
            let doc = self.load(docs, txn, &key)?.doc.clone();
            joined.push(doc);
        }
        let keys = match &update.target {
            Target::Key(e) => {
                let mut scope = UpdateScope {
                    event,
                    key: None,
                    doc: None,
                    joins: &joined,
                };
                vec![key_of(expr::eval(e, &mut scope)?, "the key")?]
            }
            Target::Each { index, values } => {
                let mut evaluated = Vec::new();
                for (field, e) in values {
                    let mut scope = UpdateScope {
                        event,
                        key: None,
                        doc: None,
                        joins: &joined,
                    };
                    evaluated.push((field.clone(), expr::eval(e, &mut scope)?));
                }
                self.each_keys(docs, txn, index, &evaluated)?
            }
        };
        let each = matches!(update.target, Target::Each { .. });
        for key in keys {
            let slot = self.load(docs, txn, &key)?;
            let mut checks =
                |checks: &[Check], doc: Option<&Value>| -> Result<Option<String>, String> {
                    let mut scope = UpdateScope {
                        event,
                        key: Some(&key),
                        doc,
                        joins: &joined,
                    };
                    for check in checks {
                        if !passes(check, &mut scope)? {
                            return Ok(Some(check.text.clone()));
                        }
                    }
                    Ok(None)
                };
            if checks(&update.when, slot.doc.as_ref())?.is_some() {
                continue;
            }
            if let Some(failed) = checks(&update.require, slot.doc.as_ref())? {
                return Err(format!("{}: require {failed} is not met", update.label));
            }
            if update.delete {
                if slot.doc.is_some() {
                    slot.doc = None;
                    slot.dirty = true;
                    slot.by = at;
                }
                continue;
            }
            let mut doc = match slot.doc.take() {
                Some(doc) => doc,
                None if each => continue,
                None => {
                    let mut fresh = Value::Object(Map::new());
                    for (field, e) in &update.defaults {
                        let mut scope = UpdateScope {
                            event,
                            key: Some(&key),
                            doc: None,
                            joins: &joined,
                        };
                        let v = expr::eval(e, &mut scope)
                            .map_err(|m| format!("{}.defaults.{field}: {m}", update.label))?;
                        *slot_of(&mut fresh, field)? = v;
                    }
                    fresh
                }
            };
            let mut operands = Vec::with_capacity(update.ops.len());
            for op in &update.ops {
                let mut scope = UpdateScope {
                    event,
                    key: Some(&key),
                    doc: Some(&doc),
                    joins: &joined,
                };
                operands.push(
                    expr::eval(&op.value, &mut scope)
                        .map_err(|m| format!("{}: {m}", update.label))?,
                );
            }
            let result = update
                .ops
                .iter()
                .zip(operands)
                .try_for_each(|(op, v)| apply_op(&mut doc, op, v));
            slot.doc = Some(doc);
            result.map_err(|m| format!("{}: {m}", update.label))?;
            slot.dirty = true;
            slot.by = at;
        }
        Ok(())
    }

    /// Read at once the documents whose keys the events alone determine.
    fn prefetch(&self, batch: &[Event], docs: &mut HashMap<String, Slot>, txn: &Transaction) {
        let mut keys: Vec<String> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for event in batch {
            let Some((updates, mut values)) = self.on(event) else {
                continue;
            };
            for update in updates {
                let Some(e) = update.key_from_event() else {
                    continue;
                };
                let mut scope = UpdateScope {
                    event: &mut values,
                    key: None,
                    doc: None,
                    joins: &[],
                };
                if let Ok(Ok(key)) = expr::eval(e, &mut scope).map(|v| key_of(v, "the key"))
                    && seen.insert(key.clone())
                {
                    keys.push(key);
                }
            }
        }
        if let Ok(found) = txn.get_many(&self.keyspace, &keys) {
            for (key, text) in keys.into_iter().zip(found) {
                let doc = match text {
                    Some(t) => match serde_json::from_str(&t) {
                        Ok(doc) => Some(doc),
                        // Left to `load`, which says what is wrong with it.
                        Err(_) => continue,
                    },
                    None => None,
                };
                docs.insert(
                    key,
                    Slot {
                        doc,
                        dirty: false,
                        by: 0,
                    },
                );
            }
        }
    }
}

impl Handler for ViewHandler {
    fn handle(
        &mut self,
        batch: &[Event],
        txn: &mut Transaction,
    ) -> Result<Result<(), HandleError>, CallError> {
        let mut docs: HashMap<String, Slot> =
            HashMap::with_capacity_and_hasher(batch.len(), Default::default());
        self.prefetch(batch, &mut docs, txn);
        let failed = |index: usize, message: String| {
            Ok(Err(HandleError {
                index: Some(index as u32),
                message,
            }))
        };
        for (i, event) in batch.iter().enumerate() {
            if !self.spec.streams.is_empty()
                && !self
                    .spec
                    .streams
                    .iter()
                    .any(|s| event.stream_id.starts_with(s.as_str()))
            {
                continue;
            }
            let Some((updates, mut values)) = self.on(event) else {
                continue;
            };
            for update in updates {
                if let Err(message) = self.apply_update(update, &mut values, i, &mut docs, txn) {
                    return failed(i, message);
                }
            }
        }
        let mut dirty: Vec<(String, Slot)> = docs.into_iter().filter(|(_, s)| s.dirty).collect();
        dirty.sort_by(|a, b| a.0.cmp(&b.0));
        for (key, slot) in dirty {
            match slot.doc {
                Some(doc) => {
                    let text = doc.to_string();
                    if text.len() > self.max_document {
                        return failed(
                            slot.by,
                            format!(
                                "document {key:?} would be {} bytes, more than the {} MiB a document may hold (max_document_mb)",
                                text.len(),
                                self.max_document >> 20
                            ),
                        );
                    }
                    txn.put(key, text);
                }
                None => txn.delete(key),
            }
        }
        Ok(Ok(()))
    }
}
