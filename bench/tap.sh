#!/usr/bin/env bash
# What the drain's tap hook costs per delivered event, with nobody tapping
# and with a client, next to the bare loop and a relaxed counter add, in one
# process (crates/core/examples/tap_bench.rs). Arguments pass through, e.g.
# bench/tap.sh --runs 11 --ops 5000000. Use a quiet machine.
# The drain's throughput with and without a tapping client:
# bench/drain.sh --tap 'GLOB' (see crates/cli/examples/drain_bench/).
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo run --release -p shopify-events-core --example tap_bench -- "$@"
