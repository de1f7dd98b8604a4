//! Prism on a cluster: the event log in NATS JetStream (replicated, R3), so
//! that any number of Prism nodes share one log while each keeps its own
//! view store.
//!
//! - [`jetstream`]: the JetStream event log (appends with every promise of
//!   the embedded log that JetStream can keep, reads, following the log).
//! - `testing` (tests, or the `testing` feature): real `nats-server`
//!   clusters on loopback.

pub mod jetstream;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
#[cfg(test)]
mod tests;
