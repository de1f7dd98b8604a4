//! The route table: every route with the scope it needs, the parameters and
//! body it takes and what it answers. The router, authorization and `GET
//! /openapi.json` (`openapi`) are all built from it, so the server, its checks and its
//! document cannot drift from each other: a parameter rule written here is
//! the rule its handler enforces (the in-process tests and the API fuzzer
//! of `scripts/test-openapi.sh` hold them to it).

use std::collections::BTreeMap;

use axum::routing::{MethodRouter, delete, get, post, put};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::AppState;
use super::openapi::schema;
use super::{changes, find, metrics, outbox, plugins, streams, ui, views};
use crate::log::limits::MAX_STREAM_NAME_BYTES;
use crate::plugins::names::MAX_NAME_LEN;
use crate::views::MAX_KEY_BYTES;

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

/// Where a parameter is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    Path,
    Query,
}

/// What a parameter's value may be: exactly what its handler accepts.
#[derive(Debug, Clone, Copy)]
pub enum Shape {
    /// A page size: a whole number from 1; more than `max` reads as `max`.
    /// The one rule of every `limit` (see `body::page_limit`).
    PageLimit { default: u64, max: u64 },
    /// A whole number from `min` to 2^64 - 1.
    Number { min: u64 },
    /// Text of at least `min` characters matching `pattern`; `max_bytes`
    /// bounds its UTF-8 length, which JSON Schema cannot say: the document
    /// gives it as `maxLength` and in words.
    Text {
        pattern: Option<&'static str>,
        min: u64,
        max_bytes: Option<usize>,
    },
    /// `true` or `false`.
    Flag,
    /// One of these words.
    OneOf(&'static [&'static str]),
    /// The name of one of the dashboard's files.
    DashboardFile,
}

/// A path or query parameter.
#[derive(Debug, Clone, Copy)]
pub struct Param {
    pub name: &'static str,
    pub place: Place,
    pub description: &'static str,
    pub shape: Shape,
    /// A value that names something the example data has (the
    /// account-balance plugin and its accounts), so that a client trying
    /// the API, or a fuzzer, reaches more than `404`s.
    pub example: Option<&'static str>,
}

/// What a request body may be.
#[derive(Debug, Clone, Copy)]
pub enum RequestBody {
    /// JSON of this schema, at most `max_body_bytes` long.
    Json(fn() -> Value),
    /// A plugin's file, at most `max_plugin_bytes` long: a component or a
    /// view file. The server tells them apart by their bytes, whatever the
    /// `Content-Type`.
    Plugin,
}

/// What a successful answer carries.
#[derive(Debug, Clone, Copy)]
pub enum Content {
    /// No body (`204`, `304`).
    Empty,
    /// JSON of this schema.
    Json(fn() -> Value),
    /// A view's JSON of this schema, stamped with the position, generation
    /// and state that answered (`Prism-Position`, `Prism-Generation`,
    /// `Prism-State`).
    View(fn() -> Value),
    /// Text of one of these media types.
    Text(&'static [&'static str]),
    /// Server-sent events, each of this schema (`event`, `data`, `id`).
    Events(fn() -> Value),
}

/// A successful answer.
#[derive(Debug, Clone, Copy)]
pub struct Reply {
    pub status: u16,
    pub description: &'static str,
    pub content: Content,
}

/// One route of the API.
pub struct Route {
    pub method: &'static str,
    pub path: &'static str,
    pub scope: Scope,
    pub summary: &'static str,
    /// Its path parameters (each `{name}` of `path`, in order), then its
    /// query parameters.
    pub params: &'static [Param],
    pub body: Option<RequestBody>,
    pub replies: &'static [Reply],
    /// The errors particular to this route, by status; those every route
    /// of its kind can answer (a bad path or query, a bad body, a missing
    /// token) are added by [`Route::errors`].
    pub errors: &'static [(u16, &'static str)],
    handler: fn() -> MethodRouter<AppState>,
}

const fn path(name: &'static str, description: &'static str, shape: Shape) -> Param {
    Param {
        name,
        place: Place::Path,
        description,
        shape,
        example: None,
    }
}

const fn query(name: &'static str, description: &'static str, shape: Shape) -> Param {
    Param {
        name,
        place: Place::Query,
        description,
        shape,
        example: None,
    }
}

