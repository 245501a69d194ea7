//! The web dashboard in a real browser (Debian's headless Chromium over chromedriver,
//! `drover_test_support::browser`): a small fleet — command tasks that succeed, fail (printing
//! markup that must stay text) and run slowly printing lines, a Claude task on the fake provider
//! that asks for a permission — opened through the one-time URL `drover web` prints. The fleet's
//! five columns and their counts match `GET /v1/tasks`; a running task's transcript grows live and
//! its diff shows; Allow on the permission request lets the task go on to succeed; nothing the
//! agents printed runs. Screenshots of each step go to `target/test-artifacts/web/`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod common;
use common::*;
use drover_test_support::browser::Browser;
use drover_types::web::FleetGroup;
use drover_types::TaskState;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::Duration;

const PERM_CMD: &str = "python3 -c \"open('perm.txt','w').write('allowed\\n')\"";
const LIVE: Duration = Duration::from_secs(60);

fn scenarios() -> Value {
    json!({ "scenarios": [
        { "name": "perm", "match": "NEEDS-BASH", "turns": [
            { "content": [ {"type": "tool_use", "name": "Bash",
                            "input": {"command": PERM_CMD, "description": "write a file"}} ] },
            { "content": [ {"type": "text", "text": "bash ran"} ] } ] },
        { "name": "default", "turns": [ { "content": [ {"type": "text", "text": "hello"} ] } ] }
    ]})
}

/// Each fleet group's count as `GET /v1/tasks` gives the tasks.
fn expected_counts(env: &Env) -> BTreeMap<&'static str, usize> {
    let (status, body) = api_json(env, "GET", "/v1/tasks?all=true&limit=500", "");
    assert_eq!(status, 200, "{body}");
    let page: Value = serde_json::from_str(&body).unwrap();
    let mut counts: BTreeMap<&'static str, usize> =
        FleetGroup::ALL.iter().map(|g| (g.as_str(), 0)).collect();
    for t in page["tasks"].as_array().unwrap() {
        let state: TaskState = serde_json::from_value(t["state"].clone()).unwrap();
        *counts.get_mut(FleetGroup::of(state).as_str()).unwrap() += 1;
    }
    counts
}

/// The counts the page shows now.
fn shown_counts(b: &Browser) -> BTreeMap<&'static str, usize> {
    FleetGroup::ALL
        .iter()
        .map(|g| {
            let t = b.text(&format!("[data-count={}]", g.as_str()));
            (g.as_str(), t.trim().parse().unwrap_or(usize::MAX))
        })
        .collect()
}

/// The highest `tick N` line in the transcript now (0: none yet).
fn highest_tick(b: &Browser) -> u64 {
    b.eval(
        "let n = 0; for (const e of document.querySelectorAll('#transcript .ev-text')) { \
           const m = /^tick (\\d+)$/.exec(e.textContent.trim()); if (m) n = Math.max(n, +m[1]); } \
         return n;",
        vec![],
    )
    .as_u64()
    .unwrap_or(0)
}

fn no_script_ran(b: &Browser) {
    let ran = b.eval(
        "return window.__xss === undefined ? null : String(window.__xss);",
        vec![],
    );
    assert!(ran.is_null(), "an agent's markup ran in the page: {ran}");
}

