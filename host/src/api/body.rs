//! Extractors with JSON errors instead of axum's plain-text rejections:
//! request bodies read within the configured size limit, query parameters
//! and path segments.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use super::error::ApiError;

/// The raw body; over the limit it is a 413 `body_too_large`.
pub struct Body(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for Body {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        Bytes::from_request(req, state)
            .await
            .map(Body)
            .map_err(|rejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "body_too_large",
                        "the request body is larger than the server accepts",
                    )
                } else {
                    ApiError::bad_request("invalid_body", rejection.body_text())
                }
            })
    }
}

/// A JSON object body: 400 `invalid_json` when it does not parse, 400
/// `invalid_request` when it parses but has the wrong shape. Every body the
/// API takes is an object, and one of another kind is refused as such
/// first: serde would read an array as the object's fields in order, and
/// `[{"type": …}]` sent for `{"events": [{"type": …}]}` would be refused
/// for wanting a sequence where it found a map.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let Body(bytes) = Body::from_request(req, state).await?;
        let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
        if let Some(kind) = first.and_then(|b| not_an_object(*b))
            && serde_json::from_slice::<serde::de::IgnoredAny>(&bytes).is_ok()
        {
            return Err(ApiError::bad_request(
                "invalid_request",
                format!("the body must be a JSON object, not {kind}"),
            ));
        }
        serde_json::from_slice(&bytes).map(JsonBody).map_err(|e| {
            if e.is_data() {
                ApiError::bad_request("invalid_request", e.to_string())
            } else {
                ApiError::bad_request("invalid_json", format!("the body is not valid JSON: {e}"))
            }
        })
    }
}

/// What a JSON value starting with `first` is, unless it is an object.
fn not_an_object(first: u8) -> Option<&'static str> {
    match first {
        b'{' => None,
        b'[' => Some("an array"),
        b'"' => Some("a string"),
        b't' | b'f' => Some("a boolean"),
        b'n' => Some("null"),
        _ => Some("a number"),
    }
}

/// Query-string parameters; a malformed one is a 400 `invalid_parameter`.
pub struct Params<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> axum::extract::FromRequestParts<S> for Params<T> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| Params(q.0))
            .map_err(|e| ApiError::bad_request("invalid_parameter", e.body_text()))
    }
}

/// Path segments; one that does not decode (invalid UTF-8 after
/// percent-decoding, such as `%FF`) is a 400 `invalid_path`.
pub struct Path<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> axum::extract::FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, ApiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| Path(p.0))
            .map_err(|e| match e.status() {
                StatusCode::INTERNAL_SERVER_ERROR => ApiError::internal(e.body_text()),
                _ => ApiError::bad_request("invalid_path", e.body_text()),
            })
    }
}

/// A page size from the query string: `default` when absent, at most `max`,
/// and 400 `invalid_limit` for 0.
pub fn page_limit(limit: Option<usize>, default: usize, max: usize) -> Result<usize, ApiError> {
    match limit {
        None => Ok(default),
        Some(0) => Err(ApiError::bad_request(
            "invalid_limit",
            "limit must be at least 1",
        )),
        Some(n) => Ok(n.min(max)),
    }
}
