//! `CLIENT` spans for outgoing HTTP requests, as OpenTelemetry's HTTP semantic conventions
//! describe them ("Semantic conventions for HTTP spans", §HTTP client): named after the
//! method, carrying `http.request.method`, `server.address`, `server.port` and `url.full`,
//! then `http.response.status_code`; status `Error` when no answer came or the answer is a 4xx
//! or 5xx (for a client both mean the call failed, unlike for a server).

use std::fmt::Display;

use axum::http::Uri;
use tracing::field::Empty;

use super::mark_error;

/// The span of one outgoing HTTP request; enter it (or `instrument` the call with
/// [`HttpClientSpan::span`]) around the request, then record how it ended.
#[derive(Clone, Debug)]
pub struct HttpClientSpan {
    span: tracing::Span,
}

impl HttpClientSpan {
    /// A span for `method` `url`, named `method` as the conventions say (the URL is too
    /// variable for a span name). Credentials and query values never reach the span (see
    /// [`redacted_url`]).
    pub fn new(method: &'static str, url: &str) -> Self {
        let uri = url.parse::<Uri>().ok();
        let host = uri
            .as_ref()
            .and_then(Uri::host)
            .map(|host| host.trim_start_matches('[').trim_end_matches(']'))
            .unwrap_or_default()
            .to_owned();
        let port = uri.as_ref().and_then(|uri| {
            uri.port_u16().or(match uri.scheme_str() {
                Some("https") => Some(443),
                Some("http") => Some(80),
                _ => None,
            })
        });
        let span = tracing::info_span!(
            "http client",
            otel.name = method,
            otel.kind = "client",
            otel.status_code = Empty,
            otel.status_description = Empty,
            http.request.method = method,
            server.address = %host,
            server.port = port,
            url.full = %redacted_url(url),
            http.response.status_code = Empty,
            error.type = Empty,
        );
        Self { span }
    }

    /// The span, to instrument the request with.
    pub fn span(&self) -> &tracing::Span {
        &self.span
    }

    /// Records the answer's status; a 4xx or 5xx marks the call failed.
    pub fn record_status(&self, status: u16) {
        self.span.record("http.response.status_code", status);
        if status >= 400 {
            self.span.record("error.type", status.to_string());
            mark_error(&self.span, format_args!("the server answered {status}"));
        }
    }

    /// Records that no answer came: `kind` is a short, low-cardinality class (`timeout`,
    /// `connect`), `error` says what happened.
    pub fn record_failure(&self, kind: &str, error: impl Display) {
        self.span.record("error.type", kind);
        mark_error(&self.span, error);
    }
}

/// `url` fit for a span attribute: without user name and password, and with every query
/// parameter's value replaced by `REDACTED` (a callback URL's query often carries a token).
/// Text that is not a URL is replaced whole.
pub fn redacted_url(url: &str) -> String {
    let Ok(uri) = url.parse::<Uri>() else {
        return "REDACTED".to_owned();
    };
    let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
        return "REDACTED".to_owned();
    };
    let host_port = authority
        .as_str()
        .rsplit_once('@')
        .map_or(authority.as_str(), |(_, host_port)| host_port);
    let mut redacted = format!("{scheme}://{host_port}{}", uri.path());
    if let Some(query) = uri.query() {
        let names: Vec<String> = query
            .split('&')
            .filter(|pair| !pair.is_empty())
            .map(|pair| {
                let name = pair.split_once('=').map_or(pair, |(name, _)| name);
                format!("{name}=REDACTED")
            })
            .collect();
        redacted.push('?');
        redacted.push_str(&names.join("&"));
    }
    redacted
}

