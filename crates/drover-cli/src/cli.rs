//! The command line (docs/design.md §4). Names here are the user contract.

use clap::{Args, Parser, Subcommand};
use drover_types::{ExportFormat, FailurePolicy, PermissionPolicy, UsageBy};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "drover",
    version,
    about = "A supervisor for fleets of coding agents",
    propagate_version = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

// Parsed once per process; the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Start a task: an agent session on a fresh checkout; prints the task id.
    Run(RunArgs),
    /// List tasks (active ones and those finished in the last hour; --all for every task).
    Ls {
        #[arg(long)]
        all: bool,
        #[arg(long)]
        json: bool,
    },
    /// Show one task.
    Show {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Print a task's events.
    Logs {
        id: String,
        /// Keep printing new events until the task ends.
        #[arg(long, short)]
        follow: bool,
        /// One JSON event per line.
        #[arg(long)]
        json: bool,
    },
    /// Wait until the tasks end; exit 1 if any did not succeed.
    Wait {
        #[arg(required = true)]
        ids: Vec<String>,
        #[arg(long)]
        json: bool,
    },
    /// Send a message to a task, or answer its pending permission request.
    Send {
        id: String,
        message: Option<String>,
        #[arg(long, conflicts_with = "deny")]
        allow: bool,
        #[arg(long)]
        deny: bool,
    },
    /// Stop a task (politely first); its work is committed.
    Stop { id: String },
    /// Remove a task; uncommitted work is committed to its branch first.
    Rm { id: String },
    /// Follow a task live; typed lines go to the agent. Ctrl-D or Ctrl-C detaches.
    Attach { id: String },
    /// Terminal view of all agents.
    Agents,
    /// Pools: one prompt, N sessions at a time, refilled until stopped.
    Pool {
        #[command(subcommand)]
        action: PoolAction,
    },
    /// Batches: one prompt, one task per repository, grouped (docs/design.md §9).
    Batch {
        #[command(subcommand)]
        action: BatchAction,
    },
    /// Tokens and dollars metered by the gateway.
    Usage {
        /// task, pool, model, day, team or tag:NAME (the value of each task's tag NAME).
        #[arg(long, default_value = "task")]
        by: UsageBy,
        #[arg(long)]
        json: bool,
    },
    /// The daemon's Prometheus metrics (what `GET /metrics` serves: OpenMetrics text).
    Metrics,
    /// The audit log (every mutating call: who, what, when, from where, the answer), or
    /// `audit export`: one accounting row per finished task (docs/accounting.md).
    Audit(AuditArgs),
    /// Teams: budgets, models and webhook per team (docs/design.md §7).
    Team {
        #[command(subcommand)]
        action: TeamAction,
    },
    /// API keys of the team server: create (shown once), list, rotate, revoke.
    Key {
        #[command(subcommand)]
        action: KeyAction,
    },
    /// Run CMD holding build lock NAME (at most --slots holders across every worker); works
    /// inside sandboxes.
    Lock {
        name: String,
        #[arg(long, default_value_t = 1)]
        slots: usize,
        #[arg(last = true, required = true)]
        cmd: Vec<String>,
    },
    /// The workers sharing the daemon's store: name, address, heartbeat, slots, running, state.
    Workers {
        #[arg(long)]
        json: bool,
    },
    /// A one-time login URL for the web dashboard (printed alone; it works once, for two
    /// minutes). With DROVER_URL: the team server's, logging in as DROVER_API_KEY.
    Web {
        /// Also open it with $BROWSER (else xdg-open).
        #[arg(long)]
        open: bool,
    },
    /// Run the daemon (in the background unless --foreground), or `daemon stop`.
    Daemon(DaemonArgs),
    /// Check this machine: git, sandbox mode, agents, daemon.
    Doctor {
        #[arg(long)]
        json: bool,
    },
    /// Benchmarks (prints figures).
    Bench(BenchArgs),
    /// A demo fleet on a generated repo (the README's first command).
    Demo(DemoArgs),
    #[command(hide = true)]
    Shim { dir: PathBuf },
    /// A confined agent's jail (`--launch TASK_DIR`, from the shim) or a confined gate
    /// (`--spec FILE -- CMD…`); see drover_shim::jail.
    #[command(hide = true)]
    Jail {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<std::ffi::OsString>,
    },
    /// The claude-bg agent process: dispatches and follows one `claude --bg` session.
    #[command(hide = true, name = "claude-bg-follow")]
    ClaudeBgFollow(FollowArgs),
    #[command(hide = true, name = "fake-provider")]
    FakeProvider {
        #[arg(long)]
        scenarios: PathBuf,
        #[arg(long, default_value_t = 0)]
        port: u16,
    },
}

