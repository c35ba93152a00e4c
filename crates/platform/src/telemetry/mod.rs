//! Logs, traces and the W3C trace context that ties them across services.
//!
//! - Logs go to stderr (stdout is reserved for the one machine-readable `ready` line), filtered
//!   and formatted as the program's [`LogSettings`] say (`RUST_LOG`, `LOG_FORMAT`: read with the
//!   rest of its configuration), human-readable unless the format is `json` (the readable lines
//!   leave the spans' OpenTelemetry attributes out, see [`text`]). JSON lines are flat
//!   objects carrying the fields of every enclosing span — so a handler's lines carry `order_id`
//!   and `correlation_id` — plus `trace_id` and `span_id` when tracing is on.
//! - Traces are exported by OTLP/gRPC when `OTEL_EXPORTER_OTLP_ENDPOINT` is set (and
//!   `OTEL_TRACES_EXPORTER` is not `none`); the standard `OTEL_*` variables apply
//!   (`OTEL_SERVICE_NAME`, `OTEL_TRACES_SAMPLER`, `OTEL_BSP_SCHEDULE_DELAY`, …). Without an
//!   endpoint no OpenTelemetry layer is installed at all: no cost.
//! - [`inject`] / [`set_parent_from`] move the context through Kafka headers and outbox rows.
//! - A span's status is `Error` only where code says its operation failed ([`mark_error`]);
//!   outgoing HTTP requests are `CLIENT` spans made by [`HttpClientSpan`].
//!
//! # Several services in one process
//!
//! A trace is read by service: a backend groups spans by the `service.name` of the resource
//! they were exported under. A service binary calls [`init`] with its name and every span is
//! that service's (`OTEL_SERVICE_NAME` wins, as usual). `shopctl up` runs every service in one
//! process and calls [`init_services`] with their names instead: each span is then exported
//! under the service that made it, so its trace reads as the separate processes' would — same
//! spans, same tree, same names. How a span's service is found is in [`services`]: in short,
//! the `service.name` field that platform code gives the spans it makes for a service (the
//! HTTP server span, the Kafka `process` and `send` spans), else the crate that made the
//! span, else its parent's. Spans of no service — none today — go out under the process's own
//! name: `OTEL_SERVICE_NAME` if set, else the name given to [`init_services`]; so
//! `OTEL_SERVICE_NAME` names the process there, never one of its services.
//!
//! The cost, only there and only when tracing (without an endpoint there is no layer and no
//! work): for each span, a scan of its attributes as it starts, a lookup and an insertion in a
//! map of the open spans, a removal when it ends; and one OTLP connection per service besides
//! the process's own.

#[cfg(test)]
pub(crate) mod capture;
mod http_client;
mod services;
mod status;
mod text;

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use opentelemetry::propagation::{Extractor, Injector};
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{BatchSpanProcessor, SdkTracerProvider};
use serde_json::{Map, Value};
use tracing::{Event, Subscriber};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::fmt::format::{JsonFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::prelude::*;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::{EnvFilter, fmt as subscriber_fmt};

use crate::config::{LogFormat, LogSettings};

pub use http_client::{HttpClientSpan, redacted_url};
use services::{ForgetOnEnd, ServiceExporter, ServiceTracer, Services};
pub use status::mark_error;

/// Flushes and stops the trace exporter when dropped; `main` keeps it alive.
#[must_use = "dropping the guard stops trace export"]
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
}

impl fmt::Debug for TelemetryGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TelemetryGuard")
            .field("exporting", &self.provider.is_some())
            .finish()
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take()
            && let Err(error) = provider.shutdown()
        {
            eprintln!("Trace export did not shut down cleanly: {error}");
        }
    }
}

/// Whether the environment asks for trace export.
fn export_requested() -> bool {
    let endpoint = [
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
    ]
    .iter()
    .any(|name| std::env::var(name).is_ok_and(|value| !value.trim().is_empty()));
    let disabled = std::env::var("OTEL_TRACES_EXPORTER").is_ok_and(|value| value.trim() == "none")
        || std::env::var("OTEL_SDK_DISABLED").is_ok_and(|value| value.trim() == "true");
    endpoint && !disabled
}

