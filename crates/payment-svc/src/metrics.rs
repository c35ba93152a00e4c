//! The metrics payment-svc records besides the platform's ([`platform::metrics::PLATFORM`]):
//! their `# HELP` lines.

use platform::metrics::{Description, Kind};

use crate::provider::{BREAKER_REJECTIONS, BREAKER_STATE};
use crate::webhook::{WEBHOOKS_ACCEPTED, WEBHOOKS_REFUSED};

/// The descriptions given to the recorder when the routes are built.
pub(crate) const DESCRIPTIONS: &[Description] = &[
    Description {
        name: WEBHOOKS_ACCEPTED,
        kind: Kind::Counter,
        unit: None,
        help: "Payment provider webhooks accepted (applied, or recognised as repeats).",
    },
    Description {
        name: WEBHOOKS_REFUSED,
        kind: Kind::Counter,
        unit: None,
        help: "Payment provider webhooks refused, by reason (signature, body, unavailable).",
    },
    Description {
        name: BREAKER_STATE,
        kind: Kind::Gauge,
        unit: None,
        help: "State of the payment provider's circuit breaker: 0 closed, 1 half-open, 2 open.",
    },
    Description {
        name: BREAKER_REJECTIONS,
        kind: Kind::Counter,
        unit: None,
        help: "Payment provider requests refused because the circuit breaker was open.",
    },
];
