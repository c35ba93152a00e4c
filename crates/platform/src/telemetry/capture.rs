//! The spans a piece of code leaves, as an OpenTelemetry backend would receive them: the
//! `tracing` → OpenTelemetry layer that [`super::init`] installs, over an exporter that keeps
//! what it is given in memory.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use tracing::subscriber::DefaultGuard;
use tracing_subscriber::prelude::*;

/// Exports every span that ends on this thread while it lives (it is the thread's default
/// subscriber until dropped). A `current_thread` runtime (what `#[tokio::test]` builds) runs
/// spawned tasks on the same thread, so their spans are captured too.
pub(crate) struct SpanCapture {
    /// Where each span goes the moment it ends (a simple processor: no batching to wait for).
    exporter: InMemorySpanExporter,
    /// Kept so that the tracer's spans have a provider to go to.
    _provider: SdkTracerProvider,
    /// Restores the previous default subscriber when the capture is dropped.
    _default: DefaultGuard,
}

impl SpanCapture {
    /// Starts capturing on this thread.
    pub(crate) fn start() -> Self {
        let exporter = InMemorySpanExporter::default();
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(exporter.clone())
            .build();
        let default = tracing_subscriber::registry()
            .with(super::bridge(provider.tracer("capture")))
            .set_default();
        Self {
            exporter,
            _provider: provider,
            _default: default,
        }
    }

    /// The spans ended so far, in the order they ended.
    pub(crate) fn finished(&self) -> Vec<SpanData> {
        self.exporter
            .get_finished_spans()
            .expect("the in-memory exporter is not shut down")
    }
}

/// The value of `span`'s attribute `key`, as text (a number as its digits).
pub(crate) fn attribute(span: &SpanData, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|attribute| attribute.key.as_str() == key)
        .map(|attribute| attribute.value.as_str().into_owned())
}