impl Param {
    const fn example(mut self, example: &'static str) -> Param {
        self.example = Some(example);
        self
    }
}

const fn reply(status: u16, description: &'static str, content: Content) -> Reply {
    Reply {
        status,
        description,
        content,
    }
}

/// No control characters (what `char::is_control` refuses: C0, DEL, C1).
pub(super) const NO_CONTROLS: &str = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$";

pub(super) const STREAM: Param = path(
    "stream",
    "the stream: 1 to 256 bytes of UTF-8 without control characters",
    Shape::Text {
        pattern: Some(NO_CONTROLS),
        min: 1,
        max_bytes: Some(MAX_STREAM_NAME_BYTES),
    },
)
.example("account-1");

const PLUGIN_NAME: Shape = Shape::Text {
    pattern: Some("^[a-z0-9_-]+$"),
    min: 1,
    max_bytes: Some(MAX_NAME_LEN),
};

const NAME: Param = path(
    "name",
    "the plugin: a-z, 0-9, - and _, 1 to 64 characters",
    PLUGIN_NAME,
)
.example("account-balance");

const PLUGIN: Param = path(
    "plugin",
    "the plugin whose view to read: a-z, 0-9, - and _, 1 to 64 characters",
    PLUGIN_NAME,
)
.example("account-balance");

const KEY: Param = path(
    "key",
    "the document's key: 1 to 1024 bytes of UTF-8 not starting with _ (those are read at _doc/{key})",
    Shape::Text {
        pattern: Some("^[^_]"),
        min: 1,
        max_bytes: Some(MAX_KEY_BYTES),
    },
)
.example("account-1");

pub(super) const ANY_KEY: Param = path(
    "key",
    "the document's key: 1 to 1024 bytes of UTF-8",
    Shape::Text {
        pattern: None,
        min: 1,
        max_bytes: Some(MAX_KEY_BYTES),
    },
)
.example("account-2");

const OUTBOX_ID: Param = path(
    "id",
    "the request's id (a UUID, as the outbox lists it)",
    Shape::Text {
        pattern: Some(
            "^([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}|[0-9a-fA-F]{32})$",
        ),
        min: 32,
        max_bytes: Some(36),
    },
);

const OUTBOX_REQUEST_ERRORS: &[(u16, &str)] = &[
    (400, "invalid_outbox_id: not a UUID"),
    (
        404,
        "unknown_outbox_request: the plugin has no request of that id",
    ),
    (
        409,
        "outbox_conflict: the request is delivered or dropped already",
    ),
    (503, "shutting_down: the server is stopping"),
];

const MIN_POSITION: Param = query(
    "min_position",
    "wait until the plugin has applied this log position (at most the log's head)",
    Shape::Number { min: 0 },
);

const TIMEOUT_MS: Param = query(
    "timeout_ms",
    "how long to wait for min_position, in milliseconds (default 5000; more than 30000 reads as 30000)",
    Shape::Number { min: 0 },
);

const LOG_LIMIT: Shape = Shape::PageLimit {
    default: streams::DEFAULT_READ_LIMIT as u64,
    max: streams::MAX_READ_LIMIT as u64,
};

const VIEW_LIMIT: Shape = Shape::PageLimit {
    default: views::DEFAULT_SCAN_LIMIT as u64,
    max: views::MAX_SCAN_LIMIT as u64,
};

/// The answers of an admin action that answers with the plugin's status.
const ACCEPTED_STATUS: &[Reply] = &[reply(
    202,
    "accepted: the plugin's status",
    Content::Json(schema::plugin),
)];

const ADMIN_ERRORS: &[(u16, &str)] = &[
    (404, "unknown_plugin: no plugin of that name"),
    (409, "conflict: the plugin is in no state to do this"),
    (507, "storage_full: the disk is full"),
];

/// The errors of a view read once the plugin is known.
const VIEW_ERRORS: &[(u16, &str)] = &[
    (
        400,
        "invalid_plugin_name; position_beyond_head: min_position is beyond the log's head",
    ),
    (404, "unknown_plugin: no plugin of that name"),
    (
        503,
        "plugin_unavailable: the plugin has no working generation; plugin_failed: it stopped before min_position",
    ),
    (
        504,
        "position_not_reached: the plugin had not applied min_position when timeout_ms ran out",
    ),
];

