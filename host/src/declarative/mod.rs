//! Declarative views: a projection written as a view file of a few lines
//! (`NAME.view.yaml` or `NAME.view.json`) instead of a component.
//!
//! A view file says which events it applies (by type, optionally only from
//! streams with given prefixes), which document each one changes (a key
//! template, or every document an index finds), and how: set, add,
//! subtract, min, max, append, remove, average, delete, under conditions,
//! with fields of other documents joined in. `spec.rs` reads and checks the
//! file, `expr.rs` compiles its values, `handler.rs` applies it.
//!
//! # Why it runs natively
//! A view file is data, not code: it cannot loop, allocate without bound,
//! reach outside its view or do anything its operations do not say, so it
//! needs no sandbox to be contained — its limits (document size, how many
//! documents one `each` may change, the batch's events) are checked by the
//! interpreter itself. Running it in the host saves what a sandbox costs
//! (copying every event into WebAssembly memory and every document out,
//! instantiating, a JSON parser compiled to WebAssembly) and lets it read
//! the batch's documents with one multi-get and keep them parsed across the
//! batch's events. It goes through everything else a component does: the
//! same [`Projection`] seam, projector, lifecycle, exactly-once commits,
//! poison policy and indexes.

mod expr;
mod handler;
pub mod spec;

use std::sync::Arc;

use crate::projector::{Described, Handler, Projection, QueryFailure};
use crate::runtime::PluginLimits;
use crate::views::Keyspace;

pub use spec::{SpecError, ViewSpec};

/// What kind of plugin some content is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A WebAssembly component (starts with the `\0asm` magic).
    Component,
    /// A view file: YAML, or JSON (YAML reads JSON too).
    ViewFile,
}

impl Kind {
    /// The kind of `bytes`, by their first bytes: the WebAssembly magic, or
    /// text.
    pub fn of(bytes: &[u8]) -> Kind {
        if bytes.starts_with(b"\0asm") || std::str::from_utf8(bytes).is_err() {
            Kind::Component
        } else {
            Kind::ViewFile
        }
    }

    /// The extension of a plugin file of this kind holding `bytes`.
    pub fn extension(bytes: &[u8]) -> &'static str {
        match Kind::of(bytes) {
            Kind::Component => "wasm",
            Kind::ViewFile => {
                let text = String::from_utf8_lossy(bytes);
                let first = text
                    .lines()
                    .map(str::trim)
                    .find(|l| !l.is_empty() && !l.starts_with('#'));
                if first.is_some_and(|l| l.starts_with('{')) {
                    "view.json"
                } else {
                    "view.yaml"
                }
            }
        }
    }
}

/// A compiled view file as a [`Projection`].
pub struct ViewProjection {
    spec: Arc<ViewSpec>,
    described: Described,
    limits: PluginLimits,
}

impl ViewProjection {
    /// Read, check and compile a view file.
    pub fn compile(bytes: &[u8], limits: PluginLimits) -> Result<ViewProjection, SpecError> {
        let text = std::str::from_utf8(bytes).map_err(|e| SpecError {
            at: None,
            message: format!("a view file is UTF-8 text: {e}"),
        })?;
        let spec = spec::compile(text)?;
        let described = Described {
            name: spec.name.clone(),
            version: spec.version.clone(),
            kind: "view file".into(),
            event_types: spec.event_types.clone(),
            queries: Vec::new(),
            indexes: spec.indexes.clone(),
        };
        Ok(ViewProjection {
            spec: Arc::new(spec),
            described,
            limits,
        })
    }
}

impl Projection for ViewProjection {
    fn described(&self) -> &Described {
        &self.described
    }

    fn handler(&self, keyspace: &Keyspace) -> Result<Box<dyn Handler>, String> {
        Ok(Box::new(handler::ViewHandler {
            spec: self.spec.clone(),
            keyspace: keyspace.clone(),
            max_document: self.limits.max_document_bytes,
        }))
    }

    fn query(&self, _: &Keyspace, name: &str, _: &str) -> Result<String, QueryFailure> {
        Err(QueryFailure::Unknown(format!(
            "a view file has no named queries ({name:?}); query its indexes with _find"
        )))
    }
}

#[cfg(test)]
mod tests;
