//! The HTTP API (axum): the routes of the design's table.
//!
//! # Layout
//! - `streams`: append and read the log.
//! - `views`: documents, scans, queries, change feed, read-your-writes.
//! - `find`: index queries (`_find`) and bulk reads (`_bulk_get`).
//! - `plugins`: install, remove, rebuild, status, logs, dead letters.
//! - `outbox`: a plugin's side-effect requests: counts, pages, retry, drop.
//! - `metrics`: Prometheus text.
//! - `ui`: the dashboard page and its scripts.
//! - `routes`: the route table the router, authorization and the OpenAPI
//!   document are built from.
//! - `openapi`: that document, and the JSON Schemas of the bodies.
//! - `auth`: bearer tokens with scopes.
//! - `body`, `error`: request bodies and JSON errors.

pub mod auth;
mod body;
mod changes;
pub mod error;
mod find;
pub mod metrics;
mod openapi;
mod outbox;
mod plugins;
pub mod routes;
mod streams;
#[cfg(test)]
mod tests;
mod ui;
mod views;

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{Extension, State};
use axum::middleware;
use serde_json::{Value, json};

pub use metrics::Metrics;
pub use streams::{DEFAULT_READ_LIMIT, MAX_READ_LIMIT, MAX_READ_PAGE_BYTES};
pub use views::{
    DEFAULT_SCAN_LIMIT, GENERATION_HEADER, MAX_SCAN_LIMIT, POSITION_HEADER, STATE_HEADER,
};

use crate::log::EventLog;
use crate::plugins::PluginManager;

/// Limits of the API.
#[derive(Debug, Clone, Copy)]
pub struct ApiLimits {
    /// Largest request body for appends, in bytes.
    pub max_body_bytes: usize,
    /// Largest plugin upload (`PUT /plugins/{name}`), in bytes.
    pub max_plugin_bytes: usize,
}

impl Default for ApiLimits {
    fn default() -> Self {
        ApiLimits {
            max_body_bytes: 4 << 20,
            max_plugin_bytes: 256 << 20,
        }
    }
}

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub log: EventLog,
    pub plugins: PluginManager,
    pub metrics: Arc<Metrics>,
    /// Side-effect requests of every plugin and their delivery.
    pub outbox: crate::outbox::Outbox,
    /// This node's name, on every response (`Prism-Node`).
    pub node: Arc<str>,
    /// This node's part in a cluster, when the log is replicated.
    pub cluster: Option<Arc<crate::cluster::sync::Cluster>>,
}

/// Always `200` while the server answers: `degraded` (appends refused for
/// lack of disk space, reads still served) is not a reason to take it out
/// of a load balancer.
async fn healthz(State(state): State<AppState>) -> Json<Value> {
    let plugins = state.plugins.list();
    let failed: Vec<&str> = plugins
        .iter()
        .filter(|p| p.state == "failed")
        .map(|p| p.name.as_str())
        .collect();
    let storage = state.log.storage_health();
    let replica = state.log.replica_state();
    let log_unavailable = replica.as_ref().is_some_and(|r| r.state != "following");
    Json(json!({
        "status": if storage.is_full() || log_unavailable { "degraded" } else { "ok" },
        "node": &*state.node,
        "head": state.log.head(),
        "plugins": plugins.len(),
        "failed_plugins": failed,
        "storage": storage,
        "log": replica.map_or_else(
            || json!({"backend": "embedded", "max_events_per_append": state.log.max_events_per_append()}),
            |r| json!({
                "backend": "jetstream",
                "state": r.state,
                "error": r.error,
                "known_head": r.known_head,
                "max_events_per_append": state.log.max_events_per_append(),
            }),
        ),
    }))
}

/// The nodes of the cluster (from their heartbeats) and, per node and
/// plugin, generation, state, position and lag.
async fn cluster(State(state): State<AppState>) -> Result<Json<Value>, error::ApiError> {
    let Some(cluster) = &state.cluster else {
        return Ok(Json(json!({
            "backend": "embedded",
            "nodes": [{"node": &*state.node, "head": state.log.head()}],
        })));
    };
    let nodes = cluster.nodes().await.map_err(|m| {
        error::ApiError::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "cluster_unavailable",
            m,
        )
        .retry_after(2)
    })?;
    Ok(Json(json!({
        "backend": "jetstream",
        "this_node": cluster.node(),
        "log": state.log.replica_state(),
        "nodes": nodes,
    })))
}

async fn fallback() -> error::ApiError {
    error::ApiError::new(
        axum::http::StatusCode::NOT_FOUND,
        "no_route",
        "no such route",
    )
}

/// A route that exists, asked with a method it does not have. axum adds the
/// `Allow` header listing the methods it does have.
async fn method_not_allowed(method: axum::http::Method) -> error::ApiError {
    error::ApiError::new(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("this route does not answer {method}"),
    )
}

/// The document of this server's API: with or without security, as the
/// server has tokens or not. Built once, when the router is.
#[derive(Clone)]
struct Document(Arc<Value>);

async fn openapi_json(Extension(Document(document)): Extension<Document>) -> Json<Value> {
    Json(Value::clone(&document))
}

/// The API, built from the route table: each route with its handler and
/// the body limit of its kind of body, behind the token check.
pub fn router(state: AppState, limits: ApiLimits, tokens: auth::Tokens) -> Router {
    let document = Document(Arc::new(openapi::document(!tokens.is_empty())));
    let mut router = Router::new();
    for route in routes::ROUTES {
        router = router.route(route.path, route.method_router(limits));
    }
    router
        .route_layer(middleware::from_fn_with_state(
            Arc::new(tokens),
            auth::authorize,
        ))
        .fallback(fallback)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(Extension(document))
        .layer(middleware::from_fn_with_state(
            state.node.clone(),
            stamp_node,
        ))
        .with_state(state)
}

/// Every response says which node answered it.
async fn stamp_node(
    State(node): State<Arc<str>>,
    request: axum::extract::Request,
    next: middleware::Next,
) -> axum::response::Response {
    let mut response = next.run(request).await;
    if let Ok(value) = axum::http::HeaderValue::from_str(&node) {
        response.headers_mut().insert(NODE_HEADER, value);
    }
    response
}

/// The name of the node that answered.
pub const NODE_HEADER: &str = "prism-node";
