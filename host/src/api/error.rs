//! API errors: every failure a client can cause or see, as
//! `{"error":{"code","message"}}` with the right status code.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use crate::log::LogError;
use crate::plugins::PluginError;
use crate::storage::StorageError;

/// `Retry-After` of a `storage_full` answer: RocksDB checks every 5 s
/// whether it can write again, the log writer every second.
pub const STORAGE_RETRY_AFTER_SECS: u64 = 5;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Extra fields inside `error` (e.g. `current_version` on a conflict).
    pub details: Map<String, Value>,
    /// Seconds after which trying again makes sense (`Retry-After`).
    pub retry_after_secs: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            details: Map::new(),
            retry_after_secs: None,
        }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn unknown_plugin(name: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "unknown_plugin",
            format!("no plugin named {name:?} is loaded"),
        )
    }

    pub fn with(mut self, key: &str, value: Value) -> Self {
        self.details.insert(key.to_string(), value);
        self
    }

    /// 507 Insufficient Storage (RFC 4918 §11.5) rather than 503: the request
    /// is fine and the server is up — reads go on — but it cannot store this
    /// write now. A 503 tells load balancers and generic clients that the
    /// whole server is unavailable. `Retry-After` still says when to try again.
    pub fn storage_full() -> Self {
        let mut e = Self::new(
            StatusCode::INSUFFICIENT_STORAGE,
            "storage_full",
            "the server's disk is full: nothing was appended; appends resume by themselves \
             once space is freed (GET /healthz says when)",
        );
        e.retry_after_secs = Some(STORAGE_RETRY_AFTER_SECS);
        e
    }

    pub fn internal(e: impl std::fmt::Display) -> Self {
        tracing::error!(error = %e, "internal error");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut error = self.details;
        error.insert("code".into(), json!(self.code));
        error.insert("message".into(), json!(self.message));
        let mut response = (self.status, Json(json!({ "error": error }))).into_response();
        if let Some(secs) = self.retry_after_secs {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

impl From<LogError> for ApiError {
    fn from(e: LogError) -> Self {
        match e {
            LogError::Invalid(m) => ApiError::bad_request("invalid_request", m),
            LogError::WrongExpectedVersion { current, .. } => {
                let message = e.to_string();
                ApiError::new(StatusCode::CONFLICT, "wrong_expected_version", message)
                    .with("current_version", json!(current.map(|v| v.0)))
            }
            LogError::IdempotencyConflict(m) => {
                ApiError::new(StatusCode::CONFLICT, "idempotency_conflict", m)
            }
            LogError::ShuttingDown => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "shutting_down",
                "the server is shutting down",
            ),
            LogError::Storage(e) => e.into(),
            LogError::Io(e) => ApiError::internal(e),
        }
    }
}

impl From<PluginError> for ApiError {
    fn from(e: PluginError) -> Self {
        match e {
            PluginError::InvalidName(m) => ApiError::bad_request("invalid_plugin_name", m),
            PluginError::Unknown(name) => ApiError::unknown_plugin(&name),
            PluginError::Invalid(m) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_plugin", m)
            }
            PluginError::Io(e) => ApiError::internal(e),
            PluginError::Storage(e) => e.into(),
        }
    }
}

impl From<StorageError> for ApiError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::Full => ApiError::storage_full(),
            e => ApiError::internal(e),
        }
    }
}
