//! Re-sending an append whose event ids are already in the log returns the
//! original result and appends nothing.

use serde_json::json;

use crate::common::TestServer;

#[tokio::test]
async fn a_retried_append_returns_the_original_result() {
    let server = TestServer::start().await;
    server.append("other", &[("Noise", json!({}))]).await;
    let body = json!({"events": [
        {"type": "Deposited", "data": {"amount": 1}, "id": "00000000-0000-4000-8000-000000000001"},
        {"type": "Deposited", "data": {"amount": 2}, "id": "00000000-0000-4000-8000-000000000002"},
    ]});
    let (status, first) = server.post("/streams/account-7/events", &body).await;
    assert_eq!(status, 201);
    server.append("other", &[("Noise", json!({}))]).await;
    let (status, again) = server.post("/streams/account-7/events", &body).await;
    assert_eq!(status, 201);
    assert_eq!(again, first);
    assert_eq!(
        again,
        json!({"first_position": 2, "last_position": 3, "stream_version": 1})
    );
    assert_eq!(server.head().await, 4);

    // Concurrent retries of a new append: exactly one copy lands.
    let body = json!({"events": [{"type": "Deposited", "data": {"amount": 3}, "id": "00000000-0000-4000-8000-000000000003"}]});
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let http = server.http.clone();
        let url = server.url("/streams/account-7/events");
        let body = body.clone();
        tasks.push(tokio::spawn(async move {
            let r = http.post(url).json(&body).send().await.unwrap();
            assert_eq!(r.status().as_u16(), 201);
            r.json::<serde_json::Value>().await.unwrap()
        }));
    }
    let mut answers = Vec::new();
    for t in tasks {
        answers.push(t.await.unwrap());
    }
    assert!(answers.iter().all(|a| *a == answers[0]));
    assert_eq!(server.head().await, 5);
}

#[tokio::test]
async fn a_partial_retry_is_a_conflict_and_appends_nothing() {
    let server = TestServer::start().await;
    let id = "00000000-0000-4000-8000-00000000000a";
    let (status, _) = server
        .post(
            "/streams/s/events",
            &json!({"events": [{"type": "A", "id": id}]}),
        )
        .await;
    assert_eq!(status, 201);
    let (status, body) = server
        .post(
            "/streams/s/events",
            &json!({"events": [{"type": "A", "id": id}, {"type": "B"}]}),
        )
        .await;
    assert_eq!(status, 409);
    assert_eq!(body["error"]["code"], "idempotency_conflict");
    let (status, body) = server
        .post(
            "/streams/elsewhere/events",
            &json!({"events": [{"type": "A", "id": id}]}),
        )
        .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(server.head().await, 1);
}
