//! Reading views: documents, ordered scans, plugin queries and the change
//! feed, each stamped with the log position it reflects.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::body::{Params, Path, page_limit};
use super::error::ApiError;
use crate::log::Position;
use crate::plugins::{Generation, PluginName, Unavailable};
use crate::projector::{QueryFailure, State as GenState};

/// Default and largest page of a scan.
pub const DEFAULT_SCAN_LIMIT: usize = 100;
pub const MAX_SCAN_LIMIT: usize = 1000;
/// Longest `timeout_ms` a read may wait for `min_position`.
pub const MAX_WAIT: Duration = Duration::from_secs(30);
/// Default wait when `min_position` is given without `timeout_ms`.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(5);

pub const POSITION_HEADER: &str = "prism-position";
/// The content hash of the generation that answered.
pub const GENERATION_HEADER: &str = "prism-generation";
/// That generation's state: `live`, `replaying`, `loading`, `failed`.
pub const STATE_HEADER: &str = "prism-state";

#[derive(Deserialize, Default)]
pub struct Consistency {
    min_position: Option<u64>,
    timeout_ms: Option<u64>,
}

/// The generation that answered a read and the position it reflected.
pub struct Served {
    pub(super) generation: Arc<Generation>,
    pub(super) position: Position,
}

impl Served {
    /// `body` with the headers that say what answered: the position the
    /// view reflects, the generation and its state.
    pub(super) fn respond(&self, body: impl IntoResponse) -> Response {
        let mut response = body.into_response();
        self.stamp(response.headers_mut());
        response
    }

    fn stamp(&self, headers: &mut HeaderMap) {
        stamp(
            headers,
            self.position,
            self.generation.hash().as_str(),
            self.generation.state().as_str(),
        );
    }

    /// An error answer that still says what answered.
    pub(super) fn error(&self, e: ApiError) -> Response {
        self.respond(e)
    }
}

/// Say what answered: the position the view reflects, the generation (its
/// content hash) and its state.
pub(super) fn stamp(
    headers: &mut HeaderMap,
    position: Position,
    generation: &str,
    state: &'static str,
) {
    headers.insert(POSITION_HEADER, HeaderValue::from(position.0));
    if let Ok(v) = HeaderValue::from_str(generation) {
        headers.insert(GENERATION_HEADER, v);
    }
    headers.insert(STATE_HEADER, HeaderValue::from_static(state));
}

pub(super) fn plugin_name(name: &str) -> Result<PluginName, ApiError> {
    PluginName::parse(name).map_err(|e| ApiError::bad_request("invalid_plugin_name", e.to_string()))
}

pub(super) fn unavailable(plugin: &str, why: Unavailable) -> ApiError {
    match why {
        Unavailable::Unknown => ApiError::unknown_plugin(plugin),
        Unavailable::NotServing { state, error } => {
            let message = match &error {
                Some(e) => format!("plugin {plugin:?} has no working generation: {}", e.message),
                None => format!("plugin {plugin:?} is loading and has no view yet"),
            };
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "plugin_unavailable",
                message,
            )
            .with("state", json!(state))
            .with("last_error", json!(error))
        }
    }
}

