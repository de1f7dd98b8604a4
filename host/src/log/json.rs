//! The JSON the log accepts in an event's `data` and `metadata`: what every
//! reader — the Rust, Python and JavaScript SDKs, and clients of the HTTP API
//! — decodes to the same value. Checked before anything is written, so that
//! one append can never stop a projection that the log's own rules let in.
//!
//! Syntax is RFC 8259 (the API's parser has already checked it). On top of
//! that the log refuses:
//! - an object with the same key twice, at any depth (compared after
//!   unescaping): serde_json refuses it into a struct, Python and JavaScript
//!   keep the last value, other readers the first;
//! - a `\uD800`–`\uDFFF` escape that is not half of a surrogate pair: it is
//!   no Unicode character, Rust refuses it, Python and JavaScript keep it;
//! - arrays and objects nested deeper than [`MAX_DEPTH`]: serde_json stops at
//!   127 levels, CPython's recursive decoder near 1,000;
//! - a number whose magnitude rounds to infinity as a 64-bit float (`1e400`):
//!   serde_json refuses it, Python and JavaScript read infinity.
//!
//! Everything else is kept as the text the client sent: numbers keep their
//! spelling and precision (a reader that decodes into `f64` or `i64` rounds
//! them, which is that reader's choice), strings their escapes.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashSet;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

/// Most levels of arrays and objects inside one another (`[[1]]` has two).
/// Half of serde_json's limit, so that a projection may still nest the data
/// it reads inside documents of its own.
pub const MAX_DEPTH: usize = 64;

/// Why a JSON text is refused, and where in it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("at {path}: {problem}")]
pub struct JsonProblem {
    /// Where, as a JSONPath: `$`, `$.items[3].sku`, `$["a key"]`.
    pub path: String,
    pub problem: String,
}

/// Check `text` against the rules above.
pub fn check(text: &str) -> Result<(), JsonProblem> {
    let trail = RefCell::new(Trail::default());
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let result = Node {
        depth: 0,
        trail: &trail,
    }
    .deserialize(&mut deserializer)
    .and_then(|()| deserializer.end());
    result.map_err(|error| {
        let trail = trail.into_inner();
        JsonProblem {
            path: trail.path(),
            problem: trail.problem.unwrap_or_else(|| describe(&error)),
        }
    })
}

/// What the walk leaves behind when it fails.
#[derive(Default)]
struct Trail {
    /// The failing value's path segments, innermost first: each level adds
    /// its own as the error passes through it, so a walk that succeeds
    /// builds no path at all.
    segments: Vec<String>,
    /// The problem in the log's words, when the walk itself found it; `None`
    /// when serde_json did (then its error is described).
    problem: Option<String>,
}

impl Trail {
    fn path(&self) -> String {
        let mut path = String::from("$");
        for segment in self.segments.iter().rev() {
            path.push_str(segment);
        }
        path
    }
}

fn key_segment(key: &str) -> String {
    let mut chars = key.chars();
    let plain = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if plain {
        format!(".{key}")
    } else {
        format!("[{}]", serde_json::Value::from(key))
    }
}

/// The problems serde_json finds itself, in the log's words.
fn describe(error: &serde_json::Error) -> String {
    let text = error.to_string();
    if text.contains("surrogate") || text.contains("hex escape") {
        "a string holds a \\u escape of a lone surrogate (\\uD800-\\uDFFF not forming a pair), \
         which is no Unicode character"
            .into()
    } else if text.contains("number out of range") {
        "a number beyond the range of a 64-bit float (about ±1.8e308)".into()
    } else {
        text
    }
}

/// One value, `depth` arrays and objects down.
#[derive(Clone, Copy)]
struct Node<'t> {
    depth: usize,
    trail: &'t RefCell<Trail>,
}

impl Node<'_> {
    fn fail<E: de::Error>(&self, problem: String) -> E {
        let error = E::custom(&problem);
        self.trail.borrow_mut().problem = Some(problem);
        error
    }

    fn enter<E: de::Error>(&self) -> Result<Self, E> {
        if self.depth >= MAX_DEPTH {
            return Err(self.fail(format!(
                "arrays and objects nested deeper than {MAX_DEPTH} levels"
            )));
        }
        Ok(Node {
            depth: self.depth + 1,
            trail: self.trail,
        })
    }
}

