//! A full disk: appends are refused with `507 storage_full` and a
//! `Retry-After`, `/healthz` says so, reads go on, and appends resume by
//! themselves once space is freed, with every acknowledged event kept exactly
//! once at gapless positions.
//!
//! Each test mounts a small tmpfs of its own (the tests run as root; where
//! mounting is not permitted they are skipped, saying why).

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use uuid::Uuid;

use crate::common::TestServer;

const MIB: usize = 1 << 20;

/// A tmpfs of a given size, unmounted when dropped (also when a test fails).
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    /// `None` (after saying why) only when mounting is not permitted here.
    fn mount(size_mib: usize) -> Option<SmallDisk> {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size_mib}m"), "tmpfs"])
            .arg(dir.path())
            .output()
            .expect("running mount");
        if out.status.success() {
            return Some(SmallDisk { dir });
        }
        let why = String::from_utf8_lossy(&out.stderr).trim().to_string();
        let lower = why.to_lowercase();
        let not_permitted = ["permission denied", "must be superuser", "not permitted"]
            .iter()
            .any(|p| lower.contains(p));
        if not_permitted {
            eprintln!(
                "SKIPPED: this test needs to mount a small tmpfs, which is not permitted here: {why}"
            );
            return None;
        }
        panic!("mount -t tmpfs failed: {why}");
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Write a file of `bytes` zeros (less if the disk fills first).
    fn write_file(&self, name: &str, bytes: usize) -> PathBuf {
        let path = self.path().join(name);
        let mut file = std::fs::File::create(&path).unwrap();
        let chunk = vec![0u8; 64 << 10];
        let mut written = 0;
        while written < bytes {
            let n = chunk.len().min(bytes - written);
            match file.write_all(&chunk[..n]) {
                Ok(()) => written += n,
                Err(e) if e.raw_os_error() == Some(28) => break,
                Err(e) => panic!("writing {}: {e}", path.display()),
            }
        }
        path
    }

    /// Take every byte still free.
    fn fill_up(&self, name: &str) -> PathBuf {
        let path = self.write_file(name, usize::MAX);
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        // The last page of a 64 KiB write may have been refused whole.
        while file.write_all(&[0u8; 512]).is_ok() {}
        path
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let path = self.dir.path();
        let unmounted = Command::new("umount")
            .arg(path)
            .status()
            .is_ok_and(|s| s.success());
        if !unmounted {
            // Something still holds a file open: detach it now, freed when released.
            let _ = Command::new("umount").arg("-l").arg(path).status();
        }
    }
}

/// One append of a single event with a client-chosen id.
struct Attempt {
    id: Uuid,
    status: u16,
    body: Value,
    retry_after: Option<String>,
}

async fn append(server: &TestServer, stream: &str, pad: usize) -> Attempt {
    let id = Uuid::new_v4();
    let body = json!({"events": [{"type": "Noted", "id": id, "data": {"pad": "x".repeat(pad)}}]});
    let response = server
        .http
        .post(server.url(&format!("/streams/{stream}/events")))
        .json(&body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("append: {e}\nserver log:\n{}", server.server_log()));
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_string());
    let text = response.text().await.unwrap();
    Attempt {
        id,
        status,
        body: serde_json::from_str(&text).unwrap_or(Value::String(text)),
        retry_after,
    }
}

/// The ids acknowledged so far, in position order, and the refused ones.
#[derive(Default)]
struct Ledger {
    acknowledged: Vec<(u64, Uuid)>,
    refused: Vec<Uuid>,
}

impl Ledger {
    fn record(&mut self, attempt: &Attempt) {
        match attempt.status {
            201 => {
                let position = attempt.body["first_position"].as_u64().unwrap();
                self.acknowledged.push((position, attempt.id));
            }
            507 => self.refused.push(attempt.id),
            other => panic!("append answered {other}: {}", attempt.body),
        }
    }

    async fn append_ok(&mut self, server: &TestServer, stream: &str) {
        let attempt = append(server, stream, 100).await;
        assert_eq!(
            attempt.status,
            201,
            "{}\nserver log:\n{}",
            attempt.body,
            server.server_log()
        );
        self.record(&attempt);
    }

    /// The log holds exactly the acknowledged events, at positions 1, 2, …
    /// in acknowledgement order, and none of the refused ones.
    async fn assert_log_matches(&self, server: &TestServer) {
        let events = server.all_events().await;
        let logged: Vec<(u64, Uuid)> = events
            .iter()
            .map(|e| {
                let id = Uuid::parse_str(e["id"].as_str().unwrap()).unwrap();
                (e["position"].as_u64().unwrap(), id)
            })
            .collect();
        let mut expected = self.acknowledged.clone();
        expected.sort();
        let positions: Vec<u64> = logged.iter().map(|(p, _)| *p).collect();
        assert_eq!(
            positions,
            (1..=logged.len() as u64).collect::<Vec<_>>(),
            "gapless positions"
        );
        assert_eq!(
            logged, expected,
            "the log is exactly the acknowledged appends"
        );
        let logged_ids: HashSet<Uuid> = logged.iter().map(|(_, id)| *id).collect();
        for id in &self.refused {
            assert!(!logged_ids.contains(id), "refused event {id} is in the log");
        }
        assert_eq!(server.head().await, logged.len() as u64);
    }
}

/// RocksDB's own message names the file that could not be written.
fn assert_names_no_file(message: &str, disk: &Path) {
    let path_like = message
        .split(|c: char| c.is_whitespace() || "()\"'".contains(c))
        .any(|word| word.starts_with('/') && word != "/healthz");
    assert!(
        !path_like && !message.contains(&disk.display().to_string()),
        "the message names a file: {message}"
    );
}

