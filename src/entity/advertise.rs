//! The URL an entity tells peers to reach it at, when nobody said.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};

/// `{scheme}://{address}`, with a wildcard address (`0.0.0.0`, `[::]`) replaced
/// by the host's primary address: a peer on another host cannot connect to
/// a wildcard, and a peer on this one would reach only itself.
///
/// The primary address is the one the host sends from on its default route
/// — in a container or a pod, the address other containers and pods reach
/// it at. A host with several networks whose peers are not on the default
/// route's should say which address to use (`STAGE7_HTTP_ADVERTISE`).
/// Without any route, loopback is advertised, with a warning.
pub(super) fn advertised_url(scheme: &str, listening: SocketAddr) -> String {
    if !listening.ip().is_unspecified() {
        return format!("{scheme}://{listening}");
    }
    let primary = match listening.ip() {
        // A `[::]` socket usually takes IPv4 too: either family serves.
        IpAddr::V6(_) => primary_ip(true).or_else(|| primary_ip(false)),
        IpAddr::V4(_) => primary_ip(false),
    };
    let ip = primary.unwrap_or_else(|| {
        let loopback = match listening.ip() {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
        };
        tracing::warn!(
            %listening,
            "no network route to find this host's address by; advertising loopback, which \
             only this host can reach: set STAGE7_HTTP_ADVERTISE"
        );
        loopback
    });
    format!("{scheme}://{}", SocketAddr::new(ip, listening.port()))
}

/// The local address the routing table picks to reach beyond this host.
/// Connecting a UDP socket sends nothing: it only chooses a route. The
/// targets are documentation addresses (RFC 5737, RFC 3849), never
/// contacted.
fn primary_ip(v6: bool) -> Option<IpAddr> {
    let (local, beyond): (IpAddr, SocketAddr) = if v6 {
        (
            Ipv6Addr::UNSPECIFIED.into(),
            (Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1), 9).into(),
        )
    } else {
        (
            Ipv4Addr::UNSPECIFIED.into(),
            (Ipv4Addr::new(192, 0, 2, 1), 9).into(),
        )
    };
    let socket = UdpSocket::bind((local, 0)).ok()?;
    socket.connect(beyond).ok()?;
    let ip = socket.local_addr().ok()?.ip();
    (!ip.is_unspecified() && !ip.is_loopback()).then_some(ip)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_specific_address_is_advertised_as_it_is() {
        let listening: SocketAddr = "127.0.0.1:5070".parse().unwrap();
        assert_eq!(advertised_url("http", listening), "http://127.0.0.1:5070");
        let listening: SocketAddr = "[fd00::2]:5070".parse().unwrap();
        assert_eq!(advertised_url("http", listening), "http://[fd00::2]:5070");
    }

    #[test]
    fn a_wildcard_is_never_advertised() {
        for listening in ["0.0.0.0:5070", "[::]:5070"] {
            let url = advertised_url("http", listening.parse().unwrap());
            let uri: http::Uri = url.parse().unwrap();
            let host = uri.host().unwrap().trim_matches(['[', ']']);
            let ip: IpAddr = host.parse().unwrap();
            assert!(!ip.is_unspecified(), "{url}");
            assert_eq!(uri.port_u16(), Some(5070), "{url}");
        }
    }
}
