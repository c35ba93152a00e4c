//! The answer every service gives to a request it refuses: an RFC 9457 problem document.

use anyhow::{Context, Result, ensure};
use reqwest::StatusCode;
use serde::Deserialize;

/// An `application/problem+json` answer.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Problem {
    /// A URI naming the problem type; `about:blank` means "see the status code".
    #[serde(rename = "type")]
    pub problem_type: String,
    /// Short summary, the same for every occurrence of the type.
    pub title: String,
    /// The HTTP status, repeated in the body.
    pub status: u16,
    /// What went wrong this time, for the person who made the request.
    pub detail: String,
}

impl Problem {
    /// Reads `response` as a problem of `status`: the status code, the content type, and a body
    /// that is a problem document repeating the status.
    pub async fn expect(response: reqwest::Response, status: StatusCode) -> Result<Self> {
        let answered = response.status();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let body = response.text().await?;
        ensure!(
            answered == status,
            "expected a {status} problem, got {answered}: {body}"
        );
        ensure!(
            content_type == "application/problem+json",
            "a {status} answer of type {content_type:?}: {body}"
        );
        let problem: Self = serde_json::from_str(&body)
            .with_context(|| format!("not a problem document: {body}"))?;
        ensure!(
            problem.status == status.as_u16(),
            "a {status} answer whose problem says {}: {body}",
            problem.status
        );
        Ok(problem)
    }
}
