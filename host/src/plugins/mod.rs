//! Plugins: which generations of each plugin exist, which one serves, and
//! how files, uploads and operator actions change that.
//!
//! Each plugin is owned by one task (`actor.rs`) with a mailbox; the
//! [`PluginManager`] is a cheap handle that finds a plugin's task, sends it
//! messages, and reads the state it publishes. The lifecycle itself — the
//! roles a generation can have and every transition between them,
//! including "the server restarted" — is a pure state table in
//! `lifecycle.rs`, and every transition is stored durably (`record.rs`)
//! before its effects happen, together with the component bytes
//! (`components.rs`). So after a SIGKILL at any moment a plugin comes back
//! exactly as it was: the serving generation serves at once, a candidate
//! resumes from its checkpoint, a failed candidate stays failed until its
//! file changes, and a half-built or rejected view never serves while a
//! working one exists.
//!
//! This is the seam every kind of projection and every way of delivering
//! one goes through: components (`NAME.wasm`) and view files
//! (`NAME.view.yaml`, [`crate::declarative`]) share it, told apart by the
//! file's name or, for uploads and stored content, by its first bytes; a
//! new kind implements [`crate::projector::Projection`];
//! a new source of plugins (another node of a cluster) sends the same
//! messages as the directory watcher and the HTTP API.
//!
//! # Layout
//! - `lifecycle`: the state table (roles, transitions, effects).
//! - `record`: the durable record of a plugin; `components`: component bytes.
//! - `actor`: the task that owns one plugin.
//! - `generation`: one generation at run time (keyspace, projector, queries).
//! - `diff`: comparing a candidate with the serving generation.
//! - `settings`, `names`, `watcher`.

mod actor;
mod components;
pub mod diff;
mod generation;
pub mod lifecycle;
pub mod names;
pub mod record;
pub mod settings;
pub mod watcher;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::{Semaphore, mpsc, oneshot, watch};

pub use components::ComponentStore;
pub use generation::Generation;
pub use names::PluginName;
pub use settings::PluginSettings;

use actor::{Actor, Msg};
use record::{ContentHash, GenRecord, PluginRecord, Purpose};

use crate::log::{EventLog, Position};
use crate::projector::crash::InFlight;
use crate::projector::{Described, ErrorReport, StatusReport};
use crate::runtime::Runtime;
use crate::views::ViewStore;

/// How plugins are found and run.
#[derive(Debug, Clone)]
pub struct PluginsConfig {
    /// The watched plugin directory.
    pub dir: PathBuf,
    pub defaults: PluginSettings,
    pub per_plugin: HashMap<String, PluginSettings>,
    /// Lag that does not move for this long is reported as stalled.
    pub stall_after: Duration,
}

/// Why a plugin operation failed. The running plugins are unchanged.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    #[error("no plugin named {0:?}")]
    Unknown(String),
    /// The content is not a working plugin (422).
    #[error("{0}")]
    Invalid(String),
    /// The plugin's state does not allow it (409).
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Storage(#[from] crate::storage::StorageError),
    /// A bug or a failure inside the server, not the plugin's fault.
    #[error("{0}")]
    Internal(String),
}

/// What an install did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum InstallOutcome {
    /// The same content is already serving, replaying, or known to fail.
    Unchanged,
    /// The plugin is new: its first generation is replaying and serving.
    Started,
    /// A new generation is replaying; the serving one serves until it takes over.
    Replacing,
}

/// What a plugin's task publishes after every change, for readers.
#[derive(Default)]
pub struct Snapshot {
    pub record: PluginRecord,
    pub serving: Option<Arc<Generation>>,
    pub candidate: Option<(Arc<Generation>, Purpose)>,
    /// Content being loaded that has no generation yet.
    pub loading: Option<ContentHash>,
    /// A file was seen in the directory and is still settling.
    pub file_pending: bool,
    /// When the plugin file was last looked at.
    pub file_checked_at_ms: Option<u64>,
}

impl Snapshot {
    /// Whether the plugin exists at all (anything stored, or something on its way).
    pub fn exists(&self) -> bool {
        !self.record.is_empty() || self.loading.is_some() || self.file_pending
    }
}

