//! `prism import` can be run again after any failure — a bad line, a line
//! the server refuses, a killed import — and the log ends with each of the
//! file's events exactly once, in the file's order. `POST /events` is the
//! atomic multi-stream append it uses.

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use crate::common::{TestServer, prism_command};

/// `count` lines interleaving 50 account streams, as history happens.
fn history(count: usize, pad: usize) -> Vec<String> {
    (0..count)
        .map(|i| {
            json!({
                "stream": format!("account-{}", (i * 7) % 50),
                "type": if i % 3 == 0 { "Withdrawn" } else { "Deposited" },
                "data": {"amount": i, "line": i + 1, "pad": "p".repeat(pad)},
            })
            .to_string()
        })
        .collect()
}

fn write(dir: &Path, lines: &[String]) -> std::path::PathBuf {
    let file = dir.join("events.ndjson");
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    file
}

fn import(server: &TestServer, file: &Path, extra: &[&str]) -> std::process::Output {
    prism_command(server.dir.path())
        .arg("import")
        .arg(file)
        .args(extra)
        .args(["--server", &server.base])
        .output()
        .unwrap()
}

/// The log holds exactly `lines` (by their `line` field), once each, in order.
async fn assert_log_holds(server: &TestServer, lines: usize) {
    let events = server.all_events().await;
    let order: Vec<u64> = events
        .iter()
        .map(|e| e["data"]["line"].as_u64().unwrap())
        .collect();
    let expected: Vec<u64> = (1..=lines as u64).collect();
    assert_eq!(order.len(), expected.len(), "events in the log");
    assert_eq!(order, expected, "each line once, in file order");
}

#[tokio::test]
async fn an_import_run_twice_leaves_each_event_once_in_file_order() {
    let server = TestServer::start().await;
    let file = write(server.dir.path(), &history(12_000, 0));
    let out = import(&server, &file, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_log_holds(&server, 12_000).await;
    let out = import(&server, &file, &[]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
    assert!(
        said.contains("0 appended now, 12000 already in the log"),
        "{said}"
    );
    assert_log_holds(&server, 12_000).await;
}

#[tokio::test]
async fn a_bad_line_stops_the_import_says_what_is_in_and_a_rerun_after_the_fix_completes() {
    let server = TestServer::start().await;
    let mut lines = history(12_000, 0);
    let good = lines[6999].clone();
    lines[6999] = "{not json".into();
    let file = write(server.dir.path(), &lines);
    let out = import(&server, &file, &[]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(said.contains("line 7000"), "{said}");
    assert!(said.contains("lines 1 to 5000 are in the log"), "{said}");
    assert_log_holds(&server, 5000).await;

    // A line the server refuses (valid JSON, no type): named by its number,
    // and its chunk appended nothing.
    lines[6999] = json!({"stream": "account-1", "data": {"line": 7000}}).to_string();
    let file = write(server.dir.path(), &lines);
    let out = import(&server, &file, &[]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(said.contains("line 7000 was refused"), "{said}");
    assert!(said.contains("lines 1 to 5000 are in the log"), "{said}");
    assert_log_holds(&server, 5000).await;

    lines[6999] = good;
    let file = write(server.dir.path(), &lines);
    let out = import(&server, &file, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_log_holds(&server, 12_000).await;
}

#[tokio::test]
async fn long_lines_of_one_stream_go_in_requests_under_the_body_limit() {
    let server = TestServer::start().await;
    let lines: Vec<String> = (0..20_000)
        .map(|i| {
            json!({"stream": "big", "type": "T", "data": {"line": i + 1, "pad": "x".repeat(1000)}})
                .to_string()
        })
        .collect();
    let file = write(server.dir.path(), &lines);
    let out = import(&server, &file, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_log_holds(&server, 20_000).await;
}

#[tokio::test]
async fn an_import_killed_anywhere_and_run_again_leaves_each_event_once() {
    let server = TestServer::start().await;
    let file = write(server.dir.path(), &history(60_000, 20));
    for wait_ms in [150u64, 400, 900] {
        let mut child = prism_command(server.dir.path())
            .arg("import")
            .arg(&file)
            .args(["--chunk-lines", "1000", "--server", &server.base])
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        tokio::time::sleep(Duration::from_millis(wait_ms)).await;
        let _ = child.kill();
        child.wait().unwrap();
    }
    let in_before = server.head().await;
    assert!(
        in_before < 60_000,
        "the kills came too late to test anything"
    );
    let out = import(&server, &file, &["--chunk-lines", "1000"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_log_holds(&server, 60_000).await;
}

#[tokio::test]
async fn an_append_across_streams_is_one_atomic_step_with_expectations_per_stream() {
    let server = TestServer::start().await;
    server.append("a", &[("Opened", json!({}))]).await;
    let body = json!({
        "events": [
            {"stream": "a", "type": "T", "data": {"n": 1}, "id": "00000000-0000-4000-8000-000000000001"},
            {"stream": "b", "type": "T", "data": {"n": 2}, "id": "00000000-0000-4000-8000-000000000002"},
            {"stream": "a", "type": "T", "data": {"n": 3}, "id": "00000000-0000-4000-8000-000000000003"},
        ],
        "expected_versions": {"a": 0, "b": "no_stream"},
    });
    let (status, answer) = server.post("/events", &body).await;
    assert_eq!(status, 201, "{answer}");
    assert_eq!(
        answer,
        json!({"first_position": 2, "last_position": 4, "streams": {"a": 2, "b": 0}})
    );
    // The same request again: the original answer, nothing appended twice.
    let (status, again) = server.post("/events", &body).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["duplicate"], true);
    assert_eq!(server.head().await, 4);
    // One failed expectation refuses all of it.
    let (status, refused) = server
        .post(
            "/events",
            &json!({
                "events": [{"stream": "c", "type": "T"}, {"stream": "a", "type": "T"}],
                "expected_versions": {"a": 0},
            }),
        )
        .await;
    assert_eq!(status, 409, "{refused}");
    assert_eq!(server.head().await, 4);
    let (status, refused) = server
        .post("/events", &json!({"events": [{"type": "T"}]}))
        .await;
    assert_eq!(
        (status, refused["error"]["event_index"].clone()),
        (400, json!(0))
    );
    let stream_b: Value = server.get_ok("/streams/b/events").await;
    assert_eq!(stream_b["events"][0]["position"], 3);
}
