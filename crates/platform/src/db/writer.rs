//! The thread that owns a service's SQLite connection, and its group commit.
//!
//! Every database call of a service runs here, one after the other (SQLite has one writer at a
//! time anyway). Write transactions that queue up while one runs are committed **together**:
//! the writer takes every transaction waiting at that moment, runs each in its own savepoint
//! inside one `BEGIN IMMEDIATE … COMMIT`, and answers all of them once the commit is known.
//! Under load this turns dozens of commits (each a WAL append, a lock round trip and a thread
//! hand-off) into one, without adding latency when idle: a lone transaction is committed at
//! once. A transaction that fails is rolled back to its savepoint and does not affect the others
//! in its batch; a caller only ever hears `Ok` after its changes are durably committed.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, TryRecvError};

use rusqlite::{Connection, Transaction, TransactionBehavior, ffi};
use tokio::sync::Notify;

/// Most transactions committed together; bounds how long one batch holds the write lock.
const MAX_BATCH: usize = 256;

/// What a caller's thread hands to the writer.
pub(super) enum Job {
    /// Runs with the bare connection, outside any batch (reads, or work that manages its own
    /// transaction).
    Call(Box<dyn FnOnce(&mut Connection) + Send>),
    /// Runs inside a batch's write transaction.
    Write(Box<dyn WriteJob>),
}

