//! Every error answer of every service is an RFC 9457 problem document
//! (`application/problem+json` with `type`, `title`, `status` and `detail`), whoever makes it:
//! a handler, axum's router (unknown route, other method) and extractors (query, path, body), a
//! body limit or a timeout. Malformed requests are walked against each running service.

use anyhow::{Context, Result};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use saga_tests::Stack;

/// One malformed request and what its answer must be.
struct Case {
    method: Method,
    path: String,
    headers: Vec<(&'static str, String)>,
    body: Option<(&'static str, String)>,
    status: StatusCode,
    /// A word the problem's `detail` must contain.
    says: &'static str,
}

impl Case {
    fn new(
        method: Method,
        path: impl Into<String>,
        status: StatusCode,
        says: &'static str,
    ) -> Self {
        Self {
            method,
            path: path.into(),
            headers: Vec::new(),
            body: None,
            status,
            says,
        }
    }

    fn body(mut self, content_type: &'static str, body: String) -> Self {
        self.body = Some((content_type, body));
        self
    }

    fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
}

/// What every service answers the same way.
fn common_cases() -> Vec<Case> {
    vec![
        Case::new(
            Method::GET,
            "/no/such/route",
            StatusCode::NOT_FOUND,
            "route",
        ),
        Case::new(
            Method::DELETE,
            "/healthz",
            StatusCode::METHOD_NOT_ALLOWED,
            "DELETE",
        ),
        Case::new(
            Method::POST,
            "/metrics",
            StatusCode::METHOD_NOT_ALLOWED,
            "POST",
        ),
    ]
}

async fn walk(http: &reqwest::Client, service: &str, base: &str, cases: Vec<Case>) -> Result<()> {
    for case in cases {
        let what = format!("{service}: {} {}", case.method, case.path);
        let mut request = http.request(case.method.clone(), format!("{base}{}", case.path));
        for (name, value) in &case.headers {
            request = request.header(*name, value);
        }
        if let Some((content_type, body)) = case.body {
            request = request.header("content-type", content_type).body(body);
        }
        let response = request.send().await.with_context(|| what.clone())?;
        let status = response.status();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        if status == StatusCode::METHOD_NOT_ALLOWED {
            assert!(
                response.headers().contains_key("allow"),
                "{what}: no Allow header"
            );
        }
        let text = response.text().await?;
        assert_eq!(status, case.status, "{what}: {text}");
        assert_eq!(content_type, "application/problem+json", "{what}: {text}");
        let problem: Value =
            serde_json::from_str(&text).with_context(|| format!("{what}: {text}"))?;
        assert_eq!(problem["status"], status.as_u16(), "{what}: {problem}");
        for member in ["type", "title", "detail"] {
            assert!(
                problem[member].is_string(),
                "{what}: no {member} in {problem}"
            );
        }
        let detail = problem["detail"].as_str().unwrap_or_default();
        assert!(
            detail.contains(case.says),
            "{what}: {detail:?} lacks {:?}",
            case.says
        );
    }
    Ok(())
}

#[tokio::test]
async fn every_service_answers_malformed_requests_with_problems() -> Result<()> {
    let stack = Stack::start().await?;
    let http = reqwest::Client::new();
    let order_id = "ord_0123456789abcdef0123456789abcdef";
    let long_url = format!("https://hooks.example.com/{}", "a".repeat(2048));
    let order_with_callback = json!({
        "user_id": "usr_edge", "items": [{"sku": "WIDGET-42", "quantity": 1}],
        "payment_method": "pm_visa_4242", "callback_url": long_url,
    });
    let mut order_api = common_cases();
    order_api.extend([
        Case::new(
            Method::GET,
            format!("/api/orders/{order_id}?wait=-1"),
            StatusCode::BAD_REQUEST,
            "wait",
        ),
        Case::new(
            Method::GET,
            format!("/api/orders/{order_id}?wait=soon"),
            StatusCode::BAD_REQUEST,
            "wait",
        ),
        Case::new(
            Method::DELETE,
            format!("/api/orders/{order_id}"),
            StatusCode::METHOD_NOT_ALLOWED,
            "DELETE",
        ),
        Case::new(
            Method::DELETE,
            "/api/orders",
            StatusCode::METHOD_NOT_ALLOWED,
            "DELETE",
        ),
        Case::new(
            Method::GET,
            "/api/orders?status=done",
            StatusCode::BAD_REQUEST,
            "status",
        ),
        Case::new(
            Method::GET,
            "/api/orders?limit=0",
            StatusCode::BAD_REQUEST,
            "limit",
        ),
        Case::new(
            Method::GET,
            "/api/orders?cursor=not-a-cursor",
            StatusCode::BAD_REQUEST,
            "cursor",
        ),
        Case::new(
            Method::POST,
            "/api/orders",
            StatusCode::PAYLOAD_TOO_LARGE,
            "limit",
        )
        .body(
            "application/json",
            format!("{{\"pad\": \"{}\"}}", "x".repeat(32 * 1024)),
        ),
        Case::new(
            Method::POST,
            "/api/orders",
            StatusCode::UNPROCESSABLE_ENTITY,
            "callback_url",
        )
        .body("application/json", order_with_callback.to_string()),
    ]);
    walk(&http, "order-api", &stack.order_api.base_url(), order_api).await?;

    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs()
        .to_string();
    let mut payment = common_cases();
    payment.extend([
        Case::new(
            Method::GET,
            "/webhooks/payments",
            StatusCode::METHOD_NOT_ALLOWED,
            "GET",
        ),
        // Headers that pass the first checks, then a body over the limit.
        Case::new(
            Method::POST,
            "/webhooks/payments",
            StatusCode::PAYLOAD_TOO_LARGE,
            "bytes",
        )
        .header("webhook-id", "msg_edge")
        .header("webhook-timestamp", now)
        .header("webhook-signature", "v1,AAAA")
        .body("application/json", "x".repeat(128 * 1024)),
    ]);
    walk(&http, "payment-svc", &stack.payment.base_url(), payment).await?;

    walk(
        &http,
        "inventory-svc",
        &stack.inventory.base_url(),
        common_cases(),
    )
    .await?;

    let mut psp = common_cases();
    psp.extend([
        Case::new(
            Method::GET,
            "/v1/charges",
            StatusCode::METHOD_NOT_ALLOWED,
            "GET",
        ),
        Case::new(Method::POST, "/v1/charges", StatusCode::BAD_REQUEST, "EOF")
            .header("idempotency-key", "edge-1")
            .body("application/json", "{".to_owned()),
        Case::new(
            Method::POST,
            "/v1/charges",
            StatusCode::PAYLOAD_TOO_LARGE,
            "limit",
        )
        .header("idempotency-key", "edge-2")
        .body(
            "application/json",
            format!("{{\"pad\": \"{}\"}}", "x".repeat(32 * 1024)),
        ),
    ]);
    walk(&http, "psp-sim", &stack.psp.base_url(), psp).await?;
    Ok(())
}
