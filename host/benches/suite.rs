//! Prism's benchmark suite: every performance figure the project claims,
//! measured in one run against release builds, written to `BENCHMARKS.md`.
//!
//! Run it with `scripts/bench.sh` (add `--quick` for a smoke run, `--only
//! NAME` for one figure). Workloads are generated deterministically from a
//! seed: bank accounts (`account-<n>` streams, ~200-byte JSON events).

use std::collections::HashSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use prism::log::{EventLog, ExpectedVersion, NewEvent, Position};
use prism::views::{Keyspace, Transaction, ViewStore};
use prism_guest::{Backend, Entry, ViewError, Write};
use serde_json::{Value, json};
use uuid::Uuid;

/// Deterministic pseudo-random numbers (SplitMix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const SEED: u64 = 0x50_5249_534d;
const ACCOUNTS: u64 = 10_000;

/// One event of the bank workload, ~200 bytes of JSON in all.
fn bank_event(rng: &mut Rng, opened: &mut HashSet<u64>) -> (String, NewEvent) {
    let account = rng.below(ACCOUNTS);
    let stream = format!("account-{account}");
    let (event_type, data) = if opened.insert(account) {
        (
            "AccountOpened",
            json!({"owner": format!("owner-{account}"), "currency": "EUR", "branch": "main-street-0042", "note": "opened online"}),
        )
    } else if rng.below(3) == 0 {
        (
            "Withdrawn",
            json!({"amount": rng.below(100) + 1, "currency": "EUR", "reference": format!("ref-{:016x}", rng.next()), "channel": "atm", "note": "cash"}),
        )
    } else {
        (
            "Deposited",
            json!({"amount": rng.below(500) + 1, "currency": "EUR", "reference": format!("ref-{:016x}", rng.next()), "channel": "transfer", "note": "salary"}),
        )
    };
    (
        stream,
        NewEvent {
            id: Uuid::from_u64_pair(rng.next(), rng.next()),
            // As if the server generated it: no retry to look for.
            client_id: false,
            event_type: event_type.to_string(),
            data: data.to_string(),
            metadata: json!({"correlation": format!("{:08x}", rng.next() as u32)}).to_string(),
        },
    )
}

struct Machine {
    cpu: String,
    cores: usize,
    memory_gib: u64,
}

fn machine() -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .unwrap_or("unknown")
        .trim()
        .to_string();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let kb: u64 = meminfo
        .lines()
        .find(|l| l.starts_with("MemTotal"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    Machine {
        cpu,
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        memory_gib: kb / 1024 / 1024,
    }
}

/// One measured figure for the report.
struct Figure {
    section: &'static str,
    name: String,
    value: String,
    goal: String,
    met: Option<bool>,
    workload: String,
    command: String,
}

struct Suite {
    quick: bool,
    only: Option<String>,
    root: PathBuf,
    work: tempfile::TempDir,
    figures: Vec<Figure>,
}

fn rate(n: u64, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

fn human(n: f64) -> String {
    if n >= 1e6 {
        format!("{:.2} M", n / 1e6)
    } else if n >= 1e3 {
        format!("{:.1} k", n / 1e3)
    } else {
        format!("{n:.0}")
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

/// `n` bank events as append requests of up to 1000 events, each for one stream.
fn bank_requests(n: u64, seed: u64) -> Vec<(String, Vec<NewEvent>)> {
    let mut rng = Rng(seed);
    let mut opened = HashSet::new();
    let mut requests = Vec::new();
    let mut left = n;
    while left > 0 {
        let take = left.min(1000);
        // One stream per request keeps stream versions meaningful.
        let mut batch = Vec::with_capacity(take as usize);
        let mut stream = String::new();
        for _ in 0..take {
            let (s, e) = bank_event(&mut rng, &mut opened);
            stream = s;
            batch.push(e);
        }
        left -= take;
        requests.push((stream, batch));
    }
    requests
}

/// Appends in flight at once when filling the log.
const IN_FLIGHT: usize = 16;

/// Append prepared requests, `IN_FLIGHT` at a time; the time the appends took.
async fn append_all(log: &EventLog, requests: Vec<(String, Vec<NewEvent>)>) -> Result<Duration> {
    let started = Instant::now();
    let mut pending = std::collections::VecDeque::new();
    for (stream, batch) in requests {
        let log = log.clone();
        pending.push_back(tokio::spawn(async move {
            log.append(stream, ExpectedVersion::Any, batch).await
        }));
        if pending.len() >= IN_FLIGHT {
            pending.pop_front().expect("pending").await??;
        }
    }
    for p in pending {
        p.await??;
    }
    Ok(started.elapsed())
}

/// 32 clients appending one event per request to `base` for `secs`
/// seconds, each to a stream of its own: how many, their latencies
/// (sorted), and how long it took.
async fn single_appends(
    base: &str,
    secs: u64,
    prefix: &str,
) -> Result<(u64, Vec<Duration>, Duration)> {
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(secs);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..32 {
        let http = http.clone();
        let url = format!("{base}/streams/{prefix}-{c}/events");
        tasks.push(tokio::spawn(async move {
            let mut rng = Rng(SEED + c);
            let mut opened = HashSet::new();
            let mut done = 0u64;
            let mut latencies = Vec::new();
            while Instant::now() < deadline {
                let (_, e) = bank_event(&mut rng, &mut opened);
                let body = format!(
                    r#"{{"events":[{{"type":"{}","data":{},"metadata":{}}}]}}"#,
                    e.event_type, e.data, e.metadata
                );
                let t = Instant::now();
                let r = http
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await?;
                if r.status().as_u16() != 201 {
                    bail!("append failed: {}", r.status());
                }
                latencies.push(t.elapsed());
                done += 1;
            }
            Ok::<_, anyhow::Error>((done, latencies))
        }));
    }
    let mut total = 0;
    let mut latencies = Vec::new();
    for t in tasks {
        let (n, l) = t.await??;
        total += n;
        latencies.extend(l);
    }
    let took = started.elapsed();
    latencies.sort();
    Ok((total, latencies, took))
}

/// `n` bank events appended over HTTP in requests of 1,000 events (the
/// most a JetStream append takes), one stream per request, 4 requests in
/// flight: how long it took.
async fn batched_appends(base: &str, n: u64, prefix: &str) -> Result<Duration> {
    let http = reqwest::Client::new();
    let mut rng = Rng(SEED ^ 0xba7c);
    let mut opened = HashSet::new();
    let started = Instant::now();
    let mut pending = std::collections::VecDeque::new();
    for b in 0..n.div_ceil(1000) {
        let events: Vec<String> = (0..1000.min(n - b * 1000))
            .map(|_| {
                let (_, e) = bank_event(&mut rng, &mut opened);
                format!(
                    r#"{{"type":"{}","data":{},"metadata":{}}}"#,
                    e.event_type, e.data, e.metadata
                )
            })
            .collect();
        let request = http
            .post(format!("{base}/streams/{prefix}-{}/events", b % 64))
            .header("content-type", "application/json")
            .body(format!(r#"{{"events":[{}]}}"#, events.join(",")));
        pending.push_back(tokio::spawn(request.send()));
        if pending.len() >= 4 {
            check_created(pending.pop_front().expect("pending").await??).await?;
        }
    }
    for p in pending {
        check_created(p.await??).await?;
    }
    Ok(started.elapsed())
}

async fn check_created(r: reqwest::Response) -> Result<()> {
    if r.status().as_u16() != 201 {
        bail!("append failed: {} {}", r.status(), r.text().await?);
    }
    Ok(())
}

async fn check_success(r: reqwest::Response) -> Result<()> {
    if !r.status().is_success() {
        bail!("{} {}", r.status(), r.text().await?);
    }
    Ok(())
}

async fn head_of(http: &reqwest::Client, base: &str) -> Result<u64> {
    let health: Value = http
        .get(format!("{base}/healthz"))
        .send()
        .await?
        .json()
        .await?;
    health["head"].as_u64().context("healthz without head")
}

/// Fill `log` with `n` bank events, in chunks so memory stays small.
async fn fill(log: &EventLog, n: u64, seed: u64) -> Result<()> {
    let mut done = 0;
    let mut chunk_seed = seed;
    while done < n {
        let take = (n - done).min(200_000);
        append_all(log, bank_requests(take, chunk_seed)).await?;
        done += take;
        chunk_seed = chunk_seed.wrapping_add(1);
    }
    Ok(())
}

/// The view as a native projection sees it: the same keyspace and
/// transaction the WebAssembly imports use.
struct NativeBackend<'a> {
    keyspace: &'a Keyspace,
    txn: &'a mut Transaction,
}

impl Backend for NativeBackend<'_> {
    fn get_many(&mut self, keys: &[String]) -> Vec<Option<String>> {
        self.txn.get_many(self.keyspace, keys).expect("storage")
    }

    fn write_many(&mut self, writes: Vec<Write>) -> Result<(), ViewError> {
        for w in writes {
            match w {
                Write::Put(Entry { key, value }) => self.txn.put(key, value),
                Write::Delete(key) => self.txn.delete(key),
            }
        }
        Ok(())
    }

    fn scan(&mut self, start: &str, end: Option<&str>, limit: u32) -> Vec<Entry> {
        self.txn
            .scan(self.keyspace, start, end, limit as usize, usize::MAX)
            .expect("storage")
            .unwrap_or_default()
            .into_iter()
            .map(|(key, value)| Entry { key, value })
            .collect()
    }
}

/// Replay the whole log through the natively compiled `account-balance`,
/// batch by batch with checkpoints, exactly as the projector does.
fn replay_native(log: &EventLog, views: &ViewStore, family: &str) -> Result<(u64, Duration)> {
    use prism_guest::Projection;
    let keyspace = views.keyspace("native", family)?;
    let description = account_balance::AccountBalance::describe();
    let mut projection = account_balance::AccountBalance;
    let head = log.head();
    // The size the projector's batches keep on this log (each batch
    // touches a few streams, so they do not grow).
    let max_batch = prism::projector::BASE_BATCH_EVENTS;
    let started = Instant::now();
    let mut position = Position::ZERO;
    while position < head {
        let mut batch = Vec::with_capacity(max_batch);
        let mut last = position;
        log.scan_where(
            position.next(),
            |_, event_type| description.wants(event_type),
            |at, event| {
                last = at;
                if let Some(e) = event {
                    batch.push(prism_guest::Event {
                        position: e.position.0,
                        stream_id: e.stream.to_owned(),
                        stream_version: e.stream_version.0,
                        event_type: e.event_type.to_owned(),
                        data: e.data.to_owned(),
                        metadata: e.metadata.to_owned(),
                        recorded_at: e.recorded_at_ms,
                        id: e.id.hyphenated().to_string(),
                    });
                }
                batch.len() < max_batch
            },
        )?;
        let mut txn = Transaction::new();
        let mut backend = NativeBackend {
            keyspace: &keyspace,
            txn: &mut txn,
        };
        prism_guest::handle_batch(&mut projection, &mut backend, &batch)
            .map_err(|e| anyhow::anyhow!("native handle: {}", e.message))?;
        keyspace.commit(&txn, &[], last, prism::views::ChangeLog::Off)?;
        position = last;
    }
    Ok((head.0, started.elapsed()))
}

/// A server of our own, in this process, on a loopback port.
struct Server {
    base: String,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<()>>,
}

/// Two replays of a reacting test projection to compare (see `Suite::replay_reacting`).
struct ReactingRuns {
    plugin: &'static str,
    /// The benchmark step, which names the work directories.
    step: &'static str,
    n: u64,
    event_type: &'static str,
    /// The `k`-th event's data, reacting or not.
    data: fn(u64, bool) -> String,
    /// What the reacting run made, read off the plugin's status.
    made: fn(&serde_json::Value) -> u64,
}

/// CPU seconds (user and system) this process has used so far.
fn own_cpu_seconds() -> f64 {
    // utime and stime are the 14th and 15th fields of the line.
    proc_stat_seconds(11..13)
}

/// CPU seconds (user and system) of this process's children that ended
/// and were waited for (wrk runs as one).
fn children_cpu_seconds() -> f64 {
    // cutime and cstime are the 16th and 17th fields of the line.
    proc_stat_seconds(13..15)
}

/// The sum of `/proc/self/stat` tick fields `range` (counted from the
/// state, the field after the command name), in seconds.
fn proc_stat_seconds(range: std::ops::Range<usize>) -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may hold spaces) start at the state.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = fields
        .get(range)
        .map(|f| f.iter().filter_map(|t| t.parse::<f64>().ok()).sum())
        .unwrap_or(0.0);
    // /proc counts in USER_HZ, which Linux fixes at 100 for user space.
    ticks / 100.0
}

async fn start_server(data: &Path, plugins: &Path) -> Result<Server> {
    start_server_with(prism::config::Config {
        data: data.to_path_buf(),
        plugins: plugins.to_path_buf(),
        ..Default::default()
    })
    .await
}

async fn start_server_with(config: prism::config::Config) -> Result<Server> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        prism::server::serve(config, listener, async {
            let _ = rx.await;
        })
        .await
    });
    let http = reqwest::Client::new();
    for _ in 0..600 {
        if http.get(format!("{base}/healthz")).send().await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(Server {
        base,
        shutdown: Some(tx),
        task,
    })
}

