//! Side effects through the outbox, against a real HTTP receiver on
//! loopback: every request is enqueued once and delivered — across failing
//! answers, an outage of the receiver, SIGKILLs during the replay and
//! during delivery — with its derived idempotency key, in order per
//! ordering key, no more than once beyond a send the kill interrupted; a
//! rebuild and a hot swap send nothing again; a request that keeps failing
//! goes dead and lets its key move on, and an operator retries or drops it
//! over HTTP; a request to an undeclared target fails its event; on the
//! JetStream log such a projection fails at once, saying why.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};
use tokio::sync::oneshot;

use crate::common::{TestServer, output_within, prism_command, test_plugin, with_custom_section};

/// One request the receiver got, and how it answered.
#[derive(Debug, Clone)]
struct Received {
    idempotency_key: String,
    outbox_id: String,
    attempt: u32,
    authorization: String,
    body: Value,
    answered: u16,
}

#[derive(Default)]
struct Behaviour {
    log: Mutex<Vec<Received>>,
    /// Answer 503 to this many more requests.
    fail_next: AtomicU64,
    /// Answer 500 to every request whose payload `key` is in here.
    failing_keys: Mutex<HashSet<String>>,
    /// Take this long over every answer, in ms.
    delay_ms: AtomicU64,
    /// The first request with this payload (`key`, `n`) takes a second to
    /// answer, and `slow_started` says when it has arrived.
    slow: Mutex<Option<(String, i64)>>,
    slow_started: AtomicBool,
}

/// An HTTP endpoint on loopback that records what it is sent, and can fail,
/// go down and come back on the same port.
struct Receiver {
    addr: SocketAddr,
    behaviour: Arc<Behaviour>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

async fn receive(
    State(behaviour): State<Arc<Behaviour>>,
    headers: HeaderMap,
    body: String,
) -> StatusCode {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let key = body["key"].as_str().unwrap_or_default().to_string();
    let answer = if behaviour.failing_keys.lock().unwrap().contains(&key) {
        StatusCode::INTERNAL_SERVER_ERROR
    } else if behaviour
        .fail_next
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
    {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    let slow = behaviour.slow.lock().unwrap().as_ref()
        == Some(&(key, body["n"].as_i64().unwrap_or(-1)))
        && !behaviour.slow_started.swap(true, Ordering::SeqCst);
    // Recorded on arrival: a sender killed meanwhile never sees the answer.
    behaviour.log.lock().unwrap().push(Received {
        idempotency_key: header("idempotency-key"),
        outbox_id: header("prism-outbox-id"),
        attempt: header("prism-attempt").parse().unwrap_or(0),
        authorization: header("authorization"),
        body,
        answered: answer.as_u16(),
    });
    let delay = if slow {
        1000
    } else {
        behaviour.delay_ms.load(Ordering::Relaxed)
    };
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    answer
}

impl Receiver {
    async fn start() -> Receiver {
        let mut receiver = Receiver {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            behaviour: Arc::default(),
            stop: None,
            task: None,
        };
        receiver.up().await;
        receiver
    }

    /// Listen (again, on the same port once it has one).
    async fn up(&mut self) {
        let listener = tokio::net::TcpListener::bind(self.addr).await.unwrap();
        self.addr = listener.local_addr().unwrap();
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(receive))
            .with_state(self.behaviour.clone());
        let (stop, stopped) = oneshot::channel::<()>();
        self.stop = Some(stop);
        self.task = Some(tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
        }));
    }

    /// Stop listening and close every connection: the port refuses.
    async fn down(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(5), task)
                .await
                .expect("the receiver stops")
                .unwrap();
        }
    }

    fn received(&self) -> Vec<Received> {
        self.behaviour.log.lock().unwrap().clone()
    }

    /// Idempotency keys answered with a 2xx, with how often.
    fn delivered(&self) -> HashMap<String, usize> {
        let mut out = HashMap::new();
        for r in self.received().iter().filter(|r| r.answered == 200) {
            *out.entry(r.idempotency_key.clone()).or_default() += 1;
        }
        out
    }

    fn config(&self, outbox: &str) -> String {
        format!(
            "{outbox}\n[targets.hook]\nurl = \"http://{}/hook\"\ntimeout_ms = 2000\n\
             headers = {{ Authorization = \"Bearer ${{HOOK_TOKEN}}\" }}\n",
            self.addr
        )
    }
}

