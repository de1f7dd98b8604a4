//! What a plugin's wasmtime `Store` holds: its WASI context (granting
//! nothing), its memory limits, its view access and its log.

use std::sync::Arc;

use wasmtime::component::ResourceTable;
use wasmtime::{StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use super::PluginLimits;
use super::logging::PluginLog;
use super::logging::stdio::LogOutput;
use super::view::ViewAccess;

pub struct PluginState {
    wasi: WasiCtx,
    table: ResourceTable,
    /// Enforced by wasmtime on every memory or table growth.
    pub(crate) limits: StoreLimits,
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
            limits: StoreLimitsBuilder::new()
                .memory_size(limits.memory_bytes)
                .trap_on_grow_failure(true)
                .instances(64)
                .build(),
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
