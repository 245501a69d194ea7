//! Rendering for people. Scripts use `--json`.
//!
//! Text from an agent or a prompt can hold terminal control sequences (an agent that prints
//! `ESC]0;title BEL ESC[2J` would retitle the window and clear the screen). Everything rendered
//! here goes through [`clean`] before it reaches a terminal; `--json` output stays exact.

use drover_types::text::{self, Limit};
use drover_types::{Event, EventKind, Task, TaskState};

mod batches;
mod keys;
mod tables;
pub use batches::{batch_repos_table, batches_table};
pub use keys::{keys_table, teams_table};
pub use tables::{audit_table, pools_table, table, usage_table, workers_table};

pub use drover_types::terminal::clean;

fn clean_opt(s: &mut Option<String>) {
    if let Some(v) = s {
        *v = clean(v);
    }
}

fn clean_value(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::String(s) => *s = clean(s),
        serde_json::Value::Array(a) => a.iter_mut().for_each(clean_value),
        serde_json::Value::Object(o) => o.values_mut().for_each(clean_value),
        _ => {}
    }
}

/// A task whose text fields (prompt, name, result, reason, … — anything a user or an agent
/// wrote) are [`clean`], for views that render fields one by one (`ls`, `show`, `agents`).
pub fn clean_task(mut t: Task) -> Task {
    t.prompt = clean(&t.prompt);
    t.agent = clean(&t.agent);
    t.repo = clean(&t.repo);
    t.base_ref = clean(&t.base_ref);
    t.branch = clean(&t.branch);
    for f in [
        &mut t.name,
        &mut t.model,
        &mut t.result,
        &mut t.session_id,
        &mut t.pool,
        &mut t.batch,
        &mut t.team,
        &mut t.created_by,
        &mut t.sandbox,
        &mut t.commit,
        &mut t.cmd,
    ] {
        clean_opt(f);
    }
    if let Some(o) = &mut t.outcome {
        o.reason = clean(&o.reason);
    }
    t.verify = t.verify.iter().map(|v| clean(v)).collect();
    t.tags = t.tags.iter().map(|(k, v)| (clean(k), clean(v))).collect();
    if let Some(v) = &mut t.pending_input {
        clean_value(v);
    }
    if let Some(l) = &mut t.locks {
        for name in l.holding.iter_mut().chain(l.waiting.iter_mut()) {
            *name = clean(name);
        }
    }
    t
}

/// `s` [`clean`] on one line (newlines shown as ` ⏎ `), cut to `n` characters.
pub(crate) fn excerpt(s: &str, n: usize) -> String {
    text::excerpt(&clean(s).replace('\n', " ⏎ "), Limit::Chars(n))
}

pub fn state_label(t: &Task) -> String {
    match (t.state, t.queue_position) {
        (TaskState::Queued, Some(p)) => format!("queued #{p}"),
        (s, _) => s.to_string(),
    }
}

/// `URL (#N, state)`: one PR of a task (`show`, `run --wait`).
pub fn pr_line(p: &drover_types::PrInfo) -> String {
    format!("{} (#{}, {})", clean(&p.url), p.number, p.state.as_str())
}

fn pr_asked(o: &drover_types::PrOptions) -> String {
    let mut parts = vec![];
    if o.draft {
        parts.push("draft".to_string());
    }
    if let Some(b) = &o.base {
        parts.push(format!("base {}", clean(b)));
    }
    if o.allow_ci_changes {
        parts.push("CI changes allowed".to_string());
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!(" ({})", parts.join(", "))
    }
}

