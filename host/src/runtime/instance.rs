//! One instantiated plugin: a `Store` with its limits and the typed calls
//! into the `projection` export.
//!
//! A trap (panic, deadline, memory limit, host storage failure) poisons the
//! instance: the caller must drop it and instantiate afresh. A WIT error
//! (`handle-error`, `query-error`) leaves the instance usable.

use std::sync::Arc;

use wasmtime::{Engine, Store};

use super::bindings::{Description, Event, HandleError, Projector, ProjectorPre, QueryError};
use super::logging::PluginLog;
use super::state::PluginState;
use super::view::ViewAccess;
use super::{EPOCH_TICK, PluginLimits, RuntimeError};
use crate::views::Transaction;

/// A call that did not return normally. The instance must be replaced.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct CallError(pub String);

pub struct PluginInstance {
    store: Store<PluginState>,
    bindings: Projector,
    limits: PluginLimits,
}

impl PluginInstance {
    pub(super) fn new(
        engine: &Engine,
        pre: &ProjectorPre<PluginState>,
        view: ViewAccess,
        log: Arc<PluginLog>,
        limits: PluginLimits,
    ) -> Result<Self, RuntimeError> {
        let mut store = Store::new(engine, PluginState::new(view, log, &limits));
        store.limiter(|s| &mut s.limits);
        let ticks = deadline_ticks(&limits);
        store.set_epoch_deadline(ticks);
        let bindings = pre
            .instantiate(&mut store)
            .map_err(|e| RuntimeError::Instantiate(explain(&e, &store, &limits)))?;
        Ok(PluginInstance {
            store,
            bindings,
            limits,
        })
    }

    fn arm_deadline(&mut self) {
        self.store.set_epoch_deadline(deadline_ticks(&self.limits));
    }

    pub fn describe(&mut self) -> Result<Description, CallError> {
        self.arm_deadline();
        self.bindings
            .prism_projection_projection()
            .call_describe(&mut self.store)
            .map_err(|e| CallError(explain(&e, &self.store, &self.limits)))
    }

    /// Run `handle` over `batch`, collecting its writes into `txn`. On a
    /// `HandleError` or a trap the writes collected are discarded.
    pub fn handle(
        &mut self,
        batch: &[Event],
        txn: &mut Transaction,
    ) -> Result<Result<(), HandleError>, CallError> {
        self.arm_deadline();
        let state = self.store.data_mut();
        std::mem::swap(&mut state.view.txn, txn);
        state.view.writable = true;
        let result = self
            .bindings
            .prism_projection_projection()
            .call_handle(&mut self.store, batch);
        let state = self.store.data_mut();
        state.view.writable = false;
        std::mem::swap(&mut state.view.txn, txn);
        match result {
            Ok(Ok(())) => Ok(Ok(())),
            Ok(Err(e)) => {
                txn.clear();
                Ok(Err(e))
            }
            Err(e) => {
                txn.clear();
                Err(CallError(explain(&e, &self.store, &self.limits)))
            }
        }
    }

    /// Run a named query against the committed view; writes are refused.
    pub fn query(
        &mut self,
        name: &str,
        params: &str,
    ) -> Result<Result<String, QueryError>, CallError> {
        self.arm_deadline();
        self.store.data_mut().view.txn.clear();
        self.bindings
            .prism_projection_projection()
            .call_query(&mut self.store, name, params)
            .map_err(|e| CallError(explain(&e, &self.store, &self.limits)))
    }

    /// Linear memory the instance has grown to, in bytes.
    pub fn memory_bytes(&self) -> usize {
        self.store.data().limits.memory_bytes
    }

    /// Whether the instance has used most of its memory limit: replace it
    /// between batches rather than let it fail mid-batch.
    pub fn nearly_full(&self) -> bool {
        self.memory_bytes() > self.limits.memory_bytes / 4 * 3
    }
}

fn deadline_ticks(limits: &PluginLimits) -> u64 {
    (limits.call_timeout.as_millis() / EPOCH_TICK.as_millis()).max(1) as u64 + 1
}

/// A trap or host failure in words an operator can act on. The cause is
/// found from what the store recorded (the limiter's refusal) and the trap
/// code, never from an error's text, which wasmtime may reword.
fn explain(e: &wasmtime::Error, store: &Store<PluginState>, limits: &PluginLimits) -> String {
    if let Some(refused) = store.data().limits.refused {
        return format!(
            "the plugin exceeded its memory limit of {} MiB (asked to grow by {} to {})",
            limits.memory_bytes >> 20,
            mebibytes(refused.growth),
            mebibytes(refused.total),
        );
    }
    if let Some(trap) = e.downcast_ref::<wasmtime::Trap>()
        && *trap == wasmtime::Trap::Interrupt
    {
        return format!(
            "the call ran longer than its deadline of {} ms and was stopped",
            limits.call_timeout.as_millis()
        );
    }
    format!("the plugin trapped: {e:#}")
}

fn mebibytes(bytes: usize) -> String {
    format!("{:.1} MiB", bytes as f64 / f64::from(1 << 20))
}
