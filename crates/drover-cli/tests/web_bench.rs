//! Benchmark of the dashboard in a real browser (ignored by default; `scripts/bench-web.sh`
//! runs it and prints the figures):
//! - the fleet page with 100 tasks: first contentful paint and the time until the cards are on
//!   the page (`performance.mark('drover:fleet-cards')` in fleet.js), from navigation start;
//! - a task of 10,000 events (a command printing 10,000 lines): the time from navigation until
//!   the newest transcript rows are shown (`drover:transcript` in task.js).
//!
//! Each figure is the median of [`LOADS`] fresh page loads (the first, cold, is printed apart).
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

fn origin(url: &str) -> String {
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    let host = rest.split('/').next().unwrap_or(rest);
    format!("{}://{host}", url.split("://").next().unwrap_or("http"))
}

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

    let url = env.ok(&["web"]);
    let base = origin(&url);
    let b = Browser::start();
    b.goto(&url);
    b.wait_for("#fleet a.card", LIVE);

    // The fleet page.
    let mut fcp = vec![];
    let mut cards = vec![];
    let mut cold = None;
    for i in 0..=LOADS {
        let (p, c) = load(&b, &format!("{base}/?load={i}"), "drover:fleet-cards");
        let n = b.count("#fleet a.card");
        assert!(n >= TASKS, "{n} cards shown");
        if i == 0 {
            cold = Some((p, c));
        } else {
            fcp.push(p);
            cards.push(c);
        }
    }
    b.screenshot("bench-fleet-100");
    let (cold_p, cold_c) = cold.unwrap();

    // The 10,000-event task.
    let mut transcript = vec![];
    let mut rows = 0;
    for i in 0..=LOADS {
        let (_, t) = load(
            &b,
            &format!("{base}/?load=t{i}#/task/{big}"),
            "drover:transcript",
        );
        rows = b.count("#transcript .ev");
        let last = b.text("#transcript .ev:last-child");
        assert!(
            last.contains(&format!("line {LINES}")) || last.contains("succeeded"),
            "the newest rows are shown: {last}"
        );
        if i > 0 {
            transcript.push(t);
        }
    }
    b.screenshot("bench-task-10000");
    b.close();

    println!(
        "== drover web benchmark (headless Chromium, median of {LOADS} loads after a cold one)"
    );
    println!("fleet page, {TASKS} tasks: first contentful paint {:.0} ms, cards shown {:.0} ms (cold: {cold_p:.0} / {cold_c:.0} ms)", median(fcp), median(cards));
    println!("task page, {LINES}-line task ({rows} rows shown of its events): newest transcript rows shown {:.0} ms after navigation", median(transcript));
}
