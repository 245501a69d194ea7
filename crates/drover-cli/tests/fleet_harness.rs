//! The fleet harness itself (`drover_test_support::fleet`): a worker in its own network
//! namespace reaches the cluster through its veth; SIGKILL of its namespace's init ends every
//! process of that "host", a running agent included.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use drover_test_support::fleet::{Fleet, WorkerOpts};
use std::path::Path;
use std::time::Duration;

#[test]
fn a_worker_in_its_own_namespaces_runs_and_dies_whole() {
    let mut fleet = Fleet::new(Path::new(env!("CARGO_BIN_EXE_drover")), 3);
    let w = fleet.start(WorkerOpts::new("nsw", 2).with_net());
    let log = fleet.log(w);
    // (Its own web dashboard listens on its namespace's loopback: that line is not the cluster.)
    assert!(
        !log.lines()
            .any(|l| l.contains("127.0.0.1") && !l.contains("web dashboard on http://127.0.0.1:")),
        "it reached the cluster over its veth:\n{log}"
    );
    // An agent that would outlive a mere daemon kill: its own session, ignoring TERM.
    let marker = fleet.records.join("alive");
    let cmd = format!(
        "trap '' TERM; while true; do date > {}; sleep 0.1; done",
        marker.display()
    );
    let id = fleet.submit(w, &cmd, "forever", &[]);
    fleet.until(w, &id, "running", Duration::from_secs(60), |t| {
        t["state"] == "running"
    });
    drover_test_support::poll::poll("the agent to write", Duration::from_secs(30), || {
        marker.exists()
    });
    let home = fleet.worker(w).home.clone();
    assert!(
        drover_test_support::process::processes_of(&home).len() >= 3,
        "daemon, shim and agent are there"
    );
    fleet.kill(w);
    assert!(drover_test_support::process::processes_of(&home).is_empty());
    let seen = std::fs::read_to_string(&marker).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        std::fs::read_to_string(&marker).unwrap(),
        seen,
        "nothing of the killed worker writes any more"
    );
}
