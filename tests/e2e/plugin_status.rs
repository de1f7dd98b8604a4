//! Status fields move as a plugin replays and goes live.

use std::time::Duration;

use serde_json::json;

use crate::common::{TestServer, bank_workload, example_plugin};

#[tokio::test]
async fn status_reports_replay_then_live_with_position_head_and_lag() {
    let server = TestServer::start().await;
    bank_workload(&server, 200, 500).await;
    let head = server.head().await;
    server.install_file("bank", &example_plugin("account-balance"));
    let during = server
        .wait_plugin("bank", Duration::from_secs(60), |p| {
            p["state"] == "replaying" && p["position"].as_u64() > Some(0)
        })
        .await;
    assert_eq!(during["head"], head);
    assert!(during["lag"].as_u64().unwrap() > 0);
    let progress = during["replay_progress"].as_f64().unwrap();
    assert!(progress > 0.0 && progress < 100.0, "{during}");
    assert!(during["generation"].as_str().unwrap().len() == 64);

    let live = server.wait_caught_up("bank").await;
    assert_eq!(live["lag"], 0);
    assert_eq!(live["replay_progress"], 100.0);
    assert!(live["events_per_second"].as_f64().unwrap() > 0.0, "{live}");
    assert_eq!(live["stalled"], false);
    assert_eq!(live["last_error"], json!(null));
    let list = server.get_ok("/plugins").await;
    assert_eq!(list["plugins"][0]["name"], "bank");
}
