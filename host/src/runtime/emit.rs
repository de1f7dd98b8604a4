//! The `prism:projection/emit` import: events a projection emits while it
//! handles a batch. The rules (declared streams, ids, metadata, the depth
//! bound) are `projector::emit`'s; this side knows the batch in flight,
//! counts each cause's emissions, and adds the events to the batch's
//! transaction, which commits them with the view writes and checkpoint.

use std::sync::Arc;

use super::causes::Causes;
use crate::projector::emit::{EmitRules, Refusal};
use crate::runtime::bindings::v0_5::prism::projection::emit::Host;
use crate::runtime::bindings::{EmitError, Event, v0_3, v0_4};
use crate::runtime::state::PluginState;

/// What the instance's emissions need: the plugin's rules and the batch in flight.
#[derive(Default)]
pub struct EmitState {
    /// `None`: the projection declares no stream to emit to.
    rules: Option<Arc<EmitRules>>,
    causes: Causes,
}

impl EmitState {
    pub(crate) fn set_rules(&mut self, rules: Arc<EmitRules>) {
        self.rules = Some(rules);
    }

    /// A `handle` call starts with `batch`.
    pub(crate) fn begin(&mut self, batch: &[Event]) {
        if self.rules.is_some() {
            self.causes.begin(batch, true);
        }
    }

    /// The call is over: no batch is in flight.
    pub(crate) fn end(&mut self) {
        self.causes.end();
    }
}

impl Host for PluginState {
    async fn append(
        &mut self,
        cause: u64,
        stream_id: String,
        event_type: String,
        data: String,
        metadata: String,
    ) -> wasmtime::Result<Result<(), EmitError>> {
        let Some(rules) = self.emit.rules.clone() else {
            return Ok(Err(EmitError::UndeclaredStream(format!(
                "stream {stream_id:?}: this projection declares no stream to emit to"
            ))));
        };
        let (Some((source, index)), true) = (self.emit.causes.next(cause), self.view.writable)
        else {
            return Ok(Err(EmitError::UnknownCause(cause)));
        };
        let emitted = rules.emission(source, index, &stream_id, &event_type, &data, &metadata);
        match emitted {
            Ok(event) => {
                self.emit.causes.counted(cause);
                self.view.txn.emit(&stream_id, event);
                self.view.check_pending()?;
                Ok(Ok(()))
            }
            Err(Refusal::UndeclaredStream(m)) => Ok(Err(EmitError::UndeclaredStream(m))),
            Err(Refusal::UnknownCause(p)) => Ok(Err(EmitError::UnknownCause(p))),
            Err(Refusal::Invalid(m)) => Ok(Err(EmitError::Invalid(m))),
            Err(Refusal::TooDeep(m)) => Ok(Err(EmitError::TooDeep(m))),
        }
    }
}

/// The same import for components of an older contract (0.3.0, 0.4.0),
/// whose errors are the same but for the package version in their names.
macro_rules! old_emit {
    ($version:ident) => {
        impl $version::prism::projection::emit::Host for PluginState {
            async fn append(
                &mut self,
                cause: u64,
                stream_id: String,
                event_type: String,
                data: String,
                metadata: String,
            ) -> wasmtime::Result<Result<(), $version::prism::projection::emit::EmitError>> {
                use $version::prism::projection::emit::EmitError as Old;
                let appended =
                    Host::append(self, cause, stream_id, event_type, data, metadata).await?;
                Ok(appended.map_err(|e| match e {
                    EmitError::UndeclaredStream(m) => Old::UndeclaredStream(m),
                    EmitError::UnknownCause(p) => Old::UnknownCause(p),
                    EmitError::Invalid(m) => Old::Invalid(m),
                    EmitError::TooDeep(m) => Old::TooDeep(m),
                }))
            }
        }
    };
}

old_emit!(v0_3);
old_emit!(v0_4);
