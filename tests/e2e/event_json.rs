//! The JSON of `data` and `metadata`: what no reader can take the same way is
//! refused at the append with the event and the path, and what is accepted
//! reads back exactly as it was sent.

use serde_json::json;

use crate::common::{RawPage, TestServer};

fn nested(levels: usize) -> String {
    format!("{}1{}", "[".repeat(levels), "]".repeat(levels))
}

/// An append body whose events carry these `data` and `metadata` texts.
fn body(events: &[(&str, Option<&str>)]) -> String {
    let events: Vec<String> = events
        .iter()
        .map(|(data, metadata)| match metadata {
            Some(m) => format!(r#"{{"type":"T","data":{data},"metadata":{m}}}"#),
            None => format!(r#"{{"type":"T","data":{data}}}"#),
        })
        .collect();
    format!(r#"{{"events":[{}]}}"#, events.join(","))
}

#[tokio::test]
async fn payloads_readers_would_disagree_on_are_refused_naming_event_and_path() {
    let server = TestServer::start().await;
    let deep = nested(100_000);
    let too_deep = nested(65);
    // The 65th array: the first one past the limit.
    let deepest_path = format!("${}", "[0]".repeat(64));
    let cases: Vec<(String, usize, &str, &str, &str)> = vec![
        // (body, event index, field, path, words in the message)
        (
            body(&[("{}", None), (r#"{"amount": 1, "amount": 1000000}"#, None)]),
            1,
            "data",
            "$.amount",
            "duplicate key",
        ),
        (
            body(&[(
                r#"{"a": {"b": [{"x": 1}, {"x": 1, "y": 2, "x": 3}]}}"#,
                None,
            )]),
            0,
            "data",
            "$.a.b[1].x",
            "duplicate key",
        ),
        (
            body(&[(r#"{"a": 1, "\u0061": 2}"#, None)]),
            0,
            "data",
            "$.a",
            "duplicate key",
        ),
        (
            body(&[("{}", Some(r#"{"user": "u1", "trace": {"id": 1, "id": 2}}"#))]),
            0,
            "metadata",
            "$.trace.id",
            "duplicate key",
        ),
        (
            body(&[(r#"{"name": "\ud800"}"#, None)]),
            0,
            "data",
            "$.name",
            "surrogate",
        ),
        (
            body(&[(r#"["ok", "\udc00\ud800"]"#, None)]),
            0,
            "data",
            "$[1]",
            "surrogate",
        ),
        (
            body(&[(r#"{"\ud800x": 1}"#, None)]),
            0,
            "data",
            "$",
            "surrogate",
        ),
        (
            body(&[("{}", None), ("{}", None), (&too_deep, None)]),
            2,
            "data",
            &deepest_path,
            "64",
        ),
        (body(&[(&deep, None)]), 0, "data", &deepest_path, "64"),
        (
            body(&[(r#"{"big": [1, 1e400]}"#, None)]),
            0,
            "data",
            "$.big[1]",
            "range",
        ),
        (
            body(&[(&format!(r#"{{"n": -{}}}"#, "9".repeat(400)), None)]),
            0,
            "data",
            "$.n",
            "range",
        ),
    ];
    for (request, index, field, path, words) in &cases {
        let (status, reply) = server.post_raw("/streams/s/events", request.clone()).await;
        assert_eq!(status, 400, "{request:.200} → {reply}");
        let error = &reply["error"];
        assert_eq!(error["code"], "invalid_event", "{reply}");
        assert_eq!(error["event_index"], json!(index), "{reply}");
        assert_eq!(error["field"], json!(field), "{reply}");
        assert_eq!(error["path"].as_str(), Some(*path), "{reply}");
        let message = error["message"].as_str().unwrap();
        assert!(message.contains(words), "{message}");
        assert!(
            message.starts_with(&format!("event {index}: {field} at {path}")),
            "{message}"
        );
    }
    assert_eq!(server.head().await, 0, "nothing was appended");
}

#[tokio::test]
async fn accepted_payloads_read_back_byte_for_byte() {
    let server = TestServer::start().await;
    let deepest = format!("{{\"deep\": {}}}", nested(63));
    let sent: Vec<(String, String)> = [
        (r#"{"owner":"ann"}"#, "{}"),
        (
            r#"{ "spaced" : [ 1 , 2 ] ,"tab":	true }"#,
            r#"{ "user" : "u1" }"#,
        ),
        (
            r#"[123456789012345678901234567890, 18446744073709551616, -9223372036854775809]"#,
            "{}",
        ),
        (
            r#"[1e-400, -0, -0.0, 1E2, 0.1e1, 1.0, 1.5e+300, 0e99999999999999999999]"#,
            "{}",
        ),
        (
            r#""\ud83d\ude00 é \u00e9 \u00E9 \"q\" \\ \/ \u0000 \n""#,
            r#"{"emoji":"😀","escaped":"\uD83D\uDE00"}"#,
        ),
        (r#"{"":0,"a":{"":1},"b":[[],{}]}"#, "{}"),
        (&deepest, "{}"),
        ("null", "{}"),
        ("-12.5e-3", "{}"),
    ]
    .into_iter()
    .map(|(d, m)| (d.to_string(), m.to_string()))
    .collect();
    for (data, metadata) in &sent {
        let (status, reply) = server
            .post_raw("/streams/kept/events", body(&[(data, Some(metadata))]))
            .await;
        assert_eq!(status, 201, "{data:.100} → {reply}");
    }
    let check = |page: RawPage| {
        assert_eq!(page.events.len(), sent.len());
        for (event, (data, metadata)) in page.events.iter().zip(&sent) {
            assert_eq!(event.data.get(), data, "data at {}", event.position);
            assert_eq!(
                event.metadata.get(),
                metadata,
                "metadata at {}",
                event.position
            );
        }
    };
    let (status, text) = server.get_text("/events").await;
    assert_eq!(status, 200);
    check(RawPage::parse(&text));
    let (status, text) = server.get_text("/streams/kept/events").await;
    assert_eq!(status, 200);
    check(RawPage::parse(&text));
}
