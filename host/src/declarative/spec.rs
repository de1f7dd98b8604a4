//! The view file: its YAML (or JSON) form, checked and compiled into the
//! [`ViewSpec`] the handler runs. Every error names the line and column of
//! the value at fault and the field it is (`on.Deposited.add.balance`), and
//! nothing is half-accepted: a file compiles whole or not at all.

use std::collections::HashMap;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use serde_saphyr::{Location, Spanned};

use super::expr::{self, Expr, PathRef, Root};
use crate::views::index::{FieldKind, IndexField, IndexSpec};

/// Why a view file is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{message}", at.map_or(String::new(), |(l, c)| format!("line {l}, column {c}: ")))]
pub struct SpecError {
    /// Line and column (from 1) of the value at fault, when known.
    pub at: Option<(u64, u64)>,
    pub message: String,
}

fn at(location: &Location, field: &str, message: impl fmt::Display) -> SpecError {
    SpecError {
        at: (location.line() > 0).then(|| (location.line(), location.column())),
        message: format!("{field}: {message}"),
    }
}

/// A map whose entries keep the file's order.
struct Ordered<V>(Vec<(Spanned<String>, V)>);

impl<'de, V: Deserialize<'de>> Deserialize<'de> for Ordered<V> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Entries<V>(std::marker::PhantomData<V>);
        impl<'de, V: Deserialize<'de>> Visitor<'de> for Entries<V> {
            type Value = Ordered<V>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Ordered<V>, A::Error> {
                let mut out = Vec::new();
                while let Some(entry) = map.next_entry()? {
                    out.push(entry);
                }
                Ok(Ordered(out))
            }
        }
        d.deserialize_map(Entries(std::marker::PhantomData))
    }
}

type Fields = Ordered<Spanned<Value>>;

/// One update, or a list of them.
struct OneOrMany(Vec<(Option<Location>, UpdateFile)>);

