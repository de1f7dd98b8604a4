//! The one task that owns a plugin: its record, its live generations, and
//! every change to them.
//!
//! Everything that changes a plugin arrives in this task's mailbox: files
//! appearing or changing, uploads, removals, rebuilds, promotions,
//! rollbacks, and its projectors saying they caught up or failed. The task
//! handles one message at a time, so no lock is needed and no operation of
//! one plugin waits for another plugin's. A change is a [`Transition`] of
//! the plugin's record (`lifecycle.rs`): the new record is stored durably
//! first, then its effects are carried out, then readers see the new state
//! through a `watch` of [`Snapshot`]s, without going through the mailbox.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};

use super::generation::Generation;
use super::lifecycle::{Effect, InstallDecision, Refused, Transition};
use super::names::{self, PluginName};
use super::record::{ContentHash, GenRecord, PluginRecord, Purpose};
use super::{InstallOutcome, PluginError, Shared, Snapshot};
use crate::declarative::{Kind, ViewProjection};
use crate::projector::{ErrorReport, Projection, ProjectorEvent};
use crate::runtime::PluginLog;

pub(super) type Reply<T> = oneshot::Sender<Result<T, PluginError>>;

/// What a plugin's task is asked to do.
pub(super) enum Msg {
    /// At start: resume what the record (given to [`Actor::new`]) says.
    Restore,
    /// A plugin file appeared and is being written: list the plugin as
    /// loading until it has settled.
    FileSeen,
    /// The plugin file was created, changed or removed, and has settled.
    FileChanged,
    /// An upload: validate, write the file, install.
    Put(Vec<u8>, Reply<InstallOutcome>),
    /// `DELETE`: remove the file and unload.
    Remove(Reply<()>),
    Rebuild(Reply<InstallOutcome>),
    Promote(Reply<()>),
    Rollback(Reply<()>),
    Discard(Reply<()>),
    /// Let a quarantined generation run again; with `skip`, past the batch
    /// it died in (its events dead-lettered), else one event at a time
    /// through that batch.
    Release {
        skip: bool,
        reply: Reply<()>,
    },
    /// A projector of the generation with this keyspace reports.
    Projector(String, ProjectorEvent),
    Shutdown(oneshot::Sender<()>),
}

pub(super) struct Actor {
    name: PluginName,
    shared: Arc<Shared>,
    record: PluginRecord,
    /// Live generation objects by keyspace: the serving one and the
    /// candidate (a parked previous generation has none).
    live: HashMap<String, Arc<Generation>>,
    serving: Option<Arc<Generation>>,
    /// Content being loaded before it has a generation, for status.
    loading: Option<ContentHash>,
    /// A file for this plugin was seen and has not been acted on yet.
    file_pending: bool,
    /// When the plugin file was last looked at, for status.
    file_checked_at_ms: Option<u64>,
    /// Generations released from a quarantine to go one event at a time up
    /// to this position (by keyspace).
    careful: HashMap<String, crate::log::Position>,
    snapshot: watch::Sender<Arc<Snapshot>>,
    mailbox: mpsc::UnboundedReceiver<Msg>,
    /// Handed to projectors so that they can report back.
    myself: mpsc::UnboundedSender<Msg>,
}

impl Actor {
    /// A plugin's task, starting from its stored `record` and, if one is
    /// open already, its serving generation (so that it serves before the
    /// task has run at all).
    pub(super) fn new(
        name: PluginName,
        shared: Arc<Shared>,
        record: PluginRecord,
        serving: Option<Arc<Generation>>,
        snapshot: watch::Sender<Arc<Snapshot>>,
        mailbox: mpsc::UnboundedReceiver<Msg>,
        myself: mpsc::UnboundedSender<Msg>,
    ) -> Actor {
        let live = serving
            .iter()
            .map(|g| (g.record().keyspace.clone(), g.clone()))
            .collect();
        let actor = Actor {
            name,
            shared,
            record,
            live,
            serving,
            loading: None,
            file_pending: false,
            file_checked_at_ms: None,
            careful: HashMap::new(),
            snapshot,
            mailbox,
            myself,
        };
        actor.publish();
        actor
    }

