//! `_find`: queries over a view's documents through one of its secondary
//! indexes, or by scanning a small view.
//!
//! A query names an index and conditions on fields, written `FIELD.OP=VALUE`
//! (`stock.lt=10`, `name.prefix=ab`, `color.in=red,blue`). Conditions on the
//! index's leading fields narrow the index range that is read: equality
//! (`eq`, `in`) on a prefix of its fields, then one range (`gt`, `gte`,
//! `lt`, `lte`, `prefix`) on the next. Every condition, on an index field
//! or any other, is also checked against each document read, so a
//! condition the range cannot use is a filter applied while scanning, and
//! results are always exact. Values are compared in the index's collation
//! (see `index.rs`): a value of an index field is parsed as the field's
//! declared kind (`stock.lt=10` is the number 10), a value of any other
//! field as JSON if it parses (`qty.gt=5`, `flag.eq=true`) and as a string
//! otherwise (`status.eq=open`). A range condition only matches values of
//! its own type: `stock.lt=10` lists numbers below 10, not documents whose
//! stock is missing or `null`.
//!
//! A page reads at most [`SCAN_BUDGET`] documents. A query whose filters
//! reject most of what its range holds may end a page early with fewer
//! results (possibly none) and a cursor: the page says so
//! (`scan_budget_reached`), and the next page goes on from there. So no
//! request does unbounded work, whatever it asks.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use super::ViewSnapshot;
use super::index::{
    FieldKind, IndexSpec, after_prefix, encode_value, index_prefix, lookup, string_prefix,
};
use crate::storage::StorageError;

/// Default and largest page.
pub const DEFAULT_LIMIT: usize = 100;
pub const MAX_LIMIT: usize = 1000;
/// Most documents one page reads and checks.
pub const SCAN_BUDGET: usize = 100_000;
/// Most index entries one `count=true` page counts when no document needs reading.
pub const COUNT_BUDGET: usize = 1_000_000;
/// Views up to this many documents may be queried without an index.
pub const SMALL_VIEW: u64 = 10_000;
/// Most values of one `in` condition.
pub const MAX_IN_VALUES: usize = 100;
/// Most index ranges one query reads (the product of its `in` conditions).
const MAX_RANGES: usize = 256;
/// Documents read at once.
const CHUNK: usize = 256;

/// Parameters of `_find` that are not conditions.
pub const RESERVED: &[&str] = &[
    "index",
    "limit",
    "cursor",
    "order",
    "fields",
    "count",
    "scan",
    "min_position",
    "timeout_ms",
];

/// A comparison of a condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Gt,
    Gte,
    Lt,
    Lte,
    Prefix,
    In,
}

