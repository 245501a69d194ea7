//! The daemon's side: start a shim, talk to it.

use crate::files::{
    decode, encode_pretty, LaunchFile, ProtocolError, ShimCommand, ShimReady, ShimReply, TaskFiles,
};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

#[derive(Debug, thiserror::Error)]
pub enum ShimError {
    #[error("shim i/o in {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("the shim did not start: {0}")]
    Start(String),
    #[error("the shim refused: {0}")]
    Refused(String),
    #[error("the shim speaks another protocol: {0}")]
    Protocol(#[from] ProtocolError),
    #[error("socket path too long for a Unix socket ({0} bytes); use a shorter DROVER_HOME")]
    PathTooLong(usize),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ShimError + '_ {
    move |source| ShimError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Writes `launch.json` and starts `exe shim DIR`, with the environment `env` and nothing else,
/// in a new session (so it survives the daemon and
/// any terminal). Returns the shim's child handle (the caller may drop it; tokio reaps it) and
/// the pids it reported once the agent started.
pub async fn spawn_shim(
    exe: &Path,
    files: &TaskFiles,
    launch: &LaunchFile,
    env: &[(String, String)],
) -> Result<(tokio::process::Child, ShimReady), ShimError> {
    let sock_len = files.socket().as_os_str().len();
    if sock_len > 100 {
        return Err(ShimError::PathTooLong(sock_len));
    }
    // The file work here (a directory, launch.json, two removals, opening the log; reading the
    // shim's few log lines if it dies at once) is small and bounded: done inline on the
    // caller's async worker.
    std::fs::create_dir_all(&files.dir).map_err(io(&files.dir))?;
    let body = encode_pretty(launch).map_err(|e| ShimError::Start(e.to_string()))?;
    let launch_path = files.launch();
    std::fs::write(&launch_path, body).map_err(io(&launch_path))?;
    // Records of an earlier attempt; absent is the usual case.
    let _ = std::fs::remove_file(files.exit());
    let _ = std::fs::remove_file(files.ready());
    let log_path = files.shim_log();
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(io(&log_path))?;
    // The small `drover-shim` binary next to `drover` if it is there, else `drover shim`.
    let small = exe.with_file_name("drover-shim");
    let mut cmd = if small.is_file() {
        tokio::process::Command::new(&small)
    } else {
        let mut c = tokio::process::Command::new(exe);
        c.arg("shim");
        c
    };
    cmd.arg(&files.dir);
    // The shim (and so the agent) gets exactly `env`, nothing of the daemon's own environment;
    // variables the agent must not see are not given to the shim either.
    cmd.env_clear().envs(env.iter().map(|(k, v)| (k, v)));
    for k in &launch.env_remove {
        cmd.env_remove(k);
    }
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(log);
    // SAFETY: setsid is async-signal-safe; it runs in the child between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().map_err(io(exe))?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| ShimError::Start("no stdout".into()))?;
    let mut line = String::new();
    let mut reader = BufReader::new(stdout);
    let read = reader.read_line(&mut line);
    match tokio::time::timeout(Duration::from_secs(30), read).await {
        Ok(Ok(n)) if n > 0 => {}
        Ok(Ok(_)) => {
            let log = std::fs::read_to_string(files.shim_log()).unwrap_or_default();
            return Err(ShimError::Start(format!("it exited early: {}", log.trim())));
        }
        Ok(Err(e)) => return Err(ShimError::Start(e.to_string())),
        Err(_) => return Err(ShimError::Start("no answer within 30 s".into())),
    }
    let ready: ShimReady = match decode("the ready line", line.trim().as_bytes()) {
        Ok(r) => r,
        Err(ProtocolError::Malformed { detail, .. }) => {
            return Err(ShimError::Start(format!("{detail}: {line}")))
        }
        Err(e) => return Err(e.into()),
    };
    Ok((child, ready))
}

/// Talks to a shim over its socket; one short connection per command.
#[derive(Debug, Clone)]
pub struct ShimClient {
    files: TaskFiles,
}

impl ShimClient {
    pub fn new(files: TaskFiles) -> Self {
        ShimClient { files }
    }

    /// One command; a shim that does not answer within 10 s is treated as gone.
    pub async fn call(&self, cmd: &ShimCommand) -> Result<(), ShimError> {
        match tokio::time::timeout(Duration::from_secs(10), self.call_inner(cmd)).await {
            Ok(r) => r,
            Err(_) => Err(ShimError::Refused(
                "the shim did not answer within 10 s".into(),
            )),
        }
    }

    async fn call_inner(&self, cmd: &ShimCommand) -> Result<(), ShimError> {
        let path = self.files.socket();
        let path = path.as_path();
        let stream = UnixStream::connect(&path).await.map_err(io(path))?;
        let (r, mut w) = stream.into_split();
        let mut body = serde_json::to_string(cmd).map_err(|e| ShimError::Refused(e.to_string()))?;
        body.push('\n');
        w.write_all(body.as_bytes()).await.map_err(io(path))?;
        let mut line = String::new();
        BufReader::new(r)
            .read_line(&mut line)
            .await
            .map_err(io(path))?;
        let reply: ShimReply = serde_json::from_str(line.trim())
            .map_err(|e| ShimError::Refused(format!("unreadable reply: {e}")))?;
        if reply.ok {
            Ok(())
        } else {
            Err(ShimError::Refused(reply.error.unwrap_or_default()))
        }
    }

    pub async fn write_line(&self, line: String) -> Result<(), ShimError> {
        self.call(&ShimCommand::Write { line }).await
    }
    pub async fn close_stdin(&self) -> Result<(), ShimError> {
        self.call(&ShimCommand::CloseStdin).await
    }
    pub async fn signal(&self, signal: &str) -> Result<(), ShimError> {
        self.call(&ShimCommand::Signal {
            signal: signal.to_string(),
        })
        .await
    }
}
