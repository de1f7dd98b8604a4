//! The `prism:projection/logging` import.

use crate::runtime::bindings::v0_5::prism::projection::logging::Host;
use crate::runtime::bindings::{Level, v0_1, v0_2, v0_3, v0_4, v0_5};
use crate::runtime::state::PluginState;

/// The log line that aborts the process when fault injection is on.
pub const FAULT_ABORT: &str = "prism-fault-injection: abort the process";

/// Whether `PRISM_FAULT_INJECTION=1` is set: lets test plugins provoke the
/// failures the server must survive. Never set it in production.
fn fault_injection() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var("PRISM_FAULT_INJECTION").is_ok_and(|v| v == "1"))
}

impl Host for PluginState {
    async fn log(&mut self, level: Level, message: String) -> wasmtime::Result<()> {
        let level = match level {
            Level::Trace => "trace",
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        };
        if level == "error" && message == FAULT_ABORT && fault_injection() {
            // A process abort inside a plugin call, on purpose: what the
            // quarantine is for. Only with PRISM_FAULT_INJECTION=1.
            std::process::abort();
        }
        self.log.push(level, &message);
        Ok(())
    }
}

/// The same import for components of an older contract, whose levels are
/// the same but for the package version in their names.
macro_rules! old_logging {
    ($version:ident) => {
        impl $version::prism::projection::logging::Host for PluginState {
            async fn log(
                &mut self,
                level: $version::prism::projection::logging::Level,
                message: String,
            ) -> wasmtime::Result<()> {
                use $version::prism::projection::logging::Level as Old;
                let level = match level {
                    Old::Trace => Level::Trace,
                    Old::Debug => Level::Debug,
                    Old::Info => Level::Info,
                    Old::Warn => Level::Warn,
                    Old::Error => Level::Error,
                };
                Host::log(self, level, message).await
            }
        }
    };
}

old_logging!(v0_1);
old_logging!(v0_2);
old_logging!(v0_3);
old_logging!(v0_4);

/// The `types` interfaces have no functions; the linker still wants their `Host`s.
impl v0_5::prism::projection::types::Host for PluginState {}
impl v0_4::prism::projection::types::Host for PluginState {}
impl v0_3::prism::projection::types::Host for PluginState {}
impl v0_2::prism::projection::types::Host for PluginState {}
impl v0_1::prism::projection::types::Host for PluginState {}
