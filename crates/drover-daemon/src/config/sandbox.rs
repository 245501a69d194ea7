//! `[sandbox]`: the checkout's kind and the agent's confinement (docs/design.md §11).
//!
//! Two forms, one meaning: the older top-level string `sandbox = "overlay"` is the table's
//! `kind` (`[sandbox] kind = "overlay"`); a file has one or the other (TOML allows no both).
//! `DROVER_SANDBOX` and `drover daemon --sandbox` set `sandbox.kind`, `DROVER_SANDBOX_ISOLATION`
//! sets `sandbox.isolation`; each leaves the table's other keys alone.

use super::{ConfigError, Confinement, Origin};
use drover_sandbox::SandboxMode;
use drover_types::{validate, Isolation, Limits};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// The `[sandbox]` table as written (after the string form became `{kind}`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SandboxFile {
    pub kind: Option<String>,
    pub isolation: Option<String>,
    #[serde(default)]
    pub ro_paths: Vec<String>,
    #[serde(default)]
    pub rw_paths: Vec<String>,
    #[serde(default)]
    pub egress: Vec<String>,
    pub memory: Option<String>,
    pub cpus: Option<f64>,
    pub pids: Option<u64>,
}

/// `sandbox = "x"` → `[sandbox] kind = "x"` (in a parsed `config.toml`).
pub(super) fn table_form(table: &mut toml::Table) {
    if let Some(toml::Value::String(kind)) = table.get("sandbox") {
        let mut t = toml::Table::new();
        t.insert("kind".into(), toml::Value::String(kind.clone()));
        table.insert("sandbox".into(), toml::Value::Table(t));
    }
}

/// The checked table: the checkout's kind and the confinement. `origin` names the layer that
/// set a key; `home` is the daemon's `DROVER_HOME` (never exposed), `user_home` expands `~/`.
pub(super) fn resolve(
    raw: SandboxFile,
    origin: &dyn Fn(&str) -> Origin,
    home: &Path,
    user_home: Option<&Path>,
) -> Result<(SandboxMode, Confinement), ConfigError> {
    let bad = |key: &str, message: String| {
        ConfigError::invalid(origin(key), format!("{key} = {message}"))
    };
    let kind_str = raw.kind.as_deref().unwrap_or("auto");
    let kind = kind_str
        .trim()
        .parse::<SandboxMode>()
        .map_err(|e| ConfigError::invalid(origin("sandbox.kind"), e))?;
    let isolation = match raw.isolation.as_deref() {
        None => Isolation::Full,
        Some(v) => v.trim().parse::<Isolation>().map_err(|_| {
            bad(
                "sandbox.isolation",
                format!(
                    "{v:?}: use \"full\" (the default: confine every agent) or \"none\" (run \
                     agents unconfined, on purpose)"
                ),
            )
        })?,
    };
    let paths = |key: &str, list: &[String]| -> Result<Vec<PathBuf>, ConfigError> {
        list.iter()
            .map(|p| path(p, home, user_home).map_err(|why| bad(key, format!("{p:?}: {why}"))))
            .collect()
    };
    let ro_paths = paths("sandbox.ro_paths", &raw.ro_paths)?;
    let rw_paths = paths("sandbox.rw_paths", &raw.rw_paths)?;
    let egress = raw
        .egress
        .iter()
        .map(|a| authority(a).map_err(|why| bad("sandbox.egress", format!("{a:?}: {why}"))))
        .collect::<Result<Vec<_>, _>>()?;
    // The flags' own checks (`--memory`, `--cpus`, `--pids`); their message names the flag:
    // keep what follows it.
    let phrase = |e: String| match e.split_once(": ") {
        Some((flag, rest)) if flag.starts_with("--") => rest.to_string(),
        _ => e,
    };
    let memory_bytes = match &raw.memory {
        None => None,
        Some(m) => Some(
            validate::parse_memory(m)
                .map_err(|e| bad("sandbox.memory", format!("{m:?}: {}", phrase(e))))?,
        ),
    };
    if let Some(c) = raw.cpus {
        validate::cpus(Some(c)).map_err(|e| bad("sandbox.cpus", format!("{c}: {}", phrase(e))))?;
    }
    if let Some(p) = raw.pids {
        validate::pids(Some(p)).map_err(|e| bad("sandbox.pids", format!("{p}: {}", phrase(e))))?;
    }
    let (cpus, pids) = (raw.cpus, raw.pids);
    Ok((
        kind,
        Confinement {
            isolation,
            ro_paths,
            rw_paths,
            egress,
            limits: Limits {
                memory_bytes,
                cpus,
                pids,
            },
        },
    ))
}

