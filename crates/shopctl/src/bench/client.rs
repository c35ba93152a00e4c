//! One order, as a client of order-api sees it: place it, then follow it to the saga's end.
//!
//! The end is observed the way a real client would: by following the order's event stream
//! (`sse`), by long polling the order (`poll`), or — with `--sync` — by asking the POST itself
//! to wait (`Prefer: wait=10`), falling back to the observe mode when the answer is `202`.
//! Every failure is reduced to a short kind (`http_503`, `connect`, `timeout`, `stream_broke`…)
//! so that the report can count them.

use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{Value, json};

use super::mix::OrderSpec;
use super::stats::Attempt;

/// How the client learns that a saga ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Observe {
    /// Follow `GET /api/orders/{id}/events` (Server-Sent Events) to the terminal status.
    Sse,
    /// Long poll `GET /api/orders/{id}?wait=10` until the status is terminal.
    Poll,
}

impl Observe {
    /// The name used in the report.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Observe::Sse => "sse",
            Observe::Poll => "poll",
        }
    }
}

/// The longest one order may take, POST to terminal status; past it the order counts as a
/// `timeout`, so that a stuck saga cannot hold a run open.
const ORDER_TIMEOUT: Duration = Duration::from_secs(30);

/// How often a stream that ended before the terminal status is resumed (`Last-Event-ID`).
const MAX_RESUMES: usize = 5;

/// Seconds a waiting request may be held (order-api's cap).
const WAIT_S: u64 = 10;

/// Places orders on one order-api.
#[derive(Debug, Clone)]
pub(crate) struct Client {
    /// Shared connection pool.
    http: reqwest::Client,
    /// order-api base URL, without a trailing slash.
    base: String,
    /// Sent as `Authorization: Bearer`, when order-api needs a key.
    api_key: Option<String>,
    /// How the end of a saga is observed.
    observe: Observe,
    /// Whether the POST asks to wait for the end (`Prefer: wait=10`).
    sync: bool,
}

impl Client {
    /// A client of `base` holding up to `connections` idle connections.
    pub(crate) fn new(
        base: &str,
        api_key: Option<String>,
        observe: Observe,
        sync: bool,
        connections: usize,
    ) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(connections)
            .tcp_nodelay(true)
            .connect_timeout(Duration::from_secs(5))
            .build()?;
        Ok(Self {
            http,
            base: base.trim_end_matches('/').to_owned(),
            api_key,
            observe,
            sync,
        })
    }

    /// Places one order and follows it to its end; latencies count from `intended`, the time
    /// the order was meant to be sent.
    pub(crate) async fn order(&self, spec: &OrderSpec<'_>, intended: Instant) -> Attempt {
        let mut accepted = None;
        let placed = self.place_and_follow(spec, intended, &mut accepted);
        let finished = tokio::time::timeout(ORDER_TIMEOUT, placed).await;
        match finished {
            Ok(attempt) => attempt,
            Err(_) => Attempt::failed(accepted, "timeout"),
        }
    }

    async fn place_and_follow(
        &self,
        spec: &OrderSpec<'_>,
        intended: Instant,
        accepted: &mut Option<Duration>,
    ) -> Attempt {
        let body = json!({
            "user_id": "usr_bench",
            "items": [{"sku": spec.sku, "quantity": 1}],
            "payment_method": spec.payment_method,
        });
        let mut post = self
            .with_key(self.http.post(format!("{}/api/orders", self.base)))
            .json(&body);
        if self.sync {
            post = post.header("prefer", format!("wait={WAIT_S}"));
        }
        let response = match post.send().await {
            Ok(response) => response,
            Err(error) => return Attempt::failed(None, kind_of(&error)),
        };
        let answered = intended.elapsed();
        let status = response.status();
        if !matches!(status.as_u16(), 201 | 202) {
            return Attempt::failed(None, format!("http_{}", status.as_u16()));
        }
        let body: Value = match response.json().await {
            Ok(body) => body,
            Err(error) => return Attempt::failed(None, kind_of(&error)),
        };
        *accepted = Some(answered);
        if status == reqwest::StatusCode::CREATED {
            // `--sync` and the saga ended within the wait: the body is the final order.
            let outcome = terminal_of(&body, "cancellation_reason")
                .map(|outcome| (answered, outcome))
                .ok_or_else(|| "bad_response".to_owned());
            return Attempt {
                accepted: Some(answered),
                outcome,
            };
        }
        let (Some(status_url), Some(events_url)) =
            (body["status_url"].as_str(), body["events_url"].as_str())
        else {
            return Attempt::failed(Some(answered), "bad_response");
        };
        let outcome = match self.observe {
            Observe::Sse => self.follow_stream(events_url).await,
            Observe::Poll => self.poll(status_url).await,
        };
        Attempt {
            accepted: Some(answered),
            outcome: outcome.map(|status| (intended.elapsed(), status)),
        }
    }

    /// Follows the order's event stream until a terminal status; resumes a stream that ends
    /// early, as an SSE client does.
    async fn follow_stream(&self, events_url: &str) -> Result<String, String> {
        let url = format!("{}{events_url}", self.base);
        let mut last_id: Option<String> = None;
        for _ in 0..=MAX_RESUMES {
            let mut request = self
                .with_key(self.http.get(&url))
                .header("accept", "text/event-stream");
            if let Some(id) = &last_id {
                request = request.header("last-event-id", id);
            }
            let response = request.send().await.map_err(|error| kind_of(&error))?;
            if !response.status().is_success() {
                return Err(format!("observe_http_{}", response.status().as_u16()));
            }
            let mut body = response.bytes_stream();
            let mut buffer: Vec<u8> = Vec::new();
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(|_| "stream_broke".to_owned())?;
                buffer.extend_from_slice(&chunk);
                while let Some(end) = find_blank_line(&buffer) {
                    let event: Vec<u8> = buffer.drain(..end).collect();
                    let (id, data) = parse_event(&String::from_utf8_lossy(&event));
                    if id.is_some() {
                        last_id = id;
                    }
                    let data: Option<Value> =
                        data.and_then(|data| serde_json::from_str(&data).ok());
                    if let Some(outcome) = data.and_then(|data| terminal_of(&data, "reason")) {
                        return Ok(outcome);
                    }
                }
            }
        }
        Err("stream_broke".to_owned())
    }

    /// Long polls the order until its status is terminal.
    async fn poll(&self, status_url: &str) -> Result<String, String> {
        let url = format!("{}{status_url}?wait={WAIT_S}", self.base);
        loop {
            let response = self
                .with_key(self.http.get(&url))
                .send()
                .await
                .map_err(|error| kind_of(&error))?;
            if !response.status().is_success() {
                return Err(format!("observe_http_{}", response.status().as_u16()));
            }
            let order: Value = response.json().await.map_err(|error| kind_of(&error))?;
            if let Some(outcome) = terminal_of(&order, "cancellation_reason") {
                return Ok(outcome);
            }
        }
    }

    fn with_key(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.api_key {
            Some(key) => request.bearer_auth(key),
            None => request,
        }
    }
}

