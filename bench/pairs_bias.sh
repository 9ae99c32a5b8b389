#!/usr/bin/env bash
# The local judge on the pairs protocol's test files with the bias on "none of these"
# chosen on each valid file, against the same judge without it and against --judge none,
# in one run (docs/pairs.md). The unbiased run starts from the biased run's answer cache
# (same prompts; the bias only chooses again among the scores), so it asks the judge only
# the rounds the other bias leaves.
#     bash bench/pairs_bias.sh OUT [DATASET ...]    (default: every pair folder of ../shared/data)
set -euo pipefail
out=${1:?usage: bench/pairs_bias.sh OUT [DATASET ...]}; shift
data=${DATA:-$(cd "$(dirname "$0")/../.." && pwd)/shared/data}
kgalign=${KGALIGN:-.venv/bin/kgalign}
datasets=("$@")
[ ${#datasets[@]} -gt 0 ] || datasets=(deepmatcher_abt_buy ditto_beer ditto_wdc_cameras ditto_wdc_computers ditto_wdc_shoes ditto_wdc_watches)
mkdir -p "$out"
for d in "${datasets[@]}"; do
  test="$data/$d/test.txt" valid="$data/$d/valid.txt"
  "$kgalign" pairs "$test" --valid "$valid" -o "$out/none-$d" --quiet
  "$kgalign" pairs "$test" --valid "$valid" --judge local -o "$out/bias-$d" --quiet
  mkdir -p "$out/adapter-$d"
  cp "$out/bias-$d/judge-cache.sqlite" "$out/adapter-$d/"
  "$kgalign" pairs "$test" --valid "$valid" --judge local --none-bias 0 -o "$out/adapter-$d" --quiet
done
