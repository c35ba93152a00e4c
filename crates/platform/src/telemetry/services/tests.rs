use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use opentelemetry::trace::{
    SpanContext, TraceContextExt, TraceFlags, TraceState, TracerProvider as _,
};
use opentelemetry::{Context, Key, KeyValue};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{
    Sampler, SdkTracerProvider, SimpleSpanProcessor, SpanData, SpanExporter,
};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::prelude::*;

use super::{ForgetOnEnd, SERVICE_NAME, ServiceExporter, ServiceTracer, Services};

/// A span as the backend sees it: under which resource's `service.name` it arrived.
#[derive(Clone, Debug)]
struct Exported {
    service: String,
    span: SpanData,
}

impl Exported {
    fn has_attribute(&self, key: &str) -> bool {
        self.span
            .attributes
            .iter()
            .any(|attribute| attribute.key.as_str() == key)
    }
}

/// Keeps what it is asked to export, with its resource's `service.name`.
#[derive(Debug)]
struct Recorder {
    service: String,
    into: Arc<Mutex<Vec<Exported>>>,
}

impl SpanExporter for Recorder {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let mut into = self.into.lock().expect("not poisoned");
        into.extend(batch.into_iter().map(|span| Exported {
            service: self.service.clone(),
            span,
        }));
        Ok(())
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.service = resource
            .get(&Key::from_static_str(SERVICE_NAME))
            .map(|name| name.as_str().into_owned())
            .unwrap_or_default();
    }
}

/// Runs `work` with the tracing → OpenTelemetry layer of a process running `names` (named
/// `process` itself) and returns what was exported, by span name.
fn traced(
    names: &[&'static str],
    sampler: Sampler,
    work: impl FnOnce(&Services),
) -> Vec<(String, Exported)> {
    let recorded = Arc::new(Mutex::new(Vec::new()));
    let services = Arc::new(Services::new(names));
    let exporter = ServiceExporter::new(names, || {
        Ok::<_, Infallible>(Recorder {
            service: String::new(),
            into: Arc::clone(&recorded),
        })
    })
    .expect("infallible");
    let provider = SdkTracerProvider::builder()
        .with_span_processor(ForgetOnEnd::new(
            Arc::clone(&services),
            SimpleSpanProcessor::new(exporter),
        ))
        .with_sampler(sampler)
        .with_resource(
            Resource::builder_empty()
                .with_service_name("process")
                .with_attribute(KeyValue::new("host.name", "test-host"))
                .build(),
        )
        .build();
    let tracer = ServiceTracer::new(provider.tracer("test"), Arc::clone(&services));
    let subscriber =
        tracing_subscriber::registry().with(tracing_opentelemetry::layer().with_tracer(tracer));
    tracing::subscriber::with_default(subscriber, || work(&services));
    provider.shutdown().expect("shut down");
    assert_eq!(services.remembered(), 0, "ended spans are forgotten");
    let exported = recorded.lock().expect("not poisoned").clone();
    exported
        .into_iter()
        .map(|exported| (exported.span.name.to_string(), exported))
        .collect()
}

fn find<'a>(exported: &'a [(String, Exported)], name: &str) -> &'a Exported {
    exported
        .iter()
        .find(|(span, _)| span == name)
        .map(|(_, exported)| exported)
        .unwrap_or_else(|| panic!("no span {name} in {exported:#?}"))
}

