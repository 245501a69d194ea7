//! The browser harness itself: Debian's Chromium under chromedriver opens a page, finds, clicks
//! and reads elements, runs a script and saves a screenshot.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use drover_test_support::browser::{artifacts_dir, Browser};
use std::time::Duration;

#[test]
fn chromium_opens_a_page_clicks_reads_and_takes_a_screenshot() {
    let b = Browser::start();
    let page = "<!doctype html><title>t</title><h1 id=h>harness</h1>\
                <button id=b onclick=\"document.getElementById('out').textContent='clicked'\">go</button>\
                <p id=out></p>";
    b.goto(&format!("data:text/html,{}", urlencode(page)));
    assert_eq!(b.text("#h"), "harness");
    b.click("#b");
    b.wait_text("#out", Duration::from_secs(10), |t| t == "clicked");
    assert_eq!(b.count("h1, button"), 2);
    let v = b.eval("return 6 * 7;", vec![]);
    assert_eq!(v, serde_json::json!(42));
    let png = b.screenshot("harness-smoke");
    assert!(png.starts_with(artifacts_dir()));
    let bytes = std::fs::read(&png).unwrap();
    assert!(bytes.len() > 1000, "a real PNG: {} bytes", bytes.len());
    b.close();
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|c| match c {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (c as char).to_string()
            }
            _ => format!("%{c:02X}"),
        })
        .collect()
}
