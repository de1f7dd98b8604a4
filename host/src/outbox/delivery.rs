//! The delivery task: one task for the whole outbox, on a thread of its
//! own (its store reads and writes block), which owns every
//! change to a request's delivery state, and [`Outbox`], its cheap handle
//! for the API (reads go to the store directly; retries and drops are
//! messages to the task, so that they never race a send in flight).
//!
//! The task learns of new requests from the log writer's sequence number
//! (a `watch`, no polling) and reads them from the store; at start it reads
//! every request, so pending ones resume after a restart. It keeps in
//! memory, per (plugin, ordering key), the pending sequence numbers in
//! order, and sends the first of each queue when it is due: one request in
//! flight per queue, at most `max_in_flight` in all. A 2xx answer marks the
//! request delivered; anything else (a status, a refused connection, a
//! timeout) counts an attempt and schedules the next after
//! `backoff_initial_ms × 2^(attempts-1)` plus up to a fifth of it at random,
//! capped at `backoff_max_ms`. After `max_attempts` the request is dead
//! and the queue moves on to the next.
//!
//! A request to a target `prism.toml` does not configure waits, and holds
//! its queue, until the server restarts with the target configured; the
//! API says so ([`Outbox::waiting_for`]).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use serde::Serialize;
use tokio::sync::{mpsc, oneshot, watch};
use uuid::Uuid;

use super::config::{OutboxConfig, TargetConfig};
use super::store::{Found, OutboxStore};
use super::{Entry, EntryState};
use crate::mailbox::Mailbox;
use crate::storage::StorageError;

/// The header that carries a request's idempotency key.
pub const IDEMPOTENCY_HEADER: &str = "idempotency-key";
/// Headers that say which request and which attempt a delivery is.
pub const ID_HEADER: &str = "prism-outbox-id";
pub const PLUGIN_HEADER: &str = "prism-plugin";
pub const ATTEMPT_HEADER: &str = "prism-attempt";

/// How often finished requests past their retention are purged.
const PURGE_EVERY: Duration = Duration::from_secs(3600);
/// Most entries one page of a listing reads before it answers with a cursor.
const MAX_EXAMINED_PER_PAGE: usize = 100_000;
/// Longest stretch of an error body kept in `last_error`.
const MAX_ERROR_BODY: usize = 200;

/// Why an outbox operation failed.
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    /// No request of that id belongs to the plugin.
    #[error("{0}")]
    NotFound(String),
    /// The request is in a state the operation does not apply to.
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("the outbox is shutting down")]
    ShuttingDown,
}

/// Requests of one plugin to one target, by state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct StateCounts {
    pub pending: u64,
    pub delivered: u64,
    pub dead: u64,
    pub dropped: u64,
}

impl StateCounts {
    fn slot(&mut self, state: EntryState) -> &mut u64 {
        match state {
            EntryState::Pending => &mut self.pending,
            EntryState::Delivered => &mut self.delivered,
            EntryState::Dead => &mut self.dead,
            EntryState::Dropped => &mut self.dropped,
        }
    }

    fn moved(&mut self, from: EntryState, to: EntryState) {
        let from = self.slot(from);
        *from = from.saturating_sub(1);
        *self.slot(to) += 1;
    }
}

/// What happened to one plugin's requests to one target since the server started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct DeliveryTotals {
    pub delivered: u64,
    /// Attempts that failed (each retry counts).
    pub failed_attempts: u64,
    pub dead: u64,
}

/// Counts and totals per (plugin, target), shared with the API.
#[derive(Debug, Default)]
struct Stats {
    counts: BTreeMap<(String, String), StateCounts>,
    totals: BTreeMap<(String, String), DeliveryTotals>,
}

/// One plugin's requests to one target: states now, totals since start.
#[derive(Debug, Clone, Serialize)]
pub struct TargetReport {
    pub plugin: String,
    pub target: String,
    #[serde(flatten)]
    pub counts: StateCounts,
    pub since_start: DeliveryTotals,
}

