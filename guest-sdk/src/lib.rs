//! Write Prism projections in Rust.
//!
//! A projection turns events into a read model: documents under keys in a
//! keyspace of its own, which Prism serves over HTTP. This crate is what a
//! projection is written against. Implement [`Projection`] for a type, export
//! it with [`export_projection!`], test it natively with [`testing::Harness`],
//! and build it for `wasm32-wasip2`: the result is a WebAssembly component of
//! the `prism:projection` `projector` world that the host loads.
//!
//! ```
//! use prism_guest::{Description, Error, Event, Projection, View};
//! use serde::{Deserialize, Serialize};
//!
//! /// Per stream: how many events it holds and the type of the last one.
//! #[derive(Default)]
//! pub struct StreamStats;
//!
//! #[derive(Default, Serialize, Deserialize)]
//! struct Stats {
//!     events: u64,
//!     last_type: String,
//! }
//!
//! impl Projection for StreamStats {
//!     fn describe() -> Description {
//!         Description::new("stream-stats", "1.0.0") // no event types: all of them
//!     }
//!
//!     fn keys(&self, event: &Event) -> Vec<String> {
//!         vec![event.stream_id.clone()] // read all of a batch's keys in one go
//!     }
//!
//!     fn handle(&mut self, view: &mut View, event: &Event) -> Result<(), Error> {
//!         view.upsert(&event.stream_id, |stats: &mut Stats| {
//!             stats.events += 1;
//!             stats.last_type = event.event_type.clone();
//!         })
//!     }
//! }
//!
//! prism_guest::export_projection!(StreamStats);
//!
//! // A unit test, natively: `cargo test`.
//! use prism_guest::testing::{event, Harness};
//! use serde_json::json;
//!
//! let harness = Harness::<StreamStats>::new().given([
//!     event("order-1", "OrderPlaced", json!({"total": 30})),
//!     event("order-1", "OrderShipped", json!({})),
//! ]);
//! assert_eq!(
//!     harness.view("order-1"),
//!     Some(json!({"events": 2, "last_type": "OrderShipped"}))
//! );
//! ```
//!
//! The crate of a projection is a `cdylib` (add `rlib` to link it natively
//! too). Build it and drop the component into the host's plugin directory;
//! the file name (without `.wasm`) becomes the plugin's name:
//!
//! ```text
//! cargo build --release --target wasm32-wasip2
//! cp target/wasm32-wasip2/release/stream_stats.wasm /path/to/plugins/stream-stats.wasm
//! curl http://127.0.0.1:7070/views/stream-stats/order-1
//! ```
//!
//! # How a batch runs
//! The host sends events in batches, already filtered by the declared event
//! types. For each batch the SDK reads every key [`Projection::keys`] names
//! with one `get-many`, calls [`Projection::handle`] per event against a
//! cached [`View`], and writes the changed keys with one `write-many`: three
//! boundary crossings per batch, however many events it holds. If an event
//! fails, nothing of the batch is written and the host learns which event it
//! was.
//!
//! # Emitting events
//! During `handle` a projection may append events to the streams its
//! description declares ([`Description::emits`]) with [`View::emit`]. They
//! commit with the batch, and the host derives each one's id from the
//! projection, the cause and the emission's index, so handling the same
//! event again (a replay, a rebuild) never appends it twice. The guide in
//! `guest-sdk/README.md` has the whole contract.
//!
//! # Side effects through the outbox
//! During `handle` a projection may also ask for side effects — an email,
//! a webhook — with [`View::enqueue`]: a JSON payload for a target its
//! description declares ([`Description::targets`]), which the operator maps
//! to an HTTP endpoint. The request commits with the batch, is enqueued
//! once by an id derived like an emitted event's, and the host delivers it
//! at least once, in order per ordering key, with an `Idempotency-Key`.
//!
//! # Layout
//! - `event`: [`Event`] and [`Description`], the records shared with the host.
//! - `projection`: the [`Projection`] trait and the drivers [`handle_batch`]
//!   and [`run_query`].
//! - `view`: [`View`], the cached keyspace a projection reads and writes.
//! - `backend`: [`Backend`], where a view's documents live — the host's
//!   imports, [`MemoryBackend`], or the host's own storage in its native
//!   benchmark — and the host's rules for keys and values.
//! - `queries`: [`Queries`], the named queries and what answers each.
//! - `packed`: how the batch `handle` receives from the host is read.
//! - `params`: [`Params`], typed access to a query's parameters.
//! - `logging`: [`log`], also as [`info!`] and friends.
//! - `error`: [`Error`], [`QueryError`], [`ViewError`], [`HandleError`],
//!   [`EmitError`], [`OutboxError`].
//! - [`testing`]: the native given/when/then harness.
//! - `component` (wasm32 only): the bindings and the glue behind
//!   [`export_projection!`].

