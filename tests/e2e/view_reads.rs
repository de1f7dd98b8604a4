//! Reading views: documents, 404s, scans with pagination, read-your-writes,
//! the change feed, metrics.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{Value, json};

use crate::common::{TestServer, bank_workload, example_plugin};

async fn bank_server() -> TestServer {
    let server = TestServer::start().await;
    server.install_file("bank", &example_plugin("account-balance"));
    server
}

#[tokio::test]
async fn documents_carry_their_position_and_missing_ones_are_told_apart() {
    let server = bank_server().await;
    let appended = server
        .append(
            "account-1",
            &[
                ("AccountOpened", json!({"owner": "ann"})),
                ("Deposited", json!({"amount": 4})),
            ],
        )
        .await;
    let last = appended["last_position"].as_u64().unwrap();
    let response = server
        .http
        .get(server.url(&format!("/views/bank/account-1?min_position={last}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let position: u64 = response.headers()["prism-position"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(position >= last);
    let doc: Value = response.json().await.unwrap();
    assert_eq!(
        doc,
        json!({"owner": "ann", "balance": 4, "transactions": 1})
    );

    let (status, body) = server.get("/views/bank/account-404").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
    let (status, body) = server.get("/views/nobody/account-1").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("unknown_plugin"))
    );
    let (status, body) = server
        .get(&format!("/views/bank/{}", "k".repeat(1025)))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_key"))
    );
    let (status, body) = server.get("/views/bank/_query/nothing").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("unknown_query"))
    );
}

#[tokio::test]
async fn a_client_reads_its_own_writes_with_min_position() {
    let server = bank_server().await;
    server
        .append("account-1", &[("AccountOpened", json!({"owner": "ann"}))])
        .await;
    for i in 1..=100 {
        let appended = server
            .append("account-1", &[("Deposited", json!({"amount": 1}))])
            .await;
        let last = appended["last_position"].as_u64().unwrap();
        let doc = server
            .get_ok(&format!(
                "/views/bank/account-1?min_position={last}&timeout_ms=10000"
            ))
            .await;
        assert_eq!(doc["balance"], i, "read {i} was stale");
    }
}

#[tokio::test]
async fn waiting_for_a_position_that_never_comes_times_out_clearly() {
    let server = TestServer::start().await;
    bank_workload(&server, 200, 100).await;
    let head = server.head().await;
    server
        .put_plugin("bank", &example_plugin("account-balance"))
        .await;
    // Still replaying 20,000 events: not there within a millisecond.
    let (status, body) = server
        .get(&format!(
            "/views/bank/account-1?min_position={head}&timeout_ms=1"
        ))
        .await;
    assert_eq!(status, 504, "{body}");
    assert_eq!(body["error"]["code"], "position_not_reached");
    server.wait_caught_up("bank").await;

    // A position no append has returned is a different answer, at once.
    let started = std::time::Instant::now();
    let (status, body) = server
        .get(&format!(
            "/views/bank/account-1?min_position={}&timeout_ms=5000",
            head + 10
        ))
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "position_beyond_head");
    assert_eq!(body["error"]["head"], head);
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn waiting_on_a_failed_plugin_answers_at_once_with_its_error() {
    let server = TestServer::start().await;
    server
        .append(
            "account-1",
            &[("Deposited", json!({"amount": 1})), ("Poison", json!({}))],
        )
        .await;
    server.install_file("counter", &crate::common::test_plugin("trap-on-event"));
    server
        .wait_plugin("counter", Duration::from_secs(60), |p| {
            p["state"] == "failed"
        })
        .await;
    server
        .append("account-1", &[("Deposited", json!({"amount": 1}))])
        .await;
    let head = server.head().await;
    let started = std::time::Instant::now();
    let response = server
        .http
        .get(server.url(&format!(
            "/views/counter/account-1?min_position={head}&timeout_ms=10000"
        )))
        .send()
        .await
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "it did not wait for the timeout"
    );
    assert_eq!(response.status().as_u16(), 503);
    assert_eq!(response.headers()["prism-state"], "failed");
    assert_eq!(response.headers()["prism-position"], "1");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "plugin_failed");
    assert!(
        body["error"]["last_error"]["message"]
            .as_str()
            .unwrap()
            .contains("Poison"),
        "{body}"
    );
}

#[tokio::test]
async fn a_scan_walks_every_key_once_in_order_while_writes_happen() {
    let server = bank_server().await;
    bank_workload(&server, 250, 2).await;
    server.wait_caught_up("bank").await;
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/views/bank?prefix=account-&limit=37&cursor={c}"),
            None => "/views/bank?prefix=account-&limit=37".to_string(),
        };
        let page = server.get_ok(&path).await;
        for item in page["items"].as_array().unwrap() {
            seen.push(item["key"].as_str().unwrap().to_string());
        }
        pages += 1;
        // Writes between pages: new accounts and changes to existing ones.
        server
            .append(
                &format!("zzz-{pages}"),
                &[("AccountOpened", json!({"owner": "late"}))],
            )
            .await;
        server
            .append("account-3", &[("Deposited", json!({"amount": 1}))])
            .await;
        match page["cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    let unique: BTreeSet<_> = seen.iter().cloned().collect();
    assert_eq!(unique.len(), seen.len(), "no key twice");
    assert_eq!(seen.len(), 250, "no key missed");
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!(sorted, seen, "keys come in order");
    assert_eq!(pages, 7);

    let (status, body) = server.get("/views/bank?cursor=zz").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_cursor"))
    );
    let ranged = server
        .get_ok("/views/bank?start=account-10&end=account-11&limit=1000")
        .await;
    let keys: Vec<&str> = ranged["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["key"].as_str().unwrap())
        .collect();
    assert!(keys.contains(&"account-10") && keys.contains(&"account-109"));
    assert!(keys.iter().all(|k| *k >= "account-10" && *k < "account-11"));
}

#[tokio::test]
async fn metrics_and_health_report_the_server() {
    let server = bank_server().await;
    server
        .append("account-1", &[("AccountOpened", json!({"owner": "ann"}))])
        .await;
    server.wait_caught_up("bank").await;
    server.get_ok("/views/bank/account-1").await;
    let text = server
        .http
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("prism_events_appended_total 1"), "{text}");
    assert!(
        text.contains("prism_plugin_position{plugin=\"bank\"} 1"),
        "{text}"
    );
    assert!(text.contains("prism_plugin_lag_events{plugin=\"bank\"} 0"));
    assert!(text.contains("prism_view_read_seconds_count 1"));
    assert!(
        text.contains("prism_plugin_events_total{plugin=\"bank\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("prism_plugin_batch_seconds_count{plugin=\"bank\"}"),
        "{text}"
    );
    let health = server.get_ok("/healthz").await;
    assert_eq!(health["status"], "ok");
    assert_eq!(health["head"], 1);
}
