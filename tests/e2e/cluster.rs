//! Prism on a cluster: real `nats-server` processes (three, JetStream R3) and
//! real Prism nodes on loopback. The log's contract holds on both backends;
//! an append through any node is read through every node; plugins installed
//! on one node serve on all; writers racing across nodes lose nothing; a
//! killed JetStream leader or Prism node loses no acknowledged event and
//! leaves every node's views equal.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use prism::cluster::testing::NatsCluster;
use serde_json::{Value, json};

use crate::common::{TestServer, example_plugin};

/// A Prism node of the cluster `nats`.
async fn node(nats: &NatsCluster, name: &str) -> TestServer {
    TestServer::start_with(&["--log-url", &nats.servers(), "--node", name]).await
}

/// The log contract every backend keeps, as a client sees it over HTTP.
async fn log_contract(server: &TestServer) {
    // Gapless positions from 1, versions per stream from 0.
    let a = server
        .append("c-a", &[("T", json!({"n": 1})), ("T", json!({"n": 2}))])
        .await;
    assert_eq!(
        (a["first_position"].clone(), a["last_position"].clone()),
        (json!(1), json!(2))
    );
    assert_eq!(a["stream_version"], 1);
    let b = server.append("c-b", &[("T", json!({"n": 3}))]).await;
    assert_eq!(
        (b["first_position"].clone(), b["stream_version"].clone()),
        (json!(3), json!(0))
    );
    // Expected versions: every kind accepts and refuses.
    let post = |stream: &str, expected: Value| {
        let body = json!({"events": [{"type": "T"}], "expected_version": expected});
        let path = format!("/streams/{stream}/events");
        async move { server.post(&path, &body).await }
    };
    assert_eq!(post("c-a", json!(1)).await.0, 201);
    let (status, body) = post("c-a", json!(1)).await;
    assert_eq!(
        (status, body["error"]["current_version"].clone()),
        (409, json!(2))
    );
    assert_eq!(post("c-new", json!("no_stream")).await.0, 201);
    assert_eq!(post("c-new", json!("no_stream")).await.0, 409);
    assert_eq!(post("c-none", json!("exists")).await.0, 409);
    assert_eq!(post("c-a", json!("exists")).await.0, 201);
    assert_eq!(post("c-a", json!("any")).await.0, 201);
    // An idempotent retry answers the original outcome and appends nothing;
    // a partial overlap is refused.
    let ids = [
        "00000000-0000-4000-8000-00000000000a",
        "00000000-0000-4000-8000-00000000000b",
    ];
    let body = json!({"events": [{"type": "T", "id": ids[0]}, {"type": "T", "id": ids[1]}]});
    let (status, first) = server.post("/streams/c-r/events", &body).await;
    assert_eq!(status, 201, "{first}");
    let head = server.head().await;
    let (status, again) = server.post("/streams/c-r/events", &body).await;
    assert_eq!((status, &again), (201, &first));
    assert_eq!(server.head().await, head);
    let mixed = json!({"events": [{"type": "T", "id": ids[0]}, {"type": "T", "id": "00000000-0000-4000-8000-00000000000c"}]});
    let (status, body) = server.post("/streams/c-r/events", &mixed).await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (409, json!("idempotency_conflict"))
    );
    // Reads by position and by stream.
    let events = server.all_events().await;
    let positions: Vec<u64> = events
        .iter()
        .map(|e| e["position"].as_u64().unwrap())
        .collect();
    assert_eq!(positions, (1..=head).collect::<Vec<_>>(), "gapless");
    let stream = server.get_ok("/streams/c-a/events?from_version=1").await;
    let versions: Vec<u64> = stream["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["stream_version"].as_u64().unwrap())
        .collect();
    assert_eq!(versions, [1, 2, 3, 4]);
}

#[tokio::test]
async fn the_log_contract_holds_on_the_embedded_log() {
    let server = TestServer::start().await;
    log_contract(&server).await;
}

#[tokio::test]
async fn the_log_contract_holds_on_jetstream() {
    let nats = NatsCluster::start(3).await;
    let server = node(&nats, "solo").await;
    log_contract(&server).await;
    let health = server.get_ok("/healthz").await;
    assert_eq!(health["log"]["backend"], "jetstream");
    assert_eq!(health["log"]["state"], "following", "{health}");
}

/// Every document of `plugin` on `server`, read at `position` (once the
/// plugin has reached the node).
async fn view_at(server: &TestServer, plugin: &str, position: u64) -> BTreeMap<String, Value> {
    server
        .wait_plugin(plugin, Duration::from_secs(60), |p| {
            !p["generation"].is_null()
        })
        .await;
    let (status, body) = server
        .get(&format!(
            "/views/{plugin}?limit=1000&min_position={position}&timeout_ms=30000"
        ))
        .await;
    assert_eq!(status, 200, "{body}");
    body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["key"].as_str().unwrap().to_string(), i["value"].clone()))
        .collect()
}

