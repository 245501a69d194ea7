//! Whether this daemon may start agents (docs/design.md §11, "Honest fallback").
//!
//! With `sandbox.isolation = "full"` (the default) the daemon probes the host once at start
//! ([`drover_shim::probe`]). When a feature the jail needs is missing, the daemon still runs
//! (`drover doctor`, `ls`, `show` work) but starts no agent: `POST /v1/tasks`, pool creation and
//! resume answer `isolation_unavailable` (503) naming the feature and its remedy, pools fill no
//! slot, and a task queued before is failed with the same reason — never run unconfined. With
//! `"none"` nothing is probed and every task runs (and shows) unconfined.

use crate::config::{Config, IsolationProbe};
use drover_shim::probe::Report;
use drover_types::Isolation;

/// What the probe at start found.
#[derive(Debug, Clone, Default)]
pub struct HostConfinement {
    report: Option<Report>,
    refusal: Option<String>,
}

impl HostConfinement {
    /// Probes the host when `config` asks for confinement (a few milliseconds, once).
    pub fn check(config: &Config) -> Self {
        if config.confinement.isolation == Isolation::None {
            return HostConfinement::default();
        }
        let report = match &config.isolation_probe {
            IsolationProbe::Host => drover_shim::probe::probe(),
            IsolationProbe::Fixed(r) => r.clone(),
        };
        let refusal = report.refusal().map(|r| {
            format!(
                "{r}; or set `isolation = \"none\"` under [sandbox] in {} to run agents \
                 unconfined on purpose",
                config.home.join("config.toml").display()
            )
        });
        if let Some(r) = &refusal {
            tracing::warn!("no task will start: {r}");
        }
        HostConfinement {
            report: Some(report),
            refusal,
        }
    }

    /// Why no task may start, in one line (the feature, its remedy, and `isolation = "none"`).
    pub fn refusal(&self) -> Option<&str> {
        self.refusal.as_deref()
    }

    /// The probe's report (`None` with `isolation = "none"`).
    pub fn report(&self) -> Option<&Report> {
        self.report.as_ref()
    }
}

/// The hint of a refused start.
pub const REFUSAL_HINT: &str =
    "`drover doctor` lists each isolation check with its remedy (docs/design.md §11)";
