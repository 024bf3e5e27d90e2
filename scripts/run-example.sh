#!/usr/bin/env bash
# berth's main job, end to end, on a fresh machine: make sure Docker answers and the
# example's image is present locally (no registry is needed: scripts/test-env.sh builds
# busybox:latest from Debian's busybox-static), then run the example task in the
# foreground with `berth run`. Extra arguments go to `berth run` (e.g. --keep).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/test-env.sh >/dev/null
exec cargo run -q -p berth -- run examples/hello.json "$@"