impl<'de> DeserializeSeed<'de> for Node<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        // `deserialize_any`, not `deserialize_ignored_any`: only then does
        // serde_json decode every string (finding lone surrogates) and every
        // number (finding those out of range).
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Node<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let child = self.enter()?;
        let mut index = 0usize;
        loop {
            match seq.next_element_seed(child) {
                Ok(Some(())) => index += 1,
                Ok(None) => return Ok(()),
                Err(error) => {
                    self.trail.borrow_mut().segments.push(format!("[{index}]"));
                    return Err(error);
                }
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let child = self.enter()?;
        let mut keys: HashSet<Cow<'de, str>> = HashSet::new();
        while let Some(key) = map.next_key_seed(Key)? {
            if keys.contains(&key) {
                let error = self.fail(format!(
                    "duplicate key {} (readers disagree on which value it has)",
                    serde_json::Value::from(key.as_ref())
                ));
                self.trail.borrow_mut().segments.push(key_segment(&key));
                return Err(error);
            }
            if let Err(error) = map.next_value_seed(child) {
                self.trail.borrow_mut().segments.push(key_segment(&key));
                return Err(error);
            }
            keys.insert(key);
        }
        Ok(())
    }
}

/// An object key, borrowed from the text unless it has escapes.
struct Key;

impl<'de> DeserializeSeed<'de> for Key {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Key {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_borrowed_str<E>(self, key: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(key))
    }

    fn visit_str<E>(self, key: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(key.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(levels: usize) -> String {
        format!("{}1{}", "[".repeat(levels), "]".repeat(levels))
    }

    fn refused(text: &str) -> JsonProblem {
        check(text).expect_err(text)
    }

    #[test]
    fn ordinary_documents_are_accepted() {
        for text in [
            r#"{"owner":"ann","amount":12,"tags":["a","b"],"note":null,"ok":true}"#,
            r#" { "spaced" : [ 1 , 2.5e-3 , -0 ] } "#,
            r#""\ud83d\ude00 \u00e9 \n \u0000""#,
            "123456789012345678901234567890",
            "1e-400",
            "-1.7976931348623157e308",
            r#"{"":1,"a":{"a":{"a":1}},"b":[{"a":1},{"a":2}]}"#,
            r#"{"a":1,"A":2,"é":3,"e\u0301":4}"#,
        ] {
            assert_eq!(check(text), Ok(()), "{text}");
        }
    }

    #[test]
    fn duplicate_keys_are_refused_at_any_depth_with_their_path() {
        let problem = refused(r#"{"amount":1,"amount":1000000}"#);
        assert_eq!(problem.path, "$.amount");
        assert!(problem.problem.starts_with("duplicate key \"amount\""));
        assert_eq!(
            refused(r#"{"a":[0,{"b":{"c d":1,"c d":1}}]}"#).path,
            r#"$.a[1].b["c d"]"#
        );
        assert_eq!(
            refused(r#"{"a":1,"\u0061":2}"#).path,
            "$.a",
            "after unescaping"
        );
        assert_eq!(refused(r#"[{"é":1,"\u00e9":2}]"#).path, r#"$[0]["é"]"#);
    }

    #[test]
    fn lone_surrogates_are_refused_but_pairs_are_not() {
        for (text, path) in [
            (r#""\ud800""#, "$"),
            (r#"["\udc00"]"#, "$[0]"),
            (r#"{"a":"x\ud800y"}"#, "$.a"),
            (r#"{"a":"\ud800\u0041"}"#, "$.a"),
            (r#"{"a":"\ude00\ud83d"}"#, "$.a"),
            (r#"{"k\udfff":1}"#, "$"),
        ] {
            let problem = refused(text);
            assert_eq!(problem.path, path, "{text}");
            assert!(problem.problem.contains("lone surrogate"), "{problem}");
        }
        assert_eq!(check(r#""\uD83D\uDE00""#), Ok(()));
    }

    #[test]
    fn nesting_is_refused_past_the_limit_however_deep() {
        assert_eq!(check(&nested(MAX_DEPTH)), Ok(()));
        for levels in [MAX_DEPTH + 1, 128, 100_000] {
            let problem = refused(&nested(levels));
            assert_eq!(problem.path, format!("${}", "[0]".repeat(MAX_DEPTH)));
            assert!(
                problem.problem.contains("nested deeper than 64"),
                "{problem}"
            );
        }
        let objects = format!(
            "{}1{}",
            r#"{"a":"#.repeat(MAX_DEPTH + 1),
            "}".repeat(MAX_DEPTH + 1)
        );
        assert_eq!(
            refused(&objects).path,
            format!("${}", ".a".repeat(MAX_DEPTH))
        );
    }

    #[test]
    fn numbers_beyond_a_double_are_refused_and_others_kept() {
        for text in ["1e400", "[-1e309]", &"9".repeat(400), "1.8e308"] {
            assert!(refused(text).problem.contains("range"), "{text}");
        }
        for text in [
            "1.7976931348623157e308",
            "1e-400",
            "0e999999",
            "18446744073709551616",
        ] {
            assert_eq!(check(text), Ok(()), "{text}");
        }
    }

    #[test]
    fn syntax_errors_are_reported_too() {
        assert!(check("{").is_err());
        assert!(check("[1,]").is_err());
        assert!(check("1 2").is_err());
        assert!(check("NaN").is_err());
    }
}
