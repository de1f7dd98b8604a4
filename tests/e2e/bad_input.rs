//! Bad input gets a JSON error with the right status, and a bad append
//! appends nothing.

use serde_json::{Value, json};

use crate::common::TestServer;

async fn refused(server: &TestServer, path: &str, body: &str, status: u16, code: &str) {
    let (got, reply) = server.post_raw(path, body.to_string()).await;
    assert_eq!(got, status, "{body:.80} → {reply}");
    assert_eq!(reply["error"]["code"], code, "{body:.80} → {reply}");
    assert!(
        reply["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty())
    );
}

#[tokio::test]
async fn every_bad_append_is_refused_and_changes_nothing() {
    let server = TestServer::start_with(&["--max-body-bytes", "65536"]).await;
    server.append("good", &[("Created", json!({}))]).await;

    let ok_event = r#"{"events":[{"type":"E","data":{}}]}"#;
    refused(
        &server,
        "/streams/s/events",
        r#"{"events":[{"type":"E","#,
        400,
        "invalid_json",
    )
    .await;
    refused(
        &server,
        "/streams/s/events",
        "not json at all",
        400,
        "invalid_json",
    )
    .await;
    refused(
        &server,
        "/streams/s/events",
        r#"{"events":[{"data":{}}]}"#,
        400,
        "invalid_event",
    )
    .await;
    refused(
        &server,
        "/streams/s/events",
        r#"{"events":[]}"#,
        400,
        "invalid_request",
    )
    .await;
    refused(
        &server,
        "/streams/s/events",
        r#"{"evnts":[]}"#,
        400,
        "invalid_request",
    )
    .await;
    refused(
        &server,
        "/streams/s/events",
        r#"{"events":[{"type":""}]}"#,
        400,
        "invalid_request",
    )
    .await;
    let long_type = format!(r#"{{"events":[{{"type":"{}"}}]}}"#, "T".repeat(257));
    refused(
        &server,
        "/streams/s/events",
        &long_type,
        400,
        "invalid_request",
    )
    .await;
    refused(
        &server,
        "/streams/s/events",
        r#"{"events":[{"type":"A\u0007B"}]}"#,
        400,
        "invalid_request",
    )
    .await;
    let long_stream = format!("/streams/{}/events", "s".repeat(257));
    refused(&server, &long_stream, ok_event, 400, "invalid_request").await;
    refused(
        &server,
        "/streams/a%0Ab/events",
        ok_event,
        400,
        "invalid_request",
    )
    .await;
    refused(
        &server,
        "/streams/s/events",
        r#"{"events":[{"type":"E","metadata":[1]}]}"#,
        400,
        "invalid_event",
    )
    .await;
    refused(
        &server,
        "/streams/s/events",
        r#"{"events":[{"type":"E","id":"nope"}]}"#,
        400,
        "invalid_event",
    )
    .await;
    refused(
        &server,
        "/streams/s/events",
        r#"{"events":[{"type":"E"}],"expected_version":"sometimes"}"#,
        400,
        "invalid_expected_version",
    )
    .await;
    refused(
        &server,
        "/streams/s/events",
        r#"{"events":[{"type":"E"}],"expected_version":-1}"#,
        400,
        "invalid_expected_version",
    )
    .await;
    refused(
        &server,
        "/streams/good/events",
        r#"{"events":[{"type":"E"}],"expected_version":5}"#,
        409,
        "wrong_expected_version",
    )
    .await;
    let big = format!(
        r#"{{"events":[{{"type":"E","data":"{}"}}]}}"#,
        "x".repeat(70_000)
    );
    refused(&server, "/streams/s/events", &big, 413, "body_too_large").await;
    // A batch where only the last event is bad appends none of them.
    refused(
        &server,
        "/streams/s/events",
        r#"{"events":[{"type":"A"},{"type":"B"},{"data":1}]}"#,
        400,
        "invalid_event",
    )
    .await;

    assert_eq!(server.head().await, 1);
    let log = server.get_ok("/events").await;
    assert_eq!(log["events"].as_array().unwrap().len(), 1);
    let (status, _) = server.get("/streams/s/events").await;
    assert_eq!(status, 404, "nothing reached stream s");
}

#[tokio::test]
async fn unknown_routes_and_bad_read_parameters_answer_json() {
    let server = TestServer::start().await;
    let (status, body) = server.get("/nope").await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "no_route");
    let (status, body) = server.get("/events?limit=0").await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], "invalid_limit");
    let (status, body): (u16, Value) = server.get("/events?from_position=abc").await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "invalid_parameter");
}

#[tokio::test]
async fn wrong_methods_and_undecodable_paths_answer_json() {
    let server = TestServer::start().await;
    for (method, path, allowed) in [
        ("DELETE", "/events", "GET,HEAD,POST"),
        ("PUT", "/streams/s/events", "GET,HEAD,POST"),
        ("POST", "/healthz", "GET,HEAD"),
        ("POST", "/views/p/k", "GET,HEAD"),
        ("PATCH", "/plugins/p", "DELETE,GET,HEAD,PUT"),
    ] {
        let response = server
            .http
            .request(method.parse().unwrap(), server.url(path))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 405, "{method} {path}");
        let allow = response.headers()["allow"].to_str().unwrap().to_string();
        let mut allow: Vec<&str> = allow.split(',').map(str::trim).collect();
        allow.sort();
        assert_eq!(allow.join(","), allowed, "{method} {path}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(
            body["error"]["code"], "method_not_allowed",
            "{method} {path}"
        );
        assert!(body["error"]["message"].is_string());
    }

    for path in ["/views/p/%FF", "/plugins/%FF%FE", "/streams/%C3%28/events"] {
        let (status, body) = server.get(path).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert_eq!(body["error"]["code"], "invalid_path", "{path}: {body}");
        assert!(body["error"]["message"].is_string(), "{path}: {body}");
    }
}
