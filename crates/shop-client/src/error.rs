//! Everything that can go wrong talking to order-api, as one enum a caller can match on.

use std::time::Duration;

use reqwest::StatusCode;

use crate::problem::{FieldError, Problem};

/// What went wrong.
///
/// Every refusal order-api answers carries its parsed [`Problem`] ([`Error::problem`]); the
/// variants sort them by what a caller does next: fix the request ([`Error::Validation`]), check
/// the credentials ([`Error::Unauthorized`]), come back later ([`Error::RateLimited`],
/// [`Error::Overloaded`]) — the client has already retried those as its [`RetryPolicy`] allows.
///
/// [`RetryPolicy`]: crate::RetryPolicy
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// `400` or `422`: the request is not acceptable as sent; retrying it will not help.
    #[error("invalid request: {detail}")]
    Validation {
        /// What is wrong, for people.
        detail: String,
        /// The fields at fault, as far as the answer names them.
        fields: Vec<FieldError>,
        /// The whole answer.
        problem: Box<Problem>,
    },
    /// `404`: no such order — or one that another API key placed, which looks the same.
    #[error("not found: {}", problem.detail)]
    NotFound {
        /// The whole answer.
        problem: Box<Problem>,
    },
    /// `401`: no API key, or one order-api does not know.
    #[error("unauthorized: {}", problem.detail)]
    Unauthorized {
        /// The whole answer.
        problem: Box<Problem>,
    },
    /// `429`, still after the retries: this API key is over its rate, or holds as many streams
    /// as it may.
    #[error("rate limited: {}", problem.detail)]
    RateLimited {
        /// When the server said to come back, if it did.
        retry_after: Option<Duration>,
        /// The whole answer.
        problem: Box<Problem>,
    },
    /// `503`, still after the retries: the server is shedding load or not ready.
    #[error("overloaded: {}", problem.detail)]
    Overloaded {
        /// When the server said to come back, if it did.
        retry_after: Option<Duration>,
        /// The whole answer.
        problem: Box<Problem>,
    },
    /// The outcome did not come within the time the caller allowed
    /// ([`Client::wait_for_outcome`](crate::Client::wait_for_outcome)). The order lives on.
    #[error("no outcome within {waited:?}")]
    Timeout {
        /// How long the caller waited.
        waited: Duration,
    },
    /// Any other refusal (`413`, `415`, `500`…).
    #[error("order-api answered {status}: {}", problem.detail)]
    Api {
        /// The answer's status.
        status: StatusCode,
        /// The whole answer.
        problem: Box<Problem>,
    },
    /// No answer: connection refused or reset, or no answer in time (after the retries).
    #[error("transport: {0}")]
    Transport(#[source] reqwest::Error),
    /// An answer that does not follow the API's contract (a body that does not parse, a
    /// success without the promised fields).
    #[error("unexpected answer: {what}")]
    Decode {
        /// What was being read.
        what: String,
        /// Why it did not parse, when a parser said so.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// A setting the client cannot work with: a base URL that is not one, an idempotency key
    /// the API would refuse, an API key that is no header value.
    #[error("invalid configuration: {0}")]
    Config(String),
}

impl Error {
    /// The error for an answer of `status` with headers `headers` and body `body`.
    pub(crate) fn from_answer(
        status: StatusCode,
        retry_after: Option<Duration>,
        body: &str,
    ) -> Self {
        let problem = Box::new(Problem::parse(status, body));
        match status {
            StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY => Error::Validation {
                detail: problem.detail.clone(),
                fields: problem.fields(),
                problem,
            },
            StatusCode::NOT_FOUND => Error::NotFound { problem },
            StatusCode::UNAUTHORIZED => Error::Unauthorized { problem },
            StatusCode::TOO_MANY_REQUESTS => Error::RateLimited {
                retry_after,
                problem,
            },
            StatusCode::SERVICE_UNAVAILABLE => Error::Overloaded {
                retry_after,
                problem,
            },
            status => Error::Api { status, problem },
        }
    }

    /// Reads a refusal (any non-success answer) into an error.
    pub(crate) async fn from_response(response: reqwest::Response) -> Self {
        let status = response.status();
        let retry_after = crate::retry::retry_after(response.headers());
        match response.text().await {
            Ok(body) => Self::from_answer(status, retry_after, &body),
            Err(error) => Error::Transport(error),
        }
    }

    /// An answer that breaks the contract.
    pub(crate) fn decode(
        what: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Error::Decode {
            what: what.into(),
            source: Some(source.into()),
        }
    }

    /// The server's explanation, for every error that is an answer of the server.
    pub fn problem(&self) -> Option<&Problem> {
        match self {
            Error::Validation { problem, .. }
            | Error::NotFound { problem }
            | Error::Unauthorized { problem }
            | Error::RateLimited { problem, .. }
            | Error::Overloaded { problem, .. }
            | Error::Api { problem, .. } => Some(problem),
            Error::Timeout { .. }
            | Error::Transport(_)
            | Error::Decode { .. }
            | Error::Config(_) => None,
        }
    }

    /// The HTTP status of the answer this error is, if it is one.
    pub fn status(&self) -> Option<StatusCode> {
        self.problem()
            .and_then(|problem| StatusCode::from_u16(problem.status).ok())
    }

    /// When the server said to come back (`429`, `503`).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::RateLimited { retry_after, .. } | Error::Overloaded { retry_after, .. } => {
                *retry_after
            }
            _ => None,
        }
    }

    /// Whether the same request may succeed later: the errors the client retries by itself.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::RateLimited { .. } | Error::Overloaded { .. } => true,
            Error::Transport(error) => is_retryable_transport(error),
            _ => false,
        }
    }

    /// A short, stable name for the kind of failure (`validation`, `http_503`, `connect`…), for
    /// counting failures in reports and metrics without matching on every variant.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Validation { .. } => "validation",
            Error::NotFound { .. } => "not_found",
            Error::Unauthorized { .. } => "unauthorized",
            Error::RateLimited { .. } => "http_429",
            Error::Overloaded { .. } => "http_503",
            Error::Timeout { .. } => "timeout",
            Error::Api { status, .. } if status.is_server_error() => "http_5xx",
            Error::Api { .. } => "http_4xx",
            Error::Transport(error) if error.is_connect() => "connect",
            Error::Transport(error) if error.is_timeout() => "request_timeout",
            Error::Transport(_) => "transport",
            Error::Decode { .. } => "decode",
            Error::Config(_) => "config",
        }
    }
}

