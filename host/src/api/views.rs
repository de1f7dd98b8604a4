//! Reading views: documents, ordered scans, plugin queries and the change
//! feed, each stamped with the log position it reflects.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::Stream;
use futures::StreamExt;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;

use super::AppState;
use super::body::{Params, Path, page_limit};
use super::error::ApiError;
use crate::log::Position;
use crate::plugins::{Generation, QueryFailure};
use crate::projector::CommittedChanges;

/// Default and largest page of a scan.
pub const DEFAULT_SCAN_LIMIT: usize = 100;
pub const MAX_SCAN_LIMIT: usize = 1000;
/// Longest `timeout_ms` a read may wait for `min_position`.
pub const MAX_WAIT: Duration = Duration::from_secs(30);
/// Default wait when `min_position` is given without `timeout_ms`.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(5);

pub const POSITION_HEADER: &str = "prism-position";

#[derive(Deserialize, Default)]
pub struct Consistency {
    min_position: Option<u64>,
    timeout_ms: Option<u64>,
}

/// The serving generation of `plugin`, once it has applied `min_position`.
async fn serving(
    state: &AppState,
    plugin: &str,
    c: &Consistency,
) -> Result<(Arc<Generation>, Position), ApiError> {
    let generation = state
        .plugins
        .current(plugin)
        .ok_or_else(|| ApiError::unknown_plugin(plugin))?;
    let mut applied = generation.applied.clone();
    if let Some(min) = c.min_position {
        let wait = c
            .timeout_ms
            .map_or(DEFAULT_WAIT, Duration::from_millis)
            .min(MAX_WAIT);
        let reached = tokio::time::timeout(wait, applied.wait_for(|p| p.0 >= min))
            .await
            .is_ok_and(|r| r.is_ok());
        if !reached {
            let at = *applied.borrow();
            return Err(ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                "position_not_reached",
                format!(
                    "plugin {plugin:?} has applied position {at}, not {min}, after {} ms",
                    wait.as_millis()
                ),
            )
            .with("position", json!(at.0)));
        }
    }
    let position = *applied.borrow();
    Ok((generation, position))
}

fn with_position(position: Position, body: impl IntoResponse) -> Response {
    let mut headers = HeaderMap::new();
    headers.insert(POSITION_HEADER, HeaderValue::from(position.0));
    (headers, body).into_response()
}

fn document(text: &str) -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        text.to_string(),
    )
        .into_response()
}

pub async fn get_key(
    State(state): State<AppState>,
    Path((plugin, key)): Path<(String, String)>,
    Params(c): Params<Consistency>,
) -> Result<Response, ApiError> {
    if key.len() > crate::views::MAX_KEY_BYTES {
        return Err(ApiError::bad_request(
            "invalid_key",
            format!("keys are at most {} bytes", crate::views::MAX_KEY_BYTES),
        ));
    }
    let (generation, position) = serving(&state, &plugin, &c).await?;
    let started = std::time::Instant::now();
    let value = generation.keyspace.get(&key)?;
    state.metrics.query_latency(started.elapsed());
    match value {
        Some(v) => Ok(with_position(position, document(&v))),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("plugin {plugin:?} has no document at key {key:?}"),
        )
        .with("position", json!(position.0))),
    }
}

#[derive(Deserialize)]
pub struct ScanQuery {
    prefix: Option<String>,
    start: Option<String>,
    end: Option<String>,
    limit: Option<usize>,
    cursor: Option<String>,
}

