#!/usr/bin/env bash
# The whole test suite, on a fresh machine: installs the pinned Claude Code and Codex CLIs into a
# cache folder, then runs formatting, lints and every test (real git, real SQLite, a throwaway PostgreSQL, real processes,
# real Claude Code and Codex against drover's fake provider, the TypeScript client against a real
# daemon, the web dashboard in Debian's headless Chromium). Needs: Rust toolchain, git, Node/npm;
# installs postgresql, chromium and chromium-driver with apt when missing. Run as root (overlay mounts).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

install_claude
export DROVER_CLAUDE_BIN
echo "== claude: $DROVER_CLAUDE_BIN ($("$DROVER_CLAUDE_BIN" --version))"
install_codex
export DROVER_CODEX_BIN
echo "== codex: $DROVER_CODEX_BIN ($("$DROVER_CODEX_BIN" --version))"

echo "== npm ci in clients/typescript (the TypeScript client's pinned typescript, openapi-typescript; its tests run in typescript_client.rs)"
(cd clients/typescript && npm ci --no-audit --no-fund --prefer-offline --loglevel=error --progress=true)
start_postgres
install_chromium
echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== module cycles (scripts/module-cycles.sh; its self-test first)"
scripts/module-cycles.sh --self-test
scripts/module-cycles.sh
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
# One build, every test binary at once: cargo-nextest runs each test in its own process across
# both cores (the suite's long tests are waits on real agents, not CPU). Without nextest the same
# tests run under `cargo test`, slower.
if cargo nextest --version >/dev/null 2>&1; then
  echo "== cargo nextest run (every test; .config/nextest.toml kills any test past its deadline)"
  cargo nextest run --workspace --locked --no-fail-fast "$@"
  echo "== cargo test --doc"
  cargo test --workspace --locked --doc
else
  echo "== cargo test (cargo-nextest not found: \`cargo install cargo-nextest --locked\` runs the suite faster)"
  cargo test --workspace --locked -- "$@"
fi