impl Op {
    pub const ALL: [(&'static str, Op); 7] = [
        ("eq", Op::Eq),
        ("gt", Op::Gt),
        ("gte", Op::Gte),
        ("lt", Op::Lt),
        ("lte", Op::Lte),
        ("prefix", Op::Prefix),
        ("in", Op::In),
    ];

    fn parse(name: &str) -> Option<Op> {
        Op::ALL.iter().find(|(n, _)| *n == name).map(|(_, op)| *op)
    }
}

/// One condition: the field's value, in the collation, compared with the
/// encoded `values` (one; several for `in`; for `prefix`, the bytes every
/// matching string's encoding starts with).
#[derive(Debug, Clone)]
pub struct Condition {
    pub path: String,
    pub op: Op,
    kind: FieldKind,
    values: Vec<Vec<u8>>,
}

impl Condition {
    /// Whether `doc` meets this condition.
    fn holds(&self, doc: &Value) -> bool {
        let value = lookup(doc, &self.path);
        if self.op == Op::Prefix {
            return value.is_some_and(Value::is_string) && {
                let mut encoded = Vec::new();
                encode_value(self.kind, value, &mut encoded);
                encoded.starts_with(&self.values[0])
            };
        }
        let mut encoded = Vec::new();
        encode_value(self.kind, value, &mut encoded);
        let v = &self.values[0];
        let same_type = encoded.first() == v.first();
        match self.op {
            Op::Eq => encoded == *v,
            Op::In => self.values.contains(&encoded),
            Op::Gt => same_type && encoded > *v,
            Op::Gte => same_type && encoded >= *v,
            Op::Lt => same_type && encoded < *v,
            Op::Lte => same_type && encoded <= *v,
            Op::Prefix => unreachable!("handled above"),
        }
    }
}

/// A parsed `_find` query.
#[derive(Debug, Clone)]
pub struct Query {
    /// The index read; `None` to scan the documents in key order.
    pub index: Option<IndexSpec>,
    pub conditions: Vec<Condition>,
    pub descending: bool,
    pub limit: usize,
    /// Parts of the documents to answer with (dotted paths); `None` for all.
    pub fields: Option<Vec<String>>,
    /// Answer the number of matches instead of the documents.
    pub count: bool,
    /// Scanning a view of any size without an index is asked for.
    pub scan: bool,
}

/// Why a query cannot be answered.
#[derive(Debug, thiserror::Error)]
pub enum FindError {
    /// The query is malformed (400); `code` says how.
    #[error("{message}")]
    Invalid { code: &'static str, message: String },
    /// The cursor's walk is no longer kept (410).
    #[error(
        "the cursor has expired (walks are kept {} s after their last page, {} s at most): start the query again",
        super::WALK_IDLE.as_secs(),
        super::WALK_MAX_AGE.as_secs()
    )]
    Expired,
    #[error(transparent)]
    Storage(#[from] StorageError),
}

fn invalid(code: &'static str, message: impl Into<String>) -> FindError {
    FindError::Invalid {
        code,
        message: message.into(),
    }
}

fn valid_path(path: &str) -> bool {
    !path.is_empty() && !path.split('.').any(str::is_empty)
}

fn flag(name: &str, text: &str) -> Result<bool, FindError> {
    match text {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(invalid(
            "invalid_parameter",
            format!("{name} is true or false, not {text:?}"),
        )),
    }
}

/// `text` as a value of a field of `kind`.
fn parse_value(param: &str, kind: FieldKind, text: &str) -> Result<Value, FindError> {
    let wrong = |what: &str| {
        invalid(
            "invalid_condition",
            format!("{param}: {text:?} is not {what}"),
        )
    };
    match kind {
        FieldKind::Number => text
            .parse::<f64>()
            .ok()
            .filter(|n| n.is_finite())
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number)
            .ok_or_else(|| wrong("a number (the field is declared a number)")),
        FieldKind::String => Ok(Value::String(text.to_string())),
        FieldKind::Boolean => match text {
            "true" => Ok(Value::Bool(true)),
            "false" => Ok(Value::Bool(false)),
            _ => Err(wrong("true or false (the field is declared a boolean)")),
        },
        FieldKind::Timestamp => {
            if let Ok(ms) = text.parse::<u64>() {
                return Ok(Value::from(ms));
            }
            humantime::parse_rfc3339_weak(text)
                .map(|_| Value::String(text.to_string()))
                .map_err(|_| {
                    wrong("an RFC 3339 time or epoch milliseconds (the field is a timestamp)")
                })
        }
        FieldKind::Any => Ok(serde_json::from_str(text).unwrap_or(Value::String(text.into()))),
    }
}

