//! Replacing a plugin file swaps generations blue/green: readers always see
//! a complete view of either the old or the new generation.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{Value, json};

use crate::common::{TestServer, bank_workload, example_plugin, test_plugin};

#[tokio::test]
async fn swap_under_continuous_reads_never_shows_a_partial_view() {
    let server = Arc::new(TestServer::start().await);
    let expected = bank_workload(&server, 50, 400).await;
    let total_events = server.head().await;
    server.install_file("bank", &example_plugin("account-balance"));
    let old = server.wait_caught_up("bank").await;

    // Old generation: the balance document. New generation (a counter
    // plugin): the number of events of the stream. Anything else is partial.
    let old_doc = json!({"owner": expected[7].owner, "balance": expected[7].balance, "transactions": expected[7].transactions});
    let new_doc = json!({"count": expected[7].transactions + 1});
    let stop = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicUsize::new(0));
    let saw_new = Arc::new(AtomicBool::new(false));
    let reader = {
        let (server, stop, reads, saw_new) =
            (server.clone(), stop.clone(), reads.clone(), saw_new.clone());
        let (old_doc, new_doc) = (old_doc.clone(), new_doc.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let (status, body): (u16, Value) = server.get("/views/bank/account-7").await;
                assert_eq!(status, 200, "every read succeeds during the swap: {body}");
                if body == new_doc {
                    saw_new.store(true, Ordering::Relaxed);
                } else {
                    assert_eq!(body, old_doc, "a read showed neither generation");
                    assert!(
                        !saw_new.load(Ordering::Relaxed),
                        "went back to the old generation"
                    );
                }
                reads.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    server.install_file("bank", &test_plugin("trap-on-event"));
    let swapped = server
        .wait_plugin("bank", Duration::from_secs(120), |p| {
            p["generation"] != old["generation"] && p["candidate"].is_null()
        })
        .await;
    // Let the reader see the new generation before it stops.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !saw_new.load(Ordering::Relaxed) {
        assert!(
            std::time::Instant::now() < deadline,
            "no read saw the new generation"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop.store(true, Ordering::Relaxed);
    reader.await.unwrap();
    assert!(saw_new.load(Ordering::Relaxed));
    assert!(reads.load(Ordering::Relaxed) > 10);
    assert_eq!(swapped["position"], total_events);
    assert_eq!(server.view("bank", "account-7").await.unwrap(), new_doc);
}

#[tokio::test]
async fn a_failing_new_version_leaves_the_old_one_serving() {
    let server = TestServer::start().await;
    server
        .append(
            "account-1",
            &[
                ("AccountOpened", json!({"owner": "ann"})),
                ("Deposited", json!({"amount": 9})),
            ],
        )
        .await;
    server.install_file("bank", &example_plugin("account-balance"));
    let old = server.wait_caught_up("bank").await;

    // A file that is not a component.
    std::fs::write(server.plugins_dir().join("bank.wasm"), b"garbage").unwrap();
    let status = server
        .wait_plugin("bank", Duration::from_secs(30), |p| {
            !p["failed_candidate"].is_null()
        })
        .await;
    assert_eq!(status["generation"], old["generation"]);
    assert_eq!(status["state"], "live");
    assert!(
        status["failed_candidate"]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not a WebAssembly component")
    );

    // A component that traps during its replay.
    server.append("account-1", &[("Poison", json!({}))]).await;
    server.install_file("bank", &test_plugin("trap-on-event"));
    let status = server
        .wait_plugin("bank", Duration::from_secs(60), |p| {
            p["failed_candidate"]["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("Poison"))
        })
        .await;
    assert_eq!(status["generation"], old["generation"]);
    assert!(status["candidate"].is_null());
    assert_eq!(
        server.view("bank", "account-1").await.unwrap()["balance"],
        9
    );
    // The old generation still follows the log.
    server
        .append("account-1", &[("Deposited", json!({"amount": 1}))])
        .await;
    server.wait_caught_up("bank").await;
    assert_eq!(
        server.view("bank", "account-1").await.unwrap()["balance"],
        10
    );
}

#[tokio::test]
async fn a_rebuild_replays_into_a_new_generation_and_takes_over() {
    let server = TestServer::start().await;
    let expected = bank_workload(&server, 20, 50).await;
    server.install_file("bank", &example_plugin("account-balance"));
    let before = server.wait_caught_up("bank").await;
    let (status, body) = server.post("/plugins/bank/rebuild", &json!({})).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["outcome"], "replacing");
    server
        .wait_plugin("bank", Duration::from_secs(60), |p| {
            p["candidate"].is_null() && p["state"] == "live"
        })
        .await;
    crate::common::assert_balances(&server, "bank", &expected).await;
    let after = server.plugin("bank").await;
    // Same content, same generation hash; a fresh keyspace was built.
    assert_eq!(after["generation"], before["generation"]);
}
