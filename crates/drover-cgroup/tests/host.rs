//! The host's real cgroups (v1 on the CI machine): a group is made, limits hold, a process that
//! left its session is killed with the group, the group is removed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use drover_cgroup::{Cgroups, Controller};
use drover_types::Limits;
use std::os::unix::process::CommandExt;
use std::time::Duration;

fn cgroups() -> Option<Cgroups> {
    let home = tempfile::tempdir().unwrap();
    let cg = Cgroups::discover(home.path());
    let probe = cg.probe();
    if probe.missing.is_empty() {
        Some(cg)
    } else {
        println!("SKIPPED: cgroups unavailable here: {:?}", probe.remedy);
        None
    }
}

#[test]
fn a_group_limits_measures_and_ends_everything_in_it() {
    let Some(cg) = cgroups() else { return };
    let id = format!("host-test-{}", std::process::id());
    let limits = Limits {
        memory_bytes: Some(64 << 20),
        cpus: Some(0.5),
        pids: Some(8),
    };
    let g = cg.create(&id, &limits).unwrap().unwrap();
    // A failed assertion leaves nothing behind on the host either.
    struct Cleanup(drover_cgroup::TaskGroup);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            self.0.kill(Duration::from_secs(5));
            let _ = self.0.remove();
        }
    }
    let _cleanup = Cleanup(g.clone());
    assert_eq!(g.controllers().len(), Controller::ALL.len());
    let procs = g.procs_files();
    let files = procs.clone();
    // A shell that forks past pids.max, and a setsid'd sleeper that ignores TERM.
    let mut cmd = std::process::Command::new("sh");
    cmd.arg("-c").arg(
        "trap '' TERM; setsid sleep 300 & i=0; while [ $i -lt 20 ]; do sleep 300 & i=$((i+1)); done; \
         echo forked; sleep 300",
    );
    // SAFETY: only write(2) on already-formatted paths in the child before exec.
    unsafe {
        cmd.pre_exec(move || {
            for f in &files {
                std::fs::write(f, "0")?;
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().unwrap();
    // pids.current counts every process and thread charged to the group (also one still
    // being forked or reaped): it reaches the limit and stays there.
    let current = procs
        .iter()
        .map(|p| p.with_file_name("pids.current"))
        .find(|p| p.exists())
        .expect("a pids.current file");
    let read = || {
        std::fs::read_to_string(&current)
            .unwrap()
            .trim()
            .to_string()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while read() != "8" && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(read(), "8", "pids.max 8 should cap the group at 8");
    assert!(g.pids().len() <= 8, "{:?}", g.pids());
    assert!(g.kill(Duration::from_secs(5)), "left: {:?}", g.pids());
    child.wait().unwrap();
    let s = g.stats();
    assert!(s.peak_memory_bytes.unwrap() > 0);
    assert!(s.cpu_seconds.is_some());
    assert_eq!(s.oom_kills, 0);
    g.remove().unwrap();
    assert!(!g.exists());
}