impl Query {
    /// Parse the query string of `_find` against the projection's `indexes`.
    pub fn parse(params: &[(String, String)], indexes: &[IndexSpec]) -> Result<Query, FindError> {
        let one = |name: &str| {
            params
                .iter()
                .rev()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
        };
        let index = match one("index") {
            None => None,
            Some(name) => Some(
                indexes
                    .iter()
                    .find(|i| i.name == name)
                    .cloned()
                    .ok_or_else(|| {
                        let names: Vec<&str> = indexes.iter().map(|i| i.name.as_str()).collect();
                        invalid(
                            "unknown_index",
                            format!(
                                "the projection has no index {name:?} (it has: {})",
                                if names.is_empty() {
                                    "none".to_string()
                                } else {
                                    names.join(", ")
                                }
                            ),
                        )
                    })?,
            ),
        };
        let limit = match one("limit") {
            None => DEFAULT_LIMIT,
            Some(text) => match text.parse::<usize>() {
                Ok(0) | Err(_) => {
                    return Err(invalid(
                        "invalid_limit",
                        format!("limit is a number from 1 to {MAX_LIMIT}, not {text:?}"),
                    ));
                }
                Ok(n) => n.min(MAX_LIMIT),
            },
        };
        let descending = match one("order") {
            None | Some("asc") => false,
            Some("desc") => true,
            Some(other) => {
                return Err(invalid(
                    "invalid_parameter",
                    format!("order is asc or desc, not {other:?}"),
                ));
            }
        };
        let fields = match one("fields") {
            None => None,
            Some(text) => {
                let paths: Vec<String> = text.split(',').map(str::to_string).collect();
                if let Some(bad) = paths.iter().find(|p| !valid_path(p)) {
                    return Err(invalid(
                        "invalid_parameter",
                        format!("fields: {bad:?} is not a field path (a.b.c)"),
                    ));
                }
                Some(paths)
            }
        };
        let count = one("count").map_or(Ok(false), |t| flag("count", t))?;
        let scan = one("scan").map_or(Ok(false), |t| flag("scan", t))?;
        let kind_of = |path: &str| {
            index
                .as_ref()
                .and_then(|i| i.fields.iter().find(|f| f.path == path))
                .map_or(FieldKind::Any, |f| f.kind)
        };
        let mut conditions = Vec::new();
        for (name, text) in params {
            if RESERVED.contains(&name.as_str()) {
                continue;
            }
            let Some((path, op)) = name.rsplit_once('.') else {
                return Err(invalid(
                    "unknown_parameter",
                    format!(
                        "unknown parameter {name:?}: conditions are written FIELD.OP=VALUE (e.g. stock.lt=10), other parameters are {}",
                        RESERVED.join(", ")
                    ),
                ));
            };
            let op = Op::parse(op).ok_or_else(|| {
                invalid(
                    "unknown_operator",
                    format!(
                        "{name}: unknown operator {op:?} (operators: {})",
                        Op::ALL.map(|(n, _)| n).join(", ")
                    ),
                )
            })?;
            if !valid_path(path) {
                return Err(invalid(
                    "invalid_condition",
                    format!("{name}: {path:?} is not a field path (a.b.c)"),
                ));
            }
            let kind = kind_of(path);
            let values: Vec<Vec<u8>> = match op {
                Op::Prefix => {
                    if !matches!(kind, FieldKind::String | FieldKind::Any) {
                        return Err(invalid(
                            "invalid_condition",
                            format!(
                                "{name}: prefix applies to strings, and {path} is declared {kind:?}"
                            ),
                        ));
                    }
                    vec![string_prefix(text)]
                }
                Op::In => {
                    let items: Vec<Value> = if text.starts_with('[') {
                        match serde_json::from_str::<Vec<Value>>(text) {
                            Ok(items) => items,
                            Err(e) => {
                                return Err(invalid(
                                    "invalid_condition",
                                    format!("{name}: not a JSON array: {e}"),
                                ));
                            }
                        }
                    } else {
                        text.split(',').map(|s| Value::String(s.into())).collect()
                    };
                    if items.is_empty() || items.len() > MAX_IN_VALUES {
                        return Err(invalid(
                            "invalid_condition",
                            format!("{name}: in takes 1 to {MAX_IN_VALUES} values"),
                        ));
                    }
                    let mut set = BTreeSet::new();
                    for item in items {
                        let value = match item {
                            Value::String(s) => parse_value(name, kind, &s)?,
                            other => other,
                        };
                        let mut encoded = Vec::new();
                        encode_value(kind, Some(&value), &mut encoded);
                        set.insert(encoded);
                    }
                    set.into_iter().collect()
                }
                _ => {
                    let value = parse_value(name, kind, text)?;
                    let mut encoded = Vec::new();
                    encode_value(kind, Some(&value), &mut encoded);
                    vec![encoded]
                }
            };
            conditions.push(Condition {
                path: path.to_string(),
                op,
                kind,
                values,
            });
        }
        Ok(Query {
            index,
            conditions,
            descending,
            limit,
            fields,
            count,
            scan,
        })
    }

    /// Whether every document must be read and checked (some condition is
    /// not answered by the index range alone).
    fn needs_documents(&self, covered: usize) -> bool {
        covered < self.conditions.len()
    }
}

/// A key range `[start, end)` of an index.
type Range = (Vec<u8>, Vec<u8>);

