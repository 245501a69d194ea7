//! Child processes with deadlines, and finding processes in `/proc`.

use std::io::Read;
use std::path::Path;
use std::process::{Child, Output};
use std::time::{Duration, Instant};

/// Collects a child's output, killing it (and failing the test) if it runs past `limit`.
pub fn finish_within(mut child: Child, limit: Duration, what: &str) -> Output {
    let drain = |r: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = vec![];
            if let Some(mut r) = r {
                // A read error ends the capture; what was read is still returned.
                let _ = r.read_to_end(&mut buf);
            }
            buf
        })
    };
    let out = drain(
        child
            .stdout
            .take()
            .map(|r| Box::new(r) as Box<dyn Read + Send>),
    );
    let err = drain(
        child
            .stderr
            .take()
            .map(|r| Box::new(r) as Box<dyn Read + Send>),
    );
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            // The test fails below either way; these only reap the child.
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{what} did not end within {limit:?}; stderr: {}",
                String::from_utf8_lossy(&err.join().unwrap_or_default())
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Output {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

/// Waits (at most 20 s) until `pid` is gone or a zombie.
pub fn wait_gone(pid: i64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while alive(pid) {
        assert!(Instant::now() < deadline, "process {pid} did not go away");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Alive and not a zombie.
pub fn alive(pid: i64) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => {
            let rest = &s[s.rfind(')').unwrap() + 1..];
            !matches!(rest.split_whitespace().next(), Some("Z") | Some("X"))
        }
        Err(_) => false,
    }
}

/// Whether any live (not zombie) process is in process group `pgid`.
pub fn group_alive(pgid: i64) -> bool {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return false;
    };
    dir.flatten().any(|e| {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i64>().ok()) else {
            return false;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            return false;
        };
        // After the command's closing parenthesis: state, ppid, pgrp, …
        let f: Vec<&str> = stat[stat.rfind(')').unwrap() + 1..]
            .split_whitespace()
            .collect();
        f[2].parse::<i64>().ok() == Some(pgid) && !matches!(f[0], "Z" | "X")
    })
}

/// Live processes (not this one) of a test's `DROVER_HOME`: its daemon, shims, jails and
/// agents (by environment, command line or working directory).
pub fn processes_of(home: &Path) -> Vec<i64> {
    let needle = format!("DROVER_HOME={}", home.display());
    let mut out = vec![];
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i64>().ok()) else {
            continue;
        };
        if pid == std::process::id() as i64 {
            continue;
        }
        // A confined task's shim and agent see DROVER_HOME=/run/drover: they are found by the
        // task directory on their command line, or their working directory (the checkout).
        let by_env = std::fs::read(format!("/proc/{pid}/environ"))
            .is_ok_and(|env| env.split(|&b| b == 0).any(|kv| kv == needle.as_bytes()));
        let by_cmdline = std::fs::read(format!("/proc/{pid}/cmdline"))
            .is_ok_and(|c| String::from_utf8_lossy(&c).contains(&*home.to_string_lossy()));
        let by_cwd =
            std::fs::read_link(format!("/proc/{pid}/cwd")).is_ok_and(|c| c.starts_with(home));
        if (by_env || by_cmdline || by_cwd) && alive(pid) {
            out.push(pid);
        }
    }
    out
}
