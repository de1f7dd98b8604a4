//! A compiled WebAssembly component as a [`Projection`]: instances for the
//! projector, and a small pool of instances for queries.

use std::sync::{Arc, Mutex};

use super::bindings::{Event, HandleError, QueryError};
use super::view::ViewAccess;
use super::{CallError, CompiledPlugin, PluginInstance, PluginLimits, PluginLog, Runtime};
use crate::outbox::OutboxRules;
use crate::projector::emit::EmitRules;
use crate::projector::{Described, Handler, Projection, QueryFailure};
use crate::views::{Keyspace, Transaction};

/// One loaded component of one plugin generation.
pub struct WasmProjection {
    runtime: Runtime,
    compiled: CompiledPlugin,
    log: Arc<PluginLog>,
    limits: PluginLimits,
    described: Described,
    /// What its handlers may emit; `None` when it declares no stream.
    emit_rules: Option<Arc<EmitRules>>,
    /// What its handlers may put in the outbox; `None` when it declares no target.
    outbox_rules: Option<Arc<OutboxRules>>,
    /// Query instances between calls. How many run at once is bounded by
    /// the generation; this only keeps them warm.
    idle: Mutex<Vec<PluginInstance>>,
}

impl WasmProjection {
    pub(super) fn new(
        runtime: Runtime,
        compiled: CompiledPlugin,
        log: Arc<PluginLog>,
        limits: PluginLimits,
        described: Described,
        emit_rules: Option<Arc<EmitRules>>,
        outbox_rules: Option<Arc<OutboxRules>>,
    ) -> Self {
        WasmProjection {
            runtime,
            compiled,
            log,
            limits,
            described,
            emit_rules,
            outbox_rules,
            idle: Mutex::new(Vec::new()),
        }
    }

    pub fn plugin_log(&self) -> &Arc<PluginLog> {
        &self.log
    }

    fn instance(&self, keyspace: &Keyspace) -> Result<PluginInstance, String> {
        self.runtime
            .instantiate(
                &self.compiled,
                ViewAccess::new(keyspace.clone()),
                self.log.clone(),
                self.limits,
            )
            .map_err(|e| e.to_string())
    }
}

/// A component instance driven by a projector.
struct WasmHandler(PluginInstance);

impl Handler for WasmHandler {
    fn handle(
        &mut self,
        batch: &[Event],
        txn: &mut Transaction,
    ) -> Result<Result<(), HandleError>, CallError> {
        self.0.handle(batch, txn)
    }

    fn worn_out(&self) -> bool {
        self.0.nearly_full()
    }

    fn memory(&self) -> Option<(usize, usize)> {
        Some((self.0.memory_bytes(), self.0.memory_limit()))
    }
}

impl Projection for WasmProjection {
    fn described(&self) -> &Described {
        &self.described
    }

    fn handler(&self, keyspace: &Keyspace) -> Result<Box<dyn Handler>, String> {
        let mut instance = self.instance(keyspace)?;
        if let Some(rules) = &self.emit_rules {
            instance.allow_emits(rules.clone());
        }
        if let Some(rules) = &self.outbox_rules {
            instance.allow_outbox(rules.clone());
        }
        Ok(Box::new(WasmHandler(instance)))
    }

    fn query(&self, keyspace: &Keyspace, name: &str, params: &str) -> Result<String, QueryFailure> {
        let pooled = self.idle.lock().expect("query pool").pop();
        let mut instance = match pooled {
            Some(i) => i,
            None => self.instance(keyspace).map_err(QueryFailure::Failed)?,
        };
        let answer = instance.query(name, params);
        let healthy = answer.is_ok() && !instance.nearly_full();
        if healthy {
            self.idle.lock().expect("query pool").push(instance);
        }
        match answer {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(QueryError::UnknownQuery(m))) => Err(QueryFailure::Unknown(m)),
            Ok(Err(QueryError::InvalidParams(m))) => Err(QueryFailure::InvalidParams(m)),
            Ok(Err(QueryError::Failed(m))) => Err(QueryFailure::Failed(m)),
            Err(CallError(m)) => Err(QueryFailure::Failed(m)),
        }
    }
}
