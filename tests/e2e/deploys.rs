//! Deploys an operator can trust: blue/green that survives SIGKILL at any
//! point, a rejected version that stays rejected, a checked manual cutover,
//! rollback in one step, and the retention of the replaced generation.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::{Value, json};

use crate::common::{TestServer, bank_events, example_plugin, test_plugin};

/// The documents `account-balance` (`all_moves`) or `deposits-only`
/// (`!all_moves`) builds from `events` (of the global log).
fn expected_view(events: &[Value], all_moves: bool) -> BTreeMap<String, Value> {
    let mut docs: BTreeMap<String, (Value, i64, u64)> = BTreeMap::new();
    for e in events {
        let stream = e["stream"].as_str().unwrap().to_string();
        let amount = e["data"]["amount"].as_i64().unwrap_or(0);
        let doc = || (Value::Null, 0, 0);
        match e["type"].as_str().unwrap() {
            "AccountOpened" => {
                docs.entry(stream).or_insert_with(doc).0 = e["data"]["owner"].clone()
            }
            "Deposited" => {
                let d = docs.entry(stream).or_insert_with(doc);
                d.1 += amount;
                d.2 += 1;
            }
            "Withdrawn" if all_moves => {
                let d = docs.entry(stream).or_insert_with(doc);
                d.1 -= amount;
                d.2 += 1;
            }
            _ => {}
        }
    }
    docs.into_iter()
        .map(|(k, (owner, balance, transactions))| {
            (
                k,
                json!({"owner": owner, "balance": balance, "transactions": transactions}),
            )
        })
        .collect()
}

async fn append_bank(server: &TestServer, accounts: usize, per_account: usize) {
    let (appends, _) = bank_events(accounts, per_account);
    for (stream, events) in appends {
        let (status, body) = server
            .post(
                &format!("/streams/{stream}/events"),
                &json!({ "events": events }),
            )
            .await;
        assert_eq!(status, 201, "{body}");
    }
}

/// Reads of these keys must answer exactly `view`'s documents.
async fn assert_serves(
    server: &TestServer,
    plugin: &str,
    view: &BTreeMap<String, Value>,
    keys: &[&str],
) {
    for key in keys {
        let (status, body) = server.get(&format!("/views/{plugin}/{key}")).await;
        assert_eq!(status, 200, "{key}: {body}");
        assert_eq!(&body, &view[*key], "{plugin}/{key}");
    }
}

#[tokio::test]
async fn sigkills_during_a_candidates_replay_never_serve_its_partial_view() {
    // The replay is killed three times, so each quarter of it must take
    // longer than a restart and a status poll, or the candidate can finish
    // before the test sees it past the next quarter: 120,000 events, in
    // small batches (a checkpoint every 16 events).
    let mut server = TestServer::start_with_config("[plugin.bank]\nmax_batch_events = 16\n").await;
    append_bank(&server, 300, 400).await;
    let events = server.all_events().await;
    let old_view = expected_view(&events, true);
    let new_view = expected_view(&events, false);
    let head = events.len() as u64;
    server.install_file("bank", &example_plugin("account-balance"));
    let old = server.wait_caught_up("bank").await;
    let sample = ["account-0", "account-17", "account-150", "account-299"];

    server.install_file("bank", &test_plugin("deposits-only"));
    let mut last_position = 0;
    for quarter in 1..=3u64 {
        let status = server
            .wait_plugin("bank", Duration::from_secs(120), |p| {
                p["candidate"]["position"].as_u64() >= Some(head * quarter / 4)
            })
            .await;
        assert_eq!(status["generation"], old["generation"]);
        assert_serves(&server, "bank", &old_view, &sample).await;
        let before_kill = status["candidate"]["position"].as_u64().unwrap();
        server.kill();
        server.restart().await;
        // The complete old view serves at once, and the candidate picks up
        // where it was, not from zero.
        assert_serves(&server, "bank", &old_view, &sample).await;
        let status = server.plugin("bank").await;
        assert_eq!(status["generation"], old["generation"], "{status}");
        let resumed = server
            .wait_plugin("bank", Duration::from_secs(60), |p| {
                !p["candidate"].is_null() || p["generation"] != old["generation"]
            })
            .await;
        if let Some(position) = resumed["candidate"]["position"].as_u64() {
            assert!(
                position >= before_kill,
                "the candidate restarted from {position}, before {before_kill}"
            );
        }
        assert!(before_kill >= last_position);
        last_position = before_kill;
    }
    let swapped = server
        .wait_plugin("bank", Duration::from_secs(120), |p| {
            p["generation"] != old["generation"] && p["candidate"].is_null()
        })
        .await;
    assert_eq!(swapped["position"], head);
    assert_eq!(swapped["previous"]["generation"], old["generation"]);
    assert_serves(&server, "bank", &new_view, &sample).await;
    let docs: BTreeMap<String, Value> = server.all_docs("bank").await.into_iter().collect();
    assert_eq!(docs, new_view);
}

