//! Projections that emit events: every emitted event is in the log exactly
//! once — across SIGKILLs during the replay, a rebuild (a candidate
//! replaying beside the serving generation, killed too) and new events —
//! with its causation metadata; an emission to an undeclared stream fails
//! its event and appends nothing; a projection feeding on its own
//! emissions is stopped at the depth bound and says why.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use serde_json::{Value, json};

use crate::common::{TestServer, example_plugin, test_plugin, with_custom_section};

const STREAMS: u64 = 20;
const PINGS_PER_STREAM: u64 = 1000;

/// `STREAMS × PINGS_PER_STREAM` pings; every tenth asks for one echo.
async fn pings(server: &TestServer) -> u64 {
    let mut echoes = 0;
    for s in 0..STREAMS {
        for chunk in 0..(PINGS_PER_STREAM / 500) {
            let events: Vec<(&str, Value)> = (0..500)
                .map(|i| {
                    let n = chunk * 500 + i;
                    let emit = u32::from(n % 10 == 0);
                    echoes += u64::from(emit);
                    ("Ping", json!({"n": n, "emit": emit}))
                })
                .collect();
            server.append(&format!("p{s}"), &events).await;
        }
    }
    echoes
}

/// The emitted events in the log, checked one by one against their cause:
/// derived id, causation and correlation, depth, payload. Panics on a
/// duplicate.
async fn echoes(server: &TestServer) -> Vec<Value> {
    let events = server.all_events().await;
    let by_id: HashMap<&str, &Value> = events
        .iter()
        .map(|e| (e["id"].as_str().unwrap(), e))
        .collect();
    let echoed: Vec<Value> = events
        .iter()
        .filter(|e| e["type"] == "Echoed")
        .cloned()
        .collect();
    let mut causes = HashSet::new();
    for echo in &echoed {
        let meta = &echo["metadata"];
        let cause_id = meta["causation_id"].as_str().unwrap();
        assert!(causes.insert(cause_id.to_string()), "emitted twice: {echo}");
        let cause = by_id[cause_id];
        assert_eq!(cause["type"], "Ping");
        assert_eq!(echo["data"]["n"], cause["data"]["n"]);
        assert_eq!(
            echo["stream"],
            format!("echo-{}", cause["stream"].as_str().unwrap())
        );
        assert_eq!(meta["correlation_id"], cause_id);
        assert_eq!(meta["emit_depth"], 1);
        assert_eq!(meta["emitted_by"], "emitter");
        let id = prism::projector::emit::emitted_id("emitter", cause_id, 0);
        assert_eq!(echo["id"], id.hyphenated().to_string());
        assert!(echo["position"].as_u64() > cause["position"].as_u64());
    }
    echoed
}

