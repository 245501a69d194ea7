//! `sandbox.egress` entries and CONNECT targets: authorities, compared as the proxy compares
//! them (see the parent module's docs).

use std::collections::HashSet;
use std::net::{Ipv4Addr, Ipv6Addr};

/// A host as the list and the proxy compare it: a lower-case DNS name, or an IP address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Host {
    Name(String),
    V4(Ipv4Addr),
    V6(Ipv6Addr),
}

impl Host {
    /// What `TcpStream::connect` takes.
    pub(super) fn connect_to(&self) -> String {
        match self {
            Host::Name(n) => n.clone(),
            Host::V4(a) => a.to_string(),
            Host::V6(a) => a.to_string(),
        }
    }
}

impl std::fmt::Display for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Host::Name(n) => f.write_str(n),
            Host::V4(a) => write!(f, "{a}"),
            Host::V6(a) => write!(f, "[{a}]"),
        }
    }
}

/// `host:port` as a CONNECT request's target (authority form), or `None` when it is not one:
/// no userinfo, no path, a port of 1–65535 in digits, a host that is a DNS name (letters,
/// digits, `-`, dot-separated non-empty labels) or an IP literal (`[…]` for IPv6).
pub fn parse_authority(s: &str) -> Option<(Host, u16)> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (v6, port) = rest.split_once("]:")?;
        (Host::V6(v6.parse().ok()?), port)
    } else {
        let (host, port) = s.rsplit_once(':')?;
        let host = host.to_ascii_lowercase();
        let host = match host.parse::<Ipv4Addr>() {
            Ok(a) => Host::V4(a),
            Err(_) if is_dns_name(&host) => Host::Name(host),
            Err(_) => return None,
        };
        (host, port)
    };
    if port.is_empty() || port.len() > 5 || !port.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let port: u16 = port.parse().ok().filter(|p| *p != 0)?;
    Some((host, port))
}

fn is_dns_name(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 253
        && h.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        })
        // Every label a number (decimal, octal or 0x-hex) is an IPv4 address written the way
        // inet_aton reads it ("127.1", "0x7f.1"): never a name.
        && !h.split('.').all(is_inet_aton_number)
}

fn is_inet_aton_number(label: &str) -> bool {
    match label.strip_prefix("0x") {
        Some(hex) => hex.bytes().all(|b| b.is_ascii_hexdigit()),
        None => label.bytes().all(|b| b.is_ascii_digit()),
    }
}

/// The `sandbox.egress` list.
#[derive(Debug, Default, Clone)]
pub struct AllowList {
    exact: HashSet<(Host, u16)>,
    /// `*.suffix:port`: (`.suffix`, port).
    wildcard: Vec<(String, u16)>,
}

impl AllowList {
    /// The list, or the first entry that is not `host:port` or `*.suffix:port` (for the
    /// config's check).
    pub fn parse(entries: &[String]) -> Result<AllowList, String> {
        let mut list = AllowList::default();
        for e in entries {
            let e = e.trim();
            if let Some(rest) = e.strip_prefix("*.") {
                match parse_authority(rest) {
                    Some((Host::Name(suffix), port)) => {
                        list.wildcard.push((format!(".{suffix}"), port))
                    }
                    _ => return Err(bad_entry(e)),
                }
            } else {
                let a = parse_authority(e).ok_or_else(|| bad_entry(e))?;
                list.exact.insert(a);
            }
        }
        Ok(list)
    }

    /// The list, leaving out (with a warning) entries that are not valid.
    pub fn new(entries: &[String]) -> AllowList {
        let mut list = AllowList::default();
        for e in entries {
            match AllowList::parse(std::slice::from_ref(e)) {
                Ok(one) => {
                    list.exact.extend(one.exact);
                    list.wildcard.extend(one.wildcard);
                }
                Err(why) => tracing::warn!("sandbox.egress: {why}; left out"),
            }
        }
        list
    }

    pub fn is_empty(&self) -> bool {
        self.exact.is_empty() && self.wildcard.is_empty()
    }

    pub fn allows(&self, host: &Host, port: u16) -> bool {
        if self.exact.contains(&(host.clone(), port)) {
            return true;
        }
        match host {
            Host::Name(name) => self
                .wildcard
                .iter()
                .any(|(suffix, p)| *p == port && name.ends_with(suffix.as_str())),
            _ => false,
        }
    }
}

fn bad_entry(e: &str) -> String {
    format!("sandbox.egress entry {e:?} is not host:port or *.domain:port (e.g. \"registry.npmjs.org:443\")")
}
