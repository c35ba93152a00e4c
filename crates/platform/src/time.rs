//! Timestamps as the services store, log and show them: RFC 3339 in UTC with exactly six
//! fractional digits (`2026-12-05T13:36:39.123456Z`).
//!
//! One fixed width matters: the databases compare and sort timestamps as text (deadlines due,
//! the oldest row first), which is only right when every timestamp has the same shape.

use chrono::{DateTime, SecondsFormat, Utc};

/// The current time.
pub fn now() -> DateTime<Utc> {
    Utc::now()
}

/// `at` in the one text form (see the module docs).
pub fn format(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// The current time in the one text form: for log lines and other text outside a transaction
/// (inside one, bind [`crate::sql::Conn::now`]).
pub fn now_text() -> String {
    format(now())
}

/// Reads an RFC 3339 timestamp (any offset) as UTC.
pub fn parse(text: &str) -> Result<DateTime<Utc>, chrono::ParseError> {
    DateTime::parse_from_rfc3339(text).map(|at| at.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_has_one_width_and_round_trips() -> Result<(), chrono::ParseError> {
        let at = parse("2026-12-05T13:36:39Z")?;
        assert_eq!(format(at), "2026-12-05T13:36:39.000000Z");
        let now = now();
        let text = format(now);
        assert_eq!(text.len(), "2026-12-05T13:36:39.000000Z".len());
        assert_eq!(format(parse(&text)?), text);
        assert_eq!(
            parse("2026-12-05T14:36:39+01:00")?,
            parse("2026-12-05T13:36:39Z")?
        );
        Ok(())
    }
}
