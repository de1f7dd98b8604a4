//! Appending to and reading the log: `POST/GET /streams/{stream}/events`,
//! `GET /events`.

use std::time::{Duration, UNIX_EPOCH};

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Value, json};
use uuid::Uuid;

use super::AppState;
use super::body::{JsonBody, Params, Path, page_limit};
use super::error::ApiError;
use crate::log::{
    AppendOutcome, ExpectedVersion, NewEvent, Position, RecordedEvent, StreamVersion,
};

/// Default and largest page of a log read.
pub const DEFAULT_READ_LIMIT: usize = 100;
pub const MAX_READ_LIMIT: usize = 10_000;

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
        Some(Value::Number(n)) => n
            .as_u64()
            .map(|v| ExpectedVersion::Exact(StreamVersion(v)))
            .ok_or_else(invalid),
        Some(_) => Err(invalid()),
    }
}

fn parse_event(index: usize, e: EventBody) -> Result<NewEvent, ApiError> {
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
    let mut ids = std::collections::HashSet::new();
    if !events.iter().all(|e| ids.insert(e.id)) {
        return Err(ApiError::bad_request(
            "invalid_event",
            "two events of one append have the same id",
        ));
    }
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

/// An event as the API shows it.
pub fn event_json(e: &RecordedEvent) -> Value {
    let raw = |s: &str| {
        RawValue::from_string(s.to_string())
            .map(|r| serde_json::to_value(&r).unwrap_or(Value::Null))
            .unwrap_or(Value::Null)
    };
    json!({
        "position": e.position,
        "stream": e.stream,
        "stream_version": e.stream_version,
        "id": e.id,
        "type": e.event_type,
        "data": raw(&e.data),
        "metadata": raw(&e.metadata),
        "recorded_at": humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(e.recorded_at_ms)).to_string(),
    })
}

#[derive(Deserialize)]
pub struct StreamReadQuery {
    from_version: Option<u64>,
    limit: Option<usize>,
}

pub async fn read_stream(
    State(state): State<AppState>,
    Path(stream): Path<String>,
    Params(q): Params<StreamReadQuery>,
) -> Result<Json<Value>, ApiError> {
    let limit = page_limit(q.limit, DEFAULT_READ_LIMIT, MAX_READ_LIMIT)?;
    let from = StreamVersion(q.from_version.unwrap_or(0));
    let log = state.log.clone();
    let name = stream.clone();
    let events = tokio::task::spawn_blocking(move || log.read_stream(&name, from, limit))
        .await
        .map_err(ApiError::internal)??;
    let Some(events) = events else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "stream_not_found",
            format!("stream {stream:?} has no events"),
        ));
    };
    let version = events.last().map(|e| e.stream_version.0);
    Ok(Json(json!({
        "stream": stream,
        "events": events.iter().map(event_json).collect::<Vec<_>>(),
        "last_version_read": version,
    })))
}

#[derive(Deserialize)]
pub struct LogReadQuery {
    from_position: Option<u64>,
    limit: Option<usize>,
}

pub async fn read_log(
    State(state): State<AppState>,
    Params(q): Params<LogReadQuery>,
) -> Result<Json<Value>, ApiError> {
    let limit = page_limit(q.limit, DEFAULT_READ_LIMIT, MAX_READ_LIMIT)?;
    let from = Position(q.from_position.unwrap_or(1));
    let log = state.log.clone();
    let events = tokio::task::spawn_blocking(move || log.read(from, limit))
        .await
        .map_err(ApiError::internal)??;
    Ok(Json(json!({
        "events": events.iter().map(event_json).collect::<Vec<_>>(),
        "head": state.log.head(),
    })))
}
