//! The plugin registry: which generation of each plugin is current, which is
//! replaying to replace it, and how files become generations.
//!
//! Installing new content (from the watched directory or `PUT /plugins`)
//! compiles and validates it off the hot path, starts a projector into a
//! fresh keyspace, and — if a generation is already serving — keeps that one
//! serving until the newcomer has caught up with the head, then swaps them in
//! one step and drops the old keyspace (blue/green). A newcomer that fails
//! never replaces a working generation. The current generation of each
//! plugin is remembered in the database so that a restart resumes it from
//! its checkpoint when the file has not changed.

mod generation;
pub mod names;
pub mod watcher;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use generation::{Described, Generation, QueryFailure};

use crate::log::EventLog;
use crate::projector::{ErrorReport, PoisonPolicy, ProjectorConfig, State, StatusReport};
use crate::runtime::view::ViewAccess;
use crate::runtime::{PluginLimits, PluginLog, Runtime, RuntimeError};
use crate::views::ViewStore;

/// Per-plugin settings; every field falls back to the defaults.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PluginSettings {
    /// Memory limit in MiB (default 64).
    pub memory_limit_mb: Option<usize>,
    /// Deadline of one call into the plugin, in milliseconds (default 5000).
    pub call_timeout_ms: Option<u64>,
    /// `halt` (default) or `skip`: what to do with an event the plugin fails on.
    pub on_error: Option<PoisonPolicy>,
    /// Most events per batch (default 8192).
    pub max_batch_events: Option<usize>,
}

impl PluginSettings {
    fn or(&self, fallback: &PluginSettings) -> PluginSettings {
        PluginSettings {
            memory_limit_mb: self.memory_limit_mb.or(fallback.memory_limit_mb),
            call_timeout_ms: self.call_timeout_ms.or(fallback.call_timeout_ms),
            on_error: self.on_error.or(fallback.on_error),
            max_batch_events: self.max_batch_events.or(fallback.max_batch_events),
        }
    }

    fn projector_config(&self) -> ProjectorConfig {
        let base = ProjectorConfig::default();
        let limits = PluginLimits::default();
        ProjectorConfig {
            max_batch_events: self
                .max_batch_events
                .unwrap_or(base.max_batch_events)
                .max(1),
            policy: self.on_error.unwrap_or_default(),
            limits: PluginLimits {
                memory_bytes: self
                    .memory_limit_mb
                    .map_or(limits.memory_bytes, |mb| mb << 20),
                call_timeout: self
                    .call_timeout_ms
                    .map_or(limits.call_timeout, Duration::from_millis),
            },
            ..base
        }
    }
}

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
    #[error("{0}")]
    InvalidName(String),
    #[error("no plugin named {0:?}")]
    Unknown(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Storage(#[from] crate::storage::StorageError),
}

/// What an install did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum InstallOutcome {
    /// The same content is already current or replaying: nothing changed.
    Unchanged,
    /// The plugin is new: its first generation is replaying and serving.
    Started,
    /// A new generation is replaying; the current one serves until it takes over.
    Replacing,
}

/// A failed attempt at a new generation, kept for the status.
#[derive(Debug, Clone, Serialize)]
pub struct FailedCandidate {
    pub generation: String,
    pub error: ErrorReport,
}

#[derive(Default)]
struct Slot {
    current: Option<Arc<Generation>>,
    candidate: Option<Arc<Generation>>,
    failed_candidate: Option<FailedCandidate>,
}

/// One generation's status for the API.
#[derive(Debug, Clone, Serialize)]
pub struct GenerationReport {
    pub generation: String,
    #[serde(flatten)]
    pub status: StatusReport,
    pub description: Described,
}

/// A plugin's status for `GET /plugins/{name}`.
#[derive(Debug, Clone, Serialize)]
pub struct PluginReport {
    pub name: String,
    pub generation: Option<String>,
    /// `loading`, `replaying`, `live`, `failed`, or `stalled`.
    pub state: String,
    #[serde(flatten)]
    pub current: Option<GenerationReport>,
    /// A newer generation replaying to take over.
    pub candidate: Option<GenerationReport>,
    /// The last newer generation that failed and was not installed.
    pub failed_candidate: Option<FailedCandidate>,
    pub settings: PluginSettings,
}

