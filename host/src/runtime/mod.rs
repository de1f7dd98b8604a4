//! The sandbox: wasmtime with the component model, one `Engine` for the
//! process, a compile cache on disk, and per-plugin stores with limits.
//!
//! # Layout
//! - `bindings`: the generated bindings of the `projector` world.
//! - `view/`, `logging/`, `emit`, `outbox`: the host side of the imports a plugin gets.
//! - `state`: what a plugin's `Store` holds (WASI granting nothing).
//! - `instance`: one instantiated plugin and the calls into it.
//! - `function_cache`: compiled functions kept for the next component that
//!   has them too (a new version of a plugin compiles only what changed).

pub mod bindings;
mod causes;
mod emit;
mod function_cache;
mod instance;
pub mod logging;
mod outbox;
mod packed;
mod projection;
pub(crate) mod state;
pub mod view;

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::views::index::{FieldKind, IndexField, IndexSpec};
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Config, Engine};

pub use instance::{CallError, PluginInstance};
pub use logging::PluginLog;
pub use projection::WasmProjection;

use bindings::{v0_1, v0_2, v0_3, v0_4, v0_5};
use state::PluginState;

/// How often the epoch advances; the granularity of call deadlines.
const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Limits of one plugin's sandbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PluginLimits {
    /// Bytes the host may hand out or hold for one call: documents returned
    /// by `get`, `get-many` and `scan`, and the batch's pending writes.
    /// Default 64 MiB.
    pub host_bytes: usize,
    /// Largest document a plugin may write. Default 16 MiB.
    pub max_document_bytes: usize,
    /// Linear memory the plugin may grow to, all its memories together, in
    /// bytes. Default 64 MiB.
    pub memory_bytes: usize,
    /// Longest a single call (`handle`, `query`, `describe`) may run. Default 5 s.
    pub call_timeout: Duration,
}

impl Default for PluginLimits {
    fn default() -> Self {
        PluginLimits {
            host_bytes: 64 << 20,
            max_document_bytes: 16 << 20,
            memory_bytes: 64 << 20,
            call_timeout: Duration::from_secs(5),
        }
    }
}

/// Why a plugin could not be loaded. The plugin is reported failed; nothing
/// else is affected.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("not a WebAssembly component: {0}")]
    Compile(String),
    #[error(
        "does not implement the prism:projection projector world (0.5.0, 0.4.0, 0.3.0, 0.2.0 or 0.1.0): {0}"
    )]
    WrongWorld(String),
    #[error("failed to start: {0}")]
    Instantiate(String),
    #[error("compile cache: {0}")]
    Cache(#[from] std::io::Error),
}

/// A compiled, linked plugin ready to be instantiated any number of times.
#[derive(Clone)]
pub struct CompiledPlugin {
    pre: Pre,
    /// Whether this came from the on-disk cache rather than a fresh compile.
    pub from_cache: bool,
}

/// A linked component of one version of the contract.
#[derive(Clone)]
pub(crate) enum Pre {
    V0_5(v0_5::ProjectorPre<PluginState>),
    V0_4(v0_4::ProjectorPre<PluginState>),
    V0_3(v0_3::ProjectorPre<PluginState>),
    V0_2(v0_2::ProjectorPre<PluginState>),
    V0_1(v0_1::ProjectorPre<PluginState>),
}

impl CompiledPlugin {
    /// The version of the contract the component implements.
    pub fn contract(&self) -> &'static str {
        match self.pre {
            Pre::V0_5(_) => "prism:projection@0.5.0",
            Pre::V0_4(_) => "prism:projection@0.4.0",
            Pre::V0_3(_) => "prism:projection@0.3.0",
            Pre::V0_2(_) => "prism:projection@0.2.0",
            Pre::V0_1(_) => "prism:projection@0.1.0",
        }
    }
}

/// The environment variable that makes the engine list every plugin
/// function it loads in `/tmp/perf-PID.map`, for `perf` to name them.
const PERF_MAP_VAR: &str = "PRISM_PERFMAP";

