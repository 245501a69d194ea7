//! The follower: the agent process of a `claude-bg` task (run as the hidden `drover
//! claude-bg-follow`, whose thin entry is in `drover-cli`).
//!
//! It dispatches `claude --bg --name drover-<task> …` in the sandbox (its cwd), then follows the
//! session in Claude's own supervisor through `~/.claude/jobs/<short>/state.json`,
//! `timeline.jsonl` and the session transcript, and prints lines for the `claude-bg` adapter
//! (see [`super`]). Follow-ups continue the session the documented way: `claude
//! stop` then `claude --bg --resume <session> MESSAGE`, which keeps the short id. On stdin EOF
//! after the last turn, or on SIGINT/SIGTERM/SIGHUP, it stops and removes the Claude session so
//! nothing of it is left running. Reference: agent-cli-interfaces.md §2.
//!
//! A turn ends on facts, never on a model's opinion: Claude's session is idle (`tempo: idle`
//! in state.json, written by its own process) and the transcript holds the turn's final
//! assistant message (one that asks for no tool). Claude's classifier fields (`state`, `needs`,
//! `detail`; a model call) only add detail: `failed`/`stopped` and what input is needed. A
//! classifier that answers `done` while the session is not active ends the turn too.

use super::{session_name, RESUME_MESSAGE};
use drover_types::text::{excerpt, Limit};
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tokio::io::AsyncBufReadExt;
use tokio::signal::unix::{signal, SignalKind};

mod cli;
pub use cli::settings;
use cli::{
    agent_pid, alive, assistant_text, cost_state, emit, emit_error, emit_raw, file_len,
    find_by_name, is_final, parse_short, read_new_lines, result_line, run, settings_file, stopped,
    str_of,
};

/// What the follower follows.
#[derive(Debug, Clone)]
pub struct FollowArgs {
    pub task: String,
    /// The `claude` executable.
    pub claude: String,
    pub model: Option<String>,
    /// Re-attach to this task's live session, or continue this session id.
    pub resume: Option<String>,
    /// Claude's configuration directory (`CLAUDE_CONFIG_DIR`, else `~/.claude`): its `jobs/`
    /// holds the sessions' state.
    pub claude_config: PathBuf,
    /// The `--settings` a dispatch passes (see `cli::settings`), built at the entry from its
    /// environment; written to a 0600 file, never put on a command line.
    pub settings: Value,
}

/// Why the follower could not run at all (everything later is reported as a line on stdout).
#[derive(Debug, thiserror::Error)]
pub enum FollowError {
    #[error("signal handler: {0}")]
    Signal(#[source] std::io::Error),
    #[error("writing the settings file: {0}")]
    Settings(#[source] std::io::Error),
}

const POLL: Duration = Duration::from_millis(200);
/// The terminal `state` values (with `tempo != "active"`).
const TERMINAL: &[&str] = &["done", "failed", "stopped"];

#[derive(Default)]
struct Follower {
    args: Option<FollowArgs>,
    /// `--settings` as a 0600 file, kept while the follower runs.
    settings: Option<tempfile::NamedTempFile>,
    jobs: PathBuf,
    short: Option<String>,
    session: Option<String>,
    announced: bool,
    transcript: u64,
    timeline: u64,
    turn_open: bool,
    seen_active: bool,
    /// The transcript recorded the current turn's accounting (`cost-state`).
    turn_end: bool,
    /// The current turn's last assistant message asks for no tool: the model has answered.
    final_seen: bool,
    queue: VecDeque<String>,
    needs: Option<String>,
    needs_n: u64,
    last_text: Option<String>,
    cost: Option<f64>,
    /// Cumulative tokens from the transcript's `cost-state`, and what results reported so far.
    totals: [u64; 4],
    reported: [u64; 4],
    last_state: String,
}

/// Runs the follower until the session's last turn has ended and stdin is closed, or a
/// signal stops it; the exit code (0: the last turn succeeded).
pub async fn follow(args: FollowArgs) -> Result<i32, FollowError> {
    let mut f = Follower {
        jobs: args.claude_config.join("jobs"),
        settings: Some(settings_file(&args.settings).map_err(FollowError::Settings)?),
        ..Follower::default()
    };
    let resume = args.resume.clone();
    let name = session_name(&args.task);
    f.args = Some(args);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Option<String>>();
    tokio::spawn(async move {
        let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if tx.send(Some(line)).is_err() {
                return;
            }
        }
        let _ = tx.send(None);
    });
    let sig = |k| signal(k).map_err(FollowError::Signal);
    let (mut int, mut term, mut hup) = (
        sig(SignalKind::interrupt())?,
        sig(SignalKind::terminate())?,
        sig(SignalKind::hangup())?,
    );
    if let Some(session) = resume {
        f.session = Some(session.clone());
        match find_by_name(&f.jobs, &name) {
            Some(short) => {
                f.short = Some(short);
                f.turn_open = true;
                f.seen_active = true;
            }
            None => f.continue_with(RESUME_MESSAGE).await,
        }
    }
    let mut stdin_open = true;
    let mut tick = tokio::time::interval(POLL);
    loop {
        tokio::select! {
            line = rx.recv(), if stdin_open => match line.flatten() {
                Some(line) => f.input(&line).await,
                None => stdin_open = false,
            },
            _ = tick.tick() => f.poll().await,
            _ = int.recv() => return Ok(f.cleanup(130).await),
            _ = term.recv() => return Ok(f.cleanup(143).await),
            _ = hup.recv() => return Ok(f.cleanup(129).await),
        }
        if !f.turn_open && f.queue.is_empty() && !stdin_open {
            let code = if f.last_state == "done" { 0 } else { 1 };
            return Ok(f.cleanup(code).await);
        }
    }
}

impl Follower {
    fn claude(&self) -> &str {
        self.args.as_ref().map_or("claude", |a| a.claude.as_str())
    }