impl<'de> Deserialize<'de> for OneOrMany {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Either;
        impl<'de> Visitor<'de> for Either {
            type Value = OneOrMany;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an update (a map) or a list of updates")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<OneOrMany, A::Error> {
                let one = UpdateFile::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(OneOrMany(vec![(None, one)]))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<OneOrMany, A::Error> {
                let mut out = Vec::new();
                while let Some(one) = seq.next_element::<Spanned<UpdateFile>>()? {
                    out.push((Some(one.referenced), one.value));
                }
                Ok(OneOrMany(out))
            }
        }
        d.deserialize_any(Either)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ViewFile {
    name: Option<String>,
    version: Option<Value>,
    streams: Option<Vec<String>>,
    key: Option<Spanned<Value>>,
    defaults: Option<Fields>,
    #[serde(default)]
    indexes: Vec<Spanned<IndexFile>>,
    on: Spanned<Ordered<Spanned<OneOrMany>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IndexFile {
    name: Spanned<String>,
    fields: Spanned<Ordered<FieldKind>>,
    #[serde(default)]
    unique: bool,
    prefix: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EachFile {
    index: Spanned<String>,
    #[serde(rename = "where")]
    conditions: Fields,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateFile {
    key: Option<Spanned<Value>>,
    each: Option<Spanned<EachFile>>,
    join: Option<Fields>,
    when: Option<Fields>,
    require: Option<Fields>,
    defaults: Option<Fields>,
    delete: Option<Spanned<bool>>,
    set: Option<Fields>,
    add: Option<Fields>,
    subtract: Option<Fields>,
    min: Option<Fields>,
    max: Option<Fields>,
    append: Option<Fields>,
    remove: Option<Fields>,
    average: Option<Fields>,
}

/// What an operation does to a field of the document.
#[derive(Debug, Clone, PartialEq)]
pub enum OpKind {
    Set,
    Add,
    Subtract,
    Min,
    Max,
    /// Append to a list, keeping at most the last `cap` items.
    Append {
        cap: Option<usize>,
    },
    /// Remove the items equal to the value, or whose field `by` is.
    Remove {
        by: Option<String>,
    },
    /// `{"count","sum","mean"}` of the values seen.
    Average,
}

#[derive(Debug, Clone)]
pub struct Op {
    pub kind: OpKind,
    /// A dotted path into the document.
    pub field: String,
    pub value: Expr,
}

/// A comparison of a check.
#[derive(Debug, Clone)]
pub enum Test {
    Eq(Expr),
    Ne(Expr),
    Gt(Expr),
    Gte(Expr),
    Lt(Expr),
    Lte(Expr),
    Prefix(Expr),
    In(Vec<Expr>),
    Exists(bool),
}

/// A condition of `when` or `require`: the value at `path` passes every test.
#[derive(Debug, Clone)]
pub struct Check {
    pub path: PathRef,
    pub tests: Vec<Test>,
    /// As written, for messages.
    pub text: String,
}

/// Which documents an update changes.
#[derive(Debug, Clone)]
pub enum Target {
    /// The document at this key (created from the defaults if absent).
    Key(Expr),
    /// Every existing document whose `index` fields equal the values.
    Each {
        index: IndexSpec,
        values: Vec<(IndexField, Expr)>,
    },
}

/// One update of an event type's list.
#[derive(Debug, Clone)]
pub struct Update {
    /// Where it is in the file (`on.Deposited[1]`), for messages.
    pub label: String,
    pub joins: Vec<(String, Expr)>,
    pub target: Target,
    pub when: Vec<Check>,
    pub require: Vec<Check>,
    pub defaults: Vec<(String, Expr)>,
    pub delete: bool,
    pub ops: Vec<Op>,
    /// Whether a `Key` target reads nothing but the event.
    key_reads_only_the_event: bool,
}

impl Update {
    /// The key, if it is known before any document is read (it reads only
    /// the event), so that it can be fetched with the batch's others.
    pub fn key_from_event(&self) -> Option<&Expr> {
        match &self.target {
            Target::Key(e) if self.key_reads_only_the_event => Some(e),
            _ => None,
        }
    }
}

/// A compiled view file.
#[derive(Debug, Clone)]
pub struct ViewSpec {
    pub name: String,
    pub version: String,
    /// Only events of streams starting with one of these (all if empty).
    pub streams: Vec<String>,
    /// Event types in file order.
    pub event_types: Vec<String>,
    pub handlers: HashMap<String, Vec<Update>>,
    pub indexes: Vec<IndexSpec>,
}

fn valid_field(path: &str) -> bool {
    !path.is_empty() && !path.split('.').any(str::is_empty)
}

const TESTS: &[&str] = &[
    "eq", "ne", "gt", "gte", "lt", "lte", "prefix", "in", "exists",
];

fn compile_value(v: &Spanned<Value>, field: &str, joins: &[String]) -> Result<Expr, SpecError> {
    expr::compile(&v.value, joins).map_err(|m| at(&v.referenced, field, m))
}

fn compile_checks(
    fields: &Option<Fields>,
    what: &str,
    label: &str,
    joins: &[String],
) -> Result<Vec<Check>, SpecError> {
    let Some(Ordered(entries)) = fields else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for (path, value) in entries {
        let field = format!("{label}.{what}.{}", path.value);
        let parsed =
            expr::parse_path(&path.value, joins).map_err(|m| at(&path.referenced, &field, m))?;
        let one = |v: &Value| expr::compile(v, joins).map_err(|m| at(&value.referenced, &field, m));
        let tests = match &value.value {
            Value::Object(map)
                if !map.is_empty() && map.keys().all(|k| TESTS.contains(&k.as_str())) =>
            {
                let mut tests = Vec::new();
                for (op, v) in map {
                    tests.push(match op.as_str() {
                        "eq" => Test::Eq(one(v)?),
                        "ne" => Test::Ne(one(v)?),
                        "gt" => Test::Gt(one(v)?),
                        "gte" => Test::Gte(one(v)?),
                        "lt" => Test::Lt(one(v)?),
                        "lte" => Test::Lte(one(v)?),
                        "prefix" => Test::Prefix(one(v)?),
                        "exists" => match v {
                            Value::Bool(b) => Test::Exists(*b),
                            _ => {
                                return Err(at(
                                    &value.referenced,
                                    &field,
                                    "exists is true or false",
                                ));
                            }
                        },
                        "in" => match v {
                            Value::Array(items) => {
                                Test::In(items.iter().map(one).collect::<Result<_, _>>()?)
                            }
                            _ => return Err(at(&value.referenced, &field, "in takes a list")),
                        },
                        _ => unreachable!("checked above"),
                    });
                }
                tests
            }
            Value::Object(map) => {
                return Err(at(
                    &value.referenced,
                    &field,
                    format!(
                        "a test is a value to equal or a map of {} (not {:?})",
                        TESTS.join(", "),
                        map.keys().collect::<Vec<_>>()
                    ),
                ));
            }
            other => vec![Test::Eq(one(other)?)],
        };
        out.push(Check {
            path: parsed,
            tests,
            text: path.value.clone(),
        });
    }
    Ok(out)
}

fn compile_fields(
    fields: &Option<Fields>,
    what: &str,
    label: &str,
    joins: &[String],
) -> Result<Vec<(String, Expr)>, SpecError> {
    let Some(Ordered(entries)) = fields else {
        return Ok(Vec::new());
    };
    entries
        .iter()
        .map(|(name, value)| {
            let field = format!("{label}.{what}.{}", name.value);
            if !valid_field(&name.value) {
                return Err(at(&name.referenced, &field, "not a field path (a.b.c)"));
            }
            Ok((name.value.clone(), compile_value(value, &field, joins)?))
        })
        .collect()
}

/// `append` and `remove` take a value, or a map with options.
fn compile_list_ops(
    fields: &Option<Fields>,
    append: bool,
    label: &str,
    joins: &[String],
) -> Result<Vec<Op>, SpecError> {
    let what = if append { "append" } else { "remove" };
    let Some(Ordered(entries)) = fields else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for (name, value) in entries {
        let field = format!("{label}.{what}.{}", name.value);
        if !valid_field(&name.value) {
            return Err(at(&name.referenced, &field, "not a field path (a.b.c)"));
        }
        let wrong = |m: &str| at(&value.referenced, &field, m);
        let (expr, kind) = match &value.value {
            Value::Object(map) if append => {
                let allowed = ["value", "max"];
                if let Some(k) = map.keys().find(|k| !allowed.contains(&k.as_str())) {
                    return Err(wrong(&format!(
                        "unknown option {k:?} (append takes value and max)"
                    )));
                }
                let v = map
                    .get("value")
                    .ok_or_else(|| wrong("append with options needs a value"))?;
                let cap = match map.get("max") {
                    None => None,
                    Some(m) => Some(
                        m.as_u64()
                            .filter(|m| *m > 0)
                            .ok_or_else(|| wrong("max is a positive whole number"))?
                            as usize,
                    ),
                };
                (v.clone(), OpKind::Append { cap })
            }
            Value::Object(map) => {
                let allowed = ["where", "equals"];
                if let Some(k) = map.keys().find(|k| !allowed.contains(&k.as_str())) {
                    return Err(wrong(&format!(
                        "unknown option {k:?} (remove takes where and equals)"
                    )));
                }
                let by = map
                    .get("where")
                    .and_then(Value::as_str)
                    .filter(|w| valid_field(w))
                    .ok_or_else(|| {
                        wrong("remove with options needs where: a field of the items")
                    })?;
                let v = map
                    .get("equals")
                    .ok_or_else(|| wrong("remove with where needs equals"))?;
                (
                    v.clone(),
                    OpKind::Remove {
                        by: Some(by.to_string()),
                    },
                )
            }
            other if append => (other.clone(), OpKind::Append { cap: None }),
            other => (other.clone(), OpKind::Remove { by: None }),
        };
        out.push(Op {
            kind,
            field: name.value.clone(),
            value: expr::compile(&expr, joins).map_err(|m| at(&value.referenced, &field, m))?,
        });
    }
    Ok(out)
}

/// Read and check a view file.
pub fn compile(text: &str) -> Result<ViewSpec, SpecError> {
    let file: ViewFile = serde_saphyr::from_str(text).map_err(|e| SpecError {
        at: e
            .location()
            .filter(|l| l.line() > 0)
            .map(|l| (l.line(), l.column())),
        message: e
            .without_snippet()
            .to_string()
            .lines()
            .next()
            .unwrap_or_default()
            .to_string(),
    })?;
    let mut indexes = Vec::new();
    for index in &file.indexes {
        let i = &index.value;
        let spec = IndexSpec {
            name: i.name.value.clone(),
            fields: i
                .fields
                .value
                .0
                .iter()
                .map(|(path, kind)| IndexField {
                    path: path.value.clone(),
                    kind: *kind,
                })
                .collect(),
            unique: i.unique,
            prefix: i.prefix.clone(),
        };
        if let Some(problem) = spec.problem() {
            return Err(at(&index.referenced, "indexes", problem));
        }
        if indexes.iter().any(|o: &IndexSpec| o.name == spec.name) {
            return Err(at(
                &i.name.referenced,
                "indexes",
                format!("two indexes are named {:?}", spec.name),
            ));
        }
        indexes.push(spec);
    }
    let default_key = file.key.as_ref();
    let Ordered(on) = &file.on.value;
    if on.is_empty() {
        return Err(at(&file.on.referenced, "on", "names no event type"));
    }
    let mut handlers = HashMap::new();
    let mut event_types = Vec::new();
    for (event_type, updates) in on {
        // A type the log would refuse can never arrive: a handler for it is a mistake.
        if let Err(e) = crate::log::limits::check_event_type(&event_type.value) {
            return Err(at(&event_type.referenced, "on", e));
        }
        if handlers.contains_key(&event_type.value) {
            return Err(at(
                &event_type.referenced,
                "on",
                format!("{:?} is listed twice", event_type.value),
            ));
        }
        let many = updates.value.0.len() > 1;
        let mut compiled = Vec::new();
        for (n, (location, u)) in updates.value.0.iter().enumerate() {
            let label = if many {
                format!("on.{}[{n}]", event_type.value)
            } else {
                format!("on.{}", event_type.value)
            };
            let here = location.unwrap_or(updates.referenced);
            compiled.push(compile_update(
                u,
                &label,
                &here,
                default_key,
                &file.defaults,
                &indexes,
            )?);
        }
        event_types.push(event_type.value.clone());
        handlers.insert(event_type.value.clone(), compiled);
    }
    Ok(ViewSpec {
        name: file.name.unwrap_or_else(|| "view".into()),
        version: match file.version {
            None => "0".into(),
            Some(Value::String(s)) => s,
            Some(other) => other.to_string(),
        },
        streams: file.streams.unwrap_or_default(),
        event_types,
        handlers,
        indexes,
    })
}

fn compile_update(
    u: &UpdateFile,
    label: &str,
    here: &Location,
    default_key: Option<&Spanned<Value>>,
    default_fields: &Option<Fields>,
    indexes: &[IndexSpec],
) -> Result<Update, SpecError> {
    let mut joins: Vec<String> = Vec::new();
    let mut join_exprs = Vec::new();
    if let Some(Ordered(entries)) = &u.join {
        for (name, key) in entries {
            let field = format!("{label}.join.{}", name.value);
            let reserved = expr::ROOTS
                .iter()
                .any(|r| r.split('.').next() == Some(name.value.as_str()));
            if reserved || name.value.contains('.') || name.value.is_empty() {
                return Err(at(
                    &name.referenced,
                    &field,
                    format!(
                        "{:?} cannot name a joined document (it is a path root, or not a plain name)",
                        name.value
                    ),
                ));
            }
            // A join's key may use the joins before it.
            join_exprs.push((name.value.clone(), compile_value(key, &field, &joins)?));
            joins.push(name.value.clone());
        }
    }
    let target = match (&u.key, &u.each) {
        (Some(_), Some(each)) => {
            return Err(at(
                &each.referenced,
                &format!("{label}.each"),
                "an update has a key or each, not both",
            ));
        }
        (Some(key), None) => Some(Target::Key(compile_value(
            key,
            &format!("{label}.key"),
            &joins,
        )?)),
        (None, Some(each)) => {
            let field = format!("{label}.each");
            let e = &each.value;
            let index = indexes
                .iter()
                .find(|i| i.name == e.index.value)
                .cloned()
                .ok_or_else(|| {
                    at(
                        &e.index.referenced,
                        &format!("{field}.index"),
                        format!(
                            "no index is named {:?} (declare it under indexes; there are: {})",
                            e.index.value,
                            indexes
                                .iter()
                                .map(|i| i.name.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    )
                })?;
            let Ordered(conditions) = &e.conditions;
            let mut values = Vec::new();
            for (path, value) in conditions {
                let f = format!("{field}.where.{}", path.value);
                let Some(index_field) = index
                    .fields
                    .get(values.len())
                    .filter(|f| f.path == path.value)
                else {
                    return Err(at(
                        &path.referenced,
                        &f,
                        format!(
                            "each.where names the first fields of index {:?}, in order ({})",
                            index.name,
                            index
                                .fields
                                .iter()
                                .map(|f| f.path.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    ));
                };
                values.push((index_field.clone(), compile_value(value, &f, &joins)?));
            }
            if values.is_empty() {
                return Err(at(
                    &each.referenced,
                    &field,
                    "each needs where: values of the index's first fields",
                ));
            }
            Some(Target::Each { index, values })
        }
        // What is missing is reported after what is written wrong.
        (None, None) => None,
    };
    let ops_of =
        |fields: &Option<Fields>, what: &str, kind: OpKind| -> Result<Vec<Op>, SpecError> {
            Ok(compile_fields(fields, what, label, &joins)?
                .into_iter()
                .map(|(field, value)| Op {
                    kind: kind.clone(),
                    field,
                    value,
                })
                .collect())
        };
    let mut ops = ops_of(&u.set, "set", OpKind::Set)?;
    ops.extend(ops_of(&u.add, "add", OpKind::Add)?);
    ops.extend(ops_of(&u.subtract, "subtract", OpKind::Subtract)?);
    ops.extend(ops_of(&u.min, "min", OpKind::Min)?);
    ops.extend(ops_of(&u.max, "max", OpKind::Max)?);
    ops.extend(compile_list_ops(&u.append, true, label, &joins)?);
    ops.extend(compile_list_ops(&u.remove, false, label, &joins)?);
    ops.extend(ops_of(&u.average, "average", OpKind::Average)?);
    let delete = u.delete.as_ref().is_some_and(|d| d.value);
    if delete && !ops.is_empty() {
        return Err(at(
            here,
            label,
            "an update that deletes its document changes no field",
        ));
    }
    if !delete && ops.is_empty() && u.defaults.is_none() {
        return Err(at(
            here,
            label,
            "the update does nothing: give it set, add, subtract, min, max, append, remove, average or delete",
        ));
    }
    let defaults = match &u.defaults {
        Some(_) => compile_fields(&u.defaults, "defaults", label, &joins)?,
        None => compile_fields(default_fields, "defaults", "", &joins)?,
    };
    let when = compile_checks(&u.when, "when", label, &joins)?;
    let require = compile_checks(&u.require, "require", label, &joins)?;
    let target = match (target, default_key) {
        (Some(target), _) => target,
        (None, Some(key)) => Target::Key(compile_value(key, "key", &joins)?),
        (None, None) => {
            return Err(at(
                here,
                label,
                "no key: give the update a key (or each), or the file a key",
            ));
        }
    };
    let key_reads_only_the_event = match &target {
        Target::Key(e) => e
            .paths()
            .iter()
            .all(|p| !matches!(p.root, Root::Doc | Root::Key | Root::Join(_))),
        Target::Each { .. } => false,
    };
    Ok(Update {
        key_reads_only_the_event,
        label: label.to_string(),
        joins: join_exprs,
        target,
        when,
        require,
        defaults,
        delete,
        ops,
    })
}
