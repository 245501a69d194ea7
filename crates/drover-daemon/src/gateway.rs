//! The daemon's side of the gateway (`drover-gateway`): serves it on loopback, grants each task
//! a token, and implements its [`Ledger`] over the store.
//!
//! Tokens are derived, not stored: `drv-` + SHA-256(home secret, task id, attempt), with the
//! secret in `DROVER_HOME/gateway.key` (mode 0600). A restarted daemon re-grants the same tokens
//! to the tasks it re-adopts, so their agents keep working, and no token is ever in the store.
//!
//! The gateway is on when the daemon has a provider key (`ANTHROPIC_API_KEY`/`OPENAI_API_KEY`)
//! or `gateway = "on"`; otherwise agents use their own login and their own figures are the
//! task's usage (`metered_by: agent`).

use drover_gateway::{
    BudgetKind, Gateway, GatewayConfig, GatewayEvent, Ledger, Limits, Spent, TaskGrant, UsageRecord,
};
use drover_store::{Store, TaskRecord, UsageRow};
use drover_types::{EventKind, NewEvent};
use serde_json::json;
use sha2::{Digest, Sha256};
use std::path::Path;
use std::sync::Arc;
use tokio::sync::mpsc;

/// Environment variables that hold provider keys: never passed to shims or agents.
pub const SECRET_VARS: &[&str] = &[
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_AUTH_TOKEN",
    "OPENAI_API_KEY",
    "CLAUDE_CODE_OAUTH_TOKEN",
    "CODEX_API_KEY",
    "DROVER_ANTHROPIC_BASE_URL",
    "DROVER_OPENAI_BASE_URL",
];

/// What a task may spend and use, from its pool and its team.
#[derive(Debug, Clone, Default)]
pub struct GrantPolicy {
    pub pool_usd: Option<f64>,
    pub team_usd_per_day: Option<f64>,
    /// The intersection of the pool's and the team's lists; `None` = any model.
    pub allowed_models: Option<Vec<String>>,
}

/// What the ledger tells the engine.
#[derive(Debug)]
pub enum Note {
    /// Something about the task changed (followers should re-read).
    Changed,
    /// A budget refused a request: end the task `budget_exceeded`.
    BudgetExceeded(String),
}

pub struct GatewayLink {
    pub gw: Gateway,
    /// `http://127.0.0.1:PORT`
    pub base: String,
    secret: Vec<u8>,
}

impl GatewayLink {
    /// Starts the gateway if a provider key is configured. Returns it and the engine's end of the
    /// ledger's notes.
    pub async fn start(
        config: &crate::Config,
        home: &Path,
        store: Arc<dyn Store>,
        stopping: tokio::sync::watch::Receiver<bool>,
    ) -> Result<Option<(GatewayLink, mpsc::UnboundedReceiver<Note>)>, String> {
        let mut cfg = GatewayConfig::from_env();
        cfg.aliases.extend(config.aliases.clone());
        cfg.prices = config.price_table();
        let on = std::env::var("DROVER_GATEWAY").ok();
        if on.as_deref() == Some("off")
            || (on.is_none() && cfg.anthropic_key.is_none() && cfg.openai_key.is_none())
        {
            return Ok(None);
        }
        // An upstream given the usual way (e.g. a corporate proxy) is the gateway's upstream.
        if std::env::var("DROVER_ANTHROPIC_BASE_URL").is_err() {
            if let Ok(b) = std::env::var("ANTHROPIC_BASE_URL") {
                cfg.anthropic_base = b;
            }
        }
        if std::env::var("DROVER_OPENAI_BASE_URL").is_err() {
            if let Ok(b) = std::env::var("OPENAI_BASE_URL") {
                cfg.openai_base = b;
            }
        }
        let (ledger, rx) = store_ledger(store);
        let gw = Gateway::new(cfg, ledger).map_err(|e| format!("gateway: {e}"))?;
        let listener = bind(home)
            .await
            .map_err(|e| format!("gateway listener: {e}"))?;
        let base = format!(
            "http://{}",
            listener.local_addr().map_err(|e| e.to_string())?
        );
        let server = gw.clone();
        tokio::spawn(async move {
            let mut stopping = stopping;
            let shutdown = async move {
                while !*stopping.borrow_and_update() {
                    if stopping.changed().await.is_err() {
                        break;
                    }
                }
            };
            if let Err(e) = server.serve(listener, shutdown).await {
                tracing::error!("gateway: {e}");
            }
        });
        tracing::info!("gateway on {base}");
        let secret = load_secret(home).map_err(|e| format!("gateway.key: {e}"))?;
        Ok(Some((GatewayLink { gw, base, secret }, rx)))
    }

