//! The client: one connection pool and one set of settings, cheap to clone and share.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use events::OrderId;
use futures::StreamExt;
use reqwest::header::{AUTHORIZATION, HeaderValue, LOCATION};
use reqwest::{Method, RequestBuilder, Response, StatusCode, Url};
use serde::de::DeserializeOwned;

use crate::order::AcceptedBody;
use crate::{
    Error, IdempotencyKey, NewOrder, Order, PlaceOptions, Placed, RetryPolicy, Watch, WatchOptions,
};

/// The longest wait order-api holds a request for (`Prefer: wait`, `?wait=`).
pub const MAX_WAIT: Duration = Duration::from_secs(10);

/// How long a connection may wait unused in the client's pool. A server closes a connection
/// that stays idle too long — the shop after 10 s, a Node.js server after 5 s — and a request
/// sent on one just as it closes fails half-sent: for a `POST`, with no way to tell whether the
/// order arrived. Dropping idle connections sooner leaves the closing to the client. (The
/// services' own clients do the same: `platform::http::CLIENT_POOL_IDLE_TIMEOUT`.)
pub const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(4);

/// A client of order-api.
///
/// Clones share one connection pool; make one per base URL and API key and pass clones around.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    /// The connection pool every clone shares.
    http: reqwest::Client,
    /// With a trailing `/`, so that relative paths join below it.
    base: Url,
    /// `Bearer <key>`, marked sensitive so that it never shows in logs.
    authorization: Option<HeaderValue>,
    /// How placing and reading are retried.
    retry: RetryPolicy,
    /// The limit of one request; waits asked of the server come on top.
    request_timeout: Duration,
    /// What [`Client::watch`] uses.
    watch: WatchOptions,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.inner.base.as_str())
            .field("api_key", &self.inner.authorization.as_ref().map(|_| "…"))
            .field("retry", &self.inner.retry)
            .field("request_timeout", &self.inner.request_timeout)
            .field("watch", &self.inner.watch)
            .finish_non_exhaustive()
    }
}

/// Settings for a [`Client`]; every one has a default.
#[derive(Debug)]
#[must_use]
pub struct ClientBuilder {
    /// Checked in [`ClientBuilder::build`], so that setting it cannot fail.
    base_url: String,
    /// Turned into a sensitive header value in [`ClientBuilder::build`].
    api_key: Option<String>,
    /// The caller's own client, if it brought one.
    http: Option<reqwest::Client>,
    /// See [`ClientBuilder::retry`].
    retry: RetryPolicy,
    /// See [`ClientBuilder::connect_timeout`].
    connect_timeout: Duration,
    /// See [`ClientBuilder::request_timeout`].
    request_timeout: Duration,
    /// See [`ClientBuilder::watch`].
    watch: WatchOptions,
}

impl ClientBuilder {
    /// Sends `key` as `Authorization: Bearer <key>`. Without one, only a server that allows
    /// anonymous requests (`shopctl up`) answers.
    pub fn api_key(mut self, key: impl Into<String>) -> Self {
        self.api_key = Some(key.into());
        self
    }

    /// Uses `http` (its pool, proxy, TLS settings) instead of a client of its own; the connect
    /// timeout is then `http`'s.
    pub fn http_client(mut self, http: reqwest::Client) -> Self {
        self.http = Some(http);
        self
    }

    /// How requests are retried. Default: [`RetryPolicy::default`].
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// How long establishing a connection may take. Default: 5 s.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long one request may take, answer included; a request that asks the server to wait
    /// gets the wait on top. Event streams have no such limit, only
    /// [`WatchOptions::idle_timeout`]. Default: 30 s.
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// How [`Client::watch`] follows orders. Default: [`WatchOptions::default`].
    pub fn watch(mut self, options: WatchOptions) -> Self {
        self.watch = options;
        self
    }

