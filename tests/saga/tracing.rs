//! One order = one trace: spans of all three services and of the payment provider, exported by
//! OTLP to a receiver inside the test, joined through HTTP (including the provider's webhook)
//! and Kafka headers, with no orphan and a single root — whether each service runs as its own
//! process or all of them in one (`shopctl up`), where each span must still name the service
//! that made it.

use std::collections::{HashMap, HashSet};

use anyhow::{Context, Result};
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;

use events::CancellationReason;

use saga_tests::{
    DEADLINE, OtlpReceiver, ReceivedSpan, ShopUp, Stack, Status, eventually, metric_total,
};

const SERVICES: [&str; 4] = ["order-api", "payment-svc", "inventory-svc", "psp-sim"];

/// The spans of a confirmed order's trace (README's tree), each with the service that makes it;
/// a span listed twice is awaited twice (each process exports on its own schedule, so the test
/// waits for every span it then counts).
const CONFIRMED: &[(&str, &str)] = &[
    ("order-api", "POST /api/orders"),
    ("order-api", "send orders"),
    ("payment-svc", "process orders"),
    ("payment-svc", "psp charge"),
    ("payment-svc", "POST"),
    ("psp-sim", "POST /v1/charges"),
    ("psp-sim", "POST webhook charge.succeeded"),
    ("payment-svc", "POST /webhooks/payments"),
    ("payment-svc", "provider notification"),
    ("payment-svc", "send payments"),
    ("inventory-svc", "process payments"),
    ("inventory-svc", "send inventory"),
    ("order-api", "process inventory"),
    // order.confirmed, payment.initiated, and order-api following the payment.
    ("order-api", "send orders"),
    ("payment-svc", "send payments"),
    ("order-api", "process payments"),
];

/// The trace of `order_id`: the one its consumer spans belong to.
fn trace_of(spans: &[ReceivedSpan], order_id: &str) -> Option<String> {
    spans
        .iter()
        .find(|s| s.kind == SpanKind::Consumer && s.attr("order_id") == Some(order_id))
        .map(|s| s.trace_id.clone())
}

/// Waits until the order's trace holds every span `expected` names (by service and span name),
/// as many times as it is named.
async fn wait_for_trace(
    receiver: &OtlpReceiver,
    order_id: &str,
    expected: &[(&str, &str)],
) -> Result<(String, Vec<ReceivedSpan>)> {
    let spans = receiver
        .wait_for(DEADLINE, |spans| {
            trace_of(spans, order_id).is_some_and(|trace| {
                expected.iter().all(|(service, name)| {
                    let wanted = expected.iter().filter(|e| **e == (*service, *name)).count();
                    let found = spans
                        .iter()
                        .filter(|s| s.trace_id == trace && s.service == *service && s.name == *name)
                        .count();
                    found >= wanted
                })
            })
        })
        .await
        .with_context(|| {
            let spans = receiver.spans();
            let received: Vec<(&str, &str)> = trace_of(&spans, order_id)
                .map(|trace| {
                    spans
                        .iter()
                        .filter(|s| s.trace_id == trace)
                        .map(|s| (s.service.as_str(), s.name.as_str()))
                        .collect()
                })
                .unwrap_or_default();
            format!("trace of {order_id} incomplete; expected {expected:?}, received {received:?}")
        })?;
    let trace = trace_of(&spans, order_id).context("no trace")?;
    // Each process exports on its own schedule, so a child can arrive before its parent: wait
    // (bounded) until every parent has arrived; if one never does, the orphan check reports it.
    let closed = |spans: &[ReceivedSpan]| {
        let ids: HashSet<&str> = spans
            .iter()
            .filter(|s| s.trace_id == trace)
            .map(|s| s.span_id.as_str())
            .collect();
        spans
            .iter()
            .filter(|s| s.trace_id == trace)
            .all(|s| s.parent_span_id.is_empty() || ids.contains(s.parent_span_id.as_str()))
    };
    let spans = receiver
        .wait_for(DEADLINE, closed)
        .await
        .unwrap_or_else(|_| receiver.spans());
    let in_trace = spans.into_iter().filter(|s| s.trace_id == trace).collect();
    Ok((trace, in_trace))
}

