//! The `DROVER_HOME` layout. Everything a daemon owns lives below one directory, so several
//! isolated instances can run side by side (tests do).
//!
//! ```text
//! DROVER_HOME/
//!   config.toml        optional settings
//!   drover.db          the SQLite store (+ -wal, -shm)
//!   daemon.pid         pid of the running daemon
//!   daemon.lock        held (flock) by the running daemon
//!   daemon.sock        the API socket
//!   daemon.log         the daemon's log when started in the background
//!   tasks/<id>/        launch.json, stdout.log, stderr.log, shim.log, shim.sock, exit.json,
//!                      home/ (a confined agent's private HOME)
//!   run/<id>/          the task's sockets, mounted at /run/drover inside its sandbox:
//!                      daemon.sock (task-scoped control), gateway.sock, egress.sock
//!   sandboxes/<id>/    the task's checkout (overlay upper/work/merged, or a git worktree)
//!   bases/<key>/       shared read-only base checkouts, one per (repo, commit)
//!   repos/<hash>.git   clones of repositories given by URL
//! ```

use crate::DaemonError;
use drover_shim::TaskFiles;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct Home {
    pub root: PathBuf,
}

impl Home {
    pub fn new(root: &Path) -> Self {
        Home {
            root: root.to_path_buf(),
        }
    }
    pub fn db(&self) -> PathBuf {
        self.root.join("drover.db")
    }
    pub fn pid_file(&self) -> PathBuf {
        self.root.join("daemon.pid")
    }
    pub fn socket(&self) -> PathBuf {
        self.root.join("daemon.sock")
    }
    pub fn log(&self) -> PathBuf {
        self.root.join("daemon.log")
    }
    pub fn config(&self) -> PathBuf {
        self.root.join("config.toml")
    }
    /// The task's socket directory (see the layout above), mounted at
    /// [`drover_shim::SANDBOX_RUN_DIR`] in its sandbox.
    pub fn run_dir(&self, id: &str) -> PathBuf {
        self.root.join("run").join(id)
    }
    /// A confined agent's private `HOME` (kept across the task's attempts).
    pub fn agent_home(&self, id: &str) -> PathBuf {
        self.root.join("tasks").join(id).join("home")
    }
    pub fn task(&self, id: &str) -> TaskFiles {
        TaskFiles::new(self.root.join("tasks").join(id))
    }

    pub fn create(&self) -> Result<(), DaemonError> {
        std::fs::create_dir_all(self.root.join("tasks")).map_err(|source| DaemonError::Home {
            path: self.root.display().to_string(),
            source,
        })
    }

    /// Takes the exclusive daemon lock; fails if another daemon holds it.
    pub fn lock(&self) -> Result<std::fs::File, DaemonError> {
        let path = self.root.join("daemon.lock");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|source| DaemonError::Home {
                path: path.display().to_string(),
                source,
            })?;
        use std::os::fd::AsRawFd;
        // SAFETY: flock on a valid fd we own; the lock lives as long as the returned File.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            return Err(DaemonError::AlreadyRunning(self.root.display().to_string()));
        }
        Ok(file)
    }

    pub fn write_pid(&self) -> Result<(), DaemonError> {
        std::fs::write(self.pid_file(), format!("{}\n", std::process::id())).map_err(|source| {
            DaemonError::Home {
                path: self.pid_file().display().to_string(),
                source,
            }
        })
    }

    pub fn remove_pid(&self) {
        let _ = std::fs::remove_file(self.pid_file());
        let _ = std::fs::remove_file(self.socket());
    }
}
