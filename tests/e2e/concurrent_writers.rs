//! Optimistic concurrency under concurrent writers: no lost or duplicated
//! positions, exactly one winner per expected version.

use std::collections::HashSet;

use serde_json::json;

use crate::common::TestServer;

#[tokio::test]
async fn concurrent_writers_with_expected_versions_never_lose_or_duplicate() {
    let server = TestServer::start().await;
    server.append("counter", &[("Started", json!({}))]).await;
    let writers = 8;
    let attempts = 25;
    let mut tasks = Vec::new();
    for w in 0..writers {
        let http = server.http.clone();
        let url = server.url("/streams/counter/events");
        let stream_url = server.url("/streams/counter/events?from_version=0&limit=10000");
        tasks.push(tokio::spawn(async move {
            let mut won = Vec::new();
            let mut conflicts = 0;
            for a in 0..attempts {
                let current: serde_json::Value = http.get(&stream_url).send().await.unwrap().json().await.unwrap();
                let version = current["events"].as_array().unwrap().len() as u64 - 1;
                let response = http
                    .post(&url)
                    .json(&json!({"events": [{"type": "Incremented", "data": {"writer": w, "attempt": a}}], "expected_version": version}))
                    .send()
                    .await
                    .unwrap();
                match response.status().as_u16() {
                    201 => {
                        let body: serde_json::Value = response.json().await.unwrap();
                        assert_eq!(body["stream_version"], version + 1);
                        won.push(body["first_position"].as_u64().unwrap());
                    }
                    409 => conflicts += 1,
                    other => panic!("unexpected status {other}"),
                }
            }
            (won, conflicts)
        }));
    }
    // Unconditional writers on other streams at the same time.
    for w in 0..4 {
        let http = server.http.clone();
        let url = server.url(&format!("/streams/other-{w}/events"));
        tasks.push(tokio::spawn(async move {
            let mut won = Vec::new();
            for i in 0..25 {
                let body: serde_json::Value = http
                    .post(&url)
                    .json(&json!({"events": [{"type": "Noise", "data": {"i": i}}]}))
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                won.push(body["first_position"].as_u64().unwrap());
            }
            (won, 0)
        }));
    }
    let mut positions = HashSet::new();
    let mut successes = 0;
    for t in tasks {
        let (won, _) = t.await.unwrap();
        successes += won.len();
        for p in won {
            assert!(positions.insert(p), "position {p} acknowledged twice");
        }
    }
    let events = server.all_events().await;
    assert_eq!(events.len(), successes + 1);
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e["position"], i as u64 + 1, "positions are gapless");
    }
    let counter = server.get_ok("/streams/counter/events?limit=10000").await;
    let versions: Vec<u64> = counter["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["stream_version"].as_u64().unwrap())
        .collect();
    assert_eq!(
        versions,
        (0..versions.len() as u64).collect::<Vec<_>>(),
        "stream versions are gapless"
    );
}