    async fn input(&mut self, line: &str) {
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            return emit_error(&format!(
                "unreadable input line: {}",
                excerpt(line, Limit::Bytes(500))
            ));
        };
        let text = v.get("text").and_then(Value::as_str).map(str::to_string);
        match v.get("type").and_then(Value::as_str) {
            Some("user") => {
                let Some(text) = text else { return };
                if self.short.is_none() && self.session.is_none() {
                    self.dispatch(&text).await;
                } else {
                    self.queue.push_back(text);
                    self.next_turn().await;
                }
            }
            Some("answer") => {
                let allow = v.get("allow").and_then(Value::as_bool).unwrap_or(false);
                let message = v.get("message").and_then(Value::as_str);
                let reply = match (allow, message) {
                    (true, _) => "Approved: go ahead.".to_string(),
                    (false, Some(m)) => format!("Not approved: {m}"),
                    (false, None) => "Not approved. Do not do that; find another way.".into(),
                };
                self.needs = None;
                self.continue_with(&reply).await;
            }
            Some("interrupt") => self.interrupt().await,
            _ => {}
        }
    }

    /// Starts the next queued message once the current turn is over.
    async fn next_turn(&mut self) {
        if self.turn_open {
            return;
        }
        if let Some(text) = self.queue.pop_front() {
            self.continue_with(&text).await;
        }
    }

    async fn dispatch(&mut self, prompt: &str) {
        let Some(args) = self.args.as_ref() else {
            return;
        };
        let mut argv = vec![
            "--bg".to_string(),
            "--name".into(),
            session_name(&args.task),
            "--permission-mode".into(),
            "acceptEdits".into(),
        ];
        if let Some(m) = &args.model {
            argv.extend(["--model".into(), m.clone()]);
        }
        let Some(settings) = self.settings.as_ref() else {
            return self.fail_turn("no settings file");
        };
        argv.extend([
            "--settings".into(),
            settings.path().to_string_lossy().into_owned(),
        ]);
        argv.extend(["--".into(), prompt.to_string()]);
        match run(self.claude(), &argv)
            .await
            .and_then(|out| parse_short(&out))
        {
            Ok(short) => {
                self.short = Some(short);
                self.turn_open = true;
                self.seen_active = false;
                self.turn_end = false;
                self.final_seen = false;
            }
            Err(e) => self.fail_turn(&format!("claude --bg failed: {e}")),
        }
    }

