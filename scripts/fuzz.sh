#!/usr/bin/env bash
# berth's fuzz targets (fuzz/, cargo-fuzz + libFuzzer), each for a bounded time, on the
# stable toolchain without a sanitizer (`cargo fuzz run -s none`). Exits non-zero when any
# target crashes (a panic, a failed check, a timeout, or running out of the memory limit);
# the crashing input is kept in fuzz/artifacts/<target>/.
#
# Usage: scripts/fuzz.sh [seconds per target] [target...]
#   seconds per target  default $FUZZ_SECONDS, else 20
#   target              task_definition, store_loader, api_body (default: all three)
#
# Environment:
#   FUZZ_SECONDS       seconds per target when the first argument is not given (20)
#   FUZZ_TASKDEFS      the real task definitions that seed task_definition and api_body
#                      (default: ../shared/ecs-taskdefs beside the checkout); they are
#                      someone else's text and are never copied into the project, only into
#                      the temporary corpus of a run
#   FUZZ_KEEP=1        keep the run's temporary directory (corpora, logs) and print it
#   FUZZ_REGEN_SEEDS=1 rewrite fuzz/corpus/store_loader/ (real state files made by the
#                      store: `cargo run --example make_seeds`, a release build of its own)
#   FUZZ_UPDATE_LOCK=1 let cargo update fuzz/Cargo.lock when the crates' dependencies changed
#                      (otherwise a stale lock fails the run, as --locked does in test.sh)
#   FUZZ_TARGET_DIR    cargo's target directory for the fuzz build (default fuzz/target);
#                      one outside the checkout lets a fresh clone (CI) reuse an earlier build
#   BERTH_FUZZ_TMPDIR  where store_loader makes its data directories (default /dev/shm,
#                      else the system temp dir); each is removed after its input
#
# What the runs are given (libFuzzer flags after `--`):
#   -rss_limit_mb=2048  guards against unbounded allocation: a process that grows past 2 GiB
#                       is a crash (without a sanitizer libFuzzer checks the RSS every second)
#   -max_len=65536      inputs of at most 64 KiB (the store seeds are compacted to fit)
#   -timeout=10         one input taking more than 10 s is a crash
#   -print_final_stats=1  executions, peak RSS (the summary below)
# Each target runs on a copy of its seeds in a temporary directory (outside the checkout):
# what the run adds to the corpus is thrown away with it.
#
# Installs what is missing: cargo-fuzz (`cargo install cargo-fuzz --locked`), and a C++
# compiler (g++ from Debian) that libfuzzer-sys needs to build libFuzzer. Safe to rerun.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

