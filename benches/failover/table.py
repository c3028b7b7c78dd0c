#!/usr/bin/env python3
"""The table of benches/failover.md from the JSON reports of benches/failover/run.sh.
Usage: python3 benches/failover/table.py target/failover"""
import json
import pathlib
import sys

folder = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "target/failover")
print("| fault | durable | run | sessions lost | requests failed (by kind) | longest error window ms | Redis-reported failover ms | call p99 before ms | call p99 during ms |")
print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
for path in sorted(folder.glob("*.json")):
    name, durable, run = path.stem.rsplit("-", 2)
    r = json.loads(path.read_text())
    kinds = ", ".join(f"{k}: {v}" for k, v in r["failed_by_kind"].items()) or "-"
    window = r["longest_error_window"]
    redis = [f["redis_reported_ms"] for f in r["faults"] if f["redis_reported_ms"] is not None]
    during = " / ".join(f"{f['call_p99_during_ms']:.0f}" for f in r["faults"])
    before = r["faults"][0]["call_p99_before_ms"] if r["faults"] else 0
    print(
        f"| {name} | {'yes' if durable == 'durable' else 'no'} | {run} | {r['sessions_lost']} "
        f"| {r['requests_failed']} ({kinds}) | {window['length_ms']:.0f} " if window else
        f"| {name} | {'yes' if durable == 'durable' else 'no'} | {run} | {r['sessions_lost']} "
        f"| {r['requests_failed']} ({kinds}) | 0 ",
        end="",
    )
    print(f"| {' / '.join(f'{ms:.0f}' for ms in redis) or '-'} | {before:.0f} | {during} |")