/// The index ranges a query reads, in index order, and how many of its
/// conditions they answer exactly.
fn plan(family: &str, index: &IndexSpec, conditions: &[Condition]) -> (Vec<Range>, usize) {
    let base = index_prefix(family, &index.name);
    let mut prefixes: Vec<Vec<u8>> = vec![Vec::new()];
    let mut covered = 0;
    let mut range_field = None;
    for field in &index.fields {
        let on_field = |op: Op| {
            conditions
                .iter()
                .filter(move |c| c.path == field.path && c.op == op)
        };
        let values: Option<Vec<Vec<u8>>> = on_field(Op::Eq)
            .next()
            .map(|c| c.values.clone())
            .or_else(|| on_field(Op::In).next().map(|c| c.values.clone()));
        match values {
            Some(values) if prefixes.len() * values.len() <= MAX_RANGES => {
                prefixes = prefixes
                    .iter()
                    .flat_map(|p| {
                        values.iter().map(move |v| {
                            let mut next = p.clone();
                            next.extend_from_slice(v);
                            next
                        })
                    })
                    .collect();
                covered += 1;
            }
            _ => {
                range_field = Some(field);
                break;
            }
        }
    }
    let (mut lower, mut upper): (Option<Vec<u8>>, Option<Vec<u8>>) = (None, None);
    if let Some(field) = range_field {
        let mut tighten_lower = |bound: Vec<u8>| {
            if lower.as_ref().is_none_or(|l| bound > *l) {
                lower = Some(bound);
            }
        };
        for c in conditions.iter().filter(|c| c.path == field.path) {
            let v = &c.values[0];
            let used = match c.op {
                Op::Gt => {
                    tighten_lower(after_prefix(v));
                    true
                }
                Op::Gte | Op::Prefix => {
                    tighten_lower(v.clone());
                    true
                }
                _ => false,
            };
            covered += usize::from(used);
        }
        for c in conditions.iter().filter(|c| c.path == field.path) {
            let v = &c.values[0];
            let bound = match c.op {
                Op::Lt => v.clone(),
                Op::Lte | Op::Prefix => after_prefix(v),
                _ => continue,
            };
            if c.op != Op::Prefix {
                covered += 1;
            }
            if upper.as_ref().is_none_or(|u| bound < *u) {
                upper = Some(bound);
            }
        }
        // A range open on one side stays within the other side's type.
        match (&lower, &upper) {
            (Some(l), None) => upper = Some(vec![l[0] + 1]),
            (None, Some(u)) => lower = Some(vec![u[0]]),
            _ => {}
        }
    }
    let lower = lower.unwrap_or_default();
    let upper = upper.unwrap_or_else(|| vec![0xFF]);
    let ranges = prefixes
        .into_iter()
        .filter(|_| lower < upper)
        .map(|p| {
            let mut start = base.clone();
            start.extend_from_slice(&p);
            let mut end = start.clone();
            start.extend_from_slice(&lower);
            end.extend_from_slice(&upper);
            (start, end)
        })
        .collect();
    (ranges, covered)
}

/// A page of answers.
#[derive(Debug, Default)]
pub struct Page {
    /// Document keys and JSON texts (projected if asked), in order.
    pub items: Vec<(String, String)>,
    /// The number of matches, for `count=true`.
    pub count: usize,
    /// Where the next page starts, if there may be one.
    pub next: Option<Vec<u8>>,
    /// The page ended because it read its budget, not because it was full.
    pub budget_reached: bool,
}

/// The parts of `doc` at `fields`, nested as in the document.
fn project(doc: &Value, fields: &[String]) -> Value {
    let mut out = Map::new();
    for path in fields {
        let Some(value) = lookup(doc, path) else {
            continue;
        };
        let mut steps = path.split('.').peekable();
        let mut at = &mut out;
        while let Some(step) = steps.next() {
            if steps.peek().is_none() {
                at.insert(step.to_string(), value.clone());
                break;
            }
            let next = at
                .entry(step.to_string())
                .or_insert_with(|| Value::Object(Map::new()));
            if !next.is_object() {
                *next = Value::Object(Map::new());
            }
            at = next.as_object_mut().expect("made an object");
        }
    }
    Value::Object(out)
}

