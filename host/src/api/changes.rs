//! `GET /views/{plugin}/_changes`: a view's key changes as server-sent
//! events, resumable.
//!
//! Each change has an id `P.I@K`: the log position `P` of the commit that
//! applied it, its index `I` in that commit, and the keyspace `K` of the
//! generation. A client resumes with the `Last-Event-ID` header (browsers
//! send it on reconnect) or `since=P` (changes of commits after position
//! `P`), as far back as the view's change log reaches. Beyond it, or from
//! another generation, the stream starts with a `reset` event: re-read the
//! view at the position it names, then apply the changes that follow. When
//! a new generation takes over, a `generation` event says the same. The
//! stream reads the change log from the store page by page, so a slow
//! client costs a cursor, never a buffer, and never slows the projector.
//!
//! Events: `open` (where the stream starts), `change` (`{"key","value"}` or
//! `{"key","deleted":true}`), `reset`, `generation`.

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures::Stream;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::AppState;
use super::body::{Params, Path};
use super::error::ApiError;
use super::views::{plugin_name, unavailable};
use crate::log::Position;
use crate::plugins::{Generation, PluginName};
use crate::views::{ChangeId, StoredChange};

/// Changes read from the store at a time.
const PAGE: usize = 256;
/// Events buffered per client before the reader waits for it.
const BUFFER: usize = 64;

#[derive(Deserialize)]
pub struct ChangesQuery {
    /// Resume after the commit at this log position.
    since: Option<u64>,
}

/// Where a client asks to resume: a change, and the keyspace it came from.
struct Resume {
    after: ChangeId,
    keyspace: Option<String>,
}

fn parse_last_event_id(text: &str) -> Option<Resume> {
    let (id, keyspace) = text.split_once('@')?;
    let (position, index) = id.split_once('.')?;
    Some(Resume {
        after: ChangeId {
            position: Position(position.parse().ok()?),
            index: index.parse().ok()?,
        },
        keyspace: Some(keyspace.to_string()),
    })
}

fn event_id(id: ChangeId, keyspace: &str) -> String {
    format!("{id}@{keyspace}")
}

pub async fn feed(
    State(state): State<AppState>,
    Path(plugin): Path<String>,
    headers: HeaderMap,
    Params(q): Params<ChangesQuery>,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    let name = plugin_name(&plugin)?;
    let generation = state
        .plugins
        .serving(&name)
        .map_err(|why| unavailable(&plugin, why))?;
    let resume = match headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
    {
        Some(text) => Some(parse_last_event_id(text).ok_or_else(|| {
            ApiError::bad_request(
                "invalid_last_event_id",
                format!("Last-Event-ID {text:?} is not an id this server gave out (P.I@KEYSPACE)"),
            )
        })?),
        None => q.since.map(|p| Resume {
            after: ChangeId::after_position(Position(p)),
            keyspace: None,
        }),
    };
    let (tx, rx) = mpsc::channel(BUFFER);
    tokio::spawn(async move {
        let feed = Feed { state, name, tx };
        // Ends when the client goes away (a send fails) or the plugin does.
        let _ = feed.run(generation, resume).await;
    });
    Ok(Sse::new(ReceiverStream::new(rx)).keep_alive(KeepAlive::default()))
}

/// The client went away.
struct Gone;

struct Feed {
    state: AppState,
    name: PluginName,
    tx: mpsc::Sender<Result<SseEvent, Infallible>>,
}

impl Feed {
    async fn send(&self, event: SseEvent) -> Result<(), Gone> {
        self.tx.send(Ok(event)).await.map_err(|_| Gone)
    }

    async fn notice(
        &self,
        kind: &str,
        generation: &Generation,
        position: Position,
        message: &str,
    ) -> Result<(), Gone> {
        let data = json!({
            "generation": generation.hash().as_str(),
            "keyspace": generation.record().keyspace,
            "position": position,
            "message": message,
        });
        self.send(SseEvent::default().event(kind).data(data.to_string()))
            .await
    }

    /// Where the change log of `generation` starts (blocking read, off the workers).
    async fn log_start(generation: &Arc<Generation>) -> Option<ChangeId> {
        let keyspace = generation.keyspace().clone();
        tokio::task::spawn_blocking(move || keyspace.change_log_start())
            .await
            .ok()
            .and_then(Result::ok)
            .flatten()
    }

