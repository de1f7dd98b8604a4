//! What `GET /plugins/{name}` reports about a projector, kept up to date by
//! the projector thread and read by the API.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::histogram::Histogram;
use crate::log::Position;

/// What a generation's projector is doing.
///
/// ```text
/// Loading ──► Replaying ──► Live
///    │  │         │          │
///    │  │         └──────────┴──► Failed
///    │  └─────────────────────────▲
///    └──► Quarantined (the process died inside one of its batches)
/// ```
///
/// | state       | may become                           |
/// |-------------|--------------------------------------|
/// | Loading     | Replaying, Live, Failed, Quarantined |
/// | Replaying   | Live, Failed                         |
/// | Live        | Failed                               |
/// | Failed      | (none: a rebuild or a new version starts a new generation) |
/// | Quarantined | (none: released, it runs as a new projector) |
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Compiling, instantiating, describing.
    Loading,
    /// Catching up with the head it saw when it started.
    Replaying,
    /// Caught up; following the log as it grows.
    Live,
    /// Stopped on an error; a new version or a rebuild starts it again.
    Failed,
    /// Not run: the process died inside one of its batches. An operator
    /// resumes it, skips the batch, rebuilds or removes it.
    Quarantined,
}

/// The last error of a plugin, for the operator.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct ErrorReport {
    pub message: String,
    /// The log position of the event that failed, when an event did.
    pub position: Option<Position>,
    pub at_ms: u64,
}

impl State {
    /// The states a projector in this state may move to.
    pub fn may_become(self) -> &'static [State] {
        match self {
            State::Loading => &[
                State::Replaying,
                State::Live,
                State::Failed,
                State::Quarantined,
            ],
            State::Replaying => &[State::Live, State::Failed],
            State::Live => &[State::Failed],
            State::Failed | State::Quarantined => &[],
        }
    }

    /// The name the API uses, as serialized.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Loading => "loading",
            State::Replaying => "replaying",
            State::Live => "live",
            State::Failed => "failed",
            State::Quarantined => "quarantined",
        }
    }
}

impl ErrorReport {
    pub fn new(message: impl Into<String>, position: Option<Position>) -> Self {
        ErrorReport {
            message: message.into(),
            position,
            at_ms: crate::clock::now_ms(),
        }
    }
}

/// Window over which events/s is computed.
const RATE_WINDOW: Duration = Duration::from_secs(5);

#[derive(Debug)]
struct Inner {
    state: State,
    position: Position,
    /// The head when replay started: replay is done when `position` reaches it.
    replay_target: Position,
    last_error: Option<ErrorReport>,
    /// (when, events processed so far) samples for the rate.
    samples: VecDeque<(Instant, u64)>,
    processed: u64,
    /// When `position` last moved; for stall detection.
    last_progress: Instant,
    dead_letters: u64,
    emitted: EmittedCounts,
    outbox: EnqueuedCounts,
    /// What the projector is waiting for, if anything (e.g. disk space).
    waiting: Option<&'static str>,
}

impl Inner {
    /// The one place the state changes: a move the table does not allow is
    /// a bug, reported and refused.
    fn set_state(&mut self, next: State) {
        if next == self.state {
            return;
        }
        if self.state.may_become().contains(&next) {
            self.state = next;
        } else {
            tracing::error!(from = ?self.state, to = ?next, "refused a projector state change the state table does not allow");
        }
    }
}

/// Shared, lock-protected status of one projector.
#[derive(Debug)]
pub struct Status {
    inner: Mutex<Inner>,
    /// Time to apply one batch, for `/metrics`.
    batch_latency: Histogram,
}

/// Counts of a generation's emitted events.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct EmittedCounts {
    /// Appended to the log by this generation.
    pub appended: u64,
    /// Emitted again and left out: the log already held their ids.
    pub already_in_log: u64,
}

/// Counts of a generation's outbox requests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct EnqueuedCounts {
    /// Put in the outbox by this generation.
    pub enqueued: u64,
    /// Made again and left out: the outbox already held their ids.
    pub already_in_outbox: u64,
}

