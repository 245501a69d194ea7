//! The layers of the configuration, merged by figment: built-in defaults < `config.toml` <
//! `DROVER_*` environment < `drover daemon` flags. Each layer is a figment provider that names
//! itself, so an error says which file, variable or flag held the bad value.
//!
//! The environment is never read here: the caller takes an [`Environment`] snapshot once (the
//! process's at the binary's edge, a made-up one in tests) and hands it in.

use super::error::{ConfigError, Origin};
use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// `DROVER_*` variables that set a config key (README.md, Configuration), and the key.
pub const ENV_KEYS: &[(&str, &str)] = &[
    ("DROVER_SLOTS", "slots"),
    ("DROVER_SANDBOX", "sandbox.kind"),
    ("DROVER_SANDBOX_ISOLATION", "sandbox.isolation"),
    ("DROVER_CLAUDE_BIN", "claude_bin"),
    ("DROVER_CODEX_BIN", "codex_bin"),
    ("DROVER_PERMISSIONS", "permissions"),
    ("DROVER_ON_INTERRUPT", "on_interrupt"),
    ("DROVER_WORKER_MODEL", "models.worker"),
    ("DROVER_JUDGE_MODEL", "models.judge"),
    ("DROVER_LISTEN", "listen"),
    ("DROVER_TLS_CERT", "tls_cert"),
    ("DROVER_TLS_KEY", "tls_key"),
    ("DROVER_WEB_LISTEN", "web_listen"),
    ("DROVER_DATABASE_URL", "database_url"),
    ("DROVER_WORKER_NAME", "worker_name"),
    ("DROVER_LEASE_SECS", "lease_secs"),
];

/// A snapshot of the variables the daemon reads, taken once at the edge. An empty value counts
/// as unset.
#[derive(Clone, Default)]
pub struct Environment {
    vars: HashMap<String, String>,
}

impl std::fmt::Debug for Environment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Values can be provider keys: names only.
        let mut names: Vec<&String> = self.vars.keys().collect();
        names.sort();
        f.debug_struct("Environment").field("vars", &names).finish()
    }
}

impl Environment {
    /// The process's environment (call this at the binary's edge only).
    pub fn process() -> Self {
        Self::from_pairs(
            std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))),
        )
    }

    /// An environment made of these pairs (tests, or a caller with its own source).
    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Environment {
            vars: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .filter(|(_, v)| !v.trim().is_empty())
                .collect(),
        }
    }

    /// This environment with `pairs` laid over it (a blank value changes nothing, as in
    /// [`Environment::from_pairs`]).
    pub fn with_pairs<K: Into<String>, V: Into<String>>(
        self,
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        let mut vars = self.vars;
        vars.extend(Self::from_pairs(pairs).vars);
        Environment { vars }
    }

    /// Every variable (name, value), blank ones left out.
    pub fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.vars.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// A variable's value; `None` when unset or blank.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(String::as_str)
    }
}

/// The `drover daemon` flags that override configuration.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Flags {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slots: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<String>,
    /// `--listen HOST:PORT`: also serve the API over TCP (docs/design.md §7).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
    /// `--tls-cert FILE` / `--tls-key FILE` (PEM): serve TCP with TLS.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_cert: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_key: Option<String>,
    /// `--web-listen HOST:PORT|off`: the dashboard's loopback listener (docs/design.md §10).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub web_listen: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Models {
    pub worker: Option<String>,
    pub judge: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct GatewayFile {
    /// e.g. `worker = "claude-sonnet-4-6"`: an agent asking for `worker` gets that model.
    #[serde(default)]
    pub aliases: HashMap<String, String>,
    /// USD per million tokens, laid over the built-in table.
    #[serde(default)]
    pub prices: HashMap<String, drover_gateway::Price>,
    /// false: only the prices above count (every other model is unpriced).
    pub builtin_prices: Option<bool>,
}