pub fn task(t: &Task) -> String {
    let t = &clean_task(t.clone());
    let mut out = String::new();
    let mut kv = |k: &str, v: String| out.push_str(&format!("{k:<12} {v}\n"));
    kv("id", t.id.clone());
    if let Some(n) = &t.name {
        kv("name", n.clone());
    }
    kv("state", state_label(t));
    if let Some(o) = &t.outcome {
        let kind = o
            .error_kind
            .map(|k| format!(" [{}]", k.as_str()))
            .unwrap_or_default();
        kv(
            "outcome",
            format!("{}{kind}: {}", o.verdict.as_str(), o.reason),
        );
    }
    kv(
        "agent",
        format!(
            "{}{}",
            t.agent,
            t.model
                .as_ref()
                .map(|m| format!(" ({m})"))
                .unwrap_or_default()
        ),
    );
    kv("repo", format!("{} @ {}", t.repo, t.base_ref));
    kv("branch", t.branch.clone());
    // A multi-repo task (docs/design.md §9): one line per repository.
    for (i, r) in t.repos.iter().enumerate() {
        let commit = r.commit.as_deref().map_or_else(
            || "(not committed yet)".to_string(),
            |c| clean(c).chars().take(12).collect(),
        );
        kv(
            if i == 0 { "repos" } else { "" },
            format!(
                "{}/ {} @ {}  {}  {commit}",
                clean(r.dir.as_deref().unwrap_or("?")),
                clean(&r.repo),
                clean(&r.base_ref),
                clean(&r.branch)
            ),
        );
    }
    // Many hosts (docs/design.md §8): who holds (or last held) it, and a local-path pin.
    if let Some(w) = &t.worker {
        kv("worker", format!("{} (attempt {})", clean(w), t.attempt));
    }
    if let Some(w) = &t.runs_on {
        kv(
            "runs on",
            format!(
                "{} (local-path repo: only that worker can see it)",
                clean(w)
            ),
        );
    }
    if let Some(team) = &t.team {
        kv("team", team.clone());
    }
    if let Some(by) = &t.created_by {
        kv("created by", by.clone());
    }
    if !t.tags.is_empty() {
        let tags: Vec<String> = t.tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
        kv("tags", tags.join(" "));
    }
    if !t.protect.is_empty() {
        kv("protect", t.protect.join(" "));
    }
    if let Some(c) = &t.commit {
        kv("commit", c.clone());
    }
    for p in &t.prs {
        kv("pr", pr_line(p));
    }
    if let (Some(o), true) = (&t.pr, t.prs.is_empty() && !t.state.is_terminal()) {
        kv(
            "pr",
            format!("opened once the task succeeds{}", pr_asked(o)),
        );
    }
    if let Some(s) = &t.sandbox {
        kv(
            "sandbox",
            format!("{} ({})", s, t.sandbox_kind.map_or("?", |k| k.as_str())),
        );
    }
    if let Some(i) = t.isolation {
        kv(
            "isolation",
            match i {
                drover_types::Isolation::Full => "full".to_string(),
                drover_types::Isolation::None => {
                    "none (unconfined: sandbox.isolation = \"none\")".to_string()
                }
            },
        );
    }
    if let Some(s) = &t.session_id {
        kv("session", s.clone());
    }
    let u = &t.usage;
    kv(
        "usage",
        format!(
            "in {} out {} cache read {} write {}",
            u.input_tokens, u.output_tokens, u.cache_read_tokens, u.cache_write_tokens
        ),
    );
    kv(
        "cost",
        t.cost_usd
            .map(|c| format!("${c:.4}"))
            .unwrap_or_else(|| "-".into()),
    );
    kv("created", t.created_at.clone());
    if let Some(s) = &t.started_at {
        kv("started", s.clone());
    }
    if let Some(s) = &t.finished_at {
        kv("finished", s.clone());
    }
    kv("clocks", clocks(t));
    if let Some(r) = resources(t) {
        kv("resources", r);
    }
    if let Some(p) = &t.pending_input {
        kv(
            "waiting for",
            format!(
                "{} (answer: drover send {} --allow|--deny)",
                excerpt(&p.to_string(), 120),
                t.id
            ),
        );
    }
    if let Some(l) = &t.locks {
        let list = |names: &[String]| names.join(", ");
        kv(
            "locks",
            format!(
                "holding [{}] waiting [{}]",
                list(&l.holding),
                list(&l.waiting)
            ),
        );
    }
    if let Some(p) = &t.pool {
        kv("pool", p.clone());
    }
    if let Some(b) = &t.batch {
        kv("batch", b.clone());
    }
    kv("prompt", excerpt(&t.prompt, 200));
    if let Some(r) = &t.result {
        kv("result", r.clone());
    }
    out
}

/// `memory 64 MiB · cpus 0.5 · pids 64 · peak 63.9 MiB · cpu 1.20 s` (what is set of it).
fn resources(t: &Task) -> Option<String> {
    use drover_types::text::bytes;
    let l = &t.limits;
    let parts: Vec<String> = [
        l.memory_bytes.map(|b| format!("memory {}", bytes(b))),
        l.cpus.map(|c| format!("cpus {c}")),
        l.pids.map(|p| format!("pids {p}")),
        t.peak_memory_bytes.map(|b| format!("peak {}", bytes(b))),
        t.cpu_seconds.map(|s| format!("cpu {s:.2} s")),
    ]
    .into_iter()
    .flatten()
    .collect();
    (!parts.is_empty()).then(|| parts.join(" · "))
}

