//! Telling the other replicas of a service, as it commits, that something changed.
//!
//! Some state lives in the process by nature: the open event streams and waiting requests of
//! order-api are woken by the process that committed a change. With several replicas the
//! change may be committed by another one. On Postgres, [`announce`] sends a notification
//! (`pg_notify`) that is delivered when — and only if — the transaction commits, and [`listen`]
//! hands those of the other replicas to this one. On SQLite (one process per database) there
//! is no other replica: [`announce`] does nothing and [`listen`] gives nothing.
//!
//! Notifications are hints, not a log: one can be missed while the listener reconnects, so the
//! listener also says when it (re)connected, and the receiver then looks at the database.

use std::sync::OnceLock;

use tokio::sync::mpsc;

use crate::Db;
use crate::params;
use crate::sql::{Conn, DbTarget, Dialect, Result};

/// Tells this process's own notifications apart from the other replicas'.
fn origin() -> &'static str {
    static ORIGIN: OnceLock<String> = OnceLock::new();
    ORIGIN.get_or_init(|| uuid::Uuid::new_v4().simple().to_string())
}

/// Notifies the other replicas listening on `channel` of `payload` when `tx` commits.
pub fn announce(tx: &Conn<'_>, channel: &'static str, payload: &str) -> Result<()> {
    if tx.dialect() == Dialect::Postgres {
        let message = format!("{}|{payload}", origin());
        tx.query_row(
            "SELECT pg_notify(?1, ?2)::text",
            params![channel, message],
            |_| Ok(()),
        )?;
    }
    Ok(())
}

/// What a listener hands on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Notice {
    /// Another replica committed a change announced with this payload.
    Changed(String),
    /// Notices may have been missed (the listener (re)connected): look at the database.
    MayHaveMissed,
}

/// The notices of the other replicas on `channel`, on Postgres; `None` on SQLite. The listener
/// runs on a thread of its own, with its own connection, until the receiver is dropped.
pub fn listen(db: &Db, channel: &'static str) -> Option<mpsc::UnboundedReceiver<Notice>> {
    let DbTarget::Postgres(url) = db.target().clone() else {
        return None;
    };
    let (sender, receiver) = mpsc::unbounded_channel();
    let spawned = std::thread::Builder::new()
        .name("db-listen".to_owned())
        .spawn(move || {
            let own = format!("{}|", origin());
            let wanted = sender.clone();
            crate::sql::listen(
                &url,
                channel,
                |payload| match payload {
                    None => sender.send(Notice::MayHaveMissed).is_ok(),
                    Some(payload) if payload.starts_with(&own) => true,
                    Some(payload) => {
                        let payload = payload
                            .split_once('|')
                            .map_or(payload.as_str(), |(_, rest)| rest)
                            .to_owned();
                        sender.send(Notice::Changed(payload)).is_ok()
                    }
                },
                || !wanted.is_closed(),
            );
        });
    if let Err(error) = spawned {
        tracing::error!(%error, channel, "Cannot start the notification listener.");
        return None;
    }
    Some(receiver)
}
