//! A plugin's outbox: `GET /plugins/{name}/outbox` (counts per target and a
//! page of requests), `POST /plugins/{name}/outbox/{id}/retry` and
//! `DELETE /plugins/{name}/outbox/{id}`. Headers and their secrets are
//! never shown: a request's record holds none.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::AppState;
use super::body::{Params, Path, page_limit};
use super::error::ApiError;
use super::views::plugin_name;
use crate::outbox::{Entry, EntryState, Outbox, OutboxError};

/// Default and largest page of outbox requests.
pub const DEFAULT_OUTBOX_LIMIT: usize = 100;
pub const MAX_OUTBOX_LIMIT: usize = 1000;

impl From<OutboxError> for ApiError {
    fn from(e: OutboxError) -> Self {
        match e {
            OutboxError::NotFound(m) => {
                ApiError::new(StatusCode::NOT_FOUND, "unknown_outbox_request", m)
            }
            OutboxError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, "outbox_conflict", m),
            OutboxError::Storage(e) => e.into(),
            OutboxError::ShuttingDown => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "shutting_down",
                e.to_string(),
            ),
        }
    }
}

/// A request as the API shows it: the payload as JSON, times as numbers.
fn shown(outbox: &Outbox, entry: &Entry) -> Value {
    json!({
        "id": entry.id.hyphenated().to_string(),
        "sequence": entry.sequence,
        "target": entry.target,
        "state": entry.state,
        "attempts": entry.attempts,
        "last_error": entry.last_error,
        "next_attempt_at_ms": entry.next_attempt_at_ms,
        "waiting_for": outbox.waiting_for(entry),
        "enqueued_at_ms": entry.enqueued_at_ms,
        "finished_at_ms": entry.finished_at_ms,
        "ordering_key": entry.ordering_key,
        "idempotency_key": entry.idempotency_key,
        "cause": {"position": entry.cause_position, "id": entry.cause_id},
        "payload": serde_json::from_str::<Value>(&entry.payload).unwrap_or(Value::Null),
    })
}

fn request_id(id: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(id).map_err(|_| {
        ApiError::bad_request(
            "invalid_outbox_id",
            format!("{id:?} is not an outbox request id (a UUID)"),
        )
    })
}

#[derive(Deserialize)]
pub struct OutboxQuery {
    state: Option<String>,
    limit: Option<usize>,
    cursor: Option<String>,
}

pub async fn list(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Params(q): Params<OutboxQuery>,
) -> Result<Json<Value>, ApiError> {
    let name = plugin_name(&name)?;
    let targets = state.outbox.report(name.as_str());
    if targets.is_empty() && state.plugins.report(&name).is_none() {
        return Err(ApiError::unknown_plugin(name.as_str()));
    }
    let limit = page_limit(q.limit, DEFAULT_OUTBOX_LIMIT, MAX_OUTBOX_LIMIT)?;
    let filter = match q.state.as_deref() {
        None => None,
        Some(s) => Some(EntryState::parse(s).ok_or_else(|| {
            ApiError::bad_request(
                "invalid_state",
                format!("state {s:?} is none of pending, delivered, dead, dropped"),
            )
        })?),
    };
    let after = match q.cursor.as_deref() {
        None => 0,
        Some(c) => c.parse::<u64>().map_err(|_| {
            ApiError::bad_request(
                "invalid_cursor",
                "the cursor is not one this server gave out",
            )
        })?,
    };
    let outbox = state.outbox.clone();
    let plugin = name.as_str().to_string();
    let page = tokio::task::spawn_blocking(move || outbox.page(&plugin, filter, after, limit))
        .await
        .map_err(ApiError::internal)??;
    let mut body = json!({
        "plugin": name.as_str(),
        "targets": targets,
        "items": page.entries.iter().map(|e| shown(&state.outbox, e)).collect::<Vec<_>>(),
    });
    if let Some(cursor) = page.cursor {
        body["cursor"] = json!(cursor.to_string());
    }
    Ok(Json(body))
}

pub async fn retry(
    State(state): State<AppState>,
    Path((name, id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let name = plugin_name(&name)?;
    let entry = state.outbox.retry(name.as_str(), request_id(&id)?).await?;
    Ok(Json(shown(&state.outbox, &entry)))
}

pub async fn drop_request(
    State(state): State<AppState>,
    Path((name, id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let name = plugin_name(&name)?;
    let entry = state
        .outbox
        .drop_request(name.as_str(), request_id(&id)?)
        .await?;
    Ok(Json(shown(&state.outbox, &entry)))
}
