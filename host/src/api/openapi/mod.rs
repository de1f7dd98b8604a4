//! `GET /openapi.json`: the OpenAPI 3.1 document, built from the route
//! table (`routes`) and the JSON Schemas of the bodies (`schema`). A server
//! with tokens documents the bearer scheme and, per route, the scope it
//! needs and its `401` and `403`; a server without asks for nothing.

pub(super) mod schema;

use serde_json::{Map, Value, json};

use super::routes::{Content, Param, Place, ROUTES, RequestBody, Route, Scope, Shape};
use super::ui;

impl Shape {
    /// Its JSON Schema.
    fn schema(&self) -> Value {
        match *self {
            Shape::PageLimit { default, .. } => {
                json!({"type": "integer", "minimum": 1, "maximum": u64::MAX, "default": default})
            }
            Shape::Number { min } => {
                json!({"type": "integer", "minimum": min, "maximum": u64::MAX})
            }
            Shape::Text {
                pattern,
                min,
                max_bytes,
            } => {
                let mut schema = json!({"type": "string", "minLength": min});
                if let Some(pattern) = pattern {
                    schema["pattern"] = json!(pattern);
                }
                if let Some(max) = max_bytes {
                    schema["maxLength"] = json!(max);
                    schema["x-max-bytes"] = json!(max);
                }
                schema
            }
            Shape::Flag => json!({"type": "boolean"}),
            Shape::OneOf(words) => json!({"type": "string", "enum": words}),
            Shape::DashboardFile => json!({"type": "string", "enum": ui::file_names()}),
        }
    }
}

impl Param {
    fn openapi(&self) -> Value {
        let mut param = json!({
            "name": self.name,
            "in": match self.place { Place::Path => "path", Place::Query => "query" },
            "required": self.place == Place::Path,
            "description": self.description,
            "schema": self.shape.schema(),
        });
        if let Some(example) = self.example {
            param["example"] = json!(example);
        }
        param
    }
}

fn error_ref() -> Value {
    json!({"$ref": "#/components/schemas/Error"})
}

impl Content {
    fn openapi(&self, description: &str) -> Value {
        let json_content = |schema: Value| json!({"application/json": {"schema": schema}});
        match self {
            Content::Empty => json!({"description": description}),
            Content::Json(schema) => {
                json!({"description": description, "content": json_content(schema())})
            }
            Content::View(schema) => json!({
                "description": description,
                "headers": view_headers(),
                "content": json_content(schema()),
            }),
            Content::Events(schema) => json!({
                "description": description,
                "content": {"text/event-stream": {"schema": schema()}},
            }),
            Content::Text(media) => {
                let content: Map<String, Value> = media
                    .iter()
                    .map(|m| (m.to_string(), json!({"schema": {"type": "string"}})))
                    .collect();
                json!({"description": description, "content": content})
            }
        }
    }
}

/// What every view read says about what answered it.
fn view_headers() -> Value {
    json!({
        "Prism-Position": {
            "description": "the log position the view reflects",
            "required": true,
            "schema": {"type": "integer", "minimum": 0},
        },
        "Prism-Generation": {
            "description": "the content hash of the generation that answered",
            "required": true,
            "schema": {"type": "string"},
        },
        "Prism-State": {
            "description": "that generation's state",
            "required": true,
            "schema": {"type": "string"},
        },
    })
}

impl RequestBody {
    fn openapi(&self) -> Value {
        match self {
            RequestBody::Json(schema) => json!({
                "required": true,
                "content": {"application/json": {"schema": schema()}},
            }),
            RequestBody::Plugin => {
                let binary = json!({"type": "string", "format": "binary", "minLength": 1});
                json!({
                    "required": true,
                    "description": "a WebAssembly component of the prism:projection world, or a view file (docs/view-files.md) in YAML or JSON; told apart by the bytes, whatever the Content-Type",
                    "content": {
                        "application/wasm": {"schema": binary},
                        "application/octet-stream": {"schema": binary},
                        "application/yaml": {"schema": {"type": "string", "minLength": 1}},
                        "application/json": {"schema": schema::view_file()},
                    },
                })
            }
        }
    }
}

