//! The fleet view's data (docs/design.md §10): [`build`] reads the store in a fixed handful of
//! queries ([`drover_store::FleetStore`]) into a [`FleetState`]; [`FleetFeed`] keeps ONE such
//! state current for every follower of `GET /v1/fleet/events`.
//!
//! - One feeder task per daemon, started by the first follower and ended when the last one
//!   leaves (or the daemon stops): it computes a state after each move of the store's change
//!   feed, at most [`PER_SECOND`] times a second (changes in between are coalesced into the next
//!   one), and publishes it on a `watch` channel of `Arc<FleetState>`. Followers only filter it.
//! - A follower's view is its team's cards (a key) or all of them (the owner): the state holds
//!   the active tasks and, per team, its [`FINISHED_CARDS`] most recently finished, with each
//!   team's finished count, so every view is exact; each view's JSON is made once per state and
//!   shared by the followers of that team ([`FleetState::json`]).
//! - A card's `last_line` is its latest event worth showing ([`SHOWN`]) as one line
//!   ([`last_line`]); finished tasks' lines are remembered between states by the task's
//!   `next_seq`, so a state reads the events of the tasks that moved only.

use crate::engine::Engine;
use drover_store::TaskRecord;
use drover_types::web::{FleetCard, FleetGroup, FleetSnapshot};
use drover_types::{Event, EventKind};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

/// Finished tasks listed per view (the rest are counted in `finished_omitted`).
pub const FINISHED_CARDS: usize = 200;
/// The most states the feed computes per second.
pub const PER_SECOND: u32 = 4;
/// The longest `last_line`, in characters.
pub const LAST_LINE_CHARS: usize = 200;

/// The events a card's last line comes from: what the agent said or did, gates, errors.
pub const SHOWN: [EventKind; 7] = [
    EventKind::Text,
    EventKind::ToolCall,
    EventKind::Gate,
    EventKind::Error,
    EventKind::NeedsInput,
    EventKind::Result,
    EventKind::Stderr,
];

/// One computed fleet: every card any caller may see, and how to cut it per caller.
#[derive(Debug)]
pub struct FleetState {
    pub version: u64,
    pub generated_at: String,
    /// Active tasks, queue order.
    active: Vec<FleetCard>,
    /// Finished tasks, newest first: each team's [`FINISHED_CARDS`] newest.
    finished: Vec<FleetCard>,
    /// Finished tasks per team in all (`None`: no team).
    finished_by_team: HashMap<Option<String>, u64>,
    /// Each view's JSON, made on first use (key: the viewer's team, `None` for the owner).
    views: Mutex<HashMap<Option<String>, Arc<str>>>,
}

impl FleetState {
    /// What a caller of `team` sees (`None`: the owner, every team).
    pub fn view(&self, team: Option<&str>) -> FleetSnapshot {
        let mine = |c: &&FleetCard| team.is_none() || c.team.as_deref() == team;
        let mut cards: Vec<FleetCard> = self.active.iter().filter(mine).cloned().collect();
        let finished: Vec<FleetCard> = self
            .finished
            .iter()
            .filter(mine)
            .take(FINISHED_CARDS)
            .cloned()
            .collect();
        let total: u64 = match team {
            None => self.finished_by_team.values().sum(),
            Some(t) => self
                .finished_by_team
                .get(&Some(t.to_string()))
                .copied()
                .unwrap_or(0),
        };
        let finished_omitted = total.saturating_sub(finished.len() as u64);
        cards.extend(finished);
        FleetSnapshot {
            version: self.version,
            generated_at: self.generated_at.clone(),
            cards,
            finished_omitted,
        }
    }

    /// [`FleetState::view`] as JSON, made once per team and state.
    pub fn json(&self, team: Option<&str>) -> Arc<str> {
        let key = team.map(str::to_string);
        let mut views = self.views.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(j) = views.get(&key) {
            return j.clone();
        }
        let j: Arc<str> = serde_json::to_string(&self.view(team))
            .unwrap_or_default()
            .into();
        views.insert(key, j.clone());
        j
    }
}

/// States computed by every feed of this process (tests with an in-process daemon read it).
static COMPUTED: AtomicU64 = AtomicU64::new(0);

