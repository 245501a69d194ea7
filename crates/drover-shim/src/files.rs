//! The task directory (`DROVER_HOME/tasks/<id>/`) and the shapes written in it.
//!
//! The files the daemon and the shim hand each other (`launch.json`, the ready line and
//! `ready.json`, `exit.json`) carry a protocol version, `"v": 1` (see [`PROTOCOL`]): a shim and a
//! daemon of different drover builds may meet across an upgrade, and each refuses a version it
//! does not know rather than misreading it. A file without `v` was written by a drover from
//! before the field existed; its shape is exactly version 1, so it reads as version 1 — that is
//! what lets a daemon upgraded in place re-adopt the agents its predecessor started.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The version of the shim's file protocol this build writes and reads.
pub const PROTOCOL: u32 = 1;

fn unversioned() -> u32 {
    1
}

/// A protocol file this build cannot read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    #[error("{file} has protocol version {found}; this drover reads version {PROTOCOL} (shim and daemon are from different drover versions)")]
    Version { file: &'static str, found: u32 },
    #[error("{file} is not valid: {detail}")]
    Malformed { file: &'static str, detail: String },
}

/// Only the version, read before the body so that a future shape is reported as a version it
/// is, not as a malformed file.
#[derive(Deserialize)]
struct Probe {
    #[serde(default = "unversioned")]
    v: u32,
}

#[derive(Serialize)]
struct Versioned<'a, T> {
    v: u32,
    #[serde(flatten)]
    body: &'a T,
}

/// `body` as JSON with `"v": PROTOCOL` in front.
pub fn encode<T: Serialize>(body: &T) -> serde_json::Result<Vec<u8>> {
    serde_json::to_vec(&Versioned { v: PROTOCOL, body })
}

/// [`encode`], indented for people (`launch.json`; the ready line must stay one line).
pub fn encode_pretty<T: Serialize>(body: &T) -> serde_json::Result<Vec<u8>> {
    serde_json::to_vec_pretty(&Versioned { v: PROTOCOL, body })
}

/// Reads a protocol file (`file` names it in errors): its version first, then its body.
pub fn decode<T: DeserializeOwned>(file: &'static str, bytes: &[u8]) -> Result<T, ProtocolError> {
    let malformed = |e: serde_json::Error| ProtocolError::Malformed {
        file,
        detail: e.to_string(),
    };
    let probe: Probe = serde_json::from_slice(bytes).map_err(malformed)?;
    if probe.v != PROTOCOL {
        return Err(ProtocolError::Version {
            file,
            found: probe.v,
        });
    }
    serde_json::from_slice(bytes).map_err(malformed)
}

