#!/usr/bin/env bash
# Builds the benchmark-only prototypes (bench/experiments/native, issue 13)
# into bench/experiments/native/lib/shopify_events_experiments.so, with the
# product's release profile. The real extension is built by `rake compile`.
set -euo pipefail
cd "$(dirname "$0")/native"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/../../../target/experiments}"
cargo build --release --quiet
mkdir -p lib
cp "$CARGO_TARGET_DIR/release/libshopify_events_experiments.so" lib/shopify_events_experiments.so.tmp
mv lib/shopify_events_experiments.so.tmp lib/shopify_events_experiments.so
