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

# Starts a throwaway PostgreSQL cluster for the tests (never a system service): Debian's server
# binaries (installed when missing, with service start-up disabled), `initdb` in a temp folder as
# the `postgres` (or `nobody`) user, `pg_ctl start` on a free port. Exports
# DROVER_TEST_DATABASE_URL (its `postgres` database; tests make their own databases from it) and
# DROVER_TEST_PG_BIN; the cluster stops and its folder goes when the calling shell exits.
start_postgres() {
  local bin
  bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
  if [ -z "$bin" ] || [ ! -x "$bin/initdb" ]; then
    echo "== installing Debian's PostgreSQL server binaries (no cluster is created or started)"
    local had_policy=0
    [ -e /usr/sbin/policy-rc.d ] && had_policy=1
    [ "$had_policy" = 1 ] || printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    mkdir -p /etc/postgresql-common
    [ -e /etc/postgresql-common/createcluster.conf ] ||
      echo "create_main_cluster = false" >/etc/postgresql-common/createcluster.conf
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >&2
    [ "$had_policy" = 1 ] || rm -f /usr/sbin/policy-rc.d
    bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
  fi
  local user=postgres
  id "$user" >/dev/null 2>&1 || user=nobody
  PG_DIR=$(mktemp -d /tmp/drover-pg.XXXXXX)
  chown "$user" "$PG_DIR"
  local as=(runuser -u "$user" --)
  [ "$(id -u)" = 0 ] || as=()
  "${as[@]}" "$bin/initdb" -D "$PG_DIR/data" -U postgres --auth=trust -E UTF8 --no-sync >"$PG_DIR/initdb.log" 2>&1 ||
    { cat "$PG_DIR/initdb.log" >&2; return 1; }
  # Reachable from 127.0.0.1 and from the tests' own network namespaces (10.0.0.0/8) only.
  cat >"$PG_DIR/data/pg_hba.conf" <<HBA
local all all trust
host all all 127.0.0.1/32 trust
host all all 10.0.0.0/8 trust
HBA
  local port tries=0
  while :; do
    port=$((20000 + RANDOM % 30000))
    if "${as[@]}" "$bin/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w -t 60 \
      -o "-p $port -k $PG_DIR -c listen_addresses=* -c max_connections=500 -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
      start >/dev/null; then
      break
    fi
    tries=$((tries + 1))
    [ "$tries" -lt 5 ] || { cat "$PG_DIR/server.log" >&2; return 1; }
  done
  trap 'stop_postgres' EXIT
  export DROVER_TEST_DATABASE_URL="postgres://postgres@127.0.0.1:$port/postgres"
  export DROVER_TEST_PG_BIN="$bin"
  echo "== PostgreSQL $("$bin/postgres" --version | awk '{print $3}') for the tests: $DROVER_TEST_DATABASE_URL ($PG_DIR)"
}

stop_postgres() {
  [ -n "${PG_DIR:-}" ] && [ -d "$PG_DIR" ] || return 0
  local user=postgres
  id "$user" >/dev/null 2>&1 || user=nobody
  local as=(runuser -u "$user" --)
  [ "$(id -u)" = 0 ] || as=()
  "${as[@]}" "$DROVER_TEST_PG_BIN/pg_ctl" -D "$PG_DIR/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$PG_DIR"
}

# Installs Debian's `chromium` and `chromium-driver` when missing (the dashboard's browser tests
# drive them over WebDriver; nothing else is downloaded) and prints their versions.
install_chromium() {
  if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
    echo "== installing Debian's chromium and chromium-driver (the dashboard's browser tests)"
    if [ "$(id -u)" != 0 ]; then
      echo "scripts/test.sh: chromium and chromium-driver are missing and only root can install them: apt-get install -y chromium chromium-driver" >&2
      return 1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver >&2 || {
      echo "== apt-get install failed; updating the package lists and trying again"
      apt-get update -q >&2
      DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver >&2
    }
  fi
  echo "== $(chromium --version 2>/dev/null | head -1); $(chromedriver --version | head -1)"
}
