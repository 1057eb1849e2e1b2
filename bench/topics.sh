#!/usr/bin/env bash
# The drain's per-topic counter next to a bare counter add, in one process
# (crates/core/examples/topics_bench.rs). Arguments pass through, e.g.
# bench/topics.sh --runs 11 --ops 5000000. Use a quiet machine.
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo run --release -p shopify-events-core --example topics_bench -- "$@"
