//! What `drover agents` knows and shows: the tasks in display order, the selection (kept on
//! the same task across refreshes), transcript tails, the footer message. No I/O, no drawing.

use crate::format;
use chrono::{DateTime, Utc};
use drover_types::{DaemonStatus, Event, Task, TaskState};
use ratatui::widgets::TableState;
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// Transcript lines kept per task.
const TRANSCRIPT_KEEP: usize = 2000;
/// How long a footer message stays.
const FLASH_FOR: Duration = Duration::from_secs(5);

#[derive(Default)]
pub struct Transcript {
    /// The last event seq seen.
    pub after: i64,
    pub lines: VecDeque<String>,
}

pub struct App {
    /// Every task the daemon knows, in display order.
    pub(super) tasks: Vec<Task>,
    pub show_finished: bool,
    selected: Option<String>,
    pub transcripts: HashMap<String, Transcript>,
    pub status: Option<DaemonStatus>,
    /// Daemon unreachable or a request failed: shown in the header until the next success.
    pub error: Option<String>,
    flash: Option<(String, Instant)>,
    pub now: DateTime<Utc>,
    pub(super) table: TableState,
}

impl Default for App {
    fn default() -> Self {
        App {
            tasks: vec![],
            show_finished: true,
            selected: None,
            transcripts: HashMap::new(),
            status: None,
            error: None,
            flash: None,
            now: Utc::now(),
            table: TableState::default(),
        }
    }
}

/// People first (needs_input), then what runs, then the queue, then the most recently finished.
fn sort_key(t: &Task) -> (u8, u64, std::cmp::Reverse<String>, String) {
    let rank = match t.state {
        TaskState::NeedsInput => 0,
        TaskState::Preparing | TaskState::Running | TaskState::Verifying => 1,
        TaskState::Queued => 2,
        _ => 3,
    };
    let finished = t.finished_at.clone().unwrap_or_default();
    (
        rank,
        t.queue_position.unwrap_or(0),
        std::cmp::Reverse(finished),
        t.created_at.clone(),
    )
}

impl App {
    pub fn visible(&self) -> Vec<&Task> {
        self.tasks
            .iter()
            .filter(|t| self.show_finished || !t.state.is_terminal())
            .collect()
    }

    pub(super) fn selected_index(&self) -> Option<usize> {
        let id = self.selected.as_deref()?;
        self.visible().iter().position(|t| t.id == id)
    }

    pub fn selected_task(&self) -> Option<&Task> {
        let i = self.selected_index()?;
        self.visible().get(i).copied()
    }

    /// Replaces the list, keeping the selection on the same task (or near where it was).
    pub fn set_tasks(&mut self, mut tasks: Vec<Task>) {
        let old = self.selected_index().unwrap_or(0);
        tasks.sort_by_key(sort_key);
        self.tasks = tasks.into_iter().map(format::clean_task).collect();
        self.transcripts
            .retain(|id, _| self.tasks.iter().any(|t| &t.id == id));
        self.reselect(old);
    }

    fn reselect(&mut self, near: usize) {
        if self.selected_index().is_some() {
            return;
        }
        let vis = self.visible();
        let pick = vis
            .get(near.min(vis.len().saturating_sub(1)))
            .map(|t| t.id.clone());
        self.selected = pick;
    }

    pub fn toggle_finished(&mut self) {
        let old = self.selected_index().unwrap_or(0);
        self.show_finished = !self.show_finished;
        self.reselect(old);
    }

    /// Moves the selection by `delta` rows (clamped).
    pub fn move_by(&mut self, delta: isize) {
        let vis = self.visible();
        if vis.is_empty() {
            return;
        }
        let cur = self.selected_index().unwrap_or(0) as isize;
        let next = (cur + delta).clamp(0, vis.len() as isize - 1) as usize;
        self.selected = vis.get(next).map(|t| t.id.clone());
    }

    #[cfg(test)]
    pub fn select_id(&mut self, id: &str) {
        self.selected = Some(id.to_string());
    }

    pub fn push_events(&mut self, id: &str, events: &[Event]) {
        let tr = self.transcripts.entry(id.to_string()).or_default();
        for e in events {
            if e.seq <= tr.after {
                continue;
            }
            tr.after = e.seq;
            if let Some(text) = format::event(e) {
                tr.lines.extend(text.lines().map(str::to_string));
            }
        }
        while tr.lines.len() > TRANSCRIPT_KEEP {
            tr.lines.pop_front();
        }
    }

    pub fn after(&self, id: &str) -> i64 {
        self.transcripts.get(id).map(|t| t.after).unwrap_or(0)
    }

    pub fn flash(&mut self, msg: impl Into<String>) {
        self.flash = Some((msg.into(), Instant::now()));
    }

    pub(super) fn flash_text(&self) -> Option<&str> {
        self.flash
            .as_ref()
            .filter(|(_, at)| at.elapsed() < FLASH_FOR)
            .map(|(m, _)| m.as_str())
    }
}

pub(super) fn one_line(s: &str, n: usize) -> String {
    let flat = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= n {
        return flat;
    }
    let cut =
        drover_types::text::prefix(&flat, drover_types::text::Limit::Chars(n.saturating_sub(1)));
    format!("{cut}…")
}

pub fn human(d: chrono::Duration) -> String {
    let s = d.num_seconds().max(0);
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        3600..=86399 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{:02}h", s / 86400, s % 86400 / 3600),
    }
}

pub(super) fn ts(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// Queued: how long it has waited; active: how long it has run; finished: how long it ran.
pub(super) fn time_label(t: &Task, now: DateTime<Utc>) -> String {
    let created = ts(&t.created_at);
    let started = t.started_at.as_deref().and_then(ts);
    let finished = t.finished_at.as_deref().and_then(ts);
    let span = match (t.state, started, finished) {
        (_, Some(s), Some(f)) => Some(f - s),
        (TaskState::Queued, _, _) => created.map(|c| now - c),
        (_, Some(s), None) => Some(now - s),
        (_, None, Some(f)) => created.map(|c| f - c),
        _ => created.map(|c| now - c),
    };
    span.map(human).unwrap_or_else(|| "-".into())
}

pub(super) fn ago(s: Option<&str>, now: DateTime<Utc>) -> Option<String> {
    s.and_then(ts).map(|t| format!("{} ago", human(now - t)))
}

pub(super) fn cost(t: &Task) -> String {
    t.cost_usd
        .map(|c| format!("${c:.4}"))
        .unwrap_or_else(|| "-".into())
}