/// What every plugin task shares.
pub(crate) struct Shared {
    runtime: Runtime,
    log: EventLog,
    views: ViewStore,
    components: ComponentStore,
    config: PluginsConfig,
    rt: tokio::runtime::Handle,
    /// Compiles at once across the server: one per core.
    compile_slots: Semaphore,
    /// Where changes of a plugin's desired content are reported (to the
    /// cluster, when there is one).
    desired_changes: std::sync::OnceLock<mpsc::UnboundedSender<(PluginName, Option<ContentHash>)>>,
}

impl Shared {
    fn settings(&self, name: &PluginName) -> PluginSettings {
        self.config
            .per_plugin
            .get(name.as_str())
            .cloned()
            .unwrap_or_default()
            .or(&self.config.defaults)
    }
}

/// The way to one plugin's task.
#[derive(Clone)]
struct PluginHandle {
    mailbox: mpsc::UnboundedSender<Msg>,
    snapshot: watch::Receiver<Arc<Snapshot>>,
    /// One diff at a time: a diff holds both projectors at one position.
    diffing: Arc<tokio::sync::Mutex<()>>,
}

/// Why reads of a plugin's views cannot be served.
#[derive(Debug)]
pub enum Unavailable {
    /// No such plugin.
    Unknown,
    /// The plugin exists but nothing serves (loading, or only failed content).
    NotServing {
        state: &'static str,
        error: Option<ErrorReport>,
    },
}

/// The plugin registry; clone it freely.
#[derive(Clone)]
pub struct PluginManager {
    shared: Arc<Shared>,
    /// One task per plugin name ever seen; a removed plugin's task stays,
    /// empty, so a file dropped again right after finds it.
    plugins: Arc<RwLock<BTreeMap<PluginName, PluginHandle>>>,
}

fn record_key(name: &PluginName) -> String {
    format!("plugin/{name}")
}

/// The record format before generations had roles: one serving keyspace.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RecordV1 {
    generation: String,
    keyspace: String,
}

