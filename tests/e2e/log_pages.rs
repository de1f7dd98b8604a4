//! Log reads are bounded in bytes as well as in events: a page of big events
//! ends early, and following `next_position` (the log) or `next_version` (a
//! stream) visits every event exactly once, byte for byte.

use std::collections::BTreeMap;

use crate::common::{RawPage, TestServer};

/// The documented bound on the events of one page, in bytes of JSON.
const PAGE_BYTES: usize = 4 << 20;
/// Room for a page's envelope (`{"events":[…],"head":…}`) around its events.
const ENVELOPE: usize = 1024;

/// `bytes` of JSON: an array of numbers with some spacing, different per `seed`.
fn numbers(bytes: usize, seed: u64) -> String {
    let mut out = String::from("[");
    let mut n = seed.wrapping_mul(2_654_435_761) % 1_000_000;
    while out.len() < bytes {
        if out.len() > 1 {
            out.push_str(if n.is_multiple_of(7) { ", " } else { "," });
        }
        out.push_str(&n.to_string());
        n = (n * 48_271 + 11) % 2_147_483_647;
    }
    out.push(']');
    out
}

#[tokio::test]
async fn big_events_end_pages_early_and_following_the_pages_reads_each_once() {
    let server = TestServer::start_with(&["--max-body-bytes", &(16usize << 20).to_string()]).await;
    // (stream, data): small events between big ones, one bigger than a page.
    let mut sent: Vec<(&str, String)> = Vec::new();
    for i in 0..12u64 {
        let stream = if i % 2 == 0 { "big-a" } else { "big-b" };
        let size = match i {
            5 => PAGE_BYTES + (1 << 20),
            i if i % 4 < 2 => 1_500_000,
            _ => 40,
        };
        sent.push((stream, numbers(size, i)));
    }
    for (stream, data) in &sent {
        let body = format!(r#"{{"events":[{{"type":"Measured","data":{data}}}]}}"#);
        let (status, reply) = server
            .post_raw(&format!("/streams/{stream}/events"), body)
            .await;
        assert_eq!(status, 201, "{reply}");
    }

    // The global log, followed page by page.
    let mut seen = Vec::new();
    let mut pages = 0;
    let mut from = 1;
    loop {
        let (status, text) = server
            .get_text(&format!("/events?from_position={from}&limit=10000"))
            .await;
        assert_eq!(status, 200, "{text:.300}");
        let page = RawPage::parse(&text);
        if page.events.is_empty() {
            assert_eq!(page.next_position, Some(from));
            break;
        }
        pages += 1;
        assert!(
            page.events.len() == 1 || text.len() <= PAGE_BYTES + ENVELOPE,
            "a page of {} events is {} bytes",
            page.events.len(),
            text.len()
        );
        assert_eq!(page.events[0].position, from);
        let last = page.events.last().unwrap().position;
        assert_eq!(page.next_position, Some(last + 1));
        assert_eq!(page.head, Some(sent.len() as u64));
        for event in &page.events {
            seen.push((
                event.position,
                event.stream.clone(),
                event.data.get().to_string(),
            ));
        }
        from = last + 1;
    }
    assert!(
        pages >= 4,
        "{pages} pages: the byte bound did not end any early"
    );
    assert_eq!(seen.len(), sent.len());
    for (i, ((position, stream, data), (sent_stream, sent_data))) in
        seen.iter().zip(&sent).enumerate()
    {
        assert_eq!(*position, i as u64 + 1);
        assert_eq!(stream, sent_stream);
        assert!(
            data == sent_data,
            "event {position} differs from what was sent"
        );
    }

    // Each stream, followed by version.
    let mut by_stream: BTreeMap<&str, Vec<&String>> = BTreeMap::new();
    for (stream, data) in &sent {
        by_stream.entry(stream).or_default().push(data);
    }
    for (stream, expected) in by_stream {
        let mut read = Vec::new();
        let mut pages = 0;
        let mut from = 0;
        loop {
            let (status, text) = server
                .get_text(&format!(
                    "/streams/{stream}/events?from_version={from}&limit=10000"
                ))
                .await;
            assert_eq!(status, 200, "{text:.300}");
            let page = RawPage::parse(&text);
            if page.events.is_empty() {
                assert_eq!(page.next_version, Some(from));
                assert_eq!(page.last_version_read, None);
                break;
            }
            pages += 1;
            assert!(page.events.len() == 1 || text.len() <= PAGE_BYTES + ENVELOPE);
            assert_eq!(page.events[0].stream_version, from);
            let last = page.events.last().unwrap().stream_version;
            assert_eq!(page.last_version_read, Some(last));
            assert_eq!(page.next_version, Some(last + 1));
            read.extend(page.events.into_iter().map(|e| e.data.get().to_string()));
            from = last + 1;
        }
        assert!(pages >= 2, "{stream}: {pages} pages");
        assert_eq!(read.len(), expected.len(), "{stream}");
        assert!(
            read.iter().zip(&expected).all(|(a, b)| a == *b),
            "{stream}: an event differs from what was sent"
        );
    }

    // The count limit still holds for small events.
    let page = RawPage::parse(&server.get_text("/events?from_position=2&limit=2").await.1);
    let positions: Vec<u64> = page.events.iter().map(|e| e.position).collect();
    assert_eq!(positions, [2, 3]);
    assert_eq!(page.next_position, Some(4));
}
