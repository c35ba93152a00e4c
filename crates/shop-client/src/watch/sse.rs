//! Server-Sent Events: the decoder (WHATWG HTML §9.2.6, "Interpreting an event stream") and one
//! connection to `GET /api/orders/{id}/events`.
//!
//! The decoder is fed bytes as they arrive — a chunk may end anywhere, inside a line or inside
//! a UTF-8 character — and hands out whole events.

use std::time::Duration;

use bytes::Bytes;
use events::OrderId;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use serde::Deserialize;

use crate::order::HistoryEntry;
use crate::{Client, Error};

/// One dispatched event.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct SseEvent {
    /// `event:`; `message` when the event named none.
    pub(crate) event: String,
    /// The `data:` lines, joined with `\n`.
    pub(crate) data: String,
    /// The last event id at dispatch: this event's `id:`, or an earlier one's.
    pub(crate) id: Option<String>,
}

/// Turns a byte stream into [`SseEvent`]s.
#[derive(Debug, Default)]
pub(crate) struct SseDecoder {
    /// Bytes not yet split into lines.
    buffer: Vec<u8>,
    /// The `event:` of the event being assembled.
    event: Option<String>,
    /// Its `data:` lines, each followed by a newline; `None` until one came, for an event
    /// without data is not dispatched.
    data: Option<String>,
    /// The last `id:` seen; it carries over to later events, as the specification says.
    last_id: Option<String>,
    /// The last `retry:`, the reconnection delay the server advises.
    retry: Option<Duration>,
}

impl SseDecoder {
    /// Appends bytes as they came off the wire.
    pub(crate) fn push(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
    }

    /// The reconnection delay the server last advised (`retry:`).
    pub(crate) fn retry(&self) -> Option<Duration> {
        self.retry
    }

    /// The next whole event in what was pushed so far, if there is one.
    pub(crate) fn next_event(&mut self) -> Option<SseEvent> {
        while let Some(line) = self.next_line() {
            if line.is_empty() {
                if let Some(event) = self.dispatch() {
                    return Some(event);
                }
                continue;
            }
            self.field(&line);
        }
        None
    }

    /// Splits off one line (ended by CRLF, LF or CR), or `None` until one is complete.
    fn next_line(&mut self) -> Option<String> {
        let end = self.buffer.iter().position(|&b| b == b'\n' || b == b'\r')?;
        let ending = if self.buffer[end] == b'\r' {
            // A CR at the end of what arrived may be the first half of a CRLF.
            match self.buffer.get(end + 1) {
                None => return None,
                Some(b'\n') => 2,
                Some(_) => 1,
            }
        } else {
            1
        };
        let line = String::from_utf8_lossy(&self.buffer[..end]).into_owned();
        self.buffer.drain(..end + ending);
        Some(line)
    }

    fn field(&mut self, line: &str) {
        if line.starts_with(':') {
            return; // A comment: the keep-alive.
        }
        let (name, value) = match line.split_once(':') {
            Some((name, value)) => (name, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        match name {
            "event" => self.event = Some(value.to_owned()),
            "data" => {
                // Each line ends with a newline; the last one is dropped at dispatch.
                let data = self.data.get_or_insert_with(String::new);
                data.push_str(value);
                data.push('\n');
            }
            "id" if !value.contains('\0') => self.last_id = Some(value.to_owned()),
            "retry" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                self.retry = value.parse().ok().map(Duration::from_millis);
            }
            _ => {} // Unknown fields are ignored.
        }
    }

    /// Ends the event at a blank line; an event without data is not dispatched.
    fn dispatch(&mut self) -> Option<SseEvent> {
        let event = self.event.take();
        let mut data = self.data.take()?;
        data.pop();
        Some(SseEvent {
            event: event
                .filter(|e| !e.is_empty())
                .unwrap_or_else(|| "message".into()),
            data,
            id: self.last_id.clone(),
        })
    }
}

/// The `data` of a `status_update`: one transition of the order.
#[derive(Debug, Deserialize)]
pub(crate) struct StatusUpdate {
    /// The order that moved.
    pub(crate) order_id: OrderId,
    /// The transition, as the order's history has it.
    #[serde(flatten)]
    pub(crate) entry: HistoryEntry,
}

/// What asking for the stream gave.
pub(crate) enum Opened {
    /// A live event stream.
    Stream(SseStream),
    /// No stream here (not an event stream, `404` on the route, `429`/`503`): poll instead.
    Unavailable,
}

/// What reading on from a stream gave.
pub(crate) enum Next {
    /// The next transition.
    Update(StatusUpdate),
    /// The server ended the stream: after the terminal status, or early (shutdown, idle limit).
    Ended,
    /// The connection broke, or went silent.
    Broken(Error),
    /// An update that does not parse; reading on would not help.
    Malformed,
}

/// One open event stream.
pub(crate) struct SseStream {
    /// The answer's body, chunk by chunk as it arrives.
    body: BoxStream<'static, Result<Bytes, reqwest::Error>>,
    /// What was read of it, not yet handed out.
    decoder: SseDecoder,
}

impl std::fmt::Debug for SseStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SseStream")
            .field("decoder", &self.decoder)
            .finish_non_exhaustive()
    }
}

