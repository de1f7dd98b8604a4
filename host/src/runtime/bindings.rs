//! The one `bindgen!` of Prism's WIT world; everything else imports from here.
//!
//! Host imports are `trappable`: a storage failure inside a host call is a
//! host problem and traps the guest (the projector then retries or fails the
//! plugin), while errors the plugin should handle are the WIT `result`s.
//!
//! Everything is `async`: a call into a plugin is a future that a deadline
//! can end whether the plugin computes or waits (a WASI sleep, a poll), and
//! the epoch ticks make a computing plugin yield so that the deadline fires.

wasmtime::component::bindgen!({
    world: "projector",
    path: "../wit",
    imports: { default: async | trappable },
    exports: { default: async },
});

pub use self::prism::projection::logging::Level;
pub use self::prism::projection::view::{Entry, ViewError, Write};
pub use exports::prism::projection::projection::{Description, Event, HandleError, QueryError};
