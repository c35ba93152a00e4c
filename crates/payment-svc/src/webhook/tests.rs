//! `POST /webhooks/payments` driven through the service's router: what is refused on the
//! headers alone must be refused without waiting for the body, and the body limit holds while
//! reading.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{Request, StatusCode, header};
use axum::response::Response;
use futures::StreamExt;
use futures::future::BoxFuture;
use tower::ServiceExt;

use platform::Db;
use platform::config::KafkaConfig;
use platform::http::Readiness;
use platform::kafka::EventProducer;
use platform::sql::ScratchDb;
use platform::webhook::{self, Secret};

use super::{MAX_BODY_BYTES, WebhookState};
use crate::app::router;
use crate::provider::{
    Accepted, Availability, ChargeRequest, PaymentProvider, ProviderError, RefundRequest, Requests,
};
use crate::store;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const TOLERANCE_S: i64 = 300;
/// Far longer than any answer takes; reaching it means the handler is waiting for the body.
const PATIENCE: Duration = Duration::from_secs(5);

/// No provider: these tests never get as far as charging.
#[derive(Debug)]
struct NoProvider;

impl PaymentProvider for NoProvider {
    fn charge(&self, _: ChargeRequest) -> BoxFuture<'_, Result<Accepted, ProviderError>> {
        Box::pin(async { Err(ProviderError("no provider".into(), Availability::Down)) })
    }

    fn refund(&self, _: RefundRequest) -> BoxFuture<'_, Result<Accepted, ProviderError>> {
        Box::pin(async { Err(ProviderError("no provider".into(), Availability::Down)) })
    }
}

fn app(scratch: &ScratchDb) -> axum::Router {
    let db = Db::open(scratch.target(), store::MIGRATIONS).expect("the database opens");
    // No broker: readiness is not what these tests ask about.
    let kafka = KafkaConfig {
        bootstrap_servers: "127.0.0.1:1".to_owned(),
        client_id: "payment-webhook-test".to_owned(),
        ..KafkaConfig::default()
    };
    let producer = EventProducer::new(&kafka).expect("a producer");
    let readiness = Readiness::new(db.clone(), producer, Vec::new(), None);
    let webhooks = Arc::new(WebhookState {
        secret: Secret::parse(SECRET).expect("a valid secret"),
        tolerance_s: TOLERANCE_S,
        requests: Requests::new(db, Arc::new(NoProvider), 1),
    });
    router(webhooks, readiness)
}

/// A body that sends `first`, then nothing more and never ends: whoever reads it to the end
/// waits forever.
fn endless(first: Vec<u8>) -> Body {
    let first = futures::stream::once(async move { Ok::<_, Infallible>(Bytes::from(first)) });
    Body::from_stream(first.chain(futures::stream::pending()))
}

/// A body of 16 KiB chunks that never ends: only a limit enforced while reading stops it.
fn bottomless() -> Body {
    Body::from_stream(futures::stream::repeat_with(|| {
        Ok::<_, Infallible>(Bytes::from(vec![b' '; 16 * 1024]))
    }))
}

fn request(id: &str, timestamp: i64, signature: Option<&str>, body: Body) -> Request<Body> {
    let mut builder = Request::post("/webhooks/payments")
        .header(header::CONTENT_TYPE, "application/json")
        .header(webhook::ID, id)
        .header(webhook::TIMESTAMP, timestamp.to_string());
    if let Some(signature) = signature {
        builder = builder.header(webhook::SIGNATURE, signature);
    }
    builder.body(body).expect("a valid request")
}

async fn answer(app: &axum::Router, request: Request<Body>) -> Response {
    tokio::time::timeout(PATIENCE, app.clone().oneshot(request))
        .await
        .expect("answered without waiting for the body")
        .expect("the router is infallible")
}

fn content_type(response: &Response) -> &str {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
}

#[tokio::test]
async fn headers_that_cannot_verify_are_refused_before_the_body_is_read() {
    let scratch = ScratchDb::new("payment_webhook_headers");
    let app = app(&scratch);
    let now = chrono::Utc::now().timestamp();
    let secret = Secret::parse(SECRET).expect("a valid secret");
    let body = vec![b'x'; MAX_BODY_BYTES];
    let genuine = secret.sign("evt_1", now, &body);
    // Forty thousand well-formed candidates: each used to cost an HMAC over the whole body.
    let other = Secret::parse(&Secret::generate()).expect("a valid secret");
    let flood = vec![other.sign("evt_1", now, &body); 40_000].join(" ");
    let oversized = format!("{genuine} {}", "v1,A".repeat(2_000));
    let cases: [(&str, i64, Option<&str>); 4] = [
        ("tens of thousands of candidates", now, Some(&flood)),
        ("an oversized header", now, Some(&oversized)),
        ("an hour old", now - 3_600, Some(&genuine)),
        ("no signature", now, None),
    ];
    for (what, timestamp, signature) in cases {
        let started = std::time::Instant::now();
        let response = answer(
            &app,
            request("evt_1", timestamp, signature, endless(body.clone())),
        )
        .await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{what}");
        assert_eq!(
            content_type(&response),
            "application/problem+json",
            "{what}"
        );
        // Not a timing test (the figure depends on the machine): the answer came without the
        // body, and so without hashing it even once per candidate.
        eprintln!("{what}: refused in {:?}", started.elapsed());
    }
}

#[tokio::test]
async fn a_body_over_the_limit_is_refused_while_it_is_read() {
    let scratch = ScratchDb::new("payment_webhook_body");
    let app = app(&scratch);
    let now = chrono::Utc::now().timestamp();
    let secret = Secret::parse(SECRET).expect("a valid secret");
    // The signature is not checked yet when the limit trips: any well-formed header passes.
    let signature = secret.sign("evt_2", now, b"");
    let response = answer(&app, request("evt_2", now, Some(&signature), bottomless())).await;
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(content_type(&response), "application/problem+json");
}

#[tokio::test]
async fn a_signed_message_within_limits_gets_past_the_checks() {
    let scratch = ScratchDb::new("payment_webhook_signed");
    let app = app(&scratch);
    let now = chrono::Utc::now().timestamp();
    let secret = Secret::parse(SECRET).expect("a valid secret");
    let body = br#"{"not": "an event"}"#;
    // Key rotation: an old key's signature first, then the current one.
    let old = Secret::parse(&Secret::generate()).expect("a valid secret");
    let signatures = format!(
        "{} {}",
        old.sign("evt_3", now, body),
        secret.sign("evt_3", now, body)
    );
    let signed = request("evt_3", now, Some(&signatures), Body::from(body.to_vec()));
    let response = answer(&app, signed).await;
    // Verified, then refused for what the body says: it is no provider event.
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let tampered = request(
        "evt_3",
        now,
        Some(&signatures),
        Body::from(br#"{"not": "an evenT"}"#.to_vec()),
    );
    assert_eq!(
        answer(&app, tampered).await.status(),
        StatusCode::UNAUTHORIZED
    );
}