#[derive(Debug, Serialize, Deserialize)]
struct RegistryEntry {
    generation: String,
    keyspace: String,
}

fn registry_key(name: &str) -> String {
    format!("plugin/{name}")
}

struct Inner {
    runtime: Runtime,
    log: EventLog,
    views: ViewStore,
    config: PluginsConfig,
    rt: tokio::runtime::Handle,
    slots: RwLock<BTreeMap<String, Slot>>,
    /// Installs, removals and rebuilds run one at a time.
    ops: tokio::sync::Mutex<()>,
}

/// The plugin registry; clone it freely.
#[derive(Clone)]
pub struct PluginManager {
    inner: Arc<Inner>,
}

impl PluginManager {
    pub fn new(
        runtime: Runtime,
        log: EventLog,
        views: ViewStore,
        config: PluginsConfig,
        rt: tokio::runtime::Handle,
    ) -> Self {
        PluginManager {
            inner: Arc::new(Inner {
                runtime,
                log,
                views,
                config,
                rt,
                slots: RwLock::default(),
                ops: tokio::sync::Mutex::new(()),
            }),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.inner.config.dir
    }

    fn settings(&self, name: &str) -> PluginSettings {
        self.inner
            .config
            .per_plugin
            .get(name)
            .cloned()
            .unwrap_or_default()
            .or(&self.inner.config.defaults)
    }

    /// The generation serving `name`'s views.
    pub fn current(&self, name: &str) -> Option<Arc<Generation>> {
        self.inner
            .slots
            .read()
            .expect("slots lock")
            .get(name)
            .and_then(|s| s.current.clone())
    }

    /// Status of every plugin, by name.
    pub fn list(&self) -> Vec<PluginReport> {
        let names: Vec<String> = self
            .inner
            .slots
            .read()
            .expect("slots lock")
            .keys()
            .cloned()
            .collect();
        names.iter().filter_map(|n| self.report(n)).collect()
    }

    /// Status of one plugin.
    pub fn report(&self, name: &str) -> Option<PluginReport> {
        let slots = self.inner.slots.read().expect("slots lock");
        let slot = slots.get(name)?;
        let head = self.inner.log.head();
        let stall = self.inner.config.stall_after;
        let gen_report = |g: &Arc<Generation>| GenerationReport {
            generation: g.generation.clone(),
            status: g.report(head, stall),
            description: g.description.clone(),
        };
        let current = slot.current.as_ref().map(gen_report);
        let state = match &current {
            Some(c) if c.status.stalled => "stalled".to_string(),
            Some(c) => c.status.state.as_str().to_string(),
            None if slot.candidate.is_some() => "loading".to_string(),
            None => "failed".to_string(),
        };
        Some(PluginReport {
            name: name.to_string(),
            generation: slot.current.as_ref().map(|g| g.generation.clone()),
            state,
            current,
            candidate: slot.candidate.as_ref().map(gen_report),
            failed_candidate: slot.failed_candidate.clone(),
            settings: self.settings(name),
        })
    }

    /// Load every plugin in the directory: resume those whose file matches
    /// their stored generation, rebuild the others, and drop keyspaces that
    /// no plugin owns any more.
    pub async fn start(&self, data_dir: &Path) -> Result<(), PluginError> {
        std::fs::create_dir_all(self.dir())?;
        let mut files = Vec::new();
        for entry in std::fs::read_dir(self.dir())? {
            let entry = entry?;
            if let Some(name) = entry.file_name().to_str().and_then(names::plugin_of_file) {
                files.push(name.to_string());
            }
        }
        files.sort();
        for name in &files {
            if let Err(e) = self.sync_file(name).await {
                tracing::warn!(plugin = %name, error = %e, "plugin not loaded");
            }
        }
        // Drop what no current plugin owns: removed plugins, dead generations.
        let owned: Vec<String> = {
            let slots = self.inner.slots.read().expect("slots lock");
            slots
                .values()
                .flat_map(|s| s.current.iter().chain(s.candidate.iter()))
                .map(|g| g.keyspace.family().to_string())
                .collect()
        };
        for family in self.inner.views.families(&data_dir.join("db")) {
            if !owned.contains(&family) {
                tracing::info!(keyspace = %family, "dropping a keyspace no plugin owns");
                self.inner.views.drop_keyspace(&family)?;
            }
        }
        Ok(())
    }

    /// Bring plugin `name` in line with its file: install new content, or
    /// unload the plugin if the file is gone.
    pub async fn sync_file(&self, name: &str) -> Result<InstallOutcome, PluginError> {
        let path = self.dir().join(format!("{name}.wasm"));
        match tokio::fs::read(&path).await {
            Ok(bytes) => self.install(name, bytes, false).await,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                match self.remove_loaded(name).await {
                    Ok(()) | Err(PluginError::Unknown(_)) => Ok(InstallOutcome::Unchanged),
                    Err(e) => Err(e),
                }
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Compile and validate a plugin file without installing it.
    pub async fn validate(&self, bytes: Vec<u8>) -> Result<Described, PluginError> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.prepare(&bytes).map(|p| p.1))
            .await
            .map_err(|e| PluginError::Invalid(e.to_string()))?
            .map_err(|e| PluginError::Invalid(e.to_string()))
    }

    /// Compile, instantiate and describe: everything that can fail before a
    /// generation gets a keyspace.
    fn prepare(
        &self,
        bytes: &[u8],
    ) -> Result<(crate::runtime::CompiledPlugin, Described, Arc<PluginLog>), RuntimeError> {
        let compiled = self.inner.runtime.compile(bytes)?;
        let plugin_log = Arc::new(PluginLog::new());
        let view = ViewAccess::new(self.inner.views.detached("view.validation"));
        let mut instance = self.inner.runtime.instantiate(
            &compiled,
            view,
            plugin_log.clone(),
            PluginLimits::default(),
        )?;
        let description = instance
            .describe()
            .map_err(|e| RuntimeError::Instantiate(format!("describe: {e}")))?;
        Ok((compiled, description.into(), plugin_log))
    }

    /// Install `bytes` as plugin `name`. With `fresh`, a new generation is
    /// built even if the content is unchanged (a rebuild).
    pub async fn install(
        &self,
        name: &str,
        bytes: Vec<u8>,
        fresh: bool,
    ) -> Result<InstallOutcome, PluginError> {
        if let Some(problem) = names::name_problem(name) {
            return Err(PluginError::InvalidName(problem));
        }
        let _op = self.inner.ops.lock().await;
        let hash = Runtime::content_hash(&bytes);
        if !fresh {
            let slots = self.inner.slots.read().expect("slots lock");
            if let Some(slot) = slots.get(name) {
                let same =
                    |g: &Option<Arc<Generation>>| g.as_ref().is_some_and(|g| g.generation == hash);
                if same(&slot.current) && slot.candidate.is_none() || same(&slot.candidate) {
                    return Ok(InstallOutcome::Unchanged);
                }
            }
        }
        let this = self.clone();
        let prepared = tokio::task::spawn_blocking(move || this.prepare(&bytes))
            .await
            .map_err(|e| PluginError::Invalid(e.to_string()))?;
        let (compiled, description, plugin_log) = match prepared {
            Ok(p) => p,
            Err(e) => {
                let message = format!("{name}.wasm: {e}");
                self.record_failed_candidate(name, &hash, &message);
                return Err(PluginError::Invalid(message));
            }
        };
        if compiled.from_cache {
            tracing::info!(plugin = %name, "loaded compiled plugin from the cache");
        }
        // Resume the stored generation if this is the content it was built from.
        let stored: Option<RegistryEntry> = self
            .inner
            .views
            .meta_get(&registry_key(name))?
            .and_then(|s| serde_json::from_str(&s).ok());
        let has_current = self.current(name).is_some();
        let keyspace_id = match stored {
            Some(entry) if !fresh && !has_current && entry.generation == hash => entry.keyspace,
            _ => format!("{}-{}", &hash[..16], crate::clock::now_ms()),
        };
        let keyspace = self.inner.views.keyspace(name, &keyspace_id)?;
        let settings = self.settings(name);
        let generation = Generation::start(
            name,
            &hash,
            description,
            self.inner.runtime.clone(),
            compiled,
            plugin_log,
            self.inner.log.clone(),
            keyspace,
            settings.projector_config(),
            self.inner.rt.clone(),
        )?;
        let registry = RegistryEntry {
            generation: hash.clone(),
            keyspace: keyspace_id.clone(),
        };
        let superseded_candidate = {
            let mut slots = self.inner.slots.write().expect("slots lock");
            let slot = slots.entry(name.to_string()).or_default();
            slot.failed_candidate = None;
            if slot.current.is_none() {
                slot.current = Some(generation.clone());
                slot.candidate.take()
            } else {
                slot.candidate.replace(generation.clone())
            }
        };
        if let Some(old) = superseded_candidate {
            self.retire(old).await;
        }
        if !has_current {
            self.inner.views.meta_put(
                &registry_key(name),
                &serde_json::to_string(&registry).expect("json"),
            )?;
            tracing::info!(plugin = %name, generation = %&hash[..16], "plugin started");
            return Ok(InstallOutcome::Started);
        }
        tracing::info!(plugin = %name, generation = %&hash[..16], "new generation replaying");
        let this = self.clone();
        let name = name.to_string();
        tokio::spawn(async move {
            this.promote_when_caught_up(name, generation, registry)
                .await
        });
        Ok(InstallOutcome::Replacing)
    }

    /// Wait until `candidate` has caught up with the head, then make it
    /// current; if it fails first, keep the current one and report why.
    async fn promote_when_caught_up(
        &self,
        name: String,
        candidate: Arc<Generation>,
        registry: RegistryEntry,
    ) {
        let mut applied = candidate.applied.clone();
        loop {
            let still_candidate = {
                let slots = self.inner.slots.read().expect("slots lock");
                slots
                    .get(&name)
                    .and_then(|s| s.candidate.as_ref())
                    .is_some_and(|c| Arc::ptr_eq(c, &candidate))
            };
            if !still_candidate {
                return;
            }
            match candidate.state() {
                State::Failed => {
                    let error = candidate
                        .report(self.inner.log.head(), self.inner.config.stall_after)
                        .last_error
                        .unwrap_or_else(|| ErrorReport::new("failed", None));
                    let _op = self.inner.ops.lock().await;
                    {
                        let mut slots = self.inner.slots.write().expect("slots lock");
                        if let Some(slot) = slots.get_mut(&name)
                            && slot
                                .candidate
                                .as_ref()
                                .is_some_and(|c| Arc::ptr_eq(c, &candidate))
                        {
                            slot.candidate = None;
                            slot.failed_candidate = Some(FailedCandidate {
                                generation: candidate.generation.clone(),
                                error,
                            });
                        }
                    }
                    tracing::warn!(plugin = %name, "new generation failed; the current one keeps serving");
                    self.retire(candidate).await;
                    return;
                }
                State::Live if *applied.borrow() >= self.inner.log.head() => {
                    let _op = self.inner.ops.lock().await;
                    let old = {
                        let mut slots = self.inner.slots.write().expect("slots lock");
                        let Some(slot) = slots.get_mut(&name) else {
                            return;
                        };
                        if !slot
                            .candidate
                            .as_ref()
                            .is_some_and(|c| Arc::ptr_eq(c, &candidate))
                        {
                            return;
                        }
                        slot.candidate = None;
                        slot.current.replace(candidate.clone())
                    };
                    if let Err(e) = self.inner.views.meta_put(
                        &registry_key(&name),
                        &serde_json::to_string(&registry).expect("json"),
                    ) {
                        tracing::error!(plugin = %name, error = %e, "could not record the new generation");
                    }
                    tracing::info!(plugin = %name, generation = %&candidate.generation[..16], "new generation took over");
                    if let Some(old) = old {
                        self.retire(old).await;
                    }
                    return;
                }
                _ => {}
            }
            // Wake on progress; the timeout catches failures, which do not move `applied`.
            let _ = tokio::time::timeout(Duration::from_millis(100), applied.changed()).await;
        }
    }

    /// Stop a generation and drop its keyspace once no request still reads
    /// it (a read that started just before a swap finishes on the old
    /// generation instead of finding its keyspace gone).
    async fn retire(&self, generation: Arc<Generation>) {
        let views = self.inner.views.clone();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while Arc::strong_count(&generation) > 1 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let _ = tokio::task::spawn_blocking(move || {
            generation.stop();
            if let Err(e) = views.drop_keyspace(generation.keyspace.family()) {
                tracing::error!(keyspace = generation.keyspace.family(), error = %e, "could not drop keyspace");
            }
        })
        .await;
    }

    fn record_failed_candidate(&self, name: &str, hash: &str, message: &str) {
        tracing::warn!(plugin = %name, error = %message, "plugin rejected");
        let mut slots = self.inner.slots.write().expect("slots lock");
        let slot = slots.entry(name.to_string()).or_default();
        slot.failed_candidate = Some(FailedCandidate {
            generation: hash.to_string(),
            error: ErrorReport::new(message, None),
        });
    }

    /// Unload a plugin and drop its keyspaces (its file is already gone).
    async fn remove_loaded(&self, name: &str) -> Result<(), PluginError> {
        let _op = self.inner.ops.lock().await;
        let slot = self.inner.slots.write().expect("slots lock").remove(name);
        let Some(slot) = slot else {
            return Err(PluginError::Unknown(name.to_string()));
        };
        for generation in slot.current.into_iter().chain(slot.candidate) {
            self.retire(generation).await;
        }
        self.inner.views.meta_delete(&registry_key(name))?;
        tracing::info!(plugin = %name, "plugin removed");
        Ok(())
    }

    /// Install through the directory: validate, write `NAME.wasm`
    /// atomically, then load it.
    pub async fn put_file(
        &self,
        name: &str,
        bytes: Vec<u8>,
    ) -> Result<InstallOutcome, PluginError> {
        if let Some(problem) = names::name_problem(name) {
            return Err(PluginError::InvalidName(problem));
        }
        self.validate(bytes.clone()).await?;
        let tmp = self
            .dir()
            .join(format!(".{name}.wasm.{}.tmp", crate::clock::now_ms()));
        tokio::fs::write(&tmp, &bytes).await?;
        tokio::fs::rename(&tmp, self.dir().join(format!("{name}.wasm"))).await?;
        self.install(name, bytes, false).await
    }

    /// Remove through the directory: delete `NAME.wasm` and unload.
    pub async fn delete_file(&self, name: &str) -> Result<(), PluginError> {
        if let Some(problem) = names::name_problem(name) {
            return Err(PluginError::InvalidName(problem));
        }
        let path = self.dir().join(format!("{name}.wasm"));
        let existed = match tokio::fs::remove_file(&path).await {
            Ok(()) => true,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
            Err(e) => return Err(e.into()),
        };
        match self.remove_loaded(name).await {
            Err(PluginError::Unknown(_)) if existed => Ok(()),
            other => other,
        }
    }

    /// Replay the plugin into a fresh generation, blue/green.
    pub async fn rebuild(&self, name: &str) -> Result<InstallOutcome, PluginError> {
        if let Some(problem) = names::name_problem(name) {
            return Err(PluginError::InvalidName(problem));
        }
        let path = self.dir().join(format!("{name}.wasm"));
        let bytes = match tokio::fs::read(&path).await {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(PluginError::Unknown(name.to_string()));
            }
            Err(e) => return Err(e.into()),
        };
        self.install(name, bytes, true).await
    }

    /// Stop every projector (at shutdown).
    pub async fn shutdown(&self) {
        let generations: Vec<Arc<Generation>> = {
            let slots = self.inner.slots.read().expect("slots lock");
            slots
                .values()
                .flat_map(|s| s.current.iter().chain(s.candidate.iter()).cloned())
                .collect()
        };
        let _ = tokio::task::spawn_blocking(move || {
            for g in generations {
                g.stop();
            }
        })
        .await;
    }
}