impl Server {
    async fn stop(mut self) -> Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.task.await??;
        Ok(())
    }
}

async fn plugin_status(http: &reqwest::Client, base: &str, name: &str) -> Result<Value> {
    Ok(http
        .get(format!("{base}/plugins/{name}"))
        .send()
        .await?
        .json()
        .await?)
}

/// Wait until `name` is live at `head`, a new generation if `not_generation` is given.
async fn wait_live(
    http: &reqwest::Client,
    base: &str,
    name: &str,
    head: u64,
    not_generation: Option<&str>,
) -> Result<Value> {
    let deadline = Instant::now() + Duration::from_secs(1800);
    loop {
        let s = plugin_status(http, base, name).await?;
        let fresh = not_generation.is_none_or(|g| s["generation"].as_str() != Some(g));
        if s["state"] == "live"
            && s["position"].as_u64() >= Some(head)
            && fresh
            && s["candidate"].is_null()
        {
            return Ok(s);
        }
        if s["state"] == "failed" {
            bail!("{name} failed: {s}");
        }
        if Instant::now() > deadline {
            bail!("{name} did not catch up: {s}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// `n` times: append 4 KiB to `path` and `fdatasync` it; the sync
/// latencies, sorted.
fn fdatasync_latency(path: &Path, n: usize) -> Result<Vec<Duration>> {
    use std::io::Write as _;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    let block = [0x5au8; 4096];
    let mut latencies = Vec::with_capacity(n);
    for _ in 0..n {
        file.write_all(&block)?;
        let t = Instant::now();
        file.sync_data()?;
        latencies.push(t.elapsed());
    }
    drop(file);
    std::fs::remove_file(path)?;
    latencies.sort();
    Ok(latencies)
}

/// Drop `wasm` (marked, so it compiles afresh) into `plugins` as
/// `bank.wasm` the way a user does (written aside, renamed in), and wait
/// until the plugin is live at `head`: how long that took.
async fn drop_until_live(
    http: &reqwest::Client,
    base: &str,
    plugins: &Path,
    wasm: &Path,
    head: u64,
    marker: &str,
) -> Result<Duration> {
    let bytes = with_marker(&std::fs::read(wasm)?, marker);
    let aside = plugins.join(".bank.wasm.tmp");
    std::fs::write(&aside, bytes)?;
    let started = Instant::now();
    std::fs::rename(&aside, plugins.join("bank.wasm"))?;
    wait_live(http, base, "bank", head, None).await?;
    Ok(started.elapsed())
}

/// A copy of a component with a custom section appended: valid, same
/// behaviour, different content hash (a new generation).
fn with_marker(wasm: &[u8], marker: &str) -> Vec<u8> {
    let name = b"prism-bench";
    let mut payload = vec![name.len() as u8];
    payload.extend_from_slice(name);
    payload.extend_from_slice(marker.as_bytes());
    let mut out = wasm.to_vec();
    out.push(0);
    let mut len = payload.len();
    loop {
        let byte = (len & 0x7f) as u8;
        len >>= 7;
        if len == 0 {
            out.push(byte);
            break;
        }
        out.push(byte | 0x80);
    }
    out.extend_from_slice(&payload);
    out
}

/// The `prism` binary the process-level benchmarks run:
/// `PRISM_BENCH_BINARY` if set (to measure another build), else
/// `target/release/prism`.
fn prism_binary(root: &Path) -> PathBuf {
    std::env::var_os("PRISM_BENCH_BINARY")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target/release/prism"))
}

/// Start `bin serve` on a loopback port as a child process; it and its
/// base URL once it listens.
fn spawn_prism(bin: &Path, data: &Path, plugins: &Path) -> Result<(std::process::Child, String)> {
    spawn_prism_with(bin, data, plugins, &[])
}

/// [`spawn_prism`] with more arguments (`--config FILE`, …).
fn spawn_prism_with(
    bin: &Path,
    data: &Path,
    plugins: &Path,
    more: &[&std::ffi::OsStr],
) -> Result<(std::process::Child, String)> {
    let mut child = std::process::Command::new(bin)
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(data)
        .arg("--plugins")
        .arg(plugins)
        .args(more)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().context("stdout")?),
        &mut line,
    )?;
    let base = line
        .trim()
        .trim_start_matches("prism listening on ")
        .to_string();
    Ok((child, base))
}

/// A `kB` field of `/proc/{pid}/status` (`VmRSS:`, `VmHWM:`), in KiB.
fn proc_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// `bytes` of JSON: an array of integers, like a batch of sensor readings.
fn number_array(rng: &mut Rng, bytes: usize) -> String {
    let mut out = String::with_capacity(bytes + 16);
    out.push('[');
    while out.len() < bytes {
        if out.len() > 1 {
            out.push(',');
        }
        let _ = write!(out, "{}", rng.below(1_000_000_000));
    }
    out.push(']');
    out
}

impl Suite {
    fn wants(&self, name: &str) -> bool {
        self.only.as_deref().is_none_or(|o| o == name)
    }

    fn command(&self, name: &str) -> String {
        format!(
            "scripts/bench.sh{} --only {name}",
            if self.quick { " --quick" } else { "" }
        )
    }

    fn plugin(&self, name: &str) -> Option<PathBuf> {
        let p = self
            .root
            .join("target/plugins")
            .join(format!("{name}.wasm"));
        p.exists().then_some(p)
    }

    fn test_plugin(&self, name: &str) -> Option<PathBuf> {
        let p = self
            .root
            .join("target/test-plugins")
            .join(format!("{name}.wasm"));
        p.exists().then_some(p)
    }

    fn scale(&self, full: u64, quick: u64) -> u64 {
        if self.quick { quick } else { full }
    }

    #[allow(clippy::too_many_arguments)]
    fn figure(
        &mut self,
        section: &'static str,
        bench: &str,
        name: impl Into<String>,
        value: String,
        goal: impl Into<String>,
        met: Option<bool>,
        workload: impl Into<String>,
    ) {
        let f = Figure {
            section,
            name: name.into(),
            value,
            goal: goal.into(),
            met,
            workload: workload.into(),
            command: self.command(bench),
        };
        eprintln!("  {}: {} (goal: {})", f.name, f.value, f.goal);
        self.figures.push(f);
    }

    async fn append(&mut self) -> Result<()> {
        let n = self.scale(1_000_000, 100_000);
        let (log, _) = prism::server::open_stores(&self.work.path().join("append"))?;
        let took = append_all(&log, bank_requests(n, SEED)).await?;
        let r = rate(n, took);
        self.figure("Append", "append", "Batched appends at the storage layer (1000 events per append, 16 in flight, WAL synced)", format!("{} events/s", human(r)), "≥ 500 k events/s", Some(r >= 500_000.0), format!("{n} bank events of ~200 bytes"));

        let data = self.work.path().join("append-http");
        let plugins = self.work.path().join("append-http-plugins");
        std::fs::create_dir_all(&plugins)?;
        let server = start_server(&data, &plugins).await?;
        let secs = self.scale(10, 3);
        let (total, latencies, took) = single_appends(&server.base, secs, "client").await?;
        server.stop().await?;
        let r = rate(total, took);
        self.figure(
            "Append",
            "append",
            "Single-event HTTP appends, 32 concurrent clients (durable, group commit)",
            format!(
                "{} events/s (p50 {}, p99 {})",
                human(r),
                ms(percentile(&latencies, 0.5)),
                ms(percentile(&latencies, 0.99))
            ),
            "≥ 25 k/s",
            Some(r >= 25_000.0),
            format!("{total} appends over {secs} s, client in the same process"),
        );

        // What the disk allows: every durable append waits for one WAL
        // sync, so 32 clients can do at most 32 appends per sync.
        let sync = fdatasync_latency(&self.work.path().join("sync-probe"), 300)?;
        self.figure(
            "Append",
            "append",
            "The disk's fdatasync after a 4 KiB append (what one group commit waits for)",
            format!(
                "p50 {}, p90 {}: at most {} durable appends/s from 32 clients waiting one sync each",
                ms(percentile(&sync, 0.5)),
                ms(percentile(&sync, 0.9)),
                human(32.0 / percentile(&sync, 0.5).as_secs_f64())
            ),
            "(reported)",
            None,
            "300 syncs of a file in the benchmark's directory",
        );

        // The same appends from wrk, a separate process: the figure says
        // what the server does, and the CPU each side spent is measured apart.
        if which("wrk").is_none() {
            eprintln!("  wrk not installed; skipped");
            return Ok(());
        }
        let server = start_server(&self.work.path().join("append-wrk"), &plugins).await?;
        let lua = format!(
            "local body = '{}'\n\
             local headers = {{[\"content-type\"] = \"application/json\"}}\n\
             local n = 0\n\
             threads = 0\n\
             setup = function(thread) threads = threads + 1; thread:set(\"id\", threads) end\n\
             request = function()\n  \
               n = n + 1\n  \
               return wrk.format(\"POST\", \"/streams/wrk-\" .. id .. \"-\" .. (n % 16) .. \"/events\", headers, body)\n\
             end\n",
            json!({"events": [{"type": "Deposited", "data": {"amount": 42, "currency": "EUR", "reference": "ref-00000000deadbeef", "channel": "transfer", "note": "salary"}, "metadata": {"correlation": "0badf00d"}}]})
        );
        let url = format!("{}/streams/wrk/events", server.base);
        let script = self.work.path().join("append.lua");
        let (server_cpu, client_cpu) = (own_cpu_seconds(), children_cpu_seconds());
        let (rps, [p50, p99]) =
            tokio::task::spawn_blocking(move || run_wrk_with(&url, secs, 32, &script, &lua))
                .await??;
        let server_cpu = own_cpu_seconds() - server_cpu;
        let client_cpu = children_cpu_seconds() - client_cpu;
        let appended = head_of(&reqwest::Client::new(), &server.base).await?;
        server.stop().await?;
        let per_append = |cpu: f64| cpu * 1e6 / appended.max(1) as f64;
        self.figure(
            "Append",
            "append",
            "Single-event HTTP appends, 32 connections from wrk (durable, group commit)",
            format!(
                "{} events/s (p50 {}, p99 {}); CPU per append: server {:.0} µs, wrk {:.0} µs",
                human(rps),
                ms(p50),
                ms(p99),
                per_append(server_cpu),
                per_append(client_cpu),
            ),
            "≥ 25 k/s",
            Some(rps >= 25_000.0),
            format!(
                "{appended} appends over {secs} s to 32 streams; wrk (C, 2 threads) on the same 2 cores"
            ),
        );
        Ok(())
    }

    /// The log on a 3-server JetStream cluster (R3) against the embedded
    /// log, in one run: appends, a fresh node catching up, replay from a
    /// node's local copy.
    async fn cluster(&mut self) -> Result<()> {
        let nats = prism::cluster::testing::NatsCluster::start(3).await;
        let dir = self.work.path().join("cluster");
        let config = |name: &str, url: Option<String>| -> Result<prism::config::Config> {
            let plugins = dir.join(format!("{name}-plugins"));
            std::fs::create_dir_all(&plugins)?;
            Ok(prism::config::Config {
                data: dir.join(format!("{name}-data")),
                plugins,
                node: Some(name.to_string()),
                log: prism::config::LogConfig {
                    url,
                    ..Default::default()
                },
                ..Default::default()
            })
        };
        let embedded = start_server_with(config("embedded", None)?).await?;
        let a = start_server_with(config("a", Some(nats.servers()))?).await?;
        let http = reqwest::Client::new();
        let secs = self.scale(10, 3);
        let mut single = Vec::new();
        for (label, server) in [("embedded log", &embedded), ("JetStream R3", &a)] {
            let (total, latencies, took) = single_appends(&server.base, secs, "single").await?;
            let r = rate(total, took);
            single.push(r);
            self.figure(
                "Cluster",
                "cluster",
                format!("Single-event HTTP appends, 32 clients, {label}"),
                format!(
                    "{} events/s (p50 {}, p99 {})",
                    human(r),
                    ms(percentile(&latencies, 0.5)),
                    ms(percentile(&latencies, 0.99))
                ),
                "(reported)",
                None,
                format!(
                    "{total} appends over {secs} s; 3 nats-server processes on the same 2 cores"
                ),
            );
        }
        self.figure(
            "Cluster",
            "cluster",
            "Single-event appends: JetStream R3 / embedded",
            format!("{:.2}×", single[1] / single[0]),
            "(reported)",
            None,
            "the two figures above, one run",
        );
        let n = self.scale(1_000_000, 50_000);
        let mut batched = Vec::new();
        for (label, server) in [("embedded log", &embedded), ("JetStream R3", &a)] {
            let took = batched_appends(&server.base, n, "bulk").await?;
            let r = rate(n, took);
            batched.push(r);
            self.figure(
                "Cluster",
                "cluster",
                format!("Batched HTTP appends (1,000 events per request, 4 in flight), {label}"),
                format!("{} events/s", human(r)),
                "(reported)",
                None,
                format!("{n} bank events"),
            );
        }
        self.figure(
            "Cluster",
            "cluster",
            "Batched appends: JetStream R3 / embedded",
            format!("{:.2}×", batched[1] / batched[0]),
            "(reported)",
            None,
            "the two figures above, one run",
        );

        // The user's path on a cluster: an exported history imported
        // through a node, against the same file into the embedded server.
        let bin = prism_binary(&self.root);
        if bin.exists() {
            let n = self.scale(100_000, 20_000);
            let file = dir.join("history.ndjson");
            write_history(&file, n)?;
            let mut imported = Vec::new();
            for (label, server) in [("embedded log", &embedded), ("JetStream R3", &a)] {
                let r = rate(n, prism_import(&bin, &file, &server.base).await?);
                imported.push(r);
                self.figure(
                    "Cluster",
                    "cluster",
                    format!("prism import of an interleaved history, {label}"),
                    format!("{} events/s", human(r)),
                    "(reported)",
                    None,
                    format!("{n} bank events over {ACCOUNTS} account streams; chunks of at most /healthz's max_events_per_append"),
                );
            }
            self.figure(
                "Cluster",
                "cluster",
                "prism import: JetStream R3 / embedded",
                format!("{:.2}×", imported[1] / imported[0]),
                "(reported)",
                None,
                "the two figures above, one run",
            );
        }

        // A node that joins now copies the whole log into its RocksDB.
        let head = head_of(&http, &a.base).await?;
        let started = Instant::now();
        let b = start_server_with(config("b", Some(nats.servers()))?).await?;
        let deadline = Instant::now() + Duration::from_secs(1800);
        while head_of(&http, &b.base).await? < head {
            if Instant::now() > deadline {
                bail!("node b did not catch up to {head}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let took = started.elapsed();
        self.figure(
            "Cluster",
            "cluster",
            "A fresh node catching up the log from JetStream (start to head)",
            format!(
                "{} events/s ({} s)",
                human(rate(head, took)),
                took.as_secs_f64().round()
            ),
            "(reported)",
            None,
            format!("{head} events"),
        );

        // Replay reads the node's local copy: account-balance on node b and
        // on the embedded server, compiled first so that the time is replay.
        if let Some(path) = self.plugin("account-balance") {
            let bytes = std::fs::read(&path)?;
            let mut replay = Vec::new();
            for (label, server) in [("embedded log", &embedded), ("a cluster node", &b)] {
                let head = head_of(&http, &server.base).await?;
                let started = Instant::now();
                let r = http
                    .put(format!("{}/plugins/bank", server.base))
                    .body(bytes.clone())
                    .send()
                    .await?;
                if !r.status().is_success() {
                    bail!("installing account-balance: {}", r.text().await?);
                }
                wait_live(&http, &server.base, "bank", head, None).await?;
                let r = rate(head, started.elapsed());
                replay.push(r);
                self.figure(
                    "Cluster",
                    "cluster",
                    format!("Install and replay of account-balance (Rust) on {label}"),
                    format!("{} events/s", human(r)),
                    "(reported)",
                    None,
                    format!("{head} events, compile included"),
                );
            }
            self.figure(
                "Cluster",
                "cluster",
                "Replay: cluster node / embedded",
                format!("{:.2}×", replay[1] / replay[0]),
                "(reported)",
                None,
                "the two figures above, one run",
            );
        }
        b.stop().await?;
        a.stop().await?;
        embedded.stop().await?;
        drop(nats);
        Ok(())
    }

    /// Deploys: a restart with three plugins over the log, a rollback after
    /// a cutover and appends, and what a caught-up manual candidate costs
    /// the serving generation.
    async fn deploys(&mut self) -> Result<()> {
        let n = self.scale(1_000_000, 100_000);
        let data = self.work.path().join("deploys");
        let plugins = self.work.path().join("deploys-plugins");
        std::fs::create_dir_all(&plugins)?;
        {
            let (log, _) = prism::server::open_stores(&data)?;
            fill(&log, n, SEED).await?;
        }
        let names = ["account-balance", "order-summary", "product-stock"];
        for name in names {
            let path = self.plugin(name).context("example plugins not built")?;
            std::fs::copy(path, plugins.join(format!("{name}.wasm")))?;
        }
        let http = reqwest::Client::new();
        // Processes of the release binary: a restart is a new process.
        let bin = prism_binary(&self.root);
        let manual_config = self.work.path().join("deploys-manual.toml");
        std::fs::write(&manual_config, "[plugin_defaults]\ncutover = \"manual\"\n")?;
        let start = |config: Option<&Path>| -> Result<(std::process::Child, String)> {
            match config {
                None => spawn_prism(&bin, &data, &plugins),
                Some(c) => {
                    spawn_prism_with(&bin, &data, &plugins, &["--config".as_ref(), c.as_os_str()])
                }
            }
        };
        let stop = |mut child: std::process::Child| {
            let _ = child.kill();
            let _ = child.wait();
        };
        let mut took = Vec::new();
        for _ in 0..2 {
            let started = Instant::now();
            let (child, base) = start(None)?;
            for name in names {
                wait_live(&http, &base, name, n, None).await?;
            }
            took.push(started.elapsed());
            stop(child);
        }
        self.figure(
            "Deploys",
            "deploys",
            "Start to serving, three plugins: first start (compile + replay) / restart",
            format!(
                "{:.1} s / {:.2} s",
                took[0].as_secs_f64(),
                took[1].as_secs_f64()
            ),
            "(reported)",
            None,
            format!("account-balance, order-summary, product-stock over {n} events"),
        );

        // Rollback after a cutover and 10,000 appends.
        let (child, base) = start(None)?;
        let bank = plugins.join("account-balance.wasm");
        let bytes = std::fs::read(&bank)?;
        let old = wait_live(&http, &base, "account-balance", n, None).await?;
        let old_gen = old["generation"].as_str().unwrap_or_default().to_string();
        let put = http
            .put(format!("{}/plugins/account-balance", base))
            .body(with_marker(&bytes, "v2"))
            .send()
            .await?;
        check_success(put).await?;
        let new = wait_live(&http, &base, "account-balance", n, Some(&old_gen)).await?;
        let new_gen = new["generation"].as_str().unwrap_or_default().to_string();
        let more = 10_000;
        batched_appends(&base, more, "after-cutover").await?;
        let head = head_of(&http, &base).await?;
        let started = Instant::now();
        let rollback = http
            .post(format!("{}/plugins/account-balance/rollback", base))
            .send()
            .await?;
        check_success(rollback).await?;
        let back = wait_live(&http, &base, "account-balance", head, Some(&new_gen)).await?;
        let rollback_took = started.elapsed();
        if back["generation"] != old_gen.as_str() {
            bail!(
                "the rollback brought back {} instead of {old_gen}",
                back["generation"]
            );
        }
        self.figure(
            "Deploys",
            "deploys",
            "Rollback after a cutover and 10,000 appends (request to the old generation serving at the head)",
            format!("{} ms", rollback_took.as_millis()),
            "(reported)",
            None,
            format!("account-balance over {head} events"),
        );

        // What a caught-up manual candidate costs: the serving generation
        // applying the same appends alone and with a candidate following.
        stop(child);
        let (child, base) = start(Some(&manual_config))?;
        let head = head_of(&http, &base).await?;
        wait_live(&http, &base, "account-balance", head, None).await?;
        let appended = self.scale(200_000, 20_000);
        let mut rates = Vec::new();
        for with_candidate in [false, true] {
            if with_candidate {
                let put = http
                    .put(format!("{}/plugins/account-balance", base))
                    .body(with_marker(&bytes, "candidate"))
                    .send()
                    .await?;
                check_success(put).await?;
                let deadline = Instant::now() + Duration::from_secs(1800);
                loop {
                    let s = plugin_status(&http, &base, "account-balance").await?;
                    if s["candidate"]["state"] == "ready"
                        || s["candidate"]["position"].as_u64() >= Some(head)
                    {
                        break;
                    }
                    if Instant::now() > deadline {
                        bail!("the candidate did not catch up: {s}");
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
            let started = Instant::now();
            batched_appends(
                &base,
                appended,
                if with_candidate { "with" } else { "alone" },
            )
            .await?;
            let head = head_of(&http, &base).await?;
            let deadline = Instant::now() + Duration::from_secs(1800);
            loop {
                let s = plugin_status(&http, &base, "account-balance").await?;
                let candidate_done =
                    !with_candidate || s["candidate"]["position"].as_u64() >= Some(head);
                if s["position"].as_u64() >= Some(head) && candidate_done {
                    break;
                }
                if Instant::now() > deadline {
                    bail!("did not catch up: {s}");
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            rates.push(rate(appended, started.elapsed()));
        }
        stop(child);
        self.figure(
            "Deploys",
            "deploys",
            "Append and apply over HTTP: serving generation alone / with a caught-up manual candidate following",
            format!("{} / {} events/s ({:.2}×)", human(rates[0]), human(rates[1]), rates[1] / rates[0]),
            "(reported)",
            None,
            format!("{appended} events appended in 1,000-event requests, until every generation has applied them"),
        );
        Ok(())
    }

    /// The change feed: 10 clients following `_changes` while events are
    /// appended, until every client has seen every change.
    async fn feed(&mut self) -> Result<()> {
        let Some(path) = self.plugin("account-balance") else {
            return Ok(());
        };
        let data = self.work.path().join("feed");
        let plugins = self.work.path().join("feed-plugins");
        std::fs::create_dir_all(&plugins)?;
        std::fs::copy(path, plugins.join("bank.wasm"))?;
        let server = start_server(&data, &plugins).await?;
        let http = reqwest::Client::new();
        wait_live(&http, &server.base, "bank", 0, None).await?;
        let n = self.scale(200_000, 20_000);
        let consumers: Vec<_> = (0..10)
            .map(|_| {
                let http = http.clone();
                let url = format!("{}/views/bank/_changes", server.base);
                tokio::spawn(async move {
                    use futures::StreamExt;
                    let response = http.get(url).send().await?;
                    let mut body = response.bytes_stream();
                    let mut seen = 0u64;
                    let mut last_position = 0u64;
                    let mut carry = Vec::new();
                    while last_position < n {
                        let Some(chunk) = body.next().await else {
                            break;
                        };
                        carry.extend_from_slice(&chunk?);
                        // Every complete message of the buffer, then drop
                        // them at once (draining one at a time would copy
                        // the rest of the buffer per message).
                        let mut start = 0;
                        while let Some(end) = carry[start..].windows(2).position(|w| w == b"\n\n") {
                            let text = String::from_utf8_lossy(&carry[start..start + end]);
                            if text.contains("event: change") {
                                seen += 1;
                                if let Some(id) = text.lines().find_map(|l| l.strip_prefix("id: "))
                                {
                                    last_position = id
                                        .split('.')
                                        .next()
                                        .and_then(|p| p.parse().ok())
                                        .unwrap_or(last_position);
                                }
                            }
                            start += end + 2;
                        }
                        carry.drain(..start);
                    }
                    Ok::<_, anyhow::Error>(seen)
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(500)).await;
        let started = Instant::now();
        batched_appends(&server.base, n, "feed").await?;
        let mut changes = 0;
        for c in consumers {
            changes += c.await??;
        }
        let took = started.elapsed();
        server.stop().await?;
        self.figure(
            "Change feed",
            "feed",
            "Changes delivered to 10 concurrent _changes clients while events are appended",
            format!("{} changes/s in all ({} per client)", human(rate(changes, took)), human(rate(changes / 10, took))),
            "(reported)",
            None,
            format!("{n} bank events appended in 1,000-event requests; account-balance writes one document per event"),
        );
        Ok(())
    }

    /// `prism import` of an NDJSON file over HTTP, the way a user loads a
    /// history, against batched appends of the same events in one run.
    async fn import(&mut self) -> Result<()> {
        let bin = prism_binary(&self.root);
        if !bin.exists() {
            eprintln!("  {} not built; skipped", bin.display());
            return Ok(());
        }
        let n = self.scale(1_000_000, 100_000);
        let file = self.work.path().join("import.ndjson");
        let bytes = write_history(&file, n)?;
        let plugins = self.work.path().join("import-plugins");
        std::fs::create_dir_all(&plugins)?;
        let server = start_server(&self.work.path().join("import-data"), &plugins).await?;
        // The server runs in this process and the client in its own: this
        // process's CPU time over the import is the server's.
        let cpu_before = own_cpu_seconds();
        let import_took = prism_import(&bin, &file, &server.base).await?;
        let server_cpu = own_cpu_seconds() - cpu_before;
        let http = reqwest::Client::new();
        let head = head_of(&http, &server.base).await?;
        if head != n {
            bail!("prism import left {head} events, not {n}");
        }
        // The user's next step: drop a projection into the directory.
        let dropped = match self.plugin("account-balance") {
            Some(wasm) => {
                Some(drop_until_live(&http, &server.base, &plugins, &wasm, n, "imported").await?)
            }
            None => None,
        };
        let batched_took = batched_appends(&server.base, n, "batched").await?;
        server.stop().await?;
        let (import, batched) = (rate(n, import_took), rate(n, batched_took));
        if let (Some(on_imported), Some(wasm)) = (dropped, self.plugin("account-balance")) {
            // The same events appended stream by stream in large batches
            // (`fill`, as the replay figure's log), the same file dropped.
            let data = self.work.path().join("import-batched-data");
            let plugins = self.work.path().join("import-batched-plugins");
            std::fs::create_dir_all(&plugins)?;
            {
                let (log, _) = prism::server::open_stores(&data)?;
                fill(&log, n, SEED).await?;
            }
            let server = start_server(&data, &plugins).await?;
            let on_batched =
                drop_until_live(&http, &server.base, &plugins, &wasm, n, "batched").await?;
            server.stop().await?;
            self.figure(
                "Import",
                "import",
                "account-balance.wasm dropped into the directory → live at the head: imported log / log written in large batches",
                format!(
                    "{:.2} s / {:.2} s ({} vs {} events/s, {:.2}×)",
                    on_imported.as_secs_f64(),
                    on_batched.as_secs_f64(),
                    human(rate(n, on_imported)),
                    human(rate(n, on_batched)),
                    on_imported.as_secs_f64() / on_batched.as_secs_f64()
                ),
                "(reported)",
                None,
                format!(
                    "{n} bank events each; imported: interleaved over {ACCOUNTS} account streams (each batch touches ~{ACCOUNTS} documents); batched: 1,000 events per stream in turn; compile included (a fresh file each)"
                ),
            );
        }
        self.figure(
            "Import",
            "import",
            "prism import over HTTP / batched appends of the same events",
            format!("{} / {} events/s ({:.2}×)", human(import), human(batched), import / batched),
            "(reported)",
            None,
            format!(
                "{n} bank events, {} MiB of NDJSON; import: stable line ids, atomic chunks of ≤ 5,000 lines and ≤ 2 MiB; server CPU {:.1} µs per imported event",
                bytes >> 20,
                server_cpu * 1e6 / n as f64
            ),
        );
        Ok(())
    }

    /// Peak RSS of the server (release build, its own process) while the
    /// hostile test plugin attacks the resources the host spends for it,
    /// one attack per fresh server, until the plugin is stopped.
    async fn hostile(&mut self) -> Result<()> {
        let bin = prism_binary(&self.root);
        let Some(hostile) = self.test_plugin("hostile") else {
            eprintln!("  hostile.wasm not built; skipped");
            return Ok(());
        };
        if !bin.exists() {
            eprintln!("  {} not built; skipped", bin.display());
            return Ok(());
        }
        let http = reqwest::Client::new();
        let attacks: [(&str, Vec<Value>); 5] = [
            ("none (one Count event)", vec![json!({"type": "Count"})]),
            (
                "read amplification: an 8 MiB document read 200 times in one call",
                vec![
                    json!({"type": "Store", "data": {"key": "big", "mib": 8}}),
                    json!({"type": "GetMany", "data": {"key": "big", "times": 200}}),
                ],
            ),
            (
                "a scan of everything after 60 MiB of documents",
                vec![
                    json!({"type": "Grow", "data": {"mib": 30}}),
                    json!({"type": "Grow", "data": {"mib": 30}}),
                    json!({"type": "ScanAll", "data": {}}),
                ],
            ),
            (
                "a write flood: 100 documents of 1 MiB in one batch",
                vec![json!({"type": "PutFlood", "data": {"count": 100, "bytes": 1 << 20}})],
            ),
            (
                "a 32 MiB document",
                vec![json!({"type": "Store", "data": {"key": "huge", "mib": 32}})],
            ),
        ];
        for (i, (attack, events)) in attacks.into_iter().enumerate() {
            let data = self.work.path().join(format!("hostile-{i}"));
            let plugins = self.work.path().join(format!("hostile-{i}-plugins"));
            std::fs::create_dir_all(&plugins)?;
            std::fs::copy(&hostile, plugins.join("hostile.wasm"))?;
            let (mut child, base) = spawn_prism(&bin, &data, &plugins)?;
            wait_live(&http, &base, "hostile", 0, None).await?;
            let before = proc_kib(child.id(), "VmHWM:");
            let mut outcome = String::from("live");
            for event in events {
                let r = http
                    .post(format!("{base}/streams/s/events"))
                    .json(&json!({ "events": [event] }))
                    .send()
                    .await?;
                check_created(r).await?;
                let head = head_of(&http, &base).await?;
                let deadline = Instant::now() + Duration::from_secs(120);
                loop {
                    let s = plugin_status(&http, &base, "hostile").await?;
                    if s["state"] != "live" {
                        outcome = format!(
                            "{}: {}",
                            s["state"].as_str().unwrap_or("?"),
                            s["last_error"]["message"].as_str().unwrap_or("")
                        );
                        break;
                    }
                    if s["position"].as_u64() >= Some(head) || Instant::now() > deadline {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                if outcome != "live" {
                    break;
                }
            }
            let peak = proc_kib(child.id(), "VmHWM:");
            let _ = child.kill();
            let _ = child.wait();
            let outcome: String = outcome.chars().take(90).collect();
            self.figure(
                "Sandbox",
                "hostile",
                format!("Peak server RSS, attack: {attack}"),
                format!("{} MiB (before the attack {} MiB)", peak >> 10, before >> 10),
                "(reported)",
                None,
                format!("default limits (64 MiB memory, 64 MiB host budget, 16 MiB documents); plugin ended {outcome}"),
            );
        }
        Ok(())
    }

    async fn replay(&mut self) -> Result<()> {
        let n = self.scale(1_000_000, 100_000);
        let data = self.work.path().join("replay");
        let plugins = self.work.path().join("replay-plugins");
        std::fs::create_dir_all(&plugins)?;
        {
            let (log, _) = prism::server::open_stores(&data)?;
            fill(&log, n, SEED).await?;
        }
        let (native_n, native_took) = {
            let (log, views) = prism::server::open_stores(&data)?;
            let r = replay_native(&log, &views, "bench")?;
            views.drop_unowned(&prism::views::family_name("native", "bench"))?;
            r
        };
        let native = rate(native_n, native_took);
        // The same Rust plugin once more with the log read on the
        // projector's own thread, to show what reading ahead gives.
        let mut config = prism::config::Config {
            data: data.clone(),
            plugins: plugins.clone(),
            ..Default::default()
        };
        config.plugin.insert(
            "replay-rust-in-turn".into(),
            prism::plugins::PluginSettings {
                read_ahead: Some(false),
                ..Default::default()
            },
        );
        config.plugin.insert(
            "replay-rust-on-2-workers".into(),
            prism::plugins::PluginSettings {
                replay_workers: Some(2),
                ..Default::default()
            },
        );
        let server = start_server_with(config).await?;
        let http = reqwest::Client::new();
        let mut wasm_rust = None;
        let mut in_turn = None;
        let mut on_two = None;
        for (plugin, label) in [
            ("account-balance", "Rust"),
            ("account-balance", "Rust in turn"),
            ("account-balance", "Rust on 2 workers"),
            ("account-balance-py", "Python"),
            ("account-balance-js", "JavaScript"),
        ] {
            let Some(path) = self.plugin(plugin) else {
                eprintln!("  {plugin}.wasm not built; skipped");
                continue;
            };
            // Compile first (warm cache) so the figure is replay alone.
            let bytes = std::fs::read(&path)?;
            let name = format!("replay-{}", label.to_lowercase().replace(' ', "-"));
            let r = http
                .put(format!("{}/plugins/{name}", server.base))
                .body(bytes)
                .send()
                .await?;
            let started = Instant::now();
            if !r.status().is_success() {
                bail!("installing {plugin}: {}", r.text().await?);
            }
            wait_live(&http, &server.base, &name, n, None).await?;
            let took = started.elapsed();
            let r = rate(n, took);
            if label == "Rust" {
                wasm_rust = Some(r);
            }
            if label == "Rust on 2 workers" {
                on_two = Some(r);
                http.delete(format!("{}/plugins/{name}", server.base))
                    .send()
                    .await?;
                continue;
            }
            if label == "Rust in turn" {
                in_turn = Some(r);
                http.delete(format!("{}/plugins/{name}", server.base))
                    .send()
                    .await?;
                continue;
            }
            let goal = if label == "Rust" {
                "≥ 1 M events/s"
            } else {
                "(reported)"
            };
            self.figure(
                "Replay",
                "replay",
                format!("Replay through account-balance in {label} (WASM), checkpoints included"),
                format!("{} events/s", human(r)),
                goal,
                (label == "Rust").then_some(r >= 1_000_000.0),
                format!("{n} bank events from RocksDB into the view"),
            );
            http.delete(format!("{}/plugins/{name}", server.base))
                .send()
                .await?;
        }
        server.stop().await?;
        self.figure(
            "Replay",
            "replay",
            "Replay through account-balance compiled natively (same SDK, same storage)",
            format!("{} events/s", human(native)),
            "(baseline)",
            None,
            format!("{n} bank events"),
        );
        if let (Some(ahead), Some(in_turn)) = (wasm_rust, in_turn) {
            self.figure(
                "Replay",
                "replay",
                "Rust replay with the next batch read ahead on a second thread / with the log read in turn",
                format!(
                    "{:.2} ({} vs {} events/s)",
                    ahead / in_turn,
                    human(ahead),
                    human(in_turn)
                ),
                "(reported)",
                None,
                "same run, same events; `read_ahead = false` for the second",
            );
        }
        if let (Some(one), Some(two)) = (wasm_rust, on_two) {
            self.figure(
                "Replay",
                "replay",
                "Rust replay on 2 workers partitioned by stream (`replay_workers = 2`) / on 1",
                format!(
                    "{:.2} ({} vs {} events/s)",
                    two / one,
                    human(two),
                    human(one)
                ),
                "(reported)",
                None,
                format!("same run, same events; {} cores", machine().cores),
            );
        }
        if let Some(w) = wasm_rust {
            let ratio = w / native;
            self.figure(
                "Replay",
                "replay",
                "WASM / native ratio (Rust account-balance)",
                format!("{ratio:.2}"),
                "≥ 0.8",
                Some(ratio >= 0.8),
                "same run, same events",
            );
        }
        Ok(())
    }

    /// Cold load (compile into empty caches), load of a new version of the
    /// file (same code, so its functions come from the function cache) and
    /// warm load (from the component cache) of each example plugin, each
    /// including instantiate + describe.
    async fn load(&mut self) -> Result<()> {
        let (_, views) = prism::server::open_stores(&self.work.path().join("load"))?;
        for plugin in [
            "account-balance",
            "order-summary",
            "product-stock",
            "account-balance-py",
            "account-balance-js",
        ] {
            let Some(path) = self.plugin(plugin) else {
                continue;
            };
            let bytes = std::fs::read(&path)?;
            let cache = self.work.path().join(format!("load-cache-{plugin}"));
            // Plugin calls block on the plugin's own executor, as the
            // projector's threads do: off the async workers.
            let detached = views.detached("view.bench");
            let next = with_marker(&bytes, "next version");
            let files = [bytes.clone(), next.clone(), next];
            let times = tokio::task::spawn_blocking(move || -> Result<Vec<Duration>> {
                let mut times = Vec::new();
                for load in &files {
                    let runtime = prism::runtime::Runtime::new(&cache)?;
                    let started = Instant::now();
                    let compiled = runtime.compile(load)?;
                    let view = prism::runtime::view::ViewAccess::new(detached.clone());
                    let log = Arc::new(prism::runtime::PluginLog::new());
                    let mut instance = runtime.instantiate(
                        &compiled,
                        view,
                        log,
                        prism::runtime::PluginLimits::default(),
                    )?;
                    instance.describe().map_err(|e| anyhow::anyhow!("{e}"))?;
                    times.push(started.elapsed());
                }
                Ok(times)
            })
            .await??;
            self.figure(
                "Load",
                "load",
                format!(
                    "Load {plugin} ({:.1} MB): cold (compile) / a new version of the file (function cache) / warm (compile cache)",
                    bytes.len() as f64 / 1e6
                ),
                format!("{} / {} / {}", ms(times[0]), ms(times[1]), ms(times[2])),
                "(reported)",
                None,
                "compile or deserialize, instantiate, describe; the new version is the file with a custom section added (same code, another content hash)",
            );
        }
        Ok(())
    }

    async fn live_latency(&mut self) -> Result<()> {
        let Some(path) = self.plugin("account-balance") else {
            return Ok(());
        };
        let data = self.work.path().join("live");
        let plugins = self.work.path().join("live-plugins");
        std::fs::create_dir_all(&plugins)?;
        std::fs::copy(&path, plugins.join("bank.wasm"))?;
        let server = start_server(&data, &plugins).await?;
        let http = reqwest::Client::new();
        wait_live(&http, &server.base, "bank", 0, None).await?;
        let count = self.scale(5000, 1000);
        let mut rng = Rng(SEED);
        let mut opened = HashSet::new();
        let mut latencies = Vec::with_capacity(count as usize);
        let interval = Duration::from_millis(1);
        let mut next = Instant::now();
        for _ in 0..count {
            tokio::time::sleep_until(next.into()).await;
            next += interval;
            let (stream, e) = bank_event(&mut rng, &mut opened);
            let body = format!(
                r#"{{"events":[{{"type":"{}","data":{}}}]}}"#,
                e.event_type, e.data
            );
            let ack: Value = http
                .post(format!("{}/streams/{stream}/events", server.base))
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await?
                .json()
                .await?;
            let acked = Instant::now();
            let position = ack["last_position"].as_u64().context("ack")?;
            let r = http
                .get(format!(
                    "{}/views/bank/{stream}?min_position={position}&timeout_ms=10000",
                    server.base
                ))
                .send()
                .await?;
            if !r.status().is_success() {
                bail!("read after append: {}", r.status());
            }
            latencies.push(acked.elapsed());
        }
        server.stop().await?;
        latencies.sort();
        let (p50, p99) = (percentile(&latencies, 0.5), percentile(&latencies, 0.99));
        self.figure(
            "Live",
            "live",
            "Append acknowledged → change visible in the view (read with min_position returns)",
            format!("p50 {}, p99 {}", ms(p50), ms(p99)),
            "(reported)",
            None,
            format!("{count} appends at 1,000 events/s, one client"),
        );
        Ok(())
    }

    async fn query(&mut self) -> Result<()> {
        let Some(path) = self.plugin("account-balance") else {
            return Ok(());
        };
        if which("wrk").is_none() {
            eprintln!("  wrk not installed; skipped (scripts/bench.sh installs it)");
            return Ok(());
        }
        let data = self.work.path().join("query");
        let plugins = self.work.path().join("query-plugins");
        std::fs::create_dir_all(&plugins)?;
        {
            let (log, _) = prism::server::open_stores(&data)?;
            fill(&log, 100_000, SEED).await?;
        }
        std::fs::copy(&path, plugins.join("bank.wasm"))?;
        let server = start_server(&data, &plugins).await?;
        let http = reqwest::Client::new();
        wait_live(&http, &server.base, "bank", 100_000, None).await?;
        let secs = self.scale(10, 3);
        // The fill puts each request of 1,000 events on one stream: read
        // the keys that exist and ask for those, at random.
        let scan: Value = http
            .get(format!("{}/views/bank?limit=1000", server.base))
            .send()
            .await?
            .json()
            .await?;
        let keys: Vec<String> = scan["items"]
            .as_array()
            .context("scan without items")?
            .iter()
            .filter_map(|i| i["key"].as_str().map(|k| format!("{k:?}")))
            .collect();
        if keys.is_empty() {
            bail!("the view has no documents to read");
        }
        let lua = format!(
            "math.randomseed(42)\nlocal keys = {{{}}}\nrequest = function()\n  return wrk.format(\"GET\", \"/views/bank/\" .. keys[math.random(1, #keys)])\nend\n",
            keys.join(",")
        );
        let (rps, p99) = run_wrk_lua(
            &format!("{}/views/bank/account-42", server.base),
            secs,
            &self.work.path().join("keys.lua"),
            &lua,
        )?;
        server.stop().await?;
        self.figure(
            "Query",
            "query",
            "Point reads GET /views/bank/{key} (wrk, 2 threads, 64 connections, random existing keys)",
            format!("{} req/s, p99 {}", human(rps), ms(p99)),
            "≥ 50 k req/s, p99 ≤ 5 ms",
            Some(rps >= 50_000.0 && p99 <= Duration::from_millis(5)),
            format!("{} account documents read at random, {secs} s, load generator on the same 2 cores", keys.len()),
        );
        Ok(())
    }

    async fn hot_swap(&mut self) -> Result<()> {
        let Some(path) = self.plugin("account-balance") else {
            return Ok(());
        };
        let n = self.scale(1_000_000, 100_000);
        let data = self.work.path().join("swap");
        let plugins = self.work.path().join("swap-plugins");
        std::fs::create_dir_all(&plugins)?;
        {
            let (log, _) = prism::server::open_stores(&data)?;
            fill(&log, n, SEED).await?;
        }
        let bytes = std::fs::read(&path)?;
        std::fs::write(plugins.join("bank.wasm"), &bytes)?;
        let server = start_server(&data, &plugins).await?;
        let http = reqwest::Client::new();
        let first = wait_live(&http, &server.base, "bank", n, None).await?;
        // Drop a new version of the file (the same code with a marker, so
        // another content hash) and time it until it serves at the head.
        let swap = |marker: &'static str, serving: Value| {
            let http = http.clone();
            let base = server.base.clone();
            let plugins = plugins.clone();
            let new_bytes = with_marker(&bytes, marker);
            async move {
                let serving = serving["generation"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                let tmp = plugins.join(".bank.tmp");
                std::fs::write(&tmp, &new_bytes)?;
                let started = Instant::now();
                std::fs::rename(&tmp, plugins.join("bank.wasm"))?;
                let now = wait_live(&http, &base, "bank", n, Some(&serving)).await?;
                Ok::<_, anyhow::Error>((started.elapsed(), now))
            }
        };
        // First alone: what the swap itself takes.
        let (alone, second) = swap("v2", first).await?;
        // Then with a client reading as fast as it can all along: on two
        // cores its requests and the replay share the CPU.
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let read_latencies = |d: Duration| {
            let http = http.clone();
            let base = server.base.clone();
            let stop = stop.clone();
            async move {
                let mut l = Vec::new();
                let end = Instant::now() + d;
                let mut i = 0u64;
                while Instant::now() < end && !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let t = Instant::now();
                    http.get(format!("{base}/views/bank/account-{}", i % ACCOUNTS))
                        .send()
                        .await?
                        .bytes()
                        .await?;
                    l.push(t.elapsed());
                    i += 1;
                }
                l.sort();
                Ok::<_, anyhow::Error>(l)
            }
        };
        let baseline = read_latencies(Duration::from_secs(2)).await?;
        let reader = tokio::spawn(read_latencies(Duration::from_secs(600)));
        let (loaded, _) = swap("v3", second).await?;
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let during = reader.await??;
        server.stop().await?;
        self.figure(
            "Hot swap",
            "swap",
            "File dropped → new generation current (compile, replay, take over)",
            format!("{:.2} s", alone.as_secs_f64()),
            "≤ 1.5 s",
            Some(alone <= Duration::from_millis(1500)),
            format!("account-balance over {n} events, no other load"),
        );
        self.figure(
            "Hot swap",
            "swap",
            "The same while one client reads views as fast as it can",
            format!(
                "{:.2} s ({:.2}× the swap alone)",
                loaded.as_secs_f64(),
                loaded.as_secs_f64() / alone.as_secs_f64()
            ),
            "(reported)",
            None,
            format!(
                "the reader below, in the same process; {} reads during the swap",
                during.len()
            ),
        );
        self.figure(
            "Hot swap",
            "swap",
            "Point-read p99 without / during a swap",
            format!(
                "{} / {}",
                ms(percentile(&baseline, 0.99)),
                ms(percentile(&during, 0.99))
            ),
            "(reported)",
            None,
            format!(
                "one sequential reader; {} reads during the swap",
                during.len()
            ),
        );
        Ok(())
    }

    async fn memory(&mut self) -> Result<()> {
        let Some(path) = self.plugin("account-balance") else {
            return Ok(());
        };
        let data = self.work.path().join("memory");
        let plugins = self.work.path().join("memory-plugins");
        std::fs::create_dir_all(&plugins)?;
        let bin = prism_binary(&self.root);
        if !bin.exists() {
            eprintln!("  {} not built; skipped", bin.display());
            return Ok(());
        }
        let bytes = std::fs::read(&path)?;
        let (mut child, base) = spawn_prism(&bin, &data, &plugins)?;
        let http = reqwest::Client::new();
        let empty = proc_kib(child.id(), "VmRSS:");
        let mut per_language = Vec::new();
        for i in 0..10 {
            http.put(format!("{base}/plugins/bank{i}"))
                .body(with_marker(&bytes, &format!("m{i}")))
                .send()
                .await?;
        }
        for i in 0..10 {
            wait_live(&http, &base, &format!("bank{i}"), 0, None).await?;
        }
        let ten = proc_kib(child.id(), "VmRSS:");
        per_language.push(("Rust", (ten.saturating_sub(empty)) / 10));
        for (plugin, label) in [
            ("account-balance-py", "Python"),
            ("account-balance-js", "JavaScript"),
        ] {
            if let Some(p) = self.plugin(plugin) {
                let before = proc_kib(child.id(), "VmRSS:");
                http.put(format!("{base}/plugins/{plugin}"))
                    .body(std::fs::read(p)?)
                    .send()
                    .await?;
                wait_live(&http, &base, plugin, 0, None).await?;
                per_language.push((label, proc_kib(child.id(), "VmRSS:").saturating_sub(before)));
            }
        }
        let peak = proc_kib(child.id(), "VmHWM:");
        let _ = child.kill();
        let _ = child.wait();
        self.figure("Memory", "memory", "Peak RSS of the server with 10 Rust plugins loaded", format!("{} MiB (empty server {} MiB)", ten / 1024, empty / 1024), "(reported)", None, format!("10 × account-balance, release build; peak over the run incl. other languages: {} MiB", peak / 1024));
        for (label, kb) in per_language {
            self.figure(
                "Memory",
                "memory",
                format!("RSS per plugin ({label}): projector + query instance, compiled code"),
                format!("{:.1} MiB", kb as f64 / 1024.0),
                "(reported)",
                None,
                "RSS delta when loading",
            );
        }
        Ok(())
    }

    /// What a read-only client costs the server: big events (integer
    /// arrays) are read with `GET /events?limit=N`, by one client and by
    /// three at once, each on a freshly started server. The figure is the
    /// growth of the server's peak RSS over its RSS before the reads, as a
    /// multiple of the bytes the reads returned. The peak is reset
    /// (`/proc/PID/clear_refs`) just before the reads, after one request
    /// for an empty page, so that neither start-up nor the first request's
    /// fixed cost counts.
    async fn log_read_memory(&mut self) -> Result<()> {
        let bin = prism_binary(&self.root);
        if !bin.exists() {
            eprintln!("  {} not built; skipped", bin.display());
            return Ok(());
        }
        let http = reqwest::Client::new();
        // Pages of one event as big as a page, and pages of ten smaller ones.
        for (events, event_bytes) in [(10usize, 4_000_000usize), (100, 400_000)] {
            let data = self.work.path().join(format!("log-read-{event_bytes}"));
            let plugins = self.work.path().join("log-read-plugins");
            std::fs::create_dir_all(&plugins)?;
            {
                let (mut child, base) = spawn_prism(&bin, &data, &plugins)?;
                let mut rng = Rng(SEED);
                for _ in 0..events {
                    let body = format!(
                        r#"{{"events":[{{"type":"Readings","data":{}}}]}}"#,
                        number_array(&mut rng, event_bytes)
                    );
                    let answer = http
                        .post(format!("{base}/streams/sensor-1/events"))
                        .header("content-type", "application/json")
                        .body(body)
                        .send()
                        .await?;
                    if answer.status() != 201 {
                        bail!("append: {} {}", answer.status(), answer.text().await?);
                    }
                }
                let _ = child.kill();
                let _ = child.wait();
            }
            for readers in [1usize, 3] {
                let (mut child, base) = spawn_prism(&bin, &data, &plugins)?;
                // A first request costs a fresh server some memory whatever
                // it asks (a blocking thread, allocator arenas): an empty
                // page pays it before the measurement starts.
                http.get(format!("{base}/events?from_position={}", events + 1))
                    .send()
                    .await?
                    .bytes()
                    .await?;
                tokio::time::sleep(Duration::from_millis(500)).await;
                let pid = child.id();
                let before = proc_kib(pid, "VmRSS:");
                std::fs::write(format!("/proc/{pid}/clear_refs"), "5")?;
                let reads = (0..readers).map(|_| {
                    let http = http.clone();
                    let url = format!("{base}/events?limit={events}");
                    async move {
                        let body = http.get(url).send().await?.bytes().await?;
                        let page: Value = serde_json::from_slice(&body)?;
                        let read = page["events"].as_array().map_or(0, Vec::len);
                        Ok::<_, anyhow::Error>((body.len(), read))
                    }
                });
                let answers = futures::future::try_join_all(reads).await?;
                let peak = proc_kib(pid, "VmHWM:");
                let _ = child.kill();
                let _ = child.wait();
                let returned: usize = answers.iter().map(|(bytes, _)| bytes).sum();
                let read: usize = answers.iter().map(|(_, read)| read).sum();
                let growth = peak.saturating_sub(before) as f64 * 1024.0;
                let ratio = growth / returned as f64;
                let mib = |bytes: f64| bytes / f64::from(1 << 20);
                self.figure(
                    "Memory",
                    "log_read_memory",
                    format!(
                        "Server peak RSS growth per byte returned: {readers} concurrent GET /events?limit={events} over events of {event_bytes} bytes"
                    ),
                    format!(
                        "{ratio:.2}× ({:.1} MiB for {:.1} MiB returned in {read} events; RSS before {} MiB)",
                        mib(growth),
                        mib(returned as f64),
                        before / 1024
                    ),
                    "≤ 2×",
                    Some(ratio <= 2.0),
                    format!(
                        "{events} events of {event_bytes} bytes of integer arrays; pages end at 4 MiB; fresh server per run"
                    ),
                );
            }
        }
        Ok(())
    }

    async fn scaling(&mut self) -> Result<()> {
        let Some(path) = self.plugin("account-balance") else {
            return Ok(());
        };
        let sizes: Vec<u64> = if self.quick {
            vec![50_000, 100_000, 200_000]
        } else {
            vec![100_000, 1_000_000, 5_000_000]
        };
        let bytes = std::fs::read(&path)?;
        let mut rows = Vec::new();
        for n in sizes {
            let data = self.work.path().join(format!("scale-{n}"));
            let plugins = self.work.path().join(format!("scale-{n}-plugins"));
            std::fs::create_dir_all(&plugins)?;
            {
                let (log, _) = prism::server::open_stores(&data)?;
                fill(&log, n, SEED).await?;
            }
            let server = start_server(&data, &plugins).await?;
            let http = reqwest::Client::new();
            http.put(format!("{}/plugins/bank", server.base))
                .body(bytes.clone())
                .send()
                .await?;
            let started = Instant::now();
            wait_live(&http, &server.base, "bank", n, None).await?;
            let took = started.elapsed();
            server.stop().await?;
            std::fs::remove_dir_all(&data)?;
            rows.push((n, took));
        }
        let first = rows[0];
        let per_event_first = first.1.as_secs_f64() / first.0 as f64;
        for (n, took) in rows {
            let per_event = took.as_secs_f64() / n as f64;
            self.figure(
                "Scaling",
                "scaling",
                format!("Replay of {n} events"),
                format!(
                    "{:.2} s ({} events/s, {:.2}× the smallest run's time per event)",
                    took.as_secs_f64(),
                    human(rate(n, took)),
                    per_event / per_event_first
                ),
                "linear (≈ 1.0×)",
                None,
                "Rust account-balance",
            );
        }
        Ok(())
    }

    /// What maintaining a secondary index costs a replay: `account-balance`
    /// against the same projection declaring an index on `balance`
    /// (`indexed-balance`), over the same log, in one run.
    async fn index_replay(&mut self) -> Result<()> {
        let (Some(plain), Some(indexed)) = (
            self.plugin("account-balance"),
            self.test_plugin("indexed-balance"),
        ) else {
            eprintln!("  account-balance or indexed-balance not built; skipped");
            return Ok(());
        };
        let n = self.scale(1_000_000, 100_000);
        let data = self.work.path().join("index-replay");
        let plugins = self.work.path().join("index-replay-plugins");
        std::fs::create_dir_all(&plugins)?;
        {
            let (log, _) = prism::server::open_stores(&data)?;
            fill(&log, n, SEED).await?;
        }
        let server = start_server(&data, &plugins).await?;
        let http = reqwest::Client::new();
        let mut rates = Vec::new();
        for (name, path) in [("plain", plain), ("indexed", indexed)] {
            let r = http
                .put(format!("{}/plugins/{name}", server.base))
                .body(std::fs::read(&path)?)
                .send()
                .await?;
            let started = Instant::now();
            if !r.status().is_success() {
                bail!("installing {name}: {}", r.text().await?);
            }
            wait_live(&http, &server.base, name, n, None).await?;
            rates.push(rate(n, started.elapsed()));
            http.delete(format!("{}/plugins/{name}", server.base))
                .send()
                .await?;
        }
        server.stop().await?;
        self.figure(
            "Indexes",
            "index_replay",
            "Replay through account-balance without / with an index on balance (Rust, WASM)",
            format!("{} / {} events/s", human(rates[0]), human(rates[1])),
            "(reported)",
            None,
            format!("{n} bank events, 10,000 accounts"),
        );
        let ratio = rates[1] / rates[0];
        self.figure(
            "Indexes",
            "index_replay",
            "Replay rate with one declared index / without",
            format!("{ratio:.2}"),
            "≥ 0.7",
            Some(ratio >= 0.7),
            "same run, same events",
        );
        Ok(())
    }

    /// What emitting events costs a replay: the `emitter` test projection
    /// over `n` pings of which none asks for an echo, then over `n` pings
    /// of which every tenth does (one event emitted per ten handled, each
    /// committed with its batch and checked against the log's ids).
    async fn emit_replay(&mut self) -> Result<()> {
        let n = self.scale(1_000_000, 100_000);
        let Some((rates, made)) = self
            .replay_reacting(ReactingRuns {
                plugin: "emitter",
                step: "emit_replay",
                n,
                event_type: "Ping",
                data: |k, react| format!(r#"{{"n":{k},"emit":{}}}"#, u8::from(react)),
                made: |status| status["emitted"]["appended"].as_u64().unwrap_or(0),
            })
            .await?
        else {
            return Ok(());
        };
        if made != n / 10 {
            bail!(
                "expected {} emitted events, the projection emitted {made}",
                n / 10
            );
        }
        self.figure(
            "Emitted events",
            "emit_replay",
            "Replay through a projection emitting none / one event per ten handled (Rust, WASM)",
            format!("{} / {} events/s", human(rates[0]), human(rates[1])),
            "(reported)",
            None,
            format!("{n} events; {made} emitted, each exactly once"),
        );
        let ratio = rates[1] / rates[0];
        self.figure(
            "Emitted events",
            "emit_replay",
            "Replay rate emitting one per ten / emitting none",
            format!("{ratio:.2}"),
            "≥ 0.5",
            Some(ratio >= 0.5),
            "same projection, same number of events",
        );
        Ok(())
    }

    /// What the outbox costs a replay: the `outboxer` test projection over
    /// `n` events of which none asks for a side effect, then over `n` of
    /// which every tenth does (one request per ten events, each committed
    /// with its batch and checked against the outbox's ids). No target is
    /// configured, so nothing is sent: this is the cost of enqueueing.
    async fn outbox_replay(&mut self) -> Result<()> {
        let n = self.scale(1_000_000, 100_000);
        let Some((rates, made)) = self
            .replay_reacting(ReactingRuns {
                plugin: "outboxer",
                step: "outbox_replay",
                n,
                event_type: "Send",
                data: |k, react| format!(r#"{{"n":{k},"requests":{}}}"#, u8::from(react)),
                made: |status| status["outbox"]["enqueued"].as_u64().unwrap_or(0),
            })
            .await?
        else {
            return Ok(());
        };
        if made != n / 10 {
            bail!(
                "expected {} outbox requests, the projection enqueued {made}",
                n / 10
            );
        }
        self.figure(
            "Outbox",
            "outbox_replay",
            "Replay through a projection enqueueing no request / one per ten events handled (Rust, WASM)",
            format!("{} / {} events/s", human(rates[0]), human(rates[1])),
            "(reported)",
            None,
            format!("{n} events; {made} requests enqueued, each exactly once"),
        );
        let ratio = rates[1] / rates[0];
        self.figure(
            "Outbox",
            "outbox_replay",
            "Replay rate enqueueing one request per ten / none",
            format!("{ratio:.2}"),
            "≥ 0.5",
            Some(ratio >= 0.5),
            "same projection, same number of events",
        );
        Ok(())
    }

    /// Replays of a reacting test projection over `n` events of which none
    /// reacts, then `n` of which every tenth does; each is run twice,
    /// alternately, and the faster run counts: other work on the machine
    /// then weighs on both alike. The best rates (quiet, reacting) and what
    /// the reacting run made; `None` when the plugin is not built.
    async fn replay_reacting(&mut self, runs: ReactingRuns) -> Result<Option<([f64; 2], u64)>> {
        let Some(wasm) = self.test_plugin(runs.plugin) else {
            eprintln!("  {} not built; skipped", runs.plugin);
            return Ok(None);
        };
        let n = runs.n;
        let mut rates = [0.0f64; 2];
        let mut made = 0;
        let kinds = [("quiet", 0u64), ("reacting", 10)];
        for (round, (name, every)) in kinds.iter().chain(kinds.iter()).copied().enumerate() {
            let which = round % 2;
            let data = self.work.path().join(format!("{}-{round}", runs.step));
            let plugins = self
                .work
                .path()
                .join(format!("{}-{round}-plugins", runs.step));
            std::fs::create_dir_all(&plugins)?;
            {
                let (log, _) = prism::server::open_stores(&data)?;
                let requests: Vec<(String, Vec<NewEvent>)> = (0..n / 500)
                    .map(|r| {
                        let events = (0..500)
                            .map(|i| {
                                let k = r * 500 + i;
                                NewEvent {
                                    id: uuid::Uuid::new_v4(),
                                    client_id: false,
                                    event_type: runs.event_type.into(),
                                    data: (runs.data)(k, every > 0 && k % every == 0),
                                    metadata: "{}".into(),
                                }
                            })
                            .collect();
                        (format!("stream-{}", r % 100), events)
                    })
                    .collect();
                append_all(&log, requests).await?;
            }
            let server = start_server(&data, &plugins).await?;
            let http = reqwest::Client::new();
            let started = Instant::now();
            let r = http
                .put(format!("{}/plugins/{}", server.base, runs.plugin))
                .body(std::fs::read(&wasm)?)
                .send()
                .await?;
            if !r.status().is_success() {
                bail!("installing {}: {}", runs.plugin, r.text().await?);
            }
            let status = wait_live(&http, &server.base, runs.plugin, n, None).await?;
            let run_rate = rate(n, started.elapsed());
            eprintln!("  {name}: {} events/s", human(run_rate));
            rates[which] = rates[which].max(run_rate);
            if which == 1 {
                made = (runs.made)(&status);
            }
            server.stop().await?;
            drop(http);
            std::fs::remove_dir_all(&data)?;
        }
        Ok(Some((rates, made)))
    }

    /// A view file against the component it mirrors: the Rust
    /// `account-balance` component and the `account-balances` view file
    /// (the same documents), replayed over the same log in one run.
    async fn view_replay(&mut self) -> Result<()> {
        let Some(component) = self.plugin("account-balance") else {
            eprintln!("  account-balance not built; skipped");
            return Ok(());
        };
        let view_file = self.root.join("plugins/views/account-balances.view.yaml");
        let n = self.scale(1_000_000, 100_000);
        let data = self.work.path().join("view-replay");
        let plugins = self.work.path().join("view-replay-plugins");
        std::fs::create_dir_all(&plugins)?;
        {
            let (log, _) = prism::server::open_stores(&data)?;
            fill(&log, n, SEED).await?;
        }
        let server = start_server(&data, &plugins).await?;
        let http = reqwest::Client::new();
        // Two replays each, in the order A B B A, the best of each kept, so
        // that neither gains from going second (a warmer cache, compactions
        // of the fill finished).
        let mut rates = [0.0f64; 2];
        for (which, path) in [
            (0, &component),
            (1, &view_file),
            (1, &view_file),
            (0, &component),
        ] {
            let name = ["component", "view-file"][which];
            let r = http
                .put(format!("{}/plugins/{name}", server.base))
                .body(std::fs::read(path)?)
                .send()
                .await?;
            let started = Instant::now();
            if !r.status().is_success() {
                bail!("installing {name}: {}", r.text().await?);
            }
            wait_live(&http, &server.base, name, n, None).await?;
            let r = rate(n, started.elapsed());
            eprintln!("  {name}: {} events/s", human(r));
            rates[which] = rates[which].max(r);
            http.delete(format!("{}/plugins/{name}", server.base))
                .send()
                .await?;
        }
        server.stop().await?;
        self.figure(
            "View files",
            "view_replay",
            "Replay through account balances as a view file (native)",
            format!("{} events/s", human(rates[1])),
            "≥ 1 M events/s",
            Some(rates[1] >= 1_000_000.0),
            format!("{n} bank events from RocksDB into the view, checkpoints included, best of 2"),
        );
        self.figure(
            "View files",
            "view_replay",
            "Replay through the Rust account-balance component (WASM), same run",
            format!("{} events/s", human(rates[0])),
            "(baseline)",
            None,
            format!("{n} bank events, best of 2"),
        );
        let ratio = rates[1] / rates[0];
        self.figure(
            "View files",
            "view_replay",
            "View file / Rust component replay ratio",
            format!("{ratio:.2}"),
            "≥ 1.0",
            Some(ratio >= 1.0),
            "same run, same events, same documents",
        );
        Ok(())
    }

    /// A view of 100,000 documents with an index on `balance`: 100,000
    /// accounts opened, each with one deposit of 0–99,999.
    async fn indexed_view(&mut self, dir: &str) -> Result<(Server, u64)> {
        let Some(indexed) = self.test_plugin("indexed-balance") else {
            bail!("indexed-balance not built");
        };
        let accounts = 100_000u64;
        let data = self.work.path().join(dir);
        let plugins = self.work.path().join(format!("{dir}-plugins"));
        std::fs::create_dir_all(&plugins)?;
        {
            let (log, _) = prism::server::open_stores(&data)?;
            let mut rng = Rng(SEED);
            let requests: Vec<(String, Vec<NewEvent>)> = (0..accounts)
                .map(|a| {
                    let mut event = |event_type: &str, data: Value| NewEvent {
                        id: Uuid::from_u64_pair(rng.next(), rng.next()),
                        client_id: false,
                        event_type: event_type.to_string(),
                        data: data.to_string(),
                        metadata: "{}".into(),
                    };
                    let amount = (a * 7919) % 100_000;
                    (
                        format!("account-{a}"),
                        vec![
                            event("AccountOpened", json!({"owner": format!("owner-{a}")})),
                            event("Deposited", json!({"amount": amount})),
                        ],
                    )
                })
                .collect();
            append_all(&log, requests).await?;
        }
        std::fs::copy(&indexed, plugins.join("bank.wasm"))?;
        let server = start_server(&data, &plugins).await?;
        let http = reqwest::Client::new();
        wait_live(&http, &server.base, "bank", accounts * 2, None).await?;
        Ok((server, accounts))
    }

    async fn find(&mut self) -> Result<()> {
        if which("wrk").is_none() {
            eprintln!("  wrk not installed; skipped (scripts/bench.sh installs it)");
            return Ok(());
        }
        let (server, accounts) = self.indexed_view("find").await?;
        let secs = self.scale(10, 3);
        // Ranges of 100 balance units (about 100 documents each), first page of 20.
        let lua = "math.randomseed(42)\nrequest = function()\n  local low = math.random(0, 99899)\n  return wrk.format(\"GET\", \"/views/bank/_find?index=by-balance&balance.gte=\" .. low .. \"&balance.lt=\" .. (low + 100) .. \"&limit=20\")\nend\n";
        let (rps, p99) = run_wrk_lua(
            &format!("{}/views/bank/_find", server.base),
            secs,
            &self.work.path().join("find.lua"),
            lua,
        )?;
        let count_lua = "math.randomseed(7)\nrequest = function()\n  local low = math.random(0, 98999)\n  return wrk.format(\"GET\", \"/views/bank/_find?index=by-balance&balance.gte=\" .. low .. \"&balance.lt=\" .. (low + 1000) .. \"&count=true\")\nend\n";
        let (count_rps, count_p99) = run_wrk_lua(
            &format!("{}/views/bank/_find", server.base),
            secs,
            &self.work.path().join("count.lua"),
            count_lua,
        )?;
        server.stop().await?;
        self.figure(
            "Indexes",
            "find",
            "_find range queries (index by-balance, balance in a random range of 100, first page of 20 documents; wrk 2 threads, 64 connections)",
            format!("{} req/s, p99 {}", human(rps), ms(p99)),
            "(reported)",
            None,
            format!("{accounts} documents, {secs} s, load generator on the same 2 cores"),
        );
        self.figure(
            "Indexes",
            "find",
            "_find count=true over a random range of 1,000 (about 1,000 index entries, no document read)",
            format!("{} req/s, p99 {}", human(count_rps), ms(count_p99)),
            "(reported)",
            None,
            format!("{accounts} documents, {secs} s"),
        );
        Ok(())
    }

    async fn bulk_get(&mut self) -> Result<()> {
        let (server, accounts) = self.indexed_view("bulk").await?;
        let http = reqwest::Client::new();
        let requests = self.scale(300, 50);
        let mut rng = Rng(SEED);
        let mut latencies = Vec::with_capacity(requests as usize);
        let started = Instant::now();
        for _ in 0..requests {
            let keys: Vec<String> = (0..1000)
                .map(|_| format!("account-{}", rng.below(accounts)))
                .collect();
            let body = json!({ "keys": keys }).to_string();
            let t = Instant::now();
            let r = http
                .post(format!("{}/views/bank/_bulk_get", server.base))
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await?;
            if !r.status().is_success() {
                bail!("_bulk_get: {}", r.status());
            }
            r.bytes().await?;
            latencies.push(t.elapsed());
        }
        let took = started.elapsed();
        server.stop().await?;
        latencies.sort();
        self.figure(
            "Indexes",
            "bulk_get",
            "_bulk_get of 1,000 random keys (one client, sequential)",
            format!(
                "p50 {}, p99 {} ({:.0} requests/s, {} documents/s)",
                ms(percentile(&latencies, 0.5)),
                ms(percentile(&latencies, 0.99)),
                rate(requests, took),
                human(rate(requests * 1000, took))
            ),
            "(reported)",
            None,
            format!("{accounts} documents of ~60 bytes, {requests} requests"),
        );
        Ok(())
    }

    fn report(&self, started: Instant) -> String {
        let m = machine();
        let mut out = String::new();
        let _ = writeln!(out, "# Prism benchmarks\n");
        let _ = writeln!(
            out,
            "Written by `scripts/bench.sh{}` in {:.0} s (release build). Machine: {} — {} cores, {} GiB RAM, {}.\n",
            if self.quick { " --quick" } else { "" },
            started.elapsed().as_secs_f64(),
            m.cpu,
            m.cores,
            m.memory_gib,
            std::env::consts::OS
        );
        let _ = writeln!(
            out,
            "Workload: bank accounts (10,000 `account-<n>` streams; `AccountOpened`, `Deposited`, `Withdrawn`), ~200 bytes of JSON per event with metadata, generated from seed {SEED:#x}. Every figure comes from this one run; rerun one alone with its command.\n"
        );
        let mut section = "";
        for f in &self.figures {
            if f.section != section {
                section = f.section;
                let _ = writeln!(
                    out,
                    "\n## {section}\n\n| figure | result | goal | met | workload | command |\n|---|---|---|---|---|---|"
                );
            }
            let met = match f.met {
                Some(true) => "yes",
                Some(false) => "**no**",
                None => "–",
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | `{}` |",
                f.name, f.value, f.goal, met, f.workload, f.command
            );
        }
        out
    }
}

/// One benchmark of the suite.
type Step = for<'a> fn(
    &'a mut Suite,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<()>> + 'a>>;

fn which(cmd: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(cmd))
            .find(|p| p.exists())
    })
}

/// An NDJSON file of `n` bank events interleaved over the account streams,
/// as a history is exported; its size in bytes.
fn write_history(file: &Path, n: u64) -> Result<u64> {
    use std::io::Write as _;
    let mut out = std::io::BufWriter::new(std::fs::File::create(file)?);
    let mut rng = Rng(SEED);
    let mut opened = HashSet::new();
    for _ in 0..n {
        let (stream, e) = bank_event(&mut rng, &mut opened);
        writeln!(
            out,
            r#"{{"stream":"{stream}","type":"{}","data":{},"metadata":{}}}"#,
            e.event_type, e.data, e.metadata
        )?;
    }
    out.flush()?;
    Ok(std::fs::metadata(file)?.len())
}

/// `prism import FILE` into the server at `base`, in its own process; how
/// long it took.
async fn prism_import(bin: &Path, file: &Path, base: &str) -> Result<Duration> {
    let started = Instant::now();
    let status = tokio::process::Command::new(bin)
        .arg("import")
        .arg(file)
        .args(["--server", base])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .await?;
    if !status.success() {
        bail!("prism import failed: {status}");
    }
    Ok(started.elapsed())
}

/// Run wrk (2 threads, 64 connections) with the request script `lua`;
/// requests/s and p99.
fn run_wrk_lua(url: &str, secs: u64, script: &Path, lua: &str) -> Result<(f64, Duration)> {
    run_wrk_with(url, secs, 64, script, lua).map(|(rps, p50_p99)| (rps, p50_p99[1]))
}

/// Run wrk with 2 threads and `connections` connections and the request
/// script `lua`; requests/s, p50 and p99.
fn run_wrk_with(
    url: &str,
    secs: u64,
    connections: usize,
    script: &Path,
    lua: &str,
) -> Result<(f64, [Duration; 2])> {
    std::fs::write(script, lua)?;
    let out = std::process::Command::new("wrk")
        .args([
            "-t2",
            &format!("-c{connections}"),
            &format!("-d{secs}s"),
            "--latency",
            "-s",
        ])
        .arg(script)
        .arg(url)
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let rps: f64 = text
        .lines()
        .find(|l| l.starts_with("Requests/sec:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .context(format!(
            "wrk output: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        ))?;
    let percentile = |p: &str| {
        text.lines()
            .find(|l| l.trim_start().starts_with(p))
            .and_then(|l| l.split_whitespace().nth(1))
            .map(parse_wrk_duration)
            .context(format!("wrk {p}"))
    };
    let (p50, p99) = (percentile("50%")?, percentile("99%")?);
    if text.contains("Non-2xx") {
        bail!("wrk saw failed requests: {text}");
    }
    Ok((rps, [p50, p99]))
}

fn parse_wrk_duration(s: &str) -> Duration {
    let (num, unit) = s.split_at(s.find(|c: char| c.is_alphabetic()).unwrap_or(s.len()));
    let v: f64 = num.parse().unwrap_or(0.0);
    match unit {
        "us" => Duration::from_secs_f64(v / 1e6),
        "ms" => Duration::from_secs_f64(v / 1e3),
        "s" => Duration::from_secs_f64(v),
        "m" => Duration::from_secs_f64(v * 60.0),
        _ => Duration::ZERO,
    }
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let only = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1))
        .cloned();
    // The servers run in this process: `PRISM_LOG=info` shows their log
    // lines (when each plugin compiled, replayed, took over).
    if let Ok(filter) = tracing_subscriber::EnvFilter::try_from_env("PRISM_LOG") {
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .init();
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("repo root")?
        .to_path_buf();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let mut suite = Suite {
            quick,
            only,
            root: root.clone(),
            work: tempfile::tempdir()?,
            figures: Vec::new(),
        };
        let started = Instant::now();
        let steps: &[(&str, Step)] = &[
            ("append", |s| Box::pin(s.append())),
            ("load", |s| Box::pin(s.load())),
            ("replay", |s| Box::pin(s.replay())),
            ("live", |s| Box::pin(s.live_latency())),
            ("query", |s| Box::pin(s.query())),
            ("swap", |s| Box::pin(s.hot_swap())),
            ("memory", |s| Box::pin(s.memory())),
            ("log_read_memory", |s| Box::pin(s.log_read_memory())),
            ("scaling", |s| Box::pin(s.scaling())),
            ("index_replay", |s| Box::pin(s.index_replay())),
            ("view_replay", |s| Box::pin(s.view_replay())),
            ("find", |s| Box::pin(s.find())),
            ("bulk_get", |s| Box::pin(s.bulk_get())),
            ("cluster", |s| Box::pin(s.cluster())),
            ("deploys", |s| Box::pin(s.deploys())),
            ("feed", |s| Box::pin(s.feed())),
            ("import", |s| Box::pin(s.import())),
            ("hostile", |s| Box::pin(s.hostile())),
            ("emit_replay", |s| Box::pin(s.emit_replay())),
            ("outbox_replay", |s| Box::pin(s.outbox_replay())),
        ];
        for &(name, step) in steps {
            if suite.wants(name) {
                eprintln!("bench: {name}");
                step(&mut suite)
                    .await
                    .with_context(|| format!("benchmark {name}"))?;
            }
        }
        let report = suite.report(started);
        let target = if suite.only.is_some() {
            root.join("target/BENCHMARKS-partial.md")
        } else {
            root.join("BENCHMARKS.md")
        };
        std::fs::write(&target, &report)?;
        eprintln!("wrote {}", target.display());
        Ok(())
    })
}
