//! How `drover agents` is drawn: a pure function of [`App`], so it renders into a
//! `TestBackend` in tests.

use super::state::{ago, cost, one_line, time_label, App, Transcript};
use crate::format;
use chrono::{DateTime, Utc};
use drover_types::{Task, TaskState};
use ratatui::layout::{Constraint, Direction, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Paragraph, Row, Table, Wrap};
use ratatui::Frame;

pub fn state_style(s: TaskState) -> Style {
    let fg = |c| Style::default().fg(c);
    match s {
        TaskState::NeedsInput => Style::default()
            .fg(Color::Black)
            .bg(Color::Yellow)
            .add_modifier(Modifier::BOLD),
        TaskState::Running => fg(Color::Green).add_modifier(Modifier::BOLD),
        TaskState::Preparing => fg(Color::Cyan),
        TaskState::Verifying => fg(Color::Cyan).add_modifier(Modifier::BOLD),
        TaskState::Queued => fg(Color::Blue),
        TaskState::Succeeded => fg(Color::Green),
        TaskState::Failed => fg(Color::Red),
        TaskState::Cancelled => fg(Color::DarkGray),
        TaskState::Interrupted => fg(Color::Magenta),
    }
}

pub fn render(f: &mut Frame, app: &mut App) {
    let area = f.area();
    // The list as tall as its rows (plus borders and header), at most ~40% of the screen.
    let want = app.visible().len() as u16 + 3;
    let list_h = want.clamp(5, (area.height * 2 / 5).max(5));
    let [header, list, detail, footer] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(list_h),
        Constraint::Min(6),
        Constraint::Length(1),
    ])
    .areas(area);
    render_header(f, app, header);
    render_list(f, app, list);
    render_detail(f, app, detail);
    render_footer(f, app, footer);
}

fn render_header(f: &mut Frame, app: &App, area: Rect) {
    let vis = app.visible();
    let waiting = app
        .tasks
        .iter()
        .filter(|t| t.state == TaskState::NeedsInput)
        .count();
    let active = app.tasks.iter().filter(|t| t.state.is_active()).count();
    let mut spans = vec![
        Span::styled(
            "drover agents",
            Style::default().add_modifier(Modifier::BOLD),
        ),
        Span::raw(format!(
            "  {} shown of {} · {active} active",
            vis.len(),
            app.tasks.len()
        )),
    ];
    if waiting > 0 {
        spans.push(Span::raw("  "));
        spans.push(Span::styled(
            format!(" ⚠ {waiting} waiting for you "),
            state_style(TaskState::NeedsInput),
        ));
    }
    if let Some(e) = &app.error {
        spans.push(Span::styled(
            format!("  ✗ {}", one_line(e, 80)),
            Style::default().fg(Color::Red),
        ));
    }
    f.render_widget(Paragraph::new(Line::from(spans)), area);
}

