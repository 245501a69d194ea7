//! `listen`, `tls_cert`, `tls_key` (file, `DROVER_LISTEN`/`DROVER_TLS_CERT`/`DROVER_TLS_KEY`,
//! `--listen`/`--tls-cert`/`--tls-key`): the team server's TCP listener (docs/design.md §7);
//! and `web_listen` (`DROVER_WEB_LISTEN`, `--web-listen`): the dashboard's loopback listener
//! (docs/design.md §10).

use super::error::{ConfigError, Origin};
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};

/// Where the API is also served over TCP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listen {
    /// `HOST:PORT` resolved (port 0: the kernel picks one; the daemon writes the bound address
    /// to `DROVER_HOME/listen.addr`).
    pub addr: SocketAddr,
    /// Serve TLS with these PEM files; `None`: plain HTTP.
    pub tls: Option<TlsFiles>,
}

/// A certificate chain and its private key, PEM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Listen {
    /// Plain HTTP on an address other than loopback: keys and prompts cross the network in
    /// the clear (allowed, with a warning in the log and a `drover doctor` line).
    pub fn exposed_without_tls(&self) -> bool {
        self.tls.is_none() && !self.addr.ip().is_loopback()
    }
}

/// The checked setting: `listen` a `HOST:PORT`; `tls_cert` and `tls_key` both or neither, and
/// only with `listen`. Relative paths are relative to `home`.
pub(super) fn resolve(
    listen: Option<&str>,
    cert: Option<&str>,
    key: Option<&str>,
    home: &Path,
    origin: &dyn Fn(&str) -> Origin,
) -> Result<Option<Listen>, ConfigError> {
    let path = |p: &str| {
        let p = Path::new(p.trim());
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            home.join(p)
        }
    };
    let tls = match (cert, key) {
        (None, None) => None,
        (Some(c), Some(k)) => Some(TlsFiles {
            cert: path(c),
            key: path(k),
        }),
        (Some(_), None) => {
            return Err(ConfigError::invalid(
                origin("tls_cert"),
                "tls_cert is set without tls_key: give both (PEM files) or neither",
            ))
        }
        (None, Some(_)) => {
            return Err(ConfigError::invalid(
                origin("tls_key"),
                "tls_key is set without tls_cert: give both (PEM files) or neither",
            ))
        }
    };
    let Some(listen) = listen.map(str::trim) else {
        if tls.is_some() {
            return Err(ConfigError::invalid(
                origin("tls_cert"),
                "tls_cert and tls_key need listen = \"HOST:PORT\" (TLS is for the TCP listener)",
            ));
        }
        return Ok(None);
    };
    let bad = |why: &str| {
        ConfigError::invalid(
            origin("listen"),
            format!(
                "listen = {listen:?}: {why}; write HOST:PORT, e.g. 127.0.0.1:7420 or [::]:7420"
            ),
        )
    };
    let addr = match listen.parse::<SocketAddr>() {
        Ok(a) => a,
        Err(_) => {
            if !listen.contains(':') {
                return Err(bad("no port"));
            }
            listen
                .to_socket_addrs()
                .map_err(|e| bad(&e.to_string()))?
                .next()
                .ok_or_else(|| bad("the host has no address"))?
        }
    };
    Ok(Some(Listen { addr, tls }))
}

/// The default `web_listen`: loopback, any port (the bound address goes to
/// `DROVER_HOME/web.addr`).
pub const DEFAULT_WEB_LISTEN: &str = "127.0.0.1:0";

