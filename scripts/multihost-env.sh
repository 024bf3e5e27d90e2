#!/usr/bin/env bash
# Several "hosts" on this machine for berth's multi-host tests (CLUSTER.md, issue 18):
# each host is a network namespace with a dockerd of its own (data root, exec root, socket,
# bridge, containerd namespace), each etcd member a namespace of its own, all joined by a
# bridge inside a "switch" namespace. Addresses exist only inside these namespaces; the
# root namespace gets no address, route or rule. A host is cut off by setting its switch
# port down (silent loss, as a real partition) and healed by setting it up.
#
# Usage (as root):
#   scripts/multihost-env.sh up ENV [HOSTS [MEMBERS]]   3 hosts and 3 etcd members by default;
#                                                     prints the env file (KEY=VALUE lines)
#   scripts/multihost-env.sh down ENV                 everything of ENV stopped and removed
#   scripts/multihost-env.sh cut ENV NODE             NODE: h1.. (host) or e1.. (etcd member)
#   scripts/multihost-env.sh heal ENV NODE
#   scripts/multihost-env.sh exec ENV NODE CMD...     CMD in NODE's network namespace
#
# ENV is a short name (letters and digits, at most 6) so that interface and namespace names
# stay short; two environments of different names can run at once. `up` tears down an
# environment of the same name first, and tears down what it made if it fails.
# The env file (/run/berth-mh/ENV/env) has, per host hN: HN_SOCK (its dockerd's socket),
# HN_ADDR; per member eN: EN_ADDR; and ETCD_ENDPOINTS (http://addr:2379,...).
# Namespaced dockerd: started with nsenter (`ip netns exec` remounts /sys and dockerd then
# fails on cgroups here), with an empty configuration file (the system daemon.json's data
# root would clash), the vfs storage driver, and the busybox image loaded from the system
# Docker with `docker save | docker load` (it cannot reach the registry on the root
# namespace's loopback).
set -euo pipefail

RUN_ROOT=/run/berth-mh         # short: dockerd's exec root holds unix sockets
DATA_ROOT=/var/lib/berth-mh    # the hosts' dockerd data roots
SUBNET=10.231.0                # inside the switch only: hosts .11.., members .21..
IMAGE=busybox:latest
WAIT_SECONDS=60

die() { echo "multihost-env: $*" >&2; exit 1; }
say() { echo "multihost-env: $*" >&2; }

check_env_name() {
  [[ "$1" =~ ^[a-z0-9]{1,6}$ ]] || die "environment name '$1': use 1 to 6 lower-case letters or digits"
}

ns() { echo "bmh-$ENV-$1"; }   # the namespace of node $1 (sw, h1, e1, ...)

in_ns() { local node=$1; shift; nsenter --net="/var/run/netns/$(ns "$node")" "$@"; }

# Joins node $1 to the switch: port $1 in the switch, eth0 in the node, address $2.
join_switch() {
  local node=$1 addr=$2
  ip netns add "$(ns "$node")"
  ip link add "$node" netns "$(ns sw)" type veth peer name eth0 netns "$(ns "$node")"
  ip -n "$(ns sw)" link set "$node" master br0 up
  ip -n "$(ns "$node")" addr add "$addr/24" dev eth0
  ip -n "$(ns "$node")" link set eth0 up
  ip -n "$(ns "$node")" link set lo up
}

wait_for() { # wait_for WHAT CMD...: retries CMD until it succeeds or WAIT_SECONDS pass
  local what=$1; shift
  local deadline=$((SECONDS + WAIT_SECONDS))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || die "$what did not come up within ${WAIT_SECONDS}s"
    sleep 0.2
  done
}

start_host() {
  local i=$1 node="h$1"
  local dir="$RUN_ROOT/$ENV/$node" data="$DATA_ROOT/$ENV/$node"
  mkdir -p "$dir" "$data"
  echo '{}' > "$dir/daemon.json"
  join_switch "$node" "$SUBNET.$((10 + i))"
  # setsid: dockerd leaves this script's process group, so a test's timeout on `up` does
  # not take it down half-way; `down` stops it by its pid file.
  in_ns "$node" setsid dockerd --config-file "$dir/daemon.json" \
    --data-root "$data" --exec-root "$dir/exec" --pidfile "$dir/dockerd.pid" \
    -H "unix://$dir/docker.sock" --bip "10.232.$i.1/24" --storage-driver vfs \
    --containerd-namespace "$(ns "$node")" --containerd-plugins-namespace "$(ns "$node")-p" \
    >"$dir/dockerd.log" 2>&1 < /dev/null &
  echo "H${i}_SOCK=unix://$dir/docker.sock" >> "$RUN_ROOT/$ENV/env"
  echo "H${i}_ADDR=$SUBNET.$((10 + i))" >> "$RUN_ROOT/$ENV/env"
}

start_member() {
  local i=$1 members=$2 node="e$1"
  local dir="$RUN_ROOT/$ENV/$node" addr="$SUBNET.$((20 + i))"
  local cluster="" j
  for ((j = 1; j <= members; j++)); do
    cluster+="${cluster:+,}e$j=http://$SUBNET.$((20 + j)):2380"
  done
  mkdir -p "$dir"
  join_switch "$node" "$addr"
  # Data on /dev/shm: etcd 3.4 cannot skip fsync. Ports 2379/2380 are this namespace's own.
  in_ns "$node" setsid etcd --name "$node" --data-dir "/dev/shm/bmh-$ENV-$node" \
    --listen-client-urls "http://$addr:2379" --advertise-client-urls "http://$addr:2379" \
    --listen-peer-urls "http://$addr:2380" --initial-advertise-peer-urls "http://$addr:2380" \
    --initial-cluster "$cluster" --initial-cluster-state new --initial-cluster-token "bmh-$ENV" \
    --pre-vote=true --heartbeat-interval 100 --election-timeout 1000 \
    --auto-compaction-mode revision --auto-compaction-retention 1000 \
    >"$dir/etcd.log" 2>&1 < /dev/null &
  echo $! > "$dir/etcd.pid"
  echo "E${i}_ADDR=$addr" >> "$RUN_ROOT/$ENV/env"
}