/// A target as the task sends to it (`Debug` shows sensitive headers redacted).
#[derive(Debug)]
struct Target {
    url: reqwest::Url,
    method: reqwest::Method,
    /// Resolved values, secrets included: never logged.
    headers: HeaderMap,
    timeout: Duration,
    max_attempts: u32,
}

/// The outbox's handle: clone it freely.
#[derive(Clone)]
pub struct Outbox {
    store: OutboxStore,
    /// The delivery thread's mailbox: the thread ends, and lets go of the
    /// store, with the last handle.
    commands: Arc<Mailbox<Command>>,
    stats: Arc<Mutex<Stats>>,
    /// The targets `prism.toml` configures, to say why a request waits.
    configured: Arc<HashSet<String>>,
}

enum Command {
    Retry {
        plugin: String,
        id: Uuid,
        reply: oneshot::Sender<Result<Entry, OutboxError>>,
    },
    Drop {
        plugin: String,
        id: Uuid,
        reply: oneshot::Sender<Result<Entry, OutboxError>>,
    },
}

/// One page of a plugin's requests.
#[derive(Debug)]
pub struct Page {
    pub entries: Vec<Entry>,
    /// Where the next page starts, if there may be more.
    pub cursor: Option<u64>,
}

impl Outbox {
    /// Check the targets and start delivering. `enqueued` is the log
    /// writer's last outbox sequence number. The error says which target
    /// is misconfigured (never a header's value).
    pub(crate) fn start(
        store: OutboxStore,
        enqueued: watch::Receiver<u64>,
        config: OutboxConfig,
        targets: &HashMap<String, TargetConfig>,
    ) -> Result<Outbox, String> {
        let resolved = resolve_targets(targets, &config, |name| std::env::var(name).ok())?;
        let configured = Arc::new(resolved.keys().cloned().collect());
        let (commands, mailbox) = mpsc::channel(64);
        let stats = Arc::new(Mutex::new(Stats::default()));
        let (results_tx, results) = mpsc::channel(1024);
        let task = Delivery {
            store: store.clone(),
            config,
            targets: resolved,
            client: reqwest::Client::builder()
                .build()
                .map_err(|e| format!("the outbox's HTTP client: {e}"))?,
            stats: stats.clone(),
            pending: BTreeMap::new(),
            queues: HashMap::new(),
            in_flight: HashSet::new(),
            last_seen: 0,
            results_tx,
        };
        // The task's reads and writes of the store are small but blocking:
        // it runs on a thread of its own (its HTTP sends run on that
        // thread's runtime), never on the server's async workers. It ends,
        // and releases the store, when every handle is gone.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("the outbox's delivery thread: {e}"))?;
        let thread = std::thread::Builder::new()
            .name("prism-outbox".into())
            .spawn(move || runtime.block_on(task.run(enqueued, mailbox, results)))
            .map_err(|e| format!("the outbox's delivery thread: {e}"))?;
        Ok(Outbox {
            store,
            commands: Arc::new(Mailbox::new(commands, thread)),
            stats,
            configured,
        })
    }

    /// What a pending request waits for beyond its turn, if anything: a
    /// target `prism.toml` does not configure.
    pub fn waiting_for(&self, entry: &Entry) -> Option<String> {
        (entry.state == EntryState::Pending && !self.configured.contains(&entry.target)).then(
            || {
                format!(
                    "no [targets.{}] in prism.toml: the request waits until the server runs with it",
                    entry.target
                )
            },
        )
    }

    /// Counts per target of `plugin`'s requests.
    pub fn report(&self, plugin: &str) -> Vec<TargetReport> {
        self.reports()
            .into_iter()
            .filter(|r| r.plugin == plugin)
            .collect()
    }

