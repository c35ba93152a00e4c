//! The faults the embedded broker injects for failure tests.

/// A fault the embedded broker can inject.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Broker `id` refuses connections (leaders do not move: clients wait and retry).
    BrokerDown(i32),
    /// Broker `id` accepts connections again.
    BrokerUp(i32),
    /// The clients whose `client.id` is this (each service uses its name) are cut off: their
    /// connections are dropped at their next request and at every one after, on every broker,
    /// while every other client goes on — a network partition around one service.
    ClientDown(String),
    /// The clients with this `client.id` may connect again.
    ClientUp(String),
    /// The next `count` requests of `api` fail with a retriable error.
    RequestErrors {
        /// Which requests.
        api: FaultApi,
        /// How many.
        count: usize,
    },
}

/// Which Kafka requests a [`Fault::RequestErrors`] hits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultApi {
    /// Produce: "not leader for partition".
    Produce,
    /// Fetch: "not leader for partition".
    Fetch,
    /// Offset commit: "request timed out".
    OffsetCommit,
    /// Group heartbeat: "request timed out".
    Heartbeat,
    /// The connection is dropped.
    Disconnect,
}

impl std::str::FromStr for FaultApi {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "produce" => Ok(Self::Produce),
            "fetch" => Ok(Self::Fetch),
            "commit" => Ok(Self::OffsetCommit),
            "heartbeat" => Ok(Self::Heartbeat),
            "disconnect" => Ok(Self::Disconnect),
            other => Err(format!(
                "unknown request kind {other:?} (produce, fetch, commit, heartbeat, disconnect)"
            )),
        }
    }
}