fn render_list(f: &mut Frame, app: &mut App, area: Rect) {
    let now = app.now;
    let vis = app.visible();
    let id_w = vis.iter().map(|t| t.id.len()).max().unwrap_or(2).max(2) as u16;
    let head = Row::new([
        "ID",
        "STATE",
        "AGENT",
        "NAME / PROMPT",
        "POOL",
        "COST",
        "TIME",
    ])
    .style(Style::default().add_modifier(Modifier::BOLD | Modifier::UNDERLINED));
    let rows: Vec<Row> = vis
        .iter()
        .map(|t| {
            let label = format::state_label(t);
            let row = Row::new(vec![
                Cell::from(t.id.clone()),
                Cell::from(Span::styled(label, state_style(t.state))),
                Cell::from(t.agent.clone()),
                Cell::from(one_line(t.name.as_deref().unwrap_or(&t.prompt), 200)),
                Cell::from(t.pool.clone().unwrap_or_else(|| "-".into())),
                Cell::from(cost(t)),
                Cell::from(time_label(t, now)),
            ]);
            match t.state {
                TaskState::NeedsInput => row.style(Style::default().fg(Color::Yellow)),
                s if s.is_terminal() => row.style(Style::default().add_modifier(Modifier::DIM)),
                _ => row,
            }
        })
        .collect();
    let empty = rows.is_empty();
    let table = Table::new(
        rows,
        [
            Constraint::Length(id_w),
            Constraint::Length(12),
            Constraint::Length(8),
            Constraint::Min(16),
            Constraint::Length(10),
            Constraint::Length(8),
            Constraint::Length(7),
        ],
    )
    .header(head)
    .block(
        Block::default()
            .borders(Borders::ALL)
            .title(if app.show_finished {
                " tasks "
            } else {
                " tasks (finished hidden) "
            }),
    )
    .row_highlight_style(Style::default().add_modifier(Modifier::REVERSED))
    .highlight_symbol("▶ ");
    let sel = app.selected_index();
    app.table.select(sel);
    f.render_stateful_widget(table, area, &mut app.table);
    if empty {
        let msg = if app.tasks.is_empty() {
            "no tasks yet — start one with: drover run \"…\""
        } else {
            "no active tasks — f shows finished ones"
        };
        let inner = Rect {
            x: area.x + 2,
            y: area.y + 2,
            width: area.width.saturating_sub(4),
            height: area.height.saturating_sub(3).min(1),
        };
        f.render_widget(
            Paragraph::new(msg).style(Style::default().fg(Color::DarkGray)),
            inner,
        );
    }
}

fn detail_lines(t: &Task, now: DateTime<Utc>) -> Vec<Line<'static>> {
    let key = |k: &str| Span::styled(format!("{k:<9}"), Style::default().fg(Color::DarkGray));
    let mut out: Vec<Line<'static>> = vec![];
    if let Some(p) = &t.pending_input {
        let tool = p
            .get("tool")
            .and_then(|v| v.as_str())
            .unwrap_or("a tool")
            .to_string();
        let input = p.get("input").map(|v| v.to_string()).unwrap_or_default();
        let hl = state_style(TaskState::NeedsInput);
        out.push(Line::from(Span::styled(
            format!(" ⚠ NEEDS INPUT: permission for {tool} "),
            hl,
        )));
        out.push(Line::from(Span::styled(
            one_line(&input, 600),
            Style::default().fg(Color::Yellow),
        )));
        out.push(Line::from(vec![
            Span::styled("a", Style::default().add_modifier(Modifier::BOLD)),
            Span::raw(" allow   "),
            Span::styled("d", Style::default().add_modifier(Modifier::BOLD)),
            Span::raw(" deny"),
        ]));
        out.push(Line::from(""));
    }
    let mut kv = |k: &str, v: Vec<Span<'static>>| {
        let mut spans = vec![key(k)];
        spans.extend(v);
        out.push(Line::from(spans));
    };
    if let Some(n) = &t.name {
        kv("name", vec![Span::raw(n.clone())]);
    }
    let mut st = vec![Span::styled(format::state_label(t), state_style(t.state))];
    if t.attempt > 1 {
        st.push(Span::raw(format!(" (attempt {})", t.attempt)));
    }
    kv("state", st);
    if let Some(o) = &t.outcome {
        let kind = o
            .error_kind
            .map(|k| format!(" [{}]", k.as_str()))
            .unwrap_or_default();
        let style = match o.verdict {
            drover_types::Verdict::Success => Style::default().fg(Color::Green),
            drover_types::Verdict::SoftFail => Style::default().fg(Color::Yellow),
            drover_types::Verdict::Fail => Style::default().fg(Color::Red),
        };
        kv(
            "outcome",
            vec![
                Span::styled(format!("{}{kind}", o.verdict.as_str()), style),
                Span::raw(format!(": {}", o.reason)),
            ],
        );
    }
    let model = t
        .model
        .as_ref()
        .map(|m| format!(" ({m})"))
        .unwrap_or_default();
    kv("agent", vec![Span::raw(format!("{}{model}", t.agent))]);
    kv("branch", vec![Span::raw(t.branch.clone())]);
    if let Some(c) = &t.commit {
        kv(
            "commit",
            vec![Span::raw(c.chars().take(12).collect::<String>())],
        );
    }
    let u = &t.usage;
    kv(
        "cost",
        vec![Span::raw(format!(
            "{} · in {} out {} cache {}/{}",
            cost(t),
            u.input_tokens,
            u.output_tokens,
            u.cache_read_tokens,
            u.cache_write_tokens
        ))],
    );
    let mut when = format!(
        "created {}",
        ago(Some(&t.created_at), now).unwrap_or_default()
    );
    if let Some(s) = ago(t.finished_at.as_deref(), now) {
        when = format!("finished {s}, ran {}", time_label(t, now));
    } else if t.started_at.is_some() {
        when = format!("running for {}", time_label(t, now));
    }
    kv("time", vec![Span::raw(when)]);
    if let Some(p) = &t.pool {
        kv("pool", vec![Span::raw(p.clone())]);
    }
    if let Some(l) = &t.locks {
        let list = |names: &[String]| names.join(", ");
        kv(
            "locks",
            vec![Span::raw(format!(
                "holding [{}] waiting [{}]",
                list(&l.holding),
                list(&l.waiting)
            ))],
        );
    }
    kv("prompt", vec![Span::raw(one_line(&t.prompt, 300))]);
    out
}