/// The process-wide wasmtime engine and linker.
#[derive(Clone)]
pub struct Runtime {
    engine: Engine,
    linker: Arc<Linker<PluginState>>,
    /// Where compiled components are kept between runs.
    cache_dir: PathBuf,
    /// Compiled functions kept for other components (none if another
    /// process uses the cache directory's).
    functions: Option<Arc<function_cache::FunctionCache>>,
    /// Drives plugin calls (their deadlines and WASI waits).
    rt: tokio::runtime::Handle,
    /// A runtime of our own when none was running where we were created
    /// (tools and tests); kept alive as long as any clone.
    _own: Option<Arc<tokio::runtime::Runtime>>,
}

impl Runtime {
    pub fn new(cache_dir: &Path) -> anyhow::Result<Self> {
        let mut config = Config::new();
        config.wasm_component_model(true);
        config.epoch_interruption(true);
        config.parallel_compilation(true);
        if std::env::var_os(PERF_MAP_VAR).is_some_and(|v| !v.is_empty() && v != "0") {
            // /tmp/perf-PID.map: Linux perf then names the plugins' functions.
            config.profiler(wasmtime::ProfilingStrategy::PerfMap);
        }
        std::fs::create_dir_all(cache_dir)?;
        let functions = function_cache::FunctionCache::open(cache_dir).map(Arc::new);
        if let Some(functions) = &functions {
            config.enable_incremental_compilation(functions.clone())?;
        }
        let engine = Engine::new(&config)?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        v0_5::Projector::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)?;
        v0_4::Projector::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)?;
        v0_3::Projector::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)?;
        v0_2::Projector::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)?;
        v0_1::Projector::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)?;
        let ticker = engine.weak();
        std::thread::Builder::new()
            .name("prism-epoch".into())
            .spawn(move || {
                while let Some(engine) = ticker.upgrade() {
                    engine.increment_epoch();
                    drop(engine);
                    std::thread::sleep(EPOCH_TICK);
                }
            })?;
        let (rt, own) = match tokio::runtime::Handle::try_current() {
            Ok(rt) => (rt, None),
            Err(_) => {
                let own = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(1)
                    .thread_name("prism-plugin-calls")
                    .enable_time()
                    .build()?;
                (own.handle().clone(), Some(Arc::new(own)))
            }
        };
        Ok(Runtime {
            engine,
            linker: Arc::new(linker),
            cache_dir: cache_dir.to_path_buf(),
            functions,
            rt,
            _own: own,
        })
    }

    /// The content hash of a plugin file: its generation.
    pub fn content_hash(bytes: &[u8]) -> String {
        hex::encode(Sha256::digest(bytes))
    }

    fn cache_path(&self, content_hash: &str) -> PathBuf {
        let mut h = DefaultHasher::new();
        self.engine.precompile_compatibility_hash().hash(&mut h);
        env!("CARGO_PKG_VERSION").hash(&mut h);
        self.cache_dir
            .join(format!("{content_hash}-{:016x}.cwasm", h.finish()))
    }

    /// Functions found in and added to the function cache so far.
    pub(crate) fn function_counts(&self) -> (u64, u64) {
        self.functions.as_ref().map_or((0, 0), |f| f.counts())
    }

    /// Compile (or load from the cache) and link a component, checking that
    /// it has the projector world's exports and needs no import we lack.
    pub fn compile(&self, bytes: &[u8]) -> Result<CompiledPlugin, RuntimeError> {
        let path = self.cache_path(&Self::content_hash(bytes));
        let mut from_cache = false;
        let mut component = None;
        if path.exists() {
            // SAFETY: the file was written by `Component::serialize` of this
            // very engine configuration (its compatibility hash is in the
            // name) into our own cache directory, and is replaced atomically.
            match unsafe { Component::deserialize_file(&self.engine, &path) } {
                Ok(c) => {
                    component = Some(c);
                    from_cache = true;
                }
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "ignoring unusable cached component")
                }
            }
        }
        let component = match component {
            Some(c) => c,
            None => {
                if let Some(problem) = not_a_component(bytes) {
                    return Err(RuntimeError::Compile(problem));
                }
                let before = self.function_counts();
                let started = std::time::Instant::now();
                let c = Component::from_binary(&self.engine, bytes)
                    .map_err(|e| RuntimeError::Compile(unparsable(bytes, &e)))?;
                let after = self.function_counts();
                tracing::debug!(
                    took = ?started.elapsed(),
                    reused = after.0 - before.0,
                    compiled = after.1 - before.1,
                    "compiled a component (functions reused from the function cache, and compiled and kept there; other compiles at the same time count too)"
                );
                let serialized = c
                    .serialize()
                    .map_err(|e| RuntimeError::Compile(format!("{e:#}")))?;
                self.write_cache_entry(&path, &serialized)?;
                c
            }
        };
        let instance_pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(|e| RuntimeError::WrongWorld(format!("{e:#}")))?;
        let pre = match v0_5::ProjectorPre::new(instance_pre.clone()) {
            Ok(pre) => Pre::V0_5(pre),
            Err(current) => older_pre(instance_pre)
                .ok_or_else(|| RuntimeError::WrongWorld(format!("{current:#}")))?,
        };
        Ok(CompiledPlugin { pre, from_cache })
    }

    /// Compile, instantiate and describe: everything that can fail before a
    /// generation gets a keyspace. `scratch` is a keyspace that finds
    /// nothing, for the instance that describes the plugin; `plugin` is the
    /// plugin's name, which the ids of its emitted events derive from.
    pub fn load(
        &self,
        plugin: &str,
        bytes: &[u8],
        log: Arc<PluginLog>,
        limits: PluginLimits,
        scratch: crate::views::Keyspace,
    ) -> Result<WasmProjection, RuntimeError> {
        let compiled = self.compile(bytes)?;
        let mut instance = self.instantiate(
            &compiled,
            view::ViewAccess::new(scratch),
            log.clone(),
            limits,
        )?;
        let description = instance
            .describe()
            .map_err(|e| RuntimeError::Instantiate(format!("describe: {e}")))?;
        let indexes: Vec<IndexSpec> = description.indexes.into_iter().map(index_spec).collect();
        if let Some(problem) = indexes.iter().find_map(IndexSpec::problem) {
            return Err(RuntimeError::Instantiate(format!("describe: {problem}")));
        }
        if let Some(problem) = crate::projector::emit::streams_problem(&description.emits) {
            return Err(RuntimeError::Instantiate(format!("describe: {problem}")));
        }
        let emit_rules = (!description.emits.is_empty()).then(|| {
            Arc::new(crate::projector::emit::EmitRules::new(
                plugin,
                &description.emits,
            ))
        });
        if let Some(problem) = crate::outbox::targets_problem(&description.targets) {
            return Err(RuntimeError::Instantiate(format!("describe: {problem}")));
        }
        let outbox_rules = (!description.targets.is_empty()).then(|| {
            Arc::new(crate::outbox::OutboxRules::new(
                plugin,
                &description.targets,
            ))
        });
        let described = crate::projector::Described {
            name: description.name,
            version: description.version,
            kind: format!("wasm component, {}", compiled.contract()),
            event_types: description.event_types,
            queries: description.queries,
            indexes,
            emits: description.emits,
            targets: description.targets,
        };
        Ok(WasmProjection::new(
            self.clone(),
            compiled,
            log,
            limits,
            described,
            emit_rules,
            outbox_rules,
        ))
    }

    /// Put a compiled component into the cache under `path`. Each writer has a
    /// temporary file of its own, synced and then renamed into place, so
    /// concurrent compiles of the same bytes (an upload and the directory
    /// watcher, or two servers sharing the cache) never write into one file,
    /// and a reader sees a whole entry or none, even after a crash.
    fn write_cache_entry(&self, path: &Path, serialized: &[u8]) -> std::io::Result<()> {
        crate::storage::files::write_atomically(path, serialized)
    }

    /// Start an instance of a compiled plugin against `view`.
    pub fn instantiate(
        &self,
        plugin: &CompiledPlugin,
        view: view::ViewAccess,
        log: Arc<PluginLog>,
        limits: PluginLimits,
    ) -> Result<PluginInstance, RuntimeError> {
        PluginInstance::new(
            &self.engine,
            &plugin.pre,
            view,
            log,
            limits,
            self.rt.clone(),
        )
    }
}

