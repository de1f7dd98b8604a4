//! Secondary indexes a projection declares, maintained by the host.
//!
//! An index names one or more fields of a view's documents (JSON paths such
//! as `stock` or `customer.name`). Its entries live in the `indexes` column
//! family, keyed by the keyspace, the index name, the fields' values in an
//! order-preserving encoding and (unless the index is unique) the document's
//! key, so that a range of the index is a range of keys. They are written
//! and removed in the same write batch as the documents and the checkpoint:
//! an index is exactly as current as the view, replays included.
//!
//! Values collate like CouchDB's: missing < `null` < `false` < `true` <
//! numbers < strings < arrays and objects. Numbers compare as IEEE doubles
//! (negative and fractional ones in their right place); strings compare by
//! their UTF-8 bytes, any bytes included; a `timestamp` field takes RFC 3339
//! strings or epoch milliseconds and orders them by time.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What a declared field holds, where ordering needs to know.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldKind {
    Number,
    String,
    Boolean,
    /// RFC 3339 text or epoch milliseconds, ordered by time.
    Timestamp,
    /// Whatever JSON the field holds, in the collation order.
    Any,
}

/// One field of an index: a dotted path into the document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexField {
    pub path: String,
    pub kind: FieldKind,
}

/// A secondary index, as a projection declares it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexSpec {
    pub name: String,
    pub fields: Vec<IndexField>,
    /// No two documents may have the same values.
    #[serde(default)]
    pub unique: bool,
    /// Only documents whose key starts with this are indexed.
    #[serde(default)]
    pub prefix: Option<String>,
}

impl IndexSpec {
    /// Why this declaration cannot be used; `None` if it can.
    pub fn problem(&self) -> Option<String> {
        if self.name.is_empty()
            || !self
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Some(format!(
                "index name {:?} may only contain letters, digits, '-' and '_'",
                self.name
            ));
        }
        if self.fields.is_empty() {
            return Some(format!("index {:?} names no field", self.name));
        }
        self.fields
            .iter()
            .find(|f| f.path.is_empty() || f.path.split('.').any(str::is_empty))
            .map(|f| format!("index {:?}: {:?} is not a field path", self.name, f.path))
    }

    fn covers(&self, key: &str) -> bool {
        self.prefix.as_deref().is_none_or(|p| key.starts_with(p))
    }

    /// The encoded values of `doc` for this index.
    pub fn encode(&self, doc: &Value) -> Vec<u8> {
        let mut out = Vec::new();
        for field in &self.fields {
            encode_value(field.kind, lookup(doc, &field.path), &mut out);
        }
        out
    }
}

/// The value at a dotted path, `None` if any step is missing.
pub fn lookup<'v>(doc: &'v Value, path: &str) -> Option<&'v Value> {
    path.split('.').try_fold(doc, |v, step| v.get(step))
}

const MISSING: u8 = 0x01;
const NULL: u8 = 0x02;
const FALSE: u8 = 0x03;
const TRUE: u8 = 0x04;
const NUMBER: u8 = 0x05;
const STRING: u8 = 0x06;
const COMPOUND: u8 = 0x07;

/// The order-preserving bytes of an IEEE double.
fn number_bytes(n: f64) -> [u8; 8] {
    let n = if n == 0.0 { 0.0 } else { n }; // -0 and 0 are one value
    let bits = n.to_bits();
    let ordered = if bits >> 63 == 1 {
        !bits
    } else {
        bits | (1 << 63)
    };
    ordered.to_be_bytes()
}

/// Bytes with a terminator that sorts before any content byte, and 0x00
/// escaped, so that a shorter string sorts first and encodings of several
/// fields concatenate without ambiguity.
fn escaped(bytes: &[u8], out: &mut Vec<u8>) {
    for &b in bytes {
        if b == 0 {
            out.extend_from_slice(&[0x00, 0xFF]);
        } else {
            out.push(b);
        }
    }
    out.extend_from_slice(&[0x00, 0x01]);
}