all_targets=(task_definition store_loader api_body)
seconds=${FUZZ_SECONDS:-20}
if [[ $# -gt 0 ]]; then
  seconds=$1
  shift
fi
if ! [[ $seconds =~ ^[0-9]+$ ]] || [[ $seconds -lt 1 ]]; then
  echo "fuzz.sh: seconds per target must be a positive whole number, not '$seconds'" >&2
  echo "usage: scripts/fuzz.sh [seconds per target] [target...]" >&2
  exit 2
fi
targets=("$@")
if [[ ${#targets[@]} -eq 0 ]]; then
  targets=("${all_targets[@]}")
fi
for t in "${targets[@]}"; do
  if [[ ! -f fuzz/fuzz_targets/$t.rs ]]; then
    echo "fuzz.sh: no fuzz target '$t' (there are: ${all_targets[*]})" >&2
    exit 2
  fi
done

# Tools.
if ! command -v c++ >/dev/null 2>&1 && ! command -v clang++ >/dev/null 2>&1; then
  echo "== installing g++ (libfuzzer-sys builds libFuzzer from C++)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq g++ >/dev/null
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "== installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi

# The pinned dependencies (fuzz/ is a workspace of its own, with its own Cargo.lock).
if ! cargo metadata --locked --format-version 1 --manifest-path fuzz/Cargo.toml >/dev/null 2>&1; then
  if [[ ${FUZZ_UPDATE_LOCK:-0} == 1 ]]; then
    echo "== updating fuzz/Cargo.lock"
    cargo update --workspace --manifest-path fuzz/Cargo.toml
  else
    echo "fuzz.sh: fuzz/Cargo.lock is out of date (a berth crate's dependencies changed);" >&2
    echo "  refresh it: FUZZ_UPDATE_LOCK=1 scripts/fuzz.sh, or cargo update --workspace --manifest-path fuzz/Cargo.toml" >&2
    exit 1
  fi
fi

# The store_loader seeds: real state files, committed; made again when asked or missing.
if [[ ${FUZZ_REGEN_SEEDS:-0} == 1 ]] || ! compgen -G "fuzz/corpus/store_loader/*.redb" >/dev/null; then
  echo "== making the store_loader seeds"
  cargo run --release --quiet --manifest-path fuzz/Cargo.toml --example make_seeds
fi

taskdefs=${FUZZ_TASKDEFS:-$root/../shared/ecs-taskdefs}
if ! compgen -G "$taskdefs/*.json" >/dev/null; then
  echo "fuzz.sh: warning: no task definitions in $taskdefs; task_definition and api_body start from an empty corpus" >&2
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/berth-fuzz.XXXXXX")
cleanup() {
  if [[ ${FUZZ_KEEP:-0} == 1 ]]; then
    echo "fuzz.sh: kept $work"
  else
    rm -rf "$work"
  fi
}
trap cleanup EXIT

echo "== building the fuzz targets (cargo fuzz build -s none)"
build_start=$(date +%s)
target_dir=()
if [[ -n ${FUZZ_TARGET_DIR:-} ]]; then
  target_dir=(--target-dir "$FUZZ_TARGET_DIR")
fi
build=(cargo fuzz build -s none "${target_dir[@]}")
if [[ ${#targets[@]} -eq 1 ]]; then
  build+=("${targets[0]}")
fi
if ! "${build[@]}" >"$work/build.log" 2>&1; then
  grep -Ev '^\s+(Compiling|Downloaded|Downloading)' "$work/build.log" | tail -40 >&2
  echo "fuzz.sh: the build failed" >&2
  exit 1
fi
echo "   built in $(($(date +%s) - build_start)) s"

failed=()
printf '%-16s %12s %9s %9s %12s %9s  %s\n' target executions exec/s corpus corpus_size peak_rss result >"$work/summary"
for t in "${targets[@]}"; do
  corpus=$work/corpus/$t
  mkdir -p "$corpus"
  case $t in
    task_definition | api_body) compgen -G "$taskdefs/*.json" >/dev/null && cp "$taskdefs"/*.json "$corpus"/ ;;
  esac
  if [[ -d fuzz/corpus/$t ]]; then
    cp fuzz/corpus/"$t"/* "$corpus"/ 2>/dev/null || true
  fi
  log=$work/$t.log
  echo "== fuzzing $t for ${seconds} s (log: $log)"
  set +e
  cargo fuzz run -s none "${target_dir[@]}" "$t" "$corpus" -- \
    -max_total_time="$seconds" -rss_limit_mb=2048 -max_len=65536 -timeout=10 -print_final_stats=1 >"$log" 2>&1
  rc=$?
  set -e
  done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -1 || true)
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$log" | tail -1)
  eps=$(sed -n 's/.*exec\/s: \([0-9]*\).*/\1/p' <<<"$done_line")
  corp=$(sed -n 's/.*corp: \([0-9]*\)\/\([0-9.]*[A-Za-z]*\).*/\1 \2/p' <<<"$done_line")
  corp=${corp:-? ?}
  if [[ $rc -eq 0 ]]; then
    result="no crash"
  else
    result="CRASH (exit $rc)"
    failed+=("$t")
  fi
  printf '%-16s %12s %9s %9s %12s %7sMB  %s\n' "$t" "${execs:-?}" "${eps:-?}" \
    "${corp% *}" "${corp#* }" "${rss:-?}" "$result" | tee -a "$work/summary"
  if [[ $rc -ne 0 ]]; then
    echo "---- $t: the end of its log" >&2
    grep -Ev '^#[0-9]+[[:space:]]+(NEW|REDUCE|pulse)' "$log" | tail -40 >&2
    echo "---- crashing inputs: fuzz/artifacts/$t/ (replay: cargo fuzz run -s none $t <file>)" >&2
  fi
  if grep -q 'berth caught a panic' "$log"; then
    echo "   note: $(grep -c 'berth caught a panic' "$log") report(s) of panics berth caught itself (see the log)"
    grep 'berth caught a panic' "$log" | head -3 | sed 's/^/   /'
  fi
done

echo "== summary (${seconds} s per target)"
cat "$work/summary"
if [[ ${#failed[@]} -gt 0 ]]; then
  echo "fuzz.sh: crashed: ${failed[*]}" >&2
  exit 1
fi
echo "fuzz.sh: no crash"