    /// Counts per plugin and target, for the metrics.
    pub fn reports(&self) -> Vec<TargetReport> {
        let stats = self.stats.lock().expect("outbox stats");
        let mut keys: BTreeSet<&(String, String)> = stats.counts.keys().collect();
        keys.extend(stats.totals.keys());
        keys.into_iter()
            .map(|key| TargetReport {
                plugin: key.0.clone(),
                target: key.1.clone(),
                counts: stats.counts.get(key).cloned().unwrap_or_default(),
                since_start: stats.totals.get(key).copied().unwrap_or_default(),
            })
            .collect()
    }

    /// A page of `plugin`'s requests in enqueue order, after sequence
    /// `after`, in `state` if given (blocking: call off the async workers).
    pub fn page(
        &self,
        plugin: &str,
        state: Option<EntryState>,
        after: u64,
        limit: usize,
    ) -> Result<Page, StorageError> {
        let mut entries = Vec::new();
        let mut examined = 0;
        let mut last = after;
        let mut more = false;
        self.store.scan_after(after, |entry| {
            if entries.len() == limit || examined == MAX_EXAMINED_PER_PAGE {
                more = true;
                return false;
            }
            examined += 1;
            last = entry.sequence;
            if entry.plugin == plugin && state.is_none_or(|s| s == entry.state) {
                entries.push(entry);
            }
            true
        })?;
        Ok(Page {
            entries,
            cursor: more.then_some(last),
        })
    }

    /// Send a dead or pending request again now, with a fresh budget of
    /// attempts: as soon as its key has no other request in flight, and
    /// before the later requests of its key.
    pub async fn retry(&self, plugin: &str, id: Uuid) -> Result<Entry, OutboxError> {
        let (reply, answer) = oneshot::channel();
        self.ask(Command::Retry {
            plugin: plugin.to_string(),
            id,
            reply,
        })
        .await?;
        answer.await.map_err(|_| OutboxError::ShuttingDown)?
    }

    /// Never send a pending or dead request (it stays listed as `dropped`).
    pub async fn drop_request(&self, plugin: &str, id: Uuid) -> Result<Entry, OutboxError> {
        let (reply, answer) = oneshot::channel();
        self.ask(Command::Drop {
            plugin: plugin.to_string(),
            id,
            reply,
        })
        .await?;
        answer.await.map_err(|_| OutboxError::ShuttingDown)?
    }

    async fn ask(&self, command: Command) -> Result<(), OutboxError> {
        self.commands
            .sender()
            .send(command)
            .await
            .map_err(|_| OutboxError::ShuttingDown)
    }
}

/// The targets of `prism.toml`, checked, with their headers' values read.
fn resolve_targets(
    targets: &HashMap<String, TargetConfig>,
    config: &OutboxConfig,
    env: impl Fn(&str) -> Option<String> + Copy,
) -> Result<HashMap<String, Arc<Target>>, String> {
    if config.max_attempts == 0 {
        return Err("[outbox] max_attempts must be at least 1".into());
    }
    let mut resolved = HashMap::new();
    for (name, target) in targets {
        let problem = |what: String| format!("[targets.{name}] {what}");
        if let Some(p) = super::target_name_problem(name) {
            return Err(p);
        }
        let url = reqwest::Url::parse(&target.url)
            .map_err(|e| problem(format!("url {:?}: {e}", target.url)))?;
        if url.scheme() != "http" {
            return Err(problem(format!(
                "url: only http:// endpoints are supported (this build has no TLS client); \
                 put a TLS-terminating proxy in front of {}",
                url.scheme()
            )));
        }
        let method = reqwest::Method::from_bytes(target.method.to_ascii_uppercase().as_bytes())
            .map_err(|_| problem(format!("method {:?} is not an HTTP method", target.method)))?;
        let mut headers = HeaderMap::new();
        for (header, source) in &target.headers {
            let header_name = HeaderName::from_bytes(header.as_bytes())
                .map_err(|_| problem(format!("header {header:?} is not a header name")))?;
            let value = source
                .resolve(env)
                .map_err(|e| problem(format!("header {header}: {e}")))?;
            let mut value = HeaderValue::from_str(&value).map_err(|_| {
                problem(format!(
                    "header {header}: the value is not a valid header value"
                ))
            })?;
            value.set_sensitive(true);
            headers.insert(header_name, value);
        }
        let max_attempts = target.max_attempts.unwrap_or(config.max_attempts);
        if max_attempts == 0 {
            return Err(problem("max_attempts must be at least 1".into()));
        }
        resolved.insert(
            name.clone(),
            Arc::new(Target {
                url,
                method,
                headers,
                timeout: Duration::from_millis(target.timeout_ms.max(1)),
                max_attempts,
            }),
        );
    }
    Ok(resolved)
}