/// The flags `run` and `pool start` share: what a task runs, where, and under which checks
/// and clocks.
#[derive(Args, Debug)]
pub struct TaskArgs {
    /// Repository: a local directory (default: the current one), a git URL or owner/name on
    /// the default forge. `run` takes it up to 16 times: one task, one workspace holding a
    /// checkout per repository (the agent starts in the workspace), one branch drover/<id> each.
    #[arg(long, value_name = "REPO")]
    pub repo: Vec<String>,
    /// Base commit, branch or tag (default: HEAD); with several --repo, of each of them.
    #[arg(long = "ref")]
    pub git_ref: Option<String>,
    /// claude (default) or command.
    #[arg(long, default_value = "claude")]
    pub agent: String,
    /// For --agent command: the shell command to run.
    #[arg(long)]
    pub cmd: Option<String>,
    #[arg(long)]
    pub model: Option<String>,
    /// Gate command run in the sandbox after the agent's turn (repeatable).
    #[arg(long)]
    pub verify: Vec<String>,
    /// How many times a failing gate's output goes back to the agent.
    #[arg(long, default_value_t = 2)]
    pub verify_rounds: u32,
    /// Model that judges the outcome where structured signals leave it open.
    #[arg(long)]
    pub judge_model: Option<String>,
    /// Stop a task this long after it starts (e.g. 30m, 1h30m); it fails with `timeout`.
    #[arg(long, value_name = "DUR")]
    pub timeout: Option<String>,
    /// Stop a task after this long without output or event (default: config, 30m).
    #[arg(long, value_name = "DUR")]
    pub stall_timeout: Option<String>,
    /// Permission requests: ask (needs_input), allow or deny.
    #[arg(long, value_enum)]
    pub permissions: Option<PermissionPolicy>,
    /// A path the agent must not change, as a glob relative to the repository (repeatable):
    /// gates see it as at the base commit, and changing it fails the task (`gate_failed`).
    #[arg(long = "protect", value_name = "GLOB")]
    pub protect: Vec<String>,
    /// Memory the agent and everything it starts may use (e.g. 512M, 2G, 1.5GiB; binary
    /// units); past it the task fails with `out_of_memory` (default: config `sandbox.memory`).
    #[arg(long, value_name = "SIZE")]
    pub memory: Option<String>,
    /// CPU time per second, in CPUs (e.g. 0.5, 2; default: config `sandbox.cpus`).
    #[arg(long, value_name = "N")]
    pub cpus: Option<String>,
    /// How many processes and threads at once (e.g. 256; default: config `sandbox.pids`).
    #[arg(long, value_name = "N")]
    pub pids: Option<String>,
    #[command(flatten)]
    pub pr: PrArgs,
}

/// `--pr [--draft] [--base BRANCH] [--pr-title T] [--allow-ci-changes]` (docs/design.md §9).
#[derive(Args, Debug, Default, Clone)]
pub struct PrArgs {
    /// Once the task succeeded, open a pull (merge) request for its branch (the repository
    /// must be on a configured forge).
    #[arg(long)]
    pub pr: bool,
    /// Open the PR as a draft.
    #[arg(long, requires = "pr")]
    pub draft: bool,
    /// The branch the PR merges into (default: --ref when it is a branch, else the repository's
    /// default branch).
    #[arg(long, value_name = "BRANCH", requires = "pr")]
    pub base: Option<String>,
    /// The PR's title (default: --name, else the prompt's first line).
    #[arg(long, value_name = "T", requires = "pr")]
    pub pr_title: Option<String>,
    /// A change to CI configuration opens a normal PR (default: a draft marked needs-approval).
    #[arg(long, requires = "pr")]
    pub allow_ci_changes: bool,
}

impl PrArgs {
    /// The request's `pr`: `None` without `--pr`.
    pub fn options(&self) -> Option<drover_types::PrOptions> {
        self.pr.then(|| drover_types::PrOptions {
            draft: self.draft,
            base: self.base.clone(),
            title: self.pr_title.clone(),
            allow_ci_changes: self.allow_ci_changes,
        })
    }
}

