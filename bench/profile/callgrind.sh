#!/usr/bin/env bash
# Instruction counts and simulated cache misses per call of emit_loop.rb
# variants, under callgrind: each variant runs twice (N1 and N2 calls, inside
# Experiments.region, the only function callgrind collects in) and the slope
# between the two runs is the cost of one call, with set-up and one-off
# costs cancelled. Writes tmp/profile/callgrind/<variant>.json (see
# callgrind_costs.rb) and prints Ir per call.
#
#   bench/profile/callgrind.sh [--n1 N] [--n2 N] VARIANT...
# Needs valgrind, `rake compile` and bench/experiments/build.sh.
set -euo pipefail
cd "$(dirname "$0")/../.."
n1=10000
n2=30000
while [[ $# -gt 0 && $1 == --* ]]; do
  case $1 in
    --n1) n1=$2; shift 2 ;;
    --n2) n2=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
out=tmp/profile/callgrind
mkdir -p "$out"
for variant in "$@"; do
  for n in "$n1" "$n2"; do
    valgrind --tool=callgrind --cache-sim=yes --dump-instr=yes \
      --collect-atstart=no --toggle-collect=se_exp_region \
      --callgrind-out-file="$out/$variant.$n.out" \
      ruby bench/profile/emit_loop.rb "$variant" --iterations "$n" --batch "$n" --region \
      >/dev/null 2>"$out/$variant.$n.log"
  done
  ruby bench/profile/callgrind_costs.rb "$n1:$out/$variant.$n1.out" "$n2:$out/$variant.$n2.out" \
    --json "$out/$variant.json" | head -1 | sed "s/^/$variant: /"
done
