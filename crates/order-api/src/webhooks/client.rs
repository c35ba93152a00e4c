//! The HTTP client that delivers webhooks, and what a failed attempt tells the client.
//!
//! A delivery connects only to addresses its own resolver checked ([`GuardedResolver`]); URLs
//! with a literal address never reach a resolver, so they are checked here. What went wrong is
//! recorded for the client as a coarse [`FailureClass`] only: the delivery log is readable by
//! whoever chose the URL, and detailed errors ("connection refused" on one port, a timeout on
//! another, what a name resolved to) would make it a scanner of whatever the service can reach.
//! The details go to the service's log.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use reqwest::Url;
use reqwest::header::CONTENT_TYPE;

use platform::telemetry::HttpClientSpan;
use platform::webhook;
use tracing::Instrument;

use super::address::is_global;
use super::deliverer::DelivererConfig;
use super::resolver::{GuardedResolver, Lookup, TargetError};

/// How long one attempt may take, from lookup to the end of the answer.
pub(crate) const SEND_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a name lookup may take (part of [`SEND_TIMEOUT`]).
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(2);

/// How long connecting may take (part of [`SEND_TIMEOUT`]).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// What the client is told about a failed attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FailureClass {
    /// The target is not one we send to: no global address, or not a usable URL.
    RefusedTarget,
    /// No connection could be made, or it broke before an answer.
    ConnectFailed,
    /// The lookup, connection or answer took too long.
    Timeout,
    /// The receiver answered, with a status other than 2xx (in `status_code`).
    HttpStatus,
    /// We hold no signing secret for the order's principal.
    NoSecret,
}

impl FailureClass {
    /// The text stored in the delivery log.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::RefusedTarget => "refused_target",
            Self::ConnectFailed => "connect_failed",
            Self::Timeout => "timeout",
            Self::HttpStatus => "http_status",
            Self::NoSecret => "no_secret",
        }
    }

    /// Every class, for mapping stored text back.
    pub(crate) const ALL: [Self; 5] = [
        Self::RefusedTarget,
        Self::ConnectFailed,
        Self::Timeout,
        Self::HttpStatus,
        Self::NoSecret,
    ];
}

/// A failed attempt: the class for the client, the detail for the log.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) class: FailureClass,
    pub(crate) detail: String,
}

impl Failure {
    fn new(class: FailureClass, detail: impl Into<String>) -> Self {
        Self {
            class,
            detail: detail.into(),
        }
    }
}

/// The delivery client: names resolved through `lookup`, filtered unless `allow_private`.
pub(crate) fn build(
    allow_private: bool,
    lookup: Arc<dyn Lookup>,
) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .timeout(SEND_TIMEOUT)
        .connect_timeout(CONNECT_TIMEOUT)
        .pool_idle_timeout(platform::http::CLIENT_POOL_IDLE_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        // Through a proxy, the proxy would resolve the target's name, unchecked.
        .no_proxy()
        .dns_resolver(Arc::new(GuardedResolver::new(
            lookup,
            allow_private,
            LOOKUP_TIMEOUT,
        )))
        .build()
}

/// What is signed and sent in one attempt.
#[derive(Debug)]
pub(crate) struct Message<'a> {
    pub(crate) id: &'a str,
    pub(crate) url: &'a str,
    pub(crate) principal: &'a str,
    pub(crate) payload: &'a str,
}

/// Makes one attempt: the receiver's status code, or why there was none.
pub(crate) async fn send(
    http: &reqwest::Client,
    config: &DelivererConfig,
    message: &Message<'_>,
) -> Result<u16, Failure> {
    let url = Url::parse(message.url)
        .map_err(|error| Failure::new(FailureClass::RefusedTarget, error.to_string()))?;
    let host = url
        .host_str()
        .ok_or_else(|| Failure::new(FailureClass::RefusedTarget, "no host"))?;
    // The URL parser has normalised every IPv4 spelling (`0x7f.1`, `2130706433`) to dotted form.
    let literal = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>();
    if let Ok(ip) = literal
        && !config.allow_private
        && !is_global(ip)
    {
        return Err(Failure::new(
            FailureClass::RefusedTarget,
            format!("{ip} is not a global address"),
        ));
    }
    let secret = config.secrets.get(message.principal).ok_or_else(|| {
        Failure::new(
            FailureClass::NoSecret,
            format!("no webhook secret for {}", message.principal),
        )
    })?;
    let timestamp = chrono::Utc::now().timestamp();
    let signature = secret.sign(message.id, timestamp, message.payload.as_bytes());
    // The receiver is the client's, not ours: the span names it (URL without credentials or
    // query values), but no trace context is sent to it.
    let span = HttpClientSpan::new("POST", message.url);
    let sent = http
        .post(url)
        .header(CONTENT_TYPE, "application/json")
        .header(webhook::ID, message.id)
        .header(webhook::TIMESTAMP, timestamp.to_string())
        .header(webhook::SIGNATURE, signature)
        .body(message.payload.to_owned())
        .send()
        .instrument(span.span().clone())
        .await;
    match sent {
        Ok(response) => {
            span.record_status(response.status().as_u16());
            Ok(response.status().as_u16())
        }
        Err(error) => {
            let failure = classify(error);
            span.record_failure(failure.class.as_str(), &failure.detail);
            Err(failure)
        }
    }
}

