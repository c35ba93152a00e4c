//! psp-sim, the payment provider, on a thread and a runtime of its own.
//!
//! The provider stands for a company outside the shop (a card processor): in a deployment it
//! runs on somebody else's machines. Giving it its own thread, named [`THREAD_NAME`], keeps its
//! work off the services' runtime workers — a provider busy signing webhooks does not delay an
//! order's `POST` more than another process on the same cores would — and lets `shopctl
//! bench` tell the shop's CPU time from the provider's.

use std::net::SocketAddr;
use std::thread::JoinHandle;

use anyhow::Context;
use tokio::sync::oneshot;
use tokio_util::sync::{CancellationToken, DropGuard};

/// The name of the provider's thread, as `/proc/<pid>/task/*/comm` shows it.
pub const THREAD_NAME: &str = "psp-sim";

/// psp-sim running on its own thread.
pub(super) struct Provider {
    /// Where it listens.
    addr: SocketAddr,
    /// Its thread; ends with psp-sim's outcome once it is stopped.
    thread: JoinHandle<anyhow::Result<()>>,
    /// Stops psp-sim when the shop gives up before running (another service failed to start).
    _stop: DropGuard,
}

impl Provider {
    /// Starts psp-sim with `config` on a new thread and waits until it listens. `shutdown`
    /// stops it.
    pub(super) async fn start(
        config: psp_sim::Config,
        shutdown: CancellationToken,
    ) -> anyhow::Result<Self> {
        let (listening, addr) = oneshot::channel();
        let stop = shutdown.clone().drop_guard();
        let thread = std::thread::Builder::new()
            .name(THREAD_NAME.to_owned())
            .spawn(move || run(config, shutdown, listening))
            .context("starting psp-sim's thread")?;
        match addr.await {
            Ok(Ok(addr)) => Ok(Self {
                addr,
                thread,
                _stop: stop,
            }),
            Ok(Err(error)) => Err(error),
            // The thread ended without saying where it listens: its result says why.
            Err(_) => Err(thread
                .join()
                .map_err(|_| anyhow::anyhow!("psp-sim's thread panicked"))?
                .err()
                .unwrap_or_else(|| anyhow::anyhow!("psp-sim stopped while starting"))),
        }
    }

    /// Where psp-sim listens.
    pub(super) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Waits (without blocking the caller's runtime) until psp-sim has stopped.
    pub(super) async fn stopped(self) -> anyhow::Result<()> {
        tokio::task::spawn_blocking(move || self.thread.join())
            .await
            .context("waiting for psp-sim's thread")?
            .map_err(|_| anyhow::anyhow!("psp-sim's thread panicked"))?
    }
}

/// The thread's body: a single-threaded runtime serving psp-sim until `shutdown`.
fn run(
    config: psp_sim::Config,
    shutdown: CancellationToken,
    listening: oneshot::Sender<anyhow::Result<SocketAddr>>,
) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .thread_name(THREAD_NAME)
        .build()
        .context("building psp-sim's runtime")?;
    runtime.block_on(async move {
        let started = async {
            let psp = psp_sim::Application::build(config)
                .await
                .context("starting psp-sim")?;
            let addr = psp.local_addr()?;
            anyhow::Ok((psp, addr))
        }
        .await;
        let psp = match started {
            Ok((psp, addr)) => {
                // The caller may have given up waiting (it is shutting down): psp-sim stops
                // with the same token.
                let _ = listening.send(Ok(addr));
                psp
            }
            Err(error) => {
                let _ = listening.send(Err(error));
                return Ok(());
            }
        };
        psp.run_until_stopped(shutdown).await?;
        Ok(())
    })
}
