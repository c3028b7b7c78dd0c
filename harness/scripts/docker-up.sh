#!/usr/bin/env bash
# Starts a Docker engine for the harness when none answers: dockerd with host networking
# only (--bridge=none --iptables=false: these machines allow neither), its PID in
# .run/dockerd.pid and its log in .run/dockerd.log. `docker-down.sh` stops it by that PID.
set -euo pipefail
cd "$(dirname "$0")/../.."
run_dir="$PWD/.run"
mkdir -p "$run_dir"
if docker info >/dev/null 2>&1; then
    echo "a Docker engine already answers"
    exit 0
fi
command -v dockerd >/dev/null || { echo "dockerd not found (apt-get install docker.io)" >&2; exit 1; }
sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
$sudo dockerd --bridge=none --iptables=false --ip6tables=false \
    --pidfile "$run_dir/dockerd.pid" >"$run_dir/dockerd.log" 2>&1 &
for _ in $(seq 1 60); do
    if docker info >/dev/null 2>&1; then
        echo "dockerd is up (PID $(cat "$run_dir/dockerd.pid"), log $run_dir/dockerd.log)"
        exit 0
    fi
    sleep 0.5
done
echo "dockerd did not answer within 30 s; log tail:" >&2
tail -n 20 "$run_dir/dockerd.log" >&2
exit 1
