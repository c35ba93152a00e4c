//! SQLite's WAL checkpoints, mostly off the writer's thread.
//!
//! SQLite checkpoints inside the commit that takes the WAL past 1,000 pages: the writer, and
//! every transaction queued behind it, waits while pages are copied into the database file and
//! that file is synced (unless syncs are off). This thread runs a passive checkpoint every [`INTERVAL`], which neither
//! waits for nor blocks the writer and the readers, so by the time the writer's own checkpoint
//! comes, most of the WAL is in the database file already and it has little left to copy and
//! sync.
//!
//! The WAL starts over only when the writer begins a transaction while nothing in it is left to
//! copy, which under constant writes a passive checkpoint from another connection almost never
//! leaves behind: the WAL would grow without end. So once a passive checkpoint has copied a WAL
//! of [`RESTART_FRAMES`] or more, this thread asks for a `RESTART` one. That has little or
//! nothing left to copy; it holds new writers back while it waits (briefly: reads are short)
//! until the readers read from the database file, and the next writer starts the WAL over.
//! SQLite's own checkpoint in the writer's commits stays as it was, as a backstop.

use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::Duration;

use crate::PlatformError;
use crate::sql::{Access, Connection, DbTarget};

/// How often the WAL is copied into the database file, unless `DB_CHECKPOINT_MS` says otherwise
/// (0: never; SQLite's checkpoints in the writer's commits only).
pub(super) const INTERVAL: Duration = Duration::from_millis(20);

/// The WAL size, in frames (pages), from which a checkpoint makes the WAL start over: SQLite's
/// own threshold.
const RESTART_FRAMES: i64 = 1_000;

/// How long a `RESTART` checkpoint waits for the readers (holding new writers back meanwhile)
/// before it gives up.
const RESTART_WAIT: Duration = Duration::from_millis(20);

/// Rounds without a `RESTART` after one gave up: a long reader costs the writer at most
/// [`RESTART_WAIT`] in this many rounds.
const RESTART_BACKOFF: u32 = 50;

/// Starts the checkpointing thread `name` of the SQLite database at `target`, every `every`
/// unless it is zero; it stops when the returned sender (held by every clone of the `Db`) is dropped.
/// Its checkpoints sync as the service's connections do (`synchronous`): the WAL before copying
/// and the database file after, except with [`super::Synchronous::Off`].
pub(super) fn start(
    target: &DbTarget,
    every: Duration,
    name: String,
    synchronous: super::Synchronous,
) -> Result<Option<Sender<()>>, PlatformError> {
    if every.is_zero() {
        return Ok(None);
    }
    let conn = Connection::open(target, Access::ReadWrite)?;
    if let Some(sqlite) = conn.sqlite() {
        sqlite
            .busy_timeout(RESTART_WAIT)
            .map_err(crate::sql::SqlError::from)?;
        sqlite
            .pragma_update(None, "synchronous", synchronous.pragma())
            .map_err(crate::sql::SqlError::from)?;
    }
    let (stop, stopped) = mpsc::channel();
    std::thread::Builder::new()
        .name(name)
        .spawn(move || run(&conn, &stopped, every))?;
    Ok(Some(stop))
}

fn run(conn: &Connection, stopped: &Receiver<()>, every: Duration) {
    // Rounds to go before the next `RESTART` may be tried.
    let mut restart_in: u32 = 0;
    loop {
        match stopped.recv_timeout(every) {
            Err(RecvTimeoutError::Timeout) => {}
            // The database handle is gone.
            Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
        }
        restart_in = restart_in.saturating_sub(1);
        match checkpoint(conn, "PASSIVE") {
            // Everything is copied: the `RESTART` has only to wait for the readers.
            Ok(done) if done.in_wal >= RESTART_FRAMES && done.copied == done.in_wal => {
                if restart_in > 0 {
                    continue;
                }
                match checkpoint(conn, "RESTART") {
                    Ok(restart) if restart.busy => {
                        // A reader older than `RESTART_WAIT` (a long query, a `sqlite3` shell):
                        // the writer was held back that long. Not again for a while.
                        tracing::debug!(
                            in_wal = restart.in_wal,
                            "The WAL could not start over yet."
                        );
                        restart_in = RESTART_BACKOFF;
                    }
                    Ok(_) => {}
                    Err(error) => tracing::warn!(%error, "Could not restart the WAL."),
                }
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "Could not checkpoint the WAL."),
        }
    }
}

/// What a checkpoint reported.
struct Checkpointed {
    /// It could not finish: another checkpoint, the writer or a reader was in the way.
    busy: bool,
    /// Frames in the WAL.
    in_wal: i64,
    /// Frames of those already in the database file.
    copied: i64,
}

/// Runs a checkpoint in `mode` (`PASSIVE` or `RESTART`).
fn checkpoint(conn: &Connection, mode: &str) -> crate::sql::Result<Checkpointed> {
    conn.conn()
        .query_row(&format!("PRAGMA wal_checkpoint({mode})"), &[], |row| {
            Ok(Checkpointed {
                busy: row.get::<i64>(0)? != 0,
                in_wal: row.get(1)?,
                copied: row.get(2)?,
            })
        })
}
