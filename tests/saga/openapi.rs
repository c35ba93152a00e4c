//! `schemas/openapi.yaml` describes the running order API and `schemas/psp.openapi.yaml` the
//! payment provider with its webhooks: real answers of the main routes are validated against
//! the specs' schemas, and every status code seen is one the spec lists.

use std::collections::HashMap;

use anyhow::{Context, Result};
use jsonschema::{Registry, Validator};
use reqwest::StatusCode;
use serde_json::{Value, json};

use serde::Deserialize;

use saga_tests::{
    DEADLINE, Order, Stack, Status, eventually, receiver, repo_root, secret_key, webhook_signature,
};

const SPEC_URI: &str = "urn:shop:openapi";

struct Spec {
    doc: Value,
    registry: Registry<'static>,
}

impl Spec {
    /// Loads `schemas/<file>`.
    fn load(file: &str) -> Result<Self> {
        let text = std::fs::read_to_string(repo_root().join("schemas").join(file))?;
        let doc: Value =
            serde_norway::from_str(&text).with_context(|| format!("{file} is not valid YAML"))?;
        assert_eq!(doc["openapi"], "3.1.0");
        let registry = Registry::new().add(SPEC_URI, doc.clone())?.prepare()?;
        Ok(Self { doc, registry })
    }

    /// A validator for `#/components/schemas/<name>`.
    fn schema(&self, name: &str) -> Result<Validator> {
        assert!(
            self.doc["components"]["schemas"].get(name).is_some(),
            "no schema {name}"
        );
        Ok(jsonschema::options()
            .with_registry(&self.registry)
            .build(&json!({"$ref": format!("{SPEC_URI}#/components/schemas/{name}")}))?)
    }

    /// Fails unless the operation lists `status` among its responses.
    fn assert_status(&self, method: &str, path: &str, status: StatusCode) {
        let responses = &self.doc["paths"][path][method]["responses"];
        assert!(
            responses.get(status.as_str()).is_some(),
            "{method} {path} answered {status}, which the spec does not list"
        );
    }

    /// Fails unless the operation's `status` answer lists header `name` and `value` matches
    /// its schema.
    fn assert_header(
        &self,
        method: &str,
        path: &str,
        status: StatusCode,
        name: &str,
        value: &str,
    ) -> Result<()> {
        let schema = &self.doc["paths"][path][method]["responses"][status.as_str()]["headers"]
            [name]["schema"];
        assert!(
            schema.is_object(),
            "{method} {path} answered {status} with a {name} header the spec does not list"
        );
        let validator = jsonschema::options()
            .with_registry(&self.registry)
            .build(schema)?;
        assert_valid(&validator, name, &json!(value));
        Ok(())
    }

    /// Fails unless the receiver of webhook `name` may answer `status`.
    fn assert_webhook_status(&self, name: &str, status: StatusCode) {
        let responses = &self.doc["webhooks"][name]["post"]["responses"];
        assert!(
            responses.get(status.as_str()).is_some(),
            "the {name} webhook was answered {status}, which the spec does not list"
        );
    }
}

/// Fails the test with every schema error of `value`, named `what`.
pub(crate) fn assert_valid(validator: &Validator, what: &str, value: &Value) {
    let errors: Vec<String> = validator
        .iter_errors(value)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{what} does not match the spec: {errors:#?}\n{value:#}"
    );
}

