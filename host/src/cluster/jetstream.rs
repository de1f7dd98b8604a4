//! The event log in a NATS JetStream stream, so that many Prism nodes share
//! one replicated log (R3 in a cluster). It keeps the contract of the
//! embedded log (`crate::log`) wherever JetStream can, and says where it
//! cannot.
//!
//! # Layout in JetStream
//! One JetStream stream (default `PRISM_EVENTS`, subjects `prism.events.>`,
//! file storage) holds every event as one message:
//! - **position = the stream sequence.** Sequences start at 1 and a
//!   rejected publish or failed batch consumes none, so they are gapless as
//!   long as nothing removes messages. That is why the stream is created
//!   with `deny_delete`, `deny_purge`, no limits (messages, bytes, age, per
//!   subject), no TTLs and no rollups, and why [`JetStreamLog::connect`]
//!   refuses a stream configured otherwise, or whose first sequence is not 1
//!   or that has deleted messages.
//! - **subject = `prism.events.<stream token>`**: one subject per Prism
//!   stream. A stream name (1–256 bytes of UTF-8 without control characters)
//!   becomes one subject token by [`encode_stream_name`]: ASCII letters,
//!   digits, `-` and `_` stand for themselves, every other byte is written
//!   `=XX` (two uppercase hex digits; `=` itself is `=3D`). So no token holds
//!   `.`, `*`, `>` or white space, and the encoding is reversible
//!   ([`decode_stream_name`]).
//! - **payload = the event's record** in the embedded log's own encoding
//!   (`storage::codec`): id, stream, stream version, type, data, metadata and
//!   the time the appending node recorded it. A follower stores the bytes as
//!   they are, under the position.
//! - **headers**: `Nats-Msg-Id` (the event id, for de-duplication),
//!   `Prism-Version` (the stream version, read back from a stream's last
//!   message without decoding it), and on publish the expectation and batch
//!   headers JetStream acts on.
//!
//! # Appends
//! An append reads the stream's last message (its sequence S and version V,
//! through the stream leader; the first attempt guesses it, see below),
//! checks the expected version against V, and publishes its events with
//! versions V+1, V+2, ... and
//! `Nats-Expected-Last-Subject-Sequence: S` on the first message, all in one
//! atomic batch (a single event is a plain publish). JetStream stores the
//! batch only if the stream's subject still ends at S, so the version check
//! and the append are one atomic step, whatever the expected version (also
//! `any`: versions are assigned here, so every append is checked). Answers:
//! - 10071 "wrong last sequence": another append came first. The head is
//!   read again and the expectation checked again: `any` and `exists`
//!   retry, `no_stream` and an exact version fail with
//!   [`LogError::WrongExpectedVersion`] and the current version.
//! - 10164 (the subject has a write in flight; also a false conflict now and
//!   then) and the other transient refusals: retried after a short pause.
//! - no responders, 503, time-outs, a lost connection (no stream leader,
//!   e.g. for the 4–9 s of an election after the leader died): retried with
//!   the same event ids and backing off, for up to
//!   [`JetStreamConfig::unavailable_timeout`] (30 s); then an
//!   [`Unavailable`] error (see there).
//!
//! The first attempt takes the heads from the node's copy of the log
//! ([`LogCopy::heads`]) instead of reading them: a copy that is up to date
//! (the usual case) saves a round trip per stream, and a stale one only
//! costs one refused publish (10071, or an expectation that looks failed),
//! after which the heads are read through the leader as above. So one
//! event usually costs one round trip to the stream leader, a batch two
//! (the batch's first message is a request too, so that a refusal comes
//! back at once), whatever the number of streams in it.
//!
//! # Idempotent retries
//! Every event is published with `Nats-Msg-Id` = its id, so JetStream
//! refuses an id it has stored within the stream's duplicate window
//! ([`JetStreamConfig::duplicate_window`], 2 minutes by default): a single
//! event answers "duplicate", a batch holding a known id fails as a whole
//! (10201, without saying which id nor where it is). So the ids are looked
//! up in a copy of the log ([`LogCopy`]: this node's, which keeps every
//! event's id forever):
//! - before the first attempt, if the client chose ids, in the copy as it
//!   is: this recognises a retry stored longer ago than the window;
//! - whenever a publish meets a known id, whenever an append with
//!   client-chosen ids fails its expectation (a retry usually does, its
//!   first attempt having moved the stream), and after an unanswered
//!   attempt, once the copy holds every event the stream has now.
//!
//! Then, as in the embedded log:
//! - every id known, all in this stream: the original outcome is returned
//!   with `duplicate: true` (nothing is appended);
//! - some known: [`LogError::IdempotencyConflict`];
//! - none: the append goes on (or fails its expectation).
//!
//! Every event carries its id, also one the server generated: then this
//! log's own retries after an unanswered attempt are safe too. The stream
//! leader keeps every id of the window in memory.
//!
//! # Reads
//! [`JetStreamLog::follow`] reads the log from a position on, in order, and
//! then waits for new events: JetStream's ordered consumer (a consumer
//! without acknowledgements that the client recreates where it stopped
//! after a failure; a lost one is noticed within about 4 s). A follower
//! checks that positions come without a gap and reports a missing one as
//! corrupt. [`JetStreamLog::read`] takes a slice of the log the same way;
//! the head of a stream, one event and the last position are read through
//! the stream leader. Reads retry while the cluster is unavailable, like
//! appends.
//!
//! # What does not hold as in the embedded log
//! - **Past the window, ids are recognised by the node's copy.** A retry of
//!   an append stored longer ago than the duplicate window is recognised
//!   only if the node it goes to has copied that append (a node copies
//!   the log from JetStream continuously, so only one far behind, e.g.
//!   catching up after joining, has not). Within the window JetStream
//!   itself refuses the ids.
//! - **At most [`JetStreamConfig::max_batch`] events per append** (1,000,
//!   JetStream's default atomic batch limit), not 10,000: larger appends
//!   are refused with [`LogError::Invalid`] before anything is sent. A
//!   server configured with a larger `jetstream.limits.batch.max_msgs`
//!   allows raising it. Splitting would break atomicity, so it is not done.
//! - **One event is at most the server's `max_payload`** (1 MiB by
//!   default) with its headers; a larger one is refused with
//!   [`LogError::Invalid`].
//! - **Durability is replication.** An acknowledged append is stored on a
//!   majority of the stream's replicas, but JetStream writes to the file
//!   system without `fsync` and syncs every 2 minutes by default
//!   (`jetstream.sync_interval`), so losing power on a majority of nodes at
//!   once can lose acknowledged events. The embedded log syncs before every
//!   acknowledgement. Run the servers with `sync_interval: always` to
//!   match it, at a cost in throughput.
//! - **An append that was not answered may have been stored.** After a
//!   time-out or a lost connection it is retried with the same ids, which
//!   resolves it; if the cluster stays unavailable until the deadline, the
//!   [`Unavailable`] error says the append may have been stored, and a
//!   retry with the same ids finds out. (Event ids the server generated
//!   cannot be retried that way by a client.)
//! - **Duplicate ids inside one append** are refused ([`LogError::Invalid`]):
//!   JetStream rejects a batch holding an id twice.
//! - **Only Prism may publish to the stream's subjects.** A message stored
//!   by anything else takes a position and cannot be decoded (readers
//!   report it as corrupt); keep the subjects to Prism with NATS
//!   permissions.
//! - **The server version is checked on the server the client connects
//!   to.** A stream leader on an older server (during a rolling upgrade)
//!   refuses batches with event ids (10177), which fails the append with
//!   JetStream's own description.
//! - **The configuration is checked when connecting.** Limits or a TTL added
//!   by an operator later are not noticed until the next connect; readers
//!   following the log report a missing position as corrupt.
//! - `recorded_at_ms` is the appending node's clock, not the server's.

