//! The JSON Schemas of request and response bodies, shared by the route
//! table (which names them) and the document (which holds them).

use serde_json::{Value, json};

use crate::api::find;
use crate::api::routes::{ANY_KEY, NO_CONTROLS, STREAM};
use crate::log::limits::{MAX_EVENT_TYPE_BYTES, MAX_EVENTS_PER_APPEND};

pub(in crate::api) fn shared() -> Value {
    let event_type = json!({
        "type": "string",
        "minLength": 1,
        "maxLength": MAX_EVENT_TYPE_BYTES,
        "x-max-bytes": MAX_EVENT_TYPE_BYTES,
        "pattern": NO_CONTROLS,
        "description": "1 to 256 bytes of UTF-8 without control characters",
    });
    let stream = STREAM.shape.schema();
    let new_event_properties = json!({
        "type": event_type,
        "data": {"description": "any JSON value (absent: {}), kept byte for byte"},
        "metadata": {"type": ["object", "null"], "description": "absent or null: {}"},
        "id": {"type": ["string", "null"], "format": "uuid", "description": "the client's id (absent or null: the server makes one up): an append whose ids are all in the log is not appended again"},
    });
    let mut stream_event_properties = new_event_properties.clone();
    stream_event_properties["stream"] = stream;
    json!({
        "Error": {
            "type": "object",
            "required": ["error"],
            "properties": {"error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {
                    "code": {"type": "string"},
                    "message": {"type": "string"},
                },
            }},
        },
        "ExpectedVersion": {
            "description": "any (the default), no_stream, exists, or the stream's version now (a whole number; written with a fraction or an exponent, as 5.0, only up to 2^53)",
            "anyOf": [
                {"type": "string", "enum": ["any", "no_stream", "exists"]},
                {"type": "integer", "minimum": 0, "maximum": u64::MAX},
                {"type": "null"},
            ],
        },
        "NewEvent": {
            "type": "object",
            "required": ["type"],
            "additionalProperties": false,
            "properties": new_event_properties,
        },
        "NewStreamEvent": {
            "type": "object",
            "required": ["stream", "type"],
            "additionalProperties": false,
            "properties": stream_event_properties,
        },
        "Event": {
            "type": "object",
            "required": ["position", "stream", "stream_version", "id", "type", "data", "metadata", "recorded_at"],
            "properties": {
                "position": {"type": "integer", "minimum": 1},
                "stream": {"type": "string"},
                "stream_version": {"type": "integer", "minimum": 0},
                "id": {"type": "string", "format": "uuid"},
                "type": {"type": "string"},
                "data": {},
                "metadata": {"type": "object"},
                "recorded_at": {"type": "string", "format": "date-time"},
            },
        },
        "Plugin": {
            "type": "object",
            "required": ["name", "state", "generations"],
            "properties": {
                "name": {"type": "string"},
                "state": {"type": "string"},
                "generations": {"type": "array", "items": {"type": "object"}},
            },
        },
    })
}

