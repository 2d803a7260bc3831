//! Who is calling: the identity rules of the contract, shared by REST and the WebSocket.
//!
//! - A token (`Authorization: Bearer …` or `?token=`) must verify; a `user_id` that contradicts
//!   it is refused.
//! - Without a token, a `user_id` is believed only from a loopback client that is not behind a
//!   proxy (the machine's own users and tools) and, if it is a browser page, only from a page
//!   this server served to a loopback address (any other page open on the machine, or a DNS
//!   rebinding, would otherwise act as anyone) — or from anyone when `auth.mode = "open"`.
//! - Otherwise the caller is anonymous: it may listen, not act.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use axum::http::{header, HeaderMap, StatusCode};

use super::{ApiError, AppState};
use crate::auth::valid_user_id;
use crate::config::AuthMode;

/// A caller we know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub user_id: String,
    /// From a token with the `admin` claim.
    pub admin: bool,
    /// Proven by a token (not only claimed by a trusted client).
    pub via_token: bool,
}

const PROXY_HEADERS: [&str; 3] = ["x-forwarded-for", "forwarded", "x-real-ip"];

fn proxied(headers: &HeaderMap) -> bool {
    PROXY_HEADERS.iter().any(|h| headers.contains_key(*h))
}

/// The address a request comes from: the peer's, or, when the peer is a proxy on this machine
/// (a loopback peer), the address that proxy appended to `X-Forwarded-For` — the last entry of
/// the last such header line, which is the proxy's own (nginx's `$proxy_add_x_forwarded_for`,
/// HAProxy's `option forwardfor`, Caddy's default). Entries before it, `X-Real-IP` and
/// `Forwarded` may come from the client through a proxy that passes them on, and a remote peer's
/// headers are its own say-so: none of those is believed. A last entry that is no address
/// (`unknown`) leaves the peer's.
pub fn client_address(peer: SocketAddr, headers: &HeaderMap) -> IpAddr {
    let ip = peer.ip().to_canonical();
    if !ip.is_loopback() {
        return ip;
    }
    headers
        .get_all("x-forwarded-for")
        .iter()
        .next_back()
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.rsplit(',').next())
        .and_then(parse_address)
        .map_or(ip, |a| a.to_canonical())
}

/// An address as proxies write it: `192.0.2.7`, `192.0.2.7:4711`, `[2001:db8::1]:4711`.
fn parse_address(text: &str) -> Option<IpAddr> {
    let t = text.trim();
    t.parse()
        .ok()
        .or_else(|| t.parse::<SocketAddr>().ok().map(|s| s.ip()))
        .or_else(|| {
            t.strip_prefix('[')
                .and_then(|r| r.split(']').next())
                .and_then(|ip| ip.parse().ok())
        })
}

/// The machine's own operator: a loopback client that asked for a loopback name, not a browser
/// page (`Origin`), not relayed by a proxy.
pub fn is_operator(peer: SocketAddr, headers: &HeaderMap) -> bool {
    local_caller(peer, headers) && !headers.contains_key(header::ORIGIN)
}

/// A loopback client, not relayed by a proxy, that asked for this server by a loopback name.
///
/// The name matters because of DNS rebinding: a page at `http://evil.example:8082`, its name
/// re-pointed at 127.0.0.1, makes same-origin requests to this server from the machine itself,
/// and a same-origin `GET` carries no `Origin` to tell it from a local tool; its `Host` is still
/// `evil.example:8082`. (A reverse proxy on the same machine should say whom it relays, with
/// `X-Forwarded-For` as nginx's usual set-up does; one that says nothing looks local.)
fn local_caller(peer: SocketAddr, headers: &HeaderMap) -> bool {
    // Canonical: a dual-stack socket sees a local client as `::ffff:127.0.0.1`.
    peer.ip().to_canonical().is_loopback() && !proxied(headers) && loopback_host(headers)
}

/// Whether `Host` names this machine's loopback (no `Host`, from an HTTP/1.0 tool, is taken as
/// local: a browser always sends one).
fn loopback_host(headers: &HeaderMap) -> bool {
    match headers.get(header::HOST).map(|h| h.to_str()) {
        None => true,
        Some(Ok(host)) => is_loopback_name(host),
        Some(Err(_)) => false,
    }
}

/// `localhost`, `127.0.0.1` or `[::1]`, with or without a port.
fn is_loopback_name(host: &str) -> bool {
    let name = match host.rsplit_once(':') {
        Some((name, port)) if port.chars().all(|c| c.is_ascii_digit()) => name,
        _ => host,
    };
    matches!(
        name.to_ascii_lowercase().as_str(),
        "localhost" | "127.0.0.1" | "[::1]"
    )
}

/// A request without `Origin` (not a browser page), or from a page of this very server reached
/// at a loopback name: `Origin`'s authority equals `Host`, and that host is loopback.
fn own_page_or_no_browser(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let (Ok(origin), Some(Ok(host))) = (
        origin.to_str(),
        headers.get(header::HOST).map(|h| h.to_str()),
    ) else {
        return false;
    };
    let Some(authority) = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
    else {
        return false;
    };
    authority.eq_ignore_ascii_case(host) && is_loopback_name(host)
}

