//! One generation of a plugin: its keyspace, readable from the moment the
//! generation exists; its projection once loaded; the projector thread that
//! feeds the keyspace; and the bounded query slots that read it.

use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::{Semaphore, watch};

use super::names::PluginName;
use super::record::{ContentHash, GenRecord};
use crate::log::{EventLog, Position};
use crate::projector::{
    Described, ErrorReport, Progress, Projection, Projector, ProjectorConfig, ProjectorContext,
    ProjectorEvent, QueryFailure, State, Status, StatusReport,
};
use crate::runtime::PluginLog;
use crate::storage::StorageError;
use crate::views::{Keyspace, ViewStore};

/// How long a query waits for a free slot before it is answered `503`.
pub const QUERY_SLOT_WAIT: Duration = Duration::from_secs(1);

/// A running projector: the signal that stops it and its thread.
struct Run {
    stop: watch::Sender<bool>,
    thread: JoinHandle<()>,
}

pub struct Generation {
    plugin: PluginName,
    record: GenRecord,
    keyspace: Keyspace,
    status: Arc<Status>,
    plugin_log: Arc<PluginLog>,
    /// The position the keyspace reflects; readers wait on it.
    progress: Arc<watch::Sender<Progress>>,
    /// Set once the projection is loaded (compiled, described).
    projection: OnceLock<Arc<dyn Projection>>,
    run: Mutex<Option<Run>>,
    /// A position the projector must not pass (see `hold_at`).
    hold: watch::Sender<Option<Position>>,
    /// Queries running at once against this generation.
    query_slots: Arc<Semaphore>,
}

impl Generation {
    /// Open the generation's keyspace (creating it empty if new). It is
    /// readable at once; it is `loading` until a projection is attached.
    pub fn open(
        plugin: &PluginName,
        record: GenRecord,
        views: &ViewStore,
        plugin_log: Arc<PluginLog>,
    ) -> Result<Arc<Generation>, StorageError> {
        let keyspace = views.keyspace(plugin.as_str(), &record.keyspace)?;
        let checkpoint = keyspace.checkpoint()?;
        Ok(Arc::new(Generation {
            plugin: plugin.clone(),
            query_slots: Arc::new(Semaphore::new(record.settings.query_instances())),
            record,
            keyspace,
            status: Arc::new(Status::new(checkpoint)),
            plugin_log,
            progress: Arc::new(watch::Sender::new(Progress {
                position: checkpoint,
                ended: false,
            })),
            projection: OnceLock::new(),
            run: Mutex::new(None),
            hold: watch::Sender::new(None),
        }))
    }

    pub fn hash(&self) -> &ContentHash {
        &self.record.hash
    }

    pub fn record(&self) -> &GenRecord {
        &self.record
    }

    pub fn keyspace(&self) -> &Keyspace {
        &self.keyspace
    }

    pub fn plugin_log(&self) -> &Arc<PluginLog> {
        &self.plugin_log
    }

    pub fn status(&self) -> &Arc<Status> {
        &self.status
    }

    pub fn state(&self) -> State {
        self.status.state()
    }

    pub fn report(&self, head: Position, stall_after: Duration) -> StatusReport {
        self.status.report(head, stall_after)
    }

    /// What the projection said about itself, once loaded.
    pub fn described(&self) -> Option<&Described> {
        self.projection.get().map(|p| p.described())
    }

    /// The position the view reflects, and whether the generation still
    /// follows the log.
    pub fn progress(&self) -> watch::Receiver<Progress> {
        self.progress.subscribe()
    }

    pub fn position(&self) -> Position {
        self.progress.borrow().position
    }

    /// Loading failed: the generation stays readable but never projects.
    pub fn load_failed(&self, report: ErrorReport) {
        self.status.fail(report);
    }

    /// Attach the loaded projection (once; later calls change nothing).
    pub fn attach(&self, projection: Arc<dyn Projection>) {
        let _ = self.projection.set(projection);
    }

    /// The projection, once loaded.
    pub fn projection_loaded(&self) -> Option<Arc<dyn Projection>> {
        self.projection.get().cloned()
    }

    /// Attach `projection` if none is, and start projecting from the checkpoint.
    pub fn start(
        &self,
        projection: Arc<dyn Projection>,
        log: EventLog,
        config: ProjectorConfig,
        notify: Box<dyn Fn(ProjectorEvent) + Send>,
        rt: tokio::runtime::Handle,
    ) -> std::io::Result<()> {
        let projection = self.projection.get_or_init(|| projection).clone();
        let (stop, stop_rx) = watch::channel(false);
        let ctx = ProjectorContext {
            plugin: self.plugin.to_string(),
            projection,
            log,
            keyspace: self.keyspace.clone(),
            config,
            status: self.status.clone(),
            applied: self.progress.clone(),
            stop: stop_rx,
            hold: self.hold.subscribe(),
            notify,
        };
        let thread = Projector::spawn(ctx, rt)?;
        *self.run.lock().expect("run lock") = Some(Run { stop, thread });
        Ok(())
    }

    /// Stop projecting; readers waiting on this generation are told it
    /// ended. Does not wait for a call in progress (its thread ends when the
    /// call does; a new projector on the same keyspace waits for it).
    pub fn stop(&self) {
        if let Some(run) = self.run.lock().expect("run lock").as_ref() {
            run.stop.send_replace(true);
        }
        self.progress.send_modify(|p| p.ended = true);
    }

    /// Stop, and drop the keyspace once the last reader is done with it.
    pub fn retire(&self) {
        self.stop();
        self.keyspace.retire();
    }

    /// Wait for the projector thread to end (blocking; at shutdown).
    pub fn join(&self) {
        let run = self.run.lock().expect("run lock").take();
        if let Some(run) = run {
            run.stop.send_replace(true);
            let _ = run.thread.join();
        }
    }

    /// Keep the projector from applying anything past `position` (`None`
    /// releases it).
    pub fn hold_at(&self, position: Option<Position>) {
        self.hold.send_replace(position);
    }

    /// Run a named query on a free query slot.
    pub async fn query(&self, name: String, params: String) -> Result<String, QueryFailure> {
        let projection = self.projection.get().cloned().ok_or_else(|| {
            QueryFailure::Loading(format!(
                "plugin {:?} is still loading; its queries answer once it has loaded",
                self.plugin.as_str()
            ))
        })?;
        let permit =
            tokio::time::timeout(QUERY_SLOT_WAIT, self.query_slots.clone().acquire_owned())
                .await
                .map_err(|_| {
                    QueryFailure::Busy(format!(
                        "all {} query slots of plugin {:?} are busy; try again shortly",
                        self.record.settings.query_instances(),
                        self.plugin.as_str()
                    ))
                })?
                .expect("the semaphore is never closed");
        let keyspace = self.keyspace.clone();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            projection.query(&keyspace, &name, &params)
        })
        .await
        .map_err(|e| QueryFailure::Failed(format!("the query did not finish: {e}")))?
    }
}