impl PluginManager {
    pub fn new(
        runtime: Runtime,
        log: EventLog,
        views: ViewStore,
        components: ComponentStore,
        config: PluginsConfig,
        rt: tokio::runtime::Handle,
    ) -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        PluginManager {
            shared: Arc::new(Shared {
                runtime,
                log,
                views,
                components,
                config,
                rt,
                compile_slots: Semaphore::new(cores),
                desired_changes: std::sync::OnceLock::new(),
            }),
            plugins: Arc::default(),
        }
    }

    /// Report every change of a plugin's desired content (`None`: removed)
    /// on `changes`, e.g. to share it with a cluster.
    pub fn report_desired_changes(
        &self,
        changes: mpsc::UnboundedSender<(PluginName, Option<ContentHash>)>,
    ) {
        let _ = self.shared.desired_changes.set(changes);
    }

    pub fn dir(&self) -> &std::path::Path {
        &self.shared.config.dir
    }

    /// The task of `name`, started if it has none yet.
    fn handle(&self, name: &PluginName) -> PluginHandle {
        if let Some(h) = self.plugins.read().expect("plugins lock").get(name) {
            return h.clone();
        }
        self.start_task(name, PluginRecord::default(), None)
    }

    /// Start `name`'s task from a stored record (empty for a new plugin).
    fn start_task(
        &self,
        name: &PluginName,
        record: PluginRecord,
        serving: Option<Arc<Generation>>,
    ) -> PluginHandle {
        let mut plugins = self.plugins.write().expect("plugins lock");
        plugins
            .entry(name.clone())
            .or_insert_with(|| {
                let (tx, rx) = mpsc::unbounded_channel();
                let (snapshot_tx, snapshot) = watch::channel(Arc::new(Snapshot::default()));
                let actor = Actor::new(
                    name.clone(),
                    self.shared.clone(),
                    record,
                    serving,
                    snapshot_tx,
                    rx,
                    tx.clone(),
                );
                self.shared.rt.spawn(actor.run());
                PluginHandle {
                    mailbox: tx,
                    snapshot,
                    diffing: Arc::default(),
                }
            })
            .clone()
    }

    fn existing(&self, name: &PluginName) -> Option<PluginHandle> {
        let handle = self
            .plugins
            .read()
            .expect("plugins lock")
            .get(name)?
            .clone();
        let exists = handle.snapshot.borrow().exists();
        exists.then_some(handle)
    }

    /// The state a plugin's task last published; `None` if there is no such plugin.
    pub fn snapshot(&self, name: &PluginName) -> Option<Arc<Snapshot>> {
        let handle = self.existing(name)?;
        let snapshot = handle.snapshot.borrow().clone();
        Some(snapshot)
    }

    /// A receiver of every state `name`'s task publishes; `None` if there is
    /// no such plugin.
    pub fn watch(&self, name: &PluginName) -> Option<watch::Receiver<Arc<Snapshot>>> {
        Some(self.existing(name)?.snapshot)
    }

    /// The generation serving `name`'s views.
    pub fn serving(&self, name: &PluginName) -> Result<Arc<Generation>, Unavailable> {
        let snapshot = self.snapshot(name).ok_or(Unavailable::Unknown)?;
        if let Some(g) = &snapshot.serving {
            return Ok(g.clone());
        }
        Err(match &snapshot.record.failed {
            Some(f) if snapshot.loading.is_none() && !snapshot.file_pending => {
                Unavailable::NotServing {
                    state: "failed",
                    error: Some(f.error.clone()),
                }
            }
            _ => Unavailable::NotServing {
                state: "loading",
                error: None,
            },
        })
    }

    async fn ask<T>(
        &self,
        name: &PluginName,
        create: bool,
        msg: impl FnOnce(actor::Reply<T>) -> Msg,
    ) -> Result<T, PluginError> {
        let handle = if create {
            self.handle(name)
        } else {
            self.plugins
                .read()
                .expect("plugins lock")
                .get(name)
                .cloned()
                .ok_or_else(|| PluginError::Unknown(name.to_string()))?
        };
        let (reply, answer) = oneshot::channel();
        handle
            .mailbox
            .send(msg(reply))
            .map_err(|_| PluginError::Internal("the server is shutting down".into()))?;
        answer
            .await
            .map_err(|_| PluginError::Internal("the plugin's task ended".into()))?
    }

    /// Install an upload: validated first (nothing changes if it does not
    /// load), then written to the directory, then installed.
    pub async fn put(
        &self,
        name: &PluginName,
        bytes: Vec<u8>,
    ) -> Result<InstallOutcome, PluginError> {
        self.ask(name, true, |r| Msg::Put(bytes, r)).await
    }

    /// Remove the plugin file and unload the plugin.
    pub async fn remove(&self, name: &PluginName) -> Result<(), PluginError> {
        self.ask(name, false, Msg::Remove).await
    }

    /// Replay the plugin into a fresh generation, blue/green.
    pub async fn rebuild(&self, name: &PluginName) -> Result<InstallOutcome, PluginError> {
        self.ask(name, false, Msg::Rebuild).await
    }

    /// Cut over to the caught-up candidate now.
    pub async fn promote(&self, name: &PluginName) -> Result<(), PluginError> {
        self.ask(name, false, Msg::Promote).await
    }

    /// Bring the previous generation back (it catches up, then serves).
    pub async fn rollback(&self, name: &PluginName) -> Result<(), PluginError> {
        self.ask(name, false, Msg::Rollback).await
    }

    /// Let a quarantined generation run again: one event at a time through
    /// the batch it died in, or (`skip`) past that batch, dead-lettering it.
    pub async fn release(&self, name: &PluginName, skip: bool) -> Result<(), PluginError> {
        self.ask(name, false, |reply| Msg::Release { skip, reply })
            .await
    }

    /// Drop the candidate; the directory goes back to the serving content.
    pub async fn discard_candidate(&self, name: &PluginName) -> Result<(), PluginError> {
        self.ask(name, false, Msg::Discard).await
    }

    /// A plugin file appeared and is still being written: the plugin is
    /// listed, `loading`, from now on.
    pub fn file_seen(&self, name: &PluginName) {
        let _ = self.handle(name).mailbox.send(Msg::FileSeen);
    }

    /// The plugin file changed (or vanished) and has settled: its task acts
    /// on it. Does not wait, so one slow plugin never holds up the watcher.
    pub fn file_changed(&self, name: &PluginName) {
        let _ = self.handle(name).mailbox.send(Msg::FileChanged);
    }

    /// Compare the caught-up candidate with the serving generation at one position.
    pub async fn diff(
        &self,
        name: &PluginName,
        sample: usize,
    ) -> Result<diff::DiffReport, PluginError> {
        let handle = self
            .existing(name)
            .ok_or_else(|| PluginError::Unknown(name.to_string()))?;
        let _one_at_a_time = handle.diffing.lock().await;
        let snapshot = handle.snapshot.borrow().clone();
        let serving = snapshot
            .serving
            .clone()
            .ok_or_else(|| PluginError::Conflict("nothing serves yet".into()))?;
        let (candidate, _) = snapshot
            .candidate
            .clone()
            .ok_or_else(|| PluginError::Conflict("there is no candidate to compare".into()))?;
        diff::compare(&serving, &candidate, &self.shared.log, sample).await
    }

    /// Restore every plugin as the store left it, then act on what the
    /// directory says. Returns at once: plugins load in the background.
    /// `crashed` is the batch the process died in last time, if it died
    /// inside a plugin call: that generation is quarantined.
    pub async fn start(&self, crashed: Option<InFlight>) -> Result<(), PluginError> {
        std::fs::create_dir_all(self.dir())?;
        let mut records = self.load_records()?;
        if let Some(note) = crashed {
            self.quarantine(&mut records, note)?;
        }
        // Keyspaces no record owns: removed plugins, retired generations,
        // installs cut short by a crash.
        let owned: HashSet<String> = records
            .iter()
            .flat_map(|(name, r)| {
                r.keyspaces()
                    .map(|g| crate::views::family_name(name.as_str(), &g.keyspace))
            })
            .collect();
        for family in self.shared.views.families() {
            if !owned.contains(&family) {
                tracing::info!(keyspace = %family, "dropping a keyspace no plugin owns");
                self.shared.views.drop_unowned(&family)?;
            }
        }
        let needed: HashSet<ContentHash> =
            records.values().flat_map(|r| r.hashes().cloned()).collect();
        self.shared.components.retain(&needed)?;
        let mut names: BTreeSet<PluginName> = records.keys().cloned().collect();
        for entry in std::fs::read_dir(self.dir())? {
            if let Some(name) = entry?.file_name().to_str().and_then(names::plugin_of_file) {
                names.insert(name);
            }
        }
        for name in names {
            let handle = match records.remove(&name) {
                Some(record) => {
                    // Opening a keyspace is quick: the serving generation
                    // answers reads before the server listens.
                    let serving = match &record.serving {
                        Some(g) => Some(Generation::open(
                            &name,
                            g.clone(),
                            &self.shared.views,
                            Arc::new(crate::runtime::PluginLog::new()),
                        )?),
                        None => None,
                    };
                    let handle = self.start_task(&name, record, serving);
                    let _ = handle.mailbox.send(Msg::Restore);
                    handle
                }
                None => self.handle(&name),
            };
            let _ = handle.mailbox.send(Msg::FileChanged);
        }
        Ok(())
    }

    /// Quarantine the generation the process died in, durably, before anything runs.
    fn quarantine(
        &self,
        records: &mut BTreeMap<PluginName, PluginRecord>,
        note: InFlight,
    ) -> Result<(), PluginError> {
        for (name, record) in records.iter_mut() {
            let keyspace = record
                .keyspaces()
                .find(|g| crate::views::family_name(name.as_str(), &g.keyspace) == note.family)
                .map(|g| g.keyspace.clone());
            let Some(keyspace) = keyspace else { continue };
            let reason = format!(
                "the server process aborted while this generation applied events {} to {}",
                note.from, note.to
            );
            tracing::error!(plugin = %name, keyspace = %keyspace, %reason, "quarantining a generation");
            let quarantine = record::Quarantine {
                reason,
                from: note.from,
                to: note.to,
                at_ms: crate::clock::now_ms(),
            };
            if record
                .apply(lifecycle::Transition::Quarantined(keyspace, quarantine))
                .is_ok()
            {
                self.shared.views.meta_put(
                    &record_key(name),
                    &serde_json::to_string(record).expect("records serialize"),
                )?;
            }
            return Ok(());
        }
        Ok(())
    }

    fn load_records(&self) -> Result<BTreeMap<PluginName, PluginRecord>, PluginError> {
        let mut out = BTreeMap::new();
        for (key, text) in self.shared.views.meta_scan("plugin/")? {
            let Some(name) = key
                .strip_prefix("plugin/")
                .and_then(|n| PluginName::parse(n).ok())
            else {
                continue;
            };
            let record = match serde_json::from_str::<RecordV1>(&text) {
                Ok(v1) => self.migrate(&name, v1)?,
                Err(_) => match serde_json::from_str::<PluginRecord>(&text) {
                    Ok(record) => record,
                    Err(e) => {
                        tracing::error!(plugin = %name, error = %e, "unreadable plugin record; the plugin is rebuilt from its file");
                        continue;
                    }
                },
            };
            out.insert(name, record);
        }
        Ok(out)
    }

    /// A record of the older format names its serving keyspace and content
    /// hash but kept no bytes: adopt the file's, if it is that content.
    fn migrate(&self, name: &PluginName, v1: RecordV1) -> Result<PluginRecord, PluginError> {
        let file = std::fs::read(self.dir().join(format!("{name}.wasm"))).ok();
        let hash = ContentHash::parse(&v1.generation);
        match (file, hash) {
            (Some(bytes), Some(hash)) if ContentHash::of(&bytes) == hash => {
                self.shared.components.put(&hash, &bytes)?;
                let record = PluginRecord {
                    desired: Some(hash.clone()),
                    serving: Some(GenRecord {
                        hash,
                        keyspace: v1.keyspace,
                        created_at_ms: 0,
                        settings: self.shared.settings(name),
                        quarantine: None,
                    }),
                    ..Default::default()
                };
                self.shared.views.meta_put(
                    &record_key(name),
                    &serde_json::to_string(&record).expect("json"),
                )?;
                Ok(record)
            }
            _ => Ok(PluginRecord::default()),
        }
    }

    /// Status of every plugin, by name.
    pub fn list(&self) -> Vec<PluginReport> {
        let names: Vec<PluginName> = self
            .plugins
            .read()
            .expect("plugins lock")
            .keys()
            .cloned()
            .collect();
        names.iter().filter_map(|n| self.report(n)).collect()
    }

    /// Status of one plugin, with every generation it has.
    pub fn report(&self, name: &PluginName) -> Option<PluginReport> {
        let snapshot = self.snapshot(name)?;
        let head = self.shared.log.head();
        let stall = self.shared.config.stall_after;
        let record = &snapshot.record;
        let report_of = |g: &Arc<Generation>| GenerationReport {
            generation: g.hash().to_string(),
            keyspace: g.record().keyspace.clone(),
            storage_bytes: g.keyspace().stored_bytes(),
            status: g.report(head, stall),
            description: g.described().cloned(),
            settings: g.record().settings.clone(),
        };
        let serving = snapshot.serving.as_ref().map(report_of);
        let state = match &serving {
            Some(s) if s.status.stalled => "stalled".to_string(),
            Some(s) => s.status.state.as_str().to_string(),
            None if record.failed.is_some()
                && snapshot.loading.is_none()
                && !snapshot.file_pending =>
            {
                "failed".to_string()
            }
            None => "loading".to_string(),
        };
        let candidate = snapshot.candidate.as_ref().map(|(g, purpose)| {
            let report = report_of(g);
            CandidateReport {
                ready: report.status.state == crate::projector::State::Live
                    && report.status.position >= head,
                report,
                purpose: *purpose,
            }
        });
        let retention = self.shared.settings(name).previous_retention();
        let previous = record.previous.as_ref().map(|p| PreviousReport {
            generation: p.generation.hash.to_string(),
            keyspace: p.generation.keyspace.clone(),
            position: self
                .shared
                .views
                .checkpoint_of(&crate::views::family_name(
                    name.as_str(),
                    &p.generation.keyspace,
                ))
                .unwrap_or_default(),
            retired_at_ms: p.retired_at_ms,
            expires_at_ms: p.retired_at_ms + retention.as_millis() as u64,
        });
        let failed_candidate = record.failed.as_ref().map(|f| FailedCandidate {
            generation: f.hash.to_string(),
            error: f.error.clone(),
        });
        let mut generations = Vec::new();
        if let Some(s) = &serving {
            generations.push(GenerationSummary::of("serving", s));
        }
        if let Some(c) = &candidate {
            generations.push(GenerationSummary::of("candidate", &c.report));
        }
        if let Some(p) = &previous {
            generations.push(GenerationSummary {
                role: "previous",
                generation: p.generation.clone(),
                state: "parked".into(),
                position: p.position,
                error: None,
            });
        }
        if let Some(f) = &failed_candidate {
            generations.push(GenerationSummary {
                role: "failed",
                generation: f.generation.clone(),
                state: "failed".into(),
                position: Position::ZERO,
                error: Some(f.error.clone()),
            });
        }
        Some(PluginReport {
            name: name.to_string(),
            state,
            generation: serving.as_ref().map(|s| s.generation.clone()),
            status: serving.as_ref().map(|s| s.status.clone()),
            storage_bytes: serving.as_ref().map(|s| s.storage_bytes),
            description: serving.as_ref().and_then(|s| s.description.clone()),
            candidate,
            failed_candidate,
            previous,
            generations,
            loading: snapshot.loading.as_ref().map(ToString::to_string),
            desired: record.desired.as_ref().map(ToString::to_string),
            file_checked_at_ms: snapshot.file_checked_at_ms,
            settings: self.shared.settings(name),
        })
    }

    /// Stop every projector and wait for them (at shutdown).
    pub async fn shutdown(&self) {
        let handles: Vec<PluginHandle> = self
            .plugins
            .read()
            .expect("plugins lock")
            .values()
            .cloned()
            .collect();
        for handle in handles {
            let (done, finished) = oneshot::channel();
            if handle.mailbox.send(Msg::Shutdown(done)).is_ok() {
                let _ = finished.await;
            }
        }
        self.shared.views.end_walks();
    }
}