/// A point-in-time copy of a status, with derived figures.
#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    pub state: State,
    /// True when the plugin has lag that has not moved for the stall timeout.
    pub stalled: bool,
    pub position: Position,
    pub head: Position,
    pub lag: u64,
    pub events_per_second: f64,
    /// Replay progress in percent while replaying (100 once live).
    pub replay_progress: f64,
    /// Seconds left in the replay at the current rate, while replaying.
    pub replay_eta_seconds: Option<f64>,
    pub last_error: Option<ErrorReport>,
    pub dead_letters: u64,
    /// Events this generation emitted since it started: appended, or found
    /// in the log already (emitted before, by a replay or another generation).
    pub emitted: EmittedCounts,
    /// Outbox requests this generation made since it started: enqueued, or
    /// found in the outbox already (made before, by a replay or another generation).
    pub outbox: EnqueuedCounts,
    /// Events this generation has processed (applied or filtered out) since it started.
    pub events_processed: u64,
    /// What the projector is waiting for, if anything (e.g. disk space).
    pub waiting_for: Option<String>,
}

impl Status {
    pub fn new(position: Position) -> Self {
        Status {
            inner: Mutex::new(Inner {
                state: State::Loading,
                position,
                replay_target: position,
                last_error: None,
                samples: VecDeque::new(),
                processed: 0,
                last_progress: Instant::now(),
                dead_letters: 0,
                emitted: EmittedCounts::default(),
                outbox: EnqueuedCounts::default(),
                waiting: None,
            }),
            batch_latency: Histogram::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().expect("status lock")
    }

    pub fn state(&self) -> State {
        self.lock().state
    }

    pub fn position(&self) -> Position {
        self.lock().position
    }

    pub fn start_replay(&self, target: Position) {
        let mut s = self.lock();
        s.replay_target = target;
        let next = if s.position >= target {
            State::Live
        } else {
            State::Replaying
        };
        s.set_state(next);
        s.last_progress = Instant::now();
    }

    /// The keyspace now reflects `position` (called on every commit).
    pub fn applied(&self, position: Position) {
        let mut s = self.lock();
        if position > s.position {
            s.last_progress = Instant::now();
        }
        s.position = position;
        if s.state == State::Replaying && position >= s.replay_target {
            s.set_state(State::Live);
        }
    }

    /// A batch of `processed` events (applied or filtered out) is done: one
    /// sample for the events/s window.
    pub fn counted(&self, processed: u64) {
        let mut s = self.lock();
        let now = Instant::now();
        s.processed += processed;
        let total = s.processed;
        s.samples.push_back((now, total));
        while s.samples.len() > 2
            && s.samples
                .front()
                .is_some_and(|(t, _)| now.duration_since(*t) > RATE_WINDOW)
        {
            s.samples.pop_front();
        }
    }

    pub fn batch_applied(&self, took: Duration) {
        self.batch_latency.observe(took);
    }

    pub fn batch_latency(&self) -> &Histogram {
        &self.batch_latency
    }

    /// A batch's emitted events were committed: `appended` new, `known` already in the log.
    pub fn emitted(&self, appended: u64, known: u64) {
        let mut s = self.lock();
        s.emitted.appended += appended;
        s.emitted.already_in_log += known;
    }

    /// A batch's outbox requests were committed: `enqueued` new, `known` already in the outbox.
    pub fn enqueued(&self, enqueued: u64, known: u64) {
        let mut s = self.lock();
        s.outbox.enqueued += enqueued;
        s.outbox.already_in_outbox += known;
    }

    pub fn dead_lettered(&self) {
        self.lock().dead_letters += 1;
    }

    pub fn fail(&self, report: ErrorReport) {
        let mut s = self.lock();
        s.set_state(State::Failed);
        s.last_error = Some(report);
    }

    /// The generation is not run: the process died inside one of its batches.
    pub fn quarantine(&self, report: ErrorReport) {
        let mut s = self.lock();
        s.set_state(State::Quarantined);
        s.last_error = Some(report);
    }

    /// The projector waits for something outside the plugin (`None`: no longer).
    pub fn waiting(&self, what: Option<&'static str>) {
        self.lock().waiting = what;
    }

    /// Record an error the projector recovered from (e.g. a skipped event).
    pub fn note_error(&self, report: ErrorReport) {
        self.lock().last_error = Some(report);
    }

    pub fn report(&self, head: Position, stall_after: Duration) -> StatusReport {
        let s = self.lock();
        let now = Instant::now();
        let lag = head.0.saturating_sub(s.position.0);
        let events_per_second = match (s.samples.front(), s.samples.back()) {
            (Some((t0, n0)), Some(_)) if now.duration_since(*t0) > Duration::from_millis(50) => {
                // Count time up to now so the rate decays to 0 when idle.
                let elapsed = now.duration_since(*t0).as_secs_f64();
                (s.processed - n0) as f64 / elapsed
            }
            _ => 0.0,
        };
        let replaying = s.state == State::Replaying;
        let target = s.replay_target.0.max(1);
        let replay_progress = if replaying {
            (s.position.0 as f64 / target as f64 * 100.0).min(100.0)
        } else if s.state == State::Live {
            100.0
        } else {
            s.position.0 as f64 / target as f64 * 100.0
        };
        let replay_eta_seconds = (replaying && events_per_second > 0.0)
            .then(|| (s.replay_target.0.saturating_sub(s.position.0)) as f64 / events_per_second);
        StatusReport {
            state: s.state,
            stalled: lag > 0
                && matches!(s.state, State::Replaying | State::Live)
                && now.duration_since(s.last_progress) > stall_after,
            position: s.position,
            head,
            lag,
            events_per_second: (events_per_second * 10.0).round() / 10.0,
            replay_progress: (replay_progress * 10.0).round() / 10.0,
            replay_eta_seconds: replay_eta_seconds.map(|e| (e * 10.0).round() / 10.0),
            last_error: s.last_error.clone(),
            dead_letters: s.dead_letters,
            emitted: s.emitted,
            outbox: s.outbox,
            events_processed: s.processed,
            waiting_for: s.waiting.map(str::to_string),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_state_table_refuses_a_failed_projector_coming_back() {
        let status = Status::new(Position::ZERO);
        status.start_replay(Position(10));
        assert_eq!(status.state(), State::Replaying);
        status.fail(ErrorReport::new("boom", None));
        status.start_replay(Position(0));
        assert_eq!(status.state(), State::Failed);
        assert!(State::Live.may_become().contains(&State::Failed));
        assert!(!State::Live.may_become().contains(&State::Replaying));
    }

    #[test]
    fn lag_that_does_not_move_is_reported_as_stalled() {
        let status = Status::new(Position(10));
        status.start_replay(Position(20));
        std::thread::sleep(Duration::from_millis(5));
        let report = status.report(Position(20), Duration::from_millis(1));
        assert!(report.stalled);
        assert_eq!(report.lag, 10);
        status.applied(Position(20));
        status.counted(10);
        let report = status.report(Position(20), Duration::from_millis(1));
        assert!(!report.stalled, "no lag, not stalled");
        assert_eq!(report.state, State::Live);
    }

    #[test]
    fn replay_progress_and_eta_follow_the_position() {
        let status = Status::new(Position::ZERO);
        status.start_replay(Position(1000));
        status.applied(Position(250));
        status.counted(250);
        std::thread::sleep(Duration::from_millis(60));
        status.applied(Position(500));
        status.counted(250);
        let report = status.report(Position(1000), Duration::from_secs(30));
        assert_eq!(report.state, State::Replaying);
        assert_eq!(report.replay_progress, 50.0);
        assert!(report.events_per_second > 0.0);
        assert!(report.replay_eta_seconds.is_some_and(|eta| eta > 0.0));
    }
}
