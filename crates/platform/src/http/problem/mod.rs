//! RFC 9457 problem documents: the one shape of every error answer of every service.
//!
//! Handlers answer [`Problem`]s themselves, and [`JsonBody`] turns a body it cannot read into
//! one. What no handler sees — a route that does not exist, a method a route does not take, a
//! rejection of axum's own extractors (`Query`, `Path`), a body limit or a timeout of a layer —
//! [`problem_answers`] turns into one too, so that a client parses every error the same way.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The media type of a problem document.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// Longest plain-text error body kept as a problem's `detail` (axum's rejections say in a line
/// what is wrong); a longer one is replaced by the status's own description.
const MAX_DETAIL_BYTES: usize = 1024;

/// An RFC 9457 problem document, answered as `application/problem+json`.
#[derive(Clone, Debug, Serialize)]
pub struct Problem {
    /// A URI naming the problem type; `about:blank` means "see the status code".
    #[serde(rename = "type")]
    pub problem_type: String,
    /// Short summary, the same for every occurrence of the type.
    pub title: String,
    /// HTTP status code, repeated for clients that only read the body.
    pub status: u16,
    /// What went wrong this time, for the person who made the request.
    pub detail: String,
}

impl Problem {
    /// A problem of `status` with a title derived from the slug and a specific `detail`.
    pub fn new(status: StatusCode, slug: &str, title: &str, detail: impl Into<String>) -> Self {
        Self {
            problem_type: format!("https://shop.example/problems/{slug}"),
            title: title.to_owned(),
            status: status.as_u16(),
            detail: detail.into(),
        }
    }

    /// 400: the request is not acceptable as sent.
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid-request",
            "Invalid request",
            detail,
        )
    }

    /// 404: nothing (visible to you) has this id.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", "Not found", detail)
    }

    /// 500: our fault; the detail must not leak internals.
    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Internal error",
            "The request could not be completed; it is safe to retry.",
        )
    }

    /// A problem for an error answer made outside our handlers, by its status: a type of ours
    /// for the statuses axum and its layers answer (`400`, `404`, `405`, `408`, `413`, `415`),
    /// `about:blank` (RFC 9457, section 4.2.1: "see the status code") for any other. `detail`
    /// is what the answer said, if anything.
    pub fn for_status(status: StatusCode, detail: String) -> Self {
        let known = match status {
            StatusCode::BAD_REQUEST => Some(("invalid-request", "Invalid request")),
            StatusCode::NOT_FOUND => Some(("not-found", "Not found")),
            StatusCode::METHOD_NOT_ALLOWED => Some(("method-not-allowed", "Method not allowed")),
            StatusCode::REQUEST_TIMEOUT => Some(("request-timeout", "Request timeout")),
            StatusCode::PAYLOAD_TOO_LARGE => Some(("body-too-large", "Request body too large")),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => {
                Some(("unsupported-media-type", "Unsupported media type"))
            }
            _ => None,
        };
        let reason = status.canonical_reason().unwrap_or("Error");
        let detail = if detail.is_empty() {
            match status {
                StatusCode::REQUEST_TIMEOUT => {
                    "The answer did not start in time; it is safe to retry.".to_owned()
                }
                StatusCode::PAYLOAD_TOO_LARGE => {
                    "The request body exceeds the size limit of this endpoint.".to_owned()
                }
                _ => format!("{reason}."),
            }
        } else {
            detail
        };
        match known {
            Some((slug, title)) => Self::new(status, slug, title, detail),
            None => Self {
                problem_type: "about:blank".to_owned(),
                title: reason.to_owned(),
                status: status.as_u16(),
                detail,
            },
        }
    }

    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = self.status_code();
        let mut response = (status, Json(self)).into_response();
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        response
    }
}

/// Like [`axum::Json`], but a body that cannot be read or parsed is answered with a [`Problem`]
/// saying exactly what is wrong (size, content type, syntax, or which field).
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<S, T> FromRequest<S> for JsonBody<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(json_problem(&rejection)),
        }
    }
}

fn json_problem(rejection: &JsonRejection) -> Problem {
    let status = rejection.status();
    match rejection {
        JsonRejection::MissingJsonContentType(_) => Problem::new(
            status,
            "unsupported-media-type",
            "Unsupported media type",
            "Send the body as JSON with `Content-Type: application/json`.",
        ),
        JsonRejection::JsonSyntaxError(_) => Problem::new(
            status,
            "malformed-json",
            "Malformed JSON",
            rejection.body_text(),
        ),
        JsonRejection::JsonDataError(_) => Problem::new(
            status,
            "invalid-body",
            "Invalid request body",
            rejection.body_text(),
        ),
        _ if status == StatusCode::PAYLOAD_TOO_LARGE => Problem::new(
            status,
            "body-too-large",
            "Request body too large",
            "The request body exceeds the size limit of this endpoint.",
        ),
        _ => Problem::new(
            status,
            "invalid-body",
            "Invalid request body",
            rejection.body_text(),
        ),
    }
}

/// Makes every error answer of `router` a problem document: unknown routes answer `404`,
/// methods a route does not take `405` (with axum's `Allow` header), and any other `4xx` or
/// `5xx` that is not JSON already — a rejection of axum's extractors, a body limit's `413`, a
/// timeout's `408` — is rewritten as a problem with the same status and headers, its plain-text
/// reason kept as the `detail`.
///
/// Apply it to a service's whole router, once every route is on it: the `405` answer is set on
/// the routes present when it is called.
pub fn problem_answers(router: Router) -> Router {
    router
        .fallback(no_such_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::map_response(as_problem))
}

async fn no_such_route() -> Problem {
    Problem::not_found("No such route.")
}

async fn method_not_allowed(method: Method) -> Problem {
    Problem::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        "Method not allowed",
        format!(
            "This route does not take {}; the Allow header lists the methods it takes.",
            super::method_label(&method)
        ),
    )
}

/// Rewrites an error answer that is not JSON as a problem; leaves every other answer alone.
///
/// JSON error answers are left as they are: a handler's problem, and `/readyz`'s `503`, whose
/// body lists the checks for load balancers and people. So are HTML pages, which only a handler
/// writes, for a browser (a sign-in form refusing a key says so on the form).
async fn as_problem(response: Response) -> Response {
    let status = response.status();
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    let is_json = content_type.starts_with("application/") && content_type.contains("json");
    let is_html = content_type.starts_with("text/html");
    if !(status.is_client_error() || status.is_server_error()) || is_json || is_html {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let is_text = parts
        .headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes().starts_with(b"text/plain"));
    let text = match axum::body::to_bytes(body, MAX_DETAIL_BYTES).await {
        Ok(bytes) if is_text => String::from_utf8_lossy(&bytes).trim().to_owned(),
        _ => String::new(),
    };
    let problem = Problem::for_status(status, text);
    let mut answer = problem.into_response();
    // The status's own headers stay (`Allow`, `Retry-After`, …); the body's go.
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.remove(header::TRANSFER_ENCODING);
    parts
        .headers
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    *answer.headers_mut() = parts.headers;
    answer
}

#[cfg(test)]
mod tests;