/// `timeout 10m (at …) · stall 30m · stopping (TERM sent)`.
fn clocks(t: &Task) -> String {
    let fmt = |v: Option<u64>| v.map_or("none".into(), drover_types::clock::format_secs);
    let mut s = format!("timeout {}", fmt(t.timeout_secs));
    if let (Some(at), false) = (&t.timeout_at, t.state.is_terminal()) {
        s.push_str(&format!(" (at {at})"));
    }
    s.push_str(&format!(" · stall {}", fmt(t.stall_timeout_secs)));
    if let (Some(step), false) = (&t.stop_step, t.state.is_terminal()) {
        s.push_str(&format!(" · stopping ({step} sent)"));
    }
    s
}

/// One event as a line (or a few) of transcript.
pub fn event(e: &Event) -> Option<String> {
    let d = &e.data;
    let s = |k: &str| {
        d.get(k)
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_string()
    };
    let line = match e.kind {
        EventKind::State => {
            let reason = s("reason");
            if reason.is_empty() {
                format!("● {}", s("state"))
            } else {
                format!("● {} ({})", s("state"), excerpt(&reason, 160))
            }
        }
        EventKind::Text => s("text"),
        EventKind::ToolCall => {
            format!(
                "→ {} {}",
                s("name"),
                excerpt(
                    &d.get("input").map(|v| v.to_string()).unwrap_or_default(),
                    160
                )
            )
        }
        EventKind::ToolResult => {
            let c = match d.get("content") {
                Some(serde_json::Value::String(s)) => s.clone(),
                Some(v) => v.to_string(),
                None => String::new(),
            };
            let err = if d.get("is_error").and_then(|v| v.as_bool()) == Some(true) {
                " (error)"
            } else {
                ""
            };
            format!("← {}{err}", excerpt(&c, 160))
        }
        EventKind::NeedsInput => format!(
            "? permission for {} {} — answer with `drover send {} --allow` or `--deny`",
            s("tool"),
            excerpt(
                &d.get("input").map(|v| v.to_string()).unwrap_or_default(),
                160
            ),
            e.task_id
        ),
        EventKind::Input => {
            if d.get("behavior").is_some() {
                format!("> {} (by {})", s("behavior"), s("by"))
            } else if d.get("cancelled").is_some() {
                "> request withdrawn".to_string()
            } else if d.get("stop").is_some() {
                format!("■ stop: {} (by {})", s("stop"), s("by"))
            } else {
                format!("> {}", s("message"))
            }
        }
        EventKind::Usage => return None,
        EventKind::Gate => format!(
            "⚑ gate {} → exit {}{}",
            s("command"),
            d.get("exit_code")
                .map(|v| v.to_string())
                .unwrap_or_default(),
            match d["protect"]["restored"].as_array() {
                Some(r) if !r.is_empty() => format!(" (saw {} protected paths at base)", r.len()),
                _ => String::new(),
            }
        ),
        EventKind::Commit => format!(
            "⎇ committed {} on {}",
            s("commit").chars().take(12).collect::<String>(),
            s("branch")
        ),
        EventKind::Error => format!("! {}", s("message")),
        EventKind::Stderr => format!("stderr: {}", s("line")),
        EventKind::Result => {
            let cost = d
                .get("cost_usd")
                .and_then(|v| v.as_f64())
                .map(|c| format!(" (${c:.4})"))
                .unwrap_or_default();
            format!("✓ result{cost}: {}", excerpt(&s("result"), 300))
        }
        EventKind::Egress => format!("⇄ egress {} {}", s("authority"), s("verdict")),
        EventKind::Pr => format!(
            "⇡ pull request {} #{} {} ({})",
            if d["opened"] == true {
                "opened"
            } else {
                "found"
            },
            d["number"],
            s("url"),
            s("state")
        ),
    };
    Some(clean(&line))
}

#[cfg(test)]
mod tests {
    use super::clean;