/// How many fleet states the feeders of this process computed so far (`GET /v1/fleet` answers
/// computed for one caller are not counted).
pub fn computations() -> u64 {
    COMPUTED.load(Ordering::Relaxed)
}

/// Last lines of finished tasks, kept between states: (task id) → (its `next_seq` then, line).
type LineCache = HashMap<String, (i64, Option<String>)>;

/// The one shared, current [`FleetState`] (see the module's doc).
pub struct FleetFeed {
    tx: watch::Sender<Option<Arc<FleetState>>>,
    feeding: AtomicBool,
    computed: AtomicU64,
    lines: Mutex<LineCache>,
}

impl Default for FleetFeed {
    fn default() -> Self {
        FleetFeed {
            tx: watch::channel(None).0,
            feeding: AtomicBool::new(false),
            computed: AtomicU64::new(0),
            lines: Mutex::default(),
        }
    }
}

impl FleetFeed {
    pub fn new() -> FleetFeed {
        FleetFeed::default()
    }

    /// How many states the feeder computed so far (whatever the number of followers).
    pub fn computed(&self) -> u64 {
        self.computed.load(Ordering::Relaxed)
    }

    /// Followers now.
    pub fn followers(&self) -> usize {
        self.tx.receiver_count()
    }

    /// A follower's receiver of the current state (starts the feeder if none runs). The first
    /// value may be `None` until the feeder has computed one.
    pub fn follow(engine: &Arc<Engine>) -> watch::Receiver<Option<Arc<FleetState>>> {
        let feed = &engine.fleet;
        let rx = feed.tx.subscribe();
        start(engine);
        rx
    }

    /// A fresh state for one caller (`GET /v1/fleet`): the feeder's when it is current, else
    /// computed now.
    pub async fn current(engine: &Engine) -> Result<Arc<FleetState>, drover_store::StoreError> {
        let version = engine.store.changes().version();
        if let Some(s) = engine.fleet.tx.borrow().clone() {
            if s.version == version {
                return Ok(s);
            }
        }
        Ok(Arc::new(build(engine, version).await?))
    }
}

/// Starts the feeder unless one runs.
fn start(engine: &Arc<Engine>) {
    let feed = &engine.fleet;
    if feed
        .feeding
        .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
        .is_err()
    {
        return;
    }
    let engine2 = engine.clone();
    engine.tasks.spawn(async move { feed_loop(engine2).await });
}

async fn feed_loop(engine: Arc<Engine>) {
    let feed = &engine.fleet;
    let stopping = engine.stopping();
    let mut changes = engine.subscribe();
    let gap = Duration::from_secs(1) / PER_SECOND;
    loop {
        changes.borrow_and_update();
        let version = engine.store.changes().version();
        match build(&engine, version).await {
            Ok(state) => {
                feed.computed.fetch_add(1, Ordering::Relaxed);
                COMPUTED.fetch_add(1, Ordering::Relaxed);
                feed.tx.send_replace(Some(Arc::new(state)));
            }
            Err(e) => tracing::warn!("fleet view not computed: {e}"),
        }
        let coalesce = tokio::time::sleep(gap);
        tokio::select! {
            _ = stopping.cancelled() => break,
            _ = feed.tx.closed() => {
                // The last follower left. One may have come in between: keep feeding then.
                feed.feeding.store(false, Ordering::Release);
                if feed.tx.receiver_count() > 0
                    && feed
                        .feeding
                        .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
                        .is_ok()
                {
                    continue;
                }
                return;
            }
            _ = coalesce => {}
        }
        // At most PER_SECOND states a second: wait for the next change only now.
        tokio::select! {
            _ = stopping.cancelled() => break,
            r = changes.changed() => if r.is_err() { break },
            _ = feed.tx.closed() => {
                feed.feeding.store(false, Ordering::Release);
                if feed.tx.receiver_count() > 0
                    && feed
                        .feeding
                        .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
                        .is_ok()
                {
                    continue;
                }
                return;
            }
        }
    }
    // The daemon stops: followers see the channel close.
    feed.tx.send_replace(None);
    feed.feeding.store(false, Ordering::Release);
}

