//! Reload after a lost mount, and garbage collection.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashSet;

use common::{git, make_repo, sandboxes, tempdir};
use drover_sandbox::{SandboxMode, Sandboxes};

#[tokio::test]
async fn overlay_load_remounts_and_gc_removes_unused_base() {
    let tmp = tempdir();
    let repo = make_repo(tmp.path());
    let Some(s) = sandboxes(&tmp.path().join("home"), SandboxMode::Overlay) else {
        return;
    };
    let r = s.resolve(repo.to_str().unwrap(), "main").await.unwrap();
    let sbs = futures_join_all(&s, &["g1", "g2", "g3"], &r).await;
    let bases: Vec<_> = std::fs::read_dir(s.home().join("bases"))
        .unwrap()
        .flatten()
        .collect();
    assert_eq!(bases.len(), 1, "one base for three sandboxes of one commit");
    assert_eq!(s.mounted_task_ids(), vec!["g1", "g2", "g3"]);

    // Simulate a reboot: the mount is gone, the upper layer stays.
    std::fs::write(sbs[0].path.join("kept.txt"), "kept\n").unwrap();
    nix::mount::umount(&sbs[0].path).unwrap();
    assert_eq!(s.mounted_task_ids(), vec!["g2", "g3"]);
    let loaded = s.load("g1").await.unwrap().unwrap();
    assert_eq!(loaded, sbs[0]);
    assert_eq!(
        std::fs::read_to_string(loaded.path.join("kept.txt")).unwrap(),
        "kept\n"
    );
    assert!(s.load("nope").await.unwrap().is_none());

    // Leftovers of a dead prepare and a dead base build are collected; a used base is kept.
    std::fs::create_dir_all(s.home().join("sandboxes/dead")).unwrap();
    std::fs::create_dir_all(s.home().join("bases/.tmp-k-0000")).unwrap();
    let live: HashSet<String> = ["g2".to_string()].into();
    let report = s.collect_garbage(&live).await;
    assert!(report.removed_bases.is_empty(), "{report:?}");
    assert_eq!(report.removed_leftovers.len(), 2, "{report:?}");
    assert_eq!(report.stale_mounts, vec!["g1", "g3"]);
    assert_eq!(report.orphaned, vec!["g1", "g3"]);

    for sb in &sbs {
        s.finish(sb, "done").await.unwrap();
    }
    let report = s.collect_garbage(&HashSet::new()).await;
    assert_eq!(report.removed_bases.len(), 1, "{report:?}");
    assert_eq!(
        std::fs::read_dir(s.home().join("bases")).unwrap().count(),
        0
    );
    assert_eq!(git(&repo, &["show", "drover/g1:kept.txt"]), "kept");
}

async fn futures_join_all(
    s: &Sandboxes,
    ids: &[&str],
    r: &drover_sandbox::Resolved,
) -> Vec<drover_sandbox::Sandbox> {
    let handles: Vec<_> = ids
        .iter()
        .map(|id| {
            let (s, r, id) = (s.clone(), r.clone(), id.to_string());
            tokio::spawn(async move { s.prepare(&id, &r).await })
        })
        .collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap().unwrap());
    }
    out.sort_by(|a, b| a.task_id.cmp(&b.task_id));
    out
}