fn assert_storage_full_answer(attempt: &Attempt, disk: &Path) {
    assert_eq!(attempt.status, 507, "{}", attempt.body);
    assert_eq!(attempt.body["error"]["code"], "storage_full");
    assert_names_no_file(attempt.body["error"]["message"].as_str().unwrap(), disk);
    let retry_after: u64 = attempt
        .retry_after
        .as_deref()
        .expect("Retry-After header")
        .parse()
        .expect("Retry-After in seconds");
    assert!((1..=60).contains(&retry_after), "Retry-After {retry_after}");
}

/// `/healthz` says appends are refused, and at how much free space they resume.
async fn assert_health_full(server: &TestServer, disk: &Path, resumes_at_mib: u64) {
    let health = server.get_ok("/healthz").await;
    assert_eq!(health["status"], "degraded", "{health}");
    let storage = &health["storage"];
    assert_eq!(storage["state"], "full", "{health}");
    assert!(storage["since_ms"].as_u64().is_some(), "{health}");
    assert_eq!(
        storage["resumes_at_free_bytes"],
        resumes_at_mib << 20,
        "{health}"
    );
    assert_names_no_file(storage["message"].as_str().unwrap(), disk);
}

/// Wait until `/healthz` reports storage ok again.
async fn wait_health_ok(server: &TestServer, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let health = server.get_ok("/healthz").await;
        if health["status"] == "ok" && health["storage"]["state"] == "ok" {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "healthz still reports {health} after {within:?}\nserver log:\n{}",
            server.server_log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// With the free-space reserve turned off, the disk really fills and RocksDB
/// stops taking writes; once space is freed it resumes (RocksDB's own
/// recovery) and so do appends, with no restart.
#[tokio::test]
async fn appends_resume_by_themselves_after_the_disk_fills() {
    let Some(disk) = SmallDisk::mount(100) else {
        return;
    };
    // Leave less room than RocksDB preallocates for a write-ahead log file
    // on its first write (1.1 × the 64 MiB write buffer), so the log grows
    // page by page and its appends are the writes that meet the full disk.
    let ballast = disk.write_file("ballast", 56 * MIB);
    let mut server =
        TestServer::start_with_data_dir(&disk.path().join("data"), "min_free_mb = 0").await;
    let mut ledger = Ledger::default();
    for _ in 0..20 {
        ledger.append_ok(&server, "before").await;
    }

    // Fill the disk, appending 64 KiB events until one is refused.
    let mut fillers = Vec::new();
    let refused = loop {
        fillers.push(disk.fill_up(&format!("filler-{}", fillers.len())));
        let attempt = append(&server, "filling", 64 << 10).await;
        ledger.record(&attempt);
        if attempt.status == 507 {
            break attempt;
        }
        assert!(fillers.len() < 200, "the disk never filled");
    };
    assert_storage_full_answer(&refused, disk.path());
    let head = server.head().await;
    for _ in 0..5 {
        let attempt = append(&server, "during", 100).await;
        assert_storage_full_answer(&attempt, disk.path());
        ledger.record(&attempt);
    }
    assert_eq!(server.head().await, head, "refused appends change nothing");
    // RocksDB itself stopped writing: it resumes once a write buffer's worth is free.
    assert_health_full(&server, disk.path(), 64).await;
    // Reads go on.
    ledger.assert_log_matches(&server).await;
    let stream = server.get_ok("/streams/before/events?limit=100").await;
    assert_eq!(stream["events"].as_array().unwrap().len(), 20);

    for filler in fillers.iter().chain([&ballast]) {
        std::fs::remove_file(filler).unwrap();
    }
    let freed = Instant::now();
    loop {
        let attempt = append(&server, "after", 100).await;
        ledger.record(&attempt);
        if attempt.status == 201 {
            break;
        }
        assert_storage_full_answer(&attempt, disk.path());
        assert!(
            freed.elapsed() < Duration::from_secs(20),
            "appends did not resume within 20 s of freeing space\nserver log:\n{}",
            server.server_log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    wait_health_ok(&server, Duration::from_secs(5)).await;
    for _ in 0..20 {
        ledger.append_ok(&server, "after").await;
    }
    ledger.assert_log_matches(&server).await;

    // What was acknowledged after the recovery is as durable as the rest.
    server.restart().await;
    ledger.assert_log_matches(&server).await;
    ledger.append_ok(&server, "after").await;
    ledger.assert_log_matches(&server).await;
}

/// With a free-space minimum (`min_free_mb`, 64 by default, 16 here),
/// appends stop while some space is still free, before RocksDB runs out,
/// and go on as soon as space is freed.
#[tokio::test]
async fn appends_stop_short_of_a_full_disk() {
    let Some(disk) = SmallDisk::mount(64) else {
        return;
    };
    let server =
        TestServer::start_with_data_dir(&disk.path().join("data"), "min_free_mb = 16").await;
    let mut ledger = Ledger::default();
    for _ in 0..20 {
        ledger.append_ok(&server, "before").await;
    }
    // About 11 MiB stay free: less than the reserve, plenty for RocksDB.
    let filler = disk.write_file("filler", 48 * MIB);
    let attempt = append(&server, "during", 100).await;
    assert_storage_full_answer(&attempt, disk.path());
    ledger.record(&attempt);
    assert_health_full(&server, disk.path(), 16).await;
    ledger.assert_log_matches(&server).await;

    std::fs::remove_file(filler).unwrap();
    ledger.append_ok(&server, "after").await;
    wait_health_ok(&server, Duration::from_secs(5)).await;
    for _ in 0..10 {
        ledger.append_ok(&server, "after").await;
    }
    ledger.assert_log_matches(&server).await;
}
