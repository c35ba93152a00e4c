//! The reference client (`shop-client`) against the real shop: an order placed and followed to
//! its end, a watch that outlives a restarted order-api, retries that never place a second
//! order, and a deadline that surfaces as `Error::Timeout`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use shop_client::{
    CancellationReason, Client, Error, IdempotencyKey, NewOrder, OrderId, OrderStatus,
    PlaceOptions, Placed, RetryPolicy, Transition, WatchMode, WatchOptions,
};

use saga_tests::{DEADLINE, ServiceKind, Stack};

fn new_order(payment_method: &str) -> Result<NewOrder> {
    Ok(NewOrder::new("usr_client".parse()?, payment_method.parse()?).line("WIDGET-42".parse()?, 1))
}

fn client(stack: &Stack) -> Result<Client> {
    Ok(Client::new(stack.order_api.base_url())?)
}

#[tokio::test]
async fn orders_are_followed_to_their_end_and_refusals_are_typed() -> Result<()> {
    let stack = Stack::start().await?;
    let client = client(&stack)?;

    let placed = client
        .place_order(&new_order("pm_visa_4242")?, PlaceOptions::default())
        .await?;
    let Placed::Accepted { order_id, .. } = placed else {
        bail!("without Prefer: wait the answer is 202, got {placed:?}");
    };
    let order = client.wait_for_outcome(order_id, DEADLINE).await?;
    assert_eq!(order.status, OrderStatus::Confirmed, "{order:?}");
    assert_eq!(order.total.amount_minor, 2499);

    // The finished saga watched again, by its stream and by polling: the same history.
    let history: Vec<(u64, OrderStatus)> =
        order.history.iter().map(|h| (h.seq, h.status)).collect();
    for mode in [WatchMode::Stream, WatchMode::Poll] {
        let options = WatchOptions {
            mode,
            ..WatchOptions::default()
        };
        let watched: Vec<Transition> = tokio::time::timeout(
            DEADLINE,
            client.watch_with(order_id, options).collect::<Vec<_>>(),
        )
        .await?
        .into_iter()
        .collect::<Result<_, _>>()?;
        let watched: Vec<(u64, OrderStatus)> = watched.iter().map(|t| (t.seq, t.to)).collect();
        assert_eq!(watched, history, "{mode:?}");
    }

    // Asking the POST to wait gives the final order, or a 202 on a machine too slow for it:
    // either way the same outcome.
    let waited = client
        .place_order(
            &new_order("pm_card_declined")?,
            PlaceOptions::default().wait(Duration::from_secs(10)),
        )
        .await?;
    let order = match waited {
        Placed::Finished(order) => *order,
        Placed::Accepted { order_id, .. } => client.wait_for_outcome(order_id, DEADLINE).await?,
    };
    assert_eq!(order.status, OrderStatus::Cancelled, "{order:?}");
    assert_eq!(
        order.cancellation_reason,
        Some(CancellationReason::PaymentDeclined)
    );

    // Refusals: an invalid order names its field; an unknown order is not found, by every
    // route, the watch included.
    let invalid = new_order("pm_visa_4242")?.line("GADGET-7".parse()?, 0);
    match client.place_order(&invalid, PlaceOptions::default()).await {
        Err(Error::Validation { fields, .. }) => {
            let names: Vec<&str> = fields.iter().map(|f| f.field.as_str()).collect();
            assert_eq!(names, ["items[1].quantity"]);
        }
        other => bail!("expected a validation error, got {other:?}"),
    }
    let unknown = OrderId::new();
    let not_found = client.get_order(unknown).await;
    ensure!(
        matches!(not_found, Err(Error::NotFound { .. })),
        "{not_found:?}"
    );
    let watched: Vec<_> = tokio::time::timeout(DEADLINE, client.watch(unknown).collect()).await?;
    ensure!(
        matches!(watched.as_slice(), [Err(Error::NotFound { .. })]),
        "{watched:?}"
    );
    Ok(())
}