/// A write transaction waiting for its turn.
pub(super) trait WriteJob: Send {
    /// Runs the caller's closure; says whether its changes are kept (`Ok`) or must be undone,
    /// and how to answer the caller once the batch's fate is known.
    fn run(self: Box<Self>, tx: &Transaction<'_>) -> Ran;
    /// Answers the caller without running: the batch could not even start.
    fn fail(self: Box<Self>, error: &rusqlite::Error);
}

/// The result of running one [`WriteJob`].
pub(super) struct Ran {
    /// The closure succeeded: keep its changes.
    pub(super) keep: bool,
    /// Answers the caller with the batch's outcome (`Ok` = committed).
    pub(super) answer: Answer,
}

/// A write transaction whose closure `f` returns `Result<T, E>`; the answer goes to `reply`.
pub(super) struct Write<T, E, F> {
    pub(super) f: F,
    pub(super) reply: tokio::sync::oneshot::Sender<std::thread::Result<Result<T, E>>>,
    /// The caller's span, so that log lines written inside keep its fields.
    pub(super) span: tracing::Span,
}

impl<T, E, F> WriteJob for Write<T, E, F>
where
    T: Send + 'static,
    E: From<rusqlite::Error> + Send + 'static,
    F: FnOnce(&Transaction<'_>) -> Result<T, E> + Send + 'static,
{
    fn run(self: Box<Self>, tx: &Transaction<'_>) -> Ran {
        let Self { f, reply, span } = *self;
        let result = {
            let _entered = span.enter();
            catch_unwind(AssertUnwindSafe(|| f(tx)))
        };
        match result {
            Ok(Ok(value)) => Ran {
                keep: true,
                answer: Box::new(move |batch| {
                    let answer = batch.map(|()| value).map_err(|error| E::from(copy(error)));
                    // The caller may have gone away (its request was cancelled): nothing to do.
                    let _ = reply.send(Ok(answer));
                }),
            },
            Ok(Err(error)) => Ran {
                keep: false,
                // The closure may have failed because of what an earlier transaction of the
                // batch wrote (a key it found taken, say). If that earlier work is then lost,
                // the failure is not to be trusted either: the caller gets the batch's error,
                // which is transient, and tries again.
                answer: Box::new(move |batch| {
                    let answer = match batch {
                        Ok(()) => Err(error),
                        Err(lost) => Err(E::from(copy(lost))),
                    };
                    let _ = reply.send(Ok(answer));
                }),
            },
            Err(panic) => Ran {
                keep: false,
                answer: Box::new(move |_| {
                    let _ = reply.send(Err(panic));
                }),
            },
        }
    }

    fn fail(self: Box<Self>, error: &rusqlite::Error) {
        let _ = self.reply.send(Ok(Err(E::from(copy(error)))));
    }
}

/// The writer's loop: runs until every [`super::Db`] handle is gone.
pub(super) fn run(mut conn: Connection, jobs: Receiver<Job>, committed: Arc<Notify>) {
    let mut next = None;
    loop {
        let job = match next.take() {
            Some(job) => job,
            None => match jobs.recv() {
                Ok(job) => job,
                Err(_) => return,
            },
        };
        match job {
            Job::Call(f) => {
                f(&mut conn);
                if !conn.is_autocommit() {
                    // A call left a transaction open: every later batch would fail to begin.
                    tracing::error!("A database call left a transaction open; rolling it back.");
                    if let Err(error) = conn.execute_batch("ROLLBACK") {
                        tracing::error!(%error, "Could not roll the open transaction back.");
                    }
                }
            }
            Job::Write(first) => {
                let mut batch = vec![first];
                // Take what is already waiting, no more: the batch never waits for company.
                while batch.len() < MAX_BATCH {
                    match jobs.try_recv() {
                        Ok(Job::Write(write)) => batch.push(write),
                        Ok(call) => {
                            next = Some(call);
                            break;
                        }
                        Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
                    }
                }
                commit_batch(&mut conn, batch, &committed);
            }
        }
    }
}

/// The reader's loop: runs read jobs one after the other until every handle is gone.
pub(super) fn run_reads(mut conn: Connection, jobs: Receiver<Job>) {
    while let Ok(job) = jobs.recv() {
        match job {
            Job::Call(f) => f(&mut conn),
            // Never sent here; refusing keeps a mistake loud instead of writing through a
            // read-only connection.
            Job::Write(write) => write.fail(&rusqlite::Error::SqliteFailure(
                ffi::Error::new(ffi::SQLITE_READONLY),
                Some("write sent to the read-only connection".to_owned()),
            )),
        }
    }
}

/// Runs `batch` in one transaction, each job in its own savepoint, and answers every job once
/// the transaction's fate is known.
fn commit_batch(conn: &mut Connection, batch: Vec<Box<dyn WriteJob>>, committed: &Notify) {
    let mut jobs = batch.into_iter();
    loop {
        let Some(first) = jobs.next() else { return };
        let tx = match conn.transaction_with_behavior(TransactionBehavior::Immediate) {
            Ok(tx) => tx,
            Err(error) => {
                first.fail(&error);
                jobs.for_each(|job| job.fail(&error));
                return;
            }
        };
        // A lone transaction needs no savepoint: failing, it rolls back the whole batch.
        let savepoint = jobs.len() > 0;
        let mut answers: Vec<Answer> = Vec::new();
        let mut kept = 0_usize;
        let mut lost = None;
        for job in std::iter::once(first).chain(jobs.by_ref()) {
            if savepoint && let Err(error) = statement(&tx, "SAVEPOINT job") {
                // The transaction cannot be trusted any more (SQLite may have rolled it back):
                // give up on this batch, go on with a new one.
                job.fail(&error);
                lost = Some(error);
                break;
            }
            let ran = job.run(&tx);
            answers.push(ran.answer);
            if tx.is_autocommit() {
                // SQLite rolled the whole transaction back (I/O error, disk full, …): everything
                // this batch did so far is gone.
                lost = Some(lost_batch());
                break;
            }
            if savepoint {
                let undone = if ran.keep {
                    Ok(())
                } else {
                    statement(&tx, "ROLLBACK TO job")
                };
                if let Err(error) = undone.and_then(|()| statement(&tx, "RELEASE job")) {
                    // The savepoint cannot be closed: the transaction cannot be trusted.
                    lost = Some(error);
                    break;
                }
            }
            kept += usize::from(ran.keep);
        }
        if let Some(error) = lost {
            // Dropping the transaction rolls back whatever is left of it.
            drop(tx);
            answers.into_iter().for_each(|answer| answer(Err(&error)));
            continue;
        }
        if kept == 0 {
            // Nothing to keep: undo, and every job hears its own failure.
            if let Err(error) = tx.rollback() {
                tracing::warn!(%error, "Could not roll back a failed transaction.");
            }
            answers.into_iter().for_each(|answer| answer(Ok(())));
            return;
        }
        match tx.commit() {
            Ok(()) => {
                answers.into_iter().for_each(|answer| answer(Ok(())));
                committed.notify_one();
            }
            Err(error) => answers.into_iter().for_each(|answer| answer(Err(&error))),
        }
        return;
    }
}

/// Tells a caller how its batch ended (`Ok` = committed).
pub(super) type Answer = Box<dyn FnOnce(Result<(), &rusqlite::Error>) + Send>;

/// Runs one of the few fixed statements of the batch protocol (cached: they run per job).
fn statement(tx: &Transaction<'_>, sql: &str) -> rusqlite::Result<()> {
    tx.prepare_cached(sql)?.execute([]).map(|_| ())
}

fn lost_batch() -> rusqlite::Error {
    rusqlite::Error::SqliteFailure(
        ffi::Error::new(ffi::SQLITE_ABORT),
        Some("the transaction was rolled back by the database".to_owned()),
    )
}

/// A copy of `error` for each caller of a batch (`rusqlite::Error` is not `Clone`).
fn copy(error: &rusqlite::Error) -> rusqlite::Error {
    match error {
        rusqlite::Error::SqliteFailure(code, message) => {
            rusqlite::Error::SqliteFailure(*code, message.clone())
        }
        other => rusqlite::Error::SqliteFailure(
            ffi::Error::new(ffi::SQLITE_ERROR),
            Some(other.to_string()),
        ),
    }
}
