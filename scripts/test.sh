#!/usr/bin/env bash
# berth's whole test suite, as CI runs it: formatting, lints, docs, then every test.
# Usage: scripts/test.sh            (from anywhere in the checkout)
set -euo pipefail
cd "$(dirname "$0")/.."

# Tools the suite needs; installed when missing, so a fresh machine works.
if ! cargo nextest --version >/dev/null 2>&1; then
  cargo install --locked cargo-nextest
fi

# What the Docker tests need: a daemon, a local busybox image, a registry on 127.0.0.1:51670.
echo "== test environment"
scripts/test-env.sh

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo doc"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked --quiet
echo "== doc tests"
cargo test --workspace --doc --locked --quiet
echo "== tests"
cargo nextest run --workspace --locked --no-fail-fast
echo "== OpenTelemetry's ECS resource detector against the metadata endpoint"
scripts/otel-ecs-detector.sh
# Bounded fuzzing of the task-definition parser, the store loader and the API bodies
# (longer runs: see BENCHMARKS.md). The instrumented build is kept outside the checkout so
# that later runs on this machine (CI clones afresh) reuse it.
echo "== fuzz (bounded)"
FUZZ_TARGET_DIR="${FUZZ_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/berth-fuzz-target}" \
  scripts/fuzz.sh "${FUZZ_SECONDS:-10}"
