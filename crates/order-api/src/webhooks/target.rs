//! Where webhooks may go. A callback URL chosen by a client is a way into our network (SSRF):
//! only `http(s)` URLs, and only to globally routable addresses ([`super::address`]) unless
//! configuration allows private ones (local development, tests). Checked here when the order is
//! placed, for what can be seen then (literal addresses, `localhost`); names are checked on
//! every delivery by the client's resolver, against the very addresses it connects to
//! ([`super::resolver`]).

use std::net::IpAddr;

use reqwest::Url;

use super::address::is_global;

/// Longest accepted `callback_url`, in bytes, as sent and once normalised. Browsers and proxies
/// commonly cut URLs at about 2 KiB, so a longer one is a mistake or an attempt to make the
/// order's row, every delivery log line and every attempt's record large.
pub(crate) const MAX_CALLBACK_URL_BYTES: usize = 2048;

/// Checks a callback URL when an order is placed; returns it normalised.
pub(crate) fn check_url(text: &str, allow_private: bool) -> Result<Url, String> {
    let too_long = |len: usize| {
        format!("callback_url is {len} bytes long; it may hold at most {MAX_CALLBACK_URL_BYTES}")
    };
    // Before parsing: a huge text costs nothing more than its length.
    if text.len() > MAX_CALLBACK_URL_BYTES {
        return Err(too_long(text.len()));
    }
    let url = Url::parse(text).map_err(|error| format!("callback_url is not a URL: {error}"))?;
    // Normalising may lengthen it (percent-encoding, punycode); what is stored must fit too.
    if url.as_str().len() > MAX_CALLBACK_URL_BYTES {
        return Err(too_long(url.as_str().len()));
    }
    if !matches!(url.scheme(), "http" | "https") {
        return Err("callback_url must be an http or https URL".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("callback_url must not carry credentials".into());
    }
    let host = url.host_str().ok_or("callback_url needs a host")?;
    if !allow_private {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.eq_ignore_ascii_case("localhost") || host.ends_with(".localhost") {
            return Err("callback_url must not point to this machine".into());
        }
        if let Ok(ip) = host.parse::<IpAddr>()
            && !is_global(ip)
        {
            return Err("callback_url must not point to a private or internal address".into());
        }
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_internal_targets_unless_allowed() {
        for bad in [
            "ftp://example.com/x",
            "http://localhost:9000/hook",
            "http://127.0.0.1/hook",
            "http://10.1.2.3/hook",
            "http://192.168.0.10/hook",
            "http://169.254.169.254/latest/meta-data",
            "http://[::1]/hook",
            "http://[::ffff:127.0.0.1]/hook",
            "http://0x7f.1/hook",
            "http://2130706433/hook",
            "http://100.64.0.1/hook",
            "http://[64:ff9b::a9fe:a9fe]/hook",
            "http://[2002:a00:1::]/hook",
            "http://[fd00::1]/hook",
            "http://0.0.0.0:8080/hook",
            "http://user:pw@example.com/hook",
            "not a url",
        ] {
            assert!(check_url(bad, false).is_err(), "{bad}");
        }
        assert!(check_url("https://hooks.example.com/orders", false).is_ok());
        assert!(check_url("http://127.0.0.1:9000/hook", true).is_ok());
    }

    #[test]
    fn urls_longer_than_2048_bytes_are_refused_naming_the_field() {
        let base = "https://hooks.example.com/";
        let longest = format!("{base}{}", "a".repeat(MAX_CALLBACK_URL_BYTES - base.len()));
        assert_eq!(longest.len(), MAX_CALLBACK_URL_BYTES);
        assert!(check_url(&longest, false).is_ok());
        let refused = check_url(&format!("{longest}a"), false).expect_err("too long");
        assert!(
            refused.starts_with("callback_url") && refused.contains("2048"),
            "{refused}"
        );
        // Short as sent, too long once its spaces are percent-encoded.
        let spaced = format!("{base}{}", " x".repeat(1000));
        assert!(spaced.len() <= MAX_CALLBACK_URL_BYTES);
        assert!(check_url(&spaced, false).is_err());
    }
}
