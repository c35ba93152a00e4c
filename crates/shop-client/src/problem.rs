//! The RFC 9457 problem document order-api answers every refusal with.
//!
//! A client should never have to parse error text to decide what to do: the status and the
//! problem's `type` say that. The `detail` is for people, but it names the offending field, so
//! [`Problem::fields`] pulls those names out for a form that wants to highlight them.

use serde::Deserialize;

/// The top-level fields of an order, as a problem's `detail` names them.
const ORDER_FIELDS: [&str; 4] = ["user_id", "items", "payment_method", "callback_url"];

/// A refusal, as order-api explains it.
///
/// Answers that are not problem documents (a proxy's plain-text `503`, say) are turned into one
/// with `type` `about:blank`, the status's reason as `title` and the body as `detail`, so every
/// error carries one.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Problem {
    /// A URI naming the kind of problem (`https://shop.example/problems/rate-limited`);
    /// `about:blank` means "see the status code". Match on this, not on `detail`.
    #[serde(rename = "type", default = "about_blank")]
    pub problem_type: String,
    /// Short summary, the same for every occurrence of the type.
    #[serde(default)]
    pub title: String,
    /// The HTTP status, repeated in the body.
    #[serde(default)]
    pub status: u16,
    /// What went wrong this time, for the person who made the request.
    #[serde(default)]
    pub detail: String,
    /// Field-level details, when the server sends them as the RFC 9457 `errors` extension;
    /// order-api today names the field in `detail` instead (see [`Problem::fields`]).
    #[serde(default)]
    errors: Vec<FieldError>,
}

fn about_blank() -> String {
    "about:blank".to_owned()
}

/// One field of a request that was refused, and why.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct FieldError {
    /// The field as the request names it: `payment_method`, `items[0].quantity`.
    #[serde(alias = "pointer", alias = "name")]
    pub field: String,
    /// What is wrong with it.
    #[serde(default)]
    pub detail: String,
}

impl Problem {
    /// A problem for an answer of `status` whose body was not a problem document.
    pub(crate) fn from_status(status: reqwest::StatusCode, body: &str) -> Self {
        Self {
            problem_type: about_blank(),
            title: status.canonical_reason().unwrap_or_default().to_owned(),
            status: status.as_u16(),
            detail: body.trim().chars().take(500).collect(),
            errors: Vec::new(),
        }
    }

    /// Reads a problem from an answer's body, falling back to [`Problem::from_status`] when the
    /// body is not one.
    pub(crate) fn parse(status: reqwest::StatusCode, body: &str) -> Self {
        match serde_json::from_str::<Self>(body) {
            Ok(mut problem) => {
                if problem.status == 0 {
                    problem.status = status.as_u16();
                }
                problem
            }
            Err(_) => Self::from_status(status, body),
        }
    }

    /// The last segment of [`Problem::problem_type`]: `rate-limited`, `invalid-order`.
    pub fn slug(&self) -> &str {
        self.problem_type
            .rsplit('/')
            .next()
            .unwrap_or(&self.problem_type)
    }

    /// The fields of the request the problem is about.
    ///
    /// Taken from the `errors` extension when the server sends one, else from the `detail`,
    /// which names the field first (`items[0].quantity must be between 1 and 1000, got 0.`) or
    /// in backticks (``unknown field `colour` ``).
    pub fn fields(&self) -> Vec<FieldError> {
        if !self.errors.is_empty() {
            return self.errors.clone();
        }
        field_named_in(&self.detail)
            .map(|field| FieldError {
                field,
                detail: self.detail.clone(),
            })
            .into_iter()
            .collect()
    }
}

/// The field a human-readable `detail` is about, if it names one.
fn field_named_in(detail: &str) -> Option<String> {
    let is_order_field = |word: &str| {
        ORDER_FIELDS
            .iter()
            .any(|field| word == *field || word.starts_with(&format!("{field}[")))
    };
    let first = detail
        .split_whitespace()
        .next()
        .map(|word| word.trim_matches(|c: char| c == '`' || c == ':' || c == ','))
        .filter(|word| is_order_field(word));
    let quoted = || {
        detail
            .split('`')
            .skip(1)
            .step_by(2)
            .find(|word| !word.is_empty() && !word.contains(' '))
    };
    first.or_else(quoted).map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use reqwest::StatusCode;

    use super::*;

    #[test]
    fn parses_order_apis_problem_and_names_the_field() {
        let body = r#"{"type":"https://shop.example/problems/invalid-order","title":"Invalid order",
            "status":422,"detail":"items[0].quantity must be between 1 and 1000, got 0."}"#;
        let problem = Problem::parse(StatusCode::UNPROCESSABLE_ENTITY, body);
        assert_eq!(problem.slug(), "invalid-order");
        assert_eq!(problem.status, 422);
        let fields = problem.fields();
        assert_eq!(fields.len(), 1);
        assert_eq!(fields[0].field, "items[0].quantity");
    }

    #[test]
    fn names_a_backticked_field() {
        let problem = Problem {
            detail: "`items` must contain at least one line.".into(),
            ..Problem::from_status(StatusCode::UNPROCESSABLE_ENTITY, "")
        };
        assert_eq!(problem.fields()[0].field, "items");
        let unknown = Problem {
            detail: "Failed to deserialize: unknown field `colour`, expected one of …".into(),
            ..problem
        };
        assert_eq!(unknown.fields()[0].field, "colour");
    }

    #[test]
    fn prefers_the_errors_extension() {
        let body = r#"{"type":"about:blank","title":"Bad","status":422,"detail":"Two problems.",
            "errors":[{"pointer":"/user_id","detail":"too long"},{"field":"items","detail":"empty"}]}"#;
        let fields = Problem::parse(StatusCode::UNPROCESSABLE_ENTITY, body).fields();
        let names: Vec<_> = fields.iter().map(|f| f.field.as_str()).collect();
        assert_eq!(names, ["/user_id", "items"]);
    }

    #[test]
    fn a_body_that_is_no_problem_becomes_one() {
        let problem = Problem::parse(StatusCode::SERVICE_UNAVAILABLE, "upstream busy\n");
        assert_eq!(problem.problem_type, "about:blank");
        assert_eq!(problem.title, "Service Unavailable");
        assert_eq!(problem.status, 503);
        assert_eq!(problem.detail, "upstream busy");
        assert!(problem.fields().is_empty());
    }
}
