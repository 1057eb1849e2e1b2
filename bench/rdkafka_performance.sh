#!/usr/bin/env bash
# Builds librdkafka's own C producer benchmark, examples/rdkafka_performance.c,
# from the librdkafka that rdkafka-sys built for the release drain (same
# version, same static library, same configure output), and prints its path.
#
#   bench/rdkafka_performance.sh        -> $TARGET/rdkperf/rdkafka_performance
#
# Needs `cargo build --release -p shopify-events-cli` first (it builds
# librdkafka). TARGET is $CARGO_TARGET_DIR or ./target. Rebuilt only when
# missing or older than librdkafka.a, the shim or this script.
#
# The binary links crates/cli/examples/drain_bench/rdkperf_shim.c with
# -Wl,--wrap: without RDKPERF_BENCH in its environment it is the stock tool;
# drain_bench sets RDKPERF_BENCH=1 for a warm-up before the tool's clock and
# per-message random-hex payloads (see the shim's header comment).
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-$PWD/target}"
shim="$PWD/crates/cli/examples/drain_bench/rdkperf_shim.c"
script="$PWD/bench/rdkafka_performance.sh"

die() {
  echo "rdkafka_performance.sh: $*" >&2
  exit 1
}

# The newest of the candidates the glob matches that exists (rdkafka-sys and
# zstd-sys each have one build dir per build script run; only the one that
# built the library holds it).
newest() {
  local best="" f
  for f in "$@"; do
    [[ -f "$f" ]] || continue
    if [[ -z "$best" || "$f" -nt "$best" ]]; then best="$f"; fi
  done
  echo "$best"
}

lib=$(newest "$target"/release/build/rdkafka-sys-*/out/src/librdkafka.a)
[[ -n "$lib" ]] || die "no librdkafka.a under $target/release/build/rdkafka-sys-*/out/src/;
run 'cargo build --release -p shopify-events-cli' first"
out=$(dirname "$(dirname "$lib")")
src="$out/examples/rdkafka_performance.c"
[[ -f "$src" ]] || die "$src is missing (rdkafka-sys copies librdkafka's sources into its out dir)"
[[ -f "$out/config.h" ]] || die "$out/config.h is missing (librdkafka's configure did not run there)"
zstd=""
if grep -q '^#define WITH_ZSTD 1' "$out/config.h"; then
  zstd=$(newest "$target"/release/build/zstd-sys-*/out/libzstd.a)
  [[ -n "$zstd" ]] || die "librdkafka was built with zstd but no libzstd.a under $target/release/build/zstd-sys-*/out/"
fi

bin="$target/rdkperf/rdkafka_performance"
if [[ -x "$bin" && "$bin" -nt "$lib" && "$bin" -nt "$shim" && "$bin" -nt "$script" ]]; then
  echo "$bin"
  exit 0
fi
mkdir -p "$(dirname "$bin")"
wraps=()
for f in rd_kafka_topic_new rd_kafka_topic_destroy rd_kafka_produce rd_kafka_conf_set_dr_msg_cb; do
  wraps+=("-Wl,--wrap=$f")
done
echo "rdkafka_performance.sh: building $bin from $out" >&2
(
  cd "$out"
  gcc -O2 -I src -o "$bin.tmp" examples/rdkafka_performance.c "$shim" "${wraps[@]}" \
    src/librdkafka.a ${zstd:+"$zstd"} -lssl -lcrypto -lz -lpthread -lm -ldl -lrt
) || die "gcc failed (needs gcc and the libssl and zlib development files, which the drain's build needed too)"
mv "$bin.tmp" "$bin"
echo "$bin"