/// A protocol file on disk: `Ok(None)` when it is absent or not (yet) valid JSON of its shape,
/// as before versions existed; `Err` only for a version this build does not know.
fn read_versioned<T: DeserializeOwned>(
    file: &'static str,
    path: &Path,
) -> Result<Option<T>, ProtocolError> {
    let Ok(bytes) = std::fs::read(path) else {
        return Ok(None);
    };
    match decode(file, &bytes) {
        Ok(body) => Ok(Some(body)),
        Err(ProtocolError::Malformed { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

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
    /// `ready.json` (see [`read_versioned`] for what `None` and `Err` mean).
    pub fn read_ready(&self) -> Result<Option<ShimReady>, ProtocolError> {
        read_versioned("ready.json", &self.ready())
    }
    pub fn socket(&self) -> PathBuf {
        self.dir.join("shim.sock")
    }
    /// `exit.json` (see [`read_versioned`] for what `None` and `Err` mean).
    pub fn read_exit(&self) -> Result<Option<ExitInfo>, ProtocolError> {
        read_versioned("exit.json", &self.exit())
    }
}

/// `launch.json`: everything the shim needs except the environment, which the daemon gives the
/// shim when it starts it (exactly the agent's, from an allow-list) so that it never lands in a
/// file. Written with [`encode`], read with [`decode`],
/// like the ready line and `exit.json`.
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
    /// When the agent exits, end only its process group, not what left it: the agent starts a
    /// service meant to outlive it and shared beyond the task (Claude's background supervisor).
    /// By default every descendant is ended (the shim is their sub-reaper).
    #[serde(default)]
    pub keep_detached: bool,
    /// Run the agent confined ([`JailSpec`]); `None`: as the shim's plain child
    /// (`sandbox.isolation = "none"`).
    #[serde(default)]
    pub jail: Option<JailSpec>,
    /// The task's cgroup(s): the `cgroup.procs` file of each hierarchy the agent is placed in
    /// (one on cgroup v2; one per controller — memory, pids, cpu — on v1). The shim moves the
    /// agent's first process there before it runs anything, so everything it starts is counted
    /// and limited; the shim itself stays outside (a group killed whole leaves the shim to
    /// write `exit.json`).
    #[serde(default)]
    pub cgroup_procs: Vec<PathBuf>,
}

/// Inside a confined task, where the task's socket directory (`DROVER_HOME/run/<id>/`) appears:
/// `daemon.sock` (the task-scoped control endpoint, so `DROVER_HOME` is this directory inside),
/// `gateway.sock` (drover's model gateway), `egress.sock` (the `sandbox.egress` allow-list proxy).
pub const SANDBOX_RUN_DIR: &str = "/run/drover";

/// The port the `sandbox.egress` proxy listens on inside a confined task's own loopback
/// (`HTTPS_PROXY=http://127.0.0.1:3128`); the network namespace is private, so it clashes with
/// nothing.
pub const EGRESS_PORT: u16 = 3128;

/// How the agent is confined: its own user (where available), mount, PID, network, IPC and UTS
/// namespaces, `no_new_privs`, no capabilities. Paths are the host's; each appears at the same
/// path inside unless said otherwise.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct JailSpec {
    /// The task's checkout: the one writable tree of the repository (the cwd).
    pub checkout: PathBuf,
    /// A directory of the task's (`tasks/<id>/home`) mounted writable at [`JailSpec::home_at`]:
    /// the agent's private `HOME`, kept across the task's attempts (Claude Code's sessions).
    pub home: PathBuf,
    /// Where the private home appears (the `HOME` the agent gets; the daemon user's home path,
    /// so tools that look there find their config dirs).
    pub home_at: PathBuf,
    /// The task's socket directory, mounted at [`SANDBOX_RUN_DIR`].
    pub run_dir: PathBuf,
    /// Visible read-only, beyond the system's own directories: the agent CLI, drover's binary,
    /// toolchain homes, the config's `sandbox.ro_paths`. A path that does not exist is skipped.
    #[serde(default)]
    pub ro_paths: Vec<PathBuf>,
    /// Visible writable: the config's `sandbox.rw_paths` (and a worktree's git directories).
    #[serde(default)]
    pub rw_paths: Vec<PathBuf>,
    /// Hidden even though under a visible directory (e.g. `DROVER_HOME` when it lies under a
    /// system path, the daemon's own secrets).
    #[serde(default)]
    pub hidden: Vec<PathBuf>,
    /// Loopback forwarders inside the task's network namespace: `127.0.0.1:port` → the Unix
    /// socket `socket` (a path inside, under [`SANDBOX_RUN_DIR`]).
    #[serde(default)]
    pub forwards: Vec<Forward>,
}

/// One loopback forwarder inside a confined task ([`JailSpec::forwards`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Forward {
    pub port: u16,
    pub socket: PathBuf,
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn exit() -> ExitInfo {
        ExitInfo {
            code: Some(3),
            signal: None,
            spawn_error: None,
        }
    }

    #[test]
    fn files_are_written_with_the_version_in_front() {
        let raw = String::from_utf8(encode(&exit()).unwrap()).unwrap();
        assert_eq!(raw, r#"{"v":1,"code":3,"signal":null,"spawn_error":null}"#);
        assert_eq!(decode::<ExitInfo>("exit.json", raw.as_bytes()), Ok(exit()));
    }

    #[test]
    fn a_file_without_a_version_is_version_1() {
        // What a drover from before versions wrote (an upgrade re-adopts its agents).
        let old = br#"{"code":3,"signal":null,"spawn_error":null}"#;
        assert_eq!(decode::<ExitInfo>("exit.json", old), Ok(exit()));
    }

    #[test]
    fn an_unknown_version_is_refused_whatever_its_shape() {
        for raw in [
            r#"{"v":2,"code":3,"signal":null,"spawn_error":null}"#,
            r#"{"v":2,"outcome":{"exited":3}}"#,
        ] {
            let err = decode::<ExitInfo>("exit.json", raw.as_bytes()).unwrap_err();
            assert_eq!(
                err,
                ProtocolError::Version {
                    file: "exit.json",
                    found: 2
                }
            );
            assert!(err.to_string().contains("exit.json has protocol version 2"));
        }
        assert!(matches!(
            decode::<ExitInfo>("exit.json", b"{\"v\":1,\"code\":\"x\"}"),
            Err(ProtocolError::Malformed { .. })
        ));
    }

    #[test]
    fn reading_from_disk_tells_absent_from_foreign() {
        let tmp = tempfile::tempdir().unwrap();
        let files = TaskFiles::new(tmp.path());
        assert_eq!(files.read_exit(), Ok(None));
        std::fs::write(files.exit(), b"{\"code\": 1, \"sig").unwrap();
        assert_eq!(files.read_exit(), Ok(None), "a torn file reads as absent");
        write_atomic(&files.exit(), &encode(&exit()).unwrap()).unwrap();
        assert_eq!(files.read_exit(), Ok(Some(exit())));
        std::fs::write(files.ready(), br#"{"v":9}"#).unwrap();
        assert!(matches!(
            files.read_ready(),
            Err(ProtocolError::Version { found: 9, .. })
        ));
    }
}
