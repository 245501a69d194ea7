//! The label sets of drover's Prometheus metrics, and the cap on how many of them a family
//! holds (label values come from agents and users: model, team and pool names).

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use std::collections::HashSet;
use std::hash::Hash;
use std::sync::Mutex;

/// The most label sets one metric family holds; the rest are summed under [`OTHER`].
pub const MAX_SERIES: usize = 1000;
/// The label value every capped label set is summed under.
pub const OTHER: &str = "other";

/// Which SSE stream a follower reads.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum SseStream {
    /// `GET /v1/tasks/{id}/events` followed.
    Task,
    /// The dashboard's fleet stream.
    Fleet,
}

impl SseStream {
    pub fn as_str(self) -> &'static str {
        match self {
            SseStream::Task => "task",
            SseStream::Fleet => "fleet",
        }
    }
}

impl EncodeLabelValue for SseStream {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        std::fmt::Write::write_str(encoder, self.as_str())
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StreamLabels {
    pub stream: SseStream,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabels {
    pub state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VersionLabels {
    pub version: String,
}

/// `drover_tokens_total`'s labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TokenLabels {
    pub model: String,
    pub team: String,
    pub pool: String,
    pub r#type: String,
}

/// `drover_cost_usd_total`'s labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CostLabels {
    pub model: String,
    pub team: String,
    pub pool: String,
}

/// `drover_gateway_request_duration_seconds`'s labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub upstream: String,
    pub model: String,
    pub status: String,
}

/// `drover_gateway_requests_total` and `drover_gateway_retries_total`'s labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct UpstreamLabels {
    pub upstream: String,
    pub status: String,
}

/// A label set every value of which is [`OTHER`].
pub trait Other {
    fn other() -> Self;
}

impl Other for TokenLabels {
    fn other() -> Self {
        TokenLabels {
            model: OTHER.into(),
            team: OTHER.into(),
            pool: OTHER.into(),
            r#type: OTHER.into(),
        }
    }
}

impl Other for CostLabels {
    fn other() -> Self {
        CostLabels {
            model: OTHER.into(),
            team: OTHER.into(),
            pool: OTHER.into(),
        }
    }
}

impl Other for RequestLabels {
    fn other() -> Self {
        RequestLabels {
            upstream: OTHER.into(),
            model: OTHER.into(),
            status: OTHER.into(),
        }
    }
}

impl Other for UpstreamLabels {
    fn other() -> Self {
        UpstreamLabels {
            upstream: OTHER.into(),
            status: OTHER.into(),
        }
    }
}

/// The label sets a family has handed out: the first [`MAX_SERIES`] - 1 pass as they are,
/// every later new one becomes [`Other::other`] (so a family never exceeds [`MAX_SERIES`]).
pub struct Cap<L> {
    seen: Mutex<HashSet<L>>,
}

impl<L: Clone + Hash + Eq + Other> Default for Cap<L> {
    fn default() -> Self {
        Cap {
            seen: Mutex::new(HashSet::new()),
        }
    }
}

impl<L: Clone + Hash + Eq + Other> Cap<L> {
    /// `labels`, or the `other` set once the family is full.
    pub fn admit(&self, labels: L) -> L {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if seen.contains(&labels) {
            return labels;
        }
        if seen.len() + 1 >= MAX_SERIES {
            return L::other();
        }
        seen.insert(labels.clone());
        labels
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_family_never_holds_more_than_max_series() {
        let cap = Cap::<UpstreamLabels>::default();
        let l = |i: usize| UpstreamLabels {
            upstream: format!("u{i}"),
            status: "200".into(),
        };
        let out: HashSet<UpstreamLabels> = (0..3 * MAX_SERIES).map(|i| cap.admit(l(i))).collect();
        assert_eq!(out.len(), MAX_SERIES);
        assert!(out.contains(&UpstreamLabels::other()));
        // Known ones keep passing.
        assert_eq!(cap.admit(l(3)), l(3));
    }
}
