//! Appending to and reading the log: `POST/GET /streams/{stream}/events`,
//! `POST /events` (one atomic append across streams), `GET /events`.

use std::time::{Duration, UNIX_EPOCH};

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Value, json};
use uuid::Uuid;

use super::AppState;
use super::body::{JsonBody, Params, Path, page_limit};
use super::error::ApiError;
use crate::log::{
    AppendOutcome, EventRef, ExpectedVersion, MultiOutcome, NewEvent, Position, StreamEvents,
    StreamVersion,
};

/// Default and largest page of a log read, in events.
pub const DEFAULT_READ_LIMIT: usize = 100;
pub const MAX_READ_LIMIT: usize = 10_000;
/// Largest page of a log read, in bytes of its events' JSON; the first event
/// of a page comes whole however big it is, and a page may end before
/// `limit` events because of this bound.
pub const MAX_READ_PAGE_BYTES: usize = 4 << 20;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppendBody {
    events: Vec<EventBody>,
    #[serde(default)]
    expected_version: Option<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EventBody {
    #[serde(rename = "type")]
    event_type: Option<String>,
    /// `None` only when absent: `"data": null` is kept as `null`.
    #[serde(default, deserialize_with = "present")]
    data: Option<Box<RawValue>>,
    metadata: Option<Box<RawValue>>,
    id: Option<String>,
}

/// A field that is present, even as `null` (which plain `Option` reads as absent).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Box<RawValue>>, D::Error> {
    Box::<RawValue>::deserialize(d).map(Some)
}

/// `POST /events`: events of any streams, in the order they go in the log.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MultiAppendBody {
    events: Vec<StreamEventBody>,
    /// Per stream: `"any"`, `"no_stream"`, `"exists"` or a version, checked
    /// before anything is written.
    #[serde(default)]
    expected_versions: std::collections::BTreeMap<String, Value>,
}

/// An event of `POST /events`: an event body with its stream.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StreamEventBody {
    stream: Option<String>,
    #[serde(rename = "type")]
    event_type: Option<String>,
    #[serde(default, deserialize_with = "present")]
    data: Option<Box<RawValue>>,
    metadata: Option<Box<RawValue>>,
    id: Option<String>,
}

fn parse_expected(value: Option<Value>) -> Result<ExpectedVersion, ApiError> {
    let invalid = || {
        ApiError::bad_request(
            "invalid_expected_version",
            "expected_version is \"any\", \"no_stream\", \"exists\" or a stream version (a number ≥ 0)",
        )
    };
    match value {
        None | Some(Value::Null) => Ok(ExpectedVersion::Any),
        Some(Value::String(s)) => match s.as_str() {
            "any" => Ok(ExpectedVersion::Any),
            "no_stream" => Ok(ExpectedVersion::NoStream),
            "exists" => Ok(ExpectedVersion::Exists),
            _ => Err(invalid()),
        },
        Some(Value::Number(n)) => whole_number(&n)
            .map(|v| ExpectedVersion::Exact(StreamVersion(v)))
            .ok_or_else(invalid),
        Some(_) => Err(invalid()),
    }
}

/// `n` as a whole number from 0, however it is written: JSON (and JSON
/// Schema) make no difference between `5` and `5.0`. One written with a
/// fraction or an exponent is taken only while a double holds it exactly
/// (up to 2^53), so that no version is ever rounded into another.
fn whole_number(n: &serde_json::Number) -> Option<u64> {
    const EXACT: f64 = (1u64 << f64::MANTISSA_DIGITS) as f64;
    n.as_u64().or_else(|| {
        n.as_f64()
            .filter(|f| f.fract() == 0.0 && (0.0..=EXACT).contains(f))
            .map(|f| f as u64)
    })
}

fn parse_event(index: usize, e: EventBody) -> Result<NewEvent, ApiError> {
    parse_event_fields(index, e).map_err(|e| e.with("event_index", json!(index)))
}

fn parse_event_fields(index: usize, e: EventBody) -> Result<NewEvent, ApiError> {
    let event_type = e.event_type.ok_or_else(|| {
        ApiError::bad_request("invalid_event", format!("event {index} has no \"type\""))
    })?;
    let metadata = match e.metadata {
        None => "{}".to_string(),
        Some(raw) if raw.get().trim() == "null" => "{}".to_string(),
        Some(raw) if raw.get().trim_start().starts_with('{') => raw.get().to_string(),
        Some(_) => {
            return Err(ApiError::bad_request(
                "invalid_event",
                format!("event {index}: metadata must be a JSON object"),
            ));
        }
    };
    let client_id = e.id.is_some();
    let id = match e.id {
        None => Uuid::new_v4(),
        Some(s) => Uuid::parse_str(&s).map_err(|_| {
            ApiError::bad_request(
                "invalid_event",
                format!("event {index}: id {s:?} is not a UUID"),
            )
        })?,
    };
    Ok(NewEvent {
        id,
        client_id,
        event_type,
        data: e
            .data
            .map_or_else(|| "{}".to_string(), |d| d.get().to_string()),
        metadata,
    })
}