/// The serving generation of `plugin`, once it has applied `min_position`.
/// A generation replaced while a reader waits hands the wait on to the one
/// that replaced it.
pub(super) async fn serving(
    state: &AppState,
    plugin: &str,
    c: &Consistency,
) -> Result<Served, Response> {
    let name = plugin_name(plugin).map_err(IntoResponse::into_response)?;
    let deadline = tokio::time::Instant::now()
        + c.timeout_ms
            .map_or(DEFAULT_WAIT, Duration::from_millis)
            .min(MAX_WAIT);
    loop {
        let generation = match state.plugins.serving(&name) {
            Ok(g) => g,
            // A reader that waits for a position also waits for a plugin
            // that is still loading to start serving.
            Err(Unavailable::NotServing {
                state: "loading", ..
            }) if c.min_position.is_some() => {
                if let Some(mut snapshot) = state.plugins.watch(&name) {
                    let started = tokio::time::timeout_at(
                        deadline,
                        snapshot.wait_for(|s| s.serving.is_some() || !s.exists()),
                    )
                    .await
                    .is_ok_and(|r| r.is_ok());
                    if started {
                        continue;
                    }
                }
                return Err(ApiError::new(
                    StatusCode::GATEWAY_TIMEOUT,
                    "position_not_reached",
                    format!("plugin {plugin:?} was still loading when the wait ended"),
                )
                .into_response());
            }
            Err(why) => return Err(unavailable(plugin, why).into_response()),
        };
        let mut progress = generation.progress();
        let Some(min) = c.min_position else {
            let position = progress.borrow().position;
            return Ok(Served {
                generation,
                position,
            });
        };
        let head = state.log.head();
        let at = progress.borrow().position;
        let served = |position| Served {
            generation: generation.clone(),
            position,
        };
        if at.0 >= min {
            return Ok(served(at));
        }
        // A node of a cluster may not have copied a position another node
        // acknowledged yet: there, the wait covers it.
        if min > head.0 && !state.log.is_replicated() {
            return Err(served(at).error(
                ApiError::bad_request(
                    "position_beyond_head",
                    format!(
                        "position {min} is beyond the log's head ({head}): no append returned it"
                    ),
                )
                .with("head", json!(head.0)),
            ));
        }
        if matches!(generation.state(), GenState::Failed | GenState::Quarantined) {
            let report = generation.report(head, Duration::MAX);
            return Err(served(at).error(
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "plugin_failed",
                    format!(
                        "plugin {plugin:?} stopped at position {at} and will not reach {min}: {}",
                        report
                            .last_error
                            .as_ref()
                            .map_or("failed", |e| e.message.as_str())
                    ),
                )
                .with("position", json!(at.0))
                .with("last_error", json!(report.last_error)),
            ));
        }
        let reached = tokio::time::timeout_at(
            deadline,
            progress.wait_for(|p| p.position.0 >= min || p.ended),
        )
        .await
        .is_ok_and(|r| r.is_ok());
        match reached {
            // Reached it, or the generation ended: look again.
            true => continue,
            false => {
                let at = progress.borrow().position;
                return Err(served(at).error(
                    ApiError::new(
                        StatusCode::GATEWAY_TIMEOUT,
                        "position_not_reached",
                        format!("plugin {plugin:?} has applied position {at}, not {min}, in time"),
                    )
                    .with("position", json!(at.0)),
                ));
            }
        }
    }
}

/// `GET /views/{plugin}/{key}`. Paths starting with `_` are the API's own
/// (`_changes`, `_query/…`, and more to come), so a key starting with `_`
/// is read at `_doc/{key}` instead, as CouchDB does with `_design`.
pub async fn get_key(
    State(state): State<AppState>,
    Path((plugin, key)): Path<(String, String)>,
    Params(c): Params<Consistency>,
) -> Result<Response, Response> {
    if key.starts_with('_') {
        return Err(ApiError::bad_request(
            "reserved_key",
            format!(
                "paths starting with \"_\" are the API's; read the document at key {key:?} \
                 at /views/{plugin}/_doc/{key}"
            ),
        )
        .into_response());
    }
    document_at(state, plugin, key, c).await
}

/// `GET /views/{plugin}/_doc/{key}`: the document at any key, including
/// those starting with `_`.
pub async fn get_doc(
    State(state): State<AppState>,
    Path((plugin, key)): Path<(String, String)>,
    Params(c): Params<Consistency>,
) -> Result<Response, Response> {
    document_at(state, plugin, key, c).await
}