/// Installs logging (and trace export if configured) for `service` (the default
/// `service.name`; `OTEL_SERVICE_NAME` wins). Later calls in the same process do nothing.
pub fn init(service: &str, log: &LogSettings) -> TelemetryGuard {
    install(service, &[], log)
}

/// Like [`init`], for a process running several `services` (`shopctl up`): each span is
/// exported under the service that made it; `process` names the spans of none of them
/// (`OTEL_SERVICE_NAME` wins for those). See the module doc.
pub fn init_services(
    process: &str,
    services: &[&'static str],
    log: &LogSettings,
) -> TelemetryGuard {
    install(process, services, log)
}

fn install(process: &str, services: &[&'static str], log: &LogSettings) -> TelemetryGuard {
    let filter = EnvFilter::try_new(&log.filter).unwrap_or_else(|error| {
        eprintln!(
            "Log filter {:?} ignored ({error}); logging at info.",
            log.filter
        );
        EnvFilter::new("info,rdkafka=warn")
    });
    let json = log.format == LogFormat::Json;
    let provider = export_requested()
        .then(|| build_provider(process, services))
        .flatten();
    let otel_layer = provider.as_ref().map(|(provider, services)| {
        opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
        let tracer = ServiceTracer::new(provider.tracer(process.to_owned()), Arc::clone(services));
        bridge(tracer)
    });
    let log_layer = if json {
        subscriber_fmt::layer()
            .event_format(FlatJson)
            .fmt_fields(JsonFields::new())
            .with_writer(std::io::stderr)
            .boxed()
    } else {
        // Colours only for a person at a terminal, not escape codes in a log file.
        subscriber_fmt::layer()
            .fmt_fields(text::TextFields)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_writer(std::io::stderr)
            .boxed()
    };
    let installed = tracing_subscriber::registry()
        .with(filter)
        .with(otel_layer)
        .with(log_layer)
        .try_init()
        .is_ok();
    TelemetryGuard {
        provider: provider.filter(|_| installed).map(|(provider, _)| provider),
    }
}

/// The layer that turns `tracing` spans into OpenTelemetry spans of `tracer`. The module path
/// of each span (`code.module.name`) is how a service's own spans are told apart (see
/// `services`). A span's status is set where its operation fails, not from log lines that carry
/// an `error` field (see `status`).
fn bridge<S, T>(tracer: T) -> tracing_opentelemetry::OpenTelemetryLayer<S, T>
where
    S: Subscriber + for<'span> LookupSpan<'span>,
    T: opentelemetry::trace::Tracer + 'static,
    T::Span: Send + Sync,
{
    tracing_opentelemetry::layer()
        .with_location(true)
        .with_error_events_to_status(false)
        .with_tracer(tracer)
}

/// The tracer provider exporting to the OTLP endpoint: one exporter per service (see
/// [`services`]) behind one batch processor, and what the tracer and the processor share.
fn build_provider(
    process: &str,
    services: &[&'static str],
) -> Option<(SdkTracerProvider, Arc<Services>)> {
    let exporter = match ServiceExporter::new(services, || {
        opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .build()
    }) {
        Ok(exporter) => exporter,
        Err(error) => {
            eprintln!("Trace export disabled: cannot build the OTLP exporter: {error}");
            return None;
        }
    };
    let resource = if std::env::var("OTEL_SERVICE_NAME").is_ok_and(|name| !name.is_empty()) {
        Resource::builder().build()
    } else {
        Resource::builder()
            .with_service_name(process.to_owned())
            .build()
    };
    let services = Arc::new(Services::new(services));
    let processor = ForgetOnEnd::new(
        Arc::clone(&services),
        BatchSpanProcessor::builder(exporter).build(),
    );
    let provider = SdkTracerProvider::builder()
        .with_span_processor(processor)
        .with_resource(resource)
        .build();
    Some((provider, services))
}

/// The W3C trace id of the current span, if it is being traced.
pub fn current_trace_id() -> Option<String> {
    let context = tracing::Span::current().context();
    let span = context.span();
    let span_context = span.span_context();
    span_context
        .is_valid()
        .then(|| span_context.trace_id().to_string())
}

/// The current span's context as W3C headers (`traceparent`, `tracestate`); empty when not
/// tracing.
pub fn inject(span: &tracing::Span) -> HashMap<String, String> {
    let mut carrier = HashMap::new();
    let context = span.context();
    opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.inject_context(&context, &mut MapCarrier(&mut carrier));
    });
    carrier
}

/// Makes `span` a child of the context in `headers` (no-op when they carry none).
pub fn set_parent_from(span: &tracing::Span, headers: &dyn Extractor) {
    let parent =
        opentelemetry::global::get_text_map_propagator(|propagator| propagator.extract(headers));
    if parent.span().span_context().is_valid() {
        // Only fails when the span is disabled, in which case there is nothing to link.
        let _ = span.set_parent(parent);
    }
}

/// Makes `span` a child of a stored `traceparent` (and `tracestate`).
pub fn set_parent_from_traceparent(
    span: &tracing::Span,
    traceparent: Option<&str>,
    tracestate: Option<&str>,
) {
    let Some(traceparent) = traceparent else {
        return;
    };
    let mut carrier = HashMap::from([("traceparent".to_owned(), traceparent.to_owned())]);
    if let Some(tracestate) = tracestate {
        carrier.insert("tracestate".to_owned(), tracestate.to_owned());
    }
    set_parent_from(span, &MapExtractor(&carrier));
}

struct MapCarrier<'a>(&'a mut HashMap<String, String>);

