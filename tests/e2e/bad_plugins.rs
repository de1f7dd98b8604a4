//! A bad plugin hurts only itself: each is reported `failed` with a clear
//! error while a healthy plugin beside it keeps projecting.

use std::time::Duration;

use serde_json::{Value, json};

use crate::common::{TestServer, example_plugin, test_plugin};

/// A server running the healthy `account-balance` beside the plugin under test.
async fn beside_healthy() -> TestServer {
    let server = TestServer::start().await;
    server.install_file("bank", &example_plugin("account-balance"));
    server
        .append("account-1", &[("AccountOpened", json!({"owner": "ann"}))])
        .await;
    server.wait_caught_up("bank").await;
    server
}

/// The healthy plugin still applies new events and the log still appends.
async fn healthy_still_projects(server: &TestServer) {
    server
        .append("account-1", &[("Deposited", json!({"amount": 5}))])
        .await;
    server.wait_caught_up("bank").await;
    let doc = server.view("bank", "account-1").await.unwrap();
    assert_eq!(doc["balance"], 5);
    let health = server.get_ok("/healthz").await;
    assert_eq!(health["status"], "ok");
}

async fn wait_failed(server: &TestServer, name: &str) -> Value {
    server
        .wait_plugin(name, Duration::from_secs(60), |p| p["state"] == "failed")
        .await
}

fn error_of(status: &Value) -> String {
    status["last_error"]["message"]
        .as_str()
        .or(status["failed_candidate"]["error"]["message"].as_str())
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn a_file_that_is_not_wasm_is_reported_and_contained() {
    let server = beside_healthy().await;
    std::fs::write(
        server.plugins_dir().join("junk.wasm"),
        b"this is not wasm at all",
    )
    .unwrap();
    let status = wait_failed(&server, "junk").await;
    let error = error_of(&status);
    assert!(
        error.contains("junk.wasm") && error.contains("not a WebAssembly component"),
        "{status}"
    );
    healthy_still_projects(&server).await;
}

#[tokio::test]
async fn a_component_of_another_world_is_refused() {
    let server = beside_healthy().await;
    server.install_file("alien", &test_plugin("other-world"));
    let status = wait_failed(&server, "alien").await;
    assert!(
        error_of(&status).contains("does not implement the prism:projection projector world"),
        "{status}"
    );
    healthy_still_projects(&server).await;
}

#[tokio::test]
async fn a_plugin_that_traps_fails_at_the_event_with_its_position() {
    let server = beside_healthy().await;
    server.append("s-1", &[("Good", json!({}))]).await;
    let poison = server.append("s-1", &[("Poison", json!({}))]).await;
    server.install_file("trapper", &test_plugin("trap-on-event"));
    let status = wait_failed(&server, "trapper").await;
    let position = poison["first_position"].as_u64().unwrap();
    assert_eq!(status["last_error"]["position"], position, "{status}");
    let error = error_of(&status);
    assert!(
        error.contains("Poison") && error.contains("trapped"),
        "{status}"
    );
    // The good events before the poison were applied.
    assert_eq!(status["position"], position - 1);
    assert_eq!(
        server.view("trapper", "s-1").await.unwrap(),
        json!({"count": 1})
    );
    healthy_still_projects(&server).await;
}

#[tokio::test]
async fn an_endless_loop_is_stopped_by_the_deadline() {
    let server = TestServer::start_with_config("[plugin.looper]\ncall_timeout_ms = 300\n").await;
    server.install_file("bank", &example_plugin("account-balance"));
    server
        .append("account-1", &[("AccountOpened", json!({"owner": "ann"}))])
        .await;
    server.install_file("looper", &test_plugin("endless-loop"));
    let status = wait_failed(&server, "looper").await;
    assert!(error_of(&status).contains("deadline of 300 ms"), "{status}");
    healthy_still_projects(&server).await;
}

#[tokio::test]
async fn a_memory_bomb_hits_its_limit() {
    let server = TestServer::start_with_config("[plugin.bomb]\nmemory_limit_mb = 32\n").await;
    server.install_file("bank", &example_plugin("account-balance"));
    server
        .append("account-1", &[("AccountOpened", json!({"owner": "ann"}))])
        .await;
    server.install_file("bomb", &test_plugin("memory-bomb"));
    let status = wait_failed(&server, "bomb").await;
    assert!(
        error_of(&status).contains("memory limit of 32 MiB"),
        "{status}"
    );
    healthy_still_projects(&server).await;
}

#[tokio::test]
async fn a_flood_of_log_lines_is_bounded_and_readable() {
    let server = beside_healthy().await;
    let events: Vec<_> = (0..20).map(|i| ("Noise", json!({"i": i}))).collect();
    server.append("noise", &events).await;
    server.install_file("chatty", &test_plugin("log-flood"));
    server.wait_caught_up("chatty").await;
    let logs = server.get_ok("/plugins/chatty/logs").await;
    let lines = logs["lines"].as_array().unwrap();
    assert_eq!(lines.len(), 1000, "the log keeps the newest 1000 lines");
    assert!(logs["dropped"].as_u64().unwrap() > 0);
    assert!(
        lines.iter().any(|l| l["level"] == "stdout"),
        "stdout is captured"
    );
    assert!(
        lines.iter().any(|l| l["level"] == "info"),
        "log calls are captured"
    );
    healthy_still_projects(&server).await;
}
