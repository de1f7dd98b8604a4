//! A hostile plugin cannot take the server down: memory the host spends for
//! it is budgeted, its calls end at their deadline whether it computes or
//! waits, its keyspace has a quota, and a process abort inside one of its
//! batches quarantines it instead of crash-looping the server. In every
//! case the server's memory stays bounded and other plugins and the API
//! keep answering.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::{TestServer, example_plugin, test_plugin};

/// Far above an idle debug server, far below what the attacks asked for.
const RSS_BOUND: u64 = 600 << 20;

async fn assert_responsive(server: &TestServer) {
    let started = Instant::now();
    let (status, _) = server.get("/healthz").await;
    assert_eq!(status, 200);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "healthz took {:?}",
        started.elapsed()
    );
    assert!(
        server.rss_bytes() < RSS_BOUND,
        "server RSS {} MiB",
        server.rss_bytes() >> 20
    );
}

/// A server with the hostile plugin and a well-behaved neighbour, both live.
async fn beside_a_neighbour(config: &str) -> TestServer {
    let server = TestServer::start_with_config(config).await;
    server.append("s", &[("Count", json!({}))]).await;
    server.install_file("hostile", &test_plugin("hostile"));
    server.install_file("bank", &example_plugin("account-balance"));
    server.wait_caught_up("hostile").await;
    server.wait_caught_up("bank").await;
    server
}

async fn failed_with(server: &TestServer, plugin: &str, words: &str) -> Value {
    let status = server
        .wait_plugin(plugin, Duration::from_secs(60), |p| p["state"] == "failed")
        .await;
    let message = status["last_error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains(words), "{message}");
    status
}

/// The neighbour still projects what is appended after the attack.
async fn neighbour_keeps_working(server: &TestServer) {
    server
        .append("account-9", &[("AccountOpened", json!({"owner": "zoe"}))])
        .await;
    server.wait_caught_up("bank").await;
    assert_eq!(
        server.view("bank", "account-9").await.unwrap()["owner"],
        "zoe"
    );
}

#[tokio::test]
async fn amplified_reads_stop_at_the_host_budget() {
    let server = beside_a_neighbour("").await;
    server
        .append("s", &[("Store", json!({"key": "big", "mib": 8}))])
        .await;
    server.wait_caught_up("hostile").await;
    // 500 copies of an 8 MiB document would be 4 GiB of server memory.
    let (status, body) = server
        .get("/views/hostile/_query/get_many?key=big&times=500")
        .await;
    assert_eq!(status, 502, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("host memory budget of 64 MiB"),
        "{body}"
    );
    assert_responsive(&server).await;
    server
        .append("s", &[("GetMany", json!({"key": "big", "times": 200}))])
        .await;
    failed_with(&server, "hostile", "host memory budget of 64 MiB").await;
    assert_responsive(&server).await;
    neighbour_keeps_working(&server).await;
}

#[tokio::test]
async fn a_scan_and_a_flood_of_puts_stop_at_the_host_budget() {
    let server = beside_a_neighbour("").await;
    // 60 documents of 1 MiB, then a scan of all of them plus the rest.
    server.append("s", &[("Grow", json!({"mib": 30}))]).await;
    server.append("s", &[("Grow", json!({"mib": 30}))]).await;
    server
        .append("s", &[("Store", json!({"key": "more", "mib": 8}))])
        .await;
    server.wait_caught_up("hostile").await;
    server.append("s", &[("ScanAll", json!({}))]).await;
    failed_with(&server, "hostile", "a scan of up to").await;
    assert_responsive(&server).await;

    let flood = beside_a_neighbour("").await;
    // 100 puts of 1 MiB, made one by one from a single buffer.
    flood
        .append(
            "s",
            &[("PutFlood", json!({"count": 100, "bytes": 1 << 20}))],
        )
        .await;
    failed_with(&flood, "hostile", "pending writes").await;
    assert_responsive(&flood).await;
    neighbour_keeps_working(&flood).await;
}

#[tokio::test]
async fn a_keyspace_past_its_quota_halts_with_a_clear_message() {
    let server = beside_a_neighbour("[plugin.hostile]\nstorage_quota_mb = 20\n").await;
    for _ in 0..6 {
        server.append("s", &[("Grow", json!({"mib": 5}))]).await;
    }
    let status = failed_with(&server, "hostile", "storage quota of 20 MiB").await;
    assert!(
        status["storage_bytes"].as_u64().unwrap() <= 26 << 20,
        "{status}"
    );
    assert_eq!(status["settings"]["storage_quota_mb"], 20);
    assert_responsive(&server).await;
    neighbour_keeps_working(&server).await;
}

#[tokio::test]
async fn a_sleeping_handle_ends_at_its_deadline_and_holds_up_nothing_else() {
    let server = beside_a_neighbour("[plugin.hostile]\ncall_timeout_ms = 1500\n").await;
    let started = Instant::now();
    server.append("s", &[("Sleep", json!({"ms": 60000}))]).await;
    // While it sleeps, other plugins can be installed and removed at once.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let op = Instant::now();
    let (status, body) = server
        .put_plugin("other", &example_plugin("account-balance"))
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, _) = server.delete("/plugins/other").await;
    assert_eq!(status, 204);
    assert!(op.elapsed() < Duration::from_secs(5), "{:?}", op.elapsed());
    assert_responsive(&server).await;
    failed_with(&server, "hostile", "deadline of 1500 ms").await;
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    // Removing the plugin does not wait for anything either.
    let op = Instant::now();
    let (status, _) = server.delete("/plugins/hostile").await;
    assert_eq!(status, 204);
    assert!(op.elapsed() < Duration::from_secs(2));
    neighbour_keeps_working(&server).await;
}

