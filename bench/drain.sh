#!/usr/bin/env bash
# Drain throughput into Tansu, from the queue and from spool files, vs
# librdkafka's own producers (same run): rust-rdkafka's BaseProducer in the
# benchmark and librdkafka's C rdkafka_performance (bench/rdkafka_performance.sh
# builds it from the same librdkafka); idle CPU with 32 live writer files.
# Builds the release drain, rdkafka_performance and the benchmark, then runs
# it; arguments pass through, e.g. bench/drain.sh --events 200000 --runs 5
# --payload 200 [--source queue|spool|both] [--baseline rust|c|both] [--tap GLOB].
# Needs a Tansu binary (TANSU_BIN, /opt/tansu/bin/tansu or PATH; script/tansu
# install) and root (raises kernel.msgmnb, never lowers it) or a msgmnb that
# already allows the queue's capacity.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p shopify-events-cli --bin shopify-events
rdkperf=$(bench/rdkafka_performance.sh)
exec cargo run --release -p shopify-events-cli --example drain_bench -- --rdkperf "$rdkperf" "$@"