#[test]
fn a_span_is_exported_under_the_service_it_names_and_its_descendants_with_it() {
    let exported = traced(
        &["order-api", "payment-svc"],
        Sampler::AlwaysOn,
        |services| {
            let process = tracing::info_span!("process", service.name = "payment-svc");
            process.in_scope(|| {
                let handler = tracing::info_span!("handler");
                handler.in_scope(|| {
                    let _query = tracing::info_span!("query").entered();
                    assert!(services.remembered() >= 3, "started spans are remembered");
                });
            });
            // An explicit parent, as for a span made for later use.
            drop(tracing::info_span!(parent: &process, "later"));
            drop(process);
            drop(tracing::info_span!("request", service.name = "order-api"));
            drop(tracing::info_span!("unmarked"));
            drop(tracing::info_span!("dlq replay", service.name = "shopctl"));
        },
    );
    for (name, service) in [
        ("process", "payment-svc"),
        ("handler", "payment-svc"),
        ("query", "payment-svc"),
        ("later", "payment-svc"),
        ("request", "order-api"),
        // No service: the process's own resource, as is.
        ("unmarked", "process"),
        ("dlq replay", "process"),
    ] {
        let span = find(&exported, name);
        assert_eq!(span.service, service, "{name}");
        assert!(!span.has_attribute(SERVICE_NAME), "{name} keeps the mark");
    }
    // The tree is untouched.
    let process = &find(&exported, "process").span;
    let handler = &find(&exported, "handler").span;
    let query = &find(&exported, "query").span;
    assert_eq!(handler.parent_span_id, process.span_context.span_id());
    assert_eq!(query.parent_span_id, handler.span_context.span_id());
    assert_eq!(
        query.span_context.trace_id(),
        process.span_context.trace_id()
    );
    assert_eq!(
        find(&exported, "later").span.parent_span_id,
        process.span_context.span_id()
    );
}

#[test]
fn a_span_whose_parent_is_remote_does_not_inherit_its_service() {
    let exported = traced(&["order-api", "payment-svc"], Sampler::AlwaysOn, |_| {
        let publish = tracing::info_span!("publish", service.name = "order-api");
        let sent = publish.context().span().span_context().clone();
        // What a consumer extracts from the message's `traceparent`.
        let received = SpanContext::new(
            sent.trace_id(),
            sent.span_id(),
            TraceFlags::SAMPLED,
            true,
            TraceState::default(),
        );
        let consume = tracing::info_span!("consume");
        consume
            .set_parent(Context::new().with_remote_span_context(received))
            .expect("not started yet");
        drop(consume);
        drop(publish);
    });
    let publish = find(&exported, "publish");
    let consume = find(&exported, "consume");
    assert_eq!(publish.service, "order-api");
    assert_eq!(consume.service, "process");
    assert_eq!(
        consume.span.parent_span_id,
        publish.span.span_context.span_id()
    );
}

#[test]
fn a_span_made_by_a_listed_services_crate_is_that_services() {
    // This crate stands in for a service's: its spans are `platform::…`.
    let exported = traced(&["platform"], Sampler::AlwaysOn, |_| {
        drop(tracing::info_span!("sweep"));
        drop(tracing::info_span!("named", service.name = "other"));
    });
    assert_eq!(find(&exported, "sweep").service, "platform");
    // A name given at the span wins over the crate.
    assert_eq!(find(&exported, "named").service, "process");
}

#[test]
fn spans_that_are_not_recorded_are_not_remembered() {
    let exported = traced(&["payment-svc"], Sampler::AlwaysOff, |services| {
        let _process = tracing::info_span!("process", service.name = "payment-svc").entered();
        let _child = tracing::info_span!("child").entered();
        assert_eq!(services.remembered(), 0);
    });
    assert!(exported.is_empty(), "{exported:#?}");
}

#[test]
fn a_process_of_one_service_exports_everything_under_its_resource() {
    let exported = traced(&[], Sampler::AlwaysOn, |services| {
        let _request = tracing::info_span!("request", service.name = "payment-svc").entered();
        let _child = tracing::info_span!("child").entered();
        assert_eq!(services.remembered(), 0, "nothing to remember");
    });
    for name in ["request", "child"] {
        let span = find(&exported, name);
        assert_eq!(span.service, "process");
        assert!(!span.has_attribute(SERVICE_NAME));
    }
}

#[test]
fn a_services_resource_is_the_processs_with_its_name() {
    let process = Resource::builder_empty()
        .with_schema_url(
            [
                KeyValue::new("service.name", "shop"),
                KeyValue::new("host.name", "box"),
            ],
            "https://opentelemetry.io/schemas/1.30.0",
        )
        .build();
    let service = super::with_service_name(&process, "psp-sim");
    assert_eq!(
        service.get(&Key::from_static_str("service.name")),
        Some("psp-sim".into())
    );
    assert_eq!(
        service.get(&Key::from_static_str("host.name")),
        Some("box".into())
    );
    assert_eq!(service.schema_url(), process.schema_url());
}
