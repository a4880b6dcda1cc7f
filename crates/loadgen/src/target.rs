//! Where the load goes, and the refusal to send it anywhere but this machine by default.
//!
//! A load generator pointed at the wrong host is a denial-of-service tool, so the rule is strict
//! and checked before the first packet: the target must be a loopback address (`127.0.0.0/8`,
//! `::1`, or `localhost`, which must itself resolve only to loopback addresses). Any other host
//! is refused unless the user names it with `--url` *and* confirms with `--allow-remote`.
//! Names other than `localhost` are never resolved to decide the question: what a name resolves
//! to can change between the check and the connection.

use std::net::{IpAddr, SocketAddr};

use reqwest::Url;

/// The default target: a server started with the embedded configuration.
pub const DEFAULT_URL: &str = "http://127.0.0.1:8080";

/// Why a target was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("{0:?} is not a URL: {1}")]
    Unparsable(String, String),
    #[error("{0:?}: only http:// targets are supported (the WebSocket URL is derived from it)")]
    Scheme(String),
    #[error("{0:?} names no host")]
    NoHost(String),
    #[error("{0:?}: give only scheme, host and port (no user, path, query or fragment)")]
    NotABase(String),
    #[error(
        "{host} is not a loopback address; roomgate-load only loads this machine unless the \
         target is given explicitly with --url and confirmed with --allow-remote"
    )]
    NotLoopback { host: String },
    #[error("localhost resolves to {0}, which is not a loopback address")]
    LocalhostNotLoopback(IpAddr),
}

/// What kind of host a URL names, decided without any lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostKind {
    /// An IP literal in `127.0.0.0/8` or `::1`.
    LoopbackIp,
    /// The name `localhost`: loopback once its addresses are checked.
    Localhost,
    /// Anything else.
    Other(String),
}

/// A validated base URL of a Roomgate server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `http://host:port`, without a trailing slash.
    pub http: String,
    /// `ws://host:port`, without a trailing slash.
    pub ws: String,
    /// The host as written, for reports.
    pub host: String,
    pub port: u16,
    pub kind: HostKind,
}

impl Target {
    /// Parses and checks `url`. `explicit` says whether the user typed it (with `--url`);
    /// `allow_remote` whether they also passed `--allow-remote`.
    pub fn parse(url: &str, explicit: bool, allow_remote: bool) -> Result<Self, TargetError> {
        let parsed =
            Url::parse(url).map_err(|e| TargetError::Unparsable(url.to_owned(), e.to_string()))?;
        if parsed.scheme() != "http" {
            return Err(TargetError::Scheme(url.to_owned()));
        }
        if !parsed.username().is_empty()
            || parsed.password().is_some()
            || !(parsed.path().is_empty() || parsed.path() == "/")
            || parsed.query().is_some()
            || parsed.fragment().is_some()
        {
            return Err(TargetError::NotABase(url.to_owned()));
        }
        let host = parsed
            .host()
            .ok_or_else(|| TargetError::NoHost(url.to_owned()))?;
        let kind = host_kind(&host);
        if let HostKind::Other(name) = &kind {
            if !(explicit && allow_remote) {
                return Err(TargetError::NotLoopback { host: name.clone() });
            }
        }
        let port = parsed.port_or_known_default().unwrap_or(80);
        let host = parsed.host_str().unwrap_or_default().to_owned();
        Ok(Self {
            http: format!("http://{host}:{port}"),
            ws: format!("ws://{host}:{port}"),
            host,
            port,
            kind,
        })
    }

    /// The target of a server this process started itself on `address`.
    pub fn local(address: SocketAddr) -> Self {
        let host = match address.ip() {
            IpAddr::V6(ip) => format!("[{ip}]"),
            IpAddr::V4(ip) => ip.to_string(),
        };
        let port = address.port();
        Self {
            http: format!("http://{host}:{port}"),
            ws: format!("ws://{host}:{port}"),
            host,
            port,
            kind: if address.ip().is_loopback() {
                HostKind::LoopbackIp
            } else {
                HostKind::Other(address.ip().to_string())
            },
        }
    }

    /// For `localhost`, checks that every address it resolves to is a loopback address
    /// (a hosts file could say otherwise). Other kinds need no lookup.
    pub async fn confirm_loopback(&self) -> anyhow::Result<()> {
        if self.kind != HostKind::Localhost {
            return Ok(());
        }
        let addresses = tokio::net::lookup_host(("localhost", self.port)).await?;
        check_resolved(addresses.map(|a| a.ip()))?;
        Ok(())
    }
}

/// Refuses the first resolved address that is not a loopback address.
pub fn check_resolved(addresses: impl IntoIterator<Item = IpAddr>) -> Result<(), TargetError> {
    match addresses.into_iter().find(|ip| !ip.is_loopback()) {
        Some(ip) => Err(TargetError::LocalhostNotLoopback(ip)),
        None => Ok(()),
    }
}

fn host_kind(host: &url::Host<&str>) -> HostKind {
    match host {
        url::Host::Ipv4(ip) if ip.is_loopback() => HostKind::LoopbackIp,
        url::Host::Ipv6(ip) if ip.is_loopback() => HostKind::LoopbackIp,
        url::Host::Domain(name)
            if name.eq_ignore_ascii_case("localhost")
                || name.eq_ignore_ascii_case("localhost.") =>
        {
            HostKind::Localhost
        }
        // Schemes the URL standard does not know (mysql://, redis://) keep IP literals as
        // opaque names.
        url::Host::Domain(name) => match name
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
        {
            Ok(ip) if ip.is_loopback() => HostKind::LoopbackIp,
            _ => HostKind::Other((*name).to_owned()),
        },
        url::Host::Ipv4(ip) => HostKind::Other(ip.to_string()),
        url::Host::Ipv6(ip) => HostKind::Other(ip.to_string()),
    }
}

