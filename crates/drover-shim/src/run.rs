//! The shim process. Synchronous on purpose: two threads and no runtime keep it small (< 3 MB).

use crate::files::{
    write_atomic, ExitInfo, LaunchFile, ShimCommand, ShimReady, ShimReply, TaskFiles,
};
use crate::proc::{parse_signal, signal_group, start_time};
use nix::sys::signal::Signal;
use std::fs::OpenOptions;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};

type SharedStdin = Arc<Mutex<Option<ChildStdin>>>;

/// Runs the shim for the task directory `dir`; returns the process exit code.
pub fn run(dir: &Path) -> i32 {
    let files = TaskFiles::new(dir);
    match run_inner(&files) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("drover shim: {e}");
            1
        }
    }
}

fn run_inner(files: &TaskFiles) -> std::io::Result<()> {
    let launch: LaunchFile = serde_json::from_slice(&std::fs::read(files.launch())?)
        .map_err(|e| std::io::Error::other(format!("bad launch.json: {e}")))?;
    let append = |p| OpenOptions::new().create(true).append(true).open(p);
    let mut cmd = Command::new(&launch.program);
    cmd.args(&launch.args)
        .current_dir(&launch.cwd)
        .stdin(Stdio::piped())
        .stdout(append(files.stdout())?)
        .stderr(append(files.stderr())?)
        .process_group(0);
    for k in &launch.env_remove {
        cmd.env_remove(k);
    }
    let me = std::process::id() as i64;
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            let msg = format!("{}: {e}", launch.program);
            let exit = ExitInfo {
                code: None,
                signal: None,
                spawn_error: Some(msg.clone()),
            };
            write_atomic(
                &files.exit(),
                &serde_json::to_vec(&exit).unwrap_or_default(),
            )?;
            let ready = ShimReady {
                shim_pid: me,
                shim_start: start_time(me).unwrap_or(0),
                pid: 0,
                pgid: 0,
                agent_start: 0,
                error: Some(msg),
            };
            announce(&ready);
            return Ok(());
        }
    };
    let pid = child.id() as i64;
    let stdin: SharedStdin = Arc::new(Mutex::new(child.stdin.take()));
    write_initial(&stdin, &launch);

    let sock = files.socket();
    let _ = std::fs::remove_file(&sock);
    let listener = UnixListener::bind(&sock)?;
    std::thread::spawn(move || serve(listener, stdin, pid));
    let ready = ShimReady {
        shim_pid: me,
        shim_start: start_time(me).unwrap_or(0),
        pid,
        pgid: pid,
        agent_start: start_time(pid).unwrap_or(0),
        error: None,
    };
    write_atomic(
        &files.ready(),
        &serde_json::to_vec(&ready).unwrap_or_default(),
    )?;
    announce(&ready);

    let status = child.wait()?;
    // The agent is gone; whatever it left running in its group goes too (no orphans).
    let _ = signal_group(pid, Signal::SIGKILL);
    let exit = ExitInfo {
        code: status.code(),
        signal: status.signal(),
        spawn_error: None,
    };
    let _ = std::fs::remove_file(&sock);
    write_atomic(
        &files.exit(),
        &serde_json::to_vec(&exit).unwrap_or_default(),
    )
}

/// Prints the ready line for the daemon, then detaches stdout so a dead daemon cannot SIGPIPE us.
fn announce(ready: &ShimReady) {
    let mut out = std::io::stdout();
    let _ = writeln!(out, "{}", serde_json::to_string(ready).unwrap_or_default());
    let _ = out.flush();
    if let Ok(null) = OpenOptions::new().write(true).open("/dev/null") {
        use std::os::fd::AsRawFd;
        // SAFETY: dup2 onto fd 1 with a valid open fd; no Rust object owns fd 1 exclusively.
        unsafe { libc::dup2(null.as_raw_fd(), 1) };
    }
}

fn write_initial(stdin: &SharedStdin, launch: &LaunchFile) {
    let Ok(mut guard) = stdin.lock() else { return };
    if let Some(pipe) = guard.as_mut() {
        for line in &launch.stdin_lines {
            if writeln!(pipe, "{line}").is_err() {
                break;
            }
        }
        let _ = pipe.flush();
    }
    if launch.close_stdin {
        *guard = None;
    }
}

fn serve(listener: UnixListener, stdin: SharedStdin, pgid: i64) {
    for conn in listener.incoming().flatten() {
        let stdin = stdin.clone();
        std::thread::spawn(move || handle(conn, stdin, pgid));
    }
}

fn handle(conn: UnixStream, stdin: SharedStdin, pgid: i64) {
    let Ok(mut writer) = conn.try_clone() else {
        return;
    };
    for line in BufReader::new(conn).lines() {
        let Ok(line) = line else { return };
        let reply = match serde_json::from_str::<ShimCommand>(&line) {
            Ok(cmd) => apply(cmd, &stdin, pgid),
            Err(e) => Err(format!("bad command: {e}")),
        };
        let reply = match reply {
            Ok(()) => ShimReply {
                ok: true,
                error: None,
            },
            Err(e) => ShimReply {
                ok: false,
                error: Some(e),
            },
        };
        let body = serde_json::to_string(&reply).unwrap_or_default();
        if writeln!(writer, "{body}").is_err() {
            return;
        }
    }
}

fn apply(cmd: ShimCommand, stdin: &SharedStdin, pgid: i64) -> Result<(), String> {
    match cmd {
        ShimCommand::Ping => Ok(()),
        ShimCommand::Write { line } => {
            let mut guard = stdin
                .lock()
                .map_err(|_| "stdin lock poisoned".to_string())?;
            let pipe = guard.as_mut().ok_or("the agent's stdin is closed")?;
            writeln!(pipe, "{line}")
                .and_then(|_| pipe.flush())
                .map_err(|e| format!("write to agent: {e}"))
        }
        ShimCommand::CloseStdin => {
            let mut guard = stdin
                .lock()
                .map_err(|_| "stdin lock poisoned".to_string())?;
            *guard = None;
            Ok(())
        }
        ShimCommand::Signal { signal } => {
            let sig = parse_signal(&signal).ok_or_else(|| format!("unknown signal {signal}"))?;
            signal_group(pgid, sig).map_err(|e| e.to_string())
        }
    }
}