use std::fmt;
use std::future::Future;
use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::{DeliverPolicy, pull};
use async_nats::jetstream::stream::{
    Config as StreamConfig, DiscardPolicy, Info as StreamInfo, RetentionPolicy, StorageType,
};
use async_nats::jetstream::stream::{LastRawMessageErrorKind, RawMessageErrorKind};
use async_nats::jetstream::{self, context::GetStreamErrorKind};
use async_nats::{HeaderMap, PublishErrorKind, RequestErrorKind, ServerAddr};
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use serde::Deserialize;
use uuid::Uuid;

use crate::log::idempotency::IdEntry;
use crate::log::{
    ExpectedVersion, LogError, MultiOutcome, NewEvent, Position, RecordedEvent, StreamEvents,
    StreamVersion, idempotency, limits, recorded,
};
use crate::storage::StorageError;
use crate::storage::codec::{self, StoredEvent};

/// The oldest nats-server with `Nats-Msg-Id` inside atomic batches.
pub const MIN_SERVER_VERSION: (u64, u64, u64) = (2, 12, 1);

const MSG_ID: &str = "Nats-Msg-Id";
const EXPECTED_LAST_SUBJECT_SEQUENCE: &str = "Nats-Expected-Last-Subject-Sequence";
const BATCH_ID: &str = "Nats-Batch-Id";
const BATCH_SEQUENCE: &str = "Nats-Batch-Sequence";
const BATCH_COMMIT: &str = "Nats-Batch-Commit";
/// The event's stream version, so a stream's head is read without decoding.
const VERSION: &str = "Prism-Version";
/// How long a follower's pull request waits at the head; its heartbeats
/// come every half of it.
const FOLLOWER_PULL_EXPIRY: Duration = Duration::from_secs(2);
/// Stream heads read at once.
const LOOKUPS_IN_FLIGHT: usize = 64;

/// Where the log is and how it is kept. [`JetStreamConfig::new`] gives the
/// defaults each field names.
#[derive(Debug, Clone)]
pub struct JetStreamConfig {
    /// Server URLs, comma-separated: `nats://h1:4222,nats://h2:4222`. The
    /// client connects to one and fails over to the others.
    pub servers: String,
    /// The JetStream stream's name. Default `PRISM_EVENTS`.
    pub stream: String,
    /// Events are published to `<prefix>.<stream token>`. Default `prism.events`.
    pub subject_prefix: String,
    /// Replicas of the stream when it is created (3 in a cluster, 1 for a
    /// single server); an existing stream with fewer is refused. Default 3.
    pub replicas: usize,
    /// How long JetStream itself remembers event ids (after that, only a
    /// copy of the log does); an existing stream with a shorter window is
    /// refused.
    /// Default 2 minutes.
    pub duplicate_window: Duration,
    /// Most events in one append: JetStream's atomic batch limit, 1,000
    /// unless the servers set `jetstream.limits.batch.max_msgs`. Default 1000.
    pub max_batch: usize,
    /// How long an append keeps retrying while the cluster cannot take it
    /// (no stream leader, no connection). Default 30 s, several elections.
    pub unavailable_timeout: Duration,
    /// How long one request waits for its answer. Default 3 s.
    pub request_timeout: Duration,
}

impl JetStreamConfig {
    /// The defaults, with the log on `servers`.
    pub fn new(servers: impl Into<String>) -> Self {
        JetStreamConfig {
            servers: servers.into(),
            stream: "PRISM_EVENTS".into(),
            subject_prefix: "prism.events".into(),
            replicas: 3,
            duplicate_window: Duration::from_secs(120),
            max_batch: 1000,
            unavailable_timeout: Duration::from_secs(30),
            request_timeout: Duration::from_secs(3),
        }
    }
}

/// A copy of the log (this node's, `log::replica::LocalCopy`), where an
/// append finds what the log recorded under its event ids and guesses its
/// streams' heads. JetStream's own de-duplication only says that a batch
/// holds some known id, and a single server answers no look-up of one by
/// publishing it (it checks a publish's expectations before its id), so
/// the ids are looked up there instead.
pub trait LogCopy: Sync {
    /// The last event of each of `streams` as the copy has it now (`None`
    /// for a stream it has no event of). The copy may be behind the log:
    /// an append only starts from this guess, which JetStream's check of
    /// each subject's last sequence confirms or refuses.
    fn heads(
        &self,
        streams: &[String],
    ) -> impl Future<Output = Result<Vec<Option<Head>>, LogError>> + Send;

    /// What the log recorded under each of `ids`, in order (`None` for an
    /// id it does not hold), once the copy holds every event up to `head`:
    /// waits for the copy until `deadline`, then fails as [`Unavailable`].
    fn find(
        &self,
        ids: Vec<Uuid>,
        head: Position,
        deadline: Instant,
    ) -> impl Future<Output = Result<Vec<Option<IdEntry>>, LogError>> + Send;
}

/// Why [`JetStreamLog::connect`] failed. Nothing was changed on the server
/// unless the stream was missing and has been created.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("invalid JetStream log setting: {0}")]
    Config(String),
    #[error("connecting to NATS at {servers}: {reason}")]
    Connect { servers: String, reason: String },
    #[error(
        "nats-server {found} is too old for the JetStream log: it needs {}.{}.{} or newer \
         (event ids inside atomic batches)",
        MIN_SERVER_VERSION.0, MIN_SERVER_VERSION.1, MIN_SERVER_VERSION.2
    )]
    ServerTooOld { found: String },
    #[error("JetStream stream {stream}: {reason}")]
    Stream { stream: String, reason: String },
}

/// The JetStream cluster did not take an append (or answer a read) in time:
/// no stream leader, no connection, or a stream kept busy. Retry later, with
/// the same event ids.
///
/// Returned inside [`LogError::Io`] with [`std::io::ErrorKind::TimedOut`]
/// (the log's error type has no variant for it); [`is_unavailable`]
/// recognises it, for an answer of 503 with `Retry-After`.
#[derive(Debug)]
pub struct Unavailable {
    pub reason: String,
    /// Whether an unanswered attempt may have stored the append. A retry
    /// with the same event ids finds out.
    pub maybe_appended: bool,
}

impl fmt::Display for Unavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the JetStream log is unavailable: {}", self.reason)?;
        if self.maybe_appended {
            f.write_str(
                "; the append may have been stored: retry it with the same event ids \
                 to get its outcome",
            )
        } else {
            f.write_str("; retry later")
        }
    }
}

impl std::error::Error for Unavailable {}

/// Whether `error` is the JetStream log's [`Unavailable`].
pub fn is_unavailable(error: &LogError) -> bool {
    as_unavailable(error).is_some()
}

/// The JetStream log's [`Unavailable`] inside `error`, if it is one.
pub fn as_unavailable(error: &LogError) -> Option<&Unavailable> {
    match error {
        LogError::Io(e) => e.get_ref()?.downcast_ref::<Unavailable>(),
        _ => None,
    }
}