#[derive(Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    pub task: TaskArgs,
    #[arg(long)]
    pub name: Option<String>,
    #[arg(long)]
    pub max_usd: Option<f64>,
    #[arg(long)]
    pub max_tokens: Option<u64>,
    /// Block until the task ends; print its final message; exit 1 if it failed.
    #[arg(long)]
    pub wait: bool,
    /// Use the provider key in this environment variable for this task (kept in the daemon's
    /// memory only).
    #[arg(long)]
    pub api_key_env: Option<String>,
    #[arg(long)]
    pub team: Option<String>,
    /// A label carried into usage and accounting rows, as KEY=VALUE (repeatable; e.g.
    /// `--tag customer=acme`; `drover usage --by tag:customer`).
    #[arg(long = "tag", value_name = "KEY=VALUE")]
    pub tags: Vec<String>,
    /// The prompt; `-` reads it from stdin.
    #[arg(required_unless_present = "prompt_file")]
    pub prompt: Option<String>,
    /// Read the prompt from this file (`-`: stdin); for prompts too long for a command line.
    #[arg(long, conflicts_with = "prompt")]
    pub prompt_file: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum PoolAction {
    /// Start a pool.
    Start(Box<PoolStartArgs>),
    /// List pools.
    Ls {
        #[arg(long)]
        json: bool,
    },
    /// Slots, running, finished, successes, failures, streak, cost, state, events.
    Show {
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// Stop dispatching (running tasks finish; --hard stops them too).
    Stop {
        name: String,
        #[arg(long)]
        hard: bool,
    },
    /// Dispatch again (starts a new failure streak).
    Resume { name: String },
}

#[derive(Args, Debug)]
pub struct PoolStartArgs {
    pub name: String,
    #[arg(long)]
    pub slots: u32,
    /// The prompt; `{n}` becomes the refill's number (`-` reads it from stdin).
    #[arg(
        long,
        conflicts_with = "prompt_file",
        required_unless_present = "prompt_file"
    )]
    pub prompt: Option<String>,
    /// Read the prompt from this file (`-`: stdin).
    #[arg(long)]
    pub prompt_file: Option<PathBuf>,
    /// What each of the pool's tasks runs (as `drover run`).
    #[command(flatten)]
    pub task: TaskArgs,
    /// Stop after this many tasks in all.
    #[arg(long)]
    pub count: Option<u64>,
    /// Consecutive failures that stop the pool.
    #[arg(long, default_value_t = 3)]
    pub max_failures: u32,
    /// Run once when the pool stops on failures (env DROVER_POOL, DROVER_STREAK, DROVER_REASON).
    #[arg(long)]
    pub notify: Option<String>,
    /// The whole pool's dollar budget (enforced by the gateway).
    #[arg(long)]
    pub max_usd: Option<f64>,
    /// A model the pool's tasks may use (repeatable; default: any).
    #[arg(long = "allow-model")]
    pub allowed_models: Vec<String>,
    /// When the failure streak stops the pool: `finish` lets running tasks finish, `hard` stops them.
    #[arg(long, value_enum, default_value_t)]
    pub on_failures: FailurePolicy,
}