    /// Claude's reply path for a background session: stop it, then continue it under the same id.
    async fn continue_with(&mut self, text: &str) {
        let Some(session) = self.session.clone() else {
            return self.fail_turn("no session id to continue");
        };
        if let Some(short) = self.short.clone() {
            self.timeline = file_len(&self.jobs.join(&short).join("timeline.jsonl"));
            let _ = run(self.claude(), &["stop".into(), short.clone()]).await;
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline && self.read_state().is_some_and(|s| !stopped(&s)) {
                tokio::time::sleep(POLL).await;
            }
        }
        let argv = ["--bg", "--resume", &session, "--", text].map(str::to_string);
        match run(self.claude(), &argv)
            .await
            .and_then(|o| parse_short(&o))
        {
            Ok(short) if self.short.as_deref().is_none_or(|s| s == short) => {
                self.short = Some(short);
                self.turn_open = true;
                self.seen_active = false;
                self.turn_end = false;
                self.final_seen = false;
            }
            Ok(copy) => {
                let _ = run(self.claude(), &["stop".into(), copy.clone()]).await;
                let _ = run(self.claude(), &["rm".into(), copy.clone()]).await;
                self.fail_turn(&format!(
                    "claude started a copy ({copy}) instead of continuing"
                ));
            }
            Err(e) => self.fail_turn(&format!("claude --bg --resume failed: {e}")),
        }
    }

    async fn interrupt(&mut self) {
        self.queue.clear();
        let Some(short) = self.short.clone() else {
            return;
        };
        if let Err(e) = run(self.claude(), &["stop".into(), short]).await {
            emit_error(&format!("claude stop: {e}"));
        }
        if self.turn_open {
            self.drain_transcript();
            self.last_state = "stopped".into();
            self.result("stopped", Some("stopped by request".into()));
        }
    }

    fn read_state(&self) -> Option<Value> {
        let short = self.short.as_ref()?;
        let raw = std::fs::read(self.jobs.join(short).join("state.json")).ok()?;
        serde_json::from_slice(&raw).ok()
    }

    async fn poll(&mut self) {
        let Some(state) = self.read_state() else {
            return;
        };
        if self.session.is_none() {
            self.session = str_of(&state, "sessionId");
        }
        if let (false, Some(session)) = (self.announced, &self.session) {
            self.announced = true;
            emit(
                &json!({"type": "system", "subtype": "init", "session_id": session,
                         "model": self.args.as_ref().and_then(|a| a.model.clone())}),
            );
        }
        if self.drain_transcript() || self.drain_timeline() {
            self.seen_active = true;
        }
        let st = str_of(&state, "state").unwrap_or_default();
        let tempo = str_of(&state, "tempo").unwrap_or_default();
        let classified = TERMINAL.contains(&st.as_str()) && tempo != "active";
        // The facts: Claude's process is idle and the transcript holds the final answer.
        let answered = tempo == "idle" && self.final_seen;
        let terminal = classified || answered;
        if !terminal && (tempo == "active" || st == "working") {
            self.seen_active = true;
        }
        // `tempo: blocked` is the fact; the classifier's `needs` only says what for.
        let needs = match str_of(&state, "needs") {
            Some(n) if n == "send a prompt to start" => None,
            Some(n) => Some(n),
            None => Some("input (the session is blocked; Claude gave no detail)".to_string()),
        };
        match (self.turn_open && !terminal && tempo == "blocked", needs) {
            (true, Some(needs)) if self.needs.is_none() => {
                self.needs_n += 1;
                let id = format!("needs-{}", self.needs_n);
                emit(
                    &json!({"type": "drover_bg", "event": "needs", "request_id": id,
                             "needs": needs, "detail": str_of(&state, "detail"),
                             "short": self.short}),
                );
                self.needs = Some(id);
            }
            (false, _) => {
                if let Some(id) = self.needs.take() {
                    emit(&json!({"type": "drover_bg", "event": "unblocked", "request_id": id}));
                }
            }
            _ => {}
        }
        if terminal && self.turn_open && self.seen_active {
            self.settle_turn().await;
            // The classifier's word only adds detail; a turn that ended on the facts is done.
            let st = if classified { st } else { "done".to_string() };
            self.last_state = st.clone();
            let detail = str_of(&state, "detail");
            let text = self.last_text.clone().or_else(|| {
                state
                    .pointer("/output/result")
                    .and_then(Value::as_str)
                    .map(str::to_string)
            });
            self.result(&st, text.or(detail));
            self.next_turn().await;
        }
    }

