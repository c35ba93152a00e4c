//! The thread that serves a service's reads, on a read-only connection of its own beside the
//! writer's: reads never wait behind a batch of writes (SQLite's WAL lets them run alongside;
//! on Postgres it is simply another connection).

use super::queue::{Linger, Queue};
use super::writer::Job;
use crate::sql::{Connection, ErrorKind, SqlError};

/// The reader's loop: runs read jobs one after the other until every handle is gone.
pub(super) fn run(conn: Connection, jobs: Queue) {
    let mut linger = Linger::new();
    loop {
        let job = match jobs.lock() {
            Ok(queue) => match queue.next(&mut linger) {
                Ok(job) => job,
                Err(_) => return,
            },
            Err(_) => return,
        };
        match job {
            Job::Wake => {}
            Job::Call(f) => {
                f(conn.conn());
                if conn.in_transaction() && conn.rollback().is_err() {
                    tracing::error!("Could not end a transaction left open by a read.");
                }
            }
            // Never sent here; refusing keeps a mistake loud instead of writing through a
            // read-only connection.
            Job::Write(write) => write.answer(Err(&SqlError::new(
                ErrorKind::ReadOnly,
                "write sent to the read-only connection",
            ))),
        }
    }
}
