//! Views as a document store: `GET /views/{plugin}/_find` (queries over a
//! secondary index, or a scan of a small view) and `POST
//! /views/{plugin}/_bulk_get` (many documents in one answer).
//!
//! Both read one RocksDB snapshot, so an answer is the view at exactly one
//! log position, the one its `Prism-Position` names. A `_find` that has
//! more pages keeps its snapshot (a walk, see `views::snapshot`) and its
//! cursor names it: every page of one walk reads the same position, so a
//! document changed while a client pages is listed once, as it was when the
//! walk began, never twice and never missed.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::AppState;
use super::body::{JsonBody, Params, Path};
use super::error::ApiError;
use super::views::{Consistency, Served, serving, stamp};
use crate::log::Position;
use crate::views::find::{FindError, Page, Query, SMALL_VIEW};
use crate::views::{MAX_KEY_BYTES, ViewSnapshot};

/// Most keys of one `_bulk_get`.
pub const MAX_BULK_KEYS: usize = 1000;
/// Most document bytes one `_bulk_get` answers with.
pub const MAX_BULK_BYTES: usize = 32 << 20;

impl From<FindError> for ApiError {
    fn from(e: FindError) -> ApiError {
        match e {
            FindError::Invalid { code, message } => ApiError::bad_request(code, message),
            FindError::Expired => ApiError::new(StatusCode::GONE, "cursor_expired", e.to_string()),
            FindError::Storage(e) => e.into(),
        }
    }
}

/// A cursor: the walk it belongs to and where the last page ended.
fn parse_cursor(text: &str) -> Result<(u64, Vec<u8>), ApiError> {
    let bytes = hex::decode(text).ok().filter(|b| b.len() > 8);
    let bytes = bytes.ok_or_else(|| {
        ApiError::bad_request(
            "invalid_cursor",
            "the cursor is not one this server gave out",
        )
    })?;
    let (id, at) = bytes.split_at(8);
    Ok((
        u64::from_be_bytes(id.try_into().expect("8 bytes")),
        at.to_vec(),
    ))
}

fn cursor(walk: u64, at: &[u8]) -> String {
    let mut bytes = walk.to_be_bytes().to_vec();
    bytes.extend_from_slice(at);
    hex::encode(bytes)
}

/// What one `_find` page read, and from which walk.
struct Answer {
    page: Page,
    position: Position,
    generation: String,
    walk: Option<u64>,
}

/// `GET /views/{plugin}/_find`.
pub async fn find(
    State(state): State<AppState>,
    Path(plugin): Path<String>,
    Params(params): Params<Vec<(String, String)>>,
    Params(c): Params<Consistency>,
) -> Result<Response, Response> {
    let resume = params
        .iter()
        .rev()
        .find(|(n, _)| n == "cursor")
        .map(|(_, v)| parse_cursor(v))
        .transpose()
        .map_err(IntoResponse::into_response)?;
    let served = serving(&state, &plugin, &c).await?;
    let fail = |e: ApiError| served.error(e);
    let described = served.generation.described().ok_or_else(|| {
        fail(
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "plugin_loading",
                format!(
                    "plugin {plugin:?} is still loading; its indexes answer once it has loaded"
                ),
            )
            .retry_after(1),
        )
    })?;
    let query = Query::parse(&params, &described.indexes).map_err(|e| fail(e.into()))?;
    let count = query.count;
    let indexes: Vec<String> = described.indexes.iter().map(|i| i.name.clone()).collect();
    let keyspace = served.generation.keyspace().clone();
    let generation = served.generation.hash().to_string();
    let family_prefix = crate::views::family_name(&plugin, "");
    let started = std::time::Instant::now();
    let answer = tokio::task::spawn_blocking(move || -> Result<Answer, ApiError> {
        let (snapshot, generation, walk, after) = match resume {
            Some((walk, after)) => {
                let (snapshot, generation) =
                    keyspace.resume_walk(walk).ok_or(FindError::Expired)?;
                if !snapshot.keyspace().family().starts_with(&family_prefix) {
                    return Err(ApiError::bad_request(
                        "invalid_cursor",
                        "the cursor belongs to another view",
                    ));
                }
                (snapshot, generation, Some(walk), Some(after))
            }
            None => {
                let documents = keyspace.estimated_documents();
                if query.index.is_none() && !query.scan && documents > SMALL_VIEW {
                    return Err(ApiError::bad_request(
                        "index_required",
                        format!(
                            "the view holds about {documents} documents: query it through an index \
                             (index=NAME; it has: {}), or scan it with scan=true (each page reads \
                             at most {} documents)",
                            if indexes.is_empty() {
                                "none".to_string()
                            } else {
                                indexes.join(", ")
                            },
                            crate::views::find::SCAN_BUDGET
                        ),
                    ));
                }
                (keyspace.snapshot(), generation, None, None)
            }
        };
        let page = crate::views::find::run(&snapshot, &query, after.as_deref())?;
        let position = snapshot.position()?;
        let walk = match (&page.next, walk) {
            (Some(_), None) => Some(snapshot.keyspace().pin_walk(&snapshot, &generation)),
            (_, walk) => walk,
        };
        Ok(Answer {
            page,
            position,
            generation,
            walk,
        })
    })
    .await
    .map_err(|e| fail(ApiError::internal(e)))?
    .map_err(fail)?;
    state.metrics.query_latency(started.elapsed());
    Ok(respond(&served, &answer, count))
}

