//! Values in a view file: literals, and templates over the event, the
//! document and joined documents.
//!
//! A string is a template (also inside lists and objects, which are built
//! from their items): `{PATH}` is replaced by the value at `PATH`, and
//! a string that is exactly one `{PATH}` is that value itself, of whatever
//! JSON type (`"{data.amount}"` is a number if the amount is). `{{` and `}}`
//! are literal braces. A path starts at a root — `data`, `metadata`,
//! `stream`, `stream.category` (before the first `-`), `stream.id` (after
//! it), `type`, `position`, `version`, `time` (recorded, epoch ms),
//! `event_id`, `key` (the document's), `doc` (the document), or the name of
//! a joined document — and goes on with `.field` steps. A path ending in `?`
//! is optional: missing, it is `null`; otherwise a missing value is an
//! error of the event. After `|`, filters: `string` (numbers and booleans
//! as text), `day` and `month` (a time, epoch ms or RFC 3339, as
//! `YYYY-MM-DD` / `YYYY-MM` in UTC).

use serde_json::Value;

use crate::views::index::lookup;

/// Where a path starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Root {
    Data,
    Metadata,
    Stream,
    StreamCategory,
    StreamId,
    Type,
    Position,
    Version,
    Time,
    EventId,
    Key,
    Doc,
    /// A joined document, by its place in the update's joins.
    Join(usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filter {
    String,
    Day,
    Month,
}

/// A path into the event or a document, with its filters.
#[derive(Debug, Clone, PartialEq)]
pub struct PathRef {
    pub root: Root,
    /// Dotted steps after the root, joined (`""` for the root itself).
    pub steps: String,
    pub optional: bool,
    pub filters: Vec<Filter>,
    /// As written, for error messages.
    pub text: String,
}

/// A piece of a template.
#[derive(Debug, Clone, PartialEq)]
pub enum Part {
    Text(String),
    Path(PathRef),
}

/// A value of a view file, compiled.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Literal(Value),
    /// Exactly one `{PATH}`: the value itself.
    Path(PathRef),
    /// Text with paths in it: always a string.
    Template(Vec<Part>),
    /// A list with templates among its items.
    List(Vec<Expr>),
    /// An object with templates among its values.
    Object(Vec<(String, Expr)>),
}

/// The names a path may start with, besides joined documents.
pub const ROOTS: &[&str] = &[
    "data",
    "metadata",
    "stream",
    "stream.category",
    "stream.id",
    "type",
    "position",
    "version",
    "time",
    "event_id",
    "key",
    "doc",
];

/// Parse a path (`data.amount?|string`); `joins` are the names of the
/// joined documents it may start with.
pub fn parse_path(text: &str, joins: &[String]) -> Result<PathRef, String> {
    let mut pieces = text.split('|');
    let head = pieces.next().unwrap_or_default().trim();
    let mut filters = Vec::new();
    for f in pieces {
        filters.push(match f.trim() {
            "string" => Filter::String,
            "day" => Filter::Day,
            "month" => Filter::Month,
            other => {
                return Err(format!(
                    "unknown filter {other:?} in {{{text}}} (filters: string, day, month)"
                ));
            }
        });
    }
    let (head, optional) = match head.strip_suffix('?') {
        Some(h) => (h, true),
        None => (head, false),
    };
    if head.is_empty() || head.split('.').any(str::is_empty) {
        return Err(format!("{{{text}}}: {head:?} is not a path (a.b.c)"));
    }
    let fixed = |name: &str, root: Root| -> Option<(Root, String)> {
        if head == name {
            return Some((root, String::new()));
        }
        head.strip_prefix(name)
            .and_then(|rest| rest.strip_prefix('.'))
            .map(|rest| (root, rest.to_string()))
    };
    let (root, steps) = if let Some(r) = fixed("stream.category", Root::StreamCategory)
        .filter(|(_, s)| s.is_empty())
        .or_else(|| fixed("stream.id", Root::StreamId).filter(|(_, s)| s.is_empty()))
    {
        r
    } else if let Some((i, name)) = joins
        .iter()
        .enumerate()
        .find(|(_, n)| head == n.as_str() || head.starts_with(&format!("{n}.")))
    {
        (
            Root::Join(i),
            head[name.len()..].trim_start_matches('.').to_string(),
        )
    } else {
        let roots = [
            ("data", Root::Data),
            ("metadata", Root::Metadata),
            ("doc", Root::Doc),
        ];
        let scalar = [
            ("stream", Root::Stream),
            ("type", Root::Type),
            ("position", Root::Position),
            ("version", Root::Version),
            ("time", Root::Time),
            ("event_id", Root::EventId),
            ("key", Root::Key),
        ];
        if let Some(r) = roots.into_iter().find_map(|(n, r)| fixed(n, r)) {
            r
        } else if let Some(r) = scalar
            .into_iter()
            .find_map(|(n, r)| fixed(n, r).filter(|(_, s)| s.is_empty()))
        {
            r
        } else {
            let mut known: Vec<String> = ROOTS.iter().map(|r| r.to_string()).collect();
            known.extend(joins.iter().cloned());
            return Err(format!(
                "{{{text}}}: unknown path {head:?} (paths start with {})",
                known.join(", ")
            ));
        }
    };
    Ok(PathRef {
        root,
        steps,
        optional,
        filters,
        text: text.to_string(),
    })
}