#[tokio::test]
async fn emitted_events_are_appended_once_across_kills_rebuilds_and_new_events() {
    let mut server = TestServer::start().await;
    let expected = pings(&server).await;
    server.install_file("emitter", &test_plugin("emitter"));
    server
        .wait_plugin("emitter", Duration::from_secs(60), |p| {
            p["state"] == "replaying"
        })
        .await;
    // Kill the server whenever the replay has moved on since the last kill,
    // until it is live: each kill lands inside the replay, after some of its
    // batches (and their emissions) are committed.
    let mut kills = 0;
    let mut positions = Vec::new();
    let mut last = 0;
    for round in 0..40 {
        tokio::time::sleep(Duration::from_millis(20 + (round * 37) % 60)).await;
        let status = server.plugin("emitter").await;
        if status["state"] == "live" {
            break;
        }
        let position = status["position"].as_u64().unwrap_or(0);
        if position <= last {
            continue;
        }
        last = position;
        positions.push(position);
        server.kill();
        server.restart().await;
        kills += 1;
    }
    assert!(kills >= 1, "the replay was never interrupted");
    let status = server.wait_caught_up("emitter").await;
    assert_eq!(echoes(&server).await.len() as u64, expected);
    assert_eq!(
        server.view("emitter", "p3").await,
        Some(json!(PINGS_PER_STREAM))
    );
    let head = server.head().await;
    eprintln!(
        "killed {kills} times during the replay, at positions {positions:?}; emitted {}",
        status["emitted"]
    );

    // A rebuild: a candidate replays the whole log beside the serving
    // generation, killed once on the way, and emits nothing new.
    let (code, body) = server.post("/plugins/emitter/rebuild", &json!({})).await;
    assert_eq!(code, 202, "{body}");
    server
        .wait_plugin("emitter", Duration::from_secs(60), |p| {
            !p["candidate"].is_null()
        })
        .await;
    tokio::time::sleep(Duration::from_millis(150)).await;
    server.kill();
    server.restart().await;
    let rebuilt = server
        .wait_plugin("emitter", Duration::from_secs(120), |p| {
            // The serving generation went to `previous`: the rebuild took over.
            !p["previous"].is_null()
                && p["candidate"].is_null()
                && p["state"] == "live"
                && p["position"].as_u64() >= Some(head)
        })
        .await;
    assert_eq!(server.head().await, head, "the rebuild appended events");
    assert_eq!(rebuilt["emitted"]["appended"], 0, "{rebuilt}");
    assert_eq!(echoes(&server).await.len() as u64, expected);

    // A hot swap to new content (the same code with a custom section more):
    // the new generation replays everything and emits nothing new either.
    let rebuilt_generation = rebuilt["generation"].clone();
    let bytes = with_custom_section(&std::fs::read(test_plugin("emitter")).unwrap(), "v2");
    let (code, body) = server.put_plugin_bytes("emitter", bytes).await;
    assert!(code == 200 || code == 202, "{code}: {body}");
    let swapped = server
        .wait_plugin("emitter", Duration::from_secs(120), |p| {
            p["generation"] != rebuilt_generation
                && p["candidate"].is_null()
                && p["state"] == "live"
                && p["position"].as_u64() >= Some(head)
        })
        .await;
    assert_eq!(swapped["emitted"]["appended"], 0, "{swapped}");
    assert_eq!(swapped["emitted"]["already_in_log"], expected, "{swapped}");
    assert_eq!(server.head().await, head, "the hot swap appended events");

    // Live events are echoed once each, by the new serving generation.
    server
        .append(
            "p0",
            &[
                ("Ping", json!({"n": 5000, "emit": 1})),
                ("Ping", json!({"n": 5001, "emit": 0})),
            ],
        )
        .await;
    server.wait_caught_up("emitter").await;
    let echoed = echoes(&server).await;
    assert_eq!(echoed.len() as u64, expected + 1);
    assert_eq!(echoed.last().unwrap()["data"], json!({"n": 5000, "k": 0}));
    assert_eq!(server.head().await, head + 3);
}

#[tokio::test]
async fn an_undeclared_stream_is_refused_and_appends_nothing() {
    let server = TestServer::start().await;
    server.install_file("emitter", &test_plugin("emitter"));
    server.wait_caught_up("emitter").await;
    server
        .append("a", &[("Ping", json!({"n": 1, "emit": 2}))])
        .await;
    // Its two echoes are at positions 2 and 3: the bad ping comes at 4.
    server
        .wait_plugin("emitter", Duration::from_secs(30), |p| {
            p["emitted"]["appended"] == 2
        })
        .await;
    server
        .append("a", &[("Ping", json!({"n": 2, "to": "orders"}))])
        .await;
    let failed = server
        .wait_plugin("emitter", Duration::from_secs(30), |p| {
            p["state"] == "failed"
        })
        .await;
    let message = failed["last_error"]["message"].as_str().unwrap();
    assert!(
        message.contains("\"orders\" is not among the streams"),
        "{message}"
    );
    assert_eq!(
        failed["last_error"]["position"], 4,
        "stopped at the bad event"
    );
    let (code, _) = server.get("/streams/orders/events").await;
    assert_eq!(code, 404, "nothing was appended to the undeclared stream");
    // The good event before it was applied, with both its emissions.
    let echoed = echoes_of(&server, "echo-a").await;
    assert_eq!(echoed, [json!({"n": 1, "k": 0}), json!({"n": 1, "k": 1})]);
    assert_eq!(server.view("emitter", "a").await, Some(json!(1)));
}

async fn echoes_of(server: &TestServer, stream: &str) -> Vec<Value> {
    let page = server.get_ok(&format!("/streams/{stream}/events")).await;
    page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["data"].clone())
        .collect()
}

#[tokio::test]
async fn a_projection_feeding_on_its_own_emissions_is_stopped_at_the_depth_bound() {
    let server = TestServer::start().await;
    server.install_file("emitter", &test_plugin("emitter"));
    server.wait_caught_up("emitter").await;
    server.append("loop", &[("Looped", json!({}))]).await;
    let failed = server
        .wait_plugin("emitter", Duration::from_secs(30), |p| {
            p["state"] == "failed"
        })
        .await;
    let message = failed["last_error"]["message"].as_str().unwrap();
    let bound = prism::projector::emit::MAX_EMIT_DEPTH;
    assert!(
        message.contains(&format!("a chain of {} emissions", bound + 1)),
        "{message}"
    );
    assert!(message.contains("react to its own emissions"), "{message}");
    // The client's event and one emission per level, each caused by the one before.
    let page = server.get_ok("/streams/loop/events").await;
    let events = page["events"].as_array().unwrap();
    assert_eq!(events.len() as u64, 1 + bound);
    let correlation = events[0]["id"].as_str().unwrap();
    for (depth, pair) in events.windows(2).enumerate() {
        let meta = &pair[1]["metadata"];
        assert_eq!(meta["causation_id"], pair[0]["id"]);
        assert_eq!(meta["correlation_id"], correlation);
        assert_eq!(meta["emit_depth"], depth as u64 + 1);
    }
    // It stays stopped: nothing more is appended.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(server.head().await, 1 + bound);
}