    /// The session's cost reaches its transcript (`cost-state`) when its process stops: a
    /// finished session is stopped (its conversation stays resumable) before its result is told.
    async fn settle_turn(&mut self) {
        self.drain_transcript();
        if self.turn_end {
            return;
        }
        if let Some(short) = self.short.clone() {
            let _ = run(self.claude(), &["stop".into(), short]).await;
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.turn_end && Instant::now() < deadline {
            tokio::time::sleep(POLL).await;
            self.drain_transcript();
        }
    }

    /// Prints a stream-json shaped `result` for the turn that just ended.
    fn result(&mut self, state: &str, text: Option<String>) {
        let delta: Vec<u64> = (0..4)
            .map(|i| self.totals[i].saturating_sub(self.reported[i]))
            .collect();
        self.reported = self.totals;
        let ids = (self.session.clone(), self.short.clone());
        emit(&result_line(state, text, self.cost, &delta, ids));
        self.turn_open = false;
        self.turn_end = false;
        self.last_text = None;
    }

    fn fail_turn(&mut self, message: &str) {
        emit_error(message);
        self.last_state = "failed".into();
        self.result("failed", Some(message.to_string()));
    }

    /// New complete transcript lines; true if an assistant message came.
    fn drain_transcript(&mut self) -> bool {
        let Some(path) = self.transcript_path() else {
            return false;
        };
        let mut assistant = false;
        for line in read_new_lines(&path, &mut self.transcript) {
            let Ok(v) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            match v.get("type").and_then(Value::as_str) {
                Some("assistant") => {
                    assistant = true;
                    self.seen_active = true;
                    self.final_seen = self.turn_open && is_final(&v);
                    if let Some(text) = assistant_text(&v) {
                        self.last_text = Some(text);
                    }
                    emit_raw(&line);
                }
                Some("user") => {
                    // A tool result (or a new message) means the model has more to say.
                    self.final_seen = false;
                    emit_raw(&line);
                }
                Some("cost-state") => {
                    self.turn_end = self.seen_active;
                    let (cost, totals) = cost_state(&v);
                    self.cost = cost.or(self.cost);
                    self.totals = totals;
                }
                _ => {}
            }
        }
        assistant
    }

    /// New timeline entries; true if one shows the session at work.
    fn drain_timeline(&mut self) -> bool {
        let Some(short) = &self.short else {
            return false;
        };
        let path = self.jobs.join(short).join("timeline.jsonl");
        read_new_lines(&path, &mut self.timeline).iter().any(|l| {
            serde_json::from_str::<Value>(l)
                .ok()
                .and_then(|v| str_of(&v, "state"))
                .is_some_and(|s| !TERMINAL.contains(&s.as_str()))
        })
    }

    fn transcript_path(&self) -> Option<PathBuf> {
        if let Some(p) = self.read_state().and_then(|s| str_of(&s, "linkScanPath")) {
            return Some(PathBuf::from(p));
        }
        let session = self.session.as_ref()?;
        let projects = self.jobs.parent()?.join("projects");
        std::fs::read_dir(projects)
            .ok()?
            .flatten()
            .map(|d| d.path().join(format!("{session}.jsonl")))
            .find(|p| p.exists())
    }

    /// Stops and removes the Claude session, waits for its process to go; returns `code`.
    async fn cleanup(&mut self, code: i32) -> i32 {
        let Some(short) = self.short.take() else {
            return code;
        };
        let pid = self.read_state().and_then(|s| s.get("pid")?.as_i64());
        self.short = Some(short.clone());
        let pid = pid.or(agent_pid(self.claude(), &short).await);
        let _ = run(self.claude(), &["stop".into(), short.clone()]).await;
        if let Err(e) = run(self.claude(), &["rm".into(), short.clone()]).await {
            emit_error(&format!("claude rm {short}: {e}"));
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        while pid.is_some_and(alive) && Instant::now() < deadline {
            tokio::time::sleep(POLL).await;
        }
        code
    }
}
