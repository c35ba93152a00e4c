//! Following an order to the end of its saga: each transition exactly once, in order.
//!
//! The watcher prefers the event stream (`GET /api/orders/{id}/events`): one connection, each
//! transition as it happens. A stream that breaks — network, a restarted order-api, a server
//! ending idle streams — is reopened with `Last-Event-ID`, the `seq` of the last transition
//! reported, so the server resumes right after it. When the stream is not to be had (the
//! answer is no event stream, the route answers `404`, `429` or `503`, or it keeps breaking),
//! the watcher long polls the order (`?wait=`) instead and reports what its history holds
//! beyond that same `seq` ([`poll`]). Either way the position is one number, which is why
//! switching loses and repeats nothing.

mod poll;
mod sse;

use std::collections::VecDeque;
use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use chrono::{DateTime, Utc};
use events::{CancellationReason, OrderId};
use futures::Stream;
use futures::stream::BoxStream;

use self::poll::Position;
use self::sse::{Next, Opened, SseStream};
use crate::order::{HistoryEntry, OrderStatus};
use crate::{Client, Error};

/// One move of an order from one status to the next.
///
/// It serialises as `{"order_id", "seq", "from", "to", "at", "reason"?, "cause"}`, one line per
/// transition for tools that print them as JSON.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Transition {
    /// The order that moved.
    pub order_id: OrderId,
    /// Its place in the order's history (1, 2, 3… without gaps); also the event's id on the
    /// stream, which `Last-Event-ID` resumes after.
    pub seq: u64,
    /// The status before; `None` for the first transition (the order was placed).
    pub from: Option<OrderStatus>,
    /// The status after.
    pub to: OrderStatus,
    /// When the order moved.
    pub at: DateTime<Utc>,
    /// Why the order was cancelled, on the move to `cancelled`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<CancellationReason>,
    /// What moved it: `api`, the short event type (`payment.completed`) or `deadline`.
    pub cause: String,
}

impl Transition {
    /// Whether this is the saga's last transition.
    pub fn is_terminal(&self) -> bool {
        self.to.is_terminal()
    }
}

/// How a watch starts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum WatchMode {
    /// The event stream, falling back to long polling when it is not to be had.
    #[default]
    Stream,
    /// Long polling only: for networks whose proxies buffer or cut streams.
    Poll,
}

/// How patiently a watch follows an order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WatchOptions {
    /// Where to start.
    pub mode: WatchMode,
    /// Failures in a row (without a new transition between them) before the watch gives up on
    /// the stream and polls, and, when polling, before it ends with the error. The delays
    /// between them follow the client's [`RetryPolicy`](crate::RetryPolicy), at least the
    /// stream's advised `retry:`.
    pub max_failures: u32,
    /// A stream silent for this long is taken for broken. The server sends a keep-alive every
    /// 15 s while nothing happens.
    pub idle_timeout: Duration,
    /// How long each long poll may be held (the server caps it at 10 s).
    pub poll_wait: Duration,
}

impl Default for WatchOptions {
    fn default() -> Self {
        Self {
            mode: WatchMode::Stream,
            max_failures: 6,
            idle_timeout: Duration::from_secs(45),
            poll_wait: Duration::from_secs(10),
        }
    }
}

/// How a [`Watch`] has followed its order so far: [`Watch::stats`].
///
/// A watch that resumed its stream or fell back to polling reports the same transitions as one
/// that streamed straight through; these counts tell them apart, for tools that measure the
/// path (a load test reporting how often streams broke).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct WatchStats {
    /// Event-stream connections tried: 1 for a stream that ran to the end, one more for each
    /// resume (`Last-Event-ID`); 0 for a watch that only polled.
    pub stream_connects: u32,
    /// Long polls sent: 0 for a stream that ran to the end; more after a fallback to polling
    /// or with [`WatchMode::Poll`].
    pub polls: u32,
}

