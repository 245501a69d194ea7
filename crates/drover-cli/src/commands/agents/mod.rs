//! `drover agents`: the terminal view of the fleet (docs/design.md §4). A live list of tasks with the
//! selected one's details and transcript tail; answer permission requests, stop, attach.
//! When stdout is not a terminal it prints the plain table once, for scripts.

mod state;
mod view;

use crate::client::Client;
use crate::error::{Context, Result};
use crate::format;
use crossterm::event::KeyModifiers;
use crossterm::event::{Event as TermEvent, EventStream, KeyCode, KeyEvent, KeyEventKind};
use drover_types::{DaemonStatus, Event, SendRequest, Task};
use futures::StreamExt;
use state::App;
use std::io::IsTerminal;
use std::time::Duration;
use tokio::sync::mpsc;

const REFRESH: Duration = Duration::from_millis(500);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);

pub async fn agents() -> Result<i32> {
    let client = Client::connect().await?;
    if !std::io::stdout().is_terminal() {
        let tasks = client.list_tasks(true).await?;
        if tasks.is_empty() {
            eprintln!("no tasks");
        } else {
            print!("{}", format::table(&tasks));
        }
        return Ok(0);
    }
    let mut calls = Calls::new();
    let exit = tui(&client, &mut calls).await;
    // The terminal is restored by now. A stop or an answer still under way would be cancelled
    // with the process: let it finish, and say how it went.
    calls.finish().await;
    match exit? {
        Exit::Quit => Ok(0),
        Exit::Attach(id) => super::logs::attach(&id).await,
    }
}

/// Requests running in the background, and their outcomes as lines for the footer.
struct Calls {
    running: tokio::task::JoinSet<()>,
    done_tx: mpsc::UnboundedSender<String>,
    done_rx: mpsc::UnboundedReceiver<String>,
}

impl Calls {
    fn new() -> Calls {
        let (done_tx, done_rx) = mpsc::unbounded_channel();
        Calls {
            running: tokio::task::JoinSet::new(),
            done_tx,
            done_rx,
        }
    }

    /// Posts in the background (a stop can take seconds); the outcome comes back as a line.
    fn post<B: serde::Serialize + Send + Sync + 'static>(
        &mut self,
        client: &Client,
        path: String,
        body: B,
        say: impl FnOnce(Result<Task>) -> String + Send + 'static,
    ) {
        let client = client.clone();
        let done = self.done_tx.clone();
        self.running.spawn(async move {
            let r = client.post::<_, Task>(&path, &body).await;
            let _ = done.send(say(r));
        });
    }

    async fn finish(&mut self) {
        if !self.running.is_empty() {
            eprintln!(
                "drover: waiting for {} request(s) to finish…",
                self.running.len()
            );
            let all = async { while self.running.join_next().await.is_some() {} };
            if tokio::time::timeout(Duration::from_secs(60), all)
                .await
                .is_err()
            {
                eprintln!("drover: gave up waiting; check with drover ls");
            }
        }
        while let Ok(msg) = self.done_rx.try_recv() {
            eprintln!("drover: {msg}");
        }
    }
}

enum Exit {
    Quit,
    Attach(String),
}

/// Puts the terminal back however the view ends: return, `?`, or panic (ratatui's init also
/// installs a panic hook that restores before the message is printed).
struct Restore;

impl Drop for Restore {
    fn drop(&mut self) {
        ratatui::restore();
    }
}

