//! Turning SIGINT / SIGTERM into a cancellation every task of the process watches, and
//! surviving SIGXFSZ.

use tokio_util::sync::CancellationToken;

/// A token cancelled on the first Ctrl-C or SIGTERM.
///
/// The handlers are installed before this returns, not in the task that waits: a signal that
/// arrives right after a program announced it was ready must stop it cleanly, not kill it.
pub fn on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let trigger = token.clone();
    let signals = Signals::install();
    tokio::spawn(async move {
        signals.wait().await;
        tracing::info!("Shutdown requested.");
        trigger.cancel();
    });
    token
}

/// SIGINT and SIGTERM, registered with the runtime; and SIGXFSZ, caught to be ignored.
struct Signals {
    #[cfg(unix)]
    interrupt: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    terminate: Option<tokio::signal::unix::Signal>,
    /// SIGXFSZ, never waited for: catching it is the point. The kernel sends it with every
    /// write that the file-size limit (`RLIMIT_FSIZE`) refuses, and its default action kills
    /// the process. Caught, the write just fails with `EFBIG`, which SQLite reports as a disk
    /// I/O error and the service treats like a full disk: refuse new work, keep what was
    /// committed, carry on once writes work again. PostgreSQL ignores SIGXFSZ for the same
    /// reason. Tokio's handler, once installed, stays for the life of the process (see
    /// `tokio::signal::unix::signal`), past this stream's drop; catching it needs no `unsafe`,
    /// which the workspace forbids and `sigaction(SIG_IGN)` would need.
    #[cfg(unix)]
    _file_too_large: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    #[cfg(unix)]
    fn install() -> Self {
        use tokio::signal::unix::{SignalKind, signal};
        Self {
            interrupt: signal(SignalKind::interrupt()).ok(),
            terminate: signal(SignalKind::terminate()).ok(),
            _file_too_large: signal(SignalKind::from_raw(rustix::process::Signal::XFSZ.as_raw()))
                .inspect_err(|error| {
                    tracing::warn!(%error, "Could not catch SIGXFSZ: a file-size limit will kill the process.");
                })
                .ok(),
        }
    }

    #[cfg(not(unix))]
    fn install() -> Self {
        Self {}
    }

    #[cfg(unix)]
    async fn wait(mut self) {
        async fn next(signal: Option<&mut tokio::signal::unix::Signal>) {
            match signal {
                Some(signal) => {
                    signal.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        }
        tokio::select! {
            () = next(self.interrupt.as_mut()) => {}
            () = next(self.terminate.as_mut()) => {}
        }
    }

    #[cfg(not(unix))]
    async fn wait(self) {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}
