//! The plugin's stdout and stderr, captured line by line into its log.
//!
//! WASI gets no inherited stdio: whatever a plugin prints lands in its own
//! bounded log instead of the server's terminal.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError};

use super::{MAX_LINE_BYTES, PluginLog};

/// A stdout or stderr that writes into a plugin's log.
#[derive(Clone)]
pub struct LogOutput {
    log: Arc<PluginLog>,
    level: &'static str,
    /// Bytes of the line not yet ended by a newline.
    partial: Arc<Mutex<Vec<u8>>>,
}

impl LogOutput {
    pub fn new(log: Arc<PluginLog>, level: &'static str) -> Self {
        LogOutput {
            log,
            level,
            partial: Arc::default(),
        }
    }

    fn write_bytes(&self, mut bytes: &[u8]) {
        let mut partial = self.partial.lock().expect("stdio lock");
        while let Some(nl) = bytes.iter().position(|b| *b == b'\n') {
            partial.extend_from_slice(&bytes[..nl]);
            self.log
                .push(self.level, &String::from_utf8_lossy(&partial));
            partial.clear();
            bytes = &bytes[nl + 1..];
        }
        let room = MAX_LINE_BYTES.saturating_sub(partial.len());
        partial.extend_from_slice(&bytes[..bytes.len().min(room)]);
    }
}

impl IsTerminal for LogOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for LogOutput {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[async_trait::async_trait]
impl Pollable for LogOutput {
    async fn ready(&mut self) {}
}

impl OutputStream for LogOutput {
    fn write(&mut self, bytes: Bytes) -> Result<(), StreamError> {
        self.write_bytes(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), StreamError> {
        Ok(())
    }

    fn check_write(&mut self) -> Result<usize, StreamError> {
        Ok(64 * 1024)
    }
}

impl AsyncWrite for LogOutput {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.write_bytes(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