/// The delay before attempt `failed + 1`, after `failed` failures.
pub fn backoff(config: &OutboxConfig, failed: u32) -> Duration {
    let base = config
        .backoff_initial_ms
        .saturating_mul(1u64 << failed.saturating_sub(1).min(32))
        .min(config.backoff_max_ms);
    let jitter = fastrand::u64(0..=base / 5);
    Duration::from_millis((base + jitter).min(config.backoff_max_ms))
}

type QueueKey = (String, String);

/// What the task keeps in memory of a pending request.
struct Pending {
    queue: QueueKey,
    target: String,
    /// When it may be sent, in ms since the Unix epoch.
    due_ms: u64,
}

/// How one send ended.
struct Attempt {
    sequence: u64,
    outcome: Result<(), String>,
}

struct Delivery {
    store: OutboxStore,
    config: OutboxConfig,
    targets: HashMap<String, Arc<Target>>,
    client: reqwest::Client,
    stats: Arc<Mutex<Stats>>,
    /// Every pending request, by sequence number.
    pending: BTreeMap<u64, Pending>,
    /// Each (plugin, ordering key)'s pending requests, in enqueue order.
    queues: HashMap<QueueKey, BTreeSet<u64>>,
    /// Queues whose first request is being sent.
    in_flight: HashSet<QueueKey>,
    /// The last sequence number read from the store.
    last_seen: u64,
    results_tx: mpsc::Sender<Attempt>,
}

impl Delivery {
    async fn run(
        mut self,
        mut enqueued: watch::Receiver<u64>,
        mut mailbox: mpsc::Receiver<Command>,
        mut results: mpsc::Receiver<Attempt>,
    ) {
        enqueued.borrow_and_update();
        self.read_new();
        let mut log_open = true;
        let mut purge_at = tokio::time::Instant::now();
        loop {
            if tokio::time::Instant::now() >= purge_at {
                self.purge();
                purge_at = tokio::time::Instant::now() + PURGE_EVERY;
            }
            let wake = self
                .dispatch()
                .map(|due| tokio::time::Instant::now() + Duration::from_millis(due))
                .map_or(purge_at, |at| at.min(purge_at));
            tokio::select! {
                changed = enqueued.changed(), if log_open => match changed {
                    Ok(()) => self.read_new(),
                    Err(_) => log_open = false,
                },
                Some(attempt) = results.recv() => self.finish(attempt),
                command = mailbox.recv() => match command {
                    Some(command) => self.command(command),
                    None => return,
                },
                () = tokio::time::sleep_until(wake) => {}
            }
        }
    }

    fn count(&self, plugin: &str, target: &str, change: impl FnOnce(&mut StateCounts)) {
        let mut stats = self.stats.lock().expect("outbox stats");
        change(
            stats
                .counts
                .entry((plugin.to_string(), target.to_string()))
                .or_default(),
        );
    }

    fn total(&self, entry: &Entry, change: impl FnOnce(&mut DeliveryTotals)) {
        let mut stats = self.stats.lock().expect("outbox stats");
        change(
            stats
                .totals
                .entry((entry.plugin.clone(), entry.target.clone()))
                .or_default(),
        );
    }

    /// Read the requests enqueued since the last look (all of them at start).
    fn read_new(&mut self) {
        let mut read = Vec::new();
        let scanned = self.store.scan_after(self.last_seen, |entry| {
            read.push(entry);
            true
        });
        if let Err(e) = scanned {
            tracing::error!(error = %e, "reading the outbox");
        }
        for entry in read {
            self.last_seen = self.last_seen.max(entry.sequence);
            self.count(&entry.plugin, &entry.target, |c| *c.slot(entry.state) += 1);
            if entry.state == EntryState::Pending {
                self.queue(entry);
            }
        }
    }

