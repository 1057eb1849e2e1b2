#!/usr/bin/env bash
# What loss accounting costs per event: the sequencer and the stamp on the
# emit side, the tracker's admit on the drain side, each next to its
# baseline in the same process (crates/core/examples/accounting_bench.rs).
# Arguments pass through, e.g. bench/accounting.sh --runs 11 --ops 5000000.
# Use a quiet machine.
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo run --release -p shopify-events-core --example accounting_bench -- "$@"