/// What the messaging conventions ask of every Kafka span (v1.27+: "Semantic Conventions for
/// Messaging Spans" §Span name and §Operation types, "Semantic Conventions for Kafka"): the
/// operation named and typed, the broker (the first of `broker`'s bootstrap servers, when
/// known), the partition,
/// and a saga's spans all succeeded.
fn assert_messaging_span(span: &ReceivedSpan, operation: &str, broker: Option<&str>) {
    assert_eq!(span.attr("messaging.system"), Some("kafka"), "{span:?}");
    assert_eq!(
        span.attr("messaging.operation.name"),
        Some(operation),
        "{span:?}"
    );
    assert_eq!(
        span.attr("messaging.operation.type"),
        Some(operation),
        "{span:?}"
    );
    match broker.and_then(|broker| broker.split(',').next()?.rsplit_once(':')) {
        Some((host, port)) => {
            assert_eq!(span.attr("server.address"), Some(host), "{span:?}");
            assert_eq!(span.attr("server.port"), Some(port), "{span:?}");
        }
        None => {
            assert!(span.attr("server.address").is_some(), "{span:?}");
            assert!(span.attr("server.port").is_some(), "{span:?}");
        }
    }
    assert!(
        span.attr("messaging.destination.partition.id")
            .is_some_and(|id| id.parse::<i32>().is_ok()),
        "{span:?}"
    );
    assert_eq!(span.status, StatusCode::Unset, "{span:?}");
}

/// What the HTTP conventions ask of the server and client spans of a saga that went well
/// ("Semantic conventions for HTTP spans", §HTTP server, §HTTP client).
fn assert_http_spans(trace: &[ReceivedSpan]) {
    let servers: Vec<&ReceivedSpan> = trace
        .iter()
        .filter(|s| s.kind == SpanKind::Server)
        .collect();
    assert!(servers.len() >= 3, "{servers:#?}");
    for span in servers {
        let method = span.attr("http.request.method").unwrap_or_default();
        let route = span.attr("http.route").unwrap_or_default();
        assert_eq!(span.name, format!("{method} {route}"), "{span:?}");
        assert_eq!(span.attr("url.scheme"), Some("http"), "{span:?}");
        assert!(
            span.attr("url.path").is_some_and(|p| p.starts_with('/')),
            "{span:?}"
        );
        assert!(span.attr("http.response.status_code").is_some(), "{span:?}");
        assert_eq!(span.status, StatusCode::Unset, "{span:?}");
    }
    // The payment provider client's request: named after its method, to the provider's address.
    let client = trace
        .iter()
        .find(|s| s.kind == SpanKind::Client && s.service == "payment-svc")
        .expect("the payment provider client's span");
    assert_eq!(client.name, "POST");
    assert_eq!(client.attr("http.request.method"), Some("POST"));
    assert_eq!(client.attr("server.address"), Some("127.0.0.1"));
    let port = client.attr("server.port").unwrap_or_default();
    assert!(port.parse::<u16>().is_ok_and(|p| p != 0), "{client:?}");
    assert_eq!(
        client.attr("url.full"),
        Some(format!("http://127.0.0.1:{port}/v1/charges").as_str())
    );
    assert!(
        client.attr("http.response.status_code").is_some(),
        "{client:?}"
    );
    assert_eq!(client.status, StatusCode::Unset, "{client:?}");
}

