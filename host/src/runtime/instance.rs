//! One instantiated plugin: a `Store` with its limits and the typed calls
//! into the `projection` export.
//!
//! A trap (panic, deadline, memory limit, host storage failure) poisons the
//! instance: the caller must drop it and instantiate afresh. A WIT error
//! (`handle-error`, `query-error`) leaves the instance usable.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use wasmtime::{Engine, Store, UpdateDeadline};

use super::Pre;
use super::bindings::{Description, Event, HandleError, QueryError, v0_1, v0_2, v0_3, v0_4, v0_5};
use super::logging::PluginLog;
use super::state::PluginState;
use super::view::ViewAccess;
use super::{PluginLimits, RuntimeError};
use crate::views::Transaction;

/// A call that did not return normally. The instance must be replaced.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct CallError(pub String);

/// How a call ended before returning.
enum Cut {
    /// It trapped, or a host call failed.
    Trap(wasmtime::Error),
    /// It was still waiting when its deadline came.
    Deadline,
}

/// The instance's exports, by the version of the contract it implements.
enum Exports {
    V0_5(v0_5::Projector),
    V0_4(v0_4::Projector),
    V0_3(v0_3::Projector),
    V0_2(v0_2::Projector),
    V0_1(v0_1::Projector),
}

pub struct PluginInstance {
    store: Store<PluginState>,
    exports: Exports,
    /// The last batch packed for `handle` (0.5.0), kept for its allocation.
    packed: Vec<u8>,
    limits: PluginLimits,
    /// Drives the instance's futures: calls block the calling thread (a
    /// projector's own, or a blocking-pool thread), never an async worker.
    rt: tokio::runtime::Handle,
}

impl PluginInstance {
    pub(super) fn new(
        engine: &Engine,
        pre: &Pre,
        view: ViewAccess,
        log: Arc<PluginLog>,
        limits: PluginLimits,
        rt: tokio::runtime::Handle,
    ) -> Result<Self, RuntimeError> {
        let mut store = Store::new(engine, PluginState::new(view, log, &limits));
        store.limiter(|s| &mut s.limits);
        // Every epoch tick a computing plugin checks its wall-clock deadline:
        // past it, it traps; before it, it yields, so that a deadline on the
        // call's future can also end a plugin that waits instead of computing.
        store.epoch_deadline_callback(|store| {
            if Instant::now() >= store.data().deadline {
                Ok(UpdateDeadline::Interrupt)
            } else {
                Ok(UpdateDeadline::Yield(1))
            }
        });
        store.set_epoch_deadline(1);
        store.data_mut().arm(limits.call_timeout);
        let instantiated = rt.block_on(within(limits.call_timeout, async {
            Ok(match pre {
                Pre::V0_5(pre) => Exports::V0_5(pre.instantiate_async(&mut store).await?),
                Pre::V0_4(pre) => Exports::V0_4(pre.instantiate_async(&mut store).await?),
                Pre::V0_3(pre) => Exports::V0_3(pre.instantiate_async(&mut store).await?),
                Pre::V0_2(pre) => Exports::V0_2(pre.instantiate_async(&mut store).await?),
                Pre::V0_1(pre) => Exports::V0_1(pre.instantiate_async(&mut store).await?),
            })
        }));
        let exports =
            instantiated.map_err(|cut| RuntimeError::Instantiate(explain(cut, &store, &limits)))?;
        Ok(PluginInstance {
            store,
            exports,
            packed: Vec::new(),
            limits,
            rt,
        })
    }

    /// Let `handle` emit events by these rules.
    pub fn allow_emits(&mut self, rules: Arc<crate::projector::emit::EmitRules>) {
        self.store.data_mut().emit.set_rules(rules);
    }

    /// Let `handle` put requests in the outbox by these rules.
    pub fn allow_outbox(&mut self, rules: Arc<crate::outbox::OutboxRules>) {
        self.store.data_mut().outbox.set_rules(rules);
    }

    fn arm(&mut self) {
        self.store.data_mut().arm(self.limits.call_timeout);
        self.store.set_epoch_deadline(1);
    }

