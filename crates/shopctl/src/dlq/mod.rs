//! `shopctl dlq list | show | replay`: look at dead letters and send chosen ones back.
//!
//! What a dead letter is, how the snapshot is read and how a letter goes back live in the
//! `dead_letters` library, which order-api's operator console shares; this module is the
//! command line over it: which broker, how quiet, and what the operator sees. The one replay
//! the library cannot do is a failed callback's, whose original was an HTTP request: replaying
//! it asks order-api to send the callback again ([`callback`]).

use anyhow::Result;
use rdkafka::ClientConfig;

use dead_letters::DeadLetter;
use platform::kafka::dead_letter_headers as h;

pub mod callback;
mod replay;

pub use callback::OrderApi;
pub use replay::replay;

/// Where to find the broker's right address, printed under the error when it cannot be
/// reached.
pub const UNREACHABLE_HINT: &str = "pass the broker's address with --bootstrap (or \
     KAFKA_BOOTSTRAP_SERVERS): the one `shopctl up` prints as `kafka <host:port>`, or \
     localhost:9094 for docker compose; -v shows the Kafka client's log";

/// Reads every dead letter of the saga topics (or of `only`), up to the current end; the
/// Kafka client's log goes to stderr only when `verbose`.
pub fn read(bootstrap: &str, verbose: bool, only: Option<&str>) -> Result<Vec<DeadLetter>> {
    Ok(dead_letters::read(
        &client_config(bootstrap),
        verbose,
        only,
    )?)
}

/// `text` with control characters (terminal escapes, carriage returns…) shown as escapes, so
/// that a dead letter's content cannot rewrite the operator's terminal; line feeds are kept
/// when `lines`.
fn printable(text: &str, lines: bool) -> String {
    text.chars()
        .map(|ch| {
            if ch.is_control() && !(lines && ch == '\n') {
                ch.escape_default().collect()
            } else {
                ch.to_string()
            }
        })
        .collect()
}

/// The header `name` of `letter`, printable, empty when missing.
fn shown(letter: &DeadLetter, name: &str) -> String {
    printable(letter.header(name).unwrap_or_default(), false)
}

/// Prints one line per dead letter still to handle (every one with `include_replayed`).
pub fn list(letters: &[DeadLetter], include_replayed: bool) {
    let hidden = letters.iter().filter(|letter| letter.replayed).count();
    let letters: Vec<&DeadLetter> = letters
        .iter()
        .filter(|letter| include_replayed || !letter.replayed)
        .collect();
    if !include_replayed && hidden > 0 {
        println!("({hidden} replayed dead letter(s) not shown; --include-replayed shows them)");
    }
    if letters.is_empty() {
        println!("No dead letters.");
        return;
    }
    println!(
        "{:<22} {:<14} {:<10} {:>8} {:<28} reason",
        "id", "service", "class", "attempts", "last failure"
    );
    for letter in letters {
        let mut reason = shown(letter, h::ERROR_MESSAGE);
        if letter.replayed {
            reason.insert_str(0, "(replayed) ");
        }
        if reason.chars().count() > 80 {
            reason = reason.chars().take(77).collect();
            reason.push_str("...");
        }
        println!(
            "{:<22} {:<14} {:<10} {:>8} {:<28} {reason}",
            letter.id,
            shown(letter, h::SERVICE),
            shown(letter, h::ERROR_CLASS),
            shown(letter, h::ATTEMPTS),
            shown(letter, h::LAST_FAILURE),
        );
    }
}

/// Prints one dead letter in full.
pub fn show(letter: &DeadLetter) {
    println!("id: {}", letter.id);
    if letter.replayed {
        println!("replayed: yes");
    }
    println!(
        "key: {}",
        printable(&String::from_utf8_lossy(&letter.key), false)
    );
    for (name, value) in &letter.headers {
        println!(
            "header {}: {}",
            printable(name, false),
            printable(value, false)
        );
    }
    let payload = serde_json::from_slice::<serde_json::Value>(&letter.payload)
        .ok()
        .and_then(|json| serde_json::to_string_pretty(&json).ok())
        .unwrap_or_else(|| String::from_utf8_lossy(&letter.payload).into_owned());
    println!("payload:\n{}", printable(&payload, true));
}

/// A client for `bootstrap` with the `KAFKA_CLIENT_*` properties (TLS, SASL…), like the
/// services'.
fn client_config(bootstrap: &str) -> ClientConfig {
    let mut config = platform::config::client_config_from(
        &platform::config::client_properties_from(std::env::vars()),
    );
    config
        .set("bootstrap.servers", bootstrap)
        // Named for whoever lists the broker's groups; never joined (see `dead_letters::read`).
        .set("group.id", "shopctl-dlq");
    config
}

#[cfg(test)]
mod tests {
    use super::printable;

    #[test]
    fn control_characters_are_shown_escaped() {
        assert_eq!(printable("a\u{1b}[2Jb\r", false), "a\\u{1b}[2Jb\\r");
        assert_eq!(printable("line\nnext", true), "line\nnext");
        assert_eq!(printable("line\nnext", false), "line\\nnext");
    }
}
