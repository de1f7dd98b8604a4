//! Slow and idle connections are closed after the header-read timeout,
//! while ordinary requests go on being answered.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::TestServer;

/// How long it took the server to close `stream`, which sends one header
/// line every 200 ms and never finishes its request; `None` if it was still
/// open after `give_up`.
async fn time_to_close_while_trickling(
    mut stream: TcpStream,
    give_up: Duration,
) -> Option<Duration> {
    let started = Instant::now();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: prism\r\n")
        .await
        .unwrap();
    let mut buffer = [0u8; 1024];
    let mut line = 0;
    while started.elapsed() < give_up {
        tokio::select! {
            read = stream.read(&mut buffer) => match read {
                Ok(0) | Err(_) => return Some(started.elapsed()),
                // A 408 or similar before the close is fine.
                Ok(_) => {}
            },
            () = tokio::time::sleep(Duration::from_millis(200)) => {
                line += 1;
                if stream.write_all(format!("X-Slow-{line}: x\r\n").as_bytes()).await.is_err() {
                    return Some(started.elapsed());
                }
            }
        }
    }
    None
}

/// How long it took the server to close `stream`, which sends nothing.
async fn time_to_close_while_silent(stream: &mut TcpStream, give_up: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut buffer = [0u8; 1024];
    loop {
        match tokio::time::timeout_at((started + give_up).into(), stream.read(&mut buffer)).await {
            Err(_) => return None,
            Ok(Ok(0) | Err(_)) => return Some(started.elapsed()),
            Ok(Ok(_)) => {}
        }
    }
}

#[tokio::test]
async fn a_client_trickling_its_headers_is_disconnected_and_others_are_served() {
    let server = TestServer::start_with(&["--header-read-timeout-secs", "1"]).await;
    let address = server.base.trim_start_matches("http://").to_string();
    let slow: Vec<_> = (0..4)
        .map(|_| {
            let address = address.clone();
            tokio::spawn(async move {
                let stream = TcpStream::connect(address).await.unwrap();
                time_to_close_while_trickling(stream, Duration::from_secs(6)).await
            })
        })
        .collect();
    // Ordinary requests are answered while the slow clients hang on.
    for _ in 0..5 {
        server.get_ok("/healthz").await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for client in slow {
        let closed_after = client.await.unwrap().expect("still connected after 6 s");
        assert!(
            closed_after >= Duration::from_millis(900) && closed_after < Duration::from_secs(3),
            "closed after {closed_after:?}"
        );
    }
    server.get_ok("/healthz").await;
}

#[tokio::test]
async fn an_idle_kept_alive_connection_is_closed() {
    let server = TestServer::start_with(&["--header-read-timeout-secs", "1"]).await;
    let address = server.base.trim_start_matches("http://");
    let mut stream = TcpStream::connect(address).await.unwrap();
    let closed_after = time_to_close_while_silent(&mut stream, Duration::from_secs(6)).await;
    let closed_after = closed_after.expect("a silent new connection was kept for 6 s");
    assert!(closed_after < Duration::from_secs(3), "{closed_after:?}");

    // After one answered request, the kept-alive connection may idle only as long.
    let mut stream = TcpStream::connect(address).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: prism\r\n\r\n")
        .await
        .unwrap();
    let mut answer = [0u8; 1024];
    let n = stream.read(&mut answer).await.unwrap();
    assert!(
        answer[..n].starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&answer[..n])
    );
    let closed_after = time_to_close_while_silent(&mut stream, Duration::from_secs(6)).await;
    let closed_after = closed_after.expect("an idle kept-alive connection was kept for 6 s");
    assert!(closed_after < Duration::from_secs(3), "{closed_after:?}");
}