async fn tui(client: &Client, calls: &mut Calls) -> Result<Exit> {
    let mut terminal = ratatui::try_init().context("terminal")?;
    let _restore = Restore;
    let mut app = App::default();
    let mut keys = EventStream::new();
    let mut tick = tokio::time::interval(REFRESH);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut term_sig = signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut hup_sig = signal(tokio::signal::unix::SignalKind::hangup())?;
    loop {
        app.now = chrono::Utc::now();
        terminal
            .draw(|f| view::render(f, &mut app))
            .context("terminal")?;
        tokio::select! {
            _ = tick.tick() => refresh(client, &mut app).await,
            Some(msg) = calls.done_rx.recv() => {
                app.flash(msg);
                refresh(client, &mut app).await;
            }
            key = keys.next() => match key {
                Some(Ok(TermEvent::Key(k))) if k.kind != KeyEventKind::Release => {
                    match on_key(k, &mut app, client, calls) {
                        Flow::Stay => {}
                        Flow::Selected => refresh_transcript(client, &mut app).await,
                        Flow::Quit => return Ok(Exit::Quit),
                        Flow::Attach(id) => return Ok(Exit::Attach(id)),
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e).context("terminal"),
                None => return Ok(Exit::Quit),
            },
            _ = term_sig.recv() => return Ok(Exit::Quit),
            _ = hup_sig.recv() => return Ok(Exit::Quit),
        }
    }
}

fn signal(kind: tokio::signal::unix::SignalKind) -> Result<tokio::signal::unix::Signal> {
    tokio::signal::unix::signal(kind).context("signal")
}

enum Flow {
    Stay,
    Selected,
    Quit,
    Attach(String),
}

fn on_key(k: KeyEvent, app: &mut App, client: &Client, calls: &mut Calls) -> Flow {
    let ctrl = k.modifiers.contains(KeyModifiers::CONTROL);
    match k.code {
        KeyCode::Char('c') if ctrl => Flow::Quit,
        KeyCode::Char('q') | KeyCode::Esc => Flow::Quit,
        KeyCode::Up | KeyCode::Char('k') => select(app, -1),
        KeyCode::Down | KeyCode::Char('j') => select(app, 1),
        KeyCode::PageUp => select(app, -10),
        KeyCode::PageDown => select(app, 10),
        KeyCode::Home | KeyCode::Char('g') => select(app, isize::MIN / 2),
        KeyCode::End | KeyCode::Char('G') => select(app, isize::MAX / 2),
        KeyCode::Char('f') => {
            app.toggle_finished();
            Flow::Selected
        }
        KeyCode::Enter => match app.selected_task() {
            Some(t) => Flow::Attach(t.id.clone()),
            None => Flow::Stay,
        },
        KeyCode::Char(c @ ('a' | 'd')) => {
            let allow = c == 'a';
            match app.selected_task() {
                Some(t) if t.pending_input.is_some() => {
                    let id = t.id.clone();
                    let req = SendRequest {
                        allow,
                        deny: !allow,
                        ..Default::default()
                    };
                    let verb = if allow { "allowed" } else { "denied" };
                    app.flash(format!("{id}: sending {verb}…"));
                    calls.post(
                        client,
                        format!("/v1/tasks/{id}/send"),
                        req,
                        move |r| match r {
                            Ok(t) => format!("{}: {verb}; now {}", t.id, t.state),
                            Err(e) => format!("{id}: {}", e.message),
                        },
                    );
                }
                Some(t) => app.flash(format!("{}: no pending permission request", t.id)),
                None => {}
            }
            Flow::Stay
        }
        KeyCode::Char('s') => {
            match app.selected_task() {
                Some(t) if t.state.is_terminal() => {
                    app.flash(format!("{}: already {}", t.id, t.state))
                }
                Some(t) => {
                    let id = t.id.clone();
                    app.flash(format!("{id}: stopping…"));
                    let body = serde_json::json!({});
                    calls.post(
                        client,
                        format!("/v1/tasks/{id}/stop"),
                        body,
                        move |r| match r {
                            Ok(t) => format!("{}: {}", t.id, t.state),
                            Err(e) => format!("{id}: stop failed: {}", e.message),
                        },
                    );
                }
                None => {}
            }
            Flow::Stay
        }
        _ => Flow::Stay,
    }
}

fn select(app: &mut App, delta: isize) -> Flow {
    app.move_by(delta);
    Flow::Selected
}

async fn timed<T>(f: impl std::future::Future<Output = Result<T>>) -> Result<T> {
    // Elapsed: "the daemon did not answer in time" (exit 3).
    tokio::time::timeout(REQUEST_TIMEOUT, f).await?
}

async fn refresh(client: &Client, app: &mut App) {
    match timed(client.list_tasks(true)).await {
        Ok(tasks) => {
            app.set_tasks(tasks);
            app.error = None;
        }
        Err(e) => app.error = Some(e.message),
    }
    if let Ok(s) = timed(client.get::<DaemonStatus>("/v1/status")).await {
        app.status = Some(s);
    }
    refresh_transcript(client, app).await;
}

async fn refresh_transcript(client: &Client, app: &mut App) {
    let Some(id) = app.selected_task().map(|t| t.id.clone()) else {
        return;
    };
    let after = app.after(&id);
    let path = format!("/v1/tasks/{id}/events?after={after}");
    if let Ok(evs) = timed(client.get::<Vec<Event>>(&path)).await {
        app.push_events(&id, &evs);
    }
}
