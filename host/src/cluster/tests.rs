//! The JetStream log against real 3-node clusters (R3) on loopback: one
//! cluster per test, every wait bounded.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use uuid::Uuid;

use super::jetstream::{
    ConnectError, Head, JetStreamConfig, JetStreamLog, LogCopy, is_unavailable,
};
use super::testing::NatsCluster;
use crate::log::idempotency::IdEntry;
use crate::log::{
    AppendOutcome, ExpectedVersion, LogError, MultiOutcome, NewEvent, Position, RecordedEvent,
    StreamEvents, StreamVersion,
};

/// The JetStream stream's own events, read in order as far as asked and
/// kept: the copy of the log these tests give appends (a Prism node gives
/// its local copy). Its heads are what it has read so far, so an append's
/// first guess is often stale here.
#[derive(Clone)]
struct StreamCopy {
    log: JetStreamLog,
    seen: Arc<tokio::sync::Mutex<Seen>>,
}

#[derive(Default)]
struct Seen {
    through: Position,
    ids: HashMap<Uuid, IdEntry>,
    heads: HashMap<String, Head>,
}

impl StreamCopy {
    fn of(log: &JetStreamLog) -> StreamCopy {
        StreamCopy {
            log: log.clone(),
            seen: Arc::default(),
        }
    }
}

impl LogCopy for StreamCopy {
    async fn heads(&self, streams: &[String]) -> Result<Vec<Option<Head>>, LogError> {
        let seen = self.seen.lock().await;
        Ok(streams.iter().map(|s| seen.heads.get(s).copied()).collect())
    }

    async fn find(
        &self,
        ids: Vec<Uuid>,
        head: Position,
        _deadline: Instant,
    ) -> Result<Vec<Option<IdEntry>>, LogError> {
        let mut seen = self.seen.lock().await;
        while seen.through < head {
            let events = self.log.read(seen.through.next(), 1000).await?;
            if events.is_empty() {
                panic!("the stream ends before position {head}");
            }
            for e in events {
                let head = Head {
                    sequence: e.position.0,
                    version: e.stream_version,
                };
                seen.heads.insert(e.stream.clone(), head);
                let entry = IdEntry {
                    position: e.position,
                    stream: e.stream,
                    version: e.stream_version,
                };
                seen.ids.insert(e.id, entry);
                seen.through = e.position;
            }
        }
        Ok(ids.iter().map(|id| seen.ids.get(id).cloned()).collect())
    }
}

async fn within<T>(seconds: u64, what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(seconds), future)
        .await
        .unwrap_or_else(|_| panic!("{what} took more than {seconds} s"))
}

async fn cluster_and_log() -> (NatsCluster, JetStreamLog) {
    let cluster = NatsCluster::start(3).await;
    let log = within(
        10,
        "connecting",
        JetStreamLog::connect(JetStreamConfig::new(cluster.servers())),
    )
    .await
    .unwrap();
    (cluster, log)
}

