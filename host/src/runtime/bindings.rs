//! The `bindgen!`s of Prism's WIT worlds; everything else imports from here.
//!
//! Five versions of the `projector` world are served:
//! `prism:projection@0.5.0` (`wit/`, the current one: `handle` takes its
//! batch packed in one buffer, see `packed.rs`), `prism:projection@0.4.0`
//! (`wit/0.4.0/`, frozen: projections put side effects in the outbox),
//! `prism:projection@0.3.0` (`wit/0.3.0/`, frozen:
//! projections emit events), `prism:projection@0.2.0` (`wit/0.2.0/`, frozen:
//! descriptions declare indexes) and `prism:projection@0.1.0` (`wit/0.1.0/`,
//! frozen), so
//! components built against an older contract keep loading unchanged. The host works with
//! the current version's types; an older instance's calls are translated at
//! the edge (`instance.rs`, `view/host.rs`).
//!
//! Host imports are `trappable`: a storage failure inside a host call is a
//! host problem and traps the guest (the projector then retries or fails the
//! plugin), while errors the plugin should handle are the WIT `result`s.
//!
//! Everything is `async`: a call into a plugin is a future that a deadline
//! can end whether the plugin computes or waits (a WASI sleep, a poll), and
//! the epoch ticks make a computing plugin yield so that the deadline fires.

/// `prism:projection@0.1.0`: no index declarations.
pub mod v0_1 {
    wasmtime::component::bindgen!({
        world: "projector",
        path: "../wit/0.1.0",
        imports: { default: async | trappable },
        exports: { default: async },
    });
}

/// `prism:projection@0.2.0`: no emitted events.
pub mod v0_2 {
    wasmtime::component::bindgen!({
        world: "projector",
        path: "../wit/0.2.0",
        imports: { default: async | trappable },
        exports: { default: async },
    });
}

/// `prism:projection@0.3.0`: no outbox.
pub mod v0_3 {
    wasmtime::component::bindgen!({
        world: "projector",
        path: "../wit/0.3.0",
        imports: { default: async | trappable },
        exports: { default: async },
    });
}

/// `prism:projection@0.4.0`: events are handed over one record each.
pub mod v0_4 {
    wasmtime::component::bindgen!({
        world: "projector",
        path: "../wit/0.4.0",
        imports: { default: async | trappable },
        exports: { default: async },
    });
}

/// `prism:projection@0.5.0`, the current contract.
pub mod v0_5 {
    wasmtime::component::bindgen!({
        world: "projector",
        path: "../wit",
        imports: { default: async | trappable },
        exports: { default: async },
    });
}

pub use v0_5::exports::prism::projection::projection::{Description, HandleError, QueryError};
pub use v0_5::prism::projection::emit::EmitError;
pub use v0_5::prism::projection::logging::Level;
pub use v0_5::prism::projection::outbox::{OutboxError, Request as OutboxRequest};
pub use v0_5::prism::projection::types::{Event, FieldKind, Index, IndexField};
pub use v0_5::prism::projection::view::{Entry, ViewError, Write};
