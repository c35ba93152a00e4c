//! Work a write transaction leaves for after its commit.
//!
//! A handler's "Order status changed." is true only once the change is committed: written
//! inside the transaction it would also be logged for a change rolled back with its batch. And
//! it would be written on the writer thread, the one thread every write of the service queues
//! for. [`after_commit`] keeps such work for later: it runs once the transaction is committed,
//! in the caller's task and span, or never if the transaction is not committed.

use std::cell::RefCell;

/// Work kept for after a commit.
pub(super) type Deferred = Box<dyn FnOnce() + Send>;

thread_local! {
    /// The work kept by the transaction running on this thread (`None`: none is running).
    static PENDING: RefCell<Option<Vec<Deferred>>> = const { RefCell::new(None) };
}

/// Runs `f` once the write transaction running on this thread is committed, and not at all if
/// it is rolled back; call it from inside [`super::Db::transaction`]'s closure, typically to log
/// what the transaction did. Outside a write transaction `f` runs at once.
pub fn after_commit(f: impl FnOnce() + Send + 'static) {
    let f: Deferred = Box::new(f);
    let now = PENDING.with(|pending| match pending.borrow_mut().as_mut() {
        Some(kept) => {
            kept.push(f);
            None
        }
        None => Some(f),
    });
    if let Some(f) = now {
        f();
    }
}

/// Runs `body` (a transaction's closure), returning its result and the work it kept.
pub(super) fn collect<R>(body: impl FnOnce() -> R) -> (R, Vec<Deferred>) {
    let outer = PENDING.with(|pending| pending.replace(Some(Vec::new())));
    let result = body();
    let kept = PENDING.with(|pending| pending.replace(outer));
    (result, kept.unwrap_or_default())
}

/// Runs kept work, in order.
pub(super) fn run(kept: Vec<Deferred>) {
    kept.into_iter().for_each(|f| f());
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[test]
    fn work_is_kept_inside_and_runs_at_once_outside() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let record = |what: &'static str| {
            let log = log.clone();
            move || log.lock().expect("lock").push(what)
        };
        after_commit(record("outside"));
        let ((), kept) = collect(|| {
            after_commit(record("first"));
            after_commit(record("second"));
        });
        assert_eq!(*log.lock().expect("lock"), ["outside"]);
        assert_eq!(kept.len(), 2);
        run(kept);
        assert_eq!(*log.lock().expect("lock"), ["outside", "first", "second"]);
        // Nothing stays behind for the thread's next transaction.
        let ((), kept) = collect(|| ());
        assert!(kept.is_empty());
    }
}
