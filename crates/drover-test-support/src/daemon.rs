//! An in-process daemon: [`drover_daemon::run`] on a `DROVER_HOME` of the test's choosing, in
//! the test's own tokio runtime, stopped by cancelling its shutdown token.
//!
//! Agents still run out of process, under shims started from the `drover` binary the test
//! names (`env!("CARGO_BIN_EXE_drover")` in drover-cli's tests): what survives a shutdown is
//! exactly what survives a real daemon's.

use drover_daemon::{CancellationToken, Config, DaemonError};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

/// How long [`InProcessDaemon::start`] waits for the socket to accept.
pub const START_DEADLINE: Duration = Duration::from_secs(30);
/// How long [`InProcessDaemon::shutdown`] waits for `run` to return: the daemon's own deadline
/// for its tasks plus its ledger's.
pub const SHUTDOWN_DEADLINE: Duration =
    Duration::from_secs(drover_daemon::SHUTDOWN_DEADLINE.as_secs() + 30);

/// A running in-process daemon.
pub struct InProcessDaemon {
    home: PathBuf,
    shutdown: CancellationToken,
    run: JoinHandle<Result<(), DaemonError>>,
}

impl InProcessDaemon {
    /// Starts a daemon on `home` (created if missing) with its configuration loaded as the
    /// binary would, shims started from `exe`; returns once its socket accepts.
    pub async fn start(home: &Path, exe: &Path) -> InProcessDaemon {
        Self::start_with(home, exe, |_| {}).await
    }

    /// [`InProcessDaemon::start`], with the configuration adjusted by `adjust` first.
    pub async fn start_with(
        home: &Path,
        exe: &Path,
        adjust: impl FnOnce(&mut Config),
    ) -> InProcessDaemon {
        std::fs::create_dir_all(home).expect("create DROVER_HOME");
        let mut config = Config::load(home).expect("daemon config");
        config.exe = exe.to_path_buf();
        adjust(&mut config);
        let shutdown = CancellationToken::new();
        let run = tokio::spawn(drover_daemon::run(config, shutdown.clone()));
        let daemon = InProcessDaemon {
            home: home.to_path_buf(),
            shutdown,
            run,
        };
        let deadline = Instant::now() + START_DEADLINE;
        while tokio::net::UnixStream::connect(daemon.socket())
            .await
            .is_err()
        {
            if daemon.run.is_finished() {
                let ended = daemon.run.await;
                panic!("the daemon ended before it listened: {ended:?}");
            }
            assert!(
                Instant::now() < deadline,
                "the daemon did not listen within {START_DEADLINE:?}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        daemon
    }

    pub fn home(&self) -> &Path {
        &self.home
    }

    /// `DROVER_HOME/daemon.sock`.
    pub fn socket(&self) -> PathBuf {
        self.home.join("daemon.sock")
    }

    /// Cancels the daemon and waits for `run` to return (at most [`SHUTDOWN_DEADLINE`]; the
    /// test fails past it, or if `run` failed). Returns how long it took.
    pub async fn shutdown(self) -> Duration {
        let started = Instant::now();
        self.shutdown.cancel();
        match tokio::time::timeout(SHUTDOWN_DEADLINE, self.run).await {
            Ok(Ok(Ok(()))) => started.elapsed(),
            Ok(Ok(Err(e))) => panic!("the daemon failed: {e}"),
            Ok(Err(e)) => panic!("the daemon's task panicked: {e}"),
            Err(_) => panic!("the daemon did not stop within {SHUTDOWN_DEADLINE:?}"),
        }
    }
}
