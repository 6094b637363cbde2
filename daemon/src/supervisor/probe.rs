//! The health probe: does the app answer HTTP at all? Any status line
//! counts, as a 500 still proves the server alive and serving. A plain
//! HTTP/1.0 request on a fresh connection: the daemon probes every app every
//! 30 s, and a full HTTP client costs several times the CPU for nothing an
//! idle daemon needs.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Where an app is probed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeTarget {
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// The path and query asked for.
    pub path: String,
}

/// Whether the app at `target` sends an HTTP status line within `timeout`.
pub async fn answers(target: &ProbeTarget, timeout: Duration) -> bool {
    let asked = async {
        let mut stream = TcpStream::connect(("127.0.0.1", target.port)).await?;
        let request = format!(
            "GET {} HTTP/1.0\r\nHost: 127.0.0.1:{}\r\nUser-Agent: appforge-probe\r\n\r\n",
            target.path, target.port
        );
        stream.write_all(request.as_bytes()).await?;
        let mut head = [0u8; 9];
        stream.read_exact(&mut head).await?;
        Ok::<bool, std::io::Error>(head.starts_with(b"HTTP/1.") && head[8] == b' ')
    };
    matches!(tokio::time::timeout(timeout, asked).await, Ok(Ok(true)))
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn server(reply: &'static [u8]) -> u16 {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await;
                let _ = s.write_all(reply).await;
            }
        });
        port
    }

    fn target(port: u16) -> ProbeTarget {
        ProbeTarget {
            port,
            path: "/healthz?appforge-probe=1".into(),
        }
    }

    #[tokio::test]
    async fn any_status_line_is_an_answer_and_nothing_else_is() {
        let second = Duration::from_secs(5);
        let ok = server(b"HTTP/1.1 200 OK\r\n\r\n").await;
        let error = server(b"HTTP/1.0 500 INTERNAL SERVER ERROR\r\n\r\n").await;
        let garbage = server(b"SSH-2.0-OpenSSH_9.2\r\n").await;
        assert!(answers(&target(ok), second).await);
        assert!(answers(&target(error), second).await);
        assert!(!answers(&target(garbage), second).await);
        // Nothing listening.
        let free = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        assert!(!answers(&target(free), second).await);
        // A server that accepts and says nothing.
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = silent.local_addr().unwrap().port();
        assert!(!answers(&target(port), Duration::from_millis(200)).await);
        drop(silent);
    }
}
