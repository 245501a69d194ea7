//! Daemon settings, loaded once (figment): built-in defaults < `DROVER_HOME/config.toml` <
//! `DROVER_*` environment < `drover daemon` flags, then validated into the typed [`Config`].
//!
//! This is the only place that reads the daemon's environment, and only from the
//! [`Environment`] snapshot its caller hands in: the gateway's upstreams and keys, the judge's
//! endpoint, the agents' binaries and Claude Code's config directory all become fields here and
//! are passed down as values. A missing `config.toml` is fine; an unreadable or invalid one, an
//! unknown key and a bad value are each a one-line [`ConfigError`] naming the file (or variable,
//! or flag), the key and what to do.

mod error;
mod forges;
mod listen;
mod load;
mod otel;
mod sandbox;
#[cfg(test)]
mod tests;

pub use error::{ConfigError, Origin};
pub use listen::{Listen, TlsFiles};
pub use load::{Environment, Flags, ENV_KEYS};
pub use otel::{OtelSettings, OtlpTarget, HEADER_VARS as OTEL_HEADER_VARS};

use drover_agents::BinarySetting;
pub use drover_gateway::Secret;
use drover_sandbox::SandboxMode;
use drover_types::{OnInterrupt, PermissionPolicy};
use serde::Deserialize;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Config {
    pub home: PathBuf,
    /// Global slot count: at most this many tasks are past `queued` and not yet terminal.
    pub slots: usize,
    pub sandbox: SandboxMode,
    /// Claude Code binary (`claude_bin`, `DROVER_CLAUDE_BIN`), else `claude` on PATH.
    pub claude_bin: Option<String>,
    /// Codex binary (`codex_bin`, `DROVER_CODEX_BIN`), else `codex` on PATH.
    pub codex_bin: Option<String>,
    /// Claude Code's config directory (`CLAUDE_CONFIG_DIR`, else `$HOME/.claude`), where its
    /// session transcripts are; `None` when neither is set.
    pub claude_config_dir: Option<PathBuf>,
    /// Default permission policy for new tasks.
    pub permissions: PermissionPolicy,
    /// What happens to a task whose agent died with its shim: requeue it (Claude resumes its
    /// session) or fail it.
    pub on_interrupt: OnInterrupt,
    /// How long a polite stop waits before the next, harder signal.
    pub stop_grace: Duration,
    /// The binary to run shims with (`drover` itself).
    pub exe: PathBuf,
    /// `pass_env = ["NAME", …]`: variables of the daemon's environment agents and gates also
    /// get, beyond the built-in allow-list (`child_env`). Provider keys are refused.
    pub pass_env: Vec<String>,
    /// The daemon's environment as the edge captured it; children get only its allow-listed part
    /// (`child_env`). No library reads the process environment itself.
    pub inherited: crate::child_env::Inherited,
    /// A gate command is killed after this long.
    pub gate_timeout: Duration,
    /// Model tiers: the default worker model and the judge model (none: no judge).
    pub worker_model: Option<String>,
    pub judge_model: Option<String>,
    /// Whether a `soft_fail` verdict counts toward a pool's failure streak.
    pub soft_fail_counts: bool,
    /// Gateway model aliases and price overrides.
    pub aliases: HashMap<String, String>,
    pub prices: HashMap<String, drover_gateway::Price>,
    /// `gateway.builtin_prices` (default true): false prices only what `prices` lists.
    pub builtin_prices: bool,
    pub teams: HashMap<String, Team>,
    /// Globs protected in every task (`protect = [...]`), before each task's own `--protect`.
    pub protect: Vec<String>,
    /// Default clocks of new tasks and pools, in seconds (`task_timeout`, default none;
    /// `stall_timeout`, default 30 min; `"off"` turns one off).
    pub task_timeout: Option<u64>,
    pub stall_timeout: Option<u64>,
    /// A pending permission request older than this is denied and the task goes on (default:
    /// none, it waits for a person).
    pub needs_input_timeout: Option<u64>,
    /// Providers: the gateway's switch, port, upstreams and keys (environment only).
    pub upstreams: Upstreams,
    /// `[sandbox]`: how agents are confined and limited (docs/design.md §11).
    pub confinement: Confinement,
    /// Whose word the daemon takes on whether the host can confine agents: always the host's
    /// own probe, except in tests (set in-process; no file, variable or flag reaches it).
    pub isolation_probe: IsolationProbe,
    /// `listen` (+ `tls_cert`, `tls_key`): the TCP listener of the team server, if any
    /// (docs/design.md §7).
    pub listen: Option<Listen>,
    /// `web_listen` (`DROVER_WEB_LISTEN`, `--web-listen`; default `127.0.0.1:0`, `off`: none):
    /// the dashboard's loopback listener (docs/design.md §10); loopback addresses only.
    pub web_listen: Option<std::net::SocketAddr>,
    /// How long a one-time dashboard login token lives (2 minutes; tests set it in-process, no
    /// file, variable or flag reaches it).
    pub web_token_ttl: Duration,
    /// `database_url` (`DROVER_DATABASE_URL`, `postgres://…`): the PostgreSQL store shared by
    /// every worker on it; `None`: SQLite in `DROVER_HOME` (docs/design.md §8). May hold a
    /// password: a [`Secret`], never printed.
    pub database_url: Option<Secret>,
    /// `worker_name` (`DROVER_WORKER_NAME`): this daemon's name among the workers; default the
    /// host name.
    pub worker_name: String,
    /// `lease_secs` (`DROVER_LEASE_SECS`, default 30): how long a claim holds without a heartbeat.
    pub lease_secs: u32,
    /// `[forges.NAME]`: the forges `--repo owner/name` and forge URLs go through (docs/design.md
    /// §9), sorted by name; tokens read from the environment at load are [`Secret`]s.
    pub forges: Vec<drover_forge::ForgeSettings>,
    /// The OpenTelemetry exporter (docs/design.md §10), from the standard `OTEL_*` variables;
    /// `None`: off. Its headers are [`Secret`]s.
    pub otel: Option<OtelSettings>,
    /// `metrics_token_env = "VAR"`: the bearer token a Prometheus scraper sends for
    /// `GET /metrics` over TCP (valid for nothing else), read from the daemon's environment at
    /// load (docs/design.md §10).
    pub metrics_token: Option<Secret>,
}