/// The caller's identity, `None` for an anonymous caller; an invalid token or a `user_id` that
/// contradicts it is an error (401).
pub fn identify(
    state: &AppState,
    peer: SocketAddr,
    headers: &HeaderMap,
    query: &HashMap<String, String>,
) -> Result<Option<Identity>, ApiError> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim);
    let token = bearer
        .or_else(|| query.get("token").map(String::as_str))
        .filter(|t| !t.is_empty());
    let claimed = query
        .get("user_id")
        .map(|u| u.trim())
        .filter(|u| !u.is_empty());
    if let Some(u) = claimed {
        if !valid_user_id(u) {
            return Err(ApiError::bad_request("invalid_user_id", "invalid user_id"));
        }
    }
    if let Some(token) = token {
        let claims = state
            .auth
            .verify(token)
            .map_err(|e| ApiError::new(StatusCode::UNAUTHORIZED, "invalid_token", e.to_string()))?;
        if claimed.is_some_and(|u| u != claims.sub) {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "user_mismatch",
                "user_id does not match the token",
            ));
        }
        return Ok(Some(Identity {
            user_id: claims.sub,
            admin: claims.admin,
            via_token: true,
        }));
    }
    let trusted = state.config.auth.mode == AuthMode::Open
        || (local_caller(peer, headers) && own_page_or_no_browser(headers));
    Ok(claimed.filter(|_| trusted).map(|u| Identity {
        user_id: u.to_string(),
        admin: false,
        via_token: false,
    }))
}

/// As [`identify`], but an anonymous caller is refused (401).
pub fn require_user(
    state: &AppState,
    peer: SocketAddr,
    headers: &HeaderMap,
    query: &HashMap<String, String>,
) -> Result<Identity, ApiError> {
    identify(state, peer, headers, query)?.ok_or_else(|| {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "say who you are: a token (Authorization: Bearer …), or user_id from this machine",
        )
    })
}

/// An admin token, or the machine's operator.
pub fn require_admin(
    state: &AppState,
    peer: SocketAddr,
    headers: &HeaderMap,
    query: &HashMap<String, String>,
) -> Result<(), ApiError> {
    if is_operator(peer, headers) {
        return Ok(());
    }
    match identify(state, peer, headers, query)? {
        Some(id) if id.admin => Ok(()),
        _ => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "an admin token is needed",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn only_our_own_loopback_pages_may_claim_a_user() {
        assert!(own_page_or_no_browser(&headers(&[(
            "host",
            "127.0.0.1:8082"
        )])));
        assert!(own_page_or_no_browser(&headers(&[
            ("host", "127.0.0.1:8082"),
            ("origin", "http://127.0.0.1:8082")
        ])));
        assert!(own_page_or_no_browser(&headers(&[
            ("host", "localhost:8082"),
            ("origin", "http://localhost:8082")
        ])));
        for (host, origin) in [
            ("127.0.0.1:8082", "http://evil.example"),
            ("127.0.0.1:8082", "http://127.0.0.1:9999"),
            // DNS rebinding: the page's own origin, but not a loopback name.
            ("evil.example:8082", "http://evil.example:8082"),
            ("127.0.0.1:8082", "null"),
        ] {
            assert!(
                !own_page_or_no_browser(&headers(&[("host", host), ("origin", origin)])),
                "{host} {origin}"
            );
        }
        assert!(!own_page_or_no_browser(&headers(&[(
            "origin",
            "http://127.0.0.1:8082"
        )])));
    }

    /// A DNS-rebound page's same-origin `GET` (no `Origin`) from this machine is not the
    /// operator, nor anyone it claims to be; local tools are.
    #[test]
    fn a_rebound_name_is_not_a_local_caller() {
        let local: SocketAddr = "127.0.0.1:50000".parse().unwrap();
        let remote: SocketAddr = "192.0.2.7:50000".parse().unwrap();
        for host in [
            "127.0.0.1:8082",
            "localhost:8082",
            "LOCALHOST",
            "[::1]:8082",
        ] {
            let h = headers(&[("host", host)]);
            assert!(is_operator(local, &h), "{host}");
            assert!(!is_operator(remote, &h), "{host}");
        }
        assert!(
            is_operator(local, &HeaderMap::new()),
            "an HTTP/1.0 tool sends no Host"
        );
        for host in [
            "evil.example:8082",
            "evil.example",
            "127.0.0.1.evil.example",
            "0.0.0.0:8082",
        ] {
            assert!(!is_operator(local, &headers(&[("host", host)])), "{host}");
        }
        assert!(!is_operator(
            local,
            &headers(&[("host", "localhost:8082"), ("x-forwarded-for", "192.0.2.7")])
        ));
    }

    #[test]
    fn a_local_proxy_names_the_client_and_nothing_else_is_believed() {
        let local: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let mapped_local: SocketAddr = "[::ffff:127.0.0.1]:5000".parse().unwrap();
        let remote: SocketAddr = "198.51.100.4:5000".parse().unwrap();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let xff = headers(&[("x-forwarded-for", "10.0.0.1, 192.0.2.7")]);
        assert_eq!(client_address(local, &xff), ip("192.0.2.7"));
        assert_eq!(client_address(mapped_local, &xff), ip("192.0.2.7"));
        assert_eq!(client_address(remote, &xff), ip("198.51.100.4"));
        // The client's own line comes first; the proxy's appended line is the one believed.
        let mut two_lines = HeaderMap::new();
        two_lines.append("x-forwarded-for", "203.0.113.66".parse().unwrap());
        two_lines.append("x-forwarded-for", "192.0.2.8".parse().unwrap());
        assert_eq!(client_address(local, &two_lines), ip("192.0.2.8"));
        assert_eq!(
            client_address(
                local,
                &headers(&[("x-forwarded-for", "[2001:db8::7]:4711")])
            ),
            ip("2001:db8::7")
        );
        // Headers a client can send through a proxy that passes them on: not believed.
        for (name, value) in [("x-real-ip", "192.0.2.9"), ("forwarded", "for=192.0.2.9")] {
            assert_eq!(
                client_address(local, &headers(&[(name, value)])),
                ip("127.0.0.1")
            );
        }
        // Nothing usable: the peer.
        assert_eq!(
            client_address(local, &headers(&[("x-forwarded-for", "unknown")])),
            ip("127.0.0.1")
        );
    }
}