#[tokio::test]
async fn the_running_api_matches_its_openapi_description() -> Result<()> {
    let spec = Spec::load("openapi.yaml")?;
    let stack = Stack::start().await?;
    let post = |body: Value, prefer: Option<&str>| {
        let mut request = stack.http.post(stack.url("/api/orders")).json(&body);
        if let Some(prefer) = prefer {
            request = request.header("prefer", prefer);
        }
        request.send()
    };
    let good = json!({"user_id": "usr_spec", "items": [{"sku": "WIDGET-42", "quantity": 2}], "payment_method": "pm_visa_4242"});

    // POST: 202 Accepted, 201 with the final order, problems.
    let accepted = post(good.clone(), None).await?;
    spec.assert_status("post", "/api/orders", accepted.status());
    let accepted: Value = accepted.json().await?;
    assert_valid(&spec.schema("Accepted")?, "202 body", &accepted);
    let created = post(good.clone(), Some("wait=5")).await?;
    spec.assert_status("post", "/api/orders", created.status());
    assert_valid(&spec.schema("Order")?, "201 body", &created.json().await?);
    let problems: HashMap<&str, reqwest::Response> = HashMap::from([
        ("malformed", stack.http.post(stack.url("/api/orders")).header("content-type", "application/json").body("{").send().await?),
        ("unknown sku", post(json!({"user_id": "u", "items": [{"sku": "NOPE", "quantity": 1}], "payment_method": "pm_visa_4242"}), None).await?),
        ("not json", stack.http.post(stack.url("/api/orders")).body("x").send().await?),
    ]);
    for (what, response) in problems {
        spec.assert_status("post", "/api/orders", response.status());
        assert_valid(&spec.schema("Problem")?, what, &response.json().await?);
    }

    // GET, long poll, timeline, events, page.
    let id = accepted["order_id"]
        .as_str()
        .context("order id")?
        .to_owned();
    let order = stack
        .http
        .get(stack.url(&format!("/api/orders/{id}?wait=10")))
        .send()
        .await?;
    spec.assert_status("get", "/api/orders/{order_id}", order.status());
    let order: Value = order.json().await?;
    assert_valid(&spec.schema("Order")?, "order", &order);
    let order = Order::deserialize(&order)?;
    assert_eq!(order.status, Status::Confirmed);
    // The list: the two orders placed above, one a page, then a cursor that is not one.
    let list = |query: &str| {
        stack
            .http
            .get(stack.url(&format!("/api/orders?{query}")))
            .send()
    };
    let first = list("limit=1").await?;
    spec.assert_status("get", "/api/orders", first.status());
    let link = first
        .headers()
        .get("link")
        .context("the first page links to the next")?
        .to_str()?
        .to_owned();
    spec.assert_header("get", "/api/orders", first.status(), "Link", &link)?;
    let first: Value = first.json().await?;
    assert_valid(&spec.schema("OrderPage")?, "first page", &first);
    let cursor = first["next_cursor"].as_str().context("a next cursor")?;
    let last = list(&format!("limit=1&cursor={cursor}")).await?;
    spec.assert_status("get", "/api/orders", last.status());
    assert!(
        last.headers().get("link").is_none(),
        "the last page links on"
    );
    let last: Value = last.json().await?;
    assert_valid(&spec.schema("OrderPage")?, "last page", &last);
    assert_eq!(last["next_cursor"], Value::Null, "{last}");
    let bad_cursor = list("cursor=bm90IGEga2V5").await?;
    spec.assert_status("get", "/api/orders", bad_cursor.status());
    assert_valid(
        &spec.schema("Problem")?,
        "bad cursor",
        &bad_cursor.json().await?,
    );

    let missing = stack
        .http
        .get(stack.url("/api/orders/ord_00000000000000000000000000000000"))
        .send()
        .await?;
    spec.assert_status("get", "/api/orders/{order_id}", missing.status());
    assert_valid(&spec.schema("Problem")?, "404", &missing.json().await?);
    let timeline = stack
        .http
        .get(stack.url(&format!("/api/orders/{id}/timeline")))
        .send()
        .await?;
    spec.assert_status("get", "/api/orders/{order_id}/timeline", timeline.status());
    assert_valid(
        &spec.schema("Timeline")?,
        "timeline",
        &timeline.json().await?,
    );
    let (events, _) = saga_tests::read_sse(
        &stack.http,
        &stack.url(&format!("/api/orders/{id}/events")),
        DEADLINE,
    )
    .await?;
    assert!(!events.is_empty());
    for event in &events {
        assert_eq!(event.event, "status_update");
        assert_valid(
            &spec.schema("StatusUpdate")?,
            "SSE data",
            &serde_json::from_str(&event.data)?,
        );
    }
    let deliveries = stack
        .http
        .get(stack.url(&format!("/api/orders/{id}/deliveries")))
        .send()
        .await?;
    spec.assert_status(
        "get",
        "/api/orders/{order_id}/deliveries",
        deliveries.status(),
    );
    let deliveries: Value = deliveries.json().await?;
    assert!(deliveries.is_array());
    for delivery in deliveries.as_array().into_iter().flatten() {
        assert_valid(&spec.schema("Delivery")?, "delivery", delivery);
    }
    let page = stack
        .http
        .get(stack.url(&format!("/orders/{id}")))
        .send()
        .await?;
    spec.assert_status("get", "/orders/{order_id}", page.status());

    // Operations endpoints.
    let ready = stack.http.get(stack.url("/readyz")).send().await?;
    spec.assert_status("get", "/readyz", ready.status());
    assert_valid(&spec.schema("Readiness")?, "readyz", &ready.json().await?);
    for path in ["/healthz", "/metrics"] {
        let response = stack.http.get(stack.url(path)).send().await?;
        spec.assert_status("get", path, response.status());
    }
    Ok(())
}