pub(crate) fn unavailable(reason: impl Into<String>, maybe_appended: bool) -> LogError {
    LogError::Io(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        Unavailable {
            reason: reason.into(),
            maybe_appended,
        },
    ))
}

/// The event log in JetStream; clone it freely.
#[derive(Clone)]
pub struct JetStreamLog {
    /// Publishes go out as plain NATS requests, so that every JetStream
    /// answer (error codes, duplicates, batch counts) is classified here.
    client: async_nats::Client,
    /// The stream's API: head and event reads, consumers.
    stream: jetstream::stream::Stream,
    config: JetStreamConfig,
}

/// An event as stored: its position and the record's bytes, as a follower
/// copies them.
#[derive(Debug, Clone, PartialEq)]
pub struct RawEvent {
    pub position: Position,
    /// The record in `storage::codec`'s encoding.
    pub bytes: Bytes,
}

impl RawEvent {
    pub fn decode(&self) -> Result<RecordedEvent, LogError> {
        Ok(recorded(self.position, codec::decode_event(&self.bytes)?))
    }
}

/// An append laid out for JetStream: its streams (in order of first
/// appearance) with their subjects, and its events in order, each with
/// the index of its stream.
struct Plan<'a> {
    streams: Vec<String>,
    subjects: Vec<String>,
    messages: Vec<(usize, &'a NewEvent)>,
}

impl<'a> Plan<'a> {
    fn new(log: &JetStreamLog, runs: &'a [StreamEvents]) -> Self {
        let mut plan = Plan {
            streams: Vec::new(),
            subjects: Vec::new(),
            messages: Vec::new(),
        };
        for run in runs {
            let index = match plan.streams.iter().position(|s| *s == run.stream) {
                Some(index) => index,
                None => {
                    plan.streams.push(run.stream.clone());
                    plan.subjects.push(log.subject(&run.stream));
                    plan.streams.len() - 1
                }
            };
            plan.messages
                .extend(run.events.iter().map(|event| (index, event)));
        }
        plan
    }

    /// Each message's stream version, after its stream's head in `heads`.
    fn versions(&self, heads: &[Option<Head>]) -> Vec<u64> {
        let mut next: Vec<u64> = heads
            .iter()
            .map(|h| h.map_or(0, |h| h.version.0 + 1))
            .collect();
        self.messages
            .iter()
            .map(|(index, _)| {
                let version = next[*index];
                next[*index] += 1;
                version
            })
            .collect()
    }

    /// The outcome of the append stored with its last message at sequence `last`.
    fn outcome(&self, last: u64, heads: &[Option<Head>]) -> MultiOutcome {
        let count = self.messages.len() as u64;
        let versions = self.versions(heads);
        let mut streams: Vec<(String, StreamVersion)> = self
            .streams
            .iter()
            .map(|s| (s.clone(), StreamVersion(0)))
            .collect();
        for ((index, _), version) in self.messages.iter().zip(versions) {
            streams[*index].1 = StreamVersion(version);
        }
        MultiOutcome {
            first_position: Position(last + 1 - count),
            last_position: Position(last),
            streams,
            duplicate: false,
        }
    }
}

/// The last event of a Prism stream: where it is and its version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    pub sequence: u64,
    pub version: StreamVersion,
}

impl JetStreamLog {
    /// Connect to the servers, check the server version, and create the
    /// stream or check that it keeps positions gapless.
    pub async fn connect(config: JetStreamConfig) -> Result<JetStreamLog, ConnectError> {
        check_config(&config)?;
        let addresses = config
            .servers
            .split(',')
            .map(|s| s.trim().parse::<ServerAddr>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ConnectError::Config(format!("servers {:?}: {e}", config.servers)))?;
        let client = async_nats::ConnectOptions::new()
            .name("prism")
            .connection_timeout(config.request_timeout)
            .request_timeout(Some(config.request_timeout))
            .connect(addresses)
            .await
            .map_err(|e| ConnectError::Connect {
                servers: config.servers.clone(),
                reason: e.to_string(),
            })?;
        let found = client.server_info().version;
        if !version_at_least(&found, MIN_SERVER_VERSION) {
            return Err(ConnectError::ServerTooOld { found });
        }
        let mut js = jetstream::new(client.clone());
        js.set_timeout(config.request_timeout);
        let stream_error = |reason: String| ConnectError::Stream {
            stream: config.stream.clone(),
            reason,
        };
        let stream = match js.get_stream(&config.stream).await {
            Ok(stream) => stream,
            Err(e) if is_stream_not_found(&e) => {
                match js.create_stream(stream_config(&config)).await {
                    Ok(stream) => stream,
                    // Another node may have created it meanwhile: check what
                    // it made, or say why creating failed.
                    Err(create) => js
                        .get_stream(&config.stream)
                        .await
                        .map_err(|_| stream_error(format!("creating it: {create}")))?,
                }
            }
            Err(e) => return Err(stream_error(format!("reading its configuration: {e}"))),
        };
        check_stream(stream.cached_info(), &config).map_err(stream_error)?;
        Ok(JetStreamLog {
            client,
            stream,
            config,
        })
    }

    /// The JetStream stream's name.
    pub fn stream_name(&self) -> &str {
        &self.config.stream
    }

    /// The subject of Prism stream `stream`.
    pub fn subject(&self, stream: &str) -> String {
        format!(
            "{}.{}",
            self.config.subject_prefix,
            encode_stream_name(stream)
        )
    }

