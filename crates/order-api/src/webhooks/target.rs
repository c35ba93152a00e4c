//! Where webhooks may go. A callback URL chosen by a client is a way into our network (SSRF):
//! only `http(s)` URLs, and never to loopback, private, link-local or otherwise internal
//! addresses — checked when the order is placed (literal addresses, `localhost`) and again on
//! every delivery against what the name resolves to — unless configuration allows it (local
//! development, tests).

use std::net::IpAddr;

use reqwest::Url;

/// Checks a callback URL when an order is placed; returns it normalised.
pub(crate) fn check_url(text: &str, allow_private: bool) -> Result<Url, String> {
    let url = Url::parse(text).map_err(|error| format!("callback_url is not a URL: {error}"))?;
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
            && is_internal(ip)
        {
            return Err("callback_url must not point to a private or internal address".into());
        }
    }
    Ok(url)
}

/// Checks every address `url`'s host resolves to, just before a delivery.
pub(crate) async fn check_resolved(url: &Url, allow_private: bool) -> Result<(), String> {
    if allow_private {
        return Ok(());
    }
    let host = url.host_str().ok_or("no host")?;
    let port = url.port_or_known_default().unwrap_or(443);
    let addresses = tokio::net::lookup_host((host, port))
        .await
        .map_err(|error| format!("cannot resolve {host}: {error}"))?;
    for address in addresses {
        if is_internal(address.ip()) {
            return Err(format!(
                "{host} resolves to an internal address ({})",
                address.ip()
            ));
        }
    }
    Ok(())
}

fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.octets()[0] == 100 && (v4.octets()[1] & 0xc0) == 64
        }
        IpAddr::V6(v6) => {
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (v6.segments()[0] & 0xfe00) == 0xfc00
                || (v6.segments()[0] & 0xffc0) == 0xfe80
                || v6
                    .to_ipv4_mapped()
                    .is_some_and(|v4| is_internal(IpAddr::V4(v4)))
        }
    }
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
            "http://user:pw@example.com/hook",
            "not a url",
        ] {
            assert!(check_url(bad, false).is_err(), "{bad}");
        }
        assert!(check_url("https://hooks.example.com/orders", false).is_ok());
        assert!(check_url("http://127.0.0.1:9000/hook", true).is_ok());
    }
}