async fn document_at(
    state: AppState,
    plugin: String,
    key: String,
    c: Consistency,
) -> Result<Response, Response> {
    if key.len() > crate::views::MAX_KEY_BYTES {
        return Err(ApiError::bad_request(
            "invalid_key",
            format!("keys are at most {} bytes", crate::views::MAX_KEY_BYTES),
        )
        .into_response());
    }
    let served = serving(&state, &plugin, &c).await?;
    let started = std::time::Instant::now();
    let keyspace = served.generation.keyspace().clone();
    let lookup = key.clone();
    let value = tokio::task::spawn_blocking(move || keyspace.get(&lookup))
        .await
        .map_err(|e| served.error(ApiError::internal(e)))?
        .map_err(|e| served.error(e.into()))?;
    state.metrics.query_latency(started.elapsed());
    match value {
        Some(v) => Ok(served.respond(document(v))),
        None => Err(served.error(
            ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("plugin {plugin:?} has no document at key {key:?}"),
            )
            .with("position", json!(served.position.0)),
        )),
    }
}

pub(super) fn document(text: String) -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        text,
    )
        .into_response()
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
) -> Result<Response, Response> {
    let served = serving(&state, &plugin, &c).await?;
    let fail = |e: ApiError| served.error(e);
    let limit = page_limit(q.limit, DEFAULT_SCAN_LIMIT, MAX_SCAN_LIMIT).map_err(fail)?;
    let prefix = q.prefix.unwrap_or_default();
    let mut start = q.start.unwrap_or_default().max(prefix.clone());
    if let Some(cursor) = q.cursor {
        let last = hex::decode(&cursor)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| {
                fail(ApiError::bad_request(
                    "invalid_cursor",
                    "the cursor is not one this server gave out",
                ))
            })?;
        // The smallest key after `last`.
        start = start.max(format!("{last}\0"));
    }
    let end = q.end;
    let keyspace = served.generation.keyspace().clone();
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
    .map_err(|e| fail(ApiError::internal(e)))?
    .map_err(|e| fail(e.into()))?;
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
    Ok(served.respond(Json(body)))
}

pub async fn query(
    State(state): State<AppState>,
    Path((plugin, name)): Path<(String, String)>,
    Params(c): Params<Consistency>,
    Params(mut params): Params<BTreeMap<String, String>>,
) -> Result<Response, Response> {
    // The consistency parameters are the server's, not the plugin's.
    params.remove("min_position");
    params.remove("timeout_ms");
    let served = serving(&state, &plugin, &c).await?;
    let fail = |e: ApiError| served.error(e);
    if let Some(described) = served.generation.described()
        && !described.queries.iter().any(|q| q == &name)
    {
        return Err(fail(ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_query",
            format!(
                "plugin {plugin:?} has no query {name:?} (it has: {})",
                described.queries.join(", ")
            ),
        )));
    }
    let params = serde_json::to_string(&params).map_err(|e| fail(ApiError::internal(e)))?;
    let started = std::time::Instant::now();
    let answer = served.generation.query(name, params).await;
    state.metrics.query_latency(started.elapsed());
    match answer {
        Ok(text) => match serde_json::from_str::<serde::de::IgnoredAny>(&text) {
            Ok(_) => Ok(served.respond(document(text))),
            Err(e) => Err(fail(ApiError::new(
                StatusCode::BAD_GATEWAY,
                "query_failed",
                format!("the query's answer is not JSON: {e}"),
            ))),
        },
        Err(QueryFailure::Unknown(m)) => Err(fail(ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_query",
            m,
        ))),
        Err(QueryFailure::InvalidParams(m)) => {
            Err(fail(ApiError::bad_request("invalid_params", m)))
        }
        Err(QueryFailure::Failed(m)) => Err(fail(ApiError::new(
            StatusCode::BAD_GATEWAY,
            "query_failed",
            m,
        ))),
        Err(QueryFailure::Busy(m)) => Err(fail(
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "query_busy", m).retry_after(1),
        )),
        Err(QueryFailure::Loading(m)) => Err(fail(
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "plugin_loading", m).retry_after(1),
        )),
    }
}