/// Splits into rows of at most `width` characters.
fn wrap(line: &str, width: usize) -> Vec<String> {
    let width = width.max(1);
    let chars: Vec<char> = line.chars().collect();
    if chars.is_empty() {
        return vec![String::new()];
    }
    chars
        .chunks(width)
        .map(|c| c.iter().collect::<String>())
        .collect()
}

fn transcript_style(l: &str) -> Style {
    let fg = |c| Style::default().fg(c);
    match l.chars().next() {
        Some('●') => fg(Color::Cyan),
        Some('→') => fg(Color::Yellow),
        Some('←') => fg(Color::DarkGray),
        Some('?') => fg(Color::Yellow).add_modifier(Modifier::BOLD),
        Some('>') => fg(Color::Blue),
        Some('!') => fg(Color::Red),
        Some('✓') => fg(Color::Green),
        Some('⚑') | Some('⎇') => fg(Color::Magenta),
        _ if l.starts_with("stderr:") => fg(Color::DarkGray),
        _ => Style::default(),
    }
}

/// The last rows of the transcript that fit `width` × `height`, wrapped.
fn transcript_tail(tr: Option<&Transcript>, width: usize, height: usize) -> Vec<Line<'static>> {
    let mut rows: Vec<Line<'static>> = vec![];
    let Some(tr) = tr else {
        return rows;
    };
    for l in tr.lines.iter().rev() {
        if rows.len() >= height {
            break;
        }
        let style = transcript_style(l);
        for piece in wrap(l, width).into_iter().rev() {
            rows.push(Line::from(Span::styled(piece, style)));
        }
    }
    rows.truncate(height);
    rows.reverse();
    rows
}

fn render_detail(f: &mut Frame, app: &App, area: Rect) {
    let Some(t) = app.selected_task() else {
        f.render_widget(Block::default().borders(Borders::ALL), area);
        return;
    };
    let dir = if area.width >= 100 {
        Direction::Horizontal
    } else {
        Direction::Vertical
    };
    let [info, transcript] = Layout::default()
        .direction(dir)
        .constraints([Constraint::Percentage(40), Constraint::Percentage(60)])
        .areas(area);
    let info_block = Block::default()
        .borders(Borders::ALL)
        .title(format!(" {} ", t.id))
        .border_style(if t.state == TaskState::NeedsInput {
            Style::default().fg(Color::Yellow)
        } else {
            Style::default()
        });
    f.render_widget(
        Paragraph::new(detail_lines(t, app.now))
            .block(info_block)
            .wrap(Wrap { trim: false }),
        info,
    );
    let block = Block::default()
        .borders(Borders::ALL)
        .title(" transcript (⏎ attach) ");
    let inner = block.inner(transcript);
    let rows = transcript_tail(
        app.transcripts.get(&t.id),
        inner.width as usize,
        inner.height as usize,
    );
    f.render_widget(Paragraph::new(rows).block(block), transcript);
}