#[tokio::test]
async fn on_the_jetstream_log_a_projection_that_emits_fails_saying_why() {
    let nats = prism::cluster::testing::NatsCluster::start(1).await;
    let toml = format!(
        "node = \"solo\"\n[log]\nurl = \"{}\"\nreplicas = 1\n",
        nats.servers()
    );
    let server = TestServer::start_with_config(&toml).await;
    // The first appends wait for the JetStream stream to be ready.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let id = "6a0d6d1e-0000-4000-8000-000000000001"; // retried with the same id
        let events = json!({"events": [{"id": id, "type": "Ping", "data": {"n": 1}}]});
        let (code, body) = server.post("/streams/a/events", &events).await;
        if code == 201 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{code}: {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    server.install_file("emitter", &test_plugin("emitter"));
    let failed = server
        .wait_plugin("emitter", Duration::from_secs(30), |p| {
            p["state"] == "failed"
        })
        .await;
    let message = failed["last_error"]["message"].as_str().unwrap();
    assert!(message.contains("needs the embedded log"), "{message}");
    assert_eq!(server.head().await, 1, "nothing was emitted");
    assert_eq!(server.view("emitter", "a").await, None);
}

#[tokio::test]
async fn the_email_campaign_saga_requests_one_email_per_b_customer_once() {
    let server = TestServer::start().await;
    for (i, (customer, total)) in [
        ("ann", 150),
        ("bob", 40),
        ("cid", 90),
        ("cid", 20),
        ("dan", 2000),
    ]
    .into_iter()
    .enumerate()
    {
        server
            .append(
                &format!("order-{i}"),
                &[("OrderPlaced", json!({"customer": customer, "total": total}))],
            )
            .await;
    }
    server.install_file(
        "customer-classification",
        &example_plugin("customer-classification"),
    );
    server.install_file("campaign-reactor", &example_plugin("campaign-reactor"));
    server.wait_caught_up("customer-classification").await;
    server.wait_caught_up("campaign-reactor").await;
    assert_eq!(
        server.view("customer-classification", "customer-cid").await,
        Some(json!({"orders": 2, "spent": 110.0, "rating": "B"}))
    );
    let campaign = server
        .append(
            "campaigns",
            &[(
                "EmailCampaignStarted",
                json!({"campaign": "spring", "rating": "B"}),
            )],
        )
        .await;
    server.wait_caught_up("campaign-reactor").await;
    let requests = server.get_ok("/streams/campaign-spring/events").await["events"]
        .as_array()
        .unwrap()
        .clone();
    let customers: Vec<&str> = requests
        .iter()
        .map(|e| e["data"]["customer"].as_str().unwrap())
        .collect();
    assert_eq!(customers, ["ann", "cid"]);
    let campaign_id = server
        .all_events()
        .await
        .into_iter()
        .find(|e| e["position"] == campaign["first_position"])
        .unwrap()["id"]
        .clone();
    for request in &requests {
        assert_eq!(request["metadata"]["causation_id"], campaign_id);
        assert_eq!(request["metadata"]["emitted_by"], "campaign-reactor");
    }
    let (_, metrics) = server.get_text("/metrics").await;
    assert!(
        metrics.contains("prism_plugin_emitted_events_total{plugin=\"campaign-reactor\"} 2"),
        "{metrics}"
    );
    // A rebuild of the reactor replays everything and requests nothing again.
    let head = server.head().await;
    let (code, body) = server
        .post("/plugins/campaign-reactor/rebuild", &json!({}))
        .await;
    assert_eq!(code, 202, "{body}");
    let rebuilt = server
        .wait_plugin("campaign-reactor", Duration::from_secs(60), |p| {
            !p["previous"].is_null() && p["candidate"].is_null() && p["state"] == "live"
        })
        .await;
    assert_eq!(rebuilt["emitted"]["appended"], 0, "{rebuilt}");
    assert_eq!(server.head().await, head);
}