/// Refuse an append that names one event id twice.
fn distinct_ids<'a>(events: impl IntoIterator<Item = &'a NewEvent>) -> Result<(), ApiError> {
    let mut ids = std::collections::HashSet::new();
    if events.into_iter().all(|e| ids.insert(e.id)) {
        Ok(())
    } else {
        Err(ApiError::bad_request(
            "invalid_event",
            "two events of one append have the same id",
        ))
    }
}

#[derive(Serialize)]
pub struct MultiAppendResponse {
    first_position: Position,
    last_position: Position,
    /// Each stream's version after the append.
    streams: std::collections::BTreeMap<String, StreamVersion>,
    /// True when every event id was already in the log: this is the
    /// original append's result and nothing was appended again.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    duplicate: bool,
}

/// `POST /events`: append events of several streams in one atomic, durable
/// step, in the order given (a history of interleaved streams keeps its
/// order), with optional expected versions per stream.
pub async fn append_many(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<MultiAppendBody>,
) -> Result<(StatusCode, Json<MultiAppendResponse>), ApiError> {
    let mut runs: Vec<StreamEvents> = Vec::new();
    for (index, e) in body.events.into_iter().enumerate() {
        let stream = e.stream.ok_or_else(|| {
            ApiError::bad_request("invalid_event", format!("event {index} has no \"stream\""))
                .with("event_index", json!(index))
        })?;
        let event = parse_event(
            index,
            EventBody {
                event_type: e.event_type,
                data: e.data,
                metadata: e.metadata,
                id: e.id,
            },
        )?;
        match runs.last_mut() {
            Some(run) if run.stream == stream => run.events.push(event),
            _ => runs.push(StreamEvents {
                stream,
                events: vec![event],
            }),
        }
    }
    distinct_ids(runs.iter().flat_map(|r| &r.events))?;
    let expected = body
        .expected_versions
        .into_iter()
        .map(|(stream, v)| Ok((stream, parse_expected(Some(v))?)))
        .collect::<Result<Vec<_>, ApiError>>()?;
    let MultiOutcome {
        first_position,
        last_position,
        streams,
        duplicate,
    } = state.log.append_runs(runs, expected).await?;
    if !duplicate {
        state
            .metrics
            .appended(last_position.0 - first_position.0 + 1);
    }
    Ok((
        if duplicate {
            StatusCode::OK
        } else {
            StatusCode::CREATED
        },
        Json(MultiAppendResponse {
            first_position,
            last_position,
            streams: streams.into_iter().collect(),
            duplicate,
        }),
    ))
}

#[derive(Serialize)]
pub struct AppendResponse {
    first_position: Position,
    last_position: Position,
    stream_version: StreamVersion,
}

pub async fn append(
    State(state): State<AppState>,
    Path(stream): Path<String>,
    JsonBody(body): JsonBody<AppendBody>,
) -> Result<(StatusCode, Json<AppendResponse>), ApiError> {
    let expected = parse_expected(body.expected_version)?;
    let events = body
        .events
        .into_iter()
        .enumerate()
        .map(|(i, e)| parse_event(i, e))
        .collect::<Result<Vec<_>, _>>()?;
    distinct_ids(&events)?;
    let AppendOutcome {
        first_position,
        last_position,
        stream_version,
        ..
    } = state.log.append(stream, expected, events).await?;
    state
        .metrics
        .appended(last_position.0 - first_position.0 + 1);
    Ok((
        StatusCode::CREATED,
        Json(AppendResponse {
            first_position,
            last_position,
            stream_version,
        }),
    ))
}

/// An event as the API shows it. `data` and `metadata` are the stored JSON
/// text, passed through byte for byte: no document tree is built to read
/// an event, and none can turn what was written into something else.
#[derive(Serialize)]
struct EventJson<'a> {
    position: Position,
    stream: &'a str,
    stream_version: StreamVersion,
    id: Uuid,
    #[serde(rename = "type")]
    event_type: &'a str,
    data: &'a RawValue,
    metadata: &'a RawValue,
    recorded_at: String,
}

