#!/usr/bin/env bash
# emit into a healthy SysV queue, before and after a change, measured in one
# run: builds the extension of BASE (a commit; default: the merge base with
# main) into tmp/bench-base/, then bench/emit_ab.rb alternates processes of
# the two (ABBA) and prints both, each against the msgsnd floor of its own
# process.
#
#   bench/emit_ab.sh [BASE] [options for bench/emit_ab.rb, e.g. --pairs 10]
#
# Run `rake compile` first (the "after" is lib/ as built). The base is built
# with cargo into the shared target/ (only the workspace crates rebuild).
# Run as root so the bench queue can hold a batch, on a quiet machine.
set -euo pipefail
cd "$(dirname "$0")/.."
# Default: where this branch meets main (on main itself, pass the commit
# before the change).
base=$(git merge-base HEAD main)
if [ $# -gt 0 ] && [ "${1#--}" = "$1" ]; then
	base=$1
	shift
fi
[ -f lib/shopify_events/shopify_events.so ] || { echo "run rake compile first" >&2; exit 1; }
dir=tmp/bench-base
rm -rf "$dir"
mkdir -p "$dir/src"
git archive "$base" | tar -x -C "$dir/src"
# git archive dates every file at the commit's time, older than what the
# shared target/ holds for the same crates: without this, cargo would take
# those artifacts as up to date and link the base against this tree's crates.
find "$dir/src" -type f -exec touch {} +
RUBY=ruby cargo build --release --locked --quiet --manifest-path "$dir/src/Cargo.toml" \
	--target-dir target -p shopify_events
cp target/release/libshopify_events.so "$dir/src/lib/shopify_events/shopify_events.so"
exec ruby bench/emit_ab.rb --base "$dir/src/lib" --base-name "$(git rev-parse --short "$base")" "$@"
