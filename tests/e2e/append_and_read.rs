//! Appending to streams and reading them back, by stream and globally.

use serde_json::json;

use crate::common::TestServer;

#[tokio::test]
async fn appended_events_read_back_in_order_with_positions_and_versions() {
    let server = TestServer::start().await;
    let first = server
        .append(
            "account-1",
            &[
                ("AccountOpened", json!({"owner": "ann"})),
                ("Deposited", json!({"amount": 10})),
            ],
        )
        .await;
    assert_eq!(
        first,
        json!({"first_position": 1, "last_position": 2, "stream_version": 1})
    );
    let second = server
        .append("account-2", &[("AccountOpened", json!({"owner": "bob"}))])
        .await;
    assert_eq!(
        second,
        json!({"first_position": 3, "last_position": 3, "stream_version": 0})
    );
    let third = server
        .append("account-1", &[("Withdrawn", json!({"amount": 4}))])
        .await;
    assert_eq!(
        third,
        json!({"first_position": 4, "last_position": 4, "stream_version": 2})
    );

    let log = server.get_ok("/events").await;
    let events = log["events"].as_array().unwrap();
    assert_eq!(events.len(), 4);
    let positions: Vec<u64> = events
        .iter()
        .map(|e| e["position"].as_u64().unwrap())
        .collect();
    assert_eq!(positions, vec![1, 2, 3, 4]);
    assert_eq!(events[0]["stream"], "account-1");
    assert_eq!(events[0]["type"], "AccountOpened");
    assert_eq!(events[0]["data"], json!({"owner": "ann"}));
    assert_eq!(events[0]["metadata"], json!({}));
    assert!(events[0]["id"].as_str().unwrap().len() == 36);
    assert!(events[0]["recorded_at"].as_str().unwrap().ends_with('Z'));

    let stream = server.get_ok("/streams/account-1/events").await;
    let versions: Vec<u64> = stream["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["stream_version"].as_u64().unwrap())
        .collect();
    assert_eq!(versions, vec![0, 1, 2]);
    let types: Vec<&str> = stream["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, vec!["AccountOpened", "Deposited", "Withdrawn"]);
}

#[tokio::test]
async fn reads_page_with_from_and_limit() {
    let server = TestServer::start().await;
    let events: Vec<_> = (0..10)
        .map(|i| ("Deposited", json!({"amount": i})))
        .collect();
    server.append("account-9", &events).await;
    let page = server.get_ok("/events?from_position=4&limit=3").await;
    let positions: Vec<u64> = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["position"].as_u64().unwrap())
        .collect();
    assert_eq!(positions, vec![4, 5, 6]);
    let page = server
        .get_ok("/streams/account-9/events?from_version=8&limit=5")
        .await;
    let versions: Vec<u64> = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["stream_version"].as_u64().unwrap())
        .collect();
    assert_eq!(versions, vec![8, 9]);
}

#[tokio::test]
async fn metadata_and_client_ids_are_kept() {
    let server = TestServer::start().await;
    let id = "5f0c6a52-8d0e-4a3c-9a51-0b5a6c1d2e3f";
    let (status, _) = server
        .post(
            "/streams/orders-1/events",
            &json!({"events": [{"type": "OrderPlaced", "data": {"total": 5}, "metadata": {"user": "u1"}, "id": id}]}),
        )
        .await;
    assert_eq!(status, 201);
    let event = &server.get_ok("/streams/orders-1/events").await["events"][0];
    assert_eq!(event["id"], id);
    assert_eq!(event["metadata"], json!({"user": "u1"}));
}

#[tokio::test]
async fn unknown_stream_is_a_404_and_expected_versions_are_enforced() {
    let server = TestServer::start().await;
    let (status, body) = server.get("/streams/nope/events").await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "stream_not_found");

    let append = |expected: serde_json::Value| json!({"events": [{"type": "E", "data": {}}], "expected_version": expected});
    assert_eq!(
        server
            .post("/streams/s/events", &append(json!("exists")))
            .await
            .0,
        409
    );
    assert_eq!(
        server
            .post("/streams/s/events", &append(json!("no_stream")))
            .await
            .0,
        201
    );
    assert_eq!(
        server
            .post("/streams/s/events", &append(json!("no_stream")))
            .await
            .0,
        409
    );
    assert_eq!(
        server
            .post("/streams/s/events", &append(json!("exists")))
            .await
            .0,
        201
    );
    assert_eq!(
        server.post("/streams/s/events", &append(json!(1))).await.0,
        201
    );
    let (status, body) = server.post("/streams/s/events", &append(json!(1))).await;
    assert_eq!(status, 409);
    assert_eq!(body["error"]["code"], "wrong_expected_version");
    assert_eq!(body["error"]["current_version"], 2);
    assert_eq!(
        server
            .post("/streams/s/events", &append(json!("any")))
            .await
            .0,
        201
    );
    assert_eq!(server.head().await, 4);
}
