//! A minimal Server-Sent Events reader.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use futures::StreamExt;

use crate::orders::StatusUpdate;

/// One SSE event.
#[derive(Clone, Debug, Default)]
pub struct SseEvent {
    /// `event:` field.
    pub event: String,
    /// `id:` field.
    pub id: Option<String>,
    /// `data:` lines joined.
    pub data: String,
}

impl SseEvent {
    /// The data of an order's `status_update`.
    pub fn update(&self) -> Result<StatusUpdate> {
        if self.event != "status_update" {
            bail!("not a status update: {self:?}");
        }
        serde_json::from_str(&self.data).with_context(|| format!("status update {}", self.data))
    }
}

/// Reads events from `url` until the server ends the stream; fails after `deadline`.
pub async fn read_sse(
    client: &reqwest::Client,
    url: &str,
    deadline: Duration,
) -> Result<(Vec<SseEvent>, usize)> {
    let read = async {
        let response = client
            .get(url)
            .header("accept", "text/event-stream")
            .timeout(deadline)
            .send()
            .await?;
        if !response.status().is_success() {
            bail!("SSE request failed: {}", response.status());
        }
        let content_type = response.headers().get("content-type").cloned();
        if content_type.as_ref().and_then(|v| v.to_str().ok()) != Some("text/event-stream") {
            bail!("SSE content type was {content_type:?}");
        }
        let mut body = response.bytes_stream();
        let mut buffer = String::new();
        let mut events = Vec::new();
        let mut comments = 0;
        while let Some(chunk) = body.next().await {
            buffer.push_str(&String::from_utf8_lossy(&chunk?));
            while let Some(end) = buffer.find("\n\n") {
                let block: String = buffer.drain(..end + 2).collect();
                let mut event = SseEvent::default();
                let mut is_event = false;
                for line in block.lines() {
                    if line.starts_with(':') {
                        comments += 1;
                    } else if let Some(value) = line.strip_prefix("event:") {
                        event.event = value.trim().to_owned();
                        is_event = true;
                    } else if let Some(value) = line.strip_prefix("id:") {
                        event.id = Some(value.trim().to_owned());
                    } else if let Some(value) = line.strip_prefix("data:") {
                        event.data.push_str(value.trim_start());
                        is_event = true;
                    }
                }
                if is_event {
                    events.push(event);
                }
            }
        }
        Ok((events, comments))
    };
    match tokio::time::timeout(deadline, read).await {
        Ok(result) => result,
        Err(_) => bail!("the SSE stream did not end within {deadline:?}"),
    }
}