/// The OpenAPI 3.1 document of the route table, for a server with tokens
/// (`authenticated`: every non-public route says the scope it needs and
/// answers 401 and 403) or without (no security at all).
pub fn document(authenticated: bool) -> Value {
    let mut paths = Map::new();
    for r in ROUTES {
        let parameters: Vec<Value> = r.params.iter().map(Param::openapi).collect();
        let mut responses = Map::new();
        for reply in r.replies {
            responses.insert(
                reply.status.to_string(),
                reply.content.openapi(reply.description),
            );
        }
        for (status, descriptions) in r.errors(authenticated) {
            let mut response = json!({
                "description": descriptions.join("; "),
                "content": {"application/json": {"schema": error_ref()}},
            });
            if status == 401 {
                response["headers"] = json!({"WWW-Authenticate": {
                    "required": true, "schema": {"type": "string"},
                }});
            }
            responses.insert(status.to_string(), response);
        }
        let mut operation = json!({
            "summary": r.summary,
            "operationId": operation_id(r),
            "parameters": parameters,
            "responses": responses,
            "x-prism-scope": r.scope,
        });
        if let Some(body) = &r.body {
            operation["requestBody"] = body.openapi();
        }
        if authenticated && r.scope != Scope::Public {
            operation["security"] = json!([{"bearer": [r.scope]}]);
        }
        let entry = paths.entry(r.path.to_string()).or_insert_with(|| json!({}));
        entry[r.method.to_lowercase()] = operation;
    }
    let mut components = json!({"schemas": schema::shared()});
    if authenticated {
        components["securitySchemes"] = json!({"bearer": {
            "type": "http",
            "scheme": "bearer",
            "description": "a token of the server's configuration; its scopes (read, write, admin) decide what it may do",
        }});
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Prism",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Append events, manage projection plugins, read views. Errors are {\"error\":{\"code\",\"message\"}}, with more fields where they help.",
        },
        "paths": paths,
        "components": components,
    })
}

/// `getStreamsStreamEvents`, `deletePluginsNameCandidate`: unique, from the
/// method and the path's fixed segments and parameters.
fn operation_id(r: &Route) -> String {
    let mut id = r.method.to_lowercase();
    for word in r.path.split(['/', '{', '}', '-', '_', '.']) {
        let mut chars = word.chars();
        if let Some(first) = chars.next() {
            id.push(first.to_ascii_uppercase());
            id.extend(chars);
        }
    }
    id
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::routes::{ROUTES, Scope};

    #[test]
    fn security_is_documented_only_for_a_server_with_tokens() {
        let open = document(false);
        assert!(open["components"].get("securitySchemes").is_none());
        let guarded = document(true);
        assert_eq!(
            guarded["components"]["securitySchemes"]["bearer"]["scheme"],
            "bearer"
        );
        for r in ROUTES {
            let method = r.method.to_lowercase();
            let without = &open["paths"][r.path][&method];
            let with = &guarded["paths"][r.path][&method];
            assert!(without.get("security").is_none(), "{method} {}", r.path);
            assert!(
                without["responses"].get("401").is_none(),
                "{method} {}",
                r.path
            );
            if r.scope == Scope::Public {
                assert!(with.get("security").is_none(), "{method} {}", r.path);
            } else {
                assert_eq!(with["security"], json!([{"bearer": [r.scope]}]));
                assert!(with["responses"]["401"].is_object(), "{method} {}", r.path);
                assert!(with["responses"]["403"].is_object(), "{method} {}", r.path);
            }
        }
    }

    #[test]
    fn operation_ids_are_unique() {
        let ids: std::collections::HashSet<String> = ROUTES.iter().map(operation_id).collect();
        assert_eq!(ids.len(), ROUTES.len());
        assert_eq!(
            operation_id(&ROUTES[0]),
            "postStreamsStreamEvents",
            "from the method and the path"
        );
    }
}