fn timestamp_ms(text: &str) -> Option<f64> {
    let t = humantime::parse_rfc3339_weak(text).ok()?;
    let ms = t.duration_since(std::time::UNIX_EPOCH).ok()?.as_millis();
    Some(ms as f64)
}

/// Append the sortable encoding of `value` (a field of `kind`) to `out`.
pub fn encode_value(kind: FieldKind, value: Option<&Value>, out: &mut Vec<u8>) {
    match value {
        None => out.push(MISSING),
        Some(Value::Null) => out.push(NULL),
        Some(Value::Bool(false)) => out.push(FALSE),
        Some(Value::Bool(true)) => out.push(TRUE),
        Some(Value::Number(n)) => {
            out.push(NUMBER);
            out.extend_from_slice(&number_bytes(n.as_f64().unwrap_or(f64::MAX)));
        }
        Some(Value::String(s)) => match (kind, timestamp_ms(s)) {
            (FieldKind::Timestamp, Some(ms)) => {
                out.push(NUMBER);
                out.extend_from_slice(&number_bytes(ms));
            }
            _ => {
                out.push(STRING);
                escaped(s.as_bytes(), out);
            }
        },
        Some(other) => {
            out.push(COMPOUND);
            escaped(other.to_string().as_bytes(), out);
        }
    }
}

/// The bytes every encoding of a string starting with `prefix` starts with.
pub fn string_prefix(prefix: &str) -> Vec<u8> {
    let mut out = vec![STRING];
    escaped(prefix.as_bytes(), &mut out);
    out.truncate(out.len() - 2); // no terminator: longer strings follow
    out
}

/// The smallest encoding that sorts after every encoding starting with
/// `prefix` (for exclusive upper bounds).
pub fn after_prefix(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    end.push(0xFF);
    end.extend_from_slice(&[0xFF; 8]);
    end
}

/// The entry key of `values` (encoded) for `doc_key` in `index` of `family`.
pub fn entry_key(family: &str, index: &IndexSpec, values: &[u8], doc_key: &str) -> Vec<u8> {
    let mut key = index_prefix(family, &index.name);
    key.extend_from_slice(values);
    if !index.unique {
        key.extend_from_slice(doc_key.as_bytes());
    }
    key
}

/// Where the entries of `index` of `family` start.
pub fn index_prefix(family: &str, index: &str) -> Vec<u8> {
    let mut key = family.as_bytes().to_vec();
    key.push(0);
    key.extend_from_slice(index.as_bytes());
    key.push(0);
    key
}

/// The index writes a batch makes, worked out before it commits.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct IndexWrites {
    /// Entry key → document key (`None`: remove the entry).
    pub entries: BTreeMap<Vec<u8>, Option<String>>,
}

/// A batch would give two documents the same values of a unique index.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unique index {index:?}: document {key:?} has the same values as document {other:?}")]
pub struct UniqueViolation {
    pub index: String,
    pub key: String,
    pub other: String,
}

