#!/usr/bin/env bash
# Drain throughput into Tansu, from the queue and from spool files, vs
# librdkafka's own producer (same run); idle CPU with 32 live writer files.
# Builds the release drain and the benchmark, then runs it; arguments pass
# through, e.g. bench/drain.sh --events 200000 --runs 5 --payload 200
# [--source queue|spool|both].
# Needs a Tansu binary (TANSU_BIN, /opt/tansu/bin/tansu or PATH; script/tansu
# install) and root (raises kernel.msgmnb, never lowers it) or a msgmnb that
# already allows the queue's capacity.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p shopify-events-cli --bin shopify-events
exec cargo run --release -p shopify-events-cli --example drain_bench -- "$@"
