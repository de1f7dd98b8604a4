//! One generation of a plugin: a compiled file, its keyspace, its projector
//! thread, and a separate instance for queries.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use serde::Serialize;
use tokio::sync::{broadcast, watch};

use crate::log::{EventLog, Position};
use crate::projector::{
    CommittedChanges, Projector, ProjectorConfig, ProjectorContext, State, Status, StatusReport,
};
use crate::runtime::bindings::{Description, QueryError};
use crate::runtime::view::ViewAccess;
use crate::runtime::{CallError, CompiledPlugin, PluginInstance, PluginLog, Runtime};
use crate::views::Keyspace;

/// What the plugin said about itself.
#[derive(Debug, Clone, Serialize)]
pub struct Described {
    pub name: String,
    pub version: String,
    pub event_types: Vec<String>,
    pub queries: Vec<String>,
}

impl From<Description> for Described {
    fn from(d: Description) -> Self {
        Described {
            name: d.name,
            version: d.version,
            event_types: d.event_types,
            queries: d.queries,
        }
    }
}

pub struct Generation {
    pub plugin: String,
    /// The content hash of the plugin file (hex SHA-256).
    pub generation: String,
    pub description: Described,
    pub keyspace: Keyspace,
    pub status: Arc<Status>,
    pub plugin_log: Arc<PluginLog>,
    /// The position the keyspace reflects.
    pub applied: watch::Receiver<Position>,
    pub changes: broadcast::Sender<Arc<CommittedChanges>>,
    pub config: ProjectorConfig,
    runtime: Runtime,
    compiled: CompiledPlugin,
    stop: watch::Sender<bool>,
    thread: Mutex<Option<JoinHandle<()>>>,
    /// Queries run one at a time on their own instance, never the projector's.
    query_instance: Mutex<Option<PluginInstance>>,
}

/// Why a query did not answer.
#[derive(Debug, thiserror::Error)]
pub enum QueryFailure {
    #[error("{0}")]
    Unknown(String),
    #[error("{0}")]
    InvalidParams(String),
    #[error("{0}")]
    Failed(String),
}

impl Generation {
    /// Start a generation: its projector begins at the keyspace's checkpoint.
    #[allow(clippy::too_many_arguments)]
    pub fn start(
        plugin: &str,
        generation: &str,
        description: Described,
        runtime: Runtime,
        compiled: CompiledPlugin,
        plugin_log: Arc<PluginLog>,
        log: EventLog,
        keyspace: Keyspace,
        config: ProjectorConfig,
        rt: tokio::runtime::Handle,
    ) -> std::io::Result<Arc<Self>> {
        let checkpoint = keyspace.checkpoint().unwrap_or(Position::ZERO);
        let status = Arc::new(Status::new(checkpoint));
        let (applied_tx, applied_rx) = watch::channel(checkpoint);
        let (changes, _) = broadcast::channel(1024);
        let (stop_tx, stop_rx) = watch::channel(false);
        let wanted = (!description.event_types.is_empty()).then(|| {
            description
                .event_types
                .iter()
                .cloned()
                .collect::<HashSet<_>>()
        });
        let ctx = ProjectorContext {
            plugin: plugin.to_string(),
            runtime: runtime.clone(),
            compiled: compiled.clone(),
            log,
            keyspace: keyspace.clone(),
            config,
            status: status.clone(),
            plugin_log: plugin_log.clone(),
            applied: applied_tx,
            changes: changes.clone(),
            stop: stop_rx,
            wanted,
        };
        let thread = Projector::spawn(ctx, rt)?;
        Ok(Arc::new(Generation {
            plugin: plugin.to_string(),
            generation: generation.to_string(),
            description,
            keyspace,
            status,
            plugin_log,
            applied: applied_rx,
            changes,
            config,
            runtime,
            compiled,
            stop: stop_tx,
            thread: Mutex::new(Some(thread)),
            query_instance: Mutex::new(None),
        }))
    }

    /// Stop the projector and wait for its thread (blocking).
    pub fn stop(&self) {
        self.stop.send_replace(true);
        if let Some(thread) = self.thread.lock().expect("thread lock").take() {
            let _ = thread.join();
        }
    }

    pub fn state(&self) -> State {
        self.status.state()
    }

    pub fn report(&self, head: Position, stall_after: std::time::Duration) -> StatusReport {
        self.status.report(head, stall_after)
    }

    /// Run a named query (blocking: call from a blocking thread).
    pub fn query(&self, name: &str, params: &str) -> Result<String, QueryFailure> {
        let mut slot = self.query_instance.lock().expect("query lock");
        if slot.is_none() {
            let view = ViewAccess::new(self.keyspace.clone());
            let instance = self
                .runtime
                .instantiate(
                    &self.compiled,
                    view,
                    self.plugin_log.clone(),
                    self.config.limits,
                )
                .map_err(|e| QueryFailure::Failed(e.to_string()))?;
            *slot = Some(instance);
        }
        let instance = slot.as_mut().expect("just set");
        let answer = instance.query(name, params);
        if instance.nearly_full() {
            *slot = None;
        }
        match answer {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(QueryError::UnknownQuery(m))) => Err(QueryFailure::Unknown(m)),
            Ok(Err(QueryError::InvalidParams(m))) => Err(QueryFailure::InvalidParams(m)),
            Ok(Err(QueryError::Failed(m))) => Err(QueryFailure::Failed(m)),
            Err(CallError(m)) => {
                *slot = None;
                Err(QueryFailure::Failed(m))
            }
        }
    }
}