#[tokio::test]
async fn a_rejected_version_stays_rejected_across_a_restart() {
    let mut server = TestServer::start().await;
    append_bank(&server, 20, 10).await;
    server.install_file("bank", &example_plugin("account-balance"));
    let old = server.wait_caught_up("bank").await;
    server.append("account-3", &[("Poison", json!({}))]).await;
    server.install_file("bank", &test_plugin("trap-on-event"));
    let failed = server
        .wait_plugin("bank", Duration::from_secs(60), |p| {
            !p["failed_candidate"].is_null()
        })
        .await;
    let rejected = failed["failed_candidate"]["generation"].clone();
    let events = server.all_events().await;
    let old_view = expected_view(&events, true);

    server.kill();
    server.restart().await;
    assert_serves(&server, "bank", &old_view, &["account-3", "account-7"]).await;
    // Once the server has looked at the file again, nothing is retried.
    let status = server
        .wait_plugin("bank", Duration::from_secs(30), |p| {
            !p["file_checked_at_ms"].is_null()
        })
        .await;
    assert_eq!(status["generation"], old["generation"], "{status}");
    assert!(status["candidate"].is_null(), "{status}");
    assert_eq!(status["failed_candidate"]["generation"], rejected);
    assert!(
        status["failed_candidate"]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Poison"),
        "{status}"
    );
    assert_eq!(status["state"], "live");
    let log = server.server_log();
    // The server logs "listening" once per start.
    let after_restart = log.rsplit("listening").next().unwrap_or(&log);
    assert!(
        !after_restart.contains("plugin installed"),
        "the rejected build was loaded again:\n{after_restart}"
    );
    let response = server
        .http
        .get(server.url("/views/bank/account-3"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.headers()["prism-generation"],
        old["generation"].as_str().unwrap()
    );
    assert_eq!(response.headers()["prism-state"], "live");

    // A rebuild asks for the rejected content again: it is tried, and fails again.
    let (status, body) = server.post("/plugins/bank/rebuild", &json!({})).await;
    assert_eq!(status, 202, "{body}");
    server
        .wait_plugin("bank", Duration::from_secs(60), |p| {
            p["candidate"].is_null() && !p["failed_candidate"].is_null()
        })
        .await;
}

#[tokio::test]
async fn a_manual_cutover_waits_for_a_diff_and_a_promote() {
    let server = TestServer::start_with_config("[plugin.bank]\ncutover = \"manual\"\n").await;
    // Accounts 0..10 only deposit; 10..25 also withdraw.
    for a in 0..25 {
        let mut events = vec![
            json!({"type": "AccountOpened", "data": {"owner": format!("owner-{a}")}}),
            json!({"type": "Deposited", "data": {"amount": 50}}),
        ];
        if a >= 10 {
            events.push(json!({"type": "Withdrawn", "data": {"amount": 7}}));
        }
        let (status, body) = server
            .post(
                &format!("/streams/account-{a}/events"),
                &json!({ "events": events }),
            )
            .await;
        assert_eq!(status, 201, "{body}");
    }
    server.install_file("bank", &example_plugin("account-balance"));
    let old = server.wait_caught_up("bank").await;
    let (status, body) = server.post("/plugins/bank/promote", &json!({})).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("conflict"))
    );

    server.install_file("bank", &test_plugin("deposits-only"));
    let ready = server
        .wait_plugin("bank", Duration::from_secs(60), |p| {
            p["candidate"]["ready"] == true
        })
        .await;
    assert_eq!(ready["generation"], old["generation"]);
    // The candidate keeps following the log while it waits.
    server
        .append("account-30", &[("AccountOpened", json!({"owner": "late"}))])
        .await;
    let head = server.head().await;
    server
        .wait_plugin("bank", Duration::from_secs(30), |p| {
            p["candidate"]["position"].as_u64() == Some(head)
                && p["position"].as_u64() == Some(head)
        })
        .await;
    assert_eq!(
        server.view("bank", "account-12").await.unwrap()["balance"],
        43
    );

    let diff = server.get_ok("/plugins/bank/diff?sample=3").await;
    assert_eq!(diff["position"], head, "{diff}");
    assert_eq!(diff["changed"], 15, "{diff}");
    assert_eq!(diff["added"], 0);
    assert_eq!(diff["removed"], 0);
    assert_eq!(diff["unchanged"], 11);
    assert_eq!(diff["samples"]["changed"].as_array().unwrap().len(), 3);
    let example = &diff["samples"]["changed"][0];
    assert_eq!(example["serving"]["balance"], 43, "{diff}");
    assert_eq!(example["candidate"]["balance"], 50, "{diff}");
    // The command line shows the same diff and every generation.
    let cli = |args: &[&str]| {
        let out = crate::common::prism_command(server.dir.path())
            .args(args)
            .args(["--server", &server.base])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let printed = cli(&["plugins", "diff", "bank"]);
    assert!(
        printed.contains("15 changed, 0 added, 0 removed, 11 unchanged"),
        "{printed}"
    );
    let printed = cli(&["plugins", "status", "bank"]);
    assert!(printed.contains("ready to promote"), "{printed}");

    let promoted: Value = serde_json::from_str(&cli(&["plugins", "promote", "bank"])).unwrap();
    assert_ne!(promoted["generation"], old["generation"]);
    assert_eq!(promoted["previous"]["generation"], old["generation"]);
    assert_eq!(
        server.view("bank", "account-12").await.unwrap()["balance"],
        50
    );
}

