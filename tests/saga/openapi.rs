//! `schemas/openapi.yaml` describes the running API: real answers of the main routes are
//! validated against the spec's schemas, and every status code seen is one the spec lists.

use std::collections::HashMap;

use anyhow::{Context, Result};
use jsonschema::{Registry, Validator};
use reqwest::StatusCode;
use serde_json::{Value, json};

use saga_tests::{DEADLINE, Stack, repo_root};

const SPEC_URI: &str = "urn:shop:openapi";

struct Spec {
    doc: Value,
    registry: Registry<'static>,
}

impl Spec {
    fn load() -> Result<Self> {
        let text = std::fs::read_to_string(repo_root().join("schemas/openapi.yaml"))?;
        let doc: Value = serde_norway::from_str(&text).context("openapi.yaml is not valid YAML")?;
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
}

fn assert_valid(validator: &Validator, what: &str, value: &Value) {
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
    let spec = Spec::load()?;
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
    assert_eq!(order["status"], "confirmed");
    assert_valid(&spec.schema("Order")?, "order", &order);
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