/// One `[forges.NAME]` table as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ForgeFile {
    pub kind: Option<String>,
    pub api: Option<String>,
    pub git: Option<String>,
    pub token_env: Option<String>,
    pub token_cmd: Option<String>,
    /// e.g. `"50m"`: `token_cmd` runs again after this long.
    pub token_ttl: Option<String>,
    pub app_id: Option<String>,
    /// The GitHub App's private key (PEM file).
    pub app_key: Option<String>,
    pub installation_id: Option<u64>,
    pub default: Option<bool>,
}

/// Every key, as merged from the layers; [`super::Config::load_with`] validates it once.
/// Unknown keys are refused (a typo must not silently do nothing).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Raw {
    pub slots: Option<usize>,
    /// `[sandbox]`, or the older `sandbox = "kind"` (made `{kind}` when the file is read).
    #[serde(default)]
    pub sandbox: super::sandbox::SandboxFile,
    pub claude_bin: Option<String>,
    pub codex_bin: Option<String>,
    pub permissions: Option<String>,
    pub on_interrupt: Option<String>,
    pub stop_grace_secs: Option<f64>,
    pub gate_timeout_secs: Option<f64>,
    pub soft_fail_counts: Option<bool>,
    pub task_timeout: Option<String>,
    pub stall_timeout: Option<String>,
    pub needs_input_timeout: Option<String>,
    #[serde(default)]
    pub models: Models,
    #[serde(default)]
    pub gateway: GatewayFile,
    #[serde(default)]
    pub teams: HashMap<String, super::Team>,
    #[serde(default)]
    pub protect: Vec<String>,
    #[serde(default)]
    pub pass_env: Vec<String>,
    pub listen: Option<String>,
    pub tls_cert: Option<String>,
    pub tls_key: Option<String>,
    /// `web_listen` (docs/design.md §10): the dashboard's loopback listener, or `off`.
    pub web_listen: Option<String>,
    pub database_url: Option<String>,
    pub worker_name: Option<String>,
    pub lease_secs: Option<u32>,
    /// The variable holding the scrape token of `GET /metrics` (docs/design.md §10).
    pub metrics_token_env: Option<String>,
    /// `[forges.NAME]` (docs/design.md §9).
    #[serde(default)]
    pub forges: HashMap<String, ForgeFile>,
}

/// `config.toml`, already read and parsed (so that "cannot read" and "not TOML" are errors of
/// their own, with the line).
struct FileLayer {
    path: PathBuf,
    table: toml::Table,
}

impl Provider for FileLayer {
    fn metadata(&self) -> Metadata {
        Metadata::named(self.path.display().to_string())
    }
    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        figment::providers::Serialized::defaults(&self.table).data()
    }
}

/// Reads `path`: `Ok(None)` when it does not exist; every other failure is an error.
fn read_file(path: &Path) -> Result<Option<FileLayer>, ConfigError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(ConfigError::Unreadable {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    let text = String::from_utf8(bytes).map_err(|_| ConfigError::NotUtf8 {
        path: path.to_path_buf(),
    })?;
    let mut table = text.parse::<toml::Table>().map_err(|e| {
        let line = e
            .span()
            .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1)
            .unwrap_or(1);
        ConfigError::Syntax {
            path: path.to_path_buf(),
            line,
            message: one_line(e.message()),
        }
    })?;
    super::sandbox::table_form(&mut table);
    Ok(Some(FileLayer {
        path: path.to_path_buf(),
        table,
    }))
}

/// The `DROVER_*` variables of [`ENV_KEYS`], nested under their keys. Not figment's own `Env`
/// provider: that one reads the process environment itself (tests run on threads of one
/// process) and guesses each value's type (`123` becomes a number, `[x]` an array); this one maps
/// the documented names explicitly, from the snapshot.
struct EnvLayer<'a>(&'a Environment);

const ENV_LAYER: &str = "environment";