impl SseStream {
    /// Opens the order's stream, resuming after `last_seq` (`Last-Event-ID`) when it is not 0.
    ///
    /// # Errors
    ///
    /// A connection failure, or `401`, which polling would get too; other refusals are
    /// [`Opened::Unavailable`], for polling may still work where streaming does not.
    pub(crate) async fn open(
        client: &Client,
        order_id: OrderId,
        last_seq: u64,
    ) -> Result<Opened, Error> {
        let mut request = client
            .request(
                reqwest::Method::GET,
                &format!("api/orders/{order_id}/events"),
            )?
            .header(reqwest::header::ACCEPT, "text/event-stream");
        if last_seq > 0 {
            request = request.header("Last-Event-ID", last_seq.to_string());
        }
        let response = request.send().await.map_err(Error::Transport)?;
        let status = response.status();
        let is_event_stream = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| value.starts_with("text/event-stream"));
        if status.is_success() && is_event_stream {
            return Ok(Opened::Stream(Self {
                body: response.bytes_stream().boxed(),
                decoder: SseDecoder::default(),
            }));
        }
        if status == reqwest::StatusCode::UNAUTHORIZED {
            return Err(Error::from_response(response).await);
        }
        Ok(Opened::Unavailable)
    }

    /// The next `status_update`, or why there is none. A stream silent for longer than `idle`
    /// (keep-alives count) is taken for broken.
    pub(crate) async fn next_update(&mut self, idle: Duration) -> Next {
        loop {
            while let Some(event) = self.decoder.next_event() {
                if event.event != "status_update" {
                    continue;
                }
                return match serde_json::from_str(&event.data) {
                    Ok(update) => Next::Update(update),
                    Err(_) => Next::Malformed,
                };
            }
            match tokio::time::timeout(idle, self.body.try_next()).await {
                Ok(Ok(Some(bytes))) => self.decoder.push(&bytes),
                Ok(Ok(None)) => return Next::Ended,
                Ok(Err(error)) => return Next::Broken(Error::Transport(error)),
                Err(_) => {
                    return Next::Broken(Error::Decode {
                        what: format!("the event stream was silent for {idle:?}"),
                        source: None,
                    });
                }
            }
        }
    }

    /// The reconnection delay the server advised, if it did.
    pub(crate) fn retry(&self) -> Option<Duration> {
        self.decoder.retry()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(chunks: &[&[u8]]) -> Vec<SseEvent> {
        let mut decoder = SseDecoder::default();
        let mut events = Vec::new();
        for chunk in chunks {
            decoder.push(chunk);
            while let Some(event) = decoder.next_event() {
                events.push(event);
            }
        }
        events
    }

    #[test]
    fn decodes_order_apis_events() {
        let stream = b"event: status_update\nid: 1\nretry: 2000\ndata: {\"seq\":1}\n\n: keep-alive\n\nevent: status_update\nid: 2\ndata: {\"seq\":2}\n\n";
        let events = decode_all(&[stream]);
        assert_eq!(
            events,
            [
                SseEvent {
                    event: "status_update".into(),
                    data: "{\"seq\":1}".into(),
                    id: Some("1".into())
                },
                SseEvent {
                    event: "status_update".into(),
                    data: "{\"seq\":2}".into(),
                    id: Some("2".into())
                },
            ]
        );
    }

    #[test]
    fn events_split_anywhere_decode_the_same() {
        let stream: &[u8] =
            "id: 7\r\nevent: x\r\ndata: héllo\r\ndata:  two\r\n\r\ndata: last\r\r\n".as_bytes();
        let whole = decode_all(&[stream]);
        assert_eq!(whole.len(), 2);
        assert_eq!(whole[0].data, "héllo\n two");
        assert_eq!(whole[1].event, "message");
        // The id carries over to the next event, which named none.
        assert_eq!(whole[1].id.as_deref(), Some("7"));
        for cut in 0..stream.len() {
            let (a, b) = stream.split_at(cut);
            assert_eq!(decode_all(&[a, b]), whole, "cut at {cut}");
        }
        let bytewise: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(decode_all(&bytewise), whole);
    }

    #[test]
    fn ignores_comments_unknown_fields_and_dataless_events() {
        let events = decode_all(&[b": hi\nfoo: bar\nevent: nothing\n\nretry: x\ndata\n\n"]);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].data, "");
        assert_eq!(events[0].event, "message");
    }

    #[test]
    fn keeps_the_advised_retry() {
        let mut decoder = SseDecoder::default();
        decoder.push(b"retry: 2000\n\nretry: soon\n\n");
        assert_eq!(decoder.next_event(), None);
        assert_eq!(decoder.retry(), Some(Duration::from_millis(2000)));
    }

    #[test]
    fn an_unfinished_event_waits_for_its_blank_line() {
        let mut decoder = SseDecoder::default();
        decoder.push(b"data: 1\n");
        assert_eq!(decoder.next_event(), None);
        decoder.push(b"\n");
        assert_eq!(decoder.next_event().map(|e| e.data), Some("1".into()));
    }

    #[test]
    fn parses_a_status_update() {
        let data = r#"{"order_id":"ord_0190aaaa000070008000000000000000","seq":2,"status":"payment_processing","timestamp":"2026-01-01T00:00:00.012000Z","cause":"payment.initiated"}"#;
        let update: StatusUpdate = serde_json::from_str(data).expect("an update");
        assert_eq!(update.entry.seq, 2);
        assert_eq!(update.entry.cause, "payment.initiated");
    }
}