    /// Put a pending request in its queue.
    fn queue(&mut self, entry: Entry) {
        let queue = (entry.plugin.clone(), entry.ordering_key.clone());
        self.queues
            .entry(queue.clone())
            .or_default()
            .insert(entry.sequence);
        self.pending.insert(
            entry.sequence,
            Pending {
                queue,
                target: entry.target,
                due_ms: entry.next_attempt_at_ms.unwrap_or(0),
            },
        );
    }

    /// Take a request out of its queue (delivered, dead, dropped).
    fn unqueue(&mut self, sequence: u64) {
        if let Some(p) = self.pending.remove(&sequence)
            && let Some(queue) = self.queues.get_mut(&p.queue)
        {
            queue.remove(&sequence);
            if queue.is_empty() {
                self.queues.remove(&p.queue);
            }
        }
    }

    fn update(&self, entry: &Entry) {
        if let Err(e) = self.store.update(entry) {
            tracing::error!(error = %e, id = %entry.id, "recording an outbox request's state");
        }
    }

    /// Send every queue's first request that is due; the time until the
    /// next one is, in ms, if any waits.
    fn dispatch(&mut self) -> Option<u64> {
        let now = crate::clock::now_ms();
        let mut wait: Option<u64> = None;
        let mut due = Vec::new();
        for (queue, sequences) in &self.queues {
            if self.in_flight.contains(queue) {
                continue;
            }
            let Some(first) = sequences.first() else {
                continue;
            };
            let pending = &self.pending[first];
            if !self.targets.contains_key(&pending.target) {
                continue;
            }
            if pending.due_ms <= now {
                due.push(*first);
            } else {
                let until = pending.due_ms - now;
                wait = Some(wait.map_or(until, |w| w.min(until)));
            }
        }
        for sequence in due {
            if self.in_flight.len() >= self.config.max_in_flight.max(1) {
                // A send that ends wakes the task, which comes back here.
                break;
            }
            self.send(sequence);
        }
        wait
    }

    fn send(&mut self, sequence: u64) {
        let entry = match self.store.get(sequence) {
            Ok(Some(entry)) if entry.state == EntryState::Pending => entry,
            Ok(_) => return self.unqueue(sequence),
            Err(e) => {
                tracing::error!(error = %e, "reading an outbox request");
                if let Some(p) = self.pending.get_mut(&sequence) {
                    p.due_ms = crate::clock::now_ms() + 1000;
                }
                return;
            }
        };
        let queue = self.pending[&sequence].queue.clone();
        self.in_flight.insert(queue);
        let target = self.targets[&entry.target].clone();
        let client = self.client.clone();
        let results = self.results_tx.clone();
        tokio::spawn(async move {
            let outcome = deliver(&client, &target, &entry).await;
            let _ = results.send(Attempt { sequence, outcome }).await;
        });
    }