    pub(super) async fn run(mut self) {
        loop {
            let expiry = self.previous_expiry();
            let msg = tokio::select! {
                msg = self.mailbox.recv() => match msg {
                    Some(msg) => msg,
                    None => return,
                },
                _ = sleep_until(expiry), if expiry.is_some() => {
                    let result = self.transition(Transition::PreviousExpired).await;
                    self.log_refusal(result);
                    self.publish();
                    continue;
                }
            };
            match msg {
                Msg::Restore => self.restore().await,
                Msg::FileSeen => self.file_pending = true,
                Msg::FileChanged => {
                    if let Err(e) = self.file_changed().await {
                        tracing::warn!(plugin = %self.name, error = %e, "plugin file not acted on");
                    }
                    self.file_pending = false;
                    self.file_checked_at_ms = Some(crate::clock::now_ms());
                }
                Msg::Put(bytes, reply) => {
                    let result = self.put(bytes).await;
                    self.answer(reply, result);
                }
                Msg::Remove(reply) => {
                    let result = self.remove(true).await;
                    self.answer(reply, result);
                }
                Msg::Rebuild(reply) => {
                    let result = self.rebuild().await;
                    self.answer(reply, result);
                }
                Msg::Promote(reply) => {
                    let result = self.promote().await;
                    self.answer(reply, result);
                }
                Msg::Rollback(reply) => {
                    let result = match self.exists() {
                        Ok(()) => self.transition(Transition::Rollback).await,
                        Err(e) => Err(e),
                    };
                    self.answer(reply, result);
                }
                Msg::Discard(reply) => {
                    let result = match self.exists() {
                        Ok(()) => self.transition(Transition::Discard).await,
                        Err(e) => Err(e),
                    };
                    self.answer(reply, result);
                }
                Msg::Release { skip, reply } => {
                    let result = self.release(skip).await;
                    self.answer(reply, result);
                }
                Msg::Projector(keyspace, event) => self.projector_event(keyspace, event).await,
                Msg::Shutdown(done) => {
                    let live: Vec<Arc<Generation>> = self.live.values().cloned().collect();
                    let _ = tokio::task::spawn_blocking(move || live.iter().for_each(|g| g.join()))
                        .await;
                    let _ = done.send(());
                    return;
                }
            }
            self.publish();
        }
    }

    /// Answer a request once what it did is published, so that a client
    /// reading right after the answer (`GET /plugins/NAME` after a refused
    /// upload or a removal) sees it done.
    fn answer<T>(&self, reply: Reply<T>, result: Result<T, PluginError>) {
        self.publish();
        let _ = reply.send(result);
    }

    fn exists(&self) -> Result<(), PluginError> {
        if self.record.is_empty() && self.loading.is_none() && !self.file_pending {
            Err(PluginError::Unknown(self.name.to_string()))
        } else {
            Ok(())
        }
    }

    fn previous_expiry(&self) -> Option<tokio::time::Instant> {
        let previous = self.record.previous.as_ref()?;
        let retention = self.shared.settings(&self.name).previous_retention();
        let expires_ms = previous.retired_at_ms + retention.as_millis() as u64;
        let left = expires_ms.saturating_sub(crate::clock::now_ms());
        Some(tokio::time::Instant::now() + Duration::from_millis(left))
    }

    fn log_refusal(&self, result: Result<(), PluginError>) {
        if let Err(e) = result {
            tracing::warn!(plugin = %self.name, error = %e, "lifecycle transition refused");
        }
    }

    /// Make readers see the current state.
    fn publish(&self) {
        let candidate = self
            .record
            .candidate
            .as_ref()
            .and_then(|c| Some((self.live.get(&c.generation.keyspace)?.clone(), c.purpose)));
        self.snapshot.send_replace(Arc::new(Snapshot {
            record: self.record.clone(),
            serving: self.serving.clone(),
            candidate,
            loading: self.loading.clone(),
            file_pending: self.file_pending,
            file_checked_at_ms: self.file_checked_at_ms,
        }));
    }

    /// Store `next` durably, or forget the plugin when nothing is left.
    fn persist(&self, next: &PluginRecord) -> Result<(), PluginError> {
        let key = super::record_key(&self.name);
        if next.is_empty() {
            self.shared.views.meta_delete(&key)?;
        } else {
            let text = serde_json::to_string(next).expect("records serialize");
            self.shared.views.meta_put(&key, &text)?;
        }
        Ok(())
    }

