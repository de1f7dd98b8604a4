//! The client commands of the `prism` binary against a running server.

use serde_json::{Value, json};

use crate::common::{TestServer, example_plugin, prism_command};

fn run(server: &TestServer, args: &[&str]) -> std::process::Output {
    prism_command(server.dir.path())
        .args(args)
        .arg("--server")
        .arg(&server.base)
        .output()
        .unwrap()
}

fn prism(server: &TestServer, args: &[&str]) -> String {
    let output = run(server, args);
    assert!(
        output.status.success(),
        "prism {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

#[tokio::test]
async fn append_import_events_and_plugins_work_from_the_command_line() {
    let server = TestServer::start().await;
    let appended: Value = serde_json::from_str(&prism(
        &server,
        &[
            "append",
            "account-1",
            "AccountOpened",
            r#"{"owner":"ann"}"#,
            "--expected-version",
            "no_stream",
        ],
    ))
    .unwrap();
    assert_eq!(appended["stream_version"], 0);

    let file = server.dir.path().join("events.ndjson");
    let lines: Vec<String> = (0..300)
        .map(|i| json!({"stream": format!("account-{}", i % 3), "type": "Deposited", "data": {"amount": 1}}).to_string())
        .collect();
    std::fs::write(&file, lines.join("\n")).unwrap();
    prism(&server, &["import", file.to_str().unwrap()]);
    assert_eq!(server.head().await, 301);
    let printed = prism(
        &server,
        &["events", "--stream", "account-1", "--limit", "5"],
    );
    assert_eq!(printed.lines().count(), 5);

    let wasm = example_plugin("account-balance");
    let installed: Value = serde_json::from_str(&prism(
        &server,
        &["plugins", "install", "bank", wasm.to_str().unwrap()],
    ))
    .unwrap();
    assert_eq!(installed["outcome"], "started");
    server.wait_caught_up("bank").await;
    assert_eq!(
        server.view("bank", "account-1").await.unwrap()["balance"],
        100
    );
    let listed: Value = serde_json::from_str(&prism(&server, &["plugins", "list"])).unwrap();
    assert_eq!(listed["plugins"][0]["name"], "bank");
    prism(&server, &["plugins", "remove", "bank"]);
    assert_eq!(server.get("/plugins/bank").await.0, 404);
}

/// The field `field` of every NDJSON line `prism events` printed.
fn printed(server: &TestServer, args: &[&str], field: &str) -> Vec<u64> {
    prism(server, args)
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()[field]
                .as_u64()
                .unwrap()
        })
        .collect()
}

#[tokio::test]
async fn events_start_at_the_position_or_stream_version_asked_for() {
    let server = TestServer::start().await;
    server.append("other", &[("E", json!({}))]).await;
    let three = [("E", json!({})), ("E", json!({})), ("E", json!({}))];
    server.append("s", &three).await;

    assert_eq!(printed(&server, &["events"], "position"), [1, 2, 3, 4]);
    assert_eq!(
        printed(&server, &["events", "--from-position", "3"], "position"),
        [3, 4]
    );
    assert_eq!(
        printed(&server, &["events", "--stream", "s"], "stream_version"),
        [0, 1, 2]
    );
    assert_eq!(
        printed(
            &server,
            &["events", "--stream", "s", "--from-version", "1"],
            "stream_version"
        ),
        [1, 2],
        "version 1 is the stream's second event"
    );

    for (args, says) in [
        (
            &["events", "--stream", "s", "--from-position", "2"][..],
            "--from-position",
        ),
        (&["events", "--from-version", "1"][..], "--stream"),
    ] {
        let output = run(&server, args);
        assert!(!output.status.success(), "{args:?} was accepted");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
}
