//! The [`Gateway`]: grants, the axum router, and serving it.

use std::collections::HashSet;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderMap, Uri};
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use bytes::Bytes;

use crate::budget::Budgets;
use crate::config::GatewayConfig;
use crate::errors::{Flavor, GatewayError};
use crate::grant::{new_token, Grants, TaskGrant, TOKEN_PREFIX};
use crate::inner::Inner;
use crate::ledger::{Api, Ledger};
use crate::proxy::handle;

/// The LLM gateway. Cheap to clone (one shared state).
#[derive(Clone)]
pub struct Gateway {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("cfg", &self.inner.cfg)
            .finish_non_exhaustive()
    }
}

impl Gateway {
    /// A gateway reporting to `ledger`. Fails only if the HTTP client cannot be built.
    pub fn new(cfg: GatewayConfig, ledger: Arc<dyn Ledger>) -> Result<Self, GatewayError> {
        Gateway::observed(cfg, ledger, None)
    }

    /// A gateway reporting to `ledger` that also tells `observer` about every exchange.
    pub fn observed(
        cfg: GatewayConfig,
        ledger: Arc<dyn Ledger>,
        observer: Option<Arc<dyn crate::Observer>>,
    ) -> Result<Self, GatewayError> {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(15))
            .tcp_nodelay(true)
            .pool_idle_timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| GatewayError::Upstream(format!("cannot build the HTTP client: {e}")))?;
        Ok(Gateway {
            inner: Arc::new(Inner {
                cfg,
                client,
                ledger,
                grants: Grants::default(),
                budgets: Arc::new(Budgets::default()),
                unknown_models: Mutex::new(HashSet::new()),
                observer,
            }),
        })
    }

    /// The configuration in force.
    pub fn config(&self) -> &GatewayConfig {
        &self.inner.cfg
    }

    /// Requests holding a budget reservation right now.
    pub fn reservations_in_flight(&self) -> usize {
        self.inner.budgets.in_flight()
    }

    /// Requests waiting for others in flight to settle before their budget check passes.
    pub fn waiting_for_budget(&self) -> usize {
        self.inner.budgets.waiting()
    }

    /// Registers a task and returns its fresh token (`drv-` + 32 hex digits).
    pub fn grant(&self, grant: TaskGrant) -> String {
        let token = new_token();
        self.inner.grants.insert(token.clone(), grant);
        token
    }

    /// Registers a task under a token the daemon chose — e.g. the one a still-running agent
    /// got before a daemon restart. The token must start with `drv-` and hold at least 32 more
    /// characters.
    pub fn grant_with_token(&self, token: &str, grant: TaskGrant) -> Result<(), GatewayError> {
        let ok = token
            .strip_prefix(TOKEN_PREFIX)
            .is_some_and(|rest| rest.len() >= 32 && rest.bytes().all(|b| b.is_ascii_graphic()));
        if !ok {
            return Err(GatewayError::Unauthorized);
        }
        self.inner.grants.insert(token.to_string(), grant);
        Ok(())
    }

    /// Revokes one token; later requests with it get 401. Responses in flight finish.
    pub fn revoke(&self, token: &str) -> bool {
        self.inner.grants.remove(token)
    }

    /// Revokes every token of a task; returns how many there were.
    pub fn revoke_task(&self, task_id: &str) -> usize {
        self.inner.grants.remove_task(task_id)
    }

    /// The routes: `POST /v1/messages`, `/v1/messages/count_tokens`, `/v1/chat/completions`,
    /// `/v1/responses` (query strings such as `?beta=true` pass through); anything else 404.
    pub fn router(&self) -> Router {
        let route = |api: Api| {
            let inner = self.inner.clone();
            post(move |uri: Uri, headers: HeaderMap, body: Bytes| {
                handle(inner.clone(), api, uri, headers, body)
            })
        };
        Router::new()
            .route("/v1/messages", route(Api::Messages))
            .route("/v1/messages/count_tokens", route(Api::CountTokens))
            .route("/v1/chat/completions", route(Api::ChatCompletions))
            .route("/v1/responses", route(Api::Responses))
            .fallback(not_found)
            .layer(DefaultBodyLimit::max(self.inner.cfg.max_request_bytes))
    }

    /// Serves [`Gateway::router`] on `listener` (bind it to 127.0.0.1) with `TCP_NODELAY`,
    /// until `shutdown` resolves.
    pub async fn serve(
        &self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        use axum::serve::ListenerExt;
        let listener = listener.tap_io(|tcp| {
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::debug!("gateway: cannot set TCP_NODELAY: {e}");
            }
        });
        axum::serve(listener, self.router())
            .with_graceful_shutdown(shutdown)
            .await
    }

    /// The environment an agent needs to use the gateway at `base` (e.g.
    /// `http://127.0.0.1:PORT`) with `token`: Anthropic's and OpenAI's base URL and key
    /// variables. The daemon must also remove any real provider key variables.
    pub fn agent_env(base: &str, token: &str) -> Vec<(String, String)> {
        let base = base.trim_end_matches('/');
        vec![
            ("ANTHROPIC_BASE_URL".into(), base.to_string()),
            ("ANTHROPIC_API_KEY".into(), token.to_string()),
            ("OPENAI_BASE_URL".into(), format!("{base}/v1")),
            ("OPENAI_API_KEY".into(), token.to_string()),
        ]
    }
}

async fn not_found(uri: Uri) -> Response {
    let flavor = if uri.path().contains("/chat/") || uri.path().contains("/responses") {
        Flavor::OpenAi
    } else {
        Flavor::Anthropic
    };
    GatewayError::NotFound.response(flavor)
}
