//! View files compiled and applied to batches, without a server.

use serde_json::{Value, json};

use super::spec::compile;

#[test]
fn errors_point_at_the_line_and_field() {
    let cases = [
        (
            "on:\n  Deposited:\n    add:\n      balance: \"{data.amount\"\n",
            (4, "on.Deposited.add.balance"),
        ),
        (
            "key: \"{stream}\"\non:\n  Deposited:\n    ad:\n      x: 1\n",
            (4, "unknown field"),
        ),
        (
            "on:\n  Deposited:\n    key: \"{nowhere.x}\"\n    set: {a: 1}\n",
            (3, "on.Deposited.key"),
        ),
        (
            "on:\n  A:\n    each: {index: nope, where: {x: 1}}\n    set: {a: 1}\n",
            (3, "no index"),
        ),
        ("on:\n  A:\n    set: {a: 1}\n", (3, "no key")),
        (
            "key: k\non:\n  A:\n    when: {data.x: {bigger: 1}}\n    set: {a: 1}\n",
            (4, "on.A.when.data.x"),
        ),
    ];
    for (text, (line, mentions)) in cases {
        let error = compile(text).unwrap_err();
        assert_eq!(error.at.map(|(l, _)| l), Some(line), "{text}: {error}");
        assert!(error.to_string().contains(mentions), "{text}: {error}");
    }
}

#[test]
fn content_without_a_name_is_told_apart_by_its_first_line() {
    use super::Kind;
    assert_eq!(Kind::of(b"\0asm\x0d\0\x01\0"), Kind::Component);
    assert_eq!(Kind::of(b"not wasm"), Kind::Component);
    assert_eq!(Kind::of(b"\xff\xfe"), Kind::Component);
    assert_eq!(
        Kind::of(b"# balances\n\nkey: \"{stream}\"\n"),
        Kind::ViewFile
    );
    assert_eq!(Kind::of(b"  {\"key\": 1}"), Kind::ViewFile);
    assert_eq!(Kind::of(b"---\nkey: x\n"), Kind::ViewFile);
    assert_eq!(Kind::of(b"\"on\": {}\n"), Kind::ViewFile);
    assert_eq!(Kind::extension(b"{\"key\": 1}"), "view.json");
    assert_eq!(Kind::extension(b"key: 1"), "view.yaml");
    assert_eq!(Kind::of_file("a.view.yml"), Some(Kind::ViewFile));
    assert_eq!(Kind::of_file("a.wasm"), Some(Kind::Component));
    assert_eq!(Kind::of_file("a.yaml"), None);
}

#[test]
fn a_json_file_is_a_view_file_too() {
    let spec = compile(
        r#"{"key": "{stream}", "on": {"Deposited": {"add": {"balance": "{data.amount}"}}}}"#,
    )
    .unwrap();
    assert_eq!(spec.event_types, ["Deposited"]);
    let _: Value = json!(null);
}

/// Apply `view` to `events` (type, stream, data) in one batch against a
/// fresh keyspace; the committed documents, or the failing event and why.
fn apply(
    view: &str,
    keys: &[&str],
    events: &[(&str, &str, Value)],
) -> Result<Vec<(String, Value)>, (u32, String)> {
    let events: Vec<(&str, &str, String)> = events
        .iter()
        .map(|(event_type, stream, data)| (*event_type, *stream, data.to_string()))
        .collect();
    apply_text(view, keys, &events)
}

/// [`apply`] with each event's data as JSON text, as the log holds it.
fn apply_text(
    view: &str,
    keys: &[&str],
    events: &[(&str, &str, String)],
) -> Result<Vec<(String, Value)>, (u32, String)> {
    use crate::projector::Projection;
    use crate::runtime::PluginLimits;
    use crate::runtime::bindings::Event;
    use crate::views::{ChangeLog, Transaction};

    let dir = tempfile::tempdir().unwrap();
    let (_, views) = crate::server::open_stores(dir.path()).unwrap();
    let keyspace = views.keyspace("p", "g").unwrap();
    let projection =
        super::ViewProjection::compile(view.as_bytes(), PluginLimits::default()).unwrap();
    let mut handler = projection.handler(&keyspace).unwrap();
    let batch: Vec<Event> = events
        .iter()
        .enumerate()
        .map(|(i, (event_type, stream, data))| Event {
            position: i as u64 + 1,
            stream_id: stream.to_string(),
            stream_version: 0,
            event_type: event_type.to_string(),
            data: data.clone(),
            metadata: "{}".into(),
            recorded_at: 1_704_153_600_000,
            id: format!("id-{i}"),
        })
        .collect();
    let mut txn = Transaction::new();
    if let Err(e) = handler.handle(&batch, &mut txn).unwrap() {
        return Err((e.index.unwrap(), e.message));
    }
    keyspace
        .commit(
            &txn,
            &[],
            crate::log::Position(batch.len() as u64),
            ChangeLog::Off,
        )
        .unwrap();
    let mut docs = Vec::new();
    for key in keys {
        if let Some(text) = keyspace.get(key).unwrap() {
            docs.push((key.to_string(), serde_json::from_str(&text).unwrap()));
        }
    }
    Ok(docs)
}