fn render_footer(f: &mut Frame, app: &App, area: Rect) {
    let slots = app
        .status
        .as_ref()
        .map(|s| format!(" slots {}/{} · {} queued", s.running, s.slots, s.queued))
        .unwrap_or_else(|| " daemon ?".into());
    let [left, right] = Layout::horizontal([
        Constraint::Min(10),
        Constraint::Length(slots.chars().count() as u16 + 1),
    ])
    .areas(area);
    let key = |k: &'static str| Span::styled(k, Style::default().add_modifier(Modifier::BOLD));
    let mut spans = vec![];
    if let Some(m) = app.flash_text() {
        spans.push(Span::styled(
            format!("{m}  "),
            Style::default().fg(Color::Yellow),
        ));
    }
    spans.extend([
        key("↑↓/jk"),
        Span::raw(" select  "),
        key("a"),
        Span::raw("/"),
        key("d"),
        Span::raw(" allow/deny  "),
        key("s"),
        Span::raw(" stop  "),
        key("⏎"),
        Span::raw(" attach  "),
        key("f"),
        Span::raw(if app.show_finished {
            " hide finished  "
        } else {
            " show finished  "
        }),
        key("q"),
        Span::raw(" quit"),
    ]);
    f.render_widget(Paragraph::new(Line::from(spans)), left);
    f.render_widget(
        Paragraph::new(slots).style(Style::default().fg(Color::DarkGray)),
        right,
    );
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::super::state::human;
    use super::*;
    use crate::fixtures::{self, task};
    use drover_types::{DaemonStatus, Event};
    use ratatui::backend::TestBackend;
    use ratatui::Terminal;
    use serde_json::json;

    fn event(id: &str, seq: i64, kind: &str, data: serde_json::Value) -> Event {
        serde_json::from_value(json!({
            "task_id": id, "seq": seq, "ts": "2025-01-01T00:00:06.000Z", "kind": kind, "data": data
        }))
        .unwrap()
    }

    fn fleet() -> App {
        let mut app = App::default();
        app.now = fixtures::now();
        app.set_tasks(vec![
            task("aaa111", "running", json!({})),
            task(
                "bbb222",
                "succeeded",
                json!({"finished_at": "2025-01-01T00:00:35.000Z", "commit": "0123456789abcdef"}),
            ),
            task(
                "ccc333",
                "needs_input",
                json!({"pending_input": {"request_id": "r1", "tool": "Bash",
                        "input": {"command": "rm -rf build"}}}),
            ),
        ]);
        app
    }

    fn draw(app: &mut App, w: u16, h: u16) -> String {
        let mut term = Terminal::new(TestBackend::new(w, h)).unwrap();
        term.draw(|f| render(f, app)).unwrap();
        let buf = term.backend().buffer().clone();
        let mut s = String::new();
        for y in 0..h {
            for x in 0..w {
                s.push_str(buf[(x, y)].symbol());
            }
            s.push('\n');
        }
        s
    }

    #[test]
    fn needs_input_sorts_first_and_is_selected() {
        let app = fleet();
        let ids: Vec<&str> = app.visible().iter().map(|t| t.id.as_str()).collect();
        assert_eq!(ids, ["ccc333", "aaa111", "bbb222"]);
        assert_eq!(app.selected_task().unwrap().id, "ccc333");
    }

    #[test]
    fn renders_list_detail_and_transcript() {
        let mut app = fleet();
        app.push_events(
            "ccc333",
            &[
                event("ccc333", 1, "text", json!({"text": "looking at the build"})),
                event(
                    "ccc333",
                    2,
                    "needs_input",
                    json!({"tool": "Bash", "input": {"command": "rm -rf build"}}),
                ),
            ],
        );
        // A replayed event is not shown twice.
        app.push_events(
            "ccc333",
            &[event(
                "ccc333",
                1,
                "text",
                json!({"text": "looking at the build"}),
            )],
        );
        assert_eq!(app.transcripts["ccc333"].lines.len(), 2);
        app.status = Some(DaemonStatus {
            pid: 1,
            version: "0".into(),
            home: "/h".into(),
            slots: 4,
            running: 2,
            queued: 0,
            sandbox_mode: drover_types::SandboxKind::Worktree,
            sandbox_reason: String::new(),
        });
        let screen = draw(&mut app, 140, 30);
        for id in ["aaa111", "bbb222", "ccc333"] {
            assert!(screen.contains(id), "{id} missing:\n{screen}");
        }
        for want in [
            "needs_input",
            "running",
            "succeeded",
            "NEEDS INPUT: permission for Bash",
            "rm -rf build",
            "looking at the build",
            "1 waiting for you",
            "slots 2/4",
            "$0.0123",
            "30s",
        ] {
            assert!(screen.contains(want), "{want:?} missing:\n{screen}");
        }
    }

    #[test]
    fn selection_follows_the_task_and_hiding_finished() {
        let mut app = fleet();
        app.move_by(2);
        assert_eq!(app.selected_task().unwrap().id, "bbb222");
        app.toggle_finished();
        assert_eq!(app.visible().len(), 2);
        assert_eq!(app.selected_task().unwrap().id, "aaa111");
        app.select_id("ccc333");
        // ccc333 is answered: it moves down, the selection stays on it.
        app.set_tasks(vec![
            task("aaa111", "running", json!({})),
            task(
                "ccc333",
                "running",
                json!({"started_at": "2025-01-01T00:00:01.000Z"}),
            ),
        ]);
        assert_eq!(app.selected_task().unwrap().id, "ccc333");
        let screen = draw(&mut app, 80, 24);
        assert!(screen.contains("finished hidden"), "{screen}");
        assert!(!screen.contains("bbb222"), "{screen}");
    }

    #[test]
    fn empty_fleet_says_how_to_start() {
        let mut app = App::default();
        app.set_tasks(vec![]);
        let screen = draw(&mut app, 100, 20);
        assert!(screen.contains("no tasks yet"), "{screen}");
    }

    fn status() -> DaemonStatus {
        DaemonStatus {
            pid: 1,
            version: "0".into(),
            home: "/h".into(),
            slots: 4,
            running: 2,
            queued: 1,
            sandbox_mode: drover_types::SandboxKind::Overlay,
            sandbox_reason: String::new(),
        }
    }

    /// The screen as text (a wide character's second cell is not repeated).
    fn screen(app: &mut App, w: u16, h: u16) -> String {
        let mut term = Terminal::new(TestBackend::new(w, h)).unwrap();
        term.draw(|f| render(f, app)).unwrap();
        term.backend().to_string()
    }

    #[test]
    fn snapshot_of_a_fleet_wide_and_narrow() {
        let mut app = App::default();
        app.now = fixtures::now();
        app.status = Some(status());
        app.set_tasks(fixtures::fleet());
        app.push_events(
            "r5d6e7f8",
            &[
                event(
                    "r5d6e7f8",
                    1,
                    "text",
                    json!({"text": "looking at the build"}),
                ),
                event(
                    "r5d6e7f8",
                    2,
                    "needs_input",
                    json!({"tool": "Bash", "input": {"command": "rm -rf build"}}),
                ),
            ],
        );
        insta::assert_snapshot!("fleet_140x32", screen(&mut app, 140, 32));
        insta::assert_snapshot!("fleet_80x24", screen(&mut app, 80, 24));
        // The task under the wide name, selected: its detail and the name's columns.
        app.select_id("w0c1d2e3");
        insta::assert_snapshot!("wide_name_selected_120x30", screen(&mut app, 120, 30));
    }

    #[test]
    fn human_durations() {
        assert_eq!(human(chrono::Duration::seconds(5)), "5s");
        assert_eq!(human(chrono::Duration::seconds(125)), "2m05s");
        assert_eq!(human(chrono::Duration::seconds(7260)), "2h01m");
        assert_eq!(human(chrono::Duration::seconds(90000)), "1d01h");
    }
}