    /// Apply a transition: store the new record, then carry out its effects.
    async fn transition(&mut self, t: Transition) -> Result<(), PluginError> {
        let mut next = self.record.clone();
        let effects = next.apply(t).map_err(|e| match e {
            Refused::Conflict(m) => PluginError::Conflict(m),
            Refused::Illegal(m) => PluginError::Internal(m),
        })?;
        self.persist(&next)?;
        let wanted = |r: &PluginRecord| (!r.is_empty()).then(|| r.desired.clone()).flatten();
        if wanted(&self.record) != wanted(&next)
            && let Some(changes) = self.shared.desired_changes.get()
        {
            let _ = changes.send((self.name.clone(), wanted(&next)));
        }
        self.record = next;
        for effect in effects {
            self.carry_out(effect).await;
        }
        Ok(())
    }

    async fn carry_out(&mut self, effect: Effect) {
        match effect {
            Effect::Serve(g) => match self.generation(&g) {
                Ok(generation) => {
                    self.serving = Some(generation);
                    // Readers switch now, before anything slow happens.
                    self.publish();
                    tracing::info!(plugin = %self.name, generation = %g.hash.short(), "serving");
                }
                Err(e) => {
                    tracing::error!(plugin = %self.name, error = %e, "could not open the serving keyspace")
                }
            },
            Effect::Run(g) => {
                if let Err(e) = self.run_generation(&g).await {
                    tracing::error!(plugin = %self.name, error = %e, "could not start a projector");
                }
            }
            Effect::Park(g) => {
                if let Some(generation) = self.live.remove(&g.keyspace) {
                    generation.stop();
                }
            }
            Effect::Retire(g) => match self.live.remove(&g.keyspace) {
                Some(generation) => generation.retire(),
                None => match self.shared.views.keyspace(self.name.as_str(), &g.keyspace) {
                    Ok(keyspace) => keyspace.retire(),
                    Err(e) => {
                        tracing::error!(plugin = %self.name, error = %e, "could not retire a keyspace")
                    }
                },
            },
            Effect::RewriteFile(hash) => {
                if let Err(e) = self.write_file_from_store(&hash).await {
                    tracing::error!(plugin = %self.name, error = %e, "could not rewrite the plugin file");
                }
            }
        }
        if self.serving.as_ref().is_some_and(|s| {
            self.record.serving.as_ref().map(|g| &g.keyspace) != Some(&s.record().keyspace)
        }) {
            self.serving = None;
        }
    }

    /// The live object of generation `g`, opening its keyspace if needed.
    fn generation(&mut self, g: &GenRecord) -> Result<Arc<Generation>, PluginError> {
        if let Some(generation) = self.live.get(&g.keyspace) {
            return Ok(generation.clone());
        }
        let generation = Generation::open(
            &self.name,
            g.clone(),
            &self.shared.views,
            Arc::new(PluginLog::new()),
        )?;
        self.live.insert(g.keyspace.clone(), generation.clone());
        Ok(generation)
    }

    /// Start `g`'s projector, loading its projection from the component
    /// store first if it has none yet. A quarantined generation is not run.
    async fn run_generation(&mut self, g: &GenRecord) -> Result<(), PluginError> {
        let generation = self.generation(g)?;
        if let Some(q) = &g.quarantine {
            generation.status().quarantine(ErrorReport::new(
                format!(
                    "quarantined: {}; resume it (POST /plugins/{name}/resume), skip the batch \
                     (POST /plugins/{name}/skip), rebuild or remove it",
                    q.reason,
                    name = self.name
                ),
                Some(q.from),
            ));
            self.publish();
            return Ok(());
        }
        self.publish();
        let projection = match generation.projection_loaded() {
            Some(p) => p,
            None => {
                let bytes = match self.shared.components.get(&g.hash) {
                    Ok(bytes) => bytes,
                    Err(e) => {
                        let report = ErrorReport::new(
                            format!("the component {} is not in the store: {e}", g.hash.short()),
                            None,
                        );
                        self.generation_failed(&generation, report);
                        return Ok(());
                    }
                };
                let kind = Kind::of(&bytes);
                match self
                    .load(bytes, kind, generation.plugin_log().clone())
                    .await
                {
                    Ok(p) => p,
                    Err(e) => {
                        let report = ErrorReport::new(format!("loading failed: {e}"), None);
                        self.generation_failed(&generation, report);
                        return Ok(());
                    }
                }
            }
        };
        let myself = self.myself.clone();
        let keyspace = g.keyspace.clone();
        let notify = Box::new(move |event| {
            let _ = myself.send(Msg::Projector(keyspace.clone(), event));
        });
        let mut config = self.shared.settings(&self.name).projector_config();
        config.careful_until = self.careful.remove(&g.keyspace);
        generation.start(
            projection,
            self.shared.log.clone(),
            config,
            notify,
            self.shared.rt.clone(),
        )?;
        Ok(())
    }