/// Whether a transport failure may heal: anything but a request that could not be built, a
/// redirect loop or a body that would not decode.
pub(crate) fn is_retryable_transport(error: &reqwest::Error) -> bool {
    !(error.is_builder() || error.is_redirect() || error.is_decode())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_variants_with_the_problem_kept() {
        let body = r#"{"type":"https://shop.example/problems/rate-limited","title":"Too many requests","status":429,"detail":"Too many orders from this client; retry after 1 s."}"#;
        let error = Error::from_answer(
            StatusCode::TOO_MANY_REQUESTS,
            Some(Duration::from_secs(1)),
            body,
        );
        assert!(matches!(error, Error::RateLimited { .. }), "{error:?}");
        assert!(error.is_retryable());
        assert_eq!(error.retry_after(), Some(Duration::from_secs(1)));
        assert_eq!(error.kind(), "http_429");
        assert_eq!(error.problem().map(Problem::slug), Some("rate-limited"));
        assert_eq!(error.status(), Some(StatusCode::TOO_MANY_REQUESTS));

        let invalid = Error::from_answer(
            StatusCode::UNPROCESSABLE_ENTITY,
            None,
            r#"{"type":"https://shop.example/problems/invalid-order","title":"Invalid order","status":422,"detail":"items[0].sku NOPE is not in the catalog."}"#,
        );
        let Error::Validation { fields, detail, .. } = &invalid else {
            panic!("not a validation error: {invalid:?}");
        };
        assert_eq!(fields[0].field, "items[0].sku");
        assert!(detail.contains("not in the catalog"));
        assert!(!invalid.is_retryable());

        for (status, kind) in [
            (StatusCode::BAD_REQUEST, "validation"),
            (StatusCode::NOT_FOUND, "not_found"),
            (StatusCode::UNAUTHORIZED, "unauthorized"),
            (StatusCode::SERVICE_UNAVAILABLE, "http_503"),
            (StatusCode::PAYLOAD_TOO_LARGE, "http_4xx"),
            (StatusCode::INTERNAL_SERVER_ERROR, "http_5xx"),
        ] {
            let error = Error::from_answer(status, None, "not json");
            assert_eq!(error.kind(), kind, "{status}");
            assert_eq!(error.status(), Some(status));
        }
    }
}