pub const ROUTES: &[Route] = &[
    Route {
        method: "POST",
        path: "/streams/{stream}/events",
        scope: Scope::Write,
        summary: "Append events to a stream (atomic, durable, optimistic concurrency, idempotent by event id)",
        params: &[STREAM],
        body: Some(RequestBody::Json(schema::append)),
        replies: &[reply(201, "appended", Content::Json(schema::append_result))],
        errors: &[
            (
                400,
                "invalid_event (names event_index, field and path for JSON the readers would not decode alike), invalid_expected_version, invalid_request (a stream name or event count out of bounds)",
            ),
            (
                409,
                "wrong_expected_version (with current_version); idempotency_conflict: some of the event ids are in the log, some not",
            ),
            (
                503,
                "shutting_down; log_unavailable: the replicated log cannot take appends now (Retry-After)",
            ),
            (
                507,
                "storage_full: nothing was appended; appends resume once space is freed (Retry-After)",
            ),
        ],
        handler: || post(streams::append),
    },
    Route {
        method: "GET",
        path: "/streams/{stream}/events",
        scope: Scope::Read,
        summary: "Read one stream from a version",
        params: &[
            STREAM,
            query(
                "from_version",
                "first stream version (default 0)",
                Shape::Number { min: 0 },
            ),
            query(
                "limit",
                "most events (default 100; more than 10000 reads as 10000); a page also ends before 4 MiB of events: continue from next_version",
                LOG_LIMIT,
            ),
        ],
        body: None,
        replies: &[reply(
            200,
            "a page of the stream",
            Content::Json(schema::stream_page),
        )],
        errors: &[(404, "stream_not_found: the stream has no events")],
        handler: || get(streams::read_stream),
    },
    Route {
        method: "POST",
        path: "/events",
        scope: Scope::Write,
        summary: "Append events of several streams in one atomic step, in the order given, with optional expected versions per stream (idempotent by event id)",
        params: &[],
        body: Some(RequestBody::Json(schema::multi_append)),
        replies: &[
            reply(201, "appended", Content::Json(schema::multi_append_result)),
            reply(
                200,
                "every event id was in the log already: the original append's result, with duplicate: true",
                Content::Json(schema::multi_append_result),
            ),
        ],
        errors: &[
            (
                400,
                "invalid_event, invalid_expected_version, invalid_request (a stream name or event count out of bounds, an expected version for a stream without events here)",
            ),
            (
                409,
                "wrong_expected_version (with current_version); idempotency_conflict",
            ),
            (503, "shutting_down; log_unavailable (Retry-After)"),
            (507, "storage_full (Retry-After)"),
        ],
        handler: || post(streams::append_many),
    },
    Route {
        method: "GET",
        path: "/events",
        scope: Scope::Read,
        summary: "Read the global log from a position",
        params: &[
            query(
                "from_position",
                "first position (default 1; 0 reads as 1)",
                Shape::Number { min: 0 },
            ),
            query(
                "limit",
                "most events (default 100; more than 10000 reads as 10000); a page also ends before 4 MiB of events: continue from next_position",
                LOG_LIMIT,
            ),
        ],
        body: None,
        replies: &[reply(
            200,
            "a page of the log",
            Content::Json(schema::log_page),
        )],
        errors: &[],
        handler: || get(streams::read_log),
    },
    Route {
        method: "GET",
        path: "/plugins",
        scope: Scope::Read,
        summary: "Status of every plugin",
        params: &[],
        body: None,
        replies: &[reply(
            200,
            "every plugin's status",
            Content::Json(schema::plugin_list),
        )],
        errors: &[],
        handler: || get(plugins::list),
    },
    Route {
        method: "GET",
        path: "/plugins/{name}",
        scope: Scope::Read,
        summary: "Status of one plugin",
        params: &[NAME],
        body: None,
        replies: &[reply(
            200,
            "the plugin's status",
            Content::Json(schema::plugin),
        )],
        errors: &[(404, "unknown_plugin: no plugin of that name")],
        handler: || get(plugins::show),
    },
    Route {
        method: "PUT",
        path: "/plugins/{name}",
        scope: Scope::Admin,
        summary: "Install or replace a plugin (the body: a .wasm component, or a view file in YAML or JSON)",
        params: &[NAME],
        body: Some(RequestBody::Plugin),
        replies: &[
            reply(
                201,
                "a new plugin: its first generation replays and serves",
                Content::Json(schema::install_result),
            ),
            reply(
                200,
                "unchanged (the same content), or replacing: a new generation replays beside the serving one",
                Content::Json(schema::install_result),
            ),
        ],
        errors: &[
            (400, "invalid_plugin: the body is empty"),
            (
                422,
                "invalid_plugin: the body is not a component or view file that loads; nothing changed",
            ),
            (409, "conflict: the plugin is in no state to take it"),
            (507, "storage_full: the disk is full"),
        ],
        handler: || put(plugins::put),
    },
    Route {
        method: "DELETE",
        path: "/plugins/{name}",
        scope: Scope::Admin,
        summary: "Unload a plugin and drop its views",
        params: &[NAME],
        body: None,
        replies: &[reply(204, "removed", Content::Empty)],
        errors: ADMIN_ERRORS,
        handler: || delete(plugins::delete),
    },
    Route {
        method: "POST",
        path: "/plugins/{name}/rebuild",
        scope: Scope::Admin,
        summary: "Replay a plugin into a fresh generation (blue/green)",
        params: &[NAME],
        body: None,
        replies: &[reply(
            202,
            "a new generation replays",
            Content::Json(schema::install_result),
        )],
        errors: ADMIN_ERRORS,
        handler: || post(plugins::rebuild),
    },
    Route {
        method: "POST",
        path: "/plugins/{name}/promote",
        scope: Scope::Admin,
        summary: "Cut over to the caught-up candidate now (with cutover = \"manual\")",
        params: &[NAME],
        body: None,
        replies: &[reply(
            200,
            "the candidate serves: the plugin's status",
            Content::Json(schema::plugin),
        )],
        errors: ADMIN_ERRORS,
        handler: || post(plugins::promote),
    },
    Route {
        method: "POST",
        path: "/plugins/{name}/rollback",
        scope: Scope::Admin,
        summary: "Bring the previous generation back: it catches up, then serves; the file is rewritten with its bytes",
        params: &[NAME],
        body: None,
        replies: ACCEPTED_STATUS,
        errors: ADMIN_ERRORS,
        handler: || post(plugins::rollback),
    },
    Route {
        method: "GET",
        path: "/plugins/{name}/diff",
        scope: Scope::Read,
        summary: "Compare the caught-up candidate with the serving generation at one log position",
        params: &[
            NAME,
            query(
                "sample",
                "most examples of each kind of difference (default 10; more than 100 reads as 100)",
                Shape::Number { min: 0 },
            ),
        ],
        body: None,
        replies: &[reply(
            200,
            "counts of keys added, removed and changed, with samples",
            Content::Json(schema::object),
        )],
        errors: &[
            (404, "unknown_plugin: no plugin of that name"),
            (409, "conflict: there is no caught-up candidate to compare"),
        ],
        handler: || get(plugins::diff),
    },
    Route {
        method: "POST",
        path: "/plugins/{name}/resume",
        scope: Scope::Admin,
        summary: "Run a quarantined generation again, one event at a time through the batch the process died in",
        params: &[NAME],
        body: None,
        replies: ACCEPTED_STATUS,
        errors: ADMIN_ERRORS,
        handler: || post(plugins::resume),
    },
    Route {
        method: "POST",
        path: "/plugins/{name}/skip",
        scope: Scope::Admin,
        summary: "Run a quarantined generation again past the batch the process died in (its events are dead-lettered)",
        params: &[NAME],
        body: None,
        replies: ACCEPTED_STATUS,
        errors: ADMIN_ERRORS,
        handler: || post(plugins::skip),
    },
    Route {
        method: "DELETE",
        path: "/plugins/{name}/candidate",
        scope: Scope::Admin,
        summary: "Discard the candidate; the file is rewritten with the serving generation's bytes",
        params: &[NAME],
        body: None,
        replies: &[reply(204, "discarded", Content::Empty)],
        errors: ADMIN_ERRORS,
        handler: || delete(plugins::discard_candidate),
    },
    Route {
        method: "GET",
        path: "/plugins/{name}/logs",
        scope: Scope::Read,
        summary: "The plugin's bounded log",
        params: &[NAME],
        body: None,
        replies: &[reply(
            200,
            "the serving generation's log lines",
            Content::Json(schema::plugin_log),
        )],
        errors: &[
            (404, "unknown_plugin: no plugin of that name"),
            (503, "plugin_unavailable: no generation serves"),
        ],
        handler: || get(plugins::logs),
    },
    Route {
        method: "GET",
        path: "/plugins/{name}/dead-letters",
        scope: Scope::Read,
        summary: "Events the plugin skipped, with the error",
        params: &[
            NAME,
            query(
                "limit",
                "most dead letters (default 100; more than 10000 reads as 10000)",
                Shape::PageLimit {
                    default: plugins::DEFAULT_DEAD_LETTER_LIMIT as u64,
                    max: plugins::MAX_DEAD_LETTER_LIMIT as u64,
                },
            ),
        ],
        body: None,
        replies: &[reply(
            200,
            "the dead letters",
            Content::Json(schema::dead_letters),
        )],
        errors: &[
            (404, "unknown_plugin: no plugin of that name"),
            (503, "plugin_unavailable: no generation serves"),
        ],
        handler: || get(plugins::dead_letters),
    },
    Route {
        method: "GET",
        path: "/plugins/{name}/outbox",
        scope: Scope::Admin,
        summary: "The plugin's outbox: counts per target (pending, delivered, dead, dropped) and a page of side-effect requests with state, attempts, last error and next attempt time",
        params: &[
            NAME,
            query(
                "state",
                "only requests in this state",
                Shape::OneOf(&["pending", "delivered", "dead", "dropped"]),
            ),
            query(
                "limit",
                "most requests (default 100; more than 1000 reads as 1000)",
                Shape::PageLimit {
                    default: outbox::DEFAULT_OUTBOX_LIMIT as u64,
                    max: outbox::MAX_OUTBOX_LIMIT as u64,
                },
            ),
            query(
                "cursor",
                "the cursor of the previous page",
                Shape::Text {
                    pattern: Some("^[0-9]{1,20}$"),
                    min: 1,
                    max_bytes: None,
                },
            ),
        ],
        body: None,
        replies: &[reply(
            200,
            "counts per target and a page of requests, oldest first; cursor when there are more",
            Content::Json(schema::outbox_page),
        )],
        errors: &[
            (400, "invalid_state, invalid_cursor"),
            (
                404,
                "unknown_plugin: no plugin of that name, and no request of it",
            ),
        ],
        handler: || get(outbox::list),
    },
    Route {
        method: "POST",
        path: "/plugins/{name}/outbox/{id}/retry",
        scope: Scope::Admin,
        summary: "Send a dead or pending outbox request again now, with a fresh budget of attempts",
        params: &[NAME, OUTBOX_ID],
        body: None,
        replies: &[reply(
            200,
            "the request, pending again",
            Content::Json(schema::outbox_request),
        )],
        errors: OUTBOX_REQUEST_ERRORS,
        handler: || post(outbox::retry),
    },
    Route {
        method: "DELETE",
        path: "/plugins/{name}/outbox/{id}",
        scope: Scope::Admin,
        summary: "Drop a pending or dead outbox request: it is never sent (it stays listed as dropped, and is never enqueued again)",
        params: &[NAME, OUTBOX_ID],
        body: None,
        replies: &[reply(
            200,
            "the request, dropped",
            Content::Json(schema::outbox_request),
        )],
        errors: OUTBOX_REQUEST_ERRORS,
        handler: || delete(outbox::drop_request),
    },
    Route {
        method: "GET",
        path: "/views/{plugin}",
        scope: Scope::Read,
        summary: "Ordered scan of a view with pagination",
        params: &[
            PLUGIN,
            query(
                "prefix",
                "only keys starting with this",
                Shape::Text {
                    pattern: None,
                    min: 0,
                    max_bytes: None,
                },
            ),
            query(
                "start",
                "first key (inclusive)",
                Shape::Text {
                    pattern: None,
                    min: 0,
                    max_bytes: None,
                },
            ),
            query(
                "end",
                "last key (exclusive)",
                Shape::Text {
                    pattern: None,
                    min: 0,
                    max_bytes: None,
                },
            ),
            query(
                "limit",
                "most items (default 100; more than 1000 reads as 1000)",
                VIEW_LIMIT,
            ),
            query(
                "cursor",
                "the cursor of the previous page",
                Shape::Text {
                    pattern: Some("^([0-9a-f]{2})*$"),
                    min: 0,
                    max_bytes: None,
                },
            ),
            MIN_POSITION,
            TIMEOUT_MS,
        ],
        body: None,
        replies: &[reply(
            200,
            "a page of documents in key order; cursor when there are more",
            Content::View(schema::scan_page),
        )],
        errors: VIEW_ERRORS,
        handler: || get(views::scan),
    },
    Route {
        method: "GET",
        path: "/views/{plugin}/_changes",
        scope: Scope::Read,
        summary: "Server-sent events, one per applied key change (resume with Last-Event-ID or since)",
        params: &[
            PLUGIN,
            query(
                "since",
                "changes of commits after this log position",
                Shape::Number { min: 0 },
            ),
        ],
        body: None,
        replies: &[reply(
            200,
            "events open, change, reset and generation, until the client goes away",
            Content::Events(schema::change_event),
        )],
        errors: &[
            (
                400,
                "invalid_plugin_name; invalid_last_event_id: a Last-Event-ID this server did not give out",
            ),
            (404, "unknown_plugin: no plugin of that name"),
            (
                503,
                "plugin_unavailable: the plugin has no working generation",
            ),
        ],
        handler: || get(changes::feed),
    },
    Route {
        method: "GET",
        path: "/views/{plugin}/_query/{name}",
        scope: Scope::Read,
        summary: "Run a named query the plugin exports (every other query parameter is the query's)",
        params: &[
            PLUGIN,
            path(
                "name",
                "the query, one the plugin declares",
                Shape::Text {
                    pattern: None,
                    min: 1,
                    max_bytes: None,
                },
            )
            .example("richest"),
            MIN_POSITION,
            TIMEOUT_MS,
        ],
        body: None,
        replies: &[reply(200, "the query's answer", Content::View(schema::any))],
        errors: &[
            (
                400,
                "invalid_plugin_name; position_beyond_head; invalid_params: the query refused its parameters",
            ),
            (
                404,
                "unknown_plugin; unknown_query: the plugin declares no such query",
            ),
            (
                502,
                "query_failed: the query failed or answered something that is not JSON",
            ),
            (
                503,
                "plugin_unavailable, plugin_failed; query_busy, plugin_loading (Retry-After)",
            ),
            (504, "position_not_reached"),
        ],
        handler: || get(views::query),
    },
    Route {
        method: "GET",
        path: "/views/{plugin}/_find",
        scope: Scope::Read,
        summary: "Query a view through a secondary index (conditions FIELD.OP=VALUE, e.g. stock.lt=10, with OP one of eq, gt, gte, lt, lte, prefix, in), or scan a small view",
        params: &[
            PLUGIN,
            query(
                "index",
                "the index to read, one the plugin declares (omit to scan a view of at most 10,000 documents, or with scan=true)",
                Shape::Text {
                    pattern: None,
                    min: 0,
                    max_bytes: None,
                },
            ),
            query(
                "order",
                "in index order (key order without an index)",
                Shape::OneOf(&["asc", "desc"]),
            ),
            query(
                "limit",
                "most items (default 100; more than 1000 reads as 1000)",
                VIEW_LIMIT,
            ),
            query(
                "cursor",
                "the cursor of the previous page: every page of a walk reads the same log position",
                Shape::Text {
                    pattern: Some("^[0-9a-f]{18}([0-9a-f]{2})*$"),
                    min: 18,
                    max_bytes: None,
                },
            ),
            query(
                "fields",
                "comma-separated field paths (a.b.c) to answer with instead of whole documents",
                Shape::Text {
                    pattern: Some("^[^.,]+(\\.[^.,]+)*(,[^.,]+(\\.[^.,]+)*)*$"),
                    min: 1,
                    max_bytes: None,
                },
            ),
            query(
                "count",
                "true: answer {\"count\"} instead of the documents",
                Shape::Flag,
            ),
            query(
                "scan",
                "true: scan a view of any size without an index (at most 100,000 documents read per page)",
                Shape::Flag,
            ),
            MIN_POSITION,
            TIMEOUT_MS,
        ],
        body: None,
        replies: &[reply(
            200,
            "a page of documents, or the count",
            Content::View(schema::find_page),
        )],
        errors: &[
            (
                400,
                "invalid_plugin_name, position_beyond_head, unknown_index, index_required, invalid_cursor, unknown_parameter, unknown_operator, invalid_condition, invalid_limit",
            ),
            (404, "unknown_plugin: no plugin of that name"),
            (
                410,
                "cursor_expired: the walk the cursor belongs to is over; start it again",
            ),
            (
                503,
                "plugin_unavailable, plugin_failed; plugin_loading (Retry-After)",
            ),
            (504, "position_not_reached"),
        ],
        handler: || get(find::find),
    },
    Route {
        method: "POST",
        path: "/views/{plugin}/_bulk_get",
        scope: Scope::Read,
        summary: "Many documents at once, in request order",
        params: &[PLUGIN, MIN_POSITION, TIMEOUT_MS],
        body: Some(RequestBody::Json(schema::bulk_get)),
        replies: &[reply(
            200,
            "one row per key: {\"key\",\"value\"} or {\"key\",\"error\":\"not_found\"}",
            Content::View(schema::bulk_rows),
        )],
        errors: &[
            (
                400,
                "invalid_plugin_name, position_beyond_head, too_many_keys (more than 1000), invalid_key (empty or longer than 1024 bytes)",
            ),
            (404, "unknown_plugin: no plugin of that name"),
            (
                413,
                "response_too_large: the documents come to more than 32 MiB",
            ),
            (503, "plugin_unavailable, plugin_failed"),
            (504, "position_not_reached"),
        ],
        handler: || post(find::bulk_get),
    },
    Route {
        method: "GET",
        path: "/views/{plugin}/_doc/{key}",
        scope: Scope::Read,
        summary: "One view document, at any key (keys starting with _ are read only here)",
        params: &[PLUGIN, ANY_KEY, MIN_POSITION, TIMEOUT_MS],
        body: None,
        replies: &[reply(200, "the document", Content::View(schema::any))],
        errors: &[
            (400, "invalid_plugin_name, position_beyond_head"),
            (
                404,
                "unknown_plugin; not_found: no document at the key (with position)",
            ),
            (503, "plugin_unavailable, plugin_failed"),
            (504, "position_not_reached"),
        ],
        handler: || get(views::get_doc),
    },
    Route {
        method: "GET",
        path: "/views/{plugin}/{key}",
        scope: Scope::Read,
        summary: "One view document; a key starting with _ is a 400 reserved_key pointing to _doc/{key}",
        params: &[PLUGIN, KEY, MIN_POSITION, TIMEOUT_MS],
        body: None,
        replies: &[reply(200, "the document", Content::View(schema::any))],
        errors: &[
            (
                400,
                "invalid_plugin_name, position_beyond_head; reserved_key: the key starts with _",
            ),
            (
                404,
                "unknown_plugin; not_found: no document at the key (with position)",
            ),
            (503, "plugin_unavailable, plugin_failed"),
            (504, "position_not_reached"),
        ],
        handler: || get(views::get_key),
    },
    Route {
        method: "GET",
        path: "/healthz",
        scope: Scope::Public,
        summary: "Health: 200 while the server answers, degraded when appends are refused",
        params: &[],
        body: None,
        replies: &[reply(200, "health", Content::Json(schema::health))],
        errors: &[],
        handler: || get(super::healthz),
    },
    Route {
        method: "GET",
        path: "/cluster",
        scope: Scope::Read,
        summary: "The nodes of the cluster and each node's plugins (generation, state, position, lag)",
        params: &[],
        body: None,
        replies: &[reply(200, "the nodes", Content::Json(schema::cluster))],
        errors: &[(
            503,
            "cluster_unavailable: the nodes' heartbeats cannot be read (Retry-After)",
        )],
        handler: || get(super::cluster),
    },
    Route {
        method: "GET",
        path: "/metrics",
        scope: Scope::Read,
        summary: "Prometheus metrics",
        params: &[],
        body: None,
        replies: &[reply(
            200,
            "Prometheus text exposition format",
            Content::Text(&["text/plain"]),
        )],
        errors: &[],
        handler: || get(metrics::render),
    },
    Route {
        method: "GET",
        path: "/openapi.json",
        scope: Scope::Public,
        summary: "This document",
        params: &[],
        body: None,
        replies: &[reply(
            200,
            "the OpenAPI document",
            Content::Json(schema::object),
        )],
        errors: &[],
        handler: || get(super::openapi_json),
    },
    Route {
        method: "GET",
        path: "/ui",
        scope: Scope::Public,
        summary: "The dashboard (it asks for a token when the API needs one)",
        params: &[],
        body: None,
        replies: &[
            reply(200, "the page", Content::Text(&["text/html"])),
            reply(304, "not modified (If-None-Match)", Content::Empty),
        ],
        errors: &[],
        handler: || get(ui::page),
    },
    Route {
        method: "GET",
        path: "/ui/{file}",
        scope: Scope::Public,
        summary: "The dashboard's scripts, styles and icon",
        params: &[path(
            "file",
            "one of the dashboard's files",
            Shape::DashboardFile,
        )],
        body: None,
        replies: &[
            reply(200, "the file", Content::Text(ui::MEDIA_TYPES)),
            reply(304, "not modified (If-None-Match)", Content::Empty),
        ],
        errors: &[(404, "not_found: the dashboard has no such file")],
        handler: || get(ui::asset),
    },
];

