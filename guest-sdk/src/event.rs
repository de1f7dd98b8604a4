//! The two records a projection shares with the host: the [`Event`] it is fed
//! and the [`Description`] it gives of itself. They are plain Rust twins of the
//! WIT records, so a projection (and its tests) never touch generated bindings;
//! the typed accessors turn the JSON payloads into the projection's own types.

use serde::Deserialize;

use crate::Error;

/// One recorded event, as the log stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Gapless global position in the log, starting at 1. A projection sees
    /// gaps: the host only passes on the event types it declared.
    pub position: u64,
    /// The stream the event was appended to, e.g. `account-42`.
    pub stream_id: String,
    /// Version of the event within its stream: 0 for the stream's first event.
    pub stream_version: u64,
    /// The event type, e.g. `Deposited`.
    pub event_type: String,
    /// The payload, a JSON document; see [`Event::data`] for a typed view.
    pub data: String,
    /// The metadata, a JSON document (`{}` when the writer gave none).
    pub metadata: String,
    /// When the log recorded the event, in milliseconds since the Unix epoch.
    pub recorded_at: u64,
    /// The event's UUID in hyphenated form.
    pub id: String,
}

impl Event {
    /// The payload decoded as `T`. The error names the event, so a projection
    /// can pass it on with `?` and the operator still knows what was wrong.
    pub fn data<'a, T: Deserialize<'a>>(&'a self) -> Result<T, Error> {
        serde_json::from_str(&self.data)
            .map_err(|error| Error::from(error).context(self.describe_for_errors("data")))
    }

    /// The metadata decoded as `T`.
    pub fn metadata<'a, T: Deserialize<'a>>(&'a self) -> Result<T, Error> {
        serde_json::from_str(&self.metadata)
            .map_err(|error| Error::from(error).context(self.describe_for_errors("metadata")))
    }

    fn describe_for_errors(&self, part: &str) -> String {
        format!(
            "{} at position {} on stream {}: invalid {part}",
            self.event_type, self.position, self.stream_id
        )
    }
}

/// What a projection tells the host about itself.
///
/// ```
/// use prism_guest::Description;
///
/// let description = Description::new("orders", "1.0.0")
///     .event_types(["OrderPlaced", "OrderShipped"]);
/// assert!(description.wants("OrderPlaced"));
/// assert!(!description.wants("CustomerRegistered"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Description {
    /// A human-readable name (the plugin's identity is its file name).
    pub name: String,
    /// The projection's own version, free form (e.g. semver).
    pub version: String,
    /// The event types the projection consumes; the host filters the log by
    /// them before any event crosses into WebAssembly. Empty means all.
    pub event_types: Vec<String>,
    /// Secondary indexes the host maintains over the projection's documents.
    pub indexes: Vec<Index>,
    /// The streams the projection may emit events to
    /// ([`View::emit`](crate::View::emit)): names, or prefixes ending in `*`.
    pub emits: Vec<String>,
    /// The outbox targets the projection may send requests to
    /// ([`View::enqueue`](crate::View::enqueue)), by name; the operator maps
    /// each to an HTTP endpoint in `prism.toml` (`[targets.NAME]`).
    pub targets: Vec<String>,
}

/// How an index field's values are ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    /// JSON numbers, compared as doubles (negative and fractional ones too).
    Number,
    /// JSON strings, compared by their UTF-8 bytes.
    String,
    /// `false` before `true`.
    Boolean,
    /// RFC 3339 strings or epoch milliseconds, compared by time.
    Timestamp,
    /// Any JSON: missing < null < booleans < numbers < strings < arrays and objects.
    Any,
}

/// A secondary index: the host keeps it in step with the documents, in the
/// same write batch, so the projection only ever writes documents. Query it
/// over HTTP with `GET /views/{plugin}/_find?index=NAME&...`.
///
/// ```
/// use prism_guest::{FieldKind, Index};
///
/// let by_stock = Index::new("by-stock")
///     .field("stock", FieldKind::Number)
///     .prefix("product-");
/// assert_eq!(by_stock.fields.len(), 1);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Index {
    /// Letters, digits, `-` and `_`.
    pub name: String,
    /// Dotted paths into the document (`customer.name`) and their kinds, in order.
    pub fields: Vec<(String, FieldKind)>,
    /// No two documents may have the same values.
    pub unique: bool,
    /// Only documents whose key starts with this are indexed.
    pub prefix: Option<String>,
}