/// The checked `web_listen`: `off` (none), or a loopback `HOST:PORT` (default
/// [`DEFAULT_WEB_LISTEN`]). Anything that is not loopback is refused: the dashboard's loopback
/// door logs the host owner in with a one-time URL and no key, so it must never face a network
/// (the team listener `listen`, with API keys, is the way to serve other hosts).
pub(super) fn resolve_web(
    value: Option<&str>,
    origin: &dyn Fn(&str) -> Origin,
) -> Result<Option<SocketAddr>, ConfigError> {
    let value = value.map(str::trim).unwrap_or(DEFAULT_WEB_LISTEN);
    if value.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    let bad = |why: &str| {
        ConfigError::invalid(
            origin("web_listen"),
            format!(
                "web_listen = {value:?}: {why}; write a loopback HOST:PORT (e.g. 127.0.0.1:7421) \
                 or \"off\" — to serve other hosts use listen (the team server, with API keys)"
            ),
        )
    };
    let addrs: Vec<SocketAddr> = match value.parse::<SocketAddr>() {
        Ok(a) => vec![a],
        Err(_) if !value.contains(':') => return Err(bad("no port")),
        Err(_) => value
            .to_socket_addrs()
            .map_err(|e| bad(&e.to_string()))?
            .collect(),
    };
    let Some(addr) = addrs.first().copied() else {
        return Err(bad("the host has no address"));
    };
    if !addrs.iter().all(|a| a.ip().is_loopback()) {
        return Err(bad("not a loopback address"));
    }
    Ok(Some(addr))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn origin(key: &str) -> Origin {
        Origin::Env(key.to_string())
    }

    #[test]
    fn web_listen_is_loopback_or_off() {
        let default = resolve_web(None, &origin).unwrap().unwrap();
        assert_eq!(default.to_string(), "127.0.0.1:0");
        assert_eq!(resolve_web(Some("off"), &origin).unwrap(), None);
        assert_eq!(resolve_web(Some(" OFF "), &origin).unwrap(), None);
        let v6 = resolve_web(Some("[::1]:7421"), &origin).unwrap().unwrap();
        assert!(v6.ip().is_loopback() && v6.port() == 7421);
        assert!(resolve_web(Some("localhost:0"), &origin)
            .unwrap()
            .unwrap()
            .ip()
            .is_loopback());
        for bad in ["0.0.0.0:7421", "[::]:7421", "10.1.2.3:80", "127.0.0.1"] {
            let e = resolve_web(Some(bad), &origin).unwrap_err().to_string();
            assert!(e.contains("web_listen"), "{bad}: {e}");
            assert!(!e.contains('\n'), "one line: {e}");
        }
        let e = resolve_web(Some("0.0.0.0:1"), &origin)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("not a loopback address") && e.contains("listen"),
            "{e}"
        );
    }

    #[test]
    fn listen_and_tls_are_checked() {
        let home = Path::new("/h");
        let l = resolve(Some("127.0.0.1:0"), None, None, home, &origin)
            .unwrap()
            .unwrap();
        assert_eq!(l.addr.port(), 0);
        assert!(!l.exposed_without_tls());
        let l = resolve(
            Some("0.0.0.0:7420"),
            Some("c.pem"),
            Some("/k.pem"),
            home,
            &origin,
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            l.tls,
            Some(TlsFiles {
                cert: "/h/c.pem".into(),
                key: "/k.pem".into()
            })
        );
        let open = resolve(Some("0.0.0.0:7420"), None, None, home, &origin)
            .unwrap()
            .unwrap();
        assert!(open.exposed_without_tls());
        assert!(resolve(None, None, None, home, &origin).unwrap().is_none());
        for (l, c, k, needle) in [
            (Some("127.0.0.1:1"), Some("c"), None, "without tls_key"),
            (Some("127.0.0.1:1"), None, Some("k"), "without tls_cert"),
            (None, Some("c"), Some("k"), "need listen"),
            (Some("127.0.0.1"), None, None, "no port"),
            (Some("127.0.0.1:99999"), None, None, "HOST:PORT"),
        ] {
            let e = resolve(l, c, k, home, &origin).unwrap_err().to_string();
            assert!(e.contains(needle), "{e}");
            assert!(!e.contains('\n'), "{e}");
        }
    }
}
