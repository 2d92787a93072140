#!/usr/bin/env bash
# Starts (or reuses) a private PostgreSQL cluster in a directory and prints its DATABASE_URL.
#   scripts/pg.sh start DIR   -> prints postgres://assistd@127.0.0.1:PORT/assistd
#   scripts/pg.sh stop DIR
# With PG_FAST=1 the cluster trades durability for speed (fsync off): for tests only.
# Used by `make test` and `make run` when DATABASE_URL is unset. Runs the server as the
# `postgres` user because postgres refuses to run as root.
set -euo pipefail

cmd=${1:?usage: pg.sh start|stop DIR}
dir=$(realpath -m "${2:?usage: pg.sh start|stop DIR}")

find_bin() {
  local d
  for d in /usr/lib/postgresql/*/bin; do
    [ -x "$d/pg_ctl" ] && { echo "$d"; return; }
  done
  return 1
}

bin=$(find_bin) || {
  echo "pg.sh: installing postgresql" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2 && apt-get install -y -qq postgresql >&2
  bin=$(find_bin)
}

# The server refuses to run as root; it runs as `postgres`, which the package normally creates.
if [ "$(id -u)" = 0 ] && ! id postgres >/dev/null 2>&1; then
  useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres
fi

as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# A checkout under a private home (e.g. /root) is out of the postgres user's reach: keep the
# cluster for such a directory under /var/tmp instead, at a path derived from the one asked for.
if [ "$(id -u)" = 0 ]; then
  mkdir -p "$dir" && chown postgres:postgres "$dir"
  if ! runuser -u postgres -- test -w "$dir" 2>/dev/null; then
    dir="/var/tmp/assistd-pg-$(printf %s "$dir" | sha256sum | cut -c1-16)"
  fi
fi

case "$cmd" in
start)
  mkdir -p "$dir"
  [ "$(id -u)" = 0 ] && chown postgres:postgres "$dir"
  if [ ! -f "$dir/PG_VERSION" ]; then
    as_pg "$bin/initdb" -D "$dir" -U assistd --auth=trust -E UTF8 >/dev/null
  fi
  if ! as_pg "$bin/pg_ctl" -D "$dir" status >/dev/null 2>&1; then
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    echo "$port" > "$dir/assistd.port"
    opts="-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=400"
    if [ "${PG_FAST:-0}" = 1 ]; then
      opts="$opts -c fsync=off -c full_page_writes=off -c synchronous_commit=off"
    fi
    as_pg "$bin/pg_ctl" -D "$dir" -l "$dir/server.log" -w -o "$opts" start >/dev/null
    as_pg "$bin/createdb" -h 127.0.0.1 -p "$port" -U assistd assistd 2>/dev/null || true
  fi
  echo "postgres://assistd@127.0.0.1:$(cat "$dir/assistd.port")/assistd"
  ;;
stop)
  [ -f "$dir/PG_VERSION" ] && as_pg "$bin/pg_ctl" -D "$dir" -m fast stop >/dev/null 2>&1 || true
  ;;
*) echo "usage: pg.sh start|stop DIR" >&2; exit 2 ;;
esac
