#!/usr/bin/env bash
# Make sure a Docker daemon answers `docker info`.
# Idempotent: does nothing when a daemon is already reachable. Otherwise installs
# Debian's docker.io if dockerd is missing and starts dockerd in the background.
# Meant for CI and dev machines where we are root and nothing starts dockerd for us.
set -euo pipefail

log() { echo "ensure-docker: $*" >&2; }

if docker info >/dev/null 2>&1; then
    log "docker daemon already running"
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    log "docker daemon not reachable and not root; start dockerd yourself"
    exit 1
fi

if ! command -v dockerd >/dev/null 2>&1; then
    log "installing docker.io"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq </dev/null
    apt-get install -y -qq --no-install-recommends docker.io </dev/null >/dev/null
fi

# The docker CLI may live in /usr/local/bin and be newer than Debian's daemon;
# it negotiates the API version, so that is fine.
DOCKERD_LOG="${DOCKERD_LOG:-/tmp/dockerd.log}"
if ! pgrep -x dockerd >/dev/null 2>&1; then
    log "starting dockerd (log: $DOCKERD_LOG)"
    # setsid + nohup so the daemon outlives the calling shell; stdin from /dev/null.
    setsid nohup dockerd >"$DOCKERD_LOG" 2>&1 </dev/null &
fi

for _ in $(seq 1 60); do
    if docker info >/dev/null 2>&1; then
        log "docker daemon ready"
        exit 0
    fi
    sleep 1
done

log "dockerd did not become ready within 60 s; last log lines:"
tail -n 30 "$DOCKERD_LOG" >&2 || true
exit 1
