# Start and stop the real servers the tests run against. Sourced by scripts/test.
# PostgreSQL from Debian's packages (initdb refuses root, so it runs as the postgres user).

PG_PORT=${PG_PORT:-54329}

# SeaweedFS for the S3 blob-store tests: start_s3 / stop_s3.
source "$(dirname "${BASH_SOURCE[0]}")/s3.sh"

_pg_bin() {
  local d
  for d in /usr/lib/postgresql/*/bin; do [ -x "$d/initdb" ] && { echo "$d"; return; }; done
}

_apt_install() {
  # Debian packages the tests need; installed once, skipped when present.
  local missing=()
  [ -n "$(_pg_bin)" ] || missing+=(postgresql)
  [ -x /usr/bin/chromium ] || missing+=(chromium)
  ((${#missing[@]})) || return 0
  if [ "$(id -u)" != 0 ]; then
    echo "warning: not root, cannot install ${missing[*]}; their tests will be skipped"
    return 0
  fi
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      "${missing[@]}" >/dev/null) || echo "warning: could not install ${missing[*]}; their tests will be skipped"
}

start_services() {
  _apt_install
  start_s3
  local bin; bin=$(_pg_bin)
  if [ -z "$bin" ]; then
    echo "warning: no PostgreSQL found; PostgreSQL tests will be skipped"
    return 0
  fi
  PG_DIR=$(mktemp -d /tmp/opencomfy-pg.XXXXXX)
  chown postgres:postgres "$PG_DIR" 2>/dev/null || true
  local run=(); [ "$(id -u)" = 0 ] && run=(runuser -u postgres --)
  "${run[@]}" "$bin/initdb" -D "$PG_DIR/data" -A trust -U postgres --no-sync -E UTF8 >/dev/null
  "${run[@]}" "$bin/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/log" -w start \
    -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -k $PG_DIR -c fsync=off -c synchronous_commit=off -c max_connections=300" >/dev/null
  export OPENCOMFY_TEST_POSTGRES="postgresql+asyncpg://postgres@127.0.0.1:$PG_PORT"
  export PG_DIR PG_BIN="$bin"
}

stop_services() {
  stop_s3
  if [ -n "${PG_DIR:-}" ]; then
    local run=(); [ "$(id -u)" = 0 ] && run=(runuser -u postgres --)
    "${run[@]}" "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$PG_DIR"
  fi
}