#[tokio::test]
async fn discarding_a_candidate_puts_the_serving_file_back() {
    let server = TestServer::start_with_config("[plugin.bank]\ncutover = \"manual\"\n").await;
    append_bank(&server, 5, 5).await;
    server.install_file("bank", &example_plugin("account-balance"));
    let old = server.wait_caught_up("bank").await;
    server.install_file("bank", &test_plugin("deposits-only"));
    server
        .wait_plugin("bank", Duration::from_secs(60), |p| {
            !p["candidate"].is_null()
        })
        .await;
    let (status, body) = server.delete("/plugins/bank/candidate").await;
    assert_eq!(status, 204, "{body}");
    let status = server.plugin("bank").await;
    assert!(status["candidate"].is_null(), "{status}");
    assert_eq!(status["generation"], old["generation"]);
    assert_eq!(
        std::fs::read(server.plugins_dir().join("bank.wasm")).unwrap(),
        std::fs::read(example_plugin("account-balance")).unwrap(),
        "the directory states what runs"
    );
    let (status, _) = server.delete("/plugins/bank/candidate").await;
    assert_eq!(status, 409);
}

#[tokio::test]
async fn a_rollback_during_appends_brings_the_previous_view_back_at_the_head() {
    let server = Arc::new(TestServer::start().await);
    append_bank(&server, 50, 20).await;
    server.install_file("bank", &example_plugin("account-balance"));
    let old = server.wait_caught_up("bank").await;
    let (status, body) = server.post("/plugins/bank/rollback", &json!({})).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("conflict")),
        "{body}"
    );

    server.install_file("bank", &test_plugin("deposits-only"));
    let new = server
        .wait_plugin("bank", Duration::from_secs(60), |p| {
            p["generation"] != old["generation"] && p["candidate"].is_null()
        })
        .await;
    // Events keep arriving while the operator rolls back.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (server, stop) = (server.clone(), stop.clone());
        tokio::spawn(async move {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                let kind = if i % 2 == 0 { "Deposited" } else { "Withdrawn" };
                server
                    .append(
                        &format!("account-{}", i % 50),
                        &[(kind, json!({"amount": 3}))],
                    )
                    .await;
                i += 1;
            }
            i
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, body) = server.post("/plugins/bank/rollback", &json!({})).await;
    assert_eq!(status, 202, "{body}");
    server
        .wait_plugin("bank", Duration::from_secs(60), |p| {
            p["generation"] == old["generation"] && p["candidate"].is_null()
        })
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    let appended = writer.await.unwrap();
    assert!(appended > 0);
    let status = server.wait_caught_up("bank").await;
    assert_eq!(status["generation"], old["generation"]);
    assert_eq!(status["previous"]["generation"], new["generation"]);
    let view: BTreeMap<String, Value> = server.all_docs("bank").await.into_iter().collect();
    assert_eq!(view, expected_view(&server.all_events().await, true));
    assert_eq!(
        std::fs::read(server.plugins_dir().join("bank.wasm")).unwrap(),
        std::fs::read(example_plugin("account-balance")).unwrap(),
        "the directory holds the rolled-back version's bytes"
    );
}

#[tokio::test]
async fn the_replaced_generation_is_dropped_after_its_retention() {
    let server =
        TestServer::start_with_config("[plugin.bank]\nprevious_retention_secs = 1\n").await;
    append_bank(&server, 5, 5).await;
    server.install_file("bank", &example_plugin("account-balance"));
    let old = server.wait_caught_up("bank").await;
    server.install_file("bank", &test_plugin("deposits-only"));
    let swapped = server
        .wait_plugin("bank", Duration::from_secs(60), |p| {
            p["generation"] != old["generation"] && p["candidate"].is_null()
        })
        .await;
    assert_eq!(swapped["previous"]["generation"], old["generation"]);
    let old_keyspace = swapped["previous"]["keyspace"]
        .as_str()
        .unwrap()
        .to_string();
    server
        .wait_plugin("bank", Duration::from_secs(30), |p| p["previous"].is_null())
        .await;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !server
        .server_log()
        .contains(&format!("bank.{old_keyspace}"))
    {
        assert!(
            std::time::Instant::now() < deadline,
            "{}",
            server.server_log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(server.server_log().contains("dropped a retired keyspace"));
    let (status, _) = server.post("/plugins/bank/rollback", &json!({})).await;
    assert_eq!(status, 409);
}