/// `confirmed` or `cancelled:<reason>` if `order` (an order or a status update) is terminal.
fn terminal_of(order: &Value, reason_field: &str) -> Option<String> {
    match order["status"].as_str()? {
        "confirmed" => Some("confirmed".to_owned()),
        "cancelled" => Some(format!(
            "cancelled:{}",
            order[reason_field].as_str().unwrap_or("unknown")
        )),
        _ => None,
    }
}

/// The end of the first complete SSE event (just past its blank line), if one is buffered.
fn find_blank_line(buffer: &[u8]) -> Option<usize> {
    buffer
        .windows(2)
        .position(|pair| pair == b"\n\n")
        .map(|at| at + 2)
}

/// The `id` and the (joined) `data` of one SSE event; comments and other fields are skipped.
fn parse_event(event: &str) -> (Option<String>, Option<String>) {
    let mut id = None;
    let mut data: Option<String> = None;
    for line in event.lines().map(|line| line.trim_end_matches('\r')) {
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "id" => id = Some(value.to_owned()),
            "data" => match &mut data {
                Some(joined) => {
                    joined.push('\n');
                    joined.push_str(value);
                }
                None => data = Some(value.to_owned()),
            },
            _ => {}
        }
    }
    (id, data)
}

/// The short kind of a transport failure.
fn kind_of(error: &reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "timeout"
    } else if error.is_connect() {
        "connect"
    } else if error.is_decode() || error.is_body() {
        "bad_response"
    } else {
        "request"
    };
    kind.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_sse_events() {
        let event = "id: 3\nevent: status_update\ndata: {\"status\":\"cancelled\",\"reason\":\"payment_declined\"}\n\n";
        let (id, data) = parse_event(event);
        assert_eq!(id.as_deref(), Some("3"));
        let data: Value = serde_json::from_str(&data.unwrap_or_default()).unwrap_or_default();
        assert_eq!(
            terminal_of(&data, "reason").as_deref(),
            Some("cancelled:payment_declined")
        );
        assert_eq!(parse_event(": keep-alive\n\n"), (None, None));
        assert_eq!(find_blank_line(b"id: 1\ndata: {}\n\nid: 2"), Some(16));
        assert_eq!(find_blank_line(b"id: 1\ndata: {}\n"), None);
    }

    #[test]
    fn only_terminal_statuses_end_a_saga() {
        let order = |status: &str| json!({"status": status, "cancellation_reason": "out_of_stock"});
        assert_eq!(
            terminal_of(&order("confirmed"), "cancellation_reason").as_deref(),
            Some("confirmed")
        );
        assert_eq!(
            terminal_of(&order("cancelled"), "cancellation_reason").as_deref(),
            Some("cancelled:out_of_stock")
        );
        assert_eq!(
            terminal_of(&order("payment_processing"), "cancellation_reason"),
            None
        );
    }
}