    fn token(&self, task_id: &str, attempt: i64) -> String {
        let mut h = Sha256::new();
        h.update(&self.secret);
        h.update(format!(":{task_id}:{attempt}").as_bytes());
        let hex: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
        format!("drv-{hex}")
    }

    /// Grants (or re-grants after a restart) the task's token; returns the agent's environment.
    pub fn grant(
        &self,
        task: &TaskRecord,
        policy: &GrantPolicy,
        key: Option<String>,
    ) -> Vec<(String, String)> {
        let token = self.token(&task.id, task.attempt);
        let grant = TaskGrant {
            pool: task.pool.clone(),
            team: task.team.clone(),
            limits: Limits {
                task_usd: task.budget.max_usd,
                task_tokens: task.budget.max_tokens,
                pool_usd: policy.pool_usd,
                team_usd_per_day: policy.team_usd_per_day,
            },
            allowed_models: policy.allowed_models.clone(),
            key_override: key.map(drover_gateway::Secret::new),
            ..TaskGrant::new(task.id.clone())
        };
        if let Err(e) = self.gw.grant_with_token(&token, grant) {
            tracing::error!(task = task.id.as_str(), "gateway grant: {e}");
        }
        let mut env = Gateway::agent_env(&self.base, &token);
        // The gateway retries upstream failures itself; the agent's own retries stack on top.
        env.push(("CLAUDE_CODE_MAX_RETRIES".into(), "2".into()));
        env
    }

    pub fn revoke(&self, task_id: &str) {
        self.gw.revoke_task(task_id);
    }

    /// The judge's way out: through the gateway, on the task's token (metered to the task).
    pub fn judge_endpoint(&self, task: &TaskRecord) -> (String, String) {
        (self.base.clone(), self.token(&task.id, task.attempt))
    }
}

/// Binds the port the last daemon used (kept in `DROVER_HOME/gateway.port`), so agents it
/// started, which hold that base URL, reach the new daemon; a new port only if it is taken.
async fn bind(home: &Path) -> std::io::Result<tokio::net::TcpListener> {
    let path = home.join("gateway.port");
    let port = std::env::var("DROVER_GATEWAY_PORT")
        .ok()
        .or_else(|| std::fs::read_to_string(&path).ok())
        .and_then(|p| p.trim().parse::<u16>().ok());
    let listener = match port {
        Some(p) => match tokio::net::TcpListener::bind(("127.0.0.1", p)).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!("gateway port {p} is taken ({e}); agents started before the restart lose their gateway");
                tokio::net::TcpListener::bind("127.0.0.1:0").await?
            }
        },
        None => tokio::net::TcpListener::bind("127.0.0.1:0").await?,
    };
    std::fs::write(&path, listener.local_addr()?.port().to_string())?;
    Ok(listener)
}

fn load_secret(home: &Path) -> std::io::Result<Vec<u8>> {
    let path = home.join("gateway.key");
    if let Ok(s) = std::fs::read(&path) {
        if s.len() >= 32 {
            return Ok(s);
        }
    }
    let secret: Vec<u8> = (0..32).map(|_| rand::random::<u8>()).collect();
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(&path)?;
    f.write_all(&secret)?;
    Ok(secret)
}

/// The config key behind a budget, for messages.
fn budget_name(budget: BudgetKind) -> &'static str {
    match budget {
        BudgetKind::TaskUsd => "the task's --max-usd",
        BudgetKind::TaskTokens => "the task's --max-tokens",
        BudgetKind::PoolUsd => "the pool's --max-usd",
        BudgetKind::TeamUsdPerDay => "the team's max_usd_per_day",
    }
}

/// The daemon's [`Ledger`] over `store` (one `usage` row per response, events, spent amounts
/// from the store), and the receiver of its notes — for embedding and the gateway benchmark.
pub fn store_ledger(store: Arc<dyn Store>) -> (Arc<dyn Ledger>, mpsc::UnboundedReceiver<Note>) {
    let (tx, rx) = mpsc::unbounded_channel();
    (Arc::new(StoreLedger { store, tx }), rx)
}

struct StoreLedger {
    store: Arc<dyn Store>,
    tx: mpsc::UnboundedSender<Note>,
}

