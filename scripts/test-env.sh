#!/usr/bin/env bash
# Sets up what berth's Docker tests need on this host, and installs what is missing:
#   1. a Docker daemon that answers (started in the background if none runs);
#   2. a local `busybox:latest` image, built from Debian's busybox-static (never pulled);
#   3. a registry without auth on 127.0.0.1:51670 that serves `busybox:latest`;
#   4. a registry with basic auth (htpasswd, bcrypt) on 127.0.0.1:51671 that serves
#      `busybox:latest` to the test users listed below, which are also written, for the
#      tests, to /var/lib/berth-test/registry-51671/users.json;
#   5. etcd 3.4 (Debian's etcd-server, and etcd-client for etcdctl) for the cluster tests,
#      which start their own members on loopback ports of their own (never 2379/2380), and
#      protoc (protobuf-compiler), which the etcd-client crate's build needs. The package's
#      own etcd service is kept from starting.
# Idempotent: what is ready already is left alone. Safe beside tests of another checkout
# that use the same daemon: it removes no image or container it did not make, and never
# restarts a daemon or a registry that answers.
# Usage: scripts/test-env.sh        (as root; scripts/test.sh runs it first)
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive

STATE_DIR=/var/lib/berth-test            # registry storage, one directory per port
LOG_DIR=/var/log                         # berth-dockerd.log, berth-registry-PORT.log
LOCK_FILE=/run/lock/berth-test-env.lock  # one setup at a time, across checkouts
IMAGE=busybox:latest
REGISTRY_PORT=51670
AUTH_REGISTRY_PORT=51671
# The users of the registry with basic auth, "name password" pairs. Test-only credentials
# of a registry that listens on the loopback only; they are not secrets. What matters is
# the X-Registry-Auth header a client sends for them to 127.0.0.1:51671: the JSON
# {"username":U,"password":P,...,"serveraddress":"127.0.0.1:51671",...} in base64 (both as
# bollard 0.21 writes it, with "auth", "email", "identitytoken", "registrytoken": null,
# and in the short form with the three fields only). Docker decodes it as base64url, so
# a standard encoding with `+` or `/` in it loses the credentials:
#   berth       s?wordfish   standard base64 has neither `+` nor `/` (the control user)
#   berth-plus  a~b~c~       standard base64 has `+` (and no `/`)
#   berth-slash s?s?s?       standard base64 has `/` (and no `+`)
# Passwords hold no `"`, `\` or space (they are written into JSON and split on spaces).
AUTH_REGISTRY_USERS=(
  "berth s?wordfish"
  "berth-plus a~b~c~"
  "berth-slash s?s?s?"
)
WAIT_SECONDS=60

say() { echo "test-env: $*"; }
die() {
  echo "test-env: ERROR: $*" >&2
  exit 1
}

# Runs "$@" once a second until it succeeds, for at most $1 seconds.
wait_for() {
  local seconds=$1
  shift
  local deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || return 1
    sleep 1
  done
}

# Waits, at most $WAIT_SECONDS, for a process started by start_detached ($1, its pid) to
# pass "${@:2}"; fails early if it dies. Its log ($2) is shown on failure.
wait_started() {
  local pid=$1 log=$2 what=$3
  shift 3
  local deadline=$((SECONDS + WAIT_SECONDS))
  until "$@" >/dev/null 2>&1; do
    # Dead, or a zombie not yet reaped by init.
    [[ $(ps -o stat= -p "$pid" 2>/dev/null) == [^Z]* ]] || die_with_log "$log" "$what (pid $pid) exited"
    ((SECONDS < deadline)) || die_with_log "$log" "$what (pid $pid) did not answer in ${WAIT_SECONDS}s"
    sleep 1
  done
}

# Fails with the last lines of a log file.
die_with_log() {
  local log=$1
  shift
  {
    echo "test-env: ERROR: $*"
    echo "---- last lines of $log:"
    tail -n 40 "$log" 2>/dev/null || true
    echo "----"
  } >&2
  exit 1
}

