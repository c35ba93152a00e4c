//! The metrics order-api records besides the platform's ([`platform::metrics::PLATFORM`]):
//! their names and `# HELP` lines.

use platform::metrics::{Description, Kind};

use crate::saga::{SAGA_DURATION, deadline::SAGAS_TIMED_OUT};

/// Sagas neither confirmed nor cancelled (a gauge, counted at scrape time).
pub(crate) const SAGAS_IN_FLIGHT: &str = "sagas_in_flight";
/// Orders stored, whatever their status (a gauge, counted at scrape time: not `_total`, which
/// Prometheus keeps for counters).
pub(crate) const ORDERS: &str = "orders";
/// Sagas still open 10 s after their order was accepted (a gauge, counted at scrape time).
pub(crate) const SAGAS_OPEN_LONGER_THAN_10S: &str = "sagas_open_longer_than_10s";

/// The descriptions given to the recorder when the routes are built.
pub(crate) const DESCRIPTIONS: &[Description] = &[
    Description {
        name: SAGAS_IN_FLIGHT,
        kind: Kind::Gauge,
        unit: None,
        help: "Orders whose saga has not ended (neither confirmed nor cancelled).",
    },
    Description {
        name: ORDERS,
        kind: Kind::Gauge,
        unit: None,
        help: "Orders stored, whatever their status.",
    },
    Description {
        name: SAGAS_OPEN_LONGER_THAN_10S,
        kind: Kind::Gauge,
        unit: None,
        help: "Orders accepted more than 10 seconds ago whose saga has not ended.",
    },
    Description {
        name: SAGA_DURATION,
        kind: Kind::Histogram,
        unit: Some(metrics::Unit::Seconds),
        help: "Time from an order's acceptance to its saga's end, in seconds, by final status and outcome.",
    },
    Description {
        name: SAGAS_TIMED_OUT,
        kind: Kind::Counter,
        unit: None,
        help: "Sagas cancelled because they passed their deadline.",
    },
];
