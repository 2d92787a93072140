#!/usr/bin/env bash
# CPU one sandbox launch costs, per part, for one or more sandbox images: what decides how many new sandboxes a
# second a host can start (bench/README.md, "Launch CPU"). CPU time, unlike latency, hardly depends on what else
# the machine is doing, so this gives comparable figures on a busy host too.
#
#   bench/sandbox/launch-cpu.sh [IMAGE...]     (default: $ASSISTD_SANDBOX_IMAGE or assistd-sandbox:latest)
#
# Per image: the Docker daemon's CPU (dockerd + containerd) to create and start a container set up as the server
# sets one up (read-only rootfs, tmpfs /tmp, a data volume, no network, init) and to remove it; then the driver's
# CPU, BENCH_STARTS times each way in one container (medians): claimed at once (an exec waits as it starts, as for a
# pool miss) to ready and to that exec's reply; unclaimed (a warm pool's) to ready and until its background imports
# of numpy, pandas and pyplot are done.
# Settings: BENCH_STARTS=5, BENCH_CONTAINERS=5.
set -euo pipefail
. "$(dirname "$0")/../lib.sh" bench-launch-cpu
images=("$@")
[ ${#images[@]} -gt 0 ] || images=("${ASSISTD_SANDBOX_IMAGE:-assistd-sandbox:latest}")
starts=${BENCH_STARTS:-5}
containers=${BENCH_CONTAINERS:-5}
label=assistd.instance=bench-launch-cpu-$$
bench_docker
bench_on_exit 'left=$(docker ps -aq --filter label=$label); [ -z "$left" ] || docker rm -f -v $left >/dev/null;
  vols=$(docker volume ls -q --filter label=$label); [ -z "$vols" ] || docker volume rm -f $vols >/dev/null'

tick=$(getconf CLK_TCK)
daemon_ticks() {
  local total=0 pid
  for pid in $(pgrep -x dockerd) $(pgrep -x containerd); do
    read -r -a f < <(cut -d' ' -f14-17 "/proc/$pid/stat")
    total=$((total + f[0] + f[1] + f[2] + f[3]))
  done
  echo "$total"
}
sandbox() { # NAME IMAGE: a container set up as the server's
  docker volume create --label "$label" "$1" >/dev/null
  docker create --name "$1" --label "$label" --init --read-only --user 0:0 \
    --tmpfs /tmp:rw,exec,nosuid,nodev,size=256m,mode=1777 -v "$1:/mnt/data" --network none \
    --cap-drop ALL --cap-add KILL --security-opt no-new-privileges --pids-limit 256 --memory 1g --cpus 1 \
    --log-driver none -e HOME=/tmp -e MPLCONFIGDIR=/tmp/mpl -e MPLBACKEND=Agg "$2" sleep infinity >/dev/null
  docker start "$1" >/dev/null
}

bench_header "assistd launch CPU"
for image in "${images[@]}"; do
  bench_docker "$image"
  before=$(daemon_ticks)
  for i in $(seq "$containers"); do sandbox "bench-launch-cpu-$$-$i" "$image"; done
  started=$(daemon_ticks)
  for i in $(seq "$containers"); do docker rm -f -v "bench-launch-cpu-$$-$i" >/dev/null; docker volume rm "bench-launch-cpu-$$-$i" >/dev/null; done
  removed=$(daemon_ticks)
  name=bench-launch-cpu-$$-driver
  sandbox "$name" "$image"
  docker exec -i -u 10001 "$name" sh -c 'cat > /tmp/launch_cpu.py' < "$root/bench/sandbox/launch_cpu.py"
  docker exec -u 10001 "$name" python3 /tmp/launch_cpu.py "$starts" | python3 -c '
import json, statistics, sys
image, create, remove = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
runs = [json.loads(line) for line in sys.stdin]
assert runs and all(r["ready"] for r in runs), runs
print(f"{image}: docker create+start {create} ms, rm {remove} ms (dockerd+containerd CPU per container)")
for kind, what in (("claimed", "claimed at once (a session waits): CPU to ready / to its print(1)"),
                   ("unclaimed", "unclaimed (in a warm pool): CPU to ready / to its imports done")):
    rs = [r for r in runs if r["kind"] == kind]
    ready = statistics.median(r["ready_cpu_ms"] for r in rs)
    total = statistics.median(r["cpu_ms"] for r in rs)
    wall = statistics.median(r["ready_wall_ms"] for r in rs)
    rss = rs[-1]["rss_mib"]
    print(f"  driver {what}: median {ready:.0f} / {total:.0f} ms (n={len(rs)}), "
          f"wall to ready {wall:.0f} ms, RSS {rss} MiB")
' "$image" $(( (started - before) * 1000 / tick / containers )) $(( (removed - started) * 1000 / tick / containers ))
  docker rm -f -v "$name" >/dev/null; docker volume rm "$name" >/dev/null
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