    pub fn describe(&mut self) -> Result<Description, CallError> {
        self.arm();
        let store = &mut self.store;
        let call = async {
            Ok(match &self.exports {
                Exports::V0_5(e) => e.prism_projection_projection().call_describe(store).await?,
                Exports::V0_4(e) => {
                    let d = e.prism_projection_projection().call_describe(store).await?;
                    Description {
                        name: d.name,
                        version: d.version,
                        event_types: d.event_types,
                        queries: d.queries,
                        indexes: d.indexes.into_iter().map(of_0_4::index).collect(),
                        emits: d.emits,
                        targets: d.targets,
                    }
                }
                Exports::V0_3(e) => {
                    let d = e.prism_projection_projection().call_describe(store).await?;
                    Description {
                        name: d.name,
                        version: d.version,
                        event_types: d.event_types,
                        queries: d.queries,
                        indexes: d.indexes.into_iter().map(of_0_3::index).collect(),
                        emits: d.emits,
                        targets: Vec::new(),
                    }
                }
                Exports::V0_2(e) => {
                    let d = e.prism_projection_projection().call_describe(store).await?;
                    Description {
                        name: d.name,
                        version: d.version,
                        event_types: d.event_types,
                        queries: d.queries,
                        indexes: d.indexes.into_iter().map(of_0_2::index).collect(),
                        emits: Vec::new(),
                        targets: Vec::new(),
                    }
                }
                Exports::V0_1(e) => {
                    let d = e.prism_projection_projection().call_describe(store).await?;
                    Description {
                        name: d.name,
                        version: d.version,
                        event_types: d.event_types,
                        queries: d.queries,
                        indexes: Vec::new(),
                        emits: Vec::new(),
                        targets: Vec::new(),
                    }
                }
            })
        };
        let result = self.rt.block_on(within(self.limits.call_timeout, call));
        result.map_err(|cut| CallError(explain(cut, &self.store, &self.limits)))
    }

    /// Run `handle` over `batch`, collecting its writes into `txn`. On a
    /// `HandleError` or a trap the writes collected are discarded.
    pub fn handle(
        &mut self,
        batch: &[Event],
        txn: &mut Transaction,
    ) -> Result<Result<(), HandleError>, CallError> {
        self.arm();
        let state = self.store.data_mut();
        std::mem::swap(&mut state.view.txn, txn);
        state.view.writable = true;
        state.emit.begin(batch);
        state.outbox.begin(batch);
        if let Exports::V0_5(_) = self.exports {
            super::packed::pack(batch, &mut self.packed);
        }
        let store = &mut self.store;
        let packed = &self.packed;
        let call = async {
            match &self.exports {
                Exports::V0_5(e) => {
                    e.prism_projection_projection()
                        .call_handle(store, packed)
                        .await
                }
                Exports::V0_4(e) => old_handle!(v0_4, e, store, batch),
                Exports::V0_3(e) => old_handle!(v0_3, e, store, batch),
                Exports::V0_2(e) => old_handle!(v0_2, e, store, batch),
                Exports::V0_1(e) => old_handle!(v0_1, e, store, batch),
            }
        };
        let result = self.rt.block_on(within(self.limits.call_timeout, call));
        let state = self.store.data_mut();
        state.view.writable = false;
        state.emit.end();
        state.outbox.end();
        std::mem::swap(&mut state.view.txn, txn);
        match result {
            Ok(Ok(())) => Ok(Ok(())),
            Ok(Err(e)) => {
                txn.clear();
                Ok(Err(e))
            }
            Err(cut) => {
                txn.clear();
                Err(CallError(explain(cut, &self.store, &self.limits)))
            }
        }
    }

    /// Run a named query against the committed view; writes are refused.
    pub fn query(
        &mut self,
        name: &str,
        params: &str,
    ) -> Result<Result<String, QueryError>, CallError> {
        self.arm();
        self.store.data_mut().view.txn.clear();
        let store = &mut self.store;
        let call = async {
            match &self.exports {
                Exports::V0_5(e) => {
                    e.prism_projection_projection()
                        .call_query(store, name, params)
                        .await
                }
                Exports::V0_4(e) => old_query!(e, store, name, params),
                Exports::V0_3(e) => old_query!(e, store, name, params),
                Exports::V0_2(e) => old_query!(e, store, name, params),
                Exports::V0_1(e) => old_query!(e, store, name, params),
            }
        };
        let result = self.rt.block_on(within(self.limits.call_timeout, call));
        result.map_err(|cut| CallError(explain(cut, &self.store, &self.limits)))
    }

    /// Linear memory the instance has grown to, in bytes.
    pub fn memory_bytes(&self) -> usize {
        self.store.data().limits.memory_bytes
    }

    /// Linear memory the instance may grow to, in bytes.
    pub fn memory_limit(&self) -> usize {
        self.limits.memory_bytes
    }

    /// Whether the instance has used most of its memory limit: replace it
    /// between batches rather than let it fail mid-batch.
    pub fn nearly_full(&self) -> bool {
        self.memory_bytes() > self.limits.memory_bytes / 4 * 3
    }
}