/// The page as JSON, stamped with the position and generation it was read at.
fn respond(served: &Served, answer: &Answer, count: bool) -> Response {
    let page = &answer.page;
    let mut body = String::with_capacity(
        64 + page
            .items
            .iter()
            .map(|(k, v)| k.len() + v.len() + 24)
            .sum::<usize>(),
    );
    if count {
        body.push_str(&format!("{{\"count\":{}", page.count));
    } else {
        body.push_str("{\"items\":[");
        for (i, (key, value)) in page.items.iter().enumerate() {
            if i > 0 {
                body.push(',');
            }
            body.push_str("{\"key\":");
            body.push_str(&serde_json::to_string(key).expect("strings serialize"));
            body.push_str(",\"value\":");
            body.push_str(value);
            body.push('}');
        }
        body.push(']');
    }
    if let (Some(next), Some(walk)) = (&page.next, answer.walk) {
        body.push_str(&format!(",\"cursor\":\"{}\"", cursor(walk, next)));
    }
    if page.budget_reached {
        body.push_str(",\"scan_budget_reached\":true");
    }
    body.push('}');
    let mut response = super::views::document(body);
    stamp(
        response.headers_mut(),
        answer.position,
        &answer.generation,
        served.generation.state().as_str(),
    );
    response
}

#[derive(Deserialize)]
pub struct BulkGet {
    keys: Vec<String>,
}

/// `POST /views/{plugin}/_bulk_get` with `{"keys": [...]}`: the documents
/// in request order, `{"key","value"}` or `{"key","error":"not_found"}`
/// (the rows of CouchDB's `_all_docs` with keys).
pub async fn bulk_get(
    State(state): State<AppState>,
    Path(plugin): Path<String>,
    Params(c): Params<Consistency>,
    JsonBody(request): JsonBody<BulkGet>,
) -> Result<Response, Response> {
    let keys = request.keys;
    if keys.len() > MAX_BULK_KEYS {
        return Err(ApiError::bad_request(
            "too_many_keys",
            format!("at most {MAX_BULK_KEYS} keys at once, not {}", keys.len()),
        )
        .into_response());
    }
    if let Some((i, key)) = keys
        .iter()
        .enumerate()
        .find(|(_, k)| k.is_empty() || k.len() > MAX_KEY_BYTES)
    {
        return Err(ApiError::bad_request(
            "invalid_key",
            format!(
                "keys[{i}] ({} bytes): keys are 1 to {MAX_KEY_BYTES} bytes",
                key.len()
            ),
        )
        .into_response());
    }
    let served = serving(&state, &plugin, &c).await?;
    let fail = |e: ApiError| served.error(e);
    let keyspace = served.generation.keyspace().clone();
    let started = std::time::Instant::now();
    let (docs, position) = tokio::task::spawn_blocking(move || -> Result<_, ApiError> {
        let snapshot: ViewSnapshot = keyspace.snapshot();
        let mut docs = Vec::with_capacity(keys.len());
        let mut bytes = 0usize;
        for chunk in keys.chunks(256) {
            for (key, doc) in chunk.iter().zip(snapshot.get_many(chunk)?) {
                bytes += doc.as_ref().map_or(0, String::len);
                if bytes > MAX_BULK_BYTES {
                    return Err(ApiError::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "response_too_large",
                        format!(
                            "the documents asked for come to more than {} MiB: ask for fewer keys at once",
                            MAX_BULK_BYTES >> 20
                        ),
                    ));
                }
                docs.push((key.clone(), doc));
            }
        }
        Ok((docs, snapshot.position()?))
    })
    .await
    .map_err(|e| fail(ApiError::internal(e)))?
    .map_err(fail)?;
    state.metrics.query_latency(started.elapsed());
    let mut body = String::from("{\"rows\":[");
    for (i, (key, doc)) in docs.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        body.push_str("{\"key\":");
        body.push_str(&serde_json::to_string(key).expect("strings serialize"));
        match doc {
            Some(doc) => {
                body.push_str(",\"value\":");
                body.push_str(doc);
            }
            None => body.push_str(",\"error\":\"not_found\""),
        }
        body.push('}');
    }
    body.push_str("]}");
    let served = Served {
        generation: served.generation.clone(),
        position,
    };
    Ok(served.respond(super::views::document(body)))
}
