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
