//! Daemon settings. Precedence: built-in defaults < `DROVER_HOME/config.toml` < `DROVER_*`
//! environment < command-line flags (applied by the caller).

use crate::DaemonError;
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
    /// Claude Code binary (`DROVER_CLAUDE_BIN`), else `claude` on PATH.
    pub claude_bin: Option<String>,
    /// Default permission policy for new tasks.
    pub permissions: PermissionPolicy,
    /// What happens to a task whose agent died with its shim: requeue it (Claude resumes its
    /// session) or fail it.
    pub on_interrupt: OnInterrupt,
    /// How long a polite stop waits before the next, harder signal.
    pub stop_grace: Duration,
    /// The binary to run shims with (`drover` itself).
    pub exe: PathBuf,
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
}

/// The stall clock's default (docs/design.md §11).
pub const DEFAULT_STALL_TIMEOUT: u64 = 30 * 60;

/// A clock in config.toml: `"10m"`, `"1h30m"`, or `"off"` for none.
fn clock(key: &str, v: Option<&str>, default: Option<u64>) -> Result<Option<u64>, DaemonError> {
    match v.map(str::trim) {
        None => Ok(default),
        Some("off" | "none") => Ok(None),
        Some(v) => drover_types::clock::parse_secs(v).map(Some).map_err(|e| {
            DaemonError::Config(format!(
                "{key} = {v:?}: {e}; write e.g. \"30m\", \"1h30m\" or \"off\""
            ))
        }),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Models {
    worker: Option<String>,
    judge: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    slots: Option<usize>,
    sandbox: Option<String>,
    claude_bin: Option<String>,
    permissions: Option<String>,
    on_interrupt: Option<String>,
    stop_grace_secs: Option<f64>,
    gate_timeout_secs: Option<f64>,
    soft_fail_counts: Option<bool>,
    task_timeout: Option<String>,
    stall_timeout: Option<String>,
    needs_input_timeout: Option<String>,
    #[serde(default)]
    models: Models,
    #[serde(default)]
    gateway: GatewayFile,
    #[serde(default)]
    teams: HashMap<String, Team>,
    #[serde(default)]
    protect: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct GatewayFile {
    /// e.g. `worker = "claude-sonnet-4-6"`: an agent asking for `worker` gets that model.
    #[serde(default)]
    aliases: HashMap<String, String>,
    /// USD per million tokens, laid over the built-in table.
    #[serde(default)]
    prices: HashMap<String, drover_gateway::Price>,
    /// false: only the prices above count (every other model is unpriced).
    builtin_prices: Option<bool>,
}

/// `[teams.NAME]`: a team's daily budget and the models it may use.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Team {
    pub max_usd_per_day: Option<f64>,
    pub allowed_models: Option<Vec<String>>,
}

impl Config {
    /// Defaults, then `home/config.toml`, then the environment.
    pub fn load(home: &Path) -> Result<Config, DaemonError> {
        let path = home.join("config.toml");
        let file: FileConfig = match std::fs::read_to_string(&path) {
            Ok(text) => toml::from_str(&text)
                .map_err(|e| DaemonError::Config(format!("{}: {e}", path.display())))?,
            Err(_) => FileConfig::default(),
        };
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let slots =
            match env("DROVER_SLOTS") {
                Some(v) => Some(v.parse().map_err(|_| {
                    DaemonError::Config(format!("DROVER_SLOTS={v} is not a number"))
                })?),
                None => file.slots,
            };
        let sandbox = env("DROVER_SANDBOX")
            .or(file.sandbox)
            .unwrap_or_else(|| "auto".into());
        let permissions = match env("DROVER_PERMISSIONS").or(file.permissions) {
            Some(v) => v.parse().map_err(|_| {
                DaemonError::Config(format!("permissions = {v:?}: use ask, allow or deny"))
            })?,
            None => PermissionPolicy::Ask,
        };
        let on_interrupt = match env("DROVER_ON_INTERRUPT").or(file.on_interrupt) {
            Some(v) => v.parse().map_err(|_| {
                DaemonError::Config(format!("on_interrupt = {v:?}: use resume or fail"))
            })?,
            None => OnInterrupt::Resume,
        };
        let cfg = Config {
            home: home.to_path_buf(),
            slots: slots.unwrap_or(4),
            sandbox: sandbox.parse().map_err(DaemonError::Config)?,
            claude_bin: env("DROVER_CLAUDE_BIN").or(file.claude_bin),
            permissions,
            on_interrupt,
            stop_grace: Duration::from_secs_f64(file.stop_grace_secs.unwrap_or(5.0)),
            exe: std::env::current_exe()
                .map_err(|e| DaemonError::Config(format!("current exe: {e}")))?,
            gate_timeout: Duration::from_secs_f64(file.gate_timeout_secs.unwrap_or(1800.0)),
            worker_model: env("DROVER_WORKER_MODEL").or(file.models.worker),
            judge_model: env("DROVER_JUDGE_MODEL").or(file.models.judge),
            soft_fail_counts: file.soft_fail_counts.unwrap_or(true),
            aliases: file.gateway.aliases,
            prices: file.gateway.prices,
            builtin_prices: file.gateway.builtin_prices.unwrap_or(true),
            teams: file.teams,
            task_timeout: clock("task_timeout", file.task_timeout.as_deref(), None)?,
            stall_timeout: clock(
                "stall_timeout",
                file.stall_timeout.as_deref(),
                Some(DEFAULT_STALL_TIMEOUT),
            )?,
            needs_input_timeout: clock(
                "needs_input_timeout",
                file.needs_input_timeout.as_deref(),
                None,
            )?,
            protect: file.protect,
        };
        cfg.validate()?;
        Ok(cfg)
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

    pub fn validate(&self) -> Result<(), DaemonError> {
        if self.slots == 0 {
            return Err(DaemonError::Config("slots must be at least 1".into()));
        }
        drover_sandbox::Protect::new(&self.protect)
            .map_err(|e| DaemonError::Config(format!("protect: {e}")))?;
        for (model, price) in &self.prices {
            price
                .validate(model)
                .map_err(|e| DaemonError::Config(e.to_string()))?;
        }
        Ok(())
    }
}

impl Config {
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