const SECRET: &str = "s3cret-hook-token";

async fn start_server(receiver: &Receiver, outbox: &str) -> TestServer {
    TestServer::start_with_env(&receiver.config(outbox), &[("HOOK_TOKEN", SECRET)]).await
}

/// The outbox's counts for target `hook`.
async fn hook_counts(server: &TestServer, plugin: &str) -> Value {
    let page = server
        .get_ok(&format!("/plugins/{plugin}/outbox?limit=1"))
        .await;
    page["targets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["target"] == "hook")
        .cloned()
        .unwrap_or(json!({}))
}

async fn wait_for<T>(
    what: &str,
    timeout: Duration,
    mut check: impl AsyncFnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "never got there: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

const KEYS: u64 = 4;
const SENDS_PER_KEY: u64 = 150;

#[tokio::test]
async fn every_request_is_delivered_in_order_per_key_across_failures_an_outage_and_kills() {
    let mut receiver = Receiver::start().await;
    receiver.behaviour.fail_next.store(25, Ordering::SeqCst);
    receiver.behaviour.delay_ms.store(3, Ordering::SeqCst);
    *receiver.behaviour.slow.lock().unwrap() = Some(("k1".into(), 100));
    // Small batches make a replay long enough to be killed in.
    let outbox = "[plugin_defaults]\nmax_batch_events = 10\n\
                  [outbox]\nmax_attempts = 100\nbackoff_initial_ms = 20\nbackoff_max_ms = 150\n";
    let mut server = start_server(&receiver, outbox).await;
    for k in 0..KEYS {
        let sends: Vec<(&str, Value)> = (0..SENDS_PER_KEY)
            .map(|n| ("Send", json!({"key": format!("k{k}"), "n": n})))
            .collect();
        server.append(&format!("s{k}"), &sends).await;
    }
    let mut total = KEYS * SENDS_PER_KEY;
    server.install_file("outboxer", &test_plugin("outboxer"));
    server
        .wait_plugin("outboxer", Duration::from_secs(60), |p| {
            p["state"] == "replaying" || p["state"] == "live"
        })
        .await;

    // Kill the server during the replay, whenever it has moved on.
    let mut kills = 0;
    let mut last = 0;
    for round in 0..30 {
        tokio::time::sleep(Duration::from_millis(10 + (round * 17) % 40)).await;
        let status = server.plugin("outboxer").await;
        if status["state"] == "live" {
            break;
        }
        let position = status["position"].as_u64().unwrap_or(0);
        if position > last {
            last = position;
            server.kill();
            server.restart().await;
            kills += 1;
        }
    }
    eprintln!("killed {kills} times during the replay");
    // And during delivery, while a request is in flight: the receiver has
    // it, the server never learns.
    wait_for(
        "the slow request in flight",
        Duration::from_secs(60),
        async || {
            receiver
                .behaviour
                .slow_started
                .load(Ordering::SeqCst)
                .then_some(())
        },
    )
    .await;
    server.kill();
    kills += 1;
    server.restart().await;

    // The receiver goes away for a while, comes back on the same port, and
    // new events arrive meanwhile.
    receiver.down().await;
    let live: Vec<(&str, Value)> = (SENDS_PER_KEY..SENDS_PER_KEY + 10)
        .map(|n| ("Send", json!({"key": "k0", "n": n})))
        .collect();
    server.append("s0", &live).await;
    total += 10;
    tokio::time::sleep(Duration::from_millis(400)).await;
    receiver.up().await;

    let delivered = wait_for(
        "every request delivered",
        Duration::from_secs(90),
        async || {
            let delivered = receiver.delivered();
            (delivered.len() as u64 == total).then_some(delivered)
        },
    )
    .await;
    let counts = wait_for("the outbox drained", Duration::from_secs(30), async || {
        let counts = hook_counts(&server, "outboxer").await;
        (counts["pending"] == 0 && counts["delivered"] == total).then_some(counts)
    })
    .await;
    assert_eq!(counts["dead"], 0, "{counts}");

    // Each request carries the id derived from its cause as its idempotency key.
    let events = server.all_events().await;
    let expected: HashSet<String> = events
        .iter()
        .filter(|e| e["type"] == "Send")
        .map(|e| {
            prism::outbox::request_id("outboxer", e["id"].as_str().unwrap(), 0)
                .hyphenated()
                .to_string()
        })
        .collect();
    assert_eq!(expected.len() as u64, total);
    let keys: HashSet<String> = delivered.keys().cloned().collect();
    assert_eq!(keys, expected);
    let received = receiver.received();
    let failed = received.iter().filter(|r| r.answered != 200).count();
    assert!(failed >= 25, "the first answers failed: {failed}");
    for r in &received {
        assert_eq!(r.idempotency_key, r.outbox_id);
        assert_eq!(r.authorization, format!("Bearer {SECRET}"));
        assert!(r.attempt >= 1);
    }
    // The request in flight at the kill is sent again, with the same
    // idempotency key (after attempts the outage refused).
    let slow: Vec<&Received> = received
        .iter()
        .filter(|r| r.body["key"] == "k1" && r.body["n"] == 100)
        .collect();
    assert_eq!(slow.len(), 2, "{slow:?}");
    assert_eq!(slow[0].idempotency_key, slow[1].idempotency_key);
    assert_eq!(slow[0].attempt, 1);
    // Delivered twice only where a kill cut a send short: at most one send
    // in flight per key when each kill landed.
    let repeats: usize = delivered.values().map(|n| n - 1).sum();
    assert!(repeats >= 1);
    assert!(
        repeats as u64 <= kills * KEYS,
        "{repeats} repeats after {kills} kills"
    );
    // In order per key: a key's requests arrive with ascending n (a repeat
    // of the request just sent aside), failed attempts included.
    let mut last_n: HashMap<String, i64> = HashMap::new();
    for r in &received {
        let key = r.body["key"].as_str().unwrap().to_string();
        let n = r.body["n"].as_i64().unwrap();
        let last = last_n.entry(key.clone()).or_insert(-1);
        assert!(n >= *last, "key {key}: {n} after {last}");
        *last = n;
    }
    // No secret in what the server says or logs.
    let page = server.get_text("/plugins/outboxer/outbox").await.1;
    assert!(!page.contains(SECRET));
    assert!(!server.server_log().contains(SECRET));
    eprintln!(
        "{total} requests delivered across {kills} kills: {} sends, {failed} failed, {repeats} repeats",
        received.len()
    );

    // A rebuild (a candidate replaying everything) sends nothing again.
    let sent = receiver.received().len();
    let head = server.head().await;
    let (code, body) = server.post("/plugins/outboxer/rebuild", &json!({})).await;
    assert_eq!(code, 202, "{body}");
    let rebuilt = server
        .wait_plugin("outboxer", Duration::from_secs(120), |p| {
            // The serving generation went to `previous`: the rebuild took over.
            !p["previous"].is_null()
                && p["candidate"].is_null()
                && p["state"] == "live"
                && p["position"].as_u64() >= Some(head)
        })
        .await;
    assert_eq!(rebuilt["outbox"]["enqueued"], 0, "{rebuilt}");
    assert_eq!(rebuilt["outbox"]["already_in_outbox"], total, "{rebuilt}");

    // Nor does a hot swap to new content.
    let bytes = with_custom_section(&std::fs::read(test_plugin("outboxer")).unwrap(), "v2");
    let rebuilt_generation = rebuilt["generation"].clone();
    let (code, body) = server.put_plugin_bytes("outboxer", bytes).await;
    assert!(code == 200 || code == 201, "{code}: {body}");
    let swapped = server
        .wait_plugin("outboxer", Duration::from_secs(120), |p| {
            p["generation"] != rebuilt_generation
                && p["candidate"].is_null()
                && p["state"] == "live"
                && p["position"].as_u64() >= Some(head)
        })
        .await;
    assert_eq!(swapped["outbox"]["enqueued"], 0, "{swapped}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(receiver.received().len(), sent, "something was sent again");
    let counts = hook_counts(&server, "outboxer").await;
    assert_eq!(counts["delivered"], total, "{counts}");
}

#[tokio::test]
async fn a_failing_request_goes_dead_lets_its_key_move_on_and_is_retried_or_dropped() {
    let receiver = Receiver::start().await;
    receiver
        .behaviour
        .failing_keys
        .lock()
        .unwrap()
        .insert("doomed".into());
    let outbox = "[outbox]\nmax_attempts = 3\nbackoff_initial_ms = 10\nbackoff_max_ms = 40\n";
    let server = start_server(&receiver, outbox).await;
    server.install_file("outboxer", &test_plugin("outboxer"));
    server.wait_caught_up("outboxer").await;
    server
        .append(
            "s",
            &[
                ("Send", json!({"key": "doomed", "n": 1})),
                ("Send", json!({"key": "doomed", "n": 2})),
                ("Send", json!({"key": "fine", "n": 1})),
            ],
        )
        .await;
    let counts = wait_for(
        "two dead, one delivered",
        Duration::from_secs(30),
        async || {
            let counts = hook_counts(&server, "outboxer").await;
            (counts["dead"] == 2 && counts["delivered"] == 1).then_some(counts)
        },
    )
    .await;
    assert_eq!(counts["pending"], 0, "{counts}");
    assert_eq!(counts["since_start"]["dead"], 2, "{counts}");
    assert_eq!(counts["since_start"]["failed_attempts"], 6, "{counts}");
    // The first doomed request used its three attempts before the second got any.
    let doomed: Vec<(i64, u32)> = receiver
        .received()
        .iter()
        .filter(|r| r.body["key"] == "doomed")
        .map(|r| (r.body["n"].as_i64().unwrap(), r.attempt))
        .collect();
    assert_eq!(doomed, [(1, 1), (1, 2), (1, 3), (2, 1), (2, 2), (2, 3)]);

    let dead = server.get_ok("/plugins/outboxer/outbox?state=dead").await;
    let dead = dead["items"].as_array().unwrap().clone();
    assert_eq!(dead.len(), 2);
    for entry in &dead {
        assert_eq!(entry["attempts"], 3, "{entry}");
        assert!(
            entry["last_error"].as_str().unwrap().contains("HTTP 500"),
            "{entry}"
        );
        assert!(entry["next_attempt_at_ms"].is_null());
    }
    let cli = output_within(
        prism_command(server.dir.path()).args([
            "plugins",
            "outbox",
            "outboxer",
            "--state",
            "dead",
            "--server",
            &server.base,
        ]),
        Duration::from_secs(30),
    );
    let shown = String::from_utf8_lossy(&cli.stdout);
    assert!(cli.status.success(), "{shown}");
    assert!(
        shown.contains("hook: 0 pending, 1 delivered, 2 dead, 0 dropped"),
        "{shown}"
    );
    assert_eq!(shown.matches(" dead ").count(), 2, "{shown}");
    let metrics = server.get_text("/metrics").await.1;
    assert!(
        metrics.contains("prism_outbox_dead{plugin=\"outboxer\",target=\"hook\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("prism_outbox_delivered_total{plugin=\"outboxer\",target=\"hook\"} 1")
    );

    // The receiver is fixed: one dead request is retried, the other dropped.
    receiver.behaviour.failing_keys.lock().unwrap().clear();
    let first = dead[0]["id"].as_str().unwrap();
    let second = dead[1]["id"].as_str().unwrap();
    let (code, body) = server
        .post(
            &format!("/plugins/outboxer/outbox/{first}/retry"),
            &json!({}),
        )
        .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["state"], "pending");
    let (code, body) = server
        .delete(&format!("/plugins/outboxer/outbox/{second}"))
        .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["state"], "dropped");
    wait_for(
        "the retried request delivered",
        Duration::from_secs(30),
        async || {
            let counts = hook_counts(&server, "outboxer").await;
            (counts["delivered"] == 2 && counts["dropped"] == 1 && counts["dead"] == 0)
                .then_some(())
        },
    )
    .await;
    assert_eq!(receiver.delivered().get(first).copied(), Some(1));
    assert!(!receiver.delivered().contains_key(second));
    // What does not apply is refused.
    let (code, body) = server
        .post(
            &format!("/plugins/outboxer/outbox/{second}/retry"),
            &json!({}),
        )
        .await;
    assert_eq!(code, 409, "{body}");
    let (code, body) = server
        .delete(&format!("/plugins/outboxer/outbox/{first}"))
        .await;
    assert_eq!(code, 409, "{body}");
    let unknown = uuid::Uuid::new_v4();
    let (code, _) = server
        .delete(&format!("/plugins/outboxer/outbox/{unknown}"))
        .await;
    assert_eq!(code, 404);
    let (code, _) = server.delete("/plugins/outboxer/outbox/not-an-id").await;
    assert_eq!(code, 400);

    // Pages follow the cursor, in enqueue order.
    let page = server.get_ok("/plugins/outboxer/outbox?limit=2").await;
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    let cursor = page["cursor"].as_str().unwrap();
    let rest = server
        .get_ok(&format!("/plugins/outboxer/outbox?limit=2&cursor={cursor}"))
        .await;
    let rest = rest["items"].as_array().unwrap();
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0]["payload"], json!({"key": "fine", "n": 1, "i": 0}));

    // A request to a target the projection does not declare fails its event.
    server
        .append("s", &[("Send", json!({"key": "x", "target": "sms"}))])
        .await;
    let failed = server
        .wait_plugin("outboxer", Duration::from_secs(30), |p| {
            p["state"] == "failed"
        })
        .await;
    let message = failed["last_error"]["message"].as_str().unwrap();
    assert!(
        message.contains("\"sms\" is not among the targets"),
        "{message}"
    );
    let page = server.get_ok("/plugins/outboxer/outbox").await;
    assert_eq!(page["items"].as_array().unwrap().len(), 3, "{page}");
    assert_eq!(page["targets"].as_array().unwrap().len(), 1, "{page}");
}