impl Route {
    /// Its method router: the handler, with the body limit of its kind of body.
    pub(super) fn method_router(&self, limits: super::ApiLimits) -> MethodRouter<AppState> {
        let limit = match self.body {
            Some(RequestBody::Plugin) => limits.max_plugin_bytes,
            _ => limits.max_body_bytes,
        };
        (self.handler)().layer(axum::extract::DefaultBodyLimit::max(limit))
    }

    fn query_params(&self) -> impl Iterator<Item = &Param> {
        self.params.iter().filter(|p| p.place == Place::Query)
    }

    /// Every error it can answer, by status: its own and those of every
    /// route that takes what it takes. `authenticated`: the server has tokens.
    pub fn errors(&self, authenticated: bool) -> BTreeMap<u16, Vec<&'static str>> {
        let mut errors: BTreeMap<u16, Vec<&'static str>> = BTreeMap::new();
        if self.params.iter().any(|p| p.place == Place::Path) {
            errors.entry(400).or_default().push(
                "invalid_path: a path segment is not UTF-8 once percent-decoded; invalid_plugin_name where a plugin is named",
            );
        }
        if self.query_params().next().is_some() {
            errors
                .entry(400)
                .or_default()
                .push("invalid_parameter, invalid_limit: a query parameter outside its schema");
        }
        match self.body {
            Some(RequestBody::Json(_)) => {
                errors
                    .entry(400)
                    .or_default()
                    .push("invalid_json: the body is not JSON; invalid_request: not of the schema");
                errors
                    .entry(413)
                    .or_default()
                    .push("body_too_large: the body is over max_body_bytes");
            }
            Some(RequestBody::Plugin) => {
                errors
                    .entry(413)
                    .or_default()
                    .push("body_too_large: the body is over max_plugin_bytes");
            }
            None => {}
        }
        if authenticated && self.scope != Scope::Public {
            errors
                .entry(401)
                .or_default()
                .push("unauthorized: no bearer token, or not one of the server's");
            errors
                .entry(403)
                .or_default()
                .push("forbidden: the token lacks the scope this route needs");
        }
        for (status, description) in self.errors {
            errors.entry(*status).or_default().push(description);
        }
        errors
    }
}

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

    #[test]
    fn every_path_parameter_is_described_in_order_and_no_route_is_listed_twice() {
        let mut seen = std::collections::HashSet::new();
        for r in ROUTES {
            assert!(
                seen.insert((r.method, r.path)),
                "{} {} twice",
                r.method,
                r.path
            );
            let in_path: Vec<&str> = r
                .path
                .split('/')
                .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
                .collect();
            let described: Vec<&str> = r
                .params
                .iter()
                .filter(|p| p.place == Place::Path)
                .map(|p| p.name)
                .collect();
            assert_eq!(in_path, described, "{} {}", r.method, r.path);
            assert!(!r.replies.is_empty(), "{} {}", r.method, r.path);
        }
    }
}
