# Shared by scripts/*.sh. Pinned versions and the cache they install into.
CLAUDE_VERSION=2.1.328
DROVER_CACHE=${DROVER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/drover}

# Installs @anthropic-ai/claude-code@$CLAUDE_VERSION into the cache (once) and sets DROVER_CLAUDE_BIN.
install_claude() {
  local dir="$DROVER_CACHE/claude-code-$CLAUDE_VERSION"
  DROVER_CLAUDE_BIN="$dir/node_modules/.bin/claude"
  if ! "$DROVER_CLAUDE_BIN" --version >/dev/null 2>&1; then
    echo "== installing @anthropic-ai/claude-code@$CLAUDE_VERSION into $dir"
    mkdir -p "$dir"
    npm install --prefix "$dir" --no-audit --no-fund --loglevel=error \
      "@anthropic-ai/claude-code@$CLAUDE_VERSION" >&2
  fi
  "$DROVER_CLAUDE_BIN" --version >/dev/null
}

CODEX_VERSION=0.169.0

# Installs @openai/codex@$CODEX_VERSION into the cache (once) and sets DROVER_CODEX_BIN.
install_codex() {
  local dir="$DROVER_CACHE/codex-$CODEX_VERSION"
  DROVER_CODEX_BIN="$dir/node_modules/.bin/codex"
  if ! "$DROVER_CODEX_BIN" --version >/dev/null 2>&1; then
    echo "== installing @openai/codex@$CODEX_VERSION into $dir"
    mkdir -p "$dir"
    npm install --prefix "$dir" --no-audit --no-fund --loglevel=error \
      "@openai/codex@$CODEX_VERSION" >&2
  fi
  "$DROVER_CODEX_BIN" --version >/dev/null
}
