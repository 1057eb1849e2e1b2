#!/usr/bin/env bash
# The chaos soak, long (CI runs a 2-minute one as part of `cargo test`):
#
#   bench/chaos.sh [MINUTES] [SEED]      (default 30 minutes, a fresh seed)
#
# Ruby processes emit through the sysv and socket transports while the drain
# and the proxy are killed with SIGKILL and restarted, the broker freezes,
# the queue is removed and the state directory's filesystem fills; at the
# end every event id is accounted for (crates/cli/tests/chaos/main.rs).
# Needs root, ruby and Tansu (script/tansu install). The JSON report goes
# to target/chaos-report.json (or $SHOPIFY_EVENTS_CHAOS_REPORT).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
# The value `rake compile` builds with (rakelib/compile.rake): with another,
# the cc crate builds librdkafka again.
export SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-315619200}"
minutes="${1:-30}"
export SHOPIFY_EVENTS_CHAOS_SECS=$((minutes * 60))
if [ -n "${2:-}" ]; then
  export SHOPIFY_EVENTS_CHAOS_SEED="$2"
fi
export SHOPIFY_EVENTS_CHAOS_REPORT="${SHOPIFY_EVENTS_CHAOS_REPORT:-$CARGO_TARGET_DIR/chaos-report.json}"
rake compile >/dev/null
cargo test --release -p shopify-events-cli --test chaos -- --nocapture
echo "report: $SHOPIFY_EVENTS_CHAOS_REPORT"
