//! The property behind `json`: a document the log accepts decodes to the same
//! value in every SDK. Arbitrary JSON texts (deep nesting around the limit,
//! any Unicode spelled raw or escaped, lone surrogates, duplicate keys, numbers
//! of every size and spelling) are generated from a fixed seed; each is either
//! refused by [`json::check`] or decoded by the Rust SDK, and written with
//! the verdict and a canonical form of the decoded value to
//! `tests/data/json-corpus.jsonl`. The Python and JavaScript SDK tests decode
//! the same file and compare their canonical forms with Rust's; the
//! end-to-end tests append it to a server and read it back.
//!
//! The file is committed, so no test depends on another having run first:
//! this one fails when what it generates differs from the file (rerun with
//! `PRISM_UPDATE_CORPUS=1` and commit the result).
//!
//! The canonical form, the same in all three test suites: `null`, `true`,
//! `false`; strings in quotes with `"` and `\` escaped, printable ASCII as
//! is and every other UTF-16 code unit as a lowercase `\uXXXX`; arrays in
//! order; objects with their members sorted by canonical key. An integer the
//! reader holds exactly in [-2^63, 2^64) is written in decimal; any other
//! number becomes its double, written in decimal when integral and below
//! 2^64 in magnitude (so `-0` and `0.0` are `0`), else as the shortest
//! digits that round-trip and an exponent: `15e-1` for 1.5.

use serde_json::Value;

use super::json;

/// Deterministic pseudo-random numbers (SplitMix64): the corpus must not
/// change when a dependency changes its random streams.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// True with probability `percent` / 100.
    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }
}

/// Numbers that sit on an edge: of i64 and u64, of exact doubles, of the
/// double range, and spellings of zero.
const EDGE_NUMBERS: &[&str] = &[
    "0",
    "-0",
    "0.0",
    "-0.0",
    "0e0",
    "-0E-5",
    "1E2",
    "1e+2",
    "0.1e1",
    "1.0",
    "9007199254740991",
    "9007199254740992",
    "9007199254740993",
    "-9007199254740993",
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775808",
    "-9223372036854775809",
    "18446744073709551615",
    "18446744073709551616",
    "123456789012345678901234567890",
    "1e400",
    "-1e309",
    "1.8e308",
    "1.7976931348623157e308",
    "1.7976931348623158e308",
    "1.7976931348623159e308",
    "179769313486231580793728971405303415079934132710037826936173778980444968292764750946649017977587207096330286416692887910946555547851940402630657488671505820681908902000708383676273854845817711531764475730270069855571366959622842914819860834936475292719074168444365510704342711559699508093042880177904174497791",
    "5e-324",
    "2.4703282292062327e-324",
    "2.4703282292062328e-324",
    "1e-400",
    "-1e-400",
    "0e99999999999999999999",
    "1e-99999999999999999999",
    "0.30000000000000004",
    "2.2250738585072011e-308",
    "2.2250738585072012e-308",
    "1.00000000000000011102230246251565404236316680908203125",
    "9007199254740993.0",
    "1e23",
    "8.41e21",
];

const KEYS: &[&str] = &[
    "a",
    "b",
    "id",
    "amount",
    "type",
    "",
    "a b",
    "é",
    "😀",
    "__proto__",
    "0",
    "1",
    "10",
];

struct Generator {
    rng: Rng,
}

impl Generator {
    fn space(&mut self, out: &mut String) {
        if self.rng.chance(15) {
            out.push_str(self.rng.pick(&[" ", "\n", "\t", "\r\n", "  "]));
        }
    }

    fn document(&mut self) -> String {
        let mut out = String::new();
        self.space(&mut out);
        if self.rng.chance(6) {
            self.chain(&mut out);
        } else {
            match self.rng.below(10) {
                0..=6 => self.object(0, &mut out),
                7 | 8 => self.array(0, &mut out),
                _ => self.scalar(&mut out),
            }
        }
        self.space(&mut out);
        out
    }