    /// Let the quarantined generation run again.
    async fn release(&mut self, skip: bool) -> Result<(), PluginError> {
        self.exists()?;
        let g = self
            .record
            .serving
            .iter()
            .chain(self.record.candidate.iter().map(|c| &c.generation))
            .find(|g| g.quarantine.is_some())
            .cloned()
            .ok_or_else(|| {
                PluginError::Conflict("no generation of this plugin is quarantined".into())
            })?;
        let q = g.quarantine.clone().expect("found quarantined");
        if skip {
            let keyspace = self
                .shared
                .views
                .keyspace(self.name.as_str(), &g.keyspace)?;
            let log = self.shared.log.clone();
            tokio::task::spawn_blocking(move || skip_batch(&keyspace, &log, &q))
                .await
                .map_err(|e| PluginError::Internal(e.to_string()))??;
        } else {
            self.careful.insert(g.keyspace.clone(), q.to);
        }
        // The generation object of the quarantine is spent: a fresh one runs.
        if let Some(old) = self.live.remove(&g.keyspace) {
            old.stop();
        }
        let reopened = self.generation(&g)?;
        if self
            .serving
            .as_ref()
            .is_some_and(|s| s.record().keyspace == g.keyspace)
        {
            self.serving = Some(reopened);
        }
        self.transition(Transition::Released(g.keyspace.clone()))
            .await
    }

    /// A generation could not be loaded: it is failed, as if its projector
    /// had failed (and said so through the mailbox, like a projector does).
    fn generation_failed(&self, generation: &Arc<Generation>, report: ErrorReport) {
        generation.load_failed(report.clone());
        let keyspace = generation.record().keyspace.clone();
        let _ = self
            .myself
            .send(Msg::Projector(keyspace, ProjectorEvent::Failed(report)));
    }

    /// Load a plugin's content: a component is compiled, instantiated and
    /// described off the async workers, a few at a time for the whole
    /// server; a view file is read and checked.
    async fn load(
        &self,
        bytes: Vec<u8>,
        kind: Kind,
        log: Arc<PluginLog>,
    ) -> Result<Arc<dyn Projection>, PluginError> {
        let _slot = self
            .shared
            .compile_slots
            .acquire()
            .await
            .expect("never closed");
        let limits = self.shared.settings(&self.name).limits();
        let file = match kind {
            Kind::Component => format!("{}.wasm", self.name),
            Kind::ViewFile => self.name.file_name(&bytes),
        };
        if kind == Kind::ViewFile {
            if Kind::of(&bytes) != Kind::ViewFile {
                // Stored content is told apart by its first line alone.
                return Err(PluginError::Invalid(format!(
                    "{file}: line 1: a view file is a YAML mapping or a JSON object \
                     (its first line opens it: `key: …`, `{{` or `---`)"
                )));
            }
            // A view file is read and checked, not compiled: it is quick.
            return match ViewProjection::compile(&bytes, limits) {
                Ok(p) => Ok(Arc::new(p)),
                Err(e) => Err(PluginError::Invalid(format!("{file}: {e}"))),
            };
        }
        let runtime = self.shared.runtime.clone();
        let scratch = self.shared.views.detached("view.validation");
        let name = self.name.clone();
        let loaded = tokio::task::spawn_blocking(move || {
            runtime.load(name.as_str(), &bytes, log, limits, scratch)
        })
        .await
        .map_err(|e| {
            tracing::error!(plugin = %self.name, error = %e, "loading a plugin panicked");
            PluginError::Internal(format!("loading the plugin failed inside the server: {e}"))
        })?;
        match loaded {
            Ok(p) => Ok(Arc::new(p)),
            Err(e) => Err(PluginError::Invalid(format!("{file}: {e}"))),
        }
    }

    async fn restore(&mut self) {
        let retention = self.shared.settings(&self.name).previous_retention();
        let restarted = Transition::Restarted {
            now_ms: crate::clock::now_ms(),
            retention_ms: retention.as_millis() as u64,
        };
        let result = self.transition(restarted).await;
        self.log_refusal(result);
    }

