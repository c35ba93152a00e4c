//! The fields of the human-readable log format.
//!
//! Spans carry the attributes of OpenTelemetry's conventions for the trace (`otel.name`,
//! `messaging.system`, `http.request.method`, …). Written out in full they made every log line
//! of a consumed event ~900 bytes, of which the reader needs a few: here they are left out, but
//! for the handful a person reads a line for, under a short name. Every other field
//! (`order_id`, `correlation_id`, `request_id`, `event_type`, `webhook.id`, …) is written as it
//! is. The JSON format keeps every field.
//!
//! It is also cheaper: the fields of a span are written out when the span starts, for every
//! span, whether or not anything inside it logs.

use std::fmt;

use tracing::field::{Field, Visit};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::FormatFields;
use tracing_subscriber::fmt::format::Writer;

/// Writes `name=value` pairs separated by spaces, the event's message first and bare.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct TextFields;

/// The namespaces of OpenTelemetry's attribute conventions that spans here use.
const CONVENTIONS: &[&str] = &[
    "otel.",
    "messaging.",
    "http.",
    "url.",
    "server.",
    "client.",
    "network.",
    "service.",
];

/// The name a field is logged under, or `None` to leave it out of the text log.
fn logged_name(name: &'static str) -> Option<&'static str> {
    if !CONVENTIONS.iter().any(|prefix| name.starts_with(prefix)) {
        return Some(name);
    }
    match name {
        "messaging.destination.name" => Some("topic"),
        "messaging.destination.partition.id" => Some("partition"),
        "messaging.kafka.offset" => Some("offset"),
        "messaging.message.id" => Some("event_id"),
        "http.request.method" => Some("method"),
        "http.route" => Some("route"),
        "http.response.status_code" => Some("status"),
        _ => None,
    }
}

impl<'writer> FormatFields<'writer> for TextFields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'writer>, fields: R) -> fmt::Result {
        let mut visitor = Visitor {
            writer,
            first: true,
            result: Ok(()),
        };
        fields.record(&mut visitor);
        visitor.result
    }

    fn add_fields(
        &self,
        current: &'writer mut tracing_subscriber::fmt::FormattedFields<Self>,
        fields: &tracing::span::Record<'_>,
    ) -> fmt::Result {
        let mut visitor = Visitor {
            first: current.fields.is_empty(),
            writer: current.as_writer(),
            result: Ok(()),
        };
        fields.record(&mut visitor);
        visitor.result
    }
}

struct Visitor<'writer> {
    writer: Writer<'writer>,
    /// Nothing written yet: no separator before the next field.
    first: bool,
    result: fmt::Result,
}

impl Visitor<'_> {
    fn separate(&mut self) -> fmt::Result {
        if self.first {
            self.first = false;
            Ok(())
        } else {
            self.writer.write_char(' ')
        }
    }
}

impl Visit for Visitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            // A message given as a string, written bare like any other message.
            self.record_debug(field, &format_args!("{value}"));
        } else {
            // As the default format: strings quoted, so a value with spaces stays one field.
            self.record_debug(field, &value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if self.result.is_err() {
            return;
        }
        let name = field.name();
        self.result = if name == "message" {
            self.separate()
                .and_then(|()| write!(self.writer, "{value:?}"))
        } else if name.starts_with("log.") {
            // Metadata of records bridged from the `log` crate, shown by the line's target.
            Ok(())
        } else if let Some(name) = logged_name(name) {
            self.separate()
                .and_then(|()| write!(self.writer, "{name}={value:?}"))
        } else {
            Ok(())
        };
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::fmt::MakeWriter;
    use tracing_subscriber::prelude::*;

    use super::*;

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("not poisoned").extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Captured {
        type Writer = Captured;

        fn make_writer(&'a self) -> Self::Writer {
            self.clone()
        }
    }

    #[test]
    fn a_line_keeps_the_plain_fields_and_the_short_names_and_drops_the_other_attributes() {
        let captured = Captured::default();
        let subscriber = tracing_subscriber::registry().with(
            tracing_subscriber::fmt::layer()
                .fmt_fields(TextFields)
                .with_ansi(false)
                .without_time()
                .with_writer(captured.clone()),
        );
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!(
                "process",
                otel.name = "process payments",
                otel.kind = "consumer",
                messaging.system = "kafka",
                messaging.destination.name = "payments",
                messaging.kafka.offset = 7,
                order_id = "ord_1",
                http.response.status_code = tracing::field::Empty,
                webhook.id = "evt_1",
                service.name = "payment-svc",
            );
            span.record("http.response.status_code", 204);
            let _entered = span.enter();
            tracing::info!(from = "pending", "Order status changed.");
        });
        let line =
            String::from_utf8(captured.0.lock().expect("not poisoned").clone()).expect("UTF-8");
        assert_eq!(
            line.trim(),
            "INFO process{topic=\"payments\" offset=7 order_id=\"ord_1\" webhook.id=\"evt_1\" \
             status=204}: platform::telemetry::text::tests: Order status changed. \
             from=\"pending\""
        );
    }
}