    /// Arrays and objects nested around the depth limit.
    fn chain(&mut self, out: &mut String) {
        let depth = json::MAX_DEPTH - 3 + self.rng.below(7);
        let mut closing = Vec::new();
        for _ in 0..depth {
            if self.rng.chance(50) {
                out.push('[');
                closing.push(']');
            } else {
                out.push_str(r#"{"k":"#);
                closing.push('}');
            }
        }
        self.scalar(out);
        while let Some(c) = closing.pop() {
            out.push(c);
        }
    }

    fn value(&mut self, depth: usize, out: &mut String) {
        self.space(out);
        match self.rng.below(10) {
            0 | 1 if depth < 6 => self.object(depth + 1, out),
            2 if depth < 6 => self.array(depth + 1, out),
            _ => self.scalar(out),
        }
        self.space(out);
    }

    fn array(&mut self, depth: usize, out: &mut String) {
        out.push('[');
        for i in 0..self.rng.below(5) {
            if i > 0 {
                out.push(',');
            }
            self.value(depth, out);
        }
        out.push(']');
    }

    fn object(&mut self, depth: usize, out: &mut String) {
        out.push('{');
        let mut keys: Vec<String> = Vec::new();
        for i in 0..self.rng.below(5) {
            if i > 0 {
                out.push(',');
            }
            self.space(out);
            let key = if !keys.is_empty() && self.rng.chance(8) {
                // The same key again, spelled the same or with escapes.
                let earlier = keys[self.rng.below(keys.len())].clone();
                if self.rng.chance(50) {
                    earlier
                } else {
                    escape_all(&earlier)
                }
            } else if self.rng.chance(60) {
                self.rng.pick(KEYS).to_string()
            } else {
                self.string_body()
            };
            out.push('"');
            out.push_str(&key);
            out.push('"');
            keys.push(key);
            self.space(out);
            out.push(':');
            self.value(depth, out);
        }
        out.push('}');
    }

    fn scalar(&mut self, out: &mut String) {
        match self.rng.below(20) {
            0 => out.push_str("null"),
            1 => out.push_str("true"),
            2 => out.push_str("false"),
            3..=10 => {
                out.push('"');
                let body = self.string_body();
                out.push_str(&body);
                out.push('"');
            }
            _ => {
                let number = self.number();
                out.push_str(&number);
            }
        }
    }

    /// The inside of a JSON string: raw characters and escapes of all kinds.
    fn string_body(&mut self) -> String {
        let mut out = String::new();
        for _ in 0..self.rng.below(10) {
            match self.rng.below(30) {
                0..=9 => out.push((b'a' + self.rng.below(26) as u8) as char),
                10 => out.push(' '),
                11 => out.push_str(
                    self.rng
                        .pick(&[r#"\""#, r"\\", r"\/", r"\b", r"\f", r"\n", r"\r", r"\t"]),
                ),
                12 => out.push_str(self.rng.pick(&["é", "ß", "中", "\u{202e}", "\u{ffff}"])),
                13 => out.push_str(self.rng.pick(&["😀", "𝄞", "\u{10ffff}"])),
                14 | 15 => {
                    // Any character but a surrogate, escaped, hex in either case.
                    let c = loop {
                        if let Some(c) = char::from_u32(self.rng.below(0xFFFF) as u32) {
                            break c;
                        }
                    };
                    out.push_str(&escape_char(c, self.rng.chance(50)));
                }
                16 => {
                    // A character beyond the BMP as an escaped surrogate pair.
                    let c = char::from_u32(0x10000 + self.rng.below(0x100000) as u32)
                        .expect("a scalar value");
                    out.push_str(&escape_char(c, self.rng.chance(50)));
                }
                17 => out.push_str(self.rng.pick(&[r"\u0000", r"\u001f", r"\u007F"])),
                18 if self.rng.chance(25) => {
                    // A surrogate that is not half of a pair.
                    let unit = 0xD800 + self.rng.below(0x800);
                    out.push_str(&format!("\\u{unit:04x}"));
                }
                _ => out.push((b'0' + self.rng.below(10) as u8) as char),
            }
        }
        out
    }

    fn number(&mut self) -> String {
        match self.rng.below(6) {
            0 => self.rng.pick(EDGE_NUMBERS).to_string(),
            1 => format!("{}", self.rng.next() as i64 >> self.rng.below(64)),
            2 => {
                // A long integer, of any length up to well past 64 bits.
                let mut digits = String::from(if self.rng.chance(30) { "-" } else { "" });
                digits.push((b'1' + self.rng.below(9) as u8) as char);
                for _ in 0..self.rng.below(40) {
                    digits.push((b'0' + self.rng.below(10) as u8) as char);
                }
                digits
            }
            3 => {
                // Any finite double, printed with more digits than it needs.
                let d = loop {
                    let d = f64::from_bits(self.rng.next());
                    if d.is_finite() {
                        break d;
                    }
                };
                format!("{:.*e}", 16 + self.rng.below(8), d)
            }
            _ => {
                // Decimal digits and an exponent, spelled every way JSON allows.
                let mut n = String::from(if self.rng.chance(30) { "-" } else { "" });
                if self.rng.chance(20) {
                    n.push('0');
                } else {
                    n.push((b'1' + self.rng.below(9) as u8) as char);
                    for _ in 0..self.rng.below(8) {
                        n.push((b'0' + self.rng.below(10) as u8) as char);
                    }
                }
                if self.rng.chance(60) {
                    n.push('.');
                    for _ in 0..1 + self.rng.below(20) {
                        n.push((b'0' + self.rng.below(10) as u8) as char);
                    }
                }
                if self.rng.chance(60) {
                    n.push_str(self.rng.pick(&["e", "E", "e+", "E-", "e-"]));
                    n.push_str(&self.rng.below(330).to_string());
                }
                n
            }
        }
    }
}

fn escape_char(c: char, upper: bool) -> String {
    let mut units = [0u16; 2];
    c.encode_utf16(&mut units)
        .iter()
        .map(|u| {
            if upper {
                format!("\\u{u:04X}")
            } else {
                format!("\\u{u:04x}")
            }
        })
        .collect()
}

/// `key` (the inside of a JSON string) with its plain characters escaped:
/// the same key, spelled differently.
fn escape_all(key: &str) -> String {
    let mut out = String::new();
    let mut chars = key.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            // Keep an escape as it is.
            out.push(c);
            let next = chars.next().expect("escapes are complete");
            out.push(next);
            if next == 'u' {
                out.extend(chars.by_ref().take(4));
            }
        } else {
            out.push_str(&escape_char(c, false));
        }
    }
    out
}

/// The canonical form of a decoded value (see the module documentation).
pub(crate) fn canonical(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => match (n.as_u64(), n.as_i64(), n.as_f64()) {
            (Some(u), _, _) => out.push_str(&u.to_string()),
            (_, Some(i), _) => out.push_str(&i.to_string()),
            (_, _, Some(d)) => out.push_str(&canonical_double(d)),
            _ => unreachable!("a JSON number is u64, i64 or f64"),
        },
        Value::String(s) => out.push_str(&canonical_string(s)),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        Value::Object(members) => {
            let mut members: Vec<(String, &Value)> = members
                .iter()
                .map(|(k, v)| (canonical_string(k), v))
                .collect();
            members.sort_by(|a, b| a.0.cmp(&b.0));
            out.push('{');
            for (i, (key, value)) in members.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(key);
                out.push(':');
                write_canonical(value, out);
            }
            out.push('}');
        }
    }
}