impl Injector for MapCarrier<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.insert(key.to_owned(), value);
    }
}

/// Reads trace context from a map of header names to values.
#[derive(Debug)]
pub struct MapExtractor<'a>(pub &'a HashMap<String, String>);

impl Extractor for MapExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(String::as_str).collect()
    }
}

/// One JSON object per line: time, level, target, message, the event's fields, the fields of
/// every enclosing span (outermost first, inner ones win), the innermost span's name, and the
/// trace and span ids when tracing.
struct FlatJson;

impl<S, N> FormatEvent<S, N> for FlatJson
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        let mut line = Map::new();
        line.insert("timestamp".into(), Value::String(crate::time::now_text()));
        line.insert("level".into(), Value::String(meta.level().to_string()));
        line.insert("target".into(), Value::String(meta.target().to_owned()));
        if let Some(scope) = ctx.event_scope() {
            let mut innermost = None;
            for span in scope.from_root() {
                let extensions = span.extensions();
                if let Some(fields) = extensions.get::<FormattedFields<N>>()
                    && let Ok(Value::Object(fields)) = serde_json::from_str::<Value>(fields)
                {
                    line.extend(fields);
                }
                innermost = Some(span.name());
            }
            if let Some(name) = innermost {
                line.insert("span".into(), Value::String(name.to_owned()));
            }
        }
        let context = tracing::Span::current().context();
        let otel_span = context.span();
        let span_context = otel_span.span_context();
        if span_context.is_valid() {
            line.insert(
                "trace_id".into(),
                Value::String(span_context.trace_id().to_string()),
            );
            line.insert(
                "span_id".into(),
                Value::String(span_context.span_id().to_string()),
            );
        }
        event.record(&mut FieldVisitor(&mut line));
        writeln!(writer, "{}", Value::Object(line))
    }
}

struct FieldVisitor<'a>(&'a mut Map<String, Value>);

impl tracing::field::Visit for FieldVisitor<'_> {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0
            .insert(field.name().to_owned(), Value::String(value.to_owned()));
    }

    fn record_i64(&mut self, field: &tracing::field::Field, value: i64) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }

    fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }

    fn record_bool(&mut self, field: &tracing::field::Field, value: bool) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn fmt::Debug) {
        self.0
            .insert(field.name().to_owned(), Value::String(format!("{value:?}")));
    }
}
