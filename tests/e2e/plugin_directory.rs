//! The plugin directory and its HTTP twin: install, same bytes, delete,
//! restart, names.

use std::io::Write;
use std::time::Duration;

use serde_json::json;

use crate::common::{TestServer, bank_workload, example_plugin};

#[tokio::test]
async fn deleting_the_file_unloads_the_plugin() {
    let server = TestServer::start().await;
    server
        .append("account-1", &[("AccountOpened", json!({"owner": "ann"}))])
        .await;
    server.install_file("bank", &example_plugin("account-balance"));
    server.wait_caught_up("bank").await;
    assert!(server.view("bank", "account-1").await.is_some());
    std::fs::remove_file(server.plugins_dir().join("bank.wasm")).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = server.get("/views/bank/account-1").await;
        if status == 404 && body["error"]["code"] == "unknown_plugin" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still serving: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, _) = server.get("/plugins/bank").await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn the_same_bytes_do_not_rebuild() {
    let server = TestServer::start().await;
    server
        .append("account-1", &[("AccountOpened", json!({"owner": "ann"}))])
        .await;
    let (status, body) = server
        .put_plugin("bank", &example_plugin("account-balance"))
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["outcome"], "started");
    let first = server.wait_caught_up("bank").await;
    let (status, body) = server
        .put_plugin("bank", &example_plugin("account-balance"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["outcome"], "unchanged");
    // Touching the file in the directory changes nothing either, once the
    // server has looked at it again.
    let checked = first["file_checked_at_ms"].as_u64().unwrap_or(0);
    server.install_file("bank", &example_plugin("account-balance"));
    let after = server
        .wait_plugin("bank", Duration::from_secs(30), |p| {
            p["file_checked_at_ms"].as_u64() > Some(checked)
        })
        .await;
    assert_eq!(after["generation"], first["generation"]);
    assert!(after["candidate"].is_null());
    assert_eq!(server.server_log().matches("plugin installed").count(), 1);
}

#[tokio::test]
async fn restart_resumes_from_the_checkpoint_without_replay() {
    let mut server = TestServer::start().await;
    let expected = bank_workload(&server, 100, 200).await;
    server.install_file("bank", &example_plugin("account-balance"));
    let before = server.wait_caught_up("bank").await;
    let head = server.head().await;
    server.kill();
    server.restart().await;
    let after = server.plugin("bank").await;
    assert_eq!(after["generation"], before["generation"]);
    assert_eq!(
        after["position"], head,
        "resumed at its checkpoint: {after}"
    );
    crate::common::assert_balances(&server, "bank", &expected).await;
}

#[tokio::test]
async fn a_file_changed_while_down_replays_beside_the_serving_one_and_takes_over() {
    let mut server = TestServer::start().await;
    server
        .append("s-1", &[("AccountOpened", json!({"owner": "ann"}))])
        .await;
    server.install_file("bank", &example_plugin("account-balance"));
    let before = server.wait_caught_up("bank").await;
    server.kill();
    std::fs::copy(
        crate::common::test_plugin("trap-on-event"),
        server.plugins_dir().join("bank.wasm"),
    )
    .unwrap();
    server.restart().await;
    // The old generation serves at once, before the new one has caught up.
    let (status, body) = server.get("/views/bank/s-1").await;
    assert_eq!(status, 200, "{body}");
    let after = server
        .wait_plugin("bank", Duration::from_secs(60), |p| {
            p["generation"] != before["generation"] && p["candidate"].is_null()
        })
        .await;
    assert_eq!(after["previous"]["generation"], before["generation"]);
    assert_eq!(
        server.view("bank", "s-1").await.unwrap(),
        json!({"count": 1})
    );
}

#[tokio::test]
async fn a_slow_plain_copy_is_loaded_once_complete() {
    let server = TestServer::start().await;
    server
        .append("account-1", &[("AccountOpened", json!({"owner": "ann"}))])
        .await;
    let bytes = std::fs::read(example_plugin("account-balance")).unwrap();
    let mut file = std::fs::File::create(server.plugins_dir().join("bank.wasm")).unwrap();
    for chunk in bytes.chunks(bytes.len() / 4 + 1) {
        file.write_all(chunk).unwrap();
        file.flush().unwrap();
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(file);
    let status = server.wait_caught_up("bank").await;
    assert!(status["failed_candidate"].is_null(), "{status}");
    assert_eq!(
        server.view("bank", "account-1").await.unwrap()["owner"],
        "ann"
    );
}

#[tokio::test]
async fn bad_names_and_bad_uploads_are_refused_over_http() {
    let server = TestServer::start().await;
    let wasm = example_plugin("account-balance");
    for name in ["..%2Fetc", "a%2Fb", "UPPER", "dot.dot", &"x".repeat(65)] {
        let (status, body) = server.put_plugin(name, &wasm).await;
        assert!(status == 400 || status == 404, "{name}: {status} {body}");
        if status == 400 {
            assert_eq!(body["error"]["code"], "invalid_plugin_name", "{name}");
        }
    }
    let (status, body) = server.put_plugin_bytes("junk", b"not wasm".to_vec()).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], "invalid_plugin");
    let files: Vec<_> = std::fs::read_dir(server.plugins_dir()).unwrap().collect();
    assert!(
        files.is_empty(),
        "nothing was written to the plugin directory"
    );
    let (status, _) = server.delete("/plugins/nope").await;
    assert_eq!(status, 404);
    let (status, _) = server.post("/plugins/nope/rebuild", &json!({})).await;
    assert_eq!(status, 404);
    let list = server.get_ok("/plugins").await;
    assert_eq!(list["plugins"], json!([]));
}

#[tokio::test]
async fn forty_files_dropped_at_once_are_all_listed_at_once_and_all_load() {
    let server = TestServer::start().await;
    server
        .append("account-1", &[("AccountOpened", json!({"owner": "ann"}))])
        .await;
    let names: Vec<String> = (0..40).map(|i| format!("bank-{i:02}")).collect();
    for name in &names {
        server.install_file(name, &example_plugin("account-balance"));
    }
    // Listed (loading, or already further) well before they have all loaded.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let listed = server.get_ok("/plugins").await;
        let count = listed["plugins"].as_array().unwrap().len();
        if count == names.len() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{count} of 40 listed: {listed}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for name in &names {
        server.wait_caught_up(name).await;
        assert_eq!(
            server.view(name, "account-1").await.unwrap()["owner"],
            "ann"
        );
    }
}
