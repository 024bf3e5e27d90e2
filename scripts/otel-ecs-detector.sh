#!/usr/bin/env bash
# A real outside client of berth's task metadata endpoint: OpenTelemetry's ECS resource
# detector (PyPI opentelemetry-sdk-extension-aws, in a virtual environment) detects every
# attribute from it, with raise_on_error=True so that any failure fails this script
# (without it the detector returns an empty resource silently).
#
# It starts `berth daemon` on a data directory of its own (metadata endpoint on a free
# port, host networking allowed), submits a host-mode busybox task whose container prints
# its ECS_CONTAINER_METADATA_URI_V4 (a loopback address in host mode), and runs the
# detector on the host with that variable. Everything it made is removed at the end,
# even on failure. Run by scripts/test.sh; needs Docker and busybox:latest
# (scripts/test-env.sh) and PyPI.
# Usage: scripts/otel-ecs-detector.sh
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build -q -p berth --locked
target_dir="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
berth="$target_dir/debug/berth"

# The venv is kept between runs on this machine (CI clones afresh); pip checks it is current.
venv="${BERTH_OTEL_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/berth-otel-venv}"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install -q --disable-pip-version-check opentelemetry-sdk opentelemetry-sdk-extension-aws

work="$(mktemp -d -t berth-otel.XXXXXX)"
data="$work/data"
daemon_pid=""
cleanup() {
  if [ -n "$daemon_pid" ]; then
    kill "$daemon_pid" 2>/dev/null || true
    wait "$daemon_pid" 2>/dev/null || true
  fi
  if [ -f "$data/instance-id" ]; then
    instance="$(cat "$data/instance-id")"
    ids="$(docker ps -aq --filter "label=berth.instance=$instance")"
    [ -z "$ids" ] || docker rm -f $ids >/dev/null
    docker volume rm "berth-holder-$instance" >/dev/null 2>&1 || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

# The daemon, with none of the caller's BERTH_* settings.
env $(env | sed -n 's/^\(BERTH_[A-Z0-9_]*\)=.*/-u \1/p') \
  BERTH_METADATA_PORT=0 BERTH_HOST_ALLOW_HOST_NETWORK=true BERTH_IMAGE_CLEANUP_ENABLED=false \
  BERTH_CLUSTER=otel-check \
  "$berth" daemon --data-dir "$data" 2>"$work/daemon.log" &
daemon_pid=$!
export BERTH_HOST="unix://$data/berth.sock"
for _ in $(seq 100); do
  "$berth" ps >/dev/null 2>&1 && break
  sleep 0.1
done
"$berth" ps >/dev/null || { cat "$work/daemon.log" >&2; exit 1; }

cat >"$work/task.json" <<'TASK'
{"family": "otel-check", "networkMode": "host", "containerDefinitions": [
  {"name": "app", "image": "busybox:latest", "memory": 32, "essential": true,
   "command": ["sh", "-c", "echo \"URI=$ECS_CONTAINER_METADATA_URI_V4\"; sleep 300"]}]}
TASK
arn="$("$berth" submit "$work/task.json")"
uri=""
for _ in $(seq 300); do
  uri="$({ "$berth" logs "$arn" app 2>/dev/null || true; } | sed -n 's/^URI=//p' | head -n 1)"
  [ -n "$uri" ] && break
  sleep 0.1
done
[ -n "$uri" ] || { echo "the container never printed its metadata URI" >&2; cat "$work/daemon.log" >&2; exit 1; }
echo "metadata endpoint of the task's container: $uri"

ECS_CONTAINER_METADATA_URI_V4="$uri" BERTH_TASK_ARN="$arn" "$venv/bin/python" - <<'PY'
import json, os, urllib.request
from opentelemetry.sdk.extension.aws.resource.ecs import AwsEcsResourceDetector
from opentelemetry.semconv.resource import ResourceAttributes as R

attributes = dict(AwsEcsResourceDetector(raise_on_error=True).detect().attributes)
print(json.dumps(attributes, indent=2, sort_keys=True))
uri = os.environ["ECS_CONTAINER_METADATA_URI_V4"]
container = json.load(urllib.request.urlopen(uri, timeout=5))
arn = os.environ["BERTH_TASK_ARN"]
expected = {
    R.CLOUD_PROVIDER: "aws",
    R.CLOUD_PLATFORM: "aws_ecs",
    R.AWS_ECS_TASK_ARN: arn,
    R.AWS_ECS_CLUSTER_ARN: arn[: arn.rindex(":")] + ":cluster/otel-check",
    R.AWS_ECS_CONTAINER_ARN: container["ContainerARN"],
    R.AWS_ECS_LAUNCHTYPE: "external",
    R.AWS_ECS_TASK_FAMILY: "otel-check",
    R.AWS_ECS_TASK_REVISION: "1",
}
wrong = {k: (attributes.get(k), v) for k, v in expected.items() if attributes.get(k) != v}
assert not wrong, f"attributes differ (found, expected): {wrong}"
assert container["ContainerARN"] == arn + "/app", container["ContainerARN"]
print("OpenTelemetry's ECS resource detector: every attribute detected")
PY
