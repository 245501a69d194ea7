//! The dashboard's Pools and batches view and Cost view in a real browser (headless Chromium,
//! `drover_test_support::browser`): a small fleet with a pool and a team budget, logged in with
//! `drover web`'s URL; the numbers on the pages are checked against the API; screenshots go to
//! `target/test-artifacts/web/`.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;
use common::*;
use drover_test_support::browser::Browser;
use serde_json::Value;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

fn api(env: &Env, path: &str) -> Value {
    let (status, body) = drover_test_support::http::json(&env.sock(), "GET", path, "");
    assert_eq!(status, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap()
}

#[test]
fn pools_and_cost_views_show_what_the_api_says() {
    let env = Env::new();
    env.ok(&[
        "pool",
        "start",
        "p1",
        "--slots",
        "2",
        "--count",
        "3",
        "--prompt",
        "work {n}",
        "--agent",
        "command",
        "--cmd",
        "echo done",
    ]);
    env.ok(&["team", "create", "t1", "--max-usd-per-day", "5"]);
    let pool = drover_test_support::poll::until(
        "the pool's 3 tasks succeed",
        Duration::from_secs(120),
        Duration::from_millis(100),
        || api(&env, "/v1/pools/p1"),
        |p: &Value| p["successes"] == 3 && p["running"] == 0 && p["state"] == "done",
    );
    let url = env.ok(&["web"]);
    let origin = url.split("/login").next().unwrap().to_string();

    let b = Browser::start();
    b.goto(&url);
    // The token left the address bar: the dashboard itself.
    b.wait_until(
        "the redirect to /",
        WAIT,
        "return !location.search.includes('token');",
        vec![],
    );
    assert!(!b.url().contains("token="), "{}", b.url());

    // Pools and batches.
    b.goto(&format!("{origin}/#/pools"));
    let row = "table.pools tr[data-pool='p1']";
    b.wait_for(&format!("{row} td.successes"), WAIT);
    assert_eq!(b.text(&format!("{row} td.name")), "p1");
    assert_eq!(
        b.text(&format!("{row} td.successes")),
        pool["successes"].to_string()
    );
    assert_eq!(
        b.text(&format!("{row} td.failures")),
        pool["failures"].to_string()
    );
    assert_eq!(
        b.text(&format!("{row} td.slots")),
        pool["slots"].to_string()
    );
    assert_eq!(
        b.text(&format!("{row} td.running")),
        pool["running"].to_string()
    );
    assert_eq!(
        b.text(&format!("{row} td.state")),
        pool["state"].as_str().unwrap()
    );
    // A pool that reached its count has nothing to stop or resume.
    assert_eq!(b.count(&format!("{row} button")), 0);
    b.wait_text("p.empty", WAIT, |t| t == "No batches.");
    b.screenshot("views-pools");

    // Cost: the team's budget burn-down against the API's figures.
    b.goto(&format!("{origin}/#/cost"));
    let team = "table.team-budgets tr[data-team='t1']";
    b.wait_for(&format!("{team} td.max"), WAIT);
    let budgets = api(&env, "/v1/budgets");
    let t1 = budgets["teams"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["team"] == "t1")
        .unwrap();
    assert_eq!(t1["max_usd_per_day"], 5.0);
    assert_eq!(b.text(&format!("{team} td.max")), "$5.00");
    assert_eq!(
        b.text(&format!("{team} td.spent")),
        format!("${:.4}", t1["spent_today_usd"].as_f64().unwrap())
    );
    assert_eq!(b.count(&format!("{team} svg.budget rect.spent")), 1);
    // One column per hour of today so far, as the API counts them.
    let hours = t1["hourly_usd"].as_array().unwrap().len();
    assert_eq!(b.count(&format!("{team} svg.hours rect")), hours);
    // Usage sections for each grouping; command agents meter nothing, and the page says so.
    for by in ["day", "model", "team", "pool"] {
        let lines = api(&env, &format!("/v1/usage?by={by}"));
        let section = format!("section.usage[data-by='{by}']");
        b.wait_for(&section, WAIT);
        let bars = b.count(&format!("{section} svg.bars g.bar"));
        // Two charts (dollars, tokens) per grouping, one bar per line.
        assert_eq!(bars, 2 * lines.as_array().unwrap().len(), "{by}: {lines}");
    }
    b.screenshot("views-cost");
    // The charts' own drawing (no usage to show above): bar lengths are proportional to the
    // values, a zero draws nothing, the caption is the text given.
    let drawn = b.eval_async(
        "const done = arguments[arguments.length - 1];\
         import('/ui/cost.js').then((m) => {\
           const s = m.bars([['a', 2, '$2.00'], ['b', 1, '$1.00'], ['c', 0, '$0.00']]);\
           done({widths: [...s.querySelectorAll('rect')].map((r) => Number(r.getAttribute('width'))),\
                 captions: [...s.querySelectorAll('text.value')].map((t) => t.textContent)});\
         });",
        vec![],
    );
    let w: Vec<f64> = drawn["widths"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert_eq!(w.len(), 3, "{drawn}");
    assert!(
        w[0] > 0.0 && (w[0] - 2.0 * w[1]).abs() < 0.01 && w[2] == 0.0,
        "{drawn}"
    );
    assert_eq!(
        drawn["captions"],
        serde_json::json!(["$2.00", "$1.00", "$0.00"])
    );
    b.close();
}
