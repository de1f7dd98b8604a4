//! A thread fed through a channel that ends, and is waited for, with its
//! last handle: what it holds (the database, for the log writer and the
//! outbox's delivery) is let go of by the time the handle is dropped. A
//! thread left to end on its own can still be running its teardown (its
//! runtime, RocksDB's thread-local state) when the process exits, which
//! races the library's own teardown and can crash the process.

use std::thread::JoinHandle;

use tokio::sync::mpsc;

/// The sending end of a thread's channel, and the thread.
pub(crate) struct Mailbox<T> {
    tx: Option<mpsc::Sender<T>>,
    thread: Option<JoinHandle<()>>,
}

impl<T> Mailbox<T> {
    /// `thread` ends once `tx` and every clone of it are dropped.
    pub(crate) fn new(tx: mpsc::Sender<T>, thread: JoinHandle<()>) -> Self {
        Mailbox {
            tx: Some(tx),
            thread: Some(thread),
        }
    }

    pub(crate) fn sender(&self) -> &mpsc::Sender<T> {
        self.tx.as_ref().expect("open until dropped")
    }
}

impl<T> Drop for Mailbox<T> {
    /// Close the channel and wait for the thread (unless this is it).
    fn drop(&mut self) {
        self.tx.take();
        if let Some(thread) = self.thread.take()
            && thread.thread().id() != std::thread::current().id()
        {
            let _ = thread.join();
        }
    }
}
