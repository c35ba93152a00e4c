//! Span status: set on purpose where an operation fails, never inferred from log lines.
//!
//! OpenTelemetry leaves a span's status `Unset` unless the operation failed, and then wants
//! `Error` with a description ("Recording errors", trace API §Set Status). The bridge from
//! `tracing` can also turn any event with an `error` field into an `Error` status; that is
//! switched off (see `install`), because a warning about an attempt that is retried and then
//! succeeds, or a 4xx answer logged with its reason, is not a failed operation.
//!
//! A span whose status may be set declares both fields, empty, when it is made:
//! `otel.status_code = Empty, otel.status_description = Empty` (`tracing` records only the
//! fields a span declared).

use std::fmt::Display;

/// Marks `span` failed: status `Error`, with `description` (what went wrong, for a person
/// reading the trace).
pub fn mark_error(span: &tracing::Span, description: impl Display) {
    // The code first: before the span is exported, the last status recorded wins, and the
    // description alone already means `Error`.
    span.record("otel.status_code", "ERROR");
    span.record("otel.status_description", description.to_string());
}