    /// The client.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] if the base URL is not an `http` or `https` URL, or the API key is not
    /// a valid header value; [`Error::Transport`] if the HTTP client cannot be built.
    pub fn build(self) -> Result<Client, Error> {
        let mut base = Url::parse(&self.base_url)
            .map_err(|error| Error::Config(format!("base URL {:?}: {error}", self.base_url)))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(Error::Config(format!(
                "base URL {:?} is not http(s)",
                self.base_url
            )));
        }
        if !base.path().ends_with('/') {
            base.set_path(&format!("{}/", base.path()));
        }
        let authorization = self
            .api_key
            .map(|key| {
                let mut value = HeaderValue::from_str(&format!("Bearer {key}"))
                    .map_err(|_| Error::Config("the API key is not a valid header value".into()))?;
                value.set_sensitive(true);
                Ok::<_, Error>(value)
            })
            .transpose()?;
        let http = match self.http {
            Some(http) => http,
            None => reqwest::Client::builder()
                .connect_timeout(self.connect_timeout)
                .pool_idle_timeout(POOL_IDLE_TIMEOUT)
                .build()
                .map_err(Error::Transport)?,
        };
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                base,
                authorization,
                retry: self.retry,
                request_timeout: self.request_timeout,
                watch: self.watch,
            }),
        })
    }
}

impl Client {
    /// A client of the order-api at `base_url` with every default.
    ///
    /// # Errors
    ///
    /// As [`ClientBuilder::build`].
    pub fn new(base_url: impl Into<String>) -> Result<Self, Error> {
        Self::builder(base_url).build()
    }

    /// Settings for a client of the order-api at `base_url` (`http://127.0.0.1:8080`).
    pub fn builder(base_url: impl Into<String>) -> ClientBuilder {
        ClientBuilder {
            base_url: base_url.into(),
            api_key: None,
            http: None,
            retry: RetryPolicy::default(),
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            watch: WatchOptions::default(),
        }
    }

    /// The base URL requests go to.
    pub fn base_url(&self) -> &Url {
        &self.inner.base
    }