#[cfg(test)]
mod tests {
    use axum::Router;
    use axum::http::StatusCode;
    use axum::routing::post;
    use opentelemetry::trace::{SpanKind, Status};
    use opentelemetry_sdk::trace::SpanData;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};
    use tokio_util::sync::CancellationToken;
    use tracing::Instrument;

    use super::{HttpClientSpan, redacted_url};
    use crate::telemetry::capture::{SpanCapture, attribute};

    /// The one `CLIENT` span among `spans`.
    fn client_span(spans: &[SpanData]) -> &SpanData {
        let clients: Vec<&SpanData> = spans
            .iter()
            .filter(|span| span.span_kind == SpanKind::Client)
            .collect();
        assert_eq!(clients.len(), 1, "one client span in {spans:#?}");
        clients[0]
    }

    #[tokio::test]
    async fn a_call_nobody_answers_ends_its_span_in_error() {
        let capture = SpanCapture::start();
        // A port nothing listens on any more: connecting to it is refused.
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a free port");
        let addr = listener.local_addr().expect("bound");
        drop(listener);
        let url = format!("http://user:secret@{addr}/v1/charges?token=abc");

        let span = HttpClientSpan::new("POST", &url);
        let connected = TcpStream::connect(addr)
            .instrument(span.span().clone())
            .await;
        let error = connected.expect_err("nothing listens on the port");
        span.record_failure("connect", &error);
        drop(span);

        let spans = capture.finished();
        let client = client_span(&spans);
        assert_eq!(client.name, "POST");
        assert_eq!(
            client.status,
            Status::Error {
                description: error.to_string().into()
            }
        );
        assert_eq!(attribute(client, "error.type").as_deref(), Some("connect"));
        assert_eq!(
            attribute(client, "http.request.method").as_deref(),
            Some("POST")
        );
        assert_eq!(
            attribute(client, "server.address").as_deref(),
            Some("127.0.0.1")
        );
        assert_eq!(
            attribute(client, "server.port"),
            Some(addr.port().to_string())
        );
        assert_eq!(
            attribute(client, "url.full"),
            Some(format!("http://{addr}/v1/charges?token=REDACTED"))
        );
        assert_eq!(attribute(client, "http.response.status_code"), None);
    }

    #[tokio::test]
    async fn a_call_answered_with_a_server_error_ends_its_span_in_error() {
        let capture = SpanCapture::start();
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a free port");
        let addr = listener.local_addr().expect("bound");
        let shutdown = CancellationToken::new();
        let router = Router::new().route(
            "/v1/charges",
            post(|| async { StatusCode::SERVICE_UNAVAILABLE }),
        );
        let server = tokio::spawn(crate::http::serve(listener, router, shutdown.clone()));

        let span = HttpClientSpan::new(
            "POST",
            &format!("http://localhost:{}/v1/charges", addr.port()),
        );
        let status = post_empty(addr, "/v1/charges")
            .instrument(span.span().clone())
            .await;
        span.record_status(status);
        drop(span);
        shutdown.cancel();
        server.await.expect("joined").expect("served");

        let spans = capture.finished();
        let client = client_span(&spans);
        assert_eq!(
            client.status,
            Status::Error {
                description: "the server answered 503".into()
            }
        );
        assert_eq!(
            attribute(client, "http.response.status_code").as_deref(),
            Some("503")
        );
        assert_eq!(attribute(client, "error.type").as_deref(), Some("503"));
        assert_eq!(
            attribute(client, "server.address").as_deref(),
            Some("localhost")
        );
        assert_eq!(
            attribute(client, "server.port"),
            Some(addr.port().to_string())
        );
    }

    /// POSTs nothing to `path` at `addr` over a fresh connection; the answer's status code.
    async fn post_empty(addr: std::net::SocketAddr, path: &str) -> u16 {
        let mut stream = TcpStream::connect(addr).await.expect("connects");
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: test\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        stream.write_all(head.as_bytes()).await.expect("sent");
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.expect("read");
        answer
            .strip_prefix("HTTP/1.1 ")
            .and_then(|rest| rest.get(..3))
            .and_then(|code| code.parse().ok())
            .unwrap_or_else(|| panic!("a status line in {answer:?}"))
    }

    #[test]
    fn credentials_and_query_values_are_left_out() {
        assert_eq!(
            redacted_url("https://user:secret@hooks.example.com:8443/cb?token=abc&x"),
            "https://hooks.example.com:8443/cb?token=REDACTED&x=REDACTED"
        );
        assert_eq!(
            redacted_url("http://127.0.0.1:8090/v1/charges"),
            "http://127.0.0.1:8090/v1/charges"
        );
        assert_eq!(redacted_url("not a url"), "REDACTED");
    }
}