    /// Record how a send ended.
    fn finish(&mut self, attempt: Attempt) {
        let Some(pending) = self.pending.get(&attempt.sequence) else {
            // Dropped while in flight (its queue was freed then).
            return;
        };
        self.in_flight.remove(&pending.queue);
        let mut entry = match self.store.get(attempt.sequence) {
            Ok(Some(entry)) if entry.state == EntryState::Pending => entry,
            Ok(_) => return self.unqueue(attempt.sequence),
            Err(e) => {
                tracing::error!(error = %e, "reading an outbox request");
                return;
            }
        };
        let now = crate::clock::now_ms();
        entry.attempts += 1;
        let max_attempts = self
            .targets
            .get(&entry.target)
            .map_or(self.config.max_attempts, |t| t.max_attempts);
        match attempt.outcome {
            Ok(()) => {
                entry.state = EntryState::Delivered;
                entry.last_error = None;
                entry.next_attempt_at_ms = None;
                entry.finished_at_ms = Some(now);
                self.update(&entry);
                self.unqueue(entry.sequence);
                self.count(&entry.plugin, &entry.target, |c| {
                    c.moved(EntryState::Pending, EntryState::Delivered)
                });
                self.total(&entry, |t| t.delivered += 1);
            }
            Err(error) => {
                self.total(&entry, |t| t.failed_attempts += 1);
                entry.last_error = Some(error);
                if entry.attempts >= max_attempts {
                    tracing::warn!(
                        plugin = %entry.plugin, target = %entry.target, id = %entry.id,
                        attempts = entry.attempts, "an outbox request is dead"
                    );
                    entry.state = EntryState::Dead;
                    entry.next_attempt_at_ms = None;
                    entry.finished_at_ms = Some(now);
                    self.update(&entry);
                    self.unqueue(entry.sequence);
                    self.count(&entry.plugin, &entry.target, |c| {
                        c.moved(EntryState::Pending, EntryState::Dead)
                    });
                    self.total(&entry, |t| t.dead += 1);
                } else {
                    let due = now + backoff(&self.config, entry.attempts).as_millis() as u64;
                    entry.next_attempt_at_ms = Some(due);
                    self.update(&entry);
                    if let Some(p) = self.pending.get_mut(&entry.sequence) {
                        p.due_ms = due;
                    }
                }
            }
        }
    }

    fn command(&mut self, command: Command) {
        match command {
            Command::Retry { plugin, id, reply } => {
                let _ = reply.send(self.retry(&plugin, &id));
            }
            Command::Drop { plugin, id, reply } => {
                let _ = reply.send(self.drop_request(&plugin, &id));
            }
        }
    }

    fn entry_of(&self, plugin: &str, id: &Uuid) -> Result<Entry, OutboxError> {
        match self.store.find(id)? {
            Some(Found::Entry(entry)) if entry.plugin == plugin => Ok(*entry),
            Some(Found::Purged) => Err(OutboxError::Conflict(format!(
                "outbox request {id} was delivered or dropped long ago (its record is purged)"
            ))),
            _ => Err(OutboxError::NotFound(format!(
                "plugin {plugin:?} has no outbox request {id}"
            ))),
        }
    }

    fn retry(&mut self, plugin: &str, id: &Uuid) -> Result<Entry, OutboxError> {
        let mut entry = self.entry_of(plugin, id)?;
        let was = entry.state;
        if matches!(was, EntryState::Delivered | EntryState::Dropped) {
            return Err(OutboxError::Conflict(format!(
                "outbox request {id} is {}: only pending and dead requests are retried",
                was.name()
            )));
        }
        let now = crate::clock::now_ms();
        entry.state = EntryState::Pending;
        entry.attempts = 0;
        entry.next_attempt_at_ms = Some(now);
        entry.finished_at_ms = None;
        self.store.update(&entry)?;
        match self.pending.get_mut(&entry.sequence) {
            Some(p) => p.due_ms = now,
            None => {
                self.queue(entry.clone());
                self.count(&entry.plugin, &entry.target, |c| {
                    c.moved(was, EntryState::Pending)
                });
            }
        }
        Ok(entry)
    }

    fn drop_request(&mut self, plugin: &str, id: &Uuid) -> Result<Entry, OutboxError> {
        let mut entry = self.entry_of(plugin, id)?;
        let was = entry.state;
        match was {
            EntryState::Dropped => return Ok(entry),
            EntryState::Delivered => {
                return Err(OutboxError::Conflict(format!(
                    "outbox request {id} is delivered already"
                )));
            }
            EntryState::Pending | EntryState::Dead => {}
        }
        entry.state = EntryState::Dropped;
        entry.next_attempt_at_ms = None;
        entry.finished_at_ms = Some(crate::clock::now_ms());
        self.store.update(&entry)?;
        if let Some(p) = self.pending.get(&entry.sequence) {
            // A send in flight is let be; its outcome is ignored.
            self.in_flight.remove(&p.queue.clone());
        }
        self.unqueue(entry.sequence);
        self.count(&entry.plugin, &entry.target, |c| {
            c.moved(was, EntryState::Dropped)
        });
        Ok(entry)
    }

