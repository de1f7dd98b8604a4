//! Acknowledged appends survive SIGKILL, with gapless positions.

use serde_json::json;

use crate::common::TestServer;

#[tokio::test]
async fn acknowledged_events_survive_sigkill() {
    let mut server = TestServer::start().await;
    let mut acknowledged = Vec::new();
    for round in 0..3 {
        let mut tasks = Vec::new();
        for w in 0..16 {
            let http = server.http.clone();
            let url = server.url(&format!("/streams/writer-{w}/events"));
            tasks.push(tokio::spawn(async move {
                let mut acks = Vec::new();
                for i in 0..20 {
                    let r = http
                        .post(&url)
                        .json(&json!({"events": [{"type": "Wrote", "data": {"round": round, "i": i}}]}))
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(r.status().as_u16(), 201);
                    let body: serde_json::Value = r.json().await.unwrap();
                    acks.push(body["first_position"].as_u64().unwrap());
                }
                acks
            }));
        }
        for t in tasks {
            acknowledged.extend(t.await.unwrap());
        }
        server.kill();
        server.restart().await;
    }
    let events = server.all_events().await;
    assert_eq!(events.len(), acknowledged.len());
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e["position"], i as u64 + 1);
    }
    acknowledged.sort();
    assert_eq!(acknowledged, (1..=events.len() as u64).collect::<Vec<_>>());
    // The writer still works after the restarts and continues the sequence.
    let next = server.append("writer-0", &[("Wrote", json!({}))]).await;
    assert_eq!(next["first_position"], events.len() as u64 + 1);
    assert_eq!(next["stream_version"], 60);
}