#[tokio::test]
async fn nodes_share_appends_plugins_and_read_your_writes_across_nodes_and_a_late_joiner_catches_up()
 {
    let nats = NatsCluster::start(3).await;
    let a = Arc::new(node(&nats, "a").await);
    let b = node(&nats, "b").await;
    let (status, body) = a
        .put_plugin("bank", &example_plugin("account-balance"))
        .await;
    assert_eq!(status, 201, "{body}");
    // Appended on a, read on b with the position a answered.
    let appended = a
        .append(
            "account-1",
            &[
                ("AccountOpened", json!({"owner": "ann"})),
                ("Deposited", json!({"amount": 5})),
            ],
        )
        .await;
    let position = appended["last_position"].as_u64().unwrap();
    b.wait_plugin("bank", Duration::from_secs(60), |p| {
        !p["generation"].is_null()
    })
    .await;
    let response = b
        .http
        .get(b.url(&format!(
            "/views/bank/account-1?min_position={position}&timeout_ms=30000"
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.headers()["prism-node"], "b");
    let doc: Value = response.json().await.unwrap();
    assert_eq!(
        doc,
        json!({"owner": "ann", "balance": 5, "transactions": 1})
    );
    // A node that joins late gets the plugin installed on a and the log
    // appended before it came, and serves them.
    let c = node(&nats, "c").await;
    let on_c = view_at(&c, "bank", position).await;
    assert_eq!(on_c["account-1"]["balance"], 5);

    // Writers racing across nodes with expected versions: no version is
    // given twice, no acknowledged event is lost.
    let nodes = [a.clone(), Arc::new(b), Arc::new(c)];
    let writers: Vec<_> = (0..6)
        .map(|w| {
            let server = nodes[w % 3].clone();
            tokio::spawn(async move {
                let mut won = Vec::new();
                for _ in 0..15 {
                    let (status, current) = server.get("/streams/race/events?limit=10000").await;
                    assert!(status == 200 || status == 404, "{status}: {current}");
                    let version = current["events"].as_array().map_or(-1, |e| e.len() as i64 - 1);
                    let expected = if version < 0 { json!("no_stream") } else { json!(version) };
                    let (status, body) = server
                        .post("/streams/race/events", &json!({"events": [{"type": "Won", "data": {"w": w}}], "expected_version": expected}))
                        .await;
                    match status {
                        201 => won.push(body["stream_version"].as_u64().unwrap()),
                        409 => {}
                        other => panic!("{other}: {body}"),
                    }
                }
                won
            })
        })
        .collect();
    let mut versions: Vec<u64> = Vec::new();
    for w in writers {
        versions.extend(w.await.unwrap());
    }
    versions.sort();
    assert_eq!(
        versions,
        (0..versions.len() as u64).collect::<Vec<_>>(),
        "each version won exactly once"
    );
    // An idempotent retry through another node answers the original outcome.
    let body = json!({"events": [{"type": "T", "id": "00000000-0000-4000-8000-0000000000aa"}]});
    let (_, first) = nodes[0].post("/streams/retry/events", &body).await;
    let (status, again) = nodes[1].post("/streams/retry/events", &body).await;
    assert_eq!((status, again), (201, first));

    let head = nodes[0].head().await;
    let race = nodes[2].get_ok("/streams/race/events?limit=10000").await;
    assert_eq!(race["events"].as_array().unwrap().len(), versions.len());
    // Heartbeats are eventual: every node is listed within a few periods.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let cluster = nodes[1].get_ok("/cluster").await;
        let names: Vec<&str> = cluster["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|n| n["node"].as_str())
            .collect();
        if names == ["a", "b", "c"] {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{cluster}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for n in &nodes {
        assert_eq!(
            view_at(n, "bank", head).await,
            view_at(&nodes[0], "bank", head).await
        );
    }
}

#[tokio::test]
async fn a_killed_jetstream_leader_or_prism_node_loses_no_acknowledged_event() {
    let mut nats = NatsCluster::start(3).await;
    let a = Arc::new(node(&nats, "a").await);
    let mut b = node(&nats, "b").await;
    let (status, _) = a
        .put_plugin("bank", &example_plugin("account-balance"))
        .await;
    assert_eq!(status, 201);
    // Appends with client ids, retried on 503 with the same ids.
    let writer = {
        let a = a.clone();
        tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            let deadline = std::time::Instant::now() + Duration::from_secs(120);
            for i in 0..250u32 {
                let id = format!("00000000-0000-4000-8000-{:012x}", i + 1);
                let body =
                    json!({"events": [{"type": "Deposited", "id": id, "data": {"amount": 1}}]});
                loop {
                    assert!(
                        std::time::Instant::now() < deadline,
                        "appends never resumed"
                    );
                    let (status, answer) = a
                        .post(&format!("/streams/account-{}/events", i % 5), &body)
                        .await;
                    match status {
                        201 => {
                            acknowledged.push(answer["last_position"].as_u64().unwrap());
                            break;
                        }
                        503 => tokio::time::sleep(Duration::from_millis(100)).await,
                        other => panic!("{other}: {answer}"),
                    }
                }
            }
            acknowledged
        })
    };
    tokio::time::sleep(Duration::from_millis(400)).await;
    let leader = nats
        .wait_for_stream_leader("PRISM_EVENTS", Duration::from_secs(10))
        .await;
    nats.kill(leader);
    b.kill();
    tokio::time::sleep(Duration::from_millis(500)).await;
    b.restart().await;
    let acknowledged = writer.await.unwrap();
    nats.restart(leader).await;
    assert_eq!(acknowledged.len(), 250);
    let head = a.head().await;
    let events = a.all_events().await;
    assert_eq!(events.len() as u64, head, "gapless");
    let mut ids: Vec<&str> = events.iter().map(|e| e["id"].as_str().unwrap()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 250, "every acknowledged event exactly once");
    // The restarted node caught up: its views equal the others' at the head.
    assert_eq!(
        view_at(&b, "bank", head).await,
        view_at(&a, "bank", head).await
    );
    // A node joining now catches up and serves the same.
    let late = node(&nats, "late").await;
    assert_eq!(
        view_at(&late, "bank", head).await,
        view_at(&a, "bank", head).await
    );
}

#[tokio::test]
async fn a_node_whose_cluster_is_unreachable_serves_its_views_and_says_so() {
    let mut nats = NatsCluster::start(1).await;
    let config = format!(
        "node = \"alone\"\n[log]\nurl = \"{}\"\nreplicas = 1\n",
        nats.servers()
    );
    let mut server = TestServer::start_with_config(&config).await;
    server
        .put_plugin("bank", &example_plugin("account-balance"))
        .await;
    server
        .append("account-1", &[("AccountOpened", json!({"owner": "ann"}))])
        .await;
    server.wait_caught_up("bank").await;
    server.kill();
    nats.kill(0);
    server.restart().await;
    let health = server.get_ok("/healthz").await;
    assert_eq!(health["status"], "degraded", "{health}");
    assert_ne!(health["log"]["state"], "following", "{health}");
    let response = server
        .http
        .get(server.url("/views/bank/account-1"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.headers()["prism-position"], "1");
    let (status, body) = server
        .post(
            "/streams/account-1/events",
            &json!({"events": [{"type": "T"}]}),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (503, json!("log_unavailable")),
        "{body}"
    );
}

/// `prism import` into a node on a single JetStream server (which checks a
/// publish's expectations before its event id), run again within the
/// duplicate window and past it, with concurrent retries of one append in
/// between: every line and every retried event is in the log once.
#[tokio::test]
async fn imports_and_retries_on_jetstream_store_each_event_once_within_and_past_the_window() {
    let nats = NatsCluster::start(1).await;
    let server = TestServer::start_with_config(&format!(
        "node = \"solo\"\n[log]\nurl = \"{}\"\nreplicas = 1\nduplicate_window_secs = 1\n",
        nats.servers()
    ))
    .await;
    let lines: Vec<String> = (0..2500)
        .map(|i| {
            json!({
                "stream": format!("account-{}", (i * 7) % 50),
                "type": "Deposited",
                "data": {"line": i + 1},
            })
            .to_string()
        })
        .collect();
    let file = server.dir.path().join("events.ndjson");
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    let import = || {
        let out = crate::common::prism_command(server.dir.path())
            .arg("import")
            .arg(&file)
            .args(["--server", &server.base])
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{said}");
        said
    };
    let first = import();
    assert!(first.contains("2500 appended now, 0 already"), "{first}");
    let again = import();
    assert!(again.contains("0 appended now, 2500 already"), "{again}");

    // One append across streams sent by 8 clients at once: one stores it,
    // the others get its outcome as a duplicate.
    let id = |n: u32| format!("00000000-0000-4000-8000-{n:012}");
    let body = json!({"events": [
        {"stream": "retried-a", "type": "T", "id": id(1)},
        {"stream": "retried-b", "type": "T", "id": id(2)},
        {"stream": "retried-a", "type": "T", "id": id(3)},
    ]});
    let answers = futures::future::join_all((0..8).map(|_| server.post("/events", &body))).await;
    let outcome = json!({"first_position": 2501, "last_position": 2503,
        "streams": {"retried-a": 1, "retried-b": 0}});
    let mut stored = 0;
    for (status, answer) in &answers {
        let mut answer = answer.clone();
        let duplicate = answer["duplicate"] == true;
        answer.as_object_mut().unwrap().remove("duplicate");
        assert_eq!(answer, outcome);
        assert_eq!(*status, if duplicate { 200 } else { 201 });
        stored += usize::from(!duplicate);
    }
    assert_eq!(stored, 1);

    // Past the window JetStream has forgotten the ids; the node's copy has not.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let (status, late) = server.post("/events", &body).await;
    assert_eq!((status, late["last_position"].clone()), (200, json!(2503)));
    let past = import();
    assert!(past.contains("0 appended now, 2500 already"), "{past}");

    let events = server.all_events().await;
    assert_eq!(events.len(), 2503, "events in the log");
    let order: Vec<u64> = events[..2500]
        .iter()
        .map(|e| e["data"]["line"].as_u64().unwrap())
        .collect();
    assert_eq!(
        order,
        (1..=2500).collect::<Vec<_>>(),
        "each line once, in order"
    );
}