    /// Delete the records of requests finished longer than the retention ago.
    fn purge(&mut self) {
        let horizon = crate::clock::now_ms().saturating_sub(
            self.config
                .delivered_retention_hours
                .saturating_mul(3_600_000),
        );
        let mut old = Vec::new();
        let scanned = self.store.scan_after(0, |entry| {
            let finished = matches!(entry.state, EntryState::Delivered | EntryState::Dropped);
            if finished && entry.finished_at_ms.is_some_and(|at| at < horizon) {
                old.push(entry);
            }
            true
        });
        if let Err(e) = scanned {
            tracing::error!(error = %e, "reading the outbox for its retention");
            return;
        }
        if old.is_empty() {
            return;
        }
        let sequences: Vec<u64> = old.iter().map(|e| e.sequence).collect();
        match self.store.purge(&sequences) {
            Ok(()) => {
                for entry in &old {
                    self.count(&entry.plugin, &entry.target, |c| {
                        let slot = c.slot(entry.state);
                        *slot = slot.saturating_sub(1);
                    });
                }
                tracing::info!(
                    purged = old.len(),
                    "purged finished outbox requests past their retention"
                );
            }
            Err(e) => tracing::error!(error = %e, "purging the outbox"),
        }
    }
}

/// Send one request; `Err` says why it did not count as delivered.
async fn deliver(client: &reqwest::Client, target: &Target, entry: &Entry) -> Result<(), String> {
    let sent = client
        .request(target.method.clone(), target.url.clone())
        .headers(target.headers.clone())
        .header(CONTENT_TYPE, "application/json")
        .header(IDEMPOTENCY_HEADER, &entry.idempotency_key)
        .header(ID_HEADER, entry.id.hyphenated().to_string())
        .header(PLUGIN_HEADER, &entry.plugin)
        .header(ATTEMPT_HEADER, (entry.attempts + 1).to_string())
        .timeout(target.timeout)
        .body(entry.payload.clone())
        .send()
        .await;
    match sent {
        Ok(response) if response.status().is_success() => Ok(()),
        Ok(response) => {
            let status = response.status();
            let body = response.text().await.unwrap_or_default();
            let body: String = body.chars().take(MAX_ERROR_BODY).collect();
            Err(format!("HTTP {status}: {}", body.trim()))
        }
        Err(e) if e.is_timeout() => Err(format!(
            "no answer within {} ms",
            target.timeout.as_millis()
        )),
        Err(e) if e.is_connect() => Err(format!(
            "could not connect to the target: {}",
            root_cause(&e)
        )),
        // Without the URL, which may carry credentials.
        Err(e) => Err(format!("{}", e.without_url())),
    }
}

fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbox::config::HeaderSource;

    #[test]
    fn backoff_doubles_with_jitter_up_to_the_cap() {
        let config = OutboxConfig {
            backoff_initial_ms: 100,
            backoff_max_ms: 1000,
            ..OutboxConfig::default()
        };
        for (failed, base) in [(1, 100), (2, 200), (3, 400), (4, 800)] {
            let d = backoff(&config, failed).as_millis() as u64;
            assert!((base..=base + base / 5).contains(&d), "{failed}: {d}");
        }
        for failed in [5, 20, 40, u32::MAX] {
            assert_eq!(backoff(&config, failed), Duration::from_millis(1000));
        }
    }

    #[test]
    fn targets_are_checked_and_their_headers_resolved() {
        let target = |url: &str| TargetConfig {
            url: url.into(),
            method: "post".into(),
            headers: [(
                "Authorization".to_string(),
                HeaderSource::Text("Bearer ${T}".into()),
            )]
            .into(),
            timeout_ms: 100,
            max_attempts: None,
        };
        let env = |name: &str| (name == "T").then(|| "x".to_string());
        let config = OutboxConfig::default();
        let ok = resolve_targets(
            &[("email".to_string(), target("http://127.0.0.1:1/send"))].into(),
            &config,
            env,
        )
        .unwrap();
        assert_eq!(ok["email"].method, reqwest::Method::POST);
        assert_eq!(ok["email"].headers["authorization"], "Bearer x");
        assert_eq!(ok["email"].max_attempts, 8);
        let https = resolve_targets(
            &[("email".to_string(), target("https://example.com"))].into(),
            &config,
            env,
        );
        assert!(https.unwrap_err().contains("http://"));
        let unset = resolve_targets(
            &[("email".to_string(), target("http://127.0.0.1:1/"))].into(),
            &config,
            |_| None,
        )
        .unwrap_err();
        assert!(
            unset.contains("T is not set") && !unset.contains("Bearer"),
            "{unset}"
        );
    }

    #[tokio::test]
    async fn finished_requests_past_their_retention_are_purged_and_never_enqueued_again() {
        let dir = tempfile::tempdir().unwrap();
        let db = crate::storage::open(dir.path()).unwrap();
        let log = crate::log::EventLog::open(db.clone(), 0).unwrap();
        let rules = crate::outbox::OutboxRules::new("p", &["t".into()]);
        let entries: Vec<_> = (0..2)
            .map(|index| {
                let cause = crate::projector::emit::Cause {
                    position: 1,
                    id: "c".into(),
                    metadata: "{}".into(),
                };
                let request = crate::outbox::Request {
                    target: "t".into(),
                    payload: "{}".into(),
                    ..Default::default()
                };
                rules.entry(&cause, index, request).unwrap()
            })
            .collect();
        let commit = |entries: Vec<_>| {
            log.commit_with_reactions(crate::storage::WriteSet::default(), Vec::new(), entries)
        };
        assert_eq!(commit(entries.clone()).await.unwrap().enqueued, 2);
        let store = OutboxStore::new(db.clone());
        let Some(Found::Entry(mut delivered)) = store.find(&entries[0].id).unwrap() else {
            panic!("enqueued")
        };
        delivered.state = EntryState::Delivered;
        delivered.finished_at_ms = Some(1);
        store.update(&delivered).unwrap();
        // No target is configured: the other request waits, unsent.
        let config = OutboxConfig {
            delivered_retention_hours: 1,
            ..OutboxConfig::default()
        };
        let outbox = Outbox::start(
            store.clone(),
            log.outbox_enqueued(),
            config,
            &HashMap::new(),
        )
        .unwrap();
        let mut purged = false;
        for _ in 0..100 {
            if matches!(store.find(&entries[0].id).unwrap(), Some(Found::Purged)) {
                purged = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(purged, "the delivered record was purged");
        let report = outbox.report("p");
        assert_eq!(
            (report[0].counts.delivered, report[0].counts.pending),
            (0, 1)
        );
        assert_eq!(commit(entries).await.unwrap().enqueued, 0);
        let page = outbox.page("p", None, 0, 10).unwrap();
        assert_eq!(page.entries.len(), 1);
        assert!(outbox.waiting_for(&page.entries[0]).is_some());
    }

    #[tokio::test]
    async fn the_last_handle_dropped_ends_the_delivery_thread_and_its_hold_on_the_database() {
        let dir = tempfile::tempdir().unwrap();
        let db = crate::storage::open(dir.path()).unwrap();
        let weak = db.downgrade();
        let (_enqueue, enqueued) = watch::channel(0u64);
        let outbox = Outbox::start(
            OutboxStore::new(db),
            enqueued,
            OutboxConfig::default(),
            &HashMap::new(),
        )
        .unwrap();
        let other = outbox.clone();
        drop(outbox);
        assert!(weak.upgrade().is_some(), "a handle is left");
        drop(other);
        // Gone with the last handle, not some time after it.
        assert!(
            weak.upgrade().is_none(),
            "the delivery thread still holds the database"
        );
    }
}
