//! Bearer tokens with scopes, and the refusal to expose an unauthenticated
//! server; the OpenAPI document covers every route.

use std::process::Command;

use serde_json::json;

use crate::common::{TestServer, example_plugin};

const TOKENS: &str = r#"
[[tokens]]
token = "reader-secret"
scopes = ["read"]
[[tokens]]
token = "writer-secret"
scopes = ["write"]
[[tokens]]
token = "admin-secret"
scopes = ["admin", "read"]
"#;

async fn status_with(
    server: &TestServer,
    method: &str,
    path: &str,
    token: Option<&str>,
) -> (u16, serde_json::Value) {
    let mut request = match method {
        "GET" => server.http.get(server.url(path)),
        "POST" => server
            .http
            .post(server.url(path))
            .json(&json!({"events": [{"type": "E"}]})),
        "PUT" => server
            .http
            .put(server.url(path))
            .body(std::fs::read(example_plugin("account-balance")).unwrap()),
        "DELETE" => server.http.delete(server.url(path)),
        _ => unreachable!(),
    };
    if let Some(t) = token {
        request = request.bearer_auth(t);
    }
    let response = request
        .send()
        .await
        .unwrap_or_else(|e| panic!("{method} {path} with {token:?}: {e:?}"));
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(json!(null)))
}

#[tokio::test]
async fn tokens_grant_exactly_their_scopes() {
    let server = TestServer::start_with_config(TOKENS).await;
    // Missing or wrong token: 401 without detail.
    let (status, body) = status_with(&server, "GET", "/events", None).await;
    assert_eq!(status, 401);
    assert_eq!(body["error"]["code"], "unauthorized");
    assert_eq!(
        status_with(&server, "GET", "/events", Some("nope")).await.0,
        401
    );
    assert_eq!(status_with(&server, "GET", "/healthz", None).await.0, 200);

    // write: append only.
    assert_eq!(
        status_with(&server, "POST", "/streams/s/events", Some("writer-secret"))
            .await
            .0,
        201
    );
    let (status, body) = status_with(&server, "GET", "/events", Some("writer-secret")).await;
    assert_eq!(status, 403);
    assert_eq!(body["error"]["code"], "forbidden");
    // read: views, log, status; no appends, no plugin changes.
    assert_eq!(
        status_with(&server, "GET", "/events", Some("reader-secret"))
            .await
            .0,
        200
    );
    assert_eq!(
        status_with(&server, "GET", "/plugins", Some("reader-secret"))
            .await
            .0,
        200
    );
    assert_eq!(
        status_with(&server, "POST", "/streams/s/events", Some("reader-secret"))
            .await
            .0,
        403
    );
    assert_eq!(
        status_with(&server, "PUT", "/plugins/bank", Some("reader-secret"))
            .await
            .0,
        403
    );
    // admin: plugins.
    assert_eq!(
        status_with(&server, "PUT", "/plugins/bank", Some("admin-secret"))
            .await
            .0,
        201
    );
    assert_eq!(
        status_with(&server, "GET", "/views/bank/s", Some("reader-secret"))
            .await
            .0,
        404
    );
    assert_eq!(
        status_with(&server, "GET", "/views/bank/s", None).await.0,
        401
    );
    assert_eq!(
        status_with(&server, "DELETE", "/plugins/bank", Some("writer-secret"))
            .await
            .0,
        403
    );
    assert_eq!(
        status_with(&server, "DELETE", "/plugins/bank", Some("admin-secret"))
            .await
            .0,
        204
    );
    assert_eq!(server.head().await, 1, "refused appends appended nothing");
}

#[tokio::test]
async fn a_public_address_without_tokens_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_prism"))
        .args(["serve", "--listen", "0.0.0.0:0", "--data"])
        .arg(dir.path().join("data"))
        .arg("--plugins")
        .arg(dir.path().join("plugins"))
        .env_remove("PRISM_TOKENS")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("refusing to listen on 0.0.0.0:0 without authentication"),
        "{stderr}"
    );
    assert!(!dir.path().join("data").exists(), "nothing was created");
}

#[tokio::test]
async fn the_openapi_document_covers_every_route() {
    let server = TestServer::start().await;
    let doc = server.get_ok("/openapi.json").await;
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    for (path, methods) in [
        ("/streams/{stream}/events", vec!["get", "post"]),
        ("/events", vec!["get"]),
        ("/plugins", vec!["get"]),
        ("/plugins/{name}", vec!["get", "put", "delete"]),
        ("/plugins/{name}/rebuild", vec!["post"]),
        ("/plugins/{name}/logs", vec!["get"]),
        ("/plugins/{name}/dead-letters", vec!["get"]),
        ("/views/{plugin}", vec!["get"]),
        ("/views/{plugin}/{key}", vec!["get"]),
        ("/views/{plugin}/_doc/{key}", vec!["get"]),
        ("/views/{plugin}/_query/{name}", vec!["get"]),
        ("/views/{plugin}/_find", vec!["get"]),
        ("/views/{plugin}/_bulk_get", vec!["post"]),
        ("/views/{plugin}/_changes", vec!["get"]),
        ("/healthz", vec!["get"]),
        ("/metrics", vec!["get"]),
        ("/openapi.json", vec!["get"]),
    ] {
        for m in methods {
            assert!(paths[path][m]["summary"].is_string(), "{m} {path} missing");
        }
    }
    // Every documented route exists on the server (no `no_route` answer).
    for (path, methods) in paths {
        let concrete = path
            .replace("{stream}", "s")
            .replace("{name}", "n")
            .replace("{plugin}", "p")
            .replace("{key}", "k");
        for m in methods.as_object().unwrap().keys() {
            let method = m.to_uppercase().parse::<reqwest::Method>().unwrap();
            let response = server
                .http
                .request(method, server.url(&concrete))
                .send()
                .await
                .unwrap();
            let code = response.status().as_u16();
            let body: serde_json::Value = response.json().await.unwrap_or(json!(null));
            assert!(
                body["error"]["code"] != "no_route" && code != 405,
                "{m} {path}: {code} {body}"
            );
        }
    }
}

#[tokio::test]
async fn the_scheme_is_case_insensitive_and_head_needs_what_get_needs() {
    let server = TestServer::start_with_config(TOKENS).await;
    for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
        let response = server
            .http
            .get(server.url("/events"))
            .header("authorization", format!("{scheme} reader-secret"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "scheme {scheme:?}");
    }
    let response = server
        .http
        .get(server.url("/events"))
        .header("authorization", "Basic reader-secret")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401, "another scheme");

    for path in ["/events", "/plugins", "/metrics", "/streams/s/events"] {
        let response = server
            .http
            .head(server.url(path))
            .bearer_auth("reader-secret")
            .send()
            .await
            .unwrap();
        assert_ne!(response.status(), 403, "HEAD {path} with a read token");
        assert_ne!(response.status(), 401, "HEAD {path} with a read token");
        let response = server
            .http
            .head(server.url(path))
            .bearer_auth("writer-secret")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 403, "HEAD {path} with a write token");
    }
    let response = server
        .http
        .head(server.url("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "HEAD /healthz needs no token");
}