    /// Places an order; the saga starts.
    ///
    /// Every attempt carries the same `Idempotency-Key` (the caller's, else a fresh one), so a
    /// retry after a lost answer gets the order the first attempt placed, never a second one.
    /// With [`PlaceOptions::wait`] the server holds the answer until the saga ends, up to that
    /// long: [`Placed::Finished`] if it did, else [`Placed::Accepted`].
    ///
    /// ```no_run
    /// # async fn run(client: shop_client::Client, order: shop_client::NewOrder) -> Result<(), shop_client::Error> {
    /// use shop_client::{PlaceOptions, Placed};
    ///
    /// match client.place_order(&order, PlaceOptions::default()).await? {
    ///     Placed::Finished(order) => println!("{}: {}", order.order_id, order.status),
    ///     Placed::Accepted { order_id, .. } => println!("{order_id}: accepted"),
    /// }
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Validation`] for an order the API refuses (the same key with another body
    /// too); [`Error::Unauthorized`]; and, once the [`RetryPolicy`] is spent,
    /// [`Error::RateLimited`], [`Error::Overloaded`] or [`Error::Transport`].
    pub async fn place_order(
        &self,
        order: &NewOrder,
        options: PlaceOptions,
    ) -> Result<Placed, Error> {
        let key = options
            .idempotency_key
            .unwrap_or_else(IdempotencyKey::generate);
        let key = HeaderValue::from_str(&key.header_value())
            .map_err(|_| Error::Config("the idempotency key is not a valid header value".into()))?;
        let wait = options.wait.map(whole_seconds);
        let timeout = self.inner.request_timeout + wait.map_or(Duration::ZERO, Duration::from_secs);
        let response = self
            .send(|| {
                let mut request = self
                    .request(Method::POST, "api/orders")?
                    .header("Idempotency-Key", key.clone())
                    .json(order)
                    .timeout(timeout);
                if let Some(seconds) = wait {
                    request = request.header("Prefer", format!("wait={seconds}"));
                }
                Ok(request)
            })
            .await?;
        match response.status() {
            StatusCode::CREATED => Ok(Placed::Finished(Box::new(
                read_json(response, "the created order").await?,
            ))),
            StatusCode::ACCEPTED => {
                let replayed = response
                    .headers()
                    .get("Idempotent-Replayed")
                    .is_some_and(|value| value.as_bytes().eq_ignore_ascii_case(b"true"));
                let location = response.headers().get(LOCATION).cloned();
                let body: AcceptedBody = read_json(response, "the 202 body").await?;
                let status_url = location
                    .as_ref()
                    .and_then(|value| value.to_str().ok())
                    .unwrap_or(&body.status_url)
                    .to_owned();
                Ok(Placed::Accepted {
                    order_id: body.order_id,
                    status_url: self.resolve(&status_url)?,
                    events_url: self.resolve(&body.events_url)?,
                    replayed,
                })
            }
            status if status.is_success() => Err(Error::Decode {
                what: format!("placing an order answered {status}"),
                source: None,
            }),
            _ => Err(Error::from_response(response).await),
        }
    }

    /// The order now, with its history.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] for an order that does not exist or is another API key's;
    /// [`Error::Unauthorized`]; transport failures and `429`/`503` after the retries.
    pub async fn get_order(&self, order_id: OrderId) -> Result<Order, Error> {
        self.fetch_order(order_id, None).await
    }

    /// The order once its saga has ended, or after `wait` (at most [`MAX_WAIT`]), whichever
    /// comes first: a long poll (`?wait=`). Check [`Order::is_terminal`].
    ///
    /// # Errors
    ///
    /// As [`Client::get_order`].
    pub async fn get_order_waiting(
        &self,
        order_id: OrderId,
        wait: Duration,
    ) -> Result<Order, Error> {
        self.fetch_order(order_id, Some(wait.min(MAX_WAIT))).await
    }

    /// The order's transitions as they happen, each once and in order, ending after the
    /// terminal one. Nothing is sent until the stream is polled; dropping it stops the watch.
    ///
    /// ```no_run
    /// # async fn run(client: shop_client::Client, order_id: shop_client::OrderId) -> Result<(), shop_client::Error> {
    /// use futures::StreamExt;
    ///
    /// let mut transitions = client.watch(order_id);
    /// while let Some(transition) = transitions.next().await {
    ///     let transition = transition?;
    ///     println!("{:?} → {} ({})", transition.from, transition.to, transition.cause);
    /// }
    /// # Ok(()) }
    /// ```
    ///
    /// The stream yields an error, then ends, when the watch cannot go on: the order is not
    /// found, the API key is refused, or the server stayed unreachable for
    /// [`WatchOptions::max_failures`] tries in a row, streaming and then polling.
    pub fn watch(&self, order_id: OrderId) -> Watch {
        self.watch_with(order_id, self.inner.watch)
    }

    /// [`Client::watch`] with other options for this one watch.
    pub fn watch_with(&self, order_id: OrderId, options: WatchOptions) -> Watch {
        Watch::new(self.clone(), order_id, options)
    }

