//! Keys starting with `_`: a view may hold them (a projection keyed by stream
//! meets whatever stream names clients append to), and the API reads them at
//! `/views/{plugin}/_doc/{key}`; `_` paths are the API's own.

use std::time::Duration;

use serde_json::json;

use crate::common::{TestServer, example_plugin};

const LANGUAGES: [(&str, &str); 3] = [
    ("rust", "account-balance"),
    ("python", "account-balance-py"),
    ("javascript", "account-balance-js"),
];

#[tokio::test]
async fn a_stream_named_with_an_underscore_is_projected_in_every_language() {
    let server = TestServer::start().await;
    for (name, plugin) in LANGUAGES {
        server.install_file(name, &example_plugin(plugin));
    }
    server
        .append(
            "_under",
            &[
                ("AccountOpened", json!({"owner": "ann"})),
                ("Deposited", json!({"amount": 5})),
            ],
        )
        .await;
    server
        .append("account-1", &[("AccountOpened", json!({"owner": "bob"}))])
        .await;
    let head = server.head().await;
    for (name, _) in LANGUAGES {
        let status = server
            .wait_plugin(name, Duration::from_secs(300), |p| {
                p["state"] == "failed"
                    || (p["state"] == "live" && p["position"].as_u64() >= Some(head))
            })
            .await;
        assert_eq!(status["state"], "live", "{name}: {status}");
    }
    let expected = json!({"owner": "ann", "balance": 5, "transactions": 1});
    for (name, _) in LANGUAGES {
        assert_eq!(
            server.get_ok(&format!("/views/{name}/_doc/_under")).await,
            expected,
            "{name}"
        );
        assert_eq!(
            server
                .get_ok(&format!("/views/{name}/_doc/account-1"))
                .await,
            server.view(name, "account-1").await.unwrap(),
            "_doc/ reads ordinary keys too"
        );
        let (status, _) = server.get(&format!("/views/{name}/_doc/_absent")).await;
        assert_eq!(status, 404);
        let keys: Vec<String> = server
            .all_docs(name)
            .await
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(keys, ["_under", "account-1"], "{name}");
    }
}

#[tokio::test]
async fn an_underscore_key_outside_the_api_routes_points_to_doc() {
    let server = TestServer::start().await;
    server.install_file("bank", &example_plugin("account-balance"));
    server
        .append("_x", &[("AccountOpened", json!({"owner": "ann"}))])
        .await;
    server.wait_caught_up("bank").await;
    for key in ["_x", "_design", "_query", "_doc"] {
        let (status, body) = server.get(&format!("/views/bank/{key}")).await;
        assert_eq!(status, 400, "{key}: {body}");
        assert_eq!(body["error"]["code"], "reserved_key", "{key}: {body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(
            message.contains(&format!("/views/bank/_doc/{key}")),
            "{message}"
        );
    }
    // The reservation is the HTTP API's: the document is there.
    assert_eq!(server.get_ok("/views/bank/_doc/_x").await["owner"], "ann");
}
