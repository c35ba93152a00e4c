//! A tiny HTTP server standing in for whoever receives webhooks, and the Standard Webhooks
//! signature computed independently of the code under test.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use anyhow::Result;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// What the receiver saw: (path, headers, body, status it answered).
pub type Seen = Arc<Mutex<Vec<(String, HashMap<String, String>, String, u16)>>>;

/// A tiny HTTP receiver: `/flaky` fails twice (500) then accepts (200), `/ok` accepts, any
/// other path always fails (503). Returns its base URL and what it saw.
pub async fn receiver() -> Result<(String, Seen)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let seen: Seen = Arc::default();
    let log = Arc::clone(&seen);
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let log = Arc::clone(&log);
            tokio::spawn(async move {
                let mut buffer = Vec::new();
                let mut chunk = [0u8; 4096];
                let (head, body) = loop {
                    let Ok(n) = socket.read(&mut chunk).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    buffer.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&buffer).into_owned();
                    if let Some((head, body)) = text.split_once("\r\n\r\n") {
                        let length = head
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse().unwrap_or(0))
                            })
                            .unwrap_or(0usize);
                        if body.len() >= length {
                            break (head.to_owned(), body[..length].to_owned());
                        }
                    }
                };
                let path = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
                let headers: HashMap<String, String> = head
                    .lines()
                    .skip(1)
                    .filter_map(|l| l.split_once(':'))
                    .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
                    .collect();
                let status = {
                    let mut log = log.lock().unwrap_or_else(|p| p.into_inner());
                    let earlier = log.iter().filter(|(p, ..)| *p == path).count();
                    let status = match path.as_str() {
                        "/flaky" if earlier >= 2 => 200,
                        "/flaky" => 500,
                        "/ok" => 200,
                        _ => 503,
                    };
                    log.push((path, headers, body, status));
                    status
                };
                let answer = format!(
                    "HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                );
                let _ = socket.write_all(answer.as_bytes()).await;
            });
        }
    });
    Ok((base, seen))
}

/// `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">` keyed by `secret_key`.
pub fn webhook_signature(
    secret_key: &[u8],
    id: &str,
    timestamp: &str,
    body: &str,
) -> Result<String> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret_key)?;
    mac.update(format!("{id}.{timestamp}.{body}").as_bytes());
    Ok(format!(
        "v1,{}",
        STANDARD.encode(mac.finalize().into_bytes())
    ))
}

/// The key inside a `whsec_<base64>` secret.
pub fn secret_key(secret: &str) -> Result<Vec<u8>> {
    let encoded = secret
        .strip_prefix("whsec_")
        .ok_or_else(|| anyhow::anyhow!("not a whsec_ secret"))?;
    Ok(STANDARD.decode(encoded)?)
}