/// See [`Config::isolation_probe`].
#[derive(Debug, Clone, Default)]
pub enum IsolationProbe {
    /// [`drover_shim::probe::probe`] at start.
    #[default]
    Host,
    /// This report instead (tests of the refusal, on hosts that can confine).
    Fixed(drover_shim::probe::Report),
}

/// `[sandbox]` `isolation`, `ro_paths`, `rw_paths`, `egress`, `memory`, `cpus`, `pids`: how
/// every task's agent is confined, and its default limits (a task's flags override them).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Confinement {
    /// `"full"` (default) or `"none"`, on purpose only: the daemon refuses to start a task
    /// unconfined when the host cannot confine it, unless this says `"none"`.
    pub isolation: drover_types::Isolation,
    /// Also visible read-only inside every sandbox.
    pub ro_paths: Vec<PathBuf>,
    /// Also visible writable inside every sandbox.
    pub rw_paths: Vec<PathBuf>,
    /// `host:port` authorities an agent may reach through the allow-list proxy (default none).
    pub egress: Vec<String>,
    /// Default limits of new tasks.
    pub limits: drover_types::Limits,
}

/// `DROVER_GATEWAY`: unset, the gateway runs when the daemon has a provider key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GatewaySwitch {
    #[default]
    Auto,
    /// Any value but `off`: on even without a key (agents bring their own, e.g. `--api-key-env`).
    On,
    /// `off`: agents use their own login; budgets cannot be enforced.
    Off,
}

/// Where model requests go, from the daemon's environment (never from `config.toml`: keys are
/// secrets, and `Secret` prints `***`).
#[derive(Debug, Clone, Default)]
pub struct Upstreams {
    pub gateway: GatewaySwitch,
    /// `DROVER_GATEWAY_PORT`: the gateway's loopback port (else the last daemon's, else any).
    pub gateway_port: Option<u16>,
    /// `DROVER_ANTHROPIC_BASE_URL`, else `ANTHROPIC_BASE_URL`, else the public API (no `/v1`).
    pub anthropic_base: String,
    /// `DROVER_OPENAI_BASE_URL`, else `OPENAI_BASE_URL`, else the public API (with `/v1`).
    pub openai_base: String,
    /// `ANTHROPIC_API_KEY`
    pub anthropic_key: Option<Secret>,
    /// `OPENAI_API_KEY`
    pub openai_key: Option<Secret>,
    /// The judge's endpoint when the gateway is off: `ANTHROPIC_BASE_URL`, else the public API.
    pub judge_base: String,
}