/// `drover batch …` (docs/design.md §9).
#[derive(Subcommand, Debug)]
pub enum BatchAction {
    /// Start a batch: one task per repository; prints the task ids, one per line.
    Start(Box<BatchStartArgs>),
    /// List batches: NAME STATE TASKS RUNNING SUCCEEDED FAILED COST CREATED.
    Ls {
        #[arg(long)]
        json: bool,
    },
    /// Each repository's latest task: REPO TASK STATE PR COST.
    Show {
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// Cancel its queued tasks and stop its running ones.
    Stop { name: String },
    /// A new task for each repository whose latest task failed, was cancelled or interrupted;
    /// prints the new task ids.
    Retry { name: String },
}

#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("repos").required(true).args(["repo", "repos_file"])))]
pub struct BatchStartArgs {
    /// Lower-case letters, digits, '_', '.' and '-' (at most 63).
    pub name: String,
    /// A repository: owner/name (the default forge), a URL or a local directory (repeatable).
    #[arg(long, value_name = "R")]
    pub repo: Vec<String>,
    /// One repository per line (`#` comments and blank lines skipped; `-`: stdin).
    #[arg(long, value_name = "F", conflicts_with = "repo")]
    pub repos_file: Option<PathBuf>,
    /// The prompt every task gets (`-` reads it from stdin).
    #[arg(
        long,
        conflicts_with = "prompt_file",
        required_unless_present = "prompt_file"
    )]
    pub prompt: Option<String>,
    /// Read the prompt from this file (`-`: stdin).
    #[arg(long, value_name = "F")]
    pub prompt_file: Option<PathBuf>,
    /// At most N of the batch's tasks running at once, across every worker (default: as many
    /// as the workers' slots allow).
    #[arg(long, value_name = "N")]
    pub slots: Option<u32>,
    #[command(flatten)]
    pub pr: PrArgs,
    /// Base commit, branch or tag of every repository (default: HEAD).
    #[arg(long = "ref")]
    pub git_ref: Option<String>,
    /// claude (default) or command.
    #[arg(long, default_value = "claude")]
    pub agent: String,
    /// For --agent command: the shell command to run.
    #[arg(long)]
    pub cmd: Option<String>,
    #[arg(long)]
    pub model: Option<String>,
    /// Gate command run in each sandbox after the agent's turn (repeatable).
    #[arg(long)]
    pub verify: Vec<String>,
    #[arg(long, default_value_t = 2)]
    pub verify_rounds: u32,
    #[arg(long)]
    pub judge_model: Option<String>,
    /// Each task's wall clock (e.g. 30m).
    #[arg(long, value_name = "DUR")]
    pub timeout: Option<String>,
    #[arg(long, value_name = "DUR")]
    pub stall_timeout: Option<String>,
    #[arg(long, value_enum)]
    pub permissions: Option<PermissionPolicy>,
    /// A path no task may change (repeatable glob).
    #[arg(long = "protect", value_name = "GLOB")]
    pub protect: Vec<String>,
    /// Each task's dollar budget.
    #[arg(long)]
    pub max_usd: Option<f64>,
    /// Each task's token budget.
    #[arg(long)]
    pub max_tokens: Option<u64>,
    #[arg(long)]
    pub team: Option<String>,
}

/// `drover team …` (docs/design.md §7).
#[derive(Subcommand, Debug)]
pub enum TeamAction {
    /// Create a team (on the daemon's host only).
    Create {
        /// Lower-case letters, digits, '-' and '_' (at most 63).
        name: String,
        #[command(flatten)]
        settings: TeamSettings,
    },
    /// List teams: name, $/day, $/task, models, webhook.
    Ls {
        #[arg(long)]
        json: bool,
    },
    /// Change a team's settings: the flags given replace, --unset clears, the rest stays.
    Update {
        name: String,
        #[command(flatten)]
        settings: TeamSettings,
        /// Clear a setting (repeatable).
        #[arg(long, value_enum, value_name = "SETTING")]
        unset: Vec<TeamSetting>,
    },
    /// Print the team's webhook secret (the key of `Drover-Signature`'s HMAC-SHA256).
    WebhookSecret { name: String },
}

/// A team's settings as flags.
#[derive(Args, Debug)]
pub struct TeamSettings {
    /// The most the team's tasks may spend per UTC day, in dollars.
    #[arg(long, value_name = "USD")]
    pub max_usd_per_day: Option<f64>,
    /// The most one of its tasks may spend, in dollars (caps a task's own --max-usd).
    #[arg(long, value_name = "USD")]
    pub max_usd_per_task: Option<f64>,
    /// A model the team's tasks may use (repeatable; default: any). With `update`, replaces the
    /// list.
    #[arg(long = "allow-model", value_name = "MODEL")]
    pub allowed_models: Vec<String>,
    /// A repository the team's tasks may use: an absolute directory (repos at or under it) or a
    /// URL prefix (repeatable; default: any). With `update`, replaces the list.
    #[arg(long = "allow-repo", value_name = "DIR|URL")]
    pub allowed_repos: Vec<String>,
    /// Called (POST, signed) when a task of the team ends or needs input.
    #[arg(long, value_name = "URL")]
    pub webhook_url: Option<String>,
}

/// A team setting `drover team update --unset` clears.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum TeamSetting {
    MaxUsdPerDay,
    MaxUsdPerTask,
    /// The model list (any model then).
    AllowedModels,
    /// The repo list (any repo then).
    AllowedRepos,
    WebhookUrl,
}

