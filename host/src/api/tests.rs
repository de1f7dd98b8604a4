//! The HTTP API called in-process: the router of a real [`App`] (real
//! RocksDB in a temporary directory, real plugin manager) driven with
//! `oneshot`, no socket and no process. The error contract lives here —
//! bad input gets a JSON error with the right status and changes nothing;
//! the end-to-end suite keeps what needs the real binary (restarts, kills,
//! plugins compiled and run, clients on sockets).

use axum::body::Body;
use axum::http::{HeaderMap, Request};
use serde_json::{Value, json};
use std::time::Duration;

use tower::ServiceExt;

use crate::api::routes::{Place, ROUTES, Route, Scope};
use crate::config::Config;
use crate::server::App;

struct Api {
    app: App,
    _dir: tempfile::TempDir,
}

impl Api {
    async fn open(tweak: impl FnOnce(&mut Config)) -> Api {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config {
            data: dir.path().join("data"),
            plugins: dir.path().join("plugins"),
            ..Default::default()
        };
        std::fs::create_dir_all(&config.plugins).unwrap();
        tweak(&mut config);
        let app = App::open(&config).await.unwrap();
        Api { app, _dir: dir }
    }

    async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<String>,
    ) -> (u16, HeaderMap, Value) {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header("content-type", "application/json")
            .body(body.map_or_else(Body::empty, Body::from))
            .unwrap();
        let response = self.app.router.clone().oneshot(request).await.unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (status, headers, body)
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        let (status, _, body) = self.call("GET", path, None).await;
        (status, body)
    }

    async fn get_ok(&self, path: &str) -> Value {
        let (status, body) = self.get(path).await;
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    async fn post_raw(&self, path: &str, body: String) -> (u16, Value) {
        let (status, _, body) = self.call("POST", path, Some(body)).await;
        (status, body)
    }

    async fn append(&self, stream: &str, events: &[(&str, Value)]) -> Value {
        let events: Vec<Value> = events
            .iter()
            .map(|(t, d)| json!({"type": t, "data": d}))
            .collect();
        let (status, body) = self
            .post_raw(
                &format!("/streams/{stream}/events"),
                json!({ "events": events }).to_string(),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        body
    }

    async fn head(&self) -> u64 {
        self.get_ok("/healthz").await["head"].as_u64().unwrap()
    }
}

async fn refused(server: &Api, path: &str, body: &str, status: u16, code: &str) {
    let (got, reply) = server.post_raw(path, body.to_string()).await;
    assert_eq!(got, status, "{body:.80} → {reply}");
    assert_eq!(reply["error"]["code"], code, "{body:.80} → {reply}");
    assert!(
        reply["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_append_is_refused_and_changes_nothing() {
    let server = Api::open(|c| c.max_body_bytes = 65536).await;
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
    // An array is not read as the object's fields in order.
    for not_an_object in [
        r#"[{"type":"E","data":{}}]"#,
        r#" [[{"type":"E","data":{}}]]"#,
        "null",
        "7",
    ] {
        let (got, reply) = server
            .post_raw("/streams/s/events", not_an_object.to_string())
            .await;
        assert_eq!(got, 400, "{not_an_object} → {reply}");
        assert_eq!(reply["error"]["code"], "invalid_request");
        assert!(
            reply["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with("the body must be a JSON object, not "),
            "{reply}"
        );
    }
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expected_version_is_a_whole_number_however_it_is_written() {
    let server = Api::open(|_| {}).await;
    server.append("s", &[("A", json!({}))]).await;
    // 0 and 0.0 are the same JSON number: the stream is at version 0.
    let (status, body) = server
        .post_raw(
            "/streams/s/events",
            r#"{"events":[{"type":"B"}],"expected_version":0.0}"#.into(),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["stream_version"], 1);
    let (status, body) = server
        .post_raw(
            "/events",
            r#"{"events":[{"stream":"s","type":"C"}],"expected_versions":{"s":1e0}}"#.into(),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    for (version, code) in [
        ("2.5", "invalid_expected_version"),
        ("-0.5", "invalid_expected_version"),
        // A double this big is not exact: it could name a version it was rounded to.
        ("1e19", "invalid_expected_version"),
        ("5.0", "wrong_expected_version"),
    ] {
        let (status, body) = server
            .post_raw(
                "/streams/s/events",
                format!(r#"{{"events":[{{"type":"D"}}],"expected_version":{version}}}"#),
            )
            .await;
        let expected = if code == "wrong_expected_version" {
            409
        } else {
            400
        };
        assert_eq!(status, expected, "{version}: {body}");
        assert_eq!(body["error"]["code"], code, "{version}: {body}");
    }
    assert_eq!(server.head().await, 3, "nothing refused was appended");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_id_of_null_is_no_id() {
    let server = Api::open(|_| {}).await;
    let (status, body) = server
        .post_raw(
            "/streams/s/events",
            r#"{"events":[{"type":"A","id":null,"metadata":null,"data":null}]}"#.into(),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let log = server.get_ok("/events").await;
    let event = &log["events"][0];
    assert!(
        event["id"].as_str().is_some_and(|id| id.len() == 36),
        "{event}"
    );
    assert_eq!(event["data"], Value::Null);
    assert_eq!(event["metadata"], json!({}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_view_file_handling_an_event_type_the_log_refuses_is_refused() {
    let server = Api::open(|_| {}).await;
    for event_type in ["", "Deposited\u{7}"] {
        let file = json!({"key": "{stream}", "on": {event_type: {"set": {"seen": true}}}});
        let (status, _, body) = server
            .call("PUT", "/plugins/typo", Some(file.to_string()))
            .await;
        assert_eq!(status, 422, "{event_type:?}: {body}");
        assert_eq!(body["error"]["code"], "invalid_plugin");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("on: event type")),
            "{body}"
        );
    }
    let (status, body) = server.get("/plugins/typo").await;
    assert_eq!(status, 404, "nothing was installed: {body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_that_does_not_load_leaves_nothing_behind_once_refused() {
    let server = Api::open(|_| {}).await;
    for round in 0..20 {
        let (status, _, body) = server
            .call("PUT", "/plugins/junk", Some("\0asm not a component".into()))
            .await;
        assert_eq!(status, 422, "{body}");
        // Read right after the answer: the refusal is already visible.
        let (status, body) = server.get("/plugins/junk").await;
        assert_eq!(status, 404, "round {round}: {body}");
        let listed = server.get_ok("/plugins").await;
        assert_eq!(listed["plugins"], json!([]), "round {round}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_routes_and_bad_read_parameters_answer_json() {
    let server = Api::open(|_| {}).await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_methods_and_undecodable_paths_answer_json() {
    let server = Api::open(|_| {}).await;
    for (method, path, allowed) in [
        ("DELETE", "/events", "GET,HEAD,POST"),
        ("PUT", "/streams/s/events", "GET,HEAD,POST"),
        ("POST", "/healthz", "GET,HEAD"),
        ("POST", "/views/p/k", "GET,HEAD"),
        ("PATCH", "/plugins/p", "DELETE,GET,HEAD,PUT"),
    ] {
        let (status, headers, body) = server.call(method, path, None).await;
        assert_eq!(status, 405, "{method} {path}");
        let allow = headers["allow"].to_str().unwrap().to_string();
        let mut allow: Vec<&str> = allow.split(',').map(str::trim).collect();
        allow.sort();
        assert_eq!(allow.join(","), allowed, "{method} {path}");
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

/// The route table's path with each parameter replaced by its example.
fn concrete(route: &Route) -> String {
    route
        .params
        .iter()
        .filter(|p| p.place == Place::Path)
        .fold(route.path.to_string(), |path, p| {
            path.replace(&format!("{{{}}}", p.name), p.example.unwrap_or("x"))
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_of_the_table_is_served_and_documented() {
    let server = Api::open(|_| {}).await;
    let doc = server.get_ok("/openapi.json").await;
    assert_eq!(doc["openapi"], "3.1.0");
    assert!(
        doc["components"].get("securitySchemes").is_none(),
        "a server without tokens asks for none"
    );
    let documented: usize = doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .map(|methods| methods.as_object().unwrap().len())
        .sum();
    assert_eq!(documented, ROUTES.len());
    for route in ROUTES {
        let method = route.method.to_lowercase();
        let operation = &doc["paths"][route.path][&method];
        assert!(
            operation["responses"].is_object(),
            "{method} {}",
            route.path
        );
        // The router is built from the table: each route answers, with
        // something other than "no such route" or "not this method". The
        // plugin of the examples is not installed here, so no answer is a
        // change feed that would never end.
        let path = concrete(route);
        let (status, _, body) = server.call(route.method, &path, None).await;
        assert_ne!(status, 405, "{} {path}: {body}", route.method);
        assert_ne!(body["error"]["code"], "no_route", "{} {path}", route.method);
        assert!(
            operation["responses"][status.to_string()].is_object(),
            "{} {path} answered {status}, which its document does not list: {body}",
            route.method
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_tokens_the_document_asks_for_the_scope_of_each_route() {
    let server = Api::open(|c| {
        c.tokens = vec![crate::api::auth::TokenConfig {
            token: "reader".into(),
            scopes: vec![Scope::Read],
        }]
    })
    .await;
    let doc = server.get_ok("/openapi.json").await;
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    for route in ROUTES {
        let operation = &doc["paths"][route.path][route.method.to_lowercase()];
        let path = concrete(route);
        let (status, headers, body) = server.call(route.method, &path, None).await;
        if route.scope == Scope::Public {
            assert!(operation.get("security").is_none(), "{}", route.path);
            assert_ne!(status, 401, "{} {path}", route.method);
        } else {
            assert_eq!(operation["security"], json!([{"bearer": [route.scope]}]));
            assert_eq!(status, 401, "{} {path}: {body}", route.method);
            assert_eq!(body["error"]["code"], "unauthorized");
            assert!(headers.contains_key("www-authenticate"));
            assert!(operation["responses"]["401"].is_object(), "{}", route.path);
            assert!(operation["responses"]["403"].is_object(), "{}", route.path);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_plugins_are_404() {
    let server = Api::open(|_| {}).await;
    let (status, body) = server.get("/views/nobody/key").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("unknown_plugin")),
        "{body}"
    );
    let (status, body) = server.get("/plugins/nobody").await;
    assert_eq!(status, 404, "{body}");
}

/// Storage reopened in place, in one process: what was acknowledged before
/// the app shut down (events, a view file's documents) is there after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_reopened_on_its_data_has_everything_it_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        data: dir.path().join("data"),
        plugins: dir.path().join("plugins"),
        ..Default::default()
    };
    std::fs::create_dir_all(&config.plugins).unwrap();
    let view = include_str!("../../../plugins/views/account-balances.view.yaml");
    let first = Api {
        app: App::open(&config).await.unwrap(),
        _dir: tempfile::tempdir().unwrap(),
    };
    let (status, _, body) = first
        .call("PUT", "/plugins/account-balances", Some(view.to_string()))
        .await;
    assert!(status < 300, "{status} {body}");
    first
        .append(
            "acct-1",
            &[
                ("AccountOpened", json!({"owner": "ann"})),
                ("Deposited", json!({"amount": 75})),
            ],
        )
        .await;
    first
        .append("acct-2", &[("AccountOpened", json!({"owner": "bob"}))])
        .await;
    first
        .get_ok("/views/account-balances/acct-2?min_position=3")
        .await;
    // A paged read left half way holds a snapshot of the database.
    let page = first
        .get_ok("/views/account-balances/_find?scan=true&limit=1")
        .await;
    assert!(page["cursor"].is_string(), "{page}");
    first.app.close(Duration::from_secs(10)).await.unwrap();

    let second = Api {
        app: App::open(&config).await.unwrap(),
        _dir: tempfile::tempdir().unwrap(),
    };
    assert_eq!(second.head().await, 3);
    let doc = second
        .get_ok("/views/account-balances/acct-1?min_position=2")
        .await;
    assert_eq!(doc["balance"], 75, "{doc}");
    second.app.close(Duration::from_secs(10)).await.unwrap();
}