#[tokio::test]
async fn on_the_jetstream_log_a_projection_with_outbox_targets_fails_saying_why() {
    let receiver = Receiver::start().await;
    let nats = prism::cluster::testing::NatsCluster::start(1).await;
    let toml = receiver.config(&format!(
        "node = \"solo\"\n[log]\nurl = \"{}\"\nreplicas = 1\n",
        nats.servers()
    ));
    let server = TestServer::start_with_env(&toml, &[("HOOK_TOKEN", SECRET)]).await;
    // The first appends wait for the JetStream stream to be ready.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let id = "6a0d6d1e-0000-4000-8000-000000000002"; // retried with the same id
        let events = json!({"events": [{"id": id, "type": "Send", "data": {"n": 1}}]});
        let (code, body) = server.post("/streams/s/events", &events).await;
        if code == 201 {
            break;
        }
        assert!(Instant::now() < deadline, "{code}: {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    server.install_file("outboxer", &test_plugin("outboxer"));
    let failed = server
        .wait_plugin("outboxer", Duration::from_secs(30), |p| {
            p["state"] == "failed"
        })
        .await;
    let message = failed["last_error"]["message"].as_str().unwrap();
    assert!(
        message.contains("declares outbox targets, which needs the embedded log"),
        "{message}"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(receiver.received().is_empty(), "nothing was sent");
    assert_eq!(server.view("outboxer", "s").await, None);
}