    /// Append events of several streams atomically, in the order given,
    /// if every expectation holds: one atomic batch whose first message of
    /// each stream's subject carries that subject's expected last sequence,
    /// so a concurrent append to any of the streams fails the whole batch.
    /// Event ids are looked up in `copy` (see the module documentation).
    pub async fn append_runs(
        &self,
        runs: Vec<StreamEvents>,
        expected: Vec<(String, ExpectedVersion)>,
        copy: &impl LogCopy,
    ) -> Result<MultiOutcome, LogError> {
        let plan = Plan::new(self, &runs);
        self.check_append(&plan)?;
        let recorded_at_ms = crate::clock::now_ms();
        let deadline = Instant::now() + self.config.unavailable_timeout;
        let mut pause = Pause::default();
        // Whether an unanswered attempt of this call may have been stored.
        let mut maybe_appended = false;
        let mut last_refusal = String::new();
        let mut rereads = 0;
        let has_client_ids = plan.messages.iter().any(|(_, e)| e.client_id);
        let mut first = true;
        // A retry of an append stored longer ago than the duplicate window
        // is recognised by the copy as it is now (no waiting: an append
        // within the window is JetStream's to recognise).
        if has_client_ids
            && let Some(outcome) = self
                .already_appended(&plan, false, false, deadline, copy)
                .await?
        {
            return Ok(outcome);
        }
        'attempt: loop {
            if Instant::now() >= deadline {
                let stored = if maybe_appended {
                    ""
                } else {
                    ", nothing was appended"
                };
                return Err(unavailable(
                    format!(
                        "no append within {:?}{stored} (last: {last_refusal})",
                        self.config.unavailable_timeout
                    ),
                    maybe_appended,
                ));
            }
            // The first attempt starts from the copy's heads (no round trip
            // per stream); a stale guess costs one refused publish.
            let from_copy = if std::mem::take(&mut first) {
                copy.heads(&plan.streams).await.ok()
            } else {
                None
            };
            let guessed = from_copy.is_some();
            let heads = match from_copy {
                Some(heads) => heads,
                None => match self.heads(&plan).await {
                    Ok(heads) => heads,
                    Err(e) => match as_unavailable(&e) {
                        Some(why) => {
                            last_refusal = why.reason.clone();
                            pause.unavailable().await;
                            continue;
                        }
                        None => return Err(e),
                    },
                },
            };
            for (stream, expected) in &expected {
                let Some(index) = plan.streams.iter().position(|s| s == stream) else {
                    continue;
                };
                let current = heads[index].map(|h| h.version);
                if expected.admits(current) {
                    continue;
                }
                if guessed {
                    continue 'attempt;
                }
                // A leader elected a moment ago may not have applied the
                // last acknowledged appends yet: a stream that looks older
                // than expected is read again before the refusal.
                if behind(*expected, current) && rereads < 2 {
                    rereads += 1;
                    tokio::time::sleep(Duration::from_millis(25)).await;
                    continue 'attempt;
                }
                // A retry of an append that is already stored usually fails
                // its expectation: its first attempt moved the stream.
                if (maybe_appended || has_client_ids)
                    && let Some(outcome) = self
                        .already_appended(&plan, maybe_appended, true, deadline, copy)
                        .await?
                {
                    return Ok(outcome);
                }
                return Err(LogError::WrongExpectedVersion {
                    stream: stream.clone(),
                    expected: *expected,
                    current,
                });
            }
            match self.publish(&plan, &heads, recorded_at_ms).await {
                Ok(last) => return Ok(plan.outcome(last, &heads)),
                // The copy was behind: read the heads through the leader.
                Err(Refusal::WrongLastSequence) if guessed => {}
                Err(Refusal::WrongLastSequence) => pause.conflict().await,
                Err(Refusal::Busy { why }) => {
                    last_refusal = why;
                    pause.conflict().await;
                }
                Err(Refusal::Duplicate) => {
                    if let Some(outcome) = self
                        .already_appended(&plan, maybe_appended, true, deadline, copy)
                        .await?
                    {
                        return Ok(outcome);
                    }
                    // The known ids are still being stored: ask again soon.
                    last_refusal = "event ids being stored by another append".into();
                    pause.conflict().await;
                }
                Err(Refusal::Unavailable { why, maybe_stored }) => {
                    maybe_appended |= maybe_stored;
                    last_refusal = why;
                    pause.unavailable().await;
                }
                Err(Refusal::Final(e)) => return Err(e),
            }
        }
    }

    fn check_append(&self, plan: &Plan<'_>) -> Result<(), LogError> {
        for stream in &plan.streams {
            limits::check_stream_name(stream)?;
        }
        limits::check_event_count(plan.messages.len())?;
        for (_, event) in &plan.messages {
            limits::check_event_type(&event.event_type)?;
        }
        if plan.messages.len() > self.config.max_batch {
            return Err(LogError::Invalid(format!(
                "{} events in one append; the JetStream log appends at most {} atomically \
                 (the servers' atomic batch limit)",
                plan.messages.len(),
                self.config.max_batch
            )));
        }
        let mut ids = std::collections::HashSet::with_capacity(plan.messages.len());
        if let Some((_, twice)) = plan.messages.iter().find(|(_, e)| !ids.insert(e.id)) {
            return Err(LogError::Invalid(format!(
                "event id {} appears twice in one append",
                twice.id
            )));
        }
        Ok(())
    }

    /// Publish the plan's events as one atomic batch, each stream's first
    /// message expecting the subject's last sequence in `heads`; the last
    /// message's sequence.
    async fn publish(
        &self,
        plan: &Plan<'_>,
        heads: &[Option<Head>],
        recorded_at_ms: u64,
    ) -> Result<u64, Refusal> {
        let versions = plan.versions(heads);
        let mut first_of_stream = vec![true; plan.streams.len()];
        let mut message = |i: usize| {
            let (index, event) = plan.messages[i];
            let stream = plan.streams[index].as_str();
            let version = versions[i];
            let mut headers = HeaderMap::new();
            headers.insert(MSG_ID, event.id.to_string());
            headers.insert(VERSION, version.to_string());
            // The check goes on the first message writing each subject
            // only: JetStream refuses it repeated on a later one.
            if std::mem::take(&mut first_of_stream[index]) {
                let after = heads[index].map_or(0, |h| h.sequence);
                headers.insert(EXPECTED_LAST_SUBJECT_SEQUENCE, after.to_string());
            }
            let payload = codec::encode_event(&StoredEvent {
                id: *event.id.as_bytes(),
                recorded_at_ms,
                stream_version: version,
                stream,
                event_type: event.event_type.as_str(),
                data: event.data.as_str(),
                metadata: event.metadata.as_str(),
            });
            (plan.subjects[index].as_str(), headers, Bytes::from(payload))
        };
        let count = plan.messages.len();
        let (subject, mut headers, payload) = message(0);
        if count == 1 {
            let ack = self.request(subject, headers, payload, true).await?;
            return match ack {
                Some(ack) if ack.duplicate => Err(Refusal::Duplicate),
                Some(ack) => Ok(ack.seq),
                None => Err(unanswered("a publish")),
            };
        }
        // A fresh batch id per attempt: a failed attempt's batch may linger.
        let batch = Uuid::new_v4().simple().to_string();
        let batch_headers = |headers: &mut HeaderMap, i: usize| {
            headers.insert(BATCH_ID, batch.as_str());
            headers.insert(BATCH_SEQUENCE, (i + 1).to_string());
        };
        batch_headers(&mut headers, 0);
        // The first message as a request, so a refusal (too many open
        // batches, a wrong setting) comes back at once; the server answers
        // an accepted one with an empty message.
        self.request(subject, headers, payload, false).await?;
        let last = count - 1;
        for i in 1..last {
            let (subject, mut headers, payload) = message(i);
            batch_headers(&mut headers, i);
            self.client
                .publish_with_headers(subject.to_string(), headers, payload)
                .await
                .map_err(|e| match e.kind() {
                    PublishErrorKind::MaxPayloadExceeded => too_large(&e),
                    _ => Refusal::Unavailable {
                        why: format!("sending a batch: {e}"),
                        maybe_stored: false,
                    },
                })?;
        }
        let (subject, mut headers, payload) = message(last);
        batch_headers(&mut headers, last);
        headers.insert(BATCH_COMMIT, "1");
        match self.request(subject, headers, payload, true).await? {
            Some(ack) if ack.count.is_some_and(|c| c != count as u64) => Err(Refusal::Final(
                LogError::Storage(StorageError::Corrupt(format!(
                    "JetStream stored a batch of {} messages for {count} events",
                    ack.count.unwrap_or(0),
                ))),
            )),
            Some(ack) => Ok(ack.seq),
            None => Err(unanswered("a batch commit")),
        }
    }

    /// Send one publish as a request and classify the answer: `None` for
    /// the empty answer to a batch's first message.
    async fn request(
        &self,
        subject: &str,
        headers: HeaderMap,
        payload: Bytes,
        stores: bool,
    ) -> Result<Option<PubAck>, Refusal> {
        let request = async_nats::Request::new()
            .headers(headers)
            .payload(payload)
            .timeout(Some(self.config.request_timeout));
        let reply = match self.client.send_request(subject.to_string(), request).await {
            Ok(reply) => reply,
            Err(e) => {
                return Err(match e.kind() {
                    RequestErrorKind::NoResponders => Refusal::Unavailable {
                        why: "no stream leader answers (no responders)".into(),
                        maybe_stored: false,
                    },
                    RequestErrorKind::TimedOut => Refusal::Unavailable {
                        why: format!("no answer within {:?}", self.config.request_timeout),
                        maybe_stored: stores,
                    },
                    RequestErrorKind::MaxPayloadExceeded => too_large(&e),
                    _ => Refusal::Unavailable {
                        why: e.to_string(),
                        maybe_stored: stores,
                    },
                });
            }
        };
        if reply.payload.is_empty() {
            return Ok(None);
        }
        let ack: PubAck = serde_json::from_slice(&reply.payload).map_err(|e| {
            Refusal::Final(unexpected(format!(
                "an answer to a publish that is not a JetStream ack ({e}): {}",
                String::from_utf8_lossy(&reply.payload)
            )))
        })?;
        match ack.error {
            None => Ok(Some(ack)),
            Some(error) => Err(classify(error)),
        }
    }

    /// The original outcome if every id of the plan's events is recorded
    /// for its stream; `IdempotencyConflict` if only some are; `None` if
    /// none is. With `settled`, ids are looked up once `copy` holds
    /// every event stored so far (waiting for it until `deadline`);
    /// otherwise in `copy` as it is.
    async fn already_appended(
        &self,
        plan: &Plan<'_>,
        maybe_ours: bool,
        settled: bool,
        deadline: Instant,
        copy: &impl LogCopy,
    ) -> Result<Option<MultiOutcome>, LogError> {
        let head = if settled {
            self.last_position().await?
        } else {
            Position(0)
        };
        let ids = plan.messages.iter().map(|(_, e)| e.id).collect();
        let found = copy.find(ids, head, deadline).await?;
        let streams = plan.messages.iter().map(|(i, _)| plan.streams[*i].as_str());
        Ok(
            idempotency::outcome(streams, found)?.map(|outcome| MultiOutcome {
                // Found after an unanswered attempt of this very call: most
                // likely that attempt's events (the outcome is the same).
                duplicate: !maybe_ours,
                ..outcome
            }),
        )
    }

    /// The last event of each of the plan's streams, read through the
    /// stream leader.
    async fn heads(&self, plan: &Plan<'_>) -> Result<Vec<Option<Head>>, LogError> {
        // Owned subjects, so that the future stays `Send` for any caller.
        futures::stream::iter(plan.subjects.clone())
            .map(|subject| async move { self.head(&subject).await })
            .buffered(LOOKUPS_IN_FLIGHT)
            .try_collect()
            .await
    }

    /// The last event of `subject`, read through the stream leader (so it
    /// includes every acknowledged append).
    async fn head(&self, subject: &str) -> Result<Option<Head>, LogError> {
        match self.stream.get_last_raw_message_by_subject(subject).await {
            Ok(message) => Ok(Some(Head {
                sequence: message.sequence,
                version: version_of(&message.headers, &message.payload)?,
            })),
            Err(e) if matches!(e.kind(), LastRawMessageErrorKind::NoMessageFound) => Ok(None),
            Err(e) => Err(unavailable(
                format!("reading the stream's last event: {e}"),
                false,
            )),
        }
    }

    /// The position of the last event (0 when the log is empty).
    pub async fn last_position(&self) -> Result<Position, LogError> {
        self.retry(|| async {
            let info = self
                .stream
                .get_info()
                .await
                .map_err(|e| unavailable(format!("reading the stream's state: {e}"), false))?;
            Ok(Position(info.state.last_sequence))
        })
        .await
    }

    /// The event at `position`, if there is one.
    pub async fn read_event(&self, position: Position) -> Result<Option<RecordedEvent>, LogError> {
        if position == Position::ZERO {
            return Ok(None);
        }
        self.retry(|| async {
            match self.stream.get_raw_message(position.0).await {
                Ok(message) => Ok(Some(recorded(
                    position,
                    codec::decode_event(&message.payload)?,
                ))),
                Err(e) if matches!(e.kind(), RawMessageErrorKind::NoMessageFound) => Ok(None),
                Err(e) => Err(unavailable(
                    format!("reading position {position}: {e}"),
                    false,
                )),
            }
        })
        .await
    }

    /// The last version of `stream`, or `None` if it has no events.
    pub async fn stream_version(&self, stream: &str) -> Result<Option<StreamVersion>, LogError> {
        limits::check_stream_name(stream)?;
        let subject = self.subject(stream);
        let head = self.retry(|| self.head(&subject)).await?;
        Ok(head.map(|h| h.version))
    }

    /// Up to `limit` events from position `from` on, oldest first, as far
    /// as the log reached when called.
    pub async fn read(&self, from: Position, limit: usize) -> Result<Vec<RecordedEvent>, LogError> {
        let from = from.max(Position(1));
        let last = self.last_position().await?;
        if from > last || limit == 0 {
            return Ok(Vec::new());
        }
        let count = (last.0 - from.0 + 1).min(limit as u64) as usize;
        let follower = self.follow_subject(from, String::new()).await?;
        follower.take(count).await
    }

    /// Up to `limit` events of `stream` from version `from` on, oldest
    /// first; `None` if the stream has no events.
    ///
    /// JetStream has no index from a stream version to a sequence: the
    /// first event is found by a binary search over sequences (about
    /// log2(positions) reads through the leader), the rest read in order
    /// with a consumer on the stream's subject. A node that follows the log
    /// into RocksDB answers this from its copy instead.
    pub async fn read_stream(
        &self,
        stream: &str,
        from: StreamVersion,
        limit: usize,
    ) -> Result<Option<Vec<RecordedEvent>>, LogError> {
        limits::check_stream_name(stream)?;
        let subject = self.subject(stream);
        let Some(head) = self.retry(|| self.head(&subject)).await? else {
            return Ok(None);
        };
        if from > head.version || limit == 0 {
            return Ok(Some(Vec::new()));
        }
        let start = if from.0 == 0 {
            1
        } else {
            self.sequence_of_version(&subject, from, head).await?
        };
        let count = (head.version.0 - from.0 + 1).min(limit as u64) as usize;
        let events = self.follow_subject(Position(start), subject).await?;
        Ok(Some(events.take(count).await?))
    }

    /// The sequence of version `version` of the stream on `subject`, which
    /// exists (`version <= head.version`).
    async fn sequence_of_version(
        &self,
        subject: &str,
        version: StreamVersion,
        head: Head,
    ) -> Result<u64, LogError> {
        let (mut low, mut high, mut best) = (1, head.sequence, head.sequence);
        while low <= high {
            let middle = low + (high - low) / 2;
            let message = self
                .retry(|| async {
                    self.stream
                        .get_first_raw_message_by_subject(subject, middle)
                        .await
                        .map_err(|e| unavailable(format!("searching {subject}: {e}"), false))
                })
                .await?;
            if version_of(&message.headers, &message.payload)? >= version {
                best = best.min(message.sequence);
                high = middle - 1;
            } else {
                low = message.sequence + 1;
            }
        }
        Ok(best)
    }

    /// Every event from position `from` on, in order, waiting at the head
    /// for new ones: what a node copying the log into RocksDB follows.
    pub async fn follow(&self, from: Position) -> Result<Follower, LogError> {
        self.follow_subject(from.max(Position(1)), String::new())
            .await
    }

    /// The events from `from` on, all of them or (with a subject) those of
    /// one stream.
    async fn follow_subject(&self, from: Position, subject: String) -> Result<Follower, LogError> {
        let mut follower = Follower {
            stream: self.stream.clone(),
            subject,
            messages: None,
            next: from,
            retry_for: self.config.unavailable_timeout,
        };
        follower.open().await?;
        Ok(follower)
    }

    /// `attempt` again while the cluster is unavailable, for up to
    /// [`JetStreamConfig::unavailable_timeout`].
    async fn retry<T, F: Future<Output = Result<T, LogError>>>(
        &self,
        attempt: impl FnMut() -> F,
    ) -> Result<T, LogError> {
        retry_while_unavailable(self.config.unavailable_timeout, attempt).await
    }
}

