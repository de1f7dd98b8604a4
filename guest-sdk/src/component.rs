//! The WebAssembly side of the SDK: the bindings generated from `wit/`, the
//! [`Backend`] over the `view` imports, and the glue that
//! [`export_projection!`](crate::export_projection) wires to the `projection`
//! export. Only compiled for `wasm32`; everything else in the crate is plain
//! Rust that never sees a generated type.

use std::cell::RefCell;

use crate::{
    Backend, Description, Emission, EmitError, Entry, FieldKind, HandleError, Level, OutboxError,
    OutboxRequest, Params, Projection, QueryError, ViewError, Write,
};

/// Bindings for the `projector` world. Public because the export macro
/// expands in the plugin's crate and names them from there.
#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        world: "projector",
        path: "../wit",
        pub_export_macro: true,
        export_macro_name: "__export_projector",
        default_bindings_module: "::prism_guest::bindings",
    });
}

use bindings::exports::prism::projection::projection as export;
use bindings::prism::projection::{emit, logging, outbox, view};

/// The host's keyspace for this plugin, through the `view` imports.
struct HostBackend;

impl Backend for HostBackend {
    fn get_many(&mut self, keys: &[String]) -> Vec<Option<String>> {
        view::get_many(keys)
    }

    fn write_many(&mut self, writes: Vec<Write>) -> Result<(), ViewError> {
        let writes: Vec<view::Write> = writes
            .into_iter()
            .map(|write| match write {
                Write::Put(Entry { key, value }) => view::Write::Put(view::Entry { key, value }),
                Write::Delete(key) => view::Write::Delete(key),
            })
            .collect();
        view::write_many(&writes).map_err(|error| match error {
            view::ViewError::InvalidJson(message) => ViewError::InvalidJson(message),
            view::ViewError::InvalidKey(message) => ViewError::InvalidKey(message),
            view::ViewError::ReadOnly => ViewError::ReadOnly,
        })
    }

    fn scan(&mut self, start: &str, end: Option<&str>, limit: u32) -> Vec<Entry> {
        view::scan(start, end, limit)
            .into_iter()
            .map(|view::Entry { key, value }| Entry { key, value })
            .collect()
    }

    fn emit(&mut self, emission: Emission) -> Result<(), EmitError> {
        let Emission {
            cause,
            stream_id,
            event_type,
            data,
            metadata,
        } = emission;
        emit::append(cause, &stream_id, &event_type, &data, &metadata).map_err(
            |error| match error {
                emit::EmitError::UndeclaredStream(message) => EmitError::UndeclaredStream(message),
                emit::EmitError::UnknownCause(position) => EmitError::UnknownCause(position),
                emit::EmitError::Invalid(message) => EmitError::Invalid(message),
                emit::EmitError::TooDeep(message) => EmitError::TooDeep(message),
            },
        )
    }

    fn enqueue(&mut self, request: OutboxRequest) -> Result<(), OutboxError> {
        let OutboxRequest {
            cause,
            target,
            payload,
            idempotency_key,
            ordering_key,
        } = request;
        let request = outbox::Request {
            target,
            payload,
            idempotency_key,
            ordering_key,
        };
        outbox::enqueue(cause, &request).map_err(|error| match error {
            outbox::OutboxError::UndeclaredTarget(message) => {
                OutboxError::UndeclaredTarget(message)
            }
            outbox::OutboxError::UnknownCause(position) => OutboxError::UnknownCause(position),
            outbox::OutboxError::Invalid(message) => OutboxError::Invalid(message),
        })
    }
}

pub(crate) fn log(level: Level, message: &str) {
    let level = match level {
        Level::Trace => logging::Level::Trace,
        Level::Debug => logging::Level::Debug,
        Level::Info => logging::Level::Info,
        Level::Warn => logging::Level::Warn,
        Level::Error => logging::Level::Error,
    };
    logging::log(level, message);
}

/// `describe` for projection `P`.
pub fn describe<P: Projection>() -> export::Description {
    use bindings::prism::projection::types as wit;
    let Description {
        name,
        version,
        event_types,
        indexes,
        emits,
        targets,
    } = P::describe();
    let queries = P::queries().names().map(str::to_owned).collect();
    let indexes = indexes
        .into_iter()
        .map(|index| wit::Index {
            name: index.name,
            fields: index
                .fields
                .into_iter()
                .map(|(path, kind)| wit::IndexField {
                    path,
                    kind: match kind {
                        FieldKind::Number => wit::FieldKind::Number,
                        FieldKind::String => wit::FieldKind::String,
                        FieldKind::Boolean => wit::FieldKind::Boolean,
                        FieldKind::Timestamp => wit::FieldKind::Timestamp,
                        FieldKind::Any => wit::FieldKind::Any,
                    },
                })
                .collect(),
            unique: index.unique,
            prefix: index.prefix,
        })
        .collect();
    export::Description {
        name,
        version,
        event_types,
        queries,
        indexes,
        emits,
        targets,
    }
}

/// `handle` for the instance's projection, over the packed batch.
pub fn handle<P: Projection>(
    projection: &RefCell<P>,
    batch: Vec<u8>,
) -> Result<(), export::HandleError> {
    let batch = crate::packed::unpack(&batch).map_err(|message| export::HandleError {
        index: None,
        message,
    })?;
    crate::handle_batch(&mut *projection.borrow_mut(), &mut HostBackend, &batch)
        .map_err(|HandleError { index, message }| export::HandleError { index, message })
}

/// `query` for the instance's projection.
pub fn query<P: Projection>(
    projection: &RefCell<P>,
    name: String,
    params: String,
) -> Result<String, export::QueryError> {
    let answer = Params::from_json(&params).and_then(|params| {
        crate::run_query(&*projection.borrow(), &mut HostBackend, &name, &params)
    });
    answer
        .map(|value| value.to_string())
        .map_err(|error| match error {
            QueryError::UnknownQuery(name) => export::QueryError::UnknownQuery(name),
            QueryError::InvalidParams(message) => export::QueryError::InvalidParams(message),
            QueryError::Failed(message) => export::QueryError::Failed(message),
        })
}