/// The component linked as one of the older versions of the contract, the
/// newest first; `None` if it implements none of them.
fn older_pre(pre: wasmtime::component::InstancePre<PluginState>) -> Option<Pre> {
    if let Ok(pre) = v0_4::ProjectorPre::new(pre.clone()) {
        return Some(Pre::V0_4(pre));
    }
    if let Ok(pre) = v0_3::ProjectorPre::new(pre.clone()) {
        return Some(Pre::V0_3(pre));
    }
    if let Ok(pre) = v0_2::ProjectorPre::new(pre.clone()) {
        return Some(Pre::V0_2(pre));
    }
    v0_1::ProjectorPre::new(pre).ok().map(Pre::V0_1)
}

/// An index declaration of the contract as the view store's own.
fn index_spec(index: bindings::Index) -> IndexSpec {
    IndexSpec {
        name: index.name,
        fields: index
            .fields
            .into_iter()
            .map(|f| IndexField {
                path: f.path,
                kind: match f.kind {
                    bindings::FieldKind::Number => FieldKind::Number,
                    bindings::FieldKind::String => FieldKind::String,
                    bindings::FieldKind::Boolean => FieldKind::Boolean,
                    bindings::FieldKind::Timestamp => FieldKind::Timestamp,
                    bindings::FieldKind::Any => FieldKind::Any,
                },
            })
            .collect(),
        unique: index.unique,
        prefix: index.prefix,
    }
}