/// Checks the host of a service URL the tool connects to on its own (`compare`'s MariaDB and
/// Redis): the same rule as for the target.
pub fn check_service_url(url: &str, allow_remote: bool) -> Result<(), TargetError> {
    let parsed =
        Url::parse(url).map_err(|e| TargetError::Unparsable(url.to_owned(), e.to_string()))?;
    let host = parsed
        .host()
        .ok_or_else(|| TargetError::NoHost(url.to_owned()))?;
    match host_kind(&host) {
        HostKind::Other(name) if !allow_remote => Err(TargetError::NotLoopback { host: name }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_is_accepted() {
        let target = Target::parse(DEFAULT_URL, false, false).unwrap();
        assert_eq!(target.http, "http://127.0.0.1:8080");
        assert_eq!(target.ws, "ws://127.0.0.1:8080");
        assert_eq!(target.kind, HostKind::LoopbackIp);
    }

    #[test]
    fn the_whole_loopback_range_and_ipv6_loopback_are_accepted() {
        for url in [
            "http://127.0.0.1:9",
            "http://127.1.2.3:9/",
            "http://127.255.255.254:9",
            "http://[::1]:9",
        ] {
            let target = Target::parse(url, true, false).unwrap();
            assert_eq!(target.kind, HostKind::LoopbackIp, "{url}");
        }
        let v6 = Target::parse("http://[::1]:4000", true, false).unwrap();
        assert_eq!(v6.http, "http://[::1]:4000");
    }

    #[test]
    fn localhost_is_accepted_pending_its_lookup() {
        let target = Target::parse("http://localhost:8080", true, false).unwrap();
        assert_eq!(target.kind, HostKind::Localhost);
        let target = Target::parse("http://LOCALHOST:8080", true, false).unwrap();
        assert_eq!(target.kind, HostKind::Localhost);
    }

    #[test]
    fn non_loopback_hosts_are_refused_without_allow_remote() {
        for url in [
            "http://10.0.0.1:8080",
            "http://192.168.1.10:8080",
            "http://172.16.0.1",
            "http://8.8.8.8",
            "http://0.0.0.0:8080",
            "http://[2001:db8::1]:8080",
            "http://example.com",
            "http://localhost.example.com",
            "http://127.0.0.1.nip.io",
        ] {
            let err = Target::parse(url, true, false).unwrap_err();
            assert!(
                matches!(err, TargetError::NotLoopback { .. }),
                "{url}: {err}"
            );
        }
    }

    #[test]
    fn a_remote_host_needs_both_url_and_allow_remote() {
        // Given explicitly and confirmed: accepted.
        let target = Target::parse("http://10.0.0.1:8080", true, true).unwrap();
        assert_eq!(target.kind, HostKind::Other("10.0.0.1".into()));
        // Confirmation without it having been typed (e.g. a default) is not enough.
        assert!(Target::parse("http://10.0.0.1:8080", false, true).is_err());
    }

    #[test]
    fn other_schemes_and_non_base_urls_are_refused() {
        assert!(matches!(
            Target::parse("https://127.0.0.1", true, false),
            Err(TargetError::Scheme(_))
        ));
        assert!(matches!(
            Target::parse("ws://127.0.0.1", true, false),
            Err(TargetError::Scheme(_))
        ));
        for url in [
            "http://127.0.0.1/api",
            "http://u:p@127.0.0.1",
            "http://127.0.0.1/?x=1",
            "http://127.0.0.1/#f",
        ] {
            assert!(
                matches!(
                    Target::parse(url, true, false),
                    Err(TargetError::NotABase(_))
                ),
                "{url}"
            );
        }
        assert!(matches!(
            Target::parse("not a url", true, false),
            Err(TargetError::Unparsable(..))
        ));
    }

    #[test]
    fn a_missing_port_means_80() {
        assert_eq!(
            Target::parse("http://127.0.0.1", true, false).unwrap().port,
            80
        );
    }

    #[test]
    fn localhost_must_resolve_to_loopback_only() {
        assert!(check_resolved(["127.0.0.1".parse().unwrap(), "::1".parse().unwrap()]).is_ok());
        let err = check_resolved(["127.0.0.1".parse().unwrap(), "10.1.2.3".parse().unwrap()])
            .unwrap_err();
        assert_eq!(
            err,
            TargetError::LocalhostNotLoopback("10.1.2.3".parse().unwrap())
        );
    }

    #[test]
    fn service_urls_follow_the_same_rule() {
        assert!(check_service_url("mysql://u:p@127.0.0.1:3306", false).is_ok());
        assert!(check_service_url("mysql://u:p@[::1]:3306", false).is_ok());
        assert!(check_service_url("redis://localhost:6379", false).is_ok());
        assert!(check_service_url("redis://127.0.0.2:6379/0", false).is_ok());
        assert!(check_service_url("redis://10.0.0.5:6379", false).is_err());
        assert!(check_service_url("mysql://u:p@db.example.com:3306", false).is_err());
        assert!(check_service_url("mysql://u:p@db.example.com:3306", true).is_ok());
    }

    #[test]
    fn local_targets_are_built_from_socket_addresses() {
        let target = Target::local("127.0.0.1:4321".parse().unwrap());
        assert_eq!(target.http, "http://127.0.0.1:4321");
        assert_eq!(target.kind, HostKind::LoopbackIp);
    }
}