/// `drover key …` (docs/design.md §7).
#[derive(Subcommand, Debug)]
pub enum KeyAction {
    /// Create a key; prints it alone on stdout, this once.
    Create {
        #[arg(long)]
        team: String,
        /// What the key may do (repeatable; default: tasks:read and tasks:write).
        #[arg(long = "scope", value_enum, value_name = "SCOPE")]
        scopes: Vec<drover_types::Scope>,
        /// A label (e.g. ci).
        #[arg(long)]
        name: Option<String>,
        /// Expire after this long (e.g. 12h, 30d; default: never).
        #[arg(long, value_name = "DUR")]
        expires: Option<String>,
    },
    /// List keys (never the keys themselves): id, team, name, scopes, times, state.
    Ls {
        #[arg(long)]
        team: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Replace a key: prints the new one alone on stdout; the old one keeps working for the
    /// overlap.
    Rotate {
        id: String,
        /// How long the old key keeps working (default 24h; 0 ends it now).
        #[arg(long, value_name = "DUR")]
        overlap: Option<String>,
    },
    /// Revoke a key at once.
    Revoke { id: String },
}

#[derive(Args, Debug)]
pub struct DaemonArgs {
    #[command(subcommand)]
    pub action: Option<DaemonAction>,
    /// Run in this process instead of in the background.
    #[arg(long)]
    pub foreground: bool,
    /// Global slot count.
    #[arg(long)]
    pub slots: Option<usize>,
    /// Sandbox mode: auto, overlay or worktree.
    #[arg(long)]
    pub sandbox: Option<String>,
    /// Also serve the API over TCP on HOST:PORT (port 0: any; the bound address is written to
    /// DROVER_HOME/listen.addr). Every route there needs an API key except /v1/health.
    #[arg(long, value_name = "HOST:PORT")]
    pub listen: Option<String>,
    /// TLS certificate chain (PEM) for --listen; needs --tls-key.
    #[arg(long, value_name = "FILE")]
    pub tls_cert: Option<String>,
    /// TLS private key (PEM) for --listen; needs --tls-cert.
    #[arg(long, value_name = "FILE")]
    pub tls_key: Option<String>,
    /// The web dashboard's loopback listener (default 127.0.0.1:0, the bound address in
    /// DROVER_HOME/web.addr; `off` disables it). Loopback addresses only: to serve other
    /// hosts use --listen.
    #[arg(long, value_name = "HOST:PORT|off")]
    pub web_listen: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum DaemonAction {
    /// Stop the daemon; running tasks stay with their shims unless --stop-tasks.
    Stop {
        #[arg(long)]
        stop_tasks: bool,
    },
    /// Is it running?
    Status {
        #[arg(long)]
        json: bool,
    },
}

/// One of `drover bench`'s benchmarks.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Benchmark {
    Sandbox,
    Memory,
    Dispatch,
    /// A trivial task's sandbox ready and whole-task time, isolation full vs none.
    Isolation,
    /// The team server's API: creates/s, GET p50/p99, SSE followers' delivery and daemon RSS.
    Api,
    /// Open dashboards: the daemon's CPU with 0 and N dashboards following a busy fleet.
    Web,
}

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// sandbox, memory, dispatch, isolation, api or web (default: all).
    #[arg(value_enum)]
    pub which: Option<Benchmark>,
    /// Files in the generated repositories for the sandbox and isolation benchmarks.
    #[arg(long, value_delimiter = ',', default_values_t = [5000usize, 50000])]
    pub files: Vec<usize>,
    /// Tasks for the dispatch benchmark.
    #[arg(long, default_value_t = 500)]
    pub tasks: usize,
    #[arg(long, default_value_t = 16)]
    pub slots: usize,
    /// dispatch: a scratch PostgreSQL database (`postgres://…`) for the PostgreSQL rows
    /// (default: DROVER_DATABASE_URL; without either, SQLite only). Its tasks stay there.
    #[arg(long, value_name = "URL")]
    pub database_url: Option<String>,
    /// api: concurrent clients for the creates (`--tasks` of them) and the GETs.
    #[arg(long, default_value_t = 16)]
    pub clients: usize,
    /// api: `GET /v1/tasks/{id}` requests.
    #[arg(long, default_value_t = 5000)]
    pub requests: usize,
    /// api: concurrent SSE followers of one busy task.
    #[arg(long, default_value_t = 1000)]
    pub followers: usize,
    /// web: dashboards following the fleet and one task's events each.
    #[arg(long, default_value_t = 50)]
    pub dashboards: usize,
    /// web: busy tasks (a line every 50 ms each).
    #[arg(long, default_value_t = 8)]
    pub busy: usize,
    /// api: a small, quick run (at most 10 tasks, 100 GETs, 10 followers, 50 lines).
    #[arg(long)]
    pub quick: bool,
    /// api: over the owner's Unix socket instead of TCP with a key.
    #[arg(long)]
    pub unix: bool,
}

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// How many tasks.
    #[arg(long, default_value_t = 4)]
    pub tasks: usize,
    /// Where to create the demo repository (default: a new temporary directory).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Slots (tasks at once).
    #[arg(long, default_value_t = 3)]
    pub slots: usize,
}

