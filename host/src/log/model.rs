//! The vocabulary of the event log: positions, stream versions, expected
//! versions, and the events going in and coming out.

use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A gapless global position in the log. The first event is at 1; position 0
/// means "before the first event" (an empty log's head, a fresh checkpoint).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Position(pub u64);

impl Position {
    pub const ZERO: Position = Position(0);

    pub fn next(self) -> Position {
        Position(self.0 + 1)
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The version of an event within its stream: 0 for the stream's first event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct StreamVersion(pub u64);

impl fmt::Display for StreamVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Optimistic concurrency for an append, as KurrentDB users know it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ExpectedVersion {
    /// Append whatever the stream's state.
    #[default]
    Any,
    /// The stream must not exist yet.
    NoStream,
    /// The stream must already exist.
    Exists,
    /// The stream's last event must have exactly this version.
    Exact(StreamVersion),
}

impl ExpectedVersion {
    /// Whether a stream whose last version is `current` satisfies this expectation.
    pub fn admits(self, current: Option<StreamVersion>) -> bool {
        match self {
            ExpectedVersion::Any => true,
            ExpectedVersion::NoStream => current.is_none(),
            ExpectedVersion::Exists => current.is_some(),
            ExpectedVersion::Exact(v) => current == Some(v),
        }
    }
}

impl fmt::Display for ExpectedVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExpectedVersion::Any => f.write_str("any"),
            ExpectedVersion::NoStream => f.write_str("no_stream"),
            ExpectedVersion::Exists => f.write_str("exists"),
            ExpectedVersion::Exact(v) => v.fmt(f),
        }
    }
}

/// An event a client wants appended. `data` and `metadata` are JSON texts;
/// the log refuses those that not every reader decodes alike (`log::json`).
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub id: Uuid,
    /// True when the client chose the id (so the append may be a retry);
    /// false when the server generated it.
    pub client_id: bool,
    pub event_type: String,
    pub data: String,
    pub metadata: String,
}

/// An event as the log recorded it.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedEvent {
    pub position: Position,
    pub stream: String,
    pub stream_version: StreamVersion,
    pub id: Uuid,
    pub event_type: String,
    /// The payload as the JSON text the client sent.
    pub data: String,
    /// The metadata as JSON text (`{}` when none was given).
    pub metadata: String,
    /// Milliseconds since the Unix epoch when the log recorded the event.
    pub recorded_at_ms: u64,
}

/// Events of one stream, in order, within an append that may span streams.
#[derive(Debug, Clone)]
pub struct StreamEvents {
    pub stream: String,
    pub events: Vec<NewEvent>,
}

/// What an acknowledged append of one or more streams reports back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MultiOutcome {
    pub first_position: Position,
    pub last_position: Position,
    /// Each stream's version after the append (its last event's version),
    /// in the order the streams first appear in the append.
    pub streams: Vec<(String, StreamVersion)>,
    /// True when every event id was already in the log: nothing was
    /// appended and this is the original append's result.
    #[serde(skip)]
    pub duplicate: bool,
}

impl MultiOutcome {
    /// The outcome of an append to one stream (the first of this one's).
    pub fn into_single(self) -> AppendOutcome {
        AppendOutcome {
            first_position: self.first_position,
            last_position: self.last_position,
            stream_version: self.streams[0].1,
            duplicate: self.duplicate,
        }
    }
}

/// A recorded event borrowed from the store, for readers that pass it on
/// (the HTTP API) and need no copy of its payload.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EventRef<'a> {
    pub position: Position,
    pub stream: &'a str,
    pub stream_version: StreamVersion,
    pub id: Uuid,
    pub event_type: &'a str,
    /// The payload as the JSON text the client sent.
    pub data: &'a str,
    /// The metadata as JSON text (`{}` when none was given).
    pub metadata: &'a str,
    /// Milliseconds since the Unix epoch when the log recorded the event.
    pub recorded_at_ms: u64,
}

impl EventRef<'_> {
    /// The event as an owned copy.
    pub fn to_recorded(&self) -> RecordedEvent {
        RecordedEvent {
            position: self.position,
            stream: self.stream.to_string(),
            stream_version: self.stream_version,
            id: self.id,
            event_type: self.event_type.to_string(),
            data: self.data.to_string(),
            metadata: self.metadata.to_string(),
            recorded_at_ms: self.recorded_at_ms,
        }
    }
}

/// What an acknowledged append reports back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct AppendOutcome {
    pub first_position: Position,
    pub last_position: Position,
    /// The stream's version after the append (its last event's version).
    pub stream_version: StreamVersion,
    /// True when every event id was already in the log: nothing was appended
    /// and this is the original append's result.
    #[serde(skip)]
    pub duplicate: bool,
}
