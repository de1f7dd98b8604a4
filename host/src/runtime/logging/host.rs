//! The `prism:projection/logging` import.

use crate::runtime::bindings::Level;
use crate::runtime::bindings::prism::projection::logging::Host;
use crate::runtime::state::PluginState;

impl Host for PluginState {
    fn log(&mut self, level: Level, message: String) -> wasmtime::Result<()> {
        let level = match level {
            Level::Trace => "trace",
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        };
        self.log.push(level, &message);
        Ok(())
    }
}

/// The `types` interface has no functions; the linker still wants its `Host`.
impl crate::runtime::bindings::prism::projection::types::Host for PluginState {}