#[async_trait::async_trait]
impl Ledger for StoreLedger {
    async fn spent(&self, grant: &TaskGrant) -> Result<Spent, String> {
        let day = chrono::Utc::now().format("%Y-%m-%dT00:00:00").to_string();
        match self
            .store
            .spent(
                &grant.task_id,
                grant.pool.as_deref(),
                grant.team.as_deref(),
                &day,
            )
            .await
        {
            Ok(s) => Ok(Spent {
                task_usd: s.task_usd,
                task_tokens: s.task_tokens.max(0) as u64,
                pool_usd: s.pool_usd,
                team_usd_today: s.team_usd_today,
            }),
            Err(e) => {
                tracing::error!("ledger spent: {e}");
                Err(format!("the store cannot say what was spent: {e}"))
            }
        }
    }

    async fn record(&self, task_id: &str, rec: UsageRecord) {
        let row = UsageRow {
            task_id: task_id.to_string(),
            pool: rec.pool,
            team: rec.team,
            api: serde_json::to_value(rec.api)
                .ok()
                .and_then(|v| v.as_str().map(String::from))
                .unwrap_or_default(),
            model: rec.model,
            input_tokens: rec.tokens.input as i64,
            output_tokens: rec.tokens.output as i64,
            cache_read_tokens: rec.tokens.cache_read as i64,
            cache_write_tokens: rec.tokens.cache_write as i64,
            cost_usd: rec.cost_usd,
            stop_reason: rec.stop_reason,
            outcome: serde_json::to_value(rec.outcome)
                .ok()
                .and_then(|v| v.as_str().map(String::from))
                .unwrap_or_default(),
            at: rec.at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        };
        if let Err(e) = self.store.record_usage(&row).await {
            tracing::error!(task = task_id, "ledger record: {e}");
        }
        let _ = self.tx.send(Note::Changed);
    }

    async fn event(&self, task_id: &str, ev: GatewayEvent) {
        let mut data = serde_json::to_value(&ev).unwrap_or_default();
        let message = match &ev {
            GatewayEvent::Retry {
                attempt,
                status,
                error,
                delay_ms,
            } => {
                format!(
                    "provider: retry {attempt} in {delay_ms} ms after {} ({error})",
                    status
                        .map(|s| s.to_string())
                        .unwrap_or_else(|| "no answer".into())
                )
            }
            GatewayEvent::UpstreamFailed {
                attempts, error, ..
            } => format!("provider failed after {attempts} attempts: {error}"),
            GatewayEvent::BudgetRefused {
                budget,
                limit,
                spent,
                reserved,
                request,
            } => {
                let refusal = drover_gateway::Refusal {
                    budget: *budget,
                    limit: *limit,
                    spent: *spent,
                    reserved: *reserved,
                    request: *request,
                };
                format!(
                    "budget exceeded: {}; the gateway refused the request",
                    refusal.describe()
                )
            }
            GatewayEvent::NoPrice { model, budget } => {
                let which = budget_name(*budget);
                format!(
                    "budget exceeded: no price for {model}, so {which} cannot be enforced; the gateway refused the request (price it with gateway.prices.\"{model}\" in config.toml)"
                )
            }
            GatewayEvent::OutputCapped {
                model,
                requested,
                granted,
                budget,
            } => format!(
                "output_capped: {model} asked for up to {requested} output tokens; {} affords {granted}, so the gateway lowered max_tokens to that",
                budget_name(*budget)
            ),
            GatewayEvent::ModelRefused { model } => {
                format!("model {model} is not allowed for this task")
            }
            GatewayEvent::StreamInterrupted { error, .. } => format!("stream_interrupted: {error}"),
            GatewayEvent::Truncated { stop_reason, .. } => format!("truncated: {stop_reason}"),
            GatewayEvent::UnknownModelPrice { model } => {
                format!("no price for model {model}: its cost is recorded as null")
            }
        };
        if let Some(o) = data.as_object_mut() {
            o.insert("message".into(), json!(message));
            o.insert("source".into(), json!("gateway"));
        }
        let ev_out = NewEvent::new(EventKind::Error, data);
        if let Err(e) = self
            .store
            .update(task_id, None, drover_store::TaskPatch::new(), vec![ev_out])
            .await
        {
            tracing::error!(task = task_id, "ledger event: {e}");
        }
        if matches!(
            ev,
            GatewayEvent::BudgetRefused { .. } | GatewayEvent::NoPrice { .. }
        ) {
            let _ = self.tx.send(Note::BudgetExceeded(task_id.to_string()));
        }
        let _ = self.tx.send(Note::Changed);
    }
}
