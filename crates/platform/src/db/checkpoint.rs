//! SQLite's WAL checkpoints, mostly off the writer's thread.
//!
//! SQLite checkpoints inside the commit that takes the WAL past 1,000 pages: the writer, and
//! every transaction queued behind it, waits while pages are copied into the database file and
//! that file is synced. This thread runs a passive checkpoint every [`INTERVAL`], which neither
//! waits for nor blocks the writer and the readers, so by the time the writer's own checkpoint
//! comes, most of the WAL is in the database file already and it has little left to copy and
//! sync.
//!
//! The WAL starts over only when the writer begins a transaction while nothing in it is left to
//! copy, which under constant writes a passive checkpoint from another connection almost never
//! leaves behind: the WAL would grow without end. So once the WAL holds [`RESTART_FRAMES`] or
//! more, this thread follows its passive checkpoint with a `RESTART` one. That has little left
//! to copy (what was committed since the passive one); it holds new writers back while it
//! copies it and waits (briefly: reads are short) until the readers read from the database
//! file, and the next writer starts the WAL over.
//! SQLite's own checkpoint in the writer's commits stays as it was, as a backstop.

use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::Duration;

use crate::PlatformError;
use crate::sql::{Access, Connection, DbTarget};

/// How often the WAL is copied into the database file, unless `DB_CHECKPOINT_MS` says otherwise
/// (0: never; SQLite's checkpoints in the writer's commits only).
const INTERVAL: Duration = Duration::from_millis(20);

/// The WAL size, in frames (pages), from which a checkpoint makes the WAL start over: SQLite's
/// own threshold.
const RESTART_FRAMES: i64 = 1_000;

/// How long a `RESTART` checkpoint waits for the readers before it gives up until next time.
const RESTART_WAIT: Duration = Duration::from_millis(20);

/// Starts the checkpointing thread of the SQLite database at `target`; it stops when the
/// returned sender (held by every clone of the `Db`) is dropped.
pub(super) fn start(target: &DbTarget) -> Result<Sender<()>, PlatformError> {
    let conn = Connection::open(target, Access::ReadWrite)?;
    if let Some(sqlite) = conn.sqlite() {
        sqlite
            .busy_timeout(RESTART_WAIT)
            .map_err(crate::sql::SqlError::from)?;
    }
    let (stop, stopped) = mpsc::channel();
    let every = crate::config::env_millis("DB_CHECKPOINT_MS", INTERVAL)?;
    std::thread::Builder::new()
        .name("db-checkpoint".to_owned())
        .spawn(move || run(&conn, &stopped, every))?;
    Ok(stop)
}

fn run(conn: &Connection, stopped: &Receiver<()>, every: Duration) {
    if every.is_zero() {
        return;
    }
    loop {
        match stopped.recv_timeout(every) {
            Err(RecvTimeoutError::Timeout) => {}
            // The database handle is gone.
            Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
        }
        match checkpoint(conn, "PASSIVE") {
            Ok((in_wal, _)) if in_wal >= RESTART_FRAMES => {
                if let Err(error) = checkpoint(conn, "RESTART") {
                    tracing::warn!(%error, "Could not restart the WAL.");
                }
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "Could not checkpoint the WAL."),
        }
    }
}

/// Runs a checkpoint in `mode`; the frames in the WAL and those copied, as SQLite reports them
/// (-1 and -1 when it did not run: another checkpoint, or readers, were in the way).
fn checkpoint(conn: &Connection, mode: &str) -> crate::sql::Result<(i64, i64)> {
    conn.conn()
        .query_row(&format!("PRAGMA wal_checkpoint({mode})"), &[], |row| {
            Ok((row.get::<i64>(1)?, row.get::<i64>(2)?))
        })
}