fn canonical_string(s: &str) -> String {
    let mut out = String::from("\"");
    for unit in s.encode_utf16() {
        match unit {
            0x22 => out.push_str("\\\""),
            0x5C => out.push_str("\\\\"),
            0x20..=0x7E => out.push(unit as u8 as char),
            _ => out.push_str(&format!("\\u{unit:04x}")),
        }
    }
    out.push('"');
    out
}

fn canonical_double(d: f64) -> String {
    if d.trunc() == d && d.abs() < 18_446_744_073_709_551_616.0 {
        return (d as i128).to_string();
    }
    decimal_form(&format!("{d:e}"))
}

/// A number printed in any decimal notation, as `[-]DIGITSeEXP` with no
/// leading or trailing zeros in the digits.
fn decimal_form(text: &str) -> String {
    let (sign, rest) = match text.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", text),
    };
    let (mantissa, exponent) = match rest.find(['e', 'E']) {
        Some(i) => (&rest[..i], rest[i + 1..].parse::<i64>().expect("exponent")),
        None => (rest, 0),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let mut digits = format!("{whole}{fraction}");
    let mut exponent = exponent - fraction.len() as i64;
    digits = digits.trim_start_matches('0').to_string();
    while digits.ends_with('0') {
        digits.pop();
        exponent += 1;
    }
    format!("{sign}{digits}e{exponent}")
}

/// The verdict on one document, as a line of the corpus file.
fn verdict(text: &str) -> Value {
    match json::check(text) {
        Ok(()) => {
            let event = prism_guest::Event {
                position: 1,
                stream_id: "corpus".into(),
                stream_version: 0,
                event_type: "Corpus".into(),
                data: text.to_string(),
                metadata: "{}".into(),
                recorded_at: 0,
                id: String::new(),
            };
            let value: Value = event
                .data()
                .unwrap_or_else(|e| panic!("accepted, yet the Rust SDK cannot decode {text}: {e}"));
            serde_json::json!({"text": text, "accepted": true, "canonical": canonical(&value)})
        }
        Err(problem) => {
            serde_json::json!({"text": text, "accepted": false, "refusal": problem.to_string()})
        }
    }
}