#[tokio::test]
async fn the_provider_and_its_webhooks_match_their_openapi_description() -> Result<()> {
    let spec = Spec::load("psp.openapi.yaml")?;
    let stack = Stack::start().await?;
    let (hooks, seen) = receiver().await?;
    let psp = stack.psp.base_url();
    let post = |path: &str, key: Option<&str>, body: Value| {
        let mut request = stack.http.post(format!("{psp}{path}")).json(&body);
        if let Some(key) = key {
            request = request.header("idempotency-key", key);
        }
        request.send()
    };
    let charge = |method: &str| {
        json!({"amount_minor": 990, "currency": "EUR", "payment_method": method,
               "reference": "ref-spec", "webhook_url": format!("{hooks}/ok")})
    };
    let check = async |path: &str, response: reqwest::Response, schema: &str| -> Result<Value> {
        spec.assert_status("post", path, response.status());
        let body: Value = response.json().await?;
        assert_valid(&spec.schema(schema)?, path, &body);
        Ok(body)
    };

    let created = check(
        "/v1/charges",
        post("/v1/charges", Some("k1"), charge("pm_visa_4242")).await?,
        "Charge",
    )
    .await?;
    check(
        "/v1/charges",
        post("/v1/charges", Some("k1"), charge("pm_visa_4242")).await?,
        "Charge",
    )
    .await?;
    let declined = check(
        "/v1/charges",
        post("/v1/charges", Some("k2"), charge("pm_card_declined")).await?,
        "Charge",
    )
    .await?;
    for (key, body) in [
        (Some("k1"), charge("pm_card_declined")),
        (None, charge("pm_visa_4242")),
        (Some("k3"), json!({"amount_minor": 0})),
        (Some("k4"), charge("pm_flaky")),
    ] {
        check(
            "/v1/charges",
            post("/v1/charges", key, body).await?,
            "Problem",
        )
        .await?;
    }
    // A body over the provider's limit is refused while it is read.
    let oversized = post(
        "/v1/charges",
        Some("k5"),
        json!({"reference": "x".repeat(17 * 1024)}),
    )
    .await?;
    assert_eq!(oversized.status(), reqwest::StatusCode::PAYLOAD_TOO_LARGE);
    check("/v1/charges", oversized, "Problem").await?;
    let refund = |charge_id: &Value, key: &str| {
        post(
            "/v1/refunds",
            Some(key),
            json!({"charge_id": charge_id, "amount_minor": 990, "reference": "ref-spec", "webhook_url": format!("{hooks}/ok")}),
        )
    };
    check("/v1/refunds", refund(&created["id"], "r1").await?, "Refund").await?;
    // Wait for the decline to be decided, then its refund is refused.
    eventually(|| async {
        let charge: Value = async {
            post("/v1/charges", Some("k2"), charge("pm_card_declined"))
                .await?
                .json()
                .await
        }
        .await
        .map_err(|error| error.to_string())?;
        match charge["status"].as_str() {
            Some("pending") => Err(format!("the decline was never decided: {charge}")),
            _ => Ok(()),
        }
    })
    .await?;
    check(
        "/v1/refunds",
        refund(&declined["id"], "r2").await?,
        "Problem",
    )
    .await?;
    let latency = stack
        .http
        .put(format!("{psp}/v1/simulator/latency"))
        .json(&json!({"charge_latency_ms": 0}))
        .send()
        .await?;
    spec.assert_status("put", "/v1/simulator/latency", latency.status());
    assert_valid(&spec.schema("Latency")?, "latency", &latency.json().await?);

    // The webhooks the provider sent match the spec.
    let bodies = eventually(|| {
        let bodies: Vec<String> = seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(.., body, _)| body.clone())
            .collect();
        std::future::ready(if bodies.len() >= 3 {
            Ok(bodies)
        } else {
            Err(format!("webhooks missing: {bodies:?}"))
        })
    })
    .await?;
    for body in &bodies {
        assert_valid(
            &spec.schema("WebhookEvent")?,
            "webhook",
            &serde_json::from_str(body)?,
        );
    }

    // payment-svc's answers to webhooks are the ones the spec lets a receiver give.
    let key = secret_key(&stack.psp_secret)?;
    let now = chrono::Utc::now().timestamp().to_string();
    let send = |id: &str, body: &str, signature: String| {
        stack
            .http
            .post(format!("{}/webhooks/payments", stack.payment.base_url()))
            .header("content-type", "application/json")
            .header("webhook-id", id)
            .header("webhook-timestamp", &now)
            .header("webhook-signature", signature)
            .body(body.to_owned())
            .send()
    };
    let event =
        json!({"id": "evt_spec", "type": "charge.succeeded", "created_at": "2026-01-01T00:00:00Z",
        "data": {"object": "charge", "id": "ch_spec", "status": "succeeded", "amount_minor": 1,
                 "currency": "EUR", "reference": "ord_0190aaaa000070008000000000000000"}})
        .to_string();
    let answers = [
        send(
            "evt_spec",
            &event,
            webhook_signature(&key, "evt_spec", &now, &event)?,
        )
        .await?,
        send("evt_spec", &event, "v1,Zm9yZ2Vk".into()).await?,
        send("evt_x", "{}", webhook_signature(&key, "evt_x", &now, "{}")?).await?,
    ];
    let statuses: Vec<StatusCode> = answers.iter().map(reqwest::Response::status).collect();
    assert_eq!(
        statuses,
        [
            StatusCode::NO_CONTENT,
            StatusCode::UNAUTHORIZED,
            StatusCode::BAD_REQUEST
        ]
    );
    for answer in answers {
        spec.assert_webhook_status("paymentOutcome", answer.status());
        if answer.status() != StatusCode::NO_CONTENT {
            assert_valid(
                &spec.schema("Problem")?,
                "webhook answer",
                &answer.json().await?,
            );
        }
    }
    Ok(())
}