up() {
  local hosts=${1:-3} members=${2:-3} i endpoints=""
  [[ "$hosts" =~ ^[1-9]$ && "$members" =~ ^[0-9]$ ]] || die "hosts 1-9 and members 0-9, got '$hosts' '$members'"
  command -v dockerd >/dev/null || die "dockerd is not installed"
  ((members == 0)) || command -v etcd >/dev/null || die "etcd is not installed (scripts/test-env.sh installs it)"
  docker image inspect "$IMAGE" >/dev/null 2>&1 || die "the system Docker has no $IMAGE (run scripts/test-env.sh)"
  down_quiet
  trap 'say "up failed; tearing down"; down_quiet' ERR
  mkdir -p "$RUN_ROOT/$ENV"
  : > "$RUN_ROOT/$ENV/env"
  ip netns add "$(ns sw)"
  ip -n "$(ns sw)" link add br0 type bridge
  ip -n "$(ns sw)" link set br0 up
  for ((i = 1; i <= hosts; i++)); do start_host "$i"; done
  for ((i = 1; i <= members; i++)); do
    start_member "$i" "$members"
    endpoints+="${endpoints:+,}http://$SUBNET.$((20 + i)):2379"
  done
  echo "ETCD_ENDPOINTS=$endpoints" >> "$RUN_ROOT/$ENV/env"
  local image_tar="$RUN_ROOT/$ENV/image.tar"
  docker save "$IMAGE" -o "$image_tar"
  for ((i = 1; i <= hosts; i++)); do
    local sock="unix://$RUN_ROOT/$ENV/h$i/docker.sock"
    wait_for "dockerd of h$i" docker -H "$sock" version
    docker -H "$sock" load -i "$image_tar" >/dev/null
  done
  rm -f "$image_tar"
  if ((members > 0)); then
    wait_for "etcd ($endpoints)" in_ns e1 etcdctl --endpoints "$endpoints" endpoint health
  fi
  trap - ERR
  say "up: $hosts hosts, $members etcd members"
  echo "$RUN_ROOT/$ENV/env"
}

# Stops the process whose pid is in file $1 (TERM, then KILL after $2 seconds).
stop_pid_file() {
  local file=$1 grace=$2 pid
  [[ -f "$file" ]] || return 0
  pid=$(cat "$file" 2>/dev/null) || return 0
  [[ "$pid" =~ ^[0-9]+$ ]] || return 0
  kill -TERM "$pid" 2>/dev/null || return 0
  local deadline=$((SECONDS + grace))
  while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
  kill -KILL "$pid" 2>/dev/null || true
}

down_quiet() {
  local dir="$RUN_ROOT/$ENV" node
  if [[ -d "$dir" ]]; then
    for node in "$dir"/h*; do
      [[ -d "$node" ]] || continue
      # dockerd stops its containers on SIGTERM (10 s each at most, in parallel).
      stop_pid_file "$node/dockerd.pid" 30
    done
    for node in "$dir"/e*; do
      [[ -d "$node" ]] || continue
      stop_pid_file "$node/etcd.pid" 5
      rm -rf "/dev/shm/bmh-$ENV-$(basename "$node")"
    done
  fi
  # Whatever still runs in one of the namespaces (a berth daemon a test started there, a
  # container's process after a dockerd SIGKILL) is killed, then the namespaces removed.
  local name
  for name in $(ip netns list | awk '{print $1}' | grep "^bmh-$ENV-" || true); do
    local pids
    pids=$(ip netns pids "$name" 2>/dev/null || true)
    [[ -z "$pids" ]] || kill -KILL $pids 2>/dev/null || true
    ip netns delete "$name" 2>/dev/null || true
  done
  # Mounts dockerd left behind (container shm, netns files) before removing its files.
  local m
  for m in $(awk '{print $2}' /proc/self/mounts | grep -E "^($RUN_ROOT|$DATA_ROOT)/$ENV/" | sort -r || true); do
    umount -l "$m" 2>/dev/null || true
  done
  rm -rf "${dir:?}" "${DATA_ROOT:?}/$ENV"
}

link() { # link NODE up|down
  local node=$1 state=$2
  [[ "$node" =~ ^[he][1-9]$ ]] || die "node '$node': h1.. or e1.."
  ip -n "$(ns sw)" link set "$node" "$state" || die "no node $node in environment $ENV"
}

[[ $# -ge 2 ]] || die "usage: $0 up|down|cut|heal|exec ENV ..."
[[ $EUID -eq 0 ]] || die "run as root (network namespaces, dockerd)"
cmd=$1 ENV=$2
shift 2
check_env_name "$ENV"
case "$cmd" in
  up) up "$@" ;;
  down) down_quiet; say "down: $ENV removed" ;;
  cut) [[ $# -eq 1 ]] || die "cut ENV NODE"; link "$1" down ;;
  heal) [[ $# -eq 1 ]] || die "heal ENV NODE"; link "$1" up ;;
  exec) [[ $# -ge 2 ]] || die "exec ENV NODE CMD..."; node=$1; shift; in_ns "$node" "$@" ;;
  *) die "unknown command '$cmd' (up, down, cut, heal, exec)" ;;
esac