/// The text the log stored for an event's `data` or `metadata`, checked to
/// be one JSON value (without decoding it into anything): the log accepted
/// nothing else, so a failure here means the store is damaged, and the read
/// fails rather than serve a broken document.
fn stored_json<'a>(e: &EventRef<'a>, field: &str, text: &'a str) -> Result<&'a RawValue, ApiError> {
    serde_json::from_str(text).map_err(|error| {
        ApiError::internal(format!(
            "the {field} of the event at position {} is not JSON: {error}",
            e.position
        ))
    })
}

/// One page of a log read, written as it is read: each event goes straight
/// from the store into the response body, so a page costs about its own
/// size in memory. A page holds at most `limit` events and, after the first
/// event (which always comes whole), at most [`MAX_READ_PAGE_BYTES`] of them.
struct Page {
    body: Vec<u8>,
    /// Where the events begin in `body`.
    start: usize,
    limit: usize,
    events: usize,
    /// Why the page ended early, if something went wrong.
    failure: Option<ApiError>,
}

impl Page {
    /// A page whose body opens with `prefix` (the response's first fields
    /// and `"events":[`).
    fn new(prefix: &str, limit: usize) -> Page {
        Page {
            body: prefix.as_bytes().to_vec(),
            start: prefix.len(),
            limit,
            events: 0,
            failure: None,
        }
    }

    /// Add `e` if the page has room for it; false when the page is full.
    fn push(&mut self, e: EventRef<'_>) -> bool {
        if self.events == self.limit {
            return false;
        }
        let used = self.body.len() - self.start;
        // The event's JSON is at least as long as its strings: a page that
        // certainly has no room for it is not extended first.
        let least = e.data.len() + e.metadata.len() + e.stream.len() + e.event_type.len();
        if self.events > 0 && used + 1 + least > MAX_READ_PAGE_BYTES {
            return false;
        }
        let (data, metadata) = match (
            stored_json(&e, "data", e.data),
            stored_json(&e, "metadata", e.metadata),
        ) {
            (Ok(d), Ok(m)) => (d, m),
            (Err(error), _) | (_, Err(error)) => {
                self.failure = Some(error);
                return false;
            }
        };
        let before = self.body.len();
        // Room for the whole event at once: growing a big body by doubling
        // would hold the old and the new buffer at the same time.
        self.body.reserve(least + 256);
        if self.events > 0 {
            self.body.push(b',');
        }
        let event = EventJson {
            position: e.position,
            stream: e.stream,
            stream_version: e.stream_version,
            id: e.id,
            event_type: e.event_type,
            data,
            metadata,
            recorded_at: humantime::format_rfc3339_millis(
                UNIX_EPOCH + Duration::from_millis(e.recorded_at_ms),
            )
            .to_string(),
        };
        if let Err(error) = serde_json::to_writer(&mut self.body, &event) {
            self.failure = Some(ApiError::internal(error));
            return false;
        }
        if self.events > 0 && self.body.len() - self.start > MAX_READ_PAGE_BYTES {
            self.body.truncate(before);
            return false;
        }
        self.events += 1;
        true
    }

    /// The response: the events, then `suffix` (the closing fields).
    fn finish(mut self, suffix: &str) -> Result<Response, ApiError> {
        if let Some(error) = self.failure {
            return Err(error);
        }
        self.body.extend_from_slice(suffix.as_bytes());
        Ok((
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            self.body,
        )
            .into_response())
    }
}

#[derive(Deserialize)]
pub struct StreamReadQuery {
    from_version: Option<u64>,
    limit: Option<usize>,
}

/// `{"stream","events":[…],"last_version_read","next_version"}`: continue
/// from `next_version`; `last_version_read` is null for an empty page.
pub async fn read_stream(
    State(state): State<AppState>,
    Path(stream): Path<String>,
    Params(q): Params<StreamReadQuery>,
) -> Result<Response, ApiError> {
    let limit = page_limit(q.limit, DEFAULT_READ_LIMIT, MAX_READ_LIMIT)?;
    let from = StreamVersion(q.from_version.unwrap_or(0));
    let log = state.log.clone();
    let name = stream.clone();
    let read = tokio::task::spawn_blocking(move || {
        let mut page = Page::new(&format!(r#"{{"stream":{},"events":["#, json!(name)), limit);
        let mut last = None;
        let exists = log.visit_stream(&name, from, |e| {
            let version = e.stream_version;
            let added = page.push(e);
            if added {
                last = Some(version);
            }
            added
        })?;
        let next = last.map_or(from, |v| StreamVersion(v.0 + 1));
        let suffix = format!(
            r#"],"last_version_read":{},"next_version":{next}}}"#,
            json!(last)
        );
        Ok::<_, ApiError>(exists.then(|| page.finish(&suffix)))
    })
    .await
    .map_err(ApiError::internal)??;
    read.unwrap_or_else(|| {
        Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "stream_not_found",
            format!("stream {stream:?} has no events"),
        ))
    })
}