async fn retry_while_unavailable<T, F: Future<Output = Result<T, LogError>>>(
    limit: Duration,
    mut attempt: impl FnMut() -> F,
) -> Result<T, LogError> {
    let deadline = Instant::now() + limit;
    let mut pause = Pause::default();
    loop {
        match attempt().await {
            Err(e) if is_unavailable(&e) && Instant::now() < deadline => {
                pause.unavailable().await;
            }
            result => return result,
        }
    }
}

/// The log from a position on, in order; see [`JetStreamLog::follow`].
///
/// It reads with JetStream's ordered consumer (one server-side consumer
/// without acknowledgements, recreated by the client after a failure).
pub struct Follower {
    stream: jetstream::stream::Stream,
    /// Only this subject's events; empty for all of them.
    subject: String,
    /// The consumer's messages; `None` until (re)opened.
    messages: Option<pull::Ordered>,
    /// The position the next event must have (or, with a subject, the
    /// lowest it may have).
    next: Position,
    /// How long opening the consumer is retried while the cluster is
    /// unavailable.
    retry_for: Duration,
}

impl Follower {
    /// The next event, waiting for it if the log has no more yet. An error
    /// does not end the follower: calling again goes on where it stopped.
    pub async fn next(&mut self) -> Result<RawEvent, LogError> {
        loop {
            if self.messages.is_none() {
                self.open().await?;
            }
            let messages = self.messages.as_mut().expect("opened above");
            let message = match messages.next().await {
                Some(Ok(message)) => message,
                Some(Err(e)) => return Err(unavailable(format!("following the log: {e}"), false)),
                None => {
                    self.messages = None;
                    return Err(unavailable("the log's consumer ended", false));
                }
            };
            let info = message
                .info()
                .map_err(|e| unexpected(format!("a consumed message without its position: {e}")))?;
            let position = Position(info.stream_sequence);
            if position < self.next {
                // The client's ordered consumer starts over from the first
                // message when it recreates itself before delivering one:
                // start again from where this follower is.
                self.messages = None;
                continue;
            }
            if self.subject.is_empty() && position != self.next {
                return Err(LogError::Storage(StorageError::Corrupt(format!(
                    "position {} is missing from the JetStream stream (the next event is at \
                     {position}): something removed messages",
                    self.next
                ))));
            }
            self.next = position.next();
            return Ok(RawEvent {
                position,
                bytes: message.payload.clone(),
            });
        }
    }

