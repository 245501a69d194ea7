//! The daemon's side of the gateway (`drover-gateway`): serves it on loopback, grants each task
//! a token, and hands its usage to [`crate::ledger`].
//!
//! Tokens are derived, not stored: `drv-` + SHA-256(home secret, task id, attempt), with the
//! secret in `DROVER_HOME/gateway.key` (mode 0600). A restarted daemon re-grants the same tokens
//! to the tasks it re-adopts, so their agents keep working, and no token is ever in the store.
//!
//! The gateway is on when the daemon has a provider key (`ANTHROPIC_API_KEY`/`OPENAI_API_KEY`)
//! or `DROVER_GATEWAY` is set to anything but `off` (all read by [`crate::config`]); otherwise agents use their own login and their own figures are the
//! task's usage (`metered_by: agent`).

pub use crate::ledger::Note;
use drover_gateway::{Gateway, GatewayConfig, Limits, TaskGrant};
use drover_store::{Store, TaskRecord};
use sha2::{Digest, Sha256};
use std::path::Path;
use std::sync::Arc;
use tokio::sync::mpsc;

/// What a task may spend and use, from its pool and its team.
#[derive(Debug, Clone, Default)]
pub struct GrantPolicy {
    pub pool_usd: Option<f64>,
    pub team_usd_per_day: Option<f64>,
    /// The intersection of the pool's and the team's lists; `None` = any model.
    pub allowed_models: Option<Vec<String>>,
}

pub struct GatewayLink {
    pub gw: Gateway,
    /// `http://127.0.0.1:PORT`
    pub base: String,
    secret: Vec<u8>,
    ledger: Arc<crate::ledger::StoreLedger>,
}

impl GatewayLink {
    /// Starts the gateway if a provider key is configured. Returns it and the engine's end of the
    /// ledger's notes.
    pub async fn start(
        config: &crate::Config,
        telemetry: Arc<crate::telemetry::Telemetry>,
        home: &Path,
        store: Arc<dyn Store>,
        stopping: tokio_util::sync::CancellationToken,
        tasks: &tokio_util::task::TaskTracker,
    ) -> Result<Option<(GatewayLink, mpsc::UnboundedReceiver<Note>)>, String> {
        let up = &config.upstreams;
        if !up.gateway_on() {
            return Ok(None);
        }
        let cfg = GatewayConfig {
            anthropic_base: up.anthropic_base.clone(),
            openai_base: up.openai_base.clone(),
            anthropic_key: up.anthropic_key.clone(),
            openai_key: up.openai_key.clone(),
            aliases: config.aliases.clone(),
            prices: config.price_table(),
            ..GatewayConfig::default()
        };
        let (ledger, rx) = crate::ledger::store_ledger(store).await?;
        let gw = Gateway::observed(cfg, ledger.clone(), Some(telemetry))
            .map_err(|e| format!("gateway: {e}"))?;
        let listener = bind(home, up.gateway_port)
            .await
            .map_err(|e| format!("gateway listener: {e}"))?;
        let base = format!(
            "http://{}",
            listener.local_addr().map_err(|e| e.to_string())?
        );
        let server = gw.clone();
        tasks.spawn(async move {
            if let Err(e) = server.serve(listener, stopping.cancelled_owned()).await {
                tracing::error!("gateway: {e}");
            }
        });
        tracing::info!("gateway on {base}");
        let secret = load_secret(home).map_err(|e| format!("gateway.key: {e}"))?;
        Ok(Some((
            GatewayLink {
                gw,
                base,
                secret,
                ledger,
            },
            rx,
        )))
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

    /// Waits until every usage record and event the gateway reported is stored.
    pub async fn flush(&self) {
        self.ledger.flush().await;
    }

    /// At shutdown, once nothing else runs: stores what is queued and ends the ledger's writer.
    pub async fn close(&self) {
        self.ledger.close().await;
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
/// `DROVER_GATEWAY_PORT` (`configured`) wins over the kept one.
async fn bind(home: &Path, configured: Option<u16>) -> std::io::Result<tokio::net::TcpListener> {
    let path = home.join("gateway.port");
    let port = configured.or_else(|| {
        std::fs::read_to_string(&path)
            .ok()
            .and_then(|p| p.trim().parse::<u16>().ok())
    });
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
