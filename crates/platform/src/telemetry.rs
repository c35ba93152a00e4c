//! Logging set-up shared by every binary.
//!
//! Logs go to stderr (stdout is reserved for the one machine-readable `ready` line), filtered
//! by `RUST_LOG` (default `info`), human-readable unless `LOG_FORMAT=json`. JSON lines carry the
//! fields of the enclosing spans, so a handler's lines carry `order_id` and `correlation_id`.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt;
use tracing_subscriber::prelude::*;

/// Installs the global subscriber; later calls do nothing (several services in one process).
pub fn init() {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,rdkafka=warn"));
    let json = std::env::var("LOG_FORMAT").is_ok_and(|format| format.eq_ignore_ascii_case("json"));
    let registry = tracing_subscriber::registry().with(filter);
    let result = if json {
        registry
            .with(
                fmt::layer()
                    .json()
                    .with_current_span(true)
                    .with_span_list(true)
                    .with_writer(std::io::stderr),
            )
            .try_init()
    } else {
        registry
            .with(fmt::layer().with_writer(std::io::stderr))
            .try_init()
    };
    // Already installed: the first caller's choice stands.
    drop(result);
}
