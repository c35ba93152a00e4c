//! A client's receiver built on shop-client's `VerifiedCallback` takes order-api's real
//! callback: its handler sees the order's confirmation, typed. The same request sent again is
//! acknowledged (`200`) without reaching the handler, and a forged one is refused (`401`), as
//! `docs/callbacks-receiver.md` says.

use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{FromRef, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use shop_client::callback::{CallbackVerifier, OrderCallback, VerifiedCallback};

use saga_tests::{Stack, eventually, webhook_signature as signature};

use crate::callbacks::wait_log;

/// What the receiver's handler was given, in order.
type Handled = Arc<Mutex<Vec<VerifiedCallback>>>;

/// Every request that reached the receiver, as sent: its headers and body.
type Requests = Arc<Mutex<Vec<(HeaderMap, Bytes)>>>;

/// The receiver's state: the verifier the extractor takes, and what its handler saw.
#[derive(Clone)]
struct Receiver {
    verifier: CallbackVerifier,
    handled: Handled,
}

impl FromRef<Receiver> for CallbackVerifier {
    fn from_ref(receiver: &Receiver) -> Self {
        receiver.verifier.clone()
    }
}

/// The receiver's handler: it runs only for callbacks that passed every check.
async fn handle(State(receiver): State<Receiver>, callback: VerifiedCallback) -> StatusCode {
    lock(&receiver.handled).push(callback);
    StatusCode::NO_CONTENT
}

/// Keeps a copy of each request, so that the test can send one again byte for byte.
async fn keep_copy(State(requests): State<Requests>, request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, 64 * 1024).await else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    lock(&requests).push((parts.headers.clone(), body.clone()));
    next.run(Request::from_parts(parts, Body::from(body))).await
}

fn lock<T>(list: &Mutex<Vec<T>>) -> std::sync::MutexGuard<'_, Vec<T>> {
    list.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Starts the receiver on a free port; returns its callback URL and what it saw.
async fn start_receiver(secret: &str) -> Result<(String, Handled, Requests)> {
    let handled = Handled::default();
    let requests = Requests::default();
    let receiver = Receiver {
        verifier: CallbackVerifier::new(secret)?,
        handled: Arc::clone(&handled),
    };
    let app = Router::new()
        .route("/callbacks", post(handle))
        .with_state(receiver)
        .layer(middleware::from_fn_with_state(
            Arc::clone(&requests),
            keep_copy,
        ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/callbacks", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((url, handled, requests))
}

#[tokio::test]
async fn a_receiver_using_verified_callback_takes_a_callback_once_and_refuses_forgeries()
-> Result<()> {
    let secret = format!("whsec_{}", STANDARD.encode(b"client-callback-secret-0001"));
    let stack = Stack::start_with_env(&[
        ("CALLBACK_SECRETS", &format!("dev:{secret}")),
        ("CALLBACK_ALLOW_PRIVATE", "true"),
    ])
    .await?;
    let (url, handled, requests) = start_receiver(&secret).await?;

    let placed: Value = stack
        .post_order(&json!({
            "user_id": "usr_receiver", "items": [{"sku": "WIDGET-42", "quantity": 1}],
            "payment_method": "pm_visa_4242", "callback_url": url,
        }))
        .await?
        .json()
        .await?;
    let order_id = placed["order_id"].as_str().context("order id")?.to_owned();

    // order-api's delivery reaches the handler, typed.
    let callback = eventually(|| async {
        lock(&handled)
            .first()
            .cloned()
            .ok_or_else(|| "no callback handled yet".to_owned())
    })
    .await?;
    match callback.callback {
        OrderCallback::Confirmed { order_id: got, .. } => assert_eq!(got.to_string(), order_id),
        other => panic!("expected the order confirmed, got {other:?}"),
    }
    // The 2xx ended the delivery: order-api sends it no more.
    wait_log(&stack, &order_id, "delivered").await?;

    let (headers, body) = lock(&requests).first().cloned().context("the request")?;
    let header = |name: &str| -> Result<String> {
        Ok(headers
            .get(name)
            .with_context(|| format!("no {name} header"))?
            .to_str()?
            .to_owned())
    };
    let (id, timestamp) = (header("webhook-id")?, header("webhook-timestamp")?);
    assert_eq!(callback.webhook_id, id);
    let send = |id: &str, timestamp: &str, signature: &str| {
        stack
            .http
            .post(&url)
            .header("content-type", "application/json")
            .header("webhook-id", id)
            .header("webhook-timestamp", timestamp)
            .header("webhook-signature", signature)
            .body(body.clone())
            .send()
    };

    // The same request again: acknowledged, so a sender would stop, but not handled.
    let replayed = send(&id, &timestamp, &header("webhook-signature")?).await?;
    assert_eq!(replayed.status(), 200, "{}", replayed.text().await?);

    // Signed with another key, under a fresh id: refused with a problem document.
    let text = std::str::from_utf8(&body)?;
    let forged_signature = signature(
        b"not-the-client-secret-00000",
        "msg_forged",
        &timestamp,
        text,
    )?;
    let forged = send("msg_forged", &timestamp, &forged_signature).await?;
    assert_eq!(forged.status(), 401);
    assert_eq!(
        forged.headers()["content-type"],
        "application/problem+json",
        "a refusal says why"
    );
    let problem: Value = forged.json().await?;
    assert_eq!(problem["status"], 401);

    assert_eq!(
        lock(&handled).len(),
        1,
        "only order-api's delivery was handled"
    );
    assert_eq!(lock(&requests).len(), 3);
    Ok(())
}
