//! The queues between a service's tasks and its database threads, and how a thread waits on
//! them.
//!
//! A database thread serves two queues: jobs made while answering an HTTP request — someone is
//! waiting at the edge — and every other job (consumers, relays, sweeps). It takes the first
//! kind first. Without that, a `POST` queued behind the transactions of a consumer's run (up to
//! [`crate::kafka::RUN_LIMIT`] arriving at once): on Postgres, where each transaction commits on
//! its own connection, its answer waited for all of them.
//!
//! A thread waiting for work sleeps on the background queue only (the standard channel cannot
//! wait on two): every interactive job is followed there by a [`Job::Wake`], so that a sleeping
//! thread wakes and looks at the interactive queue. A thread that took the job meanwhile finds
//! its `Wake` later and passes over it.

use std::future::Future;
use std::sync::mpsc::{self, Receiver, RecvError, SendError, Sender, TryRecvError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::writer::Job;

tokio::task_local! {
    /// Set for the future of an HTTP request: its database jobs go first.
    static INTERACTIVE: ();
}

/// Runs `request` with its database jobs ahead of background work (see the module doc).
/// [`crate::http::observe`] wraps every request in it; a task spawned from there is background
/// work again.
pub async fn interactive<F: Future>(request: F) -> F::Output {
    INTERACTIVE.scope((), request).await
}

/// Whether the caller's database jobs go first (it is answering an HTTP request).
pub(crate) fn is_interactive() -> bool {
    INTERACTIVE.try_with(|()| ()).is_ok()
}

/// The sending ends: what a [`super::Db`] handle holds for each kind of database thread.
#[derive(Clone, Debug)]
pub(super) struct Senders {
    interactive: Sender<Job>,
    background: Sender<Job>,
}

impl Senders {
    /// Queues `job` for the threads behind these queues, ahead of background work if
    /// `interactive` (the caller answers an HTTP request: [`is_interactive`], asked once per job
    /// by the caller, which also labels the job's metrics with it). `Err` once every thread has
    /// stopped.
    pub(super) fn send(&self, job: Job, interactive: bool) -> Result<(), SendError<Job>> {
        if interactive {
            self.interactive.send(job)?;
            // Cannot fail where the send above succeeded: both ends go together.
            self.background
                .send(Job::Wake)
                .map_err(|SendError(_)| SendError(Job::Wake))
        } else {
            self.background.send(job)
        }
    }
}

/// The receiving ends, shared by the threads that serve them.
#[derive(Debug)]
pub(super) struct Queues {
    interactive: Receiver<Job>,
    background: Receiver<Job>,
}

/// The queues one or more database threads take from, one at a time.
pub(super) type Queue = Arc<Mutex<Queues>>;

/// A pair of queues and the handle that sends to them.
pub(super) fn channel() -> (Senders, Queue) {
    let (interactive, interactive_queue) = mpsc::channel();
    let (background, background_queue) = mpsc::channel();
    (
        Senders {
            interactive,
            background,
        },
        Arc::new(Mutex::new(Queues {
            interactive: interactive_queue,
            background: background_queue,
        })),
    )
}

impl Queues {
    /// The next job already waiting, interactive first; `None` if there is none.
    pub(super) fn try_next(&self) -> Option<Job> {
        if let Ok(job) = self.interactive.try_recv() {
            return Some(job);
        }
        loop {
            match self.background.try_recv() {
                Ok(Job::Wake) => {
                    if let Ok(job) = self.interactive.try_recv() {
                        return Some(job);
                    }
                }
                Ok(job) => return Some(job),
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => return None,
            }
        }
    }

    /// Takes the next job, interactive first, looking for it for [`LINGER`] before sleeping
    /// when that has been paying; `Err` once every sender is gone.
    pub(super) fn next(&self, linger: &mut Linger) -> Result<Job, RecvError> {
        loop {
            if let Ok(job) = self.interactive.try_recv() {
                return Ok(job);
            }
            match next_background(&self.background, linger)? {
                // An interactive job was queued: taken at the top of the loop, unless another
                // thread took it first.
                Job::Wake => {}
                job => return Ok(job),
            }
        }
    }
}

/// How long a database thread keeps looking for its next job, yielding the core meanwhile,
/// before it sleeps on its queue. A job that comes within it is taken without the caller waking
/// the thread (a system call for the caller, a switch of threads for the kernel); under load the
/// next job is usually that close: at 64 clients it took CPU per saga from 1.69 to 1.61 ms
/// (see docs/performance.md).
const LINGER: Duration = Duration::from_micros(200);

/// Whether a database thread lingers: only while most of its recent jobs came within
/// [`LINGER`] of the one before. Lingering for a job that does not come spends the whole
/// [`LINGER`] on a core for nothing, many times what a wake-up costs: at light load, with jobs
/// milliseconds apart, a thread that always lingered spent most of the shop's CPU doing so.
#[derive(Debug)]
pub(super) struct Linger {
    /// Recent jobs that came within [`LINGER`], out of [`Self::SCALE`] (a moving average).
    close: u32,
}

impl Linger {
    const SCALE: u32 = 1 << 12;
    /// Lingering pays once this share of jobs come within it.
    const WORTH_IT: u32 = Self::SCALE / 2;

    pub(super) fn new() -> Self {
        Self { close: 0 }
    }

    fn worth_it(&self) -> bool {
        self.close >= Self::WORTH_IT
    }

    /// Counts one job that came within [`LINGER`] (`close`) or after it, an eighth of the
    /// average.
    fn record(&mut self, close: bool) {
        self.close -= self.close / 8;
        if close {
            self.close += Self::SCALE / 8;
        }
    }
}

/// Takes the next job from `queue`, looking for it for [`LINGER`] before sleeping when that
/// has been paying; `Err` once every sender is gone.
fn next_background(queue: &Receiver<Job>, linger: &mut Linger) -> Result<Job, RecvError> {
    let start = Instant::now();
    if linger.worth_it() {
        let deadline = start + LINGER;
        loop {
            match queue.try_recv() {
                Ok(job) => {
                    linger.record(true);
                    return Ok(job);
                }
                Err(TryRecvError::Disconnected) => return Err(RecvError),
                Err(TryRecvError::Empty) if Instant::now() < deadline => std::thread::yield_now(),
                Err(TryRecvError::Empty) => break,
            }
        }
    }
    let job = queue.recv()?;
    linger.record(start.elapsed() < LINGER);
    Ok(job)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::sql::{Access, Connection, DbTarget};

    type Ran = Arc<Mutex<Vec<&'static str>>>;

    /// Queues the job `name` as the caller's task would: interactive inside [`interactive`].
    fn send(senders: &Senders, name: &'static str, ran: &Ran) {
        senders
            .send(call(name, ran), is_interactive())
            .expect("open");
    }

    /// A job that says which it was when run.
    fn call(name: &'static str, ran: &Ran) -> Job {
        let ran = Arc::clone(ran);
        Job::Call(Box::new(move |_| {
            ran.lock().expect("not poisoned").push(name)
        }))
    }

    /// Runs the jobs it is given, as a database thread would, and says which each was.
    struct Runner {
        ran: Ran,
        conn: Connection,
        _dir: tempfile::TempDir,
    }

    impl Runner {
        fn new() -> Self {
            let dir = tempfile::tempdir().expect("a temporary directory");
            let target = DbTarget::Sqlite(dir.path().join("queue.db"));
            Self {
                ran: Ran::default(),
                conn: Connection::open(&target, Access::ReadWrite).expect("a database"),
                _dir: dir,
            }
        }

        fn name_of(&self, job: Job) -> &'static str {
            let Job::Call(f) = job else {
                panic!("only calls are queued here");
            };
            f(self.conn.conn());
            self.ran
                .lock()
                .expect("not poisoned")
                .pop()
                .expect("the call ran")
        }
    }

    #[tokio::test]
    async fn a_job_made_for_a_request_is_taken_before_the_background_queued_earlier() {
        let (senders, queue) = channel();
        let runner = Runner::new();
        send(&senders, "relay", &runner.ran);
        send(&senders, "consumer", &runner.ran);
        interactive(async { send(&senders, "request", &runner.ran) }).await;
        let queues = queue.lock().expect("not poisoned");
        let mut linger = Linger::new();
        let order: Vec<_> = (0..3)
            .map(|_| runner.name_of(queues.next(&mut linger).expect("a job")))
            .collect();
        assert_eq!(order, ["request", "relay", "consumer"]);
        assert!(
            queues.try_next().is_none(),
            "the request's wake-up is passed over, not run"
        );
    }

    #[tokio::test]
    async fn a_sleeping_thread_wakes_for_a_request() {
        let (senders, queue) = channel();
        let runner = Runner::new();
        let ran = Arc::clone(&runner.ran);
        let (taken, took) = mpsc::channel();
        std::thread::spawn(move || {
            let queues = queue.lock().expect("not poisoned");
            let job = queues.next(&mut Linger::new()).expect("a job");
            let _ = taken.send(runner.name_of(job));
        });
        interactive(async { send(&senders, "request", &ran) }).await;
        let name = took
            .recv_timeout(Duration::from_secs(10))
            .expect("the thread woke for the request");
        assert_eq!(name, "request");
    }

    #[tokio::test]
    async fn the_batch_takes_requests_first_and_passes_over_their_wake_ups() {
        let (senders, queue) = channel();
        let runner = Runner::new();
        send(&senders, "consumer", &runner.ran);
        interactive(async { send(&senders, "request", &runner.ran) }).await;
        let queues = queue.lock().expect("not poisoned");
        let first = runner.name_of(queues.try_next().expect("a job"));
        let second = runner.name_of(queues.try_next().expect("a job"));
        assert_eq!([first, second], ["request", "consumer"]);
        assert!(queues.try_next().is_none());
    }

    #[test]
    fn a_thread_lingers_only_while_its_jobs_come_close_together() {
        let mut linger = Linger::new();
        assert!(!linger.worth_it(), "a new thread has nothing to go by");
        for _ in 0..8 {
            linger.record(true);
        }
        assert!(linger.worth_it(), "eight close jobs in a row");
        for _ in 0..8 {
            linger.record(false);
        }
        assert!(!linger.worth_it(), "eight far jobs in a row");
    }

    #[test]
    fn a_job_already_queued_counts_as_close_and_a_late_one_as_far() {
        let (sender, queue) = mpsc::channel();
        let mut linger = Linger::new();
        sender.send(Job::Wake).expect("the queue is open");
        next_background(&queue, &mut linger).expect("the queued job");
        assert_eq!(linger.close, Linger::SCALE / 8);

        let late = std::thread::spawn(move || {
            std::thread::sleep(LINGER * 20);
            sender.send(Job::Wake).expect("the queue is open");
        });
        next_background(&queue, &mut linger).expect("the late job");
        late.join().expect("the sender ends");
        assert!(linger.close < Linger::SCALE / 8, "{}", linger.close);
        assert!(
            next_background(&queue, &mut linger).is_err(),
            "every sender is gone"
        );
    }
}