/// One generation's status.
#[derive(Debug, Clone, Serialize)]
pub struct GenerationReport {
    pub generation: String,
    pub keyspace: String,
    /// About how many bytes its view takes (against `storage_quota_mb`).
    pub storage_bytes: u64,
    #[serde(flatten)]
    pub status: StatusReport,
    /// What the projection says about itself, once loaded.
    pub description: Option<Described>,
    /// The settings it was started with.
    pub settings: PluginSettings,
}

#[derive(Debug, Clone, Serialize)]
pub struct CandidateReport {
    #[serde(flatten)]
    pub report: GenerationReport,
    pub purpose: Purpose,
    /// Caught up with the head: with a manual cutover, ready to promote.
    pub ready: bool,
}

/// Content that was tried and refused, and why.
#[derive(Debug, Clone, Serialize)]
pub struct FailedCandidate {
    pub generation: String,
    pub error: ErrorReport,
}

/// The generation replaced at the last cutover, parked for a rollback.
#[derive(Debug, Clone, Serialize)]
pub struct PreviousReport {
    pub generation: String,
    pub keyspace: String,
    /// The position its view reflects (it catches up from here on a rollback).
    pub position: Position,
    pub retired_at_ms: u64,
    /// When it is dropped unless rolled back to.
    pub expires_at_ms: u64,
}

