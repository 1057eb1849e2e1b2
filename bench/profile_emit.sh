#!/usr/bin/env bash
# Issue 13's emit profile in one command: where every nanosecond of
# ShopifyEvents.emit goes, next to the bare msgsnd floor in the same
# process, and what each prototype cut (bench/experiments/native) saves.
#
#   bench/profile_emit.sh [--runs N] [--skip-callgrind] [--skip-perf] [--skip-wall]
#
# Steps (results in tmp/profile/, the summary in tmp/profile/report.md):
#   1. builds the prototypes and checks they send what the product sends;
#   2. perf stat (task-clock, context switches, page faults; this VM has no
#      hardware counters) of the floor, emit(String) and emit(Hash) loops;
#   3. perf record (cpu-clock, DWARF call graphs) of the floor interleaved
#      with each emit loop, N runs, split per part by bench/profile/perf_split.rb;
#   4. callgrind (instructions and simulated cache misses per call, the
#      slope of two run lengths) of every loop the report uses;
#   5. wall-clock medians of every variant, interleaved, N runs
#      (bench/experiments/emit_cuts.rb);
#   6. bench/profile/report.rb turns it all into the tables of
#      docs/BENCHMARKS.md ("Where emit's time goes").
# Needs root (raises kernel.msgmnb for a batch, restores it), perf,
# valgrind, `rake compile`. Takes about 30-60 minutes, most of it callgrind.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=5
skip_callgrind=0
skip_perf=0
skip_wall=0
while [[ $# -gt 0 ]]; do
  case $1 in
    --runs) runs=$2; shift 2 ;;
    --skip-callgrind) skip_callgrind=1; shift ;;
    --skip-perf) skip_perf=1; shift ;;
    --skip-wall) skip_wall=1; shift ;;
    *) echo "usage: $0 [--runs N] [--skip-callgrind] [--skip-perf] [--skip-wall]" >&2; exit 2 ;;
  esac
done
out=tmp/profile
mkdir -p "$out"
bench/experiments/build.sh
ruby bench/experiments/check.rb

ctl=$(mktemp -d)
trap 'rm -rf "$ctl"' EXIT
mkfifo "$ctl/ctl" "$ctl/ack"
perf_fifos="fifo:$ctl/ctl,$ctl/ack"
loop_fifos="$ctl/ctl,$ctl/ack"

if [[ $skip_perf == 0 ]]; then
  echo "== perf stat" >&2
  for variant in floor emit emit_hash msgsnd_only; do
    perf stat -x, -e task-clock,context-switches,cpu-migrations,page-faults,cycles,instructions \
      -D -1 --control "$perf_fifos" -o "$out/stat.$variant.csv" -- \
      ruby bench/profile/emit_loop.rb "$variant" --iterations 1000000 --perf-ctl "$loop_fifos" \
      > "$out/stat.$variant.jsonl"
  done
  echo "== perf record: the floor interleaved with each loop, $runs runs" >&2
  for run in $(seq 1 "$runs"); do
    for variant in emit emit_hash msgsnd_only x_base x_nosend x_all x_all_noidstr x_all_nosend m_rubykw_all \
      xh_all m_rubykw_all_hash; do
      perf record -q -e cpu-clock -c 100000 --call-graph dwarf,8192 -D -1 --control "$perf_fifos" \
        -o "$out/perf.data" -- \
        ruby bench/profile/emit_loop.rb "floor,$variant" --iterations 500000 --perf-ctl "$loop_fifos" \
        > "$out/split.$variant.$run.jsonl" 2>/dev/null
      ruby bench/profile/perf_split.rb "$out/perf.data" 100000 "$out/split.$variant.$run.jsonl" \
        > "$out/split.$variant.$run.json"
      rm -f "$out/perf.data" "$out/perf.data.old"
    done
  done
fi

if [[ $skip_callgrind == 0 ]]; then
  echo "== callgrind" >&2
  bench/profile/callgrind.sh empty floor msgsnd_only native transport emit emit_key native_hash emit_hash \
    x_base x_id x_send x_send_nostats x_buf x_lite x_topic x_novalidate x_nocrc x_noidstr x_constid x_nosend \
    x_all x_all_noidstr x_all_nosend xh_base xh_hash xh_all xh_noidstr \
    m_native_kw_base m_native_kw_base_key m_native_kw_all m_native_kw_all_key m_native_kw_all_hash \
    m_rubykw_base m_rubykw_all m_rubykw_all_key m_rubykw_all_hash m_positional_all m_positional_all_noidstr
fi

if [[ $skip_wall == 0 ]]; then
  echo "== wall clock, $runs runs" >&2
  ruby bench/experiments/emit_cuts.rb --runs "$runs" --json "$out/cuts.json"
fi

ruby bench/profile/report.rb "$out" | tee "$out/report.md"
