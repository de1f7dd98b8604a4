//! The route table: every route with the scope it needs and what it does.
//! Authorization and `GET /openapi.json` are both derived from it, so the
//! document and the checks cannot drift from each other.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

/// What a bearer token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// No token needed (health, this document, the dashboard's files).
    Public,
    /// Read views, the log and plugin status.
    Read,
    /// Append events.
    Write,
    /// Install, remove and rebuild plugins.
    Admin,
}

/// One route of the API.
pub struct Route {
    pub method: &'static str,
    pub path: &'static str,
    pub scope: Scope,
    pub summary: &'static str,
}

const fn route(
    method: &'static str,
    path: &'static str,
    scope: Scope,
    summary: &'static str,
) -> Route {
    Route {
        method,
        path,
        scope,
        summary,
    }
}

pub const ROUTES: &[Route] = &[
    route(
        "POST",
        "/streams/{stream}/events",
        Scope::Write,
        "Append events to a stream (atomic, durable, optimistic concurrency, idempotent by event id)",
    ),
    route(
        "GET",
        "/streams/{stream}/events",
        Scope::Read,
        "Read one stream from a version",
    ),
    route(
        "POST",
        "/events",
        Scope::Write,
        "Append events of several streams in one atomic step, in the order given, with optional expected versions per stream (idempotent by event id)",
    ),
    route(
        "GET",
        "/events",
        Scope::Read,
        "Read the global log from a position",
    ),
    route("GET", "/plugins", Scope::Read, "Status of every plugin"),
    route(
        "GET",
        "/plugins/{name}",
        Scope::Read,
        "Status of one plugin",
    ),
    route(
        "PUT",
        "/plugins/{name}",
        Scope::Admin,
        "Install or replace a plugin (the body: a .wasm component, or a view file in YAML or JSON)",
    ),
    route(
        "DELETE",
        "/plugins/{name}",
        Scope::Admin,
        "Unload a plugin and drop its views",
    ),
    route(
        "POST",
        "/plugins/{name}/rebuild",
        Scope::Admin,
        "Replay a plugin into a fresh generation (blue/green)",
    ),
    route(
        "POST",
        "/plugins/{name}/promote",
        Scope::Admin,
        "Cut over to the caught-up candidate now (with cutover = \"manual\")",
    ),
    route(
        "POST",
        "/plugins/{name}/rollback",
        Scope::Admin,
        "Bring the previous generation back: it catches up, then serves; the file is rewritten with its bytes",
    ),
    route(
        "GET",
        "/plugins/{name}/diff",
        Scope::Read,
        "Compare the caught-up candidate with the serving generation at one log position",
    ),
    route(
        "POST",
        "/plugins/{name}/resume",
        Scope::Admin,
        "Run a quarantined generation again, one event at a time through the batch the process died in",
    ),
    route(
        "POST",
        "/plugins/{name}/skip",
        Scope::Admin,
        "Run a quarantined generation again past the batch the process died in (its events are dead-lettered)",
    ),
    route(
        "DELETE",
        "/plugins/{name}/candidate",
        Scope::Admin,
        "Discard the candidate; the file is rewritten with the serving generation's bytes",
    ),
    route(
        "GET",
        "/plugins/{name}/logs",
        Scope::Read,
        "The plugin's bounded log",
    ),
    route(
        "GET",
        "/plugins/{name}/dead-letters",
        Scope::Read,
        "Events the plugin skipped, with the error",
    ),
    route(
        "GET",
        "/plugins/{name}/outbox",
        Scope::Admin,
        "The plugin's outbox: counts per target (pending, delivered, dead, dropped) and a page of side-effect requests with state, attempts, last error and next attempt time",
    ),
    route(
        "POST",
        "/plugins/{name}/outbox/{id}/retry",
        Scope::Admin,
        "Send a dead or pending outbox request again now, with a fresh budget of attempts",
    ),
    route(
        "DELETE",
        "/plugins/{name}/outbox/{id}",
        Scope::Admin,
        "Drop a pending or dead outbox request: it is never sent (it stays listed as dropped, and is never enqueued again)",
    ),
    route(
        "GET",
        "/views/{plugin}",
        Scope::Read,
        "Ordered scan of a view with pagination",
    ),
    route(
        "GET",
        "/views/{plugin}/_changes",
        Scope::Read,
        "Server-sent events, one per applied key change",
    ),
    route(
        "GET",
        "/views/{plugin}/_query/{name}",
        Scope::Read,
        "Run a named query the plugin exports",
    ),
    route(
        "GET",
        "/views/{plugin}/_find",
        Scope::Read,
        "Query a view through a secondary index (conditions FIELD.OP=VALUE, order, limit, cursor, fields, count), or scan a small view",
    ),
    route(
        "POST",
        "/views/{plugin}/_bulk_get",
        Scope::Read,
        "Many documents at once: {\"keys\":[...]} (at most 1000) → {\"rows\":[{\"key\",\"value\"} or {\"key\",\"error\":\"not_found\"}]}, in request order",
    ),
    route(
        "GET",
        "/views/{plugin}/_doc/{key}",
        Scope::Read,
        "One view document, at any key (keys starting with _ are read only here)",
    ),
    route(
        "GET",
        "/views/{plugin}/{key}",
        Scope::Read,
        "One view document; a key starting with _ is a 400 reserved_key pointing to _doc/{key}",
    ),
    route("GET", "/healthz", Scope::Public, "Health"),
    route(
        "GET",
        "/cluster",
        Scope::Read,
        "The nodes of the cluster and each node's plugins (generation, state, position, lag)",
    ),
    route("GET", "/metrics", Scope::Read, "Prometheus metrics"),
    route("GET", "/openapi.json", Scope::Public, "This document"),
    route(
        "GET",
        "/ui",
        Scope::Public,
        "The dashboard (it asks for a token when the API needs one)",
    ),
    route(
        "GET",
        "/ui/{file}",
        Scope::Public,
        "The dashboard's scripts, styles and icon",
    ),
];

