#!/usr/bin/env bash
# Spool append and read costs next to msgsnd/msgrcv of the same bytes, in one
# process (crates/core/examples/spool_bench). Arguments pass through, e.g.
# bench/spool.sh --runs 7 --ops 200000 --dir /var/spool/shopify-events --idle-secs 5
# Run as root for the msgsnd floor (the private queue is sized above
# kernel.msgmnb with CAP_SYS_RESOURCE; no sysctl is changed). --dir picks the
# filesystem the segments go to (default: $TMPDIR or /tmp); use the real
# spool filesystem for numbers that matter, and a quiet machine.
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo run --release -p shopify-events-core --example spool_bench -- "$@"
