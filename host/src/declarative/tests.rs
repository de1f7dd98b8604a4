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
fn a_json_file_is_a_view_file_too() {
    let spec = compile(
        r#"{"key": "{stream}", "on": {"Deposited": {"add": {"balance": "{data.amount}"}}}}"#,
    )
    .unwrap();
    assert_eq!(spec.event_types, ["Deposited"]);
    let _: Value = json!(null);
}