/// Reads the fleet from the store into a state of `version`.
pub async fn build(engine: &Engine, version: u64) -> Result<FleetState, drover_store::StoreError> {
    let rows = engine.store.fleet_tasks(FINISHED_CARDS as i64).await?;
    let mut done = rows.finished;
    done.sort_by(|a, b| {
        b.finished_at
            .cmp(&a.finished_at)
            .then(b.queue_seq.cmp(&a.queue_seq))
    });
    // Lines of finished tasks not moved since the last state come from the cache.
    let cached: LineCache = {
        let lines = engine.fleet.lines.lock().unwrap_or_else(|e| e.into_inner());
        done.iter()
            .filter_map(|t| {
                lines
                    .get(&t.id)
                    .filter(|(seq, _)| *seq == t.next_seq)
                    .map(|v| (t.id.clone(), v.clone()))
            })
            .collect()
    };
    let wanted: Vec<String> = rows
        .active
        .iter()
        .chain(done.iter())
        .filter(|t| !cached.contains_key(&t.id))
        .map(|t| t.id.clone())
        .collect();
    let latest = engine.store.latest_events(&wanted, &SHOWN).await?;
    let mut found: HashMap<String, Option<String>> = latest
        .iter()
        .map(|e| (e.task_id.clone(), last_line(e)))
        .collect();
    let mut line_of = |t: &TaskRecord| -> Option<String> {
        if let Some((_, l)) = cached.get(&t.id) {
            return l.clone();
        }
        found.remove(&t.id).flatten()
    };
    let active: Vec<FleetCard> = rows.active.iter().map(|t| card(t, line_of(t))).collect();
    let finished: Vec<FleetCard> = done.iter().map(|t| card(t, line_of(t))).collect();
    {
        // Remember the finished tasks' lines (only those listed now).
        let mut lines = engine.fleet.lines.lock().unwrap_or_else(|e| e.into_inner());
        let seqs: HashMap<&str, i64> = done.iter().map(|t| (t.id.as_str(), t.next_seq)).collect();
        lines.clear();
        for c in &finished {
            if let Some(seq) = seqs.get(c.id.as_str()) {
                lines.insert(c.id.clone(), (*seq, c.last_line.clone()));
            }
        }
    }
    Ok(FleetState {
        version,
        generated_at: drover_store::now(),
        active,
        finished,
        finished_by_team: rows.finished_by_team.into_iter().collect(),
        views: Mutex::default(),
    })
}

fn card(t: &TaskRecord, last_line: Option<String>) -> FleetCard {
    FleetCard {
        id: t.id.clone(),
        name: t.name.clone(),
        state: t.state,
        group: FleetGroup::of(t.state),
        repo: t.repo.clone(),
        agent: t.agent.clone(),
        model: t.model.clone(),
        team: t.team.clone(),
        pool: t.pool.clone(),
        batch: t.batch.clone(),
        created_at: t.created_at.clone(),
        started_at: t.started_at.clone(),
        finished_at: t.finished_at.clone(),
        cost_usd: t.cost_usd,
        last_line,
        error_kind: t.outcome.as_ref().and_then(|o| o.error_kind),
    }
}

/// An event as one line for a card: its text (the last non-empty line of it), a tool call's
/// name and input, a gate's command and exit, an error's message; terminal control sequences
/// removed, at most [`LAST_LINE_CHARS`] characters.
pub fn last_line(e: &Event) -> Option<String> {
    let d = &e.data;
    let s = |k: &str| d.get(k).and_then(|v| v.as_str()).unwrap_or_default();
    let compact = |v: Option<&serde_json::Value>| v.map(|v| v.to_string()).unwrap_or_default();
    let raw = match e.kind {
        EventKind::Text => last_of(s("text")).to_string(),
        EventKind::Stderr => last_of(s("line")).to_string(),
        EventKind::ToolCall => format!("→ {} {}", s("name"), compact(d.get("input"))),
        EventKind::Gate => format!(
            "gate {} → {}",
            s("command"),
            match d.get("exit_code").and_then(|v| v.as_i64()) {
                Some(0) => "passed".to_string(),
                Some(c) => format!("exit {c}"),
                None => "did not finish".to_string(),
            }
        ),
        EventKind::Error => format!("error: {}", s("message")),
        EventKind::NeedsInput => format!("asks: {} {}", s("tool"), compact(d.get("input"))),
        EventKind::Result => format!("result: {}", last_of(s("result"))),
        _ => return None,
    };
    let clean = drover_types::terminal::clean(&raw);
    let one: String = clean
        .split(['\n', '\t', '\r'])
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    let one = one.trim();
    if one.is_empty() {
        return None;
    }
    let cut = drover_types::text::prefix(one, drover_types::text::Limit::Chars(LAST_LINE_CHARS));
    if cut.len() == one.len() {
        Some(one.to_string())
    } else {
        let keep =
            drover_types::text::prefix(one, drover_types::text::Limit::Chars(LAST_LINE_CHARS - 1));
        Some(format!("{keep}…"))
    }
}