# Starts "$@" detached from this script (own session, no terminal, output to $log) so
# that it outlives it; prints its pid. No other descriptor is passed on (not the lock's,
# nor a pipe of whoever runs this script, which would then wait for the daemon's end).
start_detached() {
  local log=$1
  shift
  mkdir -p "$(dirname "$log")"
  echo "==== $(date -Is) starting: $*" >>"$log"
  (
    for fd in /proc/self/fd/*; do
      fd=${fd##*/}
      if ((fd > 2)); then eval "exec $fd>&-"; fi
    done
    exec setsid nohup "$@" </dev/null >>"$log" 2>&1
  ) &
  echo $!
}

APT_UPDATED=
apt_install() {
  if [[ -z $APT_UPDATED ]]; then
    say "apt-get update"
    apt-get -q -o DPkg::Lock::Timeout=300 update >/dev/null
    APT_UPDATED=1
  fi
  say "apt-get install $*"
  apt-get -q -y -o DPkg::Lock::Timeout=300 -o Dpkg::Options::=--force-confdef \
    -o Dpkg::Options::=--force-confold install --no-install-recommends "$@" >/dev/null
}

package_installed() {
  [[ $(dpkg-query -W -f '${Status}' "$1" 2>/dev/null) == "install ok installed" ]]
}

[[ $(id -u) == 0 ]] || die "must run as root (it installs packages and starts daemons)"

# Two checkouts setting up at once would start two registries or build two images.
mkdir -p "$(dirname "$LOCK_FILE")"
exec 9>"$LOCK_FILE"
flock -w 600 9 || die "another test-env.sh held $LOCK_FILE for 10 minutes"

command -v curl >/dev/null || apt_install curl
# scripts/otel-ecs-detector.sh makes a Python virtual environment (pip from PyPI).
python3 -c 'import ensurepip, venv' 2>/dev/null || apt_install python3 python3-venv

# ---- 5. etcd and protoc (first: the build needs protoc) -----------------------------
ETCD_PACKAGES=(etcd-server etcd-client protobuf-compiler)
POLICY_RC=/usr/sbin/policy-rc.d

# Stops an etcd that the package started on the default client port 2379 (tests never use
# it); only a process whose executable is /usr/bin/etcd is stopped.
stop_default_etcd() {
  if [[ -d /run/systemd/system ]] && command -v systemctl >/dev/null; then
    systemctl disable --now etcd >/dev/null 2>&1 || true
  fi
  local pid
  for pid in $(ss -Hltnp 'sport = :2379' 2>/dev/null | grep -o 'pid=[0-9]*' | cut -d= -f2 | sort -u); do
    if [[ $(readlink "/proc/$pid/exe" 2>/dev/null) == /usr/bin/etcd ]]; then
      kill "$pid" 2>/dev/null || true
      say "stopped the default etcd (pid $pid) the package started on port 2379"
    fi
  done
}

