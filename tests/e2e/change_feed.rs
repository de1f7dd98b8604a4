//! The change feed can be resumed: after a disconnect at any point, with
//! `Last-Event-ID` or `since=`, a client gets every change exactly once; it
//! is told clearly when it asks from beyond what the view keeps, and when a
//! new generation takes over.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt;
use serde_json::{Value, json};

use crate::common::{TestServer, example_plugin, test_plugin};

/// One server-sent event.
#[derive(Debug, Clone)]
struct Sse {
    id: Option<String>,
    event: String,
    data: Value,
}

/// A connection to `_changes` that yields parsed events.
struct Feed {
    body: std::pin::Pin<Box<dyn futures::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>,
    buffer: String,
}

impl Feed {
    async fn open(
        server: &TestServer,
        plugin: &str,
        query: &str,
        last_event_id: Option<&str>,
    ) -> Feed {
        let mut request = server
            .http
            .get(server.url(&format!("/views/{plugin}/_changes{query}")));
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status().as_u16(), 200);
        Feed {
            body: Box::pin(response.bytes_stream()),
            buffer: String::new(),
        }
    }

    /// The next event (keep-alive comments skipped); panics after 20 s.
    async fn next(&mut self) -> Sse {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut event = Sse {
                    id: None,
                    event: "message".into(),
                    data: Value::Null,
                };
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("id:") {
                        event.id = Some(v.trim().to_string());
                    } else if let Some(v) = line.strip_prefix("event:") {
                        event.event = v.trim().to_string();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim());
                    }
                }
                if data.is_empty() {
                    continue;
                }
                event.data = serde_json::from_str(&data).unwrap();
                return event;
            }
            let chunk = tokio::time::timeout_at(deadline, self.body.next())
                .await
                .expect("an event arrives")
                .unwrap()
                .unwrap();
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
}

fn apply(view: &mut BTreeMap<String, Value>, change: &Sse) {
    let key = change.data["key"].as_str().unwrap().to_string();
    if change.data["deleted"] == true {
        view.remove(&key);
    } else {
        view.insert(key, change.data["value"].clone());
    }
}

#[tokio::test]
async fn a_client_that_disconnects_anywhere_and_resumes_misses_nothing_and_sees_nothing_twice() {
    let server = TestServer::start().await;
    server
        .append("account-0", &[("AccountOpened", json!({"owner": "ann"}))])
        .await;
    server.install_file("bank", &example_plugin("account-balance"));
    server.wait_caught_up("bank").await;
    // The client starts from the whole view, as a client would.
    let mut view: BTreeMap<String, Value> = server.all_docs("bank").await.into_iter().collect();
    let mut feed = Feed::open(&server, "bank", "", None).await;
    let open = feed.next().await;
    assert_eq!(open.event, "open");

    // Writes in the background while the client comes and goes.
    let writer = {
        let base = server.base.clone();
        tokio::spawn(async move {
            let http = reqwest::Client::new();
            for i in 0..300u64 {
                let stream = format!("account-{}", i % 7);
                let events = if i % 5 == 0 {
                    json!([{"type": "AccountOpened", "data": {"owner": format!("o{i}")}}])
                } else {
                    json!([{"type": "Deposited", "data": {"amount": i}}, {"type": "Withdrawn", "data": {"amount": 1}}])
                };
                let r = http
                    .post(format!("{base}/streams/{stream}/events"))
                    .json(&json!({ "events": events }))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status().as_u16(), 201);
            }
        })
    };
    let mut last_id: Option<String> = None;
    let mut seen = std::collections::HashSet::new();
    let mut reconnects = 0;
    let mut round = 0u64;
    loop {
        // Read a pseudo-random number of events, then drop the connection.
        let take = 1 + (round * 7919) % 23;
        round += 1;
        for _ in 0..take {
            let next = tokio::time::timeout(Duration::from_millis(1500), feed.next()).await;
            let Ok(event) = next else { break };
            assert_eq!(event.event, "change", "{event:?}");
            let id = event.id.clone().unwrap();
            assert!(seen.insert(id.clone()), "change {id} delivered twice");
            apply(&mut view, &event);
            last_id = Some(id);
        }
        if writer.is_finished()
            && server.wait_caught_up("bank").await["position"] == server.head().await
        {
            // Drain what is left after the last write.
            let head = server.head().await;
            let mut tail = Feed::open(&server, "bank", "", last_id.as_deref()).await;
            while let Ok(event) =
                tokio::time::timeout(Duration::from_millis(1500), tail.next()).await
            {
                assert_eq!(event.event, "change", "{event:?}");
                let id = event.id.clone().unwrap();
                assert!(seen.insert(id.clone()), "change {id} delivered twice");
                apply(&mut view, &event);
            }
            assert_eq!(server.head().await, head);
            break;
        }
        drop(feed);
        reconnects += 1;
        feed = Feed::open(&server, "bank", "", last_id.as_deref()).await;
    }
    writer.await.unwrap();
    assert!(reconnects > 3, "the client reconnected {reconnects} times");
    let final_view: BTreeMap<String, Value> = server.all_docs("bank").await.into_iter().collect();
    assert_eq!(
        view, final_view,
        "the changes, applied in order, give the view"
    );
}