/// An absolute path (or `~/…`), lexically normalised, that neither is nor holds nor lies in
/// `DROVER_HOME` (its keys, store and every task's sandbox).
fn path(p: &str, home: &Path, user_home: Option<&Path>) -> Result<PathBuf, String> {
    let expanded = match (p.strip_prefix("~/"), user_home) {
        (Some(rest), Some(h)) => h.join(rest),
        (Some(_), None) => return Err("`~/` needs HOME set; give an absolute path".into()),
        (None, _) => PathBuf::from(p),
    };
    if !expanded.is_absolute() {
        return Err("give an absolute path (or one starting with ~/)".into());
    }
    let mut clean = PathBuf::new();
    for c in expanded.components() {
        match c {
            std::path::Component::ParentDir => {
                clean.pop();
            }
            std::path::Component::CurDir => {}
            c => clean.push(c),
        }
    }
    let drover_home = normalise(home);
    if clean.starts_with(&drover_home) || drover_home.starts_with(&clean) {
        return Err(format!(
            "it overlaps DROVER_HOME ({}), which holds the daemon's keys, store and every \
             task's sandbox; expose a directory outside it",
            drover_home.display()
        ));
    }
    Ok(clean)
}

fn normalise(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf())
}

/// `host:port` (`[v6]:port` for an IPv6 address, `*.domain:port` for every name under a
/// domain), port 1-65535; the host a DNS name or an address. Returned trimmed and lower-cased.
/// The same rules as the egress proxy's list (`task_sockets::egress::allow`), so an entry the
/// config accepts is one the proxy honours.
pub(super) fn authority(a: &str) -> Result<String, String> {
    let usage = "write host:port, e.g. \"registry.npmjs.org:443\"";
    let a = a.trim().to_ascii_lowercase();
    let plain = a.strip_prefix("*.").unwrap_or(&a);
    let (host, port) = plain
        .rsplit_once(':')
        .ok_or_else(|| format!("no port: {usage}"))?;
    let port_ok = !port.is_empty()
        && port.chars().all(|c| c.is_ascii_digit())
        && matches!(port.parse::<u32>(), Ok(1..=65535));
    if !port_ok {
        return Err(format!("port {port:?} is not 1-65535: {usage}"));
    }
    let host_ok = if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        v6.parse::<std::net::Ipv6Addr>().is_ok()
    } else {
        !host.is_empty()
            && host.len() <= 253
            && host.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            })
    };
    if !host_ok {
        return Err(format!("{host:?} is not a host name or address: {usage}"));
    }
    // As the proxy reads it: a host of numbers only (decimal, octal or 0x-hex labels) is an
    // IPv4 address in inet_aton's spelling ("127.1"), never a name.
    let numeric = |l: &str| match l.strip_prefix("0x") {
        Some(hex) => hex.chars().all(|c| c.is_ascii_hexdigit()),
        None => l.chars().all(|c| c.is_ascii_digit()),
    };
    if !host.starts_with('[')
        && host.split('.').all(numeric)
        && host.parse::<std::net::Ipv4Addr>().is_err()
    {
        return Err(format!(
            "{host:?} is numbers only, an IPv4 address: write all four parts, e.g. 10.0.0.1"
        ));
    }
    Ok(a)
}
