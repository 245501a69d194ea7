#!/usr/bin/env bash
# The dashboard's browser benchmark (crates/drover-cli/tests/web_bench.rs, an ignored test): the
# fleet page with 100 tasks (first contentful paint, cards shown) and a 10,000-event task page
# (newest transcript rows shown), in Debian's headless Chromium (installed with apt when missing).
# Prints the figures; screenshots go to target/test-artifacts/web/. BENCH_RELEASE=1: a release build.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
install_chromium
cargo test -p drover-cli --test web_bench ${BENCH_RELEASE:+--release} -- --ignored --nocapture --test-threads=1 "$@"
