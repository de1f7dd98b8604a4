//! SIGTERM stops the server cleanly: idle connections are closed at once,
//! and what was acknowledged is there after a restart.

use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::TestServer;

#[tokio::test]
async fn sigterm_closes_idle_connections_and_exits_cleanly() {
    let mut server = TestServer::start().await;
    server.append("s", &[("Created", json!({}))]).await;
    // A kept-alive connection, idle after its answer: shutdown must not wait
    // for it (nor for the 10 s header-read timeout).
    let mut idle = TcpStream::connect(server.base.trim_start_matches("http://"))
        .await
        .unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: prism\r\n\r\n")
        .await
        .unwrap();
    let mut answer = [0u8; 1024];
    let n = idle.read(&mut answer).await.unwrap();
    assert!(answer[..n].starts_with(b"HTTP/1.1 200"));

    let status = server
        .terminate(Duration::from_secs(5))
        .expect("still running 5 s after SIGTERM");
    assert!(status.success(), "{status}; log:\n{}", server.server_log());
    server.restart().await;
    assert_eq!(server.head().await, 1);
}