#[tokio::test]
async fn since_a_position_resumes_there_and_beyond_the_log_asks_for_a_re_read() {
    let server =
        TestServer::start_with_config("[plugin.bank]\nchange_retention_positions = 5000\n").await;
    server
        .append("account-1", &[("AccountOpened", json!({"owner": "ann"}))])
        .await;
    server.install_file("bank", &example_plugin("account-balance"));
    server.wait_caught_up("bank").await;
    let first = server
        .append("account-1", &[("Deposited", json!({"amount": 5}))])
        .await;
    let second = server
        .append("account-1", &[("Deposited", json!({"amount": 6}))])
        .await;
    server.wait_caught_up("bank").await;
    let mut feed = Feed::open(
        &server,
        "bank",
        &format!("?since={}", first["last_position"]),
        None,
    )
    .await;
    let change = feed.next().await;
    assert_eq!(change.event, "change");
    assert!(
        change
            .id
            .unwrap()
            .starts_with(&format!("{}.", second["last_position"]))
    );
    assert_eq!(change.data["value"]["balance"], 11);

    // From before the view recorded anything: re-read, then follow.
    let mut feed = Feed::open(&server, "bank", "?since=0", None).await;
    let reset = feed.next().await;
    assert_eq!(reset.event, "reset", "{reset:?}");
    let at = reset.data["position"].as_u64().unwrap();
    assert_eq!(at, second["last_position"].as_u64().unwrap());
    server
        .append("account-1", &[("Deposited", json!({"amount": 1}))])
        .await;
    let change = feed.next().await;
    assert_eq!(change.data["value"]["balance"], 12);

    // An id the server never gave out is refused clearly.
    let response = server
        .http
        .get(server.url("/views/bank/_changes"))
        .header("last-event-id", "yesterday")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
}

#[tokio::test]
async fn a_new_generation_taking_over_is_announced_on_the_feed() {
    let server = TestServer::start().await;
    server
        .append("account-1", &[("AccountOpened", json!({"owner": "ann"}))])
        .await;
    server.install_file("bank", &example_plugin("account-balance"));
    let old = server.wait_caught_up("bank").await;
    let mut feed = Feed::open(&server, "bank", "", None).await;
    assert_eq!(feed.next().await.event, "open");
    server.install_file("bank", &test_plugin("trap-on-event"));
    let announced = feed.next().await;
    assert_eq!(announced.event, "generation", "{announced:?}");
    assert_ne!(announced.data["generation"], old["generation"]);
    server
        .append("account-1", &[("Deposited", json!({"amount": 1}))])
        .await;
    let change = feed.next().await;
    assert_eq!(change.event, "change");
    assert_eq!(change.data["value"], json!({"count": 2}));
}