/// Compile a value of the file: strings are templates, also inside lists
/// and objects.
pub fn compile(value: &Value, joins: &[String]) -> Result<Expr, String> {
    let literal = |e: &Expr| matches!(e, Expr::Literal(_));
    let text = match value {
        Value::String(text) => text,
        Value::Array(items) => {
            let items = items
                .iter()
                .map(|v| compile(v, joins))
                .collect::<Result<Vec<_>, _>>()?;
            return Ok(if items.iter().all(literal) {
                Expr::Literal(value.clone())
            } else {
                Expr::List(items)
            });
        }
        Value::Object(map) => {
            let fields = map
                .iter()
                .map(|(k, v)| Ok((k.clone(), compile(v, joins)?)))
                .collect::<Result<Vec<_>, String>>()?;
            return Ok(if fields.iter().all(|(_, e)| literal(e)) {
                Expr::Literal(value.clone())
            } else {
                Expr::Object(fields)
            });
        }
        _ => return Ok(Expr::Literal(value.clone())),
    };
    let mut parts = Vec::new();
    let mut literal = String::new();
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            '{' if chars.peek().map(|(_, c)| *c) == Some('{') => {
                chars.next();
                literal.push('{');
            }
            '}' if chars.peek().map(|(_, c)| *c) == Some('}') => {
                chars.next();
                literal.push('}');
            }
            '{' => {
                let rest = &text[i + 1..];
                let end = rest
                    .find('}')
                    .ok_or_else(|| format!("{text:?}: a {{ is not closed"))?;
                if !literal.is_empty() {
                    parts.push(Part::Text(std::mem::take(&mut literal)));
                }
                parts.push(Part::Path(parse_path(&rest[..end], joins)?));
                for _ in 0..rest[..=end].chars().count() {
                    chars.next();
                }
            }
            '}' => {
                return Err(format!(
                    "{text:?}: a }} that closes nothing (write }}}} for a brace)"
                ));
            }
            c => literal.push(c),
        }
    }
    if !literal.is_empty() {
        parts.push(Part::Text(literal));
    }
    Ok(match parts.as_slice() {
        [] => Expr::Literal(Value::String(String::new())),
        [Part::Path(p)] => Expr::Path(p.clone()),
        [Part::Text(t)] => Expr::Literal(Value::String(t.clone())),
        _ => Expr::Template(parts),
    })
}

impl Expr {
    /// Every path the value reads.
    pub fn paths(&self) -> Vec<&PathRef> {
        match self {
            Expr::Literal(_) => Vec::new(),
            Expr::List(items) => items.iter().flat_map(Expr::paths).collect(),
            Expr::Object(fields) => fields.iter().flat_map(|(_, e)| e.paths()).collect(),
            Expr::Path(p) => vec![p],
            Expr::Template(parts) => parts
                .iter()
                .filter_map(|p| match p {
                    Part::Path(p) => Some(p),
                    Part::Text(_) => None,
                })
                .collect(),
        }
    }
}

/// What a value is evaluated against.
pub trait Scope {
    /// The value at the root and steps of `path`, before filters; `None` if missing.
    fn resolve(&mut self, path: &PathRef) -> Result<Option<Value>, String>;
}

fn civil_from_days(days: i64) -> (i64, u32, u32) {
    // Howard Hinnant's algorithm: days since 1970-01-01 to a civil date.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn epoch_ms(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        Value::String(s) => {
            let t = humantime::parse_rfc3339_weak(s).ok()?;
            Some(t.duration_since(std::time::UNIX_EPOCH).ok()?.as_millis() as i64)
        }
        _ => None,
    }
}