/// Work out the index writes of a batch: for each written document, the
/// entries of its old version (`old`, as committed) go and those of its new
/// version come. `unique_owner` finds who holds a unique entry now.
pub fn plan(
    family: &str,
    indexes: &[IndexSpec],
    writes: &[(&String, &Option<String>)],
    old: &HashMap<String, String>,
    unique_owner: impl Fn(&[u8]) -> Option<String>,
) -> Result<IndexWrites, UniqueViolation> {
    let mut out = IndexWrites::default();
    let parse = |text: &str| serde_json::from_str::<Value>(text).unwrap_or(Value::Null);
    // Removals first, so that a value handed from one document to another
    // in the same batch is free when it is taken.
    let mut taken: Vec<(Vec<u8>, String, &IndexSpec)> = Vec::new();
    for (key, new) in writes {
        let old_doc = old.get(key.as_str()).map(|t| parse(t));
        let new_doc = new.as_deref().map(parse);
        for index in indexes.iter().filter(|i| i.covers(key)) {
            let before = old_doc
                .as_ref()
                .map(|d| entry_key(family, index, &index.encode(d), key));
            let after = new_doc
                .as_ref()
                .map(|d| entry_key(family, index, &index.encode(d), key));
            if before == after {
                continue;
            }
            if let Some(before) = before {
                out.entries.entry(before).or_insert(None);
            }
            if let Some(after) = after {
                taken.push((after, (*key).clone(), index));
            }
        }
    }
    for (entry, key, index) in taken {
        if index.unique {
            let holder = match out.entries.get(&entry) {
                Some(Some(holder)) => Some(holder.clone()),
                Some(None) => None,
                None => unique_owner(&entry),
            };
            if let Some(other) = holder.filter(|o| *o != key) {
                return Err(UniqueViolation {
                    index: index.name.clone(),
                    key,
                    other,
                });
            }
        }
        out.entries.insert(entry, Some(key));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn enc(kind: FieldKind, v: Value) -> Vec<u8> {
        let mut out = Vec::new();
        encode_value(kind, Some(&v), &mut out);
        out
    }

    #[test]
    fn numbers_order_across_signs_fractions_and_magnitudes() {
        let values = [
            -1e300, -12.5, -1.0, -0.25, 0.0, 1e-9, 0.5, 1.0, 2.0, 10.0, 1e300,
        ];
        let encoded: Vec<Vec<u8>> = values
            .iter()
            .map(|n| enc(FieldKind::Number, json!(n)))
            .collect();
        let mut sorted = encoded.clone();
        sorted.sort();
        assert_eq!(encoded, sorted);
        assert_eq!(
            enc(FieldKind::Number, json!(-0.0)),
            enc(FieldKind::Number, json!(0))
        );
        assert_eq!(
            enc(FieldKind::Number, json!(3)),
            enc(FieldKind::Number, json!(3.0))
        );
    }

    /// A small deterministic generator, for property checks without a crate.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    #[test]
    fn any_finite_numbers_and_any_strings_sort_by_their_encoding_as_by_value() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let mut numbers: Vec<f64> = (0..5000)
            .map(|_| f64::from_bits(rng.next()))
            .filter(|n| n.is_finite())
            .collect();
        numbers.extend([0.0, -0.0, 1.0, -1.0, f64::MIN_POSITIVE, -f64::MIN_POSITIVE]);
        let mut by_encoding = numbers.clone();
        by_encoding.sort_by_key(|n| enc(FieldKind::Number, json!(n)));
        let mut by_value = numbers;
        by_value.sort_by(|a, b| a.partial_cmp(b).unwrap());
        assert!(
            by_encoding
                .iter()
                .zip(&by_value)
                .all(|(a, b)| a == b || (*a == 0.0 && *b == 0.0))
        );

        let strings: Vec<String> = (0..3000)
            .map(|_| {
                let len = (rng.next() % 6) as usize;
                (0..len)
                    .map(|_| char::from_u32((rng.next() % 0x300) as u32).unwrap_or('x'))
                    .collect()
            })
            .collect();
        let mut by_encoding = strings.clone();
        by_encoding.sort_by_key(|s| enc(FieldKind::String, json!(s)));
        let mut by_value = strings;
        by_value.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        assert_eq!(by_encoding, by_value);
    }

    #[test]
    fn types_collate_missing_null_booleans_numbers_strings_compounds() {
        let mut missing = Vec::new();
        encode_value(FieldKind::Any, None, &mut missing);
        let order = [
            missing,
            enc(FieldKind::Any, json!(null)),
            enc(FieldKind::Any, json!(false)),
            enc(FieldKind::Any, json!(true)),
            enc(FieldKind::Any, json!(-5)),
            enc(FieldKind::Any, json!(1e20)),
            enc(FieldKind::Any, json!("")),
            enc(FieldKind::Any, json!("a")),
            enc(FieldKind::Any, json!([1])),
        ];
        assert!(order.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn strings_order_by_bytes_with_any_bytes_and_prefixes_first() {
        let words = [
            "",
            "\u{0}",
            "\u{0}\u{0}",
            "a",
            "a\u{0}",
            "ab",
            "b",
            "é",
            "\u{10FFFF}",
        ];
        let encoded: Vec<Vec<u8>> = words
            .iter()
            .map(|w| enc(FieldKind::String, json!(w)))
            .collect();
        assert!(encoded.windows(2).all(|w| w[0] < w[1]), "{encoded:?}");
    }

    #[test]
    fn composite_values_order_field_by_field() {
        let index = IndexSpec {
            name: "by".into(),
            fields: vec![
                IndexField {
                    path: "a".into(),
                    kind: FieldKind::String,
                },
                IndexField {
                    path: "n".into(),
                    kind: FieldKind::Number,
                },
            ],
            unique: false,
            prefix: None,
        };
        let docs = [
            json!({"a": "x", "n": -1}),
            json!({"a": "x", "n": 2}),
            json!({"a": "x\u{0}", "n": -5}),
            json!({"a": "xy", "n": 0}),
        ];
        let encoded: Vec<Vec<u8>> = docs.iter().map(|d| index.encode(d)).collect();
        assert!(encoded.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn timestamps_order_by_time_whatever_their_form() {
        let a = enc(FieldKind::Timestamp, json!("2024-01-01T00:00:00Z"));
        let b = enc(FieldKind::Timestamp, json!(1_704_067_200_001u64));
        let c = enc(FieldKind::Timestamp, json!("2024-01-01T01:00:00+00:00"));
        assert!(a < b && b < c);
    }

    #[test]
    fn nested_paths_are_followed() {
        let doc = json!({"customer": {"name": "ann"}});
        assert_eq!(lookup(&doc, "customer.name"), Some(&json!("ann")));
        assert_eq!(lookup(&doc, "customer.age"), None);
    }

    fn by_stock(unique: bool) -> IndexSpec {
        IndexSpec {
            name: "by-stock".into(),
            fields: vec![IndexField {
                path: "stock".into(),
                kind: FieldKind::Number,
            }],
            unique,
            prefix: Some("product-".into()),
        }
    }

    #[test]
    fn a_changed_field_moves_the_entry_and_a_deleted_document_removes_it() {
        let index = by_stock(false);
        let (a, b, other) = (
            "product-a".to_string(),
            "product-b".to_string(),
            "note".to_string(),
        );
        let old = HashMap::from([
            (a.clone(), json!({"stock": 5}).to_string()),
            (b.clone(), json!({"stock": 7}).to_string()),
        ]);
        let new_a = Some(json!({"stock": 6}).to_string());
        let none = None;
        let note = Some(json!({"stock": 1}).to_string());
        let writes = vec![(&a, &new_a), (&b, &none), (&other, &note)];
        let planned = plan("f", std::slice::from_ref(&index), &writes, &old, |_| None).unwrap();
        let key = |stock: f64, doc: &str| {
            entry_key("f", &index, &index.encode(&json!({"stock": stock})), doc)
        };
        assert_eq!(
            planned.entries,
            BTreeMap::from([
                (key(5.0, &a), None),
                (key(6.0, &a), Some(a.clone())),
                (key(7.0, &b), None),
            ]),
            "the note is outside the prefix"
        );
    }

    #[test]
    fn a_unique_value_can_move_between_documents_in_one_batch_but_not_be_shared() {
        let index = by_stock(true);
        let (a, b) = ("product-a".to_string(), "product-b".to_string());
        let old = HashMap::from([(a.clone(), json!({"stock": 5}).to_string())]);
        let owner = |entry: &[u8]| {
            (entry == entry_key("f", &index, &index.encode(&json!({"stock": 5})), ""))
                .then(|| a.clone())
        };
        // a leaves 5, b takes it: fine.
        let a_new = Some(json!({"stock": 6}).to_string());
        let b_new = Some(json!({"stock": 5}).to_string());
        assert!(
            plan(
                "f",
                std::slice::from_ref(&index),
                &[(&a, &a_new), (&b, &b_new)],
                &old,
                owner
            )
            .is_ok()
        );
        // b takes 5 while a keeps it: refused, naming both.
        let violation = plan(
            "f",
            std::slice::from_ref(&index),
            &[(&b, &b_new)],
            &old,
            owner,
        )
        .unwrap_err();
        assert_eq!(
            (violation.key.as_str(), violation.other.as_str()),
            ("product-b", "product-a")
        );
    }
}