    /// Bring the plugin in line with its file.
    async fn file_changed(&mut self) -> Result<(), PluginError> {
        let file = names::file_of(&self.shared.config.dir, &self.name);
        // A file is what its name says it is.
        let kind = file
            .as_ref()
            .and_then(|p| Kind::of_file(&p.file_name()?.to_string_lossy()))
            .unwrap_or(Kind::Component);
        let read = match file {
            Some(path) => tokio::fs::read(&path).await,
            None => Err(std::io::ErrorKind::NotFound.into()),
        };
        let bytes = match read {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if !self.record.is_empty() {
                    self.remove(false).await?;
                }
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        };
        let hash = ContentHash::of(&bytes);
        if self.record.desired.as_ref() == Some(&hash) {
            return Ok(());
        }
        match self.install(bytes, kind, hash, false, false).await {
            Ok(_) => Ok(()),
            Err(PluginError::Invalid(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn put(&mut self, bytes: Vec<u8>) -> Result<InstallOutcome, PluginError> {
        let hash = ContentHash::of(&bytes);
        let kind = Kind::of(&bytes);
        self.install(bytes, kind, hash, false, true).await
    }

    async fn rebuild(&mut self) -> Result<InstallOutcome, PluginError> {
        self.exists()?;
        let hash = self
            .record
            .desired
            .clone()
            .or_else(|| self.record.serving.as_ref().map(|g| g.hash.clone()))
            .ok_or_else(|| PluginError::Unknown(self.name.to_string()))?;
        let bytes = self.shared.components.get(&hash)?;
        let kind = Kind::of(&bytes);
        self.install(bytes, kind, hash, true, false).await
    }

    /// Act on content the operator asked for. An upload (`upload`) that
    /// does not load is refused and changes nothing; a file that does not
    /// load is remembered as failed.
    async fn install(
        &mut self,
        bytes: Vec<u8>,
        kind: Kind,
        hash: ContentHash,
        fresh: bool,
        upload: bool,
    ) -> Result<InstallOutcome, PluginError> {
        let decision = self.record.decide_install(&hash, fresh);
        let serving_exists = match decision {
            InstallDecision::Unchanged => {
                if upload {
                    self.write_file(&bytes).await?;
                }
                return Ok(InstallOutcome::Unchanged);
            }
            InstallDecision::KeepServing => {
                if upload {
                    self.write_file(&bytes).await?;
                }
                self.transition(Transition::KeepServing).await?;
                return Ok(InstallOutcome::Unchanged);
            }
            InstallDecision::Rollback => {
                if upload {
                    self.write_file(&bytes).await?;
                }
                self.transition(Transition::Rollback).await?;
                return Ok(InstallOutcome::Replacing);
            }
            InstallDecision::Load { serving_exists } => serving_exists,
        };
        self.loading = Some(hash.clone());
        self.publish();
        let log = Arc::new(PluginLog::new());
        let loaded = self.load(bytes.clone(), kind, log.clone()).await;
        self.loading = None;
        let projection = match loaded {
            Ok(p) => p,
            Err(PluginError::Invalid(message)) if !upload => {
                tracing::warn!(plugin = %self.name, error = %message, "plugin rejected");
                self.shared.components.put(&hash, &bytes)?;
                self.transition(Transition::Rejected(
                    hash,
                    ErrorReport::new(message.clone(), None),
                ))
                .await?;
                return Err(PluginError::Invalid(message));
            }
            Err(e) => return Err(e),
        };
        self.shared.components.put(&hash, &bytes)?;
        if upload {
            self.write_file(&bytes).await?;
        }
        let g = GenRecord::new(hash.clone(), self.shared.settings(&self.name));
        let keyspace = g.keyspace.clone();
        let generation = Generation::open(&self.name, g.clone(), &self.shared.views, log)?;
        generation.attach(projection);
        self.live.insert(keyspace.clone(), generation);
        let (transition, outcome) = if serving_exists {
            let purpose = if fresh {
                Purpose::Rebuild
            } else {
                Purpose::Upgrade
            };
            (
                Transition::CandidateStarted(g, purpose),
                InstallOutcome::Replacing,
            )
        } else {
            (Transition::Started(g), InstallOutcome::Started)
        };
        if let Err(e) = self.transition(transition).await {
            if let Some(generation) = self.live.remove(&keyspace) {
                generation.retire();
            }
            return Err(e);
        }
        tracing::info!(plugin = %self.name, generation = %hash.short(), ?outcome, "plugin installed");
        Ok(outcome)
    }

    async fn remove(&mut self, delete_file: bool) -> Result<(), PluginError> {
        self.exists()?;
        if delete_file {
            self.remove_files_except(None).await?;
        }
        self.transition(Transition::Removed).await?;
        self.serving = None;
        self.live.clear();
        self.file_pending = false;
        tracing::info!(plugin = %self.name, "plugin removed");
        Ok(())
    }

    async fn promote(&mut self) -> Result<(), PluginError> {
        self.exists()?;
        let candidate = self
            .record
            .candidate
            .as_ref()
            .and_then(|c| self.live.get(&c.generation.keyspace))
            .ok_or_else(|| PluginError::Conflict("there is no candidate to promote".into()))?;
        let head = self.shared.log.head();
        if candidate.state() != crate::projector::State::Live || candidate.position() < head {
            return Err(PluginError::Conflict(format!(
                "the candidate has not caught up yet (at {} of {head})",
                candidate.position()
            )));
        }
        self.transition(Transition::Promote).await
    }

    async fn projector_event(&mut self, keyspace: String, event: ProjectorEvent) {
        let is_candidate = self
            .record
            .candidate
            .as_ref()
            .is_some_and(|c| c.generation.keyspace == keyspace);
        if !is_candidate {
            return;
        }
        let transition = match event {
            ProjectorEvent::CaughtUp => {
                Transition::CaughtUp(keyspace, self.shared.settings(&self.name).cutover())
            }
            ProjectorEvent::Failed(report) => {
                tracing::warn!(plugin = %self.name, error = %report.message, "candidate failed; the serving generation keeps serving");
                Transition::CandidateFailed(keyspace, report)
            }
        };
        let result = self.transition(transition).await;
        self.log_refusal(result);
    }

    /// Remove the files that stand for this plugin, but `keep`.
    async fn remove_files_except(&self, keep: Option<&str>) -> Result<(), PluginError> {
        let (name, dir) = (self.name.clone(), self.shared.config.dir.clone());
        let keep = keep.map(str::to_owned);
        tokio::task::spawn_blocking(move || name.remove_files(&dir, keep.as_deref()))
            .await
            .map_err(|e| PluginError::Internal(e.to_string()))??;
        Ok(())
    }

    /// Write `bytes` as the plugin file, atomically, named after their kind;
    /// a file of another kind for the same plugin is removed.
    async fn write_file(&self, bytes: &[u8]) -> Result<(), PluginError> {
        let (name, dir) = (self.name.clone(), self.shared.config.dir.clone());
        let bytes = bytes.to_vec();
        tokio::task::spawn_blocking(move || name.install_file(&dir, &bytes))
            .await
            .map_err(|e| PluginError::Internal(e.to_string()))??;
        Ok(())
    }

    async fn write_file_from_store(&self, hash: &ContentHash) -> Result<(), PluginError> {
        let bytes = self.shared.components.get(hash)?;
        self.write_file(&bytes).await
    }
}

/// Dead-letter the events of the batch a quarantined generation died in
/// and move its checkpoint past them, in one commit (blocking).
fn skip_batch(
    keyspace: &crate::views::Keyspace,
    log: &crate::log::EventLog,
    q: &super::record::Quarantine,
) -> Result<(), PluginError> {
    let checkpoint = keyspace.checkpoint()?;
    if checkpoint >= q.to {
        return Ok(());
    }
    let mut letters = Vec::new();
    log.scan(checkpoint.next(), |e| {
        if e.position > q.to {
            return false;
        }
        let record = serde_json::json!({
            "position": e.position,
            "error": format!("skipped by an operator: {}", q.reason),
            "event": {
                "position": e.position,
                "stream": e.stream,
                "stream_version": e.stream_version,
                "id": e.id,
                "type": e.event_type,
                "recorded_at_ms": e.recorded_at_ms,
            },
        });
        letters.push((e.position, record.to_string()));
        true
    })
    .map_err(|e| PluginError::Internal(e.to_string()))?;
    keyspace.commit(
        &crate::views::Transaction::new(),
        &letters,
        q.to,
        crate::views::ChangeLog::Off,
    )?;
    Ok(())
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
