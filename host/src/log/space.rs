//! Whether appends are being stored or refused for lack of disk space: the
//! state the writer keeps, and the report `/healthz` shows.

use serde::Serialize;

use crate::storage::space::RESUME_FREE_BYTES;

/// Why appends are refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shortage {
    /// Less than the configured minimum is free; RocksDB itself is fine.
    /// Appends go on as soon as the minimum is free again.
    BelowMinimum,
    /// RocksDB ran out of space and stopped taking writes (views' too). It
    /// resumes by itself once [`RESUME_FREE_BYTES`] are free.
    DiskFull,
}

/// Whether appends are being stored. Only the writer changes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendState {
    Accepting,
    Refusing {
        /// When the first append was refused (ms since the Unix epoch).
        since_ms: u64,
        why: Shortage,
    },
}

impl AppendState {
    /// The state after `why` was found: the first refusal sets `since_ms`;
    /// later ones keep it, and a full disk outranks a low one.
    pub(super) fn refusing(self, why: Shortage, now_ms: u64) -> AppendState {
        match self {
            AppendState::Accepting => AppendState::Refusing {
                since_ms: now_ms,
                why,
            },
            AppendState::Refusing { since_ms, why: old } => AppendState::Refusing {
                since_ms,
                why: if old == Shortage::DiskFull { old } else { why },
            },
        }
    }
}

/// The storage part of `/healthz`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StorageHealth {
    /// `ok`, or `full` while appends are refused.
    pub state: &'static str,
    /// When appends started being refused (ms since the Unix epoch).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since_ms: Option<u64>,
    /// What is wrong and what brings appends back.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Free bytes on the database's filesystem, as RocksDB counts them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub free_bytes: Option<u64>,
    /// The free space at which appends are stored again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resumes_at_free_bytes: Option<u64>,
}

impl StorageHealth {
    pub fn is_full(&self) -> bool {
        self.state != "ok"
    }

    pub(super) fn new(state: AppendState, free_bytes: Option<u64>, min_free_bytes: u64) -> Self {
        let AppendState::Refusing { since_ms, why } = state else {
            return StorageHealth {
                state: "ok",
                since_ms: None,
                message: None,
                free_bytes,
                resumes_at_free_bytes: None,
            };
        };
        let (resumes_at, message) = match why {
            Shortage::BelowMinimum => (
                min_free_bytes,
                format!(
                    "less than {} is free on the database's disk (min_free_mb): appends are \
                     refused while reads and views go on; appends resume as soon as that much is free",
                    mib(min_free_bytes)
                ),
            ),
            Shortage::DiskFull => {
                let at = min_free_bytes.max(RESUME_FREE_BYTES);
                (
                    at,
                    format!(
                        "the database's disk ran out of space and RocksDB stopped writing: \
                         appends are refused while reads go on; they resume by themselves \
                         once {} is free",
                        mib(at)
                    ),
                )
            }
        };
        StorageHealth {
            state: "full",
            since_ms: Some(since_ms),
            message: Some(message),
            free_bytes,
            resumes_at_free_bytes: Some(resumes_at),
        }
    }
}

fn mib(bytes: u64) -> String {
    format!("{} MiB", bytes.div_ceil(1 << 20))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_disk_outranks_a_low_one_and_the_first_refusal_is_kept() {
        let low = AppendState::Accepting.refusing(Shortage::BelowMinimum, 10);
        let full = low.refusing(Shortage::DiskFull, 20);
        assert_eq!(
            full,
            AppendState::Refusing {
                since_ms: 10,
                why: Shortage::DiskFull
            }
        );
        assert_eq!(full.refusing(Shortage::BelowMinimum, 30), full);
    }

    #[test]
    fn health_says_when_appends_resume() {
        let ok = StorageHealth::new(AppendState::Accepting, Some(5), 64 << 20);
        assert!(!ok.is_full());
        assert_eq!(
            serde_json::to_value(&ok).unwrap(),
            serde_json::json!({"state": "ok", "free_bytes": 5})
        );
        let state = AppendState::Refusing {
            since_ms: 7,
            why: Shortage::DiskFull,
        };
        let full = StorageHealth::new(state, Some(0), 0);
        assert!(full.is_full());
        assert_eq!(full.since_ms, Some(7));
        assert_eq!(full.resumes_at_free_bytes, Some(RESUME_FREE_BYTES));
        assert!(full.message.unwrap().contains("64 MiB"));
    }
}