impl WatchStats {
    /// Streams reopened after the first.
    pub fn resumes(&self) -> u32 {
        self.stream_connects.saturating_sub(1)
    }
}

/// The counts behind [`WatchStats`], shared by the [`Watch`] and its [`Follower`].
#[derive(Debug, Default)]
struct Counters {
    /// See [`WatchStats::stream_connects`].
    stream_connects: AtomicU32,
    /// See [`WatchStats::polls`].
    polls: AtomicU32,
}

/// The transitions of one order, a [`Stream`] that ends after the terminal one.
///
/// Made by [`Client::watch`]. Dropping it closes its connection.
pub struct Watch {
    /// The order followed.
    order_id: OrderId,
    /// The [`Follower`] as a stream; boxed, so that the type names no future.
    inner: BoxStream<'static, Result<Transition, Error>>,
    /// What the follower counts.
    counters: Arc<Counters>,
}

impl Watch {
    pub(crate) fn new(client: Client, order_id: OrderId, options: WatchOptions) -> Self {
        let counters = Arc::new(Counters::default());
        let follower = Follower {
            counters: Arc::clone(&counters),
            client,
            order_id,
            options,
            position: Position::default(),
            source: match options.mode {
                WatchMode::Stream => Source::Connecting,
                WatchMode::Poll => Source::Polling,
            },
            ready: VecDeque::new(),
            failures: 0,
            advised_retry: None,
            done: false,
        };
        let inner = futures::stream::unfold(follower, |mut follower| async move {
            let item = follower.next().await?;
            Some((item, follower))
        });
        Self {
            order_id,
            inner: Box::pin(inner),
            counters,
        }
    }

    /// The order followed.
    pub fn order_id(&self) -> OrderId {
        self.order_id
    }

    /// How the watch has followed the order so far: streams opened, long polls sent.
    pub fn stats(&self) -> WatchStats {
        WatchStats {
            stream_connects: self.counters.stream_connects.load(Ordering::Relaxed),
            polls: self.counters.polls.load(Ordering::Relaxed),
        }
    }
}

impl fmt::Debug for Watch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Watch")
            .field("order_id", &self.order_id)
            .finish_non_exhaustive()
    }
}

impl Stream for Watch {
    type Item = Result<Transition, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.as_mut().poll_next(cx)
    }
}

/// Where the next transitions come from.
enum Source {
    /// The stream is to be (re)opened.
    Connecting,
    /// An open stream.
    Streaming(SseStream),
    /// Long polls of the order.
    Polling,
}

/// The state a [`Watch`] carries from one transition to the next.
struct Follower {
    /// Its settings and connection pool, shared with the caller's client.
    client: Client,
    /// The order followed.
    order_id: OrderId,
    /// How patiently.
    options: WatchOptions,
    /// The last transition reported: where a stream resumes, what a poll skips.
    position: Position,
    /// Where the next transitions come from.
    source: Source,
    /// Transitions known but not yet handed out (a poll may bring several).
    ready: VecDeque<Transition>,
    /// Failures since the last new transition.
    failures: u32,
    /// The reconnection delay the stream last advised.
    advised_retry: Option<Duration>,
    /// The terminal transition is known, or the watch failed: nothing more to fetch.
    done: bool,
    /// What [`Watch::stats`] reads.
    counters: Arc<Counters>,
}

impl Follower {
    /// The next transition; `None` after the terminal one (or after an error).
    async fn next(&mut self) -> Option<Result<Transition, Error>> {
        loop {
            if let Some(transition) = self.ready.pop_front() {
                return Some(Ok(transition));
            }
            if self.done {
                return None;
            }
            if let Err(error) = self.step().await {
                self.done = true;
                return Some(Err(error));
            }
        }
    }