fn apply_filter(filter: Filter, value: Value, path: &PathRef) -> Result<Value, String> {
    match filter {
        Filter::String => Ok(match value {
            Value::String(s) => Value::String(s),
            Value::Null => Value::Null,
            other => Value::String(other.to_string()),
        }),
        Filter::Day | Filter::Month => {
            if value.is_null() {
                return Ok(Value::Null);
            }
            let ms = epoch_ms(&value).ok_or_else(|| {
                format!(
                    "{{{}}}: {value} is not a time (epoch ms or RFC 3339)",
                    path.text
                )
            })?;
            let (y, m, d) = civil_from_days(ms.div_euclid(86_400_000));
            Ok(Value::String(if filter == Filter::Day {
                format!("{y:04}-{m:02}-{d:02}")
            } else {
                format!("{y:04}-{m:02}")
            }))
        }
    }
}

/// The value of `path` in `scope`, filtered.
pub fn eval_path(path: &PathRef, scope: &mut dyn Scope) -> Result<Value, String> {
    let value = match scope.resolve(path)? {
        Some(v) => v,
        None if path.optional => Value::Null,
        None => return Err(format!("{} is missing", path.text.trim_end_matches('?'))),
    };
    path.filters
        .iter()
        .try_fold(value, |v, f| apply_filter(*f, v, path))
}

/// The value of `expr` in `scope`.
pub fn eval(expr: &Expr, scope: &mut dyn Scope) -> Result<Value, String> {
    match expr {
        Expr::Literal(v) => Ok(v.clone()),
        Expr::Path(p) => eval_path(p, scope),
        Expr::List(items) => items
            .iter()
            .map(|e| eval(e, scope))
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array),
        Expr::Object(fields) => {
            let mut map = serde_json::Map::new();
            for (k, e) in fields {
                map.insert(k.clone(), eval(e, scope)?);
            }
            Ok(Value::Object(map))
        }
        Expr::Template(parts) => {
            let mut out = String::new();
            for part in parts {
                match part {
                    Part::Text(t) => out.push_str(t),
                    Part::Path(p) => match eval_path(p, scope)? {
                        Value::String(s) => out.push_str(&s),
                        Value::Null => {}
                        other => out.push_str(&other.to_string()),
                    },
                }
            }
            Ok(Value::String(out))
        }
    }
}

/// The value at `steps` (dotted) inside `value`.
pub fn step_into(value: &Value, steps: &str) -> Option<Value> {
    if steps.is_empty() {
        return Some(value.clone());
    }
    lookup(value, steps).cloned()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    struct Fixed(Value);

    impl Scope for Fixed {
        fn resolve(&mut self, path: &PathRef) -> Result<Option<Value>, String> {
            Ok(match path.root {
                Root::Data => step_into(&self.0, &path.steps),
                Root::Stream => Some(json!("order-7")),
                Root::Time => Some(json!(1_704_153_600_000u64)),
                _ => None,
            })
        }
    }

    fn run(template: &str, data: Value) -> Result<Value, String> {
        let expr = compile(&json!(template), &[])?;
        eval(&expr, &mut Fixed(data))
    }

    #[test]
    fn templates_give_whole_values_or_text() {
        assert_eq!(run("{data.n}", json!({"n": 5})), Ok(json!(5)));
        assert_eq!(run("n-{data.n}", json!({"n": 5})), Ok(json!("n-5")));
        assert_eq!(run("{data.n|string}", json!({"n": 5})), Ok(json!("5")));
        assert_eq!(run("{{literal}}", json!({})), Ok(json!("{literal}")));
        assert_eq!(
            run("{stream}/{time|day}", json!({})),
            Ok(json!("order-7/2024-01-02"))
        );
        assert_eq!(run("{time|month}", json!({})), Ok(json!("2024-01")));
        assert_eq!(run("{data.gone?}", json!({})), Ok(Value::Null));
        assert_eq!(
            run("{data.gone}", json!({})),
            Err("data.gone is missing".into())
        );
        assert_eq!(
            run("{data.when|day}", json!({"when": "1999-12-31T23:59:59Z"})),
            Ok(json!("1999-12-31"))
        );
    }

    #[test]
    fn bad_templates_say_what_is_wrong() {
        assert!(
            compile(&json!("{nope.x}"), &[])
                .unwrap_err()
                .contains("unknown path")
        );
        assert!(
            compile(&json!("{data.x|shout}"), &[])
                .unwrap_err()
                .contains("unknown filter")
        );
        assert!(
            compile(&json!("{data.x"), &[])
                .unwrap_err()
                .contains("not closed")
        );
        assert!(compile(&json!("{stream.x}"), &[]).is_err());
        let joined = compile(&json!("{customer.name}"), &["customer".into()]).unwrap();
        assert!(matches!(
            joined,
            Expr::Path(PathRef {
                root: Root::Join(0),
                ..
            })
        ));
    }
}
