//! The task directory (`DROVER_HOME/tasks/<id>/`) and the shapes written in it.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Paths of one task's directory.
#[derive(Debug, Clone)]
pub struct TaskFiles {
    pub dir: PathBuf,
}

impl TaskFiles {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        TaskFiles { dir: dir.into() }
    }
    /// How to start the agent (written by the daemon before spawning the shim).
    pub fn launch(&self) -> PathBuf {
        self.dir.join("launch.json")
    }
    /// The agent's raw stdout, append-only.
    pub fn stdout(&self) -> PathBuf {
        self.dir.join("stdout.log")
    }
    /// The agent's raw stderr, append-only.
    pub fn stderr(&self) -> PathBuf {
        self.dir.join("stderr.log")
    }
    /// The shim's own diagnostics.
    pub fn shim_log(&self) -> PathBuf {
        self.dir.join("shim.log")
    }
    /// Written atomically when the agent has exited and its group is gone.
    pub fn exit(&self) -> PathBuf {
        self.dir.join("exit.json")
    }
    /// The shim's ready line, also kept on disk: a daemon that died between spawning the shim
    /// and recording its pids finds them here.
    pub fn ready(&self) -> PathBuf {
        self.dir.join("ready.json")
    }
    pub fn read_ready(&self) -> Option<ShimReady> {
        let bytes = std::fs::read(self.ready()).ok()?;
        serde_json::from_slice(&bytes).ok()
    }
    pub fn socket(&self) -> PathBuf {
        self.dir.join("shim.sock")
    }
    pub fn read_exit(&self) -> Option<ExitInfo> {
        let bytes = std::fs::read(self.exit()).ok()?;
        serde_json::from_slice(&bytes).ok()
    }
}

/// `launch.json`: everything the shim needs except the environment, which it inherits from the
/// daemon (so that secrets never land in a file).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LaunchFile {
    pub program: String,
    pub args: Vec<String>,
    pub cwd: PathBuf,
    #[serde(default)]
    pub env_remove: Vec<String>,
    #[serde(default)]
    pub stdin_lines: Vec<String>,
    #[serde(default)]
    pub close_stdin: bool,
}

/// The one line a shim prints on its stdout once the agent is started.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShimReady {
    pub shim_pid: i64,
    pub shim_start: i64,
    pub pid: i64,
    pub pgid: i64,
    pub agent_start: i64,
    /// Set instead of the pids when the agent could not be started.
    pub error: Option<String>,
}

/// `exit.json`
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ExitInfo {
    pub code: Option<i32>,
    pub signal: Option<i32>,
    /// Set when the agent never started (e.g. binary not found).
    pub spawn_error: Option<String>,
}

impl ExitInfo {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }
    pub fn describe(&self) -> String {
        match (&self.spawn_error, self.code, self.signal) {
            (Some(e), _, _) => format!("could not start the agent: {e}"),
            (_, Some(c), _) => format!("agent exited with code {c}"),
            (_, _, Some(s)) => format!("agent killed by signal {s}"),
            _ => "agent exited".to_string(),
        }
    }
}

/// One request on `shim.sock` (one JSON object per line).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum ShimCommand {
    /// Write a line (a newline is appended) to the agent's stdin.
    Write {
        line: String,
    },
    CloseStdin,
    /// Signal the agent's process group: `INT`, `TERM` or `KILL`.
    Signal {
        signal: String,
    },
    Ping,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShimReply {
    pub ok: bool,
    pub error: Option<String>,
}

pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(tmp, path)
}
