//! Poison events under the `halt` and `skip` policies: good events around
//! the poison are applied exactly once.

use std::time::Duration;

use serde_json::json;

use crate::common::{TestServer, test_plugin};

/// 10 good events, a poison, 10 good events, all in one batch.
async fn poisoned_log(server: &TestServer) -> u64 {
    let good: Vec<_> = (0..10).map(|i| ("Good", json!({"i": i}))).collect();
    server.append("s-1", &good).await;
    let poison = server.append("s-1", &[("Poison", json!({}))]).await;
    server.append("s-1", &good).await;
    poison["first_position"].as_u64().unwrap()
}

#[tokio::test]
async fn halt_stops_at_the_poison_after_applying_the_good_events_before_it() {
    for plugin in ["trap-on-event", "error-on-event"] {
        let server = TestServer::start().await;
        let poison = poisoned_log(&server).await;
        server.install_file("p", &test_plugin(plugin));
        let status = server
            .wait_plugin("p", Duration::from_secs(60), |p| p["state"] == "failed")
            .await;
        assert_eq!(
            status["last_error"]["position"], poison,
            "{plugin}: {status}"
        );
        assert_eq!(status["position"], poison - 1, "{plugin}");
        assert_eq!(
            server.view("p", "s-1").await.unwrap(),
            json!({"count": 10}),
            "{plugin}"
        );
    }
}

#[tokio::test]
async fn skip_dead_letters_the_poison_and_goes_on() {
    for plugin in ["trap-on-event", "error-on-event"] {
        let server = TestServer::start_with_config("[plugin.p]\non_error = \"skip\"\n").await;
        let poison = poisoned_log(&server).await;
        server.install_file("p", &test_plugin(plugin));
        server.wait_caught_up("p").await;
        assert_eq!(
            server.view("p", "s-1").await.unwrap(),
            json!({"count": 20}),
            "{plugin}"
        );
        let letters = server.get_ok("/plugins/p/dead-letters").await;
        let letters = letters["dead_letters"].as_array().unwrap();
        assert_eq!(letters.len(), 1, "{plugin}");
        assert_eq!(letters[0]["position"], poison);
        assert_eq!(letters[0]["event"]["type"], "Poison");
        assert!(letters[0]["error"].as_str().unwrap().len() > 3);
        let status = server.plugin("p").await;
        assert_eq!(status["dead_letters"], 1);
        // Later events keep flowing.
        server.append("s-1", &[("Good", json!({}))]).await;
        server.wait_caught_up("p").await;
        assert_eq!(
            server.view("p", "s-1").await.unwrap(),
            json!({"count": 21}),
            "{plugin}"
        );
    }
}

#[tokio::test]
async fn a_rebuild_restarts_a_halted_plugin() {
    let server = TestServer::start().await;
    let poison = poisoned_log(&server).await;
    server.install_file("p", &test_plugin("trap-on-event"));
    server
        .wait_plugin("p", Duration::from_secs(60), |p| p["state"] == "failed")
        .await;
    // The rebuild replays into a new generation, which halts at the same
    // event; the halted one keeps serving what it had.
    let (status, body) = server.post("/plugins/p/rebuild", &json!({})).await;
    assert_eq!(status, 202, "{body}");
    let status = server
        .wait_plugin("p", Duration::from_secs(60), |p| {
            p["failed_candidate"]["error"]["position"] == poison
        })
        .await;
    assert_eq!(status["state"], "failed");
}