#[tokio::test]
async fn a_watch_survives_a_restarted_order_api_and_reports_each_transition_once() -> Result<()> {
    // The charge takes 5 s: order-api goes down and comes back while the saga runs.
    let mut stack = Stack::start_with_env(&[("PSP_SIM_SLOW_MS", "5000")]).await?;
    let client = client(&stack)?;
    let order_id = client
        .place_order(&new_order("pm_slow_3s")?, PlaceOptions::default())
        .await?
        .order_id();

    let (seen, mut seen_rx) = tokio::sync::mpsc::unbounded_channel();
    let mut watch = client.watch(order_id);
    let watching = tokio::spawn(async move {
        let mut transitions: Vec<Transition> = Vec::new();
        while let Some(transition) = watch.next().await {
            let transition = transition?;
            let _ = seen.send(transition.to);
            transitions.push(transition);
        }
        Ok::<_, Error>(transitions)
    });
    tokio::time::timeout(DEADLINE, async {
        while let Some(status) = seen_rx.recv().await {
            if status == OrderStatus::PaymentProcessing {
                return Ok(());
            }
        }
        bail!("the watch ended before payment_processing")
    })
    .await
    .context("no payment_processing in time")??;

    stack.order_api.kill()?;
    stack.restart(ServiceKind::OrderApi).await?;

    let transitions = tokio::time::timeout(DEADLINE * 2, watching)
        .await
        .context("the watch did not end in time")???;
    let order = client.get_order(order_id).await?;
    assert_eq!(order.status, OrderStatus::Confirmed, "{order:?}");
    // Exactly the order's history, in order: nothing lost, nothing repeated.
    let reported: Vec<(u64, OrderStatus)> = transitions.iter().map(|t| (t.seq, t.to)).collect();
    let history: Vec<(u64, OrderStatus)> =
        order.history.iter().map(|h| (h.seq, h.status)).collect();
    assert_eq!(reported, history);
    assert_eq!(transitions.iter().filter(|t| t.is_terminal()).count(), 1);
    let froms: Vec<Option<OrderStatus>> = transitions.iter().map(|t| t.from).collect();
    let mut expected_froms = vec![None];
    expected_froms.extend(transitions.iter().map(|t| Some(t.to)));
    expected_froms.pop();
    assert_eq!(froms, expected_froms);
    Ok(())
}

#[tokio::test]
async fn lost_and_refused_answers_are_retried_as_one_order_and_a_blocked_stream_is_polled()
-> Result<()> {
    let stack =
        Stack::start_with_env(&[("RATE_LIMIT_PER_S", "0.5"), ("RATE_LIMIT_BURST", "5")]).await?;
    let proxy = FlakyProxy::start(stack.order_api.base_url()).await?;
    let through_proxy = Client::builder(&proxy.url)
        .retry(RetryPolicy {
            max_attempts: 5,
            base_delay: Duration::from_millis(50),
            max_delay: Duration::from_secs(2),
        })
        .build()?;

    // The first POST reaches order-api but its answer is lost (503); the second is refused
    // (429); the third gets through: the order the first one placed.
    let placed = through_proxy
        .place_order(&new_order("pm_visa_4242")?, PlaceOptions::default())
        .await?;
    let Placed::Accepted {
        order_id, replayed, ..
    } = placed
    else {
        bail!("expected 202, got {placed:?}");
    };
    assert!(replayed, "the third attempt should be answered as a replay");
    let keys = proxy.keys();
    assert_eq!(keys.len(), 3, "attempts: {keys:?}");
    assert!(keys.iter().all(|key| *key == keys[0]), "{keys:?}");
    assert_eq!(stack.rows_in(ServiceKind::OrderApi, "orders")?, 1);
    assert_eq!(
        proxy.first_order_id().as_deref(),
        Some(&*order_id.to_string())
    );

    // The proxy does not route event streams: the watch polls instead, and still reports the
    // order's history exactly.
    let transitions: Vec<Transition> =
        tokio::time::timeout(DEADLINE, through_proxy.watch(order_id).collect::<Vec<_>>())
            .await?
            .into_iter()
            .collect::<Result<_, _>>()?;
    assert!(proxy.streams_refused() >= 1);
    let order = through_proxy.get_order(order_id).await?;
    assert_eq!(order.status, OrderStatus::Confirmed, "{order:?}");
    let watched: Vec<(u64, OrderStatus)> = transitions.iter().map(|t| (t.seq, t.to)).collect();
    let history: Vec<(u64, OrderStatus)> =
        order.history.iter().map(|h| (h.seq, h.status)).collect();
    assert_eq!(watched, history);

    // order-api's own rate limit: without retries the 429 surfaces, with its Retry-After …
    let direct = client(&stack)?;
    let impatient = Client::builder(stack.order_api.base_url())
        .retry(RetryPolicy::never())
        .build()?;
    let mut refused = None;
    for _ in 0..20 {
        match impatient
            .place_order(&new_order("pm_visa_4242")?, PlaceOptions::default())
            .await
        {
            Ok(_) => continue,
            Err(error) => {
                refused = Some(error);
                break;
            }
        }
    }
    let refused = refused.context("the rate limit never refused")?;
    ensure!(
        matches!(
            refused,
            Error::RateLimited {
                retry_after: Some(_),
                ..
            }
        ),
        "{refused:?}"
    );
    // … and with them the same key gets through after waiting, as one order.
    let before = stack.rows_in(ServiceKind::OrderApi, "orders")?;
    let key = IdempotencyKey::generate();
    let placed = direct
        .place_order(
            &new_order("pm_visa_4242")?,
            PlaceOptions::default().idempotency_key(key.clone()),
        )
        .await?;
    assert_eq!(stack.rows_in(ServiceKind::OrderApi, "orders")?, before + 1);
    let again = direct
        .place_order(
            &new_order("pm_visa_4242")?,
            PlaceOptions::default().idempotency_key(key),
        )
        .await?;
    assert_eq!(again.order_id(), placed.order_id());
    assert_eq!(stack.rows_in(ServiceKind::OrderApi, "orders")?, before + 1);
    Ok(())
}

