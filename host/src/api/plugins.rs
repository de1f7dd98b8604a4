//! Plugin administration and status: `/plugins`, `/plugins/{name}` and its
//! logs and dead letters.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::body::{Body, Params, Path};
use super::error::ApiError;
use crate::plugins::names::name_problem;

fn checked(name: &str) -> Result<(), ApiError> {
    match name_problem(name) {
        Some(problem) => Err(ApiError::bad_request("invalid_plugin_name", problem)),
        None => Ok(()),
    }
}

pub async fn list(State(state): State<AppState>) -> Json<Value> {
    Json(json!({ "plugins": state.plugins.list() }))
}

pub async fn show(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let report = state
        .plugins
        .report(&name)
        .ok_or_else(|| ApiError::unknown_plugin(&name))?;
    Ok(Json(
        serde_json::to_value(report).map_err(ApiError::internal)?,
    ))
}

pub async fn put(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Body(bytes): Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    checked(&name)?;
    if bytes.is_empty() {
        return Err(ApiError::bad_request(
            "invalid_plugin",
            "the body must be a .wasm component",
        ));
    }
    let outcome = state.plugins.put_file(&name, bytes.to_vec()).await?;
    let status = match outcome {
        crate::plugins::InstallOutcome::Started => StatusCode::CREATED,
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
    checked(&name)?;
    state.plugins.delete_file(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn rebuild(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    checked(&name)?;
    let outcome = state.plugins.rebuild(&name).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "outcome": outcome, "plugin": state.plugins.report(&name) })),
    ))
}

pub async fn logs(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let generation = state
        .plugins
        .current(&name)
        .ok_or_else(|| ApiError::unknown_plugin(&name))?;
    let (lines, dropped) = generation.plugin_log.snapshot();
    Ok(Json(json!({ "lines": lines, "dropped": dropped })))
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
    let generation = state
        .plugins
        .current(&name)
        .ok_or_else(|| ApiError::unknown_plugin(&name))?;
    let limit = q.limit.unwrap_or(100).clamp(1, 10_000);
    let records = generation.keyspace.dead_letters(limit)?;
    let letters: Vec<Value> = records
        .iter()
        .filter_map(|r| serde_json::from_str(r).ok())
        .collect();
    Ok(Json(json!({ "dead_letters": letters })))
}
