//! Which service a span belongs to when several services share one process (`shopctl up`).
//!
//! Trace backends (Jaeger, Phoenix, …) group spans by the `service.name` of the OTLP *resource*
//! they were exported under, and a tracer provider has one resource. So each span is marked
//! with its service as it starts ([`ServiceTracer`]), and the exporter splits every batch by
//! that mark and sends each part under a resource of its own ([`ServiceExporter`]), which
//! is the process's resource with that `service.name`. The trace itself — ids, parents,
//! timing — is left as it is.
//!
//! A span's service is, in this order:
//! 1. the `service.name` field it was made with. Shared platform code that works for a service
//!    names it, as nothing else tells one service's HTTP server or Kafka client from another's:
//!    the HTTP server span names the router's service, the consumer's `process` span its group,
//!    the producer's `send` span its client id;
//! 2. the service whose crate made it (`payment_svc::recovery` → `payment-svc`, from the span's
//!    module path). This covers a service's own spans in tasks it spawned, which have no parent
//!    in the process: psp-sim's webhook deliveries, order-api's deadline sweep;
//! 3. its parent's, when the parent is a span of this process: whatever platform or library
//!    code does inside one of the above is that service's work;
//! 4. none: the span goes out under the process's own name.
//!
//! A parent in another process, or in another service of this one, reached through
//! `traceparent` (a remote parent), is never inherited from: a Kafka consumer or an HTTP
//! server has the producer or the client as parent, which is the other service's span.
//!
//! With no services listed (a process that is one service) nothing is marked and everything is
//! exported under the one resource; only the `service.name` fields are taken off the spans,
//! since the resource says it already.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::future::join_all;
use opentelemetry::trace::{Span as _, SpanBuilder, SpanId, TraceContextExt, Tracer};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SdkTracer, Span, SpanData, SpanExporter, SpanProcessor};

/// The field (and span attribute) naming a span's service; the resource attribute it becomes.
pub(super) const SERVICE_NAME: &str = "service.name";

/// The span attribute `tracing-opentelemetry` gives the module path of the code that made it.
const MODULE_PATH: &str = "code.module.name";

/// The services sharing the process, and the service of each span that has started and not
/// yet ended, so that its children can take it.
#[derive(Debug)]
pub(super) struct Services {
    /// The services' names; a span's service is an index into this list.
    names: Vec<&'static str>,
    /// The crate of each service, as module paths spell it (`payment_svc` for `payment-svc`).
    crates: Vec<String>,
    /// Started spans of a known service, until they end. Only spans that are recorded (and so
    /// reach [`ForgetOnEnd`] when they end) are kept.
    live: Mutex<HashMap<SpanId, usize>>,
}

impl Services {
    /// The services sharing the process; none for a process that is one service.
    pub(super) fn new(names: &[&'static str]) -> Self {
        Self {
            names: names.to_vec(),
            crates: names.iter().map(|name| name.replace('-', "_")).collect(),
            live: Mutex::default(),
        }
    }

    fn live(&self) -> std::sync::MutexGuard<'_, HashMap<SpanId, usize>> {
        self.live.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn named(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|known| *known == name)
    }

    fn of_module(&self, module: &str) -> Option<usize> {
        let krate = module.split("::").next()?;
        self.crates.iter().position(|known| known == krate)
    }

    /// The service of the parent, if the parent is a started span of this process.
    fn of_parent(&self, parent: &Context) -> Option<usize> {
        let span = parent.span();
        let context = span.span_context();
        if !context.is_valid() || context.is_remote() {
            return None;
        }
        self.live().get(&context.span_id()).copied()
    }

    /// Decides the service of the span `builder` is about to start as a child of `parent`, and
    /// marks the span with it (rules in the module doc).
    fn mark(&self, builder: &mut SpanBuilder, parent: &Context) -> Option<usize> {
        let attributes = builder.attributes.get_or_insert_with(Vec::new);
        let mut of_module = None;
        for attribute in attributes.iter() {
            match attribute.key.as_str() {
                // Marked by the code that made it; a name not listed is no service's.
                SERVICE_NAME => return self.named(&attribute.value.as_str()),
                MODULE_PATH => of_module = self.of_module(&attribute.value.as_str()),
                _ => {}
            }
        }
        let service = of_module.or_else(|| self.of_parent(parent))?;
        attributes.push(KeyValue::new(SERVICE_NAME, self.names[service]));
        Some(service)
    }

    fn forget(&self, span: SpanId) {
        if !self.names.is_empty() {
            self.live().remove(&span);
        }
    }

    /// How many started spans are remembered (for tests: none once all have ended).
    #[cfg(test)]
    pub(super) fn remembered(&self) -> usize {
        self.live().len()
    }
}