/// The class of a client error, and its whole chain as the detail.
fn classify(error: reqwest::Error) -> Failure {
    let mut detail = error.to_string();
    let mut class = if error.is_timeout() {
        FailureClass::Timeout
    } else {
        FailureClass::ConnectFailed
    };
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        detail.push_str(": ");
        detail.push_str(&cause.to_string());
        match cause.downcast_ref::<TargetError>() {
            Some(TargetError::Refused { .. }) => class = FailureClass::RefusedTarget,
            Some(TargetError::LookupTimedOut { .. }) => class = FailureClass::Timeout,
            None => {}
        }
        source = cause.source();
    }
    Failure::new(class, detail)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::net::Ipv4Addr;

    use platform::webhook::Secret;

    use super::super::resolver::fake::Scripted;
    use super::super::test_server::Receiver;
    use super::*;

    const PUBLIC: IpAddr = IpAddr::V4(Ipv4Addr::new(93, 184, 216, 34));
    const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

    fn config(allow_private: bool) -> DelivererConfig {
        let secret = Secret::parse("whsec_c2VjcmV0LWZvci10ZXN0cy1vZi1jYWxsYmFja3M=")
            .expect("a valid secret");
        DelivererConfig {
            secrets: Arc::new(HashMap::from([("alice".to_owned(), secret)])),
            max_attempts: 3,
            base_backoff: Duration::from_millis(10),
            allow_private,
        }
    }

    fn message(url: &str) -> Message<'_> {
        Message {
            id: "msg_1",
            url,
            principal: "alice",
            payload: "{}",
        }
    }

    #[tokio::test]
    async fn a_name_rebound_to_loopback_is_refused_at_connect() -> anyhow::Result<()> {
        let receiver = Receiver::start().await?;
        let url = format!("http://hooks.rebind.test:{}/hook", receiver.port());

        // The name answers a public address to whoever checks it first, then loopback: the
        // delivery makes the only lookup, and refuses what it answers.
        let lookup = Scripted::new(&[&[PUBLIC], &[LOOPBACK]]);
        let checker = GuardedResolver::new(lookup.clone(), false, LOOKUP_TIMEOUT);
        assert_eq!(
            checker.addresses("hooks.rebind.test").await.ok(),
            Some(vec![PUBLIC])
        );
        let http = build(false, lookup)?;
        let failure = send(&http, &config(false), &message(&url)).await.err();
        assert_eq!(failure.map(|f| f.class), Some(FailureClass::RefusedTarget));
        assert_eq!(receiver.connections(), 0, "nothing reached the receiver");

        // The same name, allowed to be private, reaches it: the refusal above was the filter.
        let http = build(true, Scripted::new(&[&[LOOPBACK]]))?;
        let status = send(&http, &config(true), &message(&url)).await.ok();
        assert_eq!(status, Some(200));
        assert_eq!(receiver.connections(), 1);
        Ok(())
    }

    #[tokio::test]
    async fn internal_literal_addresses_are_refused_without_a_connection() -> anyhow::Result<()> {
        let receiver = Receiver::start().await?;
        let http = build(false, Scripted::new(&[&[PUBLIC]]))?;
        for host in ["127.0.0.1", "[::ffff:127.0.0.1]"] {
            let url = format!("http://{host}:{}/hook", receiver.port());
            let failure = send(&http, &config(false), &message(&url)).await.err();
            assert_eq!(
                failure.map(|f| f.class),
                Some(FailureClass::RefusedTarget),
                "{host}"
            );
        }
        assert_eq!(receiver.connections(), 0);
        Ok(())
    }

    #[tokio::test]
    async fn failures_are_told_by_class_only() -> anyhow::Result<()> {
        // A port nobody listens on: the detail says "refused", the class does not.
        let closed = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let http = build(true, Scripted::new(&[&[LOOPBACK]]))?;
        let url = format!("http://127.0.0.1:{closed}/hook");
        let failure = send(&http, &config(true), &message(&url)).await.err();
        assert_eq!(
            failure.as_ref().map(|f| f.class),
            Some(FailureClass::ConnectFailed),
            "{failure:?}"
        );
        assert!(
            failure.is_some_and(|f| f.detail.contains("refused")),
            "the detail is for the log"
        );

        let url = "http://127.0.0.1:9/hook";
        let mut nobody = message(url);
        nobody.principal = "mallory";
        let failure = send(&http, &config(true), &nobody).await.err();
        assert_eq!(failure.map(|f| f.class), Some(FailureClass::NoSecret));
        Ok(())
    }
}
