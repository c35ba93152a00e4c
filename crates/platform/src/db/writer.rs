//! The thread that owns a service's database connection, and its group commit.
//!
//! Every write of a service runs here, one after the other (SQLite has one writer at a time
//! anyway; on Postgres, one connection per replica keeps the same model). Write transactions that queue up while one runs are committed **together**:
//! the writer takes every transaction waiting at that moment, runs each in its own savepoint
//! inside one `BEGIN … COMMIT`, and answers all of them once the commit is known. Transactions
//! that arrive while the batch runs join it before its commit (the commit, with its sync, is
//! the expensive part): they are committed sooner than by the next batch, and the sync is shared
//! more widely.
//! Under load this turns dozens of commits (each a WAL append, a lock round trip and a thread
//! hand-off) into one, without adding latency when idle: a lone transaction is committed at
//! once. A transaction that fails is rolled back to its savepoint and does not affect the others
//! in its batch; a caller only ever hears `Ok` after its changes are durably committed.

use std::panic::{AssertUnwindSafe, catch_unwind};
use tokio::sync::Notify;

use super::deferred::{self, Deferred};
use super::queue::{Linger, Queue, Queues};
use super::stats::DbMetrics;
use crate::sql::{Conn, Connection, ErrorKind, Poisoned, SqlError};

/// Most transactions committed together; bounds how long one batch holds the write lock.
const MAX_BATCH: usize = 256;

