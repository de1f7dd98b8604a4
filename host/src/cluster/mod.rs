//! Prism on a cluster: the event log in NATS JetStream (replicated, R3), so
//! that any number of Prism nodes share one log while each keeps its own
//! view store.
//!
//! - [`jetstream`]: the JetStream event log (appends with every promise of
//!   the embedded log that JetStream can keep, reads, following the log);
//!   `crate::log` copies it into each node's RocksDB (`log::replica`).
//! - [`sync`]: plugins across the nodes (JetStream key-value and object
//!   stores) and the nodes' heartbeats behind `GET /cluster`.
//! - `testing` (tests, or the `testing` feature): real `nats-server`
//!   clusters on loopback.

pub mod jetstream;
pub mod sync;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
#[cfg(test)]
mod tests;