    async fn run(
        self,
        mut generation: Arc<Generation>,
        resume: Option<Resume>,
    ) -> Result<(), Gone> {
        let here = generation.position();
        let start = Self::log_start(&generation).await;
        let mut cursor = match resume {
            None => {
                let data = json!({
                    "generation": generation.hash().as_str(),
                    "keyspace": generation.record().keyspace,
                    "position": here,
                    "resumable_from": start.map(|s| s.position),
                });
                self.send(SseEvent::default().event("open").data(data.to_string()))
                    .await?;
                ChangeId::after_position(here)
            }
            Some(r) => {
                let same_generation = r
                    .keyspace
                    .as_ref()
                    .is_none_or(|k| *k == generation.record().keyspace);
                match start {
                    Some(start)
                        if same_generation && r.after >= start && r.after.position <= here =>
                    {
                        r.after
                    }
                    _ => {
                        let why = if !same_generation {
                            "that id belongs to another generation of this view"
                        } else if r.after.position > here {
                            "that position is ahead of the view"
                        } else {
                            "the view's change log does not reach back that far"
                        };
                        let message = format!(
                            "{why}: re-read the view at this position, then apply the changes that follow"
                        );
                        self.notice("reset", &generation, here, &message).await?;
                        ChangeId::after_position(here)
                    }
                }
            }
        };
        let mut recording = start.is_some();
        loop {
            let mut progress = generation.progress();
            let upto = progress.borrow().position;
            if !recording && let Some(start) = Self::log_start(&generation).await {
                // The view has caught up and records from here on.
                recording = true;
                let at = start.position;
                self.notice("reset", &generation, at, "the view has caught up: re-read it at this position, then apply the changes that follow")
                    .await?;
                cursor = ChangeId::after_position(at);
            }
            if recording {
                if Self::log_start(&generation)
                    .await
                    .is_some_and(|s| cursor < s)
                {
                    self.notice("reset", &generation, upto, "this client fell behind the view's change log: re-read the view at this position")
                        .await?;
                    cursor = ChangeId::after_position(upto);
                }
                let keyspace = generation.keyspace().clone();
                let page =
                    tokio::task::spawn_blocking(move || keyspace.changes_after(cursor, PAGE))
                        .await
                        .ok()
                        .and_then(Result::ok)
                        .unwrap_or_default();
                let full = page.len() == PAGE;
                for change in page {
                    cursor = change.id;
                    self.send(change_event(&change, &generation.record().keyspace))
                        .await?;
                }
                if full {
                    continue;
                }
            }
            // Everything up to `upto` is sent: wait for the next commit, or
            // for this generation to stop serving.
            let ended = progress
                .wait_for(|p| p.position > upto || p.ended)
                .await
                .map(|p| p.ended)
                .unwrap_or(true);
            if ended {
                let Ok(next) = self.state.plugins.serving(&self.name) else {
                    return Ok(());
                };
                if Arc::ptr_eq(&next, &generation) {
                    continue;
                }
                generation = next;
                let at = generation.position();
                self.notice("generation", &generation, at, "a new generation serves this view: re-read it at this position, then apply the changes that follow")
                    .await?;
                recording = Self::log_start(&generation).await.is_some();
                cursor = ChangeId::after_position(at);
            }
        }
    }
}

fn change_event(change: &StoredChange, keyspace: &str) -> SseEvent {
    let data = match &change.value {
        Some(v) => json!({
            "key": change.key,
            "value": serde_json::from_str::<Value>(v).unwrap_or(Value::Null),
        }),
        None => json!({ "key": change.key, "deleted": true }),
    };
    SseEvent::default()
        .id(event_id(change.id, keyspace))
        .event("change")
        .data(data.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_ids_round_trip() {
        let id = ChangeId {
            position: Position(42),
            index: 3,
        };
        let text = event_id(id, "abc-123");
        assert_eq!(text, "42.3@abc-123");
        let back = parse_last_event_id(&text).unwrap();
        assert_eq!(back.after, id);
        assert_eq!(back.keyspace.as_deref(), Some("abc-123"));
        assert!(parse_last_event_id("42").is_none());
    }
}