/// The scope a request needs, by method and matched route path. `HEAD` is a
/// `GET` without the body (axum answers it with the `GET` handler), so it
/// needs what `GET` needs.
pub fn scope_of(method: &str, path: &str) -> Option<Scope> {
    let method = if method == "HEAD" { "GET" } else { method };
    ROUTES
        .iter()
        .find(|r| r.method == method && r.path == path)
        .map(|r| r.scope)
}

fn query_parameters(method: &str, path: &str) -> Vec<(&'static str, &'static str)> {
    let consistency = [
        (
            "min_position",
            "wait until the plugin has applied this log position",
        ),
        (
            "timeout_ms",
            "how long to wait for min_position (default 5000, at most 30000)",
        ),
    ];
    let mut out = Vec::new();
    match (method, path) {
        ("GET", "/streams/{stream}/events") => out.extend([
            ("from_version", "first stream version (default 0)"),
            (
                "limit",
                "most events (default 100, at most 10000); a page also ends before 4 MiB of events: continue from next_version",
            ),
        ]),
        ("GET", "/events") => out.extend([
            ("from_position", "first position (default 1)"),
            (
                "limit",
                "most events (default 100, at most 10000); a page also ends before 4 MiB of events: continue from next_position",
            ),
        ]),
        ("GET", "/plugins/{name}/dead-letters") => {
            out.push(("limit", "most dead letters (default 100, at most 10000)"))
        }
        ("GET", "/plugins/{name}/outbox") => out.extend([
            ("state", "only requests in this state: pending, delivered, dead or dropped"),
            ("limit", "most requests (default 100, at most 1000)"),
            ("cursor", "the cursor of the previous page"),
        ]),
        ("GET", "/plugins/{name}/diff") => out.push((
            "sample",
            "most examples of each kind of difference (default 10, at most 100)",
        )),
        ("GET", "/views/{plugin}") => {
            out.extend([
                ("prefix", "only keys starting with this"),
                ("start", "first key (inclusive)"),
                ("end", "last key (exclusive)"),
                ("limit", "most items (default 100, at most 1000)"),
                ("cursor", "the cursor of the previous page"),
            ]);
            out.extend(consistency);
        }
        ("GET", "/views/{plugin}/_find") => {
            out.extend([
                ("index", "the index to read (omit to scan a view of at most 10,000 documents, or with scan=true)"),
                ("FIELD.OP", "a condition: OP is eq, gt, gte, lt, lte, prefix or in (comma-separated or a JSON array); e.g. stock.lt=10"),
                ("order", "asc (default) or desc, in index order (key order without an index)"),
                ("limit", "most items (default 100, at most 1000)"),
                ("cursor", "the cursor of the previous page: every page of a walk reads the same log position"),
                ("fields", "comma-separated field paths to answer with instead of whole documents"),
                ("count", "true: answer {\"count\"} instead of the documents"),
                ("scan", "true: scan a view of any size without an index (at most 100,000 documents read per page)"),
            ]);
            out.extend(consistency);
        }
        ("GET", "/views/{plugin}/{key}")
        | ("POST", "/views/{plugin}/_bulk_get")
        | ("GET", "/views/{plugin}/_doc/{key}")
        | ("GET", "/views/{plugin}/_query/{name}") => out.extend(consistency),
        _ => {}
    }
    out
}

/// The OpenAPI 3.1 document of the routes above.
pub fn openapi() -> Value {
    let mut paths = Map::new();
    for r in ROUTES {
        let mut parameters: Vec<Value> = r
            .path
            .split('/')
            .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
            .collect();
        parameters.extend(query_parameters(r.method, r.path).into_iter().map(|(name, description)| {
            json!({"name": name, "in": "query", "required": false, "description": description, "schema": {"type": "string"}})
        }));
        let mut operation = json!({
            "summary": r.summary,
            "parameters": parameters,
            "responses": {
                "default": {"description": "success, or an error {\"error\":{\"code\",\"message\"}}"},
            },
            "x-prism-scope": r.scope,
        });
        if r.scope != Scope::Public {
            operation["security"] = json!([{"bearer": []}]);
        }
        let entry = paths.entry(r.path.to_string()).or_insert_with(|| json!({}));
        entry[r.method.to_lowercase()] = operation;
    }
    json!({
        "openapi": "3.1.0",
        "info": {"title": "Prism", "version": env!("CARGO_PKG_VERSION"), "description": "Append events, manage projection plugins, read views."},
        "paths": paths,
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_needs_the_scope_of_get() {
        for r in ROUTES.iter().filter(|r| r.method == "GET") {
            assert_eq!(scope_of("HEAD", r.path), Some(r.scope), "HEAD {}", r.path);
        }
        assert_eq!(scope_of("HEAD", "/plugins/{name}/rebuild"), None);
    }
}
