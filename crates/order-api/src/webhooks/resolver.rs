//! The name resolution of the delivery client: the only lookup a delivery makes, filtered.
//!
//! Checking what a name resolves to and then letting the HTTP client resolve it again to connect
//! leaves a gap a hostile DNS server can use (DNS rebinding: a public address for the check, a
//! private one for the connection). So the check happens inside the client's own resolver: it
//! looks the name up once, keeps only the global addresses (see [`super::address`]) and fails
//! when none is left; the client connects only to what it returns.

use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use super::address::is_global;

/// Why a callback target was not connected to; found in the client's error chain to tell the
/// client a coarse reason (see [`super::client::FailureClass`]).
#[derive(Debug, thiserror::Error)]
pub(crate) enum TargetError {
    /// The name has no address a callback may reach (or none at all).
    #[error("{host} has no globally routable address")]
    Refused {
        /// The name looked up, for the service's log.
        host: String,
    },
    /// The lookup did not answer in time.
    #[error("looking {host} up took longer than {after:?}")]
    LookupTimedOut {
        /// The name looked up.
        host: String,
        /// The limit.
        after: Duration,
    },
}

/// Looks names up: the system resolver in service, a stand-in in tests (so that a test can make
/// a name answer what it wants, as a hostile DNS server would).
pub(crate) trait Lookup: Send + Sync + 'static {
    /// Every address `host` resolves to.
    fn lookup(&self, host: &str) -> BoxFuture<'static, io::Result<Vec<IpAddr>>>;
}

/// The system's resolver (`getaddrinfo`, on the blocking pool).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct SystemLookup;

impl Lookup for SystemLookup {
    fn lookup(&self, host: &str) -> BoxFuture<'static, io::Result<Vec<IpAddr>>> {
        let host = host.to_owned();
        Box::pin(async move {
            let addresses = tokio::net::lookup_host((host.as_str(), 0)).await?;
            Ok(addresses.map(|address| address.ip()).collect())
        })
    }
}

/// A [`Resolve`] for the delivery client that answers only global addresses (all of them, when
/// private targets are allowed), within a time limit.
#[derive(Clone)]
pub(crate) struct GuardedResolver {
    /// Where names are looked up.
    lookup: Arc<dyn Lookup>,
    /// Pass internal addresses too (local development, tests).
    allow_private: bool,
    /// A lookup may hang (an unanswering DNS server); the delivery must not hang with it.
    timeout: Duration,
}

impl fmt::Debug for GuardedResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GuardedResolver")
            .field("allow_private", &self.allow_private)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl GuardedResolver {
    pub(crate) fn new(lookup: Arc<dyn Lookup>, allow_private: bool, timeout: Duration) -> Self {
        Self {
            lookup,
            allow_private,
            timeout,
        }
    }

    /// The addresses a delivery to `host` may connect to, or why there are none.
    pub(crate) async fn addresses(&self, host: &str) -> Result<Vec<IpAddr>, BoxError> {
        let found = tokio::time::timeout(self.timeout, self.lookup.lookup(host))
            .await
            .map_err(|_| TargetError::LookupTimedOut {
                host: host.to_owned(),
                after: self.timeout,
            })?;
        let kept: Vec<IpAddr> = match found {
            Ok(found) => found
                .into_iter()
                .filter(|ip| self.allow_private || is_global(*ip))
                .collect(),
            // Unknown names are refused like internal ones: telling the two apart would let a
            // client learn which names exist in our internal DNS.
            Err(error) => {
                tracing::debug!(%error, host, "Callback host does not resolve.");
                Vec::new()
            }
        };
        if kept.is_empty() {
            return Err(TargetError::Refused {
                host: host.to_owned(),
            }
            .into());
        }
        Ok(kept)
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let resolver = self.clone();
        Box::pin(async move {
            let kept = resolver.addresses(name.as_str()).await?;
            // Port 0: the client puts in the URL's port.
            let addrs: Addrs = Box::new(kept.into_iter().map(|ip| SocketAddr::new(ip, 0)));
            Ok(addrs)
        })
    }
}

/// Test stand-ins for DNS.
#[cfg(test)]
pub(crate) mod fake {
    use std::collections::VecDeque;
    use std::sync::Mutex;

    use super::*;

    /// Answers each lookup with the next answer of a script (the last one once the script is
    /// used up), whatever the name: a DNS server that changes its mind.
    #[derive(Debug)]
    pub(crate) struct Scripted(Mutex<VecDeque<Vec<IpAddr>>>);

    impl Scripted {
        pub(crate) fn new(answers: &[&[IpAddr]]) -> Arc<Self> {
            Arc::new(Self(Mutex::new(
                answers.iter().map(|answer| answer.to_vec()).collect(),
            )))
        }
    }

    impl Lookup for Scripted {
        fn lookup(&self, _host: &str) -> BoxFuture<'static, io::Result<Vec<IpAddr>>> {
            let mut script = self.0.lock().unwrap_or_else(|p| p.into_inner());
            let answer = if script.len() > 1 {
                script.pop_front()
            } else {
                script.front().cloned()
            };
            Box::pin(async move { Ok(answer.unwrap_or_default()) })
        }
    }

    /// Never answers.
    #[derive(Debug)]
    pub(crate) struct Silent;

    impl Lookup for Silent {
        fn lookup(&self, _host: &str) -> BoxFuture<'static, io::Result<Vec<IpAddr>>> {
            Box::pin(futures::future::pending())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fake::{Scripted, Silent};
    use super::*;

    const PUBLIC: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(93, 184, 216, 34));
    const LOOPBACK: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
    const METADATA: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(169, 254, 169, 254));

    fn refused(result: Result<Vec<IpAddr>, BoxError>) -> bool {
        matches!(
            result.map_err(|error| error.downcast::<TargetError>().map(|e| *e)),
            Err(Ok(TargetError::Refused { .. }))
        )
    }

    #[tokio::test]
    async fn keeps_only_global_addresses_and_refuses_names_without_any() {
        let strict = |lookup| GuardedResolver::new(lookup, false, Duration::from_secs(1));
        let mixed = strict(Scripted::new(&[&[LOOPBACK, PUBLIC, METADATA]]));
        assert_eq!(mixed.addresses("hook.test").await.ok(), Some(vec![PUBLIC]));
        let internal = strict(Scripted::new(&[&[LOOPBACK, METADATA]]));
        assert!(refused(internal.addresses("hook.test").await));
        let unknown = strict(Scripted::new(&[&[]]));
        assert!(refused(unknown.addresses("hook.test").await));

        let lenient =
            GuardedResolver::new(Scripted::new(&[&[LOOPBACK]]), true, Duration::from_secs(1));
        assert_eq!(
            lenient.addresses("hook.test").await.ok(),
            Some(vec![LOOPBACK])
        );
    }

    #[tokio::test]
    async fn a_lookup_that_never_answers_times_out() {
        let resolver = GuardedResolver::new(Arc::new(Silent), false, Duration::from_millis(50));
        let error = resolver
            .addresses("hook.test")
            .await
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            error.as_deref(),
            Some("looking hook.test up took longer than 50ms")
        );
    }
}