    /// The next `count` events, decoded, retrying while the cluster is
    /// unavailable.
    async fn take(mut self, count: usize) -> Result<Vec<RecordedEvent>, LogError> {
        let mut out = Vec::with_capacity(count);
        let deadline = Instant::now() + self.retry_for;
        while out.len() < count {
            match self.next().await {
                Ok(raw) => out.push(raw.decode()?),
                Err(e) if is_unavailable(&e) && Instant::now() < deadline => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    async fn open(&mut self) -> Result<(), LogError> {
        let (stream, subject, next) = (&self.stream, &self.subject, self.next);
        let messages = retry_while_unavailable(self.retry_for, || async move {
            let consumer = stream
                .create_consumer(pull::OrderedConfig {
                    deliver_policy: DeliverPolicy::ByStartSequence {
                        start_sequence: next.0,
                    },
                    filter_subject: subject.clone(),
                    // Pulls expire (and heartbeats come) this often: a
                    // consumer lost with its server is noticed after two
                    // missed heartbeats (4 s) rather than a minute.
                    max_expires: FOLLOWER_PULL_EXPIRY,
                    ..Default::default()
                })
                .await
                .map_err(|e| unavailable(format!("creating a consumer: {e}"), false))?;
            consumer
                .messages()
                .await
                .map_err(|e| unavailable(format!("starting a consumer: {e}"), false))
        })
        .await?;
        self.messages = Some(messages);
        Ok(())
    }
}

/// How a publish was refused.
#[derive(Debug)]
enum Refusal {
    /// 10071: the subject's last sequence is not the expected one.
    WrongLastSequence,
    /// A transient refusal (`why` has JetStream's description): retry soon.
    Busy { why: String },
    /// 10201 or a duplicate ack: some event id is already stored.
    Duplicate,
    /// No answer or no leader; `maybe_stored` if the publish may have been stored anyway.
    Unavailable { why: String, maybe_stored: bool },
    /// A refusal that retrying does not change.
    Final(LogError),
}

/// A JetStream publish acknowledgement, or its error.
#[derive(Debug, Deserialize)]
struct PubAck {
    #[serde(default)]
    seq: u64,
    #[serde(default)]
    duplicate: bool,
    /// Messages in a committed atomic batch.
    #[serde(default)]
    count: Option<u64>,
    #[serde(default)]
    error: Option<ApiError>,
}

#[derive(Debug, Deserialize)]
struct ApiError {
    code: u16,
    err_code: u64,
    #[serde(default)]
    description: String,
}

fn classify(error: ApiError) -> Refusal {
    let why = format!(
        "{} (JetStream error {}, status {})",
        error.description, error.err_code, error.code
    );
    match error.err_code {
        10071 => Refusal::WrongLastSequence,
        10201 => Refusal::Duplicate,
        // A write in flight on the subject (or a false conflict), an id in
        // process, an abandoned or gapped batch, too many open batches, the
        // per-subject check not ready yet.
        10164 | 10158 | 10176 | 10210 | 10163 => Refusal::Busy { why },
        // The servers ran out of storage.
        10023 | 10047 | 10002 => Refusal::Final(LogError::Storage(StorageError::Full)),
        10054 | 10097 => Refusal::Final(LogError::Invalid(format!(
            "an event is too large for the JetStream stream: {why}"
        ))),
        10199 => Refusal::Final(LogError::Invalid(format!(
            "the append is larger than the servers' atomic batch limit: {why}"
        ))),
        // Not the leader, no quorum, a store that failed: an election or
        // a recovery is under way.
        _ if error.code == 503 || error.err_code == 10009 => Refusal::Unavailable {
            why,
            maybe_stored: false,
        },
        _ => Refusal::Final(unexpected(format!("JetStream refused the append: {why}"))),
    }
}

/// An event too large for one NATS message (the servers' `max_payload`).
fn too_large(e: &dyn fmt::Display) -> Refusal {
    Refusal::Final(LogError::Invalid(format!(
        "an event is larger than the NATS servers take in one message: {e}"
    )))
}

/// An empty answer where an acknowledgement belongs.
fn unanswered(what: &str) -> Refusal {
    Refusal::Final(unexpected(format!("an empty answer to {what}")))
}

/// An answer no correct server gives: reported, not retried.
fn unexpected(what: impl Into<String>) -> LogError {
    LogError::Io(std::io::Error::other(what.into()))
}

/// Pauses between attempts: short and random under contention, growing
/// while the cluster is unavailable.
#[derive(Default)]
struct Pause {
    conflicts: u32,
    unavailable: u32,
}

impl Pause {
    /// After a conflict: the first retry at once, then up to a few ms,
    /// random so that racing writers spread out.
    async fn conflict(&mut self) {
        self.conflicts += 1;
        if self.conflicts > 1 {
            let ceiling = 1u64 << self.conflicts.min(5);
            tokio::time::sleep(Duration::from_micros(fastrand::u64(0..ceiling * 500))).await;
        }
    }

    /// While there is no leader: 50 ms doubling up to 1 s, with jitter.
    async fn unavailable(&mut self) {
        let base = 50u64 << self.unavailable.min(4);
        self.unavailable += 1;
        tokio::time::sleep(Duration::from_millis(
            base / 2 + fastrand::u64(0..=base / 2),
        ))
        .await;
    }
}

/// Whether a stream at `current` is older than `expected` asks for (rather
/// than past it or of another shape).
fn behind(expected: ExpectedVersion, current: Option<StreamVersion>) -> bool {
    match expected {
        ExpectedVersion::Exists => current.is_none(),
        ExpectedVersion::Exact(v) => current.is_none_or(|c| c < v),
        ExpectedVersion::Any | ExpectedVersion::NoStream => false,
    }
}

/// The stream version of a stored message: its header, else its record.
fn version_of(headers: &HeaderMap, payload: &[u8]) -> Result<StreamVersion, LogError> {
    if let Some(version) = headers.get(VERSION).and_then(|v| v.as_str().parse().ok()) {
        return Ok(StreamVersion(version));
    }
    Ok(StreamVersion(codec::decode_event(payload)?.stream_version))
}

fn is_stream_not_found(e: &async_nats::jetstream::context::GetStreamError) -> bool {
    matches!(e.kind(), GetStreamErrorKind::JetStream(inner)
        if inner.error_code() == async_nats::jetstream::ErrorCode::STREAM_NOT_FOUND)
}

/// One subject token for a stream name; see the module documentation.
pub fn encode_stream_name(name: &str) -> String {
    let mut token = String::with_capacity(name.len());
    for byte in name.bytes() {
        if byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_' {
            token.push(byte as char);
        } else {
            token.push_str(&format!("={byte:02X}"));
        }
    }
    token
}

/// The stream name a subject token stands for; `None` if no name encodes to it.
pub fn decode_stream_name(token: &str) -> Option<String> {
    let bytes = token.as_bytes();
    let mut name = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'=' => {
                let hex = token.get(i + 1..i + 3)?;
                if hex.bytes().any(|b| b.is_ascii_lowercase()) {
                    return None;
                }
                let byte = u8::from_str_radix(hex, 16).ok()?;
                if byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_' {
                    return None;
                }
                name.push(byte);
                i += 3;
            }
            b if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' => {
                name.push(b);
                i += 1;
            }
            _ => return None,
        }
    }
    String::from_utf8(name).ok()
}