#[tokio::test]
async fn a_sleeping_describe_is_refused_at_its_deadline_and_never_delays_the_server() {
    let mut server =
        TestServer::start_with_config("[plugin.sleepy]\ncall_timeout_ms = 1000\n").await;
    server.append("s", &[("Count", json!({}))]).await;
    server.install_file("bank", &example_plugin("account-balance"));
    let started = Instant::now();
    let (status, body) = server
        .put_plugin("sleepy", &test_plugin("sleepy-describe"))
        .await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("deadline"),
        "{body}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    server.wait_caught_up("bank").await;

    // The same file in the directory at a restart: the server answers at once.
    server.kill();
    std::fs::copy(
        test_plugin("sleepy-describe"),
        server.plugins_dir().join("sleepy.wasm"),
    )
    .unwrap();
    server.restart().await;
    assert_responsive(&server).await;
    let listed = server.get_ok("/plugins").await;
    assert!(
        listed["plugins"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "sleepy"),
        "a plugin still loading is listed: {listed}"
    );
    assert_eq!(server.view("bank", "s").await, None);
    server
        .wait_plugin("sleepy", Duration::from_secs(30), |p| {
            p["state"] == "failed"
        })
        .await;
}

#[tokio::test]
async fn sleeping_queries_fill_their_slots_and_the_rest_get_a_clear_503() {
    let server = beside_a_neighbour("[plugin.hostile]\nquery_instances = 2\n").await;
    let queries: Vec<_> = (0..6)
        .map(|_| {
            let url = server.url("/views/hostile/_query/sleep?ms=3000");
            let http = server.http.clone();
            tokio::spawn(async move {
                let r = http.get(url).send().await.unwrap();
                let status = r.status().as_u16();
                let body: Value = r.json().await.unwrap();
                (status, body)
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Reads of every plugin go on meanwhile.
    let started = Instant::now();
    assert!(server.view("bank", "s").await.is_none());
    assert!(server.view("hostile", "s").await.is_some());
    assert!(started.elapsed() < Duration::from_secs(1));
    let mut answered = 0;
    let mut busy = 0;
    for q in queries {
        let (status, body) = q.await.unwrap();
        match status {
            200 => answered += 1,
            503 => {
                assert_eq!(body["error"]["code"], "query_busy", "{body}");
                busy += 1;
            }
            other => panic!("{other}: {body}"),
        }
    }
    assert_eq!((answered, busy), (2, 4));
    assert_responsive(&server).await;
}

/// POST a request that sets off an abort of the process: its status, or
/// `None` when the process was gone before it answered.
async fn post_racing_an_abort(server: &TestServer, path: &str, body: &Value) -> Option<u16> {
    let sent = server.http.post(server.url(path)).json(body).send().await;
    sent.ok().map(|response| response.status().as_u16())
}

async fn wait_for_exit(server: &mut TestServer, failure: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while server.exited().is_none() {
        assert!(Instant::now() < deadline, "{failure}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn an_abort_inside_a_batch_quarantines_the_plugin_instead_of_crash_looping() {
    let mut server = TestServer::start_with_env("", &[("PRISM_FAULT_INJECTION", "1")]).await;
    server
        .append("s", &[("Count", json!({})), ("Count", json!({}))])
        .await;
    server.install_file("bank", &example_plugin("account-balance"));
    server.install_file("hostile", &test_plugin("hostile"));
    server.wait_caught_up("hostile").await;
    server.wait_caught_up("bank").await;
    let events = json!({"events": [
        {"type": "Count", "data": {}},
        {"type": "Abort", "data": {}},
        {"type": "Count", "data": {}},
    ]});
    let status = post_racing_an_abort(&server, "/streams/s/events", &events).await;
    assert!(matches!(status, None | Some(201)), "{status:?}");
    wait_for_exit(&mut server, "the process did not abort").await;

    // It comes back up with the append (durable before it was answered),
    // and the plugin that took it down waits for an operator.
    server.restart().await;
    assert_responsive(&server).await;
    assert_eq!(server.head().await, 5);
    let status = server
        .wait_plugin("hostile", Duration::from_secs(30), |p| {
            p["state"] == "quarantined"
        })
        .await;
    assert!(
        status["last_error"]["message"]
            .as_str()
            .unwrap()
            .contains("aborted"),
        "{status}"
    );
    assert_eq!(server.view("hostile", "s").await.unwrap()["count"], 2);
    neighbour_keeps_working(&server).await;

    // Resumed one event at a time, it aborts again at the very event: so
    // soon, at times, that the process is gone before the answer is sent.
    let status = post_racing_an_abort(&server, "/plugins/hostile/resume", &json!({})).await;
    assert!(matches!(status, None | Some(202)), "{status:?}");
    wait_for_exit(&mut server, "the process did not abort again").await;
    server.restart().await;
    let status = server
        .wait_plugin("hostile", Duration::from_secs(30), |p| {
            p["state"] == "quarantined"
        })
        .await;
    let abort_at = status["last_error"]["position"].as_u64().unwrap();
    assert_eq!(server.view("hostile", "s").await.unwrap()["count"], 3);

    // Skipped, the event is dead-lettered and the rest applied.
    let (status, body) = server.post("/plugins/hostile/skip", &json!({})).await;
    assert_eq!(status, 202, "{body}");
    server.wait_caught_up("hostile").await;
    assert_eq!(server.view("hostile", "s").await.unwrap()["count"], 4);
    let letters = server.get_ok("/plugins/hostile/dead-letters").await;
    assert_eq!(
        letters["dead_letters"][0]["position"], abort_at,
        "{letters}"
    );
    assert!(server.exited().is_none());
}