/// The shape every saga trace must have; `broker` is the services' bootstrap list, if known.
fn assert_one_connected_trace(
    order_id: &str,
    all: &[ReceivedSpan],
    trace: &[ReceivedSpan],
    broker: Option<&str>,
) {
    let ids: HashSet<&str> = trace.iter().map(|s| s.span_id.as_str()).collect();
    let roots: Vec<&ReceivedSpan> = trace
        .iter()
        .filter(|s| s.parent_span_id.is_empty())
        .collect();
    assert_eq!(roots.len(), 1, "one root expected: {roots:#?}");
    assert_eq!(roots[0].name, "POST /api/orders");
    assert_eq!(roots[0].kind, SpanKind::Server);
    assert_eq!(roots[0].service, "order-api");
    assert_eq!(roots[0].attr("http.route"), Some("/api/orders"));
    assert_eq!(roots[0].attr("http.response.status_code"), Some("202"));
    for span in trace {
        assert!(
            span.parent_span_id.is_empty() || ids.contains(span.parent_span_id.as_str()),
            "orphan span {} of {}: parent {} not in the trace",
            span.name,
            span.service,
            span.parent_span_id
        );
    }
    let services: HashSet<&str> = trace.iter().map(|s| s.service.as_str()).collect();
    for service in SERVICES {
        assert!(
            services.contains(service),
            "no span of {service} in the trace"
        );
    }
    // Every span about this order, wherever it was exported, is in this one trace.
    for span in all.iter().filter(|s| s.attr("order_id") == Some(order_id)) {
        assert_eq!(
            span.trace_id, trace[0].trace_id,
            "span {} of {} is in another trace",
            span.name, span.service
        );
    }

    let by_id: HashMap<&str, &ReceivedSpan> =
        trace.iter().map(|s| (s.span_id.as_str(), s)).collect();
    let producers: Vec<&ReceivedSpan> = trace
        .iter()
        .filter(|s| s.kind == SpanKind::Producer)
        .collect();
    let consumers: Vec<&ReceivedSpan> = trace
        .iter()
        .filter(|s| s.kind == SpanKind::Consumer)
        .collect();
    assert!(
        producers.len() >= 4 && consumers.len() >= 4,
        "{} producers, {} consumers",
        producers.len(),
        consumers.len()
    );
    for span in &producers {
        let topic = span.attr("messaging.destination.name").unwrap_or_default();
        assert_eq!(span.name, format!("send {topic}"));
        assert_messaging_span(span, "send", broker);
        assert_eq!(span.attr("messaging.kafka.message.key"), Some(order_id));
        assert!(span.attr("messaging.kafka.offset").is_some(), "{span:?}");
    }
    for span in &consumers {
        let topic = span.attr("messaging.destination.name").unwrap_or_default();
        assert_eq!(span.name, format!("process {topic}"));
        assert_messaging_span(span, "process", broker);
        assert_eq!(
            span.attr("messaging.consumer.group.name"),
            Some(span.service.as_str())
        );
        assert_eq!(span.attr("messaging.kafka.message.key"), Some(order_id));
        assert!(span.attr("messaging.kafka.offset").is_some(), "{span:?}");
        assert_eq!(span.attr("correlation_id"), Some(order_id));
        let parent = by_id.get(span.parent_span_id.as_str()).copied();
        assert_eq!(
            parent.map(|p| p.kind),
            Some(SpanKind::Producer),
            "consumer {} not a child of a producer",
            span.name
        );
        assert_eq!(
            parent.and_then(|p| p.attr("messaging.destination.name")),
            Some(topic)
        );
    }
}

/// The service that makes a span of this kind and name, where the span says it.
fn maker(span: &ReceivedSpan) -> Option<&str> {
    match (span.kind, span.name.as_str()) {
        (SpanKind::Consumer, _) => span.attr("messaging.consumer.group.name"),
        (SpanKind::Client, "POST") => Some("payment-svc"),
        (SpanKind::Producer, _) => match span.attr("messaging.destination.name")? {
            "orders" => Some("order-api"),
            "payments" => Some("payment-svc"),
            "inventory" => Some("inventory-svc"),
            _ => None,
        },
        (_, "POST /api/orders") => Some("order-api"),
        (_, "POST /v1/charges" | "POST /v1/refunds") => Some("psp-sim"),
        (_, name) if name.starts_with("POST webhook ") => Some("psp-sim"),
        (_, "POST /webhooks/payments" | "psp charge" | "psp refund" | "provider notification") => {
            Some("payment-svc")
        }
        _ => None,
    }
}

/// Every span of the trace is exported under (the resource `service.name` of) the service
/// that made it, and carries no `service.name` of its own.
fn assert_exported_by_their_makers(trace: &[ReceivedSpan]) {
    for span in trace {
        assert!(
            SERVICES.contains(&span.service.as_str()),
            "span {} exported as {:?}",
            span.name,
            span.service
        );
        if let Some(maker) = maker(span) {
            assert_eq!(
                span.service, maker,
                "span {} ({:?}) exported as {}",
                span.name, span.kind, span.service
            );
        }
        assert_eq!(span.attr("service.name"), None, "{span:?}");
    }
}