/// What a file is instead of a component, if its first eight bytes tell:
/// empty, not WebAssembly at all, or a core module (same magic, different
/// version and layer), which users build by mistake often enough to deserve
/// advice.
fn not_a_component(bytes: &[u8]) -> Option<String> {
    const MAGIC: &[u8] = b"\0asm";
    if bytes.is_empty() {
        return Some("the file is empty".into());
    }
    if !bytes.starts_with(MAGIC) {
        let start = &bytes[..bytes.len().min(MAGIC.len())];
        let hex: Vec<String> = start.iter().map(|b| format!("{b:02x}")).collect();
        return Some(format!(
            "the file starts with {} (\"{}\"), not the WebAssembly magic \\0asm",
            hex.join(" "),
            start.escape_ascii()
        ));
    }
    if bytes.len() >= 8 && bytes[4..8] == [1, 0, 0, 0] {
        return Some(
            "this is a core WebAssembly module, not a component (build for wasm32-wasip2 or run `wasm-tools component new`)".into(),
        );
    }
    None
}

/// A component wasmtime could not parse or validate, in one line: the
/// parser's message and where in the file it stopped. The error's own text
/// may span several lines (the parser prints byte arrays with `{:#?}`).
fn unparsable(bytes: &[u8], e: &wasmtime::Error) -> String {
    let parse_error = e
        .chain()
        .find_map(|cause| cause.downcast_ref::<wasmparser::BinaryReaderError>());
    match parse_error {
        Some(parse_error) => format!(
            "{} (at byte {} of {})",
            first_line(parse_error.message()),
            parse_error.offset(),
            bytes.len()
        ),
        None => first_line(&format!("{e:#}")).to_string(),
    }
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or_default()
}

#[cfg(test)]
mod tests;
