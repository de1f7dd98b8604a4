//! What a plugin's wasmtime `Store` holds: its WASI context (granting
//! nothing), its memory limits, its view access and its log.

use std::sync::Arc;

use wasmtime::component::ResourceTable;
use wasmtime::{ResourceLimiter, StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use super::PluginLimits;
use super::logging::PluginLog;
use super::logging::stdio::LogOutput;
use super::view::ViewAccess;

pub struct PluginState {
    wasi: WasiCtx,
    table: ResourceTable,
    /// Enforced by wasmtime on every memory or table growth.
    pub(crate) limits: MeteredLimits,
    pub(crate) view: ViewAccess,
    pub(crate) log: Arc<PluginLog>,
}

impl PluginState {
    pub fn new(view: ViewAccess, log: Arc<PluginLog>, limits: &PluginLimits) -> Self {
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
                    .memory_size(limits.memory_bytes)
                    .trap_on_grow_failure(true)
                    .instances(64)
                    .build(),
                memory_bytes: 0,
            },
            view,
            log,
        }
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
pub struct MeteredLimits {
    inner: StoreLimits,
    /// Sum of all linear memories' sizes, in bytes.
    pub(crate) memory_bytes: usize,
}

impl ResourceLimiter for MeteredLimits {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let allowed = self.inner.memory_growing(current, desired, maximum)?;
        if allowed {
            self.memory_bytes += desired.saturating_sub(current);
        }
        Ok(allowed)
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
