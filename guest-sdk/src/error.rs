//! The errors a projection deals in: [`Error`] when an event cannot be applied,
//! [`QueryError`] when a named query cannot be answered, [`ViewError`] when the
//! keyspace refuses a write, and [`HandleError`], the shape in which a failed
//! batch is reported to the host. They mirror the WIT contract's error types so
//! that crossing the component boundary loses nothing.

use std::fmt;

/// Why a projection could not apply an event (or read its view).
///
/// Returned from [`Projection::handle`](crate::Projection::handle): the SDK
/// reports it with the index of the failing event and nothing of the batch is
/// applied; the host then applies the events before it and reports the failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    message: String,
}

impl Error {
    /// An error that tells the operator `message`.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }

    /// What went wrong, as the operator will read it.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Prefixes the message with `context`, e.g. which key was being read.
    pub fn context(self, context: impl fmt::Display) -> Self {
        Self::new(format!("{context}: {}", self.message))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

impl From<serde_json::Error> for Error {
    fn from(error: serde_json::Error) -> Self {
        Self::new(error.to_string())
    }
}

impl From<ViewError> for Error {
    fn from(error: ViewError) -> Self {
        Self::new(error.to_string())
    }
}

impl From<String> for Error {
    fn from(message: String) -> Self {
        Self::new(message)
    }
}

impl From<&str> for Error {
    fn from(message: &str) -> Self {
        Self::new(message)
    }
}

/// Why a batch was refused, as the host receives it. Nothing of the batch is
/// applied; the host re-runs the events before `index` on their own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandleError {
    /// The index in the batch of the event that failed; `None` when the
    /// failure belongs to the batch as a whole (its prefetch or final write).
    pub index: Option<u32>,
    /// What went wrong, for the operator.
    pub message: String,
}

impl fmt::Display for HandleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.index {
            Some(index) => write!(f, "event {index} of the batch failed: {}", self.message),
            None => write!(f, "the batch failed: {}", self.message),
        }
    }
}

impl std::error::Error for HandleError {}

/// Why a named query could not be answered; the host maps each case to an
/// HTTP status (unknown query: 404, invalid parameters: 400, failed: 500).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueryError {
    /// No query of that name.
    UnknownQuery(String),
    /// The parameters are missing or malformed.
    InvalidParams(String),
    /// The query ran but failed.
    Failed(String),
}

impl fmt::Display for QueryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownQuery(name) => write!(f, "unknown query `{name}`"),
            Self::InvalidParams(message) => write!(f, "invalid parameters: {message}"),
            Self::Failed(message) => write!(f, "query failed: {message}"),
        }
    }
}

impl std::error::Error for QueryError {}

impl From<Error> for QueryError {
    fn from(error: Error) -> Self {
        Self::Failed(error.message)
    }
}

impl From<serde_json::Error> for QueryError {
    fn from(error: serde_json::Error) -> Self {
        Self::Failed(error.to_string())
    }
}

/// Why the host refused an emitted event ([`View::emit`](crate::View::emit)).
/// A refused emission appends nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EmitError {
    /// The stream is not among those [`Description::emits`](crate::Description::emits) declares.
    UndeclaredStream(String),
    /// The cause is not an event of the batch being handled (or this is a query).
    UnknownCause(u64),
    /// The stream name, event type, data or metadata is not what the log accepts.
    Invalid(String),
    /// The chain of emissions leading here is longer than the host allows:
    /// the projection probably reacts to its own emissions.
    TooDeep(String),
}

impl fmt::Display for EmitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UndeclaredStream(message) => write!(f, "undeclared stream: {message}"),
            Self::UnknownCause(position) => write!(
                f,
                "the cause at position {position} is not an event of the batch being handled"
            ),
            Self::Invalid(message) => write!(f, "invalid emitted event: {message}"),
            Self::TooDeep(message) => write!(f, "emission refused: {message}"),
        }
    }
}

impl std::error::Error for EmitError {}

impl From<EmitError> for Error {
    fn from(error: EmitError) -> Self {
        Self::new(error.to_string())
    }
}

/// Why the host refused an outbox request ([`View::enqueue`](crate::View::enqueue)).
/// A refused request enqueues nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutboxError {
    /// The target is not among those [`Description::targets`](crate::Description::targets) declares.
    UndeclaredTarget(String),
    /// The cause is not an event of the batch being handled (or this is a query).
    UnknownCause(u64),
    /// The payload is not JSON, or a key is empty or too long.
    Invalid(String),
}

impl fmt::Display for OutboxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UndeclaredTarget(message) => write!(f, "undeclared target: {message}"),
            Self::UnknownCause(position) => write!(
                f,
                "the cause at position {position} is not an event of the batch being handled"
            ),
            Self::Invalid(message) => write!(f, "invalid outbox request: {message}"),
        }
    }
}

impl std::error::Error for OutboxError {}

impl From<OutboxError> for Error {
    fn from(error: OutboxError) -> Self {
        Self::new(error.to_string())
    }
}

/// Why the keyspace refused a write. A refused write changes nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ViewError {
    /// The value is not a valid JSON document.
    InvalidJson(String),
    /// The key is empty or longer than [`MAX_KEY_LEN`](crate::MAX_KEY_LEN)
    /// bytes.
    InvalidKey(String),
    /// Writes are not allowed here (inside a query).
    ReadOnly,
}

impl fmt::Display for ViewError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidJson(message) => write!(f, "invalid JSON value: {message}"),
            Self::InvalidKey(message) => write!(f, "invalid key: {message}"),
            Self::ReadOnly => f.write_str("the view is read-only here"),
        }
    }
}

impl std::error::Error for ViewError {}
