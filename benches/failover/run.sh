#!/usr/bin/env bash
# The failover figures of benches/failover.md: `harness load` with 8 users and 2 extauth
# replicas for each fault, with and without --durable-sessions, RUNS times each.
# Usage: RUNS=2 OUT=target/failover bash benches/failover/run.sh [PROFILE]
# PROFILE: debug (default) or release: the harness and extauth binaries of that build.
# ONLY="sentinel-failover extauth-kill" runs only the named configurations.
set -euo pipefail
profile="${1:-debug}"
bin="${CARGO_TARGET_DIR:?set CARGO_TARGET_DIR}/$profile"
out="${OUT:-target/failover}"
runs="${RUNS:-2}"
secs="${SECS:-20}"
mkdir -p "$out"
# name | Redis | faults
configs=(
  "sentinel-failover|sentinel|--fault redis-failover@6"
  "cluster-kill-master|cluster|--fault redis-kill-master@6"
  "extauth-kill|sentinel|--fault extauth-kill:0@6"
  "rolling-restart|sentinel|--fault extauth-restart:0@5 --fault extauth-restart:1@11"
)
for run in $(seq 1 "$runs"); do
  for config in "${configs[@]}"; do
    IFS='|' read -r name redis faults <<<"$config"
    if [ -n "${ONLY:-}" ] && [[ " $ONLY " != *" $name "* ]]; then
      continue
    fi
    for durable in plain durable; do
      flag=""
      [ "$durable" = durable ] && flag="--durable-sessions"
      report="$out/$name-$durable-$run.json"
      echo "== $name $durable run $run"
      # shellcheck disable=SC2086
      "$bin/harness" load --redis "$redis" --replicas 2 --extauth-bin "$bin/extauth" \
        --users 8 --duration "$secs" $faults $flag --quiet --report "$report" \
        >"$out/$name-$durable-$run.txt" 2>&1 || echo "   (exit $?: requests failed or a fault failed)"
      grep -E "^(requests failed|sessions lost|longest window)|Redis reported|p99 before" \
        "$out/$name-$durable-$run.txt" || tail -5 "$out/$name-$durable-$run.txt"
    done
  done
done