mod backend;
#[cfg(target_arch = "wasm32")]
mod component;
mod error;
mod event;
mod logging;
#[doc(hidden)]
pub mod packed;
mod params;
mod projection;
mod queries;
pub mod testing;
mod view;

pub use backend::{
    Backend, Emission, Entry, MAX_KEY_LEN, MemoryBackend, OutboxRequest, Write, check_json,
    check_key,
};
pub use error::{EmitError, Error, HandleError, OutboxError, QueryError, ViewError};
pub use event::{Description, Event, FieldKind, Index};
pub use logging::{Level, log};
pub use params::Params;
pub use projection::{Projection, handle_batch, run_query};
pub use queries::Queries;
pub use view::View;

#[cfg(target_arch = "wasm32")]
#[doc(hidden)]
pub use component::bindings;

/// What [`export_projection!`] expands to refers to; not part of the API.
#[cfg(target_arch = "wasm32")]
#[doc(hidden)]
pub mod __private {
    pub use crate::component::{describe, handle, query};
}

/// Exports a [`Projection`] as the plugin's `projection` interface.
///
/// Invoke it once per plugin crate, at the top level. The plugin keeps one
/// value of the type, made with `Default` on first use, across all calls. In
/// native builds it expands to nothing, so the same crate links as an `rlib`
/// for tests and benchmarks.
///
/// ```
/// use prism_guest::{Description, Error, Event, Projection, View};
///
/// #[derive(Default)]
/// struct Nothing;
///
/// impl Projection for Nothing {
///     fn describe() -> Description {
///         Description::new("nothing", "1.0.0")
///     }
///
///     fn handle(&mut self, _view: &mut View, _event: &Event) -> Result<(), Error> {
///         Ok(())
///     }
/// }
///
/// prism_guest::export_projection!(Nothing);
/// ```
#[macro_export]
macro_rules! export_projection {
    ($projection:ty) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            struct PrismProjectionExport;

            ::std::thread_local! {
                static PRISM_PROJECTION: ::core::cell::RefCell<$projection> =
                    ::core::cell::RefCell::new(<$projection as ::core::default::Default>::default());
            }

            impl $crate::bindings::exports::prism::projection::projection::Guest
                for PrismProjectionExport
            {
                fn describe() -> $crate::bindings::exports::prism::projection::projection::Description {
                    $crate::__private::describe::<$projection>()
                }

                fn handle(
                    batch: ::std::vec::Vec<u8>,
                ) -> ::core::result::Result<
                    (),
                    $crate::bindings::exports::prism::projection::projection::HandleError,
                > {
                    PRISM_PROJECTION.with(|projection| $crate::__private::handle(projection, batch))
                }

                fn query(
                    name: ::std::string::String,
                    params: ::std::string::String,
                ) -> ::core::result::Result<
                    ::std::string::String,
                    $crate::bindings::exports::prism::projection::projection::QueryError,
                > {
                    PRISM_PROJECTION.with(|projection| $crate::__private::query(projection, name, params))
                }
            }

            $crate::bindings::__export_projector!(PrismProjectionExport with_types_in $crate::bindings);
        };
    };
}