pub async fn scan(
    State(state): State<AppState>,
    Path(plugin): Path<String>,
    Params(q): Params<ScanQuery>,
    Params(c): Params<Consistency>,
) -> Result<Response, ApiError> {
    let (generation, position) = serving(&state, &plugin, &c).await?;
    let limit = page_limit(q.limit, DEFAULT_SCAN_LIMIT, MAX_SCAN_LIMIT)?;
    let prefix = q.prefix.unwrap_or_default();
    let mut start = q.start.unwrap_or_default().max(prefix.clone());
    if let Some(cursor) = q.cursor {
        let last = hex::decode(&cursor)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| {
                ApiError::bad_request(
                    "invalid_cursor",
                    "the cursor is not one this server gave out",
                )
            })?;
        // The smallest key after `last`.
        start = start.max(format!("{last}\0"));
    }
    let end = q.end;
    let keyspace = generation.keyspace.clone();
    let (items, more) = tokio::task::spawn_blocking(move || {
        let mut items: Vec<(String, String)> = Vec::new();
        let mut more = false;
        keyspace.scan_with(&start, end.as_deref(), |k, v| {
            if !k.starts_with(&prefix) {
                return false;
            }
            if items.len() == limit {
                more = true;
                return false;
            }
            items.push((k.to_string(), v.to_string()));
            true
        })?;
        Ok::<_, crate::storage::StorageError>((items, more))
    })
    .await
    .map_err(ApiError::internal)??;
    let cursor =
        (more && !items.is_empty()).then(|| hex::encode(&items.last().expect("non-empty").0));
    let items: Vec<Value> = items
        .into_iter()
        .map(|(key, value)| {
            json!({ "key": key, "value": serde_json::from_str::<Value>(&value).unwrap_or(Value::Null) })
        })
        .collect();
    let mut body = json!({ "items": items });
    if let Some(cursor) = cursor {
        body["cursor"] = json!(cursor);
    }
    Ok(with_position(position, Json(body)))
}

pub async fn query(
    State(state): State<AppState>,
    Path((plugin, name)): Path<(String, String)>,
    Params(c): Params<Consistency>,
    Params(mut params): Params<BTreeMap<String, String>>,
) -> Result<Response, ApiError> {
    // The consistency parameters are the server's, not the plugin's.
    params.remove("min_position");
    params.remove("timeout_ms");
    let (generation, position) = serving(&state, &plugin, &c).await?;
    if !generation.description.queries.iter().any(|q| q == &name) {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_query",
            format!(
                "plugin {plugin:?} has no query {name:?} (it has: {})",
                generation.description.queries.join(", ")
            ),
        ));
    }
    let params = serde_json::to_string(&params).map_err(ApiError::internal)?;
    let started = std::time::Instant::now();
    let answer = tokio::task::spawn_blocking(move || generation.query(&name, &params))
        .await
        .map_err(ApiError::internal)?;
    state.metrics.query_latency(started.elapsed());
    match answer {
        Ok(text) => match serde_json::from_str::<Value>(&text) {
            Ok(_) => Ok(with_position(position, document(&text))),
            Err(e) => Err(ApiError::new(
                StatusCode::BAD_GATEWAY,
                "query_failed",
                format!("the query's answer is not JSON: {e}"),
            )),
        },
        Err(QueryFailure::Unknown(m)) => {
            Err(ApiError::new(StatusCode::NOT_FOUND, "unknown_query", m))
        }
        Err(QueryFailure::InvalidParams(m)) => Err(ApiError::bad_request("invalid_params", m)),
        Err(QueryFailure::Failed(m)) => {
            Err(ApiError::new(StatusCode::BAD_GATEWAY, "query_failed", m))
        }
    }
}

pub async fn changes(
    State(state): State<AppState>,
    Path(plugin): Path<String>,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    let generation = state
        .plugins
        .current(&plugin)
        .ok_or_else(|| ApiError::unknown_plugin(&plugin))?;
    let feed = BroadcastStream::new(generation.changes.subscribe());
    // A client that falls behind the bounded buffer is told and disconnected,
    // so that it never slows down the projector.
    let stream = futures::stream::unfold((feed, false), |(mut feed, done)| async move {
        if done {
            return None;
        }
        match feed.next().await? {
            Ok(batch) => Some((futures::stream::iter(change_events(&batch)), (feed, false))),
            Err(BroadcastStreamRecvError::Lagged(n)) => {
                let notice = json!({
                    "missed_batches": n,
                    "message": "this client fell behind; reconnect and re-read the view",
                });
                let event = SseEvent::default().event("lagged").data(notice.to_string());
                Some((futures::stream::iter(vec![Ok(event)]), (feed, true)))
            }
        }
    })
    .flatten();
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

fn change_events(batch: &CommittedChanges) -> Vec<Result<SseEvent, Infallible>> {
    batch
        .changes
        .iter()
        .map(|c| {
            let data = match &c.value {
                Some(v) => json!({
                    "key": c.key,
                    "value": serde_json::from_str::<Value>(v).unwrap_or(Value::Null),
                }),
                None => json!({ "key": c.key, "deleted": true }),
            };
            Ok(SseEvent::default()
                .id(batch.position.0.to_string())
                .event("change")
                .data(data.to_string()))
        })
        .collect()
}
