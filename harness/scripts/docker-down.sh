#!/usr/bin/env bash
# Stops the dockerd that docker-up.sh started, by the PID it recorded (never by name).
set -euo pipefail
cd "$(dirname "$0")/../.."
pid_file="$PWD/.run/dockerd.pid"
[ -f "$pid_file" ] || { echo "no .run/dockerd.pid: nothing started by docker-up"; exit 0; }
pid="$(cat "$pid_file")"
sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
if kill -0 "$pid" 2>/dev/null; then
    $sudo kill -TERM "$pid"
    for _ in $(seq 1 40); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.5
    done
    kill -0 "$pid" 2>/dev/null && $sudo kill -KILL "$pid"
fi
rm -f "$pid_file"
echo "dockerd (PID $pid) stopped"
