//! Arbitrary JSON through a real server: every document of the committed
//! corpus (`tests/data/json-corpus.jsonl`, see `host/src/log/json_corpus.rs`)
//! is refused with a 400 or read back byte for byte, as `data` and, for
//! objects, as `metadata`.

use futures::StreamExt;
use serde::Deserialize;
use serde_json::json;

use crate::common::{RawPage, TestServer, repo_root};

#[derive(Deserialize)]
struct Entry {
    text: String,
    accepted: bool,
}

/// What the log keeps of a value: its text without the whitespace around it.
fn trimmed(text: &str) -> &str {
    text.trim_matches([' ', '\t', '\n', '\r'])
}

#[tokio::test]
async fn every_corpus_document_is_refused_or_read_back_byte_for_byte() {
    let corpus: Vec<Entry> =
        std::fs::read_to_string(repo_root().join("tests/data/json-corpus.jsonl"))
            .unwrap()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
    let server = TestServer::start().await;
    // One append per document, so that each is judged alone; a few at once.
    let answers: Vec<(usize, u16, serde_json::Value)> =
        futures::stream::iter(corpus.iter().enumerate())
            .map(|(i, entry)| {
                let server = &server;
                async move {
                    let object = trimmed(&entry.text).starts_with('{');
                    let metadata = if object { entry.text.as_str() } else { "{}" };
                    let body = format!(
                        r#"{{"events":[{{"type":"Corpus","data":{},"metadata":{metadata}}}]}}"#,
                        entry.text
                    );
                    let (status, reply) = server
                        .post_raw(&format!("/streams/corpus-{i}/events"), body)
                        .await;
                    (i, status, reply)
                }
            })
            .buffer_unordered(8)
            .collect()
            .await;
    let mut accepted = 0;
    for (i, status, reply) in answers {
        let entry = &corpus[i];
        if entry.accepted {
            assert_eq!(status, 201, "{:.300} → {reply}", entry.text);
            accepted += 1;
        } else {
            assert_eq!(status, 400, "{:.300} → {reply}", entry.text);
            assert_eq!(reply["error"]["code"], json!("invalid_event"), "{reply}");
        }
    }
    assert_eq!(server.head().await, accepted);

    let mut from = 1;
    let mut read = 0;
    loop {
        let (status, text) = server
            .get_text(&format!("/events?from_position={from}&limit=100"))
            .await;
        assert_eq!(status, 200);
        let page = RawPage::parse(&text);
        if page.events.is_empty() {
            break;
        }
        for event in &page.events {
            let i: usize = event.stream["corpus-".len()..].parse().unwrap();
            let sent = trimmed(&corpus[i].text);
            assert!(corpus[i].accepted);
            assert_eq!(event.data.get(), sent, "data of corpus document {i}");
            if sent.starts_with('{') {
                assert_eq!(event.metadata.get(), sent, "metadata of document {i}");
            }
            read += 1;
        }
        from = page.next_position.unwrap();
    }
    assert_eq!(read, accepted);
}