    /// The order once its saga has ended, waiting at most `timeout`. Built on
    /// [`Client::watch`].
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] if the saga did not end in time (it goes on; ask again later), or
    /// what [`Client::watch`] ended with.
    pub async fn wait_for_outcome(
        &self,
        order_id: OrderId,
        timeout: Duration,
    ) -> Result<Order, Error> {
        let outcome = async {
            let mut transitions = self.watch(order_id);
            while let Some(transition) = transitions.next().await {
                if transition?.is_terminal() {
                    break;
                }
            }
            self.get_order(order_id).await
        };
        tokio::time::timeout(timeout, outcome)
            .await
            .map_err(|_| Error::Timeout { waited: timeout })?
    }

    pub(crate) fn retry_policy(&self) -> RetryPolicy {
        self.inner.retry
    }

    /// The limit of one request that asks the server for no wait.
    pub(crate) fn request_timeout(&self) -> Duration {
        self.inner.request_timeout
    }

    async fn fetch_order(&self, order_id: OrderId, wait: Option<Duration>) -> Result<Order, Error> {
        let path = format!("api/orders/{order_id}");
        let wait = wait.map(whole_seconds);
        let timeout = self.inner.request_timeout + wait.map_or(Duration::ZERO, Duration::from_secs);
        let response = self
            .send(|| {
                let mut request = self.request(Method::GET, &path)?.timeout(timeout);
                if let Some(seconds) = wait {
                    request = request.query(&[("wait", seconds)]);
                }
                Ok(request)
            })
            .await?;
        if !response.status().is_success() {
            return Err(Error::from_response(response).await);
        }
        read_json(response, "the order").await
    }

    /// A request to `path` (relative to the base URL), with the API key.
    pub(crate) fn request(&self, method: Method, path: &str) -> Result<RequestBuilder, Error> {
        let url = self.resolve(path)?;
        let mut request = self.inner.http.request(method, url);
        if let Some(authorization) = &self.inner.authorization {
            request = request.header(AUTHORIZATION, authorization.clone());
        }
        Ok(request)
    }

    /// `path` resolved against the base URL.
    fn resolve(&self, path: &str) -> Result<Url, Error> {
        self.inner
            .base
            .join(path)
            .map_err(|error| Error::Config(format!("URL {path:?}: {error}")))
    }

    /// Sends the request `build` makes, again while the answer is a retryable failure and the
    /// policy allows; returns the first answer that is not one (success or not).
    pub(crate) async fn send(
        &self,
        build: impl Fn() -> Result<RequestBuilder, Error>,
    ) -> Result<Response, Error> {
        let policy = self.inner.retry;
        let mut attempt = 1;
        loop {
            let error = match build()?.send().await {
                Ok(response)
                    if !matches!(
                        response.status(),
                        StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
                    ) =>
                {
                    return Ok(response);
                }
                Ok(response) => Error::from_response(response).await,
                Err(error) => Error::Transport(error),
            };
            if !error.is_retryable() || attempt >= policy.max_attempts {
                return Err(error);
            }
            tokio::time::sleep(policy.delay(attempt, error.retry_after())).await;
            attempt += 1;
        }
    }
}

/// `wait` in whole seconds, rounded up, at most [`MAX_WAIT`]: the unit the API takes.
fn whole_seconds(wait: Duration) -> u64 {
    let wait = wait.min(MAX_WAIT);
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
}

/// Reads a success's JSON body as `T`.
pub(crate) async fn read_json<T: DeserializeOwned>(
    response: Response,
    what: &str,
) -> Result<T, Error> {
    let body = response.bytes().await.map_err(Error::Transport)?;
    serde_json::from_slice(&body).map_err(|error| Error::decode(what, error))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_are_whole_seconds_rounded_up_and_capped() {
        assert_eq!(whole_seconds(Duration::ZERO), 0);
        assert_eq!(whole_seconds(Duration::from_millis(1)), 1);
        assert_eq!(whole_seconds(Duration::from_millis(2500)), 3);
        assert_eq!(whole_seconds(Duration::from_secs(60)), 10);
    }

    #[test]
    fn the_base_url_is_checked_and_paths_join_below_it() -> Result<(), Error> {
        assert!(matches!(Client::new("not a url"), Err(Error::Config(_))));
        assert!(matches!(Client::new("ftp://host/"), Err(Error::Config(_))));
        let client = Client::new("http://127.0.0.1:8080/shop")?;
        assert_eq!(
            client.resolve("api/orders")?.as_str(),
            "http://127.0.0.1:8080/shop/api/orders"
        );
        assert_eq!(
            client.resolve("/api/orders/ord_1")?.as_str(),
            "http://127.0.0.1:8080/api/orders/ord_1"
        );
        Ok(())
    }

    #[test]
    fn the_api_key_never_shows_in_debug_output() -> Result<(), Error> {
        let client = Client::builder("http://127.0.0.1:8080")
            .api_key("sk_live_secret")
            .build()?;
        assert!(!format!("{client:?}").contains("sk_live_secret"));
        Ok(())
    }
}