/// The last non-blank line of a text.
fn last_of(s: &str) -> &str {
    s.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn ev(kind: EventKind, data: serde_json::Value) -> Event {
        Event {
            task_id: "t".into(),
            seq: 1,
            ts: String::new(),
            kind,
            data,
        }
    }

    #[test]
    fn last_lines_are_one_clean_short_line() {
        let l = |k, d| last_line(&ev(k, d));
        assert_eq!(
            l(
                EventKind::Text,
                json!({"text": "a\nb \x1b[31mred\x1b[0m\n\n"})
            )
            .as_deref(),
            Some("b red")
        );
        assert_eq!(
            l(
                EventKind::Text,
                json!({"text": "\x1b]0;title\x07hi\tthere"})
            )
            .as_deref(),
            Some("hi there")
        );
        assert_eq!(l(EventKind::Text, json!({"text": " \n "})), None);
        assert_eq!(l(EventKind::Usage, json!({"input_tokens": 1})), None);
        assert_eq!(
            l(
                EventKind::ToolCall,
                json!({"name": "Bash", "input": {"command": "ls"}})
            )
            .as_deref(),
            Some(r#"→ Bash {"command":"ls"}"#)
        );
        assert_eq!(
            l(
                EventKind::Gate,
                json!({"command": "make test", "exit_code": 2})
            )
            .as_deref(),
            Some("gate make test → exit 2")
        );
        assert_eq!(
            l(EventKind::Error, json!({"message": "boom"})).as_deref(),
            Some("error: boom")
        );
        let long = l(EventKind::Text, json!({"text": "é".repeat(500)})).unwrap();
        assert_eq!(long.chars().count(), LAST_LINE_CHARS);
        assert!(long.ends_with('…'));
    }

    fn c(id: &str, team: Option<&str>, state: drover_types::TaskState) -> FleetCard {
        FleetCard {
            id: id.into(),
            name: None,
            state,
            group: FleetGroup::of(state),
            repo: "/r".into(),
            agent: "command".into(),
            model: None,
            team: team.map(str::to_string),
            pool: None,
            batch: None,
            created_at: String::new(),
            started_at: None,
            finished_at: None,
            cost_usd: None,
            last_line: None,
            error_kind: None,
        }
    }

    #[test]
    fn views_hold_the_team_s_cards_and_counts() {
        use drover_types::TaskState::*;
        let state = FleetState {
            version: 7,
            generated_at: String::new(),
            active: vec![c("a1", Some("a"), Running), c("n1", None, Running)],
            finished: vec![
                c("a2", Some("a"), Succeeded),
                c("b1", Some("b"), Failed),
                c("a3", Some("a"), Failed),
            ],
            finished_by_team: [(Some("a".to_string()), 10), (Some("b".to_string()), 1)]
                .into_iter()
                .collect(),
            views: Mutex::default(),
        };
        let ids = |s: &FleetSnapshot| s.cards.iter().map(|c| c.id.clone()).collect::<Vec<_>>();
        let a = state.view(Some("a"));
        assert_eq!(ids(&a), vec!["a1", "a2", "a3"]);
        assert_eq!(a.finished_omitted, 8);
        let all = state.view(None);
        assert_eq!(ids(&all).len(), 5);
        assert_eq!(all.finished_omitted, 8);
        assert!(ids(&state.view(Some("zz"))).is_empty());
        // One JSON per team, shared.
        assert!(Arc::ptr_eq(&state.json(Some("a")), &state.json(Some("a"))));
        assert_eq!(all.version, 7);
    }
}