/// What a caller's thread hands to the writer.
pub(super) enum Job {
    /// Runs with the bare connection, outside any batch (reads, or work that manages its own
    /// transaction).
    Call(Box<dyn FnOnce(Conn<'_>) + Send>),
    /// Runs inside a batch's write transaction.
    Write(Box<dyn WriteJob>),
    /// Nothing to run: a job was queued ahead of the others, go and look (see [`super::queue`]).
    Wake,
}

/// A write transaction waiting for its turn.
pub(super) trait WriteJob: Send {
    /// Runs the caller's closure; says whether its changes are kept (`Ok`) or must be undone,
    /// and how to answer the caller once the batch's fate is known.
    fn run(self: Box<Self>, tx: Conn<'_>) -> Ran;
    /// Answers the caller without running: the batch could not even start.
    fn fail(self: Box<Self>, error: &SqlError);
}

/// The result of running one [`WriteJob`].
pub(super) struct Ran {
    /// The closure succeeded: keep its changes.
    pub(super) keep: bool,
    /// Answers the caller with the batch's outcome (`Ok` = committed).
    pub(super) answer: Answer,
}

/// What a write transaction's caller hears: the closure's result (or its panic), and the work it
/// kept for after the commit (none unless committed).
pub(super) type WriteReply<T, E> = std::thread::Result<(Result<T, E>, Vec<Deferred>)>;

/// A write transaction whose closure `f` returns `Result<T, E>`; the answer goes to `reply`.
pub(super) struct Write<T, E, F> {
    pub(super) f: F,
    pub(super) reply: tokio::sync::oneshot::Sender<WriteReply<T, E>>,
    /// The caller's span, so that log lines written inside keep its fields.
    pub(super) span: tracing::Span,
}

impl<T, E, F> WriteJob for Write<T, E, F>
where
    T: Send + 'static,
    E: From<SqlError> + Send + 'static,
    F: FnOnce(&Conn<'_>) -> Result<T, E> + Send + 'static,
{
    fn run(self: Box<Self>, tx: Conn<'_>) -> Ran {
        let Self { f, reply, span } = *self;
        let (result, kept) = {
            let _entered = span.enter();
            deferred::collect(|| catch_unwind(AssertUnwindSafe(|| f(&tx))))
        };
        match result {
            Ok(Ok(value)) => Ran {
                keep: true,
                answer: Box::new(move |batch| {
                    let reply_sent = match batch {
                        Ok(()) => reply.send(Ok((Ok(value), kept))),
                        Err(error) => reply.send(Ok((Err(E::from(error.clone())), Vec::new()))),
                    };
                    // The caller has gone away (its request was cancelled): the commit still
                    // happened, so what it kept for after the commit runs here.
                    if let Err(Ok((_, kept))) = reply_sent {
                        span.in_scope(|| deferred::run(kept));
                    }
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
                        Err(lost) => Err(E::from(lost.clone())),
                    };
                    let _ = reply.send(Ok((answer, Vec::new())));
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

    fn fail(self: Box<Self>, error: &SqlError) {
        let _ = self
            .reply
            .send(Ok((Err(E::from(error.clone())), Vec::new())));
    }
}

/// The writer's loop: runs until every [`super::Db`] handle is gone.
///
/// With `batching` (SQLite: the one writer) it commits the write transactions waiting together
/// as one. Without (Postgres: several writer threads, each with its own connection, taking jobs
/// from one queue) every transaction commits on its own: a batch holds the row locks of all its
/// transactions until its commit, so two replicas' batches can each wait for a row the other
/// holds — a deadlock Postgres only breaks after `deadlock_timeout` (1 s). Postgres shares WAL
/// flushes among concurrent commits itself.
pub(super) fn run(
    conn: Connection,
    jobs: Queue,
    committed: &Notify,
    stats: &DbMetrics,
    batching: bool,
) {
    let mut next = None;
    let mut linger = Linger::new();
    loop {
        let Ok(queue) = jobs.lock() else { return };
        let job = match next.take() {
            Some(job) => job,
            None => match queue.next(&mut linger) {
                Ok(job) => job,
                Err(_) => return,
            },
        };
        match job {
            Job::Wake => {}
            Job::Call(f) => {
                drop(queue);
                f(conn.conn());
                if conn.left_open() {
                    // A call left a transaction open: every later batch would fail to begin.
                    tracing::error!("A database call left a transaction open; rolling it back.");
                    if let Err(error) = conn.rollback() {
                        tracing::error!(%error, "Could not roll the open transaction back.");
                    }
                }
            }
            Job::Write(first) if batching => {
                // The lock stays held while the batch runs: with batching there is one writer.
                let mut batch = Batch {
                    first: Some(first),
                    queue: &queue,
                    next: &mut next,
                    taken: 0,
                };
                commit_batch(&conn, &mut batch, committed, stats);
            }
            Job::Write(first) => {
                drop(queue);
                commit_batch(&conn, &mut std::iter::once(first), committed, stats);
            }
        }
    }
}

/// The transactions of one batch: the first, then whatever is waiting in the queue each time
/// the batch is ready for another (never waiting for one), up to [`MAX_BATCH`].
struct Batch<'a> {
    first: Option<Box<dyn WriteJob>>,
    queue: &'a Queues,
    /// Where a [`Job::Call`] met in the queue is left for the writer's next turn: it must not
    /// run inside the batch's transaction.
    next: &'a mut Option<Job>,
    taken: usize,
}

impl Iterator for Batch<'_> {
    type Item = Box<dyn WriteJob>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(first) = self.first.take() {
            self.taken += 1;
            return Some(first);
        }
        if self.next.is_some() || self.taken >= MAX_BATCH {
            return None;
        }
        match self.queue.try_next()? {
            Job::Write(write) => {
                self.taken += 1;
                Some(write)
            }
            call => {
                *self.next = Some(call);
                None
            }
        }
    }
}

/// Runs the jobs of `batch` in one transaction, each in its own savepoint, and answers every
/// job once the transaction's fate is known.
///
/// The first job runs without a savepoint: alone, failing, it rolls back only itself; jobs that
/// join after it succeeded get savepoints of their own. If the first fails, the transaction
/// ends there and the jobs after it go into the next one.
fn commit_batch(
    conn: &Connection,
    jobs: &mut dyn Iterator<Item = Box<dyn WriteJob>>,
    committed: &Notify,
    stats: &DbMetrics,
) {
    loop {
        let Some(first) = jobs.next() else { return };
        if let Err(error) = conn.begin() {
            first.fail(&error);
            jobs.for_each(|job| job.fail(&error));
            return;
        }
        let mut answers: Vec<Answer> = Vec::new();
        let mut kept = 0_usize;
        let mut lost = None;
        for (index, job) in std::iter::once(first).chain(&mut *jobs).enumerate() {
            let savepoint = index > 0;
            if savepoint && let Err(error) = conn.control("SAVEPOINT job") {
                // The transaction cannot be trusted any more (SQLite may have rolled it back):
                // give up on this batch, go on with a new one.
                job.fail(&error);
                lost = Some(error);
                break;
            }
            let mut ran = job.run(conn.conn());
            match conn.poisoned() {
                Poisoned::No => {}
                // SQLite rolled the whole transaction back (I/O error, disk full, …): everything
                // this batch did so far is gone.
                Poisoned::Lost => {
                    answers.push(ran.answer);
                    lost = Some(lost_batch());
                    break;
                }
                // Postgres refused a statement of this job and everything after it: whatever
                // the job made of that, its work is incomplete and must not be kept.
                Poisoned::SinceSavepoint if ran.keep => {
                    ran.keep = false;
                    let answer = ran.answer;
                    ran.answer = Box::new(move |_| answer(Err(&aborted_job())));
                }
                Poisoned::SinceSavepoint => {}
            }
            answers.push(ran.answer);
            if !savepoint && !ran.keep {
                break;
            }
            if savepoint {
                let undone = if ran.keep {
                    Ok(())
                } else {
                    conn.control("ROLLBACK TO job")
                };
                if let Err(error) = undone.and_then(|()| conn.control("RELEASE job")) {
                    // The savepoint cannot be closed: the transaction cannot be trusted.
                    lost = Some(error);
                    break;
                }
            }
            kept += usize::from(ran.keep);
        }
        if let Some(error) = lost {
            if conn.in_transaction()
                && let Err(rollback) = conn.rollback()
            {
                tracing::warn!(error = %rollback, "Could not roll back a lost batch.");
            }
            answers.into_iter().for_each(|answer| answer(Err(&error)));
            continue;
        }
        if kept == 0 {
            // Nothing to keep: undo, and every job hears its own failure.
            if let Err(error) = conn.rollback() {
                tracing::warn!(%error, "Could not roll back a failed transaction.");
            }
            answers.into_iter().for_each(|answer| answer(Ok(())));
            return;
        }
        match conn.commit() {
            Ok(()) => {
                answers.into_iter().for_each(|answer| answer(Ok(())));
                committed.notify_one();
                stats.committed(kept);
            }
            Err(error) => {
                if conn.in_transaction() {
                    let _ = conn.rollback();
                }
                answers.into_iter().for_each(|answer| answer(Err(&error)));
            }
        }
        return;
    }
}

/// Tells a caller how its batch ended (`Ok` = committed).
pub(super) type Answer = Box<dyn FnOnce(Result<(), &SqlError>) + Send>;

/// SQLite rolls a whole transaction back on its own after a full disk or an I/O error: the
/// jobs of the batch wait for the disk like the one that met it.
fn lost_batch() -> SqlError {
    SqlError::new(
        ErrorKind::Unavailable,
        "the transaction was rolled back by the database",
    )
}

fn aborted_job() -> SqlError {
    SqlError::new(
        ErrorKind::Transient,
        "a statement failed and the database refused the rest of the transaction",
    )
}