pub(in crate::api) fn schema_ref(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

pub(in crate::api) fn any() -> Value {
    json!({})
}

pub(in crate::api) fn object() -> Value {
    json!({"type": "object"})
}

fn events_array(item: &str) -> Value {
    json!({
        "type": "array",
        "minItems": 1,
        "maxItems": MAX_EVENTS_PER_APPEND,
        "items": schema_ref(item),
    })
}

pub(in crate::api) fn append() -> Value {
    json!({
        "type": "object",
        "required": ["events"],
        "additionalProperties": false,
        "properties": {
            "events": events_array("NewEvent"),
            "expected_version": schema_ref("ExpectedVersion"),
        },
    })
}

pub(in crate::api) fn multi_append() -> Value {
    json!({
        "type": "object",
        "required": ["events"],
        "additionalProperties": false,
        "properties": {
            "events": events_array("NewStreamEvent"),
            "expected_versions": {
                "type": "object",
                "description": "per stream of this append (a stream without events here is refused)",
                "additionalProperties": schema_ref("ExpectedVersion"),
            },
        },
    })
}

pub(in crate::api) fn append_result() -> Value {
    json!({
        "type": "object",
        "required": ["first_position", "last_position", "stream_version"],
        "properties": {
            "first_position": {"type": "integer", "minimum": 1},
            "last_position": {"type": "integer", "minimum": 1},
            "stream_version": {"type": "integer", "minimum": 0},
        },
    })
}

pub(in crate::api) fn multi_append_result() -> Value {
    json!({
        "type": "object",
        "required": ["first_position", "last_position", "streams"],
        "properties": {
            "first_position": {"type": "integer", "minimum": 1},
            "last_position": {"type": "integer", "minimum": 1},
            "streams": {"type": "object", "additionalProperties": {"type": "integer", "minimum": 0}},
            "duplicate": {"type": "boolean"},
        },
    })
}

pub(in crate::api) fn stream_page() -> Value {
    json!({
        "type": "object",
        "required": ["stream", "events", "last_version_read", "next_version"],
        "properties": {
            "stream": {"type": "string"},
            "events": {"type": "array", "items": schema_ref("Event")},
            "last_version_read": {"type": ["integer", "null"], "minimum": 0},
            "next_version": {"type": "integer", "minimum": 0},
        },
    })
}

pub(in crate::api) fn log_page() -> Value {
    json!({
        "type": "object",
        "required": ["events", "head", "next_position"],
        "properties": {
            "events": {"type": "array", "items": schema_ref("Event")},
            "head": {"type": "integer", "minimum": 0},
            "next_position": {"type": "integer", "minimum": 1},
        },
    })
}

pub(in crate::api) fn plugin() -> Value {
    schema_ref("Plugin")
}

pub(in crate::api) fn plugin_list() -> Value {
    json!({
        "type": "object",
        "required": ["plugins"],
        "properties": {"plugins": {"type": "array", "items": schema_ref("Plugin")}},
    })
}

pub(in crate::api) fn install_result() -> Value {
    json!({
        "type": "object",
        "required": ["outcome", "plugin"],
        "properties": {
            "outcome": {"type": "string", "enum": ["unchanged", "started", "replacing"]},
            "plugin": {"anyOf": [schema_ref("Plugin"), {"type": "null"}]},
        },
    })
}

pub(in crate::api) fn plugin_log() -> Value {
    json!({
        "type": "object",
        "required": ["generation", "lines", "dropped"],
        "properties": {
            "generation": {"type": "string"},
            "lines": {"type": "array"},
            "dropped": {"type": "integer", "minimum": 0},
        },
    })
}

pub(in crate::api) fn dead_letters() -> Value {
    json!({
        "type": "object",
        "required": ["dead_letters"],
        "properties": {"dead_letters": {"type": "array", "items": {"type": "object"}}},
    })
}

pub(in crate::api) fn outbox_request() -> Value {
    json!({
        "type": "object",
        "required": ["id", "sequence", "target", "state", "attempts", "ordering_key", "idempotency_key", "cause", "payload"],
        "properties": {
            "id": {"type": "string", "format": "uuid"},
            "sequence": {"type": "integer", "minimum": 1},
            "target": {"type": "string"},
            "state": {"type": "string", "enum": ["pending", "delivered", "dead", "dropped"]},
            "attempts": {"type": "integer", "minimum": 0},
            "last_error": {"type": ["string", "null"]},
            "next_attempt_at_ms": {"type": ["integer", "null"]},
            "waiting_for": {"type": ["string", "null"]},
            "enqueued_at_ms": {"type": "integer"},
            "finished_at_ms": {"type": ["integer", "null"]},
            "ordering_key": {"type": "string"},
            "idempotency_key": {"type": "string"},
            "cause": {
                "type": "object",
                "required": ["position", "id"],
                "properties": {"position": {"type": "integer"}, "id": {"type": "string"}},
            },
            "payload": {},
        },
    })
}

pub(in crate::api) fn outbox_page() -> Value {
    json!({
        "type": "object",
        "required": ["plugin", "targets", "items"],
        "properties": {
            "plugin": {"type": "string"},
            "targets": {"type": "array", "items": {"type": "object"}},
            "items": {"type": "array", "items": outbox_request()},
            "cursor": {"type": "string"},
        },
    })
}

pub(in crate::api) fn key_value() -> Value {
    json!({
        "type": "object",
        "required": ["key", "value"],
        "properties": {"key": {"type": "string"}, "value": {}},
    })
}

pub(in crate::api) fn scan_page() -> Value {
    json!({
        "type": "object",
        "required": ["items"],
        "properties": {
            "items": {"type": "array", "items": key_value()},
            "cursor": {"type": "string"},
        },
    })
}

pub(in crate::api) fn find_page() -> Value {
    json!({
        "type": "object",
        "properties": {
            "items": {"type": "array", "items": key_value()},
            "count": {"type": "integer", "minimum": 0},
            "cursor": {"type": "string"},
            "scan_budget_reached": {"type": "boolean"},
        },
        "oneOf": [{"required": ["items"]}, {"required": ["count"]}],
    })
}

/// One event of a change feed (see `changes`).
pub(in crate::api) fn change_event() -> Value {
    json!({
        "type": "object",
        "required": ["event", "data"],
        "properties": {
            "event": {"type": "string", "enum": ["open", "change", "reset", "generation"]},
            "data": {
                "type": "string",
                "contentMediaType": "application/json",
                "description": "change: {\"key\",\"value\"} or {\"key\",\"deleted\":true}; the others: where the feed stands (generation, keyspace, position)",
            },
            "id": {"type": "string", "description": "P.I@KEYSPACE, to resume with Last-Event-ID"},
        },
    })
}

pub(in crate::api) fn bulk_get() -> Value {
    json!({
        "type": "object",
        "required": ["keys"],
        "properties": {"keys": {
            "type": "array",
            "maxItems": find::MAX_BULK_KEYS,
            "items": ANY_KEY.shape.schema(),
        }},
    })
}

pub(in crate::api) fn bulk_rows() -> Value {
    json!({
        "type": "object",
        "required": ["rows"],
        "properties": {"rows": {"type": "array", "items": {
            "type": "object",
            "required": ["key"],
            "properties": {
                "key": {"type": "string"},
                "value": {},
                "error": {"type": "string", "enum": ["not_found"]},
            },
            "oneOf": [{"required": ["value"]}, {"required": ["error"]}],
        }}},
    })
}

pub(in crate::api) fn health() -> Value {
    json!({
        "type": "object",
        "required": ["status", "node", "head", "plugins", "failed_plugins", "storage", "log"],
        "properties": {
            "status": {"type": "string", "enum": ["ok", "degraded"]},
            "node": {"type": "string"},
            "head": {"type": "integer", "minimum": 0},
            "plugins": {"type": "integer", "minimum": 0},
            "failed_plugins": {"type": "array", "items": {"type": "string"}},
            "storage": {"type": "object"},
            "log": {
                "type": "object",
                "required": ["backend", "max_events_per_append"],
                "properties": {
                    "backend": {"type": "string", "enum": ["embedded", "jetstream"]},
                    "max_events_per_append": {
                        "type": "integer",
                        "minimum": 1,
                        "description": "Most events one append (`POST /events`, `POST /streams/{stream}/events`) may hold",
                    },
                },
            },
        },
    })
}

pub(in crate::api) fn cluster() -> Value {
    json!({
        "type": "object",
        "required": ["backend", "nodes"],
        "properties": {
            "backend": {"type": "string", "enum": ["embedded", "jetstream"]},
            "nodes": {"type": "array", "items": {"type": "object"}},
        },
    })
}

/// The top level of a view file (docs/view-files.md has the rest). It is
/// read as YAML, JSON included, so a scalar where text is wanted is read
/// as its text (`false` as "false").
pub(in crate::api) fn view_file() -> Value {
    let scalar = json!({"type": ["string", "number", "boolean"]});
    json!({
        "type": "object",
        "required": ["on"],
        "additionalProperties": false,
        "properties": {
            "name": {"type": ["string", "number", "boolean", "null"]},
            "version": {},
            "streams": {"type": ["array", "null"], "items": scalar},
            "key": {},
            "defaults": {"type": ["object", "null"]},
            "indexes": {"type": "array", "items": {"type": "object"}},
            "on": {
                "type": "object",
                "minProperties": 1,
                "description": "per event type, what to do with the document: an update, or a list of them",
                "propertyNames": {
                    "minLength": 1,
                    "maxLength": MAX_EVENT_TYPE_BYTES,
                    "pattern": NO_CONTROLS,
                },
                "additionalProperties": {"type": ["object", "array"]},
            },
        },
    })
}