#[tokio::test]
async fn one_order_is_one_trace_across_all_services() -> Result<()> {
    let (receiver, endpoint) = OtlpReceiver::start().await?;
    let stack = Stack::start_with_env(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ("LOG_FORMAT", "json"),
    ])
    .await?;
    let consumed = "messaging_events_consumed_total";
    let payment_before = metric_total(
        &stack.metrics(&stack.payment).await?,
        consumed,
        &["outcome=\"handled\""],
    );

    // Happy path.
    let confirmed = stack.place_order("WIDGET-42", 2, "pm_visa_4242").await?;
    assert_eq!(
        stack.wait_terminal(&confirmed).await?.status,
        Status::Confirmed
    );
    let (trace_id, trace) = wait_for_trace(&receiver, &confirmed, CONFIRMED).await?;
    assert_one_connected_trace(
        &confirmed,
        &receiver.spans(),
        &trace,
        Some(&stack.bootstrap),
    );
    assert_exported_by_their_makers(&trace);
    assert_http_spans(&trace);
    // The provider's answer arrives by webhook, a child of the provider's delivery span.
    let by_name = |service: &str, name: &str| {
        trace
            .iter()
            .find(|s| s.service == service && s.name == name)
            .cloned()
    };
    let webhook = by_name("payment-svc", "POST /webhooks/payments").context("webhook span")?;
    let delivery = by_name("psp-sim", "POST webhook charge.succeeded").context("delivery span")?;
    assert_eq!(webhook.parent_span_id, delivery.span_id);
    assert_eq!(delivery.kind, SpanKind::Client);

    // Out of stock: the compensation (refund) is in the same trace.
    let refunded = stack.place_order("GIZMO-9", 1, "pm_visa_4242").await?;
    assert_eq!(
        stack.wait_terminal(&refunded).await?.cancellation_reason,
        Some(CancellationReason::OutOfStock)
    );
    let (_, trace) = wait_for_trace(
        &receiver,
        &refunded,
        &[
            ("order-api", "send orders"),
            ("payment-svc", "process orders"),
            ("payment-svc", "send payments"),
            ("payment-svc", "send payments"),
            ("inventory-svc", "process payments"),
            ("inventory-svc", "send inventory"),
            ("order-api", "process inventory"),
            ("payment-svc", "psp refund"),
            ("order-api", "process payments"),
            ("order-api", "send orders"),
        ],
    )
    .await?;
    assert_one_connected_trace(&refunded, &receiver.spans(), &trace, Some(&stack.bootstrap));
    assert_exported_by_their_makers(&trace);
    // The compensation's reply is consumed inside the same trace (it may arrive a little later).
    let refund_trace = trace[0].trace_id.clone();
    receiver
        .wait_for(DEADLINE, |spans| {
            spans.iter().any(|s| {
                s.trace_id == refund_trace
                    && s.kind == SpanKind::Consumer
                    && s.attr("event_type") == Some("payment.refunded")
            })
        })
        .await
        .context("payment.refunded was not consumed inside the trace")?;

    // Failures: a message no handler understands is dead-lettered, and its `process` span
    // says so with status Error; a request refused with a 4xx leaves the server span Unset
    // (the client's mistake, not the server's failure).
    stack
        .kafka()?
        .produce("payments", b"ord_poison", b"{not json", &[])
        .await?;
    let refused = stack
        .post_order(&serde_json::json!({ "user_id": "u", "items": [] }))
        .await?;
    assert!(refused.status().is_client_error(), "{}", refused.status());
    let refused_status = refused.status().as_u16().to_string();
    let spans = receiver
        .wait_for(DEADLINE, |spans| {
            let dead = spans.iter().any(|s| {
                s.kind == SpanKind::Consumer
                    && s.attr("messaging.kafka.message.key") == Some("ord_poison")
            });
            let refused = spans.iter().any(|s| {
                s.kind == SpanKind::Server
                    && s.attr("http.response.status_code") == Some(refused_status.as_str())
            });
            dead && refused
        })
        .await?;
    for span in spans.iter().filter(|s| {
        s.kind == SpanKind::Consumer && s.attr("messaging.kafka.message.key") == Some("ord_poison")
    }) {
        assert_eq!(span.status, StatusCode::Error, "{span:?}");
        assert!(span.status_message.contains("dead-lettered"), "{span:?}");
        assert_eq!(span.attr("error.type"), Some("poison"), "{span:?}");
    }
    let refused_span = spans
        .iter()
        .find(|s| {
            s.kind == SpanKind::Server
                && s.attr("http.response.status_code") == Some(refused_status.as_str())
        })
        .context("the refused request's span")?;
    assert_eq!(refused_span.name, "POST /api/orders");
    assert_eq!(refused_span.status, StatusCode::Unset, "{refused_span:?}");

    // Metrics moved.
    let payment_after = metric_total(
        &stack.metrics(&stack.payment).await?,
        consumed,
        &["outcome=\"handled\""],
    );
    assert!(
        payment_after > payment_before,
        "{payment_before} -> {payment_after}"
    );
    // The produced counter moves when the broker acknowledges the relay's send, and the saga's
    // duration is recorded after its end is committed: both may trail what was awaited above.
    let order_metrics = eventually(|| async {
        let metrics = stack
            .metrics(&stack.order_api)
            .await
            .map_err(|error| format!("order-api's metrics: {error:#}"))?;
        let produced = metric_total(
            &metrics,
            "messaging_events_produced_total",
            &["outcome=\"ok\""],
        );
        let ended = metric_total(
            &metrics,
            "saga_duration_seconds_count",
            &["outcome=\"out_of_stock\""],
        );
        if produced >= 4.0 && ended >= 1.0 {
            Ok(metrics)
        } else {
            Err(format!("produced {produced}, ended {ended}: {metrics}"))
        }
    })
    .await?;
    assert!(
        metric_total(
            &order_metrics,
            "http_server_request_duration_seconds_count",
            &["route=\"/api/orders\""]
        ) >= 2.0
    );
    assert!(
        metric_total(
            &order_metrics,
            "messaging_events_produced_total",
            &["outcome=\"ok\""]
        ) >= 4.0
    );
    assert!(order_metrics.contains("outbox_backlog"), "{order_metrics}");
    assert!(order_metrics.contains("sagas_in_flight"), "{order_metrics}");
    assert!(
        metric_total(
            &order_metrics,
            "saga_duration_seconds_count",
            &["outcome=\"out_of_stock\""]
        ) >= 1.0,
        "{order_metrics}"
    );

    // A JSON log line of payment-svc carries the trace and the order.
    let log = std::fs::read_to_string(stack.dir().join("payment-svc.1.log"))?;
    let line = log
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .find(|line| {
            line["trace_id"] == trace_id.as_str() && line["order_id"] == confirmed.as_str()
        })
        .with_context(|| format!("no JSON log line of payment-svc with trace {trace_id}"))?;
    assert_eq!(line["correlation_id"], confirmed.as_str());
    assert!(line["span_id"].is_string(), "{line}");
    Ok(())
}

