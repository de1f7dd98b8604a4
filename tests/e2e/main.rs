//! End-to-end tests: each module is one scenario against the real `prism`
//! binary on a loopback port with temporary directories.

mod common;

mod append_and_read;
mod bad_input;
mod concurrent_writers;
mod durability;
mod idempotent_retry;
