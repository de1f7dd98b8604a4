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
    /// A WebAssembly component (`NAME.wasm`).
    Component,
    /// A view file (`NAME.view.yaml`, or JSON, which YAML reads too).
    ViewFile,
}

/// The first line of `text` that is neither blank nor a comment.
fn first_line(text: &str) -> Option<&str> {
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
}

impl Kind {
    /// The kind of content that comes without a file name (an upload, the
    /// store): a view file is text that opens a mapping (`key: …`, `{`,
    /// `---`); anything else is taken for a component, and the runtime
    /// says what is wrong with it if it is not one.
    pub fn of(bytes: &[u8]) -> Kind {
        if bytes.starts_with(b"\0asm") {
            return Kind::Component;
        }
        let Ok(text) = std::str::from_utf8(bytes) else {
            return Kind::Component;
        };
        let opens_a_mapping = first_line(text).is_some_and(|line| {
            line.starts_with(['{', '%'])
                || line.starts_with("---")
                || line.split_once(':').is_some_and(|(key, _)| {
                    let key = key.trim_matches(['"', '\'']);
                    !key.is_empty()
                        && key
                            .chars()
                            .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.'))
                })
        });
        if opens_a_mapping {
            Kind::ViewFile
        } else {
            Kind::Component
        }
    }

    /// The kind a plugin file's name says (`None`: not a plugin file).
    pub fn of_file(file_name: &str) -> Option<Kind> {
        if file_name.ends_with(".wasm") {
            Some(Kind::Component)
        } else if [".view.yaml", ".view.yml", ".view.json"]
            .iter()
            .any(|ext| file_name.ends_with(ext))
        {
            Some(Kind::ViewFile)
        } else {
            None
        }
    }

    /// The extension of a plugin file holding `bytes`.
    pub fn extension(bytes: &[u8]) -> &'static str {
        match Kind::of(bytes) {
            Kind::Component => "wasm",
            Kind::ViewFile => {
                let text = String::from_utf8_lossy(bytes);
                if first_line(&text).is_some_and(|l| l.starts_with('{')) {
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
            // A view file writes its view and nothing else.
            emits: Vec::new(),
            targets: Vec::new(),
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
        Ok(Box::new(handler::ViewHandler::new(
            self.spec.clone(),
            keyspace.clone(),
            self.limits.max_document_bytes,
        )))
    }

    fn query(&self, _: &Keyspace, name: &str, _: &str) -> Result<String, QueryFailure> {
        Err(QueryFailure::Unknown(format!(
            "a view file has no named queries ({name:?}); query its indexes with _find"
        )))
    }
}

#[cfg(test)]
mod tests;
