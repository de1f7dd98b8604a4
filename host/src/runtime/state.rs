//! What a plugin's wasmtime `Store` holds: its WASI context (granting
//! nothing), its memory limits, its view access and its log.

use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::component::ResourceTable;
use wasmtime::{ResourceLimiter, StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use super::PluginLimits;
use super::emit::EmitState;
use super::logging::PluginLog;
use super::logging::stdio::LogOutput;
use super::outbox::OutboxState;
use super::view::ViewAccess;

pub struct PluginState {
    wasi: WasiCtx,
    table: ResourceTable,
    /// Enforced by wasmtime on every memory or table growth.
    pub(crate) limits: MeteredLimits,
    pub(crate) view: ViewAccess,
    pub(crate) log: Arc<PluginLog>,
    /// The batch in flight and the rules of its emitted events.
    pub(crate) emit: EmitState,
    /// The batch in flight and the rules of its outbox requests.
    pub(crate) outbox: OutboxState,
    /// When the call in progress must end (checked at every epoch tick).
    pub(crate) deadline: Instant,
}

impl PluginState {
    pub fn new(mut view: ViewAccess, log: Arc<PluginLog>, limits: &PluginLimits) -> Self {
        view.set_limits(limits);
        // No preopened directories, no environment, no arguments, no network:
        // only clocks and randomness, which language runtimes need to start.
        let wasi = WasiCtxBuilder::new()
            .stdout(LogOutput::new(log.clone(), "stdout"))
            .stderr(LogOutput::new(log.clone(), "stderr"))
            .build();
        PluginState {
            wasi,
            table: ResourceTable::new(),
            limits: MeteredLimits {
                inner: StoreLimitsBuilder::new()
                    .trap_on_grow_failure(true)
                    .instances(64)
                    .build(),
                memory_limit: limits.memory_bytes,
                memory_bytes: 0,
                refused: None,
            },
            view,
            log,
            emit: EmitState::default(),
            outbox: OutboxState::default(),
            deadline: Instant::now(),
        }
    }

    /// A call starts: its deadline is `timeout` from now, and it has the
    /// whole host budget to spend.
    pub(crate) fn arm(&mut self, timeout: Duration) {
        self.deadline = Instant::now() + timeout;
        self.view.new_call();
    }
}

impl WasiView for PluginState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// The store's limits, plus how much linear memory the instance has grown
/// to, so that the projector can replace an instance that only ever grows
/// (some language runtimes never give memory back) before it hits the limit.
///
/// The memory limit is enforced here rather than by `StoreLimits`, which
/// limits each linear memory on its own (a component with several memories
/// would get the limit several times over), and so that a refusal is
/// recorded where `explain` can find it instead of being recognised in an
/// error's text.
pub struct MeteredLimits {
    /// Tables and instances; also makes a growth that fails after we allowed
    /// it trap, like a refused one.
    inner: StoreLimits,
    /// The plugin's memory limit, in bytes.
    memory_limit: usize,
    /// Sum of all linear memories' sizes, in bytes.
    pub(crate) memory_bytes: usize,
    /// The growth the memory limit refused, if any: the instance trapped
    /// because of it.
    pub(crate) refused: Option<RefusedGrowth>,
}

/// A memory growth refused for going over the plugin's memory limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RefusedGrowth {
    /// How many bytes the memory asked to grow by.
    pub(crate) growth: usize,
    /// What the plugin's memory would have come to, in bytes.
    pub(crate) total: usize,
}

impl ResourceLimiter for MeteredLimits {
    /// Called before every growth of a linear memory, and for each memory's
    /// initial size when an instance starts (`current` is then 0).
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // `current` and `desired` are the sizes of one memory, but the limit
        // is the plugin's: a component made of several core modules has a
        // memory for each, and together they must stay under it.
        let growth = desired.saturating_sub(current);
        let total = self.memory_bytes.saturating_add(growth);
        if total > self.memory_limit {
            self.refused = Some(RefusedGrowth { growth, total });
            // An error, not `Ok(false)`: the instance traps at once rather than
            // leave the guest to handle a failed `memory.grow`.
            wasmtime::bail!("memory limit of {} bytes reached", self.memory_limit);
        }
        // A growth allowed here that then fails anyway (past the memory's own
        // maximum) traps in `memory_grow_failed`, and a trapped instance is
        // dropped, so the count need not be undone.
        self.memory_bytes = total;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.inner.table_growing(current, desired, maximum)
    }

    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.inner.memory_grow_failed(error)
    }

    fn table_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.inner.table_grow_failed(error)
    }

    fn instances(&self) -> usize {
        self.inner.instances()
    }

    fn tables(&self) -> usize {
        self.inner.tables()
    }

    fn memories(&self) -> usize {
        self.inner.memories()
    }
}