fn events(n: usize) -> Vec<NewEvent> {
    (0..n)
        .map(|i| NewEvent {
            id: Uuid::new_v4(),
            client_id: true,
            event_type: format!("Noted{i}"),
            data: format!(r#"{{"i":{i}}}"#),
            metadata: "{}".into(),
        })
        .collect()
}

async fn append(
    log: &JetStreamLog,
    stream: &str,
    expected: ExpectedVersion,
    events: &[NewEvent],
) -> Result<AppendOutcome, LogError> {
    let copy = StreamCopy::of(log);
    within(
        40,
        "an append",
        append_with(log, stream, expected, events, &copy),
    )
    .await
}

/// Append `events` to one stream, looking ids and heads up in `copy`.
async fn append_with(
    log: &JetStreamLog,
    stream: &str,
    expected: ExpectedVersion,
    events: &[NewEvent],
    copy: &StreamCopy,
) -> Result<AppendOutcome, LogError> {
    let runs = vec![StreamEvents {
        stream: stream.to_string(),
        events: events.to_vec(),
    }];
    log.append_runs(runs, vec![(stream.to_string(), expected)], copy)
        .await
        .map(MultiOutcome::into_single)
}

/// Everything in the log, read by following it from position 1.
async fn whole_log(log: &JetStreamLog) -> Vec<RecordedEvent> {
    let last = log.last_position().await.unwrap();
    let mut follower = log.follow(Position(1)).await.unwrap();
    let mut out = Vec::new();
    while out.len() < last.0 as usize {
        let raw = within(10, "following the log", follower.next())
            .await
            .unwrap();
        out.push(raw.decode().unwrap());
    }
    out
}

#[tokio::test]
async fn positions_are_gapless_from_one_and_versions_count_per_stream() {
    let (_cluster, log) = cluster_and_log().await;
    assert_eq!(log.last_position().await.unwrap(), Position(0));
    assert_eq!(log.stream_version("a").await.unwrap(), None);
    let mut written = Vec::new();
    for (stream, n) in [("a", 1), ("b", 3), ("a", 2), ("a.b *>", 1), ("b", 1)] {
        let batch = events(n);
        let outcome = append(&log, stream, ExpectedVersion::Any, &batch)
            .await
            .unwrap();
        assert_eq!(
            outcome.last_position.0 - outcome.first_position.0 + 1,
            n as u64
        );
        written.extend(batch.into_iter().map(|e| (stream, e)));
    }
    assert_eq!(log.last_position().await.unwrap(), Position(8));
    let all = log.read(Position(1), 100).await.unwrap();
    let expected_versions = [0, 0, 1, 2, 1, 2, 0, 3];
    assert_eq!(all.len(), 8);
    for (i, (event, (stream, sent))) in all.iter().zip(&written).enumerate() {
        assert_eq!(event.position, Position(i as u64 + 1));
        assert_eq!(event.stream, *stream);
        assert_eq!(event.id, sent.id);
        assert_eq!(event.event_type, sent.event_type);
        assert_eq!(event.data, sent.data);
        assert_eq!(event.stream_version, StreamVersion(expected_versions[i]));
    }
    assert_eq!(
        log.stream_version("a").await.unwrap(),
        Some(StreamVersion(2))
    );
    assert_eq!(
        log.stream_version("b").await.unwrap(),
        Some(StreamVersion(3))
    );
    assert_eq!(log.read(Position(7), 1).await.unwrap(), all[6..7]);
    assert_eq!(
        log.read_event(Position(4)).await.unwrap().as_ref(),
        Some(&all[3])
    );
    assert_eq!(log.read_event(Position(9)).await.unwrap(), None);
}

/// An append across streams (as `POST /events` and `prism import` send):
/// one atomic batch in the order given, each stream's versions counted on
/// from its head; a failed expectation on any stream refuses all of it;
/// a retry returns the original outcome.
#[tokio::test]
async fn an_append_across_streams_is_atomic_ordered_and_checked_per_stream() {
    let (_cluster, log) = cluster_and_log().await;
    append(&log, "a", ExpectedVersion::Any, &events(2))
        .await
        .unwrap();
    let runs = |batches: &[(&str, usize)]| -> Vec<StreamEvents> {
        batches
            .iter()
            .map(|(stream, n)| StreamEvents {
                stream: stream.to_string(),
                events: events(*n),
            })
            .collect()
    };
    let ids = StreamCopy::of(&log);
    let interleaved = runs(&[("a", 1), ("b", 2), ("a", 1), ("c", 1), ("b", 1)]);
    let expected = vec![
        ("a".to_string(), ExpectedVersion::Exact(StreamVersion(1))),
        ("b".to_string(), ExpectedVersion::NoStream),
    ];
    let outcome = within(
        40,
        "an append across streams",
        log.append_runs(interleaved.clone(), expected.clone(), &ids),
    )
    .await
    .unwrap();
    assert_eq!(
        (outcome.first_position, outcome.last_position),
        (Position(3), Position(8))
    );
    assert_eq!(
        outcome.streams,
        [
            ("a".to_string(), StreamVersion(3)),
            ("b".to_string(), StreamVersion(2)),
            ("c".to_string(), StreamVersion(0)),
        ]
    );
    let stored = whole_log(&log).await;
    let order: Vec<(String, u64)> = stored[2..]
        .iter()
        .map(|e| (e.stream.clone(), e.stream_version.0))
        .collect();
    let want = [("a", 2), ("b", 0), ("b", 1), ("a", 3), ("c", 0), ("b", 2)];
    assert_eq!(
        order,
        want.map(|(s, v)| (s.to_string(), v)).to_vec(),
        "stored in the order given"
    );
    let sent: Vec<Uuid> = interleaved
        .iter()
        .flat_map(|r| r.events.iter().map(|e| e.id))
        .collect();
    assert_eq!(stored[2..].iter().map(|e| e.id).collect::<Vec<_>>(), sent);

    // The same append again (a client's retry): the original outcome, nothing stored.
    let retry = within(40, "a retry", log.append_runs(interleaved, expected, &ids))
        .await
        .unwrap();
    assert_eq!(
        (
            retry.first_position,
            retry.last_position,
            retry.streams.clone()
        ),
        (
            outcome.first_position,
            outcome.last_position,
            outcome.streams.clone()
        )
    );
    assert!(retry.duplicate);

    // One stream's expectation fails: nothing of any stream is stored.
    let refused = within(
        40,
        "a refused append",
        log.append_runs(
            runs(&[("c", 1), ("a", 1), ("d", 1)]),
            vec![("a".to_string(), ExpectedVersion::Exact(StreamVersion(2)))],
            &ids,
        ),
    )
    .await;
    assert!(
        matches!(
            &refused,
            Err(LogError::WrongExpectedVersion { stream, current: Some(StreamVersion(3)), .. }) if stream == "a"
        ),
        "{refused:?}"
    );
    assert_eq!(log.last_position().await.unwrap(), Position(8));
    assert_eq!(log.stream_version("d").await.unwrap(), None);
}

#[tokio::test]
async fn one_stream_reads_from_any_version() {
    let (_cluster, log) = cluster_and_log().await;
    // Interleave two streams so that stream versions and positions differ.
    for _ in 0..12 {
        append(&log, "a", ExpectedVersion::Any, &events(2))
            .await
            .unwrap();
        append(&log, "b", ExpectedVersion::Any, &events(1))
            .await
            .unwrap();
    }
    for from in [0, 1, 5, 17, 23] {
        let read = log
            .read_stream("a", StreamVersion(from), 4)
            .await
            .unwrap()
            .unwrap();
        let versions: Vec<u64> = read.iter().map(|e| e.stream_version.0).collect();
        let wanted: Vec<u64> = (from..(from + 4).min(24)).collect();
        assert_eq!(versions, wanted, "from version {from}");
        assert!(read.iter().all(|e| e.stream == "a"));
    }
    assert_eq!(
        log.read_stream("a", StreamVersion(24), 4).await.unwrap(),
        Some(vec![])
    );
    assert_eq!(
        log.read_stream("c", StreamVersion(0), 4).await.unwrap(),
        None
    );
}

#[tokio::test]
async fn each_expected_version_accepts_and_refuses() {
    let (_cluster, log) = cluster_and_log().await;
    let refused = |result: Result<AppendOutcome, LogError>, wanted: Option<u64>| match result {
        Err(LogError::WrongExpectedVersion { current, .. }) => {
            assert_eq!(current, wanted.map(StreamVersion));
        }
        other => panic!("expected a wrong expected version, got {other:?}"),
    };
    use ExpectedVersion::*;

    refused(append(&log, "s", Exists, &events(1)).await, None);
    refused(
        append(&log, "s", Exact(StreamVersion(0)), &events(1)).await,
        None,
    );
    let first = append(&log, "s", NoStream, &events(2)).await.unwrap();
    assert_eq!(first.stream_version, StreamVersion(1));
    refused(append(&log, "s", NoStream, &events(1)).await, Some(1));
    refused(
        append(&log, "s", Exact(StreamVersion(0)), &events(1)).await,
        Some(1),
    );
    refused(
        append(&log, "s", Exact(StreamVersion(2)), &events(1)).await,
        Some(1),
    );
    let exact = append(&log, "s", Exact(StreamVersion(1)), &events(1))
        .await
        .unwrap();
    assert_eq!(exact.stream_version, StreamVersion(2));
    let exists = append(&log, "s", Exists, &events(3)).await.unwrap();
    assert_eq!(exists.stream_version, StreamVersion(5));
    let any = append(&log, "s", Any, &events(1)).await.unwrap();
    assert_eq!(any.stream_version, StreamVersion(6));
    // Refusals stored nothing: positions went on from where they were.
    assert_eq!(any.last_position, Position(7));
    assert_eq!(log.last_position().await.unwrap(), Position(7));
}

#[tokio::test]
async fn multi_event_appends_are_all_or_nothing_and_contiguous() {
    let (_cluster, log) = cluster_and_log().await;
    let outcome = append(&log, "big", ExpectedVersion::NoStream, &events(1000))
        .await
        .unwrap();
    assert_eq!(
        (outcome.first_position, outcome.last_position),
        (Position(1), Position(1000))
    );
    assert_eq!(outcome.stream_version, StreamVersion(999));

    // Too many events for one atomic batch: refused before anything is sent.
    let too_many = append(&log, "big", ExpectedVersion::Any, &events(1001)).await;
    assert!(
        matches!(&too_many, Err(LogError::Invalid(m)) if m.contains("at most 1000")),
        "{too_many:?}"
    );
    // A batch whose fourth event is too large for one message: its first
    // messages were sent, but the batch was never committed.
    let mut oversized = events(6);
    oversized[3].data = format!(r#""{}""#, "x".repeat(2 << 20));
    let refused = append(&log, "big", ExpectedVersion::Any, &oversized).await;
    assert!(matches!(refused, Err(LogError::Invalid(_))), "{refused:?}");
    // A batch whose expectation fails: nothing of it is stored.
    let conflict = append(
        &log,
        "big",
        ExpectedVersion::Exact(StreamVersion(3)),
        &events(5),
    )
    .await;
    assert!(matches!(
        conflict,
        Err(LogError::WrongExpectedVersion { .. })
    ));

    let next = append(&log, "other", ExpectedVersion::Any, &events(3))
        .await
        .unwrap();
    assert_eq!(
        (next.first_position, next.last_position),
        (Position(1001), Position(1003))
    );
    assert_eq!(log.last_position().await.unwrap(), Position(1003));
    assert_eq!(
        log.stream_version("big").await.unwrap(),
        Some(StreamVersion(999))
    );
}

#[tokio::test]
async fn retries_with_the_same_ids_return_the_original_outcome() {
    let (_cluster, log) = cluster_and_log().await;
    append(&log, "other", ExpectedVersion::Any, &events(2))
        .await
        .unwrap();
    let batch = events(4);
    let original = append(&log, "s", ExpectedVersion::NoStream, &batch)
        .await
        .unwrap();
    assert!(!original.duplicate);
    let single = events(1);
    let original_single = append(&log, "s", ExpectedVersion::Any, &single)
        .await
        .unwrap();

    for expected in [ExpectedVersion::NoStream, ExpectedVersion::Any] {
        let retry = append(&log, "s", expected, &batch).await.unwrap();
        assert!(retry.duplicate);
        assert_eq!(
            (
                retry.first_position,
                retry.last_position,
                retry.stream_version
            ),
            (
                original.first_position,
                original.last_position,
                original.stream_version
            )
        );
    }
    for expected in [
        ExpectedVersion::Exact(StreamVersion(3)),
        ExpectedVersion::Any,
    ] {
        let retry = append(&log, "s", expected, &single).await.unwrap();
        assert!(retry.duplicate);
        assert_eq!(retry.last_position, original_single.last_position);
        assert_eq!(retry.stream_version, StreamVersion(4));
    }
    assert_eq!(log.last_position().await.unwrap(), Position(7));

    // Some ids known, some new: refused, nothing stored.
    let mut overlap = batch[2..].to_vec();
    overlap.extend(events(2));
    for expected in [
        ExpectedVersion::Any,
        ExpectedVersion::Exact(StreamVersion(4)),
    ] {
        let refused = append(&log, "s", expected, &overlap).await;
        assert!(
            matches!(&refused, Err(LogError::IdempotencyConflict(m)) if m.contains("2 of the 4")),
            "{refused:?}"
        );
    }
    // The same ids for another stream: refused too.
    let refused = append(&log, "elsewhere", ExpectedVersion::Any, &batch).await;
    assert!(
        matches!(refused, Err(LogError::IdempotencyConflict(_))),
        "{refused:?}"
    );
    // The same id twice in one append.
    let mut twice = events(2);
    twice[1].id = twice[0].id;
    let refused = append(&log, "s", ExpectedVersion::Any, &twice).await;
    assert!(matches!(refused, Err(LogError::Invalid(_))), "{refused:?}");

    assert_eq!(log.last_position().await.unwrap(), Position(7));
    assert_eq!(
        log.stream_version("s").await.unwrap(),
        Some(StreamVersion(4))
    );
}

#[tokio::test]
async fn beyond_the_duplicate_window_a_retry_is_recognised_by_a_copy_that_holds_it() {
    let cluster = NatsCluster::start(3).await;
    let mut config = JetStreamConfig::new(cluster.servers());
    config.duplicate_window = Duration::from_secs(1);
    let log = JetStreamLog::connect(config).await.unwrap();
    let batch = events(2);
    let copy = StreamCopy::of(&log);
    let original = within(
        40,
        "an append",
        append_with(&log, "s", ExpectedVersion::NoStream, &batch, &copy),
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    // The copy has read the log up to the append, as a following node has.
    let deadline = Instant::now() + Duration::from_secs(10);
    copy.find(Vec::new(), original.last_position, deadline)
        .await
        .unwrap();
    for expected in [ExpectedVersion::NoStream, ExpectedVersion::Any] {
        let retry = within(
            40,
            "a retry",
            append_with(&log, "s", expected, &batch, &copy),
        )
        .await
        .unwrap();
        assert!(retry.duplicate, "{expected:?}");
        assert_eq!(
            (retry.first_position, retry.last_position),
            (original.first_position, original.last_position)
        );
    }
    assert_eq!(log.last_position().await.unwrap(), original.last_position);
    // A copy that has not got the append yet (a node far behind) does not
    // recognise it once JetStream has forgotten the ids: the documented limit.
    let again = append(&log, "s", ExpectedVersion::Any, &batch)
        .await
        .unwrap();
    assert!(!again.duplicate);
    assert_eq!(again.first_position, Position(original.last_position.0 + 1));
}

/// An acknowledged append and its events, to check against the log.
struct Acked {
    stream: String,
    outcome: AppendOutcome,
    ids: Vec<Uuid>,
}

/// Every acknowledged event is in the log exactly once, where its
/// acknowledgement said, with the version it said; the log holds nothing
/// else and its positions run from 1 without a gap.
fn assert_log_holds_exactly(log: &[RecordedEvent], acked: &[Acked]) {
    let mut wanted = HashMap::new();
    for append in acked {
        let last = append.outcome.stream_version.0;
        let first = last + 1 - append.ids.len() as u64;
        for (i, id) in append.ids.iter().enumerate() {
            let position = Position(append.outcome.first_position.0 + i as u64);
            let previous = wanted.insert(*id, (position, append.stream.clone(), first + i as u64));
            assert!(previous.is_none(), "event {id} acknowledged twice");
        }
    }
    let mut seen = HashSet::new();
    for (i, event) in log.iter().enumerate() {
        assert_eq!(
            event.position,
            Position(i as u64 + 1),
            "positions have a gap"
        );
        assert!(seen.insert(event.id), "event {} stored twice", event.id);
        let (position, stream, version) = wanted
            .get(&event.id)
            .unwrap_or_else(|| panic!("event {} was stored but never acknowledged", event.id));
        assert_eq!(
            (event.position, &event.stream, event.stream_version.0),
            (*position, stream, *version)
        );
    }
    assert_eq!(seen.len(), wanted.len(), "acknowledged events are missing");
    // Versions run from 0 without a gap in every stream, in log order.
    let mut next_version: HashMap<&str, u64> = HashMap::new();
    for event in log {
        let next = next_version.entry(&event.stream).or_default();
        assert_eq!(event.stream_version.0, *next, "stream {}", event.stream);
        *next += 1;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_writers_with_expected_versions_lose_and_duplicate_nothing() {
    const TASKS: usize = 16;
    const APPENDS_PER_TASK: usize = 25;
    let (_cluster, log) = cluster_and_log().await;
    let started = Instant::now();
    let mut tasks = Vec::new();
    let ids = StreamCopy::of(&log);
    for task in 0..TASKS {
        let log = log.clone();
        let ids = ids.clone();
        tasks.push(tokio::spawn(async move {
            let stream = format!("race-{}", task % 4);
            let mut acked = Vec::new();
            let mut conflicts = 0;
            let mut known = log.stream_version(&stream).await.unwrap();
            for i in 0..APPENDS_PER_TASK {
                let batch = events(1 + (task + i) % 3);
                loop {
                    let expected = match known {
                        None => ExpectedVersion::NoStream,
                        Some(v) => ExpectedVersion::Exact(v),
                    };
                    let result = append_with(&log, &stream, expected, &batch, &ids).await;
                    match result {
                        Ok(outcome) => {
                            assert!(!outcome.duplicate);
                            known = Some(outcome.stream_version);
                            acked.push(Acked {
                                stream: stream.clone(),
                                outcome,
                                ids: batch.iter().map(|e| e.id).collect(),
                            });
                            break;
                        }
                        Err(LogError::WrongExpectedVersion { current, .. }) => {
                            conflicts += 1;
                            known = current;
                        }
                        Err(e) => panic!("append failed: {e}"),
                    }
                }
            }
            (acked, conflicts)
        }));
    }
    let mut acked = Vec::new();
    let mut conflicts = 0;
    for task in tasks {
        let (a, c) = within(60, "racing writers", task).await.unwrap();
        acked.extend(a);
        conflicts += c;
    }
    let elapsed = started.elapsed();
    let events_acked: usize = acked.iter().map(|a| a.ids.len()).sum();
    eprintln!(
        "racing writers: {} appends ({events_acked} events) in {elapsed:.2?} = {:.0} appends/s, \
         {:.0} events/s, {conflicts} conflicts",
        acked.len(),
        acked.len() as f64 / elapsed.as_secs_f64(),
        events_acked as f64 / elapsed.as_secs_f64()
    );
    assert_eq!(acked.len(), TASKS * APPENDS_PER_TASK);
    assert_log_holds_exactly(&whole_log(&log).await, &acked);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_survive_killing_the_stream_leader() {
    const WRITERS: usize = 4;
    let (mut cluster, log) = cluster_and_log().await;
    let killed_at: Arc<std::sync::Mutex<Option<Instant>>> = Arc::default();
    let resumed_after: Arc<std::sync::Mutex<Option<Duration>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    let ids = StreamCopy::of(&log);
    for writer in 0..WRITERS {
        let log = log.clone();
        let ids = ids.clone();
        let (killed_at, resumed_after) = (killed_at.clone(), resumed_after.clone());
        let stop = stop.clone();
        writers.push(tokio::spawn(async move {
            let stream = format!("w{writer}");
            let mut acked = Vec::new();
            let mut unavailable = 0;
            for i in 0.. {
                let batch = events(1 + i % 4);
                let started = Instant::now();
                // Retried by hand with the same ids until acknowledged, as a
                // client would after an `Unavailable` answer.
                let outcome = loop {
                    let result =
                        append_with(&log, &stream, ExpectedVersion::Any, &batch, &ids).await;
                    match result {
                        Ok(outcome) => break outcome,
                        Err(e) if is_unavailable(&e) => unavailable += 1,
                        Err(e) => panic!("append failed: {e}"),
                    }
                };
                if let Some(at) = *killed_at.lock().unwrap()
                    && started > at
                {
                    resumed_after.lock().unwrap().get_or_insert(at.elapsed());
                }
                acked.push(Acked {
                    stream: stream.clone(),
                    outcome,
                    ids: batch.iter().map(|e| e.id).collect(),
                });
                if stop.load(Ordering::Relaxed) {
                    break;
                }
            }
            (acked, unavailable)
        }));
    }
    // Followers reading through the failover: one from position 1, one
    // from where the log is when the leader dies.
    let target = Arc::new(AtomicU64::new(u64::MAX));
    let follow = |from: Position| {
        let (log, target) = (log.clone(), target.clone());
        tokio::spawn(async move {
            let mut follower = loop {
                match log.follow(from).await {
                    Ok(follower) => break follower,
                    Err(e) if is_unavailable(&e) => {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    Err(e) => panic!("following the log: {e}"),
                }
            };
            let mut followed = Vec::new();
            while from.0 + (followed.len() as u64) <= target.load(Ordering::Relaxed) {
                match tokio::time::timeout(Duration::from_millis(200), follower.next()).await {
                    Err(_) => {}
                    Ok(Ok(raw)) => followed.push(raw.decode().unwrap()),
                    Ok(Err(e)) if is_unavailable(&e) => {}
                    Ok(Err(e)) => panic!("following the log: {e}"),
                }
            }
            followed
        })
    };
    let from_start = follow(Position(1));
    tokio::time::sleep(Duration::from_millis(700)).await;
    let leader = cluster
        .wait_for_stream_leader(log.stream_name(), Duration::from_secs(5))
        .await;
    let late_from = log.last_position().await.unwrap().next();
    let from_late = follow(late_from);
    tokio::time::sleep(Duration::from_millis(100)).await;
    cluster.kill(leader);
    *killed_at.lock().unwrap() = Some(Instant::now());
    let deadline = Instant::now() + Duration::from_secs(30);
    while resumed_after.lock().unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "no append succeeded 30 s after the kill"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A little more writing under the new leader, then stop.
    tokio::time::sleep(Duration::from_millis(700)).await;
    stop.store(true, Ordering::Relaxed);
    let mut acked = Vec::new();
    let mut unavailable = 0;
    for writer in writers {
        let (a, u) = within(60, "the writers", writer).await.unwrap();
        acked.extend(a);
        unavailable += u;
    }
    let resumed = resumed_after.lock().unwrap().unwrap();
    eprintln!(
        "leader {} killed: first acknowledged append {resumed:.2?} later; {} appends \
         acknowledged, {unavailable} answered unavailable",
        cluster.name(leader),
        acked.len()
    );
    let writers_done = Instant::now();
    let new_leader = cluster
        .wait_for_stream_leader(log.stream_name(), Duration::from_secs(5))
        .await;
    assert_ne!(new_leader, leader);
    let total: usize = acked.iter().map(|a| a.ids.len()).sum();
    target.store(total as u64, Ordering::Relaxed);
    let followed = within(60, "the follower", from_start).await.unwrap();
    assert_log_holds_exactly(&followed, &acked);
    let followed_late = within(60, "the late follower", from_late).await.unwrap();
    eprintln!(
        "followers caught up {:.2?} after the last append",
        writers_done.elapsed()
    );
    assert_eq!(followed_late[..], followed[late_from.0 as usize - 1..]);
    let restarting = Instant::now();
    cluster.restart(leader).await;
    eprintln!(
        "node {} healthy again {:.2?} after its restart",
        cluster.name(leader),
        restarting.elapsed()
    );
    assert_log_holds_exactly(&whole_log(&log).await, &acked);
}

#[tokio::test]
async fn a_follower_gets_every_event_from_position_one_and_then_waits_for_more() {
    let (_cluster, log) = cluster_and_log().await;
    let mut acked = Vec::new();
    for (i, stream) in ["a", "b", "a", "c"].iter().enumerate() {
        let batch = events(1 + i);
        let outcome = append(&log, stream, ExpectedVersion::Any, &batch)
            .await
            .unwrap();
        acked.push(Acked {
            stream: stream.to_string(),
            outcome,
            ids: batch.iter().map(|e| e.id).collect(),
        });
    }
    let mut follower = log.follow(Position(1)).await.unwrap();
    let mut followed = Vec::new();
    for _ in 0..10 {
        let raw = within(10, "following", follower.next()).await.unwrap();
        followed.push(raw.decode().unwrap());
    }
    assert_log_holds_exactly(&followed, &acked);

    // At the head the follower waits; a new append reaches it.
    let waiting = tokio::time::timeout(Duration::from_millis(300), follower.next()).await;
    assert!(waiting.is_err(), "nothing new yet: {waiting:?}");
    let batch = events(2);
    let outcome = append(&log, "d", ExpectedVersion::Any, &batch)
        .await
        .unwrap();
    for (i, id) in batch.iter().map(|e| e.id).enumerate() {
        let raw = within(10, "following", follower.next()).await.unwrap();
        assert_eq!(raw.position, Position(outcome.first_position.0 + i as u64));
        assert_eq!(raw.decode().unwrap().id, id);
    }
    // A follower can start anywhere.
    let mut late = log.follow(Position(11)).await.unwrap();
    let raw = within(10, "following", late.next()).await.unwrap();
    assert_eq!(raw.position, Position(11));
}

#[tokio::test]
async fn streams_that_would_lose_events_are_refused_and_a_single_server_works() {
    let single = NatsCluster::start(1).await;
    let mut config = JetStreamConfig::new(single.servers());
    config.replicas = 1;
    let log = within(10, "connecting", JetStreamLog::connect(config.clone()))
        .await
        .unwrap();
    let batch = events(3);
    let outcome = append(&log, "s", ExpectedVersion::NoStream, &batch)
        .await
        .unwrap();
    assert_eq!(outcome.last_position, Position(3));
    // A retry is recognised on a single server too, which checks a
    // publish's expectations before its id.
    let retry = append(&log, "s", ExpectedVersion::Any, &batch)
        .await
        .unwrap();
    assert!(retry.duplicate);
    assert_eq!(retry.last_position, Position(3));
    drop(log);
    // The stream is there now: connecting again checks and accepts it.
    JetStreamLog::connect(config.clone()).await.unwrap();
    // Asking for more replicas than the stream has is refused.
    let mut more = config.clone();
    more.replicas = 3;
    let refused = JetStreamLog::connect(more).await.err().unwrap();
    assert!(refused.to_string().contains("1 replicas"), "{refused}");

    // A stream someone made with a message limit.
    let client = async_nats::connect(single.url(0)).await.unwrap();
    let js = async_nats::jetstream::new(client);
    js.create_stream(async_nats::jetstream::stream::Config {
        name: "LIMITED".into(),
        subjects: vec!["limited.>".into()],
        max_messages: 100,
        ..Default::default()
    })
    .await
    .unwrap();
    let mut limited = config.clone();
    limited.stream = "LIMITED".into();
    limited.subject_prefix = "limited".into();
    let refused = JetStreamLog::connect(limited).await.err().unwrap();
    assert!(matches!(refused, ConnectError::Stream { .. }));
    let message = refused.to_string();
    for what in [
        "max_msgs is 100",
        "deny_delete",
        "deny_purge",
        "allow_atomic",
    ] {
        assert!(message.contains(what), "{message}");
    }

    // No server at all: a clear error, quickly.
    drop(single);
    let mut nowhere = config;
    nowhere.servers = "nats://127.0.0.1:1".into();
    let refused = within(10, "connecting", JetStreamLog::connect(nowhere))
        .await
        .err()
        .unwrap();
    assert!(matches!(refused, ConnectError::Connect { .. }), "{refused}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_quorum_an_append_ends_in_a_retryable_error() {
    let mut cluster = NatsCluster::start(3).await;
    let mut config = JetStreamConfig::new(cluster.servers());
    config.unavailable_timeout = Duration::from_secs(3);
    let log = JetStreamLog::connect(config).await.unwrap();
    append(&log, "s", ExpectedVersion::Any, &events(1))
        .await
        .unwrap();
    let leader = cluster
        .wait_for_stream_leader(log.stream_name(), Duration::from_secs(5))
        .await;
    let survivor = (leader + 1) % 3;
    for node in 0..3 {
        if node != survivor {
            cluster.kill(node);
        }
    }
    let batch = events(2);
    let started = Instant::now();
    let refused = append(&log, "s", ExpectedVersion::Any, &batch).await;
    let waited = started.elapsed();
    let error = refused.expect_err("no quorum, no append");
    assert!(is_unavailable(&error), "{error}");
    assert!(error.to_string().contains("retry"), "{error}");
    assert!(
        waited >= Duration::from_secs(3) && waited < Duration::from_secs(10),
        "gave up after {waited:?}"
    );

    // With a quorum again the same append goes through, once.
    cluster.restart(leader).await;
    let outcome = loop {
        match append(&log, "s", ExpectedVersion::Any, &batch).await {
            Ok(outcome) => break outcome,
            Err(e) if is_unavailable(&e) && started.elapsed() < Duration::from_secs(40) => {}
            Err(e) => panic!("append after the quorum came back: {e}"),
        }
    };
    assert_eq!(outcome.last_position, Position(3));
    assert_eq!(log.last_position().await.unwrap(), Position(3));
}

#[tokio::test]
async fn servers_older_than_2_12_1_are_refused_when_connecting() {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    // Just enough of the NATS protocol to be connected to: a 2.12.0 server.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let (socket, _) = listener.accept().await.unwrap();
        let (read, mut write) = socket.into_split();
        let info = r#"{"server_id":"old","server_name":"old","version":"2.12.0","proto":1,"headers":true,"max_payload":1048576}"#;
        write
            .write_all(format!("INFO {info}\r\n").as_bytes())
            .await
            .unwrap();
        let mut lines = BufReader::new(read).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if line.starts_with("PING") && write.write_all(b"PONG\r\n").await.is_err() {
                break;
            }
        }
    });
    let config = JetStreamConfig::new(format!("nats://127.0.0.1:{port}"));
    let refused = within(10, "connecting", JetStreamLog::connect(config))
        .await
        .err()
        .unwrap();
    assert!(
        matches!(refused, ConnectError::ServerTooOld { .. }),
        "{refused}"
    );
    let message = refused.to_string();
    assert!(
        message.contains("2.12.0") && message.contains("2.12.1"),
        "{message}"
    );
}