impl Upstreams {
    fn from_env(env: &Environment) -> Result<Self, ConfigError> {
        let key = |v: &str| env.get(v).map(Secret::new);
        let gateway = match env.get("DROVER_GATEWAY") {
            None => GatewaySwitch::Auto,
            Some(v) if v.trim() == "off" => GatewaySwitch::Off,
            Some(_) => GatewaySwitch::On,
        };
        let gateway_port = match env.get("DROVER_GATEWAY_PORT") {
            None => None,
            Some(p) => Some(p.trim().parse::<u16>().map_err(|_| {
                ConfigError::invalid(
                    Origin::Env("DROVER_GATEWAY_PORT".into()),
                    format!("{p:?} is not a port number (1-65535)"),
                )
            })?),
        };
        let base = |own: &str, usual: &str, default: &str| {
            env.get(own)
                .or_else(|| env.get(usual))
                .unwrap_or(default)
                .to_string()
        };
        Ok(Upstreams {
            gateway,
            gateway_port,
            anthropic_base: base(
                "DROVER_ANTHROPIC_BASE_URL",
                "ANTHROPIC_BASE_URL",
                drover_gateway::DEFAULT_ANTHROPIC_BASE,
            ),
            openai_base: base(
                "DROVER_OPENAI_BASE_URL",
                "OPENAI_BASE_URL",
                drover_gateway::DEFAULT_OPENAI_BASE,
            ),
            anthropic_key: key("ANTHROPIC_API_KEY"),
            openai_key: key("OPENAI_API_KEY"),
            judge_base: env
                .get("ANTHROPIC_BASE_URL")
                .unwrap_or(drover_gateway::DEFAULT_ANTHROPIC_BASE)
                .to_string(),
        })
    }

    /// The gateway runs: not switched off, and switched on or given a provider key.
    pub fn gateway_on(&self) -> bool {
        match self.gateway {
            GatewaySwitch::Off => false,
            GatewaySwitch::On => true,
            GatewaySwitch::Auto => self.anthropic_key.is_some() || self.openai_key.is_some(),
        }
    }
}

/// The stall clock's default (docs/design.md §11).
pub const DEFAULT_STALL_TIMEOUT: u64 = 30 * 60;

/// `[teams.NAME]`: a team's daily budget and the models it may use. Imported into the store at
/// start when the store has no such team; after that the stored team wins (`crate::teams`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Team {
    pub max_usd_per_day: Option<f64>,
    pub allowed_models: Option<Vec<String>>,
}

