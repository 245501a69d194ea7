//! The state every request shares ([`Inner`]): a leaf that [`crate::gateway`], [`crate::proxy`]
//! and [`crate::relay`] all use without using each other.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};

use crate::budget::Budgets;
use crate::config::GatewayConfig;
use crate::grant::Grants;
use crate::ledger::Ledger;
use crate::observer::Observer;

/// Shared state behind every request.
pub struct Inner {
    pub cfg: GatewayConfig,
    pub client: reqwest::Client,
    pub ledger: Arc<dyn Ledger>,
    pub grants: Grants,
    pub budgets: Arc<Budgets>,
    /// Models already reported without a price (one `UnknownModelPrice` event each).
    pub unknown_models: Mutex<HashSet<String>>,
    /// Told about every exchange (metrics, traces), when the embedder gave one.
    pub observer: Option<Arc<dyn Observer>>,
}

impl Inner {
    /// True the first time `model` is found without a price.
    pub fn first_unknown(&self, model: &str) -> bool {
        self.unknown_models
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(model.to_string())
    }
}
