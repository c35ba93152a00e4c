//! What the operator console shows above its list: how many orders are in each status, why the
//! cancelled ones were cancelled, and how many sagas run longer than they should ("stuck").
//!
//! Each count is read from an index alone (see [`super::CONSOLE_MIGRATION`]): per status from
//! `orders_by_status`, per reason from `orders_by_reason`, the stuck and the oldest open ones from
//! the partial index of open sagas, which stays small however many orders ended.

use chrono::{DateTime, Utc};

use events::CancellationReason;
use platform::params;
use platform::sql::{Conn, Result};

use crate::saga::OrderStatus;

/// The console's counts at one moment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Overview {
    /// Orders per status, every status listed (zero included), in saga order.
    pub(crate) by_status: Vec<(OrderStatus, i64)>,
    /// Cancelled orders per reason, every reason listed.
    pub(crate) by_reason: Vec<(CancellationReason, i64)>,
    /// Open sagas accepted before the "stuck" threshold.
    pub(crate) stuck: i64,
    /// When the oldest open saga was accepted, if there is one.
    pub(crate) oldest_open: Option<DateTime<Utc>>,
}

/// The counts, with every saga accepted before `stuck_before` and still open counted as stuck.
pub(crate) fn overview(conn: &Conn<'_>, stuck_before: DateTime<Utc>) -> Result<Overview> {
    let counted: Vec<(OrderStatus, i64)> = conn.query_map(
        "SELECT status, COUNT(*) FROM orders GROUP BY status",
        params![],
        |row| Ok((row.get(0)?, row.get(1)?)),
    )?;
    let by_status = OrderStatus::ALL
        .iter()
        .map(|status| {
            let count = counted
                .iter()
                .find(|(counted, _)| counted == status)
                .map_or(0, |(_, count)| *count);
            (*status, count)
        })
        .collect();
    let reasons: Vec<(Option<String>, i64)> = conn.query_map(
        "SELECT cancellation_reason, COUNT(*) FROM orders WHERE cancellation_reason IS NOT NULL \
         GROUP BY cancellation_reason",
        params![],
        |row| Ok((row.get(0)?, row.get(1)?)),
    )?;
    let by_reason = CancellationReason::ALL
        .iter()
        .map(|reason| {
            let count = reasons
                .iter()
                .filter(|(text, _)| text.as_deref() == Some(reason.as_str()))
                .map(|(_, count)| *count)
                .sum();
            (*reason, count)
        })
        .collect();
    let stuck = super::count_open_accepted_before(conn, stuck_before)?;
    let oldest_open = conn.query_row(
        "SELECT MIN(created_at) FROM orders WHERE status NOT IN ('confirmed', 'cancelled')",
        params![],
        |row| row.get(0),
    )?;
    Ok(Overview {
        by_status,
        by_reason,
        stuck,
        oldest_open,
    })
}
