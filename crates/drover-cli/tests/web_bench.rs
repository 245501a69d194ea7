//! Benchmark of the dashboard in a real browser (ignored by default; `scripts/bench-web.sh`
//! runs it and prints the figures):
//! - the fleet page with 100 tasks: first contentful paint and the time until the cards are on
//!   the page (`performance.mark('drover:fleet-cards')` in fleet.js), from navigation start;
//! - a task of 10,000 events (a command printing 10,000 lines): the time from navigation until
//!   the newest transcript rows are shown (`drover:transcript` in task.js).
//!
//! Each figure is the median of [`LOADS`] loads, each in a fresh browser.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod common;
use common::*;
use drover_test_support::browser::Browser;
use serde_json::Value;
use std::time::{Duration, Instant};

const TASKS: usize = 100;
const LINES: usize = 10_000;
const LOADS: usize = 5;
const LIVE: Duration = Duration::from_secs(120);

/// Opens `url` as a new document and waits for the page's `mark`; returns (first contentful
/// paint, the mark), in ms from navigation start.
fn load(b: &Browser, url: &str, mark: &str) -> (f64, f64) {
    b.goto(url);
    let v = b.wait_until(
        &format!("the {mark} mark"),
        LIVE,
        "const m = performance.getEntriesByName(arguments[0]); \
         const p = performance.getEntriesByName('first-contentful-paint'); \
         return m.length ? [p.length ? p[0].startTime : -1, m[0].startTime] : null;",
        vec![Value::String(mark.into())],
    );
    (v[0].as_f64().unwrap(), v[1].as_f64().unwrap())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

#[test]
#[ignore = "a benchmark: scripts/bench-web.sh runs it"]
fn web_bench() {
    let env = Env::new();
    let started = Instant::now();
    let big = env.run_command_task(
        &format!("seq 1 {LINES} | sed 's/^/line /'"),
        "ten thousand lines",
    );
    let mut ids = vec![big.clone()];
    for i in 1..TASKS {
        ids.push(env.run_command_task("echo done", &format!("task {i}")));
    }
    for id in &ids {
        let t = env.wait(id);
        assert_eq!(t["state"], "succeeded", "{t:#}");
    }
    eprintln!("fleet of {TASKS} tasks ready in {:.1?}", started.elapsed());

    // Each load is a fresh browser (own profile, cold cache) opening a one-time URL: the
    // login's redirect keeps the URL's fragment, so `URL#/task/ID` lands on the task page.
    let fresh = |fragment: &str, mark: &str| -> (f64, f64, Browser) {
        let url = env.ok(&["web"]);
        let b = Browser::start();
        let (p, m) = load(&b, &format!("{url}{fragment}"), mark);
        (p, m, b)
    };

    // The fleet page.
    let mut fcp = vec![];
    let mut cards = vec![];
    for i in 0..LOADS {
        let (p, c, b) = fresh("", "drover:fleet-cards");
        let n = b.count("#fleet a.card");
        assert!(n >= TASKS, "{n} cards shown");
        fcp.push(p);
        cards.push(c);
        if i == 0 {
            b.screenshot("bench-fleet-100");
        }
        b.close();
    }

    // The 10,000-event task.
    let mut transcript = vec![];
    let mut rows = 0;
    for i in 0..LOADS {
        let (_, t, b) = fresh(&format!("#/task/{big}"), "drover:transcript");
        rows = b.count("#transcript .ev");
        let text = b.text("#transcript");
        assert!(
            text.contains(&format!("line {LINES}")),
            "the newest rows are shown"
        );
        transcript.push(t);
        if i == 0 {
            b.screenshot("bench-task-10000");
        }
        b.close();
    }

    println!("== drover web benchmark (headless Chromium, each load a fresh browser through a one-time URL; median of {LOADS})");
    println!("fleet page, {TASKS} tasks: first contentful paint {:.0} ms, cards shown {:.0} ms (from navigation start, login redirect included)", median(fcp), median(cards));
    println!("task page, {LINES}-line task ({rows} rows shown of its events): newest transcript rows shown {:.0} ms after navigation", median(transcript));
}