/// Collects matches in order and decides when a page is done.
struct Collector<'q> {
    query: &'q Query,
    check: bool,
    page: Page,
    examined: usize,
    budget: usize,
    done: bool,
    /// Where the last match returned is (the next page starts after it).
    last_match: Option<Vec<u8>>,
}

impl Collector<'_> {
    fn finish(self) -> Page {
        self.page
    }

    /// One candidate (`position`: its entry key or document key); false once the page is done.
    fn offer(&mut self, position: &[u8], key: &str, text: Option<&str>) -> bool {
        self.examined += 1;
        if let Some(text) = text {
            let parsed = if self.check || self.query.fields.is_some() {
                serde_json::from_str::<Value>(text).ok()
            } else {
                None
            };
            let matches = !self.check
                || parsed
                    .as_ref()
                    .is_some_and(|doc| self.query.conditions.iter().all(|c| c.holds(doc)));
            if matches {
                if self.query.count {
                    self.page.count += 1;
                } else if self.page.items.len() == self.query.limit {
                    // One more match than the page holds: there is a next page.
                    self.page.next = self.last_match.clone();
                    self.done = true;
                    return false;
                } else {
                    let text = match (&self.query.fields, &parsed) {
                        (Some(fields), Some(doc)) => project(doc, fields).to_string(),
                        _ => text.to_string(),
                    };
                    self.page.items.push((key.to_string(), text));
                    self.last_match = Some(position.to_vec());
                }
            }
        }
        if self.examined >= self.budget {
            self.page.budget_reached = true;
            self.page.next = Some(position.to_vec());
            self.done = true;
            return false;
        }
        true
    }
}

/// Answer one page of `query` from `snapshot`, after `after` (the `next`
/// of the previous page).
pub fn run(
    snapshot: &ViewSnapshot,
    query: &Query,
    after: Option<&[u8]>,
) -> Result<Page, FindError> {
    let family = snapshot.keyspace().family().to_string();
    match &query.index {
        Some(index) => run_index(snapshot, &family, index, query, after),
        None => run_scan(snapshot, query, after),
    }
}

fn run_index(
    snapshot: &ViewSnapshot,
    family: &str,
    index: &IndexSpec,
    query: &Query,
    after: Option<&[u8]>,
) -> Result<Page, FindError> {
    let prefix = index_prefix(family, &index.name);
    if after.is_some_and(|a| !a.starts_with(&prefix)) {
        return Err(invalid(
            "invalid_cursor",
            "the cursor belongs to another query",
        ));
    }
    let (mut ranges, covered) = plan(family, index, &query.conditions);
    let check = query.needs_documents(covered);
    let keys_only = query.count && !check;
    let mut collector = Collector {
        query,
        check,
        page: Page::default(),
        examined: 0,
        budget: if keys_only { COUNT_BUDGET } else { SCAN_BUDGET },
        done: false,
        last_match: None,
    };
    if query.descending {
        ranges.reverse();
    }
    for (mut start, mut end) in ranges {
        if let Some(after) = after {
            if query.descending {
                if start.as_slice() >= after {
                    continue;
                }
                end = end.min(after.to_vec());
            } else {
                if end.as_slice() <= after {
                    continue;
                }
                let mut next = after.to_vec();
                next.push(0);
                start = start.max(next);
            }
        }
        let mut chunk: Vec<(Vec<u8>, String)> = Vec::new();
        let mut failed = None;
        let mut flush = |chunk: &mut Vec<(Vec<u8>, String)>, collector: &mut Collector| -> bool {
            if keys_only {
                for (entry, key) in chunk.drain(..) {
                    if !collector.offer(&entry, &key, Some("")) {
                        return false;
                    }
                }
                return true;
            }
            let keys: Vec<String> = chunk.iter().map(|(_, k)| k.clone()).collect();
            let docs = match snapshot.get_many(&keys) {
                Ok(docs) => docs,
                Err(e) => {
                    failed = Some(e);
                    return false;
                }
            };
            for ((entry, key), doc) in chunk.drain(..).zip(docs) {
                if !collector.offer(&entry, &key, doc.as_deref()) {
                    return false;
                }
            }
            true
        };
        snapshot.index_range(&start, &end, query.descending, |entry, key| {
            chunk.push((entry.to_vec(), key.to_string()));
            chunk.len() < CHUNK || flush(&mut chunk, &mut collector)
        })?;
        if !collector.done {
            flush(&mut chunk, &mut collector);
        }
        if let Some(e) = failed {
            return Err(e.into());
        }
        if collector.done {
            break;
        }
    }
    Ok(collector.finish())
}

