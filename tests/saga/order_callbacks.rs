//! The order callbacks match their description in `schemas/openapi.yaml` (`webhooks`): a
//! confirmed and a cancelled order are announced to a real receiver, and each request's body
//! and Standard Webhooks headers are validated against the webhook's request body and
//! parameter schemas. (That callbacks are signed, retried and dead-lettered is
//! `callbacks.rs`'s part.)

use anyhow::{Context, Result};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use jsonschema::{Registry, Validator};
use serde_json::{Value, json};

use saga_tests::{Stack, eventually, receiver, repo_root};

use crate::openapi::assert_valid;

const SPEC_URI: &str = "urn:shop:openapi";

/// A validator for the schema at `pointer` (a JSON pointer into the OpenAPI document).
fn validator(registry: &Registry<'static>, pointer: &str) -> Result<Validator> {
    Ok(jsonschema::options()
        .with_registry(registry)
        .build(&json!({"$ref": format!("{SPEC_URI}#{pointer}")}))?)
}

#[tokio::test]
async fn order_callbacks_match_the_openapi_webhooks() -> Result<()> {
    let text = std::fs::read_to_string(repo_root().join("schemas/openapi.yaml"))?;
    let spec: Value = serde_norway::from_str(&text)?;
    let registry = Registry::new().add(SPEC_URI, spec.clone())?.prepare()?;

    let secret = format!("whsec_{}", STANDARD.encode(b"callback-contract-secret"));
    let stack = Stack::start_with_env(&[
        ("CALLBACK_SECRETS", &format!("dev:{secret}")),
        ("CALLBACK_ALLOW_PRIVATE", "true"),
    ])
    .await?;
    let (base, seen) = receiver().await?;
    for payment_method in ["pm_visa_4242", "pm_card_declined"] {
        let body = json!({
            "user_id": "usr_contract", "items": [{"sku": "WIDGET-42", "quantity": 1}],
            "payment_method": payment_method, "callback_url": format!("{base}/ok"),
        });
        let answer = stack.post_order(&body).await?;
        assert_eq!(answer.status(), 202, "{}", answer.text().await?);
    }
    let requests = eventually(|| async {
        let requests = seen.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if requests.len() >= 2 {
            Ok(requests)
        } else {
            Err(format!("callbacks received so far: {requests:?}"))
        }
    })
    .await?;

    let mut kinds = Vec::new();
    for (_, headers, body, _) in &requests {
        let body: Value = serde_json::from_str(body)?;
        let kind = body["type"].as_str().context("callback type")?.to_owned();
        let webhook = match kind.as_str() {
            "order.confirmed" => "orderConfirmed",
            "order.cancelled" => "orderCancelled",
            other => panic!("a callback of type {other:?}, which the spec does not describe"),
        };
        let post = format!("/webhooks/{webhook}/post");
        let body_schema = format!("{post}/requestBody/content/application~1json/schema");
        assert_valid(&validator(&registry, &body_schema)?, &kind, &body);
        let parameters = spec
            .pointer(&format!("{post}/parameters"))
            .and_then(Value::as_array)
            .context("the webhook's parameters")?;
        for parameter in parameters {
            let reference = parameter["$ref"].as_str().context("a parameter $ref")?;
            let parameter = spec
                .pointer(reference.trim_start_matches('#'))
                .context("the parameter")?;
            let name = parameter["name"].as_str().context("its name")?;
            let value = headers
                .get(name)
                .with_context(|| format!("{kind}: no {name} header"))?;
            let schema = format!("{}/schema", reference.trim_start_matches('#'));
            assert_valid(
                &validator(&registry, &schema)?,
                &format!("{kind}: header {name}"),
                &json!(value),
            );
        }
        kinds.push(kind);
    }
    kinds.sort();
    assert_eq!(kinds, ["order.cancelled", "order.confirmed"]);
    Ok(())
}
