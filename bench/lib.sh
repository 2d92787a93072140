# Shared preamble of the bench scripts: source it after `set -euo pipefail` as
#   . "$(dirname "$0")/../lib.sh"  NAME
# (NAME prefixes the log lines). It sets `root` (the repository) and gives:
#   bench_log MSG...            a line on stderr, prefixed with NAME
#   bench_on_exit CMD           runs CMD (a shell string) when the script exits, after those added later
#   bench_server                builds the release server unless ASSISTD_BIN is set; exports ASSISTD_BIN
#   bench_example EXAMPLE       builds examples/EXAMPLE.rs (release) unless BENCH_BIN is set; sets `bench`
#   bench_docker [IMAGE]        starts the Docker engine when it is down; checks that IMAGE exists
#   bench_workdir               a private directory under /tmp, removed at exit; sets `work`
#   bench_postgres              a private Postgres cluster in $work/pg, stopped at exit; exports DATABASE_URL
#   bench_header TITLE [IMAGE]  the first line of a report: date, cores, Docker version, load
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bench_name=${1:-bench}
bench_exits=()

bench_log() { echo "$bench_name: $*" >&2; }

_bench_exit() {
  local i
  for ((i = ${#bench_exits[@]} - 1; i >= 0; i--)); do
    eval "${bench_exits[$i]}" || true
  done
}
trap _bench_exit EXIT
trap 'exit 130' INT TERM

bench_on_exit() { bench_exits+=("$1"); }

bench_server() {
  if [ -z "${ASSISTD_BIN:-}" ]; then
    bench_log "cargo build --release (minutes on a cold cache)"
    (cd "$root" && cargo build --release --locked --quiet --bin assistd)
    export ASSISTD_BIN=$root/target/release/assistd
  fi
}

bench_example() {
  if [ -n "${BENCH_BIN:-}" ]; then
    bench=$BENCH_BIN
  else
    bench_log "cargo build --release --example $1 (minutes on a cold cache)"
    (cd "$root" && cargo build --release --locked --quiet --example "$1")
    bench=$root/target/release/examples/$1
  fi
}

bench_docker() {
  docker info >/dev/null 2>&1 || "$root/scripts/ensure-docker.sh"
  if [ -n "${1:-}" ] && ! docker image inspect "$1" >/dev/null 2>&1; then
    bench_log "the sandbox image $1 is missing: run \`make sandbox-image\`"
    exit 1
  fi
}

bench_workdir() {
  work=$(mktemp -d "/tmp/assistd-$bench_name.XXXXXX")
  # Postgres runs as its own user and must reach its cluster inside.
  chmod 755 "$work"
  bench_on_exit 'rm -rf "$work"'
}

bench_postgres() {
  [ -n "${work:-}" ] || bench_workdir
  bench_on_exit '"$root/scripts/pg.sh" stop "$work/pg" >/dev/null 2>&1'
  DATABASE_URL=$(PG_FAST=1 "$root/scripts/pg.sh" start "$work/pg")
  export DATABASE_URL
}

bench_header() {
  local cpu
  cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
  echo "$1 — $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores ($cpu)," \
    "Docker $(docker version --format '{{.Server.Version}}' 2>/dev/null || echo '?')${2:+, image $2}," \
    "load before start: $(cut -d' ' -f1-3 /proc/loadavg)"
}