fn run_scan(
    snapshot: &ViewSnapshot,
    query: &Query,
    after: Option<&[u8]>,
) -> Result<Page, FindError> {
    let after = match after {
        None => None,
        Some(bytes) => Some(
            std::str::from_utf8(bytes)
                .map_err(|_| invalid("invalid_cursor", "the cursor belongs to another query"))?
                .to_string(),
        ),
    };
    let mut collector = Collector {
        query,
        check: !query.conditions.is_empty(),
        page: Page::default(),
        examined: 0,
        budget: SCAN_BUDGET,
        done: false,
        last_match: None,
    };
    let (start, end) = match (&after, query.descending) {
        (Some(a), false) => (format!("{a}\0"), None),
        (Some(a), true) => (String::new(), Some(a.clone())),
        (None, _) => (String::new(), None),
    };
    snapshot.scan_with(&start, end.as_deref(), query.descending, |key, value| {
        collector.offer(key.as_bytes(), key, Some(value))
    })?;
    Ok(collector.finish())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::log::Position;
    use crate::views::index::IndexField;
    use crate::views::{ChangeLog, Keyspace, Transaction};

    fn by_stock() -> IndexSpec {
        IndexSpec {
            name: "by-stock".into(),
            fields: vec![IndexField {
                path: "stock".into(),
                kind: FieldKind::Number,
            }],
            unique: false,
            prefix: Some("product-".into()),
        }
    }

    fn by_color_size() -> IndexSpec {
        IndexSpec {
            name: "by-color-size".into(),
            fields: vec![
                IndexField {
                    path: "color".into(),
                    kind: FieldKind::String,
                },
                IndexField {
                    path: "size".into(),
                    kind: FieldKind::Number,
                },
            ],
            unique: false,
            prefix: None,
        }
    }

    fn write(keyspace: &Keyspace, at: u64, docs: &[(&str, Option<Value>)]) {
        let mut txn = Transaction::new();
        for (key, doc) in docs {
            match doc {
                Some(doc) => txn.put(key.to_string(), doc.to_string()),
                None => txn.delete(key.to_string()),
            }
        }
        let writes = keyspace
            .plan_indexes(&[by_stock(), by_color_size()], &txn)
            .unwrap()
            .unwrap();
        keyspace
            .commit_indexed(&txn, &writes, &[], Position(at), ChangeLog::Off)
            .unwrap();
    }

    fn store() -> (tempfile::TempDir, Keyspace) {
        let dir = tempfile::tempdir().unwrap();
        let (_, views) = crate::server::open_stores(dir.path()).unwrap();
        let keyspace = views.keyspace("p", "g").unwrap();
        let docs: Vec<(String, Value)> = (0..40)
            .map(|n| {
                let color = ["red", "blue", "green"][n % 3];
                (
                    format!("product-{n:02}"),
                    json!({"sku": n, "stock": (n * 7) % 20, "color": color, "size": n % 5}),
                )
            })
            .collect();
        let docs: Vec<(&str, Option<Value>)> = docs
            .iter()
            .map(|(k, v)| (k.as_str(), Some(v.clone())))
            .collect();
        write(&keyspace, 1, &docs);
        write(&keyspace, 2, &[("note", Some(json!({"stock": 1})))]);
        (dir, keyspace)
    }

    fn query(text: &str) -> Query {
        let params: Vec<(String, String)> = text
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap();
                (k.to_string(), v.to_string())
            })
            .collect();
        Query::parse(&params, &[by_stock(), by_color_size()]).unwrap()
    }

    /// Every page of `q` from one snapshot, as (key, doc) pairs.
    fn all_pages(keyspace: &Keyspace, q: &Query) -> Vec<(String, Value)> {
        let snapshot = keyspace.snapshot();
        let mut out = Vec::new();
        let mut after: Option<Vec<u8>> = None;
        loop {
            let page = run(&snapshot, q, after.as_deref()).unwrap();
            assert!(page.items.len() <= q.limit);
            out.extend(
                page.items
                    .into_iter()
                    .map(|(k, v)| (k, serde_json::from_str(&v).unwrap())),
            );
            match page.next {
                Some(next) => after = Some(next),
                None => return out,
            }
        }
    }

    /// What a query should answer, worked out from the documents directly.
    fn expected(keyspace: &Keyspace, keep: impl Fn(&Value) -> bool) -> Vec<(String, Value)> {
        keyspace
            .scan("product-", Some("product."), 1000)
            .unwrap()
            .into_iter()
            .map(|(k, v)| (k, serde_json::from_str::<Value>(&v).unwrap()))
            .filter(|(_, v)| keep(v))
            .collect()
    }

    fn stock_order(mut docs: Vec<(String, Value)>, descending: bool) -> Vec<(String, Value)> {
        docs.sort_by(|(ka, a), (kb, b)| {
            let order = a["stock"]
                .as_u64()
                .cmp(&b["stock"].as_u64())
                .then(ka.cmp(kb));
            if descending { order.reverse() } else { order }
        });
        docs
    }

    #[test]
    fn a_range_pages_in_index_order_both_ways_and_a_cursor_resumes_exactly() {
        let (_dir, keyspace) = store();
        let low = |v: &Value| v["stock"].as_u64().unwrap() < 10;
        for limit in [1, 3, 7, 100] {
            let asc = all_pages(
                &keyspace,
                &query(&format!("index=by-stock&stock.lt=10&limit={limit}")),
            );
            assert_eq!(
                asc,
                stock_order(expected(&keyspace, low), false),
                "limit {limit}"
            );
            let desc = all_pages(
                &keyspace,
                &query(&format!(
                    "index=by-stock&stock.lt=10&order=desc&limit={limit}"
                )),
            );
            assert_eq!(desc, stock_order(expected(&keyspace, low), true));
        }
        let between = all_pages(&keyspace, &query("index=by-stock&stock.gt=3&stock.lte=5"));
        assert_eq!(
            between,
            stock_order(
                expected(&keyspace, |v| (4..=5)
                    .contains(&v["stock"].as_u64().unwrap())),
                false
            )
        );
        let exact = all_pages(&keyspace, &query("index=by-stock&stock.eq=7"));
        assert!(exact.iter().all(|(_, v)| v["stock"] == 7) && !exact.is_empty());
        // The note is outside the index's prefix.
        assert!(!exact.iter().any(|(k, _)| k == "note"));
    }

    #[test]
    fn equality_on_leading_fields_in_lists_prefixes_and_filters_combine() {
        let (_dir, keyspace) = store();
        let red_small = all_pages(
            &keyspace,
            &query("index=by-color-size&color.eq=red&size.lt=2"),
        );
        assert_eq!(
            red_small.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>(),
            {
                let mut e = expected(&keyspace, |v| {
                    v["color"] == "red" && v["size"].as_u64() < Some(2)
                });
                e.sort_by_key(|(k, v)| (v["size"].as_u64(), k.clone()));
                e.into_iter().map(|(k, _)| k).collect::<Vec<_>>()
            }
        );
        let two_colors = all_pages(
            &keyspace,
            &query("index=by-color-size&color.in=red,green&size.eq=1"),
        );
        assert!(!two_colors.is_empty());
        assert!(
            two_colors
                .iter()
                .all(|(_, v)| v["color"] != "blue" && v["size"] == 1)
        );
        // blue sorts first: green before red in index order.
        let colors: Vec<&str> = two_colors
            .iter()
            .map(|(_, v)| v["color"].as_str().unwrap())
            .collect();
        assert!(colors.windows(2).all(|w| w[0] <= w[1]), "{colors:?}");
        let prefixed = all_pages(&keyspace, &query("index=by-color-size&color.prefix=gr"));
        assert_eq!(
            prefixed.len(),
            expected(&keyspace, |v| v["color"] == "green").len()
        );
        // A filter on a field the index does not have.
        let filtered = all_pages(
            &keyspace,
            &query("index=by-stock&stock.lt=10&sku.gte=20&limit=2"),
        );
        assert_eq!(
            filtered,
            stock_order(
                expected(&keyspace, |v| v["stock"].as_u64() < Some(10)
                    && v["sku"].as_u64() >= Some(20)),
                false
            )
        );
    }

    #[test]
    fn counts_answer_with_or_without_reading_documents_and_fields_project() {
        let (_dir, keyspace) = store();
        let snapshot = keyspace.snapshot();
        let count = |q: &str| run(&snapshot, &query(q), None).unwrap().count;
        assert_eq!(
            count("index=by-stock&stock.lt=10&count=true"),
            expected(&keyspace, |v| v["stock"].as_u64() < Some(10)).len()
        );
        assert_eq!(
            count("index=by-stock&stock.lt=10&color.eq=red&count=true"),
            expected(&keyspace, |v| v["stock"].as_u64() < Some(10)
                && v["color"] == "red")
            .len()
        );
        let page = run(
            &snapshot,
            &query("index=by-stock&stock.eq=0&fields=sku,stock"),
            None,
        )
        .unwrap();
        assert_eq!(page.items[0].1, json!({"sku": 0, "stock": 0}).to_string());
        // Without an index: a scan in key order, filters applied.
        let scanned = all_pages(&keyspace, &query("stock.eq=1&limit=2"));
        let mut want: Vec<String> = expected(&keyspace, |v| v["stock"] == 1)
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        want.push("note".into());
        want.sort();
        assert_eq!(
            scanned.into_iter().map(|(k, _)| k).collect::<Vec<_>>(),
            want
        );
    }

    #[test]
    fn a_snapshot_keeps_answering_as_of_its_position_while_the_view_changes() {
        let (_dir, keyspace) = store();
        let q = query("index=by-stock&stock.lt=10&limit=3");
        let snapshot = keyspace.snapshot();
        let before = stock_order(
            expected(&keyspace, |v| v["stock"].as_u64() < Some(10)),
            false,
        );
        let first = run(&snapshot, &q, None).unwrap();
        // Move a product not yet listed to the front, and delete another.
        let moved = &before[5].0;
        let gone = &before[6].0;
        write(
            &keyspace,
            3,
            &[(moved, Some(json!({"sku": 99, "stock": 0}))), (gone, None)],
        );
        assert_eq!(snapshot.position().unwrap(), Position(2));
        let mut all = first.items.clone();
        let mut after = first.next;
        while let Some(a) = after {
            let page = run(&snapshot, &q, Some(&a)).unwrap();
            all.extend(page.items);
            after = page.next;
        }
        let keys: Vec<&String> = all.iter().map(|(k, _)| k).collect();
        assert_eq!(keys, before.iter().map(|(k, _)| k).collect::<Vec<_>>());
        // The view now: the deleted product's entry is gone, the moved one
        // is among those with no stock, which come first.
        let now = all_pages(&keyspace, &q);
        assert!(!now.iter().any(|(k, _)| k == gone));
        let empty: Vec<&String> = now
            .iter()
            .take_while(|(_, v)| v["stock"] == 0)
            .map(|(k, _)| k)
            .collect();
        assert!(empty.contains(&moved), "{empty:?}");
    }

    #[test]
    fn malformed_queries_name_what_is_wrong() {
        let indexes = [by_stock()];
        let error = |text: &str| {
            let params: Vec<(String, String)> = text
                .split('&')
                .map(|p| {
                    let (k, v) = p.split_once('=').unwrap();
                    (k.to_string(), v.to_string())
                })
                .collect();
            match Query::parse(&params, &indexes).unwrap_err() {
                FindError::Invalid { code, message } => (code, message),
                other => panic!("{other}"),
            }
        };
        let (code, message) = error("index=by-name");
        assert_eq!(code, "unknown_index");
        assert!(message.contains("by-stock"), "{message}");
        assert_eq!(error("index=by-stock&stock.below=3").0, "unknown_operator");
        assert_eq!(error("index=by-stock&stock=3").0, "unknown_parameter");
        let (code, message) = error("index=by-stock&stock.lt=ten");
        assert_eq!(code, "invalid_condition");
        assert!(message.contains("number"), "{message}");
        assert_eq!(
            error("index=by-stock&stock.prefix=1").0,
            "invalid_condition"
        );
        assert_eq!(error("index=by-stock&limit=0").0, "invalid_limit");
        assert_eq!(error("index=by-stock&order=up").0, "invalid_parameter");
        assert_eq!(error("index=by-stock&a..b.eq=1").0, "invalid_condition");
    }
}
