//! The `prism:projection/outbox` import: side effects a projection asks for
//! while it handles a batch. The rules (declared targets, ids, defaults)
//! are `outbox`'s; this side knows the batch in flight, counts each cause's
//! requests, and adds them to the batch's transaction, which commits them
//! with the view writes and checkpoint.

use std::sync::Arc;

use super::causes::Causes;
use crate::outbox::{OutboxRules, Refusal, Request};
use crate::runtime::bindings::v0_5::prism::projection::outbox::Host;
use crate::runtime::bindings::{Event, OutboxError, OutboxRequest, v0_4};
use crate::runtime::state::PluginState;

/// What the instance's outbox requests need: the plugin's rules and the batch in flight.
#[derive(Default)]
pub struct OutboxState {
    /// `None`: the projection declares no target.
    rules: Option<Arc<OutboxRules>>,
    causes: Causes,
}

impl OutboxState {
    pub(crate) fn set_rules(&mut self, rules: Arc<OutboxRules>) {
        self.rules = Some(rules);
    }

    /// A `handle` call starts with `batch`.
    pub(crate) fn begin(&mut self, batch: &[Event]) {
        if self.rules.is_some() {
            self.causes.begin(batch, false);
        }
    }

    /// The call is over: no batch is in flight.
    pub(crate) fn end(&mut self) {
        self.causes.end();
    }
}

impl Host for PluginState {
    async fn enqueue(
        &mut self,
        cause: u64,
        request: OutboxRequest,
    ) -> wasmtime::Result<Result<(), OutboxError>> {
        let Some(rules) = self.outbox.rules.clone() else {
            return Ok(Err(OutboxError::UndeclaredTarget(format!(
                "target {:?}: this projection declares no outbox target",
                request.target
            ))));
        };
        let (Some((source, index)), true) = (self.outbox.causes.next(cause), self.view.writable)
        else {
            return Ok(Err(OutboxError::UnknownCause(cause)));
        };
        let request = Request {
            target: request.target,
            payload: request.payload,
            idempotency_key: request.idempotency_key,
            ordering_key: request.ordering_key,
        };
        match rules.entry(source, index, request) {
            Ok(entry) => {
                self.outbox.causes.counted(cause);
                self.view.txn.enqueue(entry);
                self.view.check_pending()?;
                Ok(Ok(()))
            }
            Err(Refusal::UndeclaredTarget(m)) => Ok(Err(OutboxError::UndeclaredTarget(m))),
            Err(Refusal::Invalid(m)) => Ok(Err(OutboxError::Invalid(m))),
        }
    }
}

/// The same import for components of `prism:projection@0.4.0`, whose
/// requests and errors are the same but for the package version in their names.
impl v0_4::prism::projection::outbox::Host for PluginState {
    async fn enqueue(
        &mut self,
        cause: u64,
        request: v0_4::prism::projection::outbox::Request,
    ) -> wasmtime::Result<Result<(), v0_4::prism::projection::outbox::OutboxError>> {
        use v0_4::prism::projection::outbox::OutboxError as Old;
        let request = OutboxRequest {
            target: request.target,
            payload: request.payload,
            idempotency_key: request.idempotency_key,
            ordering_key: request.ordering_key,
        };
        Ok(Host::enqueue(self, cause, request)
            .await?
            .map_err(|e| match e {
                OutboxError::UndeclaredTarget(m) => Old::UndeclaredTarget(m),
                OutboxError::UnknownCause(p) => Old::UnknownCause(p),
                OutboxError::Invalid(m) => Old::Invalid(m),
            }))
    }
}