#[test]
fn the_dashboard_shows_the_fleet_live_opens_tasks_and_answers_a_permission_request() {
    let provider = Provider::start(scenarios());
    let env = Env::claude(&provider);

    // The fleet: one success, one failure printing markup, one slow task, one asking.
    let ok = env.ok(&[
        "run",
        "--agent",
        "command",
        "--name",
        "fine",
        "--cmd",
        "echo all good",
        "ok",
    ]);
    let xss = env.ok(&[
        "run",
        "--agent",
        "command",
        "--name",
        "xss",
        "--cmd",
        "echo '<img src=x onerror=\"window.__xss=1\">'; echo '<script>window.__xss=2</script>'; exit 3",
        "markup",
    ]);
    let slow = env.ok(&[
        "run",
        "--agent",
        "command",
        "--name",
        "slow",
        "--cmd",
        "echo 'changed by the agent' > changed.txt; i=0; while [ ! -e go ]; do i=$((i+1)); echo \"tick $i\"; sleep 0.3; done; echo finished",
        "slow",
    ]);
    let asks = env.ok(&["run", "--name", "asks", "NEEDS-BASH: run a command"]);
    assert_eq!(env.wait(&ok)["state"], "succeeded");
    assert_eq!(env.wait(&xss)["state"], "failed");
    let running = env.until(&slow, "slow running", |t| t["state"] == "running");
    let sandbox = std::path::PathBuf::from(running["sandbox"].as_str().unwrap());
    env.until(&asks, "needs_input", |t| t["state"] == "needs_input");

    // Signed in through the one-time URL `drover web` prints.
    let url = env.ok(&["web"]);
    assert!(
        url.starts_with("http://127.0.0.1:") || url.starts_with("http://localhost:"),
        "{url}"
    );
    let b = Browser::start();
    b.goto(&url);
    b.wait_for("#fleet a.card", LIVE);
    assert!(
        !b.url().contains("token"),
        "the login token left the address bar: {}",
        b.url()
    );

    // Five columns, their counts those of GET /v1/tasks (the page is live: wait for them).
    let want = expected_counts(&env);
    assert_eq!(want["needs_input"], 1, "{want:?}");
    assert_eq!(want["working"], 1, "{want:?}");
    assert_eq!(want["completed"], 1, "{want:?}");
    assert_eq!(want["failed"], 1, "{want:?}");
    drover_test_support::poll::poll("the page's counts to match the API", LIVE, || {
        shown_counts(&b) == want
    });
    for g in FleetGroup::ALL {
        assert_eq!(b.count(&format!("[data-group={}]", g.as_str())), 1);
    }
    for (id, group) in [
        (&ok, "completed"),
        (&xss, "failed"),
        (&slow, "working"),
        (&asks, "needs_input"),
    ] {
        let css = format!("[data-group={group}] a.card[data-id=\"{id}\"]");
        b.wait_for(&css, LIVE);
    }
    // The asking task stands out; names, agents and the last line are on the cards.
    b.wait_for(&format!("a.card.needs-input[data-id=\"{asks}\"]"), LIVE);
    assert!(b
        .text(&format!("a.card[data-id=\"{ok}\"]"))
        .contains("fine"));
    assert!(b
        .text(&format!("a.card[data-id=\"{asks}\"]"))
        .contains("claude"));
    // Markup an agent printed is text: no element made of it, nothing ran.
    b.wait_text(
        &format!("a.card[data-id=\"{xss}\"] .last-line"),
        LIVE,
        |t| t.contains("<script>") || t.contains("<img"),
    );
    assert_eq!(b.count("#fleet img, #fleet script"), 0);
    no_script_ran(&b);
    b.screenshot("dashboard-1-fleet");

    // A running task: its transcript grows while the page is open.
    b.click(&format!("a.card[data-id=\"{slow}\"]"));
    b.wait_for("#transcript .ev-text", LIVE);
    b.wait_text("#task-state", LIVE, |t| t.contains("running"));
    let seen = highest_tick(&b);
    assert!(seen > 0);
    drover_test_support::poll::poll("a line printed after the page opened", LIVE, || {
        highest_tick(&b) > seen + 2
    });
    b.screenshot("dashboard-2-live-transcript");

    // Its diff: the file it wrote, the patch loaded when opened.
    b.click("#tab-diff");
    b.wait_for("#diff-summary", LIVE);
    let file = "details.file[data-path=\"changed.txt\"]";
    b.click(&format!("{file} > summary"));
    b.wait_text(&format!("{file} pre.diff"), LIVE, |t| {
        t.contains("+changed by the agent")
    });
    assert!(b.count(&format!("{file} pre.diff .line.add")) >= 1);
    b.screenshot("dashboard-3-diff");
    std::fs::write(sandbox.join("go"), "").unwrap();

    // The failed task's page: its markup is text there too.
    b.eval(
        "location.hash = arguments[0];",
        vec![json!(format!("#/task/{xss}"))],
    );
    b.wait_text("#transcript", LIVE, |t| {
        t.contains("<script>window.__xss=2</script>")
    });
    b.wait_for("#task-outcome", LIVE);
    assert_eq!(b.count("#transcript img, #transcript script"), 0);
    no_script_ran(&b);
    b.screenshot("dashboard-4-failed-task");

    // The asking task: Allow from the page, and it goes on.
    b.eval(
        "location.hash = arguments[0];",
        vec![json!(format!("#/task/{asks}"))],
    );
    b.wait_for("#pending-input", LIVE);
    assert!(b.text("#pending-input").contains("Bash"));
    b.screenshot("dashboard-5-needs-input");
    b.click("#allow");
    b.wait_text("#task-state", LIVE, |t| !t.contains("needs input"));
    b.wait_text("#task-state", LIVE, |t| t.contains("succeeded"));
    b.wait_text("#transcript", LIVE, |t| t.contains("bash ran"));
    let t = env.wait(&asks);
    assert_eq!(t["state"], "succeeded", "{t:#}");
    assert_eq!(t["result"], "bash ran");
    let evs = env.events(&asks);
    assert!(
        evs.iter()
            .any(|e| e["kind"] == "input" && e["data"]["behavior"] == "allow"),
        "{evs:#?}"
    );
    b.screenshot("dashboard-6-allowed");

    // Back on the fleet: the columns follow.
    assert_eq!(env.wait(&slow)["state"], "succeeded");
    b.eval("location.hash = '#/';", vec![]);
    let want = expected_counts(&env);
    assert_eq!(want["completed"], 3, "{want:?}");
    drover_test_support::poll::poll("the fleet after the tasks ended", LIVE, || {
        shown_counts(&b) == want
    });
    no_script_ran(&b);
    b.screenshot("dashboard-7-fleet-after");
    b.close();
}

/// The harness against the daemon's own web listener: `drover web`'s one-time URL signs the
/// browser in and the page shell (header, navigation, the view) loads from the binary.
#[test]
fn the_page_shell_loads_from_the_web_listener_through_drover_web() {
    let env = Env::new();
    let url = env.ok(&["web"]);
    let b = Browser::start();
    b.goto(&url);
    b.wait_for("header nav a[data-nav=fleet]", LIVE);
    b.wait_for("main#view", LIVE);
    assert!(!b.url().contains("token"), "{}", b.url());
    assert_eq!(b.eval("return document.title;", vec![]), json!("drover"));
    // The fleet view's columns are drawn (their data comes live afterwards).
    b.wait_for("[data-group=needs_input]", LIVE);
    assert_eq!(b.count("[data-group]"), 5);
    b.screenshot("shell");
    b.close();
}