fn corpus(seed: u64, documents: usize) -> Vec<Value> {
    let mut generator = Generator { rng: Rng(seed) };
    (0..documents)
        .map(|_| verdict(&generator.document()))
        .collect()
}

const SEED: u64 = 0x4a53_4f4e;
const CORPUS_SIZE: usize = 500;
const CORPUS_FILE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../tests/data/json-corpus.jsonl"
);

#[test]
fn the_committed_corpus_is_what_the_generator_and_the_rust_sdk_give() {
    let lines: Vec<String> = corpus(SEED, CORPUS_SIZE)
        .iter()
        .map(Value::to_string)
        .collect();
    let generated = lines.join("\n") + "\n";
    if std::env::var_os("PRISM_UPDATE_CORPUS").is_some() {
        std::fs::write(CORPUS_FILE, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(CORPUS_FILE).unwrap_or_default();
    if committed != generated {
        let first = committed
            .lines()
            .zip(generated.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(committed.lines().count().min(lines.len()));
        panic!(
            "tests/data/json-corpus.jsonl differs from what the generator gives, first at line {}:\n\
             committed: {:.300}\ngenerated: {:.300}\n\
             rerun with PRISM_UPDATE_CORPUS=1 cargo test -p prism --lib json_corpus and commit the file",
            first + 1,
            committed.lines().nth(first).unwrap_or("(nothing)"),
            generated.lines().nth(first).unwrap_or("(nothing)"),
        );
    }
}

#[test]
fn the_corpus_covers_every_rule_on_both_sides() {
    let corpus = corpus(SEED, CORPUS_SIZE);
    let refusals: Vec<&str> = corpus
        .iter()
        .filter_map(|v| v["refusal"].as_str())
        .collect();
    for words in ["duplicate key", "lone surrogate", "nested deeper", "range"] {
        assert!(
            refusals.iter().filter(|r| r.contains(words)).count() >= 3,
            "fewer than 3 documents refused for {words:?}"
        );
    }
    let accepted = corpus.len() - refusals.len();
    assert!(accepted >= corpus.len() / 2, "{accepted} accepted");
    let texts: Vec<&str> = corpus
        .iter()
        .filter(|v| v["accepted"] == true)
        .map(|v| v["text"].as_str().unwrap())
        .collect();
    for spelling in [r"\ud", r"\u00", "😀", "e-", "e+", "E-", "-0"] {
        assert!(
            texts.iter().any(|t| t.contains(spelling)),
            "no accepted document has {spelling:?}"
        );
    }
    assert!(
        texts
            .iter()
            .any(|t| t.matches(['[', '{']).count() >= json::MAX_DEPTH),
        "no accepted document is nested to the limit"
    );
}

#[test]
fn every_accepted_document_decodes_and_every_refusal_has_a_known_reason() {
    // Many more documents than the corpus holds: the verdict itself panics if
    // an accepted document does not decode in the Rust SDK.
    for seed in 1..=8 {
        for line in corpus(seed, 2_000) {
            if let Some(refusal) = line["refusal"].as_str() {
                assert!(
                    ["duplicate key", "lone surrogate", "nested deeper", "range"]
                        .iter()
                        .any(|words| refusal.contains(words)),
                    "{refusal}: {}",
                    line["text"]
                );
            }
        }
    }
}

#[test]
fn canonical_numbers_are_decimal_when_exact_and_shortest_digits_otherwise() {
    let canon = |text: &str| canonical(&serde_json::from_str(text).unwrap());
    assert_eq!(canon("-0"), "0");
    assert_eq!(canon("1.0"), "1");
    assert_eq!(canon("1e19"), "10000000000000000000");
    assert_eq!(canon("1e20"), "1e20");
    assert_eq!(canon("18446744073709551615"), "18446744073709551615");
    assert_eq!(canon("18446744073709551616"), "18446744073709552e3");
    assert_eq!(canon("-9223372036854775809"), "-9223372036854775808");
    assert_eq!(canon("1.5"), "15e-1");
    assert_eq!(canon("-1e-7"), "-1e-7");
    assert_eq!(canon("1.7976931348623157e308"), "17976931348623157e292");
    assert_eq!(
        canon(r#"{"b":1,"a":"é😀\"\\"}"#),
        r#"{"a":"\u00e9\ud83d\ude00\"\\","b":1}"#
    );
}