    #[test]
    fn escape_sequences_go_whole_and_text_stays() {
        let cases = [
            ("\x1b]0;pwned\x07\x1b[2Jvisible", "visible"),
            ("a\x1b[31mred\x1b[0m b", "ared b"),
            (
                "osc st \x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\",
                "osc st link",
            ),
            ("c1 \u{9b}2Jcsi \u{9d}0;t\u{9c}osc", "c1 csi osc"),
            ("dcs \x1bPq#0;2\x1b\\done", "dcs done"),
            ("bell\x07 bs\x08 cr\r del\x7f", "bell bs cr del"),
            ("two \x1bcreset \x1b(Bcharset", "two reset charset"),
            ("bidi \u{202e}txt.exe\u{202c}", "bidi txt.exe"),
            ("lines\n\ttabbed", "lines\n\ttabbed"),
            (
                "unterminated \x1b]0;title\nnext line",
                "unterminated \nnext line",
            ),
            ("trailing \x1b", "trailing "),
            ("ünïcødé ✓ 日本", "ünïcødé ✓ 日本"),
        ];
        for (raw, want) in cases {
            assert_eq!(clean(raw), want, "{raw:?}");
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod snapshots {
    use crate::fixtures::fleet;

    #[test]
    fn show_of_each_kind_of_task() {
        for t in fleet() {
            insta::assert_snapshot!(format!("show_{}", t.state.as_str()), super::task(&t));
        }
    }

    /// Where a task runs (docs/design.md §8): its worker and attempt, and a local-path pin.
    #[test]
    fn show_says_where_a_task_runs() {
        let t = crate::fixtures::task(
            "abcd1234",
            "running",
            serde_json::json!({"worker": "host-b", "attempt": 2, "runs_on": "host-a"}),
        );
        let out = super::task(&t);
        assert!(out.contains("\nworker       host-b (attempt 2)\n"), "{out}");
        assert!(
            out.contains("\nruns on      host-a (local-path repo: only that worker can see it)\n"),
            "{out}"
        );
        let queued = crate::fixtures::task("abcd1235", "queued", serde_json::json!({}));
        let out = super::task(&queued);
        assert!(
            !out.contains("worker ") && !out.contains("runs on"),
            "{out}"
        );
    }

    /// One `pr` line per PR (URL, number, state); a PR still to come says so with its options.
    #[test]
    fn show_lists_a_tasks_prs() {
        let t = crate::fixtures::task(
            "abcd1236",
            "succeeded",
            serde_json::json!({
                "pr": {"draft": true, "base": "dev", "title": null, "allow_ci_changes": false},
                "prs": [
                    {"repo": "https://git.example/a/b.git", "url": "https://git.example/a/b/pull/7",
                     "number": 7, "state": "draft"},
                    {"repo": "https://git.example/a/c.git", "url": "https://git.example/a/c/pull/2\u{1b}[2J",
                     "number": 2, "state": "open"}
                ]
            }),
        );
        insta::assert_snapshot!("show_prs", super::task(&t));
        let running = crate::fixtures::task(
            "abcd1237",
            "running",
            serde_json::json!({"pr": {"draft": true, "base": "dev", "title": null, "allow_ci_changes": false}}),
        );
        let out = super::task(&running);
        assert!(
            out.contains("\npr           opened once the task succeeds (draft, base dev)\n"),
            "{out}"
        );
    }

    #[test]
    fn workers_table_has_one_line_per_worker() {
        let w: Vec<drover_types::WorkerInfo> = serde_json::from_value(serde_json::json!([
            {"name": "host-a", "addr": "10.0.0.1:7777", "started_at": "2026-12-02T03:00:00.000Z",
             "last_heartbeat": "2026-12-02T03:10:05.123Z", "slots": 4, "running": 3, "state": "live"},
            {"name": "host-b", "addr": null, "started_at": "2026-12-02T02:00:00.000Z",
             "last_heartbeat": "2026-12-02T02:30:00.000Z", "slots": 2, "running": 1, "state": "lapsed"}
        ]))
        .unwrap();
        let out = super::workers_table(&w);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 3, "{out}");
        let cells = |l: &str| {
            l.split("  ")
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(String::from)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            cells(lines[0]),
            [
                "NAME",
                "ADDR",
                "STARTED",
                "LAST HEARTBEAT",
                "SLOTS",
                "RUNNING",
                "STATE"
            ]
        );
        assert_eq!(
            cells(lines[1]),
            [
                "host-a",
                "10.0.0.1:7777",
                "2026-12-02 03:00:00",
                "2026-12-02 03:10:05",
                "4",
                "3",
                "live"
            ]
        );
        assert_eq!(
            cells(lines[2]),
            [
                "host-b",
                "-",
                "2026-12-02 02:00:00",
                "2026-12-02 02:30:00",
                "2",
                "1",
                "lapsed"
            ]
        );
    }
}