#[derive(Deserialize)]
pub struct LogReadQuery {
    from_position: Option<u64>,
    limit: Option<usize>,
}

/// `{"events":[…],"head","next_position"}`: continue from `next_position`.
pub async fn read_log(
    State(state): State<AppState>,
    Params(q): Params<LogReadQuery>,
) -> Result<Response, ApiError> {
    let limit = page_limit(q.limit, DEFAULT_READ_LIMIT, MAX_READ_LIMIT)?;
    let from = Position(q.from_position.unwrap_or(1).max(1));
    let log = state.log.clone();
    tokio::task::spawn_blocking(move || {
        let mut page = Page::new(r#"{"events":["#, limit);
        let mut next = from;
        log.visit(from, |e| {
            let position = e.position;
            let added = page.push(e);
            if added {
                next = position.next();
            }
            added
        })?;
        page.finish(&format!(
            r#"],"head":{},"next_position":{next}}}"#,
            log.head()
        ))
    })
    .await
    .map_err(ApiError::internal)?
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event<'a>(position: u64, data: &'a str) -> EventRef<'a> {
        EventRef {
            position: Position(position),
            stream: "s",
            stream_version: StreamVersion(position - 1),
            id: Uuid::from_u128(position as u128),
            event_type: "T",
            data,
            metadata: "{}",
            recorded_at_ms: 0,
        }
    }

    fn parse(page: Page) -> Value {
        let response = page.finish("]}").unwrap();
        let body =
            futures::executor::block_on(axum::body::to_bytes(response.into_body(), usize::MAX))
                .unwrap();
        serde_json::from_slice(&body).unwrap()
    }

    #[test]
    fn a_page_ends_at_the_byte_bound_and_always_holds_its_first_event() {
        let big = format!("\"{}\"", "x".repeat(MAX_READ_PAGE_BYTES));
        let third = format!("\"{}\"", "x".repeat(MAX_READ_PAGE_BYTES / 3));
        let mut page = Page::new(r#"{"events":["#, 100);
        assert!(page.push(event(1, &big)), "a first event comes whole");
        assert!(!page.push(event(2, "1")), "nothing fits after it");
        assert_eq!(parse(page)["events"].as_array().unwrap().len(), 1);

        let mut page = Page::new(r#"{"events":["#, 100);
        assert!(page.push(event(1, &third)));
        assert!(page.push(event(2, &third)));
        // Its strings fit, its JSON with the other fields does not.
        let rest = MAX_READ_PAGE_BYTES - (page.body.len() - page.start) - 10;
        let almost = format!("\"{}\"", "x".repeat(rest));
        assert!(!page.push(event(3, &almost)));
        let body = parse(page);
        assert_eq!(body["events"].as_array().unwrap().len(), 2);
        assert_eq!(body["events"][1]["position"], 2);
    }

    #[test]
    fn a_page_holds_at_most_limit_events_and_their_stored_text() {
        let mut page = Page::new(r#"{"events":["#, 2);
        assert!(page.push(event(1, r#"{ "a" : 1e2 }"#)));
        assert!(page.push(event(2, "[1.0, -0]")));
        assert!(!page.push(event(3, "null")));
        let response = page.finish("]}").unwrap();
        let body =
            futures::executor::block_on(axum::body::to_bytes(response.into_body(), usize::MAX))
                .unwrap();
        let text = std::str::from_utf8(&body).unwrap();
        assert!(text.contains(r#""data":{ "a" : 1e2 }"#), "{text}");
        assert!(text.contains(r#""data":[1.0, -0]"#), "{text}");
    }

    #[test]
    fn stored_text_that_is_not_json_fails_the_read_instead_of_reading_as_null() {
        let mut page = Page::new(r#"{"events":["#, 10);
        assert!(page.push(event(1, "{}")));
        assert!(!page.push(event(2, "{broken")));
        let error = page.finish("]}").unwrap_err();
        assert_eq!(error.status, StatusCode::INTERNAL_SERVER_ERROR);
    }
}