/// `drover claude-bg-follow` (hidden): the arguments of the claude-bg agent process (see
/// `commands::bg_follow`).
#[derive(Args, Debug)]
pub struct FollowArgs {
    #[arg(long)]
    pub task: String,
    #[arg(long, default_value = "claude")]
    pub claude: String,
    #[arg(long)]
    pub model: Option<String>,
    /// Re-attach to this task's live session, or continue this session id.
    #[arg(long)]
    pub resume: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::Cli;
    use clap::CommandFactory;

    /// The long flags of the subcommand at `path`, sorted.
    fn flags(path: &[&str]) -> Vec<String> {
        let mut cmd = Cli::command();
        for name in path {
            let sub = cmd
                .find_subcommand(name)
                .cloned()
                .unwrap_or_else(|| panic!("no subcommand {name}"));
            cmd = sub;
        }
        let mut out: Vec<String> = cmd
            .get_arguments()
            .filter_map(|a| a.get_long().map(|l| format!("--{l}")))
            .collect();
        out.sort();
        out
    }

    #[test]
    fn the_commands_are_well_formed() {
        Cli::command().debug_assert();
    }

    /// `run` and `pool start` share one flattened group and keep every flag they had.
    #[test]
    fn run_and_pool_start_keep_their_flags() {
        let shared = [
            "--agent",
            "--allow-ci-changes",
            "--base",
            "--cmd",
            "--draft",
            "--pr",
            "--pr-title",
            "--cpus",
            "--judge-model",
            "--memory",
            "--model",
            "--permissions",
            "--pids",
            "--protect",
            "--ref",
            "--repo",
            "--stall-timeout",
            "--timeout",
            "--verify",
            "--verify-rounds",
        ];
        let with = |own: &[&str]| {
            let mut v: Vec<String> = shared.iter().chain(own).map(|s| s.to_string()).collect();
            v.sort();
            v
        };
        assert_eq!(
            flags(&["run"]),
            with(&[
                "--api-key-env",
                "--max-tokens",
                "--max-usd",
                "--name",
                "--prompt-file",
                "--tag",
                "--team",
                "--wait"
            ])
        );
        assert_eq!(
            flags(&["pool", "start"]),
            with(&[
                "--allow-model",
                "--count",
                "--max-failures",
                "--max-usd",
                "--notify",
                "--on-failures",
                "--prompt",
                "--prompt-file",
                "--slots"
            ])
        );
    }
}

/// `drover audit [--since T] [--team T] [--json] [--limit N]` and `drover audit export`.
#[derive(Args, Debug)]
pub struct AuditArgs {
    #[command(subcommand)]
    pub action: Option<AuditAction>,
    /// Only records at or after T: an RFC 3339 time or an age (30m, 24h, 7d).
    #[arg(long)]
    pub since: Option<String>,
    /// Only records of this team's keys (a key sees only its own team's anyway).
    #[arg(long)]
    pub team: Option<String>,
    /// At most N records (the oldest first).
    #[arg(long)]
    pub limit: Option<usize>,
    /// The records as one JSON array.
    #[arg(long)]
    pub json: bool,
}

#[derive(Subcommand, Debug)]
pub enum AuditAction {
    /// One accounting row per finished task, to stdout (schema: docs/accounting.md).
    Export {
        #[arg(long, value_enum)]
        format: ExportFormat,
        /// Only tasks finished at or after T: an RFC 3339 time or an age (30m, 24h, 7d).
        #[arg(long)]
        since: Option<String>,
        /// Only this team's tasks.
        #[arg(long)]
        team: Option<String>,
    },
}
