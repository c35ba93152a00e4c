//! The live view: every dead letter of the saga topics, kept up to date for as long as a
//! service runs (order-api's operator console).
//!
//! Unlike [`crate::read`], which reads up to the end once, a [`Tail`] keeps reading: new dead
//! letters and replay markers appear in it as they are written, and dead-letter topics that do
//! not exist yet are followed once they are created (see [`follow`]). Its memory is bounded
//! ([`CAPACITY`]): the console shows recent trouble, the topics keep the whole history.

mod follow;
mod index;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use rdkafka::ClientConfig;
use rdkafka::consumer::BaseConsumer;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::read::assign_only;
use crate::{DeadLetter, Error};
use follow::{Follower, Logged};
use index::Index;

/// Most letters a [`Tail`] keeps; older ones are dropped and counted ([`Tail::dropped`]).
pub const CAPACITY: usize = 10_000;

/// A live index of the dead letters: cheap to clone, shared by every request that looks.
/// Reading stops when the service's shutdown token is cancelled, or when the last clone is
/// dropped.
#[derive(Clone, Debug)]
pub struct Tail {
    /// What the reading thread found.
    shared: Arc<Shared>,
    /// Bumped on every new letter or marker.
    changes: watch::Receiver<u64>,
}

/// What the reading thread writes and the [`Tail`] reads.
#[derive(Debug)]
struct Shared {
    /// The letters and markers read so far.
    index: Mutex<Index>,
    /// Every partition was read up to the end it had when the tail started.
    caught_up: AtomicBool,
}

impl Tail {
    /// Starts following every saga dead-letter topic, from its beginning, with a client of
    /// `config` (bootstrap servers and client properties set; a `group.id` only names the
    /// reader, no group is joined). Fails only if the client cannot be created: a broker that
    /// is not there yet is waited for.
    pub fn start(config: ClientConfig, shutdown: CancellationToken) -> Result<Tail, Error> {
        let consumer: BaseConsumer<Logged> =
            assign_only(&config).create_with_context(Logged::default())?;
        let (version, changes) = watch::channel(0);
        let shared = Arc::new(Shared {
            index: Mutex::new(Index::new(CAPACITY)),
            caught_up: AtomicBool::new(false),
        });
        let follower = Follower::new(consumer, &shared, version, shutdown);
        std::thread::Builder::new()
            .name("dead-letters-tail".to_owned())
            .spawn(move || follower.run())?;
        Ok(Tail { shared, changes })
    }

    /// Every letter kept, in the order read (each partition's oldest first; partitions
    /// interleaved as their fetches answered), replayed flags set.
    pub fn snapshot(&self) -> Vec<DeadLetter> {
        self.index().snapshot()
    }

    /// The letter `id` (`<dlq topic>/<partition>/<offset>`), replayed flag set, if kept.
    pub fn get(&self, id: &str) -> Option<DeadLetter> {
        self.index().get(id)
    }

    /// A version bumped on every new letter or marker, and once when the tail catches up: a
    /// live view waits on it rather than polling.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.changes.clone()
    }

    /// Whether every dead-letter topic was read up to the end it had when the tail started:
    /// until then a list is still loading.
    pub fn caught_up(&self) -> bool {
        self.shared.caught_up.load(Ordering::SeqCst)
    }

    /// How many letters were dropped to keep at most [`CAPACITY`].
    pub fn dropped(&self) -> u64 {
        self.index().dropped()
    }

    /// The index, even if a reader panicked holding it (it is left consistent between calls).
    fn index(&self) -> MutexGuard<'_, Index> {
        self.shared
            .index
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