/// Whether a nats-server version string (`2.12.1`, `2.15.0-dev`) is at
/// least `minimum`; a pre-release counts as older than its release.
fn version_at_least(version: &str, minimum: (u64, u64, u64)) -> bool {
    let version = version.trim_start_matches('v');
    let (numbers, pre_release) = match version.split_once('-') {
        Some((numbers, _)) => (numbers, true),
        None => (version, false),
    };
    let parts: Vec<u64> = numbers.split('.').map(|p| p.parse().unwrap_or(0)).collect();
    let found = (
        parts.first().copied().unwrap_or(0),
        parts.get(1).copied().unwrap_or(0),
        parts.get(2).copied().unwrap_or(0),
    );
    found > minimum || (found == minimum && !pre_release)
}

fn check_config(config: &JetStreamConfig) -> Result<(), ConnectError> {
    let bad = |why: String| Err(ConnectError::Config(why));
    if config.stream.is_empty()
        || config
            .stream
            .chars()
            .any(|c| c.is_whitespace() || matches!(c, '.' | '*' | '>' | '/' | '\\'))
    {
        return bad(format!(
            "stream name {:?} is not a JetStream stream name",
            config.stream
        ));
    }
    let token_ok = |t: &str| {
        !t.is_empty()
            && t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    if !config.subject_prefix.split('.').all(token_ok) {
        return bad(format!(
            "subject prefix {:?} must be dot-separated tokens of letters, digits, - and _",
            config.subject_prefix
        ));
    }
    if config.replicas == 0 || config.replicas > 5 {
        return bad(format!("replicas must be 1 to 5, not {}", config.replicas));
    }
    if config.max_batch == 0 || config.max_batch > limits::MAX_EVENTS_PER_APPEND {
        return bad(format!(
            "max_batch must be 1 to {}, not {}",
            limits::MAX_EVENTS_PER_APPEND,
            config.max_batch
        ));
    }
    if config.duplicate_window.is_zero() {
        return bad("the duplicate window must not be zero".into());
    }
    Ok(())
}

/// The stream as the log creates it.
fn stream_config(config: &JetStreamConfig) -> StreamConfig {
    StreamConfig {
        name: config.stream.clone(),
        description: Some("Prism's event log: one message per event, position = sequence".into()),
        subjects: vec![format!("{}.>", config.subject_prefix)],
        storage: StorageType::File,
        num_replicas: config.replicas,
        retention: RetentionPolicy::Limits,
        discard: DiscardPolicy::New,
        max_messages: -1,
        max_bytes: -1,
        max_messages_per_subject: -1,
        max_age: Duration::ZERO,
        duplicate_window: config.duplicate_window,
        deny_delete: true,
        deny_purge: true,
        allow_rollup: false,
        allow_atomic_publish: true,
        ..Default::default()
    }
}

/// Why an existing stream cannot hold the log, if it cannot: a setting
/// that removes messages (positions would not be gapless), weakens a
/// promise, or stops appends; or messages already removed.
fn check_stream(info: &StreamInfo, config: &JetStreamConfig) -> Result<(), String> {
    let c = &info.config;
    let mut wrong = Vec::new();
    let subjects = vec![format!("{}.>", config.subject_prefix)];
    if c.subjects != subjects {
        wrong.push(format!(
            "subjects are {:?}, not {subjects:?} (other messages would take positions)",
            c.subjects
        ));
    }
    if c.storage != StorageType::File {
        wrong.push("storage is not file".into());
    }
    if c.retention != RetentionPolicy::Limits {
        wrong.push(format!(
            "retention is {:?}: consumers would remove events",
            c.retention
        ));
    }
    if c.max_messages > 0 {
        wrong.push(format!(
            "max_msgs is {} (old events would be removed)",
            c.max_messages
        ));
    }
    if c.max_bytes > 0 {
        wrong.push(format!(
            "max_bytes is {} (old events would be removed)",
            c.max_bytes
        ));
    }
    if !c.max_age.is_zero() {
        wrong.push(format!(
            "max_age is {:?} (old events would be removed)",
            c.max_age
        ));
    }
    if c.max_messages_per_subject > 0 {
        wrong.push(format!(
            "max_msgs_per_subject is {} (old events would be removed)",
            c.max_messages_per_subject
        ));
    }
    if c.allow_message_ttl || c.subject_delete_marker_ttl.is_some() {
        wrong.push("message TTLs are allowed (expired events would leave gaps)".into());
    }
    if c.allow_rollup {
        wrong.push("rollups are allowed (they remove events)".into());
    }
    if !c.deny_delete {
        wrong.push("deny_delete is off (events could be deleted)".into());
    }
    if !c.deny_purge {
        wrong.push("deny_purge is off (events could be purged)".into());
    }
    if !c.allow_atomic_publish {
        wrong.push("allow_atomic is off (multi-event appends need atomic batches)".into());
    }
    if c.allow_message_schedules || c.allow_message_counter {
        wrong.push("scheduled or counter messages are allowed".into());
    }
    if c.mirror.is_some() || c.sources.as_ref().is_some_and(|s| !s.is_empty()) {
        wrong.push("it mirrors or sources other streams".into());
    }
    if c.subject_transform.is_some() {
        wrong.push("it transforms subjects".into());
    }
    if c.sealed {
        wrong.push("it is sealed (no appends)".into());
    }
    if matches!(
        c.persist_mode,
        Some(async_nats::jetstream::stream::PersistenceMode::Async)
    ) {
        wrong.push("its persist mode is async".into());
    }
    if c.num_replicas < config.replicas {
        wrong.push(format!(
            "it has {} replicas, fewer than the {} configured",
            c.num_replicas, config.replicas
        ));
    }
    if c.duplicate_window < config.duplicate_window {
        wrong.push(format!(
            "its duplicate window is {:?}, shorter than the {:?} configured",
            c.duplicate_window, config.duplicate_window
        ));
    }
    let s = &info.state;
    let deleted = s.deleted_count.unwrap_or(0);
    let gapless = if s.messages == 0 {
        s.last_sequence == 0
    } else {
        s.first_sequence == 1 && deleted == 0 && s.messages == s.last_sequence
    };
    if !gapless {
        wrong.push(format!(
            "its sequences are not gapless from 1 (first {}, last {}, {} messages, {} deleted): \
             events were removed",
            s.first_sequence, s.last_sequence, s.messages, deleted
        ));
    }
    if wrong.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "cannot hold Prism's log with gapless positions: {}",
            wrong.join("; ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_names_become_one_reversible_subject_token() {
        for name in [
            "account-1",
            "order_7",
            "a.b",
            "*",
            ">",
            "with space",
            "=3D",
            "tab\u{3000}ideographic",
            "émoji 🎉",
            "%2E",
        ] {
            let token = encode_stream_name(name);
            assert!(
                token
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_=".contains(&b)),
                "{name:?} -> {token:?}"
            );
            assert_eq!(decode_stream_name(&token).as_deref(), Some(name));
        }
        assert_eq!(encode_stream_name("account-1"), "account-1");
        assert_eq!(encode_stream_name("a.b"), "a=2Eb");
        assert_ne!(encode_stream_name("a.b"), encode_stream_name("a=2Eb"));
    }

    #[test]
    fn tokens_no_stream_name_encodes_to_are_refused() {
        for token in ["a.b", "=2", "=2e", "=41", "a b", "=FF"] {
            assert_eq!(decode_stream_name(token), None, "{token:?}");
        }
    }

    #[test]
    fn servers_older_than_2_12_1_are_refused() {
        let min = MIN_SERVER_VERSION;
        assert!(version_at_least("2.12.1", min));
        assert!(version_at_least("2.15.1", min));
        assert!(version_at_least("v2.12.2", min));
        assert!(version_at_least("3.0.0", min));
        assert!(version_at_least("2.15.0-dev", min));
        assert!(!version_at_least("2.12.0", min));
        assert!(!version_at_least("2.12.1-RC.2", min));
        assert!(!version_at_least("2.11.9", min));
        assert!(!version_at_least("", min));
    }

    fn info(config: StreamConfig) -> StreamInfo {
        serde_json::from_value(serde_json::json!({
            "config": config,
            "created": "2025-01-01T00:00:00Z",
            "state": {
                "messages": 3, "bytes": 10, "first_seq": 1, "first_ts": "2025-01-01T00:00:00Z",
                "last_seq": 3, "last_ts": "2025-01-01T00:00:00Z", "consumer_count": 0
            }
        }))
        .unwrap()
    }

    #[test]
    fn the_stream_the_log_creates_passes_its_own_check() {
        let config = JetStreamConfig::new("nats://127.0.0.1:4222");
        check_stream(&info(stream_config(&config)), &config).unwrap();
    }

    #[test]
    fn streams_that_lose_events_or_weaken_promises_are_refused() {
        let config = JetStreamConfig::new("nats://127.0.0.1:4222");
        type Change = fn(&mut StreamConfig);
        let cases: [(&str, Change); 13] = [
            ("max_msgs", |c| c.max_messages = 100),
            ("max_bytes", |c| c.max_bytes = 1 << 20),
            ("max_age", |c| c.max_age = Duration::from_secs(60)),
            ("max_msgs_per_subject", |c| c.max_messages_per_subject = 1),
            ("TTL", |c| c.allow_message_ttl = true),
            ("deny_delete", |c| c.deny_delete = false),
            ("deny_purge", |c| c.deny_purge = false),
            ("allow_atomic", |c| c.allow_atomic_publish = false),
            ("retention", |c| c.retention = RetentionPolicy::WorkQueue),
            ("subjects", |c| c.subjects.push("other.>".into())),
            ("replicas", |c| c.num_replicas = 1),
            ("duplicate window", |c| {
                c.duplicate_window = Duration::from_secs(1)
            }),
            ("sealed", |c| c.sealed = true),
        ];
        for (what, change) in cases {
            let mut stream = stream_config(&config);
            change(&mut stream);
            let refused = check_stream(&info(stream), &config).unwrap_err();
            assert!(refused.contains(what), "{what}: {refused}");
        }
    }

    #[test]
    fn streams_with_removed_events_are_refused() {
        let config = JetStreamConfig::new("nats://127.0.0.1:4222");
        let mut stream = info(stream_config(&config));
        stream.state.first_sequence = 2;
        stream.state.messages = 2;
        assert!(
            check_stream(&stream, &config)
                .unwrap_err()
                .contains("not gapless")
        );

        let mut stream = info(stream_config(&config));
        stream.state.messages = 2;
        stream.state.deleted_count = Some(1);
        assert!(
            check_stream(&stream, &config)
                .unwrap_err()
                .contains("1 deleted")
        );

        let mut emptied = info(stream_config(&config));
        emptied.state.messages = 0;
        emptied.state.first_sequence = 4;
        assert!(check_stream(&emptied, &config).is_err());

        let mut empty = info(stream_config(&config));
        empty.state.messages = 0;
        empty.state.first_sequence = 0;
        empty.state.last_sequence = 0;
        check_stream(&empty, &config).unwrap();
    }
}
