//! The provider notifications already applied, by id: a webhook is retried until answered and
//! may reach any replica, and the same outcome may also be learnt by asking again.

use events::OrderId;
use platform::params;
use platform::sql::{Conn, Result};

/// Records a provider notification id; `false` if it was seen before (by this replica or
/// another: the second insert waits for the first one's commit).
pub(crate) fn record_notification(
    tx: &Conn<'_>,
    notification_id: &str,
    order_id: OrderId,
) -> Result<bool> {
    let inserted = tx.execute(
        "INSERT INTO provider_notifications (notification_id, order_id, received_at) VALUES (?1, ?2, ?3)
         ON CONFLICT (notification_id) DO NOTHING",
        params![notification_id, order_id, tx.now()],
    )?;
    Ok(inserted == 1)
}