impl Config {
    /// Defaults, then `home/config.toml`, then `env`, then `flags`; validated.
    pub fn load_with(home: &Path, env: &Environment, flags: &Flags) -> Result<Config, ConfigError> {
        let layers = load::Layers::new(&home.join("config.toml"), env, flags)?;
        let raw = layers.extract()?;
        let bad = |key: &str, message: String| ConfigError::invalid(layers.origin(key), message);
        let clock = |key: &str, v: Option<&str>, default: Option<u64>| match v.map(str::trim) {
            None => Ok(default),
            Some("off" | "none") => Ok(None),
            Some(v) => drover_types::clock::parse_secs(v).map(Some).map_err(|e| {
                bad(
                    key,
                    format!("{key} = {v:?}: {e}; write e.g. \"30m\", \"1h30m\" or \"off\""),
                )
            }),
        };
        let secs = |key: &str, v: Option<f64>, default: f64| {
            let v = v.unwrap_or(default);
            Duration::try_from_secs_f64(v)
                .map_err(|_| bad(key, format!("{key} = {v}: give a number of seconds >= 0")))
        };
        let (sandbox, confinement) = sandbox::resolve(
            raw.sandbox,
            &|key| layers.origin(key),
            home,
            env.get("HOME").map(Path::new),
        )?;
        let listen = listen::resolve(
            raw.listen.as_deref(),
            raw.tls_cert.as_deref(),
            raw.tls_key.as_deref(),
            home,
            &|key| layers.origin(key),
        )?;
        let web_listen = listen::resolve_web(raw.web_listen.as_deref(), &|key| layers.origin(key))?;
        let database_url = match raw.database_url.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(u) if u.starts_with("postgres://") || u.starts_with("postgresql://") => {
                if let Err(why) = drover_store::PgStore::check_url(u) {
                    // sqlx's reason names the part at fault, never the URL (it may hold a password).
                    return Err(bad(
                        "database_url",
                        format!(
                            "database_url is not a valid PostgreSQL URL ({why}); write \
                             postgres://USER:PASSWORD@HOST:PORT/DATABASE"
                        ),
                    ));
                }
                Some(Secret::new(u))
            }
            Some(_) => return Err(bad(
                "database_url",
                "database_url must be a postgres:// URL (leave it unset for SQLite in DROVER_HOME)"
                    .into(),
            )),
        };
        let worker_name = match raw.worker_name.as_deref().map(str::trim) {
            Some(n) if !n.is_empty() => n.to_string(),
            _ => nix::unistd::gethostname()
                .ok()
                .and_then(|h| h.into_string().ok())
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| "localhost".to_string()),
        };
        let forges = forges::resolve(raw.forges, env, &|key| layers.origin(key))?;
        let metrics_token = match raw.metrics_token_env.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(var) => match env.get(var).map(str::trim) {
                Some(t) if t.len() >= 16 => Some(Secret::new(t)),
                Some(_) => {
                    return Err(bad(
                        "metrics_token_env",
                        format!(
                            "metrics_token_env: ${var} holds fewer than 16 characters; use a long \
                             random token (e.g. `openssl rand -hex 32`)"
                        ),
                    ))
                }
                None => {
                    return Err(bad(
                        "metrics_token_env",
                        format!(
                            "metrics_token_env = {var:?}: the variable is not set in the \
                             daemon's environment; export it, or remove metrics_token_env"
                        ),
                    ))
                }
            },
        };
        let cfg = Config {
            otel: otel::resolve(env)?,
            metrics_token,
            forges,
            database_url,
            worker_name,
            lease_secs: raw.lease_secs.unwrap_or(30),
            listen,
            web_listen,
            web_token_ttl: crate::web::sessions::TOKEN_TTL,
            confinement,
            isolation_probe: IsolationProbe::Host,
            home: home.to_path_buf(),
            slots: raw.slots.unwrap_or(4),
            sandbox,
            claude_bin: raw.claude_bin,
            codex_bin: raw.codex_bin,
            claude_config_dir: env
                .get("CLAUDE_CONFIG_DIR")
                .map(PathBuf::from)
                .or_else(|| env.get("HOME").map(|h| Path::new(h).join(".claude"))),
            permissions: match raw.permissions {
                Some(v) => v.trim().parse().map_err(|_| {
                    bad(
                        "permissions",
                        format!("permissions = {v:?}: use ask, allow or deny"),
                    )
                })?,
                None => PermissionPolicy::Ask,
            },
            on_interrupt: match raw.on_interrupt {
                Some(v) => v.trim().parse().map_err(|_| {
                    bad(
                        "on_interrupt",
                        format!("on_interrupt = {v:?}: use resume or fail"),
                    )
                })?,
                None => OnInterrupt::Resume,
            },
            stop_grace: secs("stop_grace_secs", raw.stop_grace_secs, 5.0)?,
            exe: std::env::current_exe().map_err(ConfigError::Exe)?,
            inherited: crate::child_env::Inherited::from_vars(
                env.pairs().map(|(k, v)| (k.to_string(), v.to_string())),
            )
            .passing(&raw.pass_env),
            pass_env: raw.pass_env,
            gate_timeout: secs("gate_timeout_secs", raw.gate_timeout_secs, 1800.0)?,
            worker_model: raw.models.worker,
            judge_model: raw.models.judge,
            soft_fail_counts: raw.soft_fail_counts.unwrap_or(true),
            aliases: raw.gateway.aliases,
            prices: raw.gateway.prices,
            builtin_prices: raw.gateway.builtin_prices.unwrap_or(true),
            teams: raw.teams,
            task_timeout: clock("task_timeout", raw.task_timeout.as_deref(), None)?,
            stall_timeout: clock(
                "stall_timeout",
                raw.stall_timeout.as_deref(),
                Some(DEFAULT_STALL_TIMEOUT),
            )?,
            needs_input_timeout: clock(
                "needs_input_timeout",
                raw.needs_input_timeout.as_deref(),
                None,
            )?,
            protect: raw.protect,
            upstreams: Upstreams::from_env(env)?,
        };
        cfg.check().map_err(|(key, message)| bad(key, message))?;
        Ok(cfg)
    }

    /// [`Config::load_with`] the process's environment and no flags: for the binary's edge
    /// (e.g. `drover doctor`), never for a library.
    pub fn load(home: &Path) -> Result<Config, ConfigError> {
        Self::load_with(home, &Environment::process(), &Flags::default())
    }

    /// The gateway's prices: the built-in table (unless `gateway.builtin_prices = false`) with
    /// `[gateway.prices."MODEL"]` laid over it.
    pub fn price_table(&self) -> drover_gateway::PriceTable {
        let mut overrides = drover_gateway::PriceTable::empty();
        for (model, price) in &self.prices {
            overrides.set(model, *price);
        }
        let base = if self.builtin_prices {
            drover_gateway::PriceTable::builtin()
        } else {
            drover_gateway::PriceTable::empty()
        };
        base.with_overrides(&overrides)
    }

    /// The values no type rules out: the key at fault and what is wrong with it.
    fn check(&self) -> Result<(), (&'static str, String)> {
        if self.slots == 0 {
            return Err(("slots", "slots must be at least 1".into()));
        }
        if self.lease_secs < 2 {
            return Err(("lease_secs", "lease_secs must be at least 2".into()));
        }
        if !self
            .worker_name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            || self.worker_name.len() > 64
        {
            return Err((
                "worker_name",
                format!(
                    "worker_name = {:?}: use up to 64 letters, digits, '-', '_' or '.'",
                    self.worker_name
                ),
            ));
        }
        drover_sandbox::Protect::new(&self.protect)
            .map_err(|e| ("protect", format!("protect: {e}")))?;
        for name in &self.pass_env {
            let valid = !name.is_empty()
                && !name.starts_with(|c: char| c.is_ascii_digit())
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                return Err((
                    "pass_env",
                    format!("pass_env: {name:?} is not a variable name"),
                ));
            }
            if otel::HEADER_VARS.contains(&name.as_str()) {
                return Err((
                    "pass_env",
                    format!("pass_env: {name} holds the OpenTelemetry collector's credential; it stays in the daemon"),
                ));
            }
            if crate::child_env::is_provider_var(name) {
                return Err((
                    "pass_env",
                    format!(
                        "pass_env: {name} is a provider credential; agents reach the provider \
                         through drover's gateway with a task token instead"
                    ),
                ));
            }
        }
        let mut models: Vec<_> = self.prices.iter().collect();
        models.sort_by(|a, b| a.0.cmp(b.0));
        for (model, price) in models {
            price
                .validate(model)
                .map_err(|e| ("gateway.prices", e.to_string()))?;
        }
        Ok(())
    }

    /// The program configured for a binary setting (an adapter names its own in
    /// [`drover_agents::Capabilities::binary`]); `None`: the agent's own name on PATH.
    pub fn agent_binary(&self, setting: BinarySetting) -> Option<String> {
        match setting {
            BinarySetting::Claude => self.claude_bin.clone(),
            BinarySetting::Codex => self.codex_bin.clone(),
        }
    }

    /// The judge's endpoint when the gateway is off: the Anthropic API with the daemon's key.
    pub fn direct_judge_endpoint(&self) -> Option<(String, String)> {
        let key = self.upstreams.anthropic_key.as_ref()?;
        Some((self.upstreams.judge_base.clone(), key.expose().to_string()))
    }

    /// The globs a task with `own` protected globs gets: the config's list, then its own (no
    /// duplicates). An operator's list cannot be narrowed by a task.
    pub fn protect_for(&self, own: &[String]) -> Vec<String> {
        let mut out: Vec<String> = vec![];
        for g in self.protect.iter().chain(own) {
            if !out.contains(g) {
                out.push(g.clone());
            }
        }
        out
    }
}