/// One line per generation, for status listings.
#[derive(Debug, Clone, Serialize)]
pub struct GenerationSummary {
    /// `serving`, `candidate`, `previous` or `failed`.
    pub role: &'static str,
    pub generation: String,
    pub state: String,
    pub position: Position,
    pub error: Option<ErrorReport>,
}

impl GenerationSummary {
    fn of(role: &'static str, g: &GenerationReport) -> Self {
        GenerationSummary {
            role,
            generation: g.generation.clone(),
            state: g.status.state.as_str().to_string(),
            position: g.status.position,
            error: g.status.last_error.clone(),
        }
    }
}

/// A plugin's status for `GET /plugins/{name}`.
#[derive(Debug, Clone, Serialize)]
pub struct PluginReport {
    pub name: String,
    /// The serving generation's state (`loading`, `replaying`, `live`,
    /// `failed`, `stalled`); `loading` or `failed` when nothing serves.
    pub state: String,
    /// The serving generation's content hash.
    pub generation: Option<String>,
    /// The serving generation's progress.
    #[serde(flatten)]
    pub status: Option<StatusReport>,
    /// About how many bytes the serving generation's view takes.
    pub storage_bytes: Option<u64>,
    pub description: Option<Described>,
    /// A newer generation replaying to take over.
    pub candidate: Option<CandidateReport>,
    /// The last content that was tried and refused.
    pub failed_candidate: Option<FailedCandidate>,
    /// The generation replaced at the last cutover, kept for a rollback.
    pub previous: Option<PreviousReport>,
    /// Every generation with its role, state and position.
    pub generations: Vec<GenerationSummary>,
    /// Content being loaded.
    pub loading: Option<String>,
    /// The content the directory (or the last upload or rollback) asks for.
    pub desired: Option<String>,
    /// When the server last acted on the plugin file.
    pub file_checked_at_ms: Option<u64>,
    pub settings: PluginSettings,
}
