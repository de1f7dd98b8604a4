//! `prism dev` against a running server: every saved change is rebuilt and
//! installed, the new generation takes over and its log lines show; a
//! change that does not compile is reported and the running generation
//! keeps serving.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::common::{TestServer, output_within, project_command};

/// A `prism dev` process and what it has printed so far.
struct Dev {
    child: Child,
    lines: mpsc::Receiver<String>,
    transcript: Vec<String>,
}

impl Dev {
    fn start(dir: &Path, server: &TestServer) -> Dev {
        let mut child = project_command(dir)
            .args(["dev", "--server", &server.base])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (send, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if send.send(line).is_err() {
                    return;
                }
            }
        });
        Dev {
            child,
            lines,
            transcript: Vec::new(),
        }
    }

    /// Waits for a line that satisfies `wanted` and returns it.
    fn expect(&mut self, timeout: Duration, what: &str, wanted: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.transcript.push(line.clone());
                    if wanted(&line) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "prism dev never said {what} within {timeout:?}; it said:\n{}",
                    self.transcript.join("\n")
                ),
            }
        }
    }
}

impl Dev {
    /// Takes in what it prints for `quiet`, and after that until it has
    /// been quiet that long.
    fn drain(&mut self, quiet: Duration) {
        while let Ok(line) = self.lines.recv_timeout(quiet) {
            self.transcript.push(line);
        }
    }
}

impl Drop for Dev {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn edit(file: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(file).unwrap();
    assert!(text.contains(from), "{from:?} not in {}", file.display());
    std::fs::write(file, text.replacen(from, to, 1)).unwrap();
}

#[tokio::test]
async fn prism_dev_swaps_in_each_saved_build_and_keeps_serving_through_a_broken_one() {
    let server = TestServer::start().await;
    server
        .append(
            "order-1",
            &[
                ("OrderPlaced", json!({"total": 30})),
                ("OrderShipped", json!({})),
            ],
        )
        .await;
    let place = tempfile::tempdir().unwrap();
    let dir = place.path().join("live-orders");
    let made = output_within(
        project_command(place.path()).args([
            "new",
            "live-orders",
            "--lang",
            "rust",
            "--dir",
            dir.to_str().unwrap(),
        ]),
        Duration::from_secs(30),
    );
    assert!(made.status.success(), "{made:?}");

    let mut dev = Dev::start(&dir, &server);
    // The first build may compile the dependencies.
    let first = dev.expect(
        Duration::from_secs(900),
        "the first generation serving",
        |l| l.contains("serving, live"),
    );
    let first = first.split_whitespace().nth(1).unwrap().to_owned();
    assert_eq!(
        server.view("live-orders", "order-1").await,
        Some(json!({"events": 2, "last_type": "OrderShipped"}))
    );

    // Save a change: it is rebuilt, replayed beside the serving generation,
    // and takes over; what the new code logs shows up.
    let lib = dir.join("src/lib.rs");
    edit(
        &lib,
        "stats.events += 1;",
        "stats.events += 10;\n            prism_guest::info!(\"counted {}\", event.stream_id);",
    );
    let second = dev.expect(Duration::from_secs(300), "a new generation serving", |l| {
        l.contains("serving, live") && !l.contains(&first)
    });
    let second = second.split_whitespace().nth(1).unwrap().to_owned();
    // The new code logs while it replays, before or after it takes over.
    if !dev
        .transcript
        .iter()
        .any(|l| l == "log info: counted order-1")
    {
        dev.expect(Duration::from_secs(60), "the new code's log line", |l| {
            l == "log info: counted order-1"
        });
    }
    assert_eq!(
        server.view("live-orders", "order-1").await,
        Some(json!({"events": 20, "last_type": "OrderShipped"}))
    );
    // The old generation's retirement is said in the same status poll as
    // the takeover, on a later line: wait for it rather than race it.
    if !dev
        .transcript
        .iter()
        .any(|l| l.contains(&first) && l.contains("retired"))
    {
        dev.expect(
            Duration::from_secs(60),
            "the first generation retired",
            |l| l.contains(&first) && l.contains("retired"),
        );
    }

    // A change that does not compile: the compiler's error is shown and the
    // generation that serves goes on serving.
    edit(
        &lib,
        "pub struct StreamStats {",
        "pub struct StreamStats {{",
    );
    dev.expect(Duration::from_secs(300), "that the build failed", |l| {
        l.starts_with("build failed") && l.contains(&format!("generation {second} keeps serving"))
    });
    dev.expect(Duration::from_secs(10), "the compiler's error", |l| {
        l.contains("src/lib.rs")
    });
    let status = server.plugin("live-orders").await;
    assert!(
        status["generation"].as_str().unwrap().starts_with(&second),
        "{status}"
    );
    server
        .append("order-1", &[("OrderDelivered", json!({}))])
        .await;
    server.wait_caught_up("live-orders").await;
    assert_eq!(
        server.view("live-orders", "order-1").await,
        Some(json!({"events": 30, "last_type": "OrderDelivered"}))
    );

    // A change that compiles but refuses an event: the error is shown with
    // the event that caused it, and the serving generation goes on serving.
    edit(
        &lib,
        "pub struct StreamStats {{",
        "pub struct StreamStats {",
    );
    edit(
        &lib,
        "view.upsert(",
        "if event.event_type == \"OrderDelivered\" {\n            \
         return Err(Error::new(\"deliveries are not counted\"));\n        }\n        \
         view.upsert(",
    );
    let failed = dev.expect(Duration::from_secs(300), "that the new code failed", |l| {
        l.contains(" failed: ") && l.contains("deliveries are not counted")
    });
    assert!(failed.starts_with("generation "), "{failed}");
    dev.expect(Duration::from_secs(10), "the event that failed", |l| {
        l.trim() == "the event: position 3, OrderDelivered on stream order-1: {}"
    });
    dev.expect(Duration::from_secs(10), "who keeps serving", |l| {
        l == format!("generation {second} keeps serving")
    });
    let status = server.plugin("live-orders").await;
    assert!(
        status["generation"].as_str().unwrap().starts_with(&second),
        "{status}"
    );

    // Each line the serving code logged was shown once: two for the replay
    // of order-1, one for the event appended since.
    dev.drain(Duration::from_secs(2));
    let counted = dev
        .transcript
        .iter()
        .filter(|l| *l == "log info: counted order-1")
        .count();
    assert_eq!(counted, 3, "{:#?}", dev.transcript);
}
