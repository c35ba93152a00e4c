//! Which addresses a callback may reach: only globally routable ones. Everything reserved for a
//! network of its own (loopback, private, link-local, carrier-grade NAT), for documentation or
//! benchmarks, multicast and broadcast is refused, and IPv6 forms that carry an IPv4 address
//! (mapped, compatible, NAT64, 6to4) are judged by that IPv4 address, so that `::ffff:10.0.0.1`
//! is as internal as `10.0.0.1`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// `true` if a callback may be sent to `ip`.
pub(crate) fn is_global(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_global_v4(v4),
        IpAddr::V6(v6) => is_global_v6(v6),
    }
}

fn is_global_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    let internal = a == 0 // 0.0.0.0/8: "this network", 0.0.0.0 included
        || a == 10 // 10/8 private
        || a == 127 // 127/8 loopback
        || (a == 100 && (b & 0xc0) == 64) // 100.64/10 carrier-grade NAT
        || (a == 169 && b == 254) // 169.254/16 link-local (cloud metadata lives here)
        || (a == 172 && (b & 0xf0) == 16) // 172.16/12 private
        || (a == 192 && b == 0 && c == 0) // 192.0.0.0/24 IETF protocol assignments
        || (a == 192 && b == 0 && c == 2) // 192.0.2/24 TEST-NET-1
        || (a == 192 && b == 88 && c == 99) // 192.88.99/24 retired 6to4 relays
        || (a == 192 && b == 168) // 192.168/16 private
        || (a == 198 && (b & 0xfe) == 18) // 198.18/15 benchmarking
        || (a == 198 && b == 51 && c == 100) // 198.51.100/24 TEST-NET-2
        || (a == 203 && b == 0 && c == 113) // 203.0.113/24 TEST-NET-3
        || a >= 224; // 224/4 multicast, 240/4 reserved, 255.255.255.255 broadcast
    !internal
}

fn is_global_v6(ip: Ipv6Addr) -> bool {
    if ip.is_unspecified() || ip.is_loopback() {
        return false;
    }
    if let Some(v4) = embedded_v4(ip) {
        return is_global_v4(v4);
    }
    let s = ip.segments();
    // Only 2000::/3 is global unicast; of it, these are reserved.
    let global_unicast = (s[0] & 0xe000) == 0x2000;
    let reserved = match s[0] {
        // 2001::/23 IETF protocol assignments (Teredo 2001::/32 among them) and 2001:db8::/32
        // documentation.
        0x2001 => s[1] < 0x0200 || s[1] == 0x0db8,
        // 3fff::/20 documentation.
        0x3fff => s[1] < 0x1000,
        _ => false,
    };
    global_unicast && !reserved
}

/// The IPv4 address an IPv6 address stands for, in the forms that reach it: mapped
/// `::ffff:a.b.c.d`, translated `::ffff:0:a.b.c.d`, compatible `::a.b.c.d`, NAT64
/// `64:ff9b::a.b.c.d` and 6to4 `2002:aabb:ccdd::/48`.
///
/// The local-use NAT64 prefix `64:ff9b:1::/48` is not here: it is internal whatever it carries
/// (outside 2000::/3, [`is_global_v6`] refuses it).
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let o = ip.octets();
    let low = Ipv4Addr::new(o[12], o[13], o[14], o[15]);
    match ip.segments() {
        [0, 0, 0, 0, 0, 0xffff, ..] // mapped
        | [0, 0, 0, 0, 0xffff, 0, ..] // translated (SIIT)
        | [0, 0, 0, 0, 0, 0, ..] // compatible
        | [0x64, 0xff9b, 0, 0, 0, 0, ..] => Some(low), // NAT64 well-known prefix
        [0x2002, ..] => Some(Ipv4Addr::new(o[2], o[3], o[4], o[5])),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_globally_routable_addresses_are_global() {
        let internal = [
            "0.0.0.0",
            "0.1.2.3",
            "10.0.0.1",
            "100.64.0.1",
            "100.127.255.254",
            "127.0.0.1",
            "127.255.255.254",
            "169.254.169.254",
            "172.16.0.1",
            "172.31.255.255",
            "192.0.0.1",
            "192.0.0.170",
            "192.0.2.10",
            "192.88.99.1",
            "192.168.1.1",
            "198.18.0.1",
            "198.19.255.255",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.1",
            "239.255.255.250",
            "240.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "fe80::1",
            "febf::1",
            "fc00::1",
            "fd12:3456::1",
            "ff02::1",
            "ff0e::1",
            "2001:db8::1",
            "2001::1",
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
            "2001:2::1",
            "3fff::1",
            "100::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "::ffff:0:192.168.0.1",
            "::127.0.0.1",
            "::10.1.2.3",
            "64:ff9b::127.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b:1::8.8.8.8",
            "2002:7f00:1::1",
            "2002:a00:1::",
            "2002:c0a8:101::1",
        ];
        let global = [
            "1.1.1.1",
            "8.8.8.8",
            "93.184.216.34",
            "100.63.255.255",
            "100.128.0.1",
            "172.15.255.255",
            "172.32.0.1",
            "192.0.1.1",
            "198.20.0.1",
            "223.255.255.255",
            "2606:4700:4700::1111",
            "2a00:1450:4001:81b::200e",
            "2001:4860:4860::8888",
            "::ffff:8.8.8.8",
            "64:ff9b::8.8.8.8",
            "2002:808:808::1",
        ];
        for text in internal {
            let ip: IpAddr = text.parse().expect(text);
            assert!(!is_global(ip), "{text} must be refused");
        }
        for text in global {
            let ip: IpAddr = text.parse().expect(text);
            assert!(is_global(ip), "{text} must be allowed");
        }
    }
}