/// The SDK's tracer, marking each span with its service as it starts. It is the tracer of the
/// `tracing` → OpenTelemetry layer, which starts a span only once its parent is final (the
/// parent set from `traceparent` headers is set before), so the mark sees the real parent.
#[derive(Debug)]
pub(super) struct ServiceTracer {
    inner: SdkTracer,
    services: Arc<Services>,
}

impl ServiceTracer {
    pub(super) fn new(inner: SdkTracer, services: Arc<Services>) -> Self {
        Self { inner, services }
    }
}

impl Tracer for ServiceTracer {
    type Span = Span;

    fn build_with_context(&self, mut builder: SpanBuilder, parent_cx: &Context) -> Span {
        if self.services.names.is_empty() {
            return self.inner.build_with_context(builder, parent_cx);
        }
        let service = self.services.mark(&mut builder, parent_cx);
        let span = self.inner.build_with_context(builder, parent_cx);
        if let Some(service) = service
            && span.is_recording()
        {
            self.services
                .live()
                .insert(span.span_context().span_id(), service);
        }
        span
    }
}

/// A span processor that forgets each span's service once the span has ended, before handing
/// the span on.
#[derive(Debug)]
pub(super) struct ForgetOnEnd<P> {
    services: Arc<Services>,
    inner: P,
}

impl<P> ForgetOnEnd<P> {
    pub(super) fn new(services: Arc<Services>, inner: P) -> Self {
        Self { services, inner }
    }
}

impl<P: SpanProcessor> SpanProcessor for ForgetOnEnd<P> {
    fn on_start(&self, span: &mut Span, cx: &Context) {
        self.inner.on_start(span, cx);
    }

    fn on_end(&self, span: SpanData) {
        self.services.forget(span.span_context.span_id());
        self.inner.on_end(span);
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// Exports each span under the resource of its service: one inner exporter per service, each
/// with the process's resource but the service's `service.name`, and one for spans of no
/// service with the process's resource as it is.
#[derive(Debug)]
pub(super) struct ServiceExporter<E> {
    /// The services, in the order of `exporters[1..]`.
    names: Vec<&'static str>,
    /// The exporter of spans of no service, then one per service.
    exporters: Vec<E>,
}

impl<E: SpanExporter> ServiceExporter<E> {
    /// An exporter for `names` (none: one resource for everything), with inner exporters made
    /// by `make`.
    pub(super) fn new<X>(
        names: &[&'static str],
        mut make: impl FnMut() -> Result<E, X>,
    ) -> Result<Self, X> {
        let exporters = (0..=names.len())
            .map(|_| make())
            .collect::<Result<_, X>>()?;
        Ok(Self {
            names: names.to_vec(),
            exporters,
        })
    }

    /// Takes the service mark off the span; returns the index of its exporter.
    fn take_mark(&self, attributes: &mut Vec<KeyValue>) -> usize {
        let Some(at) = attributes
            .iter()
            .position(|attribute| attribute.key.as_str() == SERVICE_NAME)
        else {
            return 0;
        };
        let mark = attributes.remove(at);
        let name = mark.value.as_str();
        self.names
            .iter()
            .position(|known| *known == name)
            .map_or(0, |service| service + 1)
    }

    fn each(&self, call: impl Fn(&E) -> OTelSdkResult) -> OTelSdkResult {
        // Every exporter is asked even when one fails; the first failure is reported.
        let results: Vec<OTelSdkResult> = self.exporters.iter().map(call).collect();
        results.into_iter().collect()
    }
}

impl<E: SpanExporter> SpanExporter for ServiceExporter<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let mut parts: Vec<Vec<SpanData>> = self.exporters.iter().map(|_| Vec::new()).collect();
        for mut span in batch {
            let part = self.take_mark(&mut span.attributes);
            parts[part].push(span);
        }
        let sends = parts
            .into_iter()
            .zip(&self.exporters)
            .filter(|(part, _)| !part.is_empty())
            .map(|(part, exporter)| exporter.export(part));
        join_all(sends).await.into_iter().collect()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.each(|exporter| exporter.shutdown_with_timeout(timeout))
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.each(SpanExporter::force_flush)
    }

    fn set_resource(&mut self, resource: &Resource) {
        let Some((unmarked, services)) = self.exporters.split_first_mut() else {
            return;
        };
        unmarked.set_resource(resource);
        for (exporter, name) in services.iter_mut().zip(&self.names) {
            exporter.set_resource(&with_service_name(resource, name));
        }
    }
}

/// `resource` with `service.name` set to `name`.
fn with_service_name(resource: &Resource, name: &'static str) -> Resource {
    let attributes = resource
        .iter()
        .map(|(key, value)| KeyValue::new(key.clone(), value.clone()));
    let builder = match resource.schema_url() {
        Some(url) => Resource::builder_empty().with_schema_url(attributes, url.to_owned()),
        None => Resource::builder_empty().with_attributes(attributes),
    };
    builder.with_service_name(name).build()
}

#[cfg(test)]
mod tests;