#[tokio::test]
async fn a_saga_that_outlasts_the_wait_is_a_timeout() -> Result<()> {
    // The provider holds the charge for a minute; the saga's deadline is further still.
    let stack = Stack::start_with_env(&[("PSP_SIM_SLOW_MS", "60000")]).await?;
    let client = client(&stack)?;
    let order_id = client
        .place_order(&new_order("pm_slow_3s")?, PlaceOptions::default())
        .await?
        .order_id();

    let waited = Duration::from_secs(2);
    match client.wait_for_outcome(order_id, waited).await {
        Err(Error::Timeout { waited: reported }) => assert_eq!(reported, waited),
        other => bail!("expected a timeout, got {other:?}"),
    }
    let order = client.get_order(order_id).await?;
    assert!(!order.is_terminal(), "{order:?}");
    Ok(())
}

/// An HTTP proxy in front of order-api that loses the answer to the first `POST` (forwarding
/// it, then answering `503`), refuses the second with `429`, answers event streams `404` (a
/// gateway that does not route them), and forwards everything else.
struct FlakyProxy {
    /// Where clients send their requests.
    url: String,
    /// What the proxy saw, for the test to check.
    state: Arc<ProxyState>,
    /// The server task; it stops with the test's runtime.
    _server: tokio::task::JoinHandle<()>,
}

struct ProxyState {
    /// order-api's base URL.
    upstream: String,
    /// Forwards requests to it.
    http: reqwest::Client,
    /// The `Idempotency-Key` of every `POST`, in arrival order.
    keys: Mutex<Vec<String>>,
    /// The order id in the answer the client never saw.
    lost: Mutex<Option<String>>,
    /// Requests for an event stream, all answered `404`.
    streams_refused: AtomicUsize,
}

impl FlakyProxy {
    async fn start(upstream: String) -> Result<Self> {
        let state = Arc::new(ProxyState {
            upstream,
            http: reqwest::Client::new(),
            keys: Mutex::default(),
            lost: Mutex::default(),
            streams_refused: AtomicUsize::default(),
        });
        let app = axum::Router::new()
            .fallback(forward)
            .with_state(Arc::clone(&state));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self {
            url,
            state,
            _server: server,
        })
    }

    fn keys(&self) -> Vec<String> {
        self.state
            .keys
            .lock()
            .map(|keys| keys.clone())
            .unwrap_or_default()
    }

    fn streams_refused(&self) -> usize {
        self.state.streams_refused.load(Ordering::SeqCst)
    }

    fn first_order_id(&self) -> Option<String> {
        self.state.lost.lock().ok().and_then(|lost| lost.clone())
    }
}

async fn forward(
    State(state): State<Arc<ProxyState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if uri.path().ends_with("/events") {
        state.streams_refused.fetch_add(1, Ordering::SeqCst);
        return (StatusCode::NOT_FOUND, "no route").into_response();
    }
    let attempt = if method == Method::POST {
        let key = headers
            .get("idempotency-key")
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let mut keys = state
            .keys
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        keys.push(key);
        keys.len()
    } else {
        0
    };
    if attempt == 2 {
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [("retry-after", "1")],
            "slow down",
        )
            .into_response();
    }
    let mut request = state
        .http
        .request(method, format!("{}{uri}", state.upstream))
        .body(body);
    for (name, value) in &headers {
        if name != "host" && name != "content-length" {
            request = request.header(name, value);
        }
    }
    let answer = match request.send().await {
        Ok(answer) => answer,
        Err(error) => return (StatusCode::BAD_GATEWAY, error.to_string()).into_response(),
    };
    let status = answer.status();
    let answer_headers = answer.headers().clone();
    let bytes = answer.bytes().await.unwrap_or_default();
    if attempt == 1 {
        let order_id = serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|body| body["order_id"].as_str().map(str::to_owned));
        *state
            .lost
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = order_id;
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [("retry-after", "0")],
            "the answer was lost",
        )
            .into_response();
    }
    let mut response = Response::new(Body::from(bytes));
    *response.status_mut() = status;
    for (name, value) in &answer_headers {
        if name != "content-length" && name != "transfer-encoding" {
            response.headers_mut().insert(name, value.clone());
        }
    }
    response
}
