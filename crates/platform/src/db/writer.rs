//! The thread that owns a service's database connection, and its group commit.
//!
//! Every write of a service runs here, one after the other (SQLite has one writer at a time
//! anyway; on Postgres, one connection per replica keeps the same model). Write transactions
//! that queue up while one runs are committed **together**: the writer takes every transaction
//! waiting at that moment, runs them one after the other inside one `BEGIN … COMMIT`, and
//! answers all of them once the commit is known. Transactions that arrive while the batch runs
//! join it before its commit (the commit, with its sync, is the expensive part): they are
//! committed sooner than by the next batch, and the sync is shared more widely.
//! Under load this turns dozens of commits (each a WAL append, a lock round trip and a thread
//! hand-off) into one, without adding latency when idle: a lone transaction is committed at
//! once. A transaction that fails does not affect the others in its batch: the batch is undone
//! and run again with each transaction in a savepoint of its own (see [`commit_batch`]), so a
//! transaction's closure may run more than once. A caller only ever hears `Ok` after its
//! changes are durably committed.

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
///
/// Its closure may run more than once: a batch runs its transactions without savepoints, and
/// when one fails, the batch is undone and run again, each transaction in its own savepoint
/// (see [`commit_batch`]). So it keeps the outcome of its last run until the batch's fate is
/// known.
pub(super) trait WriteJob: Send {
    /// Runs the caller's closure (again, if the batch it ran in was undone); says whether its
    /// changes are to be kept. A closure that panicked is not run again.
    fn run(&mut self, tx: Conn<'_>) -> bool;
    /// The database refused the rest of this run's statements (Postgres): whatever the closure
    /// made of that, its work is incomplete and must not be kept.
    fn spoil(&mut self);
    /// Answers the caller with its last run and the batch's outcome (`Ok` = committed); a
    /// job that never ran hears the batch's error.
    fn answer(self: Box<Self>, batch: Result<(), &SqlError>);
}

/// What a write transaction's caller hears: the closure's result (or its panic), and the work it
/// kept for after the commit (none unless committed).
pub(super) type WriteReply<T, E> = std::thread::Result<(Result<T, E>, Vec<Deferred>)>;

/// The outcome of a [`Write`]'s last run.
enum Outcome<T, E> {
    NotRun,
    /// Succeeded: its changes are kept, with the work it left for after the commit.
    Kept(T, Vec<Deferred>),
    /// Returned an error: its changes are undone.
    Failed(E),
    /// Succeeded, but a statement of it failed and the database refused the rest.
    Spoiled,
    Panicked(Box<dyn std::any::Any + Send>),
}

/// A write transaction whose closure `f` returns `Result<T, E>`; the answer goes to `reply`.
pub(super) struct Write<T, E, F> {
    f: F,
    reply: tokio::sync::oneshot::Sender<WriteReply<T, E>>,
    /// The caller's span, so that log lines written inside keep its fields.
    span: tracing::Span,
    outcome: Outcome<T, E>,
}

impl<T, E, F> Write<T, E, F> {
    pub(super) fn new(
        f: F,
        reply: tokio::sync::oneshot::Sender<WriteReply<T, E>>,
        span: tracing::Span,
    ) -> Self {
        Self {
            f,
            reply,
            span,
            outcome: Outcome::NotRun,
        }
    }
}

impl<T, E, F> WriteJob for Write<T, E, F>
where
    T: Send + 'static,
    E: From<SqlError> + Send + 'static,
    F: FnMut(&Conn<'_>) -> Result<T, E> + Send + 'static,
{
    fn run(&mut self, tx: Conn<'_>) -> bool {
        if matches!(self.outcome, Outcome::Panicked(_)) {
            return false;
        }
        let Self { f, span, .. } = self;
        let (result, kept) = {
            let _entered = span.enter();
            deferred::collect(|| catch_unwind(AssertUnwindSafe(|| f(&tx))))
        };
        self.outcome = match result {
            Ok(Ok(value)) => Outcome::Kept(value, kept),
            Ok(Err(error)) => Outcome::Failed(error),
            Err(panic) => Outcome::Panicked(panic),
        };
        matches!(self.outcome, Outcome::Kept(..))
    }

    fn spoil(&mut self) {
        if matches!(self.outcome, Outcome::Kept(..)) {
            self.outcome = Outcome::Spoiled;
        }
    }

    fn answer(self: Box<Self>, batch: Result<(), &SqlError>) {
        let Self {
            reply,
            span,
            outcome,
            ..
        } = *self;
        let answer = match (outcome, batch) {
            (Outcome::Kept(value, kept), Ok(())) => {
                // The caller has gone away (its request was cancelled): the commit still
                // happened, so what it kept for after the commit runs here.
                if let Err(Ok((_, kept))) = reply.send(Ok((Ok(value), kept))) {
                    span.in_scope(|| deferred::run(kept));
                }
                return;
            }
            (Outcome::Panicked(panic), _) => {
                let _ = reply.send(Err(panic));
                return;
            }
            // The closure may have failed because of what an earlier transaction of the
            // batch wrote (a key it found taken, say). If that earlier work is then lost, the
            // failure is not to be trusted either: the caller gets the batch's error, which is
            // transient, and tries again.
            (Outcome::Failed(error), Ok(())) => Err(error),
            (Outcome::Spoiled, _) => Err(E::from(aborted_job())),
            (Outcome::NotRun, Ok(())) => Err(E::from(SqlError::new(
                ErrorKind::Other,
                "the transaction was never run",
            ))),
            (Outcome::Kept(..) | Outcome::Failed(_) | Outcome::NotRun, Err(lost)) => {
                Err(E::from(lost.clone()))
            }
        };
        let _ = reply.send(Ok((answer, Vec::new())));
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

/// Runs the jobs of `batch` in one transaction and answers every job once the transaction's
/// fate is known.
///
/// The jobs run one after the other without savepoints, and if all succeed (nearly always)
/// they are committed together. Savepoints would let one job be undone alone, but they cost
/// every job of every batch: SQLite copies each page a job changes into the savepoint's
/// journal before changing it. So when a job fails instead, its batch is undone and run again
/// ([`careful`]), each job in a savepoint of its own, which is why a write transaction's
/// closure may run more than once. A first job that fails alone is just rolled back: the jobs
/// after it go into the next batch.
fn commit_batch(
    conn: &Connection,
    jobs: &mut dyn Iterator<Item = Box<dyn WriteJob>>,
    committed: &Notify,
    stats: &DbMetrics,
) {
    loop {
        let Some(first) = begin(conn, jobs) else {
            return;
        };
        let mut ran = Vec::new();
        let mut next = Some(first);
        let mut pass = Pass::Kept;
        while let Some(mut job) = next.take() {
            let mut keep = job.run(conn.conn());
            match conn.poisoned() {
                Poisoned::No => {}
                // SQLite rolled the whole transaction back (I/O error, disk full, …): everything
                // this batch did so far is gone.
                Poisoned::Lost => {
                    ran.push(job);
                    pass = Pass::Lost;
                    break;
                }
                // Postgres refused a statement of this job and everything after it: whatever
                // the job made of that, its work is incomplete and must not be kept.
                Poisoned::SinceSavepoint => {
                    job.spoil();
                    keep = false;
                }
            }
            ran.push(job);
            if keep {
                next = jobs.next();
            } else {
                pass = Pass::Failed;
            }
        }
        match pass {
            Pass::Kept => finish(conn, ran, committed, stats),
            Pass::Lost => {
                abandon(conn, ran, &lost_batch());
                // Go on with the jobs still waiting, in a new batch.
                continue;
            }
            Pass::Failed => {
                if let Err(error) = conn.rollback() {
                    tracing::warn!(%error, "Could not roll back a failed transaction.");
                }
                if ran.len() > 1 {
                    careful(conn, &mut ran.into_iter().chain(jobs), committed, stats);
                } else {
                    ran.into_iter().for_each(|job| job.answer(Ok(())));
                }
            }
        }
        return;
    }
}

/// How a batch's run without savepoints ended.
enum Pass {
    /// Every job succeeded: commit them.
    Kept,
    /// The last job failed: alone, it is rolled back; after others, they all run again, each
    /// in a savepoint.
    Failed,
    /// The database rolled the transaction back itself.
    Lost,
}

/// Runs the jobs of `jobs` in one transaction, each in its own savepoint, so that one that
/// fails is undone alone; the jobs of a batch that met a failure run again here.
fn careful(
    conn: &Connection,
    jobs: &mut dyn Iterator<Item = Box<dyn WriteJob>>,
    committed: &Notify,
    stats: &DbMetrics,
) {
    loop {
        let Some(first) = begin(conn, jobs) else {
            return;
        };
        let mut ran: Vec<Box<dyn WriteJob>> = Vec::new();
        let mut kept = 0_usize;
        let mut lost = None;
        for mut job in std::iter::once(first).chain(&mut *jobs) {
            if let Err(error) = conn.control("SAVEPOINT job") {
                // The transaction cannot be trusted any more (SQLite may have rolled it back):
                // give up on this batch, go on with a new one.
                job.answer(Err(&error));
                lost = Some(error);
                break;
            }
            let mut keep = job.run(conn.conn());
            match conn.poisoned() {
                Poisoned::No => {}
                Poisoned::Lost => {
                    ran.push(job);
                    lost = Some(lost_batch());
                    break;
                }
                Poisoned::SinceSavepoint => {
                    job.spoil();
                    keep = false;
                }
            }
            ran.push(job);
            let undone = if keep {
                Ok(())
            } else {
                conn.control("ROLLBACK TO job")
            };
            if let Err(error) = undone.and_then(|()| conn.control("RELEASE job")) {
                // The savepoint cannot be closed: the transaction cannot be trusted.
                lost = Some(error);
                break;
            }
            kept += usize::from(keep);
        }
        if let Some(error) = lost {
            abandon(conn, ran, &error);
            continue;
        }
        if kept == 0 {
            // Nothing to keep: undo, and every job hears its own failure.
            if let Err(error) = conn.rollback() {
                tracing::warn!(%error, "Could not roll back a failed transaction.");
            }
            ran.into_iter().for_each(|job| job.answer(Ok(())));
            return;
        }
        finish(conn, ran, committed, stats);
        return;
    }
}

/// Takes the first job of `jobs` and begins its transaction; `None` if there is none, or if
/// the transaction cannot begin (every job of `jobs` then hears why).
fn begin(
    conn: &Connection,
    jobs: &mut dyn Iterator<Item = Box<dyn WriteJob>>,
) -> Option<Box<dyn WriteJob>> {
    let first = jobs.next()?;
    match conn.begin() {
        Ok(()) => Some(first),
        Err(error) => {
            first.answer(Err(&error));
            jobs.for_each(|job| job.answer(Err(&error)));
            None
        }
    }
}

/// Commits the open transaction of the jobs `ran` and answers them.
fn finish(conn: &Connection, ran: Vec<Box<dyn WriteJob>>, committed: &Notify, stats: &DbMetrics) {
    match conn.commit() {
        Ok(()) => {
            // Counted before the answers, so that whoever hears of the commit finds it
            // counted.
            stats.committed(ran.len());
            ran.into_iter().for_each(|job| job.answer(Ok(())));
            committed.notify_one();
        }
        Err(error) => {
            if conn.in_transaction() {
                let _ = conn.rollback();
            }
            ran.into_iter().for_each(|job| job.answer(Err(&error)));
        }
    }
}

/// Rolls back a batch that cannot be trusted any more, and tells its jobs `error`.
fn abandon(conn: &Connection, ran: Vec<Box<dyn WriteJob>>, error: &SqlError) {
    if conn.in_transaction()
        && let Err(rollback) = conn.rollback()
    {
        tracing::warn!(error = %rollback, "Could not roll back a lost batch.");
    }
    ran.into_iter().for_each(|job| job.answer(Err(error)));
}

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