install_etcd() {
  local missing=() package
  for package in "${ETCD_PACKAGES[@]}"; do
    package_installed "$package" || missing+=("$package")
  done
  if ((${#missing[@]} == 0)); then
    say "etcd-server, etcd-client and protobuf-compiler installed"
    return
  fi
  # Keep the package's service from starting while it installs (invoke-rc.d asks
  # policy-rc.d; 101 = "action not allowed"). A policy-rc.d already there is put back after.
  local saved=
  if [[ -e $POLICY_RC ]]; then
    saved=$(mktemp)
    cp -p "$POLICY_RC" "$saved"
  fi
  printf '%s\n' '#!/bin/sh' '# Written by berth scripts/test-env.sh while it installs etcd.' 'exit 101' >"$POLICY_RC"
  chmod 0755 "$POLICY_RC"
  local status=0
  apt_install "${missing[@]}" || status=$?
  if [[ -n $saved ]]; then
    mv -f "$saved" "$POLICY_RC"
  else
    rm -f "$POLICY_RC"
  fi
  ((status == 0)) || die "apt-get install ${missing[*]} failed (exit $status)"
  stop_default_etcd
  say "installed ${missing[*]}"
}

install_etcd
[[ -x /usr/bin/etcd ]] || die "/usr/bin/etcd is missing after installing etcd-server"
command -v protoc >/dev/null || die "protoc is missing after installing protobuf-compiler"
say "$(/usr/bin/etcd --version | head -1), $(protoc --version)"

# ---- 1. Docker daemon --------------------------------------------------------------
docker_answers() { timeout 20 docker info >/dev/null 2>&1; }
# The pid of the dockerd that owns the default pid file, if it is alive (a dockerd on
# another socket, say a rootless one, is not it).
DOCKERD_PIDFILE=/var/run/docker.pid
dockerd_running() {
  local pid
  pid=$(cat "$DOCKERD_PIDFILE" 2>/dev/null) || return 1
  [[ $pid =~ ^[0-9]+$ && $(cat "/proc/$pid/comm" 2>/dev/null) == dockerd ]] || return 1
  echo "$pid"
}

if docker_answers; then
  say "docker daemon answers"
else
  if ! command -v dockerd >/dev/null || ! command -v docker >/dev/null; then
    apt_install docker.io
  fi
  log="$LOG_DIR/berth-dockerd.log"
  # The package's own scripts may have started it; one that is starting is waited for.
  if docker_answers; then
    say "docker daemon answers (started by its package)"
  elif running=$(dockerd_running); then
    # A second dockerd would refuse to start beside it (same pid file) anyway.
    say "dockerd (pid $running) runs but does not answer yet; waiting up to ${WAIT_SECONDS}s"
    wait_for "$WAIT_SECONDS" docker_answers ||
      die "dockerd (pid $running, pid file $DOCKERD_PIDFILE) runs but does not answer in ${WAIT_SECONDS}s"
    say "docker daemon answers"
  else
    pid=$(start_detached "$log" dockerd)
    say "started dockerd (pid $pid, log $log); waiting up to ${WAIT_SECONDS}s"
    wait_started "$pid" "$log" dockerd docker_answers
    say "docker daemon answers"
  fi
fi

# ---- 2. busybox:latest, built locally ----------------------------------------------
check_image() {
  local out
  out=$(timeout 60 docker run --rm "$IMAGE" sh -c 'echo ok; nc --help 2>&1 | head -1; wget --help 2>&1 | head -1; httpd --help 2>&1 | head -1; sleep 0') ||
    die "'docker run --rm $IMAGE sh -c ...' failed: $out"
  [[ $(head -1 <<<"$out") == ok && $(grep -c BusyBox <<<"$out") == 3 ]] ||
    die "$IMAGE does not run busybox's sh, nc, wget and httpd; it printed: $out"
  # Like the official image: no command given means `sh`, which exits at once (no stdin).
  timeout 60 docker run --rm "$IMAGE" >/dev/null || die "'docker run --rm $IMAGE' (no command) failed"
}

build_image() {
  if ! package_installed busybox-static; then
    apt_install busybox-static
  fi
  local bb=/bin/busybox
  "$bb" --list >/dev/null || die "$bb does not run"
  local tmp
  tmp=$(mktemp -d)
  # shellcheck disable=SC2064 # expand $tmp now
  trap "rm -rf '$tmp'" EXIT
  local root=$tmp/rootfs
  mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,etc,proc,sys,dev,root,home,var,tmp}
  chmod 1777 "$root/tmp"
  chmod 0700 "$root/root"
  cp "$bb" "$root/bin/busybox"
  local applet
  while read -r applet; do
    [[ -n $applet && $applet != busybox && ! -e $root/bin/$applet ]] || continue
    ln -s busybox "$root/bin/$applet"
  done < <("$bb" --list)
  printf '%s\n' 'root:x:0:0:root:/root:/bin/sh' 'nobody:x:65534:65534:nobody:/home:/bin/false' >"$root/etc/passwd"
  printf '%s\n' 'root:x:0:' 'nobody:x:65534:' >"$root/etc/group"
  tar --numeric-owner --owner=0 --group=0 -C "$root" -cf "$tmp/rootfs.tar" .
  docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["sh"]' \
    --message "berth scripts/test-env.sh: Debian busybox-static $(dpkg-query -W -f '${Version}' busybox-static)" \
    "$tmp/rootfs.tar" "$IMAGE" >/dev/null
  local applets
  applets=$(find "$root/bin" -type l | wc -l)
  rm -rf "$tmp"
  trap - EXIT
  say "built $IMAGE: $bb from busybox-static with $applets applets in /bin, imported with CMD [\"sh\"]"
}

if docker image inspect "$IMAGE" >/dev/null 2>&1; then
  check_image
  say "$IMAGE present and runs sh, nc, wget, httpd"
else
  build_image
  check_image
  say "$IMAGE runs sh, nc, wget, httpd"
fi

# ---- 3. registries -----------------------------------------------------------------
# The HTTP status of GET /v2/ on a port: 200 without auth, 401 with; 000 when nothing answers.
registry_status() {
  curl -sS -o /dev/null -m 5 -w '%{http_code}' "http://127.0.0.1:$1/v2/" 2>/dev/null || true
}
registry_answers() { [[ $(registry_status "$1") =~ ^(200|401)$ ]]; }

# start_registry PORT DIR [HTPASSWD]: makes sure a Distribution registry (Debian's
# docker-registry) answers on 127.0.0.1:PORT, keeping its blobs under DIR/data; with
# HTPASSWD (a bcrypt htpasswd file) it asks for basic auth. One that answers is kept.
start_registry() {
  local port=$1 dir=$2 htpasswd=${3:-}
  if registry_answers "$port"; then
    say "registry on 127.0.0.1:$port answers"
    return
  fi
  if ! package_installed docker-registry; then
    apt_install docker-registry
  fi
  mkdir -p "$dir/data"
  local config=$dir/config.yml log=$LOG_DIR/berth-registry-$port.log
  {
    echo "# Written by berth scripts/test-env.sh; rewritten at each start."
    echo "version: 0.1"
    echo "log:"
    echo "  level: warn"
    echo "  accesslog:"
    echo "    disabled: true"
    echo "storage:"
    echo "  filesystem:"
    echo "    rootdirectory: $dir/data"
    echo "  delete:"
    echo "    enabled: true"
    echo "http:"
    echo "  addr: 127.0.0.1:$port"
    echo "  secret: berth-test-$port"
    if [[ -n $htpasswd ]]; then
      [[ -f $htpasswd ]] || die "htpasswd file $htpasswd is missing"
      echo "auth:"
      echo "  htpasswd:"
      echo "    realm: berth-test-$port"
      echo "    path: $htpasswd"
    fi
  } >"$config"
  local pid
  pid=$(start_detached "$log" /usr/bin/docker-registry serve "$config")
  echo "$pid" >"$dir/registry.pid"
  wait_started "$pid" "$log" "the registry on 127.0.0.1:$port" registry_answers "$port"
  say "started registry on 127.0.0.1:$port (pid $pid, data $dir/data, log $log)"
}

# Checks that the registry serves the manifest of REPO:latest and every blob it names,
# with the right digests (what a daemon without the layers would fetch).
# Optional $3: "user:password" for a registry with basic auth.
check_registry_blobs() {
  local base=http://127.0.0.1:$1/v2/$2 manifest digest
  local auth=()
  [[ -z ${3:-} ]] || auth=(-u "$3")
  manifest=$(curl -fsS -m 30 "${auth[@]}" -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' "$base/manifests/latest") ||
    die "no manifest for $2:latest on 127.0.0.1:$1"
  local n=0
  while read -r digest; do
    [[ $(curl -fsS -m 60 "${auth[@]}" "$base/blobs/$digest" | sha256sum | cut -d' ' -f1) == "${digest#sha256:}" ]] ||
      die "blob $digest of $2:latest on 127.0.0.1:$1 is missing or corrupt"
    n=$((n + 1))
  done < <(grep -o 'sha256:[0-9a-f]\{64\}' <<<"$manifest" | sort -u)
  ((n >= 2)) || die "the manifest of $2:latest on 127.0.0.1:$1 names $n blobs: $manifest"
}

# Pushes $IMAGE to the registry on PORT unless it has busybox:latest, then proves a pull.
publish_busybox() {
  local port=$1 ref=127.0.0.1:$1/busybox:latest out tags
  tags=$(curl -fsS -m 10 "http://127.0.0.1:$port/v2/busybox/tags/list" 2>/dev/null) || tags=
  if [[ $tags == *'"latest"'* ]]; then
    say "registry on 127.0.0.1:$port has busybox:latest"
    # Not untagged here: tests of another checkout may be using $ref right now.
    out=$(timeout 120 docker pull "$ref" 2>&1) || die "docker pull $ref failed: $out"
    say "docker pull $ref: $(grep -m1 '^Status:' <<<"$out" || tail -1 <<<"$out")"
  else
    docker tag "$IMAGE" "$ref"
    out=$(timeout 300 docker push "$ref" 2>&1) || die "docker push $ref failed: $out"
    say "pushed $IMAGE to $ref"
    # Proof that a pull works: drop the tag just made, pull it back.
    docker rmi "$ref" >/dev/null
    out=$(timeout 120 docker pull "$ref" 2>&1) || die "docker pull $ref failed: $out"
    say "removed the local tag $ref and pulled it back"
  fi
  check_registry_blobs "$port" busybox
  say "registry on 127.0.0.1:$port serves busybox:latest (manifest and blobs check out)"
}

start_registry "$REGISTRY_PORT" "$STATE_DIR/registry-$REGISTRY_PORT"
publish_busybox "$REGISTRY_PORT"

# ---- 4. registry with basic auth ---------------------------------------------------
AUTH_DIR=$STATE_DIR/registry-$AUTH_REGISTRY_PORT
AUTH_HTPASSWD=$AUTH_DIR/htpasswd
AUTH_USERS_JSON=$AUTH_DIR/users.json

# True when the htpasswd file has exactly the users of AUTH_REGISTRY_USERS, each with its
# password (bcrypt salts differ at each write, so the file is checked, not compared).
htpasswd_current() {
  [[ -f $AUTH_HTPASSWD ]] || return 1
  local entry user password
  [[ $(grep -c . "$AUTH_HTPASSWD") == "${#AUTH_REGISTRY_USERS[@]}" ]] || return 1
  for entry in "${AUTH_REGISTRY_USERS[@]}"; do
    read -r user password <<<"$entry"
    [[ $(grep -m1 "^$user:" "$AUTH_HTPASSWD") == "$user:\$2y\$"* ]] || return 1
    htpasswd -v -b "$AUTH_HTPASSWD" "$user" "$password" >/dev/null 2>&1 || return 1
  done
}

# Writes the htpasswd file (bcrypt) and users.json, for the tests, unless current.
write_auth_users() {
  command -v htpasswd >/dev/null || apt_install apache2-utils
  mkdir -p "$AUTH_DIR"
  local entry user password
  if htpasswd_current; then
    say "htpasswd of 127.0.0.1:$AUTH_REGISTRY_PORT has its ${#AUTH_REGISTRY_USERS[@]} test users"
  else
    rm -f "$AUTH_HTPASSWD.new"
    for entry in "${AUTH_REGISTRY_USERS[@]}"; do
      read -r user password <<<"$entry"
      if [[ -f $AUTH_HTPASSWD.new ]]; then
        htpasswd -B -b "$AUTH_HTPASSWD.new" "$user" "$password" >/dev/null 2>&1
      else
        htpasswd -B -b -c "$AUTH_HTPASSWD.new" "$user" "$password" >/dev/null 2>&1
      fi || die "htpasswd -B failed for user $user"
    done
    chmod 0644 "$AUTH_HTPASSWD.new"
    mv -f "$AUTH_HTPASSWD.new" "$AUTH_HTPASSWD"
    say "wrote $AUTH_HTPASSWD (bcrypt) for users: ${AUTH_REGISTRY_USERS[*]%% *}"
  fi
  local json sep=
  json="{\"serveraddress\": \"127.0.0.1:$AUTH_REGISTRY_PORT\", \"users\": ["
  for entry in "${AUTH_REGISTRY_USERS[@]}"; do
    read -r user password <<<"$entry"
    [[ $user$password != *[\"\\]* ]] || die "test user $user: a quote or backslash in the name or password"
    json+="$sep{\"username\": \"$user\", \"password\": \"$password\"}"
    sep=", "
  done
  json+="]}"
  if [[ $(cat "$AUTH_USERS_JSON" 2>/dev/null) != "$json" ]]; then
    printf '%s\n' "$json" >"$AUTH_USERS_JSON.new"
    chmod 0644 "$AUTH_USERS_JSON.new"
    mv -f "$AUTH_USERS_JSON.new" "$AUTH_USERS_JSON"
    say "wrote $AUTH_USERS_JSON"
  fi
}

# The HTTP status of GET PATH on the registry with basic auth, as user $2 ("" for none).
auth_registry_status() {
  local path=$1 cred=${2:-} auth=()
  [[ -z $cred ]] || auth=(-u "$cred")
  curl -sS -o /dev/null -m 5 "${auth[@]}" -w '%{http_code}' "http://127.0.0.1:$AUTH_REGISTRY_PORT$path" 2>/dev/null || true
}

# Checks that /v2/ asks for credentials and that every test user's are taken.
check_auth_registry() {
  local status entry user password
  status=$(auth_registry_status /v2/)
  [[ $status == 401 ]] || die "GET /v2/ on 127.0.0.1:$AUTH_REGISTRY_PORT without credentials answered $status, not 401"
  for entry in "${AUTH_REGISTRY_USERS[@]}"; do
    read -r user password <<<"$entry"
    status=$(auth_registry_status /v2/ "$user:$password")
    [[ $status == 200 ]] ||
      die "GET /v2/ on 127.0.0.1:$AUTH_REGISTRY_PORT as $user answered $status, not 200 (a registry started with an older htpasswd? stop the one of $AUTH_DIR/registry.pid and run this again)"
  done
  status=$(auth_registry_status /v2/ "berth:not-the-password")
  [[ $status == 401 ]] || die "GET /v2/ on 127.0.0.1:$AUTH_REGISTRY_PORT with a wrong password answered $status, not 401"
  say "registry on 127.0.0.1:$AUTH_REGISTRY_PORT: /v2/ answers 401 without credentials, 200 for each test user"
}

# Pushes $IMAGE as 127.0.0.1:PORT/busybox:latest unless the registry has it, logged in
# with a DOCKER_CONFIG of its own (the user's Docker config is not touched).
publish_busybox_auth() {
  local ref=127.0.0.1:$AUTH_REGISTRY_PORT/busybox:latest user password tags out
  read -r user password <<<"${AUTH_REGISTRY_USERS[0]}"
  tags=$(curl -fsS -m 10 -u "$user:$password" "http://127.0.0.1:$AUTH_REGISTRY_PORT/v2/busybox/tags/list" 2>/dev/null) || tags=
  if [[ $tags == *'"latest"'* ]]; then
    say "registry on 127.0.0.1:$AUTH_REGISTRY_PORT has busybox:latest"
  else
    local config
    config=$(mktemp -d)
    # shellcheck disable=SC2064 # expand $config now
    trap "rm -rf '$config'" EXIT
    out=$(docker --config "$config" login -u "$user" --password-stdin "127.0.0.1:$AUTH_REGISTRY_PORT" <<<"$password" 2>&1) ||
      die "docker login 127.0.0.1:$AUTH_REGISTRY_PORT as $user failed: $out"
    docker tag "$IMAGE" "$ref"
    out=$(timeout 300 docker --config "$config" push "$ref" 2>&1) || die "docker push $ref failed: $out"
    say "pushed $IMAGE to $ref (as $user)"
    # Proof that a pull with credentials works: drop the tag just made, pull it back.
    docker rmi "$ref" >/dev/null
    out=$(timeout 120 docker --config "$config" pull "$ref" 2>&1) || die "docker pull $ref (logged in) failed: $out"
    say "removed the local tag $ref and pulled it back (logged in)"
    rm -rf "$config"
    trap - EXIT
    tags=$(curl -fsS -m 10 -u "$user:$password" "http://127.0.0.1:$AUTH_REGISTRY_PORT/v2/busybox/tags/list" 2>/dev/null) || tags=
    [[ $tags == *'"latest"'* ]] || die "the tag list of busybox on 127.0.0.1:$AUTH_REGISTRY_PORT lacks latest after the push: $tags"
  fi
  check_registry_blobs "$AUTH_REGISTRY_PORT" busybox "$user:$password"
  say "registry on 127.0.0.1:$AUTH_REGISTRY_PORT serves busybox:latest with credentials (tag list, manifest and blobs check out)"
}

write_auth_users
start_registry "$AUTH_REGISTRY_PORT" "$AUTH_DIR" "$AUTH_HTPASSWD"
check_auth_registry
publish_busybox_auth

say "ready"
