//! Comparing a candidate with the serving generation before it serves.
//!
//! A fair comparison needs both views to reflect exactly the same events.
//! Both projectors are held at one log position (they apply nothing past
//! it), the position both reach once held; the two keyspaces are then
//! walked side by side, and the holds are released whatever happens.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use super::{Generation, PluginError};
use crate::log::{EventLog, Position};
use crate::projector::State;

/// Longest wait for both generations to reach the common position.
const SETTLE: Duration = Duration::from_secs(30);
/// Largest sample of each kind of difference.
pub const MAX_SAMPLE: usize = 100;

/// Counts of differences and a bounded sample of each.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DiffReport {
    /// The log position both generations had applied when compared.
    pub position: Position,
    pub serving: String,
    pub candidate: String,
    /// Keys only the candidate has.
    pub added: u64,
    /// Keys only the serving generation has.
    pub removed: u64,
    /// Keys both have, with documents that differ.
    pub changed: u64,
    pub unchanged: u64,
    pub samples: Samples,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Samples {
    pub added: Vec<Value>,
    pub removed: Vec<Value>,
    pub changed: Vec<Value>,
}

/// Releases the holds when the comparison ends, however it ends.
struct Held<'a>(&'a [&'a Arc<Generation>]);

impl Drop for Held<'_> {
    fn drop(&mut self) {
        for g in self.0 {
            g.hold_at(None);
        }
    }
}

fn document(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or(Value::Null)
}

pub async fn compare(
    serving: &Arc<Generation>,
    candidate: &Arc<Generation>,
    log: &EventLog,
    sample: usize,
) -> Result<DiffReport, PluginError> {
    let sample = sample.min(MAX_SAMPLE);
    if candidate.state() != State::Live {
        return Err(PluginError::Conflict(format!(
            "the candidate is {} at position {} of {}; compare it once it has caught up",
            candidate.state().as_str(),
            candidate.position(),
            log.head()
        )));
    }
    let both = [serving, candidate];
    let _held = Held(&both);
    let deadline = tokio::time::Instant::now() + SETTLE;
    // A batch already in flight when the hold is set may pass it: raise
    // the hold to where that batch ended until both stand still on it.
    let mut target = serving.position().max(candidate.position());
    loop {
        for g in both {
            g.hold_at(Some(target));
        }
        for g in both {
            let mut progress = g.progress();
            let reached = tokio::time::timeout_at(
                deadline,
                progress.wait_for(|p| p.position >= target || p.ended),
            )
            .await;
            if !matches!(reached, Ok(Ok(_))) || g.state() == State::Failed {
                return Err(PluginError::Conflict(format!(
                    "generation {} did not reach position {target} (it is {} at {})",
                    g.hash().short(),
                    g.state().as_str(),
                    g.position()
                )));
            }
        }
        let highest = serving.position().max(candidate.position());
        if serving.position() == candidate.position() {
            break;
        }
        target = highest;
    }
    let (ours, theirs) = (serving.keyspace().clone(), candidate.keyspace().clone());
    let mut report = DiffReport {
        position: target,
        serving: serving.hash().to_string(),
        candidate: candidate.hash().to_string(),
        ..DiffReport::default()
    };
    let report = tokio::task::spawn_blocking(move || {
        ours.compare(&theirs, |key, old, new| {
            match (old, new) {
                (Some(old), Some(new)) if old == new || document(old) == document(new) => {
                    report.unchanged += 1
                }
                (Some(old), Some(new)) => {
                    report.changed += 1;
                    if report.samples.changed.len() < sample {
                        report.samples.changed.push(serde_json::json!({
                            "key": key, "serving": document(old), "candidate": document(new),
                        }));
                    }
                }
                (None, Some(new)) => {
                    report.added += 1;
                    if report.samples.added.len() < sample {
                        report
                            .samples
                            .added
                            .push(serde_json::json!({"key": key, "candidate": document(new)}));
                    }
                }
                (Some(old), None) => {
                    report.removed += 1;
                    if report.samples.removed.len() < sample {
                        report
                            .samples
                            .removed
                            .push(serde_json::json!({"key": key, "serving": document(old)}));
                    }
                }
                (None, None) => {}
            }
            true
        })
        .map(|()| report)
    })
    .await
    .map_err(|e| PluginError::Internal(e.to_string()))??;
    Ok(report)
}
