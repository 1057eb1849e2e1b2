#!/usr/bin/env bash
# Per-event producer CPU of the drain's Kafka path vs raw librdkafka calls
# (bench/experiments/drain, issue 13 point 4), against a fresh Tansu broker
# (TANSU_BIN or /opt/tansu/bin/tansu). Arguments pass through:
#   bench/experiments/drain.sh [--events N] [--rounds R]
# Builds into the root target/ so librdkafka's build is shared.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"
cd "$root/bench/experiments/drain"
cargo build --release --quiet
exec "$CARGO_TARGET_DIR/release/drain_produce_cost" "$@"
