#!/usr/bin/env bash
# Checks the container packaging without any registry:
#   1. docker-compose.yml is valid (`docker compose config`, or Debian's docker-compose v1, installed
#      with apt when neither exists) and its services fit together (depends_on, images, volumes);
#   2. the Dockerfile builds with BuildKit from a prebuilt binary (BINARY_FROM=prebuilt), on the
#      locally seeded debian:bookworm-slim (sandbox/build-image.sh makes it), without ever
#      resolving rust:1-bookworm;
#   3. a container of that image, with the Docker socket mounted and DATABASE_URL pointing at a
#      Postgres on 127.0.0.1 (host network), answers /healthz 200, /readyz 200, an authenticated
#      /v1 request, and Docker reports its HEALTHCHECK healthy; then it is removed.
#
#   scripts/compose-check.sh            # DATABASE_URL from the environment, else a private cluster
#
# Settings: ASSISTD_BIN=path (binary to package; default the newer of target/release/assistd and
# target/debug/assistd, building release when neither exists), COMPOSE_CHECK_TIMEOUT=90 (seconds
# the container gets to become ready and healthy).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
image=assistd:compose-check
name=assistd-compose-check-$$
instance=assistd-compose-check-$$
key=sk-compose-check
ready_timeout=${COMPOSE_CHECK_TIMEOUT:-90}

log() { echo "compose-check: $*" >&2; }
ok() { echo "compose-check: OK   $*" >&2; }
fail() {
  echo "compose-check: FAIL $*" >&2
  exit 1
}
apt_install() {
  [ "$(id -u)" = 0 ] || return 1
  log "installing $*"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq </dev/null >&2 && apt-get install -y -qq --no-install-recommends "$@" </dev/null >/dev/null
}

