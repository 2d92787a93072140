#!/usr/bin/env bash
# Starts (or reuses) a private S3-compatible server over a directory and prints its endpoint URL,
# for the tests of ASSISTD_BLOB_URL=s3://... (the s3s project's `s3s-fs`, a real S3 server).
#   scripts/s3-server.sh start DIR   -> prints http://127.0.0.1:PORT
#   scripts/s3-server.sh stop DIR
#   scripts/s3-server.sh install     -> installs s3s-fs if missing, prints the binary's path
# Objects live under DIR/data/BUCKET/KEY; the bucket `assistd-test` exists from the start.
# Keys: access `assistd-test`, secret `assistd-test-secret`; any region is accepted.
# s3s-fs is built with `cargo install --locked --debug` into ASSISTD_TOOLS_DIR (default
# ~/.cache/assistd), where later runs find it: about 170 s of CPU (a release build takes 285 s,
# and the tests move too few bytes for its speed to matter).
set -euo pipefail

S3S_FS_VERSION=0.14.1 # later releases need a newer Rust than the toolchain here
ACCESS_KEY=assistd-test
SECRET_KEY=assistd-test-secret
BUCKET=assistd-test

tools=${ASSISTD_TOOLS_DIR:-$HOME/.cache/assistd}
root="$tools/s3s-fs-$S3S_FS_VERSION-debug"
bin="$root/bin/s3s-fs"

install() {
  [ -x "$bin" ] && return
  echo "s3-server.sh: installing s3s-fs $S3S_FS_VERSION into $root (takes a few minutes)" >&2
  local started=$SECONDS
  cargo install --quiet --locked --debug s3s-fs --version "$S3S_FS_VERSION" --features binary \
    --root "$root" >&2
  echo "s3-server.sh: s3s-fs installed in $((SECONDS - started)) s" >&2
}

alive() {
  [ -f "$1/pid" ] && kill -0 "$(cat "$1/pid")" 2>/dev/null
}

cmd=${1:?usage: s3-server.sh start|stop DIR | install}
case "$cmd" in
install)
  install
  echo "$bin"
  ;;
start)
  dir=$(realpath -m "${2:?usage: s3-server.sh start DIR}")
  install
  mkdir -p "$dir/data/$BUCKET"
  if ! alive "$dir"; then
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    # setsid: the server outlives this script (and `make`), like the Postgres cluster of pg.sh.
    setsid "$bin" --host 127.0.0.1 --port "$port" --access-key "$ACCESS_KEY" \
      --secret-key "$SECRET_KEY" "$dir/data" >"$dir/server.log" 2>&1 </dev/null &
    echo $! >"$dir/pid"
    echo "$port" >"$dir/port"
    for _ in $(seq 100); do
      (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
      alive "$dir" || { cat "$dir/server.log" >&2; echo "s3-server.sh: s3s-fs exited" >&2; exit 1; }
      sleep 0.1
    done
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null ||
      { echo "s3-server.sh: s3s-fs does not answer on port $port" >&2; exit 1; }
  fi
  echo "http://127.0.0.1:$(cat "$dir/port")"
  ;;
stop)
  dir=$(realpath -m "${2:?usage: s3-server.sh stop DIR}")
  if alive "$dir"; then kill "$(cat "$dir/pid")"; fi
  rm -f "$dir/pid"
  ;;
*) echo "usage: s3-server.sh start|stop DIR | install" >&2; exit 2 ;;
esac
