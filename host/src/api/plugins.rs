//! Plugin administration and status: `/plugins`, `/plugins/{name}`, its
//! deploy actions (rebuild, promote, rollback, diff, discarding the
//! candidate), its logs and its dead letters.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::body::{Body, Params, Path, page_limit};
use super::error::ApiError;
use super::views::plugin_name;
use crate::plugins::{InstallOutcome, PluginName, Unavailable};

/// Default and largest page of dead letters.
pub const DEFAULT_DEAD_LETTER_LIMIT: usize = 100;
pub const MAX_DEAD_LETTER_LIMIT: usize = 10_000;

fn status_of(state: &AppState, name: &PluginName) -> Result<Value, ApiError> {
    let report = state
        .plugins
        .report(name)
        .ok_or_else(|| ApiError::unknown_plugin(name.as_str()))?;
    serde_json::to_value(report).map_err(ApiError::internal)
}

pub async fn list(State(state): State<AppState>) -> Json<Value> {
    Json(json!({ "plugins": state.plugins.list() }))
}

pub async fn show(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(status_of(&state, &plugin_name(&name)?)?))
}

pub async fn put(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Body(bytes): Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let name = plugin_name(&name)?;
    if bytes.is_empty() {
        return Err(ApiError::bad_request(
            "invalid_plugin",
            "the body must be a .wasm component or a view file",
        ));
    }
    let outcome = state.plugins.put(&name, bytes.to_vec()).await?;
    let status = match outcome {
        InstallOutcome::Started => StatusCode::CREATED,
        _ => StatusCode::OK,
    };
    Ok((
        status,
        Json(json!({ "outcome": outcome, "plugin": state.plugins.report(&name) })),
    ))
}

pub async fn delete(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.plugins.remove(&plugin_name(&name)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn rebuild(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let name = plugin_name(&name)?;
    let outcome = state.plugins.rebuild(&name).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "outcome": outcome, "plugin": state.plugins.report(&name) })),
    ))
}

pub async fn promote(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let name = plugin_name(&name)?;
    state.plugins.promote(&name).await?;
    Ok(Json(status_of(&state, &name)?))
}

pub async fn rollback(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let name = plugin_name(&name)?;
    state.plugins.rollback(&name).await?;
    Ok((StatusCode::ACCEPTED, Json(status_of(&state, &name)?)))
}

pub async fn resume(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let name = plugin_name(&name)?;
    state.plugins.release(&name, false).await?;
    Ok((StatusCode::ACCEPTED, Json(status_of(&state, &name)?)))
}

pub async fn skip(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let name = plugin_name(&name)?;
    state.plugins.release(&name, true).await?;
    Ok((StatusCode::ACCEPTED, Json(status_of(&state, &name)?)))
}

pub async fn discard_candidate(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    state
        .plugins
        .discard_candidate(&plugin_name(&name)?)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
pub struct DiffQuery {
    sample: Option<usize>,
}

pub async fn diff(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Params(q): Params<DiffQuery>,
) -> Result<Json<Value>, ApiError> {
    let sample = q.sample.unwrap_or(10);
    let report = state.plugins.diff(&plugin_name(&name)?, sample).await?;
    Ok(Json(
        serde_json::to_value(report).map_err(ApiError::internal)?,
    ))
}

/// The generation that serves, for the routes that show its own data.
fn serving(
    state: &AppState,
    name: &str,
) -> Result<std::sync::Arc<crate::plugins::Generation>, ApiError> {
    match state.plugins.serving(&plugin_name(name)?) {
        Ok(g) => Ok(g),
        Err(Unavailable::Unknown) => Err(ApiError::unknown_plugin(name)),
        Err(Unavailable::NotServing { state, .. }) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "plugin_unavailable",
            format!("plugin {name:?} has no serving generation ({state})"),
        )),
    }
}

pub async fn logs(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let generation = serving(&state, &name)?;
    let (lines, dropped) = generation.plugin_log().snapshot();
    Ok(Json(json!({
        "generation": generation.hash().to_string(),
        "lines": lines,
        "dropped": dropped,
    })))
}

#[derive(Deserialize)]
pub struct DeadLetterQuery {
    limit: Option<usize>,
}

pub async fn dead_letters(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Params(q): Params<DeadLetterQuery>,
) -> Result<Json<Value>, ApiError> {
    let generation = serving(&state, &name)?;
    let limit = page_limit(q.limit, DEFAULT_DEAD_LETTER_LIMIT, MAX_DEAD_LETTER_LIMIT)?;
    let keyspace = generation.keyspace().clone();
    let records = tokio::task::spawn_blocking(move || keyspace.dead_letters(limit))
        .await
        .map_err(ApiError::internal)??;
    let letters: Vec<Value> = records
        .iter()
        .filter_map(|r| serde_json::from_str(r).ok())
        .collect();
    Ok(Json(json!({ "dead_letters": letters })))
}