#[test]
fn operations_change_documents_as_written() {
    let view = r#"
key: "{data.k}"
on:
  Tick:
    defaults: {first: "{position}"}
    set: {last: "{position}", day: "{time|day}"}
    add: {n: 1}
    min: {low: "{data.v}"}
    max: {high: "{data.v}"}
    append: {recent: {value: "{data.v}", max: 2}, all: {value: {v: "{data.v}"}}}
    average: {mean: "{data.v}"}
  Drop:
    remove: {all: {where: v, equals: "{data.v}"}}
  Gone:
    delete: true
"#;
    let tick = |k: &str, v: i64| ("Tick", "s", json!({"k": k, "v": v}));
    let docs = apply(
        view,
        &["a", "b"],
        &[
            tick("a", 5),
            tick("a", 2),
            tick("a", 9),
            ("Drop", "s", json!({"k": "a", "v": 2})),
            tick("b", 1),
            ("Gone", "s", json!({"k": "b"})),
        ],
    )
    .unwrap();
    assert_eq!(
        docs,
        [(
            "a".to_string(),
            json!({
                "first": 1, "last": 3, "day": "2024-01-02", "n": 3, "low": 2, "high": 9,
                "recent": [2, 9], "all": [{"v": 5}, {"v": 9}],
                "mean": {"count": 3, "sum": 16, "mean": 16.0 / 3.0}
            })
        )]
    );
}

#[test]
fn conditions_skip_updates_and_requirements_fail_the_event() {
    let view = r#"
key: "{stream}"
on:
  Set:
    when: {data.x: {gt: 10}, stream.category: a}
    set: {x: "{data.x}"}
  Take:
    require: {doc.x: {gte: "{data.x}"}}
    subtract: {x: "{data.x}"}
"#;
    let docs = apply(
        view,
        &["a-1", "b-1"],
        &[
            ("Set", "a-1", json!({"x": 5})),
            ("Set", "b-1", json!({"x": 50})),
            ("Set", "a-1", json!({"x": 20})),
            ("Take", "a-1", json!({"x": 15})),
        ],
    );
    assert_eq!(docs.unwrap(), [("a-1".to_string(), json!({"x": 5}))]);
    let failed = apply(
        view,
        &["a-1"],
        &[
            ("Set", "a-1", json!({"x": 20})),
            ("Take", "a-1", json!({"x": 21})),
        ],
    )
    .unwrap_err();
    assert_eq!(failed.0, 1);
    assert!(
        failed.1.contains("require doc.x is not met"),
        "{}",
        failed.1
    );
    let failed = apply(view, &["a-1"], &[("Set", "a-1", json!({"x": "many"}))]);
    // A string is not greater than 10: the update is skipped, not failed.
    assert_eq!(failed.unwrap(), []);
    // A missing value does not meet a condition, and is an error where needed.
    assert_eq!(
        apply(view, &["a-1"], &[("Set", "a-1", json!({"y": 1}))]).unwrap(),
        []
    );
    let failed = apply(
        view,
        &["a-1"],
        &[
            ("Set", "a-1", json!({"x": 20})),
            ("Take", "a-1", json!({"y": 1})),
        ],
    )
    .unwrap_err();
    assert_eq!(failed.0, 1);
    assert!(failed.1.contains("data.x is missing"), "{}", failed.1);
}

/// A view parses only the members of the data it reads, and still refuses
/// data that is not JSON, in the members it skips too.
#[test]
fn only_the_members_read_are_parsed_and_the_rest_must_still_be_json() {
    let view = r#"
key: "{stream}"
on:
  Put:
    when: {data.keep: {exists: true}}
    set: {keep: "{data.keep}", deep: "{data.nested.x?}"}
  Whole:
    set: {data: "{data}"}
"#;
    let put = |data: &str| ("Put", "s", data.to_string());
    let docs = apply_text(
        view,
        &["s"],
        &[put(
            r#"{"skip": [1, {"a": "\u00e9\"x"}], "ke\u0079": 1, "keep": {"v": [true, null, 2.5]},
                "nested": {"x": "y", "z": 1}, "big": 18446744073709551615, "neg": -1}"#,
        )],
    )
    .unwrap();
    assert_eq!(
        docs,
        [(
            "s".to_string(),
            json!({"keep": {"v": [true, null, 2.5]}, "deep": "y"})
        )]
    );
    // An escaped name is the member it spells; of two, the last wins.
    let docs = apply_text(view, &["s"], &[put(r#"{"kee\u0070": 3}"#)]).unwrap();
    assert_eq!(docs, [("s".to_string(), json!({"keep": 3, "deep": null}))]);
    let docs = apply_text(view, &["s"], &[put(r#"{"kee\u0070": 1, "keep": 2}"#)]).unwrap();
    assert_eq!(docs, [("s".to_string(), json!({"keep": 2, "deep": null}))]);
    // Data that is not an object is read whole (and has no member `keep`).
    assert_eq!(apply_text(view, &["s"], &[put("[1, 2]")]).unwrap(), []);
    for bad in [
        r#"{"skip": [1,, 2], "keep": 1}"#,
        r#"{"keep": 1} trailing"#,
        "{",
    ] {
        let (index, message) = apply_text(view, &["s"], &[put(bad)]).unwrap_err();
        assert_eq!(index, 0);
        assert!(message.contains("not JSON"), "{bad}: {message}");
    }
    // A view that reads the data whole gets every member.
    let whole = json!({"a": 1, "b": {"c": [2]}});
    let docs = apply(view, &["s"], &[("Whole", "s", whole.clone())]).unwrap();
    assert_eq!(docs, [("s".to_string(), json!({"data": whole}))]);
}