    /// Fetches what there is to fetch once; an error ends the watch.
    async fn step(&mut self) -> Result<(), Error> {
        match &mut self.source {
            Source::Connecting => {
                self.counters
                    .stream_connects
                    .fetch_add(1, Ordering::Relaxed);
                match SseStream::open(&self.client, self.order_id, self.position.seq).await {
                    Ok(Opened::Stream(stream)) => self.source = Source::Streaming(stream),
                    Ok(Opened::Unavailable) => self.source = Source::Polling,
                    Err(error) if error.is_retryable() => self.back_off(error).await?,
                    Err(error) => return Err(error),
                }
            }
            Source::Streaming(stream) => {
                let next = stream.next_update(self.options.idle_timeout).await;
                self.advised_retry = stream.retry().or(self.advised_retry);
                match next {
                    Next::Update(update) if update.order_id != self.order_id => {
                        return Err(Error::decode(
                            "an event stream",
                            format!(
                                "an update of {} on {}'s stream",
                                update.order_id, self.order_id
                            ),
                        ));
                    }
                    Next::Update(update) => self.accept(&update.entry).await?,
                    Next::Ended => {
                        // Before the terminal status (shutdown, idle limit): resume after what
                        // was reported.
                        self.source = Source::Connecting;
                        let ended = Error::Decode {
                            what: "the event stream ended before the terminal status".into(),
                            source: None,
                        };
                        self.back_off(ended).await?;
                    }
                    Next::Broken(error) => {
                        self.source = Source::Connecting;
                        self.back_off(error).await?;
                    }
                    // The order's own JSON may parse where its update did not.
                    Next::Malformed => self.source = Source::Polling,
                }
            }
            Source::Polling => {
                self.counters.polls.fetch_add(1, Ordering::Relaxed);
                match self
                    .client
                    .get_order_waiting(self.order_id, self.options.poll_wait)
                    .await
                {
                    Ok(order) => {
                        let new = self.position.catch_up(self.order_id, &order.history);
                        if new.is_empty() {
                            // A long poll answers early only at the saga's end; one that did
                            // without news comes from a server that does not hold requests.
                            // Do not hammer it.
                            tokio::time::sleep(self.client.retry_policy().base_delay).await;
                        }
                        self.take(new);
                    }
                    Err(error) if error.is_retryable() => self.back_off(error).await?,
                    Err(error) => return Err(error),
                }
            }
        }
        Ok(())
    }

    /// Takes one update from the stream: reports it if it is the next transition, fills a gap
    /// before it from the order's history, skips a repeat.
    async fn accept(&mut self, entry: &HistoryEntry) -> Result<(), Error> {
        if entry.seq > self.position.seq + 1 {
            match self.client.get_order(self.order_id).await {
                Ok(order) => {
                    let missing = self.position.catch_up(self.order_id, &order.history);
                    self.take(missing);
                }
                // Polling catches up from the history too, this entry included.
                Err(error) if error.is_retryable() => {
                    self.source = Source::Polling;
                    return Ok(());
                }
                Err(error) => return Err(error),
            }
        }
        if let Some(transition) = self.position.advance(self.order_id, entry) {
            self.take(vec![transition]);
        }
        Ok(())
    }

    /// Queues transitions the position has just moved past.
    fn take(&mut self, transitions: Vec<Transition>) {
        if transitions.is_empty() {
            return;
        }
        self.failures = 0;
        self.done = self.position.is_terminal();
        self.ready.extend(transitions);
    }

    /// Counts a failure and waits before the next try; past [`WatchOptions::max_failures`] the
    /// stream is given up for polling, and polling gives up with `error`.
    async fn back_off(&mut self, error: Error) -> Result<(), Error> {
        self.failures += 1;
        if self.failures >= self.options.max_failures {
            if matches!(self.source, Source::Polling) {
                return Err(error);
            }
            self.source = Source::Polling;
            self.failures = 0;
            return Ok(());
        }
        let policy = self.client.retry_policy();
        let mut delay = policy.delay(self.failures, error.retry_after());
        if !matches!(self.source, Source::Polling) {
            delay = delay.max(self.advised_retry.unwrap_or_default());
        }
        tokio::time::sleep(delay).await;
        Ok(())
    }
}