/// `shopctl up` runs every service in one process, with one exporter: the trace must still
/// read as if each service were its own process — the same tree, each span under its maker.
#[tokio::test]
async fn in_one_process_each_span_is_exported_under_the_service_that_made_it() -> Result<()> {
    let (receiver, endpoint) = OtlpReceiver::start().await?;
    let shop = ShopUp::start(
        &[],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ],
    )
    .await?;

    let orders = shop.orders();
    let confirmed = orders.place_order("WIDGET-42", 2, "pm_visa_4242").await?;
    assert_eq!(
        orders.wait_terminal(&confirmed).await?.status,
        Status::Confirmed
    );
    let (_, trace) = wait_for_trace(&receiver, &confirmed, CONFIRMED).await?;
    assert_one_connected_trace(&confirmed, &receiver.spans(), &trace, None);
    assert_exported_by_their_makers(&trace);
    assert_http_spans(&trace);
    let webhook = trace
        .iter()
        .find(|s| s.name == "POST /webhooks/payments")
        .context("webhook span")?;
    let delivery = trace
        .iter()
        .find(|s| s.name == "POST webhook charge.succeeded")
        .context("delivery span")?;
    assert_eq!(webhook.parent_span_id, delivery.span_id);
    // Nothing went out under the process's own name: every span the shop made, in the order's
    // trace or not (order polls, relay rounds), is one service's.
    let strays: Vec<(String, String)> = receiver
        .spans()
        .into_iter()
        .filter(|s| !SERVICES.contains(&s.service.as_str()))
        .map(|s| (s.service, s.name))
        .collect();
    assert!(strays.is_empty(), "spans of no service: {strays:?}");
    Ok(())
}
