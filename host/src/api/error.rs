//! API errors: every failure a client can cause or see, as
//! `{"error":{"code","message"}}` with the right status code.

use axum::Json;
use axum::http::StatusCode;
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
    /// Seconds after which a retry may succeed (`Retry-After`).
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            details: Map::new(),
            retry_after: None,
        }
    }

    pub fn retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
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
        e.retry_after = Some(STORAGE_RETRY_AFTER_SECS);
        e
    }

    /// A failure of the server itself. Its text (storage errors, file paths)
    /// is for the operator, not the client: it is logged with a short
    /// reference, and the client gets only the reference to quote.
    pub fn internal(e: impl std::fmt::Display) -> Self {
        let reference = uuid::Uuid::new_v4().simple().to_string()[..8].to_string();
        tracing::error!(reference = %reference, error = %e, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("internal error; reference {reference}"),
        )
        .with("reference", json!(reference))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut error = self.details;
        error.insert("code".into(), json!(self.code));
        error.insert("message".into(), json!(self.message));
        let mut response = (self.status, Json(json!({ "error": error }))).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, seconds.into());
        }
        response
    }
}

impl From<LogError> for ApiError {
    fn from(e: LogError) -> Self {
        match e {
            LogError::Invalid(m) => ApiError::bad_request("invalid_request", m),
            LogError::InvalidJson {
                index,
                field,
                ref problem,
            } => {
                let path = problem.path.clone();
                ApiError::bad_request("invalid_event", e.to_string())
                    .with("event_index", json!(index))
                    .with("field", json!(field))
                    .with("path", json!(path))
            }
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
            LogError::Unavailable(m) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "log_unavailable",
                format!(
                    "the replicated log cannot take appends now ({m}); retry with the same \
                     event ids: an append that was stored is recognised by them"
                ),
            )
            .retry_after(2),
            LogError::Storage(e) => e.into(),
            LogError::Io(e) => ApiError::internal(e),
        }
    }
}

impl From<PluginError> for ApiError {
    fn from(e: PluginError) -> Self {
        match e {
            PluginError::Unknown(name) => ApiError::unknown_plugin(&name),
            PluginError::Invalid(m) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_plugin", m)
            }
            PluginError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, "conflict", m),
            PluginError::Io(e) => ApiError::internal(e),
            PluginError::Storage(e) => e.into(),
            PluginError::Internal(m) => ApiError::internal(m),
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

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use super::*;

    /// Everything logged while `f` runs.
    fn logged(f: impl FnOnce()) -> String {
        #[derive(Clone, Default)]
        struct Captured(Arc<Mutex<Vec<u8>>>);
        impl Write for Captured {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().write(buf)
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, f);
        String::from_utf8(captured.0.lock().unwrap().clone()).unwrap()
    }

    async fn body_of(response: Response) -> Value {
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn internal_errors_answer_a_reference_and_log_the_detail() {
        let cause = std::io::Error::other("open /var/lib/prism/db/000042.sst: disk on fire");
        let mut error = None;
        let log = logged(|| error = Some(ApiError::internal(cause)));
        let response = error.unwrap().into_response();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = body_of(response).await;
        assert_eq!(body["error"]["code"], "internal");
        let reference = body["error"]["reference"].as_str().unwrap().to_string();
        assert_eq!(reference.len(), 8, "{reference}");
        assert!(reference.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(
            body["error"]["message"],
            format!("internal error; reference {reference}")
        );
        assert!(!body.to_string().contains("/var/lib"), "{body}");
        assert!(log.contains(&reference), "{log}");
        assert!(
            log.contains("/var/lib/prism/db/000042.sst: disk on fire"),
            "{log}"
        );

        let other = body_of(ApiError::internal("again").into_response()).await;
        assert_ne!(other["error"]["reference"], reference, "unique per error");
    }
}
