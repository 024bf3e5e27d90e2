#!/usr/bin/env bash
# The engine benchmark of two or more builds side by side in one run: each run goes
# through the builds in turn, each configuration (fake, memory, durable) a child process
# of its own; one line per child with its rate, peak RSS, CPU time and the load average.
# Usage: scripts/bench-engine-side.sh RUNS NAME=BENCH_BINARY [NAME=BENCH_BINARY ...]
# (a bench binary: `cargo bench -p berth-engine --bench engine --no-run` prints its path).
set -euo pipefail
runs=$1
shift
for i in $(seq 1 "$runs"); do
  for spec in "$@"; do
    name=${spec%%=*}
    bin=${spec#*=}
    for mode in fake memory durable; do
      out=$("$bin" --child "$mode" --tasks 10000 2>&1) || true
      field() { awk -v k="$1" '$2==k {print $3}' <<<"$out"; }
      echo "$i $name $mode rate=$(field transitions_per_s) rss=$(field peak_rss_mb) user=$(field cpu_user_s) ok=$(field ok) load=$(cut -d' ' -f1 /proc/loadavg)"
    done
  done
done