impl Provider for EnvLayer<'_> {
    fn metadata(&self) -> Metadata {
        Metadata::named(ENV_LAYER)
    }
    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        let mut dict = Dict::new();
        for (var, key) in ENV_KEYS {
            let Some(v) = self.0.get(var) else { continue };
            // Numbers are typed here (a variable is text); anything else stays a string, so
            // a model named `123` is not turned into a number.
            let value = match *key {
                "slots" | "lease_secs" => v
                    .trim()
                    .parse::<u64>()
                    .map(Value::from)
                    .unwrap_or_else(|_| Value::from(v.to_string())),
                _ => Value::from(v.to_string()),
            };
            if let Some(d) = figment::util::nest(key, value).into_dict() {
                dict = merge(dict, d);
            }
        }
        Ok(Profile::Default.collect(dict))
    }
}

fn merge(mut a: Dict, b: Dict) -> Dict {
    for (k, v) in b {
        match (a.remove(&k), v) {
            (Some(Value::Dict(_, x)), Value::Dict(_, y)) => {
                a.insert(k, Value::from(merge(x, y)));
            }
            (_, v) => {
                a.insert(k, v);
            }
        }
    }
    a
}

const FLAG_LAYER: &str = "command line";

impl Provider for Flags {
    fn metadata(&self) -> Metadata {
        Metadata::named(FLAG_LAYER)
    }
    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        // `--sandbox` is the table's `kind`: the file's other `[sandbox]` keys stay.
        let mut dict = Dict::new();
        if let Some(n) = self.slots {
            dict.insert("slots".into(), Value::from(n as u64));
        }
        for (key, v) in [
            ("listen", &self.listen),
            ("tls_cert", &self.tls_cert),
            ("tls_key", &self.tls_key),
            ("web_listen", &self.web_listen),
        ] {
            if let Some(v) = v {
                dict.insert(key.into(), Value::from(v.clone()));
            }
        }
        if let Some(kind) = &self.sandbox {
            if let Some(d) =
                figment::util::nest("sandbox.kind", Value::from(kind.clone())).into_dict()
            {
                dict = merge(dict, d);
            }
        }
        Ok(Profile::Default.collect(dict))
    }
}

/// The merged layers, and which one set each key.
pub(super) struct Layers {
    figment: Figment,
    file: PathBuf,
}

impl Layers {
    pub fn new(file: &Path, env: &Environment, flags: &Flags) -> Result<Self, ConfigError> {
        let mut figment = Figment::new();
        if let Some(layer) = read_file(file)? {
            figment = figment.merge(layer);
        }
        let figment = figment.merge(EnvLayer(env)).merge(flags.clone());
        Ok(Layers {
            figment,
            file: file.to_path_buf(),
        })
    }

    pub fn extract(&self) -> Result<Raw, ConfigError> {
        self.figment.extract::<Raw>().map_err(|e| {
            // One line: the first problem (figment may chain several).
            let e = e.into_iter().next().unwrap_or_else(|| "unknown".into());
            let key = e.path.join(".");
            let origin = e
                .metadata
                .as_ref()
                .map(|m| self.origin_of(&m.name, &key))
                .unwrap_or_else(|| Origin::File(self.file.clone()));
            let what = one_line(&e.kind.to_string());
            let message = match &origin {
                Origin::Env(_) | Origin::Flag(_) => what,
                _ if key.is_empty() => what,
                _ => format!("{key}: {what}"),
            };
            ConfigError::invalid(origin, message)
        })
    }

    /// Which layer set `key` (dotted), for a value found wrong after extraction. (A default
    /// is never wrong: a key no layer set is the file's.)
    pub fn origin(&self, key: &str) -> Origin {
        match self.figment.find_metadata(key) {
            Some(m) => self.origin_of(&m.name, key),
            None => Origin::File(self.file.clone()),
        }
    }

    fn origin_of(&self, layer: &str, key: &str) -> Origin {
        match layer {
            ENV_LAYER => Origin::Env(
                ENV_KEYS
                    .iter()
                    .find(|(_, k)| *k == key)
                    .map(|(v, _)| v.to_string())
                    .unwrap_or_else(|| key.to_string()),
            ),
            FLAG_LAYER if key == "sandbox.kind" => Origin::Flag("--sandbox".into()),
            FLAG_LAYER => Origin::Flag(format!("--{}", key.replace('_', "-"))),
            _ => Origin::File(self.file.clone()),
        }
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}