/// `handle` of a component of an older contract, whose events and errors
/// are the current ones but for the package version in their names: the
/// batch is handed over one `event` record each.
macro_rules! old_handle {
    ($version:ident, $exports:expr, $store:expr, $batch:expr) => {{
        use $version::exports::prism::projection::projection::Event as Old;
        let batch: Vec<Old> = $batch
            .iter()
            .map(|e| Old {
                position: e.position,
                stream_id: e.stream_id.clone(),
                stream_version: e.stream_version,
                event_type: e.event_type.clone(),
                data: e.data.clone(),
                metadata: e.metadata.clone(),
                recorded_at: e.recorded_at,
                id: e.id.clone(),
            })
            .collect();
        let result = $exports
            .prism_projection_projection()
            .call_handle($store, &batch)
            .await?;
        Ok(result.map_err(|e| HandleError {
            index: e.index,
            message: e.message,
        }))
    }};
}
use old_handle;

/// `query` of a component of an older contract, whose errors are the
/// current ones but for the package version in their names.
macro_rules! old_query {
    ($exports:expr, $store:expr, $name:expr, $params:expr) => {
        Ok($exports
            .prism_projection_projection()
            .call_query($store, $name, $params)
            .await?
            .map_err(QueryError::from))
    };
}
use old_query;

/// Index declarations of an older contract whose records are the current
/// ones but for the package version in their names.
macro_rules! older_index {
    ($module:ident, $version:ident) => {
        mod $module {
            use super::super::bindings::{self, FieldKind, IndexField};
            use super::$version;

            /// An index a component of this contract declares.
            pub(super) fn index(
                index: $version::prism::projection::types::Index,
            ) -> bindings::Index {
                use $version::prism::projection::types::FieldKind as Old;
                bindings::Index {
                    name: index.name,
                    fields: index
                        .fields
                        .into_iter()
                        .map(|f| IndexField {
                            path: f.path,
                            kind: match f.kind {
                                Old::Number => FieldKind::Number,
                                Old::String => FieldKind::String,
                                Old::Boolean => FieldKind::Boolean,
                                Old::Timestamp => FieldKind::Timestamp,
                                Old::Any => FieldKind::Any,
                            },
                        })
                        .collect(),
                    unique: index.unique,
                    prefix: index.prefix,
                }
            }
        }
    };
}

older_index!(of_0_2, v0_2);
older_index!(of_0_3, v0_3);
older_index!(of_0_4, v0_4);

/// Run `call` until it returns or its deadline (plus a tick of grace for
/// the epoch check to trap first) passes.
async fn within<T>(
    timeout: std::time::Duration,
    call: impl Future<Output = wasmtime::Result<T>>,
) -> Result<T, Cut> {
    match tokio::time::timeout(timeout + super::EPOCH_TICK * 2, call).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(Cut::Trap(e)),
        Err(_) => Err(Cut::Deadline),
    }
}

/// A trap or host failure in words an operator can act on. The cause is
/// found from what the store recorded (the limiter's refusal) and the trap
/// code, never from an error's text, which wasmtime may reword.
fn explain(cut: Cut, store: &Store<PluginState>, limits: &PluginLimits) -> String {
    let e = match cut {
        Cut::Deadline => {
            return format!(
                "the call ran longer than its deadline of {} ms (waiting) and was stopped",
                limits.call_timeout.as_millis()
            );
        }
        Cut::Trap(e) => e,
    };
    if let Some(refused) = store.data().limits.refused {
        return format!(
            "the plugin exceeded its memory limit of {} MiB (asked to grow by {} to {})",
            limits.memory_bytes >> 20,
            mebibytes(refused.growth),
            mebibytes(refused.total),
        );
    }
    if let Some(exceeded) = &store.data().view.exceeded {
        return exceeded.clone();
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

/// Older worlds' query errors are today's, under their own package version.
macro_rules! query_error_from {
    ($($world:ident),*) => {$(
        impl From<$world::exports::prism::projection::projection::QueryError> for QueryError {
            fn from(e: $world::exports::prism::projection::projection::QueryError) -> Self {
                use $world::exports::prism::projection::projection::QueryError as Old;
                match e {
                    Old::UnknownQuery(m) => QueryError::UnknownQuery(m),
                    Old::InvalidParams(m) => QueryError::InvalidParams(m),
                    Old::Failed(m) => QueryError::Failed(m),
                }
            }
        }
    )*};
}

query_error_from!(v0_1, v0_2, v0_3, v0_4);