work=$(mktemp -d /tmp/assistd-compose-check.XXXXXX)
chmod 755 "$work"
own_pg=""
cleanup() {
  docker rm -f -v "$name" >/dev/null 2>&1 || true
  [ -n "$own_pg" ] && "$root/scripts/pg.sh" stop "$own_pg" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ------------------------------------------------------------------------------ 1. compose file
compose=()
if docker compose version >/dev/null 2>&1; then
  compose=(docker compose)
elif command -v docker-compose >/dev/null 2>&1; then
  compose=(docker-compose)
elif apt_install docker-compose && command -v docker-compose >/dev/null 2>&1; then
  compose=(docker-compose)
fi
if [ ${#compose[@]} -gt 0 ]; then
  # ASSISTD_API_KEYS is mandatory (${VAR:?}): the file must refuse to render without it.
  if env -u ASSISTD_API_KEYS "${compose[@]}" -f docker-compose.yml config -q >/dev/null 2>&1; then
    fail "docker-compose.yml renders without ASSISTD_API_KEYS; it must be required"
  fi
  ASSISTD_API_KEYS=$key "${compose[@]}" -f docker-compose.yml config -q ||
    fail "'${compose[*]} config' rejects docker-compose.yml"
  ok "docker-compose.yml is valid for '${compose[*]} config' ($("${compose[@]}" version --short 2>/dev/null || echo '?')); ASSISTD_API_KEYS is required"
  ASSISTD_API_KEYS=$key "${compose[@]}" -f docker-compose.yml --profile replicas config -q ||
    fail "the replicas profile of docker-compose.yml does not render"
  ok "profile replicas renders (assistd, assistd-2, lb)"
fi

# The load balancer's configuration, checked by HAProxy itself (Debian's package).
command -v haproxy >/dev/null 2>&1 || apt_install haproxy || true
if command -v haproxy >/dev/null 2>&1; then
  haproxy -c -f deploy/haproxy.cfg >"$work/haproxy.log" 2>&1 || {
    cat "$work/haproxy.log" >&2
    fail "haproxy -c rejects deploy/haproxy.cfg"
  }
  ok "deploy/haproxy.cfg is valid for $(haproxy -v 2>/dev/null | head -n1 | cut -d' ' -f1-3)"
else
  log "no docker compose / docker-compose available: structural checks only"
fi

py=""
for candidate in python3 /usr/bin/python3 "$root/.venv/bin/python"; do
  if "$candidate" -c 'import yaml' >/dev/null 2>&1; then py=$candidate && break; fi
done
if [ -z "$py" ]; then
  apt_install python3-yaml || true
  /usr/bin/python3 -c 'import yaml' 2>/dev/null && py=/usr/bin/python3
fi
[ -n "$py" ] || fail "no Python with PyYAML to read docker-compose.yml"
"$py" - docker-compose.yml <<'EOF' || fail "docker-compose.yml does not fit together (see above)"
import re, sys, yaml

doc = yaml.safe_load(open(sys.argv[1]))
errors = []
def check(cond, msg):
    if not cond:
        errors.append(msg)

services = doc.get("services") or {}
volumes = doc.get("volumes") or {}
for want in ("postgres", "sandbox-image", "assistd"):
    check(want in services, f"service {want!r} missing")
for name, svc in services.items():
    deps = svc.get("depends_on") or {}
    for dep in deps:
        check(dep in services, f"{name}: depends_on unknown service {dep!r}")
    for v in svc.get("volumes") or []:
        src = v.split(":", 1)[0] if isinstance(v, str) else v.get("source", "")
        if src and not src.startswith(("/", ".", "~", "$")):
            check(src in volumes, f"{name}: volume {src!r} is not declared under top-level volumes")
if not errors:
    pg, sb, app = services["postgres"], services["sandbox-image"], services["assistd"]
    check(re.fullmatch(r"postgres:1[5-9].*", str(pg.get("image", ""))), "postgres: image should be postgres:15+")
    check("pg_isready" in str((pg.get("healthcheck") or {}).get("test")), "postgres: healthcheck must use pg_isready")
    check(sb.get("build") in ("./sandbox", "sandbox") or (sb.get("build") or {}).get("context") in ("./sandbox", "sandbox"),
          "sandbox-image: must build ./sandbox")
    env = app.get("environment") or {}
    if isinstance(env, list):
        env = dict(e.split("=", 1) if "=" in e else (e, None) for e in env)
    check(sb.get("image") == env.get("ASSISTD_SANDBOX_IMAGE", "assistd-sandbox:latest"),
          "assistd: ASSISTD_SANDBOX_IMAGE differs from the image sandbox-image builds")
    deps = app.get("depends_on") or {}
    check(isinstance(deps, dict) and (deps.get("postgres") or {}).get("condition") == "service_healthy",
          "assistd: must wait for postgres to be healthy")
    check(isinstance(deps, dict) and (deps.get("sandbox-image") or {}).get("condition") == "service_completed_successfully",
          "assistd: must wait for sandbox-image to complete")
    check("@postgres:" in str(env.get("DATABASE_URL", "")), "assistd: DATABASE_URL must point at the postgres service")
    check("ASSISTD_API_KEYS" in env, "assistd: ASSISTD_API_KEYS missing")
    mounts = [v if isinstance(v, str) else f"{v.get('source')}:{v.get('target')}" for v in app.get("volumes") or []]
    check(any(m.startswith("/var/run/docker.sock:") for m in mounts), "assistd: /var/run/docker.sock not mounted")
    check(any(m.split(":")[0] in volumes for m in mounts), "assistd: no named volume for ASSISTD_DATA_DIR")
    check(any("8080" in str(p) for p in app.get("ports") or []), "assistd: port 8080 not published")
    rep, lb = services.get("assistd-2") or {}, services.get("lb") or {}
    renv = rep.get("environment") or {}
    check(renv.get("DATABASE_URL") == env.get("DATABASE_URL"), "assistd-2: must share the first replica's database")
    check(renv.get("ASSISTD_SANDBOX_INSTANCE") == env.get("ASSISTD_SANDBOX_INSTANCE"),
          "assistd-2: must share the first replica's sandbox label (replicas remove a crashed sibling's sandboxes)")
    check(any("deploy/haproxy.cfg" in str(v) for v in lb.get("volumes") or []), "lb: must mount deploy/haproxy.cfg")
for e in errors:
    print("compose-check:   - " + e, file=sys.stderr)
sys.exit(1 if errors else 0)
EOF
ok "services postgres (pg_isready), sandbox-image (one-shot) and assistd (waits for both, docker.sock, data volume, :8080) fit together"

# ------------------------------------------------------------------------------ 2. image build
docker info >/dev/null 2>&1 || "$root/scripts/ensure-docker.sh"
"$root/sandbox/build-image.sh" >&2 # idempotent; also seeds debian:bookworm-slim without a registry

if [ -n "${ASSISTD_BIN:-}" ]; then
  bin=$(realpath "$ASSISTD_BIN")
else
  bin=$(ls -t target/release/assistd target/debug/assistd 2>/dev/null | head -n1 || true)
  if [ -z "$bin" ]; then
    log "no assistd binary yet: cargo build --release --locked"
    cargo build --release --locked >&2
    bin=target/release/assistd
  fi
  bin=$(realpath "$bin")
fi
[ -x "$bin" ] || fail "$bin is not an executable"

# The repository is the build context when the binary is target/release/assistd (this also
# exercises .dockerignore); any other binary goes into a minimal copy of that context.
if [ "$bin" = "$root/target/release/assistd" ]; then
  context=$root
  context_note="the repository (.dockerignore applied)"
else
  context_note="a minimal copy holding $bin as target/release/assistd"
  context=$work/context
  mkdir -p "$context/target/release"
  cp Dockerfile .dockerignore Cargo.toml "$context/"
  cp "$bin" "$context/target/release/assistd"
fi

# BuildKit skips stages the target does not need. Docker >= 23 CLIs hand BuildKit builds to the
# buildx plugin; Debian's docker.io 20.10 CLI has BuildKit built in. Use whichever works.
build=()
for d in $(type -ap docker | awk '!seen[$0]++'); do
  v=$("$d" version --format '{{.Client.Version}}' 2>/dev/null || true)
  if [ -n "$v" ] && [ "${v%%.*}" -lt 23 ] 2>/dev/null; then
    build=(env DOCKER_BUILDKIT=1 "$d" build)
    break
  fi
done
if [ ${#build[@]} -eq 0 ] && docker buildx version >/dev/null 2>&1; then
  build=(docker buildx build --load)
fi
[ ${#build[@]} -gt 0 ] || fail "no BuildKit-capable docker CLI (docker.io 20.10, or docker + buildx plugin)"

old_id=$(docker image inspect -f '{{.Id}}' "$image" 2>/dev/null || true)
log "building $image from $bin (${build[*]:0:3} ...)"
started=$(date +%s)
if ! timeout 600 "${build[@]}" --progress=plain --build-arg BINARY_FROM=prebuilt -t "$image" \
  -f "$root/Dockerfile" "$context" </dev/null >"$work/build.log" 2>&1; then
  tail -n 30 "$work/build.log" >&2
  fail "docker build --build-arg BINARY_FROM=prebuilt failed"
fi
if grep -qi 'rust:1-bookworm' "$work/build.log"; then
  fail "the build resolved rust:1-bookworm although BINARY_FROM=prebuilt"
fi
new_id=$(docker image inspect -f '{{.Id}}' "$image")
[ -n "$old_id" ] && [ "$old_id" != "$new_id" ] && docker rmi "$old_id" >/dev/null 2>&1 || true
size=$(docker image inspect -f '{{.Size}}' "$image" | awk '{ printf "%.0f MB", $1 / 1e6 }')
ok "image $image built in $(($(date +%s) - started)) s ($size) with BINARY_FROM=prebuilt from $context_note; rust:1-bookworm never resolved"
docker run --rm --network none "$image" assistd --version >/dev/null || fail "assistd --version fails in the image"

# ------------------------------------------------------------------------------ 3. container
if [ -z "${DATABASE_URL:-}" ]; then
  own_pg=$work/pg
  DATABASE_URL=$(PG_FAST=1 "$root/scripts/pg.sh" start "$own_pg")
  log "private Postgres at $DATABASE_URL"
fi
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
base=http://127.0.0.1:$port

docker run -d --name "$name" --network host \
  -v /var/run/docker.sock:/var/run/docker.sock \
  -e DATABASE_URL="$DATABASE_URL" \
  -e ASSISTD_ADDR="127.0.0.1:$port" \
  -e ASSISTD_API_KEYS="$key" \
  -e ASSISTD_SANDBOX_INSTANCE="$instance" \
  -e ASSISTD_SANDBOX_POOL_SIZE=0 \
  -e ASSISTD_SHUTDOWN_GRACE_SECS=2 \
  --health-interval 2s --health-start-period 60s \
  "$image" >/dev/null || fail "docker run $image failed"
log "container $name on 127.0.0.1:$port (host network, docker.sock mounted, sandbox instance $instance)"

# GET url [bearer] -> prints "STATUS BODY"
http() {
  python3 - "$@" <<'EOF'
import sys, urllib.request, urllib.error
req = urllib.request.Request(sys.argv[1])
if len(sys.argv) > 2:
    req.add_header("Authorization", "Bearer " + sys.argv[2])
try:
    with urllib.request.urlopen(req, timeout=5) as r:
        print(r.status, r.read(300).decode(errors="replace").replace("\n", " "))
except urllib.error.HTTPError as e:
    print(e.code, e.read(300).decode(errors="replace").replace("\n", " "))
except Exception as e:
    print(0, repr(e))
EOF
}

deadline=$(($(date +%s) + ready_timeout))
health=""
ready=""
while :; do
  state=$(docker inspect -f '{{.State.Status}}' "$name" 2>/dev/null || echo gone)
  if [ "$state" != running ]; then
    docker logs "$name" 2>&1 | tail -n 30 >&2
    fail "the container stopped ($state) before it was ready"
  fi
  [ -z "$health" ] && [ "$(http "$base/healthz" | cut -d' ' -f1)" = 200 ] && health=1
  if [ -n "$health" ] && [ -z "$ready" ]; then
    r=$(http "$base/readyz")
    [ "${r%% *}" = 200 ] && ready=$r
  fi
  docker_health=$(docker inspect -f '{{.State.Health.Status}}' "$name" 2>/dev/null || true)
  [ -n "$ready" ] && [ "$docker_health" = healthy ] && break
  if [ "$(date +%s)" -ge "$deadline" ]; then
    docker logs "$name" 2>&1 | tail -n 30 >&2
    fail "not ready within ${ready_timeout}s: /healthz ${health:-not 200}, /readyz ${r:-not asked}, docker health ${docker_health:-none}"
  fi
  sleep 0.5
done
ok "GET /healthz 200; GET /readyz ${ready}"
ok "Docker HEALTHCHECK (bash /dev/tcp -> /healthz) reports healthy"

r=$(http "$base/v1/assistants?limit=1" "$key")
[ "${r%% *}" = 200 ] && [[ $r == *'"object":"list"'* ]] || fail "GET /v1/assistants with the key: $r"
r=$(http "$base/v1/assistants?limit=1")
[ "${r%% *}" = 401 ] || fail "GET /v1/assistants without a key: $r (want 401)"
ok "GET /v1/assistants: 200 list with the key, 401 without (Postgres reached from the container)"

started=$(date +%s)
docker stop -t 20 "$name" >/dev/null
code=$(docker inspect -f '{{.State.ExitCode}}' "$name")
[ "$code" = 0 ] || {
  docker logs "$name" 2>&1 | tail -n 20 >&2
  fail "assistd exited $code on SIGTERM"
}
docker rm -v "$name" >/dev/null
left=$(docker ps -aq --filter "label=assistd.instance=$instance" | wc -l)
[ "$left" = 0 ] || fail "$left sandbox containers of $instance left behind"
ok "SIGTERM: exit 0 in $(($(date +%s) - started)) s; container and its volume removed"
echo "compose-check: all checks passed" >&2