impl Index {
    pub fn new(name: impl Into<String>) -> Self {
        Index {
            name: name.into(),
            fields: Vec::new(),
            unique: false,
            prefix: None,
        }
    }

    /// Add a field (a dotted path into the document).
    pub fn field(mut self, path: impl Into<String>, kind: FieldKind) -> Self {
        self.fields.push((path.into(), kind));
        self
    }

    /// No two documents may have the same values of this index.
    pub fn unique(mut self) -> Self {
        self.unique = true;
        self
    }

    /// Index only documents whose key starts with `prefix`.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = Some(prefix.into());
        self
    }
}

impl Description {
    /// A description that consumes every event type.
    pub fn new(name: impl Into<String>, version: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            version: version.into(),
            event_types: Vec::new(),
            indexes: Vec::new(),
            emits: Vec::new(),
            targets: Vec::new(),
        }
    }

    /// May put requests in the outbox for these targets (exact names). The
    /// host refuses a request to any other target.
    pub fn targets<I>(mut self, targets: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        self.targets = targets.into_iter().map(Into::into).collect();
        self
    }

    /// May emit events to these streams: names, or prefixes ending in `*`
    /// (`customer-*`). The host refuses an emission to any other stream.
    pub fn emits<I>(mut self, streams: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        self.emits = streams.into_iter().map(Into::into).collect();
        self
    }

    /// Whether the projection may emit to `stream`, by the rule the host
    /// applies to [`Description::emits`].
    pub fn may_emit_to(&self, stream: &str) -> bool {
        matches_any(&self.emits, stream)
    }

    /// Keep this index over the documents.
    pub fn index(mut self, index: Index) -> Self {
        self.indexes.push(index);
        self
    }

    /// Consume only these event types.
    pub fn event_types<I>(mut self, event_types: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        self.event_types = event_types.into_iter().map(Into::into).collect();
        self
    }

    /// Whether events of `event_type` reach the projection, by the rule the
    /// host applies: an empty list means every type.
    pub fn wants(&self, event_type: &str) -> bool {
        self.event_types.is_empty() || self.event_types.iter().any(|wanted| wanted == event_type)
    }
}

/// Whether `stream` is one of `patterns`: names, or prefixes ending in `*`.
pub(crate) fn matches_any(patterns: &[String], stream: &str) -> bool {
    patterns
        .iter()
        .any(|pattern| match pattern.strip_suffix('*') {
            Some(prefix) => stream.starts_with(prefix),
            None => stream == pattern,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deposited(data: &str) -> Event {
        Event {
            position: 7,
            stream_id: "account-1".into(),
            stream_version: 1,
            event_type: "Deposited".into(),
            data: data.into(),
            metadata: r#"{"user":"ann"}"#.into(),
            recorded_at: 0,
            id: "00000000-0000-4000-8000-000000000007".into(),
        }
    }

    #[derive(Debug, Deserialize)]
    struct Deposited {
        amount: i64,
    }

    #[test]
    fn data_decodes_the_payload_into_the_projections_type() {
        let event = deposited(r#"{"amount": 5}"#);
        assert_eq!(event.data::<Deposited>().unwrap().amount, 5);
    }

    #[test]
    fn data_errors_name_the_event_they_come_from() {
        let error = deposited(r#"{"amount": "five"}"#)
            .data::<Deposited>()
            .unwrap_err();
        assert!(
            error
                .message()
                .starts_with("Deposited at position 7 on stream account-1: invalid data:"),
            "{error}"
        );
    }

    #[test]
    fn metadata_can_be_borrowed_without_copying() {
        #[derive(Deserialize)]
        struct Metadata<'a> {
            user: &'a str,
        }
        let event = deposited("{}");
        assert_eq!(event.metadata::<Metadata>().unwrap().user, "ann");
    }

    #[test]
    fn an_empty_event_type_list_wants_everything() {
        let description = Description::new("all", "1");
        assert!(description.wants("Anything"));
    }
}
