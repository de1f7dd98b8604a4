//! Killed with SIGKILL during replay, the server resumes every plugin from
//! its checkpoint and the views end exactly as if nothing had happened.

use std::time::Duration;

use crate::common::{TestServer, assert_balances, bank_workload, example_plugin};

#[tokio::test]
async fn views_built_across_sigkills_equal_views_built_in_one_go() {
    let mut server = TestServer::start().await;
    let expected = bank_workload(&server, 400, 250).await;
    let positions = kill_while_replaying(&mut server, "bank").await;
    let kills = positions.len();
    assert!(kills >= 1, "the replay was never interrupted");
    server.wait_caught_up("bank").await;
    assert_balances(&server, "bank", &expected).await;
    let docs = server.all_docs("bank").await;
    assert_eq!(docs.len(), expected.len(), "no stray keys");

    // The same view built in one go, on a fresh server, is identical.
    assert_eq!(built_in_one_go().await, docs);
    eprintln!("killed {kills} times during replay, at positions {positions:?}");
}

/// The same with the replay split over two workers by stream
/// (`replay_workers = 2`): killed while the partitions are at different
/// positions, the server resumes each from its own and the view equals
/// the one a replay in order builds.
#[tokio::test]
async fn a_partitioned_replay_killed_repeatedly_equals_a_replay_in_order() {
    let config = "[plugin.bank]\nreplay_workers = 2\nmax_batch_events = 2048\n";
    let mut server = TestServer::start_with_config(config).await;
    let expected = bank_workload(&server, 400, 250).await;
    let kills = kill_while_replaying(&mut server, "bank").await.len();
    assert!(kills >= 1, "the replay was never interrupted");
    server.wait_caught_up("bank").await;
    assert_balances(&server, "bank", &expected).await;
    let docs = server.all_docs("bank").await;

    assert_eq!(built_in_one_go().await, docs);
    let log = server.server_log();
    assert!(log.contains("replaying in partitions"), "{log}");
    eprintln!("killed {kills} times during a partitioned replay");
}

/// Install account-balance as `plugin`, then SIGKILL and restart the
/// server at uneven moments (up to 30 times) while it replays; the
/// positions it had reached at each kill.
async fn kill_while_replaying(server: &mut TestServer, plugin: &str) -> Vec<u64> {
    server.install_file(plugin, &example_plugin("account-balance"));
    server
        .wait_plugin(plugin, Duration::from_secs(60), |p| {
            p["state"] == "replaying"
        })
        .await;
    let mut positions = Vec::new();
    for round in 0..30 {
        tokio::time::sleep(Duration::from_millis(40 + (round * 37) % 120)).await;
        let status = server.plugin(plugin).await;
        if status["state"] == "live" {
            break;
        }
        positions.push(status["position"].as_u64().unwrap());
        server.kill();
        server.restart().await;
    }
    positions
}

/// The bank view built in one go, in order, on a fresh server.
async fn built_in_one_go() -> Vec<(String, serde_json::Value)> {
    let clean = TestServer::start().await;
    bank_workload(&clean, 400, 250).await;
    clean.install_file("bank", &example_plugin("account-balance"));
    clean.wait_caught_up("bank").await;
    clean.all_docs("bank").await
}
